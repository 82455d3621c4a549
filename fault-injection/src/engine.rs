//! The engine under test, behind a small trait: deadbolt itself, and a deliberately tiny
//! shadow-paging "toy" engine used to validate the harness (it must pass clean, and its
//! planted bugs must be caught) independently of deadbolt.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use deadbolt::{Bucket, Db, Error, Options, Storage, Tx};

use crate::model::{Op, State};

/// Error classes the oracle distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrKind {
    Corruption,
    Io,
    Poisoned,
    InvalidFile,
    Other,
}

#[derive(Clone, Debug)]
pub struct EngErr {
    pub kind: ErrKind,
    pub msg: String,
}

impl std::fmt::Display for EngErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.msg)
    }
}

impl EngErr {
    /// A typed report of damage: what I7 accepts instead of data.
    pub fn is_detection(&self) -> bool {
        matches!(
            self.kind,
            ErrKind::Corruption | ErrKind::Io | ErrKind::InvalidFile
        )
    }
}

impl From<Error> for EngErr {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Corruption { .. } => ErrKind::Corruption,
            Error::Io(_) => ErrKind::Io,
            Error::Poisoned(_) => ErrKind::Poisoned,
            Error::InvalidFile(_) => ErrKind::InvalidFile,
            _ => ErrKind::Other,
        };
        EngErr {
            kind,
            msg: e.to_string(),
        }
    }
}

/// Options the harness varies.
#[derive(Clone, Copy, Debug)]
pub struct OpenOpts {
    pub page_size: usize,
    pub no_sync: bool,
}

/// An open database.
pub trait EngineDb {
    /// Apply `ops` in one write transaction and commit. Returns the transaction id.
    fn commit(&self, ops: &[Op]) -> Result<u64, EngErr>;
    /// Read the whole state in a read transaction.
    fn scan(&self) -> Result<State, EngErr>;
    /// The integrity check: the problems found.
    fn check(&self) -> Result<Vec<String>, EngErr>;
    /// `Some(err)` when the handle refuses to start a write transaction.
    fn write_refused(&self) -> Option<EngErr>;
    /// The transaction id of the snapshot open chose.
    fn recovered_txid(&self) -> u64;
    /// Open fell back to an older commit and said so.
    fn rolled_back(&self) -> Option<String>;
    /// Make every commit so far durable (`Db::sync`); `None` when the engine has no such call.
    /// Under `no_sync`, once it returns Ok a power cut must recover that commit or a later one
    /// without an error (docs/FORMAT.md, section 7).
    fn sync(&self) -> Option<Result<(), EngErr>> {
        None
    }
    /// Tree pages open verified (the open-cost invariant), when the engine reports it.
    fn open_pages_verified(&self) -> Option<u64> {
        None
    }
    /// Begin a read transaction that stays open (across commits) until the reader is dropped.
    fn begin_read(&self) -> Result<Box<dyn EngineReader + '_>, EngErr>;
    /// Give back the file's free tail (truncate to the pages in use and sync); `Ok(false)` when
    /// the engine skipped it (deadbolt does while a reader of an older snapshot is open) or has
    /// nothing of the kind.
    fn shrink_to_fit(&self) -> Result<bool, EngErr> {
        Ok(false)
    }
    /// Counters the path coverage observes (all zero for an engine without them).
    fn stats(&self) -> EngStats {
        EngStats::default()
    }
    /// A maintenance call between commits; `Unsupported` for an engine without it.
    fn maint(&self, _m: Maint) -> Result<MaintOut, EngErr> {
        Ok(MaintOut::Unsupported)
    }
    /// Concurrent group-commit callers: one thread per element of `callers`, each making its
    /// calls (one `batch` call per `Vec<Op>`) in turn. `ops_now` reads the disk's op count (for
    /// the per-caller oracle). `None` when the engine has no group commit.
    fn batch(
        &self,
        _callers: Vec<Vec<Vec<Op>>>,
        _ops_now: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Option<Vec<Vec<BatchCall>>> {
        None
    }
}

/// What [`EngineDb::stats`] reports (deadbolt: from `Db::stats()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngStats {
    pub txid: u64,
    /// Records in the persisted free-list chain (one full record, then deltas).
    pub freelist_chain: u64,
    /// Height of the root tree (the tree of top-level buckets).
    pub depth: u64,
    pub file_size: u64,
    pub high_water: u64,
}

