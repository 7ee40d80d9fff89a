// SPDX-License-Identifier: GPL-2.0

//! `KVM_RUN`: the run loop.
//!
//! KVM counterpart: `kvm_arch_vcpu_ioctl_run()` (`arch/arm64/kvm/arm.c`). One `KVM_RUN`
//! completes the previous MMIO exit, loads the vCPU (`load_put.rs`), then enters the
//! guest until an exit needs userspace, a signal arrives, or an error occurs, and puts
//! the vCPU. Per iteration the loop does only what must be done per entry: signal and
//! reschedule checks, and the world switch with interrupts masked. The guest's FP/SIMD
//! registers are loaded on its first FP instruction (`sys::task::GuestFp`).

use super::{exit::Action, load_put::RunningVcpu, Vcpu, VcpuInner, VcpuState};
use crate::{
    hyp::{self, context::VcpuContext},
    logic::step,
    sys::{
        preempt::{NoPreempt, Notifier},
        run_page::KVM_EXIT_INTR,
        task::{self, GuestFp},
    },
    vm::Vm,
};
use core::pin::pin;
use kernel::{prelude::*, sync::aref::ARef};

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
        self.stats.runs.inc();
        vm.mark_run();
        self.complete_mmio(state);
        if self.run.immediate_exit() {
            self.run.set_exit_reason(KVM_EXIT_INTR);
            return Err(EINTR);
        }
        if let Some(mask) = &state.sigmask {
            task::sigset_activate(mask);
        }

        self.power.lock().task = Some(ARef::from(&**kernel::current!()));
        // SAFETY: `inner` is held and the notifier is not registered yet.
        let lazy = unsafe { self.lazy.get() };
        lazy.vm = vm.regs();
        lazy.mpidr = state.ctx.mpidr;
        let running = RunningVcpu(self);
        let mut notifier = pin!(Notifier::new(&running));
        {
            let _np = NoPreempt::new();
            notifier.as_mut().register();
            // SAFETY: the KVM_RUN thread, preemption disabled.
            unsafe { running.load() };
        }

        let ret = {
            let mut guest_fp = GuestFp::new(fp);
            self.run_loop(vm, state, &mut guest_fp)
            // Dropping `guest_fp` saves the guest's FP registers if it used them.
        };

        {
            let _np = NoPreempt::new();
            // SAFETY: as for the load; the notifier goes with it, so nothing reloads.
            unsafe { running.put() };
            notifier.as_mut().unregister();
        }
        self.power.lock().task = None;
        if state.sigmask.is_some() {
            task::sigset_deactivate();
        }
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
        loop {
            self.wait_while_off(&mut state.ctx)?;
            if task::signal_pending() {
                self.run.set_exit_reason(KVM_EXIT_INTR);
                return Err(EINTR);
            }
            task::cond_resched();

            let vgic = vm.vgic().filter(|v| v.ready());
            let (exit, kick) = {
                let irqs = kernel::interrupt::local_interrupt_disable();
                // SAFETY: `inner` is held and interrupts are masked, so the preempt
                // notifier (the only other user of the lazy state) cannot run.
                let gic = &mut unsafe { self.lazy.get() }.el1.gic;
                // Flush after masking: a kick for anything queued later arrives as an IPI
                // that makes the guest exit straight away.
                if let Some(v) = vgic {
                    v.flush(self, gic, &irqs);
                }
                let exit = hyp::enter_guest(&mut state.ctx, gic, fp.loaded(), &irqs);
                let kick = vgic.map_or(0, |v| v.sync(self, gic, &irqs));
                (exit, kick)
            };
            // Interrupts are back on: a host interrupt that ended the entry ran here.
            if let Some(v) = vgic {
                v.kick_after_sync(kick);
            }

            match self.handle_exit(vm, state, fp, &exit)? {
                Action::Reenter => {}
                Action::ToUser => return Ok(0),
            }
        }
    }

    /// Sleeps while the vCPU is powered off, until a `CPU_ON` (which resets it to the
    /// requested entry point) or a signal.
    fn wait_while_off(&self, ctx: &mut VcpuContext) -> Result {
        let mut power = self.power.lock();
        loop {
            if let Some((entry, context)) = power.pending_on.take() {
                power.off = false;
                // PSCI CPU_ON: a reset vCPU starting at `entry` with `context` in x0. Its
                // EL1 registers keep their values (the guest's boot code sets what it
                // uses); KVM resets them too.
                *ctx = VcpuContext::reset(ctx.mpidr);
                ctx.pc = entry;
                ctx.set_reg(0, context);
            }
            if !power.off {
                return Ok(());
            }
            if self.power_wait.wait_interruptible(&mut power) {
                drop(power);
                self.run.set_exit_reason(KVM_EXIT_INTR);
                return Err(EINTR);
            }
        }
    }
}
