// SPDX-License-Identifier: GPL-2.0

//! Halt polling as KVM's (`kvm_vcpu_halt`): the module parameters with KVM's names,
//! defaults and permissions, `KVM_CAP_HALT_POLL` (reported as KVM does, its
//! `KVM_ENABLE_CAP` errnos), and the halt-poll statistics of the vCPU stats fd following
//! two vCPUs that exchange IPIs and wait for them in WFI: polls are attempted and succeed
//! with the defaults, and none is attempted once the VM's maximum (or the parameter, for
//! a VM that set none) is 0. No timing is asserted.

use kvm_bindings as kb;
use rkvm_selftests::{
    binstats::Stats,
    guest_code, host_runs_guests, pin_to_cpu, run_or_skip,
    vmm::{
        core_reg_x, create_vgic, ioctl_with, nr, run_to_write, set_reg, TestVm, MEM_BASE, MMIO_BASE,
    },
    Cases, TestResult, NO_GUESTS_REASON,
};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

const KVM_CAP_HALT_POLL: u32 = kb::KVM_CAP_HALT_POLL;
const PARAMS: &str = "/sys/module/rkvm/parameters";
/// KVM's parameters and their defaults on arm64 (`virt/kvm/kvm_main.c`,
/// `KVM_HALT_POLL_NS_DEFAULT` in `arch/arm64/include/asm/kvm_host.h`).
const DEFAULTS: [(&str, u64); 4] = [
    ("halt_poll_ns", 500_000),
    ("halt_poll_ns_grow", 2),
    ("halt_poll_ns_grow_start", 10_000),
    ("halt_poll_ns_shrink", 2),
];
const ROUNDS: u64 = 2000;

// Both vCPUs: x1 = rounds, x2 = vCPU index (0 or 1). Enables the distributor, this
// vCPU's redistributor, SGIs in group 1 and the CPU interface with PSTATE.I set; then
// vCPU 0 sends SGI 1 to vCPU 1 and waits in WFI for the answer, vCPU 1 waits in WFI and
// answers, `x1` times. Each writes its index to MMIO_BASE at the end.
guest_code!(
    guest_wfi_ping_pong,
    "movz x19, #0x1000, lsl #16",
    "movz x10, #0x0800, lsl #16",
    "mov w11, #0x12",
    "str w11, [x10]", // GICD_CTLR: ARE, Grp1
    "movz x12, #0x080a, lsl #16",
    "add x12, x12, x2, lsl #17",
    "ldr w11, [x12, #0x14]",
    "bic w11, w11, #2",
    "str w11, [x12, #0x14]", // GICR_WAKER.ProcessorSleep = 0
    "add x13, x12, #0x10, lsl #12",
    "mov w11, #-1",
    "str w11, [x13, #0x80]", // GICR_IGROUPR0: group 1
    "movz w11, #0xffff",
    "str w11, [x13, #0x100]", // GICR_ISENABLER0: SGIs
    "mov x11, #1",
    "msr s3_0_c12_c12_5, x11", // ICC_SRE_EL1.SRE
    "isb",
    "mov x11, #0xff",
    "msr s3_0_c4_c6_0, x11", // ICC_PMR_EL1
    "mov x11, #1",
    "msr s3_0_c12_c12_7, x11", // ICC_IGRPEN1_EL1
    "isb",
    // x14: ICC_SGI1R_EL1 value for SGI 1 to Aff0 = 1 - index.
    "mov x14, #1",
    "sub x15, x14, x2",
    "lsl x14, x14, x15",
    "orr x14, x14, #0x1000000",
    "mov x20, x1",
    "cbnz x2, 5f",
    "1: msr s3_0_c12_c11_5, x14",
    "isb",
    "2: wfi",
    "mrs x0, s3_0_c12_c12_0", // ICC_IAR1_EL1
    "cmp x0, #1023",
    "b.eq 2b",
    "msr s3_0_c12_c12_1, x0", // ICC_EOIR1_EL1
    "subs x20, x20, #1",
    "b.ne 1b",
    "b 9f",
    "5: wfi",
    "mrs x0, s3_0_c12_c12_0",
    "cmp x0, #1023",
    "b.eq 5b",
    "msr s3_0_c12_c12_1, x0",
    "msr s3_0_c12_c11_5, x14",
    "isb",
    "subs x20, x20, #1",
    "b.ne 5b",
    "9: str x2, [x19]",
    "b ."
);

fn param_path(name: &str) -> String {
    format!("{PARAMS}/{name}")
}