/// A maintenance call ([`EngineDb::maint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maint {
    /// `Db::compact_step(max_pages)`: a commit that moves pages, state unchanged.
    CompactStep(u64),
    /// `Db::shrink_to_fit`: truncate to the high-water mark and sync.
    ShrinkToFit,
    /// `Db::backup` to a scratch file; the copy's bytes come back.
    Backup,
    /// `Db::compact_into` a scratch file; the copy's bytes come back.
    CompactInto,
}

/// The outcome of a [`Maint`] call.
#[derive(Debug, PartialEq, Eq)]
pub enum MaintOut {
    /// Pages `compact_step` moved.
    Moved(u64),
    /// Whether `shrink_to_fit` truncated.
    Shrunk(bool),
    /// The bytes of the copy `backup` or `compact_into` wrote.
    Copy(Vec<u8>),
    Unsupported,
}

/// One `batch` call's outcome, for the per-caller oracle.
#[derive(Clone, Debug)]
pub struct BatchCall {
    pub result: Result<(), EngErr>,
    /// The disk's op count when the closure last ran (`None`: it never ran).
    pub ran_at: Option<u64>,
    /// The write transaction's id the closure last ran in.
    pub txid: Option<u64>,
    /// The disk's op count just after `batch` returned to the caller.
    pub answered_at: u64,
}

/// A long-lived read transaction: one snapshot, read as often as the harness likes.
pub trait EngineReader {
    /// The transaction id of the snapshot it reads.
    fn txid(&self) -> u64;
    /// Read the snapshot's whole state.
    fn scan(&self) -> Result<State, EngErr>;
}

pub trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// The engine promises that under `no_sync` a power cut recovers the last synced commit or
    /// a later one, without an error ([`EngineDb::sync`]); then such power cuts are checked
    /// with full strictness (I1-I6), else only for detection (I7).
    fn no_sync_keeps_the_last_sync(&self) -> bool {
        false
    }
    fn open(&self, storage: Arc<dyn Storage>, opts: &OpenOpts)
        -> Result<Box<dyn EngineDb>, EngErr>;
    /// The same engine set to verify every page on every read, if it has such a mode (deadbolt
    /// verifies a page the first time it reads it and trusts it afterwards, so a sector that
    /// reads as zeros later, during operation, is only detected in this mode).
    fn verifying_every_access(&self) -> Option<&'static dyn Engine> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// deadbolt

pub struct Deadbolt;

struct DeadboltDb(Db);

fn bucket_at<'t>(tx: &'t Tx<'_>, path: &[Vec<u8>]) -> Result<Bucket<'t>, Error> {
    let mut b = tx.bucket(&path[0])?.ok_or(Error::BucketNotFound)?;
    for n in &path[1..] {
        b = b.bucket(n)?.ok_or(Error::BucketNotFound)?;
    }
    Ok(b)
}

fn apply_op(tx: &Tx<'_>, op: &Op) -> Result<(), Error> {
    match op {
        Op::CreateBucket(p) => {
            if p.len() == 1 {
                tx.create_bucket_if_not_exists(&p[0])?;
            } else {
                bucket_at(tx, &p[..p.len() - 1])?.create_bucket_if_not_exists(&p[p.len() - 1])?;
            }
        }
        Op::DeleteBucket(p) => {
            if p.len() == 1 {
                tx.delete_bucket(&p[0])?;
            } else {
                bucket_at(tx, &p[..p.len() - 1])?.delete_bucket(&p[p.len() - 1])?;
            }
        }
        Op::Put(p, k, v) => bucket_at(tx, p)?.put(k, v)?,
        Op::Delete(p, k) => bucket_at(tx, p)?.delete(k)?,
    }
    Ok(())
}

