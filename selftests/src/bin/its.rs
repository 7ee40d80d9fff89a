// SPDX-License-Identifier: GPL-2.0

//! The GICv3 ITS end to end, as a VMM and a guest use it: the device and its attributes
//! with KVM's errnos, commands the guest queues (MAPD, MAPC, MAPTI, INT) delivering an
//! LPI through the list registers, `KVM_SIGNAL_MSI` and an irqfd with an MSI route, a
//! SAVE_TABLES / RESET / RESTORE_TABLES round trip in KVM's table format, the pending
//! tables, and hostile tables and IDs that must only hurt the guest.

use kvm_bindings::{
    self as kb, kvm_create_device, kvm_device_attr, kvm_msi, KVM_CAP_MSI_DEVID, KVM_CAP_SIGNAL_MSI,
    KVM_CREATE_DEVICE_TEST, KVM_MSI_VALID_DEVID,
};
use kvm_ioctls::{DeviceFd, VmFd};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    eventfd, guest_code, host_runs_guests, run_or_skip, Cases, Outcome, TestResult,
};
use std::os::fd::{AsRawFd, OwnedFd};

const KVM_DEV_TYPE_ARM_VGIC_ITS: u32 = kb::kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_ITS;
const GRP_ADDR: u32 = kb::KVM_DEV_ARM_VGIC_GRP_ADDR;
const GRP_CTRL: u32 = kb::KVM_DEV_ARM_VGIC_GRP_CTRL;
const GRP_REDIST_REGS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;
const GRP_ITS_REGS: u32 = kb::KVM_DEV_ARM_VGIC_GRP_ITS_REGS;
const ITS_ADDR_TYPE: u64 = kb::KVM_VGIC_ITS_ADDR_TYPE as u64;
const CTRL_INIT: u64 = kb::KVM_DEV_ARM_VGIC_CTRL_INIT as u64;
const CTRL_SAVE_TABLES: u64 = kb::KVM_DEV_ARM_ITS_SAVE_TABLES as u64;
const CTRL_RESTORE_TABLES: u64 = kb::KVM_DEV_ARM_ITS_RESTORE_TABLES as u64;
const CTRL_SAVE_PENDING_TABLES: u64 = kb::KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES as u64;
const CTRL_RESET: u64 = kb::KVM_DEV_ARM_ITS_CTRL_RESET as u64;

/// Where QEMU's `virt` machine puts its ITS; the doorbell is GITS_TRANSLATER.
const ITS_BASE: u64 = 0x0808_0000;
const DOORBELL: u64 = ITS_BASE + 0x1_0040;

const GITS_CTLR: u64 = 0x0;
const GITS_IIDR: u64 = 0x4;
const GITS_TYPER: u64 = 0x8;
const GITS_CBASER: u64 = 0x80;
const GITS_CWRITER: u64 = 0x88;
const GITS_CREADR: u64 = 0x90;
const GITS_BASER0: u64 = 0x100;
const GITS_BASER1: u64 = 0x108;

const GICR_CTLR: u64 = 0x0;
const GICR_PROPBASER: u64 = 0x70;
const GICR_PENDBASER: u64 = 0x78;

/// Guest RAM layout (offsets from MEM_BASE): code, vectors at 0x800, the CWRITER value
/// the guest writes at 0x1000, then the ITS and LPI tables, each suitably aligned.
const CWRITER_SLOT: usize = 0x1000;
const CMDQ: u64 = 0x1_0000;
const DEVICE_TABLE: u64 = 0x2_0000;
const COLLECTION_TABLE: u64 = 0x3_0000;
const ITT: u64 = 0x4_0000;
const PROP_TABLE: u64 = 0x5_0000;
const PEND_TABLE: u64 = 0x6_0000;
const RAM: usize = 1 << 20;

const LPI: u32 = 8192;
const DEVID: u32 = 1;

const VALID: u64 = 1 << 63;
/// GITS_BASER: 64 KiB pages (one page: 8192 entries of 8 bytes).
const BASER_64K: u64 = 2 << 8;

// x9 = MMIO_BASE. Vectors at RAM + 0x800; the GIC CPU interface on, group 1 enabled at
// the distributor (ARE); the guest writes the CWRITER value the host left at RAM +
// 0x1000 to its ITS (running the commands queued there), reports ready (MMIO_BASE + 8),
// unmasks IRQs and waits.
guest_code!(
    guest_kick_its,
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
    "movz x2, #0x4000, lsl #16",
    "ldr x0, [x2, #0x1000]",
    "movz x1, #0x0808, lsl #16",
    "str x0, [x1, #0x88]", // GITS_CWRITER
    "movz x0, #1",
    "str x0, [x9, #8]",
    "msr daifclr, #2",
    "1: wfi",
    "b 1b"
);

