// SPDX-License-Identifier: GPL-2.0

//! The errno of each bad argument, as KVM returns it: VM types, memory regions, vCPU
//! creation and initialisation, ONE_REG, vCPU state, unknown commands, bad user pointers
//! and fds used by another process.
//!
//! The expectations are KVM's (`virt/kvm/kvm_main.c`, `arch/arm64/kvm/`), not rkvm's:
//! a case that differs is a divergence to fix or to document. Each test is a table of
//! cases that all run, so one run lists every mismatch of an area. Raw ioctls are used
//! where kvm-ioctls would refuse the argument or panic.

use kvm_bindings::{
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2, kvm_mp_state, kvm_one_reg, kvm_regs,
    kvm_userspace_memory_region, kvm_userspace_memory_region2, kvm_vcpu_init,
    KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_CAP_ARM_VM_IPA_SIZE, KVM_CAP_MAX_VCPU_ID,
    KVM_CAP_NR_MEMSLOTS, KVM_CAP_USER_MEMORY, KVM_MEM_READONLY, KVM_MP_STATE_RUNNABLE,
    KVM_MP_STATE_STOPPED, KVM_REG_SIZE_MASK as SIZE_MASK, KVM_REG_SIZE_U128 as U128,
    KVM_REG_SIZE_U32 as U32, KVM_REG_SIZE_U64 as U64, KVM_SYSTEM_EVENT_SHUTDOWN as SHUTDOWN,
};
use kvm_ioctls::VcpuFd;
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    errno_label, guest_code, host_runs_guests, run_or_skip, Cases, Fd, KernelLog, TestResult,
    DEV_RKVM,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const EINVAL: i32 = libc::EINVAL;
const EEXIST: i32 = libc::EEXIST;
const EFAULT: i32 = libc::EFAULT;
const ENOENT: i32 = libc::ENOENT;

const PSCI: u32 = 1 << KVM_ARM_VCPU_PSCI_0_2;
const POWER_OFF: u32 = 1 << KVM_ARM_VCPU_POWER_OFF;

/// A user address with nothing mapped, and a kernel one: both must give `EFAULT`.
const BAD_PTRS: [u64; 2] = [8, 0xffff_8000_0000_0000];

/// Words (u32) in `struct kvm_regs`: core offsets from here on are past its end.
const KVM_REGS_WORDS: u64 = (std::mem::size_of::<kvm_regs>() / 4) as u64;
/// PSTATE after a vCPU reset: EL1h, DAIF masked.
const RESET_PSTATE: u64 = 0x3c5;

fn core_id(word: u64, size: u64) -> u64 {
    0x6000_0000_0010_0000 | size | word
}

guest_code!(
    guest_off,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Read 0x6000_0000 and report the value through MMIO, forever.
guest_code!(
    guest_read_loop,
    "movz x1, #0x1000, lsl #16",
    "movz x5, #0x6000, lsl #16",
    "1: ldr x2, [x5]",
    "str x2, [x1]",
    "b 1b"
);

fn create_vm(sys: &Fd, vm_type: u64) -> Result<OwnedFd, i32> {
    let fd = sys.ioctl(nr::KVM_CREATE_VM, vm_type)?;
    // SAFETY: a new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn create_vcpu(vm: RawFd, id: u64) -> Result<OwnedFd, i32> {
    // SAFETY: KVM_CREATE_VCPU takes an integer.
    let fd = unsafe { ioctl_raw(vm, nr::KVM_CREATE_VCPU, id) }?;
    // SAFETY: a new fd, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn region(vm: RawFd, slot: u32, flags: u32, gpa: u64, size: u64, uaddr: u64) -> Result<i32, i32> {
    let mut r = kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: uaddr,
    };
    ioctl_with(vm, nr::KVM_SET_USER_MEMORY_REGION, &mut r)
}

fn region2(vm: RawFd, slot: u32, flags: u32, gpa: u64, size: u64, uaddr: u64) -> Result<i32, i32> {
    let mut r = kvm_userspace_memory_region2 {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: uaddr,
        ..Default::default()
    };
    ioctl_with(vm, nr::KVM_SET_USER_MEMORY_REGION2, &mut r)
}

fn vcpu_init(vcpu: RawFd, target: u32, features: [u32; 7]) -> Result<i32, i32> {
    let mut init = kvm_vcpu_init { target, features };
    ioctl_with(vcpu, nr::KVM_ARM_VCPU_INIT, &mut init)
}

fn preferred_target(vm: RawFd) -> Result<u32, String> {
    let mut init = kvm_vcpu_init::default();
    ioctl_with(vm, nr::KVM_ARM_PREFERRED_TARGET, &mut init)
        .map_err(|e| format!("KVM_ARM_PREFERRED_TARGET: {}", errno_label(e)))?;
    Ok(init.target)
}

fn run_raw(vcpu: RawFd, arg: u64) -> Result<i32, i32> {
    // SAFETY: KVM_RUN takes no pointer.
    unsafe { ioctl_raw(vcpu, nr::KVM_RUN, arg) }
}

/// Room for any register size an id can name (up to 2048 bits), so a wrong size in a
/// malformed id can never make the kernel write past the buffer.
type RegBuf = [u8; 256];

fn get_one(vcpu: RawFd, id: u64) -> (Result<i32, i32>, u64) {
    let mut buf: RegBuf = [0; 256];
    let mut reg = kvm_one_reg {
        id,
        addr: buf.as_mut_ptr() as u64,
    };
    let r = ioctl_with(vcpu, nr::KVM_GET_ONE_REG, &mut reg);
    let mut v = [0; 8];
    v.copy_from_slice(&buf[..8]);
    (r, u64::from_le_bytes(v))
}

fn set_one(vcpu: RawFd, id: u64, value: u64) -> Result<i32, i32> {
    let mut buf: RegBuf = [0; 256];
    buf[..8].copy_from_slice(&value.to_le_bytes());
    let mut reg = kvm_one_reg {
        id,
        addr: buf.as_mut_ptr() as u64,
    };
    ioctl_with(vcpu, nr::KVM_SET_ONE_REG, &mut reg)
}

/// KVM_GET_REG_LIST with `n` entries offered: the result and the `n` the kernel wrote back.
fn reg_list(vcpu: RawFd, n: u64) -> (Result<i32, i32>, u64) {
    let (r, buf) = reg_list_buf(vcpu, n);
    (r, buf[0])
}

/// KVM_GET_REG_LIST into a buffer with room for `n`: the result and the buffer (the
/// count, then the ids).
fn reg_list_buf(vcpu: RawFd, n: u64) -> (Result<i32, i32>, Vec<u64>) {
    let mut buf = vec![0u64; 1 + 4096];
    assert!(n <= 4096);
    buf[0] = n;
    // SAFETY: the kernel writes the header and at most `n` entries, which `buf` holds.
    let r = unsafe { ioctl_raw(vcpu, nr::KVM_GET_REG_LIST, buf.as_mut_ptr() as u64) };
    (r, buf)
}

fn set_mp_state(vcpu: RawFd, mp_state: u32) -> Result<i32, i32> {
    ioctl_with(vcpu, nr::KVM_SET_MP_STATE, &mut kvm_mp_state { mp_state })
}

