// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters that must be writable at run time, which the Rust module! macro
 * cannot declare (its parameters have no sysfs file): KVM's halt-polling knobs, with
 * KVM's names, defaults for arm64 and permissions (virt/kvm/kvm_main.c). They appear as
 * /sys/module/rkvm/parameters/halt_poll_ns{,_grow,_grow_start,_shrink}.
 */
#include <linux/compiler.h>
#include <linux/errno.h>
#include <linux/kstrtox.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>

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

/*
 * el2_test (write-only, root): a test knob for CPUs that lose EL2 on nVHE hosts, acting
 * on the CPU the writer runs on (Documentation/nvhe.rst). 1: give EL2 back to the hyp
 * stub behind rkvm's back, the state a resume from power-down leaves when nothing
 * reinstalls the runtime; 2: run the CPU through CPU_PM as a power-down does. Usable
 * only while the nVHE runtime is installed (ENODEV otherwise, and on VHE hosts).
 */
int rkvm_nvhe_el2_test(int cmd);

static DEFINE_MUTEX(el2_test_lock);
static bool el2_test_ready;

void rkvm_el2_test_ready(bool ready)
{
	mutex_lock(&el2_test_lock);
	el2_test_ready = ready;
	mutex_unlock(&el2_test_lock);
}

static int el2_test_set(const char *val, const struct kernel_param *kp)
{
	int cmd, ret = kstrtoint(val, 0, &cmd);

	if (ret)
		return ret;
	mutex_lock(&el2_test_lock);
	ret = el2_test_ready ? rkvm_nvhe_el2_test(cmd) : -ENODEV;
	mutex_unlock(&el2_test_lock);
	return ret;
}

static const struct kernel_param_ops el2_test_ops = {
	.set = el2_test_set,
};
module_param_cb(el2_test, &el2_test_ops, NULL, 0200);
MODULE_PARM_DESC(el2_test, "nVHE test knob, on the writer's CPU: 1 lose EL2, 2 CPU_PM cycle");
