// SPDX-License-Identifier: GPL-2.0

//! The vGICv3 device's attributes (`KVM_{SET,GET,HAS}_DEVICE_ATTR` on its fd): which
//! exist, and the rules for the distributor and redistributor addresses.
//!
//! KVM counterpart: `vgic-kvm-device.c` (`kvm_vgic_addr`, `vgic_set_common_attr`,
//! `vgic_v3_has_attr`) and `vgic_v3_alloc_redist_region`/`vgic_v3_check_base`
//! (`vgic-mmio-v3.c`, `vgic-v3.c`). Errors are KVM's, named by [`Errno`].

use super::{
    mmio::{DIST_SIZE, REDIST_SIZE},
    uaccess::{Group, RegAttr},
};

pub(crate) const KVM_DEV_TYPE_ARM_VGIC_V3: u32 = 7;
pub(crate) const KVM_DEV_TYPE_ARM_VGIC_ITS: u32 = 8;
pub(crate) const KVM_CREATE_DEVICE_TEST: u32 = 1;

pub(crate) const GRP_ADDR: u32 = 0;
pub(crate) const GRP_DIST_REGS: u32 = 1;
pub(crate) const GRP_CPU_REGS: u32 = 2;
pub(crate) const GRP_NR_IRQS: u32 = 3;
pub(crate) const GRP_CTRL: u32 = 4;
pub(crate) const GRP_REDIST_REGS: u32 = 5;
pub(crate) const GRP_CPU_SYSREGS: u32 = 6;
pub(crate) const GRP_LEVEL_INFO: u32 = 7;
pub(crate) const GRP_ITS_REGS: u32 = 8;
pub(crate) const GRP_MAINT_IRQ: u32 = 9;

pub(crate) const ADDR_TYPE_DIST: u64 = 2;
pub(crate) const ADDR_TYPE_REDIST: u64 = 3;
pub(crate) const ADDR_TYPE_REDIST_REGION: u64 = 5;

pub(crate) const CTRL_INIT: u64 = 0;
pub(crate) const CTRL_SAVE_PENDING_TABLES: u64 = 3;
/// The ITS's own `GRP_CTRL` attributes and its `GRP_ADDR` type.
pub(crate) const CTRL_ITS_SAVE_TABLES: u64 = 1;
pub(crate) const CTRL_ITS_RESTORE_TABLES: u64 = 2;
pub(crate) const CTRL_ITS_RESET: u64 = 4;
pub(crate) const ITS_ADDR_TYPE: u64 = 4;

/// An address not set yet, as KVM reports it (`VGIC_ADDR_UNDEF`).
pub(crate) const ADDR_UNDEF: u64 = u64::MAX;

/// The errors of this ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Errno {
    Inval,
    Exist,
    TooBig,
    Nxio,
    Noent,
    NoSpace,
    Busy,
    /// Guest memory the ITS tables name is not RAM (`EFAULT`).
    Fault,
    /// No room for an ITS table entry or LPI (`ENOMEM`).
    NoMem,
    /// An ITS `GRP_ADDR` attribute of another type (`ENODEV`, as KVM).
    NoDev,
}

/// What an attribute is, for the kernel layer to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attr {
    Dist,
    Redist,
    RedistRegion,
    NrIrqs,
    CtrlInit,
    /// `SAVE_PENDING_TABLES`: the LPIs' pending bits into the guest's pending tables.
    SavePendingTables,
    /// A register-state group (`DIST_REGS`, `REDIST_REGS`, `CPU_SYSREGS`,
    /// `LEVEL_INFO`): see `uaccess`.
    Regs(RegAttr),
}

/// Decodes (group, attr) into an attribute rkvm implements. Everything else is `ENXIO`
/// for HAS, SET and GET alike: the GICv2 CPU registers and MAINT_IRQ (no nested
/// virtualisation; KVM answers HAS for it, but a VMM that sees it sets it and aborts on
/// failure). `SAVE_PENDING_TABLES` exists with or without an ITS, as in KVM.
pub(crate) fn decode(group: u32, attr: u64) -> Result<Attr, Errno> {
    let regs = |g| Ok(Attr::Regs(RegAttr::decode(g, attr)));
    match (group, attr) {
        (GRP_ADDR, ADDR_TYPE_DIST) => Ok(Attr::Dist),
        (GRP_ADDR, ADDR_TYPE_REDIST) => Ok(Attr::Redist),
        (GRP_ADDR, ADDR_TYPE_REDIST_REGION) => Ok(Attr::RedistRegion),
        (GRP_NR_IRQS, _) => Ok(Attr::NrIrqs),
        (GRP_CTRL, CTRL_INIT) => Ok(Attr::CtrlInit),
        (GRP_CTRL, CTRL_SAVE_PENDING_TABLES) => Ok(Attr::SavePendingTables),
        (GRP_DIST_REGS, _) => regs(Group::Dist),
        (GRP_REDIST_REGS, _) => regs(Group::Redist),
        (GRP_CPU_SYSREGS, _) => regs(Group::CpuSysregs),
        (GRP_LEVEL_INFO, _) => regs(Group::LevelInfo),
        (GRP_CPU_REGS | GRP_MAINT_IRQ, _) => Err(Errno::Nxio),
        _ => Err(Errno::Nxio),
    }
}

