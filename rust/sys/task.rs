// SPDX-License-Identifier: GPL-2.0

//! Scheduling, signals and kernel-mode FP/SIMD for the vCPU thread.
//!
//! The kernel crate (7.3) has the current task (`Task`, `signal_pending`) and nothing
//! for these: `cond_resched`, the scheduler's run-delay accounting, signal masks
//! (`sigprocmask`) and kernel-mode FP/SIMD (`kernel_neon_begin`/`end`, arm64 only).
//! `cond_resched`, the run delay and [`SigSet`] are generic; [`GuestFp`] is rkvm's
//! own use of kernel-mode FP (a guest's registers as the thread's kernel-mode FP state,
//! KVM's `fpsimd_kvm_prepare`/`kvm_arch_vcpu_load_fp` counterpart) and is not meant
//! for the kernel crate.

use super::bindings;
use crate::logic::fp::{FpHint, FpOwner, OnTrap};
use core::{
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
};

/// The kernel's FP/SIMD save area (`struct user_fpsimd_state`): V0-V31, FPSR, FPCR.
pub(crate) type FpState = bindings::user_fpsimd_state;

/// Lets the scheduler run something else if it wants to (`cond_resched`).
pub(crate) fn cond_resched() {
    // SAFETY: called from task context without locks held (the vCPU run loop).
    unsafe { bindings::rkvm_cond_resched() };
}

/// The thread flags that keep a task from entering a guest (KVM's
/// `XFER_TO_GUEST_MODE_WORK`; arm64 adds none of its own).
const GUEST_ENTRY_WORK: usize = (1 << kernel::bindings::TIF_NEED_RESCHED)
    | (1 << kernel::bindings::TIF_NEED_RESCHED_LAZY)
    | (1 << kernel::bindings::TIF_SIGPENDING)
    | (1 << kernel::bindings::TIF_NOTIFY_SIGNAL)
    | (1 << kernel::bindings::TIF_NOTIFY_RESUME);

/// The current task (`current`), inline: on arm64 the kernel keeps it in SP_EL0
/// (`get_current()`), where the kernel crate's `current!` makes a call.
#[inline(always)]
pub(crate) fn current_ptr() -> *const kernel::bindings::task_struct {
    let task: *const kernel::bindings::task_struct;
    // SAFETY: reading SP_EL0 has no side effect; a thread's `current` never changes.
    unsafe {
        core::arch::asm!("mrs {}, sp_el0", out(reg) task,
                         options(pure, nomem, nostack, preserves_flags));
    }
    task
}

/// Whether the current thread has work to do before it enters a guest: a signal, a
/// reschedule, task work (KVM's `__xfer_to_guest_mode_work_pending`). One load, inline:
/// the run loop calls it on every entry with interrupts masked.
#[inline(always)]
pub(crate) fn guest_entry_work_pending() -> bool {
    let task = current_ptr();
    // SAFETY: `current` is live while it runs this code. Its flags are changed only with
    // atomic bit operations and read with `READ_ONCE` (`read_thread_flags`), as here;
    // `c_ulong` is a naturally aligned `usize`.
    let flags =
        unsafe { AtomicUsize::from_ptr(core::ptr::addr_of!((*task).thread_info.flags).cast_mut()) }
            .load(Relaxed);
    flags & GUEST_ENTRY_WORK != 0
}

/// Does the thread's work before a guest entry (KVM's `xfer_to_guest_mode_handle_work`):
/// reschedules if asked to, runs task work, and returns `false` if a signal is pending
/// (the caller returns `EINTR`).
pub(crate) fn guest_entry_work() -> bool {
    // SAFETY: task context, interrupts and preemption enabled, no lock held (the run
    // loop's slow path).
    unsafe { bindings::rkvm_guest_entry_work() == 0 }
}

/// Before `KVM_RUN` returns: re-raises the rseq update a context switch asked for, which
/// [`guest_entry_work`] may have consumed without updating userspace's rseq area (KVM's
/// `rseq_virt_userspace_exit`; without it the return to userspace finds a switch event
/// still pending, which lockdep kernels warn about).
pub(crate) fn rseq_userspace_exit() {
    // SAFETY: sets a flag of the current task.
    unsafe { bindings::rkvm_rseq_userspace_exit() }
}

/// Whether the kernel accounts the time tasks wait runnable (`CONFIG_SCHED_INFO`).
pub(crate) fn sched_info_on() -> bool {
    // SAFETY: reads a build-time constant.
    unsafe { bindings::rkvm_sched_info_on() }
}

/// The time in nanoseconds the current task has waited runnable for a CPU
/// (`sched_info.run_delay`); 0 without [`sched_info_on`].
pub(crate) fn run_delay() -> u64 {
    // SAFETY: `current` is always valid in task context.
    unsafe { bindings::rkvm_current_run_delay() }
}

/// Whether the current task has a signal pending.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: `current` is always valid in task context.
    unsafe { kernel::task::Task::current() }.signal_pending()
}

/// A set of signals (`sigset_t`), as `KVM_SET_SIGNAL_MASK` passes it.
///
/// The kernel crate (7.3) has no signal-mask type or `sigprocmask`.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(kernel::bindings::sigset_t);

impl SigSet {
    /// The size of the kernel's `sigset_t` in bytes, which userspace must pass.
    pub(crate) const SIZE: usize = core::mem::size_of::<kernel::bindings::sigset_t>();

