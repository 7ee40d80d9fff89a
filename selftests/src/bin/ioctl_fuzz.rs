// SPDX-License-Identifier: GPL-2.0

//! A bounded ioctl fuzzer: 20,000 steps of random rkvm ioctls on system, VM, vCPU and
//! vGIC device fds with random and boundary arguments, fds closed and created at random,
//! first from one thread, then from three racing on shared fds. The interrupt ioctls get
//! real eventfds (irqfd, ioeventfd), closed right after the call; stats fds are read at
//! random offsets and closed; coalesced-MMIO zones come and go. Any errno is fine; what is checked is
//! that every call returns (the runner's alarm), that the kernel logs no trouble, that
//! everything is released at the end (fds, rkvm's module reference count) and that a
//! fresh VM still runs.
//!
//! No guest runs without `immediate_exit` (set in every vCPU's `kvm_run` page as soon as
//! it exists), except private VMs whose code is a SYSTEM_OFF payload; every `KVM_RUN` is
//! bounded by a timer signal anyway, in case a racing thread reuses an fd number.

use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, errno, fuzz_seed, guest_code, host_runs_guests, module_refcnt, open_fds,
    run_or_skip, wait_refcnt, KernelLog, Kick, Outcome, TestResult, XorShift, DEV_RKVM,
};
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const SINGLE_STEPS: usize = 10_000;
const RACING_STEPS: usize = 10_000;
const THREADS: usize = 3;
const PAGE: usize = 4096;
/// Each thread's argument buffer: structures go in its first 16 KiB, register values at
/// 32 KiB; the kernel may write up to `_IOC_SIZE` (16 KiB) or a register's size (rkvm
/// should refuse sizes over 16 bytes, but a bug must not corrupt this process) there.
const SCRATCH: usize = 128 * 1024;
const VALUE_AREA: usize = 0x8000;
/// Pool limits: beyond them a new fd is closed at once.
const MAX_SYS: usize = 3;
const MAX_VMS: usize = 6;
const MAX_VCPUS: usize = 16;
const MAX_DEVICES: usize = 4;

/// Commands that create an fd on KVM: random commands skip them, so that every fd this
/// process holds is one the pool knows.
const CREATES_FD: [u64; 5] = [
    nr::KVM_CREATE_VM,
    nr::KVM_CREATE_VCPU,
    nr::KVM_GET_STATS_FD,
    nr::KVM_CREATE_GUEST_MEMFD,
    nr::KVM_CREATE_DEVICE,
];

/// KVM ioctls rkvm does not implement, or on an fd kind that does not take them, and the
/// dirty-log ioctls, with random arguments: each must fail cleanly or do what it asks.
const OTHER_IOCTLS: [(&str, u64, Kind); 15] = [
    (
        "KVM_GET_MSR_INDEX_LIST",
        nr::KVM_GET_MSR_INDEX_LIST,
        Kind::Sys,
    ),
    (
        "KVM_GET_SUPPORTED_CPUID",
        nr::KVM_GET_SUPPORTED_CPUID,
        Kind::Sys,
    ),
    ("KVM_GET_DIRTY_LOG", nr::KVM_GET_DIRTY_LOG, Kind::Vm),
    ("KVM_CLEAR_DIRTY_LOG", nr::KVM_CLEAR_DIRTY_LOG, Kind::Vm),
    ("KVM_SET_GSI_ROUTING", nr::KVM_SET_GSI_ROUTING, Kind::Vm),
    ("KVM_ENABLE_CAP", nr::KVM_ENABLE_CAP, Kind::Vm),
    (
        "KVM_ARM_SET_DEVICE_ADDR",
        nr::KVM_ARM_SET_DEVICE_ADDR,
        Kind::Vm,
    ),
    ("KVM_SET_DEVICE_ATTR", nr::KVM_SET_DEVICE_ATTR, Kind::Vm),
    ("KVM_GET_REGS", nr::KVM_GET_REGS, Kind::Vcpu),
    ("KVM_SET_REGS", nr::KVM_SET_REGS, Kind::Vcpu),
    ("KVM_SET_GUEST_DEBUG", nr::KVM_SET_GUEST_DEBUG, Kind::Vcpu),
    ("KVM_GET_VCPU_EVENTS", nr::KVM_GET_VCPU_EVENTS, Kind::Vcpu),
    ("KVM_SET_VCPU_EVENTS", nr::KVM_SET_VCPU_EVENTS, Kind::Vcpu),
    (
        "KVM_ARM_VCPU_FINALIZE",
        nr::KVM_ARM_VCPU_FINALIZE,
        Kind::Vcpu,
    ),
    ("KVM_HAS_DEVICE_ATTR", nr::KVM_HAS_DEVICE_ATTR, Kind::Vcpu),
];

guest_code!(
    guest_off,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sys,
    Vm,
    Vcpu,
    Device,
}

/// `struct kvm_device_attr`.
#[repr(C)]
#[derive(Clone, Copy)]
struct DeviceAttr {
    flags: u32,
    group: u32,
    attr: u64,
    addr: u64,
}

/// `struct kvm_irqfd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Irqfd {
    fd: u32,
    gsi: u32,
    flags: u32,
    resamplefd: u32,
    pad: [u8; 16],
}

/// `struct kvm_ioeventfd`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ioeventfd {
    datamatch: u64,
    addr: u64,
    len: u32,
    fd: i32,
    flags: u32,
    pad: [u8; 36],
}

/// `struct kvm_coalesced_mmio_zone`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CoalescedZone {
    addr: u64,
    size: u32,
    pio: u32,
}

/// An fd of the pool; a vCPU's own `kvm_run` mapping (address, length) goes with it.
struct Entry {
    fd: i32,
    kind: Kind,
    run: Option<(usize, usize)>,
}

