// SPDX-License-Identifier: GPL-2.0

//! Dirty-page logging: the bitmap of a memslot with `KVM_MEM_LOG_DIRTY_PAGES`, and the
//! rules of `KVM_GET_DIRTY_LOG`, `KVM_CLEAR_DIRTY_LOG` and
//! `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`.
//!
//! KVM counterpart: `kvm_get_dirty_log_protect()`, `kvm_clear_dirty_log_protect()`,
//! `mark_page_dirty_in_slot()` and the `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` case of
//! `kvm_vm_ioctl_enable_cap_generic()` in `virt/kvm/kvm_main.c`, with arm64's
//! `KVM_DIRTY_LOG_MANUAL_CAPS`. The bitmap is KVM's layout: bit `i` of 64-bit word `w`
//! (little-endian in userspace's buffer) is page `64 * w + i` of the slot, and bits past
//! the slot's last page are never set.
//!
//! The words are atomics so that a page can be marked through a shared reference (host
//! writes to guest memory go through `&Mmu`); every access happens under the VM's MMU
//! lock, so `Relaxed` is enough.

use super::memslot::MAX_SLOTS;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// `KVM_MEM_LOG_DIRTY_PAGES`: the slot keeps a dirty bitmap.
pub(crate) const KVM_MEM_LOG_DIRTY_PAGES: u32 = 1 << 0;
/// `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE`: `KVM_GET_DIRTY_LOG` only reads the bitmap;
/// `KVM_CLEAR_DIRTY_LOG` clears bits and write-protects their pages again.
pub(crate) const MANUAL_PROTECT_ENABLE: u64 = 1 << 0;
/// `KVM_DIRTY_LOG_INITIALLY_SET`: a slot starts logging with every bit set and nothing
/// write-protected.
pub(crate) const INITIALLY_SET: u64 = 1 << 1;
/// arm64's `KVM_DIRTY_LOG_MANUAL_CAPS`: what `KVM_CHECK_EXTENSION` of
/// `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` answers.
pub(crate) const MANUAL_CAPS: u64 = MANUAL_PROTECT_ENABLE | INITIALLY_SET;

/// Bits per bitmap word (`BITS_PER_LONG`).
const WORD_BITS: u64 = 64;

/// Words of the bitmap of a slot of `npages` pages (`kvm_dirty_bitmap_bytes() / 8`).
pub(crate) const fn bitmap_words(npages: u64) -> usize {
    npages.div_ceil(WORD_BITS) as usize
}

/// The VM's manual-protect options (KVM's `kvm->manual_dirty_log_protect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mode(u64);

impl Mode {
    /// `KVM_ENABLE_CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)`: `flags` must be 0;
    /// `INITIALLY_SET` only comes with `MANUAL_PROTECT_ENABLE`; 0 turns manual protection
    /// off again. `None` is `EINVAL`.
    pub(crate) const fn from_cap(flags: u32, arg0: u64) -> Option<Self> {
        let allowed = if arg0 & MANUAL_PROTECT_ENABLE != 0 {
            MANUAL_CAPS
        } else {
            MANUAL_PROTECT_ENABLE
        };
        if flags != 0 || arg0 & !allowed != 0 {
            return None;
        }
        Some(Self(arg0))
    }

    /// `KVM_GET_DIRTY_LOG` only reads; clearing is `KVM_CLEAR_DIRTY_LOG`'s.
    pub(crate) const fn manual(self) -> bool {
        self.0 & MANUAL_PROTECT_ENABLE != 0
    }

    /// New bitmaps start all set, and enabling logging write-protects nothing
    /// (`kvm_dirty_log_manual_protect_and_init_set()`).
    pub(crate) const fn initially_set(self) -> bool {
        self.0 & INITIALLY_SET != 0
    }
}

/// A dirty-log request KVM refuses with `EINVAL`: a bad slot number, or a bad range for
/// `KVM_CLEAR_DIRTY_LOG`. (A slot that does not exist or does not log is `ENOENT`, which
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

/// `KVM_CLEAR_DIRTY_LOG`'s first check, made before the slot is looked up:
/// `first_page` must be a multiple of 64.
pub(crate) const fn check_clear_start(first_page: u64) -> Result<(), Invalid> {
    if first_page % WORD_BITS != 0 {
        return Err(Invalid);
    }
    Ok(())
}

