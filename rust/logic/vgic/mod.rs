// SPDX-License-Identifier: GPL-2.0

//! The vGICv3 model: interrupt state, the per-vCPU list of interrupts in flight (the "AP
//! list"), list-register flush and sync, and SGI generation.
//!
//! KVM counterpart: `arch/arm64/kvm/vgic/vgic.c` (`vgic_queue_irq_unlock`,
//! `vgic_flush_lr_state`, `vgic_prune_ap_list`), `vgic-v3.c` and `vgic_v3_dispatch_sgi`.
//!
//! The model owns no memory: [`Model`] borrows the distributor, the SPIs and the vCPUs'
//! private state from the kernel layer, which allocates them once at `CTRL_INIT`, so
//! nothing here allocates and every operation is bounded.
//!
//! An interrupt is on at most one vCPU's AP list (`Irq::queued`): the vCPU that must
//! present it, because it is pending, enabled and its group enabled, or because the guest
//! has it active. Flush copies the highest-priority entries into list registers
//! (`Irq::in_lr`); while there, the interrupt stays on that list whatever else changes,
//! and sync folds the list register back and queues it again by the new state.

pub(crate) mod attr;
pub(crate) mod its;
pub(crate) mod lr;
pub(crate) mod mmio;
pub(crate) mod uaccess;

use lr::Lr;

/// SGIs (0-15) and PPIs (16-31): private to each vCPU.
pub(crate) const NR_SGIS: u32 = 16;
pub(crate) const NR_PRIVATE: u32 = 32;
/// Most SPIs: `NR_IRQS` is at most 992 (KVM's limit of 1023, a multiple of 32).
pub(crate) const MAX_SPIS: usize = 960;
/// SPIs when userspace sets no `NR_IRQS` (KVM's `VGIC_NR_IRQS_LEGACY` - 32).
pub(crate) const DEFAULT_SPIS: u32 = 224;
/// Capacity of an AP list: every interrupt a vCPU can see.
pub(crate) const AP_CAP: usize = NR_PRIVATE as usize + MAX_SPIS;
/// Implemented priority bits (5, as KVM): the low three bits read as zero.
pub(crate) const PRIORITY_MASK: u8 = 0xf8;
/// "No vCPU" in [`Irq::queued`] and [`Irq::target`].
pub(crate) const NONE: u16 = u16::MAX;
/// The affinity fields of MPIDR_EL1 / GICD_IROUTER (Aff3 [39:32], Aff2-Aff0 [23:0]).
pub(crate) const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// A set of vCPU indices (at most 64 vCPUs per VM): the ones to kick.
pub(crate) type VcpuMask = u64;

/// One interrupt's state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Irq {
    pub(crate) enabled: bool,
    /// Edge latch, or software pending state (ISPENDR) of a level interrupt.
    pub(crate) pending_latch: bool,
    /// Input line level (level-sensitive interrupts).
    pub(crate) line_level: bool,
    pub(crate) active: bool,
    /// Level-sensitive (GICD_ICFGR bit 2n+1 clear).
    pub(crate) level: bool,
    pub(crate) group1: bool,
    pub(crate) priority: u8,
    /// GICD_IROUTER affinity (SPIs).
    pub(crate) route: u64,
    /// The vCPU the SPI routes to, or [`NONE`].
    pub(crate) target: u16,
    /// The vCPU whose AP list holds it, or [`NONE`].
    pub(crate) queued: u16,
    /// It is in a list register of its `queued` vCPU.
    pub(crate) in_lr: bool,
    /// Deactivated (ICC_DIR_EL1 on another vCPU, or ICACTIVER) while in a list
    /// register: the sync that folds that register back drops the active state.
    pub(crate) deactivate: bool,
}

impl Irq {
    /// Reset state: SGIs enabled and edge-triggered, PPIs level-sensitive, SPIs edge, all
    /// group 1 and routed to vCPU 0 (KVM's defaults for a GICv3).
    pub(crate) const fn reset(intid: u32) -> Self {
        Self {
            enabled: intid < NR_SGIS,
            pending_latch: false,
            line_level: false,
            active: false,
            level: intid >= NR_SGIS && intid < NR_PRIVATE,
            group1: true,
            priority: 0,
            route: 0,
            target: if intid >= NR_PRIVATE { 0 } else { NONE },
            queued: NONE,
            in_lr: false,
            deactivate: false,
        }
    }

    /// Pending: the latch, or a level interrupt's line.
    pub(crate) const fn pending(&self) -> bool {
        self.pending_latch || (self.level && self.line_level)
    }
}

/// The distributor's own registers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Dist {
    /// GICD_CTLR.EnableGrp0 / EnableGrp1 (a single security state: DS = 1).
    pub(crate) enable_grp0: bool,
    pub(crate) enable_grp1: bool,
    pub(crate) nr_spis: u32,
    /// GICD_IIDR's implementation revision (2 or 3; userspace may restore 2).
    pub(crate) rev: u8,
}