// The IRQ vector (current EL, SPx): acknowledge, report the INTID, EOI, return to the
// wait loop (so every LPI the host sends shows up as one report).
guest_code!(
    guest_lpi_vector,
    "mrs x5, s3_0_c12_c12_0", // ICC_IAR1_EL1
    "str x5, [x9]",
    "msr s3_0_c12_c12_1, x5", // ICC_EOIR1_EL1
    "eret"
);

fn attr(group: u32, attr: u64, val: &mut u64) -> kvm_device_attr {
    kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr: val as *mut u64 as u64,
    }
}

fn set(dev: &DeviceFd, group: u32, a: u64, v: u64) -> Result<i32, i32> {
    let mut v = v;
    dev.set_device_attr(&attr(group, a, &mut v))
        .map(|()| 0)
        .map_err(|e| e.errno())
}

fn get(dev: &DeviceFd, group: u32, a: u64) -> Result<u64, i32> {
    let mut v = 0u64;
    // SAFETY: `v` is the 8-byte buffer the attribute names.
    unsafe { dev.get_device_attr(&mut attr(group, a, &mut v)) }.map_err(|e| e.errno())?;
    Ok(v)
}

fn has(dev: &DeviceFd, group: u32, a: u64) -> Result<i32, i32> {
    let mut v = 0u64;
    dev.has_device_attr(&attr(group, a, &mut v))
        .map(|()| 0)
        .map_err(|e| e.errno())
}

fn must(r: Result<i32, i32>, what: &str) -> Result<(), String> {
    r.map(|_| ())
        .map_err(|e| format!("{what}: {}", std::io::Error::from_raw_os_error(e)))
}

fn create_its(vm: &VmFd) -> Result<DeviceFd, String> {
    let mut cd = kvm_create_device {
        type_: KVM_DEV_TYPE_ARM_VGIC_ITS,
        fd: 0,
        flags: 0,
    };
    vm.create_device(&mut cd)
        .map_err(|e| format!("KVM_CREATE_DEVICE(ITS): {e}"))
}

fn msi(vm: &VmFd, address: u64, data: u32, devid: Option<u32>) -> Result<i32, i32> {
    let m = kvm_msi {
        address_lo: address as u32,
        address_hi: (address >> 32) as u32,
        data,
        flags: if devid.is_some() {
            KVM_MSI_VALID_DEVID
        } else {
            0
        },
        devid: devid.unwrap_or(0),
        ..Default::default()
    };
    vm.signal_msi(m).map_err(|e| e.errno())
}

/// A 32-bit redistributor register of vCPU 0 (MPIDR affinity 0), as userspace restores it.
fn redist_set(gic: &DeviceFd, off: u64, v: u64) -> Result<(), String> {
    let mut lo = v as u32 as u64;
    let mut hi = v >> 32;
    must(
        gic.set_device_attr(&attr(GRP_REDIST_REGS, off, &mut lo))
            .map(|()| 0)
            .map_err(|e| e.errno()),
        "REDIST_REGS",
    )?;
    if off != GICR_CTLR {
        must(
            gic.set_device_attr(&attr(GRP_REDIST_REGS, off + 4, &mut hi))
                .map(|()| 0)
                .map_err(|e| e.errno()),
            "REDIST_REGS",
        )?;
    }
    Ok(())
}

/// ITS command words.
fn mapd(devid: u32, bits: u8, itt: u64, valid: bool) -> [u64; 4] {
    [
        0x08 | (u64::from(devid) << 32),
        u64::from(bits - 1),
        itt | if valid { VALID } else { 0 },
        0,
    ]
}
fn mapc(icid: u16, rdbase: u64) -> [u64; 4] {
    [0x09, 0, VALID | (rdbase << 16) | u64::from(icid), 0]
}
fn mapti(devid: u32, eventid: u32, intid: u32, icid: u16) -> [u64; 4] {
    [
        0x0a | (u64::from(devid) << 32),
        u64::from(eventid) | (u64::from(intid) << 32),
        u64::from(icid),
        0,
    ]
}
fn int(devid: u32, eventid: u32) -> [u64; 4] {
    [0x03 | (u64::from(devid) << 32), u64::from(eventid), 0, 0]
}

/// Writes `cmds` at the start of the command queue; returns the CWRITER that covers them.
fn queue(mem: &GuestMem, cmds: &[[u64; 4]]) -> u64 {
    for (i, c) in cmds.iter().enumerate() {
        for (j, w) in c.iter().enumerate() {
            mem.write_u64(CMDQ as usize + i * 32 + j * 8, *w);
        }
    }
    cmds.len() as u64 * 32
}

