// SPDX-License-Identifier: GPL-2.0

//! World-switch micro-benchmarks, run the same way against rkvm and in-kernel KVM.
//!
//! Each operation runs in a guest loop timed with the guest's virtual counter; under
//! QEMU's `-icount shift=0` virtual time advances 1 ns per instruction executed on the
//! emulated CPU, at every exception level, so `ticks * 1e9 / CNTFRQ` counts the
//! instructions an operation costs, independent of the build machine's load.
//!
//! Usage: `bench <device> <iterations>`; prints `bench,<op>,<ticks>,<iterations>,<cntfrq>`.

use kvm_ioctls::Kvm;
use rkvm_selftests::vmm::*;
use rkvm_selftests::{guest_code, pin_to_cpu};

// x0 = operation, x1 = iterations, x2 = vCPU index, x4 = the timer op's lead in ticks. Reports the elapsed counter ticks (or,
// for the timer op, the summed interrupt latency) at MMIO_BASE + 0x100 and powers off. FP
// is enabled for the guest; op 4 touches it once per iteration after an exit to
// userspace (which puts the vCPU, so each use is a first use after a load).
//
// Ops 5 and up use the vGICv3 the VMM created (distributor at 0x0800_0000, redistributors
// from 0x080a_0000, 128 KiB each, in vCPU order): each vCPU enables its redistributor,
// SGIs 0-15 and PPI 27 in group 1, and its CPU interface (PMR 0xff). Interrupts stay masked
// in PSTATE; the guest takes them by reading ICC_IAR1_EL1 (1023: none pending) and
// completes them with ICC_EOIR1_EL1, so no vector table is involved.
guest_code!(
    bench_guest,
    "movz x3, #0x30, lsl #16",
    "msr cpacr_el1, x3",
    "isb",
    "movz x19, #0x1000, lsl #16",
    "mov x20, x1",
    "mov x23, x0",
    "mov x24, x2",
    "cmp x23, #5",
    "b.lo 2f",
    // GIC set-up (ops >= 5).
    "movz x10, #0x0800, lsl #16",
    "mov w11, #0x12",
    "str w11, [x10]", // GICD_CTLR: ARE, Grp1
    "movz x12, #0x080a, lsl #16",
    "add x12, x12, x24, lsl #17",
    "ldr w11, [x12, #0x14]",
    "bic w11, w11, #2",
    "str w11, [x12, #0x14]", // GICR_WAKER
    "add x13, x12, #0x10, lsl #12",
    "mov w11, #-1",
    "str w11, [x13, #0x80]", // GICR_IGROUPR0: group 1
    "movz w11, #0xffff",
    "movk w11, #0x0800, lsl #16",
    "str w11, [x13, #0x100]", // ISENABLER0
    "mov x11, #1",
    "msr s3_0_c12_c12_5, x11",
    "isb", // ICC_SRE_EL1.SRE
    "mov x11, #0xff",
    "msr s3_0_c4_c6_0, x11", // ICC_PMR_EL1
    "mov x11, #1",
    "msr s3_0_c12_c12_7, x11",
    "isb", // ICC_IGRPEN1_EL1
    // SGI 1 to the other vCPU of a pair (Aff0 = 1 - index), for op 7.
    "mov x14, #1",
    "sub x15, x14, x24",
    "lsl x14, x14, x15",
    "orr x14, x14, #(1 << 24)",
    // SGI 2 to this vCPU, for op 6.
    "mov x16, #1",
    "lsl x16, x16, x24",
    "orr x16, x16, #(2 << 24)",
    "2: mov x22, #0",
    "isb",
    "mrs x21, cntvct_el0",
    "cmp x23, #1",
    "b.eq 11f",
    "cmp x23, #2",
    "b.eq 12f",
    "cmp x23, #3",
    "b.eq 13f",
    "cmp x23, #4",
    "b.eq 14f",
    "cmp x23, #5",
    "b.eq 15f",
    "cmp x23, #6",
    "b.eq 16f",
    "cmp x23, #7",
    "b.eq 17f",
    "cmp x23, #8",
    "b.eq 18f",
    // op 0: the empty loop.
    "10: subs x20, x20, #1",
    "b.ne 10b",
    "b 90f",
    // op 1: a hypercall handled by the hypervisor (PSCI_VERSION).
    "11: movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "subs x20, x20, #1",
    "b.ne 11b",
    "b 90f",
    // op 2: an MMIO write that exits to the VMM and back.
    "12: str x20, [x19]",
    "subs x20, x20, #1",
    "b.ne 12b",
    "b 90f",
    // op 3: a trapped system-register read emulated by the hypervisor.
    "13: mrs x0, id_aa64pfr0_el1",
    "subs x20, x20, #1",
    "b.ne 13b",
    "b 90f",
    // op 4: an MMIO exit, then the first FP instruction after the vCPU is loaded again.
    "14: str x20, [x19]",
    "fmov d0, x20",
    "subs x20, x20, #1",
    "b.ne 14b",
    "b 90f",
    // op 5: MMIO emulated in the kernel: a distributor register read (GICD_TYPER).
    "15: ldr w0, [x10, #4]",
    "subs x20, x20, #1",
    "b.ne 15b",
    "b 90f",
    // op 6: an SGI to itself, acknowledged and EOI'd by the guest.
    "16: msr s3_0_c12_c11_5, x16",
    "isb",
    "61: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 61b",
    "msr s3_0_c12_c12_1, x0",
    "subs x20, x20, #1",
    "b.ne 16b",
    "b 90f",
    // op 7: IPI round trip between two vCPUs waiting in WFI: vCPU 0 sends SGI 1 and
    // waits; vCPU 1 wakes, acknowledges, EOIs and answers with SGI 1.
    "17: cbnz x24, 72f",
    "71: msr s3_0_c12_c11_5, x14",
    "isb",
    "73: wfi",
    "mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 73b",
    "msr s3_0_c12_c12_1, x0",
    "subs x20, x20, #1",
    "b.ne 71b",
    "b 90f",
    "72: wfi",
    "mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 72b",
    "msr s3_0_c12_c12_1, x0",
    "msr s3_0_c12_c11_5, x14",
    "isb",
    "subs x20, x20, #1",
    "b.ne 72b",
    "b 90f",
    // op 8: virtual timer interrupt latency, the way a Linux guest's periodic tick runs:
    // the deadline is x4 ticks ahead; the guest polls for PPI 27, adds (counter at the
    // acknowledge - deadline) to x22, programs the next deadline before its EOI (as the
    // kernel's timer handler does) and EOIs. x22 is reported instead of the time.
    "18: mrs x5, cntvct_el0",
    "add x5, x5, x4",
    "msr cntv_cval_el0, x5",
    "mov x6, #1",
    "msr cntv_ctl_el0, x6",
    "isb",
    "81: mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 81b",
    "isb",
    "mrs x6, cntvct_el0",
    "sub x7, x6, x5",
    "add x22, x22, x7",
    "add x5, x6, x4",
    "msr cntv_cval_el0, x5",
    "isb",
    "msr s3_0_c12_c12_1, x0",
    "subs x20, x20, #1",
    "b.ne 81b",
    "msr cntv_ctl_el0, xzr",
    "str x22, [x19, #0x100]",
    "b 99f",
    "90: isb",
    "mrs x22, cntvct_el0",
    "sub x22, x22, x21",
    "str x22, [x19, #0x100]",
    "99: movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// Where the vCPU threads of an operation run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// One vCPU.
    Single,
    /// Two vCPUs, each pinned to its own host CPU.
    TwoCpus,
    /// Two vCPUs pinned to the same host CPU, so that each wake-up of one is a switch
    /// from the other thread (a put and a load).
    OneCpu,
}

