// SPDX-License-Identifier: GPL-2.0

//! Compile-time checks of the KVM ABI values `logic/` keeps its own copies of.
//!
//! `logic/` builds on the host too, so it cannot see the bindgen output and spells out
//! the numbers it decodes. Every copy that `linux/kvm.h` (or arm64's `asm/kvm.h`) defines
//! as a plain constant is compared here with the generated binding, so a uapi change
//! breaks the build instead of the ABI. Ioctl numbers are `_IOW(...)` macros, which
//! bindgen does not evaluate: for those the argument size encoded in rkvm's number is
//! compared with the size of the uapi struct it names.

use super::bindings as b;
use crate::logic::{
    caps, coalesced, dirtylog, features::feature, fwregs, ioctl, ioeventfd, irqroute, memslot,
    psci, pvtime, regs, smccc_filter, stats, timer, vgic::attr,
};
use core::mem::{offset_of, size_of};

/// Asserts that each of `logic`'s values equals the uapi constant it copies.
macro_rules! same_as_uapi {
    ($($ours:expr => $uapi:ident),* $(,)?) => {
        const _: () = { $(assert!($ours as u64 == b::$uapi as u64);)* };
    };
}

/// Asserts that each ioctl number encodes the size of its uapi argument struct.
macro_rules! ioctl_arg_is {
    ($($nr:ident: $t:ident),* $(,)?) => {
        const _: () = { $(assert!(ioctl::ioc_size(ioctl::$nr) == size_of::<b::$t>());)* };
    };
}

// SMCCC filter actions (`logic/smccc_filter.rs`).
same_as_uapi!(
    smccc_filter::FILTER_HANDLE => kvm_smccc_filter_action_KVM_SMCCC_FILTER_HANDLE,
    smccc_filter::FILTER_DENY => kvm_smccc_filter_action_KVM_SMCCC_FILTER_DENY,
    smccc_filter::FILTER_FWD_TO_USER => kvm_smccc_filter_action_KVM_SMCCC_FILTER_FWD_TO_USER,
);

// `KVM_ARM_VCPU_INIT` feature bits (`logic/features.rs` keeps masks, the uapi bit numbers).
same_as_uapi!(
    feature::POWER_OFF.trailing_zeros() => KVM_ARM_VCPU_POWER_OFF,
    feature::PSCI_0_2.trailing_zeros() => KVM_ARM_VCPU_PSCI_0_2,
    feature::PTRAUTH_ADDRESS.trailing_zeros() => KVM_ARM_VCPU_PTRAUTH_ADDRESS,
    feature::PTRAUTH_GENERIC.trailing_zeros() => KVM_ARM_VCPU_PTRAUTH_GENERIC,
);

