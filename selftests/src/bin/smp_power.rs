// SPDX-License-Identifier: GPL-2.0

//! vCPU power states: PSCI `CPU_ON` bringing up secondaries (each reports its MPIDR),
//! `CPU_ON` resetting the target as KVM does (registers and the caller's endianness
//! aside, nothing of the old state survives, also after a `CPU_OFF`), the target's
//! registers reading as reset before it runs, `AFFINITY_INFO`, and `KVM_{GET,SET}_MP_STATE`;
//! the system-wide calls of PSCI 1.x (`SYSTEM_SUSPEND` behind `KVM_CAP_ARM_SYSTEM_SUSPEND`,
//! `SYSTEM_RESET2`, `SYSTEM_OFF2`) and the VM's PSCI version register; PSCI 0.1 (KVM's
//! private function ids) on vCPUs created without `KVM_ARM_VCPU_PSCI_0_2`.

use kvm_bindings as kb;
use kvm_bindings::{
    kvm_enable_cap, kvm_mp_state, kvm_vcpu_init, KVM_ARM_VCPU_POWER_OFF, KVM_CAP_ARM_SYSTEM_SUSPEND,
};
use rkvm_selftests::{
    check_eq, guest_code, host_runs_guests, run_or_skip,
    vmm::{
        core_reg_pc, core_reg_x, get_reg, ioctl_with, nr::KVM_ENABLE_CAP, run_to_event,
        run_to_write, set_reg, sys_reg, TestVm, MEM_BASE, MMIO_BASE, PSCI_VERSION_REG,
    },
    Cases, Outcome, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;

const MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);
const TPIDR_EL1: u64 = sys_reg(3, 0, 13, 0, 4);
const VBAR_EL1: u64 = sys_reg(3, 0, 12, 0, 0);
const MP_STATE_RUNNABLE: u32 = kb::KVM_MP_STATE_RUNNABLE;
const MP_STATE_STOPPED: u32 = kb::KVM_MP_STATE_STOPPED;
const MP_STATE_SUSPENDED: u32 = kb::KVM_MP_STATE_SUSPENDED;
const SYSTEM_EVENT_SHUTDOWN: u32 = kb::KVM_SYSTEM_EVENT_SHUTDOWN;
const SYSTEM_EVENT_RESET: u32 = kb::KVM_SYSTEM_EVENT_RESET;
const SYSTEM_EVENT_SUSPEND: u32 = kb::KVM_SYSTEM_EVENT_SUSPEND;
const NOT_SUPPORTED: u64 = -1i64 as u64;
const INVALID_PARAMETERS: u64 = -2i64 as u64;
const INTERNAL_FAILURE: u64 = -6i64 as u64;

// Primary: CPU_ON of MPIDR aff0 1, 2, 3 with entry 0x4000_0400 and context = aff0;
// reports each result, then AFFINITY_INFO of each (0 = ON), then a second CPU_ON of
// vCPU 1 (ALREADY_ON), all at MMIO_BASE + 8 * n.
guest_code!(
    guest_primary,
    "movz x1, #0x1000, lsl #16",
    "mov x9, #1",
    "1:",
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, x9",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, x9",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1, x9, lsl #3]",
    "add x9, x9, #1",
    "cmp x9, #4",
    "b.ne 1b",
    "mov x9, #1",
    "2:",
    "movz x0, #0x0004",
    "movk x0, #0xc400, lsl #16",
    "mov x1, x9",
    "mov x2, #0",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "add x10, x9, #8",
    "str x0, [x1, x10, lsl #3]",
    "add x9, x9, #1",
    "cmp x9, #4",
    "b.ne 2b",
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #7",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1, #0x80]",
    "3:",
    "b 3b"
);

