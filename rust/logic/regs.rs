// SPDX-License-Identifier: GPL-2.0

//! Register ids of `KVM_GET_ONE_REG`, `KVM_SET_ONE_REG` and `KVM_GET_REG_LIST`, the guest's
//! saved EL1 system registers, and the values a vCPU's registers take at reset.
//!
//! KVM counterpart: `arch/arm64/kvm/guest.c` (core register ids, `set_core_reg`'s PSTATE
//! check, `copy_core_reg_indices`), `arch/arm64/kvm/sys_regs.c` (system register ids, the
//! reset table, `reset_mpidr`) and `arch/arm64/kvm/reset.c` (the reset PSTATE). The id
//! layout is the uapi one of `arch/arm64/include/uapi/asm/kvm.h` and
//! `include/uapi/linux/kvm.h`; VMMs hard-code it, so every number here is ABI.

/// Architecture field of every arm64 id (`KVM_REG_ARM64`).
pub(crate) const KVM_REG_ARM64: u64 = 0x6000_0000_0000_0000;
pub(crate) const ARCH_MASK: u64 = 0xff00_0000_0000_0000;

/// Size field values (`KVM_REG_SIZE_*`): log2 of the size in bytes, at bits [55:52].
pub(crate) const KVM_REG_SIZE_U32: u64 = 0x0020_0000_0000_0000;
pub(crate) const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
pub(crate) const KVM_REG_SIZE_U128: u64 = 0x0040_0000_0000_0000;
pub(crate) const SIZE_MASK: u64 = 0x00f0_0000_0000_0000;
pub(crate) const SIZE_SHIFT: u32 = 52;

/// Bits [51:32]: nothing arm64 defines lives there, so KVM refuses ids that set them.
const RESERVED_MASK: u64 = 0x000f_ffff_0000_0000;

/// Register group, bits [31:16] (`KVM_REG_ARM_COPROC_MASK` covers [27:16]; KVM rejects the
/// rest of the half-word too, so the whole of it is compared).
const GROUP_MASK: u64 = 0xffff_0000;
/// `struct kvm_regs`, indexed in 32-bit words.
pub(crate) const KVM_REG_ARM_CORE: u64 = 0x0010 << 16;
/// AArch64 system registers by encoding.
pub(crate) const KVM_REG_ARM64_SYSREG: u64 = 0x0013 << 16;
/// Firmware pseudo-registers (PSCI version, SMCCC workaround levels).
pub(crate) const KVM_REG_ARM_FW: u64 = 0x0014 << 16;
/// The firmware feature bitmaps (`fwregs::Bitmap`).
pub(crate) const KVM_REG_ARM_FW_FEAT_BMAP: u64 = 0x0016 << 16;

/// `KVM_REG_ARM_PSCI_VERSION`: the PSCI version the guest is offered.
#[cfg(test)]
pub(crate) const PSCI_VERSION_ID: u64 = fw_id(0);

/// Size in bytes encoded in an id (`KVM_REG_SIZE`).
pub(crate) const fn id_size(id: u64) -> usize {
    1 << ((id & SIZE_MASK) >> SIZE_SHIFT)
}

// Word offsets of the members of `struct kvm_regs`. `user_pt_regs` is x0..x30, sp, pc and
// pstate (34 u64s); `sp_el1`, `elr_el1` and `spsr[5]` follow and end at byte 328. The
// `__uint128_t vregs[32]` of `user_fpsimd_state` is 16-byte aligned, so two padding words
// (82 and 83) precede it. `fpsr` and `fpcr` follow the vector registers, then two reserved
// words complete the structure.
pub(crate) const OFF_X0: u16 = 0;
pub(crate) const OFF_SP: u16 = 62;
pub(crate) const OFF_PC: u16 = 64;
pub(crate) const OFF_PSTATE: u16 = 66;
pub(crate) const OFF_SP_EL1: u16 = 68;
pub(crate) const OFF_ELR_EL1: u16 = 70;
pub(crate) const OFF_SPSR0: u16 = 72;
pub(crate) const OFF_V0: u16 = 84;
pub(crate) const OFF_FPSR: u16 = 212;
pub(crate) const OFF_FPCR: u16 = 213;
/// `sizeof(struct kvm_regs) / 4`.
pub(crate) const KVM_REGS_WORDS: u16 = 216;

/// A core register named by a `KVM_REG_ARM_CORE` id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CoreReg {
    /// General-purpose register x0..=x30.
    X(u8),
    /// `SP_EL0` (`regs.sp`).
    Sp,
    Pc,
    Pstate,
    SpEl1,
    ElrEl1,
    /// `spsr[0..=4]`: SPSR_EL1 and the AArch32 banked ABT, UND, IRQ and FIQ copies.
    Spsr(u8),
    /// FP/SIMD register v0..=v31, 128 bits.
    V(u8),
    Fpsr,
    Fpcr,
}

