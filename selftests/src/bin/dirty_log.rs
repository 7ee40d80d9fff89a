// SPDX-License-Identifier: GPL-2.0

//! Dirty logging: `KVM_MEM_LOG_DIRTY_PAGES`, `KVM_GET_DIRTY_LOG`,
//! `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` and `KVM_CLEAR_DIRTY_LOG`, with a guest writing
//! pages the host chooses and the bitmaps checked bit for bit, a guest writing while the
//! host collects rounds (no write may be lost, as live migration needs), and KVM's errno
//! for each bad argument (`kvm_get_dirty_log_protect`, `kvm_clear_dirty_log_protect`).

use kvm_bindings as kb;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{VcpuFd, VmFd};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, run_or_skip, Cases, Outcome, TestResult,
};
use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

/// The logged slot: 200 pages (the last bitmap word is partial) at `DATA_BASE`.
const DATA_SLOT: u32 = 1;
const DATA_BASE: u64 = 0x5000_0000;
const DATA_PAGES: u64 = 200;
const PAGE: u64 = 4096;

/// Guest commands, answered to its MMIO reads: `op << 32 | page`.
const NOP: u64 = 0;
const WRITE: u64 = 1 << 32;
const READ: u64 = 2 << 32;

// x1 = MMIO_BASE, x2 = DATA_BASE. Forever: read a command from MMIO; WRITE stores the
// command word into its page of the data slot, READ loads from the page, NOP does nothing.
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
    "b 1b"
);

// Until the word at MEM_BASE + 0x1000 is non-zero: write an ever-growing counter into
// each of the first 64 pages of the data slot in turn; then SYSTEM_OFF.
guest_code!(
    guest_writer,
    "movz x1, #0x4000, lsl #16",
    "add x1, x1, #0x1000",
    "movz x2, #0x5000, lsl #16",
    "mov x3, #0",
    "1: mov x5, #0",
    "2: lsl x6, x5, #12",
    "add x6, x6, x2",
    "add x3, x3, #1",
    "str x3, [x6]",
    "add x5, x5, #1",
    "cmp x5, #64",
    "b.ne 2b",
    "ldr x7, [x1]",
    "cbz x7, 1b",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Epochs: whenever the word at MEM_BASE + 0x1000 changes, write it into each of the
// first 64 pages of the data slot, then (after a barrier) into MEM_BASE + 0x1008; an
// epoch of all ones ends the guest with SYSTEM_OFF. Between epochs the guest only spins
// on memory, without exits.
guest_code!(
    guest_epochs,
    "movz x1, #0x4000, lsl #16",
    "add x1, x1, #0x1000",
    "add x8, x1, #8",
    "movz x2, #0x5000, lsl #16",
    "mov x9, #0",
    "1: ldr x3, [x1]",
    "cmp x3, x9",
    "b.eq 1b",
    "cmn x3, #1",
    "b.eq 3f",
    "mov x9, x3",
    "mov x5, #0",
    "2: lsl x6, x5, #12",
    "add x6, x6, x2",
    "str x3, [x6]",
    "add x5, x5, #1",
    "cmp x5, #64",
    "b.ne 2b",
    "dmb ish",
    "str x3, [x8]",
    "b 1b",
    "3: movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// A VM running `code` from slot 0, with the data slot (`flags`) backed by `data`.
struct LogVm {
    vm: TestVm,
    data: GuestMem,
    vcpu: VcpuFd,
}

impl LogVm {
    /// With `manual`, `KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2` is enabled with those options
    /// before the data slot exists.
    fn new(code: &[u8], flags: u32, manual: Option<u64>) -> Result<Self, String> {
        let vm = TestVm::new(1 << 20, code)?;
        if let Some(args) = manual {
            enable_manual(&vm.vm, args).map_err(|e| format!("ENABLE_CAP: errno {e}"))?;
        }
        let data = GuestMem::new((DATA_PAGES * PAGE) as usize)?;
        set_data_slot(&vm.vm, &data, flags).map_err(|e| format!("data slot: errno {e}"))?;
        let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
        Ok(Self { vm, data, vcpu })
    }

    /// Has the guest run `cmds` in order (a NOP left pending, see [`guest_commands`]).
    fn guest(&mut self, cmds: &[u64]) -> Result<(), String> {
        for &c in cmds.iter().chain([NOP].iter()) {
            match run(&mut self.vcpu, c)? {
                Exit::MmioRead(MMIO_BASE, 8) => {}
                other => return Err(format!("guest command {c:#x}: {other:?}")),
            }
        }
        Ok(())
    }

    fn writes(&mut self, pages: &[u64]) -> Result<(), String> {
        let cmds: Vec<u64> = pages.iter().map(|p| WRITE | p).collect();
        self.guest(&cmds)
    }

    /// `KVM_GET_DIRTY_LOG` of the data slot, through kvm-ioctls, as a set of pages.
    fn get(&self) -> Result<BTreeSet<u64>, String> {
        let words = self
            .vm
            .vm
            .get_dirty_log(DATA_SLOT, (DATA_PAGES * PAGE) as usize)
            .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
        if words.len() != 4 {
            return Err(format!("{} bitmap words", words.len()));
        }
        Ok(pages_of(&words))
    }

    fn clear(&self, first_page: u64, num_pages: u32, pages: &[u64]) -> Result<(), String> {
        let mut words = [0u64; 4];
        for p in pages {
            words[(p / 64) as usize] |= 1 << (p % 64);
        }
        let bitmap = &words[(first_page / 64) as usize..];
        clear_log(
            &self.vm.vm,
            DATA_SLOT,
            first_page,
            num_pages,
            bitmap.as_ptr() as u64,
        )
        .map(|_| ())
        .map_err(|e| format!("KVM_CLEAR_DIRTY_LOG: errno {e}"))
    }
}

fn pages_of(words: &[u64]) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        for b in 0..64 {
            if w & 1 << b != 0 {
                set.insert(i as u64 * 64 + b);
            }
        }
    }
    set
}

