// SPDX-License-Identifier: GPL-2.0

//! Memory rkvm allocates for a VMM is charged to the VMM's memory cgroup, so a cgroup
//! limit stops a VMM from exhausting the host.
//!
//! rkvm allocates its per-VM and per-vCPU objects, the `kvm_run` pages and the stage-2
//! tables with `GFP_KERNEL_ACCOUNT`. The memory controller counts such allocations in
//! `memory.stat`'s `kernel` field, apart from the VMM's own (anonymous) memory, which is
//! what the first test measures. The second runs a VMM that creates VMs without end in a
//! cgroup with a small `memory.max`: the limit has to stop it (an ioctl fails with
//! `ENOMEM`, or the memory controller's OOM killer ends it), and afterwards everything it
//! was charged for is freed and the host is unaffected.
//!
//! The OOM killer prints a report with a stack dump. The harness accepts exactly that
//! report, for the cgroups made here (`rkvm-limits-*`), and nothing else
//! (`expected_oom_report` in `lib.rs` and `scripts/ktap-summary.py`).

use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, guest_code, host_runs_guests, module_refcnt, run_or_skip, wait_refcnt, KernelLog,
    Outcome, TestResult,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const VCPUS: u64 = 32;
/// Guest RAM of the table test, and the stride at which its guest touches it: one word
/// per 2 MiB needs one last-level stage-2 table page per touch.
const TABLE_RAM: usize = 256 << 20;
const TOUCH_STRIDE: u64 = 2 << 20;

