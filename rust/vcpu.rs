// SPDX-License-Identifier: GPL-2.0

//! A vCPU: the object behind a vCPU file descriptor.
//!
//! KVM counterpart: `struct kvm_vcpu` and `kvm_vcpu_ioctl()` (`virt/kvm/kvm_main.c`),
//! `kvm_arch_vcpu_ioctl()` (`arch/arm64/kvm/arm.c`). `inner` plays the role of
//! `vcpu->mutex`: it is held for the whole of `KVM_RUN`, so other ioctls on a running vCPU
//! wait for it to return. `power` is separate so that another vCPU's PSCI call can turn
//! this one on or query it while it runs or sleeps.

use crate::{
    hyp::context::{El1Regs, VcpuContext},
    logic::{
        coalesced::{self, VcpuPage},
        fp::FpHint,
        halt_poll::HIST_COUNT,
        ioctl::{self, VcpuIoctl},
        mmio::MmioAccess,
        psci::MpState,
        pvtime::StealTime,
        regs::{self, Aa32Reg, DebugBank},
    },
    mmu::TableCache,
    sys::{
        self,
        anon_fd::FdOps,
        hrtimer::{self, HrTimerOwner},
        run_page::RunPage,
        task::{FpState, SigSet},
        wake::{req, VcpuWake},
    },
    vm::Vm,
};
use kernel::{
    debugfs, impl_has_hr_timer,
    mm::virt::VmaNew,
    new_condvar, new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow, CondVar, Mutex},
    time::{
        hrtimer::{
            HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerRestart, RelativeHardMode,
        },
        Monotonic,
    },
    uaccess::{UserPtr, UserSlice},
};

mod exit;
mod irq;
mod load_put;
mod pvtime;
mod regs_io;
mod run;
mod timer;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use load_put::LazyCell;

use crate::logic::features::{self, feature};

/// Debug registers the guest programs (trapped; breakpoints are not armed in hardware).
#[derive(Clone, Copy, Default)]
pub(crate) struct DebugRegs {
    pub(crate) bvr: [u64; 16],
    pub(crate) bcr: [u64; 16],
    pub(crate) wvr: [u64; 16],
    pub(crate) wcr: [u64; 16],
    pub(crate) osdlr: u64,
    pub(crate) oslk: bool,
    /// MDCCINT_EL1: stored only; rkvm has no debug communication channel to interrupt.
    pub(crate) mdccint: u64,
    /// DBGVCR32_EL2: AArch32 EL1 vector catch, meaningless to an AArch64 EL1 (ONE_REG only).
    pub(crate) dbgvcr32: u64,
}

impl DebugRegs {
    /// A breakpoint or watchpoint bank.
    pub(crate) fn bank(&self, bank: DebugBank) -> &[u64; 16] {
        match bank {
            DebugBank::Bvr => &self.bvr,
            DebugBank::Bcr => &self.bcr,
            DebugBank::Wvr => &self.wvr,
            DebugBank::Wcr => &self.wcr,
        }
    }

    pub(crate) fn bank_mut(&mut self, bank: DebugBank) -> &mut [u64; 16] {
        match bank {
            DebugBank::Bvr => &mut self.bvr,
            DebugBank::Bcr => &mut self.bcr,
            DebugBank::Wvr => &mut self.wvr,
            DebugBank::Wcr => &mut self.wcr,
        }
    }

    /// OSLSR_EL1 as the guest and ONE_REG read it.
    pub(crate) fn oslsr(&self) -> u64 {
        regs::OSLSR_OSLM_IMPLEMENTED | if self.oslk { regs::OSLSR_OSLK } else { 0 }
    }
}

