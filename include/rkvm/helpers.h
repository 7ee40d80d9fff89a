/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rust/helpers.c: one-line wrappers for kernel static inlines and macros that Rust cannot
 * call directly. No logic lives there.
 */
#ifndef RKVM_HELPERS_H
#define RKVM_HELPERS_H

#include <linux/interrupt.h>
#include <linux/mm_types.h>
#include <linux/poll.h>
#include <linux/signal_types.h>
#include <linux/smp.h>
#include <linux/types.h>

void rkvm_on_each_cpu(smp_call_func_t func, void *info);
int rkvm_smp_call_on(unsigned int cpu, smp_call_func_t func, void *info);
bool rkvm_cpu_online(unsigned int cpu);
void rkvm_preempt_disable(void);
void rkvm_preempt_enable(void);
unsigned long rkvm_local_irq_save(void);
void rkvm_local_irq_restore(unsigned long flags);
void rkvm_cond_resched(void);
int rkvm_guest_entry_work(void);
void rkvm_rseq_userspace_exit(void);
phys_addr_t rkvm_virt_to_phys(const void *addr);
void *rkvm_phys_to_virt(phys_addr_t phys);
phys_addr_t rkvm_page_to_phys(struct page *page);
struct page *rkvm_phys_to_page(phys_addr_t phys);
void *rkvm_page_address(struct page *page);
struct mm_struct *rkvm_current_mm(void);
int rkvm_get_user_page(unsigned long hva, bool write, struct page **page);
void rkvm_put_user_page(struct page *page, bool dirty);
bool rkvm_user_mapping_huge(unsigned long hva);
struct mmu_notifier_range;
bool rkvm_mmu_notifier_range_blockable(const struct mmu_notifier_range *range);
void rkvm_sigset_activate(sigset_t *set);
void rkvm_sigset_deactivate(void);
unsigned long rkvm_task_size(void);
unsigned int rkvm_num_online_cpus(void);
int rkvm_current_tgid(void);
int rkvm_current_pid(void);
void rkvm_set_current_interruptible(void);
void rkvm_set_current_running(void);
int rkvm_request_percpu_irq(unsigned int irq, irq_handler_t handler, const char *name);
void rkvm_free_percpu_irq(unsigned int irq);
int rkvm_cpuhp_setup_state_nocalls(const char *name, int (*startup)(unsigned int),
				   int (*teardown)(unsigned int));
void rkvm_cpuhp_remove_state_nocalls(int state);
unsigned int rkvm_gic_v3_maintenance_irq(void);
struct eventfd_ctx;
struct rkvm_poll_entry {
	poll_table pt;
	wait_queue_entry_t wait;
	wait_queue_head_t *wqh;
	struct eventfd_ctx *ctx;
	int err;
};
int rkvm_poll_register(int fd, struct rkvm_poll_entry *e, wait_queue_func_t func,
		       unsigned int *events);
void rkvm_poll_unregister(struct rkvm_poll_entry *e);
void rkvm_eventfd_signal(struct eventfd_ctx *ctx);
struct preempt_notifier;
struct preempt_ops;
void rkvm_preempt_notifier_init(struct preempt_notifier *notifier, struct preempt_ops *ops);

void *rkvm_vzalloc(unsigned long size);
void rkvm_vfree(const void *addr);
phys_addr_t rkvm_vmalloc_to_phys(const void *addr);
int rkvm_cpuhp_setup(int (*online)(unsigned int), int (*offline)(unsigned int));
void rkvm_cpuhp_remove(int state);
void __noreturn rkvm_nvhe_hyp_panic(u64 esr, u64 spsr, u64 elr, u64 far, u64 hpfar, u64 par);
int rkvm_cpu_pm_register(void (*cb)(bool enter));
void rkvm_cpu_pm_unregister(void);
int rkvm_cpu_pm_cycle(void (*lose_state)(void));
void rkvm_el2_test_ready(bool ready);
bool rkvm_sched_info_on(void);
u64 rkvm_current_run_delay(void);
bool rkvm_can_poll(void);

/* KVM's halt-polling module parameters (rust/params.c) and their defaults on arm64. */
#define RKVM_HALT_POLL_NS_DEFAULT 500000U
#define RKVM_HALT_POLL_NS_GROW_DEFAULT 2U
#define RKVM_HALT_POLL_NS_GROW_START_DEFAULT 10000U
#define RKVM_HALT_POLL_NS_SHRINK_DEFAULT 2U
struct rkvm_halt_poll_params {
	unsigned int max_ns;
	unsigned int grow;
	unsigned int grow_start;
	unsigned int shrink;
};
void rkvm_halt_poll_params(struct rkvm_halt_poll_params *p);

#endif
