// SPDX-License-Identifier: GPL-2.0

//! Running a closure on every online CPU (`on_each_cpu`).

use super::bindings;
use core::ffi::c_void;

/// Runs `f` on each online CPU, in IPI context with interrupts off, and waits for all of
/// them to finish. `f` must not sleep.
pub(crate) fn on_each_cpu<F: Fn() + Sync>(f: &F) {
    unsafe extern "C" fn trampoline<F: Fn() + Sync>(info: *mut c_void) {
        // SAFETY: `info` is the `&F` passed below; `on_each_cpu` waits for every call to
        // finish before returning, so the borrow outlives all uses, and `F: Sync` makes
        // the concurrent shared calls sound.
        let f = unsafe { &*info.cast::<F>() };
        f();
    }
    // SAFETY: the trampoline matches `smp_call_func_t` and `info` is valid for the whole
    // call because `wait = 1` in the helper.
    unsafe {
        bindings::rkvm_on_each_cpu(Some(trampoline::<F>), core::ptr::from_ref(f).cast_mut().cast())
    };
}

/// The system-wide sanitised value of the ID register with encoding `sys_reg` (as the
/// kernel's `sys_reg(op0, op1, crn, crm, op2)`), agreed across all CPUs.
pub(crate) fn read_sanitised_id_reg(sys_reg: u32) -> u64 {
    // SAFETY: a lookup in the kernel's feature-register table; unknown ids read 0 (with a
    // one-time warning, so callers pass only ID-space encodings).
    unsafe { bindings::read_sanitised_ftr_reg(sys_reg) }
}

/// The number of online CPUs.
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: reads the online mask's weight.
    unsafe { bindings::rkvm_num_online_cpus() }
}