/// A vCPU's private interrupts, redistributor identity and AP list.
#[derive(Clone)]
pub(crate) struct Cpu {
    pub(crate) private: [Irq; NR_PRIVATE as usize],
    /// MPIDR_EL1 (affinity for routing, SGI targets and GICR_TYPER).
    pub(crate) mpidr: u64,
    /// The vCPU id (GICR_TYPER.Processor_Number).
    pub(crate) id: u32,
    /// The priority bits (5-7) and ID bits field `ICC_CTLR_EL1` reports for this vCPU:
    /// the host's, or fewer as userspace restored them.
    pub(crate) pri_bits: u8,
    pub(crate) id_bits: u8,
    /// GICR_TYPER.Last: the last redistributor of its region.
    pub(crate) last: bool,
    ap: [u16; AP_CAP],
    ap_len: usize,
}

impl Cpu {
    pub(crate) fn new(mpidr: u64) -> Self {
        let mut private = [Irq::reset(0); NR_PRIVATE as usize];
        for (i, irq) in private.iter_mut().enumerate() {
            *irq = Irq::reset(i as u32);
        }
        Self { private, mpidr, id: 0, pri_bits: 5, id_bits: 0, last: false, ap: [0; AP_CAP], ap_len: 0 }
    }

    /// The interrupts on the AP list.
    pub(crate) fn ap_list(&self) -> &[u16] {
        &self.ap[..self.ap_len]
    }

    fn ap_remove(&mut self, intid: u32) {
        if let Some(i) = self.ap_list().iter().position(|&x| u32::from(x) == intid) {
            self.ap_len -= 1;
            self.ap[i] = self.ap[self.ap_len];
        }
    }

    fn ap_push(&mut self, intid: u32) {
        if self.ap_len < AP_CAP {
            self.ap[self.ap_len] = intid as u16;
            self.ap_len += 1;
        }
    }
}

/// What a flush put into the list registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flushed {
    pub(crate) used: usize,
    /// More interrupts wait than fit: ask for the underflow maintenance interrupt.
    pub(crate) underflow: bool,
    /// More pending interrupts than list registers: exit once none is pending in them
    /// (`ICH_HCR_EL2.NPIE`), to present the next ones.
    pub(crate) pending_overflow: bool,
    /// Active interrupts stay outside the list registers: exit when the guest EOIs one
    /// (`ICH_HCR_EL2.LRENPIE`; `EOIcount` says how many, see [`Model::sync`]).
    pub(crate) active_outside: bool,
}

/// The vGIC state of one VM, borrowed for one operation under the kernel layer's lock.
pub(crate) struct Model<'a> {
    pub(crate) dist: &'a mut Dist,
    /// SPIs 32.., `dist.nr_spis` of them.
    pub(crate) spis: &'a mut [Irq],
    /// By vCPU index.
    pub(crate) cpus: &'a mut [Cpu],
}

