// SPDX-License-Identifier: GPL-2.0

//! Layer 3: the world-switch backends and their selection.
//!
//! The backend is chosen once, at module load, from a survey of every online CPU
//! (`logic::cpufeature` makes the decision): VHE when the kernel runs at EL2, nVHE when it
//! runs at EL1 with the kernel's hyp stub at EL2. rkvm refuses to load when EL2 is missing
//! or owned by someone else, including an initialised in-kernel KVM.
//!
//! KVM counterpart: `kvm_arm_init()` and `init_subsystems()` in `arch/arm64/kvm/arm.c`.

use crate::{
    logic::{
        cpufeature::{self, Backend, CpuBoot, Survey},
        regs::{El1Reg, SysReg},
    },
    sys,
};
use context::{Exit, VcpuContext, VgicCpuIf};
use kernel::{
    interrupt::LocalInterruptDisabled,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

pub(crate) mod cache;
pub(crate) mod context;
pub(crate) mod nvhe;
pub(crate) mod sysreg;
pub(crate) mod vhe;

/// A vCPU's lazily switched state (the same for both backends).
pub(crate) use vhe::Lazy as LazyState;

/// The sanitised `ID_AA64PFR0_EL1` of the host: the backends switch VDISR_EL2 where
/// every CPU has RAS (`hyplayout::has_ras`).
fn host_pfr0() -> u64 {
    sys::cpu::read_sanitised_id_reg(SysReg::new(3, 0, 0, 4, 0).encoding())
}

/// Whether every CPU has RAS: virtual SErrors carry a syndrome (VSESR_EL2).
pub(crate) fn has_ras() -> bool {
    crate::logic::hyplayout::has_ras(host_pfr0())
}

/// Whether the VHE backend is in use: the one branch every world-switch operation below
/// takes to reach its backend.
#[inline(always)]
fn is_vhe() -> bool {
    BACKEND.load(Relaxed) == BACKEND_VHE
}

/// `vcpu_load`: see `vhe::load` and `nvhe::load`.
///
/// # Safety
///
/// Preemption disabled, and no other vCPU loaded on this CPU.
#[inline(always)]
pub(crate) unsafe fn vcpu_load(l: &mut LazyState) {
    // SAFETY: by the caller's guarantee; the backend is the one selected at load.
    unsafe {
        if is_vhe() {
            vhe::load(l)
        } else {
            nvhe::load(l)
        }
    }
}

/// `vcpu_put`: see `vhe::put` and `nvhe::put`.
///
/// # Safety
///
/// Preemption disabled, on the CPU where `l` was loaded.
#[inline(always)]
pub(crate) unsafe fn vcpu_put(l: &mut LazyState) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        if is_vhe() {
            vhe::put(l)
        } else {
            nvhe::put(l)
        }
    }
}

/// Runs the loaded guest once: see `vhe::run` and `nvhe::run`.
#[inline(always)]
pub(crate) fn enter_guest(
    ctx: &mut VcpuContext,
    gic: &mut VgicCpuIf,
    fp_owned: bool,
    irqs: &LocalInterruptDisabled,
) -> Exit {
    if is_vhe() {
        vhe::run(ctx, gic, fp_owned, irqs)
    } else {
        nvhe::run(ctx, gic, fp_owned, irqs)
    }
}

/// Reads a loaded guest EL1 register.
///
/// # Safety
///
/// The vCPU is loaded on this CPU with preemption disabled, or the caller is in the run
/// loop (a preemption puts and reloads it before the code resumes).
pub(crate) unsafe fn el1_read(reg: El1Reg) -> u64 {
    // SAFETY: by the caller's guarantee.
    unsafe {
        if is_vhe() {
            vhe::el1_read(reg)
        } else {
            nvhe::el1_read(reg)
        }
    }
}

/// The loaded guest's virtual timer: CNTV_CTL_EL0 (with ISTATUS as the CPU computed it)
/// and CNTV_CVAL_EL0.
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn vtimer_regs() -> (u64, u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        if is_vhe() {
            vhe::vtimer_regs()
        } else {
            nvhe::vtimer_regs()
        }
    }
}

/// Writes a loaded guest EL1 register (ESR_EL1, FAR_EL1).
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn el1_write(reg: El1Reg, v: u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        if is_vhe() {
            vhe::el1_write(reg, v)
        } else {
            nvhe::el1_write(reg, v)
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
    unsafe {
        if is_vhe() {
            vhe::el1_exception_regs()
        } else {
            nvhe::el1_exception_regs()
        }
    }
}

/// Sets the loaded guest's ELR_EL1 and SPSR_EL1.
///
/// # Safety
///
/// As for [`el1_read`].
pub(crate) unsafe fn set_el1_exception_regs(elr: u64, spsr: u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        if is_vhe() {
            vhe::set_el1_exception_regs(elr, spsr)
        } else {
            nvhe::set_el1_exception_regs(elr, spsr)
        }
    }
}

