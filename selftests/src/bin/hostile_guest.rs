// SPDX-License-Identifier: GPL-2.0

//! A hostile guest: every exception class a guest at EL1 (and EL0 in AArch32) can raise,
//! each in a short VM run, then 2,000 random instruction words. Whatever the guest does,
//! it gets an architected answer, the one KVM gives (an exception in its own EL1, an MMIO
//! exit, a KVM-style error from `KVM_RUN`), a VM running next to it is unaffected, and
//! the host stays healthy.
//!
//! Each guest starts with a prologue pointing VBAR_EL1 at a vector table whose sixteen
//! entries all hold the same handler: it reports ESR_EL1, FAR_EL1 and ELR_EL1 through
//! MMIO (at MMIO_BASE + 0x100, + 0x108, + 0x110) and resumes after the faulting
//! instruction, or, for an instruction abort or a PC alignment fault (nothing to step
//! over), at x30: the caller of the `blr` that jumped astray.

use kvm_ioctls::{VcpuExit, VcpuFd};
use rkvm_selftests::vmm::*;
use rkvm_selftests::{
    check, check_eq, fuzz_seed, guest_code, host_runs_guests, run_or_skip, KernelLog, Kick,
    Outcome, TestResult, XorShift,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SHUTDOWN: u32 = kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN;
const RAM: usize = 1 << 20;
/// Where the handler reports.
const FAULT_ESR: u64 = MMIO_BASE + 0x100;
const FAULT_FAR: u64 = MMIO_BASE + 0x108;
const FAULT_ELR: u64 = MMIO_BASE + 0x110;
/// The vector table, and the first instruction of a test's body (after the prologue).
const VECTORS: usize = 0x800;
const BODY: u64 = MEM_BASE + 0x10;

/// Exception classes (ESR_ELx.EC).
const EC_UNKNOWN: u8 = 0x00;
const EC_SVC64: u8 = 0x15;
const EC_IABT_CUR: u8 = 0x21;
const EC_PC_ALIGN: u8 = 0x22;
const EC_DABT_CUR: u8 = 0x25;
const EC_BRK64: u8 = 0x3c;
/// Fault status codes.
const FSC_ADDR_SIZE_L0: u16 = 0x00;
const FSC_SEA: u16 = 0x10;
const FSC_ALIGNMENT: u16 = 0x21;
/// SMCCC/PSCI return values.
const NOT_SUPPORTED: u64 = u64::MAX;
const INVALID_PARAMETERS: u64 = -2i64 as u64;
const ALREADY_ON: u64 = -4i64 as u64;
const PSCI_1_3: u64 = 0x1_0003;

guest_code!(
    guest_prologue,
    "movz x16, #0x4000, lsl #16",
    "add x16, x16, #0x800",
    "msr vbar_el1, x16",
    "isb"
);

guest_code!(
    guest_epilogue,
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

// The handler (21 instructions, copied into each 0x80-byte vector entry). x16 and x17 are
// its scratch registers: test code keeps nothing there across an exception. SVC leaves
// ELR past the instruction already; instruction aborts and PC alignment faults return
// to x30.
guest_code!(
    guest_handler,
    "mrs x16, esr_el1",
    "movz x17, #0x1000, lsl #16",
    "str x16, [x17, #0x100]",
    "mrs x16, far_el1",
    "str x16, [x17, #0x108]",
    "mrs x16, elr_el1",
    "str x16, [x17, #0x110]",
    "mrs x17, esr_el1",
    "lsr x17, x17, #26",
    "cmp x17, #0x15",
    "b.eq 2f",
    "cmp x17, #0x20",
    "b.eq 1f",
    "cmp x17, #0x21",
    "b.eq 1f",
    "cmp x17, #0x22",
    "b.eq 1f",
    "add x16, x16, #4",
    "msr elr_el1, x16",
    "2: eret",
    "1: msr elr_el1, x30",
    "eret"
);

// Count to 50,000 in RAM at MEM_BASE + 0x1000 and report the count, forever.
guest_code!(
    guest_neighbour,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x4000, lsl #16",
    "add x4, x4, #0x1000",
    "1: str xzr, [x4]",
    "movz x5, #50000",
    "2: ldr x6, [x4]",
    "add x6, x6, #1",
    "str x6, [x4]",
    "subs x5, x5, #1",
    "b.ne 2b",
    "str x6, [x1]",
    "b 1b"
);

// Body indices (instruction k is at BODY + 4 * k) are noted where a fault is expected.
guest_code!(
    guest_undef_regs,
    "movz x1, #0x1000, lsl #16",
    "movz x0, #0x5a5a",
    "mrs x0, s3_0_c15_c0_0",   // 2: IMPDEF (HCR_EL2.TIDCP)
    "mrs x0, s3_7_c15_c15_7",  // 3: IMPDEF
    "msr s3_0_c15_c0_0, x0",   // 4
    "msr s3_7_c15_c15_7, xzr", // 5
    "mrs xzr, s3_1_c15_c2_0",  // 6
    "mrs x0, s3_2_c9_c9_1",    // 7: unallocated
    "mrs x0, s2_7_c9_c9_7",    // 8: unallocated, debug space
    ".inst 0xd5280000",        // 9: sysl x0, #0, c0, c0, #0
    ".inst 0xd5080000",        // 10: sys #0, c0, c0, #0, x0
    "str x0, [x1]"
);

// x9 = MMIO_BASE; x1-x3 garbage "pointers". The hyp stub's function numbers, rkvm's own
// EL2 calls (nVHE) and HVC_STUB_ERR, each answered NOT_SUPPORTED through MMIO; then EL2
// instructions and registers, each UNDEF.
guest_code!(
    guest_hyp_call_numbers,
    "movz x9, #0x1000, lsl #16",
    "movz x1, #0x4000, lsl #16",
    "movn x2, #0",
    "movz x3, #0x8000, lsl #48",
    "movz x0, #0",
    "hvc #0",
    "str x0, [x9]", // HVC_SET_VECTORS
    "movz x0, #1",
    "hvc #0",
    "str x0, [x9]", // HVC_SOFT_RESTART
    "movz x0, #2",
    "hvc #0",
    "str x0, [x9]", // HVC_RESET_VECTORS
    "movz x0, #3",
    "hvc #0",
    "str x0, [x9]", // HVC_FINALISE_EL2
    "movz x0, #4",
    "hvc #0",
    "str x0, [x9]", // HVC_GET_ICH_VTR_EL2
    "movz x0, #5",
    "hvc #0",
    "str x0, [x9]", // HVC_STUB_HCALL_NR
    "movz x0, #0x100",
    "movk x0, #0xc600, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x101",
    "movk x0, #0xc600, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x102",
    "movk x0, #0xc600, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x103",
    "movk x0, #0xc600, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0xa11",
    "movk x0, #0xbadc, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0x5a5a",       // 42
    ".inst 0xd50c7801",       // 43: at s1e2r, x1
    ".inst 0xd50c871f",       // 44: tlbi alle2
    "mrs x0, s3_4_c13_c0_2",  // 45: TPIDR_EL2
    "mrs x0, s3_4_c2_c0_0",   // 46: TTBR0_EL2
    "msr s3_4_c1_c0_0, xzr",  // 47: SCTLR_EL2
    "mrs x0, s3_4_c12_c11_1", // 48: ICH_VTR_EL2
    "msr s3_4_c2_c1_0, xzr",  // 49: VTTBR_EL2
    "str x0, [x9]"
);

guest_code!(
    guest_el2_el3_regs,
    "movz x1, #0x1000, lsl #16",
    "movz x0, #0x5a5a",
    "mrs x0, s3_4_c1_c1_0",  // 2: HCR_EL2
    "msr s3_4_c12_c0_0, x0", // 3: VBAR_EL2
    "mrs x0, s3_6_c1_c1_0",  // 4: SCR_EL3
    "mrs x0, s3_4_c2_c1_0",  // 5: VTTBR_EL2
    "msr s3_4_c2_c1_0, x0",  // 6: VTTBR_EL2
    "msr s3_4_c4_c0_1, x0",  // 7: ELR_EL2
    "mrs x0, s3_6_c12_c0_0", // 8: VBAR_EL3
    "msr s3_5_c1_c0_0, x0",  // 9: SCTLR_EL12
    "mrs x0, s3_4_c14_c1_0", // 10: CNTHCTL_EL2
    "tlbi alle2",            // 11
    "at s1e2r, x0",          // 12
    "tlbi vmalls12e1",       // 13
    "str x0, [x1]"
);

guest_code!(
    guest_trapped_regs,
    "movz x1, #0x1000, lsl #16",
    "movz x0, #0x5a5a",
    "mrs x0, pmcr_el0",       // 2
    "msr pmcr_el0, x0",       // 3
    "mrs x0, pmccntr_el0",    // 4
    "msr pmcntenset_el0, x0", // 5
    "mrs x0, pmuserenr_el0",  // 6
    "msr pmevtyper0_el0, x0", // 7
    "mrs x0, pmevcntr0_el0",  // 8
    "msr pmselr_el0, x0",     // 9
    "mrs x0, pmxevcntr_el0",  // 10
    "msr pmintenset_el1, x0", // 11
    "mrs x0, s3_0_c9_c14_6",  // 12: PMMIR_EL1
    "mrs x0, cntp_ctl_el0",   // 13: the physical timer is emulated (reads 0 after reset)
    "msr cntp_cval_el0, x0",  // 14
    "mrs x0, s3_0_c10_c4_3",  // 15: LORC_EL1
    "mrs x0, s2_1_c0_c1_0",   // 16: TRCPRGCTLR
    "mrs x0, s3_3_c13_c2_0",  // 17: AMCR_EL0
    "str x0, [x1]",
    "mrs x2, cntpct_el0",
    "mrs x3, cntvct_el0",
    "mrs x4, id_aa64dfr0_el1",
    "str x4, [x1, #8]"
);

guest_code!(
    guest_debug_regs,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x1234",
    "movk x2, #0xdead, lsl #48",
    "msr dbgbvr0_el1, x2",
    "mrs x3, dbgbvr0_el1",
    "str x3, [x1]",
    "movz x2, #0x1e7",
    "msr dbgbcr0_el1, x2",
    "mrs x3, dbgbcr0_el1",
    "str x3, [x1, #8]",
    "movz x2, #0x2000",
    "movk x2, #0xbeef, lsl #48",
    "msr dbgwvr0_el1, x2",
    "mrs x3, dbgwvr0_el1",
    "str x3, [x1, #16]",
    "movz x2, #0x1ff7",
    "msr dbgwcr0_el1, x2",
    "mrs x3, dbgwcr0_el1",
    "str x3, [x1, #24]",
    "mrs xzr, dbgbvr0_el1",
    "msr dbgbvr0_el1, xzr",
    "mrs x3, dbgbvr0_el1",
    "str x3, [x1, #32]",
    "movz x2, #0xa000",
    "msr mdscr_el1, x2",
    "mrs x3, mdscr_el1",
    "str x3, [x1, #40]",
    "msr mdscr_el1, xzr",
    "mov x2, #1",
    "msr oslar_el1, x2",
    "mrs x3, oslsr_el1",
    "str x3, [x1, #48]",
    "msr oslar_el1, xzr",
    "mrs x3, oslsr_el1",
    "str x3, [x1, #56]",
    "mrs x3, mdccsr_el0",
    "str x3, [x1, #64]",
    "mrs x3, dbgauthstatus_el1",
    "str x3, [x1, #72]",
    "mrs x3, mdrar_el1",
    "str x3, [x1, #80]",
    "msr dbgclaimset_el1, x2",
    "mrs x3, dbgclaimclr_el1",
    "str x3, [x1, #88]",
    // Bank 15 exists in the architecture; KVM offers only the host's banks.
    "movz x3, #0x5a5a",
    "movz x2, #0x4000",
    "msr dbgbvr15_el1, x2",
    "mrs x3, dbgbvr15_el1",
    "str x3, [x1, #96]"
);

// The GICv3 CPU-interface registers (by encoding), then ID_AA64PFR0_EL1 and ICC_SRE_EL1.
guest_code!(
    guest_gic_regs,
    "movz x1, #0x1000, lsl #16",
    "movz x0, #0x5a5a",
    "mrs x0, s3_0_c4_c6_0",    // 2: ICC_PMR_EL1
    "msr s3_0_c4_c6_0, xzr",   // 3
    "mrs x0, s3_0_c12_c8_0",   // 4: ICC_IAR0_EL1
    "msr s3_0_c12_c8_1, xzr",  // 5: ICC_EOIR0_EL1
    "mrs x0, s3_0_c12_c8_3",   // 6: ICC_BPR0_EL1
    "mrs x0, s3_0_c12_c8_4",   // 7: ICC_AP0R0_EL1
    "msr s3_0_c12_c9_0, xzr",  // 8: ICC_AP1R0_EL1
    "msr s3_0_c12_c11_1, xzr", // 9: ICC_DIR_EL1
    "mrs x0, s3_0_c12_c11_3",  // 10: ICC_RPR_EL1
    "msr s3_0_c12_c11_5, xzr", // 11: ICC_SGI1R_EL1
    "msr s3_0_c12_c11_6, xzr", // 12: ICC_ASGI1R_EL1
    "msr s3_0_c12_c11_7, xzr", // 13: ICC_SGI0R_EL1
    "mrs x0, s3_0_c12_c12_0",  // 14: ICC_IAR1_EL1
    "msr s3_0_c12_c12_1, xzr", // 15: ICC_EOIR1_EL1
    "mrs x0, s3_0_c12_c12_2",  // 16: ICC_HPPIR1_EL1
    "msr s3_0_c12_c12_3, xzr", // 17: ICC_BPR1_EL1
    "mrs x0, s3_0_c12_c12_4",  // 18: ICC_CTLR_EL1
    "msr s3_0_c12_c12_6, xzr", // 19: ICC_IGRPEN0_EL1
    "mrs x0, s3_0_c12_c12_7",  // 20: ICC_IGRPEN1_EL1
    "str x0, [x1]",
    "mrs x2, id_aa64pfr0_el1",
    "str x2, [x1, #8]",
    "movz x0, #0x5a5a",
    "mrs x0, s3_0_c12_c12_5", // 25: ICC_SRE_EL1
    "str x0, [x1, #16]"
);

// With a vGIC: priority mask, an acknowledge with nothing pending, the group 1 enable.
guest_code!(
    guest_gic_regs_vgic,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0xf0",
    "msr s3_0_c4_c6_0, x2",
    "isb",
    "mrs x0, s3_0_c4_c6_0",
    "str x0, [x1]",
    "mrs x0, s3_0_c12_c12_0",
    "str x0, [x1, #8]",
    "movz x2, #1",
    "msr s3_0_c12_c12_7, x2",
    "isb",
    "mrs x0, s3_0_c12_c12_7",
    "str x0, [x1, #16]"
);

// Results through x9 (SMCCC 1.1 may clobber x1-x3).
guest_code!(
    guest_hypercalls,
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0xbeef",
    "movk x0, #0xdead, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movn x0, #0",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0xff",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0x1234",
    "str x0, [x9]",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "hvc #0xffff",
    "str x0, [x9]",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "smc #1",
    "str x0, [x9]",
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "smc #0",
    "str x0, [x9]",
    "movz x0, #0xbeef",
    "movk x0, #0xdead, lsl #16",
    "smc #0",
    "str x0, [x9]",
    // PSCI_VERSION with garbage in the upper half of x0: the function id is W0.
    "movz x0, #0",
    "movk x0, #0x8400, lsl #16",
    "movk x0, #0xffff, lsl #32",
    "movk x0, #0xffff, lsl #48",
    "hvc #0",
    "str x0, [x9]",
    // CPU_ON of a vCPU that does not exist, then of itself.
    "movz x0, #3",
    "movk x0, #0xc400, lsl #16",
    "movn x1, #0",
    "movn x2, #0",
    "movz x3, #0",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #3",
    "movk x0, #0xc400, lsl #16",
    "movz x1, #0",
    "movn x2, #0",
    "hvc #0",
    "str x0, [x9]",
    // AFFINITY_INFO with an affinity level that does not exist.
    "movz x0, #4",
    "movk x0, #0xc400, lsl #16",
    "movz x1, #0",
    "movz x2, #7",
    "hvc #0",
    "str x0, [x9]",
    // SMCCC_ARCH_FEATURES and PSCI_FEATURES of garbage.
    "movz x0, #1",
    "movk x0, #0x8000, lsl #16",
    "movz x1, #0x5678",
    "movk x1, #0x1234, lsl #16",
    "hvc #0",
    "str x0, [x9]",
    "movz x0, #0xa",
    "movk x0, #0x8400, lsl #16",
    "movn x1, #0",
    "hvc #0",
    "str x0, [x9]"
);

// x2 = RAM + 0x2000. MMU off first (all data accesses are Device-nGnRnE), then on with
// the identity map the host built at RAM + 0x4000 (x20 = MAIR, x21 = TCR, x22 = TTBR0,
// x23 = SCTLR with the MMU on, x24 = SCTLR as it was).
guest_code!(
    guest_unaligned,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x4000, lsl #16",
    "add x2, x2, #0x2000",
    "movz x3, #0x5a5a",
    "ldur x3, [x2, #1]", // 4: RAM, Device memory: alignment fault, or not
    "str x3, [x1]",
    "ldur x4, [x1, #1]", // 6: MMIO: alignment fault
    "ldrh w4, [x1, #1]", // 7
    "str w4, [x1, #2]",  // 8
    "stur x4, [x1, #4]", // 9
    "ldrb w4, [x1, #3]", // 10: aligned: an MMIO read
    "tlbi vmalle1",
    "dsb nsh",
    "msr mair_el1, x20",
    "msr tcr_el1, x21",
    "msr ttbr0_el1, x22",
    "isb",
    "msr sctlr_el1, x23",
    "isb",
    "ldur x3, [x2, #1]", // 19: Normal memory: fine
    "str x3, [x1, #0x20]",
    "stur x3, [x2, #0x13]",
    "ldur x4, [x2, #0x13]",
    "str x4, [x1, #0x28]",
    "ldur x4, [x1, #1]", // 24: Device memory: alignment fault
    "ldr x5, [x1, #8]",
    "str x5, [x1, #0x30]",
    "msr sctlr_el1, x24",
    "isb",
    "str x3, [x1, #0x38]"
);

// The identity map of `guest_unaligned`, with VA 2-3 GiB described by a level-2 table
// the host put in MMIO: every walk there reads MMIO.
guest_code!(
    guest_s1ptw,
    "movz x1, #0x1000, lsl #16",
    "tlbi vmalle1",
    "dsb nsh",
    "msr mair_el1, x20",
    "msr tcr_el1, x21",
    "msr ttbr0_el1, x22",
    "isb",
    "msr sctlr_el1, x23",
    "isb",
    "movz x2, #0x8000, lsl #16",
    "ldr x3, [x2]",     // 10
    "str x3, [x2, #8]", // 11
    "blr x2",           // 12
    "msr sctlr_el1, x24",
    "isb",
    "str x30, [x1]"
);

// Drop to EL0 in AArch32 Thumb state at x20 (SPSR_EL1 = x21). The Thumb code's SVC lands
// at VBAR_EL1 + 0x600, where `guest_a32_report` takes over.
guest_code!(
    guest_to_el0_a32,
    "msr elr_el1, x20",
    "msr spsr_el1, x21",
    "isb",
    "eret"
);

// Lower-EL AArch32 synchronous vector: report ESR_EL1 and r1, r2, r3, r5, r6; SYSTEM_OFF.
guest_code!(
    guest_a32_report,
    "movz x17, #0x1000, lsl #16",
    "mrs x16, esr_el1",
    "str x16, [x17, #0x18]",
    "str w1, [x17, #0x20]",
    "str w2, [x17, #0x24]",
    "str w3, [x17, #0x28]",
    "str w5, [x17, #0x2c]",
    "str w6, [x17, #0x30]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

guest_code!(
    guest_out_of_slot,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x4010, lsl #16",
    "str x1, [x2]",
    "ldr x3, [x2, #8]",
    "str x3, [x1]",
    "movz x2, #0x3fff, lsl #16",
    "movk x2, #0xfff8",
    "str x1, [x2]",
    "movz x2, #0x100, lsl #32",
    "str x1, [x2]",
    "ldrb w3, [x2, #0xfff]",
    "str x3, [x1, #8]"
);

// For a VM with a 36-bit IPA space.
guest_code!(
    guest_beyond_ipa,
    "movz x1, #0x1000, lsl #16",
    "movz x2, #0x100, lsl #32", // 1 << 40
    "str x1, [x2]",             // 2
    "ldr x3, [x2]",             // 3
    "movz x2, #0x10, lsl #32",  // 1 << 36
    "str x1, [x2]",             // 5
    "movz x2, #0xfff8",
    "movk x2, #0xffff, lsl #16",
    "movk x2, #0xf, lsl #32",
    "str x1, [x2]", // 9: the last word inside: MMIO
    "movz x3, #0x100, lsl #32",
    "blr x3", // 11
    "str x30, [x1]"
);

guest_code!(
    guest_fetch,
    "movz x1, #0x1000, lsl #16",
    "blr x1", // 1: MMIO
    "movz x2, #0x4010, lsl #16",
    "blr x2", // 3: just past RAM
    "movz x2, #0x4000, lsl #16",
    "add x2, x2, #0x102",
    "blr x2", // 6: misaligned PC
    "movz x2, #0xffff, lsl #48",
    "blr x2", // 8: beyond the PA space
    "str x30, [x1]"
);

// x9 = MMIO_BASE.
guest_code!(
    guest_no_syndrome,
    "movz x3, #0x30, lsl #16",
    "msr cpacr_el1, x3",
    "isb",
    "movz x9, #0x1000, lsl #16",
    "movz x0, #0x77",
    "movz x3, #3",
    "movz x4, #4",
    "ldxr x0, [x9]", // 7
    "str x0, [x9, #0x20]",
    "stxr w2, x0, [x9]", // 9
    "ldaxr x0, [x9]",    // 10
    ".inst 0xf8230124",  // 11: ldadd x3, x4, [x9]
    ".inst 0xc8a37d24",  // 12: cas x3, x4, [x9]
    "ldp x3, x4, [x9]",  // 13: no syndrome: ENOSYS
    "ldr x3, [x9], #8",  // 14: writeback: ENOSYS
    "ldr q0, [x9]",      // 15: SIMD register: ENOSYS
    "ldar x3, [x9]",
    "stlr x3, [x9]",
    "str x3, [x9, #0x28]"
);

// Fill 64 KiB at RAM + 0xa0000 with each word's address, clean and invalidate by set/way
// (rkvm unmaps all guest memory) in between and after, then sum that area and the
// host's pattern at RAM + 0x80000.
guest_code!(
    guest_set_way,
    "movz x1, #0x1000, lsl #16",
    "movz x4, #0x400a, lsl #16",
    "movz x5, #8192",
    "1: str x4, [x4]",
    "add x4, x4, #8",
    "tst x5, #1023",
    "b.ne 2f",
    "dc cisw, x5",
    "2: subs x5, x5, #1",
    "b.ne 1b",
    "dc isw, xzr",
    "dc csw, xzr",
    "dc cisw, xzr",
    "movz x8, #100",
    "3: lsl x7, x8, #6",
    "dc cisw, x7",
    "dc isw, x7",
    "subs x8, x8, #1",
    "b.ne 3b",
    "movz x4, #0x4008, lsl #16",
    "movz x5, #8192",
    "mov x10, #0",
    "4: ldr x6, [x4], #8",
    "add x10, x10, x6",
    "subs x5, x5, #1",
    "b.ne 4b",
    "str x10, [x1]",
    "movz x4, #0x400a, lsl #16",
    "movz x5, #8192",
    "mov x10, #0",
    "5: ldr x6, [x4], #8",
    "add x10, x10, x6",
    "subs x5, x5, #1",
    "b.ne 5b",
    "str x10, [x1, #8]"
);

guest_code!(
    guest_wfx,
    "movz x1, #0x1000, lsl #16",
    "movz x5, #200",
    "1: wfi",
    "wfe",
    "sevl",
    "wfe",
    "subs x5, x5, #1",
    "b.ne 1b",
    "str x5, [x1]",
    ".inst 0xd5031025", // 9: wfit x5 (x5 = 0: no wait), UNDEF without FEAT_WFxT
    ".inst 0xd5031005", // 10: wfet x5
    "str x5, [x1, #8]",
    // CPU_SUSPEND: a WFI as far as the guest can tell.
    "movz x0, #1",
    "movk x0, #0xc400, lsl #16",
    "movz x1, #0",
    "movn x2, #0",
    "movz x3, #0",
    "hvc #0",
    "movz x1, #0x1000, lsl #16",
    "str x0, [x1, #16]"
);

guest_code!(
    guest_brk,
    "movz x1, #0x1000, lsl #16",
    "brk #0",           // 1
    "brk #0x1234",      // 2
    "svc #5",           // 3: ELR is the next instruction
    "udf #0x42",        // 4
    "hlt #0",           // 5: no halting debug: UNDEF
    ".inst 0x00000000", // 6
    ".inst 0xffffffff", // 7
    "str x1, [x1]"
);

// Sum 1..=100 and report it.
guest_code!(
    guest_sum,
    "mov x2, #0",
    "mov x3, #1",
    "1: add x2, x2, x3",
    "add x3, x3, #1",
    "cmp x3, #101",
    "b.ne 1b",
    "movz x1, #0x1000, lsl #16",
    "str x2, [x1]",
    "movz x0, #8",
    "movk x0, #0x8400, lsl #16",
    "hvc #0",
    "b ."
);

/// What a guest run produced, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    /// The guest's handler ran: EC, the fault status code (aborts) or the ISS's low 16
    /// bits (others), FAR_EL1 (aborts only: it is UNKNOWN otherwise) and ELR_EL1.
    Fault {
        ec: u8,
        code: u16,
        far: Option<u64>,
        elr: u64,
    },
    /// An MMIO write: address, value, length.
    Write(u64, u64, usize),
    Read(u64, usize),
    Off,
    /// `KVM_RUN` failed with this errno, the PC at the instruction.
    Error(i32, u64),
    Other(String),
}

fn is_abort(ec: u8) -> bool {
    matches!(ec, 0x20 | 0x21 | 0x22 | 0x24 | 0x25)
}

fn fault_of(esr: u64, far: u64, elr: u64) -> Ev {
    let ec = (esr >> 26) as u8 & 0x3f;
    let code = if is_abort(ec) {
        (esr & 0x3f) as u16
    } else {
        (esr & 0xffff) as u16
    };
    Ev::Fault {
        ec,
        code,
        far: is_abort(ec).then_some(far),
        elr,
    }
}

fn undef(k: u64) -> Ev {
    Ev::Fault {
        ec: EC_UNKNOWN,
        code: 0,
        far: None,
        elr: BODY + 4 * k,
    }
}

fn abort(ec: u8, code: u16, far: u64, elr: u64) -> Ev {
    Ev::Fault {
        ec,
        code,
        far: Some(far),
        elr,
    }
}

fn w(addr: u64, value: u64) -> Ev {
    Ev::Write(addr, value, 8)
}

/// A VM with 1 MiB of RAM holding prologue, `body`, epilogue and the vectors, and vCPU 0
/// at its start.
fn hostile_vm(body: &[u8]) -> Result<(TestVm, VcpuFd), String> {
    hostile_vm_on(TestVm::new(RAM, &[])?, body)
}

fn hostile_vm_on(vm: TestVm, body: &[u8]) -> Result<(TestVm, VcpuFd), String> {
    let code = [guest_prologue(), body, guest_epilogue()].concat();
    check!(
        code.len() <= VECTORS,
        "guest code of {} bytes overlaps the vectors",
        code.len()
    );
    vm.mem.write(0, &code);
    write_vectors(&vm.mem);
    let vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    Ok((vm, vcpu))
}

fn write_vectors(mem: &GuestMem) {
    for v in 0..16 {
        mem.write(VECTORS + v * 0x80, guest_handler());
    }
}

/// Runs `vcpu` until SYSTEM_OFF, an error or an unexpected exit, collecting events.
/// MMIO reads are answered with `read_value`. With `step_over_enosys`, a `KVM_RUN`
/// failing with ENOSYS (an access without syndrome) is recorded and the guest resumed
/// after the instruction, as a VMM that cannot emulate it would.
fn events(vcpu: &mut VcpuFd, read_value: u64, step_over_enosys: bool) -> Result<Vec<Ev>, String> {
    let mut evs = Vec::new();
    while evs.len() < 200 {
        let ev = match run_errno(vcpu, read_value) {
            Ok(Exit::MmioWrite(a, d)) if a == FAULT_ESR => {
                let far = expect_write(vcpu, FAULT_FAR)?;
                let elr = expect_write(vcpu, FAULT_ELR)?;
                fault_of(le_value(&d), far, elr)
            }
            Ok(Exit::MmioWrite(a, d)) => Ev::Write(a, le_value(&d), d.len()),
            Ok(Exit::MmioRead(a, len)) => Ev::Read(a, len),
            Ok(Exit::SystemEvent(SHUTDOWN)) => {
                evs.push(Ev::Off);
                return Ok(evs);
            }
            Ok(other) => {
                evs.push(Ev::Other(format!("{other:?}")));
                return Ok(evs);
            }
            Err(e) => {
                let pc = get_reg(vcpu, core_reg_pc())?;
                evs.push(Ev::Error(e, pc));
                if e == libc::ENOSYS && step_over_enosys {
                    set_reg(vcpu, core_reg_pc(), pc + 4)?;
                    continue;
                }
                return Ok(evs);
            }
        };
        evs.push(ev);
    }
    Err(format!("more than 200 events: {evs:x?}"))
}

fn expect_write(vcpu: &mut VcpuFd, addr: u64) -> Result<u64, String> {
    match run_errno(vcpu, 0) {
        Ok(Exit::MmioWrite(a, d)) if a == addr => Ok(le_value(&d)),
        other => Err(format!(
            "the handler's report to {addr:#x} became {other:x?}"
        )),
    }
}

/// Compares event lists, naming each position that differs.
fn same_events(got: &[Ev], want: &[Ev]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let mut msg = String::from("events differ (got / expected):");
    for i in 0..got.len().max(want.len()) {
        let (g, e) = (got.get(i), want.get(i));
        let mark = if g == e { " " } else { "*" };
        msg += &format!("\n{mark} {i}: {g:x?} / {e:x?}");
    }
    Err(msg)
}

static LOG: Mutex<Option<KernelLog>> = Mutex::new(None);
static TROUBLE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Fails if the kernel logged trouble since the previous check; remembers it for the
/// final test.
fn log_clean() -> Result<(), String> {
    let mut log = LOG.lock().map_err(|_| "log lock poisoned")?;
    let log = log.as_mut().ok_or("/dev/kmsg was not opened")?;
    let bad = rkvm_selftests::kernel_trouble(&log.new_messages());
    if bad.is_empty() {
        return Ok(());
    }
    TROUBLE
        .lock()
        .map_err(|_| "lock poisoned")?
        .extend(bad.iter().cloned());
    Err(format!("the kernel log shows trouble:\n{}", bad.join("\n")))
}

/// Wraps a test so that kernel trouble it caused fails it.
macro_rules! logged {
    ($f:ident) => {
        (stringify!($f), {
            fn wrapped() -> TestResult {
                let r = $f();
                log_clean()?;
                r
            }
            wrapped as fn() -> TestResult
        })
    };
}

/// The VM running next to the hostile ones, in its own thread: rounds completed, or
/// why it stopped.
struct Neighbour {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<u64, String>>,
}

static NEIGHBOUR: Mutex<Option<Neighbour>> = Mutex::new(None);

fn neighbour(stop: Arc<AtomicBool>, rounds: Arc<AtomicU64>) -> Result<u64, String> {
    let vm = TestVm::new(1 << 16, guest_neighbour())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    while !stop.load(SeqCst) {
        let n = rounds.load(SeqCst);
        let r = run_to_write(&mut vcpu).map_err(|e| format!("round {n}: {e}"))?;
        let counted = vm.mem.read_u64(0x1000);
        if r != (MMIO_BASE, 50_000) || counted != 50_000 {
            return Err(format!("round {n}: report {r:x?}, count in RAM {counted}"));
        }
        rounds.fetch_add(1, SeqCst);
        // Leave the (two) CPUs mostly to the hostile guests.
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(rounds.load(SeqCst))
}

fn neighbour_vm_starts() -> TestResult {
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let (flag, count) = (stop.clone(), rounds.clone());
    let thread = std::thread::spawn(move || neighbour(flag, count));
    // Its first round shows it runs.
    let start = Instant::now();
    while rounds.load(SeqCst) == 0
        && !thread.is_finished()
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        let r = thread
            .join()
            .map_err(|_| "the neighbour's thread panicked")?;
        return Err(format!("the neighbour VM stopped at once: {r:?}"));
    }
    check!(
        rounds.load(SeqCst) > 0,
        "the neighbour VM completed no round in 30 s"
    );
    *NEIGHBOUR.lock().map_err(|_| "lock poisoned")? = Some(Neighbour { stop, thread });
    Ok(Outcome::Pass)
}

fn neighbour_vm_unaffected() -> TestResult {
    let n = NEIGHBOUR
        .lock()
        .map_err(|_| "lock poisoned")?
        .take()
        .ok_or("no neighbour VM ran")?;
    n.stop.store(true, SeqCst);
    let rounds = n
        .thread
        .join()
        .map_err(|_| "the neighbour's thread panicked")??;
    println!("# the neighbour VM counted to 50,000 {rounds} times, every time right");
    check!(rounds > 0, "the neighbour VM completed no round");
    Ok(Outcome::Pass)
}

fn undefined_and_impdef_registers_undef() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_undef_regs())?;
    let mut want: Vec<Ev> = (2..=10).map(undef).collect();
    want.extend([w(MMIO_BASE, 0x5a5a), Ev::Off]);
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

fn el2_and_el3_registers_undef() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_el2_el3_regs())?;
    let mut want: Vec<Ev> = (2..=13).map(undef).collect();
    want.extend([w(MMIO_BASE, 0x5a5a), Ev::Off]);
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

