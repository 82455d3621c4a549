//! Buckets: named key/value trees, nested to any depth, each with a sequence counter.

use std::borrow::Cow;
use std::ops::{Bound, RangeBounds};

use crate::cursor::{Budget, Cursor, Entry, Meter, Usage};
use crate::error::{Error, Result};
use crate::format::page::{BucketHeader, BucketRoot, BucketValue};
use crate::limits::{MAX_DEPTH, MAX_KEY_SIZE, MAX_VALUE_SIZE};
use crate::tx::{BucketRef, Loc, Tx};

/// Per-bucket statistics (nested buckets included).
#[derive(Clone, Debug, Default)]
pub struct BucketStats {
    /// Key/value pairs.
    pub keys: u64,
    /// Buckets, this one included.
    pub buckets: u64,
    /// Branch pages (spans count once).
    pub branch_pages: u64,
    /// Leaf pages (spans count once).
    pub leaf_pages: u64,
    /// Extra pages of multi-page spans.
    pub overflow_pages: u64,
    /// Height of the tallest tree among this bucket's and its nested buckets' (each from its
    /// own root; 1 for a single leaf).
    pub depth: u64,
    /// Bytes of keys and values stored.
    pub bytes_used: u64,
    /// Bytes of the pages holding them (an inline bucket: the bytes of its value).
    pub bytes_allocated: u64,
    /// Buckets stored inline, inside their parent's leaf (no page of their own; not counted
    /// in `leaf_pages`).
    pub inline_buckets: u64,
}

/// A bucket inside a transaction.
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Db, Error};
/// let db = Db::in_memory()?;
/// db.update(|tx| {
///     // bbolt: b, err := tx.CreateBucketIfNotExists([]byte("users"))
///     let users = tx.create_bucket_if_not_exists(b"users")?;
///     // bbolt: id, _ := b.NextSequence()
///     let id = users.next_sequence()?;
///     // bbolt: b.Put(k, v)
///     users.put(&id.to_be_bytes(), b"alice")?;
///     // bbolt: b.CreateBucket([]byte("sessions")): buckets nest
///     users.create_bucket(b"sessions")?.put(b"s1", b"token")?;
///     // bbolt: b.Get(k) (nil when absent)
///     assert_eq!(users.get(&id.to_be_bytes())?.as_deref(), Some(&b"alice"[..]));
///     // bbolt: b.Delete(k)
///     users.delete(&id.to_be_bytes())?;
///     assert!(users.get(&id.to_be_bytes())?.is_none());
///     Ok::<_, Error>(())
/// })
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Bucket<'tx> {
    tx: &'tx Tx<'tx>,
    r: BucketRef<'tx>,
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::KeyEmpty);
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(Error::KeyTooLarge { len: key.len() });
    }
    Ok(())
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > MAX_KEY_SIZE {
        return Err(Error::InvalidBucketName);
    }
    Ok(())
}

impl<'tx> Bucket<'tx> {
    pub(crate) fn new(tx: &'tx Tx<'tx>, r: BucketRef<'tx>) -> Bucket<'tx> {
        Bucket { tx, r }
    }

    /// The page of this bucket's root as the snapshot has it (a changed bucket in a write
    /// transaction: its original page, or the meta slot if it had none), for messages.
    fn root_page(&self) -> u64 {
        match self.r {
            BucketRef::Read {
                root: BucketRoot::Tree(r),
                ..
            } if !r.is_empty() => r.pgid,
            BucketRef::Read {
                root: BucketRoot::Inline(p),
                ..
            } => p.id,
            _ => self.tx.snap.meta.slot(),
        }
    }

    fn write_id(&self) -> Result<usize> {
        match self.r {
            BucketRef::Write(id) => Ok(id),
            BucketRef::Read { .. } => Err(Error::ReadOnly),
        }
    }

    /// The value of `key`, or `None`. [`Error::IncompatibleValue`] if `key` names a bucket.
    pub fn get(&self, key: &[u8]) -> Result<Option<Cow<'tx, [u8]>>> {
        match self.tx.lookup(self.r, key)? {
            None => Ok(None),
            Some((_, true)) => Err(Error::IncompatibleValue),
            Some((v, false)) => Ok(Some(v)),
        }
    }

