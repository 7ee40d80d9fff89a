// SPDX-License-Identifier: GPL-2.0

//! Guest code on rkvm: hypercalls, guest memory, MMIO exits of every size, read-only and
//! missing memory, registers, signals, PSCI and several vCPUs at once.

use kvm_bindings as kb;
use kvm_bindings::{kvm_userspace_memory_region, KVM_ARM_VCPU_POWER_OFF};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, run_or_skip, Outcome, TestResult,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SHUTDOWN: u32 = kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN;

// x1 = MMIO_BASE, x0 = PSCI_VERSION; report x0 through MMIO, then SYSTEM_OFF.
guest_code!(
    guest_psci_version,
    "movz x1, #0x1000, lsl #16",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "movz x0, #0x0a",
    "movk x0, #0x8400, lsl #16",
    "movz x1, #0",
    "movk x1, #0x8400, lsl #16",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "movz x0, #0x12",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Sum 1..=100 into RAM at MEM_BASE + 0x1000, then SYSTEM_OFF.
guest_code!(
    guest_sum,
    "mov x2, #0",
    "mov x3, #1",
    "1: add x2, x2, x3",
    "add x3, x3, #1",
    "cmp x3, #101",
    "b.ne 1b",
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x1000",
    "str x2, [x4]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Loads of every size and signedness from MMIO, stored to RAM at MEM_BASE + 0x2000.
guest_code!(
    guest_mmio_loads,
    "movz x1, #0x1000, lsl #16",
    "ldrb w2, [x1]",
    "ldrh w3, [x1, #8]",
    "ldr w4, [x1, #16]",
    "ldr x5, [x1, #24]",
    "ldrsb x6, [x1, #32]",
    "ldrsb w7, [x1, #40]",
    "ldrsh x8, [x1, #48]",
    "ldrsw x9, [x1, #56]",
    "movz x10, #0x4000, lsl #16",
    "add x10, x10, #0x2000",
    "stp x2, x3, [x10]",
    "stp x4, x5, [x10, #16]",
    "stp x6, x7, [x10, #32]",
    "stp x8, x9, [x10, #48]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Stores of every size to MMIO.
guest_code!(
    guest_mmio_stores,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x7788",
    "movk x2, #0x5566, lsl #16",
    "movk x2, #0x3344, lsl #32",
    "movk x2, #0x1122, lsl #48",
    "strb w2, [x1]",
    "strh w2, [x1, #2]",
    "str w2, [x1, #4]",
    "str x2, [x1, #8]",
    "str xzr, [x1, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Read the read-only slot at 0x5000_0000, report it, then try to write it.
guest_code!(
    guest_ro_slot,
    "movz x1, #0x1000, lsl #16",
    "movz x5, #0x5000, lsl #16",
    "ldr x2, [x5]",
    "str x2, [x1]",
    "str x2, [x5]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Spin forever.
guest_code!(guest_spin, "1: b 1b");

// SMCCC calls with junk in x1..x3: VENDOR_HYP_CALL_UID, VENDOR_HYP_KVM_FEATURES and
// PSCI_VERSION, each followed by stores of x0..x3 to MMIO + 0x100, then SYSTEM_OFF.
guest_code!(
    guest_vendor_hyp,
    "movz x9, #0x1000, lsl #16",
    "add x9, x9, #0x100",
    "movz x0, #0xff01",
    "movk x0, #0x8600, lsl #16",
    "mov x1, #-1",
    "mov x2, #-1",
    "mov x3, #-1",
    "hvc #0",
    "str x0, [x9]",
    "str x1, [x9]",
    "str x2, [x9]",
    "str x3, [x9]",
    "movz x0, #0",
    "movk x0, #0x8600, lsl #16",
    "mov x1, #-1",
    "mov x2, #-1",
    "mov x3, #-1",
    "hvc #0",
    "str x0, [x9]",
    "str x1, [x9]",
    "str x2, [x9]",
    "str x3, [x9]",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "mov x1, #-1",
    "mov x2, #-1",
    "mov x3, #-1",
    "hvc #0",
    "str x0, [x9]",
    "str x1, [x9]",
    "str x2, [x9]",
    "str x3, [x9]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// SMCCC calls from a table at MEM_BASE + 0x8000 of (function id, x1) pairs, ended by a 0
// id: each with junk in x2 and x3, its x0..x3 stored to MMIO + 0x200; then SYSTEM_OFF.
guest_code!(
    guest_call_table,
    "movz x9, #0x1000, lsl #16",
    "add x9, x9, #0x200",
    "movz x10, #0x4000, lsl #16",
    "add x10, x10, #0x8, lsl #12",
    "1: ldp x0, x1, [x10], #16",
    "cbz x0, 2f",
    "mov x2, #-1",
    "mov x3, #-1",
    "hvc #0",
    "str x0, [x9]",
    "str x1, [x9]",
    "str x2, [x9]",
    "str x3, [x9]",
    "b 1b",
    "2: movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Report ID_AA64PFR0_EL1 at MMIO, then SYSTEM_OFF.
guest_code!(
    guest_read_pfr0,
    "movz x1, #0x1000, lsl #16",
    "mrs x2, id_aa64pfr0_el1",
    "str x2, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Store 0x1234 to MMIO, load MMIO + 8 into x2, store x2 to MMIO + 16, then SYSTEM_OFF.
guest_code!(
    guest_mmio_round,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x1234",
    "str x2, [x1]",
    "ldr x2, [x1, #8]",
    "str x2, [x1, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Add x0 and x1 into x2, and v0 + v1 into v2 (FP), then SYSTEM_OFF.
guest_code!(
    guest_regs,
    "movz x3, #0x30, lsl #16",
    "msr cpacr_el1, x3",
    "isb",
    "add x2, x0, x1",
    "fadd d2, d0, d1",
    "msr tpidr_el1, x2",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Vector table at MEM_BASE + 0x800; an exception at EL1h lands at +0x200 and reports
// ESR_EL1 and ELR_EL1 via MMIO, then resumes after the faulting instruction.
guest_code!(
    guest_sync_handler,
    "movz x1, #0x1000, lsl #16",
    "mrs x2, esr_el1",
    "str x2, [x1, #0x100]",
    "mrs x3, elr_el1",
    "str x3, [x1, #0x108]",
    "add x3, x3, #4",
    "msr elr_el1, x3",
    "eret"
);

// Install VBAR, read an ID register, touch the PMU (UNDEF), then SYSTEM_OFF.
guest_code!(
    guest_undef,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x800",
    "msr vbar_el1, x4",
    "isb",
    "mrs x2, id_aa64pfr0_el1",
    "str x2, [x1]",
    "mrs x2, pmcr_el0",
    "str x2, [x1, #8]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// vCPU 0: CPU_ON(vCPU 1, MEM_BASE + 0x400, 0xabcd), report the result, spin.
guest_code!(
    guest_cpu_on,
    "movz x0, #3",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x4000, lsl #16",
    "add x2, x2, #0x400",
    "movz x3, #0xabcd",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "1: wfi",
    "b 1b"
);

// vCPU 1's entry: report the context id it got in x0, then CPU_OFF.
guest_code!(
    guest_secondary,
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1, #8]",
    "movz x0, #2",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Count to 20000 in RAM at MEM_BASE + 0x3000 + 8 * x0, then report via MMIO at 8 * x0.
guest_code!(
    guest_count,
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x3000",
    "add x4, x4, x0, lsl #3",
    "movz x5, #20000",
    "1: ldr x6, [x4]",
    "add x6, x6, #1",
    "str x6, [x4]",
    "subs x5, x5, #1",
    "b.ne 1b",
    "movz x1, #0x1000, lsl #16",
    "add x1, x1, x0, lsl #3",
    "str x6, [x1]",
    "b ."
);

// vCPU 0: count forever in RAM at MEM_BASE + 0x3000.
guest_code!(
    guest_counter_forever,
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x3000",
    "1: ldr x6, [x4]",
    "add x6, x6, #1",
    "str x6, [x4]",
    "b 1b"
);

// vCPU 1: SYSTEM_OFF at once.
guest_code!(
    guest_system_off,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn vm_with(code: &[u8]) -> Result<(TestVm, kvm_ioctls::VcpuFd), String> {
    let vm = TestVm::new(1 << 20, code)?;
    let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    Ok((vm, vcpu))
}

fn psci_and_smccc_calls() -> TestResult {
    let (_vm, mut vcpu) = vm_with(guest_psci_version())?;
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE, 0x1_0003)); // PSCI 1.3, KVM's default
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE, 0)); // PSCI_FEATURES(PSCI_VERSION)
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE, u64::MAX)); // unknown call
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    Ok(Outcome::Pass)
}

fn guest_arithmetic_and_memory() -> TestResult {
    let (vm, mut vcpu) = vm_with(guest_sum())?;
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    check_eq!(vm.mem.read_u64(0x1000), 5050);
    Ok(Outcome::Pass)
}

fn mmio_loads_with_sign_extension() -> TestResult {
    let (vm, mut vcpu) = vm_with(guest_mmio_loads())?;
    let value = 0x8899_aabb_ccdd_eeffu64;
    for (offset, len) in [
        (0, 1),
        (8, 2),
        (16, 4),
        (24, 8),
        (32, 1),
        (40, 1),
        (48, 2),
        (56, 4),
    ] {
        check_eq!(
            run(&mut vcpu, value)?,
            Exit::MmioRead(MMIO_BASE + offset, len)
        );
    }
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    let want = [
        0xff,
        0xeeff,
        0xccdd_eeff,
        value,
        u64::MAX,
        0xffff_ffff,
        0xffff_ffff_ffff_eeff,
        0xffff_ffff_ccdd_eeff,
    ];
    for (i, w) in want.iter().enumerate() {
        let got = vm.mem.read_u64(0x2000 + 8 * i);
        check!(got == *w, "load {i}: {got:#x}, expected {w:#x}");
    }
    Ok(Outcome::Pass)
}

fn mmio_stores_of_every_size() -> TestResult {
    let (_vm, mut vcpu) = vm_with(guest_mmio_stores())?;
    let v = 0x1122_3344_5566_7788u64.to_le_bytes();
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, v[..1].to_vec())
    );
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 2, v[..2].to_vec())
    );
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 4, v[..4].to_vec())
    );
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 8, v.to_vec())
    );
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 16, vec![0; 8])
    );
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    Ok(Outcome::Pass)
}

