// SPDX-License-Identifier: GPL-2.0

//! Dirty-page logging: the bitmap of a memslot with `KVM_MEM_LOG_DIRTY_PAGES`, and the
//! rules of `KVM_GET_DIRTY_LOG`.
//!
//! KVM counterpart: `kvm_get_dirty_log_protect()` and `mark_page_dirty_in_slot()` in
//! `virt/kvm/kvm_main.c`. The bitmap is KVM's layout: bit `i` of 64-bit word `w`
//! (little-endian in userspace's buffer) is page `64 * w + i` of the slot, and bits past
//! the slot's last page are never set.
//!
//! The words are atomics so that a page can be marked through a shared reference (host
//! writes to guest memory go through `&Mmu`); every access happens under the VM's `mmu`
//! lock, so `Relaxed` is enough.

use super::memslot::MAX_SLOTS;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `KVM_MEM_LOG_DIRTY_PAGES`: the slot keeps a dirty bitmap.
pub(crate) const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1 << 0;
/// Bits per bitmap word (`BITS_PER_LONG`).
const WORD_BITS: u64 = 64;

/// Words of the bitmap of a slot of `npages` pages (`kvm_dirty_bitmap_bytes() / 8`).
pub(crate) const fn bitmap_words(npages: u64) -> usize {
    npages.div_ceil(WORD_BITS) as usize
}

/// A dirty-log request KVM refuses with `EINVAL`: a bad slot number. (A slot that does not exist or does not log is `ENOENT`, which
/// the caller decides.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// The slot id of a dirty-log request's `slot` field: address space in bits [31:16]
/// (only 0 exists on arm64), id below `KVM_USER_MEM_SLOTS`.
pub(crate) const fn slot_id(slot: u32) -> Result<u16, Invalid> {
    if slot >> 16 != 0 || (slot & 0xffff) as usize >= MAX_SLOTS {
        return Err(Invalid);
    }
    Ok(slot as u16)
}

/// The pages `[first, end)` of a slot that one word's `mask` spans, from its lowest to
/// its highest set bit (KVM write-protects `__ffs(mask)..=__fls(mask)`); `mask` != 0.
const fn span(word: usize, mask: u64) -> (u64, u64) {
    let base = word as u64 * WORD_BITS;
    (
        base + mask.trailing_zeros() as u64,
        base + WORD_BITS - mask.leading_zeros() as u64,
    )
}

/// The dirty bitmap of one slot of `npages` pages, over storage the caller owns
/// (`bitmap_words(npages)` words).
pub(crate) struct Bitmap<'a> {
    words: &'a [AtomicU64],
    npages: u64,
}

impl<'a> Bitmap<'a> {
    /// `words` holds at least `bitmap_words(npages)` words; extra words are ignored.
    pub(crate) fn new(words: &'a [AtomicU64], npages: u64) -> Self {
        let n = bitmap_words(npages).min(words.len());
        Self {
            words: words.get(..n).unwrap_or(&[]),
            npages: npages.min(n as u64 * WORD_BITS),
        }
    }

    /// Words of the bitmap, as userspace's buffer holds them.
    pub(crate) fn words(&self) -> usize {
        self.words.len()
    }

    /// Marks page `page` of the slot dirty (`mark_page_dirty_in_slot()`); a page past
    /// the slot is ignored.
    pub(crate) fn mark(&self, page: u64) {
        if page < self.npages {
            if let Some(w) = self.words.get((page / WORD_BITS) as usize) {
                w.fetch_or(1 << (page % WORD_BITS), Relaxed);
            }
        }
    }

    #[cfg(test)]
    /// Whether page `page` is marked.
    pub(crate) fn is_dirty(&self, page: u64) -> bool {
        page < self.npages
            && self
                .words
                .get((page / WORD_BITS) as usize)
                .is_some_and(|w| w.load(Relaxed) & 1 << (page % WORD_BITS) != 0)
    }

