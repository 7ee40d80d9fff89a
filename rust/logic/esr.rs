// SPDX-License-Identifier: GPL-2.0

//! Exception Syndrome Register decoding (`ESR_EL2` for exits from a guest).
//!
//! KVM counterpart: `arch/arm64/include/asm/esr.h` and the `kvm_vcpu_*` syndrome accessors
//! in `kvm_emulate.h`. Field positions follow the Arm ARM, section D24.2.46 (ESR_EL2).

/// Exception class, `ESR_ELx.EC` (bits [31:26]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ec {
    Unknown,
    Wfx,
    FpAsimd,
    Hvc64,
    Smc64,
    Sys64,
    Sve,
    Sme,
    IabtLow,
    DabtLow,
    SError,
    BreakpointLow,
    SoftStepLow,
    WatchpointLow,
    Brk64,
    /// Any class rkvm has no specific handling for; carries the raw value.
    Other(u8),
}

impl Ec {
    /// Decodes the 6-bit class.
    pub(crate) const fn from_raw(ec: u8) -> Self {
        match ec {
            0x00 => Self::Unknown,
            0x01 => Self::Wfx,
            0x07 => Self::FpAsimd,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::Sys64,
            0x19 => Self::Sve,
            0x1d => Self::Sme,
            0x20 => Self::IabtLow,
            0x24 => Self::DabtLow,
            0x2f => Self::SError,
            0x30 => Self::BreakpointLow,
            0x32 => Self::SoftStepLow,
            0x34 => Self::WatchpointLow,
            0x3c => Self::Brk64,
            other => Self::Other(other),
        }
    }
}

/// A syndrome value with typed accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Esr(pub(crate) u64);

impl Esr {
    /// The exception class.
    pub(crate) const fn ec(self) -> Ec {
        Ec::from_raw(((self.0 >> 26) & 0x3f) as u8)
    }

    #[cfg(test)]
    /// The raw class, for logs and `kvm_run.hw.hardware_exit_reason`.
    pub(crate) const fn ec_raw(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// `IL`: the trapped instruction was 32 bits wide (always, except Thumb at AArch32 EL0).
    pub(crate) const fn il32(self) -> bool {
        self.0 & (1 << 25) != 0
    }

    /// The instruction-specific syndrome, bits [24:0].
    pub(crate) const fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// The `imm16` of a trapped HVC or SMC.
    pub(crate) const fn hvc_imm(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    /// Decodes the syndrome of a data abort from a lower EL.
    pub(crate) const fn data_abort(self) -> DataAbort {
        let iss = self.iss();
        DataAbort {
            isv: iss & (1 << 24) != 0,
            access_size: 1 << ((iss >> 22) & 3),
            sign_extend: iss & (1 << 21) != 0,
            reg: ((iss >> 16) & 0x1f) as u8,
            sixty_four: iss & (1 << 15) != 0,
            far_not_valid: iss & (1 << 10) != 0,
            external: iss & (1 << 9) != 0,
            cache_maint: iss & (1 << 8) != 0,
            s1ptw: iss & (1 << 7) != 0,
            write: iss & (1 << 6) != 0,
            fault: Fault::from_fsc((iss & 0x3f) as u8),
        }
    }

    /// Decodes the syndrome of a trapped `MSR`/`MRS` (EC 0x18).
    pub(crate) const fn sys_reg(self) -> SysRegAccess {
        let iss = self.iss();
        SysRegAccess {
            op0: ((iss >> 20) & 3) as u8,
            op2: ((iss >> 17) & 7) as u8,
            op1: ((iss >> 14) & 7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            rt: ((iss >> 5) & 0x1f) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
            read: iss & 1 != 0,
        }
    }

    /// Decodes the syndrome of a trapped `WFI`/`WFE` (EC 0x01).
    pub(crate) const fn wfx(self) -> Wfx {
        match self.iss() & 3 {
            0 => Wfx::Wfi,
            1 => Wfx::Wfe,
            2 => Wfx::Wfit,
            _ => Wfx::Wfet,
        }
    }
}

/// Which wait instruction trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wfx {
    Wfi,
    Wfe,
    Wfit,
    Wfet,
}

/// Fault status code of an abort, grouped the way the stage-2 fault path needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    AddressSize(u8),
    Translation(u8),
    AccessFlag(u8),
    Permission(u8),
    Alignment,
    Other(u8),
}

impl Fault {
    /// Decodes `DFSC`/`IFSC`; the payload of the level-specific kinds is the table level.
    pub(crate) const fn from_fsc(fsc: u8) -> Self {
        match fsc {
            0x00..=0x03 => Self::AddressSize(fsc & 3),
            0x04..=0x07 => Self::Translation(fsc & 3),
            0x08..=0x0b => Self::AccessFlag(fsc & 3),
            0x0c..=0x0f => Self::Permission(fsc & 3),
            0x21 => Self::Alignment,
            other => Self::Other(other),
        }
    }
}

/// The fields of a data-abort syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataAbort {
    /// The syndrome describes the access (SAS/SSE/SRT/SF valid): emulation is possible.
    pub(crate) isv: bool,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub(crate) access_size: u8,
    /// A load that sign-extends the value into the register.
    pub(crate) sign_extend: bool,
    /// The transfer register, 0-30; 31 is XZR/WZR.
    pub(crate) reg: u8,
    /// The register is 64 bits wide (X, not W).
    pub(crate) sixty_four: bool,
    /// `FAR_EL2` is not valid.
    pub(crate) far_not_valid: bool,
    /// External abort.
    pub(crate) external: bool,
    /// Caused by a cache maintenance or address translation instruction.
    pub(crate) cache_maint: bool,
    /// Fault on the stage-2 walk of a stage-1 table.
    pub(crate) s1ptw: bool,
    /// The access was a write.
    pub(crate) write: bool,
    /// Why it faulted.
    pub(crate) fault: Fault,
}

