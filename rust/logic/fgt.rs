// SPDX-License-Identifier: GPL-2.0

//! The fine-grained traps (`HFGRTR_EL2` and its siblings, FEAT_FGT/FEAT_FGT2) and
//! `HCRX_EL2` (FEAT_HCX) while a guest runs, from the host's ID registers and the VM's.
//!
//! The kernel's `init_el2_state` (`el2_setup.h`) opens both for itself: it clears the
//! traps of the registers the host CPU has (POR_EL0, PIR_EL1, GCSPR_EL0, TPIDR2_EL0, ...)
//! and enables TCR2, FPMR, MOPS and GCS in HCRX_EL2. A guest running under those values
//! reaches the VMM thread's EL0 registers and, on nVHE, the host kernel's EL1 ones, for
//! features its ID registers do not even advertise. As KVM's `compute_fgu()` and
//! `__compute_fgt()` (`arch/arm64/kvm/config.c`) and `vcpu_set_hcrx()`, every trap bit
//! is tied to the feature of the registers it covers: it traps when the guest's ID
//! registers lack that feature, and a trapped access finds no row in the system-register
//! table and becomes an UNDEF, KVM's answer to a feature the guest was not given. Bits
//! for the base Armv8.0 registers (KVM's `NEVER_FGU`) are not listed and never trap.
//!
//! Two refinements of KVM's rule, both about writing bits of features the host lacks
//! (which are RES0): a trap bit with positive polarity is set only where the host has
//! its feature, and a negative (`n`) bit, whose 0 traps, is set to 1 only where the guest
//! has the feature, so a bit this table does not know traps. Bit positions are those of
//! `arch/arm64/tools/sysreg`.

use super::idregs::{
    field, ID_AA64DFR0_EL1, ID_AA64DFR1_EL1, ID_AA64DFR2_EL1, ID_AA64ISAR0_EL1, ID_AA64ISAR1_EL1,
    ID_AA64ISAR2_EL1, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, ID_AA64MMFR3_EL1, ID_AA64MMFR4_EL1,
    ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, ID_AA64PFR2_EL1,
};

/// Feature ID registers by (CRm, op2) of the ID space: the host's sanitised values, or
/// the VM's view (`idregs::guest_view`).
pub(crate) trait IdRegs {
    fn id(&self, reg: (u8, u8)) -> u64;
}

impl<F: Fn((u8, u8)) -> u64> IdRegs for F {
    fn id(&self, reg: (u8, u8)) -> u64 {
        self(reg)
    }
}

/// A feature as its ID registers describe it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Feat {
    /// The unsigned field at `lsb` of `reg` is at least `min`.
    Field { reg: (u8, u8), lsb: u32, min: u64 },
    /// Pointer authentication: any of APA, API, GPA, GPI (ISAR1), APA3, GPA3 (ISAR2).
    PAuth,
    /// RAS v1.1: RAS >= V1P1, or RAS == IMP with RAS_frac >= 1 (KVM's `feat_rasv1p1`).
    Rasv1p1,
    /// SCXTNUM_ELx: CSV2 >= 2, or CSV2 == 1 with CSV2_frac >= 2
    /// (KVM's `feat_csv2_2_csv2_1p2`).
    Csv2_2,
}

const fn f(reg: (u8, u8), lsb: u32, min: u64) -> Feat {
    Feat::Field { reg, lsb, min }
}

impl Feat {
    pub(crate) fn present(self, ids: &impl IdRegs) -> bool {
        let get = |reg, lsb| field(ids.id(reg), lsb);
        match self {
            Self::Field { reg, lsb, min } => get(reg, lsb) >= min,
            Self::PAuth => {
                [4, 8, 24, 28]
                    .iter()
                    .any(|&l| get(ID_AA64ISAR1_EL1, l) != 0)
                    || [8, 12].iter().any(|&l| get(ID_AA64ISAR2_EL1, l) != 0)
            }
            Self::Rasv1p1 => {
                let ras = get(ID_AA64PFR0_EL1, 28);
                ras >= 2 || (ras == 1 && get(ID_AA64PFR1_EL1, 12) >= 1)
            }
            Self::Csv2_2 => {
                let csv2 = get(ID_AA64PFR0_EL1, 56);
                csv2 >= 2 || (csv2 == 1 && get(ID_AA64PFR1_EL1, 32) >= 2)
            }
        }
    }
}

