// SPDX-License-Identifier: GPL-2.0

//! The nVHE backend: the kernel runs at EL1 and reaches EL2 only through HVC.
//!
//! At load, rkvm installs its own EL2 runtime (`arch/arm64/hyp/nvhe/hyp.S`) on every
//! online CPU, through the kernel's hyp stub (`arch/arm64/kernel/hyp-stub.S`), whose ABI
//! is: function number in x0, arguments in x1.., result in x0, `HVC_STUB_ERR` for an
//! unknown function. `HVC_SOFT_RESTART` branches to a physical address at EL2 with the
//! MMU off and leaves VBAR_EL2 alone, so rkvm's idmapped init code can record the stub's
//! VBAR_EL2 and SCTLR_EL2 before it turns on its own tables and vectors. A CPU hotplug
//! state installs the runtime on CPUs that come online and gives EL2 back to the stub on
//! CPUs going down and at unload. Documentation/nvhe.rst has the layout and the call ABI.
//!
//! The world switch itself is EL2 assembly; this file is its EL1 half: it keeps the
//! loaded vCPU's state in the CPU's [`HypCpu`], the only memory EL2 reads or writes
//! besides its stack, so no hyp call carries a pointer.
//!
//! KVM counterpart: `cpu_init_hyp_mode`/`cpu_hyp_reset` (`arch/arm64/kvm/arm.c`),
//! `hyp/nvhe/switch.c`, `hyp/nvhe/sysreg-sr.c`.

