//! The two meta pages (pages 0 and 1): the root of everything. A commit writes its meta into
//! the slot that does not hold the newest *synced* commit, so the state a power cut falls back
//! to is never overwritten before a sync: durable commits alternate slots, and unsynced
//! (`no_sync`) commits after a sync all reuse the one slot until the next sync
//! (docs/FORMAT.md, section 7).

use crate::error::{Error, Result};
use crate::format::page::{
    rd_u32, rd_u64, seal, wr_u32, wr_u64, ChildRef, Header, PageType, REF_SIZE,
};
use crate::limits::FORMAT_VERSION;

/// The oldest format this build reads. Version 2 differs from 3 only in having no inline
/// buckets, 3 from 4 only in where a meta may stand (in version 3 always slot `txid % 2`,
/// a placement version 4 still allows), 4 from 5 only in the key prefixes of the pages
/// that carry the prefix flag (a page without it reads as before), 5 from 6 only in inline
/// buckets holding inline buckets (an older file has none), and 6 from 7 only in the compact
/// encoding of inline buckets (told apart from the older page image by its first byte), so
/// older files read as they are; their next commit writes version-7 metas (and an older build
/// then refuses the file, as it must: it could not read an inline bucket, would take a meta
/// outside slot `txid % 2` for damage, would reject a page's flags as unknown, an inline
/// bucket's nested bucket, or a compact inline bucket, as corruption).
pub(crate) const OLDEST_READABLE_VERSION: u32 = 2;

/// "DEADBOLT" read as a little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"DEADBOLT");
/// Meta flag: this page is the *confirmation* of commit `txid`, a copy of its meta written into
/// the other slot than its commit's, after the commit was synced. It says the commit is durable,
/// so open never rolls it back (docs/FORMAT.md, section 7).
pub(crate) const FLAG_CONFIRMATION: u32 = 1;
/// Smallest and largest page sizes.
pub(crate) const MIN_PAGE: usize = 1024;
pub(crate) const MAX_PAGE: usize = 65536;

