// SPDX-License-Identifier: GPL-2.0

//! MMU notifiers: callbacks before the core MM changes a range of a process's address
//! space, and when it ages one.
//!
//! KVM counterpart: `kvm_init_mmu_notifier` and the `kvm_mmu_notifier_*` callbacks
//! (`virt/kvm/kvm_main.c`). rkvm subscribes the VMM's `mm` for each VM, so stage 2 never
//! maps a page the host has freed, moved or replaced.
//!
//! The kernel crate (7.3) has no MMU notifiers. [`Subscription`] is generic, written as a
//! kernel-crate addition would be: it is only ever created in place (pin-init), so the
//! `struct mmu_notifier` the core MM links never moves, and dropping it unregisters,
//! which waits for callbacks in flight (`mmu_notifier_unregister`'s SRCU grace period).

use super::bindings;
use core::{
    marker::PhantomPinned,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{prelude::*, types::Opaque};

/// What a subscriber does when the MM changes or ages user addresses `[start, end)`.
///
/// The callbacks run in the context of whatever changed the address space: any thread of
/// the process, reclaim, compaction, the OOM reaper. None of them may allocate memory
/// that could recurse into reclaim while holding a lock another callback takes.
pub(crate) trait MmuNotifierOps: Sync {
    /// The pages of `[start, end)` are about to change. When not `blockable` the callback
    /// must not sleep, and returns `EAGAIN` if it cannot finish without sleeping.
    fn invalidate_start(&self, start: u64, end: u64, blockable: bool) -> Result;
    /// The change announced by a successful [`Self::invalidate_start`] is complete.
    fn invalidate_end(&self, start: u64, end: u64);
    /// Whether a page of `[start, end)` was accessed since the last ageing; with `clear`,
    /// starts a new ageing period, and with `flush` makes sure later accesses are seen.
    /// Called with page-table spinlocks held: must not sleep.
    fn age(&self, start: u64, end: u64, clear: bool, flush: bool) -> bool;
    /// The address space is going away (the process exits): drop every mapping of it.
    fn release(&self);
}

/// A subscription to a process's MMU notifications on behalf of a `T`.
///
/// # Invariants
///
/// Once `mm` is non-null, `raw` is registered on that `mm` with `OPS` and `owner` points
/// to a `T` that outlives the registration; `raw` is pinned (the type is only created in
/// place and is `!Unpin`).
#[repr(C)]
#[pin_data(PinnedDrop)]
pub(crate) struct Subscription<T: MmuNotifierOps> {
    // First, so that the callbacks' `struct mmu_notifier *` is also a pointer to `Self`.
    #[pin]
    raw: Opaque<bindings::mmu_notifier>,
    owner: AtomicPtr<T>,
    mm: AtomicPtr<bindings::mm_struct>,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: the raw notifier is only touched by the core MM under its own locks; `owner`
// is a `T: Sync` and the rest are atomics.
unsafe impl<T: MmuNotifierOps> Sync for Subscription<T> {}
// SAFETY: as above; nothing is tied to the creating thread.
unsafe impl<T: MmuNotifierOps> Send for Subscription<T> {}

impl<T: MmuNotifierOps> Subscription<T> {
    const OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Some(Self::release),
        clear_flush_young: Some(Self::clear_flush_young),
        clear_young: Some(Self::clear_young),
        test_young: Some(Self::test_young),
        invalidate_range_start: Some(Self::invalidate_range_start),
        invalidate_range_end: Some(Self::invalidate_range_end),
        arch_invalidate_secondary_tlbs: None,
        alloc_notifier: None,
        free_notifier: None,
    };

    /// A subscription not yet registered.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            raw <- Opaque::zeroed(),
            owner: AtomicPtr::new(ptr::null_mut()),
            mm: AtomicPtr::new(ptr::null_mut()),
            _pin: PhantomPinned,
        })
    }

    /// Subscribes to the current process's address space, calling `owner`'s methods.
    /// `EINVAL` if already registered or the caller has no `mm` (a kernel thread).
    ///
    /// # Safety
    ///
    /// `owner` stays valid until `self` is dropped (typically, `self` is a field of it).
    pub(crate) unsafe fn register(&self, owner: &T) -> Result {
        // SAFETY: reads `current->mm`.
        let mm = unsafe { bindings::rkvm_current_mm() };
        if mm.is_null() || !self.mm.load(Ordering::Relaxed).is_null() {
            return Err(EINVAL);
        }
        // Published to the callbacks by the registration's own locking.
        self.owner
            .store(ptr::from_ref(owner).cast_mut(), Ordering::Relaxed);
        let raw = self.raw.get();
        // SAFETY: `raw` is zeroed and pinned; `OPS` is a promoted constant. `mm` is the
        // live current mm, which registration pins (`mmgrab`) until unregistration.
        let ret = unsafe {
            (*raw).ops = &Self::OPS;
            bindings::mmu_notifier_register(raw, mm)
        };
        kernel::error::to_result(ret)?;
        // INVARIANT: registered above with `OPS`; the caller keeps `owner` alive.
        self.mm.store(mm, Ordering::Release);
        Ok(())
    }

    /// The owner a callback was registered for.
    ///
    /// # Safety
    ///
    /// `raw` is the notifier of a registered `Subscription<T>` (the core MM passes the
    /// one it calls).
    unsafe fn owner<'a>(raw: *mut bindings::mmu_notifier) -> &'a T {
        // SAFETY: `raw` is the first field of a registered, live `Subscription<T>`
        // (repr(C)); by the type invariant its owner outlives the registration.
        unsafe { &*(*raw.cast::<Self>()).owner.load(Ordering::Relaxed) }
    }

    /// # Safety
    ///
    /// Called by the core MM with the registered notifier and a live range.
    unsafe extern "C" fn invalidate_range_start(
        raw: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) -> i32 {
        // SAFETY: by the caller's guarantee.
        let (owner, r) = unsafe { (Self::owner(raw), &*range) };
        // SAFETY: `range` is live.
        let blockable = unsafe { bindings::rkvm_mmu_notifier_range_blockable(range) };
        match owner.invalidate_start(r.start as u64, r.end as u64, blockable) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// As for [`Self::invalidate_range_start`].
    unsafe extern "C" fn invalidate_range_end(
        raw: *mut bindings::mmu_notifier,
        range: *const bindings::mmu_notifier_range,
    ) {
        // SAFETY: by the caller's guarantee.
        let (owner, r) = unsafe { (Self::owner(raw), &*range) };
        owner.invalidate_end(r.start as u64, r.end as u64);
    }

    /// # Safety
    ///
    /// Called by the core MM with the registered notifier.
    unsafe extern "C" fn clear_flush_young(
        raw: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        start: usize,
        end: usize,
    ) -> bool {
        // SAFETY: by the caller's guarantee.
        unsafe { Self::owner(raw) }.age(start as u64, end as u64, true, true)
    }

    /// # Safety
    ///
    /// As for [`Self::clear_flush_young`].
    unsafe extern "C" fn clear_young(
        raw: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        start: usize,
        end: usize,
    ) -> bool {
        // SAFETY: by the caller's guarantee.
        unsafe { Self::owner(raw) }.age(start as u64, end as u64, true, false)
    }

    /// # Safety
    ///
    /// As for [`Self::clear_flush_young`].
    unsafe extern "C" fn test_young(
        raw: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
        address: usize,
    ) -> bool {
        let page = address as u64 & !(kernel::page::PAGE_SIZE as u64 - 1);
        // SAFETY: by the caller's guarantee.
        unsafe { Self::owner(raw) }.age(page, page + kernel::page::PAGE_SIZE as u64, false, false)
    }

    /// # Safety
    ///
    /// As for [`Self::clear_flush_young`].
    unsafe extern "C" fn release(raw: *mut bindings::mmu_notifier, _mm: *mut bindings::mm_struct) {
        // SAFETY: by the caller's guarantee.
        unsafe { Self::owner(raw) }.release();
    }
}

#[pinned_drop]
impl<T: MmuNotifierOps> PinnedDrop for Subscription<T> {
    fn drop(self: Pin<&mut Self>) {
        let mm = self.mm.load(Ordering::Acquire);
        if !mm.is_null() {
            // SAFETY: by the type invariant `raw` is registered on `mm`, which the
            // registration keeps allocated. Unregistering calls `release` if the mm has
            // not exited yet and waits for every callback in flight, so none runs after.
            unsafe { bindings::mmu_notifier_unregister(self.raw.get(), mm) };
        }
    }
}
