// SPDX-License-Identifier: GPL-2.0

//! The `make run` demo: a tiny VMM on rkvm. It loads a guest payload, runs it on two
//! vCPUs, and prints what the guest did: text written to an emulated UART (MMIO), a
//! computation, a secondary vCPU started with PSCI CPU_ON, and a PSCI SYSTEM_OFF.

use kvm_bindings::KVM_ARM_VCPU_POWER_OFF;
use rkvm_selftests::guest_code;
use rkvm_selftests::vmm::*;

/// The emulated UART's data register: each byte the guest stores there is printed.
const UART: u64 = MMIO_BASE;

// vCPU 0: print the greeting (NUL-terminated at MEM_BASE + 0x800), compute 10!, report it
// at UART + 8, start vCPU 1 at MEM_BASE + 0x400, wait for its report in RAM, power off.
guest_code!(
    demo_primary,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x4000, lsl #16",
    "add x2, x2, #0x800",
    "1: ldrb w3, [x2], #1",
    "cbz w3, 2f",
    "strb w3, [x1]",
    "b 1b",
    "2: mov x4, #1",
    "mov x5, #1",
    "3: mul x4, x4, x5",
    "add x5, x5, #1",
    "cmp x5, #11",
    "b.ne 3b",
    "str x4, [x1, #8]",
    "movz x0, #3",
    "movk x0, #0xc400, lsl #16",
    "mov x1, #1",
    "movz x2, #0x4000, lsl #16",
    "add x2, x2, #0x400",
    "movz x3, #0x1234",
    "hvc #0",
    "movz x6, #0x4000, lsl #16",
    "add x6, x6, #0xc00",
    "4: ldr x7, [x6]",
    "cbz x7, 4b",
    "movz x1, #0x1000, lsl #16",
    "str x7, [x1, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// vCPU 1: store its context id (x0) plus its MPIDR affinity into RAM, then CPU_OFF.
guest_code!(
    demo_secondary,
    "mrs x1, mpidr_el1",
    "and x1, x1, #0xff",
    "add x0, x0, x1, lsl #32",
    "movz x6, #0x4000, lsl #16",
    "add x6, x6, #0xc00",
    "str x0, [x6]",
    "movz x0, #2",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn main() {
    if let Err(e) = demo() {
        eprintln!("rkvm-demo: {e}");
        std::process::exit(1);
    }
}

fn demo() -> Result<(), String> {
    let vm = TestVm::new(1 << 20, demo_primary())?;
    println!(
        "rkvm-demo: API version {}, VM with 1 MiB of RAM at {MEM_BASE:#x}",
        vm.kvm.get_api_version()
    );
    vm.mem.write(0x400, demo_secondary());
    vm.mem
        .write(0x800, b"Hello from a guest running on rkvm!\n\0");
    let mut v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE + 0x400, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    let secondary = std::thread::spawn(move || run(&mut v1, 0));

    let mut line = String::new();
    loop {
        match run(&mut v0, 0)? {
            Exit::MmioWrite(UART, data) => {
                let c = char::from(data[0]);
                if c == '\n' {
                    println!("rkvm-demo: guest UART: {line}");
                    line.clear();
                } else {
                    line.push(c);
                }
            }
            Exit::MmioWrite(addr, data) if addr == UART + 8 => {
                println!("rkvm-demo: the guest computed 10! = {}", u64_of(&data));
            }
            Exit::MmioWrite(addr, data) if addr == UART + 16 => {
                let v = u64_of(&data);
                println!(
                    "rkvm-demo: vCPU 1 started by PSCI CPU_ON with context {:#x}, MPIDR affinity {}",
                    v & 0xffff_ffff,
                    v >> 32
                );
            }
            Exit::SystemEvent(1) => {
                println!("rkvm-demo: the guest powered off (PSCI SYSTEM_OFF)");
                break;
            }
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    drop(secondary);
    Ok(())
}

fn u64_of(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..data.len()].copy_from_slice(data);
    u64::from_le_bytes(b)
}
