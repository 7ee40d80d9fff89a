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
use rkvm_selftests::guest_code;
use rkvm_selftests::vmm::*;

// x0 = operation, x1 = iterations. Reports the elapsed counter ticks at MMIO_BASE + 0x100
// and powers off. FP is enabled for the guest; op 4 touches it once per iteration after
// an exit to userspace (which puts the vCPU, so each use is a first use after a load).
guest_code!(bench_guest,
    "movz x3, #0x30, lsl #16", "msr cpacr_el1, x3", "isb",
    "movz x19, #0x1000, lsl #16", "mov x20, x1", "mov x23, x0",
    "isb", "mrs x21, cntvct_el0",
    "cmp x23, #1", "b.eq 11f", "cmp x23, #2", "b.eq 12f", "cmp x23, #3", "b.eq 13f",
    "cmp x23, #4", "b.eq 14f",
    // op 0: the empty loop.
    "10: subs x20, x20, #1", "b.ne 10b", "b 90f",
    // op 1: a hypercall handled by the hypervisor (PSCI_VERSION).
    "11: movz x0, #0", "movk x0, #0x8400, lsl #16", "hvc #0", "subs x20, x20, #1", "b.ne 11b", "b 90f",
    // op 2: an MMIO write that exits to the VMM and back.
    "12: str x20, [x19]", "subs x20, x20, #1", "b.ne 12b", "b 90f",
    // op 3: a trapped system-register read emulated by the hypervisor.
    "13: mrs x0, id_aa64pfr0_el1", "subs x20, x20, #1", "b.ne 13b", "b 90f",
    // op 4: an MMIO exit, then the first FP instruction after the vCPU is loaded again.
    "14: str x20, [x19]", "fmov d0, x20", "subs x20, x20, #1", "b.ne 14b", "b 90f",
    "90: isb", "mrs x22, cntvct_el0", "sub x22, x22, x21", "str x22, [x19, #0x100]",
    "movz x0, #8", "movk x0, #0x8400, lsl #16", "hvc #0", "b .");

/// The operations, by the guest's op number, and whether each runs on two vCPU threads
/// sharing one host CPU (the measurement is vCPU 0's).
const OPS: [(&str, bool); 5] = [
    ("loop", false),
    ("hypercall", false),
    ("mmio_user", false),
    ("sysreg_trap", false),
    ("mmio_user_fp_first_use", false),
];

/// Pins the calling thread to host CPU `cpu`.
fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is the empty set; the calls only read and write it.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!("sched_setaffinity: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
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

fn measure(dev: &str, op: u64, pair: bool, iterations: u64) -> Result<u64, String> {
    let path = std::ffi::CString::new(dev).map_err(|e| e.to_string())?;
    let kvm = Kvm::new_with_path(&path).map_err(|e| format!("open {dev}: {e}"))?;
    let vm = TestVm::on_device(kvm, GuestMem::new(1 << 20)?, bench_guest())?;
    let ncpus = if pair { 2 } else { 1 };
    let mut vcpus = Vec::new();
    for id in 0..ncpus {
        let vcpu = vm.vcpu(id, MEM_BASE, 0)?;
        set_reg(&vcpu, core_reg_x(0), op)?;
        set_reg(&vcpu, core_reg_x(1), iterations)?;
        vcpus.push(vcpu);
    }
    let mut first = vcpus.remove(0);
    if !pair {
        return run_to_report(&mut first, op);
    }
    // Both vCPU threads on the last host CPU, so they take turns on it.
    let cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let mut second = vcpus.remove(0);
    std::thread::scope(|s| {
        let other = s.spawn(move || {
            pin_to(cpu)?;
            run_to_report(&mut second, op)
        });
        let mine = pin_to(cpu).and_then(|()| run_to_report(&mut first, op));
        let theirs = other.join().map_err(|_| "the second vCPU thread panicked".to_string())?;
        theirs.and(mine)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dev = args.get(1).map_or("/dev/rkvm", String::as_str);
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let freq = cntfrq();
    println!("bench-ops,{}", OPS.len());
    for (op, (name, pair)) in OPS.iter().enumerate() {
        match measure(dev, op as u64, *pair, iterations) {
            Ok(ticks) => println!("bench,{name},{ticks},{iterations},{freq}"),
            Err(e) => println!("bench,{name},error,{iterations},{freq},{e}"),
        }
    }
}
