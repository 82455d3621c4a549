//! The hardened bbolt reader: meta selection, bounds-checked page access, a per-bucket cursor
//! with an explicit bounded stack, and a pre-order walker over every bucket of the file.
//!
//! Bounds (all checked in release builds):
//! - a bucket's B+tree is at most [`MAX_TREE_DEPTH`] pages deep (the cursor's stack);
//! - buckets nest at most [`MAX_BUCKET_NESTING`] levels (the walker's stack);
//! - every page id is below the high-water mark and inside the file, and so is every page of
//!   an overflow span;
//! - a page is entered at most once per walk (a bitmap of `min(high-water, file pages)` bits,
//!   the only allocation sized from the file, bounded by `file length / page size / 8`
//!   bytes), so a walk loads at most that many pages, and a page id repeating on the current
//!   root-to-leaf path is reported as a cycle before anything else;
//! - an element count is at most `(span - 16) / 16`, i.e. bounded by the bytes of the page;
//! - the problem list keeps at most [`MAX_KEPT_PROBLEMS`] entries and [`MAX_PROBLEM_BYTES`] bytes of
//!   keys, paths and text; later problems are only counted.

use std::fmt;
use std::ops::Bound;

use super::format::*;
use crate::{Error, LostRange, Result};

/// Deepest B+tree (pages from a bucket's root to a leaf) the cursor accepts. A bbolt tree
/// that deep would need more than 2^63 entries.
pub const MAX_TREE_DEPTH: usize = 64;
/// Deepest bucket nesting the walker accepts (the root bucket is level 0).
pub const MAX_BUCKET_NESTING: usize = 128;
/// Problems a [`ProblemList`] keeps in detail; further ones are only counted. (The engine's own
/// check of deadbolt files has a separate limit.)
pub const MAX_KEPT_PROBLEMS: usize = 10_000;
/// Bytes (keys, paths, text) that recorded problems may hold in total.
pub const MAX_PROBLEM_BYTES: usize = 16 << 20;

/// How serious a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is readable and nothing committed-and-valid is lost (for example an invalid
    /// meta page whose sibling is valid, or leaked pages).
    Warning,
    /// Data is unreachable or the structure is inconsistent.
    Damage,
}

/// Render bytes as text when printable ASCII, else as hex.
pub fn show_bytes(b: &[u8]) -> String {
    const MAX_SHOWN: usize = 64;
    let shown = b.get(..MAX_SHOWN).unwrap_or(b);
    let more = if b.len() > MAX_SHOWN {
        format!("...({} bytes)", b.len())
    } else {
        String::new()
    };
    if !shown.is_empty()
        && shown
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) && c != b'"')
    {
        format!("\"{}\"{more}", String::from_utf8_lossy(shown))
    } else {
        let mut s = String::from("0x");
        for c in shown {
            s.push_str(&format!("{c:02x}"));
        }
        s + &more
    }
}

/// Render a bucket path.
pub fn show_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let parts: Vec<String> = path.iter().map(|p| show_bytes(p)).collect();
    parts.join("/")
}

/// How the bbolt reader prints a lost range (the type is shared with salvage of deadbolt files).
impl fmt::Display for LostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bucket {}: ", show_path(&self.path))?;
        if self.is_whole_bucket() {
            write!(f, "the whole bucket (page {})", self.page)?;
            if self.recovered > 0 {
                write!(
                    f,
                    "; {} entries recovered from orphaned pages",
                    self.recovered
                )?;
            }
            return Ok(());
        }
        let from = match &self.from {
            Bound::Unbounded => "(first key".to_string(),
            Bound::Included(k) => format!("[{}", show_bytes(k)),
            Bound::Excluded(k) => format!("({}", show_bytes(k)),
        };
        let to = match &self.to {
            Bound::Unbounded => "last key)".to_string(),
            Bound::Included(k) => format!("{}]", show_bytes(k)),
            Bound::Excluded(k) => format!("{})", show_bytes(k)),
        };
        write!(f, "keys {from} .. {to} (page {})", self.page)?;
        if self.recovered > 0 {
            write!(
                f,
                "; {} entries of it recovered from orphaned pages (completeness unverifiable)",
                self.recovered
            )?;
        }
        Ok(())
    }
}

/// One problem found in a bbolt file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoltProblem {
    pub severity: Severity,
    /// The page where it was found (0 or 1 for a meta page).
    pub page: u64,
    /// The bucket being read, from the top (empty for the root bucket, metas and free space).
    pub path: Vec<Vec<u8>>,
    /// What was expected versus found.
    pub detail: String,
    /// Keys that could not be read because of it.
    pub lost: Option<LostRange>,
}

impl fmt::Display for BoltProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Damage => "damage",
        };
        write!(f, "{sev}: page {}", self.page)?;
        if !self.path.is_empty() {
            write!(f, ", bucket {}", show_path(&self.path))?;
        }
        write!(f, ": {}", self.detail)?;
        if let Some(l) = &self.lost {
            write!(f, "; lost: {l}")?;
        }
        Ok(())
    }
}

/// Problems with a bound on how many are kept (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ProblemList {
    pub items: Vec<BoltProblem>,
    /// Problems found beyond the limits, counted but not kept.
    pub suppressed: u64,
    /// Of those, how many were damage.
    pub suppressed_damage: u64,
    bytes: usize,
}

impl ProblemList {
    pub fn push(&mut self, p: BoltProblem) {
        let size = p.detail.len()
            + 64
            + p.path.iter().map(|c| c.len() + 24).sum::<usize>()
            + p.lost.as_ref().map_or(0, |l| {
                l.path.iter().map(|c| c.len() + 24).sum::<usize>()
                    + bound_len(&l.from)
                    + bound_len(&l.to)
                    + l.reason.len()
            });
        if self.items.len() >= MAX_KEPT_PROBLEMS
            || self.bytes.saturating_add(size) > MAX_PROBLEM_BYTES
        {
            self.suppressed += 1;
            if p.severity == Severity::Damage {
                self.suppressed_damage += 1;
            }
            return;
        }
        self.bytes += size;
        self.items.push(p);
    }

    /// True when any problem (kept or suppressed) is damage.
    pub fn has_damage(&self) -> bool {
        self.suppressed_damage > 0 || self.items.iter().any(|p| p.severity == Severity::Damage)
    }

    /// Total problems found.
    pub fn total(&self) -> u64 {
        self.items.len() as u64 + self.suppressed
    }
}

fn bound_len(b: &Bound<Vec<u8>>) -> usize {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => v.len(),
        Bound::Unbounded => 0,
    }
}

