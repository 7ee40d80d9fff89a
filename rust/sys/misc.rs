// SPDX-License-Identifier: GPL-2.0

//! Whether a misc-device minor number is taken.

use kernel::{bindings as kbindings, prelude::*};

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

unsafe extern "C" fn probe_open(_inode: *mut kbindings::inode, _file: *mut kbindings::file) -> i32 {
    -(kbindings::ENODEV as i32)
}
