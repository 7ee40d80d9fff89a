// SPDX-License-Identifier: GPL-2.0

//! A VM's guest-physical memory: its memslots and the stage-2 tables built from them.
//!
//! KVM counterpart: `arch/arm64/kvm/mmu.c` (`user_mem_abort`, `kvm_arch_flush_shadow_*`)
//! over `virt/kvm/kvm_main.c`'s memslots. Tables are filled lazily, one page per guest
//! fault. Each mapped page is pinned in the VMM's memory while mapped; the tables are the
//! only record of the pins, and unmapping a range unpins what it removes.
//!
//! Dirty logging (`kvm_get_dirty_log_protect`, `kvm_clear_dirty_log_protect`,
//! `kvm_arch_mmu_enable_log_dirty_pt_masked`): a slot with `KVM_MEM_LOG_DIRTY_PAGES` has a
//! bitmap (`logic::dirtylog`); its pages are mapped writable only by a write fault, which
//! marks them, and clearing a bit write-protects its page again. So a page of a tracked
//! slot is writable at stage 2 only while its bit is set.
//!
//! Locking: the whole state sits in the VM's `mmu` mutex (Documentation/design.rst,
//! "Locking"); the fault path
//! may sleep under it (pinning faults the page in), so it is a mutex, not a spinlock.