// Secondary (at 0x400): reports its MPIDR at MMIO_BASE + 0x100 + 8 * x0, then its
// TPIDR_EL1 and VBAR_EL1 (reset: 0) at + 0x200 / 0x300, sets them, and powers off.
guest_code!(
    guest_secondary,
    "movz x1, #0x1000, lsl #16",
    "add x1, x1, x0, lsl #3",
    "mrs x2, mpidr_el1",
    "str x2, [x1, #0x100]",
    "mrs x2, tpidr_el1",
    "str x2, [x1, #0x200]",
    "mrs x2, vbar_el1",
    "str x2, [x1, #0x300]",
    "movz x2, #0xbad",
    "msr tpidr_el1, x2",
    "msr vbar_el1, x2",
    "movz x0, #0x0002",
    "movk x0, #0x8400, lsl #16",
    "hvc #0", // CPU_OFF
    "1:",
    "b 1b"
);

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
        check_eq!(
            v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
            MP_STATE_STOPPED
        );
        secondaries.push(v);
    }
    let mut c = Cases::new();
    std::thread::scope(|s| -> Result<(), String> {
        let threads: Vec<_> = secondaries
            .iter_mut()
            .map(|v| {
                s.spawn(move || {
                    (0..3)
                        .map(|_| run_to_write(v))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        for n in 1..4u64 {
            c.eq(
                &format!("CPU_ON {n}"),
                run_to_write(&mut v0)?,
                (MMIO_BASE + 8 * n, 0),
            );
        }
        for n in 1..4u64 {
            c.eq(
                &format!("AFFINITY_INFO {n}"),
                run_to_write(&mut v0)?,
                (MMIO_BASE + 8 * (n + 8), 0),
            );
        }
        // ALREADY_ON (-4).
        c.eq(
            "second CPU_ON",
            run_to_write(&mut v0)?,
            (MMIO_BASE + 0x80, -4i64 as u64),
        );
        for (i, t) in threads.into_iter().enumerate() {
            let n = i as u64 + 1;
            let w = t.join().map_err(|_| "secondary panicked".to_string())??;
            c.eq(
                &format!("vCPU {n} MPIDR"),
                w[0],
                (MMIO_BASE + 0x100 + 8 * n, (1 << 31) | n),
            );
            c.eq(
                &format!("vCPU {n} TPIDR_EL1 after CPU_ON"),
                w[1],
                (MMIO_BASE + 0x200 + 8 * n, 0),
            );
            c.eq(
                &format!("vCPU {n} VBAR_EL1 after CPU_ON"),
                w[2],
                (MMIO_BASE + 0x300 + 8 * n, 0),
            );
        }
        Ok(())
    })?;
    for (i, v) in secondaries.iter().enumerate() {
        let n = i as u64 + 1;
        c.eq(
            &format!("vCPU {n} MPIDR by ONE_REG"),
            get_reg(v, MPIDR_EL1)?,
            (1 << 31) | n,
        );
    }
    c.finish()
}

// Primary for the re-on test: CPU_ON vCPU 1 (context 1), wait until AFFINITY_INFO says
// OFF (it ran and powered off), CPU_ON again (context 2), report, spin.
guest_code!(
    guest_reon,
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #1",
    "hvc #0",
    "1:",
    "movz x0, #0x0004",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "mov x2, #0",
    "hvc #0",
    "cmp x0, #1",
    "b.ne 1b",
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #2",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "2:",
    "b 2b"
);

fn cpu_off_then_on_resets_again() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_reon())?;
    vm.mem.write(0x400, guest_secondary());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    let second = std::thread::scope(|s| {
        let t = s.spawn(|| {
            (0..6)
                .map(|_| run_to_write(&mut v1))
                .collect::<Result<Vec<_>, _>>()
        });
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
    check_eq!(
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_RUNNABLE
    );
    Ok(Outcome::Pass)
}

// CPU_ON of vCPU 1 with entry 0x4000_0400 and context 0x77, then report.
guest_code!(
    guest_on_only,
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "1:",
    "b 1b"
);

fn target_registers_read_as_reset_before_it_runs() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_on_only())?;
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    set_reg(&v1, TPIDR_EL1, 0x5555)?;
    set_reg(&v1, core_reg_x(5), 0x6666)?;
    check_eq!(run_to_write(&mut v0)?, (MMIO_BASE, 0));
    // KVM performs the owed reset before userspace's register accesses.
    check_eq!(
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_RUNNABLE
    );
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
    let set = |v: &kvm_ioctls::VcpuFd, s| {
        v.set_mp_state(kvm_mp_state { mp_state: s })
            .map(|_| 0)
            .map_err(|e| e.errno())
    };
    c.eq("initial", get(&v), Ok(MP_STATE_RUNNABLE));
    for (name, st) in [
        ("SUSPENDED", MP_STATE_SUSPENDED),
        ("STOPPED", MP_STATE_STOPPED),
        ("RUNNABLE", MP_STATE_RUNNABLE),
    ] {
        c.errno(&format!("set {name}"), set(&v, st), 0);
        c.eq(&format!("get after {name}"), get(&v), Ok(st));
    }
    // HALTED is x86's; arm64 reports a vCPU in WFI as RUNNABLE.
    c.errno("set HALTED", set(&v, kb::KVM_MP_STATE_HALTED), libc::EINVAL);
    c.eq("unchanged", get(&v), Ok(MP_STATE_RUNNABLE));
    // Before KVM_ARM_VCPU_INIT too.
    let raw = vm.vm.create_vcpu(5).map_err(|e| e.to_string())?;
    c.eq("uninitialised vCPU", get(&raw), Ok(MP_STATE_RUNNABLE));
    c.errno(
        "set on an uninitialised vCPU",
        set(&raw, MP_STATE_STOPPED),
        0,
    );
    c.finish()
}

// PSCI_FEATURES(SYSTEM_SUSPEND64), then SYSTEM_SUSPEND64(0x4000_0800, 0x55), then the
// 32-bit SYSTEM_SUSPEND with junk in the arguments' upper halves; each x0 is reported at
// MMIO_BASE + 0, 8, 16.
guest_code!(
    guest_suspend,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x000a",
    "movk x0, #0x8400, lsl #16",
    "movz x1, #0x000e",
    "movk x1, #0xc400, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x000e",
    "movk x0, #0xc400, lsl #16",
    "movz x1, #0x0800",
    "movk x1, #0x4000, lsl #16",
    "mov x2, #0x55",
    "hvc #0",
    "str x0, [x9, #8]",
    "movz x0, #0x000e",
    "movk x0, #0x8400, lsl #16",
    "movz x1, #0x0800",
    "movk x1, #0x4000, lsl #16",
    "movk x1, #0xdead, lsl #48",
    "movz x2, #0x55",
    "movk x2, #0xbeef, lsl #32",
    "hvc #0",
    "str x0, [x9, #16]",
    "1:",
    "b 1b"
);

fn enable_cap(vm: &kvm_ioctls::VmFd, cap: u32, flags: u32) -> Result<i32, i32> {
    vm.enable_cap(&kvm_enable_cap {
        cap,
        flags,
        ..Default::default()
    })
    .map(|_| 0)
    .map_err(|e| e.errno())
}

fn system_suspend_needs_the_capability() -> TestResult {
    let mut c = Cases::new();
    // Without it: not discoverable, and the call is refused.
    let vm = TestVm::new(1 << 20, guest_suspend())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.eq(
        "PSCI_FEATURES without the cap",
        run_to_write(&mut v)?,
        (MMIO_BASE, NOT_SUPPORTED),
    );
    c.eq(
        "SYSTEM_SUSPEND without the cap",
        run_to_write(&mut v)?,
        (MMIO_BASE + 8, NOT_SUPPORTED),
    );
    // KVM_ENABLE_CAP: flags must be 0; other capabilities (NISV_TO_USER) are EINVAL, and
    // arm64 vCPUs have none to enable.
    c.eq(
        "CHECK_EXTENSION",
        vm.vm.check_extension_raw(KVM_CAP_ARM_SYSTEM_SUSPEND.into()),
        1,
    );
    c.errno(
        "ENABLE_CAP with flags",
        enable_cap(&vm.vm, KVM_CAP_ARM_SYSTEM_SUSPEND, 1),
        libc::EINVAL,
    );
    c.errno(
        "ENABLE_CAP of NISV_TO_USER",
        enable_cap(&vm.vm, kb::KVM_CAP_ARM_NISV_TO_USER, 0),
        libc::EINVAL,
    );
    let mut cap = kvm_enable_cap {
        cap: KVM_CAP_ARM_SYSTEM_SUSPEND,
        ..Default::default()
    };
    c.errno(
        "vCPU ENABLE_CAP",
        ioctl_with(v.as_raw_fd(), KVM_ENABLE_CAP, &mut cap),
        libc::EINVAL,
    );

    let vm = TestVm::new(1 << 20, guest_suspend())?;
    c.errno(
        "ENABLE_CAP",
        enable_cap(&vm.vm, KVM_CAP_ARM_SYSTEM_SUSPEND, 0),
        0,
    );
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.eq(
        "PSCI_FEATURES with the cap",
        run_to_write(&mut v)?,
        (MMIO_BASE, 0),
    );
    // The exit leaves the call in the registers for userspace to carry out.
    c.eq(
        "SYSTEM_SUSPEND64 exit",
        run_to_event(&mut v)?,
        (SYSTEM_EVENT_SUSPEND, vec![]),
    );
    c.eq("x0 kept", get_reg(&v, core_reg_x(0))?, 0xc400_000e);
    c.eq(
        "entry point in x1",
        get_reg(&v, core_reg_x(1))?,
        0x4000_0800,
    );
    c.eq("context in x2", get_reg(&v, core_reg_x(2))?, 0x55);
    c.eq(
        "still runnable",
        v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_RUNNABLE,
    );
    // Resumed, the guest goes on with x0 as it was.
    c.eq(
        "resumed",
        run_to_write(&mut v)?,
        (MMIO_BASE + 8, 0xc400_000e),
    );
    // The 32-bit call's arguments are narrowed in place.
    c.eq(
        "SYSTEM_SUSPEND exit",
        run_to_event(&mut v)?,
        (SYSTEM_EVENT_SUSPEND, vec![]),
    );
    c.eq(
        "32-bit entry point",
        get_reg(&v, core_reg_x(1))?,
        0x4000_0800,
    );
    c.eq("32-bit context", get_reg(&v, core_reg_x(2))?, 0x55);
    c.eq(
        "resumed after the 32-bit call",
        run_to_write(&mut v)?,
        (MMIO_BASE + 16, 0x8400_000e),
    );
    c.finish()
}

// PSCI_VERSION; PSCI_FEATURES(SYSTEM_OFF2); SYSTEM_OFF2(HIBERNATE, cookie 1); SYSTEM_OFF2(0,
// 0) then x0 and x1; SYSTEM_RESET2(reserved type 1); SYSTEM_RESET2(warm, cookie 0x77) then
// x0 and x2: reported at MMIO_BASE + 8 * n.
guest_code!(
    guest_off2,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x8400, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x000a",
    "movk x0, #0x8400, lsl #16",
    "movz x1, #0x0015",
    "movk x1, #0xc400, lsl #16",
    "hvc #0",
    "str x0, [x9, #8]",
    "movz x0, #0x0015",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "mov x2, #1",
    "hvc #0",
    "str x0, [x9, #16]",
    "movz x0, #0x0015",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #0",
    "mov x2, #0",
    "mov x3, #3",
    "hvc #0",
    "str x0, [x9, #24]",
    "str x3, [x9, #32]",
    "movz x0, #0x0012",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "mov x2, #0",
    "hvc #0",
    "str x0, [x9, #40]",
    "movz x0, #0x0012",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #0",
    "mov x2, #0x77",
    "hvc #0",
    "str x0, [x9, #48]",
    "str x2, [x9, #56]",
    "1:",
    "b 1b"
);

/// Runs `guest_off2` at PSCI `version` (None: the default) and checks each answer.
fn off2_at(c: &mut Cases, version: Option<u64>) -> Result<(), String> {
    let vm = TestVm::new(1 << 20, guest_off2())?;
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    if let Some(version) = version {
        set_reg(&v1, PSCI_VERSION_REG, version)?;
    }
    let version = get_reg(&v0, PSCI_VERSION_REG)?;
    let minor = version & 0xffff;
    let at = |n: u64| MMIO_BASE + 8 * n;
    let what = |s: &str| format!("PSCI {}.{minor}: {s}", version >> 16);
    let resume = |v: &kvm_ioctls::VcpuFd| {
        v.set_mp_state(kvm_mp_state {
            mp_state: MP_STATE_RUNNABLE,
        })
    };
    c.eq(
        &what("PSCI_VERSION"),
        run_to_write(&mut v0)?,
        (at(0), version),
    );
    let off2 = minor >= 3;
    c.eq(
        &what("PSCI_FEATURES(SYSTEM_OFF2)"),
        run_to_write(&mut v0)?,
        (at(1), if off2 { 1 } else { NOT_SUPPORTED }),
    );
    let bad_cookie = if off2 {
        INVALID_PARAMETERS
    } else {
        NOT_SUPPORTED
    };
    c.eq(
        &what("SYSTEM_OFF2 with a cookie"),
        run_to_write(&mut v0)?,
        (at(2), bad_cookie),
    );
    if off2 {
        c.eq(
            &what("SYSTEM_OFF2 exit"),
            run_to_event(&mut v0)?,
            (SYSTEM_EVENT_SHUTDOWN, vec![1]),
        );
        for (n, v) in [(0, &v0), (1, &v1)] {
            c.eq(
                &what(&format!("vCPU {n} stopped")),
                v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
                MP_STATE_STOPPED,
            );
        }
        resume(&v0).map_err(|e| e.to_string())?;
        c.eq(
            &what("resumed after SYSTEM_OFF2"),
            run_to_write(&mut v0)?,
            (at(3), INTERNAL_FAILURE),
        );
    } else {
        c.eq(
            &what("SYSTEM_OFF2"),
            run_to_write(&mut v0)?,
            (at(3), NOT_SUPPORTED),
        );
    }
    c.eq(
        &what("x3 after SYSTEM_OFF2"),
        run_to_write(&mut v0)?,
        (at(4), 0),
    );
    let reset2 = minor >= 1;
    let reserved = if reset2 {
        INVALID_PARAMETERS
    } else {
        NOT_SUPPORTED
    };
    c.eq(
        &what("SYSTEM_RESET2 of a reserved type"),
        run_to_write(&mut v0)?,
        (at(5), reserved),
    );
    if reset2 {
        c.eq(
            &what("SYSTEM_RESET2 exit"),
            run_to_event(&mut v0)?,
            (SYSTEM_EVENT_RESET, vec![1]),
        );
        resume(&v0).map_err(|e| e.to_string())?;
        c.eq(
            &what("resumed after SYSTEM_RESET2"),
            run_to_write(&mut v0)?,
            (at(6), INTERNAL_FAILURE),
        );
        // The 64-bit call leaves its arguments alone.
        c.eq(
            &what("x2 after SYSTEM_RESET2"),
            run_to_write(&mut v0)?,
            (at(7), 0x77),
        );
    } else {
        c.eq(
            &what("SYSTEM_RESET2"),
            run_to_write(&mut v0)?,
            (at(6), NOT_SUPPORTED),
        );
        c.eq(
            &what("x2 after SYSTEM_RESET2"),
            run_to_write(&mut v0)?,
            (at(7), 0),
        );
    }
    Ok(())
}

fn system_off2_and_reset2_by_version() -> TestResult {
    let mut c = Cases::new();
    off2_at(&mut c, None)?;
    for version in [0x1_0002, 0x1_0001, 0x1_0000] {
        off2_at(&mut c, Some(version))?;
    }
    c.finish()
}

fn psci_version_register() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_off2())?;
    let v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let v1 = vm.vcpu(1, MEM_BASE, 0)?;
    let set = |v: &kvm_ioctls::VcpuFd, val: u64| {
        v.set_one_reg(PSCI_VERSION_REG, &val.to_le_bytes())
            .map(|_| 0)
            .map_err(|e| e.errno())
    };
    c.eq(
        "default (KVM_ARM_PSCI_LATEST)",
        get_reg(&v0, PSCI_VERSION_REG)?,
        0x1_0003,
    );
    // 0.1 (1) needs a vCPU without PSCI 0.2; 0, 0.3, 1.4 and 2.0 do not exist.
    for bad in [0, 1, 3, 0x1_0004, 0x2_0000] {
        c.errno(&format!("set {bad:#x}"), set(&v0, bad), libc::EINVAL);
    }
    for good in [0x2, 0x1_0000, 0x1_0001, 0x1_0002, 0x1_0003] {
        c.errno(&format!("set {good:#x}"), set(&v0, good), 0);
        // One version per VM.
        c.eq(
            &format!("{good:#x} seen by vCPU 1"),
            get_reg(&v1, PSCI_VERSION_REG)?,
            good,
        );
    }
    // A vCPU without PSCI 0.2 has version 0.1 (KVM_ARM_PSCI_0_1: 1) and can only keep it.
    let vm = TestVm::new(1 << 20, guest_off2())?;
    let v = vm.vm.create_vcpu(0).map_err(|e| e.to_string())?;
    let mut init = kvm_vcpu_init::default();
    vm.vm
        .get_preferred_target(&mut init)
        .map_err(|e| e.to_string())?;
    v.vcpu_init(&init).map_err(|e| e.to_string())?;
    c.eq("without PSCI 0.2", get_reg(&v, PSCI_VERSION_REG)?, 1);
    c.errno("set 0.1 without PSCI 0.2", set(&v, 1), 0);
    c.errno("set 0 without PSCI 0.2", set(&v, 0), libc::EINVAL);
    c.eq("still 0.1", get_reg(&v, PSCI_VERSION_REG)?, 1);
    c.errno("set 1.0 without PSCI 0.2", set(&v, 0x1_0000), libc::EINVAL);
    c.finish()
}

