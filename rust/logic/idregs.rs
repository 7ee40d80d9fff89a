// SPDX-License-Identifier: GPL-2.0

//! What the guest reads from the feature ID registers.
//!
//! KVM counterpart: `__kvm_read_sanitised_id_reg()`, the `sanitise_id_aa64*_el1()` helpers
//! and the ID entries of `sys_reg_descs[]` in `arch/arm64/kvm/sys_regs.c`. Field positions
//! are those of `arch/arm64/tools/sysreg`.
//!
//! With `HCR_EL2.TID3` set, guest reads of op0=3, op1=0, CRn=0, CRm=1..=7 trap to rkvm,
//! which answers with the host's sanitised value filtered per register. AArch64 registers
//! go through an allow-list: a field rkvm has not vetted reads as 0 ("not implemented"),
//! so a feature that first appears in a later CPU stays hidden until someone decides rkvm
//! virtualises it. AArch32 registers describe a state the guest can only use at EL0, so
//! they pass through except for fields whose AArch64 counterparts are hidden for a reason
//! that holds in both states (EL2/EL3, PMU, trace, RAS, AMU).

/// Every ID register field is four bits wide; this is the one whose lowest bit is `lsb`.
pub(crate) const fn field(value: u64, lsb: u32) -> u64 {
    match value.checked_shr(lsb) {
        Some(v) => v & 0xf,
        None => 0,
    }
}

/// The mask of the fields starting at each bit of `lsbs` (each below 64).
const fn fields(lsbs: &[u32]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < lsbs.len() {
        mask |= 0xf << lsbs[i];
        i += 1;
    }
    mask
}

// (CRm, op2) of the registers with a policy of their own. Every other encoding in the
// space reads as zero.
pub(crate) const ID_PFR0_EL1: (u8, u8) = (1, 0);
pub(crate) const ID_PFR1_EL1: (u8, u8) = (1, 1);
pub(crate) const ID_DFR0_EL1: (u8, u8) = (1, 2);
#[cfg(test)]
pub(crate) const ID_AFR0_EL1: (u8, u8) = (1, 3);
pub(crate) const ID_MMFR4_EL1: (u8, u8) = (2, 6);
pub(crate) const ID_PFR2_EL1: (u8, u8) = (3, 4);
#[cfg(test)]
pub(crate) const ID_DFR1_EL1: (u8, u8) = (3, 5);
pub(crate) const ID_AA64PFR0_EL1: (u8, u8) = (4, 0);
pub(crate) const ID_AA64PFR1_EL1: (u8, u8) = (4, 1);
pub(crate) const ID_AA64PFR2_EL1: (u8, u8) = (4, 2);
pub(crate) const ID_AA64DFR0_EL1: (u8, u8) = (5, 0);
pub(crate) const ID_AA64DFR1_EL1: (u8, u8) = (5, 1);
pub(crate) const ID_AA64DFR2_EL1: (u8, u8) = (5, 2);
pub(crate) const ID_AA64ISAR0_EL1: (u8, u8) = (6, 0);
pub(crate) const ID_AA64ISAR1_EL1: (u8, u8) = (6, 1);
pub(crate) const ID_AA64ISAR2_EL1: (u8, u8) = (6, 2);
pub(crate) const ID_AA64MMFR0_EL1: (u8, u8) = (7, 0);
pub(crate) const ID_AA64MMFR1_EL1: (u8, u8) = (7, 1);
pub(crate) const ID_AA64MMFR2_EL1: (u8, u8) = (7, 2);
pub(crate) const ID_AA64MMFR3_EL1: (u8, u8) = (7, 3);
pub(crate) const ID_AA64MMFR4_EL1: (u8, u8) = (7, 4);

/// `ID_AA64PFR0_EL1.EL1`, forced to "AArch64 only": rkvm runs no AArch32 EL1.
pub(crate) const PFR0_EL1_AARCH64_ONLY: u64 = 0b0001 << 4;

/// `ID_AA64PFR0_EL1` fields passed through. Hidden: EL2 and EL3 (the guest has neither),
/// SVE, RAS, SEL2, MPAM, AMU and RME, whose registers and traps rkvm does not handle.
pub(crate) const PFR0_KEEP: u64 = fields(&[
    0,  // EL0
    16, // FP
    20, // AdvSIMD
    24, // GIC
    48, // DIT
    56, // CSV2
    60, // CSV3
]);