fn get_mp_state(vcpu: RawFd) -> Result<u32, i32> {
    let mut s = kvm_mp_state::default();
    ioctl_with(vcpu, nr::KVM_GET_MP_STATE, &mut s).map(|_| s.mp_state)
}

/// Whether the host runs AArch32 at EL0: the arm64 `personality()` refuses PER_LINUX32
/// otherwise, with the same test KVM uses for an AArch32 EL0 PSTATE.
fn host_has_aarch32_el0() -> bool {
    const PER_LINUX32: libc::c_ulong = 0x0008;
    // SAFETY: personality() only changes this process's execution domain, restored below.
    let old = unsafe { libc::personality(PER_LINUX32) };
    if old < 0 {
        return false;
    }
    // SAFETY: as above.
    unsafe { libc::personality(old as libc::c_ulong) };
    true
}

/// A VM with 64 KiB of RAM holding `code`, and vCPU 0 initialised at its start.
fn vm_and_vcpu(code: &[u8]) -> Result<(TestVm, VcpuFd), String> {
    let vm = TestVm::new(1 << 16, code)?;
    let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    Ok((vm, vcpu))
}

fn create_vm_types() -> TestResult {
    let sys = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    let max_ipa = sys
        .ioctl(nr::KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE.into())
        .unwrap_or(0) as u64;
    let mut c = Cases::new();
    c.eq(
        "KVM_CAP_ARM_VM_IPA_SIZE covers the 40-bit default",
        max_ipa >= 40,
        true,
    );
    let mut try_type = |what: &str, t: u64, want: i32| {
        c.errno(
            &format!("KVM_CREATE_VM type {t:#x} ({what})"),
            create_vm(&sys, t).map(|_| 0),
            want,
        )
    };
    try_type("KVM_VM_TYPE_ARM_PROTECTED without pKVM", 1 << 31, EINVAL);
    try_type("IPA size 31, below the 32-bit minimum", 31, EINVAL);
    try_type("IPA size 1", 1, EINVAL);
    try_type(
        "IPA size one past KVM_CAP_ARM_VM_IPA_SIZE",
        max_ipa + 1,
        EINVAL,
    );
    if max_ipa < 49 {
        try_type("IPA size 49", 49, EINVAL);
    }
    try_type("IPA size 255", 255, EINVAL);
    try_type("unknown type bit 8", (1 << 8) | 40, EINVAL);
    try_type("unknown type bit 32", 1 << 32, EINVAL);
    try_type("default 40-bit IPA", 0, 0);
    try_type("IPA size 32", 32, 0);
    try_type("IPA size 36", 36, 0);
    try_type("IPA size KVM_CAP_ARM_VM_IPA_SIZE", max_ipa, 0);
    c.finish()
}

