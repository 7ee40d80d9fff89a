// SPDX-License-Identifier: GPL-2.0

//! Layer 1: kernel interfaces that the Rust `kernel` crate (7.3) does not wrap.
//!
//! This is one of the few places with FFI: the bindgen output, the C helpers, and small
//! safe wrappers over them. Everything above this layer uses the wrappers.

mod bindings;
pub(crate) mod cpu;
pub(crate) mod misc;

pub(crate) use bindings::KVM_API_VERSION;
