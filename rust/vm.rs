// SPDX-License-Identifier: GPL-2.0

//! A VM: the object behind a VM file descriptor.
//!
//! KVM counterpart: `struct kvm` and `kvm_vm_ioctl()` in `virt/kvm/kvm_main.c`, with the
//! arm64 parts of `arch/arm64/kvm/arm.c`.
//!
//! Ownership: the VM fd and every vCPU fd hold an `Arc<Vm>`; the VM holds its vCPUs. The
//! VM (its stage-2 tables, pinned pages and VMID) goes away when the last fd closes, and
//! the files pin the module, so `rmmod` waits for that.
//!
//! Lock order: Documentation/design.rst, "Locking" (`VMIDS` and `DEBUGFS` are taken alone).

use crate::{
    hyp::{context::VmRegs, sysreg},
    its::ItsSet,
    logic::{
        caps, dirtylog, fgt,
        fwregs::{Bitmap, FwBitmaps},
        halt_poll, idregs,
        ioctl::{self, VmIoctl},
        irqroute,
        memslot::{Request, MAX_SLOTS},
        pgtable::Geometry,
        ptrauth,
        regs::SysReg,
        smccc_filter,
        stats::{vm_id, NAME_SIZE},
        timer, traps,
        vmid::VmidSet,
    },
    mmu::{GuestMemory, Mmu},
    sys::{self, anon_fd::FdOps, cpu::read_sanitised_id_reg},
    vcpu::{Vcpu, VcpuFile},
    vgic::{self, Vgic},
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

mod coalesced;
mod ioeventfd;
mod irqchip;
mod stats;
pub(crate) use coalesced::InKernel;
use kernel::{
    alloc::KVVec,
    debugfs, new_mutex,
    prelude::*,
    str::CString,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    uaccess::{UserPtr, UserSlice},
};
pub(crate) use stats::vcpu_stats_fd;

/// Most vCPUs per VM, and the bound on vCPU ids (`KVM_CAP_MAX_VCPUS`, `_MAX_VCPU_ID`).
pub(crate) const MAX_VCPUS: u32 = 64;

kernel::sync::global_lock! {
    // SAFETY: initialised in `init()`, called from the module initialiser before any VM.
    unsafe(uninit) static VMIDS: Mutex<VmidSet> = VmidSet::new(8);
}

kernel::sync::global_lock! {
    // SAFETY: initialised in `init()`, as `VMIDS`.
    unsafe(uninit) static DEBUGFS: Mutex<Option<debugfs::Dir>> = None;
}

/// Module-load set-up of VM-wide state.
pub(crate) fn init() {
    // SAFETY: called once, from the module initialiser.
    unsafe {
        VMIDS.init();
        DEBUGFS.init();
    }
    VMIDS
        .lock()
        .set_bits(traps::vmid_bits(read_sanitised_id_reg(ID_AA64MMFR1_EL1)));
    *DEBUGFS.lock() = Some(debugfs::Dir::new(c"rkvm"));
}

/// Module-unload tear-down: removes the debugfs root (every VM is gone by then, since
/// their files pin the module).
pub(crate) fn exit() {
    DEBUGFS.lock().take();
}

/// `sys_reg()` encodings of the ID registers the stage-2 set-up reads.
const ID_AA64MMFR0_EL1: u32 = SysReg::new(3, 0, 0, 7, 0).encoding();
const ID_AA64MMFR1_EL1: u32 = SysReg::new(3, 0, 0, 7, 1).encoding();

/// The largest IPA size rkvm offers on this host.
pub(crate) fn max_ipa_bits() -> u32 {
    traps::parange_bits(read_sanitised_id_reg(ID_AA64MMFR0_EL1))
}

/// The answers to `KVM_CHECK_EXTENSION` on this host.
pub(crate) fn caps_host() -> caps::Host {
    caps::Host {
        runs_guests: true,
        max_ipa_bits: max_ipa_bits(),
        online_cpus: sys::cpu::num_online_cpus(),
        max_vcpus: MAX_VCPUS,
        max_memslots: MAX_SLOTS as u32,
        vgic: vgic::supported(),
        steal_time: sys::task::sched_info_on(),
        msi_devid: false,
        ras: crate::hyp::has_ras(),
        ptrauth: host_has_ptrauth(),
    }
}

/// Whether vCPUs may have pointer authentication (`logic::ptrauth`).
pub(crate) fn host_has_ptrauth() -> bool {
    ptrauth::host_has_full_ptrauth(
        host_id_reg(idregs::ID_AA64ISAR1_EL1),
        host_id_reg(idregs::ID_AA64ISAR2_EL1),
    )
}

/// The guest's view of the ID registers (`logic::idregs`), computed once per VM, and
/// the pointer-authentication fields a VM whose vCPUs have it adds (zero where the host
/// cannot offer it).
pub(crate) struct IdRegs {
    regs: [u64; 56],
    ptrauth: [u64; 56],
}

/// ID registers the kernel tracks (CRm, op2); the others in the space read as zero.
const KNOWN_ID_REGS: &[(u8, u8)] = &[
    (1, 0),
    (1, 1),
    (1, 2),
    (1, 4),
    (1, 5),
    (1, 6),
    (1, 7),
    (2, 0),
    (2, 1),
    (2, 2),
    (2, 3),
    (2, 4),
    (2, 5),
    (2, 6),
    (2, 7),
    (3, 0),
    (3, 1),
    (3, 2),
    (3, 4),
    (3, 5),
    (3, 6),
    (4, 0),
    (4, 1),
    (4, 2),
    (4, 4),
    (4, 5),
    (4, 7),
    (5, 0),
    (5, 1),
    (6, 0),
    (6, 1),
    (6, 2),
    (6, 3),
    (7, 0),
    (7, 1),
    (7, 2),
    (7, 3),
    (7, 4),
];

impl IdRegs {
    fn new() -> Self {
        let mut regs = [0; 56];
        let mut pauth = [0; 56];
        let offered = host_has_ptrauth();
        for &(crm, op2) in KNOWN_ID_REGS {
            let host = host_id_reg((crm, op2));
            regs[Self::index(crm, op2)] = idregs::guest_view(crm, op2, host);
            if offered {
                pauth[Self::index(crm, op2)] = ptrauth::id_fields(crm, op2, host);
            }
        }
        Self {
            regs,
            ptrauth: pauth,
        }
    }

    fn index(crm: u8, op2: u8) -> usize {
        (usize::from(crm.clamp(1, 7)) - 1) * 8 + usize::from(op2 & 7)
    }

    /// The value of ID register (3, 0, 0, `crm`, `op2`), `crm` in 1..=7, for a vCPU
    /// without pointer authentication.
    pub(crate) fn get(&self, crm: u8, op2: u8) -> u64 {
        self.regs[Self::index(crm, op2)]
    }

    /// The same for a vCPU with (`ptrauth`) or without pointer authentication.
    pub(crate) fn get_for(&self, crm: u8, op2: u8, ptrauth: bool) -> u64 {
        let i = Self::index(crm, op2);
        if ptrauth {
            self.regs[i] | self.ptrauth[i]
        } else {
            self.regs[i]
        }
    }
}

/// The host's sanitised feature ID register (3, 0, 0, `crm`, `op2`).
pub(crate) fn host_id_reg((crm, op2): (u8, u8)) -> u64 {
    read_sanitised_id_reg(SysReg::new(3, 0, 0, crm, op2).encoding())
}

/// A VMID owned by one VM; released after the VM's tables and TLB entries are gone.
struct Vmid(u16);

impl Drop for Vmid {
    fn drop(&mut self) {
        VMIDS.lock().free(self.0);
    }
}

/// A VM.
#[pin_data]
pub(crate) struct Vm {
    /// GSI routing and irqfds. First, so it is dropped first: its drop shuts the irqfds
    /// down, and they point at the VM (the vGIC and ITS they inject into included).
    #[pin]
    pub(crate) irq: irqchip::IrqRouting,
    /// The creating process's `mm`: only it may use the VM's fds (KVM's `kvm->mm` check).
    mm: usize,
    /// The VM's IPA space: `1 << ipa_bits` bytes.
    ipa_limit: u64,
    vttbr: u64,
    vtcr: u64,
    /// CNTVOFF_EL2: the guest's virtual counter is the physical one minus this.
    cntvoff: Atomic<u64>,
    /// The physical timer's offset: the guest's physical counter is the host's minus this
    /// (0 unless userspace set `CNTPCT_EL0` through ONE_REG).
    cntpoff: Atomic<u64>,
    /// CNTFRQ_EL0: counter ticks per second, to convert timer deadlines for hrtimers.
    pub(crate) cntfrq: u64,
    /// The timers' PPIs (`KVM_ARM_VCPU_TIMER_IRQ_*` order), VM-wide as on KVM.
    timer_ppis: [Atomic<u32>; 4],
    pub(crate) id_regs: IdRegs,
    /// HCRX_EL2 and the fine-grained traps for this VM's ID registers (the view before
    /// the GIC fields may go: a VM without a vGIC has its ICC_* registers trapped
    /// through ICH_HCR_EL2 anyway).
    guest_traps: fgt::GuestTraps,
    /// Serialises memslot changes and the dirty-log ioctls (KVM's `slots_lock`), which
    /// copy bitmaps to and from userspace between two sections under `mmu`.
    #[pin]
    slots_lock: Mutex<()>,
    /// Memslots and stage 2, kept coherent with the VMM's address space. Dropped before
    /// `vmid` (field order), which must outlive it.
    #[pin]
    pub(crate) mmu: GuestMemory,
    _vmid: Vmid,
    #[pin]
    pub(crate) vcpus: Mutex<KVec<Arc<Vcpu>>>,
    /// `rkvm/<pid>-<vmid>` in debugfs: the vCPUs' counters.
    debug_dir: debugfs::Dir,
    /// `KVM_ARM_VCPU_INIT` features shared by every vCPU (without `POWER_OFF`), fixed by
    /// the first init.
    #[pin]
    pub(crate) vcpu_features: Mutex<Option<u32>>,
    /// Those features include pointer authentication: the ID registers show it. Set
    /// once, under `vcpu_features`, by the first init that fixes them.
    pub(crate) ptrauth: AtomicBool,
    /// A vCPU has entered `KVM_RUN`; the VM's configuration is final.
    ran: AtomicBool,
    /// The firmware feature bitmaps (`logic::fwregs::FwBitmaps`), which the first
    /// `KVM_RUN` freezes: one word, read by every gated hypercall without a lock. Its
    /// updates are read-modify-writes of that word alone, so they need no ordering with
    /// other memory (`Relaxed`).
    fw_bitmaps: AtomicU64,
    /// `KVM_REG_ARM_PSCI_VERSION` as userspace set it, VM-wide as on KVM; 0 until then
    /// (`psci::version`).
    psci_version: Atomic<u64>,
    /// `KVM_CAP_ARM_SYSTEM_SUSPEND` is enabled.
    system_suspend: AtomicBool,
    /// The SMCCC filter (`KVM_ARM_VM_SMCCC_FILTER`), set before the first run; allocated
    /// by the first range (most VMs have none).
    #[pin]
    smccc_filter: Mutex<Option<KBox<smccc_filter::Filter>>>,
    /// Whether the filter has a range: every other VM's SMCCC calls skip its lock.
    smccc_filtered: AtomicBool,
    /// `KVM_CAP_HALT_POLL`: whether userspace set the VM's maximum poll time, and the
    /// value, in one word (`logic::halt_poll::vm_override`), so no ordering is needed.
    halt_poll: AtomicU64,
    /// `KVM_IOEVENTFD` registrations.
    #[pin]
    ioeventfds: Mutex<KVec<ioeventfd::Registration>>,
    /// Whether any MMIO registration exists (skips the lock on every other MMIO write).
    has_ioeventfds: AtomicBool,
    /// Coalesced-MMIO zones and their ring page.
    #[pin]
    coalesced: Mutex<coalesced::Coalesced>,
    /// Whether an MMIO zone exists (skips the lock on every other MMIO write).
    has_coalesced: AtomicBool,
    /// The stats file's id: `kvm-<pid>`.
    stats_id: [u8; NAME_SIZE],
    /// The in-kernel vGICv3 (inert until `KVM_CREATE_DEVICE`; see [`Vm::vgic`]).
    #[pin]
    pub(crate) vgic: Vgic,
    /// The GICv3 ITSes (`KVM_DEV_TYPE_ARM_VGIC_ITS`).
    #[pin]
    pub(crate) its: ItsSet,
}

impl Vm {
    /// `KVM_CREATE_VM`: a new VM of `vm_type`, returned as a new fd.
    pub(crate) fn create(vm_type: usize) -> Result<isize> {
        let ipa_bits = ioctl::vm_type_ipa_bits(vm_type as u64, max_ipa_bits()).ok_or(EINVAL)?;
        let geometry = Geometry::new(ipa_bits).ok_or(EINVAL)?;
        let vmid = Vmid(VMIDS.lock().alloc().ok_or(ENOSPC)?);
        let name = CString::try_from_fmt(fmt!("{}-{}", sys::mm::current_tgid(), vmid.0))?;
        let debug_dir = match &*DEBUGFS.lock() {
            Some(root) => root.subdir(&name),
            None => return Err(ENODEV),
        };
        let mmu = Mmu::new(geometry, vmid.0)?;
        let vttbr = mmu.vttbr();
        let vtcr = traps::vtcr(
            geometry.vtcr_bits(),
            read_sanitised_id_reg(ID_AA64MMFR0_EL1),
            read_sanitised_id_reg(ID_AA64MMFR1_EL1),
        );
        let id_regs = IdRegs::new();
        // The view with pointer authentication: a vCPU without it traps its key accesses
        // through HCR_EL2.APK, whatever the fine-grained traps say.
        let guest_traps =
            fgt::GuestTraps::compute(&host_id_reg, &|(crm, op2)| id_regs.get_for(crm, op2, true));
        let vm = Arc::pin_init(
            try_pin_init!(Self {
                irq <- irqchip::IrqRouting::new(),
                mm: sys::mm::current_mm(),
                ipa_limit: geometry.ipa_limit(),
                vttbr,
                vtcr,
                // The guest's virtual counter starts near zero, as on KVM.
                cntvoff: Atomic::new(sysreg::cntpct_el0()),
                cntpoff: Atomic::new(0),
                cntfrq: sysreg::cntfrq_el0(),
                timer_ppis: timer::DEFAULT_PPIS.map(Atomic::new),
                id_regs,
                guest_traps,
                slots_lock <- new_mutex!((), "Vm::slots_lock"),
                mmu <- GuestMemory::new(mmu),
                _vmid: vmid,
                vcpus <- new_mutex!(KVec::new(), "Vm::vcpus"),
                debug_dir,
                vcpu_features <- new_mutex!(None, "Vm::vcpu_features"),
                ptrauth: AtomicBool::new(false),
                ran: AtomicBool::new(false),
                fw_bitmaps: AtomicU64::new(FwBitmaps::new().0),
                psci_version: Atomic::new(0),
                system_suspend: AtomicBool::new(false),
                smccc_filter <- new_mutex!(None, "Vm::smccc_filter"),
                smccc_filtered: AtomicBool::new(false),
                halt_poll: AtomicU64::new(halt_poll::VM_OVERRIDE_UNSET),
                ioeventfds <- new_mutex!(KVec::new(), "Vm::ioeventfds"),
                has_ioeventfds: AtomicBool::new(false),
                coalesced <- new_mutex!(coalesced::Coalesced::new()?, "Vm::coalesced"),
                has_coalesced: AtomicBool::new(false),
                stats_id: vm_id(sys::mm::current_pid()),
                vgic <- Vgic::new(),
                its <- ItsSet::new(),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        vm.mmu.register()?;
        Ok(sys::anon_fd::install(c"kvm-vm", vm)? as isize)
    }

    /// The VM's vGICv3, once `KVM_CREATE_DEVICE` created it (`None` before). Injection
    /// works from `CTRL_INIT` on ([`Vgic::initialized`]); guest MMIO and SGIs from the
    /// first `KVM_RUN` ([`Vgic::ready`]).
    pub(crate) fn vgic(&self) -> Option<&Vgic> {
        self.vgic.created().then_some(&self.vgic)
    }

    /// Stage-2, timer and GIC-trap registers for each entry.
    pub(crate) fn regs(&self) -> VmRegs {
        VmRegs {
            vttbr: self.vttbr,
            vtcr: self.vtcr,
            cntvoff: self.cntvoff(),
            cntpoff: self.cntpoff(),
            ich_hcr: crate::logic::vgic::lr::idle_hcr(self.vgic().is_some()),
            traps: self.guest_traps,
        }
    }

    /// The size of the VM's IPA space in bytes.
    pub(crate) fn ipa_limit(&self) -> u64 {
        self.ipa_limit
    }

    /// Whether a vCPU of the VM has run.
    pub(crate) fn has_run(&self) -> bool {
        self.ran.load(core::sync::atomic::Ordering::Relaxed)
    }

    /// Records that a vCPU runs, which freezes the firmware bitmaps.
    pub(crate) fn mark_run(&self) {
        self.ran.store(true, core::sync::atomic::Ordering::Relaxed);
        let fw = self.fw_bitmaps();
        if fw.frozen() != fw {
            // A racing `set_fw_bitmap` either lands before this or sees the VM frozen.
            let _ = self
                .fw_bitmaps
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(FwBitmaps(v).frozen().0)
                });
        }
    }

    /// The firmware feature bitmaps, which gate the guest's hypercall services.
    pub(crate) fn fw_bitmaps(&self) -> FwBitmaps {
        FwBitmaps(self.fw_bitmaps.load(Ordering::Relaxed))
    }

    /// `KVM_SET_DEVICE_ATTR` on the VM: the SMCCC filter is its one attribute (KVM's
    /// `kvm_vm_set_attr`). A range is checked before the VM is: `EINVAL`, then `EBUSY`
    /// once a vCPU has run, then `EEXIST` for an overlap (`ENOMEM`: the filter is full).
    fn set_attr(&self, arg: usize) -> Result<isize> {
        let (group, attr, addr) = vgic::read_device_attr(arg)?;
        smccc_attr(group, attr)?;
        const SIZE: usize = core::mem::size_of::<sys::kvm_smccc_filter>();
        let f: sys::kvm_smccc_filter = UserSlice::new(UserPtr::from_addr(addr), SIZE)
            .reader()
            .read()?;
        let range = smccc_filter::Request {
            base: f.base,
            nr_functions: f.nr_functions,
            action: f.action,
            pad_zero: f.pad.iter().all(|&b| b == 0),
        }
        .validate()?;
        let mut filter = self.smccc_filter.lock();
        if self.has_run() {
            return Err(EBUSY);
        }
        let filter = match &mut *filter {
            Some(f) => f,
            none => none.insert(KBox::new(smccc_filter::Filter::new(), GFP_KERNEL_ACCOUNT)?),
        };
        filter.insert(range)?;
        self.smccc_filtered.store(true, Ordering::Release);
        Ok(0)
    }

    /// Whether the VM has an SMCCC filter: one load on every SMCCC call.
    #[inline]
    pub(crate) fn smccc_filtered(&self) -> bool {
        self.smccc_filtered.load(Ordering::Acquire)
    }

    /// What the SMCCC filter does with function `func`.
    pub(crate) fn smccc_action(&self, func: u32) -> smccc_filter::Action {
        match &*self.smccc_filter.lock() {
            Some(f) => f.action(func),
            None => smccc_filter::Action::Handle,
        }
    }

    /// `KVM_SET_ONE_REG` of a firmware bitmap: `EINVAL` for a bit of a service rkvm
    /// lacks, `EBUSY` for a change once a vCPU has run.
    pub(crate) fn set_fw_bitmap(&self, reg: Bitmap, val: u64) -> Result {
        let mut refused = None;
        let _ = self
            .fw_bitmaps
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                match FwBitmaps(v).set(reg, val) {
                    Ok(new) => Some(new.0),
                    Err(e) => {
                        refused = Some(e);
                        None
                    }
                }
            });
        refused.map_or(Ok(()), |e| Err(e.into()))
    }

    /// The guest's ID register (3, 0, 0, `crm`, `op2`): without an in-kernel vGIC, once a
    /// vCPU has run, the GIC fields read as zero (`idregs::without_irqchip`).
    pub(crate) fn id_reg(&self, crm: u8, op2: u8) -> u64 {
        let value = self
            .id_regs
            .get_for(crm, op2, self.ptrauth.load(Ordering::Relaxed));
        if self.has_run() && self.vgic().is_none() {
            idregs::without_irqchip(crm, op2, value)
        } else {
            value
        }
    }

    /// Whether the guest may run AArch32 code at EL0 (`ID_AA64PFR0_EL1.EL0` = 2).
    pub(crate) fn aarch32_el0(&self) -> bool {
        self.id_regs.get(4, 0) & 0xf == 2
    }

    /// The VM's PSCI version setting (0: not set, the latest).
    pub(crate) fn psci_version(&self) -> u64 {
        self.psci_version.load(Relaxed)
    }

    /// Sets the VM's PSCI version (`KVM_SET_ONE_REG` of `KVM_REG_ARM_PSCI_VERSION`).
    pub(crate) fn set_psci_version(&self, v: u64) {
        self.psci_version.store(v, Relaxed);
    }

    /// The VM's `KVM_CAP_HALT_POLL` word (`logic::halt_poll::max_poll_ns` reads it).
    pub(crate) fn halt_poll(&self) -> u64 {
        self.halt_poll.load(Ordering::Relaxed)
    }

    /// Whether PSCI `SYSTEM_SUSPEND` exits to userspace (`KVM_CAP_ARM_SYSTEM_SUSPEND`).
    pub(crate) fn system_suspend(&self) -> bool {
        self.system_suspend
            .load(core::sync::atomic::Ordering::Relaxed)
    }

    /// `KVM_ENABLE_CAP`: `arg` points at `struct kvm_enable_cap` (`size` bytes).
    fn enable_cap(&self, arg: usize, size: usize) -> Result<isize> {
        // Read whole (args and padding too), as KVM copies it.
        let c: sys::kvm_enable_cap = UserSlice::new(UserPtr::from_addr(arg), size)
            .reader()
            .read()?;
        let (cap, flags) = (c.cap, c.flags);
        match caps::enable_vm_cap(cap, flags, c.args[0]).ok_or(EINVAL)? {
            caps::VmCap::SystemSuspend => self
                .system_suspend
                .store(true, core::sync::atomic::Ordering::Relaxed),
            caps::VmCap::HaltPoll(ns) => self
                .halt_poll
                .store(halt_poll::vm_override(ns), Ordering::Relaxed),
            caps::VmCap::ManualDirtyLog(mode) => {
                let _slots = self.slots_lock.lock();
                self.mmu.set_dirty_mode(mode)
            }
        }
        Ok(0)
    }

    /// The virtual counter offset.
    pub(crate) fn cntvoff(&self) -> u64 {
        self.cntvoff.load(Relaxed)
    }

    /// Sets the virtual counter offset (`KVM_REG_ARM_TIMER_CNT`).
    pub(crate) fn set_cntvoff(&self, offset: u64) {
        self.cntvoff.store(offset, Relaxed);
    }

    /// The PPI of timer `idx` (`KVM_ARM_VCPU_TIMER_IRQ_*` order).
    pub(crate) fn timer_ppi(&self, idx: usize) -> u32 {
        self.timer_ppis[idx].load(Relaxed)
    }

    /// Sets the PPI of timer `idx` (only before the first `KVM_RUN`).
    pub(crate) fn set_timer_ppi(&self, idx: usize, ppi: u32) {
        self.timer_ppis[idx].store(ppi, Relaxed);
    }

    /// The physical timer's counter offset.
    pub(crate) fn cntpoff(&self) -> u64 {
        self.cntpoff.load(Relaxed)
    }

    /// Sets the physical timer's counter offset (ONE_REG `CNTPCT_EL0`).
    pub(crate) fn set_cntpoff(&self, offset: u64) {
        self.cntpoff.store(offset, Relaxed);
    }

    /// Whether the calling process may use this VM.
    pub(crate) fn owned_by_current(&self) -> bool {
        self.mm == sys::mm::current_mm()
    }

    /// Runs `f` with every vCPU's `inner` held, so none is in an ioctl (`KVM_RUN`
    /// included): KVM's `kvm_trylock_all_vcpus`, `EBUSY` if one is.
    pub(crate) fn with_vcpus_stopped<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let all = self.vcpus.lock();
        let mut held = KVec::with_capacity(all.len(), GFP_KERNEL)?;
        for v in all.iter() {
            let Some(g) = v.inner.try_lock() else {
                return Err(EBUSY);
            };
            held.push(g, GFP_KERNEL)?;
        }
        f()
    }

    /// `KVM_SET_USER_MEMORY_REGION{,2}`.
    fn set_memory_region(&self, req: Request) -> Result<isize> {
        let _slots = self.slots_lock.lock();
        self.mmu.set_region(&req)?;
        Ok(0)
    }

    /// `KVM_GET_DIRTY_LOG` (`kvm_vm_ioctl_get_dirty_log`): the slot's bitmap is taken (or,
    /// with manual protection, read) under `mmu` into a buffer, and copied to userspace
    /// after `mmu` is released.
    fn get_dirty_log(&self, log: &sys::kvm_dirty_log) -> Result<isize> {
        let id = dirtylog::slot_id(log.slot)?;
        let _slots = self.slots_lock.lock();
        let bytes = self.mmu.lock().dirty_log_bytes(id)?;
        let mut buf = KVVec::from_elem(0u8, bytes, GFP_KERNEL_ACCOUNT)?;
        self.mmu.lock().get_dirty_log(id, &mut buf)?;
        UserSlice::new(UserPtr::from_addr(log.bitmap_addr() as usize), bytes)
            .writer()
            .write_slice(&buf)?;
        Ok(0)
    }

    /// `KVM_CLEAR_DIRTY_LOG` (`kvm_vm_ioctl_clear_dirty_log`), in KVM's order of checks:
    /// the slot number, `first_page`'s alignment, the slot (`ENOENT`), the range, then
    /// userspace's bitmap (read before `mmu` is taken).
    fn clear_dirty_log(&self, log: &sys::kvm_clear_dirty_log) -> Result<isize> {
        let id = dirtylog::slot_id(log.slot)?;
        dirtylog::check_clear_start(log.first_page)?;
        let _slots = self.slots_lock.lock();
        let range = self
            .mmu
            .lock()
            .clear_range(id, log.first_page, log.num_pages)?;
        let mut user = KVVec::from_elem(0u8, range.user_bytes(), GFP_KERNEL_ACCOUNT)?;
        UserSlice::new(
            UserPtr::from_addr(log.bitmap_addr() as usize),
            range.user_bytes(),
        )
        .reader()
        .read_slice(&mut user)?;
        self.mmu.lock().clear_dirty_log(id, range, &user)?;
        Ok(0)
    }

    /// `KVM_CREATE_VCPU`.
    fn create_vcpu(self: ArcBorrow<'_, Self>, id: usize) -> Result<isize> {
        let id = u32::try_from(id).map_err(|_| EINVAL)?;
        if id >= MAX_VCPUS {
            return Err(EINVAL);
        }
        let vcpu = {
            // Checked and created under the lock, so a refused duplicate never creates
            // anything (its debugfs directory would collide with the live vCPU's).
            let mut vcpus = self.vcpus.lock();
            if vcpus.len() >= MAX_VCPUS as usize {
                return Err(EINVAL);
            }
            // No vCPU after the vGIC's CTRL_INIT (KVM's `kvm_arch_vcpu_precreate`); the
            // flag is set under this lock.
            if self.vgic.initialized() {
                return Err(EBUSY);
            }
            if vcpus.iter().any(|v| v.id == id) {
                return Err(EEXIST);
            }
            let vcpu = Vcpu::new(id, vcpus.len(), &self.debug_dir)?;
            vcpus.push(vcpu.clone(), GFP_KERNEL_ACCOUNT)?;
            vcpu
        };
        let fd = Arc::new(
            VcpuFile {
                vm: self.into(),
                vcpu: vcpu.clone(),
            },
            GFP_KERNEL_ACCOUNT,
        )
        .map_err(Error::from)
        .and_then(|file| sys::anon_fd::install(c"kvm-vcpu", file));
        match fd {
            Ok(fd) => Ok(fd as isize),
            Err(e) => {
                // Undo, as KVM does when the fd cannot be created.
                self.vcpus.lock().retain(|v| !Arc::ptr_eq(v, &vcpu));
                Err(e)
            }
        }
    }

    /// The vCPU with MPIDR affinity `mpidr` (PSCI targets), if any.
    pub(crate) fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<Arc<Vcpu>> {
        let mask = crate::logic::psci::MPIDR_AFFINITY_MASK;
        self.vcpus
            .lock()
            .iter()
            .find(|v| v.mpidr & mask == mpidr & mask)
            .cloned()
    }
}

