// SPDX-License-Identifier: GPL-2.0

//! An unmodified QEMU boots a Linux guest: Debian's arm64 `qemu-system-aarch64` 7.2 (in the
//! host's initramfs, `scripts/build-qemu-userspace.sh`) runs the project's kernel with
//! `-accel kvm -cpu host` on a GICv3 `virt` machine with a virtio-blk disk. The guest's
//! `/init` (`selftests/guest/init.sh`) checks the disk and the CPUs and powers off through
//! PSCI; this program checks what it printed, the disk image afterwards, QEMU's exit
//! status and its stderr. See `Documentation/qemu.rst`.
//!
//! The hypervisor under test follows the host mode (`rkvmtest.backend`): rkvm on the hosts
//! that load it (through the `/dev/kvm` it registers, which QEMU 7.2 always opens), the
//! in-kernel KVM of the same kernel on the `*-kvm` hosts (the baseline). rkvm is skipped,
//! not passed, on a host where it cannot report the in-kernel irqchip QEMU needs.
//!
//! `qemu_boot` runs the KTAP suite; `qemu_boot run` boots the guest once with its console
//! on stdout (for `make run`) and exits 2 when the hypervisor cannot run it yet.
//! `rkvmtest.qemu_stress=<s>` adds a 4-vCPU boot with an `<s>`-second CPU and timer load;
//! `rkvmtest.qemu_force=1` runs QEMU on rkvm even without the capabilities (diagnostics).

use kvm_bindings as kb;
use rkvm_selftests::vmm::nr::KVM_CHECK_EXTENSION;
use rkvm_selftests::{
    check, check_eq, cmdline_param, host_runs_guests, kernel_trouble, run, Fd, KernelLog, Outcome,
    TestResult, XorShift,
};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QEMU: &str = "/usr/bin/qemu-system-aarch64";
const GUEST_KERNEL: &str = "/guest/Image";
const GUEST_INITRD: &str = "/guest/initramfs.cpio.gz";
const DISK: &str = "/tmp/qemu-boot-disk.img";
const DEV_KVM: &str = "/dev/kvm";

/// The disk: the host fills `HEAD` bytes at offset 0 with random data, the guest copies
/// them to `COPY_AT` through the device.
const DISK_SIZE: usize = 8 << 20;
const HEAD: usize = 512 << 10;
const COPY_AT: usize = 4 << 20;

const KVM_CAP_IRQCHIP: u64 = kb::KVM_CAP_IRQCHIP as u64;
const KVM_CAP_DEVICE_CTRL: u64 = kb::KVM_CAP_DEVICE_CTRL as u64;

/// Why the rkvm variant is skipped until the vGIC exists.
const NO_VGIC_REASON: &str = "rkvm has no in-kernel vGIC yet (issue 6)";

/// Which KVM the guest runs on.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// rkvm, through its /dev/kvm.
    Rkvm,
    /// The in-kernel KVM of the host kernel (the baseline).
    Kvm,
}

/// The hypervisor this host mode tests, or why none can run the guest.
fn target() -> Result<Target, String> {
    match cmdline_param("rkvmtest.backend").as_deref() {
        Some("refused-kvm") => Ok(Target::Kvm),
        Some("VHE") | Some("nVHE") => {
            if !host_runs_guests() {
                return Err(rkvm_selftests::NO_GUESTS_REASON.into());
            }
            // rkvm registers /dev/kvm at load (devkvm=1, the default).
            let dev = Fd::open(DEV_KVM).map_err(|e| format!("{DEV_KVM}: {e}"))?;
            // What QEMU asks before it creates a GICv3: the in-kernel irqchip and the
            // device API (KVM_CREATE_DEVICE of KVM_DEV_TYPE_ARM_VGIC_V3).
            let irqchip = dev.ioctl(KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP).unwrap_or(0);
            let device_ctrl = dev
                .ioctl(KVM_CHECK_EXTENSION, KVM_CAP_DEVICE_CTRL)
                .unwrap_or(0);
            // rkvmtest.qemu_force=1 runs QEMU anyway, to see how far it gets (the test
            // then fails where QEMU stops; it never passes without a boot).
            let force = cmdline_param("rkvmtest.qemu_force").as_deref() == Some("1");
            if (irqchip <= 0 || device_ctrl <= 0) && !force {
                return Err(NO_VGIC_REASON.into());
            }
            Ok(Target::Rkvm)
        }
        other => Err(format!("no KVM on this host (rkvmtest.backend={other:?})")),
    }
}

