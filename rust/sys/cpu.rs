// SPDX-License-Identifier: GPL-2.0

//! Running a closure on every online CPU (`on_each_cpu`), CPU hotplug states, the
//! sanitised ID registers.
//!
//! `nr_cpu_ids` and the current CPU's id are the kernel crate's (`kernel::cpu`), named
//! here for the backends. The kernel crate (7.3) has no `on_each_cpu`, no
//! `num_online_cpus` and no CPU-hotplug states (`cpuhp_setup_state`); the wrappers below
//! are generic (a closure for every CPU, two callbacks for a dynamic state) and carry
//! their safety argument, as a `kernel::cpu` addition would. `read_sanitised_ftr_reg` is
//! arm64's own and stays here.

use super::bindings;
use core::ffi::c_void;

/// Runs `f` on each online CPU, in IPI context with interrupts off, and waits for all of
/// them to finish. `f` must not sleep.
pub(crate) fn on_each_cpu<F: Fn() + Sync>(f: &F) {
    /// # Safety
    ///
    /// `info` is the `&F` given to `rkvm_on_each_cpu` below, during that call.
    unsafe extern "C" fn trampoline<F: Fn() + Sync>(info: *mut c_void) {
        // SAFETY: `info` is the `&F` passed below; `on_each_cpu` waits for every call to
        // finish before returning, so the borrow outlives all uses, and `F: Sync` makes
        // the concurrent shared calls sound.
        let f = unsafe { &*info.cast::<F>() };
        f();
    }
    // SAFETY: the trampoline matches `smp_call_func_t` and `info` is valid for the whole
    // call because `wait = 1` in the helper.
    unsafe {
        bindings::rkvm_on_each_cpu(
            Some(trampoline::<F>),
            core::ptr::from_ref(f).cast_mut().cast(),
        )
    };
}

/// Runs `f` on online CPU `cpu` (in IPI context, interrupts off) and waits for it. Fails
/// if `cpu` is not online or if called with interrupts off (which could deadlock).
pub(crate) fn call_on<F: Fn() + Sync>(cpu: u32, f: &F) -> kernel::error::Result {
    /// # Safety
    ///
    /// `info` is the `&F` given to `rkvm_smp_call_on` below, during that call.
    unsafe extern "C" fn trampoline<F: Fn() + Sync>(info: *mut c_void) {
        // SAFETY: `info` is the `&F` passed below, which outlives the call (`wait` = 1).
        let f = unsafe { &*info.cast::<F>() };
        f();
    }
    // SAFETY: the trampoline matches `smp_call_func_t`; `info` is valid for the whole
    // call because the helper waits for it.
    let ret = unsafe {
        bindings::rkvm_smp_call_on(
            cpu,
            Some(trampoline::<F>),
            core::ptr::from_ref(f).cast_mut().cast(),
        )
    };
    if ret < 0 {
        Err(kernel::error::Error::from_errno(ret))
    } else {
        Ok(())
    }
}

/// Whether CPU `cpu` is online now (it may go down right after).
pub(crate) fn cpu_online(cpu: u32) -> bool {
    // SAFETY: reads the online mask.
    unsafe { bindings::rkvm_cpu_online(cpu) }
}

/// The system-wide sanitised value of the ID register with encoding `sys_reg` (as the
/// kernel's `sys_reg(op0, op1, crn, crm, op2)`), agreed across all CPUs.
pub(crate) fn read_sanitised_id_reg(sys_reg: u32) -> u64 {
    // SAFETY: a lookup in the kernel's feature-register table; unknown ids read 0 (with a
    // one-time warning, so callers pass only ID-space encodings).
    unsafe { bindings::read_sanitised_ftr_reg(sys_reg) }
}

/// The number of online CPUs.
pub(crate) fn num_online_cpus() -> u32 {
    // SAFETY: reads the online mask's weight.
    unsafe { bindings::rkvm_num_online_cpus() }
}

/// The number of possible CPU ids (`nr_cpu_ids`): every CPU id is below it.
pub(crate) fn nr_cpu_ids() -> u32 {
    kernel::cpu::nr_cpu_ids()
}

