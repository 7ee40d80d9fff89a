// SPDX-License-Identifier: GPL-2.0

//! Waking and interrupting a vCPU's thread: kicks, blocking in WFI, the guest-mode flag.
//!
//! KVM counterpart: `kvm_vcpu_kick`, `kvm_vcpu_wake_up`, `kvm_vcpu_block` and
//! `vcpu->mode` (`virt/kvm/kvm_main.c`, `include/linux/kvm_host.h`), with the rcuwait
//! pattern of `kvm_vcpu_block`.
//!
//! From the kernel crate: the task (`Task::wake_up`, `current!`) and the RCU read lock.
//! It has no `kick_process`, no `set_current_state` and no bare `schedule`. Its `CondVar`
//! sleeps only with a lock held by the waker too, and a kick comes from hard-irq context
//! (the timer's callback, an IPI's sender) where rkvm takes no lock; its `Completion`
//! counts completions rather than re-checking a condition. So blocking is KVM's
//! rcuwait-style loop, written here. The protocol is rkvm's (KVM's `vcpu->mode`), not a
//! kernel-crate candidate.
//!
//! Ordering (no lost wake-ups):
//!
//! * A kicker first records why (a request bit in `requests`, a fetch-or with full
//!   ordering), then reads `mode`. The vCPU thread first publishes `mode` (`IN_GUEST` with interrupts masked,
//!   or `BLOCKED` before sleeping), then (after a full barrier) reads `requests`. Whatever
//!   the interleaving, one of them sees the other: either the thread sees the request
//!   and does not enter (or does not sleep), or the kicker sees the mode and sends an IPI
//!   (which, with interrupts masked, stays pending and makes the guest exit at once) or
//!   wakes the sleeper.
//! * The thread clears a request only before re-evaluating what it stands for (the
//!   vGIC's pending state, the timers), never after, so a request made after the
//!   evaluation survives until the next entry check.
//! * `requests` is the vCPU's whole pending-work word (`logic::request`): besides the
//!   requests, it mirrors states their owners set and clear under their own locks (the
//!   power state, the vGIC's), so the entry reads everything in one load.

use core::{
    ptr,
    sync::atomic::{
        fence, AtomicPtr, AtomicU32, AtomicU64, AtomicU8,
        Ordering::{Relaxed, SeqCst},
    },
};
use kernel::{bindings, interrupt::LocalInterruptDisabled, task::Task};

/// The pending-work bits (`logic::request`).
pub(crate) use crate::logic::request as req;

/// Where the vCPU's thread is (`vcpu->mode`).
const OUTSIDE: u8 = 0;
const IN_GUEST: u8 = 1;
const EXITING: u8 = 2;
const BLOCKED: u8 = 3;

/// The kick state of one vCPU.
///
/// # Invariants
///
/// `task` is null or points to the thread inside `KVM_RUN` on this vCPU, set between
/// [`Self::run_begin`] and [`Self::run_end`]. A task's `task_struct` is freed only an
/// RCU grace period after the task is released, so a pointer read under
/// `rcu_read_lock` while non-null stays valid until the read-side section ends.
pub(crate) struct VcpuWake {
    /// The pending-work word (`logic::request`).
    requests: AtomicU32,
    mode: AtomicU8,
    task: AtomicPtr<Task>,
    /// Kicks that woke the thread from [`Self::block`] (KVM's `halt_wakeup`).
    wakeups: AtomicU64,
}

