// SPDX-License-Identifier: GPL-2.0

//! Per-CPU interrupts (PPIs) rkvm takes for itself: the GICv3 maintenance interrupt
//! (and the timer interrupts, for the arch-timer code).
//!
//! KVM counterpart: `request_percpu_irq`/`enable_percpu_irq` in `vgic-init.c`
//! (`kvm_vgic_hyp_init`) and `arch_timer.c`, with the CPU-hotplug callbacks that enable
//! the interrupt on each CPU that comes online (`vgic_init_cpu_starting`).
//!
//! Usage: [`PercpuIrq::request`] with a Linux IRQ number (a mapped PPI) and a handler; the
//! interrupt is enabled on every online CPU, and on every CPU that comes online while the
//! returned [`PercpuIrq`] lives; dropping it disables it everywhere and frees it. The
//! handler runs in hard-IRQ context on the CPU that took the interrupt. [`init`] and
//! [`exit`] bracket the module's use (the hotplug state).
//!
//! The kernel crate's `kernel::irq` (7.3) requests ordinary interrupts for a bound
//! device (`irq::Registration` on a `Device<Bound>`); it has no per-CPU interrupts
//! (`request_percpu_irq`, `enable_percpu_irq`) and no CPU-hotplug states. This wrapper
//! is shaped by rkvm's needs (a few fixed slots, a plain `fn` handler, the GIC's
//! maintenance interrupt looked up in the device tree); a `kernel::irq::PercpuRegistration`
//! would take a per-CPU cookie and a handler trait instead.

use super::bindings;
use core::ffi::{c_int, c_uint, c_void};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// What a per-CPU interrupt does when taken (hard-IRQ context, on the taking CPU).
pub(crate) type Handler = fn();

/// Per-CPU interrupts rkvm may hold at once (maintenance, virtual and physical timer).
const SLOTS: usize = 4;

/// Registered interrupts: IRQ number (0 = free) and handler (`Handler` as `usize`).
static SLOT_IRQ: [Atomic<u32>; SLOTS] = [const { Atomic::new(0) }; SLOTS];
static SLOT_HANDLER: [Atomic<usize>; SLOTS] = [const { Atomic::new(0) }; SLOTS];
/// The dynamic CPU-hotplug state (0 before `init`).
static HP_STATE: Atomic<i32> = Atomic::new(0);

extern "C" fn trampoline(irq: c_int, _cookie: *mut c_void) -> bindings::irqreturn {
    for (i, slot) in SLOT_IRQ.iter().enumerate() {
        if slot.load(Relaxed) == irq as u32 {
            let h = SLOT_HANDLER[i].load(Relaxed);
            if h != 0 {
                // SAFETY: only `request` stores here, and it stores a `Handler`.
                let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
                f();
            }
            return bindings::irqreturn_IRQ_HANDLED;
        }
    }
    bindings::irqreturn_IRQ_NONE
}

/// CPU coming online: enable every registered interrupt on it.
extern "C" fn cpu_online(_cpu: c_uint) -> c_int {
    for slot in &SLOT_IRQ {
        let irq = slot.load(Relaxed);
        if irq != 0 {
            // SAFETY: runs on the CPU coming online; `irq` is requested as per-CPU.
            unsafe { bindings::enable_percpu_irq(irq, bindings::IRQ_TYPE_NONE) };
        }
    }
    0
}

/// CPU going offline: disable them on it.
extern "C" fn cpu_offline(_cpu: c_uint) -> c_int {
    for slot in &SLOT_IRQ {
        let irq = slot.load(Relaxed);
        if irq != 0 {
            // SAFETY: runs on the CPU going offline.
            unsafe { bindings::disable_percpu_irq(irq) };
        }
    }
    0
}

/// Registers the CPU-hotplug callbacks (module load).
pub(crate) fn init() -> Result {
    // SAFETY: the name is static; the callbacks are valid for the module's lifetime
    // (`exit` removes them before unload).
    let state = unsafe {
        bindings::rkvm_cpuhp_setup_state_nocalls(
            c"rkvm/percpu_irq:online".as_char_ptr(),
            Some(cpu_online),
            Some(cpu_offline),
        )
    };
    if state < 0 {
        return Err(Error::from_errno(state));
    }
    HP_STATE.store(state, Relaxed);
    Ok(())
}

