// SPDX-License-Identifier: GPL-2.0

//! PV stolen time: the `KVM_ARM_VCPU_PVTIME_CTRL` attribute, `PV_TIME_ST`, and keeping
//! the guest's structure up to date.
//!
//! KVM counterpart: `arch/arm64/kvm/pvtime.c`, with `KVM_REQ_RECORD_STEAL` made in
//! `kvm_arch_vcpu_load` and served before the next entry. Rules and arithmetic are in
//! `logic::pvtime`; this file reaches guest memory through `GuestMemory::{read,write}_guest`.
//!
//! Cost: a vCPU without a structure pays one relaxed load per `vcpu_load`; with one, each
//! load (start of `KVM_RUN`, return from preemption) makes `req::STEAL` pending, and the
//! run loop's slow path updates the structure before the next entry, where it may sleep
//! (it takes the memslot lock and touches the VMM's memory).

use super::{Vcpu, VcpuState};
use crate::{
    logic::{ioctl::VcpuIoctl, pvtime},
    sys::{task, wake::req},
    vm::Vm,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

impl Vcpu {
    /// `KVM_{HAS,GET,SET}_DEVICE_ATTR` in `KVM_ARM_VCPU_PVTIME_CTRL`, with KVM's errnos:
    /// `ENXIO` for another attribute or a kernel without run-delay accounting, then
    /// `EFAULT`, then the checks of `StealTime::set_base`.
    pub(super) fn pvtime_attr(
        &self,
        vm: &Vm,
        op: VcpuIoctl,
        attr: u64,
        addr: usize,
    ) -> Result<isize> {
        if attr != pvtime::VCPU_PVTIME_IPA || !task::sched_info_on() {
            return Err(ENXIO);
        }
        let user = UserSlice::new(UserPtr::from_addr(addr), 8);
        match op {
            VcpuIoctl::HasDeviceAttr => Ok(0),
            VcpuIoctl::GetDeviceAttr => {
                let base = self.inner.lock().state.steal.base();
                user.writer().write(&base.unwrap_or(pvtime::NO_IPA))?;
                Ok(0)
            }
            _ => {
                let ipa: u64 = user.reader().read()?;
                let mut inner = self.inner.lock();
                inner
                    .state
                    .steal
                    .set_base(ipa, |ipa| vm.mmu.writable(ipa))?;
                self.steal_time_on.store(true, Relaxed);
                Ok(0)
            }
        }
    }

    /// Called on every `vcpu_load` (preemption disabled): the structure, if any, is due
    /// for an update before the next entry (KVM's `KVM_REQ_RECORD_STEAL`).
    pub(super) fn steal_on_load(&self) {
        if self.steal_time_on.load(Relaxed) {
            self.wake.request(req::STEAL);
        }
    }

    /// Before an entry, for `req::STEAL`: brings the guest's `stolen_time` up to date
    /// (KVM's `kvm_update_stolen_time`). A structure whose memslot has gone is left
    /// alone, as KVM does.
    pub(super) fn record_steal(&self, vm: &Vm, state: &mut VcpuState) {
        let Some(base) = state.steal.base() else {
            return;
        };
        let ipa = base + pvtime::STOLEN_TIME_OFFSET;
        let mmu = &vm.mmu;
        let mut bytes = [0u8; 8];
        if mmu.read_guest(ipa, &mut bytes).is_ok() {
            let stolen = state
                .steal
                .update(u64::from_le_bytes(bytes), task::run_delay());
            // A failure (the VMM unmapped its memory) leaves the guest's copy as it was.
            let _ = mmu.write_guest(ipa, &stolen.to_le_bytes());
        }
    }

    /// `PV_TIME_ST` on a vCPU with a structure: stolen time counts from now, the
    /// structure is zeroed (revision 0, no attributes, nothing stolen), and the guest gets
    /// its IPA (KVM's `kvm_init_stolen_time`).
    pub(super) fn pv_time_st(&self, vm: &Vm, state: &mut VcpuState) -> u64 {
        let Some(base) = state.steal.start(task::run_delay()) else {
            return crate::logic::psci::NOT_SUPPORTED;
        };
        // As KVM, a structure that cannot be written is not an error to the guest.
        let _ = vm.mmu.write_guest(base, &[0u8; pvtime::STRUCT_SIZE]);
        base
    }
}