/// The vCPU state `KVM_RUN` owns, apart from FP/SIMD.
pub(crate) struct VcpuState {
    pub(crate) ctx: VcpuContext,
    /// `KVM_ARM_VCPU_INIT` features; `None` until the first init.
    pub(crate) features: Option<u32>,
    /// An MMIO exit userspace has yet to complete: the access, the guest's endianness and
    /// whether the instruction was 32 bits wide (`ESR_EL2.IL`).
    pub(crate) pending_mmio: Option<(MmioAccess, bool, bool)>,
    /// `KVM_SET_SIGNAL_MASK`: the mask applied while in `KVM_RUN`.
    pub(crate) sigmask: Option<SigSet>,
    pub(crate) debug: DebugRegs,
    /// ACTLR_EL1 and MDSCR_EL1: trapped and emulated, so never in the CPU.
    pub(crate) actlr: u64,
    pub(crate) mdscr: u64,
    /// FAR_EL2 of the last stage-2 abort exit, where `KVM_SET_VCPU_EVENTS` reports an
    /// external data abort (KVM's `kvm_vcpu_get_hfar`).
    pub(crate) fault_far: u64,
    /// DACR32_EL2, IFSR32_EL2, FPEXC32_EL2 (`regs::Aa32Reg`): ONE_REG state only.
    pub(crate) aa32: [u64; 3],
    /// Whether `KVM_RUN` loads the guest's FP/SIMD registers before the first entry.
    pub(crate) fp_hint: FpHint,
    /// The emulated physical timer and the wake-up bookkeeping (`vcpu/timer.rs`).
    pub(crate) timer: timer::VcpuTimer,
    /// PV stolen time (`vcpu/pvtime.rs`); a vCPU reset keeps it, as on KVM.
    pub(crate) steal: StealTime,
    /// How long the next WFI polls before sleeping, in ns (KVM's `vcpu->halt_poll_ns`;
    /// `logic::halt_poll`).
    pub(crate) halt_poll_ns: u32,
    /// Stage-2 table pages allocated ahead of faults (KVM's `mmu_page_cache`).
    pub(crate) tables: TableCache,
}

impl VcpuState {
    /// Back to the reset state (`KVM_ARM_VCPU_INIT`, PSCI `CPU_ON`), keeping the vCPU's
    /// identity, features and signal mask.
    fn reset(&mut self) {
        let ptrauth = self.ctx.ptrauth;
        self.ctx = VcpuContext::reset(self.ctx.mpidr);
        self.ctx.ptrauth = ptrauth;
        self.pending_mmio = None;
        self.debug = DebugRegs::default();
        self.actlr = 0;
        self.mdscr = 0;
        self.aa32 = Aa32Reg::RESET;
        self.timer.reset();
    }
}

/// One event counter, owned by the vCPU's thread and read racily by debugfs and the
/// stats fds (KVM's `vcpu->stat`, plain `u64`s updated with `++`).
///
/// Only the thread holding `Vcpu::inner` (in `KVM_RUN`, or its preempt notifier, which
/// runs on the same thread and counts only `loads`/`puts`, which the loop counts with
/// preemption off) writes a counter, so an update is a plain load and store, not an
/// atomic read-modify-write; the atomic type only makes the readers' racy loads sound.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// KVM's halt-polling statistics (`struct kvm_vcpu_stat_generic`), written by the vCPU
/// thread at the end of each halt (`Vcpu::halt`). `halt_wakeup` is counted by the kicker
/// (`sys::wake`); `halt_poll_invalid` is always 0 on arm64.
#[derive(Default)]
pub(crate) struct HaltStats {
    pub(crate) successful_poll: Counter,
    pub(crate) attempted_poll: Counter,
    pub(crate) poll_success_ns: Counter,
    pub(crate) poll_fail_ns: Counter,
    pub(crate) wait_ns: Counter,
    pub(crate) poll_success_hist: [Counter; HIST_COUNT],
    pub(crate) poll_fail_hist: [Counter; HIST_COUNT],
    pub(crate) wait_hist: [Counter; HIST_COUNT],
}

