// SPDX-License-Identifier: GPL-2.0

//! Guest memory slots: the validation rules of `KVM_SET_USER_MEMORY_REGION(2)` and a sorted,
//! fixed-capacity slot set for guest-physical lookups.
//!
//! KVM counterpart: `kvm_set_memory_region()` and `check_memory_region_flags()` in
//! `virt/kvm/kvm_main.c`, plus the IPA-size refusal of arm64's
//! `kvm_arch_prepare_memory_region()`. KVM allocates a slot per region and keeps them in
//! trees; rkvm keeps them in an array embedded in the VM, so updates never allocate and a
//! lookup is a binary search over slots ordered by base frame.

use super::dirtylog::KVM_MEM_LOG_DIRTY_PAGES;

/// The granule rkvm maps guest memory with (4 KiB host pages).
pub(crate) const PAGE_SIZE: u64 = 4096;
const PAGE_SHIFT: u32 = 12;

/// `KVM_MEM_READONLY`: guest writes to the slot exit to userspace as MMIO.
pub(crate) const KVM_MEM_READONLY: u32 = 1 << 1;

/// The flags a slot may have: `KVM_MEM_LOG_DIRTY_PAGES` (`logic::dirtylog`) and
/// `KVM_MEM_READONLY`. `KVM_MEM_GUEST_MEMFD` (`1 << 2`) is refused like an unknown flag,
/// since rkvm has no guest_memfd.
const VALID_FLAGS: u32 = KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY;

/// Number of user slots rkvm supports; the value of `KVM_CAP_NR_MEMSLOTS`.
pub(crate) const MAX_SLOTS: usize = 512;

/// `KVM_MEM_MAX_NR_PAGES`: KVM caps a user slot so a dirty bitmap index fits an `int`.
/// rkvm keeps the limit so that sizes KVM refuses are refused here too.
const MAX_NR_PAGES: u64 = (1 << 31) - 1;

/// One guest-physical range backed by userspace memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Memslot {
    /// The slot number userspace chose (address space 0 only).
    pub(crate) id: u16,
    /// First guest frame number.
    pub(crate) base_gfn: u64,
    /// Length in pages; never 0 for a slot in a set.
    pub(crate) npages: u64,
    /// Host virtual address of the first page.
    pub(crate) userspace_addr: u64,
    /// `KVM_MEM_*` flags.
    pub(crate) flags: u32,
}

impl Memslot {
    const EMPTY: Self = Self {
        id: 0,
        base_gfn: 0,
        npages: 0,
        userspace_addr: 0,
        flags: 0,
    };

    /// Guest writes must not reach the backing memory.
    pub(crate) const fn readonly(&self) -> bool {
        self.flags & KVM_MEM_READONLY != 0
    }

    /// The slot keeps a dirty bitmap (`KVM_MEM_LOG_DIRTY_PAGES`).
    pub(crate) const fn has_dirty_log(&self) -> bool {
        self.flags & KVM_MEM_LOG_DIRTY_PAGES != 0
    }

    /// Guest writes are tracked: a logging slot that is not read-only (KVM's
    /// `memslot_is_logging`). Its pages are mapped writable only once written, and each
    /// write that makes one writable marks it dirty.
    pub(crate) const fn dirty_tracked(&self) -> bool {
        self.has_dirty_log() && !self.readonly()
    }

    /// Whether `gfn` lies in the slot (written so no sum can overflow).
    pub(crate) const fn contains_gfn(&self, gfn: u64) -> bool {
        gfn >= self.base_gfn && gfn - self.base_gfn < self.npages
    }

    /// Host virtual address backing `gfn` (caller ensures `contains_gfn`).
    ///
    /// Wrapping arithmetic keeps a caller's mistake from panicking the kernel; for a
    /// contained frame the result is exact because `check` bounded the user range.
    pub(crate) const fn hva(&self, gfn: u64) -> u64 {
        self.userspace_addr
            .wrapping_add(gfn.wrapping_sub(self.base_gfn).wrapping_mul(PAGE_SIZE))
    }

    /// Whether the `size`-aligned guest range around `gfn` can be one stage-2 block: it
    /// lies wholly in the slot, and guest-physical and user addresses agree modulo `size`
    /// so that one huge page of the VMM backs it (KVM's
    /// `fault_supports_stage2_huge_mapping`). `size` is a power of two.
    pub(crate) const fn block_fits(&self, gfn: u64, size: u64) -> bool {
        let hva = self.hva(gfn) & !(size - 1);
        self.start_ipa() % size == self.userspace_addr % size
            && hva >= self.userspace_addr
            && hva + size <= self.userspace_addr + self.npages * PAGE_SIZE
    }

    /// First guest-physical address of the slot.
    pub(crate) const fn start_ipa(&self) -> u64 {
        self.base_gfn.wrapping_mul(PAGE_SIZE)
    }

    /// Guest-physical address just past the slot.
    pub(crate) const fn end_ipa(&self) -> u64 {
        self.end_gfn().wrapping_mul(PAGE_SIZE)
    }

