// SPDX-License-Identifier: GPL-2.0

//! `vcpu_load`/`vcpu_put`: lazy switching of the guest's EL1 state, driven by `KVM_RUN`
//! and by the scheduler.
//!
//! KVM counterpart: `kvm_arch_vcpu_load`/`kvm_arch_vcpu_put` (`arch/arm64/kvm/arm.c`) and
//! `kvm_vcpu_load_vhe`/`kvm_vcpu_put_vhe` (`hyp/vhe/sysreg-sr.c`).
//!
//! `KVM_RUN` loads the vCPU when it starts and puts it when it returns; in between, a
//! preempt notifier puts it when the thread is scheduled out and loads it again, on
//! whatever CPU, when the thread is scheduled back in. The guest's EL1 registers are
//! therefore in the CPU for the whole of `KVM_RUN`, and no guest entry or exit moves them.

use super::Vcpu;
use crate::{
    hyp::{self, LazyState as Lazy},
    sys::preempt::PreemptOps,
};
use core::cell::UnsafeCell;

/// A vCPU's lazily switched state.
///
/// # Invariants
///
/// Only the thread holding `Vcpu::inner` accesses the contents: directly while preemption
/// is disabled or before the preempt notifier is registered (the run loop), or from its
/// own preempt notifier (which runs on that thread, with preemption disabled); and, when
/// no `KVM_RUN` is in progress, the ioctls that hold `Vcpu::inner`.
pub(crate) struct LazyCell(UnsafeCell<Lazy>);

// SAFETY: by the invariant, accesses are serialised by `Vcpu::inner`.
unsafe impl Sync for LazyCell {}
// SAFETY: the contents are plain data.
unsafe impl Send for LazyCell {}

impl LazyCell {
    pub(crate) fn new() -> Self {
        Self(UnsafeCell::new(Lazy::new()))
    }

    /// The contents.
    ///
    /// # Safety
    ///
    /// The caller satisfies the type invariant and holds no other reference to the
    /// contents while the returned one lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get(&self) -> &mut Lazy {
        // SAFETY: by the caller's guarantee.
        unsafe { &mut *self.0.get() }
    }
}

/// The vCPU as the running thread's preempt notifier sees it. Only `KVM_RUN` creates one.
pub(super) struct RunningVcpu<'a>(pub(super) &'a Vcpu);

impl RunningVcpu<'_> {
    /// Loads the vCPU on this CPU.
    ///
    /// # Safety
    ///
    /// Called by the `KVM_RUN` thread with preemption disabled.
    pub(super) unsafe fn load(&self) {
        // SAFETY: the `LazyCell` invariant holds by the caller's guarantee, and the
        // thread holds no other vCPU loaded on this CPU.
        unsafe {
            let lazy = self.0.lazy.get();
            if !lazy.loaded {
                hyp::vcpu_load(lazy);
                self.0.stats.loads.inc();
                self.0.steal_on_load();
            }
        }
    }

    /// Puts the vCPU from this CPU.
    ///
    /// # Safety
    ///
    /// As for [`Self::load`], on the CPU where it was loaded.
    pub(super) unsafe fn put(&self) {
        // SAFETY: as in `load`.
        unsafe {
            let lazy = self.0.lazy.get();
            if lazy.loaded {
                hyp::vcpu_put(lazy);
                self.0.stats.puts.inc();
            }
        }
    }
}

impl PreemptOps for RunningVcpu<'_> {
    fn sched_in(&self) {
        // SAFETY: the notifier runs on the `KVM_RUN` thread with preemption disabled.
        unsafe { self.load() };
    }

    fn sched_out(&self) {
        // SAFETY: as above, on the CPU the thread ran on.
        unsafe { self.put() };
    }
}
