/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rust/helpers.c: one-line wrappers for kernel static inlines and macros that Rust cannot
 * call directly. No logic lives there.
 */
#ifndef RKVM_HELPERS_H
#define RKVM_HELPERS_H

#include <linux/smp.h>

void rkvm_on_each_cpu(smp_call_func_t func, void *info);

#endif