/// `ID_AA64PFR0_EL1.CSV2` ceiling, "implemented" as in KVM: CSV2_2 and later add
/// SCXTNUM_EL0/EL1, which rkvm does not switch (the fine-grained traps keep them UNDEF).
pub(crate) const CSV2_MAX: u64 = 1;

/// `ID_AA64PFR1_EL1`: branch targets, SSBS and the CSV2 refinement need nothing from the
/// hypervisor. Hidden: MTE, SME, GCS, NMI, RAS_frac, MPAM_frac, RNDR_trap, THE and later.
pub(crate) const PFR1_KEEP: u64 = fields(&[
    0,  // BT
    4,  // SSBS
    32, // CSV2_frac
]);

/// `ID_AA64DFR0_EL1`: the self-hosted debug resources. Hidden: PMU, SPE, trace, BRBE and
/// the rest. DebugVer is kept but capped (see [`DEBUGVER_MAX`]).
pub(crate) const DFR0_KEEP: u64 = fields(&[
    12, // BRPs
    20, // WRPs
    28, // CTX_CMPs
]);
/// `ID_AA64DFR0_EL1.DebugVer` ceiling, Armv8.8 as in KVM: v8.9 adds breakpoint and
/// watchpoint banks behind `MDSELR_EL1`, which rkvm does not emulate.
pub(crate) const DEBUGVER_MAX: u64 = 0b1010;
/// `ID_AA64DFR0_EL1.DoubleLock` is a signed field where 0 means implemented, so hiding it
/// takes 0b1111: the guest is not offered an OS Double Lock it would have to emulate.
pub(crate) const DFR0_DOUBLELOCK_NI: u64 = 0xf << 36;

/// `ID_AA64ISAR0_EL1`: instructions that execute without the hypervisor. Every allocated
/// field is kept; the reserved [27:24] and [3:0] are not, so a future use is vetted first.
pub(crate) const ISAR0_KEEP: u64 = fields(&[
    4,  // AES
    8,  // SHA1
    12, // SHA2
    16, // CRC32
    20, // ATOMIC
    28, // RDM
    32, // SHA3
    36, // SM3
    40, // SM4
    44, // DP
    48, // FHM
    52, // TS
    56, // TLB
    60, // RNDR
]);

/// `ID_AA64ISAR1_EL1`: all allocated fields except pointer authentication (APA, API, GPA,
/// GPI: shown only to a VM whose vCPUs have it, `logic::ptrauth::id_fields`) and LS64
/// (64-byte device accesses cannot be emulated as MMIO).
pub(crate) const ISAR1_KEEP: u64 = fields(&[
    0,  // DPB
    12, // JSCVT
    16, // FCMA
    20, // LRCPC
    32, // FRINTTS
    36, // SB
    40, // SPECRES
    44, // BF16
    48, // DGH
    52, // I8MM
    56, // XS
]);

/// `ID_AA64ISAR2_EL1`: RPRES, BC and CLRBHB only. Hidden among others: WFxT (needs timer
/// handling), MOPS (needs exception handling), APA3/GPA3/PAC_frac (pointer
/// authentication, added per VM as in ISAR1).
pub(crate) const ISAR2_KEEP: u64 = fields(&[
    4,  // RPRES
    20, // BC
    28, // CLRBHB
]);

/// `ID_AA64MMFR0_EL1`: the stage-1 translation features. Hidden: the stage-2 granule
/// fields TGran*_2 (0 refers them to TGran*), FGT and ECV.
pub(crate) const MMFR0_KEEP: u64 = fields(&[
    0,  // PARange
    4,  // ASIDBits
    8,  // BigEnd
    12, // SNSMem
    16, // BigEndEL0
    20, // TGran16
    24, // TGran64
    28, // TGran4
    44, // ExS
]);

/// `ID_AA64MMFR1_EL1`: stage-1 and EL1 features. Hidden: VMIDBits, VH, LO, XNX, TWED,
/// HCX, nTLBPA, TIDCP1, CMOW, SpecSEI.
pub(crate) const MMFR1_KEEP: u64 = fields(&[
    0,  // HAFDBS
    12, // HPDS
    20, // PAN
    36, // ETS
    44, // AFP
    60, // ECBHB
]);

/// `ID_AA64MMFR2_EL1`: stage-1 and EL1 features. Hidden: NV, FWB, TTL, EVT (EL2 and
/// stage 2) and LSM (AArch32 only).
pub(crate) const MMFR2_KEEP: u64 = fields(&[
    0,  // CnP
    4,  // UAO
    12, // IESB
    16, // VARange
    20, // CCIDX
    28, // ST
    32, // AT
    36, // IDS
    52, // BBM
    60, // E0PD
]);

