// SPDX-License-Identifier: GPL-2.0

//! The VHE backend: the host kernel runs at EL2, so entering a guest is a function call.
//!
//! KVM counterpart: `arch/arm64/kvm/hyp/vhe/switch.c` (`__kvm_vcpu_run_vhe`), `vhe/tlb.c`
//! and `vhe/sysreg-sr.c`. The host uses none of the EL1 registers, so the guest's EL1
//! state is loaded through the `_EL12` aliases with nothing of the host's to save, and
//! only when the vCPU thread arrives on a CPU ([`load`]) or leaves it ([`put`]), not on
//! every entry ([`run`]). This is the design of "Optimize KVM/ARM for VHE systems".

use super::{
    context::{El1Regs, Exit, ExitCode, VcpuContext, VgicCpuIf, VmRegs, LAZY_KEYS},
    sysreg::{self, isb},
};
use crate::logic::{
    fgt::{GuestTraps, HostCaps},
    hyplayout,
    regs::El1Reg,
    timer, traps,
};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::interrupt::LocalInterruptDisabled;

extern "C" {
    /// Loads the guest's GPRs and enters it; returns the exit code (`entry.S`).
    /// `apia`: the guest's APIA key for a vCPU with pointer authentication, else null.
    fn __rkvm_vhe_guest_enter(gprs: *mut super::context::GuestGprs, apia: *mut u64) -> u64;
    /// EL2 vectors live while a guest runs.
    static __rkvm_vhe_vectors: [u8; 0];
    /// The host's VBAR_EL2, for the panic path in `entry.S`.
    static mut __rkvm_host_vbar: u64;
}

/// Whether the host has RAS, so the guest's DISR_EL1 is VDISR_EL2 (set by [`init`]).
static RAS: AtomicBool = AtomicBool::new(false);
/// Whether the host has HCRX_EL2 and the fine-grained traps (FGT, FGT2).
static HCX: AtomicBool = AtomicBool::new(false);
static FGT: AtomicBool = AtomicBool::new(false);
static FGT2: AtomicBool = AtomicBool::new(false);

/// Records the host's EL2 vectors, RAS support and EL2 trap registers; called once at
/// module load, before any guest runs.
pub(crate) fn init() {
    // SAFETY: at EL2 on a VHE host; VBAR_EL2 is the same on every CPU. The store happens
    // before any guest can run, and the asm reads it only from the panic path.
    unsafe { __rkvm_host_vbar = sysreg::vbar_el2::read() };
    RAS.store(hyplayout::has_ras(super::host_pfr0()), Relaxed);
    let caps = HostCaps::of(&crate::vm::host_id_reg);
    HCX.store(caps.hcx, Relaxed);
    FGT.store(caps.fgt, Relaxed);
    FGT2.store(caps.fgt2, Relaxed);
}

/// Reads into `$save` (if given) and writes from `$t` the registers listed, each at its
/// index in `GuestTraps::fgt` (`FgtReg`'s order): straight-line code, since this
/// runs on every vCPU load and put.
macro_rules! switch_fgt {
    ($t:expr, $save:expr, $($i:literal => $reg:ident),+) => {
        if let Some(h) = $save {
            $(h.fgt[$i] = sysreg::$reg::read();)+
        }
        $(sysreg::$reg::write($t.fgt[$i]);)+
    };
}

