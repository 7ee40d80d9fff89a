// SPDX-License-Identifier: GPL-2.0

//! `KVM_GET_STATS_FD`: the layout of the binary statistics file, its descriptors and
//! the set of statistics a VM and a vCPU expose.
//!
//! KVM counterpart: `struct kvm_stats_header` and `struct kvm_stats_desc`
//! (`include/uapi/linux/kvm.h`), `kvm_stats_read()` (`virt/kvm/binary_stats.c`) and the
//! arm64 descriptor tables (`arch/arm64/kvm/guest.c`). The file is, in this order: the
//! header, the id string (`KVM_STATS_NAME_SIZE` bytes), one descriptor per statistic
//! (16 bytes then the name, NUL-padded to `KVM_STATS_NAME_SIZE`), and the data (one
//! native-endian `u64` per item). Every statistic rkvm lists is a real count: KVM's names
//! where rkvm counts the same event, rkvm's own (the debugfs names) otherwise.

/// `KVM_STATS_NAME_SIZE`: the id string and every descriptor's name field.
pub(crate) const NAME_SIZE: usize = 48;
/// `sizeof(struct kvm_stats_header)`.
pub(crate) const HEADER_SIZE: usize = 24;
/// `sizeof(struct kvm_stats_desc)` with its name, as KVM lays descriptors out.
pub(crate) const DESC_SIZE: usize = 16 + NAME_SIZE;

/// `KVM_STATS_TYPE_*`: how the value evolves.
// The uapi's whole encoding (unit-tested); rkvm's own tables use part of it.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only grows (an event count).
    Cumulative,
    /// A current value that may go up and down.
    Instant,
    /// The highest value seen.
    Peak,
    /// `size` buckets of `bucket_size` each.
    LinearHist { bucket_size: u32 },
    /// `size` buckets, bucket n counting values in [2^(n-1), 2^n).
    LogHist,
}

/// `KVM_STATS_UNIT_*`.
// The uapi's whole encoding (unit-tested); rkvm's own tables use part of it.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    None,
    Bytes,
    Seconds,
    Cycles,
    Boolean,
}

/// `KVM_STATS_BASE_*`: the base `exponent` applies to.
// The uapi's whole encoding (unit-tested); rkvm's own tables use part of it.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    Pow10,
    Pow2,
}

/// One statistic's descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Desc {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) unit: Unit,
    pub(crate) base: Base,
    pub(crate) exponent: i16,
    /// Number of `u64` items.
    pub(crate) size: u16,
}

impl Desc {
    /// An event count (KVM's `STATS_DESC_COUNTER`).
    pub(crate) const fn counter(name: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Cumulative,
            unit: Unit::None,
            base: Base::Pow10,
            exponent: 0,
            size: 1,
        }
    }

    /// A current count (KVM's `STATS_DESC_ICOUNTER`).
    pub(crate) const fn instant(name: &'static str) -> Self {
        Self {
            kind: Kind::Instant,
            ..Self::counter(name)
        }
    }

    /// Cumulative nanoseconds (KVM's `STATS_DESC_TIME_NSEC`).
    pub(crate) const fn time_ns(name: &'static str) -> Self {
        Self {
            unit: Unit::Seconds,
            exponent: -9,
            ..Self::counter(name)
        }
    }

    /// A logarithmic histogram of nanoseconds with `size` buckets (KVM's
    /// `STATS_DESC_LOGHIST_TIME_NSEC`).
    pub(crate) const fn log_hist_ns(name: &'static str, size: u16) -> Self {
        Self {
            kind: Kind::LogHist,
            size,
            ..Self::time_ns(name)
        }
    }

    /// A current boolean (KVM's `STATS_DESC_IBOOLEAN`).
    pub(crate) const fn instant_bool(name: &'static str) -> Self {
        Self {
            unit: Unit::Boolean,
            ..Self::instant(name)
        }
    }

    /// The descriptor's `flags`: type in bits 3:0, unit in 7:4, base in 11:8.
    pub(crate) const fn flags(&self) -> u32 {
        let kind = match self.kind {
            Kind::Cumulative => 0,
            Kind::Instant => 1,
            Kind::Peak => 2,
            Kind::LinearHist { .. } => 3,
            Kind::LogHist => 4,
        };
        let unit = match self.unit {
            Unit::None => 0,
            Unit::Bytes => 1,
            Unit::Seconds => 2,
            Unit::Cycles => 3,
            Unit::Boolean => 4,
        };
        let base = match self.base {
            Base::Pow10 => 0,
            Base::Pow2 => 1,
        };
        kind | unit << 4 | base << 8
    }

    /// `bucket_size`: only linear histograms have one (KVM's selftest insists on 0
    /// for every other type).
    pub(crate) const fn bucket_size(&self) -> u32 {
        match self.kind {
            Kind::LinearHist { bucket_size } => bucket_size,
            _ => 0,
        }
    }

    /// The descriptor's bytes, with `offset` the byte offset of its data within the
    /// data block. Names longer than `NAME_SIZE - 1` are cut so a NUL always ends them
    /// (the tables below are checked not to need it).
    pub(crate) fn encode(&self, offset: u32) -> [u8; DESC_SIZE] {
        let mut out = [0u8; DESC_SIZE];
        out[0..4].copy_from_slice(&self.flags().to_ne_bytes());
        out[4..6].copy_from_slice(&self.exponent.to_ne_bytes());
        out[6..8].copy_from_slice(&self.size.to_ne_bytes());
        out[8..12].copy_from_slice(&offset.to_ne_bytes());
        out[12..16].copy_from_slice(&self.bucket_size().to_ne_bytes());
        let name = self.name.as_bytes();
        let n = name.len().min(NAME_SIZE - 1);
        out[16..16 + n].copy_from_slice(&name[..n]);
        out
    }
}

