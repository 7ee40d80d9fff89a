// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_ONE_REG`, `KVM_SET_ONE_REG` and `KVM_GET_REG_LIST`, and the vCPU's pending
//! events (`KVM_GET_VCPU_EVENTS`, `KVM_SET_VCPU_EVENTS`).
//!
//! KVM counterpart: `arch/arm64/kvm/guest.c` (`kvm_arm_get_reg`, `kvm_arm_copy_reg_indices`)
//! and the ONE_REG parts of `sys_regs.c`. Ids are decoded by `logic::regs`; this file
//! moves the bytes. Malformed ids are `EINVAL`; well-formed ids of registers rkvm does not
//! have are `ENOENT`. Any value read can be written back.

use super::{exit, Vcpu, VcpuInner};
use crate::{
    hyp::{
        self,
        context::{El1Regs, VcpuContext},
        sysreg,
    },
    logic::{
        events,
        fwregs::{self, Bitmap},
        inject::Injected,
        psci, ptrauth,
        regs::{self, CoreReg, El1Reg, HostIdReg, RegId, TimerReg},
        sysregs::{self, Storage},
        timer::{self, ctl::ISTATUS, TimerRegs},
    },
    sys,
    vm::Vm,
};
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

const EVENTS_SIZE: usize = core::mem::size_of::<sys::kvm_vcpu_events>();
/// PSTATE.A: SErrors masked.
const PSR_A: u64 = 1 << 8;

/// A register value of up to 128 bits, little-endian.
type RegBytes = [u8; 16];

impl Vcpu {
    /// `KVM_GET_ONE_REG`.
    pub(super) fn get_one_reg(&self, vm: &Vm, reg: &sys::kvm_one_reg) -> Result<isize> {
        let id = decode(reg.id)?;
        let size = regs::id_size(reg.id);
        let bytes = {
            let mut inner = self.inner.lock();
            if inner.state.features.is_none() {
                return Err(ENOEXEC);
            }
            self.apply_owed_reset(&mut inner);
            // SAFETY: `inner` is held, so no KVM_RUN is in progress: the saved copy is
            // current and nothing else touches it.
            let lazy = unsafe { self.lazy.get() };
            read_reg(&inner, &lazy.el1, vm, id)?
        };
        UserSlice::new(UserPtr::from_addr(reg.addr as usize), size)
            .writer()
            .write_slice(&bytes[..size])?;
        Ok(0)
    }

    /// `KVM_SET_ONE_REG`.
    pub(super) fn set_one_reg(&self, vm: &Vm, reg: &sys::kvm_one_reg) -> Result<isize> {
        let id = decode(reg.id)?;
        let size = regs::id_size(reg.id);
        let mut bytes: RegBytes = [0; 16];
        UserSlice::new(UserPtr::from_addr(reg.addr as usize), size)
            .reader()
            .read_slice(&mut bytes[..size])?;
        let mut inner = self.inner.lock();
        if inner.state.features.is_none() {
            return Err(ENOEXEC);
        }
        self.apply_owed_reset(&mut inner);
        // SAFETY: as in `get_one_reg`.
        let lazy = unsafe { self.lazy.get() };
        write_reg(&mut inner, &mut lazy.el1, vm, id, bytes)?;
        Ok(0)
    }

    /// `KVM_GET_VCPU_EVENTS`: the pending virtual SError (`logic::events::get`).
    pub(super) fn get_events(&self, arg: usize) -> Result<isize> {
        let ev = {
            let mut inner = self.inner.lock();
            if inner.state.features.is_none() {
                return Err(ENOEXEC);
            }
            self.apply_owed_reset(&mut inner);
            let ctx = &inner.state.ctx;
            events::get(ctx.pending_vserror, ctx.vsesr, hyp::has_ras())
        };
        let mut out = sys::kvm_vcpu_events::default();
        out.exception.serror_pending = u8::from(ev.serror_pending);
        out.exception.serror_has_esr = u8::from(ev.serror_has_esr);
        out.exception.serror_esr = ev.serror_esr;
        UserSlice::new(UserPtr::from_addr(arg), EVENTS_SIZE)
            .writer()
            .write(&out)?;
        Ok(0)
    }