/// One row: the guest's op number, where its vCPUs run, and how the VM is set up.
struct Op {
    name: &'static str,
    op: u64,
    placement: Placement,
    /// The timer op's deadline lead in counter ticks.
    lead: u64,
    /// `KVM_CAP_HALT_POLL` set to 0 on the VM: WFI sleeps at once, on both hypervisors.
    no_poll: bool,
}

const fn op(name: &'static str, op: u64, placement: Placement) -> Op {
    Op {
        name,
        op,
        placement,
        lead: 2000,
        no_poll: false,
    }
}

/// Not a guest op: `KVM_RUN` with `immediate_exit` set, timed by the VMM (the ioctl path
/// alone).
const RUN_IMMEDIATE_EXIT: u64 = 100;

/// The operations (op 7 runs with three set-ups, op 8 with two leads). The measurement is
/// vCPU 0's.
const OPS: [Op; 13] = [
    op("loop", 0, Placement::Single),
    op("hypercall", 1, Placement::Single),
    op("mmio_user", 2, Placement::Single),
    op("sysreg_trap", 3, Placement::Single),
    op("mmio_user_fp_first_use", 4, Placement::Single),
    op("mmio_kernel", 5, Placement::Single),
    op("sgi_self_ack_eoi", 6, Placement::Single),
    op("ipi_round_trip", 7, Placement::TwoCpus),
    Op {
        no_poll: true,
        ..op("ipi_round_trip_no_poll", 7, Placement::TwoCpus)
    },
    op("ipi_round_trip_one_cpu", 7, Placement::OneCpu),
    op("timer_irq_latency", 8, Placement::Single),
    Op {
        lead: 20_000,
        ..op("timer_irq_latency_long_lead", 8, Placement::Single)
    },
    op(
        "kvm_run_immediate_exit",
        RUN_IMMEDIATE_EXIT,
        Placement::Single,
    ),
];

