// SPDX-License-Identifier: GPL-2.0

//! Coalesced MMIO: KVM's errno for bad zones, guest writes to a zone landing in the
//! ring page in order with no exit, the exit when the ring is full, reads and writes
//! outside a zone still exiting, unregistration, and the order against ioeventfds on
//! the MMIO bus.

use kvm_bindings as kb;
use kvm_bindings::{kvm_coalesced_mmio_zone, kvm_coalesced_mmio_zone__bindgen_ty_1};
use kvm_ioctls::VcpuFd;
use rkvm_selftests::{
    binstats::Stats,
    check, check_eq, eventfd, eventfd_count, guest_code, host_runs_guests, page_size, run_or_skip,
    vmm::{core_reg_x, ioctl_raw, ioctl_with, nr, run, set_reg, Exit, TestVm, MEM_BASE, MMIO_BASE},
    Cases, Outcome, TestResult, NO_GUESTS_REASON,
};
use std::os::fd::AsRawFd;

const KVM_CAP_COALESCED_MMIO: u64 = kb::KVM_CAP_COALESCED_MMIO as u64;
const KVM_CAP_COALESCED_PIO: u64 = kb::KVM_CAP_COALESCED_PIO as u64;
/// The zone the guests write to.
const ZONE: u64 = MMIO_BASE + 0x1000;
const ZONE_SIZE: u32 = 0x100;

fn zone(addr: u64, size: u32, pio: u32) -> kvm_coalesced_mmio_zone {
    kvm_coalesced_mmio_zone {
        addr,
        size,
        __bindgen_anon_1: kvm_coalesced_mmio_zone__bindgen_ty_1 { pio },
    }
}

fn register(vm: &TestVm, addr: u64, size: u32, pio: u32) -> Result<i32, i32> {
    let mut z = zone(addr, size, pio);
    ioctl_with(vm.vm.as_raw_fd(), nr::KVM_REGISTER_COALESCED_MMIO, &mut z)
}

fn unregister(vm: &TestVm, addr: u64, size: u32, pio: u32) -> Result<i32, i32> {
    let mut z = zone(addr, size, pio);
    ioctl_with(vm.vm.as_raw_fd(), nr::KVM_UNREGISTER_COALESCED_MMIO, &mut z)
}

/// The ring page, mapped from the vCPU fd at page offset `KVM_CAP_COALESCED_MMIO`.
struct Ring {
    ptr: *mut u8,
    entries: u32,
}

/// One `struct kvm_coalesced_mmio`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    addr: u64,
    len: u32,
    pio: u32,
    data: u64,
}