use super::{
    cache,
    context::{Exit, ExitCode, VcpuContext, VgicCpuIf},
    sysreg, LazyState as Lazy,
};
use crate::{
    logic::{
        cpufeature::HVC_STUB_ERR,
        el2abi::{call, feature, El1Block, HypCpu, HYPCPU_MAX_SIZE},
        hyplayout::{self, Prot},
        pgtable::{Geometry, MapError, Stage2},
        regs::{El1Reg, SysReg},
        timer, traps,
    },
    mmu::KernelTables,
    sys::{self, cpu, mm, preempt::NoPreempt},
};
use core::arch::asm;
use kernel::{
    interrupt::LocalInterruptDisabled,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Calls hyp-stub function `func` with argument `arg` and returns the stub's x0.
///
/// # Safety
///
/// The caller runs at EL1 on a CPU that implements EL2 (otherwise HVC is UNDEFINED), and
/// `func`/`arg` must be a request whose effect on EL2 the caller is prepared for.
pub(crate) unsafe fn stub_call(func: u64, arg: u64) -> u64 {
    // SAFETY: by the caller's guarantee.
    unsafe { hvc(func, arg, 0).0 }
}

/// `HVC #0` with x0-x2; returns x0 and x1. Both the stub and rkvm's runtime preserve
/// x18-x30; the C ABI's caller-saved registers are declared clobbered.
///
/// # Safety
///
/// As for [`stub_call`].
unsafe fn hvc(func: u64, a1: u64, a2: u64) -> (u64, u64) {
    let (x0, x1);
    // SAFETY: by the caller's guarantee.
    unsafe {
        asm!("hvc #0", inout("x0") func => x0, inout("x1") a1 => x1, inout("x2") a2 => _,
             clobber_abi("C"), options(nostack))
    };
    (x0, x1)
}

/// The hyp stub's calls used here (`asm/virt.h`).
const HVC_SOFT_RESTART: u64 = 1;
const HVC_RESET_VECTORS: u64 = 2;
const HVC_GET_ICH_VTR_EL2: u64 = 4;

/// Whether this CPU has the GICv3 system-register interface (`ID_AA64PFR0_EL1.GIC`), and
/// with it the ICH_* registers at EL2.
fn cpu_has_gicv3_sysregs() -> bool {
    (sysreg::id_aa64pfr0_el1() >> 24) & 0xf != 0
}

/// ICH_VTR_EL2, read at EL2 by the hyp-stub call `HVC_GET_ICH_VTR_EL2`, which rkvm's
/// runtime answers with the stub's semantics (x0 = 0, x1 = the value); `None` without a
/// GICv3 CPU interface.
pub(crate) fn ich_vtr_el2() -> Option<u64> {
    if !cpu_has_gicv3_sysregs() {
        return None;
    }
    // SAFETY: nVHE host at EL1; both the stub and rkvm's runtime read ICH_VTR_EL2 into x1
    // and change nothing else, and the register exists (checked above).
    let (ret, vtr) = unsafe { hvc(HVC_GET_ICH_VTR_EL2, 0, 0) };
    (ret == 0).then_some(vtr)
}

const PAGE: usize = 4096;
const _: () = assert!(HYPCPU_MAX_SIZE == PAGE);
/// Per CPU: an unmapped guard page, the EL2 stack page, the `HypCpu` page.
const SLOT: usize = 3 * PAGE;
const STACK_OFFSET: usize = PAGE;
const HYPCPU_OFFSET: usize = 2 * PAGE;

extern "C" {
    static __rkvm_hyp_idmap_start: [u8; 0];
    static __rkvm_hyp_init: [u8; 0];
    static __rkvm_hyp_teardown: [u8; 0];
    static __rkvm_hyp_text_start: [u8; 0];
    static __rkvm_hyp_text_end: [u8; 0];
    static __rkvm_hyp_vectors: [u8; 0];
}

/// Installed-runtime facts the hotplug callbacks and the run path need (set before the
/// hotplug state is registered, cleared after it is removed).
static SLOTS: Atomic<usize> = Atomic::new(0);
static TTBR: Atomic<u64> = Atomic::new(0);
static TCR: Atomic<u64> = Atomic::new(0);
static FEATURES: Atomic<u64> = Atomic::new(0);
static IDMAP_PA: Atomic<u64> = Atomic::new(0);
/// A run found the stub instead of the runtime (reported once until the next install).
static GONE_REPORTED: Atomic<bool> = Atomic::new(false);

const ID_AA64MMFR0_EL1: u32 = SysReg::new(3, 0, 0, 7, 0).encoding();
const ID_AA64MMFR3_EL1: u32 = SysReg::new(3, 0, 0, 7, 3).encoding();

/// The kernel address of a symbol.
fn sym(s: &[u8; 0]) -> usize {
    s.as_ptr() as usize
}

/// The EL2 stage-1 tables (one set for all CPUs), built at load and immutable while the
/// runtime is installed. Table pages come from the linear map; EL2 walks them by physical
/// address and never maps them. The walk is stage 2's (`logic::pgtable`), with a 48-bit
/// geometry and EL2 leaf descriptors (`hyplayout::page_desc`).
struct HypTables {
    walk: Stage2,
}

impl HypTables {
    fn new() -> Result<Self> {
        let geometry = Geometry::new(hyplayout::VA_BITS).ok_or(EINVAL)?;
        Ok(Self {
            walk: Stage2::new(geometry, mm::alloc_table_pages(0)?),
        })
    }

    fn root(&self) -> mm::PhysAddr {
        self.walk.root()
    }

    /// Maps the page at `va` (a hyp VA, or a physical address for the idmap) to `pa`.
    /// Mapping a page again the same way is not an error.
    fn map(&mut self, va: u64, pa: u64, prot: Prot) -> Result {
        let leaf = hyplayout::page_desc(pa, prot);
        match self.walk.map_leaf(&mut KernelTables, va, leaf) {
            Ok(()) => Ok(()),
            Err(MapError::Exists(old)) if old.0 == leaf => Ok(()),
            Err(MapError::Exists(_)) => Err(EEXIST),
            Err(MapError::NoMemory) => Err(ENOMEM),
            // Only blocks meet tables; the EL2 tables have pages only.
            Err(MapError::OutOfRange | MapError::Table) => Err(EINVAL),
        }
    }

    /// Maps the kernel (vmalloc or module) page at `kva` at its hyp VA.
    fn map_kernel_page(&mut self, kva: usize, prot: Prot) -> Result {
        let va = hyplayout::hyp_va(kva as u64).ok_or(EINVAL)?;
        let pa = mm::vmalloc_to_phys(kva);
        if pa == 0 {
            return Err(EFAULT);
        }
        self.map(va, pa, prot)
    }
}

impl Drop for HypTables {
    fn drop(&mut self) {
        self.walk.for_each_table(&KernelTables, |table| {
            // SAFETY: the page came from `alloc_table_pages(0)`; the runtime is gone from
            // every CPU, so no EL2 walks the tables, and nothing else refers to them.
            unsafe { mm::free_table_pages(table, 0) }
        });
        // SAFETY: as above, for the root.
        unsafe { mm::free_table_pages(self.walk.root(), 0) };
    }
}

/// The installed runtime: its tables, the per-CPU slots and the hotplug state. Dropping
/// it gives EL2 back to the stub on every CPU, then frees the memory.
pub(crate) struct Runtime {
    tables: Option<HypTables>,
    slots: *mut u8,
    cpu_pm: bool,
    cpuhp: Option<i32>,
}

// SAFETY: the raw pointer is an owned vmalloc allocation; `Runtime` is only created and
// dropped by the module's init and exit.
unsafe impl Send for Runtime {}
// SAFETY: as above; shared references give no access to the pointer.
unsafe impl Sync for Runtime {}

impl Runtime {
    /// Builds the EL2 tables and installs the runtime on every online CPU.
    pub(crate) fn install() -> Result<Self> {
        let ncpus = cpu::nr_cpu_ids() as usize;
        let slots = mm::vzalloc(ncpus * SLOT)?;
        let mut rt = Self {
            tables: None,
            slots,
            cpu_pm: false,
            cpuhp: None,
        };
        let mut tables = HypTables::new()?;

        // The EL2 text, page by page (module memory is not physically contiguous).
        // SAFETY: taking the addresses of the section bounds only.
        let (start, end) = unsafe { (sym(&__rkvm_hyp_text_start), sym(&__rkvm_hyp_text_end)) };
        for kva in (start..end).step_by(PAGE) {
            tables.map_kernel_page(kva, Prot::Text)?;
        }
        // The idmap page, at its physical address.
        // SAFETY: as above.
        let idmap = unsafe { sym(&__rkvm_hyp_idmap_start) };
        let idmap_pa = mm::vmalloc_to_phys(idmap);
        if idmap_pa == 0 || !hyplayout::idmap_ok(idmap_pa) {
            pr_err!("cannot identity-map the EL2 init page at {idmap_pa:#x}\n");
            return Err(EINVAL);
        }
        tables.map(idmap_pa, idmap_pa, Prot::Text)?;
        cache::clean_to_poc(idmap, PAGE);
        // Each CPU's stack and HypCpu; the guard page stays unmapped.
        for c in 0..ncpus {
            let slot = slots as usize + c * SLOT;
            tables.map_kernel_page(slot + STACK_OFFSET, Prot::Data)?;
            tables.map_kernel_page(slot + HYPCPU_OFFSET, Prot::Data)?;
        }
        // SAFETY: a barrier: the table writes are complete before any EL2 walk.
        unsafe { asm!("dsb ish", options(nostack)) };

        SLOTS.store(slots as usize, Relaxed);
        TTBR.store(tables.root(), Relaxed);
        TCR.store(
            hyplayout::tcr(sys::cpu::read_sanitised_id_reg(ID_AA64MMFR0_EL1)),
            Relaxed,
        );
        let mmfr3 = sys::cpu::read_sanitised_id_reg(ID_AA64MMFR3_EL1);
        let caps = crate::logic::fgt::HostCaps::of(&crate::vm::host_id_reg);
        FEATURES.store(
            hyplayout::features(mmfr3, super::host_pfr0(), caps),
            Relaxed,
        );
        IDMAP_PA.store(idmap_pa, Relaxed);
        rt.tables = Some(tables);
        // Before the hotplug state: a CPU that powers down once it has the runtime must
        // find the notifier there (it acts only on CPUs `cpu_online` marked installed).
        cpu::cpu_pm_register(cpu_pm)?;
        rt.cpu_pm = true;
        rt.cpuhp = Some(cpu::cpuhp_setup(cpu_online, cpu_offline)?);
        // `drop` closes it first.
        cpu::el2_test_ready(true);
        Ok(rt)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Once this returns no test-knob write is in progress.
        cpu::el2_test_ready(false);
        if let Some(state) = self.cpuhp.take() {
            // Runs `cpu_offline` on every online CPU: the stub is back everywhere after,
            // and no CPU is marked installed, so CPU_PM leaves EL2 alone.
            cpu::cpuhp_remove(state);
        }
        if self.cpu_pm {
            cpu::cpu_pm_unregister();
        }
        SLOTS.store(0, Relaxed);
        self.tables.take();
        // SAFETY: from `vzalloc`; no CPU runs rkvm's EL2 code any more.
        unsafe { mm::vfree(self.slots) };
    }
}

/// This CPU's `HypCpu`.
///
/// # Safety
///
/// The runtime is installed, and the caller stays on this CPU (preemption or interrupts
/// off, or a callback bound to it) while using the result, with no other reference to it.
#[allow(clippy::mut_from_ref)]
unsafe fn hypcpu(cpu: u32) -> &'static mut HypCpu {
    let p = SLOTS.load(Relaxed) + cpu as usize * SLOT + HYPCPU_OFFSET;
    // SAFETY: by the caller's guarantee the slot is allocated (cpu < nr_cpu_ids) and
    // exclusively used by this CPU's code right now.
    unsafe { &mut *(p as *mut HypCpu) }
}

