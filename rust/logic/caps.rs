// SPDX-License-Identifier: GPL-2.0

//! `KVM_CHECK_EXTENSION`: which capabilities rkvm reports, and with what value.
//!
//! KVM counterpart: `kvm_vm_ioctl_check_extension_generic()` and the arm64
//! `kvm_vm_ioctl_check_extension()`. The rule is the ABI's: a capability is reported
//! (non-zero) only once it works end to end. Unknown numbers answer 0, never an error,
//! because clients probe numbers newer than the kernel they run on.

/// A capability number as userspace passes it (`KVM_CAP_*`, an `unsigned long`).
pub(crate) type CapNr = u64;

pub(crate) const KVM_CAP_IRQCHIP: CapNr = 0;
pub(crate) const KVM_CAP_USER_MEMORY: CapNr = 3;
pub(crate) const KVM_CAP_NR_VCPUS: CapNr = 9;
pub(crate) const KVM_CAP_NR_MEMSLOTS: CapNr = 10;
pub(crate) const KVM_CAP_MP_STATE: CapNr = 14;
pub(crate) const KVM_CAP_SYNC_MMU: CapNr = 16;
pub(crate) const KVM_CAP_COALESCED_MMIO: CapNr = 15;
pub(crate) const KVM_CAP_DESTROY_MEMORY_REGION_WORKS: CapNr = 21;
pub(crate) const KVM_CAP_IOEVENTFD: CapNr = 36;
pub(crate) const KVM_CAP_JOIN_MEMORY_REGIONS_WORKS: CapNr = 30;
pub(crate) const KVM_CAP_IRQFD: CapNr = 32;
pub(crate) const KVM_CAP_IRQ_ROUTING: CapNr = 25;
pub(crate) const KVM_CAP_INTERNAL_ERROR_DATA: CapNr = 40;
pub(crate) const KVM_CAP_MAX_VCPUS: CapNr = 66;
pub(crate) const KVM_CAP_ONE_REG: CapNr = 70;
pub(crate) const KVM_CAP_READONLY_MEM: CapNr = 81;
pub(crate) const KVM_CAP_IRQFD_RESAMPLE: CapNr = 82;
pub(crate) const KVM_CAP_ARM_PSCI: CapNr = 87;
pub(crate) const KVM_CAP_ARM_PSCI_0_2: CapNr = 102;
pub(crate) const KVM_CAP_IOEVENTFD_ANY_LENGTH: CapNr = 122;
pub(crate) const KVM_CAP_CHECK_EXTENSION_VM: CapNr = 105;
pub(crate) const KVM_CAP_MAX_VCPU_ID: CapNr = 128;
pub(crate) const KVM_CAP_COALESCED_PIO: CapNr = 162;
pub(crate) const KVM_CAP_BINARY_STATS_FD: CapNr = 203;
pub(crate) const KVM_CAP_IMMEDIATE_EXIT: CapNr = 136;
pub(crate) const KVM_CAP_ARM_VM_IPA_SIZE: CapNr = 165;
pub(crate) const KVM_CAP_STEAL_TIME: CapNr = 187;
pub(crate) const KVM_CAP_HALT_POLL: CapNr = 182;
pub(crate) const KVM_CAP_ARM_SYSTEM_SUSPEND: CapNr = 216;
pub(crate) const KVM_CAP_DEVICE_CTRL: CapNr = 89;
pub(crate) const KVM_CAP_PTP_KVM: CapNr = 198;
pub(crate) const KVM_CAP_USER_MEMORY2: CapNr = 231;
pub(crate) const KVM_CAP_SIGNAL_MSI: CapNr = 77;
pub(crate) const KVM_CAP_MSI_DEVID: CapNr = 131;
pub(crate) const KVM_CAP_VCPU_EVENTS: CapNr = 41;
pub(crate) const KVM_CAP_ARM_INJECT_SERROR_ESR: CapNr = 158;
pub(crate) const KVM_CAP_ARM_INJECT_EXT_DABT: CapNr = 178;
pub(crate) const KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: CapNr = 168;
pub(crate) const KVM_CAP_ARM_PTRAUTH_ADDRESS: CapNr = 171;
pub(crate) const KVM_CAP_ARM_PTRAUTH_GENERIC: CapNr = 172;