fn read_only_slot() -> TestResult {
    let (vm, mut vcpu) = vm_with(guest_ro_slot())?;
    let ro = GuestMem::new(4096)?;
    ro.write_u64(0, 0x1234_5678);
    let region = kvm_userspace_memory_region {
        slot: 1,
        flags: kvm_bindings::KVM_MEM_READONLY,
        guest_phys_addr: 0x5000_0000,
        memory_size: 4096,
        userspace_addr: ro.ptr as u64,
    };
    // SAFETY: `ro` outlives the VM's use of it (the slot is used only in this test).
    unsafe { vm.vm.set_user_memory_region(region) }.map_err(|e| e.to_string())?;
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE, 0x1234_5678));
    check_eq!(run_to_write(&mut vcpu)?, (0x5000_0000, 0x1234_5678));
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    check_eq!(ro.read_u64(0), 0x1234_5678);
    drop(vcpu);
    drop(vm);
    Ok(Outcome::Pass)
}

fn one_reg_round_trips_through_the_guest() -> TestResult {
    let (_vm, mut vcpu) = vm_with(guest_regs())?;
    set_reg(&vcpu, core_reg_x(0), 40)?;
    set_reg(&vcpu, core_reg_x(1), 2)?;
    let d0 = 1.5f64.to_bits() as u128;
    let d1 = 2.25f64.to_bits() as u128;
    vcpu.set_one_reg(core_reg_v(0), &d0.to_le_bytes())
        .map_err(|e| e.to_string())?;
    vcpu.set_one_reg(core_reg_v(1), &d1.to_le_bytes())
        .map_err(|e| e.to_string())?;
    // x3 is the guest's scratch register.
    for n in 4..31 {
        set_reg(&vcpu, core_reg_x(n), 0x1000 + n)?;
    }
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    // SYSTEM_OFF's answer, preloaded as on KVM: INTERNAL_FAILURE, x1..x3 cleared (the sum
    // reached TPIDR_EL1, checked below).
    check_eq!(get_reg(&vcpu, core_reg_x(0))?, -6i64 as u64);
    check_eq!(get_reg(&vcpu, core_reg_x(2))?, 0);
    let mut v2 = [0u8; 16];
    vcpu.get_one_reg(core_reg_v(2), &mut v2)
        .map_err(|e| e.to_string())?;
    check_eq!(f64::from_bits(u128::from_le_bytes(v2) as u64), 3.75);
    check_eq!(get_reg(&vcpu, sys_reg(3, 0, 13, 0, 4))?, 42); // TPIDR_EL1
    for n in 4..31 {
        check_eq!(get_reg(&vcpu, core_reg_x(n))?, 0x1000 + n);
    }
    // Every register in the list reads, and writes back what it read.
    let mut list = kvm_bindings::RegList::new(500).map_err(|e| e.to_string())?;
    vcpu.get_reg_list(&mut list).map_err(|e| e.to_string())?;
    check!(
        list.as_slice().len() > 90,
        "only {} registers listed",
        list.as_slice().len()
    );
    for &id in list.as_slice() {
        let mut b = vec![0u8; kvm_ioctls::reg_size(id)];
        vcpu.get_one_reg(id, &mut b)
            .map_err(|e| format!("get {id:#x}: {e}"))?;
        vcpu.set_one_reg(id, &b)
            .map_err(|e| format!("set {id:#x} back: {e}"))?;
    }
    Ok(Outcome::Pass)
}