/// Installs the runtime on `cpu`, which is the CPU this runs on (hotplug callback).
///
/// # Safety
///
/// Called by the CPU-hotplug core, on `cpu` itself.
unsafe extern "C" fn cpu_online(cpu: u32) -> i32 {
    let _irqs = kernel::interrupt::local_interrupt_disable();
    match install_this_cpu(cpu) {
        Ok(()) => {
            // SAFETY: on `cpu`, interrupts off (CPU_PM cannot run here meanwhile).
            unsafe { hypcpu(cpu) }.installed = 1;
            0
        }
        Err(e) => {
            pr_err!("cannot install the EL2 runtime on CPU {cpu}\n");
            e.to_errno()
        }
    }
}

/// Whatever owns EL2 on this CPU gives it back to the stub: rkvm's runtime answers
/// `HVC_RESET_VECTORS` as the stub does (KVM's `cpu_hyp_reset`). Also what a resume from
/// a power-down leaves at EL2: `cpu_resume` installs the stub's vectors, MMU off.
extern "C" fn reset_to_stub() {
    let _irqs = kernel::interrupt::local_interrupt_disable();
    // SAFETY: nVHE host at EL1; both the stub and rkvm's runtime leave the stub's
    // vectors and SCTLR_EL2 in place and return 0. No guest is loaded in EL2 (entries
    // run with interrupts off, inside one hyp call).
    unsafe { stub_call(HVC_RESET_VECTORS, 0) };
}

