// SPDX-License-Identifier: GPL-2.0

//! Userspace access to the vGIC's register state: the device attribute groups
//! `DIST_REGS`, `REDIST_REGS`, `CPU_SYSREGS` and `LEVEL_INFO`, with which a VMM saves and
//! restores (migrates) the GIC.
//!
//! KVM counterpart: `vgic_v3_parse_attr` and `vgic_v3_attr_regs_access`
//! (`vgic-kvm-device.c`), the register tables and their `uaccess_*` handlers
//! (`vgic-mmio-v3.c`, `vgic-mmio.c`), `vgic_v3_has_attr_regs` and `vgic-sys-reg-v3.c`.
//!
//! What differs from a guest access: accesses are always 32 bits (the sysregs 64); an
//! offset that names no register reads as zero and ignores writes, yet `HAS` answers
//! `ENXIO` for it (or for an interrupt beyond `NR_IRQS`); `ISPENDR` reads and writes the
//! pending latch alone (the line level has its own group, so a level-sensitive
//! interrupt's state survives a restore in any order), and a write sets or clears each
//! latch as its bit says, while `ICPENDR` is RAZ/WI; `GICD_IIDR` takes a revision (2 or
//! 3) and `GICD_TYPER2` only its current value; `GICR_TYPER` ignores writes.

use super::{
    attr::Errno,
    lr::Vtr,
    mmio::{LpiWork, GICD_TYPER2, IIDR_REV_MASK, IIDR_REV_SHIFT, SGI_BASE},
    Model, VcpuMask, NR_SGIS,
};

/// The register-state groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Dist,
    Redist,
    CpuSysregs,
    LevelInfo,
}

/// A register-state attribute: the vCPU (by MPIDR affinity, unused for `Dist`, which
/// means vCPU 0) and the register offset, sysreg encoding or `LEVEL_INFO` word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegAttr {
    pub(crate) group: Group,
    /// MPIDR_EL1 affinity (Aff3 in [39:32]) of the vCPU the attribute names.
    pub(crate) mpidr: u64,
    /// `KVM_DEV_ARM_VGIC_OFFSET_MASK` (bits [31:0]) of the attribute.
    pub(crate) offset: u32,
}

/// `LEVEL_INFO`'s attribute: the kind of information [31:10] (0: line levels) and the
/// first INTID [9:0].
const LEVEL_INFO_SHIFT: u32 = 10;
const LEVEL_INFO_INTID_MASK: u32 = 0x3ff;

impl RegAttr {
    /// Decodes `attr` of `group`. The vCPU field ([63:32]) holds Aff3.Aff2.Aff1.Aff0, a
    /// byte each (KVM's `VGIC_TO_MPIDR`).
    pub(crate) const fn decode(group: Group, attr: u64) -> Self {
        let v = attr >> 32;
        let mpidr = (v & 0xff_ffff) | ((v >> 24) << 32);
        Self {
            group,
            mpidr,
            offset: attr as u32,
        }
    }

    /// `LEVEL_INFO`: the line-level word asked for, or `None` for another kind.
    pub(crate) const fn line_level_intid(&self) -> Option<u32> {
        if self.offset >> LEVEL_INFO_SHIFT == 0 {
            Some(self.offset & LEVEL_INFO_INTID_MASK)
        } else {
            None
        }
    }

    /// Whether the access may happen before `CTRL_INIT` (the distributor's ID registers
    /// that size the vGIC, as KVM's `reg_allowed_pre_init`).
    pub(crate) const fn allowed_before_init(&self) -> bool {
        matches!(self.group, Group::Dist) && matches!(self.offset, GICD_IIDR | GICD_TYPER2)
    }

    /// Whether the value crosses the ABI as 64 bits (the sysregs) rather than 32.
    pub(crate) const fn is_64bit(&self) -> bool {
        matches!(self.group, Group::CpuSysregs)
    }
}

const GICD_IIDR: u32 = 0x0008;

/// A register block of a frame: first offset, length in bytes, and for per-interrupt
/// registers the bits per interrupt (0 otherwise), as KVM's register tables.
struct Block(u32, u32, u32);

/// The distributor's registers (`vgic_v3_dist_registers`): what `HAS` reports.
const DIST_BLOCKS: &[Block] = &[
    Block(0x0000, 16, 0),    // CTLR, TYPER, IIDR, TYPER2
    Block(0x0010, 4, 0),     // STATUSR
    Block(0x0080, 128, 1),   // IGROUPR
    Block(0x0100, 128, 1),   // ISENABLER
    Block(0x0180, 128, 1),   // ICENABLER
    Block(0x0200, 128, 1),   // ISPENDR
    Block(0x0280, 128, 1),   // ICPENDR
    Block(0x0300, 128, 1),   // ISACTIVER
    Block(0x0380, 128, 1),   // ICACTIVER
    Block(0x0400, 1024, 8),  // IPRIORITYR
    Block(0x0800, 1024, 8),  // ITARGETSR
    Block(0x0c00, 256, 2),   // ICFGR
    Block(0x0d00, 128, 1),   // IGRPMODR
    Block(0x6000, 8192, 64), // IROUTER
    Block(0xffd0, 48, 0),    // ID registers
];

