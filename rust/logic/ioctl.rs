// SPDX-License-Identifier: GPL-2.0

//! ioctl command encoding (`include/uapi/asm-generic/ioctl.h`) and the KVM command numbers.
//!
//! KVM counterpart: the `KVM_*` ioctl definitions in `include/uapi/linux/kvm.h`. The
//! numbers are computed from their definitions here, and the tests pin them to the values
//! the real clients (QEMU, kvmtool, kvm-ioctls) use.

const NRBITS: u32 = 8;
const TYPEBITS: u32 = 8;
const SIZEBITS: u32 = 14;
const NRSHIFT: u32 = 0;
const TYPESHIFT: u32 = NRSHIFT + NRBITS;
const SIZESHIFT: u32 = TYPESHIFT + TYPEBITS;
const DIRSHIFT: u32 = SIZESHIFT + SIZEBITS;

/// Data-transfer direction of an ioctl, from userspace's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    None = 0,
    Write = 1,
    Read = 2,
    ReadWrite = 3,
}

/// The ioctl type byte shared by every KVM ioctl.
pub(crate) const KVMIO: u32 = 0xAE;

/// Encodes an ioctl command number like the C `_IOC()` macro.
pub(crate) const fn ioc(dir: Dir, ty: u32, nr: u32, size: usize) -> u32 {
    ((dir as u32) << DIRSHIFT) | (ty << TYPESHIFT) | (nr << NRSHIFT) | ((size as u32) << SIZESHIFT)
}

/// `_IO(KVMIO, nr)`.
pub(crate) const fn kvm_io(nr: u32) -> u32 {
    ioc(Dir::None, KVMIO, nr, 0)
}

/// `_IOW(KVMIO, nr, T)` where `T` is `size` bytes.
pub(crate) const fn kvm_iow(nr: u32, size: usize) -> u32 {
    ioc(Dir::Write, KVMIO, nr, size)
}

/// `_IOR(KVMIO, nr, T)` where `T` is `size` bytes.
pub(crate) const fn kvm_ior(nr: u32, size: usize) -> u32 {
    ioc(Dir::Read, KVMIO, nr, size)
}

/// `_IOWR(KVMIO, nr, T)` where `T` is `size` bytes.
pub(crate) const fn kvm_iowr(nr: u32, size: usize) -> u32 {
    ioc(Dir::ReadWrite, KVMIO, nr, size)
}

#[cfg(test)]
/// The type byte of a command (`_IOC_TYPE`).
pub(crate) const fn ioc_type(cmd: u32) -> u32 {
    (cmd >> TYPESHIFT) & ((1 << TYPEBITS) - 1)
}

/// The argument size of a command (`_IOC_SIZE`).
pub(crate) const fn ioc_size(cmd: u32) -> usize {
    ((cmd >> SIZESHIFT) & ((1 << SIZEBITS) - 1)) as usize
}

/// `KVM_API_VERSION`: the only version KVM has ever reported.
pub(crate) const API_VERSION: i32 = 12;

// System ioctls (`/dev/kvm` fd).
pub(crate) const KVM_GET_API_VERSION: u32 = kvm_io(0x00);
pub(crate) const KVM_CREATE_VM: u32 = kvm_io(0x01);
pub(crate) const KVM_CHECK_EXTENSION: u32 = kvm_io(0x03);
pub(crate) const KVM_GET_VCPU_MMAP_SIZE: u32 = kvm_io(0x04);

/// A command on the system fd, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemIoctl {
    GetApiVersion,
    CreateVm,
    CheckExtension,
    GetVcpuMmapSize,
}

impl SystemIoctl {
    /// Decodes `cmd`; `None` for anything that is not a system ioctl rkvm knows.
    pub(crate) const fn decode(cmd: u32) -> Option<Self> {
        Some(match cmd {
            KVM_GET_API_VERSION => Self::GetApiVersion,
            KVM_CREATE_VM => Self::CreateVm,
            KVM_CHECK_EXTENSION => Self::CheckExtension,
            KVM_GET_VCPU_MMAP_SIZE => Self::GetVcpuMmapSize,
            _ => return None,
        })
    }
}

