// SPDX-License-Identifier: GPL-2.0

//! `KVM_DEV_ARM_ITS_SAVE_TABLES` / `RESTORE_TABLES`: the ITS's state in the guest's own
//! tables, in KVM's ABI revision 0 encoding, so that either hypervisor restores what
//! the other saved.
//!
//! KVM counterpart: `vgic_its_save_tables_v0`, `vgic_its_restore_tables_v0` and their
//! helpers in `vgic-its.c`. All entries are 8 bytes:
//!
//! * DTE (device table, flat or two-level): Valid [63], Next [62:49] (device IDs to the
//!   next saved DTE, 0 for the last, at most 2^14 - 1), ITT address [48:5] (bits [51:8]
//!   of it), event ID bits - 1 [4:0].
//! * ITE (the device's ITT, indexed by event ID): Next [63:48] (event IDs to the next
//!   valid ITE), pINTID [47:16] (0: invalid), ICID [15:0].
//! * CTE (collection table, in creation order, ended by a zero entry unless full):
//!   Valid [63], RDbase [47:16] (the vCPU id, or all ones if unmapped), ICID [15:0].
//!
//! A restore scans each table from its start, jumping by the Next fields, and stops at
//! the first entry whose Next is 0.

use super::super::attr::Errno;
use super::{
    baser_addr, baser_size, check_id, Collection, Device, GuestMem, Ite, Its, Lpis, BASER_INDIRECT,
    BASER_VALID, COLLECTION_NOT_MAPPED, ESZ, ID_BITS, LPI_OFFSET, SZ_64K,
};

pub(crate) const DTE_VALID: u64 = 1 << 63;
pub(crate) const DTE_NEXT_SHIFT: u32 = 49;
const DTE_NEXT_MASK: u64 = 0x3fff;
pub(crate) const DTE_ITT_SHIFT: u32 = 5;
const DTE_ITT_MASK: u64 = 0x0001_ffff_ffff_ffe0;
const DTE_SIZE_MASK: u64 = 0x1f;
pub(crate) const ITE_NEXT_SHIFT: u32 = 48;
pub(crate) const ITE_PINTID_SHIFT: u32 = 16;
pub(crate) const CTE_VALID: u64 = 1 << 63;
pub(crate) const CTE_RDBASE_SHIFT: u32 = 16;
const L1E_VALID: u64 = 1 << 63;
const L1E_ADDR_MASK: u64 = 0x000f_ffff_ffff_0000;

/// Largest Next a DTE and an ITE can hold.
const DTE_MAX_NEXT: u32 = (1 << 14) - 1;
const ITE_MAX_NEXT: u32 = (1 << 16) - 1;

/// The table a scan walks.
#[derive(Clone, Copy)]
enum Table {
    /// Level 1 of an indirect device table.
    L1,
    Dte,
    Itt(Device),
}

fn fault(_: ()) -> Errno {
    Errno::Fault
}

