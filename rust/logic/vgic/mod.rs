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
//!
//! LPIs (INTIDs [`LPI_BASE`]..64Ki, only with an ITS) live in storage the kernel layer
//! lends ([`Model::lpis`], empty without an ITS). Up to 57344 of them could be pending on
//! one vCPU, so instead of the AP list each vCPU has a bitmap of its queued LPIs with a
//! summary level and a count ([`Model::lpi_queues`], [`Cpu::nothing_queued`]): flush and
//! wake-up checks cost nothing while no LPI is queued. An LPI is edge-triggered, group 1,
//! configured by its property byte and has no active state outside a list register.

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

/// The first LPI, and the INTID bits offered with an ITS (KVM's `INTERRUPT_ID_BITS_ITS`).
pub(crate) const LPI_BASE: u32 = 8192;
pub(crate) const LPI_ID_BITS: u32 = 16;
pub(crate) const NR_LPIS: usize = (1 << LPI_ID_BITS) - LPI_BASE as usize;
/// A vCPU's queued-LPI bitmap in [`Model::lpi_queues`]: one bit per LPI, then one summary
/// bit per bitmap word that is not zero.
pub(crate) const LPI_BITMAP_WORDS: usize = NR_LPIS / 64;
pub(crate) const LPI_QUEUE_WORDS: usize = LPI_BITMAP_WORDS + LPI_BITMAP_WORDS.div_ceil(64);
/// The property byte: bit 0 enables the LPI, [7:2] are its priority.
pub(crate) const LPI_PROP_ENABLE: u8 = 1;
pub(crate) const LPI_PROP_PRIORITY: u8 = 0xfc;

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

/// One LPI's state, indexed by `intid - LPI_BASE` in [`Model::lpis`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lpi {
    /// ITEs mapping it: the LPI exists while this is not zero.
    pub(crate) refs: u32,
    /// The vCPU of its ITS collection, or [`NONE`].
    pub(crate) target: u16,
    /// The vCPU whose LPI queue holds it, or [`NONE`].
    pub(crate) queued: u16,
    /// The property-table byte ([`LPI_PROP_ENABLE`], [`LPI_PROP_PRIORITY`]).
    pub(crate) config: u8,
    pub(crate) pending: bool,
    /// In a list register of its `queued` vCPU.
    pub(crate) in_lr: bool,
    /// The list register holding it speaks for an earlier state (the LPI was unmapped and
    /// mapped again, or its redistributor disabled LPIs): the fold ignores its pending bit.
    pub(crate) discard: bool,
}

impl Lpi {
    /// Not mapped by any ITE.
    pub(crate) const UNMAPPED: Self = Self {
        refs: 0,
        target: NONE,
        queued: NONE,
        config: 0,
        pending: false,
        in_lr: false,
        discard: false,
    };
}

/// The queued LPIs of one vCPU (its [`LPI_QUEUE_WORDS`] of [`Model::lpi_queues`]), as
/// INTIDs in increasing order; the summary words skip empty stretches.
struct QueuedLpis<'q> {
    q: &'q [u64],
    next: usize,
}

impl Iterator for QueuedLpis<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let i = next_queued(self.q, self.next)?;
        self.next = i + 1;
        Some(LPI_BASE + i as u32)
    }
}