/// A redistributor's registers, both frames (`vgic_v3_rd_registers`).
const REDIST_BLOCKS: &[Block] = &[
    Block(0x0000, 4, 0),    // CTLR
    Block(0x0004, 4, 0),    // IIDR
    Block(0x0008, 8, 0),    // TYPER
    Block(0x0010, 4, 0),    // STATUSR
    Block(0x0014, 4, 0),    // WAKER
    Block(0x0070, 8, 0),    // PROPBASER
    Block(0x0078, 8, 0),    // PENDBASER
    Block(0x00a0, 8, 0),    // INVLPIR
    Block(0x00b0, 8, 0),    // INVALLR
    Block(0x00c0, 4, 0),    // SYNCR
    Block(0xffd0, 48, 0),   // ID registers
    Block(0x1_0080, 4, 0),  // IGROUPR0
    Block(0x1_0100, 4, 0),  // ISENABLER0
    Block(0x1_0180, 4, 0),  // ICENABLER0
    Block(0x1_0200, 4, 0),  // ISPENDR0
    Block(0x1_0280, 4, 0),  // ICPENDR0
    Block(0x1_0300, 4, 0),  // ISACTIVER0
    Block(0x1_0380, 4, 0),  // ICACTIVER0
    Block(0x1_0400, 32, 0), // IPRIORITYR0-7
    Block(0x1_0c00, 8, 0),  // ICFGR0-1
    Block(0x1_0d00, 4, 0),  // IGRPMODR0
    Block(0x1_0e00, 4, 0),  // NSACR
];

/// Whether a 32-bit access at `offset` names a register of `blocks`, and for a
/// per-interrupt register one of the `nr_irqs` interrupts.
fn names_register(blocks: &[Block], offset: u32, nr_irqs: u32) -> bool {
    if offset % 4 != 0 {
        return false;
    }
    blocks.iter().any(|&Block(base, len, bits)| {
        offset >= base && offset - base < len && (bits == 0 || (offset - base) * 8 / bits < nr_irqs)
    })
}

/// `KVM_HAS_DEVICE_ATTR` for `DIST_REGS`, `REDIST_REGS` and `CPU_SYSREGS` once the vCPU
/// is known (`ENXIO` for what does not exist); `nr_irqs` counts the private interrupts
/// (32 before `NR_IRQS` is set, as KVM's `nr_spis` of 0).
pub(crate) fn has(reg: &RegAttr, nr_irqs: u32) -> Result<(), Errno> {
    let ok = match reg.group {
        Group::Dist => names_register(DIST_BLOCKS, reg.offset, nr_irqs),
        Group::Redist => names_register(REDIST_BLOCKS, reg.offset, nr_irqs),
        Group::CpuSysregs => IccReg::decode(reg.offset).is_some(),
        Group::LevelInfo => reg.line_level_intid().is_some(),
    };
    if ok {
        Ok(())
    } else {
        Err(Errno::Nxio)
    }
}

/// `GICD_IIDR` and `GICD_TYPER2`, which exist before `CTRL_INIT` (they describe the vGIC
/// to build); `rev` is the implementation revision. `Some` if `offset` is one of them.
pub(crate) fn dist_id_access(
    offset: u32,
    write: Option<u32>,
    rev: &mut u8,
    initialized: bool,
) -> Option<Result<u32, Errno>> {
    match (offset, write) {
        (GICD_IIDR, None) => Some(Ok(super::mmio::iidr(*rev))),
        (GICD_IIDR, Some(v)) => {
            // Only the revision may differ: 2 (configurable groups) or 3 (GICR_CTLR's
            // IR and CES read as one).
            if (v ^ super::mmio::iidr(*rev)) & !IIDR_REV_MASK != 0 {
                return Some(Err(Errno::Inval));
            }
            match (v & IIDR_REV_MASK) >> IIDR_REV_SHIFT {
                r @ (2 | 3) => {
                    *rev = r as u8;
                    Some(Ok(0))
                }
                _ => Some(Err(Errno::Inval)),
            }
        }
        // No GICv4.1 direct SGIs: TYPER2 reads as zero and only zero can be written;
        // anything else is EINVAL, or EBUSY once the vGIC is initialised.
        (GICD_TYPER2, None) => Some(Ok(0)),
        (GICD_TYPER2, Some(0)) => Some(Ok(0)),
        (GICD_TYPER2, Some(_)) => Some(Err(if initialized {
            Errno::Busy
        } else {
            Errno::Inval
        })),
        _ => None,
    }
}

