// SPDX-License-Identifier: GPL-2.0

//! Memory for guests: the VMM's pages that back guest memory, and the pages that hold
//! stage-2 page tables.
//!
//! rkvm holds a reference on a guest page only while a stage-2 fault maps it
//! ([`GuestPage`]), as KVM's `__kvm_faultin_pfn` and `kvm_release_faultin_page`; from then
//! on the VMM's MMU notifier (`sys/mmu_notifier.rs`, `mmu.rs`) unmaps the page before the
//! host frees, moves or changes it. See Documentation/design.rst, "Guest memory".
//!
//! The kernel crate (7.3) has single pages (`kernel::page::Page`, order 0 only) and
//! `vmalloc` allocations through its allocators (`KVBox`, `VVec`, which own typed
//! values). It has no `get_user_pages`, no multi-page
//! allocation, no physical-address conversions and no `vmalloc_to_pfn`; these wrappers
//! deal in physical addresses because stage 2 and the EL2 tables do, so they are rkvm's
//! own rather than candidates for the kernel crate. `vzalloc`/`vfree` stay raw because
//! the nVHE backend maps the memory at EL2 page by page.
//!
//! The current task's ids and `mm` come from C helpers, not from the kernel crate's
//! `Task::pid`, `tgid` and `CurrentTask::mm`: those read `task_struct` through the
//! crate's bindgen layout, in which the empty `stats` member (`struct sched_statistics`
//! without `CONFIG_SCHEDSTATS`) has lost its `____cacheline_aligned`, so on the test
//! kernel every later field is 0x30 bytes before where C has it (`mm` at 0x3c8, not
//! 0x3f8) and a vCPU thread failed the VM's owner check. Switch once bindgen keeps the
//! alignment.

use super::bindings;
use core::{ffi::c_void, ptr::NonNull};
use kernel::prelude::*;

/// A physical address.
pub(crate) type PhysAddr = u64;

/// A reference on the page behind a user address of the current process, taken by a
/// stage-2 fault for as long as it maps the page (KVM's `kvm_follow_pfn` with `FOLL_GET`).
///
/// # Invariants
///
/// `page` holds one page reference owned by this value, released on drop.
pub(crate) struct GuestPage {
    page: NonNull<bindings::page>,
    /// Whether to mark the page dirty on release.
    dirty: bool,
}

impl GuestPage {
    /// Faults in and takes a reference on the user page at `hva` (writable, breaking
    /// copy-on-write, if `write`). May sleep; no lock an MMU notifier takes may be held.
    pub(crate) fn get(hva: u64, write: bool) -> Result<Self> {
        let mut page: *mut bindings::page = core::ptr::null_mut();
        // SAFETY: `page` has room for the one page requested; `hva` is only used as a user
        // address, validated by GUP against the current mm.
        let n = unsafe { bindings::rkvm_get_user_page(hva as usize, write, &mut page) };
        if n < 0 {
            return Err(Error::from_errno(n));
        }
        match NonNull::new(page) {
            // INVARIANT: GUP returned one page with a reference taken for us.
            Some(page) if n == 1 => Ok(Self { page, dirty: false }),
            _ => Err(EFAULT),
        }
    }

    /// The page's physical address.
    pub(crate) fn phys(&self) -> PhysAddr {
        // SAFETY: the reference keeps the `struct page` live.
        unsafe { bindings::rkvm_page_to_phys(self.page.as_ptr()) }
    }

    /// Marks the page dirty when it is released: it was mapped writable at stage 2.
    pub(crate) fn set_dirty(&mut self) {
        self.dirty = true;
    }
}

impl Drop for GuestPage {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the reference is ours to drop.
        unsafe { bindings::rkvm_put_user_page(self.page.as_ptr(), self.dirty) };
    }
}

/// Whether the current process maps `hva` with a huge page of at least 2 MiB at the
/// level of its page tables (a PMD-mapped transparent huge page, a hugetlb page): the
/// 2 MiB around it are then one physically contiguous, aligned run (KVM's
/// `get_user_mapping_size`). Only a hint unless the caller excludes invalidations of
/// `hva` (the MMU lock with no invalidation in progress).
pub(crate) fn user_mapping_huge(hva: u64) -> bool {
    // SAFETY: a lockless walk of the current mm's tables with interrupts off.
    unsafe { bindings::rkvm_user_mapping_huge(hva as usize) }
}

