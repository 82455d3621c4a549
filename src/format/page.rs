//! Page codec: the byte layout of every page, decoded only through bounds-checked helpers.
//!
//! A page span is `(1 + overflow) * page_size` bytes starting at `id * page_size`. Every span
//! starts with a 32-byte header; see docs/FORMAT.md for the byte-by-byte layout.

use crate::error::{Error, Result};
use crate::limits::{MAX_DEPTH, MAX_INLINE_DEPTH, MAX_KEY_SIZE, MAX_VALUE_SIZE};

/// Size of the common page header.
pub(crate) const HEADER: usize = 32;
/// Size of a leaf element.
pub(crate) const LEAF_ELEM: usize = 16;
/// Size of a branch element.
pub(crate) const BRANCH_ELEM: usize = 32;
/// Size of an encoded [`ChildRef`].
pub(crate) const REF_SIZE: usize = 24;
/// Size of a bucket header stored as the value of a bucket entry.
pub(crate) const BUCKET_HEADER: usize = 32;

/// First byte of a compact inline bucket (format 7; docs/FORMAT.md, section 5): this bit set.
/// An older inline bucket is a page image whose first byte, the low byte of its checksum
/// field, is always 0, so one byte tells the two encodings apart.
pub(crate) const COMPACT_TAG: u8 = 0x80;
/// Compact flag (bits 0..6 of the first byte): a u64 sequence follows the count.
pub(crate) const COMPACT_SEQ: u8 = 1;
/// Size of a compact inline bucket's header: tag and flags, u16 count.
pub(crate) const COMPACT_HEADER: usize = 3;
/// Size of the optional sequence that follows it.
pub(crate) const COMPACT_SEQ_LEN: usize = 8;
/// Size of a compact element: u16 key offset, u16 key length, u16 value length and flag.
pub(crate) const COMPACT_ELEM: usize = 6;
/// Bit of a compact element's third field: the element is a nested bucket (bits 0..14 are the
/// value's length).
pub(crate) const COMPACT_BUCKET: u16 = 0x8000;
/// Smallest compact inline value: the header and one element with a one-byte key, no value.
const COMPACT_MIN: usize = COMPACT_HEADER + COMPACT_ELEM + 1;

/// Page types (byte 4 of the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageType {
    Meta = 1,
    Branch = 2,
    Leaf = 3,
    Freelist = 4,
}

impl PageType {
    pub(crate) fn from_u8(v: u8) -> Option<PageType> {
        match v {
            1 => Some(PageType::Meta),
            2 => Some(PageType::Branch),
            3 => Some(PageType::Leaf),
            4 => Some(PageType::Freelist),
            _ => None,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            PageType::Meta => "meta",
            PageType::Branch => "branch",
            PageType::Leaf => "leaf",
            PageType::Freelist => "freelist",
        }
    }
}

/// Leaf element flag: the value is a nested bucket header.
pub(crate) const FLAG_BUCKET: u8 = 1;

/// Offset of the page flags byte in the header (format 5; 0 before).
pub(crate) const PAGE_FLAGS: usize = 28;
/// Page flag: every element carries the first bytes of its key (a *key prefix*: 3 bytes in a
/// leaf element, 4 in a branch element), so a search probe compares the element's own bytes
/// and reads the key only when the prefixes are equal: one cache line per probe, not two.
pub(crate) const FLAG_PREFIXED: u8 = 1;
/// Prefix bytes in a leaf element (bytes 1..4) and in a branch element (bytes 28..32).
pub(crate) const LEAF_PREFIX: usize = 3;
pub(crate) const BRANCH_PREFIX: usize = 4;

/// The first `n` (at most 4) bytes of `key`, zero-padded, as a big-endian number. Padding
/// keeps the order one way: `key_prefix(a) < key_prefix(b)` implies `a < b`, and `a <= b`
/// implies `key_prefix(a) <= key_prefix(b)`; equal prefixes say nothing, and the keys decide.
/// The bytes past `n` of the four read shift out.
#[inline]
pub(crate) fn key_prefix(key: &[u8], n: usize) -> u32 {
    u32::from_be_bytes(key_start(key)) >> (8 * (4 - n.min(4)))
}

/// The first `N` bytes of `key`, zero-padded. A key of `N` bytes or more is read as one
/// fixed-size array: a copy of a length known only at run time is a call to `memcpy`, which
/// cost each point read 81 of its 2,286 instructions (one per level's search;
/// `deadbolt-bench --costs`).
#[inline]
pub(crate) fn key_start<const N: usize>(key: &[u8]) -> [u8; N] {
    match key.first_chunk::<N>() {
        Some(&a) => a,
        None => {
            let mut a = [0u8; N];
            a[..key.len()].copy_from_slice(key);
            a
        }
    }
}

// ---- little-endian, bounds-checked readers -------------------------------------------------

pub(crate) fn rd_u8(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}
pub(crate) fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_le_bytes(a))
}
pub(crate) fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
pub(crate) fn rd_slice(b: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    b.get(off..off.checked_add(len)?)
}

// ---- writers (our own buffers, sized by us) -------------------------------------------------