fn own_bound(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A set of page ids below a fixed limit.
#[derive(Clone, Debug)]
pub struct PageSet {
    words: Vec<u64>,
    len: u64,
}

impl PageSet {
    /// A set for ids `0..len`. `len` must already be bounded by the file's page count.
    pub fn new(len: u64) -> PageSet {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(0);
        PageSet {
            words: vec![0; words],
            len,
        }
    }
    pub fn contains(&self, id: u64) -> bool {
        if id >= self.len {
            return false;
        }
        let w = usize::try_from(id / 64).unwrap_or(usize::MAX);
        self.words.get(w).is_some_and(|x| x & (1 << (id % 64)) != 0)
    }
    /// Insert; returns false when it was already present (or out of range).
    pub fn insert(&mut self, id: u64) -> bool {
        if id >= self.len {
            return false;
        }
        let w = usize::try_from(id / 64).unwrap_or(usize::MAX);
        match self.words.get_mut(w) {
            Some(x) => {
                let bit = 1u64 << (id % 64);
                let was = *x & bit != 0;
                *x |= bit;
                !was
            }
            None => false,
        }
    }
}

/// A bbolt file whose meta has been chosen: the geometry every page access is checked against.
#[derive(Clone, Copy, Debug)]
pub struct BoltFile<'a> {
    bytes: &'a [u8],
    /// Page size in bytes.
    pub page_size: u32,
    /// The active meta's high-water mark (first never-allocated page id).
    pub high_water: u64,
    /// Whole pages in the file.
    pub file_pages: u64,
    /// `min(high_water, file_pages)`: page ids below this can be read.
    pub limit: u64,
    /// Root page of the root bucket (from the active meta).
    pub root_pgid: u64,
    /// Sequence of the root bucket.
    pub root_sequence: u64,
    /// Freelist page id, or [`PGID_NO_FREELIST`].
    pub freelist_pgid: u64,
    /// Transaction id of the active meta.
    pub txid: u64,
    /// Which meta is active (0 or 1).
    pub active_meta: u8,
    /// True when no meta validated and salvage chose one whose checksum is wrong.
    pub meta_unverified: bool,
}

/// The outcome of opening: the metas as found, the chosen geometry (if any) and the problems.
#[derive(Clone, Debug)]
pub struct OpenOutcome<'a> {
    pub file: Option<BoltFile<'a>>,
    pub metas: Vec<MetaInfo>,
    pub page_size: Option<u32>,
    pub problems: Vec<BoltProblem>,
}

fn meta_problem(sev: Severity, page: u64, detail: String) -> BoltProblem {
    BoltProblem {
        severity: sev,
        page,
        path: Vec::new(),
        detail,
        lost: None,
    }
}

