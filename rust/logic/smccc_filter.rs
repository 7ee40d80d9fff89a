// SPDX-License-Identifier: GPL-2.0

//! The SMCCC filter (`KVM_ARM_VM_SMCCC_CTRL`/`KVM_ARM_VM_SMCCC_FILTER`): userspace maps
//! ranges of SMCCC function ids to an action, which decides a guest's HVC or SMC before
//! rkvm's own handling does. Ranges never overlap; an id no range covers is handled.
//!
//! KVM counterpart: `kvm_smccc_set_filter`, `kvm_smccc_filter_get_action` and
//! `kvm_smccc_filter_insert_reserved` (`arch/arm64/kvm/hypercalls.c`), where the ranges
//! live in a maple tree. Here they are a sorted array of fixed capacity, allocated with
//! the VM; a filter with more ranges gets `NoMemory`, KVM's failed allocation.

/// What happens to a call (`enum kvm_smccc_filter_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Handled in the kernel, as without a filter.
    Handle,
    /// Answered `NOT_SUPPORTED` in the kernel.
    Deny,
    /// Forwarded to userspace as `KVM_EXIT_HYPERCALL`.
    FwdToUser,
}

/// `KVM_SMCCC_FILTER_HANDLE`, `_DENY` and `_FWD_TO_USER`.
pub(crate) const FILTER_HANDLE: u8 = 0;
pub(crate) const FILTER_DENY: u8 = 1;
pub(crate) const FILTER_FWD_TO_USER: u8 = 2;

impl Action {
    const fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            FILTER_HANDLE => Self::Handle,
            FILTER_DENY => Self::Deny,
            FILTER_FWD_TO_USER => Self::FwdToUser,
            _ => return None,
        })
    }
}

/// Why a range was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FilterError {
    /// Padding set, no functions, a range that wraps, or an unknown action: `EINVAL`.
    Invalid,
    /// The range meets one already inserted or reserved: `EEXIST`.
    Exists,
    /// No room for another range: `ENOMEM`.
    NoMemory,
}

/// `struct kvm_smccc_filter` as userspace passes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) base: u32,
    pub(crate) nr_functions: u32,
    pub(crate) action: u8,
    pub(crate) pad_zero: bool,
}

impl Request {
    /// Checks the request as KVM does before it looks at the VM.
    pub(crate) fn validate(self) -> Result<Validated, FilterError> {
        let action = Action::from_raw(self.action).ok_or(FilterError::Invalid)?;
        if !self.pad_zero || self.nr_functions == 0 {
            return Err(FilterError::Invalid);
        }
        let end = self
            .base
            .checked_add(self.nr_functions - 1)
            .ok_or(FilterError::Invalid)?;
        Ok(Validated {
            start: self.base,
            end,
            action,
        })
    }
}

/// A well-formed range, ready to insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validated {
    start: u32,
    end: u32,
    action: Action,
}

/// The Arm Architecture Calls, SMC32 and SMC64 (0x8000_0000..=0x8000_FFFF and
/// 0xC000_0000..=0xC000_FFFF), which KVM reserves as "handle" when the first range is
/// inserted so that userspace cannot misreport the Spectre mitigation calls.
const RESERVED: [(u32, u32); 2] = [(0x8000_0000, 0x8000_ffff), (0xc000_0000, 0xc000_ffff)];

/// Ranges a filter holds at most, the two reserved ones included.
pub(crate) const MAX_RANGES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u32,
    /// Inclusive.
    end: u32,
    action: Action,
}

/// A VM's filter; empty (every call handled) until userspace inserts a range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Filter {
    ranges: [Range; MAX_RANGES],
    len: usize,
}

impl Filter {
    pub(crate) const fn new() -> Self {
        Self {
            ranges: [Range {
                start: 0,
                end: 0,
                action: Action::Handle,
            }; MAX_RANGES],
            len: 0,
        }
    }

    /// Whether userspace has inserted a range (KVM's `kvm_smccc_filter_configured`).
    pub(crate) const fn configured(&self) -> bool {
        self.len != 0
    }

    /// Inserts a range; the first one brings the reserved ranges with it. Nothing changes
    /// on an error. (A VM that has run is refused before this, with `EBUSY`.)
    pub(crate) fn insert(&mut self, range: Validated) -> Result<(), FilterError> {
        let mut next = *self;
        if !next.configured() {
            for (start, end) in RESERVED {
                next.insert_range(start, end, Action::Handle)?;
            }
        }
        next.insert_range(range.start, range.end, range.action)?;
        *self = next;
        Ok(())
    }

