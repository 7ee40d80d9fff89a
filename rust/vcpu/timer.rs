// SPDX-License-Identifier: GPL-2.0

//! The guest's arch timers, vCPU side: their interrupt levels into the vGIC, the
//! wake-up hrtimer, and the emulated physical timer.
//!
//! KVM counterpart: `arch/arm64/kvm/arch_timer.c` (`kvm_timer_update_irq`,
//! `kvm_timer_schedule`/`kvm_bg_timer_expire`, `kvm_arm_timer_read_sysreg`).
//!
//! The virtual timer is the guest's own, in the CPU while the vCPU is loaded (see
//! `hyp/vhe.rs` load/put), and the guest changes it without exiting. So before each
//! entry [`Vcpu::timer_check`] reads its CTL and CVAL (two register reads) and compares
//! them with what the last sync saw; only a change, a trapped physical-timer write or
//! the hrtimer's expiry (`req::TIMER`, through the run loop's slow path) runs
//! [`Vcpu::timer_sync`], which computes both timers' levels, tells the vGIC only when a
//! level changed, and re-arms one hrtimer only when the earliest deadline moved: the
//! expiry kicks the vCPU, which wakes it from WFI or makes it exit the guest. Why an
//! hrtimer rather than the host's virtual-timer PPI: see `Documentation/timer.rst`.

use super::{Vcpu, VcpuState};
use crate::{
    hyp::{self, sysreg},
    logic::{
        ioctl::VcpuIoctl,
        timer::{self, PtimerReg, TimerRegs, WakeKey},
    },
    sys::{hrtimer, wake::req},
    vm::Vm,
};
use kernel::{
    prelude::*,
    time::Delta,
    uaccess::{UserPtr, UserSlice},
};

/// A vCPU's timer state apart from the virtual timer's registers (in `El1Regs`).
pub(crate) struct VcpuTimer {
    /// The emulated EL1 physical timer.
    pub(crate) ptimer: TimerRegs,
    /// What the wake-up hrtimer is armed for (idle: not armed).
    armed: WakeKey,
    /// The levels last given to the vGIC; `None`: give it again at the next entry.
    vlevel: Option<bool>,
    plevel: Option<bool>,
    /// The virtual timer's CTL and CVAL as the last sync read them.
    seen: (u64, u64),
    /// The next entry must sync whatever the virtual timer reads: the physical timer was
    /// written, or the levels were forgotten.
    dirty: bool,
}

impl VcpuTimer {
    pub(crate) const fn new() -> Self {
        Self {
            ptimer: TimerRegs { ctl: 0, cval: 0 },
            armed: WakeKey {
                vtimer: None,
                ptimer: None,
            },
            vlevel: None,
            plevel: None,
            seen: (0, 0),
            dirty: true,
        }
    }

    /// The reset state: timers disabled (KVM's `kvm_timer_vcpu_reset`).
    pub(crate) fn reset(&mut self) {
        self.ptimer = TimerRegs::default();
        self.vlevel = None;
        self.plevel = None;
        self.dirty = true;
    }
}

impl Vcpu {
    /// Before an entry: syncs the timers if the guest changed its virtual timer (or its
    /// level changed) since the last sync, or [`VcpuTimer::dirty`] says so. Otherwise
    /// this is two register reads and two compares.
    #[inline(always)]
    pub(super) fn timer_check(&self, vm: &Vm, state: &mut VcpuState) {
        // SAFETY: the run loop, with the vCPU loaded.
        let regs = unsafe { hyp::vtimer_regs() };
        if regs != state.timer.seen || state.timer.dirty {
            self.timer_sync_regs(vm, state, regs, false);
        }
    }

    /// The timers' levels to the vGIC, the hrtimer at the next deadline: for an entry
    /// (`expired`: `req::TIMER` was taken, the hrtimer is no longer armed) and before
    /// blocking in WFI.
    pub(super) fn timer_sync(&self, vm: &Vm, state: &mut VcpuState, expired: bool) {
        // SAFETY: the run loop, with the vCPU loaded.
        let regs = unsafe { hyp::vtimer_regs() };
        self.timer_sync_regs(vm, state, regs, expired);
    }

    fn timer_sync_regs(&self, vm: &Vm, state: &mut VcpuState, regs: (u64, u64), expired: bool) {
        let t = &mut state.timer;
        t.seen = regs;
        t.dirty = false;
        if expired {
            t.armed = WakeKey::default();
        }
        if !self.has_irqchip(vm) {
            return;
        }
        let (vctl, vcval) = regs;
        let pcount = if t.ptimer.can_fire() {
            sysreg::cntpct_el0().wrapping_sub(vm.cntpoff())
        } else {
            0
        };

        let vlevel = timer::level_from_hw_ctl(vctl);
        if t.vlevel != Some(vlevel) {
            t.vlevel = self
                .set_ppi_level(vm, vm.timer_ppi(0), vlevel)
                .then_some(vlevel);
        }
        let plevel = t.ptimer.level(pcount);
        if t.plevel != Some(plevel) {
            t.plevel = self
                .set_ppi_level(vm, vm.timer_ppi(1), plevel)
                .then_some(plevel);
        }

        let key = WakeKey::new(vctl, vcval, &t.ptimer, pcount);
        if key != t.armed {
            self.arm_wake_timer(vm, &key);
            t.armed = key;
        }
    }