// VM ioctls (VM fd).
pub(crate) const KVM_CREATE_VCPU: u32 = kvm_io(0x41);
/// `struct kvm_dirty_log`: slot, padding, the bitmap's address.
pub(crate) const KVM_GET_DIRTY_LOG: u32 = kvm_iow(0x42, 16);
/// `struct kvm_clear_dirty_log`: slot, num_pages, first_page, the bitmap's address.
pub(crate) const KVM_CLEAR_DIRTY_LOG: u32 = kvm_iowr(0xc0, 24);
pub(crate) const KVM_SET_USER_MEMORY_REGION: u32 = kvm_iow(0x46, 32);
pub(crate) const KVM_SET_USER_MEMORY_REGION2: u32 = kvm_iow(0x49, 160);
pub(crate) const KVM_ARM_PREFERRED_TARGET: u32 = kvm_ior(0xaf, 32);
pub(crate) const KVM_CREATE_DEVICE: u32 = kvm_iowr(0xe0, 12);
pub(crate) const KVM_IOEVENTFD: u32 = kvm_iow(0x79, 64);
pub(crate) const KVM_IRQ_LINE: u32 = kvm_iow(0x61, 8);
pub(crate) const KVM_IRQ_LINE_STATUS: u32 = kvm_iowr(0x67, 8);
pub(crate) const KVM_IRQFD: u32 = kvm_iow(0x76, 32);
pub(crate) const KVM_SET_GSI_ROUTING: u32 = kvm_iow(0x6a, 8);
pub(crate) const KVM_SIGNAL_MSI: u32 = kvm_iow(0xa5, 32);
pub(crate) const KVM_REGISTER_COALESCED_MMIO: u32 = kvm_iow(0x67, 16);
pub(crate) const KVM_UNREGISTER_COALESCED_MMIO: u32 = kvm_iow(0x68, 16);
/// On VM and vCPU fds.
pub(crate) const KVM_GET_STATS_FD: u32 = kvm_io(0xce);
/// `struct kvm_enable_cap`: cap, flags, args[4], pad[64].
pub(crate) const KVM_ENABLE_CAP: u32 = kvm_iow(0xa3, 104);

// Device ioctls (a device fd from KVM_CREATE_DEVICE).
pub(crate) const KVM_SET_DEVICE_ATTR: u32 = kvm_iow(0xe1, 24);
pub(crate) const KVM_GET_DEVICE_ATTR: u32 = kvm_iow(0xe2, 24);
pub(crate) const KVM_HAS_DEVICE_ATTR: u32 = kvm_iow(0xe3, 24);

/// A command on a VM fd, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VmIoctl {
    CheckExtension,
    CreateVcpu,
    SetUserMemoryRegion,
    SetUserMemoryRegion2,
    ArmPreferredTarget,
    CreateDevice,
    IoEventFd,
    IrqLine,
    IrqLineStatus,
    Irqfd,
    SetGsiRouting,
    SignalMsi,
    RegisterCoalescedMmio,
    UnregisterCoalescedMmio,
    GetStatsFd,
    EnableCap,
    SetDeviceAttr,
    HasDeviceAttr,
    GetDirtyLog,
    ClearDirtyLog,
}

impl VmIoctl {
    /// Decodes `cmd`; `None` for anything that is not a VM ioctl rkvm implements.
    pub(crate) const fn decode(cmd: u32) -> Option<Self> {
        Some(match cmd {
            KVM_CHECK_EXTENSION => Self::CheckExtension,
            KVM_CREATE_VCPU => Self::CreateVcpu,
            KVM_SET_USER_MEMORY_REGION => Self::SetUserMemoryRegion,
            KVM_SET_USER_MEMORY_REGION2 => Self::SetUserMemoryRegion2,
            KVM_ARM_PREFERRED_TARGET => Self::ArmPreferredTarget,
            KVM_CREATE_DEVICE => Self::CreateDevice,
            KVM_IOEVENTFD => Self::IoEventFd,
            KVM_IRQ_LINE => Self::IrqLine,
            KVM_IRQ_LINE_STATUS => Self::IrqLineStatus,
            KVM_IRQFD => Self::Irqfd,
            KVM_SET_GSI_ROUTING => Self::SetGsiRouting,
            KVM_SIGNAL_MSI => Self::SignalMsi,
            KVM_REGISTER_COALESCED_MMIO => Self::RegisterCoalescedMmio,
            KVM_UNREGISTER_COALESCED_MMIO => Self::UnregisterCoalescedMmio,
            KVM_GET_STATS_FD => Self::GetStatsFd,
            KVM_ENABLE_CAP => Self::EnableCap,
            // The VM's attributes (KVM_GET_DEVICE_ATTR is a vCPU and device ioctl only).
            KVM_SET_DEVICE_ATTR => Self::SetDeviceAttr,
            KVM_HAS_DEVICE_ATTR => Self::HasDeviceAttr,
            KVM_GET_DIRTY_LOG => Self::GetDirtyLog,
            KVM_CLEAR_DIRTY_LOG => Self::ClearDirtyLog,
            _ => return None,
        })
    }
}

