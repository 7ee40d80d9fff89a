// SPDX-License-Identifier: GPL-2.0

//! `KVM_IOEVENTFD`: which registrations are valid, which collide, and which guest writes
//! they match.
//!
//! KVM counterpart: `kvm_ioeventfd`, `kvm_assign_ioeventfd`, `ioeventfd_check_collision`
//! and `ioeventfd_in_range` in `virt/kvm/eventfd.c`. A guest MMIO write that matches a
//! registration signals its eventfd in the kernel and the guest continues, with no exit
//! to userspace. PIO (and s390's virtio-ccw) registrations are accepted and stored, as
//! on KVM, but nothing on arm64 writes to those buses.

/// `kvm_ioeventfd.flags` bits.
pub(crate) const FLAG_DATAMATCH: u32 = 1 << 0;
pub(crate) const FLAG_PIO: u32 = 1 << 1;
pub(crate) const FLAG_DEASSIGN: u32 = 1 << 2;
pub(crate) const FLAG_VIRTIO_CCW_NOTIFY: u32 = 1 << 3;
/// `KVM_IOEVENTFD_VALID_FLAG_MASK`: the flags above and `kvm_ioeventfd_flag_nr_fast_mmio`
/// (bit 4), which uapi numbers but KVM never reads from userspace: accepted and
/// ignored, as on KVM.
pub(crate) const VALID_FLAGS: u32 = (1 << 5) - 1;

/// The address space a registration listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bus {
    Mmio,
    Pio,
    VirtioCcw,
}

/// The request, as userspace passes it (`struct kvm_ioeventfd` without the fd).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Args {
    pub(crate) datamatch: u64,
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) flags: u32,
}

/// What a registration matches. Two registrations with equal keys and the same eventfd
/// are the same registration (what a deassign names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) bus: Bus,
    pub(crate) addr: u64,
    /// 0 (any access at `addr`), 1, 2, 4 or 8 bytes.
    pub(crate) len: u32,
    /// The value a write must carry; `None` matches any value.
    pub(crate) datamatch: Option<u64>,
}

impl Args {
    /// Whether this is a deassignment.
    pub(crate) const fn deassign(&self) -> bool {
        self.flags & FLAG_DEASSIGN != 0
    }

    fn bus(&self) -> Bus {
        if self.flags & FLAG_PIO != 0 {
            Bus::Pio
        } else if self.flags & FLAG_VIRTIO_CCW_NOTIFY != 0 {
            Bus::VirtioCcw
        } else {
            Bus::Mmio
        }
    }

    /// The key the arguments name. Used as is for a deassignment, which KVM does not
    /// validate further (an invalid one simply matches nothing: `ENOENT`).
    pub(crate) fn key(&self) -> Key {
        let datamatch = (self.flags & FLAG_DATAMATCH != 0).then_some(self.datamatch);
        Key {
            bus: self.bus(),
            addr: self.addr,
            len: self.len,
            datamatch,
        }
    }

    /// The key of an assignment, or `None` (`EINVAL`) for KVM's refusals, checked in
    /// KVM's order: length not 0/1/2/4/8, address range wrapping, unknown flags, a
    /// data match on a zero-length registration.
    pub(crate) fn assign_key(&self) -> Option<Key> {
        if !matches!(self.len, 0 | 1 | 2 | 4 | 8) {
            return None;
        }
        self.addr.checked_add(u64::from(self.len))?;
        if self.flags & !VALID_FLAGS != 0 {
            return None;
        }
        if self.len == 0 && self.flags & FLAG_DATAMATCH != 0 {
            return None;
        }
        Some(self.key())
    }
}