fn pmu_timer_lor_trace_amu_registers_undef() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_trapped_regs())?;
    let got = events(&mut vcpu, 0, false)?;
    // Everything UNDEF but the physical timer (13, 14), which is emulated as on KVM: x0
    // holds its CTL (0) at the report.
    let mut want: Vec<Ev> = (2..=17)
        .filter(|i| !(13..=14).contains(i))
        .map(undef)
        .collect();
    want.push(w(MMIO_BASE, 0));
    // ID_AA64DFR0_EL1 as the guest sees it: no PMU (PMUVer, bits [11:8]).
    let dfr0 = match got.get(want.len()) {
        Some(Ev::Write(a, v, 8)) if *a == MMIO_BASE + 8 => *v,
        other => {
            return Err(format!(
                "expected the ID_AA64DFR0_EL1 report, got {other:x?}"
            ))
        }
    };
    check!(
        (dfr0 >> 8) & 0xf == 0,
        "ID_AA64DFR0_EL1 {dfr0:#x} shows a PMU"
    );
    want.extend([w(MMIO_BASE + 8, dfr0), Ev::Off]);
    same_events(&got, &want)?;
    Ok(Outcome::Pass)
}

/// A VM without a vGIC has no GIC system registers: ID_AA64PFR0_EL1.GIC reads 0 and every
/// ICC_* access is an UNDEF (KVM traps them all through ICH_HCR_EL2). ICC_SRE_EL1 may
/// not be trappable (ICC_SRE_EL2.Enable can be RAO/WI): an UNDEF, or SRE set.
fn gic_registers_undef_without_a_vgic() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_gic_regs())?;
    let got = events(&mut vcpu, 0, false)?;
    let mut want: Vec<Ev> = (2..=20).map(undef).collect();
    want.push(w(MMIO_BASE, 0x5a5a));
    let pfr0 = match got.get(want.len()) {
        Some(Ev::Write(a, v, 8)) if *a == MMIO_BASE + 8 => *v,
        other => {
            return Err(format!(
                "expected the ID_AA64PFR0_EL1 report, got {other:x?}"
            ))
        }
    };
    check!(
        (pfr0 >> 24) & 0xf == 0,
        "ID_AA64PFR0_EL1 {pfr0:#x} shows a GIC"
    );
    want.push(w(MMIO_BASE + 8, pfr0));
    if got.get(want.len()) == Some(&undef(25)) {
        want.extend([undef(25), w(MMIO_BASE + 16, 0x5a5a)]);
    } else {
        let sre = match got.get(want.len()) {
            Some(Ev::Write(a, v, 8)) if *a == MMIO_BASE + 16 => *v,
            other => {
                return Err(format!(
                    "expected an ICC_SRE_EL1 UNDEF or report, got {other:x?}"
                ))
            }
        };
        check!(
            sre & 1 != 0,
            "ICC_SRE_EL1 reads {sre:#x} without trapping and without SRE"
        );
        println!("# ICC_SRE_EL1 does not trap on this host (reads {sre:#x})");
        want.push(w(MMIO_BASE + 16, sre));
    }
    want.push(Ev::Off);
    same_events(&got, &want)?;
    Ok(Outcome::Pass)
}

