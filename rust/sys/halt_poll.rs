// SPDX-License-Identifier: GPL-2.0

//! What halt polling asks of the kernel: the module parameters (`rust/params.c`, writable
//! at run time as KVM's) and whether spinning still pays.
//!
//! KVM counterpart: the `halt_poll_ns*` parameters and `kvm_vcpu_can_poll()`
//! (`virt/kvm/kvm_main.c`, `include/linux/kvm_host.h`).

use super::bindings;
use crate::logic::halt_poll::Params;

// The parameters' defaults (`rust/params.c`) are KVM's, as `logic` spells them.
const _: () = {
    let d = Params::DEFAULT;
    assert!(bindings::RKVM_HALT_POLL_NS_DEFAULT == d.max_ns);
    assert!(bindings::RKVM_HALT_POLL_NS_GROW_DEFAULT == d.grow);
    assert!(bindings::RKVM_HALT_POLL_NS_GROW_START_DEFAULT == d.grow_start);
    assert!(bindings::RKVM_HALT_POLL_NS_SHRINK_DEFAULT == d.shrink);
};

/// The halt-polling module parameters now.
pub(crate) fn params() -> Params {
    let mut p = bindings::rkvm_halt_poll_params::default();
    // SAFETY: `p` is a valid, writable struct for the duration of the call.
    unsafe { bindings::rkvm_halt_poll_params(&mut p) };
    Params {
        max_ns: p.max_ns,
        grow: p.grow,
        grow_start: p.grow_start,
        shrink: p.shrink,
    }
}

/// Whether the current task may keep spinning: it is alone on its CPU's run queue and
/// the scheduler has not asked for the CPU (`single_task_running() && !need_resched()`).
pub(crate) fn can_poll() -> bool {
    // SAFETY: reads the current CPU's run-queue length and the current task's flags; any
    // task context.
    unsafe { bindings::rkvm_can_poll() }
}