/// The fds and mappings the fuzzing threads share.
#[derive(Default)]
struct Pool {
    entries: Vec<Entry>,
    /// Extra mappings of vCPU fds, and run pages outliving their fd.
    maps: Vec<(usize, usize)>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    entries: Vec::new(),
    maps: Vec::new(),
});
/// Calls per operation: (calls, successes).
static COUNTS: Mutex<BTreeMap<&'static str, (u64, u64)>> = Mutex::new(BTreeMap::new());
/// Memory for memslots, never unmapped: four 1 MiB buffers, a read-only page and a
/// PROT_NONE page.
static BUFFERS: OnceLock<[u64; 6]> = OnceLock::new();
/// ONE_REG ids of a real vCPU.
static REG_IDS: OnceLock<Vec<u64>> = OnceLock::new();
static LOG: Mutex<Option<KernelLog>> = Mutex::new(None);
/// What the tests compare against: rkvm's references and this process's fds at start.
static BASELINE: OnceLock<(u64, usize)> = OnceLock::new();

fn count(name: &'static str, ok: bool) {
    if let Ok(mut c) = COUNTS.lock() {
        let e = c.entry(name).or_default();
        e.0 += 1;
        e.1 += u64::from(ok);
    }
}

fn map_anon(len: usize, prot: i32) -> Result<u64, String> {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: errno {}", errno()));
    }
    Ok(p as u64)
}

/// One fuzzing thread: its generator, argument buffer and kick timer.
struct Fuzzer {
    rng: XorShift,
    scratch: *mut u8,
    kick: Kick,
    /// Weighted towards creating and closing (the churning thread) or towards vCPU
    /// ioctls on shared fds.
    churn: bool,
}

impl Drop for Fuzzer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; no call using it is in flight.
        unsafe { libc::munmap(self.scratch.cast(), SCRATCH) };
    }
}

impl Fuzzer {
    fn new(seed: u64, churn: bool) -> Result<Self, String> {
        let scratch = map_anon(SCRATCH, libc::PROT_READ | libc::PROT_WRITE)? as *mut u8;
        Ok(Self {
            rng: XorShift::new(seed),
            scratch,
            kick: Kick::new()?,
            churn,
        })
    }

    /// An ioctl, counted under `name`.
    ///
    /// Every address reaching the kernel (directly or inside a structure) is 0, an
    /// address that faults, or within this thread's scratch buffer with room for any
    /// size the command may write (see `SCRATCH`).
    fn call(&mut self, name: &'static str, fd: i32, cmd: u64, arg: u64) -> Result<i32, i32> {
        // SAFETY: as above.
        let r = unsafe { ioctl_raw(fd, cmd, arg) };
        count(name, r.is_ok());
        r
    }

    fn boundary(&mut self) -> u64 {
        const B: [u64; 20] = [
            0,
            1,
            2,
            3,
            0xff,
            0x100,
            36,
            40,
            48,
            52,
            63,
            64,
            511,
            512,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            u64::MAX,
            1 << 63,
            0x1000,
        ];
        match self.rng.below(4) {
            0 => self.rng.next_u64(),
            1 => self.rng.below(300),
            _ => self.rng.pick(&B),
        }
    }

    /// Scratch offset `off`, filled with random bytes over `len`.
    fn scratch_at(&mut self, off: usize, len: usize) -> u64 {
        // SAFETY: off + len stays within the scratch buffer (callers keep off < 0x4000
        // and len <= 0x4000, or off in the value area with len <= 0x100).
        let buf = unsafe { core::slice::from_raw_parts_mut(self.scratch.add(off), len) };
        self.rng.fill(buf);
        self.scratch as u64 + off as u64
    }

    fn struct_offset(&mut self) -> usize {
        self.rng
            .pick(&[0, 0, 0, 8, 1, 3, 0x1000 - 4, 0x1ff8, 0x3000])
            + if self.rng.one_in(8) {
                self.rng.below(0x800) as usize
            } else {
                0
            }
    }

    /// An address for the kernel: mostly scratch with random contents, sometimes one
    /// that faults.
    fn ptr(&mut self) -> u64 {
        let b = BUFFERS.get().copied().unwrap_or([0; 6]);
        match self.rng.below(12) {
            0 => 0,
            1 => 8,
            2 => 0xffff_ffff_ffff_f000,
            3 => 0xffff_8000_1000_0000, // a kernel address
            4 => b[4],                  // read-only
            5 => b[5],                  // PROT_NONE
            6 => u64::MAX,
            _ => {
                let off = self.struct_offset();
                self.scratch_at(off, 0x1000)
            }
        }
    }

    fn put<T>(&mut self, value: T) -> u64 {
        let off = self.struct_offset();
        let p = self.scratch_at(off, core::mem::size_of::<T>().max(16));
        // SAFETY: within scratch (see `scratch_at`), unaligned writes allowed.
        unsafe { (p as *mut T).write_unaligned(value) };
        p
    }

    /// A structure pointer for a command: the well-formed structure `good`, or any
    /// address from `ptr`.
    fn arg_or<T>(&mut self, good: T) -> u64 {
        if self.rng.one_in(6) {
            self.ptr()
        } else {
            self.put(good)
        }
    }

