// SPDX-License-Identifier: GPL-2.0

//! The VHE backend: the host kernel runs at EL2, so entering a guest is a function call.
//!
//! KVM counterpart: `arch/arm64/kvm/hyp/vhe/switch.c` (`__kvm_vcpu_run_vhe`), `vhe/tlb.c`
//! and `vhe/sysreg-sr.c`. The host uses none of the EL1 registers, so the guest's EL1
//! state is loaded through the `_EL12` aliases with nothing of the host's to save; the
//! host state that the guest can change is only the EL0 thread registers and the EL2
//! controls that configure the guest.

use super::{
    context::{Exit, ExitCode, VcpuContext, VmRegs},
    sysreg::{self, isb},
};
use crate::logic::{regs::El1Reg, traps};
use kernel::interrupt::LocalInterruptDisabled;

extern "C" {
    /// Loads the guest's GPRs and enters it; returns the exit code (`entry.S`).
    fn __rkvm_vhe_guest_enter(gprs: *mut super::context::GuestGprs) -> u64;
    /// EL2 vectors live while a guest runs.
    static __rkvm_vhe_vectors: [u8; 0];
    /// The host's VBAR_EL2, for the panic path in `entry.S`.
    static mut __rkvm_host_vbar: u64;
}

/// Records the host's EL2 vectors; called once at module load, before any guest runs.
pub(crate) fn init() {
    // SAFETY: at EL2 on a VHE host; VBAR_EL2 is the same on every CPU. The store happens
    // before any guest can run, and the asm reads it only from the panic path.
    unsafe { __rkvm_host_vbar = sysreg::vbar_el2::read() };
}

/// The host state a guest entry changes, restored on exit.
struct HostState {
    hcr: u64,
    cptr: u64,
    mdcr: u64,
    cnthctl: u64,
    vbar: u64,
    tpidr_el0: u64,
    tpidrro_el0: u64,
}

/// Runs the guest once, until it takes an exception to EL2.
///
/// Interrupts stay masked throughout (`_irqs`), so a host interrupt shows as an IRQ exit
/// and is taken by the host once the caller unmasks.
pub(crate) fn run(ctx: &mut VcpuContext, vm: &VmRegs, _irqs: &LocalInterruptDisabled) -> Exit {
    // SAFETY: the kernel runs at EL2 (VHE backend) with interrupts masked, so no host code
    // runs between the switch to guest state and back. Every register changed here is
    // restored below before returning, except the guest-only ones (EL1 via _EL12 aliases,
    // stage 2, VMPIDR/VPIDR, CNTVOFF) that the host does not use on a VHE system.
    unsafe {
        let host = HostState {
            hcr: sysreg::hcr_el2::read(),
            cptr: sysreg::cptr_el2::read(),
            mdcr: sysreg::mdcr_el2::read(),
            cnthctl: sysreg::cnthctl_el2::read(),
            vbar: sysreg::vbar_el2::read(),
            tpidr_el0: sysreg::tpidr_el0::read(),
            tpidrro_el0: sysreg::tpidrro_el0::read(),
        };

        load_guest_el1(ctx);
        sysreg::vttbr_el2::write(vm.vttbr);
        sysreg::vtcr_el2::write(vm.vtcr);
        sysreg::cntvoff_el2::write(vm.cntvoff);
        sysreg::vpidr_el2::write(sysreg::midr_el1());
        sysreg::vmpidr_el2::write(ctx.mpidr);
        sysreg::elr_el2::write(ctx.pc);
        sysreg::spsr_el2::write(ctx.pstate);

        let mut hcr = traps::guest_hcr(true);
        if ctx.pending_vserror {
            hcr |= traps::hcr::VSE;
            ctx.pending_vserror = false;
        }
        sysreg::cptr_el2::write(traps::guest_cptr_vhe(host.cptr));
        sysreg::mdcr_el2::write(traps::guest_mdcr(host.mdcr));
        sysreg::cnthctl_el2::write(traps::guest_cnthctl_vhe(host.cnthctl));
        sysreg::vbar_el2::write(__rkvm_vhe_vectors.as_ptr() as u64);
        // Clearing TGE last: from here on, EL1&0 accesses mean the guest's regime.
        sysreg::hcr_el2::write(hcr);
        isb();

        let code = __rkvm_vhe_guest_enter(&mut ctx.gprs);

        // The syndrome first: nothing below may take an exception, but read it while it
        // is certainly the guest's.
        let exit = Exit {
            code: ExitCode::from_raw(code).unwrap_or(ExitCode::Sync),
            esr: sysreg::esr_el2::read(),
            far: sysreg::far_el2::read(),
            hpfar: sysreg::hpfar_el2::read(),
        };
        ctx.pc = sysreg::elr_el2::read();
        ctx.pstate = sysreg::spsr_el2::read();
        if sysreg::hcr_el2::read() & traps::hcr::VSE != 0 {
            // Not yet delivered (the guest had SErrors masked): keep it pending.
            ctx.pending_vserror = true;
        }

        // Back to the host regime (TGE set) before anything else.
        sysreg::hcr_el2::write(host.hcr);
        sysreg::vbar_el2::write(host.vbar);
        isb();
        save_guest_el1(ctx);
        sysreg::cptr_el2::write(host.cptr);
        sysreg::mdcr_el2::write(host.mdcr);
        sysreg::cnthctl_el2::write(host.cnthctl);
        sysreg::tpidr_el0::write(host.tpidr_el0);
        sysreg::tpidrro_el0::write(host.tpidrro_el0);
        isb();
        exit
    }
}

