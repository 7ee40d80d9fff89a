// SPDX-License-Identifier: GPL-2.0

//! A vCPU's architectural state as the world switch saves and restores it.
//!
//! KVM counterpart: `struct kvm_cpu_context` (`asm/kvm_host.h`). The state is split by
//! when it moves:
//! - [`VcpuContext`]: switched on every entry and exit (GPRs, PC, PSTATE). The GPR block
//!   is `#[repr(C)]` with a layout `arch/arm64/hyp/entry.S` hard-codes; the asserts below
//!   keep the two in step.
//! - [`El1Regs`]: the guest's EL1 and EL0-thread registers, switched lazily, in
//!   `vcpu_load`/`vcpu_put` (see `hyp/vhe.rs` and `vcpu/load_put.rs`).
//! - [`VgicCpuIf`] (in `El1Regs`): the guest's GICv3 CPU interface, part switched at
//!   load/put (VMCR, APRs) and part per entry (HCR, LRs, only when `used_lrs` != 0).

use crate::logic::regs::El1Reg;
use core::mem::offset_of;

/// x0-x30 and SP_EL0, as `entry.S` loads and stores them.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct GuestGprs {
    pub(crate) x: [u64; 31],
    pub(crate) sp_el0: u64,
}

const _: () = assert!(offset_of!(GuestGprs, x) == 0);
const _: () = assert!(offset_of!(GuestGprs, sp_el0) == 31 * 8);

/// The state switched on every guest entry and exit.
#[derive(Clone, Copy)]
pub(crate) struct VcpuContext {
    pub(crate) gprs: GuestGprs,
    pub(crate) pc: u64,
    pub(crate) pstate: u64,
    /// The four AArch32 banked SPSRs of `struct kvm_regs` (kept for ONE_REG only).
    pub(crate) spsr_aa32: [u64; 4],
    /// MPIDR_EL1 the guest reads (through VMPIDR_EL2).
    pub(crate) mpidr: u64,
    /// A virtual SError is to be delivered on the next entry.
    pub(crate) pending_vserror: bool,
}

impl VcpuContext {
    /// The architectural reset state for a vCPU with MPIDR `mpidr`.
    pub(crate) fn reset(mpidr: u64) -> Self {
        Self {
            gprs: GuestGprs::default(),
            pc: 0,
            pstate: crate::logic::regs::RESET_PSTATE,
            spsr_aa32: [0; 4],
            mpidr,
            pending_vserror: false,
        }
    }

    /// General-purpose register `n`; 31 reads as zero (XZR).
    pub(crate) fn reg(&self, n: u8) -> u64 {
        self.gprs.x.get(usize::from(n)).copied().unwrap_or(0)
    }

    /// Writes general-purpose register `n`; writes to 31 (XZR) are discarded.
    pub(crate) fn set_reg(&mut self, n: u8, v: u64) {
        if let Some(r) = self.gprs.x.get_mut(usize::from(n)) {
            *r = v;
        }
    }
}

/// The guest's EL1 and EL0-thread system registers, its EL1 banked registers and its
/// virtual timer, as saved outside the CPU.
#[derive(Clone, Copy)]
pub(crate) struct El1Regs {
    pub(crate) sys: [u64; El1Reg::COUNT],
    pub(crate) sp_el1: u64,
    pub(crate) elr_el1: u64,
    pub(crate) spsr_el1: u64,
    pub(crate) vtimer_ctl: u64,
    pub(crate) vtimer_cval: u64,
    /// DISR_EL1, in VDISR_EL2 while loaded on a host with RAS (`hyplayout::has_ras`).
    pub(crate) disr: u64,
    /// The guest's GICv3 CPU interface.
    pub(crate) gic: VgicCpuIf,
}

/// List registers the save area holds (the architectural maximum).
pub(crate) const VGIC_MAX_LRS: usize = 16;

/// The guest's GICv3 virtual CPU interface as the world switch moves it, the same for
/// both backends (KVM counterpart: `struct vgic_v3_cpu_if`). `#[repr(C)]` with fixed
/// offsets (asserted below) so EL2 assembly can load and save it.
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

const _: () = assert!(offset_of!(VgicCpuIf, hcr) == 0);
const _: () = assert!(offset_of!(VgicCpuIf, vmcr) == 8);
const _: () = assert!(offset_of!(VgicCpuIf, ap0r) == 16);
const _: () = assert!(offset_of!(VgicCpuIf, ap1r) == 48);
const _: () = assert!(offset_of!(VgicCpuIf, lr) == 80);
const _: () = assert!(offset_of!(VgicCpuIf, used_lrs) == 208);
const _: () = assert!(offset_of!(VgicCpuIf, elrsr) == 216);
const _: () = assert!(offset_of!(VgicCpuIf, eisr) == 224);
const _: () = assert!(offset_of!(VgicCpuIf, misr) == 232);

impl El1Regs {
    /// Reset values.
    pub(crate) fn reset() -> Self {
        let mut sys = [0; El1Reg::COUNT];
        for reg in El1Reg::ALL {
            sys[reg as usize] = reg.reset_value();
        }
        Self {
            sys,
            sp_el1: 0,
            elr_el1: 0,
            spsr_el1: 0,
            vtimer_ctl: 0,
            vtimer_cval: 0,
            disr: 0,
            gic: VgicCpuIf::default(),
        }
    }
}

/// How the guest left: the vector `entry.S` took (`EXIT_*` there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExitCode {
    Sync,
    Irq,
    Fiq,
    SError,
}

impl ExitCode {
    pub(crate) fn from_raw(code: u64) -> Option<Self> {
        Some(match code {
            1 => Self::Sync,
            2 => Self::Irq,
            3 => Self::Fiq,
            4 => Self::SError,
            _ => return None,
        })
    }
}

/// The syndrome of an exit, read before anything can clobber it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    pub(crate) code: ExitCode,
    pub(crate) esr: u64,
    pub(crate) far: u64,
    pub(crate) hpfar: u64,
}

impl Exit {
    /// The faulting IPA of a stage-2 abort (HPFAR_EL2.FIPA plus the page offset from FAR).
    pub(crate) fn fault_ipa(&self) -> u64 {
        ((self.hpfar & 0x0000_0fff_ffff_fff0) << 8) | (self.far & 0xfff)
    }
}

/// What a VM contributes to a vCPU load: its stage-2, timer and GIC configuration.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VmRegs {
    pub(crate) vttbr: u64,
    pub(crate) vtcr: u64,
    pub(crate) cntvoff: u64,
    /// The physical timer's counter offset; non-zero makes CNTPCT_EL0 trap.
    pub(crate) cntpoff: u64,
    /// ICH_HCR_EL2 while no list register is in use: the `ICC_*` traps of a VM without
    /// a vGIC (`logic::vgic::lr::idle_hcr`).
    pub(crate) ich_hcr: u64,
}
