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

pub(crate) mod nvhe;
pub(crate) mod sysreg;

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
    cpufeature::select_backend(survey, kvm_initialised).map_err(|refusal| {
        pr_err!("cannot load: {}\n", refusal.reason());
        ENODEV
    })
}
