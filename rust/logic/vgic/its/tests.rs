// SPDX-License-Identifier: GPL-2.0

//! Host tests of the ITS model against a fake guest RAM (with holes) and a fake vGIC
//! that records what the ITS asks of its LPIs.

// `Mem::ram` is a list of RAM ranges, and most tests back one: a `vec!` of one range
// is what they mean.
#![allow(clippy::single_range_in_vec_init)]

extern crate std;

use super::cmd::{enc, CmdError, *};
use super::*;
use std::{collections::BTreeMap, vec, vec::Vec};

/// Guest RAM: the ranges in `ram` are backed (reading 0 until written), the rest not.
struct Mem {
    ram: Vec<Range<u64>>,
    words: BTreeMap<u64, u64>,
}

impl Mem {
    fn backed(&self, gpa: u64) -> bool {
        self.ram
            .iter()
            .any(|r| r.contains(&gpa) && r.contains(&(gpa + 7)))
    }
    fn get(&self, gpa: u64) -> u64 {
        self.words.get(&gpa).copied().unwrap_or(0)
    }
    fn set(&mut self, gpa: u64, v: u64) {
        self.words.insert(gpa, v);
    }
}

impl GuestMem for Mem {
    fn read_u64(&mut self, gpa: u64) -> Result<u64, ()> {
        if !self.backed(gpa) {
            return Err(());
        }
        Ok(self.get(gpa))
    }
    fn write_u64(&mut self, gpa: u64, val: u64) -> Result<(), ()> {
        if !self.backed(gpa) {
            return Err(());
        }
        self.words.insert(gpa, val);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lpi {
    refs: u32,
    target: Option<usize>,
    pending: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Inv(u32),
    InvAll(usize),
    MoveAll(usize, usize),
}

/// The vGIC side: vCPU `i` has redistributor number `ids[i]`.
struct Lpis_ {
    ids: Vec<u64>,
    enabled: Vec<bool>,
    propbaser: u64,
    lpis: BTreeMap<u32, Lpi>,
    calls: Vec<Call>,
    fail_map: bool,
}

impl Lpis for Lpis_ {
    fn vcpu_by_rdbase(&self, rdbase: u64) -> Option<usize> {
        self.ids.iter().position(|&i| i == rdbase)
    }
    fn lpis_enabled(&self, vcpu: usize) -> bool {
        self.enabled[vcpu]
    }
    fn propbaser(&self) -> u64 {
        self.propbaser
    }
    fn map(&mut self, intid: u32, vcpu: Option<usize>) -> Result<(), ()> {
        if self.fail_map {
            return Err(());
        }
        let l = self.lpis.entry(intid).or_insert(Lpi {
            refs: 0,
            target: None,
            pending: false,
        });
        l.refs += 1;
        l.target = vcpu;
        Ok(())
    }
    fn unmap(&mut self, intid: u32) {
        let l = self.lpis.get_mut(&intid).expect("unmap of an unmapped LPI");
        l.refs -= 1;
        if l.refs == 0 {
            self.lpis.remove(&intid);
        }
    }
    fn set_target(&mut self, intid: u32, vcpu: Option<usize>) {
        self.lpis.get_mut(&intid).unwrap().target = vcpu;
    }
    fn set_pending(&mut self, intid: u32, pending: bool) {
        self.lpis.get_mut(&intid).unwrap().pending = pending;
    }
    fn invalidate(&mut self, intid: u32) {
        self.calls.push(Call::Inv(intid));
    }
    fn invalidate_all(&mut self, vcpu: usize) {
        self.calls.push(Call::InvAll(vcpu));
    }
    fn move_all(&mut self, from: usize, to: usize) {
        self.calls.push(Call::MoveAll(from, to));
        for l in self.lpis.values_mut().filter(|l| l.target == Some(from)) {
            l.target = Some(to);
        }
    }
}

const CMDQ: u64 = 0x10_0000;
const DT: u64 = 0x20_0000;
const CT: u64 = 0x30_0000;
const ITT: u64 = 0x40_0000;
const L2: u64 = 0x50_0000;
const HOLE: u64 = 0x1000_0000;

struct Fix {
    regs: ItsRegs,
    devices: Vec<Device>,
    ites: Vec<Ite>,
    colls: Vec<Collection>,
    lpi_map: Vec<u64>,
    mem: Mem,
    lpis: Lpis_,
}

impl Fix {
    /// An ITS with four vCPUs (redistributor numbers 0-3), 16 MiB of RAM at 0.
    fn new() -> Self {
        Self {
            regs: ItsRegs::default(),
            devices: vec![Device::EMPTY; MAX_DEVICES],
            ites: vec![Ite::EMPTY; MAX_ITES],
            colls: vec![Collection::EMPTY; MAX_COLLECTIONS],
            lpi_map: vec![0; LPI_MAP_WORDS],
            mem: Mem {
                ram: vec![0..0x100_0000],
                words: BTreeMap::new(),
            },
            lpis: Lpis_ {
                ids: vec![0, 1, 2, 3],
                enabled: vec![true; 4],
                propbaser: 15, // 16 ID bits
                lpis: BTreeMap::new(),
                calls: Vec::new(),
                fail_map: false,
            },
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut Its<'_>, &mut Mem, &mut Lpis_) -> R) -> R {
        let mut its = Its {
            regs: &mut self.regs,
            devices: &mut self.devices,
            ites: &mut self.ites,
            collections: &mut self.colls,
            lpi_map: &mut self.lpi_map,
        };
        f(&mut its, &mut self.mem, &mut self.lpis)
    }

    fn read(&mut self, off: u64, len: u8) -> u64 {
        self.with(|its, _, _| its.mmio_read(off, len))
    }

    fn write(&mut self, off: u64, len: u8, val: u64) {
        self.with(|its, m, l| its.mmio_write(off, len, val, m, l))
    }

    /// Queue of 16 pages, flat device table and collection table of one page each,
    /// enabled.
    fn enabled() -> Self {
        let mut f = Self::new();
        f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ | 15);
        f.write(GITS_BASER, 8, BASER_VALID | DT);
        f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
        f.write(GITS_CTLR, 4, 1);
        assert_eq!(f.read(GITS_CTLR, 4), CTLR_QUIESCENT | 1);
        f
    }

    /// Queues `cmds` at CWRITER and writes CWRITER.
    fn cmds(&mut self, cmds: &[[u64; 4]]) {
        let size = cmdq_size(self.regs.cbaser);
        let mut w = self.regs.cwriter;
        for c in cmds {
            for (i, word) in c.iter().enumerate() {
                self.mem.set(CMDQ + w + 8 * i as u64, *word);
            }
            w = (w + 32) % size;
        }
        self.write(GITS_CWRITER, 8, w);
        assert_eq!(self.regs.creadr, w);
    }

    fn cmd(&mut self, c: [u64; 4]) -> Result<(), CmdError> {
        self.with(|its, m, l| its.handle_command(&c, m, l))
    }

    /// Device `dev` with 2^bits events, ITT at ITT + dev * 64 KiB; collection `coll` on
    /// vCPU 1; LPI `intid` at event `ev`.
    fn map_one(&mut self, dev: u32, bits: u32, coll: u16, ev: u32, intid: u32) {
        self.cmds(&[
            enc::mapd(dev, itt(dev), bits, true),
            enc::mapc(coll, 1, true),
            enc::mapti(dev, ev, intid, coll),
        ]);
    }

    fn resolve(&mut self, dev: u32, ev: u32) -> Result<(u32, usize), MsiError> {
        self.with(|its, _, l| its.resolve(dev, ev, l))
    }

    fn lpi(&self, intid: u32) -> Option<Lpi> {
        self.lpis.lpis.get(&intid).copied()
    }

    fn save(&mut self) -> Result<(), Errno> {
        self.with(|its, m, _| its.save_tables(m))
    }

    /// Resets the ITS and restores the registers and tables as a VMM does after a
    /// migration.
    fn reset_and_restore(&mut self) -> Result<(), Errno> {
        let (cb, b0, b1) = (
            self.regs.cbaser,
            self.regs.baser_device,
            self.regs.baser_coll,
        );
        self.with(|its, _, l| its.reset(l));
        assert!(
            self.lpis.lpis.is_empty(),
            "reset dropped every LPI reference"
        );
        self.with(|its, m, l| {
            its.regs_set(GITS_CBASER, cb, m, l).unwrap();
            its.regs_set(GITS_BASER, b0, m, l).unwrap();
            its.regs_set(GITS_BASER + 8, b1, m, l).unwrap();
            its.restore_tables(m, l)
        })
    }

    fn n(&self) -> (usize, usize, usize) {
        (
            self.regs.nr_devices,
            self.regs.nr_ites,
            self.regs.nr_collections,
        )
    }
}

fn itt(dev: u32) -> u64 {
    ITT + u64::from(dev % 64) * 0x1_0000
}

// ---- registers ----

#[test]
fn reset_values() {
    let mut f = Fix::new();
    assert_eq!(f.read(GITS_CTLR, 4), 0x8000_0000);
    assert_eq!(f.read(GITS_IIDR, 4), 0x4b00_043b);
    assert_eq!(f.read(GITS_TYPER, 8), 0x1_ef71);
    assert_eq!(f.read(GITS_TYPER, 4), 0x1_ef71);
    assert_eq!(f.read(GITS_TYPER + 4, 4), 0);
    assert_eq!(f.read(GITS_BASER, 8), 0x1907_0000_0000_0600);
    assert_eq!(f.read(GITS_BASER + 8, 8), 0x1c07_0000_0000_0600);
    for n in 2..8 {
        assert_eq!(f.read(GITS_BASER + 8 * n, 8), 0);
    }
    assert_eq!(f.read(GITS_CBASER, 8), 0);
    let ids: Vec<u64> = [
        GITS_PIDR4, GITS_PIDR0, GITS_PIDR1, GITS_PIDR2, 0xffec, 0xfff0, 0xfff4, 0xfff8, 0xfffc,
    ]
    .iter()
    .map(|&o| f.read(o, 4))
    .collect();
    assert_eq!(ids, [0x40, 0x92, 0xb4, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1]);
}

#[test]
fn access_widths() {
    let mut f = Fix::new();
    f.write(GITS_BASER, 8, BASER_VALID | DT);
    // Bytes, 8-byte CTLR/IIDR/ID registers, misaligned halves, unimplemented offsets.
    assert_eq!(f.read(GITS_CTLR, 1), 0);
    assert_eq!(f.read(GITS_CTLR, 8), 0);
    assert_eq!(f.read(GITS_PIDR2, 8), 0);
    assert_eq!(f.read(GITS_BASER + 2, 4), 0);
    assert_eq!(f.read(GITS_BASER + 4, 8), 0);
    assert_eq!(f.read(0x20, 4), 0);
    // Inner non-cacheable became RaWb; 64 KiB pages.
    assert_eq!(f.read(GITS_BASER + 4, 4), 0x9907_0000);
    assert_eq!(f.read(GITS_BASER, 4), DT | 0x200);
    // A 32-bit write updates one half.
    f.write(GITS_BASER + 4, 4, 0x8107_0000 | 0x5);
    assert_eq!(f.read(GITS_BASER, 8) >> 32, 0x9907_0005);
    assert_eq!(f.read(GITS_BASER, 4), DT | 0x200);
    // A byte write and a misaligned one are ignored.
    f.write(GITS_BASER, 1, 0);
    f.write(GITS_BASER + 2, 4, 0);
    assert_eq!(f.read(GITS_BASER, 4), DT | 0x200);
}

#[test]
fn baser_sanitising() {
    let mut f = Fix::new();
    // Outer shareable → inner; inner nC → RaWb; outer RaWb → same as inner; 4K pages →
    // 64K; entry size and type are read-only.
    let v = BASER_VALID
        | BASER_INDIRECT
        | (1 << 59)
        | (3 << 53)
        | (0x1f << 48)
        | (7 << 56)
        | DT
        | (2 << 10)
        | 3;
    f.write(GITS_BASER, 8, v);
    assert_eq!(
        f.read(GITS_BASER, 8),
        BASER_VALID | BASER_INDIRECT | (3 << 59) | (1 << 56) | (7 << 48) | DT | 0x400 | 0x200 | 3
    );
    // Outer nC stays; the collection table is never indirect.
    f.write(
        GITS_BASER + 8,
        8,
        BASER_VALID | BASER_INDIRECT | (6 << 59) | (1 << 53) | CT,
    );
    assert_eq!(
        f.read(GITS_BASER + 8, 8),
        BASER_VALID | (6 << 59) | (1 << 53) | (4 << 56) | (7 << 48) | CT | 0x200
    );
    // BASER2..7 are RAZ/WI.
    f.write(GITS_BASER + 16, 8, u64::MAX);
    assert_eq!(f.read(GITS_BASER + 16, 8), 0);
}

#[test]
#[allow(clippy::identity_op)] // The encodings spell out every field, zeros included.
fn cbaser_sanitising_and_queue_pointers() {
    let mut f = Fix::new();
    f.write(
        GITS_CBASER,
        8,
        CBASER_VALID | (0 << 59) | (5 << 53) | (2 << 10) | CMDQ | 0xf000 | 15,
    );
    assert_eq!(
        f.read(GITS_CBASER, 8),
        CBASER_VALID | (3 << 59) | (1 << 10) | CMDQ | 15
    );
    // CWRITER offsets are [19:5]; beyond the queue (64 KiB) ignored.
    f.write(GITS_CWRITER, 8, 0x1f);
    assert_eq!(f.read(GITS_CWRITER, 8), 0);
    f.write(GITS_CWRITER, 8, 0x1_0000);
    assert_eq!(f.read(GITS_CWRITER, 8), 0);
    f.write(GITS_CWRITER, 8, 0x40);
    assert_eq!(f.read(GITS_CWRITER, 8), 0x40);
    // Disabled: nothing processed, not quiescent.
    assert_eq!(f.read(GITS_CREADR, 8), 0);
    assert_eq!(f.read(GITS_CTLR, 4), 0);
    // The guest cannot write CREADR.
    f.write(GITS_CREADR, 8, 0x40);
    assert_eq!(f.read(GITS_CREADR, 8), 0);
    // A CBASER write empties the queue.
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ);
    assert_eq!((f.read(GITS_CREADR, 8), f.read(GITS_CWRITER, 8)), (0, 0));
}

#[test]
fn enabling_rules() {
    let mut f = Fix::new();
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ);
    f.write(GITS_BASER, 8, BASER_VALID | DT);
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(f.read(GITS_CTLR, 4) & 1, 0, "collection table invalid");
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(f.read(GITS_CTLR, 4), 0x8000_0001);
    // Enabled: CBASER and BASER writes are ignored.
    f.write(GITS_CBASER, 8, CBASER_VALID | 0x70_0000);
    f.write(GITS_BASER, 8, BASER_VALID | 0x70_0000);
    assert_eq!(f.read(GITS_CBASER, 8) & CBASER_ADDR_MASK, CMDQ);
    assert_eq!(baser_addr(f.read(GITS_BASER, 8)), DT);
    // Disabling is always allowed; re-enabling too once valid.
    f.write(GITS_CTLR, 4, 0);
    assert_eq!(f.read(GITS_CTLR, 4), 0x8000_0000);
    // The valid bits are checked only when enabling from disabled.
    f.write(GITS_CBASER, 8, CMDQ);
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(f.read(GITS_CTLR, 4) & 1, 0);
}

