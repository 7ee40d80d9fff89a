// SPDX-License-Identifier: GPL-2.0

//! Cache maintenance for memory handed to a guest.
//!
//! A guest may run with its caches off, and then reads memory directly: whatever the
//! host or a previous owner left in the caches must reach memory first. KVM counterpart:
//! `clean_dcache_guest_page` and `invalidate_icache_guest_page` (`kvm_mmu.h`).

use super::sysreg;
use core::arch::asm;

/// Cleans and invalidates `len` bytes at kernel address `va` to the point of coherency,
/// and, unless the CPU keeps instruction fetches coherent (`CTR_EL0.DIC`), invalidates
/// the instruction cache, so the guest sees the page's current contents either way.
pub(crate) fn sync_guest_page(va: usize, len: usize) {
    let ctr = clean_inval_dcache_to_poc(va, len);
    // SAFETY: barriers and an I-cache invalidation have no memory-safety effect.
    unsafe {
        asm!("dsb ish", options(nostack));
        if ctr & (1 << 29) == 0 {
            asm!("ic ialluis", "dsb ish", options(nostack));
        }
        asm!("isb", options(nostack));
    }
}

/// Cleans and invalidates `len` bytes at kernel address `va` to the point of coherency
/// and invalidates the instruction cache: for what EL2 reads or runs with its MMU off
/// (non-cacheable), on an nVHE host (`hyp/nvhe.rs`).
pub(crate) fn clean_to_poc(va: usize, len: usize) {
    clean_inval_dcache_to_poc(va, len);
    // SAFETY: barriers and an I-cache invalidation have no memory-safety effect.
    unsafe { asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// `DC CIVAC` over `len` bytes at kernel address `va` (no barrier); returns `CTR_EL0`.
fn clean_inval_dcache_to_poc(va: usize, len: usize) -> u64 {
    let ctr = sysreg::ctr_el0();
    // DminLine, bits [19:16]: log2 of the smallest data cache line in words.
    let line = 4usize << ((ctr >> 16) & 0xf);
    let end = va + len;
    let mut addr = va & !(line - 1);
    while addr < end {
        // SAFETY: `va..va+len` is mapped kernel memory (the callers' contract); a clean and
        // invalidate to PoC does not change its contents.
        unsafe { asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    ctr
}
