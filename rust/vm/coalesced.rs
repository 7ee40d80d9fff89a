// SPDX-License-Identifier: GPL-2.0

//! `KVM_{UN,}REGISTER_COALESCED_MMIO`: guest MMIO writes appended to the VM's ring page
//! instead of exiting to userspace.
//!
//! KVM counterpart: `virt/kvm/coalesced_mmio.c`. The rules are `logic::coalesced`'s;
//! this file owns the zone list and the ring. One mutex covers both, as KVM's
//! `ring_lock` serialises appends from concurrent vCPUs. A VM without MMIO zones pays
//! one relaxed load per MMIO write.

use super::Vm;
use crate::{
    logic::coalesced::{self, Zone},
    sys::coalesced_ring::CoalescedRing,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{mm::virt::VmaMixedMap, prelude::*, uaccess::UserSlice};

/// Reads a `struct kvm_coalesced_mmio_zone` (addr, size, then the `pad`/`pio` union) and
/// checks it (`EINVAL` for a `pio` other than 0 or 1).
pub(super) fn read_zone(arg: UserSlice) -> Result<Zone> {
    let mut reader = arg.reader();
    let addr: u64 = reader.read()?;
    let size: u32 = reader.read()?;
    let pio: u32 = reader.read()?;
    Zone::from_uapi(addr, size, pio).ok_or(EINVAL)
}

/// The zones and the ring they fill.
pub(crate) struct Coalesced {
    zones: KVec<Zone>,
    ring: CoalescedRing,
}

impl Coalesced {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            zones: KVec::new(),
            ring: CoalescedRing::new()?,
        })
    }
}

/// The in-kernel device that took a guest MMIO write.
pub(crate) enum InKernel {
    Ioeventfd,
    Coalesced,
}

impl Vm {
    /// `KVM_REGISTER_COALESCED_MMIO`.
    pub(super) fn register_coalesced(&self, zone: Zone) -> Result<isize> {
        let mut c = self.coalesced.lock();
        if !coalesced::has_room(c.zones.iter().filter(|z| z.pio == zone.pio).count()) {
            return Err(ENOSPC);
        }
        c.zones.push(zone, GFP_KERNEL_ACCOUNT)?;
        if !zone.pio {
            self.has_coalesced.store(true, Relaxed);
        }
        Ok(0)
    }

    /// `KVM_UNREGISTER_COALESCED_MMIO`: removes every zone containing `arg`'s range;
    /// succeeds even if none does, as KVM.
    pub(super) fn unregister_coalesced(&self, arg: Zone) -> Result<isize> {
        let mut c = self.coalesced.lock();
        c.zones.retain(|z| !z.removed_by(&arg));
        self.has_coalesced
            .store(c.zones.iter().any(|z| !z.pio), Relaxed);
        Ok(0)
    }

    /// Maps the ring page at `addr` of a vCPU mapping.
    pub(crate) fn map_coalesced_ring(&self, vma: &VmaMixedMap, addr: usize) -> Result {
        vma.vm_insert_page(addr, self.coalesced.lock().ring.page())
    }

    /// Appends the write to the ring if an MMIO zone in the bus position `before`
    /// (ahead of an ioeventfd or not) contains it and the ring has room.
    fn coalesce(&self, addr: u64, len: u32, data: &[u8; 8], before: bool) -> bool {
        let mut c = self.coalesced.lock();
        let Coalesced { zones, ring } = &mut *c;
        zones
            .iter()
            .any(|z| !z.pio && z.contains(addr, len) && z.before_ioeventfd(addr) == before)
            && ring.append(addr, len, data, false)
    }

    /// A guest MMIO write of `len` bytes at `addr` (bus bytes `data`) offered to the
    /// in-kernel MMIO devices in KVM's bus order (`Zone::before_ioeventfd`): returns the
    /// one that took it, or `None` if the write goes to userspace.
    pub(crate) fn mmio_write_in_kernel(
        &self,
        addr: u64,
        len: u32,
        data: &[u8; 8],
    ) -> Option<InKernel> {
        let zones = self.has_coalesced.load(Relaxed);
        if zones && self.coalesce(addr, len, data, true) {
            return Some(InKernel::Coalesced);
        }
        if self.ioeventfd_write(addr, len, data) {
            return Some(InKernel::Ioeventfd);
        }
        if zones && self.coalesce(addr, len, data, false) {
            return Some(InKernel::Coalesced);
        }
        None
    }
}