const GICD_STATUSR: u32 = 0x0010;
const GICD_ISPENDR: u32 = 0x0200;
const GICD_ICPENDR: u32 = 0x0280;

impl Model<'_> {
    /// The pending latches of the 32 interrupts from `first`, as vCPU `cpu` sees them.
    fn latch_read(&mut self, cpu: usize, first: u32) -> u32 {
        let mut v = 0;
        for i in 0..32 {
            if let Some(irq) = self.irq(cpu, first + i) {
                v |= u32::from(irq.pending_latch) << i;
            }
        }
        v
    }

    /// Sets each latch to its bit of `val` (an `ISPENDR` restore).
    fn latch_write(&mut self, cpu: usize, first: u32, val: u32) -> VcpuMask {
        let mut kick = 0;
        for i in 0..32 {
            if let Some(irq) = self.irq(cpu, first + i) {
                irq.pending_latch = val & (1 << i) != 0;
                kick |= self.queue(cpu, first + i);
            }
        }
        kick
    }

    /// A userspace read of the distributor register at `offset` (not IIDR or TYPER2:
    /// [`dist_id_access`]).
    pub(crate) fn dist_uread(&mut self, offset: u32) -> u32 {
        match offset {
            o if o % 4 != 0 => 0,
            GICD_STATUSR => u32::MAX,
            GICD_ISPENDR..=0x027f if offset - GICD_ISPENDR >= 4 => {
                self.latch_read(0, (offset - GICD_ISPENDR) * 8)
            }
            GICD_ICPENDR..=0x02ff => 0,
            _ => self.dist_read(0, u64::from(offset), 4) as u32,
        }
    }

    /// A userspace write to the distributor; returns the vCPUs to kick.
    pub(crate) fn dist_uwrite(&mut self, offset: u32, val: u32) -> VcpuMask {
        match offset {
            o if o % 4 != 0 => 0,
            GICD_ISPENDR..=0x027f if offset - GICD_ISPENDR >= 4 => {
                self.latch_write(0, (offset - GICD_ISPENDR) * 8, val)
            }
            GICD_ICPENDR..=0x02ff => 0,
            _ => self.dist_write(0, u64::from(offset), 4, u64::from(val)),
        }
    }

    /// A userspace read in vCPU `rd`'s redistributor (both frames).
    pub(crate) fn redist_uread(&mut self, rd: usize, offset: u32) -> u32 {
        const ISPENDR0: u32 = SGI_BASE as u32 + GICD_ISPENDR;
        const ICPENDR0: u32 = SGI_BASE as u32 + GICD_ICPENDR;
        match offset {
            o if o % 4 != 0 => 0,
            ISPENDR0 => self.latch_read(rd, 0),
            ICPENDR0 => 0,
            _ => self.redist_read(rd, u64::from(offset), 4) as u32,
        }
    }

    /// A userspace write in vCPU `rd`'s redistributor; `GICR_TYPER` is read-only (the
    /// guest's writes are ignored there too). The LPI registers follow the guest's rules,
    /// as in KVM (which has no userspace variant for them): a base register is restored
    /// before `GICR_CTLR`, and setting EnableLPIs returns the same [`LpiWork`].
    pub(crate) fn redist_uwrite(
        &mut self,
        rd: usize,
        offset: u32,
        val: u32,
    ) -> (VcpuMask, Option<LpiWork>) {
        const ISPENDR0: u32 = SGI_BASE as u32 + GICD_ISPENDR;
        const ICPENDR0: u32 = SGI_BASE as u32 + GICD_ICPENDR;
        match offset {
            o if o % 4 != 0 => (0, None),
            ISPENDR0 => (self.latch_write(rd, 0, val), None),
            ICPENDR0 => (0, None),
            _ => self.redist_write(rd, u64::from(offset), 4, u64::from(val)),
        }
    }

    /// `LEVEL_INFO` read: the line levels of the level-sensitive interrupts among the 32
    /// from `first` (SGIs and INTIDs past `NR_IRQS` read as zero). `EINVAL` unless
    /// `first` is a multiple of 32.
    pub(crate) fn level_info_read(&mut self, cpu: usize, first: u32) -> Result<u32, Errno> {
        if first % 32 != 0 {
            return Err(Errno::Inval);
        }
        let mut v = 0;
        for i in 0..32 {
            let intid = first + i;
            if intid < NR_SGIS {
                continue;
            }
            if let Some(irq) = self.irq(cpu, intid) {
                v |= u32::from(irq.level && irq.line_level) << i;
            }
        }
        Ok(v)
    }

    /// `LEVEL_INFO` write: sets the line levels, whatever the trigger mode (so the
    /// configuration and the levels may be restored in either order).
    pub(crate) fn level_info_write(
        &mut self,
        cpu: usize,
        first: u32,
        val: u32,
    ) -> Result<VcpuMask, Errno> {
        if first % 32 != 0 {
            return Err(Errno::Inval);
        }
        let mut kick = 0;
        for i in 0..32 {
            let intid = first + i;
            if intid < NR_SGIS {
                continue;
            }
            if let Some(irq) = self.irq(cpu, intid) {
                irq.line_level = val & (1 << i) != 0;
                kick |= self.queue(cpu, intid);
            }
        }
        Ok(kick)
    }
}

