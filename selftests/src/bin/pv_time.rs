// SPDX-License-Identifier: GPL-2.0

//! PV stolen time (Arm DEN 0057) as KVM offers it: the vCPU attribute
//! `KVM_ARM_VCPU_PVTIME_CTRL`/`PVTIME_IPA` with KVM's errnos, the SMCCC calls that find
//! the structure, the structure zeroed by `PV_TIME_ST`, and stolen time appearing in it
//! after the vCPU's thread waited for its CPU. `KVM_CAP_STEAL_TIME` must agree with the
//! attribute.

use kvm_bindings as kb;
use kvm_bindings::{
    kvm_device_attr, kvm_userspace_memory_region, KVM_CAP_STEAL_TIME, KVM_MEM_READONLY,
};
use rkvm_selftests::{
    guest_code, host_runs_guests, pin_to_cpu, run_or_skip,
    vmm::{
        ioctl_with, nr::KVM_GET_DEVICE_ATTR, run_to_write, GuestMem, TestVm, MEM_BASE, MMIO_BASE,
    },
    Cases, Outcome, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const PVTIME_CTRL: u32 = kb::KVM_ARM_VCPU_PVTIME_CTRL;
const PVTIME_IPA: u64 = kb::KVM_ARM_VCPU_PVTIME_IPA as u64;
const NOT_SUPPORTED: u64 = -1i64 as u64;
/// Where the structure goes: 64-byte aligned, in RAM after the code.
const ST_OFFSET: u64 = 0x8000;
/// A second RAM slot and a read-only slot, for the attribute's memslot checks.
const SLOT1_IPA: u64 = 0x5000_0000;
const RO_IPA: u64 = 0x6000_0000;

// SMCCC_ARCH_FEATURES(PV_TIME_FEATURES), PV_TIME_FEATURES(PV_TIME_ST), PV_TIME_ST, each
// reported at MMIO_BASE + 0/8/16; then, if there is a structure, forever: its first word
// (revision, attributes) at + 24 and stolen_time at + 32.
guest_code!(
    guest_pv_time,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x0001",
    "movk x0, #0x8000, lsl #16",
    "movz x1, #0x0020",
    "movk x1, #0xc500, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x0020",
    "movk x0, #0xc500, lsl #16",
    "movz x1, #0x0021",
    "movk x1, #0xc500, lsl #16",
    "hvc #0",
    "str x0, [x9, #8]",
    "movz x0, #0x0021",
    "movk x0, #0xc500, lsl #16",
    "hvc #0",
    "str x0, [x9, #16]",
    "cmn x0, #1",
    "b.eq 2f",
    "mov x10, x0",
    "1:",
    "ldr x1, [x10]",
    "str x1, [x9, #24]",
    "ldr x1, [x10, #8]",
    "str x1, [x9, #32]",
    "b 1b",
    "2:",
    "b 2b"
);

fn attr(attr: u64, addr: u64) -> kvm_device_attr {
    kvm_device_attr {
        group: PVTIME_CTRL,
        attr,
        addr,
        flags: 0,
    }
}

fn set_ipa(v: &kvm_ioctls::VcpuFd, ipa: u64) -> Result<i32, i32> {
    v.set_device_attr(&attr(PVTIME_IPA, &ipa as *const u64 as u64))
        .map(|_| 0)
        .map_err(|e| e.errno())
}

fn get_ipa(v: &kvm_ioctls::VcpuFd) -> Result<u64, i32> {
    let mut ipa = 0u64;
    let mut a = attr(PVTIME_IPA, &mut ipa as *mut u64 as u64);
    ioctl_with(v.as_raw_fd(), KVM_GET_DEVICE_ATTR, &mut a)?;
    Ok(ipa)
}

fn add_slot(vm: &TestVm, slot: u32, ipa: u64, mem: &GuestMem, flags: u32) -> Result<(), String> {
    let region = kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: ipa,
        memory_size: mem.size as u64,
        userspace_addr: mem.ptr as u64,
    };
    // SAFETY: every caller drops `mem` after the VM.
    unsafe { vm.vm.set_user_memory_region(region) }.map_err(|e| format!("memslot {slot}: {e}"))
}

/// Whether the host offers PV time: the capability and the attribute must agree.
fn supported(c: &mut Cases) -> Result<bool, String> {
    let vm = TestVm::new(1 << 20, guest_pv_time())?;
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let has = v.has_device_attr(&attr(PVTIME_IPA, 0)).is_ok();
    c.eq(
        "KVM_CAP_STEAL_TIME agrees with HAS_DEVICE_ATTR",
        vm.vm.check_extension_raw(KVM_CAP_STEAL_TIME.into()),
        i32::from(has),
    );
    Ok(has)
}