/// Puts `t` in HCRX_EL2 and the fine-grained trap registers, saving what they held into
/// `host` (vCPU load), or, with `host` `None`, only writes `t` (put: `t` is the host's).
///
/// With HCR_EL2.{E2H,TGE} = {1,1} these registers have no effect on the host (kernel at
/// EL2, its EL0 under TGE), so they can hold the guest's values from load to put.
///
/// # Safety
///
/// VHE host at EL2 with preemption disabled, in [`load`] or [`put`].
unsafe fn switch_el2_traps(t: &GuestTraps, mut host: Option<&mut GuestTraps>) {
    // SAFETY: by the caller's guarantee; only registers the CPU has are touched.
    unsafe {
        if HCX.load(Relaxed) {
            if let Some(h) = host.as_deref_mut() {
                h.hcrx = sysreg::hcrx_el2::read();
            }
            sysreg::hcrx_el2::write(t.hcrx);
        }
        if FGT.load(Relaxed) {
            switch_fgt!(t, host.as_deref_mut(),
                0 => hfgrtr_el2, 1 => hfgwtr_el2, 2 => hfgitr_el2,
                3 => hdfgrtr_el2, 4 => hdfgwtr_el2);
            if FGT2.load(Relaxed) {
                switch_fgt!(t, host,
                    5 => hfgrtr2_el2, 6 => hfgwtr2_el2, 7 => hfgitr2_el2,
                    8 => hdfgrtr2_el2, 9 => hdfgwtr2_el2);
            }
        }
    }
}

/// Host registers a vCPU load replaces, restored by the matching put.
#[derive(Clone, Copy, Default)]
pub(crate) struct HostSaved {
    tpidr_el0: u64,
    tpidrro_el0: u64,
    mdcr: u64,
    cnthctl: u64,
    icc_sre: u64,
    /// HCRX_EL2 and the fine-grained traps, in the guest's layout.
    traps: GuestTraps,
}

/// A vCPU's lazily switched state: its EL1 registers and what it needs loaded.
pub(crate) struct Lazy {
    /// The saved copy; stale for registers in the CPU while `loaded`.
    pub(crate) el1: El1Regs,
    /// Stage 2 and counter offset of the VM, and the vCPU's MPIDR, set by `KVM_RUN`.
    pub(crate) vm: VmRegs,
    pub(crate) mpidr: u64,
    host: HostSaved,
    /// The vCPU has pointer authentication (set by `KVM_RUN`): `el1.keys` move too.
    pub(crate) ptrauth: bool,
    /// The host's keys `el1.keys` replace while loaded (both backends).
    pub(crate) host_keys: [u64; LAZY_KEYS],
    /// The guest's registers are in this CPU.
    pub(crate) loaded: bool,
}

impl Lazy {
    pub(crate) fn new() -> Self {
        Self {
            el1: El1Regs::reset(),
            vm: VmRegs::default(),
            mpidr: 0,
            host: HostSaved::default(),
            ptrauth: false,
            host_keys: [0; LAZY_KEYS],
            loaded: false,
        }
    }
}

