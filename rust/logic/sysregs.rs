// SPDX-License-Identifier: GPL-2.0

//! The system-register table: one row per register rkvm knows, saying where its value
//! lives, what a trapped guest access does and whether userspace sees it. Exit emulation
//! (`vcpu/exit.rs`), `KVM_GET_ONE_REG`/`KVM_SET_ONE_REG` (`vcpu/regs_io.rs`) and
//! `KVM_GET_REG_LIST` are all read from it; the EL1 registers' own columns (reset value,
//! how the world switch moves them) are `logic/el1regs.rs`.
//!
//! KVM counterpart: `sys_reg_descs` (`arch/arm64/kvm/sys_regs.c`), one `struct
//! sys_reg_desc` per register with its `access`, `reset`, `get_user`/`set_user` and
//! `visibility`.
//!
//! Registers are keyed by their encoding as a `KVM_REG_ARM64_SYSREG` id spells it. For
//! the virtual timer that is not the architectural register: the uapi swapped CNTVCT_EL0
//! and CNTV_CVAL_EL0, so the row at CNTV_CVAL_EL0's encoding is the virtual counter for
//! userspace, while the guest's own accesses to either register never trap.

use super::{
    el1regs::El1Reg,
    ptrauth::{key_encoding, KEY_REGS},
    regs::{
        Aa32Reg, DebugBank, HostIdReg, SysReg, TimerReg, AIDR_EL1, CLIDR_EL1, CNTPCT_EL0,
        CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CTR_EL0, DACR32_EL2,
        DBGVCR32_EL2, DISR_EL1, FPEXC32_EL2, IFSR32_EL2, MDCCINT_EL1, MIDR_EL1, MPIDR_EL1,
        OSLSR_EL1, REVIDR_EL1,
    },
    timer::PtimerReg,
};

// Registers only the guest's traps reach (the others are named in `regs`).
const MDRAR_EL1: SysReg = r(2, 0, 1, 0, 0);
const OSLAR_EL1: SysReg = r(2, 0, 1, 0, 4);
const OSDLR_EL1: SysReg = r(2, 0, 1, 3, 4);
const DBGPRCR_EL1: SysReg = r(2, 0, 1, 4, 4);
const DBGCLAIMSET_EL1: SysReg = r(2, 0, 7, 8, 6);
const DBGCLAIMCLR_EL1: SysReg = r(2, 0, 7, 9, 6);
const DBGAUTHSTATUS_EL1: SysReg = r(2, 0, 7, 14, 6);
const MDCCSR_EL0: SysReg = r(2, 3, 0, 1, 0);
const ICC_DIR_EL1: SysReg = r(3, 0, 12, 11, 1);
const ICC_SGI1R_EL1: SysReg = r(3, 0, 12, 11, 5);
const ICC_ASGI1R_EL1: SysReg = r(3, 0, 12, 11, 6);
const ICC_SGI0R_EL1: SysReg = r(3, 0, 12, 11, 7);
const ICC_SRE_EL1: SysReg = r(3, 0, 12, 12, 5);
const CNTPCTSS_EL0: SysReg = r(3, 3, 14, 0, 5);
const CNTP_TVAL_EL0: SysReg = r(3, 3, 14, 2, 0);
const DC_ISW: SysReg = r(1, 0, 7, 6, 2);
const DC_CSW: SysReg = r(1, 0, 7, 10, 2);
const DC_CISW: SysReg = r(1, 0, 7, 14, 2);