fn scan_bucket(b: &Bucket<'_>, depth: usize) -> Result<State, Error> {
    let mut st = State::default();
    for item in b.iter() {
        let (k, v): (Cow<[u8]>, Cow<[u8]>) = item?;
        st.kv.insert(k.into_owned(), v.into_owned());
    }
    let mut names = Vec::new();
    for n in b.buckets() {
        names.push(n?.into_owned());
    }
    if depth > 64 {
        return Err(Error::Corruption {
            page: 0,
            detail: "harness: bucket nesting deeper than 64".into(),
        });
    }
    for n in names {
        let sub = b.bucket(&n)?.ok_or(Error::Corruption {
            page: 0,
            detail: "harness: listed nested bucket not found".into(),
        })?;
        st.subs.insert(n, scan_bucket(&sub, depth + 1)?);
    }
    Ok(st)
}

/// Apply `ops` to `db` in one write transaction; returns its transaction id.
pub fn commit_ops(db: &Db, ops: &[Op]) -> Result<u64, Error> {
    db.update(|tx| {
        let id = tx.id();
        for op in ops {
            apply_op(tx, op)?;
        }
        Ok::<u64, Error>(id)
    })
}

/// Read the whole state of `db`.
pub fn scan_db(db: &Db) -> Result<State, Error> {
    db.view(scan_tx)
}

/// Read the whole state of the snapshot `tx` reads.
pub fn scan_tx(tx: &Tx<'_>) -> Result<State, Error> {
    let mut st = State::default();
    let mut names = Vec::new();
    for n in tx.buckets() {
        names.push(n?.into_owned());
    }
    for n in names {
        let b = tx.bucket(&n)?.ok_or(Error::Corruption {
            page: 0,
            detail: "harness: listed bucket not found".into(),
        })?;
        st.subs.insert(n, scan_bucket(&b, 1)?);
    }
    Ok(st)
}

struct DeadboltReader<'db>(Tx<'db>);

impl EngineReader for DeadboltReader<'_> {
    fn txid(&self) -> u64 {
        self.0.id()
    }
    fn scan(&self) -> Result<State, EngErr> {
        Ok(scan_tx(&self.0)?)
    }
}

impl EngineDb for DeadboltDb {
    fn commit(&self, ops: &[Op]) -> Result<u64, EngErr> {
        commit_ops(&self.0, ops)?;
        // The txid the commit really got (a commit that changed nothing keeps the old one).
        Ok(self.0.stats().txid)
    }

    fn scan(&self) -> Result<State, EngErr> {
        Ok(scan_db(&self.0)?)
    }

    fn check(&self) -> Result<Vec<String>, EngErr> {
        let r = self.0.check()?;
        Ok(r.problems
            .iter()
            .map(|p| format!("page {}: {}", p.page, p.detail))
            .collect())
    }

    fn write_refused(&self) -> Option<EngErr> {
        match self.0.begin_write() {
            Ok(tx) => {
                tx.rollback();
                None
            }
            Err(e) => Some(e.into()),
        }
    }

    fn recovered_txid(&self) -> u64 {
        self.0.recovery().txid
    }

    fn sync(&self) -> Option<Result<(), EngErr>> {
        Some(self.0.sync().map_err(EngErr::from))
    }

    fn open_pages_verified(&self) -> Option<u64> {
        Some(self.0.recovery().pages_verified)
    }

    fn stats(&self) -> EngStats {
        let s = self.0.stats();
        EngStats {
            txid: s.txid,
            freelist_chain: s.freelist_chain,
            depth: s.depth,
            file_size: s.file_size,
            high_water: s.high_water,
        }
    }