/// A VM with one vCPU, a vGICv3, an ITS at ITS_BASE and LPIs enabled on vCPU 0's
/// redistributor (property and pending tables in guest RAM, LPI 8192 and 8193 enabled
/// at priority 0xa0), with the ITS's tables set but the ITS itself still disabled.
struct ItsVm {
    vm: TestVm,
    vcpu: kvm_ioctls::VcpuFd,
    gic: DeviceFd,
    its: DeviceFd,
}

fn its_vm() -> Result<ItsVm, String> {
    let vm = TestVm::new(RAM, guest_kick_its())?;
    vm.mem.write(0x800 + 0x280, guest_lpi_vector());
    let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let gic = create_vgic(&vm.vm)?.ok_or("no vGICv3 on this host")?;
    let its = create_its(&vm.vm)?;
    must(set(&its, GRP_ADDR, ITS_ADDR_TYPE, ITS_BASE), "ITS address")?;
    must(set(&its, GRP_CTRL, CTRL_INIT, 0), "ITS CTRL_INIT")?;
    vm.mem.write(PROP_TABLE as usize, &[0xa1, 0xa1]);
    redist_set(&gic, GICR_PROPBASER, (MEM_BASE + PROP_TABLE) | 15)?;
    redist_set(&gic, GICR_PENDBASER, MEM_BASE + PEND_TABLE)?;
    redist_set(&gic, GICR_CTLR, 1)?;
    set_tables(&its)?;
    Ok(ItsVm { vm, vcpu, gic, its })
}

/// Device and collection tables (flat, one 64 KiB page each) and a 4 KiB command queue.
fn set_tables(its: &DeviceFd) -> Result<(), String> {
    must(
        set(
            its,
            GRP_ITS_REGS,
            GITS_BASER0,
            VALID | BASER_64K | (MEM_BASE + DEVICE_TABLE),
        ),
        "GITS_BASER0",
    )?;
    must(
        set(
            its,
            GRP_ITS_REGS,
            GITS_BASER1,
            VALID | BASER_64K | (MEM_BASE + COLLECTION_TABLE),
        ),
        "GITS_BASER1",
    )?;
    must(
        set(its, GRP_ITS_REGS, GITS_CBASER, VALID | (MEM_BASE + CMDQ)),
        "GITS_CBASER",
    )
}

/// The next report of the guest: an LPI's INTID written to MMIO_BASE.
fn next_lpi(vcpu: &mut kvm_ioctls::VcpuFd) -> Result<u64, String> {
    match run(vcpu, 0)? {
        Exit::MmioWrite(a, d) if a == MMIO_BASE => Ok(le_value(&d)),
        other => Err(format!("expected an LPI report, got {other:?}")),
    }
}

