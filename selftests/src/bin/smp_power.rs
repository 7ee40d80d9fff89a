// SPDX-License-Identifier: GPL-2.0

//! vCPU power states: PSCI `CPU_ON` bringing up secondaries (each reports its MPIDR),
//! `CPU_ON` resetting the target as KVM does (registers and the caller's endianness
//! aside, nothing of the old state survives, also after a `CPU_OFF`), the target's
//! registers reading as reset before it runs, `AFFINITY_INFO`, and `KVM_{GET,SET}_MP_STATE`.

use kvm_bindings::{kvm_mp_state, KVM_ARM_VCPU_POWER_OFF};
use rkvm_selftests::{
    check_eq, guest_code, host_runs_guests, run_or_skip,
    vmm::{core_reg_pc, core_reg_x, get_reg, run_to_write, set_reg, sys_reg, TestVm, MEM_BASE, MMIO_BASE},
    Cases, Outcome, TestResult, NO_GUESTS_REASON,
};

const MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);
const TPIDR_EL1: u64 = sys_reg(3, 0, 13, 0, 4);
const VBAR_EL1: u64 = sys_reg(3, 0, 12, 0, 0);
const MP_STATE_RUNNABLE: u32 = 0;
const MP_STATE_STOPPED: u32 = 5;
const MP_STATE_SUSPENDED: u32 = 10;

// Primary: CPU_ON of MPIDR aff0 1, 2, 3 with entry 0x4000_0400 and context = aff0;
// reports each result, then AFFINITY_INFO of each (0 = ON), then a second CPU_ON of
// vCPU 1 (ALREADY_ON), all at MMIO_BASE + 8 * n.
guest_code!(guest_primary,
    "movz x1, #0x1000, lsl #16", "mov x9, #1",
    "1:",
    "movz x0, #0x0003", "movk x0, #0xc400, lsl #16", "mov x1, x9",
    "movz x2, #0x0400", "movk x2, #0x4000, lsl #16", "mov x3, x9", "hvc #0",
    "movz x1, #0x1000, lsl #16", "str x0, [x1, x9, lsl #3]",
    "add x9, x9, #1", "cmp x9, #4", "b.ne 1b",
    "mov x9, #1",
    "2:",
    "movz x0, #0x0004", "movk x0, #0xc400, lsl #16", "mov x1, x9", "mov x2, #0", "hvc #0",
    "movz x1, #0x1000, lsl #16", "add x10, x9, #8", "str x0, [x1, x10, lsl #3]",
    "add x9, x9, #1", "cmp x9, #4", "b.ne 2b",
    "movz x0, #0x0003", "movk x0, #0xc400, lsl #16", "mov x1, #1",
    "movz x2, #0x0400", "movk x2, #0x4000, lsl #16", "mov x3, #7", "hvc #0",
    "movz x1, #0x1000, lsl #16", "str x0, [x1, #0x80]",
    "3:", "b 3b");

// Secondary (at 0x400): reports its MPIDR at MMIO_BASE + 0x100 + 8 * x0, then its
// TPIDR_EL1 and VBAR_EL1 (reset: 0) at + 0x200 / 0x300, sets them, and powers off.
guest_code!(guest_secondary,
    "movz x1, #0x1000, lsl #16", "add x1, x1, x0, lsl #3",
    "mrs x2, mpidr_el1", "str x2, [x1, #0x100]",
    "mrs x2, tpidr_el1", "str x2, [x1, #0x200]",
    "mrs x2, vbar_el1", "str x2, [x1, #0x300]",
    "movz x2, #0xbad", "msr tpidr_el1, x2", "msr vbar_el1, x2",
    "movz x0, #0x0002", "movk x0, #0x8400, lsl #16", "hvc #0",                // CPU_OFF
    "1:", "b 1b");

fn cpu_on_brings_up_four_vcpus() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_primary())?;
    vm.mem.write(0x400, guest_secondary());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut secondaries = Vec::new();
    for i in 1..4u64 {
        let v = vm.vcpu(i, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
        // Garbage the reset must clear.
        set_reg(&v, TPIDR_EL1, 0xdead_0000 + i)?;
        set_reg(&v, VBAR_EL1, 0x1000 * i)?;
        check_eq!(v.get_mp_state().map_err(|e| e.to_string())?.mp_state, MP_STATE_STOPPED);
        secondaries.push(v);
    }
    let mut c = Cases::new();
    std::thread::scope(|s| -> Result<(), String> {
        let threads: Vec<_> = secondaries
            .iter_mut()
            .map(|v| s.spawn(move || (0..3).map(|_| run_to_write(v)).collect::<Result<Vec<_>, _>>()))
            .collect();
        for n in 1..4u64 {
            c.eq(&format!("CPU_ON {n}"), run_to_write(&mut v0)?, (MMIO_BASE + 8 * n, 0));
        }
        for n in 1..4u64 {
            c.eq(&format!("AFFINITY_INFO {n}"), run_to_write(&mut v0)?, (MMIO_BASE + 8 * (n + 8), 0));
        }
        // ALREADY_ON (-4).
        c.eq("second CPU_ON", run_to_write(&mut v0)?, (MMIO_BASE + 0x80, -4i64 as u64));
        for (i, t) in threads.into_iter().enumerate() {
            let n = i as u64 + 1;
            let w = t.join().map_err(|_| "secondary panicked".to_string())??;
            c.eq(&format!("vCPU {n} MPIDR"), w[0], (MMIO_BASE + 0x100 + 8 * n, (1 << 31) | n));
            c.eq(&format!("vCPU {n} TPIDR_EL1 after CPU_ON"), w[1], (MMIO_BASE + 0x200 + 8 * n, 0));
            c.eq(&format!("vCPU {n} VBAR_EL1 after CPU_ON"), w[2], (MMIO_BASE + 0x300 + 8 * n, 0));
        }
        Ok(())
    })?;
    for (i, v) in secondaries.iter().enumerate() {
        let n = i as u64 + 1;
        c.eq(&format!("vCPU {n} MPIDR by ONE_REG"), get_reg(v, MPIDR_EL1)?, (1 << 31) | n);
    }
    c.finish()
}