impl<'a> BoltFile<'a> {
    /// Open strictly: choose the newest valid meta as bbolt does, or fail with
    /// [`Error::Corruption`] naming the meta pages when neither validates.
    pub fn open(bytes: &'a [u8]) -> Result<BoltFile<'a>> {
        let out = Self::open_outcome(bytes, false);
        match out.file {
            Some(f) => Ok(f),
            None => {
                let detail = out
                    .problems
                    .iter()
                    .map(|p| format!("page {}: {}", p.page, p.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Error::Corruption { page: 0, detail })
            }
        }
    }

    /// Page-size discovery and meta selection, reporting every problem on the way.
    ///
    /// bbolt's rules: the page size comes from meta 0 when it validates, else from a valid meta
    /// 1 found at offset `1024 << i` (i < 15); the active meta is the valid one with the higher
    /// txid (ties: meta 0). A valid meta whose root, freelist or high-water mark does not fit
    /// the file is passed over in favour of the other one. With `salvage`, when no meta
    /// validates, the newest one with the right magic and version is used anyway and that is
    /// reported as damage.
    pub fn open_outcome(bytes: &'a [u8], salvage: bool) -> OpenOutcome<'a> {
        let file_len = bytes.len() as u64;
        let mut problems = Vec::new();
        let m0 = MetaInfo::parse(bytes, 0, 0);
        let mut page_size = None;
        let mut m1 = None;
        if m0.valid() && page_size_ok(m0.page_size) {
            page_size = Some(m0.page_size);
        } else {
            // Probe for meta 1 (bounded: 15 candidates).
            for i in 0..15u32 {
                let off = 1024u64 << i;
                if off.saturating_add(META_PAGE_MIN as u64) > file_len {
                    break;
                }
                let m = MetaInfo::parse(bytes, off, 1);
                if m.valid() && u64::from(m.page_size) == off && page_size_ok(m.page_size) {
                    page_size = Some(m.page_size);
                    m1 = Some(m);
                    break;
                }
            }
        }
        // Neither meta found the page size: assume meta 0's field when it is a sane page size,
        // else 4096, so that both metas can still be reported (and, with salvage, used).
        let discovered = page_size.is_some();
        let ps = page_size.unwrap_or(if page_size_ok(m0.page_size) {
            m0.page_size
        } else {
            4096
        });
        let m1 = m1.unwrap_or_else(|| MetaInfo::parse(bytes, u64::from(ps), 1));
        let metas = vec![m0, m1];

        // Header checks (not covered by the checksum; bbolt does not check them either).
        for m in &metas {
            if let Some(h) = m.header {
                if m.valid() && (h.flags != FLAG_META || h.id != u64::from(m.which)) {
                    problems.push(meta_problem(
                        Severity::Warning,
                        u64::from(m.which),
                        format!(
                            "meta page header has id {} and flags {} (expected id {} and meta)",
                            h.id,
                            page_type_name(h.flags),
                            m.which
                        ),
                    ));
                }
            }
        }

        // Candidates, newest first (ties: meta 0 first, as bbolt).
        let mut order: Vec<&MetaInfo> = metas.iter().collect();
        order.sort_by(|a, b| b.txid.cmp(&a.txid).then(a.which.cmp(&b.which)));
        let valid: Vec<&MetaInfo> = order
            .iter()
            .copied()
            .filter(|m| m.valid() && m.page_size == ps)
            .collect();
        let sane = |m: &MetaInfo| m.sanity_problems(file_len, ps).is_empty();
        let mut unverified = false;
        let chosen: Option<&MetaInfo> = if !valid.is_empty() {
            valid
                .iter()
                .copied()
                .find(|m| sane(m))
                .or(valid.first().copied())
        } else if salvage {
            let plausible: Vec<&MetaInfo> = order
                .iter()
                .copied()
                .filter(|m| m.plausible() && m.page_size == ps)
                .collect();
            unverified = true;
            plausible
                .iter()
                .copied()
                .find(|m| sane(m))
                .or(plausible.first().copied())
        } else {
            None
        };

        for m in &metas {
            let is_chosen = chosen.is_some_and(|c| c.which == m.which);
            if let Some(why) = &m.problem {
                let sev = if chosen.is_some() && !unverified {
                    Severity::Warning
                } else {
                    Severity::Damage
                };
                let consequence = match chosen {
                    Some(c) if !unverified && m.txid > c.txid => format!(
                        "; using meta {} (txid {}): the commit of txid {} is lost",
                        c.which, c.txid, m.txid
                    ),
                    Some(c) if !unverified => format!("; using meta {} (txid {})", c.which, c.txid),
                    Some(_) if is_chosen => {
                        "; salvage uses it anyway because no meta validates (its contents are unverified)".to_string()
                    }
                    _ => String::new(),
                };
                problems.push(meta_problem(
                    sev,
                    u64::from(m.which),
                    format!("meta {} is invalid: {why}{consequence}", m.which),
                ));
            }
            let sanity = m.sanity_problems(file_len, ps);
            if (m.valid() || is_chosen) && !sanity.is_empty() {
                let sev = if is_chosen {
                    Severity::Damage
                } else {
                    Severity::Warning
                };
                let what = if is_chosen {
                    "in use despite".to_string()
                } else {
                    "passed over because of".to_string()
                };
                problems.push(meta_problem(
                    sev,
                    u64::from(m.which),
                    format!(
                        "meta {} (txid {}) {what}: {}",
                        m.which,
                        m.txid,
                        sanity.join("; ")
                    ),
                ));
            }
        }
        if chosen.is_none() {
            let how = if discovered {
                String::new()
            } else {
                format!(" (no valid meta at any candidate page size 1 KiB .. 16 MiB; meta 1 looked for at offset {ps})")
            };
            let hint = order
                .iter()
                .find(|m| m.plausible() && m.page_size == ps)
                .map(|m| {
                    format!(
                        "; salvage can still read it through meta {} (txid {}), whose magic and version are right, without verification",
                        m.which, m.txid
                    )
                })
                .unwrap_or_default();
            problems.push(meta_problem(
                Severity::Damage,
                0,
                format!("neither meta page is valid; the file cannot be opened{how}{hint}"),
            ));
        }
        let file = chosen.map(|m| {
            let file_pages = file_len / u64::from(ps);
            BoltFile {
                bytes,
                page_size: ps,
                high_water: m.high_water_pgid,
                file_pages,
                limit: m.high_water_pgid.min(file_pages),
                root_pgid: m.root_pgid,
                root_sequence: m.root_sequence,
                freelist_pgid: m.freelist_pgid,
                txid: m.txid,
                active_meta: m.which,
                meta_unverified: unverified,
            }
        });
        OpenOutcome {
            page_size: (discovered || file.is_some()).then_some(ps),
            file,
            metas,
            problems,
        }
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Load page `id` with its overflow span: the id must be below the high-water mark and
    /// inside the file, the header must name the page itself, and the span must fit too.
    /// The page type is the caller's to check.
    pub fn page(&self, id: u64) -> std::result::Result<(PageHeader, &'a [u8]), String> {
        if id >= self.high_water {
            let eof = if id >= self.file_pages {
                format!(
                    " and beyond the end of the file ({} pages)",
                    self.file_pages
                )
            } else {
                String::new()
            };
            return Err(format!(
                "page id {id} is at or beyond the high-water mark {}{eof}",
                self.high_water
            ));
        }
        if id >= self.file_pages {
            return Err(format!(
                "page id {id} lies beyond the end of the file ({} pages)",
                self.file_pages
            ));
        }
        let ps = u64::from(self.page_size);
        let start = id * ps; // id < file_pages, so this is < file length
        let start_us = usize::try_from(start).map_err(|_| "page offset too large".to_string())?;
        let head = slice_at(self.bytes, start_us, ps as usize)
            .ok_or_else(|| format!("page {id} is not inside the file"))?;
        let h = PageHeader::parse(head).ok_or_else(|| format!("page {id} header unreadable"))?;
        if h.id != id {
            return Err(format!(
                "page header identifies itself as page {} (flags {}), expected {id}",
                h.id,
                page_type_name(h.flags)
            ));
        }
        let end = id + 1 + u64::from(h.overflow); // no overflow: id < 2^64 / 4096, overflow < 2^32
        if end > self.high_water || end > self.file_pages {
            return Err(format!(
                "page {id} ({}) claims {} overflow pages, running past the high-water mark {} or the end of the file ({} pages)",
                page_type_name(h.flags),
                h.overflow,
                self.high_water,
                self.file_pages
            ));
        }
        let span =
            usize::try_from((end - id) * ps).map_err(|_| "page span too large".to_string())?;
        let data = slice_at(self.bytes, start_us, span)
            .ok_or_else(|| format!("page {id} span is not inside the file"))?;
        Ok((h, data))
    }
}

/// Number of elements a page of `data.len()` bytes can hold after its header, checked
/// against `count`.
fn elements_fit(data: &[u8], count: u16) -> std::result::Result<usize, String> {
    let count = usize::from(count);
    let need = PAGE_HEADER_SIZE + count * ELEMENT_SIZE;
    if need > data.len() {
        return Err(format!(
            "{count} elements need {need} bytes but the page has {}",
            data.len()
        ));
    }
    Ok(count)
}

/// Branch element `i`: (key, child page id).
fn branch_elem(data: &[u8], i: usize) -> std::result::Result<(&[u8], u64), String> {
    let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
    let (Some(pos), Some(ksize), Some(pgid)) = (
        u32_at(data, off),
        u32_at(data, off + 4),
        u64_at(data, off + 8),
    ) else {
        return Err(format!("branch element {i} lies outside the page"));
    };
    let kstart = off
        .checked_add(pos as usize)
        .ok_or_else(|| format!("branch element {i}: key offset overflows"))?;
    let key = slice_at(data, kstart, ksize as usize).ok_or_else(|| {
        format!(
            "branch element {i}: key at pos {pos} with {ksize} bytes lies outside the page span of {} bytes",
            data.len()
        )
    })?;
    Ok((key, pgid))
}

/// Leaf element `i`: (flags, key, value).
fn leaf_elem(data: &[u8], i: usize) -> std::result::Result<(u32, &[u8], &[u8]), String> {
    let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
    let (Some(flags), Some(pos), Some(ksize), Some(vsize)) = (
        u32_at(data, off),
        u32_at(data, off + 4),
        u32_at(data, off + 8),
        u32_at(data, off + 12),
    ) else {
        return Err(format!("leaf element {i} lies outside the page"));
    };
    let kstart = off
        .checked_add(pos as usize)
        .ok_or_else(|| format!("leaf element {i}: key offset overflows"))?;
    let key = slice_at(data, kstart, ksize as usize).ok_or_else(|| {
        format!(
            "leaf element {i}: key at pos {pos} with {ksize} bytes lies outside the page span of {} bytes",
            data.len()
        )
    })?;
    let vstart = kstart
        .checked_add(ksize as usize)
        .ok_or_else(|| format!("leaf element {i}: value offset overflows"))?;
    let value = slice_at(data, vstart, vsize as usize).ok_or_else(|| {
        format!(
            "leaf element {i}: value of {vsize} bytes after key at pos {pos} ({ksize} bytes) lies outside the page span of {} bytes",
            data.len()
        )
    })?;
    Ok((flags, key, value))
}

/// Whether page `data` with `count` elements forms a valid page of type `t` (branch or leaf)
/// whose keys are strictly increasing inside `[lo, hi)` (and, for a branch, whose children are
/// page ids in `[2, high_water)`). Bounded by `count`, which fits the page.
fn parses_as(
    data: &[u8],
    count: u16,
    t: u16,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    high_water: u64,
) -> bool {
    let Ok(count) = elements_fit(data, count) else {
        return false;
    };
    if count == 0 {
        return false;
    }
    let mut prev: Option<&[u8]> = None;
    for i in 0..count {
        let key = if t == FLAG_LEAF {
            match leaf_elem(data, i) {
                Ok((flags, key, _)) if flags & !LEAF_FLAG_BUCKET == 0 => key,
                _ => return false,
            }
        } else {
            match branch_elem(data, i) {
                Ok((key, child)) if (2..high_water).contains(&child) => key,
                _ => return false,
            }
        };
        if key.is_empty() || prev.is_some_and(|p| key <= p) || !above(lo, key) || !below(hi, key) {
            return false;
        }
        prev = Some(key);
    }
    true
}

/// Counters of one walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Branch pages entered.
    pub branch_pages: u64,
    /// Leaf pages entered (not counting inline buckets).
    pub leaf_pages: u64,
    /// Continuation pages of the multi-page branch and leaf nodes entered.
    pub overflow_pages: u64,
    /// Buckets found at every level (not counting the root bucket).
    pub buckets: u64,
    /// Of those, inline ones.
    pub inline_buckets: u64,
    /// Key/value pairs yielded.
    pub kv_pairs: u64,
    /// Bytes of keys and values yielded.
    pub kv_bytes: u64,
    /// Deepest B+tree seen.
    pub max_tree_depth: u64,
    /// Deepest bucket nesting seen.
    pub max_nesting: u64,
    /// Cursor steps (each consumes one element or pops one page): bounded by the elements of
    /// the pages loaded, which are loaded at most once each.
    pub steps: u64,
}

/// A key range `(from, to)` borrowed from the file.
type KeyRange<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// Where the walk is: shared state of all bucket cursors of one walk.
struct Ctx<'a> {
    file: BoltFile<'a>,
    salvage: bool,
    /// Read pages with a damaged type field when their elements form a valid page of the
    /// expected type (salvage only).
    recover: bool,
    /// Pages of valid branch/leaf nodes reached (with their overflow spans).
    tree: PageSet,
    /// Pages referenced from the tree but rejected.
    rejected: PageSet,
    path: Vec<&'a [u8]>,
    problems: ProblemList,
    stats: WalkStats,
    /// Lost ranges of this walk, borrowed from the file, for orphan recovery (at most
    /// [`MAX_RECOVERY_RANGES`]).
    lost_refs: Vec<LostRef<'a>>,
}

/// A lost range as the walk recorded it.
struct LostRef<'a> {
    path: Vec<&'a [u8]>,
    from: Bound<&'a [u8]>,
    to: Bound<&'a [u8]>,
    /// Index of the problem holding its [`LostRange`] (when it was kept).
    problem: Option<usize>,
    /// The last key recovered into it: recovered keys must keep increasing across orphans, so
    /// overlapping orphans (stale copies) cannot yield a key twice.
    last: Option<&'a [u8]>,
}

/// Lost ranges that salvage tries to fill from orphaned pages; more are only reported.
pub const MAX_RECOVERY_RANGES: usize = 256;

impl<'a> Ctx<'a> {
    fn owned_path(&self) -> Vec<Vec<u8>> {
        self.path.iter().map(|c| c.to_vec()).collect()
    }

