// SPDX-License-Identifier: GPL-2.0

//! The host survives what VMMs do to it and rkvm leaks nothing: a thousand short-lived
//! VMs, fds closed in every order under a live `kvm_run` mapping, a VMM killed mid-run,
//! a vCPU thread migrated between CPUs, guest accesses outside every memslot, a memslot
//! deleted under running vCPUs, and guest memory shared live with the host.
//!
//! "Leaks nothing" is checked through what the host shows: the module's reference count
//! (every VM and vCPU file pins rkvm), free memory (pinned guest pages and per-VM
//! tables), and this process's open fds.

use kvm_bindings::{
    kvm_one_reg, kvm_run, kvm_userspace_memory_region, kvm_vcpu_init, KVM_EXIT_MMIO,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, errno, guest_code, host_runs_guests, module_refcnt, open_fds, page_size,
    run_or_skip, wait_refcnt, Outcome, TestResult, DEV_RKVM,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SHUTDOWN: u32 = kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN;
/// Free memory may drift by this much across a test without a leak (per-CPU page lists,
/// slab caches); one pinned page per VM over 1000 VMs would exceed it. The checks poll,
/// since freed memory comes back with a delay.
const LEAK_SLACK_KIB: i64 = 2 * 1024;

// Write one word in each of 16 pages, then SYSTEM_OFF.
guest_code!(
    guest_touch_and_off,
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x1000",
    "mov x5, #16",
    "1: str x5, [x4]",
    "add x4, x4, #0x1000",
    "subs x5, x5, #1",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Report 0x4242 through MMIO, then SYSTEM_OFF.
guest_code!(
    guest_report_and_off,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x4242",
    "str x2, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

guest_code!(guest_spin, "1: b 1b");

// Write every page from MEM_BASE + 1 MiB to MEM_BASE + 64 MiB, over and over.
guest_code!(
    guest_toucher,
    "movz x4, #0x4010, lsl #16",
    "movz x6, #0x4400, lsl #16",
    "2: mov x5, x4",
    "1: str x5, [x5]",
    "add x5, x5, #0x1000",
    "cmp x5, x6",
    "b.lo 1b",
    "b 2b"
);

// 10,000 rounds: derive state from the round number i (x2) into x20-x22, x30, d8, d9,
// v10, v31, TPIDR_EL1 and TPIDR_EL0, spin a little (so host interrupts and migrations
// land inside the guest), exit with i through MMIO, then check every piece. A mismatch
// is reported at MMIO_BASE + 0x108 (the round) and + 0x100 (the value found).
guest_code!(
    guest_state_loop,
    "movz x3, #0x30, lsl #16",
    "msr cpacr_el1, x3",
    "isb",
    "movz x1, #0x1000, lsl #16",
    "mov x2, #0",
    "movz x7, #10000",
    "1: add x20, x2, #0x123",
    "mvn x21, x2",
    "eor x22, x2, x2, lsl #17",
    "add x30, x2, #7",
    "fmov d8, x2",
    "fmov d9, x21",
    "dup v10.2d, x20",
    "dup v31.2d, x22",
    "msr tpidr_el1, x21",
    "msr tpidr_el0, x20",
    "mov x6, #200",
    "2: subs x6, x6, #1",
    "b.ne 2b",
    "str x2, [x1]",
    "add x5, x2, #0x123",
    "cmp x20, x5",
    "b.ne 9f",
    "mvn x5, x2",
    "cmp x21, x5",
    "b.ne 9f",
    "eor x5, x2, x2, lsl #17",
    "cmp x22, x5",
    "b.ne 9f",
    "add x5, x2, #7",
    "cmp x30, x5",
    "b.ne 9f",
    "fmov x5, d8",
    "cmp x5, x2",
    "b.ne 9f",
    "fmov x5, d9",
    "cmp x5, x21",
    "b.ne 9f",
    "mov x5, v10.d[1]",
    "cmp x5, x20",
    "b.ne 9f",
    "mov x5, v31.d[1]",
    "cmp x5, x22",
    "b.ne 9f",
    "mrs x5, tpidr_el1",
    "cmp x5, x21",
    "b.ne 9f",
    "mrs x5, tpidr_el0",
    "cmp x5, x20",
    "b.ne 9f",
    "add x2, x2, #1",
    "cmp x2, x7",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b .",
    "9: str x2, [x1, #0x108]",
    "str x5, [x1, #0x100]",
    "b ."
);

// For each address of the table at MEM_BASE + 0x1000 (count, then addresses): store the
// index there, load it back into the results at MEM_BASE + 0x2000; then SYSTEM_OFF.
guest_code!(
    guest_probe,
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x1000",
    "add x8, x4, #0x1000",
    "ldr x5, [x4], #8",
    "mov x2, #0",
    "1: ldr x6, [x4], #8",
    "str x2, [x6]",
    "ldr x7, [x6]",
    "str x7, [x8], #8",
    "add x2, x2, #1",
    "cmp x2, x5",
    "b.ne 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// vCPU x0 increments one word per page of its MiB of the data slot at 0x5000_0000, and
// reports each pass through MMIO.
guest_code!(
    guest_churn,
    "movz x1, #0x1000, lsl #16",
    "movz x8, #0x5000, lsl #16",
    "add x8, x8, x0, lsl #20",
    "1: mov x4, x8",
    "mov x5, #256",
    "2: ldr x6, [x4]",
    "add x6, x6, #1",
    "str x6, [x4]",
    "add x4, x4, #0x1000",
    "subs x5, x5, #1",
    "b.ne 2b",
    "str x0, [x1]",
    "b 1b"
);

// Count in RAM at MEM_BASE + 0x1000 until the host sets the flag at + 0x1008, then report
// the flag and the count through MMIO, and SYSTEM_OFF.
guest_code!(
    guest_shared,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x1000",
    "mov x2, #0",
    "1: add x2, x2, #1",
    "str x2, [x4]",
    "ldr x3, [x4, #8]",
    "cbz x3, 1b",
    "str x3, [x1]",
    "str x2, [x1, #8]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// Free memory, counting the pages parked on the per-CPU free lists (`/proc/zoneinfo`):
/// MemFree alone misses those, and a burst of frees can park megabytes there for seconds.
fn mem_free_kib() -> Result<i64, String> {
    let s = std::fs::read_to_string("/proc/zoneinfo").map_err(|e| format!("zoneinfo: {e}"))?;
    let pages: i64 = s
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pages free")
                .or_else(|| l.strip_prefix("count:"))
        })
        .filter_map(|v| v.trim().parse::<i64>().ok())
        .sum();
    Ok(pages * (page_size() as i64 / 1024))
}

/// What to compare after a test: the module's references, free memory and our fds.
struct Baseline {
    refcnt: u64,
    free_kib: i64,
    fds: usize,
}

impl Baseline {
    fn take() -> Result<Self, String> {
        Ok(Self {
            refcnt: module_refcnt()?,
            free_kib: mem_free_kib()?,
            fds: open_fds(),
        })
    }

    /// Fails if references, memory or fds did not come back.
    fn check(&self, what: &str) -> Result<(), String> {
        wait_refcnt(self.refcnt, Duration::from_secs(5)).map_err(|e| format!("{what}: {e}"))?;
        let fds = open_fds();
        if fds != self.fds {
            return Err(format!("{what}: {fds} open fds, {} before", self.fds));
        }
        // On the debug kernel, KASAN's quarantine holds freed memory back by design (tens
        // of MiB early after boot), so free memory says nothing there; kmemleak, which
        // /init runs at the end of every debug boot, is the leak check instead.
        if std::path::Path::new("/sys/kernel/debug/kmemleak").exists() {
            println!("# {what}: free-memory check left to kmemleak (debug kernel)");
            return Ok(());
        }
        // Freed memory comes back with some delay (RCU, per-CPU lists): poll a little.
        let start = Instant::now();
        let mut lost = self.free_kib - mem_free_kib()?;
        while lost > LEAK_SLACK_KIB && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
            lost = self.free_kib - mem_free_kib()?;
        }
        if lost > LEAK_SLACK_KIB {
            return Err(format!("{what}: {lost} KiB less free memory than before"));
        }
        println!("# {what}: free memory {lost:+} KiB lost");
        Ok(())
    }
}

fn le_u64(data: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..data.len().min(8)].copy_from_slice(&data[..data.len().min(8)]);
    u64::from_le_bytes(b)
}

/// A VM with 128 KiB of RAM: touches 16 pages, powers off, and is torn down.
fn one_short_vm() -> Result<(), String> {
    let vm = TestVm::new(0x2_0000, guest_touch_and_off())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    match run(&mut vcpu, 0)? {
        Exit::SystemEvent(SHUTDOWN) => {}
        other => return Err(format!("exit {other:?}, expected SYSTEM_OFF")),
    }
    if vm.mem.read_u64(0x1000) != 16 || vm.mem.read_u64(0x1_0000) != 1 {
        return Err("the guest's writes are not in its memory".into());
    }
    Ok(())
}

fn thousand_vms() -> TestResult {
    // Warm up the slab caches the first VMs fill, so the comparison sees only leaks.
    for _ in 0..20 {
        one_short_vm()?;
    }
    let base = Baseline::take()?;
    let start = Instant::now();
    for i in 0..1000 {
        one_short_vm().map_err(|e| format!("VM {i}: {e}"))?;
    }
    println!("# 1000 VMs in {:?}", start.elapsed());
    base.check("after 1000 VMs")?;
    Ok(Outcome::Pass)
}

/// A VM built from raw ioctls, so each fd can be closed on its own.
struct RawVm {
    fds: [Option<OwnedFd>; 3], // /dev/rkvm, VM, vCPU
    run: *mut kvm_run,
    run_size: usize,
    mem: Option<GuestMem>,
}

fn ioctl_ok<T>(fd: RawFd, cmd: u64, arg: &mut T, what: &str) -> Result<i32, String> {
    ioctl_with(fd, cmd, arg).map_err(|e| format!("{what}: errno {e}"))
}

impl RawVm {
    /// Creates the VM and vCPU, maps `kvm_run` and runs the guest to its MMIO report.
    fn new() -> Result<Self, String> {
        let dev: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(DEV_RKVM)
            .map_err(|e| format!("open {DEV_RKVM}: {e}"))?
            .into();
        let d = dev.as_raw_fd();
        // SAFETY: neither command takes a pointer.
        let (run_size, vm) = unsafe {
            (
                ioctl_raw(d, nr::KVM_GET_VCPU_MMAP_SIZE, 0),
                ioctl_raw(d, nr::KVM_CREATE_VM, 0),
            )
        };
        let run_size = run_size.map_err(|e| format!("KVM_GET_VCPU_MMAP_SIZE: errno {e}"))?;
        let vm = vm.map_err(|e| format!("KVM_CREATE_VM: errno {e}"))?;
        // SAFETY: a fresh fd this value takes over.
        let vm = unsafe { OwnedFd::from_raw_fd(vm) };
        let mem = GuestMem::new(0x1_0000)?;
        mem.write(0, guest_report_and_off());
        let mut region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: MEM_BASE,
            memory_size: 0x1_0000,
            userspace_addr: mem.ptr as u64,
        };
        ioctl_ok(
            vm.as_raw_fd(),
            nr::KVM_SET_USER_MEMORY_REGION,
            &mut region,
            "memslot",
        )?;
        // SAFETY: KVM_CREATE_VCPU takes an integer.
        let vcpu = unsafe { ioctl_raw(vm.as_raw_fd(), nr::KVM_CREATE_VCPU, 0) }
            .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
        // SAFETY: a fresh fd.
        let vcpu = unsafe { OwnedFd::from_raw_fd(vcpu) };
        let v = vcpu.as_raw_fd();
        let mut init = kvm_vcpu_init::default();
        ioctl_ok(
            vm.as_raw_fd(),
            nr::KVM_ARM_PREFERRED_TARGET,
            &mut init,
            "target",
        )?;
        init.features[0] = 1 << kvm_bindings::KVM_ARM_VCPU_PSCI_0_2;
        ioctl_ok(v, nr::KVM_ARM_VCPU_INIT, &mut init, "init")?;
        let mut pc = MEM_BASE;
        let mut reg = kvm_one_reg {
            id: core_reg_pc(),
            addr: &mut pc as *mut u64 as u64,
        };
        ioctl_ok(v, nr::KVM_SET_ONE_REG, &mut reg, "set PC")?;
        // SAFETY: maps the vCPU's run page, shared; unmapped in `unmap_run`.
        let run = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                run_size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                v,
                0,
            )
        };
        if run == libc::MAP_FAILED {
            return Err(format!("mmap kvm_run: {}", std::io::Error::last_os_error()));
        }
        let this = Self {
            fds: [Some(dev), Some(vm), Some(vcpu)],
            run: run.cast(),
            run_size: run_size as usize,
            mem: Some(mem),
        };
        // SAFETY: KVM_RUN takes no pointer.
        unsafe { ioctl_raw(v, nr::KVM_RUN, 0) }.map_err(|e| format!("KVM_RUN: {e}"))?;
        this.check_mmio_exit("after KVM_RUN")?;
        Ok(this)
    }

    /// The run page still holds the guest's MMIO report.
    fn check_mmio_exit(&self, when: &str) -> Result<(), String> {
        // SAFETY: `run` maps the vCPU's kvm_run until `unmap_run`; the kernel writes it
        // only during KVM_RUN, which no thread is in.
        let (reason, addr, data) = unsafe {
            let r = &*self.run;
            (
                r.exit_reason,
                r.__bindgen_anon_1.mmio.phys_addr,
                r.__bindgen_anon_1.mmio.data,
            )
        };
        if reason != KVM_EXIT_MMIO || addr != MMIO_BASE || le_u64(&data) != 0x4242 {
            return Err(format!(
                "{when}: kvm_run holds exit {reason}, address {addr:#x}, data {data:x?}"
            ));
        }
        Ok(())
    }

    fn unmap_run(&mut self) {
        if !self.run.is_null() {
            // SAFETY: the mapping made in `new`.
            unsafe { libc::munmap(self.run.cast(), self.run_size) };
            self.run = core::ptr::null_mut();
        }
    }
}