// The features the traps below depend on (KVM's FEAT_* in config.c).
const AIE: Feat = f(ID_AA64MMFR3_EL1, 24, 1);
const S2POE: Feat = f(ID_AA64MMFR3_EL1, 20, 1);
const S1POE: Feat = f(ID_AA64MMFR3_EL1, 16, 1);
const S1PIE: Feat = f(ID_AA64MMFR3_EL1, 8, 1);
const SCTLRX: Feat = f(ID_AA64MMFR3_EL1, 4, 1);
const TCRX: Feat = f(ID_AA64MMFR3_EL1, 0, 1);
const THE: Feat = f(ID_AA64PFR1_EL1, 48, 1);
const GCS: Feat = f(ID_AA64PFR1_EL1, 44, 1);
const SME: Feat = f(ID_AA64PFR1_EL1, 24, 1);
const PFAR: Feat = f(ID_AA64PFR1_EL1, 60, 1);
const RAS: Feat = f(ID_AA64PFR0_EL1, 28, 1);
const RASV2: Feat = f(ID_AA64PFR0_EL1, 28, 3);
const GICV3: Feat = f(ID_AA64PFR0_EL1, 24, 1);
const FPMR: Feat = f(ID_AA64PFR2_EL1, 32, 1);
const LS64: Feat = f(ID_AA64ISAR1_EL1, 60, 1);
const LS64_V: Feat = f(ID_AA64ISAR1_EL1, 60, 2);
const LS64_ACCDATA: Feat = f(ID_AA64ISAR1_EL1, 60, 3);
const SPECRES: Feat = f(ID_AA64ISAR1_EL1, 40, 1);
const SPECRES2: Feat = f(ID_AA64ISAR1_EL1, 40, 2);
const DPB2: Feat = f(ID_AA64ISAR1_EL1, 0, 2);
const MOPS: Feat = f(ID_AA64ISAR2_EL1, 16, 1);
const ATS1A: Feat = f(ID_AA64ISAR2_EL1, 60, 1);
const TLBIOS: Feat = f(ID_AA64ISAR0_EL1, 56, 1);
const TLBIRANGE: Feat = f(ID_AA64ISAR0_EL1, 56, 2);
const LOR: Feat = f(ID_AA64MMFR1_EL1, 16, 1);
const PAN2: Feat = f(ID_AA64MMFR1_EL1, 20, 2);
const SRMASK: Feat = f(ID_AA64MMFR4_EL1, 44, 1);
const POPS: Feat = f(ID_AA64MMFR4_EL1, 0, 1);
const TRC_SR: Feat = f(ID_AA64DFR0_EL1, 4, 1);
const PMUV3: Feat = f(ID_AA64DFR0_EL1, 8, 1);
const PMUV3P9: Feat = f(ID_AA64DFR0_EL1, 8, 9);
const PMSS: Feat = f(ID_AA64DFR0_EL1, 16, 1);
const SEBEP: Feat = f(ID_AA64DFR0_EL1, 24, 1);
const SPE: Feat = f(ID_AA64DFR0_EL1, 32, 1);
/// SPEv1p2, the precondition of KVM's `feat_spe_fne` (SPE's FnE); SPEv1p4 of `_fds`.
const SPEV1P2: Feat = f(ID_AA64DFR0_EL1, 32, 3);
const SPEV1P4: Feat = f(ID_AA64DFR0_EL1, 32, 5);
const SPEV1P5: Feat = f(ID_AA64DFR0_EL1, 32, 6);
const TRF: Feat = f(ID_AA64DFR0_EL1, 40, 1);
const TRBE: Feat = f(ID_AA64DFR0_EL1, 44, 1);
const TRBEV1P1: Feat = f(ID_AA64DFR0_EL1, 44, 2);
const BRBE: Feat = f(ID_AA64DFR0_EL1, 52, 1);
const DEBUGV8P9: Feat = f(ID_AA64DFR0_EL1, 0, 0xb);
const EBEP: Feat = f(ID_AA64DFR1_EL1, 48, 1);
const ITE: Feat = f(ID_AA64DFR1_EL1, 44, 1);
const PMICNTR: Feat = f(ID_AA64DFR1_EL1, 36, 1);
const SPMU: Feat = f(ID_AA64DFR1_EL1, 32, 1);
const SPE_NVM: Feat = f(ID_AA64DFR2_EL1, 20, 1);
const STEP2: Feat = f(ID_AA64DFR2_EL1, 0, 1);

