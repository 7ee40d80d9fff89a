// SPDX-License-Identifier: GPL-2.0

//! `KVM_IOEVENTFD`: KVM's errno for each bad registration, collisions, deassignment, and
//! guest MMIO writes that signal an eventfd in the kernel with no exit to userspace while
//! non-matching writes still exit.

use kvm_bindings as kb;
use kvm_bindings::kvm_ioeventfd;
use rkvm_selftests::{
    check_eq, eventfd, eventfd_count, guest_code, host_runs_guests, run_or_skip,
    vmm::{ioctl_with, nr::KVM_IOEVENTFD, run, run_to_write, Exit, TestVm, MEM_BASE, MMIO_BASE},
    Cases, Fd, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;

const DATAMATCH: u32 = 1 << kb::kvm_ioeventfd_flag_nr_datamatch;
const PIO: u32 = 1 << kb::kvm_ioeventfd_flag_nr_pio;
const DEASSIGN: u32 = 1 << kb::kvm_ioeventfd_flag_nr_deassign;
const KVM_CAP_IOEVENTFD: u64 = kb::KVM_CAP_IOEVENTFD as u64;
const KVM_CAP_IOEVENTFD_ANY_LENGTH: u64 = kb::KVM_CAP_IOEVENTFD_ANY_LENGTH as u64;
const DOORBELL: u64 = MMIO_BASE + 0x100;
const ANYLEN: u64 = MMIO_BASE + 0x200;

fn ioeventfd(
    vm: &TestVm,
    fd: i32,
    addr: u64,
    len: u32,
    flags: u32,
    datamatch: u64,
) -> Result<i32, i32> {
    let mut a = kvm_ioeventfd {
        datamatch,
        addr,
        len,
        fd,
        flags,
        ..Default::default()
    };
    ioctl_with(vm.vm.as_raw_fd(), KVM_IOEVENTFD, &mut a)
}

fn errno_table() -> TestResult {
    let vm = TestVm::new(1 << 16, &[0; 4])?;
    let (e1, e2) = (eventfd()?, eventfd()?);
    let (f1, f2) = (e1.as_raw_fd(), e2.as_raw_fd());
    let not_eventfd = Fd::open("/dev/null").map_err(|e| e.to_string())?;
    let mut c = Cases::new();
    c.eq(
        "KVM_CAP_IOEVENTFD",
        vm.kvm.check_extension_raw(KVM_CAP_IOEVENTFD),
        1,
    );
    c.eq(
        "KVM_CAP_IOEVENTFD_ANY_LENGTH",
        vm.kvm.check_extension_raw(KVM_CAP_IOEVENTFD_ANY_LENGTH),
        1,
    );
    let a = DOORBELL;
    for (what, fd, addr, len, flags, dm, want) in [
        ("length 3", f1, a, 3, 0, 0, libc::EINVAL),
        ("length 16", f1, a, 16, 0, 0, libc::EINVAL),
        ("range wraps", f1, u64::MAX - 2, 4, 0, 0, libc::EINVAL),
        ("unknown flag", f1, a, 4, 1 << 5, 0, libc::EINVAL),
        (
            "length 0 with a data match",
            f1,
            a,
            0,
            DATAMATCH,
            0,
            libc::EINVAL,
        ),
        // The argument checks come before the fd lookup.
        ("bad length and bad fd", -1, a, 3, 0, 0, libc::EINVAL),
        ("fd -1", -1, a, 4, 0, 0, libc::EBADF),
        (
            "not an eventfd",
            not_eventfd.as_raw_fd(),
            a,
            4,
            0,
            0,
            libc::EINVAL,
        ),
        ("4 bytes, value 1", f1, a, 4, DATAMATCH, 1, 0),
        ("same again", f1, a, 4, DATAMATCH, 1, libc::EEXIST),
        (
            "same on another eventfd",
            f2,
            a,
            4,
            DATAMATCH,
            1,
            libc::EEXIST,
        ),
        ("another value", f2, a, 4, DATAMATCH, 2, 0),
        ("any value collides", f2, a, 4, 0, 0, libc::EEXIST),
        ("another length", f2, a, 2, 0, 0, 0),
        ("length 0 collides", f2, a, 0, 0, 0, libc::EEXIST),
        ("another address", f1, a + 8, 8, 0, 0, 0),
        ("PIO is accepted", f1, 0x3f8, 1, PIO, 0, 0),
        (
            "PIO collides only with PIO",
            f1,
            0x3f8,
            1,
            PIO,
            0,
            libc::EEXIST,
        ),
        ("MMIO at the PIO address", f1, 0x3f8, 1, 0, 0, 0),
        (
            "deassign unknown",
            f1,
            a,
            4,
            DEASSIGN | DATAMATCH,
            9,
            libc::ENOENT,
        ),
        (
            "deassign with another eventfd",
            f2,
            a,
            4,
            DEASSIGN | DATAMATCH,
            1,
            libc::ENOENT,
        ),
        (
            "deassign with a bad fd",
            -1,
            a,
            4,
            DEASSIGN | DATAMATCH,
            1,
            libc::EBADF,
        ),
        // Deassign does not validate: an impossible length just matches nothing.
        ("deassign length 3", f1, a, 3, DEASSIGN, 0, libc::ENOENT),
        ("deassign", f1, a, 4, DEASSIGN | DATAMATCH, 1, 0),
        (
            "deassign twice",
            f1,
            a,
            4,
            DEASSIGN | DATAMATCH,
            1,
            libc::ENOENT,
        ),
        ("reassign", f2, a, 4, DATAMATCH, 1, 0),
        ("deassign PIO", f1, 0x3f8, 1, DEASSIGN | PIO, 0, 0),
    ] {
        c.errno(what, ioeventfd(&vm, fd, addr, len, flags, dm), want);
    }
    c.finish()
}

// Writes 0x11 (4 bytes) to the doorbell (matches), 0x22 there (does not), a byte and a
// doubleword to the any-length address, then reports at MMIO_BASE.
guest_code!(
    guest_doorbells,
    "movz x1, #0x1000, lsl #16",
    "mov w2, #0x11",
    "str w2, [x1, #0x100]",
    "mov w2, #0x11",
    "str w2, [x1, #0x100]",
    "mov w2, #0x22",
    "str w2, [x1, #0x100]",
    "strb w2, [x1, #0x200]",
    "str x2, [x1, #0x200]",
    "mov x2, #0x33",
    "str x2, [x1]",
    "1:",
    "b 1b"
);

fn guest_writes_signal_without_exits() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_doorbells())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let (bell, any) = (eventfd()?, eventfd()?);
    let mut c = Cases::new();
    c.errno(
        "doorbell",
        ioeventfd(&vm, bell.as_raw_fd(), DOORBELL, 4, DATAMATCH, 0x11),
        0,
    );
    c.errno(
        "any length",
        ioeventfd(&vm, any.as_raw_fd(), ANYLEN, 0, 0, 0),
        0,
    );
    // Two matching writes never reach userspace; the non-matching one does.
    c.eq(
        "first exit",
        run(&mut v, 0)?,
        Exit::MmioWrite(DOORBELL, 0x22u32.to_le_bytes().to_vec()),
    );
    c.eq("doorbell count", eventfd_count(&bell), 2);
    c.eq("final exit", run_to_write(&mut v)?, (MMIO_BASE, 0x33));
    c.eq("any-length count", eventfd_count(&any), 2);
    c.eq("doorbell untouched by the rest", eventfd_count(&bell), 0);
    c.finish()
}

