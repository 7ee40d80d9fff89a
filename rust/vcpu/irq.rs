// SPDX-License-Identifier: GPL-2.0

//! The vCPU's view of the VM's interrupt controller: the lines its timers drive and the
//! wake-up condition of WFI. Without an initialised in-kernel vGIC there is nowhere to
//! deliver a timer interrupt, and WFI does not block, as on KVM without an irqchip.

use super::Vcpu;
use crate::{vgic::Vgic, vm::Vm};

impl Vcpu {
    /// The VM's vGIC, once `CTRL_INIT` made it accept interrupts.
    fn irqchip<'a>(&self, vm: &'a Vm) -> Option<&'a Vgic> {
        vm.vgic().filter(|v| v.initialized())
    }

    /// Whether interrupts of this VM are delivered in the kernel.
    pub(super) fn has_irqchip(&self, vm: &Vm) -> bool {
        self.irqchip(vm).is_some()
    }

    /// Drives private interrupt `intid` (a PPI) of this vCPU to `level`; `false` if there
    /// is no vGIC to take it, so the caller gives the level again at the next entry.
    pub(super) fn set_ppi_level(&self, vm: &Vm, intid: u32, level: bool) -> bool {
        self.irqchip(vm)
            .is_some_and(|v| v.set_private_level(self.idx, intid, level).is_ok())
    }

    /// WFI's wake-up condition: an interrupt is pending for this vCPU.
    pub(super) fn irq_pending(&self, vm: &Vm) -> bool {
        self.irqchip(vm).is_some_and(|v| v.vcpu_has_pending(self))
    }
}
