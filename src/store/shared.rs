//! What every transaction of one open file shares: the storage, the published snapshots and
//! their readers, the writer's state behind its lock, the set of pages verified since open,
//! and the counters [`crate::Db::stats`] reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::format::meta::Meta;
use crate::format::page::max_overflow;
use crate::storage::{Storage, View};
use crate::store::free::FreeState;
use crate::store::mvcc::Reader;
use crate::store::mvcc::{Arc, Registry};
use crate::store::watch::{self, Alerted, ReaderInfo, ReaderLimits};

/// Options for [`crate::Db::open_with`].
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// # let dir = tempfile::tempdir().map_err(deadbolt::Error::Io)?;
/// # let path = dir.path().join("app.db");
/// use std::time::Duration;
/// use deadbolt::{Db, Options};
/// # drop(Db::open(&path)?);
/// // bbolt: bolt.Open(path, 0600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
/// let db = Db::open_with(
///     &path,
///     Options {
///         lock_timeout: Some(Duration::from_secs(1)),
///         read_only: true,
///         ..Options::default()
///     },
/// )?;
/// assert!(db.begin_write().is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a new file: a power of two from 1024 to 65536. Ignored for existing files.
    pub page_size: usize,
    /// Do not sync on commit (bbolt's NoSync): a crash may lose recent commits, but never what a
    /// sync made durable: once [`crate::Db::sync`] (or a clean close) returns, a power cut opens at
    /// that commit or a later one, without an error (docs/FORMAT.md, section 7). Pages freed by
    /// unsynced commits are reused only after the next sync, and the file is not cut below the
    /// synced commit's pages until then.
    pub no_sync: bool,
    /// Open read-only under a shared lock.
    pub read_only: bool,
    /// Wait at most this long for the file lock (`None`: forever).
    pub lock_timeout: Option<Duration>,
    /// Verify a page's checksum on every access, not only the first time it is read.
    pub verify_every_access: bool,
    /// Confirm the newest durable commit after the database has been idle this long (a
    /// background thread writes one meta page and syncs; see [`crate::Recovery::confirmed`]). A
    /// confirmed commit is never rolled back at open: damage to it is an error. `None`: only
    /// [`crate::Db::sync`], a clean close and the next commit confirm (the fault-injection harness
    /// uses that, to keep every I/O in its deterministic order).
    pub confirm_after: Option<Duration>,
    /// Limits on the oldest open read transaction (its age, the pages it pins): passing one
    /// logs a warning and calls the callback, if any (see [`crate::ReaderLimits`]). No limits
    /// by default.
    pub reader_limits: ReaderLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: crate::limits::DEFAULT_PAGE_SIZE,
            no_sync: false,
            read_only: false,
            lock_timeout: None,
            verify_every_access: false,
            confirm_after: Some(Duration::from_millis(50)),
            reader_limits: ReaderLimits::default(),
        }
    }
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
    /// The meta slot the next commit writes, so that the other one still describes the newest
    /// synced commit: after that commit's sync the slot other than its meta, after its
    /// confirmation its own meta's slot (the confirmation stays). An unsynced commit leaves it,
    /// so every `no_sync` commit after a sync overwrites the same slot and a power cut always
    /// finds the synced state in the other (docs/FORMAT.md, section 7).
    pub next_slot: u64,
    /// High-water mark of the newest synced commit: under `no_sync` the file is never cut
    /// below it before the next sync, since a power cut may keep the length change and lose the
    /// unsynced metas, and then the synced commit must still find all its pages.
    pub synced_hwm: u64,
    /// The commits' coalesced write buffer, kept between commits so that its bytes are zeroed
    /// once, not for every span of every commit (see `Commit::span_buf`). At most
    /// [`crate::storage::MAX_WRITE`] bytes are kept: a commit that grew it for a larger span
    /// cuts it back.
    pub write_buf: Vec<u8>,
}

impl Writer {
    /// Refuse writes until the file is reopened (an I/O error left the file and the memory
    /// state possibly apart), and say so in the daemon's log.
    pub(crate) fn poison(&mut self, why: String) {
        log::error!(target: "deadbolt", "database handle poisoned, writes refused until reopened: {why}");
        self.poisoned = Some(why);
    }
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
    /// Pages freed by each commit still pending reuse, by the txid of the commit that freed
    /// them, as of the last commit: what a reader of an older snapshot pins.
    pub pending_by_commit: Mutex<Vec<(u64, u64)>>,
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
    #[inline]
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

/// One open file, shared by every transaction on it (`Db` holds it in an `Arc`; the
/// confirmer thread holds another).
pub(crate) struct Store {
    pub storage: Arc<dyn Storage>,
    pub opts: Options,
    pub page_size: usize,
    pub shared: Registry<Snapshot>,
    pub writer: Mutex<Writer>,
    pub verified: Verified,
    pub counters: Counters,
    /// [`max_overflow`] for this page size, computed once.
    pub max_overflow: u64,
    /// Token of the thread holding the write transaction (0: none), so that a second
    /// `begin_write` on the same thread fails instead of waiting for itself.
    pub writer_owner: AtomicU64,
    /// Wakes the confirmer thread after durable commits (when it runs).
    pub confirm_signal: Option<std::sync::Arc<Signal>>,
    /// Which limits of [`Options::reader_limits`] the oldest reader was reported for.
    pub alerted: Mutex<Alerted>,
}

/// What commits tell the confirmer thread.
#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) state: Mutex<SignalState>,
    pub(crate) wake: Condvar,
}