fn set(pages: &[u64]) -> BTreeSet<u64> {
    pages.iter().copied().collect()
}

fn set_data_slot(vm: &VmFd, data: &GuestMem, flags: u32) -> Result<i32, i32> {
    let mut region = kvm_userspace_memory_region {
        slot: DATA_SLOT,
        flags,
        guest_phys_addr: DATA_BASE,
        memory_size: data.size as u64,
        userspace_addr: data.ptr as u64,
    };
    ioctl_with(vm.as_raw_fd(), nr::KVM_SET_USER_MEMORY_REGION, &mut region)
}

fn enable_manual(vm: &VmFd, args0: u64) -> Result<i32, i32> {
    let mut cap = kb::kvm_enable_cap {
        cap: kb::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
        ..Default::default()
    };
    cap.args[0] = args0;
    ioctl_with(vm.as_raw_fd(), nr::KVM_ENABLE_CAP, &mut cap)
}

fn get_log(vm: &VmFd, slot: u32, bitmap: u64) -> Result<i32, i32> {
    let mut log = kb::kvm_dirty_log {
        slot,
        padding1: 0,
        __bindgen_anon_1: kb::kvm_dirty_log__bindgen_ty_1 { padding2: bitmap },
    };
    ioctl_with(vm.as_raw_fd(), nr::KVM_GET_DIRTY_LOG, &mut log)
}

fn clear_log(
    vm: &VmFd,
    slot: u32,
    first_page: u64,
    num_pages: u32,
    bitmap: u64,
) -> Result<i32, i32> {
    let mut log = kb::kvm_clear_dirty_log {
        slot,
        num_pages,
        first_page,
        __bindgen_anon_1: kb::kvm_clear_dirty_log__bindgen_ty_1 { padding2: bitmap },
    };
    // kvm-ioctls has no call for it.
    ioctl_with(vm.as_raw_fd(), nr::KVM_CLEAR_DIRTY_LOG, &mut log)
}

const LOG: u32 = kb::KVM_MEM_LOG_DIRTY_PAGES;
const MANUAL: u64 = kb::KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE as u64;
const INIT_SET: u64 = kb::KVM_DIRTY_LOG_INITIALLY_SET as u64;

