// SPDX-License-Identifier: GPL-2.0

//! Host build of rkvm's pure logic; the kernel module is its real consumer.
//!
//! `rust/logic` is mounted here exactly as `rust/rkvm_main.rs` mounts it, so `cargo test`
//! exercises the same source the module runs.

#![no_std]
// Items are used by the kernel build; the host build only tests them.
#![allow(dead_code)]

#[path = "../../rust/logic/mod.rs"]
mod logic;