/// The decoded contents of a meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    /// A confirmation copy ([`FLAG_CONFIRMATION`]), stored in the slot other than its
    /// commit's.
    pub confirmation: bool,
    /// The slot (0 or 1) this meta is stored in, sealed into its page header.
    pub slot: u64,
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
    /// The meta of an empty database at commit `txid` (a new file holds commits 0 and 1).
    pub(crate) fn empty(page_size: usize, txid: u64) -> Meta {
        Meta {
            page_size: page_size as u32,
            confirmation: false,
            slot: txid % 2,
            txid,
            durable_base: 0,
            hwm: 2,
            root: ChildRef::EMPTY,
            freelist: ChildRef::EMPTY,
        }
    }

    /// The slot this meta is stored in.
    pub(crate) fn slot(&self) -> u64 {
        self.slot
    }

    /// The confirmation copy of this (plain) meta, for the other slot.
    pub(crate) fn confirmation_copy(&self) -> Meta {
        Meta {
            confirmation: true,
            slot: 1 - self.slot,
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

    /// The same commit without the confirmation flag (what a reader uses), in its own slot.
    pub(crate) fn plain(&self) -> Meta {
        if !self.confirmation {
            return *self;
        }
        Meta {
            confirmation: false,
            slot: 1 - self.slot,
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
        seal(&mut b, PageType::Meta, (0, 0), 0, self.slot(), self.txid);
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
        let crc = crate::format::page::span_crc(span);
        if crc != h.crc {
            return Err(bad(format!(
                "meta checksum {:#010x}, computed {crc:#010x}",
                h.crc
            )));
        }
        let version = rd_u32(b, 40).unwrap_or(0);
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
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
            slot,
            txid: rd_u64(b, 56).unwrap_or(0),
            durable_base: rd_u64(b, 64).unwrap_or(0),
            hwm: rd_u64(b, 72).unwrap_or(0),
            root: b.get(80..).and_then(ChildRef::decode).unwrap_or_default(),
            freelist: b.get(104..).and_then(ChildRef::decode).unwrap_or_default(),
        };
        // Version 3 and older placed every meta by its txid; version 4 by which slot held the
        // newest synced commit, which the page header's slot (checked above) already pins.
        let by_txid = (m.txid + u64::from(m.confirmation)) % 2 == slot;
        if m.txid != h.txid || (version < 4 && !by_txid) {
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

fn read_meta(bytes: &[u8], slot: u64, page_size: usize) -> Result<Meta> {
    let off = slot as usize * page_size;
    let b = bytes
        .get(off..)
        .filter(|b| b.len() >= MIN_PAGE)
        .ok_or_else(|| Error::corrupt(slot, "file too short for this meta page"))?;
    let m = Meta::decode(b, slot)?;
    if m.page_size as usize != page_size {
        return Err(Error::corrupt(
            slot,
            format!("page size {} disagrees with its position", m.page_size),
        ));
    }
    Ok(m)
}

/// bbolt's meta magic, at byte 16 of its meta pages (after bbolt's 16-byte page header).
const BOLT_MAGIC: u32 = 0xED0C_DAED;

/// Decode both meta pages: the page size, the valid metas newest first (a commit and its
/// confirmation copy both appear), and why any slot did not decode.
///
/// A file with no deadbolt meta at all is [`Error::InvalidFile`] (a bbolt file is named as one,
/// with the command that converts it); one with the magic but no valid meta is
/// [`Error::Corruption`]; a meta of another format version is [`Error::UnsupportedVersion`],
/// even when the other slot is of this version, since opening at the older slot would pass an
/// older state off as the current one.
pub(crate) fn decode_metas(bytes: &[u8]) -> Result<(usize, Vec<Meta>, Vec<String>)> {
    // Page size: from meta 0 when it decodes, otherwise probe each legal size for meta 1.
    let mut candidates = Vec::new();
    let mut damaged = Vec::new();
    let mut page_size = None;
    let mut other_version = None;
    match Meta::decode(bytes, 0) {
        Ok(m) => {
            page_size = Some(m.page_size as usize);
            candidates.push(m);
        }
        Err(Error::UnsupportedVersion { found, .. }) => other_version = Some(found),
        Err(e) => damaged.push(format!("meta 0: {e}")),
    }
    let probe: Vec<usize> = match page_size {
        Some(p) => vec![p],
        None => (10..=16).map(|s| 1usize << s).collect(),
    };
    let mut m1_err = None;
    for p in probe {
        match read_meta(bytes, 1, p) {
            Ok(m) => {
                page_size.get_or_insert(p);
                candidates.push(m);
                m1_err = None;
                break;
            }
            Err(Error::UnsupportedVersion { found, .. }) => {
                other_version = Some(found);
                m1_err = None;
                break;
            }
            Err(e) => m1_err = Some(e),
        }
    }
    if let Some(found) = other_version {
        return Err(Error::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if let Some(e) = m1_err {
        damaged.push(format!("meta 1: {e}"));
    }
    let page_size = match page_size {
        Some(p) => p,
        None => return Err(no_meta_error(bytes, &damaged)),
    };
    candidates.retain(|m| m.page_size as usize == page_size);
    candidates.sort_by_key(|m| std::cmp::Reverse(m.txid));
    Ok((page_size, candidates, damaged))
}

/// Why a file in which no meta page decodes cannot be opened: damage to a deadbolt file (its
/// magic is still in a meta slot, or its first page is zeroed), a bbolt file, or a foreign one.
fn no_meta_error(bytes: &[u8], damaged: &[String]) -> Error {
    let magic = MAGIC.to_le_bytes();
    let has_magic = std::iter::once(0)
        .chain((10..=16).map(|s| 1usize << s))
        .any(|off| bytes.get(off + 32..off + 40) == Some(&magic[..]));
    let zeroed_meta = bytes.len() >= 2 * MIN_PAGE && bytes[..MIN_PAGE].iter().all(|&b| b == 0);
    if has_magic || zeroed_meta {
        return Error::corrupt(0, format!("no valid meta page: {}", damaged.join("; ")));
    }
    let bolt = BOLT_MAGIC.to_le_bytes();
    let is_bolt = std::iter::once(0)
        .chain((9..=16).map(|s| 1usize << s))
        .any(|off| bytes.get(off + 16..off + 20) == Some(&bolt[..]));
    if is_bolt {
        return Error::InvalidFile(
            "this is a bbolt database, not a deadbolt one; convert it with \
             `deadbolt import-bolt SRC DST` (deadbolt::bolt::import_file), which never writes the source"
                .into(),
        );
    }
    Error::InvalidFile(format!(
        "no deadbolt meta page found ({} bytes): {}",
        bytes.len(),
        damaged.join("; ")
    ))
}

/// The image of a new database: commit 0 in slot 0 and commit 1 in slot 1, both empty.
pub(crate) fn initial_image(page_size: usize) -> Vec<u8> {
    let mut image = Vec::with_capacity(2 * page_size);
    for txid in 0..2u64 {
        image.extend_from_slice(&Meta::empty(page_size, txid).encode());
    }
    image
}