/// One guest boot: its console lines, QEMU's stderr and exit status, the times.
struct Boot {
    status: std::process::ExitStatus,
    console: Vec<String>,
    stderr: String,
    /// From spawning QEMU to the guest's first `/init` line.
    to_init: Option<Duration>,
    /// From spawning QEMU to its exit.
    total: Duration,
}

/// Prepares the disk image: random bytes at the start (the seed is printed), zeros
/// elsewhere. Returns the md5 of the random part, as busybox's md5sum prints it.
fn make_disk(seed: u64) -> Result<String, String> {
    let mut rng = XorShift::new(seed);
    let mut img = vec![0u8; DISK_SIZE];
    rng.fill(&mut img[..HEAD]);
    std::fs::write(DISK, &img).map_err(|e| format!("{DISK}: {e}"))?;
    let head = "/tmp/qemu-boot-head.bin";
    std::fs::write(head, &img[..HEAD]).map_err(|e| format!("{head}: {e}"))?;
    let out = Command::new("md5sum")
        .arg(head)
        .output()
        .map_err(|e| format!("md5sum: {e}"))?;
    let _ = std::fs::remove_file(head);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| "md5sum printed nothing".into())
}

/// Boots the guest under QEMU with `smp` vCPUs; `stress` seconds of guest load (0: none).
/// `raw` echoes the guest's console as is (`make run`), otherwise as KTAP diagnostics.
/// QEMU is killed after `limit`.
fn boot(name: &str, smp: u32, stress: u32, raw: bool, limit: Duration) -> Result<Boot, String> {
    boot_with(name, smp, stress, raw, limit, "", &[], &mut |_| {})
}

/// [`boot`] with words for the guest's command line and `extra` arguments for QEMU,
/// calling `on_line` with each console line.
#[allow(clippy::too_many_arguments)]
fn boot_with(
    name: &str,
    smp: u32,
    stress: u32,
    raw: bool,
    limit: Duration,
    guest_args: &str,
    extra: &[&str],
    on_line: &mut dyn FnMut(&str),
) -> Result<Boot, String> {
    let append = format!("console=ttyAMA0 panic=-1 rkvmguest.stress={stress} {guest_args}");
    let drive = format!("if=none,file={DISK},format=raw,id=d0");
    let smp = smp.to_string();
    let args: Vec<&str> = vec![
        "-M",
        "virt,gic-version=3",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-smp",
        &smp,
        "-m",
        "256",
        "-nographic",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        GUEST_KERNEL,
        "-initrd",
        GUEST_INITRD,
        "-append",
        &append,
        "-drive",
        &drive,
        "-device",
        "virtio-blk-device,drive=d0",
    ];
    // QEMU opens /dev/kvm by name (also for the -cpu host probe): rkvm's or KVM's.
    let mut cmd = Command::new(QEMU);
    cmd.args(&args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    println!("# qemu-timing: {name} start");
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawning {QEMU}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while start.elapsed() < limit {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            true
        })
    };
    let mut err_pipe = child.stderr.take().ok_or("no stderr pipe")?;
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });

    let mut console = Vec::new();
    let mut to_init = None;
    let out = child.stdout.take().ok_or("no stdout pipe")?;
    for line in BufReader::new(out).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line)
            .trim_end_matches('\r')
            .to_owned();
        if raw {
            println!("{line}");
        } else {
            println!("# guest| {line}");
        }
        if console.is_empty() {
            // QEMU's start-up (libraries, the -cpu host probe, the machine) ends here.
            println!(
                "# qemu-timing: {name} console {}",
                start.elapsed().as_millis()
            );
        }
        if to_init.is_none() && line.starts_with("rkvm-guest: init started") {
            let t = start.elapsed();
            to_init = Some(t);
            println!("# qemu-timing: {name} init {}", t.as_millis());
        }
        on_line(&line);
        console.push(line);
    }
    // Wait for QEMU's exit without reaping it: its pid cannot be reused while the
    // watchdog may still send SIGKILL to it.
    // SAFETY: a zeroed siginfo_t is valid, and waitid only writes to it.
    unsafe {
        let mut info: libc::siginfo_t = core::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        );
    }
    let total = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let killed = watchdog.join().unwrap_or(false);
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    let stderr = err_reader.join().unwrap_or_default();
    println!("# qemu-timing: {name} end {}", total.as_millis());
    if killed {
        return Err(format!(
            "QEMU still running after {limit:?}, killed; stderr: {stderr}"
        ));
    }
    Ok(Boot {
        status,
        console,
        stderr,
        to_init,
        total,
    })
}