// `KVM_CHECK_EXTENSION` capabilities (`logic/caps.rs`).
same_as_uapi!(
    caps::KVM_CAP_IRQCHIP => KVM_CAP_IRQCHIP,
    caps::KVM_CAP_USER_MEMORY => KVM_CAP_USER_MEMORY,
    caps::KVM_CAP_NR_VCPUS => KVM_CAP_NR_VCPUS,
    caps::KVM_CAP_NR_MEMSLOTS => KVM_CAP_NR_MEMSLOTS,
    caps::KVM_CAP_MP_STATE => KVM_CAP_MP_STATE,
    caps::KVM_CAP_COALESCED_MMIO => KVM_CAP_COALESCED_MMIO,
    caps::KVM_CAP_DESTROY_MEMORY_REGION_WORKS => KVM_CAP_DESTROY_MEMORY_REGION_WORKS,
    caps::KVM_CAP_IOEVENTFD => KVM_CAP_IOEVENTFD,
    caps::KVM_CAP_JOIN_MEMORY_REGIONS_WORKS => KVM_CAP_JOIN_MEMORY_REGIONS_WORKS,
    caps::KVM_CAP_IRQFD => KVM_CAP_IRQFD,
    caps::KVM_CAP_IRQ_ROUTING => KVM_CAP_IRQ_ROUTING,
    caps::KVM_CAP_INTERNAL_ERROR_DATA => KVM_CAP_INTERNAL_ERROR_DATA,
    caps::KVM_CAP_MAX_VCPUS => KVM_CAP_MAX_VCPUS,
    caps::KVM_CAP_VCPU_EVENTS => KVM_CAP_VCPU_EVENTS,
    caps::KVM_CAP_ARM_INJECT_SERROR_ESR => KVM_CAP_ARM_INJECT_SERROR_ESR,
    caps::KVM_CAP_ARM_INJECT_EXT_DABT => KVM_CAP_ARM_INJECT_EXT_DABT,
    caps::KVM_CAP_ONE_REG => KVM_CAP_ONE_REG,
    caps::KVM_CAP_READONLY_MEM => KVM_CAP_READONLY_MEM,
    caps::KVM_CAP_IRQFD_RESAMPLE => KVM_CAP_IRQFD_RESAMPLE,
    caps::KVM_CAP_ARM_PSCI => KVM_CAP_ARM_PSCI,
    caps::KVM_CAP_ARM_PSCI_0_2 => KVM_CAP_ARM_PSCI_0_2,
    caps::KVM_CAP_IOEVENTFD_ANY_LENGTH => KVM_CAP_IOEVENTFD_ANY_LENGTH,
    caps::KVM_CAP_CHECK_EXTENSION_VM => KVM_CAP_CHECK_EXTENSION_VM,
    caps::KVM_CAP_MAX_VCPU_ID => KVM_CAP_MAX_VCPU_ID,
    caps::KVM_CAP_COALESCED_PIO => KVM_CAP_COALESCED_PIO,
    caps::KVM_CAP_BINARY_STATS_FD => KVM_CAP_BINARY_STATS_FD,
    caps::KVM_CAP_IMMEDIATE_EXIT => KVM_CAP_IMMEDIATE_EXIT,
    caps::KVM_CAP_ARM_VM_IPA_SIZE => KVM_CAP_ARM_VM_IPA_SIZE,
    caps::KVM_CAP_STEAL_TIME => KVM_CAP_STEAL_TIME,
    caps::KVM_CAP_HALT_POLL => KVM_CAP_HALT_POLL,
    caps::KVM_CAP_ARM_SYSTEM_SUSPEND => KVM_CAP_ARM_SYSTEM_SUSPEND,
    caps::KVM_CAP_DEVICE_CTRL => KVM_CAP_DEVICE_CTRL,
    caps::KVM_CAP_PTP_KVM => KVM_CAP_PTP_KVM,
    caps::KVM_CAP_USER_MEMORY2 => KVM_CAP_USER_MEMORY2,
    caps::KVM_CAP_SIGNAL_MSI => KVM_CAP_SIGNAL_MSI,
    caps::KVM_CAP_MSI_DEVID => KVM_CAP_MSI_DEVID,
    caps::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 => KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
    caps::KVM_CAP_ARM_PTRAUTH_ADDRESS => KVM_CAP_ARM_PTRAUTH_ADDRESS,
    caps::KVM_CAP_ARM_PTRAUTH_GENERIC => KVM_CAP_ARM_PTRAUTH_GENERIC,
);

// Ioctls (`logic/ioctl.rs`): the type byte, the API version and each argument size.
same_as_uapi!(
    ioctl::KVMIO => KVMIO,
    ioctl::API_VERSION => KVM_API_VERSION,
);
ioctl_arg_is!(
    KVM_SET_USER_MEMORY_REGION: kvm_userspace_memory_region,
    KVM_GET_VCPU_EVENTS: kvm_vcpu_events,
    KVM_SET_VCPU_EVENTS: kvm_vcpu_events,
    KVM_SET_USER_MEMORY_REGION2: kvm_userspace_memory_region2,
    KVM_ARM_PREFERRED_TARGET: kvm_vcpu_init,
    KVM_CREATE_DEVICE: kvm_create_device,
    KVM_IOEVENTFD: kvm_ioeventfd,
    KVM_IRQ_LINE: kvm_irq_level,
    KVM_IRQ_LINE_STATUS: kvm_irq_level,
    KVM_IRQFD: kvm_irqfd,
    KVM_SET_GSI_ROUTING: kvm_irq_routing,
    KVM_SIGNAL_MSI: kvm_msi,
    KVM_REGISTER_COALESCED_MMIO: kvm_coalesced_mmio_zone,
    KVM_UNREGISTER_COALESCED_MMIO: kvm_coalesced_mmio_zone,
    KVM_ENABLE_CAP: kvm_enable_cap,
    KVM_SET_DEVICE_ATTR: kvm_device_attr,
    KVM_GET_DEVICE_ATTR: kvm_device_attr,
    KVM_HAS_DEVICE_ATTR: kvm_device_attr,
    KVM_SET_SIGNAL_MASK: kvm_signal_mask,
    KVM_GET_MP_STATE: kvm_mp_state,
    KVM_SET_MP_STATE: kvm_mp_state,
    KVM_GET_ONE_REG: kvm_one_reg,
    KVM_SET_ONE_REG: kvm_one_reg,
    KVM_ARM_VCPU_INIT: kvm_vcpu_init,
    KVM_GET_REG_LIST: kvm_reg_list,
    KVM_GET_DIRTY_LOG: kvm_dirty_log,
    KVM_CLEAR_DIRTY_LOG: kvm_clear_dirty_log,
);