fn memory_region_errors() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 20, guest_read_loop())?; // slot 0: MEM_BASE, 1 MiB
    let fd = vm.vm.as_raw_fd();
    let data = GuestMem::new(0x1_0000)?;
    data.write_u64(0, 0xfeed);
    let d = data.ptr as u64;
    let nr_slots = vm.vm.check_extension_raw(KVM_CAP_NR_MEMSLOTS as _) as u32;
    const S1: u64 = 0x5000_0000;
    c.errno(
        "slot 1 at 0x5000_0000, 64 KiB",
        region(fd, 1, 0, S1, 0x1_0000, d),
        0,
    );

    // Malformed requests (kvm_set_memory_region's sanity checks).
    c.errno(
        "unaligned guest_phys_addr",
        region(fd, 2, 0, 0x7000_0800, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "unaligned memory_size",
        region(fd, 2, 0, 0x7000_0000, 0x1800, d),
        EINVAL,
    );
    c.errno(
        "unaligned userspace_addr",
        region(fd, 2, 0, 0x7000_0000, 0x1000, d + 0x10),
        EINVAL,
    );
    c.errno(
        "userspace_addr past the user address space",
        region(fd, 2, 0, 0x7000_0000, 0x2000, 0x00ff_ffff_ffff_f000),
        EINVAL,
    );
    c.errno(
        "tagged userspace_addr",
        region(fd, 2, 0, 0x7000_0000, 0x1000, d | (0x5a << 56)),
        EINVAL,
    );
    c.errno(
        "guest range wrapping around",
        region(fd, 2, 0, 0xffff_ffff_ffff_f000, 0x2000, d),
        EINVAL,
    );
    c.errno(
        "more than KVM_MEM_MAX_NR_PAGES pages",
        region(fd, 2, 0, 0, 1 << 43, 0x1000_0000),
        EINVAL,
    );

    // Flags: KVM_MEM_LOG_DIRTY_PAGES is accepted (its use: the dirty_log program).
    c.errno(
        "flag KVM_MEM_LOG_DIRTY_PAGES",
        region(fd, 2, 1 << 0, 0x7000_0000, 0x1000, d),
        0,
    );
    c.errno("delete slot 2 again", region(fd, 2, 0, 0, 0, 0), 0);
    c.errno(
        "flag KVM_MEM_GUEST_MEMFD through the v1 ioctl",
        region(fd, 2, 1 << 2, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "unknown flag 1 << 5",
        region(fd, 2, 1 << 5, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "unknown flag 1 << 31",
        region(fd, 2, 1 << 31, 0x7000_0000, 0x1000, d),
        EINVAL,
    );

    // Slot ids: below KVM_CAP_NR_MEMSLOTS, address space 0 only (arm64 has one).
    c.errno(
        "slot id KVM_CAP_NR_MEMSLOTS",
        region(fd, nr_slots, 0, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "slot id 0x7fff",
        region(fd, 0x7fff, 0, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "slot id 0xffff",
        region(fd, 0xffff, 0, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "address space 1",
        region(fd, (1 << 16) | 2, 0, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "address space 0x8000",
        region(fd, 0x8000_0002, 0, 0x7000_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "slot id KVM_CAP_NR_MEMSLOTS - 1",
        region(fd, nr_slots - 1, 0, 0x7000_0000, 0x1000, d),
        0,
    );
    c.errno(
        "deleting it",
        region(fd, nr_slots - 1, 0, 0x7000_0000, 0, d),
        0,
    );

    // Overlaps.
    c.errno(
        "inside slot 0",
        region(fd, 2, 0, MEM_BASE + 0x8_0000, 0x1000, d),
        EEXIST,
    );
    c.errno(
        "covering slot 0",
        region(fd, 2, 0, MEM_BASE - 0x1000, 0x10_2000, d),
        EEXIST,
    );
    c.errno(
        "over the first page of slot 1",
        region(fd, 2, 0, S1 - 0x1000, 0x2000, d),
        EEXIST,
    );
    c.errno(
        "over the last page of slot 1",
        region(fd, 2, 0, S1 + 0xf000, 0x2000, d),
        EEXIST,
    );
    c.errno(
        "adjacent to slot 1, same backing",
        region(fd, 2, 0, S1 + 0x1_0000, 0x1000, d),
        0,
    );
    c.errno("deleting it", region(fd, 2, 0, S1 + 0x1_0000, 0, d), 0);

    // The IPA space (arm64's kvm_arch_prepare_memory_region): EFAULT. kvm-ioctls makes
    // VMs with the host's largest IPA, so these use raw VMs of the default 40 bits and of
    // 36 bits.
    let sys = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    for (bits, vm_type) in [(40u32, 0u64), (36, 36)] {
        let small = match create_vm(&sys, vm_type) {
            Ok(small) => small,
            Err(e) => {
                c.fail(format!("KVM_CREATE_VM type {vm_type}: {}", errno_label(e)));
                continue;
            }
        };
        let (s, top) = (small.as_raw_fd(), 1u64 << bits);
        c.errno(
            &format!("base 1 << {bits} in a {bits}-bit VM"),
            region(s, 0, 0, top, 0x1000, d),
            EFAULT,
        );
        c.errno(
            &format!("straddling the {bits}-bit limit"),
            region(s, 0, 0, top - 0x1000, 0x2000, d),
            EFAULT,
        );
        c.errno(
            &format!("high in the IPA space of a {bits}-bit VM"),
            region(s, 0, 0, 1 << 52, 0x1000, d),
            EFAULT,
        );
        c.errno(
            &format!("last page below the {bits}-bit limit"),
            region(s, 0, 0, top - 0x1000, 0x1000, d),
            0,
        );
        c.errno(
            &format!("moving it past the {bits}-bit limit"),
            region(s, 0, 0, top, 0x1000, d),
            EFAULT,
        );
        c.errno(
            &format!("overlap wins over the {bits}-bit limit"),
            region(s, 1, 0, top - 0x1000, 0x2000, d),
            EEXIST,
        );
    }

    // Changes to an existing slot: only its address (a move) or non-READONLY flags.
    c.errno(
        "deleting a slot that does not exist",
        region(fd, 7, 0, 0, 0, 0),
        EINVAL,
    );
    c.errno("growing slot 1", region(fd, 1, 0, S1, 0x2_0000, d), EINVAL);
    c.errno("shrinking slot 1", region(fd, 1, 0, S1, 0x1000, d), EINVAL);
    c.errno(
        "changing the backing of slot 1",
        region(fd, 1, 0, S1, 0x1_0000, d + 0x1000),
        EINVAL,
    );
    c.errno(
        "making slot 1 read-only",
        region(fd, 1, KVM_MEM_READONLY, S1, 0x1_0000, d),
        EINVAL,
    );
    c.errno(
        "restating slot 1 as it is",
        region(fd, 1, 0, S1, 0x1_0000, d),
        0,
    );
    c.errno(
        "moving slot 1 onto slot 0",
        region(fd, 1, 0, MEM_BASE, 0x1_0000, d),
        EEXIST,
    );

    // A move takes effect for the guest, and leaves nothing mapped at the old address.
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let bytes = |v: u64| v.to_le_bytes().to_vec();
    c.eq(
        "guest read of 0x6000_0000 before the move",
        run(&mut vcpu, 0x1111)?,
        Exit::MmioRead(0x6000_0000, 8),
    );
    c.eq(
        "its report",
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, bytes(0x1111)),
    );
    c.errno(
        "moving slot 1 to 0x6000_0000",
        region(fd, 1, 0, 0x6000_0000, 0x1_0000, d),
        0,
    );
    c.eq(
        "guest read after the move",
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, bytes(0xfeed)),
    );
    c.errno(
        "moving slot 1 back to 0x5000_0000",
        region(fd, 1, 0, S1, 0x1_0000, d),
        0,
    );
    c.eq(
        "guest read after moving back",
        run(&mut vcpu, 0x2222)?,
        Exit::MmioRead(0x6000_0000, 8),
    );
    c.eq(
        "its report",
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, bytes(0x2222)),
    );

    // Delete, then create again with other memory.
    c.errno("deleting slot 1", region(fd, 1, 0, S1, 0, d), 0);
    c.errno("deleting slot 1 again", region(fd, 1, 0, S1, 0, d), EINVAL);
    let other = GuestMem::new(0x1000)?;
    other.write_u64(0, 0xbeef);
    c.errno(
        "re-creating slot 1 at 0x6000_0000 with other memory",
        region(fd, 1, 0, 0x6000_0000, 0x1000, other.ptr as u64),
        0,
    );
    c.eq(
        "guest read of the new slot",
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, bytes(0xbeef)),
    );

    // KVM_SET_USER_MEMORY_REGION2 (the 160-byte struct) takes the same requests.
    c.errno(
        "REGION2: creating slot 3",
        region2(fd, 3, 0, 0x7000_0000, 0x1000, d),
        0,
    );
    c.errno(
        "REGION2: unknown flag 1 << 5",
        region2(fd, 4, 1 << 5, 0x7100_0000, 0x1000, d),
        EINVAL,
    );
    c.errno(
        "REGION2: overlapping slot 3",
        region2(fd, 4, 0, 0x7000_0000, 0x1000, d),
        EEXIST,
    );
    c.errno(
        "REGION2: unaligned memory_size",
        region2(fd, 4, 0, 0x7100_0000, 0x10, d),
        EINVAL,
    );
    c.errno(
        "REGION2: deleting slot 3",
        region2(fd, 3, 0, 0x7000_0000, 0, d),
        0,
    );
    drop(vcpu);
    drop(vm);
    c.finish()
}

fn create_vcpu_errors() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 16, guest_off())?;
    let fd = vm.vm.as_raw_fd();
    let max_id = vm.vm.check_extension_raw(KVM_CAP_MAX_VCPU_ID as _) as u64;
    // A refused KVM_CREATE_VCPU leaves no trace; a created one logs nothing either.
    let mut log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    let mut keep = Vec::new();
    let create = |c: &mut Cases, what: &str, id: u64, want: i32| -> Option<OwnedFd> {
        let r = create_vcpu(fd, id);
        let what = format!("KVM_CREATE_VCPU {id:#x} ({what})");
        c.errno(&what, r.as_ref().map(|_| 0).map_err(|e| *e), want);
        r.ok()
    };
    keep.extend(create(&mut c, "id KVM_CAP_MAX_VCPU_ID", max_id, EINVAL));
    keep.extend(create(&mut c, "id 1 << 32", 1 << 32, EINVAL));
    keep.extend(create(&mut c, "id u64::MAX", u64::MAX, EINVAL));
    keep.extend(create(&mut c, "first", 0, 0));
    keep.extend(create(&mut c, "duplicate", 0, EEXIST));
    keep.extend(create(&mut c, "id KVM_CAP_MAX_VCPU_ID - 1", max_id - 1, 0));
    keep.extend(create(
        &mut c,
        "duplicate of the last id",
        max_id - 1,
        EEXIST,
    ));
    // Closing a vCPU fd does not remove the vCPU from its VM.
    drop(create(&mut c, "id 5", 5, 0));
    keep.extend(create(
        &mut c,
        "id 5 again, after closing its fd",
        5,
        EEXIST,
    ));
    c.eq(
        "kernel messages during KVM_CREATE_VCPU",
        log.new_messages(),
        Vec::<String>::new(),
    );
    drop(keep);
    c.finish()
}

fn vcpu_init_and_run_order() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 16, guest_off())?;
    let fd = vm.vm.as_raw_fd();
    let mut vcpu = vm
        .vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let v = vcpu.as_raw_fd();
    let target = preferred_target(fd)?;
    let f = |f0: u32| [f0, 0, 0, 0, 0, 0, 0];

    // Before KVM_ARM_VCPU_INIT.
    c.errno("KVM_RUN before init", run_raw(v, 0), libc::ENOEXEC);
    c.errno("KVM_RUN with argument 1 before init", run_raw(v, 1), EINVAL);
    c.errno(
        "KVM_GET_ONE_REG before init",
        get_one(v, core_reg_pc()).0,
        libc::ENOEXEC,
    );
    c.errno(
        "KVM_SET_ONE_REG before init",
        set_one(v, core_reg_pc(), MEM_BASE),
        libc::ENOEXEC,
    );
    c.errno(
        "KVM_GET_REG_LIST before init",
        reg_list(v, 4096).0,
        libc::ENOEXEC,
    );

    // Refused inits (kvm_vcpu_set_target, kvm_vcpu_init_check_features): unknown
    // features are ENOENT, known ones the host does not offer EINVAL.
    c.errno(
        "init with target 0x1234",
        vcpu_init(v, 0x1234, f(PSCI)),
        EINVAL,
    );
    c.errno(
        "init with feature bit 3 (PMUv3, not offered)",
        vcpu_init(v, target, f(PSCI | 1 << 3)),
        EINVAL,
    );
    c.errno(
        "init with feature bit 20 (unknown)",
        vcpu_init(v, target, f(PSCI | 1 << 20)),
        ENOENT,
    );
    let mut high = f(PSCI);
    high[1] = 1;
    c.errno(
        "init with features[1] = 1",
        vcpu_init(v, target, high),
        ENOENT,
    );
    high[1] = 0;
    high[6] = 1 << 31;
    c.errno(
        "init with features[6] = 1 << 31",
        vcpu_init(v, target, high),
        ENOENT,
    );
    c.errno(
        "KVM_RUN after the refused inits",
        run_raw(v, 0),
        libc::ENOEXEC,
    );

    // Init, then re-init: a reset, with the features fixed by the first init.
    c.errno("init with PSCI 0.2", vcpu_init(v, target, f(PSCI)), 0);
    c.errno("set PC", set_one(v, core_reg_pc(), MEM_BASE + 0x100), 0);
    c.errno("set X0", set_one(v, core_reg_x(0), 5), 0);
    c.errno(
        "re-init with the same features",
        vcpu_init(v, target, f(PSCI)),
        0,
    );
    c.eq("PC after re-init", get_one(v, core_reg_pc()), (Ok(0), 0));
    c.eq("X0 after re-init", get_one(v, core_reg_x(0)), (Ok(0), 0));
    c.eq(
        "PSTATE after re-init",
        get_one(v, core_reg_pstate()),
        (Ok(0), RESET_PSTATE),
    );
    c.errno(
        "re-init adding POWER_OFF",
        vcpu_init(v, target, f(PSCI | POWER_OFF)),
        0,
    );
    c.eq(
        "MP state after POWER_OFF",
        get_mp_state(v),
        Ok(KVM_MP_STATE_STOPPED),
    );
    c.errno(
        "re-init without PSCI 0.2",
        vcpu_init(v, target, f(0)),
        EINVAL,
    );
    c.errno(
        "re-init with PSCI 0.2, powered on",
        vcpu_init(v, target, f(PSCI)),
        0,
    );
    c.eq(
        "MP state after that",
        get_mp_state(v),
        Ok(KVM_MP_STATE_RUNNABLE),
    );

    // KVM keeps one feature set per VM (kvm->arch.vcpu_features): another vCPU must
    // match it; POWER_OFF is per init and does not count.
    let v1 = create_vcpu(fd, 1).map_err(|e| format!("KVM_CREATE_VCPU 1: {}", errno_label(e)))?;
    c.errno(
        "vCPU 1 init without PSCI 0.2",
        vcpu_init(v1.as_raw_fd(), target, f(0)),
        EINVAL,
    );
    c.errno(
        "vCPU 1 init with PSCI 0.2 and POWER_OFF",
        vcpu_init(v1.as_raw_fd(), target, f(PSCI | POWER_OFF)),
        0,
    );

    // KVM_RUN takes no argument.
    c.errno("set PC", set_one(v, core_reg_pc(), MEM_BASE), 0);
    c.errno("KVM_RUN with argument 1", run_raw(v, 1), EINVAL);
    c.errno(
        "KVM_RUN with argument u64::MAX",
        run_raw(v, u64::MAX),
        EINVAL,
    );
    c.eq("KVM_RUN", run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    c.finish()
}

