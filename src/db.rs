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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: crate::DEFAULT_PAGE_SIZE,
            no_sync: false,
            read_only: false,
            lock_timeout: None,
            verify_every_access: false,
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
    /// `sync_data` calls since open (open itself syncs once when writable).
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
}

/// What open found.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// The commit the database opened at.
    pub txid: u64,
    /// A newer commit whose meta page was intact but whose pages did not all verify (an
    /// interrupted commit, or damage): it was not used.
    pub rolled_back: Option<RolledBack>,
    /// A meta slot that could not be decoded at all (normal after a crash during a meta write).
    pub damaged_meta: Option<String>,
    /// The file held no valid meta page and was no longer than two pages: a creation cut short
    /// by a crash. It was initialised again (nothing in it could have been committed).
    pub recreated: bool,
}

/// A newer commit that open found incomplete or damaged and did not use.
#[derive(Clone, Debug)]
pub struct RolledBack {
    pub txid: u64,
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
}

/// A database: one file, one writer at a time, any number of concurrent readers.
///
/// `Db` is `Send + Sync`; share it across threads by reference or in an `Arc`.
pub struct Db {
    pub(crate) inner: DbInner,
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

/// Decode both meta pages: the page size, the valid metas newest first, and why any slot did
/// not decode.
pub(crate) fn decode_metas(bytes: &[u8]) -> Result<(usize, Vec<Meta>, Vec<String>)> {
    // Page size: from meta 0 when it decodes, otherwise probe each legal size for meta 1.
    let mut candidates = Vec::new();
    let mut damaged = Vec::new();
    let mut page_size = None;
    match Meta::decode(bytes, 0) {
        Ok(m) => {
            page_size = Some(m.page_size as usize);
            candidates.push(m);
        }
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
            Err(e) => m1_err = Some(e),
        }
    }
    if let Some(e) = m1_err {
        damaged.push(format!("meta 1: {e}"));
    }
    let page_size = match page_size {
        Some(p) => p,
        None => {
            let magic_ok = bytes.get(32..40) == Some(&crate::meta::MAGIC.to_le_bytes()[..]);
            return Err(
                if magic_ok
                    || bytes.len() >= 2 * MIN_PAGE && bytes[..MIN_PAGE].iter().all(|&b| b == 0)
                {
                    Error::corrupt(0, format!("no valid meta page: {}", damaged.join("; ")))
                } else {
                    Error::InvalidFile(format!(
                        "no deadbolt meta page found: {}",
                        damaged.join("; ")
                    ))
                },
            );
        }
    };
    candidates.retain(|m| m.page_size as usize == page_size);
    candidates.sort_by_key(|m| std::cmp::Reverse(m.txid));
    Ok((page_size, candidates, damaged))
}