/// An attribute of the ITS device (KVM's `vgic_its_{set,get,has}_attr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItsAttr {
    /// `GRP_ADDR`/`ITS_ADDR_TYPE`: the ITS frames' base.
    Addr,
    /// `CTRL_INIT`: nothing to do, as KVM.
    Init,
    Reset,
    SaveTables,
    RestoreTables,
    /// `GRP_ITS_REGS`: the register at this offset (`its::regs_check` decides).
    Regs(u64),
}

/// Decodes an ITS attribute: another `GRP_ADDR` type is `ENODEV` (SET and GET; HAS
/// answers `ENXIO` for anything that is not an attribute), every other unknown `ENXIO`.
pub(crate) fn decode_its(group: u32, attr: u64) -> Result<ItsAttr, Errno> {
    match (group, attr) {
        (GRP_ADDR, ITS_ADDR_TYPE) => Ok(ItsAttr::Addr),
        (GRP_ADDR, _) => Err(Errno::NoDev),
        (GRP_CTRL, CTRL_INIT) => Ok(ItsAttr::Init),
        (GRP_CTRL, CTRL_ITS_RESET) => Ok(ItsAttr::Reset),
        (GRP_CTRL, CTRL_ITS_SAVE_TABLES) => Ok(ItsAttr::SaveTables),
        (GRP_CTRL, CTRL_ITS_RESTORE_TABLES) => Ok(ItsAttr::RestoreTables),
        (GRP_ITS_REGS, offset) => Ok(ItsAttr::Regs(offset)),
        _ => Err(Errno::Nxio),
    }
}

/// `NR_IRQS`: at least 32 SPIs, at most 1023 interrupts, a multiple of 32. Returns the
/// SPI count.
pub(crate) fn nr_spis(nr_irqs: u32) -> Result<u32, Errno> {
    if !(64..=1023).contains(&nr_irqs) || nr_irqs % 32 != 0 {
        return Err(Errno::Inval);
    }
    Ok(nr_irqs - 32)
}

/// A redistributor region. `count` 0 is the legacy single region (`REDIST`), sized by
/// the number of vCPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) index: u32,
    pub(crate) base: u64,
    pub(crate) count: u32,
}

impl Region {
    pub(crate) fn size(&self, nr_vcpus: usize) -> u64 {
        let n = if self.count != 0 {
            u64::from(self.count)
        } else {
            nr_vcpus as u64
        };
        n * REDIST_SIZE
    }

    /// The `REDIST_REGION` attribute value: index [11:0], base [51:16], count [63:52].
    pub(crate) fn encode(&self) -> u64 {
        u64::from(self.index) | self.base | (u64::from(self.count) << 52)
    }
}

/// `REDIST_REGION` value fields.
const RDIST_INDEX_MASK: u64 = 0xfff;
const RDIST_FLAGS_MASK: u64 = 0xf << 12;
const RDIST_BASE_MASK: u64 = 0x000f_ffff_ffff_0000;

/// Decodes a `REDIST_REGION` write: (index, base, count). Count 0 or flags: `EINVAL`.
pub(crate) fn decode_region(v: u64) -> Result<Region, Errno> {
    let count = (v >> 52) as u32;
    if count == 0 || v & RDIST_FLAGS_MASK != 0 {
        return Err(Errno::Inval);
    }
    Ok(Region {
        index: (v & RDIST_INDEX_MASK) as u32,
        base: v & RDIST_BASE_MASK,
        count,
    })
}

/// The index a `REDIST_REGION` read asks about.
pub(crate) fn region_index(v: u64) -> u32 {
    (v & RDIST_INDEX_MASK) as u32
}