    /// Record a problem (salvage) or fail with it (strict).
    fn fault(&mut self, page: u64, detail: String, lost: Option<KeyRange<'a>>) -> Result<()> {
        if !self.salvage {
            let where_ = if self.path.is_empty() {
                String::new()
            } else {
                format!("bucket {}: ", show_path(&self.owned_path()))
            };
            return Err(Error::Corruption {
                page,
                detail: format!("bbolt file: {where_}{detail}"),
            });
        }
        let path = self.owned_path();
        let before = self.problems.items.len();
        let mut pushed = false;
        // Ranges of one skipped entry (out of order, bad header...) are not recovered from
        // orphans: the key may also have been read elsewhere.
        let point = matches!(lost, Some((Bound::Included(a), Bound::Included(b))) if a == b);
        if let Some((from, to)) = lost.filter(|_| !point) {
            if self.lost_refs.len() < MAX_RECOVERY_RANGES {
                pushed = true;
                self.lost_refs.push(LostRef {
                    path: self.path.clone(),
                    from,
                    to,
                    problem: None,
                    last: None,
                });
            }
        }
        let lost = lost.map(|(from, to)| LostRange {
            path: path.clone(),
            from: own_bound(from),
            to: own_bound(to),
            page,
            reason: String::new(),
            recovered: 0,
        });
        self.problems.push(BoltProblem {
            severity: Severity::Damage,
            page,
            path,
            detail,
            lost,
        });
        if pushed && self.problems.items.len() > before {
            if let Some(r) = self.lost_refs.last_mut() {
                r.problem = Some(before);
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Root<'a> {
    Page(u64),
    /// An inline bucket's page image, inside a value on page `host`.
    Inline {
        image: &'a [u8],
        host: u64,
    },
}

#[derive(Clone, Copy, Debug)]
struct Frame<'a> {
    page: u64,
    data: &'a [u8],
    count: usize,
    idx: usize,
    leaf: bool,
    /// Keys of this subtree must be in `[lo, hi)` (from the parent's separators).
    lo: Bound<&'a [u8]>,
    hi: Bound<&'a [u8]>,
    /// Lower bound reported when a child of this frame is lost (the parent's `lo` for child 0).
    report_lo: Bound<&'a [u8]>,
    prev_key: Option<&'a [u8]>,
}

/// What a bucket cursor yields: one entry of the bucket, in key order.
enum BucketEntry<'a> {
    /// A key/value pair, found on leaf page `page` (the host page for an inline bucket).
    Kv {
        key: &'a [u8],
        value: &'a [u8],
        page: u64,
    },
    /// A nested bucket: its name, its header's sequence and where its tree starts.
    Bucket {
        name: &'a [u8],
        sequence: u64,
        root: Root<'a>,
    },
}

/// The cursor over one bucket's B+tree: an explicit stack of at most [`MAX_TREE_DEPTH`] frames.
struct BucketCursor<'a> {
    root: Root<'a>,
    started: bool,
    stack: Vec<Frame<'a>>,
    last_key: Option<&'a [u8]>,
    /// Depth (stack length) of the first leaf reached: bbolt trees are balanced, so every leaf
    /// of this bucket is at this depth.
    leaf_depth: Option<usize>,
    /// Keys of the whole tree must lie in this range (a bucket's root: unbounded; an orphaned
    /// subtree: the lost range it is recovered into).
    bounds: KeyRange<'a>,
    /// The root is an orphaned page that salvage tries (for messages).
    orphan: bool,
}

fn above(b: Bound<&[u8]>, key: &[u8]) -> bool {
    match b {
        Bound::Unbounded => true,
        Bound::Included(lo) => key >= lo,
        Bound::Excluded(lo) => key > lo,
    }
}

fn below(b: Bound<&[u8]>, key: &[u8]) -> bool {
    match b {
        Bound::Unbounded => true,
        Bound::Included(hi) => key <= hi,
        Bound::Excluded(hi) => key < hi,
    }
}

impl<'a> BucketCursor<'a> {
    fn new(root: Root<'a>) -> Self {
        BucketCursor {
            root,
            started: false,
            stack: Vec::new(),
            last_key: None,
            leaf_depth: None,
            bounds: (Bound::Unbounded, Bound::Unbounded),
            orphan: false,
        }
    }

