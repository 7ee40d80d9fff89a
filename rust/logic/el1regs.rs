// SPDX-License-Identifier: GPL-2.0

//! The guest's EL1 (and EL0 thread) system registers a vCPU owns, in the order of its
//! save area: the one list from which [`El1Reg`], the VHE load/put code (`hyp/vhe.rs`)
//! and the nVHE world switch (`hyp.S`, through the generated `rkvm/asm-offsets.h`) are
//! all derived. Adding a register is one line here, plus its accessor on VHE.
//!
//! KVM counterpart: `__sysreg_save_el1_state`/`__sysreg_restore_el1_state`
//! (`hyp/include/hyp/sysreg-sr.h`) and the matching rows of `sys_reg_descs`.
//!
//! This file depends on nothing but `core`: `hyp/asm_offsets.rs` mounts it on its own.

/// Calls `$m!` with the list, the switched registers first (the nVHE switch moves them
/// in pairs of adjacent slots). Each entry is the [`El1Reg`] variant, the encoding
/// `(op0, op1, CRn, CRm, op2)`, the reset value, and either `emulated` (never in the CPU:
/// the trap handlers use the saved value) or `switched(el1, vhe)`: in the CPU while the
/// vCPU is loaded, named `el1` by the nVHE world switch (at EL2 with E2H = 0) and `vhe`
/// by the VHE host (its `hyp/sysreg.rs` accessor: the `_EL12`/`_EL02` alias where
/// HCR_EL2.E2H redirects the EL1 name to an EL2 register, the register itself where it
/// does not).
///
/// Reset values: SCTLR_EL1 gets KVM's 0x00C5_0078, its RES1 bits with the MMU and caches
/// off. Where KVM's table writes a fixed value (CPACR, TCR, VBAR, CONTEXTIDR, CNTKCTL,
/// MDSCR) it is 0. Registers whose reset value is architecturally UNKNOWN (TTBRs, ESR,
/// AFSRs, FAR, MAIR, TPIDRs, PAR, CSSELR), which KVM fills with a poison pattern, and the
/// IMPLEMENTATION DEFINED ACTLR and AMAIR, which KVM copies from the host CPU, are 0: a
/// guest may not rely on them, and a fixed value keeps a reset VM reproducible without
/// reading host registers.
macro_rules! el1_regs {
    ($m:ident) => {
        $m! {
            Sctlr = (3, 0, 1, 0, 0), 0x00c5_0078, switched(sctlr_el1, sctlr_el12);
            Cpacr = (3, 0, 1, 0, 2), 0, switched(cpacr_el1, cpacr_el12);
            Ttbr0 = (3, 0, 2, 0, 0), 0, switched(ttbr0_el1, ttbr0_el12);
            Ttbr1 = (3, 0, 2, 0, 1), 0, switched(ttbr1_el1, ttbr1_el12);
            Tcr = (3, 0, 2, 0, 2), 0, switched(tcr_el1, tcr_el12);
            Esr = (3, 0, 5, 2, 0), 0, switched(esr_el1, esr_el12);
            Afsr0 = (3, 0, 5, 1, 0), 0, switched(afsr0_el1, afsr0_el12);
            Afsr1 = (3, 0, 5, 1, 1), 0, switched(afsr1_el1, afsr1_el12);
            Far = (3, 0, 6, 0, 0), 0, switched(far_el1, far_el12);
            Mair = (3, 0, 10, 2, 0), 0, switched(mair_el1, mair_el12);
            Amair = (3, 0, 10, 3, 0), 0, switched(amair_el1, amair_el12);
            Vbar = (3, 0, 12, 0, 0), 0, switched(vbar_el1, vbar_el12);
            Contextidr = (3, 0, 13, 0, 1), 0, switched(contextidr_el1, contextidr_el12);
            Tpidr = (3, 0, 13, 0, 4), 0, switched(tpidr_el1, tpidr_el1);
            TpidrEl0 = (3, 3, 13, 0, 2), 0, switched(tpidr_el0, tpidr_el0);
            TpidrroEl0 = (3, 3, 13, 0, 3), 0, switched(tpidrro_el0, tpidrro_el0);
            Par = (3, 0, 7, 4, 0), 0, switched(par_el1, par_el1);
            Cntkctl = (3, 0, 14, 1, 0), 0, switched(cntkctl_el1, cntkctl_el12);
            Csselr = (3, 2, 0, 0, 0), 0, switched(csselr_el1, csselr_el1);
            Actlr = (3, 0, 1, 0, 1), 0, emulated;
            Mdscr = (2, 0, 0, 2, 2), 0, emulated;
        }
    };
}

// For `hyp/vhe.rs` (the host-test build has no user).
#[allow(unused_imports)]
pub(crate) use el1_regs;

/// Declares [`El1Reg`] from the list.
macro_rules! declare_el1_reg {
    ($($reg:ident = ($op0:literal, $op1:literal, $crn:literal, $crm:literal, $op2:literal),
       $reset:literal, $how:ident $(($el1:ident, $vhe:ident))?;)*) => {
        /// A guest EL1 (or EL0 thread) system register of the save area; the discriminant
        /// is its slot.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub(crate) enum El1Reg {
            $($reg,)*
        }

        impl El1Reg {
            /// How many registers the save area holds.
            pub(crate) const COUNT: usize = [$(stringify!($reg),)*].len();

            /// Every register, in slot order (`ALL[r as usize] == r`).
            pub(crate) const ALL: [El1Reg; Self::COUNT] = [$(Self::$reg,)*];

            /// The encoding `(op0, op1, CRn, CRm, op2)`.
            pub(crate) const fn encoding(self) -> (u8, u8, u8, u8, u8) {
                match self {
                    $(Self::$reg => ($op0, $op1, $crn, $crm, $op2),)*
                }
            }

            /// The value after vCPU reset.
            pub(crate) const fn reset_value(self) -> u64 {
                match self {
                    $(Self::$reg => $reset,)*
                }
            }
        }
    };
}

el1_regs!(declare_el1_reg);
