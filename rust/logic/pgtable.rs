// SPDX-License-Identifier: GPL-2.0

//! The stage-2 translation tables of a VM: descriptor encoding, geometry and a walker.
//!
//! KVM counterpart: `arch/arm64/kvm/hyp/pgtable.c` (`kvm_get_vtcr()`, `kvm_pgd_pages()`,
//! the stage-2 map, unmap and write-protect walkers) and `asm/stage2_pgtable.h`. rkvm
//! supports one format only: VMSAv8-64 with a 4 KiB granule, no LPA2 and page (level 3)
//! mappings only, so no block splitting or break-before-make is ever needed: a leaf only
//! changes between invalid and valid, or between read-only and writable (a permission
//! change the architecture allows in place). The walker is generic over [`TableMemory`]
//! so the kernel backs it with real pages and the tests with a `Vec`.

/// log2 of the translation granule.
pub(crate) const PAGE_SHIFT: u32 = 12;
/// The translation granule, also the size of every table page.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Descriptors in one table page.
pub(crate) const PTRS_PER_TABLE: usize = 512;

/// IPA bits resolved by one table page.
const BITS_PER_LEVEL: u32 = PAGE_SHIFT - 3;
/// The level that holds page descriptors.
const LAST_LEVEL: u32 = 3;
/// The level of 2 MiB blocks, the only block size stage 2 maps.
const BLOCK_LEVEL: u32 = 2;
/// Bytes a level-2 block maps.
pub(crate) const BLOCK_SIZE: u64 = 1 << level_shift(BLOCK_LEVEL);
/// Stage 2 can concatenate at most 16 root pages, resolving 4 extra bits at the root.
const MAX_ROOT_ORDER: u32 = 4;
/// Output address field of table and page descriptors, bits [47:12].
const ADDR_MASK: u64 = ((1 << 48) - 1) & !(PAGE_SIZE - 1);

/// The lowest IPA bit indexed by a table at `level`.
const fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + BITS_PER_LEVEL * (LAST_LEVEL - level)
}

/// Geometry of a stage-2 translation for an IPA size: start level and how many
/// concatenated pages the root table has (1..=16).
///
/// Like KVM, concatenation is used to start as low as possible: the level count is the one
/// a stage-1 table needs for `ipa_bits - 4` bits, the 4 bits being absorbed by the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) ipa_bits: u32,
    pub(crate) start_level: u32,
    pub(crate) root_pages: usize,
}

impl Geometry {
    /// `None` unless `32 <= ipa_bits <= 48`, the range a 4 KiB granule without LPA2 covers.
    pub(crate) const fn new(ipa_bits: u32) -> Option<Self> {
        if ipa_bits < 32 || ipa_bits > 48 {
            return None;
        }
        // ARM64_HW_PGTABLE_LEVELS(ipa_bits - 4): ceil((ipa_bits - 4 - 12) / 9).
        let levels = (ipa_bits - 4 - 4) / BITS_PER_LEVEL;
        let start_level = LAST_LEVEL + 1 - levels;
        let root_bits = ipa_bits - level_shift(start_level);
        let order = root_bits.saturating_sub(BITS_PER_LEVEL);
        if start_level > 2 || order > MAX_ROOT_ORDER {
            return None;
        }
        Some(Self {
            ipa_bits,
            start_level,
            root_pages: 1 << order,
        })
    }

    /// log2(root_pages), for page allocation order.
    pub(crate) const fn root_order(&self) -> u32 {
        self.root_pages.trailing_zeros()
    }

    /// The `VTCR_EL2` fields that follow from the geometry: T0SZ, SL0, the table walk
    /// cacheability and shareability (inner shareable, write-back) and TG0 = 4 KiB.
    /// PS, VS and RES1 bits depend on the CPU and are the caller's.
    pub(crate) const fn vtcr_bits(&self) -> u64 {
        let t0sz = (64 - self.ipa_bits) as u64;
        // With a 4 KiB granule SL0 counts down from level 2 (0b00) to level 0 (0b10).
        let sl0 = (2 - self.start_level) as u64;
        let irgn0 = 0b01;
        let orgn0 = 0b01;
        let sh0 = 0b11;
        let tg0 = 0b00;
        t0sz | sl0 << 6 | irgn0 << 8 | orgn0 << 10 | sh0 << 12 | tg0 << 14
    }

    /// The IPA limit: 1 << ipa_bits.
    pub(crate) const fn ipa_limit(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// Descriptors in the (possibly concatenated) root table.
    const fn root_entries(&self) -> usize {
        1 << (self.ipa_bits - level_shift(self.start_level))
    }
}

/// Stage-2 access permissions of a mapping (read access is implied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prot {
    pub(crate) write: bool,
    pub(crate) exec: bool,
}

/// A descriptor value with typed accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc(pub(crate) u64);

impl Desc {
    /// Bit 0: the descriptor translates.
    const VALID: u64 = 1 << 0;
    /// Bits [1:0] = 0b11: a table above level 3, a page at level 3.
    const TYPE_TABLE_OR_PAGE: u64 = 0b11;
    /// Bits [1:0] = 0b01: a block (above level 3 only).
    const TYPE_BLOCK: u64 = 0b01;
    /// MemAttr[5:2] = 0b1111: Normal memory, inner and outer write-back (FWB not used).
    const MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
    /// S2AP[0], bit 6: reads allowed.
    const S2AP_R: u64 = 1 << 6;
    /// S2AP[1], bit 7: writes allowed.
    const S2AP_W: u64 = 1 << 7;
    /// SH[9:8] = 0b11: inner shareable.
    const SH_INNER: u64 = 0b11 << 8;
    /// Access flag, bit 10: set when a page is mapped; the host's page ageing clears it
    /// (MMU notifier `clear_young`), and the guest's next access faults to set it again.
    const AF: u64 = 1 << 10;
    #[cfg(test)]
    /// XN[1:0], bits [54:53]; 0b10 forbids execution at EL1 and EL0.
    const XN_MASK: u64 = 0b11 << 53;
    const XN_ALL: u64 = 0b10 << 53;

    pub(crate) const INVALID: Desc = Desc(0);

