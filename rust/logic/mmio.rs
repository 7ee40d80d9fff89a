// SPDX-License-Identifier: GPL-2.0

//! MMIO data conversion between a guest register and `kvm_run.mmio.data`.
//!
//! KVM counterpart: `kvm_mmio_write_buf()`, `kvm_mmio_read_buf()` and
//! `kvm_handle_mmio_return()` in `arch/arm64/kvm/mmio.c`, with `vcpu_data_guest_to_host()` and
//! `vcpu_data_host_to_guest()` from `kvm_emulate.h`. The ABI puts the bytes in
//! `kvm_run.mmio.data` in the order they would appear on the bus, so a big-endian guest's
//! register value is byte-swapped on the way out and back in.

/// One MMIO access decoded from a data abort with a valid syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MmioAccess {
    /// Guest-physical address of the access.
    pub(crate) ipa: u64,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub(crate) len: u8,
    pub(crate) write: bool,
    /// A load that sign-extends the value into the register.
    pub(crate) sign_extend: bool,
    /// The register is an X register (otherwise W).
    pub(crate) sixty_four: bool,
    /// Transfer register 0-30; 31 is XZR/WZR.
    pub(crate) reg: u8,
}

impl MmioAccess {
    /// Access size clamped to the data buffer, so a corrupt `len` cannot index out of range.
    fn size(&self) -> usize {
        usize::from(self.len).min(8)
    }

    /// The bytes userspace sees in `kvm_run.mmio.data` for a write of register `value`.
    ///
    /// The low `len` bytes of `value` are laid out little-endian, or big-endian when the
    /// guest's data accesses are big-endian (`SCTLR_EL1.EE` at EL1, `.E0E` at EL0; the caller
    /// picks). Bytes past `len` are zero.
    pub(crate) fn write_data(&self, value: u64, big_endian: bool) -> [u8; 8] {
        let n = self.size();
        let le = value.to_le_bytes();
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().take(n).enumerate() {
            let from = if big_endian { n - 1 - i } else { i };
            *byte = le.get(from).copied().unwrap_or(0);
        }
        out
    }

