// SPDX-License-Identifier: GPL-2.0

//! Handling a guest exit in the host: what the run loop does after each world switch.
//!
//! KVM counterpart: `handle_exit()` and the `arm_exit_handlers` table
//! (`arch/arm64/kvm/handle_exit.c`), `io_mem_abort` (`mmio.c`), `kvm_handle_guest_abort`
//! (`mmu.c`), `kvm_handle_sys_reg` (`sys_regs.c`) and `kvm_smccc_call_handler` (`psci.c`).
//! Decoding is `logic::esr`; every decision below maps a decoded exit to an action.

use super::{timer, CpuOnReset, Vcpu, VcpuState};
use crate::{
    hyp::{
        self,
        context::{El1Block, Exit, ExitCode, VcpuContext},
        sysreg,
    },
    logic::{
        self,
        esr::{Ec, Esr, Fault, SysRegAccess, Wfx},
        fwregs::{self, FwBitmaps, Service},
        halt_poll::{HaltTimes, PollStat},
        inject::{self, El1Exception, Injected},
        mmio::MmioAccess,
        psci::{self, Args, Call, Decision, MpState, SystemEvent},
        regs::{El1Reg, SysReg, SCTLR_E0E, SCTLR_EE},
        smccc_filter::Action as FilterAction,
        step,
        sysregs::{self, GicReg, Guest, Storage, SysRegDesc},
        timer as timer_logic,
    },
    mmu,
    sys::{
        self, halt_poll,
        task::{self, GuestFp},
        wake::req,
    },
    vm::{self, InKernel, Vm},
};
use kernel::{prelude::*, processor::cpu_relax};

/// What the run loop does next.
pub(crate) enum Action {
    /// Enter the guest again.
    Reenter,
    /// Return from `KVM_RUN` to userspace; `kvm_run` says why.
    ToUser,
}

/// PSTATE.M[3:0] of EL0t.
const PSTATE_MODE_MASK: u64 = 0xf;

impl Vcpu {
    pub(super) fn handle_exit(
        &self,
        vm: &Vm,
        state: &mut VcpuState,
        fp: &mut GuestFp<'_>,
        exit: &Exit,
    ) -> Result<Action> {
        self.stats.exits.inc();
        match exit.code {
            // The host took its interrupt when the run loop unmasked.
            ExitCode::Irq | ExitCode::Fiq => {
                self.stats.exits_irq.inc();
                Ok(Action::Reenter)
            }
            // A physical SError while the guest ran is charged to the guest, as KVM does
            // for the errors it can contain: the guest gets a virtual SError.
            ExitCode::SError => {
                state.ctx.pending_vserror = true;
                state.ctx.vsesr = crate::logic::events::NO_SYNDROME;
                Ok(Action::Reenter)
            }
            ExitCode::Sync => self.handle_sync(vm, state, fp, Esr(exit.esr), exit),
            // The guest never ran (KVM's ARM_EXCEPTION_HYP_GONE): nothing to handle, and
            // its state is as before the entry, so a later KVM_RUN resumes it. No
            // KVM_EXIT_FAIL_ENTRY_* reason bit applies (the CPU is supported).
            ExitCode::FailEntry(_) => {
                self.run.set_fail_entry(0, exit.cpu);
                Ok(Action::ToUser)
            }
        }
    }