/// `vcpu_load`: puts the guest's EL1 and EL0-thread registers, stage 2, identity
/// registers and the traps that do not change between entries into this CPU.
///
/// On a VHE host none of these are used by the host kernel, and the EL0 ones are the
/// VMM thread's, which only runs again after the matching [`put`]. MDCR_EL2 and
/// CNTHCTL_EL2 control EL0/EL1 only, so they can stay set between entries too.
///
/// # Safety
///
/// VHE host at EL2, preemption disabled, and no other vCPU loaded on this CPU.
pub(crate) unsafe fn load(l: &mut Lazy) {
    if l.loaded {
        return;
    }
    // SAFETY: by the caller's guarantee; every host value changed here is saved in
    // `l.host` and restored by `put` before the CPU runs anything that uses it.
    unsafe {
        l.host = HostSaved {
            tpidr_el0: sysreg::tpidr_el0::read(),
            tpidrro_el0: sysreg::tpidrro_el0::read(),
            mdcr: sysreg::mdcr_el2::read(),
            cnthctl: sysreg::cnthctl_el2::read(),
            icc_sre: 0,
            traps: GuestTraps::default(),
        };
        switch_el2_traps(&l.vm.traps, Some(&mut l.host.traps));
        let g = &l.el1;
        let r = &g.regs;
        load_el1_sys(&r.sys);
        sysreg::sp_el1::write(r.sp_el1);
        sysreg::elr_el12::write(r.elr_el1);
        sysreg::spsr_el12::write(r.spsr_el1);
        sysreg::cntv_cval_el02::write(r.cntv_cval);
        sysreg::cntv_ctl_el02::write(r.cntv_ctl);
        if RAS.load(Relaxed) {
            sysreg::vdisr_el2::write(g.disr);
        }
        if l.ptrauth {
            l.host_keys = sysreg::swap_lazy_keys(&g.keys);
        }
        if let Some(nr_aprs) = super::vgic_nr_aprs() {
            vgic_restore_vmcr_aprs(&g.gic, nr_aprs);
            // ICC_SRE_EL2.Enable clear: the guest's ICC_SRE_EL1 accesses trap (the real
            // register is shared with the host), as KVM's __vgic_v3_activate_traps.
            l.host.icc_sre = sysreg::icc_sre_el2::read();
            sysreg::icc_sre_el2::write(l.host.icc_sre & !ICC_SRE_EL2_ENABLE);
            // Without a vGIC every ICC_* access traps (and becomes an UNDEF). The bits
            // only act on EL1, so they stay set until `put`: `run` never touches
            // ICH_HCR_EL2 for such a VM (it has no list registers in use).
            if l.vm.ich_hcr != 0 {
                sysreg::ich_hcr_el2::write(l.vm.ich_hcr);
            }
        }

        sysreg::vttbr_el2::write(l.vm.vttbr);
        sysreg::vtcr_el2::write(l.vm.vtcr);
        sysreg::cntvoff_el2::write(l.vm.cntvoff);
        sysreg::vpidr_el2::write(sysreg::midr_el1());
        sysreg::vmpidr_el2::write(l.mpidr);
        sysreg::mdcr_el2::write(traps::guest_mdcr(l.host.mdcr));
        sysreg::cnthctl_el2::write(timer::guest_cnthctl_vhe(l.host.cnthctl, l.vm.cntpoff));
        isb();
    }
    l.loaded = true;
}

/// The switched registers of `logic/el1regs.rs`, moved through their VHE names.
macro_rules! vhe_el1_switch {
    ($($reg:ident = $enc:tt, $reset:literal, $how:ident $(($el1:ident, $vhe:ident))?;)*) => {
        /// Loads the guest's switched EL1 registers from their slots.
        ///
        /// # Safety
        ///
        /// VHE host at EL2 with preemption disabled, in [`load`]: the registers are the
        /// guest's from here until [`put`].
        #[inline(always)]
        unsafe fn load_el1_sys(sys: &[u64; El1Reg::COUNT]) {
            // SAFETY: by the caller's guarantee.
            unsafe { $($(sysreg::$vhe::write(sys[El1Reg::$reg as usize]);)?)* }
        }

        /// Saves the guest's switched EL1 registers into their slots.
        ///
        /// # Safety
        ///
        /// VHE host at EL2 with preemption disabled, in [`put`] on the CPU that loaded
        /// the vCPU.
        #[inline(always)]
        unsafe fn save_el1_sys(sys: &mut [u64; El1Reg::COUNT]) {
            // SAFETY: by the caller's guarantee.
            unsafe { $($(sys[El1Reg::$reg as usize] = sysreg::$vhe::read();)?)* }
        }
    };
}
crate::logic::el1regs::el1_regs!(vhe_el1_switch);

