//! The database handle: open and recovery, snapshots, readers, the writer lock, statistics.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::freelist::{decode_record, FreeState, RunSet, KIND_FULL, MAX_CHAIN};
use crate::meta::{valid_page_size, Meta, MAX_PAGE, MIN_PAGE};
use crate::mvcc::{Arc, Registry};
use crate::page::{max_overflow, span_crc, BucketHeader, ChildRef, Header, Page, PageType};
use crate::storage::{FileOptions, FileStorage, MemStorage, Storage, View};
use crate::tx::Tx;
use crate::MAX_DEPTH;

/// Options for [`Db::open_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a new file: a power of two from 1024 to 65536. Ignored for existing files.
    pub page_size: usize,
    /// Do not sync on commit (bbolt's NoSync): a crash may lose recent commits. Pages freed by
    /// unsynced commits are reused only after the next sync ([`Db::sync`] or a durable commit).
    pub no_sync: bool,
    /// Open read-only under a shared lock.
    pub read_only: bool,
    /// Wait at most this long for the file lock (`None`: forever).
    pub lock_timeout: Option<Duration>,
    /// Verify a page's checksum on every access, not only the first time it is read.
    pub verify_every_access: bool,
    /// Confirm the newest durable commit after the database has been idle this long (a
    /// background thread writes one meta page and syncs; see [`Recovery::confirmed`]). A
    /// confirmed commit is never rolled back at open: damage to it is an error. `None`: only
    /// [`Db::sync`], a clean close and the next commit confirm (the fault-injection harness
    /// uses that, to keep every I/O in its deterministic order).
    pub confirm_after: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: crate::DEFAULT_PAGE_SIZE,
            no_sync: false,
            read_only: false,
            lock_timeout: None,
            verify_every_access: false,
            confirm_after: Some(Duration::from_millis(50)),
        }
    }
}

/// Engine counters and facts about the newest snapshot.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Txid of the newest commit.
    pub txid: u64,
    pub page_size: usize,
    /// Pages `[0, high_water)` are in use (reachable, free or pending).
    pub high_water: u64,
    pub file_size: u64,
    /// Free pages reusable now.
    pub free_pages: u64,
    /// Pages freed by recent commits, waiting for readers or a sync.
    pub pending_pages: u64,
    /// Commits that wrote something, since open.
    pub commits: u64,
    /// `sync_data` calls since open: one per durable commit, plus those of confirmations and of
    /// a writable open (one, and one more for each meta slot it writes).
    pub syncs: u64,
    pub pages_written: u64,
    pub bytes_written: u64,
    /// Pages whose checksum and structure were verified, since open.
    pub pages_verified: u64,
    pub open_read_txs: u64,
    /// Records in the persisted free-space chain.
    pub freelist_chain: u64,
    /// Height of the root bucket's tree (0 when empty).
    pub depth: u64,
    /// Format version of the file.
    pub format_version: u32,
    /// Newest commit whose durability a meta page on disk confirms (it is never rolled back).
    pub confirmed_txid: u64,
    /// Confirmation writes since open (each one page and one sync, off the commit path).
    pub confirmations: u64,
}

/// What open found.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// The commit the database opened at.
    pub txid: u64,
    /// Newest commit whose durability the file confirms (a later commit's meta, or a
    /// confirmation written after it was synced). Open never goes back past it.
    pub confirmed: u64,
    /// A newer, *unconfirmed* commit whose meta page was intact but whose pages did not all
    /// verify: a commit interrupted by a crash (or damaged before anything confirmed it). It
    /// was not used. A confirmed commit that fails is never rolled back: open returns
    /// [`Error::Corruption`] instead.
    pub rolled_back: Option<RolledBack>,
    /// A meta slot that could not be decoded at all (normal after a crash during a meta write).
    pub damaged_meta: Option<String>,
}

/// A newer commit that open found incomplete or damaged and did not use. It was never
/// confirmed durable (`txid` is above [`Recovery::confirmed`]).
#[derive(Clone, Debug)]
pub struct RolledBack {
    pub txid: u64,
    /// Why it did not verify.
    pub reason: String,
}

/// One problem found by [`Db::check`].
#[derive(Clone, Debug)]
pub struct Problem {
    /// The page where it was found.
    pub page: u64,
    /// Bucket path from the top (empty for the root or free space).
    pub path: Vec<Vec<u8>>,
    /// What was expected versus found.
    pub detail: String,
}

