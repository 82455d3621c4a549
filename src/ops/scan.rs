//! Long scans without long transactions: a bucket walked in slices, each slice in its own
//! short read transaction, resumed from an owned position (the last key it returned).
//!
//! A read transaction pins every page freed after its snapshot: while it is open, no commit
//! may reuse them, so a start-up walk of a large bucket inside one transaction makes the file
//! grow by everything the writers rewrite meanwhile (the growth etcd defragments away). A
//! [`Scan`] holds no transaction between slices, so the writers' freed pages are reused as
//! soon as the slice that could see them ends.

use std::ops::{Bound, RangeBounds};

use crate::cursor::Budget;
use crate::db::Db;
use crate::error::{Error, Result};

/// How much one slice of a [`Scan`] may hold and cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanLimits {
    /// Entries per slice (at least 1).
    pub entries: usize,
    /// Bytes of keys and values per slice: a slice ends with the entry that reaches it (so
    /// one entry larger than this is a slice of its own).
    pub bytes: usize,
    /// Pages one slice may load (`None`: as many as its entries need). Must leave room for a
    /// descent from the bucket's root and a step, or the scan cannot move: the slice that
    /// returns nothing for lack of pages is [`Error::InvalidArgument`].
    pub pages: Option<u64>,
}

impl Default for ScanLimits {
    /// 1,000 entries or 1 MiB per slice, pages unlimited.
    fn default() -> Self {
        ScanLimits {
            entries: 1000,
            bytes: 1 << 20,
            pages: None,
        }
    }
}

/// One slice of a [`Scan`]: entries from one consistent snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The snapshot the entries come from ([`crate::Tx::id`] of the slice's transaction).
    pub txid: u64,
    /// Key/value pairs in key order (nested buckets are skipped, as by [`crate::Bucket::iter`]).
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A bucket's key/value pairs in key order, in slices, each read in its own short read
/// transaction (see [`Db::scan`]).
///
/// Consistency: each slice is a consistent snapshot (the state of one commit, `Slice::txid`).
/// The whole scan is not: it goes on after the last key it returned, in whatever commit is
/// newest when the next slice starts. So it returns every key in order and never twice; a key
/// that was present for the whole scan and never changed is returned with its value; a key
/// inserted or deleted during the scan may or may not be returned, and a value changed during
/// the scan is returned as it was when its slice read it. A caller who needs one snapshot for
/// the whole walk uses [`crate::Bucket::range`] inside one transaction (and pins the pages
/// that snapshot can see for as long as it runs).
pub struct Scan<'db> {
    db: &'db Db,
    path: Vec<Vec<u8>>,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    limits: ScanLimits,
    done: bool,
}

fn own<K: AsRef<[u8]>>(b: Bound<&K>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Db {
    /// Scan the bucket at `path` (names from the top level down) over the keys in `range`
    /// (`..`, or owned keys: `b"a".to_vec()..b"b".to_vec()`),
    /// in slices of at most `limits`, each slice in its own read transaction. The position
    /// between slices is owned ([`Scan::position`]), so a scan can also be stopped and
    /// continued later with [`Db::scan_from`].
    ///
    /// ```
    /// # fn main() -> Result<(), deadbolt::Error> {
    /// use deadbolt::{Db, Error, ScanLimits};
    /// let db = Db::in_memory()?;
    /// db.update(|tx| {
    ///     let v = tx.create_bucket(b"volumes")?;
    ///     for i in 0..2500u32 {
    ///         v.put(format!("vol-{i:05}").as_bytes(), b"{}")?;
    ///     }
    ///     Ok::<_, Error>(())
    /// })?;
    /// // bbolt: db.View(func(tx) { tx.Bucket("volumes").ForEach(...) }), one long transaction.
    /// let mut n = 0;
    /// for slice in db.scan(&[b"volumes"], .., ScanLimits::default()) {
    ///     n += slice?.entries.len(); // writers may commit between slices
    /// }
    /// assert_eq!(n, 2500);
    /// # Ok(()) }
    /// ```
    pub fn scan<P, R>(&self, path: &[P], range: R, limits: ScanLimits) -> Scan<'_>
    where
        P: AsRef<[u8]>,
        R: RangeBounds<Vec<u8>>,
    {
        self.scan_from(
            path,
            own(range.start_bound()),
            own(range.end_bound()),
            limits,
        )
    }

    /// A [`Db::scan`] from an owned position: `from` is the lower bound (typically a
    /// [`Scan::position`] saved earlier, or the `resume` of an
    /// [`Error::BudgetExhausted`]), `to` the upper.
    pub fn scan_from<P: AsRef<[u8]>>(
        &self,
        path: &[P],
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        limits: ScanLimits,
    ) -> Scan<'_> {
        Scan {
            db: self,
            path: path.iter().map(|p| p.as_ref().to_vec()).collect(),
            from,
            to,
            limits,
            done: false,
        }
    }
}

impl Scan<'_> {
    /// Where the next slice starts: after the last key returned (the range's lower bound
    /// before the first slice). Save it to continue the scan in another [`Db::scan_from`].
    pub fn position(&self) -> &Bound<Vec<u8>> {
        &self.from
    }

    /// True once the scan has returned its last slice (or an error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn slice(&mut self) -> Result<Option<Slice>> {
        let tx = self.db.begin_read()?;
        let b = tx.bucket_path(&self.path)?.ok_or(Error::BucketNotFound)?;
        let mut it = b.range((self.from.clone(), self.to.clone()));
        // A page limit meters the slice; without one the iterator runs unmetered (no key
        // copy per entry for a resume position the slice keeps itself).
        if let Some(pages) = self.limits.pages {
            it = it.budget(Budget::pages(pages));
        }
        let (most, most_bytes) = (self.limits.entries.max(1), self.limits.bytes);
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        while entries.len() < most && (entries.is_empty() || bytes < most_bytes) {
            match it.next() {
                None => {
                    self.done = true;
                    break;
                }
                Some(Ok((k, v))) => {
                    bytes = bytes.saturating_add(k.len() + v.len());
                    entries.push((k.to_vec(), v.to_vec()));
                }
                Some(Err(Error::BudgetExhausted { resume })) => {
                    if entries.is_empty() {
                        return Err(Error::InvalidArgument(format!(
                            "a scan slice of {:?} pages cannot reach one entry",
                            self.limits.pages
                        )));
                    }
                    debug_assert_eq!(
                        resume,
                        Bound::Excluded(entries.last().map(|e| e.0.clone()).unwrap_or_default())
                    );
                    break;
                }
                Some(Err(e)) => return Err(e),
            }
        }
        if let Some((k, _)) = entries.last() {
            self.from = Bound::Excluded(k.clone());
        }
        if entries.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some(Slice {
            txid: tx.id(),
            entries,
        }))
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Slice>;

    /// The next slice, read in a new read transaction (ended before this returns); `None`
    /// after the last. An error ends the scan; [`Scan::position`] still says where it was.
    fn next(&mut self) -> Option<Result<Slice>> {
        if self.done {
            return None;
        }
        match self.slice() {
            Ok(s) => s.map(Ok),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