    fn maint(&self, m: Maint) -> Result<MaintOut, EngErr> {
        Ok(match m {
            Maint::CompactStep(n) => MaintOut::Moved(self.0.compact_step(n)?.moved),
            Maint::ShrinkToFit => MaintOut::Shrunk(self.0.shrink_to_fit()?),
            Maint::Backup => MaintOut::Copy(scratch_copy(|p| self.0.backup(p).map(|_| ()))?),
            Maint::CompactInto => MaintOut::Copy(scratch_copy(|p| self.0.compact_into(p))?),
        })
    }

    fn batch(
        &self,
        callers: Vec<Vec<Vec<Op>>>,
        ops_now: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Option<Vec<Vec<BatchCall>>> {
        let db = &self.0;
        Some(std::thread::scope(|s| {
            let handles: Vec<_> = callers
                .into_iter()
                .map(|calls| {
                    let ops_now = ops_now.clone();
                    s.spawn(move || {
                        calls
                            .into_iter()
                            .map(|ops| batch_call(db, ops, &ops_now))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        }))
    }

    fn rolled_back(&self) -> Option<String> {
        let r = self.0.recovery();
        // A rolled-back commit, or a meta slot that could not be decoded (which may have
        // held a newer commit): either way open says data may have been lost.
        r.rolled_back
            .as_ref()
            .map(|r| format!("txid {}: {}", r.txid, r.reason))
            .or_else(|| {
                r.damaged_meta
                    .as_ref()
                    .map(|d| format!("damaged meta: {d}"))
            })
    }

    fn begin_read(&self) -> Result<Box<dyn EngineReader + '_>, EngErr> {
        Ok(Box::new(DeadboltReader(self.0.begin_read()?)))
    }

    fn shrink_to_fit(&self) -> Result<bool, EngErr> {
        Ok(self.0.shrink_to_fit()?)
    }
}

/// One `Db::batch` call applying `ops`, with what the per-caller oracle needs.
fn batch_call(db: &Db, ops: Vec<Op>, ops_now: &Arc<dyn Fn() -> u64 + Send + Sync>) -> BatchCall {
    let seen: Arc<Mutex<(Option<u64>, Option<u64>)>> = Arc::default();
    let (seen2, now2) = (seen.clone(), ops_now.clone());
    let result = db
        .batch(move |tx| {
            // A write transaction commits as `id() + 1`.
            *seen2.lock().unwrap_or_else(|e| e.into_inner()) = (Some(now2()), Some(tx.id() + 1));
            ops.iter().try_for_each(|op| apply_op(tx, op))
        })
        .map_err(EngErr::from);
    let answered_at = ops_now();
    let (ran_at, txid) = *seen.lock().unwrap_or_else(|e| e.into_inner());
    BatchCall {
        result,
        ran_at,
        txid,
        answered_at,
    }
}

/// Run `f` on a fresh path in a scratch directory (the engine's copy APIs take a path: this
/// is the real `FileStorage`), then return the bytes it left there; the directory is removed.
fn scratch_copy(f: impl FnOnce(&std::path::Path) -> Result<(), Error>) -> Result<Vec<u8>, EngErr> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // tmpfs when there is one: the copies' fsyncs then cost nothing (torture makes many).
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "deadbolt-fi-copy-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let path = dir.join("copy.db");
    let r = f(&path)
        .map_err(EngErr::from)
        .and_then(|()| std::fs::read(&path).map_err(io));
    let _ = std::fs::remove_dir_all(&dir);
    r
}

impl Engine for Deadbolt {
    fn no_sync_keeps_the_last_sync(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "deadbolt"
    }
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        opts: &OpenOpts,
    ) -> Result<Box<dyn EngineDb>, EngErr> {
        open_deadbolt(storage, opts, false)
    }
    fn verifying_every_access(&self) -> Option<&'static dyn Engine> {
        Some(&DeadboltVerifyEvery)
    }
}

/// deadbolt with `verify_every_access` (see [`Engine::verifying_every_access`]).
pub struct DeadboltVerifyEvery;

impl Engine for DeadboltVerifyEvery {
    fn name(&self) -> &'static str {
        "deadbolt (verify every access)"
    }
    fn open(
        &self,
        storage: Arc<dyn Storage>,
        opts: &OpenOpts,
    ) -> Result<Box<dyn EngineDb>, EngErr> {
        open_deadbolt(storage, opts, true)
    }
    fn verifying_every_access(&self) -> Option<&'static dyn Engine> {
        Some(&DeadboltVerifyEvery)
    }
}

