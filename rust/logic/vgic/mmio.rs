// SPDX-License-Identifier: GPL-2.0

//! GICv3 distributor (GICD) and redistributor (GICR) register decoding: what a guest's
//! MMIO access reads or changes (Arm IHI 0069, chapter 12).
//!
//! KVM counterpart: `vgic-mmio-v3.c` and `vgic-mmio.c`. As in KVM, the distributor runs
//! with affinity routing always on and a single security state (GICD_CTLR.ARE_NS and DS
//! read as one), so its banked SGI/PPI registers, ITARGETSR, SGIR, the group modifiers
//! and NSACR read as zero and ignore writes. LPIs are offered when the VM has an ITS
//! (`Dist::lpis`); without one their registers read as zero and ignore writes. An access
//! of a width the register does not allow reads as zero and is ignored, as KVM does.

use super::{
    Model, VcpuMask, AFFINITY_MASK, LPI_BASE, LPI_ID_BITS, NR_PRIVATE, NR_SGIS, PRIORITY_MASK,
};

/// Sizes of the frames: the distributor, and a redistributor (RD_base + SGI_base).
pub(crate) const DIST_SIZE: u64 = 0x1_0000;
pub(crate) const REDIST_SIZE: u64 = 0x2_0000;
pub(crate) const SGI_BASE: u64 = 0x1_0000;

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
/// GICD_TYPER2 (GICv4.1 direct SGIs, which rkvm does not offer: zero).
pub(crate) const GICD_TYPER2: u32 = 0x000c;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_ISACTIVER: u64 = 0x0300;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0c00;
const GICD_IROUTER: u64 = 0x6000;
const GICD_PIDR2: u64 = 0xffe8;

const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_PIDR2: u64 = 0xffe8;
const GICR_PROPBASER: u64 = 0x0070;
const GICR_PENDBASER: u64 = 0x0078;
const GICR_INVLPIR: u64 = 0x00a0;
const GICR_INVALLR: u64 = 0x00b0;
#[cfg_attr(not(test), allow(dead_code))] // Read as zero by the catch-all arm.
const GICR_SYNCR: u64 = 0x00c0;

/// GICD_CTLR: EnableGrp0, EnableGrp1, ARE_NS (RAO/WI), DS (RAO/WI).
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
const CTLR_ARE_NS: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;
/// GICR_IIDR: KVM's product id 0x4b and implementer Arm (0x43b), so a guest sees the
/// same identity as under KVM; GICD_IIDR adds the implementation revision ([`iidr`]).
pub(crate) const GICR_IIDR_VALUE: u32 = (0x4b << 24) | 0x43b;
pub(crate) const IIDR_REV_SHIFT: u32 = 12;
pub(crate) const IIDR_REV_MASK: u32 = 0xf << IIDR_REV_SHIFT;
/// The revision a new vGIC has (KVM's latest): 3, whose GICR_CTLR reads IR and CES as
/// one. Userspace may restore 2.
pub(crate) const IIDR_REV_LATEST: u8 = 3;
/// GICR_CTLR.CES and IR (revision 3 and later).
const GICR_CTLR_CES: u64 = 1 << 1;
const GICR_CTLR_IR: u64 = 1 << 2;

/// GICD_IIDR with implementation revision `rev`.
pub(crate) const fn iidr(rev: u8) -> u32 {
    GICR_IIDR_VALUE | ((rev as u32) << IIDR_REV_SHIFT)
}
/// GICD_TYPER.IDbits: 10 INTID bits (no LPIs), or 16 with LPIs (and TYPER.LPIS).
const TYPER_IDBITS_10: u32 = 9 << 19;
const TYPER_IDBITS_LPI: u32 = (LPI_ID_BITS - 1) << 19;
const TYPER_LPIS: u32 = 1 << 17;
/// GICR_CTLR.EnableLPIs; GICR_TYPER.PLPIS.
const GICR_CTLR_ENABLE_LPIS: u64 = 1 << 0;
const GICR_TYPER_PLPIS: u64 = 1 << 0;
/// GICR_PENDBASER.PTZ: the pending table is zero (write-only: reads hide it).
pub(crate) const PENDBASER_PTZ: u64 = 1 << 62;
/// RES0 bits of GICR_PROPBASER and GICR_PENDBASER, as KVM masks them.
const PROPBASER_RES0: u64 = (0x1f << 59) | (0xf << 52) | (0x3 << 5);
const PENDBASER_RES0: u64 = (1 << 63) | (0x7 << 59) | (0xf << 52) | (0xf << 12) | 0x7f;
/// Shareability [11:10], inner [9:7] and outer [58:56] cacheability of both registers.
const BASER_SHARE_SHIFT: u32 = 10;
const BASER_INNER_SHIFT: u32 = 7;
const BASER_OUTER_SHIFT: u32 = 56;