fn capability_and_its_options() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_commands())?;
    check_eq!(
        vm.vm
            .check_extension_raw(kb::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2.into()),
        3
    );
    let mut c = Cases::new();
    for (args, want) in [
        (MANUAL | INIT_SET, 0),
        (MANUAL, 0),
        (0, 0),
        (INIT_SET, libc::EINVAL),
        (4, libc::EINVAL),
        (MANUAL | 4, libc::EINVAL),
        (u64::MAX, libc::EINVAL),
    ] {
        c.errno(
            &format!("args[0] = {args:#x}"),
            enable_manual(&vm.vm, args),
            want,
        );
    }
    let mut cap = kb::kvm_enable_cap {
        cap: kb::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
        flags: 1,
        ..Default::default()
    };
    cap.args[0] = MANUAL;
    c.errno(
        "flags = 1",
        ioctl_with(vm.vm.as_raw_fd(), nr::KVM_ENABLE_CAP, &mut cap),
        libc::EINVAL,
    );
    c.finish()
}

/// Without manual protection: each GET returns what the guest wrote since the last one
/// (reads do not count) and re-arms the pages; the data reaches the VMM's mapping.
fn get_dirty_log_reports_exactly_the_pages_written() -> TestResult {
    let mut t = LogVm::new(guest_commands(), LOG, None)?;
    check_eq!(t.get()?, set(&[]));
    let first = [0, 5, 63, 64, 130, 199];
    t.guest(&[READ | 7, READ | 100])?;
    t.writes(&first)?;
    check_eq!(t.get()?, set(&first));
    for p in first {
        check_eq!(t.data.read_u64((p * PAGE) as usize), WRITE | p);
    }
    check_eq!(t.get()?, set(&[]));
    // Pages written again after their bit was taken are write-protected again; a page
    // only read before (7) is logged on its first write.
    t.writes(&[5, 7, 199])?;
    t.guest(&[READ | 64])?;
    check_eq!(t.get()?, set(&[5, 7, 199]));
    // Writes by the VMM through its own mapping are not the guest's: not logged.
    t.data.write_u64((10 * PAGE) as usize, 1);
    check_eq!(t.get()?, set(&[]));
    // Every page once.
    let all: Vec<u64> = (0..DATA_PAGES).collect();
    t.writes(&all)?;
    check_eq!(t.get()?, set(&all));
    Ok(Outcome::Pass)
}

/// Logging turned on for a slot whose pages are mapped writable write-protects them
/// (nothing is reported until the guest writes again); turned off, the bitmap is gone
/// and the guest writes freely.
fn logging_turned_on_and_off_on_a_live_slot() -> TestResult {
    let mut t = LogVm::new(guest_commands(), 0, None)?;
    t.writes(&[10, 11, 150])?;
    check_eq!(
        get_log(&t.vm.vm, DATA_SLOT, [0u64; 4].as_ptr() as u64),
        Err(libc::ENOENT)
    );
    set_data_slot(&t.vm.vm, &t.data, LOG).map_err(|e| format!("LOG on: errno {e}"))?;
    check_eq!(t.get()?, set(&[]));
    t.writes(&[11, 150])?;
    check_eq!(t.get()?, set(&[11, 150]));
    set_data_slot(&t.vm.vm, &t.data, 0).map_err(|e| format!("LOG off: errno {e}"))?;
    check_eq!(
        get_log(&t.vm.vm, DATA_SLOT, [0u64; 4].as_ptr() as u64),
        Err(libc::ENOENT)
    );
    // Pages left write-protected become writable again on the next write.
    t.writes(&[10, 11, 150])?;
    for p in [10, 11, 150] {
        check_eq!(t.data.read_u64((p * PAGE) as usize), WRITE | p);
    }
    // And on again: a fresh, empty bitmap.
    set_data_slot(&t.vm.vm, &t.data, LOG).map_err(|e| format!("LOG on: errno {e}"))?;
    check_eq!(t.get()?, set(&[]));
    t.writes(&[10])?;
    check_eq!(t.get()?, set(&[10]));
    Ok(Outcome::Pass)
}

