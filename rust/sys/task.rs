// SPDX-License-Identifier: GPL-2.0

//! Scheduling, signals and kernel-mode FP/SIMD for the vCPU thread.

use super::bindings;
use core::{marker::PhantomData, ptr::NonNull};

/// The kernel's FP/SIMD save area (`struct user_fpsimd_state`): V0-V31, FPSR, FPCR.
pub(crate) type FpState = bindings::user_fpsimd_state;

/// Lets the scheduler run something else if it wants to (`cond_resched`).
pub(crate) fn cond_resched() {
    // SAFETY: called from task context without locks held (the vCPU run loop).
    unsafe { bindings::rkvm_cond_resched() };
}

/// Whether the current task has a signal pending.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: `current` is always valid in task context.
    unsafe { kernel::task::Task::current() }.signal_pending()
}

/// Installs `mask` (only read) as the blocked-signal mask until [`sigset_deactivate`], saving the old
/// one (KVM's `kvm_sigset_activate`).
pub(crate) fn sigset_activate(mask: &kernel::bindings::sigset_t) {
    // SAFETY: `mask` is a valid sigset for the duration of the call.
    unsafe { bindings::rkvm_sigset_activate(core::ptr::from_ref(mask).cast_mut().cast()) };
}

/// Restores the mask saved by [`sigset_activate`].
pub(crate) fn sigset_deactivate() {
    // SAFETY: pairs with a previous `sigset_activate` on this task.
    unsafe { bindings::rkvm_sigset_deactivate() };
}

/// The guest's FP/SIMD registers, held in the CPU while the vCPU thread is in `KVM_RUN`.
///
/// Built on the kernel's kernel-mode FP/SIMD support: `kernel_neon_begin` with the
/// vCPU's save area makes the kernel save the registers there, and restore them, whenever
/// the thread is scheduled out and back in, so the guest's values survive preemption and
/// migration without rkvm tracking them. The VMM's own FP state is saved by
/// `kernel_neon_begin` and restored lazily on return to userspace.
///
/// # Invariants
///
/// Between `begin` and `end`, the thread's kernel-mode FP state is `*state`.
pub(crate) struct GuestFp<'a> {
    // Raw, since the kernel writes the area behind our back on every context switch.
    state: NonNull<FpState>,
    _borrow: PhantomData<&'a mut FpState>,
}

impl<'a> GuestFp<'a> {
    /// Loads `state` into the CPU's FP/SIMD registers for the rest of this `KVM_RUN`.
    pub(crate) fn begin(state: &'a mut FpState) -> Self {
        let state = NonNull::from(state);
        // Preemption stays off until the registers hold `state`, or a context switch in
        // between would save the VMM's leftover registers over the guest's values.
        // SAFETY: task context; `state` outlives the guard, which calls `kernel_neon_end`.
        unsafe {
            bindings::rkvm_preempt_disable();
            bindings::kernel_neon_begin(state.as_ptr());
            super::fpsimd_load(state.as_ptr());
            bindings::rkvm_preempt_enable();
        }
        // INVARIANT: `kernel_neon_begin` registered `state` as the kernel-mode FP state.
        Self { state, _borrow: PhantomData }
    }
}

impl Drop for GuestFp<'_> {
    fn drop(&mut self) {
        // SAFETY: preemption off so the registers saved are the guest's current values.
        unsafe {
            bindings::rkvm_preempt_disable();
            super::fpsimd_save(self.state.as_ptr());
            bindings::kernel_neon_end(self.state.as_ptr());
            bindings::rkvm_preempt_enable();
        }
    }
}
