// SPDX-License-Identifier: GPL-2.0

//! Injecting a synchronous exception into an AArch64 guest's EL1: the state change the
//! hardware makes when it takes an exception to EL1, applied by software.
//!
//! KVM counterpart: `inject_undef64()` and `inject_abt64()` in
//! `arch/arm64/kvm/inject_fault.c`, and `enter_exception64()` in
//! `arch/arm64/kvm/hyp/exception.c`. rkvm has no nested virtualisation, so EL1 is always the
//! target, and it reports aborts the way KVM does for accesses it cannot service: as a
//! synchronous external abort, not on a translation table walk.

/// `PSTATE.M[3:0]` and `PSTATE.nRW` (bit 4).
const PSR_MODE_MASK: u64 = 0xf;
const PSR_MODE32: u64 = 1 << 4;
#[cfg(test)]
const PSR_MODE_EL0T: u64 = 0b0000;
const PSR_MODE_EL1T: u64 = 0b0100;
const PSR_MODE_EL1H: u64 = 0b0101;

const PSR_F: u64 = 1 << 6;
const PSR_I: u64 = 1 << 7;
const PSR_A: u64 = 1 << 8;
const PSR_D: u64 = 1 << 9;
const PSR_SSBS: u64 = 1 << 12;
const PSR_PAN: u64 = 1 << 22;
const PSR_DIT: u64 = 1 << 24;
const PSR_NZCV: u64 = 0xf << 28;

/// `SCTLR_EL1.SPAN`: 0 means taking an exception to EL1 sets `PSTATE.PAN`.
const SCTLR_SPAN: u64 = 1 << 23;
/// `SCTLR_EL1.DSSBS`: the value `PSTATE.SSBS` takes on exception entry.
const SCTLR_DSSBS: u64 = 1 << 44;

/// Vector offsets from `VBAR_EL1` for the synchronous entry of each source.
const VECTOR_CURRENT_SP0: u64 = 0x000;
const VECTOR_CURRENT_SPX: u64 = 0x200;
const VECTOR_LOWER_A64: u64 = 0x400;
const VECTOR_LOWER_A32: u64 = 0x600;

/// `ESR_ELx` fields.
const ESR_EC_SHIFT: u32 = 26;
const ESR_IL: u64 = 1 << 25;
const EC_UNKNOWN: u64 = 0x00;
const EC_IABT_LOW: u64 = 0x20;
const EC_IABT_CUR: u64 = 0x21;
const EC_DABT_LOW: u64 = 0x24;
const EC_DABT_CUR: u64 = 0x25;
const EC_SERROR: u64 = 0x2f;
/// The SError vector's offset from the synchronous one.
const VECTOR_SERROR: u64 = 0x180;
/// ESR_ELx.ISS.
pub(crate) const ESR_ISS_MASK: u64 = (1 << 25) - 1;
/// ESR_ELx.IDS (ISV) of an SError: the ISS is IMPLEMENTATION DEFINED, not architected.
pub(crate) const ESR_SERROR_IDS: u64 = 1 << 24;
/// `FSC` for a synchronous external abort not on a translation table walk.
const FSC_EXTABT: u64 = 0x10;

/// Guest state the injection reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct El1Exception {
    pub(crate) pc: u64,
    pub(crate) pstate: u64,
    pub(crate) vbar_el1: u64,
    pub(crate) elr_el1: u64,
    pub(crate) spsr_el1: u64,
    pub(crate) esr_el1: u64,
    pub(crate) far_el1: u64,
}

/// The exception to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// An UNDEFINED instruction (EC 0x00), e.g. for a system register rkvm does not emulate.
    Undefined,
    /// A data abort reported at `far`.
    DataAbort { far: u64 },
    /// An instruction abort reported at `far`.
    InstructionAbort { far: u64 },
    /// A data (or, with `fetch`, instruction) abort at `far` reported as an address-size
    /// fault at level 0 (FSC 0), as if the access exceeded the physical address range:
    /// KVM's `kvm_inject_size_fault`.
    AddressSize { far: u64, fetch: bool },
    /// An SError with syndrome `iss` (ESR_ELx.ISS), taken now because the guest has
    /// SErrors unmasked: KVM's `kvm_inject_serror_esr` emulating the entry.
    SError { iss: u64 },
}

