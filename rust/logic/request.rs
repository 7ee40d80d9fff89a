// SPDX-License-Identifier: GPL-2.0

//! A vCPU's pending-work word: one bit per reason the run loop has work to do before it
//! enters the guest, and the entry decision taken from it.
//!
//! KVM counterpart: `vcpu->requests` with `kvm_make_request`/`kvm_check_request`, and
//! the entry check `kvm_request_pending() || xfer_to_guest_mode_work_pending()`
//! (`arch/arm64/kvm/arm.c`). The word lives in `sys::wake::VcpuWake`, whose kick
//! protocol orders it against the thread's guest-mode flag.
//!
//! Two kinds of bit share the word so that the entry reads one location:
//!
//! * requests ([`KICK`], [`TIMER`], [`STEAL`]): set by whoever has news, taken (cleared)
//!   by the vCPU's thread just before it re-evaluates what they stand for;
//! * states ([`POWER`], [`VGIC_QUEUED`], [`VGIC_TDIR`]): set and cleared by their owner
//!   under its lock (`Vcpu::power`, `Vgic::state`), read by the thread without it.

/// Re-evaluate everything before the next entry (an interrupt became pending, a power
/// state changed, the caller wants the thread out of the guest or out of WFI).
pub(crate) const KICK: u32 = 1 << 0;
/// The wake-up hrtimer expired, the guest wrote a trapped timer register, or its virtual
/// timer changed: recompute the timers' levels and the hrtimer.
pub(crate) const TIMER: u32 = 1 << 1;
/// The vCPU was loaded since its PV stolen-time structure was last brought up to date.
pub(crate) const STEAL: u32 = 1 << 2;
/// The power state asks something of the run loop (stopped, suspended, a `CPU_ON` reset
/// owed): mirrors `!Power::settled()`, under `Vcpu::power`.
pub(crate) const POWER: u32 = 1 << 3;
/// The vGIC has something on this vCPU's AP list (or LPIs queued): the flush must look.
pub(crate) const VGIC_QUEUED: u32 = 1 << 8;
/// An SPI is active or pending somewhere in the VM: ICC_DIR_EL1 must trap.
pub(crate) const VGIC_TDIR: u32 = 1 << 9;

/// The requests: cleared by the thread when it takes them.
pub(crate) const REQUESTS: u32 = KICK | TIMER | STEAL;
/// What ends a halt's poll or sleep: a kick or the timer (not the states, which stay set
/// while the vCPU waits, nor `STEAL`, which the sleep itself sets).
pub(crate) const WAKE: u32 = KICK | TIMER;
/// What the list-register flush acts on.
pub(crate) const VGIC: u32 = VGIC_QUEUED | VGIC_TDIR;
/// What keeps the thread from entering the guest: it goes round the slow path first.
pub(crate) const SLOW: u32 = REQUESTS | POWER;

/// Whether an entry that read `word` (interrupts masked, guest mode published) has
/// anything to do first; `thread_work`: the thread's own work flags are set (KVM's
/// `xfer_to_guest_mode_work_pending`). The common entry tests only this.
#[inline(always)]
pub(crate) fn pending(word: u32, thread_work: bool) -> bool {
    word != 0 || thread_work
}

/// Whether an entry with something [`pending`] backs out and does the work with
/// interrupts on (a request, the power state, the thread's work); otherwise only vGIC
/// state is set, and the list-register flush takes it before entering.
#[inline(always)]
pub(crate) fn backs_out(word: u32, thread_work: bool) -> bool {
    word & SLOW != 0 || thread_work
}

/// What the slow path does, from the requests it took and the word it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Work {
    /// Take `Vcpu::power` and act on the power state.
    pub(crate) power: bool,
    /// Bring the PV stolen time up to date.
    pub(crate) steal: bool,
    /// Recompute the timers (levels to the vGIC, the hrtimer).
    pub(crate) timer: bool,
}

impl Work {
    /// The work `word` (read as the requests in it were taken) asks for. A bare [`KICK`]
    /// asks for nothing of its own: it only made the thread go round, so that the next
    /// entry check, and the flush after it, see the state that changed.
    pub(crate) fn from_word(word: u32) -> Self {
        Self {
            power: word & POWER != 0,
            steal: word & STEAL != 0,
            timer: word & TIMER != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision of an entry: `None` to enter at once, else whether it backs out.
    fn entry(word: u32, thread_work: bool) -> Option<bool> {
        pending(word, thread_work).then(|| backs_out(word, thread_work))
    }

    #[test]
    fn nothing_pending_enters() {
        assert_eq!(entry(0, false), None);
    }

    #[test]
    fn thread_work_backs_out_whatever_the_word() {
        for w in [0, VGIC_QUEUED, VGIC, KICK | VGIC_TDIR] {
            assert_eq!(entry(w, true), Some(true));
        }
    }

    #[test]
    fn vgic_state_alone_flushes() {
        assert_eq!(entry(VGIC_QUEUED, false), Some(false));
        assert_eq!(entry(VGIC_TDIR, false), Some(false));
        assert_eq!(entry(VGIC, false), Some(false));
    }

    #[test]
    fn every_request_and_power_back_out() {
        for bit in [KICK, TIMER, STEAL, POWER] {
            assert_eq!(entry(bit, false), Some(true), "{bit:#x}");
            assert_eq!(entry(bit | VGIC, false), Some(true), "{bit:#x}");
        }
    }

    #[test]
    fn bits_are_distinct_and_classified_once() {
        let all = [KICK, TIMER, STEAL, POWER, VGIC_QUEUED, VGIC_TDIR];
        let mut seen = 0;
        for b in all {
            assert_eq!(b.count_ones(), 1);
            assert_eq!(seen & b, 0);
            seen |= b;
            // Every bit is either a reason to back out or something the flush handles.
            assert!((b & SLOW != 0) ^ (b & VGIC != 0), "{b:#x}");
        }
        // Requests are taken by the thread; states are never taken.
        assert_eq!(REQUESTS & (POWER | VGIC), 0);
        // A halt ends only on a kick or the timer.
        assert_eq!(WAKE & (STEAL | POWER | VGIC), 0);
    }

    #[test]
    fn work_follows_the_bits() {
        assert_eq!(Work::from_word(KICK), Work::default());
        assert_eq!(Work::from_word(VGIC), Work::default());
        let w = Work::from_word(POWER | STEAL | TIMER);
        assert!(w.power && w.steal && w.timer);
        assert_eq!(
            Work::from_word(TIMER),
            Work {
                timer: true,
                ..Work::default()
            }
        );
    }
}
