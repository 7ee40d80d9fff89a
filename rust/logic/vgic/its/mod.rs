// SPDX-License-Identifier: GPL-2.0

//! The GICv3 ITS (`KVM_DEV_TYPE_ARM_VGIC_ITS`): its registers, the command queue, MSI
//! translation and the tables it saves in guest memory (ABI revision 0).
//!
//! KVM counterpart: `arch/arm64/kvm/vgic/vgic-its.c`. Commands are in `cmd`, the
//! save/restore of the device, interrupt translation and collection tables in `tables`.
//!
//! The ITS owns no memory: [`Its`] borrows its registers and three fixed-capacity
//! tables (devices, interrupt translation entries, collections) that the kernel layer
//! allocates once at device creation. Each table is kept sorted by its key, so an MSI
//! translation is two binary searches, and a full table fails the command as KVM's
//! failed allocation would. The LPIs themselves belong to the vGIC: the ITS drives them
//! through [`Lpis`], and reads and writes guest memory through [`GuestMem`].
//!
//! KVM's translation cache is not modelled: it only ever caches what a lookup would
//! find, and every change that could make it stale invalidates it.

mod cmd;
mod tables;

use core::ops::Range;

use super::attr::Errno;

/// The ITS frames: control (64 KiB) and translation (64 KiB, `GITS_TRANSLATER`).
pub(crate) const ITS_SIZE: u64 = 0x2_0000;
/// KVM implements no register in the translation frame: a guest write here is ignored
/// (MSIs reach the ITS through `KVM_SIGNAL_MSI` and irqfd routes, see [`Its::resolve`]).
#[cfg(test)]
pub(crate) const GITS_TRANSLATER: u64 = 0x1_0040;

pub(crate) const MAX_DEVICES: usize = 4096;
pub(crate) const MAX_ITES: usize = 16384;
pub(crate) const MAX_COLLECTIONS: usize = 512;

pub(crate) const GITS_CTLR: u64 = 0x0000;
pub(crate) const GITS_IIDR: u64 = 0x0004;
pub(crate) const GITS_TYPER: u64 = 0x0008;
pub(crate) const GITS_CBASER: u64 = 0x0080;
pub(crate) const GITS_CWRITER: u64 = 0x0088;
pub(crate) const GITS_CREADR: u64 = 0x0090;
pub(crate) const GITS_BASER: u64 = 0x0100;
pub(crate) const GITS_IDREGS_BASE: u64 = 0xffd0;
pub(crate) const GITS_PIDR0: u64 = 0xffe0;
pub(crate) const GITS_PIDR1: u64 = 0xffe4;
pub(crate) const GITS_PIDR2: u64 = 0xffe8;
pub(crate) const GITS_PIDR4: u64 = 0xffd0;
pub(crate) const GITS_CIDR0: u64 = 0xfff0;

const CTLR_ENABLE: u64 = 1;
const CTLR_QUIESCENT: u64 = 1 << 31;

const TYPER_PLPIS: u64 = 1;
const TYPER_ITT_ENTRY_SIZE_SHIFT: u32 = 4;
const TYPER_IDBITS_SHIFT: u32 = 8;
const TYPER_DEVBITS_SHIFT: u32 = 13;

const IIDR_REV_SHIFT: u32 = 12;
const PRODUCT_ID_KVM: u64 = 0x4b;
const IMPLEMENTER_ARM: u64 = 0x43b;

pub(crate) const CBASER_VALID: u64 = 1 << 63;
/// Physical address [51:12] (bits [15:12] are cleared when written: 64 KiB aligned).
const CBASER_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

pub(crate) const BASER_VALID: u64 = 1 << 63;
pub(crate) const BASER_INDIRECT: u64 = 1 << 62;
const BASER_TYPE_SHIFT: u32 = 56;
const BASER_ENTRY_SIZE_SHIFT: u32 = 48;
/// Entry size [52:48] and type [58:56] are read-only.
const BASER_RO_MASK: u64 = (0x1f << 48) | (0x7 << 56);
const BASER_PAGE_SIZE_SHIFT: u32 = 8;
const BASER_PAGE_SIZE_MASK: u64 = 3 << BASER_PAGE_SIZE_SHIFT;
const BASER_PAGE_SIZE_64K: u64 = 2 << BASER_PAGE_SIZE_SHIFT;
pub(crate) const BASER_TYPE_DEVICE: u64 = 1;
pub(crate) const BASER_TYPE_COLLECTION: u64 = 4;