/// With manual protection, GET only reads; CLEAR clears exactly the bits asked for that
/// were set, and only those pages are logged again on their next write.
fn manual_protect_get_reads_and_clear_rearms() -> TestResult {
    let mut t = LogVm::new(guest_commands(), LOG, Some(MANUAL))?;
    t.writes(&[1, 2, 70, 199])?;
    check_eq!(t.get()?, set(&[1, 2, 70, 199]));
    check_eq!(t.get()?, set(&[1, 2, 70, 199]));
    // Clear 1 and 70 (and 3, never set) over the whole slot.
    t.clear(0, DATA_PAGES as u32, &[1, 3, 70])?;
    check_eq!(t.get()?, set(&[2, 199]));
    t.writes(&[1, 2])?;
    check_eq!(t.get()?, set(&[1, 2, 199]));
    // A window of one word: pages 64..128 only, so 2 stays.
    t.clear(64, 64, &[2, 70, 100])?;
    check_eq!(t.get()?, set(&[1, 2, 199]));
    // Up to the slot's end with an unaligned length.
    t.clear(128, 72, &[199])?;
    check_eq!(t.get()?, set(&[1, 2]));
    t.writes(&[199, 70])?;
    check_eq!(t.get()?, set(&[1, 2, 70, 199]));
    // Pages whose bits stay set remain writable: writing them changes nothing.
    t.writes(&[1, 2])?;
    check_eq!(t.get()?, set(&[1, 2, 70, 199]));
    Ok(Outcome::Pass)
}

/// `KVM_DIRTY_LOG_INITIALLY_SET`: a new logging slot reports every page (and no bit past
/// its end) until cleared; clearing write-protects pages mapped writable before.
fn initially_set_reports_everything_until_cleared() -> TestResult {
    let mut t = LogVm::new(guest_commands(), LOG, Some(MANUAL | INIT_SET))?;
    let all: Vec<u64> = (0..DATA_PAGES).collect();
    check_eq!(t.get()?, set(&all));
    let words =
        t.vm.vm
            .get_dirty_log(DATA_SLOT, (DATA_PAGES * PAGE) as usize)
            .map_err(|e| e.to_string())?;
    check_eq!(words, vec![u64::MAX, u64::MAX, u64::MAX, 0xff]);
    // Mapped writable while its bit is set.
    t.writes(&[3])?;
    t.clear(0, DATA_PAGES as u32, &all)?;
    check_eq!(t.get()?, set(&[]));
    t.writes(&[3, 150])?;
    check_eq!(t.get()?, set(&[3, 150]));
    Ok(Outcome::Pass)
}

/// Guest memory the kernel writes for the guest is logged too (KVM's `kvm_write_guest`
/// marks it): PV stolen time, which each `KVM_RUN` brings up to date in the structure.
fn kernel_writes_to_guest_memory_are_logged() -> TestResult {
    let mut t = LogVm::new(guest_commands(), LOG, None)?;
    let ipa = DATA_BASE + 20 * PAGE;
    let attr = kb::kvm_device_attr {
        group: kb::KVM_ARM_VCPU_PVTIME_CTRL,
        attr: kb::KVM_ARM_VCPU_PVTIME_IPA.into(),
        addr: &ipa as *const u64 as u64,
        flags: 0,
    };
    if let Err(e) = t.vcpu.set_device_attr(&attr) {
        return Ok(Outcome::Skip(format!("no PV stolen time: {e}")));
    }
    t.guest(&[READ | 20, READ | 21])?;
    check_eq!(t.get()?, set(&[20]));
    t.guest(&[NOP])?;
    check_eq!(t.get()?, set(&[20]));
    Ok(Outcome::Pass)
}