use crate::{
    hyp,
    logic::{
        dirtylog::{self, Bitmap, ClearRange, Mode},
        memslot::{Change, Memslot, Memslots, Request},
        pgtable::{Geometry, Prot, Stage2, TableMemory, PAGE_SIZE},
        traps,
    },
    sys::mm::{self, PhysAddr},
};
use core::sync::atomic::AtomicU64;
use kernel::{
    alloc::KVVec,
    prelude::*,
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

/// What a guest fault at an IPA found.
pub(crate) enum Fault {
    /// The page is (now) mapped: re-enter the guest.
    Mapped,
    /// No memslot covers the IPA, or a write hit a read-only slot: emulated MMIO.
    Mmio,
}

/// The dirty bitmap of the slot with id `id` (which has `KVM_MEM_LOG_DIRTY_PAGES`).
struct DirtyLog {
    id: u16,
    /// `dirtylog::bitmap_words(npages)` words (vmalloc'ed when large, as KVM's).
    words: KVVec<AtomicU64>,
}

/// Memslots plus stage-2 tables of one VM.
pub(crate) struct Mmu {
    slots: KBox<Memslots>,
    s2: Stage2,
    vttbr: u64,
    /// VMID-wide TLB invalidations while the VM lives (stats: `remote_tlb_flush`).
    tlb_flushes: u64,
    /// Guest pages mapped at stage 2 (stats: `pages_4k`).
    mapped_pages: u64,
    /// The bitmaps of the slots that log dirty pages, one per such slot.
    dirty: KVec<DirtyLog>,
    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`'s options.
    dirty_mode: Mode,
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
            dirty: KVec::new(),
            dirty_mode: Mode::default(),
        })
    }

    /// The stats counters: TLB invalidations and mapped pages.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.tlb_flushes, self.mapped_pages)
    }

    /// VTTBR_EL2 of the VM.
    pub(crate) fn vttbr(&self) -> u64 {
        self.vttbr
    }

    /// Applies `KVM_SET_USER_MEMORY_REGION{,2}`; unmaps (and unpins) what a delete or a
    /// move takes away before the guest can fault on the new layout.
    ///
    /// A slot that starts logging gets a bitmap (all set with `INITIALLY_SET`), allocated
    /// before anything changes so a failure leaves the VM as it was
    /// (`kvm_prepare_memory_region`); a move keeps it. Unless `INITIALLY_SET`, what is
    /// mapped in a slot that logs is write-protected (`kvm_arch_commit_memory_region`).
    pub(crate) fn set_region(&mut self, req: &Request) -> Result {
        let ipa_limit = self.s2.geometry().ipa_limit();
        let change = self.slots.check(req, ipa_limit, mm::task_size())?;
        let logging = match change {
            Change::Create(new) | Change::Move { new, .. } | Change::FlagsOnly { new, .. } => {
                Some(new).filter(Memslot::has_dirty_log)
            }
            Change::Delete(_) | Change::Nothing => None,
        };
        if let Some(new) = logging.filter(|new| self.log_index(new.id).is_none()) {
            self.dirty.reserve(1, GFP_KERNEL_ACCOUNT)?;
            let log = self.alloc_log(&new)?;
            // Cannot fail: the room was reserved above.
            self.dirty.push(log, GFP_KERNEL_ACCOUNT)?;
        }
        match change {
            Change::Delete(old) | Change::Move { old, .. } => self.unmap(&old),
            Change::Create(_) | Change::FlagsOnly { .. } | Change::Nothing => {}
        }
        self.slots.apply(change);
        match change {
            Change::Delete(old) => self.drop_log(old.id),
            Change::Move { new, .. } | Change::FlagsOnly { new, .. } if logging.is_none() => {
                self.drop_log(new.id)
            }
            _ => {}
        }
        if let Some(new) = logging {
            if !self.dirty_mode.initially_set() {
                self.write_protect(new.start_ipa(), new.end_ipa());
            }
        }
        Ok(())
    }

    /// A zeroed bitmap for `slot`, all set if the VM asked for `INITIALLY_SET`.
    fn alloc_log(&self, slot: &Memslot) -> Result<DirtyLog> {
        let n = dirtylog::bitmap_words(slot.npages);
        let mut words = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..n {
            words
                .push_within_capacity(AtomicU64::new(0))
                .map_err(|_| ENOMEM)?;
        }
        if self.dirty_mode.initially_set() {
            Bitmap::new(&words, slot.npages).set_all();
        }
        Ok(DirtyLog { id: slot.id, words })
    }

    fn log_index(&self, id: u16) -> Option<usize> {
        self.dirty.iter().position(|l| l.id == id)
    }

    fn drop_log(&mut self, id: u16) {
        self.dirty.retain(|l| l.id != id);
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

    /// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`: the options for the dirty-log ioctls and for
    /// slots that start logging from now on.
    pub(crate) fn set_dirty_mode(&mut self, mode: Mode) {
        self.dirty_mode = mode;
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

    /// Handles a stage-2 fault at `ipa`: maps the page if a memslot backs it (read-only
    /// slots only for reads and fetches).
    ///
    /// In a slot that tracks dirty pages a read or fetch maps the page read-only and a
    /// write maps it writable and marks it (KVM's `kvm_s2_fault_compute_prot`); a write
    /// to a page mapped read-only in a writable slot (write-protected for the dirty log)
    /// makes it writable and marks it (`kvm_pgtable_stage2_relax_perms`).
    ///
    /// `write` is KVM's `kvm_is_write_fault`: a write, a stage-1 walk (the walker may
    /// update descriptors) or cache maintenance (`maint`), which the architecture reports
    /// as a write. On a read-only slot, cache maintenance maps the page for reading.
    pub(crate) fn fault(&mut self, ipa: u64, write: bool, maint: bool) -> Result<Fault> {
        let gfn = ipa / PAGE_SIZE;
        let Some(slot) = self.slots.find(gfn).copied() else {
            return Ok(Fault::Mmio);
        };
        let write = write && !(maint && slot.readonly());
        if write && slot.readonly() {
            return Ok(Fault::Mmio);
        }
        let ipa = gfn * PAGE_SIZE;
        if let Some(desc) = self.s2.lookup(&KernelTables, ipa) {
            // Another vCPU mapped it first, or it is write-protected. The page is pinned
            // writable already (the slot is), so only the descriptor changes; a stale
            // read-only TLB entry could fault again, so invalidate (KVM: by IPA).
            if write && !desc.writable() && self.s2.make_writable(&mut KernelTables, ipa) {
                self.flush_tlbs();
                self.mark_dirty(&slot, gfn);
            }
            return Ok(Fault::Mapped);
        }
        let pa = mm::pin_guest_page(slot.hva(gfn), !slot.readonly())?;
        let va = mm::linear_address(pa);
        hyp::cache::sync_guest_page(va, PAGE_SIZE as usize);
        let prot = Prot {
            write: !slot.readonly() && (write || !slot.dirty_tracked()),
            exec: true,
        };
        match self.s2.map(&mut KernelTables, ipa, pa, prot) {
            Ok(()) => {
                self.mapped_pages += 1;
                if prot.write {
                    self.mark_dirty(&slot, gfn);
                }
                Ok(Fault::Mapped)
            }
            Err(e) => {
                // SAFETY: pinned just above and not mapped anywhere.
                unsafe { mm::unpin_guest_page(pa) };
                Err(e.into())
            }
        }
    }

    /// Copies guest memory at `ipa` into `buf`, through the VMM's mapping of the memslot
    /// (KVM's `kvm_read_guest`). `EFAULT` unless one memslot holds the whole range. The
    /// caller is a thread of the VMM (the VM's fds only work there), and the memslots
    /// cannot change while `self` is locked.
    pub(crate) fn read_guest(&self, ipa: u64, buf: &mut [u8]) -> Result {
        let hva = self
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
            .slots
            .hva_range(ipa, data.len() as u64, true)
            .ok_or(EFAULT)?;
        UserSlice::new(UserPtr::from_addr(hva as usize), data.len())
            .writer()
            .write_slice(data)?;
        // `hva_range` found one slot holding the whole range.
        if let Some(slot) = self.slots.find(ipa / PAGE_SIZE).copied() {
            let last = (ipa + data.len() as u64 - 1) / PAGE_SIZE;
            for gfn in ipa / PAGE_SIZE..=last {
                self.mark_dirty(&slot, gfn);
            }
        }
        Ok(())
    }

    /// Whether a writable memslot backs `ipa` (KVM's `gfn_to_hva` check).
    pub(crate) fn writable(&self, ipa: u64) -> bool {
        self.slots.hva_range(ipa, 1, true).is_some()
    }

    /// Unmaps and unpins everything in `slot`'s range, then invalidates the TLBs.
    fn unmap(&mut self, slot: &Memslot) {
        self.unmap_range(slot.start_ipa(), slot.end_ipa());
    }

    /// Unmaps and unpins everything mapped in `[start, end)`.
    ///
    /// A page is unpinned only after a TLB invalidation that follows the removal of its
    /// descriptor, so no vCPU can reach it once the VMM may reuse it. Pages are unpinned
    /// in batches, one VMID-wide invalidation per batch.
    pub(crate) fn unmap_range(&mut self, start: u64, end: u64) {
        let vttbr = self.vttbr;
        let mut batch = UnpinBatch {
            pages: [0; UnpinBatch::SIZE],
            len: 0,
            flushes: 0,
        };
        let mut unmapped = 0;
        self.s2
            .unmap_range(&mut KernelTables, start, end, |_, desc| {
                if batch.len == UnpinBatch::SIZE {
                    batch.release(vttbr);
                }
                batch.pages[batch.len] = desc.output_address();
                batch.len += 1;
                unmapped += 1;
            });
        batch.release(vttbr);
        self.tlb_flushes += batch.flushes;
        self.mapped_pages = self.mapped_pages.saturating_sub(unmapped);
    }
}

/// Pages whose descriptors are gone but whose pins are still held.
struct UnpinBatch {
    pages: [PhysAddr; Self::SIZE],
    len: usize,
    /// Invalidations issued.
    flushes: u64,
}

impl UnpinBatch {
    const SIZE: usize = 64;

    /// Invalidates the VM's TLB entries, then unpins the batch.
    fn release(&mut self, vttbr: u64) {
        if self.len == 0 {
            return;
        }
        hyp::tlb_flush_vmid(vttbr);
        self.flushes += 1;
        for pa in &self.pages[..self.len] {
            // SAFETY: each page was pinned when mapped, its descriptor was removed, and
            // the invalidation above ended every translation to it.
            unsafe { mm::unpin_guest_page(*pa) };
        }
        self.len = 0;
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
        self.unmap_range(0, geometry.ipa_limit());
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