/// Number of `u64` data items of a table (the sum of its descriptors' sizes).
pub(crate) const fn items(descs: &[Desc]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < descs.len() {
        n += descs[i].size as usize;
        i += 1;
    }
    n
}

/// The fixed layout of one stats file: where the id, descriptors and data sit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub(crate) descs: &'static [Desc],
}

impl Layout {
    pub(crate) const fn id_offset(&self) -> usize {
        HEADER_SIZE
    }

    pub(crate) const fn desc_offset(&self) -> usize {
        HEADER_SIZE + NAME_SIZE
    }

    pub(crate) const fn data_offset(&self) -> usize {
        self.desc_offset() + self.descs.len() * DESC_SIZE
    }

    /// Number of `u64` data items (the sum of the descriptors' sizes).
    pub(crate) fn data_items(&self) -> usize {
        self.descs.iter().map(|d| usize::from(d.size)).sum()
    }

    /// Size of the whole file.
    pub(crate) fn file_len(&self) -> usize {
        self.data_offset() + self.data_items() * 8
    }

    /// The header's bytes: flags 0, name size, count, then the three offsets.
    pub(crate) fn header(&self) -> [u8; HEADER_SIZE] {
        let fields = [
            0,
            NAME_SIZE as u32,
            self.descs.len() as u32,
            self.id_offset() as u32,
            self.desc_offset() as u32,
            self.data_offset() as u32,
        ];
        let mut out = [0u8; HEADER_SIZE];
        for (chunk, v) in out.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&v.to_ne_bytes());
        }
        out
    }

    /// How many bytes a read of `want` bytes at `pos` returns: what is left of the file
    /// from `pos`, at most `want` (0 at or past the end), as `kvm_stats_read()`.
    pub(crate) fn read_len(&self, pos: u64, want: usize) -> usize {
        let len = self.file_len() as u64;
        if pos >= len {
            return 0;
        }
        ((len - pos) as usize).min(want)
    }

    /// Fills `out` with the file's bytes from `pos` on (`out.len()` from `read_len`).
    /// `data` holds `data_items()` values.
    pub(crate) fn read(&self, id: &[u8; NAME_SIZE], data: &[u64], pos: u64, out: &mut [u8]) {
        copy_overlap(0, &self.header(), pos, out);
        copy_overlap(self.id_offset() as u64, id, pos, out);
        let mut offset = 0u32;
        for (i, d) in self.descs.iter().enumerate() {
            let at = (self.desc_offset() + i * DESC_SIZE) as u64;
            copy_overlap(at, &d.encode(offset), pos, out);
            offset += u32::from(d.size) * 8;
        }
        for (i, v) in data.iter().enumerate() {
            copy_overlap(
                (self.data_offset() + i * 8) as u64,
                &v.to_ne_bytes(),
                pos,
                out,
            );
        }
    }
}

