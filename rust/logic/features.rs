// SPDX-License-Identifier: GPL-2.0

//! `KVM_ARM_VCPU_INIT`'s feature bits: which a vCPU may ask for, with KVM's errnos.
//!
//! KVM counterpart: `system_supported_vcpu_features()` and
//! `kvm_vcpu_init_check_features()` (`arch/arm64/kvm/arm.c`).

/// `KVM_ARM_VCPU_INIT` feature bits (`arch/arm64/include/uapi/asm/kvm.h`).
pub(crate) mod feature {
    pub(crate) const POWER_OFF: u32 = 1 << 0;
    pub(crate) const PSCI_0_2: u32 = 1 << 2;
    pub(crate) const PTRAUTH_ADDRESS: u32 = 1 << 5;
    pub(crate) const PTRAUTH_GENERIC: u32 = 1 << 6;
    /// Every bit KVM defines (`KVM_VCPU_VALID_FEATURES`: 0-9).
    pub(crate) const VALID: u32 = (1 << 10) - 1;
    /// Pointer authentication, which KVM offers only as both bits together.
    pub(crate) const PTRAUTH: u32 = PTRAUTH_ADDRESS | PTRAUTH_GENERIC;
}

/// Why `KVM_ARM_VCPU_INIT` refuses a feature set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InitError {
    /// A bit KVM does not define, or a non-zero `features[1..]` (`ENOENT`).
    Unknown,
    /// A feature rkvm or this host does not offer, or half of pointer authentication
    /// (`EINVAL`).
    Unsupported,
}

/// The feature word of `KVM_ARM_VCPU_INIT` (`features`: the uapi array), checked as
/// KVM's `kvm_vcpu_init_check_features`. `host_ptrauth`: the host can offer pointer
/// authentication (`logic::ptrauth::host_has_full_ptrauth`).
pub(crate) fn check_features(features: &[u32], host_ptrauth: bool) -> Result<u32, InitError> {
    let (&first, rest) = features.split_first().ok_or(InitError::Unknown)?;
    if first & !feature::VALID != 0 || rest.iter().any(|&f| f != 0) {
        return Err(InitError::Unknown);
    }
    let mut offered = feature::POWER_OFF | feature::PSCI_0_2;
    if host_ptrauth {
        offered |= feature::PTRAUTH;
    }
    if first & !offered != 0 {
        return Err(InitError::Unsupported);
    }
    let ptrauth = first & feature::PTRAUTH;
    if ptrauth != 0 && ptrauth != feature::PTRAUTH {
        return Err(InitError::Unsupported);
    }
    Ok(first)
}

/// Whether a vCPU initialised with `features` has pointer authentication (KVM's
/// `vcpu_has_ptrauth`).
pub(crate) const fn has_ptrauth(features: u32) -> bool {
    features & feature::PTRAUTH != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_kvms_rules() {
        let both = feature::PTRAUTH | feature::PSCI_0_2;
        assert_eq!(check_features(&[both, 0, 0], true), Ok(both));
        assert_eq!(check_features(&[0; 7], false), Ok(0));
        // Only both bits together; nothing where the host lacks it.
        for half in [feature::PTRAUTH_ADDRESS, feature::PTRAUTH_GENERIC] {
            assert_eq!(check_features(&[half], true), Err(InitError::Unsupported));
        }
        assert_eq!(
            check_features(&[feature::PTRAUTH], false),
            Err(InitError::Unsupported)
        );
        // PMU (3), SVE (4), EL1_32BIT (1): known, not offered.
        for bit in [1, 3, 4, 7, 8, 9] {
            assert_eq!(
                check_features(&[1 << bit], true),
                Err(InitError::Unsupported)
            );
        }
        // Unknown bits and the later words come first, as in KVM.
        assert_eq!(
            check_features(&[1 << 10 | feature::PTRAUTH_ADDRESS], true),
            Err(InitError::Unknown)
        );
        assert_eq!(check_features(&[0, 1], true), Err(InitError::Unknown));
        assert!(has_ptrauth(both) && !has_ptrauth(feature::PSCI_0_2));
    }
}