/// CPU_PM on this CPU, interrupts off (KVM's `hyp_init_cpu_pm_notifier`): before a
/// power-down, EL2 goes back to the stub (what `cpu_resume` restores); after it, or if it
/// failed, the runtime is installed again. CPUs hotplug has not given the runtime (or has
/// taken it away) are left alone.
///
/// # Safety
///
/// Called by the CPU_PM notifier, on the CPU concerned with interrupts off, while the
/// runtime's slots exist (the notifier is registered only then).
unsafe extern "C" fn cpu_pm(enter: bool) {
    let this = cpu::this_cpu();
    // SAFETY: this CPU's slot, interrupts off; the reference ends here.
    if unsafe { hypcpu(this) }.installed == 0 {
        return;
    }
    if enter {
        // SAFETY: a hyp call that gives EL2 back on this CPU.
        unsafe { teardown_this_cpu(this) };
        return;
    }
    reset_to_stub();
    if install_this_cpu(this).is_err() {
        // Entries on this CPU fail (KVM_EXIT_FAIL_ENTRY) until hotplug reinstalls.
        pr_err!("cannot reinstall the EL2 runtime on CPU {this} after CPU_PM\n");
    }
}

/// `el2_test` (rust/params.c), on the writer's CPU: 1 gives EL2 back to the stub behind
/// rkvm's back (a power-down with no CPU_PM notification), 2 runs the CPU through CPU_PM
/// around the same loss of state. A test knob: both are states real hosts reach.
#[no_mangle]
extern "C" fn rkvm_nvhe_el2_test(cmd: i32) -> i32 {
    let _np = NoPreempt::new();
    match cmd {
        1 => {
            reset_to_stub();
            0
        }
        2 => cpu::cpu_pm_cycle(reset_to_stub),
        _ => EINVAL.to_errno(),
    }
}

