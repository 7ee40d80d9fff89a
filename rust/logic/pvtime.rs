// SPDX-License-Identifier: GPL-2.0

//! Paravirtualised time (Arm DEN 0057): a per-vCPU stolen-time structure in guest memory
//! that the hypervisor keeps up to date, found by the guest with `PV_TIME_ST`.
//!
//! KVM counterpart: `arch/arm64/kvm/pvtime.c` (`kvm_arm_pvtime_{set,get,has}_attr`,
//! `kvm_init_stolen_time`, `kvm_update_stolen_time`) and `struct pvclock_vcpu_stolen_time`
//! (`arch/arm64/include/asm/pvclock-abi.h`). Stolen time is the time the vCPU's thread
//! waited runnable for a CPU, the scheduler's `sched_info.run_delay`.

/// `KVM_ARM_VCPU_PVTIME_CTRL`: the vCPU device-attribute group, and its one attribute,
/// the structure's IPA.
pub(crate) const VCPU_PVTIME_CTRL: u32 = 2;
pub(crate) const VCPU_PVTIME_IPA: u64 = 0;

/// `struct pvclock_vcpu_stolen_time`: `revision` (le32, 0), `attributes` (le32, 0),
/// `stolen_time` (le64, nanoseconds), padding to 64 bytes. The IPA must be aligned to its
/// size, so the structure never straddles a page, and so never a memslot boundary.
pub(crate) const STRUCT_SIZE: usize = 64;
pub(crate) const STOLEN_TIME_OFFSET: u64 = 8;

/// What `KVM_GET_DEVICE_ATTR` reads before an IPA is set (KVM's `INVALID_GPA`).
pub(crate) const NO_IPA: u64 = u64::MAX;

/// Why `KVM_SET_DEVICE_ATTR(PVTIME_IPA)` refuses an IPA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetError {
    /// `EINVAL`: not 64-byte aligned, or no writable memslot backs it.
    Invalid,
    /// `EEXIST`: the vCPU already has one (it can be set once per vCPU).
    AlreadySet,
}

/// A vCPU's stolen-time state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StealTime {
    /// The structure's IPA, once userspace set it.
    base: Option<u64>,
    /// The thread's run delay when the structure was last brought up to date.
    last_run_delay: u64,
}

impl StealTime {
    pub(crate) const fn base(&self) -> Option<u64> {
        self.base
    }

    /// Sets the IPA, with KVM's checks in KVM's order: alignment, already set, then
    /// `backed` (a writable memslot covers the IPA; asked only when the rest passed).
    pub(crate) fn set_base(
        &mut self,
        ipa: u64,
        backed: impl FnOnce(u64) -> bool,
    ) -> Result<(), SetError> {
        if ipa % STRUCT_SIZE as u64 != 0 {
            return Err(SetError::Invalid);
        }
        if self.base.is_some() {
            return Err(SetError::AlreadySet);
        }
        if !backed(ipa) {
            return Err(SetError::Invalid);
        }
        self.base = Some(ipa);
        Ok(())
    }

    /// `PV_TIME_ST`: stolen time counts from now (`run_delay`), and the caller zeroes the
    /// structure. Returns its IPA, `None` if there is none.
    pub(crate) fn start(&mut self, run_delay: u64) -> Option<u64> {
        let base = self.base?;
        self.last_run_delay = run_delay;
        Some(base)
    }

    /// The new `stolen_time` for a structure that holds `stolen`, with the thread's run
    /// delay now `run_delay`: the delay accrued since the last update is added. Counters
    /// wrap as KVM's unsigned arithmetic does.
    pub(crate) fn update(&mut self, stolen: u64, run_delay: u64) -> u64 {
        let delta = run_delay.wrapping_sub(self.last_run_delay);
        self.last_run_delay = run_delay;
        stolen.wrapping_add(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_base_checks_in_kvm_order() {
        let mut st = StealTime::default();
        assert_eq!(st.base(), None);
        // Misaligned is EINVAL before the memslot is even looked at.
        assert_eq!(
            st.set_base(0x4000_0001, |_| panic!("looked up")),
            Err(SetError::Invalid)
        );
        assert_eq!(
            st.set_base(0x4000_0020, |_| panic!("looked up")),
            Err(SetError::Invalid)
        );
        assert_eq!(st.set_base(0x4000_0000, |_| false), Err(SetError::Invalid));
        assert_eq!(st.base(), None);
        assert_eq!(st.set_base(0x4000_0040, |ipa| ipa == 0x4000_0040), Ok(()));
        assert_eq!(st.base(), Some(0x4000_0040));
        // Once only; alignment still comes first.
        assert_eq!(
            st.set_base(0x4000_0000, |_| true),
            Err(SetError::AlreadySet)
        );
        assert_eq!(st.set_base(0x4000_0001, |_| true), Err(SetError::Invalid));
        assert_eq!(st.base(), Some(0x4000_0040));
    }

    #[test]
    fn stolen_time_accrues_from_the_start() {
        let mut st = StealTime::default();
        assert_eq!(st.start(100), None);
        st.set_base(0x1000, |_| true).unwrap();
        assert_eq!(st.start(1_000), Some(0x1000));
        // The guest zeroed structure gets the delay since PV_TIME_ST, then more.
        assert_eq!(st.update(0, 1_500), 500);
        assert_eq!(st.update(500, 1_500), 500);
        assert_eq!(st.update(500, 4_000), 3_000);
        // A later PV_TIME_ST restarts the count.
        assert_eq!(st.start(10_000), Some(0x1000));
        assert_eq!(st.update(0, 10_007), 7);
    }

    #[test]
    fn counters_wrap_instead_of_panicking() {
        let mut st = StealTime::default();
        st.set_base(0, |_| true).unwrap();
        st.start(u64::MAX - 1);
        assert_eq!(st.update(u64::MAX, 1), 2);
    }

    #[test]
    fn layout() {
        assert_eq!(STRUCT_SIZE, 64);
        assert_eq!(STOLEN_TIME_OFFSET, 8);
        assert!(STOLEN_TIME_OFFSET as usize + 8 <= STRUCT_SIZE);
        assert_eq!(NO_IPA, 0xffff_ffff_ffff_ffff);
    }
}