    /// Set `key` to `value`. [`Error::IncompatibleValue`] if `key` names a bucket.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge { len: value.len() });
        }
        let id = self.write_id()?;
        self.tx.put_entry(id, key, value, false)
    }

    /// Remove `key` (no error if it is absent). [`Error::IncompatibleValue`] if it names a
    /// bucket: use [`Bucket::delete_bucket`].
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let id = self.write_id()?;
        self.tx.delete_entry(id, key, false)
    }

    /// The nested bucket `name` whose bucket element's value is `value` (borrowed from the
    /// snapshot in a read transaction, so that an inline bucket is read in place).
    fn child(&self, name: &[u8], value: Cow<'tx, [u8]>) -> Result<Bucket<'tx>> {
        let page_size = self.tx.db.page_size;
        let r = match (self.r, value) {
            (BucketRef::Read { .. }, Cow::Borrowed(v)) => {
                let h = BucketValue::decode(v, self.root_page(), page_size)?;
                BucketRef::Read {
                    root: h.root,
                    seq: h.sequence,
                }
            }
            (BucketRef::Read { .. }, Cow::Owned(_)) => {
                return Err(Error::bug(
                    "a read transaction returned a copied bucket value",
                ));
            }
            (BucketRef::Write(pid), v) => {
                let h = BucketValue::decode(&v, self.root_page(), page_size)?;
                BucketRef::Write(self.tx.open_child(pid, name, h)?)
            }
        };
        Ok(Bucket::new(self.tx, r))
    }

    /// A nested bucket, or `None`. [`Error::IncompatibleValue`] if `name` holds a value.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'tx>>> {
        // A read transaction keeps the nested buckets it opened (see tx::bucket_cache), unless
        // every access must be verified again.
        let parent = match self.r {
            BucketRef::Read {
                root: BucketRoot::Tree(p),
                ..
            } if !self.tx.db.opts.verify_every_access => Some(p.pgid),
            _ => None,
        };
        if let Some(parent) = parent {
            if let Some((root, seq)) = self.tx.opened.borrow().get(parent, name) {
                let r = BucketRef::Read {
                    root: BucketRoot::Tree(root),
                    seq,
                };
                return Ok(Some(Bucket::new(self.tx, r)));
            }
        }
        let child = match self.tx.lookup(self.r, name)? {
            None => return Ok(None),
            Some((_, false)) => return Err(Error::IncompatibleValue),
            Some((h, true)) => self.child(name, h)?,
        };
        if let (
            Some(parent),
            BucketRef::Read {
                root: BucketRoot::Tree(root),
                seq,
            },
        ) = (parent, child.r)
        {
            self.tx.opened.borrow_mut().put(parent, name, root, seq);
        }
        Ok(Some(child))
    }

    /// Create a nested bucket; [`Error::BucketExists`] if it exists.
    pub fn create_bucket(&self, name: &[u8]) -> Result<Bucket<'tx>> {
        check_name(name)?;
        let id = self.write_id()?;
        match self.tx.lookup(self.r, name)? {
            Some((_, true)) => Err(Error::BucketExists),
            Some((_, false)) => Err(Error::IncompatibleValue),
            None => {
                let h = BucketHeader::default().encode();
                self.tx.put_entry(id, name, &h, true)?;
                self.child(name, Cow::Owned(h.to_vec()))
            }
        }
    }

    /// Create a nested bucket unless it exists; return it either way.
    pub fn create_bucket_if_not_exists(&self, name: &[u8]) -> Result<Bucket<'tx>> {
        check_name(name)?;
        match self.bucket(name)? {
            Some(b) => Ok(b),
            None => self.create_bucket(name),
        }
    }

    /// Delete a nested bucket and everything in it.
    pub fn delete_bucket(&self, name: &[u8]) -> Result<()> {
        let id = self.write_id()?;
        self.tx.delete_bucket_entry(id, name)
    }

    /// The bucket's sequence number.
    pub fn sequence(&self) -> u64 {
        match self.r {
            BucketRef::Read { seq, .. } => seq,
            BucketRef::Write(id) => self
                .tx
                .write_state()
                .ok()
                .and_then(|w| w.buckets.get(id).map(|b| b.seq))
                .unwrap_or(0),
        }
    }

    /// Set the sequence number.
    pub fn set_sequence(&self, v: u64) -> Result<()> {
        let id = self.write_id()?;
        let mut w = self.tx.write_state()?;
        let b = w
            .buckets
            .get_mut(id)
            .filter(|b| !b.deleted)
            .ok_or(Error::BucketNotFound)?;
        b.seq = v;
        b.dirty = true;
        Ok(())
    }

    /// Increment the sequence number and return the new value.
    pub fn next_sequence(&self) -> Result<u64> {
        let id = self.write_id()?;
        let mut w = self.tx.write_state()?;
        let b = w
            .buckets
            .get_mut(id)
            .filter(|b| !b.deleted)
            .ok_or(Error::BucketNotFound)?;
        b.seq = b
            .seq
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("sequence overflow".into()))?;
        b.dirty = true;
        Ok(b.seq)
    }

    /// A cursor over keys and nested buckets.
    pub fn cursor(&self) -> Cursor<'tx> {
        Cursor::new(self.tx, self.r)
    }

    /// All key/value pairs in key order (nested buckets skipped), from either end.
    pub fn iter(&self) -> Iter<'tx> {
        self.range::<&[u8], _>(..)
    }

    /// Key/value pairs whose keys fall in `r`, from either end.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, r: R) -> Iter<'tx> {
        let own = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Iter {
            front: self.cursor(),
            back: self.cursor(),
            lo: own(r.start_bound()),
            hi: own(r.end_bound()),
            started_front: false,
            started_back: false,
            last_front: None,
            last_back: None,
            done: false,
        }
    }

    /// Names of the nested buckets, in order.
    pub fn buckets(&self) -> BucketNames<'tx> {
        BucketNames {
            cursor: self.cursor(),
            started: false,
            done: false,
        }
    }

    /// Key, bucket and page counts of this bucket and the buckets nested in it.
    pub fn stats(&self) -> Result<BucketStats> {
        let mut st = BucketStats::default();
        let mut todo = vec![(*self, 1u64)];
        let limit = self.tx.snap.meta.hwm;
        while let Some((b, _)) = todo.pop() {
            // Each bucket has an element (16 bytes at least) in a leaf page: more buckets than
            // that allows means a page was counted twice (a cycle through bucket headers).
            let most = limit.saturating_mul(self.tx.db.page_size as u64 / 16);
            if st.buckets > most {
                let d = "more buckets than the pages can hold";
                return Err(Error::corrupt(b.root_page(), d));
            }
            // Pages of this bucket's tree (snapshot pages only; dirty nodes count as one page).
            let mut stack: Vec<(Loc<'tx>, u64)> = Vec::new();
            if let Some(root) = self.tx.root_loc(b.r)? {
                stack.push((root, 1));
            }
            let inline = matches!(
                b.r,
                BucketRef::Read {
                    root: BucketRoot::Inline(_),
                    ..
                }
            );
            let mut visited = 0u64;
            while let Some((loc, depth)) = stack.pop() {
                visited += 1;
                if visited > limit + 1_000_000 || depth as usize > MAX_DEPTH {
                    let page = Tx::loc_page_id(loc).unwrap_or(b.root_page());
                    return Err(Error::corrupt(page, "bucket tree larger than the file"));
                }
                st.depth = st.depth.max(depth);
                let len = self.tx.loc_len(loc);
                let span = match loc {
                    Loc::Page(p) => p.data.len() as u64,
                    Loc::Node(_) => self.tx.db.page_size as u64,
                };
                st.bytes_allocated += span;
                if inline {
                    st.inline_buckets += 1;
                } else {
                    st.overflow_pages += (span / self.tx.db.page_size as u64).saturating_sub(1);
                }
                if self.tx.loc_is_leaf(loc) {
                    st.leaf_pages += u64::from(!inline);
                    for i in 0..len {
                        let (k, v, bucket) = self.tx.loc_item(loc, i)?;
                        st.bytes_used += (k.len() + v.len()) as u64;
                        if bucket {
                            st.buckets += 1;
                            todo.push((b.child(&k, v)?, depth));
                        } else {
                            st.keys += 1;
                        }
                    }
                } else {
                    st.branch_pages += 1;
                    for i in 0..len {
                        stack.push((self.tx.loc_child(loc, i)?, depth + 1));
                    }
                }
            }
        }
        Ok(st)
    }
}