/// The words of a slot's bitmap a `KVM_CLEAR_DIRTY_LOG` covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClearRange {
    /// Index of the first word (`first_page / 64`).
    pub(crate) first_word: usize,
    /// Words userspace's bitmap holds: `DIV_ROUND_UP(num_pages, 64)`.
    pub(crate) words: usize,
}

impl ClearRange {
    /// Bytes read from userspace's bitmap (`ALIGN(num_pages, 64) / 8`).
    pub(crate) const fn user_bytes(&self) -> usize {
        self.words * 8
    }
}

/// `KVM_CLEAR_DIRTY_LOG`'s range rules for a slot of `npages` pages, after
/// [`check_clear_start`]: the range lies in the slot, and a range that stops short of
/// the slot's end is a multiple of 64 pages.
pub(crate) const fn clear_range(
    first_page: u64,
    num_pages: u32,
    npages: u64,
) -> Result<ClearRange, Invalid> {
    let num = num_pages as u64;
    if first_page > npages
        || num > npages - first_page
        || (num < npages - first_page && num % WORD_BITS != 0)
    {
        return Err(Invalid);
    }
    Ok(ClearRange {
        first_word: (first_page / WORD_BITS) as usize,
        words: num.div_ceil(WORD_BITS) as usize,
    })
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

    /// Marks every page of the slot, and nothing past it (`KVM_DIRTY_LOG_INITIALLY_SET`).
    pub(crate) fn set_all(&self) {
        for (i, w) in self.words.iter().enumerate() {
            let left = self.npages - i as u64 * WORD_BITS;
            w.store(
                if left >= WORD_BITS {
                    u64::MAX
                } else {
                    (1 << left) - 1
                },
                Relaxed,
            );
        }
    }

    /// `KVM_GET_DIRTY_LOG` with manual protection: the bitmap as it is, into `out`
    /// (`8 * words()` bytes, little-endian words).
    pub(crate) fn copy_to(&self, out: &mut [u8]) {
        for (w, chunk) in self.words.iter().zip(out.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
    }

    /// `KVM_GET_DIRTY_LOG` without manual protection: moves the bitmap into `out` (as
    /// [`Self::copy_to`]), clearing it, and calls `protect(first, end)` for the pages each
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

    /// `KVM_CLEAR_DIRTY_LOG`: clears the bits of `range` that userspace's bitmap `user`
    /// (`range.user_bytes()` bytes) sets, and calls `protect(first, end)` for the pages
    /// each word's bits that were really cleared span. Bits past the slot, or not set,
    /// protect nothing. Returns whether any bit was cleared.
    pub(crate) fn clear(
        &self,
        range: ClearRange,
        user: &[u8],
        mut protect: impl FnMut(u64, u64),
    ) -> bool {
        let mut any = false;
        let words = self.words.get(range.first_word..).unwrap_or(&[]);
        for (i, (w, chunk)) in words
            .iter()
            .zip(user.chunks_exact(8))
            .take(range.words)
            .enumerate()
        {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            let mask = u64::from_le_bytes(bytes);
            if mask == 0 {
                continue;
            }
            let cleared = mask & w.fetch_and(!mask, Relaxed);
            if cleared != 0 {
                any = true;
                let (first, end) = span(range.first_word + i, cleared);
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

    fn words(b: &Bitmap<'_>) -> Vec<u64> {
        let mut out = std::vec![0u8; b.words() * 8];
        b.copy_to(&mut out);
        out.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
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
    fn manual_protect_options() {
        assert_eq!(Mode::from_cap(0, 0), Some(Mode(0)));
        assert_eq!(Mode::from_cap(0, 1), Some(Mode(1)));
        assert_eq!(Mode::from_cap(0, 3), Some(Mode(3)));
        // INITIALLY_SET alone, unknown bits, flags: EINVAL.
        assert_eq!(Mode::from_cap(0, 2), None);
        assert_eq!(Mode::from_cap(0, 4), None);
        assert_eq!(Mode::from_cap(0, 5), None);
        assert_eq!(Mode::from_cap(0, u64::MAX), None);
        assert_eq!(Mode::from_cap(1, 1), None);
        let m = Mode::from_cap(0, 3).unwrap();
        assert!(m.manual() && m.initially_set());
        let m = Mode::from_cap(0, 1).unwrap();
        assert!(m.manual() && !m.initially_set());
        assert!(!Mode::default().manual() && !Mode::default().initially_set());
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
    fn clear_rules() {
        assert_eq!(check_clear_start(0), Ok(()));
        assert_eq!(check_clear_start(128), Ok(()));
        assert_eq!(check_clear_start(1), Err(Invalid));
        assert_eq!(check_clear_start(63), Err(Invalid));
        // A 200-page slot: words 0..4, the last one partial.
        let r = |f, n| clear_range(f, n, 200);
        assert_eq!(
            r(0, 200),
            Ok(ClearRange {
                first_word: 0,
                words: 4
            })
        );
        assert_eq!(r(0, 200).unwrap().user_bytes(), 32);
        assert_eq!(
            r(64, 64),
            Ok(ClearRange {
                first_word: 1,
                words: 1
            })
        );
        // Up to the end, unaligned length: fine; short of it: only multiples of 64.
        assert_eq!(
            r(128, 72),
            Ok(ClearRange {
                first_word: 2,
                words: 2
            })
        );
        assert_eq!(r(0, 100), Err(Invalid));
        assert_eq!(r(64, 1), Err(Invalid));
        // Past the end.
        assert_eq!(r(0, 201), Err(Invalid));
        assert_eq!(r(192, 9), Err(Invalid));
        assert_eq!(r(256, 0), Err(Invalid));
        assert_eq!(r(192, u32::MAX), Err(Invalid));
        // Nothing at the very end, or nothing at all: accepted, no words.
        assert_eq!(
            r(200, 0),
            Ok(ClearRange {
                first_word: 3,
                words: 0
            })
        );
        assert_eq!(
            r(0, 0),
            Ok(ClearRange {
                first_word: 0,
                words: 0
            })
        );
        // Huge first_page does not overflow.
        assert_eq!(clear_range(!63, 64, 200), Err(Invalid));
    }

    #[test]
    fn mark_and_set_all() {
        let s = storage(70);
        let b = Bitmap::new(&s, 70);
        assert_eq!(b.words(), 2);
        b.mark(0);
        b.mark(65);
        b.mark(69);
        b.mark(70); // past the slot
        b.mark(u64::MAX);
        assert_eq!(words(&b), [1, 1 << 1 | 1 << 5]);
        assert!(b.is_dirty(65) && !b.is_dirty(64) && !b.is_dirty(70));
        b.set_all();
        assert_eq!(words(&b), [u64::MAX, 0x3f]);
        let s = storage(128);
        let b = Bitmap::new(&s, 128);
        b.set_all();
        assert_eq!(words(&b), [u64::MAX, u64::MAX]);
        // Storage shorter than the slot is never overrun.
        let s = storage(64);
        let b = Bitmap::new(&s, 1000);
        b.mark(999);
        b.set_all();
        assert_eq!(words(&b), [u64::MAX]);
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
        assert_eq!(words(&b), [0, 0, 0, 0]);
        // Nothing dirty: zeroes out, nothing to protect.
        assert!(!b.take_into(&mut out, |_, _| panic!()));
        assert_eq!(out, [0; 32]);
    }

    #[test]
    fn clear_only_what_was_set() {
        let s = storage(200);
        let b = Bitmap::new(&s, 200);
        b.set_all();
        let mut spans = Vec::new();
        // Word 1 (pages 64..128): clear pages 64 and 100; word 2: pages 128..136 and,
        // past the slot's end, bits that were never set.
        let range = clear_range(64, 136, 200).unwrap();
        assert_eq!(range.words, 3);
        let user = le(&[1 | 1 << 36, 0xff, u64::MAX]);
        assert!(b.clear(range, &user, |f, e| spans.push((f, e))));
        assert_eq!(spans, [(64, 101), (128, 136), (192, 200)]);
        assert_eq!(words(&b), [u64::MAX, !(1 | 1 << 36), !0xff, 0]);
        // Again: nothing is set any more, so nothing is cleared or protected.
        assert!(!b.clear(range, &user, |_, _| panic!()));
        // An empty range touches nothing.
        let empty = clear_range(200, 0, 200).unwrap();
        assert!(!b.clear(empty, &[], |_, _| panic!()));
        assert_eq!(words(&b)[0], u64::MAX);
    }

    #[test]
    fn spans_of_single_and_full_words() {
        assert_eq!(span(0, 1), (0, 1));
        assert_eq!(span(0, 1 << 63), (63, 64));
        assert_eq!(span(2, u64::MAX), (128, 192));
        assert_eq!(span(1, 0b1010), (65, 68));
    }
}