impl Its<'_> {
    /// Writes the device table (with every device's ITT) and the collection table into
    /// guest memory. A device the device table cannot address any more is skipped, as
    /// KVM skips it. `EFAULT`: a table is outside guest RAM.
    pub(crate) fn save_tables(&mut self, mem: &mut impl GuestMem) -> Result<(), Errno> {
        self.save_device_tables(mem)?;
        self.save_collection_table(mem)
    }

    fn save_device_tables(&mut self, mem: &mut impl GuestMem) -> Result<(), Errno> {
        let baser = self.regs.baser_device;
        if baser & BASER_VALID == 0 {
            return Ok(());
        }
        let n = self.devs().len();
        for i in 0..n {
            let Some(dev) = self.devs().get(i).copied() else {
                break;
            };
            let Some(eaddr) = check_id(baser, dev.id, mem) else {
                continue;
            };
            self.save_itt(&dev, mem)?;
            let next = self.next_devid_offset(baser, i, mem);
            let val = DTE_VALID
                | (u64::from(next) << DTE_NEXT_SHIFT)
                | ((dev.itt_addr >> 8) << DTE_ITT_SHIFT)
                | u64::from(dev.eventid_bits.wrapping_sub(1) & 0x1f);
            mem.write_u64(eaddr, val).map_err(fault)?;
        }
        Ok(())
    }

    /// KVM's `compute_next_devid_offset`: to the next device the table can address.
    fn next_devid_offset(&self, baser: u64, i: usize, mem: &mut impl GuestMem) -> u32 {
        let devs = self.devs();
        let Some(cur) = devs.get(i) else { return 0 };
        for next in devs.iter().skip(i + 1) {
            if check_id(baser, next.id, mem).is_some() {
                return (next.id - cur.id).min(DTE_MAX_NEXT);
            }
        }
        0
    }

    /// KVM's `vgic_its_save_itt`: each ITE at its event's slot; one whose collection MAPC
    /// dropped is saved as a zero (invalid) entry, and the Next fields skip it.
    fn save_itt(&self, dev: &Device, mem: &mut impl GuestMem) -> Result<(), Errno> {
        let r = self.device_ites(dev.id);
        let ites = self.ite_list();
        let mut next = r.start;
        for k in r.clone() {
            let Some(ite) = ites.get(k) else { break };
            let gpa = dev.itt_addr.wrapping_add(u64::from(ite.eventid) * ESZ);
            let Some(coll) = ite.collection else {
                mem.write_u64(gpa, 0).map_err(fault)?;
                continue;
            };
            if next <= k {
                next = k + 1;
                while next < r.end && ites.get(next).is_some_and(|i| i.collection.is_none()) {
                    next += 1;
                }
            }
            let off = match ites.get(next) {
                Some(n) if next < r.end => (n.eventid - ite.eventid).min(ITE_MAX_NEXT),
                _ => 0,
            };
            let val = (u64::from(off) << ITE_NEXT_SHIFT)
                | (u64::from(ite.intid) << ITE_PINTID_SHIFT)
                | u64::from(coll);
            mem.write_u64(gpa, val).map_err(fault)?;
        }
        Ok(())
    }

    /// KVM's `vgic_its_save_collection_table`: the collections in creation order, then a
    /// zero entry if the table has room.
    fn save_collection_table(&mut self, mem: &mut impl GuestMem) -> Result<(), Errno> {
        let baser = self.regs.baser_coll;
        if baser & BASER_VALID == 0 {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max = baser_size(baser);
        let mut filled = 0;
        let mut last: Option<u64> = None;
        while let Some(c) = self.next_by_seq(last) {
            last = Some(c.seq);
            let val = CTE_VALID | (u64::from(c.target) << CTE_RDBASE_SHIFT) | u64::from(c.id);
            mem.write_u64(gpa, val).map_err(fault)?;
            gpa += ESZ;
            filled += ESZ;
        }
        if filled == max {
            return Ok(());
        }
        mem.write_u64(gpa, 0).map_err(fault)
    }

    /// The collection created after the one with sequence `last` (the first if None).
    fn next_by_seq(&self, last: Option<u64>) -> Option<Collection> {
        let mut best: Option<Collection> = None;
        for &c in self.colls() {
            let after = match last {
                Some(l) => c.seq > l,
                None => true,
            };
            if after && best.is_none_or(|b| c.seq < b.seq) {
                best = Some(c);
            }
        }
        best
    }

    /// Rebuilds the collections, devices and ITEs from the tables the BASERs point at
    /// (restored first), taking an LPI reference for each ITE. On error nothing of
    /// the tables stays mapped: `EFAULT` (unreadable entry), `EINVAL` (an entry KVM would
    /// refuse), `EEXIST` (a collection or device twice), `ENOMEM` (no room, or an LPI
    /// that could not be created).
    pub(crate) fn restore_tables(
        &mut self,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<(), Errno> {
        self.restore_collection_table(mem, lpis)?;
        if let Err(e) = self.restore_device_tables(mem, lpis) {
            self.free_collection_list();
            return Err(e);
        }
        Ok(())
    }

    fn restore_collection_table(
        &mut self,
        mem: &mut impl GuestMem,
        lpis: &impl Lpis,
    ) -> Result<(), Errno> {
        let baser = self.regs.baser_coll;
        if baser & BASER_VALID == 0 {
            return Ok(());
        }
        let mut gpa = baser_addr(baser);
        let max = baser_size(baser);
        let mut read = 0;
        while read < max {
            match self.restore_cte(gpa, mem, lpis) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.free_collection_list();
                    return Err(e);
                }
            }
            gpa += ESZ;
            read += ESZ;
        }
        Ok(())
    }

    /// One CTE: Ok(false) at the invalid entry that ends the table.
    fn restore_cte(
        &mut self,
        gpa: u64,
        mem: &mut impl GuestMem,
        lpis: &impl Lpis,
    ) -> Result<bool, Errno> {
        let val = mem.read_u64(gpa).map_err(fault)?;
        if val & CTE_VALID == 0 {
            return Ok(false);
        }
        let target = (val >> CTE_RDBASE_SHIFT) as u32;
        let id = val as u16;
        if target != COLLECTION_NOT_MAPPED && lpis.vcpu_by_rdbase(u64::from(target)).is_none() {
            return Err(Errno::Inval);
        }
        if self.find_collection(id).is_some() {
            return Err(Errno::Exist);
        }
        if check_id(self.regs.baser_coll, u32::from(id), mem).is_none() {
            return Err(Errno::Inval);
        }
        self.add_collection(id, target).map_err(|()| Errno::NoMem)?;
        Ok(true)
    }

    fn restore_device_tables(
        &mut self,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<(), Errno> {
        let baser = self.regs.baser_device;
        if baser & BASER_VALID == 0 {
            return Ok(());
        }
        let kind = if baser & BASER_INDIRECT != 0 {
            Table::L1
        } else {
            Table::Dte
        };
        if let Err(e) = self.scan(baser_addr(baser), baser_size(baser), 0, kind, mem, lpis) {
            self.free_device_list(lpis);
            return Err(e);
        }
        Ok(())
    }

    /// KVM's `scan_its_table`: applies the table's entry handler from `base`, moving by
    /// the Next each returns, within `size` bytes. Ok(false): an entry said it was the
    /// last; Ok(true): the scan ran off the end. Each step moves forward by at least
    /// one entry, so a scan reads at most `size / 8` entries.
    fn scan(
        &mut self,
        base: u64,
        size: u64,
        start_id: u32,
        kind: Table,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<bool, Errno> {
        let (mut gpa, mut len, mut id) = (base, size, start_id);
        loop {
            let entry = mem.read_u64(gpa).map_err(fault)?;
            let next = match kind {
                Table::L1 => self.restore_l1(id, entry, mem, lpis)?,
                Table::Dte => self.restore_dte(id, entry, mem, lpis)?,
                Table::Itt(dev) => self.restore_ite(&dev, id, entry, mem, lpis)?,
            };
            if next == 0 {
                return Ok(false);
            }
            let step = u64::from(next) * ESZ;
            if step >= len {
                return Ok(true);
            }
            // KVM's int arithmetic wraps the same way for the huge level-1 indices of
            // a hostile table.
            id = id.wrapping_add(next);
            gpa = gpa.wrapping_add(step);
            len -= step;
        }
    }

    /// KVM's `handle_l1_dte`: scan the level-2 page of a valid level-1 entry; its
    /// result (1: go on, 0: the last DTE was found) is this entry's Next.
    fn restore_l1(
        &mut self,
        index: u32,
        entry: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<u32, Errno> {
        if entry & L1E_VALID == 0 {
            return Ok(1);
        }
        let start = index.wrapping_mul((SZ_64K / ESZ) as u32);
        let more = self.scan(entry & L1E_ADDR_MASK, SZ_64K, start, Table::Dte, mem, lpis)?;
        Ok(u32::from(more))
    }

    /// KVM's `vgic_its_restore_dte`: a valid DTE maps the device and restores its ITT.
    fn restore_dte(
        &mut self,
        id: u32,
        entry: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<u32, Errno> {
        if entry & DTE_VALID == 0 {
            return Ok(1);
        }
        let next = ((entry >> DTE_NEXT_SHIFT) & DTE_NEXT_MASK) as u32;
        let bits = (entry & DTE_SIZE_MASK) as u32 + 1;
        let itt_addr = ((entry & DTE_ITT_MASK) >> DTE_ITT_SHIFT) << 8;
        // As MAPD.
        if bits > ID_BITS {
            return Err(Errno::Inval);
        }
        if check_id(self.regs.baser_device, id, mem).is_none() {
            return Err(Errno::Inval);
        }
        // Only a level-1 index past 2^19 (KVM's ID arithmetic wrapping) names a device
        // twice; KVM would list it twice.
        if self.find_device(id).is_some() {
            return Err(Errno::Exist);
        }
        let dev = Device {
            id,
            itt_addr,
            eventid_bits: bits as u8,
        };
        self.add_device(dev).map_err(|()| Errno::NoMem)?;
        let itt_size = (1u64 << bits) * ESZ;
        if let Err(e) = self.scan(itt_addr, itt_size, 0, Table::Itt(dev), mem, lpis) {
            self.free_device(id, lpis);
            return Err(e);
        }
        Ok(next)
    }

    /// KVM's `vgic_its_restore_ite`: a valid ITE (pINTID set) maps its LPI in an existing
    /// collection. One whose LPI another ITE of this ITS maps is dropped, as MAPTI does.
    fn restore_ite(
        &mut self,
        dev: &Device,
        eventid: u32,
        val: u64,
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> Result<u32, Errno> {
        let coll = val as u16;
        let intid = (val >> ITE_PINTID_SHIFT) as u32;
        if intid == 0 {
            return Ok(1);
        }
        if intid < LPI_OFFSET {
            return Err(Errno::Inval);
        }
        let next = (val >> ITE_NEXT_SHIFT) as u32;
        if u64::from(eventid) + u64::from(next) >= 1u64 << dev.eventid_bits.min(63) {
            return Err(Errno::Inval);
        }
        if self.find_collection(coll).is_none() {
            return Err(Errno::Inval);
        }
        if !self.event_in_itt(dev, eventid, mem) {
            return Err(Errno::Inval);
        }
        let vcpu = self.collection_vcpu(Some(coll), lpis);
        let ite = Ite {
            devid: dev.id,
            eventid,
            intid,
            collection: Some(coll),
        };
        match self.add_ite(ite, vcpu, lpis) {
            Ok(()) | Err(None) => Ok(next),
            Err(Some(())) => Err(Errno::NoMem),
        }
    }
}