    fn handle_sync(
        &self,
        vm: &Vm,
        state: &mut VcpuState,
        fp: &mut GuestFp<'_>,
        esr: Esr,
        exit: &Exit,
    ) -> Result<Action> {
        let stats = &self.stats;
        let ctx = &mut state.ctx;
        let counter = match esr.ec() {
            Ec::Hvc64 => &stats.exits_hvc,
            Ec::Smc64 => &stats.exits_smc,
            Ec::DabtLow | Ec::IabtLow => &stats.exits_stage2,
            Ec::Sys64 => &stats.exits_sysreg,
            // As KVM's wfe_exit_stat and wfi_exit_stat (WFIT counts as a WFI).
            Ec::Wfx => match esr.wfx() {
                Wfx::Wfe | Wfx::Wfet => &stats.exits_wfe,
                Wfx::Wfi | Wfx::Wfit => &stats.exits_wfi,
            },
            Ec::FpAsimd => &stats.exits_fp,
            _ => &stats.exits_other,
        };
        counter.inc();
        match esr.ec() {
            Ec::Hvc64 => {
                // ELR already points past the HVC. A non-zero immediate is not an SMCCC
                // call (KVM answers those with "not supported" too).
                if esr.hvc_imm() != 0 {
                    ctx.set_reg(0, psci::NOT_SUPPORTED);
                    return Ok(Action::Reenter);
                }
                self.smccc(vm, state, esr)
            }
            Ec::Smc64 => {
                // A trapped SMC returns to the SMC itself: step over it.
                skip_instr(ctx, esr.il32());
                if esr.hvc_imm() != 0 {
                    ctx.set_reg(0, psci::NOT_SUPPORTED);
                    return Ok(Action::Reenter);
                }
                self.smccc(vm, state, esr)
            }
            Ec::DabtLow => {
                state.fault_far = exit.far;
                self.data_abort(vm, state, esr, exit)
            }
            Ec::IabtLow => {
                state.fault_far = exit.far;
                let ipa = exit.fault_ipa();
                if beyond_ipa(vm, ctx, esr, ipa, true) {
                    return Ok(Action::Reenter);
                }
                // An external abort on the fetch (routed here by HCR_EL2.TEA on a RAS
                // host; HPFAR is not valid then) is the guest's, as for data.
                let fetch = esr.data_abort().fault;
                if !matches!(
                    fetch,
                    Fault::Translation(_) | Fault::AccessFlag(_) | Fault::Permission(_)
                ) {
                    let far = exit.far;
                    inject_into(ctx, Injected::InstructionAbort { far }, esr.il32());
                    return Ok(Action::Reenter);
                }
                match vm.mmu.fault(&mut state.tables, ipa, false, false)? {
                    mmu::Fault::Mapped => {}
                    // Executing from MMIO or outside memory: the guest gets the abort.
                    mmu::Fault::Mmio => inject_into(
                        ctx,
                        Injected::InstructionAbort { far: exit.far },
                        esr.il32(),
                    ),
                }
                Ok(Action::Reenter)
            }
            Ec::Sys64 => {
                self.emulate_sys_reg(vm, state, esr.sys_reg());
                Ok(Action::Reenter)
            }
            // The guest's first FP/SIMD instruction in this KVM_RUN: give it its registers
            // and retry the instruction.
            Ec::FpAsimd if fp.on_trap(&mut state.fp_hint) => {
                stats.fp_loads.inc();
                Ok(Action::Reenter)
            }
            Ec::Wfx => {
                skip_instr(ctx, esr.il32());
                match esr.wfx() {
                    // WFI (WFIT is not offered: ID_AA64ISAR2.WFxT is hidden).
                    Wfx::Wfi | Wfx::Wfit if self.has_irqchip(vm) => {
                        self.halt(vm, state, MpState::Runnable);
                    }
                    // WFE, or WFI with no in-kernel irqchip to wait for (KVM then also
                    // returns to the guest): give the CPU away and carry on.
                    _ => task::cond_resched(),
                }
                Ok(Action::Reenter)
            }
            // SVE, SME and everything without a handler: not offered to the guest.
            _ => {
                inject_into(ctx, Injected::Undefined, esr.il32());
                Ok(Action::Reenter)
            }
        }
    }