/// The same registers work in a VM with a vGIC: the traps are only for VMs without one.
fn gic_registers_work_with_a_vgic() -> TestResult {
    let vm = TestVm::new(RAM, &[])?;
    let (vm, mut vcpu) = hostile_vm_on(vm, guest_gic_regs_vgic())?;
    let Some(_gic) = create_vgic(&vm.vm)? else {
        return Ok(Outcome::Skip("no in-kernel vGICv3".into()));
    };
    // PMR keeps the implemented priority bits; no interrupt pending: the spurious INTID.
    let want = [
        w(MMIO_BASE, 0xf0),
        w(MMIO_BASE + 8, 1023),
        w(MMIO_BASE + 16, 1),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

fn debug_registers_are_storage() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_debug_regs())?;
    let mut got = events(&mut vcpu, 0, false)?;
    // DBGAUTHSTATUS_EL1 (instruction 37) is trapped and reads 0 where the CPU has it; a
    // CPU without it (QEMU's) makes the read UNDEF before any trap. x3 is 0 either way.
    if let Some(i) = got.iter().position(|e| *e == undef(37)) {
        got.remove(i);
        println!("# DBGAUTHSTATUS_EL1 is UNDEF on this CPU");
    }
    let values = [
        0xdead_0000_0000_1234,
        0x1e7,
        0xbeef_0000_0000_2000,
        0x1ff7,
        0,
        0xa000,
        0xa, // OSLSR_EL1: OSLM = 0b10, OSLK set
        0x8, // OSLK clear
        0,
        0,
        0,
        0,
    ];
    let mut want: Vec<Ev> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| w(MMIO_BASE + 8 * i as u64, v))
        .collect();
    // DBGBVR15_EL1: storage, or UNDEF where the bank is not offered (as KVM does).
    let bank15 = w(MMIO_BASE + 96, 0x4000);
    if got.get(want.len()) == Some(&bank15) {
        want.push(bank15);
    } else {
        let k = (guest_debug_regs().len() / 4 - 2) as u64; // the mrs before the last str
        want.extend([undef(k - 1), undef(k), w(MMIO_BASE + 96, 0x5a5a)]);
        println!("# DBGBVR15_EL1 is UNDEF");
    }
    want.push(Ev::Off);
    same_events(&got, &want)?;
    Ok(Outcome::Pass)
}

