// SPDX-License-Identifier: GPL-2.0

//! Interrupt delivery through the vGICv3 end to end, on both backends: the VMM raises an
//! SPI with `KVM_IRQ_LINE`, the guest takes it through its GICv3 CPU interface
//! (ICC_IAR1_EL1 reads the INTID), EOIs it and reports. On nVHE this runs through the
//! EL2 runtime's switch of the list registers, ICH_HCR_EL2, VMCR and the APRs.

use kvm_bindings as kb;
use kvm_bindings::{kvm_create_device, kvm_device_attr};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{check_eq, guest_code, host_runs_guests, run_or_skip, Outcome, TestResult};

const GICD_BASE: u64 = 0x0800_0000;
const GICR_BASE: u64 = 0x080a_0000;
const KVM_DEV_TYPE_ARM_VGIC_V3: u32 = kb::kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3;
const GRP_ADDR: u32 = kb::KVM_DEV_ARM_VGIC_GRP_ADDR;
const ADDR_TYPE_DIST: u64 = kb::KVM_VGIC_V3_ADDR_TYPE_DIST as u64;
const ADDR_TYPE_REDIST: u64 = kb::KVM_VGIC_V3_ADDR_TYPE_REDIST as u64;
const GRP_CTRL: u32 = kb::KVM_DEV_ARM_VGIC_GRP_CTRL;
const CTRL_INIT: u64 = kb::KVM_DEV_ARM_VGIC_CTRL_INIT as u64;
const SHUTDOWN: u32 = kb::KVM_SYSTEM_EVENT_SHUTDOWN;
const SPI: u32 = 40;
/// `KVM_IRQ_LINE`'s irq for `SPI`.
const IRQ_LINE_SPI: u32 = (kb::KVM_ARM_IRQ_TYPE_SPI << kb::KVM_ARM_IRQ_TYPE_SHIFT) | SPI;

// x9 = MMIO_BASE. Vectors at RAM + 0x800; GIC CPU interface on, the distributor set up
// for SPI 40 (group 1, priority 0xa0, routed to this vCPU, enabled); report "ready"
// (MMIO_BASE + 8), unmask IRQs and wait.
guest_code!(
    guest_wait_for_spi,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x4000, lsl #16",
    "add x0, x0, #0x800",
    "msr vbar_el1, x0",
    "isb",
    "mrs x0, s3_0_c12_c12_5",
    "orr x0, x0, #1",
    "msr s3_0_c12_c12_5, x0",
    "isb", // ICC_SRE_EL1.SRE
    "movz x0, #0xff",
    "msr s3_0_c4_c6_0, x0", // ICC_PMR_EL1
    "movz x0, #1",
    "msr s3_0_c12_c12_7, x0",
    "isb", // ICC_IGRPEN1_EL1
    "movz x1, #0x0800, lsl #16",
    "movz w0, #0x12",
    "str w0, [x1]", // GICD_CTLR: ARE, Grp1
    "movn w0, #0",
    "str w0, [x1, #0x84]", // IGROUPR1: group 1
    "movz w0, #0xa0",
    "str w0, [x1, #0x428]",   // IPRIORITYR10: INTID 40
    "str xzr, [x1, #0x6140]", // IROUTER40: Aff 0
    "movz w0, #0x100",
    "str w0, [x1, #0x104]", // ISENABLER1: INTID 40
    "movz x0, #1",
    "str x0, [x9, #8]",
    "msr daifclr, #2",
    "1: wfi",
    "b 1b"
);

// The IRQ vector (current EL, SPx): acknowledge, report the INTID, EOI, SYSTEM_OFF.
guest_code!(
    guest_irq_vector,
    "mrs x5, s3_0_c12_c12_0", // ICC_IAR1_EL1
    "str x5, [x9]",
    "msr s3_0_c12_c12_1, x5", // ICC_EOIR1_EL1
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn set_attr(
    dev: &kvm_ioctls::DeviceFd,
    group: u32,
    attr: u64,
    value: Option<u64>,
) -> Result<(), String> {
    let v = value.unwrap_or(0);
    let a = kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr: if value.is_some() {
            &v as *const u64 as u64
        } else {
            0
        },
    };
    dev.set_device_attr(&a)
        .map_err(|e| format!("SET_DEVICE_ATTR({group}, {attr}): {e}"))
}

fn spi_reaches_the_guest() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_wait_for_spi())?;
    vm.mem.write(0x800 + 0x280, guest_irq_vector());
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let mut cd = kvm_create_device {
        type_: KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = vm
        .vm
        .create_device(&mut cd)
        .map_err(|e| format!("KVM_CREATE_DEVICE(vGICv3): {e}"))?;
    set_attr(&gic, GRP_ADDR, ADDR_TYPE_DIST, Some(GICD_BASE))?;
    set_attr(&gic, GRP_ADDR, ADDR_TYPE_REDIST, Some(GICR_BASE))?;
    set_attr(&gic, GRP_CTRL, CTRL_INIT, None)?;

    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 8, 1u64.to_le_bytes().to_vec())
    );
    vm.vm
        .set_irq_line(IRQ_LINE_SPI, true)
        .map_err(|e| format!("KVM_IRQ_LINE: {e}"))?;
    check_eq!(
        run(&mut vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE, u64::from(SPI).to_le_bytes().to_vec())
    );
    vm.vm
        .set_irq_line(IRQ_LINE_SPI, false)
        .map_err(|e| format!("KVM_IRQ_LINE: {e}"))?;
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_vgic_delivery",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[("spi_reaches_the_guest", spi_reaches_the_guest)],
    )
}
