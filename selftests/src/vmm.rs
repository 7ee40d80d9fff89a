// SPDX-License-Identifier: GPL-2.0

//! A minimal VMM for the selftests: one VM, guest memory, vCPUs, guest code.
//!
//! Guest programs are aarch64 assembly assembled into the test binary itself (they run at
//! the guest's EL1 with the MMU off, so code and data addresses are guest-physical).

use kvm_bindings::{kvm_userspace_memory_region, kvm_vcpu_init, KVM_ARM_VCPU_PSCI_0_2};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

/// Guest RAM starts where QEMU's `virt` machine puts it.
pub const MEM_BASE: u64 = 0x4000_0000;
/// An address no memslot covers: accesses there are MMIO.
pub const MMIO_BASE: u64 = 0x1000_0000;

/// Declares guest code `$name` from assembly lines; `$name()` returns its bytes.
#[macro_export]
macro_rules! guest_code {
    ($name:ident, $($line:literal),+ $(,)?) => {
        core::arch::global_asm!(
            ".pushsection .rodata.guest, \"a\"",
            ".balign 4",
            // Global (hidden) symbols: the accessor may be compiled into another codegen
            // unit than this assembly (code used from a thread's closure, for one).
            concat!(".globl ", stringify!($name), "_start"),
            concat!(".hidden ", stringify!($name), "_start"),
            concat!(".globl ", stringify!($name), "_end"),
            concat!(".hidden ", stringify!($name), "_end"),
            concat!(stringify!($name), "_start:"),
            $($line,)+
            concat!(stringify!($name), "_end:"),
            ".popsection",
        );
        fn $name() -> &'static [u8] {
            extern "C" {
                #[link_name = concat!(stringify!($name), "_start")]
                static START: u8;
                #[link_name = concat!(stringify!($name), "_end")]
                static END: u8;
            }
            // SAFETY: both symbols delimit the bytes emitted above, in one section.
            unsafe {
                let start = core::ptr::addr_of!(START);
                let len = core::ptr::addr_of!(END).offset_from(start) as usize;
                core::slice::from_raw_parts(start, len)
            }
        }
    };
}

/// Anonymous memory backing guest RAM, unmapped on drop.
pub struct GuestMem {
    pub ptr: *mut u8,
    pub size: usize,
}

impl GuestMem {
    pub fn new(size: usize) -> Result<Self, String> {
        Self::map(size, libc::MAP_PRIVATE)
    }

    /// Shared anonymous memory: what a forked child's guest writes stays visible to the
    /// parent.
    pub fn new_shared(size: usize) -> Result<Self, String> {
        Self::map(size, libc::MAP_SHARED)
    }

    fn map(size: usize, kind: libc::c_int) -> Result<Self, String> {
        // SAFETY: a fresh anonymous mapping.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                kind | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Self {
            ptr: ptr.cast(),
            size,
        })
    }

    pub fn write(&self, offset: usize, bytes: &[u8]) {
        assert!(offset + bytes.len() <= self.size);
        // SAFETY: in bounds of the mapping.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len())
        };
    }

    pub fn read_u64(&self, offset: usize) -> u64 {
        assert!(offset + 8 <= self.size);
        // SAFETY: in bounds; the guest may write concurrently, hence volatile.
        unsafe { self.ptr.add(offset).cast::<u64>().read_volatile() }
    }

    pub fn write_u64(&self, offset: usize, v: u64) {
        assert!(offset + 8 <= self.size);
        // SAFETY: in bounds.
        unsafe { self.ptr.add(offset).cast::<u64>().write_volatile(v) };
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.cast(), self.size) };
    }
}

/// A VM with one memslot of RAM at `MEM_BASE` holding the guest code at its start.
pub struct TestVm {
    pub kvm: Kvm,
    pub vm: VmFd,
    pub mem: GuestMem,
}

pub fn kvm() -> Result<Kvm, String> {
    Kvm::new_with_path(c"/dev/rkvm").map_err(|e| format!("open /dev/rkvm: {e}"))
}

impl TestVm {
    pub fn new(mem_size: usize, code: &[u8]) -> Result<Self, String> {
        Self::with_mem(GuestMem::new(mem_size)?, code)
    }

    /// As [`TestVm::new`], with RAM the caller mapped.
    pub fn with_mem(mem: GuestMem, code: &[u8]) -> Result<Self, String> {
        Self::on_device(kvm()?, mem, code)
    }

    /// As [`TestVm::with_mem`], on an open KVM-compatible device (rkvm or in-kernel KVM).
    pub fn on_device(kvm: Kvm, mem: GuestMem, code: &[u8]) -> Result<Self, String> {
        let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
        Self::finish(kvm, vm, mem, code)
    }

