// SPDX-License-Identifier: GPL-2.0

//! Pure decisions: register values, encodings and rules, with no kernel dependency.
//!
//! This tree is compiled twice: into `rkvm.ko` (mounted by `rkvm_main.rs`) and on the
//! development host by `host-tests` (mounted with `#[path]`), where `cargo test` runs the
//! `#[cfg(test)]` modules at the bottom of each file. It may use `core` and sibling modules
//! only: no `kernel::`, no allocation and no `unsafe`.

#![forbid(unsafe_code)]

pub(crate) mod caps;
pub(crate) mod cpufeature;
// Syndrome decoding is consumed by the exit handler, which arrives with the run loop.
#[allow(dead_code)]
pub(crate) mod esr;
// The sized encoders serve the VM and vCPU commands, which arrive with the run loop.
#[allow(dead_code)]
pub(crate) mod ioctl;