impl CoreReg {
    /// The register at word offset `off` of `struct kvm_regs`, if one starts there.
    pub(crate) const fn from_offset(off: u16) -> Option<Self> {
        Some(match off {
            OFF_X0..=60 if off % 2 == 0 => Self::X((off / 2) as u8),
            OFF_SP => Self::Sp,
            OFF_PC => Self::Pc,
            OFF_PSTATE => Self::Pstate,
            OFF_SP_EL1 => Self::SpEl1,
            OFF_ELR_EL1 => Self::ElrEl1,
            OFF_SPSR0..=80 if off % 2 == 0 => Self::Spsr(((off - OFF_SPSR0) / 2) as u8),
            OFF_V0..=208 if (off - OFF_V0) % 4 == 0 => Self::V(((off - OFF_V0) / 4) as u8),
            OFF_FPSR => Self::Fpsr,
            OFF_FPCR => Self::Fpcr,
            _ => return None,
        })
    }

    /// The word offset in `struct kvm_regs`, or `None` for an index past the register file.
    pub(crate) const fn offset(self) -> Option<u16> {
        Some(match self {
            Self::X(n) if n <= 30 => OFF_X0 + 2 * n as u16,
            Self::Sp => OFF_SP,
            Self::Pc => OFF_PC,
            Self::Pstate => OFF_PSTATE,
            Self::SpEl1 => OFF_SP_EL1,
            Self::ElrEl1 => OFF_ELR_EL1,
            Self::Spsr(n) if n <= 4 => OFF_SPSR0 + 2 * n as u16,
            Self::V(n) if n <= 31 => OFF_V0 + 4 * n as u16,
            Self::Fpsr => OFF_FPSR,
            Self::Fpcr => OFF_FPCR,
            _ => return None,
        })
    }

    /// The one size an id may give this register, in bytes.
    pub(crate) const fn size(self) -> usize {
        match self {
            Self::V(_) => 16,
            Self::Fpsr | Self::Fpcr => 4,
            _ => 8,
        }
    }

    const fn size_field(self) -> u64 {
        match self.size() {
            16 => KVM_REG_SIZE_U128,
            4 => KVM_REG_SIZE_U32,
            _ => KVM_REG_SIZE_U64,
        }
    }
}

/// An AArch64 system register by its `MRS`/`MSR` encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SysReg {
    pub(crate) op0: u8,
    pub(crate) op1: u8,
    pub(crate) crn: u8,
    pub(crate) crm: u8,
    pub(crate) op2: u8,
}

impl SysReg {
    pub(crate) const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }

    /// Packed like the kernel's `sys_reg()`, and like `esr::SysRegAccess::encoding`, so a
    /// trapped access and a ONE_REG id can be matched by one number.
    pub(crate) const fn encoding(self) -> u32 {
        ((self.op0 as u32) << 19)
            | ((self.op1 as u32) << 16)
            | ((self.crn as u32) << 12)
            | ((self.crm as u32) << 8)
            | ((self.op2 as u32) << 5)
    }

    /// The register named by the low 16 bits of a `KVM_REG_ARM64_SYSREG` id.
    const fn from_index(index: u16) -> Self {
        Self {
            op0: ((index >> 14) & 0x3) as u8,
            op1: ((index >> 11) & 0x7) as u8,
            crn: ((index >> 7) & 0xf) as u8,
            crm: ((index >> 3) & 0xf) as u8,
            op2: (index & 0x7) as u8,
        }
    }
}

