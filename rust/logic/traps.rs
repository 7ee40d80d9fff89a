// SPDX-License-Identifier: GPL-2.0

//! EL2 control-register values for running a guest: what traps, what the guest may touch.
//!
//! KVM counterpart: `HCR_GUEST_FLAGS` and `__activate_traps()` (`kvm_arm.h`, `hyp/switch.h`),
//! `kvm_get_vtcr()` and `kvm_arch_vcpu_load_debug_state`
//! (MDCR). Field positions follow the Arm ARM (D24.2).

/// HCR_EL2 bits rkvm uses.
pub(crate) mod hcr {
    pub(crate) const VM: u64 = 1 << 0;
    pub(crate) const SWIO: u64 = 1 << 1;
    pub(crate) const PTW: u64 = 1 << 2;
    pub(crate) const FMO: u64 = 1 << 3;
    pub(crate) const IMO: u64 = 1 << 4;
    pub(crate) const AMO: u64 = 1 << 5;
    pub(crate) const VSE: u64 = 1 << 8;
    pub(crate) const FB: u64 = 1 << 9;
    pub(crate) const BSU_IS: u64 = 1 << 10;
    pub(crate) const TWI: u64 = 1 << 13;
    pub(crate) const TWE: u64 = 1 << 14;
    pub(crate) const TID3: u64 = 1 << 18;
    pub(crate) const TSC: u64 = 1 << 19;
    pub(crate) const TIDCP: u64 = 1 << 20;
    pub(crate) const TACR: u64 = 1 << 21;
    pub(crate) const TSW: u64 = 1 << 22;
    /// Pointer-authentication instructions (API) and key registers (APK) do not trap.
    pub(crate) const APK: u64 = 1 << 40;
    pub(crate) const API: u64 = 1 << super::super::el2abi::HCR_API_SHIFT;
    pub(crate) const TGE: u64 = 1 << 27;
    pub(crate) const RW: u64 = 1 << 31;
    pub(crate) const E2H: u64 = 1 << 34;
    pub(crate) const TLOR: u64 = 1 << 35;
    pub(crate) const TERR: u64 = 1 << 36;
    pub(crate) const TEA: u64 = 1 << 37;
}

/// HCR_EL2 while a guest runs.
///
/// Stage 2 on; physical IRQ/FIQ/SError routed to EL2 (so the host keeps its interrupts);
/// broadcast TLB and barrier upgrades for an SMP guest; WFI/WFE, SMC, ID group 3,
/// IMPDEF registers, ACTLR, set/way cache maintenance and LORegions trapped; EL1 is
/// AArch64. `vhe` keeps E2H set, since the host's own EL2 regime depends on it. On a
/// `ras` host (FEAT_RAS), as KVM's `vcpu_set_hcr`: the error-record registers trap
/// (TERR; the guest's view has no RAS, so they UNDEF as KVM's `access_ras` makes them)
/// and synchronous external aborts are taken to EL2 (TEA), which hands them back to the
/// guest as aborts.
///
/// A vCPU with pointer authentication adds [`hcr::API`] and [`hcr::APK`]
/// ([`guest_hcr_ptrauth`]); for any other, PAC instructions and key accesses trap and
/// UNDEF, as KVM.
pub(crate) const fn guest_hcr(vhe: bool, ras: bool) -> u64 {
    let mut flags = hcr::VM
        | hcr::SWIO
        | hcr::PTW
        | hcr::FMO
        | hcr::IMO
        | hcr::AMO
        | hcr::FB
        | hcr::BSU_IS
        | hcr::TWI
        | hcr::TWE
        | hcr::TID3
        | hcr::TSC
        | hcr::TIDCP
        | hcr::TACR
        | hcr::TSW
        | hcr::RW
        | hcr::TLOR;
    if vhe {
        flags |= hcr::E2H;
    }
    if ras {
        flags |= hcr::TERR | hcr::TEA;
    }
    flags
}

/// [`guest_hcr`] for a vCPU with (`ptrauth`) or without pointer authentication: its PAC
/// instructions and key registers are the guest's own, with its keys in the CPU (KVM's
/// `vcpu_set_pauth_traps`).
pub(crate) const fn guest_hcr_ptrauth(hcr: u64, ptrauth: bool) -> u64 {
    if ptrauth {
        hcr | hcr::API | hcr::APK
    } else {
        hcr
    }
}

/// CPTR_EL2.TAM, bit 30 in both layouts: AMU registers trap (KVM sets it for every
/// guest; without an AMU it is RES0 and the registers UNDEF anyway).
pub(crate) const CPTR_TAM: u64 = 1 << 30;

