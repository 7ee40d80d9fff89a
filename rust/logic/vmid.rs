// SPDX-License-Identifier: GPL-2.0

//! VMID allocation: each live VM owns one stage-2 VMID for as long as it exists.
//!
//! KVM counterpart: `arch/arm64/kvm/vmid.c`. KVM recycles VMIDs by generation so that any
//! number of VMs can exist; rkvm gives each VM a VMID for its lifetime instead, which is
//! simpler and enough for the 65535 (16-bit VMIDs) or 255 (8-bit) VMs a host can run at
//! once. VMID 0 is never handed out. When a VM dies its VMID is invalidated in the TLBs
//! before it is freed, so a later owner never sees stale translations.

/// Words of the bitmap: one bit per 16-bit VMID.
const WORDS: usize = (1 << 16) / 64;

/// The set of VMIDs in use.
pub(crate) struct VmidSet {
    used: [u64; WORDS],
    /// One past the largest VMID the hardware supports.
    limit: u32,
    /// Where the next search starts, so VMIDs are reused as late as possible.
    next: u32,
}

impl VmidSet {
    /// An empty set for hardware with `bits`-bit VMIDs (8 or 16).
    pub(crate) const fn new(bits: u32) -> Self {
        let bits = if bits >= 16 { 16 } else { 8 };
        Self {
            used: [0; WORDS],
            limit: 1 << bits,
            next: 1,
        }
    }

    /// Sets the hardware's VMID width (8 or 16 bits); call before the first `alloc`.
    pub(crate) fn set_bits(&mut self, bits: u32) {
        self.limit = if bits >= 16 { 1 << 16 } else { 1 << 8 };
    }

    /// Marks a free VMID used and returns it; `None` when all are taken.
    pub(crate) fn alloc(&mut self) -> Option<u16> {
        for step in 0..self.limit {
            let vmid = (self.next + step) % self.limit;
            if vmid == 0 {
                continue;
            }
            let (word, bit) = ((vmid / 64) as usize, vmid % 64);
            if self.used[word] & (1 << bit) == 0 {
                self.used[word] |= 1 << bit;
                self.next = vmid + 1;
                return Some(vmid as u16);
            }
        }
        None
    }

    /// Returns `vmid` to the set.
    pub(crate) fn free(&mut self, vmid: u16) {
        let vmid = u32::from(vmid);
        if vmid < self.limit {
            self.used[(vmid / 64) as usize] &= !(1 << (vmid % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_vmids_run_out_and_recycle() {
        let mut set = VmidSet::new(8);
        let mut got = [false; 256];
        for _ in 0..255 {
            let v = set.alloc().expect("a free VMID");
            assert!(v != 0 && !got[usize::from(v)]);
            got[usize::from(v)] = true;
        }
        assert_eq!(set.alloc(), None);
        set.free(17);
        assert_eq!(set.alloc(), Some(17));
    }

    #[test]
    fn reuse_is_deferred() {
        let mut set = VmidSet::new(16);
        let a = set.alloc().expect("free");
        set.free(a);
        assert_ne!(set.alloc(), Some(a));
    }

    #[test]
    fn freeing_out_of_range_is_harmless() {
        let mut set = VmidSet::new(8);
        set.free(300);
        assert_eq!(set.alloc(), Some(1));
    }
}
