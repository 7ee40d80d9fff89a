// SPDX-License-Identifier: GPL-2.0

//! Guest memory follows the VMM's address space (`KVM_CAP_SYNC_MMU`): when the host
//! discards, replaces, punches, unmaps, migrates or ages the pages behind a memslot, the
//! guest sees what the VMM's mapping holds, never a stale page (KVM's MMU notifiers,
//! `kvm_mmu_notifier_invalidate_range_start`, `kvm_mmu_notifier_clear_young`).
//!
//! The guest runs commands from an MMIO word: WRITE stores the command into its page of
//! the data slot, READ loads the page's first word and reports it with an MMIO write.

use kvm_bindings as kb;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VcpuFd;
use rkvm_selftests::binstats::Stats;
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, run_or_skip, Outcome, TestResult,
};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

const DATA_SLOT: u32 = 1;
const DATA_BASE: u64 = 0x5000_0000;
const PAGE: usize = 4096;
const HUGE: usize = 2 << 20;

const WRITE: u64 = 1 << 32;
const READ: u64 = 2 << 32;

// x1 = MMIO_BASE, x2 = DATA_BASE. Forever: read a command from MMIO; WRITE stores the
// command word into its page, READ loads the page's first word and writes it to
// MMIO_BASE + 8.
guest_code!(
    guest_commands,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x5000, lsl #16",
    "1: ldr x3, [x1]",
    "lsr x4, x3, #32",
    "and x5, x3, #0xffffffff",
    "lsl x6, x5, #12",
    "add x6, x6, x2",
    "cmp x4, #1",
    "b.eq 2f",
    "cmp x4, #2",
    "b.eq 3f",
    "b 1b",
    "2: str x3, [x6]",
    "b 1b",
    "3: ldr x7, [x6]",
    "str x7, [x1, #8]",
    "b 1b"
);

/// Memory the test maps for the data slot, unmapped on drop.
struct Backing {
    ptr: *mut u8,
    size: usize,
}