/// Creation, capabilities, the address rules, HAS and the register group.
fn device_and_attributes() -> TestResult {
    let mut c = Cases::new();
    let vm = TestVm::new(RAM, guest_kick_its())?;
    let _vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let Some(_gic) = create_vgic(&vm.vm)? else {
        return Ok(Outcome::Skip("no vGICv3 on this host".into()));
    };
    c.eq(
        "CHECK_EXTENSION(SIGNAL_MSI)",
        vm.vm.check_extension_raw(KVM_CAP_SIGNAL_MSI.into()),
        1,
    );
    c.eq(
        "CHECK_EXTENSION(MSI_DEVID) before an ITS",
        vm.vm.check_extension_raw(KVM_CAP_MSI_DEVID.into()),
        0,
    );
    let mut test = kvm_create_device {
        type_: KVM_DEV_TYPE_ARM_VGIC_ITS,
        fd: 0,
        flags: KVM_CREATE_DEVICE_TEST,
    };
    c.eq(
        "CREATE_DEVICE_TEST(ITS)",
        vm.vm
            .create_device(&mut test)
            .map(|_| 0)
            .map_err(|e| e.errno()),
        Ok(0),
    );
    let its = create_its(&vm.vm)?;
    c.eq(
        "CHECK_EXTENSION(MSI_DEVID) with an ITS",
        vm.vm.check_extension_raw(KVM_CAP_MSI_DEVID.into()),
        1,
    );
    for (what, group, a, want) in [
        ("HAS ADDR", GRP_ADDR, ITS_ADDR_TYPE, Ok(0)),
        ("HAS ADDR DIST", GRP_ADDR, 2, Err(libc::ENXIO)),
        ("HAS CTRL_INIT", GRP_CTRL, CTRL_INIT, Ok(0)),
        ("HAS RESET", GRP_CTRL, CTRL_RESET, Ok(0)),
        ("HAS SAVE_TABLES", GRP_CTRL, CTRL_SAVE_TABLES, Ok(0)),
        ("HAS RESTORE_TABLES", GRP_CTRL, CTRL_RESTORE_TABLES, Ok(0)),
        (
            "HAS SAVE_PENDING_TABLES (the vGIC's)",
            GRP_CTRL,
            CTRL_SAVE_PENDING_TABLES,
            Err(libc::ENXIO),
        ),
        ("HAS GITS_CTLR", GRP_ITS_REGS, GITS_CTLR, Ok(0)),
        ("HAS GITS_BASER0", GRP_ITS_REGS, GITS_BASER0, Ok(0)),
        ("HAS a hole", GRP_ITS_REGS, 0x40, Err(libc::ENXIO)),
        (
            "HAS misaligned GITS_TYPER",
            GRP_ITS_REGS,
            GITS_TYPER + 4,
            Err(libc::EINVAL),
        ),
    ] {
        c.eq(what, has(&its, group, a), want);
    }
    c.eq(
        "ADDR before it is set",
        get(&its, GRP_ADDR, ITS_ADDR_TYPE),
        Ok(u64::MAX),
    );
    c.errno(
        "ITS_REGS before the address",
        get(&its, GRP_ITS_REGS, GITS_CTLR).map(|_| 0),
        libc::ENXIO,
    );
    c.errno(
        "ADDR of another type",
        set(&its, GRP_ADDR, 2, ITS_BASE),
        libc::ENODEV,
    );
    c.errno(
        "ADDR misaligned",
        set(&its, GRP_ADDR, ITS_ADDR_TYPE, ITS_BASE + 0x1000),
        libc::EINVAL,
    );
    c.errno(
        "ADDR beyond the IPA space",
        set(&its, GRP_ADDR, ITS_ADDR_TYPE, 1 << 52),
        libc::E2BIG,
    );
    c.eq("ADDR", set(&its, GRP_ADDR, ITS_ADDR_TYPE, ITS_BASE), Ok(0));
    c.errno(
        "ADDR twice",
        set(&its, GRP_ADDR, ITS_ADDR_TYPE, ITS_BASE + 0x2_0000),
        libc::EEXIST,
    );
    c.eq(
        "ADDR read back",
        get(&its, GRP_ADDR, ITS_ADDR_TYPE),
        Ok(ITS_BASE),
    );
    c.eq("CTRL_INIT", set(&its, GRP_CTRL, CTRL_INIT, 0), Ok(0));
    c.errno(
        "CTRL of another kind",
        set(&its, GRP_CTRL, 9, 0),
        libc::ENXIO,
    );
    // KVM's identity: product 0x4b, implementer Arm, ABI revision 0.
    c.eq(
        "GITS_IIDR",
        get(&its, GRP_ITS_REGS, GITS_IIDR),
        Ok(0x4b00_043b),
    );
    c.errno(
        "GITS_IIDR of revision 1",
        set(&its, GRP_ITS_REGS, GITS_IIDR, 0x4b00_143b),
        libc::EINVAL,
    );
    let typer = get(&its, GRP_ITS_REGS, GITS_TYPER).unwrap_or(0);
    c.eq("GITS_TYPER.PLPIS", typer & 1, 1);
    c.eq("GITS_TYPER.ITT_entry_size (8 bytes)", (typer >> 4) & 0xf, 7);
    c.eq("GITS_TYPER.IDbits (16)", (typer >> 8) & 0x1f, 15);
    c.eq("GITS_TYPER.Devbits (16)", (typer >> 13) & 0x1f, 15);
    c.eq(
        "GITS_CTLR: disabled, quiescent",
        get(&its, GRP_ITS_REGS, GITS_CTLR),
        Ok(1 << 31),
    );
    // Enabling needs valid tables and queue: refused (silently) without them.
    c.eq(
        "enable without tables",
        set(&its, GRP_ITS_REGS, GITS_CTLR, 1),
        Ok(0),
    );
    c.eq(
        "still disabled",
        get(&its, GRP_ITS_REGS, GITS_CTLR).map(|v| v & 1),
        Ok(0),
    );
    c.eq(
        "GITS_BASER0.Type is the device table",
        get(&its, GRP_ITS_REGS, GITS_BASER0).map(|v| (v >> 56) & 7),
        Ok(1),
    );
    c.eq(
        "GITS_BASER1.Type is the collection table",
        get(&its, GRP_ITS_REGS, GITS_BASER1).map(|v| (v >> 56) & 7),
        Ok(4),
    );
    c.eq("a second ITS", create_its(&vm.vm).map(|_| 0), Ok(0));
    c.finish()
}