    /// An fd of `kind` from the pool, sometimes of another kind or a bad number.
    fn pick(&mut self, kind: Kind) -> i32 {
        let roll = self.rng.below(20);
        let Ok(pool) = POOL.lock() else { return -1 };
        let wanted: Vec<i32> = pool
            .entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.fd)
            .collect();
        if roll == 0 {
            return self.rng.pick(&[-1, 100_000, 1023]);
        }
        if roll <= 2 || wanted.is_empty() {
            if pool.entries.is_empty() {
                return -1;
            }
            return pool.entries[self.rng.below(pool.entries.len() as u64) as usize].fd;
        }
        wanted[self.rng.below(wanted.len() as u64) as usize]
    }

    /// Adds a new fd to the pool (closing it if the pool is full of its kind). A vCPU gets
    /// its `kvm_run` mapped and `immediate_exit` set first, so no `KVM_RUN` on the pool
    /// enters a guest.
    fn adopt(&mut self, fd: i32, kind: Kind) {
        let mut run = None;
        if kind == Kind::Vcpu {
            // SAFETY: maps the vCPU's run page, shared; unmapped at cleanup.
            let p = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            count("mmap (kvm_run)", p != libc::MAP_FAILED);
            if p == libc::MAP_FAILED {
                close(fd);
                return;
            }
            // SAFETY: the run page just mapped.
            unsafe { (*(p as *mut kvm_bindings::kvm_run)).immediate_exit = 1 };
            run = Some((p as usize, PAGE));
        }
        let Ok(mut pool) = POOL.lock() else { return };
        let max = match kind {
            Kind::Sys => MAX_SYS,
            Kind::Vm => MAX_VMS,
            Kind::Vcpu => MAX_VCPUS,
            Kind::Device => MAX_DEVICES,
        };
        let have = pool.entries.iter().filter(|e| e.kind == kind).count();
        if have >= max {
            drop(pool);
            close(fd);
            if let Some(m) = run {
                unmap(m);
            }
            return;
        }
        pool.entries.push(Entry { fd, kind, run });
    }

    /// Closes a random pool fd; its run page stays mapped half the time.
    fn close_one(&mut self) {
        let keep_map = self.rng.one_in(2);
        let Ok(mut pool) = POOL.lock() else { return };
        if pool.entries.is_empty() {
            return;
        }
        let i = self.rng.below(pool.entries.len() as u64) as usize;
        let e = pool.entries.swap_remove(i);
        if let Some(m) = e.run {
            if keep_map {
                pool.maps.push(m);
            }
        }
        drop(pool);
        close(e.fd);
        if let (Some(m), false) = (e.run, keep_map) {
            unmap(m);
        }
    }

    fn reg_id(&mut self) -> u64 {
        let ids = REG_IDS.get().map(Vec::as_slice).unwrap_or(&[]);
        match self.rng.below(8) {
            0 => self.rng.next_u64(),
            // Well-formed-looking ids: core offsets, sizes, system registers, firmware.
            1 => 0x6000_0000_0010_0000 | (self.rng.below(8) << 52) | self.rng.below(0x200),
            2 => sys_reg(
                self.rng.below(4),
                self.rng.below(8),
                self.rng.below(16),
                self.rng.below(16),
                self.rng.below(8),
            ),
            3 => 0x6030_0000_0014_0000 | self.rng.below(0x10000),
            _ if !ids.is_empty() => ids[self.rng.below(ids.len() as u64) as usize],
            _ => 0,
        }
    }

    fn memslot_arg(&mut self, two: bool) -> u64 {
        let b = BUFFERS.get().copied().unwrap_or([0; 6]);
        let slot = match self.rng.below(6) {
            0 => self.rng.next_u32(),
            1 => self.rng.pick(&[511, 512, 0x1_0000, 0x1_0001, u32::MAX]),
            _ => self.rng.below(4) as u32,
        };
        let flags = match self.rng.below(5) {
            0 => self.rng.next_u32(),
            1 => self.rng.pick(&[1, 4, 3, 0x8000_0000]),
            2 => 2, // KVM_MEM_READONLY
            _ => 0,
        };
        let gpa = match self.rng.below(6) {
            0 => self.rng.next_u64() & !0xfff,
            1 => self
                .rng
                .pick(&[0, MEM_BASE + 1, 1 << 36, 1 << 40, 1 << 47, 1 << 48, !0xfff]),
            _ => MEM_BASE + self.rng.below(8) * 0x10_0000,
        };
        let size = match self.rng.below(6) {
            0 => self.rng.next_u64() & !0xfff,
            1 => self
                .rng
                .pick(&[0x1001, 1 << 30, 1 << 40, !0xfff, 0x10_0001]),
            2 => 0, // delete
            _ => self.rng.pick(&[0x1000, 0x2000, 0x10_0000]),
        };
        let uaddr = match self.rng.below(8) {
            0 => self.rng.next_u64() & !0xfff,
            1 => self
                .rng
                .pick(&[0, 8, 0x1000, 0xffff_8000_0000_0000, !0xfff, b[4], b[5]]),
            2 => b[self.rng.below(4) as usize] + self.rng.pick(&[1, 0x1000, 0x8_0000]),
            _ => b[self.rng.below(4) as usize],
        };
        let mut r = [0u64; 20]; // kvm_userspace_memory_region2: 160 bytes
        r[0] = u64::from(slot) | (u64::from(flags) << 32);
        r[1] = gpa;
        r[2] = size;
        r[3] = uaddr;
        if two {
            // guest_memfd_offset, guest_memfd, padding: mostly zero.
            for v in &mut r[4..] {
                *v = if self.rng.one_in(6) {
                    self.rng.next_u64()
                } else {
                    0
                };
            }
        }
        if self.rng.one_in(8) {
            self.ptr()
        } else {
            self.put(r)
        }
    }

    fn vcpu_init_arg(&mut self) -> u64 {
        let mut init = [0u32; 8];
        let any = self.rng.next_u32();
        init[0] = if self.rng.one_in(6) {
            self.rng.pick(&[0, 4, 6, u32::MAX, any])
        } else {
            5
        };
        init[1] = match self.rng.below(8) {
            0 => self.rng.next_u32(),
            1 => self
                .rng
                .pick(&[1 << 1, 1 << 3, 1 << 4, 1 << 5, 1 << 9, 1 << 10, 1 << 31]),
            2 => 1 | (1 << 2), // POWER_OFF | PSCI_0_2
            3 => 0,
            _ => 1 << 2,
        };
        if self.rng.one_in(10) {
            init[2 + self.rng.below(6) as usize] = self.rng.next_u32();
        }
        self.arg_or(init)
    }

    fn sigmask_arg(&mut self) -> u64 {
        if self.rng.one_in(5) {
            return 0; // clears the mask
        }
        let len = if self.rng.one_in(4) {
            self.rng.pick(&[0, 4, 16, 128, u32::MAX])
        } else {
            8
        };
        // Never block SIGUSR2: it is what stops a run that entered a guest.
        let bits = self.rng.next_u64() & !(1 << (libc::SIGUSR2 - 1));
        let mut m = [0u8; 12];
        m[..4].copy_from_slice(&len.to_le_bytes());
        m[4..].copy_from_slice(&bits.to_le_bytes());
        if self.rng.one_in(8) {
            self.ptr()
        } else {
            self.put(m)
        }
    }

    fn one_reg_arg(&mut self) -> u64 {
        let id = self.reg_id();
        let addr = match self.rng.below(8) {
            0 => self.ptr(),
            _ => {
                let off = VALUE_AREA + self.rng.pick(&[0, 0, 1, 8, 0xf8]);
                self.scratch_at(off, 0x100)
            }
        };
        self.arg_or([id, addr])
    }

    fn reg_list_arg(&mut self) -> u64 {
        let n = match self.rng.below(5) {
            0 => self.rng.next_u64(),
            1 => self.rng.pick(&[0, 1, 64, u64::MAX, 1 << 40]),
            _ => 256,
        };
        if self.rng.one_in(8) {
            self.ptr()
        } else {
            self.put(n)
        }
    }

    /// `KVM_RUN` on a pool fd: `immediate_exit` is set in every pool vCPU, so it
    /// returns at once; the kick bounds it in any case.
    fn run_pool(&mut self) {
        let fd = self.pick(Kind::Vcpu);
        let arg = if self.rng.one_in(10) {
            self.boundary()
        } else {
            0
        };
        self.kick.arm(Duration::from_secs(1));
        let _ = self.call("KVM_RUN", fd, nr::KVM_RUN, arg);
        self.kick.disarm();
    }

    /// A private VM with a SYSTEM_OFF payload, a few registers fuzzed, run for real
    /// (bounded by the kick).
    fn private_run(&mut self) -> Result<(), String> {
        let vm = TestVm::new(1 << 16, guest_off())?;
        let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        for _ in 0..self.rng.below(4) {
            let id = self.reg_id();
            if id == core_reg_pc() && !self.rng.one_in(4) {
                continue;
            }
            let v = self.boundary();
            let p = self.scratch_at(VALUE_AREA, 0x100);
            // SAFETY: within scratch.
            unsafe { (p as *mut u64).write_unaligned(v) };
            let arg = self.put([id, p]);
            let _ = self.call(
                "KVM_SET_ONE_REG (private VM)",
                std::os::fd::AsRawFd::as_raw_fd(&vcpu),
                nr::KVM_SET_ONE_REG,
                arg,
            );
        }
        self.kick.arm(Duration::from_millis(200));
        let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
        self.kick.disarm();
        count(
            match r {
                Ok(ref s) if s.starts_with("SystemEvent") => "private run: SYSTEM_OFF",
                Ok(_) => "private run: other exit",
                Err(libc::EINTR) => "private run: kicked",
                Err(_) => "private run: error",
            },
            true,
        );
        Ok(())
    }

    fn step(&mut self) -> Result<(), String> {
        let roll = self.rng.below(100);
        let roll = if self.churn && roll >= 60 && self.rng.one_in(2) {
            roll % 12
        } else {
            roll
        };
        match roll {
            0..=2 => {
                let c = std::ffi::CString::new(DEV_RKVM).map_err(|e| e.to_string())?;
                // SAFETY: a NUL-terminated path.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
                count("open /dev/rkvm", fd >= 0);
                if fd >= 0 {
                    self.adopt(fd, Kind::Sys);
                }
            }
            3..=6 => {
                self.close_one();
                count("close", true);
            }
            7..=9 => {
                let fd = self.pick(Kind::Sys);
                let arg = if self.rng.one_in(2) {
                    0
                } else {
                    self.boundary()
                };
                if let Ok(vm) = self.call("KVM_CREATE_VM", fd, nr::KVM_CREATE_VM, arg) {
                    self.adopt(vm, Kind::Vm);
                }
            }
            10..=14 => {
                let fd = self.pick(Kind::Vm);
                let id = if self.rng.one_in(4) {
                    self.boundary()
                } else {
                    self.rng.below(4)
                };
                if let Ok(v) = self.call("KVM_CREATE_VCPU", fd, nr::KVM_CREATE_VCPU, id) {
                    self.adopt(v, Kind::Vcpu);
                }
            }
            15..=21 => {
                let two = self.rng.one_in(3);
                let fd = self.pick(Kind::Vm);
                let arg = self.memslot_arg(two);
                if two {
                    let _ = self.call(
                        "KVM_SET_USER_MEMORY_REGION2",
                        fd,
                        nr::KVM_SET_USER_MEMORY_REGION2,
                        arg,
                    );
                } else {
                    let _ = self.call(
                        "KVM_SET_USER_MEMORY_REGION",
                        fd,
                        nr::KVM_SET_USER_MEMORY_REGION,
                        arg,
                    );
                }
            }
            22..=28 => {
                let fd = self.pick(Kind::Vcpu);
                let arg = self.vcpu_init_arg();
                let _ = self.call("KVM_ARM_VCPU_INIT", fd, nr::KVM_ARM_VCPU_INIT, arg);
            }
            29..=40 => {
                let fd = self.pick(Kind::Vcpu);
                let arg = self.one_reg_arg();
                if self.rng.one_in(2) {
                    let _ = self.call("KVM_GET_ONE_REG", fd, nr::KVM_GET_ONE_REG, arg);
                } else {
                    let _ = self.call("KVM_SET_ONE_REG", fd, nr::KVM_SET_ONE_REG, arg);
                }
            }
            41..=43 => {
                let fd = self.pick(Kind::Vcpu);
                let arg = self.reg_list_arg();
                let _ = self.call("KVM_GET_REG_LIST", fd, nr::KVM_GET_REG_LIST, arg);
            }
            44..=47 => {
                let fd = self.pick(Kind::Vcpu);
                if self.rng.one_in(2) {
                    let arg = self.arg_or(0u32);
                    let _ = self.call("KVM_GET_MP_STATE", fd, nr::KVM_GET_MP_STATE, arg);
                } else {
                    let state = if self.rng.one_in(3) {
                        self.rng.next_u32()
                    } else {
                        self.rng.below(10) as u32
                    };
                    let arg = self.arg_or(state);
                    let _ = self.call("KVM_SET_MP_STATE", fd, nr::KVM_SET_MP_STATE, arg);
                }
            }
            48..=50 => {
                let fd = self.pick(Kind::Vcpu);
                let arg = self.sigmask_arg();
                let _ = self.call("KVM_SET_SIGNAL_MASK", fd, nr::KVM_SET_SIGNAL_MASK, arg);
            }
            51..=58 => self.run_pool(),
            59..=62 => {
                let kind = self.rng.pick(&[Kind::Sys, Kind::Vm]);
                let fd = self.pick(kind);
                let (name, cmd) = self.rng.pick(&[
                    ("KVM_CHECK_EXTENSION", nr::KVM_CHECK_EXTENSION),
                    ("KVM_GET_API_VERSION", nr::KVM_GET_API_VERSION),
                    ("KVM_GET_VCPU_MMAP_SIZE", nr::KVM_GET_VCPU_MMAP_SIZE),
                ]);
                let arg = if self.rng.one_in(3) {
                    0
                } else {
                    self.boundary()
                };
                let _ = self.call(name, fd, cmd, arg);
            }
            63..=64 => {
                let fd = self.pick(Kind::Vm);
                let arg = self.arg_or([0u32; 8]);
                let _ = self.call(
                    "KVM_ARM_PREFERRED_TARGET",
                    fd,
                    nr::KVM_ARM_PREFERRED_TARGET,
                    arg,
                );
            }
            65..=72 => {
                let (name, cmd, kind) = self.rng.pick(&OTHER_IOCTLS);
                let fd = self.pick(kind);
                let arg = if self.rng.one_in(4) {
                    self.boundary()
                } else {
                    self.ptr()
                };
                let _ = self.call(name, fd, cmd, arg);
            }
            73..=74 => {
                // KVM_CREATE_DEVICE with KVM_CREATE_DEVICE_TEST: never creates an fd.
                let fd = self.pick(Kind::Vm);
                let kind_nr = self.rng.below(12) as u32;
                let arg = self.put([kind_nr, 0, 1]);
                let _ = self.call("KVM_CREATE_DEVICE (test)", fd, nr::KVM_CREATE_DEVICE, arg);
                let fd = self.pick(Kind::Vcpu);
                let arg = self.ptr();
                let _ = self.call("KVM_GET_DEVICE_ATTR", fd, nr::KVM_GET_DEVICE_ATTR, arg);
                let _ = self.call("KVM_KVMCLOCK_CTRL", fd, nr::KVM_KVMCLOCK_CTRL, 0);
            }
            75..=79 => self.irq_step(),
            80..=84 => {
                // A random command: a KVM one (type 0xae) with any number, direction and
                // size, or any number at all.
                let kind = self
                    .rng
                    .pick(&[Kind::Sys, Kind::Vm, Kind::Vcpu, Kind::Device]);
                let fd = self.pick(kind);
                let cmd = if self.rng.one_in(3) {
                    u64::from(self.rng.next_u32())
                } else {
                    0xae00
                        | self.rng.below(256)
                        | (self.rng.below(4) << 30)
                        | (self.rng.below(0x4000) << 16)
                };
                if CREATES_FD.contains(&cmd) || cmd == nr::KVM_RUN {
                    return Ok(());
                }
                let arg = if self.rng.one_in(3) {
                    self.boundary()
                } else {
                    self.ptr()
                };
                let name = if cmd & 0xff00 == 0xae00 {
                    "random KVM command"
                } else {
                    "random command"
                };
                let _ = self.call(name, fd, cmd, arg);
            }
            85..=88 => self.mmap_step(),
            89..=90 => {
                // read/write/dup on a pool fd.
                let kind = self
                    .rng
                    .pick(&[Kind::Sys, Kind::Vm, Kind::Vcpu, Kind::Device]);
                let fd = self.pick(kind);
                let p = self.scratch_at(0, 64);
                match self.rng.below(3) {
                    // SAFETY: reads into scratch.
                    0 => count(
                        "read",
                        unsafe { libc::read(fd, p as *mut libc::c_void, 64) } >= 0,
                    ),
                    // SAFETY: writes from scratch.
                    1 => count(
                        "write",
                        unsafe { libc::write(fd, p as *const libc::c_void, 64) } >= 0,
                    ),
                    _ => {
                        // SAFETY: dup has no memory arguments.
                        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
                        count("dup", d >= 0);
                        if d >= 0 {
                            // The copy carries no mapping; the vCPU's page has immediate_exit.
                            let Ok(mut pool) = POOL.lock() else {
                                return Ok(());
                            };
                            let known = pool.entries.iter().find(|e| e.fd == fd).map(|e| e.kind);
                            match known {
                                Some(k)
                                    if pool.entries.len()
                                        < MAX_SYS + MAX_VMS + MAX_VCPUS + MAX_DEVICES =>
                                {
                                    pool.entries.push(Entry {
                                        fd: d,
                                        kind: k,
                                        run: None,
                                    });
                                }
                                _ => {
                                    drop(pool);
                                    close(d);
                                }
                            }
                        }
                    }
                }
            }
            91 => self.private_run()?,
            92..=93 => self.stats_and_coalesced_step(),
            _ => self.run_pool(),
        }
        Ok(())
    }

    /// `KVM_GET_STATS_FD` on a VM or vCPU fd, the new fd read at random offsets and
    /// lengths (and written, which must fail) then closed; or a coalesced-MMIO zone
    /// registered or unregistered with random and boundary fields.
    fn stats_and_coalesced_step(&mut self) {
        if self.rng.one_in(2) {
            let kind = self.rng.pick(&[Kind::Vm, Kind::Vcpu, Kind::Sys]);
            let fd = self.pick(kind);
            let arg = if self.rng.one_in(4) {
                self.boundary()
            } else {
                0
            };
            let Ok(stats) = self.call("KVM_GET_STATS_FD", fd, nr::KVM_GET_STATS_FD, arg) else {
                return;
            };
            for _ in 0..self.rng.below(4) + 1 {
                let pos = if self.rng.one_in(3) {
                    self.boundary() as i64
                } else {
                    self.rng.below(4096) as i64
                };
                let len = self.rng.pick(&[0usize, 1, 8, 24, 64, 4096, 16 * 1024]);
                let p = self.scratch_at(0, len);
                // SAFETY: reads at most `len` bytes into scratch.
                let n = unsafe { libc::pread(stats, p as *mut libc::c_void, len, pos) };
                count("pread (stats)", n >= 0);
            }
            let p = self.scratch_at(0, 8);
            // SAFETY: writes from scratch; the fd is read-only, so this fails.
            count(
                "write (stats)",
                unsafe { libc::write(stats, p as *const libc::c_void, 8) } >= 0,
            );
            close(stats);
            return;
        }
        let fd = self.pick(Kind::Vm);
        let addr = if self.rng.one_in(3) {
            self.boundary()
        } else {
            0x1000_0000 + self.rng.below(8) * 8
        };
        let size = if self.rng.one_in(3) {
            self.rng.next_u32()
        } else {
            self.rng.pick(&[0u32, 1, 8, 0x100, 0x1000])
        };
        let pio = if self.rng.one_in(4) {
            self.rng.next_u32()
        } else {
            self.rng.below(2) as u32
        };
        let arg = self.arg_or(CoalescedZone { addr, size, pio });
        if self.rng.one_in(2) {
            let _ = self.call(
                "KVM_REGISTER_COALESCED_MMIO",
                fd,
                nr::KVM_REGISTER_COALESCED_MMIO,
                arg,
            );
        } else {
            let _ = self.call(
                "KVM_UNREGISTER_COALESCED_MMIO",
                fd,
                nr::KVM_UNREGISTER_COALESCED_MMIO,
                arg,
            );
        }
    }

    /// The interrupt-controller ioctls: a vGICv3 created for real (its fd joins the pool),
    /// its attributes, well-formed or random, `KVM_IRQ_LINE`, irqfds and ioeventfds on
    /// fresh eventfds, and `KVM_SIGNAL_MSI` (an ITS exists when the random type was 8).
    fn irq_step(&mut self) {
        match self.rng.below(6) {
            0 => {
                let fd = self.pick(Kind::Vm);
                let ty = if self.rng.one_in(4) {
                    self.rng.below(12) as u32
                } else {
                    kvm_bindings::kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3
                };
                let arg = self.put([ty, 0u32, 0u32]);
                if self
                    .call("KVM_CREATE_DEVICE", fd, nr::KVM_CREATE_DEVICE, arg)
                    .is_ok()
                {
                    // SAFETY: `arg` is the `kvm_create_device` in scratch; the kernel put
                    // the new fd in its second word.
                    let dev = unsafe { ((arg + 4) as *const i32).read_unaligned() };
                    self.adopt(dev, Kind::Device);
                }
            }
            1 => {
                let fd = self.pick(Kind::Device);
                // (group, attribute): the vGIC's addresses, NR_IRQS, CTRL_INIT, the
                // register groups, SAVE_PENDING_TABLES, LEVEL_INFO, or anything.
                let (group, attr) = if self.rng.one_in(3) {
                    (self.rng.below(10) as u32, self.boundary())
                } else {
                    // Register state: GICD_IIDR, ISPENDR1, IROUTER32; vCPU 0's and 1's
                    // GICR_TYPER, ISPENDR0; ICC_PMR_EL1, ICC_CTLR_EL1; line levels.
                    self.rng.pick(&[
                        (0u32, 2u64),
                        (0, 3),
                        (0, 5),
                        (3, 0),
                        (4, 0),
                        (1, 0),
                        (5, 0),
                        (6, 0),
                        (4, 3),
                        (7, 0),
                        (1, 8),
                        (1, 0x204),
                        (1, 0x6100),
                        (5, 8),
                        (5, (1 << 32) | 8),
                        (5, 0x1_0200),
                        (6, 0xc230),
                        (6, (1 << 32) | 0xc664),
                        (7, 32),
                        (7, (1 << 32) | 16),
                    ])
                };
                let value = match (group, attr) {
                    (0, 2) => 0x0800_0000 + self.rng.below(4) * 0x1_0000,
                    (0, 3) => 0x080a_0000 + self.rng.below(4) * 0x2_0000,
                    // count << 52 | base | index
                    (0, 5) => (self.rng.below(8) << 52) | 0x0900_0000 | self.rng.below(2),
                    (3, 0) => self.rng.pick(&[64, 96, 128, 1024, 1020, 0, 33, 2048]),
                    _ => self.boundary(),
                };
                let addr = if self.rng.one_in(5) {
                    self.ptr()
                } else {
                    self.put(value)
                };
                let flags = if self.rng.one_in(8) {
                    self.rng.next_u32()
                } else {
                    0
                };
                let arg = self.arg_or(DeviceAttr {
                    flags,
                    group,
                    attr,
                    addr,
                });
                let (name, cmd) = self.rng.pick(&[
                    ("KVM_SET_DEVICE_ATTR", nr::KVM_SET_DEVICE_ATTR),
                    ("KVM_GET_DEVICE_ATTR", nr::KVM_GET_DEVICE_ATTR),
                    ("KVM_HAS_DEVICE_ATTR", nr::KVM_HAS_DEVICE_ATTR),
                ]);
                let _ = self.call(name, fd, cmd, arg);
            }
            2 => {
                let fd = self.pick(Kind::Vm);
                // type << 24 | vcpu << 16 | number (KVM_ARM_IRQ_TYPE_SPI = 1, _PPI = 2).
                let irq = if self.rng.one_in(4) {
                    self.rng.next_u32()
                } else {
                    let num = self
                        .rng
                        .pick(&[27u32, 30, 32, 33, 63, 64, 100, 1019, 1020, 15, 16, 31]);
                    ((self.rng.below(4) as u32) << 24) | ((self.rng.below(4) as u32) << 16) | num
                };
                let level = self.rng.below(3) as u32;
                let arg = self.arg_or([irq, level]);
                let _ = self.call("KVM_IRQ_LINE", fd, nr::KVM_IRQ_LINE, arg);
            }
            3 => {
                let fd = self.pick(Kind::Vm);
                let (efd, rfd) = (eventfd(), eventfd());
                let gsi = if self.rng.one_in(4) {
                    self.boundary() as u32
                } else {
                    self.rng.below(100) as u32
                };
                // KVM_IRQFD_FLAG_DEASSIGN = 1, _RESAMPLE = 2.
                let flags = if self.rng.one_in(6) {
                    self.rng.next_u32()
                } else {
                    self.rng.below(4) as u32
                };
                let resamplefd = if self.rng.one_in(6) {
                    100_000
                } else {
                    rfd as u32
                };
                let arg = self.arg_or(Irqfd {
                    fd: efd as u32,
                    gsi,
                    flags,
                    resamplefd,
                    pad: [0; 16],
                });
                let _ = self.call("KVM_IRQFD", fd, nr::KVM_IRQFD, arg);
                if self.rng.one_in(2) {
                    signal(efd);
                }
                close(efd);
                close(rfd);
            }
            4 => {
                let fd = self.pick(Kind::Vm);
                let efd = eventfd();
                let addr = if self.rng.one_in(4) {
                    self.boundary()
                } else {
                    0x1000_0000 + self.rng.below(4) * 8
                };
                let len = self.rng.pick(&[0u32, 1, 2, 3, 4, 8, 16]);
                // KVM_IOEVENTFD_FLAG_DATAMATCH = 1, _PIO = 2, _DEASSIGN = 4.
                let flags = if self.rng.one_in(6) {
                    self.rng.next_u32()
                } else {
                    self.rng.below(8) as u32
                };
                let datamatch = self.boundary();
                let arg = self.arg_or(Ioeventfd {
                    datamatch,
                    addr,
                    len,
                    fd: efd,
                    flags,
                    pad: [0; 36],
                });
                let _ = self.call("KVM_IOEVENTFD", fd, nr::KVM_IOEVENTFD, arg);
                close(efd);
            }
            _ => {
                let fd = self.pick(Kind::Vm);
                let arg = self.ptr();
                let _ = self.call("KVM_SIGNAL_MSI", fd, nr::KVM_SIGNAL_MSI, arg);
            }
        }
    }

    /// mmap of a random pool fd with random length, offset, protection and sharing, or
    /// munmap of an earlier one. Only the first page of a mapping is ever touched, and
    /// only where the vCPU fd has a page (`kvm_run` at offset 0, the coalesced-MMIO ring
    /// at one page; elsewhere an access would be `SIGBUS`, as on KVM).
    fn mmap_step(&mut self) {
        if self.rng.one_in(3) {
            let m = {
                let Ok(mut pool) = POOL.lock() else { return };
                if pool.maps.is_empty() {
                    return;
                }
                let i = self.rng.below(pool.maps.len() as u64) as usize;
                pool.maps.swap_remove(i)
            };
            unmap(m);
            count("munmap", true);
            return;
        }
        let kind = self
            .rng
            .pick(&[Kind::Vcpu, Kind::Vcpu, Kind::Vm, Kind::Sys]);
        let fd = self.pick(kind);
        let len = self.rng.pick(&[PAGE, PAGE, 2 * PAGE, 1, 0, 16 * PAGE]);
        let off = self
            .rng
            .pick(&[0, 0, PAGE as i64, 1 << 20, 1, -(PAGE as i64)]);
        let prot = self.rng.pick(&[
            libc::PROT_READ | libc::PROT_WRITE,
            libc::PROT_READ,
            libc::PROT_NONE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ]);
        let flags = self
            .rng
            .pick(&[libc::MAP_SHARED, libc::MAP_SHARED, libc::MAP_PRIVATE]);
        // SAFETY: a new mapping chosen by the kernel; nothing of ours is replaced.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags, fd, off) };
        count("mmap", p != libc::MAP_FAILED);
        if p == libc::MAP_FAILED {
            return;
        }
        if off != 0 && off != PAGE as i64 {
            if let Ok(mut pool) = POOL.lock() {
                pool.maps.push((p as usize, len));
            }
            return;
        }
        if prot & libc::PROT_READ != 0 {
            // SAFETY: the first page of a mapping rkvm populated.
            let _ = unsafe { (p as *const u8).read_volatile() };
        }
        if prot & libc::PROT_WRITE != 0 && off == 0 {
            // Only ever 1: a shared run page must keep immediate_exit.
            // SAFETY: as above; `immediate_exit` lies within the first page.
            unsafe { (*(p as *mut kvm_bindings::kvm_run)).immediate_exit = 1 };
        }
        if let Ok(mut pool) = POOL.lock() {
            pool.maps.push((p as usize, len));
        }
    }
}

