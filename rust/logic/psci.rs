// SPDX-License-Identifier: GPL-2.0

//! SMCCC and PSCI calls from a guest: which function an HVC or SMC asks for, with which
//! arguments, and the fixed answers.
//!
//! KVM counterpart: `arch/arm64/kvm/psci.c` (`kvm_psci_1_x_call`, `kvm_psci_0_2_call`) and
//! `arch/arm64/kvm/hypercalls.c` (`SMCCC_VERSION`, `SMCCC_ARCH_FEATURES`). Function ids and
//! return codes come from `include/uapi/linux/psci.h` and `include/linux/arm-smccc.h`; the
//! semantics from Arm DEN 0022 (PSCI) and DEN 0028 (SMCCC).

/// SMCCC function-id bit 30: the SMC64/HVC64 calling convention (64-bit arguments).
const SMC64: u32 = 1 << 30;

pub(crate) const FN_PSCI_VERSION: u32 = 0x8400_0000;
pub(crate) const FN_CPU_SUSPEND: u32 = 0x8400_0001;
pub(crate) const FN64_CPU_SUSPEND: u32 = 0xc400_0001;
pub(crate) const FN_CPU_OFF: u32 = 0x8400_0002;
pub(crate) const FN_CPU_ON: u32 = 0x8400_0003;
pub(crate) const FN64_CPU_ON: u32 = 0xc400_0003;
pub(crate) const FN_AFFINITY_INFO: u32 = 0x8400_0004;
pub(crate) const FN64_AFFINITY_INFO: u32 = 0xc400_0004;
pub(crate) const FN_MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
pub(crate) const FN_SYSTEM_OFF: u32 = 0x8400_0008;
pub(crate) const FN_SYSTEM_RESET: u32 = 0x8400_0009;
pub(crate) const FN_PSCI_FEATURES: u32 = 0x8400_000a;
pub(crate) const FN_SMCCC_VERSION: u32 = 0x8000_0000;
pub(crate) const FN_SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
use super::fwregs::{
    FN_TRNG_FEATURES, FN_TRNG_GET_UUID, FN_TRNG_RND32, FN_TRNG_RND64, FN_TRNG_VERSION,
    FN_VENDOR_HYP_CALL_UID, FN_VENDOR_HYP_KVM_FEATURES, FN_VENDOR_HYP_KVM_PTP,
};

