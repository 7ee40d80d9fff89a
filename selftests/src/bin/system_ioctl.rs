// SPDX-License-Identifier: GPL-2.0

//! The system fd: `/dev/rkvm` node, API version, capabilities, vCPU mmap size and the
//! errors for bad commands, checked with kvm-ioctls (a real KVM client) and raw ioctls.

use kvm_bindings as kb;
use kvm_ioctls::Kvm;
use rkvm_selftests::vmm::nr::{
    self, KVM_CHECK_EXTENSION, KVM_GET_API_VERSION, KVM_GET_VCPU_MMAP_SIZE,
};
use rkvm_selftests::{check, check_eq, page_size, run, Fd, Outcome, TestResult, DEV_RKVM};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

const MISC_MAJOR: u64 = 10;

/// What a capability must read.
#[derive(Clone, Copy)]
enum Want {
    Is(i32),
    /// The host's IPA limit: 40 to 48.
    IpaBits,
    /// Whether the host's CPUs have a feature: 0 or 1 (`vcpu_events` checks RAS against
    /// what `KVM_GET_VCPU_EVENTS` reports).
    HostFeature,
}
use Want::{HostFeature, IpaBits, Is};

/// Capabilities rkvm reports where it runs guests (the VHE backend), with their values.
/// Every other capability must read 0, and on a host where rkvm cannot run guests, all
/// of them.
const IMPLEMENTED_CAPS: &[(u32, Want)] = &[
    (kb::KVM_CAP_IRQCHIP, Is(1)), // the vGICv3; every test host has a GICv3
    (kb::KVM_CAP_USER_MEMORY, Is(1)),
    (kb::KVM_CAP_NR_VCPUS, Is(2)), // the emulated host has 2 CPUs
    (kb::KVM_CAP_NR_MEMSLOTS, Is(512)),
    (kb::KVM_CAP_MP_STATE, Is(1)),
    (kb::KVM_CAP_SYNC_MMU, Is(1)), // stage 2 follows the VMM's mm (MMU notifier)
    (kb::KVM_CAP_COALESCED_MMIO, Is(1)), // the ring's page offset in the vCPU mapping
    (kb::KVM_CAP_DESTROY_MEMORY_REGION_WORKS, Is(1)),
    (kb::KVM_CAP_IRQ_ROUTING, Is(4096)), // the routing table's size (KVM_MAX_IRQ_ROUTES)
    (kb::KVM_CAP_JOIN_MEMORY_REGIONS_WORKS, Is(1)),
    (kb::KVM_CAP_IRQFD, Is(1)),
    (kb::KVM_CAP_IOEVENTFD, Is(1)),
    (kb::KVM_CAP_INTERNAL_ERROR_DATA, Is(1)),
    (kb::KVM_CAP_MAX_VCPUS, Is(64)),
    (kb::KVM_CAP_ONE_REG, Is(1)),
    (kb::KVM_CAP_SIGNAL_MSI, Is(1)), // MSIs through an ITS; ENODEV until the VM has one
    (kb::KVM_CAP_READONLY_MEM, Is(1)),
    (kb::KVM_CAP_IRQFD_RESAMPLE, Is(1)),
    (kb::KVM_CAP_ARM_PSCI, Is(1)), // 0.1, KVM's function ids
    (kb::KVM_CAP_DEVICE_CTRL, Is(1)),
    (kb::KVM_CAP_ARM_PSCI_0_2, Is(1)),
    (kb::KVM_CAP_CHECK_EXTENSION_VM, Is(1)),
    (kb::KVM_CAP_IOEVENTFD_ANY_LENGTH, Is(1)),
    (kb::KVM_CAP_MAX_VCPU_ID, Is(64)),
    // MSI_DEVID is 0 here: only a VM with an ITS requires DeviceIDs (its test).
    (kb::KVM_CAP_IMMEDIATE_EXIT, Is(1)),
    (kb::KVM_CAP_COALESCED_PIO, Is(1)),
    (kb::KVM_CAP_ARM_VM_IPA_SIZE, IpaBits),
    (kb::KVM_CAP_HALT_POLL, Is(1)),
    // The test kernels have CONFIG_SCHED_INFO (KVM=y selects it).
    (kb::KVM_CAP_STEAL_TIME, Is(1)),
    (kb::KVM_CAP_PTP_KVM, Is(1)),
    (kb::KVM_CAP_BINARY_STATS_FD, Is(1)),
    (kb::KVM_CAP_ARM_SYSTEM_SUSPEND, Is(1)),
    (kb::KVM_CAP_USER_MEMORY2, Is(1)),
    (kb::KVM_CAP_VCPU_EVENTS, Is(1)),
    (kb::KVM_CAP_ARM_INJECT_EXT_DABT, Is(1)),
    // A syndrome for injected SErrors needs RAS (the Cortex-A72 host has none).
    (kb::KVM_CAP_ARM_INJECT_SERROR_ESR, HostFeature),
    // Pointer authentication: the Cortex-A72 host has none (checked by `ptrauth`).
    (kb::KVM_CAP_ARM_PTRAUTH_ADDRESS, HostFeature),
    (kb::KVM_CAP_ARM_PTRAUTH_GENERIC, HostFeature),
    // KVM_CLEAR_DIRTY_LOG; the value: MANUAL_PROTECT_ENABLE | INITIALLY_SET.
    (kb::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, Is(3)),
];

/// What capability `cap` must read.
fn expected_cap(cap: u64) -> Want {
    if !rkvm_selftests::host_runs_guests() {
        return Is(0);
    }
    match IMPLEMENTED_CAPS.iter().find(|(c, _)| u64::from(*c) == cap) {
        None => Is(0),
        Some((_, want)) => *want,
    }
}