impl Backing {
    /// `size` bytes of `mmap(flags, fd)`.
    fn map(size: usize, flags: libc::c_int, fd: libc::c_int) -> Result<Self, String> {
        // SAFETY: a fresh mapping chosen by the kernel.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Self {
            ptr: ptr.cast(),
            size,
        })
    }

    fn anon(size: usize) -> Result<Self, String> {
        Self::map(size, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    /// `size` bytes at an address aligned to 2 MiB, so that a huge page can back them.
    fn anon_aligned(size: usize) -> Result<Self, String> {
        let big = Self::anon(size + HUGE)?;
        let start = (big.ptr as usize).next_multiple_of(HUGE);
        // SAFETY: trims the parts of the mapping made above outside the aligned range.
        unsafe {
            libc::munmap(big.ptr.cast(), start - big.ptr as usize);
            libc::munmap(
                (start + size) as *mut libc::c_void,
                big.ptr as usize + big.size - start - size,
            );
        }
        core::mem::forget(big);
        Ok(Self {
            ptr: start as *mut u8,
            size,
        })
    }

    fn page(&self, p: usize) -> *mut u64 {
        assert!((p + 1) * PAGE <= self.size);
        // SAFETY: in bounds of the mapping.
        unsafe { self.ptr.add(p * PAGE).cast() }
    }

    fn read(&self, p: usize) -> u64 {
        // SAFETY: in bounds; the guest may write concurrently, hence volatile.
        unsafe { self.page(p).read_volatile() }
    }

    fn write(&self, p: usize, v: u64) {
        // SAFETY: in bounds.
        unsafe { self.page(p).write_volatile(v) }
    }

    fn madvise(&self, p: usize, pages: usize, advice: libc::c_int) -> Result<(), String> {
        // SAFETY: a range of this mapping.
        let r = unsafe { libc::madvise(self.page(p).cast(), pages * PAGE, advice) };
        if r != 0 {
            return Err(format!(
                "madvise({advice}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// The physical frame behind page `p` (`/proc/self/pagemap`; needs CAP_SYS_ADMIN).
    fn pfn(&self, pagemap: &File, p: usize) -> Result<u64, String> {
        let mut b = [0u8; 8];
        let vpn = self.page(p) as u64 / PAGE as u64;
        pagemap
            .read_exact_at(&mut b, vpn * 8)
            .map_err(|e| format!("pagemap: {e}"))?;
        let e = u64::from_le_bytes(b);
        check!(e & 1 << 63 != 0, "page {p} not present");
        Ok(e & ((1 << 55) - 1))
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map`.
        unsafe { libc::munmap(self.ptr.cast(), self.size) };
    }
}

/// A VM whose data slot is `data`, with a vCPU waiting for its first command.
struct MemVm {
    _vm: TestVm,
    vcpu: VcpuFd,
}

impl MemVm {
    fn new(data: &Backing) -> Result<Self, String> {
        let vm = TestVm::new(1 << 20, guest_commands())?;
        let region = kvm_userspace_memory_region {
            slot: DATA_SLOT,
            flags: 0,
            guest_phys_addr: DATA_BASE,
            memory_size: data.size as u64,
            userspace_addr: data.ptr as u64,
        };
        // SAFETY: every test drops its `MemVm` before its `Backing`.
        unsafe { vm.vm.set_user_memory_region(region) }.map_err(|e| format!("data slot: {e}"))?;
        let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        match run(&mut vcpu, 0)? {
            Exit::MmioRead(MMIO_BASE, 8) => Ok(Self { _vm: vm, vcpu }),
            other => Err(format!("guest start: {other:?}")),
        }
    }

    /// Answers the guest's pending command read with `c` and runs it to its next exit,
    /// keeping `KVM_RUN`'s errno.
    fn issue(&mut self, c: u64) -> Result<Exit, i32> {
        let run_page = self.vcpu.get_kvm_run();
        // SAFETY: the last exit was the guest's MMIO read, whose data `mmio` holds.
        unsafe { run_page.__bindgen_anon_1.mmio.data[..8].copy_from_slice(&c.to_le_bytes()) };
        run_errno(&mut self.vcpu, 0)
    }

    /// The guest stores `WRITE | p` into page `p`.
    fn write(&mut self, p: usize) -> Result<(), String> {
        match self.issue(WRITE | p as u64) {
            Ok(Exit::MmioRead(MMIO_BASE, 8)) => Ok(()),
            other => Err(format!("guest write {p}: {other:?}")),
        }
    }

    /// The first word of page `p` as the guest reads it.
    fn read(&mut self, p: usize) -> Result<u64, String> {
        let v = match self
            .issue(READ | p as u64)
            .map_err(|e| format!("KVM_RUN: errno {e}"))?
        {
            Exit::MmioWrite(a, data) if a == MMIO_BASE + 8 => le_value(&data),
            other => return Err(format!("guest read {p}: {other:?}")),
        };
        self.resume()?;
        Ok(v)
    }

    /// After a reported read: back to waiting for a command.
    fn resume(&mut self) -> Result<(), String> {
        match run(&mut self.vcpu, 0)? {
            Exit::MmioRead(MMIO_BASE, 8) => Ok(()),
            other => Err(format!("guest resume: {other:?}")),
        }
    }
}

fn capability() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_commands())?;
    check_eq!(vm.kvm.check_extension_raw(kb::KVM_CAP_SYNC_MMU.into()), 1);
    check_eq!(vm.vm.check_extension_raw(kb::KVM_CAP_SYNC_MMU.into()), 1);
    Ok(Outcome::Pass)
}

/// Balloon-style discard (`MADV_DONTNEED`): the guest then reads the fresh zero page the
/// VMM sees, and both see each other's later writes. A pinned page would keep the
/// guest's old data and lose the VMM's writes.
fn discarded_page_reads_as_the_vmm_sees_it() -> TestResult {
    let data = Backing::anon(16 * PAGE)?;
    let mut t = MemVm::new(&data)?;
    for p in [3, 4] {
        t.write(p)?;
        check_eq!(data.read(p), WRITE | p as u64);
    }
    data.madvise(3, 1, libc::MADV_DONTNEED)?;
    check_eq!(data.read(3), 0);
    check_eq!(t.read(3)?, 0);
    // The neighbour keeps its data.
    check_eq!(t.read(4)?, WRITE | 4);
    data.write(3, 0x1234_5678);
    check_eq!(t.read(3)?, 0x1234_5678);
    t.write(3)?;
    check_eq!(data.read(3), WRITE | 3);
    Ok(Outcome::Pass)
}

/// The VMM maps new memory over part of a slot (`MAP_FIXED`), as QEMU does when it
/// replaces a RAM block: the guest uses the new pages.
fn replaced_mapping_is_what_the_guest_uses() -> TestResult {
    let data = Backing::anon(16 * PAGE)?;
    let mut t = MemVm::new(&data)?;
    for p in 0..4 {
        t.write(p)?;
    }
    // SAFETY: replaces pages 1 and 2 of `data`'s own mapping.
    let r = unsafe {
        libc::mmap(
            data.page(1).cast(),
            2 * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    check!(r != libc::MAP_FAILED, "mmap MAP_FIXED failed");
    data.write(2, 0xfeed);
    check_eq!(t.read(1)?, 0);
    check_eq!(t.read(2)?, 0xfeed);
    check_eq!(t.read(0)?, WRITE);
    check_eq!(t.read(3)?, WRITE | 3);
    t.write(1)?;
    check_eq!(data.read(1), WRITE | 1);
    Ok(Outcome::Pass)
}

/// A memfd-backed slot (QEMU's `memory-backend-memfd`): the guest's writes reach the
/// file, a punched hole reads as zeroes in the guest, and writes to the file reach it.
fn memfd_slot_follows_the_file() -> TestResult {
    // SAFETY: a plain syscall with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"rkvm-guest".as_ptr(), 0) };
    check!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and is owned here.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.set_len(16 * PAGE as u64)
        .map_err(|e| format!("ftruncate: {e}"))?;
    let data = Backing::map(16 * PAGE, libc::MAP_SHARED, file.as_raw_fd())?;
    let mut t = MemVm::new(&data)?;
    let word = |p: usize| -> Result<u64, String> {
        let mut b = [0u8; 8];
        file.read_exact_at(&mut b, (p * PAGE) as u64)
            .map_err(|e| format!("pread: {e}"))?;
        Ok(u64::from_le_bytes(b))
    };
    t.write(5)?;
    t.write(6)?;
    check_eq!(word(5)?, WRITE | 5);
    // SAFETY: a plain syscall on our file.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            (5 * PAGE) as i64,
            PAGE as i64,
        )
    };
    check!(r == 0, "fallocate: {}", std::io::Error::last_os_error());
    check_eq!(t.read(5)?, 0);
    check_eq!(t.read(6)?, WRITE | 6);
    file.write_all_at(&0xabcdu64.to_le_bytes(), (5 * PAGE) as u64)
        .map_err(|e| format!("pwrite: {e}"))?;
    check_eq!(t.read(5)?, 0xabcd);
    t.write(5)?;
    check_eq!(word(5)?, WRITE | 5);
    Ok(Outcome::Pass)
}

/// Part of a slot unmapped by the VMM: the guest's access fails `KVM_RUN` with `EFAULT`
/// (KVM's `kvm_handle_bad_page`), and succeeds once memory is mapped there again.
fn unmapped_slot_memory_faults_until_remapped() -> TestResult {
    let data = Backing::anon(16 * PAGE)?;
    let mut t = MemVm::new(&data)?;
    t.write(7)?;
    // SAFETY: unmaps one page of `data`'s own mapping.
    check_eq!(unsafe { libc::munmap(data.page(7).cast(), PAGE) }, 0);
    check_eq!(t.issue(READ | 7), Err(libc::EFAULT));
    // Still faults: nothing was mapped behind the guest's back.
    check_eq!(run_errno(&mut t.vcpu, 0), Err(libc::EFAULT));
    // SAFETY: maps the hole again.
    let r = unsafe {
        libc::mmap(
            data.page(7).cast(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    check!(r != libc::MAP_FAILED, "mmap MAP_FIXED failed");
    data.write(7, 0x77);
    // The load the guest retried now completes and reports.
    match run(&mut t.vcpu, 0)? {
        Exit::MmioWrite(a, d) if a == MMIO_BASE + 8 => check_eq!(le_value(&d), 0x77),
        other => return Err(format!("after remap: {other:?}")),
    }
    t.resume()?;
    check_eq!(t.read(6)?, 0);
    Ok(Outcome::Pass)
}

/// A transparent huge page split by a partial discard: the discarded 4 KiB reads as zero
/// in the guest, the rest of the huge page keeps its data.
fn huge_page_split_keeps_the_rest() -> TestResult {
    let data = Backing::anon_aligned(HUGE)?;
    data.madvise(0, HUGE / PAGE, libc::MADV_HUGEPAGE)?;
    data.write(0, 1);
    if !backed_by_thp(&data)? {
        return Ok(Outcome::Skip(
            "no transparent huge page for the slot".into(),
        ));
    }
    let mut t = MemVm::new(&data)?;
    for p in [0, 100, 511] {
        t.write(p)?;
    }
    data.madvise(100, 1, libc::MADV_DONTNEED)?;
    check_eq!(t.read(100)?, 0);
    check_eq!(t.read(0)?, WRITE);
    check_eq!(t.read(511)?, WRITE | 511);
    data.write(100, 0x100);
    check_eq!(t.read(100)?, 0x100);
    Ok(Outcome::Pass)
}

/// `MADV_COLLAPSE` copies 512 small pages the guest has mapped into a new huge page and
/// frees them (what khugepaged does in the background): the guest must follow the data
/// to the new frames.
fn huge_page_collapse_moves_the_guest_along() -> TestResult {
    const N: usize = HUGE / PAGE;
    let data = Backing::anon_aligned(HUGE)?;
    let mut t = MemVm::new(&data)?;
    for p in 0..N {
        t.write(p)?;
    }
    let pagemap = File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let before = data.pfn(&pagemap, 0)?;
    // SAFETY: a range of `data`'s own mapping.
    if unsafe { libc::madvise(data.ptr.cast(), HUGE, libc::MADV_COLLAPSE) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: a kernel without THP. Anything else (EAGAIN: a page the kernel could
        // not move, such as a pinned one) is the failure this test looks for.
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(Outcome::Skip(format!("no collapse: {e}")));
        }
        return Err(format!("MADV_COLLAPSE: {e}"));
    }
    check!(backed_by_thp(&data)?, "MADV_COLLAPSE left no huge page");
    check!(data.pfn(&pagemap, 0)? != before, "the data did not move");
    for p in [0, 1, 255, 511] {
        check_eq!(t.read(p)?, WRITE | p as u64);
        data.write(p, 0xc011_0000 | p as u64);
        check_eq!(t.read(p)?, 0xc011_0000 | p as u64);
        t.write(p)?;
        check_eq!(data.read(p), WRITE | p as u64);
    }
    Ok(Outcome::Pass)
}

/// A slot backed by transparent huge pages is mapped with 2 MiB stage-2 blocks (KVM's
/// `pages_2m`); a partial discard splits one back to pages, and dirty logging breaks a
/// block up so that exactly the pages the guest writes are logged.
fn huge_pages_map_as_blocks() -> TestResult {
    let data = Backing::anon_aligned(2 * HUGE)?;
    data.madvise(0, 2 * HUGE / PAGE, libc::MADV_HUGEPAGE)?;
    data.write(0, 1);
    data.write(HUGE / PAGE, 1);
    if !backed_by_thp(&data)? {
        return Ok(Outcome::Skip(
            "no transparent huge page for the slot".into(),
        ));
    }
    let mut t = MemVm::new(&data)?;
    let vm_stats = Stats::open(t._vm.vm.as_raw_fd())?;
    let stat = |name: &str| -> Result<u64, String> {
        vm_stats
            .values()?
            .get(name)
            .copied()
            .ok_or(format!("no {name}"))
    };
    let pages = stat("pages_4k")?;
    t.write(0)?;
    t.write(600)?;
    check_eq!(stat("pages_2m")?, 2);
    check_eq!(stat("pages_4k")?, pages);
    check_eq!(data.read(600), WRITE | 600);
    // A 4 KiB discard splits the VMM's huge page, and stage 2 follows.
    data.madvise(100, 1, libc::MADV_DONTNEED)?;
    check_eq!(t.read(100)?, 0);
    check_eq!(t.read(0)?, WRITE);
    check_eq!(stat("pages_2m")?, 1);
    check!(
        stat("pages_4k")? > pages,
        "the split range is not mapped with pages"
    );
    // Logging turned on: the remaining block is write-protected, and a write splits it.
    let region = kvm_userspace_memory_region {
        slot: DATA_SLOT,
        flags: kb::KVM_MEM_LOG_DIRTY_PAGES,
        guest_phys_addr: DATA_BASE,
        memory_size: data.size as u64,
        userspace_addr: data.ptr as u64,
    };
    // SAFETY: the same memory as before, which outlives the VM.
    unsafe { t._vm.vm.set_user_memory_region(region) }.map_err(|e| format!("logging on: {e}"))?;
    check_eq!(t.read(601)?, 0);
    t.write(700)?;
    check_eq!(stat("pages_2m")?, 0);
    let log = t
        ._vm
        .vm
        .get_dirty_log(DATA_SLOT, data.size)
        .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
    let dirty: Vec<usize> = (0..data.size / PAGE)
        .filter(|&p| log[p / 64] & 1 << (p % 64) != 0)
        .collect();
    check_eq!(dirty, [700]);
    check_eq!(data.read(700), WRITE | 700);
    Ok(Outcome::Pass)
}

/// Whether `data`'s first 2 MiB are one transparent huge page (`/proc/self/smaps`).
fn backed_by_thp(data: &Backing) -> Result<bool, String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|e| format!("smaps: {e}"))?;
    let start = format!("{:x}-", data.ptr as usize);
    let Some(at) = smaps.find(&start) else {
        return Ok(false);
    };
    Ok(smaps[at..]
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .is_some_and(|v| v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0) >= 2048))
}

/// hugetlbfs-backed guest RAM (`MAP_HUGETLB`, as `-mem-path /dev/hugepages`).
fn hugetlb_slot_works() -> TestResult {
    let nr = "/proc/sys/vm/nr_hugepages";
    if std::fs::write(nr, "4").is_err() {
        return Ok(Outcome::Skip("no hugetlbfs".into()));
    }
    let result = (|| {
        let data = Backing::map(
            HUGE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
            -1,
        )?;
        let mut t = MemVm::new(&data)?;
        data.write(9, 0x99);
        check_eq!(t.read(9)?, 0x99);
        // One 2 MiB hugetlb page: one stage-2 block.
        let stats = Stats::open(t._vm.vm.as_raw_fd())?;
        check_eq!(stats.values()?.get("pages_2m").copied(), Some(1));
        t.write(500)?;
        check_eq!(data.read(500), WRITE | 500);
        drop(t);
        Ok(Outcome::Pass)
    })();
    let _ = std::fs::write(nr, "0");
    result
}

/// Idle page tracking (`/sys/kernel/mm/page_idle/bitmap`) sees the guest's accesses:
/// marking a page idle ages it at stage 2 too (`clear_young`), and a guest access after
/// that makes it young again, as KVM's stage-2 access flag does.
fn page_idle_sees_guest_accesses() -> TestResult {
    let bitmap = match OpenOptions::new()
        .read(true)
        .write(true)
        .open("/sys/kernel/mm/page_idle/bitmap")
    {
        Ok(f) => f,
        Err(_) => return Ok(Outcome::Skip("no idle page tracking".into())),
    };
    let data = Backing::anon(16 * PAGE)?;
    let mut t = MemVm::new(&data)?;
    t.write(2)?;
    t.write(3)?;
    // New pages wait in per-CPU batches before they reach the LRU lists, and idle
    // tracking ignores pages off the LRU: dropping caches drains the batches.
    std::fs::write("/proc/sys/vm/drop_caches", "1").map_err(|e| format!("drop_caches: {e}"))?;
    let pagemap = File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let pfn = data.pfn(&pagemap, 2)?;
    let word_at = pfn / 64 * 8;
    let bit = 1u64 << (pfn % 64);
    let idle = || -> Result<bool, String> {
        let mut b = [0u8; 8];
        bitmap
            .read_exact_at(&mut b, word_at)
            .map_err(|e| format!("page_idle read: {e}"))?;
        Ok(u64::from_le_bytes(b) & bit != 0)
    };
    let mark = || -> Result<(), String> {
        bitmap
            .write_all_at(&bit.to_le_bytes(), word_at)
            .map_err(|e| format!("page_idle write: {e}"))
    };
    // Untouched since marked: idle.
    mark()?;
    check!(idle()?, "page reported accessed though nobody touched it");
    // The guest reads it: no longer idle. Discarding another page first invalidates the
    // VM's TLBs, so the guest's read walks stage 2 again and finds the flag cleared.
    mark()?;
    data.madvise(3, 1, libc::MADV_DONTNEED)?;
    check_eq!(t.read(2)?, WRITE | 2);
    check!(!idle()?, "the guest's access was not seen");
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_mmu_notifier",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("capability", capability),
            (
                "discarded_page_reads_as_the_vmm_sees_it",
                discarded_page_reads_as_the_vmm_sees_it,
            ),
            (
                "replaced_mapping_is_what_the_guest_uses",
                replaced_mapping_is_what_the_guest_uses,
            ),
            ("memfd_slot_follows_the_file", memfd_slot_follows_the_file),
            (
                "unmapped_slot_memory_faults_until_remapped",
                unmapped_slot_memory_faults_until_remapped,
            ),
            (
                "huge_page_split_keeps_the_rest",
                huge_page_split_keeps_the_rest,
            ),
            (
                "huge_page_collapse_moves_the_guest_along",
                huge_page_collapse_moves_the_guest_along,
            ),
            ("huge_pages_map_as_blocks", huge_pages_map_as_blocks),
            ("hugetlb_slot_works", hugetlb_slot_works),
            (
                "page_idle_sees_guest_accesses",
                page_idle_sees_guest_accesses,
            ),
        ],
    )
}