/// KVM's vendor hypervisor UID, 28b46fb6-2ec5-11e9-a9ca-4b564d003a74, in x0..x3 as the
/// SMCCC UID convention packs it. rkvm answers as KVM, since it implements KVM's ABI and
/// its guests are KVM guests; what it offers beyond that is the VM's vendor bitmap
/// (`fwregs::FwBitmaps::vendor_features`).
pub(crate) const KVM_VENDOR_HYP_UID: [u64; 4] = [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

// Return codes, as the guest reads them from x0 (a negative int, sign-extended).
pub(crate) const SUCCESS: u64 = 0;
pub(crate) const NOT_SUPPORTED: u64 = -1i64 as u64;
pub(crate) const INVALID_PARAMETERS: u64 = -2i64 as u64;
#[cfg(test)]
pub(crate) const DENIED: u64 = -3i64 as u64;
pub(crate) const ALREADY_ON: u64 = -4i64 as u64;
#[cfg(test)]
pub(crate) const ON_PENDING: u64 = -5i64 as u64;
#[cfg(test)]
pub(crate) const INTERNAL_FAILURE: u64 = -6i64 as u64;
#[cfg(test)]
pub(crate) const NOT_PRESENT: u64 = -7i64 as u64;
#[cfg(test)]
pub(crate) const DISABLED: u64 = -8i64 as u64;
#[cfg(test)]
pub(crate) const INVALID_ADDRESS: u64 = -9i64 as u64;

/// PSCI 1.0 as `PSCI_VERSION` returns it (major << 16 | minor): every function of
/// [`psci_features`]'s list, which is all PSCI 1.0 requires.
pub(crate) const PSCI_VERSION_1_0: u64 = 0x1_0000;
/// SMCCC 1.1, the first version with `SMCCC_ARCH_FEATURES`, which guests use to find the
/// Spectre workaround calls.
pub(crate) const SMCCC_VERSION_1_1: u64 = 0x1_0001;

/// `MIGRATE_INFO_TYPE` answer, as KVM: there is no Trusted OS to migrate (the PSCI value
/// also covers "multiprocessor Trusted OS", so guests need not call `MIGRATE`).
pub(crate) const MIGRATE_INFO_TYPE_NOT_PRESENT: u64 = 2;

/// `AFFINITY_INFO` states.
pub(crate) const AFFINITY_ON: u64 = 0;
pub(crate) const AFFINITY_OFF: u64 = 1;
#[cfg(test)]
pub(crate) const AFFINITY_ON_PENDING: u64 = 2;

/// `MPIDR_EL1` bits that identify a vCPU: Aff3 [39:32] and Aff2..Aff0 [23:0]
/// (`MPIDR_HWID_BITMASK`).
pub(crate) const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// A vCPU's power state as `KVM_{GET,SET}_MP_STATE` name it (arm64 uses three of KVM's
/// states; a vCPU waiting in WFI is `Runnable`, as on KVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MpState {
    Runnable,
    /// Powered off (`KVM_ARM_VCPU_POWER_OFF`, PSCI `CPU_OFF`, `SYSTEM_OFF`): runs only
    /// after a `CPU_ON` or a `KVM_SET_MP_STATE` to `Runnable`.
    Stopped,
    /// Waits like WFI, and leaves `KVM_RUN` with `KVM_SYSTEM_EVENT_WAKEUP` when an
    /// interrupt arrives; stays so until userspace makes it `Runnable`.
    Suspended,
}

/// `KVM_MP_STATE_*` values.
pub(crate) const KVM_MP_STATE_RUNNABLE: u32 = 0;
pub(crate) const KVM_MP_STATE_STOPPED: u32 = 5;
pub(crate) const KVM_MP_STATE_SUSPENDED: u32 = 10;

impl MpState {
    /// The state `KVM_SET_MP_STATE` asks for; `None` (`EINVAL`) for states arm64 has not.
    pub(crate) const fn from_uapi(v: u32) -> Option<Self> {
        match v {
            KVM_MP_STATE_RUNNABLE => Some(Self::Runnable),
            KVM_MP_STATE_STOPPED => Some(Self::Stopped),
            KVM_MP_STATE_SUSPENDED => Some(Self::Suspended),
            _ => None,
        }
    }

    pub(crate) const fn to_uapi(self) -> u32 {
        match self {
            Self::Runnable => KVM_MP_STATE_RUNNABLE,
            Self::Stopped => KVM_MP_STATE_STOPPED,
            Self::Suspended => KVM_MP_STATE_SUSPENDED,
        }
    }
}

/// A decoded SMCCC call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    PsciVersion,
    CpuSuspend {
        power_state: u64,
        entry: u64,
        context: u64,
    },
    CpuOff,
    CpuOn {
        target_mpidr: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
        lowest_level: u64,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    PsciFeatures {
        function: u32,
    },
    SmcccVersion,
    SmcccArchFeatures {
        function: u32,
    },
    VendorHypUid,
    VendorHypFeatures,
    /// `KVM_PTP`: the host's wall clock paired with the guest's chosen counter.
    KvmPtp {
        counter: u32,
    },
    TrngVersion,
    TrngFeatures {
        function: u32,
    },
    TrngGetUuid,
    /// `TRNG_RND32` (`wide` false) or `TRNG_RND64`, for `bits` bits.
    TrngRnd {
        wide: bool,
        bits: u32,
    },
    /// Any other function id; the guest gets [`NOT_SUPPORTED`].
    Unknown(u32),
}

