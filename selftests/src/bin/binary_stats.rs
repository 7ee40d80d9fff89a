// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_STATS_FD`: the VM and vCPU stats files are laid out as KVM's (header, id,
//! descriptors, data), read the same at any offset, behave as KVM's read-only files, and
//! their counters follow what the guest does (hypercalls, WFI, MMIO and signal exits,
//! stage-2 mappings and TLB invalidations).

use kvm_bindings as kb;
use kvm_bindings::kvm_userspace_memory_region;
use rkvm_selftests::{
    binstats::{pread, Stats, HEADER_SIZE},
    check, check_eq, guest_code, host_runs_guests, run_or_skip, vcpu_stats,
    vmm::{ioctl_raw, nr, run, run_errno, Exit, TestVm, MEM_BASE, MMIO_BASE},
    Cases, Kick, Outcome, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;
use std::time::Duration;

const KVM_CAP_BINARY_STATS_FD: u64 = kb::KVM_CAP_BINARY_STATS_FD as u64;
/// KVM's `KVM_STATS_NAME_SIZE` (kernel-internal, not in the uapi).
const NAME_SIZE: u32 = 48;
/// KVM's generic and arm64 names rkvm counts the same events for.
const KVM_VCPU_NAMES: &[&str] = &[
    "halt_successful_poll",
    "halt_attempted_poll",
    "halt_poll_invalid",
    "halt_wakeup",
    "halt_poll_success_ns",
    "halt_poll_fail_ns",
    "halt_wait_ns",
    "halt_poll_success_hist",
    "halt_poll_fail_hist",
    "halt_wait_hist",
    "blocking",
    "hvc_exit_stat",
    "wfe_exit_stat",
    "wfi_exit_stat",
    "mmio_exit_user",
    "mmio_exit_kernel",
    "signal_exits",
    "exits",
];

fn gettid() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

/// Checks `s` against the uapi layout and what KVM's selftest demands of descriptors.
fn check_layout(c: &mut Cases, what: &str, s: &Stats) {
    let h = s.header;
    let n = h.num_desc as usize;
    c.eq(&format!("{what}: header flags"), h.flags, 0);
    c.eq(&format!("{what}: name size"), h.name_size, NAME_SIZE);
    c.eq(
        &format!("{what}: id offset"),
        h.id_offset as usize,
        HEADER_SIZE,
    );
    c.eq(
        &format!("{what}: descriptor offset"),
        h.desc_offset,
        24 + NAME_SIZE,
    );
    c.eq(
        &format!("{what}: data offset"),
        h.data_offset as usize,
        72 + n * 64,
    );
    c.eq(&format!("{what}: descriptors read"), s.descs.len(), n);
    let mut names = Vec::new();
    let mut next = 0;
    for d in &s.descs {
        let Some(name) = d.name() else {
            c.fail(format!(
                "{what}: a descriptor name without NUL: {:?}",
                d.raw_name
            ));
            continue;
        };
        let (kind, unit, base) = (d.flags & 0xf, d.flags >> 4 & 0xf, d.flags >> 8 & 0xf);
        c.eq(
            &format!("{what}: {name}: flag bits beyond base"),
            d.flags >> 12,
            0,
        );
        check_in(c, &format!("{what}: {name}: type"), kind, 4);
        check_in(c, &format!("{what}: {name}: unit"), unit, 4);
        check_in(c, &format!("{what}: {name}: base"), base, 1);
        // Counters and bytes have exponent >= 0, seconds <= 0, booleans 0.
        let exp_ok = match unit {
            2 => d.exponent <= 0,
            4 => d.exponent == 0,
            _ => d.exponent >= 0,
        };
        c.eq(
            &format!("{what}: {name}: exponent {} fits its unit", d.exponent),
            exp_ok,
            true,
        );
        c.eq(&format!("{what}: {name}: size > 0"), d.size > 0, true);
        c.eq(
            &format!("{what}: {name}: bucket size only for linear histograms"),
            d.bucket_size != 0,
            kind == 3,
        );
        c.eq(
            &format!("{what}: {name}: data offset (packed, in order)"),
            d.offset,
            next,
        );
        next = d.offset + 8 * u32::from(d.size);
        c.eq(
            &format!("{what}: {name}: listed once"),
            names.contains(&name),
            false,
        );
        names.push(name);
    }
}

fn check_in(c: &mut Cases, what: &str, v: u32, max: u32) {
    if v > max {
        c.fail(format!("{what}: {v} > {max}"));
    }
}

/// Reads of every length at every offset return the bytes of one whole-file read; the
/// file ends where the data block does; `read` moves the file position, `lseek` does
/// not (KVM's `noop_llseek`).
fn check_reads(c: &mut Cases, what: &str, s: &Stats) -> Result<(), String> {
    let fd = s.fd.as_raw_fd();
    let len = s.header.data_offset as usize + s.data_len();
    let whole = pread(fd, len + 100, 0).map_err(|e| format!("pread: {e}"))?;
    c.eq(&format!("{what}: file length"), whole.len(), len);
    // The counters may move between reads: compare everything before the data.
    let fixed = s.header.data_offset as usize;
    for chunk in [1usize, 7, 64] {
        let mut pieced = Vec::new();
        let mut pos = 0;
        while pos < fixed {
            let part = pread(fd, chunk, pos as u64).map_err(|e| format!("pread: {e}"))?;
            if part.is_empty() {
                break;
            }
            pos += part.len();
            pieced.extend(part);
        }
        c.eq(
            &format!("{what}: {chunk}-byte reads"),
            &pieced[..fixed.min(pieced.len())],
            &whole[..fixed],
        );
    }
    c.eq(
        &format!("{what}: read at the end"),
        pread(fd, 8, len as u64),
        Ok(vec![]),
    );
    c.eq(
        &format!("{what}: read past the end"),
        pread(fd, 8, 1 << 40),
        Ok(vec![]),
    );
    let mut buf = vec![0u8; len + 16];
    // SAFETY: `buf` is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    c.eq(
        &format!("{what}: read() of the whole file"),
        n,
        len as isize,
    );
    // SAFETY: as above.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    c.eq(&format!("{what}: read() at the end"), n, 0);
    // SAFETY: lseek has no pointer arguments.
    let at = unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    c.eq(
        &format!("{what}: lseek leaves the position"),
        at,
        len as i64,
    );
    Ok(())
}

