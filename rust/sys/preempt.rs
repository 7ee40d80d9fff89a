// SPDX-License-Identifier: GPL-2.0

//! Preempt notifiers: callbacks when the current task is scheduled out and back in.
//!
//! KVM counterpart: `kvm_sched_in`/`kvm_sched_out` around `preempt_notifier_register` in
//! `vcpu_load` (`virt/kvm/kvm_main.c`). rkvm registers one for the duration of `KVM_RUN`,
//! so the vCPU's lazily switched state follows the thread across CPUs.
//!
//! The kernel crate (7.3) has no preempt notifiers and no preemption guard. Both
//! wrappers are generic: [`Notifier`] pins a notifier on the registering task's stack
//! and calls a trait's methods (the safety argument is the pinning and the unregister on
//! drop), [`NoPreempt`] is a guard. `kernel::sync` would be their place.

use super::bindings;
use core::{marker::PhantomPinned, pin::Pin};

/// What to do when the registering task is scheduled out or in. Both run with preemption
/// disabled (`sched_out` also with interrupts off) and must not sleep.
pub(crate) trait PreemptOps: Sync {
    fn sched_in(&self);
    fn sched_out(&self);
}

/// Enables preempt notifiers system-wide (a static key); pairs with [`notifiers_disable`].
pub(crate) fn notifiers_enable() {
    // SAFETY: increments a reference count.
    unsafe { bindings::preempt_notifier_inc() };
}

/// Drops the reference taken by [`notifiers_enable`].
pub(crate) fn notifiers_disable() {
    // SAFETY: pairs with `notifiers_enable` at module load.
    unsafe { bindings::preempt_notifier_dec() };
}

/// A notifier on the stack of the current task, registered for its lifetime.
///
/// # Invariants
///
/// When `registered`, `raw` is linked on the current task's notifier list, pinned, until
/// drop; `ops` outlives it.
#[repr(C)]
pub(crate) struct Notifier<'a, T: PreemptOps> {
    // First, so that the C callback's pointer is also a pointer to `Self`.
    raw: bindings::preempt_notifier,
    ops: &'a T,
    registered: bool,
    _pin: PhantomPinned,
}

impl<'a, T: PreemptOps> Notifier<'a, T> {
    const OPS: bindings::preempt_ops = bindings::preempt_ops {
        sched_in: Some(Self::sched_in),
        sched_out: Some(Self::sched_out),
    };

    /// A notifier calling `ops`, not yet registered.
    pub(crate) fn new(ops: &'a T) -> Self {
        Self {
            raw: Default::default(),
            ops,
            registered: false,
            _pin: PhantomPinned,
        }
    }

    /// Registers the notifier on the current task until `self` is dropped.
    pub(crate) fn register(self: Pin<&mut Self>) {
        // SAFETY: `raw` is pinned (it is linked into the task's list) and stays registered
        // until `drop` unregisters it; the ops table is a promoted constant.
        unsafe {
            let this = self.get_unchecked_mut();
            bindings::rkvm_preempt_notifier_init(
                &mut this.raw,
                core::ptr::from_ref(&Self::OPS).cast_mut(),
            );
            bindings::preempt_notifier_register(&mut this.raw);
            this.registered = true;
        }
    }

    /// Unregisters the notifier (before its state goes away or must stop following the
    /// thread); dropping does this too.
    pub(crate) fn unregister(self: Pin<&mut Self>) {
        // SAFETY: only `registered` changes; `raw` stays pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.registered {
            // SAFETY: registered on this task by `register` and not yet unregistered.
            unsafe { bindings::preempt_notifier_unregister(&mut this.raw) };
            this.registered = false;
        }
    }

    /// # Safety
    ///
    /// `raw` is the `raw` field of a registered `Notifier` (the scheduler passes the
    /// notifier it has on the current task's list).
    unsafe extern "C" fn sched_in(raw: *mut bindings::preempt_notifier, _cpu: i32) {
        // SAFETY: `raw` is the first field of a registered, live `Notifier` (repr(C)).
        let this = unsafe { &*raw.cast::<Self>() };
        this.ops.sched_in();
    }

    /// # Safety
    ///
    /// As for [`Self::sched_in`].
    unsafe extern "C" fn sched_out(
        raw: *mut bindings::preempt_notifier,
        _next: *mut bindings::task_struct,
    ) {
        // SAFETY: as in `sched_in`.
        let this = unsafe { &*raw.cast::<Self>() };
        this.ops.sched_out();
    }
}

impl<T: PreemptOps> Drop for Notifier<'_, T> {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: registered on this task by `register` and not yet unregistered.
            unsafe { bindings::preempt_notifier_unregister(&mut self.raw) };
        }
    }
}

/// Disables preemption until dropped.
pub(crate) struct NoPreempt(());

impl NoPreempt {
    pub(crate) fn new() -> Self {
        // SAFETY: pairs with the enable in `drop`.
        unsafe { bindings::rkvm_preempt_disable() };
        Self(())
    }
}

impl Drop for NoPreempt {
    fn drop(&mut self) {
        // SAFETY: pairs with the disable in `new`.
        unsafe { bindings::rkvm_preempt_enable() };
    }
}