fn hvc_and_smc_with_garbage() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_hypercalls())?;
    let answers = [
        NOT_SUPPORTED,      // unknown function
        NOT_SUPPORTED,      // function id 0xffffffff
        NOT_SUPPORTED,      // unknown PSCI function
        NOT_SUPPORTED,      // hvc #0x1234: not an SMCCC call
        NOT_SUPPORTED,      // hvc #0xffff
        NOT_SUPPORTED,      // smc #1
        PSCI_1_3,           // smc #0: the SMC conduit works too
        NOT_SUPPORTED,      // smc #0, unknown function
        PSCI_1_3,           // upper half of x0 ignored
        INVALID_PARAMETERS, // CPU_ON of a vCPU that does not exist
        ALREADY_ON,         // CPU_ON of itself
        INVALID_PARAMETERS, // AFFINITY_INFO level 7
        NOT_SUPPORTED,      // SMCCC_ARCH_FEATURES(garbage)
        NOT_SUPPORTED,      // PSCI_FEATURES(garbage)
    ];
    let mut want: Vec<Ev> = answers.iter().map(|&v| w(MMIO_BASE, v)).collect();
    want.push(Ev::Off);
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

/// The calls and registers of whatever owns EL2 (the hyp stub, rkvm's nVHE runtime) are
/// out of the guest's reach: its HVCs are the guest's hypervisor calls, whatever the
/// number, and EL2 instructions are UNDEF at EL1.
fn hyp_call_numbers_and_el2_ops_from_the_guest() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_hyp_call_numbers())?;
    let mut want: Vec<Ev> = (0..11).map(|_| w(MMIO_BASE, NOT_SUPPORTED)).collect();
    want.extend((43..=49).map(undef));
    want.extend([w(MMIO_BASE, 0x5a5a), Ev::Off]);
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

