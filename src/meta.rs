//! The two meta pages (pages 0 and 1): the root of everything. Commit `txid` writes slot
//! `txid % 2`, so the previous commit's meta is never overwritten by the next one.

use crate::error::{Error, Result};
use crate::page::{rd_u32, rd_u64, seal, wr_u32, wr_u64, ChildRef, Header, PageType, REF_SIZE};
use crate::FORMAT_VERSION;

/// "DEADBOLT" read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"DEADBOLT");
/// Smallest and largest page sizes.
pub(crate) const MIN_PAGE: usize = 1024;
pub(crate) const MAX_PAGE: usize = 65536;

/// The decoded contents of a meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    pub flags: u32,
    pub txid: u64,
    /// Newest txid known durable when this commit began writing: pages with a larger txid
    /// were written in this commit (or in unsynced ones before it) and are verified at open.
    pub durable_base: u64,
    /// High-water mark: pages `[0, hwm)` are in use (reachable or free).
    pub hwm: u64,
    pub root: ChildRef,
    pub freelist: ChildRef,
}

pub(crate) fn valid_page_size(p: usize) -> bool {
    p.is_power_of_two() && (MIN_PAGE..=MAX_PAGE).contains(&p)
}

impl Meta {
    /// Encode into a fresh page-sized buffer for slot `txid % 2`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.page_size as usize];
        wr_u64(&mut b, 32, MAGIC);
        wr_u32(&mut b, 40, FORMAT_VERSION);
        wr_u32(&mut b, 44, self.page_size);
        wr_u32(&mut b, 48, self.flags);
        wr_u32(&mut b, 52, 0);
        wr_u64(&mut b, 56, self.txid);
        wr_u64(&mut b, 64, self.durable_base);
        wr_u64(&mut b, 72, self.hwm);
        self.root.encode(&mut b[80..80 + REF_SIZE]);
        self.freelist.encode(&mut b[104..104 + REF_SIZE]);
        seal(&mut b, PageType::Meta, 0, self.txid % 2, self.txid);
        b
    }

    /// Decode and verify the meta in slot `slot`, whose page starts at `b` (at least
    /// `page_size` bytes when valid). Any mismatch is an error naming the slot.
    pub(crate) fn decode(b: &[u8], slot: u64) -> Result<Meta> {
        let bad = |d: String| Error::corrupt(slot, d);
        let h = Header::parse(b).ok_or_else(|| bad("meta page truncated".into()))?;
        let magic = rd_u64(b, 32).unwrap_or(0);
        if magic != MAGIC {
            return Err(bad(format!("bad magic {magic:#018x}")));
        }
        let version = rd_u32(b, 40).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let page_size = rd_u32(b, 44).unwrap_or(0);
        if !valid_page_size(page_size as usize) {
            return Err(bad(format!("invalid page size {page_size}")));
        }
        let span = b
            .get(..page_size as usize)
            .ok_or_else(|| bad("meta page truncated".into()))?;
        let crc = crate::page::span_crc(span);
        if crc != h.crc {
            return Err(bad(format!(
                "meta checksum {:#010x}, computed {crc:#010x}",
                h.crc
            )));
        }
        if h.ptype != PageType::Meta as u8 || h.pgid != slot || h.overflow != 0 {
            return Err(bad(format!(
                "meta header says type {} page {} overflow {}",
                h.ptype, h.pgid, h.overflow
            )));
        }
        let m = Meta {
            page_size,
            flags: rd_u32(b, 48).unwrap_or(0),
            txid: rd_u64(b, 56).unwrap_or(0),
            durable_base: rd_u64(b, 64).unwrap_or(0),
            hwm: rd_u64(b, 72).unwrap_or(0),
            root: b.get(80..).and_then(ChildRef::decode).unwrap_or_default(),
            freelist: b.get(104..).and_then(ChildRef::decode).unwrap_or_default(),
        };
        if m.txid != h.txid || m.txid % 2 != slot {
            return Err(bad(format!(
                "meta txid {} does not belong in slot {slot}",
                m.txid
            )));
        }
        if m.durable_base > m.txid {
            return Err(bad(format!(
                "durable base {} above txid {}",
                m.durable_base, m.txid
            )));
        }
        if m.hwm < 2 {
            return Err(bad(format!("high-water mark {}", m.hwm)));
        }
        for (what, r) in [("root", m.root), ("freelist", m.freelist)] {
            if !r.is_empty() && (r.pgid < 2 || r.pgid >= m.hwm || r.txid > m.txid) {
                return Err(bad(format!(
                    "{what} pointer to page {} (txid {}) outside [2, {}) / after txid {}",
                    r.pgid, r.txid, m.hwm, m.txid
                )));
            }
        }
        Ok(m)
    }
}
