// SPDX-License-Identifier: GPL-2.0

//! Encodings of the GICv3 virtual CPU interface's EL2 registers: `ICH_LR<n>_EL2`,
//! `ICH_HCR_EL2` and `ICH_VTR_EL2` (Arm IHI 0069, chapter 12).
//!
//! KVM counterpart: `vgic_v3_populate_lr` / `vgic_v3_fold_lr_state` (`vgic-v3.c`) and the
//! `ICH_*` definitions in `arm-gic-v3.h`.

/// `ICH_LR.State` pending (bit 62) and active (bit 63).
pub(crate) const LR_PENDING: u64 = 1 << 62;
pub(crate) const LR_ACTIVE: u64 = 1 << 63;
/// `ICH_LR.HW`: a physical interrupt is linked (never set by rkvm).
pub(crate) const LR_HW: u64 = 1 << 61;
/// `ICH_LR.Group`: group 1.
pub(crate) const LR_GROUP1: u64 = 1 << 60;
/// `ICH_LR.EOI` (with HW = 0): a maintenance interrupt when the guest deactivates it.
pub(crate) const LR_EOI: u64 = 1 << 41;
const LR_PRIORITY_SHIFT: u32 = 48;
const LR_VINTID_MASK: u64 = 0xffff_ffff;

/// `ICH_HCR_EL2.En`: the virtual CPU interface signals interrupts.
pub(crate) const HCR_EN: u64 = 1 << 0;
/// `ICH_HCR_EL2.UIE`: a maintenance interrupt when at most one LR holds an interrupt.
pub(crate) const HCR_UIE: u64 = 1 << 1;
/// `ICH_HCR_EL2.TC`, `.TALL0`, `.TALL1`: EL1 accesses to the common, group 0 and group 1
/// CPU-interface registers trap to EL2 (they apply whatever `En` says).
pub(crate) const HCR_TC: u64 = 1 << 10;
pub(crate) const HCR_TALL0: u64 = 1 << 11;
pub(crate) const HCR_TALL1: u64 = 1 << 12;

/// `ICH_HCR_EL2` for a loaded vCPU while no list register is in use. A VM without an
/// in-kernel vGIC has no GIC system registers (its `ID_AA64PFR0_EL1.GIC` reads 0), so
/// every `ICC_*` access must trap and become an UNDEF, as KVM's `vcpu_set_ich_hcr` does;
/// otherwise the virtual interface would answer them from whatever ICH_VMCR_EL2 holds.
/// With a vGIC nothing traps: the guest owns the virtual interface.
pub(crate) const fn idle_hcr(has_vgic: bool) -> u64 {
    if has_vgic {
        0
    } else {
        HCR_TC | HCR_TALL0 | HCR_TALL1
    }
}

/// `ICH_HCR_EL2.LRENPIE`: a maintenance interrupt while `EOIcount` is not zero.
pub(crate) const HCR_LRENPIE: u64 = 1 << 2;
/// `ICH_HCR_EL2.NPIE`: a maintenance interrupt when no LR holds a pending interrupt.
pub(crate) const HCR_NPIE: u64 = 1 << 3;
/// `ICH_HCR_EL2.TDIR`: the guest's ICC_DIR_EL1 writes trap.
pub(crate) const HCR_TDIR: u64 = 1 << 14;

/// `ICH_HCR_EL2.EOIcount` [31:27]: EOIs (EOImode 0) that matched no list register.
pub(crate) const fn hcr_eoi_count(hcr: u64) -> u32 {
    ((hcr >> 27) & 0x1f) as u32
}

/// `ICH_MISR_EL2.EOI` and `.U`: why a maintenance interrupt was raised.
pub(crate) const MISR_EOI: u64 = 1 << 0;
pub(crate) const MISR_U: u64 = 1 << 1;

/// Most list registers the architecture allows.
pub(crate) const MAX_LRS: usize = 16;

/// One list-register entry, as rkvm fills and reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lr {
    pub(crate) intid: u32,
    pub(crate) priority: u8,
    pub(crate) group1: bool,
    pub(crate) pending: bool,
    pub(crate) active: bool,
    /// Ask for a maintenance interrupt on deactivation (level-sensitive interrupts).
    pub(crate) eoi: bool,
}

impl Lr {
    /// The `ICH_LR<n>_EL2` value (virtual interrupt, HW = 0).
    pub(crate) const fn encode(&self) -> u64 {
        let mut v = self.intid as u64 & LR_VINTID_MASK;
        v |= (self.priority as u64) << LR_PRIORITY_SHIFT;
        if self.group1 {
            v |= LR_GROUP1;
        }
        if self.pending {
            v |= LR_PENDING;
        }
        if self.active {
            v |= LR_ACTIVE;
        }
        if self.eoi {
            v |= LR_EOI;
        }
        v
    }

