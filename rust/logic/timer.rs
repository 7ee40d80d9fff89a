// SPDX-License-Identifier: GPL-2.0

//! The guest's arch timers: the EL1 virtual timer (in the CPU while the vCPU is loaded)
//! and the EL1 physical timer (emulated, its registers trapped).
//!
//! KVM counterpart: `arch/arm64/kvm/arch_timer.c` (`kvm_timer_should_fire`,
//! `kvm_timer_earliest_exp`, `kvm_arm_timer_read`/`_write`) and
//! `include/clocksource/arm_arch_timer.h` for the CTL bits. Both timers compare a 64-bit
//! count with CVAL: the virtual timer's count is the physical counter minus CNTVOFF, the
//! physical timer's the physical counter minus the VM's physical offset (0 unless
//! userspace wrote `CNTPCT_EL0` through ONE_REG). The interrupt output ("level") is
//! ENABLE && !IMASK && count >= CVAL; the vGIC sees it as PPI 27 (virtual) or 30
//! (physical).

/// CNTx_CTL_EL0 bits.
pub(crate) mod ctl {
    pub(crate) const ENABLE: u64 = 1 << 0;
    pub(crate) const IMASK: u64 = 1 << 1;
    /// Read-only: the timer condition is met (set by hardware, or computed on a read).
    pub(crate) const ISTATUS: u64 = 1 << 2;
}

/// The PPIs the timers drive (the Arm BSA assignment QEMU and kvmtool describe to the
/// guest, and KVM's defaults).
pub(crate) const VTIMER_PPI: u32 = 27;
pub(crate) const PTIMER_PPI: u32 = 30;

/// vCPU device-attribute groups (`KVM_ARM_VCPU_*_CTRL`, for `KVM_{SET,GET,HAS}_DEVICE_ATTR`
/// on a vCPU fd).
pub(crate) const VCPU_PMU_V3_CTRL: u32 = 0;
pub(crate) const VCPU_TIMER_CTRL: u32 = 1;

/// The timers' PPIs by `KVM_ARM_VCPU_TIMER_IRQ_*` attribute (virtual, physical, and the
/// EL2 virtual and physical ones KVM keeps for nested virtualisation): KVM's defaults,
/// which userspace may change before the first `KVM_RUN`.
pub(crate) const DEFAULT_PPIS: [u32; 4] = [VTIMER_PPI, PTIMER_PPI, 28, 26];

/// The index of a `KVM_ARM_VCPU_TIMER_IRQ_*` attribute; `None` (`ENXIO`) for others.
pub(crate) const fn timer_attr_index(attr: u64) -> Option<usize> {
    if attr < DEFAULT_PPIS.len() as u64 {
        Some(attr as usize)
    } else {
        None
    }
}

/// Whether `irq` may be a timer's interrupt (a PPI: 16-31).
pub(crate) const fn is_ppi(irq: i32) -> bool {
    irq >= 16 && irq < 32
}

/// Whether the timers' PPIs are all different: KVM refuses the first `KVM_RUN`
/// (`EINVAL`) otherwise (`timer_irqs_are_valid`).
pub(crate) fn ppis_distinct(ppis: &[u32; 4]) -> bool {
    (0..ppis.len()).all(|i| !ppis[i + 1..].contains(&ppis[i]))
}

/// One timer's programmable state, as saved outside the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimerRegs {
    /// ENABLE and IMASK only; ISTATUS is computed when read.
    pub(crate) ctl: u64,
    pub(crate) cval: u64,
}

impl TimerRegs {
    /// Whether the timer can assert its interrupt at all (enabled and not masked):
    /// KVM's `kvm_timer_irq_can_fire`.
    pub(crate) const fn can_fire(&self) -> bool {
        self.ctl & (ctl::ENABLE | ctl::IMASK) == ctl::ENABLE
    }

    /// The interrupt output at `count` (the timer's own count, offset applied).
    pub(crate) const fn level(&self, count: u64) -> bool {
        self.can_fire() && count >= self.cval
    }

    /// CTL as the guest reads it: the stored bits plus ISTATUS (condition met, even when
    /// masked, as the architecture defines it).
    pub(crate) const fn read_ctl(&self, count: u64) -> u64 {
        let stored = self.ctl & (ctl::ENABLE | ctl::IMASK);
        if stored & ctl::ENABLE != 0 && count >= self.cval {
            stored | ctl::ISTATUS
        } else {
            stored
        }
    }

    /// A CTL write: ISTATUS is read-only and the other bits are RES0.
    pub(crate) fn write_ctl(&mut self, v: u64) {
        self.ctl = v & (ctl::ENABLE | ctl::IMASK);
    }