/// Per-vCPU event counters, shown in debugfs (`rkvm/<pid>-<vmid>/vcpu<id>`), that make
/// the lazy switching observable.
#[derive(Default)]
pub(crate) struct VcpuStats {
    pub(crate) runs: Counter,
    pub(crate) exits: Counter,
    pub(crate) exits_hvc: Counter,
    pub(crate) exits_smc: Counter,
    /// MMIO exits to userspace.
    pub(crate) exits_mmio: Counter,
    pub(crate) exits_stage2: Counter,
    pub(crate) exits_sysreg: Counter,
    /// WFI/WFIT and WFE/WFET traps.
    pub(crate) exits_wfi: Counter,
    pub(crate) exits_wfe: Counter,
    pub(crate) exits_irq: Counter,
    pub(crate) exits_fp: Counter,
    pub(crate) exits_other: Counter,
    /// `KVM_RUN`s that returned `EINTR` for a pending signal.
    pub(crate) signal_exits: Counter,
    /// Guest MMIO writes that signalled an ioeventfd instead of exiting to userspace.
    pub(crate) ioeventfd_writes: Counter,
    /// Guest MMIO writes appended to the coalesced-MMIO ring instead of exiting.
    pub(crate) coalesced_mmio_writes: Counter,
    /// Times the vCPU's thread slept in WFI (or suspended), and the wake-ups it got.
    pub(crate) wfi_sleeps: Counter,
    /// hrtimer (re)arms for the guest's timers: stays low while deadlines do not move.
    pub(crate) timer_arms: Counter,
    /// `vcpu_load`s and `vcpu_put`s: each moves the guest's EL1 state into or out of a CPU.
    pub(crate) loads: Counter,
    pub(crate) puts: Counter,
    /// Times the guest's FP/SIMD registers were loaded on its first FP use in a `KVM_RUN`
    /// (a trap), and up front at the start of one (`logic::fp::FpHint`).
    pub(crate) fp_loads: Counter,
    pub(crate) fp_eager_loads: Counter,
    /// vGIC list-register flushes before an entry and syncs after an exit that took the
    /// vGIC's lock. The others (no lock, no list register; every entry of a VM without a
    /// vGIC) are not counted on the way but derived (`VcpuStats::lock_free`).
    pub(crate) vgic_flush_slow: Counter,
    pub(crate) vgic_sync_slow: Counter,
    /// Exits whose sync saw an underflow or EOI maintenance condition.
    pub(crate) vgic_underflow: Counter,
    pub(crate) vgic_eoi_maintenance: Counter,
    /// Guest accesses to the distributor and redistributors, and SGIs it sent.
    pub(crate) vgic_mmio: Counter,
    pub(crate) vgic_sgi: Counter,
    /// Halt polling, for the stats fd only.
    pub(crate) halt: HaltStats,
}

impl core::fmt::Debug for VcpuStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The sums keep debugfs's rows as they were before HVC/SMC and WFI/WFE were
        // counted apart (for the binary stats' KVM names).
        writeln!(
            f,
            "exits_hypercall {}",
            self.exits_hvc.get() + self.exits_smc.get()
        )?;
        writeln!(
            f,
            "exits_wfx {}",
            self.exits_wfi.get() + self.exits_wfe.get()
        )?;
        let rows = [
            ("runs", &self.runs),
            ("exits", &self.exits),
            ("exits_hvc", &self.exits_hvc),
            ("exits_smc", &self.exits_smc),
            ("exits_mmio", &self.exits_mmio),
            ("exits_stage2", &self.exits_stage2),
            ("exits_sysreg", &self.exits_sysreg),
            ("exits_wfi", &self.exits_wfi),
            ("exits_wfe", &self.exits_wfe),
            ("exits_irq", &self.exits_irq),
            ("exits_fp", &self.exits_fp),
            ("exits_other", &self.exits_other),
            ("signal_exits", &self.signal_exits),
            ("ioeventfd_writes", &self.ioeventfd_writes),
            ("coalesced_mmio_writes", &self.coalesced_mmio_writes),
            ("wfi_sleeps", &self.wfi_sleeps),
            ("timer_arms", &self.timer_arms),
            ("loads", &self.loads),
            ("puts", &self.puts),
            ("fp_loads", &self.fp_loads),
            ("fp_eager_loads", &self.fp_eager_loads),
            ("vgic_flush_slow", &self.vgic_flush_slow),
            ("vgic_sync_slow", &self.vgic_sync_slow),
            ("vgic_underflow", &self.vgic_underflow),
            ("vgic_eoi_maintenance", &self.vgic_eoi_maintenance),
            ("vgic_mmio", &self.vgic_mmio),
            ("vgic_sgi", &self.vgic_sgi),
        ];
        for (name, value) in rows {
            writeln!(f, "{name} {}", value.get())?;
        }
        writeln!(
            f,
            "vgic_flush_fast {}",
            self.lock_free(&self.vgic_flush_slow)
        )?;
        writeln!(f, "vgic_sync_fast {}", self.lock_free(&self.vgic_sync_slow))
    }
}