fn open_deadbolt(
    storage: Arc<dyn Storage>,
    opts: &OpenOpts,
    verify_every_access: bool,
) -> Result<Box<dyn EngineDb>, EngErr> {
    let o = Options {
        page_size: opts.page_size,
        no_sync: opts.no_sync,
        // No background confirmer: its I/O would come at wall-clock times and break the
        // deterministic op log. Confirmations still happen at sync, close and open.
        confirm_after: None,
        verify_every_access,
        ..Options::default()
    };
    Ok(Box::new(DeadboltDb(Db::open_storage(storage, o)?)))
}

// ---------------------------------------------------------------------------------------------
// The toy engine: two meta slots, each naming a blob holding the whole serialized state;
// a commit appends a blob, writes the meta slot txid%2 and syncs. Its bugs are switchable.

/// Bugs the toy engine can be built with, to show the harness catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToyBug {
    None,
    /// Commit returns Ok without syncing.
    AckBeforeSync,
    /// Meta written and synced before the data blob.
    MetaBeforeData,
    /// Open does not verify the blob checksum.
    SkipOpenVerify,
    /// A failed sync is retried; success acknowledges the commit.
    RetryFailedSync,
    /// Creation writes the first blob and meta in place and syncs (not atomic): a crash in it
    /// leaves a file open refuses.
    CreateInPlace,
    /// A read transaction is not isolated: it reads the newest state, as a reader whose pages
    /// were reused under it would (I11 must catch it).
    ReaderSeesNewest,
    /// Readers read their blob through the view they took, and `shrink_to_fit` moves the newest
    /// blob to the start of the file and truncates, under any reader (the harness must report
    /// a reader that read past a truncated end, SIGBUS).
    ShrinkUnderReader,
}

pub struct Toy(pub ToyBug);

const SLOT: u64 = 512;
const MAGIC: &[u8; 8] = b"TOYDB001";

struct ToyInner {
    txid: u64,
    state: State,
    poisoned: bool,
}

struct ToyDb {
    s: Arc<dyn Storage>,
    bug: ToyBug,
    no_sync: bool,
    inner: Mutex<ToyInner>,
    recovered: u64,
    rolled_back: Option<String>,
}

fn ser(b: &State, out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.kv.len() as u32).to_le_bytes());
    for (k, v) in &b.kv {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&(b.subs.len() as u32).to_le_bytes());
    for (n, s) in &b.subs {
        out.extend_from_slice(&(n.len() as u32).to_le_bytes());
        out.extend_from_slice(n);
        ser(s, out);
    }
}

fn de(buf: &[u8], pos: &mut usize, depth: usize) -> Option<State> {
    fn u32_at(buf: &[u8], pos: &mut usize) -> Option<usize> {
        let b = buf.get(*pos..*pos + 4)?;
        *pos += 4;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    }
    fn bytes(buf: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
        let n = u32_at(buf, pos)?;
        let b = buf.get(*pos..pos.checked_add(n)?)?.to_vec();
        *pos += n;
        Some(b)
    }
    if depth > 64 {
        return None;
    }
    let mut st = State::default();
    let n = u32_at(buf, pos)?;
    for _ in 0..n {
        let k = bytes(buf, pos)?;
        let v = bytes(buf, pos)?;
        st.kv.insert(k, v);
    }
    let n = u32_at(buf, pos)?;
    for _ in 0..n {
        let name = bytes(buf, pos)?;
        st.subs.insert(name, de(buf, pos, depth + 1)?);
    }
    Some(st)
}