/// Decodes x0..x3 of an HVC or SMC.
///
/// The function id is W0: SMCCC leaves the upper half of x0 unused. Under the 32-bit
/// convention (bit 30 of the id clear) the arguments are W1..W3 and the upper halves of
/// x1..x3 are ignored, so a 32-bit entry point or MPIDR is not corrupted by stale bits.
pub(crate) fn decode(x: [u64; 4]) -> Call {
    let [x0, x1, x2, x3] = x;
    let function = x0 as u32;
    let arg = |v: u64| {
        if function & SMC64 != 0 {
            v
        } else {
            v & 0xffff_ffff
        }
    };
    let (a1, a2, a3) = (arg(x1), arg(x2), arg(x3));
    match function {
        FN_PSCI_VERSION => Call::PsciVersion,
        FN_CPU_SUSPEND | FN64_CPU_SUSPEND => Call::CpuSuspend {
            power_state: a1,
            entry: a2,
            context: a3,
        },
        FN_CPU_OFF => Call::CpuOff,
        FN_CPU_ON | FN64_CPU_ON => Call::CpuOn {
            target_mpidr: a1,
            entry: a2,
            context: a3,
        },
        FN_AFFINITY_INFO | FN64_AFFINITY_INFO => Call::AffinityInfo {
            target: a1,
            lowest_level: a2,
        },
        FN_MIGRATE_INFO_TYPE => Call::MigrateInfoType,
        FN_SYSTEM_OFF => Call::SystemOff,
        FN_SYSTEM_RESET => Call::SystemReset,
        FN_PSCI_FEATURES => Call::PsciFeatures {
            function: a1 as u32,
        },
        FN_SMCCC_VERSION => Call::SmcccVersion,
        FN_SMCCC_ARCH_FEATURES => Call::SmcccArchFeatures {
            function: a1 as u32,
        },
        FN_VENDOR_HYP_CALL_UID => Call::VendorHypUid,
        FN_VENDOR_HYP_KVM_FEATURES => Call::VendorHypFeatures,
        FN_VENDOR_HYP_KVM_PTP => Call::KvmPtp { counter: a1 as u32 },
        FN_TRNG_VERSION => Call::TrngVersion,
        FN_TRNG_FEATURES => Call::TrngFeatures { function: a1 as u32 },
        FN_TRNG_GET_UUID => Call::TrngGetUuid,
        FN_TRNG_RND32 => Call::TrngRnd { wide: false, bits: a1 as u32 },
        FN_TRNG_RND64 => Call::TrngRnd { wide: true, bits: a1 as u32 },
        other => Call::Unknown(other),
    }
}

/// The answer to `PSCI_FEATURES(function)`: [`SUCCESS`] for each function rkvm implements,
/// [`NOT_SUPPORTED`] otherwise. For `CPU_SUSPEND` the 0 also says "original power_state
/// format, no OS-initiated mode", as in KVM. `SMCCC_VERSION` is listed because PSCI 1.0
/// is how a guest learns it may call it.
pub(crate) fn psci_features(function: u32) -> u64 {
    match function {
        FN_PSCI_VERSION | FN_CPU_SUSPEND | FN64_CPU_SUSPEND | FN_CPU_OFF | FN_CPU_ON
        | FN64_CPU_ON | FN_AFFINITY_INFO | FN64_AFFINITY_INFO | FN_MIGRATE_INFO_TYPE
        | FN_SYSTEM_OFF | FN_SYSTEM_RESET | FN_PSCI_FEATURES | FN_SMCCC_VERSION => SUCCESS,
        _ => NOT_SUPPORTED,
    }
}

/// Whether an MPIDR argument has only affinity bits set (`kvm_psci_valid_affinity`); a
/// `CPU_ON` or `AFFINITY_INFO` target that fails this is [`INVALID_PARAMETERS`].
pub(crate) const fn valid_affinity(mpidr: u64) -> bool {
    mpidr & !MPIDR_AFFINITY_MASK == 0
}