fn read_param(name: &str) -> Result<u64, String> {
    let s = std::fs::read_to_string(param_path(name)).map_err(|e| format!("{name}: {e}"))?;
    s.trim().parse().map_err(|e| format!("{name}: {s:?}: {e}"))
}

fn write_param(name: &str, v: u64) -> Result<(), String> {
    std::fs::write(param_path(name), format!("{v}\n")).map_err(|e| format!("{name}: {e}"))
}

/// Sets `halt_poll_ns` for its lifetime, then puts the default back.
struct HaltPollNs;

impl HaltPollNs {
    fn set(v: u64) -> Result<Self, String> {
        write_param("halt_poll_ns", v)?;
        Ok(Self)
    }
}

impl Drop for HaltPollNs {
    fn drop(&mut self) {
        let _ = write_param("halt_poll_ns", DEFAULTS[0].1);
    }
}

/// `KVM_ENABLE_CAP` with a raw `struct kvm_enable_cap`: 0 or the errno.
fn enable_cap(fd: i32, cap: u32, flags: u32, arg0: u64) -> Result<i32, i32> {
    let mut c = kb::kvm_enable_cap {
        cap,
        flags,
        ..Default::default()
    };
    c.args[0] = arg0;
    ioctl_with(fd, nr::KVM_ENABLE_CAP, &mut c)
}

/// One vCPU's statistics after an exchange.
type Items = HashMap<String, Vec<u64>>;

fn one(s: &Items, name: &str) -> u64 {
    s.get(name).map_or(u64::MAX, |v| v[0])
}

fn sum(s: &Items, name: &str) -> u64 {
    s.get(name).map_or(u64::MAX, |v| v.iter().sum())
}

/// Runs `ROUNDS` IPI round trips between two vCPUs on two host CPUs in a VM whose
/// `KVM_CAP_HALT_POLL` is `cap` (`None`: not set); returns each vCPU's statistics.
fn ping_pong(cap: Option<u64>) -> Result<[Items; 2], String> {
    let vm = TestVm::new(1 << 20, guest_wfi_ping_pong())?;
    if let Some(ns) = cap {
        enable_cap(vm.vm.as_raw_fd(), KVM_CAP_HALT_POLL, 0, ns)
            .map_err(|e| format!("KVM_ENABLE_CAP(HALT_POLL, {ns}): errno {e}"))?;
    }
    let mut vcpus = Vec::new();
    for id in 0..2 {
        let v = vm.vcpu(id, MEM_BASE, 0)?;
        set_reg(&v, core_reg_x(1), ROUNDS)?;
        set_reg(&v, core_reg_x(2), id)?;
        vcpus.push(v);
    }
    let _gic = create_vgic(&vm.vm)?.ok_or("no vGICv3 (ENODEV)")?;
    let stats = [
        Stats::open(vcpus[0].as_raw_fd())?,
        Stats::open(vcpus[1].as_raw_fd())?,
    ];
    let mut v1 = vcpus.pop().unwrap();
    let mut v0 = vcpus.pop().unwrap();
    let last_cpu = std::thread::available_parallelism().map_or(0, |n| n.get() - 1);
    let (r0, r1) = std::thread::scope(|s| {
        let t1 = s.spawn(move || {
            pin_to_cpu(last_cpu)?;
            run_to_write(&mut v1)
        });
        let r0 = pin_to_cpu(0).and_then(|()| run_to_write(&mut v0));
        let r1 = t1
            .join()
            .unwrap_or_else(|_| Err("vCPU 1 thread panicked".into()));
        (r0, r1)
    });
    let _ = pin_to_cpu_all();
    if r0? != (MMIO_BASE, 0) || r1? != (MMIO_BASE, 1) {
        return Err("the exchange did not finish on both vCPUs".into());
    }
    Ok([stats[0].items()?, stats[1].items()?])
}

/// Lets the calling thread run anywhere again.
fn pin_to_cpu_all() -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is the empty set; every CPU below the count is set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    for cpu in 0..n {
        // SAFETY: `cpu` is below CPU_SETSIZE (a handful of CPUs).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) } != 0 {
        return Err("sched_setaffinity".into());
    }
    Ok(())
}

