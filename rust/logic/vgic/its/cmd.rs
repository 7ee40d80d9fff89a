// SPDX-License-Identifier: GPL-2.0

//! The ITS command queue and its commands.
//!
//! KVM counterpart: `vgic_its_process_commands`, `vgic_its_handle_command` and the
//! `vgic_its_cmd_handle_*` functions of `vgic-its.c`. A command that fails is ignored, as
//! KVM ignores it (GICv3 6.3.2: no error reporting); [`CmdError`] names the failure for the
//! tests.

use super::{
    check_id, cmd_offset, cmdq_size, GuestMem, Ite, Its, Lpis, CBASER_ADDR_MASK,
    COLLECTION_NOT_MAPPED, ESZ, ID_BITS, LPI_OFFSET,
};
use crate::logic::vgic::mmio::max_lpis;

/// One command: four little-endian 64-bit words.
pub(crate) const CMD_SIZE: u64 = 32;

pub(crate) const CMD_MOVI: u8 = 0x01;
pub(crate) const CMD_INT: u8 = 0x03;
pub(crate) const CMD_CLEAR: u8 = 0x04;
pub(crate) const CMD_SYNC: u8 = 0x05;
pub(crate) const CMD_MAPD: u8 = 0x08;
pub(crate) const CMD_MAPC: u8 = 0x09;
pub(crate) const CMD_MAPTI: u8 = 0x0a;
pub(crate) const CMD_MAPI: u8 = 0x0b;
pub(crate) const CMD_INV: u8 = 0x0c;
pub(crate) const CMD_INVALL: u8 = 0x0d;
pub(crate) const CMD_MOVALL: u8 = 0x0e;
pub(crate) const CMD_DISCARD: u8 = 0x0f;

/// The GICv3 command error codes KVM's handlers return (`E_ITS_*`).
pub(crate) const E_MOVI_UNMAPPED_INTERRUPT: u32 = 0x010107;
pub(crate) const E_MOVI_UNMAPPED_COLLECTION: u32 = 0x010109;
pub(crate) const E_INT_UNMAPPED_INTERRUPT: u32 = 0x010307;
pub(crate) const E_CLEAR_UNMAPPED_INTERRUPT: u32 = 0x010507;
pub(crate) const E_MAPD_DEVICE_OOR: u32 = 0x010801;
pub(crate) const E_MAPD_ITTSIZE_OOR: u32 = 0x010802;
pub(crate) const E_MAPC_PROCNUM_OOR: u32 = 0x010902;
pub(crate) const E_MAPC_COLLECTION_OOR: u32 = 0x010903;
pub(crate) const E_MAPTI_UNMAPPED_DEVICE: u32 = 0x010a04;
pub(crate) const E_MAPTI_ID_OOR: u32 = 0x010a05;
pub(crate) const E_MAPTI_PHYSICALID_OOR: u32 = 0x010a06;
pub(crate) const E_INV_UNMAPPED_INTERRUPT: u32 = 0x010c07;
pub(crate) const E_INVALL_UNMAPPED_COLLECTION: u32 = 0x010d09;
pub(crate) const E_MOVALL_PROCNUM_OOR: u32 = 0x010e01;
pub(crate) const E_DISCARD_UNMAPPED_INTERRUPT: u32 = 0x010f07;

/// Why a command did nothing (or only part of what it asks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmdError {
    /// A GICv3 command error (`E_ITS_*`).
    Its(u32),
    /// A table is full, or the LPI could not be created (KVM's `-ENOMEM`).
    NoMem,
    /// Another ITE maps the LPI (KVM's `-EEXIST`).
    Exist,
    /// A table entry write to guest memory failed (KVM's `-EFAULT`).
    Fault,
    /// Not enabled, or the target has LPIs disabled (INT: KVM's `-EBUSY`).
    Busy,
}

type CmdResult = Result<(), CmdError>;

