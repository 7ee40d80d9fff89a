// SPDX-License-Identifier: GPL-2.0

//! A VM's guest-physical memory: its memslots and the stage-2 tables built from them.
//!
//! KVM counterpart: `arch/arm64/kvm/mmu.c` (`user_mem_abort`, `kvm_arch_flush_shadow_*`,
//! `kvm_unmap_gfn_range`, `kvm_age_gfn`) over `virt/kvm/kvm_main.c`'s memslots and MMU
//! notifiers. Tables are filled lazily, one page per guest fault.
//!
//! Guest pages are not pinned: a fault takes a page reference only while it maps the page
//! (`GuestPage`), and the VMM's MMU notifier unmaps a range at stage 2 and invalidates
//! the TLBs before the host frees, migrates, swaps or replaces its pages
//! (`invalidate_start`). A fault that raced such an invalidation (its page looked up
//! before the invalidation finished) drops the page and lets the guest fault again, as
//! KVM's `mmu_invalidate_retry`: `Mmu::invalidating` counts invalidations in progress and
//! `Mmu::invalidate_seq` finished ones. Ageing (`clear_young`) clears stage-2 access
//! flags; the guest's next access faults and sets the flag again.
//!
//! Dirty logging (`kvm_get_dirty_log_protect`, `kvm_clear_dirty_log_protect`,
//! `kvm_arch_mmu_enable_log_dirty_pt_masked`): a slot with `KVM_MEM_LOG_DIRTY_PAGES` has a
//! bitmap (`logic::dirtylog`); its pages are mapped writable only by a write fault, which
//! marks them, and clearing a bit write-protects its page again. So a page of a tracked
//! slot is writable at stage 2 only while its bit is set.
//!
//! Locking: the state sits in `GuestMemory::mmu` (Documentation/design.rst, "Locking"),
//! which the MMU notifier takes from reclaim, compaction and munmap. So nothing under it
//! may fault in user memory, copy from or to userspace, or allocate memory that could
//! recurse into reclaim: faults look pages up and allocate tables (`TableCache`) between
//! two sections under it, guest copies go through the VMM's mapping outside it, and dirty
//! bitmaps are allocated and freed outside it.

use crate::{
    hyp,
    logic::{
        dirtylog::{self, Bitmap, ClearRange, Mode},
        memslot::{Change, Memslot, Memslots, Request, Span},
        pgtable::{Geometry, MapError, Prot, Stage2, TableMemory, BLOCK_SIZE, PAGE_SIZE},
        traps,
    },
    sys::{
        mm::{self, GuestPage, PhysAddr},
        mmu_notifier::{MmuNotifierOps, Subscription},
    },
};
use core::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Release},
};
use kernel::{
    alloc::KVVec,
    new_mutex,
    prelude::*,
    sync::{lock::mutex::MutexGuard, Mutex},
    uaccess::{UserPtr, UserSlice},
};

/// Table pages (stage 2, and the nVHE EL2 tables), reached through the kernel's linear
/// map.
pub(crate) struct KernelTables;

impl TableMemory for KernelTables {
    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a live table page of this VM (the walker only follows
        // descriptors rkvm wrote) and `index` is within it.
        unsafe { mm::table_entry(table, index).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // A new table's zeroes must be visible to the hardware walker before the
        // descriptor that links it; `alloc_table_pages` zeroes with normal stores.
        // SAFETY: a barrier.
        unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
        // SAFETY: as in `read`; a single aligned 64-bit store, atomic for the walker.
        unsafe { mm::table_entry(table, index).write_volatile(value) };
    }

    fn alloc_table(&mut self) -> Option<u64> {
        mm::alloc_table_pages(0).ok()
    }
}

// SAFETY: `Memslots` is integers and arrays of integer structs; all-zero is the empty set
// (`len` 0), identical to `Memslots::new()`.
unsafe impl Zeroable for Memslots {}

/// Table pages allocated ahead of a stage-2 fault, outside the MMU lock (KVM's
/// `kvm_mmu_memory_cache`), so that mapping under the lock never allocates. One per vCPU;
/// what a fault does not use is kept for the next.
pub(crate) struct TableCache {
    pages: [PhysAddr; Self::SIZE],
    len: usize,
}

impl TableCache {
    /// Enough for any walk: at most three tables below the root (start level 0).
    const SIZE: usize = 3;

