// SPDX-License-Identifier: GPL-2.0

//! SMCCC and PSCI calls from a guest: which function an HVC or SMC asks for, with which
//! arguments, and the fixed answers.
//!
//! KVM counterpart: `arch/arm64/kvm/psci.c` (`kvm_psci_1_x_call`, `kvm_psci_0_2_call`,
//! `kvm_psci_0_1_call`) and
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
pub(crate) const FN_SYSTEM_SUSPEND: u32 = 0x8400_000e;
pub(crate) const FN64_SYSTEM_SUSPEND: u32 = 0xc400_000e;
pub(crate) const FN_SYSTEM_RESET2: u32 = 0x8400_0012;
pub(crate) const FN64_SYSTEM_RESET2: u32 = 0xc400_0012;
pub(crate) const FN_SYSTEM_OFF2: u32 = 0x8400_0015;
pub(crate) const FN64_SYSTEM_OFF2: u32 = 0xc400_0015;
pub(crate) const FN_SMCCC_VERSION: u32 = 0x8000_0000;

/// KVM's PSCI 0.1 function ids (`KVM_PSCI_FN(n)` in the arm64 `asm/kvm.h` uapi), which the
/// VMM writes into the guest's device tree ("arm,psci" with `cpu_on = <0x95c1ba60>` and so
/// on). PSCI 0.1 predates SMCCC: these ids are outside its numbering (their owner field
/// reads as 0x15, their bit 30 is clear although the arguments are whole registers).
pub(crate) const KVM_PSCI_FN_BASE: u32 = 0x95c1_ba5e;
pub(crate) const FN01_CPU_SUSPEND: u32 = KVM_PSCI_FN_BASE;
pub(crate) const FN01_CPU_OFF: u32 = KVM_PSCI_FN_BASE + 1;
pub(crate) const FN01_CPU_ON: u32 = KVM_PSCI_FN_BASE + 2;
pub(crate) const FN01_MIGRATE: u32 = KVM_PSCI_FN_BASE + 3;
pub(crate) const FN_SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
use super::fwregs::{
    FN_PV_TIME_FEATURES, FN_PV_TIME_ST, FN_TRNG_FEATURES, FN_TRNG_GET_UUID, FN_TRNG_RND32,
    FN_TRNG_RND64, FN_TRNG_VERSION, FN_VENDOR_HYP_CALL_UID, FN_VENDOR_HYP_KVM_FEATURES,
    FN_VENDOR_HYP_KVM_PTP,
};

/// KVM's vendor hypervisor UID, 28b46fb6-2ec5-11e9-a9ca-4b564d003a74, in x0..x3 as the
/// SMCCC UID convention packs it. rkvm answers as KVM, since it implements KVM's ABI and
/// its guests are KVM guests; what it offers beyond that is the VM's vendor bitmap
/// (`fwregs::FwBitmaps::vendor_features`).
pub(crate) const KVM_VENDOR_HYP_UID: [u64; 4] =
    [0xb66f_b428, 0xe911_c52e, 0x564b_caa9, 0x743a_004d];

// Return codes, as the guest reads them from x0 (a negative int, sign-extended).
pub(crate) const SUCCESS: u64 = 0;
pub(crate) const NOT_SUPPORTED: u64 = -1i64 as u64;
pub(crate) const INVALID_PARAMETERS: u64 = -2i64 as u64;
#[cfg(test)]
pub(crate) const DENIED: u64 = -3i64 as u64;
pub(crate) const ALREADY_ON: u64 = -4i64 as u64;
#[cfg(test)]
pub(crate) const ON_PENDING: u64 = -5i64 as u64;
pub(crate) const INTERNAL_FAILURE: u64 = -6i64 as u64;
#[cfg(test)]
pub(crate) const NOT_PRESENT: u64 = -7i64 as u64;
#[cfg(test)]
pub(crate) const DISABLED: u64 = -8i64 as u64;
#[cfg(test)]
pub(crate) const INVALID_ADDRESS: u64 = -9i64 as u64;