/// Removes the CPU-hotplug callbacks (module unload, after every `PercpuIrq` is gone).
pub(crate) fn exit() {
    let state = HP_STATE.xchg(0, Relaxed);
    if state > 0 {
        // SAFETY: `state` came from `init`.
        unsafe { bindings::rkvm_cpuhp_remove_state_nocalls(state) };
    }
}

/// The host's GICv3 maintenance interrupt (a PPI from the `arm,gic-v3` device-tree node's
/// `interrupts` property), mapped to a Linux IRQ number, if the platform describes one.
pub(crate) fn gic_maintenance_irq() -> Option<u32> {
    // SAFETY: a device-tree lookup and an IRQ mapping; no state is kept.
    let irq = unsafe { bindings::rkvm_gic_v3_maintenance_irq() };
    (irq != 0).then_some(irq)
}

/// A per-CPU interrupt requested by rkvm, enabled on every online CPU.
pub(crate) struct PercpuIrq {
    irq: u32,
    slot: usize,
}

impl PercpuIrq {
    /// Requests `irq` as a per-CPU interrupt named `name` running `handler`, and enables
    /// it on every online CPU (and, through the hotplug callbacks, on each CPU that comes
    /// online later).
    pub(crate) fn request(irq: u32, name: &'static CStr, handler: Handler) -> Result<Self> {
        let slot = SLOT_IRQ
            .iter()
            .position(|s| s.cmpxchg(0, irq, Relaxed).is_ok())
            .ok_or(EBUSY)?;
        SLOT_HANDLER[slot].store(handler as usize, Relaxed);
        // The hotplug lock keeps CPUs from coming or going between the request and the
        // enables (a CPU coming online later is covered by `cpu_online`).
        // SAFETY: takes the CPU-hotplug read lock, released below.
        unsafe { bindings::cpus_read_lock() };
        // SAFETY: the trampoline matches `irq_handler_t`; the name is static.
        let ret =
            unsafe { bindings::rkvm_request_percpu_irq(irq, Some(trampoline), name.as_char_ptr()) };
        if ret == 0 {
            super::cpu::on_each_cpu(&|| {
                // SAFETY: on each CPU in turn, for the per-CPU interrupt just requested.
                unsafe { bindings::enable_percpu_irq(irq, bindings::IRQ_TYPE_NONE) }
            });
        }
        // SAFETY: pairs with the lock above.
        unsafe { bindings::cpus_read_unlock() };
        if ret != 0 {
            SLOT_HANDLER[slot].store(0, Relaxed);
            SLOT_IRQ[slot].store(0, Relaxed);
            return Err(Error::from_errno(ret));
        }
        Ok(Self { irq, slot })
    }

    /// The Linux IRQ number.
    #[allow(dead_code)] // For users that log or compare it (the timer code).
    pub(crate) fn irq(&self) -> u32 {
        self.irq
    }
}

impl Drop for PercpuIrq {
    fn drop(&mut self) {
        let irq = self.irq;
        // Disable on every CPU with hotplug held off so none is missed, and release the
        // slot before freeing, so the hotplug callbacks never touch a freed interrupt.
        // SAFETY: takes the CPU-hotplug read lock, released below.
        unsafe { bindings::cpus_read_lock() };
        super::cpu::on_each_cpu(&|| {
            // SAFETY: on each CPU in turn, for an interrupt this value requested.
            unsafe { bindings::disable_percpu_irq(irq) }
        });
        SLOT_IRQ[self.slot].store(0, Relaxed);
        // SAFETY: pairs with the lock above.
        unsafe { bindings::cpus_read_unlock() };
        // SAFETY: requested by `request`, disabled everywhere, no longer in a slot.
        unsafe { bindings::rkvm_free_percpu_irq(irq) };
        SLOT_HANDLER[self.slot].store(0, Relaxed);
    }
}
