// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_VCPU_EVENTS`/`KVM_SET_VCPU_EVENTS` as KVM offers them on arm64: a virtual
//! SError set while the guest masks SErrors stays pending (and reads back with its
//! syndrome on a RAS host) until the guest unmasks and takes it with that syndrome; one
//! set while they are unmasked is taken at once; an external data abort is taken at once
//! and never reads back as pending; the capabilities agree; refusals have KVM's errnos.

use kvm_bindings as kb;
use kvm_bindings::kvm_vcpu_events;
use rkvm_selftests::{
    guest_code, host_runs_guests, run_or_skip,
    vmm::{
        core_reg_pc, core_reg_pstate, get_reg, ioctl_raw, ioctl_with,
        nr::{KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS},
        run_to_write, set_reg, sys_reg, TestVm, MEM_BASE, MMIO_BASE,
    },
    Cases, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;

const ESR_EL1: u64 = sys_reg(3, 0, 5, 2, 0);
const FAR_EL1: u64 = sys_reg(3, 0, 6, 0, 0);
const VBAR_EL1: u64 = sys_reg(3, 0, 12, 0, 0);
const PSR_A: u64 = 1 << 8;
const EC_SERROR: u64 = 0x2f;
const SYNDROME: u64 = 0x1_2345;

// The vector table is at MEM_BASE + 0x800; its SError entry for EL1h (+0x380) reports
// ESR_EL1 at MMIO_BASE + 8. The program sets VBAR_EL1, writes MMIO_BASE + 0 (the VMM sets
// events there), then unmasks SErrors.
guest_code!(
    guest_serror,
    "b 3f",
    ".skip 0xb7c",
    "mrs x1, esr_el1",
    "str x1, [x9, #8]",
    "2: b 2b",
    "3:",
    "movz x0, #0x4000, lsl #16",
    "add x0, x0, #0x800",
    "msr vbar_el1, x0",
    "isb",
    "movz x9, #0x1000, lsl #16",
    "str xzr, [x9]",
    "msr daifclr, #4",
    "isb",
    "4: b 4b"
);

fn get_events(v: &kvm_ioctls::VcpuFd) -> Result<kvm_vcpu_events, i32> {
    let mut e = kvm_vcpu_events::default();
    ioctl_with(v.as_raw_fd(), KVM_GET_VCPU_EVENTS, &mut e)?;
    Ok(e)
}

fn set_events(v: &kvm_ioctls::VcpuFd, mut e: kvm_vcpu_events) -> Result<i32, i32> {
    ioctl_with(v.as_raw_fd(), KVM_SET_VCPU_EVENTS, &mut e)
}

fn serror(esr: Option<u64>) -> kvm_vcpu_events {
    let mut e = kvm_vcpu_events::default();
    e.exception.serror_pending = 1;
    if let Some(esr) = esr {
        e.exception.serror_has_esr = 1;
        e.exception.serror_esr = esr;
    }
    e
}

/// Whether the host gives virtual SErrors a syndrome (it has RAS).
fn has_esr(vm: &TestVm) -> bool {
    vm.vm
        .check_extension_raw(u64::from(kb::KVM_CAP_ARM_INJECT_SERROR_ESR))
        != 0
}

fn capabilities() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_serror())?;
    let cap = |n: u32| vm.vm.check_extension_raw(u64::from(n));
    c.eq("KVM_CAP_VCPU_EVENTS", cap(kb::KVM_CAP_VCPU_EVENTS), 1);
    c.eq(
        "KVM_CAP_ARM_INJECT_EXT_DABT",
        cap(kb::KVM_CAP_ARM_INJECT_EXT_DABT),
        1,
    );
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let e = get_events(&v).map_err(|e| format!("GET: errno {e}"))?;
    c.eq(
        "serror_has_esr agrees with KVM_CAP_ARM_INJECT_SERROR_ESR",
        e.exception.serror_has_esr != 0,
        has_esr(&vm),
    );
    c.eq("nothing pending at reset", e.exception.serror_pending, 0);
    c.finish()
}

fn errnos() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_serror())?;
    let raw = vm.vm.create_vcpu(1).map_err(|e| format!("create: {e}"))?;
    c.errno(
        "GET before KVM_ARM_VCPU_INIT",
        get_events(&raw).map(|_| 0),
        libc::ENOEXEC,
    );
    c.errno(
        "SET before KVM_ARM_VCPU_INIT",
        set_events(&raw, serror(None)),
        libc::ENOEXEC,
    );
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let mut padded = serror(None);
    padded.exception.pad[4] = 1;
    c.errno("padding set", set_events(&v, padded), libc::EINVAL);
    let mut reserved = serror(None);
    reserved.reserved[11] = 1;
    c.errno("reserved word set", set_events(&v, reserved), libc::EINVAL);
    c.errno(
        "a syndrome beyond ISS",
        set_events(&v, serror(Some(1 << 25))),
        libc::EINVAL,
    );
    if !has_esr(&vm) {
        c.errno(
            "a syndrome without RAS",
            set_events(&v, serror(Some(1))),
            libc::EINVAL,
        );
    }
    c.eq(
        "refusals leave nothing pending",
        get_events(&v).map(|e| e.exception.serror_pending),
        Ok(0),
    );
    // SAFETY: address 8 is never mapped; the kernel must fail the copy.
    let r = unsafe { ioctl_raw(v.as_raw_fd(), KVM_GET_VCPU_EVENTS, 8) };
    c.errno("GET to a bad pointer", r, libc::EFAULT);
    // SAFETY: as above.
    let r = unsafe { ioctl_raw(v.as_raw_fd(), KVM_SET_VCPU_EVENTS, 8) };
    c.errno("SET from a bad pointer", r, libc::EFAULT);
    c.errno("SET nothing", set_events(&v, kvm_vcpu_events::default()), 0);
    c.finish()
}

