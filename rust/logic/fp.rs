// SPDX-License-Identifier: GPL-2.0

//! Who owns the FP/SIMD registers during a `KVM_RUN`: the state machine of lazy FP.
//!
//! KVM counterpart: `enum fp_type`/`fp_owner` (`kvm_host.h`), `kvm_arch_vcpu_load_fp`,
//! `kvm_hyp_handle_fpsimd` and `kvm_arch_vcpu_put_fp` (`fpsimd.c`, `hyp/switch.h`).
//!
//! rkvm delegates the host side to the kernel's kernel-mode FP support, so only two
//! states remain: the registers hold the host's (VMM's) values, or the guest's. Preemption
//! does not change the state: the kernel saves and restores the guest's registers as the
//! thread's kernel-mode FP state.

/// Owner of the FP/SIMD registers while the vCPU thread is in `KVM_RUN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FpOwner {
    /// The VMM's state (or nothing yet); guest FP instructions trap to EL2.
    Host,
    /// The guest's state; guest FP instructions run natively.
    Guest,
}

/// What the run loop does on the guest's FP trap (ESR_EL2.EC 0x07).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnTrap {
    /// Save the host's registers, load the guest's, retry the instruction.
    LoadGuest,
    /// The guest already owns the registers: the trap is not a lazy-FP trap (an UNDEF
    /// for the guest).
    Undefined,
}

impl FpOwner {
    /// Every `KVM_RUN` starts with the host's registers in place.
    pub(crate) const START: Self = Self::Host;

    /// Whether guest FP/SIMD instructions may run without trapping to EL2.
    pub(crate) const fn guest_may_use_fp(self) -> bool {
        matches!(self, Self::Guest)
    }

    /// The guest trapped on an FP/SIMD instruction: the action and the new owner.
    pub(crate) const fn on_trap(self) -> (OnTrap, Self) {
        match self {
            Self::Host => (OnTrap::LoadGuest, Self::Guest),
            Self::Guest => (OnTrap::Undefined, Self::Guest),
        }
    }

    /// `KVM_RUN` returns: whether the guest's registers must be saved to its save area.
    pub(crate) const fn on_put(self) -> (bool, Self) {
        (matches!(self, Self::Guest), Self::Host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_never_uses_fp_costs_nothing() {
        let owner = FpOwner::START;
        assert!(!owner.guest_may_use_fp());
        assert_eq!(owner.on_put(), (false, FpOwner::Host));
    }

    #[test]
    fn first_use_loads_once_and_put_saves() {
        let (action, owner) = FpOwner::START.on_trap();
        assert_eq!(action, OnTrap::LoadGuest);
        assert!(owner.guest_may_use_fp());
        // A second FP trap while the guest owns FP is not lazy FP.
        assert_eq!(owner.on_trap(), (OnTrap::Undefined, FpOwner::Guest));
        let (save, owner) = owner.on_put();
        assert!(save);
        assert_eq!(owner, FpOwner::START);
    }
}
