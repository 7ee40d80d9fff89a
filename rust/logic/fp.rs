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

/// After the guest is seen using FP/SIMD (a first-use trap), this many `KVM_RUN`s load
/// its registers up front instead of waiting for the trap again. Then one run is lazy
/// (a probe), to notice a guest that stopped using FP. The trap and its exit cost about
/// as much as the load itself, so a guest that uses FP in every run (any guest running
/// user programs) saves one exit per run, and a guest that stopped pays at most the
/// window's length in unneeded loads.
pub(crate) const EAGER_RUNS: u16 = 32;

/// The longest eager window: each probe the guest answers with a trap doubles the window
/// up to this, so a guest that keeps using FP pays one probe's exit in this many runs
/// rather than in every 33rd, while one that used FP only in a burst still stops costing
/// anything after at most [`EAGER_RUNS`] unneeded loads.
pub(crate) const MAX_EAGER_RUNS: u16 = 256;

/// Whether `KVM_RUN` loads the guest's FP/SIMD registers before the first entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FpHint {
    eager_left: u16,
    /// The length of the last eager window; 0 once a probe went without a trap.
    window: u16,
    /// This run is the probe after an eager window.
    probing: bool,
}

impl FpHint {
    /// At the start of a `KVM_RUN`: load the registers now, or wait for the first use.
    pub(crate) fn load_at_start(&mut self) -> bool {
        if self.eager_left > 0 {
            self.eager_left -= 1;
            return true;
        }
        // A guest not using FP gets here on every run: two loads and no store.
        if self.window != 0 {
            self.lazy_after_window();
        }
        false
    }

    /// The first lazy run after a window probes; the next one means the probe saw no FP
    /// use, so the window starts again from the shortest.
    #[cold]
    fn lazy_after_window(&mut self) {
        self.probing = !self.probing;
        if !self.probing {
            self.window = 0;
        }
    }

    /// The guest trapped on its first FP/SIMD instruction of a run.
    pub(crate) fn first_use_trapped(&mut self) {
        self.window = if self.probing {
            (self.window * 2).min(MAX_EAGER_RUNS)
        } else {
            EAGER_RUNS
        };
        self.probing = false;
        self.eager_left = self.window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp_is_loaded_up_front_only_after_a_trap_and_re_probed() {
        let mut hint = FpHint::default();
        // A guest never seen using FP: lazy, every run.
        assert!(!hint.load_at_start());
        assert!(!hint.load_at_start());
        hint.first_use_trapped();
        for _ in 0..EAGER_RUNS {
            assert!(hint.load_at_start());
        }
        // Then one lazy run; without a trap in it, lazy stays.
        assert!(!hint.load_at_start());
        assert!(!hint.load_at_start());
        assert!(!hint.load_at_start());
        // A trap in a lazy run makes the next runs eager again, for the shortest window.
        hint.first_use_trapped();
        for _ in 0..EAGER_RUNS {
            assert!(hint.load_at_start());
        }
        assert!(!hint.load_at_start());
    }

    /// Counts the eager runs before the next lazy one.
    fn window(hint: &mut FpHint) -> u16 {
        let mut n = 0;
        while hint.load_at_start() {
            n += 1;
        }
        n
    }

    #[test]
    fn answered_probes_double_the_window_up_to_the_cap() {
        let mut hint = FpHint::default();
        assert_eq!(window(&mut hint), 0);
        let mut expect = EAGER_RUNS;
        for _ in 0..8 {
            // The lazy run `window` ended on is the probe; the guest traps in it.
            hint.first_use_trapped();
            assert_eq!(window(&mut hint), expect);
            expect = (expect * 2).min(MAX_EAGER_RUNS);
        }
        assert_eq!(expect, MAX_EAGER_RUNS);
        // An unanswered probe: lazy from then on, and a later trap starts short again.
        assert!(!hint.load_at_start());
        assert!(!hint.load_at_start());
        hint.first_use_trapped();
        assert_eq!(window(&mut hint), EAGER_RUNS);
    }

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