/// A read-only slot may log (KVM allows the flags together), but the guest cannot
/// write it: its bitmap stays empty, and writes are MMIO exits.
fn read_only_slot_logs_nothing() -> TestResult {
    let mut t = LogVm::new(guest_commands(), LOG | kb::KVM_MEM_READONLY, None)?;
    t.guest(&[READ | 4])?;
    check_eq!(t.get()?, set(&[]));
    // The write becomes an MMIO exit at the page.
    run(&mut t.vcpu, WRITE | 4)?;
    match run(&mut t.vcpu, NOP)? {
        Exit::MmioWrite(addr, data) if addr == DATA_BASE + 4 * PAGE && data.len() == 8 => {}
        other => return Err(format!("write to a read-only slot: {other:?}")),
    }
    check_eq!(t.get()?, set(&[]));
    Ok(Outcome::Pass)
}

/// One vCPU writes 64 pages in a loop while the host collects 40 rounds of
/// GET_DIRTY_LOG, each followed by a copy of the pages: a page whose content changed
/// between two copies was written after the earlier copy, so its bit is in the GET just
/// before the later copy or, for a write that raced the copy, in the next one. A missed
/// write-protection or TLB invalidation loses pages here.
fn concurrent_writes_are_never_lost() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_writer())?;
    let data = GuestMem::new((DATA_PAGES * PAGE) as usize)?;
    set_data_slot(&vm.vm, &data, LOG).map_err(|e| format!("data slot: errno {e}"))?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let snapshot = |data: &GuestMem| -> Vec<u64> {
        (0..64)
            .map(|p| data.read_u64((p * PAGE) as usize))
            .collect()
    };
    let result = std::thread::scope(|s| {
        let runner = s.spawn(move || run(&mut vcpu, 0));
        let mut logs = Vec::new();
        let mut copies = vec![snapshot(&data)];
        for _ in 0..40 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let words = vm
                .vm
                .get_dirty_log(DATA_SLOT, (DATA_PAGES * PAGE) as usize)
                .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
            logs.push(pages_of(&words));
            copies.push(snapshot(&data));
        }
        vm.mem.write_u64(0x1000, 1);
        let exit = runner.join().map_err(|_| "vCPU thread panicked")??;
        if exit != Exit::SystemEvent(kb::KVM_SYSTEM_EVENT_SHUTDOWN) {
            return Err(format!("writer guest: {exit:?}"));
        }
        let words = vm
            .vm
            .get_dirty_log(DATA_SLOT, (DATA_PAGES * PAGE) as usize)
            .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
        logs.push(pages_of(&words));
        let mut changed = 0;
        let mut lost = Vec::new();
        for k in 1..copies.len() {
            for p in 0..64u64 {
                if copies[k][p as usize] != copies[k - 1][p as usize] {
                    changed += 1;
                    if !logs[k - 1].contains(&p) && !logs[k].contains(&p) {
                        lost.push((k, p));
                    }
                }
            }
        }
        Ok::<_, String>((changed, lost))
    });
    let (changed, lost) = result?;
    println!("# concurrent_writes_are_never_lost: {changed} page changes in 40 rounds");
    check!(
        lost.is_empty(),
        "{} writes missing from the log, the first (round, page): {:?}",
        lost.len(),
        &lost[..lost.len().min(8)]
    );
    // The guest ran during the rounds: most copies differ from the one before.
    check!(
        changed >= 64,
        "only {changed} page changes seen in 40 rounds"
    );
    Ok(Outcome::Pass)
}