    fn bounded(root: Root<'a>, bounds: KeyRange<'a>, last_key: Option<&'a [u8]>) -> Self {
        BucketCursor {
            bounds,
            orphan: true,
            last_key,
            ..Self::new(root)
        }
    }

    /// Enter page `id` reached from `from` (a description for messages). On any problem the
    /// keys in `[report_lo, hi)` are reported lost and nothing is pushed.
    fn enter(
        &mut self,
        ctx: &mut Ctx<'a>,
        id: u64,
        from: &str,
        lo: Bound<&'a [u8]>,
        hi: Bound<&'a [u8]>,
        report_lo: Bound<&'a [u8]>,
    ) -> Result<()> {
        let lost = Some((report_lo, hi));
        if self.stack.len() >= MAX_TREE_DEPTH {
            return ctx.fault(
                id,
                format!("tree deeper than {MAX_TREE_DEPTH} pages at page {id} ({from})"),
                lost,
            );
        }
        if self.stack.iter().any(|f| f.page == id) {
            let chain: Vec<String> = self.stack.iter().map(|f| f.page.to_string()).collect();
            return ctx.fault(
                id,
                format!(
                    "cycle: page {id} ({from}) is already on the path {} -> {id}",
                    chain.join(" -> ")
                ),
                lost,
            );
        }
        let (h, data) = match ctx.file.page(id) {
            Ok(x) => x,
            Err(d) => {
                ctx.rejected.insert(id);
                return ctx.fault(id, format!("{d} ({from})"), lost);
            }
        };
        let mut flags = h.flags;
        if flags != FLAG_BRANCH && flags != FLAG_LEAF {
            let base = format!(
                "invalid page type {} (flags {:#06x}) where a branch or leaf page was expected ({from})",
                page_type_name(h.flags),
                h.flags
            );
            // A flags value that is no page type at all may be a damaged field over intact
            // elements. When the tree's leaf depth tells which type belongs here and the
            // elements form a valid page of that type within this key range, salvage reads it.
            // Meta and freelist pages are other structures and never read as tree pages.
            let expected = self.leaf_depth.map(|d| {
                if self.stack.len() + 1 == d {
                    FLAG_LEAF
                } else {
                    FLAG_BRANCH
                }
            });
            let fits = expected
                .filter(|_| h.flags != FLAG_META && h.flags != FLAG_FREELIST)
                .filter(|&t| parses_as(data, h.count, t, lo, hi, ctx.file.high_water));
            match fits {
                Some(t) if ctx.recover => {
                    ctx.problems.push(BoltProblem {
                        severity: Severity::Damage,
                        page: id,
                        path: ctx.owned_path(),
                        detail: format!(
                            "{base}; its {} elements form a valid {} page within the expected key range, so salvage read it as one (contents unverified)",
                            h.count,
                            page_type_name(t)
                        ),
                        lost: None,
                    });
                    flags = t;
                }
                Some(t) => {
                    ctx.rejected.insert(id);
                    return ctx.fault(
                        id,
                        format!(
                            "{base}; its {} elements form a valid {} page, so salvage can recover them",
                            h.count,
                            page_type_name(t)
                        ),
                        lost,
                    );
                }
                None => {
                    ctx.rejected.insert(id);
                    return ctx.fault(id, base, lost);
                }
            }
        }
        let span_end = id + 1 + u64::from(h.overflow);
        if (id..span_end).any(|p| ctx.tree.contains(p)) {
            return ctx.fault(
                id,
                format!(
                    "page {id} ({}, {} overflow) is referenced more than once: it was already reached from another branch or bucket ({from})",
                    page_type_name(h.flags),
                    h.overflow
                ),
                lost,
            );
        }
        let count = match elements_fit(data, h.count) {
            Ok(c) => c,
            Err(d) => {
                ctx.rejected.insert(id);
                return ctx.fault(
                    id,
                    format!("{} page {id}: {d} ({from})", page_type_name(h.flags),),
                    lost,
                );
            }
        };
        let leaf = flags == FLAG_LEAF;
        if !leaf && count == 0 {
            ctx.rejected.insert(id);
            return ctx.fault(
                id,
                format!("branch page {id} has no elements ({from})"),
                lost,
            );
        }
        for p in id..span_end {
            ctx.tree.insert(p);
        }
        if leaf {
            ctx.stats.leaf_pages += 1;
            if self.leaf_depth.is_none() {
                self.leaf_depth = Some(self.stack.len() + 1);
            }
        } else {
            ctx.stats.branch_pages += 1;
        }
        ctx.stats.overflow_pages += u64::from(h.overflow);
        self.stack.push(Frame {
            page: id,
            data,
            count,
            idx: 0,
            leaf,
            lo,
            hi,
            report_lo,
            prev_key: None,
        });
        ctx.stats.max_tree_depth = ctx.stats.max_tree_depth.max(self.stack.len() as u64);
        Ok(())
    }