pub(crate) const MIDR_EL1: SysReg = SysReg::new(3, 0, 0, 0, 0);
pub(crate) const MPIDR_EL1: SysReg = SysReg::new(3, 0, 0, 0, 5);
#[cfg(test)]
pub(crate) const SCTLR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 0);
/// SCTLR_EL1.EE (bit 25) and E0E (bit 24): big-endian data at EL1 and at EL0.
pub(crate) const SCTLR_EE: u64 = 1 << 25;
pub(crate) const SCTLR_E0E: u64 = 1 << 24;
#[cfg(test)]
pub(crate) const ACTLR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 1);
#[cfg(test)]
pub(crate) const CPACR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 2);
#[cfg(test)]
pub(crate) const TTBR0_EL1: SysReg = SysReg::new(3, 0, 2, 0, 0);
#[cfg(test)]
pub(crate) const TTBR1_EL1: SysReg = SysReg::new(3, 0, 2, 0, 1);
#[cfg(test)]
pub(crate) const TCR_EL1: SysReg = SysReg::new(3, 0, 2, 0, 2);
#[cfg(test)]
pub(crate) const AFSR0_EL1: SysReg = SysReg::new(3, 0, 5, 1, 0);
#[cfg(test)]
pub(crate) const AFSR1_EL1: SysReg = SysReg::new(3, 0, 5, 1, 1);
#[cfg(test)]
pub(crate) const ESR_EL1: SysReg = SysReg::new(3, 0, 5, 2, 0);
#[cfg(test)]
pub(crate) const FAR_EL1: SysReg = SysReg::new(3, 0, 6, 0, 0);
#[cfg(test)]
pub(crate) const PAR_EL1: SysReg = SysReg::new(3, 0, 7, 4, 0);
#[cfg(test)]
pub(crate) const MAIR_EL1: SysReg = SysReg::new(3, 0, 10, 2, 0);
#[cfg(test)]
pub(crate) const AMAIR_EL1: SysReg = SysReg::new(3, 0, 10, 3, 0);
#[cfg(test)]
pub(crate) const VBAR_EL1: SysReg = SysReg::new(3, 0, 12, 0, 0);
#[cfg(test)]
pub(crate) const CONTEXTIDR_EL1: SysReg = SysReg::new(3, 0, 13, 0, 1);
#[cfg(test)]
pub(crate) const TPIDR_EL1: SysReg = SysReg::new(3, 0, 13, 0, 4);
#[cfg(test)]
pub(crate) const CNTKCTL_EL1: SysReg = SysReg::new(3, 0, 14, 1, 0);
#[cfg(test)]
pub(crate) const CSSELR_EL1: SysReg = SysReg::new(3, 2, 0, 0, 0);
#[cfg(test)]
pub(crate) const TPIDR_EL0: SysReg = SysReg::new(3, 3, 13, 0, 2);
#[cfg(test)]
pub(crate) const TPIDRRO_EL0: SysReg = SysReg::new(3, 3, 13, 0, 3);
/// The one debug register the guest's EL1 file holds; the others have their own state.
#[cfg(test)]
pub(crate) const MDSCR_EL1: SysReg = SysReg::new(2, 0, 0, 2, 2);
pub(crate) const CNTVCT_EL0: SysReg = SysReg::new(3, 3, 14, 0, 2);
pub(crate) const CNTV_CTL_EL0: SysReg = SysReg::new(3, 3, 14, 3, 1);
pub(crate) const CNTV_CVAL_EL0: SysReg = SysReg::new(3, 3, 14, 3, 2);
pub(crate) const CNTPCT_EL0: SysReg = SysReg::new(3, 3, 14, 0, 1);
pub(crate) const CNTP_CTL_EL0: SysReg = SysReg::new(3, 3, 14, 2, 1);
pub(crate) const CNTP_CVAL_EL0: SysReg = SysReg::new(3, 3, 14, 2, 2);

/// `KVM_REG_ARM_TIMER_CTL`: `CNTV_CTL_EL0`.
#[cfg(test)]
pub(crate) const TIMER_CTL_ID: u64 = sys_id(CNTV_CTL_EL0);
/// `KVM_REG_ARM_TIMER_CNT`: the virtual counter. The uapi gave it `CNTV_CVAL_EL0`'s
/// encoding by mistake, and the mistake is ABI.
#[cfg(test)]
pub(crate) const TIMER_CNT_ID: u64 = sys_id(CNTV_CVAL_EL0);
/// `KVM_REG_ARM_TIMER_CVAL`: the virtual timer's compare value, under `CNTVCT_EL0`'s
/// encoding (the other half of the same swap).
#[cfg(test)]
pub(crate) const TIMER_CVAL_ID: u64 = sys_id(CNTVCT_EL0);

/// `KVM_REG_ARM_PTIMER_CTL`, `_CVAL` and `_CNT`: the physical timer and counter, under
/// their own encodings.
#[cfg(test)]
pub(crate) const PTIMER_CTL_ID: u64 = sys_id(CNTP_CTL_EL0);
#[cfg(test)]
pub(crate) const PTIMER_CVAL_ID: u64 = sys_id(CNTP_CVAL_EL0);
#[cfg(test)]
pub(crate) const PTIMER_CNT_ID: u64 = sys_id(CNTPCT_EL0);

/// A timer register as ONE_REG means it, whatever its id's encoding suggests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerReg {
    Ctl,
    Cnt,
    Cval,
    PCtl,
    PCnt,
    PCval,
}

/// Identification registers the guest reads from the CPU without a trap (MIDR through
/// VPIDR_EL2, which holds the host's MIDR): ONE_REG shows the host CPU's value and
/// accepts only that value back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostIdReg {
    Midr,
    Revidr,
    Aidr,
    Clidr,
    Ctr,
}

pub(crate) const REVIDR_EL1: SysReg = SysReg::new(3, 0, 0, 0, 6);
pub(crate) const CLIDR_EL1: SysReg = SysReg::new(3, 1, 0, 0, 1);
pub(crate) const AIDR_EL1: SysReg = SysReg::new(3, 1, 0, 0, 7);
pub(crate) const CTR_EL0: SysReg = SysReg::new(3, 3, 0, 0, 1);