fn install_this_cpu(cpu: u32) -> Result {
    if cpu != cpu::this_cpu() {
        return Err(EINVAL);
    }
    let slot = SLOTS.load(Relaxed) + cpu as usize * SLOT;
    let hyp = |kva: usize| hyplayout::hyp_va(kva as u64).ok_or(EINVAL);
    // SAFETY: taking symbol addresses only.
    let (idmap, init, teardown, vectors) = unsafe {
        (
            sym(&__rkvm_hyp_idmap_start),
            sym(&__rkvm_hyp_init),
            sym(&__rkvm_hyp_teardown),
            sym(&__rkvm_hyp_vectors),
        )
    };
    let idmap_pa = IDMAP_PA.load(Relaxed);
    // Asked of the stub, before the install: how many LRs the init code must clear.
    let vtr = ich_vtr_el2().map(crate::logic::vgic::lr::Vtr::decode);
    // SAFETY: the callback runs on `cpu`, bound to it; EL2 of this CPU does not run
    // rkvm's code yet, so nothing else uses this HypCpu.
    let hc = unsafe { hypcpu(cpu) };
    hc.features = FEATURES.load(Relaxed);
    hc.gic_nr_lrs = vtr.map_or(0, |v| v.nr_lrs as u64);
    hc.gic_nr_aprs = vtr.map_or(0, |v| v.nr_aprs as u64);
    hc.teardown_pa = idmap_pa + (teardown - idmap) as u64;
    hc.init_mair = hyplayout::MAIR;
    hc.init_tcr = TCR.load(Relaxed);
    hc.init_ttbr = TTBR.load(Relaxed);
    hc.init_sctlr = hyplayout::SCTLR_MMU_ON;
    hc.init_self = hyp(slot + HYPCPU_OFFSET)?;
    hc.init_stack = hyp(slot + HYPCPU_OFFSET)?;
    hc.init_vectors = hyp(vectors)?;
    hc.panic_handler = cpu::nvhe_panic_handler();
    // EL2 reads these with its MMU off, from memory.
    cache::clean_to_poc(slot + HYPCPU_OFFSET, PAGE);
    let hc_pa = mm::vmalloc_to_phys(slot + HYPCPU_OFFSET);
    let init_pa = idmap_pa + (init - idmap) as u64;

    let _irqs = kernel::interrupt::local_interrupt_disable();
    // SAFETY: nVHE host at EL1 with the stub at EL2 on this CPU (the backend survey, or
    // given back to it by hotplug, CPU_PM or a power-down); the
    // stub branches to `__rkvm_hyp_init` at EL2 with x0 = the HypCpu's physical address,
    // which installs rkvm's tables and vectors and returns 0.
    let (ret, _) = unsafe { hvc(HVC_SOFT_RESTART, init_pa, hc_pa) };
    // SAFETY: PROBE has no effect; rkvm's runtime answers it with the magic.
    let (probe, magic) = unsafe { hvc(call::PROBE, 0, 0) };
    if ret != 0 || probe != 0 || magic != call::MAGIC {
        return Err(EIO);
    }
    // A later loss of EL2 is reported again.
    GONE_REPORTED.store(false, Relaxed);
    FLUSH_REPORTED.store(false, Relaxed);
    Ok(())
}

/// Gives EL2 back to the stub on `cpu`, the CPU this runs on (hotplug callback).
///
/// # Safety
///
/// Called by the CPU-hotplug core, on `cpu` itself, after `cpu_online` succeeded there.
unsafe extern "C" fn cpu_offline(cpu: u32) -> i32 {
    let _irqs = kernel::interrupt::local_interrupt_disable();
    // SAFETY: on `cpu`, interrupts off.
    unsafe { hypcpu(cpu) }.installed = 0;
    // SAFETY: as the caller's guarantee says.
    unsafe { teardown_this_cpu(cpu) };
    0
}

/// Gives EL2 back to the stub on `cpu`, the CPU this runs on.
///
/// # Safety
///
/// On `cpu`, with no vCPU in EL2 (none is: a vCPU is put whenever its thread leaves a
/// CPU, and the hotplug and CPU_PM callbacks run on a CPU no vCPU thread is using).
unsafe fn teardown_this_cpu(cpu: u32) {
    // SAFETY: rkvm's runtime restores the stub's vectors and SCTLR_EL2 and returns 0; the
    // stub, if EL2 was already given back to it (a power-down without CPU_PM, kexec),
    // answers HVC_STUB_ERR and changes nothing.
    let ret = unsafe { hvc(call::TEARDOWN, 0, 0).0 };
    if ret != 0 && ret != HVC_STUB_ERR {
        pr_err!("the EL2 runtime did not leave CPU {cpu}\n");
    }
}

