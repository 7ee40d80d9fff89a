// SPDX-License-Identifier: GPL-2.0

//! The in-kernel vGICv3: the device behind `KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_V3)`,
//! its attributes, the guest's distributor and redistributor MMIO, SGIs, interrupt
//! injection, and the list-register flush and sync around each guest entry.
//!
//! KVM counterpart: `arch/arm64/kvm/vgic/` (`vgic-init.c`, `vgic-kvm-device.c`,
//! `vgic.c`, `vgic-mmio*.c`, `vgic-v3.c`). Decisions are `logic::vgic`; this layer holds
//! the state, takes the locks and kicks vCPUs.
//!
//! Life cycle: `KVM_CREATE_DEVICE` marks the VM's [`Vgic`] created; attributes place the
//! distributor and redistributors and size the SPIs; `CTRL_INIT` freezes the vCPU set
//! (later `KVM_CREATE_VCPU` fails with `EBUSY`) and allocates the model; the first
//! `KVM_RUN` checks the layout (KVM's `map_resources`) and makes the vGIC ready, from
//! then on guest MMIO to its frames is handled here and never reaches userspace.
//!
//! Lock order: Documentation/design.rst, "Locking". `Vgic::state` (a spinlock that masks
//! interrupts) is innermost: nothing is taken under it, and vCPUs are kicked after it is
//! released. One lock covers the distributor, every vCPU's
//! private interrupts and AP lists: an operation touches an interrupt and the AP list of
//! the vCPU presenting it together, and with at most 64 vCPUs a finer split buys little.
//! Each vCPU's pending-work word mirrors whether it has something queued and whether
//! ICC_DIR_EL1 must trap (`req::VGIC_QUEUED`, `req::VGIC_TDIR`), so a vCPU with nothing
//! in flight learns it from its entry check and skips the lock entirely.

use crate::{
    hyp::{self, context::VgicCpuIf},
    logic::vgic::{
        any_spi_queued,
        attr::{self, Attr, Errno, IrqLine, Layout, Region},
        lr::{
            hcr_eoi_count, Lr, HCR_EN, HCR_LRENPIE, HCR_NPIE, HCR_TDIR, HCR_UIE, MISR_EOI, MISR_U,
        },
        mmio::{DIST_SIZE, IIDR_REV_LATEST, REDIST_SIZE},
        uaccess::{self, CpuIf, Group, IccReg, RegAttr},
        Cpu, Dist, Irq, Lpi, Model, VcpuMask, AFFINITY_MASK, DEFAULT_SPIS, LPI_QUEUE_WORDS,
        MAX_SPIS, NR_LPIS, NR_PRIVATE, NR_SGIS,
    },
    sys::{self, anon_fd::FdOps, irq::PercpuIrq, wake::req},
    vcpu::Vcpu,
    vm::Vm,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{
    alloc::KVVec,
    interrupt::LocalInterruptDisabled,
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex, SetOnce, SpinLockIrq},
    uaccess::{UserPtr, UserSlice},
};

/// Whether this host can offer a vGICv3: a GICv3 virtual CPU interface the backend
/// drives, and the maintenance interrupt requested.
static SUPPORTED: AtomicBool = AtomicBool::new(false);

/// Module-wide vGIC resources, held while the module is loaded.
pub(crate) struct Host {
    _maintenance: Option<PercpuIrq>,
}

/// Requests the maintenance interrupt (module load). Without a GICv3 virtual interface or
/// a maintenance interrupt in the device tree, rkvm offers no vGIC (the capabilities say
/// so and `KVM_CREATE_DEVICE` answers `ENODEV`), and everything else still works.
pub(crate) fn init() -> Host {
    if hyp::vgic_vtr().is_none() {
        return Host { _maintenance: None };
    }
    let Some(irq) = sys::irq::gic_maintenance_irq() else {
        pr_info!("no GICv3 maintenance interrupt in the device tree: no vGIC\n");
        return Host { _maintenance: None };
    };
    match PercpuIrq::request(irq, c"rkvm-vgic-maintenance", maintenance) {
        Ok(p) => {
            SUPPORTED.store(true, Ordering::Relaxed);
            Host {
                _maintenance: Some(p),
            }
        }
        Err(e) => {
            pr_warn!("cannot request the GIC maintenance interrupt ({e:?}): no vGIC\n");
            Host { _maintenance: None }
        }
    }
}

/// The maintenance interrupt's handler. The interrupt exists to make the guest exit
/// (underflow, or EOI of a level-sensitive interrupt); the sync after every exit does
/// the work, and clearing ICH_HCR_EL2.En on exit drops the interrupt.
fn maintenance() {}

/// Whether `KVM_CREATE_DEVICE` can create a vGICv3 (and `KVM_CAP_IRQCHIP` is reported).
pub(crate) fn supported() -> bool {
    SUPPORTED.load(Ordering::Relaxed)
}

/// Set-up state, changed only by device-attribute ioctls.
struct Config {
    layout: Layout,
    /// `NR_IRQS` - 32, or 0 while unset.
    nr_spis: u32,
    /// GICD_IIDR's revision until `CTRL_INIT` (then `Dist::rev`).
    rev: u8,
}