#[derive(Default)]
pub(crate) struct SignalState {
    /// When the newest unconfirmed durable commit was made (`None`: nothing to confirm).
    pub(crate) last_commit: Option<Instant>,
    pub(crate) shutdown: bool,
}

impl Signal {
    /// A durable commit was made (called with the writer held; never blocks on the thread,
    /// which holds this lock only to read and write these two fields).
    ///
    /// Only the first commit after a quiet period wakes the thread: while it waits for a
    /// deadline it finds the newer commit time when that deadline passes, so a stream of
    /// commits costs no wake-up (and no context switch) each.
    pub(crate) fn committed(&self) {
        let mut st = self.state.lock();
        let idle = st.last_commit.is_none();
        st.last_commit = Some(Instant::now());
        drop(st);
        if idle {
            self.wake.notify_one();
        }
    }
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
        let mut p = self.pending_by_commit.lock();
        p.clear();
        p.extend(
            w.free
                .pending
                .iter()
                .map(|(&t, runs)| (t, runs.iter().map(|&(_, l)| l).sum())),
        );
    }
}

impl Store {
    /// The oldest open reader and what it pins, from the pending frees the last commit
    /// published.
    pub(crate) fn oldest_reader_info(&self) -> Option<(Reader, ReaderInfo)> {
        let r = self.shared.oldest()?;
        let info = watch::reader_info(&r, &self.counters.pending_by_commit.lock());
        Some((r, info))
    }

    /// Check the oldest reader against [`Options::reader_limits`] (see [`watch::check`]).
    /// Call with no lock of deadbolt's held.
    pub(crate) fn watch_readers(&self) {
        if !watch::enabled(&self.opts.reader_limits) {
            return;
        }
        if let Some((r, info)) = self.oldest_reader_info() {
            watch::check(&self.opts.reader_limits, &self.alerted, &r, info);
        }
    }

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
    ) -> Store {
        let file_len = view.bytes().len() as u64;
        Store {
            storage,
            opts,
            page_size,
            shared: Registry::new(
                Snapshot {
                    meta: candidates
                        .first()
                        .copied()
                        .unwrap_or(Meta::empty(page_size, 0)),
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
                next_slot: 0,
                synced_hwm: 2,
                write_buf: Vec::new(),
            }),
            verified: Verified::new(),
            counters: Counters::default(),
            max_overflow: max_overflow(page_size),
            writer_owner: AtomicU64::new(0),
            confirm_signal: None,
            alerted: Mutex::new(Alerted::default()),
        }
    }

    /// Truncate the file when far more of it is free at the end than in use, and no reader of
    /// an older snapshot could still look past the new end.
    pub(crate) fn shrink(&self, wr: &mut Writer, meta: &Meta) -> Result<()> {
        let p = self.page_size as u64;
        let target = meta.hwm.max(wr.synced_hwm) * p;
        if wr.file_len <= target
            || wr.file_len - target < 32 * p
            || target > (wr.file_len - 32 * p) / 2
        {
            return Ok(());
        }
        self.truncate_to_hwm(wr, meta).map(|_| ())
    }

    /// Truncate the file to the high-water mark of `meta` (the newest commit), or of the newest
    /// synced commit if that is higher (unsynced commits), unless a reader of an older
    /// snapshot is live. Returns whether it did.
    pub(crate) fn truncate_to_hwm(&self, wr: &mut Writer, meta: &Meta) -> Result<bool> {
        let target = meta.hwm.max(wr.synced_hwm) * self.page_size as u64;
        if wr.file_len == target {
            return Ok(false);
        }
        let mut result = Ok(());
        let shrunk = self.shared.publish_if_no_older_readers(meta.txid, || {
            let r = self
                .storage
                .set_len(target)
                .and_then(|_| self.storage.view());
            match r {
                Ok(view) => Some(Snapshot { meta: *meta, view }),
                Err(e) => {
                    result = Err(e.into());
                    None
                }
            }
        });
        if shrunk {
            log_resize(wr.file_len, target);
            wr.file_len = target;
        }
        result.map(|_| shrunk)
    }
}

/// A commit that grows the file, or a shrink, by at least this many bytes is logged (info,
/// target `deadbolt`): an operator sees the file jump, but not the small steps of everyday
/// commits.
pub(crate) const LOG_RESIZE_BYTES: u64 = 16 << 20;

/// Log a change of the file's length from `from` to `to` bytes when it is large.
pub(crate) fn log_resize(from: u64, to: u64) {
    if from.abs_diff(to) >= LOG_RESIZE_BYTES {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let what = if to > from { "grew" } else { "shrank" };
        log::info!(target: "deadbolt", "file {what} from {:.1} MiB to {:.1} MiB", mib(from), mib(to));
    }
}