/// Copies the part of `seg` (which sits at file offset `at`) that falls into the window
/// `[pos, pos + out.len())` of the file to its place in `out`.
fn copy_overlap(at: u64, seg: &[u8], pos: u64, out: &mut [u8]) {
    let seg_end = at + seg.len() as u64;
    let out_end = pos + out.len() as u64;
    let start = at.max(pos);
    let end = seg_end.min(out_end);
    if start >= end {
        return;
    }
    let (s, e) = ((start - at) as usize, (end - at) as usize);
    let o = (start - pos) as usize;
    out[o..o + (e - s)].copy_from_slice(&seg[s..e]);
}

/// Writes `parts` into a NUL-padded id string, cut to leave a final NUL.
pub(crate) fn id_string(args: core::fmt::Arguments<'_>) -> [u8; NAME_SIZE] {
    struct Buf([u8; NAME_SIZE], usize);
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for &b in s.as_bytes() {
                if self.1 < NAME_SIZE - 1 {
                    self.0[self.1] = b;
                    self.1 += 1;
                }
            }
            Ok(())
        }
    }
    let mut buf = Buf([0; NAME_SIZE], 0);
    let _ = core::fmt::write(&mut buf, args);
    buf.0
}

/// The VM's id, as KVM: `kvm-<pid of the creating thread>`.
pub(crate) fn vm_id(pid: i32) -> [u8; NAME_SIZE] {
    id_string(format_args!("kvm-{pid}"))
}

/// A vCPU's id, as KVM: `kvm-<pid of the creating thread>/vcpu-<vcpu id>`.
pub(crate) fn vcpu_id(pid: i32, vcpu: u32) -> [u8; NAME_SIZE] {
    id_string(format_args!("kvm-{pid}/vcpu-{vcpu}"))
}