/// CPTR_EL2 in its E2H=1 (CPACR-like) layout.
pub(crate) mod cptr_vhe {
    /// FPEN, bits [21:20]: 0b11 = FP/SIMD not trapped.
    pub(crate) const FPEN_MASK: u64 = 3 << 20;
    /// ZEN, bits [17:16]: SVE access.
    pub(crate) const ZEN_MASK: u64 = 3 << 16;
    /// SMEN, bits [25:24]: SME access.
    pub(crate) const SMEN_MASK: u64 = 3 << 24;
    /// TTA, bit 28: trace register access trapped.
    pub(crate) const TTA: u64 = 1 << 28;
}

/// CPTR_EL2 (E2H=1 layout) while the guest runs: FP/SIMD allowed once the guest's
/// registers are in the CPU (`fp_owned`) and trapped before, so the first use loads them;
/// SVE and SME trapped (not offered to guests); trace and AMU trapped.
pub(crate) const fn guest_cptr_vhe(host: u64, fp_owned: bool) -> u64 {
    let base = (host & !(cptr_vhe::ZEN_MASK | cptr_vhe::SMEN_MASK | cptr_vhe::FPEN_MASK))
        | cptr_vhe::TTA
        | CPTR_TAM;
    if fp_owned {
        base | cptr_vhe::FPEN_MASK
    } else {
        base
    }
}

/// CPTR_EL2 in its E2H=0 (nVHE) layout.
pub(crate) mod cptr_nvhe {
    /// TZ, bit 8: SVE trapped (RES1 without SVE).
    pub(crate) const TZ: u64 = 1 << 8;
    /// TFP, bit 10: FP/SIMD trapped.
    pub(crate) const TFP: u64 = 1 << 10;
    /// TSM, bit 12: SME trapped (RES1 without SME).
    pub(crate) const TSM: u64 = 1 << 12;
    /// TTA, bit 20: trace registers trapped.
    pub(crate) const TTA: u64 = 1 << 20;
}

/// CPTR_EL2 (E2H=0 layout) while the guest runs on an nVHE host: as
/// [`guest_cptr_vhe`], from the host's (the hyp stub's) value.
pub(crate) const fn guest_cptr_nvhe(host: u64, fp_owned: bool) -> u64 {
    let base = host | cptr_nvhe::TZ | cptr_nvhe::TSM | cptr_nvhe::TTA | CPTR_TAM;
    if fp_owned {
        base & !cptr_nvhe::TFP
    } else {
        base | cptr_nvhe::TFP
    }
}

/// MDCR_EL2 bits.
pub(crate) mod mdcr {
    /// HPMN, bits [4:0]: counters reserved for EL1/EL0; the host's choice is kept.
    pub(crate) const HPMN_MASK: u64 = 0x1f;
    pub(crate) const TPMCR: u64 = 1 << 5;
    pub(crate) const TPM: u64 = 1 << 6;
    pub(crate) const TDOSA: u64 = 1 << 10;
    pub(crate) const TDA: u64 = 1 << 9;
    pub(crate) const TDRA: u64 = 1 << 11;
    /// FEAT_SPE: the profiling registers trap (E2PB, bits [13:12], left 0: the buffer
    /// belongs to EL2 and its EL1 registers trap too).
    pub(crate) const TPMS: u64 = 1 << 14;
    /// FEAT_TRF: TRFCR_EL1 traps.
    pub(crate) const TTRF: u64 = 1 << 19;
}

/// MDCR_EL2 while the guest runs: debug, PMU, statistical profiling and trace-filter
/// registers trapped (emulated or UNDEF), the host's HPMN kept; as KVM's
/// `kvm_arm_setup_mdcr_el2`, which sets TPMS and TTRF whether or not the CPU has them.
pub(crate) const fn guest_mdcr(host: u64) -> u64 {
    (host & mdcr::HPMN_MASK)
        | mdcr::TPM
        | mdcr::TPMCR
        | mdcr::TDA
        | mdcr::TDOSA
        | mdcr::TDRA
        | mdcr::TPMS
        | mdcr::TTRF
}

/// VTCR_EL2 fields outside the translation geometry.
pub(crate) mod vtcr {
    /// PS, bits [18:16]: physical address size of the output.
    pub(crate) const PS_SHIFT: u32 = 16;
    /// VS, bit 19: 16-bit VMIDs.
    pub(crate) const VS: u64 = 1 << 19;
    /// Bit 31 is RES1.
    pub(crate) const RES1: u64 = 1 << 31;
}

/// `ID_AA64MMFR0_EL1.PARange` encodings to physical address bits, capped at 48 (rkvm
/// does not implement 52-bit stage-2 output).
pub(crate) const fn parange_bits(mmfr0: u64) -> u32 {
    match mmfr0 & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    }
}

