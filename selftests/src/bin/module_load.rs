// SPDX-License-Identifier: GPL-2.0

//! Module lifecycle: load, refuse double load and busy unload, repeated load/unload,
//! the backend named in the log matches the host mode; `/dev/kvm` (misc minor 232) comes
//! and goes with `/dev/rkvm` unless `devkvm=0`, and a refused load leaves the in-kernel
//! KVM's `/dev/kvm` alone. Leaves rkvm loaded (with `/dev/kvm`).

use kvm_bindings as kb;
use rkvm_selftests::vmm::nr::{KVM_CHECK_EXTENSION, KVM_GET_API_VERSION};
use rkvm_selftests::{
    char_dev, check, check_eq, cmdline_param, errno_name, module, run, Fd, Outcome, TestResult,
    DEV_KVM, DEV_RKVM, KVM_MINOR, MISC_MAJOR,
};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

const API_VERSION: i32 = kb::KVM_API_VERSION as i32;

fn node_present() -> bool {
    std::fs::metadata(DEV_RKVM)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

/// Whether `/dev/kvm` is there as misc minor 232.
fn dev_kvm_present() -> bool {
    char_dev(DEV_KVM) == Some((MISC_MAJOR, KVM_MINOR))
}

fn load() -> TestResult {
    if module::loaded() {
        module::unload().map_err(|e| format!("unloading a stale rkvm: {}", errno_name(e)))?;
    }
    module::load().map_err(|e| format!("finit_module: {}", errno_name(e)))?;
    check!(module::loaded(), "/sys/module/rkvm missing after load");
    check!(node_present(), "{DEV_RKVM} missing after load");
    check!(
        dev_kvm_present(),
        "{DEV_KVM} missing after load: {:?}",
        char_dev(DEV_KVM)
    );
    Ok(Outcome::Pass)
}

/// `/dev/kvm` is rkvm: KVM's API version, the same answers as `/dev/rkvm`, and an open
/// file holds the module.
fn dev_kvm_is_rkvm() -> TestResult {
    let kvm = Fd::open(DEV_KVM).map_err(|e| format!("{DEV_KVM}: {e}"))?;
    let rkvm = Fd::open(DEV_RKVM).map_err(|e| format!("{DEV_RKVM}: {e}"))?;
    check_eq!(kvm.ioctl(KVM_GET_API_VERSION, 0), Ok(API_VERSION));
    // 0x1000: no capability has that number.
    for cap in [
        kb::KVM_CAP_IRQCHIP,
        kb::KVM_CAP_USER_MEMORY,
        kb::KVM_CAP_ARM_PSCI,
        kb::KVM_CAP_ARM_PSCI_0_2,
        kb::KVM_CAP_ARM_VM_IPA_SIZE,
        0x1000,
    ] {
        let cap = u64::from(cap);
        check_eq!(
            kvm.ioctl(KVM_CHECK_EXTENSION, cap),
            rkvm.ioctl(KVM_CHECK_EXTENSION, cap)
        );
    }
    drop(rkvm);
    check_eq!(module::unload(), Err(libc::EWOULDBLOCK));
    drop(kvm);
    check!(module::loaded(), "module went away while busy");
    Ok(Outcome::Pass)
}

/// `devkvm=0`: `/dev/rkvm` only; reloading without it brings `/dev/kvm` back.
fn devkvm_0_registers_dev_rkvm_only() -> TestResult {
    module::unload().map_err(|e| format!("unload: {}", errno_name(e)))?;
    check!(!dev_kvm_present(), "{DEV_KVM} outlived the module");
    module::load_with("devkvm=0").map_err(|e| format!("load devkvm=0: {}", errno_name(e)))?;
    let fd = Fd::open(DEV_RKVM).map_err(|e| format!("{DEV_RKVM} with devkvm=0: {e}"))?;
    check_eq!(fd.ioctl(KVM_GET_API_VERSION, 0), Ok(API_VERSION));
    drop(fd);
    let absent = !std::path::Path::new(DEV_KVM).exists();
    check!(absent, "{DEV_KVM} with devkvm=0: {:?}", char_dev(DEV_KVM));
    module::unload().map_err(|e| format!("unload: {}", errno_name(e)))?;
    module::load().map_err(|e| format!("reload: {}", errno_name(e)))?;
    check!(
        dev_kvm_present(),
        "no {DEV_KVM} after reloading with the default"
    );
    Ok(Outcome::Pass)
}

/// The kernel log lines rkvm printed since boot.
fn rkvm_log() -> Vec<String> {
    let text = std::process::Command::new("dmesg")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.contains("rkvm: "))
        .map(str::to_owned)
        .collect()
}

fn backend_matches_host_mode() -> TestResult {
    let Some(expected) = cmdline_param("rkvmtest.backend") else {
        return Ok(Outcome::Skip(
            "rkvmtest.backend= not on the command line".into(),
        ));
    };
    let want = format!("rkvm: {expected} backend, /dev/rkvm ready");
    let log = rkvm_log();
    check!(
        log.iter().any(|l| l.contains(&want)),
        "no '{want}' in the log: {log:?}"
    );
    Ok(Outcome::Pass)
}

