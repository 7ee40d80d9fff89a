// SPDX-License-Identifier: GPL-2.0

//! Generates `include/generated/rkvm/asm-offsets.h` for the EL2 assembly, the way the
//! kernel's `asm-offsets.c` does: Kbuild compiles this crate to assembly (`%.s: %.rs`),
//! where every `=>` line below carries a value the compiler computed from the Rust
//! definitions, and `sed` turns those lines into the header. The structures and numbers
//! come from `logic/el2abi.rs` and the register list from `logic/el1regs.rs`, mounted
//! here on their own; nothing in this crate is linked into rkvm.ko.

#![allow(dead_code)]

#[path = "../logic/el1regs.rs"]
mod el1regs;
#[path = "../logic/el2abi.rs"]
mod el2abi;

use core::{arch::global_asm, mem::offset_of};
use el1regs::El1Reg;
use el2abi::{call, exit, feature, El1Block, GuestGprs, HypCpu, VgicCpuIf};

/// `#define $name $value` in the header.
macro_rules! define {
    ($($name:ident = $value:expr;)*) => {
        $(global_asm!(concat!(".ascii \"=>#define ", stringify!($name), " {}\""), const $value);)*
    };
}

// struct GuestGprs: the GPRs as entry.S and hyp.S move them.
define! {
    GPR_X0 = offset_of!(GuestGprs, x);
    GPR_SP_EL0 = offset_of!(GuestGprs, sp_el0);
}

// struct HypCpu, the nVHE per-CPU EL2 data.
define! {
    HC_GPRS = offset_of!(HypCpu, gprs);
    HC_SP_EL0 = offset_of!(HypCpu, gprs) + offset_of!(GuestGprs, sp_el0);
    HC_PC = offset_of!(HypCpu, pc);
    HC_PSTATE = offset_of!(HypCpu, pstate);
    HC_GUEST_EL1 = offset_of!(HypCpu, guest);
    HC_HCR = offset_of!(HypCpu, hcr);
    HC_CPTR = offset_of!(HypCpu, cptr);
    HC_MDCR = offset_of!(HypCpu, mdcr);
    HC_CNTHCTL = offset_of!(HypCpu, cnthctl);
    HC_VTTBR = offset_of!(HypCpu, vttbr);
    HC_VTCR = offset_of!(HypCpu, vtcr);
    HC_CNTVOFF = offset_of!(HypCpu, cntvoff);
    HC_VMPIDR = offset_of!(HypCpu, vmpidr);
    HC_ESR = offset_of!(HypCpu, esr);
    HC_FAR = offset_of!(HypCpu, far);
    HC_HPFAR = offset_of!(HypCpu, hpfar);
    HC_EXIT_HCR = offset_of!(HypCpu, exit_hcr);
    HC_GUEST_APIA = offset_of!(HypCpu, guest_apia);
    HC_HOST_APIA = offset_of!(HypCpu, host_apia);
    HC_HOST_X18 = offset_of!(HypCpu, host_x18_x30);
    HC_HOST_SP_EL0 = offset_of!(HypCpu, host_sp_el0);
    HC_HOST_ELR_EL2 = offset_of!(HypCpu, host_elr_el2);
    HC_HOST_SPSR_EL2 = offset_of!(HypCpu, host_spsr_el2);
    HC_HOST_EL1 = offset_of!(HypCpu, host);
    HC_HOST_HCR = offset_of!(HypCpu, host_hcr);
    HC_HOST_CPTR = offset_of!(HypCpu, host_cptr);
    HC_HOST_MDCR = offset_of!(HypCpu, host_mdcr);
    HC_HOST_CNTHCTL = offset_of!(HypCpu, host_cnthctl);
    HC_HOST_VPIDR = offset_of!(HypCpu, host_vpidr);
    HC_HOST_VMPIDR = offset_of!(HypCpu, host_vmpidr);
    HC_HOST_TCR2 = offset_of!(HypCpu, host_tcr2);
    HC_HOST_PIR = offset_of!(HypCpu, host_pir);
    HC_HOST_PIRE0 = offset_of!(HypCpu, host_pire0);
    HC_HOST_POR = offset_of!(HypCpu, host_por);
    HC_HOST_SCTLR2 = offset_of!(HypCpu, host_sctlr2);
    HC_FEATURES = offset_of!(HypCpu, features);
    HC_STUB_VBAR = offset_of!(HypCpu, stub_vbar);
    HC_STUB_SCTLR = offset_of!(HypCpu, stub_sctlr);
    HC_TEARDOWN_PA = offset_of!(HypCpu, teardown_pa);
    HC_INIT_MAIR = offset_of!(HypCpu, init_mair);
    HC_INIT_TCR = offset_of!(HypCpu, init_tcr);
    HC_INIT_TTBR = offset_of!(HypCpu, init_ttbr);
    HC_INIT_SCTLR = offset_of!(HypCpu, init_sctlr);
    HC_INIT_SELF = offset_of!(HypCpu, init_self);
    HC_INIT_STACK = offset_of!(HypCpu, init_stack);
    HC_INIT_VECTORS = offset_of!(HypCpu, init_vectors);
    HC_PANIC_ESR = offset_of!(HypCpu, panic_esr);
    HC_PANIC_ELR = offset_of!(HypCpu, panic_elr);
    HC_PANIC_FAR = offset_of!(HypCpu, panic_far);
    HC_PANIC_HANDLER = offset_of!(HypCpu, panic_handler);
    HC_GIC = offset_of!(HypCpu, gic);
    HC_GIC_NR_LRS = offset_of!(HypCpu, gic_nr_lrs);
    HC_GIC_NR_APRS = offset_of!(HypCpu, gic_nr_aprs);
    HC_GIC_IDLE_HCR = offset_of!(HypCpu, gic_idle_hcr);
    HC_GUEST_DISR = offset_of!(HypCpu, guest_disr);
    HC_GUEST_VSESR = offset_of!(HypCpu, guest_vsesr);
    HC_GUEST_HCRX = offset_of!(HypCpu, guest_hcrx);
    HC_HOST_HCRX = offset_of!(HypCpu, host_hcrx);
    HC_GUEST_FGT = offset_of!(HypCpu, guest_fgt);
    HC_HOST_FGT = offset_of!(HypCpu, host_fgt);
}

