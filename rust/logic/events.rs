// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_VCPU_EVENTS`/`KVM_SET_VCPU_EVENTS` on arm64: the pending virtual SError and
//! its syndrome, and an external data abort userspace injects.
//!
//! KVM counterpart: `kvm_arm_vcpu_{get,set}_events` and `__kvm_arm_vcpu_{get,set}_events`
//! (`arch/arm64/kvm/guest.c`), `kvm_inject_serror_esr` (`inject_fault.c`).

use super::inject::{ESR_ISS_MASK, ESR_SERROR_IDS};

/// `struct kvm_vcpu_events`, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Events {
    pub(crate) serror_pending: bool,
    pub(crate) serror_has_esr: bool,
    pub(crate) ext_dabt_pending: bool,
    pub(crate) serror_esr: u64,
}

/// What `KVM_GET_VCPU_EVENTS` reports for a vCPU whose virtual SError is `pending` with
/// VSESR `vsesr`, on a host with (`ras`) or without RAS. A pending external abort is never
/// reported: setting one delivers it at once.
pub(crate) const fn get(pending: bool, vsesr: u64, ras: bool) -> Events {
    Events {
        serror_pending: pending,
        serror_has_esr: ras,
        ext_dabt_pending: false,
        serror_esr: if pending && ras { vsesr } else { 0 },
    }
}

/// How a virtual SError reaches the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SError {
    /// The guest has SErrors unmasked: take the exception now, with this ISS.
    TakeNow { iss: u64 },
    /// Masked: leave it pending (HCR_EL2.VSE), with VSESR_EL2 = `vsesr`.
    Pend { vsesr: u64 },
}

/// The virtual SError `kvm_inject_serror_esr` makes of syndrome `esr`, for a guest whose
/// PSTATE.A is `masked`.
pub(crate) const fn serror(esr: u64, masked: bool) -> SError {
    if masked {
        SError::Pend {
            vsesr: esr & ESR_ISS_MASK,
        }
    } else {
        SError::TakeNow { iss: esr }
    }
}

/// A virtual SError without a syndrome (`kvm_inject_serror`): IDS set, the rest
/// IMPLEMENTATION DEFINED.
pub(crate) const NO_SYNDROME: u64 = ESR_SERROR_IDS;

/// What a `KVM_SET_VCPU_EVENTS` asks for, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SetPlan {
    /// Inject an external data abort first.
    pub(crate) ext_dabt: bool,
    /// Then a virtual SError with this syndrome.
    pub(crate) serror_esr: Option<u64>,
}

/// Checks `KVM_SET_VCPU_EVENTS` as KVM does: `None` (`EINVAL`) for padding or reserved
/// words set, for a syndrome on a host without RAS, and for a syndrome outside ISS. The
/// external abort is delivered even when the SError part is then refused, as on KVM;
/// `padding_clear` covers `exception.pad` and `reserved`, checked before anything.
pub(crate) fn check_set(ev: Events, padding_clear: bool, ras: bool) -> Result<SetPlan, SetPlan> {
    let refused = SetPlan {
        ext_dabt: false,
        serror_esr: None,
    };
    if !padding_clear {
        return Err(refused);
    }
    let mut plan = SetPlan {
        ext_dabt: ev.ext_dabt_pending,
        serror_esr: None,
    };
    if !ev.serror_pending {
        return Ok(plan);
    }
    if ev.serror_has_esr && (!ras || ev.serror_esr & !ESR_ISS_MASK != 0) {
        // KVM has injected the abort by now; only the SError is refused.
        return Err(plan);
    }
    plan.serror_esr = Some(if ev.serror_has_esr {
        ev.serror_esr
    } else {
        NO_SYNDROME
    });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pending: bool, has_esr: bool, dabt: bool, esr: u64) -> Events {
        Events {
            serror_pending: pending,
            serror_has_esr: has_esr,
            ext_dabt_pending: dabt,
            serror_esr: esr,
        }
    }

    #[test]
    fn get_reports_the_syndrome_only_with_ras() {
        assert_eq!(get(true, 0x42, true), ev(true, true, false, 0x42));
        assert_eq!(get(true, 0x42, false), ev(true, false, false, 0));
        assert_eq!(get(false, 0x42, true), ev(false, true, false, 0));
    }

    #[test]
    fn set_rules() {
        let plan = |ext_dabt, serror_esr| SetPlan {
            ext_dabt,
            serror_esr,
        };
        assert_eq!(
            check_set(ev(false, false, false, 0), true, true),
            Ok(plan(false, None))
        );
        assert_eq!(
            check_set(ev(true, false, false, 0), true, false),
            Ok(plan(false, Some(NO_SYNDROME)))
        );
        assert_eq!(
            check_set(ev(true, true, false, 0x1234), true, true),
            Ok(plan(false, Some(0x1234)))
        );
        // A syndrome needs RAS and must fit ISS; the abort still goes in.
        assert_eq!(
            check_set(ev(true, true, true, 0x1234), true, false),
            Err(plan(true, None))
        );
        assert_eq!(
            check_set(ev(true, true, false, 1 << 25), true, true),
            Err(plan(false, None))
        );
        // An ESR without a pending SError is ignored, as on KVM.
        assert_eq!(
            check_set(ev(false, true, true, 1 << 40), true, false),
            Ok(plan(true, None))
        );
        assert_eq!(
            check_set(ev(true, false, true, 0), false, true),
            Err(plan(false, None))
        );
    }

    #[test]
    fn masking_decides_delivery() {
        assert_eq!(serror(0x1_0042, false), SError::TakeNow { iss: 0x1_0042 });
        assert_eq!(serror(0xdead_0000_0042, true), SError::Pend { vsesr: 0x42 });
    }
}