impl Ring {
    fn map(vm: &TestVm, vcpu: &VcpuFd) -> Result<Self, String> {
        let off = vm.kvm.check_extension_raw(KVM_CAP_COALESCED_MMIO as _) as usize * page_size();
        // SAFETY: a new shared mapping of one page of the vCPU fd.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                page_size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "mmap of the ring: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self {
            ptr: p.cast(),
            entries: ((page_size() - 8) / 24) as u32,
        })
    }

    fn index(&self, at: usize) -> u32 {
        // SAFETY: `at` is 0 or 4, inside the mapped page.
        unsafe { self.ptr.add(at).cast::<u32>().read_volatile() }
    }

    fn first(&self) -> u32 {
        self.index(0)
    }

    fn last(&self) -> u32 {
        self.index(4)
    }

    fn set(&self, first: u32, last: u32) {
        // SAFETY: the two indices at the start of the mapped page.
        unsafe {
            self.ptr.cast::<u32>().write_volatile(first);
            self.ptr.add(4).cast::<u32>().write_volatile(last);
        }
    }

    fn entry(&self, i: u32) -> Entry {
        assert!(i < self.entries);
        // SAFETY: entry `i` lies inside the mapped page.
        unsafe {
            let e = self.ptr.add(8 + 24 * i as usize);
            Entry {
                addr: e.cast::<u64>().read_volatile(),
                len: e.add(8).cast::<u32>().read_volatile(),
                pio: e.add(12).cast::<u32>().read_volatile(),
                data: e.add(16).cast::<u64>().read_volatile(),
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`.
        unsafe { libc::munmap(self.ptr.cast(), page_size()) };
    }
}

// Writes 0, 1, ..., x5 - 1 to ZONE (8 bytes each), reports the count at MMIO_BASE, and
// starts again.
guest_code!(
    guest_ring,
    "movz x1, #0x1000, lsl #16",
    "add x3, x1, #0x1000",
    "0: mov x2, #0",
    "1: str x2, [x3]",
    "add x2, x2, #1",
    "cmp x2, x5",
    "b.ne 1b",
    "str x2, [x1]",
    "b 0b"
);

// Stores of 1, 2, 4 and 8 bytes into the zone, a load from it, a store just past it and
// one straddling its end.
guest_code!(
    guest_sizes,
    "movz x1, #0x1000, lsl #16",
    "add x3, x1, #0x1000",
    "movz x2, #0x7788",
    "movk x2, #0x5566, lsl #16",
    "movk x2, #0x3344, lsl #32",
    "movk x2, #0x1122, lsl #48",
    "strb w2, [x3]",
    "strh w2, [x3, #2]",
    "str w2, [x3, #4]",
    "str x2, [x3, #8]",
    "ldr x4, [x3]",
    "str x4, [x3, #0x100]",
    "str x4, [x3, #0xfc]",
    "b ."
);

// A store 8 bytes into the zone, one at its start, a report at MMIO_BASE; again.
guest_code!(
    guest_order,
    "movz x1, #0x1000, lsl #16",
    "add x3, x1, #0x1000",
    "mov x2, #0x5a",
    "0: str x2, [x3, #8]",
    "str x2, [x3]",
    "str x2, [x1]",
    "b 0b"
);

fn errno_table() -> TestResult {
    let vm = TestVm::new(1 << 16, &[0; 4])?;
    let mut c = Cases::new();
    c.eq(
        "KVM_CAP_COALESCED_MMIO (the ring's page offset)",
        vm.kvm.check_extension_raw(KVM_CAP_COALESCED_MMIO as _),
        1,
    );
    c.eq(
        "KVM_CAP_COALESCED_MMIO on the VM",
        vm.vm.check_extension_raw(KVM_CAP_COALESCED_MMIO as _),
        1,
    );
    c.eq(
        "KVM_CAP_COALESCED_PIO",
        vm.kvm.check_extension_raw(KVM_CAP_COALESCED_PIO as _),
        1,
    );
    for (what, addr, size, pio, want) in [
        ("pio 2", ZONE, 8, 2, libc::EINVAL),
        ("pio -1", ZONE, 8, u32::MAX, libc::EINVAL),
        ("a zone", ZONE, 8, 0, 0),
        // KVM neither checks overlap nor size: the io bus takes any range.
        ("the same zone again", ZONE, 8, 0, 0),
        ("an overlapping zone", ZONE + 4, 8, 0, 0),
        ("size 0", ZONE + 0x800, 0, 0, 0),
        ("4 GiB - 1", 0, u32::MAX, 0, 0),
        ("a range that wraps", u64::MAX - 4, 8, 0, 0),
        ("a PIO zone", 0x3f8, 8, 1, 0),
    ] {
        c.errno(
            &format!("register {what}"),
            register(&vm, addr, size, pio),
            want,
        );
    }
    c.errno(
        "unregister pio 2",
        unregister(&vm, ZONE, 8, 2),
        libc::EINVAL,
    );
    c.errno(
        "unregister what is not there",
        unregister(&vm, 0x7000_0000, 8, 0),
        0,
    );
    c.errno("unregister", unregister(&vm, ZONE, 8, 0), 0);
    // SAFETY: the kernel fails to read the unmapped argument.
    let bad = unsafe { ioctl_raw(vm.vm.as_raw_fd(), nr::KVM_REGISTER_COALESCED_MMIO, 8) };
    c.errno("register from a bad address", bad, libc::EFAULT);
    // SAFETY: as above.
    let bad = unsafe { ioctl_raw(vm.vm.as_raw_fd(), nr::KVM_UNREGISTER_COALESCED_MMIO, 8) };
    c.errno("unregister from a bad address", bad, libc::EFAULT);
    c.finish()
}

fn a_bus_holds_1000_zones() -> TestResult {
    let vm = TestVm::new(1 << 16, &[0; 4])?;
    let mut c = Cases::new();
    for i in 0..1000u64 {
        if let Err(e) = register(&vm, 0x1_0000_0000 + i * 8, 8, 0) {
            return Err(format!("zone {i}: errno {e}"));
        }
    }
    c.errno(
        "zone 1001",
        register(&vm, 0x2_0000_0000, 8, 0),
        libc::ENOSPC,
    );
    c.errno("PIO has its own bus", register(&vm, 0x3f8, 8, 1), 0);
    c.errno("unregister one", unregister(&vm, 0x1_0000_0000, 8, 0), 0);
    c.errno("room again", register(&vm, 0x2_0000_0000, 8, 0), 0);
    c.finish()
}

fn writes_fill_the_ring_in_order() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_ring())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    set_reg(&v, core_reg_x(5), 10)?;
    let ring = Ring::map(&vm, &v)?;
    let stats = Stats::open(v.as_raw_fd())?;
    let mut c = Cases::new();
    check_eq!(register(&vm, ZONE, ZONE_SIZE, 0), Ok(0));
    c.eq(
        "one exit for ten writes",
        run(&mut v, 0)?,
        Exit::MmioWrite(MMIO_BASE, 10u64.to_le_bytes().to_vec()),
    );
    c.eq("first", ring.first(), 0);
    c.eq("last", ring.last(), 10);
    for i in 0..10 {
        c.eq(
            &format!("entry {i}"),
            ring.entry(i),
            Entry {
                addr: ZONE,
                len: 8,
                pio: 0,
                data: u64::from(i),
            },
        );
    }
    let s = stats.values()?;
    c.eq(
        "coalesced_mmio_writes",
        s.get("coalesced_mmio_writes").copied(),
        Some(10),
    );
    c.eq(
        "mmio_exit_kernel",
        s.get("mmio_exit_kernel").copied(),
        Some(10),
    );
    c.eq("mmio_exit_user", s.get("mmio_exit_user").copied(), Some(1));
    // kvm-ioctls finds the same ring in the second page of its vCPU mapping.
    let run_page = v.get_kvm_run() as *mut kvm_bindings::kvm_run as *mut u8;
    // SAFETY: kvm-ioctls maps KVM_GET_VCPU_MMAP_SIZE (two pages) at `run_page`.
    let last = unsafe { run_page.add(page_size() + 4).cast::<u32>().read_volatile() };
    c.eq("last through the kvm_run mapping", last, 10);
    v.map_coalesced_mmio_ring()
        .map_err(|e| format!("map_coalesced_mmio_ring: {e}"))?;
    let mut seen = Vec::new();
    while let Some(e) = v
        .coalesced_mmio_read()
        .map_err(|e| format!("coalesced_mmio_read: {e}"))?
    {
        seen.push(u64::from_le_bytes(e.data));
    }
    c.eq(
        "kvm-ioctls reads the ten values",
        seen,
        (0..10).collect::<Vec<u64>>(),
    );
    c.eq("and empties the ring", ring.first(), 10);
    c.finish()
}

fn a_full_ring_exits() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_ring())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let ring = Ring::map(&vm, &v)?;
    let n = ring.entries;
    set_reg(&v, core_reg_x(5), u64::from(n))?;
    check_eq!(register(&vm, ZONE, ZONE_SIZE, 0), Ok(0));
    let mut c = Cases::new();
    // As KVM's coalesced_io_test: from every start, n - 1 writes fit and the n-th exits.
    for start in [0, 1, n / 2, n - 1] {
        ring.set(start, start);
        let exit = run(&mut v, 0)?;
        c.eq(
            &format!("start {start}: the write that found the ring full"),
            exit,
            Exit::MmioWrite(ZONE, (u64::from(n) - 1).to_le_bytes().to_vec()),
        );
        c.eq(
            &format!("start {start}: full"),
            (ring.last() + 1) % n,
            start,
        );
        for i in [0, 1, n - 2] {
            let e = ring.entry((start + i) % n);
            c.eq(&format!("start {start}: entry {i}"), e.data, u64::from(i));
        }
        // The loop ends with its report.
        c.eq(
            &format!("start {start}: report"),
            run(&mut v, 0)?,
            Exit::MmioWrite(MMIO_BASE, u64::from(n).to_le_bytes().to_vec()),
        );
    }
    // An index userspace left out of range is a full ring too.
    ring.set(0, n);
    c.eq(
        "last out of range",
        run(&mut v, 0)?,
        Exit::MmioWrite(ZONE, 0u64.to_le_bytes().to_vec()),
    );
    c.eq("last left alone", ring.last(), n);
    c.finish()
}

fn reads_and_writes_outside_exit() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_sizes())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let ring = Ring::map(&vm, &v)?;
    check_eq!(register(&vm, ZONE, ZONE_SIZE, 0), Ok(0));
    let mut c = Cases::new();
    c.eq(
        "the load exits",
        run(&mut v, 0xabcd)?,
        Exit::MmioRead(ZONE, 8),
    );
    let v64 = 0x1122_3344_5566_7788u64;
    for (i, (off, len, value)) in [
        (0u64, 1u32, 0x88u64),
        (2, 2, 0x7788),
        (4, 4, 0x5566_7788),
        (8, 8, v64),
    ]
    .into_iter()
    .enumerate()
    {
        let e = ring.entry(i as u32);
        c.eq(
            &format!("{len}-byte store"),
            (e.addr, e.len, e.pio, e.data & (u64::MAX >> (64 - 8 * len))),
            (ZONE + off, len, 0, value),
        );
    }
    c.eq("four entries", ring.last(), 4);
    c.eq(
        "a store past the zone",
        run(&mut v, 0)?,
        Exit::MmioWrite(ZONE + 0x100, 0xabcdu64.to_le_bytes().to_vec()),
    );
    c.eq(
        "a store across its end",
        run(&mut v, 0)?,
        Exit::MmioWrite(ZONE + 0xfc, 0xabcdu64.to_le_bytes().to_vec()),
    );
    c.eq("still four entries", ring.last(), 4);
    c.finish()
}

fn unregistered_zones_exit_again() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_ring())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    set_reg(&v, core_reg_x(5), 2)?;
    let ring = Ring::map(&vm, &v)?;
    let mut c = Cases::new();
    check_eq!(register(&vm, ZONE, ZONE_SIZE, 0), Ok(0));
    // A range larger than the zone, or on the PIO bus, removes nothing.
    c.errno(
        "unregister a larger range",
        unregister(&vm, ZONE, 2 * ZONE_SIZE, 0),
        0,
    );
    c.errno("unregister on the PIO bus", unregister(&vm, ZONE, 8, 1), 0);
    c.eq(
        "still coalesced",
        run(&mut v, 0)?,
        Exit::MmioWrite(MMIO_BASE, 2u64.to_le_bytes().to_vec()),
    );
    c.eq("two entries", ring.last(), 2);
    // A range inside the zone removes it.
    c.errno("unregister a part", unregister(&vm, ZONE + 8, 8, 0), 0);
    c.eq(
        "first write exits",
        run(&mut v, 0)?,
        Exit::MmioWrite(ZONE, 0u64.to_le_bytes().to_vec()),
    );
    c.eq(
        "second write exits",
        run(&mut v, 0)?,
        Exit::MmioWrite(ZONE, 1u64.to_le_bytes().to_vec()),
    );
    c.eq("no new entries", ring.last(), 2);
    c.finish()
}

fn bus_order_with_ioeventfds() -> TestResult {
    let vm = TestVm::new(1 << 16, guest_order())?;
    let mut v = vm.vcpu(0, MEM_BASE, 0)?;
    let ring = Ring::map(&vm, &v)?;
    let (inner, at_start) = (eventfd()?, eventfd()?);
    check_eq!(register(&vm, ZONE, ZONE_SIZE, 0), Ok(0));
    // Any length at ZONE + 8; 8 bytes at ZONE.
    for (fd, addr, len) in [(&inner, ZONE + 8, 0), (&at_start, ZONE, 8)] {
        let mut a = kvm_bindings::kvm_ioeventfd {
            addr,
            len,
            fd: fd.as_raw_fd(),
            ..Default::default()
        };
        check_eq!(
            ioctl_with(vm.vm.as_raw_fd(), nr::KVM_IOEVENTFD, &mut a),
            Ok(0)
        );
    }
    let mut c = Cases::new();
    // The zone starts below ZONE + 8, so it comes first there; at ZONE the ioeventfd does.
    c.eq(
        "report",
        run(&mut v, 0)?,
        Exit::MmioWrite(MMIO_BASE, 0x5au64.to_le_bytes().to_vec()),
    );
    c.eq(
        "the ring took the inner write",
        (ring.last(), ring.entry(0).addr),
        (1, ZONE + 8),
    );
    c.eq("its ioeventfd did not fire", eventfd_count(&inner), 0);
    c.eq(
        "the ioeventfd at the zone start fired",
        eventfd_count(&at_start),
        1,
    );
    // With the ring full, the zone passes the write on to the ioeventfd.
    ring.set(2, 1);
    c.eq(
        "report with a full ring",
        run(&mut v, 0)?,
        Exit::MmioWrite(MMIO_BASE, 0x5au64.to_le_bytes().to_vec()),
    );
    c.eq("the inner ioeventfd fired", eventfd_count(&inner), 1);
    c.eq("the other fired again", eventfd_count(&at_start), 1);
    c.eq("the ring is unchanged", ring.last(), 1);
    c.finish()
}

fn the_vcpu_mapping_has_two_pages() -> TestResult {
    let vm = TestVm::new(1 << 16, &[0; 4])?;
    let v = vm
        .vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let page = page_size();
    // SAFETY: a new shared mapping of two pages of the vCPU fd.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            2 * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            v.as_raw_fd(),
            0,
        )
    };
    check!(
        p != libc::MAP_FAILED,
        "mmap of two pages: {}",
        std::io::Error::last_os_error()
    );
    let ring = Ring::map(&vm, &v)?;
    // The second page of the mapping and the ring mapped alone are one page.
    ring.set(7, 9);
    // SAFETY: the second page of the mapping made above.
    let (first, last) = unsafe {
        let r = p.cast::<u8>().add(page);
        (
            r.cast::<u32>().read_volatile(),
            r.add(4).cast::<u32>().read_volatile(),
        )
    };
    // SAFETY: the mapping made above.
    unsafe { libc::munmap(p, 2 * page) };
    check_eq!((first, last), (7, 9));
    // Every vCPU of the VM shares the VM's one ring.
    let v1 = vm
        .vm
        .create_vcpu(1)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let other = Ring::map(&vm, &v1)?;
    check_eq!((other.first(), other.last()), (7, 9));
    Ok(Outcome::Pass)
}

fn main() {
    run_or_skip(
        "rkvm_coalesced_mmio",
        host_runs_guests(),
        NO_GUESTS_REASON,
        &[
            ("errno_table", errno_table),
            ("a_bus_holds_1000_zones", a_bus_holds_1000_zones),
            (
                "writes_fill_the_ring_in_order",
                writes_fill_the_ring_in_order,
            ),
            ("a_full_ring_exits", a_full_ring_exits),
            (
                "reads_and_writes_outside_exit",
                reads_and_writes_outside_exit,
            ),
            (
                "unregistered_zones_exit_again",
                unregistered_zones_exit_again,
            ),
            ("bus_order_with_ioeventfds", bus_order_with_ioeventfds),
            (
                "the_vcpu_mapping_has_two_pages",
                the_vcpu_mapping_has_two_pages,
            ),
        ],
    )
}
