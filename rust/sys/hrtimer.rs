// SPDX-License-Identifier: GPL-2.0

//! Starting and cancelling a `kernel::time::hrtimer::HrTimer` that lives in its owner,
//! without a handle.
//!
//! The kernel crate (7.3) provides the timer (`HrTimer`, set up by `hrtimer_setup`), the
//! modes and the callback trampolines; rkvm uses them as they are. What it lacks is a
//! way to start a timer embedded in a pinned object that is not kept alive by the
//! timer: its `start` operations return a handle that owns (`Arc`, `Box`) or borrows
//! (`Pin<&T>`) the object and cancels on drop, so a timer that is re-armed from a
//! `&self` method, and outlives the call that armed it, has nowhere to keep the handle
//! (keeping an `Arc` handle in the object makes a reference cycle). Here the owner
//! promises instead to cancel the timer in its own drop ([`HrTimerOwner`]), which is what
//! the handle's drop guarantees, so starting and cancelling are safe operations on a
//! pinned reference. Nothing in this file is specific to rkvm; it could be proposed as
//! `HrTimer::{start_owned, cancel, try_cancel}` in `rust/kernel/time/hrtimer.rs`.
//!
//! rkvm's user is the vCPU's wake-up timer (KVM counterpart: the `bg_timer` of
//! `struct arch_timer_cpu`, `kvm_bg_timer_expire`), armed at the guest's next timer
//! deadline so that a vCPU sleeping in WFI wakes, and a vCPU in the guest exits.

use core::pin::Pin;
use kernel::{
    bindings,
    time::hrtimer::{HasHrTimer, HrTimerCallback, HrTimerMode},
};

/// An object that embeds an `HrTimer<Self>`, whose callback receives `Pin<&Self>`, and
/// that cancels the timer before it is freed.
///
/// # Safety
///
/// Every instance is pinned from its initialisation on (so any `&Self` points into
/// pinned memory), and the implementer calls [`cancel`] on itself in its
/// `PinnedDrop::drop`, before any field is dropped. Then the object outlives any expiry
/// of the timer, which is what the callback's `Pin<&Self>` relies on (the
/// `PinHrTimerHandle` contract, kept by the owner instead of a handle).
pub(crate) unsafe trait HrTimerOwner:
    HasHrTimer<Self> + for<'a> HrTimerCallback<Pointer<'a> = Pin<&'a Self>> + Sync + Sized
{
}

/// Starts `owner`'s timer to expire at `expires` (a delay or an instant, as its mode
/// says); restarts it if it is already armed. Callable from any context.
pub(crate) fn start<T: HrTimerOwner>(
    owner: &T,
    expires: <<T as HasHrTimer<T>>::TimerMode as HrTimerMode>::Expires,
) {
    // SAFETY: `owner` is a valid `T`, pinned and cancelling the timer before it goes (the
    // `HrTimerOwner` contract), so it lives until the timer fires or is cancelled.
    unsafe { T::start(owner, expires) };
}

/// Disarms `owner`'s timer without waiting for a callback running on another CPU;
/// returns whether it was armed. Callable from any context.
pub(crate) fn try_cancel<T: HrTimerOwner>(owner: &T) -> bool {
    // SAFETY: `owner` is valid, so is the timer in it (set up by `HrTimer::new`);
    // `hrtimer_try_to_cancel` synchronises with the hrtimer core.
    unsafe { bindings::hrtimer_try_to_cancel(T::c_timer_ptr(owner).cast_mut()) == 1 }
}

/// Disarms `owner`'s timer and waits for a running callback to finish; returns whether
/// it was armed. Not from the timer's own callback (it would wait for itself).
pub(crate) fn cancel<T: HrTimerOwner>(owner: &T) -> bool {
    // SAFETY: as in `try_cancel`.
    unsafe { bindings::hrtimer_cancel(T::c_timer_ptr(owner).cast_mut()) != 0 }
}