/// `vcpu_put`: saves the guest's registers back and gives the CPU back to the host.
///
/// # Safety
///
/// VHE host at EL2, preemption disabled, on the CPU where `l` was loaded.
pub(crate) unsafe fn put(l: &mut Lazy) {
    if !l.loaded {
        return;
    }
    // SAFETY: by the caller's guarantee the CPU holds this vCPU's registers.
    unsafe {
        let g = &mut l.el1;
        let r = &mut g.regs;
        save_el1_sys(&mut r.sys);
        r.sp_el1 = sysreg::sp_el1::read();
        r.elr_el1 = sysreg::elr_el12::read();
        r.spsr_el1 = sysreg::spsr_el12::read();
        r.cntv_cval = sysreg::cntv_cval_el02::read();
        r.cntv_ctl = sysreg::cntv_ctl_el02::read();
        // The EL1 virtual timer keeps counting for nobody while the vCPU is out.
        sysreg::cntv_ctl_el02::write(0);
        if RAS.load(Relaxed) {
            g.disr = sysreg::vdisr_el2::read();
        }
        if l.ptrauth {
            g.keys = sysreg::swap_lazy_keys(&l.host_keys);
        }
        if let Some(nr_aprs) = super::vgic_nr_aprs() {
            vgic_save_vmcr_aprs(&mut g.gic, nr_aprs);
            sysreg::icc_sre_el2::write(l.host.icc_sre);
            if l.vm.ich_hcr != 0 {
                sysreg::ich_hcr_el2::write(0);
            }
        }

        sysreg::tpidr_el0::write(l.host.tpidr_el0);
        sysreg::tpidrro_el0::write(l.host.tpidrro_el0);
        sysreg::mdcr_el2::write(l.host.mdcr);
        sysreg::cnthctl_el2::write(l.host.cnthctl);
        switch_el2_traps(&l.host.traps, None);
        isb();
    }
    l.loaded = false;
}

/// ICC_SRE_EL2.Enable: EL1 may access ICC_SRE_EL1.
const ICC_SRE_EL2_ENABLE: u64 = 1 << 3;

/// Loads the guest's ICH_VMCR_EL2 and active-priority registers (`vcpu_load`).
///
/// # Safety
///
/// VHE host at EL2 with a GICv3 CPU interface implementing `nr_aprs` APRs per group.
unsafe fn vgic_restore_vmcr_aprs(gic: &VgicCpuIf, nr_aprs: usize) {
    // SAFETY: by the caller's guarantee; the registers only affect the virtual CPU
    // interface, which the host does not use.
    unsafe {
        sysreg::ich_vmcr_el2::write(gic.vmcr);
        sysreg::ich_ap0r0_el2::write(gic.ap0r[0]);
        sysreg::ich_ap1r0_el2::write(gic.ap1r[0]);
        if nr_aprs > 1 {
            sysreg::ich_ap0r1_el2::write(gic.ap0r[1]);
            sysreg::ich_ap1r1_el2::write(gic.ap1r[1]);
        }
        if nr_aprs > 2 {
            sysreg::ich_ap0r2_el2::write(gic.ap0r[2]);
            sysreg::ich_ap1r2_el2::write(gic.ap1r[2]);
            sysreg::ich_ap0r3_el2::write(gic.ap0r[3]);
            sysreg::ich_ap1r3_el2::write(gic.ap1r[3]);
        }
    }
}

/// Saves them (`vcpu_put`).
///
/// # Safety
///
/// As for [`vgic_restore_vmcr_aprs`], on the CPU the vCPU was loaded on.
unsafe fn vgic_save_vmcr_aprs(gic: &mut VgicCpuIf, nr_aprs: usize) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        gic.vmcr = sysreg::ich_vmcr_el2::read();
        gic.ap0r[0] = sysreg::ich_ap0r0_el2::read();
        gic.ap1r[0] = sysreg::ich_ap1r0_el2::read();
        if nr_aprs > 1 {
            gic.ap0r[1] = sysreg::ich_ap0r1_el2::read();
            gic.ap1r[1] = sysreg::ich_ap1r1_el2::read();
        }
        if nr_aprs > 2 {
            gic.ap0r[2] = sysreg::ich_ap0r2_el2::read();
            gic.ap1r[2] = sysreg::ich_ap1r2_el2::read();
            gic.ap0r[3] = sysreg::ich_ap0r3_el2::read();
            gic.ap1r[3] = sysreg::ich_ap1r3_el2::read();
        }
    }
}

/// ICH_VTR_EL2 of this CPU.
///
/// # Safety
///
/// VHE host at EL2 whose CPU implements the GICv3 system-register interface
/// (ID_AA64PFR0_EL1.GIC != 0).
pub(crate) unsafe fn vgic_vtr() -> u64 {
    // SAFETY: by the caller's guarantee.
    unsafe { sysreg::ich_vtr_el2::read() }
}