/// KVM_SIGNAL_MSI's errors before anything is mapped.
fn signal_msi_errors() -> TestResult {
    let mut c = Cases::new();
    let plain = TestVm::new(RAM, guest_kick_its())?;
    let _v = plain.vcpu(0, MEM_BASE, 0)?;
    c.errno(
        "no irqchip",
        msi(&plain.vm, DOORBELL, 0, Some(DEVID)),
        libc::EINVAL,
    );
    let Some(_gic) = create_vgic(&plain.vm)? else {
        return Ok(Outcome::Skip("no vGICv3 on this host".into()));
    };
    c.errno(
        "vGIC without an ITS",
        msi(&plain.vm, DOORBELL, 0, Some(DEVID)),
        libc::ENODEV,
    );
    let v = its_vm()?;
    c.errno(
        "no DeviceID",
        msi(&v.vm.vm, DOORBELL, 0, None),
        libc::EINVAL,
    );
    c.errno(
        "not an ITS address",
        msi(&v.vm.vm, 0x0900_0000, 0, Some(DEVID)),
        libc::EINVAL,
    );
    c.errno(
        "ITS disabled",
        msi(&v.vm.vm, DOORBELL, 0, Some(DEVID)),
        libc::EBUSY,
    );
    c.finish()
}

/// The guest queues MAPD, MAPC, MAPTI and INT; the LPI reaches it through a list
/// register. Then MSIs: KVM_SIGNAL_MSI (1 delivered, 0 unmapped) and an irqfd whose GSI
/// routes to an MSI.
fn commands_and_msis() -> TestResult {
    let mut c = Cases::new();
    let mut v = its_vm()?;
    must(set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1), "enable the ITS")?;
    let cwriter = queue(
        &v.vm.mem,
        &[
            mapd(DEVID, 4, MEM_BASE + ITT, true),
            mapc(0, 0),
            mapti(DEVID, 0, LPI, 0),
            int(DEVID, 0),
        ],
    );
    v.vm.mem.write_u64(CWRITER_SLOT, cwriter);
    c.eq(
        "ready",
        run(&mut v.vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 8, 1u64.to_le_bytes().to_vec()),
    );
    c.eq(
        "GITS_CREADR caught up",
        get(&v.its, GRP_ITS_REGS, GITS_CREADR),
        Ok(cwriter),
    );
    c.eq(
        "INT delivers the LPI",
        next_lpi(&mut v.vcpu)?,
        u64::from(LPI),
    );
    c.eq(
        "KVM_SIGNAL_MSI",
        msi(&v.vm.vm, DOORBELL, 0, Some(DEVID)),
        Ok(1),
    );
    c.eq("the MSI's LPI", next_lpi(&mut v.vcpu)?, u64::from(LPI));
    c.eq(
        "unmapped event",
        msi(&v.vm.vm, DOORBELL, 3, Some(DEVID)),
        Ok(0),
    );
    c.eq(
        "unmapped device",
        msi(&v.vm.vm, DOORBELL, 0, Some(7)),
        Ok(0),
    );
    c.eq(
        "event beyond the ITT",
        msi(&v.vm.vm, DOORBELL, 1 << 20, Some(DEVID)),
        Ok(0),
    );

    // An irqfd on GSI 5, routed to the same MSI.
    let mut routing = vec![1u32, 0];
    routing.extend_from_slice(&[
        5,
        kb::KVM_IRQ_ROUTING_MSI,
        KVM_MSI_VALID_DEVID,
        0,
        DOORBELL as u32,
        0,
        0,
        DEVID,
        0,
        0,
        0,
        0,
    ]);
    // SAFETY: `routing` holds the header and the one entry it counts.
    let r = unsafe {
        ioctl_raw(
            v.vm.vm.as_raw_fd(),
            nr::KVM_SET_GSI_ROUTING,
            routing.as_mut_ptr() as u64,
        )
    };
    c.eq("SET_GSI_ROUTING with an MSI entry", r, Ok(0));
    let efd: OwnedFd = eventfd()?;
    let mut args = [efd.as_raw_fd() as u32, 5, 0, 0, 0, 0, 0, 0];
    c.eq(
        "KVM_IRQFD on the MSI's GSI",
        ioctl_with(v.vm.vm.as_raw_fd(), nr::KVM_IRQFD, &mut args),
        Ok(0),
    );
    let one = 1u64;
    // SAFETY: writes 8 bytes from a local to an eventfd this test owns.
    unsafe { libc::write(efd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    c.eq("the irqfd's MSI", next_lpi(&mut v.vcpu)?, u64::from(LPI));
    c.finish()
}

/// SAVE_TABLES writes KVM's ABI-0 entries; after RESET the ITS is disabled and empty;
/// RESTORE_TABLES brings the mapping back and MSIs work again. SAVE_PENDING_TABLES
/// writes a pending LPI's bit.
fn save_restore_round_trip() -> TestResult {
    let mut c = Cases::new();
    let mut v = its_vm()?;
    must(set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1), "enable the ITS")?;
    let cwriter = queue(
        &v.vm.mem,
        &[
            mapd(DEVID, 4, MEM_BASE + ITT, true),
            mapc(0, 0),
            mapti(DEVID, 2, LPI + 1, 0),
        ],
    );
    v.vm.mem.write_u64(CWRITER_SLOT, cwriter);
    c.eq(
        "ready",
        run(&mut v.vcpu, 0)?,
        Exit::MmioWrite(MMIO_BASE + 8, 1u64.to_le_bytes().to_vec()),
    );

    c.eq(
        "SAVE_TABLES",
        set(&v.its, GRP_CTRL, CTRL_SAVE_TABLES, 0),
        Ok(0),
    );
    // DTE: valid, next 0 (the last device), ITT address >> 8 in [48:5], size - 1 (3).
    let dte =
        v.vm.mem
            .read_u64((DEVICE_TABLE + 8 * u64::from(DEVID)) as usize);
    c.eq("DTE", dte, VALID | (((MEM_BASE + ITT) >> 8) << 5) | 3);
    // ITE of event 2: next 0, pINTID [47:16], ICID 0.
    c.eq(
        "ITE",
        v.vm.mem.read_u64((ITT + 8 * 2) as usize),
        u64::from(LPI + 1) << 16,
    );
    // CTE: valid, RDbase (vCPU 0) [51:16], ICID 0; then the terminating invalid entry.
    c.eq("CTE", v.vm.mem.read_u64(COLLECTION_TABLE as usize), VALID);
    c.eq(
        "no second CTE",
        v.vm.mem.read_u64(COLLECTION_TABLE as usize + 8),
        0,
    );

    c.eq("RESET", set(&v.its, GRP_CTRL, CTRL_RESET, 0), Ok(0));
    c.eq(
        "GITS_CTLR after RESET",
        get(&v.its, GRP_ITS_REGS, GITS_CTLR),
        Ok(1 << 31),
    );
    c.eq(
        "GITS_CBASER after RESET",
        get(&v.its, GRP_ITS_REGS, GITS_CBASER),
        Ok(0),
    );
    c.errno(
        "MSI while disabled",
        msi(&v.vm.vm, DOORBELL, 2, Some(DEVID)),
        libc::EBUSY,
    );
    // QEMU's restore order: BASERs and queue, RESTORE_TABLES, then GITS_CTLR.
    set_tables(&v.its)?;
    c.eq(
        "RESTORE_TABLES",
        set(&v.its, GRP_CTRL, CTRL_RESTORE_TABLES, 0),
        Ok(0),
    );
    must(set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1), "enable the ITS")?;
    c.eq(
        "MSI after restore",
        msi(&v.vm.vm, DOORBELL, 2, Some(DEVID)),
        Ok(1),
    );
    c.eq(
        "the restored LPI",
        next_lpi(&mut v.vcpu)?,
        u64::from(LPI + 1),
    );

    // Pending, not taken (its priority masked by PMR... simpler: disabled in the
    // property table and re-read with INV through RESTORE): its bit goes to the table.
    v.vm.mem.write(PROP_TABLE as usize + 1, &[0xa0]);
    c.eq("RESET again", set(&v.its, GRP_CTRL, CTRL_RESET, 0), Ok(0));
    set_tables(&v.its)?;
    c.eq(
        "RESTORE_TABLES again",
        set(&v.its, GRP_CTRL, CTRL_RESTORE_TABLES, 0),
        Ok(0),
    );
    must(set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1), "enable the ITS")?;
    c.eq(
        "MSI to a disabled LPI",
        msi(&v.vm.vm, DOORBELL, 2, Some(DEVID)),
        Ok(1),
    );
    let gic = &v.gic;
    c.eq(
        "SAVE_PENDING_TABLES",
        set(gic, GRP_CTRL, CTRL_SAVE_PENDING_TABLES, 0),
        Ok(0),
    );
    let byte =
        v.vm.mem
            .read_u64(PEND_TABLE as usize + (LPI as usize + 1) / 8 / 8 * 8);
    let bit = (LPI as u64 + 1) % 64;
    c.eq("its pending bit", (byte >> bit) & 1, 1);
    c.finish()
}