/// What the answers depend on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Host {
    /// VMs can be created and run on this host (the backend has a world switch).
    pub(crate) runs_guests: bool,
    /// The largest IPA size a VM can have.
    pub(crate) max_ipa_bits: u32,
    /// Online CPUs: the recommended vCPU count.
    pub(crate) online_cpus: u32,
    /// Most vCPUs per VM, and the bound on vCPU ids.
    pub(crate) max_vcpus: u32,
    /// Memslots per VM.
    pub(crate) max_memslots: u32,
    /// An in-kernel vGICv3 can be created (`KVM_CREATE_DEVICE`, its attributes, guest
    /// MMIO, SGIs, `KVM_IRQ_LINE`).
    pub(crate) vgic: bool,
    /// The kernel accounts the time tasks wait to run (`CONFIG_SCHED_INFO`), which PV
    /// stolen time reports.
    pub(crate) steal_time: bool,
    /// Asked on a VM fd whose VM has an ITS: its MSIs need a DeviceID (KVM's
    /// `msis_require_devid`; false on the system fd).
    pub(crate) msi_devid: bool,
    /// Every CPU has RAS: a virtual SError carries the syndrome userspace gives it
    /// (VSESR_EL2).
    pub(crate) ras: bool,
    /// Every CPU has address and generic pointer authentication with one algorithm
    /// (`logic::ptrauth::host_has_full_ptrauth`).
    pub(crate) ptrauth: bool,
}

/// The value `KVM_CHECK_EXTENSION` returns for `cap`: 0 when unsupported.
pub(crate) fn check_extension(cap: CapNr, host: &Host) -> i64 {
    if !host.runs_guests {
        return 0;
    }
    match cap {
        KVM_CAP_USER_MEMORY
        | KVM_CAP_MP_STATE
        // Stage 2 follows the VMM's mappings through an MMU notifier.
        | KVM_CAP_SYNC_MMU
        | KVM_CAP_DESTROY_MEMORY_REGION_WORKS
        | KVM_CAP_JOIN_MEMORY_REGIONS_WORKS
        | KVM_CAP_INTERNAL_ERROR_DATA
        | KVM_CAP_IOEVENTFD
        | KVM_CAP_IOEVENTFD_ANY_LENGTH
        | KVM_CAP_ONE_REG
        | KVM_CAP_READONLY_MEM
        // PSCI 0.1 (KVM's private function ids) without KVM_ARM_VCPU_PSCI_0_2; 0.2+ with.
        | KVM_CAP_ARM_PSCI
        | KVM_CAP_ARM_PSCI_0_2
        | KVM_CAP_CHECK_EXTENSION_VM
        | KVM_CAP_IMMEDIATE_EXIT
        | KVM_CAP_PTP_KVM
        | KVM_CAP_ARM_SYSTEM_SUSPEND
        | KVM_CAP_USER_MEMORY2
        | KVM_CAP_BINARY_STATS_FD
        | KVM_CAP_VCPU_EVENTS
        | KVM_CAP_ARM_INJECT_EXT_DABT
        // Generic in KVM: 1 on the system and every VM fd, whatever the VM's maximum.
        | KVM_CAP_HALT_POLL
        // PIO zones register (on a bus nothing on arm64 writes), as on KVM.
        | KVM_CAP_COALESCED_PIO => 1,
        KVM_CAP_STEAL_TIME => i64::from(host.steal_time),
        KVM_CAP_COALESCED_MMIO => super::coalesced::PAGE_OFFSET as i64,
        KVM_CAP_NR_VCPUS => i64::from(host.online_cpus.min(host.max_vcpus)),
        KVM_CAP_MAX_VCPUS | KVM_CAP_MAX_VCPU_ID => i64::from(host.max_vcpus),
        KVM_CAP_NR_MEMSLOTS => i64::from(host.max_memslots),
        KVM_CAP_ARM_VM_IPA_SIZE => i64::from(host.max_ipa_bits),
        // KVM_SIGNAL_MSI exists with a vGIC (it answers ENODEV until an ITS does).
        KVM_CAP_IRQCHIP | KVM_CAP_DEVICE_CTRL | KVM_CAP_IRQFD | KVM_CAP_IRQFD_RESAMPLE | KVM_CAP_SIGNAL_MSI => {
            i64::from(host.vgic)
        }
        KVM_CAP_MSI_DEVID => i64::from(host.msi_devid),
        KVM_CAP_ARM_INJECT_SERROR_ESR => i64::from(host.ras),
        // Both or neither, as KVM_ARM_VCPU_INIT takes the two features.
        KVM_CAP_ARM_PTRAUTH_ADDRESS | KVM_CAP_ARM_PTRAUTH_GENERIC => i64::from(host.ptrauth),
        // KVM_GET_DIRTY_LOG and KVM_CLEAR_DIRTY_LOG; the value is the options
        // KVM_ENABLE_CAP takes (arm64's KVM_DIRTY_LOG_MANUAL_CAPS).
        KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 => super::dirtylog::MANUAL_CAPS as i64,
        // KVM_SET_GSI_ROUTING keeps its table with or without a vGIC, as KVM.
        KVM_CAP_IRQ_ROUTING => i64::from(super::irqroute::MAX_ROUTES),
        _ => 0,
    }
}

