// SPDX-License-Identifier: GPL-2.0

//! Adaptive halt polling: how long a halted vCPU spins before it sleeps, and how that
//! window follows the halts it sees.
//!
//! KVM counterpart: `kvm_vcpu_halt()`, `grow_halt_poll_ns()`, `shrink_halt_poll_ns()`,
//! `kvm_vcpu_max_halt_poll_ns()`, `update_halt_poll_stats()` and the `KVM_CAP_HALT_POLL`
//! case of `kvm_vm_ioctl_enable_cap_generic()` (`virt/kvm/kvm_main.c`). Each vCPU keeps
//! its own window (`vcpu->halt_poll_ns`), starting at 0: a halt shorter than the maximum
//! grows it (to `grow_start`, then by `grow`), one longer than the maximum shrinks it (by
//! `shrink`, to 0 below `grow_start`). The maximum is the VM's `KVM_CAP_HALT_POLL` value
//! once userspace set one, the `halt_poll_ns` module parameter otherwise. arm64 has no
//! invalid wake-ups (`CONFIG_HAVE_KVM_INVALID_WAKEUPS` is s390's), so every wake-up is
//! valid and `halt_poll_invalid` stays 0.

/// arm64's `KVM_HALT_POLL_NS_DEFAULT` (`arch/arm64/include/asm/kvm_host.h`).
const DEFAULT_HALT_POLL_NS: u32 = 500_000;
/// `halt_poll_ns_grow`'s default: the window doubles.
const DEFAULT_GROW: u32 = 2;
/// `halt_poll_ns_grow_start`'s default: 10 µs.
const DEFAULT_GROW_START: u32 = 10_000;
/// `halt_poll_ns_shrink`'s default: the window halves.
const DEFAULT_SHRINK: u32 = 2;

/// `HALT_POLL_HIST_COUNT`: buckets of each halt-poll histogram.
pub(crate) const HIST_COUNT: usize = 32;

/// The module parameters, read once per halt (KVM reads each with `READ_ONCE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    /// `halt_poll_ns`: the maximum window of a VM without `KVM_CAP_HALT_POLL`.
    pub(crate) max_ns: u32,
    pub(crate) grow: u32,
    pub(crate) grow_start: u32,
    pub(crate) shrink: u32,
}

impl Params {
    /// KVM's defaults on arm64 (`rust/params.c` starts from them).
    pub(crate) const DEFAULT: Self = Self {
        max_ns: DEFAULT_HALT_POLL_NS,
        grow: DEFAULT_GROW,
        grow_start: DEFAULT_GROW_START,
        shrink: DEFAULT_SHRINK,
    };
}

/// A VM's `KVM_CAP_HALT_POLL` state in one word, so that readers see the value and the
/// "set" flag together (KVM orders two fields with `smp_wmb`/`smp_rmb`): bit 32 set
/// means userspace set the VM's maximum, bits 31:0 hold it.
pub(crate) const VM_OVERRIDE_UNSET: u64 = 0;

/// The word [`KVM_CAP_HALT_POLL`](enable_cap_arg) stores for a maximum of `ns`.
pub(crate) const fn vm_override(ns: u32) -> u64 {
    1 << 32 | ns as u64
}

/// `kvm_vcpu_max_halt_poll_ns()`: the VM's maximum if userspace set one, the module
/// parameter otherwise.
pub(crate) const fn max_poll_ns(vm_word: u64, param: u32) -> u32 {
    if vm_word >> 32 != 0 {
        vm_word as u32
    } else {
        param
    }
}

/// `KVM_ENABLE_CAP(KVM_CAP_HALT_POLL)`: flags must be 0 and `args[0]` must fit an
/// `unsigned int` (`None`: `EINVAL`); the VM's maximum window in ns otherwise.
pub(crate) const fn enable_cap_arg(flags: u32, arg0: u64) -> Option<u32> {
    if flags != 0 || arg0 > u32::MAX as u64 {
        return None;
    }
    Some(arg0 as u32)
}

/// `grow_halt_poll_ns()`. The multiplication wraps as KVM's `unsigned int` does.
pub(crate) const fn grow(cur: u32, p: &Params) -> u32 {
    if p.grow == 0 {
        return cur;
    }
    let val = cur.wrapping_mul(p.grow);
    if val < p.grow_start {
        p.grow_start
    } else {
        val
    }
}

/// `shrink_halt_poll_ns()`.
pub(crate) const fn shrink(cur: u32, p: &Params) -> u32 {
    // A shrink factor of 0 resets the window (KVM's `halt_poll_ns_shrink` = 0).
    let val = match cur.checked_div(p.shrink) {
        Some(v) => v,
        None => 0,
    };
    if val < p.grow_start {
        0
    } else {
        val
    }
}