const SCTLR_EL1: u64 = sys_reg(3, 0, 1, 0, 0);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;

/// Stage-1 tables at RAM + 0x4000 mapping the first 2 GiB to themselves in 1 GiB blocks
/// (4 KiB granule, 39-bit VA, level 1): MMIO Device-nGnRnE (AttrIndx 0), RAM Normal
/// write-back (AttrIndx 1). x20-x24 get MAIR, TCR, TTBR0, SCTLR with the MMU on, and
/// SCTLR as it was.
fn identity_map(vm: &TestVm, vcpu: &VcpuFd) -> Result<(), String> {
    vm.mem.write_u64(0x4000, 0x401);
    vm.mem.write_u64(0x4008, MEM_BASE | 0x705);
    let tcr: u64 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (2 << 32);
    let sctlr = get_reg(vcpu, SCTLR_EL1)?;
    for (n, v) in [
        (20, 0xff00),
        (21, tcr),
        (22, MEM_BASE + 0x4000),
        (23, (sctlr | SCTLR_M | SCTLR_C | SCTLR_I) & !SCTLR_A),
        (24, sctlr),
    ] {
        set_reg(vcpu, core_reg_x(n), v)?;
    }
    Ok(())
}

/// KVM (`kvm_handle_guest_abort`): a stage-1 walk that reads outside guest memory gets
/// the guest a synchronous external abort, data or instruction as the access was.
fn stage1_walk_into_mmio_aborts() -> TestResult {
    let (vm, mut vcpu) = hostile_vm(guest_s1ptw())?;
    identity_map(&vm, &vcpu)?;
    vm.mem.write_u64(0x4010, MMIO_BASE | 0x3); // level-1 entry 2: a table at MMIO_BASE
    let at = |k: u64| BODY + 4 * k;
    let want = [
        abort(EC_DABT_CUR, FSC_SEA, 0x8000_0000, at(10)),
        abort(EC_DABT_CUR, FSC_SEA, 0x8000_0008, at(11)),
        abort(EC_IABT_CUR, FSC_SEA, 0x8000_0000, 0x8000_0000),
        w(MMIO_BASE, at(13)),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

/// Thumb code at EL0 (AArch32): 16-bit WFI and MMIO loads and stores. A trapped
/// instruction is stepped over by its own size (ESR_EL2.IL), 2 bytes here, as KVM's
/// `kvm_incr_pc` does: stepping 4 would skip the next instruction.
fn aarch32_thumb_el0_steps_by_instruction_size() -> TestResult {
    let (vm, mut vcpu) = hostile_vm(guest_to_el0_a32())?;
    let pfr0 = get_reg(&vcpu, sys_reg(3, 0, 0, 4, 0))?;
    if pfr0 & 0xf != 2 {
        return Ok(Outcome::Skip(format!(
            "no AArch32 at EL0 (ID_AA64PFR0_EL1 {pfr0:#x})"
        )));
    }
    // movs r1,#0; movs r2,#0; wfi; movs r1,#1; movs r2,#2; ldr r3,[r4]; movs r5,#5;
    // str r3,[r4,#4]; movs r6,#6; svc #0
    let thumb: [u16; 10] = [
        0x2100, 0x2200, 0xbf30, 0x2101, 0x2202, 0x6823, 0x2505, 0x6063, 0x2606, 0xdf00,
    ];
    let bytes: Vec<u8> = thumb.iter().flat_map(|h| h.to_le_bytes()).collect();
    vm.mem.write(0x300, &bytes);
    vm.mem.write(VECTORS + 0x600, guest_a32_report());
    // SCTLR_EL1.nTWI/nTWE: EL0 may execute WFI/WFE (so they trap to EL2, not EL1).
    let sctlr = get_reg(&vcpu, SCTLR_EL1)?;
    set_reg(&vcpu, SCTLR_EL1, sctlr | (1 << 16) | (1 << 18))?;
    // SPSR: AArch32 User mode (M = 0b10000), Thumb (T, bit 5), A, I, F masked.
    for (n, v) in [
        (20, MEM_BASE + 0x300),
        (21, 0x1f0),
        (4, MMIO_BASE + 0x40),
        (3, 0),
        (5, 0),
        (6, 0),
    ] {
        set_reg(&vcpu, core_reg_x(n), v)?;
    }
    let read = 0x1234_5678;
    let want = [
        Ev::Read(MMIO_BASE + 0x40, 4),
        Ev::Write(MMIO_BASE + 0x44, read, 4),
        Ev::Write(MMIO_BASE + 0x18, 0x4400_0000, 8), // SVC32, IL = 0 (16-bit), imm 0
        Ev::Write(MMIO_BASE + 0x20, 1, 4),
        Ev::Write(MMIO_BASE + 0x24, 2, 4),
        Ev::Write(MMIO_BASE + 0x28, read, 4),
        Ev::Write(MMIO_BASE + 0x2c, 5, 4),
        Ev::Write(MMIO_BASE + 0x30, 6, 4),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, read, false)?, &want)?;
    Ok(Outcome::Pass)
}

fn unaligned_accesses() -> TestResult {
    let (vm, mut vcpu) = hostile_vm(guest_unaligned())?;
    let data: Vec<u8> = (0..0x40u8)
        .map(|b| b.wrapping_mul(37).wrapping_add(11))
        .collect();
    vm.mem.write(0x2000, &data);
    identity_map(&vm, &vcpu)?;
    let read = 0x0102_0304_0506_0708;
    let got = events(&mut vcpu, read, false)?;
    let le = |off: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[off..off + 8]);
        u64::from_le_bytes(b)
    };
    let at = |k: u64| BODY + 4 * k;
    let align = |far: u64, k: u64| abort(EC_DABT_CUR, FSC_ALIGNMENT, far, at(k));
    // With the MMU off all data accesses are Device-nGnRnE, where the architecture gives
    // an alignment fault for an unaligned access. A CPU that does not check (QEMU's TCG
    // with the MMU off) lets it through: then the unaligned RAM load completes and the
    // MMIO ones are MMIO exits at the unaligned address, which rkvm passes on as KVM
    // does. Either way the host is not involved beyond the exit.
    let mut rest = got.as_slice();
    let mut next = || -> Result<Ev, String> {
        let (ev, tail) = rest.split_first().ok_or("the events ended early")?;
        rest = tail;
        Ok(ev.clone())
    };
    let first = next()?;
    let mut checked = true;
    if first == align(MEM_BASE + 0x2001, 4) {
        println!("# MMU off: the unaligned load from RAM took an alignment fault");
        check_eq!(next()?, w(MMIO_BASE, 0x5a5a));
    } else {
        println!("# MMU off: the unaligned load from RAM completed");
        check_eq!(first, w(MMIO_BASE, le(1)));
        checked = false;
    }
    let mut exits = 0;
    for (k, addr, len, write) in [
        (6, MMIO_BASE + 1, 8, false),
        (7, MMIO_BASE + 1, 2, false),
        (8, MMIO_BASE + 2, 4, true),
        (9, MMIO_BASE + 4, 8, true),
    ] {
        let ev = next()?;
        let ok = ev == align(addr, k)
            || match ev {
                Ev::Read(a, l) => !checked && !write && a == addr && l == len,
                Ev::Write(a, _, l) => !checked && write && a == addr && l == len,
                _ => false,
            };
        check!(ok, "the unaligned MMIO access {k} (MMU off) gave {ev:x?}");
        exits += usize::from(!matches!(ev, Ev::Fault { .. }));
    }
    println!("# MMU off: {exits} of 4 unaligned MMIO accesses were MMIO exits, the others alignment faults");
    let want = [
        Ev::Read(MMIO_BASE + 3, 1),
        w(MMIO_BASE + 0x20, le(1)),
        w(MMIO_BASE + 0x28, le(1)),
        // MMU on: MMIO is Device memory in the guest's tables, RAM Normal memory.
        align(MMIO_BASE + 1, 24),
        Ev::Read(MMIO_BASE + 8, 8),
        w(MMIO_BASE + 0x30, read),
        w(MMIO_BASE + 0x38, le(1)),
        Ev::Off,
    ];
    same_events(rest, &want)?;
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&data[1..9]);
    for (i, b) in stored.iter().enumerate() {
        // SAFETY: within the guest memory mapping; the guest has stopped.
        let got = unsafe { vm.mem.ptr.add(0x2013 + i).read_volatile() };
        check!(
            got == *b,
            "RAM + {:#x} holds {got:#x} after the unaligned store, expected {b:#x}",
            0x2013 + i
        );
    }
    Ok(Outcome::Pass)
}