/// The fine-grained trap registers, in the order of `HypCpu::guest_fgt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FgtReg {
    Hfgrtr,
    Hfgwtr,
    Hfgitr,
    Hdfgrtr,
    Hdfgwtr,
    Hfgrtr2,
    Hfgwtr2,
    Hfgitr2,
    Hdfgrtr2,
    Hdfgwtr2,
}

/// How many there are, in [`FgtReg`]'s order (its values index `GuestTraps::fgt`): the
/// first [`FGT1_COUNT`] with FEAT_FGT, the rest with FEAT_FGT2.
pub(crate) const FGT_COUNT: usize = 10;
pub(crate) const FGT1_COUNT: usize = 5;
const _: () = assert!(FGT_COUNT == super::el2abi::FGT_REGS);
// The VHE backend switches the registers by these indices (`hyp/vhe.rs`).
const _: () = assert!(FgtReg::Hfgrtr as usize == 0 && FgtReg::Hdfgwtr as usize == 4);
const _: () = assert!(FgtReg::Hfgrtr2 as usize == 5 && FgtReg::Hdfgwtr2 as usize == 9);

/// One catalogue entry: bits of `reg` (`mask`) that trap accesses to the registers or
/// instructions of `feat`; `neg` for the `n` bits, which trap when 0.
struct Bits {
    reg: FgtReg,
    mask: u64,
    neg: bool,
    feat: Feat,
}

const fn pos(reg: FgtReg, bits: &[u32], feat: Feat) -> Bits {
    Bits {
        reg,
        mask: mask(bits),
        neg: false,
        feat,
    }
}

const fn neg(reg: FgtReg, bits: &[u32], feat: Feat) -> Bits {
    Bits {
        reg,
        mask: mask(bits),
        neg: true,
        feat,
    }
}

