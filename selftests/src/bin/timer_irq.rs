// SPDX-License-Identifier: GPL-2.0

//! The guest's arch timers and blocking WFI: timer registers through ONE_REG and their
//! offsets, the emulated physical timer, the virtual timer firing while the guest waits
//! in WFI with the vCPU's thread asleep (its CPU time measured against wall time), WFI
//! woken by `KVM_IRQ_LINE` from another thread or interrupted by a signal, a `SUSPENDED`
//! vCPU woken by an interrupt, and the timer's level interrupt taken once when the
//! guest's handler exits before silencing the timer.

use kvm_bindings as kb;
use kvm_bindings::{
    kvm_device_attr, kvm_mp_state, KVM_ARM_VCPU_POWER_OFF, KVM_SYSTEM_EVENT_WAKEUP,
};
use kvm_ioctls::{DeviceFd, VcpuExit, VcpuFd};
use rkvm_selftests::{
    check, check_eq, guest_code, host_runs_guests, run_or_skip,
    vmm::{
        core_reg_pc, core_reg_x, create_vgic, get_reg,
        nr::{KVM_GET_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR, KVM_SET_DEVICE_ATTR},
        run_to_write, set_reg, sys_reg, TestVm, MEM_BASE, MMIO_BASE,
    },
    Cases, Kick, Outcome, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

// KVM_REG_ARM_{,P}TIMER_*: kvm-bindings lacks the ARM64_SYS_REG() ids. As in KVM,
// TIMER_CNT and TIMER_CVAL have each other's encodings.
const TIMER_CTL: u64 = sys_reg(3, 3, 14, 3, 1);
const TIMER_CNT: u64 = sys_reg(3, 3, 14, 3, 2);
const TIMER_CVAL: u64 = sys_reg(3, 3, 14, 0, 2);
const PTIMER_CTL: u64 = sys_reg(3, 3, 14, 2, 1);
const PTIMER_CVAL: u64 = sys_reg(3, 3, 14, 2, 2);
const PTIMER_CNT: u64 = sys_reg(3, 3, 14, 0, 1);
/// `KVM_IRQ_LINE`'s irq for SPI 33 (INTID 33).
const SPI_33: u32 = (kb::KVM_ARM_IRQ_TYPE_SPI << kb::KVM_ARM_IRQ_TYPE_SHIFT) | 33;

/// Counter frequency, as the guest sees it too.
fn cntfrq() -> u64 {
    let v: u64;
    // SAFETY: CNTFRQ_EL0 is readable at EL0 on Linux.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v) };
    v
}

/// The calling thread's CPU time.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Counter `name` of vCPU 0 in [`stats`]'s text.
fn stat(text: &str, name: &str) -> Option<u64> {
    text.split(", ")
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// vCPU 0's debugfs counters (this process has one VM at a time), for the log.
fn stats() -> String {
    let prefix = format!("{}-", std::process::id());
    let Ok(dir) = std::fs::read_dir("/sys/kernel/debug/rkvm") else {
        return String::new();
    };
    for e in dir.filter_map(Result::ok) {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let text = std::fs::read_to_string(e.path().join("vcpu0/stats")).unwrap_or_default();
            return text
                .lines()
                .filter(|l| {
                    [
                        "exits ",
                        "exits_wfx",
                        "exits_irq",
                        "wfi_sleeps",
                        "timer_arms",
                    ]
                    .iter()
                    .any(|k| l.starts_with(k))
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
    }
    String::new()
}

const NO_VGIC: &str = "no in-kernel vGICv3 (WFI does not block without one)";

// Guest: enables group 1 in the distributor and the CPU interface, PPI 27 (virtual
// timer) and SPI 33 routed to vCPU 0, all interrupts masked in PSTATE (WFI still wakes).
// Then reports 0 at MMIO_BASE and goes on at `x20`.
guest_code!(
    guest_gic_setup,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x0800, lsl #16",
    "mov w3, #0x12",
    "str w3, [x2]", // GICD_CTLR
    "mov w3, #2",
    "str w3, [x2, #0x84]",
    "str w3, [x2, #0x104]", // SPI 33 group 1, enabled
    "add x4, x2, #0x6000",
    "str xzr, [x4, #0x108]", // IROUTER33 = vCPU 0
    "movz x2, #0x080a, lsl #16",
    "str wzr, [x2, #0x14]", // GICR_WAKER
    "movz x2, #0x080b, lsl #16",
    "movz w3, #0x800, lsl #16",
    "str w3, [x2, #0x80]",
    "str w3, [x2, #0x100]", // PPI 27 group 1, enabled
    "mov x3, #7",
    "msr s3_0_c12_c12_5, x3", // ICC_SRE_EL1
    "mov x3, #0xff",
    "msr s3_0_c4_c6_0, x3", // ICC_PMR_EL1
    "mov x3, #1",
    "msr s3_0_c12_c12_7, x3",
    "isb", // ICC_IGRPEN1_EL1
    "str xzr, [x1]",
    "br x20"
);

// Virtual timer `x0` ticks ahead, then WFI until its ISTATUS; reports the lateness.
guest_code!(
    guest_vtimer_wfi,
    "mrs x4, cntvct_el0",
    "add x4, x4, x0",
    "msr cntv_cval_el0, x4",
    "mov x3, #1",
    "msr cntv_ctl_el0, x3",
    "isb",
    "mov x6, #0",
    "1:",
    "wfi",
    "add x6, x6, #1",
    "mrs x3, cntv_ctl_el0",
    "tbz x3, #2, 1b",
    "mrs x5, cntvct_el0",
    "sub x5, x5, x4",
    "str x5, [x1, #8]",
    "str x6, [x1, #16]",
    "2:",
    "b 2b"
);

// A handler that exits (an MMIO report) after acknowledging the virtual timer's PPI and
// before masking the timer, then masks it (no trap) and EOIs: reports the INTID, then
// ICC_HPPIR1_EL1 and ICC_IAR1_EL1, which must show nothing more pending.
guest_code!(
    guest_vtimer_exit_in_handler,
    "mrs x4, cntvct_el0",
    "sub x4, x4, #1",
    "msr cntv_cval_el0, x4",
    "mov x3, #1",
    "msr cntv_ctl_el0, x3",
    "isb",
    "1:",
    "wfi",
    "mrs x5, s3_0_c12_c12_0",
    "cmp x5, #27",
    "b.ne 1b", // ICC_IAR1_EL1
    "str x5, [x1, #8]",
    "mov x3, #2",
    "msr cntv_ctl_el0, x3",
    "isb",
    "msr s3_0_c12_c12_1, x5",
    "isb", // ICC_EOIR1_EL1
    "mrs x6, s3_0_c12_c12_2",
    "str x6, [x1, #16]", // ICC_HPPIR1_EL1
    "mrs x6, s3_0_c12_c12_0",
    "str x6, [x1, #24]",
    "2:",
    "b 2b"
);

// WFI until SPI 33 is the highest pending interrupt; reports it.
guest_code!(
    guest_wfi_spi,
    "1:",
    "wfi",
    "mrs x3, s3_0_c12_c12_2",
    "cmp x3, #33",
    "b.ne 1b", // ICC_HPPIR1_EL1
    "str x3, [x1, #8]",
    "2:",
    "b 2b"
);

// WFI forever.
guest_code!(guest_wfi_forever, "1:", "wfi", "b 1b");

// The physical timer: CNTP_TVAL = x0 ticks, enable, spin on ISTATUS; report CTL, the
// TVAL seen after expiry (negative), CNTPCT, then CVAL written/read back.
guest_code!(
    guest_ptimer,
    "movz x1, #0x1000, lsl #16",
    "msr cntp_tval_el0, x0",
    "mov x3, #1",
    "msr cntp_ctl_el0, x3",
    "isb",
    "1:",
    "mrs x3, cntp_ctl_el0",
    "tbz x3, #2, 1b",
    "str x3, [x1]",
    "mrs x3, cntp_tval_el0",
    "str x3, [x1, #8]",
    "mrs x3, cntpct_el0",
    "str x3, [x1, #16]",
    "movz x3, #0xbeef",
    "msr cntp_cval_el0, x3",
    "mrs x3, cntp_cval_el0",
    "str x3, [x1, #24]",
    "mrs x3, cntp_ctl_el0",
    "str x3, [x1, #32]",
    "mrs x3, cntvct_el0",
    "str x3, [x1, #40]",
    "2:",
    "b 2b"
);

/// The vCPU's MMIO writes until `n` of them happened (guests report one value each).
fn writes(vcpu: &mut VcpuFd, n: usize) -> Result<Vec<(u64, u64)>, String> {
    (0..n).map(|_| run_to_write(vcpu)).collect()
}

fn timer_registers_round_trip() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_wfi_forever())?;
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    for (id, value) in [
        (TIMER_CVAL, 0x1234_5678_9abc),
        (PTIMER_CVAL, 0xfeed_0000),
        (TIMER_CTL, 3),
        (PTIMER_CTL, 2),
    ] {
        set_reg(&v, id, value)?;
        check_eq!(get_reg(&v, id)?, value);
    }
    // ISTATUS is read-only: a write of it is dropped; the physical timer's is computed.
    // A CVAL of 1 is in the past whatever the counter's frequency and the host's uptime
    // (0xfeed_0000 is not on a 62.5 MHz counter in the first 68 s, e.g. on Cortex-A72).
    set_reg(&v, PTIMER_CVAL, 1)?;
    set_reg(&v, PTIMER_CTL, 0x7)?;
    check_eq!(get_reg(&v, PTIMER_CTL)?, 0x7); // enabled, masked, CVAL in the past: ISTATUS
    set_reg(&v, PTIMER_CVAL, u64::MAX)?;
    check_eq!(get_reg(&v, PTIMER_CTL)?, 0x3);
    set_reg(&v, TIMER_CTL, 0x5)?;
    check_eq!(get_reg(&v, TIMER_CTL)?, 0x1);
    // Every timer register is in the list.
    let mut list = kvm_bindings::RegList::new(500).map_err(|e| format!("{e:?}"))?;
    v.get_reg_list(&mut list)
        .map_err(|e| format!("KVM_GET_REG_LIST: {e}"))?;
    for id in [
        TIMER_CTL,
        TIMER_CNT,
        TIMER_CVAL,
        PTIMER_CTL,
        PTIMER_CNT,
        PTIMER_CVAL,
    ] {
        check!(list.as_slice().contains(&id), "{id:#x} not listed");
    }
    Ok(Outcome::Pass)
}

// Reports CNTVCT and CNTPCT.
guest_code!(
    guest_counters,
    "movz x1, #0x1000, lsl #16",
    "mrs x3, cntvct_el0",
    "str x3, [x1]",
    "mrs x3, cntpct_el0",
    "str x3, [x1, #8]",
    "1:",
    "b 1b"
);

fn counter_offsets_are_vm_wide() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_counters())?;
    let v0 = vm.vcpu(0, MEM_BASE, 0)?;
    let mut v1 = vm.vcpu(1, MEM_BASE, 0)?;
    let tick = cntfrq(); // one second
                         // Writing CNT on one vCPU moves the VM's offset: the other sees the same count.
    set_reg(&v0, TIMER_CNT, 1000 * tick)?;
    let c1 = get_reg(&v1, TIMER_CNT)?;
    check!(
        (1000 * tick..1000 * tick + tick).contains(&c1),
        "vCPU 1 reads CNT {c1:#x}"
    );
    set_reg(&v0, PTIMER_CNT, 5 * tick)?;
    let p1 = get_reg(&v1, PTIMER_CNT)?;
    check!(
        (5 * tick..6 * tick).contains(&p1),
        "vCPU 1 reads the physical CNT {p1:#x}"
    );
    // The guest's own counters agree (CNTPCT is trapped and offset).
    let w = writes(&mut v1, 2)?;
    check!(
        (1000 * tick..1001 * tick + tick).contains(&w[0].1),
        "guest CNTVCT {:#x}",
        w[0].1
    );
    check!(
        (5 * tick..6 * tick + tick).contains(&w[1].1),
        "guest CNTPCT {:#x}",
        w[1].1
    );
    // Counters wrap as KVM's u64 arithmetic does.
    set_reg(&v0, TIMER_CNT, u64::MAX - 10)?;
    let c = get_reg(&v0, TIMER_CNT)?;
    check!(
        c >= u64::MAX - 10 || c < tick,
        "CNT after writing u64::MAX - 10: {c:#x}"
    );
    Ok(Outcome::Pass)
}