/// The result of an integrity check.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Pages below the high-water mark.
    pub pages_total: u64,
    pub pages_reachable: u64,
    pub pages_free: u64,
    pub pages_pending: u64,
    pub buckets: u64,
    pub keys: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Raw facts about one page, for inspection tools.
#[derive(Clone, Debug)]
pub struct PageInfo {
    pub id: u64,
    /// "meta", "branch", "leaf", "freelist", "free" (listed as free) or "unknown".
    pub kind: String,
    pub count: u64,
    pub overflow: u64,
    pub txid: u64,
    /// The stored checksum matches the page's bytes.
    pub checksum_ok: bool,
    /// Keys on a branch or leaf page, at most 64 of them.
    pub keys: Vec<Vec<u8>>,
}

/// Per-bucket statistics (nested buckets included).
#[derive(Clone, Debug, Default)]
pub struct BucketStats {
    pub keys: u64,
    pub buckets: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    /// Extra pages of multi-page spans.
    pub overflow_pages: u64,
    pub depth: u64,
    /// Bytes of keys and values stored.
    pub bytes_used: u64,
    /// Bytes of the pages holding them.
    pub bytes_allocated: u64,
}

/// An immutable committed state: a meta and a view of the file that contains its pages.
pub(crate) struct Snapshot {
    pub meta: Meta,
    pub view: Arc<dyn View>,
}

/// State owned by the single writer.
pub(crate) struct Writer {
    pub free: FreeState,
    pub last_synced: u64,
    /// Newest commit a durable meta page confirms (see [`crate::confirm`]).
    pub confirmed: u64,
    pub poisoned: Option<String>,
    pub file_len: u64,
    pub unsynced: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    /// Free-space facts as of the last commit (readable without the writer lock).
    pub free_pages: AtomicU64,
    pub pending_pages: AtomicU64,
    pub chain_len: AtomicU64,
    pub file_len: AtomicU64,
    pub commits: AtomicU64,
    pub syncs: AtomicU64,
    pub pages_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub pages_verified: AtomicU64,
    pub confirmations: AtomicU64,
    /// [`Writer::confirmed`], readable without the writer lock.
    pub confirmed: AtomicU64,
}

/// Pages verified since open: one bit per page id, in lazily allocated chunks, so that
/// steady-state reads skip the checksum. Pages beyond the covered range are always verified.
pub(crate) struct Verified {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

const CHUNK_BITS: u64 = 1 << 20;
const CHUNKS: usize = 4096;

impl Verified {
    fn new() -> Verified {
        Verified {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }
    fn slot(&self, p: u64, create: bool) -> Option<(&AtomicU64, u64)> {
        let c = usize::try_from(p / CHUNK_BITS).ok()?;
        let cell = self.chunks.get(c)?;
        let chunk = if create {
            cell.get_or_init(|| (0..CHUNK_BITS / 64).map(|_| AtomicU64::new(0)).collect())
        } else {
            cell.get()?
        };
        let bit = p % CHUNK_BITS;
        Some((chunk.get((bit / 64) as usize)?, 1u64 << (bit % 64)))
    }
    pub(crate) fn is(&self, p: u64) -> bool {
        self.slot(p, false)
            .is_some_and(|(w, m)| w.load(Ordering::Acquire) & m != 0)
    }
    pub(crate) fn set(&self, p: u64) {
        if let Some((w, m)) = self.slot(p, true) {
            w.fetch_or(m, Ordering::AcqRel);
        }
    }
    pub(crate) fn clear(&self, p: u64) {
        if let Some((w, m)) = self.slot(p, false) {
            w.fetch_and(!m, Ordering::AcqRel);
        }
    }
}

pub(crate) struct DbInner {
    pub storage: Arc<dyn Storage>,
    pub opts: Options,
    pub page_size: usize,
    pub shared: Registry<Snapshot>,
    pub writer: Mutex<Writer>,
    pub verified: Verified,
    pub counters: Counters,
    pub recovery: Recovery,
    pub batcher: crate::batch::Batcher,
    /// [`max_overflow`] for this page size, computed once.
    pub max_overflow: u64,
    /// Token of the thread holding the write transaction (0: none), so that a second
    /// `begin_write` on the same thread fails instead of waiting for itself.
    pub writer_owner: AtomicU64,
    /// Wakes the confirmer thread after durable commits (when it runs).
    pub confirm_signal: Option<std::sync::Arc<crate::confirm::Signal>>,
}

/// A database: one file, one writer at a time, any number of concurrent readers.
///
/// `Db` is `Send + Sync`; share it across threads by reference or in an `Arc`.
pub struct Db {
    pub(crate) inner: std::sync::Arc<DbInner>,
    confirmer: Option<crate::confirm::Confirmer>,
}

/// A small number unique to the calling thread (never 0).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|t| *t)
}

/// The writer lock, held by a write transaction or a maintenance call; remembers its thread.
pub(crate) struct WriterGuard<'a> {
    guard: parking_lot::MutexGuard<'a, Writer>,
    owner: &'a AtomicU64,
}

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.guard
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.guard
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        // Cleared before the mutex is released (fields drop after this body).
        self.owner.store(0, Ordering::Release);
    }
}