impl DbInner {
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
                        flags: 0,
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
                poisoned: None,
                file_len,
                unsynced: false,
            }),
            verified: Verified::new(),
            counters: Counters::default(),
            recovery: Recovery::default(),
            batcher: crate::batch::Batcher::default(),
            max_overflow: max_overflow(page_size),
        }
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

    /// A fresh database held in memory.
    pub fn in_memory() -> Result<Db> {
        Db::open_storage(Arc::new(MemStorage::new()), Options::default())
    }

    /// Open a database on any [`Storage`] (used by the fault-injection harness). An empty
    /// storage is initialised: both meta pages are written, synced, and the directory synced.
    pub fn open_storage(storage: Arc<dyn Storage>, opts: Options) -> Result<Db> {
        let len = storage.len()?;
        let interrupted_create = len > 0
            && len <= 2 * opts.page_size as u64
            && !opts.read_only
            && decode_metas(storage.view()?.bytes()).is_err();
        if len == 0 || interrupted_create {
            // A new file, or one whose creation was cut short (no meta page decodes and the
            // file is no longer than the two meta pages that creation writes: every database
            // that ever committed is longer): write both metas, sync, sync the directory.
            if opts.read_only {
                return Err(Error::InvalidFile("empty file".into()));
            }
            if !valid_page_size(opts.page_size) {
                return Err(Error::InvalidArgument(format!(
                    "page size {} is not a power of two from {MIN_PAGE} to {MAX_PAGE}",
                    opts.page_size
                )));
            }
            for txid in 0..2u64 {
                let m = Meta {
                    page_size: opts.page_size as u32,
                    flags: 0,
                    txid,
                    durable_base: 0,
                    hwm: 2,
                    root: ChildRef::EMPTY,
                    freelist: ChildRef::EMPTY,
                };
                storage.write_at(txid * opts.page_size as u64, &m.encode())?;
            }
            storage.sync_data()?;
            storage.sync_dir()?;
        }
        let view = storage.view()?;
        let bytes = view.bytes();
        let (page_size, candidates, damaged) = decode_metas(bytes)?;
        let inner_probe = DbInner::new(
            storage.clone(),
            opts.clone(),
            page_size,
            view.clone(),
            &candidates,
        );
        let mut chosen = None;
        let mut rolled_back = None;
        let mut failures = Vec::new();
        for m in &candidates {
            let r = inner_probe
                .verify_commit(bytes, m)
                .and_then(|_| inner_probe.load_freelist(bytes, m));
            match r {
                Ok(fs) => {
                    chosen = Some((*m, fs));
                    break;
                }
                Err(e) => {
                    failures.push(format!("txid {}: {e}", m.txid));
                    if rolled_back.is_none() {
                        rolled_back = Some(RolledBack {
                            txid: m.txid,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        let (meta, free) = match chosen {
            Some(c) => c,
            None => {
                let mut all = damaged.clone();
                all.extend(failures);
                return Err(Error::corrupt(
                    candidates.first().map_or(0, |m| m.txid % 2),
                    format!("no commit verifies: {}", all.join("; ")),
                ));
            }
        };
        let mut inner = inner_probe;
        inner.recovery = Recovery {
            recreated: interrupted_create,
            txid: meta.txid,
            rolled_back,
            damaged_meta: if damaged.is_empty() {
                None
            } else {
                Some(damaged.join("; "))
            },
        };
        inner.shared.publish(Snapshot { meta, view }, meta.txid);
        {
            let w = inner.writer.get_mut();
            w.free = free;
            w.last_synced = meta.txid;
            inner.counters.publish(w);
        }
        if !opts.read_only {
            // The other meta slot must hold an older commit or nothing. A newer meta that did
            // not verify (or a slot that did not decode) is wiped before anything is built on
            // the commit we chose: the next commit reuses that slot, and a crash while it is
            // half-written could otherwise bring the rolled-back commit back to life (a torn
            // mix of old and new sectors that happens to verify again).
            let other = (meta.txid + 1) % 2;
            if !candidates
                .iter()
                .any(|m| m.txid % 2 == other && m.txid < meta.txid)
            {
                inner
                    .storage
                    .write_at(other * page_size as u64, &vec![0u8; page_size])?;
            }
            // Make everything open verified (and the wipe) durable before building on it: a
            // process crash may have left it in the page cache only.
            inner.storage.sync_data()?;
            inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Db { inner })
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

    /// Make every commit so far durable (useful with `no_sync`).
    pub fn sync(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        if let Some(why) = &w.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        if let Err(e) = self.inner.storage.sync_data() {
            w.poisoned = Some(format!("sync failed: {e}"));
            return Err(e.into());
        }
        self.inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
        w.last_synced = self.inner.shared.current().1;
        w.unsynced = false;
        Ok(())
    }

    /// Give back every byte past the high-water mark: truncate the file to the pages in use and
    /// sync. Skipped (returns `false`) while a reader of an older snapshot is open. Commits
    /// already truncate when most of the file's end is free; this goes all the way.
    pub fn shrink_to_fit(&self) -> Result<bool> {
        let mut w = self.inner.writer.lock();
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
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort: make no-sync commits durable on a clean close.
        let w = self.inner.writer.get_mut();
        if w.unsynced && w.poisoned.is_none() && self.inner.storage.sync_data().is_ok() {
            w.unsynced = false;
        }
    }
}
