// SPDX-License-Identifier: GPL-2.0

//! The kernel `Error` for each error type of `logic/`.
//!
//! `logic/` decides which of KVM's errnos a request gets, naming them in its own error
//! types since it has no kernel dependency (and is tested on the build host). This is
//! the one place those names become the kernel's errors, as `From` impls, so the layers
//! above propagate them with `?`. Each mapping follows the type's documentation.

use crate::logic::{
    dirtylog, features, fwregs, irqroute, memslot::SlotError, pgtable::MapError, pvtime,
    smccc_filter::FilterError, vgic::attr::Errno,
};
use kernel::error::{code::*, Error};

/// The vGIC's and the ITS's device-attribute errors, one to one.
impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        match e {
            Errno::Inval => EINVAL,
            Errno::Exist => EEXIST,
            Errno::TooBig => E2BIG,
            Errno::Nxio => ENXIO,
            Errno::Noent => ENOENT,
            Errno::NoSpace => ENOSPC,
            Errno::Busy => EBUSY,
            Errno::Fault => EFAULT,
            Errno::NoMem => ENOMEM,
            Errno::NoDev => ENODEV,
        }
    }
}

/// `KVM_ARM_VCPU_INIT`'s feature refusals.
impl From<features::InitError> for Error {
    fn from(e: features::InitError) -> Self {
        match e {
            features::InitError::Unknown => ENOENT,
            features::InitError::Unsupported => EINVAL,
        }
    }
}

/// `KVM_SET_USER_MEMORY_REGION{,2}`'s refusals.
impl From<SlotError> for Error {
    fn from(e: SlotError) -> Self {
        match e {
            SlotError::Invalid => EINVAL,
            SlotError::Overlap => EEXIST,
            SlotError::BeyondIpa => EFAULT,
        }
    }
}

/// A stage-2 mapping that could not be installed: out of memory for a table, or a
/// fault the guest cannot have caused (`EFAULT`, as KVM's `kvm_handle_guest_abort`
/// reports an address it cannot map).
impl From<MapError> for Error {
    fn from(e: MapError) -> Self {
        match e {
            MapError::NoMemory => ENOMEM,
            MapError::OutOfRange | MapError::Exists(_) | MapError::Table => EFAULT,
        }
    }
}

/// A write of a firmware bitmap register.
impl From<fwregs::SetError> for Error {
    fn from(e: fwregs::SetError) -> Self {
        match e {
            fwregs::SetError::Invalid => EINVAL,
            fwregs::SetError::Busy => EBUSY,
        }
    }
}

/// `KVM_SET_DEVICE_ATTR(KVM_ARM_VCPU_PVTIME_IPA)`.
impl From<pvtime::SetError> for Error {
    fn from(e: pvtime::SetError) -> Self {
        match e {
            pvtime::SetError::Invalid => EINVAL,
            pvtime::SetError::AlreadySet => EEXIST,
        }
    }
}

/// A GSI routing table or an MSI KVM refuses.
impl From<irqroute::Invalid> for Error {
    fn from(_: irqroute::Invalid) -> Self {
        EINVAL
    }
}

/// `KVM_ARM_VM_SMCCC_FILTER`'s refusals of a range (`EBUSY` is the VM's, not the range's).
impl From<FilterError> for Error {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::Invalid => EINVAL,
            FilterError::Exists => EEXIST,
            FilterError::NoMemory => ENOMEM,
        }
    }
}

/// A dirty-log request KVM refuses with `EINVAL` (a slot without a log is `ENOENT`,
/// which `mmu.rs` decides).
impl From<dirtylog::Invalid> for Error {
    fn from(_: dirtylog::Invalid) -> Self {
        EINVAL
    }
}