const fn mask(bits: &[u32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < bits.len() {
        m |= 1 << bits[i];
        i += 1;
    }
    m
}

use FgtReg::*;

/// KVM's `hfgrtr_feat_map` and its siblings, without the `NEVER_FGU` entries. Read and
/// write registers share positions; the write ones lack the read-only registers' bits.
const CATALOGUE: &[Bits] = &[
    // HFGRTR_EL2 / HFGWTR_EL2.
    neg(Hfgrtr, &[63, 62], AIE), // nAMAIR2_EL1, nMAIR2_EL1
    neg(Hfgwtr, &[63, 62], AIE),
    neg(Hfgrtr, &[61], S2POE), // nS2POR_EL1
    neg(Hfgwtr, &[61], S2POE),
    neg(Hfgrtr, &[60, 59], S1POE), // nPOR_EL1, nPOR_EL0
    neg(Hfgwtr, &[60, 59], S1POE),
    neg(Hfgrtr, &[58, 57], S1PIE), // nPIR_EL1, nPIRE0_EL1
    neg(Hfgwtr, &[58, 57], S1PIE),
    neg(Hfgrtr, &[56], THE), // nRCWMASK_EL1
    neg(Hfgwtr, &[56], THE),
    neg(Hfgrtr, &[55, 54], SME), // nTPIDR2_EL0, nSMPRI_EL1
    neg(Hfgwtr, &[55, 54], SME),
    neg(Hfgrtr, &[53, 52], GCS), // nGCS_EL1, nGCS_EL0
    neg(Hfgwtr, &[53, 52], GCS),
    neg(Hfgrtr, &[50], LS64_ACCDATA), // nACCDATA_EL1
    neg(Hfgwtr, &[50], LS64_ACCDATA),
    // ERXADDR, ERXMISCn, ERXSTATUS, ERXCTLR, ERXFR, ERRSELR, ERRIDR.
    pos(Hfgrtr, &[49, 45, 44, 43, 42, 41, 40], RAS),
    pos(Hfgwtr, &[49, 45, 44, 43, 41], RAS),
    // ERXPFGCDN, ERXPFGCTL, ERXPFGF.
    pos(Hfgrtr, &[48, 47, 46], Feat::Rasv1p1),
    pos(Hfgwtr, &[48, 47], Feat::Rasv1p1),
    pos(Hfgrtr, &[39], GICV3), // ICC_IGRPENn_EL1
    pos(Hfgwtr, &[39], GICV3),
    pos(Hfgrtr, &[31, 30], Feat::Csv2_2), // SCXTNUM_EL0, SCXTNUM_EL1
    pos(Hfgwtr, &[31, 30], Feat::Csv2_2),
    pos(Hfgrtr, &[23, 22, 21, 20, 19], LOR), // LORSA, LORN, LORID, LOREA, LORC
    pos(Hfgwtr, &[23, 22, 20, 19], LOR),
    pos(Hfgrtr, &[8, 7, 6, 5, 4], Feat::PAuth), // the five key pairs
    pos(Hfgwtr, &[8, 7, 6, 5, 4], Feat::PAuth),
    // HFGITR_EL2.
    pos(Hfgitr, &[63], SPEV1P5),         // PSBCSYNC
    pos(Hfgitr, &[62], ATS1A),           // ATS1E1A
    pos(Hfgitr, &[60], SPECRES2),        // COSPRCTX
    neg(Hfgitr, &[59, 58, 57], GCS),     // nGCSEPP, nGCSSTR_EL1, nGCSPUSHM_EL1
    neg(Hfgitr, &[56, 55], BRBE),        // nBRBIALL, nBRBINJ
    pos(Hfgitr, &[50, 49, 48], SPECRES), // CPPRCTX, DVPRCTX, CFPRCTX
    pos(
        Hfgitr,
        &[41, 40, 39, 38, 37, 36, 35, 34, 27, 26, 25, 24],
        TLBIRANGE,
    ), // TLBI RVA*E1, *IS, *OS
    pos(Hfgitr, &[23, 22, 21, 20, 19, 18], TLBIOS), // TLBI *E1OS
    pos(Hfgitr, &[17, 16], PAN2),        // ATS1E1WP, ATS1E1RP
    pos(Hfgitr, &[9], DPB2),             // DCCVADP
    // HDFGRTR_EL2 / HDFGWTR_EL2.
    pos(Hdfgrtr, &[63, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23], SPE), // PMBIDR, PMS*, PMB*
    pos(Hdfgwtr, &[32, 31, 29, 28, 27, 26, 25, 24, 23], SPE),
    neg(Hdfgrtr, &[62], SPEV1P2), // nPMSNEVFR_EL1
    neg(Hdfgwtr, &[62], SPEV1P2),
    neg(Hdfgrtr, &[61, 60, 59], BRBE), // nBRBDATA, nBRBCTL, nBRBIDR
    neg(Hdfgwtr, &[61, 60], BRBE),
    // The trace unit's registers.
    pos(
        Hdfgrtr,
        &[48, 47, 46, 45, 44, 43, 41, 40, 37, 36, 35, 34, 33],
        TRC_SR,
    ),
    pos(Hdfgwtr, &[48, 46, 45, 44, 42, 41, 37, 36, 35, 33], TRC_SR),
    // The PMU's registers.
    pos(
        Hdfgrtr,
        &[58, 57, 22, 19, 18, 17, 16, 15, 14, 13, 12],
        PMUV3,
    ),
    pos(
        Hdfgwtr,
        &[57, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12],
        PMUV3,
    ),
    pos(Hdfgrtr, &[56, 55, 54, 53, 52, 51, 50], TRBE), // TRB*_EL1
    pos(Hdfgwtr, &[56, 55, 54, 53, 52, 50], TRBE),
    pos(Hdfgwtr, &[49], TRF), // TRFCR_EL1
    // HFGRTR2_EL2 / HFGWTR2_EL2.
    neg(Hfgrtr2, &[0], PFAR), // nPFAR_EL1
    neg(Hfgwtr2, &[0], PFAR),
    neg(Hfgrtr2, &[1], RASV2), // nERXGSR_EL1
    neg(Hfgrtr2, &[14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3], SRMASK),
    neg(Hfgwtr2, &[14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3], SRMASK),
    neg(Hfgrtr2, &[2], THE), // nRCWSMASK_EL1
    neg(Hfgwtr2, &[2], THE),
    // HFGITR2_EL2.
    neg(Hfgitr2, &[1], POPS),     // nDCCIVAPS
    pos(Hfgitr2, &[0], TRBEV1P1), // TSBCSYNC
    // HDFGRTR2_EL2 / HDFGWTR2_EL2: every bit is an `n` bit.
    neg(Hdfgrtr2, &[5], DEBUGV8P9), // nMDSELR_EL1
    neg(Hdfgwtr2, &[5], DEBUGV8P9),
    neg(Hdfgrtr2, &[0], EBEP), // nPMECR_EL1 (EBEP, or PMSS below)
    neg(Hdfgwtr2, &[0], EBEP),
    neg(Hdfgrtr2, &[0], PMSS),
    neg(Hdfgwtr2, &[0], PMSS),
    neg(Hdfgrtr2, &[20], ITE), // nTRCITECR_EL1
    neg(Hdfgwtr2, &[20], ITE),
    neg(Hdfgrtr2, &[3, 2], PMICNTR), // nPMICFILTR_EL0, nPMICNTR_EL0
    neg(Hdfgwtr2, &[3, 2], PMICNTR),
    neg(Hdfgrtr2, &[4], PMUV3P9),     // nPMUACR_EL1
    neg(Hdfgwtr2, &[4, 21], PMUV3P9), // nPMUACR_EL1, nPMZR_EL0
    neg(Hdfgrtr2, &[7, 6], PMSS),     // nPMSSCR_EL1, nPMSSDATA
    neg(Hdfgwtr2, &[7], PMSS),
    neg(Hdfgrtr2, &[1], SEBEP), // nPMIAR_EL1
    neg(Hdfgwtr2, &[1], SEBEP),
    neg(Hdfgrtr2, &[19], SPEV1P4), // nPMSDSFR_EL1
    neg(Hdfgwtr2, &[19], SPEV1P4),
    neg(Hdfgrtr2, &[24], SPE_NVM), // nPMBMAR_EL1
    neg(Hdfgwtr2, &[24], SPE_NVM),
    neg(Hdfgrtr2, &[18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8], SPMU),
    neg(Hdfgwtr2, &[16, 15, 14, 13, 12, 11, 10, 9, 8], SPMU),
    neg(Hdfgrtr2, &[23], STEP2), // nMDSTEPOP_EL1
    neg(Hdfgwtr2, &[23], STEP2),
    // nTRBMPAM_EL1 (22) needs TRBE and MPAM; the guest has neither, so it stays 0.
];

/// HCRX_EL2 bits a guest may have, each with the feature that enables it (KVM's
/// `vcpu_set_hcrx`): everything else stays 0, which disables or traps it for EL1 and EL0.
const HCRX_ENABLES: &[(u64, Feat)] = &[
    (1 << 11 | 1 << 10, MOPS), // MSCEn, MCE2
    (1 << 14, TCRX),           // TCR2En
    (1 << 23, FPMR),           // EnFPM
    (1 << 15, SCTLRX),         // SCTLR2En
    (1 << 1, LS64),            // EnALS
    (1 << 2, LS64_V),          // EnASR
];
/// HCRX_EL2.SMPME, which KVM sets for every guest: its effect (streaming-mode priority
/// mapping) is not visible to a guest without SME. Set only where the host has SME.
const HCRX_SMPME: u64 = 1 << 5;

/// What the host CPU has of the EL2 registers this module programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HostCaps {
    pub(crate) fgt: bool,
    pub(crate) fgt2: bool,
    pub(crate) hcx: bool,
}

