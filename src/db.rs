//! The database handle: open, transactions, sync and close, statistics.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::batch::{BatchOptions, Batcher};
use crate::error::{Error, Result};
use crate::limits::FORMAT_VERSION;
use crate::storage::{FileOptions, FileStorage, MemStorage, Storage};
use crate::store::confirm::Confirmer;
use crate::store::mvcc::Arc;
use crate::store::watch::ReaderInfo;
use crate::store::{Options, Recovery, Store, Writer};
use crate::tx::Tx;

/// Engine counters and facts about the newest snapshot.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Txid of the newest commit.
    pub txid: u64,
    /// The file's page size.
    pub page_size: usize,
    /// Pages `[0, high_water)` are in use (reachable, free or pending).
    pub high_water: u64,
    /// Bytes in the file (it grows ahead of the high-water mark, and shrinks).
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
    /// Pages written by commits since open.
    pub pages_written: u64,
    /// Bytes written by commits since open.
    pub bytes_written: u64,
    /// Pages whose checksum and structure were verified, since open.
    pub pages_verified: u64,
    /// Read transactions open now (in this process).
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
    /// The oldest open read transaction (in this process: the readers table is not in the
    /// file), its age, and the pages it keeps from being reused.
    pub oldest_reader: Option<ReaderInfo>,
}