/// The id of the CPU this runs on (`raw_smp_processor_id`). Stable only while preemption
/// or interrupts are off (or in a callback bound to the CPU).
pub(crate) fn this_cpu() -> u32 {
    kernel::cpu::CpuId::current().as_u32()
}

/// A CPU hotplug callback: runs on CPU `cpu` itself; 0 or a negative errno.
pub(crate) type HotplugFn = unsafe extern "C" fn(cpu: u32) -> i32;

/// Registers `online`/`offline` as a dynamic CPU hotplug state (`CPUHP_AP_ONLINE_DYN`):
/// `online` runs now on every online CPU and later on each CPU coming online, `offline`
/// on each CPU going down. If `online` fails on a CPU, the kernel undoes the others and
/// the registration fails. Returns the state, for [`cpuhp_remove`].
pub(crate) fn cpuhp_setup(online: HotplugFn, offline: HotplugFn) -> kernel::error::Result<i32> {
    // SAFETY: both callbacks are `extern "C" fn(unsigned int) -> int`; they stay valid
    // until `cpuhp_remove`, which the caller invokes before the module goes away.
    let ret = unsafe { bindings::rkvm_cpuhp_setup(Some(online), Some(offline)) };
    if ret < 0 {
        Err(kernel::error::Error::from_errno(ret))
    } else {
        Ok(ret)
    }
}

/// Removes a state from [`cpuhp_setup`], running its `offline` callback on every online
/// CPU first.
pub(crate) fn cpuhp_remove(state: i32) {
    // SAFETY: `state` came from `cpuhp_setup` and is removed once.
    unsafe { bindings::rkvm_cpuhp_remove(state) }
}

/// A CPU_PM callback: runs on the CPU concerned with interrupts off, `true` before a
/// power-down (`CPU_PM_ENTER`), `false` after it or when it failed.
pub(crate) type CpuPmFn = unsafe extern "C" fn(enter: bool);

/// Registers the module's one CPU_PM callback (a no-op where the kernel has no
/// `CONFIG_CPU_PM`); [`cpu_pm_unregister`] before the module goes away.
pub(crate) fn cpu_pm_register(cb: CpuPmFn) -> kernel::error::Result {
    // SAFETY: `cb` has the C signature the helper's notifier calls and stays valid until
    // `cpu_pm_unregister`.
    let ret = unsafe { bindings::rkvm_cpu_pm_register(Some(cb)) };
    if ret < 0 {
        Err(kernel::error::Error::from_errno(ret))
    } else {
        Ok(())
    }
}

/// Unregisters the callback of [`cpu_pm_register`] and waits for running calls (may
/// sleep).
pub(crate) fn cpu_pm_unregister() {
    // SAFETY: unregistering a registered notifier block; the kernel waits for walkers.
    unsafe { bindings::rkvm_cpu_pm_unregister() }
}

/// Runs this CPU through CPU_PM as a power-down does, calling `lose_state` where the
/// CPU would be off (interrupts off throughout). 0 or the errno of a refused
/// `cpu_pm_enter`.
pub(crate) fn cpu_pm_cycle(lose_state: unsafe extern "C" fn()) -> i32 {
    // SAFETY: `lose_state` is a valid C function for the duration of the call.
    unsafe { bindings::rkvm_cpu_pm_cycle(Some(lose_state)) }
}

/// Opens (`true`) or closes the `el2_test` module parameter (rust/params.c); closing
/// waits for a write in progress.
pub(crate) fn el2_test_ready(ready: bool) {
    // SAFETY: sets a mutex-protected flag.
    unsafe { bindings::rkvm_el2_test_ready(ready) }
}

/// The EL1 address the nVHE runtime's panic path returns to (`rkvm_nvhe_hyp_panic`).
pub(crate) fn nvhe_panic_handler() -> u64 {
    let f: unsafe extern "C" fn(u64, u64, u64, u64, u64, u64) -> ! = bindings::rkvm_nvhe_hyp_panic;
    f as usize as u64
}
