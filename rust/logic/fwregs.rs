// SPDX-License-Identifier: GPL-2.0

//! Firmware pseudo-registers (`KVM_REG_ARM_FW` and `KVM_REG_ARM_FW_FEAT_BMAP`): the Spectre
//! workaround levels and the per-VM bitmaps that say which hypercall services the guest
//! may discover and call; and the answers of the services those bitmaps gate (TRNG, the
//! KVM vendor services).
//!
//! KVM counterpart: `arch/arm64/kvm/hypercalls.c` (`kvm_smccc_test_fw_bmap`,
//! `kvm_smccc_default_allowed`, `kvm_arm_{get,set}_fw_reg`, `get_kernel_wa_level`) and
//! `arch/arm64/kvm/trng.c`. Register numbers and bit positions are the uapi's
//! (`arch/arm64/include/uapi/asm/kvm.h`); function ids are SMCCC's (Arm DEN 0028) and the
//! TRNG's (Arm DEN 0098).

use super::psci::{FN01_CPU_SUSPEND, FN01_MIGRATE, INVALID_PARAMETERS, NOT_SUPPORTED, SUCCESS};

// Function ids of the services the bitmaps gate.
pub(crate) const FN_TRNG_VERSION: u32 = 0x8400_0050;
pub(crate) const FN_TRNG_FEATURES: u32 = 0x8400_0051;
pub(crate) const FN_TRNG_GET_UUID: u32 = 0x8400_0052;
pub(crate) const FN_TRNG_RND32: u32 = 0x8400_0053;
pub(crate) const FN_TRNG_RND64: u32 = 0xc400_0053;
/// Paravirtualised time (Arm DEN 0057): standard hypervisor service calls.
pub(crate) const FN_PV_TIME_FEATURES: u32 = 0xc500_0020;
pub(crate) const FN_PV_TIME_ST: u32 = 0xc500_0021;
/// KVM's vendor services: the feature bitmap, the UID, and the PTP clock pairing.
pub(crate) const FN_VENDOR_HYP_KVM_FEATURES: u32 = 0x8600_0000;
pub(crate) const FN_VENDOR_HYP_KVM_PTP: u32 = 0x8600_0001;
pub(crate) const FN_VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;

/// A hypercall service one bitmap bit enables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// TRNG 1.0 (`KVM_REG_ARM_STD_BIT_TRNG_V1_0`).
    Trng,
    /// PV time (`KVM_REG_ARM_STD_HYP_BIT_PV_TIME`).
    PvTime,
    /// KVM's vendor feature bitmap and UID (`KVM_REG_ARM_VENDOR_HYP_BIT_FUNC_FEAT`).
    VendorFeatures,
    /// KVM's PTP clock pairing (`KVM_REG_ARM_VENDOR_HYP_BIT_PTP`).
    Ptp,
}

/// The four bitmap registers, by their index in `KVM_REG_ARM_FW_FEAT_BMAP_REG(index)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bitmap {
    Std = 0,
    StdHyp = 1,
    VendorHyp = 2,
    /// Advertises the implementation-discovery calls in `KVM_FEATURES`' x2. KVM never
    /// answers those calls itself (a VMM does, through the SMCCC filter), so a set bit
    /// changes only the advertisement, here as on KVM.
    VendorHyp2 = 3,
}

pub(crate) const BITMAPS: [Bitmap; 4] = [
    Bitmap::Std,
    Bitmap::StdHyp,
    Bitmap::VendorHyp,
    Bitmap::VendorHyp2,
];

impl Bitmap {
    pub(crate) const fn from_index(index: u16) -> Option<Self> {
        match index {
            0 => Some(Self::Std),
            1 => Some(Self::StdHyp),
            2 => Some(Self::VendorHyp),
            3 => Some(Self::VendorHyp2),
            _ => None,
        }
    }

    /// The bits userspace may set: the services rkvm implements. Another bit is `EINVAL`.
    pub(crate) const fn valid(self) -> u64 {
        match self {
            Self::Std => 1 << 0,
            Self::StdHyp => 1 << 0,
            Self::VendorHyp => (1 << 0) | (1 << 1),
            Self::VendorHyp2 => (1 << 0) | (1 << 1),
        }
    }

