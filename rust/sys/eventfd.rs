// SPDX-License-Identifier: GPL-2.0

//! Eventfds for `KVM_IRQFD`: a wait-queue entry registered on an eventfd (through its
//! poll method, as KVM's irqfd does), reading its counter, and signalling an eventfd.
//!
//! KVM counterpart: `virt/kvm/eventfd.c` (`kvm_irqfd_assign`, `irqfd_wakeup`).
//!
//! The kernel crate (7.3) has no eventfd and no custom wait-queue entries (its
//! `PollCondVar` registers a condition variable, woken without a callback). [`EventFd`]
//! is generic (a counted reference, signal, drop). [`PollEntry`] follows KVM's irqfd
//! registration (`vfs_poll` with a queue proc in `helpers.c` that makes the entry the
//! queue's exclusive priority waiter), which is what an irqfd-like user needs rather
//! than a general wait-queue abstraction.

use super::bindings;
use core::{
    ffi::{c_int, c_uint, c_void},
    mem::offset_of,
    ptr::NonNull,
};
use kernel::{error::from_err_ptr, prelude::*, types::Opaque};

/// `EPOLLIN` and `EPOLLHUP` as a wake-up's key carries them.
pub(crate) const EPOLLIN: usize = 0x1;
pub(crate) const EPOLLHUP: usize = 0x10;

/// A wake-up callback: runs in the signaller's context with the eventfd's wait-queue
/// lock held and interrupts off, so it may not sleep.
pub(crate) type WakeFn =
    unsafe extern "C" fn(*mut bindings::wait_queue_entry, c_uint, c_int, *mut c_void) -> c_int;

/// A reference to an eventfd, for signalling it.
pub(crate) struct EventFd(NonNull<bindings::eventfd_ctx>);

// SAFETY: an `eventfd_ctx` is reference-counted and signalled under its own lock.
unsafe impl Send for EventFd {}
// SAFETY: as above.
unsafe impl Sync for EventFd {}

impl EventFd {
    /// The eventfd behind `fd` (`EBADF`, or `EINVAL` for another kind of file).
    pub(crate) fn from_fd(fd: i32) -> Result<Self> {
        // SAFETY: looks up `fd` in the caller's file table and takes a reference.
        let ctx = from_err_ptr(unsafe { bindings::eventfd_ctx_fdget(fd) })?;
        NonNull::new(ctx).map(Self).ok_or(EINVAL)
    }

    /// Adds one to the counter and wakes its waiters (usable in atomic context).
    pub(crate) fn signal(&self) {
        // SAFETY: `self` holds a reference to the context.
        unsafe { bindings::rkvm_eventfd_signal(self.0.as_ptr()) };
    }

    /// Identity, to compare with a [`PollEntry`]'s eventfd.
    pub(crate) fn as_ptr(&self) -> *mut bindings::eventfd_ctx {
        self.0.as_ptr()
    }
}

impl Drop for EventFd {
    fn drop(&mut self) {
        // SAFETY: drops the reference `from_fd` took.
        unsafe { bindings::eventfd_ctx_put(self.0.as_ptr()) };
    }
}

/// A wait-queue entry on an eventfd, embedded (pinned) in its owner.
#[repr(transparent)]
pub(crate) struct PollEntry(Opaque<bindings::rkvm_poll_entry>);

impl PollEntry {
    pub(crate) fn new() -> Self {
        Self(Opaque::zeroed())
    }

    /// Registers on the eventfd behind `fd` with `wake`, as the only priority waiter of
    /// that eventfd (`EBUSY` if it already drives an irqfd). Returns the events already
    /// pending. The owner must call [`Self::unregister`] before the entry moves or goes.
    ///
    /// # Safety
    ///
    /// `self` is pinned until `unregister`, and `wake` may use the entry it is called for
    /// (through [`Self::from_wait`]) for as long as it is registered.
    pub(crate) unsafe fn register(&self, fd: i32, wake: WakeFn) -> Result<usize> {
        let mut events: c_uint = 0;
        // SAFETY: the entry is valid and pinned by the caller's guarantee.
        let ret =
            unsafe { bindings::rkvm_poll_register(fd, self.0.get(), Some(wake), &mut events) };
        if ret < 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(events as usize)
    }

    /// Removes the entry from the eventfd's wait queue (after this returns, no wake-up
    /// for it runs) and drops the eventfd reference.
    ///
    /// # Safety
    ///
    /// Registered by a successful [`Self::register`], and called once.
    pub(crate) unsafe fn unregister(&self) {
        // SAFETY: by the caller's guarantee.
        unsafe { bindings::rkvm_poll_unregister(self.0.get()) };
    }

    /// Consumes the eventfd's counter (in a wake-up, as KVM's `irqfd_wakeup`).
    ///
    /// # Safety
    ///
    /// Registered; called from its wake-up callback (the wait-queue lock held).
    pub(crate) unsafe fn do_read(&self) {
        let mut cnt = 0u64;
        // SAFETY: `ctx` is the registered eventfd; the caller holds its wait-queue lock.
        unsafe { bindings::eventfd_ctx_do_read((*self.0.get()).ctx, &mut cnt) };
    }

    /// The registered eventfd's identity.
    pub(crate) fn eventfd(&self) -> *mut bindings::eventfd_ctx {
        // SAFETY: plain read of a field written before registration.
        unsafe { (*self.0.get()).ctx }
    }

    /// The entry a wake-up was called for.
    ///
    /// # Safety
    ///
    /// `wait` is the `wait` field of a registered `PollEntry`.
    pub(crate) unsafe fn from_wait<'a>(wait: *mut bindings::wait_queue_entry) -> &'a Self {
        let off = offset_of!(bindings::rkvm_poll_entry, wait);
        // SAFETY: by the caller's guarantee; `PollEntry` is `repr(transparent)` over it.
        unsafe { &*wait.cast::<u8>().sub(off).cast::<Self>() }
    }
}
