// SPDX-License-Identifier: GPL-2.0

//! `KVM_IRQFD`: an eventfd whose signal raises a GSI (an SPI, or an MSI through the
//! ITS, as the VM's routing says), optionally with a resample eventfd for
//! level-triggered sources.
//!
//! KVM counterpart: `virt/kvm/eventfd.c` (`kvm_irqfd`, `irqfd_wakeup`, `irqfd_inject`,
//! the resampler); the routing is `vm/irqchip.rs`.
//!
//! The wake-up runs in the signaller's context with the eventfd's wait-queue lock held,
//! so it only consumes the counter and queues work; the work (process context) injects:
//! a pulse for a plain irqfd, a raised line for a resampling one. When the guest EOIs a
//! resampled interrupt, the vCPU's sync notes it (`Vgic::sync`) and the run loop lowers
//! the line and signals the resample eventfd, which tells the VMM to check its device
//! and signal the irqfd again if the line is still asserted. An eventfd closed by
//! userspace (`EPOLLHUP`) removes its irqfd. The VM's routing shuts every irqfd down
//! before any other part of the VM goes, so an irqfd's pointer to its VM stays valid.

use crate::{
    sys::{
        self,
        eventfd::{EventFd, PollEntry, EPOLLHUP, EPOLLIN},
    },
    vm::Vm,
};
use core::{
    ffi::{c_int, c_uint, c_void},
    mem::offset_of,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{
    new_work,
    prelude::*,
    sync::{Arc, ArcBorrow},
    workqueue::{self, impl_has_work, Work, WorkItem},
};

/// `kvm_irqfd.flags`.
pub(crate) const FLAG_DEASSIGN: u32 = 1 << 0;
pub(crate) const FLAG_RESAMPLE: u32 = 1 << 1;

/// One irqfd.
#[pin_data]
pub(crate) struct Irqfd {
    #[pin]
    poll: PollEntry,
    pub(crate) gsi: u32,
    /// The resample eventfd, for a level-triggered irqfd.
    pub(crate) resample: Option<EventFd>,
    /// The VM (valid while the irqfd exists: `IrqRouting`'s drop shuts it down).
    vm: *const Vm,
    /// Still on the eventfd's wait queue.
    registered: AtomicBool,
    #[pin]
    inject: Work<Irqfd, 0>,
    #[pin]
    shutdown: Work<Irqfd, 1>,
}

// SAFETY: `vm` is only dereferenced while the VM exists (see the type's docs); the
// rest is thread-safe.
unsafe impl Send for Irqfd {}
// SAFETY: as above.
unsafe impl Sync for Irqfd {}

impl_has_work! {
    impl HasWork<Self, 0> for Irqfd { self.inject }
    impl HasWork<Self, 1> for Irqfd { self.shutdown }
}

impl WorkItem<0> for Irqfd {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.vm().set_irq(this.gsi);
    }
}

impl WorkItem<1> for Irqfd {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        let vm = this.vm();
        vm.irq.irqfd_remove(vm, &this);
    }
}

/// The workqueue irqfd work runs on: the kernel's default unbound one (`system_wq`
/// itself is deprecated in 7.3).
fn queue() -> &'static workqueue::Queue {
    sys::workqueue::system_dfl()
}

/// The wake-up callback: consumes the counter and queues the injection; on hang-up,
/// queues the removal.
///
/// # Safety
///
/// Called by the eventfd's wait queue, with its lock held, for the entry of a registered
/// irqfd (`wait` is its `poll` entry's wait-queue entry).
unsafe extern "C" fn wakeup(
    wait: *mut sys::WaitQueueEntry,
    _mode: c_uint,
    _sync: c_int,
    key: *mut c_void,
) -> c_int {
    let flags = key as usize;
    // SAFETY: `wait` is the entry of a registered `PollEntry`, the `poll` field of an
    // `Irqfd` held in an `Arc` (registration happens only in `Irqfd::assign`).
    let this = unsafe {
        let poll = PollEntry::from_wait(wait);
        let irqfd = core::ptr::from_ref(poll)
            .cast::<u8>()
            .sub(offset_of!(Irqfd, poll))
            .cast::<Irqfd>();
        ArcBorrow::from_raw(irqfd)
    };
    if flags & EPOLLIN != 0 {
        // SAFETY: called from this entry's wake-up.
        unsafe { this.poll.do_read() };
        // Already queued: that run injects for this signal too.
        let _ = queue().enqueue::<Arc<Irqfd>, 0>(this.into());
    }
    if flags & EPOLLHUP != 0 {
        let _ = queue().enqueue::<Arc<Irqfd>, 1>(this.into());
    }
    0
}

impl Irqfd {
    /// Creates an irqfd for `gsi` on eventfd `fd` and registers it; `resample` for a
    /// level-triggered one. Returns it with whether the eventfd was already signalled.
    pub(crate) fn assign(
        vm: &Vm,
        fd: i32,
        gsi: u32,
        resample: Option<EventFd>,
    ) -> Result<Arc<Self>> {
        let this = Arc::pin_init(
            pin_init!(Self {
                poll: PollEntry::new(),
                gsi,
                resample,
                vm: core::ptr::from_ref(vm),
                registered: AtomicBool::new(false),
                inject <- new_work!("Irqfd::inject"),
                shutdown <- new_work!("Irqfd::shutdown"),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        // SAFETY: the entry is pinned in the `Arc` until `unregister`, which `shutdown`
        // calls before the last reference can go (the VM's list holds one until then).
        let events = unsafe { this.poll.register(fd, wakeup)? };
        this.registered.store(true, Ordering::Release);
        if events & EPOLLIN != 0 {
            let _ = queue().enqueue::<Arc<Irqfd>, 0>(this.clone());
        }
        Ok(this)
    }

    fn vm(&self) -> &Vm {
        // SAFETY: by the type invariant, the VM outlives its irqfds.
        unsafe { &*self.vm }
    }

    /// Whether this irqfd is driven by the eventfd `ctx`.
    pub(crate) fn is_on(&self, ctx: &EventFd) -> bool {
        self.poll.eventfd() == ctx.as_ptr()
    }

    /// Takes the irqfd off its eventfd (from its own removal work, which must not wait
    /// for itself; an injection still queued finishes on its own and finds the VM).
    pub(crate) fn unregister_only(&self) {
        if self.registered.swap(false, Ordering::AcqRel) {
            // SAFETY: registered by `assign`, unregistered once (the flag).
            unsafe { self.poll.unregister() };
        }
    }

    /// Takes the irqfd off its eventfd and waits for queued work to finish. Called with
    /// the irqfd already off the VM's list, without the list lock (the removal work
    /// takes it).
    pub(crate) fn shutdown(&self) {
        if self.registered.swap(false, Ordering::AcqRel) {
            // SAFETY: registered by `assign`, unregistered once (the flag).
            unsafe { self.poll.unregister() };
        }
        // After the unregister no wake-up queues the work again.
        sys::workqueue::flush(&self.inject);
        sys::workqueue::flush(&self.shutdown);
    }
}
