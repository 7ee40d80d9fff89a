// SPDX-License-Identifier: GPL-2.0

//! Misc devices on a fixed minor: whether one is taken, and registering one (the kernel
//! crate's `MiscDeviceOptions` has no minor field and always asks for a dynamic one).

use kernel::{
    bindings as kbindings,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// The minor number of `/dev/kvm`.
pub(crate) const KVM_MINOR: i32 = super::bindings::KVM_MINOR as i32;

/// Reports whether another driver registered misc minor `minor`, by briefly registering a
/// placeholder device on it. `misc_register` fails with `EBUSY` when the minor is taken.
pub(crate) fn minor_in_use(minor: i32, name: &'static CStr) -> Result<bool> {
    let mut probe = kbindings::miscdevice {
        minor,
        name: name.as_char_ptr(),
        fops: &PROBE_FOPS,
        ..Default::default()
    };
    // SAFETY: `probe` is a fully initialised `struct miscdevice` that stays at this address
    // until `misc_deregister` below removes it; its fops open nothing (NULL `open`), so no
    // file can outlive the registration.
    let ret = unsafe { kbindings::misc_register(&mut probe) };
    if ret == -(kbindings::EBUSY as i32) {
        return Ok(true);
    }
    kernel::error::to_result(ret)?;
    // SAFETY: `probe` was registered just above.
    unsafe { kbindings::misc_deregister(&mut probe) };
    Ok(false)
}

/// Operations of the placeholder: an `open` through the short-lived node gets `ENODEV`.
/// A `const`, promoted to a static where it is borrowed (as `miscdevice.rs` does).
const PROBE_FOPS: kbindings::file_operations = kbindings::file_operations {
    open: Some(probe_open),
    // SAFETY: all-zero is a valid `file_operations` (every hook absent).
    ..unsafe { core::mem::zeroed() }
};

extern "C" fn probe_open(_inode: *mut kbindings::inode, _file: *mut kbindings::file) -> i32 {
    -(kbindings::ENODEV as i32)
}

/// Registers `T`'s misc device as `name` on the fixed minor `minor`: what
/// `MiscDeviceRegistration::register` does, with the minor it cannot take. The result is
/// an ordinary `MiscDeviceRegistration<T>` (same file operations, deregistered on drop).
/// Fails with `EBUSY` when another driver has the minor.
pub(crate) fn register_fixed<T: MiscDevice>(
    name: &'static CStr,
    minor: i32,
) -> impl PinInit<MiscDeviceRegistration<T>, Error> {
    // The slot of a registration is exactly one `struct miscdevice` (the type is
    // `#[repr(transparent)]` over `Opaque<miscdevice>` and a `PhantomData`).
    const {
        assert!(size_of::<MiscDeviceRegistration<T>>() == size_of::<kbindings::miscdevice>());
        assert!(align_of::<MiscDeviceRegistration<T>>() == align_of::<kbindings::miscdevice>());
    }
    let mut raw = MiscDeviceOptions { name }.into_raw::<T>();
    raw.minor = minor;
    let init = move |slot: *mut MiscDeviceRegistration<T>| {
        let misc = slot.cast::<kbindings::miscdevice>();
        // SAFETY: `slot` is valid for writes of the registration, whose memory is one
        // `struct miscdevice` (asserted above).
        unsafe { misc.write(raw) };
        // SAFETY: `misc` is a fully initialised `struct miscdevice` in pinned memory; the
        // registration's drop deregisters it before that memory goes.
        kernel::error::to_result(unsafe { kbindings::misc_register(misc) })
    };
    // SAFETY: on `Ok` the closure has written the whole slot and registered it, which is
    // the state `MiscDeviceRegistration::register` leaves (the options' `into_raw`, only the
    // minor differs) and the invariant its drop relies on; on `Err` nothing is registered
    // and the slot holds plain data that needs no cleanup. The slot is not moved.
    unsafe { pin_init::pin_init_from_closure(init) }
}