    /// Table descriptor pointing at the next-level table at `pa`.
    pub(crate) const fn table(pa: u64) -> Self {
        Self((pa & ADDR_MASK) | Self::TYPE_TABLE_OR_PAGE)
    }

    /// Level-3 page descriptor mapping `pa` as normal write-back memory with `prot`.
    pub(crate) const fn page(pa: u64, prot: Prot) -> Self {
        Self::leaf(pa, prot, Self::TYPE_TABLE_OR_PAGE)
    }

    /// Level-2 block descriptor mapping the 2 MiB at `pa`, as [`Self::page`].
    pub(crate) const fn block(pa: u64, prot: Prot) -> Self {
        Self::leaf(pa & !(BLOCK_SIZE - 1), prot, Self::TYPE_BLOCK)
    }

    const fn leaf(pa: u64, prot: Prot, kind: u64) -> Self {
        let mut d = (pa & ADDR_MASK)
            | kind
            | Self::MEMATTR_NORMAL_WB
            | Self::S2AP_R
            | Self::SH_INNER
            | Self::AF;
        if prot.write {
            d |= Self::S2AP_W;
        }
        if !prot.exec {
            d |= Self::XN_ALL;
        }
        Self(d)
    }

    /// Bit 0.
    pub(crate) const fn is_valid(self) -> bool {
        self.0 & Self::VALID != 0
    }

    /// A valid block descriptor (a leaf above level 3; `map_block` makes level-2 ones).
    pub(crate) const fn is_block(self) -> bool {
        self.0 & Self::TYPE_TABLE_OR_PAGE == Self::TYPE_BLOCK
    }

    /// Bits [47:12]: the next table or the mapped page.
    pub(crate) const fn output_address(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// Whether a page descriptor allows guest writes (S2AP[1]).
    pub(crate) const fn writable(self) -> bool {
        self.0 & Self::S2AP_W != 0
    }

    /// Whether the access flag is set: the page was mapped or accessed since its last
    /// ageing.
    pub(crate) const fn young(self) -> bool {
        self.0 & Self::AF != 0
    }

    /// The same descriptor with the access flag set or clear.
    pub(crate) const fn with_young(self, young: bool) -> Self {
        if young {
            Self(self.0 | Self::AF)
        } else {
            Self(self.0 & !Self::AF)
        }
    }

    /// The same descriptor with guest writes allowed or not.
    pub(crate) const fn with_write(self, write: bool) -> Self {
        if write {
            Self(self.0 | Self::S2AP_W)
        } else {
            Self(self.0 & !Self::S2AP_W)
        }
    }

    #[cfg(test)]
    /// The permissions of a page descriptor; any XN encoding other than 0b00 counts as
    /// not executable, since rkvm never distinguishes EL0 from EL1 execution.
    pub(crate) const fn prot(self) -> Prot {
        Prot {
            write: self.0 & Self::S2AP_W != 0,
            exec: self.0 & Self::XN_MASK == 0,
        }
    }

    /// A valid descriptor that points at a next-level table when found above level 3.
    const fn is_table(self, level: u32) -> bool {
        level < LAST_LEVEL && self.0 & Self::TYPE_TABLE_OR_PAGE == Self::TYPE_TABLE_OR_PAGE
    }
}

/// The memory that holds page tables, addressed by physical address of a 4 KiB table.
///
/// The walker only ever writes a table descriptor after `alloc_table()` returned the
/// (already zeroed) table, so an implementation that publishes tables to hardware walkers
/// must make the zeroing visible before its `write()` stores.
pub(crate) trait TableMemory {
    /// Reads entry `index` of the table at physical address `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    /// Writes entry `index` of the table at physical address `table` (a single 64-bit
    /// store in the kernel implementation, so hardware walkers never see a torn entry).
    fn write(&mut self, table: u64, index: usize, value: u64);
    /// A new zeroed 4 KiB table; `None` when out of memory.
    fn alloc_table(&mut self) -> Option<u64>;
}

/// Why [`Stage2::map`] did not install a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapError {
    /// The IPA is at or beyond the geometry's limit, or not page aligned, or `pa` is not
    /// page aligned or does not fit the 48-bit output address.
    OutOfRange,
    /// A valid mapping already exists at this IPA (the caller decides: racing vCPUs
    /// faulting the same page). Carries the existing descriptor.
    Exists(Desc),
    /// `alloc_table()` failed.
    NoMemory,
    /// [`Stage2::map_block`] found a table where the block goes: the caller detaches it
    /// ([`Stage2::detach_table`]), invalidates the TLBs, frees it and maps again.
    Table,
}

/// The stage-2 tables of one VM: geometry plus the physical address of the root.
///
/// The root is `root_pages` contiguous zeroed pages aligned to their total size, allocated
/// by the caller. Every other table is allocated through [`TableMemory::alloc_table`] and
/// kept until teardown, which finds them with [`Stage2::for_each_table`].
pub(crate) struct Stage2 {
    geometry: Geometry,
    root: u64,
}

impl Stage2 {
    pub(crate) const fn new(geometry: Geometry, root: u64) -> Self {
        Self { geometry, root }
    }

    pub(crate) const fn root(&self) -> u64 {
        self.root
    }

    pub(crate) const fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Where the descriptor translating `ipa` sits in the table at `table`, which is at
    /// `level`: the page holding it and its index in that page. The root may span several
    /// pages, so its index is split across them.
    const fn slot(&self, level: u32, table: u64, ipa: u64) -> (u64, usize) {
        let shift = level_shift(level);
        if level == self.geometry.start_level {
            let i = ((ipa & (self.geometry.ipa_limit() - 1)) >> shift) as usize;
            let page = (i / PTRS_PER_TABLE) as u64;
            (self.root + page * PAGE_SIZE, i % PTRS_PER_TABLE)
        } else {
            (table, ((ipa >> shift) as usize) % PTRS_PER_TABLE)
        }
    }

