//! The two meta pages (pages 0 and 1): the root of everything. Commit `txid` writes slot
//! `txid % 2`, so the previous commit's meta is never overwritten by the next one.

use crate::error::{Error, Result};
use crate::page::{rd_u32, rd_u64, seal, wr_u32, wr_u64, ChildRef, Header, PageType, REF_SIZE};
use crate::FORMAT_VERSION;

/// "DEADBOLT" read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"DEADBOLT");
/// Meta flag: this page is the *confirmation* of commit `txid`, a copy of its meta written into
/// the other slot, `(txid + 1) % 2`, after the commit was synced. It says the commit is durable,
/// so open never rolls it back (docs/FORMAT.md, section 7).
pub(crate) const FLAG_CONFIRMATION: u32 = 1;
/// Smallest and largest page sizes.
pub(crate) const MIN_PAGE: usize = 1024;
pub(crate) const MAX_PAGE: usize = 65536;

/// The decoded contents of a meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    /// A confirmation copy ([`FLAG_CONFIRMATION`]), stored in slot `(txid + 1) % 2`.
    pub confirmation: bool,
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
    /// The slot this meta is stored in: `txid % 2`, or the other one for a confirmation.
    pub(crate) fn slot(&self) -> u64 {
        (self.txid + u64::from(self.confirmation)) % 2
    }

    /// The confirmation copy of this (plain) meta.
    pub(crate) fn confirmation_copy(&self) -> Meta {
        Meta {
            confirmation: true,
            ..*self
        }
    }

    /// Newest txid this meta proves durable once it is itself on disk: its own txid for a
    /// confirmation, else the durable base its commit recorded.
    pub(crate) fn confirms(&self) -> u64 {
        if self.confirmation {
            self.txid
        } else {
            self.durable_base
        }
    }

    /// The same commit without the confirmation flag (what a reader uses).
    pub(crate) fn plain(&self) -> Meta {
        Meta {
            confirmation: false,
            ..*self
        }
    }

    /// Encode into a fresh page-sized buffer for [`Meta::slot`].
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; self.page_size as usize];
        wr_u64(&mut b, 32, MAGIC);
        wr_u32(&mut b, 40, FORMAT_VERSION);
        wr_u32(&mut b, 44, self.page_size);
        let flags = if self.confirmation {
            FLAG_CONFIRMATION
        } else {
            0
        };
        wr_u32(&mut b, 48, flags);
        wr_u32(&mut b, 52, 0);
        wr_u64(&mut b, 56, self.txid);
        wr_u64(&mut b, 64, self.durable_base);
        wr_u64(&mut b, 72, self.hwm);
        self.root.encode(&mut b[80..80 + REF_SIZE]);
        self.freelist.encode(&mut b[104..104 + REF_SIZE]);
        seal(&mut b, PageType::Meta, 0, 0, self.slot(), self.txid);
        b
    }

    /// Decode and verify the meta in slot `slot`, whose page starts at `b` (at least
    /// `page_size` bytes when valid). Any mismatch is an error naming the slot.
    ///
    /// A meta whose magic, page size and checksum are right but whose format version is not
    /// [`FORMAT_VERSION`] is [`Error::UnsupportedVersion`]: those fields and the checksum rule
    /// are the same in every version (docs/FORMAT.md, section 4), so a newer file is told apart
    /// from a damaged one.
    pub(crate) fn decode(b: &[u8], slot: u64) -> Result<Meta> {
        let bad = |d: String| Error::corrupt(slot, d);
        let h = Header::parse(b).ok_or_else(|| bad("meta page truncated".into()))?;
        let magic = rd_u64(b, 32).unwrap_or(0);
        if magic != MAGIC {
            return Err(bad(format!("bad magic {magic:#018x}")));
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
        let version = rd_u32(b, 40).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if h.ptype != PageType::Meta as u8 || h.pgid != slot || h.overflow != 0 || h.level != 0 {
            return Err(bad(format!(
                "meta header says type {} page {} overflow {} level {}",
                h.ptype, h.pgid, h.overflow, h.level
            )));
        }
        let flags = rd_u32(b, 48).unwrap_or(0);
        if flags & !FLAG_CONFIRMATION != 0 {
            return Err(bad(format!("unknown meta flags {flags:#x}")));
        }
        let m = Meta {
            page_size,
            confirmation: flags & FLAG_CONFIRMATION != 0,
            txid: rd_u64(b, 56).unwrap_or(0),
            durable_base: rd_u64(b, 64).unwrap_or(0),
            hwm: rd_u64(b, 72).unwrap_or(0),
            root: b.get(80..).and_then(ChildRef::decode).unwrap_or_default(),
            freelist: b.get(104..).and_then(ChildRef::decode).unwrap_or_default(),
        };
        if m.txid != h.txid || m.slot() != slot {
            return Err(bad(format!(
                "meta txid {} (confirmation: {}) does not belong in slot {slot}",
                m.txid, m.confirmation
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