impl Key {
    /// Whether `self` and `other` cannot both be registered (`EEXIST`): same bus and
    /// address, and either has no length, or both have the same length and either
    /// matches any value or both match the same one.
    pub(crate) fn collides(&self, other: &Key) -> bool {
        self.bus == other.bus
            && self.addr == other.addr
            && (self.len == 0
                || other.len == 0
                || (self.len == other.len
                    && match (self.datamatch, other.datamatch) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    }))
    }

    /// Whether a guest write of `len` bytes at `addr` with bus bytes `data` hits this
    /// registration. The value is the bytes read as a little-endian number, as KVM
    /// compares them on a little-endian host.
    pub(crate) fn matches_write(&self, bus: Bus, addr: u64, len: u32, data: &[u8; 8]) -> bool {
        if bus != self.bus || addr != self.addr {
            return false;
        }
        if self.len == 0 {
            return true;
        }
        if len != self.len {
            return false;
        }
        let Some(want) = self.datamatch else {
            return true;
        };
        let mut bytes = [0u8; 8];
        let n = (len as usize).min(8);
        bytes[..n].copy_from_slice(&data[..n]);
        u64::from_le_bytes(bytes) == want
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: u64, len: u32, flags: u32, datamatch: u64) -> Args {
        Args {
            datamatch,
            addr,
            len,
            flags,
        }
    }

    #[test]
    fn assign_validation_in_kvm_order() {
        assert!(args(0x1000, 4, 0, 0).assign_key().is_some());
        for len in [0, 1, 2, 4, 8] {
            assert!(args(0x1000, len, 0, 0).assign_key().is_some(), "len {len}");
        }
        for len in [3, 5, 16, u32::MAX] {
            assert!(args(0x1000, len, 0, 0).assign_key().is_none(), "len {len}");
        }
        assert!(args(u64::MAX - 1, 4, 0, 0).assign_key().is_none());
        assert!(args(u64::MAX - 3, 4, 0, 0).assign_key().is_none());
        assert!(args(u64::MAX - 4, 4, 0, 0).assign_key().is_some());
        // Bit 4 (fast_mmio) passes KVM's mask and changes nothing; bit 5 is unknown.
        assert_eq!(
            args(0x1000, 4, 1 << 4, 0).assign_key(),
            args(0x1000, 4, 0, 0).assign_key()
        );
        assert!(args(0x1000, 4, 1 << 5, 0).assign_key().is_none());
        assert!(args(0x1000, 0, FLAG_DATAMATCH, 0).assign_key().is_none());
        assert!(args(0x1000, 4, FLAG_DATAMATCH | FLAG_PIO, 7)
            .assign_key()
            .is_some());
        assert_eq!(
            args(0x10, 2, FLAG_PIO, 9).assign_key().unwrap().bus,
            Bus::Pio
        );
        assert_eq!(
            args(0x10, 2, FLAG_VIRTIO_CCW_NOTIFY, 9).key().bus,
            Bus::VirtioCcw
        );
        // Without DATAMATCH the value is ignored (a wildcard).
        assert_eq!(args(0x10, 2, 0, 9).key().datamatch, None);
        assert!(args(0, 0, FLAG_DEASSIGN, 0).deassign());
    }

    #[test]
    fn collisions() {
        let k = |addr, len, dm: Option<u64>| Key {
            bus: Bus::Mmio,
            addr,
            len,
            datamatch: dm,
        };
        assert!(k(0x100, 4, None).collides(&k(0x100, 4, Some(1))));
        assert!(k(0x100, 4, Some(1)).collides(&k(0x100, 4, Some(1))));
        assert!(!k(0x100, 4, Some(1)).collides(&k(0x100, 4, Some(2))));
        assert!(!k(0x100, 4, None).collides(&k(0x100, 2, None)));
        assert!(k(0x100, 0, None).collides(&k(0x100, 8, Some(3))));
        assert!(!k(0x100, 4, None).collides(&k(0x104, 4, None)));
        let pio = Key {
            bus: Bus::Pio,
            ..k(0x100, 4, None)
        };
        assert!(!pio.collides(&k(0x100, 4, None)));
    }

    #[test]
    fn write_matching() {
        let data = |v: u64| v.to_le_bytes();
        let k = Key {
            bus: Bus::Mmio,
            addr: 0x2000,
            len: 4,
            datamatch: Some(0xdead_beef),
        };
        assert!(k.matches_write(Bus::Mmio, 0x2000, 4, &data(0xdead_beef)));
        // Only the access's bytes count.
        assert!(k.matches_write(Bus::Mmio, 0x2000, 4, &data(0xffff_ffff_dead_beef)));
        assert!(!k.matches_write(Bus::Mmio, 0x2000, 4, &data(0xdead_beee)));
        assert!(!k.matches_write(Bus::Mmio, 0x2000, 2, &data(0xbeef)));
        assert!(!k.matches_write(Bus::Mmio, 0x2001, 4, &data(0xdead_beef)));
        assert!(!k.matches_write(Bus::Pio, 0x2000, 4, &data(0xdead_beef)));
        let any = Key {
            datamatch: None,
            ..k
        };
        assert!(any.matches_write(Bus::Mmio, 0x2000, 4, &data(1)));
        assert!(!any.matches_write(Bus::Mmio, 0x2000, 8, &data(1)));
        let nolen = Key {
            len: 0,
            datamatch: None,
            ..k
        };
        for len in [1, 2, 4, 8] {
            assert!(nolen.matches_write(Bus::Mmio, 0x2000, len, &data(5)));
        }
        // A data match wider than the access never matches (KVM compares all 64 bits).
        let wide = Key {
            len: 1,
            datamatch: Some(0x100),
            ..k
        };
        assert!(!wide.matches_write(Bus::Mmio, 0x2000, 1, &data(0x100)));
    }
}
