// SPDX-License-Identifier: GPL-2.0

//! The vCPU's view of the VM's interrupt controller: the lines its timers drive and the
//! wake-up condition of WFI. Without an in-kernel vGIC (the VM has none, or this build
//! predates it) there is nowhere to deliver a timer interrupt, and WFI does not block,
//! as on KVM without an irqchip.

use super::Vcpu;
use crate::vm::Vm;

impl Vcpu {
    /// Whether interrupts of this VM are delivered in the kernel.
    pub(super) fn has_irqchip(&self, _vm: &Vm) -> bool {
        false
    }

    /// Drives private interrupt `intid` (a PPI) of this vCPU to `level`; `false` if the
    /// vGIC refused (not initialised yet), so the caller tries again at the next entry.
    pub(super) fn set_ppi_level(&self, _vm: &Vm, _intid: u32, _level: bool) -> bool {
        false
    }

    /// WFI's wake-up condition: an interrupt is pending for this vCPU.
    pub(super) fn irq_pending(&self, _vm: &Vm) -> bool {
        false
    }
}
