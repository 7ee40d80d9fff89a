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

const OPS: [&str; 5] = ["loop", "hypercall", "mmio_user", "sysreg_trap", "mmio_user_fp_first_use"];

fn cntfrq() -> u64 {
    let f: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0 on Linux.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) f) };
    f
}

fn measure(dev: &str, op: u64, iterations: u64) -> Result<u64, String> {
    let path = std::ffi::CString::new(dev).map_err(|e| e.to_string())?;
    let kvm = Kvm::new_with_path(&path).map_err(|e| format!("open {dev}: {e}"))?;
    let vm = TestVm::on_device(kvm, GuestMem::new(1 << 20)?, bench_guest())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    set_reg(&vcpu, core_reg_x(0), op)?;
    set_reg(&vcpu, core_reg_x(1), iterations)?;
    let result = loop {
        match run(&mut vcpu, 0)? {
            Exit::MmioWrite(addr, _) if addr == MMIO_BASE => {}
            Exit::MmioWrite(addr, data) if addr == MMIO_BASE + 0x100 => {
                let mut b = [0u8; 8];
                b[..data.len()].copy_from_slice(&data);
                break Ok(u64::from_le_bytes(b));
            }
            other => break Err(format!("op {op}: unexpected exit {other:?}")),
        }
    };
    drop(vcpu);
    result
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dev = args.get(1).map_or("/dev/rkvm", String::as_str);
    let iterations: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let freq = cntfrq();
    for (op, name) in OPS.iter().enumerate() {
        match measure(dev, op as u64, iterations) {
            Ok(ticks) => println!("bench,{name},{ticks},{iterations},{freq}"),
            Err(e) => println!("bench,{name},error,{iterations},{freq},{e}"),
        }
    }
}