fn unhandled_sysreg_injects_undef_and_id_regs_are_sanitised() -> TestResult {
    let (vm, mut vcpu) = vm_with(guest_undef())?;
    vm.mem.write(0x800 + 0x200, guest_sync_handler());
    let (addr, pfr0) = run_to_write(&mut vcpu)?;
    check_eq!(addr, MMIO_BASE);
    check_eq!((pfr0 >> 32) & 0xf, 0); // SVE hidden
    check_eq!((pfr0 >> 8) & 0xf, 0); // no EL2 for the guest
    check_eq!((pfr0 >> 4) & 0xf, 1); // EL1 is AArch64 only
    let (addr, esr) = run_to_write(&mut vcpu)?;
    check_eq!(addr, MMIO_BASE + 0x100);
    check_eq!(esr >> 26, 0); // EC 0: unknown reason (UNDEF)
    let (addr, elr) = run_to_write(&mut vcpu)?;
    check_eq!(addr, MMIO_BASE + 0x108);
    check_eq!(elr, MEM_BASE + 7 * 4); // the mrs pmcr_el0
                                      // x2 still holds the ESR the handler read: the faulting MRS never wrote it.
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE + 8, 0x0200_0000));
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    Ok(Outcome::Pass)
}

static GOT_SIGNAL: AtomicBool = AtomicBool::new(false);
extern "C" fn on_sigusr1(_: libc::c_int) {
    GOT_SIGNAL.store(true, Ordering::SeqCst);
}