    pub(crate) const fn new() -> Self {
        Self {
            pages: [0; Self::SIZE],
            len: 0,
        }
    }

    /// Allocates until the cache holds `n` tables (`n` <= `SIZE`). May sleep and reclaim.
    fn top_up(&mut self, n: usize) -> Result {
        while self.len < n.min(Self::SIZE) {
            self.pages[self.len] = mm::alloc_table_pages(0)?;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for TableCache {
    fn drop(&mut self) {
        for &pa in &self.pages[..self.len] {
            // SAFETY: allocated by `top_up` and never handed out, so nothing uses it.
            unsafe { mm::free_table_pages(pa, 0) };
        }
    }
}

/// [`KernelTables`] whose new tables come from a [`TableCache`].
struct CachedTables<'a>(&'a mut TableCache);

impl TableMemory for CachedTables<'_> {
    fn read(&self, table: u64, index: usize) -> u64 {
        KernelTables.read(table, index)
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        KernelTables.write(table, index, value)
    }

    fn alloc_table(&mut self) -> Option<u64> {
        let cache = &mut *self.0;
        cache.len = cache.len.checked_sub(1)?;
        Some(cache.pages[cache.len])
    }
}

/// What a guest fault at an IPA found.
pub(crate) enum Fault {
    /// The page is (now) mapped, or an invalidation raced the fault: re-enter the guest,
    /// which faults again if it still needs the page.
    Mapped,
    /// No memslot covers the IPA, or a write hit a read-only slot: emulated MMIO.
    Mmio,
}

/// A VM's guest memory: memslots and stage 2 under the MMU lock, kept coherent with the
/// VMM's address space by an MMU notifier.
#[pin_data]
pub(crate) struct GuestMemory {
    /// First, so that it is unregistered (waiting for callbacks in flight) before the
    /// state its callbacks use is dropped.
    #[pin]
    notifier: Subscription<GuestMemory>,
    /// The MMU lock. Never held across an allocation that may reclaim, a user copy or a
    /// page fault: the notifier takes it from reclaim and from the MM's own paths.
    #[pin]
    mmu: Mutex<Mmu>,
    /// Tables a fault may have to add below the root.
    walk_tables: usize,
    /// `Memslots::span` of the current slots, stored after each change under the MMU
    /// lock: an MMIO exit outside it needs no lock to know that no slot backs it. A
    /// fault racing a memslot change may see the old span, as a KVM fault may see the
    /// old memslots under SRCU.
    span: AtomicU64,
}

impl GuestMemory {
    /// Guest memory with `mmu`'s (empty) state, not yet subscribed to the VMM's address
    /// space ([`Self::register`]).
    pub(crate) fn new(mmu: Mmu) -> impl PinInit<Self> {
        let walk_tables = (3 - mmu.s2.geometry().start_level) as usize;
        pin_init!(Self {
            notifier <- Subscription::new(),
            mmu <- new_mutex!(mmu, "GuestMemory::mmu"),
            walk_tables,
            span: AtomicU64::new(Span::EMPTY.0),
        })
    }

    /// Subscribes to the current process's address space: the VMM whose memory backs the
    /// memslots (KVM's `kvm_init_mmu_notifier`).
    pub(crate) fn register(&self) -> Result {
        // SAFETY: the subscription is a field of `self`, so `self` outlives it.
        unsafe { self.notifier.register(self) }
    }

    /// The MMU state, for operations that neither fault pages in nor touch userspace.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Mmu> {
        self.mmu.lock()
    }

