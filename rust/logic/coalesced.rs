// SPDX-License-Identifier: GPL-2.0

//! Coalesced MMIO: guest writes to registered zones are appended to a ring page shared
//! with userspace instead of exiting, until the ring is full.
//!
//! KVM counterpart: `virt/kvm/coalesced_mmio.c`, the `KVM_MMIO_BUS` dispatch in
//! `virt/kvm/kvm_main.c` (`__kvm_io_bus_write`) and `kvm_vcpu_fault()` (the ring is
//! page `KVM_COALESCED_MMIO_PAGE_OFFSET` of every vCPU mapping). The ring is one page
//! per VM: `first` (userspace's read index) and `last` (the next entry rkvm fills), then
//! `struct kvm_coalesced_mmio` entries. Userspace owns both indices; they are read once
//! per append and a bad `last` is treated as a full ring, as KVM does.

/// `KVM_COALESCED_MMIO_PAGE_OFFSET` on arm64: the ring's page in the vCPU mapping, and
/// what `KVM_CHECK_EXTENSION(KVM_CAP_COALESCED_MMIO)` returns.
pub(crate) const PAGE_OFFSET: u64 = 1;
/// Pages of a vCPU mapping (`KVM_GET_VCPU_MMAP_SIZE`): `kvm_run`, then the ring.
pub(crate) const VCPU_MMAP_PAGES: usize = 2;
/// `sizeof(struct kvm_coalesced_mmio_ring)`: `first` and `last`.
pub(crate) const RING_HEADER: usize = 8;
/// `sizeof(struct kvm_coalesced_mmio)`: address, length, pio, 8 data bytes.
pub(crate) const ENTRY_SIZE: usize = 24;
/// `NR_IOBUS_DEVS`: devices one bus holds, ioeventfds not counted.
pub(crate) const MAX_ZONES_PER_BUS: usize = 1000;

/// `KVM_COALESCED_MMIO_MAX` for a page of `page_size` bytes.
pub(crate) const fn ring_entries(page_size: usize) -> u32 {
    ((page_size - RING_HEADER) / ENTRY_SIZE) as u32
}

/// What a page of the vCPU mapping shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VcpuPage {
    Run,
    Ring,
}

/// The pages a vCPU mapping of `pages` pages from page offset `pgoff` shows, as (page
/// index in the mapping, page); the mapping's other pages stay empty (`SIGBUS` on
/// access, as KVM's fault handler answers past the known pages).
pub(crate) fn vcpu_mapping(pgoff: u64, pages: u64) -> impl Iterator<Item = (u64, VcpuPage)> {
    [(0, VcpuPage::Run), (PAGE_OFFSET, VcpuPage::Ring)]
        .into_iter()
        .filter_map(move |(at, page)| {
            at.checked_sub(pgoff)
                .filter(|&i| i < pages)
                .map(|i| (i, page))
        })
}

/// A registered zone (`struct kvm_coalesced_mmio_zone`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Zone {
    pub(crate) addr: u64,
    pub(crate) size: u32,
    /// On the port-I/O bus (x86's; nothing writes it on arm64), not MMIO.
    pub(crate) pio: bool,
}

impl Zone {
    /// The zone named by an ioctl, or `None` (`EINVAL`): `pio` must be 0 or 1. KVM
    /// checks nothing else; any address and size (even 0) registers.
    pub(crate) const fn from_uapi(addr: u64, size: u32, pio: u32) -> Option<Self> {
        match pio {
            0 | 1 => Some(Self {
                addr,
                size,
                pio: pio == 1,
            }),
            _ => None,
        }
    }

    /// Whether `[addr, addr + len)` lies wholly inside the zone (KVM's
    /// `coalesced_mmio_in_range`, whose `len` is an `int`: sizes of 2 GiB and more never
    /// fit, and neither does a range that wraps).
    pub(crate) const fn contains(&self, addr: u64, len: u32) -> bool {
        if len > i32::MAX as u32 {
            return false;
        }
        let Some(end) = addr.checked_add(len as u64) else {
            return false;
        };
        addr >= self.addr && end <= self.addr.wrapping_add(self.size as u64)
    }

    /// Whether `KVM_UNREGISTER_COALESCED_MMIO` with `arg` removes this zone: same bus,
    /// and `arg`'s range lies inside this zone (so one call may remove several).
    pub(crate) const fn removed_by(&self, arg: &Zone) -> bool {
        self.pio == arg.pio && self.contains(arg.addr, arg.size)
    }

    /// Whether the zone comes before an ioeventfd for a write at `addr` on KVM's MMIO bus.
    ///
    /// The bus tries the devices that contain an access in (start, end) order until one
    /// takes it. An ioeventfd that can take a write sits at the write's own address, so a
    /// zone starting below the write is tried first; at the same start the ioeventfd is.
    /// A zone whose ring is full passes the write on, as on KVM.
    pub(crate) const fn before_ioeventfd(&self, addr: u64) -> bool {
        self.addr < addr
    }
}

/// Whether one more zone fits on its bus, given the zones already there.
pub(crate) const fn has_room(zones_on_bus: usize) -> bool {
    zones_on_bus < MAX_ZONES_PER_BUS
}