/// The interrupt state, allocated at `CTRL_INIT`.
struct State {
    dist: Dist,
    spis: KVVec<Irq>,
    cpus: KVVec<Cpu>,
    /// The guest-physical placement, fixed at the first `KVM_RUN`.
    layout: Option<Layout>,
    /// LPI state and the per-vCPU LPI queues: empty unless the VM has an ITS (then
    /// every LPI operation is a no-op and the LPI registers read as zero).
    lpis: KVVec<Lpi>,
    lpi_queues: KVVec<u64>,
}

impl State {
    fn model(&mut self) -> Model<'_> {
        Model {
            dist: &mut self.dist,
            spis: &mut self.spis,
            cpus: &mut self.cpus,
            lpis: &mut self.lpis,
            lpi_queues: &mut self.lpi_queues,
        }
    }
}

/// LPI storage for `nr_vcpus` vCPUs (about 670 KiB, and 7 KiB per vCPU), built element
/// by element: never a large temporary on the stack.
fn lpi_storage(nr_vcpus: usize) -> Result<(KVVec<Lpi>, KVVec<u64>)> {
    let mut lpis = KVVec::with_capacity(NR_LPIS, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..NR_LPIS {
        lpis.push(Lpi::UNMAPPED, GFP_KERNEL_ACCOUNT)?;
    }
    let words = nr_vcpus * LPI_QUEUE_WORDS;
    let mut queues = KVVec::with_capacity(words, GFP_KERNEL_ACCOUNT)?;
    for _ in 0..words {
        queues.push(0, GFP_KERNEL_ACCOUNT)?;
    }
    Ok((lpis, queues))
}

/// Words of a bitmap over the SPIs.
pub(crate) const SPI_WORDS: usize = MAX_SPIS.div_ceil(64);

/// A VM's vGICv3 (embedded in the `Vm`; [`Vm::vgic`] returns it once created).
#[pin_data]
pub(crate) struct Vgic {
    created: AtomicBool,
    /// `CTRL_INIT` done: `state` holds the model, `vcpus` the vCPU set.
    initialized: AtomicBool,
    /// The first `KVM_RUN` checked the layout; guest MMIO to the frames is handled.
    ready: AtomicBool,
    #[pin]
    config: Mutex<Config>,
    #[pin]
    state: SpinLockIrq<Option<State>>,
    /// The vCPUs by index (creation order), fixed by `CTRL_INIT`: whom to kick.
    vcpus: SetOnce<KVec<Arc<Vcpu>>>,
    /// SPIs (bit n: SPI n + 32) driven by a resampling irqfd (the VM's routing keeps
    /// this up to date), and those the guest EOId since the run loop last looked
    /// (`acked_any`).
    resample_spis: [AtomicU64; SPI_WORDS],
    acked_spis: [AtomicU64; SPI_WORDS],
    acked_any: AtomicBool,
    /// An SPI is on an AP list (written under `state`): every vCPU traps ICC_DIR_EL1.
    /// Mirrored into each vCPU's `req::VGIC_TDIR`.
    spi_queued: AtomicBool,
    /// The VM has an ITS (KVM's `has_its`): the model gets LPI storage.
    has_its: AtomicBool,
}

impl Vgic {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            created: AtomicBool::new(false),
            initialized: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            config <- new_mutex!(
                Config { layout: Layout::new(), nr_spis: 0, rev: IIDR_REV_LATEST },
                "Vgic::config"
            ),
            state <- new_spinlock_irq!(None, "Vgic::state"),
            vcpus: SetOnce::new(),
            resample_spis: [const { AtomicU64::new(0) }; SPI_WORDS],
            acked_spis: [const { AtomicU64::new(0) }; SPI_WORDS],
            acked_any: AtomicBool::new(false),
            spi_queued: AtomicBool::new(false),
            has_its: AtomicBool::new(false),
        })
    }

    /// `KVM_CREATE_DEVICE` made this VM's vGIC.
    pub(crate) fn created(&self) -> bool {
        self.created.load(Ordering::Acquire)
    }

    /// `CTRL_INIT` is done: injection works, no vCPU may be added.
    pub(crate) fn initialized(&self) -> bool {
        self.initialized.load(Ordering::Acquire)
    }

    /// `KVM_CREATE_DEVICE` for `KVM_DEV_TYPE_ARM_VGIC_V3`: one per VM (`EEXIST`), not
    /// once a vCPU has run (`EBUSY`), as `kvm_vgic_create`.
    pub(crate) fn create(&self, vm: &Vm) -> Result {
        let _config = self.config.lock();
        if self.created() {
            return Err(EEXIST);
        }
        if vm.has_run() {
            return Err(EBUSY);
        }
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    /// An ITS was created (KVM's `vgic_its_create` setting `has_its`): the model gets its
    /// LPI storage now if `CTRL_INIT` is done, else `CTRL_INIT` allocates it.
    pub(crate) fn enable_lpis(&self) -> Result {
        let _config = self.config.lock();
        self.has_its.store(true, Ordering::Release);
        if !self.initialized() || self.state.lock().as_ref().is_some_and(|st| st.dist.lpis) {
            return Ok(());
        }
        let (lpis, lpi_queues) = lpi_storage(self.nr_vcpus())?;
        let mut guard = self.state.lock();
        if let Some(st) = Option::as_mut(&mut *guard) {
            st.lpis = lpis;
            st.lpi_queues = lpi_queues;
            st.dist.lpis = true;
        }
        Ok(())
    }

    /// `CTRL_INIT`: freezes the vCPU set and `NR_IRQS` (default 256) and allocates the
    /// model. Again after success: nothing (as KVM).
    fn ctrl_init(&self, vm: &Vm) -> Result {
        let mut config = self.config.lock();
        if self.initialized() {
            return Ok(());
        }
        if config.nr_spis == 0 {
            config.nr_spis = DEFAULT_SPIS;
        }
        let nr_spis = config.nr_spis;
        // The vCPU list lock is held until `initialized` is set, so no vCPU is created in
        // between (KVM_CREATE_VCPU checks the flag under the same lock).
        let vcpus_guard = vm.vcpus.lock();
        let mut vcpus = KVec::with_capacity(vcpus_guard.len(), GFP_KERNEL_ACCOUNT)?;
        let mut cpus = KVVec::with_capacity(vcpus_guard.len(), GFP_KERNEL_ACCOUNT)?;
        // What ICC_CTLR_EL1 reports until userspace restores fewer bits.
        let (pri_bits, id_bits) = hyp::vgic_vtr().map_or((5, 0), |v| (v.pri_bits, v.id_bits));
        for v in vcpus_guard.iter() {
            vcpus.push(v.clone(), GFP_KERNEL_ACCOUNT)?;
            let mut cpu = Cpu::new(v.mpidr);
            (cpu.id, cpu.pri_bits, cpu.id_bits) = (v.id, pri_bits, id_bits);
            cpus.push(cpu, GFP_KERNEL_ACCOUNT)?;
        }
        let mut spis = KVVec::with_capacity(nr_spis as usize, GFP_KERNEL_ACCOUNT)?;
        for i in 0..nr_spis {
            spis.push(Irq::reset(NR_PRIVATE + i), GFP_KERNEL_ACCOUNT)?;
        }
        // An ITS created before CTRL_INIT: the LPIs exist from the start.
        let has_its = self.has_its.load(Ordering::Acquire);
        let (lpis, lpi_queues) = if has_its {
            lpi_storage(cpus.len())?
        } else {
            (KVVec::new(), KVVec::new())
        };
        let state = State {
            dist: Dist {
                nr_spis,
                rev: config.rev,
                lpis: has_its,
                ..Dist::default()
            },
            spis,
            cpus,
            layout: None,
            lpis,
            lpi_queues,
        };
        self.vcpus.populate(vcpus);
        *self.state.lock() = Some(state);
        self.initialized.store(true, Ordering::Release);
        drop(vcpus_guard);
        // KVM's vgic_init installs the default routing over any earlier table.
        vm.irq.reset(vm);
        Ok(())
    }

    /// The first `KVM_RUN`'s check (KVM's `vgic_v3_map_resources`): not initialised
    /// (`EBUSY`), a vCPU or the distributor without an address (`ENXIO`), overlapping or
    /// out-of-range frames (`EINVAL`). Then guest MMIO to the frames is handled here.
    pub(crate) fn map_resources(&self, vm: &Vm) -> Result {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let config = self.config.lock();
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        // Before CTRL_INIT the vCPU set is not frozen; the layout is checked against
        // the vCPUs that exist, as KVM does.
        let nr_vcpus = match self.vcpus.as_ref() {
            Some(v) => v.len(),
            None => vm.vcpus.lock().len(),
        };
        // Checked in KVM's order: redistributors, distributor, overlap, then init.
        let layout = config.layout;
        layout.check(nr_vcpus, vm.ipa_limit())?;
        if !self.initialized() {
            return Err(EBUSY);
        }
        let mut guard = self.state.lock();
        let st = Option::as_mut(&mut *guard).ok_or(EBUSY)?;
        for (i, cpu) in st.cpus.iter_mut().enumerate() {
            cpu.last = layout.is_last(i, nr_vcpus);
        }
        st.layout = Some(layout);
        drop(guard);
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Kicks the vCPUs in `mask` so they see what changed.
    fn kick(&self, mask: VcpuMask) {
        if mask == 0 {
            return;
        }
        if let Some(vcpus) = self.vcpus.as_ref() {
            for (i, v) in vcpus.iter().enumerate().take(64) {
                if mask & (1 << i) != 0 {
                    v.kick();
                }
            }
        }
    }

    /// The vCPUs `CTRL_INIT` froze (0 before).
    pub(crate) fn nr_vcpus(&self) -> usize {
        self.vcpus.as_ref().map_or(0, |v| v.len())
    }

    /// The index of the vCPU with id `id` (its redistributor's Processor_Number).
    pub(crate) fn vcpu_idx_by_id(&self, id: u64) -> Option<usize> {
        self.vcpus
            .as_ref()?
            .iter()
            .position(|v| u64::from(v.id) == id)
    }

    /// Publishes into each vCPU's pending-work word whether it has something queued (AP
    /// list or LPIs) and whether ICC_DIR_EL1 must trap (under `state`, which serialises
    /// every change of those bits). A vCPU that reads a stale word has interrupts masked
    /// at its entry check, so the kick that follows a change it must see makes it exit
    /// at once. Returns the vCPUs to kick: all of them when an SPI was queued with none
    /// before (KVM's broadcast kick: every vCPU must enter again with the DIR trap).
    fn update_hints(&self, st: &State) -> VcpuMask {
        let queued = any_spi_queued(&st.cpus);
        let was = self.spi_queued.load(Ordering::Relaxed);
        if queued != was {
            self.spi_queued.store(queued, Ordering::Release);
        }
        let tdir = if queued { req::VGIC_TDIR } else { 0 };
        if let Some(vcpus) = self.vcpus.as_ref() {
            for (c, v) in st.cpus.iter().zip(vcpus.iter()) {
                let q = if c.nothing_queued() {
                    0
                } else {
                    req::VGIC_QUEUED
                };
                v.wake.set_states(req::VGIC, q | tdir);
            }
        }
        if queued && !was {
            VcpuMask::MAX
        } else {
            0
        }
    }

    /// Runs `f` on the model under the lock, then kicks whom it names. Before
    /// `CTRL_INIT` there is no model and nothing happens (`None`).
    pub(crate) fn with_model<R>(
        &self,
        f: impl FnOnce(&mut Model<'_>) -> (R, VcpuMask),
    ) -> Option<R> {
        let (r, kick) = {
            let mut guard = self.state.lock();
            let st = Option::as_mut(&mut *guard)?;
            let (r, kick) = f(&mut st.model());
            (r, kick | self.update_hints(st))
        };
        self.kick(kick);
        Some(r)
    }

    /// Sets the level of private interrupt `intid` (a PPI, 16-31, such as the timers' 27
    /// and 30) of the vCPU with index `vcpu_idx` (creation order). Before `CTRL_INIT` the
    /// change is dropped, as KVM drops injections into an uninitialised vGIC. `EINVAL`
    /// for an SGI, a non-private INTID or an unknown vCPU.
    pub(crate) fn set_private_level(&self, vcpu_idx: usize, intid: u32, level: bool) -> Result {
        if !(NR_SGIS..NR_PRIVATE).contains(&intid) {
            return Err(EINVAL);
        }
        match self.with_model(|m| {
            if !m.valid(vcpu_idx, intid) {
                return (Err(EINVAL), 0);
            }
            (Ok(()), m.set_level(vcpu_idx, intid, level))
        }) {
            Some(r) => r,
            None => Ok(()),
        }
    }

    /// Sets the level of SPI `intid` (32 up to 32 + the SPI count). Dropped before
    /// `CTRL_INIT`, as [`Self::set_private_level`]; `EINVAL` for INTIDs that do not exist.
    pub(crate) fn set_spi_level(&self, intid: u32, level: bool) -> Result {
        if intid < NR_PRIVATE {
            return Err(EINVAL);
        }
        match self.with_model(|m| {
            if !m.valid(0, intid) {
                return (Err(EINVAL), 0);
            }
            (Ok(()), m.set_level(0, intid, level))
        }) {
            Some(r) => r,
            None => Ok(()),
        }
    }

    /// Whether `vcpu` has an interrupt it could take now (pending, enabled, its group
    /// enabled): the WFI wake-up condition. Ignores the guest's priority mask (see
    /// `logic::vgic::Model::has_pending`).
    pub(crate) fn vcpu_has_pending(&self, vcpu: &Vcpu) -> bool {
        if vcpu.wake.word() & req::VGIC_QUEUED == 0 {
            return false;
        }
        Option::as_mut(&mut *self.state.lock()).is_some_and(|st| st.model().has_pending(vcpu.idx))
    }

    /// A write to ICC_SGI1R_EL1 (`group1`), ICC_ASGI1R_EL1 or ICC_SGI0R_EL1 by vCPU
    /// `sender`. Returns `false` when the VM has no ready vGIC (the access is UNDEFINED).
    pub(crate) fn send_sgi(&self, sender: usize, value: u64, group1: bool) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        self.with_model(|m| ((), m.send_sgi(sender, value, group1)));
        true
    }

    /// A trapped ICC_DIR_EL1 write of `value` by vCPU `vcpu_idx` (ICH_HCR_EL2.TDIR).
    /// Returns `false` when the VM has no ready vGIC (the access is UNDEFINED).
    pub(crate) fn deactivate(&self, vcpu_idx: usize, value: u64) -> bool {
        if !self.ready.load(Ordering::Acquire) {
            return false;
        }
        self.with_model(|m| ((), m.deactivate(vcpu_idx, value)));
        true
    }

    /// A guest access to guest-physical `ipa` by vCPU `vcpu_idx`: `Some(value read)` if
    /// the address is in the distributor or a redistributor (a write returns 0), `None`
    /// otherwise. Misaligned accesses read as zero and are ignored, as KVM does.
    pub(crate) fn mmio(
        &self,
        vm: &Vm,
        vcpu_idx: usize,
        ipa: u64,
        len: u8,
        write: bool,
        value: u64,
    ) -> Option<u64> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        let aligned = len != 0 && ipa % u64::from(len) == 0;
        let mut work = None;
        let (read, kick) = {
            let mut guard = self.state.lock();
            let st = Option::as_mut(&mut *guard)?;
            let layout = st.layout?;
            let nr_vcpus = st.cpus.len();
            let dist = layout.dist?;
            let out = if ipa >= dist && ipa - dist < DIST_SIZE {
                let off = ipa - dist;
                let mut m = st.model();
                match (aligned, write) {
                    (false, _) => (0, 0),
                    (true, true) => (0, m.dist_write(vcpu_idx, off, len, value)),
                    (true, false) => (m.dist_read(vcpu_idx, off, len), 0),
                }
            } else if let Some((rd, off)) = layout.redist_at(ipa, nr_vcpus) {
                let mut m = st.model();
                match (aligned, write) {
                    (false, _) => (0, 0),
                    // No ITS yet, so no LPI work (`Dist::lpis` is false).
                    (true, true) => {
                        let (kick, w) = m.redist_write(rd, off, len, value);
                        work = w;
                        (0, kick)
                    }
                    (true, false) => (m.redist_read(rd, off, len), 0),
                }
            } else {
                return None;
            };
            (out.0, out.1 | self.update_hints(st))
        };
        self.kick(kick);
        if let Some(w) = work {
            crate::its::lpi_work(vm, w);
        }
        Some(read)
    }

    /// Before an entry (interrupts masked), when the vCPU's pending-work `word` has vGIC
    /// bits: fills the list registers from the vCPU's AP list. With nothing queued, only
    /// the DIR trap is set (for an SPI another vCPU took), with no lock and no ICH_*
    /// access; an entry with neither bit does not call this at all.
    pub(crate) fn flush(
        &self,
        vcpu: &Vcpu,
        gic: &mut VgicCpuIf,
        word: u32,
        irqs: &LocalInterruptDisabled,
    ) {
        let idx = vcpu.idx;
        if word & req::VGIC_QUEUED == 0 {
            gic.hcr = if word & req::VGIC_TDIR != 0 {
                HCR_EN | HCR_TDIR
            } else {
                0
            };
            return;
        }
        vcpu.stats.vgic_flush_slow.inc();
        let Some(vtr) = hyp::vgic_vtr() else { return };
        let mut guard = self.state.lock_with(irqs);
        let Some(st) = Option::as_mut(&mut *guard) else {
            return;
        };
        let f = st.model().flush(idx, &mut gic.lr[..vtr.nr_lrs]);
        gic.used_lrs = f.used as u64;
        // A flush queues nothing new, so it never needs the broadcast kick; the hints it
        // refreshes include `spi_queued`, used just below.
        let _ = self.update_hints(st);
        let bit = |on: bool, b: u64| if on { b } else { 0 };
        // ICC_DIR_EL1 traps while an active interrupt has no LR, or an SPI is active
        // anywhere (another vCPU may deactivate it), as KVM's vgic_v3_configure_hcr.
        let tdir = f.active_outside || self.spi_queued.load(Ordering::Relaxed);
        gic.hcr = if f.used == 0 && !tdir {
            0
        } else {
            HCR_EN
                | bit(tdir, HCR_TDIR)
                | bit(f.underflow, HCR_UIE)
                | bit(f.pending_overflow, HCR_NPIE)
                | bit(f.active_outside, HCR_LRENPIE)
        };
    }

    /// After an exit (interrupts masked) whose entry used list registers (`used_lrs` != 0;
    /// the run loop skips the call otherwise): folds them back. Returns the vCPUs to kick
    /// once interrupts are on again (an interrupt re-routed while in an LR).
    pub(crate) fn sync(
        &self,
        vcpu: &Vcpu,
        gic: &mut VgicCpuIf,
        irqs: &LocalInterruptDisabled,
    ) -> VcpuMask {
        let used = gic.used_lrs as usize;
        vcpu.stats.vgic_sync_slow.inc();
        if gic.misr & MISR_U != 0 {
            vcpu.stats.vgic_underflow.inc();
        }
        if gic.misr & MISR_EOI != 0 {
            vcpu.stats.vgic_eoi_maintenance.inc();
        }
        for &v in &gic.lr[..used] {
            let lr = Lr::decode(v);
            // A level interrupt the guest deactivated (its EOI maintenance bit set, the
            // LR now empty): a resampling irqfd behind it lowers its line.
            if lr.eoi && !lr.pending && !lr.active && lr.intid >= NR_PRIVATE {
                let n = (lr.intid - NR_PRIVATE) as usize;
                let bit = 1u64 << (n % 64);
                if self
                    .resample_spis
                    .get(n / 64)
                    .is_some_and(|w| w.load(Ordering::Relaxed) & bit != 0)
                {
                    self.acked_spis[n / 64].fetch_or(bit, Ordering::Relaxed);
                    self.acked_any.store(true, Ordering::Release);
                }
            }
        }
        let mut guard = self.state.lock_with(irqs);
        let kick = match Option::as_mut(&mut *guard) {
            Some(st) => {
                let kick = st
                    .model()
                    .sync(vcpu.idx, &gic.lr[..used], hcr_eoi_count(gic.hcr));
                (kick | self.update_hints(st)) & !(1 << vcpu.idx)
            }
            None => 0,
        };
        gic.used_lrs = 0;
        gic.hcr = 0;
        kick
    }

    /// After a sync, with interrupts on: kicks, and resamples the irqfds whose
    /// interrupt the guest EOId (through the VM's routing).
    pub(crate) fn kick_after_sync(&self, vm: &Vm, mask: VcpuMask) {
        self.kick(mask);
        if self.acked_any.load(Ordering::Acquire) && self.acked_any.swap(false, Ordering::AcqRel) {
            let mut acked = [0u64; SPI_WORDS];
            for (a, w) in acked.iter_mut().zip(&self.acked_spis) {
                *a = w.swap(0, Ordering::Relaxed);
            }
            vm.irq.resample(vm, &acked);
        }
    }

    /// Which SPIs (bit n: SPI n + 32) a resampling irqfd drives.
    pub(crate) fn set_resample_spis(&self, bits: &[u64; SPI_WORDS]) {
        for (w, &b) in self.resample_spis.iter().zip(bits) {
            w.store(b, Ordering::Relaxed);
        }
    }

    /// Whether guest MMIO and SGIs are handled (the first `KVM_RUN` passed).
    pub(crate) fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// `KVM_IRQ_LINE` for SPIs and PPIs (KVM's `kvm_vm_ioctl_irq_line` with a vGIC).
    pub(crate) fn irq_line(&self, irq: u32, level: bool) -> Result {
        let line = IrqLine::decode(irq);
        match line.kind {
            attr::IRQ_TYPE_CPU => Err(ENXIO),
            attr::IRQ_TYPE_SPI => {
                if !self.initialized() {
                    return Err(EBUSY);
                }
                self.set_spi_level(line.num, level)
            }
            attr::IRQ_TYPE_PPI => {
                if !self.initialized() {
                    return Err(EBUSY);
                }
                let idx = self
                    .vcpus
                    .as_ref()
                    .and_then(|v| v.iter().position(|v| v.id == line.vcpu_id))
                    .ok_or(EINVAL)?;
                self.set_private_level(idx, line.num, level)
            }
            _ => Err(EINVAL),
        }
    }

    /// `KVM_SET_DEVICE_ATTR`.
    fn set_attr(&self, vm: &Vm, group: u32, a: u64, addr: usize) -> Result {
        let attr = attr::decode(group, a)?;
        let user = |size| UserSlice::new(UserPtr::from_addr(addr), size);
        match attr {
            Attr::Regs(reg) => self.regs_access(vm, reg, addr, true),
            Attr::NrIrqs => {
                let nr: u32 = user(4).reader().read()?;
                let nr_spis = attr::nr_spis(nr)?;
                let mut config = self.config.lock();
                if config.nr_spis != 0 {
                    return Err(EBUSY);
                }
                config.nr_spis = nr_spis;
                Ok(())
            }
            Attr::CtrlInit => self.ctrl_init(vm),
            // Every vCPU stopped, as KVM's kvm_trylock_all_vcpus (`EBUSY`).
            Attr::SavePendingTables => {
                vm.with_vcpus_stopped(|| crate::its::save_pending_tables(vm))
            }
            Attr::Dist => {
                let base: u64 = user(8).reader().read()?;
                self.config
                    .lock()
                    .layout
                    .set_dist(base, vm.ipa_limit())
                    .map_err(Error::from)
            }
            Attr::Redist | Attr::RedistRegion => {
                let v: u64 = user(8).reader().read()?;
                let region = if attr == Attr::Redist {
                    Region {
                        index: 0,
                        base: v,
                        count: 0,
                    }
                } else {
                    attr::decode_region(v)?
                };
                let mut config = self.config.lock();
                let nr_vcpus = vm.vcpus.lock().len();
                config
                    .layout
                    .add_region(region, nr_vcpus, vm.ipa_limit())
                    .map_err(Error::from)
            }
        }
    }

    /// `KVM_GET_DEVICE_ATTR`.
    fn get_attr(&self, vm: &Vm, group: u32, a: u64, addr: usize) -> Result {
        let attr = attr::decode(group, a)?;
        let user = |size| UserSlice::new(UserPtr::from_addr(addr), size);
        if let Attr::Regs(reg) = attr {
            return self.regs_access(vm, reg, addr, false);
        }
        let config = self.config.lock();
        let value: u64 = match attr {
            Attr::Regs(_) => return Err(ENXIO),
            Attr::NrIrqs => {
                let nr = config.nr_spis + NR_PRIVATE;
                drop(config);
                return user(4).writer().write(&nr);
            }
            Attr::CtrlInit | Attr::SavePendingTables => return Err(ENXIO),
            Attr::Dist => config.layout.dist.unwrap_or(attr::ADDR_UNDEF),
            Attr::Redist => config
                .layout
                .regions()
                .first()
                .map_or(attr::ADDR_UNDEF, |r| r.base),
            Attr::RedistRegion => {
                drop(config);
                let v: u64 = user(8).reader().read()?;
                let r = self.config.lock().layout.region(attr::region_index(v))?;
                return user(8).writer().write(&r.encode());
            }
        };
        drop(config);
        user(8).writer().write(&value)
    }

    /// The vCPU a register-state attribute names (KVM's `vgic_v3_parse_attr`): vCPU 0
    /// for the distributor, else the one with the attribute's MPIDR affinity; `EINVAL`
    /// if there is none.
    fn reg_vcpu(vm: &Vm, reg: &RegAttr) -> Result<Arc<Vcpu>> {
        let vcpus = vm.vcpus.lock();
        let found = match reg.group {
            Group::Dist => vcpus.first(),
            _ => vcpus.iter().find(|v| v.mpidr & AFFINITY_MASK == reg.mpidr),
        };
        found.cloned().ok_or(EINVAL)
    }

    /// `KVM_HAS_DEVICE_ATTR` on a register-state group: `EINVAL` for an unknown vCPU,
    /// `ENXIO` for a register that does not exist (`LEVEL_INFO` names no vCPU here).
    fn has_regs(&self, vm: &Vm, reg: RegAttr) -> Result {
        if reg.group != Group::LevelInfo {
            Self::reg_vcpu(vm, &reg)?;
        }
        let nr_irqs = self.config.lock().nr_spis + NR_PRIVATE;
        uaccess::has(&reg, nr_irqs).map_err(Error::from)
    }

    /// `KVM_{SET,GET}_DEVICE_ATTR` on a register-state group (KVM's
    /// `vgic_v3_attr_regs_access`), with KVM's order of errors: unknown vCPU (`EINVAL`),
    /// unreadable value (`EFAULT`), a vCPU in an ioctl such as `KVM_RUN` (`EBUSY`), no
    /// `CTRL_INIT` yet (`EBUSY`), then the register's own.
    ///
    /// Every vCPU's `inner` is held (try-locked, as KVM's `kvm_trylock_all_vcpus`), so
    /// none runs: the model holds every interrupt's state (each exit folded its list
    /// registers back) and each vCPU's saved `VgicCpuIf` holds its VMCR and APRs. Lock
    /// order: `config`, `Vm::vcpus`, the vCPUs' `inner` (try-locks), `state`.
    fn regs_access(&self, vm: &Vm, reg: RegAttr, addr: usize, write: bool) -> Result {
        let vcpu = Self::reg_vcpu(vm, &reg)?;
        let user32 = || UserSlice::new(UserPtr::from_addr(addr), 4);
        let user64 = || UserSlice::new(UserPtr::from_addr(addr), 8);
        let wval: u32 = if write && !reg.is_64bit() {
            user32().reader().read()?
        } else {
            0
        };

        let mut config = self.config.lock();
        let all = vm.vcpus.lock();
        let mut held = KVec::with_capacity(all.len(), GFP_KERNEL)?;
        for v in all.iter() {
            let Some(g) = v.inner.try_lock() else {
                return Err(EBUSY);
            };
            held.push(g, GFP_KERNEL)?;
        }
        if !(self.initialized() || reg.allowed_before_init()) {
            return Err(EBUSY);
        }
        let nr_vcpus = all.len();
        let write_val = write.then_some(wval);

        if reg.group == Group::Dist && !self.initialized() {
            // Only the ID registers get here before CTRL_INIT.
            let r = uaccess::dist_id_access(reg.offset, write_val, &mut config.rev, false);
            let v = r.unwrap_or(Ok(0))?;
            drop(held);
            drop(all);
            drop(config);
            return if write {
                Ok(())
            } else {
                user32().writer().write(&v)
            };
        }

        if reg.group == Group::CpuSysregs {
            let icc = IccReg::decode(reg.offset).ok_or(ENOENT)?;
            let host = hyp::vgic_vtr().ok_or(ENXIO)?;
            let val: u64 = if write { user64().reader().read()? } else { 0 };
            // SAFETY: this thread holds the vCPU's `inner` (in `held`), so no `KVM_RUN`
            // is in progress and nothing else touches its lazily switched state, whose
            // saved copy is current.
            let gic = &mut unsafe { vcpu.lazy.get() }.el1.gic;
            let got = {
                let mut guard = self.state.lock();
                let st = Option::as_mut(&mut *guard).ok_or(EBUSY)?;
                let cpu = st.cpus.get_mut(vcpu.idx).ok_or(EINVAL)?;
                let mut cif = CpuIf {
                    vmcr: &mut gic.vmcr,
                    ap0r: &mut gic.ap0r,
                    ap1r: &mut gic.ap1r,
                    pri_bits: &mut cpu.pri_bits,
                    id_bits: &mut cpu.id_bits,
                };
                if write {
                    cif.set(icc, val, &host).map(|()| 0)
                } else {
                    cif.get(icc, &host)
                }
            }?;
            drop(held);
            drop(all);
            drop(config);
            return if write {
                Ok(())
            } else {
                user64().writer().write(&got)
            };
        }

        let mut work = None;
        let out = {
            let mut guard = self.state.lock();
            let st = Option::as_mut(&mut *guard).ok_or(EBUSY)?;
            let out = match reg.group {
                Group::Dist => {
                    match uaccess::dist_id_access(reg.offset, write_val, &mut st.dist.rev, true) {
                        Some(r) => r,
                        None if write => {
                            st.model().dist_uwrite(reg.offset, wval);
                            Ok(0)
                        }
                        None => Ok(st.model().dist_uread(reg.offset)),
                    }
                }
                Group::Redist => {
                    // GICR_TYPER.Last follows the regions set so far.
                    for (i, c) in st.cpus.iter_mut().enumerate() {
                        c.last = config.layout.is_last(i, nr_vcpus);
                    }
                    if write {
                        let (_, w) = st.model().redist_uwrite(vcpu.idx, reg.offset, wval);
                        work = w;
                        Ok(0)
                    } else {
                        Ok(st.model().redist_uread(vcpu.idx, reg.offset))
                    }
                }
                Group::LevelInfo => match reg.line_level_intid() {
                    None => Err(Errno::Inval),
                    Some(first) if write => st
                        .model()
                        .level_info_write(vcpu.idx, first, wval)
                        .map(|_| 0),
                    Some(first) => st.model().level_info_read(vcpu.idx, first),
                },
                // Handled above, without the model.
                Group::CpuSysregs => Err(Errno::Inval),
            };
            // No vCPU runs: the new state is seen at their next entry, no kick needed.
            let _ = self.update_hints(st);
            out
        };
        let v = out?;
        // Restoring EnableLPIs loads the pending table, with every vCPU still stopped.
        if let Some(w) = work {
            crate::its::lpi_work(vm, w);
        }
        drop(held);
        drop(all);
        drop(config);
        if write {
            Ok(())
        } else {
            user32().writer().write(&v)
        }
    }
}