// Touch one word every 2 MiB from MEM_BASE + 2 MiB to MEM_BASE + 256 MiB, then
// SYSTEM_OFF.
guest_code!(
    guest_touch_every_2m,
    "movz x4, #0x4020, lsl #16",
    "movz x6, #0x5000, lsl #16",
    "1: str x4, [x4]",
    "add x4, x4, #0x200, lsl #12",
    "cmp x4, x6",
    "b.lo 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

guest_code!(
    guest_off,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// A child cgroup of the root with the memory controller, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Result<Self, String> {
        let dir = Path::new(CGROUP_ROOT).join(name);
        // A leftover from an interrupted run would still hold its processes' charges.
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.0.join(file), value).map_err(|e| format!("{file} <- {value}: {e}"))
    }

    fn read(&self, file: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(file)).map_err(|e| format!("{file}: {e}"))
    }

    /// Field `key` of a flat-keyed file (`memory.stat`, `memory.events`).
    fn field(&self, file: &str, key: &str) -> Result<u64, String> {
        let text = self.read(file)?;
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| format!("no '{key}' in {file}"))
    }

    /// Moves the calling process into this cgroup.
    fn enter(&self) -> Result<(), String> {
        self.write("cgroup.procs", &std::process::id().to_string())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Moves the calling process back to the root cgroup.
fn leave_cgroups() -> Result<(), String> {
    std::fs::write(
        Path::new(CGROUP_ROOT).join("cgroup.procs"),
        std::process::id().to_string(),
    )
    .map_err(|e| format!("back to the root cgroup: {e}"))
}

/// Mounts cgroup2 if needed and enables the memory controller for the root's children;
/// `None` when the kernel has no memory controller.
fn memory_controller() -> Result<Option<()>, String> {
    let controllers = Path::new(CGROUP_ROOT).join("cgroup.controllers");
    if !controllers.exists() {
        let (src, dst, fs) = (c"cgroup2", c"/sys/fs/cgroup", c"cgroup2");
        // SAFETY: mounts a cgroup2 hierarchy on an existing directory; all strings are
        // NUL-terminated.
        let r =
            unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
        if r != 0 {
            return Err(format!(
                "mount cgroup2: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    let list = std::fs::read_to_string(&controllers).map_err(|e| format!("{e}"))?;
    if !list.split_whitespace().any(|c| c == "memory") {
        return Ok(None);
    }
    std::fs::write(
        Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
        "+memory",
    )
    .map_err(|e| format!("enable the memory controller: {e}"))?;
    Ok(Some(()))
}

fn need_memcg() -> Result<Option<Outcome>, String> {
    Ok(match memory_controller()? {
        Some(()) => None,
        None => Some(Outcome::Skip(
            "the kernel has no memory cgroup controller".into(),
        )),
    })
}

/// Polls `cond` every 10 ms for up to `limit`.
fn wait_for(
    limit: Duration,
    mut cond: impl FnMut() -> Result<bool, String>,
) -> Result<bool, String> {
    let start = Instant::now();
    loop {
        if cond()? {
            return Ok(true);
        }
        if start.elapsed() > limit {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// vCPUs and stage-2 tables show in the cgroup's kernel memory, and leave it when the VM
/// goes.
fn vcpu_and_table_memory_is_charged() -> TestResult {
    if let Some(skip) = need_memcg()? {
        return Ok(skip);
    }
    let cg = Cgroup::new("rkvm-limits-charge")?;
    cg.enter()?;
    let result = (|| {
        let before = cg.field("memory.stat", "kernel")?;
        let tvm = TestVm::new(TABLE_RAM, guest_touch_every_2m())?;
        let mut vcpus = Vec::new();
        for id in 0..VCPUS {
            vcpus.push(tvm.vcpu(id, MEM_BASE, 0)?);
        }
        // memory.stat is flushed from per-CPU counters lazily (at most every 2 s).
        let mut with_vcpus = 0;
        wait_for(Duration::from_secs(5), || {
            with_vcpus = cg.field("memory.stat", "kernel")?;
            Ok(with_vcpus - before >= VCPUS * 4096)
        })?;
        match run(&mut vcpus[0], 0)? {
            Exit::SystemEvent(_) => {}
            other => return Err(format!("the guest ended with {other:?}, not SYSTEM_OFF")),
        }
        let touches = (TABLE_RAM as u64 - TOUCH_STRIDE) / TOUCH_STRIDE;
        let mut with_tables = 0;
        wait_for(Duration::from_secs(5), || {
            with_tables = cg.field("memory.stat", "kernel")?;
            Ok(with_tables.saturating_sub(with_vcpus) >= touches * 4096)
        })?;
        println!(
            "# kernel memory charged: {VCPUS} vCPUs {} KiB, stage 2 for {touches} 2-MiB-apart pages {} KiB",
            (with_vcpus - before) / 1024,
            with_tables.saturating_sub(with_vcpus) / 1024
        );
        // At least each vCPU's kvm_run page, and a last-level table per touched page.
        check!(
            with_vcpus - before >= VCPUS * 4096,
            "creating {VCPUS} vCPUs charged only {} bytes of kernel memory",
            with_vcpus - before
        );
        check!(
            with_tables.saturating_sub(with_vcpus) >= touches * 4096,
            "mapping {touches} pages 2 MiB apart charged only {} bytes of kernel memory",
            with_tables.saturating_sub(with_vcpus)
        );
        drop(vcpus);
        drop(tvm);
        let freed = wait_for(Duration::from_secs(10), || {
            Ok(cg.field("memory.stat", "kernel")? < with_vcpus)
        })?;
        check!(
            freed,
            "closing the VM left {} bytes of kernel memory charged (was {before} before it)",
            cg.field("memory.stat", "kernel")?
        );
        Ok(Outcome::Pass)
    })();
    leave_cgroups()?;
    result
}

/// What the limited VMM child reports through a shared page.
#[repr(C)]
struct ChildReport {
    vms: u64,
    vcpus: u64,
    /// The errno that stopped it (0 while it runs).
    errno: i64,
}

/// Creates VMs with `VCPUS` vCPUs each, keeping them all, until an ioctl fails.
fn hog(report: *mut ChildReport) -> ! {
    let mut keep = Vec::new();
    let kvm = match kvm() {
        Ok(k) => k,
        // SAFETY: ends the child.
        Err(_) => unsafe { libc::_exit(2) },
    };
    let errno = loop {
        let vm = match kvm.create_vm() {
            Ok(vm) => vm,
            Err(e) => break e.errno(),
        };
        let mut failed = None;
        for id in 0..VCPUS {
            match vm.create_vcpu(id) {
                Ok(v) => {
                    keep.push(v);
                    // SAFETY: the shared page outlives the child.
                    unsafe { (*report).vcpus += 1 };
                }
                Err(e) => {
                    failed = Some(e.errno());
                    break;
                }
            }
        }
        // SAFETY: as above.
        unsafe { (*report).vms += 1 };
        if let Some(e) = failed {
            break e;
        }
        keep_vm(vm);
    };
    // SAFETY: as above; then ends the child.
    unsafe {
        (*report).errno = i64::from(errno);
        libc::_exit(0)
    }
}

/// Keeps `vm` open for the rest of the child's life.
fn keep_vm(vm: kvm_ioctls::VmFd) {
    std::mem::forget(vm);
}

fn a_memory_limit_stops_the_vmm() -> TestResult {
    if let Some(skip) = need_memcg()? {
        return Ok(skip);
    }
    const LIMIT: u64 = 8 << 20;
    let mut log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    let refcnt = module_refcnt()?;
    let cg = Cgroup::new("rkvm-limits-hog")?;
    cg.write("memory.max", &LIMIT.to_string())?;
    cg.write("memory.swap.max", "0").ok();
    let shared = GuestMem::new_shared(4096)?;
    let report = shared.ptr.cast::<ChildReport>();
    // SAFETY: the test process is single-threaded; the child only runs `hog`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let nofile = libc::rlimit {
            rlim_cur: 1 << 16,
            rlim_max: 1 << 16,
        };
        // SAFETY: plain syscalls in the child; `hog` never returns.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) };
        if cg.enter().is_err() {
            // SAFETY: ends the child.
            unsafe { libc::_exit(3) };
        }
        hog(report);
    }
    let mut status = 0;
    // SAFETY: reaps the child forked above (the test's alarm bounds the wait).
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: the child is gone; the page is ours.
    let (vms, vcpus, child_errno) = unsafe { ((*report).vms, (*report).vcpus, (*report).errno) };
    let killed = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
    let events = cg.read("memory.events")?.replace('\n', ", ");
    println!(
        "# the VMM under memory.max={} MiB made {vms} VMs, {vcpus} vCPUs, then {}; memory.events: {events}",
        LIMIT >> 20,
        if killed { "was OOM-killed".to_string() } else { format!("got {}", rkvm_selftests::errno_label(child_errno as i32)) }
    );
    check!(
        vms >= 1 && vcpus >= VCPUS,
        "the VMM did not get going ({vms} VMs, {vcpus} vCPUs)"
    );
    check!(killed || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 && child_errno == libc::ENOMEM as i64),
        "the VMM ended with status {status:#x} and errno {child_errno}, not ENOMEM or the OOM killer");
    check!(
        cg.field("memory.events", "max")? > 0,
        "the cgroup never reached its limit"
    );
    // Everything charged to the VMM is given back once it is gone.
    wait_refcnt(refcnt, Duration::from_secs(10))?;
    let drained = wait_for(Duration::from_secs(10), || {
        Ok(cg.field("memory.stat", "kernel")? < 256 << 10)
    })?;
    check!(
        drained,
        "{} bytes of kernel memory stay charged after the VMM died",
        cg.field("memory.stat", "kernel")?
    );
    // The host, outside the cgroup, is unaffected.
    let tvm = TestVm::new(1 << 20, guest_off())?;
    let mut vcpu = tvm.vcpu(0, MEM_BASE, 0)?;
    check!(
        matches!(run(&mut vcpu, 0)?, Exit::SystemEvent(_)),
        "a VM outside the cgroup did not run"
    );
    log.check_clean()?;
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_resource_limits",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            (
                "vcpu_and_table_memory_is_charged",
                vcpu_and_table_memory_is_charged,
            ),
            ("a_memory_limit_stops_the_vmm", a_memory_limit_stops_the_vmm),
        ],
    )
}