/// Shareability [11:10], inner cacheability [61:59], outer cacheability [55:53]: the
/// same fields in GITS_CBASER and GITS_BASER<n>.
const SHAREABILITY_SHIFT: u32 = 10;
const INNER_CACHE_SHIFT: u32 = 59;
const OUTER_CACHE_SHIFT: u32 = 53;
const CACHE_NCNB: u64 = 0;
const CACHE_NC: u64 = 1;
const CACHE_RAWB: u64 = 3;
const SHARE_INNER: u64 = 1;
const SHARE_OUTER: u64 = 2;

/// KVM's reset value of a GITS_BASER<n>: inner RaWb, outer same as inner, inner
/// shareable, 64 KiB pages; type and entry size (8) added per table.
const INITIAL_BASER: u64 =
    (CACHE_RAWB << INNER_CACHE_SHIFT) | (SHARE_INNER << SHAREABILITY_SHIFT) | BASER_PAGE_SIZE_64K;

/// Entries of every table are 8 bytes in ABI revision 0.
pub(crate) const ESZ: u64 = 8;
const SZ_64K: u64 = 0x1_0000;

/// The first LPI, and the ID bits the ITS reports and accepts (KVM's `VITS_TYPER_*`).
pub(crate) const LPI_OFFSET: u32 = 8192;
pub(crate) const ID_BITS: u32 = 16;
pub(crate) const DEV_BITS: u32 = 16;
const MAX_DEVID: u32 = (1 << DEV_BITS) - 1;

/// A collection MAPC has not mapped (KVM's `COLLECTION_NOT_MAPPED`).
pub(crate) const COLLECTION_NOT_MAPPED: u32 = u32::MAX;

/// Guest memory as the ITS reads and writes it: little-endian 64-bit words at
/// guest-physical addresses. `Err(())`: not backed by guest RAM (KVM's `kvm_read_guest`
/// failing).
pub(crate) trait GuestMem {
    fn read_u64(&mut self, gpa: u64) -> Result<u64, ()>;
    fn write_u64(&mut self, gpa: u64, val: u64) -> Result<(), ()>;
    /// Whether the page holding `gpa` is guest RAM (KVM's `kvm_is_visible_gfn`), for the
    /// table bounds checks that do not access the entry; by default, whether the word
    /// reads.
    fn visible(&mut self, gpa: u64) -> bool {
        self.read_u64(gpa & !7).is_ok()
    }
}

/// The vGIC's LPIs as the ITS drives them. `vcpu` is a vCPU index (creation order).
/// Implemented by the kernel layer over the vGIC model (it reads the LPI property and
/// pending tables itself).
pub(crate) trait Lpis {
    /// The vCPU index whose redistributor number (GICR_TYPER.Processor_Number, the
    /// vCPU id; GITS_TYPER.PTA = 0) is `rdbase`.
    fn vcpu_by_rdbase(&self, rdbase: u64) -> Option<usize>;
    /// GICR_CTLR.EnableLPIs of `vcpu`.
    fn lpis_enabled(&self, vcpu: usize) -> bool;
    /// The VM's GICR_PROPBASER (KVM keeps one for all redistributors): its IDbits bound
    /// the LPI a MAPTI may name.
    fn propbaser(&self) -> u64;
    /// An ITE now maps `intid` (MAPTI, MAPI, RESTORE_TABLES): take a reference on the LPI
    /// (creating it, with its configuration and pending bit read from the guest's tables,
    /// when it had none), targeting `vcpu` (None: its collection is unmapped).
    /// Err(()): no room (the command fails as KVM's -ENOMEM).
    fn map(&mut self, intid: u32, vcpu: Option<usize>) -> Result<(), ()>;
    /// An ITE mapping `intid` is gone (DISCARD, MAPD of a mapped device, reset): drop the
    /// reference.
    fn unmap(&mut self, intid: u32);
    /// The LPI now targets `vcpu` (MOVI, MAPC remapping a collection).
    fn set_target(&mut self, intid: u32, vcpu: Option<usize>);
    /// Pending latch (INT and MSIs: true; CLEAR: false).
    fn set_pending(&mut self, intid: u32, pending: bool);
    /// INV: re-read the LPI's configuration byte from the property table.
    fn invalidate(&mut self, intid: u32);
    /// INVALL: re-read the configuration of every LPI targeting `vcpu`.
    fn invalidate_all(&mut self, vcpu: usize);
    /// MOVALL: every LPI (of the whole VM) targeting `from` now targets `to`.
    fn move_all(&mut self, from: usize, to: usize);
}

/// Why an MSI was not delivered ([`Its::resolve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MsiError {
    /// The ITS is disabled, or the target has LPIs disabled: `-EBUSY`.
    Busy,
    /// No translation (KVM's positive `E_ITS_INT_UNMAPPED_INTERRUPT`): the guest blocked
    /// it, `KVM_SIGNAL_MSI` returns 0.
    Unmapped,
}

