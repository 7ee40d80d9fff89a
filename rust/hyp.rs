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
    logic::cpufeature::{self, Backend, CpuBoot, Survey},
    sys,
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

pub(crate) mod cache;
pub(crate) mod context;
pub(crate) mod nvhe;
pub(crate) mod sysreg;
pub(crate) mod vhe;

/// The vCPU operations of the world switch, as the objects above see them: load/put of
/// the lazily switched state, one guest entry, and the loaded guest's EL1 registers for
/// the exit handlers. Only the VHE backend implements them so far, and `Vm::create`
/// refuses VMs on any other, so these are the VHE functions; the nVHE backend will turn
/// them into dispatchers without changing their callers.
pub(crate) use vhe::{
    el1_exception_regs, el1_read, el1_write, load as vcpu_load, put as vcpu_put,
    run as enter_guest, set_el1_exception_regs, vtimer_regs, Lazy as LazyState,
};

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

/// Reads ICH_VTR_EL2 and clears every CPU's list registers (VHE). ICH_VTR_EL2 is the
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
        // VMs are refused on nVHE hosts until the nVHE world switch exists (vm.rs), so no
        // VM has TLB entries to invalidate there.
        Backend::Nvhe => {}
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

    let survey = [CpuBoot::KernelAtEl2, CpuBoot::StubAtEl2, CpuBoot::NoEl2, CpuBoot::ForeignEl2]
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
    BACKEND.store(if backend == Backend::Vhe { BACKEND_VHE } else { BACKEND_NVHE }, Relaxed);
    Ok(backend)
}