/// The first set bit at or after `from` in a queue's bitmap.
fn next_queued(q: &[u64], from: usize) -> Option<usize> {
    if q.len() < LPI_QUEUE_WORDS || from >= NR_LPIS {
        return None;
    }
    let (bits, summary) = q.split_at(LPI_BITMAP_WORDS);
    let w = from / 64;
    let here = bits[w] & (u64::MAX << (from % 64));
    if here != 0 {
        return Some(w * 64 + here.trailing_zeros() as usize);
    }
    let w = w + 1;
    if w >= LPI_BITMAP_WORDS {
        return None;
    }
    let mut s = w / 64;
    let mut mask = summary[s] & (u64::MAX << (w % 64));
    loop {
        if mask != 0 {
            let word = s * 64 + mask.trailing_zeros() as usize;
            return Some(word * 64 + bits[word].trailing_zeros() as usize);
        }
        s += 1;
        mask = *summary.get(s)?;
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
    /// The VM has an ITS: the LPI registers exist (set by the kernel layer when it lends
    /// LPI storage; without it they read as zero and ignore writes).
    pub(crate) lpis: bool,
    /// GICR_PROPBASER, one for the whole VM (written through any redistributor).
    pub(crate) propbaser: u64,
    /// Mapped LPIs (`refs` not zero), so VM-wide passes skip the storage when none is.
    pub(crate) lpis_mapped: u32,
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
    /// GICR_CTLR.EnableLPIs: LPIs targeting this vCPU are delivered.
    pub(crate) lpis_enabled: bool,
    /// GICR_PENDBASER as stored (PTZ included; reads hide it).
    pub(crate) pendbaser: u64,
    ap: [u16; AP_CAP],
    ap_len: usize,
    /// LPIs in this vCPU's queue bitmap.
    lpis_queued: u32,
}

impl Cpu {
    pub(crate) fn new(mpidr: u64) -> Self {
        let mut private = [Irq::reset(0); NR_PRIVATE as usize];
        for (i, irq) in private.iter_mut().enumerate() {
            *irq = Irq::reset(i as u32);
        }
        Self {
            private,
            mpidr,
            id: 0,
            pri_bits: 5,
            id_bits: 0,
            last: false,
            lpis_enabled: false,
            pendbaser: 0,
            ap: [0; AP_CAP],
            ap_len: 0,
            lpis_queued: 0,
        }
    }

    /// Nothing is queued (AP list and LPI queue empty): the negation of the vCPU's
    /// `request::VGIC_QUEUED`, with which it skips the lock on entry and WFI checks.
    pub(crate) fn nothing_queued(&self) -> bool {
        self.ap_len == 0 && self.lpis_queued == 0
    }

    /// How many LPIs are queued on this vCPU.
    #[cfg(test)]
    pub(crate) fn lpis_queued(&self) -> u32 {
        self.lpis_queued
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
    /// LPIs by `intid - LPI_BASE` ([`NR_LPIS`] of them, [`Lpi::UNMAPPED`] initially), or
    /// empty without an ITS: then every LPI operation is a no-op.
    pub(crate) lpis: &'a mut [Lpi],
    /// Per vCPU index, [`LPI_QUEUE_WORDS`] zeroed words: its queued LPIs. Empty without an
    /// ITS.
    pub(crate) lpi_queues: &'a mut [u64],
}

impl Model<'_> {
    /// Interrupt `intid` as seen by vCPU `cpu` (private ones are banked per vCPU).
    pub(crate) fn irq(&mut self, cpu: usize, intid: u32) -> Option<&mut Irq> {
        if intid < NR_PRIVATE {
            self.cpus
                .get_mut(cpu)
                .map(|c| &mut c.private[intid as usize])
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
            intid - NR_PRIVATE < self.dist.nr_spis
                && ((intid - NR_PRIVATE) as usize) < self.spis.len()
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
        let owner = if intid < NR_PRIVATE {
            cpu as u16
        } else {
            irq.target
        };
        if irq.active {
            return if irq.queued != NONE {
                irq.queued
            } else {
                owner
            };
        }
        let group_on = if irq.group1 {
            self.dist.enable_grp1
        } else {
            self.dist.enable_grp0
        };
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
        let Some(irq) = self.irq(cpu, intid).copied() else {
            return 0;
        };
        let target = self.oracle(cpu, intid, &irq);
        if irq.in_lr {
            // Its vCPU's sync folds it back and queues it again.
            return if target == irq.queued && target != NONE {
                1 << target
            } else {
                0
            };
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
        kick | self.lpi_queue_where(|_| true)
    }

    /// An interrupt line changes level (`KVM_IRQ_LINE`, irqfd, a device model). A rising
    /// edge latches an edge-triggered interrupt; a level-sensitive one follows the line.
    pub(crate) fn set_level(&mut self, cpu: usize, intid: u32, level: bool) -> VcpuMask {
        let Some(irq) = self.irq(cpu, intid) else {
            return 0;
        };
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
        let Some(irq) = self.irq(cpu, intid) else {
            return 0;
        };
        if irq.in_lr {
            // The LR holds the truth (the guest may have acknowledged it since the last
            // sync): its fold applies the deactivation if the LR says active.
            irq.deactivate = true;
            let owner = irq.queued;
            return if usize::from(owner) < self.cpus.len() {
                1 << owner
            } else {
                0
            };
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
        let Some(c) = self.cpus.get(cpu) else {
            return false;
        };
        c.ap_list().iter().any(|&id| {
            let id = u32::from(id);
            let irq = if id < NR_PRIVATE {
                &c.private[id as usize]
            } else {
                &self.spis[(id - NR_PRIVATE) as usize]
            };
            let group_on = if irq.group1 {
                self.dist.enable_grp1
            } else {
                self.dist.enable_grp0
            };
            irq.enabled && irq.pending() && group_on
        }) || (c.lpis_queued != 0
            && self
                .queued_lpis(cpu)
                .any(|id| self.lpi_ref(id).is_some_and(|l| l.pending)))
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
        (
            !(irq.enabled && irq.pending() && !irq.active),
            irq.priority,
            intid,
        )
    }

    /// Fills `lrs` for vCPU `cpu` from its AP list in [`Self::lr_order`]. Edge
    /// interrupts move their pending state into the list register; level ones ask for a
    /// maintenance interrupt on EOI so the line can be sampled again, and are never
    /// listed pending and active at once (KVM's `vgic_v3_populate_lr`): the guest would
    /// take such an interrupt again the moment it EOIs, before the host sees what its
    /// handler did to the line (a timer it masked without trapping). The maintenance exit
    /// presents it again if the line is still high then.
    pub(crate) fn flush(&mut self, cpu: usize, lrs: &mut [u64]) -> Flushed {
        let Some(c) = self.cpus.get(cpu) else {
            return Flushed::default();
        };
        let waiting = c.ap_len + c.lpis_queued as usize;
        // LPIs are never active outside a list register (the fold drops the state).
        let active = c
            .ap_list()
            .iter()
            .filter(|&&id| self.irq_ref(cpu, u32::from(id)).active)
            .count();
        // One pass keeps the best `n` candidates in order: no sort buffer beyond the
        // list-register count.
        let n = lrs.len().min(lr::MAX_LRS);
        let mut best = [(true, 0u8, 0u32); lr::MAX_LRS];
        let mut found = 0;
        let mut offer = |key: (bool, u8, u32)| {
            if found == n && (n == 0 || key >= best[n - 1]) {
                return;
            }
            let mut i = found.min(n - 1);
            while i > 0 && key < best[i - 1] {
                best[i] = best[i - 1];
                i -= 1;
            }
            best[i] = key;
            found = (found + 1).min(n);
        };
        for &id in self.cpus[cpu].ap_list() {
            let id = u32::from(id);
            if !self.irq_ref(cpu, id).in_lr {
                offer(self.lr_order(cpu, id));
            }
        }
        if self.cpus[cpu].lpis_queued != 0 {
            for id in self.queued_lpis(cpu) {
                // A queued LPI out of a list register is pending and enabled.
                if let Some(l) = self.lpi_ref(id).filter(|l| !l.in_lr) {
                    offer((false, l.config & LPI_PROP_PRIORITY, id));
                }
            }
        }
        let mut used = 0;
        for &(_, _, intid) in &best[..found] {
            let lr = if intid >= LPI_BASE {
                let Some(l) = self.lpi_mut(intid) else { break };
                // Edge, group 1, no EOI maintenance (KVM's `vgic_v3_compute_lr`).
                l.pending = false;
                l.in_lr = true;
                Lr {
                    intid,
                    priority: l.config & LPI_PROP_PRIORITY,
                    group1: true,
                    pending: true,
                    active: false,
                    eoi: false,
                }
            } else {
                let Some(irq) = self.irq(cpu, intid) else {
                    break;
                };
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
                lr
            };
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
            if lr.intid >= LPI_BASE {
                kick |= self.lpi_fold(lr);
                continue;
            }
            let Some(irq) = self.irq(cpu, lr.intid) else {
                continue;
            };
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

/// LPIs. The ITS and the redistributor registers change them; INTIDs outside the lent
/// storage (all of them without an ITS) are no such interrupt.
impl Model<'_> {
    fn lpi_ref(&self, intid: u32) -> Option<&Lpi> {
        self.lpis.get(intid.checked_sub(LPI_BASE)? as usize)
    }

    fn lpi_mut(&mut self, intid: u32) -> Option<&mut Lpi> {
        self.lpis.get_mut(intid.checked_sub(LPI_BASE)? as usize)
    }

    /// A mapped LPI.
    fn lpi_live(&mut self, intid: u32) -> Option<&mut Lpi> {
        self.lpi_mut(intid).filter(|l| l.refs != 0)
    }

    fn queued_lpis(&self, cpu: usize) -> QueuedLpis<'_> {
        let q = self
            .lpi_queues
            .get(cpu * LPI_QUEUE_WORDS..(cpu + 1) * LPI_QUEUE_WORDS)
            .unwrap_or(&[]);
        QueuedLpis { q, next: 0 }
    }

    /// Sets or clears LPI `intid`'s bit in vCPU `cpu`'s queue; `false` if that vCPU has
    /// no queue.
    fn lpi_queue_bit(&mut self, cpu: usize, intid: u32, on: bool) -> bool {
        let Some(q) = self
            .lpi_queues
            .get_mut(cpu * LPI_QUEUE_WORDS..(cpu + 1) * LPI_QUEUE_WORDS)
        else {
            return false;
        };
        let Some(c) = self.cpus.get_mut(cpu) else {
            return false;
        };
        let i = (intid - LPI_BASE) as usize;
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        let was = q[w] & bit != 0;
        if on {
            q[w] |= bit;
            q[LPI_BITMAP_WORDS + w / 64] |= 1 << (w % 64);
        } else {
            q[w] &= !bit;
            if q[w] == 0 {
                q[LPI_BITMAP_WORDS + w / 64] &= !(1 << (w % 64));
            }
        }
        match (was, on) {
            (false, true) => c.lpis_queued += 1,
            (true, false) => c.lpis_queued -= 1,
            _ => {}
        }
        true
    }

    /// Where the LPI must be presented: its target, if it is mapped, pending, enabled by
    /// its property byte, group 1 is enabled and the target's redistributor has
    /// EnableLPIs set; otherwise nowhere. (KVM refuses MSIs to a redistributor with LPIs
    /// disabled and drops the pending state when they are disabled; gating here also
    /// holds back an LPI mapped or moved pending to such a redistributor.)
    fn lpi_oracle(&self, l: &Lpi) -> u16 {
        if l.refs == 0 || !l.pending || l.config & LPI_PROP_ENABLE == 0 || !self.dist.enable_grp1 {
            return NONE;
        }
        match self.cpus.get(usize::from(l.target)) {
            Some(c) if c.lpis_enabled => l.target,
            _ => NONE,
        }
    }

    /// Puts LPI `intid` on the queue its state calls for, as [`Self::queue`]. One in a
    /// list register stays with that vCPU until its fold; the vCPU is kicked if the LPI
    /// must be presented (again, or elsewhere).
    fn lpi_queue(&mut self, intid: u32) -> VcpuMask {
        let Some(l) = self.lpi_ref(intid).copied() else {
            return 0;
        };
        let target = self.lpi_oracle(&l);
        let nr = self.cpus.len();
        if l.in_lr {
            // Kicked to present it again, or to fold it soon when it must go elsewhere.
            let kick = target != NONE || l.target != l.queued;
            return if kick && usize::from(l.queued) < nr {
                1 << l.queued
            } else {
                0
            };
        }
        if l.queued != target {
            if l.queued != NONE {
                self.lpi_queue_bit(usize::from(l.queued), intid, false);
            }
            let queued = if target != NONE && self.lpi_queue_bit(usize::from(target), intid, true) {
                target
            } else {
                NONE
            };
            if let Some(l) = self.lpi_mut(intid) {
                l.queued = queued;
            }
        }
        if target == NONE || usize::from(target) >= nr {
            0
        } else {
            1 << target
        }
    }

    /// Queues again every mapped LPI that `pick` selects.
    fn lpi_queue_where(&mut self, pick: impl Fn(&Lpi) -> bool) -> VcpuMask {
        let mut kick = 0;
        let mut left = self.dist.lpis_mapped;
        let mut i = 0;
        while left != 0 && i < self.lpis.len() {
            let l = self.lpis[i];
            if l.refs != 0 {
                left -= 1;
                if pick(&l) {
                    kick |= self.lpi_queue(LPI_BASE + i as u32);
                }
            }
            i += 1;
        }
        kick
    }

    /// Folds a list register holding an LPI back (KVM's fold: the active state is
    /// dropped, as the guest's EOI removes it and no EOIcount follows for an LPI outside
    /// the list registers; a pending bit is kept, unless the LPI is gone or `discard`).
    fn lpi_fold(&mut self, lr: Lr) -> VcpuMask {
        let Some(l) = self.lpi_mut(lr.intid) else {
            return 0;
        };
        if !l.in_lr {
            return 0;
        }
        l.in_lr = false;
        if lr.pending && l.refs != 0 && !l.discard {
            l.pending = true;
        }
        l.discard = false;
        self.lpi_queue(lr.intid)
    }

    /// Whether vCPU `cpu`'s redistributor has EnableLPIs set (MSIs to it are refused).
    pub(crate) fn lpis_enabled(&self, cpu: usize) -> bool {
        self.cpus.get(cpu).is_some_and(|c| c.lpis_enabled)
    }

    /// Takes a reference on LPI `intid`, targeting vCPU `target` ([`NONE`]: an unmapped
    /// collection). When it had none the LPI is created with property byte `config` and
    /// pending state `pending` (read by the caller from the guest's tables). `Err` for an
    /// INTID outside the storage, or too many references.
    pub(crate) fn lpi_map(
        &mut self,
        intid: u32,
        target: u16,
        config: u8,
        pending: bool,
    ) -> Result<VcpuMask, ()> {
        let l = self.lpi_mut(intid).ok_or(())?;
        let refs = l.refs.checked_add(1).ok_or(())?;
        if l.refs == 0 {
            // A list register may still hold its previous life: that LR's fold must not
            // make the new one pending.
            l.discard = l.in_lr;
            l.config = config;
            l.pending = pending;
            self.dist.lpis_mapped += 1;
        }
        let l = self.lpi_mut(intid).ok_or(())?;
        l.refs = refs;
        l.target = target;
        Ok(self.lpi_queue(intid))
    }

    /// Drops a reference on LPI `intid`; at zero the LPI goes: its pending state is lost
    /// and it leaves its queue (from a list register, at the fold).
    pub(crate) fn lpi_unmap(&mut self, intid: u32) -> VcpuMask {
        let Some(l) = self.lpi_live(intid) else {
            return 0;
        };
        l.refs -= 1;
        if l.refs != 0 {
            return 0;
        }
        l.pending = false;
        l.target = NONE;
        self.dist.lpis_mapped -= 1;
        self.lpi_queue(intid)
    }

    /// Retargets LPI `intid` (MOVI, MAPC of its collection) to vCPU `target`.
    pub(crate) fn lpi_set_target(&mut self, intid: u32, target: u16) -> VcpuMask {
        self.lpi_update(intid, |l| l.target = target)
    }

    /// Sets or clears LPI `intid`'s pending state (an MSI, INT, CLEAR).
    pub(crate) fn lpi_set_pending(&mut self, intid: u32, pending: bool) -> VcpuMask {
        self.lpi_update(intid, |l| l.pending = pending)
    }

    /// Applies LPI `intid`'s property byte (INV, INVALL, GICR_INVLPIR / INVALLR).
    pub(crate) fn lpi_set_config(&mut self, intid: u32, config: u8) -> VcpuMask {
        self.lpi_update(intid, |l| l.config = config)
    }

    /// Changes a mapped LPI with `f` and queues it by its new state (nothing for an LPI
    /// no ITE maps).
    fn lpi_update(&mut self, intid: u32, f: impl FnOnce(&mut Lpi)) -> VcpuMask {
        let Some(l) = self.lpi_live(intid) else {
            return 0;
        };
        f(l);
        self.lpi_queue(intid)
    }

    /// MOVALL: every LPI targeting vCPU `from` targets `to`.
    pub(crate) fn lpi_move_all(&mut self, from: u16, to: u16) -> VcpuMask {
        if from == to {
            return 0;
        }
        let mut kick = 0;
        let mut i = 0;
        while i < self.lpis.len() {
            if self.lpis[i].refs != 0 && self.lpis[i].target == from {
                kick |= self.lpi_set_target(LPI_BASE + i as u32, to);
            }
            i += 1;
        }
        kick
    }

    /// A mapped LPI's pending state and target.
    pub(crate) fn lpi_state(&self, intid: u32) -> Option<(bool, u16)> {
        self.lpi_ref(intid)
            .filter(|l| l.refs != 0)
            .map(|l| (l.pending, l.target))
    }

    /// The mapped LPIs targeting vCPU `cpu` (all of them for `None`), in INTID order.
    pub(crate) fn lpis_of(&self, cpu: Option<u16>) -> impl Iterator<Item = u32> + '_ {
        self.lpis
            .iter()
            .enumerate()
            .filter(move |(_, l)| l.refs != 0 && cpu.is_none_or(|c| l.target == c))
            .map(|(i, _)| LPI_BASE + i as u32)
    }

    /// Loads the pending bits of the LPIs targeting vCPU `cpu` from a copy of its pending
    /// table (bit n of byte n / 8 for INTID n; what the table does not cover is left
    /// alone), as KVM's `its_sync_lpi_pending_table` when EnableLPIs is set.
    pub(crate) fn lpi_load_pending(&mut self, cpu: u16, table: &[u8]) -> VcpuMask {
        let mut kick = 0;
        for i in 0..self.lpis.len() {
            let l = self.lpis[i];
            let intid = LPI_BASE + i as u32;
            if l.refs == 0 || l.target != cpu {
                continue;
            }
            if let Some(byte) = table.get(intid as usize / 8) {
                kick |= self.lpi_set_pending(intid, byte & (1 << (intid % 8)) != 0);
            }
        }
        kick
    }

    /// Stores the pending bits of the LPIs targeting vCPU `cpu` into a copy of its
    /// pending table (`SAVE_PENDING_TABLES`); returns whether a bit changed.
    pub(crate) fn lpi_store_pending(&self, cpu: u16, table: &mut [u8]) -> bool {
        let mut changed = false;
        for intid in self.lpis_of(Some(cpu)) {
            let pending = self.lpi_ref(intid).is_some_and(|l| l.pending);
            let Some(byte) = table.get_mut(intid as usize / 8) else {
                continue;
            };
            let bit = 1 << (intid % 8);
            let new = if pending { *byte | bit } else { *byte & !bit };
            changed |= new != *byte;
            *byte = new;
        }
        changed
    }

    /// Loads the property bytes of the mapped LPIs (those targeting `cpu` if given: INVALL,
    /// GICR_INVALLR) from a copy of the property table (byte n for INTID 8192 + n; what
    /// it does not cover is left alone), as KVM's `update_lpi_config`.
    pub(crate) fn lpi_load_config(&mut self, cpu: Option<u16>, prop: &[u8]) -> VcpuMask {
        let mut kick = 0;
        for (i, &p) in prop.iter().enumerate().take(self.lpis.len()) {
            let l = self.lpis[i];
            if l.refs != 0 && cpu.is_none_or(|c| l.target == c) {
                kick |= self.lpi_set_config(LPI_BASE + i as u32, p);
            }
        }
        kick
    }

    /// EnableLPIs set on vCPU `cpu`'s redistributor: its pending LPIs are delivered.
    fn lpis_enable(&mut self, cpu: usize) -> VcpuMask {
        let Some(c) = self.cpus.get_mut(cpu) else {
            return 0;
        };
        c.lpis_enabled = true;
        self.lpi_queue_where(|l| usize::from(l.target) == cpu)
    }

    /// EnableLPIs cleared: the LPIs queued on the vCPU lose their pending state and leave
    /// its queue, as KVM's `vgic_flush_pending_lpis` (one in a list register when its
    /// fold comes).
    fn lpis_disable(&mut self, cpu: usize) -> VcpuMask {
        let Some(c) = self.cpus.get_mut(cpu) else {
            return 0;
        };
        c.lpis_enabled = false;
        let mut kick = 0;
        let mut next = 0;
        let words = cpu * LPI_QUEUE_WORDS..(cpu + 1) * LPI_QUEUE_WORDS;
        while let Some(i) = self
            .lpi_queues
            .get(words.clone())
            .and_then(|q| next_queued(q, next))
        {
            next = i + 1;
            let intid = LPI_BASE + i as u32;
            if let Some(l) = self.lpi_mut(intid) {
                l.pending = false;
                l.discard |= l.in_lr;
            }
            kick |= self.lpi_queue(intid);
        }
        kick
    }
}

/// Whether an SPI is on an AP list (pending or active): once a vCPU takes it, its
/// deactivation may come from another vCPU, so every vCPU traps ICC_DIR_EL1 meanwhile
/// (KVM's `active_spis`, counted from the queueing). AP lists are short.
pub(crate) fn any_spi_queued(cpus: &[Cpu]) -> bool {
    cpus.iter()
        .any(|c| c.ap_list().iter().any(|&id| u32::from(id) >= NR_PRIVATE))
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
    use std::{boxed::Box, vec, vec::Vec};

    /// A two-vCPU VM with 64 SPIs, both groups enabled, and its storage; LPI storage only
    /// [`Fixture::with_its`].
    pub(crate) struct Fixture {
        pub(crate) dist: Dist,
        pub(crate) spis: [Irq; 64],
        pub(crate) cpus: [Cpu; 2],
        pub(crate) lpis: Vec<Lpi>,
        pub(crate) lpi_queues: Vec<u64>,
    }

    impl Fixture {
        pub(crate) fn new() -> Box<Self> {
            let mut spis = [Irq::reset(32); 64];
            for (i, irq) in spis.iter_mut().enumerate() {
                *irq = Irq::reset(32 + i as u32);
            }
            Box::new(Self {
                dist: Dist {
                    enable_grp0: true,
                    enable_grp1: true,
                    nr_spis: 64,
                    rev: mmio::IIDR_REV_LATEST,
                    ..Dist::default()
                },
                spis,
                cpus: [
                    Cpu::new(0x8000_0000),
                    Cpu {
                        id: 1,
                        ..Cpu::new(0x8000_0001)
                    },
                ],
                lpis: Vec::new(),
                lpi_queues: Vec::new(),
            })
        }

        /// The same VM with an ITS: LPI storage lent, LPI registers present.
        pub(crate) fn with_its() -> Box<Self> {
            let mut f = Self::new();
            f.dist.lpis = true;
            f.lpis = vec![Lpi::UNMAPPED; NR_LPIS];
            f.lpi_queues = vec![0; 2 * LPI_QUEUE_WORDS];
            f
        }

        pub(crate) fn model(&mut self) -> Model<'_> {
            Model {
                dist: &mut self.dist,
                spis: &mut self.spis,
                cpus: &mut self.cpus,
                lpis: &mut self.lpis,
                lpi_queues: &mut self.lpi_queues,
            }
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
        assert_eq!(
            fl,
            Flushed {
                used: 1,
                ..Flushed::default()
            }
        );
        let lr = Lr::decode(lrs[0]);
        assert_eq!((lr.intid, lr.pending, lr.eoi), (40, true, false));
        // The guest acknowledged and EOId it: the LR comes back empty.
        assert_eq!(
            m.sync(0, &[Lr { intid: 40, ..lr }.encode() & !lr::LR_PENDING], 0),
            0
        );
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
        assert_eq!(
            (lr.intid, lr.active, lr.pending, lr.eoi),
            (27, true, false, true)
        );
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
            assert_eq!(
                (first.intid, first.pending, first.active),
                (intid, true, false)
            );
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
        for (intid, prio) in [
            (40, 0x80),
            (41, 0x10),
            (42, 0x40),
            (43, 0x10),
            (44, 0xf0),
            (45, 0),
        ] {
            let irq = m.irq(0, intid).unwrap();
            irq.enabled = true;
            irq.priority = prio;
            m.set_level(0, intid, true);
        }
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(
            fl,
            Flushed {
                used: 4,
                underflow: true,
                pending_overflow: true,
                active_outside: false
            }
        );
        let got: Vec<u32> = lrs[..4].iter().map(|&v| Lr::decode(v).intid).collect();
        assert_eq!(got, [45, 41, 43, 42]);
        // The guest took all four; the other two follow on the next flush.
        let done: Vec<u64> = lrs[..4].iter().map(|&v| v & !lr::LR_PENDING).collect();
        m.sync(0, &done, 0);
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(
            fl,
            Flushed {
                used: 2,
                ..Flushed::default()
            }
        );
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
        let r = SgiRequest::decode(
            (0x12 << 48) | (0x34 << 32) | (0x56 << 16) | (9 << 24) | (2 << 44) | 0x8001,
        );
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

    /// LPI 8192 + n, enabled at priority `prio`.
    fn lpi(n: u32) -> u32 {
        LPI_BASE + n
    }
    const ON: u8 = 0xa0 | LPI_PROP_ENABLE;

    #[test]
    fn lpi_map_unmap_refcount() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        assert_eq!(m.lpi_map(lpi(5), 0, ON, true), Ok(1));
        assert_eq!(m.lpi_state(lpi(5)), Some((true, 0)));
        assert_eq!(m.cpus[0].lpis_queued(), 1);
        // A second reference keeps the state (config and pending are not re-read).
        assert_eq!(m.lpi_map(lpi(5), 0, 0, false), Ok(1));
        assert_eq!(m.dist.lpis_mapped, 1);
        assert_eq!(m.lpi_unmap(lpi(5)), 0);
        assert_eq!(m.lpi_state(lpi(5)), Some((true, 0)));
        assert!(!m.cpus[0].nothing_queued());
        // The last reference: gone, pending state lost, off the queue.
        m.lpi_unmap(lpi(5));
        assert_eq!(m.lpi_state(lpi(5)), None);
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.dist.lpis_mapped, 0);
        assert_eq!(m.lpi_unmap(lpi(5)), 0);
        // Outside the storage, or not an LPI.
        assert_eq!(m.lpi_map(LPI_BASE + NR_LPIS as u32, 0, ON, true), Err(()));
        assert_eq!(m.lpi_map(40, 0, ON, true), Err(()));
        assert_eq!(m.lpi_set_pending(lpi(9), true), 0); // not mapped
    }

    #[test]
    fn no_its_means_no_lpis() {
        let mut f = Fixture::new();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        assert_eq!(m.lpi_map(lpi(0), 0, ON, true), Err(()));
        assert_eq!(m.lpi_set_pending(lpi(0), true), 0);
        assert_eq!(m.lpi_state(lpi(0)), None);
        assert_eq!(m.lpis_of(None).count(), 0);
        assert_eq!(m.lpi_move_all(0, 1), 0);
        assert!(m.cpus[0].nothing_queued() && !m.has_pending(0));
        // A stray LR value naming an LPI folds to nothing.
        assert_eq!(
            m.sync(
                0,
                &[Lr {
                    intid: lpi(0),
                    group1: true,
                    ..Lr::default()
                }
                .encode()],
                0
            ),
            0
        );
    }

    #[test]
    fn lpi_queued_only_while_enabled_everywhere() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        // Pending, but the redistributor has LPIs disabled: waits.
        assert_eq!(m.lpi_map(lpi(1), 1, ON, true), Ok(0));
        assert!(m.cpus[1].nothing_queued() && !m.has_pending(1));
        m.cpus[1].lpis_enabled = true;
        m.queue_all();
        assert_eq!(m.cpus[1].lpis_queued(), 1);
        assert!(m.has_pending(1) && !m.has_pending(0));
        // Disabled in its property byte: off the queue, pending kept.
        assert_eq!(m.lpi_set_config(lpi(1), 0xa0), 0);
        assert!(m.cpus[1].nothing_queued());
        assert_eq!(m.lpi_state(lpi(1)), Some((true, 1)));
        assert_eq!(m.lpi_set_config(lpi(1), ON), 2);
        // Group 1 disabled at the distributor.
        m.dist.enable_grp1 = false;
        m.queue_all();
        assert!(m.cpus[1].nothing_queued());
        m.dist.enable_grp1 = true;
        assert_eq!(m.queue_all(), 2);
        // No collection target.
        assert_eq!(m.lpi_set_target(lpi(1), NONE), 0);
        assert!(m.cpus[1].nothing_queued());
    }

    #[test]
    fn flush_orders_lpis_with_spis() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        for (intid, prio) in [(40, 0x80), (41, 0x10)] {
            let irq = m.irq(0, intid).unwrap();
            irq.enabled = true;
            irq.priority = prio;
            m.set_level(0, intid, true);
        }
        m.lpi_map(lpi(3), 0, 0x40 | 1, true).unwrap();
        m.lpi_map(lpi(2), 0, 0x10 | 1, true).unwrap();
        m.lpi_map(lpi(200), 0, 1, true).unwrap();
        // An active SPI goes after every pending interrupt.
        m.irq(0, 42).unwrap().active = true;
        m.queue(0, 42);
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(
            fl,
            Flushed {
                used: 4,
                underflow: true,
                pending_overflow: true,
                active_outside: true
            }
        );
        let got: Vec<u32> = lrs[..4].iter().map(|&v| Lr::decode(v).intid).collect();
        assert_eq!(got, [lpi(200), 41, lpi(2), lpi(3)]);
        let lr = Lr::decode(lrs[0]);
        assert_eq!(
            (lr.priority, lr.group1, lr.pending, lr.active, lr.eoi),
            (0, true, true, false, false)
        );
        assert_eq!(Lr::decode(lrs[3]).priority, 0x40);
        // The guest took all four: the rest follows.
        let done: Vec<u64> = lrs[..4].iter().map(|&v| v & !lr::LR_PENDING).collect();
        m.sync(0, &done, 0);
        assert_eq!(m.cpus[0].lpis_queued(), 0);
        let (lrs, fl) = lrs_of(&mut m, 0, 4);
        assert_eq!(fl.used, 2);
        assert_eq!(
            (Lr::decode(lrs[0]).intid, Lr::decode(lrs[1]).intid),
            (40, 42)
        );
    }

    #[test]
    fn lpi_fold_drops_the_active_state() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        m.lpi_map(lpi(7), 0, ON, true).unwrap();
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        assert_eq!(m.lpi_state(lpi(7)), Some((false, 0)));
        // Acknowledged (active in the LR): the model keeps no active state, nothing queued.
        assert_eq!(
            m.sync(0, &[(lrs[0] & !lr::LR_PENDING) | lr::LR_ACTIVE], 0),
            0
        );
        assert!(m.cpus[0].nothing_queued() && !m.has_pending(0));
        assert_eq!(lrs_of(&mut m, 0, 4).1.used, 0);
        // Not taken before the exit: still pending, presented again.
        m.lpi_set_pending(lpi(7), true);
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.sync(0, &lrs[..1], 0);
        assert_eq!(m.lpi_state(lpi(7)), Some((true, 0)));
        assert_eq!(m.cpus[0].lpis_queued(), 1);
        // Fired again while in the LR, then EOId: pending once more, the vCPU kicked.
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        assert_eq!(m.lpi_set_pending(lpi(7), true), 1);
        m.sync(0, &[lrs[0] & !lr::LR_PENDING], 0);
        assert!(m.has_pending(0));
        // EOIcount never replays an LPI (it is never active outside an LR).
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.sync(0, &[lrs[0] & !lr::LR_PENDING], 3);
        assert!(m.cpus[0].nothing_queued());
    }

    #[test]
    fn lpi_unmapped_while_in_an_lr() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        m.lpi_map(lpi(9), 0, ON, true).unwrap();
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.lpi_unmap(lpi(9));
        // Still on the queue while in the LR; the fold drops it even though still pending.
        assert_eq!(m.cpus[0].lpis_queued(), 1);
        m.sync(0, &lrs[..1], 0);
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.lpi_state(lpi(9)), None);
        // Unmapped and mapped again (not pending) while in an LR: the old LR's pending
        // bit does not revive it.
        m.lpi_map(lpi(9), 0, ON, true).unwrap();
        let (lrs, _) = lrs_of(&mut m, 0, 4);
        m.lpi_unmap(lpi(9));
        m.lpi_map(lpi(9), 0, ON, false).unwrap();
        m.sync(0, &lrs[..1], 0);
        assert_eq!(m.lpi_state(lpi(9)), Some((false, 0)));
        assert!(m.cpus[0].nothing_queued());
    }

    #[test]
    fn lpi_retargeted() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        m.cpus[1].lpis_enabled = true;
        m.lpi_map(lpi(4), 0, ON, true).unwrap();
        // Queued: moves at once.
        assert_eq!(m.lpi_set_target(lpi(4), 1), 2);
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.cpus[1].lpis_queued(), 1);
        // In vCPU 1's LR, not taken: vCPU 1 is kicked to fold it, and its sync sends it
        // to vCPU 0.
        let (lrs, _) = lrs_of(&mut m, 1, 4);
        assert_eq!(m.lpi_set_target(lpi(4), 0), 2);
        assert_eq!(m.cpus[1].lpis_queued(), 1);
        assert_eq!(m.sync(1, &lrs[..1], 0), 1);
        assert_eq!((m.cpus[0].lpis_queued(), m.cpus[1].lpis_queued()), (1, 0));
        assert_eq!(m.lpi_state(lpi(4)), Some((true, 0)));
    }

    #[test]
    fn lpi_move_all_and_lists() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[0].lpis_enabled = true;
        m.cpus[1].lpis_enabled = true;
        for n in [10, 11, 12] {
            m.lpi_map(lpi(n), 0, ON, n != 11).unwrap();
        }
        m.lpi_map(lpi(13), 1, ON, true).unwrap();
        assert_eq!(
            m.lpis_of(Some(0)).collect::<Vec<_>>(),
            [lpi(10), lpi(11), lpi(12)]
        );
        assert_eq!(m.lpis_of(None).count(), 4);
        assert_eq!(m.lpi_move_all(0, 1), 2);
        assert_eq!(m.lpis_of(Some(0)).count(), 0);
        assert!(m.cpus[0].nothing_queued());
        assert_eq!(m.cpus[1].lpis_queued(), 3);
        assert_eq!(m.lpi_move_all(1, 1), 0);
        // The pending tables: saved per target, loaded back (as EnableLPIs does).
        let mut table = [0u8; 8192];
        // INTIDs 8200-8207 share a byte: bits of unmapped LPIs are kept, 8203 cleared.
        table[lpi(13) as usize / 8] = 0xff;
        assert!(m.lpi_store_pending(1, &mut table));
        assert_eq!(table[lpi(10) as usize / 8], 0xf7);
        assert!(!m.lpi_store_pending(1, &mut table));
        table[lpi(12) as usize / 8] &= !(1 << (lpi(12) % 8));
        table[lpi(11) as usize / 8] |= 1 << (lpi(11) % 8);
        m.lpi_load_pending(1, &table);
        assert_eq!(m.lpi_state(lpi(12)), Some((false, 1)));
        assert_eq!(m.lpi_state(lpi(11)), Some((true, 1)));
        // The property table for INVALL: vCPU 1's LPIs from byte n = INTID 8192 + n.
        let mut prop = [ON; 16];
        prop[10] = 0;
        assert_eq!(m.lpi_load_config(Some(1), &prop), 2);
        assert_eq!(m.cpus[1].lpis_queued(), 2);
    }

    #[test]
    fn nothing_queued_hint_counts_lpis() {
        let mut f = Fixture::with_its();
        let mut m = f.model();
        m.cpus[1].lpis_enabled = true;
        assert!(m.cpus[1].nothing_queued());
        m.lpi_map(lpi(NR_LPIS as u32 - 1), 1, ON, true).unwrap();
        assert!(!m.cpus[1].nothing_queued() && m.cpus[0].nothing_queued());
        assert!(m.has_pending(1));
        let (lrs, fl) = lrs_of(&mut m, 1, 4);
        assert_eq!(Lr::decode(lrs[0]).intid, 65535);
        assert_eq!(fl.used, 1);
        // In an LR it stays counted, so the vCPU takes the slow path and syncs it.
        assert!(!m.cpus[1].nothing_queued());
        m.sync(1, &[lrs[0] & !lr::LR_PENDING], 0);
        assert!(m.cpus[1].nothing_queued());
    }

    #[test]
    fn queued_lpi_bitmap_walk() {
        let mut q = vec![0u64; LPI_QUEUE_WORDS];
        assert_eq!(next_queued(&q, 0), None);
        for i in [0usize, 63, 64, 4095, 4096, NR_LPIS - 1] {
            q[i / 64] |= 1 << (i % 64);
            q[LPI_BITMAP_WORDS + i / 4096] |= 1 << ((i / 64) % 64);
        }
        let mut got = Vec::new();
        let mut next = 0;
        while let Some(i) = next_queued(&q, next) {
            got.push(i);
            next = i + 1;
        }
        assert_eq!(got, [0, 63, 64, 4095, 4096, NR_LPIS - 1]);
        assert_eq!(next_queued(&q[..10], 0), None);
        // What the kernel layer allocates per VM with an ITS: 672 KiB, 7280 bytes a vCPU.
        assert_eq!(core::mem::size_of::<Lpi>(), 12);
        assert_eq!(LPI_QUEUE_WORDS, 910);
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