    fn start(&mut self, ctx: &mut Ctx<'a>) -> Result<()> {
        match self.root {
            Root::Page(id) => {
                let from = if self.orphan {
                    "an orphaned page salvage tries to recover".to_string()
                } else if ctx.path.is_empty() {
                    "the root bucket's root, named by the meta page".to_string()
                } else {
                    "a bucket header's root".to_string()
                };
                let (lo, hi) = self.bounds;
                self.enter(ctx, id, &from, lo, hi, lo)
            }
            Root::Inline { image, host } => {
                let lost = Some((Bound::Unbounded, Bound::Unbounded));
                let Some(h) = PageHeader::parse(image) else {
                    return ctx.fault(
                        host,
                        format!(
                            "inline bucket of {} bytes is too short for a page header",
                            image.len()
                        ),
                        lost,
                    );
                };
                if h.flags != FLAG_LEAF {
                    return ctx.fault(
                        host,
                        format!(
                            "inline bucket page has type {} (flags {:#06x}), expected leaf",
                            page_type_name(h.flags),
                            h.flags
                        ),
                        lost,
                    );
                }
                let count = match elements_fit(image, h.count) {
                    Ok(c) => c,
                    Err(d) => return ctx.fault(host, format!("inline bucket page: {d}"), lost),
                };
                self.stack.push(Frame {
                    page: host,
                    data: image,
                    count,
                    idx: 0,
                    leaf: true,
                    lo: Bound::Unbounded,
                    hi: Bound::Unbounded,
                    report_lo: Bound::Unbounded,
                    prev_key: None,
                });
                ctx.stats.max_tree_depth = ctx.stats.max_tree_depth.max(1);
                Ok(())
            }
        }
    }

    /// The next entry in key order, or `None` at the end. In salvage mode problems are recorded
    /// and the damaged part skipped; otherwise the first problem is returned as an error.
    fn next(&mut self, ctx: &mut Ctx<'a>) -> Result<Option<BucketEntry<'a>>> {
        if !self.started {
            self.started = true;
            self.start(ctx)?;
        }
        loop {
            ctx.stats.steps += 1;
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            if top.idx >= top.count {
                self.stack.pop();
                continue;
            }
            let i = top.idx;
            top.idx += 1;
            let f = *top;
            if f.leaf {
                if let Some(item) = self.leaf_step(ctx, &f, i)? {
                    return Ok(Some(item));
                }
            } else {
                self.branch_step(ctx, &f, i)?;
            }
        }
    }

    fn leaf_step(
        &mut self,
        ctx: &mut Ctx<'a>,
        f: &Frame<'a>,
        i: usize,
    ) -> Result<Option<BucketEntry<'a>>> {
        let prev = match self.last_key {
            Some(k) => Bound::Excluded(k),
            None => f.report_lo,
        };
        let (flags, key, value) = match leaf_elem(f.data, i) {
            Ok(x) => x,
            Err(d) => {
                // Lost: from the last good key to the next readable key of this page.
                let next = (i + 1..f.count)
                    .take(1)
                    .find_map(|j| leaf_elem(f.data, j).ok())
                    .map_or(f.hi, |(_, k, _)| Bound::Excluded(k));
                ctx.fault(f.page, d, Some((prev, next)))?;
                return Ok(None);
            }
        };
        let just = Some((Bound::Included(key), Bound::Included(key)));
        if let Some(lk) = self.last_key {
            if key <= lk {
                ctx.fault(
                    f.page,
                    format!(
                        "leaf element {i}: key {} is not greater than the previous key {} (keys out of order); entry skipped",
                        show_bytes(key),
                        show_bytes(lk)
                    ),
                    just,
                )?;
                return Ok(None);
            }
        }
        if !above(f.lo, key) || !below(f.hi, key) {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i}: key {} lies outside the range its parent branch assigns to this page; entry skipped",
                    show_bytes(key)
                ),
                just,
            )?;
            return Ok(None);
        }
        self.last_key = Some(key);
        if key.is_empty() {
            ctx.fault(f.page, format!("leaf element {i}: empty key"), just)?;
            return Ok(None);
        }
        if key.len() > crate::MAX_KEY_SIZE {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i}: key of {} bytes exceeds the maximum of {}",
                    key.len(),
                    crate::MAX_KEY_SIZE
                ),
                just,
            )?;
            return Ok(None);
        }
        if flags & !LEAF_FLAG_BUCKET != 0 {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i} (key {}): unknown element flags {flags:#x}",
                    show_bytes(key)
                ),
                just,
            )?;
            return Ok(None);
        }
        if flags & LEAF_FLAG_BUCKET == 0 {
            if value.len() > crate::MAX_VALUE_SIZE {
                ctx.fault(
                    f.page,
                    format!(
                        "leaf element {i} (key {}): value of {} bytes exceeds the maximum",
                        show_bytes(key),
                        value.len()
                    ),
                    just,
                )?;
                return Ok(None);
            }
            return Ok(Some(BucketEntry::Kv {
                key,
                value,
                page: f.page,
            }));
        }
        // A nested bucket: header {root u64, sequence u64}, then the inline page when root is 0.
        let (Some(root), Some(sequence)) = (u64_at(value, 0), u64_at(value, 8)) else {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i}: nested bucket {} has a header of {} bytes (16 needed); the bucket is lost",
                    show_bytes(key),
                    value.len()
                ),
                just,
            )?;
            return Ok(None);
        };
        let root = if root == 0 {
            Root::Inline {
                image: value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]),
                host: f.page,
            }
        } else {
            Root::Page(root)
        };
        Ok(Some(BucketEntry::Bucket {
            name: key,
            sequence,
            root,
        }))
    }

    fn branch_step(&mut self, ctx: &mut Ctx<'a>, f: &Frame<'a>, i: usize) -> Result<()> {
        let next_key = if i + 1 < f.count {
            branch_elem(f.data, i + 1).ok().map(|(k, _)| k)
        } else {
            None
        };
        let hi = match next_key {
            Some(k) if i + 1 < f.count => Bound::Excluded(k),
            _ => f.hi,
        };
        let (key, child) = match branch_elem(f.data, i) {
            Ok(x) => x,
            Err(d) => {
                let lo = match f.prev_key {
                    Some(k) if i > 0 => Bound::Excluded(k),
                    _ => f.report_lo,
                };
                return ctx.fault(f.page, d, Some((lo, hi)));
            }
        };
        let report_lo = if i == 0 {
            f.report_lo
        } else {
            Bound::Included(key)
        };
        let in_order = f.prev_key.is_none_or(|p| key > p);
        if let Some(top) = self.stack.last_mut() {
            top.prev_key = Some(key);
        }
        if !in_order || !above(f.lo, key) || !below(f.hi, key) {
            return ctx.fault(
                f.page,
                format!(
                    "branch element {i}: key {} is out of order or outside the range the parent assigns to branch page {}; child page {child} skipped",
                    show_bytes(key),
                    f.page
                ),
                Some((report_lo, hi)),
            );
        }
        let from = format!("reached from branch page {} element {i}", f.page);
        self.enter(ctx, child, &from, Bound::Included(key), hi, report_lo)
    }
}