impl Model<'_> {
    /// Interrupt `intid` as seen by vCPU `cpu` (private ones are banked per vCPU).
    pub(crate) fn irq(&mut self, cpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < NR_PRIVATE {
            self.cpus.get_mut(cpu).map(|c| &mut c.private[intid as usize])
        } else if intid - NR_PRIVATE < self.dist.nr_spis {
            self.spis.get_mut((intid - NR_PRIVATE) as usize)
        } else {
            None
        }
    }

    /// Whether `intid` exists (for vCPU `cpu`).
    pub(crate) fn valid(&self, cpu: usize, intid: u32) -> bool {
        if intid < NR_PRIVATE {
            cpu < self.cpus.len()
        } else {
            intid - NR_PRIVATE < self.dist.nr_spis && ((intid - NR_PRIVATE) as usize) < self.spis.len()
        }
    }

    /// The vCPU index with affinity `route`, or [`NONE`].
    fn route_to(&self, route: u64) -> u16 {
        self.cpus
            .iter()
            .position(|c| c.mpidr & AFFINITY_MASK == route & AFFINITY_MASK)
            .map_or(NONE, |i| i as u16)
    }

    /// Sets an SPI's GICD_IROUTER affinity (the Interrupt Routing Mode bit reads as zero:
    /// 1-of-N routing is not offered, as in KVM).
    pub(crate) fn set_route(&mut self, intid: u32, route: u64) -> VcpuMask {
        let target = self.route_to(route);
        if let Some(irq) = self.irq(0, intid).filter(|_| intid >= NR_PRIVATE) {
            irq.route = route & AFFINITY_MASK;
            irq.target = target;
        }
        self.queue(0, intid)
    }

    /// Where the interrupt must be presented now: its vCPU if it is active, or pending,
    /// enabled and of an enabled group; otherwise nowhere.
    fn oracle(&self, cpu: usize, intid: u32, irq: &Irq) -> u16 {
        let owner = if intid < NR_PRIVATE { cpu as u16 } else { irq.target };
        if irq.active {
            return if irq.queued != NONE { irq.queued } else { owner };
        }
        let group_on = if irq.group1 { self.dist.enable_grp1 } else { self.dist.enable_grp0 };
        if irq.enabled && irq.pending() && group_on {
            owner
        } else {
            NONE
        }
    }

    /// Puts interrupt `intid` (of vCPU `cpu`, for a private one) on the AP list its state
    /// calls for, taking it off any other. Returns the vCPU to kick, if any: the one that
    /// must present it, even when it was queued there already (an edge interrupt may
    /// arrive again after the guest took the first one with no exit).
    pub(crate) fn queue(&mut self, cpu: usize, intid: u32) -> VcpuMask {
        let Some(irq) = self.irq(cpu, intid).copied() else { return 0 };
        let target = self.oracle(cpu, intid, &irq);
        if irq.in_lr {
            // Its vCPU's sync folds it back and queues it again.
            return if target == irq.queued && target != NONE { 1 << target } else { 0 };
        }
        if irq.queued != target {
            if let Some(old) = self.cpus.get_mut(usize::from(irq.queued)) {
                old.ap_remove(intid);
            }
            let queued = match self.cpus.get_mut(usize::from(target)) {
                Some(new) => {
                    new.ap_push(intid);
                    target
                }
                None => NONE,
            };
            if let Some(irq) = self.irq(cpu, intid) {
                irq.queued = queued;
            }
        }
        if target == NONE || usize::from(target) >= self.cpus.len() {
            0
        } else {
            1 << target
        }
    }

    /// Queues every interrupt again (after GICD_CTLR changes a group enable).
    pub(crate) fn queue_all(&mut self) -> VcpuMask {
        let mut kick = 0;
        for cpu in 0..self.cpus.len() {
            for intid in 0..NR_PRIVATE {
                kick |= self.queue(cpu, intid);
            }
        }
        for intid in NR_PRIVATE..NR_PRIVATE + self.dist.nr_spis {
            kick |= self.queue(0, intid);
        }
        kick
    }

    /// An interrupt line changes level (`KVM_IRQ_LINE`, irqfd, a device model). A rising
    /// edge latches an edge-triggered interrupt; a level-sensitive one follows the line.
    pub(crate) fn set_level(&mut self, cpu: usize, intid: u32, level: bool) -> VcpuMask {
        let Some(irq) = self.irq(cpu, intid) else { return 0 };
        if irq.level {
            if irq.line_level == level {
                return 0;
            }
            irq.line_level = level;
        } else {
            // Edge: every "high" latches, as KVM's injection does (a pulse is high, low).
            irq.line_level = level;
            if !level {
                return 0;
            }
            irq.pending_latch = true;
        }
        self.queue(cpu, intid)
    }

    /// A write of `value` to ICC_SGI1R_EL1 (`group1`) or ICC_SGI0R_EL1 by vCPU `sender`:
    /// makes the SGI pending on each target. A group 0 request reaches only group 0 SGIs;
    /// a group 1 request reaches either (as KVM). Returns the vCPUs to kick.
    pub(crate) fn send_sgi(&mut self, sender: usize, value: u64, group1: bool) -> VcpuMask {
        let req = SgiRequest::decode(value);
        let mut kick = 0;
        for cpu in 0..self.cpus.len() {
            let mpidr = self.cpus[cpu].mpidr;
            let hit = if req.broadcast {
                cpu != sender
            } else {
                req.targets(mpidr)
            };
            if !hit {
                continue;
            }
            let irq = &mut self.cpus[cpu].private[req.intid as usize];
            if !irq.group1 || group1 {
                irq.pending_latch = true;
                kick |= self.queue(cpu, req.intid);
            }
        }
        kick
    }

    /// A guest's ICC_DIR_EL1 write (trapped by ICH_HCR_EL2.TDIR) of `value` on vCPU
    /// `cpu`: deactivates the interrupt, as KVM's `vgic_v3_deactivate`. One in another
    /// vCPU's list register is deactivated when that vCPU's sync folds it back (it is
    /// kicked); any other directly. Returns the vCPUs to kick.
    pub(crate) fn deactivate(&mut self, cpu: usize, value: u64) -> VcpuMask {
        let intid = (value & 0xff_ffff) as u32;
        let Some(irq) = self.irq(cpu, intid) else { return 0 };
        if irq.in_lr {
            // The LR holds the truth (the guest may have acknowledged it since the last
            // sync): its fold applies the deactivation if the LR says active.
            irq.deactivate = true;
            let owner = irq.queued;
            return if usize::from(owner) < self.cpus.len() { 1 << owner } else { 0 };
        }
        if !irq.active {
            return 0;
        }
        irq.active = false;
        if irq.level {
            // As KVM's fold of the pseudo-LR it builds: a level interrupt's latch goes.
            irq.pending_latch = false;
        }
        self.queue(cpu, intid)
    }

    /// Whether vCPU `cpu` has an interrupt it could take now: one on its AP list that is
    /// pending, enabled and of an enabled group (the WFI wake-up condition). The guest's
    /// priority mask is not applied (it lives in ICH_VMCR), so this may wake a vCPU that
    /// masked everything by priority; it never misses an interrupt.
    pub(crate) fn has_pending(&self, cpu: usize) -> bool {
        let Some(c) = self.cpus.get(cpu) else { return false };
        c.ap_list().iter().any(|&id| {
            let id = u32::from(id);
            let irq = if id < NR_PRIVATE {
                &c.private[id as usize]
            } else {
                &self.spis[(id - NR_PRIVATE) as usize]
            };
            let group_on = if irq.group1 { self.dist.enable_grp1 } else { self.dist.enable_grp0 };
            irq.enabled && irq.pending() && group_on
        })
    }

    fn irq_ref(&self, cpu: usize, intid: u32) -> &Irq {
        if intid < NR_PRIVATE {
            &self.cpus[cpu].private[intid as usize]
        } else {
            &self.spis[(intid - NR_PRIVATE) as usize]
        }
    }

    /// The order in which vCPU `cpu`'s AP list fills the list registers (smaller
    /// first), as KVM's `vgic_irq_cmp`: interrupts that are pending (enabled, not active)
    /// before the active ones, so that a guest which took more interrupts than there are
    /// list registers is still presented the next one; then by priority, then INTID.
    fn lr_order(&self, cpu: usize, intid: u32) -> (bool, u8, u32) {
        let irq = self.irq_ref(cpu, intid);
        (!(irq.enabled && irq.pending() && !irq.active), irq.priority, intid)
    }

    /// Fills `lrs` for vCPU `cpu` from its AP list in [`Self::lr_order`]. Edge
    /// interrupts move their pending state into the list register; level ones ask for a
    /// maintenance interrupt on EOI so the line can be sampled again, and are never
    /// listed pending and active at once (KVM's `vgic_v3_populate_lr`): the guest would
    /// take such an interrupt again the moment it EOIs, before the host sees what its
    /// handler did to the line (a timer it masked without trapping). The maintenance exit
    /// presents it again if the line is still high then.
    pub(crate) fn flush(&mut self, cpu: usize, lrs: &mut [u64]) -> Flushed {
        let Some(c) = self.cpus.get(cpu) else { return Flushed::default() };
        let waiting = c.ap_len;
        let active = c.ap_list().iter().filter(|&&id| self.irq_ref(cpu, u32::from(id)).active).count();
        let mut used = 0;
        while used < lrs.len() {
            // Selection by repeated scans: no sort buffer, at most 16 × the list length.
            let mut best: Option<(bool, u8, u32)> = None;
            for &id in self.cpus[cpu].ap_list() {
                let id = u32::from(id);
                if self.irq_ref(cpu, id).in_lr {
                    continue;
                }
                let key = self.lr_order(cpu, id);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            let Some((_, _, intid)) = best else { break };
            let Some(irq) = self.irq(cpu, intid) else { break };
            let pending = irq.pending() && !(irq.level && irq.active);
            let lr = Lr {
                intid,
                priority: irq.priority,
                group1: irq.group1,
                pending,
                active: irq.active,
                eoi: irq.level,
            };
            if !irq.level {
                irq.pending_latch = false;
            }
            irq.in_lr = true;
            lrs[used] = lr.encode();
            used += 1;
        }
        let overflow = waiting > lrs.len();
        Flushed {
            used,
            underflow: waiting > used,
            pending_overflow: waiting - active > lrs.len(),
            active_outside: overflow && active > 0,
        }
    }

    /// Folds the list registers vCPU `cpu` ran with back into the model and queues each
    /// interrupt again by its new state; then replays `eoi_count` deactivations
    /// (`ICH_HCR_EL2.EOIcount`: EOIs, with EOImode 0, of interrupts that were in no list
    /// register). Returns the vCPUs to kick (an interrupt whose routing changed while it
    /// was in a list register moves to another vCPU).
    pub(crate) fn sync(&mut self, cpu: usize, lrs: &[u64], eoi_count: u32) -> VcpuMask {
        let mut kick = self.fold(cpu, lrs);
        // EOImode 0 deactivates in the reverse order of activation, which for nested
        // preemption is the order of priority: the guest EOId the active interrupts
        // that came next after those in its list registers, in `lr_order`.
        for _ in 0..eoi_count {
            let mut best: Option<(bool, u8, u32)> = None;
            let Some(c) = self.cpus.get(cpu) else { break };
            for &id in c.ap_list() {
                let id = u32::from(id);
                let was_in_lr = lrs.iter().any(|&v| Lr::decode(v).intid == id);
                if was_in_lr || !self.irq_ref(cpu, id).active {
                    continue;
                }
                let key = self.lr_order(cpu, id);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
            let Some((_, _, intid)) = best else { break };
            if let Some(irq) = self.irq(cpu, intid) {
                irq.active = false;
                if irq.level {
                    // As a list register's EOI: only the line makes it pending again.
                    irq.pending_latch = false;
                }
            }
            kick |= self.queue(cpu, intid);
        }
        kick & !(1 << cpu)
    }

    fn fold(&mut self, cpu: usize, lrs: &[u64]) -> VcpuMask {
        let mut kick = 0;
        for &v in lrs {
            let lr = Lr::decode(v);
            let Some(irq) = self.irq(cpu, lr.intid) else { continue };
            irq.in_lr = false;
            irq.active = lr.active && !irq.deactivate;
            irq.deactivate = false;
            if irq.level {
                // Taken and deactivated by the guest (in the LR, or by a trapped DIR
                // marked above): only the line can make it pending again (the software
                // latch is consumed, as KVM's fold does).
                if !lr.pending && !irq.active {
                    irq.pending_latch = false;
                }
            } else if lr.pending {
                irq.pending_latch = true;
            }
            kick |= self.queue(cpu, lr.intid);
        }
        kick
    }
}

/// Whether an SPI is on an AP list (pending or active): once a vCPU takes it, its
/// deactivation may come from another vCPU, so every vCPU traps ICC_DIR_EL1 meanwhile
/// (KVM's `active_spis`, counted from the queueing). AP lists are short.
pub(crate) fn any_spi_queued(cpus: &[Cpu]) -> bool {
    cpus.iter().any(|c| c.ap_list().iter().any(|&id| u32::from(id) >= NR_PRIVATE))
}

/// A decoded ICC_SGI1R_EL1 / ICC_SGI0R_EL1 value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SgiRequest {
    pub(crate) intid: u32,
    /// IRM: every PE but the sender.
    pub(crate) broadcast: bool,
    /// Aff3.Aff2.Aff1 of the targets, in MPIDR layout.
    pub(crate) affinity: u64,
    /// TargetList, shifted to Aff0 by RS (Aff0 = RS * 16 + bit).
    pub(crate) target_list: u16,
    pub(crate) range: u8,
}

