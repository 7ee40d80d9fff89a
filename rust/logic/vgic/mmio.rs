// SPDX-License-Identifier: GPL-2.0

//! GICv3 distributor (GICD) and redistributor (GICR) register decoding: what a guest's
//! MMIO access reads or changes (Arm IHI 0069, chapter 12).
//!
//! KVM counterpart: `vgic-mmio-v3.c` and `vgic-mmio.c`. As in KVM, the distributor runs
//! with affinity routing always on and a single security state (GICD_CTLR.ARE_NS and DS
//! read as one), so its banked SGI/PPI registers, ITARGETSR, SGIR, the group modifiers
//! and NSACR read as zero and ignore writes; LPIs are not offered. An access of a width
//! the register does not allow reads as zero and is ignored, as KVM does.

use super::{Model, VcpuMask, AFFINITY_MASK, NR_PRIVATE, NR_SGIS, PRIORITY_MASK};

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
/// GICD_TYPER.IDbits: 10 INTID bits (no LPIs).
const TYPER_IDBITS_10: u32 = 9 << 19;
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
            let Some(irq) = self.irq(cpu, first + i) else { continue };
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
                    | if self.dist.enable_grp0 { CTLR_ENABLE_GRP0 } else { 0 }
                    | if self.dist.enable_grp1 { CTLR_ENABLE_GRP1 } else { 0 },
            ),
            (GICD_TYPER, 4) => {
                u64::from(((self.dist.nr_spis + NR_PRIVATE) / 32 - 1) | TYPER_IDBITS_10)
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
                Some((reg, rel)) if rel >= 4 => self.bit_write(cpu, reg, rel as u32 * 8, val as u32),
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
                let Some(old) = self.irq(cpu, intid).filter(|_| intid >= NR_PRIVATE).map(|i| i.route)
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
        let rev = self.dist.rev;
        let Some(c) = self.cpus.get(rd) else { return 0 };
        if offset < SGI_BASE {
            return match (offset, len) {
                // No LPIs, so EnableLPIs stays clear.
                (GICR_CTLR, 4) if rev >= 3 => GICR_CTLR_IR | GICR_CTLR_CES,
                (GICR_CTLR, 4) => 0,
                (GICR_IIDR, 4) => u64::from(GICR_IIDR_VALUE),
                (GICR_TYPER, 8) | (GICR_TYPER, 4) | (0x000c, 4) => {
                    let mpidr = c.mpidr;
                    let aff = ((mpidr >> 8) & 0xff_0000_00) | (mpidr & 0xff_ffff);
                    let typer = (aff << 32)
                        | ((u64::from(c.id) & 0xffff) << 8)
                        | if c.last { GICR_TYPER_LAST } else { 0 };
                    match (len, offset) {
                        (8, _) => typer,
                        (_, GICR_TYPER) => typer & 0xffff_ffff,
                        _ => typer >> 32,
                    }
                }
                (GICR_PIDR2, 4) => u64::from(PIDR2_GICV3),
                // STATUSR, WAKER, PROPBASER, PENDBASER, ...: RAZ/WI as in KVM.
                _ => 0,
            };
        }
        let offset = offset - SGI_BASE;
        match (offset, len) {
            (0x0080..=0x0083 | 0x0100..=0x0103 | 0x0180..=0x0183 | 0x0200..=0x0203
            | 0x0280..=0x0283 | 0x0300..=0x0303 | 0x0380..=0x0383, 4) => match BitReg::at(offset) {
                Some((reg, 0)) => u64::from(self.bit_read(rd, reg, 0)),
                _ => 0,
            },
            (GICD_IPRIORITYR..=0x041f, 1 | 4) => {
                self.priority_read(rd, (offset - GICD_IPRIORITYR) as u32, len)
            }
            (0x0c00 | 0x0c04, 4) => u64::from(self.config_read(rd, (offset - GICD_ICFGR) as u32 * 4)),
            _ => 0,
        }
    }

    /// A guest write in vCPU `rd`'s redistributor; returns the vCPUs to kick.
    pub(crate) fn redist_write(&mut self, rd: usize, offset: u64, len: u8, val: u64) -> VcpuMask {
        if rd >= self.cpus.len() || offset < SGI_BASE {
            return 0;
        }
        let offset = offset - SGI_BASE;
        match (offset, len) {
            (0x0080 | 0x0100 | 0x0180 | 0x0200 | 0x0280 | 0x0300 | 0x0380, 4) => {
                match BitReg::at(offset) {
                    Some((reg, 0)) => self.bit_write(rd, reg, 0, val as u32),
                    _ => 0,
                }
            }
            (GICD_IPRIORITYR..=0x041f, 1 | 4) if offset % u64::from(len) == 0 => {
                self.priority_write(rd, (offset - GICD_IPRIORITYR) as u32, len, val)
            }
            (0x0c00 | 0x0c04, 4) => self.config_write(rd, (offset - GICD_ICFGR) as u32 * 4, val as u32),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
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
        assert_eq!(m.redist_read(1, GICR_TYPER, 8), (1 << 32) | (1 << 8) | (1 << 4));
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
        assert_eq!(m.redist_write(1, SGI_BASE + 0x200, 4, 1 << 2), 2);
        assert_eq!(m.redist_read(1, SGI_BASE + 0x200, 4), 1 << 2);
    }
}