/// One step of a walk over every bucket, in pre-order: a bucket's entries in key order, and a
/// nested bucket's whole contents right after its [`Event::EnterBucket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A bucket starts (a child of the current one; top-level buckets are children of the root).
    EnterBucket {
        name: &'a [u8],
        sequence: u64,
        /// The bucket header's root page id (0 for an inline bucket).
        root_pgid: u64,
        inline: bool,
    },
    /// A key/value pair of the current bucket.
    Kv { key: &'a [u8], value: &'a [u8] },
    /// The current bucket ends.
    LeaveBucket,
    /// Salvage only, after the walk of the tree: the walk continues in an already visited
    /// bucket, given by [`Walker::path`], with entries recovered from orphaned pages (pages
    /// neither reachable nor on the freelist) whose keys fall into a range that was lost there.
    /// Buckets entered from here are nested in that bucket; no `LeaveBucket` closes it.
    Reenter,
}

/// A pre-order walk over every bucket and key of a bbolt file, with an explicit stack of at
/// most [`MAX_BUCKET_NESTING`] bucket cursors. Each page is entered at most once.
pub struct Walker<'a> {
    cursors: Vec<BucketCursor<'a>>,
    ctx: Ctx<'a>,
    done: bool,
    /// Orphan recovery (salvage): `None` until the tree walk ends, then the planned roots.
    orphans: Option<Vec<Orphan<'a>>>,
    next_orphan: usize,
    /// The orphan being read and the counters when it started.
    current: Option<(Orphan<'a>, u64)>,
}

/// An orphaned subtree root and the lost range (index into `lost_refs`) it is read into.
#[derive(Clone, Copy, Debug)]
struct Orphan<'a> {
    page: u64,
    lost: usize,
    /// Its first key: orphans are read in key order within each lost range.
    first: &'a [u8],
}

/// Orphaned subtree roots salvage tries at most.
pub const MAX_ORPHAN_ROOTS: usize = 100_000;

