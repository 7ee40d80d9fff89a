// SPDX-License-Identifier: GPL-2.0

//! Shared pieces of the rkvm selftests: a KTAP reporter and small system helpers.
//!
//! Each selftest program is a list of named test functions; [`run`] executes them in order
//! and prints one KTAP document (`Documentation/dev-tools/ktap.rst`), which the host-side
//! harness collects from the console.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

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

/// Whether rkvm runs guests on this host: the harness names the expected backend, and
/// only the VHE backend has a world switch so far.
pub fn host_runs_guests() -> bool {
    cmdline_param("rkvmtest.backend").as_deref() == Some("VHE")
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

/// The rkvm device node.
pub const DEV_RKVM: &str = "/dev/rkvm";

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
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(&prefix).map(str::to_owned))
}
