// SPDX-License-Identifier: GPL-2.0

//! What Rust shares with the EL2 assembly (`arch/arm64/hyp/entry.S`, `hyp/nvhe/hyp.S`):
//! the `#[repr(C)]` blocks those files load and store, and the numbers they compare
//! against. This is the one definition: `hyp/asm_offsets.rs` turns it into the
//! `rkvm/asm-offsets.h` the assembly includes (as the kernel's `asm-offsets.c`), so a
//! field is added here and nowhere else.
//!
//! It depends on nothing but `core` and [`super::el1regs`], because the asm-offsets
//! crate mounts it on its own.

use super::el1regs::El1Reg;

/// x0-x30 and SP_EL0, as the world switch loads and stores them.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct GuestGprs {
    pub(crate) x: [u64; 31],
    pub(crate) sp_el0: u64,
}

/// List registers the save area holds (the architectural maximum).
pub(crate) const VGIC_MAX_LRS: usize = 16;

/// The guest's GICv3 virtual CPU interface as the world switch moves it, the same for
/// both backends (KVM counterpart: `struct vgic_v3_cpu_if`).
///
/// - `vmcr`, `ap0r`, `ap1r`: the guest's own CPU-interface state (priority mask, group
///   enables, active priorities). VHE moves them at `vcpu_load`/`vcpu_put`.
/// - `hcr`, `lr[..used_lrs]`: written by the vGIC's flush before an entry; the backend
///   loads them into ICH_HCR_EL2/ICH_LR<n>_EL2 only when `used_lrs` != 0, and after the
///   exit reads the LRs back (and ELRSR/EISR/MISR), then clears ICH_HCR_EL2.En and the
///   LRs. With `used_lrs` == 0 no ICH_* register is touched on entry or exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VgicCpuIf {
    /// ICH_HCR_EL2 while LRs are in use (En, and UIE when interrupts wait for an LR).
    pub(crate) hcr: u64,
    /// ICH_VMCR_EL2.
    pub(crate) vmcr: u64,
    /// ICH_AP0R<n>_EL2 and ICH_AP1R<n>_EL2 (as many as ICH_VTR_EL2.PREbits implies).
    pub(crate) ap0r: [u64; 4],
    pub(crate) ap1r: [u64; 4],
    /// ICH_LR<n>_EL2: `used_lrs` valid entries before entry, read back after exit.
    pub(crate) lr: [u64; VGIC_MAX_LRS],
    pub(crate) used_lrs: u64,
    /// ICH_ELRSR_EL2, ICH_EISR_EL2 and ICH_MISR_EL2 as read after the last exit that had
    /// LRs in use (diagnostics and maintenance-interrupt accounting).
    pub(crate) elrsr: u64,
    pub(crate) eisr: u64,
    pub(crate) misr: u64,
}

/// An EL1 register block as the nVHE world switch saves and loads it (guest's or host's).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct El1Block {
    /// [`El1Reg`] slots; only the `switched` ones are ever in the CPU.
    pub(crate) sys: [u64; El1Reg::COUNT],
    pub(crate) sp_el1: u64,
    pub(crate) elr_el1: u64,
    pub(crate) spsr_el1: u64,
    pub(crate) cntv_ctl: u64,
    pub(crate) cntv_cval: u64,
}

