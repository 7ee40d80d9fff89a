// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters that must be writable at run time, which the Rust module! macro
 * cannot declare (its parameters have no sysfs file): KVM's halt-polling knobs, with
 * KVM's names, defaults for arm64 and permissions (virt/kvm/kvm_main.c). They appear as
 * /sys/module/rkvm/parameters/halt_poll_ns{,_grow,_grow_start,_shrink}.
 */
#include <linux/compiler.h>
#include <linux/moduleparam.h>

#include "rkvm/helpers.h"

static unsigned int halt_poll_ns = RKVM_HALT_POLL_NS_DEFAULT;
module_param(halt_poll_ns, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns, "Maximum halt-polling time in ns (0: no polling)");

static unsigned int halt_poll_ns_grow = RKVM_HALT_POLL_NS_GROW_DEFAULT;
module_param(halt_poll_ns_grow, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns_grow, "Factor a vCPU's polling time grows by");

static unsigned int halt_poll_ns_grow_start = RKVM_HALT_POLL_NS_GROW_START_DEFAULT;
module_param(halt_poll_ns_grow_start, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns_grow_start, "Polling time in ns growth starts from");

static unsigned int halt_poll_ns_shrink = RKVM_HALT_POLL_NS_SHRINK_DEFAULT;
module_param(halt_poll_ns_shrink, uint, 0644);
MODULE_PARM_DESC(halt_poll_ns_shrink, "Divisor a vCPU's polling time shrinks by");

void rkvm_halt_poll_params(struct rkvm_halt_poll_params *p)
{
	p->max_ns = READ_ONCE(halt_poll_ns);
	p->grow = READ_ONCE(halt_poll_ns_grow);
	p->grow_start = READ_ONCE(halt_poll_ns_grow_start);
	p->shrink = READ_ONCE(halt_poll_ns_shrink);
}