fn one_reg_errors() -> TestResult {
    let mut c = Cases::new();
    let (_vm, mut vcpu) = vm_and_vcpu(guest_off())?;
    let v = vcpu.as_raw_fd();
    let both = |c: &mut Cases, what: &str, id: u64, want: i32| {
        c.errno(&format!("GET {what} ({id:#x})"), get_one(v, id).0, want);
        c.errno(&format!("SET {what} ({id:#x})"), set_one(v, id, 0), want);
    };

    // Malformed core ids: the size must be the register's, the offset its first word
    // (core_reg_size_from_offset); offsets past struct kvm_regs are ENOENT.
    both(&mut c, "X0 as U32", core_id(0, U32), EINVAL);
    both(&mut c, "X0 as U128", core_id(0, U128), EINVAL);
    both(&mut c, "word 1 of X0", core_id(1, U64), EINVAL);
    both(&mut c, "V0 as U64", core_id(84, U64), EINVAL);
    both(&mut c, "word 2 of V0", core_id(86, U128), EINVAL);
    both(&mut c, "FPSR as U64", core_id(212, U64), EINVAL);
    both(&mut c, "padding word 82", core_id(82, U64), EINVAL);
    both(
        &mut c,
        "core offset past struct kvm_regs",
        core_id(KVM_REGS_WORDS, U64),
        ENOENT,
    );
    both(&mut c, "core offset 0xffff", core_id(0xffff, U64), ENOENT);
    both(
        &mut c,
        "another architecture (x86)",
        0x2030_0000_0010_0000,
        EINVAL,
    );
    both(&mut c, "bit 40 set", core_id(0, U64) | (1 << 40), EINVAL);

    // Well-formed ids naming no register: ENOENT, whatever the group.
    both(
        &mut c,
        "sysreg (3, 7, 15, 15, 7)",
        sys_reg(3, 7, 15, 15, 7),
        ENOENT,
    );
    both(
        &mut c,
        "sysreg (1, 0, 7, 5, 0), an instruction",
        sys_reg(1, 0, 7, 5, 0),
        ENOENT,
    );
    both(
        &mut c,
        "TPIDR_EL1 as U32",
        sys_reg(3, 0, 13, 0, 4) & !SIZE_MASK | U32,
        ENOENT,
    );
    both(&mut c, "unknown group 0x18", 0x6030_0000_0018_0000, ENOENT);
    both(
        &mut c,
        "firmware register 0xff",
        0x6030_0000_0014_00ff,
        ENOENT,
    );
    both(&mut c, "PSCI_VERSION as U32", 0x6020_0000_0014_0000, ENOENT);

    // PSTATE: an AArch64 vCPU without NV takes EL0t, EL1t, EL1h, and AArch32 User when
    // the host runs AArch32 at EL0 (a guest may be preempted in a 32-bit task).
    let pstate = core_reg_pstate();
    let usr = if host_has_aarch32_el0() { 0 } else { EINVAL };
    for (what, value, want) in [
        ("EL1h", 0x3c5, 0),
        ("EL1t", 0x3c4, 0),
        ("EL0t", 0x3c0, 0),
        ("EL2t", 0x3c8, EINVAL),
        ("EL2h", 0x3c9, EINVAL),
        ("EL3h", 0x3cd, EINVAL),
        ("reserved mode 2", 0x3c2, EINVAL),
        ("reserved mode 6", 0x3c6, EINVAL),
        ("AArch32 FIQ", 0x11, EINVAL),
        ("AArch32 SVC", 0x13, EINVAL),
        ("AArch32 HYP", 0x1a, EINVAL),
        ("AArch32 SYS", 0x1f, EINVAL),
        ("AArch32 User", 0x10, usr),
    ] {
        c.errno(
            &format!("PSTATE {value:#x} ({what})"),
            set_one(v, pstate, value),
            want,
        );
        let _ = set_one(v, pstate, RESET_PSTATE);
    }
    c.eq(
        "PSTATE after the writes",
        get_one(v, pstate),
        (Ok(0), RESET_PSTATE),
    );

    // ID registers: before the first run a value beyond what KVM offers (here a RES0
    // bit) is EINVAL; after it, any change is EBUSY.
    let isar0 = sys_reg(3, 0, 0, 6, 0);
    let (r, value) = get_one(v, isar0);
    c.errno("GET ID_AA64ISAR0_EL1", r, 0);
    c.errno(
        "ID_AA64ISAR0_EL1 written with its own value",
        set_one(v, isar0, value),
        0,
    );
    c.errno(
        "ID_AA64ISAR0_EL1 with RES0 bit 0 set",
        set_one(v, isar0, value | 1),
        EINVAL,
    );
    c.eq(
        "ID_AA64ISAR0_EL1 afterwards",
        get_one(v, isar0),
        (Ok(0), value),
    );
    let unallocated = sys_reg(3, 0, 0, 3, 7);
    c.eq(
        "unallocated ID register (3, 0, 0, 3, 7)",
        get_one(v, unallocated),
        (Ok(0), 0),
    );
    c.errno(
        "unallocated ID register written with 0",
        set_one(v, unallocated, 0),
        0,
    );
    c.errno(
        "unallocated ID register written with 1",
        set_one(v, unallocated, 1),
        EINVAL,
    );
    c.eq(
        "the guest runs",
        run(&mut vcpu, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.errno(
        "ID_AA64ISAR0_EL1 with its own value after a run",
        set_one(v, isar0, value),
        0,
    );
    c.errno(
        "ID_AA64ISAR0_EL1 with bit 0 after a run",
        set_one(v, isar0, value | 1),
        libc::EBUSY,
    );

    // KVM_GET_REG_LIST: too small an n is E2BIG, with n set to the count.
    let (r, count) = reg_list(v, 4096);
    c.errno("KVM_GET_REG_LIST with room for 4096", r, 0);
    c.eq("register count plausible", count > 90 && count < 4096, true);
    for n in [0, 1, count - 1] {
        let (r, got) = reg_list(v, n);
        c.errno(&format!("KVM_GET_REG_LIST with n = {n}"), r, libc::E2BIG);
        c.eq(&format!("n written back after n = {n}"), got, count);
    }
    c.eq(
        "KVM_GET_REG_LIST with n = count",
        reg_list(v, count),
        (Ok(0), count),
    );
    c.finish()
}

/// `KVM_REG_ARM_FW_REG(n)` and `KVM_REG_ARM_FW_FEAT_BMAP_REG(n)`.
const fn fw_reg(n: u64) -> u64 {
    0x6030_0000_0014_0000 | n
}
const fn fw_bmap(n: u64) -> u64 {
    0x6030_0000_0016_0000 | n
}

/// The firmware pseudo-registers: the workaround levels (rkvm offers none of the
/// workaround calls, so only "not available" can be restored), and the per-VM service
/// bitmaps: reset to every implemented service, EINVAL for other bits, shared by the
/// vCPUs, frozen (EBUSY) by the first run of any vCPU.
fn firmware_registers() -> TestResult {
    const EBUSY: i32 = libc::EBUSY;
    let mut c = Cases::new();
    let vm = TestVm::new(1 << 16, guest_off())?;
    let mut vcpu0 = vm.vcpu(0, MEM_BASE, 0)?;
    let vcpu1 = vm.vcpu(1, MEM_BASE, POWER_OFF)?;
    let (v0, v1) = (vcpu0.as_raw_fd(), vcpu1.as_raw_fd());

    // (register, its AVAIL encoding)
    for (n, avail) in [(1, 1), (2, 2), (3, 1)] {
        c.eq(
            &format!("GET SMCCC_ARCH_WORKAROUND_{n}"),
            get_one(v0, fw_reg(n)),
            (Ok(0), 0),
        );
        c.errno(
            &format!("SET SMCCC_ARCH_WORKAROUND_{n} to NOT_AVAIL"),
            set_one(v0, fw_reg(n), 0),
            0,
        );
        c.errno(
            &format!("SET SMCCC_ARCH_WORKAROUND_{n} to AVAIL"),
            set_one(v0, fw_reg(n), avail),
            EINVAL,
        );
        c.errno(
            &format!("SET SMCCC_ARCH_WORKAROUND_{n} to 0x20"),
            set_one(v0, fw_reg(n), 0x20),
            EINVAL,
        );
    }
    c.errno("SET WORKAROUND_2 to UNKNOWN", set_one(v0, fw_reg(2), 1), 0);
    c.errno(
        "SET WORKAROUND_2 to NOT_REQUIRED",
        set_one(v0, fw_reg(2), 3),
        EINVAL,
    );
    c.errno(
        "SET WORKAROUND_2 to AVAIL | ENABLED",
        set_one(v0, fw_reg(2), 0x12),
        EINVAL,
    );
    c.errno(
        "SET WORKAROUND_2 to NOT_AVAIL | ENABLED",
        set_one(v0, fw_reg(2), 0x10),
        EINVAL,
    );
    c.errno("GET firmware register 4", get_one(v0, fw_reg(4)).0, ENOENT);

    // (register, reset value, an invalid bit)
    let bmaps = [
        (0, 0b1, 1 << 1),
        (1, 0b1, 1 << 1),
        (2, 0b11, 1 << 2),
        (3, 0, 1 << 2),
    ];
    for (n, reset, bad) in bmaps {
        let id = fw_bmap(n);
        c.eq(
            &format!("bitmap {n} at reset"),
            get_one(v0, id),
            (Ok(0), reset),
        );
        c.errno(
            &format!("bitmap {n} with bit {bad:#x}"),
            set_one(v0, id, reset | bad),
            EINVAL,
        );
        c.errno(
            &format!("bitmap {n} with bit 63"),
            set_one(v0, id, 1 << 63),
            EINVAL,
        );
        c.errno(&format!("bitmap {n} cleared"), set_one(v0, id, 0), 0);
        c.eq(
            &format!("bitmap {n} cleared, read from vCPU 1"),
            get_one(v1, id),
            (Ok(0), 0),
        );
        c.errno(
            &format!("bitmap {n} reset from vCPU 1"),
            set_one(v1, id, reset),
            0,
        );
        c.eq(
            &format!("bitmap {n} as vCPU 0 sees it"),
            get_one(v0, id),
            (Ok(0), reset),
        );
        c.errno(
            &format!("bitmap {n} as U32"),
            set_one(v0, id & !SIZE_MASK | U32, 0),
            ENOENT,
        );
    }
    c.errno(
        "VENDOR_HYP_2 with both discovery bits",
        set_one(v0, fw_bmap(3), 0b11),
        0,
    );
    c.errno("GET bitmap 4", get_one(v0, fw_bmap(4)).0, ENOENT);
    c.errno("SET bitmap 4", set_one(v0, fw_bmap(4), 0), ENOENT);
    c.errno("STD cleared before the run", set_one(v0, fw_bmap(0), 0), 0);

    c.eq(
        "the guest runs",
        run(&mut vcpu0, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.errno(
        "STD set after a run (from the vCPU that never ran)",
        set_one(v1, fw_bmap(0), 1),
        EBUSY,
    );
    c.errno(
        "STD rewritten with its value after a run",
        set_one(v0, fw_bmap(0), 0),
        0,
    );
    c.errno(
        "VENDOR_HYP cleared after a run",
        set_one(v0, fw_bmap(2), 0),
        EBUSY,
    );
    c.errno(
        "VENDOR_HYP with an invalid bit after a run",
        set_one(v0, fw_bmap(2), 1 << 2),
        EINVAL,
    );
    c.eq(
        "STD after the refused write",
        get_one(v0, fw_bmap(0)),
        (Ok(0), 0),
    );
    c.eq(
        "VENDOR_HYP_2 after the run",
        get_one(v0, fw_bmap(3)),
        (Ok(0), 0b11),
    );
    // Another VM starts from the reset values.
    let (_vm2, vcpu2) = vm_and_vcpu(guest_off())?;
    c.eq(
        "STD in a new VM",
        get_one(vcpu2.as_raw_fd(), fw_bmap(0)),
        (Ok(0), 1),
    );
    c.finish()
}

/// The registers KVM's get-reg-list test requires beyond the EL1 file are listed, with
/// their KVM semantics (vm_run checks that every listed register round-trips).
fn listed_registers_and_their_rules() -> TestResult {
    let mut c = Cases::new();
    let (_vm, mut vcpu) = vm_and_vcpu(guest_off())?;
    let v = vcpu.as_raw_fd();
    let (r, buf) = reg_list_buf(v, 4096);
    c.errno("KVM_GET_REG_LIST", r, 0);
    let ids = &buf[1..1 + buf[0] as usize];
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    c.eq("no id listed twice", sorted.len(), ids.len());
    let wanted = [
        ("PSCI_VERSION", fw_reg(0)),
        ("SMCCC_ARCH_WORKAROUND_3", fw_reg(3)),
        ("VENDOR_HYP_BMAP_2", fw_bmap(3)),
        ("MIDR_EL1", sys_reg(3, 0, 0, 0, 0)),
        ("REVIDR_EL1", sys_reg(3, 0, 0, 0, 6)),
        ("CLIDR_EL1", sys_reg(3, 1, 0, 0, 1)),
        ("AIDR_EL1", sys_reg(3, 1, 0, 0, 7)),
        ("CTR_EL0", sys_reg(3, 3, 0, 0, 1)),
        ("DBGBVR0_EL1", sys_reg(2, 0, 0, 0, 4)),
        ("DBGWCR15_EL1", sys_reg(2, 0, 0, 15, 7)),
        ("MDCCINT_EL1", sys_reg(2, 0, 0, 2, 0)),
        ("OSLSR_EL1", sys_reg(2, 0, 1, 1, 4)),
        ("DBGVCR32_EL2", sys_reg(2, 4, 0, 7, 0)),
        ("ID_AFR0_EL1", sys_reg(3, 0, 0, 1, 3)),
        ("(3, 0, 0, 7, 7)", sys_reg(3, 0, 0, 7, 7)),
        ("DACR32_EL2", sys_reg(3, 4, 3, 0, 0)),
        ("IFSR32_EL2", sys_reg(3, 4, 5, 0, 1)),
        ("FPEXC32_EL2", sys_reg(3, 4, 5, 3, 0)),
        ("DISR_EL1", sys_reg(3, 0, 12, 1, 1)),
    ];
    for (what, id) in wanted {
        c.eq(&format!("{what} listed"), ids.contains(&id), true);
    }

    // Stored registers keep what userspace writes.
    for (what, id) in [
        ("DBGBVR3_EL1", sys_reg(2, 0, 0, 3, 4)),
        ("DBGWCR15_EL1", sys_reg(2, 0, 0, 15, 7)),
        ("MDCCINT_EL1", sys_reg(2, 0, 0, 2, 0)),
        ("DBGVCR32_EL2", sys_reg(2, 4, 0, 7, 0)),
        ("DACR32_EL2", sys_reg(3, 4, 3, 0, 0)),
    ] {
        c.errno(&format!("SET {what}"), set_one(v, id, 0x1234_5678), 0);
        c.eq(&format!("GET {what}"), get_one(v, id), (Ok(0), 0x1234_5678));
    }
    c.eq(
        "FPEXC32_EL2 at reset",
        get_one(v, sys_reg(3, 4, 5, 3, 0)),
        (Ok(0), 0x700),
    );
    // OSLSR_EL1: OSLM reads "implemented"; only OSLK may be changed.
    let oslsr = sys_reg(2, 0, 1, 1, 4);
    c.eq("OSLSR_EL1 at reset", get_one(v, oslsr), (Ok(0), 0b1000));
    c.errno("OSLSR_EL1 with OSLK", set_one(v, oslsr, 0b1010), 0);
    c.eq("OSLSR_EL1 locked", get_one(v, oslsr), (Ok(0), 0b1010));
    c.errno("OSLSR_EL1 without OSLM", set_one(v, oslsr, 0b0010), EINVAL);
    c.errno("OSLSR_EL1 with bit 0", set_one(v, oslsr, 0b1011), EINVAL);
    // Identification registers read what the guest reads and take no other value.
    let ctr = sys_reg(3, 3, 0, 0, 1);
    let (r, value) = get_one(v, ctr);
    c.errno("GET CTR_EL0", r, 0);
    c.errno(
        "CTR_EL0 with another value",
        set_one(v, ctr, value ^ 1),
        EINVAL,
    );
    // DISR_EL1 goes through VDISR_EL2 on a RAS host: a valid value (A, bit 31) survives
    // a run, and the next VM's vCPU starts from its own reset value.
    let disr = sys_reg(3, 0, 12, 1, 1);
    c.eq("DISR_EL1 at reset", get_one(v, disr), (Ok(0), 0));
    c.errno("SET DISR_EL1.A", set_one(v, disr, 1 << 31), 0);
    c.eq(
        "the guest runs",
        run(&mut vcpu, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.eq("DISR_EL1 after the run", get_one(v, disr), (Ok(0), 1 << 31));
    let (_vm2, mut vcpu2) = vm_and_vcpu(guest_off())?;
    c.eq(
        "another VM's guest runs",
        run(&mut vcpu2, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.eq("its DISR_EL1", get_one(vcpu2.as_raw_fd(), disr), (Ok(0), 0));
    c.finish()
}

fn vcpu_state_errors() -> TestResult {
    let mut c = Cases::new();
    let (_vm, vcpu) = vm_and_vcpu(guest_off())?;
    let v = vcpu.as_raw_fd();
    // arm64 takes RUNNABLE, STOPPED and SUSPENDED (9); the x86 and s390 states are EINVAL.
    for (what, state, want) in [
        ("UNINITIALIZED", 1, EINVAL),
        ("INIT_RECEIVED", 2, EINVAL),
        ("HALTED", 3, EINVAL),
        ("SIPI_RECEIVED", 4, EINVAL),
        ("CHECK_STOP", 6, EINVAL),
        ("OPERATING", 7, EINVAL),
        ("LOAD", 8, EINVAL),
        ("AP_RESET_HOLD", 9, EINVAL),
        ("11", 11, EINVAL),
        ("SUSPENDED", 10, 0),
        ("u32::MAX", u32::MAX, EINVAL),
        ("STOPPED", KVM_MP_STATE_STOPPED, 0),
        ("RUNNABLE", KVM_MP_STATE_RUNNABLE, 0),
    ] {
        c.errno(
            &format!("KVM_SET_MP_STATE {state} ({what})"),
            set_mp_state(v, state),
            want,
        );
    }
    c.eq(
        "MP state afterwards",
        get_mp_state(v),
        Ok(KVM_MP_STATE_RUNNABLE),
    );

    // struct kvm_signal_mask { __u32 len; __u8 sigset[]; }: len must be the kernel's
    // sigset_t size, 8 bytes on arm64.
    let sig = |len: u32| {
        let mut buf = [0u8; 16];
        buf[..4].copy_from_slice(&len.to_le_bytes());
        ioctl_with(v, nr::KVM_SET_SIGNAL_MASK, &mut buf)
    };
    c.errno("KVM_SET_SIGNAL_MASK with len 0", sig(0), EINVAL);
    c.errno("KVM_SET_SIGNAL_MASK with len 4", sig(4), EINVAL);
    c.errno("KVM_SET_SIGNAL_MASK with len 12", sig(12), EINVAL);
    c.errno(
        "KVM_SET_SIGNAL_MASK with len 128 (glibc's sigset_t)",
        sig(128),
        EINVAL,
    );
    c.errno("KVM_SET_SIGNAL_MASK with len 8", sig(8), 0);
    // SAFETY: a NULL argument clears the mask; nothing is read.
    let r = unsafe { ioctl_raw(v, nr::KVM_SET_SIGNAL_MASK, 0) };
    c.errno("KVM_SET_SIGNAL_MASK with NULL", r, 0);
    c.finish()
}

fn unknown_ioctls() -> TestResult {
    let mut c = Cases::new();
    let (vm, vcpu) = vm_and_vcpu(guest_off())?;
    let fds = [("VM", vm.vm.as_raw_fd()), ("vCPU", vcpu.as_raw_fd())];
    let vm_cmds: &[(&str, u64)] = &[
        ("_IO(KVMIO, 0xff)", 0xaeff),
        ("_IOR(KVMIO, 0xfe, u64)", 0x8008_aefe),
        ("TCGETS", 0x5401),
        ("KVM_GET_API_VERSION", nr::KVM_GET_API_VERSION),
        ("KVM_CREATE_VM", nr::KVM_CREATE_VM),
        ("KVM_RUN", nr::KVM_RUN),
        ("KVM_ARM_VCPU_INIT", nr::KVM_ARM_VCPU_INIT),
        (
            "KVM_SET_USER_MEMORY_REGION with a 16-byte size",
            0x4010_ae46,
        ),
    ];
    let vcpu_cmds: &[(&str, u64)] = &[
        ("_IO(KVMIO, 0xff)", 0xaeff),
        ("_IOR(KVMIO, 0xfe, u64)", 0x8008_aefe),
        ("TCGETS", 0x5401),
        ("KVM_CREATE_VM", nr::KVM_CREATE_VM),
        ("KVM_CREATE_VCPU", nr::KVM_CREATE_VCPU),
        ("KVM_SET_USER_MEMORY_REGION", nr::KVM_SET_USER_MEMORY_REGION),
        ("KVM_GET_REGS (not on arm64)", 0x8360_ae81),
        ("KVM_RUN with a size", 0x8008_ae80),
    ];
    for ((kind, fd), cmds) in fds.iter().zip([vm_cmds, vcpu_cmds]) {
        for (what, cmd) in cmds {
            // SAFETY: a NULL argument: unknown commands are refused before any use of it.
            let r = unsafe { ioctl_raw(*fd, *cmd, 0) };
            c.errno(&format!("{what} ({cmd:#x}) on the {kind} fd"), r, EINVAL);
        }
    }
    // KVM_CREATE_DEVICE: the vGICv3 (7) and the ITS (8) are the types rkvm offers (the
    // vgic and its programs test them); the others, here the invalid 0 and GICv2 (5),
    // are ENODEV, KVM's answer for a type without ops.
    for ty in [0, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2] {
        let mut cd = [ty, 0u32, 0u32];
        // SAFETY: `cd` is a valid struct kvm_create_device for the kernel to read/write.
        let r = unsafe {
            ioctl_raw(
                vm.vm.as_raw_fd(),
                nr::KVM_CREATE_DEVICE,
                cd.as_mut_ptr() as u64,
            )
        };
        c.errno(&format!("KVM_CREATE_DEVICE type {ty}"), r, libc::ENODEV);
    }
    c.finish()
}

fn bad_user_pointers() -> TestResult {
    let mut c = Cases::new();
    let (vm, vcpu) = vm_and_vcpu(guest_off())?;
    let (m, v) = (vm.vm.as_raw_fd(), vcpu.as_raw_fd());
    for ptr in BAD_PTRS {
        for (what, fd, cmd) in [
            (
                "KVM_SET_USER_MEMORY_REGION",
                m,
                nr::KVM_SET_USER_MEMORY_REGION,
            ),
            (
                "KVM_SET_USER_MEMORY_REGION2",
                m,
                nr::KVM_SET_USER_MEMORY_REGION2,
            ),
            ("KVM_ARM_PREFERRED_TARGET", m, nr::KVM_ARM_PREFERRED_TARGET),
            ("KVM_GET_ONE_REG", v, nr::KVM_GET_ONE_REG),
            ("KVM_SET_ONE_REG", v, nr::KVM_SET_ONE_REG),
            ("KVM_ARM_VCPU_INIT", v, nr::KVM_ARM_VCPU_INIT),
            ("KVM_GET_REG_LIST", v, nr::KVM_GET_REG_LIST),
            ("KVM_GET_MP_STATE", v, nr::KVM_GET_MP_STATE),
            ("KVM_SET_MP_STATE", v, nr::KVM_SET_MP_STATE),
            ("KVM_SET_SIGNAL_MASK", v, nr::KVM_SET_SIGNAL_MASK),
        ] {
            // SAFETY: `ptr` is unmapped or a kernel address: the call can only fail.
            let r = unsafe { ioctl_raw(fd, cmd, ptr) };
            c.errno(&format!("{what} with argument {ptr:#x}"), r, EFAULT);
        }
        // A valid struct kvm_one_reg whose addr is bad.
        for (what, id) in [
            ("PC", core_reg_pc()),
            ("V0", core_reg_v(0)),
            ("TPIDR_EL1", sys_reg(3, 0, 13, 0, 4)),
            ("ID_AA64ISAR0_EL1", sys_reg(3, 0, 0, 6, 0)),
            ("PSCI_VERSION", 0x6030_0000_0014_0000),
        ] {
            let mut reg = kvm_one_reg { id, addr: ptr };
            let r = ioctl_with(v, nr::KVM_GET_ONE_REG, &mut reg);
            c.errno(&format!("GET {what} to {ptr:#x}"), r, EFAULT);
            let r = ioctl_with(v, nr::KVM_SET_ONE_REG, &mut reg);
            c.errno(&format!("SET {what} from {ptr:#x}"), r, EFAULT);
        }
    }

    // Read-only memory where the kernel must write.
    let page = GuestMem::new(0x2000)?;
    // SAFETY: changes the protection of a mapping this test owns.
    unsafe { libc::mprotect(page.ptr.cast(), 0x1000, libc::PROT_READ) };
    let ro = page.ptr as u64;
    let mut reg = kvm_one_reg {
        id: core_reg_pc(),
        addr: ro,
    };
    c.errno(
        "GET_ONE_REG into read-only memory",
        ioctl_with(v, nr::KVM_GET_ONE_REG, &mut reg),
        EFAULT,
    );
    // SAFETY: the kernel may only fail to write the read-only page.
    let r = unsafe { ioctl_raw(m, nr::KVM_ARM_PREFERRED_TARGET, ro) };
    c.errno("KVM_ARM_PREFERRED_TARGET into read-only memory", r, EFAULT);
    // SAFETY: as above; the header reads 0, so the kernel writes only the header.
    let r = unsafe { ioctl_raw(v, nr::KVM_GET_REG_LIST, ro) };
    c.errno("KVM_GET_REG_LIST into read-only memory", r, EFAULT);

    // A signal mask whose len is readable but whose sigset runs into an unmapped page.
    let pages = GuestMem::new(0x2000)?;
    // SAFETY: unmaps the second page of a mapping this test owns (GuestMem's munmap of
    // the whole range later is fine on a partly unmapped range).
    unsafe { libc::munmap(pages.ptr.add(0x1000).cast(), 0x1000) };
    pages.write(0xffc, &8u32.to_le_bytes());
    // SAFETY: the kernel reads `len`, then faults on the sigset.
    let r = unsafe { ioctl_raw(v, nr::KVM_SET_SIGNAL_MASK, pages.ptr as u64 + 0xffc) };
    c.errno("KVM_SET_SIGNAL_MASK with the sigset unmapped", r, EFAULT);
    c.finish()
}

fn fds_used_by_a_child_process() -> TestResult {
    let mut c = Cases::new();
    let (vm, mut vcpu) = vm_and_vcpu(guest_off())?;
    let sys = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    let (m, v) = (vm.vm.as_raw_fd(), vcpu.as_raw_fd());
    // The child writes the errno of each call here (MAP_SHARED survives the fork).
    let shared = {
        // SAFETY: a fresh shared anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        p.cast::<i32>()
    };
    // (what, fd, cmd, arg, expected errno): KVM checks kvm->mm against current->mm
    // first on VM and vCPU fds; the system fd has no owner.
    let mut buf: RegBuf = [0; 256];
    let mut reg = kvm_one_reg {
        id: core_reg_pc(),
        addr: buf.as_mut_ptr() as u64,
    };
    let mut mem = kvm_userspace_memory_region {
        slot: 5,
        flags: 0,
        guest_phys_addr: 0x7000_0000,
        memory_size: 0x1000,
        userspace_addr: vm.mem.ptr as u64,
    };
    // struct kvm_coalesced_mmio_zone: addr, size, pio.
    let mut zone: [u64; 2] = [MMIO_BASE, 8];
    let calls: [(&str, RawFd, u64, u64, i32); 10] = [
        (
            "KVM_CHECK_EXTENSION on the VM fd",
            m,
            nr::KVM_CHECK_EXTENSION,
            KVM_CAP_USER_MEMORY.into(),
            libc::EIO,
        ),
        (
            "KVM_GET_STATS_FD on the VM fd",
            m,
            nr::KVM_GET_STATS_FD,
            0,
            libc::EIO,
        ),
        (
            "KVM_GET_STATS_FD on the vCPU fd",
            v,
            nr::KVM_GET_STATS_FD,
            0,
            libc::EIO,
        ),
        (
            "KVM_REGISTER_COALESCED_MMIO",
            m,
            nr::KVM_REGISTER_COALESCED_MMIO,
            zone.as_mut_ptr() as u64,
            libc::EIO,
        ),
        ("KVM_CREATE_VCPU", m, nr::KVM_CREATE_VCPU, 1, libc::EIO),
        (
            "KVM_SET_USER_MEMORY_REGION",
            m,
            nr::KVM_SET_USER_MEMORY_REGION,
            &mut mem as *mut _ as u64,
            libc::EIO,
        ),
        (
            "KVM_GET_ONE_REG",
            v,
            nr::KVM_GET_ONE_REG,
            &mut reg as *mut _ as u64,
            libc::EIO,
        ),
        ("KVM_RUN", v, nr::KVM_RUN, 0, libc::EIO),
        (
            "KVM_CHECK_EXTENSION on the system fd",
            sys.as_raw_fd(),
            nr::KVM_CHECK_EXTENSION,
            KVM_CAP_USER_MEMORY.into(),
            0,
        ),
        (
            "KVM_CREATE_VM on the system fd",
            sys.as_raw_fd(),
            nr::KVM_CREATE_VM,
            0,
            0,
        ),
    ];
    // SAFETY: the child only makes system calls and _exits; this test has no other threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let mut wrong = 0;
        for (i, (_, fd, cmd, arg, want)) in calls.iter().enumerate() {
            // SAFETY: `arg` is an integer or points at the child's copy of a valid struct.
            let got = match unsafe { ioctl_raw(*fd, *cmd, *arg) } {
                Ok(_) => 0,
                Err(e) => e,
            };
            // SAFETY: `shared` is a 4096-byte shared mapping.
            unsafe { shared.add(i).write_volatile(got) };
            wrong += i32::from(got != *want);
        }
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(wrong) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !libc::WIFEXITED(status) {
        c.fail(format!(
            "the child did not exit normally (status {status:#x})"
        ));
    } else {
        c.eq(
            "calls that differ, as the child counted them",
            libc::WEXITSTATUS(status),
            0,
        );
        for (i, (what, _, _, _, want)) in calls.iter().enumerate() {
            // SAFETY: written by the child, which has exited.
            let got = unsafe { shared.add(i).read_volatile() };
            let got = if got == 0 { Ok(0) } else { Err(got) };
            c.errno(&format!("{what} in the child"), got, *want);
        }
    }
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(shared.cast(), 4096) };
    // The owner is unaffected.
    c.eq(
        "the parent's KVM_RUN",
        run(&mut vcpu, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_vm_errors",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("create_vm_types", create_vm_types),
            ("memory_region_errors", memory_region_errors),
            ("create_vcpu_errors", create_vcpu_errors),
            ("vcpu_init_and_run_order", vcpu_init_and_run_order),
            ("one_reg_errors", one_reg_errors),
            ("firmware_registers", firmware_registers),
            (
                "listed_registers_and_their_rules",
                listed_registers_and_their_rules,
            ),
            ("vcpu_state_errors", vcpu_state_errors),
            ("unknown_ioctls", unknown_ioctls),
            ("bad_user_pointers", bad_user_pointers),
            ("fds_used_by_a_child_process", fds_used_by_a_child_process),
        ],
    )
}
