// SPDX-License-Identifier: GPL-2.0

//! rkvm: a KVM-compatible hypervisor for arm64, as an out-of-tree Rust module.
//!
//! `/dev/rkvm` speaks KVM's ioctl ABI (`include/uapi/linux/kvm.h`). Unless `devkvm=0`, the
//! same device is also `/dev/kvm` (misc minor 232, free because rkvm loads only where the
//! in-kernel KVM did not initialise), so unmodified KVM clients find it where they look.
//! See `Documentation/`.
//!
//! Layers, lowest first (a layer uses only the ones before it): `logic` (pure decisions,
//! unit-tested on the build host), `sys` (FFI shims), `hyp` (the world-switch backends),
//! then the objects behind the file descriptors (`vm`, `vcpu`, `mmu`, `vgic`, `its`,
//! `irqfd`, `dev`). Documentation/design.rst describes them.

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
    params: {
        devkvm: bool {
            default: true,
            description: "Also register /dev/kvm (misc minor 232); 0: only /dev/rkvm",
        },
    },
}

// The uapi rkvm speaks is the one the kernel it was built against defines.
const _: () = assert!(sys::KVM_API_VERSION as i32 == logic::ioctl::API_VERSION);

#[pin_data(PinnedDrop)]
struct Rkvm {
    backend: logic::cpufeature::Backend,
    // Dropped before `_dev` and `_globals` (declaration order), initialised after them.
    _kvm_dev: Option<Pin<KBox<MiscDeviceRegistration<dev::RkvmDev>>>>,
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
            _kvm_dev: dev_kvm(),
            _: {
                let also = if _kvm_dev.is_some() { " and /dev/kvm" } else { "" };
                pr_info!("{} backend, /dev/rkvm ready{also}\n", backend.name());
            }
        })
    }
}

/// `/dev/kvm`: the same device on KVM's misc minor, unless `devkvm=0`. The minor is free:
/// `select_backend` refused the load if the in-kernel KVM had registered it. Should some
/// other driver have taken it since, rkvm stays with `/dev/rkvm` alone.
fn dev_kvm() -> Option<Pin<KBox<MiscDeviceRegistration<dev::RkvmDev>>>> {
    if !module_parameters::devkvm.value() {
        return None;
    }
    let reg = sys::misc::register_fixed::<dev::RkvmDev>(c"kvm", sys::misc::KVM_MINOR);
    match KBox::pin_init(reg, GFP_KERNEL) {
        Ok(reg) => Some(reg),
        Err(e) => {
            pr_warn!(
                "no /dev/kvm (misc minor {}: {e:?}); /dev/rkvm only\n",
                sys::misc::KVM_MINOR
            );
            None
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Rkvm {
    fn drop(self: Pin<&mut Self>) {
        pr_info!("{} backend unloaded\n", self.backend.name());
    }
}