#[test]
fn baser_change_drops_the_table_contents() {
    let mut f = Fix::enabled();
    f.map_one(1, 4, 3, 0, 8192);
    f.write(GITS_CTLR, 4, 0);
    // Rewriting the same value keeps everything (the ITS driver's resume).
    let b1 = f.read(GITS_BASER + 8, 8);
    f.write(GITS_BASER + 8, 8, b1);
    assert_eq!(f.n(), (1, 1, 1));
    // A changed collection table drops the collections; ITEs keep their LPI.
    f.write(GITS_BASER + 8, 8, b1 & !0xff | 1);
    assert_eq!(f.n(), (1, 1, 0));
    assert_eq!(f.ites[0].collection, None);
    // A changed device table drops devices and ITEs, and their LPI references.
    f.write(GITS_BASER, 8, BASER_VALID | DT | 1);
    assert_eq!(f.n(), (0, 0, 0));
    assert!(f.lpi(8192).is_none());
}

#[test]
fn translater_is_not_implemented() {
    let mut f = Fix::enabled();
    f.map_one(0, 4, 0, 1, 8200);
    f.write(GITS_TRANSLATER, 4, 1);
    assert_eq!(f.read(GITS_TRANSLATER, 4), 0);
    assert!(!f.lpi(8200).unwrap().pending);
}