    /// The register value a read completes with, given `kvm_run.mmio.data`.
    ///
    /// The first `len` bytes are taken in the guest's byte order, sign-extended from `len`
    /// bytes for the sign-extending loads, and cut to 32 bits for W registers (a W write
    /// zeroes the upper half of the X register).
    pub(crate) fn read_value(&self, data: [u8; 8], big_endian: bool) -> u64 {
        let n = self.size();
        let mut le = [0u8; 8];
        for (i, byte) in le.iter_mut().take(n).enumerate() {
            let from = if big_endian { n - 1 - i } else { i };
            *byte = data.get(from).copied().unwrap_or(0);
        }
        let mut value = u64::from_le_bytes(le);
        if self.sign_extend && (1..8).contains(&n) {
            let unused = 64 - 8 * n as u32;
            value = (((value << unused) as i64) >> unused) as u64;
        }
        if !self.sixty_four {
            value &= 0xffff_ffff;
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(len: u8, sign_extend: bool, sixty_four: bool) -> MmioAccess {
        MmioAccess {
            ipa: 0x0900_0000,
            len,
            write: false,
            sign_extend,
            sixty_four,
            reg: 0,
        }
    }

    const V: u64 = 0x8877_6655_4433_2211;

    #[test]
    fn write_every_size_little_endian() {
        assert_eq!(
            access(1, false, false).write_data(V, false),
            [0x11, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            access(2, false, false).write_data(V, false),
            [0x11, 0x22, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            access(4, false, false).write_data(V, false),
            [0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0]
        );
        assert_eq!(
            access(8, false, true).write_data(V, false),
            [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
    }

    #[test]
    fn write_every_size_big_endian() {
        assert_eq!(
            access(1, false, false).write_data(V, true),
            [0x11, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            access(2, false, false).write_data(V, true),
            [0x22, 0x11, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            access(4, false, false).write_data(V, true),
            [0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0]
        );
        assert_eq!(
            access(8, false, true).write_data(V, true),
            [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
    }

    #[test]
    fn read_every_size_zero_extends() {
        let d = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        assert_eq!(access(1, false, true).read_value(d, false), 0x11);
        assert_eq!(access(2, false, true).read_value(d, false), 0x2211);
        assert_eq!(access(4, false, true).read_value(d, false), 0x4433_2211);
        assert_eq!(access(8, false, true).read_value(d, false), V);
        // Bytes past the access size are ignored even if userspace left junk there.
        assert_eq!(access(2, false, true).read_value([0xff; 8], false), 0xffff);
    }

    #[test]
    fn read_big_endian() {
        let d = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];
        assert_eq!(access(1, false, true).read_value(d, true), 0x11);
        assert_eq!(access(2, false, true).read_value(d, true), 0x1122);
        assert_eq!(access(4, false, true).read_value(d, true), 0x1122_3344);
        assert_eq!(
            access(8, false, true).read_value(d, true),
            0x1122_3344_5566_7788
        );
        // Sign extension applies after the swap: the sign byte is the first on the bus.
        assert_eq!(
            access(2, true, true).read_value([0x80, 0x01, 0, 0, 0, 0, 0, 0], true),
            0xffff_ffff_ffff_8001
        );
        assert_eq!(
            access(2, true, true).read_value([0x01, 0x80, 0, 0, 0, 0, 0, 0], true),
            0x0180
        );
    }

    #[test]
    fn sign_extension() {
        let b = [0x80, 0, 0, 0, 0, 0, 0, 0];
        // ldrsb w0 / ldrsb x0
        assert_eq!(access(1, true, false).read_value(b, false), 0xffff_ff80);
        assert_eq!(
            access(1, true, true).read_value(b, false),
            0xffff_ffff_ffff_ff80
        );
        // ldrsh w0 / ldrsh x0
        let h = [0x34, 0x92, 0, 0, 0, 0, 0, 0];
        assert_eq!(access(2, true, false).read_value(h, false), 0xffff_9234);
        assert_eq!(
            access(2, true, true).read_value(h, false),
            0xffff_ffff_ffff_9234
        );
        // ldrsw x0
        let w = [0x78, 0x56, 0x34, 0xf2, 0, 0, 0, 0];
        assert_eq!(
            access(4, true, true).read_value(w, false),
            0xffff_ffff_f234_5678
        );
        // Positive values are unchanged.
        assert_eq!(
            access(1, true, true).read_value([0x7f, 0, 0, 0, 0, 0, 0, 0], false),
            0x7f
        );
        assert_eq!(
            access(4, true, true).read_value([0, 0, 0, 0x7f, 0, 0, 0, 0], false),
            0x7f00_0000
        );
        // An 8-byte access has nothing to extend.
        assert_eq!(access(8, true, true).read_value([0xff; 8], false), u64::MAX);
    }

    #[test]
    fn w_register_truncates() {
        // A W-register load of a full doubleword keeps only the low word.
        assert_eq!(
            access(8, false, false).read_value([0xff; 8], false),
            0xffff_ffff
        );
        assert_eq!(
            access(4, true, false).read_value([0, 0, 0, 0x80, 0, 0, 0, 0], false),
            0x8000_0000
        );
    }

    #[test]
    fn write_truncates_value() {
        let a = MmioAccess {
            write: true,
            ..access(1, false, false)
        };
        assert_eq!(a.write_data(0xffff_ff00, false), [0; 8]);
        let a = MmioAccess {
            write: true,
            ..access(4, false, false)
        };
        assert_eq!(
            a.write_data(0xdead_beef_0000_0001, false),
            [1, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            a.write_data(0xdead_beef_0000_0001, true),
            [0, 0, 0, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn round_trip() {
        for len in [1u8, 2, 4, 8] {
            for be in [false, true] {
                let a = access(len, false, true);
                let mask = if len == 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * len)) - 1
                };
                assert_eq!(
                    a.read_value(a.write_data(V, be), be),
                    V & mask,
                    "len {len} be {be}"
                );
            }
        }
    }

    #[test]
    fn corrupt_len_does_not_panic() {
        for len in [0u8, 3, 9, 255] {
            let a = access(len, true, true);
            let _ = a.write_data(V, true);
            let _ = a.read_value([0xff; 8], true);
        }
        assert_eq!(access(0, true, true).read_value([0xff; 8], false), 0);
    }
}