fn meta_bytes(txid: u64, off: u64, len: u64, h: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(48);
    m.extend_from_slice(MAGIC);
    for v in [txid, off, len, h] {
        m.extend_from_slice(&v.to_le_bytes());
    }
    let mh = crate::rng::hash_bytes(&m);
    m.extend_from_slice(&mh.to_le_bytes());
    m
}

fn io(e: std::io::Error) -> EngErr {
    EngErr {
        kind: ErrKind::Io,
        msg: e.to_string(),
    }
}

fn corrupt(msg: impl Into<String>) -> EngErr {
    EngErr {
        kind: ErrKind::Corruption,
        msg: msg.into(),
    }
}

/// Parse a meta slot: (txid, blob offset, blob length, blob hash).
fn parse_meta(b: &[u8]) -> Option<(u64, u64, u64, u64)> {
    let m = b.get(..48)?;
    if &m[..8] != MAGIC {
        return None;
    }
    let f = |i: usize| u64::from_le_bytes(m[8 + i * 8..16 + i * 8].try_into().unwrap());
    if crate::rng::hash_bytes(&m[..40]) != f(4) {
        return None;
    }
    Some((f(0), f(1), f(2), f(3)))
}

impl ToyDb {
    fn write_commit(&self, txid: u64, st: &State) -> Result<(), EngErr> {
        // The blob starts with its txid, so a stale meta pointing at a zero-filled extension
        // never verifies (an all-zero blob would otherwise be a valid empty state: F5).
        let mut blob = txid.to_le_bytes().to_vec();
        ser(st, &mut blob);
        let len = self.s.len().map_err(io)?;
        let off = len.max(2 * SLOT).div_ceil(SLOT) * SLOT;
        let meta = meta_bytes(txid, off, blob.len() as u64, crate::rng::hash_bytes(&blob));
        let slot = (txid % 2) * SLOT;
        if self.bug == ToyBug::MetaBeforeData {
            // The meta is made durable first; the data follows, and the commit's one sync has
            // already happened (the engine acknowledges with the data still in the page cache).
            self.s.write_at(slot, &meta).map_err(io)?;
            self.s.sync_data().map_err(io)?;
            self.s.write_at(off, &blob).map_err(io)?;
            return Ok(());
        } else {
            self.s.write_at(off, &blob).map_err(io)?;
            self.s.write_at(slot, &meta).map_err(io)?;
        }
        if self.no_sync || self.bug == ToyBug::AckBeforeSync {
            return Ok(());
        }
        match self.s.sync_data() {
            Ok(()) => Ok(()),
            Err(e) if self.bug == ToyBug::RetryFailedSync => self.s.sync_data().map_err(|_| io(e)),
            Err(e) => Err(io(e)),
        }
    }
}

