/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rkvm's EL2 runtime for nVHE hosts (kernel at EL1, the kernel's hyp stub at EL2).
 *
 * Everything here runs at EL2 with rkvm's own stage-1 tables (TTBR0_EL2), at "hyp VAs":
 * the kernel address with the top 16 bits cleared (Documentation/nvhe.rst). All of it is
 * position independent: no call into the kernel, no absolute address, only PC-relative
 * references inside these sections (scripts/check-hyp-object.sh enforces this over the
 * object file). What EL2 needs at run time it finds through TPIDR_EL2, the hyp VA of this
 * CPU's `struct HypCpu` (rust/hyp/nvhe.rs), whose layout the HC_* offsets below follow.
 *
 * Two sections:
 * - .rkvm.hyp.idmap.text: one page, mapped at EL2 both at its hyp VA and at its physical
 *   address, so it can run while the EL2 MMU is turned on or off (install, teardown).
 * - .rkvm.hyp.text: the vectors, the hyp-call dispatcher and the world switch.
 *
 * KVM counterpart: arch/arm64/kvm/hyp/nvhe/{hyp-init.S,host.S,hyp-main.c,switch.c}.
 */
#include <linux/linkage.h>
#include <asm/assembler.h>

#include <asm/ptrace.h>
#include <asm/virt.h>

/*
 * The HypCpu and VgicCpuIf offsets (HC_*, GIC_*, EL1_*), the exit codes, the feature
 * bits and rkvm's hyp-call numbers: generated from rust/logic/el2abi.rs.
 */
#include <rkvm/asm-offsets.h>

#define HC_GPR(n)		(HC_GPRS + (n) * 8)
/* LDP/STP reach only 504 bytes: the fields past HI are addressed from base + HI. */
#define HI			512
#define H(off)			((off) - HI)

/* Registers by encoding, so the assembler accepts them at any architecture level. */
#define RKVM_TCR2_EL1		s3_0_c2_c0_3
#define RKVM_PIRE0_EL1		s3_0_c10_c2_2
#define RKVM_PIR_EL1		s3_0_c10_c2_3
#define RKVM_POR_EL1		s3_0_c10_c2_4
#define RKVM_SCTLR2_EL1		s3_0_c1_c0_3
#define RKVM_VDISR_EL2		s3_4_c12_c1_1
#define RKVM_APIAKEYLO_EL1	s3_0_c2_c1_0
#define RKVM_APIAKEYHI_EL1	s3_0_c2_c1_1
#define RKVM_VSESR_EL2		s3_4_c5_c2_3
#define RKVM_ICH_VTR_EL2		s3_4_c12_c11_1
#define ICH_HCR_EL2		s3_4_c12_c11_0
#define ICH_MISR_EL2		s3_4_c12_c11_2
#define ICH_EISR_EL2		s3_4_c12_c11_3
#define ICH_ELRSR_EL2		s3_4_c12_c11_5
#define ICH_VMCR_EL2		s3_4_c12_c11_7
#define ICH_AP0R_EL2(n)		s3_4_c12_c8_##n
#define ICH_AP1R_EL2(n)		s3_4_c12_c9_##n
#define ICC_SRE_EL2		s3_4_c12_c9_5
#define ICC_SRE_EL2_ENABLE	(1 << 3)
#define RKVM_HCRX_EL2		s3_4_c1_c2_2
#define RKVM_HFGRTR_EL2		s3_4_c1_c1_4
#define RKVM_HFGWTR_EL2		s3_4_c1_c1_5
#define RKVM_HFGITR_EL2		s3_4_c1_c1_6
#define RKVM_HDFGRTR_EL2	s3_4_c3_c1_4
#define RKVM_HDFGWTR_EL2	s3_4_c3_c1_5
#define RKVM_HFGRTR2_EL2	s3_4_c3_c1_2
#define RKVM_HFGWTR2_EL2	s3_4_c3_c1_3
#define RKVM_HFGITR2_EL2	s3_4_c3_c1_7
#define RKVM_HDFGRTR2_EL2	s3_4_c3_c1_0
#define RKVM_HDFGWTR2_EL2	s3_4_c3_c1_1

/*
 * HCRX_EL2 and the fine-grained trap registers (HypCpu.*_hcrx, *_fgt, in
 * logic::fgt::FgtReg order), as far as \feat (HypCpu.features) says the CPU has them.
 * \fgt points at the ten-entry array, \hcrx is the address of the HCRX value;
 * \t0, \t1 are scratch.
 */
.macro el2_traps_save feat, hcrx, fgt, t0, t1
	tbz	\feat, #FEAT_HCX, 6f
	mrs	\t0, RKVM_HCRX_EL2
	str	\t0, [\hcrx]