/// Tables outside RAM, a queue outside RAM, and IDs beyond every table: the commands
/// fail as on KVM (no mapping, the queue still drains) and the host carries on.
fn hostile_tables() -> TestResult {
    let mut c = Cases::new();
    let v = its_vm()?;
    let outside = MEM_BASE + 0x1000_0000;
    // The device table beyond RAM: MAPD cannot place the device.
    must(
        set(
            &v.its,
            GRP_ITS_REGS,
            GITS_BASER0,
            VALID | BASER_64K | outside,
        ),
        "GITS_BASER0",
    )?;
    let cwriter = queue(
        &v.vm.mem,
        &[
            mapd(DEVID, 4, MEM_BASE + ITT, true),
            mapd(u32::MAX, 32, MEM_BASE + ITT, true),
            mapc(0xffff, 0),
            mapc(0, 1 << 30),
            mapti(DEVID, 0, LPI, 0),
            mapti(DEVID, 0, u32::MAX, 0),
            int(DEVID, 0),
        ],
    );
    must(
        set(&v.its, GRP_ITS_REGS, GITS_CWRITER, cwriter),
        "GITS_CWRITER",
    )?;
    c.eq(
        "enable (runs the queue)",
        set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1),
        Ok(0),
    );
    c.eq(
        "the queue drained",
        get(&v.its, GRP_ITS_REGS, GITS_CREADR),
        Ok(cwriter),
    );
    c.eq(
        "nothing mapped",
        msi(&v.vm.vm, DOORBELL, 0, Some(DEVID)),
        Ok(0),
    );
    c.eq(
        "SAVE_TABLES into no RAM",
        set(&v.its, GRP_CTRL, CTRL_SAVE_TABLES, 0),
        Ok(0),
    );
    // A command queue outside RAM: unreadable commands are skipped.
    c.eq("RESET", set(&v.its, GRP_CTRL, CTRL_RESET, 0), Ok(0));
    set_tables(&v.its)?;
    must(
        set(&v.its, GRP_ITS_REGS, GITS_CBASER, VALID | outside),
        "GITS_CBASER",
    )?;
    must(
        set(&v.its, GRP_ITS_REGS, GITS_CWRITER, 0xfe0),
        "GITS_CWRITER",
    )?;
    c.eq("enable", set(&v.its, GRP_ITS_REGS, GITS_CTLR, 1), Ok(0));
    c.eq(
        "an unreadable queue drains too",
        get(&v.its, GRP_ITS_REGS, GITS_CREADR),
        Ok(0xfe0),
    );
    // Tables the restore cannot read: KVM's EFAULT, and the host stays up.
    c.eq("RESET again", set(&v.its, GRP_CTRL, CTRL_RESET, 0), Ok(0));
    must(
        set(
            &v.its,
            GRP_ITS_REGS,
            GITS_BASER1,
            VALID | BASER_64K | outside,
        ),
        "GITS_BASER1",
    )?;
    c.errno(
        "RESTORE_TABLES from no RAM",
        set(&v.its, GRP_CTRL, CTRL_RESTORE_TABLES, 0),
        libc::EFAULT,
    );
    c.finish()
}