/// The fields of a trapped system-register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SysRegAccess {
    pub(crate) op0: u8,
    pub(crate) op1: u8,
    pub(crate) crn: u8,
    pub(crate) crm: u8,
    pub(crate) op2: u8,
    /// The general-purpose register transferred; 31 is XZR.
    pub(crate) rt: u8,
    /// `MRS` (read) rather than `MSR` (write).
    pub(crate) read: bool,
}

impl SysRegAccess {
    #[cfg(test)]
    /// The register's encoding packed like the kernel's `sys_reg(op0, op1, crn, crm, op2)`.
    pub(crate) const fn encoding(&self) -> u32 {
        ((self.op0 as u32) << 19)
            | ((self.op1 as u32) << 16)
            | ((self.crn as u32) << 12)
            | ((self.crm as u32) << 8)
            | ((self.op2 as u32) << 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(Esr(0x5a00_0000).ec(), Ec::Hvc64); // hvc #0
        assert_eq!(Esr(0x5e00_0000).ec(), Ec::Smc64);
        assert_eq!(Esr(0x9200_0000).ec(), Ec::DabtLow);
        assert_eq!(Esr(0x0200_0000).ec(), Ec::Unknown);
        assert_eq!(Esr(0xbe00_0000).ec(), Ec::SError);
        assert_eq!(Esr(0x0e00_0000).ec(), Ec::Other(0x03));
        assert!(Esr(0x5a00_0000).il32());
    }

    #[test]
    fn hvc_immediate() {
        assert_eq!(Esr(0x5a00_1234).hvc_imm(), 0x1234);
    }

    #[test]
    fn data_abort_store_word() {
        // str w1, [x0] to an unmapped IPA at level 3: ISV, SAS=2, SRT=1, WnR, FSC=0x07.
        let da = Esr(0x9381_0047).data_abort();
        assert!(da.isv);
        assert_eq!(da.access_size, 4);
        assert_eq!(da.reg, 1);
        assert!(da.write && !da.sign_extend && !da.sixty_four);
        assert_eq!(da.fault, Fault::Translation(3));
    }

    #[test]
    fn data_abort_signed_byte_load() {
        // ldrsb x3, [x0]: SAS=0, SSE, SRT=3, SF, read, permission fault at level 2.
        let iss = (1 << 24) | (1 << 21) | (3 << 16) | (1 << 15) | 0x0e;
        let da = Esr((0x24 << 26) | (1 << 25) | iss).data_abort();
        assert_eq!(da.access_size, 1);
        assert!(da.sign_extend && da.sixty_four && !da.write);
        assert_eq!(da.reg, 3);
        assert_eq!(da.fault, Fault::Permission(2));
    }

    #[test]
    fn data_abort_without_syndrome() {
        let da = Esr((0x24 << 26) | (1 << 25) | 0x06).data_abort();
        assert!(!da.isv);
        assert_eq!(da.fault, Fault::Translation(2));
    }

    #[test]
    fn fault_codes() {
        assert_eq!(Fault::from_fsc(0x09), Fault::AccessFlag(1));
        assert_eq!(Fault::from_fsc(0x21), Fault::Alignment);
        assert_eq!(Fault::from_fsc(0x10), Fault::Other(0x10));
    }

    #[test]
    #[allow(clippy::identity_op)] // The encoding spells out every field, zeros included.
    fn sys_reg_read_of_id_aa64pfr0() {
        // mrs x2, id_aa64pfr0_el1: op0=3 op1=0 CRn=0 CRm=4 op2=0, Rt=2, read.
        let iss = (3 << 20) | (0 << 17) | (0 << 14) | (0 << 10) | (2 << 5) | (4 << 1) | 1;
        let access = Esr((0x18 << 26) | (1 << 25) | iss).sys_reg();
        assert_eq!(
            (access.op0, access.op1, access.crn, access.crm, access.op2),
            (3, 0, 0, 4, 0)
        );
        assert_eq!(access.rt, 2);
        assert!(access.read);
        // The kernel's SYS_ID_AA64PFR0_EL1 encoding.
        assert_eq!(access.encoding(), 0x0018_0400);
    }

    #[test]
    fn wait_kinds() {
        assert_eq!(Esr(0x0600_0000).wfx(), Wfx::Wfi);
        assert_eq!(Esr(0x0600_0001).wfx(), Wfx::Wfe);
        assert_eq!(Esr(0x0600_0002).wfx(), Wfx::Wfit);
    }
}
