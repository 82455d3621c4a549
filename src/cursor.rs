//! A bounded cursor over one bucket.
//!
//! The cursor keeps a stack of (node, index) pairs from the bucket's root to a leaf. The stack
//! never holds more than [`MAX_DEPTH`] entries and never the same page twice, and every loop
//! that moves across leaves has a step budget derived from the snapshot's page count, so no
//! bytes on disk can make it grow without bound or loop forever.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::Bound;
use std::rc::Rc;
use std::time::Instant;

use smallvec::SmallVec;

use crate::error::{Error, Result};
use crate::limits::MAX_DEPTH;
use crate::planted;
use crate::tx::access::LeafItem;
use crate::tx::BucketRef;
use crate::tx::{Loc, Tx};

/// Stack entries a cursor holds without a heap allocation: a tree of 4 levels holds about
/// 100 million keys of 24 bytes at 4 KiB pages.
const STACK_INLINE: usize = 4;

/// A limit on the work of a cursor or iterator, set with [`Cursor::set_budget`] or
/// [`crate::Iter::budget`]: how many pages it may load, how many bytes of keys and values it
/// may return, and until when it may run. What is not set is not limited.
///
/// The budget is counted from the moment it is set, over every call, the same way on every
/// path: each page the walk loads (seek, first, last, next, prev, the ends of a range, the
/// root of a nested bucket opened with [`Cursor::nested`]) costs one, whatever its size; each
/// entry returned costs its key's and value's bytes. A call that would go past the budget
/// returns [`Error::BudgetExhausted`] with the position to resume from, having loaded at most
/// one page beyond the budget; a call that starts with the byte budget spent or the deadline
/// passed loads nothing. (The bytes are checked before an entry is read, so the entry that
/// crosses the byte budget is still returned.)
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Budget, Db, Error};
/// let db = Db::in_memory()?;
/// db.update(|tx| {
///     let b = tx.create_bucket(b"logs")?;
///     for i in 0..1000u32 {
///         b.put(&i.to_be_bytes(), &[0u8; 100])?;
///     }
///     Ok::<_, Error>(())
/// })?;
/// let tx = db.begin_read()?;
/// let b = tx.bucket(b"logs")?.ok_or(Error::BucketNotFound)?;
/// let mut seen = 0;
/// let before = tx.pages_loaded();
/// // At most 10 pages of work: the walk stops with the position to go on from.
/// for kv in b.iter().budget(Budget::pages(10)) {
///     match kv {
///         Ok(_) => seen += 1,
///         Err(Error::BudgetExhausted { resume }) => {
///             println!("stopped after {seen} entries; resume from {resume:?}");
///             break;
///         }
///         Err(e) => return Err(e),
///     }
/// }
/// assert!(seen > 0 && seen < 1000);
/// assert!(tx.pages_loaded() - before <= 11); // the budget, and the one page that found it out
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Pages the walk may load (`None`: any number).
    pub pages: Option<u64>,
    /// Bytes of keys and values it may return (`None`: any number).
    pub bytes: Option<u64>,
    /// When it must stop (`None`: never). Checked at each page and at the start of each call.
    pub deadline: Option<Instant>,
}

impl Budget {
    /// No limit at all.
    pub fn unlimited() -> Budget {
        Budget::default()
    }
    /// At most `n` pages loaded.
    pub fn pages(n: u64) -> Budget {
        Budget {
            pages: Some(n),
            ..Budget::default()
        }
    }
    /// This budget, also limited to `n` bytes of keys and values returned.
    pub fn with_bytes(self, n: u64) -> Budget {
        Budget {
            bytes: Some(n),
            ..self
        }
    }
    /// This budget, also limited to run until `t`.
    pub fn with_deadline(self, t: Instant) -> Budget {
        Budget {
            deadline: Some(t),
            ..self
        }
    }
}

/// What a budgeted cursor or iterator has used of its [`Budget`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Pages loaded.
    pub pages: u64,
    /// Bytes of keys and values returned.
    pub bytes: u64,
}