// vCPU ioctls (vCPU fd).
pub(crate) const KVM_RUN: u32 = kvm_io(0x80);
pub(crate) const KVM_SET_SIGNAL_MASK: u32 = kvm_iow(0x8b, 4);
pub(crate) const KVM_GET_MP_STATE: u32 = kvm_ior(0x98, 4);
pub(crate) const KVM_SET_MP_STATE: u32 = kvm_iow(0x99, 4);
/// `struct kvm_vcpu_events` is 64 bytes on arm64.
pub(crate) const KVM_GET_VCPU_EVENTS: u32 = kvm_ior(0x9f, 64);
pub(crate) const KVM_SET_VCPU_EVENTS: u32 = kvm_iow(0xa0, 64);
pub(crate) const KVM_GET_ONE_REG: u32 = kvm_iow(0xab, 16);
pub(crate) const KVM_SET_ONE_REG: u32 = kvm_iow(0xac, 16);
pub(crate) const KVM_ARM_VCPU_INIT: u32 = kvm_iow(0xae, 32);
pub(crate) const KVM_GET_REG_LIST: u32 = kvm_iowr(0xb0, 8);

/// A command on a vCPU fd, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VcpuIoctl {
    Run,
    SetSignalMask,
    GetMpState,
    SetMpState,
    GetOneReg,
    SetOneReg,
    ArmVcpuInit,
    GetRegList,
    SetDeviceAttr,
    GetDeviceAttr,
    HasDeviceAttr,
    GetStatsFd,
    GetVcpuEvents,
    SetVcpuEvents,
}

impl VcpuIoctl {
    /// Decodes `cmd`; `None` for anything that is not a vCPU ioctl rkvm implements.
    pub(crate) const fn decode(cmd: u32) -> Option<Self> {
        Some(match cmd {
            KVM_RUN => Self::Run,
            KVM_SET_SIGNAL_MASK => Self::SetSignalMask,
            KVM_GET_MP_STATE => Self::GetMpState,
            KVM_SET_MP_STATE => Self::SetMpState,
            KVM_GET_ONE_REG => Self::GetOneReg,
            KVM_SET_ONE_REG => Self::SetOneReg,
            KVM_ARM_VCPU_INIT => Self::ArmVcpuInit,
            KVM_GET_REG_LIST => Self::GetRegList,
            KVM_SET_DEVICE_ATTR => Self::SetDeviceAttr,
            KVM_GET_DEVICE_ATTR => Self::GetDeviceAttr,
            KVM_HAS_DEVICE_ATTR => Self::HasDeviceAttr,
            KVM_GET_STATS_FD => Self::GetStatsFd,
            KVM_GET_VCPU_EVENTS => Self::GetVcpuEvents,
            KVM_SET_VCPU_EVENTS => Self::SetVcpuEvents,
            _ => return None,
        })
    }
}