/// Where a register's value lives: what ONE_REG reads and writes, and what a
/// [`Guest::Saved`] access reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    /// The vCPU's EL1 file (`El1Regs`), or for the emulated ACTLR/MDSCR its trap state.
    El1(El1Reg),
    /// A timer register as ONE_REG means it (the CNT/CVAL swap undone).
    Timer(TimerReg),
    /// MPIDR_EL1, which the guest reads through VMPIDR_EL2.
    Mpidr,
    /// An identification register the guest reads from the CPU without a trap.
    HostId(HostIdReg),
    /// The feature ID space (3, 0, 0, 1..=7, 0..=7), per VM.
    Id {
        crm: u8,
        op2: u8,
    },
    /// A breakpoint or watchpoint register.
    Debug(DebugBank, u8),
    Mdccint,
    Oslsr,
    Osdlr,
    Dbgvcr32,
    Disr,
    Aa32(Aa32Reg),
    /// A pointer-authentication key register, by slot (`logic::ptrauth::KEY_REGS`).
    PtrauthKey(u8),
}

/// Which directions of a trapped access are allowed; the other is UNDEFINED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

impl Access {
    pub(crate) const fn allows(self, read: bool) -> bool {
        match self {
            Self::ReadWrite => true,
            Self::ReadOnly => read,
        }
    }
}

/// A GICv3 CPU-interface register that traps to the vGIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GicReg {
    /// ICC_DIR_EL1 (ICH_HCR_EL2.TDIR).
    Dir,
    /// ICC_SGI1R_EL1, ICC_ASGI1R_EL1, ICC_SGI0R_EL1 (HCR_EL2.IMO/FMO): `group1` says which.
    Sgi { group1: bool },
    /// ICC_SRE_EL1, trapped while the vCPU is loaded: the real one is the host's.
    Sre,
}

/// What a trapped guest access to the register does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guest {
    /// Never trapped for emulation: a trap injects UNDEF (the register is in the CPU, or
    /// not accessible from EL1 at all).
    Undef,
    /// Reads and writes the register's [`Storage`].
    Saved(Access),
    /// Reads the VM's view of the ID register.
    Id,
    /// OSLAR_EL1: sets or clears the OS lock.
    Oslar,
    /// Reads as zero; writes, where allowed, are ignored (no debug channel, no claim
    /// tags, no authentication).
    Zero(Access),
    /// The physical timer and counter, emulated.
    Ptimer(PtimerReg),
    /// The GIC CPU interface, through the vGIC.
    Gic(GicReg),
    /// A data-cache maintenance by set/way (DC ISW, CSW, CISW).
    SetWay,
}

