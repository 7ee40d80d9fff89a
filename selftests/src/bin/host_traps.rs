// SPDX-License-Identifier: GPL-2.0

//! A hostile guest against the traps the host kernel opened for itself: the registers of
//! features the host CPU has and the guest's ID registers do not advertise (the VMM
//! thread's POR_EL0, GCSPR_EL0, TPIDR2_EL0 and FPMR, the host's PIR_EL1 and TCR2_EL1, the
//! RAS error records, AMU, trace filter, SPE and MPAM registers). The host kernel leaves
//! HCRX_EL2 and the fine-grained traps open for its own use; a guest touching any of
//! these registers must get an UNDEF (KVM's `kvm_inject_undefined`), or KVM's emulated
//! value where the guest's ID registers advertise the feature (the RAS error records read
//! as zero and ignore writes). Runs on rkvm and, on the *-kvm hosts, on the in-kernel KVM
//! (the baseline). The Armv8.7+ groups are skipped on a host CPU without FEAT_FGT
//! (mandatory from Armv8.6, so such a CPU has none of them; the kernel logs FGT whatever
//! its configuration, unlike POE, GCS or RAS); the other groups always run, since a host
//! without their feature UNDEFs them as well.

use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    cmdline_param, host_runs_guests, run_or_skip, KernelLog, Outcome, TestResult, DEV_KVM, DEV_RKVM,
};

const SHUTDOWN: u32 = kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN;
const RAM: usize = 1 << 16;
/// The vector table, after the code.
const VECTORS: usize = 0x800;
/// Where the handler reports ESR_EL1 and ELR_EL1.
const FAULT_ESR: u64 = MMIO_BASE + 0x100;
const FAULT_ELR: u64 = MMIO_BASE + 0x108;
/// What x0 holds before each read, so an UNDEF'd read reports it.
const SENTINEL: u64 = 0x5a5a;

// VBAR_EL1 = the vector table; x1 = MMIO_BASE.
rkvm_selftests::guest_code!(
    guest_prologue,
    "movz x16, #0x4000, lsl #16",
    "add x16, x16, #0x800",
    "msr vbar_el1, x16",
    "isb",
    "movz x1, #0x1000, lsl #16"
);

rkvm_selftests::guest_code!(
    guest_epilogue,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

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

/// An ID register field: (CRm, op2) of the register in the ID space, the field's lowest
/// bit, and the smallest value that means "implemented".
#[derive(Clone, Copy)]
struct Field(u8, u8, u32, u64);

const S1POE: Field = Field(7, 3, 16, 1);
const S1PIE: Field = Field(7, 3, 8, 1);
const TCRX: Field = Field(7, 3, 0, 1);
const SCTLRX: Field = Field(7, 3, 4, 1);
const GCS: Field = Field(4, 1, 44, 1);
const SME: Field = Field(4, 1, 24, 1);
const FPMR: Field = Field(4, 2, 32, 1);
const RAS: Field = Field(4, 0, 28, 1);
const AMU: Field = Field(4, 0, 44, 1);
const MPAM: Field = Field(4, 0, 40, 1);
const MPAM_FRAC: Field = Field(4, 1, 16, 1);
const TRF: Field = Field(5, 0, 40, 1);
const SPE: Field = Field(5, 0, 32, 1);

/// One register: name, (op0, op1, CRn, CRm, op2), whether the guest also writes it (the
/// value it read: nothing of the host's changes if the write goes through), and the
/// features any of which advertises it.
struct Reg(&'static str, [u8; 5], bool, &'static [Field]);

/// What the guest's accesses to a register did.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Both accesses UNDEF'd (the write only where the guest writes it).
    Undef,
    /// Neither did; the value read.
    Value(u64),
    Other(String),
}

/// MRS x0 / MSR x0 of a register (C5.2.*: the system-instruction class, L = read).
fn sys_insn(r: [u8; 5], read: bool) -> u32 {
    let [op0, op1, crn, crm, op2] = r.map(u32::from);
    0xd510_0000
        | (u32::from(read) << 21)
        | ((op0 & 1) << 19)
        | (op1 << 16)
        | (crn << 12)
        | (crm << 8)
        | (op2 << 5)
}