    /// TVAL as the guest reads it: the low 32 bits of CVAL - count (a signed 32-bit
    /// down-counter; the upper half of the register is RES0).
    pub(crate) const fn read_tval(&self, count: u64) -> u64 {
        self.cval.wrapping_sub(count) & 0xffff_ffff
    }

    /// A TVAL write: CVAL becomes count plus the sign-extended low 32 bits.
    pub(crate) fn write_tval(&mut self, count: u64, v: u64) {
        self.cval = count.wrapping_add(i64::from(v as u32 as i32) as u64);
    }
}

/// The interrupt output of a virtual timer from its CTL as the CPU reports it (the CPU
/// computes ISTATUS): KVM's `kvm_timer_should_fire` for a loaded timer. One register
/// read, no counter read.
pub(crate) const fn level_from_hw_ctl(ctl_value: u64) -> bool {
    ctl_value & (ctl::ENABLE | ctl::IMASK | ctl::ISTATUS) == ctl::ENABLE | ctl::ISTATUS
}

/// What the wake-up hrtimer must cover: the compare values of the timers that can still
/// fire, in their own count domains. A change means re-arming; equal keys mean the
/// armed hrtimer is still right, so the per-entry work is a comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WakeKey {
    pub(crate) vtimer: Option<u64>,
    pub(crate) ptimer: Option<u64>,
}

impl WakeKey {
    /// The key for a virtual timer with hardware CTL `vctl` (ISTATUS valid) and `vcval`,
    /// and the physical timer `ptimer`, whose count is `pcount`. A timer whose interrupt
    /// already asserts needs no hrtimer (its level is already given to the vGIC).
    pub(crate) const fn new(vctl: u64, vcval: u64, ptimer: &TimerRegs, pcount: u64) -> Self {
        let vt = TimerRegs {
            ctl: vctl,
            cval: vcval,
        };
        Self {
            vtimer: if vt.can_fire() && vctl & ctl::ISTATUS == 0 {
                Some(vcval)
            } else {
                None
            },
            ptimer: if ptimer.can_fire() && pcount < ptimer.cval {
                Some(ptimer.cval)
            } else {
                None
            },
        }
    }

    /// Whether no timer needs waking up for.
    #[cfg(test)]
    pub(crate) const fn is_idle(&self) -> bool {
        self.vtimer.is_none() && self.ptimer.is_none()
    }