// vGIC and ITS devices (`logic/vgic/attr.rs`).
same_as_uapi!(
    attr::KVM_DEV_TYPE_ARM_VGIC_V3 => kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
    attr::KVM_DEV_TYPE_ARM_VGIC_ITS => kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_ITS,
    attr::KVM_CREATE_DEVICE_TEST => KVM_CREATE_DEVICE_TEST,
    attr::GRP_ADDR => KVM_DEV_ARM_VGIC_GRP_ADDR,
    attr::GRP_DIST_REGS => KVM_DEV_ARM_VGIC_GRP_DIST_REGS,
    attr::GRP_CPU_REGS => KVM_DEV_ARM_VGIC_GRP_CPU_REGS,
    attr::GRP_NR_IRQS => KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
    attr::GRP_CTRL => KVM_DEV_ARM_VGIC_GRP_CTRL,
    attr::GRP_REDIST_REGS => KVM_DEV_ARM_VGIC_GRP_REDIST_REGS,
    attr::GRP_CPU_SYSREGS => KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS,
    attr::GRP_LEVEL_INFO => KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
    attr::GRP_ITS_REGS => KVM_DEV_ARM_VGIC_GRP_ITS_REGS,
    attr::GRP_MAINT_IRQ => KVM_DEV_ARM_VGIC_GRP_MAINT_IRQ,
    attr::ADDR_TYPE_DIST => KVM_VGIC_V3_ADDR_TYPE_DIST,
    attr::ADDR_TYPE_REDIST => KVM_VGIC_V3_ADDR_TYPE_REDIST,
    attr::ADDR_TYPE_REDIST_REGION => KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION,
    attr::ITS_ADDR_TYPE => KVM_VGIC_ITS_ADDR_TYPE,
    attr::CTRL_INIT => KVM_DEV_ARM_VGIC_CTRL_INIT,
    attr::CTRL_SAVE_PENDING_TABLES => KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES,
    attr::CTRL_ITS_SAVE_TABLES => KVM_DEV_ARM_ITS_SAVE_TABLES,
    attr::CTRL_ITS_RESTORE_TABLES => KVM_DEV_ARM_ITS_RESTORE_TABLES,
    attr::CTRL_ITS_RESET => KVM_DEV_ARM_ITS_CTRL_RESET,
    attr::IRQ_TYPE_CPU => KVM_ARM_IRQ_TYPE_CPU,
    attr::IRQ_TYPE_SPI => KVM_ARM_IRQ_TYPE_SPI,
    attr::IRQ_TYPE_PPI => KVM_ARM_IRQ_TYPE_PPI,
);

// GSI routing, MSIs and irqfds (`logic/irqroute.rs`, `irqfd.rs`). `KVM_MAX_IRQ_ROUTES`
// is kernel-internal (`include/linux/kvm_host.h`), not in the bindings.
same_as_uapi!(
    irqroute::TYPE_IRQCHIP => KVM_IRQ_ROUTING_IRQCHIP,
    irqroute::TYPE_MSI => KVM_IRQ_ROUTING_MSI,
    irqroute::MSI_VALID_DEVID => KVM_MSI_VALID_DEVID,
    crate::irqfd::FLAG_DEASSIGN => KVM_IRQFD_FLAG_DEASSIGN,
    crate::irqfd::FLAG_RESAMPLE => KVM_IRQFD_FLAG_RESAMPLE,
);
const _: () = assert!(irqroute::ENTRY_WORDS * 4 == size_of::<b::kvm_irq_routing_entry>());

// ioeventfds (`logic/ioeventfd.rs`): the flags are bit numbers in the uapi enum.
same_as_uapi!(
    ioeventfd::FLAG_DATAMATCH.trailing_zeros() => kvm_ioeventfd_flag_nr_datamatch,
    ioeventfd::FLAG_PIO.trailing_zeros() => kvm_ioeventfd_flag_nr_pio,
    ioeventfd::FLAG_DEASSIGN.trailing_zeros() => kvm_ioeventfd_flag_nr_deassign,
    ioeventfd::FLAG_VIRTIO_CCW_NOTIFY.trailing_zeros()
        => kvm_ioeventfd_flag_nr_virtio_ccw_notify,
);