/// A budget and what has been spent of it, shared by the cursors of one walk (an iterator's
/// two ends, a nested bucket's cursor).
#[derive(Debug)]
pub(crate) struct Meter {
    budget: Budget,
    pages: Cell<u64>,
    bytes: Cell<u64>,
}

impl Meter {
    pub(crate) fn new(budget: Budget) -> Rc<Meter> {
        Rc::new(Meter {
            budget,
            pages: Cell::new(0),
            bytes: Cell::new(0),
        })
    }

    fn late(&self) -> bool {
        self.budget.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// May a call start (bytes left, deadline not passed, not already a page over)? A call
    /// that starts with the page budget exactly spent may still load the one page more that
    /// finds it out.
    fn may_start(&self) -> bool {
        self.budget.bytes.is_none_or(|b| self.bytes.get() < b)
            && self.budget.pages.is_none_or(|p| self.pages.get() <= p)
            && !self.late()
    }

    /// Count a loaded page; false once the budget is past.
    fn page(&self) -> bool {
        let n = self.pages.get() + 1;
        self.pages.set(n);
        self.budget.pages.is_none_or(|p| n <= p) && !self.late()
    }

    /// Count `n` pages loaded outside a cursor's own descent (a lookup); false once the
    /// budget is past.
    pub(crate) fn charge(&self, n: u64) -> bool {
        let total = self.pages.get().saturating_add(n);
        self.pages.set(total);
        self.budget.pages.is_none_or(|p| total <= p) && !self.late()
    }

    fn returned(&self, n: usize) {
        self.bytes.set(self.bytes.get().saturating_add(n as u64));
    }

    pub(crate) fn usage(&self) -> Usage {
        Usage {
            pages: self.pages.get(),
            bytes: self.bytes.get(),
        }
    }
}

/// One position of a cursor: a key and its value, or `None` for a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'tx> {
    /// The key (borrowed from the mapped file in a read transaction).
    pub key: Cow<'tx, [u8]>,
    /// The value, or `None` when the key names a nested bucket.
    pub value: Option<Cow<'tx, [u8]>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Unset,
    At,
    AfterEnd,
    BeforeStart,
}