    fn insert_range(&mut self, start: u32, end: u32, action: Action) -> Result<(), FilterError> {
        let used = &self.ranges[..self.len];
        let at = used.partition_point(|r| r.end < start);
        if used.get(at).is_some_and(|r| r.start <= end) {
            return Err(FilterError::Exists);
        }
        if self.len == MAX_RANGES {
            return Err(FilterError::NoMemory);
        }
        self.ranges.copy_within(at..self.len, at + 1);
        self.ranges[at] = Range { start, end, action };
        self.len += 1;
        Ok(())
    }

    /// The action for function id `func`: the covering range's, or `Handle`.
    pub(crate) fn action(&self, func: u32) -> Action {
        let used = &self.ranges[..self.len];
        let at = used.partition_point(|r| r.end < func);
        match used.get(at) {
            Some(r) if r.start <= func => r.action,
            _ => Action::Handle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(base: u32, nr: u32, action: u8) -> Request {
        Request {
            base,
            nr_functions: nr,
            action,
            pad_zero: true,
        }
    }

    impl Filter {
        fn put(&mut self, r: Request) -> Result<(), FilterError> {
            self.insert(r.validate()?)
        }
    }

    #[test]
    fn empty_filter_handles_everything() {
        let f = Filter::new();
        assert!(!f.configured());
        assert_eq!(f.action(0x8400_0000), Action::Handle);
    }

    #[test]
    fn ranges_and_actions() {
        let mut f = Filter::new();
        // PSCI_VERSION (0x8400_0000) forwarded, the rest of PSCI's SMC32 range denied.
        f.put(req(0x8400_0000, 1, 2)).unwrap();
        f.put(req(0x8400_0001, 0x1e, 1)).unwrap();
        assert!(f.configured());
        assert_eq!(f.action(0x8400_0000), Action::FwdToUser);
        assert_eq!(f.action(0x8400_0001), Action::Deny);
        assert_eq!(f.action(0x8400_001e), Action::Deny);
        assert_eq!(f.action(0x8400_001f), Action::Handle);
        assert_eq!(f.action(0xc400_0003), Action::Handle);
        // The reserved architecture ranges are handled and cannot be claimed.
        assert_eq!(f.action(0x8000_0000), Action::Handle);
        assert_eq!(f.put(req(0x8000_8000, 1, 2)), Err(FilterError::Exists));
        assert_eq!(f.put(req(0xbfff_ffff, 2, 1)), Err(FilterError::Exists));
        assert_eq!(f.put(req(0xc000_ffff, 1, 1)), Err(FilterError::Exists));
        f.put(req(0xc001_0000, 1, 1)).unwrap();
        // Overlap with a user range, at either end.
        assert_eq!(f.put(req(0x83ff_ffff, 2, 1)), Err(FilterError::Exists));
        assert_eq!(f.put(req(0x8400_001e, 1, 1)), Err(FilterError::Exists));
        // The last id of the space can be filtered; a range past it wraps.
        f.put(req(0xffff_ffff, 1, 1)).unwrap();
        assert_eq!(f.action(0xffff_ffff), Action::Deny);
        assert_eq!(f.put(req(0xffff_fff0, 0x20, 1)), Err(FilterError::Invalid));
    }

    #[test]
    fn invalid_requests_change_nothing() {
        let mut f = Filter::new();
        assert_eq!(f.put(req(0x100, 0, 1)), Err(FilterError::Invalid));
        assert_eq!(f.put(req(0x100, 1, 3)), Err(FilterError::Invalid));
        let mut r = req(0x100, 1, 1);
        r.pad_zero = false;
        assert_eq!(f.put(r), Err(FilterError::Invalid));
        // A refused first range does not leave the reserved ones behind.
        assert_eq!(f.put(req(0x8000_0001, 1, 1)), Err(FilterError::Exists));
        assert!(!f.configured());
    }

    #[test]
    fn capacity() {
        let mut f = Filter::new();
        for i in 0..(MAX_RANGES - 2) as u32 {
            f.put(req(i * 2, 1, 1)).unwrap();
        }
        assert_eq!(f.put(req(0x1_0000, 1, 1)), Err(FilterError::NoMemory));
        assert_eq!(f.action(2), Action::Deny);
        assert_eq!(f.action(3), Action::Handle);
    }
}
