// SPDX-License-Identifier: GPL-2.0

//! System-register accessors: the inline assembly the backends share.
//!
//! Registers are named by their `S<op0>_<op1>_C<n>_C<m>_<op2>` encoding so that the
//! assembler accepts them whatever architecture level the kernel is built for (the
//! `*_EL12`/`*_EL02` aliases in particular need FEAT_VHE). Reads of ID and status
//! registers are safe; everything else is `unsafe`, because it changes how the CPU runs.

use core::arch::asm;

/// Declares a register module with `read()` and `write()`.
macro_rules! sysreg {
    ($(#[$meta:meta])* $name:ident, $enc:literal) => {
        $(#[$meta])*
        #[allow(dead_code)]
        pub(crate) mod $name {
            use super::asm;

            /// Reads the register.
            ///
            /// # Safety
            ///
            /// The register is accessible at the current exception level.
            #[inline(always)]
            pub(crate) unsafe fn read() -> u64 {
                let v: u64;
                // SAFETY: by the caller's guarantee; a read has no side effect.
                unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
                v
            }

            /// Writes the register.
            ///
            /// # Safety
            ///
            /// The register is writable at the current exception level and the caller
            /// intends the new value's effect on the CPU.
            #[inline(always)]
            pub(crate) unsafe fn write(v: u64) {
                // SAFETY: by the caller's guarantee.
                unsafe { asm!(concat!("msr ", $enc, ", {}"), in(reg) v, options(nostack)) };
            }
        }
    };
}

/// Declares a safe read of an ID or status register readable at EL1 and EL2.
macro_rules! read_only {
    ($(#[$meta:meta])* $name:ident, $enc:literal) => {
        $(#[$meta])*
        #[inline(always)]
        pub(crate) fn $name() -> u64 {
            let v: u64;
            // SAFETY: reading this register has no side effect and is permitted at the
            // exception levels rkvm runs at (EL1 and EL2).
            unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
            v
        }
    };
}

read_only!(
    /// `CurrentEL`: the exception level this code runs at, in bits [3:2].
    current_el, "CurrentEL"
);
read_only!(
    /// `ID_AA64PFR0_EL1` of this CPU (not the sanitised system-wide value).
    id_aa64pfr0_el1, "id_aa64pfr0_el1"
);
read_only!(
    /// `MIDR_EL1`.
    midr_el1, "midr_el1"
);
read_only!(
    /// `CTR_EL0`: cache line sizes and coherency features.
    ctr_el0, "ctr_el0"
);
read_only!(
    /// `REVIDR_EL1`: implementation-defined revision information.
    revidr_el1, "s3_0_c0_c0_6"
);
read_only!(
    /// `AIDR_EL1`: implementation-defined auxiliary identification.
    aidr_el1, "s3_1_c0_c0_7"
);
read_only!(
    /// `CLIDR_EL1`: the cache hierarchy.
    clidr_el1, "s3_1_c0_c0_1"
);
read_only!(
    /// `CNTPCT_EL0`, the physical counter (virtual time base of a VM).
    cntpct_el0, "cntpct_el0"
);
read_only!(
    /// `CNTFRQ_EL0`, the counter's frequency in Hz (set by firmware, the same on all CPUs).
    cntfrq_el0, "cntfrq_el0"
);

// EL2 control registers.
sysreg!(hcr_el2, "s3_4_c1_c1_0");
sysreg!(mdcr_el2, "s3_4_c1_c1_1");
sysreg!(vdisr_el2, "s3_4_c12_c1_1");
sysreg!(
    /// `VSESR_EL2` (FEAT_RAS): the syndrome a virtual SError (HCR_EL2.VSE) delivers.
    vsesr_el2, "s3_4_c5_c2_3"
);
sysreg!(cptr_el2, "s3_4_c1_c1_2");
// FEAT_HCX and the fine-grained traps (FEAT_FGT, FEAT_FGT2), in `logic::fgt::FgtReg` order.
sysreg!(hcrx_el2, "s3_4_c1_c2_2");
sysreg!(hfgrtr_el2, "s3_4_c1_c1_4");
sysreg!(hfgwtr_el2, "s3_4_c1_c1_5");
sysreg!(hfgitr_el2, "s3_4_c1_c1_6");
sysreg!(hdfgrtr_el2, "s3_4_c3_c1_4");
sysreg!(hdfgwtr_el2, "s3_4_c3_c1_5");
sysreg!(hfgrtr2_el2, "s3_4_c3_c1_2");
sysreg!(hfgwtr2_el2, "s3_4_c3_c1_3");
sysreg!(hfgitr2_el2, "s3_4_c3_c1_7");
sysreg!(hdfgrtr2_el2, "s3_4_c3_c1_0");
sysreg!(hdfgwtr2_el2, "s3_4_c3_c1_1");
sysreg!(vttbr_el2, "s3_4_c2_c1_0");
sysreg!(vtcr_el2, "s3_4_c2_c1_2");
sysreg!(spsr_el2, "s3_4_c4_c0_0");
sysreg!(elr_el2, "s3_4_c4_c0_1");
sysreg!(esr_el2, "s3_4_c5_c2_0");
sysreg!(far_el2, "s3_4_c6_c0_0");
sysreg!(hpfar_el2, "s3_4_c6_c0_4");
sysreg!(vbar_el2, "s3_4_c12_c0_0");
sysreg!(cnthctl_el2, "s3_4_c14_c1_0");
sysreg!(cntvoff_el2, "s3_4_c14_c0_3");
sysreg!(vpidr_el2, "s3_4_c0_c0_0");
sysreg!(vmpidr_el2, "s3_4_c0_c0_5");

// The GICv3 virtual CPU interface's EL2 registers.
sysreg!(icc_sre_el2, "s3_4_c12_c9_5");
sysreg!(ich_hcr_el2, "s3_4_c12_c11_0");
sysreg!(ich_vtr_el2, "s3_4_c12_c11_1");
sysreg!(ich_misr_el2, "s3_4_c12_c11_2");
sysreg!(ich_eisr_el2, "s3_4_c12_c11_3");
sysreg!(ich_elrsr_el2, "s3_4_c12_c11_5");
sysreg!(ich_vmcr_el2, "s3_4_c12_c11_7");
sysreg!(ich_ap0r0_el2, "s3_4_c12_c8_0");
sysreg!(ich_ap0r1_el2, "s3_4_c12_c8_1");
sysreg!(ich_ap0r2_el2, "s3_4_c12_c8_2");
sysreg!(ich_ap0r3_el2, "s3_4_c12_c8_3");
sysreg!(ich_ap1r0_el2, "s3_4_c12_c9_0");
sysreg!(ich_ap1r1_el2, "s3_4_c12_c9_1");
sysreg!(ich_ap1r2_el2, "s3_4_c12_c9_2");
sysreg!(ich_ap1r3_el2, "s3_4_c12_c9_3");

/// `mrs` of a register named by its encoding string (used by the LR accessors).
macro_rules! read_enc {
    ($enc:literal) => {{
        let v: u64;
        asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack));
        v
    }};
}

/// `msr` of a register named by its encoding string.
macro_rules! write_enc {
    ($enc:literal, $v:expr) => {
        asm!(concat!("msr ", $enc, ", {}"), in(reg) $v, options(nostack))
    };
}

/// Reads ICH_LR<n>_EL2 (`n` < 16; the register must be implemented).
///
/// # Safety
///
/// At EL2 with `n` below ICH_VTR_EL2.ListRegs + 1.
pub(crate) unsafe fn ich_lr_read(n: usize) -> u64 {
    macro_rules! lr {
        ($($i:literal => $enc:literal),*) => {
            match n {
                // SAFETY: by the caller's guarantee.
                $($i => unsafe { read_enc!($enc) },)*
                _ => 0,
            }
        };
    }
    lr!(0 => "s3_4_c12_c12_0", 1 => "s3_4_c12_c12_1", 2 => "s3_4_c12_c12_2",
        3 => "s3_4_c12_c12_3", 4 => "s3_4_c12_c12_4", 5 => "s3_4_c12_c12_5",
        6 => "s3_4_c12_c12_6", 7 => "s3_4_c12_c12_7", 8 => "s3_4_c12_c13_0",
        9 => "s3_4_c12_c13_1", 10 => "s3_4_c12_c13_2", 11 => "s3_4_c12_c13_3",
        12 => "s3_4_c12_c13_4", 13 => "s3_4_c12_c13_5", 14 => "s3_4_c12_c13_6",
        15 => "s3_4_c12_c13_7")
}

/// Writes ICH_LR<n>_EL2.
///
/// # Safety
///
/// As for [`ich_lr_read`]; the value is what the guest is to see in that LR.
pub(crate) unsafe fn ich_lr_write(n: usize, v: u64) {
    macro_rules! lr {
        ($($i:literal => $enc:literal),*) => {
            match n {
                // SAFETY: by the caller's guarantee.
                $($i => unsafe { write_enc!($enc, v) },)*
                _ => {}
            }
        };
    }
    lr!(0 => "s3_4_c12_c12_0", 1 => "s3_4_c12_c12_1", 2 => "s3_4_c12_c12_2",
        3 => "s3_4_c12_c12_3", 4 => "s3_4_c12_c12_4", 5 => "s3_4_c12_c12_5",
        6 => "s3_4_c12_c12_6", 7 => "s3_4_c12_c12_7", 8 => "s3_4_c12_c13_0",
        9 => "s3_4_c12_c13_1", 10 => "s3_4_c12_c13_2", 11 => "s3_4_c12_c13_3",
        12 => "s3_4_c12_c13_4", 13 => "s3_4_c12_c13_5", 14 => "s3_4_c12_c13_6",
        15 => "s3_4_c12_c13_7")
}

// The guest's EL1 registers as seen from a VHE host (the `_EL12`/`_EL02` aliases).
sysreg!(sctlr_el12, "s3_5_c1_c0_0");
sysreg!(cpacr_el12, "s3_5_c1_c0_2");
sysreg!(ttbr0_el12, "s3_5_c2_c0_0");
sysreg!(ttbr1_el12, "s3_5_c2_c0_1");
sysreg!(tcr_el12, "s3_5_c2_c0_2");
sysreg!(spsr_el12, "s3_5_c4_c0_0");
sysreg!(elr_el12, "s3_5_c4_c0_1");
sysreg!(afsr0_el12, "s3_5_c5_c1_0");
sysreg!(afsr1_el12, "s3_5_c5_c1_1");
sysreg!(esr_el12, "s3_5_c5_c2_0");
sysreg!(far_el12, "s3_5_c6_c0_0");
sysreg!(mair_el12, "s3_5_c10_c2_0");
sysreg!(amair_el12, "s3_5_c10_c3_0");
sysreg!(vbar_el12, "s3_5_c12_c0_0");
sysreg!(contextidr_el12, "s3_5_c13_c0_1");
sysreg!(cntkctl_el12, "s3_5_c14_c1_0");
sysreg!(cntv_ctl_el02, "s3_5_c14_c3_1");
sysreg!(cntv_cval_el02, "s3_5_c14_c3_2");

// Registers without an alias: the same register at EL1 and EL2.
sysreg!(sp_el1, "s3_4_c4_c1_0");
sysreg!(tpidr_el1, "s3_0_c13_c0_4");
sysreg!(par_el1, "s3_0_c7_c4_0");
sysreg!(csselr_el1, "s3_2_c0_c0_0");
sysreg!(tpidr_el0, "s3_3_c13_c0_2");
sysreg!(tpidrro_el0, "s3_3_c13_c0_3");

/// `ISB`.
#[inline(always)]
pub(crate) fn isb() {
    // SAFETY: a barrier has no memory-safety effect.
    unsafe { asm!("isb", options(nostack)) };
}

// The pointer-authentication keys but APIA (`context::El1Regs::keys` order): the host
// kernel never uses them (it signs with APIA only), so they move at vcpu_load/put.
sysreg!(apibkeylo_el1, "s3_0_c2_c1_2");
sysreg!(apibkeyhi_el1, "s3_0_c2_c1_3");
sysreg!(apdakeylo_el1, "s3_0_c2_c2_0");
sysreg!(apdakeyhi_el1, "s3_0_c2_c2_1");
sysreg!(apdbkeylo_el1, "s3_0_c2_c2_2");
sysreg!(apdbkeyhi_el1, "s3_0_c2_c2_3");
sysreg!(apgakeylo_el1, "s3_0_c2_c3_0");
sysreg!(apgakeyhi_el1, "s3_0_c2_c3_1");

/// Puts `new` in APIB, APDA, APDB and APGA and returns what they held.
///
/// # Safety
///
/// The CPU has pointer authentication and the keys are accessible here (EL2, or EL1
/// under an HCR_EL2 with APK set, as the kernel's nVHE host flags have it); no code that
/// runs before the matching swap back uses these keys (the host kernel signs with APIA
/// only, and its EL0 runs only after `vcpu_put`).
pub(crate) unsafe fn swap_lazy_keys(new: &[u64; 8]) -> [u64; 8] {
    // SAFETY: by the caller's guarantee.
    unsafe {
        let old = [
            apibkeylo_el1::read(),
            apibkeyhi_el1::read(),
            apdakeylo_el1::read(),
            apdakeyhi_el1::read(),
            apdbkeylo_el1::read(),
            apdbkeyhi_el1::read(),
            apgakeylo_el1::read(),
            apgakeyhi_el1::read(),
        ];
        apibkeylo_el1::write(new[0]);
        apibkeyhi_el1::write(new[1]);
        apdakeylo_el1::write(new[2]);
        apdakeyhi_el1::write(new[3]);
        apdbkeylo_el1::write(new[4]);
        apdbkeyhi_el1::write(new[5]);
        apgakeylo_el1::write(new[6]);
        apgakeyhi_el1::write(new[7]);
        old
    }
}