/// A device MAPD mapped: where its interrupt translation table is and how many event
/// IDs it has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) id: u32,
    pub(crate) itt_addr: u64,
    /// 1..=16.
    pub(crate) eventid_bits: u8,
}

impl Device {
    pub(crate) const EMPTY: Self = Self {
        id: 0,
        itt_addr: 0,
        eventid_bits: 0,
    };
}

/// An interrupt translation entry: (device, event) → LPI, in a collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ite {
    pub(crate) devid: u32,
    pub(crate) eventid: u32,
    pub(crate) intid: u32,
    /// None once MAPC V=0 dropped the collection: KVM's ITE then keeps its LPI but no
    /// collection, even if the same ID is mapped again.
    pub(crate) collection: Option<u16>,
}

impl Ite {
    pub(crate) const EMPTY: Self = Self {
        devid: 0,
        eventid: 0,
        intid: 0,
        collection: None,
    };

    const fn key(&self) -> u64 {
        key(self.devid, self.eventid)
    }
}

const fn key(devid: u32, eventid: u32) -> u64 {
    ((devid as u64) << 32) | eventid as u64
}

/// A collection: an ID the guest routes to a redistributor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Collection {
    pub(crate) id: u16,
    /// The redistributor number (vCPU id), or [`COLLECTION_NOT_MAPPED`] for one MAPTI
    /// created.
    pub(crate) target: u32,
    /// Creation order: KVM saves its collection list in that order.
    pub(crate) seq: u64,
}

impl Collection {
    pub(crate) const EMPTY: Self = Self {
        id: 0,
        target: 0,
        seq: 0,
    };

    const fn mapped(&self) -> bool {
        self.target != COLLECTION_NOT_MAPPED
    }
}

/// Words of the bitmap of LPIs an ITE of this ITS maps ([`Its::lpi_map`]).
pub(crate) const LPI_MAP_WORDS: usize = (1 << ID_BITS) / 64;

/// The ITS's registers and the lengths of its tables.
#[derive(Clone, Debug)]
pub(crate) struct ItsRegs {
    enabled: bool,
    abi_rev: u8,
    cbaser: u64,
    creadr: u64,
    cwriter: u64,
    baser_device: u64,
    baser_coll: u64,
    nr_devices: usize,
    nr_ites: usize,
    nr_collections: usize,
    next_seq: u64,
}

impl Default for ItsRegs {
    /// The state KVM creates an ITS with (`vgic_its_create`).
    fn default() -> Self {
        let mut r = Self {
            enabled: false,
            abi_rev: 0,
            cbaser: 0,
            creadr: 0,
            cwriter: 0,
            baser_device: INITIAL_BASER | (BASER_TYPE_DEVICE << BASER_TYPE_SHIFT),
            baser_coll: INITIAL_BASER | (BASER_TYPE_COLLECTION << BASER_TYPE_SHIFT),
            nr_devices: 0,
            nr_ites: 0,
            nr_collections: 0,
            next_seq: 0,
        };
        r.commit_abi();
        r
    }
}

impl ItsRegs {
    /// KVM's `vgic_its_commit_v0`: the BASERs report the ABI's entry sizes.
    fn commit_abi(&mut self) {
        let esz = (ESZ - 1) << BASER_ENTRY_SIZE_SHIFT;
        self.baser_coll = (self.baser_coll & !(0x1f << BASER_ENTRY_SIZE_SHIFT)) | esz;
        self.baser_device = (self.baser_device & !(0x1f << BASER_ENTRY_SIZE_SHIFT)) | esz;
    }
}

/// One ITS, borrowed for one operation under the kernel layer's ITS lock.
pub(crate) struct Its<'a> {
    pub(crate) regs: &'a mut ItsRegs,
    /// Capacity [`MAX_DEVICES`]; `regs` holds the length.
    pub(crate) devices: &'a mut [Device],
    /// Capacity [`MAX_ITES`].
    pub(crate) ites: &'a mut [Ite],
    /// Capacity [`MAX_COLLECTIONS`].
    pub(crate) collections: &'a mut [Collection],
    /// [`LPI_MAP_WORDS`] words, zeroed at creation: bit n is set while an ITE maps LPI n,
    /// for KVM's "one LPI, one event" rule (`irq->mapped`) without a scan of the ITEs.
    pub(crate) lpi_map: &'a mut [u64],
}

// ---- field helpers ----

fn extract_bytes(data: u64, offset: u64, len: u8) -> u64 {
    let v = data >> ((offset & 7) * 8);
    if len >= 8 {
        v
    } else {
        v & ((1u64 << (u32::from(len) * 8)) - 1)
    }
}