fn deassigned_doorbell_exits_again() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_doorbells())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let bell = eventfd()?;
    check_eq!(
        ioeventfd(&vm, bell.as_raw_fd(), DOORBELL, 4, DATAMATCH, 0x11),
        Ok(0)
    );
    check_eq!(
        ioeventfd(
            &vm,
            bell.as_raw_fd(),
            DOORBELL,
            4,
            DATAMATCH | DEASSIGN,
            0x11
        ),
        Ok(0)
    );
    // Every write now exits, and closing the eventfd changes nothing for the VM.
    drop(bell);
    for value in [0x11u32, 0x11, 0x22] {
        check_eq!(
            run(&mut v, 0)?,
            Exit::MmioWrite(DOORBELL, value.to_le_bytes().to_vec())
        );
    }
    // An eventfd closed while registered stays alive for the VM (it holds a reference).
    let e = eventfd()?;
    check_eq!(ioeventfd(&vm, e.as_raw_fd(), ANYLEN, 1, 0, 0), Ok(0));
    drop(e);
    // The byte store matches it silently; the doubleword (another length) exits.
    check_eq!(
        run(&mut v, 0)?,
        Exit::MmioWrite(ANYLEN, 0x22u64.to_le_bytes().to_vec())
    );
    Ok(rkvm_selftests::Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_ioeventfd",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("errno_table", errno_table),
            (
                "guest_writes_signal_without_exits",
                guest_writes_signal_without_exits,
            ),
            (
                "deassigned_doorbell_exits_again",
                deassigned_doorbell_exits_again,
            ),
        ],
    )
}
