// SPDX-License-Identifier: GPL-2.0

//! The client matrix of issue 14: real VMMs as they ship boot the project's guest on this
//! host's hypervisor, each with four vCPUs, a virtio disk and a virtio NIC, and the guest's
//! `/init` (`selftests/guest/init.sh`) reports what worked. See `Documentation/interop.rst`.
//!
//! The clients, all in the host's initramfs:
//! - `qemu-7.2`: Debian bookworm's QEMU 7.2, `-M virt,gic-version=3` (ITS on, the default);
//! - `qemu-10`: Debian bookworm-backports' QEMU 10.0, `-M virt` (its default machine);
//! - `kvmtool-its`: kvmtool with `--irqchip=gicv3-its` and (legacy) virtio-pci devices;
//! - `kvmtool-gicv3`: kvmtool with `--irqchip=gicv3` and virtio-mmio devices;
//! - `firecracker` (optional, when the host has it): Firecracker 1.16.1, virtio-mmio disk,
//!   no NIC (Firecracker's are tap devices only);
//! - `firecracker-snapshot` (with `firecracker`): the same guest under Firecracker with its
//!   API socket, paused and fully snapshotted while the guest polls a disk sector; that
//!   Firecracker is killed, a new one loads the snapshot (`resume_vm`), and the host writes
//!   a marker the restored guest must read before it powers off. It also requests a diff
//!   snapshot and probes dirty logging (`track_dirty_pages`), see `dirty_log_probe`.
//!
//! QEMU's disk and NIC are virtio-pci (MSI-X through the ITS). Every client must: exit 0
//! after the guest's PSCI `SYSTEM_OFF`, write nothing unexpected to stderr, get the guest
//! to both markers with a clean kernel log, see the host's random bytes on the disk and
//! write a copy through it (checked in the image), bring four CPUs online, bring the NIC
//! up and have the VMM's user-mode network answer pings, and, where the client has an
//! ITS, show the guest's MSIs as ITS lines in `/proc/interrupts`.
//!
//! The hypervisor is the host mode's (`rkvmtest.backend`): the in-kernel KVM on the
//! `*-kvm` hosts (the baseline), rkvm on the others. Clients open `/dev/kvm`: when it
//! exists (the in-kernel KVM's, or rkvm's own node) it is used as is; otherwise each
//! client runs in a mount namespace with `/dev/rkvm` bind-mounted over it. Nothing is
//! gated on capabilities: a client that cannot run fails with its own words.
//!
//! `interop` runs the KTAP suite (`rkvmtest.interop=a,b` limits the clients) and prints
//! one `# interop-result: <client> <pass|fail|skip> <seconds> <reason>` line per client
//! for `scripts/interop.sh`'s table; `interop run <client>` boots one client with the
//! guest's console as is (`make run`) and exits non-zero on failure.

