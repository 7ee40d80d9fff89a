// SPDX-License-Identifier: GPL-2.0

//! Pure decisions: register values, encodings and rules, with no kernel dependency.
//!
//! This tree is compiled twice: into `rkvm.ko` (mounted by `rkvm_main.rs`) and on the
//! development host by `host-tests` (mounted with `#[path]`), where `cargo test` runs the
//! `#[cfg(test)]` modules at the bottom of each file. It may use `core` and sibling modules
//! only: no `kernel::`, no allocation and no `unsafe`.

#![forbid(unsafe_code)]

pub(crate) mod caps;
pub(crate) mod coalesced;
pub(crate) mod cpufeature;
pub(crate) mod dirtylog;
pub(crate) mod el1regs;
pub(crate) mod el2abi;
pub(crate) mod esr;
pub(crate) mod events;
pub(crate) mod features;
pub(crate) mod fgt;
pub(crate) mod fp;
pub(crate) mod fwregs;
pub(crate) mod halt_poll;
pub(crate) mod hyplayout;
pub(crate) mod idregs;
pub(crate) mod inject;
pub(crate) mod ioctl;
pub(crate) mod ioeventfd;
pub(crate) mod irqroute;
pub(crate) mod memslot;
pub(crate) mod mmio;
pub(crate) mod pgtable;
pub(crate) mod psci;
pub(crate) mod ptrauth;
pub(crate) mod pvtime;
pub(crate) mod regs;
pub(crate) mod request;
pub(crate) mod smccc_filter;
pub(crate) mod stats;
pub(crate) mod step;
pub(crate) mod sysregs;
pub(crate) mod timer;
pub(crate) mod traps;
pub(crate) mod vgic;
pub(crate) mod vmid;