impl VcpuStats {
    /// The entries whose flush or sync took no lock, given those that did (`slow`): each
    /// entry has one flush, one sync and one exit, so the exit path counts only `exits`.
    pub(crate) fn lock_free(&self, slow: &Counter) -> u64 {
        self.exits.get().saturating_sub(slow.get())
    }
}

/// Everything under `Vcpu::inner`.
pub(crate) struct VcpuInner {
    /// V0-V31, FPSR, FPCR: the kernel-mode FP area while in `KVM_RUN` (`sys::task`).
    pub(crate) fp: FpState,
    pub(crate) state: VcpuState,
}

/// The reset a PSCI `CPU_ON` owes a vCPU, done before it next runs or userspace next
/// accesses its registers (KVM's `KVM_REQ_VCPU_RESET` with `reset_state`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuOnReset {
    pub(crate) entry: u64,
    pub(crate) context: u64,
    /// The caller's data endianness, which the target inherits (SCTLR_EL1.EE).
    pub(crate) big_endian: bool,
}

/// Power state, as PSCI and `KVM_{GET,SET}_MP_STATE` see it.
pub(crate) struct Power {
    pub(crate) state: MpState,
    pub(crate) reset: Option<CpuOnReset>,
}

impl Power {
    pub(crate) fn off(&self) -> bool {
        self.state == MpState::Stopped
    }

    /// Nothing for the run loop to do before an entry: runnable, no `CPU_ON` reset owed.
    fn settled(&self) -> bool {
        self.state == MpState::Runnable && self.reset.is_none()
    }
}

/// A vCPU.
///
/// # Invariants
///
/// Pinned from its initialisation on: [`Vcpu::new`] builds it in its `Arc`, the only
/// way one is made, and it never moves out.
#[pin_data(PinnedDrop)]
pub(crate) struct Vcpu {
    /// Wakes the vCPU at its guest's next timer deadline (`sys::hrtimer`; cancelled by
    /// the drop before any field goes).
    #[pin]
    pub(crate) wake_timer: HrTimer<Vcpu>,
    /// Kicks: requests, where the thread is, how to reach it.
    pub(crate) wake: VcpuWake,
    pub(crate) id: u32,
    /// Position in the VM's vCPU list (creation order, KVM's `vcpu_idx`): the vGIC's
    /// index for this vCPU's redistributor and private interrupts.
    pub(crate) idx: usize,
    /// MPIDR_EL1 at creation: the PSCI identity of the vCPU.
    pub(crate) mpidr: u64,
    pub(crate) run: RunPage,
    /// The guest's EL1 state, switched lazily (`load_put.rs`).
    pub(crate) lazy: LazyCell,
    /// Event counters, shared with the debugfs file and the stats fds.
    #[pin]
    pub(crate) stats: debugfs::Scope<VcpuStats>,
    /// The stats file's id: `kvm-<pid>/vcpu-<id>`.
    pub(crate) stats_id: [u8; crate::logic::stats::NAME_SIZE],
    #[pin]
    pub(crate) inner: Mutex<VcpuInner>,
    #[pin]
    pub(crate) power: Mutex<Power>,
    /// Signalled when `power` changes (a `CPU_ON` or `KVM_SET_MP_STATE`).
    #[pin]
    pub(crate) power_wait: CondVar,
    /// The vCPU has a PV stolen-time structure; set once, never cleared.
    pub(crate) steal_time_on: AtomicBool,
}