/// What a page pointer is expected to lead to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Want {
    Node,
    Freelist,
}

impl Counters {
    /// Publish the writer's free-space facts for [`Db::stats`].
    pub(crate) fn publish(&self, w: &Writer) {
        self.free_pages
            .store(w.free.free.pages(), Ordering::Relaxed);
        self.pending_pages
            .store(w.free.pending_pages(), Ordering::Relaxed);
        self.chain_len
            .store(w.free.chain.len() as u64, Ordering::Relaxed);
        self.file_len.store(w.file_len, Ordering::Relaxed);
    }
}

impl DbInner {
    /// Load and (first time, or always with `verify_every_access`) verify the span that `r`
    /// points to in a snapshot whose bytes are `bytes` and high-water mark is `hwm`: page id in
    /// range and matching the header, type as the parent implies, txid and checksum equal to
    /// the parent's record, span inside the file, and the page's structure.
    pub(crate) fn load_span<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
        want: Want,
    ) -> Result<(Header, &'a [u8])> {
        self.load_span_opt(bytes, hwm, r, want, false)
    }

    /// [`DbInner::load_span`], verifying even a page already verified when `force` is set.
    pub(crate) fn load_span_opt<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
        want: Want,
        force: bool,
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
            Want::Node => h.ptype == PageType::Branch as u8 || h.ptype == PageType::Leaf as u8,
            Want::Freelist => h.ptype == PageType::Freelist as u8,
        };
        if !ok_type {
            let found = PageType::from_u8(h.ptype).map_or("unknown", |t| t.name());
            return Err(bad(format!(
                "expected a {} page, found type {} ({found})",
                if want == Want::Node {
                    "branch or leaf"
                } else {
                    "freelist"
                },
                h.ptype
            )));
        }
        let no_parent_check = cfg!(feature = "bug-no-parent-checksum");
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
        if force || self.opts.verify_every_access || !self.verified.is(r.pgid) {
            let crc = span_crc(span);
            let expect = if no_parent_check { h.crc } else { r.crc };
            if crc != expect || crc != h.crc {
                return Err(bad(format!(
                    "checksum mismatch: parent records {:#010x}, header {:#010x}, computed {crc:#010x}",
                    r.crc, h.crc
                )));
            }
            if want == Want::Node {
                let page = Page {
                    id: r.pgid,
                    data: span,
                    leaf: h.ptype == PageType::Leaf as u8,
                    level: h.level,
                    count: h.count as usize,
                };
                page.validate()?;
            }
            self.counters.pages_verified.fetch_add(1, Ordering::Relaxed);
            if !self.opts.verify_every_access {
                self.verified.set(r.pgid);
            }
        }
        Ok((h, span))
    }

    pub(crate) fn load_page<'a>(
        &self,
        bytes: &'a [u8],
        hwm: u64,
        r: &ChildRef,
    ) -> Result<Page<'a>> {
        let (h, span) = self.load_span(bytes, hwm, r, Want::Node)?;
        Ok(Page {
            id: r.pgid,
            data: span,
            leaf: h.ptype == PageType::Leaf as u8,
            level: h.level,
            count: h.count as usize,
        })
    }

    /// Load the free-space chain of `meta`: at most [`MAX_CHAIN`] records, every run inside the
    /// high-water mark, no run freed twice, none overlapping the chain's own pages.
    pub(crate) fn load_freelist(&self, bytes: &[u8], meta: &Meta) -> Result<FreeState> {
        let mut chain = Vec::new();
        let mut records = Vec::new();
        let mut next = meta.freelist;
        while !next.is_empty() {
            if chain.len() as u32 >= MAX_CHAIN {
                return Err(Error::corrupt(
                    next.pgid,
                    "freelist chain longer than its bound",
                ));
            }
            if next.txid > meta.txid {
                return Err(Error::corrupt(
                    next.pgid,
                    "freelist record newer than its meta",
                ));
            }
            let (_, span) = self.load_span(bytes, meta.hwm, &next, Want::Freelist)?;
            let rec = decode_record(span, next.pgid)?;
            let expect_len = records
                .first()
                .map_or(0, |r: &crate::freelist::Record| r.chain_len)
                as usize;
            if !records.is_empty() && rec.chain_len as usize + chain.len() != expect_len {
                return Err(Error::corrupt(
                    next.pgid,
                    "freelist chain lengths do not line up",
                ));
            }
            chain.push((next, span.len() as u64 / self.page_size as u64));
            next = rec.prev;
            let full = rec.kind == KIND_FULL;
            records.push(rec);
            if full {
                break;
            }
        }
        if let Some(first) = records.first() {
            if first.chain_len as usize != records.len() {
                return Err(Error::corrupt(
                    meta.freelist.pgid,
                    "freelist chain is missing records",
                ));
            }
        }
        let mut set = RunSet::default();
        for rec in records.iter().rev() {
            let page = 0;
            for &(s, l) in &rec.add {
                if !set.insert(s, l) {
                    return Err(Error::corrupt(
                        s,
                        format!("free run {s}+{l} listed twice (chain page {page})"),
                    ));
                }
            }
            for &(s, l) in &rec.remove {
                if !set.remove(s, l) {
                    return Err(Error::corrupt(
                        s,
                        format!("allocated run {s}+{l} was not free"),
                    ));
                }
            }
            set.clip(rec.hwm);
        }
        set.clip(meta.hwm);
        for &(r, n) in &chain {
            for p in r.pgid..r.pgid + n {
                if set.contains(p) {
                    return Err(Error::corrupt(p, "freelist record page is listed as free"));
                }
            }
        }
        Ok(FreeState {
            free: set,
            pending: BTreeMap::new(),
            chain,
        })
    }

    /// Verify the pages written by `meta`'s commit (and by unsynced commits before it): every
    /// page reachable from the root whose txid is above `durable_base`, walking only those, so
    /// the cost is proportional to the last commit, not to the database.
    pub(crate) fn verify_commit(&self, bytes: &[u8], meta: &Meta) -> Result<()> {
        let p = self.page_size as u64;
        let need = meta
            .hwm
            .checked_mul(p)
            .ok_or_else(|| Error::corrupt(0, "high-water mark overflows"))?;
        if need > bytes.len() as u64 {
            return Err(Error::corrupt(
                meta.txid % 2,
                format!(
                    "high-water mark {} lies past the end of the file ({} bytes)",
                    meta.hwm,
                    bytes.len()
                ),
            ));
        }
        if cfg!(feature = "bug-skip-open-verify") {
            return Ok(());
        }
        let base = meta.durable_base;
        let mut stack: Vec<(ChildRef, usize)> = Vec::new();
        let mut seen: HashSet<u64> = HashSet::new();
        if !meta.root.is_empty() && meta.root.txid > base {
            stack.push((meta.root, 0));
        }
        while let Some((r, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(Error::corrupt(r.pgid, "tree deeper than the cursor bound"));
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
                        let h = BucketHeader::decode(it.value, r.pgid)?;
                        if !h.root.is_empty() && h.root.txid > base {
                            stack.push((h.root, 0));
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
            supported: crate::FORMAT_VERSION,
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
    let magic = crate::meta::MAGIC.to_le_bytes();
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

impl DbInner {
    /// True when the calling thread holds the writer lock.
    pub(crate) fn holds_writer(&self) -> bool {
        self.writer_owner.load(Ordering::Acquire) == thread_token()
    }

    /// Take the writer lock, waiting for another thread's writer; [`Error::WouldDeadlock`] if
    /// this thread already holds it.
    pub(crate) fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        if self.holds_writer() {
            return Err(Error::WouldDeadlock);
        }
        let guard = self.writer.lock();
        self.writer_owner.store(thread_token(), Ordering::Release);
        Ok(WriterGuard {
            guard,
            owner: &self.writer_owner,
        })
    }

    /// A handle over `view` before any commit is chosen (open and salvage start here).
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        opts: Options,
        page_size: usize,
        view: Arc<dyn View>,
        candidates: &[Meta],
    ) -> DbInner {
        let file_len = view.bytes().len() as u64;
        DbInner {
            storage,
            opts,
            page_size,
            shared: Registry::new(
                Snapshot {
                    meta: candidates.first().copied().unwrap_or(Meta {
                        page_size: page_size as u32,
                        confirmation: false,
                        txid: 0,
                        durable_base: 0,
                        hwm: 2,
                        root: ChildRef::EMPTY,
                        freelist: ChildRef::EMPTY,
                    }),
                    view,
                },
                0,
            ),
            writer: Mutex::new(Writer {
                free: FreeState::default(),
                last_synced: 0,
                confirmed: 0,
                poisoned: None,
                file_len,
                unsynced: false,
            }),
            verified: Verified::new(),
            counters: Counters::default(),
            recovery: Recovery::default(),
            batcher: crate::batch::Batcher::default(),
            max_overflow: max_overflow(page_size),
            writer_owner: AtomicU64::new(0),
            confirm_signal: None,
        }
    }
}

/// The image of a new database: commit 0 in slot 0 and commit 1 in slot 1, both empty.
fn initial_image(page_size: usize) -> Vec<u8> {
    let mut image = Vec::with_capacity(2 * page_size);
    for txid in 0..2u64 {
        let m = Meta {
            page_size: page_size as u32,
            confirmation: false,
            txid,
            durable_base: 0,
            hwm: 2,
            root: ChildRef::EMPTY,
            freelist: ChildRef::EMPTY,
        };
        image.extend_from_slice(&m.encode());
    }
    image
}

/// What [`DbInner::choose_commit`] found: the commit, its free space, the newest confirmed
/// txid, and the unconfirmed commit rolled back on the way (if any).
type Chosen = (Meta, FreeState, u64, Option<RolledBack>);

impl DbInner {
    /// Choose the commit to open at (docs/FORMAT.md, section 8): the newest valid meta whose
    /// commit verifies. An unconfirmed commit that fails is rolled back (reported); a confirmed
    /// one that fails is `Error::Corruption`, never a fallback to an older state.
    fn choose_commit(&self, bytes: &[u8], metas: &[Meta]) -> Result<Chosen> {
        let confirmed = metas.iter().map(Meta::confirms).max().unwrap_or(0);
        // One candidate per txid: a commit and its confirmation copy must say the same.
        let mut candidates: Vec<Meta> = Vec::new();
        for m in metas {
            match candidates.last() {
                Some(c) if c.txid == m.txid => {
                    if *c != m.plain() {
                        return Err(Error::corrupt(
                            m.slot(),
                            format!("the two meta slots disagree about commit {}", m.txid),
                        ));
                    }
                }
                _ => candidates.push(m.plain()),
            }
        }
        let mut rolled_back = None;
        let mut failures = Vec::new();
        for m in &candidates {
            let r = self
                .verify_commit(bytes, m)
                .and_then(|_| self.load_freelist(bytes, m));
            match r {
                Ok(fs) => return Ok((*m, fs, confirmed, rolled_back)),
                Err(Error::Corruption { page, detail }) if m.txid <= confirmed => {
                    return Err(Error::Corruption {
                        page,
                        detail: format!(
                            "{detail} (in commit {}, whose durability is confirmed: it is not \
                             rolled back; `deadbolt salvage` copies what still verifies)",
                            m.txid
                        ),
                    });
                }
                Err(e) if m.txid <= confirmed => return Err(e),
                Err(e) => {
                    failures.push(format!("txid {}: {e}", m.txid));
                    rolled_back.get_or_insert(RolledBack {
                        txid: m.txid,
                        reason: format!("unconfirmed commit {} did not verify: {e}", m.txid),
                    });
                }
            }
        }
        Err(Error::corrupt(
            candidates.first().map_or(0, |m| m.txid % 2),
            format!("no commit verifies: {}", failures.join("; ")),
        ))
    }

    /// After a writable open at `meta`: make everything open verified durable (a process crash
    /// may have left it in the page cache only), then make sure both slots describe `meta`:
    /// its own meta in slot `txid % 2` and its confirmation in the other. Each is written (and
    /// synced) only if it is not there already, the own slot first, so that at every moment one
    /// slot names `meta`. Writing them also replaces whatever those slots held: an older commit
    /// (no longer needed once this one is confirmed), a newer one that was rolled back, or a
    /// torn meta. None of those may stay. The next commit overwrites the confirmation's slot,
    /// so its own slot must hold `meta` (else a crash in that commit would leave no valid meta
    /// at all), and a rolled-back commit left in a slot could, under a torn write of it, come
    /// back to life.
    fn settle_after_open(&self, meta: &Meta, metas: &[Meta]) -> Result<()> {
        self.storage.sync_data()?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let has = |confirmation: bool| {
            metas
                .iter()
                .any(|m| m.confirmation == confirmation && m.txid == meta.txid)
        };
        let mut w = self.writer.lock();
        if !has(false) {
            crate::confirm::write_meta(self, &mut w, meta, "repairing the meta of")?;
        }
        if !has(true) {
            crate::confirm::write_confirmation(self, &mut w, meta)?;
        }
        Ok(())
    }
}

impl Db {
    /// Open the database at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        Db::open_with(path, Options::default())
    }

    /// Open with options (read-only, lock timeout, page size for a new file, no-sync...).
    pub fn open_with(path: impl AsRef<Path>, opts: Options) -> Result<Db> {
        let fo = FileOptions {
            read_only: opts.read_only,
            create: !opts.read_only,
            lock_timeout: opts.lock_timeout,
        };
        let (storage, _created) = FileStorage::open(path.as_ref(), &fo).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::LockTimeout
            } else {
                Error::Io(e)
            }
        })?;
        Db::open_storage(Arc::new(storage), opts)
    }

    /// A fresh database held in memory (nothing to confirm, so no confirmer thread).
    pub fn in_memory() -> Result<Db> {
        let opts = Options {
            confirm_after: None,
            ..Options::default()
        };
        Db::open_storage(Arc::new(MemStorage::new()), opts)
    }

    /// Open a database on any [`Storage`] (used by the fault-injection harness). An empty
    /// storage is initialised through [`Storage::create`], atomically; a non-empty one that is
    /// not a deadbolt database is [`Error::InvalidFile`] and is never written.
    pub fn open_storage(storage: Arc<dyn Storage>, opts: Options) -> Result<Db> {
        if storage.len()? == 0 {
            if opts.read_only {
                return Err(Error::InvalidFile("empty file".into()));
            }
            if !valid_page_size(opts.page_size) {
                return Err(Error::InvalidArgument(format!(
                    "page size {} is not a power of two from {MIN_PAGE} to {MAX_PAGE}",
                    opts.page_size
                )));
            }
            storage.create(&initial_image(opts.page_size))?;
        }
        let view = storage.view()?;
        let bytes = view.bytes();
        let (page_size, metas, damaged) = decode_metas(bytes)?;
        let mut inner = DbInner::new(storage, opts.clone(), page_size, view.clone(), &metas);
        let (meta, free, confirmed, rolled_back) = inner.choose_commit(bytes, &metas)?;
        inner.recovery = Recovery {
            txid: meta.txid,
            confirmed,
            rolled_back,
            damaged_meta: (!damaged.is_empty()).then(|| damaged.join("; ")),
        };
        inner.shared.publish(Snapshot { meta, view }, meta.txid);
        {
            let w = inner.writer.get_mut();
            w.free = free;
            w.last_synced = meta.txid;
            w.confirmed = confirmed;
            inner.counters.confirmed.store(confirmed, Ordering::Relaxed);
            inner.counters.publish(w);
        }
        if !opts.read_only {
            inner.settle_after_open(&meta, &metas)?;
        }
        let delay = opts.confirm_after.filter(|_| !opts.read_only);
        if delay.is_some() {
            inner.confirm_signal = Some(Default::default());
        }
        let inner = std::sync::Arc::new(inner);
        let confirmer = match (delay, &inner.confirm_signal) {
            (Some(d), Some(sig)) => Some(crate::confirm::Confirmer::start(
                inner.clone(),
                sig.clone(),
                d,
            )),
            _ => None,
        };
        Ok(Db { inner, confirmer })
    }

    /// Begin a read transaction on the newest snapshot. Never blocks on the writer.
    pub fn begin_read(&self) -> Result<Tx<'_>> {
        Ok(Tx::new_read(self))
    }

    /// Begin the write transaction, waiting for the current writer (if any) to finish.
    pub fn begin_write(&self) -> Result<Tx<'_>> {
        Tx::new_write(self)
    }

    /// Run `f` in a read transaction.
    pub fn view<T, E: From<Error>>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        let tx = self.begin_read()?;
        f(&tx)
    }

    /// Run `f` in a write transaction; commit when it returns `Ok`, roll back on `Err`.
    pub fn update<T, E: From<Error>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.begin_write()?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Make every commit so far durable (useful with `no_sync`) and confirm the newest one, so
    /// that from now on open never rolls it back (two syncs at most, none on the commit path).
    pub fn sync(&self) -> Result<()> {
        if self.inner.opts.read_only {
            return Ok(());
        }
        let mut w = self.inner.lock_writer()?;
        self.inner.sync_locked(&mut w)
    }

    /// Close the database: stop the confirmer, make the last commits durable and confirm the
    /// newest (as dropping does, but reporting an error).
    pub fn close(mut self) -> Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<()> {
        if let Some(mut c) = self.confirmer.take() {
            c.stop();
        }
        if self.inner.opts.read_only {
            return Ok(());
        }
        let mut w = self.inner.lock_writer()?;
        if w.poisoned.is_some() {
            return Ok(());
        }
        self.inner.sync_locked(&mut w)
    }

    /// Give back every byte past the high-water mark: truncate the file to the pages in use and
    /// sync. Skipped (returns `false`) while a reader of an older snapshot is open. Commits
    /// already truncate when most of the file's end is free; this goes all the way.
    pub fn shrink_to_fit(&self) -> Result<bool> {
        let mut w = self.inner.lock_writer()?;
        if let Some(why) = &w.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        if self.inner.opts.read_only {
            return Err(Error::ReadOnly);
        }
        let (snap, _) = self.inner.shared.current();
        let done = match crate::tx::truncate_to_hwm(&self.inner, &mut w, &snap.meta).and_then(|d| {
            self.inner
                .storage
                .sync_data()
                .map(|_| d)
                .map_err(Error::from)
        }) {
            Ok(d) => d,
            Err(e) => {
                w.poisoned = Some(format!("shrinking the file failed: {e}"));
                return Err(e);
            }
        };
        self.inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.counters.publish(&w);
        Ok(done)
    }

    /// What open found (a rolled-back commit, a damaged meta slot).
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// The page size of the file.
    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// Counters and facts about the newest snapshot.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        let (snap, _) = i.shared.current();
        let readers = i.shared.readers();
        // Never blocks on the writer: these are published at the end of each commit.
        let c = &i.counters;
        let (free, pending, chain, file_len) = (
            c.free_pages.load(Ordering::Relaxed),
            c.pending_pages.load(Ordering::Relaxed),
            c.chain_len.load(Ordering::Relaxed),
            c.file_len.load(Ordering::Relaxed),
        );
        let depth = {
            let tx = self.begin_read();
            tx.and_then(|t| t.root_depth()).unwrap_or(0)
        };
        Stats {
            txid: snap.meta.txid,
            page_size: i.page_size,
            high_water: snap.meta.hwm,
            file_size: file_len,
            free_pages: free,
            pending_pages: pending,
            commits: i.counters.commits.load(Ordering::Relaxed),
            syncs: i.counters.syncs.load(Ordering::Relaxed),
            pages_written: i.counters.pages_written.load(Ordering::Relaxed),
            bytes_written: i.counters.bytes_written.load(Ordering::Relaxed),
            pages_verified: i.counters.pages_verified.load(Ordering::Relaxed),
            open_read_txs: readers,
            freelist_chain: chain,
            depth,
            format_version: crate::FORMAT_VERSION,
            confirmed_txid: c.confirmed.load(Ordering::Relaxed),
            confirmations: c.confirmations.load(Ordering::Relaxed),
        }
    }
}

impl DbInner {
    /// [`Db::sync`] with the writer held.
    fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        if let Some(why) = &w.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let (snap, txid) = self.shared.current();
        if w.unsynced || w.last_synced < txid {
            if let Err(e) = self.storage.sync_data() {
                w.poisoned = Some(format!("sync failed: {e}"));
                return Err(e.into());
            }
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            w.last_synced = txid;
            w.unsynced = false;
            // The newest meta is durable now, and with it what it confirms.
            w.confirmed = w.confirmed.max(snap.meta.durable_base);
        }
        crate::confirm::confirm(self, w).map(|_| ())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort: a clean close makes no-sync commits durable and confirms the newest
        // commit (an error has poisoned the handle or is reported by the next open).
        let _ = self.shut_down();
    }
}
