// SPDX-License-Identifier: GPL-2.0

//! The GICv3 ITS (`KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_ITS)`): its device fd and
//! attributes, the guest's accesses to its frames, and MSIs (`KVM_SIGNAL_MSI`, irqfds
//! routed to an MSI) translated into LPIs of the vGIC.
//!
//! KVM counterpart: `arch/arm64/kvm/vgic/vgic-its.c` (`vgic_its_create`, the attribute
//! handlers, `vgic_its_inject_msi`, `vgic_msi_to_its`) and `vgic-v3.c`
//! (`vgic_v3_save_pending_tables`). Decisions are `logic::vgic::its`; this layer owns the
//! storage, takes the locks and reads guest memory.
//!
//! A VM has up to [`MAX_ITS`] ITSes, each kept until the VM goes (as KVM's devices).
//! Lock order: Documentation/design.rst, "Locking". `Its::state` is KVM's `its_lock` and
//! `cmd_lock` in one: commands run to completion under it.

use crate::{
    logic::irqroute::Msi,
    logic::vgic::{
        attr::{self, check_iorange, Errno, ItsAttr},
        its::{
            self as model, Collection, Device, GuestMem, Ite, ItsRegs, Lpis, MsiError, ITS_SIZE,
            LPI_MAP_WORDS, MAX_COLLECTIONS, MAX_DEVICES, MAX_ITES,
        },
        mmio::{pendbaser_address, propbaser_address, LpiWork},
        Model, VcpuMask, LPI_BASE, NONE,
    },
    mmu::GuestMemory,
    sys::{self, anon_fd::FdOps},
    vgic::{self, Vgic},
    vm::Vm,
};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::{
    alloc::KVVec,
    new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex, SetOnce},
    uaccess::{UserPtr, UserSlice},
};

/// ITSes per VM: QEMU, kvmtool and Firecracker create one; KVM sets no limit.
pub(crate) const MAX_ITS: usize = 8;

/// One ITS's registers and tables, allocated at creation.
struct Storage {
    regs: KBox<ItsRegs>,
    devices: KVVec<Device>,
    ites: KVVec<Ite>,
    collections: KVVec<Collection>,
    lpi_map: KVVec<u64>,
}

impl Storage {
    fn new() -> Result<Self> {
        fn filled<T: Copy>(n: usize, v: T) -> Result<KVVec<T>> {
            let mut t = KVVec::with_capacity(n, GFP_KERNEL_ACCOUNT)?;
            for _ in 0..n {
                t.push(v, GFP_KERNEL_ACCOUNT)?;
            }
            Ok(t)
        }
        Ok(Self {
            regs: KBox::new(ItsRegs::default(), GFP_KERNEL_ACCOUNT)?,
            devices: filled(MAX_DEVICES, Device::EMPTY)?,
            ites: filled(MAX_ITES, Ite::EMPTY)?,
            collections: filled(MAX_COLLECTIONS, Collection::EMPTY)?,
            lpi_map: filled(LPI_MAP_WORDS, 0u64)?,
        })
    }

    fn its(&mut self) -> model::Its<'_> {
        model::Its {
            regs: &mut self.regs,
            devices: &mut self.devices,
            ites: &mut self.ites,
            collections: &mut self.collections,
            lpi_map: &mut self.lpi_map,
        }
    }
}

/// One ITS device.
#[pin_data]
pub(crate) struct Its {
    /// The frames' guest-physical base, [`attr::ADDR_UNDEF`] until set (once).
    base: AtomicU64,
    #[pin]
    state: Mutex<Storage>,
}

impl Its {
    fn contains(&self, ipa: u64) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base != attr::ADDR_UNDEF && ipa >= base && ipa - base < ITS_SIZE
    }
}

/// A VM's ITSes. Slots fill in order and never empty, so readers need no lock.
#[pin_data]
pub(crate) struct ItsSet {
    slots: [SetOnce<Arc<Its>>; MAX_ITS],
    /// Populated slots, published after the slot.
    count: AtomicUsize,
    /// Serialises creations.
    #[pin]
    adding: Mutex<()>,
}

impl ItsSet {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            slots: [const { SetOnce::new() }; MAX_ITS],
            count: AtomicUsize::new(0),
            adding <- new_mutex!((), "ItsSet::adding"),
        })
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Its>> {
        let n = self.count.load(Ordering::Acquire).min(MAX_ITS);
        self.slots[..n].iter().filter_map(SetOnce::as_ref)
    }

    /// Whether the VM has an ITS (KVM's `vgic_has_its`).
    pub(crate) fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) != 0
    }

    /// The ITS whose frames hold `ipa`.
    fn at(&self, ipa: u64) -> Option<&Arc<Its>> {
        self.iter().find(|its| its.contains(ipa))
    }
}

