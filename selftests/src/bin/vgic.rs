// SPDX-License-Identifier: GPL-2.0

//! The in-kernel vGICv3: device creation and attributes with KVM's errors, the guest's
//! view of the distributor and redistributors, SPIs by KVM_IRQ_LINE taken through the
//! guest's vector table, level-triggered semantics, more pending interrupts than list
//! registers, IPIs between two vCPUs, the fast-path counters, and the register-state
//! groups a VMM saves and restores the GIC with (their errors, round trips, pending
//! state set through ISPENDR and taken by the guest, ICC_* state reaching the guest).

use kvm_bindings as kb;
use kvm_ioctls::VmFd;
use rkvm_selftests::vmm::nr::{
    KVM_CREATE_DEVICE, KVM_GET_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR, KVM_IRQFD, KVM_IRQ_LINE_STATUS,
    KVM_SET_DEVICE_ATTR, KVM_SET_GSI_ROUTING,
};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, run_or_skip, stat, vcpu_stats, Cases, Outcome,
    TestResult,
};
use std::os::fd::AsRawFd;

const SHUTDOWN: u32 = kb::KVM_SYSTEM_EVENT_SHUTDOWN;
const EINVAL: i32 = libc::EINVAL;

const KVM_CAP_IRQ_ROUTING: u64 = kb::KVM_CAP_IRQ_ROUTING as u64;
const IRQFD_DEASSIGN: u32 = kb::KVM_IRQFD_FLAG_DEASSIGN;
const IRQFD_RESAMPLE: u32 = kb::KVM_IRQFD_FLAG_RESAMPLE;
const KVM_CAP_IRQCHIP: u64 = kb::KVM_CAP_IRQCHIP as u64;
const KVM_CAP_DEVICE_CTRL: u64 = kb::KVM_CAP_DEVICE_CTRL as u64;
const KVM_CAP_IRQFD: u64 = kb::KVM_CAP_IRQFD as u64;
const KVM_CAP_IRQFD_RESAMPLE: u64 = kb::KVM_CAP_IRQFD_RESAMPLE as u64;

const VGIC_V2: u32 = kb::kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2;
const VGIC_V3: u32 = kb::kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3;
const CREATE_TEST: u32 = kb::KVM_CREATE_DEVICE_TEST;
const GRP_ADDR: u32 = kb::KVM_DEV_ARM_VGIC_GRP_ADDR;
const GRP_DIST_REGS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
const GRP_NR_IRQS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_NR_IRQS;
const GRP_CTRL: u32 = kb::KVM_DEV_ARM_VGIC_GRP_CTRL;
const GRP_REDIST_REGS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
const GRP_CPU_SYSREGS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
const GRP_LEVEL_INFO: u32 = kb::KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO;
const ADDR_DIST: u64 = kb::KVM_VGIC_V3_ADDR_TYPE_DIST as u64;
const ADDR_REDIST: u64 = kb::KVM_VGIC_V3_ADDR_TYPE_REDIST as u64;
const ADDR_REDIST_REGION: u64 = kb::KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION as u64;
const CTRL_INIT: u64 = kb::KVM_DEV_ARM_VGIC_CTRL_INIT as u64;
const CTRL_SAVE_PENDING_TABLES: u64 = kb::KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES as u64;

/// QEMU `virt`'s layout.
const DIST: u64 = 0x0800_0000;
const REDIST: u64 = 0x080a_0000;
/// Where guests leave their results, as an offset into guest RAM.
const RESULTS: usize = 0x8000;

fn create_device(vm: &VmFd, ty: u32, flags: u32) -> Result<i32, i32> {
    let mut cd = kb::kvm_create_device {
        type_: ty,
        fd: u32::MAX,
        flags,
    };
    ioctl_with(vm.as_raw_fd(), KVM_CREATE_DEVICE, &mut cd).map(|_| cd.fd as i32)
}

fn attr_ioctl(fd: i32, cmd: u64, group: u32, attr: u64, value: &mut u64) -> Result<i32, i32> {
    let mut a = kb::kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr: value as *mut u64 as u64,
    };
    ioctl_with(fd, cmd, &mut a)
}

fn set_attr(fd: i32, group: u32, attr: u64, value: u64) -> Result<i32, i32> {
    let mut v = value;
    attr_ioctl(fd, KVM_SET_DEVICE_ATTR, group, attr, &mut v)
}

fn get_attr(fd: i32, group: u32, attr: u64) -> Result<u64, i32> {
    let mut v = 0;
    attr_ioctl(fd, KVM_GET_DEVICE_ATTR, group, attr, &mut v).map(|_| v)
}

fn has_attr(fd: i32, group: u32, attr: u64) -> Result<i32, i32> {
    let mut v = 0;
    attr_ioctl(fd, KVM_HAS_DEVICE_ATTR, group, attr, &mut v)
}

fn irq_line(vm: &VmFd, irq: u32, level: bool) -> Result<i32, i32> {
    vm.set_irq_line(irq, level)
        .map(|()| 0)
        .map_err(|e| e.errno())
}

fn irqfd(vm: &VmFd, fd: i32, gsi: u32, flags: u32, resamplefd: i32) -> Result<i32, i32> {
    let mut a = kb::kvm_irqfd {
        fd: fd as u32,
        gsi,
        flags,
        resamplefd: resamplefd as u32,
        ..Default::default()
    };
    ioctl_with(vm.as_raw_fd(), KVM_IRQFD, &mut a)
}