// Memory slots, coalesced MMIO and binary stats.
same_as_uapi!(
    memslot::KVM_MEM_READONLY => KVM_MEM_READONLY,
    dirtylog::KVM_MEM_LOG_DIRTY_PAGES => KVM_MEM_LOG_DIRTY_PAGES,
    dirtylog::MANUAL_PROTECT_ENABLE => KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
    dirtylog::INITIALLY_SET => KVM_DIRTY_LOG_INITIALLY_SET,
    coalesced::PAGE_OFFSET => KVM_COALESCED_MMIO_PAGE_OFFSET,
);
const _: () = assert!(coalesced::ENTRY_SIZE == size_of::<b::kvm_coalesced_mmio>());
const _: () = assert!(stats::HEADER_SIZE == size_of::<b::kvm_stats_header>());

// vCPU device attributes (`logic/timer.rs`, `logic/pvtime.rs`).
same_as_uapi!(
    timer::VCPU_PMU_V3_CTRL => KVM_ARM_VCPU_PMU_V3_CTRL,
    timer::VCPU_TIMER_CTRL => KVM_ARM_VCPU_TIMER_CTRL,
    pvtime::VCPU_PVTIME_CTRL => KVM_ARM_VCPU_PVTIME_CTRL,
    pvtime::VCPU_PVTIME_IPA => KVM_ARM_VCPU_PVTIME_IPA,
);

// PSCI, system events and MP states (`logic/psci.rs`). The PSCI and SMCCC function ids
// are in `include/uapi/linux/psci.h` and `arm-smccc.h`, which the bindings do not carry.
same_as_uapi!(
    psci::KVM_PSCI_FN_BASE => KVM_PSCI_FN_BASE,
    psci::SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2 => KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2,
    psci::SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2 => KVM_SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2,
    psci::KVM_MP_STATE_RUNNABLE => KVM_MP_STATE_RUNNABLE,
    psci::KVM_MP_STATE_STOPPED => KVM_MP_STATE_STOPPED,
    psci::KVM_MP_STATE_SUSPENDED => KVM_MP_STATE_SUSPENDED,
);

// Firmware pseudo-registers (`logic/fwregs.rs`).
same_as_uapi!(
    fwregs::WA2_NOT_AVAIL => KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_AVAIL,
    fwregs::WA2_UNKNOWN => KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_UNKNOWN,
    fwregs::WA2_AVAIL => KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_AVAIL,
    fwregs::WA2_NOT_REQUIRED => KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_NOT_REQUIRED,
    fwregs::WA2_ENABLED => KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED,
);

// `KVM_{GET,SET}_ONE_REG` ids and `struct kvm_regs` (`logic/regs.rs`).
same_as_uapi!(
    regs::KVM_REG_ARM64 => KVM_REG_ARM64,
    regs::ARCH_MASK => KVM_REG_ARCH_MASK,
    regs::SIZE_MASK => KVM_REG_SIZE_MASK,
    regs::SIZE_SHIFT => KVM_REG_SIZE_SHIFT,
    regs::KVM_REG_SIZE_U32 => KVM_REG_SIZE_U32,
    regs::KVM_REG_SIZE_U64 => KVM_REG_SIZE_U64,
    regs::KVM_REG_SIZE_U128 => KVM_REG_SIZE_U128,
    regs::KVM_REG_ARM_CORE => KVM_REG_ARM_CORE,
    regs::KVM_REG_ARM64_SYSREG => KVM_REG_ARM64_SYSREG,
    regs::KVM_REG_ARM_FW => KVM_REG_ARM_FW,
    regs::KVM_REG_ARM_FW_FEAT_BMAP => KVM_REG_ARM_FW_FEAT_BMAP,
);
/// Byte offset of a `struct kvm_regs` member, in the 32-bit words core register ids count.
macro_rules! word_of {
    ($($f:tt)+) => {
        offset_of!(b::kvm_regs, $($f)+) / 4
    };
}
const _: () = {
    assert!(regs::OFF_X0 as usize == word_of!(regs.regs));
    assert!(regs::OFF_SP as usize == word_of!(regs.sp));
    assert!(regs::OFF_PC as usize == word_of!(regs.pc));
    assert!(regs::OFF_PSTATE as usize == word_of!(regs.pstate));
    assert!(regs::OFF_SP_EL1 as usize == word_of!(sp_el1));
    assert!(regs::OFF_ELR_EL1 as usize == word_of!(elr_el1));
    assert!(regs::OFF_SPSR0 as usize == word_of!(spsr));
    assert!(regs::OFF_V0 as usize == word_of!(fp_regs.vregs));
    assert!(regs::OFF_FPSR as usize == word_of!(fp_regs.fpsr));
    assert!(regs::OFF_FPCR as usize == word_of!(fp_regs.fpcr));
    assert!(regs::KVM_REGS_WORDS as usize * 4 == size_of::<b::kvm_regs>());
};