#[test]
fn userspace_registers() {
    let mut f = Fix::new();
    assert_eq!(regs_has(GITS_CTLR), Ok(()));
    assert_eq!(regs_has(GITS_IIDR), Ok(()));
    assert_eq!(regs_has(GITS_TYPER + 4), Err(Errno::Inval));
    assert_eq!(regs_has(GITS_BASER + 0x38), Ok(()));
    assert_eq!(regs_has(GITS_BASER + 0x40), Err(Errno::Nxio));
    assert_eq!(regs_has(0x20), Err(Errno::Nxio));
    assert_eq!(regs_has(GITS_PIDR2), Ok(()));
    assert_eq!(regs_has(GITS_PIDR2 + 2), Err(Errno::Inval));
    assert_eq!(regs_has(GITS_TRANSLATER), Err(Errno::Nxio));
    f.with(|its, m, l| {
        assert_eq!(its.regs_get(GITS_TYPER), Ok(0x1_ef71));
        assert_eq!(its.regs_get(GITS_IIDR), Ok(0x4b00_043b));
        assert_eq!(its.regs_get(GITS_PIDR2), Ok(0x3b));
        assert_eq!(its.regs_get(GITS_CBASER + 4), Err(Errno::Inval));
        // IIDR: only ABI revision 0.
        assert_eq!(its.regs_set(GITS_IIDR, 1 << 12, m, l), Err(Errno::Inval));
        assert_eq!(its.regs_set(GITS_IIDR, 0x4b00_043b, m, l), Ok(()));
        // TYPER is read-only.
        assert_eq!(its.regs_set(GITS_TYPER, 0, m, l), Ok(()));
        assert_eq!(its.regs_get(GITS_TYPER), Ok(0x1_ef71));
        // CREADR: inside the queue, while disabled.
        its.regs_set(GITS_CBASER, CBASER_VALID | CMDQ, m, l)
            .unwrap();
        assert_eq!(its.regs_set(GITS_CREADR, 0x1000, m, l), Err(Errno::Inval));
        assert_eq!(its.regs_set(GITS_CREADR, 0xfe0 | 0x1f, m, l), Ok(()));
        assert_eq!(its.regs_get(GITS_CREADR), Ok(0xfe0));
        assert_eq!(its.regs_set(GITS_CWRITER, 0xfe0, m, l), Ok(()));
        its.regs_set(GITS_BASER, BASER_VALID | DT, m, l).unwrap();
        its.regs_set(GITS_BASER + 8, BASER_VALID | CT, m, l)
            .unwrap();
        assert_eq!(its.regs_set(GITS_CTLR, 1, m, l), Ok(()));
        assert_eq!(its.regs_get(GITS_CTLR), Ok(0x8000_0001));
        assert_eq!(its.regs_set(GITS_CREADR, 0, m, l), Err(Errno::Busy));
    });
}

#[test]
fn userspace_ctlr_processes_pending_commands() {
    let mut f = Fix::new();
    f.mem.set(CMDQ, enc::mapc(5, 2, true)[0]);
    f.mem.set(CMDQ + 16, enc::mapc(5, 2, true)[2]);
    f.with(|its, m, l| {
        its.regs_set(GITS_CBASER, CBASER_VALID | CMDQ, m, l)
            .unwrap();
        its.regs_set(GITS_CWRITER, 0x20, m, l).unwrap();
        its.regs_set(GITS_BASER, BASER_VALID | DT, m, l).unwrap();
        its.regs_set(GITS_BASER + 8, BASER_VALID | CT, m, l)
            .unwrap();
        assert_eq!(its.regs_get(GITS_CTLR), Ok(0));
        its.regs_set(GITS_CTLR, 1, m, l).unwrap();
        assert_eq!(its.regs_get(GITS_CREADR), Ok(0x20));
    });
    assert_eq!(
        f.colls[0],
        Collection {
            id: 5,
            target: 2,
            seq: 0
        }
    );
}

// ---- commands ----

#[test]
fn map_and_deliver() {
    let mut f = Fix::enabled();
    f.map_one(7, 4, 2, 3, 8300);
    assert_eq!(
        f.devices[0],
        Device {
            id: 7,
            itt_addr: itt(7),
            eventid_bits: 4
        }
    );
    assert_eq!(
        f.ites[0],
        Ite {
            devid: 7,
            eventid: 3,
            intid: 8300,
            collection: Some(2)
        }
    );
    assert_eq!(
        f.lpi(8300),
        Some(Lpi {
            refs: 1,
            target: Some(1),
            pending: false
        })
    );
    assert_eq!(f.resolve(7, 3), Ok((8300, 1)));
    f.cmds(&[enc::dev_event(CMD_INT, 7, 3)]);
    assert!(f.lpi(8300).unwrap().pending);
    f.cmds(&[enc::dev_event(CMD_CLEAR, 7, 3)]);
    assert!(!f.lpi(8300).unwrap().pending);
    // MAPI: the LPI is the event ID.
    f.cmds(&[enc::mapd(8, itt(8), 16, true), enc::mapi(8, 9000, 2)]);
    assert_eq!(f.resolve(8, 9000), Ok((9000, 1)));
    f.cmds(&[enc::dev_event(CMD_SYNC, 0, 0), [0xff, 1, 2, 3]]);
}

#[test]
fn resolve_outcomes() {
    let mut f = Fix::enabled();
    f.map_one(1, 4, 0, 0, 8192);
    assert_eq!(f.resolve(1, 0), Ok((8192, 1)));
    assert_eq!(f.resolve(1, 1), Err(MsiError::Unmapped));
    assert_eq!(f.resolve(2, 0), Err(MsiError::Unmapped));
    assert_eq!(f.resolve(u32::MAX, u32::MAX), Err(MsiError::Unmapped));
    f.lpis.enabled[1] = false;
    assert_eq!(f.resolve(1, 0), Err(MsiError::Busy));
    f.lpis.enabled[1] = true;
    // A collection MAPTI created is unmapped until MAPC.
    f.cmds(&[enc::mapti(1, 1, 8193, 9)]);
    assert_eq!(f.resolve(1, 1), Err(MsiError::Unmapped));
    assert_eq!(f.lpi(8193).unwrap().target, None);
    f.cmds(&[enc::mapc(9, 3, true)]);
    assert_eq!(f.resolve(1, 1), Ok((8193, 3)));
    assert_eq!(f.lpi(8193).unwrap().target, Some(3));
    // A collection whose redistributor does not resolve.
    f.lpis.ids[3] = 42;
    assert_eq!(f.resolve(1, 1), Err(MsiError::Unmapped));
    f.write(GITS_CTLR, 4, 0);
    assert_eq!(f.resolve(1, 0), Err(MsiError::Busy));
}