/// A 32-bit write updates one half of a 64-bit register (KVM's `update_64bit_reg`).
fn update_64bit_reg(reg: u64, offset: u64, len: u8, val: u64) -> u64 {
    if len >= 8 {
        return val;
    }
    let lower = (offset & 4) * 8;
    (reg & !(0xffff_ffff << lower)) | ((val & 0xffff_ffff) << lower)
}

fn sanitise_field(reg: u64, shift: u32, mask: u64, f: fn(u64) -> u64) -> u64 {
    (reg & !(mask << shift)) | ((f((reg >> shift) & mask) & mask) << shift)
}

fn sanitise_shareability(v: u64) -> u64 {
    if v == SHARE_OUTER {
        SHARE_INNER
    } else {
        v
    }
}

fn sanitise_inner_cache(v: u64) -> u64 {
    if v == CACHE_NCNB || v == CACHE_NC {
        CACHE_RAWB
    } else {
        v
    }
}

fn sanitise_outer_cache(v: u64) -> u64 {
    if v == CACHE_NC {
        v
    } else {
        0
    }
}

fn sanitise_attrs(reg: u64) -> u64 {
    let reg = sanitise_field(reg, SHAREABILITY_SHIFT, 3, sanitise_shareability);
    let reg = sanitise_field(reg, INNER_CACHE_SHIFT, 7, sanitise_inner_cache);
    sanitise_field(reg, OUTER_CACHE_SHIFT, 7, sanitise_outer_cache)
}

/// KVM's `vgic_sanitise_its_cbaser`.
fn sanitise_cbaser(reg: u64) -> u64 {
    sanitise_attrs(reg) & !(0xf << 12)
}

/// KVM's `vgic_sanitise_its_baser`: 64 KiB pages only.
fn sanitise_baser(reg: u64) -> u64 {
    (sanitise_attrs(reg) & !BASER_PAGE_SIZE_MASK) | BASER_PAGE_SIZE_64K
}

/// The command queue's size in bytes (4 KiB pages, at most 1 MiB).
fn cmdq_size(cbaser: u64) -> u64 {
    ((cbaser & 0xff) + 1) << 12
}

/// CWRITER/CREADR offset bits [19:5].
fn cmd_offset(v: u64) -> u64 {
    v & 0xf_ffe0
}

fn baser_type(baser: u64) -> u64 {
    (baser >> BASER_TYPE_SHIFT) & 7
}

fn baser_entry_size(baser: u64) -> u64 {
    ((baser >> BASER_ENTRY_SIZE_SHIFT) & 0x1f) + 1
}

fn baser_nr_pages(baser: u64) -> u64 {
    (baser & 0xff) + 1
}

/// The table address: [47:16], and [51:48] from bits [15:12].
fn baser_addr(baser: u64) -> u64 {
    (baser & 0x0000_ffff_ffff_0000) | (((baser >> 12) & 0xf) << 48)
}

/// The address of the size in bytes of a table (64 KiB pages).
fn baser_size(baser: u64) -> u64 {
    baser_nr_pages(baser) * SZ_64K
}

const L1E_VALID: u64 = 1 << 63;
const L1E_ADDR_MASK: u64 = 0x000f_ffff_ffff_0000;

/// KVM's `vgic_its_check_id`: whether table `baser` can hold `id`, and the address of its
/// entry. An indirect table reads its level-1 entry from guest memory.
fn check_id(baser: u64, id: u32, mem: &mut impl GuestMem) -> Option<u64> {
    match baser_type(baser) {
        BASER_TYPE_DEVICE if id <= MAX_DEVID => {}
        // GITS_TYPER.CIL = 0: 16-bit collection IDs.
        BASER_TYPE_COLLECTION if id < 1 << 16 => {}
        _ => return None,
    }
    let l1_size = baser_size(baser);
    let esz = baser_entry_size(baser);
    let base = baser_addr(baser);
    let id = u64::from(id);
    let addr = if baser & BASER_INDIRECT == 0 {
        if id >= l1_size / esz {
            return None;
        }
        base + id * esz
    } else {
        let per_page = SZ_64K / esz;
        let index = id / per_page;
        if index >= l1_size / 8 {
            return None;
        }
        let l1 = mem.read_u64(base + index * 8).ok()?;
        if l1 & L1E_VALID == 0 {
            return None;
        }
        (l1 & L1E_ADDR_MASK) + (id % per_page) * esz
    };
    mem.visible(addr).then_some(addr)
}

/// Where register access at `offset` may go: KVM's `its_registers[]` (offset, length,
/// whether 64-bit accesses are allowed).
fn region(offset: u64) -> Option<(u64, bool)> {
    const REGIONS: [(u64, u64, bool); 8] = [
        (GITS_CTLR, 4, false),
        (GITS_IIDR, 4, false),
        (GITS_TYPER, 8, true),
        (GITS_CBASER, 8, true),
        (GITS_CWRITER, 8, true),
        (GITS_CREADR, 8, true),
        (GITS_BASER, 0x40, true),
        (GITS_IDREGS_BASE, 0x30, false),
    ];
    REGIONS
        .iter()
        .find(|&&(o, l, _)| offset >= o && offset - o < l)
        .map(|&(o, _, w)| (o, w))
}

