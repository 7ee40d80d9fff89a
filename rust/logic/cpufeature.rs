// SPDX-License-Identifier: GPL-2.0

//! Which world-switch backend a host can use, decided from what every CPU reports.
//!
//! KVM counterpart: `is_hyp_mode_available()`, `is_kernel_in_hyp_mode()` and
//! `kvm_arm_init()`'s refusal paths. Those read `__boot_cpu_mode`, which is not exported
//! to modules, so rkvm surveys each online CPU itself (see `hyp.rs`) and decides here.

/// `ID_AA64PFR0_EL1.EL2`, bits [11:8]: 0 when EL2 is not implemented.
pub(crate) const fn pfr0_el2(pfr0: u64) -> u64 {
    (pfr0 >> 8) & 0xf
}

/// `CurrentEL` register value to exception level.
pub(crate) const fn current_el(reg: u64) -> u64 {
    (reg >> 2) & 3
}

/// The hyp stub's reply to a call it does not know (`HVC_STUB_ERR` in `asm/virt.h`).
pub(crate) const HVC_STUB_ERR: u64 = 0xbadca11;
/// The first function number the hyp stub does not implement (`HVC_STUB_HCALL_NR`).
pub(crate) const HVC_STUB_HCALL_NR: u64 = 5;

/// What one CPU found when asked how the kernel runs on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CpuBoot {
    /// The kernel runs at EL2 (VHE host).
    KernelAtEl2,
    /// The kernel runs at EL1 and the kernel's hyp stub answers at EL2 (nVHE host).
    StubAtEl2,
    /// The kernel runs at EL1 and the CPU has no EL2.
    NoEl2,
    /// The kernel runs at EL1 and something other than the hyp stub owns EL2 (an
    /// in-kernel KVM in nVHE or protected mode, or firmware).
    ForeignEl2,
}

impl CpuBoot {
    /// Classifies a CPU from its `CurrentEL`, `ID_AA64PFR0_EL1` and, only when the kernel
    /// runs at EL1 on a CPU with EL2, the hyp stub's answer to `HVC_STUB_HCALL_NR`.
    ///
    /// `probe` is called at most once, and never when an HVC would be UNDEFINED.
    pub(crate) fn classify(current_el_reg: u64, pfr0: u64, probe: impl FnOnce() -> u64) -> Self {
        if current_el(current_el_reg) == 2 {
            Self::KernelAtEl2
        } else if pfr0_el2(pfr0) == 0 {
            Self::NoEl2
        } else if probe() == HVC_STUB_ERR {
            Self::StubAtEl2
        } else {
            Self::ForeignEl2
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The set of [`CpuBoot`] values seen across the online CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Survey(u8);

impl Survey {
    /// The survey after also seeing `cpu`.
    pub(crate) const fn with(self, cpu: CpuBoot) -> Self {
        Self(self.0 | cpu.bit())
    }

    const fn saw(self, cpu: CpuBoot) -> bool {
        self.0 & cpu.bit() != 0
    }
}

/// The world-switch backend for this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Host kernel at EL2: guest entry is a function call.
    Vhe,
    /// Host kernel at EL1: rkvm runs its own code at EL2 behind the hyp stub.
    Nvhe,
}

impl Backend {
    /// The name used in the kernel log and the documentation.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Vhe => "VHE",
            Self::Nvhe => "nVHE",
        }
    }
}

/// Why rkvm cannot run on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No CPU was surveyed.
    NoCpus,
    /// At least one CPU has no EL2 (or did not boot at EL2).
    NoEl2,
    /// EL2 is held by something other than the kernel's hyp stub.
    El2Owned,
    /// The in-kernel KVM initialised and owns EL2 (`/dev/kvm` exists).
    KvmOwnsEl2,
    /// Some CPUs run the kernel at EL2 and others at EL1.
    MixedModes,
}