/// What holds for every vCPU whatever the window: the histograms count what the totals
/// count, no invalid wake-ups on arm64, nothing blocking once `KVM_RUN` returned.
fn check_consistent(c: &mut Cases, what: &str, s: &Items) {
    let (ok, tried) = (
        one(s, "halt_successful_poll"),
        one(s, "halt_attempted_poll"),
    );
    c.eq(
        &format!("{what}: successful <= attempted"),
        ok <= tried,
        true,
    );
    c.eq(
        &format!("{what}: halt_poll_success_hist counts the successes"),
        sum(s, "halt_poll_success_hist"),
        ok,
    );
    c.eq(
        &format!("{what}: halt_poll_fail_hist counts the failures"),
        sum(s, "halt_poll_fail_hist"),
        tried.wrapping_sub(ok),
    );
    c.eq(
        &format!("{what}: halt_poll_invalid"),
        one(s, "halt_poll_invalid"),
        0,
    );
    c.eq(&format!("{what}: blocking"), one(s, "blocking"), 0);
    c.eq(
        &format!("{what}: halt_wait_ns with halt_wait_hist"),
        one(s, "halt_wait_ns") > 0,
        sum(s, "halt_wait_hist") > 0,
    );
    for h in [
        "halt_poll_success_hist",
        "halt_poll_fail_hist",
        "halt_wait_hist",
    ] {
        c.eq(
            &format!("{what}: {h} buckets"),
            s.get(h).map_or(0, Vec::len),
            32,
        );
    }
}

fn parameters_are_kvms() -> TestResult {
    let mut c = Cases::new();
    for (name, want) in DEFAULTS {
        c.eq(&format!("{name} default"), read_param(name)?, want);
        let mode = std::fs::metadata(param_path(name))
            .map_err(|e| format!("{name}: {e}"))?
            .permissions()
            .mode();
        c.eq(&format!("{name} mode"), mode & 0o777, 0o644);
    }
    // Writable at run time, as KVM's.
    {
        let _p = HaltPollNs::set(123_456)?;
        c.eq("halt_poll_ns written", read_param("halt_poll_ns")?, 123_456);
    }
    c.eq(
        "halt_poll_ns restored",
        read_param("halt_poll_ns")?,
        DEFAULTS[0].1,
    );
    c.finish()
}

fn capability_as_kvm() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_wfi_ping_pong())?;
    let v = vm.vcpu(0, MEM_BASE, 0)?;
    let mut c = Cases::new();
    // KVM's kvm_vm_ioctl_check_extension_generic: 1 on the system fd and the VM's, set
    // or not.
    c.eq(
        "KVM_CHECK_EXTENSION on the system fd",
        vm.kvm
            .check_extension_raw(u64::from(KVM_CAP_HALT_POLL) as _),
        1,
    );
    c.eq(
        "KVM_CHECK_EXTENSION on the VM",
        vm.vm.check_extension_raw(u64::from(KVM_CAP_HALT_POLL) as _),
        1,
    );
    let fd = vm.vm.as_raw_fd();
    // kvm_vm_ioctl_enable_cap_generic: flags 0, args[0] an unsigned int.
    let cases: [(&str, u32, u64, i32); 7] = [
        ("0", 0, 0, 0),
        ("200 us", 0, 200_000, 0),
        ("u32::MAX", 0, u64::from(u32::MAX), 0),
        ("1 << 32", 0, 1 << 32, libc::EINVAL),
        ("u64::MAX", 0, u64::MAX, libc::EINVAL),
        ("flags 1", 1, 0, libc::EINVAL),
        ("flags 1 << 31", 1 << 31, 1000, libc::EINVAL),
    ];
    for (what, flags, arg, want) in cases {
        c.errno(
            &format!("KVM_ENABLE_CAP(HALT_POLL) on the VM: {what}"),
            enable_cap(fd, KVM_CAP_HALT_POLL, flags, arg),
            want,
        );
    }
    c.eq(
        "still reported after KVM_ENABLE_CAP",
        vm.vm.check_extension_raw(u64::from(KVM_CAP_HALT_POLL) as _),
        1,
    );
    // Not a vCPU capability, and the system fd has no KVM_ENABLE_CAP.
    c.errno(
        "KVM_ENABLE_CAP(HALT_POLL) on a vCPU",
        enable_cap(v.as_raw_fd(), KVM_CAP_HALT_POLL, 0, 0),
        libc::EINVAL,
    );
    c.errno(
        "KVM_ENABLE_CAP(HALT_POLL) on the system fd",
        enable_cap(vm.kvm.as_raw_fd(), KVM_CAP_HALT_POLL, 0, 0),
        libc::EINVAL,
    );
    c.finish()
}

/// `halt_poll_ns`'s default: the largest poll window.
const DEFAULT_MAX_POLL_NS: u64 = 500_000;