/// A guest access the region accepts: 4 bytes, or 8 where 64-bit, naturally aligned
/// (KVM's `check_region`); anything else reads as zero and is ignored.
fn guest_region(offset: u64, len: u8) -> Option<u64> {
    let (base, wide) = region(offset)?;
    let ok = match len {
        4 => true,
        8 => wide,
        _ => false,
    };
    (ok && offset % u64::from(len) == 0).then_some(base)
}

/// Userspace accesses: 32-bit registers (below GITS_TYPER, the ID registers) 4-aligned,
/// 64-bit ones 8-aligned (`EINVAL`), at a register (`ENXIO`). Returns the access width.
pub(crate) fn regs_check(offset: u64) -> Result<u8, Errno> {
    let align = if !(GITS_TYPER..GITS_PIDR4).contains(&offset) {
        3
    } else {
        7
    };
    if offset & align != 0 {
        return Err(Errno::Inval);
    }
    let (_, wide) = region(offset).ok_or(Errno::Nxio)?;
    Ok(if wide { 8 } else { 4 })
}

/// `KVM_HAS_DEVICE_ATTR` for `GRP_ITS_REGS` (KVM's `vgic_its_has_attr_regs`).
pub(crate) fn regs_has(offset: u64) -> Result<(), Errno> {
    regs_check(offset).map(|_| ())
}

/// Inserts `v` at `pos` of the first `*len` elements of `buf`. Err: full.
fn insert_at<T: Copy>(buf: &mut [T], len: &mut usize, pos: usize, v: T) -> Result<(), ()> {
    let n = (*len).min(buf.len());
    if n >= buf.len() || pos > n {
        return Err(());
    }
    buf.copy_within(pos..n, pos + 1);
    buf[pos] = v;
    *len = n + 1;
    Ok(())
}

/// Removes `r` from the first `*len` elements of `buf`.
fn remove_range<T: Copy>(buf: &mut [T], len: &mut usize, r: Range<usize>) {
    let n = (*len).min(buf.len());
    if r.start >= r.end || r.end > n {
        return;
    }
    buf.copy_within(r.end..n, r.start);
    *len = n - (r.end - r.start);
}

