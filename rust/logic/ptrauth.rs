// SPDX-License-Identifier: GPL-2.0

//! Pointer authentication for guests: whether the host can offer it, the ID-register
//! fields that show it, and the key registers (the vCPU features that ask for it are
//! `logic::features`).
//!
//! KVM counterpart: `kvm_has_full_ptr_auth()` (`arch/arm64/kvm/arm.c`), the ptrauth cases of `__kvm_read_sanitised_id_reg()` and
//! the `PTRAUTH_KEY` rows of `sys_reg_descs[]` (`sys_regs.c`).
//!
//! The keys are guest state that rkvm switches itself (`Documentation/design.rst`), so
//! what the host needs is the CPUs' support, read from the sanitised ID registers (which
//! honour `arm64.nopauth`); the host kernel's own use of the keys is not a condition.

use super::idregs::{field, ID_AA64ISAR1_EL1, ID_AA64ISAR2_EL1};

/// `ID_AA64ISAR1_EL1` fields of pointer authentication: APA [7:4], API [11:8],
/// GPA [27:24], GPI [31:28].
pub(crate) const ISAR1_FIELDS: u64 = 0xf << 4 | 0xf << 8 | 0xf << 24 | 0xf << 28;
/// `ID_AA64ISAR2_EL1` fields: GPA3 [11:8], APA3 [15:12] and PAC_frac [27:24], which
/// refines the algorithm the other two name.
pub(crate) const ISAR2_FIELDS: u64 = 0xf << 8 | 0xf << 12 | 0xf << 24;

/// The pointer-authentication fields of the host's ID register (3, 0, 0, `crm`, `op2`),
/// which the guest's view of a VM with pointer authentication adds to
/// `idregs::guest_view` (which hides them).
pub(crate) fn id_fields(crm: u8, op2: u8, host: u64) -> u64 {
    match (crm, op2) {
        ID_AA64ISAR1_EL1 => host & ISAR1_FIELDS,
        ID_AA64ISAR2_EL1 => host & ISAR2_FIELDS,
        _ => 0,
    }
}

/// Whether every CPU has address and generic authentication with one common algorithm
/// (QARMA5, IMPLEMENTATION DEFINED or QARMA3), as KVM's `kvm_has_full_ptr_auth`.
/// `isar1` and `isar2` are the sanitised `ID_AA64ISAR1_EL1` and `ID_AA64ISAR2_EL1`.
pub(crate) fn host_has_full_ptrauth(isar1: u64, isar2: u64) -> bool {
    let apa = field(isar1, 4) != 0;
    let api = field(isar1, 8) != 0;
    let gpa = field(isar1, 24) == 1;
    let gpi = field(isar1, 28) == 1;
    let gpa3 = field(isar2, 8) == 1;
    let apa3 = field(isar2, 12) != 0;
    apa == gpa && api == gpi && apa3 == gpa3 && u8::from(apa) + u8::from(api) + u8::from(apa3) == 1
}

/// The key registers, in save-area order: APIA, APIB, APDA, APDB, APGA, each LO then HI.
/// Their encodings are (3, 0, 2, 1 + n / 4, n % 4) for slot n.
pub(crate) const KEY_REGS: usize = 10;

/// The encoding `(op0, op1, CRn, CRm, op2)` of key register slot `n` (below
/// [`KEY_REGS`]).
pub(crate) const fn key_encoding(n: usize) -> (u8, u8, u8, u8, u8) {
    (3, 0, 2, 1 + (n / 4) as u8, (n % 4) as u8)
}

/// Slots of the key that moves on every entry and exit: APIA, the one the host kernel
/// signs its return addresses with (`-mbranch-protection=pac-ret`). The other four move
/// at `vcpu_load`/`vcpu_put` only.
pub(crate) const APIA_SLOTS: core::ops::Range<usize> = 0..2;

#[cfg(test)]
mod tests {
    use super::*;

    // QEMU's `-cpu max`: QARMA5 with FPACCOMBINE (APA = 5), GPA = 1; ISAR2 PAC_frac 1.
    const MAX_ISAR1: u64 = 0x0000_0000_0110_2051;
    const MAX_ISAR2: u64 = 0x0000_0000_0100_0000;

    #[test]
    fn host_support_needs_both_kinds_and_one_algorithm() {
        assert!(host_has_full_ptrauth(MAX_ISAR1, MAX_ISAR2));
        // Cortex-A72: none.
        assert!(!host_has_full_ptrauth(0, 0));
        // Address without generic authentication, and the reverse.
        assert!(!host_has_full_ptrauth(1 << 4, 0));
        assert!(!host_has_full_ptrauth(1 << 24, 0));
        // IMPDEF alone, and QARMA3 alone.
        assert!(host_has_full_ptrauth(1 << 8 | 1 << 28, 0));
        assert!(host_has_full_ptrauth(0, 1 << 8 | 3 << 12));
        // Two algorithms at once.
        assert!(!host_has_full_ptrauth(1 << 4 | 1 << 24, 1 << 8 | 1 << 12));
        // A generic-authentication value beyond "implemented" is not KVM's IMP.
        assert!(!host_has_full_ptrauth(1 << 4 | 2 << 24, 0));
    }

    #[test]
    fn key_encodings() {
        let names = [
            (3, 0, 2, 1, 0), // APIAKEYLO_EL1
            (3, 0, 2, 1, 1), // APIAKEYHI_EL1
            (3, 0, 2, 1, 2), // APIBKEYLO_EL1
            (3, 0, 2, 1, 3), // APIBKEYHI_EL1
            (3, 0, 2, 2, 0), // APDAKEYLO_EL1
            (3, 0, 2, 2, 1), // APDAKEYHI_EL1
            (3, 0, 2, 2, 2), // APDBKEYLO_EL1
            (3, 0, 2, 2, 3), // APDBKEYHI_EL1
            (3, 0, 2, 3, 0), // APGAKEYLO_EL1
            (3, 0, 2, 3, 1), // APGAKEYHI_EL1
        ];
        for (n, enc) in names.iter().enumerate() {
            assert_eq!(key_encoding(n), *enc);
        }
    }

    #[test]
    fn id_register_fields() {
        assert_eq!(MAX_ISAR1 & ISAR1_FIELDS, 0x0100_0050);
        assert_eq!(MAX_ISAR2 & ISAR2_FIELDS, 0x0100_0000);
        assert_eq!(id_fields(6, 1, u64::MAX), ISAR1_FIELDS);
        assert_eq!(id_fields(6, 2, u64::MAX), ISAR2_FIELDS);
        assert_eq!(id_fields(6, 0, u64::MAX), 0);
        // The guest's base view hides exactly these fields.
        for (crm, op2, fields) in [(6, 1, ISAR1_FIELDS), (6, 2, ISAR2_FIELDS)] {
            assert_eq!(
                super::super::idregs::guest_view(crm, op2, u64::MAX) & fields,
                0
            );
        }
    }
}
