// SPDX-License-Identifier: GPL-2.0

//! Pointer authentication for guests (`KVM_ARM_VCPU_PTRAUTH_ADDRESS/GENERIC`), as KVM:
//! offered exactly where the host CPUs have it (asked of the CPU itself: a child process
//! executes PACGA and PACIA at EL0, which an ARMv8.0 core such as the Cortex-A72 does
//! not have); a vCPU with it signs and authenticates with the five keys set through
//! ONE_REG, keeps them across exits and migrations between host CPUs, and leaves the
//! host's keys as they were; a vCPU without it gets UNDEF for PAC instructions and key
//! registers and sees the ID fields hidden.

use rkvm_selftests::vmm::*;
use rkvm_selftests::{host_runs_guests, pin_to_cpu, run_or_skip, Cases, Outcome, TestResult};

const RAM: usize = 1 << 16;
const VECTORS: usize = 0x800;
/// MMIO offsets the guest reports to (from MMIO_BASE).
const REPORT: u64 = MMIO_BASE;
const TICK: u64 = MMIO_BASE + 0x8;
const DONE: u64 = MMIO_BASE + 0x10;
const FAULT_ESR: u64 = MMIO_BASE + 0x100;
const FAULT_ELR: u64 = MMIO_BASE + 0x108;

/// The pointer and modifier every signature is of (a 48-bit address: the PAC fills the
/// bits above, TCR_EL1.T0SZ = 16).
const POINTER: u64 = 0x1234_5678_9abc;
const MODIFIER: u64 = 0x42;

const KVM_CAP_ARM_PTRAUTH_ADDRESS: u32 = 171;
const KVM_CAP_ARM_PTRAUTH_GENERIC: u32 = 172;
const PTRAUTH: u32 = 1 << 5 | 1 << 6;
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;

/// SCTLR_EL1 at reset (KVM's), plus EnIA, EnIB, EnDA and EnDB: PACIx/AUTIx and
/// PACDx/AUTDx act only when their key is enabled.
const SCTLR: u64 = 0x00c5_0078 | 1 << 31 | 1 << 30 | 1 << 27 | 1 << 13;
/// TCR_EL1 with T0SZ = T1SZ = 16 (48-bit VAs), which places the PAC.
const TCR: u64 = 16 | 16 << 16;

/// APIA, APIB, APDA, APDB, APGA, LO then HI each: (3, 0, 2, 1 + n / 4, n % 4).
fn key_id(n: usize) -> u64 {
    sys_reg(3, 0, 2, 1 + (n / 4) as u64, (n % 4) as u64)
}

// Common set-up: VBAR_EL1, x1 = MMIO_BASE, x2 = POINTER, x3 = MODIFIER.
rkvm_selftests::guest_code!(
    guest_prologue,
    "movz x16, #0x4000, lsl #16",
    "add x16, x16, #0x800",
    "msr vbar_el1, x16",
    "isb",
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x9abc",
    "movk x2, #0x5678, lsl #16",
    "movk x2, #0x1234, lsl #32",
    "movz x3, #0x42"
);

// Signs POINTER with each key and reports the five results (APIA, APIB, APDA, APDB,
// APGA), then authenticates a fresh signature with each address key and reports what
// comes back (POINTER when the key is the one that signed). Encodings: the `pauth`
// instructions, as the kernel's `.inst` spelling, so any assembler takes them.
rkvm_selftests::guest_code!(
    guest_sign,
    "mov x4, x2",
    ".inst 0xdac10064", // pacia x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10464", // pacib x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10864", // pacda x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10c64", // pacdb x4, x3
    "str x4, [x1]",
    ".inst 0x9ac33044", // pacga x4, x2, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10064", // pacia x4, x3
    ".inst 0xdac11064", // autia x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10464", // pacib x4, x3
    ".inst 0xdac11464", // autib x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10864", // pacda x4, x3
    ".inst 0xdac11864", // autda x4, x3
    "str x4, [x1]",
    "mov x4, x2",
    ".inst 0xdac10c64", // pacdb x4, x3
    ".inst 0xdac11c64", // autdb x4, x3
    "str x4, [x1]"
);

// Reports the ten key registers as the guest reads them.
rkvm_selftests::guest_code!(
    guest_read_keys,
    "mrs x4, s3_0_c2_c1_0",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c1_1",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c1_2",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c1_3",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c2_0",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c2_1",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c2_2",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c2_3",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c3_0",
    "str x4, [x1]",
    "mrs x4, s3_0_c2_c3_1",
    "str x4, [x1]"
);