    /// The value at VM creation: every implemented service on, except the advertisement
    /// of `VendorHyp2`, which only a VMM that answers those calls turns on.
    pub(crate) const fn reset(self) -> u64 {
        match self {
            Self::VendorHyp2 => 0,
            _ => self.valid(),
        }
    }

    const fn shift(self) -> u32 {
        8 * self as u32
    }
}

impl Service {
    const fn bit(self) -> (Bitmap, u64) {
        match self {
            Self::Trng => (Bitmap::Std, 1 << 0),
            Self::PvTime => (Bitmap::StdHyp, 1 << 0),
            Self::VendorFeatures => (Bitmap::VendorHyp, 1 << 0),
            Self::Ptp => (Bitmap::VendorHyp, 1 << 1),
        }
    }

    /// The service a function id belongs to, if a bitmap gates it.
    pub(crate) const fn of(function: u32) -> Option<Self> {
        match function {
            FN_TRNG_VERSION | FN_TRNG_FEATURES | FN_TRNG_GET_UUID | FN_TRNG_RND32
            | FN_TRNG_RND64 => Some(Self::Trng),
            FN_PV_TIME_FEATURES | FN_PV_TIME_ST => Some(Self::PvTime),
            FN_VENDOR_HYP_KVM_FEATURES | FN_VENDOR_HYP_CALL_UID => Some(Self::VendorFeatures),
            FN_VENDOR_HYP_KVM_PTP => Some(Self::Ptp),
            _ => None,
        }
    }
}

/// Bit 63 of [`FwBitmaps`]: a vCPU of the VM has run, so the bitmaps are final.
const FROZEN: u64 = 1 << 63;

/// The VM's four bitmaps, one per byte (every valid mask fits in 8 bits), and the
/// [`FROZEN`] flag: one word, so the kernel side keeps it in one atomic and a write
/// racing with the first `KVM_RUN` either lands before it or fails, as KVM's config lock
/// makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FwBitmaps(pub(crate) u64);

/// Why a bitmap write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetError {
    /// A bit of a service rkvm does not implement (`EINVAL`).
    Invalid,
    /// The VM has run and the value differs (`EBUSY`).
    Busy,
}

impl FwBitmaps {
    /// The bitmaps of a new VM.
    pub(crate) const fn new() -> Self {
        let mut v = 0;
        let mut i = 0;
        while i < BITMAPS.len() {
            v |= BITMAPS[i].reset() << BITMAPS[i].shift();
            i += 1;
        }
        Self(v)
    }

    pub(crate) const fn get(self, reg: Bitmap) -> u64 {
        (self.0 >> reg.shift()) & 0xff
    }

    /// The bitmaps once a vCPU has run.
    pub(crate) const fn frozen(self) -> Self {
        Self(self.0 | FROZEN)
    }

    /// `KVM_SET_ONE_REG` of `reg`: the new word, or why not. Writing the current value
    /// back succeeds even after the VM has run (a VMM restoring every register).
    pub(crate) const fn set(self, reg: Bitmap, val: u64) -> Result<Self, SetError> {
        if val & !reg.valid() != 0 {
            return Err(SetError::Invalid);
        }
        if val == self.get(reg) {
            return Ok(self);
        }
        if self.0 & FROZEN != 0 {
            return Err(SetError::Busy);
        }
        Ok(Self(self.0 & !(0xff << reg.shift()) | val << reg.shift()))
    }

    /// Whether the guest may use `service`.
    pub(crate) const fn enabled(self, service: Service) -> bool {
        let (reg, bit) = service.bit();
        self.get(reg) & bit != 0
    }

    /// Whether an SMCCC call reaches its handler: the one question the call dispatch
    /// asks (`kvm_smccc_get_action` without a filter). A gated service needs its bit;
    /// SMCCC_VERSION, SMCCC_ARCH_FEATURES, PSCI (standard service, functions 0..=0x1f)
    /// and KVM's four PSCI 0.1 ids are always allowed; any other function is refused. A
    /// refused call answers `NOT_SUPPORTED` in x0 and 0 in x1..x3.
    pub(crate) const fn allows(self, function: u32) -> bool {
        match Service::of(function) {
            Some(service) => self.enabled(service),
            None => default_allowed(function),
        }
    }