/// `KVM_CREATE_VM`'s type argument: the IPA size in bits [7:0] (0 = the 40-bit default).
pub(crate) const fn vm_type_ipa_bits(vm_type: u64, max_ipa: u32) -> Option<u32> {
    if vm_type & !0xff != 0 {
        return None;
    }
    let bits = match vm_type as u32 {
        0 => 40,
        n => n,
    };
    if bits < 32 || bits > max_ipa {
        return None;
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ioctl_numbers_match_kvm() {
        assert_eq!(KVM_GET_API_VERSION, 0xae00);
        assert_eq!(KVM_CREATE_VM, 0xae01);
        assert_eq!(KVM_CHECK_EXTENSION, 0xae03);
        assert_eq!(KVM_GET_VCPU_MMAP_SIZE, 0xae04);
    }

    #[test]
    fn sized_ioctl_numbers_match_kvm() {
        // KVM_SET_USER_MEMORY_REGION: _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
        assert_eq!(kvm_iow(0x46, 32), 0x4020_ae46);
        // KVM_ARM_VCPU_INIT: _IOW(KVMIO, 0xae, struct kvm_vcpu_init)
        assert_eq!(kvm_iow(0xae, 32), 0x4020_aeae);
        // KVM_GET_ONE_REG: _IOW(KVMIO, 0xab, struct kvm_one_reg)
        assert_eq!(kvm_iow(0xab, 16), 0x4010_aeab);
        // KVM_ARM_PREFERRED_TARGET: _IOR(KVMIO, 0xaf, struct kvm_vcpu_init)
        assert_eq!(kvm_ior(0xaf, 32), 0x8020_aeaf);
        // KVM_GET_MP_STATE: _IOR(KVMIO, 0x98, struct kvm_mp_state)
        assert_eq!(kvm_ior(0x98, 4), 0x8004_ae98);
        // KVM_GET_REG_LIST: _IOWR(KVMIO, 0xb0, struct kvm_reg_list)
        assert_eq!(kvm_iowr(0xb0, 8), 0xc008_aeb0);
        assert_eq!(kvm_io(0x80), 0xae80); // KVM_RUN
    }

    #[test]
    fn fields_round_trip() {
        let cmd = kvm_iowr(0xb0, 8);
        assert_eq!(ioc_type(cmd), KVMIO);
        assert_eq!(ioc_size(cmd), 8);
        assert_eq!(ioc_type(0x5401), 0x54); // TCGETS is not a KVM ioctl
    }

    #[test]
    fn vm_and_vcpu_numbers_match_kvm() {
        assert_eq!(KVM_CREATE_VCPU, 0xae41);
        assert_eq!(KVM_SET_USER_MEMORY_REGION2, 0x40a0_ae49);
        assert_eq!(KVM_SET_SIGNAL_MASK, 0x4004_ae8b);
        assert_eq!(KVM_SET_MP_STATE, 0x4004_ae99);
        assert_eq!(KVM_SET_ONE_REG, 0x4010_aeac);
        assert_eq!(VmIoctl::decode(0xae03), Some(VmIoctl::CheckExtension));
        assert_eq!(KVM_CREATE_DEVICE, 0xc00c_aee0);
        assert_eq!(KVM_IOEVENTFD, 0x4040_ae79);
        assert_eq!(KVM_IRQ_LINE, 0x4008_ae61);
        assert_eq!(KVM_IRQ_LINE_STATUS, 0xc008_ae67);
        assert_eq!(KVM_IRQFD, 0x4020_ae76);
        assert_eq!(KVM_SET_GSI_ROUTING, 0x4008_ae6a);
        assert_eq!(KVM_SIGNAL_MSI, 0x4020_aea5);
        assert_eq!(KVM_ENABLE_CAP, 0x4068_aea3);
        assert_eq!(VmIoctl::decode(0x4068_aea3), Some(VmIoctl::EnableCap));
        assert_eq!(KVM_SET_DEVICE_ATTR, 0x4018_aee1);
        assert_eq!(KVM_HAS_DEVICE_ATTR, 0x4018_aee3);
        assert_eq!(VcpuIoctl::decode(0xae80), Some(VcpuIoctl::Run));
        assert_eq!(VcpuIoctl::decode(0xae41), None);
        assert_eq!(KVM_REGISTER_COALESCED_MMIO, 0x4010_ae67);
        assert_eq!(KVM_UNREGISTER_COALESCED_MMIO, 0x4010_ae68);
        assert_eq!(KVM_GET_STATS_FD, 0xaece);
        assert_eq!(KVM_GET_DIRTY_LOG, 0x4010_ae42);
        assert_eq!(KVM_CLEAR_DIRTY_LOG, 0xc018_aec0);
        assert_eq!(VmIoctl::decode(0xc018_aec0), Some(VmIoctl::ClearDirtyLog));
        // Same number as KVM_IRQ_LINE_STATUS, told apart by direction and size.
        assert_eq!(VmIoctl::decode(0xc008_ae67), Some(VmIoctl::IrqLineStatus));
        assert_eq!(
            VmIoctl::decode(0x4010_ae67),
            Some(VmIoctl::RegisterCoalescedMmio)
        );
        assert_eq!(VcpuIoctl::decode(0xaece), Some(VcpuIoctl::GetStatsFd));
    }

    #[test]
    fn vm_types() {
        assert_eq!(vm_type_ipa_bits(0, 48), Some(40));
        assert_eq!(vm_type_ipa_bits(36, 48), Some(36));
        assert_eq!(vm_type_ipa_bits(48, 44), None);
        assert_eq!(vm_type_ipa_bits(31, 48), None);
        assert_eq!(vm_type_ipa_bits(1 << 31, 48), None); // KVM_VM_TYPE_ARM_PROTECTED
        assert_eq!(vm_type_ipa_bits(0, 36), None); // the default does not fit
    }

    #[test]
    fn decode_system_ioctls() {
        assert_eq!(
            SystemIoctl::decode(0xae00),
            Some(SystemIoctl::GetApiVersion)
        );
        assert_eq!(
            SystemIoctl::decode(0xae03),
            Some(SystemIoctl::CheckExtension)
        );
        assert_eq!(SystemIoctl::decode(0xae02), None); // KVM_GET_MSR_INDEX_LIST: x86 only
        assert_eq!(SystemIoctl::decode(0xae80), None); // KVM_RUN is a vCPU ioctl
        assert_eq!(SystemIoctl::decode(0x5401), None);
    }
}