    /// Decodes an `ICH_LR<n>_EL2` value read back after the guest ran.
    pub(crate) const fn decode(v: u64) -> Self {
        Self {
            intid: (v & LR_VINTID_MASK) as u32,
            priority: (v >> LR_PRIORITY_SHIFT) as u8,
            group1: v & LR_GROUP1 != 0,
            pending: v & LR_PENDING != 0,
            active: v & LR_ACTIVE != 0,
            eoi: v & LR_HW == 0 && v & LR_EOI != 0,
        }
    }
}

/// What `ICH_VTR_EL2` says about this CPU's virtual interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vtr {
    /// Implemented list registers (1-16).
    pub(crate) nr_lrs: usize,
    /// Implemented `ICH_AP0R<n>`/`ICH_AP1R<n>` registers (1, 2 or 4).
    pub(crate) nr_aprs: usize,
    /// Virtual priority bits (PRIbits + 1, 5-8) and the IDbits field (0: 16, 1: 24).
    pub(crate) pri_bits: u8,
    pub(crate) id_bits: u8,
    /// SEIS and A3V, which `ICC_CTLR_EL1` reports to the guest as they are.
    pub(crate) seis: bool,
    pub(crate) a3v: bool,
}

impl Vtr {
    pub(crate) const fn decode(vtr: u64) -> Self {
        let nr_lrs = (vtr & 0x1f) as usize + 1;
        // PREbits [28:26] + 1 preemption bits: 5 → one APR, 6 → two, 7 → four.
        let pre_bits = ((vtr >> 26) & 7) as usize + 1;
        let nr_aprs = if pre_bits <= 5 {
            1
        } else {
            1 << (pre_bits - 5)
        };
        Self {
            nr_lrs: if nr_lrs > MAX_LRS { MAX_LRS } else { nr_lrs },
            nr_aprs,
            pri_bits: ((vtr >> 29) & 7) as u8 + 1,
            id_bits: ((vtr >> 23) & 7) as u8,
            seis: vtr & (1 << 22) != 0,
            a3v: vtr & (1 << 21) != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_round_trip() {
        let lr = Lr {
            intid: 27,
            priority: 0xa0,
            group1: true,
            pending: true,
            active: false,
            eoi: true,
        };
        let v = lr.encode();
        assert_eq!(v, (1 << 62) | (1 << 60) | (0xa0 << 48) | (1 << 41) | 27);
        assert_eq!(Lr::decode(v), lr);
        let active = Lr {
            intid: 1019,
            priority: 0,
            group1: false,
            pending: true,
            active: true,
            eoi: false,
        };
        assert_eq!(active.encode() >> 62, 3);
        assert_eq!(Lr::decode(active.encode()), active);
        // With HW set, bit 41 is part of the physical INTID, not an EOI request.
        assert!(!Lr::decode(LR_HW | LR_EOI).eoi);
    }

    #[test]
    fn no_vgic_traps_every_cpu_interface_register() {
        assert_eq!(idle_hcr(false), 0x1c00);
        // En stays clear: nothing is signalled, the trap bits work on their own.
        assert_eq!(idle_hcr(false) & HCR_EN, 0);
        assert_eq!(idle_hcr(true), 0);
    }

    #[test]
    fn eoi_count() {
        assert_eq!(hcr_eoi_count((5 << 27) | HCR_EN | HCR_LRENPIE), 5);
        assert_eq!(hcr_eoi_count(u64::MAX), 31);
    }

    #[test]
    fn vtr() {
        // QEMU's emulated CPU: 4 LRs, 5 preemption and priority bits.
        let qemu = Vtr::decode((4 << 29) | (4 << 26) | (1 << 21) | 3);
        assert_eq!(
            (qemu.nr_lrs, qemu.nr_aprs, qemu.pri_bits, qemu.id_bits),
            (4, 1, 5, 0)
        );
        assert!(qemu.a3v && !qemu.seis);
        let big = Vtr::decode((6 << 29) | (6 << 26) | (1 << 23) | (1 << 22) | 15);
        assert_eq!(
            (big.nr_lrs, big.nr_aprs, big.pri_bits, big.id_bits),
            (16, 4, 7, 1)
        );
        assert!(big.seis);
        assert_eq!(Vtr::decode(5 << 26).nr_aprs, 2);
    }
}
