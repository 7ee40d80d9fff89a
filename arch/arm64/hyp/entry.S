/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest entry and exit for the VHE backend: general-purpose registers and SP_EL0 only.
 * Everything else (EL1 and EL2 system registers, traps, stage 2) is switched in Rust
 * before __rkvm_vhe_guest_enter and after it returns (rust/hyp/vhe.rs).
 *
 * KVM counterpart: arch/arm64/kvm/hyp/entry.S (__guest_enter, __guest_exit) and
 * hyp/hyp-entry.S (the vectors).
 *
 * The host frame lives on the kernel stack. Exceptions from a lower EL are taken on
 * SP_EL2, which on a VHE host is the kernel stack pointer the entry left behind, so the
 * exit vectors find the frame at [sp] without any per-CPU lookup.
 */
#include <linux/linkage.h>
#include <asm/alternative.h>
#include <asm/assembler.h>
/* GPR_X0, GPR_SP_EL0 (struct GuestGprs) and the EXIT_* codes: rust/logic/el2abi.rs. */
#include <rkvm/asm-offsets.h>

#define GPR(n)		(GPR_X0 + (n) * 8)

/*
 * Host frame, built by the entry: x18..x30, the GuestGprs pointer, the host SP_EL0, the
 * guest's APIA key pointer (0 without pointer authentication) and the host's APIA key.
 */
#define FRAME_X18	0
#define FRAME_X30_CTX	96	/* x30, then the context pointer */
#define FRAME_CTX	104
#define FRAME_SP_EL0	112
#define FRAME_APIA_PTR	120
#define FRAME_HOST_APIA	128
#define FRAME_SIZE	144

#define RKVM_APIAKEYLO_EL1	s3_0_c2_c1_0
#define RKVM_APIAKEYHI_EL1	s3_0_c2_c1_1

	.text

/*
 * u64 __rkvm_vhe_guest_enter(struct GuestGprs *gprs, u64 apia[2])
 *
 * Called with interrupts masked, the guest's ELR_EL2/SPSR_EL2, EL1 state, stage 2 and
 * traps already loaded, and VBAR_EL2 pointing at __rkvm_vhe_vectors. Returns an exit code
 * once the guest takes an exception to EL2; ESR_EL2 and friends are still live then.
 *
 * apia: the guest's APIAKEYLO/HI_EL1 for a vCPU with pointer authentication, else NULL.
 * The host kernel signs return addresses with APIA, so its key is swapped here, where no
 * frame signed with one key returns under the other; the other keys move at vcpu_load.
 */
