// SPDX-License-Identifier: GPL-2.0

//! Stepping the guest past an instruction the hypervisor emulated.
//!
//! KVM counterpart: `kvm_incr_pc`, `kvm_skip_instr32` and `kvm_adjust_itstate`
//! (`arch/arm64/kvm/hyp/include/hyp/adjust_pc.h`, `hyp/aarch32.c`). AArch64 instructions
//! are 4 bytes; an AArch32 guest at EL0 may trap on a 16-bit Thumb instruction
//! (`ESR_EL2.IL` = 0), and inside a Thumb IT block the IT state must advance too.

/// PSTATE.nRW (bit 4): the guest runs in AArch32 state.
const PSR_MODE32: u64 = 1 << 4;
/// PSTATE.T (bit 5): Thumb state.
const PSR_T: u64 = 1 << 5;
/// PSTATE.IT[1:0] (bits 26:25) and IT[7:2] (bits 15:10).
const IT_LOW_SHIFT: u32 = 25;
const IT_HIGH_SHIFT: u32 = 10;
const IT_MASK: u64 = (0x3 << IT_LOW_SHIFT) | (0x3f << IT_HIGH_SHIFT);

/// The guest's PC and PSTATE after the trapped instruction, `il32` being `ESR_EL2.IL`.
pub(crate) const fn skip(pc: u64, pstate: u64, il32: bool) -> (u64, u64) {
    let len = if il32 { 4 } else { 2 };
    let pc = pc.wrapping_add(len);
    if pstate & (PSR_MODE32 | PSR_T) != (PSR_MODE32 | PSR_T) {
        // AArch32 PCs wrap at 32 bits; AArch64 ones do not matter here.
        let pc = if pstate & PSR_MODE32 != 0 {
            pc & 0xffff_ffff
        } else {
            pc
        };
        return (pc, pstate);
    }
    let it = ((pstate >> IT_LOW_SHIFT) & 0x3) | (((pstate >> IT_HIGH_SHIFT) & 0x3f) << 2);
    let it = if it & 0x7 == 0 {
        0
    } else {
        (it & 0xe0) | ((it << 1) & 0x1f)
    };
    let pstate =
        (pstate & !IT_MASK) | ((it & 0x3) << IT_LOW_SHIFT) | (((it >> 2) & 0x3f) << IT_HIGH_SHIFT);
    (pc & 0xffff_ffff, pstate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_steps_four_bytes() {
        assert_eq!(skip(0x4000_0000, 0x3c5, true), (0x4000_0004, 0x3c5));
    }

    #[test]
    fn thumb_steps_by_instruction_size() {
        let thumb_usr = PSR_MODE32 | PSR_T;
        assert_eq!(skip(0x8000, thumb_usr, false), (0x8002, thumb_usr));
        assert_eq!(skip(0x8000, thumb_usr, true), (0x8004, thumb_usr));
        // AArch32 ARM state: 4 bytes, 32-bit wrap.
        assert_eq!(skip(0xffff_fffc, PSR_MODE32, true), (0, PSR_MODE32));
    }

    #[test]
    fn it_block_advances() {
        let thumb = PSR_MODE32 | PSR_T;
        // ITSTATE 0b0000_1000 (IT with one instruction left: mask 0b1000): ends after it.
        let it = 0x08u64;
        let ps = thumb | ((it & 3) << IT_LOW_SHIFT) | ((it >> 2) << IT_HIGH_SHIFT);
        assert_eq!(skip(0x100, ps, false).1, thumb);
        // ITSTATE 0b0000_0100 shifts to 0b0000_1000.
        let it = 0x04u64;
        let ps = thumb | ((it >> 2) << IT_HIGH_SHIFT);
        let (_, next) = skip(0x100, ps, false);
        let next_it = ((next >> IT_LOW_SHIFT) & 3) | (((next >> IT_HIGH_SHIFT) & 0x3f) << 2);
        assert_eq!(next_it, 0x08);
    }
}
