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
        context::{Exit, ExitCode, VcpuContext},
    },
    logic::{
        esr::{Ec, Esr, Fault, SysRegAccess, Wfx},
        fwregs::{self, FwBitmaps, Service},
        idregs,
        inject::{self, El1Exception, Injected},
        mmio::MmioAccess,
        psci::{self, Args, Call, Decision, MpState, SystemEvent},
        regs::{self, El1Reg, SysKind, SysReg, SCTLR_E0E, SCTLR_EE},
        step, timer as timer_logic,
    },
    mmu,
    sys::{
        self,
        task::{self, GuestFp},
        wake::req,
    },
    vm::{self, InKernel, Vm},
};
use kernel::prelude::*;

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
                Ok(Action::Reenter)
            }
            ExitCode::Sync => self.handle_sync(vm, state, fp, Esr(exit.esr), exit),
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
                self.smccc(vm, state)
            }
            Ec::Smc64 => {
                // A trapped SMC returns to the SMC itself: step over it.
                skip_instr(ctx, esr.il32());
                if esr.hvc_imm() != 0 {
                    ctx.set_reg(0, psci::NOT_SUPPORTED);
                    return Ok(Action::Reenter);
                }
                self.smccc(vm, state)
            }
            Ec::DabtLow => self.data_abort(vm, state, esr, exit),
            Ec::IabtLow => {
                let ipa = exit.fault_ipa();
                if beyond_ipa(vm, ctx, esr, ipa, true) {
                    return Ok(Action::Reenter);
                }
                match vm.mmu.lock().fault(ipa, false, false)? {
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
                let acc = esr.sys_reg();
                if !self.trapped_gic_sysreg(vm, ctx, acc) {
                    emulate_sys_reg(vm, state, acc);
                }
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

    /// Blocks the vCPU's thread, without spinning, until an interrupt is pending for it
    /// (`true`), or until the run loop has something else to do (`false`): a signal, or
    /// the power state leaving `expect`. The guest's timers keep an hrtimer armed at
    /// their next deadline meanwhile, whose expiry kicks the vCPU.
    ///
    /// KVM counterpart: `kvm_vcpu_wfi`/`kvm_vcpu_halt`. No wake-up is lost: a kick
    /// consumed at the top of an iteration is covered by the checks after it, and one
    /// made after the checks keeps `block` from sleeping (`sys::wake`).
    pub(super) fn halt(&self, vm: &Vm, state: &mut VcpuState, expect: MpState) -> bool {
        loop {
            self.timer_sync(vm, state);
            self.wake.take(req::KICK);
            if state.ctx.pending_vserror || self.irq_pending(vm) {
                return true;
            }
            if task::signal_pending() || self.power.lock().state != expect {
                return false;
            }
            self.stats.wfi_sleeps.inc();
            self.wake.block();
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
        if let mmu::Fault::Mapped = vm.mmu.lock().fault(ipa, write, da.cache_maint)? {
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
                self.timer_sync(vm, state);
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

    /// A trapped GICv3 CPU-interface register: a write to ICC_SGI1R_EL1, ICC_ASGI1R_EL1 or
    /// ICC_SGI0R_EL1 (trapped because HCR_EL2.IMO/FMO are set) generates SGIs; ICC_DIR_EL1
    /// (trapped by ICH_HCR_EL2.TDIR) deactivates through the vGIC; ICC_SRE_EL1
    /// (trapped at load, see `hyp/vhe.rs`) reads as SRE|DFB|DIB and ignores writes, as
    /// KVM's. Returns `false` for any other register; a read of the SGI registers, or a VM
    /// without a ready vGIC, gets UNDEF.
    fn trapped_gic_sysreg(&self, vm: &Vm, ctx: &mut VcpuContext, acc: SysRegAccess) -> bool {
        let r = SysReg::new(acc.op0, acc.op1, acc.crn, acc.crm, acc.op2);
        if r == ICC_SRE_EL1 {
            if vm.vgic().is_some() {
                if acc.read {
                    ctx.set_reg(acc.rt, ICC_SRE_EL1_VALUE);
                }
                skip_instr(ctx, true);
            } else {
                inject_into(ctx, Injected::Undefined, true);
            }
            return true;
        }
        if r == ICC_DIR_EL1 {
            let done = !acc.read
                && vm
                    .vgic()
                    .is_some_and(|v| v.deactivate(self.idx, ctx.reg(acc.rt)));
            if done {
                skip_instr(ctx, true);
            } else {
                inject_into(ctx, Injected::Undefined, true);
            }
            return true;
        }
        let group1 = match r {
            ICC_SGI1R_EL1 => true,
            ICC_ASGI1R_EL1 | ICC_SGI0R_EL1 => false,
            _ => return false,
        };
        let sent = !acc.read
            && vm
                .vgic()
                .is_some_and(|v| v.send_sgi(self.idx, ctx.reg(acc.rt), group1));
        if sent {
            self.stats.vgic_sgi.inc();
            skip_instr(ctx, true);
        } else {
            inject_into(ctx, Injected::Undefined, true);
        }
        true
    }

    /// An SMCCC call (HVC or SMC): PSCI, the SMCCC discovery functions, PV time, TRNG and
    /// KVM's vendor services, as `psci::decide` rules. As KVM, an answer sets x0..x3
    /// (unused results are 0), and a call the VM's firmware bitmaps refuse answers
    /// `NOT_SUPPORTED`.
    fn smccc(&self, vm: &Vm, state: &mut VcpuState) -> Result<Action> {
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

/// The SGI generation registers (write-only).
const ICC_SGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 5);
/// Trapped by ICH_HCR_EL2.TDIR while an interrupt's deactivation needs the vGIC.
const ICC_DIR_EL1: SysReg = SysReg::new(3, 0, 12, 11, 1);
const ICC_ASGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 6);
const ICC_SGI0R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 7);
const ICC_SRE_EL1: SysReg = SysReg::new(3, 0, 12, 12, 5);
/// ICC_SRE_EL1 as the guest sees it: system registers only (SRE), FIQ and IRQ bypass
/// disabled (DFB, DIB).
const ICC_SRE_EL1_VALUE: u64 = 0x7;

const OSLAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 4);
const OSDLR_EL1: SysReg = SysReg::new(2, 0, 1, 3, 4);
const MDRAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 0);
const DBGPRCR_EL1: SysReg = SysReg::new(2, 0, 1, 4, 4);
const DBGCLAIMSET_EL1: SysReg = SysReg::new(2, 0, 7, 8, 6);
const DBGCLAIMCLR_EL1: SysReg = SysReg::new(2, 0, 7, 9, 6);
const DBGAUTHSTATUS_EL1: SysReg = SysReg::new(2, 0, 7, 14, 6);
const MDCCSR_EL0: SysReg = SysReg::new(2, 3, 0, 1, 0);

/// Data-cache maintenance by set/way: DC ISW, DC CSW, DC CISW.
fn is_set_way_op(r: SysReg) -> bool {
    r.op0 == 1 && r.op1 == 0 && r.crn == 7 && r.op2 == 2 && matches!(r.crm, 6 | 10 | 14)
}

/// Emulates a trapped system-register access, or injects UNDEF for one rkvm does not
/// offer (PMU, LORegions, IMPDEF, ...).
fn emulate_sys_reg(vm: &Vm, state: &mut VcpuState, acc: SysRegAccess) {
    let r = SysReg::new(acc.op0, acc.op1, acc.crn, acc.crm, acc.op2);
    let value = state.ctx.reg(acc.rt);
    let dbg = &mut state.debug;
    // `Some(v)`: a read returning v; `None` after a handled write.
    let result: Option<Option<u64>> = if idregs::is_id_space(r.op0, r.op1, r.crn, r.crm) {
        acc.read.then(|| Some(vm.id_reg(r.crm, r.op2)))
    } else if r == regs::MDSCR_EL1 {
        Some(if acc.read {
            Some(state.mdscr)
        } else {
            state.mdscr = value;
            None
        })
    } else if r == regs::ACTLR_EL1 {
        Some(if acc.read {
            Some(state.actlr)
        } else {
            state.actlr = value;
            None
        })
    } else if let Some(SysKind::Debug(bank, n)) = regs::sys_kind(r) {
        let slot = &mut dbg.bank_mut(bank)[usize::from(n)];
        Some(if acc.read {
            Some(*slot)
        } else {
            *slot = value;
            None
        })
    } else if r == OSLAR_EL1 {
        (!acc.read).then(|| {
            dbg.oslk = value & 1 != 0;
            None
        })
    } else if r == regs::OSLSR_EL1 {
        acc.read.then(|| Some(dbg.oslsr()))
    } else if r == OSDLR_EL1 {
        Some(if acc.read {
            Some(dbg.osdlr)
        } else {
            dbg.osdlr = value & 1;
            None
        })
    } else if r == regs::MDCCINT_EL1 {
        // Kept for the guest to read back; no channel exists to raise its interrupts.
        Some(if acc.read {
            Some(dbg.mdccint)
        } else {
            dbg.mdccint = value;
            None
        })
    } else if [
        MDRAR_EL1,
        DBGPRCR_EL1,
        DBGCLAIMSET_EL1,
        DBGCLAIMCLR_EL1,
        MDCCSR_EL0,
    ]
    .contains(&r)
    {
        // Read as zero, writes ignored: no debug communication channel or claim tags.
        Some(acc.read.then_some(0))
    } else if r == DBGAUTHSTATUS_EL1 {
        acc.read.then_some(Some(0))
    } else if let Some(reg) = timer_logic::ptimer_reg(r.op0, r.op1, r.crn, r.crm, r.op2) {
        // The physical timer (and the counter when the VM offsets it): emulated.
        let v = timer::ptimer_access(vm, state, reg, (!acc.read).then_some(value));
        Some(acc.read.then_some(v))
    } else if is_set_way_op(r) && !acc.read {
        // Set/way operations cannot be virtualised precisely; as KVM, make all guest
        // memory fault back in, which cleans each page to PoC as it is mapped again.
        let mut mmu = vm.mmu.lock();
        mmu.unmap_range(0, u64::MAX);
        Some(None)
    } else {
        None
    };
    let ctx = &mut state.ctx;
    match result {
        Some(read) => {
            if let Some(v) = read {
                ctx.set_reg(acc.rt, v);
            }
            // MSR/MRS traps (EC 0x18) come from AArch64 only: 32-bit instructions.
            skip_instr(ctx, true);
        }
        // MSR/MRS traps come from AArch64 only: 32-bit instructions.
        None => inject_into(ctx, Injected::Undefined, true),
    }
}