/// A database: one file, one writer at a time, any number of concurrent readers.
///
/// `Db` is `Send + Sync`; share it across threads by reference or in an `Arc`.
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// # let dir = tempfile::tempdir().map_err(deadbolt::Error::Io)?;
/// # let path = dir.path().join("app.db");
/// use deadbolt::{Db, Error};
/// // bbolt: db, err := bolt.Open("app.db", 0600, nil)
/// let db = Db::open(&path)?;
/// // bbolt: db.Update(func(tx *bolt.Tx) error { ... })
/// db.update(|tx| {
///     tx.create_bucket_if_not_exists(b"volumes")?.put(b"vol-1", b"{}")?;
///     Ok::<_, Error>(())
/// })?;
/// // bbolt: db.View(func(tx *bolt.Tx) error { ... })
/// let v = db.view(|tx| {
///     let b = tx.bucket(b"volumes")?.ok_or(Error::BucketNotFound)?;
///     Ok::<_, Error>(b.get(b"vol-1")?.map(|v| v.to_vec()))
/// })?;
/// assert_eq!(v.as_deref(), Some(&b"{}"[..]));
/// // bbolt: db.Close()
/// db.close()?;
/// # Ok(()) }
/// ```
pub struct Db {
    pub(crate) inner: std::sync::Arc<Store>,
    recovery: Recovery,
    batcher: Batcher,
    confirmer: Option<Confirmer>,
    /// Where the last [`Db::compact_step`] stopped (a key path; see `ops::maintenance`).
    pub(crate) compact_from: parking_lot::Mutex<Option<Vec<Vec<u8>>>>,
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
        let (mut inner, recovery) = Store::open(storage, opts.clone())?;
        if let Some(rb) = &recovery.rolled_back {
            log::warn!(
                target: "deadbolt",
                "opened at commit {}: rolled back unconfirmed commit {} ({})",
                recovery.txid,
                rb.txid,
                rb.reason
            );
        }
        if let Some(why) = &recovery.damaged_meta {
            log::warn!(target: "deadbolt", "a meta slot did not decode (normal after a crash during a meta write): {why}");
        }
        let delay = opts.confirm_after.filter(|_| !opts.read_only);
        if delay.is_some() {
            inner.confirm_signal = Some(Default::default());
        }
        let inner = std::sync::Arc::new(inner);
        let confirmer = match (delay, &inner.confirm_signal) {
            (Some(d), Some(sig)) => Some(Confirmer::start(inner.clone(), sig.clone(), d)),
            _ => None,
        };
        Ok(Db {
            inner,
            recovery,
            batcher: Batcher::default(),
            confirmer,
            compact_from: parking_lot::Mutex::new(None),
        })
    }

    /// Begin a read transaction on the newest snapshot. Never blocks on the writer.
    pub fn begin_read(&self) -> Result<Tx<'_>> {
        Ok(Tx::new_read(&self.inner))
    }

    /// Begin the write transaction, waiting for the current writer (if any) to finish.
    pub fn begin_write(&self) -> Result<Tx<'_>> {
        Tx::new_write(&self.inner)
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
        self.inner.sync_locked(&mut w)?;
        // The file grows ahead of its pages (docs/FORMAT.md, section 6); a closed file keeps
        // only the pages in use, as `Db::shrink_to_fit` would leave it.
        self.shrink_locked(&mut w).map(|_| ())
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
        // Unsynced (`no_sync`) commits are made durable first: the file may then be cut to the
        // newest commit's high-water mark, not only to the last synced one's.
        let (_, txid) = self.inner.shared.current();
        if w.unsynced || w.last_synced < txid {
            self.inner.sync_locked(&mut w)?;
        }
        self.shrink_locked(&mut w)
    }

    /// Truncate the synced file to its high-water mark (see [`Db::shrink_to_fit`]) and sync
    /// the new length; no sync when nothing was cut.
    fn shrink_locked(&self, w: &mut Writer) -> Result<bool> {
        let (snap, _) = self.inner.shared.current();
        let r = self.inner.truncate_to_hwm(w, &snap.meta).and_then(|d| {
            if d {
                self.inner.storage.sync_data()?;
                self.inner.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(d)
        });
        match r {
            Ok(d) => {
                self.inner.counters.publish(w);
                Ok(d)
            }
            Err(e) => {
                w.poison(format!("shrinking the file failed: {e}"));
                Err(e)
            }
        }
    }

    /// Run `f` in a write transaction shared with other concurrent callers of `batch`, so that
    /// they all commit with one sync (bbolt's `DB.Batch`).
    ///
    /// `f` may run more than once (if another caller's closure fails, the batch is retried
    /// without it), so it must only act through the transaction. If `f` returns `Err` (or
    /// panics), it is run again alone, as by [`Db::update`], and that is the outcome returned
    /// (or the panic re-raised) to this caller only. `Ok` is returned only after the commit
    /// that contains this write has been synced (unless `no_sync` is set).
    ///
    /// Like `update`, `f` must not begin another write transaction (or call `batch`): the
    /// writer lock is held while it runs.
    ///
    /// Batching pays off with many concurrent writers; a lone caller waits 200 µs (at most
    /// [`BatchOptions::max_delay`]) for company (see [`Db::set_batch_options`]).
    ///
    /// ```
    /// # fn main() -> Result<(), deadbolt::Error> {
    /// use std::sync::Arc;
    /// use deadbolt::{Db, Error};
    /// let db = Arc::new(Db::in_memory()?);
    /// db.update(|tx| tx.create_bucket(b"events").map(|_| ()))?;
    /// // bbolt: go db.Batch(func(tx *bolt.Tx) error { ... }) from many goroutines
    /// let writers: Vec<_> = (0..4u32)
    ///     .map(|t| {
    ///         let db = db.clone();
    ///         std::thread::spawn(move || {
    ///             db.batch(move |tx| {
    ///                 let b = tx.bucket(b"events")?.ok_or(Error::BucketNotFound)?;
    ///                 b.put(&t.to_be_bytes(), b"seen")
    ///             })
    ///         })
    ///     })
    ///     .collect();
    /// for w in writers {
    ///     // Ok only once the commit holding this write is synced.
    ///     match w.join() {
    ///         Ok(r) => r?,
    ///         Err(panic) => std::panic::resume_unwind(panic),
    ///     }
    /// }
    /// db.view(|tx| {
    ///     let b = tx.bucket(b"events")?.ok_or(Error::BucketNotFound)?;
    ///     assert_eq!(b.iter().count(), 4);
    ///     Ok::<_, Error>(())
    /// })
    /// # }
    /// ```
    pub fn batch<F>(&self, f: F) -> Result<()>
    where
        F: Fn(&Tx<'_>) -> Result<()> + Send + 'static,
    {
        if self.inner.opts.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.holds_writer() {
            // The leader would be this thread, waiting for the writer it already holds.
            return Err(Error::WouldDeadlock);
        }
        self.batcher.submit(f, &|| self.begin_write())
    }

    /// Set the largest batch and the longest wait of [`Db::batch`] (defaults: 1000 calls,
    /// 10 ms). Takes effect for batches opened afterwards.
    pub fn set_batch_options(&self, opts: BatchOptions) -> Result<()> {
        self.batcher.set_options(opts)
    }

    /// The current [`BatchOptions`].
    pub fn batch_options(&self) -> BatchOptions {
        self.batcher.options()
    }

    /// What open found (a rolled-back commit, a damaged meta slot).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The page size of the file.
    pub fn page_size(&self) -> usize {
        self.inner.page_size
    }

    /// Counters and facts about the newest snapshot.
    pub fn stats(&self) -> Stats {
        let i = &self.inner;
        let (snap, _) = i.shared.current();
        // Before the depth's own read transaction below registers.
        let readers = i.shared.readers();
        let oldest_reader = i.oldest_reader_info().map(|(_, info)| info);
        i.watch_readers();
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
            format_version: FORMAT_VERSION,
            confirmed_txid: c.confirmed.load(Ordering::Relaxed),
            confirmations: c.confirmations.load(Ordering::Relaxed),
            oldest_reader,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Best effort: a clean close makes no-sync commits durable and confirms the newest
        // commit (an error has poisoned the handle or is reported by the next open).
        let _ = self.shut_down();
    }
}