impl Refusal {
    /// A sentence for the kernel log.
    pub(crate) const fn reason(self) -> &'static str {
        match self {
            Self::NoCpus => "no online CPU answered the EL2 survey",
            Self::NoEl2 => "EL2 is not available: a CPU was not booted at EL2",
            Self::El2Owned => "EL2 is owned by another hypervisor, not the kernel's hyp stub",
            Self::KvmOwnsEl2 => {
                "the in-kernel KVM owns EL2; boot with kvm-arm.mode=none to use rkvm"
            }
            Self::MixedModes => "CPUs run the kernel at different exception levels",
        }
    }
}

/// Picks the backend, or the reason to refuse, from the survey of all online CPUs and
/// whether the in-kernel KVM registered `/dev/kvm` (which it does only after it took EL2).
pub(crate) fn select_backend(survey: Survey, kvm_initialised: bool) -> Result<Backend, Refusal> {
    if kvm_initialised {
        return Err(Refusal::KvmOwnsEl2);
    }
    if survey.saw(CpuBoot::NoEl2) {
        return Err(Refusal::NoEl2);
    }
    if survey.saw(CpuBoot::ForeignEl2) {
        return Err(Refusal::El2Owned);
    }
    match (
        survey.saw(CpuBoot::KernelAtEl2),
        survey.saw(CpuBoot::StubAtEl2),
    ) {
        (true, true) => Err(Refusal::MixedModes),
        (true, false) => Ok(Backend::Vhe),
        (false, true) => Ok(Backend::Nvhe),
        (false, false) => Err(Refusal::NoCpus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EL1: u64 = 1 << 2;
    const EL2: u64 = 2 << 2;
    const PFR0_WITH_EL2: u64 = 0x1 << 8;

    fn no_probe() -> u64 {
        panic!("HVC issued where it must not be")
    }

    #[test]
    fn classify_each_boot_mode() {
        assert_eq!(
            CpuBoot::classify(EL2, PFR0_WITH_EL2, no_probe),
            CpuBoot::KernelAtEl2
        );
        assert_eq!(CpuBoot::classify(EL1, 0, no_probe), CpuBoot::NoEl2);
        assert_eq!(
            CpuBoot::classify(EL1, PFR0_WITH_EL2, || HVC_STUB_ERR),
            CpuBoot::StubAtEl2
        );
        // SMCCC NOT_SUPPORTED, as an nVHE KVM answers an unknown host call.
        assert_eq!(
            CpuBoot::classify(EL1, PFR0_WITH_EL2, || u64::MAX),
            CpuBoot::ForeignEl2
        );
    }

    #[test]
    fn uniform_hosts_get_a_backend() {
        let vhe = Survey::default().with(CpuBoot::KernelAtEl2);
        let nvhe = Survey::default().with(CpuBoot::StubAtEl2);
        assert_eq!(select_backend(vhe, false), Ok(Backend::Vhe));
        assert_eq!(select_backend(nvhe, false), Ok(Backend::Nvhe));
    }

    #[test]
    fn refusals() {
        let vhe = Survey::default().with(CpuBoot::KernelAtEl2);
        assert_eq!(select_backend(vhe, true), Err(Refusal::KvmOwnsEl2));
        assert_eq!(
            select_backend(Survey::default(), false),
            Err(Refusal::NoCpus)
        );
        let mixed = vhe.with(CpuBoot::StubAtEl2);
        assert_eq!(select_backend(mixed, false), Err(Refusal::MixedModes));
        let one_el1 = Survey::default()
            .with(CpuBoot::StubAtEl2)
            .with(CpuBoot::NoEl2);
        assert_eq!(select_backend(one_el1, false), Err(Refusal::NoEl2));
        let foreign = Survey::default()
            .with(CpuBoot::ForeignEl2)
            .with(CpuBoot::StubAtEl2);
        assert_eq!(select_backend(foreign, false), Err(Refusal::El2Owned));
    }

    #[test]
    fn id_register_fields() {
        assert_eq!(pfr0_el2(0x0000_0000_0000_1122), 1);
        assert_eq!(current_el(0b1000), 2);
    }
}
