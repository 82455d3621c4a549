//! Verification: a page is used only after its id, type, level, txid and checksum agree with
//! the pointer that led to it and its structure is sound; the free-space chain and the pages of
//! the newest commit are checked the same way at open.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::freelist::{decode_record, Record, KIND_FULL, MAX_CHAIN};
use crate::format::meta::{Meta, MIN_PAGE};
use crate::format::page::{
    prefetch_lines, span_crc, BucketRoot, BucketValue, ChildRef, Header, Page, PageType,
};
use crate::limits::MAX_DEPTH;
use crate::planted;
use crate::store::free::{FreeState, RunSet};
use crate::store::shared::Store;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Expect {
    Node,
    Freelist,
}

/// A free-space chain as [`FreeState::chain`] holds it: pointer and span of each record.
type Chain = Vec<(ChildRef, u64)>;

impl Store {
    /// Load and (first time, or always with `verify_every_access`) verify the span that `r`
    /// points to in a snapshot whose bytes are `bytes` and high-water mark is `hwm`: page id in
    /// range and matching the header, type as the parent implies, txid and checksum equal to
    /// the parent's record, span inside the file, and the page's structure.
    #[inline]
    pub(crate) fn load_span<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
        want: Expect,
    ) -> Result<(Header, &'a [u8])> {
        self.load_span_opt(bytes, hwm, r, want, false)
    }

    /// [`Store::load_span`], verifying even a page already verified when `force` is set.
    pub(crate) fn load_span_opt<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
        want: Expect,
        force: bool,
    ) -> Result<(Header, &'a [u8])> {
        let (h, span) = self.locate(bytes, hwm, r, want)?;
        if force || self.opts.verify_every_access || !self.verified.is(r.pgid) {
            self.verify_span(r, &h, span, want)?;
        }
        Ok((h, span))
    }

    /// The span `r` points to, with its header checked against `r` and `want` (id, type,
    /// txid, overflow inside the high-water mark and the file); its bytes are not yet checked.
    #[inline]
    fn locate<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
        want: Expect,
    ) -> Result<(Header, &'a [u8])> {
        let p = self.page_size as u64;
        let bad = |d: String| Error::corrupt(r.pgid, d);
        if r.pgid < 2 || r.pgid >= hwm {
            return Err(bad(format!("page id outside [2, {hwm})")));
        }
        let off = r.pgid * p;
        let first = usize::try_from(off)
            .ok()
            .and_then(|o| bytes.get(o..o + self.page_size))
            .ok_or_else(|| {
                bad(format!(
                    "page lies past the end of the file ({} bytes)",
                    bytes.len()
                ))
            })?;
        let h = Header::parse(first).ok_or_else(|| bad("truncated header".into()))?;
        if h.pgid != r.pgid {
            return Err(bad(format!(
                "header names page {} (misdirected write?)",
                h.pgid
            )));
        }
        let ok_type = match want {
            Expect::Node => h.ptype == PageType::Branch as u8 || h.ptype == PageType::Leaf as u8,
            Expect::Freelist => h.ptype == PageType::Freelist as u8,
        };
        if !ok_type {
            let found = PageType::from_u8(h.ptype).map_or("unknown", |t| t.name());
            return Err(bad(format!(
                "expected a {} page, found type {} ({found})",
                if want == Expect::Node {
                    "branch or leaf"
                } else {
                    "freelist"
                },
                h.ptype
            )));
        }
        let no_parent_check = planted::NO_PARENT_CHECKSUM;
        if h.txid != r.txid && !no_parent_check {
            return Err(bad(format!(
                "page written by txid {}, its parent expects txid {} (lost or stale write?)",
                h.txid, r.txid
            )));
        }
        let over = h.overflow as u64;
        if over > self.max_overflow || r.pgid + 1 + over > hwm {
            return Err(bad(format!(
                "overflow of {over} pages runs past the high-water mark {hwm}"
            )));
        }
        let span_len = (1 + over) * p;
        let span = usize::try_from(off)
            .ok()
            .zip(usize::try_from(span_len).ok())
            .and_then(|(o, l)| bytes.get(o..o.checked_add(l)?))
            .ok_or_else(|| bad("page span lies past the end of the file".into()))?;
        Ok((h, span))
    }

    /// Check a located span's checksum against its parent's record and its header, and (for a
    /// node) its structure; remember it as verified.
    fn verify_span(&self, r: &ChildRef, h: &Header, span: &[u8], want: Expect) -> Result<()> {
        let bad = |d: String| Error::corrupt(r.pgid, d);
        let crc = span_crc(span);
        let expect = if planted::NO_PARENT_CHECKSUM {
            h.crc
        } else {
            r.crc
        };
        if crc != expect || crc != h.crc {
            return Err(bad(format!(
                "checksum mismatch: parent records {:#010x}, header {:#010x}, computed {crc:#010x}",
                r.crc, h.crc
            )));
        }
        if want == Expect::Node {
            let page = Page::from_header(r.pgid, h, span);
            page.validate()?;
        }
        self.counters.pages_verified.fetch_add(1, Ordering::Relaxed);
        if !self.opts.verify_every_access {
            self.verified.set(r.pgid);
        }
        Ok(())
    }

    /// The node page `r` points to (see [`Store::load_span`]). The hot path of every read: a
    /// page verified before takes only the header checks against `r`, here, with no `Result`
    /// or header struct built; anything else (first read, a mismatch, an error to describe)
    /// takes the full path.
    #[inline]
    pub(crate) fn load_page<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
    ) -> Result<Page<'a>> {
        match self.load_verified(bytes, hwm, r) {
            Some(p) => Ok(p),
            None => self.load_page_slow(bytes, hwm, r),
        }
    }

    /// [`Store::load_page`] for a page already verified whose header agrees with `r` in id,
    /// type, txid and span (the checks [`Store::locate`] makes); `None` otherwise.
    #[inline]
    fn load_verified<'a>(&self, bytes: &'a [u8], hwm: u64, r: &ChildRef) -> Option<Page<'a>> {
        if self.opts.verify_every_access || r.pgid < 2 || r.pgid >= hwm {
            return None;
        }
        let off = usize::try_from(r.pgid).ok()?.checked_mul(self.page_size)?;
        prefetch_head(bytes, off);
        let h = Header::parse(bytes.get(off..)?)?;
        let leaf = h.ptype == PageType::Leaf as u8;
        let over = u64::from(h.overflow);
        if !(leaf || h.ptype == PageType::Branch as u8)
            || h.pgid != r.pgid
            || (h.txid != r.txid && !planted::NO_PARENT_CHECKSUM)
            || over > self.max_overflow
            || r.pgid + 1 + over > hwm
            || !self.verified.is(r.pgid)
        {
            return None;
        }
        let len = (h.overflow as usize + 1).checked_mul(self.page_size)?;
        let data = bytes.get(off..off.checked_add(len)?)?;
        Some(Page::from_header(r.pgid, &h, data))
    }

    #[cold]
    #[inline(never)]
    fn load_page_slow<'a>(&self, bytes: &'a [u8], hwm: u64, r: &ChildRef) -> Result<Page<'a>> {
        let (h, span) = self.load_span(bytes, hwm, r, Expect::Node)?;
        Ok(Page::from_header(r.pgid, &h, span))
    }

    /// Load the free-space chain of `meta`: at most [`MAX_CHAIN`] records, every run inside the
    /// high-water mark, no run freed twice, none overlapping the chain's own pages.
    pub(crate) fn load_freelist(&self, bytes: &[u8], meta: &Meta) -> Result<FreeState> {
        let (chain, records) = self.read_chain(bytes, meta)?;
        let mut set = RunSet::default();
        // Oldest record first: the full record at the end of the chain, then the deltas.
        for (rec, &(at, _)) in records.iter().zip(&chain).rev() {
            for &(s, l) in &rec.add {
                if !set.insert(s, l) {
                    let d = format!("free run {s}+{l} listed twice (chain page {})", at.pgid);
                    return Err(Error::corrupt(s, d));
                }
            }
            for &(s, l) in &rec.remove {
                if !set.remove(s, l) {
                    let d = format!(
                        "allocated run {s}+{l} was not free (chain page {})",
                        at.pgid
                    );
                    return Err(Error::corrupt(s, d));
                }
            }
            set.clip(rec.hwm);
        }
        set.clip(meta.hwm);
        for &(r, n) in &chain {
            if let Some(p) = (r.pgid..r.pgid + n).find(|&p| set.contains(p)) {
                return Err(Error::corrupt(p, "freelist record page is listed as free"));
            }
        }
        Ok(FreeState {
            free: set,
            pending: BTreeMap::new(),
            chain,
        })
    }

    /// The records of `meta`'s free-space chain, newest first, with the pointer and span of
    /// each: verified like any page, newer than nothing the meta does not know, at most
    /// [`MAX_CHAIN`] long, and ending at a full record whose count matches the chain.
    fn read_chain(&self, bytes: &[u8], meta: &Meta) -> Result<(Chain, Vec<Record>)> {
        let mut chain = Vec::new();
        let mut records: Vec<Record> = Vec::new();
        let mut next = meta.freelist;
        while !next.is_empty() {
            let bad = |d: &str| Err(Error::corrupt(next.pgid, d));
            if chain.len() as u32 >= MAX_CHAIN {
                return bad("freelist chain longer than its bound");
            }
            if next.txid > meta.txid {
                return bad("freelist record newer than its meta");
            }
            let (_, span) = self.load_span(bytes, meta.hwm, &next, Expect::Freelist)?;
            let rec = decode_record(span, next.pgid)?;
            let expect_len = records.first().map_or(0, |r| r.chain_len) as usize;
            if !records.is_empty() && rec.chain_len as usize + chain.len() != expect_len {
                return bad("freelist chain lengths do not line up");
            }
            chain.push((next, span.len() as u64 / self.page_size as u64));
            next = rec.prev;
            let full = rec.kind == KIND_FULL;
            records.push(rec);
            if full {
                break;
            }
        }
        if records
            .first()
            .is_some_and(|r| r.chain_len as usize != records.len())
        {
            return Err(Error::corrupt(
                meta.freelist.pgid,
                "freelist chain is missing records",
            ));
        }
        Ok((chain, records))
    }

    /// Verify the pages written by the commits after `base` up to `meta`'s (`base` is its
    /// `durable_base`, or for a confirmed commit `txid - 1`: its own pages only): every page
    /// reachable from the root whose txid is above `base`, walking only those, so the cost is
    /// proportional to the last commits, not to the database. The file length is checked
    /// always.
    pub(crate) fn verify_commit(&self, bytes: &[u8], meta: &Meta, base: u64) -> Result<()> {
        let p = self.page_size as u64;
        let need = meta
            .hwm
            .checked_mul(p)
            .ok_or_else(|| Error::corrupt(meta.slot(), "high-water mark overflows"))?;
        if need > bytes.len() as u64 {
            return Err(Error::corrupt(
                meta.slot,
                format!(
                    "high-water mark {} lies past the end of the file ({} bytes)",
                    meta.hwm,
                    bytes.len()
                ),
            ));
        }
        if planted::SKIP_OPEN_VERIFY {
            return Ok(());
        }
        let mut stack: Vec<(ChildRef, usize)> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        if !meta.root.is_empty() && meta.root.txid > base {
            stack.push((meta.root, 0));
        }
        while let Some((r, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(Error::too_deep(r.pgid));
            }
            if !seen.insert(r.pgid) || seen.len() as u64 > meta.hwm {
                return Err(Error::corrupt(r.pgid, "page reachable twice"));
            }
            if r.txid > meta.txid {
                return Err(Error::corrupt(
                    r.pgid,
                    format!("page txid {} newer than its commit {}", r.txid, meta.txid),
                ));
            }
            let page = self.load_page(bytes, meta.hwm, &r)?;
            for i in 0..page.count {
                if page.leaf {
                    let it = page.leaf_item(i)?;
                    if it.bucket {
                        // An inline bucket is part of this page, verified with it.
                        let h = BucketValue::decode(it.value, r.pgid, self.page_size)?;
                        if let BucketRoot::Tree(root) = h.root {
                            if !root.is_empty() && root.txid > base {
                                stack.push((root, 0));
                            }
                        }
                    }
                } else {
                    let c = page.child(i)?;
                    if c.txid > base {
                        stack.push((c, depth + 1));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Cache lines after a page's header that [`prefetch_head`] asks for: the first KiB of the
/// page, which holds every element of a leaf of up to 60 entries (the benchmark's leaves of
/// 24-byte keys and 150-byte values hold about 21); of a branch it holds the first 30 or so
/// elements, not where its first probes land, and prefetching the whole page was no better.
/// Side by side on an AMD EPYC (`profile deadbolt reads 1000000`, 5 x 1,000,000 random gets),
/// no prefetch took 6.3-7.9 s, 7 lines 6.0-6.3 s, 15 lines 4.5-5.5 s, 31 lines about the same
/// as 15, the whole page (63) no better; LMDB 6.7-7.4 s in the same runs.
const PREFETCH_LINES: usize = 15;

/// Ask the CPU for the cache lines right after the header of the page at byte `off` (the
/// first elements, which the binary search probes next) while the header's own line, which
/// the caller reads now, is on its way: the misses overlap instead of following one another.
/// Every page size is at least [`MIN_PAGE`] = 1 KiB: the lines lie inside the page.
#[inline]
fn prefetch_head(bytes: &[u8], off: usize) {
    const _: () = assert!((PREFETCH_LINES + 1) * 64 <= MIN_PAGE);
    prefetch_lines::<PREFETCH_LINES>(bytes, off.saturating_add(64));
}
