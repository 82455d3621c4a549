//! A bounded cursor over one bucket.
//!
//! The cursor keeps a stack of (node, index) pairs from the bucket's root to a leaf. The stack
//! never holds more than [`MAX_DEPTH`] entries and never the same page twice, and every loop
//! that moves across leaves has a step budget derived from the snapshot's page count, so no
//! bytes on disk can make it grow without bound or loop forever.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::limits::MAX_DEPTH;
use crate::planted;
use crate::tx::access::LeafItem;
use crate::tx::BucketRef;
use crate::tx::{Loc, Tx};

/// One position of a cursor: a key and its value, or `None` for a nested bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'tx> {
    pub key: Cow<'tx, [u8]>,
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
/// In a write transaction the cursor survives changes to the bucket: it remembers its key and
/// re-seeks when the tree changed under it. After [`Cursor::delete`], `next` returns the entry
/// that followed the deleted one.
pub struct Cursor<'tx> {
    tx: &'tx Tx<'tx>,
    b: BucketRef<'tx>,
    stack: Vec<(Loc<'tx>, usize)>,
    state: State,
    epoch: u64,
    cur_key: Vec<u8>,
}

impl<'tx> Cursor<'tx> {
    pub(crate) fn new(tx: &'tx Tx<'tx>, b: BucketRef<'tx>) -> Cursor<'tx> {
        Cursor {
            tx,
            b,
            // Allocated on the first push, at the depth the tree needs (the bound is checked
            // in `push`): an iterator's unused back cursor, and the cursors of the many small
            // buckets a metadata walk opens, never pay for MAX_DEPTH + 1 entries (2.3 KB).
            stack: Vec::new(),
            state: State::Unset,
            epoch: 0,
            cur_key: Vec::new(),
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
        if self.tx.write.is_some() {
            self.cur_key.clear();
            self.cur_key.extend_from_slice(&k);
            self.epoch = self.epoch_now();
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
        let Some(root) = self.start()? else {
            return self.finish(false, State::AfterEnd);
        };
        self.push(root, 0)?;
        let found = self.settle_forward()?;
        self.finish(found, State::AfterEnd)
    }

    /// Move to the last entry.
    pub fn last(&mut self) -> Result<Option<Entry<'tx>>> {
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
        let found = self.seek_raw(key)? && self.settle_forward()?;
        self.finish(found, State::AfterEnd)
    }

    /// If the tree changed since the cursor was positioned (write transactions only),
    /// re-seek to the remembered key. Returns whether the exact key is still there.
    fn refresh(&mut self) -> Result<Option<bool>> {
        if self.tx.write.is_none() || self.epoch == self.epoch_now() {
            return Ok(None);
        }
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
        match self.state {
            State::Unset | State::BeforeStart => return self.first(),
            State::AfterEnd => return Ok(None),
            State::At => {}
        }
        // The common step of a read transaction: the next element of the same leaf page (the
        // page was checked when it was pushed; nothing can have changed under a reader).
        if self.tx.write.is_none() {
            if let Some((Loc::Page(p), idx)) = self.stack.last_mut() {
                if p.leaf && *idx + 1 < p.count {
                    *idx += 1;
                    return self.current();
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
        match self.state {
            State::Unset | State::AfterEnd => return self.last(),
            State::BeforeStart => return Ok(None),
            State::At => {}
        }
        if self.refresh()? == Some(false) && self.state == State::AfterEnd {
            return self.last();
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
        self.tx.delete_entry(bid, &key)
    }
}
