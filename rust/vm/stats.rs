// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_STATS_FD` on VM and vCPU fds: read-only files with the binary statistics.
//!
//! KVM counterpart: `kvm_vm_ioctl_get_stats_fd()`, `kvm_vcpu_ioctl_get_stats_fd()` and
//! `kvm_stats_read()`. The layout and the statistics are `logic::stats`'s; this file
//! takes a snapshot of the counters at each read. A stats file holds its VM (and vCPU)
//! alive, as KVM's holds a reference to the VM.

use super::Vm;
use crate::{
    logic::stats::{self, Layout, VcpuStat, VmStat, NAME_SIZE},
    sys::anon_fd::{self, FdOps},
    vcpu::{Vcpu, VcpuStats},
};
use kernel::{
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow},
    uaccess::UserSliceWriter,
};

/// Writes the items of `stat` now into `out` (the descriptor's size of them).
fn vcpu_values(vcpu: &Vcpu, stat: VcpuStat, out: &mut [u64]) {
    let s = &vcpu.stats;
    let hist = match stat {
        VcpuStat::HaltPollSuccessHist => &s.halt.poll_success_hist,
        VcpuStat::HaltPollFailHist => &s.halt.poll_fail_hist,
        VcpuStat::HaltWaitHist => &s.halt.wait_hist,
        _ => {
            out[0] = vcpu_value(vcpu, s, stat);
            return;
        }
    };
    for (slot, bucket) in out.iter_mut().zip(hist) {
        *slot = bucket.get();
    }
}

/// The value of scalar `stat` now.
fn vcpu_value(vcpu: &Vcpu, s: &VcpuStats, stat: VcpuStat) -> u64 {
    match stat {
        VcpuStat::HaltSuccessfulPoll => s.halt.successful_poll.get(),
        VcpuStat::HaltAttemptedPoll => s.halt.attempted_poll.get(),
        // arm64 has no invalid wake-ups.
        VcpuStat::HaltPollInvalid => 0,
        VcpuStat::HaltWakeup => vcpu.wake.wakeups(),
        VcpuStat::HaltPollSuccessNs => s.halt.poll_success_ns.get(),
        VcpuStat::HaltPollFailNs => s.halt.poll_fail_ns.get(),
        VcpuStat::HaltWaitNs => s.halt.wait_ns.get(),
        VcpuStat::Blocking => u64::from(vcpu.wake.blocking()),
        // Histograms: `vcpu_values`.
        VcpuStat::HaltPollSuccessHist | VcpuStat::HaltPollFailHist | VcpuStat::HaltWaitHist => 0,
        VcpuStat::HvcExits => s.exits_hvc.get(),
        VcpuStat::WfeExits => s.exits_wfe.get(),
        VcpuStat::WfiExits => s.exits_wfi.get(),
        VcpuStat::MmioExitUser => s.exits_mmio.get(),
        // What KVM's io bus handles: the vGIC's frames, ioeventfds and coalesced zones.
        VcpuStat::MmioExitKernel => {
            s.vgic_mmio.get() + s.ioeventfd_writes.get() + s.coalesced_mmio_writes.get()
        }
        VcpuStat::SignalExits => s.signal_exits.get(),
        VcpuStat::Exits => s.exits.get(),
        VcpuStat::IrqExits => s.exits_irq.get(),
        VcpuStat::Runs => s.runs.get(),
        VcpuStat::SmcExits => s.exits_smc.get(),
        VcpuStat::Stage2Exits => s.exits_stage2.get(),
        VcpuStat::SysregExits => s.exits_sysreg.get(),
        VcpuStat::FpExits => s.exits_fp.get(),
        VcpuStat::OtherExits => s.exits_other.get(),
        VcpuStat::IoeventfdWrites => s.ioeventfd_writes.get(),
        VcpuStat::CoalescedWrites => s.coalesced_mmio_writes.get(),
        VcpuStat::WfiSleeps => s.wfi_sleeps.get(),
        VcpuStat::TimerArms => s.timer_arms.get(),
        VcpuStat::Loads => s.loads.get(),
        VcpuStat::Puts => s.puts.get(),
        VcpuStat::FpLoads => s.fp_loads.get(),
        VcpuStat::FpEagerLoads => s.fp_eager_loads.get(),
        VcpuStat::VgicFlushFast => s.lock_free(&s.vgic_flush_slow),
        VcpuStat::VgicFlushSlow => s.vgic_flush_slow.get(),
        VcpuStat::VgicSyncFast => s.lock_free(&s.vgic_sync_slow),
        VcpuStat::VgicSyncSlow => s.vgic_sync_slow.get(),
        VcpuStat::VgicUnderflow => s.vgic_underflow.get(),
        VcpuStat::VgicEoiMaintenance => s.vgic_eoi_maintenance.get(),
        VcpuStat::VgicMmio => s.vgic_mmio.get(),
        VcpuStat::VgicSgi => s.vgic_sgi.get(),
    }
}

