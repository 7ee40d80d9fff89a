// SPDX-License-Identifier: GPL-2.0

//! The SMCCC filter (`KVM_ARM_VM_SMCCC_CTRL`/`KVM_ARM_VM_SMCCC_FILTER`) as KVM offers it:
//! denied calls answer `NOT_SUPPORTED` in the kernel, forwarded ones reach userspace as
//! `KVM_EXIT_HYPERCALL` (with the SMC and 16-bit flags) and resume after the call with
//! the registers userspace set, the architecture range stays the kernel's, and every
//! refusal has KVM's errno.

use kvm_bindings as kb;
use kvm_bindings::{kvm_device_attr, kvm_smccc_filter};
use kvm_ioctls::VcpuExit;
use rkvm_selftests::{
    guest_code, host_runs_guests, run_or_skip,
    vmm::{core_reg_x, ioctl_with, nr, run_to_event, run_to_write, set_reg, TestVm, MEM_BASE},
    Cases, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;

const PSCI_VERSION: u32 = 0x8400_0000;
const NOT_SUPPORTED: u64 = -1i64 as u64;
const HANDLE: u8 = kb::kvm_smccc_filter_action_KVM_SMCCC_FILTER_HANDLE as u8;
const DENY: u8 = kb::kvm_smccc_filter_action_KVM_SMCCC_FILTER_DENY as u8;
const FWD: u8 = kb::kvm_smccc_filter_action_KVM_SMCCC_FILTER_FWD_TO_USER as u8;

// PSCI_VERSION by HVC, then by SMC, each result written to MMIO_BASE + 0 and + 8;
// SMCCC_VERSION (the reserved architecture range) to + 16; then PSCI SYSTEM_OFF.
guest_code!(
    guest_calls,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x8400, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x8400, lsl #16",
    "smc #0",
    "str x0, [x9, #8]",
    "movz x0, #0x8000, lsl #16",
    "hvc #0",
    "str x0, [x9, #16]",
    "movz x0, #0x0008",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "1: b 1b"
);

fn filter_attr(f: &kvm_smccc_filter) -> kvm_device_attr {
    kvm_device_attr {
        group: kb::KVM_ARM_VM_SMCCC_CTRL,
        attr: kb::KVM_ARM_VM_SMCCC_FILTER as u64,
        addr: f as *const kvm_smccc_filter as u64,
        flags: 0,
    }
}

fn set_filter(vm: &TestVm, base: u32, nr_functions: u32, action: u8) -> Result<i32, i32> {
    let f = kvm_smccc_filter {
        base,
        nr_functions,
        action,
        pad: [0; 15],
    };
    set_attr(vm, filter_attr(&f))
}

fn set_attr(vm: &TestVm, mut a: kvm_device_attr) -> Result<i32, i32> {
    ioctl_with(vm.vm.as_raw_fd(), nr::KVM_SET_DEVICE_ATTR, &mut a)
}

/// Runs to the guest's SYSTEM_OFF, collecting the three results it writes.
fn run_through(v: &mut kvm_ioctls::VcpuFd) -> Result<[u64; 3], String> {
    let mut out = [0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        let (addr, value) = run_to_write(v)?;
        if addr != rkvm_selftests::vmm::MMIO_BASE + 8 * i as u64 {
            return Err(format!("write {i} went to {addr:#x}"));
        }
        *slot = value;
    }
    let (kind, _) = run_to_event(v)?;
    if kind != kb::KVM_SYSTEM_EVENT_SHUTDOWN {
        return Err(format!("system event {kind} instead of SHUTDOWN"));
    }
    Ok(out)
}

fn psci_version_unfiltered() -> Result<u64, String> {
    let vm = TestVm::new(1 << 20, guest_calls())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    Ok(run_through(&mut v)?[0])
}

fn deny() -> TestResult {
    let mut c = Cases::new();
    let version = psci_version_unfiltered()?;
    let vm = TestVm::new(1 << 20, guest_calls())?;
    c.errno(
        "filter PSCI_VERSION: deny",
        set_filter(&vm, PSCI_VERSION, 1, DENY),
        0,
    );
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let got = run_through(&mut v)?;
    c.eq("HVC PSCI_VERSION", got[0], NOT_SUPPORTED);
    c.eq("SMC PSCI_VERSION", got[1], NOT_SUPPORTED);
    c.eq("SMCCC_VERSION is still handled", got[2], 0x1_0001);
    // The rest of PSCI (SYSTEM_OFF, which `run_through` saw) is untouched.
    c.eq(
        "without the filter, PSCI_VERSION answers",
        version != NOT_SUPPORTED,
        true,
    );
    c.finish()
}

/// Runs to a forwarded call; returns its function id and `KVM_HYPERCALL_EXIT_*` flags.
fn run_to_hypercall(v: &mut kvm_ioctls::VcpuFd) -> Result<(u64, u32), String> {
    match v.run().map_err(|e| format!("KVM_RUN: {e}"))? {
        // `longmode` is the low half of `flags` (one union in `struct kvm_run`).
        VcpuExit::Hypercall(h) => Ok((h.nr, h.longmode)),
        other => Err(format!("expected KVM_EXIT_HYPERCALL, got {other:?}")),
    }
}

fn forward_to_user() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_calls())?;
    c.errno(
        "filter PSCI_VERSION: forward",
        set_filter(&vm, PSCI_VERSION, 1, FWD),
        0,
    );
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.eq(
        "HVC exits to userspace",
        run_to_hypercall(&mut v)?,
        (u64::from(PSCI_VERSION), 0),
    );
    // Userspace answers in x0; the guest resumes after the HVC.
    set_reg(&v, core_reg_x(0), 0x1234)?;
    c.eq(
        "the guest sees userspace's answer",
        run_to_write(&mut v)?.1,
        0x1234,
    );
    c.eq(
        "SMC exits with KVM_HYPERCALL_EXIT_SMC",
        run_to_hypercall(&mut v)?,
        (u64::from(PSCI_VERSION), kb::KVM_HYPERCALL_EXIT_SMC),
    );
    set_reg(&v, core_reg_x(0), 0x5678)?;
    c.eq("and resumes after the SMC", run_to_write(&mut v)?.1, 0x5678);
    c.eq(
        "SMCCC_VERSION stays in the kernel",
        run_to_write(&mut v)?.1,
        0x1_0001,
    );
    let (kind, _) = run_to_event(&mut v)?;
    c.eq("SYSTEM_OFF", kind, kb::KVM_SYSTEM_EVENT_SHUTDOWN);
    c.finish()
}