/// Rounds of the storm: each vCPU takes this many LPIs, one MSI at a time.
const STORM_ROUNDS: u64 = 300;

/// A VM with two vCPUs, one collection each (ICID n on vCPU n), LPI 8192 + n mapped to
/// event n of DEVID and targeting vCPU n, and event 2 + n (LPI 8194 + n, "stop") to
/// vCPU n too: the commands run from the host (GITS_CWRITER through ITS_REGS, then GITS_CTLR enabling
/// the ITS) before any vCPU runs.
fn two_vcpu_its_vm() -> Result<(TestVm, Vec<kvm_ioctls::VcpuFd>, DeviceFd, DeviceFd), String> {
    let vm = TestVm::new(RAM, guest_kick_its())?;
    vm.mem.write(0x800 + 0x280, guest_lpi_vector());
    let vcpus = vec![vm.vcpu(0, MEM_BASE, 0)?, vm.vcpu(1, MEM_BASE, 0)?];
    let gic = create_vgic(&vm.vm)?.ok_or("no vGICv3 on this host")?;
    let its = create_its(&vm.vm)?;
    must(set(&its, GRP_ADDR, ITS_ADDR_TYPE, ITS_BASE), "ITS address")?;
    vm.mem.write(PROP_TABLE as usize, &[0xa1, 0xa1, 0xa1, 0xa1]);
    for (cpu, mpidr) in [(0u64, 0u64), (1, 1)] {
        let rd = |off: u64, v: u64| -> Result<(), String> {
            let mut v = v;
            let a = (mpidr << 32) | off;
            must(
                gic.set_device_attr(&attr(GRP_REDIST_REGS, a, &mut v))
                    .map(|()| 0)
                    .map_err(|e| e.errno()),
                "REDIST_REGS",
            )
        };
        rd(GICR_PROPBASER, (MEM_BASE + PROP_TABLE) | 15)?;
        rd(GICR_PENDBASER, MEM_BASE + PEND_TABLE + cpu * 0x1_0000)?;
        rd(GICR_CTLR, 1)?;
    }
    set_tables(&its)?;
    let cwriter = queue(
        &vm.mem,
        &[
            mapd(DEVID, 4, MEM_BASE + ITT, true),
            mapc(0, 0),
            mapc(1, 1),
            mapti(DEVID, 0, LPI, 0),
            mapti(DEVID, 1, LPI + 1, 1),
            mapti(DEVID, 2, LPI + 2, 0),
            mapti(DEVID, 3, LPI + 3, 1),
        ],
    );
    must(
        set(&its, GRP_ITS_REGS, GITS_CWRITER, cwriter),
        "GITS_CWRITER",
    )?;
    must(set(&its, GRP_ITS_REGS, GITS_CTLR, 1), "enable the ITS")?;
    // The guest writes the same CWRITER again: nothing new to run.
    vm.mem.write_u64(CWRITER_SLOT, cwriter);
    Ok((vm, vcpus, gic, its))
}