/// One CPU's EL2 data on an nVHE host: the loaded vCPU's state, the host's state while a
/// guest runs, and what the install recorded. EL2 finds it through TPIDR_EL2; EL1
/// touches it only on its own CPU with preemption off (`hyp/nvhe.rs`).
#[repr(C)]
pub(crate) struct HypCpu {
    pub(crate) gprs: GuestGprs,
    pub(crate) pc: u64,
    pub(crate) pstate: u64,
    pub(crate) guest: El1Block,
    // Per-entry controls, computed at EL1 (`logic::traps`).
    pub(crate) hcr: u64,
    pub(crate) cptr: u64,
    pub(crate) mdcr: u64,
    pub(crate) cnthctl: u64,
    pub(crate) vttbr: u64,
    pub(crate) vtcr: u64,
    pub(crate) cntvoff: u64,
    pub(crate) vmpidr: u64,
    // Exit syndrome.
    pub(crate) esr: u64,
    pub(crate) far: u64,
    pub(crate) hpfar: u64,
    pub(crate) exit_hcr: u64,
    /// APIAKEYLO/HI_EL1 of a vCPU with pointer authentication (HCR_EL2.API in `hcr`):
    /// the guest's, in for the entry and out after the exit, and the host kernel's,
    /// saved by EL2 meanwhile (the other keys move at load and put, from EL1).
    pub(crate) guest_apia: [u64; 2],
    pub(crate) host_apia: [u64; 2],
    // The host's, saved by EL2 while a guest runs.
    pub(crate) host_x18_x30: [u64; 13],
    pub(crate) host_sp_el0: u64,
    pub(crate) host_elr_el2: u64,
    pub(crate) host_spsr_el2: u64,
    pub(crate) host: El1Block,
    pub(crate) host_hcr: u64,
    pub(crate) host_cptr: u64,
    pub(crate) host_mdcr: u64,
    pub(crate) host_cnthctl: u64,
    pub(crate) host_vpidr: u64,
    pub(crate) host_vmpidr: u64,
    pub(crate) host_tcr2: u64,
    pub(crate) host_pir: u64,
    pub(crate) host_pire0: u64,
    pub(crate) host_por: u64,
    pub(crate) host_sctlr2: u64,
    // Install.
    pub(crate) features: u64,
    pub(crate) stub_vbar: u64,
    pub(crate) stub_sctlr: u64,
    pub(crate) teardown_pa: u64,
    pub(crate) init_mair: u64,
    pub(crate) init_tcr: u64,
    pub(crate) init_ttbr: u64,
    pub(crate) init_sctlr: u64,
    pub(crate) init_self: u64,
    pub(crate) init_stack: u64,
    pub(crate) init_vectors: u64,
    // An exception EL2 could not handle (`__rkvm_hyp_panic`), kept for a debugger.
    pub(crate) panic_esr: u64,
    pub(crate) panic_elr: u64,
    pub(crate) panic_far: u64,
    /// The EL1 address `__rkvm_hyp_panic` returns to, set at install: the host's panic
    /// report (`rkvm_nvhe_hyp_panic`). EL2 only writes it to ELR_EL2.
    pub(crate) panic_handler: u64,
    /// The guest's GICv3 CPU interface, loaded and saved around every entry.
    pub(crate) gic: VgicCpuIf,
    /// This CPU's list registers and APRs per group (0: no GICv3 virtual interface).
    pub(crate) gic_nr_lrs: u64,
    pub(crate) gic_nr_aprs: u64,
    /// ICH_HCR_EL2 for entries with no list register in use (`VmRegs::ich_hcr`): the
    /// `ICC_*` traps of a VM without a vGIC, 0 otherwise.
    pub(crate) gic_idle_hcr: u64,
    /// The guest's DISR_EL1, moved through VDISR_EL2 around every entry on a RAS host.
    pub(crate) guest_disr: u64,
    /// VSESR_EL2 for the entry, on a RAS host: the syndrome of a pending virtual SError.
    pub(crate) guest_vsesr: u64,
    /// HCRX_EL2 (with `feature::HCX`) and the fine-grained trap registers (with
    /// `feature::FGT`, the last five with `feature::FGT2`; order of `logic::fgt::FgtReg`)
    /// for the guest, computed at load, and the host's, recorded at install: the host
    /// kernel at EL1 runs under them too, so every entry and exit switches them.
    pub(crate) guest_hcrx: u64,
    pub(crate) host_hcrx: u64,
    pub(crate) guest_fgt: [u64; FGT_REGS],
    pub(crate) host_fgt: [u64; FGT_REGS],
    /// EL1 only: rkvm installed its runtime on this CPU (CPU hotplug) and has not taken
    /// it away; CPU_PM gives EL2 back and reinstalls only then (KVM's
    /// `kvm_hyp_initialized`).
    pub(crate) installed: u64,
}

/// The fine-grained trap registers the world switch moves: HFGRTR, HFGWTR, HFGITR,
/// HDFGRTR, HDFGWTR (FEAT_FGT), then HFGRTR2, HFGWTR2, HFGITR2, HDFGRTR2, HDFGWTR2
/// (FEAT_FGT2).
pub(crate) const FGT_REGS: usize = 10;

/// Fields the assembly moves in pairs (LDP/STP), which must stay adjacent.
macro_rules! adjacent {
    ($t:ty: $($a:ident, $b:ident);*) => {
        const _: () = {
            $(assert!(core::mem::offset_of!($t, $b) == core::mem::offset_of!($t, $a) + 8);)*
        };
    };
}
adjacent!(El1Block: sp_el1, elr_el1; spsr_el1, cntv_ctl);
adjacent!(HypCpu: pc, pstate; mdcr, cnthctl; host_elr_el2, host_spsr_el2; host_hcr, host_cptr;
    host_mdcr, host_cnthctl; host_vpidr, host_vmpidr; host_pir, host_pire0;
    guest_hcrx, host_hcrx);