/// Where the next entry goes, and the new `last`: `None` when the ring is full (one
/// entry always stays free so `first == last` means empty) or `last` is out of range.
pub(crate) const fn ring_insert(first: u32, last: u32, entries: u32) -> Option<(u32, u32)> {
    if last >= entries {
        return None;
    }
    let next = (last + 1) % entries;
    if next == first {
        return None;
    }
    Some((last, next))
}

/// Byte offset of entry `slot` in the ring page.
pub(crate) const fn entry_offset(slot: u32) -> usize {
    RING_HEADER + slot as usize * ENTRY_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_geometry() {
        assert_eq!(ring_entries(4096), 170);
        assert_eq!(ring_entries(16384), 682);
        assert_eq!(entry_offset(0), 8);
        assert!(entry_offset(169) + ENTRY_SIZE <= 4096);
    }

    #[test]
    fn ring_fills_to_one_short_of_full() {
        let n = ring_entries(4096);
        for start in [0, 1, n - 1] {
            let (first, mut last) = (start, start);
            let mut count = 0;
            while let Some((slot, next)) = ring_insert(first, last, n) {
                assert_eq!(slot, last);
                last = next;
                count += 1;
            }
            assert_eq!(count, n - 1, "start {start}");
            assert_eq!((last + 1) % n, first);
        }
        // Empty ring: first == last.
        assert_eq!(ring_insert(5, 5, n), Some((5, 6)));
        assert_eq!(ring_insert(0, n - 1, n), None);
        assert_eq!(ring_insert(1, n - 1, n), Some((n - 1, 0)));
        // A bad index from userspace is a full ring.
        assert_eq!(ring_insert(0, n, n), None);
        assert_eq!(ring_insert(0, u32::MAX, n), None);
        // A bad `first` just never matches: writes go on until `last` catches up.
        assert_eq!(ring_insert(u32::MAX, 0, n), Some((0, 1)));
    }

    #[test]
    fn zone_validation() {
        assert_eq!(
            Zone::from_uapi(0x1000, 8, 0),
            Some(Zone {
                addr: 0x1000,
                size: 8,
                pio: false
            })
        );
        assert_eq!(Zone::from_uapi(0x80, 4, 1).map(|z| z.pio), Some(true));
        assert_eq!(Zone::from_uapi(0x1000, 8, 2), None);
        assert_eq!(Zone::from_uapi(0, 0, 0).map(|z| z.size), Some(0));
    }

    #[test]
    fn containment_like_kvm() {
        let z = Zone {
            addr: 0x1000,
            size: 0x100,
            pio: false,
        };
        assert!(z.contains(0x1000, 8));
        assert!(z.contains(0x10f8, 8));
        assert!(!z.contains(0x10f9, 8));
        assert!(!z.contains(0xfff, 2));
        assert!(z.contains(0x1000, 0x100));
        assert!(!z.contains(u64::MAX, 2));
        let empty = Zone {
            addr: 0x1000,
            size: 0,
            pio: false,
        };
        assert!(!empty.contains(0x1000, 1));
        assert!(empty.contains(0x1000, 0));
        let huge = Zone {
            addr: 0,
            size: u32::MAX,
            pio: false,
        };
        assert!(!huge.contains(0, 0x8000_0000));
        assert!(huge.contains(0, 0x7fff_ffff));
    }

    #[test]
    fn unregister_removes_zones_containing_the_range() {
        let z = Zone {
            addr: 0x1000,
            size: 0x100,
            pio: false,
        };
        assert!(z.removed_by(&Zone {
            addr: 0x1000,
            size: 0x100,
            pio: false
        }));
        assert!(z.removed_by(&Zone {
            addr: 0x1010,
            size: 8,
            pio: false
        }));
        assert!(!z.removed_by(&Zone {
            addr: 0x1000,
            size: 0x101,
            pio: false
        }));
        assert!(!z.removed_by(&Zone {
            addr: 0x1000,
            size: 8,
            pio: true
        }));
        assert!(!z.removed_by(&Zone {
            addr: 0,
            size: 0x2000,
            pio: false
        }));
    }

    #[test]
    fn bus_order_against_ioeventfds() {
        let z = Zone {
            addr: 0x1000,
            size: 0x100,
            pio: false,
        };
        assert!(z.before_ioeventfd(0x1008));
        assert!(!z.before_ioeventfd(0x1000));
    }

    fn mapping(pgoff: u64, pages: u64) -> [Option<(u64, VcpuPage)>; 2] {
        let mut it = vcpu_mapping(pgoff, pages);
        [it.next(), it.next()]
    }

    #[test]
    fn mapping_pages() {
        use VcpuPage::*;
        assert_eq!(mapping(0, 1), [Some((0, Run)), None]);
        assert_eq!(mapping(0, 2), [Some((0, Run)), Some((1, Ring))]);
        assert_eq!(mapping(0, 1 << 40), [Some((0, Run)), Some((1, Ring))]);
        assert_eq!(mapping(1, 1), [Some((0, Ring)), None]);
        assert_eq!(mapping(1, 5), [Some((0, Ring)), None]);
        assert_eq!(mapping(2, 1), [None, None]);
        assert_eq!(mapping(u64::MAX, u64::MAX), [None, None]);
        assert!(has_room(999));
        assert!(!has_room(1000));
    }
}