/// Bits [shift + size - 1 : shift] of word `word` (KVM's `its_cmd_mask_field`).
fn field(cmd: &[u64; 4], word: usize, shift: u32, size: u32) -> u64 {
    let w = cmd.get(word).copied().unwrap_or(0) >> shift;
    if size >= 64 {
        w
    } else {
        w & ((1u64 << size) - 1)
    }
}

fn command(cmd: &[u64; 4]) -> u8 {
    field(cmd, 0, 0, 8) as u8
}

fn device_id(cmd: &[u64; 4]) -> u32 {
    field(cmd, 0, 32, 32) as u32
}

/// MAPD: event ID bits, 1..=32.
fn size(cmd: &[u64; 4]) -> u32 {
    field(cmd, 1, 0, 5) as u32 + 1
}

fn event_id(cmd: &[u64; 4]) -> u32 {
    field(cmd, 1, 0, 32) as u32
}

fn physical_id(cmd: &[u64; 4]) -> u32 {
    field(cmd, 1, 32, 32) as u32
}

fn collection(cmd: &[u64; 4]) -> u16 {
    field(cmd, 2, 0, 16) as u16
}

fn itt_addr(cmd: &[u64; 4]) -> u64 {
    field(cmd, 2, 8, 44) << 8
}

fn target(cmd: &[u64; 4]) -> u32 {
    field(cmd, 2, 16, 32) as u32
}

fn valid(cmd: &[u64; 4]) -> bool {
    field(cmd, 2, 63, 1) != 0
}

