// SPDX-License-Identifier: GPL-2.0

//! The nVHE EL2 runtime's address space and control-register values.
//!
//! On an nVHE host rkvm runs its own code at EL2 with its own stage-1 tables (TTBR0_EL2,
//! one 48-bit VA range, 4 KiB granule). A kernel address in the vmalloc/module area (the
//! top 2^47 bytes of the kernel's range) maps at EL2 to the same address with the top 16
//! bits cleared (the "hyp VA"), so PC-relative code and offsets within a mapping work
//! unchanged; the one idmap page sits at its physical address, which is below 2^47 and
//! therefore never collides with a hyp VA. See Documentation/nvhe.rst.
//!
//! KVM counterpart: `kern_hyp_va` (`kvm_mmu.h`), `kvm_pgtable_hyp_*` (`hyp/pgtable.c`),
//! `__kvm_hyp_init` (`hyp/nvhe/hyp-init.S`).

use super::el2abi::feature;

/// The hyp VA of kernel address `kva`, or `None` for an address outside the vmalloc and
/// module area (only those are ever mapped at EL2; the linear map is not).
pub(crate) const fn hyp_va(kva: u64) -> Option<u64> {
    if kva >> 47 == 0x1_ffff {
        Some(kva & VA_MASK)
    } else {
        None
    }
}

/// 48-bit EL2 VA space.
pub(crate) const VA_BITS: u32 = 48;
const VA_MASK: u64 = (1 << VA_BITS) - 1;

/// Whether physical address `pa` can be identity-mapped at EL2 without colliding with a
/// hyp VA (those all have bit 47 set).
pub(crate) const fn idmap_ok(pa: u64) -> bool {
    pa >> 47 == 0
}

// The EL2 MMU's view of the tables, which the tests check `pgtable`'s walk against.
#[cfg(test)]
/// Index into the table at `level` (0..=3) for `va`, 4 KiB granule, 48-bit VA.
pub(crate) const fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & 0x1ff) as usize
}

/// Descriptor bits (stage 1, EL2 regime, VMSAv8-64).
pub(crate) mod desc {
    pub(crate) const VALID: u64 = 1 << 0;
    /// Table (levels 0-2) or page (level 3).
    pub(crate) const TABLE_OR_PAGE: u64 = 1 << 1;
    /// AttrIndx = 0: MAIR attribute 0 (normal, write-back).
    pub(crate) const ATTR_NORMAL: u64 = 0 << 2;
    /// AP[1]: RES1 in the EL2 regime.
    pub(crate) const AP1: u64 = 1 << 6;
    /// AP[2]: read-only.
    pub(crate) const RDONLY: u64 = 1 << 7;
    /// SH = inner shareable.
    pub(crate) const SH_INNER: u64 = 3 << 8;
    pub(crate) const AF: u64 = 1 << 10;
    /// XN (bit 54) in the EL2 single-range regime.
    pub(crate) const XN: u64 = 1 << 54;
    /// Output address bits [47:12].
    pub(crate) const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
}

/// How a page is mapped at EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prot {
    /// Code: read-only, executable.
    Text,
    /// Data and stacks: read-write, never executable.
    Data,
}

// The EL2 MMU's view of the tables, which the tests check `pgtable`'s walk against.
#[cfg(test)]
/// A level-0..2 table descriptor pointing at the table page at `pa`.
pub(crate) const fn table_desc(pa: u64) -> u64 {
    (pa & desc::OA_MASK) | desc::VALID | desc::TABLE_OR_PAGE
}

/// A level-3 page descriptor for the page at `pa`.
pub(crate) const fn page_desc(pa: u64, prot: Prot) -> u64 {
    let base = (pa & desc::OA_MASK)
        | desc::VALID
        | desc::TABLE_OR_PAGE
        | desc::ATTR_NORMAL
        | desc::AP1
        | desc::SH_INNER
        | desc::AF;
    match prot {
        Prot::Text => base | desc::RDONLY,
        Prot::Data => base | desc::XN,
    }
}

// The EL2 MMU's view of the tables, which the tests check `pgtable`'s walk against.
#[cfg(test)]
/// The output address of a valid table descriptor.
pub(crate) const fn desc_pa(d: u64) -> u64 {
    d & desc::OA_MASK
}

/// MAIR_EL2: attribute 0 normal write-back read/write-allocate, 1 device-nGnRE.
pub(crate) const MAIR: u64 = 0xff | (0x04 << 8);

/// TCR_EL2 (E2H = 0 layout) for the EL2 tables: T0SZ for 48 bits, walks cacheable and
/// inner shareable (so EL1's writes to the tables are visible without cleaning), 4 KiB
/// granule, PS from the host's `ID_AA64MMFR0_EL1.PARange` (capped at 48 bits).
pub(crate) const fn tcr(mmfr0: u64) -> u64 {
    let t0sz = 64 - VA_BITS as u64;
    let irgn0_wbwa = 1 << 8;
    let orgn0_wbwa = 1 << 10;
    let sh0_inner = 3 << 12;
    let ps = match super::traps::parange_bits(mmfr0) {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        _ => 5,
    };
    let res1 = (1 << 23) | (1 << 31);
    t0sz | irgn0_wbwa | orgn0_wbwa | sh0_inner | (ps << 16) | res1
}