/// PSCI versions as `PSCI_VERSION` and the `KVM_REG_ARM_PSCI_VERSION` register carry them
/// (major << 16 | minor). 0.1 is what a vCPU without `KVM_ARM_VCPU_PSCI_0_2` has: 1, as
/// KVM's `KVM_ARM_PSCI_0_1` (`PSCI_VERSION(0, 1)`); 0 is no version at all.
pub(crate) const PSCI_VERSION_0_1: u64 = 0x1;
pub(crate) const PSCI_VERSION_0_2: u64 = 0x2;
pub(crate) const PSCI_VERSION_1_0: u64 = 0x1_0000;
pub(crate) const PSCI_VERSION_1_1: u64 = 0x1_0001;
pub(crate) const PSCI_VERSION_1_2: u64 = 0x1_0002;
pub(crate) const PSCI_VERSION_1_3: u64 = 0x1_0003;
/// What a PSCI 0.2+ vCPU gets until userspace picks a version (KVM's
/// `KVM_ARM_PSCI_LATEST`). The versions differ only in the functions they add.
pub(crate) const PSCI_VERSION_LATEST: u64 = PSCI_VERSION_1_3;

/// `SYSTEM_OFF2` power-off type bit (PSCI 1.3): hibernate. `PSCI_FEATURES(SYSTEM_OFF2)`
/// returns the bitmap of the types supported.
pub(crate) const OFF_TYPE_HIBERNATE_OFF: u64 = 1 << 0;
/// `SYSTEM_RESET2` reset types: 0 is the architectural warm reset; bit 31 set is
/// vendor-specific; the rest of the architectural range is reserved.
const RESET_TYPE_WARM: u32 = 0;
const RESET_TYPE_VENDOR_START: u32 = 0x8000_0000;

/// `kvm_run.system_event.data[0]` flags KVM sets for the PSCI 1.1+ variants.
pub(crate) const SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2: u64 = 1 << 0;
pub(crate) const SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2: u64 = 1 << 0;
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
    /// `SYSTEM_SUSPEND` (PSCI 1.0, optional); userspace reads the entry point and context
    /// from x1/x2 itself. `smc64`: the 64-bit function id.
    SystemSuspend {
        smc64: bool,
    },
    /// `SYSTEM_RESET2` (PSCI 1.1). The type is 32 bits wide in both conventions.
    SystemReset2 {
        reset_type: u32,
        smc64: bool,
    },
    /// `SYSTEM_OFF2` (PSCI 1.3). The type is 32 bits wide in both conventions.
    SystemOff2 {
        off_type: u32,
        cookie: u64,
    },
    PvTimeFeatures {
        function: u32,
    },
    PvTimeSt,
    /// KVM's PSCI 0.1 `CPU_OFF`.
    CpuOff01,
    /// KVM's PSCI 0.1 `CPU_ON`: the arguments are x1..x3 whole (KVM narrows nothing).
    CpuOn01 {
        target_mpidr: u64,
        entry: u64,
        context: u64,
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
        FN_TRNG_FEATURES => Call::TrngFeatures {
            function: a1 as u32,
        },
        FN_TRNG_GET_UUID => Call::TrngGetUuid,
        FN_TRNG_RND32 => Call::TrngRnd {
            wide: false,
            bits: a1 as u32,
        },
        FN_TRNG_RND64 => Call::TrngRnd {
            wide: true,
            bits: a1 as u32,
        },
        FN_SYSTEM_SUSPEND | FN64_SYSTEM_SUSPEND => Call::SystemSuspend {
            smc64: function & SMC64 != 0,
        },
        FN_SYSTEM_RESET2 | FN64_SYSTEM_RESET2 => Call::SystemReset2 {
            reset_type: a1 as u32,
            smc64: function & SMC64 != 0,
        },
        FN_SYSTEM_OFF2 | FN64_SYSTEM_OFF2 => Call::SystemOff2 {
            off_type: a1 as u32,
            cookie: a2,
        },
        FN_PV_TIME_FEATURES => Call::PvTimeFeatures {
            function: a1 as u32,
        },
        FN_PV_TIME_ST => Call::PvTimeSt,
        FN01_CPU_OFF => Call::CpuOff01,
        FN01_CPU_ON => Call::CpuOn01 {
            target_mpidr: x1,
            entry: x2,
            context: x3,
        },
        // KVM's PSCI 0.1 CPU_SUSPEND and MIGRATE have ids but answer NOT_SUPPORTED.
        other => Call::Unknown(other),
    }
}

