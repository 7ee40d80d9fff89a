// SPDX-License-Identifier: GPL-2.0
/* Wrappers for static inlines and macros; see include/rkvm/helpers.h. */
#include <linux/cpu_pm.h>
#include <linux/cpuhotplug.h>
#include <linux/cpumask.h>
#include <linux/entry-virt.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/of.h>
#include <linux/of_irq.h>
#include <linux/panic.h>
#include <linux/percpu.h>
#include <linux/poll.h>
#include <linux/preempt.h>
#include <linux/rseq.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/signal.h>
#include <linux/swap.h>
#include <linux/vmalloc.h>

#include <asm/ptrace.h>

#include "rkvm/helpers.h"

void rkvm_on_each_cpu(smp_call_func_t func, void *info)
{
	on_each_cpu(func, info, 1);
}

/* func(info) on online CPU `cpu`, waiting for it; -EBUSY with interrupts off. */
int rkvm_smp_call_on(unsigned int cpu, smp_call_func_t func, void *info)
{
	if (irqs_disabled())
		return -EBUSY;
	return smp_call_function_single(cpu, func, info, 1);
}

bool rkvm_cpu_online(unsigned int cpu)
{
	return cpu_online(cpu);
}

void rkvm_preempt_disable(void)
{
	preempt_disable();
}

void rkvm_preempt_enable(void)
{
	preempt_enable();
}

unsigned long rkvm_local_irq_save(void)
{
	unsigned long flags;

	local_irq_save(flags);
	return flags;
}

void rkvm_local_irq_restore(unsigned long flags)
{
	local_irq_restore(flags);
}

void rkvm_cond_resched(void)
{
	cond_resched();
}

/* Reschedule, run task work; -EINTR for a signal (KVM's guest-entry work). */
int rkvm_guest_entry_work(void)
{
	return xfer_to_guest_mode_handle_work();
}

/* Before KVM_RUN returns to userspace: the guest-entry work may have consumed an rseq
 * update a context switch asked for, so ask again (KVM's rseq_virt_userspace_exit()). */
void rkvm_rseq_userspace_exit(void)
{
	rseq_virt_userspace_exit();
}

phys_addr_t rkvm_virt_to_phys(const void *addr)
{
	return virt_to_phys(addr);
}

void *rkvm_phys_to_virt(phys_addr_t phys)
{
	return phys_to_virt(phys);
}

phys_addr_t rkvm_page_to_phys(struct page *page)
{
	return page_to_phys(page);
}

struct page *rkvm_phys_to_page(phys_addr_t phys)
{
	return phys_to_page(phys);
}

void *rkvm_page_address(struct page *page)
{
	return page_address(page);
}

struct mm_struct *rkvm_current_mm(void)
{
	return current->mm;
}

/* A reference (not a pin) on the page behind a guest page's user address. */
int rkvm_get_user_page(unsigned long hva, bool write, struct page **page)
{
	return get_user_pages_fast(hva, 1, write ? FOLL_WRITE : 0, page);
}

/* Drops that reference, as KVM's kvm_release_faultin_page(): a page mapped writable at
 * stage 2 is dirty from the host's point of view, since the guest's writes bypass the
 * host's page tables. */
void rkvm_put_user_page(struct page *page, bool dirty)
{
	if (!PageReserved(page)) {
		if (dirty)
			SetPageDirty(page);
		mark_page_accessed(page);
	}
	put_page(page);
}

/* Whether the current process maps hva with a PMD- or PUD-level leaf (a PMD-mapped THP or
 * a hugetlb page of 2 MiB or more), as KVM's get_user_mapping_size(). Lockless, as
 * GUP-fast: interrupts off keep the page tables from being freed under the walk. */
bool rkvm_user_mapping_huge(unsigned long hva)
{
	unsigned long flags;
	bool huge = false;
	pgd_t *pgdp, pgd;
	p4d_t *p4dp, p4d;
	pud_t *pudp, pud;
	pmd_t pmd;

	local_irq_save(flags);
	pgdp = pgd_offset(current->mm, hva);
	pgd = READ_ONCE(*pgdp);
	if (pgd_none(pgd))
		goto out;
	p4dp = p4d_offset_lockless(pgdp, pgd, hva);
	p4d = READ_ONCE(*p4dp);
	if (p4d_none(p4d))
		goto out;
	pudp = pud_offset_lockless(p4dp, p4d, hva);
	pud = READ_ONCE(*pudp);
	if (pud_none(pud))
		goto out;
	if (pud_leaf(pud)) {
		huge = pud_present(pud);
		goto out;
	}
	pmd = pmdp_get_lockless(pmd_offset_lockless(pudp, pud, hva));
	huge = pmd_present(pmd) && pmd_leaf(pmd);
out:
	local_irq_restore(flags);
	return huge;
}

