// SPDX-License-Identifier: GPL-2.0

//! Layer 1: kernel interfaces that the Rust `kernel` crate (7.3) does not wrap, and
//! the kernel side of `logic/`'s errors (`errno.rs`).
//!
//! This is the only place with FFI: the bindgen output, the C helpers, and small safe
//! wrappers over them. Everything above this layer uses the wrappers or the kernel
//! crate. Where the kernel crate has an abstraction, rkvm uses it (locks, `CondVar`,
//! `Arc`, work items, `Page`, `File` and fd reservations, `MiscDevice`, `HrTimer`,
//! `Task`, `kernel::cpu`, debugfs, user-memory access); each file here says in its
//! header what the crate lacks for its purpose, and whether the wrapper is generic
//! (written as a kernel-crate addition would be) or rkvm's own.

mod abi_checks;
pub(crate) mod anon_fd;
mod bindings;
pub(crate) mod clock;
pub(crate) mod coalesced_ring;
pub(crate) mod cpu;
mod errno;
pub(crate) mod eventfd;
pub(crate) mod halt_poll;
pub(crate) mod hrtimer;
pub(crate) mod irq;
pub(crate) mod misc;
pub(crate) mod mm;
pub(crate) mod mmu_notifier;
pub(crate) mod preempt;
pub(crate) mod run_page;
pub(crate) mod task;
pub(crate) mod wake;
pub(crate) mod workqueue;

pub(crate) use bindings::{
    kvm_clear_dirty_log, kvm_create_device, kvm_device_attr, kvm_dirty_log, kvm_enable_cap,
    kvm_ioeventfd, kvm_irq_level, kvm_irq_routing, kvm_irq_routing_entry, kvm_irqfd, kvm_mp_state,
    kvm_msi, kvm_one_reg, kvm_smccc_filter, kvm_userspace_memory_region,
    kvm_userspace_memory_region2, kvm_vcpu_events, kvm_vcpu_init, KVM_API_VERSION,
};

/// Marks uapi structs as plain bytes, both ways.
macro_rules! plain_uapi {
    ($($t:ty),*) => {$(
        // SAFETY: these uapi structs are plain integers with no padding-dependent
        // invariants; any bit pattern is a valid value, and their bytes may be copied to
        // userspace (their padding, if any, comes from zeroed or user-provided memory).
        unsafe impl kernel::transmute::FromBytes for $t {}
        // SAFETY: as above.
        unsafe impl kernel::transmute::AsBytes for $t {}
    )*};
}
plain_uapi!(
    kvm_create_device,
    kvm_device_attr,
    kvm_enable_cap,
    kvm_ioeventfd,
    kvm_irq_level,
    kvm_irq_routing,
    kvm_irq_routing_entry,
    kvm_irqfd,
    kvm_mp_state,
    kvm_msi,
    kvm_one_reg,
    kvm_smccc_filter,
    kvm_userspace_memory_region,
    kvm_userspace_memory_region2,
    kvm_vcpu_events,
    kvm_vcpu_init
);

/// Marks the dirty-log structs as plain bytes, both ways, and reads their bitmap address.
macro_rules! user_bitmap_uapi {
    ($($t:ty),*) => {$(
        // SAFETY: integers and a union of a user pointer with a `u64` of the same size,
        // without padding. Any bit pattern is a valid value (raw pointers have no validity
        // invariant), and rkvm only ever reads the union as the integer, never
        // dereferencing it.
        unsafe impl kernel::transmute::FromBytes for $t {}
        // SAFETY: as above.
        unsafe impl kernel::transmute::AsBytes for $t {}

        impl $t {
            /// The user address of the bitmap (the `dirty_bitmap`/`padding2` union).
            pub(crate) fn bitmap_addr(&self) -> u64 {
                // SAFETY: both union members are 64 bits wide and `padding2` is an integer,
                // valid for any bit pattern.
                unsafe { self.__bindgen_anon_1.padding2 }
            }
        }
    )*};
}
user_bitmap_uapi!(kvm_dirty_log, kvm_clear_dirty_log);

impl kvm_irq_level {
    /// The `irq` member of the `irq`/`status` union (the line, on input).
    pub(crate) fn irq(&self) -> u32 {
        // SAFETY: both union members are 32-bit integers; any bit pattern is valid.
        unsafe { self.__bindgen_anon_1.irq }
    }
}

impl kvm_irq_routing_entry {
    /// The entry as the words `logic::irqroute` decodes: gsi, type, flags, pad, then the
    /// 32-byte union `u` as eight words.
    pub(crate) fn words(&self) -> [u32; 12] {
        // SAFETY: every member of the union is plain integers and `pad` covers all 32
        // bytes of it; any bit pattern is a valid `[u32; 8]`.
        let u = unsafe { self.u.pad };
        [
            self.gsi, self.type_, self.flags, self.pad, u[0], u[1], u[2], u[3], u[4], u[5], u[6],
            u[7],
        ]
    }
}

/// The uapi constants the kernel layer uses (`abi_checks.rs` checks `logic/`'s copies).
pub(crate) mod uapi {
    pub(crate) use super::bindings::{
        KVM_ARM_TARGET_GENERIC_V8, KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER,
        KVM_HYPERCALL_EXIT_16BIT, KVM_HYPERCALL_EXIT_SMC, KVM_SYSTEM_EVENT_RESET,
        KVM_SYSTEM_EVENT_SHUTDOWN, KVM_SYSTEM_EVENT_SUSPEND, KVM_SYSTEM_EVENT_WAKEUP,
    };
}

extern "C" {
    /// Saves V0-V31, FPSR and FPCR to `state` (`arch/arm64/hyp/entry.S`).
    fn __rkvm_fpsimd_save(state: *mut task::FpState);
    /// Loads V0-V31, FPSR and FPCR from `state`.
    fn __rkvm_fpsimd_load(state: *const task::FpState);
}

/// # Safety
///
/// `state` is valid for writes and the caller owns the FP/SIMD registers.
unsafe fn fpsimd_save(state: *mut task::FpState) {
    // SAFETY: by the caller's guarantee.
    unsafe { __rkvm_fpsimd_save(state) }
}

/// # Safety
///
/// `state` is valid for reads and the caller owns the FP/SIMD registers.
unsafe fn fpsimd_load(state: *const task::FpState) {
    // SAFETY: by the caller's guarantee.
    unsafe { __rkvm_fpsimd_load(state) }
}

/// `struct wait_queue_entry`, for wake-up callbacks (`eventfd.rs`).
pub(crate) type WaitQueueEntry = bindings::wait_queue_entry;