// Primary for the re-on test: CPU_ON vCPU 1 (context 1), wait until AFFINITY_INFO says
// OFF (it ran and powered off), CPU_ON again (context 2), report, spin.
guest_code!(guest_reon,
    "movz x0, #0x0003", "movk x0, #0xc400, lsl #16", "mov x1, #1",
    "movz x2, #0x0400", "movk x2, #0x4000, lsl #16", "mov x3, #1", "hvc #0",
    "1:",
    "movz x0, #0x0004", "movk x0, #0xc400, lsl #16", "mov x1, #1", "mov x2, #0", "hvc #0",
    "cmp x0, #1", "b.ne 1b",
    "movz x0, #0x0003", "movk x0, #0xc400, lsl #16", "mov x1, #1",
    "movz x2, #0x0400", "movk x2, #0x4000, lsl #16", "mov x3, #2", "hvc #0",
    "movz x1, #0x1000, lsl #16", "str x0, [x1]",
    "2:", "b 2b");

fn cpu_off_then_on_resets_again() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_reon())?;
    vm.mem.write(0x400, guest_secondary());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    let second = std::thread::scope(|s| {
        let t = s.spawn(|| (0..6).map(|_| run_to_write(&mut v1)).collect::<Result<Vec<_>, _>>());
        let primary = run_to_write(&mut v0);
        (t.join(), primary)
    });
    let (w, primary) = second;
    let w = w.map_err(|_| "secondary panicked")??;
    check_eq!(primary?, (MMIO_BASE, 0));
    // First life, then the second: TPIDR/VBAR were 0xbad before the CPU_OFF, 0 after
    // the new CPU_ON's reset; x0 is the new context id.
    check_eq!(w[3], (MMIO_BASE + 0x100 + 16, 1 << 31 | 1));
    check_eq!(w[4], (MMIO_BASE + 0x200 + 16, 0));
    check_eq!(w[5], (MMIO_BASE + 0x300 + 16, 0));
    // Stopped at its last report, before its second CPU_OFF.
    check_eq!(v1.get_mp_state().map_err(|e| e.to_string())?.mp_state, MP_STATE_RUNNABLE);
    Ok(Outcome::Pass)
}

// CPU_ON of vCPU 1 with entry 0x4000_0400 and context 0x77, then report.
guest_code!(guest_on_only,
    "movz x0, #0x0003", "movk x0, #0xc400, lsl #16", "mov x1, #1",
    "movz x2, #0x0400", "movk x2, #0x4000, lsl #16", "mov x3, #0x77", "hvc #0",
    "movz x1, #0x1000, lsl #16", "str x0, [x1]", "1:", "b 1b");

fn target_registers_read_as_reset_before_it_runs() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_on_only())?;
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    set_reg(&v1, TPIDR_EL1, 0x5555)?;
    set_reg(&v1, core_reg_x(5), 0x6666)?;
    check_eq!(run_to_write(&mut v0)?, (MMIO_BASE, 0));
    // KVM performs the owed reset before userspace's register accesses.
    check_eq!(v1.get_mp_state().map_err(|e| e.to_string())?.mp_state, MP_STATE_RUNNABLE);
    check_eq!(get_reg(&v1, core_reg_pc())?, MEM_BASE + 0x400);
    check_eq!(get_reg(&v1, core_reg_x(0))?, 0x77);
    check_eq!(get_reg(&v1, core_reg_x(5))?, 0);
    check_eq!(get_reg(&v1, TPIDR_EL1)?, 0);
    Ok(Outcome::Pass)
}

fn mp_states() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_on_only())?;
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let mut c = Cases::new();
    let get = |v: &kvm_ioctls::VcpuFd| v.get_mp_state().map(|s| s.mp_state).map_err(|e| e.errno());
    let set = |v: &kvm_ioctls::VcpuFd, s| v.set_mp_state(kvm_mp_state { mp_state: s }).map(|_| 0).map_err(|e| e.errno());
    c.eq("initial", get(&v), Ok(MP_STATE_RUNNABLE));
    for (name, st) in [("SUSPENDED", MP_STATE_SUSPENDED), ("STOPPED", MP_STATE_STOPPED), ("RUNNABLE", MP_STATE_RUNNABLE)] {
        c.errno(&format!("set {name}"), set(&v, st), 0);
        c.eq(&format!("get after {name}"), get(&v), Ok(st));
    }
    // HALTED (3) is x86's; arm64 reports a vCPU in WFI as RUNNABLE.
    c.errno("set HALTED", set(&v, 3), libc::EINVAL);
    c.eq("unchanged", get(&v), Ok(MP_STATE_RUNNABLE));
    // Before KVM_ARM_VCPU_INIT too.
    let raw = vm.vm.create_vcpu(5).map_err(|e| e.to_string())?;
    c.eq("uninitialised vCPU", get(&raw), Ok(MP_STATE_RUNNABLE));
    c.errno("set on an uninitialised vCPU", set(&raw, MP_STATE_STOPPED), 0);
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_smp_power",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("cpu_on_brings_up_four_vcpus", cpu_on_brings_up_four_vcpus),
            ("cpu_off_then_on_resets_again", cpu_off_then_on_resets_again),
            ("target_registers_read_as_reset_before_it_runs", target_registers_read_as_reset_before_it_runs),
            ("mp_states", mp_states),
        ],
    )
}