#[test]
fn redistributor_numbers_are_vcpu_ids() {
    let mut f = Fix::enabled();
    f.lpis.ids = vec![10, 20];
    f.lpis.enabled = vec![true; 2];
    assert_eq!(
        f.cmd(enc::mapc(0, 1, true)),
        Err(CmdError::Its(E_MAPC_PROCNUM_OOR))
    );
    assert_eq!(f.cmd(enc::mapc(0, 20, true)), Ok(()));
    f.cmds(&[enc::mapd(0, itt(0), 1, true), enc::mapti(0, 1, 8192, 0)]);
    assert_eq!(f.resolve(0, 1), Ok((8192, 1)));
    assert_eq!(f.colls[0].target, 20);
}

#[test]
fn mapd_errors_and_remap() {
    let mut f = Fix::enabled();
    // One 64 KiB page of 8-byte DTEs: device IDs below 8192.
    assert_eq!(
        f.cmd(enc::mapd(8192, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapd(1 << 16, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapd(u32::MAX, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapd(1, itt(0), 17, true)),
        Err(CmdError::Its(E_MAPD_ITTSIZE_OOR))
    );
    // Size is not checked when unmapping.
    assert_eq!(f.cmd(enc::mapd(1, itt(0), 17, false)), Ok(()));
    f.map_one(1, 4, 0, 2, 8192);
    f.cmds(&[enc::mapti(1, 3, 8193, 0)]);
    // Mapping a mapped device drops its ITEs.
    f.mem.set(DT + 8, 0x1234);
    assert_eq!(f.cmd(enc::mapd(1, itt(1), 8, true)), Ok(()));
    assert_eq!(f.n(), (1, 0, 1));
    assert!(f.lpi(8192).is_none() && f.lpi(8193).is_none());
    assert_eq!(f.devices[0].eventid_bits, 8);
    assert_eq!(f.mem.get(DT + 8), 0x1234, "V=1 does not write the DTE");
    // Unmapping clears its DTE.
    assert_eq!(f.cmd(enc::mapd(1, 0, 1, false)), Ok(()));
    assert_eq!(f.mem.get(DT + 8), 0);
    assert_eq!(f.n(), (0, 0, 1));
    // Unmapping an unmapped device is fine.
    assert_eq!(f.cmd(enc::mapd(1, 0, 1, false)), Ok(()));
    // A device table outside RAM: the entry is not visible.
    f.write(GITS_CTLR, 4, 0);
    f.write(GITS_BASER, 8, BASER_VALID | HOLE);
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(
        f.cmd(enc::mapd(0, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
}

#[test]
fn mapc_errors_and_unmap() {
    let mut f = Fix::enabled();
    assert_eq!(
        f.cmd(enc::mapc(0, 4, true)),
        Err(CmdError::Its(E_MAPC_PROCNUM_OOR))
    );
    // One page of collections: IDs below 8192.
    assert_eq!(
        f.cmd(enc::mapc(8192, 0, true)),
        Err(CmdError::Its(E_MAPC_COLLECTION_OOR))
    );
    f.map_one(0, 4, 6, 0, 8192);
    f.cmds(&[enc::mapti(0, 1, 8193, 6)]);
    // Remapping retargets its LPIs.
    assert_eq!(f.cmd(enc::mapc(6, 2, true)), Ok(()));
    assert_eq!(
        (f.lpi(8192).unwrap().target, f.lpi(8193).unwrap().target),
        (Some(2), Some(2))
    );
    // V=0: the ITEs lose their collection for good; the LPIs keep their target.
    assert_eq!(f.cmd(enc::mapc(6, 0, false)), Ok(()));
    assert_eq!(f.n(), (1, 2, 0));
    assert_eq!(f.lpi(8192).unwrap().target, Some(2));
    assert_eq!(f.resolve(0, 0), Err(MsiError::Unmapped));
    assert_eq!(f.cmd(enc::mapc(6, 3, true)), Ok(()));
    assert_eq!(f.resolve(0, 0), Err(MsiError::Unmapped));
    assert_eq!(f.lpi(8192).unwrap().target, Some(2));
    // V=0 of an unknown collection is fine.
    assert_eq!(f.cmd(enc::mapc(100, 0, false)), Ok(()));
}

#[test]
fn mapti_errors() {
    let mut f = Fix::enabled();
    assert_eq!(
        f.cmd(enc::mapti(0, 0, 8192, 0)),
        Err(CmdError::Its(E_MAPTI_UNMAPPED_DEVICE))
    );
    f.cmds(&[enc::mapd(0, itt(0), 2, true), enc::mapc(0, 0, true)]);
    assert_eq!(
        f.cmd(enc::mapti(0, 4, 8192, 0)),
        Err(CmdError::Its(E_MAPTI_ID_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapti(0, u32::MAX, 8192, 0)),
        Err(CmdError::Its(E_MAPTI_ID_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapti(0, 0, 8191, 0)),
        Err(CmdError::Its(E_MAPTI_PHYSICALID_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapti(0, 0, 1 << 16, 0)),
        Err(CmdError::Its(E_MAPTI_PHYSICALID_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapti(0, 0, u32::MAX, 0)),
        Err(CmdError::Its(E_MAPTI_PHYSICALID_OOR))
    );
    // GICR_PROPBASER.IDbits bounds the LPI: 14 bits allow 8192..16383.
    f.lpis.propbaser = 13;
    assert_eq!(
        f.cmd(enc::mapti(0, 0, 16384, 0)),
        Err(CmdError::Its(E_MAPTI_PHYSICALID_OOR))
    );
    assert_eq!(f.cmd(enc::mapti(0, 0, 16383, 0)), Ok(()));
    f.lpis.propbaser = 31;
    assert_eq!(
        f.cmd(enc::mapti(0, 1, 8192, 8192)),
        Err(CmdError::Its(E_MAPC_COLLECTION_OOR))
    );
    // The ITT entry must be guest RAM.
    f.cmds(&[enc::mapd(1, HOLE, 4, true)]);
    assert_eq!(
        f.cmd(enc::mapti(1, 0, 8192, 0)),
        Err(CmdError::Its(E_MAPTI_ID_OOR))
    );
    // A failed LPI creation drops the ITE and the collection it created.
    f.lpis.fail_map = true;
    assert_eq!(f.cmd(enc::mapti(0, 1, 8192, 77)), Err(CmdError::NoMem));
    assert_eq!(f.n(), (2, 1, 1));
    f.lpis.fail_map = false;
}

#[test]
fn duplicate_mappings() {
    let mut f = Fix::enabled();
    f.map_one(0, 4, 0, 0, 8192);
    // The same (device, event) again: ignored, success.
    assert_eq!(f.cmd(enc::mapti(0, 0, 8200, 0)), Ok(()));
    assert_eq!(f.resolve(0, 0), Ok((8192, 1)));
    assert!(f.lpi(8200).is_none());
    // The same LPI from another event: the first ITE keeps it, and a collection the
    // failed command created goes.
    assert_eq!(f.cmd(enc::mapti(0, 1, 8192, 5)), Err(CmdError::Exist));
    assert_eq!(f.n(), (1, 1, 1));
    assert_eq!(f.lpi(8192).unwrap().refs, 1);
    // Once discarded, the LPI may be mapped again.
    f.cmds(&[enc::dev_event(CMD_DISCARD, 0, 0), enc::mapti(0, 1, 8192, 0)]);
    assert_eq!(f.resolve(0, 1), Ok((8192, 1)));
}

#[test]
fn one_lpi_one_event_without_the_bitmap() {
    // A short (here empty) LPI map falls back to a scan of the ITEs.
    let mut f = Fix::enabled();
    f.lpi_map.clear();
    f.map_one(0, 4, 0, 0, 8192);
    assert_eq!(f.cmd(enc::mapti(0, 1, 8192, 0)), Err(CmdError::Exist));
    f.cmds(&[enc::dev_event(CMD_DISCARD, 0, 0)]);
    assert_eq!(f.cmd(enc::mapti(0, 1, 8192, 0)), Ok(()));
    // Restored ITEs are not bounded by the ITS's 16 ID bits (KVM checks only the
    // minimum): two events naming LPI 2^16 keep the first.
    let mut f = restore_fix(BASER_VALID | DT);
    f.mem.set(CT, (1 << 63) | 5);
    f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
    f.mem.set(ITT, (1 << 48) | (0x1_0000 << 16) | 5);
    f.mem.set(ITT + 8, (0x1_0000 << 16) | 5);
    assert_eq!(restore(&mut f), Ok(()));
    assert_eq!(f.n(), (1, 1, 1));
    assert_eq!(f.lpi(0x1_0000).unwrap().refs, 1);
}

#[test]
fn movi_discard_clear_inv() {
    let mut f = Fix::enabled();
    f.map_one(2, 4, 0, 5, 8192);
    f.cmds(&[enc::mapc(1, 3, true)]);
    assert_eq!(
        f.cmd(enc::movi(2, 6, 1)),
        Err(CmdError::Its(E_MOVI_UNMAPPED_INTERRUPT))
    );
    assert_eq!(
        f.cmd(enc::movi(2, 5, 9)),
        Err(CmdError::Its(E_MOVI_UNMAPPED_COLLECTION))
    );
    assert_eq!(f.cmd(enc::movi(2, 5, 1)), Ok(()));
    assert_eq!(f.resolve(2, 5), Ok((8192, 3)));
    assert_eq!(f.lpi(8192).unwrap().target, Some(3));
    // MOVI needs the ITE's own collection mapped, too.
    f.cmds(&[enc::mapc(1, 0, false)]);
    assert_eq!(
        f.cmd(enc::movi(2, 5, 0)),
        Err(CmdError::Its(E_MOVI_UNMAPPED_COLLECTION))
    );
    // CLEAR and INV work without a collection; INT and DISCARD do not.
    assert_eq!(f.cmd(enc::dev_event(CMD_CLEAR, 2, 5)), Ok(()));
    assert_eq!(f.cmd(enc::dev_event(CMD_INV, 2, 5)), Ok(()));
    assert_eq!(f.lpis.calls, [Call::Inv(8192)]);
    assert_eq!(
        f.cmd(enc::dev_event(CMD_INT, 2, 5)),
        Err(CmdError::Its(E_INT_UNMAPPED_INTERRUPT))
    );
    assert_eq!(
        f.cmd(enc::dev_event(CMD_DISCARD, 2, 5)),
        Err(CmdError::Its(E_DISCARD_UNMAPPED_INTERRUPT))
    );
    assert_eq!(
        f.cmd(enc::dev_event(CMD_CLEAR, 2, 6)),
        Err(CmdError::Its(E_CLEAR_UNMAPPED_INTERRUPT))
    );
    assert_eq!(
        f.cmd(enc::dev_event(CMD_INV, 2, 6)),
        Err(CmdError::Its(E_INV_UNMAPPED_INTERRUPT))
    );
    // DISCARD clears the ITT entry and drops the reference.
    f.cmds(&[enc::mapti(2, 7, 8193, 0)]);
    f.mem.set(itt(2) + 7 * 8, 0x5555);
    assert_eq!(f.cmd(enc::dev_event(CMD_DISCARD, 2, 7)), Ok(()));
    assert_eq!(f.mem.get(itt(2) + 7 * 8), 0);
    assert!(f.lpi(8193).is_none());
    assert_eq!(f.resolve(2, 7), Err(MsiError::Unmapped));
    // INT with LPIs disabled on the target.
    f.cmds(&[enc::mapti(2, 8, 8194, 0)]);
    f.lpis.enabled[1] = false;
    assert_eq!(f.cmd(enc::dev_event(CMD_INT, 2, 8)), Err(CmdError::Busy));
    assert!(!f.lpi(8194).unwrap().pending);
}

#[test]
fn invall_and_movall() {
    let mut f = Fix::enabled();
    f.cmds(&[enc::mapc(0, 2, true)]);
    assert_eq!(
        f.cmd(enc::invall(1)),
        Err(CmdError::Its(E_INVALL_UNMAPPED_COLLECTION))
    );
    assert_eq!(f.cmd(enc::invall(0)), Ok(()));
    assert_eq!(
        f.cmd(enc::movall(0, 4)),
        Err(CmdError::Its(E_MOVALL_PROCNUM_OOR))
    );
    assert_eq!(
        f.cmd(enc::movall(4, 0)),
        Err(CmdError::Its(E_MOVALL_PROCNUM_OOR))
    );
    assert_eq!(f.cmd(enc::movall(1, 1)), Ok(()));
    assert_eq!(f.cmd(enc::movall(2, 3)), Ok(()));
    assert_eq!(f.lpis.calls, [Call::InvAll(2), Call::MoveAll(2, 3)]);
}

#[test]
fn queue_wraps_around() {
    let mut f = Fix::new();
    // One 4 KiB page: 128 commands.
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ);
    f.write(GITS_BASER, 8, BASER_VALID | DT);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.with(|its, m, l| its.regs_set(GITS_CREADR, 0xfc0, m, l))
        .unwrap();
    f.regs.cwriter = 0xfc0;
    f.write(GITS_CTLR, 4, 1);
    f.cmds(&[
        enc::mapc(0, 0, true),
        enc::mapc(1, 1, true),
        enc::mapc(2, 2, true),
        enc::mapc(3, 3, true),
    ]);
    assert_eq!(f.read(GITS_CREADR, 8), 0x40);
    assert_eq!(f.n().2, 4);
    // A full lap (CWRITER = CREADR is empty, so 127 commands at most).
    let many: Vec<[u64; 4]> = (0..127).map(|i| enc::mapc(i, 0, true)).collect();
    f.cmds(&many);
    assert_eq!(f.n().2, 127);
}

#[test]
fn unreadable_commands_are_skipped() {
    let mut f = Fix::enabled();
    f.mem.ram = vec![0..CMDQ + 0x20, CMDQ + 0x40..0x100_0000];
    f.mem.set(CMDQ, enc::mapc(0, 0, true)[0]);
    f.mem.set(CMDQ + 0x10, enc::mapc(0, 0, true)[2]);
    f.mem.set(CMDQ + 0x40, enc::mapc(2, 0, true)[0]);
    f.mem.set(CMDQ + 0x50, enc::mapc(2, 0, true)[2]);
    f.write(GITS_CWRITER, 8, 0x60);
    assert_eq!(f.read(GITS_CREADR, 8), 0x60);
    assert_eq!(f.colls().len(), 2);
    // A queue wholly outside RAM: every command is skipped, the queue still drains.
    f.write(GITS_CTLR, 4, 0);
    f.write(GITS_CBASER, 8, CBASER_VALID | HOLE | 255);
    f.write(GITS_CTLR, 4, 1);
    f.write(GITS_CWRITER, 8, 0xf_ffe0);
    assert_eq!(f.read(GITS_CREADR, 8), 0xf_ffe0);
    assert_eq!(f.read(GITS_CTLR, 4), 0x8000_0001);
}

impl Fix {
    fn colls(&self) -> &[Collection] {
        &self.colls[..self.regs.nr_collections]
    }
}

#[test]
fn indirect_device_table() {
    let mut f = Fix::new();
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ | 15);
    f.write(GITS_BASER, 8, BASER_VALID | BASER_INDIRECT | DT);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.write(GITS_CTLR, 4, 1);
    // No level-1 entry yet.
    assert_eq!(
        f.cmd(enc::mapd(5, itt(5), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    f.mem.set(DT, (1 << 63) | L2);
    f.mem.set(DT + 8, (1 << 63) | (L2 + 0x1_0000));
    f.mem.set(DT + 7 * 8, (1 << 63) | HOLE);
    assert_eq!(f.cmd(enc::mapd(5, itt(5), 4, true)), Ok(()));
    assert_eq!(f.cmd(enc::mapd(8192 + 3, itt(3), 4, true)), Ok(()));
    // A level-2 page outside RAM, an ID past the device bits.
    assert_eq!(
        f.cmd(enc::mapd(7 * 8192, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    assert_eq!(
        f.cmd(enc::mapd(1 << 16, itt(0), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
    // Unmapping writes the level-2 entry.
    f.mem.set(L2 + 0x1_0000 + 3 * 8, 77);
    assert_eq!(f.cmd(enc::mapd(8192 + 3, 0, 1, false)), Ok(()));
    assert_eq!(f.mem.get(L2 + 0x1_0000 + 3 * 8), 0);
    // A level-1 table of one page holds 8192 entries: all 16-bit IDs fit.
    f.mem.set(DT + 8, 0);
    assert_eq!(
        f.cmd(enc::mapd(8192 + 3, itt(3), 4, true)),
        Err(CmdError::Its(E_MAPD_DEVICE_OOR))
    );
}

#[test]
fn full_tables_fail_commands() {
    let mut f = Fix::enabled();
    f.devices.truncate(2);
    f.ites.truncate(2);
    f.colls.truncate(2);
    f.cmds(&[enc::mapd(0, itt(0), 4, true), enc::mapd(1, itt(1), 4, true)]);
    assert_eq!(f.cmd(enc::mapd(2, itt(2), 4, true)), Err(CmdError::NoMem));
    f.cmds(&[enc::mapc(0, 0, true), enc::mapc(1, 1, true)]);
    assert_eq!(f.cmd(enc::mapc(2, 2, true)), Err(CmdError::NoMem));
    assert_eq!(f.cmd(enc::mapti(0, 0, 8192, 2)), Err(CmdError::NoMem));
    f.cmds(&[enc::mapti(0, 0, 8192, 0), enc::mapti(0, 1, 8193, 1)]);
    assert_eq!(f.cmd(enc::mapti(1, 0, 8194, 0)), Err(CmdError::NoMem));
    assert!(f.lpi(8194).is_none());
    assert_eq!(f.n(), (2, 2, 2));
}

#[test]
fn tables_stay_sorted() {
    let mut f = Fix::enabled();
    let devs = [9u32, 3, 700, 1, 5];
    for &d in &devs {
        f.cmds(&[enc::mapd(d, itt(d), 8, true)]);
    }
    f.cmds(&[
        enc::mapc(40, 0, true),
        enc::mapc(4, 1, true),
        enc::mapc(400, 2, true),
    ]);
    let mut intid = 8192;
    for &d in &devs {
        for ev in [200u32, 7, 100] {
            f.cmds(&[enc::mapti(d, ev, intid, [40, 4, 400][(ev % 3) as usize])]);
            intid += 1;
        }
    }
    let keys: Vec<u64> = f.ites[..f.regs.nr_ites].iter().map(|i| i.key()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert!(f.devices[..5].windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        f.colls().iter().map(|c| c.id).collect::<Vec<_>>(),
        [4, 40, 400]
    );
    // MAPD of a device in the middle drops exactly its ITEs.
    f.cmds(&[enc::mapd(5, 0, 1, false)]);
    assert_eq!(f.n(), (4, 12, 3));
    assert!(f.ites[..12].iter().all(|i| i.devid != 5));
    for &d in &[9u32, 3, 700, 1] {
        assert!(f.resolve(d, 100).is_ok() && f.resolve(d, 7).is_ok() && f.resolve(d, 200).is_ok());
    }
}

#[test]
fn reset_drops_everything() {
    let mut f = Fix::enabled();
    f.map_one(0, 4, 0, 0, 8192);
    f.with(|its, _, l| its.reset(l));
    assert_eq!(f.n(), (0, 0, 0));
    assert!(f.lpis.lpis.is_empty());
    assert_eq!(f.read(GITS_CTLR, 4), 0x8000_0000);
    assert_eq!(f.read(GITS_CBASER, 8), 0);
    // BASERs keep all but Valid.
    assert_eq!(f.read(GITS_BASER, 8), 0x1907_0000_0000_0200 | DT);
    assert_eq!(f.read(GITS_BASER + 8, 8), 0x1c07_0000_0000_0200 | CT);
}

// ---- save and restore ----

/// Two devices, ITEs in two collections (one created by MAPTI and never mapped), and
/// an ITE whose collection MAPC V=0 dropped.
fn populate(f: &mut Fix) {
    f.cmds(&[
        enc::mapd(3, itt(3), 5, true),
        enc::mapd(10, itt(10), 2, true),
        enc::mapc(2, 1, true),
        enc::mapc(0, 3, true),
        enc::mapti(3, 1, 8192, 2),
        enc::mapti(3, 4, 8193, 0),
        enc::mapti(3, 9, 8194, 2),
        enc::mapti(10, 0, 8300, 7),
        enc::mapc(9, 0, true),
        enc::mapti(10, 3, 8301, 9),
        enc::mapc(9, 0, false),
    ]);
}

#[test]
fn save_writes_kvm_encoding() {
    let mut f = Fix::enabled();
    populate(&mut f);
    for i in 0..32 {
        f.mem.set(itt(3) + 8 * i, 0xdead);
        f.mem.set(CT + 8 * i, 0xdead);
    }
    assert_eq!(f.save(), Ok(()));
    // DTEs: device 3 (Next 7, ITT, 5 bits), device 10 (last).
    assert_eq!(
        f.mem.get(DT + 3 * 8),
        (1 << 63) | (7 << 49) | ((itt(3) >> 8) << 5) | 4
    );
    assert_eq!(
        f.mem.get(DT + 10 * 8),
        (1 << 63) | ((itt(10) >> 8) << 5) | 1
    );
    // ITEs: Next, pINTID, ICID; slots without an ITE untouched.
    assert_eq!(f.mem.get(itt(3) + 8), (3 << 48) | (8192 << 16) | 2);
    assert_eq!(f.mem.get(itt(3) + 4 * 8), (5 << 48) | (8193 << 16));
    assert_eq!(f.mem.get(itt(3) + 9 * 8), (8194 << 16) | 2);
    assert_eq!(f.mem.get(itt(3)), 0xdead);
    // Device 10: its event 3 lost its collection, so event 0 is last.
    assert_eq!(f.mem.get(itt(10)), (8300 << 16) | 7);
    assert_eq!(f.mem.get(itt(10) + 3 * 8), 0);
    // CTEs in creation order (2, 0, 7), then a zero entry; the rest untouched.
    assert_eq!(f.mem.get(CT), (1 << 63) | (1 << 16) | 2);
    assert_eq!(f.mem.get(CT + 8), (1 << 63) | (3 << 16));
    assert_eq!(f.mem.get(CT + 16), (1 << 63) | (0xffff_ffff << 16) | 7);
    assert_eq!(f.mem.get(CT + 24), 0);
    assert_eq!(f.mem.get(CT + 32), 0xdead);
}

#[test]
fn save_restore_round_trip_flat() {
    let mut f = Fix::enabled();
    populate(&mut f);
    let before: Vec<Ite> = f.ites[..f.regs.nr_ites].to_vec();
    let lpis_before = f.lpis.lpis.clone();
    assert_eq!(f.save(), Ok(()));
    assert_eq!(f.reset_and_restore(), Ok(()));
    // The ITE without collection is not saved.
    let after: Vec<Ite> = f.ites[..f.regs.nr_ites].to_vec();
    let expect: Vec<Ite> = before
        .iter()
        .copied()
        .filter(|i| i.collection.is_some())
        .collect();
    assert_eq!(after, expect);
    assert_eq!(
        f.devices[..2],
        [
            Device {
                id: 3,
                itt_addr: itt(3),
                eventid_bits: 5
            },
            Device {
                id: 10,
                itt_addr: itt(10),
                eventid_bits: 2
            }
        ]
    );
    // Sorted by ID; the saved bytes below show the creation order survived.
    assert_eq!(
        f.colls()
            .iter()
            .map(|c| (c.id, c.target))
            .collect::<Vec<_>>(),
        [(0, 3), (2, 1), (7, COLLECTION_NOT_MAPPED)]
    );
    for (intid, l) in &lpis_before {
        if *intid != 8301 {
            assert_eq!(
                f.lpi(*intid).map(|l| (l.refs, l.target)),
                Some((l.refs, l.target)),
                "{intid}"
            );
        }
    }
    assert!(f.lpi(8301).is_none());
    // Saving again writes the same bytes.
    let snapshot = f.mem.words.clone();
    assert_eq!(f.save(), Ok(()));
    assert_eq!(f.mem.words, snapshot);
    // Enabled again, it delivers.
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(f.resolve(3, 9), Ok((8194, 1)));
}

#[test]
fn save_restore_round_trip_indirect() {
    let mut f = Fix::new();
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ | 15);
    f.write(GITS_BASER, 8, BASER_VALID | BASER_INDIRECT | DT);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.write(GITS_CTLR, 4, 1);
    f.mem.set(DT, (1 << 63) | L2);
    f.mem.set(DT + 8 * 7, (1 << 63) | (L2 + 0x1_0000));
    f.cmds(&[
        enc::mapd(1, itt(1), 3, true),
        enc::mapd(7 * 8192 + 5, itt(2), 3, true),
        enc::mapd(65535, itt(3), 3, true),
        enc::mapc(0, 2, true),
        enc::mapti(1, 7, 9000, 0),
        enc::mapti(7 * 8192 + 5, 0, 9001, 0),
        enc::mapti(65535, 2, 9002, 0),
    ]);
    assert_eq!(f.save(), Ok(()));
    // The chain crosses level-2 pages: device 1's Next is capped at 2^14 - 1.
    assert_eq!(f.mem.get(L2 + 8) >> 49 & 0x3fff, 0x3fff);
    assert_eq!(
        f.mem.get(L2 + 0x1_0000 + 5 * 8) >> 49 & 0x3fff,
        65535 - (7 * 8192 + 5)
    );
    assert_eq!(f.mem.get(L2 + 0x1_0000 + 8191 * 8) >> 49 & 0x3fff, 0);
    assert_eq!(f.reset_and_restore(), Ok(()));
    assert_eq!(f.n(), (3, 3, 1));
    f.write(GITS_CTLR, 4, 1);
    assert_eq!(f.resolve(1, 7), Ok((9000, 2)));
    assert_eq!(f.resolve(7 * 8192 + 5, 0), Ok((9001, 2)));
    assert_eq!(f.resolve(65535, 2), Ok((9002, 2)));
}

#[test]
fn save_skips_unreachable_devices() {
    // vgic_its_save's case: a level-2 page dropped behind KVM's back.
    let mut f = Fix::new();
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ | 15);
    f.write(GITS_BASER, 8, BASER_VALID | BASER_INDIRECT | DT);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.write(GITS_CTLR, 4, 1);
    f.mem.set(DT, (1 << 63) | L2);
    f.mem.set(DT + 8, (1 << 63) | (L2 + 0x1_0000));
    f.cmds(&[
        enc::mapd(0, itt(0), 14, true),
        enc::mapd(8192, itt(1), 14, true),
    ]);
    f.mem.set(DT + 8, 0);
    f.mem.set(L2 + 0x1_0000, 0xdead);
    assert_eq!(f.save(), Ok(()));
    assert_eq!(f.mem.get(L2), (1 << 63) | ((itt(0) >> 8) << 5) | 13);
    assert_eq!(f.mem.get(L2 + 0x1_0000), 0xdead);
    assert_eq!(f.reset_and_restore(), Ok(()));
    assert_eq!(f.n(), (1, 0, 0));
}

#[test]
fn save_after_collection_table_change() {
    // vgic_its_save's other case: shrinking the collection table drops the collections.
    let mut f = Fix::new();
    f.write(GITS_CBASER, 8, CBASER_VALID | CMDQ | 15);
    f.write(GITS_BASER, 8, BASER_VALID | DT);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT | 1);
    f.write(GITS_CTLR, 4, 1);
    let cmds: Vec<[u64; 4]> = (0..=8192).map(|i| enc::mapc(i, 0, true)).collect();
    f.cmds(&cmds[..1000]);
    assert_eq!(f.n().2, MAX_COLLECTIONS, "capacity bounds the collections");
    f.write(GITS_CTLR, 4, 0);
    f.write(GITS_BASER + 8, 8, BASER_VALID | CT);
    f.mem.set(CT + 8, 0xdead);
    assert_eq!(f.save(), Ok(()));
    assert_eq!((f.mem.get(CT), f.mem.get(CT + 8)), (0, 0xdead));
}

#[test]
fn full_collection_table_has_no_terminator() {
    // One page holds 8192 CTEs; give this ITS room for as many collections, and end
    // RAM with the table so that a terminating entry would fault.
    let mut f = Fix::enabled();
    f.colls.resize(8192, Collection::EMPTY);
    for chunk in (0..8192u16).collect::<Vec<_>>().chunks(2000) {
        let cmds: Vec<[u64; 4]> = chunk
            .iter()
            .map(|&i| enc::mapc(8191 - i, 0, true))
            .collect();
        f.cmds(&cmds);
    }
    assert_eq!(f.n().2, 8192);
    f.mem.ram = vec![0..CT + 0x1_0000];
    assert_eq!(f.save(), Ok(()));
    // Creation order: 8191 first.
    assert_eq!(
        (f.mem.get(CT), f.mem.get(CT + 0xfff8)),
        ((1 << 63) | 8191, 1 << 63)
    );
    // One fewer: the terminator is written.
    f.cmds(&[enc::mapc(0, 0, false)]);
    f.mem.set(CT + 0xfff8, 0xdead);
    assert_eq!(f.save(), Ok(()));
    assert_eq!(f.mem.get(CT + 0xfff8), 0);
}

#[test]
fn save_into_unbacked_memory_faults() {
    let mut f = Fix::enabled();
    f.map_one(0, 4, 0, 0, 8192);
    // The ITT outside RAM (MAPTI checked it when it was in RAM).
    f.mem.ram = vec![0..ITT];
    assert_eq!(f.save(), Err(Errno::Fault));
    // The collection table outside RAM.
    let mut f = Fix::enabled();
    f.cmds(&[enc::mapc(0, 0, true)]);
    f.mem.ram = vec![0..CT];
    assert_eq!(f.save(), Err(Errno::Fault));
    // Tables not valid: nothing to save.
    let mut f = Fix::new();
    assert_eq!(f.save(), Ok(()));
}

/// An ITS with the registers restored but no table contents.
fn restore_fix(baser0: u64) -> Fix {
    let mut f = Fix::new();
    f.with(|its, m, l| {
        its.regs_set(GITS_BASER, baser0, m, l).unwrap();
        its.regs_set(GITS_BASER + 8, BASER_VALID | CT, m, l)
            .unwrap();
    });
    f
}

fn restore(f: &mut Fix) -> Result<(), Errno> {
    f.with(|its, m, l| its.restore_tables(m, l))
}

#[test]
fn restore_hand_encoded_tables() {
    let mut f = restore_fix(BASER_VALID | DT);
    // CTEs: collection 5 on vCPU id 2, collection 1 unmapped, end.
    f.mem.set(CT, (1 << 63) | (2 << 16) | 5);
    f.mem.set(CT + 8, (1 << 63) | (0xffff_ffff << 16) | 1);
    // DTE 4: Next 2, ITT at ITT, 4 bits; DTE 6: last, 1 bit, ITT + 0x1_0000.
    f.mem
        .set(DT + 4 * 8, (1 << 63) | (2 << 49) | ((ITT >> 8) << 5) | 3);
    f.mem
        .set(DT + 6 * 8, (1 << 63) | (((ITT + 0x1_0000) >> 8) << 5));
    // A valid DTE after the last one is not read.
    f.mem.set(DT + 7 * 8, (1 << 63) | 0x1f);
    // ITT of device 4: event 2 → 8200 in 5 (Next 10), event 12 → 8201 in 1 (last).
    f.mem.set(ITT + 2 * 8, (10 << 48) | (8200 << 16) | 5);
    f.mem.set(ITT + 12 * 8, (8201 << 16) | 1);
    // ITT of device 6: event 0 (Next 1), then an invalid entry: the scan runs off the
    // end.
    f.mem.set(ITT + 0x1_0000, (1 << 48) | (8202 << 16) | 5);
    assert_eq!(restore(&mut f), Ok(()));
    assert_eq!(f.n(), (2, 3, 2));
    assert_eq!(
        f.colls()
            .iter()
            .map(|c| (c.id, c.target))
            .collect::<Vec<_>>(),
        [(1, u32::MAX), (5, 2)]
    );
    assert_eq!(f.lpi(8200).unwrap().target, Some(2));
    assert_eq!(f.lpi(8201).unwrap().target, None);
    assert_eq!(f.lpi(8202).unwrap().target, Some(2));
    assert_eq!(
        f.devices[1],
        Device {
            id: 6,
            itt_addr: ITT + 0x1_0000,
            eventid_bits: 1
        }
    );
    // The two ITEs of one LPI: the first wins, the restore goes on.
    let mut f = restore_fix(BASER_VALID | DT);
    f.mem.set(CT, (1 << 63) | 5);
    f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
    f.mem.set(ITT, (1 << 48) | (8200 << 16) | 5);
    f.mem.set(ITT + 8, (1 << 48) | (8200 << 16) | 5);
    f.mem.set(ITT + 16, (8201 << 16) | 5);
    assert_eq!(restore(&mut f), Ok(()));
    assert_eq!(f.n(), (1, 2, 1));
    assert_eq!(f.lpi(8200).unwrap().refs, 1);
}

#[test]
#[allow(clippy::identity_op)] // The encodings spell out every field, zeros included.
fn restore_indirect_hand_encoded() {
    let mut f = restore_fix(BASER_VALID | BASER_INDIRECT | DT);
    f.mem.set(CT, (1 << 63) | (3 << 16));
    // Level 1: entry 0 invalid, entry 2 valid (devices 16384..).
    f.mem.set(DT + 16, (1 << 63) | L2);
    f.mem.set(L2 + 8, (1 << 63) | ((ITT >> 8) << 5));
    f.mem.set(ITT, (8192 << 16) | 0);
    assert_eq!(restore(&mut f), Ok(()));
    assert_eq!(f.devices[0].id, 16385);
    assert_eq!(f.lpi(8192).unwrap().target, Some(3));
}

#[test]
fn restore_rejects_bad_entries() {
    type Case = (&'static str, fn(&mut Fix), Errno);
    let cases: [Case; 10] = [
        (
            "CTE of a missing vCPU",
            |f| f.mem.set(CT, (1 << 63) | (9 << 16)),
            Errno::Inval,
        ),
        (
            "CTE twice",
            |f| {
                f.mem.set(CT, 1 << 63);
                f.mem.set(CT + 8, 1 << 63);
            },
            Errno::Exist,
        ),
        (
            "DTE with 17 bits",
            |f| f.mem.set(DT, (1 << 63) | 16),
            Errno::Inval,
        ),
        (
            "ITE below 8192",
            |f| {
                f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
                f.mem.set(ITT, 100 << 16);
            },
            Errno::Inval,
        ),
        (
            "ITE Next past the ITT",
            |f| {
                f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
                f.mem.set(ITT + 8, (15 << 48) | (8192 << 16));
            },
            Errno::Inval,
        ),
        (
            "ITE of an unknown collection",
            |f| {
                f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
                f.mem.set(ITT, (8192 << 16) | 4);
            },
            Errno::Inval,
        ),
        (
            "ITT outside RAM",
            |f| f.mem.set(DT, (1 << 63) | ((HOLE >> 8) << 5) | 3),
            Errno::Fault,
        ),
        (
            "DTE past the device ID bits",
            |f| {
                f.write(GITS_BASER, 8, BASER_VALID | DT | 15);
                f.mem
                    .set(DT + 65535 * 8, (1 << 63) | (1 << 49) | ((ITT >> 8) << 5));
                f.mem.set(DT + 65536 * 8, (1 << 63) | ((ITT >> 8) << 5));
            },
            Errno::Inval,
        ),
        (
            "LPI creation fails",
            |f| {
                f.mem.set(DT, (1 << 63) | ((ITT >> 8) << 5) | 3);
                f.mem.set(ITT, 8192 << 16);
                f.lpis.fail_map = true;
            },
            Errno::NoMem,
        ),
        (
            "collection table outside RAM",
            |f| f.write(GITS_BASER + 8, 8, BASER_VALID | HOLE),
            Errno::Fault,
        ),
    ];
    for (what, setup, err) in cases {
        let mut f = restore_fix(BASER_VALID | DT);
        f.mem.set(CT + 16, (1 << 63) | 0x40); // collection 0x40 on vCPU 0, after the others
        f.mem.set(CT, (1 << 63) | (1 << 16));
        setup(&mut f);
        assert_eq!(restore(&mut f), Err(err), "{what}");
        assert_eq!(f.n(), (0, 0, 0), "{what}: nothing stays");
        assert!(f.lpis.lpis.is_empty(), "{what}: no reference stays");
    }
}

#[test]
fn restore_device_table_to_its_end() {
    // A DTE pointing Next past the end of the table: 2 pages, device 8191 jumps 0x3fff.
    let mut f = restore_fix(BASER_VALID | DT | 1);
    f.mem.set(
        DT + 8191 * 8,
        (1 << 63) | (0x3fff << 49) | ((ITT >> 8) << 5),
    );
    assert_eq!(restore(&mut f), Ok(()));
    assert_eq!(f.devices[0].id, 8191);
    // A table wholly outside RAM.
    let mut f = restore_fix(BASER_VALID | HOLE);
    assert_eq!(restore(&mut f), Err(Errno::Fault));
    // Invalid tables: nothing to restore.
    let mut f = Fix::new();
    assert_eq!(restore(&mut f), Ok(()));
}

#[test]
fn restore_huge_indirect_table_wraps_ids_as_kvm() {
    // 256 pages of level 1: index 2^19 names device 0 again (KVM's int arithmetic).
    let mut f = restore_fix(BASER_VALID | BASER_INDIRECT | DT | 255);
    let l2 = 0x200_0000;
    f.mem.ram = vec![0..0x400_0000];
    f.mem.set(DT, (1 << 63) | l2);
    f.mem.set(l2, (1 << 63) | (1 << 49) | ((ITT >> 8) << 5));
    f.mem.set(DT + (1 << 19) * 8, (1 << 63) | l2);
    assert_eq!(restore(&mut f), Err(Errno::Exist));
    assert_eq!(f.n(), (0, 0, 0));
}

#[test]
fn hostile_values_do_not_panic() {
    let mut f = Fix::enabled();
    let words = [
        0,
        1,
        0xff,
        0x1f,
        0x8000_0000,
        0xffff_ffff,
        u64::MAX,
        1 << 63,
        0x7fff_ffff_ffff_ffff,
    ];
    for cmd in 0..=0x10u64 {
        for &a in &words {
            for &b in &words {
                let c = [cmd | (a << 32), b, a, b];
                let _ = f.cmd(c);
                let _ = f.cmd([cmd | (b & !0xff), a, b, a]);
            }
        }
    }
    for off in (0..0x2_0000u64).step_by(4).chain([u64::MAX - 3, u64::MAX]) {
        for len in [0u8, 1, 2, 4, 8, 16] {
            f.read(off, len);
            f.with(|its, _, _| {
                let _ = its.regs_get(off);
            });
        }
    }
    for &v in &words {
        for off in [
            GITS_CBASER,
            GITS_BASER,
            GITS_BASER + 8,
            GITS_CWRITER,
            GITS_CREADR,
        ] {
            f.write(off, 8, v);
            f.with(|its, m, l| {
                let _ = its.regs_set(off, v, m, l);
            });
        }
        f.write(GITS_CTLR, 4, v);
    }
    for &v in &words {
        for &w in &words {
            f.mem.set(CT, v);
            f.mem.set(DT, w);
            f.mem.set(ITT, v ^ w);
            let _ = f.save();
            let _ = restore(&mut f);
            f.with(|its, _, l| its.reset(l));
        }
    }
}
