// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the rkvm selftests: a KTAP reporter and small system helpers.
//!
//! Each selftest program is a list of named test functions; [`run`] executes them in order
//! and prints one KTAP document (`Documentation/dev-tools/ktap.rst`), which the host-side
//! harness collects from the console.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub mod binstats;
pub mod module;
pub mod vmm;

/// What a test concluded.
pub enum Outcome {
    Pass,
    Skip(String),
}

/// A test's result: `Err` carries the failure message.
pub type TestResult = Result<Outcome, String>;

/// A named test function.
pub type Test = (&'static str, fn() -> TestResult);

/// Wall-clock limit of one test in the emulated host.
const TEST_TIMEOUT_SECONDS: u32 = 120;

/// Runs `tests` in order as one KTAP document; the exit status is 1 if any failed.
pub fn run(suite: &str, tests: &[Test]) -> ! {
    println!("KTAP version 1");
    println!("# suite: {suite}");
    println!("1..{}", tests.len());
    let mut failed = 0;
    for (i, (name, test)) in tests.iter().enumerate() {
        // A test that hangs (a guest that never exits, a wait that never ends) is killed
        // by SIGALRM; the harness then sees the KTAP plan cut short and fails the run.
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(TEST_TIMEOUT_SECONDS) };
        match test() {
            Ok(Outcome::Pass) => println!("ok {} {name}", i + 1),
            Ok(Outcome::Skip(why)) => println!("ok {} {name} # SKIP {why}", i + 1),
            Err(msg) => {
                failed += 1;
                for line in msg.lines() {
                    println!("# {name}: {line}");
                }
                println!("not ok {} {name}", i + 1);
            }
        }
    }
    // SAFETY: cancels the last alarm.
    unsafe { libc::alarm(0) };
    println!("# {suite}: {} tests, {failed} failed", tests.len());
    std::process::exit(i32::from(failed != 0))
}

/// Runs `tests` as [`run`] does when `cond` holds; otherwise reports each as skipped
/// with `reason`, so the skip is visible in the counts.
pub fn run_or_skip(suite: &str, cond: bool, reason: &str, tests: &[Test]) -> ! {
    if cond {
        run(suite, tests)
    }
    println!("KTAP version 1");
    println!("# suite: {suite}");
    println!("1..{}", tests.len());
    for (i, (name, _)) in tests.iter().enumerate() {
        println!("ok {} {name} # SKIP {reason}", i + 1);
    }
    std::process::exit(0)
}

/// Why guest tests are skipped on a host where rkvm has no backend.
pub const NO_GUESTS_REASON: &str = "rkvm has no backend on this host";

/// Whether rkvm runs guests on this host: the harness names the expected backend, and
/// both backends (VHE and nVHE) have a world switch.
pub fn host_runs_guests() -> bool {
    matches!(
        cmdline_param("rkvmtest.backend").as_deref(),
        Some("VHE" | "nVHE")
    )
}

/// Fails the test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+)));
        }
    };
}

/// Fails the test unless `left == right`, printing both.
#[macro_export]
macro_rules! check_eq {
    ($left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!(
                "{}:{}: {} == {:?}, expected {:?}",
                file!(),
                line!(),
                stringify!($left),
                l,
                r
            ));
        }
    }};
}

/// The mismatches of a table-driven test. Every case runs and all differences are reported
/// together, so one run shows each divergence instead of stopping at the first.
#[derive(Default)]
pub struct Cases {
    failures: Vec<String>,
    total: usize,
}

impl Cases {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a case: `got` must equal `want`.
    #[track_caller]
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        self.total += 1;
        if got != want {
            self.record(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }

    /// Records a case on an ioctl's result: `want` is 0 for success, else the errno.
    #[track_caller]
    pub fn errno(&mut self, what: &str, got: Result<i32, i32>, want: i32) {
        self.total += 1;
        let got = got.err().unwrap_or(0);
        if got != want {
            let (got, want) = (errno_label(got), errno_label(want));
            self.record(format!("{what}: got {got}, expected {want}"));
        }
    }

    /// Records a failed step (set-up that did not work, an unexpected exit).
    #[track_caller]
    pub fn fail(&mut self, msg: String) {
        self.total += 1;
        self.record(msg);
    }

    #[track_caller]
    fn record(&mut self, msg: String) {
        let at = std::panic::Location::caller();
        self.failures
            .push(format!("{}:{}: {msg}", at.file(), at.line()));
    }

    /// Passes if every case matched; otherwise fails listing each mismatch.
    pub fn finish(self) -> TestResult {
        if self.failures.is_empty() {
            return Ok(Outcome::Pass);
        }
        Err(format!(
            "{} of {} cases differ:\n{}",
            self.failures.len(),
            self.total,
            self.failures.join("\n")
        ))
    }
}

/// `0` or the symbolic name of an errno value, as KVM's documentation spells them.
pub fn errno_label(e: i32) -> String {
    let name = match e {
        0 => return "0 (success)".into(),
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        _ => return format!("errno {e}"),
    };
    name.into()
}

/// The kernel log from a point on (`/dev/kmsg`): lets a test require that an operation
/// logs nothing, since a refused ioctl must have no side effects.
pub struct KernelLog(Fd);

impl KernelLog {
    /// Starts at the end of the log.
    pub fn mark() -> io::Result<Self> {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/kmsg".as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let log = Self(Fd(fd));
        // SAFETY: seeking an fd this value owns.
        if unsafe { libc::lseek(fd, 0, libc::SEEK_END) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(log)
    }

    /// Starts at the oldest record the kernel still holds (the boot messages, on the
    /// emulated hosts).
    pub fn from_start() -> io::Result<Self> {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c"/dev/kmsg".as_ptr(), flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(Fd(fd)))
    }

