//! openraft's storage-v2 traits on deadbolt.
//!
//! Two files per node, in one directory:
//!
//! - `log.db` ([`LogStore`]): bucket `log` maps an entry's index (8 bytes, big-endian, so key
//!   order is index order) to the entry as JSON; bucket `meta` holds `vote`, `committed` and
//!   `last_purged`. Each call is one write transaction, so each `append` is one commit and one
//!   fdatasync (openraft already hands over every entry it has ready in one `append`).
//! - `sm.db` ([`StateMachine`]): bucket `data` holds the application's pairs, bucket `sm_meta`
//!   the last-applied log id and the last membership. A batch of entries is applied in one
//!   transaction, so the applied index and the data never disagree after a crash.
//!
//! A snapshot is a deadbolt file (`snapshot.db`): a hot backup of `sm.db` taken from a read
//! transaction while applies go on, stamped with its snapshot id. Installing one copies the
//! received bytes to `sm.db.installing` (and `snapshot.db.installing`), fsyncs, verifies the
//! whole file (`Db::check`) and that its applied log id and membership are the ones announced,
//! then renames `sm.db.installing` over `sm.db`, fsyncs the directory, reopens, and only then
//! renames the snapshot copy over `snapshot.db`. A crash anywhere leaves `sm.db` old or new
//! (never half), and `snapshot.db` never newer than `sm.db`; leftover `*.installing` and
//! `*.building` files are removed at open.
//!
//! Every deadbolt call blocks, so it runs under `tokio::task::spawn_blocking` (see the crate
//! docs for why not a dedicated thread).
//!
//! Bounds: a received snapshot of more than [`MAX_SNAPSHOT_BYTES`] is refused when it is
//! installed (openraft's chunked receiver writes the chunks before that); one replication read
//! returns at most [`MAX_ENTRIES_PER_READ`] entries or about [`MAX_BYTES_PER_READ`] bytes;
//! `try_get_log_entries`, `truncate` and `purge` visit the index range openraft names, which is
//! bounded by what the log holds.

use std::fs;
use std::io::{self, SeekFrom};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use deadbolt::{Db, Options};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState,
    OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{NodeId, Request, Response, TypeConfig};

const LOG: &[u8] = b"log";
const META: &[u8] = b"meta";
const DATA: &[u8] = b"data";
const SM_META: &[u8] = b"sm_meta";
const K_VOTE: &[u8] = b"vote";
const K_COMMITTED: &[u8] = b"committed";
const K_PURGED: &[u8] = b"last_purged";
const K_APPLIED: &[u8] = b"last_applied";
const K_MEMBERSHIP: &[u8] = b"membership";
const K_SNAPSHOT_ID: &[u8] = b"snapshot_id";

/// The largest snapshot accepted from the network (bytes). Bigger streams are refused before
/// they fill the disk.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;
/// At most this many entries per `limited_get_log_entries` (one replication message).
pub const MAX_ENTRIES_PER_READ: usize = 4096;
/// At most about this many bytes of encoded entries per `limited_get_log_entries`.
pub const MAX_BYTES_PER_READ: usize = 4 << 20;

type StorageResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, BasicNode>;
type Meta = SnapshotMeta<NodeId, BasicNode>;

/// Errors inside a blocking closure: deadbolt, JSON and file errors, and our own checks.
#[derive(Debug)]
struct Fail(String);

impl From<deadbolt::Error> for Fail {
    fn from(e: deadbolt::Error) -> Self {
        Fail(format!("deadbolt: {e}"))
    }
}
impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail(format!("decoding: {e}"))
    }
}
impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail(format!("i/o: {e}"))
    }
}

impl Fail {
    fn to(self, subject: ErrorSubject<NodeId>, verb: ErrorVerb) -> StorageError<NodeId> {
        StorageIOError::new(subject, verb, AnyError::error(self.0)).into()
    }
}