/// Where the exception comes from, relative to EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// EL1 using `SP_EL0` (EL1t).
    CurrentSp0,
    /// EL1 using `SP_EL1` (EL1h).
    CurrentSpx,
    /// EL0 in AArch64.
    LowerA64,
    /// EL0 in AArch32.
    LowerA32,
}

impl Source {
    /// Classifies `pstate` the way `enter_exception64()` does: anything that is not EL1 is
    /// treated as a lower EL (a guest without EL2 cannot be anywhere else).
    const fn of(pstate: u64) -> Self {
        let mode = pstate & (PSR_MODE_MASK | PSR_MODE32);
        if mode == PSR_MODE_EL1H {
            Self::CurrentSpx
        } else if mode == PSR_MODE_EL1T {
            Self::CurrentSp0
        } else if mode & PSR_MODE32 == 0 {
            Self::LowerA64
        } else {
            Self::LowerA32
        }
    }

    const fn vector(self) -> u64 {
        match self {
            Self::CurrentSp0 => VECTOR_CURRENT_SP0,
            Self::CurrentSpx => VECTOR_CURRENT_SPX,
            Self::LowerA64 => VECTOR_LOWER_A64,
            Self::LowerA32 => VECTOR_LOWER_A32,
        }
    }

    const fn lower(self) -> bool {
        matches!(self, Self::LowerA64 | Self::LowerA32)
    }
}

/// `PSTATE` after taking an exception to EL1h, from the `pstate` before it.
///
/// Follows the Arm ARM's `AArch64.TakeException()` as `enter_exception64()` does:
/// NZCV and DIT are kept; D, A, I, F are set; PAN is kept, and set when `SCTLR_EL1.SPAN`
/// is 0; SSBS takes `SCTLR_EL1.DSSBS`; UAO, SS, IL, BTYPE, ALLINT and the rest are cleared.
/// TCO is left clear because rkvm does not offer MTE to guests (KVM sets it only then).
const fn entry_pstate(old: u64, sctlr_el1: u64) -> u64 {
    let mut new = old & (PSR_NZCV | PSR_DIT | PSR_PAN);
    if sctlr_el1 & SCTLR_SPAN == 0 {
        new |= PSR_PAN;
    }
    if sctlr_el1 & SCTLR_DSSBS != 0 {
        new |= PSR_SSBS;
    }
    new | PSR_D | PSR_A | PSR_I | PSR_F | PSR_MODE_EL1H
}