    /// Handles a stage-2 fault at `ipa`: maps the page if a memslot backs it (read-only
    /// slots only for reads and fetches), using `tables` for new tables (KVM's
    /// `user_mem_abort`).
    ///
    /// In a slot that tracks dirty pages a read or fetch maps the page read-only and a
    /// write maps it writable and marks it (KVM's `kvm_s2_fault_compute_prot`); a write
    /// to a page mapped read-only in a writable slot (write-protected for the dirty log)
    /// makes it writable and marks it (`kvm_pgtable_stage2_relax_perms`); an access to a
    /// page aged by the host sets its access flag (`kvm_pgtable_stage2_mkyoung`).
    ///
    /// `write` is KVM's `kvm_is_write_fault`: a write, a stage-1 walk (the walker may
    /// update descriptors) or cache maintenance (`maint`), which the architecture reports
    /// as a write. On a read-only slot, cache maintenance maps the page for reading.
    ///
    /// The page is looked up and the tables allocated between two sections under the
    /// MMU lock; if an invalidation started or finished in between, nothing is mapped.
    pub(crate) fn fault(
        &self,
        tables: &mut TableCache,
        ipa: u64,
        write: bool,
        maint: bool,
    ) -> Result<Fault> {
        if !Span(self.span.load(Acquire)).may_hold(ipa) {
            // Emulated MMIO (the vGIC, devices), which lies outside RAM.
            return Ok(Fault::Mmio);
        }
        let gfn = ipa / PAGE_SIZE;
        let ipa = gfn * PAGE_SIZE;
        let (slot, write, seq) = {
            let mut mmu = self.mmu.lock();
            let Some(slot) = mmu.slots.find(gfn).copied() else {
                return Ok(Fault::Mmio);
            };
            let write = write && !(maint && slot.readonly());
            if write && slot.readonly() {
                return Ok(Fault::Mmio);
            }
            if mmu.update_mapped(&slot, gfn, write) {
                return Ok(Fault::Mapped);
            }
            (slot, write, mmu.invalidate_seq)
        };
        tables.top_up(self.walk_tables)?;
        let hva = slot.hva(gfn);
        // A 2 MiB block where the VMM maps a huge page and the slot's layout allows it
        // (KVM's `transparent_hugepage_adjust`); never in a slot that tracks dirty pages,
        // whose writes are logged page by page.
        let block =
            !slot.dirty_tracked() && slot.block_fits(gfn, BLOCK_SIZE) && mm::user_mapping_huge(hva);
        // A writable slot's page is taken writable even for a read, so that it can be
        // mapped writable (unless the slot logs dirty pages) and is not a shared zero or
        // copy-on-write page the guest would see replaced on its first write.
        let mut page = GuestPage::get(hva, !slot.readonly())?;
        let (first, size) = if block {
            (page.phys() - hva % BLOCK_SIZE, BLOCK_SIZE)
        } else {
            (page.phys(), PAGE_SIZE)
        };
        hyp::cache::sync_guest_page(mm::linear_address(first), size as usize);
        let mut mmu = self.mmu.lock();
        if mmu.invalidating != 0 || mmu.invalidate_seq != seq {
            // The page may be the one an invalidation is taking away, or the slot may
            // be gone: map nothing, the guest faults again.
            return Ok(Fault::Mapped);
        }
        let prot = Prot {
            write: !slot.readonly() && (write || !slot.dirty_tracked()),
            exec: true,
        };
        // With no invalidation possible now, the VMM's tables say for sure whether the
        // huge page is still there.
        let mapped = if block && mm::user_mapping_huge(hva) {
            mmu.map_block(tables, ipa & !(BLOCK_SIZE - 1), first, prot)
        } else {
            mmu.map_page(tables, ipa, page.phys(), prot)
        };
        // `false`: another vCPU mapped it between the two sections.
        if mapped? && prot.write {
            page.set_dirty();
            mmu.mark_dirty(&slot, gfn);
        }
        // Released (marked dirty if mapped writable) while the lock still excludes an
        // invalidation of it, as KVM's `kvm_release_faultin_page`.
        drop(page);
        Ok(Fault::Mapped)
    }

    /// Copies guest memory at `ipa` into `buf`, through the VMM's mapping of the memslot
    /// (KVM's `kvm_read_guest`). `EFAULT` unless one memslot holds the whole range. The
    /// caller is a thread of the VMM (the VM's fds only work there); the copy runs
    /// outside the MMU lock, since it may fault.
    pub(crate) fn read_guest(&self, ipa: u64, buf: &mut [u8]) -> Result {
        let hva = self
            .mmu
            .lock()
            .slots
            .hva_range(ipa, buf.len() as u64, false)
            .ok_or(EFAULT)?;
        UserSlice::new(UserPtr::from_addr(hva as usize), buf.len())
            .reader()
            .read_slice(buf)
    }