    /// Waits, polling first, until an interrupt is pending for the vCPU (`true`), or
    /// until the run loop has something else to do (`false`): a signal, or the power
    /// state leaving `expect`. The guest's timers keep an hrtimer armed at their next
    /// deadline meanwhile, whose expiry kicks the vCPU.
    ///
    /// KVM counterpart: `kvm_vcpu_wfi`/`kvm_vcpu_halt`. The thread first spins for up to
    /// the vCPU's poll window while it is alone on its CPU (`logic::halt_poll`), watching
    /// only the request word and its signals, then sleeps; any request ends the spin and
    /// the conditions are evaluated again. The window then follows the halt's length, and
    /// the halt goes into KVM's halt-polling statistics. No wake-up is lost: a kick
    /// consumed at the top of an iteration is covered by the checks after it, and one
    /// made after the checks ends the spin or keeps `block` from sleeping (`sys::wake`).
    pub(super) fn halt(&self, vm: &Vm, state: &mut VcpuState, expect: MpState) -> bool {
        let params = halt_poll::params();
        let window = state
            .halt_poll_ns
            .min(logic::halt_poll::max_poll_ns(vm.halt_poll(), params.max_ns));
        let window_ticks = logic::halt_poll::window_ticks(window, vm.cntfrq);
        let start = sysreg::cntpct_el0();
        let mut poll_end = start;
        let mut polling = window != 0;
        let mut waited = false;
        let woken = loop {
            self.timer_sync(vm, state, self.wake.take(req::TIMER) != 0);
            self.wake.take(req::KICK);
            if state.ctx.pending_vserror || self.irq_pending(vm) {
                break true;
            }
            if task::signal_pending() || self.power.lock().state != expect {
                break false;
            }
            if polling {
                polling = self.poll(start, window_ticks);
                poll_end = sysreg::cntpct_el0();
                if polling {
                    continue;
                }
            }
            self.stats.wfi_sleeps.inc();
            waited |= self.wake.block();
        };
        let end = sysreg::cntpct_el0();
        let ns = |ticks: u64| timer_logic::ticks_to_ns(ticks, vm.cntfrq);
        let times = HaltTimes {
            polled: window != 0,
            waited,
            poll_ns: ns(poll_end.wrapping_sub(start)),
            wait_ns: ns(end.wrapping_sub(poll_end)),
        };
        self.count_halt(&times);
        // The maximum again: userspace may have changed it during the halt.
        let max = logic::halt_poll::max_poll_ns(vm.halt_poll(), halt_poll::params().max_ns);
        let halt_ns = ns(end.wrapping_sub(start));
        state.halt_poll_ns = logic::halt_poll::adjust(window, halt_ns, max, &params);
        woken
    }

    /// Spins until a request or a signal is pending (`true`), or until the poll window
    /// of `window` counter ticks from `start` is over or spinning stops paying (`false`):
    /// KVM's poll loop with `kvm_vcpu_can_poll`. `cpu_relax` is `YIELD`, which hands the
    /// core to a sibling hardware thread (and, under QEMU's TCG, to the next emulated
    /// CPU).
    fn poll(&self, start: u64, window: u64) -> bool {
        loop {
            if self.wake.poll_done() {
                return true;
            }
            cpu_relax();
            if !halt_poll::can_poll() || sysreg::cntpct_el0().wrapping_sub(start) >= window {
                return false;
            }
        }
    }

    /// Adds one halt to the statistics (`update_halt_poll_stats` and the wait time).
    fn count_halt(&self, times: &HaltTimes) {
        let s = &self.stats.halt;
        match times.poll_stat() {
            None => {}
            Some(PollStat::Success { ns, bucket }) => {
                s.attempted_poll.inc();
                s.successful_poll.inc();
                s.poll_success_ns.add(ns);
                s.poll_success_hist[bucket].inc();
            }
            Some(PollStat::Fail { ns, bucket }) => {
                s.attempted_poll.inc();
                s.poll_fail_ns.add(ns);
                s.poll_fail_hist[bucket].inc();
            }
        }
        if let Some((ns, bucket)) = times.wait_stat() {
            s.wait_ns.add(ns);
            s.wait_hist[bucket].inc();
        }
    }