    /// Ticks until the earliest of the key's timers fires, given each timer's current
    /// count; `None` if there is none.
    pub(crate) fn ticks(&self, vcount: u64, pcount: u64) -> Option<u64> {
        let v = self.vtimer.map(|cval| cval.saturating_sub(vcount));
        let p = self.ptimer.map(|cval| cval.saturating_sub(pcount));
        match (v, p) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

const NSEC_PER_SEC: u64 = 1_000_000_000;

/// `ticks` of a counter running at `freq` Hz in nanoseconds, rounded up (an hrtimer must
/// not expire before the counter reaches the compare value), saturating. Uses only 64-bit
/// division (no 128-bit arithmetic in the kernel).
pub(crate) fn ticks_to_ns(ticks: u64, freq: u64) -> u64 {
    if freq == 0 {
        return u64::MAX;
    }
    let secs = ticks / freq;
    let rem = ticks % freq;
    // rem < freq; CNTFRQ is a 32-bit register, so rem * 1e9 < 2^62.
    let frac = (rem * NSEC_PER_SEC).div_ceil(freq);
    secs.saturating_mul(NSEC_PER_SEC).saturating_add(frac)
}

/// CNTHCTL_EL2 in its E2H=1 layout.
pub(crate) mod cnthctl_vhe {
    /// EL0/EL1 read the physical counter without trapping.
    pub(crate) const EL1PCTEN: u64 = 1 << 10;
    /// EL0/EL1 access the physical timer without trapping.
    pub(crate) const EL1PCEN: u64 = 1 << 11;
}

/// CNTHCTL_EL2 (E2H=1 layout) while the guest runs, derived from the host's value: the
/// physical timer always trapped (it is emulated: the CPU's belongs to the host), the
/// physical counter readable directly unless the VM has a physical offset, which only
/// emulation can apply (as KVM does without FEAT_ECV's CNTPOFF_EL2).
pub(crate) const fn guest_cnthctl_vhe(host: u64, ptimer_offset: u64) -> u64 {
    let v = host & !cnthctl_vhe::EL1PCEN;
    if ptimer_offset == 0 {
        v | cnthctl_vhe::EL1PCTEN
    } else {
        v & !cnthctl_vhe::EL1PCTEN
    }
}

/// CNTHCTL_EL2 in its E2H=0 (nVHE) layout.
pub(crate) mod cnthctl_nvhe {
    /// EL0/EL1 read the physical counter without trapping.
    pub(crate) const EL1PCTEN: u64 = 1 << 0;
    /// EL0/EL1 access the physical timer without trapping.
    pub(crate) const EL1PCEN: u64 = 1 << 1;
}

/// CNTHCTL_EL2 (E2H=0 layout) while the guest runs on an nVHE host: as
/// [`guest_cnthctl_vhe`]. The host's value (the host kernel at EL1 uses the physical timer
/// and counter) comes back on every exit.
pub(crate) const fn guest_cnthctl_nvhe(host: u64, ptimer_offset: u64) -> u64 {
    let v = host & !cnthctl_nvhe::EL1PCEN;
    if ptimer_offset == 0 {
        v | cnthctl_nvhe::EL1PCTEN
    } else {
        v & !cnthctl_nvhe::EL1PCTEN
    }
}

/// A trapped access to one of the physical timer's registers (or the physical counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PtimerReg {
    Ctl,
    Cval,
    Tval,
    /// CNTPCT_EL0 (and CNTPCTSS_EL0), trapped only when the VM has a physical offset.
    Count,
}

/// The result of a guest access to the physical timer: the value of a read, or the
/// registers after a write (writes to the counter are ignored: it is read-only).
pub(crate) fn ptimer_access(
    regs: &mut TimerRegs,
    reg: PtimerReg,
    count: u64,
    write: Option<u64>,
) -> u64 {
    match (reg, write) {
        (PtimerReg::Ctl, None) => regs.read_ctl(count),
        (PtimerReg::Cval, None) => regs.cval,
        (PtimerReg::Tval, None) => regs.read_tval(count),
        (PtimerReg::Count, None) => count,
        (PtimerReg::Ctl, Some(v)) => {
            regs.write_ctl(v);
            0
        }
        (PtimerReg::Cval, Some(v)) => {
            regs.cval = v;
            0
        }
        (PtimerReg::Tval, Some(v)) => {
            regs.write_tval(count, v);
            0
        }
        (PtimerReg::Count, Some(_)) => 0,
    }
}

/// The offset that makes a counter read `value` now, when the physical counter reads
/// `physical`: what a ONE_REG write of `KVM_REG_ARM_TIMER_CNT` (or the physical
/// counter) does to the VM, as KVM's `timer_set_offset(..., phys - value)`.
pub(crate) const fn offset_for(physical: u64, value: u64) -> u64 {
    physical.wrapping_sub(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: u64 = ctl::ENABLE;

    #[test]
    fn level_needs_enable_unmasked_and_expiry() {
        let t = TimerRegs { ctl: EN, cval: 100 };
        assert!(!t.level(99));
        assert!(t.level(100));
        assert!(t.level(u64::MAX));
        assert!(!TimerRegs {
            ctl: EN | ctl::IMASK,
            cval: 100
        }
        .level(200));
        assert!(!TimerRegs { ctl: 0, cval: 100 }.level(200));
    }

    #[test]
    fn ctl_reads_istatus_even_when_masked() {
        let t = TimerRegs {
            ctl: EN | ctl::IMASK,
            cval: 10,
        };
        assert_eq!(t.read_ctl(10), EN | ctl::IMASK | ctl::ISTATUS);
        assert_eq!(t.read_ctl(9), EN | ctl::IMASK);
        // Disabled: no ISTATUS whatever the count.
        assert_eq!(TimerRegs { ctl: 0, cval: 0 }.read_ctl(5), 0);
        let mut w = TimerRegs::default();
        w.write_ctl(u64::MAX);
        assert_eq!(w.ctl, EN | ctl::IMASK);
    }

    #[test]
    fn tval_is_a_signed_32_bit_view_of_cval() {
        let mut t = TimerRegs::default();
        t.write_tval(1000, 50);
        assert_eq!(t.cval, 1050);
        assert_eq!(t.read_tval(1000), 50);
        assert_eq!(t.read_tval(1060), (-10i32) as u32 as u64);
        // A negative TVAL puts CVAL in the past.
        t.write_tval(1000, 0xffff_fff6);
        assert_eq!(t.cval, 990);
        // Upper bits of the written value are ignored.
        t.write_tval(0, 0xdead_0000_0000_0001);
        assert_eq!(t.cval, 1);
    }

    #[test]
    fn hardware_ctl_level() {
        assert!(level_from_hw_ctl(EN | ctl::ISTATUS));
        assert!(!level_from_hw_ctl(EN | ctl::ISTATUS | ctl::IMASK));
        assert!(!level_from_hw_ctl(EN));
        assert!(!level_from_hw_ctl(ctl::ISTATUS));
    }

    #[test]
    fn wake_key_and_ticks() {
        let pt = TimerRegs { ctl: EN, cval: 500 };
        // Virtual timer armed at 300 (not yet fired), physical at 500, both counts at 100.
        let k = WakeKey::new(EN, 300, &pt, 100);
        assert_eq!(
            k,
            WakeKey {
                vtimer: Some(300),
                ptimer: Some(500)
            }
        );
        assert_eq!(k.ticks(100, 100), Some(200));
        // Different count domains: the physical one is closer.
        assert_eq!(k.ticks(0, 450), Some(50));
        // A fired virtual timer (ISTATUS) and a masked physical one need no wake-up.
        let k = WakeKey::new(
            EN | ctl::ISTATUS,
            300,
            &TimerRegs {
                ctl: EN | ctl::IMASK,
                cval: 1,
            },
            0,
        );
        assert!(k.is_idle());
        assert_eq!(k.ticks(0, 0), None);
        // A physical timer already expired asserts now: no hrtimer for it.
        assert_eq!(WakeKey::new(0, 0, &pt, 500).ptimer, None);
        // Counts past the compare value while the key is stale: fire at once.
        assert_eq!(
            WakeKey {
                vtimer: Some(10),
                ptimer: None
            }
            .ticks(20, 0),
            Some(0)
        );
    }

    #[test]
    fn ns_conversion_rounds_up_and_saturates() {
        assert_eq!(ticks_to_ns(62_500_000, 62_500_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 62_500_000), 16);
        assert_eq!(ticks_to_ns(3, 1_000_000_000), 3);
        assert_eq!(ticks_to_ns(0, 24_000_000), 0);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(
            ticks_to_ns(u64::MAX, u32::MAX as u64),
            4_294_967_297_000_000_000
        );
        assert_eq!(ticks_to_ns(5, 0), u64::MAX);
    }

    #[test]
    fn cnthctl_traps_timer_and_counter_only_with_an_offset() {
        let host = cnthctl_vhe::EL1PCEN | 0x3;
        assert_eq!(guest_cnthctl_vhe(host, 0), cnthctl_vhe::EL1PCTEN | 0x3);
        assert_eq!(guest_cnthctl_vhe(host | cnthctl_vhe::EL1PCTEN, 7), 0x3);
    }

    #[test]
    fn nvhe_cnthctl_traps_timer_and_counter_only_with_an_offset() {
        assert_eq!(guest_cnthctl_nvhe(0x3, 0), cnthctl_nvhe::EL1PCTEN);
        assert_eq!(guest_cnthctl_nvhe(0x1_0003, 7), 0x1_0000);
    }

    #[test]
    fn ptimer_access_semantics() {
        let mut t = TimerRegs::default();
        ptimer_access(&mut t, PtimerReg::Tval, 1000, Some(100));
        assert_eq!(t.cval, 1100);
        ptimer_access(&mut t, PtimerReg::Ctl, 1000, Some(EN | ctl::ISTATUS));
        assert_eq!(t.ctl, EN);
        assert_eq!(
            ptimer_access(&mut t, PtimerReg::Ctl, 1100, None),
            EN | ctl::ISTATUS
        );
        assert_eq!(ptimer_access(&mut t, PtimerReg::Count, 1234, None), 1234);
        assert_eq!(ptimer_access(&mut t, PtimerReg::Count, 1234, Some(5)), 0);
        assert_eq!(
            t,
            TimerRegs {
                ctl: EN,
                cval: 1100
            }
        );
    }

    #[test]
    fn timer_ppi_attributes() {
        assert_eq!(timer_attr_index(0), Some(0));
        assert_eq!(timer_attr_index(3), Some(3));
        assert_eq!(timer_attr_index(4), None);
        assert!(is_ppi(16) && is_ppi(31));
        assert!(!is_ppi(15) && !is_ppi(32) && !is_ppi(-1));
        assert!(ppis_distinct(&DEFAULT_PPIS));
        assert!(!ppis_distinct(&[27, 30, 27, 26]));
        assert!(!ppis_distinct(&[20, 21, 22, 20]));
    }

    #[test]
    fn counter_offsets() {
        // Writing CNT = 0 when the physical counter reads 1000 makes the offset 1000.
        assert_eq!(offset_for(1000, 0), 1000);
        // Counters ahead of the physical one wrap (KVM's u64 arithmetic).
        assert_eq!(offset_for(10, 20), u64::MAX - 9);
        assert_eq!(1010u64.wrapping_sub(offset_for(10, 20)), 1020);
    }
}
