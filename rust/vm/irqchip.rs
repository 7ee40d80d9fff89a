// SPDX-License-Identifier: GPL-2.0

//! Interrupt routing at VM level: `KVM_SET_GSI_ROUTING`'s table, the irqfds that inject
//! through it, and the injection itself, which hands an SPI to the vGIC and an MSI to the
//! ITS whose frame holds its doorbell.
//!
//! KVM counterpart: `virt/kvm/irqchip.c` (`kvm_set_irq_routing`, `kvm_set_irq`),
//! `virt/kvm/eventfd.c` (irqfds and their resamplers) and arm64's `vgic-irqfd.c`
//! (`kvm_set_routing_entry`, `kvm_set_msi`). As in KVM the routing belongs to the VM,
//! not to an interrupt controller: irqfds reach the controllers only through
//! [`Vm::set_irq`], the narrow interface both implement (`Vgic::set_spi_level`,
//! `its::inject_msi`).
//!
//! Lock order: Documentation/design.rst, "Locking". An irqfd holds a pointer to its VM;
//! [`IrqRouting`] is the VM's first field and shuts every irqfd down when it is dropped,
//! before any other part of the VM goes.

use crate::{
    irqfd::{self, Irqfd},
    its,
    logic::irqroute::{self, Msi, Route},
    logic::vgic::{MAX_SPIS, NR_PRIVATE},
    sys::eventfd::EventFd,
    vm::Vm,
};
use kernel::{
    alloc::KVVec,
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// A VM's routing table and irqfds.
#[pin_data(PinnedDrop)]
pub(crate) struct IrqRouting {
    /// `KVM_IRQFD` registrations.
    #[pin]
    irqfds: Mutex<KVec<Arc<Irqfd>>>,
    /// `KVM_SET_GSI_ROUTING`'s table, or `None` for the default (GSI n → SPI n + 32,
    /// which the vGIC's `CTRL_INIT` restores, as KVM's `vgic_init`).
    #[pin]
    routes: Mutex<Option<KVVec<Route>>>,
}

#[pinned_drop]
impl PinnedDrop for IrqRouting {
    fn drop(self: Pin<&mut Self>) {
        // Irqfds point at the VM: off their eventfds, and their work done, first.
        let irqfds = core::mem::take(&mut *self.irqfds.lock());
        for i in irqfds.iter() {
            i.shutdown();
        }
    }
}

impl IrqRouting {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            irqfds <- new_mutex!(KVec::new(), "IrqRouting::irqfds"),
            routes <- new_mutex!(None, "IrqRouting::routes"),
        })
    }

    /// Back to the default routing (the vGIC's `CTRL_INIT`).
    pub(crate) fn reset(&self, vm: &Vm) {
        let old = self.routes.lock().take();
        drop(old);
        self.update_resample(vm, &self.irqfds.lock());
    }

    fn route(&self, gsi: u32) -> Route {
        irqroute::route(self.routes.lock().as_deref(), gsi, MAX_SPIS as u32)
    }

    /// `KVM_SET_GSI_ROUTING` with `entries` (already read and header-checked): builds
    /// the whole table (`EINVAL` for a bad entry leaves the old one), then swaps it in.
    pub(crate) fn set_gsi_routing(
        &self,
        vm: &Vm,
        entries: &[[u32; irqroute::ENTRY_WORDS]],
    ) -> Result {
        let len = irqroute::table_len(entries)?;
        let mut table = KVVec::with_capacity(len, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..len {
            table.push(Route::None, GFP_KERNEL_ACCOUNT)?;
        }
        for e in entries {
            irqroute::add(&mut table, e)?;
        }
        let old = self.routes.lock().replace(table);
        drop(old);
        self.update_resample(vm, &self.irqfds.lock());
        Ok(())
    }

    /// Tells the vGIC which SPIs a resampling irqfd drives (under `irqfds`), so its
    /// sync notes their EOIs.
    fn update_resample(&self, vm: &Vm, list: &KVec<Arc<Irqfd>>) {
        let mut bits = [0u64; MAX_SPIS.div_ceil(64)];
        for i in list.iter().filter(|i| i.resample.is_some()) {
            if let Route::Pin(n) = self.route(i.gsi) {
                let n = usize::from(n);
                if n < MAX_SPIS {
                    bits[n / 64] |= 1 << (n % 64);
                }
            }
        }
        vm.vgic.set_resample_spis(&bits);
    }

    /// `KVM_IRQFD` (`kvm_irqfd`): assigns or deassigns an irqfd.
    pub(crate) fn irqfd(&self, vm: &Vm, args: &crate::sys::kvm_irqfd) -> Result {
        let (fd, gsi, flags, resamplefd) = (args.fd, args.gsi, args.flags, args.resamplefd);
        if flags & !(irqfd::FLAG_DEASSIGN | irqfd::FLAG_RESAMPLE) != 0 {
            return Err(EINVAL);
        }
        let eventfd = EventFd::from_fd(fd as i32)?;
        if flags & irqfd::FLAG_DEASSIGN != 0 {
            // Unknown pairs are not an error (KVM's kvm_irqfd_deassign).
            let removed = {
                let mut list = self.irqfds.lock();
                // Room for every match first: an irqfd off the list must be shut down.
                let mut removed = KVec::with_capacity(list.len(), GFP_KERNEL)?;
                let mut i = 0;
                while i < list.len() {
                    if list[i].gsi == gsi && list[i].is_on(&eventfd) {
                        let irqfd = list.remove(i)?;
                        // Within the capacity reserved above, so this cannot fail; if
                        // it did, the irqfd goes back where its slot was freed.
                        if let Err(e) = removed.push_within_capacity(irqfd) {
                            let _ = list.push_within_capacity(e.0);
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                self.update_resample(vm, &list);
                removed
            };
            for i in removed.iter() {
                i.shutdown();
            }
            return Ok(());
        }
        let resample = if flags & irqfd::FLAG_RESAMPLE != 0 {
            Some(EventFd::from_fd(resamplefd as i32)?)
        } else {
            None
        };
        drop(eventfd);
        let mut list = self.irqfds.lock();
        list.reserve(1, GFP_KERNEL_ACCOUNT)?;
        let irqfd = Irqfd::assign(vm, fd as i32, gsi, resample)?;
        list.push(irqfd, GFP_KERNEL_ACCOUNT)?;
        self.update_resample(vm, &list);
        Ok(())
    }

    /// The eventfd of `irqfd` was closed (work context): forget the irqfd.
    pub(crate) fn irqfd_remove(&self, vm: &Vm, irqfd: &Arc<Irqfd>) {
        let found = {
            let mut list = self.irqfds.lock();
            let found = list
                .iter()
                .position(|i| Arc::ptr_eq(i, irqfd))
                .and_then(|p| list.remove(p).ok());
            self.update_resample(vm, &list);
            found
        };
        if found.is_some() {
            // Only unregisters: this runs as the irqfd's own shutdown work, which must
            // not wait for itself.
            irqfd.unregister_only();
        }
    }

    /// Lowers the lines of the resampled SPIs the guest EOId (`acked`, bit n: pin n) and
    /// signals their resample eventfds, so the VMM checks its device and signals the
    /// irqfd again if the line is still asserted.
    pub(crate) fn resample(&self, vm: &Vm, acked: &[u64]) {
        let irqfds = self.irqfds.lock();
        for i in irqfds.iter() {
            let Some(resample) = &i.resample else {
                continue;
            };
            let Route::Pin(n) = self.route(i.gsi) else {
                continue;
            };
            let n = usize::from(n);
            if acked.get(n / 64).is_some_and(|w| w & (1 << (n % 64)) != 0) {
                let _ = vm.vgic.set_spi_level(n as u32 + NR_PRIVATE, false);
                resample.signal();
            }
        }
    }
}

impl Vm {
    /// Raises GSI `gsi` (an irqfd fired): KVM's `kvm_set_irq` with level 1. An SPI's
    /// line goes high and stays so, as KVM's `kvm_arch_set_irq_inatomic`: an edge SPI
    /// latches, a level one stays pending until the line is lowered (by `KVM_IRQ_LINE`
    /// or by the resampler once the guest EOIs it). An MSI goes to its ITS. A GSI without
    /// a route delivers nothing, as in KVM.
    pub(crate) fn set_irq(&self, gsi: u32) {
        match self.irq.route(gsi) {
            Route::None => {}
            // The model refuses a pin beyond the SPIs.
            Route::Pin(pin) => {
                let _ = self.vgic.set_spi_level(u32::from(pin) + NR_PRIVATE, true);
            }
            Route::Msi(msi) => {
                let _ = self.signal_msi(&msi);
            }
        }
    }

    /// `KVM_SIGNAL_MSI` (and an MSI route): `EINVAL` without an in-kernel irqchip, as
    /// `kvm_send_userspace_msi`; then the ITS's answer (1 delivered, 0 blocked).
    pub(crate) fn signal_msi(&self, msi: &Msi) -> Result<isize> {
        if self.vgic().is_none() {
            return Err(EINVAL);
        }
        its::inject_msi(self, msi)
    }
}