    /// The messages logged since the mark (or the previous call).
    pub fn new_messages(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reads one record into `buf`.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 && errno() == libc::EPIPE {
                continue; // records were overwritten; go on with the next one
            }
            if n <= 0 {
                return out;
            }
            // "prio,seq,time,flags;message\n" and continuation lines.
            let rec = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            let msg = rec.split_once(';').map_or(rec.as_str(), |(_, m)| m);
            out.push(msg.lines().next().unwrap_or("").to_owned());
        }
    }
}

/// The rkvm device node.
pub const DEV_RKVM: &str = "/dev/rkvm";
/// KVM's device node, which rkvm also registers (misc minor 232) unless `devkvm=0`.
pub const DEV_KVM: &str = "/dev/kvm";
/// The misc major and KVM's minor in it (`KVM_MINOR`).
pub const MISC_MAJOR: u32 = 10;
pub const KVM_MINOR: u32 = 232;

/// The (major, minor) of the character device at `path`; `None` if there is none.
pub fn char_dev(path: &str) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type()
        .is_char_device()
        .then(|| (libc::major(meta.rdev()), libc::minor(meta.rdev())))
}

/// An open file descriptor, closed on drop.
pub struct Fd(RawFd);

impl Fd {
    /// Opens `path` read-write.
    pub fn open(path: &str) -> io::Result<Self> {
        let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(Self(fd))
        }
    }

    /// Issues an ioctl with an integer argument and returns its result or errno.
    pub fn ioctl(&self, cmd: u64, arg: u64) -> Result<i32, i32> {
        // SAFETY: the commands tests pass with integer arguments do not dereference them,
        // or, for unknown commands, are rejected before any argument is used.
        let ret = unsafe { libc::ioctl(self.0, cmd as _, arg as libc::c_ulong) };
        if ret < 0 {
            Err(errno())
        } else {
            Ok(ret)
        }
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an fd this value owns.
        unsafe { libc::close(self.0) };
    }
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno value, for messages.
pub fn errno_name(e: i32) -> String {
    io::Error::from_raw_os_error(e).to_string()
}

/// The page size of the host.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// The value of `name=` on the kernel command line, if present.
pub fn cmdline_param(name: &str) -> Option<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    let prefix = format!("{name}=");
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&prefix).map(str::to_owned))
}

/// Console markers of a kernel in trouble, as `Documentation/testing.rst` lists them:
/// any of these in the log fails a robustness test.
const KERNEL_TROUBLE: &[&str] = &[
    "Oops",
    "BUG:",
    "WARNING:",
    "Call trace:",
    "Kernel panic",
    "KASAN:",
    "UBSAN:",
    "suspected memory leaks",
    "unreferenced object 0x",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "self-detected stall",
    "rcu: INFO",
    "sleeping function called from invalid context",
    "soft lockup",
    "blocked for more than",
];

/// The lines of `messages` that show the kernel in trouble.
pub fn kernel_trouble(messages: &[String]) -> Vec<String> {
    let expected = expected_oom_report(messages);
    messages
        .iter()
        .zip(expected)
        .filter(|(m, expected)| !expected && KERNEL_TROUBLE.iter().any(|t| m.contains(t)))
        .map(|(m, _)| m.clone())
        .collect()
}

/// Marks the lines of memory-cgroup OOM reports for the cgroups `resource_limits` makes
/// (`rkvm-limits-*`): a report runs from "invoked oom-killer" to "Memory cgroup out of
/// memory: Killed process", and its `oom-kill:` line names the cgroup. The report's stack
/// dump is the kernel working as intended there; any other report stays trouble.
/// `scripts/ktap-summary.py` applies the same rule to the console log.
pub fn expected_oom_report(messages: &[String]) -> Vec<bool> {
    let mut marks = vec![false; messages.len()];
    let mut start = None;
    for (i, m) in messages.iter().enumerate() {
        if m.contains("invoked oom-killer:") {
            start = Some(i);
        } else if m.contains("Memory cgroup out of memory: Killed process") {
            if let Some(s) = start.take() {
                let ours = messages[s..i].iter().any(|l| {
                    l.contains("oom-kill:constraint=CONSTRAINT_MEMCG")
                        && l.contains("oom_memcg=/rkvm-limits-")
                });
                if ours {
                    marks[s..=i].iter_mut().for_each(|b| *b = true);
                }
            }
        }
    }
    marks
}