/// Double-ended iterator over key/value pairs in a key range (nested buckets skipped).
///
/// Each item is a `Result`: any read can find damage, and the iterator ends after an error.
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Db, Error};
/// let db = Db::in_memory()?;
/// db.update(|tx| {
///     let b = tx.create_bucket(b"metrics")?;
///     for day in ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"] {
///         b.put(day.as_bytes(), b"1")?;
///     }
///     Ok::<_, Error>(())
/// })?;
/// db.view(|tx| {
///     let b = tx.bucket(b"metrics")?.ok_or(Error::BucketNotFound)?;
///     // bbolt: b.ForEach(func(k, v []byte) error { ... })
///     assert_eq!(b.iter().count(), 4);
///     // bbolt: c.Seek(min); k != nil && bytes.Compare(k, max) < 0; c.Next()
///     let november: Vec<_> = b
///         .range(b"2026-11".as_slice()..b"2026-12".as_slice())
///         .map(|kv| kv.map(|(k, _)| k.into_owned()))
///         .collect::<Result<_, _>>()?;
///     assert_eq!(november.len(), 2);
///     // bbolt: c.Last(); c.Prev(): the newest first
///     if let Some(kv) = b.iter().next_back() {
///         let (newest, _) = kv?;
///         assert_eq!(&*newest, b"2026-12-02");
///     }
///     Ok::<_, Error>(())
/// })
/// # }
/// ```
pub struct Iter<'tx> {
    front: Cursor<'tx>,
    back: Cursor<'tx>,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    started_front: bool,
    started_back: bool,
    last_front: Option<Cow<'tx, [u8]>>,
    last_back: Option<Cow<'tx, [u8]>>,
    done: bool,
}