/// A fresh eventfd (counted; -1 if the kernel refused one).
fn eventfd() -> i32 {
    // SAFETY: no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    count("eventfd", fd >= 0);
    fd
}

/// Adds 1 to an eventfd's counter.
fn signal(fd: i32) {
    let one = 1u64;
    // SAFETY: writes 8 bytes from `one`.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

fn close(fd: i32) {
    // SAFETY: `fd` was taken out of the pool (or never entered it): nobody closes it twice.
    unsafe { libc::close(fd) };
}

fn unmap((addr, len): (usize, usize)) {
    // SAFETY: a mapping this program made and removed from every list.
    unsafe { libc::munmap(addr as *mut libc::c_void, len) };
}

/// Closes every pool fd and unmaps every mapping.
fn drain_pool() {
    let (entries, maps) = match POOL.lock() {
        Ok(mut p) => (std::mem::take(&mut p.entries), std::mem::take(&mut p.maps)),
        Err(_) => return,
    };
    for e in entries {
        close(e.fd);
        if let Some(m) = e.run {
            unmap(m);
        }
    }
    for m in maps {
        unmap(m);
    }
}

fn print_counts(what: &str, steps: usize, elapsed: Duration) {
    println!("# {what}: {steps} steps in {elapsed:?}");
    if let Ok(mut c) = COUNTS.lock() {
        for (name, (calls, ok)) in c.iter() {
            // (No "NAME:" form: "KVM_SET_GUEST_DEBUG:" would read as a kernel "BUG:".)
            println!("#   {name} = {calls} calls, {ok} succeeded");
        }
        c.clear();
    }
}

/// Everything released: fds back to the start, rkvm's references too, the log clean.
fn check_released(what: &str) -> Result<(), String> {
    drain_pool();
    let &(refcnt, fds) = BASELINE.get().ok_or("no baseline")?;
    check_eq!(open_fds(), fds);
    wait_refcnt(refcnt, Duration::from_secs(10)).map_err(|e| format!("{what}: {e}"))?;
    let mut log = LOG.lock().map_err(|_| "log lock poisoned")?;
    log.as_mut()
        .ok_or("/dev/kmsg was not opened")?
        .check_clean()
}

fn seed() -> u64 {
    fuzz_seed(0x696f_6374_6c5f_667a)
}

fn single_thread_fuzz() -> TestResult {
    let seed = seed();
    println!("# seed {seed:#x} (rkvmtest.seed= replays it)");
    let mut f = Fuzzer::new(seed, false)?;
    let start = Instant::now();
    for i in 0..SINGLE_STEPS {
        f.step().map_err(|e| format!("step {i}: {e}"))?;
    }
    drop(f);
    print_counts("one thread", SINGLE_STEPS, start.elapsed());
    check_released("after the single-threaded steps")?;
    Ok(Outcome::Pass)
}

fn racing_threads_fuzz() -> TestResult {
    let seed = seed() ^ 0x5ace;
    println!("# seed {seed:#x}, three threads (their interleaving is not reproducible)");
    // A few fds to share from the start.
    {
        let mut f = Fuzzer::new(seed, true)?;
        for _ in 0..200 {
            f.step()?;
        }
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || -> Result<(), String> {
                // Thread 0 creates and closes; the others mostly use what is there.
                let mut f = Fuzzer::new(seed.wrapping_add(t as u64 + 1), t == 0)?;
                for i in 0..RACING_STEPS / THREADS {
                    f.step().map_err(|e| format!("thread {t}, step {i}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a fuzzing thread panicked")??;
    }
    print_counts("three racing threads", RACING_STEPS + 200, start.elapsed());
    check_released("after the racing steps")?;
    Ok(Outcome::Pass)
}

fn fresh_vm_runs() -> TestResult {
    let &(refcnt, _) = BASELINE.get().ok_or("no baseline")?;
    check_eq!(module_refcnt()?, refcnt);
    let vm = TestVm::new(1 << 16, guest_off())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(1));
    drop(vcpu);
    drop(vm);
    let mut log = LOG.lock().map_err(|_| "log lock poisoned")?;
    log.as_mut()
        .ok_or("/dev/kmsg was not opened")?
        .check_clean()?;
    Ok(Outcome::Pass)
}

/// Buffers for memslots, the reference register list and the baseline.
fn setup() -> Result<(), String> {
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let bufs = [
        map_anon(1 << 20, rw)?,
        map_anon(1 << 20, rw)?,
        map_anon(1 << 20, rw)?,
        map_anon(1 << 20, rw)?,
        map_anon(PAGE, libc::PROT_READ)?,
        map_anon(PAGE, libc::PROT_NONE)?,
    ];
    let _ = BUFFERS.set(bufs);
    let vm = TestVm::new(1 << 16, guest_off())?;
    let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let mut list = kvm_bindings::RegList::new(256).map_err(|e| e.to_string())?;
    vcpu.get_reg_list(&mut list)
        .map_err(|e| format!("KVM_GET_REG_LIST: {e}"))?;
    let _ = REG_IDS.set(list.as_slice().to_vec());
    drop(vcpu);
    drop(vm);
    let log = KernelLog::mark().map_err(|e| format!("/dev/kmsg: {e}"))?;
    *LOG.lock().map_err(|_| "log lock poisoned")? = Some(log);
    let refcnt = module_refcnt()?;
    let _ = BASELINE.set((refcnt, open_fds()));
    check!(
        REG_IDS.get().is_some_and(|l| l.len() > 50),
        "a short register list"
    );
    Ok(())
}

fn main() {
    if host_runs_guests() {
        if let Err(e) = setup() {
            println!("# set-up failed: {e}");
        }
    }
    run_or_skip(
        "rkvm_ioctl_fuzz",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("single_thread_fuzz", single_thread_fuzz),
            ("racing_threads_fuzz", racing_threads_fuzz),
            ("fresh_vm_runs", fresh_vm_runs),
        ],
    )
}
