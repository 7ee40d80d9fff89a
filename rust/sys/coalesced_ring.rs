// SPDX-License-Identifier: GPL-2.0

//! The coalesced-MMIO ring page (`struct kvm_coalesced_mmio_ring`) shared with the VMM
//! through every vCPU mapping.
//!
//! Userspace may write the page at any time: each index is read once with a volatile
//! access and checked (`logic::coalesced::ring_insert`) before it is used.
//!
//! As `run_page.rs`: a kernel-crate `Page` addressed through `page_address`.

use super::bindings;
use crate::logic::coalesced::{self, entry_offset};
use core::sync::atomic::{fence, Ordering};
use kernel::{page::Page, page::PAGE_SIZE, prelude::*};

/// Entries in the ring (`KVM_COALESCED_MMIO_MAX`).
pub(crate) const ENTRIES: u32 = coalesced::ring_entries(PAGE_SIZE);

/// One zeroed page holding the ring.
///
/// # Invariants
///
/// `base` is the kernel address of `page`, which lives as long as `self`.
pub(crate) struct CoalescedRing {
    page: Page,
    base: *mut u8,
}

// SAFETY: the page is owned; appends are serialised by the caller (`&mut self`) and
// every access to the shared page is volatile.
unsafe impl Send for CoalescedRing {}
// SAFETY: `&self` only exposes the page for mapping.
unsafe impl Sync for CoalescedRing {}

impl CoalescedRing {
    /// Allocates the page (charged to the caller's memory cgroup).
    pub(crate) fn new() -> Result<Self> {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        // SAFETY: `page` is a valid, owned page.
        let base = unsafe { bindings::rkvm_page_address(page.as_ptr().cast()) }.cast();
        // INVARIANT: `base` is the linear-map address of `page`.
        Ok(Self { page, base })
    }

    /// The page, for the vCPU mapping.
    pub(crate) fn page(&self) -> &Page {
        &self.page
    }

    /// Appends a `len`-byte write of bus bytes `data` at `addr`; `false` if the ring is
    /// full (or userspace left `last` out of range), as KVM then passes the write on.
    pub(crate) fn append(&mut self, addr: u64, len: u32, data: &[u8; 8], pio: bool) -> bool {
        // SAFETY: offsets 0 and 4 (`first`, `last`) are aligned `u32`s inside the live page.
        let (first, last) = unsafe {
            (
                self.base.cast::<u32>().read_volatile(),
                self.base.add(4).cast::<u32>().read_volatile(),
            )
        };
        let Some((slot, next)) = coalesced::ring_insert(first, last, ENTRIES) else {
            return false;
        };
        let n = (len as usize).min(data.len());
        // SAFETY: `slot < ENTRIES`, so the 24-byte entry at `entry_offset(slot)` (8-byte
        // aligned) lies inside the page; fields per `struct kvm_coalesced_mmio`.
        unsafe {
            let entry = self.base.add(entry_offset(slot));
            entry.cast::<u64>().write_volatile(addr);
            entry.add(8).cast::<u32>().write_volatile(len);
            entry.add(12).cast::<u32>().write_volatile(u32::from(pio));
            for (i, b) in data[..n].iter().enumerate() {
                entry.add(16 + i).write_volatile(*b);
            }
        }
        // The entry is complete before userspace can see `last` move (KVM's smp_wmb).
        fence(Ordering::Release);
        // SAFETY: as for the read of `last`.
        unsafe { self.base.add(4).cast::<u32>().write_volatile(next) };
        true
    }
}