/// What the dispatch needs to know about the VM and the vCPU making a call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// The vCPU's PSCI version ([`version`]).
    pub(crate) version: u64,
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND` was enabled on the VM.
    pub(crate) system_suspend: bool,
    /// The PV-time service is offered to the guest (the VM's `STD_HYP` bitmap).
    pub(crate) pv_time: bool,
    /// The vCPU has a stolen-time structure (`KVM_ARM_VCPU_PVTIME_IPA` was set).
    pub(crate) steal_time: bool,
}

/// What happens to x1..x3 when a call leaves the guest's registers mostly alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Args {
    /// Zeroed, as after any answer.
    Zero,
    Keep,
    /// Cut to their low 32 bits (a 32-bit call, whose arguments KVM narrows in place).
    Narrow,
}

/// A system-wide event that stops every vCPU and leaves `KVM_RUN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemEvent {
    Shutdown,
    Reset,
}

/// What the vCPU does about a call ([`decide`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// x0 = the value, x1..x3 = 0.
    Return(u64),
    /// x0..x3.
    Return4([u64; 4]),
    CpuSuspend,
    CpuOff,
    /// Power on `target_mpidr`; `already_on` is the answer when it is not off
    /// ([`ALREADY_ON`], or [`INVALID_PARAMETERS`] under PSCI 0.1, which has no such code).
    CpuOn {
        target_mpidr: u64,
        entry: u64,
        context: u64,
        already_on: u64,
    },
    AffinityInfo {
        target: u64,
        lowest_level: u64,
    },
    /// Every vCPU powers off and `KVM_RUN` returns `KVM_EXIT_SYSTEM_EVENT` of `event` with
    /// `flags` in `data[0]`. x0 is preloaded with [`INTERNAL_FAILURE`], the answer a vCPU
    /// that userspace resumes anyway sees (KVM's choice).
    SystemEvent {
        event: SystemEvent,
        flags: u64,
        args: Args,
    },
    /// `KVM_RUN` returns `KVM_SYSTEM_EVENT_SUSPEND`; x0 stays the function id so that
    /// userspace can read the whole call.
    SystemSuspend {
        args: Args,
    },
    /// Initialise the stolen-time structure and return its IPA.
    PvTimeSt,
    /// `KVM_FEATURES`, `KVM_PTP` or a TRNG call: answered from the VM's firmware bitmaps
    /// and the kernel's clock and random source (`logic::fwregs`).
    Firmware(Call),
}

/// The answer to an SMCCC call, as KVM 7.3's `kvm_smccc_call_handler` and
/// `kvm_psci_call` give it.
pub(crate) fn decide(call: Call, cfg: &Config) -> Decision {
    use Decision::Return;
    match call {
        // SMCCC discovery and the vendor-hypervisor calls, whatever the PSCI version.
        Call::SmcccVersion => Return(SMCCC_VERSION_1_1),
        Call::SmcccArchFeatures { function } => Return(arch_features(function, cfg)),
        Call::VendorHypUid => Decision::Return4(KVM_VENDOR_HYP_UID),
        Call::VendorHypFeatures
        | Call::KvmPtp { .. }
        | Call::TrngVersion
        | Call::TrngFeatures { .. }
        | Call::TrngGetUuid
        | Call::TrngRnd { .. } => Decision::Firmware(call),
        Call::PvTimeFeatures { .. } | Call::PvTimeSt if !cfg.pv_time => Return(NOT_SUPPORTED),
        Call::PvTimeFeatures { function } => Return(pv_time_features(function, cfg.steal_time)),
        Call::PvTimeSt if cfg.steal_time => Decision::PvTimeSt,
        Call::PvTimeSt | Call::Unknown(_) => Return(NOT_SUPPORTED),
        _ => decide_psci(call, cfg),
    }
}