/// `vcpu_load`: puts the vCPU's EL1 state, stage 2 and identity in this CPU's `HypCpu`,
/// where every entry loads them from. The host's own EL1 registers stay in the CPU.
///
/// # Safety
///
/// nVHE runtime installed, preemption disabled, no other vCPU loaded on this CPU.
pub(crate) unsafe fn load(l: &mut Lazy) {
    if l.loaded {
        return;
    }
    // SAFETY: by the caller's guarantee this CPU's HypCpu is ours until `put`.
    let hc = unsafe { hypcpu(cpu::this_cpu()) };
    let g = &l.el1;
    hc.guest = g.regs;
    hc.guest_disr = g.disr;
    hc.vttbr = l.vm.vttbr;
    hc.vtcr = l.vm.vtcr;
    hc.cntvoff = l.vm.cntvoff;
    hc.vmpidr = l.mpidr;
    hc.mdcr = traps::guest_mdcr(hc.host_mdcr);
    hc.cnthctl = timer::guest_cnthctl_nvhe(hc.host_cnthctl, l.vm.cntpoff);
    hc.gic_idle_hcr = l.vm.ich_hcr;
    hc.guest_hcrx = l.vm.traps.hcrx;
    hc.guest_fgt = l.vm.traps.fgt;
    if l.ptrauth {
        // SAFETY: the CPUs have pointer authentication (the vCPU could not have it
        // otherwise) and the host's HCR_EL2 has APK (`HCR_HOST_NVHE_FLAGS`); the host
        // kernel at EL1 signs with APIA only, which EL2 switches per entry, and its EL0
        // runs only after `put`.
        l.host_keys = unsafe { sysreg::swap_lazy_keys(&l.el1.keys) };
    }
    l.loaded = true;
}

/// `vcpu_put`: takes the vCPU's EL1 state back from this CPU's `HypCpu`.
///
/// # Safety
///
/// As for [`load`], on the CPU where `l` was loaded.
pub(crate) unsafe fn put(l: &mut Lazy) {
    if !l.loaded {
        return;
    }
    // SAFETY: by the caller's guarantee.
    let hc = unsafe { hypcpu(cpu::this_cpu()) };
    let g = &mut l.el1;
    // ACTLR and MDSCR are emulated: their values live only in `l.el1`.
    let emulated = |r: &El1Block| (r.sys[El1Reg::Actlr as usize], r.sys[El1Reg::Mdscr as usize]);
    let (actlr, mdscr) = emulated(&g.regs);
    g.regs = hc.guest;
    g.regs.sys[El1Reg::Actlr as usize] = actlr;
    g.regs.sys[El1Reg::Mdscr as usize] = mdscr;
    g.disr = hc.guest_disr;
    if l.ptrauth {
        // SAFETY: as in `load`, which put the guest's keys here.
        g.keys = unsafe { sysreg::swap_lazy_keys(&l.host_keys) };
    }
    l.loaded = false;
}

/// Runs `f` on the loaded vCPU's saved EL1 block in this CPU's `HypCpu`.
///
/// # Safety
///
/// This vCPU is loaded on the current CPU, or the caller is in the run loop (where a
/// preemption puts and reloads it, so the CPU's `HypCpu` holds it again afterwards).
unsafe fn with_guest<R>(f: impl FnOnce(&mut El1Block) -> R) -> R {
    let _np = NoPreempt::new();
    // SAFETY: preemption is off and, by the caller's guarantee, this CPU's HypCpu holds
    // the vCPU; nothing else on this CPU uses it meanwhile.
    f(&mut unsafe { hypcpu(cpu::this_cpu()) }.guest)
}

/// Reads a loaded guest EL1 register (the exit handlers' view; as `vhe::el1_read`).
///
/// # Safety
///
/// As for [`with_guest`].
pub(crate) unsafe fn el1_read(reg: El1Reg) -> u64 {
    // SAFETY: by the caller's guarantee.
    unsafe {
        with_guest(|g| match reg {
            El1Reg::Sctlr | El1Reg::Vbar | El1Reg::Esr | El1Reg::Far | El1Reg::Tpidr => {
                g.sys[reg as usize]
            }
            _ => 0,
        })
    }
}

