// SPDX-License-Identifier: GPL-2.0

//! Lazy switching: the guest's EL1 and FP/SIMD state stay correct across thousands of
//! exits, preemption, migration and FP-heavy host threads, and the debugfs counters show
//! that exits handled in the kernel switch no EL1 state and that FP is loaded only when
//! the guest uses it.

use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, pin_to_cpu, run_or_skip, stat, vcpu_stats,
    Outcome, TestResult,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SHUTDOWN: u32 = 1;
const ITERATIONS: u64 = 10_000;

// 10,000 PSCI_VERSION calls, all handled in the kernel, then SYSTEM_OFF.
guest_code!(
    guest_hypercalls,
    "movz x5, #10000",
    "1: movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "subs x5, x5, #1",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Sets EL1 registers and FP state once, then for 10,000 iterations checks them and exits
// to userspace with an MMIO write of the iteration number. A mismatch is reported at
// MMIO_BASE + 8 with a code naming the register.
guest_code!(
    guest_state_keeper,
    "movz x19, #0x1000, lsl #16",
    "movz x3, #0x30, lsl #16",
    "msr cpacr_el1, x3",
    "isb",
    "movz x20, #0x1111",
    "msr tpidr_el1, x20",
    "movz x21, #0x2222",
    "msr contextidr_el1, x21",
    "movz x22, #0x4000, lsl #16",
    "add x22, x22, #0x800",
    "msr vbar_el1, x22",
    "movz x23, #0x5000, lsl #16",
    "msr ttbr0_el1, x23",
    "movz x24, #0x3ff8, lsl #48",
    "fmov d8, x24", // d8 = 1.5
    "movz x5, #10000",
    "mov x6, #0",
    "1: mrs x7, tpidr_el1",
    "cmp x7, x20",
    "mov x9, #1",
    "b.ne 9f",
    "mrs x7, contextidr_el1",
    "cmp x7, x21",
    "mov x9, #2",
    "b.ne 9f",
    "mrs x7, vbar_el1",
    "cmp x7, x22",
    "mov x9, #3",
    "b.ne 9f",
    "mrs x7, ttbr0_el1",
    "cmp x7, x23",
    "mov x9, #4",
    "b.ne 9f",
    "fmov x7, d8",
    "cmp x7, x24",
    "mov x9, #5",
    "b.ne 9f",
    "fadd d9, d8, d8",
    "fmov x7, d9",
    "movz x8, #0x4008, lsl #48",
    "cmp x7, x8",
    "mov x9, #6",
    "b.ne 9f",
    "add x6, x6, #1",
    "str x6, [x19]",
    "subs x5, x5, #1",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b .",
    "9: str x9, [x19, #8]",
    "b ."
);

fn exits_in_the_kernel_switch_no_el1_state() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_hypercalls())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    let s = vcpu_stats(0)?;
    println!("# stats after 10,000 hypercalls: {s:?}");
    check!(
        stat(&s, "exits_hypercall") >= ITERATIONS,
        "only {} hypercall exits",
        stat(&s, "exits_hypercall")
    );
    // One load and one put for the KVM_RUN itself; any more come from preemption only.
    let switches = stat(&s, "loads") - stat(&s, "runs");
    check!(
        switches * 100 <= ITERATIONS,
        "{switches} EL1 switches beyond one per KVM_RUN"
    );
    check_eq!(stat(&s, "loads"), stat(&s, "puts"));
    check_eq!(stat(&s, "fp_loads"), 0);
    Ok(Outcome::Pass)
}

/// Host threads doing FP work that checks itself; returns false if one saw corruption.
fn fp_noise(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut x = 1.0f64;
        let mut ok = true;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let y = std::hint::black_box(x) * 3.0 + 0.5;
            ok &= (y - 0.5) / 3.0 == x;
            x = if x > 1e6 { 1.0 } else { x + 1.0 };
            n += 1;
            if n.is_multiple_of(4096) {
                std::thread::yield_now();
            }
        }
        ok
    })
}

fn state_survives_exits_preemption_and_migration() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_state_keeper())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let stop = Arc::new(AtomicBool::new(false));
    let noise: Vec<_> = (0..3).map(|_| fp_noise(stop.clone())).collect();
    let mut fp_canary = 0.25f64;
    let mut result = Ok(());
    for i in 1..=ITERATIONS {
        if i % 64 == 0 {
            // Migrate the vCPU thread between the two CPUs.
            let _ = pin_to_cpu((i / 64 % 2) as usize);
        }
        match run(&mut vcpu, 0) {
            Ok(Exit::MmioWrite(addr, data)) if addr == MMIO_BASE => {
                let got = u64::from_le_bytes(data.try_into().unwrap_or([0; 8]));
                if got != i {
                    result = Err(format!("iteration {i}: guest reported {got}"));
                    break;
                }
            }
            other => {
                result = Err(format!(
                    "iteration {i}: {other:?} (MMIO_BASE + 8 carries the register that changed)"
                ));
                break;
            }
        }
        // The VMM's own FP state must survive the guest's use of FP.
        fp_canary = std::hint::black_box(fp_canary) * 2.0;
        if fp_canary > 1e9 {
            fp_canary = 0.25;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let noise_ok = noise.into_iter().all(|t| t.join().unwrap_or(false));
    result?;
    check!(noise_ok, "a host thread's FP values were corrupted");
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    let s = vcpu_stats(0)?;
    println!("# stats after 10,000 MMIO exits with migration: {s:?}");
    check_eq!(stat(&s, "exits_mmio"), ITERATIONS);
    // The guest's FP registers are loaded at most once per KVM_RUN: on its first FP use
    // (a trap) or, once it has been seen using FP, up front for the next 32 runs, then
    // lazily once to check it still does (logic::fp::EAGER_RUNS).
    let (trapped, eager, runs) = (
        stat(&s, "fp_loads"),
        stat(&s, "fp_eager_loads"),
        stat(&s, "runs"),
    );
    check!(
        trapped + eager <= runs,
        "{trapped} + {eager} FP loads in {runs} KVM_RUNs"
    );
    check!(trapped >= 1, "the guest's FP use was never loaded");
    check!(
        trapped <= runs / 32 + 1 && eager >= runs - runs / 32 - 2,
        "an FP-using guest trapped {trapped} times in {runs} runs ({eager} loads up front)"
    );
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_lazy_switch",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            (
                "exits_in_the_kernel_switch_no_el1_state",
                exits_in_the_kernel_switch_no_el1_state,
            ),
            (
                "state_survives_exits_preemption_and_migration",
                state_survives_exits_preemption_and_migration,
            ),
        ],
    )
}
