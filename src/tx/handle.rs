//! The transaction handle: a read transaction pins a snapshot; the write transaction also
//! holds the writer lock and the copy-on-write arena ([`WriteState`]) its changes live in
//! until commit.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::error::{Error, Result};
use crate::format::page::{ChildRef, Page};
use crate::limits::MAX_DEPTH;
use crate::storage::heap;
use crate::store::mvcc::{reusable_upto, Arc};
use crate::store::{Snapshot, Store, WriterGuard};
use crate::tx::bucket_cache::BucketCache;
use crate::tx::node::{Child, Node, NodeId};

/// One bucket opened in the write transaction.
pub(crate) struct BucketState {
    pub parent: Option<usize>,
    pub name: Vec<u8>,
    pub root: Option<Child>,
    pub seq: u64,
    pub dirty: bool,
    pub deleted: bool,
    pub depth: usize,
}

/// Everything a write transaction changes before commit.
pub(crate) struct WriteState {
    pub nodes: Vec<Node>,
    /// Height of each node above the leaves (indexed like `nodes`), written into its page.
    pub levels: Vec<u8>,
    /// Scratch path of (branch node, child index) from a bucket's root, reused by every put
    /// and delete so that descending allocates nothing.
    pub path: Vec<(NodeId, usize)>,
    pub buckets: Vec<BucketState>,
    /// The buckets opened or created in this transaction, by parent and name (see
    /// [`BucketIndex`]).
    pub index: BucketIndex,
    /// Page runs freed by this transaction.
    pub freed: Vec<(u64, u64)>,
    /// Bumped on every change, so cursors know to re-seek.
    pub epoch: u64,
}

/// A read or write transaction.
///
/// Dropping a write transaction without [`Tx::commit`] rolls it back. Values read through a
/// read transaction borrow from the mapped file (zero-copy); values a write transaction has
/// changed are returned as owned copies.
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Db, Error};
/// let db = Db::in_memory()?;
/// // bbolt: tx, err := db.Begin(true)
/// let tx = db.begin_write()?;
/// tx.create_bucket(b"jobs")?.put(b"job-1", b"queued")?;
/// // bbolt: tx.Commit()
/// tx.commit()?;
/// let tx = db.begin_write()?;
/// tx.bucket(b"jobs")?.ok_or(Error::BucketNotFound)?.delete(b"job-1")?;
/// // bbolt: tx.Rollback() (or just drop it)
/// tx.rollback();
/// // bbolt: db.Begin(false): a read transaction sees one snapshot until it ends
/// let tx = db.begin_read()?;
/// let jobs = tx.bucket(b"jobs")?.ok_or(Error::BucketNotFound)?;
/// assert!(jobs.get(b"job-1")?.is_some());
/// # Ok(()) }
/// ```
pub struct Tx<'db> {
    pub(crate) db: &'db Store,
    pub(crate) snap: Arc<Snapshot>,
    pub(crate) write: Option<RefCell<WriteState>>,
    pub(crate) guard: Option<WriterGuard<'db>>,
    pub(crate) closed: Cell<bool>,
    /// Pages (and spans) this transaction has loaded from its snapshot: see
    /// [`Tx::pages_loaded`].
    loads: Cell<u64>,
    /// Registration number in the readers table (deregistered on drop).
    reader: Option<u64>,
    /// Nested buckets this read transaction has opened (unused by the write transaction,
    /// whose buckets live in its [`WriteState`]).
    pub(crate) opened: RefCell<BucketCache>,
}