/// The fd is read-only, close-on-exec, with no ioctls, writes or mappings.
fn check_file(c: &mut Cases, what: &str, s: &Stats) {
    let fd = s.fd.as_raw_fd();
    // SAFETY: fcntl and write/ioctl with these arguments touch no memory of ours but `b`.
    unsafe {
        c.eq(
            &format!("{what}: FD_CLOEXEC"),
            libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC,
            libc::FD_CLOEXEC,
        );
        c.eq(
            &format!("{what}: O_RDONLY"),
            libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE,
            libc::O_RDONLY,
        );
        let b = [0u8; 8];
        c.eq(
            &format!("{what}: write"),
            libc::write(fd, b.as_ptr().cast(), 8),
            -1,
        );
        c.eq(
            &format!("{what}: write errno"),
            rkvm_selftests::errno(),
            libc::EBADF,
        );
        c.errno(
            &format!("{what}: an ioctl"),
            ioctl_raw(fd, nr::KVM_GET_STATS_FD, 0),
            libc::ENOTTY,
        );
        let p = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        c.eq(&format!("{what}: mmap fails"), p == libc::MAP_FAILED, true);
        c.eq(
            &format!("{what}: mmap errno"),
            rkvm_selftests::errno(),
            libc::ENODEV,
        );
    }
}