    fn arm_wake_timer(&self, vm: &Vm, key: &WakeKey) {
        let pct = sysreg::cntpct_el0();
        match key.ticks(
            pct.wrapping_sub(vm.cntvoff()),
            pct.wrapping_sub(vm.cntpoff()),
        ) {
            None => {
                hrtimer::try_cancel(self);
            }
            Some(ticks) => {
                let ns = timer::ticks_to_ns(ticks, vm.cntfrq);
                hrtimer::start(self, Delta::from_nanos(ns.min(i64::MAX as u64) as i64));
                self.stats.timer_arms.inc();
            }
        }
    }

    /// `KVM_RUN` returns: nothing needs waking until the next one, which gives the levels
    /// to the vGIC afresh (userspace may have changed the vGIC or the timers meanwhile).
    pub(super) fn timer_run_end(&self, state: &mut VcpuState) {
        hrtimer::cancel(self);
        self.wake.take(req::TIMER);
        let t = &mut state.timer;
        t.armed = WakeKey::default();
        t.vlevel = None;
        t.plevel = None;
        t.dirty = true;
    }
}

/// A trapped guest access to the physical timer or counter (`write`: the value written);
/// returns the value of a read. The next entry's [`Vcpu::timer_check`] acts on a write.
pub(super) fn ptimer_access(
    vm: &Vm,
    state: &mut VcpuState,
    reg: PtimerReg,
    write: Option<u64>,
) -> u64 {
    state.timer.dirty |= write.is_some();
    let count = sysreg::cntpct_el0().wrapping_sub(vm.cntpoff());
    timer::ptimer_access(&mut state.timer.ptimer, reg, count, write)
}

impl Vcpu {
    /// `KVM_{SET,GET,HAS}_DEVICE_ATTR` on the vCPU fd (`arg`: `struct kvm_device_attr`).
    /// The timer group names the timers' PPIs, as KVM's `kvm_arm_timer_*_attr`; there is
    /// no PMU (`ENODEV` to set or get, as KVM without one); PV time is `pvtime.rs`'s;
    /// every other group is `ENXIO`.
    pub(super) fn device_attr(&self, vm: &Vm, op: VcpuIoctl, arg: usize) -> Result<isize> {
        let (group, attr, addr) = crate::vgic::read_device_attr(arg)?;
        if group == crate::logic::pvtime::VCPU_PVTIME_CTRL {
            return self.pvtime_attr(vm, op, attr, addr);
        }
        let user = UserSlice::new(UserPtr::from_addr(addr), 4);
        match (group, op) {
            (timer::VCPU_TIMER_CTRL, VcpuIoctl::HasDeviceAttr) => {
                timer::timer_attr_index(attr).map(|_| 0).ok_or(ENXIO)
            }
            (timer::VCPU_TIMER_CTRL, VcpuIoctl::GetDeviceAttr) => {
                let idx = timer::timer_attr_index(attr).ok_or(ENXIO)?;
                user.writer().write(&(vm.timer_ppi(idx) as i32))?;
                Ok(0)
            }
            (timer::VCPU_TIMER_CTRL, _) => {
                // KVM's order: an in-kernel irqchip, the value, a PPI, not yet run, the
                // attribute.
                if vm.vgic().is_none() {
                    return Err(EINVAL);
                }
                let irq: i32 = user.reader().read()?;
                if !timer::is_ppi(irq) {
                    return Err(EINVAL);
                }
                if vm.has_run() {
                    return Err(EBUSY);
                }
                let idx = timer::timer_attr_index(attr).ok_or(ENXIO)?;
                vm.set_timer_ppi(idx, irq as u32);
                Ok(0)
            }
            (timer::VCPU_PMU_V3_CTRL, VcpuIoctl::SetDeviceAttr | VcpuIoctl::GetDeviceAttr) => {
                Err(ENODEV)
            }
            _ => Err(ENXIO),
        }
    }

    /// First-run check of the timers' PPIs with an in-kernel vGIC (KVM's
    /// `kvm_timer_enable`): they must all differ.
    pub(super) fn timer_ppis_valid(&self, vm: &Vm) -> bool {
        !self.has_irqchip(vm) || timer::ppis_distinct(&[0, 1, 2, 3].map(|i| vm.timer_ppi(i)))
    }
}