/// VTCR_EL2 for a VM: `geometry_bits` from the page-table geometry, PS from the host's
/// PARange (capped at 48 bits), VS when the hardware has 16-bit VMIDs.
pub(crate) const fn vtcr(geometry_bits: u64, mmfr0: u64, mmfr1: u64) -> u64 {
    let ps = match parange_bits(mmfr0) {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        _ => 5,
    };
    let vs = if vmid_bits(mmfr1) == 16 { vtcr::VS } else { 0 };
    geometry_bits | (ps << vtcr::PS_SHIFT) | vs | vtcr::RES1
}

/// VMID width from `ID_AA64MMFR1_EL1.VMIDBits` (bits [7:4]: 0b0010 = 16 bits).
pub(crate) const fn vmid_bits(mmfr1: u64) -> u32 {
    if (mmfr1 >> 4) & 0xf == 2 {
        16
    } else {
        8
    }
}

/// VTTBR_EL2 from the stage-2 root and the VMID (bits [63:48]).
pub(crate) const fn vttbr(root: u64, vmid: u16) -> u64 {
    root | ((vmid as u64) << 48)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcr_value_matches_kvm_guest_flags() {
        // KVM's HCR_GUEST_FLAGS (without TID1/FWB), plus TWE, plus E2H on VHE, plus
        // TERR and TEA on RAS hosts.
        assert_eq!(guest_hcr(false, false), 0x0000_0008_807c_663f);
        assert_eq!(guest_hcr(true, false), 0x0000_000c_807c_663f);
        assert_eq!(guest_hcr(true, true), 0x0000_003c_807c_663f);
        assert_eq!(guest_hcr(false, true) & (hcr::TERR | hcr::TEA), 3 << 36);
        assert_eq!(guest_hcr(true, true) & hcr::TGE, 0);
        // Pointer authentication: untrapped only for a vCPU that has it.
        assert_eq!(guest_hcr(true, true) & (hcr::API | hcr::APK), 0);
        assert_eq!(guest_hcr_ptrauth(0, true), 3 << 40);
        assert_eq!(
            guest_hcr_ptrauth(guest_hcr(false, false), false),
            guest_hcr(false, false)
        );
    }

    #[test]
    fn cptr_keeps_fp_and_traps_sve() {
        let host = (1 << 20) | (3 << 16);
        let v = guest_cptr_vhe(host, true);
        assert_eq!(v & cptr_vhe::FPEN_MASK, cptr_vhe::FPEN_MASK);
        assert_eq!(v & cptr_vhe::ZEN_MASK, 0);
        assert_ne!(v & cptr_vhe::TTA, 0);
        // Until the guest's FP registers are loaded, FP traps.
        assert_eq!(
            guest_cptr_vhe(cptr_vhe::FPEN_MASK, false) & cptr_vhe::FPEN_MASK,
            0
        );
    }

    #[test]
    fn mdcr_keeps_hpmn() {
        assert_eq!(guest_mdcr(0xffff_ffff) & mdcr::HPMN_MASK, 0x1f);
        assert_eq!(guest_mdcr(0) & 0x1f, 0);
        assert_ne!(guest_mdcr(0) & mdcr::TDA, 0);
        // SPE and trace filter trapped, the profiling buffer not given to EL1 (E2PB 0).
        assert_eq!(
            guest_mdcr(3 << 12) & (0x3 << 12 | 1 << 14 | 1 << 19),
            1 << 14 | 1 << 19
        );
    }

    #[test]
    fn nvhe_cptr() {
        let host = 0x33ff; // RES1 bits of the E2H=0 layout, nothing trapped
        assert_ne!(guest_cptr_nvhe(host, false) & cptr_nvhe::TFP, 0);
        assert_eq!(guest_cptr_nvhe(host, true) & cptr_nvhe::TFP, 0);
        assert_ne!(guest_cptr_nvhe(0, true) & cptr_nvhe::TTA, 0);
        assert_ne!(guest_cptr_nvhe(0, true) & cptr_nvhe::TZ, 0);
        // AMU trapped in both layouts.
        assert_ne!(guest_cptr_nvhe(host, true) & CPTR_TAM, 0);
        assert_ne!(guest_cptr_vhe(0, true) & CPTR_TAM, 0);
    }

    #[test]
    fn vtcr_fields() {
        // PARange 48 bits (5), 16-bit VMIDs.
        let v = vtcr(0x18, 0x5, 0x20);
        assert_eq!(v, 0x18 | (5 << 16) | (1 << 19) | (1 << 31));
        // 52-bit hosts are capped at 48.
        assert_eq!(parange_bits(6), 48);
        assert_eq!(vmid_bits(0), 8);
        assert_eq!(vttbr(0x4000_0000, 3), 0x0003_0000_4000_0000);
    }
}