bool rkvm_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

/* KVM_SET_SIGNAL_MASK: the vCPU's mask applies while it is in KVM_RUN (as kvm_sigset_*). */
void rkvm_sigset_activate(sigset_t *set)
{
	sigprocmask(SIG_SETMASK, set, &current->real_blocked);
}

void rkvm_sigset_deactivate(void)
{
	sigprocmask(SIG_SETMASK, &current->real_blocked, NULL);
	sigemptyset(&current->real_blocked);
}

unsigned long rkvm_task_size(void)
{
	return TASK_SIZE;
}

void rkvm_preempt_notifier_init(struct preempt_notifier *notifier, struct preempt_ops *ops)
{
	preempt_notifier_init(notifier, ops);
}

int rkvm_current_tgid(void)
{
	return task_tgid_nr(current);
}

int rkvm_current_pid(void)
{
	return task_pid_nr(current);
}

unsigned int rkvm_num_online_cpus(void)
{
	return num_online_cpus();
}

void *rkvm_vzalloc(unsigned long size)
{
	return vzalloc(size);
}

void rkvm_vfree(const void *addr)
{
	vfree(addr);
}

phys_addr_t rkvm_vmalloc_to_phys(const void *addr)
{
	return PFN_PHYS(vmalloc_to_pfn(addr)) + offset_in_page(addr);
}

int rkvm_cpuhp_setup(int (*online)(unsigned int), int (*offline)(unsigned int))
{
	return cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "rkvm/el2:online", online, offline);
}

void rkvm_cpuhp_remove(int state)
{
	cpuhp_remove_state(state);
}

/*
 * Not called but returned to, at EL1h with DAIF masked and the host's context back: an
 * exception rkvm's nVHE EL2 runtime could not take (hyp.S: __rkvm_hyp_panic), as KVM's
 * hyp_panic enters nvhe_hyp_panic_handler. EL2 state is not to be trusted any more, so
 * this panics as KVM does. A hyp VA is the kernel address with its top 16 bits clear.
 */
void __noreturn rkvm_nvhe_hyp_panic(u64 esr, u64 spsr, u64 elr, u64 far, u64 hpfar, u64 par)
{
	u64 mode = spsr & PSR_MODE_MASK;

	if (mode == PSR_MODE_EL2h || mode == PSR_MODE_EL2t)
		pr_emerg("rkvm: exception in the EL2 runtime at %pS\n",
			 (void *)(elr | GENMASK_ULL(63, 48)));
	else
		pr_emerg("rkvm: unexpected exception from EL%llu taken to the EL2 runtime, at %pS\n",
			 (mode >> 2) & 3, (void *)elr);
	panic("rkvm: EL2 panic on CPU %u\nPS:%08llx PC:%016llx ESR:%016llx\nFAR:%016llx HPFAR:%016llx PAR:%016llx\n",
	      raw_smp_processor_id(), spsr, elr, esr, far, hpfar, par);
}

/*
 * CPU_PM (power-down idle states, suspend): the callback runs on the CPU concerned with
 * interrupts off, with true before it may lose its state (CPU_PM_ENTER) and false once
 * it runs again or did not go down (CPU_PM_EXIT, CPU_PM_ENTER_FAILED), as KVM's
 * hyp_init_cpu_pm_notifier. Without CONFIG_CPU_PM no such event exists and registering
 * does nothing.
 */
static void (*rkvm_cpu_pm_cb)(bool enter);

static int rkvm_cpu_pm_notify(struct notifier_block *nb, unsigned long cmd, void *v)
{
	switch (cmd) {
	case CPU_PM_ENTER:
		rkvm_cpu_pm_cb(true);
		return NOTIFY_OK;
	case CPU_PM_ENTER_FAILED:
	case CPU_PM_EXIT:
		rkvm_cpu_pm_cb(false);
		return NOTIFY_OK;
	default:
		return NOTIFY_DONE;
	}
}

static struct notifier_block rkvm_cpu_pm_nb = {
	.notifier_call = rkvm_cpu_pm_notify,
};

int rkvm_cpu_pm_register(void (*cb)(bool enter))
{
	rkvm_cpu_pm_cb = cb;
	return cpu_pm_register_notifier(&rkvm_cpu_pm_nb);
}

void rkvm_cpu_pm_unregister(void)
{
	cpu_pm_unregister_notifier(&rkvm_cpu_pm_nb);
}

/*
 * Runs this CPU through CPU_PM as a power-down does, with `lose_state` standing for the
 * power-down itself: the kernel's cpu_pm_enter()/cpu_pm_exit() where it has CPU_PM,
 * rkvm's own notifier otherwise (the only one there would be).
 */