/// AArch32 ID registers are 32 bits wide; the upper half is RES0.
const AA32: u64 = 0xffff_ffff;
/// `ID_PFR0_EL1` without RAS [31:28] and AMU [23:20], as their AArch64 fields.
pub(crate) const AA32_PFR0_KEEP: u64 = AA32 & !fields(&[20, 28]);
/// `ID_PFR1_EL1` without Security [7:4], Virtualization [15:12], Sec_frac [23:20] and
/// Virt_frac [27:24]: the guest has no EL3 or EL2.
pub(crate) const AA32_PFR1_KEEP: u64 = AA32 & !fields(&[4, 12, 20, 24]);
/// `ID_DFR0_EL1` without PerfMon [27:24] (no PMU) and the trace fields CopTrc [15:12],
/// MMapTrc [19:16] and TraceFilt [31:28] (no trace, as `ID_AA64DFR0_EL1.TraceVer`).
pub(crate) const AA32_DFR0_KEEP: u64 = AA32 & !fields(&[12, 16, 24, 28]);
/// `ID_MMFR4_EL1` without EVT [31:28], hidden in `ID_AA64MMFR2_EL1` too.
pub(crate) const AA32_MMFR4_KEEP: u64 = AA32 & !fields(&[28]);
/// `ID_PFR2_EL1`: CSV3 and SSBS; RAS_frac [11:8] goes with RAS.
pub(crate) const AA32_PFR2_KEEP: u64 = fields(&[0, 4]);

/// The value the guest reads from the ID register (op0=3, op1=0, CRn=0, `crm`, `op2`),
/// given the host's sanitised value of it.
///
/// Encodings outside the space, unallocated ones in it, and registers rkvm hides whole
/// (SVE, SME, PFR2, DFR1, the auxiliary AFRs, ISAR3, MMFR3/4; AArch32 ID_AFR0 and
/// ID_DFR1, which KVM hides too) read as zero.
pub(crate) fn guest_view(crm: u8, op2: u8, host: u64) -> u64 {
    match (crm, op2) {
        ID_PFR0_EL1 => host & AA32_PFR0_KEEP,
        ID_PFR1_EL1 => host & AA32_PFR1_KEEP,
        ID_DFR0_EL1 => host & AA32_DFR0_KEEP,
        // ID_MMFR0..3, ID_ISAR0..5, ID_ISAR6, MVFR0..2, ID_MMFR5.
        (1, 4..=7) | (2, 0..=5) | (2, 7) | (3, 0..=2) | (3, 6) => host & AA32,
        ID_MMFR4_EL1 => host & AA32_MMFR4_KEEP,
        ID_PFR2_EL1 => host & AA32_PFR2_KEEP,
        ID_AA64PFR0_EL1 => {
            let csv2 = if field(host, 56) > CSV2_MAX {
                CSV2_MAX << 56
            } else {
                host & (0xf << 56)
            };
            host & PFR0_KEEP & !(0xf << 56) | csv2 | PFR0_EL1_AARCH64_ONLY
        }
        ID_AA64PFR1_EL1 => host & PFR1_KEEP,
        ID_AA64DFR0_EL1 => {
            let debugver = field(host, 0);
            let debugver = if debugver > DEBUGVER_MAX {
                DEBUGVER_MAX
            } else {
                debugver
            };
            host & DFR0_KEEP | DFR0_DOUBLELOCK_NI | debugver
        }
        ID_AA64ISAR0_EL1 => host & ISAR0_KEEP,
        ID_AA64ISAR1_EL1 => host & ISAR1_KEEP,
        ID_AA64ISAR2_EL1 => host & ISAR2_KEEP,
        ID_AA64MMFR0_EL1 => host & MMFR0_KEEP,
        ID_AA64MMFR1_EL1 => host & MMFR1_KEEP,
        ID_AA64MMFR2_EL1 => host & MMFR2_KEEP,
        _ => 0,
    }
}