impl SgiRequest {
    pub(crate) const fn decode(v: u64) -> Self {
        let aff1 = (v >> 16) & 0xff;
        let aff2 = (v >> 32) & 0xff;
        let aff3 = (v >> 48) & 0xff;
        Self {
            intid: ((v >> 24) & 0xf) as u32,
            broadcast: v & (1 << 40) != 0,
            affinity: (aff3 << 32) | (aff2 << 16) | (aff1 << 8),
            target_list: v as u16,
            range: ((v >> 44) & 0xf) as u8,
        }
    }

    /// Whether the PE with `mpidr` is in the target list.
    pub(crate) const fn targets(&self, mpidr: u64) -> bool {
        let aff0 = mpidr & 0xff;
        if mpidr & AFFINITY_MASK & !0xff != self.affinity || aff0 >> 4 != self.range as u64 {
            return false;
        }
        self.target_list & (1 << (aff0 & 0xf)) != 0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::{boxed::Box, vec::Vec};

    /// A two-vCPU VM with 64 SPIs, both groups enabled, and its storage.
    pub(crate) struct Fixture {
        pub(crate) dist: Dist,
        pub(crate) spis: [Irq; 64],
        pub(crate) cpus: [Cpu; 2],
    }

    impl Fixture {
        pub(crate) fn new() -> Box<Self> {
            let mut spis = [Irq::reset(32); 64];
            for (i, irq) in spis.iter_mut().enumerate() {
                *irq = Irq::reset(32 + i as u32);
            }
            Box::new(Self {
                dist: Dist { enable_grp0: true, enable_grp1: true, nr_spis: 64, rev: mmio::IIDR_REV_LATEST },
                spis,
                cpus: [Cpu::new(0x8000_0000), Cpu { id: 1, ..Cpu::new(0x8000_0001) }],
            })
        }

        pub(crate) fn model(&mut self) -> Model<'_> {
            Model { dist: &mut self.dist, spis: &mut self.spis, cpus: &mut self.cpus }
        }
    }