/// The breakpoint and watchpoint banks (op0 = 2, op1 = 0, CRn = 0, CRm = n, op2 = 4..=7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DebugBank {
    Bvr,
    Bcr,
    Wvr,
    Wcr,
}

pub(crate) const MDCCINT_EL1: SysReg = SysReg::new(2, 0, 0, 2, 0);
/// DISR_EL1: deferred SErrors. With HCR_EL2.AMO set the guest's accesses reach
/// VDISR_EL2, which the world switch moves where the host has RAS (as KVM).
pub(crate) const DISR_EL1: SysReg = SysReg::new(3, 0, 12, 1, 1);
pub(crate) const OSLSR_EL1: SysReg = SysReg::new(2, 0, 1, 1, 4);
pub(crate) const DBGVCR32_EL2: SysReg = SysReg::new(2, 4, 0, 7, 0);
pub(crate) const DACR32_EL2: SysReg = SysReg::new(3, 4, 3, 0, 0);
pub(crate) const IFSR32_EL2: SysReg = SysReg::new(3, 4, 5, 0, 1);
pub(crate) const FPEXC32_EL2: SysReg = SysReg::new(3, 4, 5, 3, 0);

/// OSLSR_EL1.OSLM = 0b10 (the OS lock is implemented) and OSLK (it is locked).
pub(crate) const OSLSR_OSLM_IMPLEMENTED: u64 = 1 << 3;
pub(crate) const OSLSR_OSLK: u64 = 1 << 1;

/// Whether `KVM_SET_ONE_REG` may set OSLSR_EL1 to `val`: only OSLK may change
/// (`set_oslsr_el1`); the rest must read as the reset value says.
pub(crate) const fn oslsr_settable(val: u64) -> bool {
    (val ^ OSLSR_OSLM_IMPLEMENTED) & !OSLSR_OSLK == 0
}

/// The AArch32 EL1 state registers KVM keeps per vCPU (DACR32_EL2, IFSR32_EL2,
/// FPEXC32_EL2). rkvm's EL1 is AArch64 only (`ID_AA64PFR0_EL1.EL1`), where they affect
/// nothing and KVM too only stores them: they are saved state a VMM may move around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Aa32Reg {
    Dacr,
    Ifsr,
    Fpexc,
}

impl Aa32Reg {
    /// Reset values: FPEXC32's is KVM's 0x700 (the IMPLEMENTATION DEFINED trap-enable
    /// bits [10:8] as KVM sets them); the others are UNKNOWN, 0 here.
    pub(crate) const RESET: [u64; 3] = [0, 0, 0x700];
}

/// A register named by a ONE_REG id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegId {
    Core(CoreReg),
    Sys(SysReg),
    /// `KVM_REG_ARM_FW` index; 0 is the PSCI version, 1..=3 the workaround levels.
    Fw(u16),
    /// `KVM_REG_ARM_FW_FEAT_BMAP` index (`fwregs::Bitmap::from_index`).
    FwBmap(u16),
}

/// Decodes a ONE_REG id.
///
/// `None` for anything malformed: another architecture, bits [51:32] set, a group rkvm
/// does not implement (SVE, the cache-size demux), a core
/// offset that is not the first word of a register, or a size other than the register's.
/// A well-formed system or firmware id decodes even if rkvm has no such register: that is
/// `ENOENT` for the caller, not `EINVAL`.
pub(crate) fn decode_id(id: u64) -> Option<RegId> {
    if id & ARCH_MASK != KVM_REG_ARM64 || id & RESERVED_MASK != 0 {
        return None;
    }
    let size = id & SIZE_MASK;
    let index = (id & 0xffff) as u16;
    match id & GROUP_MASK {
        KVM_REG_ARM_CORE => {
            let reg = CoreReg::from_offset(index)?;
            (size == reg.size_field()).then_some(RegId::Core(reg))
        }
        KVM_REG_ARM64_SYSREG => {
            (size == KVM_REG_SIZE_U64).then_some(RegId::Sys(SysReg::from_index(index)))
        }
        KVM_REG_ARM_FW => (size == KVM_REG_SIZE_U64).then_some(RegId::Fw(index)),
        KVM_REG_ARM_FW_FEAT_BMAP => (size == KVM_REG_SIZE_U64).then_some(RegId::FwBmap(index)),
        _ => None,
    }
}

/// Why [`decode_id`] refused an id, as KVM's `kvm_arm_{get,set}_reg` tell it apart:
/// another architecture or a core-register id inside `struct kvm_regs` that does not name
/// a register at its size is `EINVAL`; anything else unknown is `ENOENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadId {
    Invalid,
    NotFound,
}