impl Drop for RawVm {
    fn drop(&mut self) {
        self.unmap_run();
    }
}

fn close_fds_in_every_order() -> TestResult {
    const NAMES: [&str; 3] = ["/dev/rkvm", "VM", "vCPU"];
    let base = Baseline::take()?;
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        // Half the time the guest memory goes first: the VM must not need it any more.
        for memory_first in [false, true] {
            let what = format!(
                "closing {:?}{}",
                order.map(|i| NAMES[i]),
                if memory_first {
                    " after unmapping guest memory"
                } else {
                    ""
                }
            );
            let mut vm = RawVm::new().map_err(|e| format!("{what}: {e}"))?;
            if memory_first {
                vm.mem = None;
            }
            for i in order {
                vm.fds[i] = None;
            }
            // The mapping keeps the vCPU (and the module, whose code serves the mapping)
            // alive: its contents stay, and it stays writable.
            vm.check_mmio_exit(&what)?;
            // SAFETY: the run page is still mapped read-write.
            unsafe { (*vm.run).immediate_exit = 1 };
            check!(
                module_refcnt()? > base.refcnt,
                "{what}: the mapping holds no module reference"
            );
            vm.unmap_run();
            wait_refcnt(base.refcnt, Duration::from_secs(5)).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    base.check("after 12 VMs closed in every order")?;
    Ok(Outcome::Pass)
}

/// A MAP_SHARED anonymous page: counters a forked child updates for its parent.
struct SharedPage(*mut AtomicU32);

impl SharedPage {
    fn new() -> Result<Self, String> {
        // SAFETY: a fresh shared anonymous mapping.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Self(p.cast()))
    }

    fn counter(&self) -> &'static AtomicU32 {
        // SAFETY: the page is zeroed, aligned, and never unmapped in the child; the
        // parent drops it only after the child is gone.
        unsafe { &*self.0 }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

/// Guest RAM of the killed VMM: shared with the parent, which counts the pages its guest
/// wrote, and then unmaps it. Pages rkvm failed to unpin would stay allocated.
const KILLED_RAM: usize = 64 << 20;

/// The killed VMM: 4 vCPUs spinning in the guest and one writing 63 MiB of guest
/// memory, all in KVM_RUN until the SIGKILL.
fn vmm_to_kill(started: &'static AtomicU32, ram: *mut u8) -> Result<(), String> {
    let vm = TestVm::with_mem(
        GuestMem {
            ptr: ram,
            size: KILLED_RAM,
        },
        guest_spin(),
    )?;
    vm.mem.write(0x100, guest_toucher());
    let mut threads = Vec::new();
    for i in 0..5 {
        let mut vcpu = vm.vcpu(i, if i < 4 { MEM_BASE } else { MEM_BASE + 0x100 }, 0)?;
        threads.push(std::thread::spawn(move || {
            started.fetch_add(1, SeqCst);
            loop {
                let _ = vcpu.run();
            }
        }));
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn sigkill_mid_run() -> TestResult {
    let base = Baseline::take()?;
    let shared = SharedPage::new()?;
    let started = shared.counter();
    let ram = GuestMem::new_shared(KILLED_RAM)?;
    // SAFETY: this process has no other threads now; the child runs the VMM and never
    // returns into the test harness.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let r = vmm_to_kill(started, ram.ptr);
        eprintln!("vmm_to_kill: {r:?}");
        // SAFETY: ends the child without the parent's exit handlers.
        unsafe { libc::_exit(1) };
    }
    let start = Instant::now();
    let mut status = 0;
    while started.load(SeqCst) < 5 {
        // SAFETY: polls the child forked above.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return Err(format!(
                "the VMM exited before its vCPUs ran (status {status:#x})"
            ));
        }
        if start.elapsed() > Duration::from_secs(30) {
            // SAFETY: kills and reaps the child forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0)
            };
            return Err("the VMM's vCPUs did not start".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    check!(
        module_refcnt()? > base.refcnt,
        "the running VMM holds no module reference"
    );
    // SAFETY: kills and reaps the child forked above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let killed = Instant::now();
    // SAFETY: as above.
    check_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let reaped = killed.elapsed();
    check!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "the VMM ended with status {status:#x}, not by SIGKILL"
    );
    // Count the guest's pages among those resident (reading the others would allocate
    // them: shared anonymous memory has no zero page).
    let mut resident = vec![0u8; KILLED_RAM / 0x1000];
    // SAFETY: `ram` is a mapping of KILLED_RAM bytes; `resident` has a byte per page.
    unsafe { libc::mincore(ram.ptr.cast(), KILLED_RAM, resident.as_mut_ptr()) };
    let touched = (0x10_0000..KILLED_RAM)
        .step_by(0x1000)
        .filter(|&off| resident[off / 0x1000] & 1 != 0)
        .filter(|&off| ram.read_u64(off) == MEM_BASE + off as u64)
        .count();
    println!(
        "# the VMM was reaped {reaped:?} after SIGKILL; its guest had written {touched} pages"
    );
    check!(touched > 0, "the guest wrote no memory before the SIGKILL");
    drop(ram);
    base.check("after the killed VMM")?;
    // rkvm still works.
    one_short_vm()?;
    Ok(Outcome::Pass)
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn set_affinity(tid: i32, cpus: &[usize]) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` is below CPU_SETSIZE (it came from online_cpus).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(tid, core::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(format!(
            "sched_setaffinity({tid}, {cpus:?}): errno {}",
            errno()
        ));
    }
    Ok(())
}

fn online_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t, filled in by the kernel.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
    // SAFETY: every index is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Overwrites host registers the guest also uses, so guest state that leaked into (or
/// was restored from) the host thread shows up as a mismatch.
fn clobber_host_registers(seed: u64) {
    // SAFETY: writes only the declared (caller-saved) vector registers.
    unsafe {
        core::arch::asm!(
            "dup v8.2d, {s}", "dup v9.2d, {s}", "dup v10.2d, {s}", "dup v31.2d, {s}",
            s = in(reg) seed,
            out("v8") _, out("v9") _, out("v10") _, out("v31") _,
        );
    }
}

fn sched_getcpu() -> i32 {
    // SAFETY: no preconditions.
    unsafe { libc::sched_getcpu() }
}

fn migrated_vcpu_keeps_its_state() -> TestResult {
    let cpus = online_cpus();
    let vm = TestVm::new(1 << 16, guest_state_loop())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let tid = Arc::new(AtomicI32::new(0));
    let vcpu_tid = tid.clone();
    let runner = std::thread::spawn(move || -> Result<u32, String> {
        vcpu_tid.store(gettid(), SeqCst);
        let (mut last_cpu, mut moves) = (sched_getcpu(), 0);
        for i in 0..10_000u64 {
            clobber_host_registers(!i);
            match run(&mut vcpu, 0)? {
                Exit::MmioWrite(a, d) if a == MMIO_BASE && le_u64(&d) == i => {}
                Exit::MmioWrite(a, d) if a == MMIO_BASE + 0x108 => {
                    let found = run_to_write(&mut vcpu)?;
                    return Err(format!(
                        "round {}: the guest found {:#x} in its state ({moves} migrations so far)",
                        le_u64(&d),
                        found.1
                    ));
                }
                other => return Err(format!("round {i}: exit {other:?}")),
            }
            let cpu = sched_getcpu();
            if cpu != last_cpu {
                moves += 1;
                last_cpu = cpu;
            }
        }
        match run(&mut vcpu, 0)? {
            Exit::SystemEvent(SHUTDOWN) => Ok(moves),
            other => Err(format!("after 10,000 rounds: exit {other:?}")),
        }
    });
    while tid.load(SeqCst) == 0 {
        std::thread::yield_now();
    }
    let tid = tid.load(SeqCst);
    let mut flips = 0usize;
    let mut flip_error = None;
    while !runner.is_finished() && cpus.len() > 1 {
        if let Err(e) = set_affinity(tid, &[cpus[flips % cpus.len()]]) {
            flip_error = Some(e);
            break;
        }
        flips += 1;
        std::thread::sleep(Duration::from_millis(3));
    }
    let moves = runner.join().map_err(|_| "the vCPU thread panicked")??;
    if let Some(e) = flip_error {
        return Err(e);
    }
    println!("# {flips} affinity flips, the vCPU thread moved {moves} times");
    if cpus.len() > 1 {
        check!(
            moves > 0,
            "the vCPU thread never changed CPU ({flips} flips)"
        );
    }
    Ok(Outcome::Pass)
}

fn mmio_exits_outside_memslots() -> TestResult {
    let kvm = kvm()?;
    let top = 1u64 << kvm.get_host_ipa_limit(); // TestVm's VMs have the host's IPA size
    let vm = TestVm::new(1 << 16, guest_probe())?;
    let other = GuestMem::new(0x1_0000)?;
    let region = kvm_userspace_memory_region {
        slot: 1,
        flags: 0,
        guest_phys_addr: 0x8000_0000,
        memory_size: 0x1_0000,
        userspace_addr: other.ptr as u64,
    };
    // SAFETY: `other` outlives the VM.
    unsafe { vm.vm.set_user_memory_region(region) }.map_err(|e| e.to_string())?;
    let end = MEM_BASE + 0x1_0000;
    let addrs = [
        0,
        8,
        0x1000,
        0x0900_0000,
        MMIO_BASE,
        0x3fff_f000,
        0x3fff_fff8, // below RAM
        end,
        end + 8,
        end + 0x1000,
        0x7fff_fff8, // past RAM, before slot 1
        0x8001_0000,
        0x8001_0008,
        0xffff_fff8, // past slot 1
        1 << 32,
        1 << 36,
        (1 << 40) - 8,
        1 << 40,
        top / 2,
        top - 0x1000,
        top - 8, // high
    ];
    let addrs: Vec<u64> = addrs.into_iter().filter(|&a| a < top).collect();
    vm.mem.write_u64(0x1000, addrs.len() as u64);
    for (i, a) in addrs.iter().enumerate() {
        vm.mem.write_u64(0x1008 + 8 * i, *a);
    }
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    for (i, &a) in addrs.iter().enumerate() {
        check_eq!(
            run(&mut vcpu, 0)?,
            Exit::MmioWrite(a, (i as u64).to_le_bytes().to_vec())
        );
        check_eq!(run(&mut vcpu, a ^ 0x5a5a)?, Exit::MmioRead(a, 8));
    }
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    for (i, &a) in addrs.iter().enumerate() {
        check!(
            vm.mem.read_u64(0x2000 + 8 * i) == a ^ 0x5a5a,
            "the load from {a:#x} got the wrong value"
        );
    }
    check_eq!(other.read_u64(0), 0);
    Ok(Outcome::Pass)
}

extern "C" fn ignore_signal(_: libc::c_int) {}

fn memslot_deleted_under_running_vcpus() -> TestResult {
    const DATA: u64 = 0x5000_0000;
    const DATA_SIZE: usize = 2 << 20;
    let base = Baseline::take()?;
    // SAFETY: a handler that does nothing; SIGUSR1 only has to interrupt KVM_RUN.
    unsafe { libc::signal(libc::SIGUSR1, ignore_signal as *const () as usize) };
    let vm = TestVm::new(1 << 16, guest_churn())?;
    let data = GuestMem::new(DATA_SIZE)?;
    let mut data_region = kvm_userspace_memory_region {
        slot: 1,
        flags: 0,
        guest_phys_addr: DATA,
        memory_size: DATA_SIZE as u64,
        userspace_addr: data.ptr as u64,
    };
    // SAFETY: `data` outlives the slot: it is unmapped only after the slot is deleted.
    unsafe { vm.vm.set_user_memory_region(data_region) }.map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut counters = Vec::new();
    for i in 0..2u64 {
        let mut vcpu: VcpuFd = vm.vcpu(i, MEM_BASE, 0)?;
        set_reg(&vcpu, core_reg_x(0), i)?;
        let (passes, mmio) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        counters.push((passes.clone(), mmio.clone()));
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let in_data = |a: u64| (DATA..DATA + DATA_SIZE as u64).contains(&a);
            while !stop.load(SeqCst) {
                match vcpu.run() {
                    Ok(VcpuExit::MmioWrite(a, _)) if a == MMIO_BASE => passes.fetch_add(1, SeqCst),
                    Ok(VcpuExit::MmioRead(a, d)) if in_data(a) => {
                        d.fill(0);
                        mmio.fetch_add(1, SeqCst)
                    }
                    Ok(VcpuExit::MmioWrite(a, _)) if in_data(a) => mmio.fetch_add(1, SeqCst),
                    Ok(other) => return Err(format!("vCPU {i}: exit {other:?}")),
                    // The main thread's kick, once the guest has nothing left to run.
                    Err(e) if e.errno() == libc::EINTR => 0,
                    Err(e) => return Err(format!("vCPU {i}: KVM_RUN: {e}")),
                };
            }
            Ok(())
        }));
    }
    let wait = |what: &str, cond: &dyn Fn() -> bool| -> Result<(), String> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("timed out waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    };
    let TestVm { kvm, vm, mem } = vm;
    let (mut data, mut mem, mut vm) = (Some(data), Some(mem), Some(vm));
    let result = (|| -> Result<(), String> {
        let fd = vm.as_ref().ok_or("no VM")?;
        // Two passes each: every data page is mapped at stage 2 and in use.
        wait("two passes per vCPU", &|| {
            counters.iter().all(|(p, _)| p.load(SeqCst) >= 2)
        })?;
        check!(
            counters.iter().all(|(_, m)| m.load(SeqCst) == 0),
            "MMIO exits while the slot existed"
        );
        data_region.memory_size = 0;
        // SAFETY: deletes the slot; the memory stays mapped until after this.
        unsafe { fd.set_user_memory_region(data_region) }.map_err(|e| format!("delete: {e}"))?;
        // The slot is gone: the backing can go, and the vCPUs now exit at data addresses.
        data = None;
        wait("MMIO exits in the deleted slot", &|| {
            counters.iter().all(|(_, m)| m.load(SeqCst) >= 10)
        })?;
        // Now the RAM holding the code: the vCPUs' fetches fault (KVM injects prefetch
        // aborts, taken at a vector that is not memory either), so they stay in KVM_RUN
        // until kicked. The backing goes at once, as above.
        let code_region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: MEM_BASE,
            memory_size: 0,
            userspace_addr: 0,
        };
        // SAFETY: deletes the slot.
        unsafe { fd.set_user_memory_region(code_region) }
            .map_err(|e| format!("delete RAM: {e}"))?;
        mem = None;
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    })();
    // The VM fd closes while the vCPUs still run; their fds keep the VM alive.
    vm = None;
    drop(kvm);
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, SeqCst);
    let start = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("the vCPU threads did not leave KVM_RUN when signalled".into());
        }
        for t in threads.iter().filter(|t| !t.is_finished()) {
            // SAFETY: the thread is alive (not finished, not joined).
            unsafe { libc::pthread_kill(t.as_pthread_t(), libc::SIGUSR1) };
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for t in threads {
        t.join().map_err(|_| "a vCPU thread panicked")??;
    }
    result?;
    drop((data, mem, vm));
    base.check("after the torn-down VM")?;
    Ok(Outcome::Pass)
}

fn guest_memory_is_shared_live() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_shared())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let runner = std::thread::spawn(move || -> Result<(u64, u64, Exit), String> {
        let (a, flag) = run_to_write(&mut vcpu)?;
        let (b, count) = run_to_write(&mut vcpu)?;
        if (a, b) != (MMIO_BASE, MMIO_BASE + 8) {
            return Err(format!("reports at {a:#x} and {b:#x}"));
        }
        Ok((flag, count, run(&mut vcpu, 0)?))
    });
    // The host sees the guest's counter move while it runs...
    let start = Instant::now();
    let mut first = 0;
    let seen = loop {
        let v = vm.mem.read_u64(0x1000);
        if first == 0 {
            first = v;
        } else if v > first {
            break v;
        }
        if start.elapsed() > Duration::from_secs(30) || runner.is_finished() {
            return Err(format!("the guest's counter stayed at {v}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    // ...and the guest sees the host's flag.
    const FLAG: u64 = 0x1234_5678_9abc_def0;
    vm.mem.write_u64(0x1008, FLAG);
    let (flag, count, last) = runner.join().map_err(|_| "the vCPU thread panicked")??;
    check_eq!(flag, FLAG);
    check!(
        count >= seen,
        "the guest counted to {count}, the host had seen {seen}"
    );
    check_eq!(vm.mem.read_u64(0x1000), count);
    check_eq!(last, Exit::SystemEvent(SHUTDOWN));
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_vm_robustness",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("thousand_vms", thousand_vms),
            ("close_fds_in_every_order", close_fds_in_every_order),
            ("sigkill_mid_run", sigkill_mid_run),
            (
                "migrated_vcpu_keeps_its_state",
                migrated_vcpu_keeps_its_state,
            ),
            ("mmio_exits_outside_memslots", mmio_exits_outside_memslots),
            (
                "memslot_deleted_under_running_vcpus",
                memslot_deleted_under_running_vcpus,
            ),
            ("guest_memory_is_shared_live", guest_memory_is_shared_live),
        ],
    )
}
