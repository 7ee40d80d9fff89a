/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of rkvm's bindgen step (Kbuild: rust/sys/bindings_generated.rs), run with the
 * kernel's own C flags: the KVM uapi and the kernel interfaces the Rust `kernel` crate
 * does not bind. The allow-list is in rust/sys/bindgen_parameters.
 */
#include <linux/anon_inodes.h>
#include <linux/eventfd.h>
#include <linux/gfp.h>
#include <linux/kvm.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <asm/cpufeature.h>
#include <asm/neon.h>
#include <asm/virt.h>

#include "rkvm/helpers.h"