fn attribute_errnos() -> TestResult {
    let mut c = Cases::new();
    if !supported(&mut c)? {
        return Ok(Outcome::Skip(
            "the host kernel has no CONFIG_SCHED_INFO".into(),
        ));
    }
    let slot1 = GuestMem::new(0x1000)?;
    let ro = GuestMem::new(0x1000)?;
    let vm = TestVm::new(1 << 20, guest_pv_time())?;
    add_slot(&vm, 1, SLOT1_IPA, &slot1, 0)?;
    add_slot(&vm, 2, RO_IPA, &ro, KVM_MEM_READONLY)?;
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let errno = |r: Result<(), kvm_ioctls::Error>| r.map(|_| 0).map_err(|e| e.errno());
    c.errno("HAS IPA", errno(v.has_device_attr(&attr(PVTIME_IPA, 0))), 0);
    c.errno(
        "HAS attribute 1",
        errno(v.has_device_attr(&attr(1, 0))),
        libc::ENXIO,
    );
    c.eq("GET before SET", get_ipa(&v), Ok(u64::MAX));
    c.errno(
        "SET attribute 1",
        errno(v.set_device_attr(&attr(1, 0))),
        libc::ENXIO,
    );
    c.errno(
        "SET from a bad pointer",
        errno(v.set_device_attr(&attr(PVTIME_IPA, 8))),
        libc::EFAULT,
    );
    c.errno(
        "SET misaligned",
        set_ipa(&v, MEM_BASE + ST_OFFSET + 8),
        libc::EINVAL,
    );
    c.errno("SET outside memory", set_ipa(&v, MMIO_BASE), libc::EINVAL);
    c.errno("SET in a read-only slot", set_ipa(&v, RO_IPA), libc::EINVAL);
    c.eq("GET after refusals", get_ipa(&v), Ok(u64::MAX));
    c.errno("SET", set_ipa(&v, SLOT1_IPA + 0x40), 0);
    c.eq("GET", get_ipa(&v), Ok(SLOT1_IPA + 0x40));
    c.errno("SET again", set_ipa(&v, MEM_BASE + ST_OFFSET), libc::EEXIST);
    c.errno(
        "SET again, misaligned",
        set_ipa(&v, MEM_BASE + 1),
        libc::EINVAL,
    );
    let mut junk = attr(1, 0);
    c.errno(
        "GET attribute 1",
        ioctl_with(v.as_raw_fd(), KVM_GET_DEVICE_ATTR, &mut junk),
        libc::ENXIO,
    );
    c.errno(
        "GET to a bad pointer",
        ioctl_with(v.as_raw_fd(), KVM_GET_DEVICE_ATTR, &mut attr(PVTIME_IPA, 8)),
        libc::EFAULT,
    );
    drop(vm);
    c.finish()
}

fn calls_without_a_structure() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_pv_time())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let mut c = Cases::new();
    // The service exists; this vCPU has nothing to offer through it.
    c.eq(
        "SMCCC_ARCH_FEATURES(PV_TIME_FEATURES)",
        run_to_write(&mut v)?,
        (MMIO_BASE, 0),
    );
    c.eq(
        "PV_TIME_FEATURES(PV_TIME_ST)",
        run_to_write(&mut v)?,
        (MMIO_BASE + 8, NOT_SUPPORTED),
    );
    c.eq(
        "PV_TIME_ST",
        run_to_write(&mut v)?,
        (MMIO_BASE + 16, NOT_SUPPORTED),
    );
    c.finish()
}

/// The calling thread's scheduler run delay in nanoseconds (`/proc/thread-self/schedstat`).
fn run_delay() -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")
        .map_err(|e| format!("schedstat: {e}"))?;
    s.split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("schedstat: {s:?}"))
}

/// Makes the calling thread wait runnable for at least `min`: a spinner pinned to the
/// same CPU competes with it while it yields.
fn get_preempted(min: Duration) -> Result<u64, String> {
    let start = run_delay()?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        while run_delay().unwrap_or(u64::MAX) - start < min.as_nanos() as u64
            && Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    Ok(run_delay()? - start)
}

