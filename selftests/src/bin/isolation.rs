// SPDX-License-Identifier: GPL-2.0

//! A guest reaches its own memory and nothing else: not the host pages next to its slot,
//! not a read-only slot, not another VM's memory at the same guest-physical address, and
//! its vCPU cannot be driven from another process.

use kvm_bindings::{kvm_one_reg, kvm_userspace_memory_region, kvm_vcpu_init};
use kvm_ioctls::VcpuFd;
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, errno, guest_code, host_runs_guests, pin_to_cpu, run_or_skip, Cases,
    KernelLog, Outcome, TestResult,
};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

const SHUTDOWN: u32 = kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN;
const PAGE: usize = 4096;

// Write every byte of the data slot at 0x5000_0000 (512 KiB) with (3 + 7 * i) & 0xff, then
// write and read just outside it on both sides, then store a pair straddling its end.
guest_code!(
    guest_fill,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x5000, lsl #16",
    "movz x6, #0x5008, lsl #16",
    "mov x5, x4",
    "mov w3, #3",
    "1: strb w3, [x5]",
    "add x5, x5, #1",
    "add w3, w3, #7",
    "cmp x5, x6",
    "b.ne 1b",
    "sub x7, x4, #1",
    "strb w3, [x7]",
    "sub x7, x4, #8",
    "str x4, [x7]",
    "sub x7, x4, #0x1000",
    "str x4, [x7]",
    "strb w3, [x6]",
    "str x6, [x6]",
    "add x7, x6, #0xff8",
    "str x6, [x7]",
    "sub x7, x4, #8",
    "ldr x8, [x7]",
    "ldr x8, [x6]",
    "sub x7, x6, #8",
    "stp x3, x3, [x7]", // 24
    "str x8, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// Read the read-only slot at 0x6000_0000, then try every kind of write to it. An
// exception in the guest is reported at MMIO_BASE + 0x100 (ESR) and skipped.
guest_code!(
    guest_ro,
    "movz x1, #0x1000, lsl #16",
    "movz x5, #0x6000, lsl #16",
    "ldr x2, [x5]",
    "str x2, [x1]",
    "strb w2, [x5, #1]",
    "strh w2, [x5, #2]",
    "str w2, [x5, #4]",
    "str x2, [x5, #0x1ff8]",
    "stp x2, x2, [x5, #16]", // 8: no syndrome
    "ldxr x3, [x5]",         // 9: a read: fine
    "stxr w4, x2, [x5]",     // 10
    "dc zva, x5",            // 11
    "ldr x3, [x5]",
    "str x3, [x1, #8]",
    "ldr x3, [x5, #0x1ff8]",
    "str x3, [x1, #16]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// At VBAR_EL1 + 0x200 (MEM_BASE + 0xa00): report ESR_EL1, step over the instruction.
guest_code!(
    guest_skip,
    "mrs x16, esr_el1",
    "str x16, [x1, #0x100]",
    "mrs x16, elr_el1",
    "add x16, x16, #4",
    "msr elr_el1, x16",
    "eret"
);

// 300 rounds: write 2048 words at 0x6000_0000 with x0 ^ (round << 32) ^ index, read them
// back, report the round. Then read 0x7000_0000 (memory only in the first VM) and report
// it. A mismatch reports the index (+ 0x100) and the value found (+ 0x108).
guest_code!(
    guest_pattern,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x6000, lsl #16",
    "mov x2, #0",
    "movz x7, #300",
    "1: mov x5, #0",
    "2: eor x6, x0, x2, lsl #32",
    "eor x6, x6, x5",
    "str x6, [x4, x5, lsl #3]",
    "add x5, x5, #1",
    "cmp x5, #2048",
    "b.ne 2b",
    "mov x5, #0",
    "3: eor x6, x0, x2, lsl #32",
    "eor x6, x6, x5",
    "ldr x8, [x4, x5, lsl #3]",
    "cmp x6, x8",
    "b.ne 9f",
    "add x5, x5, #1",
    "cmp x5, #2048",
    "b.ne 3b",
    "str x2, [x1]",
    "add x2, x2, #1",
    "cmp x2, x7",
    "b.ne 1b",
    "movz x9, #0x7000, lsl #16",
    "ldr x8, [x9]",
    "str x8, [x1, #8]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b .",
    "9: str x5, [x1, #0x100]",
    "str x8, [x1, #0x108]",
    "b ."
);

// Report x5, then read 0x5000_0000 and report it.
guest_code!(
    guest_report,
    "movz x1, #0x1000, lsl #16",
    "str x5, [x1]",
    "movz x7, #0x5000, lsl #16",
    "ldr x6, [x7]",
    "str x6, [x1, #8]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

fn add_slot(
    vm: &TestVm,
    slot: u32,
    flags: u32,
    gpa: u64,
    size: usize,
    host: *mut u8,
) -> Result<(), String> {
    let region = kvm_userspace_memory_region {
        slot,
        flags,
        guest_phys_addr: gpa,
        memory_size: size as u64,
        userspace_addr: host as u64,
    };
    // SAFETY: callers keep `host` mapped for as long as the VM lives.
    unsafe { vm.vm.set_user_memory_region(region) }.map_err(|e| format!("memslot {slot}: {e}"))
}

/// Runs until SYSTEM_OFF, answering MMIO reads with `read_value`; a run failing with
/// ENOSYS (an access without syndrome) is recorded as `Other("ENOSYS at pc")` and
/// stepped over.
fn exits(vcpu: &mut VcpuFd, read_value: u64) -> Result<Vec<Exit>, String> {
    let mut out = Vec::new();
    while out.len() < 100 {
        match run_errno(vcpu, read_value) {
            Ok(Exit::SystemEvent(SHUTDOWN)) => return Ok(out),
            Ok(e) => out.push(e),
            Err(libc::ENOSYS) => {
                let pc = get_reg(vcpu, core_reg_pc())?;
                out.push(Exit::Other(format!("ENOSYS at {pc:#x}")));
                set_reg(vcpu, core_reg_pc(), pc + 4)?;
            }
            Err(e) => return Err(format!("KVM_RUN: errno {e} after {out:x?}")),
        }
    }
    Err(format!("no SYSTEM_OFF after {out:x?}"))
}

fn wr(addr: u64, value: u64, len: usize) -> Exit {
    Exit::MmioWrite(addr, value.to_le_bytes()[..len].to_vec())
}

fn guard_pages_around_a_slot_stay_intact() -> TestResult {
    const GUARD: usize = 4 * PAGE;
    const DATA: u64 = 0x5000_0000;
    const SIZE: usize = 512 * 1024;
    let end = DATA + SIZE as u64;
    let canary = |off: usize| 0xa5 ^ (off / PAGE) as u8;
    // One mapping: guard pages, the slot, guard pages. Only the middle is registered.
    let region = GuestMem::new(GUARD + SIZE + GUARD)?;
    let guards = (0..GUARD).chain(GUARD + SIZE..2 * GUARD + SIZE);
    for off in guards.clone() {
        // SAFETY: within the mapping.
        unsafe { region.ptr.add(off).write(canary(off)) };
    }
    let vm = TestVm::new(1 << 16, guest_fill())?;
    // SAFETY (of the pointer): within `region`, which outlives `vm`.
    add_slot(&vm, 1, 0, DATA, SIZE, unsafe { region.ptr.add(GUARD) })?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let read = 0x0bad_cafe_0bad_cafe;
    let got = exits(&mut vcpu, read)?;
    let pc = |k: u64| MEM_BASE + 4 * k;
    let mut want = vec![
        wr(DATA - 1, 3, 1),
        wr(DATA - 8, DATA, 8),
        wr(DATA - 0x1000, DATA, 8),
        wr(end, 3, 1),
        wr(end, end, 8),
        wr(end + 0xff8, end, 8),
        Exit::MmioRead(DATA - 8, 8),
        Exit::MmioRead(end, 8),
    ];
    // The pair straddling the end has no syndrome: KVM_RUN fails with ENOSYS (as KVM),
    // and the guest is stepped over it. Its lower half may or may not have been written.
    let straddle = Exit::Other(format!("ENOSYS at {:#x}", pc(24)));
    if got.get(want.len()) == Some(&straddle) {
        want.push(straddle);
        println!("# the pair straddling the slot's end: KVM_RUN failed with ENOSYS");
    }
    want.push(wr(MMIO_BASE, read, 8));
    check_eq!(got, want);
    // Every byte of the slot holds the guest's pattern (the straddling pair's lower half
    // aside), and every guard byte its canary.
    let mut c = Cases::new();
    for i in 0..SIZE {
        // SAFETY: within the mapping; the guest has stopped.
        let b = unsafe { region.ptr.add(GUARD + i).read() };
        let pattern = 3u8.wrapping_add(7u8.wrapping_mul(i as u8));
        let pair = 0x0038_0003u64.to_le_bytes()[i % 8]; // w3 after the loop, as x3
        if b != pattern && !(i >= SIZE - 8 && b == pair) {
            c.fail(format!(
                "slot byte {i:#x}: {b:#04x}, expected {pattern:#04x}"
            ));
            break;
        }
    }
    for off in guards {
        // SAFETY: within the mapping.
        let b = unsafe { region.ptr.add(off).read() };
        if b != canary(off) {
            c.fail(format!(
                "guard byte at {:+#x} from the slot changed to {b:#04x}",
                off as i64 - GUARD as i64
            ));
            break;
        }
    }
    drop(vcpu);
    drop(vm);
    c.finish()
}

fn read_only_slot_stays_unmodified() -> TestResult {
    const RO: u64 = 0x6000_0000;
    let backing = GuestMem::new(2 * PAGE)?;
    for i in 0..2 * PAGE / 8 {
        backing.write_u64(8 * i, 0x1111_0000_0000_0000 | i as u64);
    }
    // The VMM's own mapping is read-only too: rkvm must not need to write it.
    // SAFETY: changes the protection of a mapping this test owns.
    if unsafe { libc::mprotect(backing.ptr.cast(), 2 * PAGE, libc::PROT_READ) } != 0 {
        return Err(format!("mprotect: errno {}", errno()));
    }
    let before: Vec<u64> = (0..2 * PAGE / 8).map(|i| backing.read_u64(8 * i)).collect();
    let vm = TestVm::new(1 << 16, guest_ro())?;
    vm.mem.write(0xa00, guest_skip());
    add_slot(
        &vm,
        1,
        kvm_bindings::KVM_MEM_READONLY,
        RO,
        2 * PAGE,
        backing.ptr,
    )?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    set_reg(&vcpu, sys_reg(3, 0, 12, 0, 0), MEM_BASE + 0x800)?; // VBAR_EL1
    let got = exits(&mut vcpu, 0)?;
    let w0 = before[0];
    let pc = |k: u64| MEM_BASE + 4 * k;
    let mut rest = got.as_slice();
    let mut take = |what: &str| -> Result<Exit, String> {
        let (e, tail) = rest
            .split_first()
            .ok_or(format!("the exits ended before {what}"))?;
        rest = tail;
        Ok(e.clone())
    };
    check_eq!(take("the first report")?, wr(MMIO_BASE, w0, 8));
    check_eq!(take("strb")?, wr(RO + 1, w0, 1));
    check_eq!(take("strh")?, wr(RO + 2, w0, 2));
    check_eq!(take("str w")?, wr(RO + 4, w0, 4));
    check_eq!(take("str x")?, wr(RO + 0x1ff8, w0, 8));
    check_eq!(take("stp")?, Exit::Other(format!("ENOSYS at {:#x}", pc(8))));
    // The store-exclusive (ENOSYS, an MMIO write, or failing without an access) and DC
    // ZVA (an alignment fault in the guest, Device memory with the MMU off, or ENOSYS:
    // no syndrome) are free to differ; none may change the memory, and the guest must
    // then read the original values.
    let mut tail_events = Vec::new();
    loop {
        let e = take("the final reports")?;
        if let Exit::MmioWrite(a, _) = &e {
            if *a == MMIO_BASE + 8 {
                check_eq!(e, wr(MMIO_BASE + 8, w0, 8));
                break;
            }
        }
        check!(
            matches!(&e, Exit::Other(s) if s.starts_with("ENOSYS"))
                || matches!(&e, Exit::MmioWrite(a, _) if (RO..RO + 64).contains(a) || *a == MMIO_BASE + 0x100),
            "unexpected exit {e:x?}"
        );
        tail_events.push(format!("{e:x?}"));
    }
    println!("# stxr and dc zva on the read-only slot: {tail_events:?}");
    check_eq!(
        take("the last report")?,
        wr(MMIO_BASE + 16, before[0x1ff8 / 8], 8)
    );
    check!(rest.is_empty(), "more exits: {rest:x?}");
    let after: Vec<u64> = (0..2 * PAGE / 8).map(|i| backing.read_u64(8 * i)).collect();
    check!(after == before, "the read-only slot's memory changed");
    Ok(Outcome::Pass)
}

fn two_vms_see_only_their_own_memory() -> TestResult {
    const DATA: u64 = 0x6000_0000;
    const SECRET: u64 = 0x5ec2_e7c0_ffee_1234;
    let cpu = first_cpu();
    let mut threads = Vec::new();
    for k in 0..2u64 {
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            // Both vCPU threads share one CPU, so the VMs' entries interleave on it.
            pin_to_cpu(cpu)?;
            let vm = TestVm::new(1 << 16, guest_pattern())?;
            let data = GuestMem::new(4 * PAGE)?;
            add_slot(&vm, 1, 0, DATA, 4 * PAGE, data.ptr)?;
            let secret = GuestMem::new(PAGE)?;
            secret.write_u64(0, SECRET);
            if k == 0 {
                add_slot(&vm, 2, 0, 0x7000_0000, PAGE, secret.ptr)?;
            }
            let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
            let base = (k + 1) * 0x0101_0101_0101_0101;
            set_reg(&vcpu, core_reg_x(0), base)?;
            for round in 0..300u64 {
                match run(&mut vcpu, 0)? {
                    Exit::MmioWrite(a, d) if a == MMIO_BASE && le_value(&d) == round => {}
                    Exit::MmioWrite(a, d) if a == MMIO_BASE + 0x100 => {
                        let found = run_to_write(&mut vcpu)?.1;
                        return Err(format!(
                            "VM {k}, round {round}: word {} holds {found:#x}",
                            le_value(&d)
                        ));
                    }
                    other => return Err(format!("VM {k}, round {round}: exit {other:x?}")),
                }
            }
            // 0x7000_0000 is memory only in VM 0; VM 1 gets an MMIO exit there.
            if k == 1 {
                let r = run(&mut vcpu, 0)?;
                if r != Exit::MmioRead(0x7000_0000, 8) {
                    return Err(format!(
                        "VM 1 read VM 0's secret address without an MMIO exit: {r:x?}"
                    ));
                }
            }
            let want = (MMIO_BASE + 8, if k == 0 { SECRET } else { 0 });
            let r = run_to_write(&mut vcpu)?;
            if r != want {
                return Err(format!(
                    "VM {k}: read {r:x?} at 0x7000_0000, expected {want:x?}"
                ));
            }
            if run(&mut vcpu, 0)? != Exit::SystemEvent(SHUTDOWN) {
                return Err(format!("VM {k}: no SYSTEM_OFF"));
            }
            for j in 0..2048u64 {
                let v = data.read_u64(8 * j as usize);
                let want = base ^ (299 << 32) ^ j;
                if v != want {
                    return Err(format!(
                        "VM {k}: word {j} of its memory is {v:#x}, expected {want:#x}"
                    ));
                }
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join().map_err(|_| "a VM thread panicked")??;
    }
    Ok(Outcome::Pass)
}

fn first_cpu() -> usize {
    // SAFETY: a zeroed cpu_set_t, filled in by the kernel.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
    // SAFETY: every index is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .find(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .unwrap_or(0)
}

fn vcpu_fd_in_another_process() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_report())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    set_reg(&vcpu, core_reg_x(5), 0x1234)?;
    let child_mem = GuestMem::new(PAGE)?;
    child_mem.write_u64(0, 0xc41d);
    // The child's errnos (MAP_SHARED survives the fork).
    let shared = GuestMem::new_shared(PAGE)?;
    let (m, v) = (vm.vm.as_raw_fd(), vcpu.as_raw_fd());
    let mut value = 0xdeadu64;
    let mut reg = kvm_one_reg {
        id: core_reg_x(5),
        addr: &mut value as *mut u64 as u64,
    };
    let mut region = kvm_userspace_memory_region {
        slot: 1,
        flags: 0,
        guest_phys_addr: 0x5000_0000,
        memory_size: PAGE as u64,
        userspace_addr: child_mem.ptr as u64,
    };
    let mut init = kvm_vcpu_init {
        target: 5,
        ..Default::default()
    }; // GENERIC_V8
    let calls: [(&str, i32, u64, u64); 6] = [
        ("KVM_RUN", v, nr::KVM_RUN, 0),
        (
            "KVM_SET_ONE_REG(x5)",
            v,
            nr::KVM_SET_ONE_REG,
            &mut reg as *mut _ as u64,
        ),
        (
            "KVM_GET_ONE_REG(x5)",
            v,
            nr::KVM_GET_ONE_REG,
            &mut reg as *mut _ as u64,
        ),
        (
            "KVM_ARM_VCPU_INIT",
            v,
            nr::KVM_ARM_VCPU_INIT,
            &mut init as *mut _ as u64,
        ),
        (
            "KVM_SET_USER_MEMORY_REGION",
            m,
            nr::KVM_SET_USER_MEMORY_REGION,
            &mut region as *mut _ as u64,
        ),
        ("KVM_CREATE_VCPU", m, nr::KVM_CREATE_VCPU, 1),
    ];
    // SAFETY: this test runs no other threads; the child only makes system calls and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: errno {}", errno()));
    }
    if pid == 0 {
        for (i, (_, fd, cmd, arg)) in calls.iter().enumerate() {
            // SAFETY: `arg` is an integer or points at the child's copy of a valid struct.
            let r = unsafe { ioctl_raw(*fd, *cmd, *arg) };
            // SAFETY: within the shared page.
            unsafe {
                shared
                    .ptr
                    .cast::<i32>()
                    .add(i)
                    .write_volatile(r.err().unwrap_or(0))
            };
        }
        // SAFETY: leaves the child without the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut c = Cases::new();
    c.eq("the child's exit status", status, 0);
    for (i, (what, ..)) in calls.iter().enumerate() {
        // SAFETY: within the shared page, written by the child, which has exited.
        let got = unsafe { shared.ptr.cast::<i32>().add(i).read_volatile() };
        c.errno(
            &format!("{what} from the child"),
            if got == 0 { Ok(0) } else { Err(got) },
            libc::EIO,
        );
    }
    // The owner's vCPU is untouched: x5 as the parent set it, and no memory at the
    // address the child tried to map (an MMIO exit).
    c.eq(
        "x5 reported by the guest",
        run_to_write(&mut vcpu)?,
        (MMIO_BASE, 0x1234),
    );
    c.eq(
        "the read at 0x5000_0000",
        run(&mut vcpu, 0x77)?,
        Exit::MmioRead(0x5000_0000, 8),
    );
    c.eq(
        "the value the guest read",
        run_to_write(&mut vcpu)?,
        (MMIO_BASE + 8, 0x77),
    );
    c.eq("the end", run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
    c.finish()
}

static LOG: Mutex<Option<KernelLog>> = Mutex::new(None);

fn kernel_log_clean() -> TestResult {
    let mut log = LOG.lock().map_err(|_| "log lock poisoned")?;
    log.as_mut()
        .ok_or("/dev/kmsg was not opened")?
        .check_clean()?;
    Ok(Outcome::Pass)
}

fn main() {
    match KernelLog::mark() {
        Ok(log) => {
            if let Ok(mut l) = LOG.lock() {
                *l = Some(log);
            }
        }
        Err(e) => println!("# /dev/kmsg: {e}"),
    }
    run_or_skip(
        "rkvm_isolation",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            (
                "guard_pages_around_a_slot_stay_intact",
                guard_pages_around_a_slot_stay_intact,
            ),
            (
                "read_only_slot_stays_unmodified",
                read_only_slot_stays_unmodified,
            ),
            (
                "two_vms_see_only_their_own_memory",
                two_vms_see_only_their_own_memory,
            ),
            ("vcpu_fd_in_another_process", vcpu_fd_in_another_process),
            ("kernel_log_clean", kernel_log_clean),
        ],
    )
}