pub(crate) fn wr_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Byte-wise key order, with a fast first step: most keys differ in their first eight bytes,
/// which compare as one big-endian integer without a call to `memcmp`; a key shorter than
/// eight bytes (the field names of metadata buckets) is compared byte by byte, also without
/// the call.
#[inline]
pub(crate) fn cmp_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    if a.len() >= 8 && b.len() >= 8 {
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x.copy_from_slice(&a[..8]);
        y.copy_from_slice(&b[..8]);
        let (x, y) = (u64::from_be_bytes(x), u64::from_be_bytes(y));
        if x != y {
            return x.cmp(&y);
        }
    } else {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return x.cmp(y);
            }
        }
        return a.len().cmp(&b.len());
    }
    a.cmp(b)
}

/// Ask the CPU to bring the cache line holding `bytes[off]` into its caches, if `off` is inside
/// `bytes`: a hint for a read that is coming, so that its miss overlaps with others instead of
/// following them. Nothing is read through it; off x86_64 it does nothing.
#[inline]
pub(crate) fn prefetch(bytes: &[u8], off: usize) {
    if let Some(b) = bytes.get(off) {
        hint(b);
    }
}

/// [`prefetch`] of the `N` cache lines from `bytes[off]` on, one 64 bytes after the other, with
/// one bounds check for all of them when they all lie inside `bytes`. A page load asks for 15
/// lines; checked one by one they cost about 150 instructions per load, 600 per get of a
/// four-level descent (callgrind, `--cost-child deadbolt get`).
#[inline]
pub(crate) fn prefetch_lines<const N: usize>(bytes: &[u8], off: usize) {
    let last = off.saturating_add(N.saturating_sub(1) * 64);
    if last < bytes.len() {
        let base = bytes.as_ptr().wrapping_add(off);
        for i in 0..N {
            // Inside `bytes`: `off + i * 64 <= last < bytes.len()`.
            hint(base.wrapping_add(i * 64));
        }
    } else {
        for i in 0..N {
            prefetch(bytes, off.saturating_add(i * 64));
        }
    }
}

/// The prefetch instruction for the line holding `p`. Safe for any pointer: a prefetch never
/// faults and reads nothing into the program (callers pass pointers into a slice anyway).
#[inline(always)]
fn hint(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint that never faults, whatever the address, and reads
    // nothing into the program; it is `unsafe` only for its `sse` target feature, which every
    // x86_64 CPU has (it is in the target's baseline).
    #[allow(unsafe_code)] // One of the three `unsafe`s of the engine (lib.rs denies the rest).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A pointer to a page as its parent records it: id, the txid that wrote it, and its checksum.
/// This is what makes the tree a Merkle tree: a parent's checksum covers its children's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct ChildRef {
    pub pgid: u64,
    pub txid: u64,
    pub crc: u32,
}

impl ChildRef {
    pub(crate) const EMPTY: ChildRef = ChildRef {
        pgid: 0,
        txid: 0,
        crc: 0,
    };
    pub(crate) fn is_empty(&self) -> bool {
        self.pgid == 0
    }
    pub(crate) fn encode(&self, b: &mut [u8]) {
        wr_u64(b, 0, self.pgid);
        wr_u64(b, 8, self.txid);
        wr_u32(b, 16, self.crc);
        wr_u32(b, 20, 0);
    }
    pub(crate) fn decode(b: &[u8]) -> Option<ChildRef> {
        Some(ChildRef {
            pgid: rd_u64(b, 0)?,
            txid: rd_u64(b, 8)?,
            crc: rd_u32(b, 16)?,
        })
    }
}

/// A nested bucket's header: its root pointer and sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct BucketHeader {
    pub root: ChildRef,
    pub sequence: u64,
}

/// Where a nested bucket's keys live, as its bucket element's value says.
#[derive(Clone, Copy)]
pub(crate) enum BucketRoot<'a> {
    /// A tree of pages (`ChildRef::EMPTY`: the bucket is empty).
    Tree(ChildRef),
    /// Inline: the bucket's only leaf, inside its parent's leaf (docs/FORMAT.md, section 5).
    Inline(Page<'a>),
}

/// A nested bucket as its bucket element's value encodes it: a 32-byte [`BucketHeader`], or
/// an inline bucket (a longer value).
#[derive(Clone, Copy)]
pub(crate) struct BucketValue<'a> {
    pub root: BucketRoot<'a>,
    pub sequence: u64,
}

