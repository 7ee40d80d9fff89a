// SPDX-License-Identifier: GPL-2.0

//! Eventfd contexts: what `KVM_IOEVENTFD` signals.
//!
//! KVM counterpart: the `eventfd_ctx_fdget`/`eventfd_signal`/`eventfd_ctx_put` calls of
//! `virt/kvm/eventfd.c`.

use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

/// A reference to an eventfd's context.
///
/// # Invariants
///
/// `0` is a context reference obtained from `eventfd_ctx_fdget`, put on drop.
pub(crate) struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: an eventfd context is reference-counted and internally locked; it may be
// signalled and put from any thread.
unsafe impl Send for EventFd {}
// SAFETY: as above.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind file descriptor `fd` of the current process: `EBADF` if `fd` is
    /// not open, `EINVAL` if it is not an eventfd (the kernel's errors, which KVM passes on).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: looks `fd` up in the current task's table and takes a reference.
        let ctx = kernel::error::from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        // INVARIANT: a counted reference from `eventfd_ctx_fdget`.
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    /// Adds 1 to the eventfd's counter and wakes its readers.
    pub(crate) fn signal(&self) {
        // SAFETY: the context is live (type invariant); signalling is allowed from any
        // context.
        unsafe { bindings::eventfd_signal_mask(self.0.as_ptr(), 0) };
    }

    /// Whether both refer to the same eventfd.
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: puts the reference the type owns.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) };
    }
}