fn out_of_slot_accesses_exit_to_mmio() -> TestResult {
    let (vm, mut vcpu) = hostile_vm(guest_out_of_slot())?;
    let read = 0x1122_3344_5566_7788;
    let end = MEM_BASE + RAM as u64;
    let want = [
        w(end, MMIO_BASE),
        Ev::Read(end + 8, 8),
        w(MMIO_BASE, read),
        w(0x3fff_fff8, MMIO_BASE),
        w(1 << 40, MMIO_BASE),
        Ev::Read((1 << 40) + 0xfff, 1),
        w(MMIO_BASE + 8, 0x88),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, read, false)?, &want)?;
    check_eq!(vm.mem.read_u64(RAM - 8), 0);
    Ok(Outcome::Pass)
}

/// KVM (`kvm_handle_guest_abort`): a translation fault between the VM's IPA size and the
/// host's PA size is not MMIO; the guest gets a synchronous external abort.
fn beyond_the_ipa_space_aborts() -> TestResult {
    let vm = TestVm::with_type(36, GuestMem::new(RAM)?, &[])?;
    let (_vm, mut vcpu) = hostile_vm_on(vm, guest_beyond_ipa())?;
    let at = |k: u64| BODY + 4 * k;
    let want = [
        abort(EC_DABT_CUR, FSC_SEA, 1 << 40, at(2)),
        abort(EC_DABT_CUR, FSC_SEA, 1 << 40, at(3)),
        abort(EC_DABT_CUR, FSC_SEA, 1 << 36, at(5)),
        w((1 << 36) - 8, MMIO_BASE),
        abort(EC_IABT_CUR, FSC_SEA, 1 << 40, 1 << 40),
        w(MMIO_BASE, at(12)),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

fn fetch_outside_memory_is_a_prefetch_abort() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_fetch())?;
    let at = |k: u64| BODY + 4 * k;
    let (past, odd, high) = (
        MEM_BASE + RAM as u64,
        MEM_BASE + 0x102,
        0xffff_0000_0000_0000,
    );
    let want = [
        // rkvm (as KVM) injects a synchronous external abort for a fetch from MMIO.
        abort(EC_IABT_CUR, FSC_SEA, MMIO_BASE, MMIO_BASE),
        abort(EC_IABT_CUR, FSC_SEA, past, past),
        // The guest's own faults, never seen by the host.
        abort(EC_PC_ALIGN, 0, odd, odd),
        abort(EC_IABT_CUR, FSC_ADDR_SIZE_L0, high, high),
        w(MMIO_BASE, at(9)),
        Ev::Off,
    ];
    let mut got = events(&mut vcpu, 0, false)?;
    // A PC alignment fault has no fault status code: compare EC, FAR and ELR.
    if let Some(Ev::Fault {
        ec: EC_PC_ALIGN,
        code,
        ..
    }) = got.get_mut(2)
    {
        *code = 0;
    }
    same_events(&got, &want)?;
    Ok(Outcome::Pass)
}