impl<'tx> Iter<'tx> {
    /// Limit the work of this iteration (both ends together) to `budget`: once it is spent
    /// the iterator yields one [`Error::BudgetExhausted`], whose `resume` is the bound to
    /// start a new range from (in this transaction or a later one) to get the entries it did
    /// not yield from that end, and then ends.
    pub fn budget(mut self, budget: Budget) -> Iter<'tx> {
        let m = Meter::new(budget);
        // Neither cursor has moved: setting a meter cannot fail.
        let _ = self.front.set_meter(Some(m.clone()));
        let _ = self.back.set_meter(Some(m));
        self
    }

    /// What the iteration has used of its budget (zeros without one).
    pub fn usage(&self) -> Usage {
        self.front.usage()
    }
}

type Pair<'tx> = (Cow<'tx, [u8]>, Cow<'tx, [u8]>);

impl<'tx> Iter<'tx> {
    fn step_front(&mut self) -> Result<Option<Entry<'tx>>> {
        if !self.started_front {
            self.started_front = true;
            return match &self.lo {
                Bound::Unbounded => self.front.first(),
                Bound::Included(k) => {
                    let k = k.clone();
                    self.front.seek(&k)
                }
                Bound::Excluded(k) => {
                    let k = k.clone();
                    match self.front.seek(&k)? {
                        Some(e) if e.key.as_ref() == k.as_slice() => self.front.next(),
                        other => Ok(other),
                    }
                }
            };
        }
        self.front.next()
    }

    fn step_back(&mut self) -> Result<Option<Entry<'tx>>> {
        if !self.started_back {
            self.started_back = true;
            return match &self.hi {
                Bound::Unbounded => self.back.last(),
                Bound::Included(k) | Bound::Excluded(k) => {
                    let k = k.clone();
                    let incl = matches!(self.hi, Bound::Included(_));
                    match self.back.seek(&k)? {
                        Some(e) if incl && e.key.as_ref() == k.as_slice() => Ok(Some(e)),
                        Some(_) => self.back.prev(),
                        None => self.back.last(),
                    }
                }
            };
        }
        self.back.prev()
    }

    fn in_front_bounds(&self, key: &[u8]) -> bool {
        let below_hi = match &self.hi {
            Bound::Unbounded => true,
            Bound::Included(h) => key <= h.as_slice(),
            Bound::Excluded(h) => key < h.as_slice(),
        };
        below_hi && self.last_back.as_deref().is_none_or(|b| key < b)
    }

    fn in_back_bounds(&self, key: &[u8]) -> bool {
        let above_lo = match &self.lo {
            Bound::Unbounded => true,
            Bound::Included(l) => key >= l.as_slice(),
            Bound::Excluded(l) => key > l.as_slice(),
        };
        above_lo && self.last_front.as_deref().is_none_or(|f| key > f)
    }
}