/// `movz x0, #SENTINEL`; `str x0, [x1]`.
const MOVZ_X0_SENTINEL: u32 = 0xd280_0000 | ((SENTINEL as u32) << 5);
const STR_X0_X1: u32 = 0xf900_0020;

/// Runs one VM that reads (and writes) each register in turn and says what each access
/// did.
fn probe(dev: &str, regs: &[Reg]) -> Result<(Vec<Seen>, GuestView), String> {
    let kvm =
        kvm_ioctls::Kvm::new_with_path(std::ffi::CString::new(dev).map_err(|e| e.to_string())?)
            .map_err(|e| format!("open {dev}: {e}"))?;
    let vm = TestVm::on_device(kvm, GuestMem::new(RAM)?, &[])?;
    let mut code = guest_prologue().to_vec();
    // Per register: the instruction index of its MRS and MSR.
    let mut at = Vec::new();
    let words = code.len() / 4;
    let mut body = Vec::new();
    for r in regs {
        body.push(MOVZ_X0_SENTINEL);
        let mrs = words + body.len();
        body.push(sys_insn(r.1, true));
        body.push(STR_X0_X1);
        let msr = r.2.then(|| {
            body.push(sys_insn(r.1, false));
            words + body.len() - 1
        });
        at.push((mrs, msr));
    }
    for w in body {
        code.extend_from_slice(&w.to_le_bytes());
    }
    code.extend_from_slice(guest_epilogue());
    if code.len() > VECTORS {
        return Err(format!(
            "{} bytes of guest code overlap the vectors",
            code.len()
        ));
    }
    vm.mem.write(0, &code);
    for v in 0..16 {
        vm.mem.write(VECTORS + v * 0x80, guest_handler());
    }
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    let view = GuestView::read(&vcpu)?;

    // Events: (instruction index, ESR) for a fault, or a reported value.
    let mut faults = Vec::new();
    let mut values = Vec::new();
    loop {
        match run(&mut vcpu, 0)? {
            Exit::MmioWrite(a, d) if a == FAULT_ESR => {
                let esr = le_value(&d);
                let elr = match run(&mut vcpu, 0)? {
                    Exit::MmioWrite(a, d) if a == FAULT_ELR => le_value(&d),
                    other => return Err(format!("the handler's ELR report became {other:x?}")),
                };
                faults.push(((elr - MEM_BASE) as usize / 4, esr));
            }
            Exit::MmioWrite(a, d) if a == MMIO_BASE => values.push(le_value(&d)),
            Exit::SystemEvent(SHUTDOWN) => break,
            other => return Err(format!("unexpected exit {other:x?}")),
        }
        if faults.len() + values.len() > 4 * regs.len() + 4 {
            return Err(format!("the guest loops: faults {faults:x?}"));
        }
    }
    if values.len() != regs.len() {
        return Err(format!(
            "{} reports for {} registers",
            values.len(),
            regs.len()
        ));
    }
    let fault_at = |i: usize| faults.iter().find(|f| f.0 == i).map(|f| f.1);
    let seen = regs
        .iter()
        .zip(at)
        .zip(values)
        .map(|((r, (mrs, msr)), v)| {
            let undef = |i| match fault_at(i) {
                // EC 0 (Unknown reason), ISS 0: an UNDEF, from the CPU or injected.
                Some(esr) if (esr >> 26) & 0x3f == 0 && esr & 0x1ff_ffff == 0 => Some(true),
                Some(esr) => {
                    println!("# {}: ESR_EL1 {esr:#x}", r.0);
                    None
                }
                None => Some(false),
            };
            let read = undef(mrs);
            let write = msr.map_or(read, undef);
            match (read, write) {
                (Some(true), Some(true)) if v == SENTINEL => Seen::Undef,
                (Some(false), Some(false)) => Seen::Value(v),
                _ => Seen::Other(format!(
                    "read UNDEF {read:?}, write UNDEF {write:?}, x0 {v:#x}"
                )),
            }
        })
        .collect();
    Ok((seen, view))
}