    fn lrs_of(m: &mut Model<'_>, cpu: usize, n: usize) -> ([u64; 16], Flushed) {
        let mut lrs = [0; 16];
        let f = m.flush(cpu, &mut lrs[..n]);
        (lrs, f)
    }

    #[test]
    fn edge_spi_is_delivered_once() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 40).unwrap().enabled = true;
        assert_eq!(m.set_level(0, 40, true), 1);
        assert!(m.has_pending(0));
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(fl, Flushed { used: 1, ..Flushed::default() });
        let lr = Lr::decode(lrs[0]);
        assert_eq!((lr.intid, lr.pending, lr.eoi), (40, true, false));
        // The guest acknowledged and EOId it: the LR comes back empty.
        assert_eq!(m.sync(0, &[Lr { intid: 40, ..lr }.encode() & !lr::LR_PENDING], 0), 0);
        assert!(!m.has_pending(0));
        assert!(m.cpus[0].ap_list().is_empty());
    }

    #[test]
    fn disabled_or_ungrouped_interrupts_wait() {
        let mut f = Fixture::new();
        let mut m = f.model();
        assert_eq!(m.set_level(0, 33, true), 0); // not enabled
        assert!(m.cpus[0].ap_list().is_empty());
        m.irq(0, 33).unwrap().enabled = true;
        m.dist.enable_grp1 = false;
        assert_eq!(m.queue(0, 33), 0);
        m.dist.enable_grp1 = true;
        assert_eq!(m.queue_all(), 1);
        assert_eq!(m.cpus[0].ap_list(), &[33]);
    }

    #[test]
    fn level_interrupt_follows_the_line_and_resamples_on_eoi() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(1, 27).unwrap().enabled = true; // a PPI of vCPU 1
        assert_eq!(m.set_level(1, 27, true), 2);
        let (lrs, _) = lrs_of(&mut m, 1, 4);
        assert!(Lr::decode(lrs[0]).eoi);
        // EOId while the line is still high: pending again, back in the list.
        assert_eq!(m.sync(1, &[lrs[0] & !lr::LR_PENDING], 0), 0);
        assert_eq!(m.cpus[1].ap_list(), &[27]);
        assert!(m.has_pending(1));
        // The line drops: nothing left.
        m.set_level(1, 27, false);
        assert!(!m.has_pending(1));
        assert!(m.cpus[1].ap_list().is_empty());
    }

    #[test]
    fn level_interrupt_is_never_listed_pending_and_active() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 27).unwrap().enabled = true;
        m.set_level(0, 27, true);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        // Acknowledged, then an exit before the handler masked the source: the line is
        // still high, but the LR holds it active only, with an EOI maintenance request.
        m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        let lr = Lr::decode(lrs[0]);
        assert_eq!((lr.intid, lr.active, lr.pending, lr.eoi), (27, true, false, true));
        // The handler silenced the source and EOId: the line drops before the next flush.
        m.sync(0, &[lrs[0] & !lr::LR_ACTIVE], 0);
        m.set_level(0, 27, false);
        assert!(!m.has_pending(0));
        assert_eq!(lrs_of(&mut m, 0, 4).1.used, 0);
        // A software-pending (ISPENDR) level interrupt keeps its latch until deactivated.
        m.irq(0, 27).unwrap().pending_latch = true;
        m.queue(0, 27);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        assert!(m.irq(0, 27).unwrap().pending_latch);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        assert!(!Lr::decode(lrs[0]).pending);
        m.sync(0, &[lrs[0] & !lr::LR_ACTIVE], 0);
        assert!(!m.irq(0, 27).unwrap().pending_latch);
        assert!(!m.has_pending(0));
    }

    #[test]
    fn nested_preemption_beyond_the_list_registers() {
        // vgic_irq's preemption test with 4 LRs: SPIs 32.. with falling priority values
        // arrive one by one; the guest acknowledges each and EOIs none until the end.
        let mut f = Fixture::new();
        let mut m = f.model();
        let mut lrs = [0u64; 4];
        let mut used = 0;
        for n in 0..8u32 {
            let intid = 32 + n;
            let irq = m.irq(0, intid).unwrap();
            irq.enabled = true;
            irq.priority = (0xf0 - 8 * n) as u8;
            m.sync(0, &lrs[..used], 0);
            m.set_level(0, intid, true);
            let fl = m.flush(0, &mut lrs);
            used = fl.used;
            // The new pending interrupt always gets a list register.
            let first = Lr::decode(lrs[0]);
            assert_eq!((first.intid, first.pending, first.active), (intid, true, false));
            assert_eq!(fl.active_outside, n >= 4);
            // Acknowledged: active in its LR.
            lrs[0] = (lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE;
        }
        // The guest EOIs all eight, most recent first: the three others in LRs (39's
        // lower neighbours 38, 37, 36) directly, the remaining four through EOIcount.
        let in_lrs: Vec<u32> = lrs[..used].iter().map(|&v| Lr::decode(v).intid).collect();
        assert_eq!(in_lrs, [39, 38, 37, 36]);
        let done: Vec<u64> = lrs[..used].iter().map(|&v| v & !lr::LR_ACTIVE).collect();
        m.sync(0, &done, 4);
        for intid in 32..40 {
            assert!(!m.irq(0, intid).unwrap().active, "{intid} still active");
        }
        assert!(m.cpus[0].ap_list().is_empty());
    }

    #[test]
    fn dir_consumes_a_level_interrupts_software_latch() {
        // vgic_irq with EOI split: a level SPI made pending by an ISPENDR write, taken,
        // its line never high; ICC_DIR_EL1 traps while it is in the LR (still active there).
        let mut f = Fixture::new();
        let mut m = f.model();
        let irq = m.irq(0, 32).unwrap();
        irq.enabled = true;
        irq.level = true;
        irq.pending_latch = true;
        m.queue(0, 32);
        let mut lrs = [0u64; 4];
        m.flush(0, &mut lrs);
        let taken = (lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE;
        assert_eq!(m.deactivate(0, 32), 1);
        m.sync(0, &[taken], 0);
        let irq = m.irq(0, 32).unwrap();
        assert!(!irq.active && !irq.pending_latch);
        assert!(!m.has_pending(0));
        // The same outside any LR: deactivated at once, latch gone too.
        let irq = m.irq(0, 33).unwrap();
        irq.level = true;
        irq.active = true;
        irq.pending_latch = true;
        m.queue(0, 33);
        m.deactivate(0, 33);
        let irq = m.irq(0, 33).unwrap();
        assert!(!irq.active && !irq.pending_latch);
    }

    #[test]
    fn dir_from_another_vcpu() {
        // vgic_irq's asym_dir: SPI 32 acknowledged on vCPU 0 (active in its LR), then
        // deactivated by vCPU 1's ICC_DIR_EL1.
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 32).unwrap().enabled = true;
        m.set_level(0, 32, true);
        let mut lrs = [0u64; 4];
        m.flush(0, &mut lrs[..4]);
        m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        let fl = m.flush(0, &mut lrs[..4]);
        assert_eq!(fl.used, 1);
        assert!(any_spi_queued(m.cpus));
        // Acknowledged inside the guest since the last sync: the model still says
        // pending, the LR active; the deactivation waits for the fold all the same.
        let mut fresh = Fixture::new();
        let mut m2 = fresh.model();
        m2.irq(0, 32).unwrap().enabled = true;
        m2.set_level(0, 32, true);
        let mut l2 = [0u64; 1];
        m2.flush(0, &mut l2);
        assert_eq!(m2.deactivate(1, 32), 1);
        m2.sync(0, &[(l2[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        assert!(!m2.irq(0, 32).unwrap().active);
        // In vCPU 0's LR: vCPU 0 is kicked, its sync drops the active state.
        assert_eq!(m.deactivate(1, 32), 1);
        assert!(m.irq(0, 32).unwrap().active);
        m.sync(0, &lrs[..1], 0);
        assert!(!m.irq(0, 32).unwrap().active);
        assert!(!any_spi_queued(m.cpus));
        assert!(m.cpus[0].ap_list().is_empty());
        // Not in an LR: at once. Not active, or no such INTID: nothing.
        m.irq(0, 33).unwrap().active = true;
        m.queue(0, 33);
        assert_eq!(m.deactivate(1, 33), 0);
        assert!(!m.irq(0, 33).unwrap().active);
        assert_eq!(m.deactivate(1, 33), 0);
        assert_eq!(m.deactivate(1, 1000), 0);
    }

    #[test]
    fn eoi_count_deactivates_the_most_urgent_outside_first() {
        let mut f = Fixture::new();
        let mut m = f.model();
        for (intid, prio) in [(40, 0x40), (41, 0x20), (42, 0x30)] {
            let irq = m.irq(0, intid).unwrap();
            irq.active = true;
            irq.priority = prio;
            m.queue(0, intid);
        }
        // 41 was in the one LR; one EOI of another: 42 (0x30) goes before 40 (0x40).
        let mut lrs = [0u64; 1];
        let fl = m.flush(0, &mut lrs);
        assert_eq!(Lr::decode(lrs[0]).intid, 41);
        assert!(fl.active_outside && !fl.pending_overflow);
        m.sync(0, &lrs, 1);
        assert!(m.irq(0, 41).unwrap().active && !m.irq(0, 42).unwrap().active);
        assert!(m.irq(0, 40).unwrap().active);
    }

    #[test]
    fn active_interrupt_stays_listed_until_deactivated() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 34).unwrap().enabled = true;
        m.set_level(0, 34, true);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        // Acknowledged, not yet EOId: active in the LR.
        let active = (lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE;
        m.sync(0, &[active], 0);
        assert_eq!(m.cpus[0].ap_list(), &[34]);
        assert!(!m.has_pending(0));
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(fl.used, 1);
        assert!(Lr::decode(lrs[0]).active);
    }

    #[test]
    fn flush_orders_by_priority_and_overflows() {
        let mut f = Fixture::new();
        let mut m = f.model();
        for (intid, prio) in [(40, 0x80), (41, 0x10), (42, 0x40), (43, 0x10), (44, 0xf0), (45, 0)] {
            let irq = m.irq(0, intid).unwrap();
            irq.enabled = true;
            irq.priority = prio;
            m.set_level(0, intid, true);
        }
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(fl, Flushed { used: 4, underflow: true, pending_overflow: true, active_outside: false });
        let got: Vec<u32> = lrs[..4].iter().map(|&v| Lr::decode(v).intid).collect();
        assert_eq!(got, [45, 41, 43, 42]);
        // The guest took all four; the other two follow on the next flush.
        let done: Vec<u64> = lrs[..4].iter().map(|&v| v & !lr::LR_PENDING).collect();
        m.sync(0, &done, 0);
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(fl, Flushed { used: 2, ..Flushed::default() });
        assert_eq!(Lr::decode(lrs[0]).intid, 40);
        assert_eq!(Lr::decode(lrs[1]).intid, 44);
    }

    #[test]
    fn edge_reasserted_while_in_lr_is_kept() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 50).unwrap().enabled = true;
        m.set_level(0, 50, true);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.set_level(0, 50, false);
        // Fires again while in the LR: the vCPU is kicked, the latch kept.
        assert_eq!(m.set_level(0, 50, true), 1);
        m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        let irq = *m.irq(0, 50).unwrap();
        assert!(irq.pending_latch && irq.active);
    }

    #[test]
    fn spi_routing() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.irq(0, 60).unwrap().enabled = true;
        assert_eq!(m.set_route(60, 0x1), 0);
        assert_eq!(m.set_level(0, 60, true), 2);
        assert_eq!(m.cpus[1].ap_list(), &[60]);
        // Re-routed while pending: moves to vCPU 0.
        assert_eq!(m.set_route(60, 0), 1);
        assert!(m.cpus[1].ap_list().is_empty());
        assert_eq!(m.cpus[0].ap_list(), &[60]);
        // No vCPU with that affinity: it waits.
        assert_eq!(m.set_route(60, 0x0100), 0);
        assert!(m.cpus[0].ap_list().is_empty());
    }

    #[test]
    fn sgi_targets() {
        let mut f = Fixture::new();
        let mut m = f.model();
        // SGI 3 to Aff0 1 (vCPU 1) from vCPU 0.
        assert_eq!(m.send_sgi(0, (3 << 24) | 0b10, true), 2);
        assert_eq!(m.cpus[1].ap_list(), &[3]);
        // Broadcast from vCPU 1 reaches vCPU 0 only.
        assert_eq!(m.send_sgi(1, (5 << 24) | (1 << 40), true), 1);
        // Wrong Aff1 or range: nobody.
        assert_eq!(m.send_sgi(0, (1 << 16) | 0b11, true), 0);
        assert_eq!(m.send_sgi(0, (1 << 44) | 0b11, true), 0);
        // A group 0 request does not reach a group 1 SGI.
        assert_eq!(m.send_sgi(0, (7 << 24) | 0b11, false), 0);
        m.cpus[0].private[7].group1 = false;
        assert_eq!(m.send_sgi(1, (7 << 24) | 0b01, false), 1);
    }

    #[test]
    fn sgi_request_decode() {
        let r = SgiRequest::decode((0x12 << 48) | (0x34 << 32) | (0x56 << 16) | (9 << 24) | (2 << 44) | 0x8001);
        assert_eq!(r.intid, 9);
        assert_eq!(r.affinity, 0x12_0034_5600);
        assert_eq!(r.range, 2);
        assert!(r.targets(0x12_0034_5620));
        assert!(r.targets(0x12_0034_562f));
        assert!(!r.targets(0x12_0034_5621));
        assert!(!r.targets(0x12_0034_5600));
    }

    #[test]
    fn pending_for_wfi() {
        let mut f = Fixture::new();
        let mut m = f.model();
        assert!(!m.has_pending(0));
        // A pending SGI (enabled at reset) wakes its target only.
        m.send_sgi(1, (4 << 24) | 1, true);
        assert!(m.has_pending(0) && !m.has_pending(1));
        // Active only (taken, not EOId): nothing new to take.
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0);
        assert!(!m.has_pending(0));
        // Group 1 disabled at the distributor: a pending PPI does not count.
        m.dist.enable_grp1 = false;
        m.irq(1, 30).unwrap().enabled = true;
        m.set_level(1, 30, true);
        assert!(!m.has_pending(1));
        assert!(!m.has_pending(7)); // no such vCPU
    }

    #[test]
    fn reset_values() {
        let sgi = Irq::reset(3);
        assert!(sgi.enabled && !sgi.level && sgi.group1);
        let ppi = Irq::reset(27);
        assert!(!ppi.enabled && ppi.level);
        let spi = Irq::reset(40);
        assert!(!spi.level && spi.target == 0);
    }
}