// x10 rounds of: 20 PSCI_VERSION calls (exits the kernel handles; SMCCC returns in
// x0-x3, so x1-x3 are kept in x20-x22), then a report to TICK (an exit to the VMM,
// which moves its thread to another CPU).
rkvm_selftests::guest_code!(
    guest_exits,
    "mov x20, x1",
    "mov x21, x2",
    "mov x22, x3",
    "cbz x10, 3f",
    "1: mov x11, #20",
    "2: movz x0, #0x8400, lsl #16",
    "hvc #0",
    "subs x11, x11, #1",
    "b.ne 2b",
    "str x10, [x20, #8]",
    "subs x10, x10, #1",
    "b.ne 1b",
    "3: mov x1, x20",
    "mov x2, x21",
    "mov x3, x22"
);

// Writes the keys from the guest: key n = x12 + n (x12 from the VMM).
rkvm_selftests::guest_code!(
    guest_write_keys,
    "mov x4, x12",
    "msr s3_0_c2_c1_0, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c1_1, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c1_2, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c1_3, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c2_0, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c2_1, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c2_2, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c2_3, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c3_0, x4",
    "add x4, x4, #1",
    "msr s3_0_c2_c3_1, x4",
    "isb"
);

// Reports ID_AA64ISAR1_EL1 and ID_AA64ISAR2_EL1 as the guest reads them.
rkvm_selftests::guest_code!(
    guest_id_regs,
    "mrs x4, s3_0_c0_c6_1",
    "str x4, [x1]",
    "mrs x4, s3_0_c0_c6_2",
    "str x4, [x1]"
);

// Without pointer authentication, each of these must UNDEF (the handler reports it and
// skips the instruction): a key read, a key write, PACGA, PACIA; with it, they execute.
rkvm_selftests::guest_code!(
    guest_undefs,
    "mrs x4, s3_0_c2_c1_0",
    "msr s3_0_c2_c3_0, x4",
    ".inst 0x9ac33044", // pacga x4, x2, x3
    "mov x4, x2",
    ".inst 0xdac10064" // pacia x4, x3
);
const UNDEFS: usize = 4;

rkvm_selftests::guest_code!(guest_done, "str xzr, [x1, #0x10]", "b .");

// In every vector entry: report ESR_EL1 and ELR_EL1, resume after the instruction.
rkvm_selftests::guest_code!(
    guest_handler,
    "mrs x16, esr_el1",
    "movz x17, #0x1000, lsl #16",
    "str x16, [x17, #0x100]",
    "mrs x16, elr_el1",
    "str x16, [x17, #0x108]",
    "add x16, x16, #4",
    "msr elr_el1, x16",
    "eret"
);

/// What a guest run reported, in order.
#[derive(Debug, Default)]
struct Reports {
    values: Vec<u64>,
    /// ESR_EL1 of each exception the guest took.
    faults: Vec<u64>,
}

/// A VM with one program built from `parts`, and its vCPUs.
struct Vm {
    vm: TestVm,
}

impl Vm {
    fn new(parts: &[&[u8]]) -> Result<Self, String> {
        let mut code = guest_prologue().to_vec();
        for p in parts {
            code.extend_from_slice(p);
        }
        code.extend_from_slice(guest_done());
        if code.len() > VECTORS {
            return Err(format!("{} bytes of guest code", code.len()));
        }
        let vm = TestVm::new(RAM, &code)?;
        for v in 0..16 {
            vm.mem.write(VECTORS + v * 0x80, guest_handler());
        }
        Ok(Self { vm })
    }

    /// vCPU `id`, with pointer authentication or not, the PAC enables on, and `keys`.
    fn vcpu(&self, id: u64, ptrauth: bool, keys: &[u64; 10]) -> Result<kvm_ioctls::VcpuFd, String> {
        let vcpu = self
            .vm
            .vcpu(id, MEM_BASE, if ptrauth { PTRAUTH } else { 0 })?;
        set_reg(&vcpu, sys_reg(3, 0, 1, 0, 0), SCTLR)?;
        set_reg(&vcpu, sys_reg(3, 0, 2, 0, 2), TCR)?;
        if ptrauth {
            for (n, k) in keys.iter().enumerate() {
                set_reg(&vcpu, key_id(n), *k)?;
            }
        }
        Ok(vcpu)
    }
}