/// PSCI proper. 0.1 (a vCPU without `KVM_ARM_VCPU_PSCI_0_2`) has only KVM's private
/// `CPU_ON` and `CPU_OFF`; 0.2 has the base functions; 1.x adds `PSCI_FEATURES`,
/// `SYSTEM_SUSPEND` (when enabled), 1.1 `SYSTEM_RESET2`, 1.3 `SYSTEM_OFF2`.
fn decide_psci(call: Call, cfg: &Config) -> Decision {
    use Decision::Return;
    if cfg.version == PSCI_VERSION_0_1 {
        return decide_psci_0_1(call);
    }
    let minor = (cfg.version >> 16 == 1).then_some(cfg.version & 0xffff);
    let zero = Args::Zero;
    match call {
        Call::PsciVersion => Return(cfg.version),
        Call::CpuSuspend { .. } => Decision::CpuSuspend,
        Call::CpuOff => Decision::CpuOff,
        Call::CpuOn {
            target_mpidr,
            entry,
            context,
        } => Decision::CpuOn {
            target_mpidr,
            entry,
            context,
            already_on: ALREADY_ON,
        },
        Call::AffinityInfo {
            target,
            lowest_level,
        } => Decision::AffinityInfo {
            target,
            lowest_level,
        },
        Call::MigrateInfoType => Return(MIGRATE_INFO_TYPE_NOT_PRESENT),
        Call::SystemOff => Decision::SystemEvent {
            event: SystemEvent::Shutdown,
            flags: 0,
            args: zero,
        },
        Call::SystemReset => Decision::SystemEvent {
            event: SystemEvent::Reset,
            flags: 0,
            args: zero,
        },
        Call::PsciFeatures { function } => match minor {
            Some(minor) => Return(psci_features(function, minor, cfg.system_suspend)),
            None => Return(NOT_SUPPORTED),
        },
        Call::SystemSuspend { smc64 } if minor.is_some() && cfg.system_suspend => {
            Decision::SystemSuspend {
                args: if smc64 { Args::Keep } else { Args::Narrow },
            }
        }
        Call::SystemReset2 { reset_type, smc64 } if minor >= Some(1) => {
            if reset_type == RESET_TYPE_WARM || reset_type >= RESET_TYPE_VENDOR_START {
                Decision::SystemEvent {
                    event: SystemEvent::Reset,
                    flags: SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2,
                    args: if smc64 { Args::Keep } else { Args::Narrow },
                }
            } else {
                Return(INVALID_PARAMETERS)
            }
        }
        Call::SystemOff2 { off_type, cookie } if minor >= Some(3) => {
            // 0 is an alias of HIBERNATE_OFF (PSCI 1.3 F.b); the cookie must be 0.
            let off_type = u64::from(off_type);
            if (off_type != 0 && off_type != OFF_TYPE_HIBERNATE_OFF) || cookie != 0 {
                Return(INVALID_PARAMETERS)
            } else {
                Decision::SystemEvent {
                    event: SystemEvent::Shutdown,
                    flags: SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2,
                    args: zero,
                }
            }
        }
        _ => Return(NOT_SUPPORTED),
    }
}

/// PSCI 0.1, as KVM's `kvm_psci_0_1_call`: `CPU_OFF` and `CPU_ON` (whose target must be
/// off, else [`INVALID_PARAMETERS`]); its `CPU_SUSPEND` and `MIGRATE`, and every PSCI
/// 0.2+ function id (`PSCI_VERSION` included), answer [`NOT_SUPPORTED`]. The SMCCC
/// discovery and vendor calls are not PSCI and stay ([`decide`]).
fn decide_psci_0_1(call: Call) -> Decision {
    match call {
        Call::CpuOff01 => Decision::CpuOff,
        Call::CpuOn01 {
            target_mpidr,
            entry,
            context,
        } => Decision::CpuOn {
            target_mpidr,
            entry,
            context,
            already_on: INVALID_PARAMETERS,
        },
        _ => Decision::Return(NOT_SUPPORTED),
    }
}

/// `SMCCC_ARCH_FEATURES(function)`: which of the calls SMCCC 1.1 lets a guest probe this
/// way exist. Only PV time is offered (no firmware Spectre workarounds).
fn arch_features(function: u32, cfg: &Config) -> u64 {
    match function {
        FN_PV_TIME_FEATURES if cfg.pv_time => SUCCESS,
        _ => NOT_SUPPORTED,
    }
}

/// `PV_TIME_FEATURES(function)`: both PV-time calls exist once the vCPU has a
/// stolen-time structure (KVM's `kvm_hypercall_pv_features`).
pub(crate) fn pv_time_features(function: u32, steal_time: bool) -> u64 {
    match function {
        FN_PV_TIME_FEATURES | FN_PV_TIME_ST if steal_time => SUCCESS,
        _ => NOT_SUPPORTED,
    }
}

/// The PSCI version of a vCPU: 0.1 without `KVM_ARM_VCPU_PSCI_0_2`, otherwise the VM's
/// (`vm_version`, 0 until userspace sets one, which means [`PSCI_VERSION_LATEST`]), as
/// KVM's `kvm_psci_version`.
pub(crate) const fn version(psci_0_2: bool, vm_version: u64) -> u64 {
    match (psci_0_2, vm_version) {
        (false, _) => PSCI_VERSION_0_1,
        (true, 0) => PSCI_VERSION_LATEST,
        (true, v) => v,
    }
}