/// Takes the synchronous exception `what` to EL1 on the guest state `s`, as hardware would.
///
/// The caller must not also advance the PC past the faulting instruction: `ELR_EL1` is the
/// PC as given, so the guest's handler sees the instruction that faulted.
pub(crate) fn inject(s: &mut El1Exception, what: Injected, sctlr_el1: u64, il32: bool) {
    let source = Source::of(s.pstate);
    let dabt = if source.lower() {
        EC_DABT_LOW
    } else {
        EC_DABT_CUR
    };
    let iabt = if source.lower() {
        EC_IABT_LOW
    } else {
        EC_IABT_CUR
    };
    let (ec, far, iss) = match what {
        Injected::Undefined => (EC_UNKNOWN, None, 0),
        Injected::DataAbort { far } => (dabt, Some(far), FSC_EXTABT),
        Injected::InstructionAbort { far } => (iabt, Some(far), FSC_EXTABT),
        Injected::AddressSize { far, fetch } => (if fetch { iabt } else { dabt }, Some(far), 0),
        Injected::SError { iss } => (EC_SERROR, None, iss & ESR_ISS_MASK),
    };
    // IL follows the instruction that trapped, as in KVM's inject_fault.c; an SError is
    // not an instruction's and always has it set.
    let il = il32 || matches!(what, Injected::SError { .. });
    s.esr_el1 = (ec << ESR_EC_SHIFT) | if il { ESR_IL } else { 0 } | iss;
    if let Some(far) = far {
        s.far_el1 = far;
    }

    s.elr_el1 = s.pc;
    s.spsr_el1 = s.pstate;
    let offset = match what {
        Injected::SError { .. } => VECTOR_SERROR,
        _ => 0,
    };
    s.pc = s.vbar_el1.wrapping_add(source.vector() + offset);
    s.pstate = entry_pstate(s.pstate, sctlr_el1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0xffff_8000_1000_0000;
    const PC: u64 = 0xffff_8000_0040_1234;
    /// SCTLR_EL1 with SPAN set (PAN left alone) and DSSBS clear.
    const SCTLR_SPAN1: u64 = SCTLR_SPAN;

    fn state(pstate: u64) -> El1Exception {
        El1Exception {
            pc: PC,
            pstate,
            vbar_el1: VBAR,
            elr_el1: 0x1111,
            spsr_el1: 0x2222,
            esr_el1: 0x3333,
            far_el1: 0x4444,
        }
    }

    #[test]
    fn vector_offsets() {
        for (pstate, offset) in [
            (PSR_MODE_EL1T, 0x000),
            (PSR_MODE_EL1H, 0x200),
            (PSR_MODE_EL0T, 0x400),
            (PSR_MODE32, 0x600), // AArch32 EL0 (usr)
        ] {
            let mut s = state(pstate);
            inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
            assert_eq!(s.pc, VBAR + offset, "pstate {pstate:#x}");
        }
    }

    #[test]
    fn serror_entry() {
        let mut s = state(PSR_MODE_EL0T);
        inject(
            &mut s,
            Injected::SError { iss: 0x1_0042 },
            SCTLR_SPAN1,
            false,
        );
        assert_eq!(s.pc, VBAR + 0x400 + 0x180);
        assert_eq!(s.esr_el1, (0x2f << 26) | ESR_IL | 0x1_0042);
        assert_eq!(s.far_el1, 0x4444);
        assert_ne!(s.pstate & PSR_A, 0);
        let mut s = state(PSR_MODE_EL1H);
        inject(
            &mut s,
            Injected::SError {
                iss: ESR_SERROR_IDS | 7,
            },
            SCTLR_SPAN1,
            true,
        );
        assert_eq!(s.pc, VBAR + 0x200 + 0x180);
        assert_eq!(s.esr_el1, 0xbf00_0007 | (1 << 24));
    }

    #[test]
    fn elr_and_spsr_saved() {
        let old = 0x6000_03c5 | PSR_SSBS | (0b11 << 10) | (1 << 21);
        let mut s = state(old);
        inject(
            &mut s,
            Injected::DataAbort { far: 0x1000 },
            SCTLR_SPAN1,
            true,
        );
        assert_eq!(s.elr_el1, PC);
        assert_eq!(s.spsr_el1, old);
        assert_eq!(s.vbar_el1, VBAR);
    }

    #[test]
    fn undefined_syndrome() {
        let mut s = state(PSR_MODE_EL0T);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.esr_el1, 0x0200_0000);
        // FAR is not written for an UNDEF.
        assert_eq!(s.far_el1, 0x4444);
        let mut s = state(PSR_MODE_EL1H);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.esr_el1, 0x0200_0000);
    }

    #[test]
    fn data_abort_syndrome() {
        let mut s = state(PSR_MODE_EL0T);
        inject(
            &mut s,
            Injected::DataAbort { far: 0xdead_b000 },
            SCTLR_SPAN1,
            true,
        );
        assert_eq!(s.esr_el1, 0x9200_0010); // EC 0x24, IL, DFSC 0x10
        assert_eq!(s.far_el1, 0xdead_b000);
        for mode in [PSR_MODE_EL1T, PSR_MODE_EL1H] {
            let mut s = state(mode);
            inject(
                &mut s,
                Injected::DataAbort { far: 0x8000 },
                SCTLR_SPAN1,
                true,
            );
            assert_eq!(s.esr_el1, 0x9600_0010); // EC 0x25
            assert_eq!(s.far_el1, 0x8000);
        }
    }

    #[test]
    fn instruction_abort_syndrome() {
        let mut s = state(PSR_MODE_EL0T);
        inject(
            &mut s,
            Injected::InstructionAbort { far: 0x40_0000 },
            SCTLR_SPAN1,
            true,
        );
        assert_eq!(s.esr_el1, 0x8200_0010); // EC 0x20, IL, IFSC 0x10
        assert_eq!(s.far_el1, 0x40_0000);
        let mut s = state(PSR_MODE_EL1H);
        inject(
            &mut s,
            Injected::InstructionAbort { far: PC },
            SCTLR_SPAN1,
            true,
        );
        assert_eq!(s.esr_el1, 0x8600_0010); // EC 0x21
        assert_eq!(s.far_el1, PC);
    }

    #[test]
    fn new_pstate_masks_and_mode() {
        let mut s = state(PSR_MODE_EL0T);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.pstate, 0x3c5);
    }

    #[test]
    fn new_pstate_keeps_flags_and_clears_the_rest() {
        // NZCV, DIT kept; UAO (23), SS (21), IL (20), BTYPE (11:10), SSBS, ALLINT (13) cleared.
        let old = PSR_NZCV
            | PSR_DIT
            | (1 << 23)
            | (1 << 21)
            | (1 << 20)
            | (1 << 13)
            | PSR_SSBS
            | (0b11 << 10)
            | PSR_MODE_EL1H;
        let mut s = state(old);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.pstate, PSR_NZCV | PSR_DIT | 0x3c5);
    }

    #[test]
    fn pan_handling() {
        // SPAN == 0 sets PAN whatever it was.
        let mut s = state(PSR_MODE_EL0T);
        inject(&mut s, Injected::Undefined, 0, true);
        assert_eq!(s.pstate, PSR_PAN | 0x3c5);
        // SPAN == 1 keeps PAN as it was, set or clear.
        let mut s = state(PSR_MODE_EL1H | PSR_PAN);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.pstate, PSR_PAN | 0x3c5);
        let mut s = state(PSR_MODE_EL1H);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.pstate, 0x3c5);
    }

    #[test]
    fn ssbs_from_dssbs() {
        let mut s = state(PSR_MODE_EL0T);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1 | SCTLR_DSSBS, true);
        assert_eq!(s.pstate, PSR_SSBS | 0x3c5);
    }

    #[test]
    fn nested_injection_returns_to_handler() {
        // A second fault inside the EL1h handler goes to the current-EL SPx vector and
        // records the handler's state, as a real nested exception would.
        let mut s = state(PSR_MODE_EL0T);
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        let handler_pc = s.pc;
        inject(&mut s, Injected::DataAbort { far: 0x10 }, SCTLR_SPAN1, true);
        assert_eq!(s.elr_el1, handler_pc);
        assert_eq!(s.spsr_el1, 0x3c5);
        assert_eq!(s.pc, VBAR + 0x200);
        assert_eq!(s.esr_el1, 0x9600_0010);
    }

    #[test]
    fn vbar_wraps_without_panic() {
        let mut s = El1Exception {
            vbar_el1: u64::MAX - 0x7ff,
            ..state(PSR_MODE_EL0T)
        };
        inject(&mut s, Injected::Undefined, SCTLR_SPAN1, true);
        assert_eq!(s.pc, (u64::MAX - 0x7ff).wrapping_add(0x400));
    }

    #[test]
    fn undef_after_a_16_bit_instruction_clears_il() {
        let mut s = El1Exception {
            pc: 0x8000,
            pstate: 0x30, // AArch32 Thumb User
            vbar_el1: 0x4000_0000,
            elr_el1: 0,
            spsr_el1: 0,
            esr_el1: 0,
            far_el1: 0,
        };
        inject(&mut s, Injected::Undefined, 0, false);
        assert_eq!(s.esr_el1 & ESR_IL, 0);
        assert_eq!(s.pc, 0x4000_0600);
    }

    #[test]
    fn address_size_fault_reports_fsc_zero() {
        let mut s = El1Exception {
            pc: 0x4000_1000,
            pstate: 0x3c5,
            vbar_el1: 0x4000_0800,
            elr_el1: 0,
            spsr_el1: 0,
            esr_el1: 0,
            far_el1: 0,
        };
        inject(
            &mut s,
            Injected::AddressSize {
                far: 1 << 50,
                fetch: false,
            },
            0,
            true,
        );
        assert_eq!(s.esr_el1, (EC_DABT_CUR << ESR_EC_SHIFT) | ESR_IL);
        assert_eq!(s.far_el1, 1 << 50);
    }
}