/// The value after `prefix` on the guest's first console line that starts with it.
fn guest_says<'a>(boot: &'a Boot, prefix: &str) -> Option<&'a str> {
    boot.console
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// QEMU's stderr lines that are a problem: all of them, except the warning QEMU gives when
/// the guest has more vCPUs than the host has CPUs (`KVM_CAP_NR_VCPUS`), which is true of
/// an overcommitted guest and says nothing about the hypervisor.
fn qemu_stderr_problems(stderr: &str, smp: u32) -> Vec<String> {
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !(smp > host_cpus && l.contains("exceeds the recommended cpus supported by KVM"))
        })
        .map(str::to_owned)
        .collect()
}

/// Everything a clean boot shows: QEMU's status and silence, both markers, the disk seen
/// and written through virtio-blk, `smp` CPUs online, no trouble in the guest's kernel log.
fn check_boot(boot: &Boot, smp: u32, md5: &str) -> TestResult {
    let noise = qemu_stderr_problems(&boot.stderr, smp);
    check!(
        noise.is_empty(),
        "QEMU wrote to stderr:\n{}",
        noise.join("\n")
    );
    check!(boot.status.success(), "QEMU exited with {}", boot.status);
    let pos = |m: &str| boot.console.iter().position(|l| l.starts_with(m));
    let (first, last) = (pos("rkvm-guest: init started"), pos("rkvm-guest: done"));
    check!(first.is_some(), "the guest never reached /init");
    check!(
        last.is_some() && last > first,
        "the guest's /init did not finish"
    );
    let bad = kernel_trouble(&boot.console);
    check!(
        bad.is_empty(),
        "the guest's kernel reported trouble:\n{}",
        bad.join("\n")
    );
    check_eq!(guest_says(boot, "rkvm-guest: disk md5 "), Some(md5));
    check_eq!(guest_says(boot, "rkvm-guest: disk copy "), Some("ok"));
    let img = std::fs::read(DISK).map_err(|e| format!("{DISK}: {e}"))?;
    check!(
        img.len() == DISK_SIZE,
        "the disk image changed size to {}",
        img.len()
    );
    check!(
        img[COPY_AT..COPY_AT + HEAD] == img[..HEAD],
        "the guest's copy at {COPY_AT:#x} is not in the disk image"
    );
    let cpus = guest_says(boot, "rkvm-guest: cpus online ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    check_eq!(cpus, Some(smp));
    Ok(Outcome::Pass)
}

/// One boot and its checks, with the times in the log.
fn boot_and_check(name: &str, smp: u32, stress: u32, raw: bool, limit: Duration) -> TestResult {
    let target = match target() {
        Ok(t) => t,
        Err(why) => return Ok(Outcome::Skip(why)),
    };
    let mut log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = rkvm_selftests::fuzz_seed(now.map_or(0x5eed, |d| d.as_nanos() as u64));
    println!(
        "# {name}: disk seed {seed:#x}, {} vCPUs on {}",
        smp,
        if target == Target::Rkvm {
            "rkvm (its /dev/kvm)"
        } else {
            "in-kernel KVM"
        }
    );
    let md5 = make_disk(seed)?;
    let boot = boot(name, smp, stress, raw, limit)?;
    let to_init = boot
        .to_init
        .map_or("-".into(), |t| format!("{:.2} s", t.as_secs_f64()));
    println!(
        "# {name}: to /init {to_init}, to power-off {:.2} s (the host's clock)",
        boot.total.as_secs_f64()
    );
    let result = check_boot(&boot, smp, &md5);
    let _ = std::fs::remove_file(DISK);
    result?;
    if stress > 0 {
        let line = guest_says(&boot, "rkvm-guest: stress ").unwrap_or("");
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        check!(nums.len() == 3, "no stress result from the guest: {line:?}");
        check_eq!(nums[0], u64::from(smp));
        check!(
            nums[2] >= u64::from(stress),
            "the load ran {} s, expected {stress}",
            nums[2]
        );
        check!(nums[1] > 0, "no rounds done");
    }
    log.check_clean()?;
    Ok(Outcome::Pass)
}

/// QEMU's human monitor on a Unix socket, for the migration test.
const MONITOR: &str = "/tmp/qemu-boot-monitor.sock";
/// Where the migration stream goes.
const MIGRATION: &str = "/tmp/qemu-boot-migration.bin";

/// Sends one command to QEMU's human monitor and returns what it printed up to the next
/// prompt.
fn hmp(mon: &mut std::os::unix::net::UnixStream, cmd: &str) -> Result<String, String> {
    use std::io::Write;
    mon.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| format!("monitor: {e}"))?;
    read_to_prompt(mon)
}