/// The window for the next halt after a halt of `halt_ns` (polling included) with a
/// window of `cur`, `max` being the maximum read again after the halt (it may have
/// changed): `kvm_vcpu_halt()`'s epilogue.
pub(crate) const fn adjust(cur: u32, halt_ns: u64, max: u32, p: &Params) -> u32 {
    if max == 0 {
        return 0;
    }
    if halt_ns <= cur as u64 {
        cur
    } else if cur != 0 && halt_ns > max as u64 {
        // A long block: polling did not pay.
        shrink(cur, p)
    } else if cur < max && halt_ns < max as u64 {
        // A short halt that the window just missed.
        grow(cur, p)
    } else {
        cur
    }
}

/// The counter ticks (at `freq` Hz) a window of `ns` spans, rounded down. The halt path
/// times itself with the architected counter, which the monotonic clock reads too,
/// rather than `ktime_get()`: a few instructions instead of a hundred, on a path every
/// WFI takes.
pub(crate) const fn window_ticks(ns: u32, freq: u64) -> u64 {
    // ns < 2^32 and CNTFRQ is a 32-bit register: no overflow.
    ns as u64 * (freq & 0xffff_ffff) / 1_000_000_000
}

/// `kvm_stats_log_hist_update()`'s bucket for `ns`: `fls64(ns)`, the last bucket
/// collecting everything above.
pub(crate) const fn hist_bucket(ns: u64) -> usize {
    let fls = (u64::BITS - ns.leading_zeros()) as usize;
    if fls < HIST_COUNT {
        fls
    } else {
        HIST_COUNT - 1
    }
}

/// How one halt ended, for `update_halt_poll_stats()` and the wait statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HaltTimes {
    /// Whether the halt polled at all (its window was not 0).
    pub(crate) polled: bool,
    /// Whether the thread slept (`schedule()`): a poll that ends in a sleep failed.
    pub(crate) waited: bool,
    /// From the halt's start to the end of polling.
    pub(crate) poll_ns: u64,
    /// From the end of polling to the wake-up, when the thread slept.
    pub(crate) wait_ns: u64,
}

/// The statistics one halt adds to, with the bucket of each histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollStat {
    /// `halt_successful_poll`, `halt_poll_success_ns` and `halt_poll_success_hist`.
    Success { ns: u64, bucket: usize },
    /// `halt_poll_fail_ns` and `halt_poll_fail_hist`.
    Fail { ns: u64, bucket: usize },
}

impl HaltTimes {
    /// The poll statistics this halt adds to (`halt_attempted_poll` with each).
    pub(crate) const fn poll_stat(&self) -> Option<PollStat> {
        if !self.polled {
            return None;
        }
        let (ns, bucket) = (self.poll_ns, hist_bucket(self.poll_ns));
        Some(if self.waited {
            PollStat::Fail { ns, bucket }
        } else {
            PollStat::Success { ns, bucket }
        })
    }

