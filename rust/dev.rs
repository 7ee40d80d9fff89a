// SPDX-License-Identifier: GPL-2.0

//! `/dev/rkvm`: the system file descriptor.
//!
//! KVM counterpart: `kvm_dev_ioctl()` in `virt/kvm/kvm_main.c`. Like KVM, an open of the
//! device carries no state; every unknown command fails with `EINVAL`.

use crate::{
    logic::{
        caps, coalesced,
        ioctl::{self, SystemIoctl},
    },
    vm::{self, Vm},
};
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    page::PAGE_SIZE,
    prelude::*,
};

/// The (stateless) open `/dev/rkvm` file.
pub(crate) struct RkvmDev;

#[vtable]
impl MiscDevice for RkvmDev {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        Ok(())
    }

    fn ioctl(_dev: (), _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match SystemIoctl::decode(cmd) {
            Some(SystemIoctl::GetApiVersion) if arg == 0 => Ok(ioctl::API_VERSION as isize),
            Some(SystemIoctl::CheckExtension) => {
                Ok(caps::check_extension(arg as u64, &vm::caps_host()) as isize)
            }
            Some(SystemIoctl::CreateVm) => Vm::create(arg),
            // The `kvm_run` page, then the coalesced-MMIO ring (no dirty ring).
            Some(SystemIoctl::GetVcpuMmapSize) if arg == 0 => {
                Ok((coalesced::VCPU_MMAP_PAGES * PAGE_SIZE) as isize)
            }
            _ => Err(EINVAL),
        }
    }
}