impl VcpuWake {
    pub(crate) const fn new() -> Self {
        Self {
            requests: AtomicU32::new(0),
            mode: AtomicU8::new(OUTSIDE),
            task: AtomicPtr::new(ptr::null_mut()),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Records the current thread as the one running the vCPU (start of `KVM_RUN`).
    pub(crate) fn run_begin(&self) {
        // INVARIANT: the current thread is in `KVM_RUN` until `run_end`.
        let current: &Task = kernel::current!();
        self.task.store(ptr::from_ref(current).cast_mut(), SeqCst);
    }

    /// The thread leaves `KVM_RUN`; later kicks find nobody to interrupt.
    pub(crate) fn run_end(&self) {
        self.mode.store(OUTSIDE, SeqCst);
        self.task.store(ptr::null_mut(), SeqCst);
    }

    /// Makes `why` (a [`req`] bit) pending and gets the vCPU to act on it: wakes its
    /// thread if it sleeps in WFI, interrupts the guest with an IPI if it runs on another
    /// CPU. Callable from any context (hardirq included); cheap when the vCPU neither
    /// sleeps nor runs the guest: one atomic OR, one load.
    pub(crate) fn kick(&self, why: u32) {
        self.requests.fetch_or(why, SeqCst);
        match self.mode.load(SeqCst) {
            BLOCKED => self.with_task(|t| {
                // SAFETY: `t` is a live task (`with_task`); waking a task in any state is
                // allowed from any context. `Task::wake_up` drops the result, which KVM's
                // `kvm_vcpu_wake_up` counts: only a wake-up that found it asleep.
                if unsafe { bindings::wake_up_process(t.as_ptr()) } != 0 {
                    self.wakeups.fetch_add(1, Relaxed);
                }
            }),
            IN_GUEST
                if self
                    .mode
                    .compare_exchange(IN_GUEST, EXITING, SeqCst, SeqCst)
                    .is_ok() =>
            {
                self.with_task(|t| {
                    // SAFETY: `t` is a live task; `kick_process` only sends a reschedule
                    // IPI to the CPU it runs on, if that is not this one.
                    unsafe { bindings::kick_process(t.as_ptr()) };
                })
            }
            _ => {}
        }
    }

    /// Whether the caller is the thread in `KVM_RUN` on this vCPU.
    pub(crate) fn is_current(&self) -> bool {
        // Only the current thread stores itself here, so a relaxed load suffices.
        ptr::eq(
            self.task.load(Relaxed).cast_const().cast(),
            crate::sys::task::current_ptr(),
        )
    }

    /// Calls `f` with the task in `KVM_RUN`, if there is one.
    fn with_task(&self, f: impl FnOnce(&Task)) {
        let _rcu = kernel::sync::rcu::read_lock();
        let t = self.task.load(SeqCst);
        if !t.is_null() {
            // SAFETY: non-null, `t` points to a task that stays valid while `_rcu` is
            // held (type invariant).
            f(unsafe { &*t });
        }
    }

    /// Clears the request bits in `mask` and returns which of them were set.
    pub(crate) fn take(&self, mask: u32) -> u32 {
        // A load first: on most entries nothing is pending, and a read is cheaper than a
        // read-modify-write. A request made after it stays set for the next check.
        if self.requests.load(SeqCst) & mask == 0 {
            return 0;
        }
        self.requests.fetch_and(!mask, SeqCst) & mask
    }

    /// Takes every request ([`req::REQUESTS`]) and returns the whole word as it was, so
    /// the caller sees the states too. For the vCPU's thread, before it acts on them.
    pub(crate) fn take_requests(&self) -> u32 {
        self.requests.fetch_and(!req::REQUESTS, SeqCst)
    }

    /// Makes `bits` pending from the vCPU's own thread (no one to wake or interrupt).
    pub(crate) fn request(&self, bits: u32) {
        self.requests.fetch_or(bits, SeqCst);
    }

    /// Sets the state bits in `mask` to `value`'s. Only for the states' owner, under the
    /// lock that serialises its changes, so the bits read here cannot change meanwhile
    /// and an XOR of the difference is exact; no write when nothing changes. A change
    /// the thread must act on at once is followed by a kick.
    pub(crate) fn set_states(&self, mask: u32, value: u32) {
        let diff = (self.requests.load(SeqCst) ^ value) & mask;
        if diff != 0 {
            self.requests.fetch_xor(diff, SeqCst);
        }
    }

    /// The word as it is now (a racy snapshot, for decisions re-checked under a lock).
    pub(crate) fn word(&self) -> u32 {
        self.requests.load(SeqCst)
    }

    /// Whether a kick or the timer asks the thread to stop waiting ([`req::WAKE`]).
    pub(crate) fn pending(&self) -> bool {
        self.requests.load(SeqCst) & req::WAKE != 0
    }

    /// Publishes that the thread is about to enter the guest and returns the pending-work
    /// word read after that (KVM's `smp_store_mb(vcpu->mode, IN_GUEST_MODE)` then
    /// `kvm_request_pending`). Interrupts are masked (`_irqs`), so an IPI sent after this
    /// point makes the guest exit right after entry; a caller that does not enter calls
    /// [`Self::exit_guest_mode`].
    #[inline(always)]
    pub(crate) fn enter_guest_mode(&self, _irqs: &LocalInterruptDisabled) -> u32 {
        self.mode.store(IN_GUEST, SeqCst);
        fence(SeqCst);
        self.requests.load(SeqCst)
    }

    /// The guest has exited (or the thread backed out before entering).
    #[inline(always)]
    pub(crate) fn exit_guest_mode(&self) {
        self.mode.store(OUTSIDE, SeqCst);
    }

    /// Kicks that woke the thread from [`Self::block`] so far.
    pub(crate) fn wakeups(&self) -> u64 {
        self.wakeups.load(Relaxed)
    }

    /// Whether the thread is in [`Self::block`] (KVM's `blocking` statistic).
    pub(crate) fn blocking(&self) -> bool {
        self.mode.load(Relaxed) == BLOCKED
    }

    /// Whether a kick, the timer or a signal ends a halt poll.
    pub(crate) fn poll_done(&self) -> bool {
        self.pending() || crate::sys::task::signal_pending()
    }

    /// Sleeps until a kick or the timer ([`Self::pending`]) or a signal arrives (the caller re-evaluates
    /// either way), and returns whether it slept (`schedule()`) at all. The thread must be
    /// the one in `KVM_RUN` on this vCPU.
    pub(crate) fn block(&self) -> bool {
        let mut slept = false;
        self.mode.store(BLOCKED, SeqCst);
        loop {
            // SAFETY: sets the current task's state; includes a full barrier, so the
            // `mode` store above is visible before `requests` is read below.
            unsafe { super::bindings::rkvm_set_current_interruptible() };
            if self.pending() || crate::sys::task::signal_pending() {
                break;
            }
            // SAFETY: task context with no spinlock held (the run loop); a kick or
            // signal wakes the task, which then re-checks.
            unsafe { bindings::schedule() };
            slept = true;
        }
        // SAFETY: back to running; no barrier needed on this side.
        unsafe { super::bindings::rkvm_set_current_running() };
        self.mode.store(OUTSIDE, SeqCst);
        slept
    }
}