/// The loaded guest's virtual timer: CNTV_CTL_EL0 and CNTV_CVAL_EL0. Between entries the
/// timer is not in the CPU (the host runs with CNTVOFF_EL2 = 0 and the guest's timer
/// stopped), so ISTATUS is computed from CVAL and the guest's virtual count now, as the
/// CPU would: one counter read.
///
/// # Safety
///
/// As for [`with_guest`].
pub(crate) unsafe fn vtimer_regs() -> (u64, u64) {
    let _np = NoPreempt::new();
    // SAFETY: preemption is off and, by the caller's guarantee, this CPU's HypCpu holds
    // the vCPU.
    let hc = unsafe { hypcpu(cpu::this_cpu()) };
    let t = timer::TimerRegs {
        ctl: hc.guest.cntv_ctl,
        cval: hc.guest.cntv_cval,
    };
    let count = sysreg::cntpct_el0().wrapping_sub(hc.cntvoff);
    (t.read_ctl(count), t.cval)
}

/// Writes a loaded guest EL1 register (ESR_EL1 and FAR_EL1, for exception injection).
///
/// # Safety
///
/// As for [`with_guest`].
pub(crate) unsafe fn el1_write(reg: El1Reg, v: u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        with_guest(|g| {
            if matches!(reg, El1Reg::Esr | El1Reg::Far) {
                g.sys[reg as usize] = v;
            }
        })
    }
}

/// The loaded guest's ELR_EL1 and SPSR_EL1.
///
/// # Safety
///
/// As for [`with_guest`].
pub(crate) unsafe fn el1_exception_regs() -> (u64, u64) {
    // SAFETY: by the caller's guarantee.
    unsafe { with_guest(|g| (g.elr_el1, g.spsr_el1)) }
}

/// Sets the loaded guest's ELR_EL1 and SPSR_EL1.
///
/// # Safety
///
/// As for [`with_guest`].
pub(crate) unsafe fn set_el1_exception_regs(elr: u64, spsr: u64) {
    // SAFETY: by the caller's guarantee.
    unsafe {
        with_guest(|g| {
            g.elr_el1 = elr;
            g.spsr_el1 = spsr;
        })
    }
}

/// Runs the loaded guest once (`hyp.S`: `__rkvm_hyp_vcpu_run`), until it takes an
/// exception to EL2. The GPRs, PC and PSTATE go through this CPU's `HypCpu`; so do the
/// per-entry traps (HCR_EL2 with a pending virtual SError, CPTR_EL2 with FP/SIMD trapped
/// until the guest's registers are in the CPU).
///
/// `gic` goes in and comes back whole: ICH_VMCR_EL2 and the APRs every time, the list
/// registers and ICH_HCR_EL2 when `used_lrs` != 0 (read back, then cleared, after the
/// exit), as `vhe::run` and its load/put do. With no list register in use, a VM without a
/// vGIC runs with its `ICC_*` traps in ICH_HCR_EL2 (set on entry, cleared on exit: the
/// host kernel at EL1 must never see them).
pub(crate) fn run(
    ctx: &mut VcpuContext,
    gic: &mut VgicCpuIf,
    fp_owned: bool,
    _irqs: &LocalInterruptDisabled,
) -> Exit {
    // SAFETY: interrupts are masked (`_irqs`), so this code stays on this CPU, where the
    // run loop has the vCPU loaded; nothing else uses the HypCpu meanwhile.
    let hc = unsafe { hypcpu(cpu::this_cpu()) };
    hc.gprs = ctx.gprs;
    hc.pc = ctx.pc;
    hc.pstate = ctx.pstate;
    hc.gic = *gic;
    let mut hcr = traps::guest_hcr_ptrauth(
        traps::guest_hcr(false, hc.features & feature::RAS != 0),
        ctx.ptrauth,
    );
    if ctx.ptrauth {
        hc.guest_apia = ctx.apia;
    }
    if ctx.pending_vserror {
        hcr |= traps::hcr::VSE;
        ctx.pending_vserror = false;
        hc.guest_vsesr = ctx.vsesr;
    }
    hc.hcr = hcr;
    hc.cptr = traps::guest_cptr_nvhe(hc.host_cptr, fp_owned);

    // SAFETY: rkvm's runtime owns EL2 on every online CPU; VCPU_RUN switches to the guest
    // described by this CPU's HypCpu and back, restoring every host register it changes.
    // Should the stub own EL2 instead, it answers HVC_STUB_ERR and changes nothing.
    let (raw, _) = unsafe { hvc(call::VCPU_RUN, 0, 0) };
    let code = ExitCode::decode(raw);
    if let ExitCode::FailEntry(_) = code {
        return failed_entry(ctx, raw, hcr);
    }

    ctx.gprs = hc.gprs;
    ctx.pc = hc.pc;
    ctx.pstate = hc.pstate;
    if ctx.ptrauth {
        ctx.apia = hc.guest_apia;
    }
    *gic = hc.gic;
    if hc.exit_hcr & traps::hcr::VSE != 0 {
        ctx.pending_vserror = true;
    }
    Exit {
        code,
        esr: hc.esr,
        far: hc.far,
        hpfar: hc.hpfar,
        cpu: 0,
    }
}