fn read_to_prompt(mon: &mut std::os::unix::net::UnixStream) -> Result<String, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"(qemu) ") {
        let n = mon.read(&mut buf).map_err(|e| format!("monitor: {e}"))?;
        if n == 0 {
            return Err(format!("monitor closed: {}", String::from_utf8_lossy(&out)));
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Migrates the VM behind the monitor into `MIGRATION` while it runs, then quits that
/// QEMU: QEMU enables dirty logging for the whole of guest memory and collects the log
/// until the rest fits its downtime (`migrate`, `info migrate`).
fn migrate_out() -> Result<String, String> {
    let mut mon =
        std::os::unix::net::UnixStream::connect(MONITOR).map_err(|e| format!("{MONITOR}: {e}"))?;
    read_to_prompt(&mut mon)?;
    hmp(&mut mon, &format!("migrate -d \"exec:cat > {MIGRATION}\""))?;
    let start = Instant::now();
    let status = loop {
        let info = hmp(&mut mon, "info migrate")?;
        if let Some(line) = info.lines().find(|l| l.contains("Migration status:")) {
            if ["completed", "failed", "cancelled"]
                .iter()
                .any(|s| line.contains(s))
            {
                break line.trim().to_owned();
            }
        }
        if start.elapsed() > Duration::from_secs(120) {
            break "still active after 120 s".into();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Only a completed source may go: it must not run on with the destination.
    let _ = hmp(&mut mon, "quit");
    Ok(status)
}

/// QEMU live-migrates the running 2-vCPU guest (in the middle of its load) into a file
/// and quits; a second QEMU started with `-incoming` from that file resumes it, and the
/// guest finishes its `/init` there: the checks of a whole boot hold over both halves.
/// Without dirty logging QEMU aborts at `migrate` (`kvm_log_start`).
fn migrate_while_running() -> TestResult {
    let target = match target() {
        Ok(t) => t,
        Err(why) => return Ok(Outcome::Skip(why)),
    };
    // Two QEMUs outlive the suite's per-test alarm; give the test its own.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(480) };
    let mut log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    let _ = std::fs::remove_file(MONITOR);
    let _ = std::fs::remove_file(MIGRATION);
    let md5 = make_disk(0x1916)?;
    let (smp, stress) = (2, 20);
    println!(
        "# migrate_while_running: {} vCPUs on {}",
        smp,
        if target == Target::Rkvm {
            "rkvm (its /dev/kvm)"
        } else {
            "in-kernel KVM"
        }
    );
    let monitor = format!("unix:{MONITOR},server=on,wait=off");
    let mut migration = None;
    let source = boot_with(
        "migrate_source",
        smp,
        stress,
        false,
        Duration::from_secs(200),
        "rkvmguest.memcheck=1",
        &["-monitor", &monitor],
        &mut |line| {
            if migration.is_none() && line.starts_with("rkvm-guest: cpus online") {
                migration = Some(std::thread::spawn(migrate_out));
            }
        },
    )?;
    let status = migration
        .ok_or("the guest never got to its load")?
        .join()
        .map_err(|_| "migration thread panicked")?
        .map_err(|e| format!("{e}; QEMU exited with {}: {}", source.status, source.stderr))?;
    println!("# migrate_while_running: source: {status}");
    check!(status.contains("completed"), "migration: {status}");
    let incoming = format!("exec:cat {MIGRATION}");
    let dest = boot_with(
        "migrate_destination",
        smp,
        stress,
        false,
        Duration::from_secs(200),
        "rkvmguest.memcheck=1",
        &["-incoming", &incoming],
        &mut |_| {},
    )?;
    let _ = std::fs::remove_file(MIGRATION);
    check!(
        source.status.success(),
        "the source QEMU exited with {}",
        source.status
    );
    let both = Boot {
        status: dest.status,
        console: source.console.into_iter().chain(dest.console).collect(),
        stderr: source.stderr + &dest.stderr,
        to_init: source.to_init,
        total: source.total + dest.total,
    };
    let result = check_boot(&both, smp, &md5);
    let _ = std::fs::remove_file(DISK);
    result?;
    check!(
        guest_says(&both, "rkvm-guest: stress ").is_some(),
        "the guest's load did not finish on the destination"
    );
    // The guest's memory: 32 MiB of random bytes written before the migration, hashed
    // again on the destination.
    let md5s: Vec<&str> = guest_says(&both, "rkvm-guest: memory md5 ")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    check!(
        md5s.len() == 2 && md5s[0] == md5s[1],
        "the guest's memory changed across the migration: {md5s:?}"
    );
    log.check_clean()?;
    Ok(Outcome::Pass)
}

fn qemu_is_7_2() -> TestResult {
    let out = Command::new(QEMU)
        .arg("--version")
        .output()
        .map_err(|e| format!("{QEMU}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    check!(
        out.status.success(),
        "--version exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    check!(
        text.starts_with("QEMU emulator version 7.2."),
        "unexpected version: {text}"
    );
    println!("# {}", text.lines().next().unwrap_or(""));
    Ok(Outcome::Pass)
}

fn boot_smp2() -> TestResult {
    boot_and_check("boot_smp2", 2, 0, false, Duration::from_secs(100))
}

fn stress_seconds() -> u32 {
    cmdline_param("rkvmtest.qemu_stress")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn boot_smp4_stress() -> TestResult {
    let s = stress_seconds();
    // This test outlives the suite's per-test alarm; give it its own.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(s + 240) };
    boot_and_check(
        "boot_smp4_stress",
        4,
        s,
        false,
        Duration::from_secs(u64::from(s) + 200),
    )
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("run") {
        // `make run`: one boot, the guest's console as is.
        if let Err(why) = target() {
            println!("qemu_boot: {why}");
            std::process::exit(2);
        }
        match boot_and_check("run", 2, 0, true, Duration::from_secs(300)) {
            Ok(_) => println!("qemu_boot: the guest booted, passed its checks and powered off"),
            Err(e) => {
                println!("qemu_boot: FAILED: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let mut tests: Vec<rkvm_selftests::Test> = vec![
        ("qemu_is_7_2", qemu_is_7_2),
        ("boot_smp2", boot_smp2),
        ("migrate_while_running", migrate_while_running),
    ];
    if stress_seconds() > 0 {
        tests.push(("boot_smp4_stress", boot_smp4_stress));
    }
    run("rkvm_qemu_boot", &tests)
}
