// SPDX-License-Identifier: GPL-2.0

//! The nVHE backend: the kernel runs at EL1 and reaches EL2 only through HVC.
//!
//! Until rkvm installs its own EL2 runtime, EL2 belongs to the kernel's hyp stub
//! (`arch/arm64/kernel/hyp-stub.S`), whose ABI is: function number in x0, argument in x1,
//! result in x0, `HVC_STUB_ERR` for an unknown function.

use core::arch::asm;

/// Calls hyp-stub function `func` with argument `arg` and returns the stub's x0.
///
/// # Safety
///
/// The caller runs at EL1 on a CPU that implements EL2 (otherwise HVC is UNDEFINED), and
/// `func`/`arg` must be a request whose effect on EL2 the caller is prepared for.
pub(crate) unsafe fn stub_call(func: u64, arg: u64) -> u64 {
    let mut x0 = func;
    // SAFETY: the caller guarantees HVC is defined and the call's effect is intended. The
    // stub preserves every register but x0; declaring the C ABI clobbers also covers any
    // SMCCC-style EL2 code that may answer instead (x0-x17).
    unsafe {
        asm!("hvc #0", inout("x0") x0, inout("x1") arg => _, clobber_abi("C"), options(nostack))
    };
    x0
}