impl Its<'_> {
    /// Runs the queue from CREADR up to CWRITER, wrapping at its end (KVM's
    /// `vgic_its_process_commands`). Nothing while disabled. A command that cannot be read
    /// is skipped. At most one pass over the queue (1 MiB, 32768 commands).
    pub(super) fn process_commands(&mut self, mem: &mut impl GuestMem, lpis: &mut impl Lpis) {
        if !self.regs.enabled {
            return;
        }
        let base = self.regs.cbaser & CBASER_ADDR_MASK;
        let size = cmdq_size(self.regs.cbaser);
        // CWRITER and CREADR are always inside the queue (their writes check it, a CBASER
        // write zeroes them); stay bounded even if not.
        if self.regs.creadr >= size || self.regs.cwriter >= size {
            self.regs.creadr = cmd_offset(self.regs.creadr) % size;
            self.regs.cwriter = cmd_offset(self.regs.cwriter) % size;
        }
        for _ in 0..size / CMD_SIZE {
            if self.regs.creadr == self.regs.cwriter {
                break;
            }
            let at = base + self.regs.creadr;
            let mut cmd = [0u64; 4];
            let read = cmd.iter_mut().enumerate().try_for_each(|(i, w)| {
                *w = mem.read_u64(at + 8 * i as u64)?;
                Ok::<(), ()>(())
            });
            if read.is_ok() {
                // Errors are the guest's to see by the lack of effect.
                let _ = self.handle_command(&cmd, mem, lpis);
            }
            self.regs.creadr += CMD_SIZE;
            if self.regs.creadr >= size {
                self.regs.creadr = 0;
            }
        }
    }

    /// One command (KVM's `vgic_its_handle_command`); unknown ones do nothing.
    pub(crate) fn handle_command(
        &mut self,
        cmd: &[u64; 4],
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> CmdResult {
        match command(cmd) {
            CMD_MAPD => self.cmd_mapd(cmd, mem, lpis),
            CMD_MAPC => self.cmd_mapc(cmd, mem, lpis),
            CMD_MAPTI | CMD_MAPI => self.cmd_mapi(cmd, mem, lpis),
            CMD_MOVI => self.cmd_movi(cmd, lpis),
            CMD_DISCARD => self.cmd_discard(cmd, mem, lpis),
            CMD_CLEAR => self.cmd_clear(cmd, lpis),
            CMD_MOVALL => self.cmd_movall(cmd, lpis),
            CMD_INT => self.cmd_int(cmd, lpis),
            CMD_INV => self.cmd_inv(cmd, lpis),
            CMD_INVALL => self.cmd_invall(cmd, lpis),
            // In sync all the time.
            CMD_SYNC => Ok(()),
            _ => Ok(()),
        }
    }

    /// MAPD: map a device to its ITT (V=1) or unmap it (V=0, clearing its device table
    /// entry). Mapping a mapped device first drops all its ITEs, as KVM.
    fn cmd_mapd(
        &mut self,
        cmd: &[u64; 4],
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> CmdResult {
        let devid = device_id(cmd);
        let bits = size(cmd);
        let v = valid(cmd);
        let gpa =
            check_id(self.regs.baser_device, devid, mem).ok_or(CmdError::Its(E_MAPD_DEVICE_OOR))?;
        if v && bits > ID_BITS {
            return Err(CmdError::Its(E_MAPD_ITTSIZE_OOR));
        }
        if self.find_device(devid).is_some() {
            self.free_device(devid, lpis);
        }
        if !v {
            return mem.write_u64(gpa, 0).map_err(|()| CmdError::Fault);
        }
        let d = super::Device {
            id: devid,
            itt_addr: itt_addr(cmd),
            eventid_bits: bits as u8,
        };
        self.add_device(d).map_err(|()| CmdError::NoMem)
    }

    /// MAPC: map a collection to a redistributor (V=1), retargeting its LPIs if it was
    /// mapped, or drop it (V=0: its ITEs keep their LPIs, which keep their target).
    fn cmd_mapc(
        &mut self,
        cmd: &[u64; 4],
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> CmdResult {
        let id = collection(cmd);
        if !valid(cmd) {
            self.free_collection(id);
            return Ok(());
        }
        let rdbase = target(cmd);
        let vcpu = lpis
            .vcpu_by_rdbase(u64::from(rdbase))
            .ok_or(CmdError::Its(E_MAPC_PROCNUM_OOR))?;
        if self.find_collection(id).is_none() {
            if check_id(self.regs.baser_coll, u32::from(id), mem).is_none() {
                return Err(CmdError::Its(E_MAPC_COLLECTION_OOR));
            }
            return self
                .add_collection(id, rdbase)
                .map_err(|()| CmdError::NoMem);
        }
        self.set_collection_target(id, rdbase);
        // KVM's update_affinity_collection.
        let n = self.ite_list().len();
        for i in 0..n {
            if let Some(ite) = self.ite_list().get(i).copied() {
                if ite.collection == Some(id) {
                    lpis.set_target(ite.intid, Some(vcpu));
                }
            }
        }
        Ok(())
    }

    /// MAPTI / MAPI: map (device, event) to an LPI in a collection, creating the
    /// collection (unmapped) if needed. An existing mapping of the pair is left alone.
    fn cmd_mapi(
        &mut self,
        cmd: &[u64; 4],
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> CmdResult {
        let devid = device_id(cmd);
        let eventid = event_id(cmd);
        let coll = collection(cmd);
        let dev = self
            .find_device(devid)
            .ok_or(CmdError::Its(E_MAPTI_UNMAPPED_DEVICE))?;
        if !self.event_in_itt(&dev, eventid, mem) {
            return Err(CmdError::Its(E_MAPTI_ID_OOR));
        }
        let intid = if command(cmd) == CMD_MAPTI {
            physical_id(cmd)
        } else {
            eventid
        };
        if intid < LPI_OFFSET || intid >= max_lpis(lpis.propbaser()) {
            return Err(CmdError::Its(E_MAPTI_PHYSICALID_OOR));
        }
        // UNPREDICTABLE: KVM keeps the existing mapping and reports success.
        if self.find_ite(devid, eventid).is_some() {
            return Ok(());
        }
        let mut new_coll = false;
        if self.find_collection(coll).is_none() {
            if check_id(self.regs.baser_coll, u32::from(coll), mem).is_none() {
                return Err(CmdError::Its(E_MAPC_COLLECTION_OOR));
            }
            self.add_collection(coll, COLLECTION_NOT_MAPPED)
                .map_err(|()| CmdError::NoMem)?;
            new_coll = true;
        }
        let vcpu = self.collection_vcpu(Some(coll), lpis);
        let ite = Ite {
            devid,
            eventid,
            intid,
            collection: Some(coll),
        };
        let r = self.add_ite(ite, vcpu, lpis);
        if r.is_err() && new_coll {
            self.free_collection(coll);
        }
        r.map_err(|e| {
            if e.is_some() {
                CmdError::NoMem
            } else {
                CmdError::Exist
            }
        })
    }

    /// KVM's `vgic_its_check_event_id`: inside the device's ITT, in guest RAM.
    pub(super) fn event_in_itt(
        &self,
        dev: &super::Device,
        eventid: u32,
        mem: &mut impl GuestMem,
    ) -> bool {
        if u64::from(eventid) >= 1u64 << dev.eventid_bits.min(63) {
            return false;
        }
        mem.visible(dev.itt_addr.wrapping_add(u64::from(eventid) * ESZ))
    }

    /// MOVI: move an ITE (whose collection is mapped) to another mapped collection.
    fn cmd_movi(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        let (devid, eventid, coll) = (device_id(cmd), event_id(cmd), collection(cmd));
        let pos = self
            .ite_pos(devid, eventid)
            .map_err(|_| CmdError::Its(E_MOVI_UNMAPPED_INTERRUPT))?;
        let ite = self
            .ite_list()
            .get(pos)
            .copied()
            .ok_or(CmdError::Its(E_MOVI_UNMAPPED_INTERRUPT))?;
        let mapped = |c: Option<u16>| {
            c.and_then(|c| self.find_collection(c))
                .is_some_and(|c| c.mapped())
        };
        if !mapped(ite.collection) || !mapped(Some(coll)) {
            return Err(CmdError::Its(E_MOVI_UNMAPPED_COLLECTION));
        }
        let vcpu = self.collection_vcpu(Some(coll), lpis);
        if let Some(e) = self.ites.get_mut(pos) {
            e.collection = Some(coll);
        }
        lpis.set_target(ite.intid, vcpu);
        Ok(())
    }

    /// DISCARD: remove an ITE (whose collection is mapped) and clear its ITT entry.
    fn cmd_discard(
        &mut self,
        cmd: &[u64; 4],
        mem: &mut impl GuestMem,
        lpis: &mut impl Lpis,
    ) -> CmdResult {
        let (devid, eventid) = (device_id(cmd), event_id(cmd));
        let unmapped = CmdError::Its(E_DISCARD_UNMAPPED_INTERRUPT);
        let pos = self.ite_pos(devid, eventid).map_err(|_| unmapped)?;
        let ite = self.ite_list().get(pos).copied().ok_or(unmapped)?;
        if self.collection_mapped(ite.collection).is_none() {
            return Err(unmapped);
        }
        let dev = self.find_device(devid).ok_or(unmapped)?;
        self.free_ites(pos..pos + 1, lpis);
        let gpa = dev.itt_addr.wrapping_add(u64::from(eventid) * ESZ);
        mem.write_u64(gpa, 0).map_err(|()| CmdError::Fault)
    }

    /// The collection `id` if it exists and is mapped.
    fn collection_mapped(&self, id: Option<u16>) -> Option<super::Collection> {
        self.find_collection(id?).filter(|c| c.mapped())
    }

    /// CLEAR: the LPI is no longer pending.
    fn cmd_clear(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        let ite = self
            .find_ite(device_id(cmd), event_id(cmd))
            .ok_or(CmdError::Its(E_CLEAR_UNMAPPED_INTERRUPT))?;
        lpis.set_pending(ite.intid, false);
        Ok(())
    }

    /// INT: the LPI becomes pending, as an MSI would make it (KVM's
    /// `vgic_its_trigger_msi`).
    fn cmd_int(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        match self.resolve(device_id(cmd), event_id(cmd), lpis) {
            Ok((intid, _)) => {
                lpis.set_pending(intid, true);
                Ok(())
            }
            Err(super::MsiError::Unmapped) => Err(CmdError::Its(E_INT_UNMAPPED_INTERRUPT)),
            Err(super::MsiError::Busy) => Err(CmdError::Busy),
        }
    }

    /// INV: reload the LPI's configuration.
    fn cmd_inv(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        let ite = self
            .find_ite(device_id(cmd), event_id(cmd))
            .ok_or(CmdError::Its(E_INV_UNMAPPED_INTERRUPT))?;
        lpis.invalidate(ite.intid);
        Ok(())
    }

    /// INVALL: reload the configuration of every LPI targeting the collection's vCPU.
    fn cmd_invall(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        let c = self
            .collection_mapped(Some(collection(cmd)))
            .ok_or(CmdError::Its(E_INVALL_UNMAPPED_COLLECTION))?;
        // A mapped collection's redistributor exists (MAPC and restore check it).
        if let Some(vcpu) = lpis.vcpu_by_rdbase(u64::from(c.target)) {
            lpis.invalidate_all(vcpu);
        }
        Ok(())
    }

    /// MOVALL: every LPI of the VM targeting RDbase1 now targets RDbase2.
    fn cmd_movall(&mut self, cmd: &[u64; 4], lpis: &mut impl Lpis) -> CmdResult {
        let from = lpis.vcpu_by_rdbase(u64::from(target(cmd)));
        let to = lpis.vcpu_by_rdbase(field(cmd, 3, 16, 32));
        let (Some(from), Some(to)) = (from, to) else {
            return Err(CmdError::Its(E_MOVALL_PROCNUM_OOR));
        };
        if from != to {
            lpis.move_all(from, to);
        }
        Ok(())
    }
}

/// Command encoders, for the tests and for documentation of the layout.
#[cfg(test)]
pub(crate) mod enc {
    use super::*;

    pub(crate) fn mapd(devid: u32, itt: u64, bits: u32, valid: bool) -> [u64; 4] {
        let sz = u64::from(bits.wrapping_sub(1) & 0x1f);
        [
            u64::from(CMD_MAPD) | (u64::from(devid) << 32),
            sz,
            (itt & !0xff & ((1 << 52) - 1)) | (u64::from(valid) << 63),
            0,
        ]
    }

    pub(crate) fn mapc(coll: u16, rdbase: u32, valid: bool) -> [u64; 4] {
        [
            u64::from(CMD_MAPC),
            0,
            u64::from(coll) | (u64::from(rdbase) << 16) | (u64::from(valid) << 63),
            0,
        ]
    }

    pub(crate) fn mapti(devid: u32, eventid: u32, intid: u32, coll: u16) -> [u64; 4] {
        [
            u64::from(CMD_MAPTI) | (u64::from(devid) << 32),
            u64::from(eventid) | (u64::from(intid) << 32),
            u64::from(coll),
            0,
        ]
    }

    pub(crate) fn mapi(devid: u32, eventid: u32, coll: u16) -> [u64; 4] {
        [
            u64::from(CMD_MAPI) | (u64::from(devid) << 32),
            u64::from(eventid),
            u64::from(coll),
            0,
        ]
    }

    pub(crate) fn dev_event(cmd: u8, devid: u32, eventid: u32) -> [u64; 4] {
        [
            u64::from(cmd) | (u64::from(devid) << 32),
            u64::from(eventid),
            0,
            0,
        ]
    }

    pub(crate) fn movi(devid: u32, eventid: u32, coll: u16) -> [u64; 4] {
        [
            u64::from(CMD_MOVI) | (u64::from(devid) << 32),
            u64::from(eventid),
            u64::from(coll),
            0,
        ]
    }

    pub(crate) fn invall(coll: u16) -> [u64; 4] {
        [u64::from(CMD_INVALL), 0, u64::from(coll), 0]
    }

    pub(crate) fn movall(from: u32, to: u32) -> [u64; 4] {
        [
            u64::from(CMD_MOVALL),
            0,
            u64::from(from) << 16,
            u64::from(to) << 16,
        ]
    }
}