    /// `halt_wait_ns` and the `halt_wait_hist` bucket, when the thread slept.
    pub(crate) const fn wait_stat(&self) -> Option<(u64, usize)> {
        if self.waited {
            Some((self.wait_ns, hist_bucket(self.wait_ns)))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Params = Params::DEFAULT;

    #[test]
    fn kvm_defaults_on_arm64() {
        assert_eq!(P.max_ns, 500_000);
        assert_eq!(P.grow, 2);
        assert_eq!(P.grow_start, 10_000);
        assert_eq!(P.shrink, 2);
    }

    #[test]
    fn grows_from_grow_start_and_doubles() {
        assert_eq!(grow(0, &P), 10_000);
        assert_eq!(grow(10_000, &P), 20_000);
        assert_eq!(grow(4_000, &P), 10_000);
        // grow = 0 leaves the window alone, even at 0.
        let frozen = Params { grow: 0, ..P };
        assert_eq!(grow(0, &frozen), 0);
        assert_eq!(grow(30_000, &frozen), 30_000);
        // KVM's unsigned int wraps.
        assert_eq!(grow(0x8000_0001, &P), 10_000);
        assert_eq!(grow(0x9000_0000, &P), 0x2000_0000);
    }

    #[test]
    fn shrinks_to_zero_below_grow_start() {
        assert_eq!(shrink(40_000, &P), 20_000);
        assert_eq!(shrink(20_000, &P), 10_000);
        assert_eq!(shrink(10_000, &P), 0);
        assert_eq!(shrink(0, &P), 0);
        let reset = Params { shrink: 0, ..P };
        assert_eq!(shrink(400_000, &reset), 0);
        let small_start = Params {
            grow_start: 0,
            shrink: 4,
            ..P
        };
        assert_eq!(shrink(3, &small_start), 0);
        assert_eq!(shrink(400, &small_start), 100);
    }

    #[test]
    fn adjusts_as_kvm_vcpu_halt() {
        let max = P.max_ns;
        // A halt inside the window keeps it.
        assert_eq!(adjust(20_000, 20_000, max, &P), 20_000);
        assert_eq!(adjust(20_000, 5, max, &P), 20_000);
        // A short halt beyond the window grows it, from 0 too.
        assert_eq!(adjust(0, 3_000, max, &P), 10_000);
        assert_eq!(adjust(20_000, 30_000, max, &P), 40_000);
        // A long one shrinks it; from 0 it stays 0.
        assert_eq!(adjust(40_000, 600_000, max, &P), 20_000);
        assert_eq!(adjust(0, 600_000, max, &P), 0);
        // Exactly the maximum: neither.
        assert_eq!(adjust(40_000, 500_000, max, &P), 40_000);
        // At the maximum: no growth past it (the next halt clamps it anyway).
        assert_eq!(adjust(max, 499_999, max, &P), max);
        assert_eq!(adjust(320_000, 400_000, max, &P), 640_000);
        // Polling off for the VM: the window goes to 0 whatever the halt.
        assert_eq!(adjust(40_000, 100, 0, &P), 0);
    }

    #[test]
    fn the_vm_maximum_overrides_the_parameter() {
        assert_eq!(max_poll_ns(VM_OVERRIDE_UNSET, 500_000), 500_000);
        assert_eq!(max_poll_ns(vm_override(0), 500_000), 0);
        assert_eq!(max_poll_ns(vm_override(7), 0), 7);
        assert_eq!(max_poll_ns(vm_override(u32::MAX), 1), u32::MAX);
    }

    #[test]
    fn enable_cap_errnos_as_kvm() {
        assert_eq!(enable_cap_arg(0, 0), Some(0));
        assert_eq!(enable_cap_arg(0, 1_000_000), Some(1_000_000));
        assert_eq!(enable_cap_arg(0, u64::from(u32::MAX)), Some(u32::MAX));
        assert_eq!(enable_cap_arg(0, 1 << 32), None);
        assert_eq!(enable_cap_arg(0, u64::MAX), None);
        assert_eq!(enable_cap_arg(1, 0), None);
        assert_eq!(enable_cap_arg(0x8000_0000, 10), None);
    }

    #[test]
    fn windows_in_counter_ticks() {
        // QEMU's virt counter (62.5 MHz: 16 ns a tick) and a 1 GHz one.
        assert_eq!(window_ticks(500_000, 62_500_000), 31_250);
        assert_eq!(window_ticks(15, 62_500_000), 0);
        assert_eq!(window_ticks(10_000, 1_000_000_000), 10_000);
        assert_eq!(window_ticks(u32::MAX, u64::from(u32::MAX)), 18_446_744_065);
        assert_eq!(window_ticks(0, 25_000_000), 0);
    }

    #[test]
    fn log_histogram_buckets_as_kvm() {
        assert_eq!(hist_bucket(0), 0);
        assert_eq!(hist_bucket(1), 1);
        assert_eq!(hist_bucket(2), 2);
        assert_eq!(hist_bucket(3), 2);
        assert_eq!(hist_bucket(4), 3);
        assert_eq!(hist_bucket(10_000), 14);
        assert_eq!(hist_bucket((1 << 30) - 1), 30);
        assert_eq!(hist_bucket(1 << 30), 31);
        assert_eq!(hist_bucket(u64::MAX), HIST_COUNT - 1);
    }

    #[test]
    fn halt_statistics() {
        let no_poll = HaltTimes {
            polled: false,
            waited: true,
            poll_ns: 0,
            wait_ns: 5_000,
        };
        assert_eq!(no_poll.poll_stat(), None);
        assert_eq!(no_poll.wait_stat(), Some((5_000, 13)));
        let success = HaltTimes {
            polled: true,
            waited: false,
            poll_ns: 3_000,
            wait_ns: 0,
        };
        assert_eq!(
            success.poll_stat(),
            Some(PollStat::Success {
                ns: 3_000,
                bucket: 12
            })
        );
        assert_eq!(success.wait_stat(), None);
        let fail = HaltTimes {
            polled: true,
            waited: true,
            poll_ns: 10_000,
            wait_ns: 1 << 40,
        };
        assert_eq!(
            fail.poll_stat(),
            Some(PollStat::Fail {
                ns: 10_000,
                bucket: 14
            })
        );
        assert_eq!(fail.wait_stat(), Some((1 << 40, 31)));
    }
}
