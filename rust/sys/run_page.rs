// SPDX-License-Identifier: GPL-2.0

//! The `struct kvm_run` page shared with the VMM through `mmap` of the vCPU fd.
//!
//! Userspace may write the page at any time, so the kernel reads each field once with a
//! volatile access and never trusts a value across two reads.
//!
//! The page is a kernel-crate `Page`; its linear-map address comes from `page_address`,
//! which the crate (7.3) does not expose (it maps pages only for the length of a
//! call, through its private `with_page_mapped`), while this page stays shared for
//! the vCPU's lifetime.

use super::bindings;
use core::ptr::{addr_of, addr_of_mut};
use kernel::{page::Page, prelude::*};

/// Exit reasons rkvm reports (`KVM_EXIT_*`).
pub(crate) use bindings::{
    KVM_EXIT_HYPERCALL, KVM_EXIT_INTR, KVM_EXIT_MMIO, KVM_EXIT_SYSTEM_EVENT,
};

/// One zeroed page holding a `struct kvm_run`.
///
/// # Invariants
///
/// `run` is the kernel address of `page`, which lives as long as `self`.
pub(crate) struct RunPage {
    page: Page,
    run: *mut bindings::kvm_run,
}

// SAFETY: the page is owned; concurrent access is limited to volatile field accesses.
unsafe impl Send for RunPage {}
// SAFETY: as above; every accessor is a single volatile access.
unsafe impl Sync for RunPage {}

const _: () = assert!(core::mem::size_of::<bindings::kvm_run>() <= kernel::page::PAGE_SIZE);

macro_rules! field {
    ($self:ident . $($path:tt)+) => {
        // Callers are in `unsafe` blocks: `run` points at the live page by the type
        // invariant, and the field lies within it.
        addr_of_mut!((*$self.run).$($path)+)
    };
}

impl RunPage {
    /// Allocates the page (charged to the caller's memory cgroup).
    pub(crate) fn new() -> Result<Self> {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        // SAFETY: `page` is a valid, owned page.
        let run = unsafe { bindings::rkvm_page_address(page.as_ptr().cast()) }.cast();
        // INVARIANT: `run` is the linear-map address of `page`.
        Ok(Self { page, run })
    }

    /// The page, for the vCPU mapping.
    pub(crate) fn page(&self) -> &Page {
        &self.page
    }

    /// `immediate_exit`, as userspace last wrote it.
    pub(crate) fn immediate_exit(&self) -> bool {
        // SAFETY: a valid, aligned field of the live page.
        unsafe { addr_of!((*self.run).immediate_exit__unsafe).read_volatile() != 0 }
    }

    /// Sets `exit_reason`.
    pub(crate) fn set_exit_reason(&self, reason: u32) {
        // SAFETY: a valid, aligned field of the live page.
        unsafe { field!(self.exit_reason).write_volatile(reason) };
    }

    /// Fills `mmio` for an exit to userspace.
    pub(crate) fn set_mmio(&self, phys_addr: u64, data: [u8; 8], len: u32, is_write: bool) {
        // SAFETY: valid, aligned fields of the live page.
        unsafe {
            field!(self.__bindgen_anon_1.mmio.phys_addr).write_volatile(phys_addr);
            field!(self.__bindgen_anon_1.mmio.data).write_volatile(data);
            field!(self.__bindgen_anon_1.mmio.len).write_volatile(len);
            field!(self.__bindgen_anon_1.mmio.is_write).write_volatile(u8::from(is_write));
        }
        self.set_exit_reason(KVM_EXIT_MMIO);
    }

    /// The data userspace left in `mmio.data` to complete a read.
    pub(crate) fn mmio_data(&self) -> [u8; 8] {
        // SAFETY: a valid, aligned field of the live page.
        unsafe { field!(self.__bindgen_anon_1.mmio.data).read_volatile() }
    }

    /// Fills `fail_entry` (`KVM_EXIT_FAIL_ENTRY`): the vCPU could not enter the guest on
    /// CPU `cpu`, for the `KVM_EXIT_FAIL_ENTRY_*` bits in `reason`.
    pub(crate) fn set_fail_entry(&self, reason: u64, cpu: u32) {
        // SAFETY: valid, aligned fields of the live page.
        unsafe {
            field!(
                self.__bindgen_anon_1
                    .fail_entry
                    .hardware_entry_failure_reason
            )
            .write_volatile(reason);
            field!(self.__bindgen_anon_1.fail_entry.cpu).write_volatile(cpu);
        }
        self.set_exit_reason(bindings::KVM_EXIT_FAIL_ENTRY);
    }

    /// Fills `system_event` (`KVM_EXIT_SYSTEM_EVENT`) with no data, as KVM reports a
    /// wake-up from suspend.
    pub(crate) fn set_system_event_no_data(&self, kind: u32) {
        // SAFETY: valid, aligned fields of the live page.
        unsafe {
            field!(self.__bindgen_anon_1.system_event.type_).write_volatile(kind);
            field!(self.__bindgen_anon_1.system_event.ndata).write_volatile(0);
            field!(self.__bindgen_anon_1.system_event.__bindgen_anon_1.data[0]).write_volatile(0);
        }
        self.set_exit_reason(KVM_EXIT_SYSTEM_EVENT);
    }

    /// Fills `hypercall` (`KVM_EXIT_HYPERCALL`): an SMCCC call the VM's filter forwards,
    /// function id `nr`, `KVM_HYPERCALL_EXIT_*` `flags`. The arguments stay in the GPRs,
    /// as KVM leaves them (`kvm_prepare_hypercall_exit`).
    pub(crate) fn set_hypercall(&self, nr: u64, flags: u64) {
        // SAFETY: valid, aligned fields of the live page.
        unsafe {
            field!(self.__bindgen_anon_1.hypercall.nr).write_volatile(nr);
            field!(self.__bindgen_anon_1.hypercall.args).write_volatile([0; 6]);
            field!(self.__bindgen_anon_1.hypercall.ret).write_volatile(0);
            field!(self.__bindgen_anon_1.hypercall.__bindgen_anon_1.flags).write_volatile(flags);
        }
        self.set_exit_reason(KVM_EXIT_HYPERCALL);
    }

    /// Fills `system_event` (`KVM_EXIT_SYSTEM_EVENT`) with one data word, as KVM does.
    pub(crate) fn set_system_event(&self, kind: u32, flags: u64) {
        // SAFETY: valid, aligned fields of the live page.
        unsafe {
            field!(self.__bindgen_anon_1.system_event.type_).write_volatile(kind);
            field!(self.__bindgen_anon_1.system_event.ndata).write_volatile(1);
            field!(self.__bindgen_anon_1.system_event.__bindgen_anon_1.data[0])
                .write_volatile(flags);
        }
        self.set_exit_reason(KVM_EXIT_SYSTEM_EVENT);
    }
}