fn double_load_is_eexist() -> TestResult {
    check_eq!(module::load(), Err(libc::EEXIST));
    Ok(Outcome::Pass)
}

fn unload_while_open_is_refused() -> TestResult {
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    check_eq!(module::unload(), Err(libc::EWOULDBLOCK));
    check_eq!(fd.ioctl(KVM_GET_API_VERSION, 0), Ok(API_VERSION));
    drop(fd);
    check!(module::loaded(), "module went away while busy");
    Ok(Outcome::Pass)
}

/// 20 unload/load cycles, each with a guest run when the host runs guests: on nVHE every
/// cycle gives EL2 back to the hyp stub and installs rkvm's runtime again.
fn load_unload_20_times() -> TestResult {
    let guests = rkvm_selftests::host_runs_guests();
    for round in 0..20 {
        module::unload().map_err(|e| format!("round {round}: unload: {}", errno_name(e)))?;
        check!(
            !module::loaded() && !node_present(),
            "round {round}: still present after unload"
        );
        check!(
            !std::path::Path::new(DEV_KVM).exists(),
            "round {round}: {DEV_KVM} after unload"
        );
        module::load().map_err(|e| format!("round {round}: load: {}", errno_name(e)))?;
        check!(node_present(), "round {round}: no {DEV_RKVM} after load");
        check!(dev_kvm_present(), "round {round}: no {DEV_KVM} after load");
        let fd = Fd::open(DEV_RKVM).map_err(|e| format!("round {round}: open: {e}"))?;
        check_eq!(fd.ioctl(KVM_GET_API_VERSION, 0), Ok(API_VERSION));
        drop(fd);
        if guests {
            rkvm_selftests::vmm::smoke_vm().map_err(|e| format!("round {round}: {e}"))?;
        }
    }
    Ok(Outcome::Pass)
}

fn unload_when_not_loaded_is_enoent() -> TestResult {
    module::unload().map_err(|e| format!("unload: {}", errno_name(e)))?;
    check_eq!(module::unload(), Err(libc::ENOENT));
    check!(
        !Path::new(DEV_RKVM).exists(),
        "{DEV_RKVM} outlived the module"
    );
    module::load().map_err(|e| format!("reload: {}", errno_name(e)))?;
    Ok(Outcome::Pass)
}

/// The log line a refused load must print, for `rkvmtest.backend=refused-*`.
fn expected_refusal() -> Option<&'static str> {
    match cmdline_param("rkvmtest.backend")?.as_str() {
        "refused-kvm" => Some("rkvm: cannot load: the in-kernel KVM owns EL2"),
        "refused-noel2" => Some("rkvm: cannot load: EL2 is not available"),
        _ => None,
    }
}

fn load_is_refused() -> TestResult {
    // Where the in-kernel KVM initialised, /dev/kvm is its own; rkvm must not touch it.
    let kvm_before = char_dev(DEV_KVM);
    let want = match cmdline_param("rkvmtest.backend").as_deref() {
        Some("refused-kvm") => Some((MISC_MAJOR, KVM_MINOR)),
        _ => None,
    };
    check_eq!(kvm_before, want);
    check_eq!(module::load(), Err(libc::ENODEV));
    check_eq!(char_dev(DEV_KVM), kvm_before);
    if kvm_before.is_some() {
        let kvm = Fd::open(DEV_KVM).map_err(|e| format!("KVM's {DEV_KVM}: {e}"))?;
        check_eq!(kvm.ioctl(KVM_GET_API_VERSION, 0), Ok(API_VERSION));
    }
    check!(
        !module::loaded(),
        "/sys/module/rkvm exists after a refused load"
    );
    check!(
        !Path::new(DEV_RKVM).exists(),
        "{DEV_RKVM} exists after a refused load"
    );
    // Refusing is repeatable and leaves nothing behind (the KVM probe node included).
    check_eq!(module::load(), Err(libc::ENODEV));
    check!(
        !Path::new("/dev/rkvm-kvm-probe").exists(),
        "the probe node was left behind"
    );
    Ok(Outcome::Pass)
}

fn refusal_is_explained() -> TestResult {
    let want = expected_refusal().ok_or("not a refusal host")?;
    let log = rkvm_log();
    check!(
        log.iter().any(|l| l.contains(want)),
        "no '{want}' in the log: {log:?}"
    );
    Ok(Outcome::Pass)
}

fn main() {
    if expected_refusal().is_some() {
        run(
            "rkvm_module_refused",
            &[
                ("load_is_refused", load_is_refused),
                ("refusal_is_explained", refusal_is_explained),
            ],
        )
    }
    run(
        "rkvm_module",
        &[
            ("load", load),
            ("backend_matches_host_mode", backend_matches_host_mode),
            ("dev_kvm_is_rkvm", dev_kvm_is_rkvm),
            ("double_load_is_eexist", double_load_is_eexist),
            ("unload_while_open_is_refused", unload_while_open_is_refused),
            ("load_unload_20_times", load_unload_20_times),
            (
                "unload_when_not_loaded_is_enoent",
                unload_when_not_loaded_is_enoent,
            ),
            (
                "devkvm_0_registers_dev_rkvm_only",
                devkvm_0_registers_dev_rkvm_only,
            ),
        ],
    )
}