/// The page that holds a CPU's [`HypCpu`].
pub(crate) const HYPCPU_MAX_SIZE: usize = 4096;
const _: () = assert!(core::mem::size_of::<HypCpu>() <= HYPCPU_MAX_SIZE);

/// How the guest left: the vector the world switch took (its return value).
pub(crate) mod exit {
    pub(crate) const SYNC: u64 = 1;
    pub(crate) const IRQ: u64 = 2;
    pub(crate) const FIQ: u64 = 3;
    pub(crate) const SERROR: u64 = 4;
}

/// HCR_EL2.API, set for a vCPU with pointer authentication: the nVHE world switch tests
/// it to switch the APIA key (`logic::traps::hcr::API`).
pub(crate) const HCR_API_SHIFT: u32 = 41;

/// The world switch's return value as the run loop acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    Sync,
    Irq,
    Fiq,
    SError,
    /// Not an exit: the guest never ran. Any other value, such as the hyp stub's
    /// `HVC_STUB_ERR` when something gave EL2 back to the stub under rkvm (KVM's
    /// `ARM_EXCEPTION_HYP_GONE`). The syndrome registers hold nothing of this entry, so
    /// the run loop must not handle it as an exit: it reports `KVM_EXIT_FAIL_ENTRY`.
    FailEntry(u64),
}

impl ExitCode {
    pub(crate) const fn decode(raw: u64) -> Self {
        match raw {
            exit::SYNC => Self::Sync,
            exit::IRQ => Self::Irq,
            exit::FIQ => Self::Fiq,
            exit::SERROR => Self::SError,
            _ => Self::FailEntry(raw),
        }
    }
}

/// `HypCpu.features` bits: optional registers the host kernel may use, which the nVHE
/// world switch must save and restore.
pub(crate) mod feature {
    pub(crate) const TCRX: u64 = 1 << 0;
    pub(crate) const S1PIE: u64 = 1 << 1;
    pub(crate) const S1POE: u64 = 1 << 2;
    pub(crate) const SCTLRX: u64 = 1 << 3;
    /// FEAT_RAS: the guest's DISR_EL1 lives in VDISR_EL2 (HCR_EL2.AMO is set).
    pub(crate) const RAS: u64 = 1 << 4;
    /// FEAT_HCX, FEAT_FGT, FEAT_FGT2: HCRX_EL2 and the trap registers to switch.
    pub(crate) const HCX: u64 = 1 << 5;
    pub(crate) const FGT: u64 = 1 << 6;
    pub(crate) const FGT2: u64 = 1 << 7;
}

/// rkvm's hyp calls (x0 of `HVC #0`): SMCCC 64-bit fast calls owned by the "vendor
/// hypervisor" range, far from the hyp stub's 0..=4, which the runtime answers as the
/// stub does. Arguments in x1.., result in x0 (0 = done, `HVC_STUB_ERR` = unknown call).
pub(crate) mod call {
    /// x1 = `MAGIC` back when rkvm's runtime owns EL2 on this CPU.
    pub(crate) const PROBE: u64 = 0xc600_0100;
    /// Runs the vCPU in this CPU's `HypCpu`; x0 = exit code.
    pub(crate) const VCPU_RUN: u64 = 0xc600_0101;
    /// x1 = VTTBR; invalidates that VMID's TLB entries (only the VMID field is used).
    pub(crate) const TLB_FLUSH_VMID: u64 = 0xc600_0102;
    /// Gives EL2 back to the hyp stub on this CPU.
    pub(crate) const TEARDOWN: u64 = 0xc600_0103;
    pub(crate) const MAGIC: u64 = 0x726b_766d;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_decode() {
        assert_eq!(ExitCode::decode(exit::SYNC), ExitCode::Sync);
        assert_eq!(ExitCode::decode(exit::IRQ), ExitCode::Irq);
        assert_eq!(ExitCode::decode(exit::FIQ), ExitCode::Fiq);
        assert_eq!(ExitCode::decode(exit::SERROR), ExitCode::SError);
    }

    #[test]
    fn unknown_exit_codes_are_failed_entries() {
        // The stub's HVC_STUB_ERR (the runtime is gone), 0 (what a stub call that
        // "succeeds" returns) and anything else the world switch never produces.
        for raw in [0xbadca11, 0, 5, 0xc600_0101, u64::MAX] {
            assert_eq!(ExitCode::decode(raw), ExitCode::FailEntry(raw));
        }
    }

    #[test]
    fn calls_do_not_collide_with_the_stub() {
        for c in [
            call::PROBE,
            call::VCPU_RUN,
            call::TLB_FLUSH_VMID,
            call::TEARDOWN,
        ] {
            assert!(c > 4 && c != 0xbadca11);
        }
    }
}