impl EngineDb for ToyDb {
    fn commit(&self, ops: &[Op]) -> Result<u64, EngErr> {
        let mut g = self.inner.lock().unwrap();
        if g.poisoned {
            return Err(EngErr {
                kind: ErrKind::Poisoned,
                msg: "toy: poisoned".into(),
            });
        }
        let mut st = g.state.clone();
        st.apply_all(ops);
        let txid = g.txid + 1;
        match self.write_commit(txid, &st) {
            Ok(()) => {
                g.txid = txid;
                g.state = st;
                Ok(txid)
            }
            Err(e) => {
                g.poisoned = true;
                Err(e)
            }
        }
    }
    fn scan(&self) -> Result<State, EngErr> {
        Ok(self.inner.lock().unwrap().state.clone())
    }
    fn check(&self) -> Result<Vec<String>, EngErr> {
        Ok(Vec::new())
    }
    fn write_refused(&self) -> Option<EngErr> {
        if self.inner.lock().unwrap().poisoned {
            Some(EngErr {
                kind: ErrKind::Poisoned,
                msg: "toy: poisoned".into(),
            })
        } else {
            None
        }
    }
    fn recovered_txid(&self) -> u64 {
        self.recovered
    }
    fn rolled_back(&self) -> Option<String> {
        self.rolled_back.clone()
    }
    fn shrink_to_fit(&self) -> Result<bool, EngErr> {
        if self.bug != ToyBug::ShrinkUnderReader {
            return Ok(false);
        }
        // The planted compaction: the newest blob rewritten at the start, then the file cut
        // after it, whoever still reads the old blobs.
        let g = self.inner.lock().unwrap();
        let mut blob = g.txid.to_le_bytes().to_vec();
        ser(&g.state, &mut blob);
        let meta = meta_bytes(
            g.txid,
            2 * SLOT,
            blob.len() as u64,
            crate::rng::hash_bytes(&blob),
        );
        self.s.write_at(2 * SLOT, &blob).map_err(io)?;
        self.s.write_at((g.txid % 2) * SLOT, &meta).map_err(io)?;
        self.s.sync_data().map_err(io)?;
        let end = (2 * SLOT + blob.len() as u64).div_ceil(SLOT) * SLOT;
        self.s.set_len(end).map_err(io)?;
        self.s.sync_data().map_err(io)?;
        Ok(true)
    }

    fn begin_read(&self) -> Result<Box<dyn EngineReader + '_>, EngErr> {
        // The toy keeps its state in memory: a reader is a copy of the snapshot.
        let g = self.inner.lock().unwrap();
        if self.bug == ToyBug::ShrinkUnderReader {
            // The planted reader: the blob of its commit, read through its view at each scan.
            let view = self.s.view().map_err(io)?;
            let b = view.bytes();
            let blob = (0..2u64)
                .filter_map(|i| parse_meta(b.get((i * SLOT) as usize..)?))
                .find(|m| m.0 == g.txid)
                .ok_or_else(|| corrupt("toy: no meta for the reader's txid"))?;
            return Ok(Box::new(ViewReader {
                txid: g.txid,
                view,
                blob: (blob.1, blob.2, blob.3),
            }));
        }
        Ok(Box::new(ToyReader {
            txid: g.txid,
            state: g.state.clone(),
            live: (self.bug == ToyBug::ReaderSeesNewest).then_some(self),
        }))
    }
}

/// The `ShrinkUnderReader` reader: (offset, length, hash) of its blob in `view`.
struct ViewReader {
    txid: u64,
    view: Arc<dyn deadbolt::View>,
    blob: (u64, u64, u64),
}

impl EngineReader for ViewReader {
    fn txid(&self) -> u64 {
        self.txid
    }
    fn scan(&self) -> Result<State, EngErr> {
        let (off, len, h) = self.blob;
        let b = off
            .checked_add(len)
            .and_then(|end| self.view.bytes().get(off as usize..end as usize))
            .ok_or_else(|| corrupt("toy reader: blob past the view's end"))?;
        if crate::rng::hash_bytes(b) != h {
            return Err(corrupt("toy reader: blob checksum mismatch"));
        }
        de(b, &mut 8, 0).ok_or_else(|| corrupt("toy reader: blob does not parse"))
    }
}

struct ToyReader<'a> {
    txid: u64,
    state: State,
    /// With `ReaderSeesNewest`: the database, whose newest state it reads.
    live: Option<&'a ToyDb>,
}

impl EngineReader for ToyReader<'_> {
    fn txid(&self) -> u64 {
        self.txid
    }
    fn scan(&self) -> Result<State, EngErr> {
        match self.live {
            Some(db) => Ok(db.inner.lock().unwrap().state.clone()),
            None => Ok(self.state.clone()),
        }
    }
}