/// Whether the host CPU has the LSE atomics (`atomics` in /proc/cpuinfo's features).
fn host_has_lse_atomics() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with("Features") && l.split_whitespace().any(|w| w == "atomics"))
        })
        .unwrap_or(true)
}

fn exclusives_atomics_and_accesses_without_syndrome() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_no_syndrome())?;
    let read = 0x0123_4567_89ab_cdef;
    let got = events(&mut vcpu, read, true)?;
    let at = |k: u64| BODY + 4 * k;
    // Exclusives and atomics on MMIO have no syndrome to emulate from (KVM: ENOSYS), may
    // abort in the guest (Device memory), or be emulated: any one of them, per access. A
    // store-exclusive without a matching load-exclusive may also just fail, touching
    // nothing (architecturally allowed; QEMU does so).
    let mut rest = got.as_slice();
    let mut seen = Vec::new();
    // Without FEAT_LSE (an ARMv8.0 core such as the Cortex-A72) LDADD and CAS are
    // UNDEFINED in the guest, as on the host.
    let lse = host_has_lse_atomics();
    for (k, addr, write) in [
        (7, MMIO_BASE, false),
        (9, MMIO_BASE, true),
        (10, MMIO_BASE, false),
        (11, MMIO_BASE, false),
        (12, MMIO_BASE, false),
    ] {
        let (ev, tail) = rest.split_first().ok_or("the events ended early")?;
        let ok = match ev {
            Ev::Error(libc::ENOSYS, pc) => *pc == at(k),
            Ev::Fault {
                ec: EC_DABT_CUR,
                far: Some(f),
                elr,
                ..
            } => *f == addr && *elr == at(k),
            Ev::Fault {
                ec: EC_UNKNOWN,
                elr,
                ..
            } if !lse && (k == 11 || k == 12) => *elr == at(k),
            Ev::Read(a, 8) => !write && *a == addr,
            Ev::Write(a, _, 8) => write && *a == addr,
            _ => false,
        };
        if !ok && k == 9 {
            seen.push("nothing".to_string());
            continue;
        }
        check!(ok, "instruction {k}: {ev:x?}");
        seen.push(format!("{ev:x?}"));
        rest = tail;
        if k == 7 {
            // The str of x0 after the ldxr: the MMIO value, or x0 unchanged.
            let x0 = if matches!(ev, Ev::Read(..)) {
                read
            } else {
                0x77
            };
            let (ev, tail) = rest.split_first().ok_or("the events ended early")?;
            check_eq!(ev, &w(MMIO_BASE + 0x20, x0));
            rest = tail;
        }
    }
    println!("# exclusives and atomics on MMIO: {}", seen.join(", "));
    // LDP, post-indexed LDR and LDR to a SIMD register: no syndrome, ENOSYS as on KVM.
    let want = [
        Ev::Error(libc::ENOSYS, at(13)),
        Ev::Error(libc::ENOSYS, at(14)),
        Ev::Error(libc::ENOSYS, at(15)),
        Ev::Read(MMIO_BASE, 8),
        w(MMIO_BASE, read),
        w(MMIO_BASE + 0x28, read),
        Ev::Off,
    ];
    same_events(rest, &want)?;
    Ok(Outcome::Pass)
}

fn set_way_ops_keep_memory() -> TestResult {
    let (vm, mut vcpu) = hostile_vm(guest_set_way())?;
    let mut rng = XorShift::new(0x5e7_3a7);
    let mut host_sum = 0u64;
    for i in 0..8192 {
        let v = rng.next_u64();
        vm.mem.write_u64(0x8_0000 + 8 * i, v);
        host_sum = host_sum.wrapping_add(v);
    }
    let guest_sum = (0..8192u64).fold(0u64, |s, i| s.wrapping_add(MEM_BASE + 0xa_0000 + 8 * i));
    let want = [w(MMIO_BASE, host_sum), w(MMIO_BASE + 8, guest_sum), Ev::Off];
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    for i in 0..8192 {
        let off = 0xa_0000 + 8 * i;
        check_eq!(vm.mem.read_u64(off), MEM_BASE + off as u64);
    }
    Ok(Outcome::Pass)
}

fn wfi_wfe_and_cpu_suspend() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_wfx())?;
    let got = events(&mut vcpu, 0, false)?;
    let mut want = vec![w(MMIO_BASE, 0)];
    // WFIT/WFET: trapped and stepped over with FEAT_WFxT, UNDEF without.
    if got.get(1) == Some(&undef(9)) {
        want.extend([undef(9), undef(10)]);
        println!("# WFIT/WFET are UNDEF (no FEAT_WFxT)");
    }
    want.extend([w(MMIO_BASE + 8, 0), w(MMIO_BASE + 16, 0), Ev::Off]);
    same_events(&got, &want)?;
    Ok(Outcome::Pass)
}

fn brk_svc_udf_handled_by_the_guest() -> TestResult {
    let (_vm, mut vcpu) = hostile_vm(guest_brk())?;
    let at = |k: u64| BODY + 4 * k;
    let want = [
        Ev::Fault {
            ec: EC_BRK64,
            code: 0,
            far: None,
            elr: at(1),
        },
        Ev::Fault {
            ec: EC_BRK64,
            code: 0x1234,
            far: None,
            elr: at(2),
        },
        Ev::Fault {
            ec: EC_SVC64,
            code: 5,
            far: None,
            elr: at(4),
        },
        undef(4),
        undef(5),
        undef(6),
        undef(7),
        w(MMIO_BASE, MMIO_BASE),
        Ev::Off,
    ];
    same_events(&events(&mut vcpu, 0, false)?, &want)?;
    Ok(Outcome::Pass)
}

/// Random words: each in a 32-byte slot `[word, ldr x17, =done; str x17, [x17]; b .;
/// done (u64)]`, so that after the word (or the handler's step over it) the guest
/// reports `DONE + 8 * i`.
const WORDS: usize = 2000;
const SLOTS: usize = 0x1_0000;
const SLOT: usize = 32;
const DONE: u64 = MMIO_BASE + 0x10_0000;
const SCRATCH: u64 = MEM_BASE + 0x8_0000;
/// Exits one word may cause before it counts as derailed (e.g. sliding through zeros).
const WORD_EXITS: usize = 64;

fn slot_bytes(i: usize, word: u32) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[0..4].copy_from_slice(&word.to_le_bytes());
    s[4..8].copy_from_slice(&0x5800_0071u32.to_le_bytes()); // ldr x17, #12
    s[8..12].copy_from_slice(&0xf900_0231u32.to_le_bytes()); // str x17, [x17]
    s[12..16].copy_from_slice(&0x1400_0000u32.to_le_bytes()); // b .
    s[16..24].copy_from_slice(&(DONE + 8 * i as u64).to_le_bytes());
    s
}

/// A fresh VM for the random words: vectors, then the slots.
fn words_vm(words: &[u32]) -> Result<(TestVm, VcpuFd), String> {
    let vm = TestVm::new(RAM, &[])?;
    write_vectors(&vm.mem);
    for (i, &word) in words.iter().enumerate() {
        vm.mem.write(SLOTS + SLOT * i, &slot_bytes(i, word));
    }
    let vcpu = vm.vcpu(0, MEM_BASE + SLOTS as u64, 0)?;
    Ok((vm, vcpu))
}

/// Register values the words work on: pointers into scratch RAM (aligned or not), MMIO,
/// the edges of RAM, beyond the IPA and PA spaces, and boundary integers.
const REGS: [u64; 16] = [
    SCRATCH,
    MMIO_BASE,
    SCRATCH + 0x4_0001,
    0,
    1,
    u64::MAX,
    MMIO_BASE + 3,
    1 << 63,
    SCRATCH + 0x2_0000,
    1 << 40,
    MEM_BASE + 0xf_fff8,
    MEM_BASE + RAM as u64,
    0xffff_ffff_ffff_f000,
    8,
    0x7fff_ffff,
    0x8000_0000,
];

#[derive(Default)]
struct WordStats {
    done: u64,
    faults: std::collections::BTreeMap<u8, u64>,
    mmio: u64,
    derailed: u64,
    kicked: u64,
    errors: std::collections::BTreeMap<i32, u64>,
    ended: u64,
    repaired: u64,
}