impl<'a> BucketValue<'a> {
    /// Decode the value of a bucket element of page `page`. An inline value's structure was
    /// checked with its page ([`Page::validate`]); here only its size against the inline limit
    /// of `page_size` is (a page validated under another page size could not be used here).
    pub(crate) fn decode(value: &'a [u8], page: u64, page_size: usize) -> Result<BucketValue<'a>> {
        if value.len() == BUCKET_HEADER {
            let h = BucketHeader::decode(value, page)?;
            return Ok(BucketValue {
                root: BucketRoot::Tree(h.root),
                sequence: h.sequence,
            });
        }
        if value.len() > inline_limit(page_size) {
            return Err(Error::corrupt(
                page,
                format!(
                    "inline bucket of {} bytes, over the limit of {} for {page_size}-byte pages",
                    value.len(),
                    inline_limit(page_size)
                ),
            ));
        }
        let (inline, sequence) = inline_page(value, page)?;
        Ok(BucketValue {
            root: BucketRoot::Inline(inline),
            sequence,
        })
    }
}

/// Largest inline bucket (its whole value) for a page size. bbolt inlines a bucket whose page
/// image (a 16-byte page header and the elements) is at most a quarter page, and stores it
/// behind a 16-byte bucket header: 32 bytes plus the elements, exactly the size of this
/// encoding. So the limit is a quarter page plus 16 bytes, and a bucket bbolt kept inline stays
/// inline when imported. A quarter page keeps several inline buckets, with their names, in one
/// parent leaf.
pub(crate) const fn inline_limit(page_size: usize) -> usize {
    page_size / 4 + 16
}

/// Smallest inline value: the header and one element with a one-byte key.
const INLINE_MIN: usize = HEADER + LEAF_ELEM + 1;

/// The page view of inline bucket value `value` (found on page `page`, which errors name) and
/// its sequence, with the header checked. Its elements are checked by [`Page::validate`] (the
/// parent's validation runs it). The first byte says which encoding it is: bit 7 set, compact
/// (format 7, [`compact_page`]); else the page image of formats 3 to 6 ([`image_page`]), whose
/// first byte, of its checksum field, is 0. A reader of either version meets both in one file.
pub(crate) fn inline_page(value: &[u8], page: u64) -> Result<(Page<'_>, u64)> {
    match value.first() {
        Some(&b) if b & COMPACT_TAG != 0 => compact_page(value, page),
        _ => image_page(value, page),
    }
}

/// [`inline_page`] of a compact inline bucket (format 7): tag and flags, count >= 1, the
/// sequence if the flag says so. A sequence field holding 0 is allowed only where it keeps the
/// value from being 32 bytes long (which reads as a bucket header), and a value of 32 bytes is
/// never one: a bucket has exactly one compact encoding, which [`Page::validate`] holds the rest
/// of the bytes to.
#[inline(never)]
fn compact_page(value: &[u8], page: u64) -> Result<(Page<'_>, u64)> {
    let bad = |d: String| Error::corrupt(page, format!("compact inline bucket: {d}"));
    if value.len() < COMPACT_MIN || value.len() > MAX_INLINE || value.len() == BUCKET_HEADER {
        return Err(bad(format!("value of {} bytes", value.len())));
    }
    let flags = value.first().map_or(0, |b| b & !COMPACT_TAG);
    if flags & !COMPACT_SEQ != 0 {
        return Err(bad(format!("unknown flags {flags:#x}")));
    }
    let count = match value.get(1..COMPACT_HEADER) {
        Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
        _ => return Err(bad("truncated header".into())),
    };
    if count == 0 {
        return Err(bad("element count 0".into()));
    }
    let (elems, sequence) = if flags & COMPACT_SEQ != 0 {
        let seq = rd_u64(value, COMPACT_HEADER).ok_or_else(|| bad("truncated sequence".into()))?;
        if seq == 0 && value.len() != BUCKET_HEADER + COMPACT_SEQ_LEN {
            return Err(bad("a sequence field holding 0 where none is needed".into()));
        }
        (COMPACT_HEADER + COMPACT_SEQ_LEN, seq)
    } else {
        (COMPACT_HEADER, 0)
    };
    let inline = Page {
        id: page,
        data: value,
        leaf: true,
        level: 0,
        count,
        prefixed: false,
        compact: elems as u8,
    };
    Ok((inline, sequence))
}

/// [`inline_page`] of a page image (formats 3 to 6): a leaf at level 0, at least one element,
/// the sequence in the page-id field, every other field zero.
fn image_page(value: &[u8], page: u64) -> Result<(Page<'_>, u64)> {
    let bad = |d: String| Error::corrupt(page, format!("inline bucket: {d}"));
    if value.len() < INLINE_MIN || value.len() > MAX_INLINE {
        return Err(bad(format!("value of {} bytes", value.len())));
    }
    let h = Header::parse(value).ok_or_else(|| bad("truncated header".into()))?;
    let reserved = rd_u32(value, 28).unwrap_or(u32::MAX);
    if h.crc != 0 || h.ptype != PageType::Leaf as u8 || h.level != 0 {
        return Err(bad(format!(
            "header says type {}, level {}, checksum {:#x} (expected a leaf, level 0, no checksum)",
            h.ptype, h.level, h.crc
        )));
    }
    if h.count == 0 || h.txid != 0 || h.overflow != 0 || reserved != 0 {
        return Err(bad(
            "element count 0, or nonzero txid, overflow or reserved field".into(),
        ));
    }
    let inline = Page {
        id: page,
        data: value,
        leaf: true,
        level: 0,
        count: h.count as usize,
        prefixed: false,
        compact: 0,
    };
    Ok((inline, h.pgid))
}

/// Height of the inline bucket `value`, `depth` levels down from where the question was
/// asked: 0 for an empty bucket's header, 1 for an inline bucket of pairs, one more than its
/// tallest nested bucket if those are all inline or empty; `None` if one has pages of its own,
/// the value is malformed, or the nesting passes [`MAX_INLINE_DEPTH`]. The depth bounds the
/// recursion.
pub(crate) fn inline_height(value: &[u8], depth: usize) -> Option<usize> {
    if depth >= MAX_INLINE_DEPTH {
        return None;
    }
    if value.len() == BUCKET_HEADER {
        // An empty bucket has no pages: it may stay inside an inline one.
        let empty = BucketHeader::decode(value, 0).ok()?.root.is_empty();
        return empty.then_some(0);
    }
    let (page, _) = inline_page(value, 0).ok()?;
    let mut h = 1;
    for i in 0..page.count {
        let it = page.leaf_item(i).ok()?;
        if it.bucket {
            h = h.max(1 + inline_height(it.value, depth + 1)?);
        }
    }
    Some(h)
}

/// Largest inline value any page size allows ([`inline_limit`] of the largest page).
const MAX_INLINE: usize = inline_limit(65536);

impl BucketHeader {
    pub(crate) fn encode(&self) -> [u8; BUCKET_HEADER] {
        let mut b = [0u8; BUCKET_HEADER];
        self.root.encode(&mut b[0..REF_SIZE]);
        wr_u64(&mut b, 24, self.sequence);
        b
    }
    pub(crate) fn decode(b: &[u8], page: u64) -> Result<BucketHeader> {
        if b.len() != BUCKET_HEADER {
            return Err(Error::corrupt(
                page,
                format!(
                    "bucket header of {} bytes, expected {BUCKET_HEADER}",
                    b.len()
                ),
            ));
        }
        let bad = || Error::corrupt(page, "truncated bucket header");
        Ok(BucketHeader {
            root: ChildRef::decode(b).ok_or_else(bad)?,
            sequence: rd_u64(b, 24).ok_or_else(bad)?,
        })
    }
}

/// The decoded common header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub crc: u32,
    pub ptype: u8,
    /// Height of a branch or leaf page above the leaves (0 for a leaf); 0 on other pages.
    pub level: u8,
    pub count: u16,
    pub pgid: u64,
    pub txid: u64,
    pub overflow: u32,
    /// Page flags (byte 28): [`FLAG_PREFIXED`] on branch and leaf pages of format 5.
    pub flags: u8,
}

