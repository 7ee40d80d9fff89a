// SPDX-License-Identifier: GPL-2.0

//! Loading and unloading rkvm.ko from a test, through the module syscalls.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;

/// Where the test initramfs puts the module.
pub const MODULE_PATH: &str = "/lib/modules/rkvm.ko";
/// The module's name, as `delete_module` wants it.
pub const MODULE_NAME: &str = "rkvm";

/// `finit_module` of rkvm.ko; `Err(errno)` on failure.
pub fn load() -> Result<(), i32> {
    load_with("")
}

/// `finit_module` of rkvm.ko with module parameters `params` (e.g. `"devkvm=0"`).
pub fn load_with(params: &str) -> Result<(), i32> {
    let file = File::open(MODULE_PATH).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    let params = CString::new(params).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid fd and a NUL-terminated parameter string.
    let ret =
        unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if ret == 0 {
        Ok(())
    } else {
        Err(crate::errno())
    }
}

/// `delete_module("rkvm", O_NONBLOCK)`; `Err(errno)` on failure.
pub fn unload() -> Result<(), i32> {
    let name = CString::new(MODULE_NAME).expect("static name has no NUL");
    // SAFETY: a NUL-terminated module name.
    let ret = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
    if ret == 0 {
        Ok(())
    } else {
        Err(crate::errno())
    }
}

/// Whether rkvm is currently loaded.
pub fn loaded() -> bool {
    std::path::Path::new("/sys/module/rkvm").exists()
}