    /// Copies `data` into guest memory at `ipa`, as [`Self::read_guest`]; a read-only
    /// memslot is `EFAULT` too (KVM's `kvm_write_guest`). The guest sees the bytes through
    /// its own mapping of the same pages, which the host's cacheable writes keep coherent.
    ///
    /// The pages written are marked in the slot's dirty log, as KVM's
    /// `mark_page_dirty_in_slot` after the copy.
    pub(crate) fn write_guest(&self, ipa: u64, data: &[u8]) -> Result {
        let hva = self
            .mmu
            .lock()
            .slots
            .hva_range(ipa, data.len() as u64, true)
            .ok_or(EFAULT)?;
        UserSlice::new(UserPtr::from_addr(hva as usize), data.len())
            .writer()
            .write_slice(data)?;
        let mmu = self.mmu.lock();
        // The slot that held the range may have changed meanwhile; mark what holds it now.
        if let Some(slot) = mmu.slots.find(ipa / PAGE_SIZE).copied() {
            let last = (ipa + data.len() as u64 - 1) / PAGE_SIZE;
            for gfn in ipa / PAGE_SIZE..=last.min(slot.base_gfn + slot.npages - 1) {
                mmu.mark_dirty(&slot, gfn);
            }
        }
        Ok(())
    }

    /// Whether a writable memslot backs `ipa` (KVM's `gfn_to_hva` check).
    pub(crate) fn writable(&self, ipa: u64) -> bool {
        self.mmu.lock().slots.hva_range(ipa, 1, true).is_some()
    }