impl Header {
    #[inline]
    pub(crate) fn parse(b: &[u8]) -> Option<Header> {
        let a: &[u8; HEADER] = b.get(..HEADER)?.try_into().ok()?;
        let u32_at = |o: usize| u32::from_le_bytes([a[o], a[o + 1], a[o + 2], a[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&a[o..o + 8]);
            u64::from_le_bytes(x)
        };
        Some(Header {
            crc: u32_at(0),
            ptype: a[4],
            level: a[5],
            count: u16::from_le_bytes([a[6], a[7]]),
            pgid: u64_at(8),
            txid: u64_at(16),
            overflow: u32_at(24),
            flags: a[PAGE_FLAGS],
        })
    }
}

/// Write a header with page flags `flags` into `b` (the whole span) and fill in its checksum.
/// Returns the checksum.
pub(crate) fn seal(
    b: &mut [u8],
    ptype: PageType,
    (level, flags): (u8, u8),
    count: u16,
    pgid: u64,
    txid: u64,
) -> u32 {
    b[4] = ptype as u8;
    b[5] = level;
    wr_u16(b, 6, count);
    wr_u64(b, 8, pgid);
    wr_u64(b, 16, txid);
    wr_u32(b, 28, u32::from(flags));
    let crc = span_crc(b);
    wr_u32(b, 0, crc);
    crc
}

/// Set the overflow field of a span (before [`seal`]).
pub(crate) fn set_overflow(b: &mut [u8], overflow: u32) {
    wr_u32(b, 24, overflow);
}

/// Checksum of a span: crc32 of every byte after the checksum field.
pub(crate) fn span_crc(span: &[u8]) -> u32 {
    crc32fast::hash(span.get(4..).unwrap_or(&[]))
}

/// Largest number of extra pages a span may have: enough for one maximal key and value.
pub(crate) fn max_overflow(page_size: usize) -> u64 {
    ((MAX_VALUE_SIZE + MAX_KEY_SIZE + HEADER + LEAF_ELEM) / page_size + 1) as u64
}

/// A verified branch or leaf page: the whole span, with accessors that check every bound.
#[derive(Clone, Copy)]
pub(crate) struct Page<'a> {
    pub id: u64,
    pub data: &'a [u8],
    pub leaf: bool,
    /// Height above the leaves (header byte 5): 0 for a leaf, a branch's children are one less.
    pub level: u8,
    pub count: usize,
    /// The elements carry key prefixes ([`FLAG_PREFIXED`]).
    pub prefixed: bool,
    /// 0: elements as on a page (every page of the file, and an inline bucket's page image);
    /// else this is a compact inline bucket (format 7) whose element array starts at this
    /// offset (3, or 11 after a sequence). Readers test it once, ahead of the page layout's
    /// code, which stays as it was for pages.
    pub compact: u8,
}

/// The separators around a child taken in a branch: the key it was reached through (none for
/// child 0) and the next element's key (none for the last child).
#[derive(Clone, Copy)]
pub(crate) struct Fence<'a> {
    pub below: Option<&'a [u8]>,
    pub above: Option<&'a [u8]>,
}

/// One leaf element.
pub(crate) struct LeafItem<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub bucket: bool,
}

