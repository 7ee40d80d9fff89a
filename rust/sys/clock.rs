// SPDX-License-Identifier: GPL-2.0

//! The host's wall clock paired with its counter, and random numbers: what the guest's
//! PTP and TRNG hypercalls return.
//!
//! The kernel crate's `kernel::time` (7.3) reads single clocks (`Instant<C>`); it has no
//! clock/counter snapshot (`ktime_get_snapshot`) and no access to the CRNG
//! (`get_random_u64`). Both wrappers are generic; the snapshot is reduced to what a
//! PTP-style caller needs.

use kernel::bindings as kbindings;

/// The host's wall-clock time (ns since the epoch) and its clocksource's count, read
/// together; `None` unless that clocksource is the architected counter, the only one a
/// guest can relate its own counter to (as KVM's `kvm_ptp_get_time`).
pub(crate) fn realtime_and_counter() -> Option<(u64, u64)> {
    // SAFETY: all-zero is a valid `system_time_snapshot` (plain integers).
    let mut snap: kbindings::system_time_snapshot = unsafe { core::mem::zeroed() };
    // SAFETY: `snap` is a valid, writable snapshot for the duration of the call.
    unsafe {
        kbindings::ktime_get_snapshot_id(
            kbindings::CLOCK_REALTIME as kbindings::clockid_t,
            &mut snap,
        )
    };
    (snap.cs_id == kbindings::clocksource_ids_CSID_ARM_ARCH_COUNTER)
        .then_some((snap.systime as u64, snap.cycles))
}

/// 64 random bits from the kernel's CRNG.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: `get_random_u64` has no preconditions.
    unsafe { kbindings::get_random_u64() }
}

/// Overwrites `words` in a way the compiler keeps (random bits must not linger on the
/// stack once handed out, as KVM's `memzero_explicit`).
pub(crate) fn wipe(words: &mut [u64]) {
    for w in words.iter_mut() {
        // SAFETY: `w` is a valid, exclusive reference to a `u64`.
        unsafe { core::ptr::write_volatile(w, 0) };
    }
}
