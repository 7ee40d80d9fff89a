// SPDX-License-Identifier: GPL-2.0

//! File descriptors backed by anonymous inodes, one per kernel object (VM, vCPU).
//!
//! KVM counterpart: `anon_inode_getfd()` in `kvm_vm_ioctl_create_vcpu()` and the
//! `kvm_vm_fops`/`kvm_vcpu_fops` tables. The file owns one `Arc` reference to the object,
//! dropped on the last `close`; the file operations name rkvm as owner, so the module
//! cannot be unloaded while any such file exists.
//!
//! The fd itself is the kernel crate's (`FileDescriptorReservation`, `File`). The kernel
//! crate (7.3) builds `file_operations` only for misc devices (`MiscDevice`) and has no
//! anonymous-inode files; [`FdOps`] is the generic part a `kernel::fs::anon_inode` would
//! need (an `Arc`-owned object, ioctl, mmap and read through `VmaNew` and `UserSlice`),
//! with nothing specific to rkvm.

use super::bindings;
use core::{marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings as kbindings,
    error::from_err_ptr,
    fs::{
        file::{
            flags::{O_CLOEXEC, O_RDONLY, O_RDWR},
            FileDescriptorReservation,
        },
        File,
    },
    mm::virt::VmaNew,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow},
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice, UserSliceWriter},
};

/// `FMODE_PREAD` (`include/linux/fs.h`; a `__force` cast bindgen does not expand).
const FMODE_PREAD: u32 = 1 << 3;

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

    /// Whether `read` is implemented (otherwise `read` on the fd fails with `EINVAL`).
    const HAS_READ: bool = false;

    /// Reads up to `len` bytes from file offset `pos` into `out`; returns the count.
    fn read(
        _this: ArcBorrow<'_, Self>,
        _pos: u64,
        _len: usize,
        _out: &mut UserSliceWriter,
    ) -> Result<usize> {
        Err(EINVAL)
    }
}

/// Creates an `O_RDWR | O_CLOEXEC` file named `name` holding `obj`, and returns its fd
/// (KVM's `anon_inode_getfd(name, fops, obj, O_RDWR | O_CLOEXEC)`).
pub(crate) fn install<T: FdOps>(name: &CStr, obj: Arc<T>) -> Result<i32> {
    install_file(name, obj, O_RDWR, 0)
}

/// Creates a read-only, `pread`-able file named `name` holding `obj` (a stats fd, as
/// KVM's `anon_inode_getfile_fmode(..., O_RDONLY, FMODE_PREAD)`), and returns its fd.
pub(crate) fn install_readonly<T: FdOps>(name: &CStr, obj: Arc<T>) -> Result<i32> {
    install_file(name, obj, O_RDONLY, FMODE_PREAD)
}

/// Creates a close-on-exec anonymous-inode file named `name` with `T`'s operations,
/// holding `obj`, opened with `flags` and with `fmode` added to its mode, and installs it
/// in a new fd of the current process: `anon_inode_getfd` with a file mode, through the
/// kernel crate's fd reservation.
fn install_file<T: FdOps>(name: &CStr, obj: Arc<T>, flags: u32, fmode: u32) -> Result<i32> {
    let reservation = FileDescriptorReservation::get_unused_fd_flags(O_CLOEXEC)?;
    let private = obj.into_foreign();
    // SAFETY: `name` is NUL-terminated (copied into the new dentry); the fops table is
    // static; `private` is an owned `Arc<T>` that the file's `release` gives back.
    let file = unsafe {
        bindings::anon_inode_getfile_fmode(
            name.as_char_ptr(),
            VTable::<T>::FOPS.cast(),
            private,
            flags as i32,
            fmode,
        )
    };
    let file = match from_err_ptr(file) {
        Ok(file) => file,
        Err(e) => {
            // SAFETY: no file was created, so `private` is still ours to reclaim.
            drop(unsafe { Arc::<T>::from_foreign(private) });
            return Err(e);
        }
    };
    let fd = reservation.reserved_fd();
    // SAFETY: `file` is a new file whose one reference we own and give to the `ARef`;
    // `File` is a transparent wrapper of `struct file`. Nothing else has seen the file,
    // so it has no `fdget_pos` users.
    let file = unsafe { ARef::from_raw(NonNull::new_unchecked(file.cast::<File>())) };
    reservation.fd_install(file);
    Ok(fd as i32)
}

struct VTable<T>(PhantomData<T>);

impl<T: FdOps> VTable<T> {
    const FOPS_VALUE: kbindings::file_operations = kbindings::file_operations {
        owner: kernel::module::this_module::<crate::LocalModule>().as_ptr(),
        release: Some(Self::release),
        unlocked_ioctl: Some(Self::ioctl),
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        read: if T::HAS_READ { Some(Self::read) } else { None },
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
    /// `file` is a live file created by [`install_readonly`] for `T`; `pos` points at the
    /// read's offset.
    unsafe extern "C" fn read(
        file: *mut kbindings::file,
        buf: *mut kernel::ffi::c_char,
        size: usize,
        pos: *mut kbindings::loff_t,
    ) -> isize {
        // SAFETY: as in `ioctl`.
        let this = unsafe { <Arc<T> as ForeignOwnable>::borrow((*file).private_data) };
        // SAFETY: the VFS passes a valid offset (never negative for a file without
        // FMODE_UNSIGNED_OFFSET).
        let at = unsafe { *pos };
        let mut out = UserSlice::new(UserPtr::from_addr(buf as usize), size).writer();
        match T::read(this, at as u64, size, &mut out) {
            Ok(n) => {
                // SAFETY: as above; advanced only on success, as KVM.
                unsafe { *pos = at + n as i64 };
                n as isize
            }
            Err(e) => e.to_errno() as isize,
        }
    }

    /// # Safety
    ///
    /// `file` is a live file created by [`install`] for `T`, `vma` a mapping being set up.
    unsafe extern "C" fn mmap(
        file: *mut kbindings::file,
        vma: *mut kbindings::vm_area_struct,
    ) -> i32 {
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
