// SPDX-License-Identifier: GPL-2.0

//! File descriptors backed by anonymous inodes, one per kernel object (VM, vCPU).
//!
//! KVM counterpart: `anon_inode_getfd()` in `kvm_vm_ioctl_create_vcpu()` and the
//! `kvm_vm_fops`/`kvm_vcpu_fops` tables. The file owns one `Arc` reference to the object,
//! dropped on the last `close`; the file operations name rkvm as owner, so the module
//! cannot be unloaded while any such file exists.

use super::bindings;
use core::marker::PhantomData;
use kernel::{
    bindings as kbindings,
    fs::file::flags::{O_CLOEXEC, O_RDWR},
    mm::virt::VmaNew,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
};

/// The operations of an object reachable through a file descriptor.
pub(crate) trait FdOps: Send + Sync + Sized + 'static {
    /// Whether `mmap` is implemented (otherwise `mmap` on the fd fails with `ENODEV`).
    const HAS_MMAP: bool = false;

    /// Handles an ioctl on the file.
    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize>;

    /// Sets up a new mapping of the file.
    fn mmap(_this: ArcBorrow<'_, Self>, _vma: &VmaNew) -> Result {
        Err(ENODEV)
    }
}

/// Creates an `O_RDWR | O_CLOEXEC` file named `name` holding `obj`, and returns its fd.
pub(crate) fn install<T: FdOps>(name: &'static CStr, obj: Arc<T>) -> Result<i32> {
    let private = obj.into_foreign();
    // SAFETY: `name` is NUL-terminated and static; the fops table is static; `private` is
    // an owned `Arc<T>` that the file's `release` gives back.
    let fd = unsafe {
        bindings::anon_inode_getfd(
            name.as_char_ptr(),
            VTable::<T>::FOPS.cast(),
            private,
            (O_RDWR | O_CLOEXEC) as i32,
        )
    };
    if fd < 0 {
        // SAFETY: no file was created, so `private` is still ours to reclaim.
        drop(unsafe { Arc::<T>::from_foreign(private) });
        return Err(Error::from_errno(fd));
    }
    Ok(fd)
}

struct VTable<T>(PhantomData<T>);

impl<T: FdOps> VTable<T> {
    const FOPS_VALUE: kbindings::file_operations = kbindings::file_operations {
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        release: Some(Self::release),
        unlocked_ioctl: Some(Self::ioctl),
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        llseek: Some(kbindings::noop_llseek),
        // SAFETY: all-zero is a valid `file_operations` (every other hook absent).
        ..unsafe { core::mem::zeroed() }
    };
    const FOPS: *const kbindings::file_operations = &Self::FOPS_VALUE;

    /// # Safety
    ///
    /// `file` is a file created by [`install`] for `T`, being released.
    unsafe extern "C" fn release(_inode: *mut kbindings::inode, file: *mut kbindings::file) -> i32 {
        // SAFETY: `private_data` holds the `Arc<T>` given to `install`; release runs once.
        drop(unsafe { Arc::<T>::from_foreign((*file).private_data) });
        0
    }

    /// # Safety
    ///
    /// `file` is a live file created by [`install`] for `T`.
    unsafe extern "C" fn ioctl(file: *mut kbindings::file, cmd: u32, arg: usize) -> isize {
        // SAFETY: the file holds a reference to the `Arc<T>` until `release`, which cannot
        // run while this call holds the file.
        let this = unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) };
        match T::ioctl(this, cmd, arg) {
            Ok(ret) => ret,
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `file` is a live file created by [`install`] for `T`, `vma` a mapping being set up.
    unsafe extern "C" fn mmap(file: *mut kbindings::file, vma: *mut kbindings::vm_area_struct) -> i32 {
        // SAFETY: as in `ioctl`.
        let this = unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) };
        // SAFETY: `mmap` is called while the new VMA is being set up, as `VmaNew` requires.
        let vma = unsafe { VmaNew::from_raw(vma) };
        match T::mmap(this, vma) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }
}