    /// A stage-2 data abort: map guest memory, or turn the access into an MMIO exit.
    fn data_abort(&self, vm: &Vm, state: &mut VcpuState, esr: Esr, exit: &Exit) -> Result<Action> {
        let da = esr.data_abort();
        let ctx = &mut state.ctx;
        let ipa = exit.fault_ipa();
        if beyond_ipa(vm, ctx, esr, ipa, false) {
            return Ok(Action::Reenter);
        }
        match da.fault {
            Fault::Translation(_) | Fault::AccessFlag(_) | Fault::Permission(_) => {}
            // Beyond the IPA space, or something stage 2 cannot fix: the guest's problem.
            _ => {
                inject_into(ctx, Injected::DataAbort { far: exit.far }, esr.il32());
                return Ok(Action::Reenter);
            }
        }
        // A write's permission fault is a write-protected page (dirty logging), which
        // `fault` makes writable, or a read-only slot, which it reports as MMIO. A
        // stage-1 walk counts as a write, as KVM's `kvm_is_write_fault`: the walker may
        // update the guest's descriptors (access flag), so its tables must be writable.
        let write = da.write || da.s1ptw;
        if let mmu::Fault::Mapped = vm
            .mmu
            .fault(&mut state.tables, ipa, write, da.cache_maint)?
        {
            return Ok(Action::Reenter);
        }
        if da.s1ptw {
            // The guest's own page tables live outside its memory.
            inject_into(ctx, Injected::DataAbort { far: exit.far }, esr.il32());
            return Ok(Action::Reenter);
        }
        if da.cache_maint {
            // Cache maintenance on MMIO has nothing to maintain.
            skip_instr(ctx, esr.il32());
            return Ok(Action::Reenter);
        }
        if !da.isv {
            // An access KVM cannot describe to userspace either (KVM's -ENOSYS).
            return Err(ENOSYS);
        }
        let access = MmioAccess {
            ipa,
            len: da.access_size,
            write: da.write,
            sign_extend: da.sign_extend,
            sixty_four: da.sixty_four,
            reg: da.reg,
        };
        let big_endian = guest_big_endian(ctx);
        let data = if access.write {
            access.write_data(ctx.reg(access.reg), big_endian)
        } else {
            [0; 8]
        };
        // The vGIC's and the ITS's frames are emulated here and never reach userspace.
        // Registers are little-endian; the access's own conversion handles a big-endian
        // guest.
        let value = u64::from_le_bytes(data);
        let mut emulated = None;
        if let Some(vgic) = vm.vgic().filter(|v| v.ready()) {
            if !access.write {
                // A read of the pending state sees the timers' levels as of now, not of
                // the last entry (KVM samples them on every exit).
                self.timer_sync(vm, state, self.wake.take(req::TIMER) != 0);
            }
            emulated = vgic.mmio(vm, self.idx, ipa, access.len, access.write, value);
            if emulated.is_some() {
                self.stats.vgic_mmio.inc();
            }
        }
        let emulated =
            emulated.or_else(|| crate::its::mmio(vm, ipa, access.len, access.write, value));
        if let Some(read) = emulated {
            let ctx = &mut state.ctx;
            if !access.write {
                let v = access.read_value(read.to_le_bytes(), big_endian);
                ctx.set_reg(access.reg, v);
            }
            skip_instr(ctx, esr.il32());
            return Ok(Action::Reenter);
        }
        let ctx = &mut state.ctx;
        // An ioeventfd or a coalesced-MMIO zone may take a write: the guest continues
        // without an exit. Reads always go to userspace.
        if access.write {
            let taken = vm.mmio_write_in_kernel(ipa, u32::from(access.len), &data);
            if let Some(dev) = taken {
                match dev {
                    InKernel::Ioeventfd => self.stats.ioeventfd_writes.inc(),
                    InKernel::Coalesced => self.stats.coalesced_mmio_writes.inc(),
                }
                skip_instr(ctx, esr.il32());
                return Ok(Action::Reenter);
            }
        }
        self.run
            .set_mmio(ipa, data, u32::from(access.len), access.write);
        self.stats.exits_mmio.inc();
        state.pending_mmio = Some((access, big_endian, esr.il32()));
        Ok(Action::ToUser)
    }

    /// A trapped access to a register of the table (`logic::sysregs`): emulated as its
    /// row says, or UNDEF for a register rkvm does not offer (PMU, LORegions, IMPDEF, ...)
    /// or an access its row does not allow.
    fn emulate_sys_reg(&self, vm: &Vm, state: &mut VcpuState, acc: SysRegAccess) {
        let r = SysReg::new(acc.op0, acc.op1, acc.crn, acc.crm, acc.op2);
        let result = match sysregs::lookup(r) {
            Some(desc) if desc.guest.allows(acc.read) => self.sys_reg_access(vm, state, desc, acc),
            _ => None,
        };
        let ctx = &mut state.ctx;
        match result {
            Some(read) => {
                if let (true, Some(v)) = (acc.read, read) {
                    ctx.set_reg(acc.rt, v);
                }
                // MSR/MRS traps (EC 0x18) come from AArch64 only: 32-bit instructions.
                skip_instr(ctx, true);
            }
            None => inject_into(ctx, Injected::Undefined, true),
        }
    }