    /// Maps the 4 KiB page at `ipa` to `pa`, allocating intermediate tables as needed.
    ///
    /// Tables allocated before a failure stay linked (empty), so the tree is always
    /// consistent and a retry reuses them.
    pub(crate) fn map(
        &self,
        mem: &mut impl TableMemory,
        ipa: u64,
        pa: u64,
        prot: Prot,
    ) -> Result<(), MapError> {
        if pa & !ADDR_MASK != 0 {
            return Err(MapError::OutOfRange);
        }
        self.map_leaf(mem, ipa, Desc::page(pa, prot).0)
    }

    /// Installs `leaf`, a level-3 page descriptor in whatever format the tables' regime
    /// uses, for the page at `ipa`, allocating intermediate tables as needed. Table
    /// descriptors have the same format at stage 1 and stage 2, so this walk also builds
    /// the nVHE EL2 stage-1 tables (with a 48-bit geometry: four levels, one root page).
    pub(crate) fn map_leaf(
        &self,
        mem: &mut impl TableMemory,
        ipa: u64,
        leaf: u64,
    ) -> Result<(), MapError> {
        if ipa % PAGE_SIZE != 0 {
            return Err(MapError::OutOfRange);
        }
        self.install(mem, ipa, LAST_LEVEL, Desc(leaf))
    }

    /// Maps the 2 MiB at `ipa` to `pa` with one level-2 block (both aligned to 2 MiB),
    /// allocating the tables above it as needed. `MapError::Table` if 4 KiB pages (or an
    /// empty table left by unmapping them) are there: blocks replace tables only by
    /// break-before-make, which needs a TLB invalidation in between.
    pub(crate) fn map_block(
        &self,
        mem: &mut impl TableMemory,
        ipa: u64,
        pa: u64,
        prot: Prot,
    ) -> Result<(), MapError> {
        if ipa % BLOCK_SIZE != 0 || pa % BLOCK_SIZE != 0 || pa & !ADDR_MASK != 0 {
            return Err(MapError::OutOfRange);
        }
        if self.geometry.start_level > BLOCK_LEVEL {
            return Err(MapError::OutOfRange);
        }
        self.install(mem, ipa, BLOCK_LEVEL, Desc::block(pa, prot))
    }

    /// Walks to `level` for `ipa`, allocating tables above it, and writes `leaf` there
    /// if the entry is invalid.
    fn install(
        &self,
        mem: &mut impl TableMemory,
        ipa: u64,
        level: u32,
        leaf: Desc,
    ) -> Result<(), MapError> {
        if ipa >= self.geometry.ipa_limit() {
            return Err(MapError::OutOfRange);
        }
        let mut table = self.root;
        let mut at = self.geometry.start_level;
        while at < level {
            let (page, index) = self.slot(at, table, ipa);
            let desc = Desc(mem.read(page, index));
            table = if !desc.is_valid() {
                let child = mem.alloc_table().ok_or(MapError::NoMemory)?;
                mem.write(page, index, Desc::table(child).0);
                child
            } else if desc.is_table(at) {
                desc.output_address()
            } else {
                // A block maps this IPA already.
                return Err(MapError::Exists(desc));
            };
            at += 1;
        }
        let (page, index) = self.slot(level, table, ipa);
        let old = Desc(mem.read(page, index));
        if old.is_table(level) {
            return Err(MapError::Table);
        }
        if old.is_valid() {
            return Err(MapError::Exists(old));
        }
        mem.write(page, index, leaf.0);
        Ok(())
    }

    /// Unlinks the level-3 table under the level-2 entry translating `ipa`, so that a
    /// block can take its place: returns the table and how many valid pages it mapped,
    /// or `None` if no table is there. The caller invalidates the TLBs (walk caches
    /// included) before it frees the table or maps the block (break-before-make).
    pub(crate) fn detach_table(
        &self,
        mem: &mut impl TableMemory,
        ipa: u64,
    ) -> Option<(u64, usize)> {
        if ipa >= self.geometry.ipa_limit() || self.geometry.start_level > BLOCK_LEVEL {
            return None;
        }
        let mut table = self.root;
        let mut level = self.geometry.start_level;
        loop {
            let (page, index) = self.slot(level, table, ipa);
            let desc = Desc(mem.read(page, index));
            if !desc.is_table(level) || !desc.is_valid() {
                return None;
            }
            if level == BLOCK_LEVEL {
                let child = desc.output_address();
                let pages = (0..PTRS_PER_TABLE)
                    .filter(|&i| Desc(mem.read(child, i)).is_valid())
                    .count();
                mem.write(page, index, Desc::INVALID.0);
                return Some((child, pages));
            }
            table = desc.output_address();
            level += 1;
        }
    }

    /// The leaf descriptor mapping `ipa`, if any.
    pub(crate) fn lookup(&self, mem: &impl TableMemory, ipa: u64) -> Option<Desc> {
        if ipa >= self.geometry.ipa_limit() {
            return None;
        }
        let mut table = self.root;
        let mut level = self.geometry.start_level;
        loop {
            let (page, index) = self.slot(level, table, ipa);
            let desc = Desc(mem.read(page, index));
            if !desc.is_valid() {
                return None;
            }
            if !desc.is_table(level) {
                return Some(desc);
            }
            table = desc.output_address();
            level += 1;
        }
    }

    /// Invalidates every page mapping in `[start, end)` and every block overlapping it
    /// (whole), calling `unmapped(ipa, desc)` for each valid leaf removed; the caller unpins the pages and invalidates TLBs afterwards.
    ///
    /// Bounds are widened to whole pages (as KVM's walker does) and clamped to the IPA
    /// limit. Only present tables are visited, so the cost follows what is mapped rather
    /// than the size of the range. Tables are kept until teardown. Returns the number of
    /// leaves removed.
    pub(crate) fn unmap_range(
        &self,
        mem: &mut impl TableMemory,
        start: u64,
        end: u64,
        mut unmapped: impl FnMut(u64, Desc),
    ) -> usize {
        self.update_leaves(mem, start, end, |ipa, desc| {
            unmapped(ipa, desc);
            Some(Desc::INVALID)
        })
    }

    /// Removes write permission from every writable page mapping in `[start, end)`
    /// (KVM's `kvm_pgtable_stage2_wrprotect`), with [`Self::unmap_range`]'s bounds and
    /// cost. Returns the number of leaves changed; the caller invalidates the TLBs if it
    /// is not 0.
    pub(crate) fn write_protect_range(
        &self,
        mem: &mut impl TableMemory,
        start: u64,
        end: u64,
    ) -> usize {
        self.update_leaves(mem, start, end, |_, desc| {
            desc.writable().then_some(desc.with_write(false))
        })
    }