/// Loads the guest's EL1 and EL0 registers.
///
/// # Safety
///
/// VHE host at EL2, interrupts masked, and the host's EL0 thread registers saved.
unsafe fn load_guest_el1(ctx: &VcpuContext) {
    // SAFETY: by the caller's guarantee the _EL12 aliases reach the guest's registers and
    // nothing of the host lives in them.
    unsafe {
        sysreg::sctlr_el12::write(ctx.sys(El1Reg::Sctlr));
        sysreg::cpacr_el12::write(ctx.sys(El1Reg::Cpacr));
        sysreg::ttbr0_el12::write(ctx.sys(El1Reg::Ttbr0));
        sysreg::ttbr1_el12::write(ctx.sys(El1Reg::Ttbr1));
        sysreg::tcr_el12::write(ctx.sys(El1Reg::Tcr));
        sysreg::esr_el12::write(ctx.sys(El1Reg::Esr));
        sysreg::afsr0_el12::write(ctx.sys(El1Reg::Afsr0));
        sysreg::afsr1_el12::write(ctx.sys(El1Reg::Afsr1));
        sysreg::far_el12::write(ctx.sys(El1Reg::Far));
        sysreg::mair_el12::write(ctx.sys(El1Reg::Mair));
        sysreg::amair_el12::write(ctx.sys(El1Reg::Amair));
        sysreg::vbar_el12::write(ctx.sys(El1Reg::Vbar));
        sysreg::contextidr_el12::write(ctx.sys(El1Reg::Contextidr));
        sysreg::cntkctl_el12::write(ctx.sys(El1Reg::Cntkctl));
        sysreg::tpidr_el1::write(ctx.sys(El1Reg::Tpidr));
        sysreg::par_el1::write(ctx.sys(El1Reg::Par));
        sysreg::csselr_el1::write(ctx.sys(El1Reg::Csselr));
        sysreg::tpidr_el0::write(ctx.sys(El1Reg::TpidrEl0));
        sysreg::tpidrro_el0::write(ctx.sys(El1Reg::TpidrroEl0));
        sysreg::sp_el1::write(ctx.sp_el1);
        sysreg::elr_el12::write(ctx.elr_el1);
        sysreg::spsr_el12::write(ctx.spsr[0]);
        sysreg::cntv_cval_el02::write(ctx.vtimer_cval);
        sysreg::cntv_ctl_el02::write(ctx.vtimer_ctl);
    }
}

