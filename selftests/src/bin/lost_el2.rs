// SPDX-License-Identifier: GPL-2.0

//! A CPU that loses EL2 (nVHE hosts). A power-down idle state or suspend ends with
//! `cpu_resume` installing the kernel's hyp stub: rkvm's runtime is gone from that CPU
//! unless CPU_PM gives it back. rkvm's `el2_test` parameter puts the writer's CPU in
//! those states for real: 1 gives EL2 back to the stub behind rkvm (a power-down nothing
//! was told about), 2 runs the CPU through CPU_PM around the same loss.
//!
//! On such a CPU, `KVM_RUN` must report `KVM_EXIT_FAIL_ENTRY` for that CPU (KVM's
//! `ARM_EXCEPTION_HYP_GONE`), not handle the stub's answer as a guest exit with the
//! previous syndrome, and leave the guest as it was: once CPU_PM or hotplug reinstalled
//! the runtime, the guest goes on where it stopped. A VMID TLB invalidation requested
//! from that CPU is issued by another CPU that still has the runtime.

use kvm_ioctls::{VcpuExit, VcpuFd};
use rkvm_selftests::{
    check, check_eq, cmdline_param, guest_code, pin_to_cpu, run_or_skip,
    vmm::{core_reg_pc, get_reg, run, smoke_vm, Exit, GuestMem, TestVm, MEM_BASE, MMIO_BASE},
    KernelLog, Outcome, TestResult,
};

const KNOB: &str = "/sys/module/rkvm/parameters/el2_test";

// Writes 1, 2, 3, ... to MMIO_BASE, one per exit.
guest_code!(
    counter_guest,
    "movz x1, #0x1000, lsl #16",
    "mov x0, #0",
    "1: add x0, x0, #1",
    "str x0, [x1]",
    "b 1b"
);

// Reads the u64 at MEM_BASE + 2 MiB (a second memslot) and writes it to MMIO_BASE, forever.
guest_code!(
    reader_guest,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x4020, lsl #16",
    "1: ldr x0, [x2]",
    "str x0, [x1]",
    "b 1b"
);

/// Acts on the CPU the calling thread runs on (it must be pinned).
fn knob(cmd: u32) -> Result<(), String> {
    std::fs::write(KNOB, cmd.to_string()).map_err(|e| format!("{KNOB} = {cmd}: {e}"))
}

/// The online CPUs, from `/sys/devices/system/cpu/online` ("0-1", "0,2-3").
fn online_cpus() -> Result<Vec<u32>, String> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").map_err(|e| e.to_string())?;
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (
            a.parse().map_err(|_| s.clone())?,
            b.parse().map_err(|_| s.clone())?,
        );
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// The CPU the tests take EL2 from: the last one online (not CPU 0, which stays up
/// when the hotplug test takes it offline).
fn victim() -> Result<u32, String> {
    let cpus = online_cpus()?;
    check!(
        cpus.len() >= 2,
        "only {cpus:?} online: the test needs 2 CPUs"
    );
    Ok(*cpus.last().unwrap())
}

/// Runs `f` on a thread pinned to `cpu`; afterwards that CPU gets the runtime back
/// through CPU_PM whatever `f` did, so later tests find EL2 as they expect.
fn on_cpu(cpu: u32, f: impl FnOnce() -> Result<(), String> + Send + 'static) -> TestResult {
    std::thread::spawn(move || {
        pin_to_cpu(cpu as usize)?;
        let ret = f();
        let restore = knob(2);
        ret.and(restore)
    })
    .join()
    .map_err(|_| format!("cpu{cpu}: the test thread panicked"))??;
    Ok(Outcome::Pass)
}

fn counter_value(exit: Exit) -> Result<u64, String> {
    match exit {
        Exit::MmioWrite(addr, data) if addr == MMIO_BASE && data.len() == 8 => {
            Ok(u64::from_le_bytes(data.try_into().unwrap()))
        }
        other => Err(format!("expected the guest's MMIO write, got {other:?}")),
    }
}

/// `KVM_RUN` must end in `KVM_EXIT_FAIL_ENTRY` on `cpu`, with no reason bit
/// (`KVM_EXIT_FAIL_ENTRY_CPU_UNSUPPORTED` is for CPUs a VM may not use).
fn expect_fail_entry(vcpu: &mut VcpuFd, cpu: u32) -> Result<(), String> {
    match vcpu.run() {
        Ok(VcpuExit::FailEntry(reason, on)) => {
            check_eq!(reason, 0);
            check_eq!(on, cpu);
            Ok(())
        }
        Ok(other) => Err(format!(
            "KVM_RUN with EL2 lost on cpu{cpu}: {other:?}, not KVM_EXIT_FAIL_ENTRY"
        )),
        Err(e) => Err(format!("KVM_RUN with EL2 lost on cpu{cpu}: {e}")),
    }
}

fn fail_entry_then_resume_after_cpu_pm() -> TestResult {
    let cpu = victim()?;
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    on_cpu(cpu, move || {
        let vm = TestVm::new(1 << 20, counter_guest())?;
        let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        check_eq!(counter_value(run(&mut vcpu, 0)?)?, 1);
        knob(1)?;
        // (This KVM_RUN first completes the MMIO write: PC moves past the store.)
        expect_fail_entry(&mut vcpu, cpu)?;
        let pc = get_reg(&vcpu, core_reg_pc())?;
        // Nothing reinstalls behind the kernel's back: the next entry fails the same way,
        // and the guest did not move.
        expect_fail_entry(&mut vcpu, cpu)?;
        check_eq!(get_reg(&vcpu, core_reg_pc())?, pc);
        // CPU_PM gives the runtime back and the guest goes on where it stopped.
        knob(2)?;
        check_eq!(counter_value(run(&mut vcpu, 0)?)?, 2);
        check_eq!(counter_value(run(&mut vcpu, 0)?)?, 3);
        Ok(())
    })?;
    log.check_clean()?;
    Ok(Outcome::Pass)
}