/// The ID registers as the guest's vCPU shows them to the VMM (and to the guest).
struct GuestView(std::collections::HashMap<(u8, u8), u64>);

impl GuestView {
    fn read(vcpu: &kvm_ioctls::VcpuFd) -> Result<Self, String> {
        let mut m = std::collections::HashMap::new();
        for (crm, op2) in [(4u8, 0u8), (4, 1), (4, 2), (5, 0), (7, 3)] {
            let id = sys_reg(3, 0, 0, crm.into(), op2.into());
            m.insert((crm, op2), get_reg(vcpu, id)?);
        }
        Ok(Self(m))
    }

    fn has(&self, f: Field) -> bool {
        let v = self.0.get(&(f.0, f.1)).copied().unwrap_or(0);
        (v >> f.2) & 0xf >= f.3
    }
}

/// Which device the guests run on: rkvm, or the in-kernel KVM on the *-kvm hosts.
fn device() -> Option<&'static str> {
    if host_runs_guests() {
        Some(DEV_RKVM)
    } else if cmdline_param("rkvmtest.backend").as_deref() == Some("refused-kvm") {
        Some(DEV_KVM)
    } else {
        None
    }
}

/// The kernel's name for FEAT_FGT: every feature of the Armv8.7+ groups implies it.
const V8_7: Option<&str> = Some("Fine Grained Traps");

/// Whether the kernel log says the boot CPU features include `desc` (`cpufeature.c`'s
/// "CPU features: detected: <desc>").
fn host_detected(desc: &str) -> Result<bool, String> {
    let mut log = KernelLog::from_start().map_err(|e| format!("/dev/kmsg: {e}"))?;
    Ok(log
        .new_messages()
        .iter()
        .any(|m| m.contains("CPU features: detected: ") && m.contains(desc)))
}

/// Probes `regs`: each must UNDEF unless the guest's ID registers advertise it, in which
/// case it must be accessible, reading `raz` (Some(0)) where KVM emulates it as RAZ/WI.
fn check_group(host: Option<&str>, regs: &[Reg], raz: bool) -> TestResult {
    if let Some(desc) = host {
        if !host_detected(desc)? {
            return Ok(Outcome::Skip(format!("the host CPU has no {desc}")));
        }
    }
    let dev = device().ok_or("no hypervisor")?;
    let (seen, view) = probe(dev, regs)?;
    let mut bad = Vec::new();
    for (r, s) in regs.iter().zip(seen) {
        let advertised = r.3.iter().any(|&f| view.has(f));
        let ok = match (&s, advertised) {
            (Seen::Undef, false) => true,
            (Seen::Value(v), true) => !raz || *v == 0,
            // A CPU without error records (ERRIDR_EL1.NUM = 0, as QEMU's) may make the
            // record registers UNDEFINED before any trap to EL2.
            (Seen::Undef, true) => raz && r.0 != "ERRIDR_EL1",
            _ => false,
        };
        let want = match (advertised, raz) {
            (false, _) => "UNDEF",
            (true, false) => "accessible (advertised)",
            (true, true) => "RAZ/WI (advertised; UNDEF without records)",
        };
        println!("# {}: {s:x?}, expected {want}", r.0);
        if !ok {
            bad.push(format!("{}: {s:x?}, expected {want}", r.0));
        }
    }
    if bad.is_empty() {
        Ok(Outcome::Pass)
    } else {
        Err(bad.join("\n"))
    }
}

fn permission_overlay_registers() -> TestResult {
    check_group(
        V8_7,
        &[
            Reg("POR_EL0", [3, 3, 10, 2, 4], true, &[S1POE]),
            Reg("POR_EL1", [3, 0, 10, 2, 4], true, &[S1POE]),
        ],
        false,
    )
}