/// Run a blocking storage closure on tokio's blocking pool and await it.
async fn blocking<T, F>(subject: ErrorSubject<NodeId>, verb: ErrorVerb, f: F) -> StorageResult<T>
where
    F: FnOnce() -> Result<T, Fail> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to(subject, verb)),
        Err(e) => Err(Fail(format!("storage task failed: {e}")).to(subject, verb)),
    }
}

fn get_json<T: DeserializeOwned>(b: &deadbolt::Bucket<'_>, k: &[u8]) -> Result<Option<T>, Fail> {
    match b.get(k)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

fn put_json<T: Serialize>(b: &deadbolt::Bucket<'_>, k: &[u8], v: &T) -> Result<(), Fail> {
    b.put(k, &serde_json::to_vec(v)?)?;
    Ok(())
}

fn bucket<'tx>(tx: &'tx deadbolt::Tx<'_>, name: &[u8]) -> Result<deadbolt::Bucket<'tx>, Fail> {
    tx.bucket(name)?.ok_or_else(|| {
        Fail(format!(
            "bucket {:?} is missing",
            String::from_utf8_lossy(name)
        ))
    })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------------------------
// The log

/// The raft log, vote and committed log id in one deadbolt file. Cloning shares the file (the
/// clone is the log reader replication tasks use).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    /// The committed log id saved by `save_committed` and not yet written: it is written in
    /// the next write transaction of the log (an append, a vote, a truncate or a purge), so
    /// that advancing it costs no fdatasync of its own. Persisting it is optional in openraft
    /// (a restart with an older committed id re-learns it from the leader), so a crash that
    /// loses the newest one is safe; it is never ahead of the log on disk, since an entry is
    /// committed only after it was appended.
    pending_committed: Arc<Mutex<Option<Option<LogId<NodeId>>>>>,
}

impl LogStore {
    /// Open (or create) the log file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: Options) -> deadbolt::Result<LogStore> {
        Self::from_db(Db::open_with(path, opts)?)
    }

    /// The log in an already open database (e.g. [`Db::in_memory`], for measuring what the
    /// file costs).
    pub fn from_db(db: Db) -> deadbolt::Result<LogStore> {
        db.update(|tx| {
            tx.create_bucket_if_not_exists(LOG)?;
            tx.create_bucket_if_not_exists(META)?;
            Ok::<_, deadbolt::Error>(())
        })?;
        Ok(LogStore {
            db: Arc::new(db),
            pending_committed: Arc::new(Mutex::new(None)),
        })
    }

    /// The deadbolt database (for its counters).
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn read_meta<T: DeserializeOwned + Send + 'static>(
        &self,
        key: &'static [u8],
    ) -> impl std::future::Future<Output = StorageResult<Option<T>>> + Send + 'static {
        let db = self.db.clone();
        blocking(ErrorSubject::Store, ErrorVerb::Read, move || {
            let tx = db.begin_read()?;
            get_json(&bucket(&tx, META)?, key)
        })
    }

    fn write_meta<T: Serialize + Send + 'static>(
        &self,
        subject: ErrorSubject<NodeId>,
        key: &'static [u8],
        v: T,
    ) -> impl std::future::Future<Output = StorageResult<()>> + Send + 'static {
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(subject, ErrorVerb::Write, move || {
            db.update(|tx| {
                write_committed(tx, committed)?;
                put_json(&bucket(tx, META)?, key, &v)
            })
        })
    }

    fn take_committed(&self) -> Option<Option<LogId<NodeId>>> {
        self.pending_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// Write a pending committed log id (see [`LogStore`]) in this transaction.
fn write_committed(
    tx: &deadbolt::Tx<'_>,
    committed: Option<Option<LogId<NodeId>>>,
) -> Result<(), Fail> {
    match committed {
        Some(c) => put_json(&bucket(tx, META)?, K_COMMITTED, &c),
        None => Ok(()),
    }
}

fn range_keys(range: &impl RangeBounds<u64>) -> (Bound<[u8; 8]>, Bound<[u8; 8]>) {
    let conv = |b: Bound<&u64>| match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (conv(range.start_bound()), conv(range.end_bound()))
}

/// Read the entries in `range`, stopping after `max_entries` entries or once `max_bytes` of
/// encoded entries have been read (always at least one entry if there is one).
fn read_entries(
    db: &Db,
    range: (Bound<[u8; 8]>, Bound<[u8; 8]>),
    max_entries: usize,
    max_bytes: usize,
) -> Result<Vec<Entry<TypeConfig>>, Fail> {
    let tx = db.begin_read()?;
    let b = bucket(&tx, LOG)?;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for r in b.range(range) {
        let (k, v) = r?;
        let e: Entry<TypeConfig> = serde_json::from_slice(&v)?;
        if k.as_ref() != e.log_id.index.to_be_bytes() {
            return Err(Fail(format!(
                "entry {} stored under another index",
                e.log_id
            )));
        }
        bytes = bytes.saturating_add(v.len());
        out.push(e);
        if out.len() >= max_entries || bytes >= max_bytes {
            break;
        }
    }
    Ok(out)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let db = self.db.clone();
        let keys = range_keys(&range);
        // Bounded by the range openraft asks for (it only asks for entries it knows exist).
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            read_entries(&db, keys, usize::MAX, usize::MAX)
        })
        .await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let db = self.db.clone();
        let keys = range_keys(&(start..end));
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            read_entries(&db, keys, MAX_ENTRIES_PER_READ, MAX_BYTES_PER_READ)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let db = self.db.clone();
        blocking(ErrorSubject::Logs, ErrorVerb::Read, move || {
            let tx = db.begin_read()?;
            let purged: Option<LogId<NodeId>> = get_json(&bucket(&tx, META)?, K_PURGED)?;
            let last = match bucket(&tx, LOG)?.cursor().last()? {
                Some(e) => {
                    let v = e.value.ok_or_else(|| Fail("a bucket in the log".into()))?;
                    let e: Entry<TypeConfig> = serde_json::from_slice(&v)?;
                    Some(e.log_id)
                }
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.write_meta(ErrorSubject::Vote, K_VOTE, *vote).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.read_meta(K_VOTE).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        *self
            .pending_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let pending = *self
            .pending_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match pending {
            Some(c) => Ok(c),
            None => Ok(self
                .read_meta::<Option<LogId<NodeId>>>(K_COMMITTED)
                .await?
                .flatten()),
        }
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if entries.is_empty() {
            // Every earlier append returned after its own fdatasync: nothing is left to flush.
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        let db = self.db.clone();
        let committed = self.take_committed();
        // One write transaction per call: openraft gives one `append` everything it has ready,
        // so a burst of client writes already arrives here as one batch, and the commit (and
        // its fdatasync) is shared by all of them.
        let r = blocking(ErrorSubject::Logs, ErrorVerb::Write, move || {
            db.update(|tx| {
                write_committed(tx, committed)?;
                let b = bucket(tx, LOG)?;
                for e in &entries {
                    b.put(&e.log_id.index.to_be_bytes(), &serde_json::to_vec(e)?)?;
                }
                Ok::<_, Fail>(())
            })
        })
        .await;
        // `update` returns after the commit's fdatasync: only now are the entries durable.
        match &r {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(io::Error::other(e.to_string()))),
        }
        r
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            db.update(|tx| {
                write_committed(tx, committed)?;
                let b = bucket(tx, LOG)?;
                delete_range(
                    &b,
                    (
                        Bound::Included(log_id.index.to_be_bytes()),
                        Bound::Unbounded,
                    ),
                )
            })
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let db = self.db.clone();
        let committed = self.take_committed();
        blocking(ErrorSubject::Logs, ErrorVerb::Delete, move || {
            db.update(|tx| {
                write_committed(tx, committed)?;
                put_json(&bucket(tx, META)?, K_PURGED, &Some(log_id))?;
                let b = bucket(tx, LOG)?;
                delete_range(
                    &b,
                    (
                        Bound::Unbounded,
                        Bound::Included(log_id.index.to_be_bytes()),
                    ),
                )
            })
        })
        .await
    }
}

/// Delete every entry in `range`. The keys are collected first (the range is bounded by what
/// the log holds) and deleted in the same transaction, so the log never has a hole.
fn delete_range(
    b: &deadbolt::Bucket<'_>,
    range: (Bound<[u8; 8]>, Bound<[u8; 8]>),
) -> Result<(), Fail> {
    let mut keys = Vec::new();
    for r in b.range(range) {
        let (k, _) = r?;
        keys.push(k.into_owned());
    }
    for k in keys {
        b.delete(&k)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The state machine

const SM_FILE: &str = "sm.db";
const SM_INSTALLING: &str = "sm.db.installing";
const SNAP_FILE: &str = "snapshot.db";
const SNAP_INSTALLING: &str = "snapshot.db.installing";
const SNAP_BUILDING: &str = "snapshot.db.building";

struct SmState {
    db: Arc<Db>,
    snapshot: Option<Meta>,
}

struct SmShared {
    dir: PathBuf,
    opts: Options,
    state: Mutex<SmState>,
    /// Serializes the file work of building and installing snapshots.
    snap_lock: Mutex<()>,
    /// Test hook: stop an install after this many of its steps (0: never).
    stop_install_after: AtomicU32,
    /// Snapshots installed since open.
    installed: AtomicU64,
}

impl SmShared {
    fn db(&self) -> Arc<Db> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .db
            .clone()
    }
    fn state(&self) -> std::sync::MutexGuard<'_, SmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The replicated key/value state machine in `dir/sm.db`, with its snapshot in
/// `dir/snapshot.db`. Cloning shares it (the service keeps a clone for reads).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<SmShared>,
}

/// Builds snapshots of a [`StateMachine`] by hot backup.
pub struct SnapshotBuilder {
    inner: Arc<SmShared>,
}

/// Applied log id, membership and (in a snapshot file) snapshot id.
type SmMeta = (Option<LogId<NodeId>>, Membership, Option<String>);

fn read_sm_meta(db: &Db) -> Result<SmMeta, Fail> {
    let tx = db.begin_read()?;
    let b = bucket(&tx, SM_META)?;
    let applied = get_json(&b, K_APPLIED)?;
    let membership = get_json(&b, K_MEMBERSHIP)?.unwrap_or_default();
    let id = get_json(&b, K_SNAPSHOT_ID)?;
    Ok((applied, membership, id))
}

fn open_sm(path: &Path, opts: Options) -> Result<Db, Fail> {
    let db = Db::open_with(path, opts)?;
    db.update(|tx| {
        tx.create_bucket_if_not_exists(DATA)?;
        tx.create_bucket_if_not_exists(SM_META)?;
        Ok::<_, deadbolt::Error>(())
    })?;
    Ok(db)
}

/// Write the snapshot id into a snapshot file (in its `sm_meta` bucket), synced.
fn stamp_snapshot_id(path: &Path, id: &str) -> Result<(), Fail> {
    let db = Db::open(path)?;
    db.update(|tx| put_json(&bucket(tx, SM_META)?, K_SNAPSHOT_ID, &id))?;
    db.close()?;
    Ok(())
}

impl StateMachine {
    /// Open (or create) the state machine in `dir`, removing what an interrupted snapshot
    /// build or install left behind.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<StateMachine, String> {
        let dir = dir.as_ref().to_path_buf();
        Self::open_inner(dir, opts, None).map_err(|e| e.0)
    }

    /// The state machine in [`Db::in_memory`] (for measuring what the file costs: nothing
    /// survives a restart). Snapshots are still files in `dir`, and an installed snapshot
    /// becomes `dir/sm.db`.
    pub fn open_in_memory(dir: impl AsRef<Path>) -> Result<StateMachine, String> {
        let dir = dir.as_ref().to_path_buf();
        let db = Db::in_memory().map_err(|e| e.to_string())?;
        Self::open_inner(dir, Options::default(), Some(db)).map_err(|e| e.0)
    }

    fn open_inner(dir: PathBuf, opts: Options, db: Option<Db>) -> Result<StateMachine, Fail> {
        fs::create_dir_all(&dir)?;
        let mut removed = false;
        for leftover in [SM_INSTALLING, SNAP_INSTALLING, SNAP_BUILDING] {
            match fs::remove_file(dir.join(leftover)) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        if removed {
            sync_dir(&dir)?;
        }
        let db = match db {
            Some(db) => {
                db.update(|tx| {
                    tx.create_bucket_if_not_exists(DATA)?;
                    tx.create_bucket_if_not_exists(SM_META)?;
                    Ok::<_, deadbolt::Error>(())
                })?;
                db
            }
            None => open_sm(&dir.join(SM_FILE), opts.clone())?,
        };
        let snap_path = dir.join(SNAP_FILE);
        let snapshot = if snap_path.exists() {
            let s = Db::open_with(
                &snap_path,
                Options {
                    read_only: true,
                    ..opts.clone()
                },
            )?;
            let (last, membership, id) = read_sm_meta(&s)?;
            drop(s);
            Some(Meta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id: id.ok_or_else(|| Fail("snapshot.db has no snapshot id".into()))?,
            })
        } else {
            None
        };
        Ok(StateMachine {
            inner: Arc::new(SmShared {
                dir,
                opts,
                state: Mutex::new(SmState {
                    db: Arc::new(db),
                    snapshot,
                }),
                snap_lock: Mutex::new(()),
                stop_install_after: AtomicU32::new(0),
                installed: AtomicU64::new(0),
            }),
        })
    }

    /// The current value of `key` (a local read: make it linearizable with
    /// `Raft::ensure_linearizable` first). Blocking: call it from `spawn_blocking`.
    pub fn get_blocking(&self, key: &str) -> Result<Option<String>, String> {
        let db = self.inner.db();
        let tx = db.begin_read().map_err(|e| e.to_string())?;
        let b = bucket(&tx, DATA).map_err(|e| e.0)?;
        match b.get(key.as_bytes()).map_err(|e| e.to_string())? {
            Some(v) => Ok(Some(
                String::from_utf8(v.into_owned()).map_err(|e| e.to_string())?,
            )),
            None => Ok(None),
        }
    }

    /// The number of pairs in the map. Blocking.
    pub fn len_blocking(&self) -> Result<u64, String> {
        let db = self.inner.db();
        let tx = db.begin_read().map_err(|e| e.to_string())?;
        let b = bucket(&tx, DATA).map_err(|e| e.0)?;
        let mut n = 0;
        for r in b.iter() {
            r.map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(n)
    }

    /// The deadbolt database currently holding the state machine (for its counters).
    pub fn db(&self) -> Arc<Db> {
        self.inner.db()
    }

    /// Snapshots installed from the leader since this state machine was opened.
    pub fn snapshots_installed(&self) -> u64 {
        self.inner.installed.load(Ordering::Relaxed)
    }

    /// Test hook: make the next installs stop (returning an error, as a crash would stop them)
    /// after `steps` of their steps; 0 turns it off. The steps: 1 the received file is copied
    /// and synced, 2 it is verified and the snapshot copy made, 3 `sm.db` is replaced, 4 the
    /// new `sm.db` is open, 5 `snapshot.db` is replaced.
    #[doc(hidden)]
    pub fn stop_install_after(&self, steps: u32) {
        self.inner.stop_install_after.store(steps, Ordering::SeqCst);
    }
}

fn new_snapshot_id(last: &Option<LogId<NodeId>>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    match last {
        Some(l) => format!(
            "{}-{}-{}-{nanos}",
            l.leader_id.term, l.leader_id.node_id, l.index
        ),
        None => format!("none-{nanos}"),
    }
}

fn open_snapshot_file(path: &Path) -> Result<tokio::fs::File, Fail> {
    Ok(tokio::fs::File::from_std(fs::File::open(path)?))
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, move || {
            let _g = inner.snap_lock.lock().unwrap_or_else(|p| p.into_inner());
            let db = inner.db();
            let building = inner.dir.join(SNAP_BUILDING);
            match fs::remove_file(&building) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            // The hot backup path: a consistent copy from one read transaction, synced.
            db.backup(&building)?;
            drop(db);
            let copy = Db::open_with(&building, inner.opts.clone())?;
            let (last, membership, _) = read_sm_meta(&copy)?;
            drop(copy);
            let id = new_snapshot_id(&last);
            stamp_snapshot_id(&building, &id)?;
            let meta = Meta {
                last_log_id: last,
                last_membership: membership,
                snapshot_id: id,
            };
            let path = inner.dir.join(SNAP_FILE);
            fs::rename(&building, &path)?;
            sync_dir(&inner.dir)?;
            inner.state().snapshot = Some(meta.clone());
            Ok(Snapshot {
                meta,
                snapshot: Box::new(open_snapshot_file(&path)?),
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, Membership)> {
        let db = self.inner.db();
        blocking(ErrorSubject::StateMachine, ErrorVerb::Read, move || {
            let (a, m, _) = read_sm_meta(&db)?;
            Ok((a, m))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let db = self.inner.db();
        blocking(ErrorSubject::StateMachine, ErrorVerb::Write, move || {
            // One transaction for the whole batch: data, applied log id and membership commit
            // together or not at all.
            db.update(|tx| {
                let data = bucket(tx, DATA)?;
                let meta = bucket(tx, SM_META)?;
                let mut out = Vec::with_capacity(entries.len());
                let mut last = None;
                for e in &entries {
                    last = Some(e.log_id);
                    out.push(match &e.payload {
                        EntryPayload::Blank => Response::default(),
                        EntryPayload::Normal(req) => apply_request(&data, req)?,
                        EntryPayload::Membership(m) => {
                            put_json(
                                &meta,
                                K_MEMBERSHIP,
                                &StoredMembership::new(Some(e.log_id), m.clone()),
                            )?;
                            Response::default()
                        }
                    });
                }
                if let Some(l) = last {
                    put_json(&meta, K_APPLIED, &Some(l))?;
                }
                Ok(out)
            })
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            inner: self.inner.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<tokio::fs::File>> {
        // An anonymous file in the node's directory: unlinked as soon as it is created, so
        // nothing is left behind if the transfer is abandoned or the process dies.
        let dir = self.inner.dir.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Write, move || {
            static RECEIVING: AtomicU64 = AtomicU64::new(0);
            let n = RECEIVING.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!("snapshot.recv.{}.{n}", std::process::id()));
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            fs::remove_file(&path)?;
            Ok(Box::new(tokio::fs::File::from_std(f)))
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> StorageResult<()> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let wr = |e: io::Error| Fail::from(e).to(subject.clone(), ErrorVerb::Write);
        let inner = self.inner.clone();
        let stop = inner.stop_install_after.load(Ordering::SeqCst);
        let stopped = move |step: u32| -> Result<(), Fail> {
            if stop != 0 && step >= stop {
                Err(Fail(format!(
                    "install stopped after step {step} (test hook)"
                )))
            } else {
                Ok(())
            }
        };

        // Step 1: stream the received bytes into `sm.db.installing` and sync it.
        let installing = inner.dir.join(SM_INSTALLING);
        snapshot.flush().await.map_err(wr)?;
        snapshot.seek(SeekFrom::Start(0)).await.map_err(wr)?;
        let mut out = tokio::fs::File::create(&installing).await.map_err(wr)?;
        let n = tokio::io::copy(&mut (&mut *snapshot).take(MAX_SNAPSHOT_BYTES + 1), &mut out)
            .await
            .map_err(wr)?;
        if n > MAX_SNAPSHOT_BYTES {
            drop(out);
            let _ = tokio::fs::remove_file(&installing).await;
            return Err(
                Fail(format!("snapshot larger than {MAX_SNAPSHOT_BYTES} bytes"))
                    .to(subject, ErrorVerb::Write),
            );
        }
        out.sync_all().await.map_err(wr)?;
        drop(out);
        drop(snapshot);
        stopped(1).map_err(|e| e.to(subject.clone(), ErrorVerb::Write))?;

        let meta = meta.clone();
        blocking(subject, ErrorVerb::Write, move || {
            let _g = inner.snap_lock.lock().unwrap_or_else(|p| p.into_inner());
            let dir = &inner.dir;
            // Step 2: the file came from the network: verify all of it, and that it holds the
            // state the leader announced, before it replaces anything.
            {
                let db = Db::open_with(&installing, inner.opts.clone())?;
                let report = db.check()?;
                if !report.is_ok() {
                    return Err(Fail(format!(
                        "received snapshot fails its check: {:?}",
                        report.problems.first()
                    )));
                }
                let (last, membership, _) = read_sm_meta(&db)?;
                if last != meta.last_log_id || membership != meta.last_membership {
                    return Err(Fail(format!(
                        "received snapshot holds applied {last:?} / {membership:?}, \
                         the leader announced {meta}"
                    )));
                }
                db.close()?;
            }
            // The snapshot to serve later is a copy: `sm.db` is written in place from now on.
            let snap_installing = dir.join(SNAP_INSTALLING);
            fs::copy(&installing, &snap_installing)?;
            stamp_snapshot_id(&snap_installing, &meta.snapshot_id)?;
            stopped(2)?;

            // Step 3: the swap. After the directory sync the new state machine is the one a
            // restart opens; before it, the old one.
            fs::rename(&installing, dir.join(SM_FILE))?;
            sync_dir(dir)?;
            stopped(3)?;

            // Step 4: serve from the new file. The old `Db` is dropped once no snapshot
            // build still reads it (its file is already unlinked).
            let db = open_sm(&dir.join(SM_FILE), inner.opts.clone())?;
            inner.state().db = Arc::new(db);
            stopped(4)?;

            // Step 5: the snapshot, never newer than the state machine on disk.
            fs::rename(&snap_installing, dir.join(SNAP_FILE))?;
            sync_dir(dir)?;
            inner.state().snapshot = Some(meta);
            inner.installed.fetch_add(1, Ordering::Relaxed);
            stopped(5)?;
            Ok(())
        })
        .await
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.inner.clone();
        blocking(ErrorSubject::Snapshot(None), ErrorVerb::Read, move || {
            let _g = inner.snap_lock.lock().unwrap_or_else(|p| p.into_inner());
            let meta = inner.state().snapshot.clone();
            match meta {
                None => Ok(None),
                Some(meta) => Ok(Some(Snapshot {
                    meta,
                    snapshot: Box::new(open_snapshot_file(&inner.dir.join(SNAP_FILE))?),
                })),
            }
        })
        .await
    }
}

fn apply_request(data: &deadbolt::Bucket<'_>, req: &Request) -> Result<Response, Fail> {
    let (key, value) = match req {
        Request::Put { key, value } => (key, Some(value)),
        Request::Delete { key } => (key, None),
    };
    let prev = data
        .get(key.as_bytes())?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    match value {
        Some(v) => data.put(key.as_bytes(), v.as_bytes())?,
        None => data.delete(key.as_bytes())?,
    }
    Ok(Response { prev })
}

/// Open the log and the state machine of a node in `dir` (`log.db`, `sm.db`, `snapshot.db`).
pub fn open_node_storage(
    dir: impl AsRef<Path>,
    opts: Options,
) -> Result<(LogStore, StateMachine), String> {
    let dir = dir.as_ref();
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let log = LogStore::open(dir.join("log.db"), opts.clone()).map_err(|e| e.to_string())?;
    let sm = StateMachine::open(dir, opts)?;
    Ok((log, sm))
}

/// A node's log and state machine in memory ([`Db::in_memory`]): the same code without the
/// file, to measure what the storage costs. Not durable.
pub fn open_node_storage_in_memory(
    dir: impl AsRef<Path>,
) -> Result<(LogStore, StateMachine), String> {
    let dir = dir.as_ref();
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let log = Db::in_memory()
        .and_then(LogStore::from_db)
        .map_err(|e| e.to_string())?;
    let sm = StateMachine::open_in_memory(dir)?;
    Ok((log, sm))
}