    /// Frame just past the slot; `check` guarantees it does not wrap for stored slots.
    const fn end_gfn(&self) -> u64 {
        self.base_gfn.wrapping_add(self.npages)
    }
}

/// A userspace request: the fields `kvm_userspace_memory_region` and
/// `kvm_userspace_memory_region2` have in common.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Address space in bits [31:16], slot id in bits [15:0].
    pub(crate) slot: u32,
    pub(crate) flags: u32,
    pub(crate) guest_phys_addr: u64,
    /// 0 deletes the slot.
    pub(crate) memory_size: u64,
    pub(crate) userspace_addr: u64,
}

/// What a valid request does (KVM's `enum kvm_mr_change`, plus the no-op it returns early on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Create(Memslot),
    Delete(Memslot),
    /// Same backing and size at another guest address.
    Move {
        old: Memslot,
        new: Memslot,
    },
    /// Same range, different flags: `KVM_MEM_LOG_DIRTY_PAGES` turned on or off
    /// (`KVM_MEM_READONLY` cannot change).
    FlagsOnly {
        old: Memslot,
        new: Memslot,
    },
    /// The request restates the slot as it is.
    Nothing,
}

/// Why a request is refused (`sys/errno.rs` gives the errno of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotError {
    /// `EINVAL`: malformed request, unknown slot on delete, or a forbidden modification.
    Invalid,
    /// `EEXIST`: the range overlaps another slot.
    Overlap,
    /// `EFAULT`: the range ends past the VM's IPA space.
    BeyondIpa,
}

/// A set of slots sorted by `base_gfn`, non-overlapping, with unique ids.
///
/// Where a VM's memslots lie, packed into one word so that an MMIO exit can learn that no
/// slot backs an address without taking the MMU lock: `[lo, hi)` in 2 MiB units (28
/// bits each cover the 48-bit IPA space, its end included), a superset of every slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span(pub(crate) u64);

impl Span {
    const SHIFT: u32 = 21;
    const BITS: u32 = 28;
    const MASK: u64 = (1 << Self::BITS) - 1;

    /// No slot: nothing is inside.
    pub(crate) const EMPTY: Self = Self(0);

    /// The span from IPA `start` (rounded down) to `end` (rounded up).
    const fn new(start: u64, end: u64) -> Self {
        let lo = (start >> Self::SHIFT) & Self::MASK;
        let hi = (end.div_ceil(1 << Self::SHIFT)) & Self::MASK;
        Self(lo | hi << Self::BITS)
    }

    /// Whether a slot may hold `ipa`; `false` means none does.
    pub(crate) const fn may_hold(self, ipa: u64) -> bool {
        let unit = ipa >> Self::SHIFT;
        unit >= self.0 & Self::MASK && unit < (self.0 >> Self::BITS) & Self::MASK
    }
}

/// Stored inline (about 16 KiB) so it can live in the per-VM structure, which is allocated
/// once; nothing here allocates.
pub(crate) struct Memslots {
    slots: [Memslot; MAX_SLOTS],
    /// Entries `slots[..len]` are in use; `len <= MAX_SLOTS` always.
    len: usize,
}