impl<'tx> Iter<'tx> {
    /// One step from the front or the back, skipping nested buckets, stopping at the range's
    /// bound or where the other end has already been.
    fn advance(&mut self, front: bool) -> Option<Result<Pair<'tx>>> {
        if self.done {
            return None;
        }
        loop {
            let step = if front {
                self.step_front()
            } else {
                self.step_back()
            };
            match step {
                Err(Error::BudgetExhausted { .. }) => {
                    self.done = true;
                    let (last, bound) = if front {
                        (&self.last_front, &self.lo)
                    } else {
                        (&self.last_back, &self.hi)
                    };
                    let resume = match last {
                        Some(k) => Bound::Excluded(k.to_vec()),
                        None => bound.clone(),
                    };
                    return Some(Err(Error::BudgetExhausted { resume }));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(e)) => {
                    let inside = if front {
                        self.in_front_bounds(&e.key)
                    } else {
                        self.in_back_bounds(&e.key)
                    };
                    if !inside {
                        self.done = true;
                        return None;
                    }
                    // A borrowed key (read transactions) is copied by pointer only.
                    if front {
                        self.last_front = Some(e.key.clone());
                    } else {
                        self.last_back = Some(e.key.clone());
                    }
                    if let Some(v) = e.value {
                        return Some(Ok((e.key, v)));
                    }
                }
            }
        }
    }
}

impl<'tx> Iterator for Iter<'tx> {
    type Item = Result<Pair<'tx>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.advance(true)
    }
}

impl<'tx> DoubleEndedIterator for Iter<'tx> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.advance(false)
    }
}

/// Iterator over nested bucket names.
pub struct BucketNames<'tx> {
    cursor: Cursor<'tx>,
    started: bool,
    done: bool,
}

impl<'tx> Iterator for BucketNames<'tx> {
    type Item = Result<Cow<'tx, [u8]>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let r = if self.started {
                self.cursor.next()
            } else {
                self.started = true;
                self.cursor.first()
            };
            match r {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(e)) if e.value.is_none() => return Some(Ok(e.key)),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// The bucket methods of a transaction: its root bucket and the top-level buckets in it.
