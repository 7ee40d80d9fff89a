// SPDX-License-Identifier: GPL-2.0

//! CPU hotplug with rkvm loaded: CPUs go offline and come back through sysfs while no VM
//! runs, then a VM runs on every CPU. On an nVHE host each offline gives that CPU's EL2
//! back to the hyp stub and each online installs rkvm's runtime again (a CPU hotplug
//! state); a CPU that came back without the runtime could not run the guest. Also: rkvm
//! unloads and loads again after the cycles, and the kernel log stays clean.

use rkvm_selftests::{
    check, host_runs_guests, module, pin_to_cpu, run_or_skip, vmm::smoke_vm, KernelLog, Outcome,
    TestResult,
};

/// The CPUs the tests take offline: those with an `online` file except CPU 0, which stays
/// up (the kernel refuses to offline the last CPU).
fn hotpluggable_cpus() -> Vec<u32> {
    let mut cpus: Vec<u32> = std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .filter(|n| *n != 0 && std::path::Path::new(&online_path(*n)).exists())
        .collect();
    cpus.sort_unstable();
    cpus
}

fn online_path(cpu: u32) -> String {
    format!("/sys/devices/system/cpu/cpu{cpu}/online")
}

fn set_online(cpu: u32, on: bool) -> Result<(), String> {
    std::fs::write(online_path(cpu), if on { "1" } else { "0" })
        .map_err(|e| format!("cpu{cpu} online={}: {e}", u8::from(on)))
}

fn is_online(cpu: u32) -> Result<bool, String> {
    let s = std::fs::read_to_string(online_path(cpu)).map_err(|e| format!("cpu{cpu}: {e}"))?;
    Ok(s.trim() == "1")
}

/// The CPUs online now (`/sys/devices/system/cpu/online`, e.g. "0-1" or "0,2-3").
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

/// Runs the smoke VM on a thread pinned to `cpu`.
fn vm_on_cpu(cpu: u32) -> Result<(), String> {
    std::thread::spawn(move || {
        pin_to_cpu(cpu as usize)?;
        // SAFETY: no preconditions.
        let now = unsafe { libc::sched_getcpu() };
        if now != cpu as i32 {
            return Err(format!("pinned to cpu{cpu} but running on cpu{now}"));
        }
        smoke_vm().map_err(|e| format!("cpu{cpu}: {e}"))
    })
    .join()
    .map_err(|_| format!("cpu{cpu}: the VM thread panicked"))?
}

fn vm_on_every_cpu() -> TestResult {
    let cpus = online_cpus()?;
    check!(
        cpus.len() >= 2,
        "only {cpus:?} online: the host needs at least 2 CPUs"
    );
    for cpu in cpus {
        vm_on_cpu(cpu)?;
    }
    Ok(Outcome::Pass)
}

fn offline_online_cycles_without_vms() -> TestResult {
    let cpus = hotpluggable_cpus();
    if cpus.is_empty() {
        return Ok(Outcome::Skip("no CPU can go offline".into()));
    }
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    for round in 0..5 {
        for &cpu in &cpus {
            set_online(cpu, false).map_err(|e| format!("round {round}: {e}"))?;
            check!(!is_online(cpu)?, "round {round}: cpu{cpu} still online");
        }
        // With those CPUs down, guests still run on the others.
        smoke_vm().map_err(|e| format!("round {round}, CPUs {cpus:?} offline: {e}"))?;
        for &cpu in &cpus {
            set_online(cpu, true).map_err(|e| format!("round {round}: {e}"))?;
            check!(is_online(cpu)?, "round {round}: cpu{cpu} did not come back");
        }
    }
    log.check_clean()?;
    Ok(Outcome::Pass)
}

fn vm_on_every_cpu_after_hotplug() -> TestResult {
    vm_on_every_cpu()
}

/// An offline CPU at unload and at load: the runtime must be given back by the CPUs that
/// have it, and installed on the one that comes online after the load.
fn unload_and_load_with_a_cpu_offline() -> TestResult {
    let Some(&cpu) = hotpluggable_cpus().last() else {
        return Ok(Outcome::Skip("no CPU can go offline".into()));
    };
    let mut log = KernelLog::mark().map_err(|e| e.to_string())?;
    set_online(cpu, false)?;
    module::unload().map_err(|e| format!("unload with cpu{cpu} offline: errno {e}"))?;
    module::load().map_err(|e| format!("load with cpu{cpu} offline: errno {e}"))?;
    smoke_vm()?;
    set_online(cpu, true)?;
    vm_on_cpu(cpu)?;
    module::unload().map_err(|e| format!("unload: errno {e}"))?;
    module::load().map_err(|e| format!("reload: errno {e}"))?;
    vm_on_every_cpu()?;
    log.check_clean()?;
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_cpu_hotplug",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("vm_on_every_cpu", vm_on_every_cpu),
            (
                "offline_online_cycles_without_vms",
                offline_online_cycles_without_vms,
            ),
            (
                "vm_on_every_cpu_after_hotplug",
                vm_on_every_cpu_after_hotplug,
            ),
            (
                "unload_and_load_with_a_cpu_offline",
                unload_and_load_with_a_cpu_offline,
            ),
        ],
    )
}