/// A guest that runs without exits between epochs rewrites 64 pages after each GET:
/// every GET must report exactly those pages, so each GET's write protection reached the
/// running vCPU (its TLB invalidation included: the guest's next writes must fault
/// although it has not left the guest since it last wrote those pages).
fn every_write_after_a_get_is_logged() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_epochs())?;
    let data = GuestMem::new((DATA_PAGES * PAGE) as usize)?;
    set_data_slot(&vm.vm, &data, LOG).map_err(|e| format!("data slot: errno {e}"))?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let all: BTreeSet<u64> = (0..64).collect();
    let result = std::thread::scope(|s| {
        let runner = s.spawn(move || run(&mut vcpu, 0));
        let mut wrong = Vec::new();
        for epoch in 1..=30u64 {
            vm.mem.write_u64(0x1000, epoch);
            let start = std::time::Instant::now();
            while vm.mem.read_u64(0x1008) != epoch {
                if start.elapsed() > std::time::Duration::from_secs(20) {
                    return Err(format!("epoch {epoch}: the guest did not finish"));
                }
                std::thread::yield_now();
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            let words = vm
                .vm
                .get_dirty_log(DATA_SLOT, (DATA_PAGES * PAGE) as usize)
                .map_err(|e| format!("KVM_GET_DIRTY_LOG: {e}"))?;
            let got = pages_of(&words);
            if got != all {
                let missing: Vec<_> = all.difference(&got).take(8).collect();
                let extra: Vec<_> = got.difference(&all).take(8).collect();
                wrong.push(format!(
                    "epoch {epoch}: {} pages, missing {missing:?}.., extra {extra:?}..",
                    got.len()
                ));
            }
            for p in 0..64 {
                let v = data.read_u64((p * PAGE) as usize);
                if v != epoch {
                    wrong.push(format!("epoch {epoch}: page {p} holds {v}"));
                }
            }
        }
        vm.mem.write_u64(0x1000, u64::MAX);
        let exit = runner.join().map_err(|_| "vCPU thread panicked")??;
        if exit != Exit::SystemEvent(kb::KVM_SYSTEM_EVENT_SHUTDOWN) {
            return Err(format!("epoch guest: {exit:?}"));
        }
        Ok(wrong)
    });
    let wrong = result?;
    check!(
        wrong.is_empty(),
        "{} mismatches, the first:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(8)].join("\n")
    );
    Ok(Outcome::Pass)
}