/// Allocates `1 << order` zeroed, physically contiguous pages charged to the caller's
/// memory cgroup, and returns their physical address.
pub(crate) fn alloc_table_pages(order: u32) -> Result<PhysAddr> {
    let flags = kernel::bindings::GFP_KERNEL_ACCOUNT | kernel::bindings::__GFP_ZERO;
    // SAFETY: plain page allocation.
    let va = unsafe { bindings::get_free_pages_noprof(flags, order) };
    if va == 0 {
        return Err(ENOMEM);
    }
    // SAFETY: `va` is a linear-map address just allocated.
    Ok(unsafe { bindings::rkvm_virt_to_phys(va as *const c_void) })
}

/// Frees pages from [`alloc_table_pages`].
///
/// # Safety
///
/// `pa` and `order` come from one [`alloc_table_pages`] call, and nothing (including the
/// MMU: the tables must be unreachable and the TLBs clean) uses the pages any more.
pub(crate) unsafe fn free_table_pages(pa: PhysAddr, order: u32) {
    // SAFETY: by the caller's guarantee.
    unsafe { bindings::free_pages(bindings::rkvm_phys_to_virt(pa) as usize, order) };
}

/// The kernel address of 64-bit entry `index` of the table page at `table`.
///
/// # Safety
///
/// `table` is a live page from [`alloc_table_pages`] and `index` < 512 times the number
/// of pages in that allocation.
pub(crate) unsafe fn table_entry(table: PhysAddr, index: usize) -> *mut u64 {
    // SAFETY: by the caller's guarantee the address is in a live linear-map page.
    unsafe { bindings::rkvm_phys_to_virt(table).cast::<u64>().add(index) }
}

/// The end of the user address space (`TASK_SIZE`).
pub(crate) fn task_size() -> u64 {
    // SAFETY: reads a constant of the current task.
    unsafe { bindings::rkvm_task_size() as u64 }
}

/// The current process's id (thread-group id) in the initial pid namespace.
pub(crate) fn current_tgid() -> i32 {
    // SAFETY: reads a field of `current`.
    unsafe { bindings::rkvm_current_tgid() }
}

/// The calling thread's id (`task_pid_nr(current)`), which KVM's stats ids name.
pub(crate) fn current_pid() -> i32 {
    // SAFETY: reads a field of `current`.
    unsafe { bindings::rkvm_current_pid() }
}

/// The current process's `mm`, as an identity to compare against (never dereferenced).
pub(crate) fn current_mm() -> usize {
    // SAFETY: reads `current->mm`.
    unsafe { bindings::rkvm_current_mm() as usize }
}

/// The kernel linear-map address of physical address `pa` (RAM only).
pub(crate) fn linear_address(pa: PhysAddr) -> usize {
    // SAFETY: pure address arithmetic on the linear map.
    unsafe { bindings::rkvm_phys_to_virt(pa) as usize }
}

/// Allocates `size` bytes of zeroed, page-aligned vmalloc memory (mappable at EL2 page by
/// page, see `hyp/nvhe.rs`).
pub(crate) fn vzalloc(size: usize) -> Result<*mut u8> {
    // SAFETY: plain allocation.
    let p = unsafe { bindings::rkvm_vzalloc(size as kernel::ffi::c_ulong) };
    if p.is_null() {
        Err(ENOMEM)
    } else {
        Ok(p.cast())
    }
}

/// Frees memory from [`vzalloc`].
///
/// # Safety
///
/// `p` came from [`vzalloc`] and nothing (EL2 included) uses it any more.
pub(crate) unsafe fn vfree(p: *mut u8) {
    // SAFETY: by the caller's guarantee.
    unsafe { bindings::rkvm_vfree(p.cast()) }
}

/// The physical address behind a vmalloc or module address.
pub(crate) fn vmalloc_to_phys(va: usize) -> PhysAddr {
    // SAFETY: `vmalloc_to_pfn` walks the kernel's tables; an address without a mapping
    // gives pfn 0, never a fault.
    unsafe { bindings::rkvm_vmalloc_to_phys(va as *const c_void) }
}