fn overlap(a: u64, a_size: u64, b: u64, b_size: u64) -> bool {
    a < b.saturating_add(b_size) && b < a.saturating_add(a_size)
}

/// KVM's `vgic_check_iorange`: an address not set before, aligned to 64 KiB with an
/// aligned size, not wrapping, inside the VM's IPA space.
pub(crate) fn check_iorange(
    current: Option<u64>,
    addr: u64,
    size: u64,
    ipa_limit: u64,
) -> Result<(), Errno> {
    if current.is_some() {
        return Err(Errno::Exist);
    }
    if addr % 0x1_0000 != 0 || size % 0x1_0000 != 0 {
        return Err(Errno::Inval);
    }
    let end = addr.checked_add(size).ok_or(Errno::Inval)?;
    if addr >= ipa_limit || end > ipa_limit {
        return Err(Errno::TooBig);
    }
    Ok(())
}

/// The distributor and redistributor placement of one vGIC.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) dist: Option<u64>,
    pub(crate) regions: [Region; MAX_REGIONS],
    pub(crate) nr_regions: usize,
}

/// Redistributor regions per vGIC (one per possible vCPU is plenty; KVM's list has no
/// fixed bound, and rkvm answers `ENOSPC` beyond this).
pub(crate) const MAX_REGIONS: usize = 64;

impl Layout {
    pub(crate) const fn new() -> Self {
        Self {
            dist: None,
            regions: [Region {
                index: 0,
                base: 0,
                count: 0,
            }; MAX_REGIONS],
            nr_regions: 0,
        }
    }

    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions[..self.nr_regions]
    }

    /// `ADDR_TYPE_DIST` write.
    pub(crate) fn set_dist(&mut self, addr: u64, ipa_limit: u64) -> Result<(), Errno> {
        check_iorange(self.dist, addr, DIST_SIZE, ipa_limit)?;
        self.dist = Some(addr);
        Ok(())
    }

    /// `ADDR_TYPE_REDIST` (legacy: `region.count` 0) or `REDIST_REGION` write, with
    /// `nr_vcpus` vCPUs created so far.
    pub(crate) fn add_region(
        &mut self,
        r: Region,
        nr_vcpus: usize,
        ipa_limit: u64,
    ) -> Result<(), Errno> {
        let size = r.size(nr_vcpus);
        if r.base.checked_add(size).is_none() {
            return Err(Errno::Inval);
        }
        match self.regions().last() {
            None if r.index != 0 => return Err(Errno::Inval),
            None => {}
            Some(last) => {
                // Do not mix the legacy region and counted ones.
                if r.count == 0 && last.count != 0 {
                    return Err(Errno::Inval);
                }
                if r.count == 0 {
                    return Err(Errno::Exist);
                }
                if r.index != last.index + 1 {
                    return Err(Errno::Inval);
                }
            }
        }
        // KVM checks a legacy region against the distributor here, and a counted one
        // when it places a vCPU's redistributor in it (`vgic_v3_check_base`); rkvm
        // checks both here, with the same error.
        if self
            .dist
            .is_some_and(|d| overlap(d, DIST_SIZE, r.base, size))
        {
            return Err(Errno::Inval);
        }
        if self
            .regions()
            .iter()
            .any(|o| overlap(o.base, o.size(nr_vcpus), r.base, size))
        {
            return Err(Errno::Inval);
        }
        check_iorange(None, r.base, size, ipa_limit)?;
        if self.nr_regions == MAX_REGIONS {
            return Err(Errno::NoSpace);
        }
        self.regions[self.nr_regions] = r;
        self.nr_regions += 1;
        Ok(())
    }

    /// The region with `index`, for a `REDIST_REGION` read (`ENOENT` if none).
    pub(crate) fn region(&self, index: u32) -> Result<Region, Errno> {
        self.regions()
            .iter()
            .find(|r| r.index == index)
            .copied()
            .ok_or(Errno::Noent)
    }

    /// KVM's first-run check (`vgic_v3_map_resources`): every vCPU has a redistributor
    /// (`ENXIO`), the distributor is placed (`ENXIO`), and nothing overlaps or leaves the
    /// IPA space (`EINVAL`).
    pub(crate) fn check(&self, nr_vcpus: usize, ipa_limit: u64) -> Result<u64, Errno> {
        let capacity: u64 = self
            .regions()
            .iter()
            .map(|r| {
                if r.count == 0 {
                    nr_vcpus as u64
                } else {
                    u64::from(r.count)
                }
            })
            .sum();
        if capacity < nr_vcpus as u64 {
            return Err(Errno::Nxio);
        }
        let dist = self.dist.ok_or(Errno::Nxio)?;
        for r in self.regions() {
            if check_iorange(None, r.base, r.size(nr_vcpus), ipa_limit).is_err() {
                return Err(Errno::Inval);
            }
            if overlap(dist, DIST_SIZE, r.base, r.size(nr_vcpus)) {
                return Err(Errno::Inval);
            }
        }
        Ok(dist)
    }

    /// Which vCPU's redistributor (and offset in it) holds `ipa`, with `nr_vcpus`
    /// placed in region order.
    pub(crate) fn redist_at(&self, ipa: u64, nr_vcpus: usize) -> Option<(usize, u64)> {
        let mut first = 0usize;
        for r in self.regions() {
            let slots = if r.count == 0 {
                nr_vcpus
            } else {
                r.count as usize
            };
            if ipa >= r.base && ipa - r.base < slots as u64 * REDIST_SIZE {
                let vcpu = first + ((ipa - r.base) / REDIST_SIZE) as usize;
                return (vcpu < nr_vcpus).then_some((vcpu, (ipa - r.base) % REDIST_SIZE));
            }
            first += slots;
        }
        None
    }

    /// Each region with the number of redistributors placed in it, `nr_vcpus` placed
    /// in region order.
    fn placed(&self, nr_vcpus: usize) -> impl Iterator<Item = (&Region, usize, usize)> {
        let mut first = 0usize;
        self.regions().iter().map(move |r| {
            let slots = if r.count == 0 {
                nr_vcpus
            } else {
                r.count as usize
            };
            let used = slots.min(nr_vcpus.saturating_sub(first));
            let start = first;
            first += slots;
            (r, start, used)
        })
    }

    /// `GICR_TYPER.Last` of vCPU `idx` (KVM's `vgic_mmio_vcpu_rdist_is_last`): it is the
    /// last redistributor placed in its region, unless it fills a counted region that
    /// another region with a redistributor in it continues contiguously. A vCPU without a
    /// redistributor yet is not last.
    pub(crate) fn is_last(&self, idx: usize, nr_vcpus: usize) -> bool {
        let Some((r, start, used)) = self
            .placed(nr_vcpus)
            .find(|&(_, s, u)| idx >= s && idx < s + u)
        else {
            return false;
        };
        let i = idx - start;
        if i + 1 < used {
            return false;
        }
        if r.count != 0 && i + 1 == r.count as usize {
            let end = r.base + r.size(nr_vcpus);
            return !self
                .placed(nr_vcpus)
                .any(|(o, _, u)| o.base == end && u > 0);
        }
        true
    }
}

