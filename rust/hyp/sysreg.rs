// SPDX-License-Identifier: GPL-2.0

//! System-register accessors: the inline assembly every backend shares.
//!
//! Reads of ID and status registers have no side effects and are valid at EL1 and EL2,
//! so these wrappers are safe.

use core::arch::asm;

macro_rules! read_sysreg {
    ($(#[$meta:meta])* $name:ident, $reg:literal) => {
        $(#[$meta])*
        #[inline(always)]
        pub(crate) fn $name() -> u64 {
            let value: u64;
            // SAFETY: reading this register has no side effect and is permitted at the
            // exception levels rkvm runs at (EL1 and EL2).
            unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack)) };
            value
        }
    };
}

read_sysreg!(
    /// `CurrentEL`: the exception level this code runs at, in bits [3:2].
    current_el, "CurrentEL"
);
read_sysreg!(
    /// `ID_AA64PFR0_EL1` of this CPU (not the sanitised system-wide value).
    id_aa64pfr0_el1, "id_aa64pfr0_el1"
);