fn physical_timer_is_emulated() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_ptimer())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let ticks = cntfrq() / 100; // 10 ms
    set_reg(&v, core_reg_x(0), ticks)?;
    let start = Instant::now();
    let w = writes(&mut v, 6)?;
    check!(
        start.elapsed() >= Duration::from_millis(9),
        "ISTATUS after {:?}",
        start.elapsed()
    );
    check_eq!(w[0].1, 0x5); // ENABLE | ISTATUS
    check!(
        w[1].1 >= 0x8000_0000 && w[1].1 <= 0xffff_ffff,
        "TVAL after expiry {:#x}",
        w[1].1
    );
    check!(w[2].1 != 0, "CNTPCT reads 0");
    check_eq!(w[3].1, 0xbeef);
    // CVAL far in the past: ISTATUS stays set.
    check_eq!(w[4].1, 0x5);
    check_eq!(get_reg(&v, PTIMER_CVAL)?, 0xbeef);
    check_eq!(get_reg(&v, PTIMER_CTL)?, 0x5);
    Ok(Outcome::Pass)
}

/// A vCPU 0 with the vGIC set up by the guest, about to run `next` (guest code at 0x400).
fn gic_vm(next: &[u8]) -> Result<Option<(TestVm, VcpuFd, DeviceFd)>, String> {
    let vm = TestVm::new(1 << 20, guest_gic_setup())?;
    vm.mem.write(0x400, next);
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let Some(dev) = create_vgic(&vm.vm)? else {
        return Ok(None);
    };
    set_reg(&v, core_reg_x(20), MEM_BASE + 0x400)?;
    check_eq!(run_to_write(&mut v)?, (MMIO_BASE, 0));
    Ok(Some((vm, v, dev)))
}

