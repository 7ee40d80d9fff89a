// SPDX-License-Identifier: GPL-2.0
/* Wrappers for static inlines; see include/rkvm/helpers.h. */
#include "rkvm/helpers.h"

void rkvm_on_each_cpu(smp_call_func_t func, void *info)
{
	on_each_cpu(func, info, 1);
}