/// Pins the calling thread to host CPU `cpu` (modulo the online CPUs).
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; the calls only read and write it.
    unsafe {
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// MSIs to every vCPU, one LPI per vCPU in flight at a time, while the vCPU threads
/// hop between host CPUs (so loads and puts happen with LPIs queued and in list
/// registers): every MSI is taken exactly once, by the vCPU its collection names.
fn lpi_storm_while_vcpus_migrate() -> TestResult {
    use std::sync::atomic::{AtomicU64, Ordering};
    let (vm, vcpus, _gic, _its) = two_vcpu_its_vm()?;
    let taken = [AtomicU64::new(0), AtomicU64::new(0)];
    let wrong = AtomicU64::new(0);
    let ready = AtomicU64::new(0);
    let result = std::thread::scope(|s| -> Result<(), String> {
        let mut handles = Vec::new();
        for (n, mut vcpu) in vcpus.into_iter().enumerate() {
            let (taken, wrong, ready) = (&taken, &wrong, &ready);
            handles.push(s.spawn(move || -> Result<(), String> {
                let mut hops = 0usize;
                loop {
                    match run(&mut vcpu, 0)? {
                        Exit::MmioWrite(a, _) if a == MMIO_BASE + 8 => {
                            ready.fetch_add(1, Ordering::SeqCst);
                        }
                        Exit::MmioWrite(a, d) if a == MMIO_BASE => {
                            let intid = le_value(&d);
                            if intid == u64::from(LPI + 2) + n as u64 {
                                return Ok(());
                            }
                            if intid != u64::from(LPI) + n as u64 {
                                wrong.fetch_add(1, Ordering::SeqCst);
                            }
                            let t = taken[n].fetch_add(1, Ordering::SeqCst) + 1;
                            if t % 16 == 0 {
                                hops += 1;
                                pin_to(n + hops);
                            }
                        }
                        other => return Err(format!("vCPU {n}: unexpected exit {other:?}")),
                    }
                }
            }));
        }
        let wait = |what: &str, done: &dyn Fn() -> bool| -> Result<(), String> {
            let start = std::time::Instant::now();
            while !done() {
                if start.elapsed().as_secs() > 60 {
                    return Err(format!("timed out waiting for {what}"));
                }
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
            Ok(())
        };
        wait("both vCPUs ready", &|| ready.load(Ordering::SeqCst) == 2)?;
        for round in 1..=STORM_ROUNDS {
            for n in 0..2u32 {
                let r = msi(&vm.vm, DOORBELL, n, Some(DEVID));
                if r != Ok(1) {
                    return Err(format!("round {round}: KVM_SIGNAL_MSI to vCPU {n}: {r:?}"));
                }
            }
            for (n, t) in taken.iter().enumerate() {
                wait(&format!("vCPU {n}'s LPI of round {round}"), &|| {
                    t.load(Ordering::SeqCst) >= round
                })?;
            }
        }
        for n in 0..2u32 {
            let r = msi(&vm.vm, DOORBELL, 2 + n, Some(DEVID));
            if r != Ok(1) {
                return Err(format!("the stop MSI to vCPU {n}: {r:?}"));
            }
        }
        for h in handles {
            match h.join() {
                Ok(r) => r?,
                Err(_) => return Err("a vCPU thread panicked".into()),
            }
        }
        Ok(())
    });
    result?;
    let mut c = Cases::new();
    c.eq(
        "LPIs taken by vCPU 0",
        taken[0].load(Ordering::SeqCst),
        STORM_ROUNDS,
    );
    c.eq(
        "LPIs taken by vCPU 1",
        taken[1].load(Ordering::SeqCst),
        STORM_ROUNDS,
    );
    c.eq("LPIs on the wrong vCPU", wrong.load(Ordering::SeqCst), 0);
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_its",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("device_and_attributes", device_and_attributes),
            ("signal_msi_errors", signal_msi_errors),
            ("commands_and_msis", commands_and_msis),
            ("save_restore_round_trip", save_restore_round_trip),
            ("hostile_tables", hostile_tables),
            (
                "lpi_storm_while_vcpus_migrate",
                lpi_storm_while_vcpus_migrate,
            ),
        ],
    )
}