/// Runs `vcpu` to its next MMIO write, returning it with the thread's CPU time and the
/// wall time the run took.
fn timed_run(vcpu: &mut VcpuFd) -> Result<((u64, u64), Duration, Duration), String> {
    let (cpu0, wall0) = (thread_cpu_time(), Instant::now());
    let w = run_to_write(vcpu)?;
    Ok((w, thread_cpu_time() - cpu0, wall0.elapsed()))
}

fn vtimer_fires_in_wfi_while_the_thread_sleeps() -> TestResult {
    let Some((_vm, mut v, _dev)) = gic_vm(guest_vtimer_wfi())? else {
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    let period = Duration::from_millis(400);
    set_reg(
        &v,
        core_reg_x(0),
        cntfrq() * period.as_millis() as u64 / 1000,
    )?;
    let ((addr, late), cpu, wall) = timed_run(&mut v)?;
    check_eq!(addr, MMIO_BASE + 8);
    let wakeups = run_to_write(&mut v)?.1;
    let s = stats();
    println!("# timer {period:?}: woke after {wall:?}, thread CPU {cpu:?}, {late} ticks late, {wakeups} WFI wake-ups; {s}");
    check!(
        wall >= period - Duration::from_millis(20),
        "woke after {wall:?}"
    );
    check!(wall < period * 4, "woke only after {wall:?}");
    // A spinning thread would use about all of it. (The emulated host charges the time
    // its emulator is descheduled to whatever runs, so the bound leaves room for that.)
    check!(
        cpu * 2 < wall,
        "the vCPU thread used {cpu:?} of CPU in {wall:?}: not sleeping"
    );
    check!(
        wakeups < 50,
        "{wakeups} WFI returns for one timer interrupt"
    );
    // It slept in the kernel rather than returning to the guest over and over.
    check!(
        stat(&s, "wfi_sleeps").is_some_and(|n| (1..50).contains(&n)),
        "counters: {s}"
    );
    check!(
        stat(&s, "timer_arms").is_some_and(|n| n >= 1),
        "no hrtimer armed: {s}"
    );
    Ok(Outcome::Pass)
}

/// A level interrupt still asserted when the vCPU exits inside the guest's handler (here
/// the virtual timer's, before the handler masks the timer) comes back active only: listed
/// pending and active, the guest would take it a second time at its EOI although the
/// handler silenced the timer meanwhile (KVM never lists a level interrupt so).
fn vtimer_silenced_in_its_handler_is_taken_once() -> TestResult {
    let Some((_vm, mut v, _dev)) = gic_vm(guest_vtimer_exit_in_handler())? else {
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    check_eq!(run_to_write(&mut v)?, (MMIO_BASE + 8, 27));
    check_eq!(
        writes(&mut v, 2)?,
        vec![(MMIO_BASE + 16, 1023), (MMIO_BASE + 24, 1023)]
    );
    Ok(Outcome::Pass)
}

fn wfi_woken_by_irq_line_from_another_thread() -> TestResult {
    let Some((vm, mut v, _dev)) = gic_vm(guest_wfi_spi())? else {
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    let delay = Duration::from_millis(300);
    // Measured from before the raising thread starts, as for the signal test below.
    let start = Instant::now();
    let raised = std::thread::scope(|s| {
        let t = s.spawn(|| {
            std::thread::sleep(delay);
            vm.vm
                .set_irq_line(SPI_33, true)
                .map_err(|e| format!("KVM_IRQ_LINE: {e}"))
        });
        let r = timed_run(&mut v);
        t.join()
            .map_err(|_| "irq thread panicked".to_string())
            .and_then(|x| x)?;
        r
    });
    let ((addr, intid), cpu, _) = raised?;
    let wall = start.elapsed();
    println!(
        "# SPI after {delay:?}: woke after {wall:?}, thread CPU {cpu:?}; {}",
        stats()
    );
    check_eq!((addr, intid), (MMIO_BASE + 8, 33));
    check!(
        wall >= delay - Duration::from_millis(20),
        "woke after {wall:?}"
    );
    check!(
        cpu * 2 < wall,
        "the vCPU thread used {cpu:?} of CPU in {wall:?}: not sleeping"
    );
    Ok(Outcome::Pass)
}

fn wfi_interrupted_by_a_signal() -> TestResult {
    let Some((_vm, mut v, _dev)) = gic_vm(guest_wfi_forever())? else {
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    let kick = Kick::new()?;
    let delay = Duration::from_millis(300);
    // The clocks start before the timer: a thread preempted in between (a loaded
    // emulated host) would otherwise see the signal "early".
    let (cpu0, wall0) = (thread_cpu_time(), Instant::now());
    kick.arm(delay);
    let r = v.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    let (cpu, wall) = (thread_cpu_time() - cpu0, wall0.elapsed());
    kick.disarm();
    println!(
        "# signal after {delay:?}: KVM_RUN returned after {wall:?}, thread CPU {cpu:?}; {}",
        stats()
    );
    check_eq!(r, Err(libc::EINTR));
    check_eq!(v.get_kvm_run().exit_reason, kvm_bindings::KVM_EXIT_INTR);
    check!(
        wall >= delay - Duration::from_millis(20),
        "returned after {wall:?}"
    );
    check!(
        cpu * 2 < wall,
        "the vCPU thread used {cpu:?} of CPU in {wall:?}: not sleeping"
    );
    // The guest is still in its WFI loop, and runs on.
    let pc = get_reg(&v, core_reg_pc())?;
    check!(
        (MEM_BASE + 0x400..MEM_BASE + 0x408).contains(&pc),
        "PC {pc:#x}"
    );
    Ok(Outcome::Pass)
}

fn suspended_vcpu_wakes_on_an_interrupt() -> TestResult {
    let Some((vm, mut v, _dev)) = gic_vm(guest_wfi_forever())? else {
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    v.set_mp_state(kvm_mp_state {
        mp_state: kb::KVM_MP_STATE_SUSPENDED,
    })
    .map_err(|e| format!("SET_MP_STATE SUSPENDED: {e}"))?;
    check_eq!(
        v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_SUSPENDED
    );
    let woke = std::thread::scope(|s| {
        let t = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            vm.vm
                .set_irq_line(SPI_33, true)
                .map_err(|e| format!("KVM_IRQ_LINE: {e}"))
        });
        let (cpu0, wall0) = (thread_cpu_time(), Instant::now());
        let r = match v.run() {
            Ok(VcpuExit::SystemEvent(kind, data)) => Ok((kind, data.len())),
            Ok(other) => Err(format!("expected a wake-up event, got {other:?}")),
            Err(e) => Err(format!("KVM_RUN: {e}")),
        };
        let used = (thread_cpu_time() - cpu0, wall0.elapsed());
        t.join()
            .map_err(|_| "irq thread panicked".to_string())
            .and_then(|x| x)?;
        r.map(|k| (k, used))
    });
    let ((kind, ndata), (cpu, wall)) = woke?;
    check_eq!(kind, KVM_SYSTEM_EVENT_WAKEUP);
    check_eq!(ndata, 0);
    check!(
        cpu * 2 < wall,
        "the vCPU thread used {cpu:?} of CPU in {wall:?}: not sleeping"
    );
    // Sticky until userspace makes it runnable.
    check_eq!(
        v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_SUSPENDED
    );
    v.set_mp_state(kvm_mp_state {
        mp_state: kb::KVM_MP_STATE_RUNNABLE,
    })
    .map_err(|e| e.to_string())?;
    check_eq!(
        v.get_mp_state().map_err(|e| e.to_string())?.mp_state,
        kb::KVM_MP_STATE_RUNNABLE
    );
    Ok(Outcome::Pass)
}

fn suspended_vcpu_without_vgic_waits_for_a_signal() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_wfi_forever())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    v.set_mp_state(kvm_mp_state {
        mp_state: kb::KVM_MP_STATE_SUSPENDED,
    })
    .map_err(|e| e.to_string())?;
    let kick = Kick::new()?;
    kick.arm(Duration::from_millis(100));
    let r = v.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    kick.disarm();
    check_eq!(r, Err(libc::EINTR));
    // A stopped vCPU (POWER_OFF) also sleeps until a signal.
    let mut off = vm.vcpu(1, MEM_BASE, 1 << KVM_ARM_VCPU_POWER_OFF)?;
    kick.arm(Duration::from_millis(100));
    let r = off.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    kick.disarm();
    check_eq!(r, Err(libc::EINTR));
    Ok(Outcome::Pass)
}

fn vcpu_attr(v: &VcpuFd, cmd: u64, group: u32, attr: u64, value: &mut i32) -> Result<i32, i32> {
    let mut a = kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr: value as *mut i32 as u64,
    };
    rkvm_selftests::vmm::ioctl_with(v.as_raw_fd(), cmd, &mut a)
}