int rkvm_cpu_pm_cycle(void (*lose_state)(void))
{
	unsigned long flags;
	int ret = 0;

	local_irq_save(flags);
	if (IS_ENABLED(CONFIG_CPU_PM)) {
		ret = cpu_pm_enter();
		if (!ret) {
			lose_state();
			cpu_pm_exit();
		}
	} else {
		rkvm_cpu_pm_notify(&rkvm_cpu_pm_nb, CPU_PM_ENTER, NULL);
		lose_state();
		rkvm_cpu_pm_notify(&rkvm_cpu_pm_nb, CPU_PM_EXIT, NULL);
	}
	local_irq_restore(flags);
	return ret;
}

/* Whether the scheduler accounts run delays, the source of PV stolen time. */
bool rkvm_sched_info_on(void)
{
	return IS_ENABLED(CONFIG_SCHED_INFO);
}

/* Nanoseconds the current task has spent runnable but waiting for a CPU. */
u64 rkvm_current_run_delay(void)
{
#ifdef CONFIG_SCHED_INFO
	return READ_ONCE(current->sched_info.run_delay);
#else
	return 0;
#endif
}

/* The two halves of the rcuwait pattern around schedule() (KVM's kvm_vcpu_block). */
void rkvm_set_current_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void rkvm_set_current_running(void)
{
	__set_current_state(TASK_RUNNING);
}

/*
 * Per-CPU interrupts (rust/sys/irq.rs). One per-CPU cookie serves every rkvm per-CPU
 * IRQ: the Rust side finds its handler by IRQ number.
 */
static DEFINE_PER_CPU(int, rkvm_percpu_irq_cookie);

int rkvm_request_percpu_irq(unsigned int irq, irq_handler_t handler, const char *name)
{
	return request_percpu_irq(irq, handler, name, &rkvm_percpu_irq_cookie);
}

void rkvm_free_percpu_irq(unsigned int irq)
{
	free_percpu_irq(irq, &rkvm_percpu_irq_cookie);
}

int rkvm_cpuhp_setup_state_nocalls(const char *name, int (*startup)(unsigned int),
				   int (*teardown)(unsigned int))
{
	return cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, name, startup, teardown);
}

void rkvm_cpuhp_remove_state_nocalls(int state)
{
	cpuhp_remove_state_nocalls(state);
}

/* The GICv3 maintenance interrupt as the GIC driver hands it to KVM (gic_of_init). */
unsigned int rkvm_gic_v3_maintenance_irq(void)
{
	struct device_node *np = of_find_compatible_node(NULL, NULL, "arm,gic-v3");
	unsigned int irq;

	if (!np)
		return 0;
	irq = irq_of_parse_and_map(np, 0);
	of_node_put(np);
	return irq;
}

/*
 * irqfd (rust/sys/eventfd.rs): a wait-queue entry on an eventfd, registered through the
 * file's poll method as KVM's irqfd does. The first waiter with priority is exclusive,
 * so one eventfd drives at most one irqfd (-EBUSY otherwise, as KVM).
 */
static void rkvm_poll_queue_proc(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct rkvm_poll_entry *e = container_of(pt, struct rkvm_poll_entry, pt);

	e->err = add_wait_queue_priority_exclusive(wqh, &e->wait);
	if (!e->err)
		e->wqh = wqh;
}

int rkvm_poll_register(int fd, struct rkvm_poll_entry *e, wait_queue_func_t func,
		       unsigned int *events)
{
	struct eventfd_ctx *ctx;
	CLASS(fd, f)(fd);

	if (fd_empty(f))
		return -EBADF;
	ctx = eventfd_ctx_fileget(fd_file(f));
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	e->ctx = ctx;
	e->wqh = NULL;
	e->err = 0;
	init_waitqueue_func_entry(&e->wait, func);
	init_poll_funcptr(&e->pt, rkvm_poll_queue_proc);
	*events = vfs_poll(fd_file(f), &e->pt);
	if (!e->wqh) {
		eventfd_ctx_put(ctx);
		e->ctx = NULL;
		return e->err ? e->err : -EINVAL;
	}
	return 0;
}

void rkvm_poll_unregister(struct rkvm_poll_entry *e)
{
	u64 cnt;

	eventfd_ctx_remove_wait_queue(e->ctx, &e->wait, &cnt);
	eventfd_ctx_put(e->ctx);
}

void rkvm_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}

/*
 * Whether busy-waiting still pays for the current task: nothing else runnable on this
 * CPU and no reschedule asked for (KVM's kvm_vcpu_can_poll without the deadline).
 */
bool rkvm_can_poll(void)
{
	return single_task_running() && !need_resched();
}