/// The host's virtual counter, for what the VMM times itself.
fn cntvct() -> u64 {
    let t: u64;
    // SAFETY: CNTVCT_EL0 is readable at EL0 on Linux; the ISB keeps the read in order.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) t) };
    t
}

/// `iterations` `KVM_RUN`s with `immediate_exit` set (each `EINTR` before any guest
/// entry), after one to finish the vCPU's first-run set-up; their ticks.
fn time_immediate_exits(vcpu: &mut kvm_ioctls::VcpuFd, iterations: u64) -> Result<u64, String> {
    vcpu.get_kvm_run().immediate_exit = 1;
    let once = |vcpu: &mut kvm_ioctls::VcpuFd| match vcpu.run() {
        Err(e) if e.errno() == libc::EINTR => Ok(()),
        other => Err(format!("immediate exit: {other:?}")),
    };
    once(vcpu)?;
    let start = cntvct();
    for _ in 0..iterations {
        once(vcpu)?;
    }
    Ok(cntvct() - start)
}

fn cntfrq() -> u64 {
    let f: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0 on Linux.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

/// Runs vCPU `vcpu` of the benchmark guest until it reports its elapsed ticks.
fn run_to_report(vcpu: &mut kvm_ioctls::VcpuFd, op: u64) -> Result<u64, String> {
    loop {
        match run(vcpu, 0)? {
            Exit::MmioWrite(addr, _) if addr == MMIO_BASE => {}
            Exit::MmioWrite(addr, data) if addr == MMIO_BASE + 0x100 => return Ok(le_value(&data)),
            other => return Err(format!("op {op}: unexpected exit {other:?}")),
        }
    }
}

fn measure(dev: &str, o: &Op, iterations: u64) -> Result<u64, String> {
    let (op, placement) = (o.op, o.placement);
    let path = std::ffi::CString::new(dev).map_err(|e| e.to_string())?;
    let kvm = Kvm::new_with_path(&path).map_err(|e| format!("open {dev}: {e}"))?;
    let vm = TestVm::on_device(kvm, GuestMem::new(1 << 20)?, bench_guest())?;
    if o.no_poll {
        let cap = kvm_bindings::kvm_enable_cap {
            cap: kvm_bindings::KVM_CAP_HALT_POLL,
            ..Default::default()
        };
        vm.vm
            .enable_cap(&cap)
            .map_err(|e| format!("KVM_CAP_HALT_POLL: {e}"))?;
    }
    let ncpus = if placement == Placement::Single { 1 } else { 2 };
    let mut vcpus = Vec::new();
    for id in 0..ncpus {
        let vcpu = vm.vcpu(id, MEM_BASE, 0)?;
        set_reg(&vcpu, core_reg_x(0), op)?;
        set_reg(&vcpu, core_reg_x(1), iterations)?;
        set_reg(&vcpu, core_reg_x(2), id)?;
        set_reg(&vcpu, core_reg_x(4), o.lead)?;
        vcpus.push(vcpu);
    }
    let _gic = if (5..RUN_IMMEDIATE_EXIT).contains(&op) {
        Some(create_vgic(&vm.vm)?.ok_or("no vGICv3 (ENODEV)")?)
    } else {
        None
    };
    let mut first = vcpus.remove(0);
    if op == RUN_IMMEDIATE_EXIT {
        return time_immediate_exits(&mut first, iterations);
    }
    let last_cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let (cpu0, cpu1) = match placement {
        Placement::Single => return run_to_report(&mut first, op),
        Placement::TwoCpus => (0, last_cpu),
        Placement::OneCpu => (last_cpu, last_cpu),
    };
    let mut second = vcpus.remove(0);
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            pin_to_cpu(cpu1)?;
            run_to_report(&mut second, op)
        });
        let mine = pin_to_cpu(cpu0).and_then(|()| run_to_report(&mut first, op));
        let theirs = other
            .join()
            .map_err(|_| "the second vCPU thread panicked".to_string())?;
        theirs.and(mine)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dev = args.get(1).map_or("/dev/rkvm", String::as_str);
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let freq = cntfrq();
    println!("bench-ops,{}", OPS.len());
    for o in &OPS {
        let name = o.name;
        match measure(dev, o, iterations) {
            Ok(ticks) => println!("bench,{name},{ticks},{iterations},{freq}"),
            Err(e) => println!("bench,{name},error,{iterations},{freq},{e}"),
        }
    }
}