    /// Performs an access `desc.guest` allows: `Some(value read)` (`Some(None)` after a
    /// write), or `None` where the access fails after all (a VM without a ready vGIC).
    fn sys_reg_access(
        &self,
        vm: &Vm,
        state: &mut VcpuState,
        desc: &SysRegDesc,
        acc: SysRegAccess,
    ) -> Option<Option<u64>> {
        let value = state.ctx.reg(acc.rt);
        let write = (!acc.read).then_some(value);
        let dbg = &mut state.debug;
        Some(match desc.guest {
            Guest::Undef => return None,
            Guest::Saved(_) => {
                let slot = match desc.storage? {
                    Storage::El1(El1Reg::Actlr) => &mut state.actlr,
                    Storage::El1(El1Reg::Mdscr) => &mut state.mdscr,
                    Storage::Debug(bank, n) => &mut dbg.bank_mut(bank)[usize::from(n)],
                    // Kept for the guest to read back; no channel raises its interrupts.
                    Storage::Mdccint => &mut dbg.mdccint,
                    Storage::Oslsr => return Some(Some(dbg.oslsr())),
                    Storage::Osdlr => {
                        if let Some(v) = write {
                            dbg.osdlr = v & 1;
                        }
                        return Some(Some(dbg.osdlr));
                    }
                    _ => return None,
                };
                if let Some(v) = write {
                    *slot = v;
                }
                Some(*slot)
            }
            Guest::Id => Some(vm.id_reg(acc.crm, acc.op2)),
            Guest::Oslar => {
                dbg.oslk = value & 1 != 0;
                None
            }
            Guest::Zero(_) => Some(0),
            Guest::Ptimer(reg) => Some(timer::ptimer_access(vm, state, reg, write)),
            Guest::Gic(reg) => return self.gic_sysreg(vm, reg, acc.read, value),
            Guest::SetWay => {
                // Set/way operations cannot be virtualised precisely; as KVM, make all
                // guest memory fault back in, which cleans each page to PoC as it is
                // mapped again.
                vm.mmu.lock().unmap_range(0, u64::MAX);
                None
            }
        })
    }

    /// A trapped GICv3 CPU-interface register: a write to ICC_SGI1R_EL1, ICC_ASGI1R_EL1 or
    /// ICC_SGI0R_EL1 (trapped because HCR_EL2.IMO/FMO are set) generates SGIs; ICC_DIR_EL1
    /// (trapped by ICH_HCR_EL2.TDIR) deactivates through the vGIC; ICC_SRE_EL1
    /// (trapped at load, see `hyp/vhe.rs`) reads as SRE|DFB|DIB and ignores writes, as
    /// KVM's. A VM without a ready vGIC gets UNDEF.
    fn gic_sysreg(&self, vm: &Vm, reg: GicReg, read: bool, value: u64) -> Option<Option<u64>> {
        let vgic = vm.vgic()?;
        match reg {
            GicReg::Sre => Some(read.then_some(ICC_SRE_EL1_VALUE)),
            GicReg::Dir => vgic.deactivate(self.idx, value).then_some(None),
            GicReg::Sgi { group1 } => {
                let sent = vgic.send_sgi(self.idx, value, group1);
                if sent {
                    self.stats.vgic_sgi.inc();
                }
                sent.then_some(None)
            }
        }
    }