const SET_ATTR: u64 = KVM_SET_DEVICE_ATTR;
const GET_ATTR: u64 = KVM_GET_DEVICE_ATTR;
const HAS_ATTR: u64 = KVM_HAS_DEVICE_ATTR;
const PMU_CTRL: u32 = kb::KVM_ARM_VCPU_PMU_V3_CTRL;
const PMU_IRQ: u64 = kb::KVM_ARM_VCPU_PMU_V3_IRQ as u64;
const TIMER_CTRL: u32 = kb::KVM_ARM_VCPU_TIMER_CTRL;
const VTIMER: u64 = kb::KVM_ARM_VCPU_TIMER_IRQ_VTIMER as u64;
const PTIMER: u64 = kb::KVM_ARM_VCPU_TIMER_IRQ_PTIMER as u64;
const HVTIMER: u64 = kb::KVM_ARM_VCPU_TIMER_IRQ_HVTIMER as u64;
const HPTIMER: u64 = kb::KVM_ARM_VCPU_TIMER_IRQ_HPTIMER as u64;
const PVTIME_CTRL: u32 = kb::KVM_ARM_VCPU_PVTIME_CTRL;
const PVTIME_IPA: u64 = kb::KVM_ARM_VCPU_PVTIME_IPA as u64;

fn timer_ppi_attributes() -> TestResult {
    let vm = TestVm::new(1 << 20, guest_gic_setup())?;
    vm.mem.write(0x400, guest_wfi_forever());
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let mut c = Cases::new();
    let mut x = 0i32;
    // KVM's defaults: virtual 27, physical 30, EL2 virtual 28, EL2 physical 26.
    for (attr, ppi) in [(VTIMER, 27), (PTIMER, 30), (HVTIMER, 28), (HPTIMER, 26)] {
        c.errno(
            &format!("HAS timer {attr}"),
            vcpu_attr(&v, HAS_ATTR, TIMER_CTRL, attr, &mut x),
            0,
        );
        c.errno(
            &format!("GET timer {attr}"),
            vcpu_attr(&v, GET_ATTR, TIMER_CTRL, attr, &mut x),
            0,
        );
        c.eq(&format!("timer {attr} PPI"), x, ppi);
    }
    c.errno(
        "HAS timer 4",
        vcpu_attr(&v, HAS_ATTR, TIMER_CTRL, 4, &mut x),
        libc::ENXIO,
    );
    c.errno(
        "GET timer 4",
        vcpu_attr(&v, GET_ATTR, TIMER_CTRL, 4, &mut x),
        libc::ENXIO,
    );
    c.errno(
        "HAS PMU",
        vcpu_attr(&v, HAS_ATTR, PMU_CTRL, PMU_IRQ, &mut x),
        libc::ENXIO,
    );
    c.errno(
        "SET PMU",
        vcpu_attr(&v, SET_ATTR, PMU_CTRL, PMU_IRQ, &mut x),
        libc::ENODEV,
    );
    // PV time's attribute exists with the scheduler's run-delay accounting (`pv_time`).
    let pv_time = if vm.vm.check_extension_raw(kb::KVM_CAP_STEAL_TIME.into()) == 1 {
        0
    } else {
        libc::ENXIO
    };
    c.errno(
        "HAS PV time",
        vcpu_attr(&v, HAS_ATTR, PVTIME_CTRL, PVTIME_IPA, &mut x),
        pv_time,
    );
    c.errno(
        "HAS PV time attribute 1",
        vcpu_attr(&v, HAS_ATTR, PVTIME_CTRL, 1, &mut x),
        libc::ENXIO,
    );
    c.errno(
        "HAS group 99",
        vcpu_attr(&v, HAS_ATTR, 99, 0, &mut x),
        libc::ENXIO,
    );
    x = 20;
    c.errno(
        "SET without a vGIC",
        vcpu_attr(&v, SET_ATTR, TIMER_CTRL, VTIMER, &mut x),
        libc::EINVAL,
    );
    let Some(_dev) = create_vgic(&vm.vm)? else {
        c.finish()?;
        return Ok(Outcome::Skip(NO_VGIC.into()));
    };
    for (what, attr, value, want) in [
        ("SET SGI", VTIMER, 15, libc::EINVAL),
        ("SET SPI", VTIMER, 32, libc::EINVAL),
        ("SET attribute 4", 4, 20, libc::ENXIO),
        ("SET virtual 20", VTIMER, 20, 0),
        ("SET physical 20 (checked at KVM_RUN)", PTIMER, 20, 0),
    ] {
        x = value;
        c.errno(
            what,
            vcpu_attr(&v, SET_ATTR, TIMER_CTRL, attr, &mut x),
            want,
        );
    }
    c.errno(
        "GET virtual",
        vcpu_attr(&v, GET_ATTR, TIMER_CTRL, VTIMER, &mut x),
        0,
    );
    c.eq("virtual PPI", x, 20);
    c.eq(
        "KVM_RUN with two timers on one PPI",
        v.run().map(|_| 0).map_err(|e| e.errno()),
        Err(libc::EINVAL),
    );
    x = 30;
    c.errno(
        "SET physical 30",
        vcpu_attr(&v, SET_ATTR, TIMER_CTRL, PTIMER, &mut x),
        0,
    );
    set_reg(&v, core_reg_x(20), MEM_BASE + 0x400)?;
    c.eq("KVM_RUN", run_to_write(&mut v), Ok((MMIO_BASE, 0)));
    x = 21;
    c.errno(
        "SET after KVM_RUN",
        vcpu_attr(&v, SET_ATTR, TIMER_CTRL, VTIMER, &mut x),
        libc::EBUSY,
    );
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_timer_irq",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("timer_registers_round_trip", timer_registers_round_trip),
            ("timer_ppi_attributes", timer_ppi_attributes),
            ("counter_offsets_are_vm_wide", counter_offsets_are_vm_wide),
            ("physical_timer_is_emulated", physical_timer_is_emulated),
            (
                "vtimer_fires_in_wfi_while_the_thread_sleeps",
                vtimer_fires_in_wfi_while_the_thread_sleeps,
            ),
            (
                "vtimer_silenced_in_its_handler_is_taken_once",
                vtimer_silenced_in_its_handler_is_taken_once,
            ),
            (
                "wfi_woken_by_irq_line_from_another_thread",
                wfi_woken_by_irq_line_from_another_thread,
            ),
            ("wfi_interrupted_by_a_signal", wfi_interrupted_by_a_signal),
            (
                "suspended_vcpu_wakes_on_an_interrupt",
                suspended_vcpu_wakes_on_an_interrupt,
            ),
            (
                "suspended_vcpu_without_vgic_waits_for_a_signal",
                suspended_vcpu_without_vgic_waits_for_a_signal,
            ),
        ],
    )
}