    /// Gives the read-only page mapping at `ipa` write permission again (KVM's
    /// `kvm_pgtable_stage2_relax_perms` for a write fault on a write-protected page).
    /// Returns whether a leaf changed: `false` if none maps `ipa` or it is writable
    /// already. A stale read-only TLB entry may remain; the caller invalidates it.
    pub(crate) fn make_writable(&self, mem: &mut impl TableMemory, ipa: u64) -> bool {
        let Some(end) = ipa.checked_add(1) else {
            return false;
        };
        self.update_leaves(mem, ipa, end, |_, desc| {
            (!desc.writable()).then_some(desc.with_write(true))
        }) == 1
    }

    /// Whether any page mapping in `[start, end)` has its access flag set, clearing the
    /// flags if `clear` (KVM's `kvm_pgtable_stage2_test_clear_young`). Clearing leaves
    /// TLB entries that still allow access; the caller invalidates them if the ageing
    /// must see later accesses (`clear_flush_young`).
    pub(crate) fn age_range(
        &self,
        mem: &mut impl TableMemory,
        start: u64,
        end: u64,
        clear: bool,
    ) -> bool {
        let mut young = false;
        self.update_leaves(mem, start, end, |_, desc| {
            young |= desc.young();
            (clear && desc.young()).then_some(desc.with_young(false))
        });
        young
    }

    /// Sets the access flag of the page mapping at `ipa` after an access-flag fault
    /// (KVM's `kvm_pgtable_stage2_mkyoung`). Returns whether a leaf changed. No TLB
    /// maintenance is needed: a descriptor that faults on its access flag is never cached.
    pub(crate) fn make_young(&self, mem: &mut impl TableMemory, ipa: u64) -> bool {
        let Some(end) = ipa.checked_add(1) else {
            return false;
        };
        self.update_leaves(mem, ipa, end, |_, desc| {
            (!desc.young()).then_some(desc.with_young(true))
        }) == 1
    }