/// The GICv3 CPU-interface registers `CPU_SYSREGS` reaches (the EL1 ones; the EL2 ones
/// are hidden without nested virtualisation, as in KVM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IccReg {
    Pmr,
    Bpr0,
    /// ICC_AP0R<n>_EL1.
    Ap0r(usize),
    /// ICC_AP1R<n>_EL1.
    Ap1r(usize),
    Bpr1,
    Ctlr,
    Sre,
    Igrpen0,
    Igrpen1,
}

impl IccReg {
    /// Decodes `KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK` of the attribute: Op0 [15:14], Op1
    /// [13:11], CRn [10:7], CRm [6:3], Op2 [2:0]; bits above are ignored, as in KVM.
    pub(crate) const fn decode(offset: u32) -> Option<Self> {
        let op0 = (offset >> 14) & 3;
        let op1 = (offset >> 11) & 7;
        let crn = (offset >> 7) & 0xf;
        let crm = (offset >> 3) & 0xf;
        let op2 = (offset & 7) as usize;
        Some(match (op0, op1, crn, crm, op2) {
            (3, 0, 4, 6, 0) => Self::Pmr,
            (3, 0, 12, 8, 3) => Self::Bpr0,
            (3, 0, 12, 8, 4..=7) => Self::Ap0r(op2 & 3),
            (3, 0, 12, 9, 0..=3) => Self::Ap1r(op2),
            (3, 0, 12, 12, 3) => Self::Bpr1,
            (3, 0, 12, 12, 4) => Self::Ctlr,
            (3, 0, 12, 12, 5) => Self::Sre,
            (3, 0, 12, 12, 6) => Self::Igrpen0,
            (3, 0, 12, 12, 7) => Self::Igrpen1,
            _ => return None,
        })
    }
}

/// `ICH_VMCR_EL2` fields.
const VMCR_ENG0: u64 = 1 << 0;
const VMCR_ENG1: u64 = 1 << 1;
/// VFIQEn is RES1 for a GICv3 guest with SRE set; KVM writes it so.
const VMCR_FIQEN: u64 = 1 << 3;
const VMCR_CBPR: u64 = 1 << 4;
const VMCR_EOIM: u64 = 1 << 9;
const VMCR_BPR1_SHIFT: u32 = 18;
const VMCR_BPR0_SHIFT: u32 = 21;
const VMCR_PMR_SHIFT: u32 = 24;

/// The fields of ICH_VMCR_EL2 that the ICC registers show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Vmcr {
    grpen0: bool,
    grpen1: bool,
    cbpr: bool,
    eoim: bool,
    /// VBPR1 (`abpr`) and VBPR0 (`bpr`).
    abpr: u64,
    bpr: u64,
    pmr: u64,
}

impl Vmcr {
    const fn decode(v: u64) -> Self {
        Self {
            grpen0: v & VMCR_ENG0 != 0,
            grpen1: v & VMCR_ENG1 != 0,
            cbpr: v & VMCR_CBPR != 0,
            eoim: v & VMCR_EOIM != 0,
            abpr: (v >> VMCR_BPR1_SHIFT) & 7,
            bpr: (v >> VMCR_BPR0_SHIFT) & 7,
            pmr: (v >> VMCR_PMR_SHIFT) & 0xff,
        }
    }

    const fn encode(&self) -> u64 {
        let mut v = VMCR_FIQEN;
        if self.grpen0 {
            v |= VMCR_ENG0;
        }
        if self.grpen1 {
            v |= VMCR_ENG1;
        }
        if self.cbpr {
            v |= VMCR_CBPR;
        }
        if self.eoim {
            v |= VMCR_EOIM;
        }
        v | (self.abpr << VMCR_BPR1_SHIFT)
            | (self.bpr << VMCR_BPR0_SHIFT)
            | (self.pmr << VMCR_PMR_SHIFT)
    }
}

/// `ICC_SRE_EL1` as the guest sees it: SRE, DFB and DIB set.
pub(crate) const ICC_SRE: u64 = 0b111;
const CTLR_CBPR: u64 = 1 << 0;
const CTLR_EOIMODE: u64 = 1 << 1;
const CTLR_PRI_BITS_SHIFT: u32 = 8;
const CTLR_ID_BITS_SHIFT: u32 = 11;
const CTLR_SEIS: u64 = 1 << 14;
const CTLR_A3V: u64 = 1 << 15;