    /// `KVM_SET_VCPU_EVENTS`: an external data abort, taken at once at the last abort
    /// exit's address, then a virtual SError, taken at once if the guest has SErrors
    /// unmasked and left pending otherwise (`logic::events`).
    pub(super) fn set_events(&self, arg: usize) -> Result<isize> {
        let mut inner = self.inner.lock();
        if inner.state.features.is_none() {
            return Err(ENOEXEC);
        }
        let e: sys::kvm_vcpu_events = UserSlice::new(UserPtr::from_addr(arg), EVENTS_SIZE)
            .reader()
            .read()?;
        let x = &e.exception;
        let ev = events::Events {
            serror_pending: x.serror_pending != 0,
            serror_has_esr: x.serror_has_esr != 0,
            ext_dabt_pending: x.ext_dabt_pending != 0,
            serror_esr: x.serror_esr,
        };
        let padding_clear = x.pad == [0; 5] && e.reserved == [0; 12];
        let (plan, result) = match events::check_set(ev, padding_clear, hyp::has_ras()) {
            Ok(plan) => (plan, Ok(0)),
            Err(plan) => (plan, Err(EINVAL)),
        };
        self.apply_owed_reset(&mut inner);
        // SAFETY: as in `get_one_reg`.
        let lazy = unsafe { self.lazy.get() };
        let state = &mut inner.state;
        if plan.ext_dabt {
            let far = state.fault_far;
            exit::inject_saved(
                &mut state.ctx,
                &mut lazy.el1.regs,
                Injected::DataAbort { far },
            );
            // The access that exited is not to be completed any more.
            state.pending_mmio = None;
        }
        if let Some(esr) = plan.serror_esr {
            let masked = state.ctx.pstate & PSR_A != 0;
            match events::serror(esr, masked) {
                events::SError::TakeNow { iss } => {
                    exit::inject_saved(&mut state.ctx, &mut lazy.el1.regs, Injected::SError { iss })
                }
                events::SError::Pend { vsesr } => {
                    state.ctx.pending_vserror = true;
                    state.ctx.vsesr = vsesr;
                }
            }
        }
        result
    }

    /// `KVM_GET_REG_LIST`: `arg` points at `struct kvm_reg_list { n; reg[n] }`.
    pub(super) fn get_reg_list(&self, arg: usize) -> Result<isize> {
        let ptrauth = {
            let inner = self.inner.lock();
            if inner.state.features.is_none() {
                return Err(ENOEXEC);
            }
            inner.state.ctx.ptrauth
        };
        let count = reg_list(ptrauth).count();
        let header = UserSlice::new(UserPtr::from_addr(arg), 8);
        let n: u64 = header.reader().read()?;
        UserSlice::new(UserPtr::from_addr(arg), 8)
            .writer()
            .write(&(count as u64))?;
        if (n as usize) < count {
            return Err(E2BIG);
        }
        let mut writer = UserSlice::new(UserPtr::from_addr(arg + 8), count * 8).writer();
        for id in reg_list(ptrauth) {
            writer.write(&id)?;
        }
        Ok(0)
    }
}

/// The registers a VMM saves and restores, in KVM's order: core, firmware, then system
/// registers (the timers' among them, and the keys of a vCPU with pointer authentication,
/// `ptrauth`) by encoding.
fn reg_list(ptrauth: bool) -> impl Iterator<Item = u64> {
    let sys = sysregs::user_regs(ptrauth).map(regs::sys_id);
    Iterator::chain(
        Iterator::chain(regs::core_reg_ids(), regs::fw_reg_ids()),
        sys,
    )
}

/// Decodes a ONE_REG id, with KVM's errno for the ones that name nothing.
fn decode(id: u64) -> Result<RegId> {
    regs::decode_id(id).ok_or_else(|| match regs::bad_id(id) {
        regs::BadId::Invalid => EINVAL,
        regs::BadId::NotFound => ENOENT,
    })
}

fn u64_bytes(v: u64) -> RegBytes {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&v.to_le_bytes());
    b
}

fn bytes_u64(b: &RegBytes) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[..8]);
    u64::from_le_bytes(v)
}

/// The value of register `id` of the guest.
/// Where key register slot `n` (`logic::ptrauth::KEY_REGS`) of a vCPU that is not
/// running is saved: APIA with the per-entry state, the others with the EL1 file.
fn key_slot<'a>(ctx: &'a mut VcpuContext, el1: &'a mut El1Regs, n: u8) -> &'a mut u64 {
    let n = usize::from(n);
    match n.checked_sub(ptrauth::APIA_SLOTS.end) {
        None => &mut ctx.apia[n],
        Some(i) => &mut el1.keys[i],
    }
}

