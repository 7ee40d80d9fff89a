// SPDX-License-Identifier: GPL-2.0

//! `KVM_CHECK_EXTENSION`: which capabilities rkvm reports, and with what value.
//!
//! KVM counterpart: `kvm_vm_ioctl_check_extension_generic()` and the arm64
//! `kvm_vm_ioctl_check_extension()`. The rule is the ABI's: a capability is reported
//! (non-zero) only once it works end to end. Unknown numbers answer 0, never an error,
//! because clients probe numbers newer than the kernel they run on.

/// A capability number as userspace passes it (`KVM_CAP_*`, an `unsigned long`).
pub(crate) type CapNr = u64;

/// Capabilities rkvm implements. Each arm lands together with the feature it announces.
const SUPPORTED: &[(CapNr, i64)] = &[];

/// The value `KVM_CHECK_EXTENSION` returns for `cap`: 0 when unsupported.
pub(crate) fn check_extension(cap: CapNr) -> i64 {
    SUPPORTED.iter().find(|(nr, _)| *nr == cap).map_or(0, |(_, value)| *value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unimplemented_capabilities_read_zero() {
        for cap in [0, 1, 14 /* USER_MEMORY */, 123 /* ARM_VM_IPA_SIZE */, u64::MAX] {
            assert_eq!(check_extension(cap), 0);
        }
    }
}