/// Whether `KVM_SET_ONE_REG(KVM_REG_ARM_PSCI_VERSION)` may set `v` from a vCPU with or
/// without `KVM_ARM_VCPU_PSCI_0_2` (`EINVAL` otherwise).
pub(crate) const fn version_settable(v: u64, psci_0_2: bool) -> bool {
    match v {
        PSCI_VERSION_0_1 => !psci_0_2,
        PSCI_VERSION_0_2 | PSCI_VERSION_1_0 | PSCI_VERSION_1_1 | PSCI_VERSION_1_2
        | PSCI_VERSION_1_3 => psci_0_2,
        _ => false,
    }
}

/// The answer to `PSCI_FEATURES(function)` under PSCI 1.`minor`: [`SUCCESS`] for each
/// function the vCPU may call, [`NOT_SUPPORTED`] otherwise. For `CPU_SUSPEND` the 0 also
/// says "original power_state format, no OS-initiated mode", as in KVM; for `SYSTEM_OFF2`
/// the answer is the bitmap of power-off types. `SMCCC_VERSION` is listed because PSCI 1.0
/// is how a guest learns it may call it.
pub(crate) fn psci_features(function: u32, minor: u64, system_suspend: bool) -> u64 {
    match function {
        FN_PSCI_VERSION | FN_CPU_SUSPEND | FN64_CPU_SUSPEND | FN_CPU_OFF | FN_CPU_ON
        | FN64_CPU_ON | FN_AFFINITY_INFO | FN64_AFFINITY_INFO | FN_MIGRATE_INFO_TYPE
        | FN_SYSTEM_OFF | FN_SYSTEM_RESET | FN_PSCI_FEATURES | FN_SMCCC_VERSION => SUCCESS,
        FN_SYSTEM_SUSPEND | FN64_SYSTEM_SUSPEND if system_suspend => SUCCESS,
        FN_SYSTEM_RESET2 | FN64_SYSTEM_RESET2 if minor >= 1 => SUCCESS,
        FN_SYSTEM_OFF2 | FN64_SYSTEM_OFF2 if minor >= 3 => OFF_TYPE_HIBERNATE_OFF,
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
        assert_eq!(
            decode(x(FN_TRNG_FEATURES)),
            Call::TrngFeatures { function: 0x51 }
        );
        assert_eq!(
            decode(x(FN_TRNG_RND32)),
            Call::TrngRnd {
                wide: false,
                bits: 0x51
            }
        );
        assert_eq!(
            decode(x(FN_TRNG_RND64)),
            Call::TrngRnd {
                wide: true,
                bits: 0x51
            }
        );
        assert_eq!(
            decode(x(FN_VENDOR_HYP_KVM_PTP)),
            Call::KvmPtp { counter: 0x51 }
        );
    }

    #[test]
    fn function_id_is_w0() {
        assert_eq!(decode([JUNK | FN_CPU_OFF as u64, 0, 0, 0]), Call::CpuOff);
    }

    #[test]
    fn unknown_ids() {
        // MIGRATE, MIGRATE_INFO_UP_CPU, CPU_FREEZE, MEM_PROTECT, 64-bit forms that PSCI
        // does not define, a vendor-hypervisor call and SMCCC_ARCH_WORKAROUND_1.
        for fid in [
            0x8400_0005,
            0x8400_0007,
            0x8400_000b,
            0x8400_0013,
            0xc400_0000,
            0xc400_0002,
            0xc600_0000,
            0x8000_8000,
        ] {
            assert_eq!(decode([fid as u64, 0, 0, 0]), Call::Unknown(fid));
            assert_eq!(psci_features(fid, 3, true), NOT_SUPPORTED);
            assert_eq!(
                decide(Call::Unknown(fid), &CFG),
                Decision::Return(NOT_SUPPORTED)
            );
        }
    }

    const CFG: Config = Config {
        version: PSCI_VERSION_LATEST,
        system_suspend: false,
        pv_time: true,
        steal_time: false,
    };

    fn with(version: u64) -> Config {
        Config { version, ..CFG }
    }

    #[test]
    fn newer_calls_decode_with_32_bit_types() {
        let x = |fid: u32| [fid as u64, JUNK | 1, JUNK | 2, 0];
        assert_eq!(
            decode(x(FN_SYSTEM_SUSPEND)),
            Call::SystemSuspend { smc64: false }
        );
        assert_eq!(
            decode(x(FN64_SYSTEM_SUSPEND)),
            Call::SystemSuspend { smc64: true }
        );
        assert_eq!(
            decode(x(FN_SYSTEM_RESET2)),
            Call::SystemReset2 {
                reset_type: 1,
                smc64: false
            }
        );
        assert_eq!(
            decode(x(FN64_SYSTEM_RESET2)),
            Call::SystemReset2 {
                reset_type: 1,
                smc64: true
            }
        );
        // The type is a 32-bit parameter (KVM reads it into a u32); the cookie is not.
        assert_eq!(
            decode(x(FN64_SYSTEM_OFF2)),
            Call::SystemOff2 {
                off_type: 1,
                cookie: JUNK | 2
            }
        );
        assert_eq!(
            decode(x(FN_SYSTEM_OFF2)),
            Call::SystemOff2 {
                off_type: 1,
                cookie: 2
            }
        );
        assert_eq!(
            decode(x(FN_PV_TIME_FEATURES)),
            Call::PvTimeFeatures { function: 1 }
        );
        assert_eq!(decode(x(FN_PV_TIME_ST)), Call::PvTimeSt);
    }

    #[test]
    fn version_follows_the_vm_and_the_feature() {
        assert_eq!(PSCI_VERSION_LATEST, 0x1_0003);
        assert_eq!(version(true, 0), PSCI_VERSION_1_3);
        assert_eq!(version(true, PSCI_VERSION_0_2), PSCI_VERSION_0_2);
        assert_eq!(version(false, PSCI_VERSION_1_1), PSCI_VERSION_0_1);
        for v in [
            PSCI_VERSION_0_2,
            PSCI_VERSION_1_0,
            PSCI_VERSION_1_1,
            PSCI_VERSION_1_2,
            PSCI_VERSION_1_3,
        ] {
            assert!(version_settable(v, true));
            assert!(!version_settable(v, false));
            assert_eq!(decide(Call::PsciVersion, &with(v)), Decision::Return(v));
        }
        assert!(version_settable(PSCI_VERSION_0_1, false));
        assert!(!version_settable(PSCI_VERSION_0_1, true));
        assert_eq!(PSCI_VERSION_0_1, 1);
        for v in [0x0, 0x3, 0x1_0004, 0x2_0000, u64::MAX] {
            assert!(
                !version_settable(v, true) && !version_settable(v, false),
                "{v:#x}"
            );
        }
    }

    #[test]
    fn psci_0_1_ids_decode_with_whole_registers() {
        assert_eq!(KVM_PSCI_FN_BASE, 0x95c1_ba5e);
        assert_eq!(
            decode([FN01_CPU_OFF as u64, JUNK, JUNK, JUNK]),
            Call::CpuOff01
        );
        // Bit 30 of the ids is clear, yet KVM narrows nothing: x1..x3 are taken whole.
        assert_eq!(
            decode([JUNK | FN01_CPU_ON as u64, JUNK | 1, JUNK | 2, JUNK | 3]),
            Call::CpuOn01 {
                target_mpidr: JUNK | 1,
                entry: JUNK | 2,
                context: JUNK | 3
            }
        );
        for fid in [
            FN01_CPU_SUSPEND,
            FN01_MIGRATE,
            KVM_PSCI_FN_BASE - 1,
            KVM_PSCI_FN_BASE + 4,
        ] {
            assert_eq!(decode([fid as u64, 0, 0, 0]), Call::Unknown(fid));
        }
    }

    #[test]
    fn psci_0_1_has_cpu_on_and_cpu_off_only() {
        let v01 = Config {
            system_suspend: true,
            steal_time: true,
            ..with(PSCI_VERSION_0_1)
        };
        assert_eq!(decide(Call::CpuOff01, &v01), Decision::CpuOff);
        // A target that is not off: INVALID_PARAMETERS (0.1 has no ALREADY_ON).
        assert_eq!(
            decide(
                Call::CpuOn01 {
                    target_mpidr: 1,
                    entry: 2,
                    context: 3
                },
                &v01
            ),
            Decision::CpuOn {
                target_mpidr: 1,
                entry: 2,
                context: 3,
                already_on: INVALID_PARAMETERS
            }
        );
        // Its CPU_SUSPEND and MIGRATE, and every PSCI 0.2+ function, are not supported.
        let not_supported = Decision::Return(NOT_SUPPORTED);
        for call in [
            Call::Unknown(FN01_CPU_SUSPEND),
            Call::Unknown(FN01_MIGRATE),
            Call::PsciVersion,
            Call::CpuSuspend {
                power_state: 0,
                entry: 0,
                context: 0,
            },
            Call::CpuOff,
            Call::CpuOn {
                target_mpidr: 1,
                entry: 2,
                context: 3,
            },
            Call::AffinityInfo {
                target: 0,
                lowest_level: 0,
            },
            Call::MigrateInfoType,
            Call::SystemOff,
            Call::SystemReset,
            Call::PsciFeatures {
                function: FN_CPU_ON,
            },
            Call::SystemSuspend { smc64: true },
            Call::SystemReset2 {
                reset_type: 0,
                smc64: true,
            },
            Call::SystemOff2 {
                off_type: 0,
                cookie: 0,
            },
        ] {
            assert_eq!(decide(call, &v01), not_supported, "{call:?}");
        }
        // SMCCC discovery and the vendor and PV-time services are not PSCI: still there.
        assert_eq!(
            decide(Call::SmcccVersion, &v01),
            Decision::Return(SMCCC_VERSION_1_1)
        );
        assert_eq!(
            decide(Call::VendorHypUid, &v01),
            Decision::Return4(KVM_VENDOR_HYP_UID)
        );
        assert_eq!(
            decide(
                Call::SmcccArchFeatures {
                    function: FN_PV_TIME_FEATURES
                },
                &v01
            ),
            Decision::Return(SUCCESS)
        );
        assert_eq!(decide(Call::PvTimeSt, &v01), Decision::PvTimeSt);
    }

    #[test]
    fn psci_0_1_ids_are_not_supported_from_0_2_on() {
        for v in [PSCI_VERSION_0_2, PSCI_VERSION_1_0, PSCI_VERSION_1_3] {
            for call in [
                Call::CpuOff01,
                Call::CpuOn01 {
                    target_mpidr: 1,
                    entry: 2,
                    context: 3,
                },
            ] {
                assert_eq!(
                    decide(call, &with(v)),
                    Decision::Return(NOT_SUPPORTED),
                    "{v:#x} {call:?}"
                );
            }
            assert_eq!(
                decide(
                    Call::CpuOn {
                        target_mpidr: 1,
                        entry: 2,
                        context: 3
                    },
                    &with(v)
                ),
                Decision::CpuOn {
                    target_mpidr: 1,
                    entry: 2,
                    context: 3,
                    already_on: ALREADY_ON
                }
            );
            assert_eq!(psci_features(FN01_CPU_ON, 3, true), NOT_SUPPORTED);
        }
    }

    #[test]
    fn psci_0_2_has_no_features_call() {
        let cfg = Config {
            system_suspend: true,
            ..with(PSCI_VERSION_0_2)
        };
        assert_eq!(
            decide(
                Call::PsciFeatures {
                    function: FN_CPU_ON
                },
                &cfg
            ),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(Call::SystemSuspend { smc64: true }, &cfg),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(Call::SystemOff, &cfg),
            Decision::SystemEvent {
                event: SystemEvent::Shutdown,
                flags: 0,
                args: Args::Zero
            }
        );
    }

    #[test]
    fn system_suspend_only_when_enabled() {
        for smc64 in [false, true] {
            let call = Call::SystemSuspend { smc64 };
            assert_eq!(decide(call, &CFG), Decision::Return(NOT_SUPPORTED));
            let on = Config {
                system_suspend: true,
                ..CFG
            };
            let args = if smc64 { Args::Keep } else { Args::Narrow };
            assert_eq!(decide(call, &on), Decision::SystemSuspend { args });
            // Any PSCI 1.x has it once enabled.
            assert_eq!(
                decide(
                    call,
                    &Config {
                        version: PSCI_VERSION_1_0,
                        ..on
                    }
                ),
                Decision::SystemSuspend { args }
            );
        }
        for fid in [FN_SYSTEM_SUSPEND, FN64_SYSTEM_SUSPEND] {
            assert_eq!(psci_features(fid, 0, true), SUCCESS);
            assert_eq!(psci_features(fid, 3, false), NOT_SUPPORTED);
        }
    }

    #[test]
    fn system_reset2_from_1_1() {
        let warm = Call::SystemReset2 {
            reset_type: 0,
            smc64: true,
        };
        assert_eq!(
            decide(warm, &with(PSCI_VERSION_1_0)),
            Decision::Return(NOT_SUPPORTED)
        );
        let reset2 = |args| Decision::SystemEvent {
            event: SystemEvent::Reset,
            flags: SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2,
            args,
        };
        assert_eq!(decide(warm, &with(PSCI_VERSION_1_1)), reset2(Args::Keep));
        let vendor = Call::SystemReset2 {
            reset_type: 0x8000_0001,
            smc64: false,
        };
        assert_eq!(decide(vendor, &CFG), reset2(Args::Narrow));
        // Reserved architectural types.
        for reset_type in [1, 0x7fff_ffff] {
            let call = Call::SystemReset2 {
                reset_type,
                smc64: true,
            };
            assert_eq!(decide(call, &CFG), Decision::Return(INVALID_PARAMETERS));
        }
        assert_eq!(psci_features(FN_SYSTEM_RESET2, 0, false), NOT_SUPPORTED);
        assert_eq!(psci_features(FN64_SYSTEM_RESET2, 1, false), SUCCESS);
    }

    #[test]
    fn system_off2_from_1_3() {
        let off2 = Decision::SystemEvent {
            event: SystemEvent::Shutdown,
            flags: SYSTEM_EVENT_SHUTDOWN_FLAG_PSCI_OFF2,
            args: Args::Zero,
        };
        let call = |off_type, cookie| Call::SystemOff2 { off_type, cookie };
        assert_eq!(
            decide(call(1, 0), &with(PSCI_VERSION_1_2)),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(decide(call(1, 0), &CFG), off2);
        assert_eq!(decide(call(0, 0), &CFG), off2);
        assert_eq!(
            decide(call(1, 1), &CFG),
            Decision::Return(INVALID_PARAMETERS)
        );
        assert_eq!(
            decide(call(0, 1), &CFG),
            Decision::Return(INVALID_PARAMETERS)
        );
        assert_eq!(
            decide(call(2, 0), &CFG),
            Decision::Return(INVALID_PARAMETERS)
        );
        for fid in [FN_SYSTEM_OFF2, FN64_SYSTEM_OFF2] {
            assert_eq!(psci_features(fid, 3, false), OFF_TYPE_HIBERNATE_OFF);
            assert_eq!(psci_features(fid, 2, false), NOT_SUPPORTED);
        }
    }

    #[test]
    fn system_off_and_reset_preload_internal_failure() {
        assert_eq!(
            decide(Call::SystemReset, &CFG),
            Decision::SystemEvent {
                event: SystemEvent::Reset,
                flags: 0,
                args: Args::Zero
            }
        );
    }

    #[test]
    fn pv_time_calls() {
        let st = Config {
            steal_time: true,
            ..CFG
        };
        let features = |function| Call::PvTimeFeatures { function };
        // Discoverable through SMCCC_ARCH_FEATURES whenever the service is offered.
        assert_eq!(
            decide(
                Call::SmcccArchFeatures {
                    function: FN_PV_TIME_FEATURES
                },
                &CFG
            ),
            Decision::Return(SUCCESS)
        );
        assert_eq!(
            decide(
                Call::SmcccArchFeatures {
                    function: FN_PV_TIME_ST
                },
                &CFG
            ),
            Decision::Return(NOT_SUPPORTED)
        );
        // The calls themselves need a stolen-time structure.
        assert_eq!(
            decide(features(FN_PV_TIME_ST), &CFG),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(Call::PvTimeSt, &CFG),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(features(FN_PV_TIME_FEATURES), &st),
            Decision::Return(SUCCESS)
        );
        assert_eq!(
            decide(features(FN_PV_TIME_ST), &st),
            Decision::Return(SUCCESS)
        );
        assert_eq!(
            decide(features(FN_PSCI_VERSION), &st),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(decide(Call::PvTimeSt, &st), Decision::PvTimeSt);
        // A service the VM does not offer answers nothing.
        let off = Config {
            pv_time: false,
            ..st
        };
        assert_eq!(
            decide(
                Call::SmcccArchFeatures {
                    function: FN_PV_TIME_FEATURES
                },
                &off
            ),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(features(FN_PV_TIME_FEATURES), &off),
            Decision::Return(NOT_SUPPORTED)
        );
        assert_eq!(
            decide(Call::PvTimeSt, &off),
            Decision::Return(NOT_SUPPORTED)
        );
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
            for minor in 0..=3 {
                assert_eq!(psci_features(fid, minor, false), SUCCESS, "{fid:#x}");
            }
            assert_eq!(
                decide(Call::PsciFeatures { function: fid }, &CFG),
                Decision::Return(SUCCESS)
            );
        }
        // KVM does not list SMCCC_ARCH_FEATURES under PSCI_FEATURES either.
        assert_eq!(
            psci_features(FN_SMCCC_ARCH_FEATURES, 3, true),
            NOT_SUPPORTED
        );
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