    /// An SMCCC call (HVC or SMC): PSCI, the SMCCC discovery functions, PV time, TRNG and
    /// KVM's vendor services, as `psci::decide` rules. As KVM, an answer sets x0..x3
    /// (unused results are 0), and a call the VM's firmware bitmaps refuse answers
    /// `NOT_SUPPORTED`. The VM's SMCCC filter comes first: it may deny the call or
    /// forward it to userspace (`KVM_EXIT_HYPERCALL`, the arguments left in the GPRs).
    fn smccc(&self, vm: &Vm, state: &mut VcpuState, esr: Esr) -> Result<Action> {
        if vm.smccc_filtered() {
            if let Some(action) = self.smccc_filter(vm, state, esr) {
                return Ok(action);
            }
        }
        let ctx = &state.ctx;
        let fw = vm.fw_bitmaps();
        let call = if fw.allows(ctx.reg(0) as u32) {
            psci::decode([ctx.reg(0), ctx.reg(1), ctx.reg(2), ctx.reg(3)])
        } else {
            Call::Unknown(ctx.reg(0) as u32)
        };
        let cfg = psci::Config {
            version: psci::version(Vcpu::has_psci(state), vm.psci_version()),
            system_suspend: vm.system_suspend(),
            pv_time: fw.enabled(Service::PvTime),
            steal_time: state.steal.base().is_some(),
        };
        let value = match psci::decide(call, &cfg) {
            Decision::Return(v) => v,
            Decision::Return4(regs) => {
                set_regs(&mut state.ctx, regs);
                return Ok(Action::Reenter);
            }
            Decision::Firmware(call) => {
                set_regs(&mut state.ctx, firmware_call(vm, fw, call));
                return Ok(Action::Reenter);
            }
            // Suspend is a WFI as far as the caller can tell (as in KVM).
            Decision::CpuSuspend => {
                if self.has_irqchip(vm) {
                    self.halt(vm, state, MpState::Runnable);
                } else {
                    task::cond_resched();
                }
                psci::SUCCESS
            }
            // The run loop sleeps before the next entry; a vCPU userspace makes runnable
            // again without a CPU_ON sees the call succeed.
            Decision::CpuOff => {
                self.power_update(|power| power.state = MpState::Stopped);
                psci::SUCCESS
            }
            Decision::CpuOn {
                target_mpidr,
                entry,
                context,
                already_on,
            } => {
                let big_endian = guest_big_endian(ctx);
                cpu_on(
                    vm,
                    target_mpidr,
                    CpuOnReset {
                        entry,
                        context,
                        big_endian,
                    },
                    already_on,
                )
            }
            Decision::AffinityInfo {
                target,
                lowest_level,
            } => affinity_info(vm, target, lowest_level),
            Decision::PvTimeSt => self.pv_time_st(vm, state),
            Decision::SystemSuspend { args } => {
                set_args(&mut state.ctx, args);
                self.run
                    .set_system_event_no_data(sys::uapi::KVM_SYSTEM_EVENT_SUSPEND);
                return Ok(Action::ToUser);
            }
            Decision::SystemEvent { event, flags, args } => {
                state.ctx.set_reg(0, psci::INTERNAL_FAILURE);
                set_args(&mut state.ctx, args);
                let kind = match event {
                    SystemEvent::Shutdown => sys::uapi::KVM_SYSTEM_EVENT_SHUTDOWN,
                    SystemEvent::Reset => sys::uapi::KVM_SYSTEM_EVENT_RESET,
                };
                return Ok(self.system_event(vm, kind, flags));
            }
        };
        state.ctx.set_reg(0, value);
        set_args(&mut state.ctx, Args::Zero);
        Ok(Action::Reenter)
    }

    /// The SMCCC filter's verdict on the call in x0, when it is not "handle": denied
    /// (`NOT_SUPPORTED`) or forwarded to userspace. Out of line: only VMs with a filter
    /// come here.
    #[cold]
    #[inline(never)]
    fn smccc_filter(&self, vm: &Vm, state: &mut VcpuState, esr: Esr) -> Option<Action> {
        let func = state.ctx.reg(0) as u32;
        match vm.smccc_action(func) {
            FilterAction::Handle => None,
            FilterAction::Deny => {
                state.ctx.set_reg(0, psci::NOT_SUPPORTED);
                set_args(&mut state.ctx, Args::Zero);
                Some(Action::Reenter)
            }
            FilterAction::FwdToUser => {
                let mut flags = 0;
                if esr.ec() == Ec::Smc64 {
                    flags |= u64::from(sys::uapi::KVM_HYPERCALL_EXIT_SMC);
                }
                if !esr.il32() {
                    flags |= u64::from(sys::uapi::KVM_HYPERCALL_EXIT_16BIT);
                }
                self.run.set_hypercall(u64::from(func), flags);
                Some(Action::ToUser)
            }
        }
    }