fn signal_interrupts_run() -> TestResult {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as usize) };
    let (_vm, mut vcpu) = vm_with(guest_spin())?;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: the target thread is alive: it waits in KVM_RUN until this signal.
        unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
    });
    let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    killer.join().map_err(|_| "killer thread panicked")?;
    check_eq!(r, Err(libc::EINTR));
    check!(GOT_SIGNAL.load(Ordering::SeqCst), "the handler did not run");
    check_eq!(vcpu.get_kvm_run().exit_reason, kvm_bindings::KVM_EXIT_INTR);
    // immediate_exit: back at once, without entering the guest.
    vcpu.set_kvm_immediate_exit(1);
    let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    check_eq!(r, Err(libc::EINTR));
    Ok(Outcome::Pass)
}

/// `KVM_RUN` with `immediate_exit` after an MMIO exit completes the access once and
/// returns `EINTR`, leaving `kvm_run` as it was: KVM changes `exit_reason` only when it
/// enters the guest, and the kernel's KVM selftests read a ucall's MMIO exit again after
/// such a run (`vcpu_run_complete_io`).
fn immediate_exit_leaves_the_mmio_exit_in_place() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_mmio_round())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    // Twice: a second immediate exit must not complete the access again.
    let still_mmio = |vcpu: &mut kvm_ioctls::VcpuFd, addr: u64| -> Result<(), String> {
        for _ in 0..2 {
            vcpu.set_kvm_immediate_exit(1);
            let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
            vcpu.set_kvm_immediate_exit(0);
            check_eq!(r, Err(libc::EINTR));
            let run = vcpu.get_kvm_run();
            check_eq!(run.exit_reason, kvm_bindings::KVM_EXIT_MMIO);
            // SAFETY: `exit_reason` says the union holds `mmio`.
            check_eq!(unsafe { run.__bindgen_anon_1.mmio.phys_addr }, addr);
        }
        Ok(())
    };
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, 0x1234u64.to_le_bytes().to_vec())
    );
    still_mmio(&mut vcpu, MMIO_BASE)?;
    check_eq!(run(&mut vcpu, 0x5678)?, Exit::MmioRead(MMIO_BASE + 8, 8));
    // The read completes here, once: the next run must not load the data again.
    still_mmio(&mut vcpu, MMIO_BASE + 8)?;
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 16, 0x5678u64.to_le_bytes().to_vec())
    );
    check!(
        matches!(run(&mut vcpu, 0)?, Exit::SystemEvent(_)),
        "no SYSTEM_OFF at the end"
    );
    Ok(Outcome::Pass)
}