    /// `KVM_GET_DIRTY_LOG`: moves the bitmap into `out` (`8 * words()` bytes,
    /// little-endian words), clearing it, and calls `protect(first, end)` for the pages each
    /// non-zero word spans, which the caller write-protects again. Returns whether any
    /// page was dirty (the caller then invalidates the TLBs).
    pub(crate) fn take_into(&self, out: &mut [u8], mut protect: impl FnMut(u64, u64)) -> bool {
        let mut any = false;
        for (i, (w, chunk)) in self.words.iter().zip(out.chunks_exact_mut(8)).enumerate() {
            let mask = if w.load(Relaxed) != 0 {
                w.swap(0, Relaxed)
            } else {
                0
            };
            chunk.copy_from_slice(&mask.to_le_bytes());
            if mask != 0 {
                any = true;
                let (first, end) = span(i, mask);
                protect(first, end);
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    fn storage(npages: u64) -> Vec<AtomicU64> {
        (0..bitmap_words(npages))
            .map(|_| AtomicU64::new(0))
            .collect()
    }

    fn words(s: &[AtomicU64]) -> Vec<u64> {
        s.iter().map(|w| w.load(Relaxed)).collect()
    }

    fn le(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn bitmap_sizes() {
        assert_eq!(bitmap_words(1), 1);
        assert_eq!(bitmap_words(64), 1);
        assert_eq!(bitmap_words(65), 2);
        assert_eq!(bitmap_words(512), 8);
        // KVM_MEM_MAX_NR_PAGES: a 32 MiB bitmap, as KVM's.
        assert_eq!(bitmap_words((1 << 31) - 1), 1 << 25);
    }

    #[test]
    fn slot_numbers() {
        assert_eq!(slot_id(0), Ok(0));
        assert_eq!(slot_id(511), Ok(511));
        assert_eq!(slot_id(512), Err(Invalid));
        assert_eq!(slot_id(0xffff), Err(Invalid));
        assert_eq!(slot_id(1 << 16), Err(Invalid));
    }

    #[test]
    fn mark() {
        let s = storage(70);
        let b = Bitmap::new(&s, 70);
        assert_eq!(b.words(), 2);
        b.mark(0);
        b.mark(65);
        b.mark(69);
        b.mark(70); // past the slot
        b.mark(u64::MAX);
        assert_eq!(words(&s), [1, 1 << 1 | 1 << 5]);
        assert!(b.is_dirty(65) && !b.is_dirty(64) && !b.is_dirty(70));
        // Storage shorter than the slot is never overrun.
        let s = storage(64);
        let b = Bitmap::new(&s, 1000);
        b.mark(999);
        b.mark(63);
        assert_eq!(words(&s), [1 << 63]);
    }

    #[test]
    fn take_moves_and_reports_spans() {
        let s = storage(200);
        let b = Bitmap::new(&s, 200);
        for p in [3, 5, 40, 130, 199] {
            b.mark(p);
        }
        let mut out = std::vec![0xffu8; 32];
        let mut spans = Vec::new();
        assert!(b.take_into(&mut out, |f, e| spans.push((f, e))));
        assert_eq!(out, le(&[1 << 3 | 1 << 5 | 1 << 40, 0, 1 << 2, 1 << 7]));
        assert_eq!(spans, [(3, 41), (130, 131), (199, 200)]);
        assert_eq!(words(&s), [0, 0, 0, 0]);
        // Nothing dirty: zeroes out, nothing to protect.
        assert!(!b.take_into(&mut out, |_, _| panic!()));
        assert_eq!(out, [0; 32]);
    }

    #[test]
    fn spans_of_single_and_full_words() {
        assert_eq!(span(0, 1), (0, 1));
        assert_eq!(span(0, 1 << 63), (63, 64));
        assert_eq!(span(2, u64::MAX), (128, 192));
        assert_eq!(span(1, 0b1010), (65, 68));
    }
}