impl Vcpu {
    /// A new, uninitialised vCPU `id`, the VM's `idx`-th, with its counters in `dir`.
    pub(crate) fn new(id: u32, idx: usize, dir: &debugfs::Dir) -> Result<Arc<Self>> {
        let affinity = regs::mpidr_for_vcpu(id);
        let name = CString::try_from_fmt(fmt!("vcpu{id}"))?;
        let stats_id = crate::logic::stats::vcpu_id(sys::mm::current_pid(), id);
        Arc::pin_init(
            try_pin_init!(Self {
                wake_timer <- HrTimer::new(),
                wake: VcpuWake::new(),
                id,
                idx,
                mpidr: affinity,
                run: RunPage::new()?,
                lazy: LazyCell::new(),
                stats <- dir.scope(VcpuStats::default(), &name, |stats, d| {
                    d.read_only_file(c"stats", stats)
                }),
                stats_id,
                inner <- new_mutex!(VcpuInner {
                    fp: FpState::default(),
                    state: VcpuState {
                        ctx: VcpuContext::reset(affinity),
                        features: None,
                        pending_mmio: None,
                        sigmask: None,
                        debug: DebugRegs::default(),
                        actlr: 0,
                        mdscr: 0,
                        fault_far: 0,
                        aa32: Aa32Reg::RESET,
                        fp_hint: FpHint::default(),
                        timer: timer::VcpuTimer::new(),
                        halt_poll_ns: 0,
                        steal: StealTime::default(),
                        tables: TableCache::new(),
                    },
                }, "Vcpu::inner"),
                power <- new_mutex!(Power { state: MpState::Runnable, reset: None }, "Vcpu::power"),
                power_wait <- new_condvar!("Vcpu::power_wait"),
                steal_time_on: AtomicBool::new(false),
            }),
            GFP_KERNEL_ACCOUNT,
        )
    }

    /// `KVM_ARM_VCPU_INIT`: (re)sets the vCPU to its reset state with `init`'s features.
    ///
    /// As KVM (`kvm_vcpu_init_check_features`, `__kvm_vcpu_set_target`): bits KVM does
    /// not know are `ENOENT`, known features rkvm does not offer `EINVAL`
    /// (`logic::features`), and every vCPU of a VM must have the same features, apart
    /// from `POWER_OFF`.
    fn init(&self, vm: &Vm, init: &sys::kvm_vcpu_init) -> Result<isize> {
        if init.target != sys::uapi::KVM_ARM_TARGET_GENERIC_V8 {
            return Err(EINVAL);
        }
        let features = features::check_features(&init.features, crate::vm::host_has_ptrauth())?;
        let mut inner = self.inner.lock();
        {
            let mut vm_features = vm.vcpu_features.lock();
            let shared = features & !feature::POWER_OFF;
            match *vm_features {
                Some(f) if f != shared => return Err(EINVAL),
                _ => *vm_features = Some(shared),
            }
            if features::has_ptrauth(shared) {
                vm.ptrauth.store(true, Relaxed);
            }
        }
        inner.fp = FpState::default();
        inner.state.ctx.ptrauth = features::has_ptrauth(features);
        inner.state.reset();
        // SAFETY: `inner` is held and no `KVM_RUN` is in progress, so nothing is loaded.
        unsafe { self.lazy.get() }.el1 = El1Regs::reset();
        inner.state.features = Some(features);
        self.power_update(|power| {
            power.state = if features & feature::POWER_OFF != 0 {
                MpState::Stopped
            } else {
                MpState::Runnable
            };
            power.reset = None;
        });
        Ok(0)
    }

    /// Applies a `CPU_ON` reset owed to this vCPU while no `KVM_RUN` is in progress
    /// (`inner` held, nothing loaded), so userspace's register accesses see the reset
    /// state, as KVM orders them after it.
    fn apply_owed_reset(&self, inner: &mut VcpuInner) {
        let Some(reset) = self.power_update(|power| power.reset.take()) else {
            return;
        };
        inner.fp = FpState::default();
        // SAFETY: `inner` is held and no `KVM_RUN` is in progress, so nothing is loaded.
        let el1 = &mut unsafe { self.lazy.get() }.el1;
        apply_cpu_on(&mut inner.state, el1, &reset);
    }

    /// Makes the vCPU re-evaluate its state before it next enters the guest: wakes it
    /// from WFI, or makes it exit the guest if it runs on another CPU. Takes no lock;
    /// cheap when the vCPU neither sleeps nor runs (see `sys::wake`).
    ///
    /// The vCPU's own thread (an SGI to itself, its timer's level reaching the vGIC) is
    /// not kicked: it neither runs the guest nor sleeps, and what a kick stands for is
    /// mirrored in the pending word (`req::VGIC_QUEUED`, `req::POWER`) that it reads
    /// before it enters, or re-evaluated after it takes `KICK` in a halt. A kick would
    /// only send it round the slow path once more. So an interrupt handler, which could
    /// interrupt that thread's halt poll, must use `wake.kick` (as the hrtimer does);
    /// every caller of this one runs in task context.
    pub(crate) fn kick(&self) {
        if !self.wake.is_current() {
            self.wake.kick(req::KICK);
        }
    }