impl Engine for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }
    fn open(&self, s: Arc<dyn Storage>, opts: &OpenOpts) -> Result<Box<dyn EngineDb>, EngErr> {
        let len = s.len().map_err(io)?;
        if len == 0 {
            self.create(&*s)?;
        }
        let view = s.view().map_err(io)?;
        let bytes = view.bytes();
        let mut cands: Vec<(u64, u64, u64, u64)> = (0..2)
            .filter_map(|i| parse_meta(bytes.get((i * SLOT) as usize..)?))
            .collect();
        cands.sort_by_key(|c| std::cmp::Reverse(c.0));
        if cands.is_empty() {
            return Err(EngErr {
                kind: ErrKind::InvalidFile,
                msg: "toy: no valid meta".into(),
            });
        }
        let mut rolled_back = None;
        for i in 0..2u64 {
            let slot = bytes.get((i * SLOT) as usize..((i * SLOT) as usize + 48).min(bytes.len()));
            if let Some(b) = slot {
                if b.iter().any(|&x| x != 0) && parse_meta(b).is_none() {
                    rolled_back = Some(format!("meta slot {i} does not verify"));
                }
            }
        }
        let (txid, state) = self.choose(bytes, &cands, &mut rolled_back)?;
        if !opts.no_sync {
            s.sync_data().map_err(io)?;
        }
        Ok(Box::new(ToyDb {
            s,
            bug: self.0,
            no_sync: opts.no_sync,
            inner: Mutex::new(ToyInner {
                txid,
                state,
                poisoned: false,
            }),
            recovered: txid,
            rolled_back,
        }))
    }
}

impl Toy {
    /// Create the empty database in an empty file: atomically like deadbolt, or in place with
    /// the planted `CreateInPlace` bug.
    fn create(&self, s: &dyn Storage) -> Result<(), EngErr> {
        let mut blob = 0u64.to_le_bytes().to_vec();
        ser(&State::default(), &mut blob);
        let meta = meta_bytes(
            0,
            2 * SLOT,
            blob.len() as u64,
            crate::rng::hash_bytes(&blob),
        );
        if self.0 == ToyBug::CreateInPlace {
            s.write_at(2 * SLOT, &blob).map_err(io)?;
            s.write_at(0, &meta).map_err(io)?;
            s.sync_data().map_err(io)?;
            s.sync_dir().map_err(io)?;
        } else {
            // Created atomically, like deadbolt: meta slot 0, an empty slot 1, the blob.
            let mut image = vec![0u8; 2 * SLOT as usize];
            image[..meta.len()].copy_from_slice(&meta);
            image.extend_from_slice(&blob);
            s.create(&image).map_err(io)?;
        }
        Ok(())
    }

    /// The newest candidate meta (`cands`, newest first) whose blob verifies and parses; a
    /// newest one that does not is reported in `rolled_back`.
    fn choose(
        &self,
        bytes: &[u8],
        cands: &[(u64, u64, u64, u64)],
        rolled_back: &mut Option<String>,
    ) -> Result<(u64, State), EngErr> {
        for (i, &(txid, off, blen, h)) in cands.iter().enumerate() {
            let blob = off
                .checked_add(blen)
                .and_then(|end| bytes.get(off as usize..end as usize));
            let ok = match blob {
                Some(b) => self.0 == ToyBug::SkipOpenVerify || crate::rng::hash_bytes(b) == h,
                None => false,
            };
            let parsed = blob.and_then(|b| {
                (b.get(..8)? == txid.to_le_bytes()).then_some(())?;
                de(b, &mut 8, 0)
            });
            if std::env::var_os("FI_TRACE").is_some() {
                eprintln!(
                    "toy open: cand txid {txid} off {off} len {blen} file {} ok {ok} parsed {}",
                    bytes.len(),
                    parsed.is_some()
                );
            }
            if ok {
                if let Some(st) = parsed {
                    return Ok((txid, st));
                }
                if self.0 == ToyBug::SkipOpenVerify {
                    return Err(corrupt("toy: blob does not parse"));
                }
            }
            if i == 0 {
                *rolled_back = Some(format!("txid {txid}: blob does not verify"));
            }
        }
        Err(corrupt("toy: no meta with a valid blob"))
    }
}