    /// Applies `KVM_SET_USER_MEMORY_REGION{,2}`; the caller holds the VM's `slots_lock`,
    /// so the slots change nowhere else meanwhile. Unmaps what a delete or a move takes
    /// away before the guest can fault on the new layout.
    ///
    /// A slot that starts logging gets a bitmap (all set with `INITIALLY_SET`), allocated
    /// outside the MMU lock before anything changes, so a failure leaves the VM as it was
    /// (`kvm_prepare_memory_region`); a move keeps it. Unless `INITIALLY_SET`, what is
    /// mapped in a slot that logs is write-protected (`kvm_arch_commit_memory_region`).
    pub(crate) fn set_region(&self, req: &Request) -> Result {
        let (change, new_log) = {
            let mmu = self.mmu.lock();
            let change = mmu
                .slots
                .check(req, mmu.s2.geometry().ipa_limit(), mm::task_size())?;
            let new = match change {
                Change::Create(new) | Change::Move { new, .. } | Change::FlagsOnly { new, .. } => {
                    Some(new)
                        .filter(Memslot::has_dirty_log)
                        .filter(|new| mmu.log_index(new.id).is_none())
                }
                Change::Delete(_) | Change::Nothing => None,
            };
            (
                change,
                new.map(|new| (new, mmu.dirty.len() + 1, mmu.dirty_mode)),
            )
        };
        let new_log = match new_log {
            Some((slot, logs, mode)) => Some((
                DirtyLog::new(&slot, mode)?,
                KVec::with_capacity(logs, GFP_KERNEL_ACCOUNT)?,
            )),
            None => None,
        };
        let mut mmu = self.mmu.lock();
        let retired = mmu.commit_region(change, new_log);
        self.span.store(mmu.slots.span().0, Release);
        drop(mmu);
        // Freed once the lock is released.
        drop(retired);
        Ok(())
    }

    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`: the options for the dirty-log ioctls and for
    /// slots that start logging from now on.
    pub(crate) fn set_dirty_mode(&self, mode: Mode) {
        self.mmu.lock().dirty_mode = mode;
    }
}

impl MmuNotifierOps for GuestMemory {
    /// KVM's `kvm_mmu_notifier_invalidate_range_start`: from now until the matching end,
    /// no fault maps a page of the range; what is mapped now is unmapped, and the TLBs
    /// invalidated, before the MM changes the pages.
    fn invalidate_start(&self, start: u64, end: u64, blockable: bool) -> Result {
        let mut mmu = if blockable {
            self.mmu.lock()
        } else {
            // The OOM reaper: skip this mm rather than sleep on a fault in progress.
            self.mmu.try_lock().ok_or(EAGAIN)?
        };
        mmu.invalidating += 1;
        mmu.unmap_hva_range(start, end);
        Ok(())
    }

    fn invalidate_end(&self, _start: u64, _end: u64) {
        let mut mmu = self.mmu.lock();
        mmu.invalidate_seq += 1;
        // Saturating: a subscription registered while an invalidation was under way sees
        // its end without its start.
        mmu.invalidating = mmu.invalidating.saturating_sub(1);
    }

    /// KVM's `kvm_mmu_notifier_clear_flush_young`, `_clear_young` and `_test_young`.
    /// Called under page-table spinlocks, so the MMU lock is only tried: while a fault
    /// holds it the range counts as young, which only keeps its pages a while longer.
    fn age(&self, start: u64, end: u64, clear: bool, flush: bool) -> bool {
        let Some(mut mmu) = self.mmu.try_lock() else {
            return true;
        };
        mmu.age_hva_range(start, end, clear, flush)
    }

    /// KVM's `kvm_mmu_notifier_release`: the VMM's address space is going away, so its
    /// pages are too.
    fn release(&self) {
        let mut mmu = self.mmu.lock();
        let limit = mmu.s2.geometry().ipa_limit();
        mmu.unmap_range(0, limit);
        mmu.invalidate_seq += 1;
    }
}

/// Memslots plus stage-2 tables of one VM.
pub(crate) struct Mmu {
    slots: KBox<Memslots>,
    s2: Stage2,
    vttbr: u64,
    /// VMID-wide TLB invalidations while the VM lives (stats: `remote_tlb_flush`).
    tlb_flushes: u64,
    /// Guest pages mapped at stage 2 with 4 KiB pages (stats: `pages_4k`).
    mapped_pages: u64,
    /// 2 MiB blocks mapped at stage 2 (stats: `pages_2m`).
    mapped_blocks: u64,
    /// The bitmaps of the slots that log dirty pages, one per such slot.
    dirty: KVec<DirtyLog>,
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`'s options.
    dirty_mode: Mode,
    /// MMU-notifier invalidations in progress (KVM's `mmu_invalidate_in_progress`).
    invalidating: u32,
    /// Completed invalidations and memslot changes (KVM's `mmu_invalidate_seq`): a fault
    /// maps nothing if it changed while it looked its page up.
    invalidate_seq: u64,
}

/// The dirty bitmap of the slot with id `id` (which has `KVM_MEM_LOG_DIRTY_PAGES`).
struct DirtyLog {
    id: u16,
    /// `dirtylog::bitmap_words(npages)` words (vmalloc'ed when large, as KVM's).
    words: KVVec<AtomicU64>,
}

impl DirtyLog {
    /// A zeroed bitmap for `slot`, all set if the VM asked for `INITIALLY_SET`.
    fn new(slot: &Memslot, mode: Mode) -> Result<Self> {
        let n = dirtylog::bitmap_words(slot.npages);
        let mut words = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..n {
            words
                .push_within_capacity(AtomicU64::new(0))
                .map_err(|_| ENOMEM)?;
        }
        if mode.initially_set() {
            Bitmap::new(&words, slot.npages).set_all();
        }
        Ok(Self { id: slot.id, words })
    }
}

/// What a memslot change took out of the MMU state, freed after the lock is released.
struct Retired {
    _logs: Option<KVec<DirtyLog>>,
    _log: Option<DirtyLog>,
}

impl Mmu {
    /// Empty tables for a VM of `geometry` using `vmid`.
    pub(crate) fn new(geometry: Geometry, vmid: u16) -> Result<Self> {
        let slots = KBox::init(pin_init::zeroed::<Memslots>(), GFP_KERNEL_ACCOUNT)?;
        let root = mm::alloc_table_pages(geometry.root_order())?;
        Ok(Self {
            slots,
            s2: Stage2::new(geometry, root),
            vttbr: traps::vttbr(root, vmid),
            tlb_flushes: 0,
            mapped_pages: 0,
            mapped_blocks: 0,
            dirty: KVec::new(),
            dirty_mode: Mode::default(),
            invalidating: 0,
            invalidate_seq: 0,
        })
    }

    /// The stats counters: TLB invalidations, mapped pages and mapped blocks.
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        (self.tlb_flushes, self.mapped_pages, self.mapped_blocks)
    }

