// SPDX-License-Identifier: GPL-2.0

//! `KVM_IOEVENTFD`: guest MMIO writes that signal an eventfd instead of exiting.
//!
//! KVM counterpart: `virt/kvm/eventfd.c` (`kvm_ioeventfd` and the io-bus device it
//! registers). The rules are `logic::ioeventfd`'s; this file owns the eventfd references.
//! The list is short (a few doorbells per virtio device) and searched linearly under
//! `Vm::ioeventfds`; a VM without registrations pays one relaxed load per MMIO write.

use super::Vm;
use crate::{
    logic::ioeventfd::{Args, Bus, Key},
    sys::{self, eventfd::EventFd},
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;

/// One registration.
pub(crate) struct Registration {
    key: Key,
    eventfd: EventFd,
}

impl Vm {
    /// `KVM_IOEVENTFD`: assigns or deassigns a registration.
    pub(super) fn ioeventfd(&self, a: &sys::kvm_ioeventfd) -> Result<isize> {
        let args = Args {
            datamatch: a.datamatch,
            addr: a.addr,
            len: a.len,
            flags: a.flags,
        };
        if args.deassign() {
            // As KVM: the fd is looked up first, then the registration (no other checks).
            let eventfd = EventFd::from_fd(a.fd)?;
            let key = args.key();
            let mut list = self.ioeventfds.lock();
            let pos = list
                .iter()
                .position(|r| r.key == key && r.eventfd.as_ptr() == eventfd.as_ptr())
                .ok_or(ENOENT)?;
            // In bounds (just found); dropping the registration puts its eventfd.
            drop(list.remove(pos));
            self.has_ioeventfds
                .store(list.iter().any(|r| r.key.bus == Bus::Mmio), Relaxed);
            return Ok(0);
        }
        let key = args.assign_key().ok_or(EINVAL)?;
        let eventfd = EventFd::from_fd(a.fd)?;
        let mut list = self.ioeventfds.lock();
        if list.iter().any(|r| r.key.collides(&key)) {
            return Err(EEXIST);
        }
        list.push(Registration { key, eventfd }, GFP_KERNEL_ACCOUNT)?;
        if key.bus == Bus::Mmio {
            self.has_ioeventfds.store(true, Relaxed);
        }
        Ok(0)
    }

    /// A guest MMIO write of `len` bytes at `addr` (bus bytes `data`): signals the
    /// matching registration's eventfd and returns `true`, or returns `false` if none
    /// matches (the write goes to userspace).
    pub(super) fn ioeventfd_write(&self, addr: u64, len: u32, data: &[u8; 8]) -> bool {
        if !self.has_ioeventfds.load(Relaxed) {
            return false;
        }
        let list = self.ioeventfds.lock();
        match list
            .iter()
            .find(|r| r.key.matches_write(Bus::Mmio, addr, len, data))
        {
            Some(r) => {
                r.eventfd.signal();
                true
            }
            None => false,
        }
    }
}