fn permission_indirection_and_tcr2() -> TestResult {
    check_group(
        V8_7,
        &[
            Reg("PIR_EL1", [3, 0, 10, 2, 3], true, &[S1PIE]),
            Reg("PIRE0_EL1", [3, 0, 10, 2, 2], true, &[S1PIE]),
            Reg("TCR2_EL1", [3, 0, 2, 0, 3], true, &[TCRX]),
        ],
        false,
    )
}

fn sctlr2() -> TestResult {
    check_group(
        V8_7,
        &[Reg("SCTLR2_EL1", [3, 0, 1, 0, 3], true, &[SCTLRX])],
        false,
    )
}

fn guarded_control_stack_registers() -> TestResult {
    check_group(
        V8_7,
        &[
            Reg("GCSPR_EL0", [3, 3, 2, 5, 1], true, &[GCS]),
            Reg("GCSCRE0_EL1", [3, 0, 2, 5, 2], true, &[GCS]),
            Reg("GCSPR_EL1", [3, 0, 2, 5, 1], true, &[GCS]),
            Reg("GCSCR_EL1", [3, 0, 2, 5, 0], true, &[GCS]),
        ],
        false,
    )
}

fn sme_registers() -> TestResult {
    check_group(
        V8_7,
        &[
            Reg("TPIDR2_EL0", [3, 3, 13, 0, 5], true, &[SME]),
            Reg("SMPRI_EL1", [3, 0, 1, 2, 4], true, &[SME]),
        ],
        false,
    )
}

fn fpmr() -> TestResult {
    check_group(V8_7, &[Reg("FPMR", [3, 3, 4, 4, 2], true, &[FPMR])], false)
}

fn ras_error_records() -> TestResult {
    check_group(
        None,
        &[
            Reg("ERRIDR_EL1", [3, 0, 5, 3, 0], false, &[RAS]),
            Reg("ERRSELR_EL1", [3, 0, 5, 3, 1], true, &[RAS]),
            Reg("ERXSTATUS_EL1", [3, 0, 5, 4, 2], true, &[RAS]),
            Reg("ERXADDR_EL1", [3, 0, 5, 4, 3], true, &[RAS]),
            Reg("ERXMISC0_EL1", [3, 0, 5, 5, 0], true, &[RAS]),
        ],
        true,
    )
}

fn activity_monitors() -> TestResult {
    check_group(
        None,
        &[
            Reg("AMCR_EL0", [3, 3, 13, 2, 0], false, &[AMU]),
            Reg("AMCNTENSET0_EL0", [3, 3, 13, 2, 5], true, &[AMU]),
            Reg("AMEVCNTR00_EL0", [3, 3, 13, 4, 0], false, &[AMU]),
        ],
        false,
    )
}

fn trace_filter_spe_and_mpam() -> TestResult {
    check_group(
        None,
        &[
            Reg("TRFCR_EL1", [3, 0, 1, 2, 1], true, &[TRF]),
            Reg("PMSCR_EL1", [3, 0, 9, 9, 0], true, &[SPE]),
            Reg("PMBLIMITR_EL1", [3, 0, 9, 10, 0], true, &[SPE]),
            Reg("MPAM1_EL1", [3, 0, 10, 5, 0], true, &[MPAM, MPAM_FRAC]),
            Reg("MPAM0_EL1", [3, 0, 10, 5, 1], true, &[MPAM, MPAM_FRAC]),
            Reg("MPAMIDR_EL1", [3, 0, 10, 4, 4], false, &[MPAM, MPAM_FRAC]),
        ],
        false,
    )
}

fn main() {
    run_or_skip(
        "rkvm_host_traps",
        device().is_some(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            ("permission_overlay_registers", permission_overlay_registers),
            (
                "permission_indirection_and_tcr2",
                permission_indirection_and_tcr2,
            ),
            ("sctlr2", sctlr2),
            (
                "guarded_control_stack_registers",
                guarded_control_stack_registers,
            ),
            ("sme_registers", sme_registers),
            ("fpmr", fpmr),
            ("ras_error_records", ras_error_records),
            ("activity_monitors", activity_monitors),
            ("trace_filter_spe_and_mpam", trace_filter_spe_and_mpam),
        ],
    )
}
