// SPDX-License-Identifier: GPL-2.0

//! `KVM_SET_GSI_ROUTING`: the table irqfds deliver through (GSI → vGIC SPI pin).
//!
//! KVM counterpart: `kvm_set_irq_routing`/`setup_routing_entry` (`virt/kvm/irqchip.c`)
//! and arm64's `kvm_set_routing_entry` (`vgic-irqfd.c`). arm64 has one irqchip, so a
//! GSI has at most one route: an irqchip pin (SPI pin + 32) or an MSI, which without an
//! ITS delivers nothing, as in KVM.

/// `KVM_MAX_IRQ_ROUTES`, which `KVM_CAP_IRQ_ROUTING` reports.
pub(crate) const MAX_ROUTES: u32 = 4096;
/// `KVM_IRQCHIP_NUM_PINS`: SPIs 32-1019.
pub(crate) const NUM_PINS: u32 = 1020 - 32;
/// `struct kvm_irq_routing_entry`: gsi, type, flags, pad, then a 32-byte union.
pub(crate) const ENTRY_WORDS: usize = 12;

const TYPE_IRQCHIP: u32 = 1;
const TYPE_MSI: u32 = 2;
const MSI_VALID_DEVID: u32 = 1;

/// Where a GSI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    None,
    /// vGIC SPI pin: INTID pin + 32.
    Pin(u16),
    /// An MSI: needs an ITS, which rkvm has not; delivers nothing.
    Msi,
}

/// The header: `nr` entries, no flags (`EINVAL`).
pub(crate) const fn check_header(nr: u32, flags: u32) -> Result<(), ()> {
    if nr > MAX_ROUTES || flags != 0 {
        Err(())
    } else {
        Ok(())
    }
}

/// The table size the entries need (largest GSI + 1), or `EINVAL` for a GSI out of
/// range (checked for all entries first, as KVM).
pub(crate) fn table_len(entries: &[[u32; ENTRY_WORDS]]) -> Result<usize, ()> {
    let mut max = 0;
    for e in entries {
        if e[0] >= MAX_ROUTES {
            return Err(());
        }
        max = max.max(e[0]);
    }
    Ok(max as usize + 1)
}

/// Adds one entry to `table` (`EINVAL` for flags, a second route for the GSI, an
/// unknown type, a pin past `NUM_PINS` or an irqchip other than 0).
pub(crate) fn add(table: &mut [Route], e: &[u32; ENTRY_WORDS]) -> Result<(), ()> {
    let [gsi, ty, flags, _pad, a, b, ..] = *e;
    let allowed_flags = if ty == TYPE_MSI { MSI_VALID_DEVID } else { 0 };
    if flags & !allowed_flags != 0 {
        return Err(());
    }
    let slot = table.get_mut(gsi as usize).ok_or(())?;
    if *slot != Route::None {
        return Err(());
    }
    *slot = match ty {
        // irqchip, pin
        TYPE_IRQCHIP if a == 0 && b < NUM_PINS => Route::Pin(b as u16),
        TYPE_MSI => Route::Msi,
        _ => return Err(()),
    };
    Ok(())
}

/// The SPI pin of `gsi` in `table`; with no table (KVM's default routing, set when the
/// vGIC is initialised) GSI n is pin n, for the `nr_spis` SPIs.
pub(crate) fn pin(table: Option<&[Route]>, gsi: u32, nr_spis: u32) -> Option<u32> {
    match table {
        None => (gsi < nr_spis).then_some(gsi),
        Some(t) => match t.get(gsi as usize) {
            Some(Route::Pin(p)) => Some(u32::from(*p)),
            _ => None,
        },
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
        assert_eq!(check_header(4097, 0), Err(()));
        assert_eq!(check_header(1, 1), Err(()));
        assert_eq!(table_len(&[irqchip(5, 0, 1), irqchip(2, 0, 2)]), Ok(6));
        assert_eq!(table_len(&[irqchip(4096, 0, 1)]), Err(()));
        assert_eq!(table_len(&[]), Ok(1));
    }

    #[test]
    fn entries() {
        let mut t = [Route::None; 8];
        assert_eq!(add(&mut t, &irqchip(1, 0, 987)), Ok(()));
        assert_eq!(t[1], Route::Pin(987));
        assert_eq!(add(&mut t, &irqchip(2, 0, 988)), Err(())); // pin 988 = INTID 1020
        assert_eq!(add(&mut t, &irqchip(2, 1, 3)), Err(())); // irqchip 1
        assert_eq!(add(&mut t, &irqchip(1, 0, 4)), Err(())); // GSI 1 again
        let mut flagged = irqchip(3, 0, 3);
        flagged[2] = 1;
        assert_eq!(add(&mut t, &flagged), Err(()));
        let mut msi = [0; ENTRY_WORDS];
        (msi[0], msi[1], msi[2]) = (4, TYPE_MSI, MSI_VALID_DEVID);
        assert_eq!(add(&mut t, &msi), Ok(()));
        msi[0] = 5;
        msi[2] = 2;
        assert_eq!(add(&mut t, &msi), Err(()));
        let mut odd = irqchip(6, 0, 1);
        odd[1] = 3;
        assert_eq!(add(&mut t, &odd), Err(()));
        assert_eq!(pin(Some(&t), 1, 64), Some(987));
        assert_eq!(pin(Some(&t), 4, 64), None); // MSI
        assert_eq!(pin(Some(&t), 7, 64), None);
        assert_eq!(pin(Some(&t), 100, 64), None);
        assert_eq!(pin(None, 63, 64), Some(63));
        assert_eq!(pin(None, 64, 64), None);
    }
}