/// KVM's errno for each bad argument, in KVM's order of checks.
fn errnos_follow_kvm() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_commands())?;
    let data = GuestMem::new((DATA_PAGES * PAGE) as usize)?;
    let vmfd = &vm.vm;
    let fd = vmfd.as_raw_fd();
    let mut c = Cases::new();
    let buf = [0u64; 4];
    let b = buf.as_ptr() as u64;
    let bad = 8u64; // never mapped
                    // The memslot flags: LOG alone and with READONLY; guest_memfd's flag is refused.
    c.errno("slot with LOG", set_data_slot(vmfd, &data, LOG), 0);
    let mut other = kvm_userspace_memory_region {
        slot: 2,
        flags: LOG | kb::KVM_MEM_READONLY,
        guest_phys_addr: 0x6000_0000,
        memory_size: 0x10000,
        userspace_addr: data.ptr as u64,
    };
    c.errno(
        "slot with LOG | READONLY",
        ioctl_with(fd, nr::KVM_SET_USER_MEMORY_REGION, &mut other),
        0,
    );
    other.slot = 3;
    other.guest_phys_addr = 0x7000_0000;
    other.flags = LOG | kb::KVM_MEM_GUEST_MEMFD;
    c.errno(
        "slot with LOG | GUEST_MEMFD",
        ioctl_with(fd, nr::KVM_SET_USER_MEMORY_REGION, &mut other),
        libc::EINVAL,
    );

    // GET: the slot number, then the slot, then the copy.
    c.errno("GET of the logged slot", get_log(vmfd, DATA_SLOT, b), 0);
    c.errno("GET of slot 2 (read-only)", get_log(vmfd, 2, b), 0);
    c.errno(
        "GET of address space 1",
        get_log(vmfd, 1 << 16 | 1, b),
        libc::EINVAL,
    );
    c.errno("GET of slot 512", get_log(vmfd, 512, b), libc::EINVAL);
    c.errno(
        "GET of slot 0 (not logging)",
        get_log(vmfd, 0, b),
        libc::ENOENT,
    );
    c.errno("GET of slot 5 (absent)", get_log(vmfd, 5, b), libc::ENOENT);
    c.errno(
        "GET into an unmapped bitmap",
        get_log(vmfd, DATA_SLOT, bad),
        libc::EFAULT,
    );
    c.errno(
        "GET with an unmapped argument",
        // SAFETY: the kernel fails to read the argument; nothing here is touched.
        unsafe { ioctl_raw(fd, nr::KVM_GET_DIRTY_LOG, bad) },
        libc::EFAULT,
    );

    // CLEAR: the slot number, first_page's alignment, the slot, the range, the copy.
    let cl = |slot, first, num, bitmap| clear_log(vmfd, slot, first, num, bitmap);
    c.errno("CLEAR of the whole slot", cl(DATA_SLOT, 0, 200, b), 0);
    c.errno(
        "CLEAR of address space 1",
        cl(1 << 16 | 1, 0, 64, b),
        libc::EINVAL,
    );
    c.errno("CLEAR of slot 512", cl(512, 0, 64, b), libc::EINVAL);
    c.errno(
        "CLEAR at page 1 of an absent slot",
        cl(5, 1, 64, b),
        libc::EINVAL,
    );
    c.errno("CLEAR at page 63", cl(DATA_SLOT, 63, 64, b), libc::EINVAL);
    c.errno("CLEAR of slot 5 (absent)", cl(5, 0, 64, b), libc::ENOENT);
    c.errno(
        "CLEAR of slot 0 (not logging)",
        cl(0, 0, 64, b),
        libc::ENOENT,
    );
    c.errno("CLEAR past the end", cl(DATA_SLOT, 0, 201, b), libc::EINVAL);
    c.errno(
        "CLEAR from page 256",
        cl(DATA_SLOT, 256, 0, b),
        libc::EINVAL,
    );
    c.errno("CLEAR of 100 pages", cl(DATA_SLOT, 0, 100, b), libc::EINVAL);
    c.errno("CLEAR of pages 128..200", cl(DATA_SLOT, 128, 72, b), 0);
    c.errno("CLEAR of pages 64..128", cl(DATA_SLOT, 64, 64, b), 0);
    c.errno(
        "CLEAR of pages 128..264",
        cl(DATA_SLOT, 128, 136, b),
        libc::EINVAL,
    );
    c.errno(
        "CLEAR of nothing, unmapped bitmap",
        cl(DATA_SLOT, 192, 0, bad),
        0,
    );
    c.errno(
        "CLEAR from an unmapped bitmap",
        cl(DATA_SLOT, 0, 64, bad),
        libc::EFAULT,
    );
    c.errno(
        "CLEAR with an unmapped argument",
        // SAFETY: as above.
        unsafe { ioctl_raw(fd, nr::KVM_CLEAR_DIRTY_LOG, bad) },
        libc::EFAULT,
    );
    // CLEAR works without manual protection too, as in KVM.
    c.errno(
        "CLEAR without manual protection",
        cl(DATA_SLOT, 0, 64, b),
        0,
    );
    // A deleted slot takes its bitmap along.
    let mut gone = kvm_userspace_memory_region {
        slot: DATA_SLOT,
        ..Default::default()
    };
    c.errno(
        "delete the slot",
        ioctl_with(fd, nr::KVM_SET_USER_MEMORY_REGION, &mut gone),
        0,
    );
    c.errno(
        "GET of the deleted slot",
        get_log(vmfd, DATA_SLOT, b),
        libc::ENOENT,
    );
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_dirty_log",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("capability_and_its_options", capability_and_its_options),
            (
                "get_dirty_log_reports_exactly_the_pages_written",
                get_dirty_log_reports_exactly_the_pages_written,
            ),
            (
                "logging_turned_on_and_off_on_a_live_slot",
                logging_turned_on_and_off_on_a_live_slot,
            ),
            (
                "manual_protect_get_reads_and_clear_rearms",
                manual_protect_get_reads_and_clear_rearms,
            ),
            (
                "initially_set_reports_everything_until_cleared",
                initially_set_reports_everything_until_cleared,
            ),
            (
                "kernel_writes_to_guest_memory_are_logged",
                kernel_writes_to_guest_memory_are_logged,
            ),
            ("read_only_slot_logs_nothing", read_only_slot_logs_nothing),
            (
                "concurrent_writes_are_never_lost",
                concurrent_writes_are_never_lost,
            ),
            (
                "every_write_after_a_get_is_logged",
                every_write_after_a_get_is_logged,
            ),
            ("errnos_follow_kvm", errnos_follow_kvm),
        ],
    )
}