impl Tx<'_> {
    pub(crate) fn root_bucket(&self) -> Bucket<'_> {
        let r = if self.write.is_some() {
            BucketRef::Write(0)
        } else {
            BucketRef::Read {
                root: BucketRoot::Tree(self.snap.meta.root),
                seq: 0,
            }
        };
        Bucket::new(self, r)
    }

    /// A top-level bucket, or `None` if it does not exist.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'_>>> {
        self.root_bucket().bucket(name)
    }
    /// Create a top-level bucket; [`Error::BucketExists`] if it exists.
    pub fn create_bucket(&self, name: &[u8]) -> Result<Bucket<'_>> {
        self.root_bucket().create_bucket(name)
    }
    /// Create a top-level bucket unless it exists; return it either way.
    pub fn create_bucket_if_not_exists(&self, name: &[u8]) -> Result<Bucket<'_>> {
        self.root_bucket().create_bucket_if_not_exists(name)
    }
    /// Delete a top-level bucket and everything in it.
    pub fn delete_bucket(&self, name: &[u8]) -> Result<()> {
        self.root_bucket().delete_bucket(name)
    }
    /// Names of the top-level buckets, in order.
    pub fn buckets(&self) -> BucketNames<'_> {
        self.root_bucket().buckets()
    }
}

/// Bucket paths: the one walker from the top of a transaction down a list of names.
impl Tx<'_> {
    /// The bucket at `path` (top-level name first), or `None` if a bucket on the way does not
    /// exist. An empty path is [`Error::InvalidBucketName`]; a name on the path that holds a
    /// value is [`Error::IncompatibleValue`].
    pub fn bucket_path<K: AsRef<[u8]>>(&self, path: &[K]) -> Result<Option<Bucket<'_>>> {
        let (first, rest) = path.split_first().ok_or(Error::InvalidBucketName)?;
        let Some(mut b) = self.bucket(first.as_ref())? else {
            return Ok(None);
        };
        for name in rest {
            match b.bucket(name.as_ref())? {
                Some(child) => b = child,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }

    /// The bucket at `path`, created (with its parents) where missing.
    pub fn create_bucket_path<K: AsRef<[u8]>>(&self, path: &[K]) -> Result<Bucket<'_>> {
        let (first, rest) = path.split_first().ok_or(Error::InvalidBucketName)?;
        let mut b = self.create_bucket_if_not_exists(first.as_ref())?;
        for name in rest {
            b = b.create_bucket_if_not_exists(name.as_ref())?;
        }
        Ok(b)
    }
}

/// Nested buckets from a cursor's position.
impl<'tx> Cursor<'tx> {
    /// The nested bucket `key` of the cursor's bucket, where `key` is normally the entry the
    /// cursor is at (one whose `value` is `None`). In a read transaction that entry is opened
    /// from the position itself, without looking `key` up again from the bucket's root: the way
    /// to walk a tree of buckets in one pass (bbolt's `b.Bucket(k)` inside `ForEach`).
    /// Elsewhere (a write transaction, another key) it is looked up, as by [`Bucket::bucket`].
    /// [`Error::IncompatibleValue`] if `key` holds a value, [`Error::BucketNotFound`] if
    /// nothing.
    pub fn open_bucket(&self, key: &[u8]) -> Result<Bucket<'tx>> {
        let (tx, parent, item) = self.position()?;
        let parent = Bucket::new(tx, parent);
        // The caller passes the key of the entry it just got, mostly: the same bytes.
        let same = |k: &[u8]| std::ptr::eq(k, key) || k == key;
        match item {
            Some((k, v, true)) if same(&k) => parent.child(key, v),
            Some((k, _, false)) if same(&k) => Err(Error::IncompatibleValue),
            // A write transaction, or a key other than the position's: look it up, and
            // charge a budget for the pages the lookup loaded.
            _ => {
                let before = tx.pages_loaded();
                let found = parent.bucket(key);
                if let Some(m) = self.meter() {
                    if !m.charge(tx.pages_loaded() - before) {
                        return Err(Error::BudgetExhausted {
                            resume: Bound::Included(key.to_vec()),
                        });
                    }
                }
                found?.ok_or(Error::BucketNotFound)
            }
        }
    }

    /// A cursor over the nested bucket `key` (opened as by [`Cursor::open_bucket`]) that
    /// shares this cursor's budget: a walk down a tree of buckets spends one [`crate::Budget`].
    pub fn nested(&self, key: &[u8]) -> Result<Cursor<'tx>> {
        let mut c = self.open_bucket(key)?.cursor();
        c.set_meter(self.meter())?;
        Ok(c)
    }
}