fn eventfd() -> Result<i32, String> {
    // SAFETY: creates a new descriptor.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

fn eventfd_write(fd: i32) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from a local.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// The counter of a non-blocking eventfd (0 when it was not signalled).
fn eventfd_read(fd: i32) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a local.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

fn spi(n: u32) -> u32 {
    (1 << 24) | n
}

fn ppi(vcpu: u32, n: u32) -> u32 {
    (2 << 24) | (vcpu << 16) | n
}

fn close(fd: i32) {
    // SAFETY: a descriptor this test owns.
    unsafe { libc::close(fd) };
}

/// An ioctl outcome as `Cases::errno` takes it.
fn rc<T>(r: Result<T, i32>) -> Result<i32, i32> {
    r.map(|_| 0)
}

fn e<T: std::fmt::Debug>(what: &str, r: Result<T, i32>) -> Result<T, String> {
    r.map_err(|err| format!("{what}: {}", rkvm_selftests::errno_name(err)))
}

/// A VM with `nr_vcpus` vCPUs (vCPU n starts at `pcs[n]`) and a vGICv3 set up in QEMU's
/// order: vCPUs, device, NR_IRQS, CTRL_INIT, then the addresses.
fn gic_vm(
    code: &[u8],
    pcs: &[u64],
    nr_irqs: u64,
) -> Result<(TestVm, Vec<kvm_ioctls::VcpuFd>, i32), String> {
    let vm = TestVm::new(1 << 20, code)?;
    let mut vcpus = Vec::new();
    for (i, &pc) in pcs.iter().enumerate() {
        vcpus.push(vm.vcpu(i as u64, pc, 0)?);
    }
    let gic = e("create vgic", create_device(&vm.vm, VGIC_V3, 0))?;
    e("NR_IRQS", set_attr(gic, GRP_NR_IRQS, 0, nr_irqs))?;
    e("CTRL_INIT", set_attr(gic, GRP_CTRL, CTRL_INIT, 0))?;
    e("DIST", set_attr(gic, GRP_ADDR, ADDR_DIST, DIST))?;
    e("REDIST", set_attr(gic, GRP_ADDR, ADDR_REDIST, REDIST))?;
    Ok((vm, vcpus, gic))
}

// Powers the VM off at once: a KVM_RUN expected to fail that runs anyway ends quickly.
guest_code!(
    guest_off,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn setup_errors() -> TestResult {
    let kvm = kvm()?;
    let mut c = Cases::new();
    c.eq(
        "CHECK_EXTENSION(IRQCHIP)",
        kvm.check_extension_raw(KVM_CAP_IRQCHIP),
        1,
    );
    c.eq(
        "CHECK_EXTENSION(DEVICE_CTRL)",
        kvm.check_extension_raw(KVM_CAP_DEVICE_CTRL),
        1,
    );
    c.eq(
        "CHECK_EXTENSION(IRQFD)",
        kvm.check_extension_raw(KVM_CAP_IRQFD),
        1,
    );
    c.eq(
        "CHECK_EXTENSION(IRQFD_RESAMPLE)",
        kvm.check_extension_raw(KVM_CAP_IRQFD_RESAMPLE),
        1,
    );

    // kvmtool's order: device and addresses before any vCPU exists.
    let vm = TestVm::new(1 << 20, guest_off())?;
    let v = &vm.vm;
    c.eq(
        "test-create v3",
        create_device(v, VGIC_V3, CREATE_TEST),
        Ok(u32::MAX as i32),
    );
    c.errno(
        "test-create v2",
        rc(create_device(v, VGIC_V2, CREATE_TEST)),
        libc::ENODEV,
    );
    c.errno("create v2", create_device(v, VGIC_V2, 0), libc::ENODEV);
    c.errno(
        "create type 1 (FSL MPIC)",
        create_device(v, 1, 0),
        libc::ENODEV,
    );
    c.errno(
        "create type 0x1000",
        create_device(v, 0x1000, 0),
        libc::ENODEV,
    );
    let gic = e("create v3", create_device(v, VGIC_V3, 0))?;
    c.errno(
        "create v3 twice",
        create_device(v, VGIC_V3, 0),
        libc::EEXIST,
    );
    for (what, group, attr, ok) in [
        ("HAS ADDR DIST", GRP_ADDR, ADDR_DIST, true),
        ("HAS ADDR REDIST", GRP_ADDR, ADDR_REDIST, true),
        ("HAS ADDR REDIST_REGION", GRP_ADDR, ADDR_REDIST_REGION, true),
        ("HAS ADDR v2 DIST", GRP_ADDR, 0, false),
        ("HAS NR_IRQS", GRP_NR_IRQS, 0, true),
        ("HAS CTRL_INIT", GRP_CTRL, CTRL_INIT, true),
        (
            "HAS SAVE_PENDING_TABLES",
            GRP_CTRL,
            CTRL_SAVE_PENDING_TABLES,
            true,
        ),
        ("HAS CPU_REGS (GICv2)", 2, 0, false),
        ("HAS LEVEL_INFO", GRP_LEVEL_INFO, 0, true),
        ("HAS group 99", 99, 0, false),
    ] {
        let got = has_attr(gic, group, attr);
        if ok {
            c.eq(what, got, Ok(0));
        } else {
            c.errno(what, got, libc::ENXIO);
        }
    }
    // The register groups name a vCPU (vCPU 0 for the distributor): none exists yet.
    c.errno(
        "HAS DIST_REGS GICD_CTLR without vCPUs",
        has_attr(gic, GRP_DIST_REGS, 0),
        EINVAL,
    );
    c.errno(
        "GET DIST_REGS GICD_IIDR without vCPUs",
        rc(get_attr(gic, GRP_DIST_REGS, 8)),
        EINVAL,
    );
    c.eq(
        "GET DIST unset",
        get_attr(gic, GRP_ADDR, ADDR_DIST),
        Ok(u64::MAX),
    );
    c.errno(
        "SET DIST unaligned",
        set_attr(gic, GRP_ADDR, ADDR_DIST, 0x3fff_1000),
        EINVAL,
    );
    c.errno(
        "SET DIST beyond the IPA space",
        set_attr(gic, GRP_ADDR, ADDR_DIST, 1 << 52),
        libc::E2BIG,
    );
    c.errno(
        "SET REDIST_REGION count 0",
        set_attr(gic, GRP_ADDR, ADDR_REDIST_REGION, 0x3ffb_0000),
        EINVAL,
    );
    c.errno(
        "SET REDIST_REGION flags",
        set_attr(
            gic,
            GRP_ADDR,
            ADDR_REDIST_REGION,
            (1 << 52) | (1 << 12) | 0x3ffb_0000,
        ),
        EINVAL,
    );
    c.errno(
        "SET REDIST_REGION index 1 first",
        set_attr(
            gic,
            GRP_ADDR,
            ADDR_REDIST_REGION,
            (1 << 52) | 1 | 0x3ffb_0000,
        ),
        EINVAL,
    );
    c.errno(
        "GET REDIST_REGION 0 unset",
        rc(get_attr(gic, GRP_ADDR, ADDR_REDIST_REGION)),
        libc::ENOENT,
    );
    c.eq(
        "SET REDIST (no vCPU yet)",
        set_attr(gic, GRP_ADDR, ADDR_REDIST, 0x3ffb_0000),
        Ok(0),
    );
    c.errno(
        "SET REDIST twice",
        set_attr(gic, GRP_ADDR, ADDR_REDIST, 0x5000_0000),
        libc::EEXIST,
    );
    c.eq(
        "SET DIST",
        set_attr(gic, GRP_ADDR, ADDR_DIST, 0x3fff_0000),
        Ok(0),
    );
    c.errno(
        "SET DIST twice",
        set_attr(gic, GRP_ADDR, ADDR_DIST, 0x3ffe_0000),
        libc::EEXIST,
    );
    c.eq(
        "GET DIST",
        get_attr(gic, GRP_ADDR, ADDR_DIST),
        Ok(0x3fff_0000),
    );
    c.eq(
        "GET REDIST",
        get_attr(gic, GRP_ADDR, ADDR_REDIST),
        Ok(0x3ffb_0000),
    );
    c.errno(
        "GET with a bad address",
        {
            let mut a = kb::kvm_device_attr {
                flags: 0,
                group: GRP_NR_IRQS,
                attr: 0,
                addr: 0,
            };
            ioctl_with(gic, KVM_GET_DEVICE_ATTR, &mut a)
        },
        libc::EFAULT,
    );
    // Three vCPUs: their redistributors (3 x 128 KiB from 0x3ffb0000) run into the
    // distributor, which only the first KVM_RUN can tell.
    let mut vcpus = Vec::new();
    for i in 0..3 {
        vcpus.push(vm.vcpu(i, MEM_BASE, 0)?);
    }
    // KVM checks the layout before the init: the overlap is found first.
    c.errno(
        "KVM_RUN before CTRL_INIT, frames overlapping",
        rc(run_errno(&mut vcpus[0], 0)),
        EINVAL,
    );
    c.errno(
        "IRQ_LINE before CTRL_INIT",
        irq_line(v, spi(40), true),
        libc::EBUSY,
    );
    for (nr, want) in [(32, EINVAL), (100, EINVAL), (1024, EINVAL)] {
        c.errno(
            &format!("NR_IRQS {nr}"),
            set_attr(gic, GRP_NR_IRQS, 0, nr),
            want,
        );
    }
    c.eq("NR_IRQS 128", set_attr(gic, GRP_NR_IRQS, 0, 128), Ok(0));
    c.errno(
        "NR_IRQS twice",
        set_attr(gic, GRP_NR_IRQS, 0, 256),
        libc::EBUSY,
    );
    c.eq(
        "GET NR_IRQS",
        get_attr(gic, GRP_NR_IRQS, 0).map(|v| v as u32),
        Ok(128),
    );
    c.eq("CTRL_INIT", set_attr(gic, GRP_CTRL, CTRL_INIT, 0), Ok(0));
    c.eq(
        "CTRL_INIT again",
        set_attr(gic, GRP_CTRL, CTRL_INIT, 0),
        Ok(0),
    );
    // No ITS, so no LPIs: nothing to save, and success (Firecracker saves every time).
    c.eq(
        "CTRL SAVE_PENDING_TABLES",
        set_attr(gic, GRP_CTRL, CTRL_SAVE_PENDING_TABLES, 0),
        Ok(0),
    );
    c.errno(
        "KVM_CREATE_VCPU after CTRL_INIT",
        rc(vm.vm.create_vcpu(5).map_err(|e| e.errno())),
        libc::EBUSY,
    );
    c.errno(
        "KVM_RUN with overlapping frames",
        rc(run_errno(&mut vcpus[0], 0)),
        EINVAL,
    );
    c.errno("IRQ_LINE SPI 31", irq_line(v, spi(31), true), EINVAL);
    c.errno("IRQ_LINE SPI 128", irq_line(v, spi(128), true), EINVAL);
    c.eq("IRQ_LINE SPI 127", irq_line(v, spi(127), true), Ok(0));
    c.errno("IRQ_LINE PPI 15", irq_line(v, ppi(0, 15), true), EINVAL);
    c.errno("IRQ_LINE PPI 32", irq_line(v, ppi(0, 32), true), EINVAL);
    c.errno(
        "IRQ_LINE PPI of vCPU 7",
        irq_line(v, ppi(7, 27), true),
        EINVAL,
    );
    c.eq(
        "IRQ_LINE PPI 27 of vCPU 2",
        irq_line(v, ppi(2, 27), true),
        Ok(0),
    );
    c.errno(
        "IRQ_LINE CPU type with a vGIC",
        irq_line(v, 0, true),
        libc::ENXIO,
    );
    let mut status = [spi(100), 1u32];
    c.eq(
        "IRQ_LINE_STATUS SPI 100",
        ioctl_with(v.as_raw_fd(), KVM_IRQ_LINE_STATUS, &mut status),
        Ok(0),
    );
    c.eq(
        "IRQ_LINE_STATUS leaves the struct as given (arm64)",
        status,
        [spi(100), 1],
    );
    c.errno(
        "IRQ_LINE_STATUS SPI 31",
        ioctl_with(v.as_raw_fd(), KVM_IRQ_LINE_STATUS, &mut [spi(31), 1u32]),
        EINVAL,
    );
    c.errno("IRQ_LINE type 3", irq_line(v, 3 << 24, true), EINVAL);
    c.errno(
        "unknown ioctl on the device fd",
        {
            // SAFETY: an ioctl without argument.
            unsafe { ioctl_raw(gic, nr::KVM_GET_API_VERSION, 0) }
        },
        libc::ENOTTY,
    );
    close(gic);

    // The first KVM_RUN's checks in KVM's order: redistributors, distributor, init.
    let vm2 = TestVm::new(1 << 20, guest_off())?;
    let mut vcpu = vm2.vcpu(0, MEM_BASE, 0)?;
    c.errno(
        "IRQ_LINE without a vGIC",
        irq_line(&vm2.vm, spi(40), true),
        libc::ENXIO,
    );
    let gic = e("create v3", create_device(&vm2.vm, VGIC_V3, 0))?;
    c.errno(
        "KVM_RUN without addresses",
        rc(run_errno(&mut vcpu, 0)),
        libc::ENXIO,
    );
    c.eq(
        "REDIST_REGION 0",
        set_attr(gic, GRP_ADDR, ADDR_REDIST_REGION, (1 << 52) | REDIST),
        Ok(0),
    );
    c.errno(
        "REDIST after REDIST_REGION",
        set_attr(gic, GRP_ADDR, ADDR_REDIST, 0x0900_0000),
        EINVAL,
    );
    c.errno(
        "REDIST_REGION 1 overlapping",
        set_attr(
            gic,
            GRP_ADDR,
            ADDR_REDIST_REGION,
            (1 << 52) | 1 | (REDIST + 0x1_0000),
        ),
        EINVAL,
    );
    c.eq(
        "GET REDIST_REGION 0",
        {
            let mut v = 0u64;
            attr_ioctl(
                gic,
                KVM_GET_DEVICE_ATTR,
                GRP_ADDR,
                ADDR_REDIST_REGION,
                &mut v,
            )
            .map(|_| v)
        },
        Ok((1 << 52) | REDIST),
    );
    c.errno(
        "KVM_RUN without a distributor",
        rc(run_errno(&mut vcpu, 0)),
        libc::ENXIO,
    );
    c.eq("DIST", set_attr(gic, GRP_ADDR, ADDR_DIST, DIST), Ok(0));
    c.errno(
        "REDIST_REGION 1 over the distributor",
        set_attr(gic, GRP_ADDR, ADDR_REDIST_REGION, (1 << 52) | 1 | DIST),
        EINVAL,
    );
    c.errno(
        "KVM_RUN before CTRL_INIT",
        rc(run_errno(&mut vcpu, 0)),
        libc::EBUSY,
    );
    c.eq(
        "CTRL_INIT (defaults)",
        set_attr(gic, GRP_CTRL, CTRL_INIT, 0),
        Ok(0),
    );
    c.eq(
        "GET NR_IRQS default",
        get_attr(gic, GRP_NR_IRQS, 0).map(|v| v as u32),
        Ok(256),
    );
    c.eq(
        "KVM_RUN once set up",
        run(&mut vcpu, 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    close(gic);

    // No vGIC once a vCPU has run.
    let vm3 = TestVm::new(1 << 20, guest_off())?;
    let mut vcpu = vm3.vcpu(0, MEM_BASE, 0)?;
    // A KVM_RUN that returns at once (immediate_exit) still counts as the first run.
    vcpu.set_kvm_immediate_exit(1);
    let _ = run_errno(&mut vcpu, 0);
    vcpu.set_kvm_immediate_exit(0);
    c.errno(
        "create after a KVM_RUN",
        create_device(&vm3.vm, VGIC_V3, 0),
        libc::EBUSY,
    );
    c.finish()
}

// Reads the distributor's and redistributors' ID and configuration registers and a few
// read-after-write cases; leaves the values at RESULTS.
guest_code!(
    guest_registers,
    "movz x1, #0x0800, lsl #16",
    "movz x2, #0x080a, lsl #16",
    "movz x9, #0x4000, lsl #16",
    "add x9, x9, #0x8, lsl #12",
    "ldr w3, [x1, #4]",
    "str x3, [x9, #0]",
    "ldr w3, [x1, #8]",
    "str x3, [x9, #8]",
    "movz x4, #0xffe8",
    "ldr w3, [x1, x4]",
    "str x3, [x9, #16]",
    "ldr x3, [x2, #8]",
    "str x3, [x9, #24]",
    "movz x5, #0x080c, lsl #16",
    "ldr x3, [x5, #8]",
    "str x3, [x9, #32]",
    "ldr w3, [x2, x4]",
    "str x3, [x9, #40]",
    "ldr w3, [x2, #0x14]",
    "str x3, [x9, #48]",
    "mov w3, #0xa5",
    "strb w3, [x1, #0x428]",
    "ldrb w3, [x1, #0x428]",
    "str x3, [x9, #56]",
    "mov w3, #0x100",
    "str w3, [x1, #0x104]",
    "ldr w3, [x1, #0x104]",
    "str x3, [x9, #64]",
    "add x6, x2, #0x10, lsl #12",
    "ldr w3, [x6, #0x100]",
    "str x3, [x9, #72]",
    "mov w3, #2",
    "str w3, [x1]",
    "ldr w3, [x1]",
    "str x3, [x9, #80]",
    "movz x4, #0x6140",
    "mov x3, #1",
    "str x3, [x1, x4]",
    "ldr x3, [x1, x4]",
    "str x3, [x9, #88]",
    "ldr w3, [x5, #4]",
    "str x3, [x9, #96]",
    "mrs x3, s3_0_c12_c12_5",
    "str x3, [x9, #104]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn guest_reads_gic_registers() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_registers(), &[MEM_BASE, MEM_BASE], 128)?;
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    close(gic);
    let r = |i: usize| vm.mem.read_u64(RESULTS + 8 * i);
    let mut c = Cases::new();
    c.eq(
        "GICD_TYPER (4 lines of 32, 10 ID bits)",
        r(0),
        (9 << 19) | 3,
    );
    c.eq("GICD_IIDR", r(1), 0x4b00_343b);
    c.eq("GICD_PIDR2.ArchRev", r(2) & 0xf0, 0x30);
    c.eq("GICR0_TYPER (not last)", r(3), 0);
    c.eq(
        "GICR1_TYPER (affinity 1, processor 1, last)",
        r(4),
        (1 << 32) | (1 << 8) | (1 << 4),
    );
    c.eq("GICR_PIDR2.ArchRev", r(5) & 0xf0, 0x30);
    c.eq("GICR_WAKER", r(6), 0);
    c.eq("IPRIORITYR byte (5 bits)", r(7), 0xa0);
    c.eq("ISENABLER1 after setting SPI 40", r(8), 0x100);
    c.eq("GICR_ISENABLER0 (SGIs enabled at reset)", r(9), 0xffff);
    c.eq("GICD_CTLR (EnableGrp1, ARE, DS)", r(10), 0x52);
    c.eq("GICD_IROUTER40", r(11), 1);
    c.eq("GICR_IIDR (no revision, as KVM)", r(12), 0x4b00_043b);
    c.eq("ICC_SRE_EL1", r(13), 7);
    c.finish()
}

// Sets up the distributor, CPU interface and vector table, unmasks IRQs, reports ready
// (MMIO write to MMIO_BASE), waits for the IRQ handler and reports the INTID it took.
guest_code!(
    guest_spi_vectored,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "mov w2, #0x100",
    "str w2, [x1, #0x104]",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "movz x3, #0x4000, lsl #16",
    "add x3, x3, #0x800",
    "msr vbar_el1, x3",
    "isb",
    "mov x20, #0",
    "mov x21, #0",
    "msr daifclr, #2",
    "movz x19, #0x1000, lsl #16",
    "str x20, [x19]",
    "1: cbz x20, 1b",
    "str x21, [x19, #8]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// The IRQ vector (VBAR_EL1 + 0x280, current EL with SP_ELx): acknowledge, EOI, count.
guest_code!(
    guest_irq_vector,
    "mrs x0, s3_0_c12_c12_0",
    "msr s3_0_c12_c12_1, x0",
    "mov x21, x0",
    "add x20, x20, #1",
    "eret"
);

fn spi_by_irq_line_reaches_the_vector() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_spi_vectored(), &[MEM_BASE], 128)?;
    vm.mem.write(0xa80, guest_irq_vector());
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    // kvmtool's pulse: high, then low.
    e("IRQ_LINE high", irq_line(&vm.vm, spi(40), true))?;
    e("IRQ_LINE low", irq_line(&vm.vm, spi(40), false))?;
    check_eq!(run_to_write(&mut vcpus[0])?, (MMIO_BASE + 8, 40));
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    let s = vcpu_stats(0)?;
    println!("# stats: {s:?}");
    check!(
        stat(&s, "vgic_flush_slow") >= 1,
        "no slow flush for a pending SPI"
    );
    check!(
        stat(&s, "vgic_mmio") >= 2,
        "the distributor writes were not handled in the kernel"
    );
    // An edge interrupt's EOI needs no exit: its list register asks for no maintenance.
    check_eq!(stat(&s, "vgic_eoi_maintenance"), 0);
    close(gic);
    Ok(Outcome::Pass)
}

// SPI 41 level-sensitive: taken twice while the line stays high, then never again once
// the host lowers it (10,000 polls of ICC_IAR1_EL1).
guest_code!(
    guest_level,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "movz w2, #0xaaaa",
    "movk w2, #0xaaa2, lsl #16",
    "str w2, [x1, #0xc08]",
    "mov w2, #0x200",
    "str w2, [x1, #0x104]",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "str xzr, [x19]",
    "mov x22, #0",
    "2: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 2b",
    "msr s3_0_c12_c12_1, x0",
    "add x22, x22, #1",
    "cmp x22, #2",
    "b.ne 2b",
    "str x0, [x19, #8]",
    "movz x5, #10000",
    "mov x6, #0",
    "3: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 4f",
    "add x6, x6, #1",
    "msr s3_0_c12_c12_1, x0",
    "4: subs x5, x5, #1",
    "b.ne 3b",
    "str x6, [x19, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn level_interrupt_held_and_released() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_level(), &[MEM_BASE], 128)?;
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    e("IRQ_LINE high", irq_line(&vm.vm, spi(41), true))?;
    check_eq!(run_to_write(&mut vcpus[0])?, (MMIO_BASE + 8, 41));
    e("IRQ_LINE low", irq_line(&vm.vm, spi(41), false))?;
    check_eq!(run_to_write(&mut vcpus[0])?, (MMIO_BASE + 16, 0));
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    let s = vcpu_stats(0)?;
    println!("# stats: {s:?}");
    check!(
        stat(&s, "vgic_eoi_maintenance") >= 1,
        "the EOI of a held level interrupt caused no maintenance exit"
    );
    close(gic);
    Ok(Outcome::Pass)
}

// 20 SPIs (32-51) with priorities (19 - n) * 8: the guest takes them one by one and
// records the order at RESULTS.
guest_code!(
    guest_many,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "movz w2, #0xffff",
    "movk w2, #0xf, lsl #16",
    "str w2, [x1, #0x104]",
    "mov x3, #0",
    "add x4, x1, #0x420",
    "5: mov x5, #19",
    "sub x5, x5, x3",
    "lsl x5, x5, #3",
    "strb w5, [x4, x3]",
    "add x3, x3, #1",
    "cmp x3, #20",
    "b.ne 5b",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "movz x9, #0x4000, lsl #16",
    "add x9, x9, #0x8, lsl #12",
    "movz x19, #0x1000, lsl #16",
    "str xzr, [x19]",
    "mov x7, #0",
    "6: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 6b",
    "str x0, [x9, x7, lsl #3]",
    "msr s3_0_c12_c12_1, x0",
    "add x7, x7, #1",
    "cmp x7, #20",
    "b.ne 6b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn more_pending_than_list_registers() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_many(), &[MEM_BASE], 128)?;
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    for n in 32..52 {
        e("IRQ_LINE", irq_line(&vm.vm, spi(n), true))?;
        e("IRQ_LINE", irq_line(&vm.vm, spi(n), false))?;
    }
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    let order: Vec<u64> = (0..20).map(|i| vm.mem.read_u64(RESULTS + 8 * i)).collect();
    let want: Vec<u64> = (32..52).rev().collect();
    check_eq!(order, want);
    let s = vcpu_stats(0)?;
    println!("# stats: {s:?}");
    // With at most 16 list registers, 20 interrupts need a second flush, which the
    // underflow maintenance interrupt (or any other exit) triggers.
    check!(
        stat(&s, "vgic_flush_slow") >= 2,
        "one flush cannot hold 20 interrupts"
    );
    check!(
        stat(&s, "vgic_underflow") >= 1,
        "no underflow maintenance interrupt"
    );
    close(gic);
    Ok(Outcome::Pass)
}

// SPI 41 level-sensitive, fed by a resampling irqfd: taken once; after the EOI the line
// is low (the VMM did not signal again), so 10,000 polls find nothing.
guest_code!(
    guest_resample,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "movz w2, #0xaaaa",
    "movk w2, #0xaaa2, lsl #16",
    "str w2, [x1, #0xc08]",
    "mov w2, #0x200",
    "str w2, [x1, #0x104]",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "str xzr, [x19]",
    "2: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 2b",
    "msr s3_0_c12_c12_1, x0",
    "str x0, [x19, #8]",
    "movz x5, #10000",
    "mov x6, #0",
    "3: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 4f",
    "add x6, x6, #1",
    "msr s3_0_c12_c12_1, x0",
    "4: subs x5, x5, #1",
    "b.ne 3b",
    "str x6, [x19, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn irqfd_delivery() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_spi_vectored(), &[MEM_BASE], 128)?;
    vm.mem.write(0xa80, guest_irq_vector());
    let efd = eventfd()?;
    let other = eventfd()?;
    let mut c = Cases::new();
    c.errno("unknown flag", irqfd(&vm.vm, efd, 8, 4, 0), EINVAL);
    c.errno(
        "not an eventfd",
        irqfd(&vm.vm, vm.vm.as_raw_fd(), 8, 0, 0),
        EINVAL,
    );
    c.errno("closed fd", irqfd(&vm.vm, 999, 8, 0, 0), libc::EBADF);
    // Any GSI is accepted (one without a route delivers nothing), as KVM.
    c.eq("assign GSI 4096", irqfd(&vm.vm, other, 4096, 0, 0), Ok(0));
    c.eq(
        "deassign GSI 4096",
        irqfd(&vm.vm, other, 4096, IRQFD_DEASSIGN, 0),
        Ok(0),
    );
    c.eq(
        "deassign unknown",
        irqfd(&vm.vm, efd, 8, IRQFD_DEASSIGN, 0),
        Ok(0),
    );
    c.eq("assign GSI 8 (SPI 40)", irqfd(&vm.vm, efd, 8, 0, 0), Ok(0));
    c.errno(
        "same eventfd again",
        irqfd(&vm.vm, efd, 9, 0, 0),
        libc::EBUSY,
    );
    c.eq(
        "assign and deassign another",
        irqfd(&vm.vm, other, 10, 0, 0),
        Ok(0),
    );
    c.eq(
        "deassign it",
        irqfd(&vm.vm, other, 10, IRQFD_DEASSIGN, 0),
        Ok(0),
    );
    c.eq("assign it again", irqfd(&vm.vm, other, 10, 0, 0), Ok(0));
    match run(&mut vcpus[0], 0)? {
        Exit::MmioWrite(a, _) if a == MMIO_BASE => {}
        other => c.fail(format!("expected the ready write, got {other:?}")),
    }
    eventfd_write(efd);
    c.eq(
        "SPI taken",
        run_to_write(&mut vcpus[0])?,
        (MMIO_BASE + 8, 40),
    );
    c.eq(
        "shutdown",
        run(&mut vcpus[0], 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    close(gic);
    close(other);
    // The VM goes with its irqfds still assigned: they must be shut down with it.
    drop(vcpus);
    drop(vm);
    close(efd);

    // Resampling: a level interrupt held until the guest's EOI, then signalled back.
    let (vm, mut vcpus, gic) = gic_vm(guest_resample(), &[MEM_BASE], 128)?;
    let efd = eventfd()?;
    let rfd = eventfd()?;
    c.eq(
        "assign with resample",
        irqfd(&vm.vm, efd, 9, IRQFD_RESAMPLE, rfd),
        Ok(0),
    );
    c.eq(
        "ready",
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8]),
    );
    eventfd_write(efd);
    c.eq(
        "level SPI taken",
        run_to_write(&mut vcpus[0])?,
        (MMIO_BASE + 8, 41),
    );
    c.eq(
        "resample eventfd signalled after the EOI",
        eventfd_read(rfd),
        1,
    );
    c.eq(
        "no second delivery",
        run_to_write(&mut vcpus[0])?,
        (MMIO_BASE + 16, 0),
    );
    c.eq(
        "shutdown",
        run(&mut vcpus[0], 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.eq("deassign", irqfd(&vm.vm, efd, 9, IRQFD_DEASSIGN, 0), Ok(0));
    close(gic);
    close(efd);
    close(rfd);
    c.finish()
}

const ROUNDS: u64 = 1000;

// vCPU 0: sends SGI 1 to vCPU 1 and waits for SGI 2, 1,000 times; reports at MMIO_BASE.
guest_code!(
    guest_ping,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "movz x5, #1000",
    "mov x6, #0",
    "movz x7, #0x100, lsl #16",
    "orr x7, x7, #2",
    "1: msr s3_0_c12_c11_5, x7",
    "2: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 2b",
    "msr s3_0_c12_c12_1, x0",
    "cmp x0, #2",
    "b.ne 9f",
    "add x6, x6, #1",
    "subs x5, x5, #1",
    "b.ne 1b",
    "str x6, [x19]",
    "b .",
    "9: str x0, [x19, #0x18]",
    "b ."
);

// vCPU 1: waits for SGI 1 and answers with SGI 2 to vCPU 0; reports at MMIO_BASE + 0x10.
guest_code!(
    guest_pong,
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "movz x5, #1000",
    "mov x6, #0",
    "movz x7, #0x200, lsl #16",
    "orr x7, x7, #1",
    "1: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 1b",
    "msr s3_0_c12_c12_1, x0",
    "cmp x0, #1",
    "b.ne 9f",
    "add x6, x6, #1",
    "msr s3_0_c12_c11_5, x7",
    "subs x5, x5, #1",
    "b.ne 1b",
    "str x6, [x19, #0x10]",
    "b .",
    "9: str x0, [x19, #0x18]",
    "b ."
);

fn ipi_ping_pong() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_ping())?;
    vm.mem.write(0x4000, guest_pong());
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE + 0x4000, 0)?;
    let gic = e("create vgic", create_device(&vm.vm, VGIC_V3, 0))?;
    e("DIST", set_attr(gic, GRP_ADDR, ADDR_DIST, DIST))?;
    e(
        "REDIST_REGION",
        set_attr(gic, GRP_ADDR, ADDR_REDIST_REGION, (2 << 52) | REDIST),
    )?;
    e("CTRL_INIT", set_attr(gic, GRP_CTRL, CTRL_INIT, 0))?;
    let start = std::time::Instant::now();
    let (r0, r1) = std::thread::scope(|s| {
        let t1 = s.spawn(move || run_to_write(&mut v1));
        let r0 = run_to_write(&mut v0);
        (
            r0,
            t1.join()
                .unwrap_or_else(|_| Err("vCPU 1 thread panicked".into())),
        )
    });
    println!("# {ROUNDS} round trips in {:?}", start.elapsed());
    check_eq!(r0?, (MMIO_BASE, ROUNDS));
    check_eq!(r1?, (MMIO_BASE + 0x10, ROUNDS));
    let s0 = vcpu_stats(0)?;
    let s1 = vcpu_stats(1)?;
    println!("# vCPU 0: {s0:?}");
    check!(
        stat(&s0, "vgic_sgi") >= ROUNDS && stat(&s1, "vgic_sgi") >= ROUNDS,
        "SGIs not counted"
    );
    close(gic);
    Ok(Outcome::Pass)
}

// 10,000 PSCI_VERSION calls, then SYSTEM_OFF: exits with nothing in flight.
guest_code!(
    guest_hypercalls,
    "movz x5, #10000",
    "1: movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "subs x5, x5, #1",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn fast_path_when_nothing_is_in_flight() -> TestResult {
    let (_vm, mut vcpus, gic) = gic_vm(guest_hypercalls(), &[MEM_BASE], 128)?;
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    let s = vcpu_stats(0)?;
    println!("# stats: {s:?}");
    check!(
        stat(&s, "vgic_flush_fast") >= 10_000,
        "only {} fast flushes",
        stat(&s, "vgic_flush_fast")
    );
    check_eq!(stat(&s, "vgic_flush_slow"), 0);
    check_eq!(stat(&s, "vgic_sync_slow"), 0);
    check_eq!(stat(&s, "vgic_sync_fast"), stat(&s, "vgic_flush_fast"));
    close(gic);
    Ok(Outcome::Pass)
}

/// A register-state attribute: the vCPU's affinity (Aff3.Aff2.Aff1.Aff0) and an offset.
fn reg(aff: u64, offset: u64) -> u64 {
    (aff << 32) | offset
}

/// `CPU_SYSREGS` attribute of an ICC register (Op0 3, Op1 0).
const fn icc(crn: u64, crm: u64, op2: u64) -> u64 {
    (3 << 14) | (crn << 7) | (crm << 3) | op2
}
const ICC_PMR: u64 = icc(4, 6, 0);
const ICC_AP0R1: u64 = icc(12, 8, 5);
const ICC_AP1R0: u64 = icc(12, 9, 0);
const ICC_BPR1: u64 = icc(12, 12, 3);
const ICC_CTLR: u64 = icc(12, 12, 4);
const ICC_SRE: u64 = icc(12, 12, 5);
const ICC_IGRPEN1: u64 = icc(12, 12, 7);
/// ICH_HCR_EL2 (Op1 4): hidden without nested virtualisation.
const ICH_HCR: u64 = (3 << 14) | (4 << 11) | (12 << 7) | (11 << 3);

const GICD_CTLR: u64 = 0x0;
const GICD_IIDR: u64 = 0x8;
const GICD_TYPER2: u64 = 0xc;
const GICD_STATUSR: u64 = 0x10;
const GICD_ISENABLER1: u64 = 0x104;
const GICD_ISPENDR1: u64 = 0x204;
const GICD_ICPENDR1: u64 = 0x284;
const GICD_ISACTIVER1: u64 = 0x304;
const GICD_IPRIORITYR40: u64 = 0x428;
const GICD_ICFGR2: u64 = 0xc08;
const GICD_IROUTER40: u64 = 0x6000 + 40 * 8;
const GICR_CTLR: u64 = 0x0;
const GICR_IIDR: u64 = 0x4;
const GICR_TYPER: u64 = 0x8;
const GICR_ISENABLER0: u64 = 0x1_0100;
const GICR_ISPENDR0: u64 = 0x1_0200;
const GICR_IPRIORITYR4: u64 = 0x1_0410;

// Sleeps in WFI until an interrupt is pending (IRQs masked), then powers off.
guest_code!(
    guest_wfi_then_off,
    "movz x1, #0x0800, lsl #16",
    "mov w2, #2",
    "str w2, [x1]",
    "mov w2, #0x100",
    "str w2, [x1, #0x104]",
    "mov x2, #0xff",
    "msr s3_0_c4_c6_0, x2",
    "mov x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "1: wfi",
    "mrs x3, isr_el1",
    "cbz x3, 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// The register-state groups' errors: KVM's order (vCPU, value, busy, init, register).
fn register_state_errors() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_wfi_then_off())?;
    let mut vcpus = vec![vm.vcpu(0, MEM_BASE, 0)?, vm.vcpu(1, MEM_BASE, 0)?];
    let gic = e("create vgic", create_device(&vm.vm, VGIC_V3, 0))?;
    let mut c = Cases::new();
    // Before CTRL_INIT: unknown vCPUs are EINVAL, known ones EBUSY, except the
    // distributor's ID registers, which size the vGIC.
    c.errno(
        "GET GICR_TYPER of vCPU 7",
        rc(get_attr(gic, GRP_REDIST_REGS, reg(7, GICR_TYPER))),
        EINVAL,
    );
    c.errno(
        "HAS GICR_TYPER of vCPU 7",
        has_attr(gic, GRP_REDIST_REGS, reg(7, GICR_TYPER)),
        EINVAL,
    );
    c.errno(
        "GET GICR_TYPER before CTRL_INIT",
        rc(get_attr(gic, GRP_REDIST_REGS, reg(1, GICR_TYPER))),
        libc::EBUSY,
    );
    c.errno(
        "GET ICC_PMR before CTRL_INIT",
        rc(get_attr(gic, GRP_CPU_SYSREGS, reg(1, ICC_PMR))),
        libc::EBUSY,
    );
    c.errno(
        "GET LEVEL_INFO before CTRL_INIT",
        rc(get_attr(gic, GRP_LEVEL_INFO, 32)),
        libc::EBUSY,
    );
    c.eq(
        "GET GICD_IIDR before CTRL_INIT",
        get_attr(gic, GRP_DIST_REGS, GICD_IIDR),
        Ok(0x4b00_343b),
    );
    c.errno(
        "SET GICD_IIDR revision 1",
        set_attr(gic, GRP_DIST_REGS, GICD_IIDR, 0x4b00_143b),
        EINVAL,
    );
    c.errno(
        "SET GICD_IIDR other product",
        set_attr(gic, GRP_DIST_REGS, GICD_IIDR, 0x4c00_343b),
        EINVAL,
    );
    c.eq(
        "SET GICD_IIDR revision 2",
        set_attr(gic, GRP_DIST_REGS, GICD_IIDR, 0x4b00_243b),
        Ok(0),
    );
    c.eq(
        "GET GICD_IIDR revision 2",
        get_attr(gic, GRP_DIST_REGS, GICD_IIDR),
        Ok(0x4b00_243b),
    );
    c.errno(
        "SET GICD_TYPER2.nASSGIcap",
        set_attr(gic, GRP_DIST_REGS, GICD_TYPER2, 1 << 8),
        EINVAL,
    );
    c.eq(
        "SET GICD_TYPER2 0",
        set_attr(gic, GRP_DIST_REGS, GICD_TYPER2, 0),
        Ok(0),
    );
    c.errno(
        "GET GICD_CTLR before CTRL_INIT",
        rc(get_attr(gic, GRP_DIST_REGS, GICD_CTLR)),
        libc::EBUSY,
    );
    // HAS: registers by offset and INTID count (32 before NR_IRQS), sysregs by encoding.
    for (what, group, attr, want) in [
        ("HAS GICD_CTLR", GRP_DIST_REGS, GICD_CTLR, 0),
        ("HAS GICD_STATUSR", GRP_DIST_REGS, GICD_STATUSR, 0),
        ("HAS GICD misaligned", GRP_DIST_REGS, 2, libc::ENXIO),
        ("HAS GICD hole at 0x20", GRP_DIST_REGS, 0x20, libc::ENXIO),
        (
            "HAS GICD_ISPENDR1 before NR_IRQS",
            GRP_DIST_REGS,
            GICD_ISPENDR1,
            libc::ENXIO,
        ),
        (
            "HAS GICR_TYPER of vCPU 1",
            GRP_REDIST_REGS,
            reg(1, GICR_TYPER),
            0,
        ),
        (
            "HAS GICR_ISPENDR0",
            GRP_REDIST_REGS,
            reg(1, GICR_ISPENDR0),
            0,
        ),
        (
            "HAS GICR hole at 0x1_0204",
            GRP_REDIST_REGS,
            reg(1, 0x1_0204),
            libc::ENXIO,
        ),
        ("HAS ICC_PMR_EL1", GRP_CPU_SYSREGS, reg(1, ICC_PMR), 0),
        ("HAS ICC_AP0R1_EL1", GRP_CPU_SYSREGS, ICC_AP0R1, 0),
        ("HAS ICH_HCR_EL2", GRP_CPU_SYSREGS, ICH_HCR, libc::ENXIO),
        (
            "HAS ICC_PMR_EL1 of vCPU 7",
            GRP_CPU_SYSREGS,
            reg(7, ICC_PMR),
            EINVAL,
        ),
        ("HAS LEVEL_INFO line levels", GRP_LEVEL_INFO, 64, 0),
        (
            "HAS LEVEL_INFO kind 1",
            GRP_LEVEL_INFO,
            1 << 10,
            libc::ENXIO,
        ),
    ] {
        let got = has_attr(gic, group, attr);
        if want == 0 {
            c.eq(what, got, Ok(0));
        } else {
            c.errno(what, got, want);
        }
    }
    e("NR_IRQS", set_attr(gic, GRP_NR_IRQS, 0, 64))?;
    c.eq(
        "HAS GICD_ISPENDR1 with 64 IRQs",
        has_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1),
        Ok(0),
    );
    c.errno(
        "HAS GICD_ISPENDR2 with 64 IRQs",
        has_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1 + 4),
        libc::ENXIO,
    );
    c.errno(
        "HAS GICD_IROUTER64 with 64 IRQs",
        has_attr(gic, GRP_DIST_REGS, 0x6000 + 64 * 8),
        libc::ENXIO,
    );
    e("CTRL_INIT", set_attr(gic, GRP_CTRL, CTRL_INIT, 0))?;
    c.errno(
        "SET GICD_TYPER2.nASSGIcap after CTRL_INIT",
        set_attr(gic, GRP_DIST_REGS, GICD_TYPER2, 1 << 8),
        libc::EBUSY,
    );
    c.eq(
        "GET GICD_ISPENDR7 (past NR_IRQS) reads 0",
        get_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1 + 24),
        Ok(0),
    );
    c.eq(
        "SET in a hole is ignored",
        set_attr(gic, GRP_DIST_REGS, 0x20, 1),
        Ok(0),
    );
    c.errno(
        "GET ICH_HCR_EL2",
        rc(get_attr(gic, GRP_CPU_SYSREGS, ICH_HCR)),
        libc::ENOENT,
    );
    c.errno(
        "SET ICC_SRE_EL1 without SRE",
        set_attr(gic, GRP_CPU_SYSREGS, ICC_SRE, 6),
        EINVAL,
    );
    c.errno(
        "SET ICC_CTLR_EL1 with 8 priority bits",
        set_attr(gic, GRP_CPU_SYSREGS, ICC_CTLR, 7 << 8),
        EINVAL,
    );
    // ICC_CTLR_EL1.PRIbits is the priority bits minus one.
    let pri_field = e("GET ICC_CTLR_EL1", get_attr(gic, GRP_CPU_SYSREGS, ICC_CTLR))? >> 8 & 7;
    if pri_field < 5 {
        c.errno(
            "GET ICC_AP0R1_EL1 (5 priority bits: no such APR)",
            rc(get_attr(gic, GRP_CPU_SYSREGS, ICC_AP0R1)),
            EINVAL,
        );
    }
    c.errno(
        "GET LEVEL_INFO INTID 33",
        rc(get_attr(gic, GRP_LEVEL_INFO, 33)),
        EINVAL,
    );
    c.errno(
        "GET LEVEL_INFO kind 1",
        rc(get_attr(gic, GRP_LEVEL_INFO, 1 << 10)),
        EINVAL,
    );
    c.errno(
        "GET with a bad address",
        {
            let mut a = kb::kvm_device_attr {
                flags: 0,
                group: GRP_DIST_REGS,
                attr: GICD_CTLR,
                addr: 0,
            };
            ioctl_with(gic, KVM_GET_DEVICE_ATTR, &mut a)
        },
        libc::EFAULT,
    );
    c.errno(
        "SET from a bad address",
        {
            let mut a = kb::kvm_device_attr {
                flags: 0,
                group: GRP_CPU_SYSREGS,
                attr: ICC_PMR,
                addr: 8,
            };
            ioctl_with(gic, KVM_SET_DEVICE_ATTR, &mut a)
        },
        libc::EFAULT,
    );
    e("DIST", set_attr(gic, GRP_ADDR, ADDR_DIST, DIST))?;
    e("REDIST", set_attr(gic, GRP_ADDR, ADDR_REDIST, REDIST))?;
    // A vCPU inside KVM_RUN (asleep in WFI): every register access is EBUSY, as KVM's
    // try-lock of all vCPUs.
    let mut v0 = vcpus.remove(0);
    let runner = std::thread::spawn(move || run(&mut v0, 0).map(|exit| (exit, v0)));
    let mut busy = Err(0);
    for _ in 0..200 {
        busy = rc(get_attr(gic, GRP_DIST_REGS, GICD_CTLR));
        if busy == Err(libc::EBUSY) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.errno("GET GICD_CTLR while vCPU 0 runs", busy, libc::EBUSY);
    c.errno(
        "SET GICR_ISPENDR0 while vCPU 0 runs",
        set_attr(gic, GRP_REDIST_REGS, reg(1, GICR_ISPENDR0), 1),
        libc::EBUSY,
    );
    e("IRQ_LINE wakes vCPU 0", irq_line(&vm.vm, spi(40), true))?;
    let (exit, _v0) = runner
        .join()
        .map_err(|_| "vCPU thread panicked".to_string())??;
    c.eq(
        "vCPU 0 woke up and powered off",
        exit,
        Exit::SystemEvent(SHUTDOWN),
    );
    c.eq(
        "GET GICD_CTLR once it stopped",
        get_attr(gic, GRP_DIST_REGS, GICD_CTLR),
        Ok(0x52),
    );
    close(gic);
    c.finish()
}