/// Clears this CPU's list registers and ICH_HCR_EL2 (their reset values are UNKNOWN), so
/// no stale entry is ever presented; module load, on every CPU.
///
/// # Safety
///
/// As for [`vgic_vtr`], with `nr_lrs` the implemented LRs, and no guest on this CPU.
pub(crate) unsafe fn vgic_reset_cpu(nr_lrs: usize) {
    // SAFETY: by the caller's guarantee; the host does not use the virtual interface.
    unsafe {
        sysreg::ich_hcr_el2::write(0);
        for i in 0..nr_lrs {
            sysreg::ich_lr_write(i, 0);
        }
        isb();
    }
}

/// Reads a loaded guest EL1 register from the CPU (the exit handlers' view).
///
/// # Safety
///
/// VHE host at EL2, with this vCPU loaded on the current CPU and preemption disabled, or
/// in the run loop (where a preemption reloads the registers before the code resumes).
pub(crate) unsafe fn el1_read(reg: El1Reg) -> u64 {
    // SAFETY: by the caller's guarantee the aliases reach the guest's registers.
    unsafe {
        match reg {
            El1Reg::Sctlr => sysreg::sctlr_el12::read(),
            El1Reg::Vbar => sysreg::vbar_el12::read(),
            El1Reg::Esr => sysreg::esr_el12::read(),
            El1Reg::Far => sysreg::far_el12::read(),
            El1Reg::Tpidr => sysreg::tpidr_el1::read(),
            _ => 0,
        }
    }
}

/// The loaded guest's virtual timer: CNTV_CTL_EL0 (with ISTATUS as the CPU computes it)
/// and CNTV_CVAL_EL0. Two register reads: the timer's per-entry cost.
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn vtimer_regs() -> (u64, u64) {
    // SAFETY: by the caller's guarantee the aliases reach the guest's timer.
    unsafe {
        (
            sysreg::cntv_ctl_el02::read(),
            sysreg::cntv_cval_el02::read(),
        )
    }
}

/// Writes a loaded guest EL1 register (ESR_EL1 and FAR_EL1, for exception injection).
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn el1_write(reg: El1Reg, v: u64) {
    // SAFETY: by the caller's guarantee the aliases reach the guest's registers.
    unsafe {
        match reg {
            El1Reg::Esr => sysreg::esr_el12::write(v),
            El1Reg::Far => sysreg::far_el12::write(v),
            _ => {}
        }
    }
}

/// The loaded guest's ELR_EL1 and SPSR_EL1.
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn el1_exception_regs() -> (u64, u64) {
    // SAFETY: by the caller's guarantee.
    unsafe { (sysreg::elr_el12::read(), sysreg::spsr_el12::read()) }
}

/// Sets the loaded guest's ELR_EL1 and SPSR_EL1.
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn set_el1_exception_regs(elr: u64, spsr: u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        sysreg::elr_el12::write(elr);
        sysreg::spsr_el12::write(spsr);
    }
}