impl KernelLog {
    /// Fails with the offending lines if the kernel reported trouble since the mark (or
    /// the previous call).
    pub fn check_clean(&mut self) -> Result<(), String> {
        let bad = kernel_trouble(&self.new_messages());
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!("the kernel log shows trouble:\n{}", bad.join("\n")))
        }
    }
}

/// A non-blocking, close-on-exec eventfd (for ioeventfds and irqfds).
pub fn eventfd() -> Result<OwnedFd, String> {
    // SAFETY: eventfd has no pointer arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd's counter (reading resets it); 0 if never signalled.
pub fn eventfd_count(fd: &OwnedFd) -> u64 {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into `v`.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// Pins the calling thread to host CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("CPU {cpu} is beyond CPU_SETSIZE"));
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; `cpu` is below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) } != 0 {
        return Err(format!(
            "sched_setaffinity(CPU {cpu}): {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The debugfs counters (`rkvm/<pid>-<vmid>/vcpu<id>/stats`) of vCPU `id` of this
/// process's VM (the tests that read them have one VM at a time).
pub fn vcpu_stats(id: u32) -> Result<std::collections::HashMap<String, u64>, String> {
    let prefix = format!("{}-", std::process::id());
    let dir = std::fs::read_dir("/sys/kernel/debug/rkvm").map_err(|e| format!("debugfs: {e}"))?;
    let entries: Vec<_> = dir.filter_map(Result::ok).collect();
    let vm = entries
        .iter()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .ok_or_else(|| {
            let names: Vec<_> = entries.iter().map(|e| e.file_name()).collect();
            format!("no debugfs directory {prefix}* among {names:?}")
        })?;
    let text = std::fs::read_to_string(vm.path().join(format!("vcpu{id}/stats")))
        .map_err(|e| format!("reading stats: {e}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect())
}

/// Counter `k` of a [`vcpu_stats`] map (0 if absent).
pub fn stat(s: &std::collections::HashMap<String, u64>, k: &str) -> u64 {
    s.get(k).copied().unwrap_or(0)
}

/// rkvm's module reference count: every open VM or vCPU file (and vCPU mapping) holds one.
pub fn module_refcnt() -> Result<u64, String> {
    let s =
        std::fs::read_to_string("/sys/module/rkvm/refcnt").map_err(|e| format!("refcnt: {e}"))?;
    s.trim().parse().map_err(|e| format!("refcnt {s:?}: {e}"))
}

/// Waits (up to `limit`) for the module reference count to come back to `baseline`:
/// files are released asynchronously after the last close.
pub fn wait_refcnt(baseline: u64, limit: std::time::Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        let now = module_refcnt()?;
        if now == baseline {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "module refcnt {now}, expected {baseline} after {limit:?}"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The number of open fds of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A small xorshift64* generator: the fuzzing tests print their seed, so a failing run
/// can be replayed exactly (single-threaded parts) without any crate.
#[derive(Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A copy of one element of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The seed of a fuzzing test: `rkvmtest.seed=` on the kernel command line, else `default`.
pub fn fuzz_seed(default: u64) -> u64 {
    cmdline_param("rkvmtest.seed")
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(default)
}

extern "C" fn kick_handler(_: libc::c_int) {}

/// A one-shot timer that interrupts the thread that created it with `SIGUSR2`, whose
/// handler does nothing and does not restart system calls: a `KVM_RUN` still in the
/// guest when it fires returns `EINTR`. Bounds guest runs that may never exit by
/// themselves (random code, hostile register state).
pub struct Kick(libc::timer_t);

impl Kick {
    pub fn new() -> Result<Self, String> {
        // SAFETY: a zeroed sigaction is valid; the handler only returns. No SA_RESTART,
        // so the interrupted KVM_RUN fails with EINTR instead of being restarted.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = kick_handler as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut()) != 0 {
                return Err(format!("sigaction: {}", io::Error::last_os_error()));
            }
        }
        // SAFETY: a zeroed sigevent is valid before the fields are set.
        let mut sev: libc::sigevent = unsafe { core::mem::zeroed() };
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = libc::SIGUSR2;
        // SAFETY: gettid has no preconditions.
        sev.sigev_notify_thread_id = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let mut timer: libc::timer_t = core::ptr::null_mut();
        // SAFETY: both pointers are valid for the call.
        if unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut timer) } != 0 {
            return Err(format!("timer_create: {}", io::Error::last_os_error()));
        }
        Ok(Self(timer))
    }

    fn set(&self, after: std::time::Duration) {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `self.0` is a live timer; a zero value disarms it.
        unsafe { libc::timer_settime(self.0, 0, &spec, core::ptr::null_mut()) };
    }

    /// Fires once after `after` (a non-zero duration).
    pub fn arm(&self, after: std::time::Duration) {
        self.set(after.max(std::time::Duration::from_nanos(1)));
    }

    pub fn disarm(&self) {
        self.set(std::time::Duration::ZERO);
    }
}

impl Drop for Kick {
    fn drop(&mut self) {
        // SAFETY: the timer made in `new`.
        unsafe { libc::timer_delete(self.0) };
    }
}