    /// SYSTEM_OFF/RESET and their PSCI 1.x variants: every vCPU stops and userspace gets
    /// the event, with `flags` in `data[0]`.
    fn system_event(&self, vm: &Vm, kind: u32, flags: u64) -> Action {
        for vcpu in vm.vcpus.lock().iter() {
            vcpu.power_off();
        }
        self.run.set_system_event(kind, flags);
        Action::ToUser
    }
}

/// x0..x3 after a call.
fn set_regs(ctx: &mut VcpuContext, regs: [u64; 4]) {
    for (n, v) in regs.into_iter().enumerate() {
        ctx.set_reg(n as u8, v);
    }
}

/// The answer (x0..x3) to a call of the services behind the firmware bitmaps that need
/// the kernel: `KVM_FEATURES` (the bitmaps), `KVM_PTP` (the clock) and TRNG (the CRNG).
fn firmware_call(vm: &Vm, fw: FwBitmaps, call: Call) -> [u64; 4] {
    let mut ret = [0u64; 4];
    match call {
        Call::VendorHypFeatures => {
            let (features, features_2) = fw.vendor_features();
            ret[0] = features;
            ret[2] = features_2;
        }
        Call::KvmPtp { counter } => {
            let snapshot = sys::clock::realtime_and_counter();
            ret = fwregs::ptp(counter, snapshot, vm.cntvoff(), vm.cntpoff());
        }
        Call::TrngVersion => ret[0] = fwregs::TRNG_VERSION_1_0,
        Call::TrngFeatures { function } => ret[0] = fwregs::trng_features(function),
        Call::TrngGetUuid => ret = fwregs::TRNG_UUID,
        Call::TrngRnd { wide, bits } => {
            // Only the words the request covers are drawn; the copy is wiped after.
            let mut random = [0u64; 3];
            let words = (bits as usize).div_ceil(64).min(3);
            random[..words]
                .iter_mut()
                .for_each(|w| *w = sys::clock::random_u64());
            ret = fwregs::trng_rnd(wide, bits, random);
            sys::clock::wipe(&mut random);
        }
        _ => ret[0] = psci::NOT_SUPPORTED,
    }
    ret
}

/// Sets x1..x3 after a call as `args` says.
fn set_args(ctx: &mut VcpuContext, args: Args) {
    for n in 1..4 {
        match args {
            Args::Zero => ctx.set_reg(n, 0),
            Args::Keep => {}
            Args::Narrow => ctx.set_reg(n, ctx.reg(n) & 0xffff_ffff),
        }
    }
}

/// Steps the guest past the instruction that trapped (`il32`: ESR_EL2.IL).
fn skip_instr(ctx: &mut VcpuContext, il32: bool) {
    (ctx.pc, ctx.pstate) = step::skip(ctx.pc, ctx.pstate, il32);
}

/// A translation fault at or beyond the VM's IPA size: no memslot can be there, and the
/// guest gets a synchronous external abort reporting the IPA — with the fault status of
/// an address-size fault when the IPA is also beyond what the host supports — as KVM's
/// `kvm_handle_guest_abort` does. Returns whether it was such a fault.
fn beyond_ipa(vm: &Vm, ctx: &mut VcpuContext, esr: Esr, ipa: u64, fetch: bool) -> bool {
    let (fault, il32) = (esr.data_abort().fault, esr.il32());
    if !matches!(fault, Fault::Translation(_)) || ipa < vm.ipa_limit() {
        return false;
    }
    let what = match (ipa >> vm::max_ipa_bits() != 0, fetch) {
        (true, fetch) => Injected::AddressSize { far: ipa, fetch },
        (false, true) => Injected::InstructionAbort { far: ipa },
        (false, false) => Injected::DataAbort { far: ipa },
    };
    inject_into(ctx, what, il32);
    true
}

/// Whether the guest's data accesses at its current exception level are big-endian
/// (SCTLR_EL1.E0E at EL0, EE at EL1): KVM's `kvm_vcpu_is_be`.
fn guest_big_endian(ctx: &VcpuContext) -> bool {
    // SAFETY: in the run loop with the vCPU loaded.
    let sctlr = unsafe { hyp::el1_read(El1Reg::Sctlr) };
    sctlr
        & if ctx.pstate & PSTATE_MODE_MASK == 0 {
            SCTLR_E0E
        } else {
            SCTLR_EE
        }
        != 0
}