/// vCPU `id` of `vm` created without `KVM_ARM_VCPU_PSCI_0_2` (PSCI 0.1), at `pc`.
fn vcpu_psci_0_1(vm: &TestVm, id: u64, pc: u64, extra: u32) -> Result<kvm_ioctls::VcpuFd, String> {
    let v = vm
        .vm
        .create_vcpu(id)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut init = kvm_vcpu_init::default();
    vm.vm
        .get_preferred_target(&mut init)
        .map_err(|e| format!("PREFERRED_TARGET: {e}"))?;
    init.features[0] |= extra;
    v.vcpu_init(&init)
        .map_err(|e| format!("KVM_ARM_VCPU_INIT: {e}"))?;
    set_reg(&v, core_reg_pc(), pc)?;
    Ok(v)
}

// PSCI 0.1 primary, each x0 reported at MMIO_BASE + 8 * n: KVM_PSCI_FN_CPU_ON (0x95c1ba60)
// of vCPU 1 at 0x4000_0400 with context 0x77, with junk in x1's upper half (0: the whole
// register is the MPIDR, so INVALID_PARAMETERS), then cleanly (SUCCESS), then again
// (INVALID_PARAMETERS: 0.1 has no ALREADY_ON); 0.2's PSCI_VERSION, CPU_ON64 and CPU_OFF
// (NOT_SUPPORTED, and the vCPU stays on); SMCCC_VERSION (1.1, not PSCI);
// KVM_PSCI_FN_CPU_SUSPEND and _MIGRATE (NOT_SUPPORTED); then KVM_PSCI_FN_CPU_OFF.
guest_code!(
    guest_psci01_primary,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0xba60",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #1",
    "movk x1, #0x8000, lsl #48",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0xba60",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "str x0, [x9, #8]",
    "movz x0, #0xba60",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "str x0, [x9, #16]",
    "movz x0, #0x8400, lsl #16",
    "hvc #0",
    "str x0, [x9, #24]",
    "movz x0, #0x0003",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "str x0, [x9, #32]",
    "movz x0, #0x0002",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "str x0, [x9, #40]",
    "movz x0, #0x8000, lsl #16",
    "hvc #0",
    "str x0, [x9, #48]",
    "movz x0, #0xba5e",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #0",
    "hvc #0",
    "str x0, [x9, #56]",
    "movz x0, #0xba61",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #1",
    "hvc #0",
    "str x0, [x9, #64]",
    "movz x0, #0xba5f",
    "movk x0, #0x95c1, lsl #16",
    "hvc #0",
    // Not reached: CPU_OFF does not return.
    "str x0, [x9, #72]",
    "1:",
    "b 1b"
);

// PSCI 0.1 secondary (at 0x400): reports its context id and MPIDR, then calls
// KVM_PSCI_FN_CPU_ON of vCPU 0 (entry 0x4000_0600, context 0x55) until it succeeds, which
// it does once vCPU 0 is off, and reports how many calls failed and the last failure.
// vCPU 0, powered on again at 0x600, reports its context id.
guest_code!(
    guest_psci01_secondary,
    "movz x9, #0x1000, lsl #16",
    "str x0, [x9, #0x100]",
    "mrs x2, mpidr_el1",
    "str x2, [x9, #0x108]",
    "mov x10, #0",
    "mov x11, #0",
    "1:",
    "movz x0, #0xba60",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #0",
    "movz x2, #0x0600",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x55",
    "hvc #0",
    "cbz x0, 2f",
    "add x10, x10, #1",
    "mov x11, x0",
    "b 1b",
    "2:",
    "str x11, [x9, #0x110]",
    "str x10, [x9, #0x118]",
    "3:",
    "b 3b"
);
guest_code!(
    guest_psci01_restarted,
    "movz x9, #0x1000, lsl #16",
    "str x0, [x9, #0x200]",
    "1:",
    "b 1b"
);

fn psci_0_1_cpu_on_and_cpu_off() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_psci01_primary())?;
    vm.mem.write(0x400, guest_psci01_secondary());
    vm.mem.write(0x600, guest_psci01_restarted());
    let mut v0 = vcpu_psci_0_1(&vm, 0, MEM_BASE, 0)?;
    let mut v1 = vcpu_psci_0_1(&vm, 1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    let mut c = Cases::new();
    c.eq("PSCI version register", get_reg(&v0, PSCI_VERSION_REG)?, 1);
    let at = |n: u64| MMIO_BASE + 8 * n;
    c.eq(
        "CPU_ON with a 64-bit junk MPIDR",
        run_to_write(&mut v0)?,
        (at(0), INVALID_PARAMETERS),
    );
    c.eq("CPU_ON", run_to_write(&mut v0)?, (at(1), 0));
    c.eq(
        "target runnable",
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_RUNNABLE,
    );
    c.eq(
        "CPU_ON of a vCPU that is on",
        run_to_write(&mut v0)?,
        (at(2), INVALID_PARAMETERS),
    );
    c.eq(
        "0.2 PSCI_VERSION",
        run_to_write(&mut v0)?,
        (at(3), NOT_SUPPORTED),
    );
    c.eq(
        "0.2 CPU_ON64",
        run_to_write(&mut v0)?,
        (at(4), NOT_SUPPORTED),
    );
    c.eq(
        "0.2 CPU_OFF",
        run_to_write(&mut v0)?,
        (at(5), NOT_SUPPORTED),
    );
    c.eq("SMCCC_VERSION", run_to_write(&mut v0)?, (at(6), 0x1_0001));
    c.eq(
        "0.1 CPU_SUSPEND",
        run_to_write(&mut v0)?,
        (at(7), NOT_SUPPORTED),
    );
    c.eq(
        "0.1 MIGRATE",
        run_to_write(&mut v0)?,
        (at(8), NOT_SUPPORTED),
    );
    // vCPU 0 powers itself off (its KVM_RUN sleeps) until vCPU 1's CPU_ON restarts it.
    std::thread::scope(|s| -> Result<(), String> {
        let primary = s.spawn(|| run_to_write(&mut v0));
        let writes = (0..4)
            .map(|_| run_to_write(&mut v1))
            .collect::<Result<Vec<_>, _>>()?;
        c.eq("context id in x0", writes[0], (MMIO_BASE + 0x100, 0x77));
        c.eq(
            "secondary MPIDR",
            writes[1],
            (MMIO_BASE + 0x108, 1 << 31 | 1),
        );
        // Before vCPU 0 is off, CPU_ON of it fails (if it was tried at all).
        let (failures, last) = (writes[3].1, writes[2].1);
        c.eq(
            "CPU_ON of vCPU 0 while on",
            if failures == 0 {
                INVALID_PARAMETERS
            } else {
                last
            },
            INVALID_PARAMETERS,
        );
        let restarted = primary
            .join()
            .map_err(|_| "primary panicked".to_string())??;
        c.eq(
            "vCPU 0 restarted by CPU_ON",
            restarted,
            (MMIO_BASE + 0x200, 0x55),
        );
        Ok(())
    })?;
    c.eq(
        "vCPU 0 runnable",
        v0.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_RUNNABLE,
    );
    c.finish()
}