impl<'a> Page<'a> {
    /// The page `id` whose span is `data` and whose header is `h` (already checked to be a
    /// branch or a leaf).
    #[inline]
    pub(crate) fn from_header(id: u64, h: &Header, data: &'a [u8]) -> Page<'a> {
        Page {
            id,
            data,
            leaf: h.ptype == PageType::Leaf as u8,
            level: h.level,
            count: h.count as usize,
            prefixed: h.flags & FLAG_PREFIXED != 0,
            compact: 0,
        }
    }

    fn bad(&self, what: String) -> Error {
        Error::corrupt(self.id, what)
    }

    fn elem_size(&self) -> usize {
        if self.leaf {
            LEAF_ELEM
        } else {
            BRANCH_ELEM
        }
    }

    /// Key of element `i` (the hot path of every search: one bounds check on the element's
    /// two fields and one on the key).
    #[inline]
    fn key_fast(&self, i: usize) -> Option<&'a [u8]> {
        if i >= self.count {
            return None;
        }
        let e = if self.leaf {
            // Behind the leaf test, so that a branch's searches pay nothing for it.
            if self.compact != 0 {
                return self.compact_key(i);
            }
            HEADER + i * LEAF_ELEM + 4
        } else {
            HEADER + i * BRANCH_ELEM + 20
        };
        let f: &[u8; 8] = self.data.get(e..e.checked_add(8)?)?.try_into().ok()?;
        let ko = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        let kl = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
        self.data.get(ko..ko.checked_add(kl)?)
    }