/// `KVM_RUN` with `immediate_exit`: completes a pending MMIO exit and returns at once.
fn settle(vcpu: &mut VcpuFd) -> Result<(), String> {
    vcpu.set_kvm_immediate_exit(1);
    let r = vcpu.run().map(|e| format!("{e:?}")).map_err(|e| e.errno());
    vcpu.set_kvm_immediate_exit(0);
    match r {
        Err(libc::EINTR) => Ok(()),
        other => Err(format!(
            "KVM_RUN with immediate_exit: {other:?}, expected EINTR"
        )),
    }
}

fn random_instruction_words() -> TestResult {
    let seed = fuzz_seed(0x6b76_6d5f_686f_7374);
    println!("# seed {seed:#x} (rkvmtest.seed= replays it)");
    let mut rng = XorShift::new(seed);
    let words: Vec<u32> = (0..WORDS).map(|_| rng.next_u32()).collect();
    let (mut vm, mut vcpu) = words_vm(&words)?;
    let sctlr = get_reg(&vcpu, SCTLR_EL1)?;
    let kick = Kick::new()?;
    let mut st = WordStats::default();
    let start = Instant::now();
    for (i, &word) in words.iter().enumerate() {
        // Earlier words may have stored over this slot or the vectors: put them back.
        let slot = SLOTS + SLOT * i;
        let want = slot_bytes(i, word);
        // SAFETY: both ranges lie within the guest memory mapping; the guest is stopped.
        let (have, vectors) = unsafe {
            (
                core::slice::from_raw_parts(vm.mem.ptr.add(slot), SLOT),
                core::slice::from_raw_parts(vm.mem.ptr.add(VECTORS), 16 * 0x80),
            )
        };
        let handler = guest_handler();
        if have != want || (0..16).any(|v| &vectors[v * 0x80..v * 0x80 + handler.len()] != handler)
        {
            st.repaired += 1;
            vm.mem.write(slot, &want);
            write_vectors(&vm.mem);
        }
        // A clean state for every word: EL1h with interrupts masked, MMU off, the
        // vectors, FP on for every other word, registers from the table and random.
        let slot_pc = MEM_BASE + slot as u64;
        for n in 0..30u64 {
            let v = if n < 16 {
                REGS[n as usize]
            } else if rng.one_in(2) {
                rng.next_u64()
            } else {
                rng.pick(&REGS)
            };
            set_reg(&vcpu, core_reg_x(n), v)?;
        }
        set_reg(&vcpu, core_reg_x(30), slot_pc + 4)?; // where a stray branch comes back
        set_reg(&vcpu, core_reg(62, false), SCRATCH + 0x1_0000)?; // SP_EL0
        set_reg(&vcpu, core_reg(68, false), SCRATCH + 0x1_8000)?; // SP_EL1
        set_reg(&vcpu, core_reg_pstate(), 0x3c5)?;
        set_reg(&vcpu, SCTLR_EL1, sctlr)?;
        set_reg(&vcpu, sys_reg(3, 0, 12, 0, 0), MEM_BASE + VECTORS as u64)?; // VBAR_EL1
        set_reg(
            &vcpu,
            sys_reg(3, 0, 1, 0, 2),
            if i % 2 == 1 { 0x30_0000 } else { 0 },
        )?; // CPACR_EL1
        set_reg(&vcpu, core_reg_pc(), slot_pc)?;
        // A word that loops in the guest (a branch to itself, an MMU enabled over
        // garbage) is stopped by the kick.
        kick.arm(Duration::from_millis(100));
        let mut ended = false;
        let mut exits = 0;
        loop {
            exits += 1;
            if exits > WORD_EXITS {
                st.derailed += 1;
                break;
            }
            match vcpu.run() {
                Ok(VcpuExit::MmioWrite(a, _)) if a == DONE + 8 * i as u64 => {
                    st.done += 1;
                    break;
                }
                Ok(VcpuExit::MmioWrite(a, _)) if (DONE..DONE + 8 * WORDS as u64).contains(&a) => {
                    st.derailed += 1;
                    break;
                }
                Ok(VcpuExit::MmioWrite(FAULT_ESR, d)) => {
                    *st.faults
                        .entry((le_value(d) >> 26) as u8 & 0x3f)
                        .or_default() += 1;
                }
                Ok(VcpuExit::MmioWrite(FAULT_FAR | FAULT_ELR, _)) => {}
                Ok(VcpuExit::MmioWrite(..)) => st.mmio += 1,
                Ok(VcpuExit::MmioRead(_, d)) => {
                    d.fill(0xa5);
                    st.mmio += 1;
                }
                Ok(other) => {
                    // A KVM exit other than MMIO (a PSCI system event, ...): this VM is done.
                    println!("# word {i} ({word:#010x}): exit {other:?}; a new VM takes over");
                    st.ended += 1;
                    ended = true;
                    break;
                }
                Err(e) if e.errno() == libc::EINTR => {
                    st.kicked += 1;
                    break;
                }
                Err(e) => {
                    // A KVM-style error (ENOSYS for an access without syndrome, ...):
                    // the next word resets the PC.
                    *st.errors.entry(e.errno()).or_default() += 1;
                    break;
                }
            }
        }
        kick.disarm();
        // An MMIO exit is completed by the next KVM_RUN, which steps the PC past the
        // access, as on KVM, even after SET_ONE_REG(PC): complete it now, without
        // entering the guest, so the next word starts where it is put.
        settle(&mut vcpu)?;
        if ended {
            drop(vcpu);
            (vm, vcpu) = words_vm(&words)?;
        }
    }
    println!(
        "# {WORDS} words in {:?}: {} reached their end, {} derailed, {} stopped by the kick, \
        {} MMIO exits, {} repairs, {} VMs ended",
        start.elapsed(),
        st.done,
        st.derailed,
        st.kicked,
        st.mmio,
        st.repaired,
        st.ended
    );
    println!("# guest exceptions by EC: {:x?}", st.faults);
    println!("# KVM_RUN errors by errno: {:?}", st.errors);
    // Most words are unallocated or harmless: the guest mostly keeps running.
    check!(
        st.done > WORDS as u64 / 2,
        "only {} of {WORDS} words ran to their end",
        st.done
    );
    // The VM still runs ordinary code.
    vm.mem.write(0x400, guest_sum());
    set_reg(&vcpu, core_reg_pstate(), 0x3c5)?;
    set_reg(&vcpu, SCTLR_EL1, sctlr)?;
    set_reg(&vcpu, core_reg_pc(), MEM_BASE + 0x400)?;
    kick.arm(Duration::from_secs(5));
    let r = events(&mut vcpu, 0, false);
    kick.disarm();
    same_events(&r?, &[w(MMIO_BASE, 5050), Ev::Off])?;
    Ok(Outcome::Pass)
}

fn kernel_log_clean_and_fresh_vm_runs() -> TestResult {
    log_clean()?;
    let trouble = TROUBLE.lock().map_err(|_| "lock poisoned")?;
    check!(
        trouble.is_empty(),
        "the kernel reported trouble during the run:\n{}",
        trouble.join("\n")
    );
    let vm = TestVm::new(1 << 16, guest_sum())?;
    let mut vcpu = vm.vcpu(0, MEM_BASE, 0)?;
    check_eq!(run_to_write(&mut vcpu)?, (MMIO_BASE, 5050));
    check_eq!(run(&mut vcpu, 0)?, Exit::SystemEvent(SHUTDOWN));
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
        "rkvm_hostile_guest",
        host_runs_guests(),
        rkvm_selftests::NO_GUESTS_REASON,
        &[
            logged!(neighbour_vm_starts),
            logged!(undefined_and_impdef_registers_undef),
            logged!(el2_and_el3_registers_undef),
            logged!(pmu_timer_lor_trace_amu_registers_undef),
            logged!(gic_registers_undef_without_a_vgic),
            logged!(gic_registers_work_with_a_vgic),
            logged!(debug_registers_are_storage),
            logged!(hvc_and_smc_with_garbage),
            logged!(hyp_call_numbers_and_el2_ops_from_the_guest),
            logged!(unaligned_accesses),
            logged!(stage1_walk_into_mmio_aborts),
            logged!(aarch32_thumb_el0_steps_by_instruction_size),
            logged!(out_of_slot_accesses_exit_to_mmio),
            logged!(beyond_the_ipa_space_aborts),
            logged!(fetch_outside_memory_is_a_prefetch_abort),
            logged!(exclusives_atomics_and_accesses_without_syndrome),
            logged!(set_way_ops_keep_memory),
            logged!(wfi_wfe_and_cpu_suspend),
            logged!(brk_svc_udf_handled_by_the_guest),
            logged!(random_instruction_words),
            logged!(neighbour_vm_unaffected),
            (
                "kernel_log_clean_and_fresh_vm_runs",
                kernel_log_clean_and_fresh_vm_runs,
            ),
        ],
    )
}