fn ipi_ping_pong_polls() -> TestResult {
    let s = ping_pong(None)?;
    let mut c = Cases::new();
    for (i, v) in s.iter().enumerate() {
        check_consistent(&mut c, &format!("vCPU {i}"), v);
        println!(
            "# vCPU {i}: attempted {} successful {} wakeups {} poll ns ok/fail {}/{} wait ns {}",
            one(v, "halt_attempted_poll"),
            one(v, "halt_successful_poll"),
            one(v, "halt_wakeup"),
            one(v, "halt_poll_success_ns"),
            one(v, "halt_poll_fail_ns"),
            one(v, "halt_wait_ns"),
        );
    }
    // The window starts at 0, so the first halt of each vCPU sleeps; with halts of a few
    // thousand instructions it grows at once and the answers arrive while polling.
    let attempted: u64 = s.iter().map(|v| one(v, "halt_attempted_poll")).sum();
    let ok: u64 = s.iter().map(|v| one(v, "halt_successful_poll")).sum();
    c.eq("polls attempted", attempted > 0, true);
    // Unless the host is too slow for any window to catch an answer (the debug kernel,
    // at times): when most halts end asleep and their wake-ups take longer than the
    // largest window on average, KVM's algorithm gives polling up too, as it should.
    let wakeups: u64 = s.iter().map(|v| one(v, "halt_wakeup")).sum();
    let waited: u64 = s.iter().map(|v| one(v, "halt_wait_ns")).sum();
    let too_slow = wakeups * 2 > attempted && waited > wakeups * DEFAULT_MAX_POLL_NS;
    if too_slow {
        println!("# ipi_ping_pong_polls: wake-ups beyond the poll window; successes not required");
    } else {
        c.eq("polls succeeded", ok > 0, true);
    }
    c.finish()
}

fn cap_zero_disables_polling() -> TestResult {
    let s = ping_pong(Some(0))?;
    let mut c = Cases::new();
    for (i, v) in s.iter().enumerate() {
        check_consistent(&mut c, &format!("vCPU {i}"), v);
        c.eq(
            &format!("vCPU {i}: halt_attempted_poll"),
            one(v, "halt_attempted_poll"),
            0,
        );
        c.eq(
            &format!("vCPU {i}: halt_successful_poll"),
            one(v, "halt_successful_poll"),
            0,
        );
        c.eq(
            &format!("vCPU {i}: poll time"),
            one(v, "halt_poll_success_ns") + one(v, "halt_poll_fail_ns"),
            0,
        );
    }
    // Every halt sleeps, so the vCPUs are woken by each other's IPIs.
    let wakeups: u64 = s.iter().map(|v| one(v, "halt_wakeup")).sum();
    let waits: u64 = s.iter().map(|v| sum(v, "halt_wait_hist")).sum();
    c.eq("halt_wakeup counts wake-ups", wakeups > 0, true);
    c.eq("halt_wait_hist counts sleeps", waits > 0, true);
    c.finish()
}

fn parameter_zero_disables_polling() -> TestResult {
    let mut c = Cases::new();
    let _p = HaltPollNs::set(0)?;
    let s = ping_pong(None)?;
    for (i, v) in s.iter().enumerate() {
        check_consistent(&mut c, &format!("vCPU {i}"), v);
        c.eq(
            &format!("vCPU {i}: halt_attempted_poll"),
            one(v, "halt_attempted_poll"),
            0,
        );
    }
    c.finish()
}

fn vm_maximum_overrides_the_parameter() -> TestResult {
    let mut c = Cases::new();
    // kvm_vcpu_max_halt_poll_ns: a VM's KVM_CAP_HALT_POLL wins over halt_poll_ns = 0.
    let _p = HaltPollNs::set(0)?;
    let s = ping_pong(Some(500_000))?;
    let attempted: u64 = s.iter().map(|v| one(v, "halt_attempted_poll")).sum();
    c.eq("polls attempted", attempted > 0, true);
    for (i, v) in s.iter().enumerate() {
        check_consistent(&mut c, &format!("vCPU {i}"), v);
    }
    c.finish()
}

fn main() {
    run_or_skip(
        "rkvm_halt_poll",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("parameters_are_kvms", parameters_are_kvms),
            ("capability_as_kvm", capability_as_kvm),
            ("ipi_ping_pong_polls", ipi_ping_pong_polls),
            ("cap_zero_disables_polling", cap_zero_disables_polling),
            (
                "parameter_zero_disables_polling",
                parameter_zero_disables_polling,
            ),
            (
                "vm_maximum_overrides_the_parameter",
                vm_maximum_overrides_the_parameter,
            ),
        ],
    )
}