SYM_FUNC_START(__rkvm_vhe_guest_enter)
	sub	sp, sp, #FRAME_SIZE
	stp	x18, x19, [sp, #FRAME_X18]
	stp	x20, x21, [sp, #16]
	stp	x22, x23, [sp, #32]
	stp	x24, x25, [sp, #48]
	stp	x26, x27, [sp, #64]
	stp	x28, x29, [sp, #80]
	stp	x30, x0, [sp, #FRAME_X30_CTX]
	str	x1, [sp, #FRAME_APIA_PTR]
	cbz	x1, 1f
	mrs	x2, RKVM_APIAKEYLO_EL1
	mrs	x3, RKVM_APIAKEYHI_EL1
	stp	x2, x3, [sp, #FRAME_HOST_APIA]
	ldp	x2, x3, [x1]
	msr	RKVM_APIAKEYLO_EL1, x2
	msr	RKVM_APIAKEYHI_EL1, x3
1:
	/* SP_EL0 holds the host's `current`: swapped here, never visible to Rust. */
	mrs	x1, sp_el0
	str	x1, [sp, #FRAME_SP_EL0]
	ldr	x1, [x0, #GPR_SP_EL0]
	msr	sp_el0, x1

	ldp	x2, x3, [x0, #GPR(2)]
	ldp	x4, x5, [x0, #GPR(4)]
	ldp	x6, x7, [x0, #GPR(6)]
	ldp	x8, x9, [x0, #GPR(8)]
	ldp	x10, x11, [x0, #GPR(10)]
	ldp	x12, x13, [x0, #GPR(12)]
	ldp	x14, x15, [x0, #GPR(14)]
	ldp	x16, x17, [x0, #GPR(16)]
	ldp	x18, x19, [x0, #GPR(18)]
	ldp	x20, x21, [x0, #GPR(20)]
	ldp	x22, x23, [x0, #GPR(22)]
	ldp	x24, x25, [x0, #GPR(24)]
	ldp	x26, x27, [x0, #GPR(26)]
	ldp	x28, x29, [x0, #GPR(28)]
	ldr	x30, [x0, #GPR(30)]
	ldp	x0, x1, [x0, #GPR(0)]
	eret
	sb
SYM_FUNC_END(__rkvm_vhe_guest_enter)

/*
 * Common exit: the vector pushed the guest's x0/x1 below the frame and put the exit
 * code in x1. Saves the guest's registers and returns to __rkvm_vhe_guest_enter's caller.
 */
SYM_CODE_START_LOCAL(__rkvm_vhe_guest_exit)
	/*
	 * The exception left PSTATE.PAN as the guest had it (the host runs with
	 * SCTLR_EL2.SPAN set): a guest with PAN clear would otherwise hand the host kernel
	 * unrestricted access to user memory until its next exception return. Set it where
	 * the kernel uses PAN, as KVM's __guest_exit does.
	 */
	ALTERNATIVE(nop, SET_PSTATE_PAN(1), ARM64_HAS_PAN)
	ldr	x0, [sp, #16 + FRAME_CTX]
	stp	x2, x3, [x0, #GPR(2)]
	stp	x4, x5, [x0, #GPR(4)]
	stp	x6, x7, [x0, #GPR(6)]
	stp	x8, x9, [x0, #GPR(8)]
	stp	x10, x11, [x0, #GPR(10)]
	stp	x12, x13, [x0, #GPR(12)]
	stp	x14, x15, [x0, #GPR(14)]
	stp	x16, x17, [x0, #GPR(16)]
	stp	x18, x19, [x0, #GPR(18)]
	stp	x20, x21, [x0, #GPR(20)]
	stp	x22, x23, [x0, #GPR(22)]
	stp	x24, x25, [x0, #GPR(24)]
	stp	x26, x27, [x0, #GPR(26)]
	stp	x28, x29, [x0, #GPR(28)]
	str	x30, [x0, #GPR(30)]
	mov	x19, x1
	ldp	x2, x3, [sp], #16
	stp	x2, x3, [x0, #GPR(0)]
	mrs	x2, sp_el0
	str	x2, [x0, #GPR_SP_EL0]
	ldr	x2, [sp, #FRAME_SP_EL0]
	msr	sp_el0, x2
	/* The guest's APIA key out, the host's back before any signed frame returns. */
	ldr	x2, [sp, #FRAME_APIA_PTR]
	cbz	x2, 1f
	mrs	x3, RKVM_APIAKEYLO_EL1
	mrs	x4, RKVM_APIAKEYHI_EL1
	stp	x3, x4, [x2]
	ldp	x3, x4, [sp, #FRAME_HOST_APIA]
	msr	RKVM_APIAKEYLO_EL1, x3
	msr	RKVM_APIAKEYHI_EL1, x4
	isb
1:
	mov	x0, x19
	ldp	x18, x19, [sp, #FRAME_X18]
	ldp	x20, x21, [sp, #16]
	ldp	x22, x23, [sp, #32]
	ldp	x24, x25, [sp, #48]
	ldp	x26, x27, [sp, #64]
	ldp	x28, x29, [sp, #80]
	ldr	x30, [sp, #FRAME_X30_CTX]
	add	sp, sp, #FRAME_SIZE
	ret
SYM_CODE_END(__rkvm_vhe_guest_exit)

.macro exit_vector code
	.align 7
	stp	x0, x1, [sp, #-16]!
	mov	x1, #\code
	b	__rkvm_vhe_guest_exit
.endm

/* An exception taken at EL2 itself while rkvm's vectors are live is a host bug. */
.macro host_vector
	.align 7
	mrs	x0, esr_el2
	mrs	x1, elr_el2
	b	__rkvm_vhe_host_exception
.endm

/*
 * EL2 vectors installed while a guest runs. Every exception from the guest (EL1 or EL0,
 * AArch64 or AArch32) leaves the guest.
 */
	.align 11
SYM_CODE_START(__rkvm_vhe_vectors)
	host_vector			/* current EL, SP_EL0: sync */
	host_vector			/* irq */
	host_vector			/* fiq */
	host_vector			/* serror */
	host_vector			/* current EL, SP_ELx: sync */
	host_vector			/* irq */
	host_vector			/* fiq */
	host_vector			/* serror */
	exit_vector EXIT_SYNC		/* lower EL, AArch64 */
	exit_vector EXIT_IRQ
	exit_vector EXIT_FIQ
	exit_vector EXIT_SERROR
	exit_vector EXIT_SYNC		/* lower EL, AArch32 */
	exit_vector EXIT_IRQ
	exit_vector EXIT_FIQ
	exit_vector EXIT_SERROR
SYM_CODE_END(__rkvm_vhe_vectors)

/* Puts back the host's vectors, then reports the exception (never returns). */
SYM_CODE_START_LOCAL(__rkvm_vhe_host_exception)
	adr_l	x2, __rkvm_host_vbar
	ldr	x2, [x2]
	msr	vbar_el2, x2
	isb
	bl	rkvm_hyp_panic
SYM_CODE_END(__rkvm_vhe_host_exception)

/*
 * void __rkvm_fpsimd_save(struct user_fpsimd_state *st);
 * void __rkvm_fpsimd_load(const struct user_fpsimd_state *st);
 * V0-V31, FPSR, FPCR, in the layout the kernel uses for kernel-mode FP state.
 */
SYM_FUNC_START(__rkvm_fpsimd_save)
	stp	q0, q1, [x0, #16 * 0]
	stp	q2, q3, [x0, #16 * 2]
	stp	q4, q5, [x0, #16 * 4]
	stp	q6, q7, [x0, #16 * 6]
	stp	q8, q9, [x0, #16 * 8]
	stp	q10, q11, [x0, #16 * 10]
	stp	q12, q13, [x0, #16 * 12]
	stp	q14, q15, [x0, #16 * 14]
	stp	q16, q17, [x0, #16 * 16]
	stp	q18, q19, [x0, #16 * 18]
	stp	q20, q21, [x0, #16 * 20]
	stp	q22, q23, [x0, #16 * 22]
	stp	q24, q25, [x0, #16 * 24]
	stp	q26, q27, [x0, #16 * 26]
	stp	q28, q29, [x0, #16 * 28]
	stp	q30, q31, [x0, #16 * 30]
	mrs	x1, fpsr
	str	w1, [x0, #16 * 32]
	mrs	x1, fpcr
	str	w1, [x0, #16 * 32 + 4]
	ret
SYM_FUNC_END(__rkvm_fpsimd_save)

SYM_FUNC_START(__rkvm_fpsimd_load)
	ldp	q0, q1, [x0, #16 * 0]
	ldp	q2, q3, [x0, #16 * 2]
	ldp	q4, q5, [x0, #16 * 4]
	ldp	q6, q7, [x0, #16 * 6]
	ldp	q8, q9, [x0, #16 * 8]
	ldp	q10, q11, [x0, #16 * 10]
	ldp	q12, q13, [x0, #16 * 12]
	ldp	q14, q15, [x0, #16 * 14]
	ldp	q16, q17, [x0, #16 * 16]
	ldp	q18, q19, [x0, #16 * 18]
	ldp	q20, q21, [x0, #16 * 20]
	ldp	q22, q23, [x0, #16 * 22]
	ldp	q24, q25, [x0, #16 * 24]
	ldp	q26, q27, [x0, #16 * 26]
	ldp	q28, q29, [x0, #16 * 28]
	ldp	q30, q31, [x0, #16 * 30]
	ldr	w1, [x0, #16 * 32]
	msr	fpsr, x1
	ldr	w1, [x0, #16 * 32 + 4]
	msr	fpcr, x1
	ret
SYM_FUNC_END(__rkvm_fpsimd_load)

	.data
	.align 3
/* The host's VBAR_EL2, recorded at module load (the same on every CPU). */
SYM_DATA(__rkvm_host_vbar, .quad 0)