/// The MPIDR bits `AFFINITY_INFO` compares for `lowest_level` (`kvm_psci_affinity_mask`):
/// level 0 names one vCPU, level 1 every vCPU sharing Aff3..Aff1, and so on. `None` (the
/// call fails with [`INVALID_PARAMETERS`]) above level 3.
pub(crate) const fn affinity_level_mask(lowest_level: u64) -> Option<u64> {
    match lowest_level {
        0 => Some(MPIDR_AFFINITY_MASK),
        1 => Some(MPIDR_AFFINITY_MASK & !0xff),
        2 => Some(MPIDR_AFFINITY_MASK & !0xffff),
        3 => Some(MPIDR_AFFINITY_MASK & !0xff_ffff),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUNK: u64 = 0xdead_beef_0000_0000;

    #[test]
    fn parameterless_calls() {
        for (fid, call) in [
            (FN_PSCI_VERSION, Call::PsciVersion),
            (FN_CPU_OFF, Call::CpuOff),
            (FN_MIGRATE_INFO_TYPE, Call::MigrateInfoType),
            (FN_SYSTEM_OFF, Call::SystemOff),
            (FN_SYSTEM_RESET, Call::SystemReset),
            (FN_SMCCC_VERSION, Call::SmcccVersion),
            (FN_VENDOR_HYP_CALL_UID, Call::VendorHypUid),
            (FN_VENDOR_HYP_KVM_FEATURES, Call::VendorHypFeatures),
        ] {
            assert_eq!(decode([fid as u64, 1, 2, 3]), call);
        }
    }

    #[test]
    fn smc64_calls_keep_64_bit_arguments() {
        let x = |fid: u32| [fid as u64, JUNK | 1, JUNK | 2, JUNK | 3];
        assert_eq!(
            decode(x(FN64_CPU_ON)),
            Call::CpuOn {
                target_mpidr: JUNK | 1,
                entry: JUNK | 2,
                context: JUNK | 3
            }
        );
        assert_eq!(
            decode(x(FN64_CPU_SUSPEND)),
            Call::CpuSuspend {
                power_state: JUNK | 1,
                entry: JUNK | 2,
                context: JUNK | 3
            }
        );
        assert_eq!(
            decode(x(FN64_AFFINITY_INFO)),
            Call::AffinityInfo {
                target: JUNK | 1,
                lowest_level: JUNK | 2
            }
        );
    }

    #[test]
    fn smc32_calls_take_32_bit_arguments() {
        let x = |fid: u32| [fid as u64, JUNK | 0x101, JUNK | 0x4008_0000, JUNK | 7];
        assert_eq!(
            decode(x(FN_CPU_ON)),
            Call::CpuOn {
                target_mpidr: 0x101,
                entry: 0x4008_0000,
                context: 7
            }
        );
        assert_eq!(
            decode(x(FN_CPU_SUSPEND)),
            Call::CpuSuspend {
                power_state: 0x101,
                entry: 0x4008_0000,
                context: 7
            }
        );
        assert_eq!(
            decode(x(FN_AFFINITY_INFO)),
            Call::AffinityInfo {
                target: 0x101,
                lowest_level: 0x4008_0000
            }
        );
        assert_eq!(
            decode(x(FN_PSCI_FEATURES)),
            Call::PsciFeatures { function: 0x101 }
        );
        assert_eq!(
            decode(x(FN_SMCCC_ARCH_FEATURES)),
            Call::SmcccArchFeatures { function: 0x101 }
        );
    }

    #[test]
    fn trng_and_ptp_calls() {
        let x = |fid: u32| [fid as u64, JUNK | 0x51, 0, 0];
        assert_eq!(decode(x(FN_TRNG_VERSION)), Call::TrngVersion);
        assert_eq!(decode(x(FN_TRNG_GET_UUID)), Call::TrngGetUuid);
        assert_eq!(decode(x(FN_TRNG_FEATURES)), Call::TrngFeatures { function: 0x51 });
        assert_eq!(decode(x(FN_TRNG_RND32)), Call::TrngRnd { wide: false, bits: 0x51 });
        assert_eq!(decode(x(FN_TRNG_RND64)), Call::TrngRnd { wide: true, bits: 0x51 });
        assert_eq!(decode(x(FN_VENDOR_HYP_KVM_PTP)), Call::KvmPtp { counter: 0x51 });
    }

    #[test]
    fn function_id_is_w0() {
        assert_eq!(decode([JUNK | FN_CPU_OFF as u64, 0, 0, 0]), Call::CpuOff);
    }

    #[test]
    fn unknown_ids() {
        // MIGRATE, MIGRATE_INFO_UP_CPU, SYSTEM_SUSPEND, SYSTEM_RESET2, 64-bit forms that
        // PSCI does not define, a vendor-hypervisor call and SMCCC_ARCH_WORKAROUND_1.
        for fid in [
            0x8400_0005,
            0x8400_0007,
            0x8400_000e,
            0x8400_0012,
            0xc400_0000,
            0xc400_0002,
            0xc600_0000,
            0x8000_8000,
        ] {
            assert_eq!(decode([fid as u64, 0, 0, 0]), Call::Unknown(fid));
            assert_eq!(psci_features(fid), NOT_SUPPORTED);
        }
    }

    #[test]
    fn features_table() {
        for fid in [
            FN_PSCI_VERSION,
            FN_CPU_SUSPEND,
            FN64_CPU_SUSPEND,
            FN_CPU_OFF,
            FN_CPU_ON,
            FN64_CPU_ON,
            FN_AFFINITY_INFO,
            FN64_AFFINITY_INFO,
            FN_MIGRATE_INFO_TYPE,
            FN_SYSTEM_OFF,
            FN_SYSTEM_RESET,
            FN_PSCI_FEATURES,
            FN_SMCCC_VERSION,
        ] {
            assert_eq!(psci_features(fid), SUCCESS, "{fid:#x}");
        }
        // KVM does not list SMCCC_ARCH_FEATURES under PSCI_FEATURES either.
        assert_eq!(psci_features(FN_SMCCC_ARCH_FEATURES), NOT_SUPPORTED);
    }

    #[test]
    fn return_codes() {
        assert_eq!(NOT_SUPPORTED, 0xffff_ffff_ffff_ffff);
        assert_eq!(INVALID_PARAMETERS as i64, -2);
        assert_eq!(DENIED as i64, -3);
        assert_eq!(ALREADY_ON as i64, -4);
        assert_eq!(ON_PENDING as i64, -5);
        assert_eq!(AFFINITY_ON_PENDING, 2);
        assert_eq!(INTERNAL_FAILURE as i64, -6);
        assert_eq!(NOT_PRESENT as i64, -7);
        assert_eq!(DISABLED as i64, -8);
        assert_eq!(INVALID_ADDRESS, 0xffff_ffff_ffff_fff7);
    }

    #[test]
    fn affinity() {
        assert!(valid_affinity(0xff_00ff_ffff));
        assert!(!valid_affinity(1 << 31));
        assert!(!valid_affinity(1 << 24));
        assert_eq!(affinity_level_mask(0), Some(0xff_00ff_ffff));
        assert_eq!(affinity_level_mask(1), Some(0xff_00ff_ff00));
        assert_eq!(affinity_level_mask(2), Some(0xff_00ff_0000));
        assert_eq!(affinity_level_mask(3), Some(0xff_0000_0000));
        assert_eq!(affinity_level_mask(4), None);
        assert_eq!(affinity_level_mask(u64::MAX), None);
    }

    #[test]
    fn mp_states_round_trip_and_refuse_the_others() {
        for st in [MpState::Runnable, MpState::Stopped, MpState::Suspended] {
            assert_eq!(MpState::from_uapi(st.to_uapi()), Some(st));
        }
        // UNINITIALIZED, INIT_RECEIVED, HALTED, SIPI_RECEIVED, CHECK_STOP, OPERATING, LOAD,
        // AP_RESET_HOLD (x86 and s390 states), garbage.
        for v in [1, 2, 3, 4, 6, 7, 8, 9, 11, u32::MAX] {
            assert_eq!(MpState::from_uapi(v), None);
        }
    }
}
