// SPDX-License-Identifier: GPL-2.0

//! `KVM_SET_GSI_ROUTING` and `KVM_SIGNAL_MSI`: the table irqfds deliver through (GSI →
//! vGIC SPI pin, or GSI → MSI for an ITS), and the MSI message format.
//!
//! KVM counterpart: `kvm_set_irq_routing`/`setup_routing_entry` (`virt/kvm/irqchip.c`)
//! and arm64's `kvm_set_routing_entry` (`vgic-irqfd.c`). arm64 has one irqchip, so a
//! GSI has at most one route: an irqchip pin (SPI pin + 32) or an MSI, which the ITS
//! whose frame holds the doorbell address translates (nothing without an ITS, as KVM).

/// `KVM_MAX_IRQ_ROUTES`, which `KVM_CAP_IRQ_ROUTING` reports.
pub(crate) const MAX_ROUTES: u32 = 4096;
/// `KVM_IRQCHIP_NUM_PINS`: SPIs 32-1019.
pub(crate) const NUM_PINS: u32 = 1020 - 32;
/// `struct kvm_irq_routing_entry`: gsi, type, flags, pad, then a 32-byte union.
pub(crate) const ENTRY_WORDS: usize = 12;

pub(crate) const TYPE_IRQCHIP: u32 = 1;
pub(crate) const TYPE_MSI: u32 = 2;
pub(crate) const MSI_VALID_DEVID: u32 = 1;

/// A routing table or MSI KVM refuses (`EINVAL`; `sys/errno.rs` converts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

/// An MSI as a device writes it (`struct kvm_msi`, or a routing entry's): the doorbell
/// address, the payload (the ITS's EventID) and the DeviceID the bus adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Msi {
    pub(crate) address: u64,
    pub(crate) data: u32,
    /// `KVM_MSI_VALID_DEVID` was set: the ITS needs it (`EINVAL` without).
    pub(crate) devid: Option<u32>,
}

impl Msi {
    /// `struct kvm_msi`: address_lo, address_hi, data, flags, devid (then padding).
    /// Flags other than `KVM_MSI_VALID_DEVID` are `EINVAL`, as `kvm_send_userspace_msi`.
    pub(crate) const fn from_kvm_msi(w: [u32; 5]) -> Result<Self, Invalid> {
        let [lo, hi, data, flags, devid] = w;
        if flags & !MSI_VALID_DEVID != 0 {
            return Err(Invalid);
        }
        Ok(Self::new(lo, hi, data, flags, devid))
    }

    const fn new(lo: u32, hi: u32, data: u32, flags: u32, devid: u32) -> Self {
        Self {
            address: ((hi as u64) << 32) | lo as u64,
            data,
            devid: if flags & MSI_VALID_DEVID != 0 {
                Some(devid)
            } else {
                None
            },
        }
    }
}

/// Where a GSI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    None,
    /// vGIC SPI pin: INTID pin + 32.
    Pin(u16),
    /// An MSI, delivered through the ITS at its address (nothing without one).
    Msi(Msi),
}

/// The header: `nr` entries, no flags (`EINVAL`).
pub(crate) const fn check_header(nr: u32, flags: u32) -> Result<(), Invalid> {
    if nr > MAX_ROUTES || flags != 0 {
        Err(Invalid)
    } else {
        Ok(())
    }
}

/// The table size the entries need (largest GSI + 1), or `EINVAL` for a GSI out of
/// range (checked for all entries first, as KVM).
pub(crate) fn table_len(entries: &[[u32; ENTRY_WORDS]]) -> Result<usize, Invalid> {
    let mut max = 0;
    for e in entries {
        if e[0] >= MAX_ROUTES {
            return Err(Invalid);
        }
        max = max.max(e[0]);
    }
    Ok(max as usize + 1)
}

/// Adds one entry to `table` (`EINVAL` for flags, a second route for the GSI, an
/// unknown type, a pin past `NUM_PINS` or an irqchip other than 0).
pub(crate) fn add(table: &mut [Route], e: &[u32; ENTRY_WORDS]) -> Result<(), Invalid> {
    let [gsi, ty, flags, _pad, a, b, c, d, ..] = *e;
    let allowed_flags = if ty == TYPE_MSI { MSI_VALID_DEVID } else { 0 };
    if flags & !allowed_flags != 0 {
        return Err(Invalid);
    }
    let slot = table.get_mut(gsi as usize).ok_or(Invalid)?;
    if *slot != Route::None {
        return Err(Invalid);
    }
    *slot = match ty {
        // irqchip, pin
        TYPE_IRQCHIP if a == 0 && b < NUM_PINS => Route::Pin(b as u16),
        // msi: address_lo, address_hi, data, devid.
        TYPE_MSI => Route::Msi(Msi::new(a, b, c, flags, d)),
        _ => return Err(Invalid),
    };
    Ok(())
}