/// The memslot request in either `kvm_userspace_memory_region` or its `...2` extension
/// (whose guest_memfd fields rkvm does not use: the flag that enables them is refused).
macro_rules! memslot_request {
    ($r:expr) => {
        Request {
            slot: $r.slot,
            flags: $r.flags,
            guest_phys_addr: $r.guest_phys_addr,
            memory_size: $r.memory_size,
            userspace_addr: $r.userspace_addr,
        }
    };
}

/// The VM's attribute groups: `KVM_ARM_VM_SMCCC_CTRL` with `KVM_ARM_VM_SMCCC_FILTER`;
/// anything else is `ENXIO`.
fn smccc_attr(group: u32, attr: u64) -> Result {
    if group == sys::uapi::KVM_ARM_VM_SMCCC_CTRL
        && attr == u64::from(sys::uapi::KVM_ARM_VM_SMCCC_FILTER)
    {
        Ok(())
    } else {
        Err(ENXIO)
    }
}

impl FdOps for Vm {
    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<isize> {
        if !this.owned_by_current() {
            return Err(EIO);
        }
        let user = |size| UserSlice::new(UserPtr::from_addr(arg), size);
        match VmIoctl::decode(cmd).ok_or(EINVAL)? {
            VmIoctl::CheckExtension => {
                let host = caps::Host {
                    msi_devid: this.its.any(),
                    ..caps_host()
                };
                Ok(caps::check_extension(arg as u64, &host) as isize)
            }
            VmIoctl::CreateVcpu => this.create_vcpu(arg),
            VmIoctl::SetUserMemoryRegion => {
                let r: sys::kvm_userspace_memory_region =
                    user(ioctl::ioc_size(cmd)).reader().read()?;
                this.set_memory_region(memslot_request!(r))
            }
            VmIoctl::SetUserMemoryRegion2 => {
                let r: sys::kvm_userspace_memory_region2 =
                    user(ioctl::ioc_size(cmd)).reader().read()?;
                this.set_memory_region(memslot_request!(r))
            }
            // The vGICv3 is the only device type; others are ENODEV, as KVM for a type it
            // has no ops for.
            VmIoctl::CreateDevice => vgic::create_device(this, arg, ioctl::ioc_size(cmd)),
            VmIoctl::IrqLine | VmIoctl::IrqLineStatus => {
                let line: sys::kvm_irq_level = user(ioctl::ioc_size(cmd)).reader().read()?;
                // Without an in-kernel irqchip, KVM drives the vCPU's IRQ/FIQ inputs
                // (a userspace GIC); rkvm does not offer that (no KVM_CAP_ARM_USER_IRQ).
                let Some(vgic) = this.vgic() else {
                    return Err(ENXIO);
                };
                vgic.irq_line(line.irq(), line.level != 0)?;
                if matches!(VmIoctl::decode(cmd), Some(VmIoctl::IrqLineStatus)) {
                    // arm64 KVM leaves `status` as given.
                    user(ioctl::ioc_size(cmd)).writer().write(&line)?;
                }
                Ok(0)
            }
            VmIoctl::IoEventFd => {
                let args: sys::kvm_ioeventfd = user(ioctl::ioc_size(cmd)).reader().read()?;
                this.ioeventfd(&args)
            }
            VmIoctl::Irqfd => {
                let args: sys::kvm_irqfd = user(ioctl::ioc_size(cmd)).reader().read()?;
                this.irq.irqfd(&this, &args)?;
                Ok(0)
            }
            VmIoctl::SetGsiRouting => {
                // struct kvm_irq_routing: nr, flags, then nr entries.
                const HDR: usize = core::mem::size_of::<sys::kvm_irq_routing>();
                const ENTRY: usize = core::mem::size_of::<sys::kvm_irq_routing_entry>();
                let hdr: sys::kvm_irq_routing = user(HDR).reader().read()?;
                irqroute::check_header(hdr.nr, hdr.flags)?;
                let nr = hdr.nr as usize;
                let mut entries = KVVec::with_capacity(nr, GFP_KERNEL_ACCOUNT)?;
                let mut reader = UserSlice::new(UserPtr::from_addr(arg + HDR), nr * ENTRY).reader();
                for _ in 0..nr {
                    let e: sys::kvm_irq_routing_entry = reader.read()?;
                    entries.push(e.words(), GFP_KERNEL_ACCOUNT)?;
                }
                this.irq.set_gsi_routing(&this, &entries)?;
                Ok(0)
            }
            VmIoctl::SignalMsi => {
                let m: sys::kvm_msi = user(ioctl::ioc_size(cmd)).reader().read()?;
                let msi = irqroute::Msi::from_kvm_msi([
                    m.address_lo,
                    m.address_hi,
                    m.data,
                    m.flags,
                    m.devid,
                ])?;
                this.signal_msi(&msi)
            }
            VmIoctl::RegisterCoalescedMmio => {
                this.register_coalesced(coalesced::read_zone(user(ioctl::ioc_size(cmd)))?)
            }
            VmIoctl::UnregisterCoalescedMmio => {
                this.unregister_coalesced(coalesced::read_zone(user(ioctl::ioc_size(cmd)))?)
            }
            VmIoctl::SetDeviceAttr => this.set_attr(arg),
            VmIoctl::HasDeviceAttr => {
                let (group, attr, _) = vgic::read_device_attr(arg)?;
                smccc_attr(group, attr).map(|()| 0)
            }
            VmIoctl::GetStatsFd => this.stats_fd(),
            VmIoctl::EnableCap => this.enable_cap(arg, ioctl::ioc_size(cmd)),
            VmIoctl::GetDirtyLog => {
                let log: sys::kvm_dirty_log = user(ioctl::ioc_size(cmd)).reader().read()?;
                this.get_dirty_log(&log)
            }
            VmIoctl::ClearDirtyLog => {
                let log: sys::kvm_clear_dirty_log = user(ioctl::ioc_size(cmd)).reader().read()?;
                this.clear_dirty_log(&log)
            }
            VmIoctl::ArmPreferredTarget => {
                let init = sys::kvm_vcpu_init {
                    target: sys::uapi::KVM_ARM_TARGET_GENERIC_V8,
                    ..Default::default()
                };
                user(ioctl::ioc_size(cmd)).writer().write(&init)?;
                Ok(0)
            }
        }
    }
}