/// PSCI CPU_ON, as KVM's `kvm_psci_vcpu_on`: a stopped target becomes runnable at once
/// (so a second CPU_ON answers `already_on` and AFFINITY_INFO answers ON) and owes a reset
/// to `reset`'s entry point, done before it runs or userspace reads its registers.
fn cpu_on(vm: &Vm, target: u64, reset: CpuOnReset, already_on: u64) -> u64 {
    if !psci::valid_affinity(target) {
        return psci::INVALID_PARAMETERS;
    }
    let Some(vcpu) = vm.vcpu_by_mpidr(target) else {
        return psci::INVALID_PARAMETERS;
    };
    let started = vcpu.power_update(|power| {
        if !power.off() {
            return false;
        }
        power.reset = Some(reset);
        power.state = MpState::Runnable;
        true
    });
    if !started {
        return already_on;
    }
    vcpu.power_wait.notify_all();
    vcpu.kick();
    psci::SUCCESS
}

/// PSCI AFFINITY_INFO: ON if any vCPU in the affinity group is on.
fn affinity_info(vm: &Vm, target: u64, lowest_level: u64) -> u64 {
    let Some(mask) = psci::affinity_level_mask(lowest_level) else {
        return psci::INVALID_PARAMETERS;
    };
    if !psci::valid_affinity(target) {
        return psci::INVALID_PARAMETERS;
    }
    let mut matched = false;
    for vcpu in vm
        .vcpus
        .lock()
        .iter()
        .filter(|v| v.mpidr & mask == target & mask)
    {
        matched = true;
        if !vcpu.power.lock().off() {
            return psci::AFFINITY_ON;
        }
    }
    if matched {
        psci::AFFINITY_OFF
    } else {
        psci::INVALID_PARAMETERS
    }
}

/// Injects a synchronous exception into the guest's EL1 (whose registers are loaded).
fn inject_into(ctx: &mut VcpuContext, what: Injected, il32: bool) {
    // SAFETY: called from the run loop's exit handling, with the vCPU loaded.
    unsafe {
        let (elr_el1, spsr_el1) = hyp::el1_exception_regs();
        let mut s = El1Exception {
            pc: ctx.pc,
            pstate: ctx.pstate,
            vbar_el1: hyp::el1_read(El1Reg::Vbar),
            elr_el1,
            spsr_el1,
            esr_el1: hyp::el1_read(El1Reg::Esr),
            far_el1: hyp::el1_read(El1Reg::Far),
        };
        inject::inject(&mut s, what, hyp::el1_read(El1Reg::Sctlr), il32);
        ctx.pc = s.pc;
        ctx.pstate = s.pstate;
        hyp::set_el1_exception_regs(s.elr_el1, s.spsr_el1);
        hyp::el1_write(El1Reg::Esr, s.esr_el1);
        hyp::el1_write(El1Reg::Far, s.far_el1);
    }
}

/// Takes exception `what` on a vCPU that is not loaded: its saved EL1 registers `el1`
/// (`KVM_SET_VCPU_EVENTS`), as [`inject_into`] does on the CPU's.
pub(super) fn inject_saved(ctx: &mut VcpuContext, el1: &mut El1Block, what: Injected) {
    let mut s = El1Exception {
        pc: ctx.pc,
        pstate: ctx.pstate,
        vbar_el1: el1.sys[El1Reg::Vbar as usize],
        elr_el1: el1.elr_el1,
        spsr_el1: el1.spsr_el1,
        esr_el1: el1.sys[El1Reg::Esr as usize],
        far_el1: el1.sys[El1Reg::Far as usize],
    };
    inject::inject(&mut s, what, el1.sys[El1Reg::Sctlr as usize], true);
    ctx.pc = s.pc;
    ctx.pstate = s.pstate;
    el1.elr_el1 = s.elr_el1;
    el1.spsr_el1 = s.spsr_el1;
    el1.sys[El1Reg::Esr as usize] = s.esr_el1;
    el1.sys[El1Reg::Far as usize] = s.far_el1;
}

/// ICC_SRE_EL1 as the guest sees it: system registers only (SRE), FIQ and IRQ bypass
/// disabled (DFB, DIB).
const ICC_SRE_EL1_VALUE: u64 = 0x7;