/// Declares a statistics set: an enum with one variant per statistic, its descriptor,
/// and the table in file order. The kernel side maps every variant to its value with an
/// exhaustive `match`, so a statistic cannot be listed without a source.
macro_rules! stats_set {
    ($(#[$m:meta])* $name:ident, $table:ident { $($var:ident => $desc:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $name { $($var,)* }

        impl $name {
            pub(crate) const ALL: &'static [$name] = &[$($name::$var,)*];

            #[cfg(test)]
            pub(crate) const fn desc(self) -> Desc {
                match self { $($name::$var => $desc,)* }
            }
        }

        /// The descriptors in file order.
        pub(crate) const $table: &[Desc] = &[$($desc,)*];
    };
}

/// Buckets of the halt-poll histograms (`HALT_POLL_HIST_COUNT`).
const HIST: u16 = super::halt_poll::HIST_COUNT as u16;

stats_set! {
    /// What a vCPU's stats file reports.
    VcpuStat, VCPU_STATS {
        // KVM's generic vCPU statistics (`KVM_GENERIC_VCPU_STATS`), in its order.
        HaltSuccessfulPoll => Desc::counter("halt_successful_poll"),
        HaltAttemptedPoll => Desc::counter("halt_attempted_poll"),
        HaltPollInvalid => Desc::counter("halt_poll_invalid"),
        HaltWakeup => Desc::counter("halt_wakeup"),
        HaltPollSuccessNs => Desc::time_ns("halt_poll_success_ns"),
        HaltPollFailNs => Desc::time_ns("halt_poll_fail_ns"),
        HaltWaitNs => Desc::time_ns("halt_wait_ns"),
        HaltPollSuccessHist => Desc::log_hist_ns("halt_poll_success_hist", HIST),
        HaltPollFailHist => Desc::log_hist_ns("halt_poll_fail_hist", HIST),
        HaltWaitHist => Desc::log_hist_ns("halt_wait_hist", HIST),
        Blocking => Desc::instant_bool("blocking"),
        // KVM's arm64 names, same events.
        HvcExits => Desc::counter("hvc_exit_stat"),
        WfeExits => Desc::counter("wfe_exit_stat"),
        WfiExits => Desc::counter("wfi_exit_stat"),
        MmioExitUser => Desc::counter("mmio_exit_user"),
        MmioExitKernel => Desc::counter("mmio_exit_kernel"),
        SignalExits => Desc::counter("signal_exits"),
        Exits => Desc::counter("exits"),
        // x86 KVM's name for exits taken by a host interrupt.
        IrqExits => Desc::counter("irq_exits"),
        // rkvm's own (as in debugfs).
        Runs => Desc::counter("runs"),
        SmcExits => Desc::counter("exits_smc"),
        Stage2Exits => Desc::counter("exits_stage2"),
        SysregExits => Desc::counter("exits_sysreg"),
        FpExits => Desc::counter("exits_fp"),
        OtherExits => Desc::counter("exits_other"),
        IoeventfdWrites => Desc::counter("ioeventfd_writes"),
        CoalescedWrites => Desc::counter("coalesced_mmio_writes"),
        WfiSleeps => Desc::counter("wfi_sleeps"),
        TimerArms => Desc::counter("timer_arms"),
        Loads => Desc::counter("loads"),
        Puts => Desc::counter("puts"),
        FpLoads => Desc::counter("fp_loads"),
        FpEagerLoads => Desc::counter("fp_eager_loads"),
        VgicFlushFast => Desc::counter("vgic_flush_fast"),
        VgicFlushSlow => Desc::counter("vgic_flush_slow"),
        VgicSyncFast => Desc::counter("vgic_sync_fast"),
        VgicSyncSlow => Desc::counter("vgic_sync_slow"),
        VgicUnderflow => Desc::counter("vgic_underflow"),
        VgicEoiMaintenance => Desc::counter("vgic_eoi_maintenance"),
        VgicMmio => Desc::counter("vgic_mmio"),
        VgicSgi => Desc::counter("vgic_sgi"),
    }
}

stats_set! {
    /// What a VM's stats file reports.
    VmStat, VM_STATS {
        // KVM's generic name: VMID-wide TLB invalidations (rkvm issues one per request,
        // so it has no separate request count).
        RemoteTlbFlush => Desc::counter("remote_tlb_flush"),
        // x86 KVM's names: guest memory mapped at stage 2 with 4 KiB pages and with 2 MiB
        // blocks.
        Pages4k => Desc::instant("pages_4k"),
        Pages2m => Desc::instant("pages_2m"),
    }
}

/// The vCPU stats file's layout and its number of data items.
pub(crate) const VCPU_LAYOUT: Layout = Layout { descs: VCPU_STATS };
pub(crate) const VCPU_ITEMS: usize = items(VCPU_STATS);
/// The VM stats file's layout.
pub(crate) const VM_LAYOUT: Layout = Layout { descs: VM_STATS };

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn flags_encoding_matches_kvm() {
        assert_eq!(Desc::counter("x").flags(), 0);
        assert_eq!(Desc::instant("x").flags(), 0x1);
        let peak = Desc {
            kind: Kind::Peak,
            ..Desc::counter("x")
        };
        assert_eq!(peak.flags(), 0x2);
        // KVM's STATS_DESC_TIME_NSEC: cumulative, seconds, pow10, exponent -9.
        let ns = Desc {
            unit: Unit::Seconds,
            exponent: -9,
            ..Desc::counter("x")
        };
        assert_eq!(ns.flags(), 0x20);
        // STATS_DESC_LOGHIST_TIME_NSEC: log histogram of seconds.
        let hist = Desc {
            kind: Kind::LogHist,
            unit: Unit::Seconds,
            size: 32,
            ..Desc::counter("x")
        };
        assert_eq!(hist.flags(), 0x24);
        assert_eq!(hist.bucket_size(), 0);
        let lin = Desc {
            kind: Kind::LinearHist { bucket_size: 8 },
            unit: Unit::Bytes,
            base: Base::Pow2,
            ..Desc::counter("x")
        };
        assert_eq!(lin.flags(), 0x113);
        assert_eq!(lin.bucket_size(), 8);
        let boolean = Desc {
            unit: Unit::Boolean,
            kind: Kind::Instant,
            ..Desc::counter("x")
        };
        assert_eq!(boolean.flags(), 0x41);
        let cycles = Desc {
            unit: Unit::Cycles,
            ..Desc::counter("x")
        };
        assert_eq!(cycles.flags(), 0x30);
    }

    #[test]
    fn descriptor_bytes() {
        let d = Desc {
            exponent: -9,
            size: 3,
            unit: Unit::Seconds,
            ..Desc::counter("halt_wait_ns")
        };
        let b = d.encode(40);
        assert_eq!(u32_at(&b, 0), 0x20);
        assert_eq!(i16::from_ne_bytes([b[4], b[5]]), -9);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 3);
        assert_eq!(u32_at(&b, 8), 40);
        assert_eq!(u32_at(&b, 12), 0);
        assert_eq!(&b[16..28], b"halt_wait_ns");
        assert!(b[28..].iter().all(|&c| c == 0));
        // A name that would fill the field still ends in NUL.
        let long = Desc::counter("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
        assert_eq!(long.encode(0)[DESC_SIZE - 1], 0);
    }

    #[test]
    fn header_matches_kvm_layout() {
        const TWO: &[Desc] = &[Desc::counter("a"), Desc::counter("b")];
        let l = Layout { descs: TWO };
        let h = l.header();
        assert_eq!(u32_at(&h, 0), 0);
        assert_eq!(u32_at(&h, 4), 48);
        assert_eq!(u32_at(&h, 8), 2);
        assert_eq!(u32_at(&h, 12), 24);
        assert_eq!(u32_at(&h, 16), 72);
        assert_eq!(u32_at(&h, 20), 72 + 2 * 64);
        assert_eq!(l.file_len(), 72 + 128 + 16);
    }

    #[test]
    fn tables_are_well_formed() {
        for l in [VCPU_LAYOUT, VM_LAYOUT] {
            for (i, d) in l.descs.iter().enumerate() {
                assert!(d.name.len() < NAME_SIZE, "{}", d.name);
                assert!(d.size > 0);
                assert!(
                    l.descs[..i].iter().all(|o| o.name != d.name),
                    "duplicate {}",
                    d.name
                );
            }
        }
        assert_eq!(VcpuStat::ALL.len(), VCPU_STATS.len());
        assert_eq!(VmStat::ALL.len(), VM_STATS.len());
        for (i, s) in VcpuStat::ALL.iter().enumerate() {
            assert_eq!(s.desc(), VCPU_STATS[i]);
        }
        assert_eq!(VcpuStat::Exits.desc().name, "exits");
        assert_eq!(VCPU_ITEMS, VCPU_LAYOUT.data_items());
        assert_eq!(items(VM_STATS), VM_STATS.len());
    }

    #[test]
    fn halt_poll_descriptors_as_kvm() {
        // KVM_GENERIC_VCPU_STATS opens the vCPU table.
        let names = VCPU_STATS[..11].iter().map(|d| d.name);
        assert!(names.eq([
            "halt_successful_poll",
            "halt_attempted_poll",
            "halt_poll_invalid",
            "halt_wakeup",
            "halt_poll_success_ns",
            "halt_poll_fail_ns",
            "halt_wait_ns",
            "halt_poll_success_hist",
            "halt_poll_fail_hist",
            "halt_wait_hist",
            "blocking",
        ]));
        let ns = VcpuStat::HaltWaitNs.desc();
        assert_eq!((ns.flags(), ns.exponent, ns.size), (0x20, -9, 1));
        let hist = VcpuStat::HaltWaitHist.desc();
        assert_eq!((hist.flags(), hist.exponent, hist.size), (0x24, -9, 32));
        assert_eq!(hist.bucket_size(), 0);
        let blocking = VcpuStat::Blocking.desc();
        assert_eq!((blocking.flags(), blocking.exponent), (0x41, 0));
        assert_eq!(VcpuStat::HaltWakeup.desc().flags(), 0);
    }

    #[test]
    fn reads_at_any_offset_agree_with_one_read() {
        const TWO: &[Desc] = &[Desc::counter("a"), Desc::instant("bb")];
        let l = Layout { descs: TWO };
        let id = vcpu_id(42, 3);
        let data = [0x1122_3344_5566_7788u64, 7];
        let len = l.file_len();
        let mut whole = [0u8; 512];
        assert_eq!(l.read_len(0, 4096), len);
        l.read(&id, &data, 0, &mut whole[..len]);
        assert_eq!(&whole[24..24 + 11], b"kvm-42/vcpu");
        assert_eq!(
            &whole[l.data_offset()..l.data_offset() + 8],
            &data[0].to_ne_bytes()
        );
        assert_eq!(
            u32_at(&whole, 72 + 64 + 8),
            8,
            "second descriptor's data offset"
        );
        for pos in 0..len + 3 {
            for want in [1usize, 5, 64, 1000] {
                let n = l.read_len(pos as u64, want);
                assert_eq!(n, want.min(len.saturating_sub(pos)));
                let mut part = [0u8; 1000];
                l.read(&id, &data, pos as u64, &mut part[..n]);
                assert_eq!(&part[..n], &whole[pos..pos + n]);
            }
        }
        assert_eq!(l.read_len(u64::MAX, 8), 0);
    }

    #[test]
    fn ids_like_kvm() {
        let id = vm_id(1234);
        assert_eq!(&id[..9], b"kvm-1234\0");
        let id = vcpu_id(77, 63);
        assert_eq!(&id[..15], b"kvm-77/vcpu-63\0");
        let long = id_string(format_args!("{:>60}", "x"));
        assert_eq!(long[NAME_SIZE - 1], 0);
    }
}