/// KVM's sanitising of a GICR_PROPBASER / PENDBASER value: outer shareable becomes
/// inner shareable, an inner non-cacheable mapping write-back (read-allocate), an outer
/// cacheability other than "same as inner" or non-cacheable "same as inner"; RES0 bits
/// clear.
const fn sanitise_baser(v: u64, res0: u64) -> u64 {
    let share = match (v >> BASER_SHARE_SHIFT) & 3 {
        2 => 1,
        f => f,
    };
    let inner = match (v >> BASER_INNER_SHIFT) & 7 {
        0 | 1 => 3,
        f => f,
    };
    let outer = match (v >> BASER_OUTER_SHIFT) & 7 {
        f @ (0 | 1) => f,
        _ => 0,
    };
    let fields = (3 << BASER_SHARE_SHIFT) | (7 << BASER_INNER_SHIFT) | (7 << BASER_OUTER_SHIFT);
    let v = (v & !fields)
        | (share << BASER_SHARE_SHIFT)
        | (inner << BASER_INNER_SHIFT)
        | (outer << BASER_OUTER_SHIFT);
    v & !res0
}

pub(crate) const fn sanitise_propbaser(v: u64) -> u64 {
    sanitise_baser(v, PROPBASER_RES0)
}

pub(crate) const fn sanitise_pendbaser(v: u64) -> u64 {
    sanitise_baser(v, PENDBASER_RES0)
}

/// The number of INTIDs GICR_PROPBASER's IDbits covers (LPIs are below it), capped by
/// the 16 bits offered (KVM's `max_lpis_propbaser`): what MAPTI checks.
pub(crate) const fn max_lpis(propbaser: u64) -> u32 {
    let bits = (propbaser & 0x1f) as u32 + 1;
    1 << if bits < LPI_ID_BITS {
        bits
    } else {
        LPI_ID_BITS
    }
}

/// The guest-physical address of the property table (GICR_PROPBASER [51:12]) and of a
/// pending table (GICR_PENDBASER [51:16]).
pub(crate) const fn propbaser_address(v: u64) -> u64 {
    v & 0x000f_ffff_ffff_f000
}
pub(crate) const fn pendbaser_address(v: u64) -> u64 {
    v & 0x000f_ffff_ffff_0000
}

/// `len` bytes of `val` written at byte `offset & 4` of a 64-bit register holding `old`
/// (KVM's `update_64bit_reg`).
const fn update_64(old: u64, offset: u64, len: u8, val: u64) -> u64 {
    match (len, offset & 4) {
        (8, _) => val,
        (_, 0) => (old & !0xffff_ffff) | (val & 0xffff_ffff),
        _ => (old & 0xffff_ffff) | (val << 32),
    }
}

/// `len` bytes of a 64-bit register at byte `offset & 4`.
const fn extract_64(v: u64, offset: u64, len: u8) -> u64 {
    match (len, offset & 4) {
        (8, _) => v,
        (_, 0) => v & 0xffff_ffff,
        _ => v >> 32,
    }
}

/// What a redistributor write asks of the kernel layer because it needs guest memory,
/// which the model cannot read: done after the lock is dropped, then fed back through
/// the `lpi_*` operations (the model has already changed what it could).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LpiWork {
    /// GICR_INVLPIR: read mapped LPI `intid`'s property byte, then `lpi_set_config`
    /// (KVM's `vgic_its_inv_lpi`).
    Invalidate(u32),
    /// GICR_INVALLR: read the property bytes of the LPIs targeting vCPU `cpu`, then
    /// `lpi_load_config(Some(cpu), ..)` (KVM's `vgic_its_invall`).
    InvalidateAll(u16),
    /// EnableLPIs set on vCPU `cpu`: unless `load_pending` is false (PENDBASER.PTZ),
    /// read its pending table and `lpi_load_pending` (KVM's `vgic_enable_lpis`).
    EnableLpis { cpu: u16, load_pending: bool },
    /// EnableLPIs cleared on vCPU `cpu` (its queued LPIs lost their pending state):
    /// invalidate the ITS translation caches (`vgic_its_invalidate_all_caches`).
    DisableLpis(u16),
}
/// PIDR2.ArchRev = 3 (GICv3), with the JEDEC designer bits of Arm.
pub(crate) const PIDR2_GICV3: u32 = 0x3b;
/// GICR_TYPER.Last.
const GICR_TYPER_LAST: u64 = 1 << 4;

/// The per-interrupt bit registers (1 bit per interrupt, 32-bit accesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

impl BitReg {
    fn at(offset: u64) -> Option<(Self, u64)> {
        let (reg, base) = match offset {
            0x0080..=0x00ff => (Self::Group, GICD_IGROUPR),
            0x0100..=0x017f => (Self::SetEnable, GICD_ISENABLER),
            0x0180..=0x01ff => (Self::ClearEnable, GICD_ICENABLER),
            0x0200..=0x027f => (Self::SetPending, GICD_ISPENDR),
            0x0280..=0x02ff => (Self::ClearPending, GICD_ICPENDR),
            0x0300..=0x037f => (Self::SetActive, GICD_ISACTIVER),
            0x0380..=0x03ff => (Self::ClearActive, GICD_ICACTIVER),
            _ => return None,
        };
        Some((reg, offset - base))
    }
}