impl<'a> Walker<'a> {
    /// A walk of `file`. With `salvage`, problems are recorded (see [`Walker::problems`]) and the
    /// damaged parts skipped; otherwise the first problem ends the walk with
    /// [`Error::Corruption`].
    pub fn new(file: BoltFile<'a>, salvage: bool) -> Walker<'a> {
        Self::with_mode(file, salvage, salvage)
    }

    /// A walk for diagnosis: records problems like salvage, but reads nothing that strict
    /// reading would not (no page with a damaged type field is recovered), so its lost ranges
    /// are what strict reading cannot reach.
    pub fn diagnose(file: BoltFile<'a>) -> Walker<'a> {
        Self::with_mode(file, true, false)
    }

    fn with_mode(file: BoltFile<'a>, salvage: bool, recover: bool) -> Walker<'a> {
        Walker {
            cursors: vec![BucketCursor::new(Root::Page(file.root_pgid))],
            ctx: Ctx {
                file,
                salvage,
                recover,
                tree: PageSet::new(file.limit),
                rejected: PageSet::new(file.limit),
                path: Vec::new(),
                problems: ProblemList::default(),
                stats: WalkStats::default(),
                lost_refs: Vec::new(),
            },
            done: false,
            orphans: None,
            next_orphan: 0,
            current: None,
        }
    }

    /// The current bucket path (names from the top).
    pub fn path(&self) -> &[&'a [u8]] {
        &self.ctx.path
    }

    /// Problems found so far (salvage mode).
    pub fn problems(&self) -> &ProblemList {
        &self.ctx.problems
    }

    /// Counters so far.
    pub fn stats(&self) -> &WalkStats {
        &self.ctx.stats
    }

    /// Pages of valid branch/leaf nodes reached so far.
    pub fn tree_pages(&self) -> &PageSet {
        &self.ctx.tree
    }

    /// Pages referenced by the tree but rejected (wrong type, bad header, out of range...).
    pub fn rejected_pages(&self) -> &PageSet {
        &self.ctx.rejected
    }

    /// Consume the walker, returning its problems and counters.
    pub fn finish(self) -> (ProblemList, WalkStats, PageSet, PageSet) {
        (
            self.ctx.problems,
            self.ctx.stats,
            self.ctx.tree,
            self.ctx.rejected,
        )
    }

    /// The next event, `None` at the end.
    pub fn next_event(&mut self) -> Result<Option<Event<'a>>> {
        if self.done {
            return Ok(None);
        }
        match self.step() {
            Ok(ev) => {
                if ev.is_none() {
                    self.done = true;
                }
                Ok(ev)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<Event<'a>>> {
        loop {
            let Some(top) = self.cursors.last_mut() else {
                // The tree walk (or one orphaned subtree) is over.
                self.finish_orphan();
                if self.orphans.is_none() {
                    self.orphans = Some(if self.ctx.recover {
                        self.plan_orphans()
                    } else {
                        Vec::new()
                    });
                }
                let plan = self.orphans.as_deref().unwrap_or(&[]);
                let Some(&o) = plan.get(self.next_orphan) else {
                    return Ok(None);
                };
                self.next_orphan += 1;
                let Some(r) = self.ctx.lost_refs.get(o.lost) else {
                    continue;
                };
                if self.ctx.tree.contains(o.page) {
                    continue; // read meanwhile as part of another orphaned subtree
                }
                self.ctx.path = r.path.clone();
                let bounds = (r.from, r.to);
                self.cursors
                    .push(BucketCursor::bounded(Root::Page(o.page), bounds, r.last));
                self.current = Some((o, self.ctx.stats.kv_pairs + self.ctx.stats.buckets));
                return Ok(Some(Event::Reenter));
            };
            let item = top.next(&mut self.ctx)?;
            match item {
                None => {
                    let done = self.cursors.pop();
                    if let (Some(c), Some((o, _)), true) =
                        (done, self.current, self.cursors.is_empty())
                    {
                        if let Some(r) = self.ctx.lost_refs.get_mut(o.lost) {
                            r.last = c.last_key.or(r.last);
                        }
                    }
                    if !self.cursors.is_empty() {
                        self.ctx.path.pop();
                        return Ok(Some(Event::LeaveBucket));
                    }
                }
                Some(BucketEntry::Kv { key, value, page }) => {
                    if self.ctx.path.is_empty() {
                        self.ctx.fault(
                            page,
                            format!(
                                "the root bucket holds a plain key/value pair (key {}); bbolt allows only buckets at the top level; entry skipped",
                                show_bytes(key)
                            ),
                            Some((Bound::Included(key), Bound::Included(key))),
                        )?;
                        continue;
                    }
                    self.ctx.stats.kv_pairs += 1;
                    self.ctx.stats.kv_bytes += (key.len() + value.len()) as u64;
                    return Ok(Some(Event::Kv { key, value }));
                }
                Some(BucketEntry::Bucket {
                    name,
                    sequence,
                    root,
                }) => {
                    if self.ctx.path.len() + 1 >= MAX_BUCKET_NESTING {
                        self.ctx.fault(
                            0,
                            format!(
                                "bucket {} is nested deeper than {MAX_BUCKET_NESTING} levels; it is skipped",
                                show_bytes(name)
                            ),
                            Some((Bound::Included(name), Bound::Included(name))),
                        )?;
                        continue;
                    }
                    let (inline, root_pgid) = match root {
                        Root::Inline { .. } => (true, 0),
                        Root::Page(id) => (false, id),
                    };
                    self.ctx.stats.buckets += 1;
                    if inline {
                        self.ctx.stats.inline_buckets += 1;
                    }
                    self.ctx.path.push(name);
                    self.ctx.stats.max_nesting =
                        self.ctx.stats.max_nesting.max(self.ctx.path.len() as u64);
                    self.cursors.push(BucketCursor::new(root));
                    return Ok(Some(Event::EnterBucket {
                        name,
                        sequence,
                        root_pgid,
                        inline,
                    }));
                }
            }
        }
    }

    /// Account for the orphaned subtree just read.
    fn finish_orphan(&mut self) {
        let Some((o, before)) = self.current.take() else {
            return;
        };
        let n = (self.ctx.stats.kv_pairs + self.ctx.stats.buckets).saturating_sub(before);
        let Some(r) = self.ctx.lost_refs.get(o.lost) else {
            return;
        };
        if n == 0 {
            return; // nothing read: the problems met were recorded by the walk
        }
        let idx = r.problem;
        let range = LostRange {
            path: r.path.iter().map(|c| c.to_vec()).collect(),
            from: own_bound(r.from),
            to: own_bound(r.to),
            page: o.page,
            reason: String::new(),
            recovered: n,
        };
        if let Some(l) = idx
            .and_then(|i| self.ctx.problems.items.get_mut(i))
            .and_then(|p| p.lost.as_mut())
        {
            l.recovered += n;
        }
        self.ctx.problems.push(BoltProblem {
            severity: Severity::Warning,
            page: o.page,
            path: range.path.clone(),
            detail: format!(
                "salvage recovered {n} entries from orphaned page {} (neither reachable nor on the freelist) into the lost range {range}",
                o.page
            ),
            lost: None,
        });
    }

    /// Find orphaned subtree roots (pages neither reachable, nor free, nor rejected, that no
    /// other orphaned branch points at) whose first key falls into exactly one lost range.
    /// Only with a consistent persisted freelist: without one, unreachable pages are free pages
    /// holding stale data. Bounded by the pages of the file and [`MAX_ORPHAN_ROOTS`].
    fn plan_orphans(&mut self) -> Vec<Orphan<'a>> {
        let mut plan = Vec::new();
        if self.ctx.lost_refs.is_empty() {
            return plan;
        }
        let file = self.ctx.file;
        let mut scratch = ProblemList::default();
        let (info, free, span) =
            super::freelist::analyze_freelist(&file, &self.ctx.tree, &mut scratch);
        let Some((fs, fe)) = span.filter(|_| info.persisted && !scratch.has_damage()) else {
            self.ctx.problems.push(BoltProblem {
                severity: Severity::Warning,
                page: file.freelist_pgid.min(file.high_water),
                path: Vec::new(),
                detail: "salvage did not look for orphaned pages: without a consistent freelist they cannot be told from free pages holding stale data".into(),
                lost: None,
            });
            return plan;
        };
        let tree = &self.ctx.tree;
        let rejected = &self.ctx.rejected;
        let orphan = |p: u64| {
            !tree.contains(p)
                && !free.contains(p)
                && !(fs..fe).contains(&p)
                && !rejected.contains(p)
        };
        let mut has_parent = PageSet::new(file.limit);
        for p in 2..file.limit {
            if !orphan(p) {
                continue;
            }
            let Ok((h, data)) = file.page(p) else {
                continue;
            };
            if h.flags == FLAG_BRANCH {
                if let Ok(count) = elements_fit(data, h.count) {
                    for i in 0..count {
                        if let Ok((_, child)) = branch_elem(data, i) {
                            has_parent.insert(child);
                        }
                    }
                }
            }
            if h.flags == FLAG_BRANCH || h.flags == FLAG_LEAF {
                for q in p + 1..=p + u64::from(h.overflow) {
                    has_parent.insert(q);
                }
            }
        }
        for p in 2..file.limit {
            if plan.len() >= MAX_ORPHAN_ROOTS {
                break;
            }
            if !orphan(p) || has_parent.contains(p) {
                continue;
            }
            let Ok((h, data)) = file.page(p) else {
                continue;
            };
            let first = match h.flags {
                FLAG_LEAF if h.count > 0 => leaf_elem(data, 0).ok().map(|(_, k, _)| k),
                FLAG_BRANCH if h.count > 0 => branch_elem(data, 0).ok().map(|(k, _)| k),
                _ => None,
            };
            let Some(first) = first else {
                continue;
            };
            let mut matches = self
                .ctx
                .lost_refs
                .iter()
                .enumerate()
                .filter(|(_, r)| above(r.from, first) && below(r.to, first))
                .map(|(i, _)| i);
            if let (Some(i), None) = (matches.next(), matches.next()) {
                plan.push(Orphan {
                    page: p,
                    lost: i,
                    first,
                });
            }
        }
        // Key order within each range, so entries are written in ascending order.
        plan.sort_by(|a, b| a.lost.cmp(&b.lost).then(a.first.cmp(b.first)));
        plan
    }
}