impl HostCaps {
    /// From `ID_AA64MMFR0_EL1.FGT` (1: FGT, 2: FGT2) and `ID_AA64MMFR1_EL1.HCX`.
    pub(crate) fn of(host: &impl IdRegs) -> Self {
        let fgt = field(host.id(ID_AA64MMFR0_EL1), 56);
        Self {
            fgt: fgt >= 1,
            fgt2: fgt >= 2,
            hcx: field(host.id(ID_AA64MMFR1_EL1), 40) >= 1,
        }
    }
}

/// The guest's values of the fine-grained trap registers (index: [`FgtReg`]) and of
/// HCRX_EL2. Registers the host lacks are 0 and never written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GuestTraps {
    pub(crate) fgt: [u64; FGT_COUNT],
    pub(crate) hcrx: u64,
}

impl GuestTraps {
    /// KVM's `compute_fgu()` + `kvm_vcpu_load_fgt()` and `vcpu_set_hcrx()` for a
    /// non-nested guest whose ID registers are `guest`, on a host whose are `host`.
    pub(crate) fn compute(host: &impl IdRegs, guest: &impl IdRegs) -> Self {
        let caps = HostCaps::of(host);
        let mut t = Self::default();
        for b in CATALOGUE {
            let i = b.reg as usize;
            let present = if i < FGT1_COUNT { caps.fgt } else { caps.fgt2 };
            if !present {
                continue;
            }
            let guest_has = b.feat.present(guest);
            // An `n` bit set means "not trapped"; a positive bit set means "trapped".
            let set = if b.neg {
                guest_has
            } else {
                !guest_has && b.feat.present(host)
            };
            if set {
                t.fgt[i] |= b.mask;
            }
        }
        if caps.hcx {
            for &(bits, feat) in HCRX_ENABLES {
                if feat.present(guest) {
                    t.hcrx |= bits;
                }
            }
            if SME.present(host) {
                t.hcrx |= HCRX_SMPME;
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::collections::HashMap;

    /// ID registers from a list of (register, value); the rest read 0.
    fn ids(list: &[((u8, u8), u64)]) -> impl Fn((u8, u8)) -> u64 {
        let m: HashMap<(u8, u8), u64> = list.iter().copied().collect();
        move |r| m.get(&r).copied().unwrap_or(0)
    }

    /// A host like QEMU's `-cpu max` (sve=off, sme=off): FGT, HCX, RAS, TCR2, S1PIE,
    /// S1POE, SCTLR2, GCS, MOPS, PAuth, CSV2_3, TLBI range, PAN3, DPB2, TRF, PMUv3p9.
    fn max_host() -> impl Fn((u8, u8)) -> u64 {
        ids(&[
            (ID_AA64MMFR0_EL1, 1 << 56 | 0x5),
            (ID_AA64MMFR1_EL1, 1 << 40 | 3 << 20 | 1 << 16),
            (ID_AA64MMFR3_EL1, 1 << 16 | 1 << 8 | 1 << 4 | 1),
            (ID_AA64PFR0_EL1, 3 << 56 | 1 << 28 | 1 << 24 | 0x11),
            (ID_AA64PFR1_EL1, 1 << 44),
            (ID_AA64ISAR0_EL1, 2 << 56),
            (ID_AA64ISAR1_EL1, 1 << 40 | 7 << 4 | 2),
            (ID_AA64ISAR2_EL1, 1 << 16),
            (ID_AA64DFR0_EL1, 1 << 40 | 9 << 8 | 9),
        ])
    }

    /// What rkvm's guest sees of it (`idregs::guest_view`).
    fn guest_of(host: impl Fn((u8, u8)) -> u64) -> impl Fn((u8, u8)) -> u64 {
        move |(crm, op2)| super::super::idregs::guest_view(crm, op2, host((crm, op2)))
    }

    fn bit(t: &GuestTraps, r: FgtReg, b: u32) -> bool {
        t.fgt[r as usize] & 1 << b != 0
    }

    #[test]
    fn hidden_features_trap_on_a_max_host() {
        let host = max_host();
        let t = GuestTraps::compute(&host, &guest_of(max_host()));
        // POR_EL0/EL1, PIR/PIRE0, GCS, TPIDR2: `n` bits 0, read and write.
        for b in [60, 59, 58, 57, 55, 54, 53, 52] {
            assert!(!bit(&t, Hfgrtr, b) && !bit(&t, Hfgwtr, b), "{b}");
        }
        // The error records (RAS is hidden from the guest) and the PAuth keys trap.
        for b in [49, 45, 44, 43, 42, 41, 40, 8, 4] {
            assert!(bit(&t, Hfgrtr, b), "{b}");
        }
        // LORegions trap (hidden); the host has no RASv1p1, so its bits stay RES0.
        assert!(bit(&t, Hfgrtr, 19) && bit(&t, Hfgwtr, 19));
        assert!(!bit(&t, Hfgrtr, 48));
        // The GIC, TLBI range and OS, PAN2 and DPB2 are the guest's; SCXTNUM is not (the
        // guest's CSV2 is capped at 1, as KVM's), so it traps on this CSV2_3 host.
        assert!(!bit(&t, Hfgrtr, 39));
        assert!(bit(&t, Hfgrtr, 31) && bit(&t, Hfgwtr, 30));
        for b in [41, 18, 17, 16, 9] {
            assert!(!bit(&t, Hfgitr, b), "{b}");
        }
        // The PMU, the trace filter: trapped; the base registers never are.
        assert!(bit(&t, Hdfgrtr, 12) && bit(&t, Hdfgwtr, 21) && bit(&t, Hdfgwtr, 49));
        for b in [0, 1, 4, 11] {
            assert!(!bit(&t, Hdfgrtr, b), "{b}");
        }
        assert_eq!(t.fgt[Hfgitr as usize] & (1 << 51 | 1 << 53 | 1 << 52), 0);
        // No FGT2 on this host: its registers stay 0. HCRX: nothing enabled (MOPS,
        // TCR2, SCTLR2 and FPMR are hidden), and no SME for SMPME.
        assert_eq!(t.fgt[Hfgrtr2 as usize..], [0; 5]);
        assert_eq!(t.hcrx, 0);
    }

    #[test]
    fn features_the_guest_has_stay_open() {
        // A guest given everything its host has: no `n` bit traps it, no positive bit is
        // set, and HCRX enables what KVM's vcpu_set_hcrx does.
        let host = ids(&[
            (ID_AA64MMFR0_EL1, 2 << 56),
            (ID_AA64MMFR1_EL1, 1 << 40),
            (ID_AA64MMFR3_EL1, 1 << 16 | 1 << 8 | 1 << 4 | 1),
            (ID_AA64PFR1_EL1, 1 << 44 | 1 << 24),
            (ID_AA64PFR2_EL1, 1 << 32),
            (ID_AA64ISAR2_EL1, 1 << 16),
        ]);
        let t = GuestTraps::compute(&host, &host);
        for b in [60, 59, 58, 57, 55, 54, 53, 52] {
            assert!(bit(&t, Hfgrtr, b) && bit(&t, Hfgwtr, b), "{b}");
        }
        assert!(bit(&t, Hfgitr, 59) && bit(&t, Hfgitr, 58) && bit(&t, Hfgitr, 57));
        assert_eq!(t.fgt[Hfgrtr as usize] & 0xffff_ffff, 0);
        assert_eq!(
            t.hcrx,
            1 << 11 | 1 << 10 | 1 << 14 | 1 << 23 | 1 << 15 | HCRX_SMPME
        );
        // FGT2 present, the guest has none of its features: every bit traps (0).
        assert_eq!(t.fgt[Hfgrtr2 as usize..], [0; 5]);
    }

    #[test]
    fn fgt2_positive_bits_only_where_the_host_has_them() {
        let host = ids(&[(ID_AA64MMFR0_EL1, 2 << 56), (ID_AA64DFR0_EL1, 2 << 44)]);
        let t = GuestTraps::compute(&host, &ids(&[]));
        assert_eq!(t.fgt[Hfgitr2 as usize], 1); // TSBCSYNC: TRBEv1p1 hidden
        assert_eq!(t.fgt[Hdfgrtr as usize] & (1 << 56), 1 << 56); // TRBTRG_EL1
        let t = GuestTraps::compute(&ids(&[(ID_AA64MMFR0_EL1, 2 << 56)]), &ids(&[]));
        assert_eq!(t.fgt, [0; FGT_COUNT]);
    }

    #[test]
    fn nothing_without_fgt_or_hcx() {
        // An Armv8.0 core (Cortex-A72): no FGT, no HCX, nothing to program.
        let a72 = || ids(&[(ID_AA64PFR0_EL1, 0x1100_0011)]);
        assert_eq!(HostCaps::of(&a72()), HostCaps::default());
        assert_eq!(
            GuestTraps::compute(&a72(), &guest_of(a72())),
            GuestTraps::default()
        );
        let caps = HostCaps::of(&max_host());
        assert!(caps.fgt && !caps.fgt2 && caps.hcx);
    }

    #[test]
    fn compound_features() {
        let pauth = ids(&[(ID_AA64ISAR2_EL1, 1 << 12)]);
        assert!(Feat::PAuth.present(&pauth));
        assert!(!Feat::PAuth.present(&ids(&[])));
        let ras_frac = ids(&[(ID_AA64PFR0_EL1, 1 << 28), (ID_AA64PFR1_EL1, 1 << 12)]);
        assert!(Feat::Rasv1p1.present(&ras_frac));
        assert!(!Feat::Rasv1p1.present(&ids(&[(ID_AA64PFR0_EL1, 1 << 28)])));
        assert!(Feat::Rasv1p1.present(&ids(&[(ID_AA64PFR0_EL1, 2 << 28)])));
        let csv2_1p2 = ids(&[(ID_AA64PFR0_EL1, 1 << 56), (ID_AA64PFR1_EL1, 2 << 32)]);
        assert!(Feat::Csv2_2.present(&csv2_1p2));
        assert!(!Feat::Csv2_2.present(&ids(&[(ID_AA64PFR0_EL1, 1 << 56)])));
    }
}