    /// The set whose bit `n - 1` stands for signal `n`, less SIGKILL and SIGSTOP, which
    /// cannot be blocked (as `sigdelsetmask` in KVM's `kvm_vcpu_ioctl_set_sigmask`).
    pub(crate) fn from_bits_blockable(bits: u64) -> Self {
        const _: () = assert!(SigSet::SIZE == 8);
        let unblockable =
            (1 << (kernel::bindings::SIGKILL - 1)) | (1 << (kernel::bindings::SIGSTOP - 1));
        Self(kernel::bindings::sigset_t {
            sig: [(bits & !unblockable) as kernel::ffi::c_ulong],
        })
    }
}

/// Installs `mask` as the blocked-signal mask until [`sigset_deactivate`], saving the old
/// one (KVM's `kvm_sigset_activate`).
pub(crate) fn sigset_activate(mask: &SigSet) {
    // SAFETY: `mask` is a valid sigset for the duration of the call; the helper only
    // reads it.
    unsafe { bindings::rkvm_sigset_activate(core::ptr::from_ref(&mask.0).cast_mut().cast()) };
}

/// Restores the mask saved by [`sigset_activate`].
pub(crate) fn sigset_deactivate() {
    // SAFETY: pairs with a previous `sigset_activate` on this task.
    unsafe { bindings::rkvm_sigset_deactivate() };
}

/// The guest's FP/SIMD registers during one `KVM_RUN`: in memory until the guest first
/// uses FP/SIMD, then in the CPU until `KVM_RUN` returns.
///
/// Built on the kernel's kernel-mode FP/SIMD support: `kernel_neon_begin` with the
/// vCPU's save area saves the VMM's FP state (only then) and makes the kernel save and
/// restore the area around every context switch and softirq use, so the guest's values
/// survive preemption and migration without rkvm tracking them. Dropping the guard saves
/// them back and ends the kernel-mode FP section; the VMM's own state returns lazily on
/// the way to userspace. A guest that never touches FP/SIMD causes no save or restore.
///
/// # Invariants
///
/// While `owner` is `Guest`, the thread's kernel-mode FP state is `*state`.
pub(crate) struct GuestFp<'a> {
    // Raw, since the kernel writes the area behind our back on every context switch.
    state: NonNull<FpState>,
    owner: FpOwner,
    _borrow: PhantomData<&'a mut FpState>,
}

impl<'a> GuestFp<'a> {
    /// The guest's FP/SIMD state for this `KVM_RUN`: still in memory, or already in the
    /// CPU when `hint` says the guest has been using it (`logic::fp::FpHint`).
    pub(crate) fn new(state: &'a mut FpState, hint: &mut FpHint) -> Self {
        let mut fp = Self {
            state: NonNull::from(state),
            owner: FpOwner::START,
            _borrow: PhantomData,
        };
        if hint.load_at_start() {
            fp.load();
        }
        fp
    }

    /// Whether the guest's registers are in the CPU (its FP instructions need not trap).
    pub(crate) fn loaded(&self) -> bool {
        self.owner.guest_may_use_fp()
    }

    /// Handles the guest's FP trap: loads its registers into the CPU for the rest of this
    /// `KVM_RUN`, or returns `false` if it owned them already (not a lazy-FP trap).
    pub(crate) fn on_trap(&mut self, hint: &mut FpHint) -> bool {
        if self.owner.on_trap().0 == OnTrap::Undefined {
            return false;
        }
        hint.first_use_trapped();
        self.load();
        true
    }

    /// Saves the VMM's registers and loads the guest's.
    fn load(&mut self) {
        let (_, owner) = self.owner.on_trap();
        // Interrupts (so preemption) stay off until the registers hold the guest's values,
        // or a context switch in between would save the VMM's leftovers over them. Masking
        // interrupts rather than preemption also spares `kernel_neon_begin` its bottom-half
        // masking, whose end (`local_bh_enable`) costs more than the mask and unmask.
        // SAFETY: task context, not in an interrupt handler; `state` outlives `self`, whose
        // drop calls `kernel_neon_end` with the same area.
        unsafe {
            let flags = bindings::rkvm_local_irq_save();
            bindings::kernel_neon_begin(self.state.as_ptr());
            super::fpsimd_load(self.state.as_ptr());
            bindings::rkvm_local_irq_restore(flags);
        }
        // INVARIANT: `kernel_neon_begin` registered `state` as the kernel-mode FP state.
        self.owner = owner;
    }
}

impl GuestFp<'_> {
    /// Zeroes the guest's FP/SIMD registers wherever they are (a PSCI `CPU_ON` reset).
    pub(crate) fn reset(&mut self) {
        // SAFETY: `state` is valid for the borrow. Preemption is off so that no context
        // switch saves the CPU's old values over the zeroed area before they are loaded.
        unsafe {
            bindings::rkvm_preempt_disable();
            self.state.as_ptr().write(FpState::default());
            if self.owner.guest_may_use_fp() {
                super::fpsimd_load(self.state.as_ptr());
            }
            bindings::rkvm_preempt_enable();
        }
    }
}

impl Drop for GuestFp<'_> {
    fn drop(&mut self) {
        let (save, owner) = self.owner.on_put();
        self.owner = owner;
        if !save {
            return;
        }
        // Preemption may stay on: while the kernel-mode FP section lasts, a context switch
        // saves the registers to `state` and loads them back, so they hold the guest's
        // current values whenever this thread runs.
        // SAFETY: pairs with `kernel_neon_begin` in `load`, with the same area.
        unsafe {
            super::fpsimd_save(self.state.as_ptr());
            bindings::kernel_neon_end(self.state.as_ptr());
        }
    }
}