/// Whether `got` is what `want` allows.
fn cap_ok(got: i32, want: Want) -> bool {
    match want {
        Is(v) => got == v,
        IpaBits => (40..=48).contains(&got),
        HostFeature => got == 0 || got == 1,
    }
}

fn kvm() -> Result<Kvm, String> {
    Kvm::new_with_path(c"/dev/rkvm").map_err(|e| format!("opening {DEV_RKVM}: {e}"))
}

fn dev_node_is_a_misc_device() -> TestResult {
    let meta = std::fs::metadata(DEV_RKVM).map_err(|e| e.to_string())?;
    check!(
        meta.file_type().is_char_device(),
        "{DEV_RKVM} is not a character device"
    );
    // SAFETY: major() is a pure computation on the device number.
    let major = u64::from(libc::major(meta.rdev()));
    check_eq!(major, MISC_MAJOR);
    Ok(Outcome::Pass)
}

fn api_version_is_12() -> TestResult {
    check_eq!(kvm()?.get_api_version(), 12);
    Ok(Outcome::Pass)
}

fn api_version_with_argument_is_einval() -> TestResult {
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    check_eq!(fd.ioctl(KVM_GET_API_VERSION, 1), Err(libc::EINVAL));
    Ok(Outcome::Pass)
}

fn check_extension_reports_exactly_what_works() -> TestResult {
    let kvm = kvm()?;
    for cap in 0..=512u64 {
        let got = kvm.check_extension_raw(cap as _);
        check!(
            cap_ok(got, expected_cap(cap)),
            "KVM_CHECK_EXTENSION({cap}) = {got}, not what rkvm offers"
        );
    }
    Ok(Outcome::Pass)
}

fn check_extension_of_unknown_numbers_is_zero() -> TestResult {
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    for cap in [0x1000u64, 0xffff_ffff, u64::MAX] {
        check_eq!(fd.ioctl(KVM_CHECK_EXTENSION, cap), Ok(0));
    }
    Ok(Outcome::Pass)
}

fn vcpu_mmap_size_is_two_pages() -> TestResult {
    // `kvm_run`, then the coalesced-MMIO ring.
    check_eq!(
        kvm()?.get_vcpu_mmap_size().map_err(|e| e.to_string())?,
        2 * page_size()
    );
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    check_eq!(fd.ioctl(KVM_GET_VCPU_MMAP_SIZE, 7), Err(libc::EINVAL));
    Ok(Outcome::Pass)
}

fn unknown_commands_are_einval() -> TestResult {
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    let bad = [
        0xae02,                         // KVM_GET_MSR_INDEX_LIST: x86 only
        0xae05,                         // KVM_GET_SUPPORTED_CPUID nr without its size: x86 only
        nr::KVM_RUN,                    // belongs to vCPU fds
        0xaeff,                         // unassigned KVM number
        nr::KVM_SET_USER_MEMORY_REGION, // belongs to VM fds
        0x5401,                         // TCGETS: not a KVM ioctl at all
        0xc008_7a01,                    // another driver's type byte
    ];
    for cmd in bad {
        let got = fd.ioctl(cmd, 0);
        check!(
            got == Err(libc::EINVAL),
            "ioctl {cmd:#x} = {got:?}, expected EINVAL"
        );
    }
    Ok(Outcome::Pass)
}

fn read_and_write_are_refused() -> TestResult {
    let fd = Fd::open(DEV_RKVM).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is valid for 16 bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check!(
        r < 0 && rkvm_selftests::errno() == libc::EINVAL,
        "read returned {r}"
    );
    // SAFETY: as above.
    let w = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    check!(
        w < 0 && rkvm_selftests::errno() == libc::EINVAL,
        "write returned {w}"
    );
    Ok(Outcome::Pass)
}

fn many_fds_and_threads() -> TestResult {
    let fds = (0..64)
        .map(|_| Fd::open(DEV_RKVM))
        .collect::<Result<Vec<_>, _>>();
    let fds = fds.map_err(|e| format!("opening 64 fds: {e}"))?;
    let ok = std::thread::scope(|s| {
        let workers: Vec<_> = fds
            .chunks(16)
            .map(|chunk| {
                s.spawn(move || {
                    (0..1000).all(|i| {
                        chunk[i % chunk.len()].ioctl(KVM_GET_API_VERSION, 0) == Ok(12)
                            && chunk[i % chunk.len()]
                                .ioctl(KVM_CHECK_EXTENSION, i as u64)
                                .is_ok_and(|got| cap_ok(got, expected_cap(i as u64)))
                    })
                })
            })
            .collect();
        workers.into_iter().all(|w| w.join().unwrap_or(false))
    });
    check!(ok, "a concurrent ioctl returned a wrong answer");
    Ok(Outcome::Pass)
}

fn main() {
    run(
        "rkvm_system_ioctl",
        &[
            ("dev_node_is_a_misc_device", dev_node_is_a_misc_device),
            ("api_version_is_12", api_version_is_12),
            (
                "api_version_with_argument_is_einval",
                api_version_with_argument_is_einval,
            ),
            (
                "check_extension_reports_exactly_what_works",
                check_extension_reports_exactly_what_works,
            ),
            (
                "check_extension_of_unknown_numbers_is_zero",
                check_extension_of_unknown_numbers_is_zero,
            ),
            ("vcpu_mmap_size_is_two_pages", vcpu_mmap_size_is_two_pages),
            ("unknown_commands_are_einval", unknown_commands_are_einval),
            ("read_and_write_are_refused", read_and_write_are_refused),
            ("many_fds_and_threads", many_fds_and_threads),
        ],
    )
}