/// Saves the guest's EL1 and EL0 registers and quiesces its virtual timer.
///
/// # Safety
///
/// VHE host at EL2, interrupts masked, right after the guest exited.
unsafe fn save_guest_el1(ctx: &mut VcpuContext) {
    // SAFETY: by the caller's guarantee the _EL12 aliases still hold the guest's state.
    unsafe {
        ctx.set_sys(El1Reg::Sctlr, sysreg::sctlr_el12::read());
        ctx.set_sys(El1Reg::Cpacr, sysreg::cpacr_el12::read());
        ctx.set_sys(El1Reg::Ttbr0, sysreg::ttbr0_el12::read());
        ctx.set_sys(El1Reg::Ttbr1, sysreg::ttbr1_el12::read());
        ctx.set_sys(El1Reg::Tcr, sysreg::tcr_el12::read());
        ctx.set_sys(El1Reg::Esr, sysreg::esr_el12::read());
        ctx.set_sys(El1Reg::Afsr0, sysreg::afsr0_el12::read());
        ctx.set_sys(El1Reg::Afsr1, sysreg::afsr1_el12::read());
        ctx.set_sys(El1Reg::Far, sysreg::far_el12::read());
        ctx.set_sys(El1Reg::Mair, sysreg::mair_el12::read());
        ctx.set_sys(El1Reg::Amair, sysreg::amair_el12::read());
        ctx.set_sys(El1Reg::Vbar, sysreg::vbar_el12::read());
        ctx.set_sys(El1Reg::Contextidr, sysreg::contextidr_el12::read());
        ctx.set_sys(El1Reg::Cntkctl, sysreg::cntkctl_el12::read());
        ctx.set_sys(El1Reg::Tpidr, sysreg::tpidr_el1::read());
        ctx.set_sys(El1Reg::Par, sysreg::par_el1::read());
        ctx.set_sys(El1Reg::Csselr, sysreg::csselr_el1::read());
        ctx.set_sys(El1Reg::TpidrEl0, sysreg::tpidr_el0::read());
        ctx.set_sys(El1Reg::TpidrroEl0, sysreg::tpidrro_el0::read());
        ctx.sp_el1 = sysreg::sp_el1::read();
        ctx.elr_el1 = sysreg::elr_el12::read();
        ctx.spsr[0] = sysreg::spsr_el12::read();
        ctx.vtimer_cval = sysreg::cntv_cval_el02::read();
        ctx.vtimer_ctl = sysreg::cntv_ctl_el02::read();
        // The EL1 virtual timer keeps counting for nobody while the vCPU is out.
        sysreg::cntv_ctl_el02::write(0);
    }
}

/// Invalidates every stage-1 and stage-2 TLB entry of the VM whose VTTBR is `vttbr`, on
/// all CPUs. rkvm unmaps in batches (`mmu.rs`), so a VMID-wide invalidation per batch is
/// cheaper than one per page.
///
/// KVM counterpart: `__kvm_tlb_flush_vmid` in `vhe/tlb.c`. TLBIs by VMID act on
/// the VMID in VTTBR_EL2 and, with HCR_EL2.TGE set, would target the host's EL2&0
/// regime instead, so both are switched for the duration, with interrupts masked.
pub(crate) fn tlb_flush_vmid(vttbr: u64) {
    let _irqs = kernel::interrupt::local_interrupt_disable();
    // SAFETY: VHE host at EL2 with interrupts masked; HCR_EL2 and VTTBR_EL2 are restored
    // before interrupts come back, and no guest runs on this CPU meanwhile.
    unsafe {
        let old_vttbr = sysreg::vttbr_el2::read();
        let hcr = sysreg::hcr_el2::read();
        // Publish the table updates before invalidating.
        core::arch::asm!("dsb ishst", options(nostack));
        sysreg::vttbr_el2::write(vttbr);
        sysreg::hcr_el2::write(hcr & !traps::hcr::TGE);
        isb();
        core::arch::asm!("tlbi vmalls12e1is", "dsb ish", options(nostack));
        isb();
        sysreg::hcr_el2::write(hcr);
        sysreg::vttbr_el2::write(old_vttbr);
        isb();
    }
}

/// Reports an exception taken at EL2 while rkvm's vectors were installed: a bug in the
/// world switch. Called from `entry.S` with the host's vectors back in place.
#[no_mangle]
extern "C" fn rkvm_hyp_panic(esr: u64, elr: u64) -> ! {
    panic!("rkvm: unexpected exception at EL2 (ESR_EL2 {esr:#x}, ELR_EL2 {elr:#x})");
}