use rkvm_selftests::{
    check, cmdline_param, host_runs_guests, kernel_trouble, run, KernelLog, Outcome, TestResult,
    XorShift,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GUEST_KERNEL: &str = "/guest/Image";
const GUEST_INITRD: &str = "/guest/initramfs.cpio.gz";
const DISK: &str = "/tmp/interop-disk.img";
const DEV_KVM: &str = "/dev/kvm";
const SMP: u32 = 4;
/// A client still running after this is killed (a boot takes 20-60 s on the 2-core
/// machine, the emulated host's CPUs and the guest's all under TCG).
const LIMIT: Duration = Duration::from_secs(240);

/// The disk: the host fills `HEAD` bytes at offset 0 with random data, the guest copies
/// them to `COPY_AT` through the device.
const DISK_SIZE: usize = 8 << 20;
const HEAD: usize = 512 << 10;
const COPY_AT: usize = 4 << 20;

/// Which KVM the clients run on.
#[derive(Clone, Copy, PartialEq)]
enum Hyp {
    Rkvm,
    Kvm,
}

fn hypervisor() -> Result<Hyp, String> {
    match cmdline_param("rkvmtest.backend").as_deref() {
        Some("refused-kvm") => Ok(Hyp::Kvm),
        Some("VHE") | Some("nVHE") => {
            if !host_runs_guests() {
                return Err(rkvm_selftests::NO_GUESTS_REASON.into());
            }
            Ok(Hyp::Rkvm)
        }
        other => Err(format!("no KVM on this host (rkvmtest.backend={other:?})")),
    }
}

/// One client: how to start it and what to expect of it.
struct Client {
    /// The name in the table and on the command line.
    name: &'static str,
    /// The guest's console device.
    console: &'static str,
    /// The guest's address and the user-mode network's gateway (`rkvmguest.net=`).
    net: &'static str,
    /// The guest's devices signal MSIs through an ITS.
    its: bool,
    /// The command line, given the guest's kernel command line.
    command: fn(&str) -> Vec<String>,
    /// Stderr lines that are expected and not a problem.
    benign: fn(&str) -> bool,
    /// A Firecracker snapshot round trip in the middle of the boot (`boot`).
    snapshot: bool,
}

fn disk_arg() -> String {
    format!("if=none,file={DISK},format=raw,id=d0")
}

/// QEMU's command for the default `virt` machine (`machine`) with a virtio-blk-pci disk
/// and a virtio-net-pci NIC on the user-mode network.
fn qemu(binary: &str, machine: &str, nic: &str, append: &str) -> Vec<String> {
    let smp = SMP.to_string();
    [
        binary,
        "-M",
        machine,
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
        append,
        "-drive",
        &disk_arg(),
        "-device",
        "virtio-blk-pci,drive=d0",
        "-netdev",
        "user,id=n0",
        "-device",
        nic,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// QEMU warns when the guest has more vCPUs than the host has CPUs (`KVM_CAP_NR_VCPUS`):
/// true of an overcommitted guest, nothing about the hypervisor.
fn qemu_benign(line: &str) -> bool {
    line.contains("exceeds the recommended cpus supported by KVM")
}

fn kvmtool(irqchip: &str, transport: &str, append: &str) -> Vec<String> {
    let smp = SMP.to_string();
    [
        "/usr/bin/lkvm",
        "run",
        "--kernel",
        GUEST_KERNEL,
        "--initrd",
        GUEST_INITRD,
        "--cpus",
        &smp,
        "--mem",
        "256",
        "--console",
        "serial",
        "--irqchip",
        irqchip,
        "--virtio-transport",
        transport,
        "--disk",
        DISK,
        "--network",
        "mode=user",
        "--params",
        append,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// kvmtool's own informational lines.
fn kvmtool_benign(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("Info:")
        || line.contains("maximum recommended amount of VCPUs")
        // kvmtool's own teardown race (epoll.c): `epoll__exit` can read back its stop
        // event and close the eventfd before the epoll thread wakes, which then reads
        // and writes a closed fd (EBADF). Seen on the in-kernel KVM as on rkvm; the
        // guest has finished by then.
        || line.contains("epoll__thread: read(stop) failed with 9")
        || line.contains("epoll__thread: write(stop) failed with 9")
}

const FIRECRACKER: &str = "/usr/bin/firecracker";
const FIRECRACKER_CONFIG: &str = "/tmp/interop-firecracker.json";

/// Firecracker's configuration file: four vCPUs, 256 MiB, the disk, no NIC.
fn firecracker_config(append: &str) {
    let config = format!(
        r#"{{
  "boot-source": {{ "kernel_image_path": "{GUEST_KERNEL}", "initrd_path": "{GUEST_INITRD}",
                    "boot_args": "{append}" }},
  "drives": [ {{ "drive_id": "d0", "path_on_host": "{DISK}", "is_root_device": false,
                "is_read_only": false }} ],
  "machine-config": {{ "vcpu_count": {SMP}, "mem_size_mib": 256 }}
}}"#
    );
    if let Err(e) = std::fs::write(FIRECRACKER_CONFIG, config) {
        println!("# {FIRECRACKER_CONFIG}: {e}");
    }
}

/// Firecracker without its API socket, from a configuration file; the test kernel has no
/// CONFIG_SECCOMP (and the glibc build's policy allows everything anyway).
fn firecracker(append: &str) -> Vec<String> {
    firecracker_config(append);
    [
        FIRECRACKER,
        "--no-api",
        "--no-seccomp",
        "--config-file",
        FIRECRACKER_CONFIG,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The snapshot round trip's files in the emulated host's /tmp (its initramfs, in RAM):
/// the API sockets of the first and the restored Firecracker, the full snapshot (state
/// and guest memory) and the diff snapshot's.
const FC_SOCK: &str = "/tmp/interop-fc.sock";
const FC_SOCK_RESTORED: &str = "/tmp/interop-fc-restored.sock";
const FC_SOCK_PROBE: &str = "/tmp/interop-fc-probe.sock";
const FC_STATE: &str = "/tmp/interop-fc.snap";
const FC_MEM: &str = "/tmp/interop-fc.mem";
const FC_DIFF_STATE: &str = "/tmp/interop-fc-diff.snap";
const FC_DIFF_MEM: &str = "/tmp/interop-fc-diff.mem";
/// The disk sector the guest polls for the host's marker (at 6 MiB: past the copy).
const MARK_SECTOR: usize = 12288;

/// Firecracker with its API socket, booting from the same configuration file, with PCI
/// (`--enable-pci`): the disk is virtio-pci, its MSI-X through the ITS, so the snapshot
/// carries mapped devices, ITTs and LPIs (`SAVE_TABLES`, `RESTORE_TABLES`).
fn firecracker_api(append: &str) -> Vec<String> {
    firecracker_config(append);
    [
        FIRECRACKER,
        "--api-sock",
        FC_SOCK,
        "--no-seccomp",
        "--enable-pci",
        "--config-file",
        FIRECRACKER_CONFIG,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One HTTP/1.1 request on a Firecracker API socket, as its API (`firecracker.yaml`)
/// takes them: a JSON body with its length. Returns the status and the response's body.
fn http(sock: &str, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("{sock}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\
                       Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("{method} {path}: bad status line {head:?}"))?;
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Ok((status, body));
            }
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if n == 0 {
            return Err(format!("{method} {path}: connection closed mid-response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A request that must answer 204 (the API's "done" for every PUT and PATCH used here).
fn http_ok(sock: &str, method: &str, path: &str, body: &str) -> Result<(), String> {
    match http(sock, method, path, body)? {
        (204, _) => Ok(()),
        (code, text) => Err(format!("{method} {path}: {code} {}", text.trim())),
    }
}

/// Waits for a new Firecracker's API socket to accept connections.
fn wait_for_socket(sock: &str, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(sock) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > limit => {
                return Err(format!("{sock}: {e} after {limit:?}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The snapshot round trip's outcome, for the checks and the log.
#[derive(Default)]
struct SnapshotRun {
    /// The first step that failed.
    error: Option<String>,
    /// The marker the host wrote after the restore.
    marker: String,
    /// The diff snapshot request's answer.
    diff: String,
    /// Milliseconds: pause and full snapshot, diff snapshot, load and resume.
    create_ms: u128,
    diff_ms: u128,
    load_ms: u128,
}

/// The first Firecracker, with the guest polling its disk: pause it, take a full snapshot,
/// then ask for a diff snapshot (which Firecracker 1.16.1 answers without dirty logging
/// by `mincore(2)` over guest memory, see `dirty_log_probe`).
fn snapshot_take(run: &mut SnapshotRun) -> Result<(), String> {
    let t = Instant::now();
    http_ok(FC_SOCK, "PATCH", "/vm", r#"{"state":"Paused"}"#)?;
    http_ok(
        FC_SOCK,
        "PUT",
        "/snapshot/create",
        &format!(
            r#"{{"snapshot_type":"Full","snapshot_path":"{FC_STATE}","mem_file_path":"{FC_MEM}"}}"#
        ),
    )?;
    run.create_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let diff = http(
        FC_SOCK,
        "PUT",
        "/snapshot/create",
        &format!(
            r#"{{"snapshot_type":"Diff","snapshot_path":"{FC_DIFF_STATE}","mem_file_path":"{FC_DIFF_MEM}"}}"#
        ),
    );
    run.diff_ms = t.elapsed().as_millis();
    run.diff = match diff {
        Ok((code, body)) => format!("{code} {}", body.trim()),
        Err(e) => e,
    };
    let _ = std::fs::remove_file(FC_DIFF_STATE);
    let _ = std::fs::remove_file(FC_DIFF_MEM);
    Ok(())
}

/// The new Firecracker: load the snapshot and resume, then write the guest's marker.
fn snapshot_load(run: &mut SnapshotRun) -> Result<(), String> {
    let t = Instant::now();
    wait_for_socket(FC_SOCK_RESTORED, Duration::from_secs(30))?;
    http_ok(
        FC_SOCK_RESTORED,
        "PUT",
        "/snapshot/load",
        &format!(
            r#"{{"snapshot_path":"{FC_STATE}","mem_backend":{{"backend_type":"File","backend_path":"{FC_MEM}"}},"resume_vm":true}}"#
        ),
    )?;
    run.load_ms = t.elapsed().as_millis();
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(DISK)
        .map_err(|e| format!("{DISK}: {e}"))?;
    disk.write_all_at(run.marker.as_bytes(), (MARK_SECTOR * 512) as u64)
        .and_then(|_| disk.sync_all())
        .map_err(|e| format!("{DISK}: marker: {e}"))?;
    Ok(())
}

/// Dirty logging, which a diff snapshot of a VM booted with `track_dirty_pages` needs: that
/// Firecracker registers guest memory with `KVM_MEM_LOG_DIRTY_PAGES` and reads
/// `KVM_GET_DIRTY_LOG`. A one-vCPU Firecracker asked to start so is killed at once;
/// returns the `InstanceStart`'s answer.
fn dirty_log_probe(bind: bool) -> Result<(u16, String), String> {
    let _ = std::fs::remove_file(FC_SOCK_PROBE);
    let argv: Vec<String> = [FIRECRACKER, "--api-sock", FC_SOCK_PROBE, "--no-seccomp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut child = spawn(&argv, bind, Stdio::null())?;
    let answer = (|| {
        wait_for_socket(FC_SOCK_PROBE, Duration::from_secs(30))?;
        http_ok(
            FC_SOCK_PROBE,
            "PUT",
            "/boot-source",
            &format!(
                r#"{{"kernel_image_path":"{GUEST_KERNEL}","initrd_path":"{GUEST_INITRD}","boot_args":"console=ttyS0 panic=-1"}}"#
            ),
        )?;
        http_ok(
            FC_SOCK_PROBE,
            "PUT",
            "/machine-config",
            r#"{"vcpu_count":1,"mem_size_mib":64,"track_dirty_pages":true}"#,
        )?;
        http(
            FC_SOCK_PROBE,
            "PUT",
            "/actions",
            r#"{"action_type":"InstanceStart"}"#,
        )
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(FC_SOCK_PROBE);
    answer
}

const CLIENTS: &[Client] = &[
    Client {
        name: "qemu-7.2",
        console: "ttyAMA0",
        net: "10.0.2.15/24,10.0.2.2",
        its: true,
        // The 7.2 userspace carries no option ROMs: the NIC does without (romfile=).
        command: |a| {
            qemu(
                "/usr/bin/qemu-system-aarch64",
                "virt,gic-version=3",
                "virtio-net-pci,netdev=n0,romfile=",
                a,
            )
        },
        benign: qemu_benign,
        snapshot: false,
    },
    Client {
        name: "qemu-10",
        console: "ttyAMA0",
        net: "10.0.2.15/24,10.0.2.2",
        its: true,
        command: |a| {
            qemu(
                "/usr/bin/qemu10-system-aarch64",
                "virt",
                "virtio-net-pci,netdev=n0",
                a,
            )
        },
        benign: qemu_benign,
        snapshot: false,
    },
    Client {
        name: "kvmtool-its",
        console: "ttyS0",
        net: "192.168.33.15/24,192.168.33.1",
        its: true,
        // Legacy virtio-pci (MSI-X all the same): with the modern transport kvmtool
        // b48735e5's user-mode network never answers the guest, on the in-kernel KVM too
        // and with INTx as with MSI-X (Documentation/interop.rst).
        command: |a| kvmtool("gicv3-its", "pci-legacy", a),
        benign: kvmtool_benign,
        snapshot: false,
    },
    Client {
        name: "kvmtool-gicv3",
        console: "ttyS0",
        net: "192.168.33.15/24,192.168.33.1",
        its: false,
        command: |a| kvmtool("gicv3", "mmio", a),
        benign: kvmtool_benign,
        snapshot: false,
    },
    Client {
        name: "firecracker",
        console: "ttyS0",
        net: "",
        its: false,
        command: firecracker,
        benign: |_| false,
        snapshot: false,
    },
    Client {
        name: "firecracker-snapshot",
        console: "ttyS0",
        net: "",
        its: true,
        command: firecracker_api,
        benign: |_| false,
        snapshot: true,
    },
];

fn client(name: &str) -> Option<&'static Client> {
    CLIENTS.iter().find(|c| c.name == name)
}

/// Random bytes at the start of the disk (the seed is printed), zeros elsewhere; returns
/// their md5 as busybox's md5sum prints it.
fn make_disk(seed: u64) -> Result<String, String> {
    let mut rng = XorShift::new(seed);
    let mut img = vec![0u8; DISK_SIZE];
    rng.fill(&mut img[..HEAD]);
    std::fs::write(DISK, &img).map_err(|e| format!("{DISK}: {e}"))?;
    let head = "/tmp/interop-head.bin";
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

struct Boot {
    status: std::process::ExitStatus,
    console: Vec<String>,
    stderr: String,
    to_init: Option<Duration>,
    total: Duration,
}

/// Spawns `argv` (through the /dev/kvm bind mount when `bind`), stderr piped.
fn spawn(argv: &[String], bind: bool, stdout: Stdio) -> Result<Child, String> {
    let mut cmd = if bind {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "mount --bind /dev/rkvm /dev/kvm && exec \"$@\"",
            "sh",
        ]);
        c.args(argv);
        c
    } else {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    };
    // kvmtool keeps its control socket under $HOME/.lkvm.
    cmd.env("HOME", "/tmp")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    cmd.spawn()
        .map_err(|e| format!("spawning {}: {e}", argv[0]))
}

/// Runs `argv`, its stdout as the console. With `snapshot`, the round trip: when the guest
/// says "snapshot wait", `snapshot_take`, kill that VMM, start a new Firecracker on
/// `FC_SOCK_RESTORED` and `snapshot_load`; the console goes on with the new one's, whose
/// exit ends the boot.
fn boot(
    name: &str,
    argv: &[String],
    bind: bool,
    raw: bool,
    mut snapshot: Option<&mut SnapshotRun>,
) -> Result<Boot, String> {
    println!("# {name}: {}", argv.join(" "));
    println!("# qemu-timing: {name} start");
    let start = Instant::now();
    // The VMM the watchdog kills; 0 while none is unreaped.
    let current = Arc::new(AtomicI32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, current) = (done.clone(), current.clone());
        std::thread::spawn(move || {
            while start.elapsed() < LIMIT {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let pid = current.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            true
        })
    };
    let mut console = Vec::new();
    let mut stderr = String::new();
    let mut to_init = None;
    let mut argv = argv.to_vec();
    let mut restored = false;
    let result = loop {
        let mut child = match spawn(&argv, bind, Stdio::piped()) {
            Ok(c) => c,
            Err(e) => break Err(e),
        };
        let pid = child.id() as libc::pid_t;
        current.store(pid, Ordering::SeqCst);
        let mut err_pipe = child.stderr.take().ok_or("no stderr pipe")?;
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err_pipe.read_to_string(&mut s);
            s
        });
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let mut handoff = false;
        if restored {
            if let Some(run) = snapshot.as_deref_mut() {
                if let Err(e) = snapshot_load(run) {
                    run.error = Some(format!("restore: {e}"));
                    // SAFETY: as above; the child is not reaped yet.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
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
                // The VMM's start-up (libraries, the -cpu host probe, the machine) ends here.
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
            let wait = !restored && line.starts_with("rkvm-guest: snapshot wait");
            console.push(line);
            if let (true, Some(run)) = (wait, snapshot.as_deref_mut()) {
                if let Err(e) = snapshot_take(run) {
                    run.error = Some(format!("snapshot: {e}"));
                }
                // This Firecracker is done either way: the restore, if any, is a new one.
                // SAFETY: as above; the child is not reaped yet.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                handoff = run.error.is_none();
                break;
            }
        }
        // Wait for the exit without reaping: the pid must not be reused while the
        // watchdog may still signal it.
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
        current.store(0, Ordering::SeqCst);
        let status = child.wait().map_err(|e| format!("wait: {e}"));
        let text = err_reader.join().unwrap_or_default();
        for l in text.lines() {
            println!("# {name} stderr| {l}");
        }
        stderr += &text;
        if !handoff {
            break status;
        }
        println!(
            "# {name}: snapshot taken, the first Firecracker killed ({})",
            status.map_or_else(|e| e, |s| status_words(&s))
        );
        argv = [
            FIRECRACKER,
            "--api-sock",
            FC_SOCK_RESTORED,
            "--no-seccomp",
            "--enable-pci",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let _ = std::fs::remove_file(FC_SOCK_RESTORED);
        println!("# {name}: {}", argv.join(" "));
        restored = true;
    };
    let total = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let killed = watchdog.join().unwrap_or(false);
    println!("# qemu-timing: {name} end {}", total.as_millis());
    if killed {
        return Err(format!("still running after {} s, killed", LIMIT.as_secs()));
    }
    Ok(Boot {
        status: result?,
        console,
        stderr,
        to_init,
        total,
    })
}

fn guest_says<'a>(boot: &'a Boot, prefix: &str) -> Option<&'a str> {
    boot.console
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
}

/// The exit status in words: "exit 1", "SIGSEGV (exit 139 in a shell)".
fn status_words(s: &std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGSEGV => "SIGSEGV".to_string(),
                libc::SIGABRT => "SIGABRT".to_string(),
                libc::SIGKILL => "SIGKILL".to_string(),
                libc::SIGBUS => "SIGBUS".to_string(),
                n => format!("signal {n}"),
            };
            format!("{name} (exit {})", 128 + sig)
        }
        _ => format!("{s}"),
    }
}

/// The first check that fails is the table's reason, so they go from the VMM's own
/// verdict to the details of the guest.
fn check_boot(c: &Client, boot: &Boot, md5: &str, snap: &SnapshotRun) -> TestResult {
    if let Some(e) = &snap.error {
        check!(false, "{e}");
    }
    let noise: Vec<&str> = boot
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !(c.benign)(l))
        .collect();
    check!(
        boot.status.success(),
        "{}{}",
        status_words(&boot.status),
        noise
            .first()
            .map_or(String::new(), |l| format!(": {}", l.trim()))
    );
    check!(noise.is_empty(), "stderr: {}", noise.join(" | "));
    let pos = |m: &str| boot.console.iter().position(|l| l.starts_with(m));
    let (first, last) = (pos("rkvm-guest: init started"), pos("rkvm-guest: done"));
    check!(first.is_some(), "the guest never reached /init");
    check!(
        last.is_some() && last > first,
        "the guest's /init did not finish"
    );
    if c.snapshot {
        let seen = guest_says(boot, "rkvm-guest: snapshot marker ").unwrap_or("no report");
        check!(
            seen.split_whitespace().next() == Some(snap.marker.as_str()),
            "the restored guest did not see the marker {}: {seen}",
            snap.marker
        );
    }
    let bad = kernel_trouble(&boot.console);
    check!(bad.is_empty(), "guest kernel: {}", bad.join(" | "));
    check!(
        guest_says(boot, "rkvm-guest: disk md5 ") == Some(md5),
        "disk: the guest read {:?}, expected {md5}",
        guest_says(boot, "rkvm-guest: disk md5 ")
    );
    check!(
        guest_says(boot, "rkvm-guest: disk copy ") == Some("ok"),
        "disk: the guest's copy {:?}",
        guest_says(boot, "rkvm-guest: disk copy ")
    );
    let img = std::fs::read(DISK).map_err(|e| format!("{DISK}: {e}"))?;
    check!(
        img.len() == DISK_SIZE && img[COPY_AT..COPY_AT + HEAD] == img[..HEAD],
        "disk: the guest's copy is not in the image"
    );
    let cpus = guest_says(boot, "rkvm-guest: cpus online ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    check!(cpus == Some(SMP), "{cpus:?} CPUs online, expected {SMP}");
    if !c.net.is_empty() {
        let net = guest_says(boot, "rkvm-guest: net ").unwrap_or("no report");
        check!(
            net.contains(" ping ") && net.split_whitespace().nth(4) == Some("ok"),
            "NIC: {net}"
        );
    }
    let its = guest_says(boot, "rkvm-guest: interrupts its-msi ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    if c.its {
        check!(its > 0, "no ITS MSI lines in the guest's /proc/interrupts");
    }
    Ok(Outcome::Pass)
}

/// After the round trip: the diff snapshot without dirty tracking (`mincore(2)`, no KVM
/// call beyond the state a full snapshot saves) succeeds everywhere, and so does starting
/// a VM with `track_dirty_pages`, which registers its memory with
/// `KVM_MEM_LOG_DIRTY_PAGES` (rkvm and KVM alike).
fn check_dirty(
    c: &Client,
    snap: &SnapshotRun,
    probe: &Option<Result<(u16, String), String>>,
) -> TestResult {
    if !c.snapshot {
        return Ok(Outcome::Pass);
    }
    check!(snap.diff.starts_with("204"), "diff snapshot: {}", snap.diff);
    let probe = probe
        .as_ref()
        .ok_or("no dirty logging probe")?
        .as_ref()
        .map_err(|e| format!("dirty logging probe: {e}"))?;
    check!(
        probe.0 == 204,
        "track_dirty_pages: {} {}",
        probe.0,
        probe.1.trim()
    );
    Ok(Outcome::Pass)
}

/// One client: the boot and its checks.
fn client_run(c: &Client, raw: bool) -> TestResult {
    let hyp = match hypervisor() {
        Ok(h) => h,
        Err(why) => return Ok(Outcome::Skip(why)),
    };
    let mut log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    // /dev/kvm as is if it exists (KVM's, or rkvm's own node); else rkvm bind-mounted.
    let mut made = false;
    let bind = hyp == Hyp::Rkvm && std::fs::metadata(DEV_KVM).is_err();
    if bind {
        std::fs::File::create(DEV_KVM).map_err(|e| format!("creating {DEV_KVM}: {e}"))?;
        made = true;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = rkvm_selftests::fuzz_seed(now.map_or(0x5eed, |d| d.as_nanos() as u64));
    println!(
        "# {}: disk seed {seed:#x}, {SMP} vCPUs on {}",
        c.name,
        match (hyp, bind) {
            (Hyp::Kvm, _) => "in-kernel KVM (/dev/kvm)",
            (Hyp::Rkvm, true) => "rkvm (/dev/rkvm bind-mounted over /dev/kvm)",
            (Hyp::Rkvm, false) => "rkvm (its own /dev/kvm)",
        }
    );
    let md5 = make_disk(seed)?;
    let mut append = format!("console={} panic=-1 rkvmguest.stress=0", c.console);
    if !c.net.is_empty() {
        append += &format!(" rkvmguest.net={}", c.net);
    }
    let mut snap = SnapshotRun {
        marker: format!("rkvm-resume-{:x}", seed),
        ..Default::default()
    };
    let mut probe = None;
    if c.snapshot {
        append += &format!(" rkvmguest.snapshot={MARK_SECTOR}");
        for f in [FC_SOCK, FC_SOCK_RESTORED, FC_STATE, FC_MEM] {
            let _ = std::fs::remove_file(f);
        }
    }
    let result = boot(
        c.name,
        &(c.command)(&append),
        bind,
        raw,
        c.snapshot.then_some(&mut snap),
    );
    if c.snapshot {
        for f in [FC_SOCK, FC_SOCK_RESTORED, FC_STATE, FC_MEM] {
            let _ = std::fs::remove_file(f);
        }
        if result.is_ok() && snap.error.is_none() {
            probe = Some(dirty_log_probe(bind));
        }
    }
    if made {
        let _ = std::fs::remove_file(DEV_KVM);
    }
    let boot = result?;
    if c.snapshot {
        println!(
            "# {}: pause + full snapshot {} ms, diff snapshot {} ms, load + resume {} ms",
            c.name, snap.create_ms, snap.diff_ms, snap.load_ms
        );
        println!(
            "# {}: diff snapshot (no track_dirty_pages): {}",
            c.name, snap.diff
        );
        println!(
            "# {}: InstanceStart with track_dirty_pages: {}",
            c.name,
            match &probe {
                Some(Ok((code, body))) => format!("{code} {}", body.trim()),
                Some(Err(e)) => e.clone(),
                None => "not tried".into(),
            }
        );
    }
    let to_init = boot
        .to_init
        .map_or("-".into(), |t| format!("{:.1} s", t.as_secs_f64()));
    println!(
        "# {}: to /init {to_init}, to exit {:.1} s (the host's clock)",
        c.name,
        boot.total.as_secs_f64()
    );
    let result = check_boot(c, &boot, &md5, &snap).and_then(|_| check_dirty(c, &snap, &probe));
    let _ = std::fs::remove_file(DISK);
    result?;
    log.check_clean()?;
    Ok(Outcome::Pass)
}

/// The test of one client, with its table line.
fn client_test(name: &str) -> TestResult {
    // A boot outlives the suite's per-test alarm: give it its own.
    // SAFETY: alarm has no preconditions.
    unsafe { libc::alarm(LIMIT.as_secs() as u32 + 60) };
    let start = Instant::now();
    let selected =
        cmdline_param("rkvmtest.interop").is_none_or(|l| l.split(',').any(|n| n == name));
    let result = if name.starts_with("firecracker") && std::fs::metadata(FIRECRACKER).is_err() {
        Ok(Outcome::Skip(
            "not in this host (RKVM_INTEROP_FIRECRACKER=1 builds it)".into(),
        ))
    } else if selected {
        client(name).map_or_else(
            || Err(format!("unknown client {name}")),
            |c| client_run(c, false),
        )
    } else {
        Ok(Outcome::Skip("not selected (rkvmtest.interop)".into()))
    };
    let secs = start.elapsed().as_secs();
    let (verdict, reason) = match &result {
        Ok(Outcome::Pass) => ("pass", String::new()),
        Ok(Outcome::Skip(why)) => ("skip", why.clone()),
        Err(e) => {
            // check!'s "src/bin/interop.rs:<line>: " prefix says nothing in a table.
            let first = e.lines().next().unwrap_or("");
            let first = match first.split_once(".rs:") {
                Some((_, rest)) => rest.split_once(": ").map_or(first, |(_, r)| r),
                None => first,
            };
            ("fail", first.chars().take(160).collect())
        }
    };
    println!("# interop-result: {name} {verdict} {secs} {reason}");
    result
}

fn qemu_7_2() -> TestResult {
    client_test("qemu-7.2")
}
fn qemu_10() -> TestResult {
    client_test("qemu-10")
}
fn kvmtool_its() -> TestResult {
    client_test("kvmtool-its")
}
fn kvmtool_gicv3() -> TestResult {
    client_test("kvmtool-gicv3")
}
fn firecracker_1_16() -> TestResult {
    client_test("firecracker")
}
fn firecracker_snapshot() -> TestResult {
    client_test("firecracker-snapshot")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("run") {
        // `make run`: one client, the guest's console as is.
        let name = args.get(2).map_or("qemu-10", String::as_str);
        let Some(c) = client(name) else {
            println!("interop: unknown client {name}");
            std::process::exit(2);
        };
        match client_run(c, true) {
            Ok(Outcome::Pass) => {
                println!("interop: {name}: the guest booted, passed its checks and powered off")
            }
            Ok(Outcome::Skip(why)) => {
                println!("interop: {name}: {why}");
                std::process::exit(2);
            }
            Err(e) => {
                println!("interop: {name}: FAILED: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    run(
        "rkvm_interop",
        &[
            ("qemu_7_2", qemu_7_2),
            ("qemu_10", qemu_10),
            ("kvmtool_its", kvmtool_its),
            ("kvmtool_gicv3", kvmtool_gicv3),
            ("firecracker", firecracker_1_16),
            ("firecracker_snapshot", firecracker_snapshot),
        ],
    )
}