    /// Maps the page at `ipa` to `pa`: whether it did (`false`: something maps it
    /// already).
    fn map_page(&mut self, tables: &mut TableCache, ipa: u64, pa: u64, prot: Prot) -> Result<bool> {
        match self.s2.map(&mut CachedTables(tables), ipa, pa, prot) {
            Ok(()) => {
                self.mapped_pages += 1;
                Ok(true)
            }
            Err(MapError::Exists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Maps the 2 MiB at `ipa` to `pa` with a block, replacing the table of pages that
    /// may be there by break-before-make: the table is unlinked, the TLBs invalidated
    /// (walk caches too), then it is freed and the block written. Whether it mapped.
    fn map_block(
        &mut self,
        tables: &mut TableCache,
        ipa: u64,
        pa: u64,
        prot: Prot,
    ) -> Result<bool> {
        let mut detached = false;
        loop {
            match self.s2.map_block(&mut CachedTables(tables), ipa, pa, prot) {
                Ok(()) => {
                    self.mapped_blocks += 1;
                    return Ok(true);
                }
                Err(MapError::Table) if !detached => {
                    if let Some((table, pages)) = self.s2.detach_table(&mut KernelTables, ipa) {
                        self.flush_tlbs();
                        // SAFETY: unlinked above and the TLBs invalidated since, so no
                        // walker reaches the table any more.
                        unsafe { mm::free_table_pages(table, 0) };
                        self.mapped_pages = self.mapped_pages.saturating_sub(pages as u64);
                    }
                    detached = true;
                }
                Err(MapError::Exists(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// VTTBR_EL2 of the VM.
    pub(crate) fn vttbr(&self) -> u64 {
        self.vttbr
    }

    /// The second half of [`GuestMemory::set_region`]: applies `change`, with `new_log`
    /// (the new slot's bitmap and a vector with room for every bitmap) if the slot starts
    /// logging. Returns what must be freed outside the lock.
    fn commit_region(
        &mut self,
        change: Change,
        new_log: Option<(DirtyLog, KVec<DirtyLog>)>,
    ) -> Retired {
        let mut retired = Retired {
            _logs: None,
            _log: None,
        };
        let logging = match change {
            Change::Create(new) | Change::Move { new, .. } | Change::FlagsOnly { new, .. } => {
                Some(new).filter(Memslot::has_dirty_log)
            }
            Change::Delete(_) | Change::Nothing => None,
        };
        if let Some((log, mut logs)) = new_log {
            // `logs` has room for every bitmap: the count cannot change under
            // `slots_lock`, so none of these pushes fails.
            for old in self.dirty.drain_all() {
                let _ = logs.push_within_capacity(old);
            }
            let _ = logs.push_within_capacity(log);
            retired._logs = Some(core::mem::replace(&mut self.dirty, logs));
        }
        match change {
            Change::Delete(old) | Change::Move { old, .. } => self.unmap(&old),
            Change::Create(_) | Change::FlagsOnly { .. } | Change::Nothing => {}
        }
        self.slots.apply(change);
        if !matches!(change, Change::Nothing) {
            // A fault that looked its page up in the old layout must not map it.
            self.invalidate_seq += 1;
        }
        retired._log = match change {
            Change::Delete(old) => self.take_log(old.id),
            Change::Move { new, .. } | Change::FlagsOnly { new, .. } if logging.is_none() => {
                self.take_log(new.id)
            }
            _ => None,
        };
        if let Some(new) = logging {
            if !self.dirty_mode.initially_set() {
                self.write_protect(new.start_ipa(), new.end_ipa());
            }
        }
        retired
    }

    fn log_index(&self, id: u16) -> Option<usize> {
        self.dirty.iter().position(|l| l.id == id)
    }

    /// Removes slot `id`'s bitmap, for the caller to free outside the lock.
    fn take_log(&mut self, id: u16) -> Option<DirtyLog> {
        let i = self.log_index(id)?;
        self.dirty.remove(i).ok()
    }
    /// The slot `id` and its dirty bitmap, for the dirty-log ioctls: `ENOENT` if there is
    /// no such slot or it does not log.
    fn logged_slot(&self, id: u16) -> Result<(Memslot, Bitmap<'_>)> {
        let slot = self.slots.by_id(id).copied().ok_or(ENOENT)?;
        let log = self
            .log_index(id)
            .and_then(|i| self.dirty.get(i))
            .ok_or(ENOENT)?;
        Ok((slot, Bitmap::new(&log.words, slot.npages)))
    }

    /// Marks frame `gfn` of `slot` dirty if the slot tracks writes
    /// (`mark_page_dirty_in_slot`).
    fn mark_dirty(&self, slot: &Memslot, gfn: u64) {
        if !slot.dirty_tracked() {
            return;
        }
        if let Some(log) = self.log_index(slot.id).and_then(|i| self.dirty.get(i)) {
            Bitmap::new(&log.words, slot.npages).mark(gfn - slot.base_gfn);
        }
    }

    /// Removes write permission from what is mapped in `[start, end)` and invalidates the
    /// VM's TLBs if anything changed (KVM's `kvm_stage2_wp_range` and flush).
    fn write_protect(&mut self, start: u64, end: u64) {
        if self.s2.write_protect_range(&mut KernelTables, start, end) != 0 {
            self.flush_tlbs();
        }
    }

    fn flush_tlbs(&mut self) {
        hyp::tlb_flush_vmid(self.vttbr);
        self.tlb_flushes += 1;
    }

    /// The size in bytes of slot `id`'s dirty bitmap as userspace receives it
    /// (`kvm_dirty_bitmap_bytes`): `ENOENT` if the slot does not exist or does not log.
    pub(crate) fn dirty_log_bytes(&self, id: u16) -> Result<usize> {
        Ok(self.logged_slot(id)?.1.words() * 8)
    }

    /// `KVM_GET_DIRTY_LOG` of slot `id` into `out` (`dirty_log_bytes(id)` bytes, which the
    /// caller copies to userspace after releasing the lock). Without manual protection the
    /// bits are taken, and the pages they name write-protected again, the TLBs invalidated
    /// before return so later writes are logged (`kvm_get_dirty_log_protect`).
    pub(crate) fn get_dirty_log(&mut self, id: u16, out: &mut [u8]) -> Result {
        let (slot, bitmap) = self.logged_slot(id)?;
        if out.len() != bitmap.words() * 8 {
            // The caller sized `out` for this slot with the slots held.
            return Err(EINVAL);
        }
        if self.dirty_mode.manual() {
            bitmap.copy_to(out);
            return Ok(());
        }
        if write_protect_runs(&self.s2, slot.start_ipa(), |protect| {
            bitmap.take_into(out, protect);
        }) {
            self.flush_tlbs();
        }
        Ok(())
    }

    /// The words of slot `id`'s bitmap a `KVM_CLEAR_DIRTY_LOG` of `num_pages` pages from
    /// `first_page` covers: `ENOENT` for a slot that does not log, `EINVAL` for a range
    /// KVM refuses. `first_page`'s alignment is checked before, as KVM does.
    pub(crate) fn clear_range(
        &self,
        id: u16,
        first_page: u64,
        num_pages: u32,
    ) -> Result<ClearRange> {
        let (slot, _) = self.logged_slot(id)?;
        Ok(dirtylog::clear_range(first_page, num_pages, slot.npages)?)
    }

    /// `KVM_CLEAR_DIRTY_LOG`: clears the bits of `range` userspace's bitmap `user` sets
    /// and write-protects the pages whose bit was really cleared, then invalidates the
    /// TLBs (`kvm_clear_dirty_log_protect`).
    pub(crate) fn clear_dirty_log(&mut self, id: u16, range: ClearRange, user: &[u8]) -> Result {
        let (slot, bitmap) = self.logged_slot(id)?;
        if range.first_word + range.words > bitmap.words() || user.len() < range.user_bytes() {
            return Err(EINVAL);
        }
        if write_protect_runs(&self.s2, slot.start_ipa(), |protect| {
            bitmap.clear(range, user, protect);
        }) {
            self.flush_tlbs();
        }
        Ok(())
    }

    /// For a fault on a page that is mapped already: sets its access flag if the host aged
    /// it, and makes it writable for a write if it was write-protected for the dirty log
    /// (the slot is writable; its page was taken writable). Returns whether the page was
    /// mapped.
    fn update_mapped(&mut self, slot: &Memslot, gfn: u64, write: bool) -> bool {
        let ipa = gfn * PAGE_SIZE;
        let Some(desc) = self.s2.lookup(&KernelTables, ipa) else {
            return false;
        };
        if write && desc.is_block() && slot.dirty_tracked() {
            // Dirty logging tracks 4 KiB pages: break the block up; the fault maps the
            // page and later faults the rest.
            let first = ipa & !(BLOCK_SIZE - 1);
            self.unmap_range(first, first + BLOCK_SIZE);
            return false;
        }
        if !desc.young() {
            self.s2.make_young(&mut KernelTables, ipa);
        }
        // Another vCPU mapped it first, or it is write-protected. A stale read-only TLB
        // entry could fault again, so invalidate (KVM: by IPA).
        if write && !desc.writable() && self.s2.make_writable(&mut KernelTables, ipa) {
            self.flush_tlbs();
            self.mark_dirty(slot, gfn);
        }
        true
    }

    /// Unmaps, at stage 2, whatever user addresses `[start, end)` back in any slot.
    fn unmap_hva_range(&mut self, start: u64, end: u64) {
        let (mut leaves, mut blocks) = (0, 0);
        for (lo, hi) in self.slots.ipa_ranges_of_hva(start, end) {
            leaves += self.s2.unmap_range(&mut KernelTables, lo, hi, |_, d| {
                blocks += usize::from(d.is_block());
            });
        }
        self.unmapped(leaves - blocks, blocks);
    }

    /// Whether a page that user addresses `[start, end)` back was accessed since the last
    /// ageing, clearing the access flags if `clear` and invalidating the TLBs if `flush`
    /// (KVM's `kvm_age_gfn`, `kvm_test_age_gfn`).
    fn age_hva_range(&mut self, start: u64, end: u64, clear: bool, flush: bool) -> bool {
        let mut young = false;
        for (lo, hi) in self.slots.ipa_ranges_of_hva(start, end) {
            young |= self.s2.age_range(&mut KernelTables, lo, hi, clear);
        }
        if young && clear && flush {
            self.flush_tlbs();
        }
        young
    }

    /// Unmaps everything in `slot`'s range, then invalidates the TLBs.
    fn unmap(&mut self, slot: &Memslot) {
        self.unmap_range(slot.start_ipa(), slot.end_ipa());
    }

    /// Unmaps everything mapped in `[start, end)` and invalidates the TLBs if anything
    /// was, so no vCPU reaches the pages afterwards.
    pub(crate) fn unmap_range(&mut self, start: u64, end: u64) {
        let mut blocks = 0;
        let leaves = self.s2.unmap_range(&mut KernelTables, start, end, |_, d| {
            blocks += usize::from(d.is_block());
        });
        self.unmapped(leaves - blocks, blocks);
    }

    /// Accounts for `pages` pages and `blocks` blocks removed, invalidating the TLBs if
    /// there were any.
    fn unmapped(&mut self, pages: usize, blocks: usize) {
        if pages + blocks != 0 {
            self.flush_tlbs();
            self.mapped_pages = self.mapped_pages.saturating_sub(pages as u64);
            self.mapped_blocks = self.mapped_blocks.saturating_sub(blocks as u64);
        }
    }
}

/// Removes write permission from the pages of each run `[first, end)` that `runs` reports
/// (page numbers from `start_ipa`, as a dirty bitmap counts them); whether any descriptor
/// changed, so that the caller invalidates the TLBs once for all of them.
fn write_protect_runs(
    s2: &Stage2,
    start_ipa: u64,
    runs: impl FnOnce(&mut dyn FnMut(u64, u64)),
) -> bool {
    let mut changed = 0;
    runs(&mut |first, end| {
        changed += s2.write_protect_range(
            &mut KernelTables,
            start_ipa + first * PAGE_SIZE,
            start_ipa + end * PAGE_SIZE,
        );
    });
    changed != 0
}

impl Drop for Mmu {
    fn drop(&mut self) {
        let geometry = self.s2.geometry();
        // Walk caches may still hold table entries: invalidate before freeing tables.
        hyp::tlb_flush_vmid(self.vttbr);
        self.s2.for_each_table(&KernelTables, |table| {
            // SAFETY: no descriptor of a live VM points here any more (the VM is going
            // away and no vCPU runs), and the TLBs were invalidated above.
            unsafe { mm::free_table_pages(table, 0) };
        });
        // SAFETY: as above, for the root.
        unsafe { mm::free_table_pages(self.s2.root(), geometry.root_order()) };
    }
}