/// Classifies an id [`decode_id`] refused.
pub(crate) fn bad_id(id: u64) -> BadId {
    // Words in `struct kvm_regs` (see `CoreReg::from_offset`).
    const KVM_REGS_WORDS: u64 = 216;
    if (id & !SIZE_MASK) >> 32 != KVM_REG_ARM64 >> 32 {
        return BadId::Invalid;
    }
    if id & GROUP_MASK == KVM_REG_ARM_CORE {
        let off = id & 0xffff;
        let words = (id_size(id) / 4) as u64;
        if off < KVM_REGS_WORDS && off + words < KVM_REGS_WORDS {
            return BadId::Invalid;
        }
    }
    BadId::NotFound
}

/// The id of a core register. An index past the register file (which [`decode_id`] never
/// yields) gives 0, which names no register.
pub(crate) const fn core_id(reg: CoreReg) -> u64 {
    match reg.offset() {
        Some(off) => KVM_REG_ARM64 | reg.size_field() | KVM_REG_ARM_CORE | off as u64,
        None => 0,
    }
}

/// The id of a system register (`ARM64_SYS_REG`); each field is masked to its width as
/// the uapi macro does.
pub(crate) const fn sys_id(reg: SysReg) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG
        | ((reg.op0 as u64 & 0x3) << 14)
        | ((reg.op1 as u64 & 0x7) << 11)
        | ((reg.crn as u64 & 0xf) << 7)
        | ((reg.crm as u64 & 0xf) << 3)
        | (reg.op2 as u64 & 0x7)
}

/// The id of a firmware pseudo-register (`KVM_REG_ARM_FW_REG`).
pub(crate) const fn fw_id(index: u16) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | index as u64
}

/// The id of a firmware feature bitmap (`KVM_REG_ARM_FW_FEAT_BMAP_REG`).
pub(crate) const fn fw_bmap_id(index: u16) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP | index as u64
}

/// The firmware registers in the register list, as KVM lists them: the PSCI version,
/// the three workaround levels, then the four bitmaps.
pub(crate) fn fw_reg_ids() -> impl Iterator<Item = u64> {
    (0..4).map(fw_id).chain((0..4).map(fw_bmap_id))
}

#[cfg(test)]
/// Number of core registers in the register list: x0..x30, sp, pc, pstate, sp_el1,
/// elr_el1, five SPSRs, v0..v31, fpsr and fpcr.
pub(crate) const CORE_REG_COUNT: usize = 31 + 3 + 2 + 5 + 32 + 2;

/// The core register ids in KVM's order: a walk over `struct kvm_regs` in words, emitting
/// each register once at its first word.
pub(crate) fn core_reg_ids() -> impl Iterator<Item = u64> {
    (0..KVM_REGS_WORDS)
        .filter_map(CoreReg::from_offset)
        .map(core_id)
}

/// PSTATE after vCPU reset: EL1h with D, A, I and F masked (`VCPU_RESET_PSTATE_EL1`).
pub(crate) const RESET_PSTATE: u64 = 0x3c5;

const PSR_MODE_MASK: u64 = 0x1f;
const PSR_MODE_EL0T: u64 = 0x0;
const PSR_MODE_EL1T: u64 = 0x4;
const PSR_MODE_EL1H: u64 = 0x5;

/// Whether userspace may set this PSTATE through ONE_REG, as `set_core_reg` decides for an
/// AArch64 vCPU without nested virtualisation: the mode must be EL0t, EL1t or EL1h. EL2
/// modes and AArch32 modes (M[4] set) are refused, since rkvm runs neither. Other bits are
/// not checked, as in KVM.
pub(crate) const fn pstate_valid(pstate: u64, aarch32_el0: bool) -> bool {
    match pstate & PSR_MODE_MASK {
        PSR_MODE_EL0T | PSR_MODE_EL1T | PSR_MODE_EL1H => true,
        // AArch32 User, where the CPU can run 32-bit EL0 (as KVM's set_core_reg).
        PSR_AA32_MODE_USR => aarch32_el0,
        _ => false,
    }
}

/// PSTATE.M of AArch32 User mode.
const PSR_AA32_MODE_USR: u64 = 0x10;

/// The `MPIDR_EL1` KVM gives vCPU `id` (`kvm_calculate_mpidr`): Aff0 holds only 16 vCPUs,
/// because a GICv3 SGI can target at most 16 CPUs of one cluster directly; the next bits
/// of the id go to Aff1 and Aff2. Bit 31 is RES1.
pub(crate) const fn mpidr_for_vcpu(id: u32) -> u64 {
    let id = id as u64;
    (1 << 31) | (id & 0xf) | (((id >> 4) & 0xff) << 8) | (((id >> 12) & 0xff) << 16)
}

pub(crate) use super::el1regs::El1Reg;