fn errnos() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_calls())?;
    let f = kvm_smccc_filter::default();
    let has = |group, attr| {
        let mut a = kvm_device_attr {
            group,
            attr,
            ..filter_attr(&f)
        };
        ioctl_with(vm.vm.as_raw_fd(), nr::KVM_HAS_DEVICE_ATTR, &mut a)
    };
    c.errno("HAS the filter", has(kb::KVM_ARM_VM_SMCCC_CTRL, 0), 0);
    c.errno(
        "HAS attribute 1",
        has(kb::KVM_ARM_VM_SMCCC_CTRL, 1),
        libc::ENXIO,
    );
    c.errno("HAS group 1", has(1, 0), libc::ENXIO);
    let mut a = filter_attr(&f);
    c.errno(
        "GET on the VM",
        ioctl_with(vm.vm.as_raw_fd(), nr::KVM_GET_DEVICE_ATTR, &mut a),
        libc::EINVAL,
    );
    c.errno(
        "no functions",
        set_filter(&vm, 0x100, 0, DENY),
        libc::EINVAL,
    );
    c.errno("unknown action", set_filter(&vm, 0x100, 1, 3), libc::EINVAL);
    c.errno(
        "wrapping range",
        set_filter(&vm, u32::MAX, 2, DENY),
        libc::EINVAL,
    );
    let padded = kvm_smccc_filter {
        base: 0x100,
        nr_functions: 1,
        action: DENY,
        pad: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    };
    c.errno(
        "padding set",
        set_attr(&vm, filter_attr(&padded)),
        libc::EINVAL,
    );
    let bad = kvm_device_attr {
        addr: 8,
        ..filter_attr(&f)
    };
    c.errno("bad pointer", set_attr(&vm, bad), libc::EFAULT);
    // In order: each row sees the ranges the rows before it inserted.
    for (what, base, nr, action, errno) in [
        (
            "the SMC32 architecture range",
            0x8000_0000,
            1,
            FWD,
            libc::EEXIST,
        ),
        (
            "the SMC64 architecture range",
            0xc000_ff00,
            0x200,
            DENY,
            libc::EEXIST,
        ),
        ("a range", 0xc400_0000, 0x20, DENY, 0),
        ("explicit handle", 0x8600_0000, 1, HANDLE, 0),
        ("an overlapping range", 0xc400_001f, 2, FWD, libc::EEXIST),
        ("the next range", 0xc400_0020, 1, FWD, 0),
    ] {
        c.errno(what, set_filter(&vm, base, nr, action), errno);
    }
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    run_to_write(&mut v)?;
    for (what, nr, errno) in [
        ("after the first run", 1, libc::EBUSY),
        ("after the first run, invalid", 0, libc::EINVAL),
    ] {
        c.errno(what, set_filter(&vm, 0x8500_0000, nr, DENY), errno);
    }
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_smccc_filter",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("deny", deny),
            ("forward_to_user", forward_to_user),
            ("errnos", errnos),
        ],
    )
}