// PSCI_VERSION (one HVC), a WFI (no irqchip: it returns at once), a report through
// MMIO, then SYSTEM_OFF (a second HVC).
guest_code!(
    guest_events,
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "wfi",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

guest_code!(guest_spin, "1: b 1b");

fn files_are_laid_out_as_kvms() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_events())?;
    let mut c = Cases::new();
    c.eq(
        "KVM_CAP_BINARY_STATS_FD",
        vm.kvm.check_extension_raw(KVM_CAP_BINARY_STATS_FD as _),
        1,
    );
    c.eq(
        "KVM_CAP_BINARY_STATS_FD on the VM",
        vm.vm.check_extension_raw(KVM_CAP_BINARY_STATS_FD as _),
        1,
    );
    let v3 = vm.vcpu(3, MEM_BASE, 0)?;
    let tid = gettid();
    let vs = Stats::open(vm.vm.as_raw_fd())?;
    let cs = Stats::open(v3.as_raw_fd())?;
    c.eq("VM id", vs.id(), format!("kvm-{tid}"));
    c.eq("vCPU id", cs.id(), format!("kvm-{tid}/vcpu-3"));
    for (what, s) in [("VM", &vs), ("vCPU", &cs)] {
        check_layout(&mut c, what, s);
        check_reads(&mut c, what, s)?;
        check_file(&mut c, what, s);
    }
    let names: Vec<_> = cs.descs.iter().filter_map(|d| d.name()).collect();
    for want in KVM_VCPU_NAMES {
        c.eq(
            &format!("vCPU statistic {want}"),
            names.iter().any(|n| n == want),
            true,
        );
    }
    // KVM_GENERIC_VCPU_STATS, first and in KVM's order: counters, nanoseconds
    // (STATS_DESC_TIME_NSEC), logarithmic histograms of nanoseconds with
    // HALT_POLL_HIST_COUNT buckets, and an instant boolean.
    for (i, want) in KVM_VCPU_NAMES[..11].iter().enumerate() {
        let Some(d) = cs.descs.get(i) else {
            c.fail(format!("no descriptor {i}"));
            continue;
        };
        let (flags, exponent, size) = match i {
            0..=3 => (0, 0, 1),
            4..=6 => (0x20, -9, 1),
            7..=9 => (0x24, -9, 32),
            _ => (0x41, 0, 1),
        };
        c.eq(
            &format!("vCPU descriptor {i}"),
            (d.name(), d.flags, d.exponent, d.size, d.bucket_size),
            (Some(want.to_string()), flags, exponent, size, 0),
        );
    }
    c.eq(
        "VM statistic remote_tlb_flush",
        vs.descs
            .iter()
            .any(|d| d.name().as_deref() == Some("remote_tlb_flush")),
        true,
    );
    // A second stats fd is another file on the same counters.
    let again = Stats::open(v3.as_raw_fd())?;
    c.eq("second fd: same descriptors", again.descs == cs.descs, true);
    c.eq(
        "second fd: another fd",
        again.fd.as_raw_fd() != cs.fd.as_raw_fd(),
        true,
    );
    c.finish()
}

fn vcpu_counters_follow_the_guest() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_events())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let s = Stats::open(v.as_raw_fd())?;
    let mut c = Cases::new();
    let before = s.values()?;
    for (name, value) in &before {
        c.eq(&format!("{name} before any run"), *value, 0);
    }
    c.eq(
        "first run",
        run(&mut v, 0)?,
        Exit::MmioWrite(MMIO_BASE, 0x0001_0003u64.to_le_bytes().to_vec()),
    ); // PSCI 1.3
    let after = s.values()?;
    let get =
        |m: &std::collections::HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(u64::MAX);
    c.eq("hvc_exit_stat", get(&after, "hvc_exit_stat"), 1);
    c.eq("wfi_exit_stat", get(&after, "wfi_exit_stat"), 1);
    c.eq("mmio_exit_user", get(&after, "mmio_exit_user"), 1);
    c.eq("mmio_exit_kernel", get(&after, "mmio_exit_kernel"), 0);
    c.eq("runs", get(&after, "runs"), 1);
    c.eq(
        "exits: at least the HVC, the WFI and the MMIO write",
        get(&after, "exits") >= 3,
        true,
    );
    // The same counters as debugfs shows.
    let debugfs = vcpu_stats(0)?;
    for (bin, dbg) in [
        ("exits", "exits"),
        ("hvc_exit_stat", "exits_hvc"),
        ("wfi_exit_stat", "exits_wfi"),
        ("wfe_exit_stat", "exits_wfe"),
        ("mmio_exit_user", "exits_mmio"),
        ("runs", "runs"),
    ] {
        c.eq(
            &format!("{bin} = debugfs {dbg}"),
            Some(get(&after, bin)),
            debugfs.get(dbg).copied(),
        );
    }
    c.eq(
        "second run",
        run(&mut v, 0)?,
        Exit::SystemEvent(kb::KVM_SYSTEM_EVENT_SHUTDOWN),
    );
    let end = s.values()?;
    c.eq(
        "hvc_exit_stat after SYSTEM_OFF",
        get(&end, "hvc_exit_stat"),
        2,
    );
    c.eq("mmio_exit_user unchanged", get(&end, "mmio_exit_user"), 1);
    c.eq("runs", get(&end, "runs"), 2);
    c.eq(
        "exits grew",
        get(&end, "exits") > get(&after, "exits"),
        true,
    );
    c.finish()
}