/// An entry that did not happen: EL2 did not run the guest, so the `HypCpu` holds what
/// EL1 put there, the syndrome is stale and `ctx` and `gic` are still right. Only the
/// virtual SError taken for this entry goes back.
#[cold]
fn failed_entry(ctx: &mut VcpuContext, raw: u64, hcr: u64) -> Exit {
    let this = cpu::this_cpu();
    if hcr & traps::hcr::VSE != 0 {
        ctx.pending_vserror = true;
    }
    if raw == HVC_STUB_ERR {
        // The stub answered: something gave EL2 back to it on this CPU behind rkvm (a
        // power-down without CPU_PM, kexec, hibernation).
        if !GONE_REPORTED.xchg(true, Relaxed) {
            pr_err!("the EL2 runtime is gone from CPU {this}\n");
        }
    } else {
        pr_err!("unexpected world-switch result {raw:#x} on CPU {this}\n");
    }
    Exit {
        code: ExitCode::FailEntry(raw),
        esr: 0,
        far: 0,
        hpfar: 0,
        cpu: this,
    }
}

/// Invalidates every stage-1 and stage-2 TLB entry of the VM whose VTTBR is `vttbr`, on
/// all CPUs (a broadcast TLBI at EL2, `hyp.S`), before the caller frees or reuses what
/// the entries translated to.
///
/// Only rkvm's runtime can issue it. On a CPU that lost the runtime (the stub answers),
/// another online CPU that has it issues it. Should none have it, no guest runs anywhere
/// until a CPU gets the runtime back, and every install invalidates all guest
/// translations of the inner-shareable domain first (`__rkvm_hyp_init`): either way no
/// stale entry is used after this returns.
pub(crate) fn tlb_flush_vmid(vttbr: u64) {
    let _np = NoPreempt::new();
    if flush_vmid_here(vttbr) {
        return;
    }
    let this = cpu::this_cpu();
    let done = Atomic::new(false);
    let flush = || {
        if flush_vmid_here(vttbr) {
            done.store(true, Relaxed);
        }
    };
    let by = (0..cpu::nr_cpu_ids())
        .filter(|&c| c != this && cpu::cpu_online(c))
        .find(|&c| cpu::call_on(c, &flush).is_ok() && done.load(Relaxed));
    if FLUSH_REPORTED.xchg(true, Relaxed) {
        return;
    }
    match by {
        Some(other) => {
            pr_warn!("CPU {this} lost the EL2 runtime: TLB invalidation issued on CPU {other}\n")
        }
        None => pr_warn!("no CPU has the EL2 runtime: TLB invalidation left to its install\n"),
    }
}

/// A TLB invalidation needed another CPU (reported once until the next install).
static FLUSH_REPORTED: Atomic<bool> = Atomic::new(false);

/// Issues `TLB_FLUSH_VMID` on this CPU; false if the stub answered.
fn flush_vmid_here(vttbr: u64) -> bool {
    // SAFETY: rkvm's runtime uses only the VMID of `vttbr` and restores VTTBR_EL2; the
    // stub answers HVC_STUB_ERR and changes nothing.
    unsafe { hvc(call::TLB_FLUSH_VMID, vttbr, 0).0 == 0 }
}