fn masked_serror_waits_for_the_guest() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_serror())?;
    let esr = has_esr(&vm);
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.eq("guest ready", run_to_write(&mut v)?, (MMIO_BASE, 0));
    let syndrome = esr.then_some(SYNDROME);
    c.errno("SET a pending SError", set_events(&v, serror(syndrome)), 0);
    let e = get_events(&v).map_err(|e| format!("GET: errno {e}"))?;
    c.eq("reads back pending", e.exception.serror_pending, 1);
    if esr {
        c.eq("with its syndrome", e.exception.serror_esr, SYNDROME);
    }
    // The guest unmasks SErrors and takes it.
    let (addr, esr_el1) = run_to_write(&mut v)?;
    c.eq("the SError vector ran", addr, MMIO_BASE + 8);
    c.eq("ESR_EL1.EC", esr_el1 >> 26, EC_SERROR);
    if esr {
        c.eq("ESR_EL1.ISS", esr_el1 & ((1 << 25) - 1), SYNDROME);
    }
    c.eq(
        "no longer pending",
        get_events(&v).map(|e| e.exception.serror_pending),
        Ok(0),
    );
    c.finish()
}

fn unmasked_serror_and_abort_are_taken_at_once() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_serror())?;
    let esr = has_esr(&vm);
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let vbar = MEM_BASE + 0x800;
    set_reg(&v, VBAR_EL1, vbar)?;
    let pstate = get_reg(&v, core_reg_pstate())?;
    set_reg(&v, core_reg_pstate(), pstate & !PSR_A)?;
    c.errno("SET an SError", set_events(&v, serror(None)), 0);
    c.eq(
        "taken: not pending",
        get_events(&v).map(|e| e.exception.serror_pending),
        Ok(0),
    );
    c.eq(
        "PC at the SError vector",
        get_reg(&v, core_reg_pc())?,
        vbar + 0x380,
    );
    let esr_el1 = get_reg(&v, ESR_EL1)?;
    c.eq("ESR_EL1.EC", esr_el1 >> 26, EC_SERROR);
    // No syndrome given: IDS (bit 24) says the ISS is IMPLEMENTATION DEFINED.
    c.eq("ESR_EL1.IDS", esr_el1 & (1 << 24) != 0, true);
    c.eq(
        "SErrors masked",
        get_reg(&v, core_reg_pstate())? & PSR_A,
        PSR_A,
    );
    if esr {
        set_reg(&v, core_reg_pstate(), pstate & !PSR_A)?;
        c.errno(
            "SET with a syndrome",
            set_events(&v, serror(Some(SYNDROME))),
            0,
        );
        c.eq(
            "ESR_EL1 carries it",
            get_reg(&v, ESR_EL1)? & ((1 << 25) - 1),
            SYNDROME,
        );
    }
    // An external data abort, at the last abort's address (none yet: 0).
    set_reg(&v, core_reg_pc(), MEM_BASE)?;
    let mut dabt = kvm_vcpu_events::default();
    dabt.exception.ext_dabt_pending = 1;
    c.errno("SET an external abort", set_events(&v, dabt), 0);
    c.eq(
        "PC at the synchronous vector",
        get_reg(&v, core_reg_pc())?,
        vbar + 0x200,
    );
    let esr_el1 = get_reg(&v, ESR_EL1)?;
    c.eq("ESR_EL1.EC: data abort", esr_el1 >> 26, 0x25);
    c.eq("ESR_EL1.FSC: external abort", esr_el1 & 0x3f, 0x10);
    c.eq("FAR_EL1", get_reg(&v, FAR_EL1)?, 0);
    c.eq(
        "never pending",
        get_events(&v).map(|e| e.exception.ext_dabt_pending),
        Ok(0),
    );
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_vcpu_events",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("capabilities", capabilities),
            ("errnos", errnos),
            (
                "masked_serror_waits_for_the_guest",
                masked_serror_waits_for_the_guest,
            ),
            (
                "unmasked_serror_and_abort_are_taken_at_once",
                unmasked_serror_and_abort_are_taken_at_once,
            ),
        ],
    )
}