fn stolen_time_reaches_the_guest() -> TestResult {
    let mut c = Cases::new();
    if !supported(&mut c)? {
        return Ok(Outcome::Skip(
            "the host kernel has no CONFIG_SCHED_INFO".into(),
        ));
    }
    pin_to_cpu(0)?;
    let vm = TestVm::new(1 << 20, guest_pv_time())?;
    // Garbage that PV_TIME_ST must clear.
    vm.mem.write(ST_OFFSET as usize, &[0xa5; 64]);
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.errno("SET", set_ipa(&v, MEM_BASE + ST_OFFSET), 0);
    c.eq(
        "SMCCC_ARCH_FEATURES(PV_TIME_FEATURES)",
        run_to_write(&mut v)?,
        (MMIO_BASE, 0),
    );
    c.eq(
        "PV_TIME_FEATURES(PV_TIME_ST)",
        run_to_write(&mut v)?,
        (MMIO_BASE + 8, 0),
    );
    let before_st = run_delay()?;
    c.eq(
        "PV_TIME_ST",
        run_to_write(&mut v)?,
        (MMIO_BASE + 16, MEM_BASE + ST_OFFSET),
    );
    // Zeroed by PV_TIME_ST, except stolen_time (word 1): a put and reload of the vCPU
    // between the call and its MMIO exit may already have added what the thread waited,
    // as on KVM (kvm_update_stolen_time at load).
    let zeroed = (0..8)
        .filter(|&i| i != 1)
        .all(|i| vm.mem.read_u64(ST_OFFSET as usize + 8 * i) == 0);
    c.eq("structure zeroed", zeroed, true);
    let early = vm.mem.read_u64(ST_OFFSET as usize + 8);
    let waited = run_delay()? - before_st;
    if early > waited {
        c.fail(format!(
            "stolen time {early} ns right after PV_TIME_ST exceeds the {waited} ns run delay"
        ));
    }
    c.eq(
        "revision and attributes",
        run_to_write(&mut v)?,
        (MMIO_BASE + 24, 0),
    );
    let (_, first) = run_to_write(&mut v)?;
    // Counted from PV_TIME_ST: never more than the thread waited since just before it.
    let waited = run_delay()? - before_st;
    if first > waited {
        c.fail(format!(
            "stolen time {first} ns exceeds the {waited} ns run delay since PV_TIME_ST"
        ));
    }
    let delay = get_preempted(Duration::from_millis(20))?;
    if delay < 20_000_000 {
        return Ok(Outcome::Skip(format!(
            "could not make the vCPU thread wait (run delay {delay} ns)"
        )));
    }
    c.eq(
        "revision and attributes again",
        run_to_write(&mut v)?,
        (MMIO_BASE + 24, 0),
    );
    let (_, second) = run_to_write(&mut v)?;
    if second.wrapping_sub(first) < delay {
        c.fail(format!(
            "stolen time grew by {} ns after a {delay} ns wait",
            second.wrapping_sub(first)
        ));
    }
    c.eq(
        "host view of stolen_time",
        vm.mem.read_u64(ST_OFFSET as usize + 8) >= second,
        true,
    );
    c.finish()
}

fn structure_memslot_removed() -> TestResult {
    let mut c = Cases::new();
    if !supported(&mut c)? {
        return Ok(Outcome::Skip(
            "the host kernel has no CONFIG_SCHED_INFO".into(),
        ));
    }
    let slot1 = GuestMem::new(0x1000)?;
    let vm = TestVm::new(1 << 20, guest_pv_time())?;
    add_slot(&vm, 1, SLOT1_IPA, &slot1, 0)?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    c.errno("SET", set_ipa(&v, SLOT1_IPA), 0);
    // The VMM takes the memory away: updates and PV_TIME_ST's zeroing find nothing to
    // write, which is not an error (as on KVM); the guest's own access is then MMIO.
    let gone = kvm_userspace_memory_region {
        slot: 1,
        ..Default::default()
    };
    // SAFETY: deletes a slot.
    unsafe { vm.vm.set_user_memory_region(gone) }.map_err(|e| format!("delete slot 1: {e}"))?;
    c.eq(
        "SMCCC_ARCH_FEATURES(PV_TIME_FEATURES)",
        run_to_write(&mut v)?,
        (MMIO_BASE, 0),
    );
    c.eq(
        "PV_TIME_FEATURES(PV_TIME_ST)",
        run_to_write(&mut v)?,
        (MMIO_BASE + 8, 0),
    );
    c.eq(
        "PV_TIME_ST",
        run_to_write(&mut v)?,
        (MMIO_BASE + 16, SLOT1_IPA),
    );
    match rkvm_selftests::vmm::run(&mut v, 0)? {
        rkvm_selftests::vmm::Exit::MmioRead(addr, 8) if addr == SLOT1_IPA => {}
        other => c.fail(format!(
            "expected an MMIO read of the structure, got {other:?}"
        )),
    }
    drop(vm);
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_pv_time",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("attribute_errnos", attribute_errnos),
            ("calls_without_a_structure", calls_without_a_structure),
            (
                "stolen_time_reaches_the_guest",
                stolen_time_reaches_the_guest,
            ),
            ("structure_memslot_removed", structure_memslot_removed),
        ],
    )
}