/// Guest memory through the VMM's mapping of the memslots.
struct Mem<'a>(&'a GuestMemory);

impl GuestMem for Mem<'_> {
    fn read_u64(&mut self, gpa: u64) -> Result<u64, ()> {
        let mut b = [0u8; 8];
        self.0.read_guest(gpa, &mut b).map_err(|_| ())?;
        Ok(u64::from_le_bytes(b))
    }

    fn write_u64(&mut self, gpa: u64, val: u64) -> Result<(), ()> {
        self.0.write_guest(gpa, &val.to_le_bytes()).map_err(|_| ())
    }
}

/// Reads the byte at `gpa`.
fn read_byte(mmu: &GuestMemory, gpa: u64) -> Result<u8, ()> {
    let mut b = [0u8; 1];
    mmu.read_guest(gpa, &mut b).map_err(|_| ())?;
    Ok(b[0])
}

/// The vGIC's LPIs as the ITS drives them: each operation takes the vGIC lock for
/// itself; the property and pending tables are read before it is taken.
struct VmLpis<'a> {
    vgic: &'a Vgic,
    /// Guest memory for the tables; `None` for MSI translation, which reads none.
    mmu: Option<&'a GuestMemory>,
}

impl VmLpis<'_> {
    /// Runs `f` on the vGIC model (nothing before `CTRL_INIT`).
    fn with<R>(&self, f: impl FnOnce(&mut Model<'_>) -> (R, VcpuMask)) -> Option<R> {
        self.vgic.with_model(f)
    }

    /// LPI `intid`'s byte in the property table.
    fn config(&self, intid: u32) -> Result<u8, ()> {
        let propbaser = self.propbaser();
        read_byte(
            self.mmu.ok_or(())?,
            propbaser_address(propbaser) + u64::from(intid - LPI_BASE),
        )
    }
}

impl Lpis for VmLpis<'_> {
    fn vcpu_by_rdbase(&self, rdbase: u64) -> Option<usize> {
        self.vgic.vcpu_idx_by_id(rdbase)
    }

    fn lpis_enabled(&self, vcpu: usize) -> bool {
        self.with(|m| (m.lpis_enabled(vcpu), 0)).unwrap_or(false)
    }

    fn propbaser(&self) -> u64 {
        self.with(|m| (m.dist.propbaser, 0)).unwrap_or(0)
    }

    fn map(&mut self, intid: u32, vcpu: Option<usize>) -> Result<(), ()> {
        let target = vcpu.map_or(NONE, |v| v as u16);
        let exists = self.with(|m| (m.lpi_state(intid).is_some(), 0)).ok_or(())?;
        // A new LPI starts from the guest's tables, as KVM's vgic_add_lpi: failing to
        // read them fails the mapping.
        let (config, pending) = if exists {
            (0, false)
        } else {
            let config = self.config(intid)?;
            let pending = match vcpu {
                None => false,
                Some(v) => {
                    let pendbaser = self
                        .with(|m| (m.cpus.get(v).map_or(0, |c| c.pendbaser), 0))
                        .unwrap_or(0);
                    let byte = read_byte(
                        self.mmu.ok_or(())?,
                        pendbaser_address(pendbaser) + u64::from(intid / 8),
                    )?;
                    byte & (1 << (intid % 8)) != 0
                }
            };
            (config, pending)
        };
        self.with(|m| match m.lpi_map(intid, target, config, pending) {
            Ok(kick) => (Ok(()), kick),
            Err(()) => (Err(()), 0),
        })
        .ok_or(())?
    }

    fn unmap(&mut self, intid: u32) {
        self.with(|m| ((), m.lpi_unmap(intid)));
    }

    fn set_target(&mut self, intid: u32, vcpu: Option<usize>) {
        let target = vcpu.map_or(NONE, |v| v as u16);
        self.with(|m| ((), m.lpi_set_target(intid, target)));
    }

    fn set_pending(&mut self, intid: u32, pending: bool) {
        self.with(|m| ((), m.lpi_set_pending(intid, pending)));
    }

    fn invalidate(&mut self, intid: u32) {
        // An unreadable byte leaves the cached configuration, as KVM's failed INV.
        if let Ok(config) = self.config(intid) {
            self.with(|m| ((), m.lpi_set_config(intid, config)));
        }
    }

    fn invalidate_all(&mut self, vcpu: usize) {
        if let Some(mmu) = self.mmu {
            lpi_reload_config(self.vgic, mmu, Some(vcpu as u16));
        }
    }

    fn move_all(&mut self, from: usize, to: usize) {
        self.with(|m| ((), m.lpi_move_all(from as u16, to as u16)));
    }
}