// On a PSCI 0.2+ vCPU, KVM's 0.1 ids are unknown: KVM_PSCI_FN_CPU_ON of vCPU 1 and
// KVM_PSCI_FN_CPU_OFF both answer NOT_SUPPORTED (the vCPU stays on).
guest_code!(
    guest_psci01_on_0_2,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0xba60",
    "movk x0, #0x95c1, lsl #16",
    "mov x1, #1",
    "movz x2, #0x0400",
    "movk x2, #0x4000, lsl #16",
    "mov x3, #0x77",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0xba5f",
    "movk x0, #0x95c1, lsl #16",
    "hvc #0",
    "str x0, [x9, #8]",
    "1:",
    "b 1b"
);

fn psci_0_1_ids_on_a_0_2_vcpu() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_psci01_on_0_2())?;
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let v1 = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    let mut c = Cases::new();
    c.eq(
        "0.1 CPU_ON",
        run_to_write(&mut v0)?,
        (MMIO_BASE, NOT_SUPPORTED),
    );
    c.eq(
        "target still stopped",
        v1.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        MP_STATE_STOPPED,
    );
    c.eq(
        "0.1 CPU_OFF",
        run_to_write(&mut v0)?,
        (MMIO_BASE + 8, NOT_SUPPORTED),
    );
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
            (
                "target_registers_read_as_reset_before_it_runs",
                target_registers_read_as_reset_before_it_runs,
            ),
            ("mp_states", mp_states),
            (
                "system_suspend_needs_the_capability",
                system_suspend_needs_the_capability,
            ),
            (
                "system_off2_and_reset2_by_version",
                system_off2_and_reset2_by_version,
            ),
            ("psci_version_register", psci_version_register),
            ("psci_0_1_cpu_on_and_cpu_off", psci_0_1_cpu_on_and_cpu_off),
            ("psci_0_1_ids_on_a_0_2_vcpu", psci_0_1_ids_on_a_0_2_vcpu),
        ],
    )
}