/// Every register of the four groups reads back what was written, with the userspace
/// rules: ISPENDR is the latch alone, ICPENDR is RAZ/WI, GICR_TYPER is read-only.
fn register_state_round_trip() -> TestResult {
    let (_vm, _vcpus, gic) = gic_vm(guest_off(), &[MEM_BASE, MEM_BASE], 128)?;
    let mut c = Cases::new();
    let dist = |o| get_attr(gic, GRP_DIST_REGS, o);
    let rd = |aff, o| get_attr(gic, GRP_REDIST_REGS, reg(aff, o));
    let sys = |aff, o| get_attr(gic, GRP_CPU_SYSREGS, reg(aff, o));
    for (what, off, val, want) in [
        ("GICD_CTLR EnableGrp1", GICD_CTLR, 2, 0x52),
        ("GICD_ISENABLER1", GICD_ISENABLER1, 0x300, 0x300),
        ("GICD_ISACTIVER1", GICD_ISACTIVER1, 0x10, 0x10),
        (
            "GICD_IPRIORITYR40-43",
            GICD_IPRIORITYR40,
            0x1122_33ff,
            0x1020_30f8,
        ),
        (
            "GICD_ICFGR2 (SPI 41 level)",
            GICD_ICFGR2,
            0xaaaa_aaaa & !(2 << 18),
            0xaaaa_aaaa & !(2 << 18),
        ),
        ("GICD_IROUTER40 (vCPU 1)", GICD_IROUTER40, 1, 1),
        (
            "GICD_STATUSR (RAO/WI)",
            GICD_STATUSR,
            0,
            u64::from(u32::MAX),
        ),
    ] {
        c.eq(
            &format!("SET {what}"),
            set_attr(gic, GRP_DIST_REGS, off, val),
            Ok(0),
        );
        c.eq(&format!("GET {what}"), dist(off), Ok(want));
    }
    // SPI 41 is level-sensitive: its line (LEVEL_INFO) and latch (ISPENDR) are apart.
    c.eq(
        "SET LEVEL_INFO 32-63",
        set_attr(gic, GRP_LEVEL_INFO, 32, 0x3ff),
        Ok(0),
    );
    c.eq(
        "GET LEVEL_INFO 32-63 (level SPIs only)",
        get_attr(gic, GRP_LEVEL_INFO, 32),
        Ok(1 << 9),
    );
    c.eq("GET ISPENDR1 (no latch)", dist(GICD_ISPENDR1), Ok(0));
    c.eq(
        "SET ISPENDR1 latches SPI 41 and 42",
        set_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1, 0x600),
        Ok(0),
    );
    c.eq("GET ISPENDR1", dist(GICD_ISPENDR1), Ok(0x600));
    c.eq(
        "SET ICPENDR1 is ignored",
        set_attr(gic, GRP_DIST_REGS, GICD_ICPENDR1, u64::from(u32::MAX)),
        Ok(0),
    );
    c.eq("GET ICPENDR1 reads 0", dist(GICD_ICPENDR1), Ok(0));
    c.eq(
        "SET ISPENDR1 clears the unset bits",
        set_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1, 0x200),
        Ok(0),
    );
    c.eq(
        "GET ISPENDR1 after the clear",
        dist(GICD_ISPENDR1),
        Ok(0x200),
    );
    c.eq(
        "SET LEVEL_INFO 32-63 low",
        set_attr(gic, GRP_LEVEL_INFO, 32, 0),
        Ok(0),
    );
    c.eq(
        "GET LEVEL_INFO 32-63 low",
        get_attr(gic, GRP_LEVEL_INFO, 32),
        Ok(0),
    );
    // Redistributors: identity, revision-3 GICR_CTLR, the SGI frame per vCPU.
    c.eq(
        "GICR_TYPER of vCPU 1 (processor 1, last)",
        rd(1, GICR_TYPER),
        Ok((1 << 8) | (1 << 4)),
    );
    c.eq(
        "GICR_TYPER+4 of vCPU 1 (Aff0 1)",
        rd(1, GICR_TYPER + 4),
        Ok(1),
    );
    c.eq(
        "SET GICR_TYPER is ignored",
        set_attr(gic, GRP_REDIST_REGS, reg(1, GICR_TYPER), 0),
        Ok(0),
    );
    c.eq(
        "GICR_TYPER unchanged",
        rd(1, GICR_TYPER),
        Ok((1 << 8) | (1 << 4)),
    );
    c.eq("GICR_TYPER of vCPU 0", rd(0, GICR_TYPER), Ok(0));
    c.eq("GICR_CTLR (IR, CES)", rd(0, GICR_CTLR), Ok(6));
    c.eq("GICR_IIDR", rd(0, GICR_IIDR), Ok(0x4b00_043b));
    c.eq(
        "SET GICR_ISENABLER0 of vCPU 1",
        set_attr(gic, GRP_REDIST_REGS, reg(1, GICR_ISENABLER0), 1 << 20),
        Ok(0),
    );
    c.eq(
        "GET GICR_ISENABLER0 of vCPU 1",
        rd(1, GICR_ISENABLER0),
        Ok(0x10_ffff),
    );
    c.eq(
        "GET GICR_ISENABLER0 of vCPU 0",
        rd(0, GICR_ISENABLER0),
        Ok(0xffff),
    );
    c.eq(
        "SET GICR_IPRIORITYR4 of vCPU 1",
        set_attr(gic, GRP_REDIST_REGS, reg(1, GICR_IPRIORITYR4), 0x8040_2010),
        Ok(0),
    );
    c.eq(
        "GET GICR_IPRIORITYR4 of vCPU 1",
        rd(1, GICR_IPRIORITYR4),
        Ok(0x8040_2010),
    );
    c.eq(
        "SET GICR_ISPENDR0 of vCPU 1 (SGI 3)",
        set_attr(gic, GRP_REDIST_REGS, reg(1, GICR_ISPENDR0), 8),
        Ok(0),
    );
    c.eq("GET GICR_ISPENDR0 of vCPU 1", rd(1, GICR_ISPENDR0), Ok(8));
    c.eq("GET GICR_ISPENDR0 of vCPU 0", rd(0, GICR_ISPENDR0), Ok(0));
    c.eq(
        "SET LEVEL_INFO PPI 20 of vCPU 1",
        set_attr(gic, GRP_LEVEL_INFO, reg(1, 0), 1 << 20),
        Ok(0),
    );
    c.eq(
        "GET LEVEL_INFO 0-31 of vCPU 1",
        get_attr(gic, GRP_LEVEL_INFO, reg(1, 0)),
        Ok(1 << 20),
    );
    // The CPU interface, per vCPU.
    for (what, r, val) in [
        ("ICC_PMR_EL1", ICC_PMR, 0xf0),
        ("ICC_IGRPEN1_EL1", ICC_IGRPEN1, 1),
        ("ICC_BPR1_EL1", ICC_BPR1, 4),
        ("ICC_AP1R0_EL1", ICC_AP1R0, 1),
    ] {
        c.eq(
            &format!("SET {what} of vCPU 1"),
            set_attr(gic, GRP_CPU_SYSREGS, reg(1, r), val),
            Ok(0),
        );
        c.eq(&format!("GET {what} of vCPU 1"), sys(1, r), Ok(val));
    }
    c.eq("ICC_PMR_EL1 of vCPU 0 untouched", sys(0, ICC_PMR), Ok(0));
    c.eq("ICC_SRE_EL1", sys(0, ICC_SRE), Ok(7));
    // vgic_init's test_v3_sysregs: every EL1 register is there and takes back what it
    // reads; AP<n>R1-3 only as far as the priority bits go.
    let pri_bits = (e("GET ICC_CTLR_EL1", sys(0, ICC_CTLR))? >> 8 & 7) + 1;
    for (crm, op2) in [
        (6, 0),
        (8, 3),
        (8, 4),
        (8, 5),
        (8, 6),
        (8, 7),
        (9, 0),
        (9, 1),
        (9, 2),
        (9, 3),
        (12, 3),
        (12, 4),
        (12, 5),
        (12, 6),
        (12, 7),
    ] {
        let r = icc(if crm == 6 { 4 } else { 12 }, crm, op2);
        let apr = match (crm, op2) {
            (8, 4..=7) => Some(op2 - 4),
            (9, _) => Some(op2),
            _ => None,
        };
        let exists = apr.is_none_or(|n| n == 0 || (n == 1 && pri_bits >= 6) || pri_bits == 7);
        c.eq(
            &format!("HAS sysreg {r:#x}"),
            has_attr(gic, GRP_CPU_SYSREGS, r),
            Ok(0),
        );
        let got = get_attr(gic, GRP_CPU_SYSREGS, r);
        if exists {
            let v = e("GET sysreg", got)?;
            c.eq(
                &format!("SET sysreg {r:#x} back"),
                set_attr(gic, GRP_CPU_SYSREGS, r, v),
                Ok(0),
            );
        } else {
            c.errno(
                &format!("GET sysreg {r:#x} beyond the priority bits"),
                rc(got),
                EINVAL,
            );
        }
    }
    let ctlr = e("GET ICC_CTLR_EL1", sys(1, ICC_CTLR))?;
    c.eq(
        "SET ICC_CTLR_EL1 EOImode",
        set_attr(gic, GRP_CPU_SYSREGS, reg(1, ICC_CTLR), ctlr | 2),
        Ok(0),
    );
    c.eq("GET ICC_CTLR_EL1 EOImode", sys(1, ICC_CTLR), Ok(ctlr | 2));
    close(gic);
    c.finish()
}