/// Re-reads the property-table bytes of the mapped LPIs (targeting `cpu` if given):
/// INVALL, GICR_INVALLR. The table is copied out of guest memory first, so the vGIC
/// lock is never held across a guest-memory access; what cannot be read keeps its
/// cached configuration, as KVM's per-LPI `update_lpi_config` failing.
pub(crate) fn lpi_reload_config(vgic: &Vgic, mmu: &GuestMemory, cpu: Option<u16>) {
    let Some((propbaser, last)) = vgic.with_model(|m| {
        let last = m.lpis_of(cpu).last();
        ((m.dist.propbaser, last), 0)
    }) else {
        return;
    };
    let Some(last) = last else { return };
    let len = (last - LPI_BASE + 1) as usize;
    let Ok(mut prop) = KVVec::<u8>::from_elem(0u8, len, GFP_KERNEL) else {
        return;
    };
    if mmu
        .read_guest(propbaser_address(propbaser), &mut prop)
        .is_ok()
    {
        vgic.with_model(|m| ((), m.lpi_load_config(cpu, &prop)));
        return;
    }
    // The table straddles a hole (a broken or hostile guest): LPI by LPI, keeping the
    // configuration of those whose byte does not read.
    for intid in LPI_BASE..=last {
        let Ok(config) = read_byte(
            mmu,
            propbaser_address(propbaser) + u64::from(intid - LPI_BASE),
        ) else {
            continue;
        };
        vgic.with_model(|m| {
            let ours = m
                .lpi_state(intid)
                .is_some_and(|(_, t)| cpu.is_none_or(|c| c == t));
            (
                (),
                if ours {
                    m.lpi_set_config(intid, config)
                } else {
                    0
                },
            )
        });
    }
}

/// EnableLPIs was set on vCPU `cpu`'s redistributor: its LPIs take their pending bits
/// from its pending table (KVM's `its_sync_lpi_pending_table`). Bytes that do not read
/// are left alone.
pub(crate) fn lpi_sync_pending(vgic: &Vgic, mmu: &GuestMemory, cpu: u16) {
    let Some((pendbaser, first, last)) = pending_window(vgic, cpu) else {
        return;
    };
    let Some(table) = read_pending_window(mmu, pendbaser, first, last) else {
        return;
    };
    vgic.with_model(|m| ((), m.lpi_load_pending(cpu, &table)));
}

/// vCPU `cpu`'s GICR_PENDBASER and the first and last mapped LPIs targeting it: the part
/// of its pending table that matters. `None` when no LPI targets it (or before
/// `CTRL_INIT`).
fn pending_window(vgic: &Vgic, cpu: u16) -> Option<(u64, u32, u32)> {
    vgic.with_model(|m| {
        let pendbaser = m.cpus.get(usize::from(cpu)).map_or(0, |c| c.pendbaser);
        let mut it = m.lpis_of(Some(cpu));
        let first = it.next();
        let last = it.last().or(first);
        (first.zip(last).map(|(f, l)| (pendbaser, f, l)), 0)
    })
    .flatten()
}

/// A zeroed copy of a pending table up to `last`'s byte, with `first..=last`'s bytes
/// read from the guest.
fn read_pending_window(
    mmu: &GuestMemory,
    pendbaser: u64,
    first: u32,
    last: u32,
) -> Option<KVVec<u8>> {
    let (lo, hi) = ((first / 8) as usize, (last / 8) as usize);
    let mut table = KVVec::<u8>::from_elem(0u8, hi + 1, GFP_KERNEL).ok()?;
    mmu.read_guest(pendbaser_address(pendbaser) + lo as u64, &mut table[lo..])
        .ok()?;
    Some(table)
}