/// Reads a `kvm_device_attr` at `arg`: (group, attr, addr). `flags` is not checked.
pub(crate) fn read_device_attr(arg: usize) -> Result<(u32, u64, usize)> {
    const SIZE: usize = core::mem::size_of::<sys::kvm_device_attr>();
    let a: sys::kvm_device_attr = UserSlice::new(UserPtr::from_addr(arg), SIZE)
        .reader()
        .read()?;
    Ok((a.group, a.attr, a.addr as usize))
}

/// The vGIC device fd: `KVM_{SET,GET,HAS}_DEVICE_ATTR`.
pub(crate) struct VgicDevice {
    pub(crate) vm: Arc<Vm>,
}

impl FdOps for VgicDevice {
    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        use crate::logic::ioctl::{KVM_GET_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR, KVM_SET_DEVICE_ATTR};
        if !this.vm.owned_by_current() {
            return Err(EIO);
        }
        let vgic = &this.vm.vgic;
        let read_attr = || read_device_attr(arg);
        match cmd {
            KVM_SET_DEVICE_ATTR => {
                let (group, a, addr) = read_attr()?;
                vgic.set_attr(&this.vm, group, a, addr).map(|()| 0)
            }
            KVM_GET_DEVICE_ATTR => {
                let (group, a, addr) = read_attr()?;
                vgic.get_attr(&this.vm, group, a, addr).map(|()| 0)
            }
            KVM_HAS_DEVICE_ATTR => {
                let (group, a, _) = read_attr()?;
                match attr::decode(group, a)? {
                    Attr::Regs(reg) => vgic.has_regs(&this.vm, reg).map(|()| 0),
                    _ => Ok(0),
                }
            }
            _ => Err(ENOTTY),
        }
    }
}