/// A VM's ID register once a vCPU has run without an in-kernel irqchip: the GIC fields
/// (`ID_AA64PFR0_EL1.GIC`, `ID_PFR1_EL1.GIC`) read as zero, since the guest has no GIC
/// system registers then. Before the first run they still show the GIC, because QEMU
/// reads the ID registers before it creates the vGIC (KVM does the same).
pub(crate) fn without_irqchip(crm: u8, op2: u8, value: u64) -> u64 {
    match (crm, op2) {
        ID_AA64PFR0_EL1 => value & !(0xf << 24),
        ID_PFR1_EL1 => value & !(0xf << 28),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    /// Checks one register field by field against an all-ones host, and that nothing
    /// outside the kept fields leaks. `policy` lists (name, lowest bit, passed through);
    /// `fixed_all` and `fixed_zero` are the bits rkvm supplies itself when the host reads
    /// all ones and all zeroes.
    fn check(reg: (u8, u8), policy: &[(&str, u32, bool)], fixed_all: u64, fixed_zero: u64) {
        let (crm, op2) = reg;
        let all = guest_view(crm, op2, u64::MAX);
        let kept: Vec<u32> = policy.iter().filter(|f| f.2).map(|f| f.1).collect();
        let kept = fields(&kept);
        for &(name, lsb, keep) in policy {
            let seen = field(all, lsb);
            if keep {
                assert_eq!(seen, 0xf, "{name} should pass through");
            } else {
                assert_eq!(seen, field(fixed_all, lsb), "{name} should be hidden");
            }
        }
        assert_eq!(
            all & !kept,
            fixed_all,
            "bits beyond the policy in ({crm}, {op2})"
        );
        assert_eq!(guest_view(crm, op2, 0), fixed_zero);
    }

    #[test]
    fn pfr0() {
        check(
            ID_AA64PFR0_EL1,
            &[
                ("EL0", 0, true),
                ("EL1", 4, false),
                ("EL2", 8, false),
                ("EL3", 12, false),
                ("FP", 16, true),
                ("AdvSIMD", 20, true),
                ("GIC", 24, true),
                ("RAS", 28, false),
                ("SVE", 32, false),
                ("SEL2", 36, false),
                ("MPAM", 40, false),
                ("AMU", 44, false),
                ("DIT", 48, true),
                ("RME", 52, false),
                ("CSV2", 56, false),
                ("CSV3", 60, true),
            ],
            PFR0_EL1_AARCH64_ONLY | CSV2_MAX << 56,
            PFR0_EL1_AARCH64_ONLY,
        );
    }

    #[test]
    fn pfr0_of_a_realistic_host() {
        // Neoverse-N1-like: CSV3, CSV2, DIT, RAS, GICv3, FP and AdvSIMD with half
        // precision, EL3..EL0 all with AArch32.
        let host = 0x1101_0000_1111_2222;
        assert_eq!(guest_view(4, 0, host), 0x1101_0000_0111_0012);
        assert_eq!(field(guest_view(4, 0, host), 4), 1);
        // CSV2_3 (QEMU's max CPU) is offered as CSV2: no SCXTNUM_ELx for the guest.
        assert_eq!(field(guest_view(4, 0, 3 << 56), 56), 1);
        assert_eq!(field(guest_view(4, 0, 0), 56), 0);
    }

    #[test]
    fn pfr1() {
        check(
            ID_AA64PFR1_EL1,
            &[
                ("BT", 0, true),
                ("SSBS", 4, true),
                ("MTE", 8, false),
                ("RAS_frac", 12, false),
                ("MPAM_frac", 16, false),
                ("SME", 24, false),
                ("RNDR_trap", 28, false),
                ("CSV2_frac", 32, true),
                ("NMI", 36, false),
                ("MTE_frac", 40, false),
                ("GCS", 44, false),
                ("THE", 48, false),
                ("MTEX", 52, false),
                ("DF2", 56, false),
                ("PFAR", 60, false),
            ],
            0,
            0,
        );
    }

    #[test]
    fn dfr0() {
        check(
            ID_AA64DFR0_EL1,
            &[
                ("TraceVer", 4, false),
                ("PMUVer", 8, false),
                ("BRPs", 12, true),
                ("PMSS", 16, false),
                ("WRPs", 20, true),
                ("SEBEP", 24, false),
                ("CTX_CMPs", 28, true),
                ("PMSVer", 32, false),
                ("DoubleLock", 36, false),
                ("TraceFilt", 40, false),
                ("TraceBuffer", 44, false),
                ("MTPMU", 48, false),
                ("BRBE", 52, false),
                ("ExtTrcBuff", 56, false),
                ("HPMN0", 60, false),
            ],
            DFR0_DOUBLELOCK_NI | DEBUGVER_MAX,
            DFR0_DOUBLELOCK_NI,
        );
        // Cortex-A76-like: v8.2 debug, PMUv3p1, 6 breakpoints, 4 watchpoints, 2 context
        // comparators.
        let host = 0x0000_0000_1030_5408;
        assert_eq!(guest_view(5, 0, host), 0x0000_00f0_1030_5008);
        // Debug v8.9 is reported as v8.8; older versions are untouched.
        assert_eq!(field(guest_view(5, 0, 0xb), 0), 0b1010);
        assert_eq!(field(guest_view(5, 0, 0x6), 0), 0b0110);
    }

    #[test]
    fn isar0() {
        // Every field but the reserved [3:0] and [27:24].
        let policy: Vec<_> = (0..16)
            .map(|i| ("ISAR0", i * 4, i != 0 && i != 6))
            .collect();
        check(ID_AA64ISAR0_EL1, &policy, 0, 0);
    }

    #[test]
    fn isar1() {
        check(
            ID_AA64ISAR1_EL1,
            &[
                ("DPB", 0, true),
                ("APA", 4, false),
                ("API", 8, false),
                ("JSCVT", 12, true),
                ("FCMA", 16, true),
                ("LRCPC", 20, true),
                ("GPA", 24, false),
                ("GPI", 28, false),
                ("FRINTTS", 32, true),
                ("SB", 36, true),
                ("SPECRES", 40, true),
                ("BF16", 44, true),
                ("DGH", 48, true),
                ("I8MM", 52, true),
                ("XS", 56, true),
                ("LS64", 60, false),
            ],
            0,
            0,
        );
    }

    #[test]
    fn isar2() {
        check(
            ID_AA64ISAR2_EL1,
            &[
                ("WFxT", 0, false),
                ("RPRES", 4, true),
                ("GPA3", 8, false),
                ("APA3", 12, false),
                ("MOPS", 16, false),
                ("BC", 20, true),
                ("PAC_frac", 24, false),
                ("CLRBHB", 28, true),
                ("SYSREG_128", 32, false),
                ("SYSINSTR_128", 36, false),
                ("PRFMSLC", 40, false),
                ("PCDPHINT", 44, false),
                ("RPRFM", 48, false),
                ("CSSC", 52, false),
                ("LUT", 56, false),
                ("ATS1A", 60, false),
            ],
            0,
            0,
        );
    }

    #[test]
    fn mmfr0() {
        check(
            ID_AA64MMFR0_EL1,
            &[
                ("PARange", 0, true),
                ("ASIDBits", 4, true),
                ("BigEnd", 8, true),
                ("SNSMem", 12, true),
                ("BigEndEL0", 16, true),
                ("TGran16", 20, true),
                ("TGran64", 24, true),
                ("TGran4", 28, true),
                ("TGran16_2", 32, false),
                ("TGran64_2", 36, false),
                ("TGran4_2", 40, false),
                ("ExS", 44, true),
                ("RES0", 48, false),
                ("RES0", 52, false),
                ("FGT", 56, false),
                ("ECV", 60, false),
            ],
            0,
            0,
        );
        // 48-bit PA, 16-bit ASID, mixed endian, all granules; FGT and ECV drop out.
        assert_eq!(
            guest_view(7, 0, 0x1100_0000_0010_1125),
            0x0000_0000_0010_1125
        );
    }

    #[test]
    fn mmfr1() {
        check(
            ID_AA64MMFR1_EL1,
            &[
                ("HAFDBS", 0, true),
                ("VMIDBits", 4, false),
                ("VH", 8, false),
                ("HPDS", 12, true),
                ("LO", 16, false),
                ("PAN", 20, true),
                ("SpecSEI", 24, false),
                ("XNX", 28, false),
                ("TWED", 32, false),
                ("ETS", 36, true),
                ("HCX", 40, false),
                ("AFP", 44, true),
                ("nTLBPA", 48, false),
                ("TIDCP1", 52, false),
                ("CMOW", 56, false),
                ("ECBHB", 60, true),
            ],
            0,
            0,
        );
    }

    #[test]
    fn mmfr2() {
        check(
            ID_AA64MMFR2_EL1,
            &[
                ("CnP", 0, true),
                ("UAO", 4, true),
                ("LSM", 8, false),
                ("IESB", 12, true),
                ("VARange", 16, true),
                ("CCIDX", 20, true),
                ("NV", 24, false),
                ("ST", 28, true),
                ("AT", 32, true),
                ("IDS", 36, true),
                ("FWB", 40, false),
                ("RES0", 44, false),
                ("TTL", 48, false),
                ("BBM", 52, true),
                ("EVT", 56, false),
                ("E0PD", 60, true),
            ],
            0,
            0,
        );
    }

    #[test]
    fn aarch32_registers() {
        check(
            ID_PFR0_EL1,
            &[
                ("State0", 0, true),
                ("State1", 4, true),
                ("State2", 8, true),
                ("State3", 12, true),
                ("CSV2", 16, true),
                ("AMU", 20, false),
                ("DIT", 24, true),
                ("RAS", 28, false),
            ],
            0,
            0,
        );
        check(
            ID_PFR1_EL1,
            &[
                ("ProgMod", 0, true),
                ("Security", 4, false),
                ("MProgMod", 8, true),
                ("Virtualization", 12, false),
                ("GenTimer", 16, true),
                ("Sec_frac", 20, false),
                ("Virt_frac", 24, false),
                ("GIC", 28, true),
            ],
            0,
            0,
        );
        check(
            ID_DFR0_EL1,
            &[
                ("CopDbg", 0, true),
                ("CopSDbg", 4, true),
                ("MMapDbg", 8, true),
                ("CopTrc", 12, false),
                ("MMapTrc", 16, false),
                ("MProfDbg", 20, true),
                ("PerfMon", 24, false),
                ("TraceFilt", 28, false),
            ],
            0,
            0,
        );
        let mmfr4 = [
            ("SpecSEI", 0, true),
            ("AC2", 4, true),
            ("XNX", 8, true),
            ("CnP", 12, true),
            ("HPDS", 16, true),
            ("LSM", 20, true),
            ("CCIDX", 24, true),
            ("EVT", 28, false),
        ];
        check(ID_MMFR4_EL1, &mmfr4, 0, 0);
        let pfr2 = [("CSV3", 0, true), ("SSBS", 4, true), ("RAS_frac", 8, false)];
        check(ID_PFR2_EL1, &pfr2, 0, 0);
        // Pass-through registers keep their 32 bits and drop the RES0 half.
        for (crm, op2) in [
            (1, 4),
            (1, 7),
            (2, 0),
            (2, 5),
            (2, 7),
            (3, 0),
            (3, 2),
            (3, 6),
        ] {
            assert_eq!(
                guest_view(crm, op2, u64::MAX),
                0xffff_ffff,
                "({crm}, {op2})"
            );
            assert_eq!(guest_view(crm, op2, 0x1234_5678), 0x1234_5678);
        }
    }

    #[test]
    fn hidden_and_unallocated_registers_are_raz() {
        for (crm, op2) in [
            ID_AFR0_EL1,
            ID_DFR1_EL1,
            (3, 3),
            (3, 7),
            (4, 2), // ID_AA64PFR2_EL1
            (4, 3),
            (4, 4), // ID_AA64ZFR0_EL1
            (4, 5), // ID_AA64SMFR0_EL1
            (4, 6),
            (4, 7), // ID_AA64FPFR0_EL1
            (5, 1), // ID_AA64DFR1_EL1
            (5, 2),
            (5, 3),
            (5, 4), // ID_AA64AFR0_EL1
            (5, 5), // ID_AA64AFR1_EL1
            (5, 6),
            (5, 7),
            (6, 3), // ID_AA64ISAR3_EL1
            (6, 4),
            (6, 7),
            (7, 3), // ID_AA64MMFR3_EL1
            (7, 4), // ID_AA64MMFR4_EL1
            (7, 7),
            // Outside the trapped space: MIDR's CRm, and bad operands.
            (0, 0),
            (8, 0),
            (0xff, 0xff),
        ] {
            assert_eq!(guest_view(crm, op2, u64::MAX), 0, "({crm}, {op2})");
        }
    }

    #[test]
    fn el1_is_always_aarch64_only() {
        for host in [0, u64::MAX, 0x22, 0x11] {
            assert_eq!(field(guest_view(4, 0, host), 4), 1);
        }
    }

    #[test]
    fn field_helper() {
        assert_eq!(field(0xabcd, 4), 0xc);
        assert_eq!(field(u64::MAX, 60), 0xf);
        assert_eq!(field(u64::MAX, 64), 0);
    }

    #[test]
    fn the_gic_fields_go_without_an_irqchip() {
        assert_eq!(
            without_irqchip(4, 0, 0x0100_0000_0100_0011),
            0x0100_0000_0000_0011
        );
        assert_eq!(without_irqchip(1, 1, 0x1000_0131), 0x0000_0131);
        assert_eq!(without_irqchip(4, 1, 0x0f00_0000), 0x0f00_0000);
    }
}