impl Its<'_> {
    // ---- tables ----

    pub(crate) fn devs(&self) -> &[Device] {
        let n = self.regs.nr_devices.min(self.devices.len());
        &self.devices[..n]
    }

    pub(crate) fn ite_list(&self) -> &[Ite] {
        let n = self.regs.nr_ites.min(self.ites.len());
        &self.ites[..n]
    }

    pub(crate) fn colls(&self) -> &[Collection] {
        let n = self.regs.nr_collections.min(self.collections.len());
        &self.collections[..n]
    }

    fn find_device(&self, id: u32) -> Option<Device> {
        let d = self.devs();
        d.binary_search_by_key(&id, |d| d.id)
            .ok()
            .and_then(|i| d.get(i).copied())
    }

    fn ite_pos(&self, devid: u32, eventid: u32) -> Result<usize, usize> {
        self.ite_list()
            .binary_search_by_key(&key(devid, eventid), Ite::key)
    }

    fn find_ite(&self, devid: u32, eventid: u32) -> Option<Ite> {
        self.ite_pos(devid, eventid)
            .ok()
            .and_then(|i| self.ite_list().get(i).copied())
    }

    /// The ITEs of device `devid`, in event order.
    fn device_ites(&self, devid: u32) -> Range<usize> {
        let l = self.ite_list();
        let start = l.partition_point(|i| i.devid < devid);
        let end = l.partition_point(|i| i.devid <= devid);
        start..end
    }

    fn find_collection(&self, id: u16) -> Option<Collection> {
        let c = self.colls();
        c.binary_search_by_key(&id, |c| c.id)
            .ok()
            .and_then(|i| c.get(i).copied())
    }

    /// The vCPU a collection routes to, if mapped and its redistributor exists.
    fn collection_vcpu(&self, id: Option<u16>, lpis: &impl Lpis) -> Option<usize> {
        let c = self.find_collection(id?)?;
        if !c.mapped() {
            return None;
        }
        lpis.vcpu_by_rdbase(u64::from(c.target))
    }

    fn add_device(&mut self, d: Device) -> Result<(), ()> {
        let pos = match self.devs().binary_search_by_key(&d.id, |d| d.id) {
            Ok(_) => return Err(()),
            Err(p) => p,
        };
        insert_at(self.devices, &mut self.regs.nr_devices, pos, d)
    }

    fn add_collection(&mut self, id: u16, target: u32) -> Result<(), ()> {
        let pos = match self.colls().binary_search_by_key(&id, |c| c.id) {
            Ok(_) => return Err(()),
            Err(p) => p,
        };
        let seq = self.regs.next_seq;
        insert_at(
            self.collections,
            &mut self.regs.nr_collections,
            pos,
            Collection { id, target, seq },
        )?;
        self.regs.next_seq = seq.wrapping_add(1);
        Ok(())
    }

    fn set_collection_target(&mut self, id: u16, target: u32) {
        let n = self.regs.nr_collections.min(self.collections.len());
        if let Ok(i) = self.collections[..n].binary_search_by_key(&id, |c| c.id) {
            if let Some(c) = self.collections.get_mut(i) {
                c.target = target;
            }
        }
    }

    /// Whether an ITE of this ITS maps `intid` already.
    fn lpi_mapped(&self, intid: u32) -> bool {
        match self.lpi_map.get((intid / 64) as usize) {
            Some(w) => w & (1 << (intid % 64)) != 0,
            None => self.ite_list().iter().any(|i| i.intid == intid),
        }
    }

    fn set_lpi_mapped(&mut self, intid: u32, on: bool) {
        if let Some(w) = self.lpi_map.get_mut((intid / 64) as usize) {
            if on {
                *w |= 1 << (intid % 64);
            } else {
                *w &= !(1 << (intid % 64));
            }
        }
    }

    /// A new ITE mapping `intid` to `vcpu` (KVM's `vgic_add_lpi` and `vgic_its_map_lpi`).
    /// Err(Some(())): no room; Err(None): another ITE of this ITS maps the LPI, the new one
    /// is dropped.
    fn add_ite(
        &mut self,
        ite: Ite,
        vcpu: Option<usize>,
        lpis: &mut impl Lpis,
    ) -> Result<(), Option<()>> {
        let pos = match self.ite_pos(ite.devid, ite.eventid) {
            Ok(_) => return Err(None),
            Err(p) => p,
        };
        if self.regs.nr_ites >= self.ites.len() {
            return Err(Some(()));
        }
        if self.lpi_mapped(ite.intid) {
            return Err(None);
        }
        lpis.map(ite.intid, vcpu).map_err(Some)?;
        if insert_at(self.ites, &mut self.regs.nr_ites, pos, ite).is_err() {
            lpis.unmap(ite.intid);
            return Err(Some(()));
        }
        self.set_lpi_mapped(ite.intid, true);
        Ok(())
    }

    /// KVM's `its_free_ite` for the ITEs at `r`.
    fn free_ites(&mut self, r: Range<usize>, lpis: &mut impl Lpis) {
        for i in r.clone() {
            if let Some(&ite) = self.ite_list().get(i) {
                self.set_lpi_mapped(ite.intid, false);
                lpis.unmap(ite.intid);
            }
        }
        remove_range(self.ites, &mut self.regs.nr_ites, r);
    }

    /// KVM's `vgic_its_free_device`: the device and all its ITEs.
    fn free_device(&mut self, devid: u32, lpis: &mut impl Lpis) {
        let r = self.device_ites(devid);
        self.free_ites(r, lpis);
        if let Ok(i) = self.devs().binary_search_by_key(&devid, |d| d.id) {
            remove_range(self.devices, &mut self.regs.nr_devices, i..i + 1);
        }
    }

    fn free_device_list(&mut self, lpis: &mut impl Lpis) {
        let n = self.ite_list().len();
        self.free_ites(0..n, lpis);
        self.regs.nr_devices = 0;
    }

    /// KVM's `vgic_its_free_collection`: ITEs in it keep their LPI but lose the
    /// collection.
    fn free_collection(&mut self, id: u16) {
        let Ok(i) = self.colls().binary_search_by_key(&id, |c| c.id) else {
            return;
        };
        let n = self.regs.nr_ites.min(self.ites.len());
        for ite in self.ites[..n]
            .iter_mut()
            .filter(|i| i.collection == Some(id))
        {
            ite.collection = None;
        }
        remove_range(self.collections, &mut self.regs.nr_collections, i..i + 1);
    }

    fn free_collection_list(&mut self) {
        let n = self.regs.nr_ites.min(self.ites.len());
        for ite in self.ites[..n].iter_mut() {
            ite.collection = None;
        }
        self.regs.nr_collections = 0;
    }

    // ---- registers ----

    fn read_reg(&self, base: u64, offset: u64, len: u8) -> u64 {
        let r = &*self.regs;
        match base {
            GITS_CTLR => {
                let q = if r.creadr == r.cwriter {
                    CTLR_QUIESCENT
                } else {
                    0
                };
                q | u64::from(r.enabled)
            }
            GITS_IIDR => {
                ((u64::from(r.abi_rev) << IIDR_REV_SHIFT) & 0xf000)
                    | (PRODUCT_ID_KVM << 24)
                    | IMPLEMENTER_ARM
            }
            GITS_TYPER => extract_bytes(typer(), offset, len),
            GITS_CBASER => extract_bytes(r.cbaser, offset, len),
            GITS_CWRITER => extract_bytes(r.cwriter, offset, len),
            GITS_CREADR => extract_bytes(r.creadr, offset, len),
            GITS_BASER => {
                let v = match (offset - GITS_BASER) / 8 {
                    0 => r.baser_device,
                    1 => r.baser_coll,
                    _ => 0,
                };
                extract_bytes(v, offset, len)
            }
            _ => idreg(offset),
        }
    }

    /// A guest write (or a userspace one without its own rule).
    fn write_reg(
        &mut self,
        base: u64,
        offset: u64,
        len: u8,
        val: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) {
        match base {
            GITS_CTLR => self.write_ctlr(val, mem, lpis),
            GITS_CBASER => {
                if self.regs.enabled {
                    return;
                }
                let r = &mut *self.regs;
                r.cbaser = sanitise_cbaser(update_64bit_reg(r.cbaser, offset, len, val));
                r.creadr = 0;
                // CWRITER is UNKNOWN at reset: start with an empty queue.
                r.cwriter = 0;
            }
            GITS_CWRITER => {
                let reg = cmd_offset(update_64bit_reg(self.regs.cwriter, offset, len, val));
                if reg >= cmdq_size(self.regs.cbaser) {
                    return;
                }
                self.regs.cwriter = reg;
                self.process_commands(mem, lpis);
            }
            GITS_BASER => self.write_baser(offset, len, val, lpis),
            // IIDR, TYPER, CREADR and the ID registers: WI for the guest.
            _ => {}
        }
    }

    fn write_ctlr(&mut self, val: u64, mem: &mut impl GuestMem, lpis: &mut impl Lpis) {
        let r = &*self.regs;
        let enable = val & CTLR_ENABLE != 0;
        // Enabling with an invalid queue or table is UNPREDICTABLE: KVM ignores it.
        if !r.enabled
            && enable
            && (r.baser_device & BASER_VALID == 0
                || r.baser_coll & BASER_VALID == 0
                || r.cbaser & CBASER_VALID == 0)
        {
            return;
        }
        self.regs.enabled = enable;
        self.process_commands(mem, lpis);
    }

    /// KVM's `vgic_mmio_write_its_baser`: BASER0 describes the device table, BASER1 the
    /// collection table (never indirect); the others are RAZ/WI. A changed value drops
    /// what the old table described.
    fn write_baser(&mut self, offset: u64, len: u8, val: u64, lpis: &mut impl Lpis) {
        if self.regs.enabled {
            return;
        }
        let (old, kind, clear) = match (offset - GITS_BASER) / 8 {
            0 => (self.regs.baser_device, BASER_TYPE_DEVICE, 0),
            1 => (self.regs.baser_coll, BASER_TYPE_COLLECTION, BASER_INDIRECT),
            _ => return,
        };
        let mut reg = update_64bit_reg(old, offset, len, val) & !BASER_RO_MASK & !clear;
        reg |= ((ESZ - 1) << BASER_ENTRY_SIZE_SHIFT) | (kind << BASER_TYPE_SHIFT);
        let reg = sanitise_baser(reg);
        if kind == BASER_TYPE_DEVICE {
            self.regs.baser_device = reg;
        } else {
            self.regs.baser_coll = reg;
        }
        // The guest's ITS driver rewrites an unchanged value on resume.
        if reg != old {
            if kind == BASER_TYPE_DEVICE {
                self.free_device_list(lpis);
            } else {
                self.free_collection_list();
            }
        }
    }

    /// A guest read of the ITS frames (`offset` from the ITS base, below [`ITS_SIZE`]).
    /// Accesses KVM does not accept (width, alignment, no register) read as zero.
    pub(crate) fn mmio_read(&mut self, offset: u64, len: u8) -> u64 {
        match guest_region(offset, len) {
            Some(base) => self.read_reg(base, offset, len),
            None => 0,
        }
    }

    /// A guest write of the ITS frames. Writing GITS_CWRITER, or enabling the ITS,
    /// processes the command queue to completion. GITS_TRANSLATER is not implemented
    /// (as KVM): writes to it are ignored.
    pub(crate) fn mmio_write(
        &mut self,
        offset: u64,
        len: u8,
        val: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) {
        if let Some(base) = guest_region(offset, len) {
            self.write_reg(base, offset, len, val, mem, lpis);
        }
    }

    /// `KVM_GET_DEVICE_ATTR(GRP_ITS_REGS)` (KVM's `vgic_its_attr_regs_access`). The kernel
    /// layer answers `ENXIO` itself while the ITS has no base address, and `EBUSY` when it
    /// cannot lock every vCPU, between the alignment check and the register lookup.
    pub(crate) fn regs_get(&self, offset: u64) -> Result<u64, Errno> {
        let len = regs_check(offset)?;
        let (base, _) = region(offset).ok_or(Errno::Nxio)?;
        Ok(self.read_reg(base, offset, len))
    }

    /// `KVM_SET_DEVICE_ATTR(GRP_ITS_REGS)`. IIDR selects the ABI revision (only 0:
    /// `EINVAL`), CREADR may be set while the ITS is disabled (`EBUSY`) inside the queue
    /// (`EINVAL`); the rest behave as guest writes (writing GITS_CTLR or GITS_CWRITER
    /// may process commands, a changed BASER drops its table's contents, hence `mem` and
    /// `lpis`).
    pub(crate) fn regs_set(
        &mut self,
        offset: u64,
        val: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<(), Errno> {
        let len = regs_check(offset)?;
        let (base, _) = region(offset).ok_or(Errno::Nxio)?;
        match base {
            GITS_IIDR => {
                if (val >> IIDR_REV_SHIFT) & 0xf != 0 {
                    return Err(Errno::Inval);
                }
                self.regs.abi_rev = 0;
                self.regs.commit_abi();
            }
            GITS_CREADR => {
                if self.regs.enabled {
                    return Err(Errno::Busy);
                }
                let off = cmd_offset(val);
                if off >= cmdq_size(self.regs.cbaser) {
                    return Err(Errno::Inval);
                }
                self.regs.creadr = off;
            }
            _ => self.write_reg(base, offset, len, val, mem, lpis),
        }
        Ok(())
    }

    /// `KVM_DEV_ARM_ITS_CTRL_RESET` (KVM's `vgic_its_reset`): disabled, no queue, tables
    /// invalid (their ABI fields kept), every mapping gone.
    pub(crate) fn reset(&mut self, lpis: &mut impl Lpis) {
        let r = &mut *self.regs;
        r.baser_coll &= !BASER_VALID;
        r.baser_device &= !BASER_VALID;
        r.cbaser = 0;
        r.creadr = 0;
        r.cwriter = 0;
        r.enabled = false;
        self.free_device_list(lpis);
        self.free_collection_list();
    }

    /// MSI translation (KVM's `vgic_its_resolve_lpi`): the LPI and the vCPU index that
    /// (devid, eventid) reaches. The caller makes it pending (`Lpis::set_pending`) and
    /// kicks the vCPU; `KVM_SIGNAL_MSI` answers 1, 0 for [`MsiError::Unmapped`], and
    /// `-EBUSY` for [`MsiError::Busy`].
    pub(crate) fn resolve(
        &self,
        devid: u32,
        eventid: u32,
        lpis: &impl Lpis,
    ) -> Result<(u32, usize), MsiError> {
        if !self.regs.enabled {
            return Err(MsiError::Busy);
        }
        let ite = self.find_ite(devid, eventid).ok_or(MsiError::Unmapped)?;
        let vcpu = self
            .collection_vcpu(ite.collection, lpis)
            .ok_or(MsiError::Unmapped)?;
        if !lpis.lpis_enabled(vcpu) {
            return Err(MsiError::Busy);
        }
        Ok((ite.intid, vcpu))
    }
}

/// GITS_TYPER: physical LPIs, 8-byte ITT entries, 16 event ID and device ID bits; PTA 0
/// (collections name redistributors by vCPU id), CIL 0 (16-bit collection IDs).
fn typer() -> u64 {
    TYPER_PLPIS
        | (u64::from(DEV_BITS - 1) << TYPER_DEVBITS_SHIFT)
        | (u64::from(ID_BITS - 1) << TYPER_IDBITS_SHIFT)
        | ((ESZ - 1) << TYPER_ITT_ENTRY_SIZE_SHIFT)
}

/// The ID registers KVM reports: an Arm GICv3 ITS (ArchRev 3), 64 KiB frame.
fn idreg(offset: u64) -> u64 {
    match offset & 0xffff {
        GITS_PIDR0 => 0x92,
        GITS_PIDR1 => 0xb4,
        GITS_PIDR2 => 0x3b,
        GITS_PIDR4 => 0x40,
        GITS_CIDR0 => 0x0d,
        0xfff4 => 0xf0,
        0xfff8 => 0x05,
        0xfffc => 0xb1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