impl Guest {
    /// Whether a trapped read (`read`) or write is emulated; otherwise it is UNDEFINED.
    pub(crate) const fn allows(self, read: bool) -> bool {
        match self {
            Self::Undef => false,
            Self::Saved(access) | Self::Zero(access) => access.allows(read),
            Self::Id => read,
            Self::Oslar | Self::SetWay => !read,
            // Writes to the counter are ignored.
            Self::Ptimer(_) => true,
            Self::Gic(GicReg::Sre) => true,
            Self::Gic(GicReg::Dir | GicReg::Sgi { .. }) => !read,
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SysRegDesc {
    pub(crate) reg: SysReg,
    pub(crate) storage: Option<Storage>,
    pub(crate) guest: Guest,
    /// In `KVM_GET_REG_LIST` and reachable through ONE_REG (needs `storage`).
    pub(crate) user: bool,
    /// Exists only for a vCPU with pointer authentication (KVM's `ptrauth_visibility`).
    pub(crate) ptrauth: bool,
}

impl SysRegDesc {
    /// Whether ONE_REG and `KVM_GET_REG_LIST` show the row to a vCPU that has pointer
    /// authentication (`ptrauth`) or not.
    const fn user_visible(&self, ptrauth: bool) -> bool {
        self.user && (ptrauth || !self.ptrauth)
    }
}

const fn row(reg: SysReg, storage: Option<Storage>, guest: Guest, user: bool) -> SysRegDesc {
    SysRegDesc {
        reg,
        storage,
        guest,
        user,
        ptrauth: false,
    }
}

/// A register userspace sees, with its guest behaviour.
const fn user(reg: SysReg, storage: Storage, guest: Guest) -> SysRegDesc {
    row(reg, Some(storage), guest, true)
}

/// A register only the guest reaches.
const fn guest_only(reg: SysReg, guest: Guest) -> SysRegDesc {
    row(reg, None, guest, false)
}

const fn r(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> SysReg {
    SysReg::new(op0, op1, crn, crm, op2)
}

use Access::{ReadOnly, ReadWrite};

/// The rows that are not generated from a bank or the ID space.
const FIXED: [SysRegDesc; 37] = [
    user(MDCCINT_EL1, Storage::Mdccint, Guest::Saved(ReadWrite)),
    user(OSLSR_EL1, Storage::Oslsr, Guest::Saved(ReadOnly)),
    guest_only(MDRAR_EL1, Guest::Zero(ReadWrite)),
    guest_only(OSLAR_EL1, Guest::Oslar),
    row(
        OSDLR_EL1,
        Some(Storage::Osdlr),
        Guest::Saved(ReadWrite),
        false,
    ),
    guest_only(DBGPRCR_EL1, Guest::Zero(ReadWrite)),
    guest_only(DBGCLAIMSET_EL1, Guest::Zero(ReadWrite)),
    guest_only(DBGCLAIMCLR_EL1, Guest::Zero(ReadWrite)),
    guest_only(DBGAUTHSTATUS_EL1, Guest::Zero(ReadOnly)),
    guest_only(MDCCSR_EL0, Guest::Zero(ReadWrite)),
    user(DBGVCR32_EL2, Storage::Dbgvcr32, Guest::Undef),
    user(MIDR_EL1, Storage::HostId(HostIdReg::Midr), Guest::Undef),
    user(MPIDR_EL1, Storage::Mpidr, Guest::Undef),
    user(REVIDR_EL1, Storage::HostId(HostIdReg::Revidr), Guest::Undef),
    user(CLIDR_EL1, Storage::HostId(HostIdReg::Clidr), Guest::Undef),
    user(AIDR_EL1, Storage::HostId(HostIdReg::Aidr), Guest::Undef),
    user(CTR_EL0, Storage::HostId(HostIdReg::Ctr), Guest::Undef),
    // The guest's accesses reach VDISR_EL2 (HCR_EL2.AMO).
    user(DISR_EL1, Storage::Disr, Guest::Undef),
    guest_only(ICC_DIR_EL1, Guest::Gic(GicReg::Dir)),
    guest_only(ICC_SGI1R_EL1, Guest::Gic(GicReg::Sgi { group1: true })),
    guest_only(ICC_ASGI1R_EL1, Guest::Gic(GicReg::Sgi { group1: false })),
    guest_only(ICC_SGI0R_EL1, Guest::Gic(GicReg::Sgi { group1: false })),
    guest_only(ICC_SRE_EL1, Guest::Gic(GicReg::Sre)),
    // The physical counter traps only when the VM offsets it.
    user(
        CNTPCT_EL0,
        Storage::Timer(TimerReg::PCnt),
        Guest::Ptimer(PtimerReg::Count),
    ),
    guest_only(CNTPCTSS_EL0, Guest::Ptimer(PtimerReg::Count)),
    // KVM_REG_ARM_TIMER_CVAL, under CNTVCT_EL0's encoding.
    user(CNTVCT_EL0, Storage::Timer(TimerReg::Cval), Guest::Undef),
    guest_only(CNTP_TVAL_EL0, Guest::Ptimer(PtimerReg::Tval)),
    user(
        CNTP_CTL_EL0,
        Storage::Timer(TimerReg::PCtl),
        Guest::Ptimer(PtimerReg::Ctl),
    ),
    user(
        CNTP_CVAL_EL0,
        Storage::Timer(TimerReg::PCval),
        Guest::Ptimer(PtimerReg::Cval),
    ),
    user(CNTV_CTL_EL0, Storage::Timer(TimerReg::Ctl), Guest::Undef),
    // KVM_REG_ARM_TIMER_CNT, under CNTV_CVAL_EL0's encoding.
    user(CNTV_CVAL_EL0, Storage::Timer(TimerReg::Cnt), Guest::Undef),
    // AArch32 EL1 state: ONE_REG only (EL1 is AArch64).
    user(DACR32_EL2, Storage::Aa32(Aa32Reg::Dacr), Guest::Undef),
    user(IFSR32_EL2, Storage::Aa32(Aa32Reg::Ifsr), Guest::Undef),
    user(FPEXC32_EL2, Storage::Aa32(Aa32Reg::Fpexc), Guest::Undef),
    // Set/way maintenance cannot be virtualised precisely (HCR_EL2.TSW).
    guest_only(DC_ISW, Guest::SetWay),
    guest_only(DC_CSW, Guest::SetWay),
    guest_only(DC_CISW, Guest::SetWay),
];

/// Rows in the table: the fixed ones, the EL1 file, the 64 breakpoint and watchpoint
/// registers, the 56 encodings of the ID space and the pointer-authentication keys.
const LEN: usize = FIXED.len() + El1Reg::COUNT + 64 + 56 + KEY_REGS;

/// The table, ascending by encoding.
pub(crate) static SYS_REGS: [SysRegDesc; LEN] = build();

/// The rows' encodings, searched on every trapped access: one dense array of words
/// rather than a stride through the rows.
static KEYS: [u32; LEN] = keys();

const fn keys() -> [u32; LEN] {
    let rows = build();
    let mut out = [0; LEN];
    let mut i = 0;
    while i < LEN {
        out[i] = rows[i].reg.encoding();
        i += 1;
    }
    out
}

const fn build() -> [SysRegDesc; LEN] {
    let mut out = [guest_only(r(0, 0, 0, 0, 0), Guest::Undef); LEN];
    let mut n = 0;
    while n < FIXED.len() {
        out[n] = FIXED[n];
        n += 1;
    }
    let mut i = 0;
    while i < El1Reg::COUNT {
        let reg = El1Reg::ALL[i];
        // The switched registers are the guest's own while it runs; ACTLR and MDSCR trap
        // (HCR_EL2.TACR, MDCR_EL2.TDA) and are emulated on the saved value.
        let guest = match reg {
            El1Reg::Actlr | El1Reg::Mdscr => Guest::Saved(ReadWrite),
            _ => Guest::Undef,
        };
        out[n] = user(reg.sysreg(), Storage::El1(reg), guest);
        n += 1;
        i += 1;
    }
    let banks = [
        DebugBank::Bvr,
        DebugBank::Bcr,
        DebugBank::Wvr,
        DebugBank::Wcr,
    ];
    let mut crm = 0;
    while crm < 16 {
        let mut b = 0;
        while b < 4 {
            let storage = Storage::Debug(banks[b], crm);
            out[n] = user(
                r(2, 0, 0, crm, 4 + b as u8),
                storage,
                Guest::Saved(ReadWrite),
            );
            n += 1;
            b += 1;
        }
        crm += 1;
    }
    let mut crm = 1;
    while crm <= 7 {
        let mut op2 = 0;
        while op2 < 8 {
            out[n] = user(r(3, 0, 0, crm, op2), Storage::Id { crm, op2 }, Guest::Id);
            n += 1;
            op2 += 1;
        }
        crm += 1;
    }
    // The keys: in the CPU while a vCPU with pointer authentication runs (HCR_EL2.APK);
    // for any other vCPU an access traps and finds UNDEF, as KVM's `undef_access`.
    let mut k = 0;
    while k < KEY_REGS {
        let (op0, op1, crn, crm, op2) = key_encoding(k);
        let mut d = user(
            r(op0, op1, crn, crm, op2),
            Storage::PtrauthKey(k as u8),
            Guest::Undef,
        );
        d.ptrauth = true;
        out[n] = d;
        n += 1;
        k += 1;
    }
    assert!(n == LEN);
    // Insertion sort by encoding, at compile time.
    let mut i = 1;
    while i < LEN {
        let mut j = i;
        while j > 0 && out[j - 1].reg.encoding() > out[j].reg.encoding() {
            let t = out[j - 1];
            out[j - 1] = out[j];
            out[j] = t;
            j -= 1;
        }
        i += 1;
    }
    out
}

/// The 13 bits of an encoding above op2: (op0, op1, CRn, CRm).
const fn prefix(key: u32) -> usize {
    (key >> 8) as usize & (PREFIXES - 1)
}
const PREFIXES: usize = 1 << 13;

/// The first row of each (op0, op1, CRn, CRm), or an index past the table: a lookup is
/// one load here and a scan of at most eight rows (op2), not a search of the table.
static FIRST: [u8; PREFIXES] = first_rows();

const fn first_rows() -> [u8; PREFIXES] {
    assert!(LEN < u8::MAX as usize);
    let mut out = [u8::MAX; PREFIXES];
    let mut i = LEN;
    while i > 0 {
        i -= 1;
        out[prefix(KEYS[i])] = i as u8;
    }
    out
}

/// The row for `reg`, if rkvm knows the register.
#[inline]
pub(crate) fn lookup(reg: SysReg) -> Option<&'static SysRegDesc> {
    let key = reg.encoding();
    let mut i = usize::from(FIRST[prefix(key)]);
    while i < LEN && KEYS[i] < key {
        i += 1;
    }
    match KEYS.get(i) {
        Some(&k) if k == key => SYS_REGS.get(i),
        _ => None,
    }
}

/// The register ONE_REG reaches under `reg`, if userspace may see it on a vCPU with
/// pointer authentication (`ptrauth`) or without.
pub(crate) fn user_storage(reg: SysReg, ptrauth: bool) -> Option<Storage> {
    lookup(reg)
        .filter(|d| d.user_visible(ptrauth))
        .and_then(|d| d.storage)
}

/// The registers `KVM_GET_REG_LIST` reports for such a vCPU, ascending by encoding as
/// KVM's table walk lists them.
pub(crate) fn user_regs(ptrauth: bool) -> impl Iterator<Item = SysReg> {
    SYS_REGS
        .iter()
        .filter(move |d| d.user_visible(ptrauth))
        .map(|d| d.reg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::regs;

    extern crate std;
    use std::vec::Vec;

    #[test]
    fn sorted_unique_and_consistent() {
        for w in SYS_REGS.windows(2) {
            assert!(w[0].reg.encoding() < w[1].reg.encoding(), "{:?}", w[1].reg);
        }
        for d in &SYS_REGS {
            assert_eq!(lookup(d.reg), Some(d));
            // Every user-visible row has somewhere to keep its value.
            assert!(!d.user || d.storage.is_some(), "{:?}", d.reg);
            // Saved accesses need storage too.
            if let Guest::Saved(_) = d.guest {
                assert!(d.storage.is_some(), "{:?}", d.reg);
            }
        }
        assert_eq!(lookup(r(3, 0, 15, 0, 0)), None);
        // Every encoding the index can be asked about: found exactly when it has a row.
        for key in (0..1u32 << 16).map(|k| k << 5) {
            let reg = r(
                (key >> 19) as u8 & 3,
                (key >> 16) as u8 & 7,
                (key >> 12) as u8 & 0xf,
                (key >> 8) as u8 & 0xf,
                (key >> 5) as u8 & 7,
            );
            let want = SYS_REGS.iter().find(|d| d.reg.encoding() == key);
            assert_eq!(lookup(reg), want, "{reg:?}");
        }
    }

    #[test]
    fn register_list_matches_kvm() {
        let list: Vec<SysReg> = user_regs(false).collect();
        // 64 debug, MDCCINT, OSLSR, DBGVCR32, MPIDR, 5 host IDs, 3 AArch32, 6 timer, DISR,
        // the EL1 file and the 56 ID encodings, as KVM's get-reg-list test expects.
        assert_eq!(list.len(), 64 + 3 + 1 + 5 + 3 + 6 + 1 + El1Reg::COUNT + 56);
        // With pointer authentication, the ten key registers too (its "ptrauth" sublist).
        let with: Vec<SysReg> = user_regs(true).collect();
        assert_eq!(with.len(), list.len() + KEY_REGS);
        let keys: Vec<u64> = with
            .iter()
            .filter(|r| !list.contains(r))
            .map(|&r| regs::sys_id(r))
            .collect();
        assert_eq!(
            keys,
            [
                0x6030_0000_0013_c108,
                0x6030_0000_0013_c109,
                0x6030_0000_0013_c10a,
                0x6030_0000_0013_c10b,
                0x6030_0000_0013_c110,
                0x6030_0000_0013_c111,
                0x6030_0000_0013_c112,
                0x6030_0000_0013_c113,
                0x6030_0000_0013_c118,
                0x6030_0000_0013_c119,
            ]
        );
        // The uapi timer ids, the swap included.
        let s = |reg| user_storage(reg, false);
        assert_eq!(s(regs::CNTV_CVAL_EL0), Some(Storage::Timer(TimerReg::Cnt)));
        assert_eq!(s(regs::CNTVCT_EL0), Some(Storage::Timer(TimerReg::Cval)));
        assert_eq!(s(regs::SCTLR_EL1), Some(Storage::El1(El1Reg::Sctlr)));
        assert_eq!(
            s(r(2, 0, 0, 15, 7)),
            Some(Storage::Debug(DebugBank::Wcr, 15))
        );
        // Guest-only registers are not in ONE_REG.
        assert_eq!(s(r(2, 0, 1, 0, 4)), None);
        assert_eq!(s(r(3, 0, 12, 11, 5)), None);
    }

    #[test]
    fn register_ids_of_kvms_get_reg_list_test() {
        let ids: Vec<u64> = user_regs(false).map(regs::sys_id).collect();
        for r in user_regs(true) {
            assert_eq!(regs::decode_id(regs::sys_id(r)), Some(regs::RegId::Sys(r)));
        }
        // DBGBVR0, DBGWCR15, the first and last ID registers, CNTPCT_EL0, FPEXC32_EL2,
        // and the three virtual-timer ids.
        for id in [
            0x6030_0000_0013_8004,
            0x6030_0000_0013_807f,
            0x6030_0000_0013_c008,
            0x6030_0000_0013_c03f,
            0x6030_0000_0013_df01,
            0x6030_0000_0013_e298,
            regs::TIMER_CTL_ID,
            regs::TIMER_CNT_ID,
            regs::TIMER_CVAL_ID,
        ] {
            assert!(ids.contains(&id), "{id:#x}");
        }
    }

    #[test]
    fn storage_of_user_registers() {
        let s = |reg| user_storage(reg, false);
        assert_eq!(s(regs::SCTLR_EL1), Some(Storage::El1(El1Reg::Sctlr)));
        assert_eq!(s(regs::MDSCR_EL1), Some(Storage::El1(El1Reg::Mdscr)));
        assert_eq!(s(r(2, 0, 0, 3, 4)), Some(Storage::Debug(DebugBank::Bvr, 3)));
        assert_eq!(s(r(3, 0, 0, 7, 7)), Some(Storage::Id { crm: 7, op2: 7 }));
        assert_eq!(s(CTR_EL0), Some(Storage::HostId(HostIdReg::Ctr)));
        assert_eq!(s(FPEXC32_EL2), Some(Storage::Aa32(Aa32Reg::Fpexc)));
        assert_eq!(s(DISR_EL1), Some(Storage::Disr));
        // Not offered: PMU, pointer-authentication keys (without the feature),
        // VDISR_EL2, the debug registers of op2 0..=3, MDRAR, OSDLR (guest state only, as
        // on KVM).
        for reg in [
            r(3, 3, 9, 12, 0),
            r(3, 0, 2, 1, 0),
            r(3, 4, 12, 1, 1),
            r(2, 0, 0, 2, 3),
            MDRAR_EL1,
            OSDLR_EL1,
        ] {
            assert_eq!(s(reg), None, "{reg:?}");
        }
        // The keys, by slot, for a vCPU with the feature; never emulated for the guest.
        assert_eq!(
            user_storage(r(3, 0, 2, 1, 0), true),
            Some(Storage::PtrauthKey(0))
        );
        assert_eq!(
            user_storage(r(3, 0, 2, 3, 1), true),
            Some(Storage::PtrauthKey(9))
        );
        assert_eq!(user_storage(r(3, 0, 2, 3, 2), true), None);
        for k in 0..KEY_REGS {
            let (op0, op1, crn, crm, op2) = key_encoding(k);
            assert_eq!(
                lookup(r(op0, op1, crn, crm, op2)).unwrap().guest,
                Guest::Undef
            );
        }
        // Everything else looks the same either way.
        assert!(user_regs(false).all(|reg| user_storage(reg, true) == s(reg)));
    }

    #[test]
    fn guest_rows() {
        // The ID space is (3, 0, 0, 1..=7, 0..=7), read-only, all of it.
        let id: Vec<SysReg> = SYS_REGS
            .iter()
            .filter(|d| d.guest == Guest::Id)
            .map(|d| d.reg)
            .collect();
        assert_eq!(id.len(), 56);
        assert!(id
            .iter()
            .all(|r| (r.op0, r.op1, r.crn) == (3, 0, 0) && (1..=7).contains(&r.crm)));
        // MIDR, MPIDR, REVIDR (CRm 0) and CCSIDR's op1 are not ID-space traps.
        for reg in [MIDR_EL1, MPIDR_EL1, REVIDR_EL1, r(3, 1, 0, 1, 0)] {
            assert_ne!(lookup(reg).map(|d| d.guest), Some(Guest::Id));
        }
        // The physical timer and counter; the virtual timer (in the CPU) and CNTHP (EL2)
        // are not ours.
        let ptimer = |crm, op2| match lookup(r(3, 3, 14, crm, op2)).map(|d| d.guest) {
            Some(Guest::Ptimer(p)) => Some(p),
            _ => None,
        };
        assert_eq!(ptimer(2, 1), Some(PtimerReg::Ctl));
        assert_eq!(ptimer(2, 2), Some(PtimerReg::Cval));
        assert_eq!(ptimer(2, 0), Some(PtimerReg::Tval));
        assert_eq!(ptimer(0, 1), Some(PtimerReg::Count));
        assert_eq!(ptimer(0, 5), Some(PtimerReg::Count));
        assert_eq!(ptimer(3, 1), None);
        assert_eq!(lookup(r(3, 4, 14, 2, 1)), None);
        // Switched EL1 registers never trap; ACTLR and MDSCR are emulated.
        for reg in El1Reg::ALL {
            let expected = match reg {
                El1Reg::Actlr | El1Reg::Mdscr => Guest::Saved(ReadWrite),
                _ => Guest::Undef,
            };
            assert_eq!(lookup(reg.sysreg()).unwrap().guest, expected, "{reg:?}");
        }
    }

    #[test]
    fn access_directions() {
        assert!(ReadWrite.allows(true) && ReadWrite.allows(false));
        assert!(ReadOnly.allows(true) && !ReadOnly.allows(false));
        let dir = |g: Guest| (g.allows(true), g.allows(false));
        assert_eq!(dir(Guest::Undef), (false, false));
        assert_eq!(dir(Guest::Id), (true, false));
        assert_eq!(dir(Guest::Oslar), (false, true));
        assert_eq!(dir(Guest::SetWay), (false, true));
        assert_eq!(dir(Guest::Gic(GicReg::Sgi { group1: true })), (false, true));
        assert_eq!(dir(Guest::Gic(GicReg::Sre)), (true, true));
        assert_eq!(dir(Guest::Zero(ReadOnly)), (true, false));
    }
}
