// SPDX-License-Identifier: GPL-2.0

//! A vCPU's architectural state as the world switch saves and restores it.
//!
//! KVM counterpart: `struct kvm_cpu_context` (`asm/kvm_host.h`). The state is split by
//! when it moves:
//! - [`VcpuContext`]: switched on every entry and exit (GPRs, PC, PSTATE). The GPR block
//!   is shared with the assembly (`logic/el2abi.rs`).
//! - [`El1Regs`]: the guest's EL1 and EL0-thread registers, switched lazily, in
//!   `vcpu_load`/`vcpu_put` (see `hyp/vhe.rs` and `vcpu/load_put.rs`).
//! - [`VgicCpuIf`] (in `El1Regs`): the guest's GICv3 CPU interface, part switched at
//!   load/put (VMCR, APRs) and part per entry (HCR, LRs, only when `used_lrs` != 0).

pub(crate) use crate::logic::el2abi::{El1Block, ExitCode, GuestGprs, VgicCpuIf};
use crate::logic::regs::El1Reg;

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
    /// A virtual SError is to be delivered on the next entry...
    pub(crate) pending_vserror: bool,
    /// ...with this syndrome in VSESR_EL2 (on a host with RAS).
    pub(crate) vsesr: u64,
    /// The vCPU has pointer authentication (`logic::features::has_ptrauth`): HCR_EL2.API
    /// and APK are set for it, and its keys are switched.
    pub(crate) ptrauth: bool,
    /// APIAKEYLO/HI_EL1, the key switched on every entry and exit of such a vCPU
    /// (`logic::ptrauth::APIA_SLOTS`); the other keys are in [`El1Regs::keys`].
    pub(crate) apia: [u64; 2],
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
            vsesr: 0,
            ptrauth: false,
            apia: [0; 2],
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

/// The guest's EL1 state as saved outside the CPU.
#[derive(Clone, Copy)]
pub(crate) struct El1Regs {
    /// Its EL1 and EL0-thread system registers, EL1 banked registers and virtual timer:
    /// the block the nVHE switch moves whole, and VHE's load/put register by register.
    pub(crate) regs: El1Block,
    /// DISR_EL1, in VDISR_EL2 while loaded on a host with RAS (`hyplayout::has_ras`).
    pub(crate) disr: u64,
    /// The guest's GICv3 CPU interface.
    pub(crate) gic: VgicCpuIf,
    /// APIB, APDA, APDB and APGA (LO, HI each) of a vCPU with pointer authentication,
    /// switched at load and put: the host kernel signs with APIA only.
    pub(crate) keys: [u64; LAZY_KEYS],
}

/// The key registers [`El1Regs::keys`] holds: all but APIA's two.
pub(crate) const LAZY_KEYS: usize = crate::logic::ptrauth::KEY_REGS - 2;

impl El1Regs {
    /// Reset values.
    pub(crate) fn reset() -> Self {
        let mut sys = [0; El1Reg::COUNT];
        for reg in El1Reg::ALL {
            sys[reg as usize] = reg.reset_value();
        }
        Self {
            regs: El1Block {
                sys,
                sp_el1: 0,
                elr_el1: 0,
                spsr_el1: 0,
                cntv_ctl: 0,
                cntv_cval: 0,
            },
            disr: 0,
            gic: VgicCpuIf::default(),
            keys: [0; LAZY_KEYS],
        }
    }
}

/// The syndrome of an exit, read before anything can clobber it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exit {
    pub(crate) code: ExitCode,
    pub(crate) esr: u64,
    pub(crate) far: u64,
    pub(crate) hpfar: u64,
    /// The CPU of a failed entry (`ExitCode::FailEntry`); 0 otherwise.
    pub(crate) cpu: u32,
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
    /// HCRX_EL2 and the fine-grained traps for the VM's guests (`logic::fgt`).
    pub(crate) traps: crate::logic::fgt::GuestTraps,
}