    /// Key of element `i` of a page known to be a branch (every caller of the branch searches
    /// tests `leaf` first): without the test of the page type and of the compact layout that
    /// [`Page::key`] makes, which cost the descent of a point read 6 instructions.
    #[inline(always)]
    fn branch_key(&self, i: usize) -> Result<&'a [u8]> {
        debug_assert!(!self.leaf);
        let key = (|| {
            if i >= self.count {
                return None;
            }
            let e = HEADER + i * BRANCH_ELEM + 20;
            let f: &[u8; 8] = self.data.get(e..e.checked_add(8)?)?.try_into().ok()?;
            let ko = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
            let kl = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
            self.data.get(ko..ko.checked_add(kl)?)
        })();
        match key {
            Some(k) => Ok(k),
            None => Err(self.bad(format!("key of element {i} lies outside the page"))),
        }
    }

    /// Key of element `i`.
    #[inline]
    pub(crate) fn key(&self, i: usize) -> Result<&'a [u8]> {
        match self.key_fast(i) {
            Some(k) => Ok(k),
            None => Err(self.bad(format!("key of element {i} lies outside the page"))),
        }
    }

    /// Order of element `i`'s key against `key`, whose prefix is `q`: by the element's key
    /// prefix (meaningful on a prefixed page only) when it differs, without reading the key;
    /// else by the keys. `None`: the element or its key lies outside the page.
    #[inline(always)]
    fn cmp_at(&self, i: usize, key: &[u8], q: u32) -> Option<std::cmp::Ordering> {
        if self.leaf {
            self.cmp_at_in::<true>(i, key, q)
        } else {
            self.cmp_at_in::<false>(i, key, q)
        }
    }

    /// [`Page::cmp_at`] of a page known to be a leaf (`LEAF`) or a branch: the leaf search
    /// tests the page type once, not on every probe (when the compact case made `search_leaf`
    /// larger, the compiler stopped taking that test out of its loop by itself: 19 more
    /// instructions per point read in `examples/read_cost.rs`).
    #[inline(always)]
    fn cmp_at_in<const LEAF: bool>(
        &self,
        i: usize,
        key: &[u8],
        q: u32,
    ) -> Option<std::cmp::Ordering> {
        // Only prefixed pages are searched through here, and a compact inline bucket never is
        // one (its searches read keys through `key_fast`).
        debug_assert_eq!(self.compact, 0);
        if i >= self.count {
            return None;
        }
        let (e, p) = if LEAF {
            let e = HEADER + i * LEAF_ELEM;
            let f: &[u8; LEAF_ELEM] = self.data.get(e..e + LEAF_ELEM)?.try_into().ok()?;
            (e + 4, u32::from_be_bytes([0, f[1], f[2], f[3]]))
        } else {
            let e = HEADER + i * BRANCH_ELEM;
            let f: &[u8; BRANCH_ELEM] = self.data.get(e..e + BRANCH_ELEM)?.try_into().ok()?;
            (e + 20, u32::from_be_bytes([f[28], f[29], f[30], f[31]]))
        };
        if p != q {
            return Some(p.cmp(&q));
        }
        let f: &[u8; 8] = self.data.get(e..e + 8)?.try_into().ok()?;
        let ko = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        let kl = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
        Some(cmp_keys(self.data.get(ko..ko.checked_add(kl)?)?, key))
    }

    /// The key prefix stored in branch element `i` (for validation; a leaf's comes with
    /// [`Page::page_leaf_elem`]).
    fn branch_prefix(&self, i: usize) -> Option<u32> {
        let e = HEADER + i * BRANCH_ELEM + 28;
        let b: &[u8; 4] = self.data.get(e..e.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_be_bytes(*b))
    }

    #[cold]
    fn probe_error(&self, i: usize) -> Error {
        self.bad(format!("element {i} or its key lies outside the page"))
    }

    /// Leaf element `i`.
    #[inline]
    pub(crate) fn leaf_item(&self, i: usize) -> Result<LeafItem<'a>> {
        let (flags, key, value) = self.leaf_elem(i)?;
        Ok(LeafItem {
            key,
            value,
            bucket: flags & FLAG_BUCKET != 0,
        })
    }

    /// Leaf element `i`'s flags byte, key and value (a metadata walk reads an item per entry).
    /// A compact element's flags are [`FLAG_BUCKET`] or 0, as a page's. (Not the key prefix:
    /// returned from here, it cost every point read a few instructions to extract and discard.)
    #[inline]
    fn leaf_elem(&self, i: usize) -> Result<(u8, &'a [u8], &'a [u8])> {
        if self.compact != 0 {
            return self.compact_leaf_elem(i);
        }
        let (f, key, value) = self.page_leaf_elem(i)?;
        Ok((f[0], key, value))
    }

    /// Leaf element `i`'s 16 bytes, key and value, on a page (or a page image): one bounds
    /// check for the element and one each for key and value (validation reads one per
    /// element, with the key prefix).
    #[inline(always)]
    fn page_leaf_elem(&self, i: usize) -> Result<(&'a [u8; LEAF_ELEM], &'a [u8], &'a [u8])> {
        let e = HEADER + i * LEAF_ELEM;
        let f: &[u8; LEAF_ELEM] = match self.data.get(e..e + LEAF_ELEM) {
            Some(f) if i < self.count && self.leaf => {
                f.try_into().map_err(|_| self.elem_error(i))?
            }
            _ => return Err(self.elem_error(i)),
        };
        let ko = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
        let kl = u32::from_le_bytes([f[8], f[9], f[10], f[11]]) as usize;
        let vl = u32::from_le_bytes([f[12], f[13], f[14], f[15]]) as usize;
        let Some(key) = rd_slice(self.data, ko, kl) else {
            return Err(self.bad(format!("key of element {i} outside the page")));
        };
        let Some(value) = rd_slice(self.data, ko.saturating_add(kl), vl) else {
            return Err(self.bad(format!("value of element {i} outside the page")));
        };
        Ok((f, key, value))
    }

    /// Compact element `i`'s key, `None` if the element or its key lie outside the value.
    /// Out of line: pages never come here.
    #[inline(never)]
    fn compact_key(&self, i: usize) -> Option<&'a [u8]> {
        self.compact_elem(i).map(|(key, _, _)| key)
    }

    /// Compact element `i`'s key, value and bucket bit, `None` if the element or its bytes lie
    /// outside the value (inlined into the out-of-line compact helpers).
    #[inline(always)]
    fn compact_elem(&self, i: usize) -> Option<(&'a [u8], &'a [u8], bool)> {
        if i >= self.count {
            return None;
        }
        let (ko, kl, vl, bucket) = self.compact_fields(i)?;
        let key = self.data.get(ko..ko + kl)?;
        let value = self.data.get(ko + kl..ko + kl + vl)?;
        Some((key, value, bucket))
    }

    /// Compact element `i`'s fields: key offset, key length, value length and bucket bit
    /// (`None` if the element lies outside the value; its bytes are not checked here).
    #[inline(always)]
    fn compact_fields(&self, i: usize) -> Option<(usize, usize, usize, bool)> {
        let e = usize::from(self.compact) + i * COMPACT_ELEM;
        let f: &[u8; COMPACT_ELEM] = self.data.get(e..e + COMPACT_ELEM)?.try_into().ok()?;
        let ko = usize::from(u16::from_le_bytes([f[0], f[1]]));
        let kl = usize::from(u16::from_le_bytes([f[2], f[3]]));
        let vf = u16::from_le_bytes([f[4], f[5]]);
        Some((
            ko,
            kl,
            usize::from(vf & !COMPACT_BUCKET),
            vf & COMPACT_BUCKET != 0,
        ))
    }

    /// [`Page::search_leaf`] of a compact inline bucket: one call for the search, not one per
    /// probe through [`Page::key`] (which made opening a one-key bucket and reading its key 43
    /// instructions dearer than with a page image; now it is 70 cheaper).
    #[inline(never)]
    fn compact_search(&self, key: &[u8]) -> Result<(usize, bool)> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, _, _) = self
                .compact_elem(mid)
                .ok_or_else(|| self.probe_error(mid))?;
            match cmp_keys(k, key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Equal => return Ok((mid, true)),
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok((lo, false))
    }

    /// [`Page::leaf_elem`] of a compact inline bucket.
    #[inline]
    fn compact_leaf_elem(&self, i: usize) -> Result<(u8, &'a [u8], &'a [u8])> {
        match self.compact_elem(i) {
            Some((key, value, bucket)) => Ok((if bucket { FLAG_BUCKET } else { 0 }, key, value)),
            None => Err(self.bad(format!(
                "compact element {i}, its key or its value lies outside the inline bucket"
            ))),
        }
    }

    /// A compact inline bucket's bytes are exactly its header, its element array and its keys
    /// and values in element order, each value right after its key and each key right after
    /// the previous value, with nothing before, between or after: so a bucket has one encoding,
    /// and no byte of it is read as two things (a key inside the element array, say).
    #[inline(never)]
    fn validate_compact_packing(&self) -> Result<()> {
        let mut at = usize::from(self.compact) + self.count * COMPACT_ELEM;
        for i in 0..self.count {
            let (ko, kl, vl, _) = self
                .compact_fields(i)
                .ok_or_else(|| self.bad(format!("compact element {i} outside the value")))?;
            if ko != at {
                return Err(self.bad(format!(
                    "compact element {i}'s key starts at {ko}, not at {at} where the bytes before \
                     it end"
                )));
            }
            at = ko + kl + vl;
        }
        if at != self.data.len() {
            return Err(self.bad(format!(
                "compact inline bucket's last value ends at {at}, its value is {} bytes",
                self.data.len()
            )));
        }
        Ok(())
    }

    #[cold]
    fn elem_error(&self, i: usize) -> Error {
        self.bad(format!("leaf element {i} out of bounds"))
    }

    /// Child pointer of branch element `i`.
    pub(crate) fn child(&self, i: usize) -> Result<ChildRef> {
        let e = HEADER + i * BRANCH_ELEM;
        if self.leaf || i >= self.count {
            return Err(self.bad(format!("branch element {i} out of bounds")));
        }
        rd_slice(self.data, e, REF_SIZE)
            .and_then(ChildRef::decode)
            .ok_or_else(|| self.bad(format!("branch element {i} outside the page")))
    }

    /// Bucket element `i`'s value, longer than a bucket header, must be a sound inline bucket
    /// one level below this page's inline depth `depth` (0 for a page of the file): its header
    /// (see [`inline_page`]) and its elements (as on any page). Its own nested buckets must be
    /// inline too, at most [`MAX_INLINE_DEPTH`] deep, so the recursion is bounded.
    fn validate_inline(&self, i: usize, value: &[u8], depth: usize) -> Result<()> {
        if depth >= MAX_INLINE_DEPTH {
            return Err(self.bad(format!(
                "bucket element {i}: an inline bucket nested deeper than {MAX_INLINE_DEPTH}"
            )));
        }
        let (inline, _) = inline_page(value, self.id)
            .map_err(|e| self.bad(format!("bucket element {i}: {e}")))?;
        inline
            .validate_at(depth + 1)
            .map_err(|e| self.bad(format!("inline bucket at element {i}: {e}")))
    }

    /// Full structural validation, done once per page (with the checksum):
    /// element array inside the span, every key and value inside the span, flags known,
    /// bucket headers of the right size, keys non-empty, bounded and strictly ascending, and
    /// every inline bucket in it (with the ones nested in those) sound.
    pub(crate) fn validate(&self) -> Result<()> {
        self.validate_at(0)
    }

    /// [`Page::validate`] of a page at inline depth `depth` (0: a page of the file, 1: an
    /// inline bucket in one, and so on).
    fn validate_at(&self, depth: usize) -> Result<()> {
        if self.count == 0 {
            return Err(self.bad("page with no elements".into()));
        }
        let level_ok = if self.leaf {
            self.level == 0
        } else {
            (1..=MAX_DEPTH).contains(&(self.level as usize))
        };
        if !level_ok {
            return Err(self.bad(format!(
                "{} page at level {}",
                if self.leaf { "leaf" } else { "branch" },
                self.level
            )));
        }
        let end = if self.compact != 0 {
            usize::from(self.compact) + self.count * COMPACT_ELEM
        } else {
            HEADER + self.count * self.elem_size()
        };
        if end > self.data.len() {
            return Err(self.bad(format!(
                "{} elements need {end} bytes, span has {}",
                self.count,
                self.data.len()
            )));
        }
        if self.compact != 0 {
            // Its header was checked when it was decoded (`compact_page`); it has no page flags.
            self.validate_compact_packing()?;
        } else {
            let flags = rd_u8(self.data, PAGE_FLAGS).unwrap_or(0xff);
            if flags & !FLAG_PREFIXED != 0 {
                return Err(self.bad(format!("unknown page flags {flags:#x}")));
            }
        }
        let mut prev: Option<&[u8]> = None;
        for i in 0..self.count {
            let (key, stored, prefix_len) = if self.leaf {
                let (flags, stored, key, value) = if self.compact != 0 {
                    let (flags, key, value) = self.compact_leaf_elem(i)?;
                    (flags, 0, key, value)
                } else {
                    let (f, key, value) = self.page_leaf_elem(i)?;
                    (f[0], u32::from_be_bytes([0, f[1], f[2], f[3]]), key, value)
                };
                if flags & !FLAG_BUCKET != 0 {
                    return Err(self.bad(format!("element {i} has unknown flags {flags:#x}")));
                }
                let bucket = flags & FLAG_BUCKET != 0;
                if bucket && value.len() != BUCKET_HEADER {
                    self.validate_inline(i, value, depth)?;
                } else if bucket
                    && depth > 0
                    && !BucketHeader::decode(value, self.id)?.root.is_empty()
                {
                    return Err(self.bad(format!(
                        "element {i} of an inline bucket is a bucket with pages of its own"
                    )));
                }
                if value.len() > MAX_VALUE_SIZE {
                    return Err(self.bad(format!("value of element {i} too large")));
                }
                (key, Some(stored), LEAF_PREFIX)
            } else {
                let c = self.child(i)?;
                if c.pgid < 2 {
                    return Err(self.bad(format!("element {i} points at page {}", c.pgid)));
                }
                (self.key(i)?, self.branch_prefix(i), BRANCH_PREFIX)
            };
            if key.is_empty() || key.len() > MAX_KEY_SIZE {
                return Err(self.bad(format!("element {i} has a key of {} bytes", key.len())));
            }
            if self.prefixed && stored != Some(key_prefix(key, prefix_len)) {
                return Err(self.bad(format!("element {i}'s key prefix does not match its key")));
            }
            if let Some(p) = prev {
                if cmp_keys(p, key) != std::cmp::Ordering::Less {
                    return Err(self.bad(format!("keys out of order at element {i}")));
                }
            }
            prev = Some(key);
        }
        Ok(())
    }

    /// Index of the child to descend into for `key`: the last element `i >= 1` whose key is
    /// `<= key`, else 0 (the first separator is a lower bound only).
    pub(crate) fn search_branch(&self, key: &[u8]) -> Result<usize> {
        if self.prefixed {
            return self.search_branch_prefixed(key);
        }
        let (mut lo, mut hi) = (1usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cmp_keys(self.branch_key(mid)?, key) != std::cmp::Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo - 1)
    }

    /// [`Page::search_branch`], also returning the separators around the chosen child `i`: key
    /// `i` (when `i >= 1`) and key `i + 1` (when there is one). The search compared both
    /// anyway, so carrying them down a descent (fence keys) reads no extra bytes.
    #[inline]
    pub(crate) fn search_branch_bounds(&self, key: &[u8]) -> Result<(usize, Fence<'a>)> {
        if self.prefixed {
            // The probes compared prefixes, mostly: read the two separators once, at the end.
            let i = self.search_branch_prefixed(key)?;
            let below = if i >= 1 {
                Some(self.branch_key(i)?)
            } else {
                None
            };
            let above = if i + 1 < self.count {
                Some(self.branch_key(i + 1)?)
            } else {
                None
            };
            return Ok((i, Fence { below, above }));
        }
        let (mut lo, mut hi) = (1usize, self.count);
        let (mut below, mut above) = (None, None);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.branch_key(mid)?;
            if cmp_keys(k, key) != std::cmp::Ordering::Greater {
                lo = mid + 1;
                below = Some(k);
            } else {
                hi = mid;
                above = Some(k);
            }
        }
        Ok((lo - 1, Fence { below, above }))
    }

    /// [`Page::search_branch`] on a prefixed page.
    fn search_branch_prefixed(&self, key: &[u8]) -> Result<usize> {
        let q = key_prefix(key, BRANCH_PREFIX);
        // The first probe is the middle element; the next two levels' probes are among these
        // six, so asking for them now overlaps their misses with the first one's instead of
        // taking them in turn (a branch's elements span the page). Side by side on an AMD EPYC,
        // `profile deadbolt reads 1000000` took 3.7-4.1 s with these against 4.2-4.8 s without,
        // five runs each; a fourth level (eight more) was no better.
        // One bounds check for the six (the furthest is `7 * n / 8`).
        let n = self.count;
        if n >= 16 && HEADER + (7 * n / 8) * BRANCH_ELEM < self.data.len() {
            let base = self.data.as_ptr();
            for i in [n / 4, 3 * n / 4, n / 8, 3 * n / 8, 5 * n / 8, 7 * n / 8] {
                hint(base.wrapping_add(HEADER + i * BRANCH_ELEM));
            }
        }
        let (mut lo, mut hi) = (1usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ord = self
                .cmp_at(mid, key, q)
                .ok_or_else(|| self.probe_error(mid))?;
            if ord != std::cmp::Ordering::Greater {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo - 1)
    }

    /// First element whose key is `>= key`, and whether it is equal.
    pub(crate) fn search_leaf(&self, key: &[u8]) -> Result<(usize, bool)> {
        if self.prefixed && self.leaf {
            let q = key_prefix(key, LEAF_PREFIX);
            let (mut lo, mut hi) = (0usize, self.count);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match self
                    .cmp_at_in::<true>(mid, key, q)
                    .ok_or_else(|| self.probe_error(mid))?
                {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Equal => return Ok((mid, true)),
                    std::cmp::Ordering::Greater => hi = mid,
                }
            }
            return Ok((lo, false));
        }
        if self.compact != 0 {
            // After the prefixed search: a page's read does not pass this test.
            return self.compact_search(key);
        }
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cmp_keys(self.key(mid)?, key) == std::cmp::Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let eq = lo < self.count && self.key(lo)? == key;
        Ok((lo, eq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins `key_prefix`'s fast read of four bytes to its definition: the first `n` bytes,
    /// zero-padded, big-endian, for keys shorter and longer than four bytes.
    #[test]
    fn a_key_prefix_is_its_first_n_bytes_zero_padded_at_every_length() {
        for len in 0..=6usize {
            let key: Vec<u8> = (0..len as u8).map(|i| 0xA1 ^ (i * 37)).collect();
            for n in [LEAF_PREFIX, BRANCH_PREFIX] {
                let want = (0..n).fold(0u32, |acc, i| {
                    (acc << 8) | u32::from(key.get(i).copied().unwrap_or(0))
                });
                assert_eq!(key_prefix(&key, n), want, "{len}-byte key, {n}-byte prefix");
            }
        }
    }

    /// Every key of `len` bytes over `alphabet`.
    fn keys(alphabet: &[u8], len: usize, out: &mut Vec<Vec<u8>>) {
        let mut k = vec![0usize; len];
        loop {
            out.push(k.iter().map(|&i| alphabet[i]).collect());
            let Some(p) = k.iter().rposition(|&i| i + 1 < alphabet.len()) else {
                return;
            };
            k[p] += 1;
            k[p + 1..].iter_mut().for_each(|i| *i = 0);
        }
    }

    #[test]
    fn cmp_keys_orders_short_long_and_zero_padded_keys_as_bytes_do() {
        // Short keys take the byte loop, keys of 8 bytes and more the word: every pair across
        // the boundary (lengths 0 to 10), with 0x00 (which a zero-padded word would confuse
        // with the end of a key) and 0xff.
        let mut all = Vec::new();
        for len in 0..=4 {
            keys(&[0, 1, 0xff], len, &mut all);
        }
        for len in 5..=10 {
            keys(&[0, 0xff], len, &mut all);
        }
        for a in &all {
            for b in &all {
                assert_eq!(cmp_keys(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }
}