/// What rkvm holds at EL2 while loaded: nothing on VHE (it changes EL2 state only inside
/// a guest entry), the installed runtime on nVHE. Dropping it gives EL2 back to the stub.
pub(crate) struct El2(#[allow(dead_code)] Option<nvhe::Runtime>);

impl El2 {
    /// Takes EL2 for `backend` on every online CPU (and, through CPU hotplug, on every CPU
    /// that comes online later).
    pub(crate) fn take(backend: Backend) -> Result<Self> {
        Ok(Self(match backend {
            Backend::Vhe => None,
            Backend::Nvhe => {
                let rt = nvhe::Runtime::install()?;
                // Asked of rkvm's runtime, now installed on every CPU; no LR reset
                // needed here (the runtime's init clears them on each CPU).
                if let Some(vtr) = nvhe::ich_vtr_el2() {
                    VGIC_VTR.store(vtr, Relaxed);
                }
                Some(rt)
            }
        }))
    }
}

/// ICH_VTR_EL2 as read at load (0: no GICv3 virtual CPU interface reachable).
static VGIC_VTR: Atomic<u64> = Atomic::new(0);

/// ID_AA64PFR0_EL1.GIC: the GICv3 system-register interface.
fn cpu_has_gicv3_sysregs() -> bool {
    (sysreg::id_aa64pfr0_el1() >> 24) & 0xf != 0
}

/// The host's GICv3 virtual CPU interface (list registers and APRs), if the backend can
/// use one. On VHE, ICH_VTR_EL2 is read directly at EL2; the nVHE backend provides it
/// from its EL2 code.
pub(crate) fn vgic_vtr() -> Option<crate::logic::vgic::lr::Vtr> {
    match VGIC_VTR.load(Relaxed) {
        0 => None,
        vtr => Some(crate::logic::vgic::lr::Vtr::decode(vtr)),
    }
}

/// APRs per group to switch at load/put, when a GICv3 virtual interface is in use.
pub(crate) fn vgic_nr_aprs() -> Option<usize> {
    vgic_vtr().map(|v| v.nr_aprs)
}

/// Reads ICH_VTR_EL2 and clears every CPU's list registers (VHE; the nVHE runtime does
/// both from EL2, see `El2::take`). ICH_VTR_EL2 is the
/// same on every CPU of the systems rkvm supports (as KVM assumes).
fn vgic_probe() {
    if !cpu_has_gicv3_sysregs() {
        return;
    }
    // SAFETY: VHE host at EL2 with the GICv3 system-register interface.
    let vtr = unsafe { vhe::vgic_vtr() };
    let nr_lrs = crate::logic::vgic::lr::Vtr::decode(vtr).nr_lrs;
    sys::cpu::on_each_cpu(&|| {
        // SAFETY: as above, on each CPU, with no guest loaded yet.
        unsafe { vhe::vgic_reset_cpu(nr_lrs) }
    });
    VGIC_VTR.store(vtr, Relaxed);
}

/// The backend chosen at load: `BACKEND_VHE` or `BACKEND_NVHE` (0 before selection).
static BACKEND: Atomic<u32> = Atomic::new(0);
const BACKEND_VHE: u32 = 1;
const BACKEND_NVHE: u32 = 2;

/// The backend in use (valid once the module is loaded).
pub(crate) fn backend() -> Backend {
    if BACKEND.load(Relaxed) == BACKEND_VHE {
        Backend::Vhe
    } else {
        Backend::Nvhe
    }
}

/// Invalidates every TLB entry of the VM with VTTBR `vttbr`, on all CPUs.
pub(crate) fn tlb_flush_vmid(vttbr: u64) {
    match backend() {
        Backend::Vhe => vhe::tlb_flush_vmid(vttbr),
        Backend::Nvhe => nvhe::tlb_flush_vmid(vttbr),
    }
}

/// Surveys the online CPUs and picks the backend, logging why when rkvm cannot run.
pub(crate) fn select_backend() -> Result<Backend> {
    // One counter per `CpuBoot` kind, filled in from each CPU's IPI.
    let seen = [const { Atomic::new(0u32) }; 4];
    sys::cpu::on_each_cpu(&|| {
        let boot = CpuBoot::classify(sysreg::current_el(), sysreg::id_aa64pfr0_el1(), || {
            // SAFETY: `classify` calls this only when the kernel runs at EL1 on a CPU that
            // implements EL2, where HVC #0 traps to whatever owns EL2 and, if that is the
            // hyp stub, `HVC_STUB_HCALL_NR` is answered with `HVC_STUB_ERR` and no effect.
            unsafe { nvhe::stub_call(cpufeature::HVC_STUB_HCALL_NR, 0) }
        });
        seen[boot as usize].fetch_add(1, Relaxed);
    });

    let survey = [
        CpuBoot::KernelAtEl2,
        CpuBoot::StubAtEl2,
        CpuBoot::NoEl2,
        CpuBoot::ForeignEl2,
    ]
    .into_iter()
    .filter(|kind| seen[*kind as usize].load(Relaxed) != 0)
    .fold(Survey::default(), Survey::with);

    let kvm_initialised = sys::misc::minor_in_use(sys::misc::KVM_MINOR, c"rkvm-kvm-probe")?;
    let backend = cpufeature::select_backend(survey, kvm_initialised).map_err(|refusal| {
        pr_err!("cannot load: {}\n", refusal.reason());
        ENODEV
    })?;
    if backend == Backend::Vhe {
        vhe::init();
        vgic_probe();
    }
    BACKEND.store(
        if backend == Backend::Vhe {
            BACKEND_VHE
        } else {
            BACKEND_NVHE
        },
        Relaxed,
    );
    Ok(backend)
}