/// `KVM_CREATE_DEVICE` on `vm`: `kvm_create_device` = {type, fd, flags}; returns 0 and
/// writes the new fd into the struct, as KVM.
pub(crate) fn create_device(vm: ArcBorrow<'_, Vm>, arg: usize, size: usize) -> Result<isize> {
    let slice = UserSlice::new(UserPtr::from_addr(arg), size);
    let (mut reader, mut writer) = slice.reader_writer();
    let mut cd: sys::kvm_create_device = reader.read()?;
    let its = match cd.type_ {
        attr::KVM_DEV_TYPE_ARM_VGIC_V3 => false,
        attr::KVM_DEV_TYPE_ARM_VGIC_ITS => true,
        _ => return Err(ENODEV),
    };
    if !supported() {
        return Err(ENODEV);
    }
    if cd.flags & attr::KVM_CREATE_DEVICE_TEST != 0 {
        return Ok(0);
    }
    let fd = if its {
        crate::its::create(vm)?
    } else {
        vm.vgic.create(&vm)?;
        sys::anon_fd::install(
            c"kvm-arm-vgic-v3",
            Arc::new(VgicDevice { vm: vm.into() }, GFP_KERNEL_ACCOUNT)?,
        )?
    };
    cd.fd = fd as u32;
    // As KVM: the device exists even if the fd cannot be reported back.
    writer.write(&cd)?;
    Ok(0)
}

const _: () = assert!(core::mem::size_of::<sys::kvm_device_attr>() == 24);
const _: () = assert!(core::mem::size_of::<sys::kvm_create_device>() == 12);

// The redistributor stride the layout rules use is the architecture's two 64 KiB frames.
const _: () = assert!(REDIST_SIZE == 0x2_0000);