/// A bounded cursor over one bucket (keys and nested buckets, in key order).
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Db, Error};
/// let db = Db::in_memory()?;
/// db.update(|tx| {
///     let b = tx.create_bucket(b"containers")?;
///     b.put(b"c1", b"running")?;
///     b.put(b"c2", b"exited")?;
///     b.create_bucket(b"c3")?.put(b"label", b"db")?; // a nested bucket
///     Ok::<_, Error>(())
/// })?;
/// let tx = db.begin_read()?;
/// let b = tx.bucket(b"containers")?.ok_or(Error::BucketNotFound)?;
/// // bbolt: c := b.Cursor(); for k, v := c.Seek(p); k != nil; k, v = c.Next() { ... }
/// let mut c = b.cursor();
/// let mut e = c.seek(b"c")?;
/// let mut seen = Vec::new();
/// while let Some(entry) = e {
///     match entry.value {
///         Some(v) => seen.push((entry.key.into_owned(), v.into_owned())),
///         // bbolt: v == nil for a nested bucket; b.Bucket(k) opens it
///         None => assert!(c.open_bucket(&entry.key)?.get(b"label")?.is_some()),
///     }
///     e = c.next()?;
/// }
/// assert_eq!(seen.len(), 2);
/// # Ok(()) }
/// ```
///
/// In a write transaction the cursor survives changes to the bucket: it remembers its key and
/// re-seeks when the tree changed under it. After [`Cursor::delete`], `next` returns the entry
/// that followed the deleted one.
pub struct Cursor<'tx> {
    tx: &'tx Tx<'tx>,
    b: BucketRef<'tx>,
    stack: SmallVec<[(Loc<'tx>, usize); STACK_INLINE]>,
    state: State,
    epoch: u64,
    /// The key at the position: kept in write transactions (to re-seek after a change) and
    /// under a budget (to resume after [`Error::BudgetExhausted`]).
    cur_key: Vec<u8>,
    meter: Option<Rc<Meter>>,
    /// Re-seek to `cur_key` before the next move: a budgeted call ran out and left the stack
    /// half-moved.
    reseek: bool,
}

impl<'tx> Cursor<'tx> {
    pub(crate) fn new(tx: &'tx Tx<'tx>, b: BucketRef<'tx>) -> Cursor<'tx> {
        Cursor {
            tx,
            b,
            // Inline for the depths real trees have; deeper (up to MAX_DEPTH, checked in
            // `push`) spills to the heap. A metadata walk opens a cursor per small bucket, and
            // a heap stack cost each of them a malloc and a free (5% of the walk's instructions).
            stack: SmallVec::new(),
            state: State::Unset,
            epoch: 0,
            cur_key: Vec::new(),
            meter: None,
            reseek: false,
        }
    }

    /// Limit the work of this cursor's calls from now on (see [`Budget`]), replacing (and
    /// refilling) any budget set before. A cursor that ran out goes on from where it was.
    pub fn set_budget(&mut self, budget: Budget) -> Result<()> {
        self.set_meter(Some(Meter::new(budget)))
    }

    /// Remove the budget: calls are bounded only by the file's size, as without one.
    pub fn clear_budget(&mut self) {
        self.meter = None;
    }

    /// What this cursor has used of its budget (zeros without one).
    pub fn usage(&self) -> Usage {
        self.meter.as_ref().map_or(Usage::default(), |m| m.usage())
    }

    pub(crate) fn set_meter(&mut self, m: Option<Rc<Meter>>) -> Result<()> {
        // A read cursor keeps its key only under a budget: remember the position's now.
        if m.is_some() && self.state == State::At && !self.reseek && self.tx.write.is_none() {
            if let Some(&(loc, idx)) = self.stack.last() {
                let (k, _, _) = self.tx.loc_item(loc, idx)?;
                self.cur_key.clear();
                self.cur_key.extend_from_slice(&k);
            }
        }
        self.meter = m;
        Ok(())
    }

    pub(crate) fn meter(&self) -> Option<Rc<Meter>> {
        self.meter.clone()
    }

    /// Run one public move under the budget. `resume` is where the walk stands if the move
    /// runs out: the cursor is then left where it was before the move.
    #[inline]
    fn metered(
        &mut self,
        resume: impl FnOnce(&Self) -> Bound<Vec<u8>>,
        f: impl FnOnce(&mut Self) -> Result<Option<Entry<'tx>>>,
    ) -> Result<Option<Entry<'tx>>> {
        let Some(m) = self.meter.clone() else {
            return f(self);
        };
        let before = self.state;
        let out = if m.may_start() {
            f(self)
        } else {
            Err(Error::exhausted())
        };
        match out {
            Err(Error::BudgetExhausted { .. }) => {
                self.stack.clear();
                self.state = before;
                self.reseek = before == State::At;
                Err(Error::BudgetExhausted {
                    resume: resume(self),
                })
            }
            other => other,
        }
    }

    /// The position a forward or backward step from here has passed: after the current key
    /// (nothing returned yet: the start).
    fn resume_here(&self) -> Bound<Vec<u8>> {
        if self.state == State::At {
            Bound::Excluded(self.cur_key.clone())
        } else {
            Bound::Unbounded
        }
    }

    fn epoch_now(&self) -> u64 {
        self.tx
            .write
            .as_ref()
            .map_or(0, |w| w.try_borrow().map_or(u64::MAX, |w| w.epoch))
    }

    /// Upper bound on the steps of one cursor operation: every page or node once, twice over.
    fn budget(&self) -> u64 {
        let nodes = self
            .tx
            .write
            .as_ref()
            .map_or(0, |w| w.try_borrow().map_or(0, |w| w.nodes.len() as u64));
        2 * (self.tx.snap.meta.hwm + nodes) + 4 * MAX_DEPTH as u64
    }

    fn push(&mut self, loc: Loc<'tx>, idx: usize) -> Result<()> {
        if let (Some(m), Loc::Page(_)) = (&self.meter, loc) {
            if !m.page() {
                return Err(Error::exhausted());
            }
        }
        if let Some(id) = Tx::loc_page_id(loc) {
            if self.stack.len() >= MAX_DEPTH && !planted::UNBOUNDED_DESCENT {
                return Err(Error::too_deep(id));
            }
            if !planted::UNBOUNDED_DESCENT
                && self
                    .stack
                    .iter()
                    .any(|(l, _)| Tx::loc_page_id(*l) == Some(id))
            {
                return Err(Error::corrupt(
                    id,
                    "page appears twice on one root-to-leaf path (cycle)",
                ));
            }
        } else if self.stack.len() >= MAX_DEPTH {
            return Err(Error::arena_too_deep());
        }
        // A leaf page is checked against every separator on the path to it (the branch levels
        // were checked by `loc_child`), on every path in: seek, first, last, next, prev.
        if matches!(loc, Loc::Page(p) if p.leaf) {
            self.tx.check_leaf_fence(loc, &self.stack)?;
        }
        self.stack.push((loc, idx));
        Ok(())
    }

    /// From the current stack, move forward to the first valid leaf position at or after it.
    fn settle_forward(&mut self) -> Result<bool> {
        let budget = self.budget();
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > budget {
                return Err(Error::corrupt(
                    0,
                    "cursor step budget exhausted (cyclic or damaged tree)",
                ));
            }
            let Some(&(loc, idx)) = self.stack.last() else {
                return Ok(false);
            };
            if idx < self.tx.loc_len(loc) {
                if self.tx.loc_is_leaf(loc) {
                    return Ok(true);
                }
                let child = self.tx.loc_child(loc, idx)?;
                self.push(child, 0)?;
                continue;
            }
            self.stack.pop();
            match self.stack.last_mut() {
                Some(top) => top.1 += 1,
                None => return Ok(false),
            }
        }
    }

    /// From the current stack (index possibly one past a valid entry), move backward to the
    /// last valid leaf position at or before it.
    fn settle_backward(&mut self) -> Result<bool> {
        let budget = self.budget();
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > budget {
                return Err(Error::corrupt(
                    0,
                    "cursor step budget exhausted (cyclic or damaged tree)",
                ));
            }
            let Some(&(loc, idx)) = self.stack.last() else {
                return Ok(false);
            };
            let len = self.tx.loc_len(loc);
            if idx < len {
                if self.tx.loc_is_leaf(loc) {
                    return Ok(true);
                }
                let child = self.tx.loc_child(loc, idx)?;
                let clen = self.tx.loc_len(child);
                self.push(child, clen)?; // one past the end, stepped back below
                if let Some(top) = self.stack.last_mut() {
                    if top.1 > 0 {
                        top.1 -= 1;
                        continue;
                    }
                }
            }
            // Nothing valid here: step back in the parent.
            self.stack.pop();
            loop {
                match self.stack.last_mut() {
                    None => return Ok(false),
                    Some(top) if top.1 > 0 => {
                        top.1 -= 1;
                        break;
                    }
                    Some(_) => {
                        self.stack.pop();
                    }
                }
            }
        }
    }

    fn current(&mut self) -> Result<Option<Entry<'tx>>> {
        let Some(&(loc, idx)) = self.stack.last() else {
            return Ok(None);
        };
        let (k, v, bucket) = self.tx.loc_item(loc, idx)?;
        self.state = State::At;
        if self.tx.write.is_some() || self.meter.is_some() {
            self.cur_key.clear();
            self.cur_key.extend_from_slice(&k);
            self.epoch = self.epoch_now();
        }
        if let Some(m) = &self.meter {
            m.returned(k.len() + if bucket { 0 } else { v.len() });
        }
        Ok(Some(Entry {
            key: k,
            value: if bucket { None } else { Some(v) },
        }))
    }

    fn finish(&mut self, found: bool, end: State) -> Result<Option<Entry<'tx>>> {
        if found {
            self.current()
        } else {
            self.stack.clear();
            self.state = end;
            Ok(None)
        }
    }

    fn start(&mut self) -> Result<Option<Loc<'tx>>> {
        self.stack.clear();
        self.tx.root_loc(self.b)
    }

    /// The transaction, the bucket, and (in a read transaction, positioned at an entry) that
    /// entry as it is in the snapshot: what [`Cursor::open_bucket`] opens a nested bucket from.
    /// `None` in a write transaction, whose entries may have changed since the cursor moved.
    pub(crate) fn position(&self) -> Result<(&'tx Tx<'tx>, BucketRef<'tx>, Option<LeafItem<'tx>>)> {
        let item = match (self.state, self.stack.last(), &self.tx.write) {
            (State::At, Some(&(loc, idx)), None) => Some(self.tx.loc_item(loc, idx)?),
            _ => None,
        };
        Ok((self.tx, self.b, item))
    }

    /// Move to the first entry.
    pub fn first(&mut self) -> Result<Option<Entry<'tx>>> {
        if self.meter.is_none() {
            return self.first_raw();
        }
        self.metered(|_| Bound::Unbounded, |c| c.first_raw())
    }

    fn first_raw(&mut self) -> Result<Option<Entry<'tx>>> {
        let Some(root) = self.start()? else {
            return self.finish(false, State::AfterEnd);
        };
        // A bucket that is one leaf page (every inline bucket; a metadata walk opens a cursor
        // on thousands), without a budget: its first entry straight from the page, with no
        // path above it to check.
        if let (Loc::Page(p), None) = (root, &self.meter) {
            if p.leaf && p.count > 0 {
                self.stack.push((root, 0));
                return self.current();
            }
        }
        self.push(root, 0)?;
        let found = self.settle_forward()?;
        self.finish(found, State::AfterEnd)
    }

    /// Move to the last entry.
    pub fn last(&mut self) -> Result<Option<Entry<'tx>>> {
        if self.meter.is_none() {
            return self.last_raw();
        }
        self.metered(|_| Bound::Unbounded, |c| c.last_raw())
    }

    fn last_raw(&mut self) -> Result<Option<Entry<'tx>>> {
        let Some(root) = self.start()? else {
            return self.finish(false, State::BeforeStart);
        };
        let len = self.tx.loc_len(root);
        self.push(root, len)?;
        if let Some(top) = self.stack.last_mut() {
            if top.1 > 0 {
                top.1 -= 1;
            } else {
                return self.finish(false, State::BeforeStart);
            }
        }
        let found = self.settle_backward()?;
        self.finish(found, State::BeforeStart)
    }

    /// Position at `key`, without settling.
    fn seek_raw(&mut self, key: &[u8]) -> Result<bool> {
        let Some(mut loc) = self.start()? else {
            return Ok(false);
        };
        loop {
            if self.tx.loc_is_leaf(loc) {
                let (i, _) = self.tx.loc_search_leaf(loc, key)?;
                self.push(loc, i)?;
                return Ok(true);
            }
            let i = self.tx.loc_search_branch(loc, key)?;
            self.push(loc, i)?;
            loc = self.tx.loc_child(loc, i)?;
        }
    }

    /// Move to the first entry whose key is `>= key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'tx>>> {
        self.metered(
            |_| Bound::Included(key.to_vec()),
            |c| {
                let found = c.seek_raw(key)? && c.settle_forward()?;
                c.finish(found, State::AfterEnd)
            },
        )
    }

    /// If the tree changed since the cursor was positioned (write transactions only),
    /// re-seek to the remembered key. Returns whether the exact key is still there.
    #[inline]
    fn refresh(&mut self) -> Result<Option<bool>> {
        if !self.reseek && (self.tx.write.is_none() || self.epoch == self.epoch_now()) {
            return Ok(None);
        }
        self.reseek_now()
    }

    /// [`Cursor::refresh`]'s re-seek (rare: after a change, or a budget's exhaustion).
    #[inline(never)]
    fn reseek_now(&mut self) -> Result<Option<bool>> {
        self.reseek = false;
        let key = std::mem::take(&mut self.cur_key);
        let r = self.seek_raw(&key);
        self.cur_key = key;
        if !r? {
            return Ok(Some(false));
        }
        let found = self.settle_forward()?;
        if !found {
            self.stack.clear();
            self.state = State::AfterEnd;
            return Ok(Some(false));
        }
        let Some(&(loc, idx)) = self.stack.last() else {
            return Ok(Some(false));
        };
        let (k, _, _) = self.tx.loc_item(loc, idx)?;
        Ok(Some(k.as_ref() == self.cur_key.as_slice()))
    }

    /// Move to the next entry.
    #[allow(clippy::should_implement_trait)] // bbolt's name; fallible, so not an Iterator
    pub fn next(&mut self) -> Result<Option<Entry<'tx>>> {
        // Without a budget, straight to the move (through the metered closure, walk_cost ran
        // 0.8% more instructions).
        if self.meter.is_none() {
            return self.next_raw();
        }
        self.metered(Self::resume_here, |c| c.next_raw())
    }

    fn next_raw(&mut self) -> Result<Option<Entry<'tx>>> {
        match self.state {
            State::Unset | State::BeforeStart => return self.first_raw(),
            State::AfterEnd => return Ok(None),
            State::At => {}
        }
        // The common step of a read transaction: the next element of the same leaf page (the
        // page was checked when it was pushed; nothing can have changed under a reader), read
        // in place. Without a budget there is no key to keep and no byte to count, so the
        // entry is returned from here rather than through `current`.
        if self.tx.write.is_none() {
            let root = self.stack.len() == 1;
            if let Some((Loc::Page(p), idx)) = self.stack.last_mut() {
                if p.leaf && *idx + 1 < p.count {
                    *idx += 1;
                    if self.meter.is_none() {
                        let it = p.leaf_item(*idx)?;
                        return Ok(Some(Entry {
                            key: Cow::Borrowed(it.key),
                            value: (!it.bucket).then_some(Cow::Borrowed(it.value)),
                        }));
                    }
                    return self.current();
                }
                if p.leaf && root {
                    // Past the last entry of a bucket that is one leaf: the end, with no
                    // parent to step through (and no page loaded).
                    return self.finish(false, State::AfterEnd);
                }
            }
        }
        match self.refresh()? {
            Some(false) if self.state == State::AfterEnd => return Ok(None),
            Some(false) => return self.current(), // our key is gone: the successor is next
            _ => {}
        }
        if let Some(top) = self.stack.last_mut() {
            top.1 += 1;
        }
        let found = self.settle_forward()?;
        self.finish(found, State::AfterEnd)
    }

    /// Move to the previous entry.
    pub fn prev(&mut self) -> Result<Option<Entry<'tx>>> {
        if self.meter.is_none() {
            return self.prev_raw();
        }
        self.metered(Self::resume_here, |c| c.prev_raw())
    }

    fn prev_raw(&mut self) -> Result<Option<Entry<'tx>>> {
        match self.state {
            State::Unset | State::AfterEnd => return self.last_raw(),
            State::BeforeStart => return Ok(None),
            State::At => {}
        }
        if self.refresh()? == Some(false) && self.state == State::AfterEnd {
            return self.last_raw();
        }
        loop {
            match self.stack.last_mut() {
                None => return self.finish(false, State::BeforeStart),
                Some(top) if top.1 > 0 => {
                    top.1 -= 1;
                    break;
                }
                Some(_) => {
                    self.stack.pop();
                }
            }
        }
        let found = self.settle_backward()?;
        self.finish(found, State::BeforeStart)
    }

    /// Delete the entry under the cursor (write transactions; not a nested bucket).
    pub fn delete(&mut self) -> Result<()> {
        let BucketRef::Write(bid) = self.b else {
            return Err(Error::ReadOnly);
        };
        if self.state != State::At {
            return Err(Error::InvalidArgument(
                "cursor is not positioned on an entry".into(),
            ));
        }
        if self.refresh()? == Some(false) {
            return Err(Error::InvalidArgument(
                "the entry under the cursor was already removed".into(),
            ));
        }
        let Some(&(loc, idx)) = self.stack.last() else {
            return Err(Error::InvalidArgument(
                "cursor is not positioned on an entry".into(),
            ));
        };
        let (_, _, bucket) = self.tx.loc_item(loc, idx)?;
        if bucket {
            return Err(Error::IncompatibleValue);
        }
        let key = self.cur_key.clone();
        self.tx.delete_entry(bid, &key, false)
    }
}
