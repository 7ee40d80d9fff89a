// SPDX-License-Identifier: GPL-2.0

//! bindgen output for `include/rkvm/bindings_helper.h`: the KVM uapi and the kernel
//! interfaces the `kernel` crate lacks. Re-exported through `sys`; the rest of the module
//! never names these items directly.

#![allow(
    dead_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    unreachable_pub,
    improper_ctypes,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    // The lints the kernel enables beyond `clippy::all`, allowed for generated code as in
    // the kernel's own `rust/bindings/lib.rs`.
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks
)]

include!("bindings_generated.rs");
