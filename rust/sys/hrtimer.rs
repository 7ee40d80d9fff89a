// SPDX-License-Identifier: GPL-2.0

//! A one-shot high-resolution timer embedded in a pinned object, whose expiry calls the
//! object's [`TimerOwner::expired`] in hardirq context.
//!
//! KVM counterpart: the `bg_timer` of `struct arch_timer_cpu` (`kvm_bg_timer_expire`).
//! rkvm arms it at the guest's next timer deadline so that a vCPU sleeping in WFI wakes,
//! and a vCPU in the guest exits, when its timer fires.

use core::marker::PhantomData;
use kernel::{bindings, prelude::*, types::Opaque};

/// The object a [`WakeTimer`] lives in.
///
/// # Safety
///
/// `OFFSET` is the offset of the `WakeTimer<Self>` field within `Self`, and that field is
/// never moved out of the (pinned) object.
pub(crate) unsafe trait TimerOwner: Sync {
    const OFFSET: usize;
    /// Runs in hardirq context when the timer expires: must not sleep.
    fn expired(&self);
}

/// A relative, hard-irq hrtimer on `CLOCK_MONOTONIC`.
///
/// # Invariants
///
/// `raw` was set up by `hrtimer_setup` with [`Self::callback`], and is cancelled before
/// it is freed (drop).
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct WakeTimer<T: TimerOwner> {
    #[pin]
    raw: Opaque<bindings::hrtimer>,
    _owner: PhantomData<T>,
}

// SAFETY: the hrtimer core serialises all operations on `raw` with its own locking.
unsafe impl<T: TimerOwner> Send for WakeTimer<T> {}
// SAFETY: as above.
unsafe impl<T: TimerOwner> Sync for WakeTimer<T> {}

impl<T: TimerOwner> WakeTimer<T> {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `slot` is valid, pinned memory for an hrtimer; the callback matches
            // the expected signature.
            raw <- Opaque::ffi_init(|slot: *mut bindings::hrtimer| unsafe {
                bindings::hrtimer_setup(
                    slot,
                    Some(Self::callback),
                    bindings::CLOCK_MONOTONIC as _,
                    bindings::hrtimer_mode_HRTIMER_MODE_REL_HARD,
                )
            }),
            _owner: PhantomData,
        })
    }

    unsafe extern "C" fn callback(raw: *mut bindings::hrtimer) -> bindings::hrtimer_restart {
        // SAFETY: `raw` is the first field of a `WakeTimer<T>` (repr(C)) that lives at
        // `T::OFFSET` in a live, pinned `T` (the trait's contract; the timer is cancelled
        // before the owner goes away).
        let owner = unsafe { &*raw.cast::<u8>().sub(T::OFFSET).cast::<T>() };
        owner.expired();
        bindings::hrtimer_restart::HRTIMER_NORESTART
    }

    /// (Re)arms the timer to expire `ns` nanoseconds from now.
    pub(crate) fn start(&self, ns: u64) {
        let ns = ns.min(i64::MAX as u64) as i64;
        // SAFETY: `raw` is set up (type invariant); restarting an armed or running timer
        // is allowed.
        unsafe {
            bindings::hrtimer_start_range_ns(
                self.raw.get(),
                ns,
                0,
                bindings::hrtimer_mode_HRTIMER_MODE_REL_HARD,
            )
        };
    }

    /// Disarms the timer without waiting for a callback running on another CPU (which
    /// only makes a request of the vCPU).
    pub(crate) fn try_cancel(&self) {
        // SAFETY: `raw` is set up.
        unsafe { bindings::hrtimer_try_to_cancel(self.raw.get()) };
    }

    /// Disarms the timer and waits for a running callback to finish. May sleep.
    pub(crate) fn cancel(&self) {
        // SAFETY: `raw` is set up; called from process context.
        unsafe { bindings::hrtimer_cancel(self.raw.get()) };
    }
}

#[pinned_drop]
impl<T: TimerOwner> PinnedDrop for WakeTimer<T> {
    fn drop(self: Pin<&mut Self>) {
        // INVARIANT: no callback runs or is pending once the memory is freed.
        self.cancel();
    }
}
