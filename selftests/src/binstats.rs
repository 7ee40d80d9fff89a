// SPDX-License-Identifier: GPL-2.0

//! Reading KVM's binary statistics (`KVM_GET_STATS_FD`): the header, the id string, the
//! descriptors and the data, parsed as `include/uapi/linux/kvm.h` lays them out.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `sizeof(struct kvm_stats_header)`.
pub const HEADER_SIZE: usize = std::mem::size_of::<kvm_bindings::kvm_stats_header>();

/// `struct kvm_stats_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub flags: u32,
    pub name_size: u32,
    pub num_desc: u32,
    pub id_offset: u32,
    pub desc_offset: u32,
    pub data_offset: u32,
}

/// One `struct kvm_stats_desc` with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desc {
    pub flags: u32,
    pub exponent: i16,
    pub size: u16,
    pub offset: u32,
    pub bucket_size: u32,
    /// The name field's bytes (`name_size` of them).
    pub raw_name: Vec<u8>,
}

impl Desc {
    /// The name up to its NUL (`None` if the field has no NUL).
    pub fn name(&self) -> Option<String> {
        let end = self.raw_name.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&self.raw_name[..end]).into_owned())
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// `pread(fd, len, pos)`: the bytes, or the errno.
pub fn pread(fd: RawFd, len: usize, pos: u64) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is valid for `len` bytes.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), len, pos as libc::off_t) };
    if n < 0 {
        return Err(crate::errno());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// An open stats fd with its parsed header and descriptors.
pub struct Stats {
    pub fd: OwnedFd,
    pub header: Header,
    pub id: Vec<u8>,
    pub descs: Vec<Desc>,
}

impl Stats {
    /// `KVM_GET_STATS_FD` on `fd` (a VM or vCPU fd), then the header, id and descriptors.
    pub fn open(fd: RawFd) -> Result<Self, String> {
        // SAFETY: the command takes no argument.
        let ret = unsafe { crate::vmm::ioctl_raw(fd, crate::vmm::nr::KVM_GET_STATS_FD, 0) }
            .map_err(|e| format!("KVM_GET_STATS_FD: {}", crate::errno_name(e)))?;
        // SAFETY: a fresh fd this process owns.
        let fd = unsafe { OwnedFd::from_raw_fd(ret) };
        Self::parse(fd)
    }

    fn parse(fd: OwnedFd) -> Result<Self, String> {
        let raw = fd.as_raw_fd();
        let h = pread(raw, HEADER_SIZE, 0)
            .map_err(|e| format!("reading the header: {}", crate::errno_name(e)))?;
        if h.len() != HEADER_SIZE {
            return Err(format!("short header: {} bytes", h.len()));
        }
        let header = Header {
            flags: u32_at(&h, 0),
            name_size: u32_at(&h, 4),
            num_desc: u32_at(&h, 8),
            id_offset: u32_at(&h, 12),
            desc_offset: u32_at(&h, 16),
            data_offset: u32_at(&h, 20),
        };
        let id = pread(raw, header.name_size as usize, u64::from(header.id_offset))
            .map_err(|e| format!("id: {e}"))?;
        let dsize = 16 + header.name_size as usize;
        let all = pread(
            raw,
            dsize * header.num_desc as usize,
            u64::from(header.desc_offset),
        )
        .map_err(|e| format!("descriptors: {e}"))?;
        if all.len() != dsize * header.num_desc as usize {
            return Err(format!("short descriptor block: {} bytes", all.len()));
        }
        let descs = all
            .chunks_exact(dsize)
            .map(|d| Desc {
                flags: u32_at(d, 0),
                exponent: i16::from_ne_bytes([d[4], d[5]]),
                size: u16::from_ne_bytes([d[6], d[7]]),
                offset: u32_at(d, 8),
                bucket_size: u32_at(d, 12),
                raw_name: d[16..].to_vec(),
            })
            .collect();
        Ok(Self {
            fd,
            header,
            id,
            descs,
        })
    }

    /// The id string up to its NUL.
    pub fn id(&self) -> String {
        let end = self
            .id
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.id.len());
        String::from_utf8_lossy(&self.id[..end]).into_owned()
    }

    /// Size of the data block.
    pub fn data_len(&self) -> usize {
        self.descs
            .iter()
            .map(|d| d.offset as usize + 8 * usize::from(d.size))
            .max()
            .unwrap_or(0)
    }

    /// Every statistic's first value, by name, from one read of the data block.
    pub fn values(&self) -> Result<HashMap<String, u64>, String> {
        Ok(self
            .items()?
            .into_iter()
            .map(|(name, v)| (name, v.first().copied().unwrap_or(0)))
            .collect())
    }

    /// Every statistic's values (one per bucket for histograms), by name, from one read
    /// of the data block.
    pub fn items(&self) -> Result<HashMap<String, Vec<u64>>, String> {
        let data = pread(
            self.fd.as_raw_fd(),
            self.data_len(),
            u64::from(self.header.data_offset),
        )
        .map_err(|e| format!("data: {e}"))?;
        let mut out = HashMap::new();
        for d in &self.descs {
            let (at, n) = (d.offset as usize, usize::from(d.size));
            let v = data
                .get(at..at + 8 * n)
                .ok_or_else(|| format!("short data block: {} bytes", data.len()))?;
            out.insert(
                d.name().unwrap_or_default(),
                v.chunks_exact(8)
                    .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
                    .collect(),
            );
        }
        Ok(out)
    }
}
