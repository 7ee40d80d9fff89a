// SPDX-License-Identifier: GPL-2.0

//! `KVM_RUN`: the run loop.
//!
//! KVM counterpart: `kvm_arch_vcpu_ioctl_run()` (`arch/arm64/kvm/arm.c`). One `KVM_RUN`
//! completes the previous MMIO exit, loads the vCPU (`load_put.rs`), then enters the
//! guest until an exit needs userspace, a signal arrives, or an error occurs, and puts
//! the vCPU. Per iteration the loop does only what must be done per entry: one check of
//! the vCPU's pending-work word and the thread's work flags (`logic::request`), the
//! virtual timer's check, and the world switch with interrupts masked; everything else
//! waits behind a bit of that word. The guest's FP/SIMD registers are loaded on its
//! first FP instruction (`sys::task::GuestFp`).

use super::{
    apply_cpu_on, exit::Action, load_put::RunningVcpu, CpuOnReset, Vcpu, VcpuInner, VcpuState,
};
use crate::{
    hyp,
    logic::{
        psci::MpState,
        request::{self, Work},
        step,
    },
    sys::{
        self,
        preempt::{NoPreempt, Notifier},
        run_page::KVM_EXIT_INTR,
        task::{self, GuestFp},
    },
    vm::Vm,
};
use core::pin::pin;
use kernel::prelude::*;

/// What the power state asks of the run loop before an entry.
enum Power {
    Run,
    /// Reset for a `CPU_ON`, then run.
    Reset(CpuOnReset),
    Suspended,
}

impl Vcpu {
    /// `KVM_RUN`.
    pub(super) fn run(&self, vm: &Vm) -> Result<isize> {
        let mut guard = self.inner.lock();
        let VcpuInner { fp, state } = &mut *guard;
        if state.features.is_none() {
            return Err(ENOEXEC);
        }
        // The vGIC's layout is checked on the first KVM_RUN, as KVM's map_resources.
        if let Some(vgic) = vm.vgic() {
            vgic.map_resources(vm)?;
        }
        if !self.timer_ppis_valid(vm) {
            return Err(EINVAL);
        }
        self.stats.runs.inc();
        vm.mark_run();
        self.complete_mmio(state);
        // As KVM (`!vcpu->wants_to_run`): EINTR with `exit_reason` left as it was. The
        // kernel's selftests complete an MMIO exit with an immediate-exit run and then
        // read the same exit again (`get_ucall` twice); only a signal reports
        // `KVM_EXIT_INTR`.
        if self.run.immediate_exit() {
            return Err(EINTR);
        }
        if let Some(mask) = &state.sigmask {
            task::sigset_activate(mask);
        }

        self.wake.run_begin();
        // SAFETY: `inner` is held and the notifier is not registered yet.
        let lazy = unsafe { self.lazy.get() };
        lazy.vm = vm.regs();
        lazy.mpidr = state.ctx.mpidr;
        lazy.ptrauth = state.ctx.ptrauth;
        let running = RunningVcpu(self);
        let mut notifier = pin!(Notifier::new(&running));
        {
            let _np = NoPreempt::new();
            notifier.as_mut().register();
            // SAFETY: the KVM_RUN thread, preemption disabled.
            unsafe { running.load() };
        }

        let ret = {
            let mut guest_fp = GuestFp::new(fp, &mut state.fp_hint);
            if guest_fp.loaded() {
                self.stats.fp_eager_loads.inc();
            }
            self.run_loop(vm, state, &mut guest_fp)
            // Dropping `guest_fp` saves the guest's FP registers if it used them.
        };

        {
            let _np = NoPreempt::new();
            // SAFETY: as for the load; the notifier goes with it, so nothing reloads.
            unsafe { running.put() };
            notifier.as_mut().unregister();
        }
        self.timer_run_end(state);
        self.wake.run_end();
        if state.sigmask.is_some() {
            task::sigset_deactivate();
        }
        task::rseq_userspace_exit();
        ret
    }

    /// Finishes an MMIO exit with what userspace left in `kvm_run.mmio`: a read's value
    /// goes to the destination register, and the guest moves past the access.
    fn complete_mmio(&self, state: &mut VcpuState) {
        if let Some((access, big_endian, il32)) = state.pending_mmio.take() {
            if !access.write {
                let value = access.read_value(self.run.mmio_data(), big_endian);
                state.ctx.set_reg(access.reg, value);
            }
            let ctx = &mut state.ctx;
            (ctx.pc, ctx.pstate) = step::skip(ctx.pc, ctx.pstate, il32);
        }
    }