    /// As [`TestVm::with_mem`], with `KVM_CREATE_VM`'s type given (e.g. an IPA size).
    pub fn with_type(vm_type: u64, mem: GuestMem, code: &[u8]) -> Result<Self, String> {
        let kvm = kvm()?;
        let vm = kvm
            .create_vm_with_type(vm_type)
            .map_err(|e| format!("KVM_CREATE_VM({vm_type}): {e}"))?;
        Self::finish(kvm, vm, mem, code)
    }

    fn finish(kvm: Kvm, vm: VmFd, mem: GuestMem, code: &[u8]) -> Result<Self, String> {
        mem.write(0, code);
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: MEM_BASE,
            memory_size: mem.size as u64,
            userspace_addr: mem.ptr as u64,
        };
        // SAFETY: the memory outlives the VM's use of it: `vm` is declared before `mem`, so
        // the VM fd closes first when a `TestVm` drops.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
        Ok(Self { kvm, vm, mem })
    }

    /// Creates vCPU `id`, initialised with PSCI 0.2 (plus `extra` feature bits), at PC `pc`.
    pub fn vcpu(&self, id: u64, pc: u64, extra: u32) -> Result<VcpuFd, String> {
        let vcpu = self
            .vm
            .create_vcpu(id)
            .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
        let mut init = kvm_vcpu_init::default();
        self.vm
            .get_preferred_target(&mut init)
            .map_err(|e| format!("PREFERRED_TARGET: {e}"))?;
        init.features[0] |= (1 << KVM_ARM_VCPU_PSCI_0_2) | extra;
        vcpu.vcpu_init(&init)
            .map_err(|e| format!("KVM_ARM_VCPU_INIT: {e}"))?;
        set_reg(&vcpu, core_reg_pc(), pc)?;
        Ok(vcpu)
    }
}

/// Where the selftests put the vGICv3, as QEMU's `virt` machine does: the distributor,
/// and the redistributors (128 KiB each, in vCPU order).
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICR_BASE: u64 = 0x080a_0000;

/// Creates and initialises a vGICv3 the way QEMU does (after the vCPUs: addresses, then
/// `CTRL_INIT`); `None` when the device type is not offered (`ENODEV`).
pub fn create_vgic(vm: &VmFd) -> Result<Option<kvm_ioctls::DeviceFd>, String> {
    use kvm_bindings::*;
    let mut dev = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = match vm.create_device(&mut dev) {
        Ok(d) => d,
        Err(e) if e.errno() == libc::ENODEV => return Ok(None),
        Err(e) => return Err(format!("KVM_CREATE_DEVICE(VGIC_V3): {e}")),
    };
    for (kind, addr) in [
        (KVM_VGIC_V3_ADDR_TYPE_DIST, GICD_BASE),
        (KVM_VGIC_V3_ADDR_TYPE_REDIST, GICR_BASE),
    ] {
        let attr = kvm_device_attr {
            group: KVM_DEV_ARM_VGIC_GRP_ADDR,
            attr: u64::from(kind),
            addr: &addr as *const u64 as u64,
            flags: 0,
        };
        gic.set_device_attr(&attr)
            .map_err(|e| format!("vGIC address {kind}: {e}"))?;
    }
    let init = kvm_device_attr {
        group: KVM_DEV_ARM_VGIC_GRP_CTRL,
        attr: u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
        addr: 0,
        flags: 0,
    };
    gic.set_device_attr(&init)
        .map_err(|e| format!("vGIC CTRL_INIT: {e}"))?;
    Ok(Some(gic))
}

/// ONE_REG id of a core register at u32-word offset `off` in `struct kvm_regs`.
pub const fn core_reg(off: u64, size_u128: bool) -> u64 {
    0x6000_0000_0000_0000
        | if size_u128 {
            0x0040_0000_0000_0000
        } else {
            0x0030_0000_0000_0000
        }
        | 0x0010_0000
        | off
}
pub const fn core_reg_x(n: u64) -> u64 {
    core_reg(n * 2, false)
}
pub const fn core_reg_pc() -> u64 {
    core_reg(64, false)
}
pub const fn core_reg_pstate() -> u64 {
    core_reg(66, false)
}
pub const fn core_reg_v(n: u64) -> u64 {
    core_reg(84 + n * 4, true)
}
/// ONE_REG id of a system register (`ARM64_SYS_REG()`).
pub const fn sys_reg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    use kvm_bindings as kb;
    kb::KVM_REG_ARM64
        | kb::KVM_REG_SIZE_U64
        | kb::KVM_REG_ARM64_SYSREG as u64
        | (op0 << kb::KVM_REG_ARM64_SYSREG_OP0_SHIFT)
        | (op1 << kb::KVM_REG_ARM64_SYSREG_OP1_SHIFT)
        | (crn << kb::KVM_REG_ARM64_SYSREG_CRN_SHIFT)
        | (crm << kb::KVM_REG_ARM64_SYSREG_CRM_SHIFT)
        | (op2 << kb::KVM_REG_ARM64_SYSREG_OP2_SHIFT)
}