const _: () = assert!(core::mem::size_of::<sys::kvm_userspace_memory_region>() == 32);
const _: () = assert!(core::mem::size_of::<sys::kvm_userspace_memory_region2>() == 160);
const _: () = assert!(core::mem::size_of::<sys::kvm_vcpu_init>() == 32);
const _: () = assert!(core::mem::size_of::<sys::kvm_ioeventfd>() == 64);
const _: () = assert!(core::mem::size_of::<sys::kvm_enable_cap>() == 104);
const _: () = assert!(core::mem::size_of::<sys::kvm_dirty_log>() == 16);
const _: () = assert!(core::mem::size_of::<sys::kvm_clear_dirty_log>() == 24);
const _: () = assert!(core::mem::size_of::<sys::kvm_irq_level>() == 8);
const _: () = assert!(core::mem::size_of::<sys::kvm_irqfd>() == 32);
const _: () = assert!(core::mem::size_of::<sys::kvm_msi>() == 32);
const _: () = assert!(core::mem::size_of::<sys::kvm_smccc_filter>() == 24);
const _: () = assert!(core::mem::size_of::<sys::kvm_irq_routing>() == 8);
const _: () = assert!(core::mem::size_of::<sys::kvm_irq_routing_entry>() == 48);
const _: () =
    assert!(core::mem::size_of::<sys::kvm_irq_routing_entry>() == irqroute::ENTRY_WORDS * 4);