/// A vCPU's CPU-interface state as userspace sees it: the saved ICH_VMCR_EL2 and active
/// priority registers, and the priority and INTID bits it reports (the host's, unless
/// userspace restored fewer through `ICC_CTLR_EL1`).
pub(crate) struct CpuIf<'a> {
    pub(crate) vmcr: &'a mut u64,
    pub(crate) ap0r: &'a mut [u64; 4],
    pub(crate) ap1r: &'a mut [u64; 4],
    pub(crate) pri_bits: &'a mut u8,
    pub(crate) id_bits: &'a mut u8,
}

impl CpuIf<'_> {
    /// The highest APR index the priority bits imply (KVM's `vgic_v3_max_apr_idx`).
    fn max_apr(&self) -> usize {
        match *self.pri_bits {
            7 => 3,
            6 => 1,
            _ => 0,
        }
    }

    /// `KVM_GET_DEVICE_ATTR`: `EINVAL` for an APR beyond the priority bits.
    pub(crate) fn get(&self, reg: IccReg, host: &Vtr) -> Result<u64, Errno> {
        let vmcr = Vmcr::decode(*self.vmcr);
        Ok(match reg {
            IccReg::Pmr => vmcr.pmr,
            IccReg::Bpr0 => vmcr.bpr,
            IccReg::Bpr1 if vmcr.cbpr => (vmcr.bpr + 1).min(7),
            IccReg::Bpr1 => vmcr.abpr,
            IccReg::Igrpen0 => u64::from(vmcr.grpen0),
            IccReg::Igrpen1 => u64::from(vmcr.grpen1),
            IccReg::Sre => ICC_SRE,
            IccReg::Ap0r(n) | IccReg::Ap1r(n) if n > self.max_apr() => return Err(Errno::Inval),
            IccReg::Ap0r(n) => self.ap0r[n],
            IccReg::Ap1r(n) => self.ap1r[n],
            IccReg::Ctlr => {
                let mut v = (u64::from(*self.pri_bits - 1) << CTLR_PRI_BITS_SHIFT)
                    | (u64::from(*self.id_bits) << CTLR_ID_BITS_SHIFT);
                if host.seis {
                    v |= CTLR_SEIS;
                }
                if host.a3v {
                    v |= CTLR_A3V;
                }
                if vmcr.cbpr {
                    v |= CTLR_CBPR;
                }
                if vmcr.eoim {
                    v |= CTLR_EOIMODE;
                }
                v
            }
        })
    }

    /// `KVM_SET_DEVICE_ATTR`. `ICC_CTLR_EL1` may lower the priority and INTID bits but
    /// not raise them, and must match the host's SEIS and A3V (`EINVAL`); `ICC_SRE_EL1`
    /// must keep SRE set; `ICC_BPR1_EL1` is ignored while CBPR is set.
    pub(crate) fn set(&mut self, reg: IccReg, val: u64, host: &Vtr) -> Result<(), Errno> {
        let mut vmcr = Vmcr::decode(*self.vmcr);
        match reg {
            IccReg::Pmr => vmcr.pmr = val & 0xff,
            IccReg::Bpr0 => vmcr.bpr = val & 7,
            IccReg::Bpr1 if vmcr.cbpr => return Ok(()),
            IccReg::Bpr1 => vmcr.abpr = val & 7,
            IccReg::Igrpen0 => vmcr.grpen0 = val & 1 != 0,
            IccReg::Igrpen1 => vmcr.grpen1 = val & 1 != 0,
            IccReg::Sre if val & 1 == 0 => return Err(Errno::Inval),
            IccReg::Sre => return Ok(()),
            IccReg::Ap0r(n) | IccReg::Ap1r(n) if n > self.max_apr() => return Err(Errno::Inval),
            IccReg::Ap0r(n) => {
                self.ap0r[n] = val;
                return Ok(());
            }
            IccReg::Ap1r(n) => {
                self.ap1r[n] = val;
                return Ok(());
            }
            IccReg::Ctlr => {
                // Checked and applied field by field, in KVM's order.
                let pri_bits = ((val >> CTLR_PRI_BITS_SHIFT) & 7) as u8 + 1;
                if pri_bits > *self.pri_bits {
                    return Err(Errno::Inval);
                }
                *self.pri_bits = pri_bits;
                let id_bits = ((val >> CTLR_ID_BITS_SHIFT) & 7) as u8;
                if id_bits > *self.id_bits {
                    return Err(Errno::Inval);
                }
                *self.id_bits = id_bits;
                if (val & CTLR_SEIS != 0) != host.seis || (val & CTLR_A3V != 0) != host.a3v {
                    return Err(Errno::Inval);
                }
                vmcr.cbpr = val & CTLR_CBPR != 0;
                vmcr.eoim = val & CTLR_EOIMODE != 0;
            }
        }
        *self.vmcr = vmcr.encode();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Fixture;
    use super::*;

    const QEMU_VTR: u64 = (4 << 29) | (4 << 26) | (1 << 21) | 3;

    #[test]
    fn attribute_decoding() {
        // vCPU Aff3.Aff2.Aff1.Aff0 = 1.2.3.4, GICR_TYPER.
        let r = RegAttr::decode(Group::Redist, 0x0102_0304_0000_0008);
        assert_eq!(r.mpidr, 0x01_0002_0304);
        assert_eq!(r.offset, 8);
        let l = RegAttr::decode(Group::LevelInfo, 64);
        assert_eq!(l.line_level_intid(), Some(64));
        assert_eq!(
            RegAttr::decode(Group::LevelInfo, 1 << 10).line_level_intid(),
            None
        );
        assert!(RegAttr::decode(Group::Dist, 8).allowed_before_init());
        assert!(!RegAttr::decode(Group::Redist, 8).allowed_before_init());
        assert!(RegAttr::decode(Group::CpuSysregs, 0).is_64bit());
    }

    #[test]
    fn has_attr() {
        let dist = |o| has(&RegAttr::decode(Group::Dist, o), 64);
        assert_eq!(dist(0x0), Ok(()));
        assert_eq!(dist(0xc), Ok(())); // TYPER2
        assert_eq!(dist(0x2), Err(Errno::Nxio)); // misaligned
        assert_eq!(dist(0x20), Err(Errno::Nxio)); // nothing there
        assert_eq!(dist(0x0204), Ok(())); // ISPENDR1: SPIs 32-63
        assert_eq!(dist(0x0208), Err(Errno::Nxio)); // beyond NR_IRQS
        assert_eq!(dist(0x0200), Ok(())); // the private word: RAZ/WI, but present
        assert_eq!(dist(0x6000 + 63 * 8), Ok(()));
        assert_eq!(dist(0x6000 + 64 * 8), Err(Errno::Nxio));
        assert_eq!(dist(0xffe8), Ok(()));
        let redist = |o| has(&RegAttr::decode(Group::Redist, o), 64);
        assert_eq!(redist(0x8), Ok(()));
        assert_eq!(redist(0xc), Ok(()));
        assert_eq!(redist(0x1_0200), Ok(()));
        assert_eq!(redist(0x1_0204), Err(Errno::Nxio));
        assert_eq!(redist(0x1_041c), Ok(()));
        assert_eq!(redist(0x1_0420), Err(Errno::Nxio));
        let sys = |o| has(&RegAttr::decode(Group::CpuSysregs, o), 64);
        // ICC_PMR_EL1 = 3,0,4,6,0; ICC_IGRPEN1_EL1 = 3,0,12,12,7.
        assert_eq!(sys((3 << 14) | (4 << 7) | (6 << 3)), Ok(()));
        assert_eq!(sys((3 << 14) | (12 << 7) | (12 << 3) | 7), Ok(()));
        assert_eq!(
            sys((3 << 14) | (4 << 11) | (12 << 7) | (11 << 3)),
            Err(Errno::Nxio)
        ); // ICH_HCR_EL2
    }

    #[test]
    fn sysreg_encodings() {
        let enc = |crn: u32, crm: u32, op2: u32| (3 << 14) | (crn << 7) | (crm << 3) | op2;
        assert_eq!(IccReg::decode(enc(12, 8, 4)), Some(IccReg::Ap0r(0)));
        assert_eq!(IccReg::decode(enc(12, 8, 7)), Some(IccReg::Ap0r(3)));
        assert_eq!(IccReg::decode(enc(12, 9, 2)), Some(IccReg::Ap1r(2)));
        assert_eq!(IccReg::decode(enc(12, 9, 4)), None);
        assert_eq!(IccReg::decode(enc(12, 12, 4)), Some(IccReg::Ctlr));
        // Bits above the instruction field do not matter.
        assert_eq!(
            IccReg::decode((1 << 20) | enc(12, 12, 5)),
            Some(IccReg::Sre)
        );
    }

    #[test]
    fn id_registers() {
        let mut rev = 3;
        assert_eq!(
            dist_id_access(GICD_IIDR, None, &mut rev, false),
            Some(Ok(0x4b00_343b))
        );
        assert_eq!(
            dist_id_access(GICD_IIDR, Some(0x4b00_243b), &mut rev, true),
            Some(Ok(0))
        );
        assert_eq!(rev, 2);
        assert_eq!(
            dist_id_access(GICD_IIDR, Some(0x4b00_143b), &mut rev, true),
            Some(Err(Errno::Inval))
        );
        assert_eq!(
            dist_id_access(GICD_IIDR, Some(0x4c00_343b), &mut rev, true),
            Some(Err(Errno::Inval))
        );
        assert_eq!(rev, 2);
        assert_eq!(
            dist_id_access(GICD_TYPER2, None, &mut rev, false),
            Some(Ok(0))
        );
        assert_eq!(
            dist_id_access(GICD_TYPER2, Some(0), &mut rev, true),
            Some(Ok(0))
        );
        assert_eq!(
            dist_id_access(GICD_TYPER2, Some(1 << 8), &mut rev, false),
            Some(Err(Errno::Inval))
        );
        assert_eq!(
            dist_id_access(GICD_TYPER2, Some(1 << 8), &mut rev, true),
            Some(Err(Errno::Busy))
        );
        assert_eq!(dist_id_access(0, None, &mut rev, true), None);
    }

    #[test]
    fn pending_latch_and_line_level() {
        let mut f = Fixture::new();
        let mut m = f.model();
        // SPI 40 level-sensitive, enabled, line high: pending, but not latched.
        m.dist_write(0, 0x0c08, 4, 0xaaaa_aaaa & !(2 << 16));
        m.dist_write(0, 0x0104, 4, 1 << 8);
        m.set_level(0, 40, true);
        assert_eq!(m.dist_read(0, 0x0204, 4), 1 << 8);
        assert_eq!(m.dist_uread(0x0204), 0);
        assert_eq!(m.level_info_read(0, 32), Ok(1 << 8));
        // A restore writes the latch of SPI 41 and clears every other one.
        m.irq(0, 42).unwrap().pending_latch = true;
        m.dist_uwrite(0x0204, 1 << 9);
        assert_eq!(m.dist_uread(0x0204), 1 << 9);
        // ICPENDR: RAZ/WI from userspace.
        assert_eq!(m.dist_uread(0x0284), 0);
        m.dist_uwrite(0x0284, u32::MAX);
        assert_eq!(m.dist_uread(0x0204), 1 << 9);
        // STATUSR reads as ones; misaligned or unknown offsets as zero.
        assert_eq!(m.dist_uread(0x10), u32::MAX);
        assert_eq!(m.dist_uread(0x0206), 0);
        // The line levels, whatever the trigger mode.
        assert_eq!(m.level_info_write(0, 32, 0), Ok(0));
        assert!(!m.irq(0, 40).unwrap().line_level);
        assert_eq!(m.level_info_write(0, 33, 0), Err(Errno::Inval));
        assert_eq!(m.level_info_read(0, 16), Err(Errno::Inval));
        // A level PPI of vCPU 1 made pending through LEVEL_INFO and its ISENABLER0.
        m.redist_uwrite(1, 0x1_0100, 1 << 20);
        assert_eq!(m.level_info_write(1, 0, (1 << 20) | 0xffff), Ok(2));
        assert_eq!(m.level_info_read(1, 0), Ok(1 << 20));
        assert_eq!(m.cpus[1].ap_list(), &[20]);
        // ISPENDR0 of vCPU 1 latches SGI 3 there.
        m.redist_uwrite(1, 0x1_0200, 1 << 3);
        assert_eq!(m.redist_uread(1, 0x1_0200), 1 << 3);
        assert_eq!(m.redist_uread(1, 0x1_0280), 0);
        assert_eq!(m.redist_uread(0, 0x1_0200), 0);
    }

    #[test]
    fn redistributor_identity_is_read_only() {
        let mut f = Fixture::new();
        f.cpus[1].last = true;
        f.cpus[1].id = 5;
        let mut m = f.model();
        assert_eq!(m.redist_uread(1, 0x8), (5 << 8) | (1 << 4));
        assert_eq!(m.redist_uread(1, 0xc), 1);
        m.redist_uwrite(1, 0x8, 0);
        assert_eq!(m.redist_uread(1, 0x8), (5 << 8) | (1 << 4));
        // Revision 3: GICR_CTLR.IR and CES read as one.
        assert_eq!(m.redist_uread(1, 0x0), 0b110);
        m.dist.rev = 2;
        assert_eq!(m.redist_uread(1, 0x0), 0);
        assert_eq!(m.redist_uread(1, 0x4), 0x4b00_043b);
    }

    #[test]
    fn cpu_sysregs() {
        let host = Vtr::decode(QEMU_VTR);
        let (mut vmcr, mut ap0r, mut ap1r, mut pri, mut id) =
            (0, [0; 4], [0; 4], host.pri_bits, host.id_bits);
        let mut c = CpuIf {
            vmcr: &mut vmcr,
            ap0r: &mut ap0r,
            ap1r: &mut ap1r,
            pri_bits: &mut pri,
            id_bits: &mut id,
        };
        c.set(IccReg::Pmr, 0x1f0, &host).unwrap();
        assert_eq!(c.get(IccReg::Pmr, &host), Ok(0xf0));
        c.set(IccReg::Igrpen1, 3, &host).unwrap();
        assert_eq!(c.get(IccReg::Igrpen1, &host), Ok(1));
        c.set(IccReg::Bpr1, 4, &host).unwrap();
        assert_eq!(c.get(IccReg::Bpr1, &host), Ok(4));
        c.set(IccReg::Bpr0, 2, &host).unwrap();
        assert_eq!(
            *c.vmcr,
            (0xf0 << 24) | (2 << 21) | (4 << 18) | VMCR_FIQEN | VMCR_ENG1
        );
        // ICC_CTLR_EL1: 5 priority bits, A3V as the host; EOImode and CBPR kept.
        let ctlr = c.get(IccReg::Ctlr, &host).unwrap();
        assert_eq!(ctlr, (4 << 8) | CTLR_A3V);
        c.set(IccReg::Ctlr, ctlr | CTLR_EOIMODE | CTLR_CBPR, &host)
            .unwrap();
        assert_eq!(*c.vmcr & (VMCR_EOIM | VMCR_CBPR), VMCR_EOIM | VMCR_CBPR);
        // With CBPR, BPR1 reads BPR0 + 1 and ignores writes.
        assert_eq!(c.get(IccReg::Bpr1, &host), Ok(3));
        c.set(IccReg::Bpr1, 6, &host).unwrap();
        assert_eq!(c.get(IccReg::Bpr1, &host), Ok(3));
        // More priority bits than the host, another SEIS or A3V: EINVAL.
        assert_eq!(
            c.set(IccReg::Ctlr, (5 << 8) | CTLR_A3V, &host),
            Err(Errno::Inval)
        );
        assert_eq!(c.set(IccReg::Ctlr, 4 << 8, &host), Err(Errno::Inval));
        assert_eq!(
            c.set(IccReg::Ctlr, (4 << 8) | CTLR_A3V | CTLR_SEIS, &host),
            Err(Errno::Inval)
        );
        // APRs: only AP<n>R0 with 5 priority bits.
        c.set(IccReg::Ap1r(0), 1 << 3, &host).unwrap();
        assert_eq!(c.get(IccReg::Ap1r(0), &host), Ok(1 << 3));
        assert_eq!(c.get(IccReg::Ap0r(1), &host), Err(Errno::Inval));
        assert_eq!(c.set(IccReg::Ap1r(3), 0, &host), Err(Errno::Inval));
        // ICC_SRE_EL1: SRE must stay set.
        assert_eq!(c.get(IccReg::Sre, &host), Ok(7));
        assert_eq!(c.set(IccReg::Sre, 6, &host), Err(Errno::Inval));
        assert_eq!(c.set(IccReg::Sre, 1, &host), Ok(()));
        // Fewer priority bits may be restored, and then bound the APRs.
        let big = Vtr::decode((6 << 29) | (6 << 26) | 15);
        *c.pri_bits = 7;
        assert_eq!(c.get(IccReg::Ap0r(3), &big), Ok(0));
        c.set(IccReg::Ctlr, 5 << 8, &big).unwrap();
        assert_eq!(*c.pri_bits, 6);
        assert_eq!(c.get(IccReg::Ap0r(1), &big), Ok(0));
        assert_eq!(c.get(IccReg::Ap0r(2), &big), Err(Errno::Inval));
    }

    #[test]
    fn lpi_registers_restore() {
        // QEMU's order: PROPBASER, PENDBASER (in 32-bit halves), then GICR_CTLR.
        let mut f = Fixture::with_its();
        let mut m = f.model();
        assert_eq!(
            m.dist_uread(0x4) & ((0x1f << 19) | (1 << 17)),
            (15 << 19) | (1 << 17)
        );
        m.redist_uwrite(1, 0x70, 0x1000_038f);
        m.redist_uwrite(1, 0x74, 0);
        m.redist_uwrite(1, 0x78, 0x0002_0380);
        m.redist_uwrite(1, 0x7c, 0x4000_0000); // PTZ
        assert_eq!(m.redist_uread(0, 0x70), 0x1000_038f);
        assert_eq!(m.redist_uread(1, 0x78), 0x0002_0380);
        assert_eq!(m.redist_uread(1, 0x7c), 0);
        assert_eq!(
            m.redist_uwrite(1, 0x0, 1),
            (
                0,
                Some(LpiWork::EnableLpis {
                    cpu: 1,
                    load_pending: false
                })
            )
        );
        assert_eq!(m.redist_uread(1, 0x0), 0b111);
        assert_eq!(m.redist_uread(1, 0x8) & 1, 1);
        // Once enabled, the bases ignore writes.
        m.redist_uwrite(1, 0x78, 0);
        assert_eq!(m.redist_uread(1, 0x78), 0x0002_0380);
        // Without an ITS: RAZ/WI, as before.
        let mut f = Fixture::new();
        let mut m = f.model();
        assert_eq!(m.redist_uwrite(0, 0x70, 0x1000_038f), (0, None));
        assert_eq!(m.redist_uread(0, 0x70), 0);
        assert_eq!(m.redist_uwrite(0, 0x0, 1), (0, None));
        assert_eq!(m.redist_uread(0, 0x0), 0b110);
    }
}