/// `KVM_IRQ_LINE`'s `irq` field (arm64 layout 2): type, vCPU id and interrupt number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IrqLine {
    pub(crate) kind: u32,
    pub(crate) vcpu_id: u32,
    pub(crate) num: u32,
}

pub(crate) const IRQ_TYPE_CPU: u32 = 0;
pub(crate) const IRQ_TYPE_SPI: u32 = 1;
pub(crate) const IRQ_TYPE_PPI: u32 = 2;

impl IrqLine {
    /// type [27:24], vcpu2 [31:28] (vCPU id bits 8-11), vcpu [23:16], num [15:0].
    pub(crate) const fn decode(irq: u32) -> Self {
        Self {
            kind: (irq >> 24) & 0xf,
            vcpu_id: ((irq >> 16) & 0xff) | (((irq >> 28) & 0xf) << 8),
            num: irq & 0xffff,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn its_attributes() {
        use super::*;
        assert_eq!(decode_its(GRP_ADDR, ITS_ADDR_TYPE), Ok(ItsAttr::Addr));
        assert_eq!(decode_its(GRP_ADDR, ADDR_TYPE_DIST), Err(Errno::NoDev));
        assert_eq!(decode_its(GRP_CTRL, CTRL_INIT), Ok(ItsAttr::Init));
        assert_eq!(decode_its(GRP_CTRL, CTRL_ITS_RESET), Ok(ItsAttr::Reset));
        assert_eq!(
            decode_its(GRP_CTRL, CTRL_ITS_SAVE_TABLES),
            Ok(ItsAttr::SaveTables)
        );
        assert_eq!(
            decode_its(GRP_CTRL, CTRL_ITS_RESTORE_TABLES),
            Ok(ItsAttr::RestoreTables)
        );
        // The vGIC's own control attribute is not the ITS's.
        assert_eq!(
            decode_its(GRP_CTRL, CTRL_SAVE_PENDING_TABLES),
            Err(Errno::Nxio)
        );
        assert_eq!(decode_its(GRP_ITS_REGS, 0x88), Ok(ItsAttr::Regs(0x88)));
        assert_eq!(decode_its(GRP_DIST_REGS, 0), Err(Errno::Nxio));
    }

    extern crate std;
    use super::*;
    use std::vec::Vec;

    const IPA: u64 = 1 << 40;

    #[test]
    fn distributor_address() {
        let mut l = Layout::new();
        assert_eq!(l.set_dist(0x1000, IPA), Err(Errno::Inval));
        assert_eq!(l.set_dist(IPA, IPA), Err(Errno::TooBig));
        assert_eq!(l.set_dist(IPA - 0x1_0000, IPA), Ok(()));
        assert_eq!(l.set_dist(0x800_0000, IPA), Err(Errno::Exist));
    }

    #[test]
    fn legacy_region() {
        let mut l = Layout::new();
        l.set_dist(0x800_0000, IPA).unwrap();
        // Overlaps the distributor with two vCPUs.
        let legacy = |base| Region {
            index: 0,
            base,
            count: 0,
        };
        assert_eq!(l.add_region(legacy(0x7ff_0000), 2, IPA), Err(Errno::Inval));
        assert_eq!(l.add_region(legacy(0x80a_1000), 2, IPA), Err(Errno::Inval));
        assert_eq!(l.add_region(legacy(0x80a_0000), 2, IPA), Ok(()));
        assert_eq!(l.add_region(legacy(0x90a_0000), 2, IPA), Err(Errno::Exist));
        assert_eq!(l.check(2, IPA), Ok(0x800_0000));
        assert_eq!(l.redist_at(0x80c_0010, 2), Some((1, 0x10)));
        assert_eq!(l.redist_at(0x80e_0000, 2), None);
        assert!(l.is_last(1, 2) && !l.is_last(0, 2));
    }

    #[test]
    fn legacy_region_set_before_vcpus_is_checked_at_first_run() {
        // kvmtool: redistributors, then distributor, before any vCPU exists.
        let mut l = Layout::new();
        l.add_region(
            Region {
                index: 0,
                base: 0x3ffb_0000,
                count: 0,
            },
            0,
            IPA,
        )
        .unwrap();
        l.set_dist(0x3fff_0000, IPA).unwrap();
        assert_eq!(l.check(2, IPA), Ok(0x3fff_0000));
        // Three vCPUs would reach into the distributor.
        assert_eq!(l.check(3, IPA), Err(Errno::Inval));
    }

    #[test]
    fn counted_regions() {
        let mut l = Layout::new();
        assert_eq!(decode_region(0x80a_0000), Err(Errno::Inval)); // count 0
        assert_eq!(
            decode_region((1 << 52) | (1 << 12) | 0x80a_0000),
            Err(Errno::Inval)
        );
        let r0 = decode_region((1 << 52) | 0x80a_0000).unwrap();
        assert_eq!(
            r0,
            Region {
                index: 0,
                base: 0x80a_0000,
                count: 1
            }
        );
        assert_eq!(
            l.add_region(Region { index: 1, ..r0 }, 2, IPA),
            Err(Errno::Inval)
        );
        assert_eq!(l.add_region(r0, 2, IPA), Ok(()));
        assert_eq!(
            l.add_region(
                Region {
                    index: 2,
                    base: 0x100_0000,
                    count: 1
                },
                2,
                IPA
            ),
            Err(Errno::Inval)
        );
        // Overlap with region 0.
        assert_eq!(
            l.add_region(
                Region {
                    index: 1,
                    base: 0x80b_0000,
                    count: 1
                },
                2,
                IPA
            ),
            Err(Errno::Inval)
        );
        assert_eq!(
            l.add_region(
                Region {
                    index: 1,
                    base: 0x100_0000,
                    count: 4
                },
                2,
                IPA
            ),
            Ok(())
        );
        // No legacy region after counted ones.
        assert_eq!(
            l.add_region(
                Region {
                    index: 0,
                    base: 0x200_0000,
                    count: 0
                },
                2,
                IPA
            ),
            Err(Errno::Inval)
        );
        assert_eq!(l.region(1).unwrap().encode(), (4 << 52) | 0x100_0000 | 1);
        assert_eq!(l.region(2), Err(Errno::Noent));
        // Out of the IPA space.
        assert_eq!(
            l.add_region(
                Region {
                    index: 2,
                    base: IPA - 0x2_0000,
                    count: 2
                },
                2,
                IPA
            ),
            Err(Errno::TooBig)
        );
        // No distributor yet.
        assert_eq!(l.check(2, IPA), Err(Errno::Nxio));
        l.set_dist(0x800_0000, IPA).unwrap();
        assert_eq!(l.check(2, IPA), Ok(0x800_0000));
        assert_eq!(l.redist_at(0x100_0000, 2), Some((1, 0)));
        assert!(l.is_last(0, 2));
        // Five vCPUs do not fit in 1 + 4 slots? They do; six do not.
        assert_eq!(l.check(5, IPA), Ok(0x800_0000));
        assert_eq!(l.check(6, IPA), Err(Errno::Nxio));
        // A counted region over the distributor.
        assert_eq!(
            l.add_region(
                Region {
                    index: 2,
                    base: 0x800_0000,
                    count: 1
                },
                2,
                IPA
            ),
            Err(Errno::Inval)
        );
    }

    #[test]
    fn last_redistributor_as_kvm() {
        // vgic_init's regions: #0 at 0x100000, #1 at 0x240000, #2 at 0x200000, two slots
        // each, six vCPUs: #2 runs into #1, so its second vCPU is not last.
        let mut l = Layout::new();
        for (index, base) in [(0, 0x10_0000), (1, 0x24_0000), (2, 0x20_0000)] {
            l.add_region(
                Region {
                    index,
                    base,
                    count: 2,
                },
                6,
                IPA,
            )
            .unwrap();
        }
        let last: Vec<bool> = (0..6).map(|i| l.is_last(i, 6)).collect();
        assert_eq!(last, [false, true, false, true, false, false]);
        // A counted region not yet full: its last placed vCPU is last.
        let mut l = Layout::new();
        l.add_region(
            Region {
                index: 0,
                base: 0x20_0000,
                count: 2,
            },
            4,
            IPA,
        )
        .unwrap();
        assert!(!l.is_last(2, 4));
        l.add_region(
            Region {
                index: 1,
                base: 0x2_0000,
                count: 10,
            },
            4,
            IPA,
        )
        .unwrap();
        assert_eq!(
            (l.is_last(1, 4), l.is_last(2, 4), l.is_last(3, 4)),
            (true, false, true)
        );
        // No region at all.
        assert!(!Layout::new().is_last(0, 1));
    }

    #[test]
    fn irq_line() {
        assert_eq!(
            IrqLine::decode(0x0100_0020),
            IrqLine {
                kind: IRQ_TYPE_SPI,
                vcpu_id: 0,
                num: 32
            }
        );
        assert_eq!(
            IrqLine::decode(0x0203_001b),
            IrqLine {
                kind: IRQ_TYPE_PPI,
                vcpu_id: 3,
                num: 27
            }
        );
        assert_eq!(IrqLine::decode(0x1201_0010).vcpu_id, 0x101);
    }

    #[test]
    fn attributes() {
        assert_eq!(decode(GRP_ADDR, ADDR_TYPE_DIST), Ok(Attr::Dist));
        assert_eq!(decode(GRP_ADDR, 0), Err(Errno::Nxio)); // a GICv2 address type
        assert_eq!(
            decode(GRP_CTRL, CTRL_SAVE_PENDING_TABLES),
            Ok(Attr::SavePendingTables)
        );
        assert_eq!(
            decode(GRP_DIST_REGS, 8),
            Ok(Attr::Regs(RegAttr::decode(Group::Dist, 8)))
        );
        assert!(
            matches!(decode(GRP_LEVEL_INFO, 32), Ok(Attr::Regs(r)) if r.group == Group::LevelInfo)
        );
        assert_eq!(decode(GRP_CPU_REGS, 0), Err(Errno::Nxio));
        assert_eq!(decode(GRP_MAINT_IRQ, 0), Err(Errno::Nxio));
        assert_eq!(decode(GRP_ITS_REGS, 0), Err(Errno::Nxio));
        assert_eq!(nr_spis(288), Ok(256));
        assert_eq!(nr_spis(32), Err(Errno::Inval));
        assert_eq!(nr_spis(100), Err(Errno::Inval));
        assert_eq!(nr_spis(1024), Err(Errno::Inval));
        assert_eq!(nr_spis(992), Ok(960));
    }
}