// Reports ICC_PMR_EL1, ICC_IGRPEN1_EL1 and ICC_BPR1_EL1 as restored by the host, sets
// PMR to 0x80 and exits (MMIO write), then powers off.
guest_code!(
    guest_icc_state,
    "movz x9, #0x4000, lsl #16",
    "add x9, x9, #0x8, lsl #12",
    "mrs x3, s3_0_c4_c6_0",
    "str x3, [x9, #0]",
    "mrs x3, s3_0_c12_c12_7",
    "str x3, [x9, #8]",
    "mrs x3, s3_0_c12_c12_3",
    "str x3, [x9, #16]",
    "mov x2, #0x80",
    "msr s3_0_c4_c6_0, x2",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "str xzr, [x19]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// Pending state restored through ISPENDR reaches the guest's vector, and ICC_* state
/// restored through CPU_SYSREGS is what the guest's CPU interface holds (and back).
fn restored_state_reaches_the_guest() -> TestResult {
    let (vm, mut vcpus, gic) = gic_vm(guest_spi_vectored(), &[MEM_BASE], 128)?;
    vm.mem.write(0xa80, guest_irq_vector());
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    // QEMU's restore of a pending edge SPI: read ISPENDR1, set SPI 40's bit.
    let pend = e("GET ISPENDR1", get_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1))?;
    e(
        "SET ISPENDR1",
        set_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1, pend | (1 << 8)),
    )?;
    check_eq!(run_to_write(&mut vcpus[0])?, (MMIO_BASE + 8, 40));
    check_eq!(run(&mut vcpus[0], 0)?, Exit::SystemEvent(SHUTDOWN));
    check_eq!(get_attr(gic, GRP_DIST_REGS, GICD_ISPENDR1), Ok(0));
    close(gic);

    let (vm, mut vcpus, gic) = gic_vm(guest_icc_state(), &[MEM_BASE], 128)?;
    e(
        "SET ICC_PMR_EL1",
        set_attr(gic, GRP_CPU_SYSREGS, ICC_PMR, 0xe0),
    )?;
    e(
        "SET ICC_IGRPEN1_EL1",
        set_attr(gic, GRP_CPU_SYSREGS, ICC_IGRPEN1, 1),
    )?;
    e(
        "SET ICC_BPR1_EL1",
        set_attr(gic, GRP_CPU_SYSREGS, ICC_BPR1, 5),
    )?;
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    let r = |i: usize| vm.mem.read_u64(RESULTS + 8 * i);
    let mut c = Cases::new();
    c.eq("guest ICC_PMR_EL1", r(0), 0xe0);
    c.eq("guest ICC_IGRPEN1_EL1", r(1), 1);
    c.eq("guest ICC_BPR1_EL1", r(2), 5);
    c.eq(
        "ICC_PMR_EL1 the guest wrote",
        get_attr(gic, GRP_CPU_SYSREGS, ICC_PMR),
        Ok(0x80),
    );
    c.eq(
        "powered off",
        run(&mut vcpus[0], 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    close(gic);
    c.finish()
}

/// `KVM_SET_GSI_ROUTING` with `entries` of (gsi, type, flags, irqchip, pin) and the
/// header's `flags`.
fn gsi_routing(vm: &VmFd, entries: &[(u32, u32, u32, u32, u32)], flags: u32) -> Result<i32, i32> {
    let mut buf = vec![entries.len() as u32, flags];
    for &(gsi, ty, fl, chip, pin) in entries {
        buf.extend_from_slice(&[gsi, ty, fl, 0, chip, pin, 0, 0, 0, 0, 0, 0]);
    }
    // SAFETY: `buf` holds the header and every entry the header counts.
    unsafe { ioctl_raw(vm.as_raw_fd(), KVM_SET_GSI_ROUTING, buf.as_mut_ptr() as u64) }
}

/// GSI routing: KVM's errors, and an irqfd delivering through a non-identity route.
fn gsi_routing_delivery() -> TestResult {
    let kvm = kvm()?;
    let mut c = Cases::new();
    c.eq(
        "CHECK_EXTENSION(IRQ_ROUTING)",
        kvm.check_extension_raw(KVM_CAP_IRQ_ROUTING),
        4096,
    );
    let (vm, mut vcpus, gic) = gic_vm(guest_spi_vectored(), &[MEM_BASE], 128)?;
    vm.mem.write(0xa80, guest_irq_vector());
    const IRQCHIP: u32 = 1;
    const MSI: u32 = 2;
    for (what, entries, flags) in [
        ("header flags", vec![], 1),
        ("GSI 4096", vec![(4096, IRQCHIP, 0, 0, 8)], 0),
        ("pin 988 (INTID 1020)", vec![(3, IRQCHIP, 0, 0, 988)], 0),
        ("irqchip 1", vec![(3, IRQCHIP, 0, 1, 8)], 0),
        ("entry flags", vec![(3, IRQCHIP, 1, 0, 8)], 0),
        (
            "two routes for one GSI",
            vec![(3, IRQCHIP, 0, 0, 8), (3, IRQCHIP, 0, 0, 9)],
            0,
        ),
        ("MSI with unknown flags", vec![(3, MSI, 2, 0, 0)], 0),
        ("unknown type", vec![(3, 7, 0, 0, 0)], 0),
    ] {
        c.errno(what, gsi_routing(&vm.vm, &entries, flags), EINVAL);
    }
    c.errno(
        "4097 entries",
        {
            let mut hdr = [4097u32, 0];
            ioctl_with(vm.vm.as_raw_fd(), KVM_SET_GSI_ROUTING, &mut hdr)
        },
        EINVAL,
    );
    c.eq("no entries", gsi_routing(&vm.vm, &[], 0), Ok(0));
    // GSI 3 to SPI 40 (pin 8), GSI 8 nowhere, GSI 9 an MSI (no ITS: nothing).
    c.eq(
        "GSI 3 -> pin 8, GSI 9 MSI",
        gsi_routing(&vm.vm, &[(3, IRQCHIP, 0, 0, 8), (9, MSI, 1, 0, 0)], 0),
        Ok(0),
    );
    let efd = eventfd()?;
    let unrouted = eventfd()?;
    c.eq("irqfd on GSI 8", irqfd(&vm.vm, unrouted, 8, 0, 0), Ok(0));
    c.eq("irqfd on GSI 3", irqfd(&vm.vm, efd, 3, 0, 0), Ok(0));
    check_eq!(
        run(&mut vcpus[0], 0)?,
        Exit::MmioWrite(MMIO_BASE, vec![0; 8])
    );
    // GSI 8 (SPI 40 under the default routing) has no route now: nothing arrives.
    eventfd_write(unrouted);
    std::thread::sleep(std::time::Duration::from_millis(50));
    c.eq(
        "ISPENDR1 after the unrouted GSI",
        get_attr(gic, GRP_DIST_REGS, 0x204),
        Ok(0),
    );
    eventfd_write(efd);
    c.eq(
        "the routed GSI reaches SPI 40",
        run_to_write(&mut vcpus[0])?,
        (MMIO_BASE + 8, 40),
    );
    c.eq(
        "powered off",
        run(&mut vcpus[0], 0)?,
        Exit::SystemEvent(SHUTDOWN),
    );
    close(efd);
    close(unrouted);
    close(gic);
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_vgic",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("setup_errors", setup_errors),
            ("guest_reads_gic_registers", guest_reads_gic_registers),
            (
                "spi_by_irq_line_reaches_the_vector",
                spi_by_irq_line_reaches_the_vector,
            ),
            (
                "level_interrupt_held_and_released",
                level_interrupt_held_and_released,
            ),
            (
                "more_pending_than_list_registers",
                more_pending_than_list_registers,
            ),
            ("irqfd_delivery", irqfd_delivery),
            ("ipi_ping_pong", ipi_ping_pong),
            (
                "fast_path_when_nothing_is_in_flight",
                fast_path_when_nothing_is_in_flight,
            ),
            ("register_state_errors", register_state_errors),
            ("register_state_round_trip", register_state_round_trip),
            (
                "restored_state_reaches_the_guest",
                restored_state_reaches_the_guest,
            ),
            ("gsi_routing_delivery", gsi_routing_delivery),
        ],
    )
}