/// Runs `vcpu` to its end, calling `tick` at each TICK report.
fn run_all(
    vcpu: &mut kvm_ioctls::VcpuFd,
    mut tick: impl FnMut(u64) -> Result<(), String>,
) -> Result<Reports, String> {
    let mut r = Reports::default();
    for _ in 0..10_000 {
        match run(vcpu, 0)? {
            Exit::MmioWrite(a, d) if a == REPORT => r.values.push(le_value(&d)),
            Exit::MmioWrite(a, d) if a == TICK => tick(le_value(&d))?,
            Exit::MmioWrite(a, d) if a == FAULT_ESR => r.faults.push(le_value(&d)),
            Exit::MmioWrite(a, _) if a == FAULT_ELR => {}
            Exit::MmioWrite(a, _) if a == DONE => return Ok(r),
            other => return Err(format!("unexpected exit {other:x?}")),
        }
    }
    Err("the guest does not finish".into())
}

/// Keys distinct in every half.
fn keys(seed: u64) -> [u64; 10] {
    core::array::from_fn(|n| (seed + n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Whether the host CPUs execute PACGA and PACIA at EL0 (a child process tries; an
/// ARMv8.0 core kills it with SIGILL): the CPU's own answer, whatever rkvm reports.
fn cpu_has_ptrauth() -> Result<bool, String> {
    // SAFETY: the child only executes the two instructions and exits.
    match unsafe { libc::fork() } {
        -1 => Err("fork failed".into()),
        0 => {
            // SAFETY: PACGA and PACIA (non-HINT encodings) read x0/x1 and write x0 only.
            unsafe {
                core::arch::asm!(".inst 0x9ac13000", ".inst 0xdac10020",
                    inout("x0") 1u64 => _, in("x1") 2u64, options(nostack, nomem))
            };
            // SAFETY: exits the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: `status` is a valid pointer; `pid` is our child.
            if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                return Err("waitpid failed".into());
            }
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(true)
            } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGILL {
                Ok(false)
            } else {
                Err(format!("the probe ended with status {status:#x}"))
            }
        }
    }
}

/// PACGA of POINTER and MODIFIER in this process at EL0: depends on the APGA key in the
/// CPU, which the host's (kernel or CPU reset) and never the guest's.
fn host_pacga() -> u64 {
    let out: u64;
    // SAFETY: PACGA writes x0 only; the caller checked that the CPU has it.
    unsafe {
        core::arch::asm!(".inst 0x9ac13000", inout("x0") POINTER => out, in("x1") MODIFIER,
            options(nostack, nomem))
    };
    out
}

fn capabilities_and_init() -> TestResult {
    let cpu = cpu_has_ptrauth()?;
    let kvm = kvm()?;
    let mut c = Cases::new();
    for cap in [KVM_CAP_ARM_PTRAUTH_ADDRESS, KVM_CAP_ARM_PTRAUTH_GENERIC] {
        let got = kvm.check_extension_raw(u64::from(cap) as _);
        c.eq(&format!("KVM_CHECK_EXTENSION({cap})"), got, i32::from(cpu));
    }
    let vm = TestVm::new(RAM, guest_done())?;
    let init = |id: u64, features: u32| -> Result<i32, i32> {
        let vcpu = vm.vm.create_vcpu(id).map_err(|e| e.errno())?;
        let mut init = kvm_bindings::kvm_vcpu_init::default();
        vm.vm
            .get_preferred_target(&mut init)
            .map_err(|e| e.errno())?;
        init.features[0] = features;
        vcpu.vcpu_init(&init).map(|()| 0).map_err(|e| e.errno())
    };
    // Half of it is refused everywhere, as KVM; both where the CPUs have it.
    c.errno("ADDRESS alone", init(0, 1 << 5), EINVAL);
    c.errno("GENERIC alone", init(1, 1 << 6), EINVAL);
    c.errno("both", init(2, PTRAUTH), if cpu { 0 } else { EINVAL });
    c.finish()?;
    Ok(if cpu {
        Outcome::Pass
    } else {
        Outcome::Skip("the host CPUs have no pointer authentication (refused as KVM)".into())
    })
}

/// The rest needs a host with the feature.
fn needs_ptrauth() -> Result<Option<Outcome>, String> {
    Ok((!cpu_has_ptrauth()?)
        .then(|| Outcome::Skip("the host CPUs have no pointer authentication".into())))
}

fn keys_from_one_reg_sign() -> TestResult {
    if let Some(skip) = needs_ptrauth()? {
        return Ok(skip);
    }
    let vm = Vm::new(&[guest_sign()])?;
    let base = keys(1);
    let sign = |id: u64, k: &[u64; 10]| -> Result<Vec<u64>, String> {
        let mut vcpu = vm.vcpu(id, true, k)?;
        let r = run_all(&mut vcpu, |_| Ok(()))?;
        if !r.faults.is_empty() || r.values.len() != 9 {
            return Err(format!("vCPU {id}: {r:x?}"));
        }
        Ok(r.values)
    };
    let mut c = Cases::new();
    let first = sign(0, &base)?;
    println!("# signatures with keys(1): {first:x?}");
    for (n, s) in first[..4].iter().enumerate() {
        c.eq(
            &format!("key {n}: PAC added"),
            *s != POINTER && *s & 0xffff_ffff_ffff == POINTER,
            true,
        );
    }
    c.eq(
        "PACGA is a 32-bit code in the top half",
        first[4] & 0xffff_ffff,
        0,
    );
    c.eq(
        "the four keys sign differently",
        {
            let mut v = first[..4].to_vec();
            v.sort_unstable();
            v.dedup();
            v.len()
        },
        4,
    );
    c.eq(
        "AUTIA/AUTIB/AUTDA/AUTDB give the pointer back",
        first[5..].to_vec(),
        vec![POINTER; 4],
    );
    // The same keys on another vCPU sign the same; changing one half of one key changes
    // exactly that key's signature: every key the guest uses is the one set by ONE_REG.
    c.eq("same keys, same signatures", sign(1, &base)?, first.clone());
    for key in 0..5 {
        for half in 0..2 {
            let mut k = base;
            k[key * 2 + half] ^= 0x10;
            let got = sign(2 + (key * 2 + half) as u64, &k)?;
            for (j, (g, f)) in got[..5].iter().zip(&first[..5]).enumerate() {
                c.eq(
                    &format!("key {key} half {half} changed: signature {j} changes"),
                    g != f,
                    j == key,
                );
            }
        }
    }
    c.finish()
}

fn keys_survive_exits_and_migrations() -> TestResult {
    if let Some(skip) = needs_ptrauth()? {
        return Ok(skip);
    }
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let before: Vec<u64> = (0..ncpus)
        .map(|cpu| pin_to_cpu(cpu).map(|()| host_pacga()))
        .collect::<Result<_, _>>()?;
    let vm = Vm::new(&[
        guest_sign(),
        guest_read_keys(),
        guest_exits(),
        guest_sign(),
        guest_read_keys(),
    ])?;
    let k = keys(7);
    let mut vcpu = vm.vcpu(0, true, &k)?;
    set_reg(&vcpu, core_reg_x(10), 20)?;
    let mut moves = 0;
    let r = run_all(&mut vcpu, |_| {
        moves += 1;
        pin_to_cpu(moves % ncpus)
    })?;
    let mut c = Cases::new();
    c.eq("no exception", r.faults.clone(), vec![]);
    c.eq("reports", r.values.len(), 2 * (9 + 10));
    if r.values.len() == 38 {
        c.eq(
            "signatures after 400 exits and 20 moves",
            r.values[19..28].to_vec(),
            r.values[..9].to_vec(),
        );
        c.eq(
            "the guest reads its ONE_REG keys",
            r.values[9..19].to_vec(),
            k.to_vec(),
        );
        c.eq("and still after", r.values[28..].to_vec(), k.to_vec());
    }
    // The host's APGA key (the one EL0 can observe) is unchanged on every CPU.
    for (cpu, b) in before.iter().enumerate() {
        pin_to_cpu(cpu)?;
        c.eq(&format!("host PACGA on CPU {cpu}"), host_pacga(), *b);
        c.eq(
            &format!("host PACGA on CPU {cpu} is not the guest's"),
            host_pacga() != r.values[4],
            true,
        );
    }
    c.finish()
}

fn guest_writes_reach_one_reg() -> TestResult {
    if let Some(skip) = needs_ptrauth()? {
        return Ok(skip);
    }
    let vm = Vm::new(&[guest_write_keys(), guest_exits(), guest_sign()])?;
    let mut vcpu = vm.vcpu(0, true, &keys(3))?;
    let written = 0x0123_4567_89ab_cd00u64;
    set_reg(&vcpu, core_reg_x(12), written)?;
    set_reg(&vcpu, core_reg_x(10), 3)?;
    let r = run_all(&mut vcpu, |_| Ok(()))?;
    let mut c = Cases::new();
    c.eq("no exception", r.faults.clone(), vec![]);
    let want: Vec<u64> = (0..10).map(|n| written + n).collect();
    let got: Vec<u64> = (0..10)
        .map(|n| get_reg(&vcpu, key_id(n)))
        .collect::<Result<_, _>>()?;
    c.eq("ONE_REG reads the keys the guest wrote", got, want.clone());
    // A second vCPU given those keys through ONE_REG signs as the first did.
    let vm2 = Vm::new(&[guest_sign()])?;
    let mut other = vm2.vcpu(0, true, &want.clone().try_into().unwrap())?;
    let r2 = run_all(&mut other, |_| Ok(()))?;
    c.eq("same signatures", r2.values, r.values);
    c.finish()
}

fn registers_and_id_fields() -> TestResult {
    let cpu = cpu_has_ptrauth()?;
    let mut c = Cases::new();
    let isar = |ptrauth: bool| -> Result<(Vec<u64>, Vec<u64>, Vm, kvm_ioctls::VcpuFd), String> {
        let vm = Vm::new(&[guest_id_regs(), guest_undefs()])?;
        let mut vcpu = vm.vcpu(0, ptrauth, &keys(5))?;
        let from_vmm = vec![
            get_reg(&vcpu, sys_reg(3, 0, 0, 6, 1))?,
            get_reg(&vcpu, sys_reg(3, 0, 0, 6, 2))?,
        ];
        let r = run_all(&mut vcpu, |_| Ok(()))?;
        // The UNDEFs as ESR_EL1's EC and ISS (IL aside): 0 and 0, "unknown reason".
        let faults = r.faults.iter().map(|e| e & !(1 << 25));
        let seen = r.values.iter().copied().chain(faults).collect();
        Ok((from_vmm, seen, vm, vcpu))
    };
    // ISAR1: APA [7:4], API [11:8], GPA [27:24], GPI [31:28]; ISAR2: GPA3, APA3.
    let fields = |v: &[u64]| (v[0] & 0xff00_0ff0, v[1] & 0xff00);
    let (vmm, seen, _vm, vcpu) = isar(false)?;
    c.eq("without: ID fields hidden (VMM)", fields(&vmm), (0, 0));
    c.eq("without: ID fields hidden (guest)", fields(&seen), (0, 0));
    c.eq(
        "without: every access UNDEFs",
        seen[2..].to_vec(),
        vec![0; UNDEFS],
    );
    let mut b = [0u8; 8];
    c.errno(
        "without: ONE_REG of APIAKEYLO",
        vcpu.get_one_reg(key_id(0), &mut b)
            .map(|_| 0)
            .map_err(|e| e.errno()),
        ENOENT,
    );
    let list = reg_list(&vcpu)?;
    c.eq(
        "without: no key in KVM_GET_REG_LIST",
        (0..10).any(|n| list.contains(&key_id(n))),
        false,
    );
    if cpu {
        let (vmm, seen, _vm, vcpu) = isar(true)?;
        c.eq(
            "with: address and generic fields shown (VMM)",
            fields(&vmm) != (0, 0),
            true,
        );
        c.eq(
            "with: the guest sees what the VMM does",
            fields(&seen),
            fields(&vmm),
        );
        c.eq(
            "with: key accesses and PAC instructions execute",
            seen.len(),
            2,
        );
        let list = reg_list(&vcpu)?;
        c.eq(
            "with: ten keys in KVM_GET_REG_LIST",
            (0..10).filter(|n| list.contains(&key_id(*n))).count(),
            10,
        );
    }
    c.finish()
}

/// `KVM_GET_REG_LIST` of `vcpu`.
fn reg_list(vcpu: &kvm_ioctls::VcpuFd) -> Result<Vec<u64>, String> {
    let mut list = kvm_bindings::RegList::new(500).map_err(|e| format!("{e:?}"))?;
    vcpu.get_reg_list(&mut list)
        .map_err(|e| format!("KVM_GET_REG_LIST: {e}"))?;
    Ok(list.as_slice().to_vec())
}

fn main() {
    run_or_skip(
        "rkvm_ptrauth",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("capabilities_and_init", capabilities_and_init),
            ("keys_from_one_reg_sign", keys_from_one_reg_sign),
            (
                "keys_survive_exits_and_migrations",
                keys_survive_exits_and_migrations,
            ),
            ("guest_writes_reach_one_reg", guest_writes_reach_one_reg),
            ("registers_and_id_fields", registers_and_id_fields),
        ],
    )
}