    /// The answer to `KVM_FEATURES` (x0, x2): the vendor bitmaps as they stand.
    pub(crate) const fn vendor_features(self) -> (u64, u64) {
        (self.get(Bitmap::VendorHyp), self.get(Bitmap::VendorHyp2))
    }
}

/// SMCCC function-id fields: owner [29:24] and function number [15:0].
const fn owner(function: u32) -> u32 {
    (function >> 24) & 0x3f
}
const OWNER_STANDARD: u32 = 4;
const SMCCC_VERSION: u32 = 0x8000_0000;
const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;

const fn default_allowed(function: u32) -> bool {
    match function {
        SMCCC_VERSION | SMCCC_ARCH_FEATURES => true,
        // KVM's PSCI 0.1 ids, outside SMCCC's numbering.
        FN01_CPU_SUSPEND..=FN01_MIGRATE => true,
        _ => owner(function) == OWNER_STANDARD && function & 0xffff <= 0x1f,
    }
}

/// The workaround registers `KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_{1,2,3}`
/// (`KVM_REG_ARM_FW_REG(1..=3)`): what the guest was told about each Spectre
/// workaround call, so a VMM can refuse to migrate a guest to a host that offers less.
///
/// rkvm answers `SMCCC_ARCH_FEATURES` with `NOT_SUPPORTED` for all three calls, so each
/// level is "not available" (0, in all three encodings); KVM derives its levels the same
/// way from its own answers (`get_kernel_wa_level`).
pub(crate) const WORKAROUND_LEVEL: u64 = 0;

/// `KVM_REG_FEATURE_LEVEL_MASK`.
const LEVEL_MASK: u64 = 0xf;
/// `KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2_ENABLED`.
pub(crate) const WA2_ENABLED: u64 = 1 << 4;
pub(crate) const WA2_NOT_AVAIL: u64 = 0;
pub(crate) const WA2_UNKNOWN: u64 = 1;
pub(crate) const WA2_AVAIL: u64 = 2;
pub(crate) const WA2_NOT_REQUIRED: u64 = 3;

/// Whether `KVM_SET_ONE_REG` of workaround register `index` (1..=3) to `val` succeeds
/// on a host whose level is `level` (`EINVAL` otherwise): a guest that was promised at
/// most what this host offers can run here. The register keeps reading `level`.
pub(crate) const fn workaround_settable(index: u16, val: u64, level: u64) -> bool {
    match index {
        1 | 3 => val & !LEVEL_MASK == 0 && val <= level,
        2 => {
            if val & !(LEVEL_MASK | WA2_ENABLED) != 0 {
                return false;
            }
            if val & WA2_ENABLED != 0 && val & LEVEL_MASK != WA2_AVAIL {
                return false;
            }
            // Only two states matter: the guest may or may not rely on the mitigation.
            let wanted = match val & LEVEL_MASK {
                WA2_NOT_AVAIL | WA2_UNKNOWN => WA2_NOT_AVAIL,
                WA2_AVAIL | WA2_NOT_REQUIRED => WA2_NOT_REQUIRED,
                _ => return false,
            };
            wanted <= level
        }
        _ => false,
    }
}

/// `TRNG_VERSION`: 1.0.
pub(crate) const TRNG_VERSION_1_0: u64 = 0x1_0000;
/// The TRNG service UUID KVM reports, 0d21e000-4384-11eb-8070-5244554e5a4c, in w0..w3
/// as the SMCCC UUID convention packs it.
pub(crate) const TRNG_UUID: [u64; 4] = [0x00e0_210d, 0xeb11_8443, 0x4452_7080, 0x4c5a_4e55];

/// `TRNG_FEATURES(function)`: every TRNG function is implemented; anything else (another
/// service's function included) is not.
pub(crate) const fn trng_features(function: u32) -> u64 {
    match function {
        FN_TRNG_VERSION | FN_TRNG_FEATURES | FN_TRNG_GET_UUID | FN_TRNG_RND32 | FN_TRNG_RND64 => {
            SUCCESS
        }
        _ => NOT_SUPPORTED,
    }
}