    /// Powers the vCPU off (`SYSTEM_OFF`/`RESET` of a sibling, `KVM_SET_MP_STATE`) and
    /// makes its thread notice now rather than at its next exit.
    pub(crate) fn power_off(&self) {
        self.power_update(|power| power.state = MpState::Stopped);
        self.kick();
    }

    /// Changes the power state under its lock and republishes it as `req::POWER` in the
    /// pending word (set while it asks something of the run loop), so the loop takes the
    /// mutex only then. A change another thread makes must be followed by a kick, which
    /// gets a running or waiting thread to the entry check (`sys::wake`).
    pub(crate) fn power_update<R>(&self, f: impl FnOnce(&mut Power) -> R) -> R {
        let mut power = self.power.lock();
        let r = f(&mut power);
        self.publish_power(&power);
        r
    }

    /// Mirrors `power` into the pending word; `power` is `Vcpu::power`'s guard.
    fn publish_power(&self, power: &Power) {
        let unsettled = if power.settled() { 0 } else { req::POWER };
        self.wake.set_states(req::POWER, unsettled);
    }

    /// Whether the vCPU implements PSCI 0.2+ (it was initialised with that feature).
    pub(crate) fn has_psci(state: &VcpuState) -> bool {
        state.features.is_some_and(|f| f & feature::PSCI_0_2 != 0)
    }

    /// `KVM_GET_MP_STATE`: works before `KVM_ARM_VCPU_INIT` and while the vCPU runs.
    fn get_mp_state(&self) -> u32 {
        self.power.lock().state.to_uapi()
    }

    /// `KVM_SET_MP_STATE`, as KVM's `kvm_arch_vcpu_ioctl_set_mpstate`: `RUNNABLE` just
    /// changes the state (no reset), `STOPPED` powers off, `SUSPENDED` suspends.
    fn set_mp_state(&self, state: u32) -> Result<isize> {
        let state = MpState::from_uapi(state).ok_or(EINVAL)?;
        self.power_update(|power| power.state = state);
        self.power_wait.notify_all();
        self.kick();
        Ok(0)
    }

    /// `KVM_SET_SIGNAL_MASK`: `arg` points at `struct kvm_signal_mask`, or is NULL to
    /// clear the mask.
    fn set_signal_mask(&self, arg: usize) -> Result<isize> {
        if arg == 0 {
            self.inner.lock().state.sigmask = None;
            return Ok(0);
        }
        let mut reader = UserSlice::new(UserPtr::from_addr(arg), 4 + SigSet::SIZE).reader();
        let len: u32 = reader.read()?;
        if len as usize != SigSet::SIZE {
            return Err(EINVAL);
        }
        let mask = SigSet::from_bits_blockable(reader.read()?);
        self.inner.lock().state.sigmask = Some(mask);
        Ok(0)
    }
}

/// Resets `state` and `el1` (saved, not in the CPU) as PSCI `CPU_ON` does: the reset
/// state, then the entry point in PC, the context id in x0 and the caller's endianness.
pub(crate) fn apply_cpu_on(state: &mut VcpuState, el1: &mut El1Regs, reset: &CpuOnReset) {
    state.reset();
    *el1 = El1Regs::reset();
    if reset.big_endian {
        el1.regs.sys[regs::El1Reg::Sctlr as usize] |= regs::SCTLR_EE;
    }
    state.ctx.pc = reset.entry;
    state.ctx.set_reg(0, reset.context);
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for Vcpu {
        mode: RelativeHardMode<Monotonic>, field: self.wake_timer
    }
}

impl HrTimerCallback for Vcpu {
    type Pointer<'a> = Pin<&'a Vcpu>;