impl Model<'_> {
    /// First INTID of a bit register word at `rel` bytes into its bank.
    fn bit_read(&mut self, cpu: usize, reg: BitReg, first: u32) -> u32 {
        let mut v = 0;
        for i in 0..32 {
            if let Some(irq) = self.irq(cpu, first + i) {
                let bit = match reg {
                    BitReg::Group => irq.group1,
                    BitReg::SetEnable | BitReg::ClearEnable => irq.enabled,
                    BitReg::SetPending | BitReg::ClearPending => irq.pending(),
                    BitReg::SetActive | BitReg::ClearActive => irq.active,
                };
                v |= u32::from(bit) << i;
            }
        }
        v
    }

    fn bit_write(&mut self, cpu: usize, reg: BitReg, first: u32, val: u32) -> VcpuMask {
        let mut kick = 0;
        for i in 0..32 {
            let set = val & (1 << i) != 0;
            let Some(irq) = self.irq(cpu, first + i) else {
                continue;
            };
            match reg {
                BitReg::Group => irq.group1 = set,
                _ if !set => continue,
                BitReg::SetEnable => irq.enabled = true,
                BitReg::ClearEnable => irq.enabled = false,
                BitReg::SetPending => irq.pending_latch = true,
                BitReg::ClearPending => irq.pending_latch = false,
                BitReg::SetActive => {
                    irq.active = true;
                    irq.deactivate = false;
                }
                BitReg::ClearActive => {
                    irq.active = false;
                    // In a list register, the active state comes back at its sync.
                    irq.deactivate = irq.in_lr;
                }
            }
            kick |= self.queue(cpu, first + i);
        }
        kick
    }

    /// IPRIORITYR bytes `first..first+len`.
    fn priority_read(&mut self, cpu: usize, first: u32, len: u8) -> u64 {
        let mut v = 0;
        for i in 0..u32::from(len) {
            if let Some(irq) = self.irq(cpu, first + i) {
                v |= u64::from(irq.priority) << (8 * i);
            }
        }
        v
    }

    fn priority_write(&mut self, cpu: usize, first: u32, len: u8, val: u64) -> VcpuMask {
        let mut kick = 0;
        for i in 0..u32::from(len) {
            if let Some(irq) = self.irq(cpu, first + i) {
                irq.priority = (val >> (8 * i)) as u8 & PRIORITY_MASK;
                // Flush order may change; the list itself does not.
                kick |= self.queue(cpu, first + i);
            }
        }
        kick
    }

    /// ICFGR word for INTIDs `first..first+16`: 0b10 per edge-triggered interrupt.
    fn config_read(&mut self, cpu: usize, first: u32) -> u32 {
        let mut v = 0;
        for i in 0..16 {
            if let Some(irq) = self.irq(cpu, first + i) {
                if !irq.level {
                    v |= 2 << (2 * i);
                }
            }
        }
        v
    }

    /// SGIs are always edge-triggered; PPIs and SPIs take the new configuration.
    fn config_write(&mut self, cpu: usize, first: u32, val: u32) -> VcpuMask {
        let mut kick = 0;
        for i in 0..16 {
            let intid = first + i;
            if intid < NR_SGIS {
                continue;
            }
            if let Some(irq) = self.irq(cpu, intid) {
                irq.level = val & (2 << (2 * i)) == 0;
                kick |= self.queue(cpu, intid);
            }
        }
        kick
    }

    /// A guest read of `len` bytes at `offset` in the distributor frame, by vCPU `cpu`.
    pub(crate) fn dist_read(&mut self, cpu: usize, offset: u64, len: u8) -> u64 {
        match (offset, len) {
            (GICD_CTLR, 4) => u64::from(
                CTLR_ARE_NS
                    | CTLR_DS
                    | if self.dist.enable_grp0 {
                        CTLR_ENABLE_GRP0
                    } else {
                        0
                    }
                    | if self.dist.enable_grp1 {
                        CTLR_ENABLE_GRP1
                    } else {
                        0
                    },
            ),
            (GICD_TYPER, 4) => {
                let id = if self.dist.lpis {
                    TYPER_IDBITS_LPI | TYPER_LPIS
                } else {
                    TYPER_IDBITS_10
                };
                u64::from(((self.dist.nr_spis + NR_PRIVATE) / 32 - 1) | id)
            }
            (GICD_IIDR, 4) => u64::from(iidr(self.dist.rev)),
            (GICD_PIDR2, 4) => u64::from(PIDR2_GICV3),
            (0x0080..=0x03ff, 4) => match BitReg::at(offset) {
                // Word 0 is the private interrupts': banked in the redistributors.
                Some((reg, rel)) if rel >= 4 => u64::from(self.bit_read(cpu, reg, rel as u32 * 8)),
                _ => 0,
            },
            (GICD_IPRIORITYR..=0x07fb, 1 | 4) if offset - GICD_IPRIORITYR >= 32 => {
                self.priority_read(cpu, (offset - GICD_IPRIORITYR) as u32, len)
            }
            (GICD_ICFGR..=0x0cff, 4) if offset - GICD_ICFGR >= 8 => {
                u64::from(self.config_read(cpu, (offset - GICD_ICFGR) as u32 * 4))
            }
            (GICD_IROUTER..=0x7fdf, 4 | 8) => {
                let intid = ((offset - GICD_IROUTER) / 8) as u32;
                if intid < NR_PRIVATE {
                    return 0;
                }
                let route = self.irq(cpu, intid).map_or(0, |irq| irq.route);
                match (len, offset & 4) {
                    (8, _) => route,
                    (_, 0) => route & 0xffff_ffff,
                    _ => route >> 32,
                }
            }
            _ => 0,
        }
    }

    /// A guest write to the distributor; returns the vCPUs to kick.
    pub(crate) fn dist_write(&mut self, cpu: usize, offset: u64, len: u8, val: u64) -> VcpuMask {
        match (offset, len) {
            (GICD_CTLR, 4) => {
                let val = val as u32;
                self.dist.enable_grp0 = val & CTLR_ENABLE_GRP0 != 0;
                self.dist.enable_grp1 = val & CTLR_ENABLE_GRP1 != 0;
                self.queue_all()
            }
            (0x0080..=0x03ff, 4) => match BitReg::at(offset) {
                Some((reg, rel)) if rel >= 4 => {
                    self.bit_write(cpu, reg, rel as u32 * 8, val as u32)
                }
                _ => 0,
            },
            (GICD_IPRIORITYR..=0x07fb, 1 | 4) if offset - GICD_IPRIORITYR >= 32 => {
                self.priority_write(cpu, (offset - GICD_IPRIORITYR) as u32, len, val)
            }
            (GICD_ICFGR..=0x0cff, 4) if offset - GICD_ICFGR >= 8 => {
                self.config_write(cpu, (offset - GICD_ICFGR) as u32 * 4, val as u32)
            }
            (GICD_IROUTER..=0x7fdf, 4 | 8) => {
                let intid = ((offset - GICD_IROUTER) / 8) as u32;
                let Some(old) = self
                    .irq(cpu, intid)
                    .filter(|_| intid >= NR_PRIVATE)
                    .map(|i| i.route)
                else {
                    return 0;
                };
                let route = match (len, offset & 4) {
                    (8, _) => val,
                    (_, 0) => (old & !0xffff_ffff) | (val & 0xffff_ffff),
                    _ => (old & 0xffff_ffff) | (val << 32),
                };
                self.set_route(intid, route & AFFINITY_MASK)
            }
            _ => 0,
        }
    }

    /// A guest read in vCPU `rd`'s redistributor (both frames), by any vCPU.
    pub(crate) fn redist_read(&mut self, rd: usize, offset: u64, len: u8) -> u64 {
        let (rev, lpis) = (self.dist.rev, self.dist.lpis);
        let Some(c) = self.cpus.get(rd) else { return 0 };
        if offset < SGI_BASE {
            let enable_lpis = if c.lpis_enabled {
                GICR_CTLR_ENABLE_LPIS
            } else {
                0
            };
            return match (offset, len) {
                // RWP never reads as one: a disable completes under the lock.
                (GICR_CTLR, 4) if rev >= 3 => GICR_CTLR_IR | GICR_CTLR_CES | enable_lpis,
                (GICR_CTLR, 4) => enable_lpis,
                (GICR_IIDR, 4) => u64::from(GICR_IIDR_VALUE),
                (GICR_TYPER, 8) | (GICR_TYPER, 4) | (0x000c, 4) => {
                    let mpidr = c.mpidr;
                    let aff = ((mpidr >> 8) & 0xff00_0000) | (mpidr & 0xff_ffff);
                    let typer = (aff << 32)
                        | ((u64::from(c.id) & 0xffff) << 8)
                        | if c.last { GICR_TYPER_LAST } else { 0 }
                        | if lpis { GICR_TYPER_PLPIS } else { 0 };
                    extract_64(typer, offset, len)
                }
                (GICR_PIDR2, 4) => u64::from(PIDR2_GICV3),
                (GICR_PROPBASER | 0x0074, 4) | (GICR_PROPBASER, 8) if lpis => {
                    extract_64(self.dist.propbaser, offset, len)
                }
                (GICR_PENDBASER | 0x007c, 4) | (GICR_PENDBASER, 8) if lpis => {
                    extract_64(c.pendbaser & !PENDBASER_PTZ, offset, len)
                }
                // STATUSR, WAKER, INVLPIR, INVALLR, SYNCR (never busy: invalidations
                // complete before the write returns), and without an ITS the LPI
                // registers: RAZ/WI.
                _ => 0,
            };
        }
        let offset = offset - SGI_BASE;
        match (offset, len) {
            (
                0x0080..=0x0083
                | 0x0100..=0x0103
                | 0x0180..=0x0183
                | 0x0200..=0x0203
                | 0x0280..=0x0283
                | 0x0300..=0x0303
                | 0x0380..=0x0383,
                4,
            ) => match BitReg::at(offset) {
                Some((reg, 0)) => u64::from(self.bit_read(rd, reg, 0)),
                _ => 0,
            },
            (GICD_IPRIORITYR..=0x041f, 1 | 4) => {
                self.priority_read(rd, (offset - GICD_IPRIORITYR) as u32, len)
            }
            (0x0c00 | 0x0c04, 4) => {
                u64::from(self.config_read(rd, (offset - GICD_ICFGR) as u32 * 4))
            }
            _ => 0,
        }
    }

    /// A guest write in vCPU `rd`'s redistributor; returns the vCPUs to kick and the
    /// LPI work the kernel layer must do with guest memory, if any.
    pub(crate) fn redist_write(
        &mut self,
        rd: usize,
        offset: u64,
        len: u8,
        val: u64,
    ) -> (VcpuMask, Option<LpiWork>) {
        if rd >= self.cpus.len() {
            return (0, None);
        }
        if offset < SGI_BASE {
            return if self.dist.lpis {
                self.redist_lpi_write(rd, offset, len, val)
            } else {
                (0, None)
            };
        }
        let offset = offset - SGI_BASE;
        let kick = match (offset, len) {
            (0x0080 | 0x0100 | 0x0180 | 0x0200 | 0x0280 | 0x0300 | 0x0380, 4) => {
                match BitReg::at(offset) {
                    Some((reg, 0)) => self.bit_write(rd, reg, 0, val as u32),
                    _ => 0,
                }
            }
            (GICD_IPRIORITYR..=0x041f, 1 | 4) if offset % u64::from(len) == 0 => {
                self.priority_write(rd, (offset - GICD_IPRIORITYR) as u32, len, val)
            }
            (0x0c00 | 0x0c04, 4) => {
                self.config_write(rd, (offset - GICD_ICFGR) as u32 * 4, val as u32)
            }
            _ => 0,
        };
        (kick, None)
    }

    /// The RD_base LPI registers of a VM with an ITS (KVM's `vgic-mmio-v3.c`).
    fn redist_lpi_write(
        &mut self,
        rd: usize,
        offset: u64,
        len: u8,
        val: u64,
    ) -> (VcpuMask, Option<LpiWork>) {
        let enabled = self.cpus[rd].lpis_enabled;
        let cpu = rd as u16;
        match (offset, len) {
            (GICR_CTLR, 4) => match (enabled, val & GICR_CTLR_ENABLE_LPIS != 0) {
                (false, true) => {
                    let load_pending = self.cpus[rd].pendbaser & PENDBASER_PTZ == 0;
                    (
                        self.lpis_enable(rd),
                        Some(LpiWork::EnableLpis { cpu, load_pending }),
                    )
                }
                (true, false) => (self.lpis_disable(rd), Some(LpiWork::DisableLpis(cpu))),
                _ => (0, None),
            },
            // Storing a base with LPIs enabled is UNPREDICTABLE: ignored, as KVM. The
            // property table is the VM's, written through any redistributor.
            (GICR_PROPBASER | 0x0074, 4) | (GICR_PROPBASER, 8) if !enabled => {
                let v = update_64(self.dist.propbaser, offset, len, val);
                self.dist.propbaser = sanitise_propbaser(v);
                (0, None)
            }
            (GICR_PENDBASER | 0x007c, 4) | (GICR_PENDBASER, 8) if !enabled => {
                let c = &mut self.cpus[rd];
                c.pendbaser = sanitise_pendbaser(update_64(c.pendbaser, offset, len, val));
                (0, None)
            }
            // The upper halves (vPE fields, no GICv4) and writes while LPIs are disabled
            // are dropped, as KVM; so is an INTID that is no mapped LPI.
            (GICR_INVLPIR, 4 | 8) if enabled => {
                let intid = val as u32;
                let mapped = intid >= LPI_BASE && self.lpi_state(intid).is_some();
                (0, mapped.then_some(LpiWork::Invalidate(intid)))
            }
            (GICR_INVALLR, 4 | 8) if enabled => (0, Some(LpiWork::InvalidateAll(cpu))),
            _ => (0, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::super::LPI_PROP_ENABLE;
    use super::*;

    #[test]
    fn distributor_id_registers() {
        let mut f = Fixture::new();
        let mut m = f.model();
        // 64 SPIs + 32 private = 96 lines: ITLinesNumber 2.
        assert_eq!(m.dist_read(0, GICD_TYPER, 4), (9 << 19) | 2);
        assert_eq!(m.dist_read(0, GICD_IIDR, 4), 0x4b00_343b);
        assert_eq!(m.dist_read(0, GICD_PIDR2, 4) & 0xf0, 0x30);
        assert_eq!(m.dist_read(0, GICD_CTLR, 4), 0x53);
        m.dist_write(0, GICD_CTLR, 4, 0);
        assert_eq!(m.dist_read(0, GICD_CTLR, 4), 0x50);
        // Wrong widths read as zero.
        assert_eq!(m.dist_read(0, GICD_TYPER, 2), 0);
        assert_eq!(m.dist_read(0, GICD_CTLR, 8), 0);
    }

    #[test]
    fn enable_pending_active_through_the_distributor() {
        let mut f = Fixture::new();
        let mut m = f.model();
        // ISENABLER1 covers SPIs 32-63.
        assert_eq!(m.dist_write(0, GICD_ISENABLER + 4, 4, 1 << 8), 0);
        assert_eq!(m.dist_read(0, GICD_ICENABLER + 4, 4), 1 << 8);
        assert_eq!(m.dist_write(0, GICD_ISPENDR + 4, 4, 1 << 8), 1);
        assert_eq!(m.dist_read(0, GICD_ISPENDR + 4, 4), 1 << 8);
        assert_eq!(m.cpus[0].ap_list(), &[40]);
        m.dist_write(0, GICD_ICPENDR + 4, 4, 1 << 8);
        assert_eq!(m.dist_read(0, GICD_ICPENDR + 4, 4), 0);
        assert!(m.cpus[0].ap_list().is_empty());
        m.dist_write(0, GICD_ISACTIVER + 4, 4, 1);
        assert_eq!(m.dist_read(0, GICD_ICACTIVER + 4, 4), 1);
        m.dist_write(0, GICD_ICENABLER + 4, 4, 1 << 8);
        assert_eq!(m.dist_read(0, GICD_ISENABLER + 4, 4), 0);
        // Word 0 (private) is RAZ/WI at the distributor; beyond nr_irqs too.
        m.dist_write(0, GICD_ISENABLER, 4, u64::MAX);
        assert_eq!(m.dist_read(0, GICD_ISENABLER, 4), 0);
        assert_eq!(m.dist_read(0, GICD_ISENABLER + 12, 4), 0);
    }

    #[test]
    fn priority_config_group_routing() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.dist_write(0, GICD_IPRIORITYR + 40, 4, 0x1122_33ff);
        assert_eq!(m.dist_read(0, GICD_IPRIORITYR + 40, 4), 0x1020_30f8);
        assert_eq!(m.dist_read(0, GICD_IPRIORITYR + 41, 1), 0x30);
        m.dist_write(0, GICD_IPRIORITYR + 43, 1, 0x80);
        assert_eq!(m.dist_read(0, GICD_IPRIORITYR + 40, 4), 0x8020_30f8);
        // Private priorities are the redistributor's.
        m.dist_write(0, GICD_IPRIORITYR, 4, u64::MAX);
        assert_eq!(m.dist_read(0, GICD_IPRIORITYR, 4), 0);
        // ICFGR2 covers 32-47: all edge at reset; make 33 level.
        assert_eq!(m.dist_read(0, GICD_ICFGR + 8, 4), 0xaaaa_aaaa);
        m.dist_write(0, GICD_ICFGR + 8, 4, 0xaaaa_aaa2);
        assert!(m.irq(0, 33).unwrap().level);
        m.dist_write(0, GICD_IGROUPR + 4, 4, 0xffff_fffe);
        assert!(!m.irq(0, 32).unwrap().group1);
        assert_eq!(m.dist_read(0, GICD_IGROUPR + 4, 4), 0xffff_fffe);
        // IROUTER for SPI 40, as 64 bits and as halves; IRM is not kept.
        m.dist_write(0, GICD_IROUTER + 40 * 8, 8, 0x8000_0001);
        assert_eq!(m.dist_read(0, GICD_IROUTER + 40 * 8, 8), 1);
        assert_eq!(m.irq(0, 40).unwrap().target, 1);
        m.dist_write(0, GICD_IROUTER + 40 * 8 + 4, 4, 0x12);
        assert_eq!(m.dist_read(0, GICD_IROUTER + 40 * 8 + 4, 4), 0x12);
        assert_eq!(m.irq(0, 40).unwrap().target, super::super::NONE);
    }

    #[test]
    fn redistributor_frames() {
        let mut f = Fixture::new();
        f.cpus[1].last = true;
        let mut m = f.model();
        assert_eq!(m.redist_read(0, GICR_TYPER, 8), 0);
        assert_eq!(
            m.redist_read(1, GICR_TYPER, 8),
            (1 << 32) | (1 << 8) | (1 << 4)
        );
        assert_eq!(m.redist_read(1, GICR_CTLR, 4), 0b110);
        assert_eq!(m.redist_read(1, 0xc, 4), 1);
        assert_eq!(m.redist_read(1, GICR_PIDR2, 4), 0x3b);
        assert_eq!(m.redist_read(0, GICR_IIDR, 4), 0x4b00_043b);
        assert_eq!(m.redist_read(0, 0x14, 4), 0); // WAKER: ChildrenAsleep clear
        assert_eq!(m.redist_read(2, GICR_PIDR2, 4), 0); // no such vCPU
                                                        // SGI frame: SGIs enabled at reset, PPI 27 enabled by the guest.
        assert_eq!(m.redist_read(1, SGI_BASE + 0x100, 4), 0xffff);
        m.redist_write(1, SGI_BASE + 0x100, 4, 1 << 27);
        assert_eq!(m.redist_read(1, SGI_BASE + 0x180, 4), 0x0800_ffff);
        assert_eq!(m.redist_read(0, SGI_BASE + 0x100, 4), 0xffff);
        m.redist_write(1, SGI_BASE + 0x41b, 1, 0xa0);
        assert_eq!(m.redist_read(1, SGI_BASE + 0x418, 4), 0xa000_0000);
        // ICFGR0 (SGIs) is read-only edge; ICFGR1 (PPIs) level at reset.
        m.redist_write(1, SGI_BASE + 0xc00, 4, 0);
        assert_eq!(m.redist_read(1, SGI_BASE + 0xc00, 4), 0xaaaa_aaaa);
        assert_eq!(m.redist_read(1, SGI_BASE + 0xc04, 4), 0);
        // ISPENDR0 of vCPU 1 makes SGI 2 pending there.
        assert_eq!(m.redist_write(1, SGI_BASE + 0x200, 4, 1 << 2), (2, None));
        assert_eq!(m.redist_read(1, SGI_BASE + 0x200, 4), 1 << 2);
    }

    #[test]
    fn lpi_identification() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        // 16 INTID bits and LPIS with an ITS; GICR_TYPER.PLPIS (no DirectLPI, as KVM).
        assert_eq!(m.dist_read(0, GICD_TYPER, 4), (15 << 19) | (1 << 17) | 2);
        assert_eq!(m.redist_read(1, GICR_TYPER, 8), (1 << 32) | (1 << 8) | 1);
        assert_eq!(m.redist_read(1, GICR_TYPER, 4), (1 << 8) | 1);
        assert_eq!(max_lpis(0), 2);
        assert_eq!(max_lpis(13), 1 << 14);
        assert_eq!(max_lpis(0x1f), 1 << 16);
    }

    #[test]
    fn propbaser_pendbaser_rules() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        // Sanitised: outer shareable (2) becomes inner (1), inner nC (1) RaWb (3), outer
        // WaWb (5) "same as inner" (0); RES0 bits dropped; IDbits kept.
        let v = (5 << 56) | (0x1f << 59) | 0x8_0000_0000 | (2 << 10) | (1 << 7) | (3 << 5) | 15;
        m.redist_write(0, GICR_PROPBASER, 8, v);
        assert_eq!(m.dist.propbaser, 0x8_0000_0000 | (1 << 10) | (3 << 7) | 15);
        // VM-wide: read through any redistributor, written in halves too.
        assert_eq!(m.redist_read(1, GICR_PROPBASER, 8), m.dist.propbaser);
        m.redist_write(1, GICR_PROPBASER + 4, 4, 0x9);
        assert_eq!(m.redist_read(0, GICR_PROPBASER + 4, 4), 0x9);
        assert_eq!(
            m.redist_read(0, GICR_PROPBASER, 4),
            (1 << 10) | (3 << 7) | 15
        );
        // PENDBASER: per vCPU; PTZ stored but read as zero; [15:12] and [6:0] RES0.
        m.redist_write(
            1,
            GICR_PENDBASER,
            8,
            PENDBASER_PTZ | 0x4_0001_f07f | (3 << 7),
        );
        assert_eq!(
            m.cpus[1].pendbaser,
            PENDBASER_PTZ | 0x4_0001_0000 | (3 << 7)
        );
        assert_eq!(
            m.redist_read(1, GICR_PENDBASER, 8),
            0x4_0001_0000 | (3 << 7)
        );
        assert_eq!(m.redist_read(0, GICR_PENDBASER, 8), 0);
        // EnableLPIs on vCPU 1: its PENDBASER is frozen, and PROPBASER written through
        // its redistributor too (not through vCPU 0's).
        let work = m.redist_write(1, GICR_CTLR, 4, 1).1;
        assert_eq!(
            work,
            Some(LpiWork::EnableLpis {
                cpu: 1,
                load_pending: false
            })
        );
        assert_eq!(m.redist_read(1, GICR_CTLR, 4), 0b111);
        m.redist_write(1, GICR_PENDBASER, 8, 0);
        m.redist_write(1, GICR_PROPBASER, 8, 0);
        assert_eq!(
            m.redist_read(1, GICR_PENDBASER, 8),
            0x4_0001_0000 | (3 << 7)
        );
        assert_eq!(m.redist_read(1, GICR_PROPBASER + 4, 4), 0x9);
        m.redist_write(0, GICR_PROPBASER, 8, 0);
        assert_eq!(m.dist.propbaser & 0xfff, 0x180); // sanitised zero: inner RaWb
                                                     // Setting it again does nothing; the other vCPU's pending table is loaded.
        assert_eq!(m.redist_write(1, GICR_CTLR, 4, 1), (0, None));
        let work = m.redist_write(0, GICR_CTLR, 4, 1).1;
        assert_eq!(
            work,
            Some(LpiWork::EnableLpis {
                cpu: 0,
                load_pending: true
            })
        );
    }

    #[test]
    fn enable_lpis_delivers_and_disable_drops() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.lpi_map(LPI_BASE, 0, 0x20 | LPI_PROP_ENABLE, true)
            .unwrap();
        m.lpi_map(LPI_BASE + 1, 0, 0x20, true).unwrap(); // disabled by its property byte
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.redist_write(0, GICR_CTLR, 4, 1).0, 1);
        assert_eq!(m.cpus[0].lpis_queued(), 1);
        // Cleared (CES: supported, as KVM): queued LPIs lose their pending state, the
        // one not queued keeps it.
        assert_eq!(
            m.redist_write(0, GICR_CTLR, 4, 0),
            (0, Some(LpiWork::DisableLpis(0)))
        );
        assert_eq!(m.redist_read(0, GICR_CTLR, 4), 0b110);
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.lpi_state(LPI_BASE), Some((false, 0)));
        assert_eq!(m.lpi_state(LPI_BASE + 1), Some((true, 0)));
        assert_eq!(m.redist_write(0, GICR_CTLR, 4, 0), (0, None));
    }

    #[test]
    fn invalidation_registers() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.lpi_map(LPI_BASE + 3, 0, 0, false).unwrap();
        // Dropped while LPIs are disabled.
        assert_eq!(
            m.redist_write(0, GICR_INVLPIR, 8, u64::from(LPI_BASE + 3)),
            (0, None)
        );
        assert_eq!(m.redist_write(0, GICR_INVALLR, 8, 0), (0, None));
        m.redist_write(0, GICR_CTLR, 4, 1);
        assert_eq!(
            m.redist_write(0, GICR_INVLPIR, 8, u64::from(LPI_BASE + 3))
                .1,
            Some(LpiWork::Invalidate(8195))
        );
        assert_eq!(
            m.redist_write(0, GICR_INVLPIR, 4, u64::from(LPI_BASE + 3))
                .1,
            Some(LpiWork::Invalidate(8195))
        );
        // The upper half (vPE), an unmapped LPI or no LPI at all: nothing.
        assert_eq!(m.redist_write(0, GICR_INVLPIR + 4, 4, 0).1, None);
        assert_eq!(
            m.redist_write(0, GICR_INVLPIR, 8, u64::from(LPI_BASE + 4))
                .1,
            None
        );
        assert_eq!(m.redist_write(0, GICR_INVLPIR, 8, 40).1, None);
        assert_eq!(
            m.redist_write(0, GICR_INVALLR, 4, 0).1,
            Some(LpiWork::InvalidateAll(0))
        );
        assert_eq!(m.redist_write(0, GICR_INVALLR + 4, 4, 0).1, None);
        // Write-only registers read as zero; SYNCR is never busy.
        assert_eq!(m.redist_read(0, GICR_INVLPIR, 8), 0);
        assert_eq!(m.redist_read(0, GICR_SYNCR, 4), 0);
    }

    #[test]
    fn lpi_registers_without_an_its() {
        let mut f = Fixture::new();
        let mut m = f.model();
        for (off, len) in [
            (GICR_CTLR, 4),
            (GICR_PROPBASER, 8),
            (GICR_PENDBASER, 8),
            (GICR_INVLPIR, 8),
            (GICR_INVALLR, 8),
        ] {
            assert_eq!(m.redist_write(0, off, len, u64::MAX), (0, None));
        }
        assert_eq!(m.redist_read(0, GICR_CTLR, 4), 0b110);
        assert_eq!(m.redist_read(0, GICR_PROPBASER, 8), 0);
        assert_eq!(m.redist_read(0, GICR_PENDBASER, 8), 0);
        assert_eq!(m.redist_read(0, GICR_SYNCR, 4), 0);
        assert!(!m.cpus[0].lpis_enabled);
        assert_eq!(m.redist_read(0, GICR_TYPER, 8) & 1, 0);
    }
}