/// `TRNG_RND32`/`TRNG_RND64` with `bits` requested: x0..x3 from three 64-bit random
/// words (`random[0]` the least significant). The call returns up to 96 (RND32, 32 bits
/// per register) or 192 bits, least significant in x3; bits above the request are 0. A
/// larger request is `INVALID_PARAMETERS`; 0 bits succeeds with nothing, as on KVM.
pub(crate) const fn trng_rnd(wide: bool, bits: u32, random: [u64; 3]) -> [u64; 4] {
    let width: u32 = if wide { 64 } else { 32 };
    if bits > 3 * width {
        return [INVALID_PARAMETERS, 0, 0, 0];
    }
    // Word i holds bits [64i+63 : 64i] of the result.
    let mut w = random;
    let mut i = 0;
    while i < 3 {
        let lo = 64 * i as u32;
        w[i] = if bits <= lo {
            0
        } else if bits - lo >= 64 {
            w[i]
        } else {
            w[i] & ((1u64 << (bits - lo)) - 1)
        };
        i += 1;
    }
    if wide {
        [SUCCESS, w[2], w[1], w[0]]
    } else {
        [SUCCESS, w[1] & 0xffff_ffff, w[0] >> 32, w[0] & 0xffff_ffff]
    }
}

/// `KVM_PTP` counter selectors (arg 1).
pub(crate) const PTP_VIRT_COUNTER: u32 = 0;
pub(crate) const PTP_PHYS_COUNTER: u32 = 1;

