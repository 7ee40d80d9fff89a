// SPDX-License-Identifier: GPL-2.0

//! rkvm: a KVM-compatible hypervisor for arm64, as an out-of-tree Rust module.
//!
//! `/dev/rkvm` speaks KVM's ioctl ABI (`include/uapi/linux/kvm.h`), so unmodified KVM
//! clients drive it with the node bind-mounted over `/dev/kvm`. See `Documentation/`.
//!
//! Layers, lowest first (a layer uses only the ones before it):
//! - `logic`: pure decisions, unit-tested on the build host;
//! - `sys`: FFI shims for kernel interfaces the `kernel` crate lacks;
//! - `hyp`: the world-switch backends (VHE, nVHE) and their selection;
//! - `dev`: the objects behind the file descriptors.

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

mod dev;
mod hyp;
mod irqfd;
mod its;
mod logic;
mod mmu;
mod sys;
mod vcpu;
mod vgic;
mod vm;

module! {
    type: Rkvm,
    name: "rkvm",
    authors: ["The rkvm developers"],
    description: "KVM-compatible hypervisor for arm64",
    license: "GPL",
}

// The uapi rkvm speaks is the one the kernel it was built against defines.
const _: () = assert!(sys::KVM_API_VERSION as i32 == logic::ioctl::API_VERSION);

#[pin_data(PinnedDrop)]
struct Rkvm {
    backend: logic::cpufeature::Backend,
    // Dropped before `_globals` (declaration order), initialised after it.
    #[pin]
    _dev: MiscDeviceRegistration<dev::RkvmDev>,
    _globals: Globals,
    // Dropped last (declaration order): EL2 goes back to the hyp stub once nothing can
    // run a guest any more.
    _el2: hyp::El2,
}

/// Module-wide state that must exist before `/dev/rkvm` does and outlive it.
struct Globals {
    /// The vGIC's maintenance interrupt; released before the hotplug state goes.
    vgic: Option<vgic::Host>,
}

impl Globals {
    fn new() -> Self {
        vm::init();
        // The vCPU threads' preempt notifiers fire only while this count is held.
        sys::preempt::notifiers_enable();
        let vgic = match sys::irq::init() {
            Ok(()) => Some(vgic::init()),
            Err(e) => {
                pr_warn!("no CPU-hotplug state for per-CPU interrupts ({e:?}): no vGIC\n");
                None
            }
        };
        Self { vgic }
    }
}

impl Drop for Globals {
    fn drop(&mut self) {
        // The maintenance interrupt is freed before the hotplug state goes.
        let vgic = self.vgic.take();
        let had_irq_state = vgic.is_some();
        drop(vgic);
        if had_irq_state {
            sys::irq::exit();
        }
        sys::preempt::notifiers_disable();
        vm::exit();
    }
}

impl kernel::InPlaceModule for Rkvm {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            backend: hyp::select_backend()?,
            _el2: hyp::El2::take(*backend)?,
            _globals: Globals::new(),
            _dev <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"rkvm" }),
            _: {
                pr_info!("{} backend, /dev/rkvm ready\n", backend.name());
            }
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Rkvm {
    fn drop(self: Pin<&mut Self>) {

        pr_info!("{} backend unloaded\n", self.backend.name());
    }
}