pub fn set_reg(vcpu: &VcpuFd, id: u64, v: u64) -> Result<(), String> {
    vcpu.set_one_reg(id, &v.to_le_bytes())
        .map(|_| ())
        .map_err(|e| format!("SET_ONE_REG {id:#x}: {e}"))
}

pub fn get_reg(vcpu: &VcpuFd, id: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    vcpu.get_one_reg(id, &mut b)
        .map_err(|e| format!("GET_ONE_REG {id:#x}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

/// What a guest run ended with, owned (so the vCPU can be borrowed again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    MmioWrite(u64, Vec<u8>),
    MmioRead(u64, usize),
    SystemEvent(u32),
    Other(String),
}

/// Runs until an exit; MMIO reads are answered with `read_value` (little-endian).
pub fn run(vcpu: &mut VcpuFd, read_value: u64) -> Result<Exit, String> {
    run_errno(vcpu, read_value)
        .map_err(|e| format!("KVM_RUN: {}", std::io::Error::from_raw_os_error(e)))
}

/// As [`run`], keeping `KVM_RUN`'s errno (tests that expect a failing run need it).
pub fn run_errno(vcpu: &mut VcpuFd, read_value: u64) -> Result<Exit, i32> {
    match vcpu.run().map_err(|e| e.errno())? {
        VcpuExit::MmioWrite(addr, data) => Ok(Exit::MmioWrite(addr, data.to_vec())),
        VcpuExit::MmioRead(addr, data) => {
            let len = data.len();
            data.copy_from_slice(&read_value.to_le_bytes()[..len]);
            Ok(Exit::MmioRead(addr, len))
        }
        VcpuExit::SystemEvent(kind, _) => Ok(Exit::SystemEvent(kind)),
        other => Ok(Exit::Other(format!("{other:?}"))),
    }
}

/// Runs until a `KVM_EXIT_SYSTEM_EVENT`; returns its type and data words.
pub fn run_to_event(vcpu: &mut VcpuFd) -> Result<(u32, Vec<u64>), String> {
    match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
        VcpuExit::SystemEvent(kind, data) => Ok((kind, data.to_vec())),
        other => Err(format!("expected a system event, got {other:?}")),
    }
}

/// `KVM_REG_ARM_PSCI_VERSION`, the firmware pseudo-register holding the VM's PSCI version.
pub const PSCI_VERSION_REG: u64 = 0x6030_0000_0014_0000;

/// The little-endian value of up to 8 bytes of MMIO data.
pub fn le_value(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(b)
}

/// Runs until the guest writes a u64 to MMIO; returns (address, value).
pub fn run_to_write(vcpu: &mut VcpuFd) -> Result<(u64, u64), String> {
    match run(vcpu, 0)? {
        Exit::MmioWrite(addr, data) => {
            let mut b = [0u8; 8];
            b[..data.len()].copy_from_slice(&data);
            Ok((addr, u64::from_le_bytes(b)))
        }
        other => Err(format!("expected an MMIO write, got {other:?}")),
    }
}

/// KVM ioctl numbers (`include/uapi/linux/kvm.h`) for raw calls: the error tests pass
/// arguments kvm-ioctls refuses to build, or would panic on, and kvm-ioctls keeps its own
/// numbers private. `_IOC(dir, type, nr, size)` is `dir << 30 | size << 16 | type << 8 |
/// nr`, with `KVMIO` = 0xae, write = 1 and read = 2; the x86-only numbers are here for
/// the tests that check rkvm refuses them.
pub mod nr {
    /// `_IO(KVMIO, 0x00)`
    pub const KVM_GET_API_VERSION: u64 = 0xae00;
    /// `_IO(KVMIO, 0x01)`
    pub const KVM_CREATE_VM: u64 = 0xae01;
    /// `_IOWR(KVMIO, 0x02, struct kvm_msr_list)` (4 bytes)
    pub const KVM_GET_MSR_INDEX_LIST: u64 = 0xc004_ae02;
    /// `_IO(KVMIO, 0x03)`
    pub const KVM_CHECK_EXTENSION: u64 = 0xae03;
    /// `_IO(KVMIO, 0x04)`
    pub const KVM_GET_VCPU_MMAP_SIZE: u64 = 0xae04;
    /// `_IOWR(KVMIO, 0x05, struct kvm_cpuid2)` (8 bytes)
    pub const KVM_GET_SUPPORTED_CPUID: u64 = 0xc008_ae05;
    /// `_IO(KVMIO, 0x41)`
    pub const KVM_CREATE_VCPU: u64 = 0xae41;
    /// `_IOW(KVMIO, 0x42, struct kvm_dirty_log)` (16 bytes)
    pub const KVM_GET_DIRTY_LOG: u64 = 0x4010_ae42;
    /// `_IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)` (32 bytes)
    pub const KVM_SET_USER_MEMORY_REGION: u64 = 0x4020_ae46;
    /// `_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)` (160 bytes)
    pub const KVM_SET_USER_MEMORY_REGION2: u64 = 0x40a0_ae49;
    /// `_IOW(KVMIO, 0x61, struct kvm_irq_level)` (8 bytes)
    pub const KVM_IRQ_LINE: u64 = 0x4008_ae61;
    /// `_IOW(KVMIO, 0x67, struct kvm_coalesced_mmio_zone)` (16 bytes)
    pub const KVM_REGISTER_COALESCED_MMIO: u64 = 0x4010_ae67;
    /// `_IOWR(KVMIO, 0x67, struct kvm_irq_level)` (8 bytes)
    pub const KVM_IRQ_LINE_STATUS: u64 = 0xc008_ae67;
    /// `_IOW(KVMIO, 0x68, struct kvm_coalesced_mmio_zone)` (16 bytes)
    pub const KVM_UNREGISTER_COALESCED_MMIO: u64 = 0x4010_ae68;
    /// `_IOW(KVMIO, 0x6a, struct kvm_irq_routing)` (8 bytes)
    pub const KVM_SET_GSI_ROUTING: u64 = 0x4008_ae6a;
    /// `_IOW(KVMIO, 0x76, struct kvm_irqfd)` (32 bytes)
    pub const KVM_IRQFD: u64 = 0x4020_ae76;
    /// `_IOW(KVMIO, 0x79, struct kvm_ioeventfd)` (64 bytes)
    pub const KVM_IOEVENTFD: u64 = 0x4040_ae79;
    /// `_IO(KVMIO, 0x80)`
    pub const KVM_RUN: u64 = 0xae80;
    /// `_IOR(KVMIO, 0x81, struct kvm_regs)` (864 bytes)
    pub const KVM_GET_REGS: u64 = 0x8360_ae81;
    /// `_IOW(KVMIO, 0x82, struct kvm_regs)` (864 bytes)
    pub const KVM_SET_REGS: u64 = 0x4360_ae82;
    /// `_IOW(KVMIO, 0x8b, struct kvm_signal_mask)` (4 bytes)
    pub const KVM_SET_SIGNAL_MASK: u64 = 0x4004_ae8b;
    /// `_IOR(KVMIO, 0x98, struct kvm_mp_state)` (4 bytes)
    pub const KVM_GET_MP_STATE: u64 = 0x8004_ae98;
    /// `_IOW(KVMIO, 0x99, struct kvm_mp_state)` (4 bytes)
    pub const KVM_SET_MP_STATE: u64 = 0x4004_ae99;
    /// `_IOW(KVMIO, 0x9b, struct kvm_guest_debug)` (520 bytes)
    pub const KVM_SET_GUEST_DEBUG: u64 = 0x4208_ae9b;
    /// `_IOR(KVMIO, 0x9f, struct kvm_vcpu_events)` (64 bytes)
    pub const KVM_GET_VCPU_EVENTS: u64 = 0x8040_ae9f;
    /// `_IOW(KVMIO, 0xa0, struct kvm_vcpu_events)` (64 bytes)
    pub const KVM_SET_VCPU_EVENTS: u64 = 0x4040_aea0;
    /// `_IOW(KVMIO, 0xa3, struct kvm_enable_cap)` (104 bytes)
    pub const KVM_ENABLE_CAP: u64 = 0x4068_aea3;
    /// `_IOW(KVMIO, 0xa5, struct kvm_msi)` (32 bytes)
    pub const KVM_SIGNAL_MSI: u64 = 0x4020_aea5;
    /// `_IOW(KVMIO, 0xab, struct kvm_arm_device_addr)` (16 bytes)
    pub const KVM_ARM_SET_DEVICE_ADDR: u64 = 0x4010_aeab;
    /// `_IOW(KVMIO, 0xab, struct kvm_one_reg)` (16 bytes)
    pub const KVM_GET_ONE_REG: u64 = 0x4010_aeab;
    /// `_IOW(KVMIO, 0xac, struct kvm_one_reg)` (16 bytes)
    pub const KVM_SET_ONE_REG: u64 = 0x4010_aeac;
    /// `_IO(KVMIO, 0xad)`
    pub const KVM_KVMCLOCK_CTRL: u64 = 0xaead;
    /// `_IOW(KVMIO, 0xae, struct kvm_vcpu_init)` (32 bytes)
    pub const KVM_ARM_VCPU_INIT: u64 = 0x4020_aeae;
    /// `_IOR(KVMIO, 0xaf, struct kvm_vcpu_init)` (32 bytes)
    pub const KVM_ARM_PREFERRED_TARGET: u64 = 0x8020_aeaf;
    /// `_IOWR(KVMIO, 0xb0, struct kvm_reg_list)` (8 bytes)
    pub const KVM_GET_REG_LIST: u64 = 0xc008_aeb0;
    /// `_IOWR(KVMIO, 0xc0, struct kvm_clear_dirty_log)` (24 bytes)
    pub const KVM_CLEAR_DIRTY_LOG: u64 = 0xc018_aec0;
    /// `_IOW(KVMIO, 0xc2, int)` (4 bytes)
    pub const KVM_ARM_VCPU_FINALIZE: u64 = 0x4004_aec2;
    /// `_IO(KVMIO, 0xce)`
    pub const KVM_GET_STATS_FD: u64 = 0xaece;
    /// `_IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)` (64 bytes)
    pub const KVM_CREATE_GUEST_MEMFD: u64 = 0xc040_aed4;
    /// `_IOWR(KVMIO, 0xe0, struct kvm_create_device)` (12 bytes)
    pub const KVM_CREATE_DEVICE: u64 = 0xc00c_aee0;
    /// `_IOW(KVMIO, 0xe1, struct kvm_device_attr)` (24 bytes)
    pub const KVM_SET_DEVICE_ATTR: u64 = 0x4018_aee1;
    /// `_IOW(KVMIO, 0xe2, struct kvm_device_attr)` (24 bytes)
    pub const KVM_GET_DEVICE_ATTR: u64 = 0x4018_aee2;
    /// `_IOW(KVMIO, 0xe3, struct kvm_device_attr)` (24 bytes)
    pub const KVM_HAS_DEVICE_ATTR: u64 = 0x4018_aee3;
}

/// `ioctl(fd, cmd, arg)`: the return value, or the errno.
///
/// # Safety
///
/// If `arg` is an address, the kernel reads and writes there what `cmd` says: it must be
/// valid for that, or not mapped at all (the call then fails with `EFAULT`).
pub unsafe fn ioctl_raw(fd: std::os::fd::RawFd, cmd: u64, arg: u64) -> Result<i32, i32> {
    // SAFETY: the caller vouches for `arg`.
    let ret = unsafe { libc::ioctl(fd, cmd as _, arg as libc::c_ulong) };
    if ret < 0 {
        Err(crate::errno())
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, cmd, &mut value)` for commands whose argument is a fixed-size struct: the
/// kernel touches at most `_IOC_SIZE(cmd)` bytes, which must fit `T`.
pub fn ioctl_with<T>(fd: std::os::fd::RawFd, cmd: u64, value: &mut T) -> Result<i32, i32> {
    let ioc_size = ((cmd >> 16) & 0x3fff) as usize;
    assert!(ioc_size <= core::mem::size_of::<T>() && cmd != nr::KVM_GET_REG_LIST);
    // SAFETY: `value` is valid for `_IOC_SIZE(cmd)` bytes, all the kernel accesses.
    unsafe { ioctl_raw(fd, cmd, value as *mut T as u64) }
}

// Sum 1..=100 into RAM at MEM_BASE + 0x1000, then PSCI SYSTEM_OFF.
crate::guest_code!(
    smoke_guest,
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

/// Runs a small guest to its end (a sum in guest memory, then SYSTEM_OFF) in a fresh VM:
/// the world switch works on the calling thread's CPU.
pub fn smoke_vm() -> Result<(), String> {
    let vm = TestVm::new(1 << 20, smoke_guest())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let exit = run(&mut vcpu, 0)?;
    if exit != Exit::SystemEvent(1) {
        return Err(format!("smoke VM: {exit:?} instead of SYSTEM_OFF"));
    }
    match vm.mem.read_u64(0x1000) {
        5050 => Ok(()),
        v => Err(format!("smoke VM: the guest computed {v}, not 5050")),
    }
}