    /// Calls `f(ipa, desc)` for every valid page mapping in `[start, end)`, and every
    /// block that overlaps it (with the block's first IPA), and writes the
    /// descriptor it returns, if any. Bounds are widened to whole pages and clamped to
    /// the IPA limit; only present tables are visited. Returns the number of leaves
    /// written.
    fn update_leaves(
        &self,
        mem: &mut impl TableMemory,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, Desc) -> Option<Desc>,
    ) -> usize {
        let limit = self.geometry.ipa_limit();
        let start = start & !(PAGE_SIZE - 1);
        // The limit is page aligned, so rounding up after clamping cannot overflow.
        let end = end.min(limit).next_multiple_of(PAGE_SIZE);
        if start >= end {
            return 0;
        }
        self.update_level(
            mem,
            self.geometry.start_level,
            self.root,
            start,
            end,
            &mut f,
        )
    }

    /// [`Self::update_leaves`] for `[start, end)`, all of which the table at `table` (at
    /// `level`) translates. Recursion depth is bounded by the four levels.
    fn update_level<M: TableMemory, F: FnMut(u64, Desc) -> Option<Desc>>(
        &self,
        mem: &mut M,
        level: u32,
        table: u64,
        start: u64,
        end: u64,
        f: &mut F,
    ) -> usize {
        let span = 1u64 << level_shift(level);
        let mut written = 0;
        let mut addr = start;
        while addr < end {
            // IPAs stay below 2^48, so the next entry's base cannot overflow.
            let next = (addr | (span - 1)) + 1;
            let (page, index) = self.slot(level, table, addr);
            let desc = Desc(mem.read(page, index));
            if desc.is_valid() {
                if desc.is_table(level) {
                    let child = desc.output_address();
                    written += self.update_level(mem, level + 1, child, addr, next.min(end), f);
                } else if let Some(new) = f(addr & !(span - 1), desc) {
                    // A page, or a block the range touches: blocks change as a whole.
                    mem.write(page, index, new.0);
                    written += 1;
                }
            }
            addr = next;
        }
        written
    }

    /// Calls `table(pa)` for every non-root table reachable from the root, children before
    /// their parent, so teardown can free them. The root itself is not included.
    pub(crate) fn for_each_table(&self, mem: &impl TableMemory, mut table: impl FnMut(u64)) {
        let level = self.geometry.start_level;
        for i in 0..self.geometry.root_entries() {
            let page = self.root + (i / PTRS_PER_TABLE) as u64 * PAGE_SIZE;
            let desc = Desc(mem.read(page, i % PTRS_PER_TABLE));
            if desc.is_valid() && desc.is_table(level) {
                Self::visit_tables(mem, level + 1, desc.output_address(), &mut table);
            }
        }
    }

    /// Reports `pa` (a table at `level`) after every table below it.
    fn visit_tables<M: TableMemory, F: FnMut(u64)>(mem: &M, level: u32, pa: u64, table: &mut F) {
        if level < LAST_LEVEL {
            for index in 0..PTRS_PER_TABLE {
                let desc = Desc(mem.read(pa, index));
                if desc.is_valid() && desc.is_table(level) {
                    Self::visit_tables(mem, level + 1, desc.output_address(), table);
                }
            }
        }
        table(pa);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::boxed::Box;
    use std::cell::Cell;
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    const BASE: u64 = 0x8000_0000;
    const RW_X: Prot = Prot {
        write: true,
        exec: true,
    };
    const RO_XN: Prot = Prot {
        write: false,
        exec: false,
    };

    /// Table pages in a `Vec`; page `i` has physical address `BASE + i * 4096`.
    struct FakeTableMemory {
        pages: Vec<Box<[u64; PTRS_PER_TABLE]>>,
        /// Tables `alloc_table()` may still hand out; `None` is unlimited.
        budget: Option<usize>,
        /// Tables handed out by `alloc_table()`, in order.
        allocated: Vec<u64>,
        reads: Cell<usize>,
    }

    impl FakeTableMemory {
        fn new() -> Self {
            Self {
                pages: Vec::new(),
                budget: None,
                allocated: Vec::new(),
                reads: Cell::new(0),
            }
        }

        fn push_page(&mut self) -> u64 {
            self.pages.push(Box::new([0; PTRS_PER_TABLE]));
            BASE + (self.pages.len() as u64 - 1) * PAGE_SIZE
        }

        /// `pages` contiguous zeroed pages aligned to their total size, outside the budget.
        fn alloc_root(&mut self, pages: usize) -> u64 {
            while self.pages.len() % pages != 0 {
                self.push_page();
            }
            let root = self.push_page();
            for _ in 1..pages {
                self.push_page();
            }
            root
        }

        fn page(&self, table: u64) -> usize {
            assert!(
                table >= BASE && table % PAGE_SIZE == 0,
                "bad table address {table:#x}"
            );
            let page = ((table - BASE) / PAGE_SIZE) as usize;
            assert!(
                page < self.pages.len(),
                "table {table:#x} was never allocated"
            );
            page
        }
    }

    impl TableMemory for FakeTableMemory {
        fn read(&self, table: u64, index: usize) -> u64 {
            self.reads.set(self.reads.get() + 1);
            self.pages[self.page(table)][index]
        }

        fn write(&mut self, table: u64, index: usize, value: u64) {
            let page = self.page(table);
            self.pages[page][index] = value;
        }

        fn alloc_table(&mut self) -> Option<u64> {
            match &mut self.budget {
                Some(0) => return None,
                Some(left) => *left -= 1,
                None => {}
            }
            let pa = self.push_page();
            self.allocated.push(pa);
            Some(pa)
        }
    }

    fn setup(ipa_bits: u32) -> (Stage2, FakeTableMemory) {
        let geometry = Geometry::new(ipa_bits).unwrap();
        let mut mem = FakeTableMemory::new();
        let root = mem.alloc_root(geometry.root_pages);
        (Stage2::new(geometry, root), mem)
    }

    #[test]
    fn geometry_table() {
        // (ipa_bits, start_level, root_pages, vtcr_bits)
        let expected = [
            (32, 2, 4, 0x3520),
            (36, 1, 1, 0x355c),
            (39, 1, 1, 0x3559),
            (40, 1, 2, 0x3558),
            (42, 1, 8, 0x3556),
            (44, 0, 1, 0x3594),
            (48, 0, 1, 0x3590),
        ];
        for (bits, start, pages, vtcr) in expected {
            let g = Geometry::new(bits).unwrap();
            assert_eq!(
                (g.ipa_bits, g.start_level, g.root_pages),
                (bits, start, pages),
                "{bits}"
            );
            assert_eq!(g.vtcr_bits(), vtcr, "ipa_bits {bits}");
        }
        assert_eq!(Geometry::new(40).unwrap().root_order(), 1);
        assert_eq!(Geometry::new(42).unwrap().root_order(), 3);
        assert_eq!(Geometry::new(40).unwrap().ipa_limit(), 0x100_0000_0000);
    }

    #[test]
    fn geometry_every_size() {
        assert_eq!(Geometry::new(31), None);
        assert_eq!(Geometry::new(49), None);
        for bits in 32..=48 {
            let g = Geometry::new(bits).unwrap();
            assert!(g.start_level <= 2, "{bits}");
            assert!(
                (1..=16).contains(&g.root_pages) && g.root_pages.is_power_of_two(),
                "{bits}"
            );
            // Levels as KVM computes them: ARM64_HW_PGTABLE_LEVELS(ipa_bits - 4).
            let kvm_levels = ((bits - 4) - 3 - 1) / 9;
            assert_eq!(4 - g.start_level, kvm_levels, "{bits}");
            // The root resolves exactly the bits above its level.
            let root_bits = g.root_entries().trailing_zeros();
            assert_eq!(level_shift(g.start_level) + root_bits, bits, "{bits}");
            assert!(g.root_entries() <= g.root_pages * PTRS_PER_TABLE);
            // SL0 decodes back to the start level (VTCR_EL2_SL0_TO_LVLS for 4K).
            let sl0 = (g.vtcr_bits() >> 6) & 3;
            assert_eq!(sl0 as u32 + 4 - 2, 4 - g.start_level, "{bits}");
            assert_eq!(g.vtcr_bits() & 0x3f, 64 - u64::from(bits));
        }
    }

    #[test]
    fn descriptor_bits_exact() {
        assert_eq!(Desc::page(0x4000_1000, RW_X), Desc(0x0000_0000_4000_17ff));
        assert_eq!(
            Desc::page(0x8_1234_5000, RO_XN),
            Desc(0x0040_0008_1234_577f)
        );
        assert_eq!(Desc::table(0x8000_3000), Desc(0x8000_3003));
        assert!(!Desc::INVALID.is_valid());
    }

    #[test]
    fn permissions_round_trip() {
        for write in [false, true] {
            for exec in [false, true] {
                let prot = Prot { write, exec };
                let d = Desc::page(0x1234_5000, prot);
                assert_eq!(d.prot(), prot);
                assert!(d.is_valid());
                assert_eq!(d.output_address(), 0x1234_5000);
            }
        }
        // XN = 0b01 (execute-never at EL1 only, with FEAT_XNX) still counts as no exec.
        assert!(!Desc(Desc::page(0, RW_X).0 | 1 << 53).prot().exec);
    }

    #[test]
    fn map_lookup_round_trip() {
        let (s2, mut mem) = setup(40);
        let ipa = 0x12_3456_7000;
        assert_eq!(s2.lookup(&mem, ipa), None);
        s2.map(&mut mem, ipa, 0x9_0000_1000, RW_X).unwrap();
        assert_eq!(s2.lookup(&mem, ipa), Some(Desc::page(0x9_0000_1000, RW_X)));
        assert_eq!(s2.lookup(&mem, ipa + PAGE_SIZE), None);
        assert_eq!(s2.lookup(&mem, ipa - PAGE_SIZE), None);
        // Start level 1: one level-2 and one level-3 table.
        assert_eq!(mem.allocated.len(), 2);
        // A neighbour in the same level-3 table allocates nothing.
        s2.map(&mut mem, ipa + PAGE_SIZE, 0x5000, RO_XN).unwrap();
        assert_eq!(mem.allocated.len(), 2);
        assert_eq!(s2.lookup(&mem, ipa + PAGE_SIZE).unwrap().prot(), RO_XN);
        assert_eq!(s2.lookup(&mem, 1 << 40), None);
    }

    #[test]
    fn map_twice_exists() {
        let (s2, mut mem) = setup(48);
        s2.map(&mut mem, 0x1000, 0x2000, RO_XN).unwrap();
        let first = Desc::page(0x2000, RO_XN);
        assert_eq!(
            s2.map(&mut mem, 0x1000, 0x3000, RW_X),
            Err(MapError::Exists(first))
        );
        assert_eq!(s2.lookup(&mem, 0x1000), Some(first));
    }

    #[test]
    fn el2_stage1_tables_share_the_walk() {
        use crate::logic::hyplayout;
        // The nVHE EL2 tables: 48 bits, four levels from level 0, one root page.
        let (tables, mut mem) = setup(48);
        assert_eq!(tables.geometry().start_level, 0);
        assert_eq!(tables.geometry().root_pages, 1);
        let va = 0x8000_1234_5000;
        let leaf = hyplayout::page_desc(0x4000_0000, hyplayout::Prot::Text);
        tables.map_leaf(&mut mem, va, leaf).unwrap();
        // Where the EL2 MMU looks for it.
        let mut table = tables.root();
        for level in 0..3 {
            let d = mem.read(table, hyplayout::index(va, level));
            assert_eq!(d, hyplayout::table_desc(hyplayout::desc_pa(d)));
            table = hyplayout::desc_pa(d);
        }
        assert_eq!(mem.read(table, hyplayout::index(va, 3)), leaf);
        assert_eq!(
            tables.map_leaf(&mut mem, va, leaf),
            Err(MapError::Exists(Desc(leaf)))
        );
    }

    #[test]
    fn out_of_range() {
        let (s2, mut mem) = setup(40);
        let limit = 1u64 << 40;
        assert_eq!(s2.map(&mut mem, limit, 0, RW_X), Err(MapError::OutOfRange));
        assert_eq!(s2.map(&mut mem, !0xfff, 0, RW_X), Err(MapError::OutOfRange));
        assert_eq!(s2.map(&mut mem, 0x1800, 0, RW_X), Err(MapError::OutOfRange));
        assert_eq!(
            s2.map(&mut mem, 0x1000, 0x2008, RW_X),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            s2.map(&mut mem, 0x1000, 1 << 48, RW_X),
            Err(MapError::OutOfRange)
        );
        assert!(mem.allocated.is_empty());
        s2.map(&mut mem, limit - PAGE_SIZE, 0, RW_X).unwrap();
    }

    #[test]
    fn no_memory_leaves_tree_consistent() {
        let (s2, mut mem) = setup(48);
        let ipa = 0xab_cdef_1000;
        // Start level 0 needs three tables; allow only two.
        mem.budget = Some(2);
        assert_eq!(s2.map(&mut mem, ipa, 0x7000, RW_X), Err(MapError::NoMemory));
        assert_eq!(s2.lookup(&mem, ipa), None);
        let mut seen = Vec::new();
        s2.for_each_table(&mem, |pa| seen.push(pa));
        assert_eq!(seen.len(), 2);
        // A retry reuses the linked tables and needs just one more.
        mem.budget = Some(1);
        s2.map(&mut mem, ipa, 0x7000, RW_X).unwrap();
        assert_eq!(mem.budget, Some(0));
        assert_eq!(s2.lookup(&mem, ipa), Some(Desc::page(0x7000, RW_X)));
    }

    #[test]
    fn unmap_range_exact() {
        let (s2, mut mem) = setup(40);
        // Pages on both sides of a 2 MiB and a 1 GiB boundary, plus some outside.
        let ipas = [
            0x0000_1000,
            0x3fe0_0000,
            0x3fff_f000,
            0x4000_0000,
            0x4000_1000,
            0x4020_0000,
            0x8000_0000,
        ];
        for (i, &ipa) in ipas.iter().enumerate() {
            s2.map(&mut mem, ipa, 0x10_0000 + i as u64 * PAGE_SIZE, RW_X)
                .unwrap();
        }
        let tables = mem.allocated.len();
        let mut seen = Vec::new();
        let n = s2.unmap_range(&mut mem, 0x3fe0_0000, 0x4020_0000, |ipa, d| {
            seen.push((ipa, d))
        });
        assert_eq!(n, 4);
        let expected: Vec<(u64, Desc)> = (1..=4)
            .map(|i| (ipas[i], Desc::page(0x10_0000 + i as u64 * PAGE_SIZE, RW_X)))
            .collect();
        assert_eq!(seen, expected);
        for (i, &ipa) in ipas.iter().enumerate() {
            assert_eq!(
                s2.lookup(&mem, ipa).is_some(),
                !(1..=4).contains(&i),
                "{ipa:#x}"
            );
        }
        // Again: nothing left to remove.
        assert_eq!(
            s2.unmap_range(&mut mem, 0x3fe0_0000, 0x4020_0000, |_, _| panic!()),
            0
        );
        // Tables are kept, and a remap reuses them.
        s2.map(&mut mem, 0x4000_0000, 0x1000, RO_XN).unwrap();
        assert_eq!(mem.allocated.len(), tables);
        // Unaligned bounds widen to whole pages; an empty or inverted range does nothing.
        assert_eq!(
            s2.unmap_range(&mut mem, 0x4000_0000, 0x4000_0000, |_, _| panic!()),
            0
        );
        assert_eq!(
            s2.unmap_range(&mut mem, 0x5000_0000, 0x4000_0000, |_, _| panic!()),
            0
        );
        assert_eq!(
            s2.unmap_range(&mut mem, 0x4000_0800, 0x4000_0801, |_, _| {}),
            1
        );
        assert_eq!(s2.lookup(&mem, 0x4000_0000), None);
    }

    #[test]
    fn unmap_huge_sparse_range() {
        let (s2, mut mem) = setup(40);
        let top = 0xff_ffff_f000;
        s2.map(&mut mem, 0x1000, 0x1000, RW_X).unwrap();
        s2.map(&mut mem, top, 0x2000, RW_X).unwrap();
        mem.reads.set(0);
        let mut seen = Vec::new();
        // Beyond the limit: clamped.
        let n = s2.unmap_range(&mut mem, 0, u64::MAX, |ipa, _| seen.push(ipa));
        assert_eq!(n, 2);
        assert_eq!(seen, vec![0x1000, top]);
        // 1024 root entries plus six 512-entry tables, not 2^28 pages.
        assert!(
            mem.reads.get() <= 1024 + 6 * 512,
            "{} reads",
            mem.reads.get()
        );
        assert_eq!(
            s2.unmap_range(&mut mem, 1 << 40, u64::MAX, |_, _| panic!()),
            0
        );
    }

    #[test]
    fn for_each_table_visits_all_once() {
        let (s2, mut mem) = setup(42);
        for ipa in [
            0x1000,
            0x20_0000,
            0x4000_0000,
            0x80_0000_0000,
            0x3ff_ffff_f000,
        ] {
            s2.map(&mut mem, ipa, ipa, RO_XN).unwrap();
        }
        let mut seen = Vec::new();
        s2.for_each_table(&mem, |pa| seen.push(pa));
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a table was visited twice");
        let allocated: BTreeSet<u64> = mem.allocated.iter().copied().collect();
        assert_eq!(unique, allocated);
        assert!(!unique.contains(&s2.root()));
        // Children come before their parent: follow each mapping's path down from the root.
        for ipa in [
            0x1000,
            0x20_0000,
            0x4000_0000,
            0x80_0000_0000,
            0x3ff_ffff_f000,
        ] {
            let mut parent_pos = None;
            let mut table = s2.root();
            for level in s2.geometry().start_level..LAST_LEVEL {
                let (page, index) = s2.slot(level, table, ipa);
                table = Desc(mem.read(page, index)).output_address();
                let pos = seen.iter().position(|&pa| pa == table).unwrap();
                if let Some(parent) = parent_pos {
                    assert!(pos < parent, "{ipa:#x} level {level}");
                }
                parent_pos = Some(pos);
            }
        }
    }

    #[test]
    fn write_protect_then_relax() {
        let (s2, mut mem) = setup(40);
        // Writable pages on both sides of a 2 MiB boundary, a read-only one among them,
        // and one outside the range.
        let pages = [
            (0x4000_0000u64, RW_X),
            (0x4000_1000, RO_XN),
            (0x401f_f000, RW_X),
            (0x4020_0000, RW_X),
            (0x4040_0000, RW_X),
        ];
        for (i, &(ipa, prot)) in pages.iter().enumerate() {
            s2.map(&mut mem, ipa, 0x10_0000 + i as u64 * PAGE_SIZE, prot)
                .unwrap();
        }
        // Three writable pages lose write permission, nothing else changes.
        assert_eq!(
            s2.write_protect_range(&mut mem, 0x4000_0000, 0x4040_0000),
            3
        );
        for (i, &(ipa, prot)) in pages.iter().enumerate() {
            let d = s2.lookup(&mem, ipa).unwrap();
            let want = if i < 4 {
                Prot {
                    write: false,
                    ..prot
                }
            } else {
                prot
            };
            assert_eq!(
                d,
                Desc::page(0x10_0000 + i as u64 * PAGE_SIZE, want),
                "{ipa:#x}"
            );
        }
        // Again: nothing left to protect.
        assert_eq!(
            s2.write_protect_range(&mut mem, 0x4000_0000, 0x4040_0000),
            0
        );
        // Relaxing one page restores exactly its descriptor; twice is a no-op; an
        // unmapped IPA or one past the limit changes nothing.
        assert!(s2.make_writable(&mut mem, 0x401f_f000));
        assert_eq!(
            s2.lookup(&mem, 0x401f_f000),
            Some(Desc::page(0x10_2000, RW_X))
        );
        assert!(!s2.make_writable(&mut mem, 0x401f_f000));
        assert!(!s2.make_writable(&mut mem, 0x5000_0000));
        assert!(!s2.make_writable(&mut mem, 1 << 40));
        assert!(!s2.make_writable(&mut mem, u64::MAX));
        assert!(!s2.lookup(&mem, 0x4020_0000).unwrap().writable());
        // Unaligned IPAs address their page.
        assert!(s2.make_writable(&mut mem, 0x4020_0abc));
        assert!(s2.lookup(&mem, 0x4020_0000).unwrap().writable());
        // The page a read-only mapping started as can be made writable (the caller
        // decides whether the slot allows it).
        assert!(s2.make_writable(&mut mem, 0x4000_1000));
        assert_eq!(
            s2.lookup(&mem, 0x4000_1000).unwrap().prot(),
            Prot {
                write: true,
                exec: false
            }
        );
        // Unmapping still sees every leaf, protected or not.
        assert_eq!(s2.unmap_range(&mut mem, 0, 1 << 40, |_, _| {}), 5);
    }

    #[test]
    fn ageing_clears_and_faults_restore() {
        let (s2, mut mem) = setup(40);
        let pages = [0x4000_0000u64, 0x4000_1000, 0x4020_0000, 0x4040_0000];
        for (i, &ipa) in pages.iter().enumerate() {
            s2.map(&mut mem, ipa, 0x10_0000 + i as u64 * PAGE_SIZE, RW_X)
                .unwrap();
        }
        let young = |mem: &FakeTableMemory, ipa| s2.lookup(mem, ipa).unwrap().young();
        // Mapped pages start young; testing changes nothing.
        assert!(pages.iter().all(|&ipa| young(&mem, ipa)));
        assert!(s2.age_range(&mut mem, 0x4000_0000, 0x4040_0000, false));
        assert!(young(&mem, 0x4000_0000));
        // Clearing reports young once, then old; pages outside the range keep the flag.
        assert!(s2.age_range(&mut mem, 0x4000_0000, 0x4040_0000, true));
        assert!(!s2.age_range(&mut mem, 0x4000_0000, 0x4040_0000, true));
        assert!(!young(&mem, 0x4000_1000));
        assert!(young(&mem, 0x4040_0000));
        // Only the flag changed: address and permissions are intact.
        assert_eq!(
            s2.lookup(&mem, 0x4020_0000).unwrap().with_young(true),
            Desc::page(0x10_2000, RW_X)
        );
        // An access-flag fault makes one page young again, once; unmapped IPAs and IPAs
        // past the limit change nothing.
        assert!(s2.make_young(&mut mem, 0x4000_1abc));
        assert!(!s2.make_young(&mut mem, 0x4000_1000));
        assert!(!s2.make_young(&mut mem, 0x5000_0000));
        assert!(!s2.make_young(&mut mem, u64::MAX));
        assert!(s2.age_range(&mut mem, 0x4000_1000, 0x4000_2000, false));
        assert!(!s2.age_range(&mut mem, 0x4000_0000, 0x4000_1000, false));
        // An empty range is old.
        assert!(!s2.age_range(&mut mem, 0x6000_0000, 0x7000_0000, true));
    }

    #[test]
    fn blocks_map_change_as_a_whole_and_replace_tables() {
        let (s2, mut mem) = setup(40);
        const B: u64 = BLOCK_SIZE;
        // Misaligned IPA or PA, or an IPA past the limit, are refused.
        for (ipa, pa) in [(B + PAGE_SIZE, 0), (B, PAGE_SIZE), (1 << 40, 0)] {
            assert_eq!(
                s2.map_block(&mut mem, ipa, pa, RW_X),
                Err(MapError::OutOfRange)
            );
        }
        s2.map_block(&mut mem, 0x4000_0000, 0x8000_0000, RW_X)
            .unwrap();
        let d = s2.lookup(&mem, 0x4012_3456).unwrap();
        assert!(d.is_block() && d.young() && d.writable());
        assert_eq!(d.output_address(), 0x8000_0000);
        assert_eq!(d, Desc::block(0x8000_0000, RW_X));
        assert!(!Desc::page(0x8000_0000, RW_X).is_block());
        // A page inside a block exists already; so does a second block.
        assert!(matches!(
            s2.map(&mut mem, 0x4010_0000, 0x1000, RW_X),
            Err(MapError::Exists(_))
        ));
        assert!(matches!(
            s2.map_block(&mut mem, 0x4000_0000, 0x8020_0000, RW_X),
            Err(MapError::Exists(_))
        ));
        // Write protection, relaxing and ageing change the whole block, once.
        assert_eq!(
            s2.write_protect_range(&mut mem, 0x4010_0000, 0x4010_1000),
            1
        );
        assert!(!s2.lookup(&mem, 0x4000_0000).unwrap().writable());
        assert!(s2.make_writable(&mut mem, 0x401f_f000));
        assert!(s2.age_range(&mut mem, 0x4000_0000, 0x4000_1000, true));
        assert!(!s2.lookup(&mem, 0x401f_f000).unwrap().young());
        assert!(s2.make_young(&mut mem, 0x4000_0000));
        // Unmapping one page of it removes the block.
        let mut seen = Vec::new();
        let n = s2.unmap_range(&mut mem, 0x4010_0000, 0x4010_1000, |ipa, d| {
            seen.push((ipa, d.is_block()))
        });
        assert_eq!((n, seen), (1, vec![(0x4000_0000, true)]));
        assert_eq!(s2.lookup(&mem, 0x4000_0000), None);
        // Pages under a level-2 entry make a table; a block there needs it detached.
        s2.map(&mut mem, 0x4020_0000, 0x1000, RW_X).unwrap();
        s2.map(&mut mem, 0x4020_5000, 0x2000, RW_X).unwrap();
        assert_eq!(
            s2.map_block(&mut mem, 0x4020_0000, 0x8000_0000, RW_X),
            Err(MapError::Table)
        );
        let (table, pages) = s2.detach_table(&mut mem, 0x4021_0000).unwrap();
        assert_eq!(pages, 2);
        assert!(mem.allocated.contains(&table));
        assert_eq!(s2.lookup(&mem, 0x4020_5000), None);
        assert_eq!(s2.detach_table(&mut mem, 0x4020_0000), None);
        s2.map_block(&mut mem, 0x4020_0000, 0x8000_0000, RO_XN)
            .unwrap();
        assert_eq!(
            s2.lookup(&mem, 0x4020_5000),
            Some(Desc::block(0x8000_0000, RO_XN))
        );
        // No table to detach under a block or where nothing is mapped.
        assert_eq!(s2.detach_table(&mut mem, 0x4020_0000), None);
        assert_eq!(s2.detach_table(&mut mem, 0x5000_0000), None);
        // Teardown still finds every table, and unmapping all sees the block.
        assert_eq!(s2.unmap_range(&mut mem, 0, 1 << 40, |_, _| {}), 1);
    }

    #[test]
    fn write_bit_accessors() {
        let d = Desc::page(0x1234_5000, RW_X);
        assert!(d.writable());
        assert!(!d.with_write(false).writable());
        assert_eq!(
            d.with_write(false),
            Desc::page(
                0x1234_5000,
                Prot {
                    write: false,
                    exec: true
                }
            )
        );
        assert_eq!(d.with_write(false).with_write(true), d);
    }

    #[test]
    fn concatenated_root_second_page() {
        let (s2, mut mem) = setup(40);
        assert_eq!(s2.geometry().root_pages, 2);
        let ipa = 0xff_ffff_f000;
        s2.map(&mut mem, ipa, 0x4_0000_0000, RW_X).unwrap();
        // Root index 1023: the last entry of the second root page.
        let second = s2.root() + PAGE_SIZE;
        assert!(Desc(mem.read(second, 511)).is_valid());
        assert!((0..PTRS_PER_TABLE).all(|i| mem.read(s2.root(), i) == 0));
        assert_eq!(s2.lookup(&mem, ipa), Some(Desc::page(0x4_0000_0000, RW_X)));
        // Index 512 (IPA 512 GiB) is the first entry of the second page.
        s2.map(&mut mem, 0x80_0000_0000, 0x1000, RW_X).unwrap();
        assert!(Desc(mem.read(second, 0)).is_valid());
    }
}