impl Memslots {
    #[cfg(test)]
    /// An empty set.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [Memslot::EMPTY; MAX_SLOTS],
            len: 0,
        }
    }

    #[cfg(test)]
    /// Number of slots in use.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    /// The slots in ascending guest-physical order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Memslot> {
        self.used().iter()
    }

    fn used(&self) -> &[Memslot] {
        self.slots.get(..self.len).unwrap_or(&[])
    }

    /// Validates `req` with KVM's rules and says what it would do, without doing it.
    ///
    /// `ipa_limit` is the VM's IPA space in bytes (`1 << ipa_bits`); `user_limit` is the end
    /// of the user address space (`TASK_SIZE`). Errors come in KVM's order: malformed
    /// requests first, then overlap (generic code), then the IPA limit (arm64 hook).
    pub(crate) fn check(
        &self,
        req: &Request,
        ipa_limit: u64,
        user_limit: u64,
    ) -> Result<Change, SlotError> {
        if req.flags & !VALID_FLAGS != 0 {
            return Err(SlotError::Invalid);
        }
        if req.slot >> 16 != 0 {
            return Err(SlotError::Invalid);
        }
        let id = (req.slot & 0xffff) as u16;
        if usize::from(id) >= MAX_SLOTS {
            return Err(SlotError::Invalid);
        }
        let page_mask = PAGE_SIZE - 1;
        if (req.memory_size | req.guest_phys_addr | req.userspace_addr) & page_mask != 0 {
            return Err(SlotError::Invalid);
        }
        // KVM's access_ok(): the whole backing range must be user memory.
        match req.userspace_addr.checked_add(req.memory_size) {
            Some(end) if end <= user_limit => {}
            _ => return Err(SlotError::Invalid),
        }
        if req.guest_phys_addr.checked_add(req.memory_size).is_none() {
            return Err(SlotError::Invalid);
        }
        let npages = req.memory_size >> PAGE_SHIFT;
        if npages > MAX_NR_PAGES {
            return Err(SlotError::Invalid);
        }

        let old = self.by_id(id).copied();
        if npages == 0 {
            return old.map(Change::Delete).ok_or(SlotError::Invalid);
        }

        let new = Memslot {
            id,
            base_gfn: req.guest_phys_addr >> PAGE_SHIFT,
            npages,
            userspace_addr: req.userspace_addr,
            flags: req.flags,
        };
        let change = match old {
            None => Change::Create(new),
            Some(old) => {
                // An existing slot may only move or change flags: its backing is fixed.
                if old.userspace_addr != new.userspace_addr
                    || old.npages != new.npages
                    || (old.flags ^ new.flags) & KVM_MEM_READONLY != 0
                {
                    return Err(SlotError::Invalid);
                }
                if old.base_gfn != new.base_gfn {
                    Change::Move { old, new }
                } else if old.flags != new.flags {
                    Change::FlagsOnly { old, new }
                } else {
                    return Ok(Change::Nothing);
                }
            }
        };

        if matches!(change, Change::Create(_) | Change::Move { .. }) {
            if self.overlaps(id, new.base_gfn, new.end_gfn()) {
                return Err(SlotError::Overlap);
            }
            if new.end_gfn() > ipa_limit >> PAGE_SHIFT {
                return Err(SlotError::BeyondIpa);
            }
        }
        Ok(change)
    }

    /// Whether a slot other than `id` intersects frames `[start, end)`.
    fn overlaps(&self, id: u16, start: u64, end: u64) -> bool {
        let used = self.used();
        // Slots are disjoint and sorted, so their ends are sorted too: the intersecting
        // ones are the run just below the first slot starting at or after `end`.
        let below = used.partition_point(|s| s.base_gfn < end);
        used.get(..below)
            .unwrap_or(&[])
            .iter()
            .rev()
            .take_while(|s| s.end_gfn() > start)
            .any(|s| s.id != id)
    }

    /// Applies a change `check` returned for this same, unmodified set.
    ///
    /// A change that does not fit the set (which `check` never produces) is ignored rather
    /// than allowed to panic.
    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Create(new) => self.insert(new),
            Change::Delete(old) => self.remove(old.id),
            Change::Move { old, new } => {
                self.remove(old.id);
                self.insert(new);
            }
            Change::FlagsOnly { old, new } => {
                if let Some(i) = self.index_of(old.id) {
                    if let Some(slot) = self.slots.get_mut(i) {
                        *slot = new;
                    }
                }
            }
            Change::Nothing => {}
        }
    }

    fn index_of(&self, id: u16) -> Option<usize> {
        self.used().iter().position(|s| s.id == id)
    }

    fn insert(&mut self, new: Memslot) {
        if self.len >= MAX_SLOTS {
            return;
        }
        let at = self.used().partition_point(|s| s.base_gfn < new.base_gfn);
        let len = self.len;
        if let Some(tail) = self.slots.get_mut(at..=len) {
            tail.rotate_right(1);
            if let Some(first) = tail.first_mut() {
                *first = new;
                self.len += 1;
            }
        }
    }

    fn remove(&mut self, id: u16) {
        let Some(at) = self.index_of(id) else { return };
        let len = self.len;
        if let Some(tail) = self.slots.get_mut(at..len) {
            tail.rotate_left(1);
            if let Some(last) = tail.last_mut() {
                *last = Memslot::EMPTY;
                self.len -= 1;
            }
        }
    }

    /// The slot containing `gfn`.
    pub(crate) fn find(&self, gfn: u64) -> Option<&Memslot> {
        let used = self.used();
        // The only candidate is the last slot starting at or below `gfn`.
        let after = used.partition_point(|s| s.base_gfn <= gfn);
        used.get(after.checked_sub(1)?)
            .filter(|s| s.contains_gfn(gfn))
    }

    /// The host virtual address of `len` bytes of guest memory at `ipa`, for the host to
    /// read or (`write`) write them through the VMM's mapping: `None` unless one slot
    /// holds all of them and, for a write, the slot is writable (KVM's `gfn_to_hva` with
    /// its read-only check). `len` is at least 1.
    pub(crate) fn hva_range(&self, ipa: u64, len: u64, write: bool) -> Option<u64> {
        let last = ipa.checked_add(len.checked_sub(1)?)?;
        let slot = self.find(ipa / PAGE_SIZE)?;
        if !slot.contains_gfn(last / PAGE_SIZE) || (write && slot.readonly()) {
            return None;
        }
        Some(slot.hva(ipa / PAGE_SIZE) + ipa % PAGE_SIZE)
    }

    /// The guest-physical ranges whose backing lies in the user addresses `[start, end)`,
    /// one per slot that overlaps them, each widened to whole pages (KVM's
    /// `kvm_handle_hva_range`): what an MMU notifier's invalidation or ageing of those
    /// addresses must reach at stage 2. A linear scan; slots may alias the same memory.
    pub(crate) fn ipa_ranges_of_hva(
        &self,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.used().iter().filter_map(move |s| {
            // `check` bounded each slot's user range below the end of the address space.
            let slot_end = s.userspace_addr + s.npages * PAGE_SIZE;
            let lo = start.max(s.userspace_addr);
            let hi = end.min(slot_end);
            if lo >= hi {
                return None;
            }
            let first = (lo - s.userspace_addr) / PAGE_SIZE;
            let last = (hi - 1 - s.userspace_addr) / PAGE_SIZE;
            Some((
                (s.base_gfn + first) * PAGE_SIZE,
                (s.base_gfn + last + 1) * PAGE_SIZE,
            ))
        })
    }

    /// A conservative summary of where the slots lie, one word that a lockless reader
    /// can load: the 2 MiB-aligned range from the lowest slot's start to the highest
    /// slot's end (see [`Span`]).
    pub(crate) fn span(&self) -> Span {
        let used = self.used();
        match (used.first(), used.last()) {
            (Some(first), Some(last)) => Span::new(first.start_ipa(), last.end_ipa()),
            _ => Span::EMPTY,
        }
    }

    /// The slot with number `id`. A linear scan: ids are looked up on the ioctl path only,
    /// and at most `MAX_SLOTS` entries exist.
    pub(crate) fn by_id(&self, id: u16) -> Option<&Memslot> {
        self.used().iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    const IPA: u64 = 1 << 40;
    const USER: u64 = 1 << 48;
    const MIB: u64 = 1 << 20;

    fn req(slot: u32, gpa: u64, size: u64, uaddr: u64) -> Request {
        Request {
            slot,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: uaddr,
        }
    }

    fn set() -> Box<Memslots> {
        Box::new(Memslots::new())
    }

    /// Checks and applies, panicking on refusal.
    fn put(s: &mut Memslots, r: Request) -> Change {
        let c = s.check(&r, IPA, USER).unwrap();
        s.apply(c);
        c
    }

    fn check(s: &Memslots, r: Request) -> Result<Change, SlotError> {
        s.check(&r, IPA, USER)
    }

    fn assert_sorted(s: &Memslots) {
        let v: Vec<_> = s.iter().collect();
        assert_eq!(v.len(), s.len());
        for w in v.windows(2) {
            assert!(
                w[0].end_gfn() <= w[1].base_gfn,
                "{:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }

    fn ids(s: &Memslots) -> Vec<u16> {
        s.iter().map(|m| m.id).collect()
    }

    #[test]
    fn span_covers_every_slot() {
        let mut s = set();
        assert_eq!(s.span(), Span::EMPTY);
        assert!(!s.span().may_hold(0));
        put(&mut s, req(0, 0x4000_0000, 4 * MIB, 0x10_0000_0000));
        put(&mut s, req(1, 0x8000_1000, 8192, 0x20_0000_0000));
        let span = s.span();
        // Inside, on the 2 MiB-rounded edges; outside below and above.
        for ipa in [0x4000_0000, 0x5000_0000, 0x8000_0000, 0x801f_ffff] {
            assert!(span.may_hold(ipa), "{ipa:#x}");
        }
        for ipa in [0, 0x0800_0000, 0x3fff_ffff, 0x8020_0000, (1 << 48) - 1] {
            assert!(!span.may_hold(ipa), "{ipa:#x}");
        }
        // The top of the test VM's IPA space, and of the largest one.
        put(&mut s, req(2, IPA - 2 * MIB, 2 * MIB, 0x30_0000_0000));
        assert!(s.span().may_hold(IPA - 1));
        assert!(!s.span().may_hold(0x1000_0000));
        let top = Span::new(0, 1 << 48);
        assert!(top.may_hold((1 << 48) - 1) && top.may_hold(0));
    }

    #[test]
    fn block_fits() {
        let slot = |base_gfn, npages, userspace_addr| Memslot {
            id: 0,
            base_gfn,
            npages,
            userspace_addr,
            flags: 0,
        };
        // 4 MiB at 1 GiB, backed by 2 MiB-aligned memory: both blocks fit.
        let s = slot(0x4_0000, 1024, 0x7f00_0000_0000);
        assert!(s.block_fits(0x4_0000, 2 * MIB));
        assert!(s.block_fits(0x4_03ff, 2 * MIB));
        // Guest and user addresses 4 KiB apart modulo 2 MiB: no block anywhere.
        let s = slot(0x4_0000, 1024, 0x7f00_0000_1000);
        assert!(!s.block_fits(0x4_0200, 2 * MIB));
        // Congruent, but the slot covers only part of the first and last blocks.
        let s = slot(0x4_0100, 1024, 0x7f00_0010_0000);
        assert!(!s.block_fits(0x4_0100, 2 * MIB));
        assert!(s.block_fits(0x4_0200, 2 * MIB));
        assert!(!s.block_fits(0x4_04ff, 2 * MIB));
        // A slot smaller than a block.
        assert!(!slot(0x4_0000, 511, 0x7f00_0000_0000).block_fits(0x4_0000, 2 * MIB));
    }

    #[test]
    fn ipa_ranges_of_hva() {
        let mut s = set();
        put(&mut s, req(0, 0x4000_0000, 4 * MIB, 0x10_0000_0000));
        put(&mut s, req(1, 0x8000_0000, 2 * MIB, 0x20_0000_0000));
        // The same memory behind a second slot: both must be reached.
        put(&mut s, req(2, 0x9000_0000, MIB, 0x10_0010_0000));
        let r = |a, b| s.ipa_ranges_of_hva(a, b).collect::<Vec<_>>();
        assert_eq!(r(0, 0x10_0000_0000), []);
        assert_eq!(r(0x30_0000_0000, u64::MAX), []);
        // One byte in the middle of a page reaches that page.
        assert_eq!(
            r(0x10_0000_1001, 0x10_0000_1002),
            [(0x4000_1000, 0x4000_2000)]
        );
        // Unaligned bounds widen to whole pages; a range past the slot's end is clamped.
        assert_eq!(
            r(0x20_0000_0fff, 0x30_0000_0000),
            [(0x8000_0000, 0x8000_0000 + 2 * MIB)]
        );
        // An aliased range is reported once per slot.
        assert_eq!(
            r(0x10_0010_0000, 0x10_0010_2000),
            [(0x4010_0000, 0x4010_2000), (0x9000_0000, 0x9000_2000)]
        );
        // A range covering everything.
        assert_eq!(r(0, u64::MAX).len(), 3);
    }

    #[test]
    fn memslot_helpers() {
        let m = Memslot {
            id: 3,
            base_gfn: 0x100,
            npages: 0x10,
            userspace_addr: 0x7000_0000,
            flags: 0,
        };
        assert_eq!(m.start_ipa(), 0x10_0000);
        assert_eq!(m.end_ipa(), 0x11_0000);
        assert!(!m.contains_gfn(0xff));
        assert!(m.contains_gfn(0x100));
        assert!(m.contains_gfn(0x10f));
        assert!(!m.contains_gfn(0x110));
        assert!(!m.contains_gfn(0));
        assert_eq!(m.hva(0x100), 0x7000_0000);
        assert_eq!(m.hva(0x10f), 0x7000_f000);
        assert!(!m.readonly());
        assert!(Memslot {
            flags: KVM_MEM_READONLY,
            ..m
        }
        .readonly());
        // No overflow panic at the top of the space.
        let top = Memslot {
            base_gfn: u64::MAX - 1,
            npages: 1,
            ..m
        };
        assert!(top.contains_gfn(u64::MAX - 1));
        assert!(!top.contains_gfn(u64::MAX));
        let _ = m.hva(0);
    }

    #[test]
    fn host_access_ranges() {
        let mut s = set();
        put(&mut s, req(0, 0x4000_0000, 2 * MIB, 0x1000_0000));
        put(&mut s, req(1, 0x4020_0000, MIB, 0x2000_0000));
        put(
            &mut s,
            Request {
                flags: KVM_MEM_READONLY,
                ..req(2, 0x5000_0000, MIB, 0x3000_0000)
            },
        );
        assert_eq!(s.hva_range(0x4000_0000, 64, true), Some(0x1000_0000));
        assert_eq!(s.hva_range(0x401f_ffc0, 64, true), Some(0x101f_ffc0));
        assert_eq!(s.hva_range(0x4020_0040, 8, false), Some(0x2000_0040));
        // Across two slots, even adjacent ones; outside any; past the end of the space.
        assert_eq!(s.hva_range(0x401f_fff8, 16, false), None);
        assert_eq!(s.hva_range(0x3fff_fff8, 16, false), None);
        assert_eq!(s.hva_range(0x6000_0000, 1, false), None);
        assert_eq!(s.hva_range(u64::MAX - 3, 8, false), None);
        assert_eq!(s.hva_range(0x4000_0000, 0, false), None);
        // Read-only slots: reads only.
        assert_eq!(s.hva_range(0x5000_0000, 64, false), Some(0x3000_0000));
        assert_eq!(s.hva_range(0x5000_0000, 64, true), None);
    }

    #[test]
    fn create_and_lookup() {
        let mut s = set();
        assert_eq!(s.len(), 0);
        assert_eq!(s.find(0), None);
        let c = put(&mut s, req(0, 0x4000_0000, 2 * MIB, 0x1000_0000));
        let slot = Memslot {
            id: 0,
            base_gfn: 0x4_0000,
            npages: 512,
            userspace_addr: 0x1000_0000,
            flags: 0,
        };
        assert_eq!(c, Change::Create(slot));
        assert_eq!(s.len(), 1);
        assert_eq!(s.by_id(0), Some(&slot));
        assert_eq!(s.by_id(1), None);
        // Boundaries: first and last frame inside, neighbours outside.
        assert_eq!(s.find(0x4_0000), Some(&slot));
        assert_eq!(s.find(0x4_01ff), Some(&slot));
        assert_eq!(s.find(0x3_ffff), None);
        assert_eq!(s.find(0x4_0200), None);
        assert_eq!(s.find(u64::MAX), None);
    }

    #[test]
    fn readonly_flag_accepted() {
        let mut s = set();
        let r = Request {
            flags: KVM_MEM_READONLY,
            ..req(1, 0, MIB, 0x10_0000)
        };
        let c = put(&mut s, r);
        assert!(matches!(c, Change::Create(m) if m.readonly()));
        assert!(s.by_id(1).unwrap().readonly());
    }

    #[test]
    fn dirty_log_flag_accepted() {
        let mut s = set();
        for (id, flags) in [
            (0, KVM_MEM_LOG_DIRTY_PAGES),
            (1, KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY),
        ] {
            let r = Request {
                flags,
                ..req(id, u64::from(id) * MIB, MIB, 0x10_0000)
            };
            put(&mut s, r);
        }
        let logged = s.by_id(0).unwrap();
        assert!(logged.has_dirty_log() && logged.dirty_tracked());
        // A read-only slot keeps a (never set) bitmap but tracks nothing, as KVM.
        let ro = s.by_id(1).unwrap();
        assert!(ro.has_dirty_log() && !ro.dirty_tracked());
        let plain = Memslot::default();
        assert!(!plain.has_dirty_log() && !plain.dirty_tracked());
    }

    #[test]
    fn unknown_and_unsupported_flags_refused() {
        let s = set();
        for flags in [1 << 2, 1 << 3, 1 << 31, KVM_MEM_READONLY | 1 << 2] {
            let r = Request {
                flags,
                ..req(0, 0, MIB, 0x10_0000)
            };
            assert_eq!(check(&s, r), Err(SlotError::Invalid), "flags {flags:#x}");
        }
    }

    #[test]
    fn slot_number_rules() {
        let s = set();
        // Address space 1 does not exist on arm64.
        assert_eq!(
            check(&s, req(1 << 16, 0, MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(
            check(&s, req(MAX_SLOTS as u32, 0, MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(
            check(&s, req(0xffff, 0, MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert!(check(&s, req(MAX_SLOTS as u32 - 1, 0, MIB, 0x10_0000)).is_ok());
    }

    #[test]
    fn alignment_rules() {
        let s = set();
        assert_eq!(
            check(&s, req(0, 0, MIB + 1, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(
            check(&s, req(0, 0x800, MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(
            check(&s, req(0, 0, MIB, 0x10_0010)),
            Err(SlotError::Invalid)
        );
        assert!(check(&s, req(0, 0x1000, 0x1000, 0x1000)).is_ok());
    }

    #[test]
    fn user_range_rules() {
        let s = set();
        // Ending exactly at the limit is fine, one page more is not.
        assert!(check(&s, req(0, 0, MIB, USER - MIB)).is_ok());
        assert_eq!(
            check(&s, req(0, 0, MIB, USER - MIB + 0x1000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(check(&s, req(0, 0, MIB, USER)), Err(SlotError::Invalid));
        // A wrapping user range is refused even if the limit were the whole space.
        let r = req(0, 0, 2 * 0x1000, u64::MAX - 0xfff);
        assert_eq!(s.check(&r, IPA, u64::MAX), Err(SlotError::Invalid));
        // A tagged (top-byte) address lies beyond TASK_SIZE.
        assert_eq!(
            check(&s, req(0, 0, MIB, 0x0100_0000_0010_0000)),
            Err(SlotError::Invalid)
        );
    }

    #[test]
    fn guest_range_overflow_refused() {
        let s = set();
        let r = req(0, u64::MAX - 0xfff, 0x2000, 0x10_0000);
        assert_eq!(s.check(&r, u64::MAX, USER), Err(SlotError::Invalid));
        // Ending exactly at 2^64 is an overflow too, as in KVM.
        let r = req(0, 0u64.wrapping_sub(0x1000), 0x1000, 0x10_0000);
        assert_eq!(s.check(&r, u64::MAX, USER), Err(SlotError::Invalid));
    }

    #[test]
    fn oversized_slot_refused() {
        let s = set();
        let too_big = (MAX_NR_PAGES + 1) * PAGE_SIZE;
        assert_eq!(
            s.check(&req(0, 0, too_big, 0), u64::MAX, USER),
            Err(SlotError::Invalid)
        );
        let biggest = MAX_NR_PAGES * PAGE_SIZE;
        assert!(s.check(&req(0, 0, biggest, 0), u64::MAX, USER).is_ok());
    }

    #[test]
    fn ipa_limit() {
        let s = set();
        // Ending exactly at the limit is allowed.
        assert!(check(&s, req(0, IPA - MIB, MIB, 0x10_0000)).is_ok());
        assert_eq!(
            check(&s, req(0, IPA - MIB, 2 * MIB, 0x10_0000)),
            Err(SlotError::BeyondIpa)
        );
        assert_eq!(
            check(&s, req(0, IPA, 0x1000, 0x10_0000)),
            Err(SlotError::BeyondIpa)
        );
    }

    #[test]
    fn error_order() {
        let mut s = set();
        put(&mut s, req(0, IPA - MIB, MIB, 0x10_0000));
        // Overlapping and beyond the IPA space: overlap wins (generic code runs first).
        assert_eq!(
            check(&s, req(1, IPA - MIB, 2 * MIB, 0x20_0000)),
            Err(SlotError::Overlap)
        );
        // Malformed and overlapping: Invalid wins.
        let r = Request {
            flags: 1 << 5,
            ..req(1, IPA - MIB, MIB, 0x20_0000)
        };
        assert_eq!(check(&s, r), Err(SlotError::Invalid));
    }

    #[test]
    fn overlap_rules() {
        let mut s = set();
        put(&mut s, req(0, 0x10_0000, MIB, 0x10_0000)); // [1 MiB, 2 MiB)
        put(&mut s, req(1, 0x40_0000, MIB, 0x20_0000)); // [4 MiB, 5 MiB)
        for (gpa, size) in [
            (0x10_0000, MIB),       // identical
            (0x0, 0x10_1000),       // tail into slot 0
            (0x1f_f000, 0x1000),    // last page of slot 0
            (0x18_0000, 0x1000),    // inside slot 0
            (0x0, 0x100_0000),      // covers both
            (0x3f_f000, 0x2000),    // straddles slot 1's start
            (0x4f_f000, 0x10_0000), // straddles slot 1's end
        ] {
            assert_eq!(
                check(&s, req(2, gpa, size, 0x30_0000)),
                Err(SlotError::Overlap),
                "{gpa:#x}+{size:#x}"
            );
        }
        // Adjacent on either side, and in the gap joining both, is fine.
        put(&mut s, req(2, 0x0, MIB, 0x30_0000));
        put(&mut s, req(3, 0x20_0000, 2 * MIB, 0x40_0000));
        put(&mut s, req(4, 0x50_0000, 0x1000, 0x60_0000));
        assert_eq!(ids(&s), [2, 0, 3, 1, 4]);
        assert_sorted(&s);
        // Boundaries between adjacent slots resolve to the right one.
        assert_eq!(s.find(0xff).unwrap().id, 2);
        assert_eq!(s.find(0x100).unwrap().id, 0);
        assert_eq!(s.find(0x1ff).unwrap().id, 0);
        assert_eq!(s.find(0x200).unwrap().id, 3);
        assert_eq!(s.find(0x3ff).unwrap().id, 3);
        assert_eq!(s.find(0x400).unwrap().id, 1);
        assert_eq!(s.find(0x500).unwrap().id, 4);
        assert_eq!(s.find(0x501), None);
    }

    #[test]
    fn delete() {
        let mut s = set();
        // Deleting a slot that does not exist.
        assert_eq!(check(&s, req(5, 0, 0, 0)), Err(SlotError::Invalid));
        put(&mut s, req(5, 0x10_0000, MIB, 0x10_0000));
        put(&mut s, req(6, 0x0, MIB, 0x20_0000));
        put(&mut s, req(7, 0x20_0000, MIB, 0x30_0000));
        let old = *s.by_id(5).unwrap();
        // The address fields of a delete are not compared with the slot's.
        assert_eq!(put(&mut s, req(5, 0, 0, 0)), Change::Delete(old));
        assert_eq!(s.len(), 2);
        assert_eq!(ids(&s), [6, 7]);
        assert_sorted(&s);
        assert_eq!(s.by_id(5), None);
        assert_eq!(s.find(0x100), None);
        assert_eq!(check(&s, req(5, 0, 0, 0)), Err(SlotError::Invalid));
        // The general checks still apply to a delete.
        assert_eq!(check(&s, req(6, 0x800, 0, 0)), Err(SlotError::Invalid));
        assert_eq!(
            check(&s, req(6 | 1 << 16, 0, 0, 0)),
            Err(SlotError::Invalid)
        );
        // The range is free again.
        put(&mut s, req(8, 0x10_0000, MIB, 0x40_0000));
        assert_eq!(ids(&s), [6, 8, 7]);
    }

    #[test]
    fn modify_rules() {
        let mut s = set();
        put(&mut s, req(0, 0x10_0000, MIB, 0x10_0000));
        // Restating the slot changes nothing.
        assert_eq!(
            check(&s, req(0, 0x10_0000, MIB, 0x10_0000)),
            Ok(Change::Nothing)
        );
        // Backing, size and READONLY are fixed.
        assert_eq!(
            check(&s, req(0, 0x10_0000, MIB, 0x20_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(
            check(&s, req(0, 0x10_0000, 2 * MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        let ro = Request {
            flags: KVM_MEM_READONLY,
            ..req(0, 0x10_0000, MIB, 0x10_0000)
        };
        assert_eq!(check(&s, ro), Err(SlotError::Invalid));
        let mut s = set();
        put(&mut s, ro);
        assert_eq!(
            check(&s, req(0, 0x10_0000, MIB, 0x10_0000)),
            Err(SlotError::Invalid)
        );
        assert_eq!(check(&s, ro), Ok(Change::Nothing));
    }

    #[test]
    fn move_rules() {
        let mut s = set();
        put(&mut s, req(0, 0x10_0000, MIB, 0x10_0000)); // frames [0x100, 0x200)
        put(&mut s, req(1, 0x40_0000, MIB, 0x20_0000)); // frames [0x400, 0x500)
        let old = *s.by_id(0).unwrap();
        // Overlapping only its own old range is allowed.
        let c = check(&s, req(0, 0x18_0000, MIB, 0x10_0000)).unwrap();
        let new = Memslot {
            base_gfn: 0x180,
            ..old
        };
        assert_eq!(c, Change::Move { old, new });
        // Onto another slot is not; past the IPA limit is not.
        assert_eq!(
            check(&s, req(0, 0x3f_f000, MIB, 0x10_0000)),
            Err(SlotError::Overlap)
        );
        assert_eq!(
            check(&s, req(0, IPA, MIB, 0x10_0000)),
            Err(SlotError::BeyondIpa)
        );
        // Moving past the other slot re-sorts the set.
        put(&mut s, req(0, 0x80_0000, MIB, 0x10_0000));
        assert_eq!(ids(&s), [1, 0]);
        assert_sorted(&s);
        assert_eq!(s.find(0x100), None);
        assert_eq!(s.find(0x800).unwrap().id, 0);
        assert_eq!(s.find(0x800).unwrap().hva(0x801), 0x10_1000);
        // And back below it.
        put(&mut s, req(0, 0x0, MIB, 0x10_0000));
        assert_eq!(ids(&s), [0, 1]);
        assert_sorted(&s);
        // A self-overlapping move applies cleanly.
        put(&mut s, req(0, 0x8_0000, MIB, 0x10_0000));
        assert_eq!(s.by_id(0).unwrap().base_gfn, 0x80);
        assert_eq!(s.len(), 2);
        assert_sorted(&s);
    }

    #[test]
    fn flags_only_applies_in_place() {
        let mut s = set();
        put(&mut s, req(0, 0, MIB, 0x10_0000));
        put(&mut s, req(1, 0x10_0000, MIB, 0x20_0000));
        let old = *s.by_id(1).unwrap();
        let logging = Request {
            flags: KVM_MEM_LOG_DIRTY_PAGES,
            ..req(1, 0x10_0000, MIB, 0x20_0000)
        };
        let new = Memslot {
            flags: KVM_MEM_LOG_DIRTY_PAGES,
            ..old
        };
        assert_eq!(put(&mut s, logging), Change::FlagsOnly { old, new });
        assert_eq!(s.by_id(1), Some(&new));
        assert_eq!(ids(&s), [0, 1]);
        assert_eq!(check(&s, logging), Ok(Change::Nothing));
        // And off again.
        assert_eq!(
            put(&mut s, req(1, 0x10_0000, MIB, 0x20_0000)),
            Change::FlagsOnly { old: new, new: old }
        );
        // A move may change the logging flag too.
        let moved = Request {
            flags: KVM_MEM_LOG_DIRTY_PAGES,
            ..req(1, 0x40_0000, MIB, 0x20_0000)
        };
        assert!(matches!(
            put(&mut s, moved),
            Change::Move { old: o, new: n } if !o.has_dirty_log() && n.has_dirty_log()
        ));
        s.apply(Change::Nothing);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn fills_every_slot_and_stays_sorted() {
        let mut s = set();
        // Create in a scrambled order so inserts land everywhere.
        for i in 0..MAX_SLOTS as u64 {
            let id = (i * 181) % MAX_SLOTS as u64; // 181 is coprime with 512
            let gpa = (MAX_SLOTS as u64 - id) * 0x2000;
            put(&mut s, req(id as u32, gpa, 0x1000, 0x10_0000 + id * 0x1000));
        }
        assert_eq!(s.len(), MAX_SLOTS);
        assert_sorted(&s);
        for id in 0..MAX_SLOTS as u64 {
            let gfn = (MAX_SLOTS as u64 - id) * 2;
            assert_eq!(u64::from(s.find(gfn).unwrap().id), id);
            assert_eq!(s.find(gfn + 1), None);
        }
        // A misuse of apply on a full set is ignored, not a panic.
        s.apply(Change::Create(Memslot {
            id: 0,
            base_gfn: 1,
            npages: 1,
            ..Memslot::default()
        }));
        assert_eq!(s.len(), MAX_SLOTS);
        // Delete them all from the middle outwards.
        for id in (0..MAX_SLOTS as u32)
            .rev()
            .step_by(2)
            .chain((0..MAX_SLOTS as u32).step_by(2))
        {
            put(&mut s, req(id, 0, 0, 0));
            assert_sorted(&s);
        }
        assert_eq!(s.len(), 0);
        assert_eq!(s.find(2), None);
    }

    #[test]
    fn stale_changes_do_not_panic() {
        let mut s = set();
        let ghost = Memslot {
            id: 9,
            base_gfn: 1,
            npages: 1,
            ..Memslot::default()
        };
        s.apply(Change::Delete(ghost));
        s.apply(Change::FlagsOnly {
            old: ghost,
            new: ghost,
        });
        assert_eq!(s.len(), 0);
    }
}