6:	tbz	\feat, #FEAT_FGT, 8f
	mrs	\t0, RKVM_HFGRTR_EL2
	mrs	\t1, RKVM_HFGWTR_EL2
	stp	\t0, \t1, [\fgt]
	mrs	\t0, RKVM_HFGITR_EL2
	mrs	\t1, RKVM_HDFGRTR_EL2
	stp	\t0, \t1, [\fgt, #16]
	mrs	\t0, RKVM_HDFGWTR_EL2
	str	\t0, [\fgt, #32]
	tbz	\feat, #FEAT_FGT2, 8f
	mrs	\t0, RKVM_HFGRTR2_EL2
	mrs	\t1, RKVM_HFGWTR2_EL2
	stp	\t0, \t1, [\fgt, #40]
	mrs	\t0, RKVM_HFGITR2_EL2
	mrs	\t1, RKVM_HDFGRTR2_EL2
	stp	\t0, \t1, [\fgt, #56]
	mrs	\t0, RKVM_HDFGWTR2_EL2
	str	\t0, [\fgt, #72]
8:
.endm

.macro el2_traps_load feat, hcrx, fgt, t0, t1
	tbz	\feat, #FEAT_HCX, 6f
	ldr	\t0, [\hcrx]
	msr	RKVM_HCRX_EL2, \t0
6:	tbz	\feat, #FEAT_FGT, 8f
	ldp	\t0, \t1, [\fgt]
	msr	RKVM_HFGRTR_EL2, \t0
	msr	RKVM_HFGWTR_EL2, \t1
	ldp	\t0, \t1, [\fgt, #16]
	msr	RKVM_HFGITR_EL2, \t0
	msr	RKVM_HDFGRTR_EL2, \t1
	ldr	\t0, [\fgt, #32]
	msr	RKVM_HDFGWTR_EL2, \t0
	tbz	\feat, #FEAT_FGT2, 8f
	ldp	\t0, \t1, [\fgt, #40]
	msr	RKVM_HFGRTR2_EL2, \t0
	msr	RKVM_HFGWTR2_EL2, \t1
	ldp	\t0, \t1, [\fgt, #56]
	msr	RKVM_HFGITR2_EL2, \t0
	msr	RKVM_HDFGRTR2_EL2, \t1
	ldr	\t0, [\fgt, #72]
	msr	RKVM_HDFGWTR2_EL2, \t0
8:
.endm

/* ICH_LR<n>_EL2 for n = 0..15: CRm 12 + n / 8, op2 n % 8. */
.macro for_each_lr_desc m
	\m 15, 13, 7
	\m 14, 13, 6
	\m 13, 13, 5
	\m 12, 13, 4
	\m 11, 13, 3
	\m 10, 13, 2
	\m 9, 13, 1
	\m 8, 13, 0
	\m 7, 12, 7
	\m 6, 12, 6
	\m 5, 12, 5
	\m 4, 12, 4
	\m 3, 12, 3
	\m 2, 12, 2
	\m 1, 12, 1
	\m 0, 12, 0
.endm
/* One 4-byte step per LR: clear it. */
.macro lr_clear n, crm, op2
	msr	s3_4_c12_c\crm\()_\op2, xzr
.endm
/* Two steps (8 bytes): load LR n from the VgicCpuIf at x16. */
.macro lr_load n, crm, op2
	ldr	x4, [x16, #GIC_LR + \n * 8]
	msr	s3_4_c12_c\crm\()_\op2, x4
.endm
/* Three steps (12 bytes): save LR n to the VgicCpuIf at x16 and clear it. */
.macro lr_save n, crm, op2
	mrs	x4, s3_4_c12_c\crm\()_\op2
	str	x4, [x16, #GIC_LR + \n * 8]
	msr	s3_4_c12_c\crm\()_\op2, xzr
.endm

/* Exit codes (rust/hyp/context.rs: ExitCode). */

#define HCR_VM_BIT		0
#define HCR_VSE_BIT		8
#define ESR_EC_SHIFT		26
#define ESR_EC_HVC64		0x16

/*
 * An EL1 register block (struct El1Block): the switched registers of
 * rust/logic/el1regs.rs at their slots, then SP_EL1, ELR_EL1, SPSR_EL1 and the virtual
 * timer's CTL and CVAL. Uses x2 and x3.
 */
#define SAVE_EL1_PAIR(a, b)	mrs x2, a ; mrs x3, b ; stp x2, x3, [\base, #\off + EL1_SLOT_##a] ;
#define SAVE_EL1_ONE(a)		mrs x2, a ; str x2, [\base, #\off + EL1_SLOT_##a] ;
#define LOAD_EL1_PAIR(a, b)	ldp x2, x3, [\base, #\off + EL1_SLOT_##a] ; msr a, x2 ; msr b, x3 ;
#define LOAD_EL1_ONE(a)		ldr x2, [\base, #\off + EL1_SLOT_##a] ; msr a, x2 ;

.macro save_el1 base, off
	RKVM_EL1_SWITCHED(SAVE_EL1_PAIR, SAVE_EL1_ONE)
	mrs	x2, sp_el1
	mrs	x3, elr_el1
	stp	x2, x3, [\base, #\off + EL1_SP]
	mrs	x2, spsr_el1
	mrs	x3, cntv_ctl_el0
	stp	x2, x3, [\base, #\off + EL1_SPSR]
	mrs	x2, cntv_cval_el0
	str	x2, [\base, #\off + EL1_CNTV_CVAL]
.endm

.macro load_el1 base, off
	RKVM_EL1_SWITCHED(LOAD_EL1_PAIR, LOAD_EL1_ONE)
	ldp	x2, x3, [\base, #\off + EL1_SP]
	msr	sp_el1, x2
	msr	elr_el1, x3
	ldp	x2, x3, [\base, #\off + EL1_SPSR]
	msr	spsr_el1, x2
	ldr	x2, [\base, #\off + EL1_CNTV_CVAL]
	msr	cntv_cval_el0, x2
	msr	cntv_ctl_el0, x3
.endm


/*
 * The guest's GICv3 CPU interface (struct VgicCpuIf in HypCpu): VMCR and the active
 * priorities on every entry and exit (ICH_* registers exist only at EL2, so EL1 cannot
 * keep them loaded), the list registers and ICH_HCR_EL2 only when `used_lrs` != 0.
 * Otherwise ICH_HCR_EL2 gets HC_GIC_IDLE_HCR (a VM without a vGIC: its ICC_* traps)
 * or'd with the saved ICH_HCR (a VM with one: at most TDIR), and is cleared on exit.
 * ICC_SRE_EL2.Enable is clear while the guest runs, so its ICC_SRE_EL1 accesses trap:
 * the register is the host kernel's own (KVM's __vgic_v3_activate_traps). The bit may be
 * RAO/WI (it is under QEMU); where it is not, a guest could otherwise turn off the
 * host's system-register interface.
 * x0 = HypCpu, x17 = HypCpu + HI; uses x2-x6, x16. `used_lrs` is clamped to the LRs the
 * CPU has: EL1 never makes EL2 touch a register that does not exist.
 */
.macro gic_load
	ldr	x5, [x17, #H(HC_GIC_NR_APRS)]
	cbz	x5, 9f
	mrs	x2, ICC_SRE_EL2
	bic	x2, x2, #ICC_SRE_EL2_ENABLE
	msr	ICC_SRE_EL2, x2
	add	x16, x0, #HC_GIC
	ldr	x2, [x16, #GIC_VMCR]
	msr	ICH_VMCR_EL2, x2
	ldr	x2, [x16, #GIC_AP0R]
	ldr	x3, [x16, #GIC_AP1R]
	msr	ICH_AP0R_EL2(0), x2
	msr	ICH_AP1R_EL2(0), x3
	cmp	x5, #1
	b.eq	5f
	ldr	x2, [x16, #GIC_AP0R + 8]
	ldr	x3, [x16, #GIC_AP1R + 8]
	msr	ICH_AP0R_EL2(1), x2
	msr	ICH_AP1R_EL2(1), x3
	cmp	x5, #2
	b.eq	5f
	ldp	x2, x3, [x16, #GIC_AP0R + 16]
	msr	ICH_AP0R_EL2(2), x2
	msr	ICH_AP0R_EL2(3), x3
	ldp	x2, x3, [x16, #GIC_AP1R + 16]
	msr	ICH_AP1R_EL2(2), x2
	msr	ICH_AP1R_EL2(3), x3
5:	ldr	x2, [x16, #GIC_USED_LRS]
	cbz	x2, 8f
	ldr	x6, [x17, #H(HC_GIC_NR_LRS)]
	cmp	x2, x6
	csel	x2, x6, x2, hi
	str	x2, [x16, #GIC_USED_LRS]
	adr	x3, 7f
	sub	x3, x3, x2, lsl #3
	br	x3
	for_each_lr_desc lr_load
7:	ldr	x2, [x16, #GIC_HCR]
	msr	ICH_HCR_EL2, x2
	b	9f
	/* No LR: the DIR trap (TDIR) of a VM with a vGIC, or the ICC_* traps without one. */
8:	ldr	x2, [x17, #H(HC_GIC_IDLE_HCR)]
	ldr	x3, [x16, #GIC_HCR]
	orr	x2, x2, x3
	cbz	x2, 9f
	msr	ICH_HCR_EL2, x2
9:
.endm

.macro gic_save
	ldr	x5, [x17, #H(HC_GIC_NR_APRS)]
	cbz	x5, 9f
	mrs	x2, ICC_SRE_EL2
	orr	x2, x2, #ICC_SRE_EL2_ENABLE
	msr	ICC_SRE_EL2, x2
	add	x16, x0, #HC_GIC
	mrs	x2, ICH_VMCR_EL2
	str	x2, [x16, #GIC_VMCR]
	mrs	x2, ICH_AP0R_EL2(0)
	mrs	x3, ICH_AP1R_EL2(0)
	str	x2, [x16, #GIC_AP0R]
	str	x3, [x16, #GIC_AP1R]
	cmp	x5, #1
	b.eq	5f
	mrs	x2, ICH_AP0R_EL2(1)
	mrs	x3, ICH_AP1R_EL2(1)
	str	x2, [x16, #GIC_AP0R + 8]
	str	x3, [x16, #GIC_AP1R + 8]
	cmp	x5, #2
	b.eq	5f
	mrs	x2, ICH_AP0R_EL2(2)
	mrs	x3, ICH_AP0R_EL2(3)
	stp	x2, x3, [x16, #GIC_AP0R + 16]
	mrs	x2, ICH_AP1R_EL2(2)
	mrs	x3, ICH_AP1R_EL2(3)
	stp	x2, x3, [x16, #GIC_AP1R + 16]
5:	ldr	x2, [x16, #GIC_USED_LRS]
	cbz	x2, 8f
	mrs	x3, ICH_MISR_EL2
	str	x3, [x16, #GIC_MISR]
	mrs	x3, ICH_EISR_EL2
	str	x3, [x16, #GIC_EISR]
	mrs	x3, ICH_ELRSR_EL2
	str	x3, [x16, #GIC_ELRSR]
	mrs	x3, ICH_HCR_EL2		/* EOIcount */
	str	x3, [x16, #GIC_HCR]
	adr	x3, 7f
	add	x6, x2, x2, lsl #1
	sub	x3, x3, x6, lsl #2
	br	x3
	for_each_lr_desc lr_save
	/* Disabling the interface also drops a pending maintenance interrupt. */
7:	msr	ICH_HCR_EL2, xzr
	b	9f
	/* Traps only, nothing to read back. */
8:	ldr	x2, [x17, #H(HC_GIC_IDLE_HCR)]
	ldr	x3, [x16, #GIC_HCR]
	orr	x2, x2, x3
	cbz	x2, 9f
	msr	ICH_HCR_EL2, xzr
9:
.endm

/* ------------------------------------------------------------------------------------ */
	.pushsection .rkvm.hyp.idmap.text, "ax"
	.balign	4096
SYM_CODE_START(__rkvm_hyp_idmap_start)
/*
 * Install, entered through the stub's HVC_SOFT_RESTART: EL2, MMU off, the stub's
 * vectors, x0 = physical address of this CPU's HypCpu (its init fields cleaned to PoC by
 * EL1). ELR_EL2/SPSR_EL2 still return to the HVC. Returns 0 in x0.
 */
SYM_INNER_LABEL(__rkvm_hyp_init, SYM_L_GLOBAL)
	/* Everything from the HypCpu is read now: its PA is not mapped once the MMU is on. */
	ldr	x1, [x0, #HC_INIT_MAIR]
	ldr	x2, [x0, #HC_INIT_TCR]
	ldr	x3, [x0, #HC_INIT_TTBR]
	ldr	x4, [x0, #HC_INIT_SCTLR]
	ldr	x5, [x0, #HC_INIT_SELF]			/* HypCpu hyp VA */
	ldr	x6, [x0, #HC_INIT_STACK]
	ldr	x7, [x0, #HC_INIT_VECTORS]
	ldr	x11, [x0, #HC_GIC_NR_LRS]
	mrs	x8, sctlr_el2				/* the stub's, restored on teardown */
	mrs	x9, vbar_el2
	msr	mair_el2, x1
	msr	tcr_el2, x2
	msr	ttbr0_el2, x3
	isb
	/* Stale EL2 entries of an earlier install must not survive. */
	tlbi	alle2
	/*
	 * Nor any guest translation, on any CPU: a VMID flush that found no CPU with the
	 * runtime is left to this (rust/hyp/nvhe.rs: tlb_flush_vmid).
	 */
	tlbi	alle1is
	dsb	ish
	msr	sctlr_el2, x4
	isb
	ic	iallu
	dsb	nsh
	isb
	/* MMU on: this page runs at its identity mapping, the HypCpu at its hyp VA. */
	msr	tpidr_el2, x5
	mov	sp, x6
	add	x10, x5, #HI
	str	x8, [x10, #H(HC_STUB_SCTLR)]
	str	x9, [x10, #H(HC_STUB_VBAR)]
	/* The host's EL2 controls, for EL1 to derive the guest's values from. */
	mrs	x1, hcr_el2
	mrs	x2, cptr_el2
	stp	x1, x2, [x10, #H(HC_HOST_HCR)]
	mrs	x1, mdcr_el2
	mrs	x2, cnthctl_el2
	stp	x1, x2, [x10, #H(HC_HOST_MDCR)]
	mrs	x1, vpidr_el2
	mrs	x2, vmpidr_el2
	stp	x1, x2, [x10, #H(HC_HOST_VPIDR)]
	/*
	 * The traps the kernel's init_el2_state left for the host at EL1: restored on every
	 * exit. Nothing changes them later (only EL2 can, and EL2 is rkvm's).
	 */
	ldr	x4, [x10, #H(HC_FEATURES)]
	add	x3, x5, #HC_HOST_HCRX
	add	x12, x5, #HC_HOST_FGT
	el2_traps_save x4, x3, x12, x1, x2
	/* The list registers reset to UNKNOWN values: none may ever reach a guest. */
	cbz	x11, 1f
	mov	x12, #16
	cmp	x11, x12
	csel	x11, x12, x11, hi
	msr	ICH_HCR_EL2, xzr
	adr	x3, 1f
	sub	x3, x3, x11, lsl #2
	br	x3
	for_each_lr_desc lr_clear
1:	msr	vbar_el2, x7
	isb
	mov	x0, xzr
	eret
	dsb	nsh
	isb

/*
 * Teardown, branched to at its physical address with the MMU still on: x0-x4 the
 * caller's HVC registers, x6 the stub's VBAR_EL2, x7 its SCTLR_EL2. Turns the MMU off,
 * gives EL2 back to the stub and then does what the stub call in x0 asks.
 */
SYM_INNER_LABEL(__rkvm_hyp_teardown, SYM_L_GLOBAL)
	msr	sctlr_el2, x7
	isb
	tlbi	alle2
	dsb	nsh
	msr	vbar_el2, x6
	isb
	cmp	x0, #HVC_SOFT_RESTART
	b.ne	1f
	/* The stub's HVC_SOFT_RESTART: branch to x1 at EL2 with x0-x2 = the caller's x2-x4. */
	mov	x0, x2
	mov	x2, x4
	mov	x4, x1
	mov	x1, x3
	br	x4
1:	cmp	x0, #HVC_SET_VECTORS
	b.ne	2f
	msr	vbar_el2, x1
	isb
2:	mov	x0, xzr
	eret
	dsb	nsh
	isb
	.balign	4096
SYM_CODE_END(__rkvm_hyp_idmap_start)
	.popsection

/* ------------------------------------------------------------------------------------ */
	.pushsection .rkvm.hyp.text, "ax"
	.balign	4096
	.global	__rkvm_hyp_text_start
__rkvm_hyp_text_start:

/* A lower-EL exception that only a running guest can cause. */
.macro guest_vector code
	.align 7
	stp	x0, x1, [sp, #-16]!
	mrs	x0, hcr_el2
	tbz	x0, #HCR_VM_BIT, __rkvm_hyp_host_exception
	mov	x1, #\code
	b	__rkvm_hyp_guest_exit
.endm

/*
 * An exception taken at EL2: a bug in rkvm's runtime. SP may be what caused it (an
 * overflow into the guard page below the stack), so nothing touches the stack before SP
 * is back at the top of this CPU's stack, the HypCpu address in TPIDR_EL2; x0 is lost.
 * TPIDR_EL2 bit 0 says the panic path itself faulted: then the CPU parks rather than
 * take the same exception again and again.
 */
.macro el2_vector
	.align 7
	mrs	x0, tpidr_el2
	tbnz	x0, #0, __rkvm_hyp_park
	mov	sp, x0
	mov	x1, #1
	b	__rkvm_hyp_panic
.endm

	.align 11
SYM_CODE_START(__rkvm_hyp_vectors)
	el2_vector				/* current EL, SP_EL0 */
	el2_vector
	el2_vector
	el2_vector
	el2_vector				/* current EL, SP_ELx: an EL2 bug */
	el2_vector
	el2_vector
	el2_vector
	.align 7				/* lower EL, AArch64, sync: host call or guest */
	stp	x0, x1, [sp, #-16]!
	mrs	x0, hcr_el2
	tbz	x0, #HCR_VM_BIT, __rkvm_hyp_host_call
	mov	x1, #EXIT_SYNC
	b	__rkvm_hyp_guest_exit
	guest_vector EXIT_IRQ
	guest_vector EXIT_FIQ
	guest_vector EXIT_SERROR
	guest_vector EXIT_SYNC			/* lower EL, AArch32 (a guest's EL0) */
	guest_vector EXIT_IRQ
	guest_vector EXIT_FIQ
	guest_vector EXIT_SERROR
SYM_CODE_END(__rkvm_hyp_vectors)

/* An exception from EL1 that is neither a guest exit nor a host call: a host bug. */
SYM_CODE_START_LOCAL(__rkvm_hyp_host_exception)
	mrs	x0, tpidr_el2
	tbnz	x0, #0, __rkvm_hyp_park
	mov	sp, x0
	mov	x1, xzr
	b	__rkvm_hyp_panic
SYM_CODE_END(__rkvm_hyp_host_exception)

/*
 * Reports an exception EL2 cannot take to the host, as KVM's hyp_panic/__hyp_do_panic:
 * records the syndrome in the HypCpu (for a debugger), puts the host's EL2 controls
 * back (stage 2 and the guest's traps off), and, if the exception hit the world switch
 * while the guest's EL1 state may be in the CPU, the host's EL1 state, SP_EL0 and
 * x18-x30 too; then "returns" to rkvm_nvhe_hyp_panic (rust/helpers.c) at EL1h with
 * DAIF masked, with ESR, SPSR, ELR, FAR, HPFAR and PAR_EL1 in x0-x5. That panics the
 * host: EL2 cannot resume what faulted.
 * x0: the HypCpu (hyp VA), also SP; x1: 1 for an exception taken at EL2, 0 from EL1.
 */
SYM_CODE_START_LOCAL(__rkvm_hyp_panic)
	orr	x2, x0, #1
	msr	tpidr_el2, x2
	add	x17, x0, #HI
	mrs	x10, esr_el2
	mrs	x11, spsr_el2
	mrs	x12, elr_el2
	mrs	x13, far_el2
	mrs	x14, hpfar_el2
	mrs	x15, par_el1
	str	x10, [x17, #H(HC_PANIC_ESR)]
	str	x12, [x17, #H(HC_PANIC_ELR)]
	str	x13, [x17, #H(HC_PANIC_FAR)]

	ldp	x2, x3, [x17, #H(HC_HOST_HCR)]
	msr	hcr_el2, x2
	msr	cptr_el2, x3
	msr	vttbr_el2, xzr
	ldp	x2, x3, [x17, #H(HC_HOST_MDCR)]
	msr	mdcr_el2, x2
	msr	cnthctl_el2, x3
	ldr	x2, [x17, #H(HC_HOST_VMPIDR)]
	msr	vmpidr_el2, x2
	ldr	x4, [x17, #H(HC_FEATURES)]
	add	x5, x0, #HC_HOST_HCRX
	add	x6, x0, #HC_HOST_FGT
	el2_traps_load x4, x5, x6, x2, x3
	isb

	/* Between these labels the CPU may hold the guest's EL1 state. */
	cbz	x1, 5f
	adr	x2, .Lhost_el1_saved
	adr	x3, .Lhost_el1_restored
	cmp	x12, x2
	b.lo	5f
	cmp	x12, x3
	b.hs	5f
	ldr	x5, [x17, #H(HC_GIC_NR_APRS)]
	cbz	x5, 1f
	msr	ICH_HCR_EL2, xzr
	mrs	x2, ICC_SRE_EL2
	orr	x2, x2, #ICC_SRE_EL2_ENABLE
	msr	ICC_SRE_EL2, x2
1:	msr	cntv_ctl_el0, xzr
	msr	cntvoff_el2, xzr
	tbz	x4, #FEAT_TCRX, 2f
	ldr	x2, [x17, #H(HC_HOST_TCR2)]
	msr	RKVM_TCR2_EL1, x2
2:	tbz	x4, #FEAT_S1PIE, 3f
	ldp	x2, x3, [x17, #H(HC_HOST_PIR)]
	msr	RKVM_PIR_EL1, x2
	msr	RKVM_PIRE0_EL1, x3
3:	tbz	x4, #FEAT_S1POE, 4f
	ldr	x2, [x17, #H(HC_HOST_POR)]
	msr	RKVM_POR_EL1, x2
4:	tbz	x4, #FEAT_SCTLRX, 6f
	ldr	x2, [x17, #H(HC_HOST_SCTLR2)]
	msr	RKVM_SCTLR2_EL1, x2
6:	load_el1 x17, H(HC_HOST_EL1)
	ldr	x2, [x17, #H(HC_HOST_SP_EL0)]
	msr	sp_el0, x2
	ldp	x18, x19, [x17, #H(HC_HOST_X18)]
	ldp	x20, x21, [x17, #H(HC_HOST_X18 + 16)]
	ldp	x22, x23, [x17, #H(HC_HOST_X18 + 32)]
	ldp	x24, x25, [x17, #H(HC_HOST_X18 + 48)]
	ldp	x26, x27, [x17, #H(HC_HOST_X18 + 64)]
	ldp	x28, x29, [x17, #H(HC_HOST_X18 + 80)]
	ldr	x30, [x17, #H(HC_HOST_X18 + 96)]

5:	ldr	x2, [x17, #H(HC_PANIC_HANDLER)]
	msr	elr_el2, x2
	mov	x2, #(PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT | PSR_MODE_EL1h)
	msr	spsr_el2, x2
	mov	x0, x10
	mov	x1, x11
	mov	x2, x12
	mov	x3, x13
	mov	x4, x14
	mov	x5, x15
	eret
	dsb	nsh
	isb
SYM_CODE_END(__rkvm_hyp_panic)

/* The panic path itself faulted: nothing left to trust. */
SYM_CODE_START_LOCAL(__rkvm_hyp_park)
	dsb	sy
1:	wfe
	b	1b
SYM_CODE_END(__rkvm_hyp_park)

/*
 * An HVC from the host kernel at EL1: x0 the function, x1.. its arguments, the caller's
 * x0/x1 pushed. rkvm's calls may clobber x0-x17 (the SMCCC caller-saved set); the stub's
 * calls change only what the stub changes.
 */
SYM_CODE_START_LOCAL(__rkvm_hyp_host_call)
	mrs	x0, esr_el2
	lsr	x0, x0, #ESR_EC_SHIFT
	cmp	x0, #ESR_EC_HVC64
	b.ne	__rkvm_hyp_host_exception
	ldp	x0, x1, [sp], #16

	mov_q	x9, RKVM_HC_VCPU_RUN
	cmp	x0, x9
	b.eq	__rkvm_hyp_vcpu_run
	mov_q	x9, RKVM_HC_TLB_FLUSH_VMID
	cmp	x0, x9
	b.eq	__rkvm_hyp_tlb_flush_vmid
	mov_q	x9, RKVM_HC_PROBE
	cmp	x0, x9
	b.eq	1f
	mov_q	x9, RKVM_HC_TEARDOWN
	cmp	x0, x9
	b.eq	__rkvm_hyp_do_teardown
	cmp	x0, #HVC_SET_VECTORS
	b.eq	__rkvm_hyp_do_teardown
	cmp	x0, #HVC_SOFT_RESTART
	b.eq	__rkvm_hyp_do_teardown
	cmp	x0, #HVC_RESET_VECTORS
	b.eq	__rkvm_hyp_do_teardown
	cmp	x0, #HVC_GET_ICH_VTR_EL2
	b.eq	2f
	/* Anything else, HVC_FINALISE_EL2 included: what the stub answers an unknown call. */
	mov_q	x0, HVC_STUB_ERR
	eret
1:	mov	x0, xzr
	mov_q	x1, RKVM_HYP_MAGIC
	eret
2:	mrs	x1, RKVM_ICH_VTR_EL2
	mov	x0, xzr
	eret
SYM_CODE_END(__rkvm_hyp_host_call)

/* Back to the stub, through the idmap copy of the teardown code (the MMU goes off). */
SYM_CODE_START_LOCAL(__rkvm_hyp_do_teardown)
	mrs	x5, tpidr_el2
	add	x5, x5, #HI
	ldr	x6, [x5, #H(HC_STUB_VBAR)]
	ldr	x7, [x5, #H(HC_STUB_SCTLR)]
	ldr	x8, [x5, #H(HC_TEARDOWN_PA)]
	br	x8
SYM_CODE_END(__rkvm_hyp_do_teardown)

/*
 * Invalidates the stage-1 and stage-2 TLB entries of one VMID on every CPU (inner
 * shareable). x1: a VTTBR value; only its VMID field is used, so no address the caller
 * passes is ever dereferenced or installed.
 */
SYM_CODE_START_LOCAL(__rkvm_hyp_tlb_flush_vmid)
	and	x1, x1, #0xffff000000000000
	mrs	x2, vttbr_el2
	dsb	ishst
	msr	vttbr_el2, x1
	isb
	tlbi	vmalls12e1is
	dsb	ish
	isb
	msr	vttbr_el2, x2
	isb
	mov	x0, xzr
	eret
SYM_CODE_END(__rkvm_hyp_tlb_flush_vmid)

/*
 * Runs the vCPU whose state EL1 left in this CPU's HypCpu (no pointer is passed: EL2
 * uses only its own per-CPU area). Saves the host's EL1 state and EL2 controls, loads
 * the guest's, enters it; __rkvm_hyp_guest_exit undoes it all and returns the exit code.
 */
SYM_CODE_START_LOCAL(__rkvm_hyp_vcpu_run)
	mrs	x0, tpidr_el2
	add	x17, x0, #HI
	stp	x18, x19, [x17, #H(HC_HOST_X18)]
	stp	x20, x21, [x17, #H(HC_HOST_X18 + 16)]
	stp	x22, x23, [x17, #H(HC_HOST_X18 + 32)]
	stp	x24, x25, [x17, #H(HC_HOST_X18 + 48)]
	stp	x26, x27, [x17, #H(HC_HOST_X18 + 64)]
	stp	x28, x29, [x17, #H(HC_HOST_X18 + 80)]
	str	x30, [x17, #H(HC_HOST_X18 + 96)]
	mrs	x1, sp_el0
	str	x1, [x17, #H(HC_HOST_SP_EL0)]
	mrs	x1, elr_el2
	mrs	x2, spsr_el2
	stp	x1, x2, [x17, #H(HC_HOST_ELR_EL2)]

	save_el1 x17, H(HC_HOST_EL1)
	ldr	x1, [x17, #H(HC_FEATURES)]
	tbz	x1, #FEAT_TCRX, 1f
	mrs	x2, RKVM_TCR2_EL1
	str	x2, [x17, #H(HC_HOST_TCR2)]
	msr	RKVM_TCR2_EL1, xzr
1:	tbz	x1, #FEAT_S1PIE, 2f
	mrs	x2, RKVM_PIR_EL1
	mrs	x3, RKVM_PIRE0_EL1
	stp	x2, x3, [x17, #H(HC_HOST_PIR)]
2:	tbz	x1, #FEAT_S1POE, 3f
	mrs	x2, RKVM_POR_EL1
	str	x2, [x17, #H(HC_HOST_POR)]
3:	tbz	x1, #FEAT_SCTLRX, 4f
	mrs	x2, RKVM_SCTLR2_EL1
	str	x2, [x17, #H(HC_HOST_SCTLR2)]
	msr	RKVM_SCTLR2_EL1, xzr
4:
	/* From here to .Lhost_el1_restored a panic puts the host's EL1 state back. */
.Lhost_el1_saved:
	/* The host's EL2 controls (the stub's values; VPIDR stays the real MIDR). */
	mrs	x1, hcr_el2
	mrs	x2, cptr_el2
	stp	x1, x2, [x17, #H(HC_HOST_HCR)]
	mrs	x1, mdcr_el2
	mrs	x2, cnthctl_el2
	stp	x1, x2, [x17, #H(HC_HOST_MDCR)]
	mrs	x1, vmpidr_el2
	str	x1, [x17, #H(HC_HOST_VMPIDR)]

	/* The guest's stage 2, identity, counter offset and traps (values from EL1). */
	ldr	x1, [x0, #HC_VTTBR]
	ldr	x2, [x0, #HC_VTCR]
	msr	vttbr_el2, x1
	msr	vtcr_el2, x2
	ldr	x1, [x0, #HC_CNTVOFF]
	ldr	x2, [x0, #HC_VMPIDR]
	msr	cntvoff_el2, x1
	msr	vmpidr_el2, x2
	ldp	x1, x2, [x0, #HC_MDCR]
	msr	mdcr_el2, x1
	msr	cnthctl_el2, x2
	ldr	x1, [x0, #HC_CPTR]
	msr	cptr_el2, x1
	/* The guest's HCRX_EL2 and fine-grained traps (computed at vcpu_load). */
	ldr	x1, [x17, #H(HC_FEATURES)]
	add	x3, x0, #HC_GUEST_HCRX
	add	x4, x0, #HC_GUEST_FGT
	el2_traps_load x1, x3, x4, x2, x5
	load_el1 x0, HC_GUEST_EL1
	ldr	x1, [x17, #H(HC_FEATURES)]
	tbz	x1, #FEAT_RAS, 5f
	ldr	x2, [x17, #H(HC_GUEST_DISR)]
	msr	RKVM_VDISR_EL2, x2
	/* The syndrome matters only with a virtual SError to deliver (KVM's __activate_traps). */
	ldr	x2, [x0, #HC_HCR]
	tbz	x2, #HCR_VSE_BIT, 5f
	ldr	x2, [x17, #H(HC_GUEST_VSESR)]
	msr	RKVM_VSESR_EL2, x2
5:	ldp	x1, x2, [x0, #HC_PC]
	msr	elr_el2, x1
	msr	spsr_el2, x2
	/*
	 * Pointer authentication: the host kernel's APIA key (it signs its return
	 * addresses with it) out, the guest's in; the other keys moved at vcpu_load.
	 */
	ldr	x1, [x0, #HC_HCR]
	tbz	x1, #HCR_API_BIT, 6f
	mrs	x2, RKVM_APIAKEYLO_EL1
	mrs	x3, RKVM_APIAKEYHI_EL1
	stp	x2, x3, [x17, #H(HC_HOST_APIA)]
	ldp	x2, x3, [x17, #H(HC_GUEST_APIA)]
	msr	RKVM_APIAKEYLO_EL1, x2
	msr	RKVM_APIAKEYHI_EL1, x3
6:	gic_load
	/* Stage 2 and the guest's traps on last. */
	ldr	x1, [x0, #HC_HCR]
	msr	hcr_el2, x1
	isb

	ldr	x1, [x0, #HC_SP_EL0]
	msr	sp_el0, x1
	ldp	x2, x3, [x0, #HC_GPR(2)]
	ldp	x4, x5, [x0, #HC_GPR(4)]
	ldp	x6, x7, [x0, #HC_GPR(6)]
	ldp	x8, x9, [x0, #HC_GPR(8)]
	ldp	x10, x11, [x0, #HC_GPR(10)]
	ldp	x12, x13, [x0, #HC_GPR(12)]
	ldp	x14, x15, [x0, #HC_GPR(14)]
	ldp	x16, x17, [x0, #HC_GPR(16)]
	ldp	x18, x19, [x0, #HC_GPR(18)]
	ldp	x20, x21, [x0, #HC_GPR(20)]
	ldp	x22, x23, [x0, #HC_GPR(22)]
	ldp	x24, x25, [x0, #HC_GPR(24)]
	ldp	x26, x27, [x0, #HC_GPR(26)]
	ldp	x28, x29, [x0, #HC_GPR(28)]
	ldr	x30, [x0, #HC_GPR(30)]
	ldp	x0, x1, [x0, #HC_GPR(0)]
	eret
	dsb	nsh
	isb
SYM_CODE_END(__rkvm_hyp_vcpu_run)

/* x1: exit code; the guest's x0/x1 pushed on the EL2 stack. */
SYM_CODE_START_LOCAL(__rkvm_hyp_guest_exit)
	mrs	x0, tpidr_el2
	stp	x2, x3, [x0, #HC_GPR(2)]
	stp	x4, x5, [x0, #HC_GPR(4)]
	stp	x6, x7, [x0, #HC_GPR(6)]
	stp	x8, x9, [x0, #HC_GPR(8)]
	stp	x10, x11, [x0, #HC_GPR(10)]
	stp	x12, x13, [x0, #HC_GPR(12)]
	stp	x14, x15, [x0, #HC_GPR(14)]
	stp	x16, x17, [x0, #HC_GPR(16)]
	stp	x18, x19, [x0, #HC_GPR(18)]
	stp	x20, x21, [x0, #HC_GPR(20)]
	stp	x22, x23, [x0, #HC_GPR(22)]
	stp	x24, x25, [x0, #HC_GPR(24)]
	stp	x26, x27, [x0, #HC_GPR(26)]
	stp	x28, x29, [x0, #HC_GPR(28)]
	str	x30, [x0, #HC_GPR(30)]
	add	x17, x0, #HI
	ldp	x2, x3, [sp], #16
	stp	x2, x3, [x0, #HC_GPR(0)]
	mrs	x2, sp_el0
	str	x2, [x0, #HC_SP_EL0]

	/* The syndrome first, before anything can take another exception. */
	mrs	x2, esr_el2
	mrs	x3, far_el2
	str	x2, [x0, #HC_ESR]
	str	x3, [x0, #HC_FAR]
	mrs	x2, hpfar_el2
	mrs	x3, hcr_el2
	str	x2, [x0, #HC_HPFAR]
	str	x3, [x0, #HC_EXIT_HCR]
	/* The guest's APIA key out, the host's back before EL1 runs again. */
	tbz	x3, #HCR_API_BIT, 6f
	mrs	x2, RKVM_APIAKEYLO_EL1
	mrs	x3, RKVM_APIAKEYHI_EL1
	stp	x2, x3, [x17, #H(HC_GUEST_APIA)]
	ldp	x2, x3, [x17, #H(HC_HOST_APIA)]
	msr	RKVM_APIAKEYLO_EL1, x2
	msr	RKVM_APIAKEYHI_EL1, x3
6:	mrs	x2, elr_el2
	mrs	x3, spsr_el2
	stp	x2, x3, [x0, #HC_PC]

	/* Host regime: stage 2 and the guest's traps off, VMID 0 for the host's TLB entries. */
	ldp	x2, x3, [x17, #H(HC_HOST_HCR)]
	msr	hcr_el2, x2
	msr	cptr_el2, x3
	msr	vttbr_el2, xzr
	ldp	x2, x3, [x17, #H(HC_HOST_MDCR)]
	msr	mdcr_el2, x2
	msr	cnthctl_el2, x3
	ldr	x2, [x17, #H(HC_HOST_VMPIDR)]
	msr	vmpidr_el2, x2
	ldr	x4, [x17, #H(HC_FEATURES)]
	add	x5, x0, #HC_HOST_HCRX
	add	x6, x0, #HC_HOST_FGT
	el2_traps_load x4, x5, x6, x2, x3
	isb

	save_el1 x0, HC_GUEST_EL1
	ldr	x4, [x17, #H(HC_FEATURES)]
	tbz	x4, #FEAT_RAS, 5f
	mrs	x2, RKVM_VDISR_EL2
	str	x2, [x17, #H(HC_GUEST_DISR)]
5:	gic_save
	/* The guest's timer stops firing for nobody; the host reads the counter unoffset. */
	msr	cntv_ctl_el0, xzr
	msr	cntvoff_el2, xzr
	ldr	x4, [x17, #H(HC_FEATURES)]
	tbz	x4, #FEAT_TCRX, 1f
	ldr	x2, [x17, #H(HC_HOST_TCR2)]
	msr	RKVM_TCR2_EL1, x2
1:	tbz	x4, #FEAT_S1PIE, 2f
	ldp	x2, x3, [x17, #H(HC_HOST_PIR)]
	msr	RKVM_PIR_EL1, x2
	msr	RKVM_PIRE0_EL1, x3
2:	tbz	x4, #FEAT_S1POE, 3f
	ldr	x2, [x17, #H(HC_HOST_POR)]
	msr	RKVM_POR_EL1, x2
3:	tbz	x4, #FEAT_SCTLRX, 4f
	ldr	x2, [x17, #H(HC_HOST_SCTLR2)]
	msr	RKVM_SCTLR2_EL1, x2
4:	load_el1 x17, H(HC_HOST_EL1)

	ldr	x2, [x17, #H(HC_HOST_SP_EL0)]
	msr	sp_el0, x2
	ldp	x2, x3, [x17, #H(HC_HOST_ELR_EL2)]
	msr	elr_el2, x2
	msr	spsr_el2, x3
	ldp	x18, x19, [x17, #H(HC_HOST_X18)]
	ldp	x20, x21, [x17, #H(HC_HOST_X18 + 16)]
	ldp	x22, x23, [x17, #H(HC_HOST_X18 + 32)]
	ldp	x24, x25, [x17, #H(HC_HOST_X18 + 48)]
	ldp	x26, x27, [x17, #H(HC_HOST_X18 + 64)]
	ldp	x28, x29, [x17, #H(HC_HOST_X18 + 80)]
	ldr	x30, [x17, #H(HC_HOST_X18 + 96)]
.Lhost_el1_restored:
	mov	x0, x1
	eret
	dsb	nsh
	isb
SYM_CODE_END(__rkvm_hyp_guest_exit)

	.balign	4096
	.global	__rkvm_hyp_text_end
__rkvm_hyp_text_end:
	.popsection