/// The vendor hypervisor UID is KVM's (guests recognise KVM by it), the KVM features
/// bitmap offers only the features call, and as in KVM every SMCCC answer sets x0..x3.
fn vendor_hyp_calls_answer_as_kvm() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_vendor_hyp())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let mut results = Vec::new();
    loop {
        match run(&mut vcpu, 0)? {
            Exit::MmioWrite(_, data) => results.push(le_value(&data)),
            Exit::SystemEvent(_) => break,
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    check_eq!(
        results,
        vec![
            0xb66f_b428,
            0xe911_c52e,
            0x564b_caa9,
            0x743a_004d, // KVM's UID
            3,
            0,
            0,
            0, // features: FEATURES and PTP
            0x1_0003,
            0,
            0,
            0, // PSCI 1.3, x1..x3 cleared
        ]
    );
    // Without the PSCI 0.2 feature (as the kernel's KVM selftests create vCPUs) the UID
    // is still answered; PSCI is not.
    // (A VM's vCPUs share one feature set, so this needs a VM of its own.)
    let vm = TestVm::new(1 << 20, guest_vendor_hyp())?;
    let cpu = vm
        .vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut init = kvm_bindings::kvm_vcpu_init::default();
    vm.vm
        .get_preferred_target(&mut init)
        .map_err(|e| format!("PREFERRED_TARGET: {e}"))?;
    cpu.vcpu_init(&init)
        .map_err(|e| format!("KVM_ARM_VCPU_INIT: {e}"))?;
    set_reg(&cpu, core_reg_pc(), MEM_BASE)?;
    let mut cpu = cpu;
    let mut first = Vec::new();
    for _ in 0..12 {
        match run(&mut cpu, 0)? {
            Exit::MmioWrite(_, data) => first.push(le_value(&data)),
            other => return Err(format!("no-PSCI vCPU: unexpected exit {other:?}")),
        }
    }
    check_eq!(first[..8], results[..8]);
    check_eq!(first[8], u64::MAX); // PSCI_VERSION: NOT_SUPPORTED
    Ok(Outcome::Pass)
}

/// `KVM_REG_ARM_FW_FEAT_BMAP_REG(n)`.
const fn fw_bmap(n: u64) -> u64 {
    kb::KVM_REG_ARM64 | kb::KVM_REG_SIZE_U64 | kb::KVM_REG_ARM_FW_FEAT_BMAP as u64 | n
}

/// KVM's firmware bitmap registers (`KVM_REG_ARM_FW_FEAT_BMAP_REG(0..=3)`).
const FW_BMAP: [u64; 4] = [
    fw_bmap(0), // STD: TRNG
    fw_bmap(1), // STD_HYP: PV time
    fw_bmap(2), // VENDOR_HYP: KVM_FEATURES/UID, PTP
    fw_bmap(3), // VENDOR_HYP_2: implementation discovery (advertised only)
];

/// Runs `guest_call_table` over `calls` in a new VM whose bitmaps are first set to
/// `bitmaps` (`None`: left at reset); returns x0..x3 of each call.
fn hypercall_answers(
    bitmaps: Option<[u64; 4]>,
    calls: &[(u64, u64)],
) -> Result<Vec<[u64; 4]>, String> {
    let vm = TestVm::new(1 << 20, guest_call_table())?;
    let mut table: Vec<u8> = Vec::new();
    for &(fid, x1) in calls.iter().chain([&(0, 0)]) {
        table.extend(fid.to_le_bytes());
        table.extend(x1.to_le_bytes());
    }
    vm.mem.write(0x8000, &table);
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    if let Some(values) = bitmaps {
        for (id, v) in FW_BMAP.into_iter().zip(values) {
            set_reg(&vcpu, id, v)?;
        }
    }
    let mut words = Vec::new();
    loop {
        match run(&mut vcpu, 0)? {
            Exit::MmioWrite(_, data) => words.push(le_value(&data)),
            Exit::SystemEvent(_) => break,
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    Ok(words.chunks(4).map(|w| [w[0], w[1], w[2], w[3]]).collect())
}

/// The guest discovers and calls TRNG and KVM's vendor services while their bitmap bits
/// are set, and gets NOT_SUPPORTED (x1..x3 cleared) from each once userspace clears
/// them; PSCI is never gated.
fn firmware_bitmaps_gate_hypercalls() -> TestResult {
    const NS: u64 = u64::MAX;
    const TRNG_VERSION: u64 = 0x8400_0050;
    const TRNG_FEATURES: u64 = 0x8400_0051;
    const TRNG_GET_UUID: u64 = 0x8400_0052;
    const TRNG_RND32: u64 = 0x8400_0053;
    const TRNG_RND64: u64 = 0xc400_0053;
    const KVM_FEATURES: u64 = 0x8600_0000;
    const KVM_PTP: u64 = 0x8600_0001;
    const CALL_UID: u64 = 0x8600_ff01;
    const PV_TIME_FEATURES: u64 = 0xc500_0020;
    const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
    const PSCI_VERSION: u64 = 0x8400_0000;
    let calls = [
        (TRNG_VERSION, 0),
        (TRNG_FEATURES, TRNG_RND64),
        (TRNG_FEATURES, KVM_PTP),
        (TRNG_GET_UUID, 0),
        (TRNG_RND64, 8),
        (TRNG_RND32, 97),
        (KVM_FEATURES, 0),
        (CALL_UID, 0),
        (KVM_PTP, 0),
        (KVM_PTP, 2),
        (SMCCC_ARCH_FEATURES, TRNG_RND64),
        (PSCI_VERSION, 0),
    ];
    let on = hypercall_answers(None, &calls)?;
    check_eq!(on[0], [0x1_0000, 0, 0, 0]);
    check_eq!(on[1], [0, 0, 0, 0]);
    check_eq!(on[2], [NS, 0, 0, 0]);
    check_eq!(on[3], [0x00e0_210d, 0xeb11_8443, 0x4452_7080, 0x4c5a_4e55]);
    check_eq!((on[4][0], on[4][1], on[4][2], on[4][3] >> 8), (0, 0, 0, 0)); // 8 bits only
    check_eq!(on[5], [(-2i64) as u64, 0, 0, 0]); // 97 bits: INVALID_PARAMETERS
    check_eq!(on[6], [0b11, 0, 0, 0]);
    check_eq!(on[7][0], 0xb66f_b428);
    // PTP: the host's wall clock (as this process reads it, within a minute), and a
    // virtual count that started near zero at VM creation (the emulated host's
    // clocksource is the arch counter).
    let ns = on[8][0] << 32 | on[8][1];
    let count = on[8][2] << 32 | on[8][3];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos() as u64;
    check!(
        on[8][0] != NS && now.abs_diff(ns) < 60_000_000_000,
        "PTP time {ns:#x}, now {now:#x}"
    );
    check!(count < 1 << 40, "PTP virtual count {count:#x}");
    check_eq!(on[9], [NS, 0, 0, 0]); // unknown counter selector
    check_eq!(on[10], [NS, 0, 0, 0]);
    check_eq!(on[11], [0x1_0003, 0, 0, 0]); // PSCI 1.3

    let off = hypercall_answers(Some([0, 0, 0, 0]), &calls)?;
    for (i, answer) in off.iter().enumerate().take(10) {
        check_eq!((i, *answer), (i, [NS, 0, 0, 0]));
    }
    check_eq!(off[11], [0x1_0003, 0, 0, 0]);
    // Single bits: PTP without the feature call, and the advertisement of VENDOR_HYP_2.
    let ptp = hypercall_answers(Some([1, 0, 0b10, 0b11]), &[(KVM_FEATURES, 0), (KVM_PTP, 0)])?;
    check_eq!(ptp[0], [NS, 0, 0, 0]);
    check!(ptp[1][0] != NS, "PTP with its bit set: {:?}", ptp[1]);
    let adv = hypercall_answers(
        Some([1, 0, 0b11, 0b11]),
        &[(KVM_FEATURES, 0), (PV_TIME_FEATURES, 0)],
    )?;
    check_eq!(adv[0], [0b11, 0, 0b11, 0]);
    check_eq!(adv[1], [NS, 0, 0, 0]);
    Ok(Outcome::Pass)
}

/// `ID_AA64PFR0_EL1.GIC` shows the GIC system registers until the first run and, as in
/// KVM, reads as zero from then on in a VM without an in-kernel vGIC (QEMU reads the ID
/// registers before it creates the vGIC); with a vGICv3 it stays 1.
fn gic_id_field_follows_the_irqchip() -> TestResult {
    const PFR0: u64 = sys_reg(3, 0, 0, 4, 0); // ID_AA64PFR0_EL1
    for with_vgic in [false, true] {
        let vm = TestVm::new(1 << 20, guest_read_pfr0())?;
        let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        let _gic = if with_vgic {
            match create_vgic(&vm.vm)? {
                Some(g) => Some(g),
                None => return Ok(Outcome::Skip("no in-kernel vGICv3".into())),
            }
        } else {
            None
        };
        let gic = |v: u64| (v >> 24) & 0xf;
        check_eq!(gic(get_reg(&vcpu, PFR0)?), 1);
        let (_, seen) = run_to_write(&mut vcpu)?;
        let want = u64::from(with_vgic);
        check!(
            gic(seen) == want,
            "vGIC {with_vgic}: the guest read GIC = {}",
            gic(seen)
        );
        check!(
            gic(get_reg(&vcpu, PFR0)?) == want,
            "vGIC {with_vgic}: GET_ONE_REG after the run"
        );
    }
    Ok(Outcome::Pass)
}

fn psci_cpu_on_starts_a_secondary() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_cpu_on())?;
    vm.mem.write(0x400, guest_secondary());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE + 0x400, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    check_eq!(
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_STOPPED
    );
    let secondary = std::thread::spawn(move || run_to_write(&mut v1).map(|r| (r, v1)));
    check_eq!(run_to_write(&mut v0)?, (MMIO_BASE, 0)); // CPU_ON: SUCCESS
    let (report, v1) = secondary.join().map_err(|_| "secondary panicked")??;
    check_eq!(report, (MMIO_BASE + 8, 0xabcd));
    check_eq!(
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_RUNNABLE
    );
    Ok(Outcome::Pass)
}

fn four_vcpus_in_parallel() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_count())?;
    let mut threads = Vec::new();
    for i in 0..4u64 {
        let mut vcpu = vm.vcpu(i, MEM_BASE, 0)?;
        set_reg(&vcpu, core_reg_x(0), i)?;
        threads.push(std::thread::spawn(move || run_to_write(&mut vcpu)));
    }
    for (i, t) in threads.into_iter().enumerate() {
        let r = t.join().map_err(|_| "vCPU thread panicked")??;
        check_eq!(r, (MMIO_BASE + 8 * i as u64, 20000));
        check_eq!(vm.mem.read_u64(0x3000 + 8 * i), 20000);
    }
    Ok(Outcome::Pass)
}