fn read_reg(inner: &VcpuInner, el1: &El1Regs, vm: &Vm, id: RegId) -> Result<RegBytes> {
    let ctx = &inner.state.ctx;
    let v = match id {
        RegId::Core(core) => match core {
            CoreReg::X(n) => ctx.reg(n),
            CoreReg::Sp => ctx.gprs.sp_el0,
            CoreReg::Pc => ctx.pc,
            CoreReg::Pstate => ctx.pstate,
            CoreReg::SpEl1 => el1.regs.sp_el1,
            CoreReg::ElrEl1 => el1.regs.elr_el1,
            CoreReg::Spsr(0) => el1.regs.spsr_el1,
            CoreReg::Spsr(n) => *ctx.spsr_aa32.get(usize::from(n) - 1).ok_or(EINVAL)?,
            CoreReg::V(n) => {
                let v = inner.fp.vregs.get(usize::from(n)).ok_or(EINVAL)?;
                return Ok(v.to_le_bytes());
            }
            CoreReg::Fpsr => u64::from(inner.fp.fpsr),
            CoreReg::Fpcr => u64::from(inner.fp.fpcr),
        },
        RegId::Sys(r) => {
            let dbg = &inner.state.debug;
            match sysregs::user_storage(r, ctx.ptrauth).ok_or(ENOENT)? {
                Storage::El1(El1Reg::Actlr) => inner.state.actlr,
                Storage::El1(El1Reg::Mdscr) => inner.state.mdscr,
                Storage::El1(reg) => el1.regs.sys[reg as usize],
                Storage::Timer(timer) => {
                    let pcount = || sysreg::cntpct_el0().wrapping_sub(vm.cntpoff());
                    let ptimer = &inner.state.timer.ptimer;
                    match timer {
                        // As saved from the CPU at the last put (ISTATUS included).
                        TimerReg::Ctl => el1.regs.cntv_ctl,
                        TimerReg::Cval => el1.regs.cntv_cval,
                        TimerReg::Cnt => sysreg::cntpct_el0().wrapping_sub(vm.cntvoff()),
                        TimerReg::PCtl => ptimer.read_ctl(pcount()),
                        TimerReg::PCval => ptimer.cval,
                        TimerReg::PCnt => pcount(),
                    }
                }
                Storage::Mpidr => ctx.mpidr,
                Storage::HostId(reg) => host_id(reg),
                Storage::Id { crm, op2 } => vm.id_reg(crm, op2),
                Storage::Debug(bank, n) => dbg.bank(bank)[usize::from(n)],
                Storage::Mdccint => dbg.mdccint,
                Storage::Oslsr => dbg.oslsr(),
                Storage::Osdlr => dbg.osdlr,
                Storage::Dbgvcr32 => dbg.dbgvcr32,
                Storage::PtrauthKey(n) => {
                    let n = usize::from(n);
                    match n.checked_sub(ptrauth::APIA_SLOTS.end) {
                        None => ctx.apia[n],
                        Some(i) => el1.keys[i],
                    }
                }
                Storage::Disr => el1.disr,
                Storage::Aa32(reg) => inner.state.aa32[reg as usize],
            }
        }
        RegId::Fw(0) => psci::version(Vcpu::has_psci(&inner.state), vm.psci_version()),
        RegId::Fw(1..=3) => fwregs::WORKAROUND_LEVEL,
        RegId::Fw(_) => return Err(ENOENT),
        RegId::FwBmap(index) => vm
            .fw_bitmaps()
            .get(Bitmap::from_index(index).ok_or(ENOENT)?),
    };
    Ok(u64_bytes(v))
}