/// `SAVE_PENDING_TABLES` (KVM's `vgic_v3_save_pending_tables`): each mapped LPI's pending
/// state into its target vCPU's pending table. Called with every vCPU stopped.
pub(crate) fn save_pending_tables(vm: &Vm) -> Result {
    let vgic = &vm.vgic;
    let mmu = &vm.mmu;
    // No vCPU before CTRL_INIT, so nothing to save then.
    for cpu in 0..vgic.nr_vcpus() as u16 {
        let Some((pendbaser, first, last)) = pending_window(vgic, cpu) else {
            continue;
        };
        let mut table = read_pending_window(mmu, pendbaser, first, last).ok_or(EFAULT)?;
        let changed = vgic
            .with_model(|m| (m.lpi_store_pending(cpu, &mut table), 0))
            .unwrap_or(false);
        if changed {
            let lo = (first / 8) as usize;
            mmu.write_guest(pendbaser_address(pendbaser) + lo as u64, &table[lo..])?;
        }
    }
    Ok(())
}

/// Guest-memory work a redistributor register write left (`logic::vgic::mmio::LpiWork`),
/// done after the vGIC lock is released.
pub(crate) fn lpi_work(vm: &Vm, work: LpiWork) {
    let mmu = &vm.mmu;
    match work {
        LpiWork::Invalidate(intid) => VmLpis {
            vgic: &vm.vgic,
            mmu: Some(mmu),
        }
        .invalidate(intid),
        LpiWork::InvalidateAll(cpu) => lpi_reload_config(&vm.vgic, mmu, Some(cpu)),
        LpiWork::EnableLpis { cpu, load_pending } => {
            if load_pending {
                lpi_sync_pending(&vm.vgic, mmu, cpu);
            }
        }
        // No translation cache to invalidate: every MSI is translated afresh.
        LpiWork::DisableLpis(_) => {}
    }
}

/// A guest access to `ipa` by a vCPU: `Some(value read)` if an ITS's frames hold it (a
/// write returns 0), `None` otherwise.
pub(crate) fn mmio(vm: &Vm, ipa: u64, len: u8, write: bool, value: u64) -> Option<u64> {
    if !vm.its.any() {
        return None;
    }
    let its = vm.its.at(ipa)?;
    let off = ipa - its.base.load(Ordering::Acquire);
    let mut st = its.state.lock();
    if !write {
        return Some(st.its().mmio_read(off, len));
    }
    let mmu = &vm.mmu;
    let mut lpis = VmLpis {
        vgic: &vm.vgic,
        mmu: Some(mmu),
    };
    st.its()
        .mmio_write(off, len, value, &mut Mem(mmu), &mut lpis);
    Some(0)
}

/// Delivers `msi` through the ITS whose frames hold its address (KVM's `kvm_set_msi` and
/// `vgic_its_inject_msi`): `ENODEV` without an ITS, `EINVAL` without a DeviceID or an ITS
/// at the address, `EBUSY` while the ITS or the target's LPIs are disabled; then 1 when
/// delivered, 0 when the ITS had no mapping (the guest blocked it).
pub(crate) fn inject_msi(vm: &Vm, msi: &Msi) -> Result<isize> {
    if !vm.its.any() {
        return Err(ENODEV);
    }
    let devid = msi.devid.ok_or(EINVAL)?;
    let its = vm.its.at(msi.address).ok_or(EINVAL)?;
    let mut st = its.state.lock();
    // Translation reads no guest memory: the ITS keeps its tables in the kernel.
    let mut lpis = VmLpis {
        vgic: &vm.vgic,
        mmu: None,
    };
    match st.its().resolve(devid, msi.data, &lpis) {
        Err(MsiError::Busy) => Err(EBUSY),
        Err(MsiError::Unmapped) => Ok(0),
        Ok((intid, _)) => {
            lpis.set_pending(intid, true);
            Ok(1)
        }
    }
}

/// `KVM_CREATE_DEVICE(KVM_DEV_TYPE_ARM_VGIC_ITS)`: allocates the ITS and tells the vGIC
/// the VM has LPIs (KVM's `vgic_its_create`). Returns the new device's fd.
pub(crate) fn create(vm: ArcBorrow<'_, Vm>) -> Result<i32> {
    let its = Arc::pin_init(
        try_pin_init!(Its {
            base: AtomicU64::new(attr::ADDR_UNDEF),
            state <- new_mutex!(Storage::new()?, "Its::state"),
        }),
        GFP_KERNEL_ACCOUNT,
    )?;
    {
        let _adding = vm.its.adding.lock();
        let n = vm.its.count.load(Ordering::Acquire);
        if n >= MAX_ITS {
            return Err(ENOSPC);
        }
        vm.vgic.enable_lpis()?;
        vm.its.slots[n].populate(its.clone());
        vm.its.count.store(n + 1, Ordering::Release);
    }
    sys::anon_fd::install(
        c"kvm-arm-vgic-its",
        Arc::new(ItsDevice { vm: vm.into(), its }, GFP_KERNEL_ACCOUNT)?,
    )
}