/// SCTLR_EL2 (E2H = 0) with the MMU on: M, C, SA, I, WXN, and the RES1 bits.
pub(crate) const SCTLR_MMU_ON: u64 = (1 << 0) // M
    | (1 << 2) // C
    | (1 << 3) // SA
    | (1 << 12) // I
    | (1 << 19) // WXN
    | (1 << 4) | (1 << 5) | (1 << 11) | (1 << 16) | (1 << 18) | (1 << 22) | (1 << 23)
    | (1 << 28) | (1 << 29);

/// Whether the host implements FEAT_RAS (`ID_AA64PFR0_EL1.RAS`, bits [31:28]), so that
/// the guest's DISR_EL1 accesses reach VDISR_EL2.
pub(crate) const fn has_ras(pfr0: u64) -> bool {
    (pfr0 >> 28) & 0xf != 0
}

/// The feature bits from `ID_AA64MMFR3_EL1`, `ID_AA64PFR0_EL1` and the EL2 trap
/// registers the host has (`fgt::HostCaps`). PIR/PIRE0 and POR are only reachable
/// through TCR2, so they count only with TCRX.
pub(crate) fn features(mmfr3: u64, pfr0: u64, caps: super::fgt::HostCaps) -> u64 {
    let field = |shift: u32| (mmfr3 >> shift) & 0xf != 0;
    let mut f = 0;
    if field(0) {
        f |= feature::TCRX;
        if field(8) {
            f |= feature::S1PIE;
        }
        if field(16) {
            f |= feature::S1POE;
        }
    }
    if field(4) {
        f |= feature::SCTLRX;
    }
    if has_ras(pfr0) {
        f |= feature::RAS;
    }
    for (has, bit) in [
        (caps.hcx, feature::HCX),
        (caps.fgt, feature::FGT),
        (caps.fgt2, feature::FGT2),
    ] {
        if has {
            f |= bit;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyp_va_masks_vmalloc_addresses_only() {
        assert_eq!(hyp_va(0xffff_8000_1234_5000), Some(0x8000_1234_5000));
        assert_eq!(hyp_va(0xffff_ffff_ffff_f000), Some(0xffff_ffff_f000));
        // The linear map (below the vmalloc area) is never mapped at EL2.
        assert_eq!(hyp_va(0xffff_0000_4000_0000), None);
        assert_eq!(hyp_va(0xfff0_0000_4000_0000), None);
        assert_eq!(hyp_va(0x4000_0000), None);
        // Every hyp VA has bit 47 set; every idmap-able PA has it clear.
        assert!(idmap_ok(0x4000_0000) && !idmap_ok(0x8000_0000_0000));
    }

    #[test]
    fn indices() {
        let va = 0x8000_1234_5000u64;
        assert_eq!(index(va, 0), 0x100);
        assert_eq!(index(va, 1), 0);
        assert_eq!(index(va, 2), 0x91);
        assert_eq!(index(va, 3), 0x145);
    }

    #[test]
    fn descriptors() {
        assert_eq!(table_desc(0x4123_4000), 0x4123_4003);
        let text = page_desc(0x4000_1000, Prot::Text);
        assert_eq!(text & desc::XN, 0);
        assert_ne!(text & desc::RDONLY, 0);
        let data = page_desc(0x4000_2000, Prot::Data);
        assert_ne!(data & desc::XN, 0);
        assert_eq!(data & desc::RDONLY, 0);
        assert_eq!(data, 0x0040_0000_4000_2000 | 0x743);
        assert_eq!(desc_pa(data), 0x4000_2000);
    }

    #[test]
    fn control_registers() {
        // 48-bit PARange: PS = 5; T0SZ = 16.
        assert_eq!(
            tcr(5),
            16 | (1 << 8) | (1 << 10) | (3 << 12) | (5 << 16) | (1 << 23) | (1 << 31)
        );
        // 52-bit hosts are capped at 48 (no LPA at EL2).
        assert_eq!(tcr(6) >> 16 & 7, 5);
        assert_eq!(tcr(2) >> 16 & 7, 2);
        assert_eq!(SCTLR_MMU_ON & 1, 1);
        assert_eq!(SCTLR_MMU_ON, 0x30cd_183d);
    }

    #[test]
    fn feature_bits() {
        use crate::logic::fgt::HostCaps;
        let none = HostCaps::default();
        assert_eq!(features(0, 0, none), 0);
        assert_eq!(
            features(0x1_0111, 0, none),
            feature::TCRX | feature::S1PIE | feature::S1POE | feature::SCTLRX
        );
        // Without TCR2 there is no way to enable PIE or POE.
        assert_eq!(features(0x1_0100, 0, none), 0);
        assert_eq!(features(0x10, 0, none), feature::SCTLRX);
        // RAS (v1 and v1p1), not the other ID_AA64PFR0_EL1 fields.
        assert_eq!(features(0, 0x1000_0000, none), feature::RAS);
        assert_eq!(features(0, 0x2000_0000, none), feature::RAS);
        assert_eq!(features(0, 0x0fff_ffff, none), 0);
        // The EL2 trap registers.
        let all = HostCaps {
            fgt: true,
            fgt2: true,
            hcx: true,
        };
        assert_eq!(
            features(0, 0, all),
            feature::HCX | feature::FGT | feature::FGT2
        );
    }
}