/// Copies the window `[pos, pos + len)` of a stats file to userspace.
fn read_file(
    layout: &Layout,
    id: &[u8; NAME_SIZE],
    data: &[u64],
    pos: u64,
    len: usize,
    out: &mut UserSliceWriter,
) -> Result<usize> {
    let n = layout.read_len(pos, len);
    if n == 0 {
        return Ok(0);
    }
    // At most the file's size (a few KiB).
    let mut buf = KVec::from_elem(0u8, n, GFP_KERNEL)?;
    layout.read(id, data, pos, &mut buf);
    out.write_slice(&buf)?;
    Ok(n)
}

/// A VM's stats fd.
struct VmStatsFile(Arc<Vm>);

impl FdOps for VmStatsFile {
    const HAS_READ: bool = true;

    fn ioctl(_this: ArcBorrow<'_, Self>, _cmd: u32, _arg: usize) -> Result<isize> {
        // KVM's stats files have no ioctl method: the VFS answers ENOTTY.
        Err(ENOTTY)
    }

    fn read(
        this: ArcBorrow<'_, Self>,
        pos: u64,
        len: usize,
        out: &mut UserSliceWriter,
    ) -> Result<usize> {
        let vm = &this.0;
        let (tlb_flushes, pages, blocks) = vm.mmu.lock().stats();
        let mut data = [0u64; stats::VM_STATS.len()];
        for (slot, stat) in data.iter_mut().zip(VmStat::ALL) {
            *slot = match stat {
                VmStat::RemoteTlbFlush => tlb_flushes,
                VmStat::Pages4k => pages,
                VmStat::Pages2m => blocks,
            };
        }
        read_file(&stats::VM_LAYOUT, &vm.stats_id, &data, pos, len, out)
    }
}

/// A vCPU's stats fd.
struct VcpuStatsFile {
    _vm: Arc<Vm>,
    vcpu: Arc<Vcpu>,
}

impl FdOps for VcpuStatsFile {
    const HAS_READ: bool = true;

    fn ioctl(_this: ArcBorrow<'_, Self>, _cmd: u32, _arg: usize) -> Result<isize> {
        Err(ENOTTY)
    }

    fn read(
        this: ArcBorrow<'_, Self>,
        pos: u64,
        len: usize,
        out: &mut UserSliceWriter,
    ) -> Result<usize> {
        let vcpu = &this.vcpu;
        let mut data = [0u64; stats::VCPU_ITEMS];
        let mut at = 0;
        for (desc, stat) in stats::VCPU_STATS.iter().zip(VcpuStat::ALL) {
            let n = usize::from(desc.size);
            vcpu_values(vcpu, *stat, &mut data[at..at + n]);
            at += n;
        }
        read_file(&stats::VCPU_LAYOUT, &vcpu.stats_id, &data, pos, len, out)
    }
}

impl Vm {
    /// `KVM_GET_STATS_FD` on the VM fd.
    pub(super) fn stats_fd(self: ArcBorrow<'_, Self>) -> Result<isize> {
        let file = Arc::new(VmStatsFile(self.into()), GFP_KERNEL_ACCOUNT)?;
        Ok(anon_fd::install_readonly(c"kvm-vm-stats", file)? as isize)
    }
}

/// `KVM_GET_STATS_FD` on a vCPU fd.
pub(crate) fn vcpu_stats_fd(vm: &Arc<Vm>, vcpu: &Arc<Vcpu>) -> Result<isize> {
    let name = CString::try_from_fmt(fmt!("kvm-vcpu-stats:{}", vcpu.id))?;
    let file = Arc::new(
        VcpuStatsFile {
            _vm: vm.clone(),
            vcpu: vcpu.clone(),
        },
        GFP_KERNEL_ACCOUNT,
    )?;
    Ok(anon_fd::install_readonly(&name, file)? as isize)
}