/// The ITS device fd: `KVM_{SET,GET,HAS}_DEVICE_ATTR`.
struct ItsDevice {
    vm: Arc<Vm>,
    its: Arc<Its>,
}

impl ItsDevice {
    fn set_attr(&self, a: ItsAttr, addr: usize) -> Result {
        let vm = &*self.vm;
        let user = || UserSlice::new(UserPtr::from_addr(addr), 8);
        match a {
            ItsAttr::Addr => {
                let base: u64 = user().reader().read()?;
                let _adding = vm.its.adding.lock();
                let current = self.its.base.load(Ordering::Acquire);
                let current = (current != attr::ADDR_UNDEF).then_some(current);
                check_iorange(current, base, ITS_SIZE, vm.ipa_limit())?;
                self.its.base.store(base, Ordering::Release);
                Ok(())
            }
            ItsAttr::Init => Ok(()),
            ItsAttr::Reset | ItsAttr::SaveTables | ItsAttr::RestoreTables => {
                vm.with_vcpus_stopped(|| {
                    let mut st = self.its.state.lock();
                    let mmu = &vm.mmu;
                    let mut lpis = VmLpis {
                        vgic: &vm.vgic,
                        mmu: Some(mmu),
                    };
                    let mut its = st.its();
                    match a {
                        ItsAttr::Reset => {
                            its.reset(&mut lpis);
                            Ok(())
                        }
                        ItsAttr::SaveTables => its.save_tables(&mut Mem(mmu)).map_err(Error::from),
                        _ => its
                            .restore_tables(&mut Mem(mmu), &mut lpis)
                            .map_err(Error::from),
                    }
                })
            }
            ItsAttr::Regs(offset) => {
                let val: u64 = user().reader().read()?;
                self.regs_access(offset, Some(val)).map(|_| ())
            }
        }
    }

    fn get_attr(&self, a: ItsAttr, addr: usize) -> Result {
        let user = || UserSlice::new(UserPtr::from_addr(addr), 8);
        let v = match a {
            ItsAttr::Addr => self.its.base.load(Ordering::Acquire),
            ItsAttr::Regs(offset) => self.regs_access(offset, None)?,
            _ => return Err(ENXIO),
        };
        user().writer().write(&v)
    }

    /// `GRP_ITS_REGS` (KVM's `vgic_its_attr_regs_access`): `EINVAL` misaligned, `EBUSY`
    /// while a vCPU is in an ioctl, `ENXIO` before the base is set or for no register.
    fn regs_access(&self, offset: u64, write: Option<u64>) -> Result<u64> {
        let vm = &*self.vm;
        let known = match model::regs_check(offset) {
            Err(e @ Errno::Inval) => return Err(e.into()),
            r => r,
        };
        vm.with_vcpus_stopped(|| {
            if self.its.base.load(Ordering::Acquire) == attr::ADDR_UNDEF {
                return Err(ENXIO);
            }
            known?;
            let mut st = self.its.state.lock();
            match write {
                None => st.its().regs_get(offset).map_err(Error::from),
                Some(val) => {
                    let mmu = &vm.mmu;
                    let mut lpis = VmLpis {
                        vgic: &vm.vgic,
                        mmu: Some(mmu),
                    };
                    st.its().regs_set(offset, val, &mut Mem(mmu), &mut lpis)?;
                    Ok(0)
                }
            }
        })
    }
}

impl FdOps for ItsDevice {
    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        use crate::logic::ioctl::{KVM_GET_DEVICE_ATTR, KVM_HAS_DEVICE_ATTR, KVM_SET_DEVICE_ATTR};
        if !this.vm.owned_by_current() {
            return Err(EIO);
        }
        let (group, a, addr) = vgic::read_device_attr(arg)?;
        match cmd {
            KVM_SET_DEVICE_ATTR => this.set_attr(attr::decode_its(group, a)?, addr).map(|()| 0),
            KVM_GET_DEVICE_ATTR => this.get_attr(attr::decode_its(group, a)?, addr).map(|()| 0),
            KVM_HAS_DEVICE_ATTR => match attr::decode_its(group, a) {
                Ok(ItsAttr::Regs(offset)) => {
                    model::regs_has(offset).map(|()| 0).map_err(Error::from)
                }
                Ok(_) => Ok(0),
                Err(_) => Err(ENXIO),
            },
            _ => Err(ENOTTY),
        }
    }
}