impl<'db> Tx<'db> {
    pub(crate) fn new_read(inner: &'db Store) -> Tx<'db> {
        let (snap, _, id) = inner.shared.begin_read();
        Tx {
            db: inner,
            snap,
            write: None,
            guard: None,
            closed: Cell::new(false),
            loads: Cell::new(0),
            reader: Some(id),
            opened: RefCell::default(),
        }
    }

    pub(crate) fn new_write(inner: &'db Store) -> Result<Tx<'db>> {
        if inner.opts.read_only {
            return Err(Error::ReadOnly);
        }
        let mut guard = inner.lock_writer()?;
        if let Some(why) = &guard.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let (snap, _) = inner.shared.current();
        let upto = reusable_upto(inner.shared.oldest_reader(), guard.last_synced);
        guard.free.release(upto)?;
        inner.counters.publish(&guard);
        let root = if snap.meta.root.is_empty() {
            None
        } else {
            Some(Child::Page(snap.meta.root))
        };
        let ws = WriteState {
            nodes: Vec::new(),
            levels: Vec::new(),
            path: Vec::with_capacity(MAX_DEPTH + 1),
            buckets: vec![BucketState {
                parent: None,
                name: Vec::new(),
                root,
                seq: 0,
                dirty: false,
                deleted: false,
                depth: 0,
            }],
            index: BucketIndex::default(),
            freed: Vec::new(),
            epoch: 0,
        };
        Ok(Tx {
            db: inner,
            snap,
            write: Some(RefCell::new(ws)),
            guard: Some(guard),
            closed: Cell::new(false),
            loads: Cell::new(0),
            reader: None,
            opened: RefCell::default(),
        })
    }

    /// The snapshot's txid (a write transaction commits as `id() + 1`).
    pub fn id(&self) -> u64 {
        self.snap.meta.txid
    }

    /// True for a write transaction.
    pub fn writable(&self) -> bool {
        self.write.is_some()
    }

    /// Roll back (same as dropping the transaction).
    pub fn rollback(self) {}

    /// Write a consistent copy of this transaction's snapshot, as a valid database file, to
    /// `w`. Returns the number of bytes written.
    pub fn copy_to(&self, w: &mut dyn std::io::Write) -> Result<u64> {
        let meta = self.snap.meta;
        let p = self.db.page_size;
        let bytes = self.bytes();
        let end = (meta.hwm as usize)
            .checked_mul(p)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                Error::corrupt(meta.slot(), "high-water mark past the end of the file")
            })?;
        let mut metas = vec![0u8; 2 * p];
        let enc = meta.encode();
        let slot = meta.slot as usize;
        metas[slot * p..slot * p + p].copy_from_slice(&enc);
        w.write_all(&metas)?;
        w.write_all(&bytes[2 * p..end])?;
        w.flush()?;
        Ok(end as u64)
    }
    pub(crate) fn bytes(&self) -> &[u8] {
        self.snap.view.bytes()
    }

    #[inline]
    pub(crate) fn load(&self, r: &ChildRef) -> Result<Page<'_>> {
        self.load_from(self.bytes(), r)
    }

    /// [`Tx::load`] from `bytes`, this transaction's [`Tx::bytes`] taken once by a caller that
    /// loads a page per level: each `bytes()` is a call through the view's trait object.
    #[inline]
    pub(crate) fn load_from<'a>(&'a self, bytes: &'a [u8], r: &ChildRef) -> Result<Page<'a>> {
        self.loads.set(self.loads.get() + 1);
        self.db.load_page(bytes, self.snap.meta.hwm, r)
    }

    /// How many pages (a multi-page span counts once) this transaction has loaded from its
    /// snapshot so far, by every read path: lookups, cursors, iterators, bucket opens. It
    /// counts loads, not distinct pages (a page read twice counts twice), and not the pages
    /// of a write transaction's own changed nodes, which are in memory. A measure of the
    /// work done, e.g. to check a [`crate::Budget`] or compare two access patterns.
    pub fn pages_loaded(&self) -> u64 {
        self.loads.get()
    }

    pub(crate) fn write_state(&self) -> Result<std::cell::RefMut<'_, WriteState>> {
        match &self.write {
            Some(w) => w.try_borrow_mut().map_err(|_| {
                Error::InvalidArgument("re-entrant use of a write transaction".into())
            }),
            None => Err(Error::ReadOnly),
        }
    }

    /// Pages free now and pending (write transactions; zeros for a read transaction).
    pub(crate) fn free_counts(&self) -> (u64, u64) {
        self.guard
            .as_ref()
            .map_or((0, 0), |g| (g.free.free.pages(), g.free.pending_pages()))
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.reader.take() {
            self.db.shared.end_read(self.snap.meta.txid, id);
        }
        self.closed.set(true);
        // A large arena is freed here, then given back with the writer lock released (commit
        // has released it already; a rollback releases it now).
        if let Some(w) = self.write.take() {
            let large = w.into_inner().nodes.len() >= heap::RELEASE_AFTER_NODES;
            drop(self.guard.take());
            if large {
                heap::release_freed();
            }
        }
    }
}

/// A write transaction's buckets by parent and name: a map per parent, so that a lookup
/// borrows the name instead of copying it into a key (the copy, and SipHash over it, were 3% of
/// the instructions of a metadata write). foldhash with a per-process random seed: the names
/// may come from the file, and this map is not bounded the way the read cache is.
#[derive(Default)]
pub(crate) struct BucketIndex {
    by_parent: HashMap<usize, HashMap<Box<[u8]>, usize, RandomState>, RandomState>,
}

impl BucketIndex {
    pub(crate) fn get(&self, parent: usize, name: &[u8]) -> Option<usize> {
        self.by_parent.get(&parent)?.get(name).copied()
    }

    pub(crate) fn insert(&mut self, parent: usize, name: &[u8], id: usize) {
        self.by_parent
            .entry(parent)
            .or_default()
            .insert(name.into(), id);
    }
}