    /// The guest's earliest timer deadline: kick the vCPU (hardirq context, no lock).
    fn run(this: Pin<&Vcpu>, _ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        this.wake.kick(req::TIMER);
        HrTimerRestart::NoRestart
    }
}

// SAFETY: a `Vcpu` is pinned from its initialisation on (type invariant), and its
// `PinnedDrop` cancels `wake_timer` before any field is dropped.
unsafe impl HrTimerOwner for Vcpu {}

#[pinned_drop]
impl PinnedDrop for Vcpu {
    fn drop(self: Pin<&mut Self>) {
        hrtimer::cancel(&*self);
    }
}

/// What a vCPU fd holds: the vCPU and a reference keeping its VM alive.
pub(crate) struct VcpuFile {
    pub(crate) vm: Arc<Vm>,
    pub(crate) vcpu: Arc<Vcpu>,
}

impl FdOps for VcpuFile {
    const HAS_MMAP: bool = true;

    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        if !this.vm.owned_by_current() {
            return Err(EIO);
        }
        let vcpu = &this.vcpu;
        let user = |size| UserSlice::new(UserPtr::from_addr(arg), size);
        match VcpuIoctl::decode(cmd).ok_or(EINVAL)? {
            VcpuIoctl::Run if arg != 0 => Err(EINVAL),
            VcpuIoctl::Run => vcpu.run(&this.vm),
            VcpuIoctl::GetOneReg => {
                let reg: sys::kvm_one_reg = user(ioctl::ioc_size(cmd)).reader().read()?;
                vcpu.get_one_reg(&this.vm, &reg)
            }
            VcpuIoctl::SetOneReg => {
                let reg: sys::kvm_one_reg = user(ioctl::ioc_size(cmd)).reader().read()?;
                vcpu.set_one_reg(&this.vm, &reg)
            }
            VcpuIoctl::ArmVcpuInit => {
                let init: sys::kvm_vcpu_init = user(ioctl::ioc_size(cmd)).reader().read()?;
                vcpu.init(&this.vm, &init)
            }
            VcpuIoctl::GetRegList => vcpu.get_reg_list(arg),
            VcpuIoctl::GetMpState => {
                let state = sys::kvm_mp_state {
                    mp_state: vcpu.get_mp_state(),
                };
                user(ioctl::ioc_size(cmd)).writer().write(&state)?;
                Ok(0)
            }
            VcpuIoctl::SetMpState => {
                let state: sys::kvm_mp_state = user(ioctl::ioc_size(cmd)).reader().read()?;
                vcpu.set_mp_state(state.mp_state)
            }
            VcpuIoctl::SetSignalMask => vcpu.set_signal_mask(arg),
            op @ (VcpuIoctl::SetDeviceAttr
            | VcpuIoctl::GetDeviceAttr
            | VcpuIoctl::HasDeviceAttr) => vcpu.device_attr(&this.vm, op, arg),
            VcpuIoctl::GetStatsFd => crate::vm::vcpu_stats_fd(&this.vm, vcpu),
            VcpuIoctl::GetVcpuEvents => vcpu.get_events(arg),
            VcpuIoctl::SetVcpuEvents => vcpu.set_events(arg),
        }
    }

    /// Maps the pages KVM's `kvm_vcpu_fault` serves, by page offset: `kvm_run` at 0, the
    /// VM's coalesced-MMIO ring at `KVM_COALESCED_MMIO_PAGE_OFFSET`; other pages of the
    /// mapping stay empty (an access gets `SIGBUS`, as on KVM).
    fn mmap(this: ArcBorrow<'_, Self>, vma: &VmaNew) -> Result {
        // SAFETY: `vma` is a live VMA being set up; its page offset is fixed by now.
        let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff } as u64;
        let mixed = vma.set_mixedmap();
        let pages = ((vma.end() - vma.start()) / PAGE_SIZE) as u64;
        for (i, page) in coalesced::vcpu_mapping(pgoff, pages) {
            let addr = vma.start() + i as usize * PAGE_SIZE;
            match page {
                VcpuPage::Run => mixed.vm_insert_page(addr, this.vcpu.run.page())?,
                VcpuPage::Ring => this.vm.map_coalesced_ring(mixed, addr)?,
            }
        }
        Ok(())
    }
}