fn system_off_stops_every_vcpu() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_counter_forever())?;
    vm.mem.write(0x400, guest_system_off());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE + 0x400, 0)?;
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGUSR1, on_sigusr1 as *const () as usize) };
    let (tx, rx) = std::sync::mpsc::channel();
    let counter = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).ok();
        let r = v0.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
        (r, v0)
    });
    let counter_thread = rx.recv().map_err(|e| e.to_string())?;
    // Let vCPU 0 count, then power the VM off from vCPU 1.
    std::thread::sleep(Duration::from_millis(100));
    check!(vm.mem.read_u64(0x3000) > 0, "vCPU 0 never ran");
    check_eq!(run(&mut v1, 0)?, Exit::SystemEvent(SHUTDOWN));
    // vCPU 0 is stopped too: its count no longer moves, and its MP state says so. The
    // kick takes effect when vCPU 0's emulated CPU next runs, which a loaded build
    // machine can delay: wait (up to 2 s) for the count to settle, then watch it.
    let settle = Instant::now();
    let mut before = vm.mem.read_u64(0x3000);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = vm.mem.read_u64(0x3000);
        if now == before {
            break;
        }
        check!(
            settle.elapsed() < Duration::from_secs(2),
            "vCPU 0 still counting 2 s after SYSTEM_OFF"
        );
        before = now;
    }
    std::thread::sleep(Duration::from_millis(100));
    check_eq!(vm.mem.read_u64(0x3000), before);
    // A stopped vCPU waits in KVM_RUN until a signal, as on KVM.
    // SAFETY: the thread is alive, blocked in KVM_RUN.
    unsafe { libc::pthread_kill(counter_thread, libc::SIGUSR1) };
    let (r, v0) = counter.join().map_err(|_| "vCPU 0 thread panicked")?;
    check_eq!(r, Err(libc::EINTR));
    check_eq!(
        v0.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_STOPPED
    );
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_vm_run",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("psci_and_smccc_calls", psci_and_smccc_calls),
            ("guest_arithmetic_and_memory", guest_arithmetic_and_memory),
            (
                "mmio_loads_with_sign_extension",
                mmio_loads_with_sign_extension,
            ),
            ("mmio_stores_of_every_size", mmio_stores_of_every_size),
            ("read_only_slot", read_only_slot),
            (
                "one_reg_round_trips_through_the_guest",
                one_reg_round_trips_through_the_guest,
            ),
            (
                "unhandled_sysreg_injects_undef_and_id_regs_are_sanitised",
                unhandled_sysreg_injects_undef_and_id_regs_are_sanitised,
            ),
            ("signal_interrupts_run", signal_interrupts_run),
            (
                "immediate_exit_leaves_the_mmio_exit_in_place",
                immediate_exit_leaves_the_mmio_exit_in_place,
            ),
            (
                "vendor_hyp_calls_answer_as_kvm",
                vendor_hyp_calls_answer_as_kvm,
            ),
            (
                "firmware_bitmaps_gate_hypercalls",
                firmware_bitmaps_gate_hypercalls,
            ),
            (
                "gic_id_field_follows_the_irqchip",
                gic_id_field_follows_the_irqchip,
            ),
            (
                "psci_cpu_on_starts_a_secondary",
                psci_cpu_on_starts_a_secondary,
            ),
            ("four_vcpus_in_parallel", four_vcpus_in_parallel),
            ("system_off_stops_every_vcpu", system_off_stops_every_vcpu),
        ],
    )
}