/// Runs the loaded guest once, until it takes an exception to EL2.
///
/// This is the per-entry path: only the registers that must differ between host and
/// guest while either runs are switched here (HCR_EL2, CPTR_EL2, VBAR_EL2, and the
/// guest's PC and PSTATE); everything else was set by [`load`]. The FP/SIMD registers are
/// the guest's only when `fp_owned`; otherwise its first FP instruction traps here
/// (`ESR_EL2.EC` 0x07) and the caller loads them.
///
/// Interrupts stay masked throughout (`_irqs`), so a host interrupt shows as an IRQ exit
/// and is taken by the host once the caller unmasks.
///
/// `gic` holds the list registers the vGIC's flush chose: with `used_lrs` != 0 they and
/// ICH_HCR_EL2 are loaded before the entry and read back (then cleared) after the exit;
/// otherwise no ICH_* register is touched. Only a VM with a vGIC uses list registers, and
/// its ICH_HCR_EL2 between entries is 0, so clearing it is right.
pub(crate) fn run(
    ctx: &mut VcpuContext,
    gic: &mut VgicCpuIf,
    fp_owned: bool,
    _irqs: &LocalInterruptDisabled,
) -> Exit {
    // SAFETY: the kernel runs at EL2 (VHE backend), the vCPU is loaded (the caller's run
    // loop), and interrupts are masked, so no host code runs between the switch to guest
    // controls and back. Each register changed here is restored before returning.
    unsafe {
        let host_hcr = sysreg::hcr_el2::read();
        let host_cptr = sysreg::cptr_el2::read();
        let host_vbar = sysreg::vbar_el2::read();

        sysreg::elr_el2::write(ctx.pc);
        sysreg::spsr_el2::write(ctx.pstate);
        let mut hcr =
            traps::guest_hcr_ptrauth(traps::guest_hcr(true, RAS.load(Relaxed)), ctx.ptrauth);
        if ctx.pending_vserror {
            hcr |= traps::hcr::VSE;
            ctx.pending_vserror = false;
            if RAS.load(Relaxed) {
                sysreg::vsesr_el2::write(ctx.vsesr);
            }
        }
        sysreg::cptr_el2::write(traps::guest_cptr_vhe(host_cptr, fp_owned));
        sysreg::vbar_el2::write(__rkvm_vhe_vectors.as_ptr() as u64);
        let used_lrs = gic.used_lrs as usize;
        // ICH_HCR_EL2 also without LRs when it traps ICC_DIR_EL1 (TDIR).
        if used_lrs != 0 || gic.hcr != 0 {
            for (i, &lr) in gic.lr[..used_lrs].iter().enumerate() {
                sysreg::ich_lr_write(i, lr);
            }
            sysreg::ich_hcr_el2::write(gic.hcr);
        }
        // Clearing TGE last: from here on, EL1&0 accesses mean the guest's regime.
        sysreg::hcr_el2::write(hcr);
        isb();

        let apia = if ctx.ptrauth {
            ctx.apia.as_mut_ptr()
        } else {
            core::ptr::null_mut()
        };
        let code = __rkvm_vhe_guest_enter(&mut ctx.gprs, apia);

        // The exit vectors return only the four exit codes; anything else is a failed
        // entry, never an exit with a stale syndrome.
        let code = ExitCode::decode(code);
        let exit = Exit {
            code,
            esr: sysreg::esr_el2::read(),
            far: sysreg::far_el2::read(),
            hpfar: sysreg::hpfar_el2::read(),
            cpu: match code {
                ExitCode::FailEntry(_) => crate::sys::cpu::this_cpu(),
                _ => 0,
            },
        };
        ctx.pc = sysreg::elr_el2::read();
        ctx.pstate = sysreg::spsr_el2::read();
        if sysreg::hcr_el2::read() & traps::hcr::VSE != 0 {
            // Not yet delivered (the guest had SErrors masked): keep it pending.
            ctx.pending_vserror = true;
        }
        if used_lrs != 0 {
            gic.misr = sysreg::ich_misr_el2::read();
            gic.eisr = sysreg::ich_eisr_el2::read();
            gic.elrsr = sysreg::ich_elrsr_el2::read();
            // EOIcount: EOIs of interrupts that were in no list register.
            gic.hcr = sysreg::ich_hcr_el2::read();
            for (i, lr) in gic.lr[..used_lrs].iter_mut().enumerate() {
                *lr = sysreg::ich_lr_read(i);
                sysreg::ich_lr_write(i, 0);
            }
            // Disabling the interface also drops a pending maintenance interrupt.
            sysreg::ich_hcr_el2::write(0);
        } else if gic.hcr != 0 {
            sysreg::ich_hcr_el2::write(0);
        }
        // Back to the host regime (TGE set) before anything else.
        sysreg::hcr_el2::write(host_hcr);
        sysreg::vbar_el2::write(host_vbar);
        sysreg::cptr_el2::write(host_cptr);
        isb();
        exit
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