/// The answer to `KVM_PTP(counter)`, given a snapshot of the host's wall clock (ns since
/// the epoch) and of its counter taken together, or `None` when the host's clocksource
/// is not the architected counter (then the guest could not relate the two). x0:x1 is
/// the time and x2:x3 the guest's chosen counter, each as two 32-bit halves. An unknown
/// selector, or no usable snapshot, is `NOT_SUPPORTED` (the rest 0).
pub(crate) const fn ptp(
    counter: u32,
    snapshot: Option<(u64, u64)>,
    cntvoff: u64,
    cntpoff: u64,
) -> [u64; 4] {
    let Some((realtime, cycles)) = snapshot else {
        return [NOT_SUPPORTED, 0, 0, 0];
    };
    let guest = match counter {
        PTP_VIRT_COUNTER => cycles.wrapping_sub(cntvoff),
        PTP_PHYS_COUNTER => cycles.wrapping_sub(cntpoff),
        _ => return [NOT_SUPPORTED, 0, 0, 0],
    };
    [
        realtime >> 32,
        realtime & 0xffff_ffff,
        guest >> 32,
        guest & 0xffff_ffff,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_values_are_kvms() {
        let b = FwBitmaps::new();
        assert_eq!(b.get(Bitmap::Std), 0b1);
        assert_eq!(b.get(Bitmap::StdHyp), 0b1);
        assert_eq!(b.get(Bitmap::VendorHyp), 0b11);
        assert_eq!(b.get(Bitmap::VendorHyp2), 0);
        for (i, reg) in BITMAPS.into_iter().enumerate() {
            assert_eq!(Bitmap::from_index(i as u16), Some(reg));
        }
        assert_eq!(Bitmap::from_index(4), None);
    }

    #[test]
    fn set_before_run() {
        let mut b = FwBitmaps::new();
        for reg in BITMAPS {
            b = b.set(reg, 0).unwrap();
            assert_eq!(b.get(reg), 0);
            b = b.set(reg, reg.valid()).unwrap();
            assert_eq!(b.get(reg), reg.valid());
            // The bit above the valid ones, and far ones.
            let next = 1 << (64 - reg.valid().leading_zeros());
            for bad in [next, 1 << 8, 1 << 63, u64::MAX] {
                assert_eq!(b.set(reg, bad), Err(SetError::Invalid), "{reg:?} {bad:#x}");
            }
        }
        // Each register keeps its own byte.
        let b = FwBitmaps::new().set(Bitmap::VendorHyp, 0b10).unwrap();
        assert_eq!(b.get(Bitmap::Std), 1);
        assert_eq!(b.get(Bitmap::VendorHyp), 0b10);
        assert_eq!(b.get(Bitmap::VendorHyp2), 0);
    }

    #[test]
    fn frozen_after_run() {
        let b = FwBitmaps::new().set(Bitmap::Std, 0).unwrap().frozen();
        assert_eq!(b.get(Bitmap::Std), 0);
        assert_eq!(b.set(Bitmap::Std, 1), Err(SetError::Busy));
        assert_eq!(b.set(Bitmap::VendorHyp, 0), Err(SetError::Busy));
        // Same value: fine. Invalid bits: EINVAL first, as KVM checks them first.
        assert_eq!(b.set(Bitmap::Std, 0), Ok(b));
        assert_eq!(b.set(Bitmap::VendorHyp, 0b11), Ok(b));
        assert_eq!(b.set(Bitmap::Std, 2), Err(SetError::Invalid));
        assert_eq!(b.frozen(), b);
    }

    #[test]
    fn gating() {
        let all = FwBitmaps::new();
        let none = BITMAPS.into_iter().fold(all, |b, r| b.set(r, 0).unwrap());
        for f in [
            FN_TRNG_VERSION,
            FN_TRNG_FEATURES,
            FN_TRNG_GET_UUID,
            FN_TRNG_RND32,
            FN_TRNG_RND64,
        ] {
            assert!(all.allows(f));
            assert!(!none.allows(f));
        }
        for f in [
            FN_VENDOR_HYP_KVM_FEATURES,
            FN_VENDOR_HYP_CALL_UID,
            FN_VENDOR_HYP_KVM_PTP,
        ] {
            assert!(all.allows(f));
            assert!(!none.allows(f));
        }
        // PV time follows its own bit.
        let no_pv = all.set(Bitmap::StdHyp, 0).unwrap();
        assert!(all.allows(FN_PV_TIME_FEATURES) && all.allows(FN_PV_TIME_ST));
        assert!(!no_pv.allows(FN_PV_TIME_FEATURES) && !no_pv.allows(FN_PV_TIME_ST));
        assert!(no_pv.allows(FN_TRNG_VERSION));
        // PTP and the vendor features are separate bits.
        let ptp_only = all.set(Bitmap::VendorHyp, 0b10).unwrap();
        assert!(ptp_only.allows(FN_VENDOR_HYP_KVM_PTP));
        assert!(!ptp_only.allows(FN_VENDOR_HYP_CALL_UID));
        // Never gated: SMCCC discovery and PSCI (32- and 64-bit), even with everything off.
        for f in [
            0x8000_0000,
            0x8000_0001,
            0x8400_0000,
            0xc400_0003,
            0x8400_001f,
        ] {
            assert!(none.allows(f), "{f:#x}");
        }
        // KVM's PSCI 0.1 ids (KVM_PSCI_FN(0..=3)) too, but not their neighbours.
        for f in 0x95c1_ba5e..=0x95c1_ba61 {
            assert!(none.allows(f), "{f:#x}");
        }
        for f in [0x95c1_ba5d, 0x95c1_ba62] {
            assert!(!all.allows(f), "{f:#x}");
        }
        // Refused: the workaround calls, standard functions past PSCI's range, other
        // owners and unknown vendor calls.
        for f in [
            0x8000_8000,
            0x8000_7fff,
            0x8400_0020,
            0x8500_0000,
            0x8600_0002,
            0x8700_0000,
        ] {
            assert!(!all.allows(f), "{f:#x}");
        }
        assert_eq!(all.vendor_features(), (0b11, 0));
        assert_eq!(none.vendor_features(), (0, 0));
    }

    #[test]
    fn workaround_levels() {
        // rkvm's level: only "not available" (and WA2's UNKNOWN, which means the same)
        // can be restored.
        assert!(workaround_settable(1, 0, WORKAROUND_LEVEL));
        assert!(!workaround_settable(1, 1, WORKAROUND_LEVEL));
        assert!(!workaround_settable(3, 2, WORKAROUND_LEVEL));
        assert!(workaround_settable(2, WA2_NOT_AVAIL, WORKAROUND_LEVEL));
        assert!(workaround_settable(2, WA2_UNKNOWN, WORKAROUND_LEVEL));
        assert!(!workaround_settable(2, WA2_AVAIL, WORKAROUND_LEVEL));
        assert!(!workaround_settable(2, WA2_NOT_REQUIRED, WORKAROUND_LEVEL));
        // A host that offers more accepts less.
        assert!(workaround_settable(1, 1, 2));
        assert!(!workaround_settable(1, 0x10, 2));
        assert!(workaround_settable(
            2,
            WA2_AVAIL | WA2_ENABLED,
            WA2_NOT_REQUIRED
        ));
        assert!(!workaround_settable(
            2,
            WA2_NOT_REQUIRED | WA2_ENABLED,
            WA2_NOT_REQUIRED
        ));
        assert!(!workaround_settable(2, 4, WA2_NOT_REQUIRED));
        assert!(!workaround_settable(2, 1 << 5, WA2_NOT_REQUIRED));
        assert!(!workaround_settable(0, 0, 2));
        assert!(!workaround_settable(4, 0, 2));
    }

    #[test]
    fn trng() {
        assert_eq!(trng_features(FN_TRNG_RND64), SUCCESS);
        assert_eq!(trng_features(FN_VENDOR_HYP_KVM_PTP), NOT_SUPPORTED);
        assert_eq!(trng_features(FN_PV_TIME_FEATURES), NOT_SUPPORTED);
        let r = [
            0x1111_2222_3333_4444,
            0x5555_6666_7777_8888,
            0x9999_aaaa_bbbb_cccc,
        ];
        assert_eq!(trng_rnd(true, 192, r), [SUCCESS, r[2], r[1], r[0]]);
        assert_eq!(trng_rnd(true, 68, r), [SUCCESS, 0, 0x8, r[0]]);
        assert_eq!(trng_rnd(true, 8, r), [SUCCESS, 0, 0, 0x44]);
        assert_eq!(trng_rnd(true, 0, r), [SUCCESS, 0, 0, 0]);
        assert_eq!(trng_rnd(true, 193, r)[0], INVALID_PARAMETERS);
        assert_eq!(
            trng_rnd(false, 96, r),
            [SUCCESS, 0x7777_8888, 0x1111_2222, 0x3333_4444]
        );
        assert_eq!(trng_rnd(false, 40, r), [SUCCESS, 0, 0x22, 0x3333_4444]);
        assert_eq!(trng_rnd(false, 97, r), [INVALID_PARAMETERS, 0, 0, 0]);
        assert_eq!(trng_rnd(false, u32::MAX, r)[0], INVALID_PARAMETERS);
        // The UUID words as KVM's le32 reads of 0d21e000-4384-11eb-8070-5244554e5a4c.
        assert_eq!(TRNG_UUID[0].to_le_bytes()[..4], [0x0d, 0x21, 0xe0, 0x00]);
        assert_eq!(TRNG_UUID[3].to_le_bytes()[..4], [0x55, 0x4e, 0x5a, 0x4c]);
    }

    #[test]
    fn ptp_answers() {
        let snap = Some((0x1_2345_6789_abcd, 1000));
        assert_eq!(
            ptp(PTP_VIRT_COUNTER, snap, 400, 0),
            [0x1_2345, 0x6789_abcd, 0, 600]
        );
        assert_eq!(
            ptp(PTP_PHYS_COUNTER, snap, 400, 10),
            [0x1_2345, 0x6789_abcd, 0, 990]
        );
        assert_eq!(ptp(2, snap, 0, 0), [NOT_SUPPORTED, 0, 0, 0]);
        assert_eq!(ptp(PTP_VIRT_COUNTER, None, 0, 0), [NOT_SUPPORTED, 0, 0, 0]);
        // A counter offset past the count wraps, as the guest's counter does.
        assert_eq!(
            ptp(PTP_VIRT_COUNTER, snap, 1001, 0)[2..],
            [0xffff_ffff, 0xffff_ffff]
        );
    }
}