    fn run_loop(&self, vm: &Vm, state: &mut VcpuState, fp: &mut GuestFp<'_>) -> Result<isize> {
        // Fixed for the whole `KVM_RUN`: a vGIC is created only before the VM's first run,
        // and `run` made it ready (`map_resources`) or failed. Without one the timers
        // have nowhere to deliver their interrupts, so nothing checks them per entry.
        let vgic = vm.vgic().filter(|v| v.ready());
        // The first entry of a `KVM_RUN` gives the timers' levels to the vGIC afresh.
        if vgic.is_some() {
            self.timer_check(vm, state);
        }
        loop {
            let (exit, kick) = {
                let irqs = kernel::interrupt::local_interrupt_disable();
                // One check: the pending-work word, read after guest mode is published (a
                // kick from now on sends an IPI that makes the guest exit at once), and
                // the thread's own work flags.
                let word = self.wake.enter_guest_mode(&irqs);
                // SAFETY: `inner` is held and interrupts are masked, so the preempt
                // notifier (the only other user of the lazy state) cannot run.
                let gic = &mut unsafe { self.lazy.get() }.el1.gic;
                let thread_work = task::guest_entry_work_pending();
                if !request::pending(word, thread_work) {
                    gic.hcr = 0;
                } else if !request::backs_out(word, thread_work) {
                    if let Some(v) = vgic {
                        v.flush(self, gic, word, &irqs);
                    }
                } else {
                    self.wake.exit_guest_mode();
                    drop(irqs);
                    if let Some(ret) = self.entry_work(vm, state, fp)? {
                        return Ok(ret);
                    }
                    continue;
                }
                let exit = hyp::enter_guest(&mut state.ctx, gic, fp.loaded(), &irqs);
                self.wake.exit_guest_mode();
                // Only an entry that used list registers has something to fold back.
                let kick = match vgic {
                    Some(v) if gic.used_lrs != 0 => Some((v, v.sync(self, gic, &irqs))),
                    _ => None,
                };
                (exit, kick)
            };
            // Interrupts are back on: a host interrupt that ended the entry ran here.
            if let Some((v, mask)) = kick {
                v.kick_after_sync(vm, mask);
            }

            match self.handle_exit(vm, state, fp, &exit)? {
                Action::Reenter => {}
                Action::ToUser => return Ok(0),
            }
            if vgic.is_some() {
                self.timer_check(vm, state);
            }
        }
    }

    /// The slow path before an entry: the entry check found a request, the power state
    /// or work of the thread's own. Takes the requests first, so that everything they
    /// stand for is evaluated after this point (one made later is seen by the next entry
    /// check). `Ok(Some(ret))` ends `KVM_RUN`.
    #[inline(never)]
    fn entry_work(
        &self,
        vm: &Vm,
        state: &mut VcpuState,
        fp: &mut GuestFp<'_>,
    ) -> Result<Option<isize>> {
        let work = Work::from_word(self.wake.take_requests());
        if work.power {
            match self.power_check()? {
                Power::Run => {}
                Power::Reset(reset) => self.cpu_on_reset(state, fp, &reset),
                Power::Suspended => {
                    if self.halt(vm, state, MpState::Suspended) {
                        self.run
                            .set_system_event_no_data(sys::uapi::KVM_SYSTEM_EVENT_WAKEUP);
                        return Ok(Some(0));
                    }
                    // A signal (handled next) or a power-state change ended the wait; the
                    // next entry check sees the latter.
                }
            }
        }
        // A reschedule, task work; a signal ends `KVM_RUN`.
        if !task::guest_entry_work() {
            self.run.set_exit_reason(KVM_EXIT_INTR);
            self.stats.signal_exits.inc();
            return Err(EINTR);
        }
        if work.steal {
            self.record_steal(vm, state);
        }
        if work.timer {
            self.timer_sync(vm, state, true);
        }
        Ok(None)
    }

    /// Sleeps while the vCPU is powered off, until a `CPU_ON` or `KVM_SET_MP_STATE` (or a
    /// signal: `EINTR`), and says what the power state asks for next. Called only when
    /// `req::POWER` is set, so the common entry takes no lock.
    fn power_check(&self) -> Result<Power> {
        let mut power = self.power.lock();
        loop {
            if let Some(reset) = power.reset.take() {
                self.publish_power(&power);
                return Ok(Power::Reset(reset));
            }
            match power.state {
                MpState::Runnable => return Ok(Power::Run),
                MpState::Suspended => return Ok(Power::Suspended),
                MpState::Stopped => {}
            }
            if self.power_wait.wait_interruptible(&mut power) {
                drop(power);
                self.run.set_exit_reason(KVM_EXIT_INTR);
                self.stats.signal_exits.inc();
                return Err(EINTR);
            }
        }
    }

    /// PSCI `CPU_ON` inside `KVM_RUN`: the vCPU is loaded, so its EL1 registers are put,
    /// reset in memory and loaded again; FP/SIMD registers are zeroed wherever they are.
    fn cpu_on_reset(&self, state: &mut VcpuState, fp: &mut GuestFp<'_>, reset: &CpuOnReset) {
        {
            let _np = NoPreempt::new();
            let running = RunningVcpu(self);
            // SAFETY: the KVM_RUN thread with preemption disabled; between put and load
            // nothing is loaded, so the saved copy is the only one and is ours to change.
            unsafe {
                running.put();
                apply_cpu_on(state, &mut self.lazy.get().el1, reset);
                running.load();
            }
        }
        fp.reset();
    }
}