// struct VgicCpuIf, the GICv3 CPU interface save area.
define! {
    GIC_HCR = offset_of!(VgicCpuIf, hcr);
    GIC_VMCR = offset_of!(VgicCpuIf, vmcr);
    GIC_AP0R = offset_of!(VgicCpuIf, ap0r);
    GIC_AP1R = offset_of!(VgicCpuIf, ap1r);
    GIC_LR = offset_of!(VgicCpuIf, lr);
    GIC_USED_LRS = offset_of!(VgicCpuIf, used_lrs);
    GIC_ELRSR = offset_of!(VgicCpuIf, elrsr);
    GIC_EISR = offset_of!(VgicCpuIf, eisr);
    GIC_MISR = offset_of!(VgicCpuIf, misr);
}

// struct El1Block: the banked and timer registers after the El1Reg slots.
define! {
    EL1_SP = offset_of!(El1Block, sp_el1);
    EL1_ELR = offset_of!(El1Block, elr_el1);
    EL1_SPSR = offset_of!(El1Block, spsr_el1);
    EL1_CNTV_CTL = offset_of!(El1Block, cntv_ctl);
    EL1_CNTV_CVAL = offset_of!(El1Block, cntv_cval);
}

/// `EL1_SLOT_<reg>`, the offset of each switched register in `El1Block`.
macro_rules! define_el1_slots {
    ($($reg:ident = $enc:tt, $reset:literal, $how:ident $(($el1:ident, $vhe:ident))?;)*) => {
        $($(global_asm!(
            concat!(".ascii \"=>#define EL1_SLOT_", stringify!($el1), " {}\""),
            const offset_of!(El1Block, sys) + El1Reg::$reg as usize * 8,
        );)?)*
    };
}
el1regs::el1_regs!(define_el1_slots);

/// `RKVM_EL1_SWITCHED(P, S)`: `P(<reg>, <next reg>)` for each pair of switched registers
/// in adjacent slots, in slot order, and `S(<reg>)` for an odd one out, so that the
/// assembly moves them with LDP/STP. The pairs are asserted adjacent.
macro_rules! define_el1_switched {
    (@pair [$($done:tt)*] ($ra:ident $a:ident) ($rb:ident $b:ident) $($rest:tt)*) => {
        const _: () = assert!(El1Reg::$rb as usize == El1Reg::$ra as usize + 1);
        define_el1_switched!(
            @pair [$($done)* " P(", stringify!($a), ", ", stringify!($b), ")",] $($rest)*
        );
    };
    (@pair [$($done:tt)*] ($ra:ident $a:ident)) => {
        define_el1_switched!(@pair [$($done)* " S(", stringify!($a), ")",]);
    };
    (@pair [$($done:tt)*]) => {
        global_asm!(concat!(".ascii \"=>#define RKVM_EL1_SWITCHED(P, S)", $($done)* "\""));
    };
    ($($reg:ident = $enc:tt, $reset:literal, $how:ident $(($el1:ident, $vhe:ident))?;)*) => {
        define_el1_switched!(@pair [] $($(($reg $el1))?)*);
    };
}
el1regs::el1_regs!(define_el1_switched);

define! {
    HCR_API_BIT = el2abi::HCR_API_SHIFT;
}

define! {
    EXIT_SYNC = exit::SYNC;
    EXIT_IRQ = exit::IRQ;
    EXIT_FIQ = exit::FIQ;
    EXIT_SERROR = exit::SERROR;
}

// HypCpu.features bits, as bit numbers for tbz/tbnz.
define! {
    FEAT_TCRX = feature::TCRX.trailing_zeros();
    FEAT_S1PIE = feature::S1PIE.trailing_zeros();
    FEAT_S1POE = feature::S1POE.trailing_zeros();
    FEAT_SCTLRX = feature::SCTLRX.trailing_zeros();
    FEAT_RAS = feature::RAS.trailing_zeros();
    FEAT_HCX = feature::HCX.trailing_zeros();
    FEAT_FGT = feature::FGT.trailing_zeros();
    FEAT_FGT2 = feature::FGT2.trailing_zeros();
}

define! {
    RKVM_HC_PROBE = call::PROBE;
    RKVM_HC_VCPU_RUN = call::VCPU_RUN;
    RKVM_HC_TLB_FLUSH_VMID = call::TLB_FLUSH_VMID;
    RKVM_HC_TEARDOWN = call::TEARDOWN;
    RKVM_HYP_MAGIC = call::MAGIC;
}