/// CPU_PM with the runtime in place (a power-down that rkvm was told about) on every
/// CPU: a guest loaded before keeps running, and new VMs run.
fn cpu_pm_cycles_on_every_cpu() -> TestResult {
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    for cpu in online_cpus()? {
        on_cpu(cpu, move || {
            let vm = TestVm::new(1 << 20, counter_guest())?;
            let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
            for round in 1..=3 {
                check_eq!(counter_value(run(&mut vcpu, 0)?)?, round);
                knob(2)?;
            }
            smoke_vm().map_err(|e| format!("cpu{cpu}: {e}"))
        })?;
    }
    log.check_clean()?;
    Ok(Outcome::Pass)
}

fn set_online(cpu: u32, on: bool) -> Result<(), String> {
    std::fs::write(
        format!("/sys/devices/system/cpu/cpu{cpu}/online"),
        if on { "1" } else { "0" },
    )
    .map_err(|e| format!("cpu{cpu} online={}: {e}", u8::from(on)))
}

/// Hotplug gives a CPU that lost EL2 the runtime again (its teardown finds the stub).
fn hotplug_reinstalls_lost_el2() -> TestResult {
    let cpu = victim()?;
    if !std::path::Path::new(&format!("/sys/devices/system/cpu/cpu{cpu}/online")).exists() {
        return Ok(Outcome::Skip(format!("cpu{cpu} cannot go offline")));
    }
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        pin_to_cpu(cpu as usize)?;
        knob(1)
    })
    .join()
    .map_err(|_| "the knob thread panicked".to_string())??;
    set_online(cpu, false)?;
    set_online(cpu, true)?;
    on_cpu(cpu, move || {
        smoke_vm().map_err(|e| format!("cpu{cpu} after hotplug: {e}"))
    })?;
    log.check_clean()?;
    Ok(Outcome::Pass)
}

/// A memslot deleted from a CPU that lost EL2: its VMID invalidation must still happen
/// (issued by another CPU), and the guest on another CPU finds the slot gone. Under
/// emulation a missed invalidation would not show in the guest (QEMU flushes its TLB on
/// every VTTBR_EL2 change), so the kernel's report of where it was issued is checked.
fn tlb_flush_from_a_cpu_without_el2() -> TestResult {
    let cpus = online_cpus()?;
    check!(
        cpus.len() >= 2,
        "only {cpus:?} online: the test needs 2 CPUs"
    );
    let (runner, lost) = (cpus[0], *cpus.last().unwrap());
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    std::thread::spawn(move || -> Result<(), String> {
        let mem = GuestMem::new(4 << 20)?;
        mem.write_u64(2 << 20, 0x1234_5678);
        let vm = TestVm::with_mem(GuestMem::new(1 << 20)?, reader_guest())?;
        let slot = kvm_bindings::kvm_userspace_memory_region {
            slot: 1,
            flags: 0,
            guest_phys_addr: MEM_BASE + (2 << 20),
            memory_size: 2 << 20,
            userspace_addr: mem.ptr as u64 + (2 << 20),
        };
        // SAFETY: `mem` outlives the slot: it is deleted below, and `vm` drops first.
        unsafe { vm.vm.set_user_memory_region(slot) }.map_err(|e| format!("slot 1: {e}"))?;
        let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        pin_to_cpu(runner as usize)?;
        check_eq!(counter_value(run(&mut vcpu, 0)?)?, 0x1234_5678);
        pin_to_cpu(lost as usize)?;
        knob(1)?;
        let gone = kvm_bindings::kvm_userspace_memory_region {
            memory_size: 0,
            ..slot
        };
        // SAFETY: deleting the slot.
        let deleted = unsafe { vm.vm.set_user_memory_region(gone) };
        let restored = knob(2);
        deleted.map_err(|e| format!("deleting slot 1: {e}"))?;
        restored?;
        pin_to_cpu(runner as usize)?;
        match run(&mut vcpu, 0)? {
            Exit::MmioRead(addr, 8) if addr == MEM_BASE + (2 << 20) => Ok(()),
            other => Err(format!("after the slot went: {other:?}, not an MMIO read")),
        }
    })
    .join()
    .map_err(|_| "the test thread panicked".to_string())??;
    let msgs = log.new_messages();
    let trouble = rkvm_selftests::kernel_trouble(&msgs);
    check!(
        trouble.is_empty(),
        "the kernel log shows trouble:\n{}",
        trouble.join("\n")
    );
    let want = format!("rkvm: CPU {lost} lost the EL2 runtime: TLB invalidation issued on CPU");
    check!(
        msgs.iter().any(|m| m.contains(&want)),
        "no \"{want}\" in the kernel log:\n{}",
        msgs.join("\n")
    );
    Ok(Outcome::Pass)
}

fn main() {
    let nvhe = cmdline_param("rkvmtest.backend").as_deref() == Some("nVHE");
    run_or_skip(
        "rkvm_lost_el2",
        nvhe,
        "not an nVHE host: the kernel itself owns EL2",
        &[
            (
                "fail_entry_then_resume_after_cpu_pm",
                fail_entry_then_resume_after_cpu_pm,
            ),
            ("cpu_pm_cycles_on_every_cpu", cpu_pm_cycles_on_every_cpu),
            ("hotplug_reinstalls_lost_el2", hotplug_reinstalls_lost_el2),
            (
                "tlb_flush_from_a_cpu_without_el2",
                tlb_flush_from_a_cpu_without_el2,
            ),
        ],
    )
}