fn signal_exits_are_counted() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_spin())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let s = Stats::open(v.as_raw_fd())?;
    let kick = Kick::new()?;
    let mut c = Cases::new();
    for round in 1..=2u64 {
        kick.arm(Duration::from_millis(50));
        c.eq(
            &format!("run {round} is interrupted"),
            run_errno(&mut v, 0).err(),
            Some(libc::EINTR),
        );
        c.eq(
            &format!("signal_exits after {round}"),
            s.values()?.get("signal_exits").copied(),
            Some(round),
        );
    }
    c.finish()
}

fn vm_counters_follow_stage2() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_events())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let s = Stats::open(vm.vm.as_raw_fd())?;
    let mut c = Cases::new();
    let start = s.values()?;
    c.eq(
        "pages_4k before any run",
        start.get("pages_4k").copied(),
        Some(0),
    );
    check!(
        matches!(run(&mut v, 0)?, Exit::MmioWrite(..)),
        "the guest did not report"
    );
    let ran = s.values()?;
    c.eq(
        "pages_4k: the code page is mapped",
        ran.get("pages_4k").copied().unwrap_or(0) >= 1,
        true,
    );
    // Deleting the slot unmaps its pages with a VMID-wide TLB invalidation.
    let gone = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: MEM_BASE,
        ..Default::default()
    };
    // SAFETY: deleting a slot does not touch memory.
    unsafe { vm.vm.set_user_memory_region(gone) }.map_err(|e| format!("deleting the slot: {e}"))?;
    let end = s.values()?;
    c.eq(
        "pages_4k after the delete",
        end.get("pages_4k").copied(),
        Some(0),
    );
    let flushes = |m: &std::collections::HashMap<String, u64>| {
        m.get("remote_tlb_flush").copied().unwrap_or(0)
    };
    c.eq("remote_tlb_flush grew", flushes(&end) > flushes(&ran), true);
    c.finish()
}

fn stats_fds_outlive_the_vm_fds() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_events())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let (vs, cs) = (Stats::open(vm.vm.as_raw_fd())?, Stats::open(v.as_raw_fd())?);
    check!(
        matches!(run(&mut v, 0)?, Exit::MmioWrite(..)),
        "the guest did not report"
    );
    drop(v);
    drop(vm);
    // As KVM, a stats fd holds the VM: its counters stay readable.
    check_eq!(cs.values()?.get("runs").copied(), Some(1));
    check!(
        vs.values()?.contains_key("remote_tlb_flush"),
        "VM stats unreadable"
    );
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_binary_stats",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("files_are_laid_out_as_kvms", files_are_laid_out_as_kvms),
            (
                "vcpu_counters_follow_the_guest",
                vcpu_counters_follow_the_guest,
            ),
            ("signal_exits_are_counted", signal_exits_are_counted),
            ("vm_counters_follow_stage2", vm_counters_follow_stage2),
            ("stats_fds_outlive_the_vm_fds", stats_fds_outlive_the_vm_fds),
        ],
    )
}
