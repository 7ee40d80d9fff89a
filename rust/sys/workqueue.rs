// SPDX-License-Identifier: GPL-2.0

//! What `kernel::workqueue` (7.3) lacks: the `system_dfl_wq` queue and flushing one work
//! item.
//!
//! The kernel crate wraps the older system queues (`system()`, `system_unbound()`, ...)
//! but not `system_dfl_wq`, the unbound default that replaces the deprecated `system_wq`,
//! and it has no `flush_work`. Both are written as the crate's own functions are, with
//! nothing specific to rkvm, and could be added there as `workqueue::system_dfl` and
//! `Work::flush`. rkvm's user is the irqfd (`irqfd.rs`, KVM's `irqfd_inject` and
//! `irqfd_shutdown` work).

use kernel::{
    bindings,
    workqueue::{Queue, Work},
};

/// Returns the system default work queue (`system_dfl_wq`).
///
/// Unbound: workers are not bound to any CPU, and queued items run as soon as
/// `max_active` and resources allow.
pub(crate) fn system_dfl() -> &'static Queue {
    // SAFETY: `system_dfl_wq` is a C global, set up at boot and never freed.
    unsafe { Queue::from_raw(bindings::system_dfl_wq) }
}

/// Waits until the last queueing of `work` has finished running, if it is queued or
/// running (`flush_work`); returns whether it had to wait. May sleep.
pub(crate) fn flush<T: ?Sized, const ID: u64>(work: &Work<T, ID>) -> bool {
    // SAFETY: `work` is a valid, initialised `Work` (it cannot be reached otherwise), so
    // its `work_struct` is valid for the call; `flush_work` synchronises with the
    // workqueue core and does not require the item to be queued.
    unsafe { bindings::flush_work(Work::raw_get(work)) }
}