impl El1Reg {
    pub(crate) const fn sysreg(self) -> SysReg {
        let (op0, op1, crn, crm, op2) = self.encoding();
        SysReg::new(op0, op1, crn, crm, op2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::vec::Vec;

    // Ids as the uapi macros build them, written out for the registers VMMs touch first.
    const X0: u64 = 0x6030_0000_0010_0000;
    const PC: u64 = 0x6030_0000_0010_0040;
    const PSTATE: u64 = 0x6030_0000_0010_0042;
    const V0: u64 = 0x6040_0000_0010_0054;
    const FPSR: u64 = 0x6020_0000_0010_00d4;
    const FPCR: u64 = 0x6020_0000_0010_00d5;

    #[test]
    fn core_ids_match_the_uapi_layout() {
        assert_eq!(core_id(CoreReg::X(0)), X0);
        assert_eq!(core_id(CoreReg::X(30)), X0 | 60);
        assert_eq!(core_id(CoreReg::Sp), X0 | 62);
        assert_eq!(core_id(CoreReg::Pc), PC);
        assert_eq!(core_id(CoreReg::Pstate), PSTATE);
        assert_eq!(core_id(CoreReg::SpEl1), X0 | 68);
        assert_eq!(core_id(CoreReg::ElrEl1), X0 | 70);
        assert_eq!(core_id(CoreReg::Spsr(0)), X0 | 72);
        assert_eq!(core_id(CoreReg::Spsr(4)), X0 | 80);
        assert_eq!(core_id(CoreReg::V(0)), V0);
        assert_eq!(core_id(CoreReg::V(31)), V0 + 31 * 4);
        assert_eq!(core_id(CoreReg::Fpsr), FPSR);
        assert_eq!(core_id(CoreReg::Fpcr), FPCR);
    }

    #[test]
    fn core_ids_round_trip() {
        for id in core_reg_ids() {
            match decode_id(id) {
                Some(RegId::Core(reg)) => {
                    assert_eq!(core_id(reg), id);
                    assert_eq!(id_size(id), reg.size());
                }
                other => panic!("{id:#x} decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn out_of_range_core_regs_have_no_id() {
        for reg in [
            CoreReg::X(31),
            CoreReg::Spsr(5),
            CoreReg::V(32),
            CoreReg::V(255),
        ] {
            assert_eq!(reg.offset(), None);
            assert_eq!(core_id(reg), 0);
        }
        assert_eq!(decode_id(0), None);
    }

    #[test]
    fn core_ids_with_the_wrong_size_are_refused() {
        assert_eq!(decode_id(X0 & !SIZE_MASK | KVM_REG_SIZE_U32), None);
        assert_eq!(decode_id(X0 & !SIZE_MASK | KVM_REG_SIZE_U128), None);
        assert_eq!(decode_id(V0 & !SIZE_MASK | KVM_REG_SIZE_U64), None);
        assert_eq!(decode_id(FPSR & !SIZE_MASK | KVM_REG_SIZE_U64), None);
        // A u8 read of x0 would be a partial register.
        assert_eq!(decode_id(X0 & !SIZE_MASK), None);
    }

    #[test]
    fn core_ids_inside_a_register_or_in_padding_are_refused() {
        // The upper word of x0, the padding before vregs, the middle of v0, the reserved
        // words after fpcr, and past the structure.
        for (off, size) in [
            (1, KVM_REG_SIZE_U64),
            (82, KVM_REG_SIZE_U64),
            (83, KVM_REG_SIZE_U32),
            (86, KVM_REG_SIZE_U128),
            (214, KVM_REG_SIZE_U32),
            (215, KVM_REG_SIZE_U32),
            (216, KVM_REG_SIZE_U32),
            (0xffff, KVM_REG_SIZE_U64),
        ] {
            assert_eq!(
                decode_id(KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | off),
                None,
                "{off}"
            );
        }
    }

    #[test]
    fn malformed_ids_are_refused() {
        // x86's architecture field, an arm (32-bit) id, bits [51:32], bits [31:28], and
        // unimplemented groups (demux, SVE, an unallocated one).
        assert_eq!(decode_id(0x2030_0000_0010_0000), None);
        assert_eq!(decode_id(0x4030_0000_0010_0000), None);
        assert_eq!(decode_id(X0 | (1 << 32)), None);
        assert_eq!(decode_id(X0 | (1 << 51)), None);
        assert_eq!(decode_id(X0 | (1 << 28)), None);
        assert_eq!(decode_id(0x6020_0000_0011_0000), None);
        assert_eq!(decode_id(0x6080_0000_0015_0000), None);
        assert_eq!(decode_id(0x6030_0000_0017_0000), None);
    }

    #[test]
    fn core_reg_list_is_kvms() {
        let ids: Vec<u64> = core_reg_ids().collect();
        assert_eq!(ids.len(), CORE_REG_COUNT);
        assert_eq!(CORE_REG_COUNT, 75);
        assert_eq!(ids[0], X0);
        assert_eq!(ids[32], PC);
        assert_eq!(ids[41], V0);
        assert_eq!(ids[73..], [FPSR, FPCR]);
        // Offsets strictly increase, so each register appears once.
        assert!(ids.windows(2).all(|w| (w[0] & 0xffff) < (w[1] & 0xffff)));
    }

    #[test]
    fn sys_ids() {
        // ARM64_SYS_REG(3, 0, 1, 0, 0) and the MDSCR_EL1 id of KVM's get-reg-list test.
        assert_eq!(sys_id(SCTLR_EL1), 0x6030_0000_0013_c080);
        assert_eq!(sys_id(MDSCR_EL1), 0x6030_0000_0013_8012);
        assert_eq!(
            decode_id(sys_id(TPIDRRO_EL0)),
            Some(RegId::Sys(TPIDRRO_EL0))
        );
        assert_eq!(decode_id(sys_id(CSSELR_EL1)), Some(RegId::Sys(CSSELR_EL1)));
        // System registers are u64 only.
        assert_eq!(
            decode_id(sys_id(SCTLR_EL1) & !SIZE_MASK | KVM_REG_SIZE_U32),
            None
        );
        // Out-of-range fields are masked, never spilling into other fields.
        assert_eq!(
            sys_id(SysReg::new(0xff, 0xff, 0xff, 0xff, 0xff)),
            0x6030_0000_0013_ffff
        );
    }

    #[test]
    fn timer_ids_keep_kvms_swap() {
        assert_eq!(TIMER_CTL_ID, 0x6030_0000_0013_df19);
        assert_eq!(TIMER_CNT_ID, 0x6030_0000_0013_df1a);
        assert_eq!(TIMER_CVAL_ID, 0x6030_0000_0013_df02);
        let meaning = |id| match decode_id(id) {
            Some(RegId::Sys(r)) => match super::super::sysregs::user_storage(r, false) {
                Some(super::super::sysregs::Storage::Timer(t)) => Some(t),
                _ => None,
            },
            _ => None,
        };
        assert_eq!(meaning(TIMER_CTL_ID), Some(TimerReg::Ctl));
        assert_eq!(meaning(TIMER_CNT_ID), Some(TimerReg::Cnt));
        assert_eq!(meaning(TIMER_CVAL_ID), Some(TimerReg::Cval));
        assert_eq!(PTIMER_CTL_ID, 0x6030_0000_0013_df11);
        assert_eq!(PTIMER_CVAL_ID, 0x6030_0000_0013_df12);
        assert_eq!(PTIMER_CNT_ID, 0x6030_0000_0013_df01);
        assert_eq!(meaning(PTIMER_CTL_ID), Some(TimerReg::PCtl));
        assert_eq!(meaning(PTIMER_CVAL_ID), Some(TimerReg::PCval));
        assert_eq!(meaning(PTIMER_CNT_ID), Some(TimerReg::PCnt));
        assert_eq!(meaning(sys_id(SCTLR_EL1)), None);
    }

    #[test]
    fn fw_ids() {
        assert_eq!(PSCI_VERSION_ID, 0x6030_0000_0014_0000);
        assert_eq!(decode_id(PSCI_VERSION_ID), Some(RegId::Fw(0)));
        assert_eq!(decode_id(fw_id(2)), Some(RegId::Fw(2)));
        assert_eq!(
            decode_id(PSCI_VERSION_ID & !SIZE_MASK | KVM_REG_SIZE_U32),
            None
        );
    }

    #[test]
    fn fw_bmap_ids() {
        // KVM_REG_ARM_STD_BMAP .. KVM_REG_ARM_VENDOR_HYP_BMAP_2.
        assert_eq!(fw_bmap_id(0), 0x6030_0000_0016_0000);
        assert_eq!(decode_id(fw_bmap_id(3)), Some(RegId::FwBmap(3)));
        assert_eq!(
            decode_id(fw_bmap_id(0) & !SIZE_MASK | KVM_REG_SIZE_U32),
            None
        );
        assert_eq!(
            bad_id(fw_bmap_id(0) & !SIZE_MASK | KVM_REG_SIZE_U32),
            BadId::NotFound
        );
        let ids: Vec<u64> = fw_reg_ids().collect();
        assert_eq!(ids.len(), 8);
        assert_eq!(ids[0], PSCI_VERSION_ID);
        assert_eq!(ids[3], 0x6030_0000_0014_0003);
        assert_eq!(ids[7], 0x6030_0000_0016_0003);
    }

    #[test]
    fn oslsr() {
        assert!(oslsr_settable(OSLSR_OSLM_IMPLEMENTED));
        assert!(oslsr_settable(OSLSR_OSLM_IMPLEMENTED | OSLSR_OSLK));
        assert!(!oslsr_settable(0));
        assert!(!oslsr_settable(OSLSR_OSLM_IMPLEMENTED | 1));
        assert!(!oslsr_settable(OSLSR_OSLM_IMPLEMENTED | 1 << 63));
    }

    #[test]
    fn sizes() {
        assert_eq!(id_size(X0), 8);
        assert_eq!(id_size(V0), 16);
        assert_eq!(id_size(FPSR), 4);
        assert_eq!(id_size(u64::MAX), 1 << 15);
    }

    #[test]
    fn encoding_matches_trapped_accesses() {
        use super::super::esr::SysRegAccess;
        for r in El1Reg::ALL
            .map(El1Reg::sysreg)
            .into_iter()
            .chain([MIDR_EL1, MPIDR_EL1])
        {
            let access = SysRegAccess {
                op0: r.op0,
                op1: r.op1,
                crn: r.crn,
                crm: r.crm,
                op2: r.op2,
                rt: 0,
                read: true,
            };
            assert_eq!(r.encoding(), access.encoding());
        }
        // The kernel's SYS_SCTLR_EL1.
        assert_eq!(SCTLR_EL1.encoding(), 0x0018_1000);
    }

    #[test]
    fn el1_file() {
        for (i, r) in El1Reg::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i);
            assert_eq!(
                super::super::sysregs::user_storage(r.sysreg(), false),
                Some(super::super::sysregs::Storage::El1(r))
            );
        }
        let mut encodings: Vec<u32> = El1Reg::ALL.map(|r| r.sysreg().encoding()).to_vec();
        encodings.sort_unstable();
        encodings.dedup();
        assert_eq!(encodings.len(), El1Reg::COUNT);
        // The list's encodings against the architecture's, written out independently.
        let expected = [
            SCTLR_EL1,
            CPACR_EL1,
            TTBR0_EL1,
            TTBR1_EL1,
            TCR_EL1,
            ESR_EL1,
            AFSR0_EL1,
            AFSR1_EL1,
            FAR_EL1,
            MAIR_EL1,
            AMAIR_EL1,
            VBAR_EL1,
            CONTEXTIDR_EL1,
            TPIDR_EL1,
            TPIDR_EL0,
            TPIDRRO_EL0,
            PAR_EL1,
            CNTKCTL_EL1,
            CSSELR_EL1,
            ACTLR_EL1,
            MDSCR_EL1,
        ];
        assert_eq!(El1Reg::ALL.map(El1Reg::sysreg), expected);
    }

    #[test]
    fn reset_values() {
        assert_eq!(El1Reg::Sctlr.reset_value(), 0x00c5_0078);
        for r in El1Reg::ALL.into_iter().filter(|&r| r != El1Reg::Sctlr) {
            assert_eq!(r.reset_value(), 0, "{r:?}");
        }
        // EL1h, DAIF all set.
        assert_eq!(RESET_PSTATE, 0x5 | (0xf << 6));
        assert!(pstate_valid(RESET_PSTATE, false));
    }

    #[test]
    fn mpidr() {
        assert_eq!(mpidr_for_vcpu(0), 0x8000_0000);
        assert_eq!(mpidr_for_vcpu(15), 0x8000_000f);
        assert_eq!(mpidr_for_vcpu(16), 0x8000_0100);
        assert_eq!(mpidr_for_vcpu(0x1234), 0x8001_2304);
        // Bits above 19 of the id are dropped, and Aff3 stays clear.
        assert_eq!(mpidr_for_vcpu(u32::MAX), 0x80ff_ff0f);
    }

    #[test]
    fn pstate_modes() {
        // EL0t, EL1t, EL1h with assorted flag bits.
        for p in [0x0, 0x4, 0x5, 0x6000_03c5, 0x2000_0000] {
            assert!(pstate_valid(p, false), "{p:#x}");
        }
        // EL2t, EL2h, EL3h, an unallocated AArch64 mode, AArch32 usr, svc and sys.
        for p in [0x8, 0x9, 0xd, 0x1, 0x10, 0x13, 0x1f, 0x3d3] {
            assert!(!pstate_valid(p, false), "{p:#x}");
        }
        // AArch32 User only where the CPU runs 32-bit EL0; never the privileged modes.
        assert!(pstate_valid(0x10, true));
        assert!(!pstate_valid(0x13, true));
    }

    #[test]
    fn bad_id_errnos_follow_kvm() {
        // X0 as a 32-bit register, and a core offset inside a register: EINVAL.
        assert_eq!(bad_id(0x6020_0000_0010_0000), BadId::Invalid);
        assert_eq!(bad_id(0x6030_0000_0010_0001), BadId::Invalid);
        // Past struct kvm_regs, unknown groups, sysregs at the wrong size: ENOENT.
        assert_eq!(bad_id(0x6030_0000_0010_00d8), BadId::NotFound);
        assert_eq!(bad_id(0x6030_0000_0018_0000), BadId::NotFound);
        assert_eq!(bad_id(0x6020_0000_0013_c684), BadId::NotFound);
        // Another architecture: EINVAL.
        assert_eq!(bad_id(0x4030_0000_0010_0000), BadId::Invalid);
    }
}