/// The route of `gsi` in `table`; with no table (KVM's default routing) GSI n is pin n,
/// for the `nr_spis` SPIs.
pub(crate) fn route(table: Option<&[Route]>, gsi: u32, nr_spis: u32) -> Route {
    match table {
        None if gsi < nr_spis => Route::Pin(gsi as u16),
        None => Route::None,
        Some(t) => t.get(gsi as usize).copied().unwrap_or(Route::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irqchip(gsi: u32, chip: u32, pin: u32) -> [u32; ENTRY_WORDS] {
        let mut e = [0; ENTRY_WORDS];
        (e[0], e[1], e[4], e[5]) = (gsi, TYPE_IRQCHIP, chip, pin);
        e
    }

    #[test]
    fn header_and_sizes() {
        assert_eq!(check_header(4096, 0), Ok(()));
        assert_eq!(check_header(4097, 0), Err(Invalid));
        assert_eq!(check_header(1, 1), Err(Invalid));
        assert_eq!(table_len(&[irqchip(5, 0, 1), irqchip(2, 0, 2)]), Ok(6));
        assert_eq!(table_len(&[irqchip(4096, 0, 1)]), Err(Invalid));
        assert_eq!(table_len(&[]), Ok(1));
    }

    #[test]
    fn entries() {
        let mut t = [Route::None; 8];
        assert_eq!(add(&mut t, &irqchip(1, 0, 987)), Ok(()));
        assert_eq!(t[1], Route::Pin(987));
        assert_eq!(add(&mut t, &irqchip(2, 0, 988)), Err(Invalid)); // pin 988 = INTID 1020
        assert_eq!(add(&mut t, &irqchip(2, 1, 3)), Err(Invalid)); // irqchip 1
        assert_eq!(add(&mut t, &irqchip(1, 0, 4)), Err(Invalid)); // GSI 1 again
        let mut flagged = irqchip(3, 0, 3);
        flagged[2] = 1;
        assert_eq!(add(&mut t, &flagged), Err(Invalid));
        let mut msi = [0; ENTRY_WORDS];
        (msi[0], msi[1], msi[2]) = (4, TYPE_MSI, MSI_VALID_DEVID);
        (msi[4], msi[5], msi[6], msi[7]) = (0x0808_0040, 0x1, 33, 0x10);
        assert_eq!(add(&mut t, &msi), Ok(()));
        let want = Msi {
            address: 0x1_0808_0040,
            data: 33,
            devid: Some(0x10),
        };
        assert_eq!(t[4], Route::Msi(want));
        assert_eq!(route(Some(&t), 4, 64), Route::Msi(want));
        assert_eq!(route(None, 4, 64), Route::Pin(4));
        assert_eq!(route(None, 64, 64), Route::None);
        assert_eq!(route(Some(&t), 100, 64), Route::None);
        msi[0] = 5;
        msi[2] = 2;
        assert_eq!(add(&mut t, &msi), Err(Invalid));
        let mut odd = irqchip(6, 0, 1);
        odd[1] = 3;
        assert_eq!(add(&mut t, &odd), Err(Invalid));
        assert_eq!(route(Some(&t), 1, 64), Route::Pin(987));
        assert_eq!(route(Some(&t), 7, 64), Route::None);
        assert_eq!(route(Some(&t), 100, 64), Route::None);
        assert_eq!(route(None, 63, 64), Route::Pin(63));
        assert_eq!(route(None, 64, 64), Route::None);
    }

    #[test]
    fn kvm_msi() {
        let m = Msi::from_kvm_msi([0x0808_0040, 0, 7, MSI_VALID_DEVID, 3]).unwrap();
        assert_eq!(
            m,
            Msi {
                address: 0x0808_0040,
                data: 7,
                devid: Some(3)
            }
        );
        // Without the flag the DeviceID is not there, whatever the field holds.
        assert_eq!(Msi::from_kvm_msi([0, 0, 7, 0, 3]).unwrap().devid, None);
        assert_eq!(Msi::from_kvm_msi([0, 0, 7, 2, 3]), Err(Invalid));
    }
}