/// Sets register `id` of the guest to `bytes`.
fn write_reg(
    inner: &mut VcpuInner,
    el1: &mut El1Regs,
    vm: &Vm,
    id: RegId,
    bytes: RegBytes,
) -> Result {
    let v = bytes_u64(&bytes);
    // Registers whose value is fixed: writing back what was read succeeds; another value
    // is refused, with EBUSY once the VM has run (KVM's rule for ID registers).
    let fixed = |current: u64| match (v == current, vm.has_run()) {
        (true, _) => Ok(()),
        (false, false) => Err(EINVAL),
        (false, true) => Err(EBUSY),
    };
    let ctx = &mut inner.state.ctx;
    match id {
        RegId::Core(core) => match core {
            CoreReg::X(n) if n < 31 => ctx.set_reg(n, v),
            CoreReg::X(_) => return Err(EINVAL),
            CoreReg::Sp => ctx.gprs.sp_el0 = v,
            CoreReg::Pc => ctx.pc = v,
            CoreReg::Pstate => {
                if !regs::pstate_valid(v, vm.aarch32_el0()) {
                    return Err(EINVAL);
                }
                ctx.pstate = v;
            }
            CoreReg::SpEl1 => el1.regs.sp_el1 = v,
            CoreReg::ElrEl1 => el1.regs.elr_el1 = v,
            CoreReg::Spsr(0) => el1.regs.spsr_el1 = v,
            CoreReg::Spsr(n) => *ctx.spsr_aa32.get_mut(usize::from(n) - 1).ok_or(EINVAL)? = v,
            CoreReg::V(n) => {
                *inner.fp.vregs.get_mut(usize::from(n)).ok_or(EINVAL)? = u128::from_le_bytes(bytes);
            }
            CoreReg::Fpsr => inner.fp.fpsr = v as u32,
            CoreReg::Fpcr => inner.fp.fpcr = v as u32,
        },
        RegId::Sys(r) => {
            let dbg = &mut inner.state.debug;
            match sysregs::user_storage(r, ctx.ptrauth).ok_or(ENOENT)? {
                Storage::El1(El1Reg::Actlr) => inner.state.actlr = v,
                Storage::El1(El1Reg::Mdscr) => inner.state.mdscr = v,
                Storage::El1(reg) => el1.regs.sys[reg as usize] = v,
                Storage::Timer(timer) => {
                    let ptimer: &mut TimerRegs = &mut inner.state.timer.ptimer;
                    match timer {
                        // ISTATUS is the CPU's to compute (KVM's `arch_timer_set_user`).
                        TimerReg::Ctl => el1.regs.cntv_ctl = v & !ISTATUS,
                        TimerReg::Cval => el1.regs.cntv_cval = v,
                        // Setting a counter moves the VM-wide offset, as on KVM: every
                        // vCPU of the VM sees the new count.
                        TimerReg::Cnt => vm.set_cntvoff(timer::offset_for(sysreg::cntpct_el0(), v)),
                        TimerReg::PCtl => ptimer.write_ctl(v),
                        TimerReg::PCval => ptimer.cval = v,
                        TimerReg::PCnt => {
                            vm.set_cntpoff(timer::offset_for(sysreg::cntpct_el0(), v))
                        }
                    }
                }
                Storage::Mpidr => ctx.mpidr = v,
                Storage::HostId(reg) => fixed(host_id(reg))?,
                Storage::Id { crm, op2 } => fixed(vm.id_reg(crm, op2))?,
                Storage::Debug(bank, n) => dbg.bank_mut(bank)[usize::from(n)] = v,
                Storage::Mdccint => dbg.mdccint = v,
                Storage::Oslsr => {
                    if !regs::oslsr_settable(v) {
                        return Err(EINVAL);
                    }
                    dbg.oslk = v & regs::OSLSR_OSLK != 0;
                }
                Storage::Osdlr => dbg.osdlr = v & 1,
                Storage::Dbgvcr32 => dbg.dbgvcr32 = v,
                Storage::PtrauthKey(n) => *key_slot(ctx, el1, n) = v,
                Storage::Disr => el1.disr = v,
                Storage::Aa32(reg) => inner.state.aa32[reg as usize] = v,
            }
        }
        // VM-wide, as on KVM: the value any vCPU sets is every vCPU's.
        RegId::Fw(0) if psci::version_settable(v, Vcpu::has_psci(&inner.state)) => {
            vm.set_psci_version(v)
        }
        RegId::Fw(0) => return Err(EINVAL),
        RegId::Fw(index @ 1..=3) => {
            if !fwregs::workaround_settable(index, v, fwregs::WORKAROUND_LEVEL) {
                return Err(EINVAL);
            }
        }
        RegId::Fw(_) => return Err(ENOENT),
        RegId::FwBmap(index) => vm.set_fw_bitmap(Bitmap::from_index(index).ok_or(ENOENT)?, v)?,
    }
    Ok(())
}

/// An identification register as the guest reads it on this CPU (untrapped).
fn host_id(reg: HostIdReg) -> u64 {
    match reg {
        HostIdReg::Midr => sysreg::midr_el1(),
        HostIdReg::Revidr => sysreg::revidr_el1(),
        HostIdReg::Aidr => sysreg::aidr_el1(),
        HostIdReg::Clidr => sysreg::clidr_el1(),
        HostIdReg::Ctr => sysreg::ctr_el0(),
    }
}