/// A capability `KVM_ENABLE_CAP` turns on for a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VmCap {
    /// PSCI `SYSTEM_SUSPEND` is offered and exits to userspace.
    SystemSuspend,
    /// The VM's maximum halt-polling time in ns, in place of the `halt_poll_ns` module
    /// parameter (`logic::halt_poll`).
    HaltPoll(u32),
    /// The dirty log's manual-protect options (`KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`).
    ManualDirtyLog(super::dirtylog::Mode),
}

/// `KVM_ENABLE_CAP` on a VM fd with `args[0]` = `arg0`, as KVM's
/// `kvm_vm_ioctl_enable_cap{,_generic}`: flags must be 0, and only the capabilities rkvm
/// implements can be enabled, with the arguments they take (`KVM_CAP_HALT_POLL`'s must
/// fit 32 bits; `None`: `EINVAL`).
pub(crate) fn enable_vm_cap(cap: u32, flags: u32, arg0: u64) -> Option<VmCap> {
    if flags != 0 {
        return None;
    }
    match CapNr::from(cap) {
        KVM_CAP_ARM_SYSTEM_SUSPEND => Some(VmCap::SystemSuspend),
        KVM_CAP_HALT_POLL => super::halt_poll::enable_cap_arg(flags, arg0).map(VmCap::HaltPoll),
        KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 => {
            super::dirtylog::Mode::from_cap(flags, arg0).map(VmCap::ManualDirtyLog)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Host = Host {
        runs_guests: true,
        max_ipa_bits: 44,
        online_cpus: 2,
        max_vcpus: 64,
        max_memslots: 512,
        vgic: false,
        steal_time: true,
        msi_devid: false,
        ras: true,
        ptrauth: false,
    };

    #[test]
    fn implemented_capabilities() {
        assert_eq!(check_extension(KVM_CAP_USER_MEMORY, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_ARM_VM_IPA_SIZE, &HOST), 44);
        assert_eq!(check_extension(KVM_CAP_NR_VCPUS, &HOST), 2);
        assert_eq!(check_extension(KVM_CAP_MAX_VCPUS, &HOST), 64);
        assert_eq!(check_extension(KVM_CAP_NR_MEMSLOTS, &HOST), 512);
        // Zero-length and any-length ioeventfds; NO_LENGTH (100) is x86's.
        assert_eq!(check_extension(KVM_CAP_IOEVENTFD, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_IOEVENTFD_ANY_LENGTH, &HOST), 1);
        assert_eq!(check_extension(100, &HOST), 0);
        // The KVM PTP hypercall (whose bitmap bit is on by default).
        assert_eq!(check_extension(KVM_CAP_PTP_KVM, &HOST), 1);
        // The ring's page offset in the vCPU mapping (arm64: 1), and PIO zones.
        assert_eq!(check_extension(KVM_CAP_COALESCED_MMIO, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_COALESCED_PIO, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_BINARY_STATS_FD, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_HALT_POLL, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_SYNC_MMU, &HOST), 1);
    }

    #[test]
    fn unknown_and_unimplemented_capabilities_read_zero() {
        // IRQCHIP without a vGIC, unknown.
        for cap in [0, 1, 0x1000, u64::MAX] {
            assert_eq!(check_extension(cap, &HOST), 0);
        }
    }

    #[test]
    fn enabling_capabilities() {
        assert_eq!(enable_vm_cap(216, 0, 0), Some(VmCap::SystemSuspend));
        assert_eq!(enable_vm_cap(216, 1, 0), None);
        assert_eq!(enable_vm_cap(182, 0, 0), Some(VmCap::HaltPoll(0)));
        assert_eq!(
            enable_vm_cap(182, 0, 200_000),
            Some(VmCap::HaltPoll(200_000))
        );
        assert_eq!(enable_vm_cap(182, 0, 1 << 32), None);
        assert_eq!(enable_vm_cap(182, 2, 0), None);
        // Capabilities rkvm does not have or that are not enabled this way (NISV_TO_USER,
        // MTE, PSCI_0_2).
        for cap in [177, 205, 102, 0, u32::MAX] {
            assert_eq!(enable_vm_cap(cap, 0, 0), None, "{cap}");
        }
    }

    #[test]
    fn dirty_log() {
        use super::super::dirtylog::Mode;
        assert_eq!(check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, &HOST), 3);
        // The older KVM_CAP_MANUAL_DIRTY_LOG_PROTECT (166) is gone from KVM; the ring is
        // not offered.
        for cap in [166, 192, 223, 225] {
            assert_eq!(check_extension(cap, &HOST), 0, "{cap}");
        }
        for arg in [0, 1, 3] {
            assert_eq!(
                enable_vm_cap(168, 0, arg),
                Some(VmCap::ManualDirtyLog(Mode::from_cap(0, arg).unwrap()))
            );
        }
        for (flags, arg) in [(0, 2), (0, 4), (1, 1), (0, u64::MAX)] {
            assert_eq!(enable_vm_cap(168, flags, arg), None, "{flags} {arg}");
        }
    }

    #[test]
    fn power_and_pv_time() {
        // Both PSCI generations: 0.1 (kvmtool requires it) and 0.2+.
        assert_eq!(check_extension(KVM_CAP_ARM_PSCI, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_ARM_PSCI_0_2, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_ARM_SYSTEM_SUSPEND, &HOST), 1);
        assert_eq!(check_extension(KVM_CAP_STEAL_TIME, &HOST), 1);
        let host = Host {
            steal_time: false,
            ..HOST
        };
        let its = Host {
            vgic: true,
            msi_devid: true,
            ..HOST
        };
        assert_eq!(check_extension(KVM_CAP_SIGNAL_MSI, &HOST), 0);
        assert_eq!(check_extension(KVM_CAP_SIGNAL_MSI, &its), 1);
        assert_eq!(check_extension(KVM_CAP_MSI_DEVID, &HOST), 0);
        assert_eq!(check_extension(KVM_CAP_MSI_DEVID, &its), 1);
        assert_eq!(check_extension(KVM_CAP_STEAL_TIME, &host), 0);
    }

    #[test]
    fn irqchip_with_a_vgic() {
        let host = Host { vgic: true, ..HOST };
        assert_eq!(check_extension(KVM_CAP_IRQCHIP, &host), 1);
        assert_eq!(check_extension(KVM_CAP_DEVICE_CTRL, &host), 1);
        assert_eq!(check_extension(KVM_CAP_IRQFD, &host), 1);
        assert_eq!(check_extension(KVM_CAP_IRQFD_RESAMPLE, &host), 1);
        assert_eq!(check_extension(KVM_CAP_DEVICE_CTRL, &HOST), 0);
        assert_eq!(check_extension(KVM_CAP_IRQFD, &HOST), 0);
        assert_eq!(check_extension(KVM_CAP_IRQ_ROUTING, &HOST), 4096);
    }

    #[test]
    fn pointer_authentication() {
        let host = Host {
            ptrauth: true,
            ..HOST
        };
        for cap in [KVM_CAP_ARM_PTRAUTH_ADDRESS, KVM_CAP_ARM_PTRAUTH_GENERIC] {
            assert_eq!(check_extension(cap, &HOST), 0);
            assert_eq!(check_extension(cap, &host), 1);
        }
    }

    #[test]
    fn nothing_without_a_world_switch() {
        let host = Host {
            runs_guests: false,
            ..HOST
        };
        assert_eq!(check_extension(KVM_CAP_USER_MEMORY, &host), 0);
        assert_eq!(check_extension(KVM_CAP_ARM_VM_IPA_SIZE, &host), 0);
    }
}
