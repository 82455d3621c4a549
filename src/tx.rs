//! Transactions: a read transaction pins a snapshot; the write transaction also owns the
//! copy-on-write node arena and, at commit, writes the new pages, the free-space record and the
//! meta, then syncs once.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use crate::bucket::{BRef, Bucket, BucketNames};
use crate::db::{Db, DbInner, Snapshot, Writer, WriterGuard};
use crate::error::{Error, Result};
use crate::freelist::{
    encode_record, record_size, Record, RunSet, CHAIN_COMPACT, KIND_DELTA, KIND_FULL,
};
use crate::meta::Meta;
use crate::mvcc::{reusable_upto, Arc};
use crate::node::{
    branch_entry_size, leaf_entry_size, split_sizes, BranchEntry, Child, LeafEntry, Node, NodeId,
};
use crate::page::{cmp_keys, seal, set_overflow, BucketHeader, ChildRef, Page, PageType, HEADER};
use crate::MAX_DEPTH;

/// A place in the tree: a page of the snapshot or a node of the write arena.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    Page(Page<'a>),
    Node(NodeId),
}

/// A leaf element as read: key, value, and whether it is a nested bucket.
pub(crate) type Item<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, bool);

/// One bucket opened in the write transaction.
pub(crate) struct BState {
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
    pub buckets: Vec<BState>,
    pub index: HashMap<(usize, Vec<u8>), usize>,
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
pub struct Tx<'db> {
    pub(crate) db: &'db DbInner,
    pub(crate) snap: Arc<Snapshot>,
    pub(crate) write: Option<RefCell<WriteState>>,
    guard: Option<WriterGuard<'db>>,
    closed: Cell<bool>,
    /// Registered in the readers table (deregistered on drop).
    reader: bool,
}

impl<'db> Tx<'db> {
    pub(crate) fn new_read(db: &'db Db) -> Tx<'db> {
        let inner = &db.inner;
        let (snap, _) = inner.shared.begin_read();
        Tx {
            db: inner,
            snap,
            write: None,
            guard: None,
            closed: Cell::new(false),
            reader: true,
        }
    }

    pub(crate) fn new_write(db: &'db Db) -> Result<Tx<'db>> {
        let inner = &db.inner;
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
            buckets: vec![BState {
                parent: None,
                name: Vec::new(),
                root,
                seq: 0,
                dirty: false,
                deleted: false,
                depth: 0,
            }],
            index: HashMap::new(),
            freed: Vec::new(),
            epoch: 0,
        };
        Ok(Tx {
            db: inner,
            snap,
            write: Some(RefCell::new(ws)),
            guard: Some(guard),
            closed: Cell::new(false),
            reader: false,
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

    pub(crate) fn root_bucket(&self) -> Bucket<'_> {
        let r = if self.write.is_some() {
            BRef::Write(0)
        } else {
            BRef::Read {
                root: self.snap.meta.root,
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

    /// Height of the root bucket's tree.
    pub(crate) fn root_depth(&self) -> Result<u64> {
        let mut loc = match self.root_loc(BRef::Read {
            root: self.snap.meta.root,
            seq: 0,
        })? {
            Some(l) => l,
            None => return Ok(0),
        };
        let mut d = 1;
        while !self.loc_is_leaf(loc) {
            if d as usize > MAX_DEPTH {
                return Err(Error::corrupt(0, "tree deeper than the cursor bound"));
            }
            loc = self.loc_child(loc, 0)?;
            d += 1;
        }
        Ok(d)
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
            .ok_or_else(|| Error::corrupt(0, "high-water mark past the end of the file"))?;
        let mut metas = vec![0u8; 2 * p];
        let enc = meta.encode();
        let slot = (meta.txid % 2) as usize;
        metas[slot * p..slot * p + p].copy_from_slice(&enc);
        w.write_all(&metas)?;
        w.write_all(&bytes[2 * p..end])?;
        w.flush()?;
        Ok(end as u64)
    }

    // ---- page and node access ----------------------------------------------------------

    pub(crate) fn bytes(&self) -> &[u8] {
        self.snap.view.bytes()
    }

    pub(crate) fn load(&self, r: &ChildRef) -> Result<Page<'_>> {
        self.db.load_page(self.bytes(), self.snap.meta.hwm, r)
    }

    pub(crate) fn ws(&self) -> Result<std::cell::RefMut<'_, WriteState>> {
        match &self.write {
            Some(w) => w.try_borrow_mut().map_err(|_| {
                Error::InvalidArgument("re-entrant use of a write transaction".into())
            }),
            None => Err(Error::ReadOnly),
        }
    }

    pub(crate) fn root_loc(&self, b: BRef) -> Result<Option<Loc<'_>>> {
        match b {
            BRef::Read { root, .. } => {
                if root.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(Loc::Page(self.load(&root)?)))
                }
            }
            BRef::Write(id) => {
                let root = {
                    let w = self.ws()?;
                    let st = w.buckets.get(id).ok_or(Error::BucketNotFound)?;
                    if st.deleted {
                        return Err(Error::BucketNotFound);
                    }
                    st.root
                };
                match root {
                    None => Ok(None),
                    Some(Child::Node(n)) => Ok(Some(Loc::Node(n))),
                    Some(Child::Page(r)) => Ok(Some(Loc::Page(self.load(&r)?))),
                }
            }
        }
    }

    pub(crate) fn loc_len<'a>(&'a self, loc: Loc<'a>) -> usize {
        match loc {
            Loc::Page(p) => p.count,
            Loc::Node(n) => self
                .write
                .as_ref()
                .map_or(0, |w| w.borrow().nodes.get(n).map_or(0, |x| x.len())),
        }
    }

    pub(crate) fn loc_is_leaf<'a>(&'a self, loc: Loc<'a>) -> bool {
        match loc {
            Loc::Page(p) => p.leaf,
            Loc::Node(n) => self
                .write
                .as_ref()
                .is_none_or(|w| w.borrow().nodes.get(n).is_none_or(|x| x.is_leaf())),
        }
    }

    /// Child `i` of branch `loc`. A child page must sit exactly one level below its parent:
    /// a pointer to a page of another depth (forged or misdirected, checksums and all) is
    /// corruption here, before a single key of it is used.
    pub(crate) fn loc_child<'a>(&'a self, loc: Loc<'a>, i: usize) -> Result<Loc<'a>> {
        let (r, parent_level) = match loc {
            Loc::Page(p) => (p.child(i)?, p.level),
            Loc::Node(n) => {
                let (c, level) = {
                    let w = self.ws()?;
                    let c = match w.nodes.get(n) {
                        Some(Node::Branch(e)) => e.get(i).map(|e| e.child),
                        _ => None,
                    };
                    (c, w.levels.get(n).copied().unwrap_or(0))
                };
                match c {
                    Some(Child::Node(id)) => return Ok(Loc::Node(id)),
                    Some(Child::Page(r)) => (r, level),
                    None => return Err(Error::InvalidArgument("stale cursor position".into())),
                }
            }
        };
        let child = self.load(&r)?;
        check_level(&child, parent_level)?;
        Ok(Loc::Page(child))
    }

    /// Key `i` of a page or node (borrowed from a page, copied from a node).
    pub(crate) fn loc_key<'a>(&'a self, loc: Loc<'a>, i: usize) -> Result<Cow<'a, [u8]>> {
        match loc {
            Loc::Page(p) => Ok(Cow::Borrowed(p.key(i)?)),
            Loc::Node(n) => {
                let w = self.ws()?;
                match w.nodes.get(n) {
                    Some(node) if i < node.len() => Ok(Cow::Owned(node.key(i).to_vec())),
                    _ => Err(Error::InvalidArgument("stale cursor position".into())),
                }
            }
        }
    }

    /// Check a leaf reached through `path` (each branch above it and the child index taken)
    /// against the separators of that path (fence keys): every key of the leaf must be at
    /// least the key of each branch element it was reached through (index >= 1) and below the
    /// next element's key. A page that verifies but is reachable from the wrong place (a
    /// pointer aimed at a sibling's subtree, checksums forged up to the meta) is corruption
    /// naming it, so keys are never returned out of order or twice. Nodes of the write arena
    /// are ours and are not checked.
    pub(crate) fn check_leaf_fence<'a>(
        &'a self,
        leaf: Loc<'a>,
        path: &[(Loc<'a>, usize)],
    ) -> Result<()> {
        let Loc::Page(page) = leaf else {
            return Ok(());
        };
        let first = page.key(0)?;
        let last = page.key(page.count.saturating_sub(1))?;
        for &(loc, i) in path {
            if i >= 1 && cmp_keys(first, &self.loc_key(loc, i)?) == Ordering::Less {
                return Err(fence_error(page.id, "before", loc, i));
            }
            if i + 1 < self.loc_len(loc)
                && cmp_keys(last, &self.loc_key(loc, i + 1)?) != Ordering::Less
            {
                return Err(fence_error(page.id, "at or after", loc, i + 1));
            }
        }
        Ok(())
    }

    /// Key, value and bucket flag of leaf element `i`.
    pub(crate) fn loc_item<'a>(&'a self, loc: Loc<'a>, i: usize) -> Result<Item<'a>> {
        match loc {
            Loc::Page(p) => {
                let it = p.leaf_item(i)?;
                Ok((Cow::Borrowed(it.key), Cow::Borrowed(it.value), it.bucket))
            }
            Loc::Node(n) => {
                let w = self.ws()?;
                match w.nodes.get(n) {
                    Some(Node::Leaf(e)) => match e.get(i) {
                        Some(e) => Ok((
                            Cow::Owned(e.key.clone()),
                            Cow::Owned(e.value.clone()),
                            e.bucket,
                        )),
                        None => Err(Error::InvalidArgument("stale cursor position".into())),
                    },
                    _ => Err(Error::InvalidArgument("stale cursor position".into())),
                }
            }
        }
    }

    pub(crate) fn loc_search_branch<'a>(&'a self, loc: Loc<'a>, key: &[u8]) -> Result<usize> {
        match loc {
            Loc::Page(p) => p.search_branch(key),
            Loc::Node(n) => {
                let w = self.ws()?;
                match w.nodes.get(n) {
                    Some(Node::Branch(e)) => Ok(Node::search_branch(e, key)),
                    _ => Err(Error::InvalidArgument("stale cursor position".into())),
                }
            }
        }
    }

    pub(crate) fn loc_search_leaf<'a>(&'a self, loc: Loc<'a>, key: &[u8]) -> Result<(usize, bool)> {
        match loc {
            Loc::Page(p) => p.search_leaf(key),
            Loc::Node(n) => {
                let w = self.ws()?;
                match w.nodes.get(n) {
                    Some(Node::Leaf(e)) => Ok(Node::search_leaf(e, key)),
                    _ => Err(Error::InvalidArgument("stale cursor position".into())),
                }
            }
        }
    }

    pub(crate) fn loc_page_id(loc: Loc<'_>) -> Option<u64> {
        match loc {
            Loc::Page(p) => Some(p.id),
            Loc::Node(_) => None,
        }
    }

    /// Point lookup: the entry for `key` (key, value, is-bucket), descending at most
    /// [`MAX_DEPTH`] levels and never through the same page twice.
    pub(crate) fn lookup(&self, b: BRef, key: &[u8]) -> Result<Option<(Cow<'_, [u8]>, bool)>> {
        let mut loc = match self.root_loc(b)? {
            Some(l) => l,
            None => return Ok(None),
        };
        if let (Loc::Page(root), None) = (loc, &self.write) {
            return self.lookup_pages(root, key);
        }
        let mut path = [0u64; MAX_DEPTH + 1];
        // The tightest separators seen on the way down: the leaf's keys must lie in [lo, hi).
        let mut lo: Option<Cow<'_, [u8]>> = None;
        let mut hi: Option<Cow<'_, [u8]>> = None;
        for depth in 0..=MAX_DEPTH {
            if let Some(id) = Self::loc_page_id(loc) {
                if !cfg!(feature = "bug-unbounded-descent") && path[..depth].contains(&id) {
                    return Err(Error::corrupt(
                        id,
                        "page appears twice on one root-to-leaf path (cycle)",
                    ));
                }
                path[depth] = id;
            }
            if self.loc_is_leaf(loc) {
                if let Loc::Page(p) = loc {
                    check_range(&p, lo.as_deref(), hi.as_deref())?;
                }
                let (i, eq) = self.loc_search_leaf(loc, key)?;
                if !eq {
                    return Ok(None);
                }
                let (_, v, bucket) = self.loc_item(loc, i)?;
                return Ok(Some((v, bucket)));
            }
            let i = self.loc_search_branch(loc, key)?;
            let below = if i >= 1 {
                Some(self.loc_key(loc, i)?)
            } else {
                None
            };
            let above = if i + 1 < self.loc_len(loc) {
                Some(self.loc_key(loc, i + 1)?)
            } else {
                None
            };
            narrow(&mut lo, &mut hi, below, above);
            loc = self.loc_child(loc, i)?;
        }
        Err(Error::corrupt(
            Self::loc_page_id(loc).unwrap_or(0),
            format!("tree deeper than {MAX_DEPTH} levels"),
        ))
    }

    /// [`Tx::lookup`] in a read transaction, where every node is a page: the hot path of a
    /// point read. The separators around each child taken are carried down (the tightest seen)
    /// and a leaf that does not hold `key` must be consistent with them: the keys on either
    /// side of where `key` would be lie inside them. A found key needs no check: routing put
    /// `key` inside every separator on the path. So a pointer aimed at the wrong subtree (its
    /// checksums forged) is corruption, not a silently missing key, at the cost of two key
    /// comparisons per level and none of extra bytes read.
    fn lookup_pages<'a>(
        &'a self,
        mut page: Page<'a>,
        key: &[u8],
    ) -> Result<Option<(Cow<'a, [u8]>, bool)>> {
        let mut path = [0u64; MAX_DEPTH + 1];
        let mut lo: Option<&[u8]> = None;
        let mut hi: Option<&[u8]> = None;
        for depth in 0..=MAX_DEPTH {
            if !cfg!(feature = "bug-unbounded-descent") && path[..depth].contains(&page.id) {
                return Err(Error::corrupt(
                    page.id,
                    "page appears twice on one root-to-leaf path (cycle)",
                ));
            }
            path[depth] = page.id;
            if page.leaf {
                let (i, eq) = page.search_leaf(key)?;
                if eq {
                    let it = page.leaf_item(i)?;
                    return Ok(Some((Cow::Borrowed(it.value), it.bucket)));
                }
                let before = if i >= 1 { Some(page.key(i - 1)?) } else { None };
                let after = if i < page.count {
                    Some(page.key(i)?)
                } else {
                    None
                };
                let below_lo =
                    matches!((before, lo), (Some(k), Some(l)) if cmp_keys(k, l) == Ordering::Less);
                let past_hi =
                    matches!((after, hi), (Some(k), Some(h)) if cmp_keys(k, h) != Ordering::Less);
                if below_lo || past_hi {
                    return Err(Error::corrupt(
                        page.id,
                        "leaf holds keys outside its parent's separators (page reachable from the wrong place)",
                    ));
                }
                return Ok(None);
            }
            // `narrow`, written out: the generic form costs ~90 instructions per get here
            // (callgrind, examples/read_cost.rs).
            let (i, fence) = page.search_branch_bounds(key)?;
            if let Some(k) = fence.below {
                if lo.is_none_or(|l| cmp_keys(k, l) == Ordering::Greater) {
                    lo = Some(k);
                }
            }
            if let Some(k) = fence.above {
                if hi.is_none_or(|h| cmp_keys(k, h) == Ordering::Less) {
                    hi = Some(k);
                }
            }
            let child = self.load(&page.child(i)?)?;
            check_level(&child, page.level)?;
            page = child;
        }
        Err(Error::corrupt(
            page.id,
            format!("tree deeper than {MAX_DEPTH} levels"),
        ))
    }

    // ---- mutation ------------------------------------------------------------------------

    fn page_span_pages(&self, p: &Page<'_>) -> u64 {
        (p.data.len() / self.db.page_size) as u64
    }

    /// Copy a page into the arena (freeing the page), or return the node it already is.
    /// `path` holds the branch nodes above it with the child index taken in each (empty for a
    /// bucket's root): as on the read path, the page must sit one level below its parent and,
    /// if it is a leaf, inside the separators of the path.
    fn materialize(
        &self,
        w: &mut WriteState,
        c: Child,
        path: &[(NodeId, usize)],
    ) -> Result<NodeId> {
        match c {
            Child::Node(id) => Ok(id),
            Child::Page(r) => {
                let p = self.load(&r)?;
                if let Some(&(parent, _)) = path.last() {
                    check_level(&p, w.levels.get(parent).copied().unwrap_or(0))?;
                    if p.leaf {
                        check_node_fence(w, &p, path)?;
                    }
                }
                let node = Node::from_page(&p)?;
                w.freed.push((r.pgid, self.page_span_pages(&p)));
                Ok(push_node(w, node, p.level))
            }
        }
    }

    /// Serialized size of a child without copying it.
    fn child_size(&self, w: &WriteState, c: Child) -> Result<usize> {
        match c {
            Child::Node(id) => Ok(w.nodes[id].size()),
            Child::Page(r) => {
                let p = self.load(&r)?;
                let mut s = HEADER;
                for i in 0..p.count {
                    s += if p.leaf {
                        let it = p.leaf_item(i)?;
                        crate::page::LEAF_ELEM + it.key.len() + it.value.len()
                    } else {
                        crate::page::BRANCH_ELEM + p.key(i)?.len()
                    };
                }
                Ok(s)
            }
        }
    }

    fn set_child(w: &mut WriteState, parent: NodeId, i: usize, c: Child) {
        if let Node::Branch(e) = &mut w.nodes[parent] {
            e[i].child = c;
        }
    }

    /// Split node `id` if it outgrew a page; returns the new right-hand siblings.
    fn maybe_split(&self, w: &mut WriteState, id: NodeId, append: bool) -> Vec<NodeId> {
        let p = self.db.page_size;
        let node = &mut w.nodes[id];
        let size = node.size();
        let len = node.len();
        let min = if node.is_leaf() { 1 } else { 2 };
        if (size <= p && len <= crate::node::MAX_ELEMS) || len < 2 * min {
            return Vec::new();
        }
        let first_cap = if append {
            p
        } else {
            (size / 2).max(HEADER + 1)
        };
        let parts = match node {
            Node::Leaf(e) => split_sizes(
                &e.iter().map(leaf_entry_size).collect::<Vec<_>>(),
                first_cap,
                p,
                min,
            ),
            Node::Branch(e) => split_sizes(
                &e.iter().map(branch_entry_size).collect::<Vec<_>>(),
                first_cap,
                p,
                min,
            ),
        };
        if parts.len() < 2 {
            return Vec::new();
        }
        let mut new_nodes = Vec::new();
        match node {
            Node::Leaf(e) => {
                let mut rest = e.split_off(parts[0]);
                for &n in &parts[1..] {
                    let tail = rest.split_off(n);
                    new_nodes.push(Node::Leaf(std::mem::replace(&mut rest, tail)));
                }
            }
            Node::Branch(e) => {
                let mut rest = e.split_off(parts[0]);
                for &n in &parts[1..] {
                    let tail = rest.split_off(n);
                    new_nodes.push(Node::Branch(std::mem::replace(&mut rest, tail)));
                }
            }
        }
        let level = w.levels.get(id).copied().unwrap_or(0);
        let mut ids = Vec::new();
        for n in new_nodes {
            ids.push(push_node(w, n, level));
        }
        ids
    }

    fn put_rec(
        &self,
        w: &mut WriteState,
        id: NodeId,
        e: LeafEntry,
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<Vec<NodeId>> {
        let depth = path.len();
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                0,
                format!("tree deeper than {MAX_DEPTH} levels"),
            ));
        }
        let (i, child) = match &mut w.nodes[id] {
            Node::Leaf(entries) => {
                let (i, eq) = Node::search_leaf(entries, &e.key);
                if eq {
                    if entries[i].bucket != e.bucket {
                        return Err(Error::IncompatibleValue);
                    }
                    entries[i].value = e.value;
                } else {
                    entries.insert(i, e);
                }
                let append = i + 1 == entries.len();
                return Ok(self.maybe_split(w, id, append));
            }
            Node::Branch(entries) => {
                let i = Node::search_branch(entries, &e.key);
                // Keep every separator a lower bound of its subtree, the first one included,
                // so that splits below produce separators in order.
                if i == 0 && e.key < entries[0].key {
                    entries[0].key = e.key.clone();
                }
                (i, entries[i].child)
            }
        };
        path.push((id, i));
        let cid = self.materialize(w, child, path);
        let parts = cid.and_then(|cid| {
            Self::set_child(w, id, i, Child::Node(cid));
            self.put_rec(w, cid, e, path)
        });
        path.pop();
        let parts = parts?;
        let n_parts = parts.len();
        let mut ins = Vec::with_capacity(n_parts);
        for pid in parts {
            ins.push(BranchEntry {
                key: w.nodes[pid].key(0).to_vec(),
                child: Child::Node(pid),
            });
        }
        let append = if let Node::Branch(entries) = &mut w.nodes[id] {
            let at = i + 1;
            entries.splice(at..at, ins);
            i + n_parts + 1 == entries.len()
        } else {
            false
        };
        if n_parts == 0 {
            return Ok(Vec::new());
        }
        Ok(self.maybe_split(w, id, append))
    }

    fn check_bucket(w: &WriteState, bid: usize) -> Result<()> {
        match w.buckets.get(bid) {
            Some(b) if !b.deleted => Ok(()),
            _ => Err(Error::BucketNotFound),
        }
    }

    /// Insert or replace an entry in bucket `bid`.
    pub(crate) fn put_entry(
        &self,
        bid: usize,
        key: &[u8],
        value: Vec<u8>,
        bucket: bool,
    ) -> Result<()> {
        let mut guard = self.ws()?;
        let w = &mut *guard;
        Self::check_bucket(w, bid)?;
        w.epoch += 1;
        w.buckets[bid].dirty = true;
        let e = LeafEntry {
            key: key.to_vec(),
            value,
            bucket,
        };
        let root = match w.buckets[bid].root {
            None => {
                let id = push_node(w, Node::Leaf(vec![e]), 0);
                w.buckets[bid].root = Some(Child::Node(id));
                return Ok(());
            }
            Some(c) => c,
        };
        let id = self.materialize(w, root, &[])?;
        w.buckets[bid].root = Some(Child::Node(id));
        let mut path = std::mem::take(&mut w.path);
        path.clear();
        let parts = self.put_rec(w, id, e, &mut path);
        w.path = path;
        let parts = parts?;
        if !parts.is_empty() {
            let mut entries = vec![BranchEntry {
                key: w.nodes[id].key(0).to_vec(),
                child: Child::Node(id),
            }];
            for pid in parts {
                entries.push(BranchEntry {
                    key: w.nodes[pid].key(0).to_vec(),
                    child: Child::Node(pid),
                });
            }
            let level = w.levels.get(id).copied().unwrap_or(0).saturating_add(1);
            let root = push_node(w, Node::Branch(entries), level);
            w.buckets[bid].root = Some(Child::Node(root));
        }
        Ok(())
    }

    /// Copy the path from bucket `bid`'s root to the leaf that holds `key` into the arena, so
    /// that commit rewrites those pages into the lowest free pages (incremental compaction).
    /// Returns how many pages were copied.
    pub(crate) fn touch(&self, bid: usize, key: &[u8]) -> Result<usize> {
        let mut guard = self.ws()?;
        let w = &mut *guard;
        Self::check_bucket(w, bid)?;
        let Some(root) = w.buckets[bid].root else {
            return Ok(0);
        };
        let before = w.nodes.len();
        w.epoch += 1;
        w.buckets[bid].dirty = true;
        let mut cur = self.materialize(w, root, &[])?;
        w.buckets[bid].root = Some(Child::Node(cur));
        let mut path = Vec::with_capacity(MAX_DEPTH + 1);
        for _ in 0..MAX_DEPTH {
            let (i, child) = match &w.nodes[cur] {
                Node::Leaf(_) => break,
                Node::Branch(e) => {
                    let i = Node::search_branch(e, key);
                    (i, e[i].child)
                }
            };
            path.push((cur, i));
            let cid = self.materialize(w, child, &path)?;
            Self::set_child(w, cur, i, Child::Node(cid));
            cur = cid;
        }
        Ok(w.nodes.len() - before)
    }

    /// Pages free now and pending (write transactions; zeros for a read transaction).
    pub(crate) fn free_counts(&self) -> (u64, u64) {
        self.guard
            .as_ref()
            .map_or((0, 0), |g| (g.free.free.pages(), g.free.pending_pages()))
    }

    fn del_rec(
        &self,
        w: &mut WriteState,
        id: NodeId,
        key: &[u8],
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<()> {
        let depth = path.len();
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                0,
                format!("tree deeper than {MAX_DEPTH} levels"),
            ));
        }
        let (i, child) = match &mut w.nodes[id] {
            Node::Leaf(entries) => {
                let (i, eq) = Node::search_leaf(entries, key);
                if eq {
                    entries.remove(i);
                }
                return Ok(());
            }
            Node::Branch(entries) => {
                let i = Node::search_branch(entries, key);
                (i, entries[i].child)
            }
        };
        path.push((id, i));
        let r = self.materialize(w, child, path).and_then(|cid| {
            Self::set_child(w, id, i, Child::Node(cid));
            self.del_rec(w, cid, key, path)
        });
        path.pop();
        r?;
        self.rebalance(w, id, i, path)
    }

    /// After a delete below child `i` of branch `parent`: drop it if empty, or merge it with
    /// a sibling if it fell under a quarter page and the two fit in one page.
    fn rebalance(
        &self,
        w: &mut WriteState,
        parent: NodeId,
        i: usize,
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<()> {
        let p = self.db.page_size;
        let (plen, c) = match &w.nodes[parent] {
            Node::Branch(e) => (e.len(), e[i].child),
            Node::Leaf(_) => return Ok(()),
        };
        let cid = match c {
            Child::Node(id) => id,
            Child::Page(_) => return Ok(()),
        };
        let (clen, csize, cleaf) = {
            let n = &w.nodes[cid];
            (n.len(), n.size(), n.is_leaf())
        };
        if clen == 0 {
            if let Node::Branch(e) = &mut w.nodes[parent] {
                e.remove(i);
            }
            return Ok(());
        }
        if csize >= p / 4 && (cleaf || clen >= 2) {
            return Ok(());
        }
        let sib = if i > 0 {
            i - 1
        } else if i + 1 < plen {
            i + 1
        } else {
            return Ok(());
        };
        let (l, r) = if sib < i { (sib, i) } else { (i, sib) };
        let (lc, rc, rkey) = match &w.nodes[parent] {
            Node::Branch(e) => (e[l].child, e[r].child, e[r].key.clone()),
            Node::Leaf(_) => return Ok(()),
        };
        let lsize = self.child_size(w, lc)?;
        let rsize = self.child_size(w, rc)?;
        if lsize + rsize - HEADER > p {
            return Ok(());
        }
        path.push((parent, l));
        let lid = self.materialize(w, lc, path);
        path.pop();
        let lid = lid?;
        Self::set_child(w, parent, l, Child::Node(lid));
        path.push((parent, r));
        let rid = self.materialize(w, rc, path);
        path.pop();
        let rid = rid?;
        Self::set_child(w, parent, r, Child::Node(rid));
        if w.nodes[lid].is_leaf() != w.nodes[rid].is_leaf() {
            return Err(Error::corrupt(0, "sibling pages at different tree levels"));
        }
        if w.nodes[lid].len() + w.nodes[rid].len() > crate::node::MAX_ELEMS {
            return Ok(());
        }
        let right = std::mem::replace(&mut w.nodes[rid], Node::Leaf(Vec::new()));
        match (&mut w.nodes[lid], right) {
            (Node::Leaf(le), Node::Leaf(re)) => le.extend(re),
            (Node::Branch(le), Node::Branch(mut re)) => {
                if let Some(first) = re.first_mut() {
                    first.key = rkey;
                }
                le.extend(re);
            }
            _ => return Err(Error::corrupt(0, "sibling pages at different tree levels")),
        }
        if let Node::Branch(e) = &mut w.nodes[parent] {
            e.remove(r);
        }
        Ok(())
    }

    /// Remove `key` from bucket `bid` (which must hold it).
    pub(crate) fn delete_entry(&self, bid: usize, key: &[u8]) -> Result<()> {
        let mut guard = self.ws()?;
        let w = &mut *guard;
        Self::check_bucket(w, bid)?;
        let root = match w.buckets[bid].root {
            None => return Ok(()),
            Some(c) => c,
        };
        w.epoch += 1;
        w.buckets[bid].dirty = true;
        let id = self.materialize(w, root, &[])?;
        let mut path = std::mem::take(&mut w.path);
        path.clear();
        let r = self.del_rec(w, id, key, &mut path);
        w.path = path;
        r?;
        // Collapse the root: an empty leaf means an empty tree; a branch with one child is
        // replaced by that child.
        let mut cur = Child::Node(id);
        let mut new_root = Some(cur);
        for _ in 0..=MAX_DEPTH {
            let Child::Node(n) = cur else { break };
            match &w.nodes[n] {
                Node::Leaf(e) if e.is_empty() => {
                    new_root = None;
                    break;
                }
                Node::Branch(e) if e.len() == 1 => {
                    cur = e[0].child;
                    new_root = Some(cur);
                }
                Node::Branch(e) if e.is_empty() => {
                    new_root = None;
                    break;
                }
                _ => break,
            }
        }
        w.buckets[bid].root = new_root;
        Ok(())
    }

    /// The state id of nested bucket `name` of `parent`, opening it if needed.
    pub(crate) fn open_child(
        &self,
        parent: usize,
        name: &[u8],
        header: BucketHeader,
    ) -> Result<usize> {
        let mut guard = self.ws()?;
        let w = &mut *guard;
        if let Some(&id) = w.index.get(&(parent, name.to_vec())) {
            if !w.buckets[id].deleted {
                return Ok(id);
            }
        }
        let depth = w.buckets[parent].depth + 1;
        w.buckets.push(BState {
            parent: Some(parent),
            name: name.to_vec(),
            root: if header.root.is_empty() {
                None
            } else {
                Some(Child::Page(header.root))
            },
            seq: header.sequence,
            dirty: false,
            deleted: false,
            depth,
        });
        let id = w.buckets.len() - 1;
        w.index.insert((parent, name.to_vec()), id);
        Ok(id)
    }

    /// Free every page of bucket `bid`'s tree and of the buckets nested in it, and mark their
    /// open handles deleted. Iterative, each page at most once.
    pub(crate) fn free_bucket(&self, bid: usize) -> Result<()> {
        let hwm = self.snap.meta.hwm;
        let mut guard = self.ws()?;
        let w = &mut *guard;
        let mut seen = std::collections::HashSet::new();
        // Each item is a subtree and the open bucket state that owns it, if any: a bucket
        // reached only through an on-disk header has no state, and neither has anything
        // nested in it.
        let mut stack: Vec<(Child, Option<usize>)> = Vec::new();
        let mut buckets = vec![bid];
        loop {
            let Some((c, owner)) = stack.pop() else {
                let Some(b) = buckets.pop() else { break };
                w.buckets[b].deleted = true;
                w.epoch += 1;
                stack.extend(w.buckets[b].root.map(|r| (r, Some(b))));
                continue;
            };
            // Where a nested bucket's subtree continues: its open state, or its on-disk root.
            let nested = |w: &WriteState,
                          name: &[u8],
                          value: &[u8],
                          page: u64|
             -> Result<Option<(Option<usize>, Option<Child>)>> {
                let h = BucketHeader::decode(value, page)?;
                Ok(match owner.and_then(|b| w.index.get(&(b, name.to_vec()))) {
                    Some(&cid) if !w.buckets[cid].deleted => Some((Some(cid), None)),
                    _ if !h.root.is_empty() => Some((None, Some(Child::Page(h.root)))),
                    _ => None,
                })
            };
            match c {
                Child::Page(r) => {
                    if !seen.insert(r.pgid) || seen.len() as u64 > hwm {
                        return Err(Error::corrupt(
                            r.pgid,
                            "page reachable twice while freeing a bucket",
                        ));
                    }
                    let p = self.load(&r)?;
                    w.freed.push((r.pgid, self.page_span_pages(&p)));
                    for i in 0..p.count {
                        if p.leaf {
                            let it = p.leaf_item(i)?;
                            if it.bucket {
                                match nested(w, it.key, it.value, r.pgid)? {
                                    Some((Some(cid), _)) => buckets.push(cid),
                                    Some((None, Some(c))) => stack.push((c, None)),
                                    _ => {}
                                }
                            }
                        } else {
                            stack.push((Child::Page(p.child(i)?), owner));
                        }
                    }
                }
                Child::Node(id) => match &w.nodes[id] {
                    Node::Branch(e) => {
                        let children: Vec<Child> = e.iter().map(|e| e.child).collect();
                        stack.extend(children.into_iter().map(|c| (c, owner)));
                    }
                    Node::Leaf(e) => {
                        let items: Vec<(Vec<u8>, Vec<u8>)> = e
                            .iter()
                            .filter(|e| e.bucket)
                            .map(|e| (e.key.clone(), e.value.clone()))
                            .collect();
                        for (k, v) in items {
                            match nested(w, &k, &v, 0)? {
                                Some((Some(cid), _)) => buckets.push(cid),
                                Some((None, Some(c))) => stack.push((c, None)),
                                _ => {}
                            }
                        }
                    }
                },
            }
        }
        Ok(())
    }

    // ---- commit --------------------------------------------------------------------------

    /// Commit: write the changed pages and the free-space record into free pages, then the
    /// meta, then sync once. On any I/O error the handle is poisoned.
    pub fn commit(mut self) -> Result<()> {
        if self.closed.get() {
            return Err(Error::TxClosed);
        }
        self.closed.set(true);
        let mut guard = match self.guard.take() {
            Some(g) => g,
            None => return Ok(()), // a read transaction: nothing to do
        };
        let dirty = self.ws()?.buckets.iter().any(|b| b.dirty);
        if !dirty {
            return Ok(());
        }
        let db = self.db;
        let mut c = Commit {
            tx: &self,
            wr: &mut guard,
            txid: self.snap.meta.txid + 1,
            hwm: self.snap.meta.hwm,
            allocated: Vec::new(),
            io_started: false,
            deferred: Vec::new(),
            run: None,
        };
        let res = c.run();
        let io = c.io_started;
        match res {
            Ok(meta) => {
                let view = match db.storage.view() {
                    Ok(v) => v,
                    Err(e) => {
                        guard.poisoned =
                            Some(format!("remapping after commit {} failed: {e}", meta.txid));
                        return Err(e.into());
                    }
                };
                db.shared.publish(Snapshot { meta, view }, meta.txid);
                db.counters.commits.fetch_add(1, Relaxed);
                db.counters.confirmed.store(guard.confirmed, Relaxed);
                if guard.last_synced == meta.txid {
                    if let Some(sig) = &db.confirm_signal {
                        sig.committed();
                    }
                }
                let r = shrink(db, &mut guard, &meta);
                db.counters.publish(&guard);
                if let Err(e) = r {
                    guard.poisoned = Some(format!(
                        "shrinking the file after commit {} failed: {e}",
                        meta.txid
                    ));
                    return Err(e);
                }
                Ok(())
            }
            Err(e) => {
                // Once anything reached the storage (or the free-space state changed), the
                // in-memory state can no longer be trusted to match the file: refuse writes
                // until the file is reopened.
                if io || !matches!(e, Error::IncompatibleValue | Error::BucketNotFound) {
                    guard.poisoned =
                        Some(format!("commit {} failed: {e}", self.snap.meta.txid + 1));
                }
                Err(e)
            }
        }
    }
}

/// Truncate the file when far more of it is free at the end than in use, and no reader of
/// an older snapshot could still look past the new end.
fn shrink(db: &DbInner, wr: &mut Writer, meta: &Meta) -> Result<()> {
    let p = db.page_size as u64;
    let target = meta.hwm * p;
    if wr.file_len <= target || wr.file_len - target < 32 * p || target > (wr.file_len - 32 * p) / 2
    {
        return Ok(());
    }
    truncate_to_hwm(db, wr, meta).map(|_| ())
}

/// Truncate the file to the high-water mark of `meta` (the newest commit) unless a reader of
/// an older snapshot is live. Returns whether it did.
pub(crate) fn truncate_to_hwm(db: &DbInner, wr: &mut Writer, meta: &Meta) -> Result<bool> {
    let target = meta.hwm * db.page_size as u64;
    if wr.file_len == target {
        return Ok(false);
    }
    let mut result = Ok(());
    let shrunk = db.shared.publish_if_no_older_readers(meta.txid, || {
        let r = db.storage.set_len(target).and_then(|_| db.storage.view());
        match r {
            Ok(view) => Some(Snapshot { meta: *meta, view }),
            Err(e) => {
                result = Err(e.into());
                None
            }
        }
    });
    if shrunk {
        wr.file_len = target;
    }
    result.map(|_| shrunk)
}

struct Commit<'t, 'db> {
    tx: &'t Tx<'db>,
    wr: &'t mut Writer,
    txid: u64,
    hwm: u64,
    /// Runs taken from the free set by this commit.
    allocated: Vec<(u64, u64)>,
    io_started: bool,
    /// With the planted bug `bug-meta-before-data`: page writes held back until after the meta.
    deferred: Vec<(u64, Vec<u8>)>,
    /// Adjacent page writes gathered into one (at most [`WRITE_RUN`] bytes).
    run: Option<(u64, Vec<u8>)>,
}

/// Largest single coalesced write.
const WRITE_RUN: usize = 1 << 20;

impl Commit<'_, '_> {
    fn db(&self) -> &DbInner {
        self.tx.db
    }

    /// Lower the high-water mark over free pages at the end of the file.
    fn shrink_hwm(&mut self) {
        while let Some((s, _)) = self.wr.free.free.take_tail(self.hwm) {
            self.hwm = s;
        }
    }

    fn alloc(&mut self, n: u64) -> u64 {
        if let Some(s) = self.wr.free.free.alloc(n) {
            self.allocated.push((s, n));
            return s;
        }
        let s = self.hwm;
        self.hwm += n;
        s
    }

    fn write_span(&mut self, pgid: u64, buf: Vec<u8>) -> Result<()> {
        let p = self.db().page_size as u64;
        let n = buf.len() as u64 / p;
        for id in pgid..pgid + n {
            self.db().verified.clear(id);
        }
        let off = pgid * p;
        let end = off + buf.len() as u64;
        self.io_started = true;
        if end > self.wr.file_len {
            let cur = self.wr.file_len;
            let step = cur.clamp(16 * p, 64 << 20);
            let new = end.max(cur + step).div_ceil(p) * p;
            self.db().storage.set_len(new)?;
            self.wr.file_len = new;
        }
        let c = &self.db().counters;
        c.pages_written.fetch_add(n, Relaxed);
        c.bytes_written.fetch_add(buf.len() as u64, Relaxed);
        if cfg!(feature = "bug-meta-before-data") {
            self.deferred.push((off, buf));
            return Ok(());
        }
        // Coalesce adjacent spans into one write (a bulk load allocates them in order).
        if let Some((roff, rbuf)) = &mut self.run {
            if *roff + rbuf.len() as u64 == off && rbuf.len() + buf.len() <= WRITE_RUN {
                rbuf.extend_from_slice(&buf);
                return Ok(());
            }
        }
        self.flush_run()?;
        self.run = Some((off, buf));
        Ok(())
    }

    /// Issue the pending coalesced write, if any.
    fn flush_run(&mut self) -> Result<()> {
        if let Some((off, buf)) = self.run.take() {
            self.db().storage.write_at(off, &buf)?;
        }
        Ok(())
    }

    /// Write the dirty subtree under `c` bottom-up and return the pointer to its new root.
    fn spill(&mut self, c: Child, depth: usize) -> Result<ChildRef> {
        let id = match c {
            Child::Page(r) => return Ok(r),
            Child::Node(id) => id,
        };
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                0,
                format!("tree deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mut node = std::mem::replace(&mut self.tx.ws()?.nodes[id], Node::Leaf(Vec::new()));
        if let Node::Branch(entries) = &mut node {
            for e in entries.iter_mut() {
                let r = self.spill(e.child, depth + 1)?;
                e.child = Child::Page(r);
            }
        }
        let p = self.db().page_size;
        let level = self.tx.ws()?.levels.get(id).copied().unwrap_or(0);
        debug_assert_eq!(node.is_leaf(), level == 0, "node {id} at level {level}");
        let pages = node.size().div_ceil(p).max(1) as u64;
        let pgid = self.alloc(pages);
        let (buf, crc) = node.serialize(p, pgid, self.txid, level);
        self.write_span(pgid, buf)?;
        Ok(ChildRef {
            pgid,
            txid: self.txid,
            crc,
        })
    }

    fn run(&mut self) -> Result<Meta> {
        let tx = self.tx;
        // Spill buckets deepest first; each nested bucket's new header goes into its parent,
        // which makes the parent dirty before its own turn.
        let (max_depth, n_buckets) = {
            let w = tx.ws()?;
            (
                w.buckets.iter().map(|b| b.depth).max().unwrap_or(0),
                w.buckets.len(),
            )
        };
        let mut root_ref = tx.snap.meta.root;
        for d in (0..=max_depth).rev() {
            for bid in 0..n_buckets {
                let (root, parent, name, seq) = {
                    let w = tx.ws()?;
                    let b = &w.buckets[bid];
                    if b.depth != d || !b.dirty || b.deleted {
                        continue;
                    }
                    (b.root, b.parent, b.name.clone(), b.seq)
                };
                let new_root = match root {
                    None => ChildRef::EMPTY,
                    Some(c) => self.spill(c, 0)?,
                };
                tx.ws()?.buckets[bid].root =
                    (!new_root.is_empty()).then_some(Child::Page(new_root));
                match parent {
                    None => root_ref = new_root,
                    Some(parent) => {
                        let header = BucketHeader {
                            root: new_root,
                            sequence: seq,
                        };
                        tx.put_entry(parent, &name, header.encode().to_vec(), true)?;
                    }
                }
            }
        }
        let freed = std::mem::take(&mut tx.ws()?.freed);
        let fl_ref = self.write_freelist(freed)?;
        let meta = Meta {
            page_size: self.db().page_size as u32,
            confirmation: false,
            txid: self.txid,
            durable_base: self.wr.last_synced,
            hwm: self.hwm,
            root: root_ref,
            freelist: fl_ref,
        };
        let storage = self.db().storage.clone();
        let p = self.db().page_size as u64;
        let sync = !self.db().opts.no_sync;
        self.io_started = true;
        self.flush_run()?;
        storage.write_at((self.txid % 2) * p, &meta.encode())?;
        if cfg!(feature = "bug-meta-before-data") {
            self.sync_once(&storage)?;
            for (off, buf) in std::mem::take(&mut self.deferred) {
                storage.write_at(off, &buf)?;
            }
        }
        if sync {
            self.sync_once(&storage)?;
            self.wr.last_synced = self.txid;
            self.wr.unsynced = false;
            // This meta is on disk now: what it records as durable is confirmed.
            self.wr.confirmed = self.wr.confirmed.max(meta.durable_base);
        } else {
            self.wr.unsynced = true;
        }
        Ok(meta)
    }

    fn sync_once(&mut self, storage: &Arc<dyn crate::Storage>) -> Result<()> {
        if cfg!(feature = "bug-ack-before-sync") {
            return Ok(());
        }
        self.db().counters.syncs.fetch_add(1, Relaxed);
        match storage.sync_data() {
            Ok(()) => Ok(()),
            Err(e) => {
                if cfg!(feature = "bug-retry-failed-sync") {
                    self.db().counters.syncs.fetch_add(1, Relaxed);
                    return storage.sync_data().map_err(Error::from);
                }
                Err(e.into())
            }
        }
    }

    /// Write this commit's freelist record: a delta against the previous record, or a full
    /// record when the chain is long or a full record is as small as a delta.
    fn write_freelist(&mut self, mut freed: Vec<(u64, u64)>) -> Result<ChildRef> {
        let p = self.db().page_size;
        let prev_chain = self.wr.free.chain.clone();
        let pending_runs: usize = self.wr.free.pending.values().map(|v| v.len()).sum();
        let full_runs_bound =
            self.wr.free.free.runs() + pending_runs + freed.len() + prev_chain.len() + 1;
        let delta_runs_bound = freed.len() + self.allocated.len() + 1;
        let full = prev_chain.is_empty()
            || prev_chain.len() as u32 >= CHAIN_COMPACT
            || record_size(full_runs_bound) <= p
            || full_runs_bound <= delta_runs_bound;
        let rec = if full {
            for &(r, n) in &prev_chain {
                freed.push((r.pgid, n));
            }
            let pages = record_size(full_runs_bound).div_ceil(p) as u64;
            let at = self.alloc(pages);
            self.shrink_hwm();
            let mut set: RunSet = self.wr.free.free.clone();
            for &(s, l) in self.wr.free.pending.values().flatten().chain(freed.iter()) {
                if !set.insert(s, l) {
                    return Err(Error::corrupt(s, format!("page run {s}+{l} freed twice")));
                }
            }
            set.clip(self.hwm);
            (
                Record {
                    kind: KIND_FULL,
                    chain_len: 1,
                    hwm: self.hwm,
                    prev: ChildRef::EMPTY,
                    add: set.iter().collect(),
                    remove: Vec::new(),
                },
                at,
                pages,
            )
        } else {
            let pages = record_size(delta_runs_bound).div_ceil(p) as u64;
            let at = self.alloc(pages);
            self.shrink_hwm();
            (
                Record {
                    kind: KIND_DELTA,
                    chain_len: prev_chain.len() as u32 + 1,
                    hwm: self.hwm,
                    prev: prev_chain[0].0,
                    add: freed.clone(),
                    remove: self.allocated.clone(),
                },
                at,
                pages,
            )
        };
        let (rec, at, pages) = rec;
        let mut buf = vec![0u8; pages as usize * p];
        set_overflow(&mut buf, (pages - 1) as u32);
        encode_record(&mut buf, &rec);
        let crc = seal(&mut buf, PageType::Freelist, 0, 0, at, self.txid);
        self.write_span(at, buf)?;
        let r = ChildRef {
            pgid: at,
            txid: self.txid,
            crc,
        };
        if full {
            self.wr.free.chain = vec![(r, pages)];
        } else {
            self.wr.free.chain.insert(0, (r, pages));
        }
        self.wr.free.pending.insert(self.txid, freed);
        Ok(r)
    }
}

/// Add a node at height `level` to the arena.
fn push_node(w: &mut WriteState, node: Node, level: u8) -> NodeId {
    w.nodes.push(node);
    w.levels.push(level);
    debug_assert_eq!(w.nodes.len(), w.levels.len());
    w.nodes.len() - 1
}

/// A page reached from a parent at `parent_level` must be one level below it.
fn check_level(child: &Page<'_>, parent_level: u8) -> Result<()> {
    if child.level.checked_add(1) != Some(parent_level) {
        return Err(Error::corrupt(
            child.id,
            format!(
                "page at level {}, its parent is at level {parent_level} (pointer to the wrong depth)",
                child.level
            ),
        ));
    }
    Ok(())
}

/// Narrow the range `[lo, hi)` a descent has carried so far by the separators around the child
/// it takes (`below`: the key it was reached through, `above`: the next element's key), keeping
/// the tightest of each: a forged pointer can make a deeper separator looser than one above it.
fn narrow<K: AsRef<[u8]>>(
    lo: &mut Option<K>,
    hi: &mut Option<K>,
    below: Option<K>,
    above: Option<K>,
) {
    if let Some(k) = below {
        if lo
            .as_ref()
            .is_none_or(|l| cmp_keys(k.as_ref(), l.as_ref()) == Ordering::Greater)
        {
            *lo = Some(k);
        }
    }
    if let Some(k) = above {
        if hi
            .as_ref()
            .is_none_or(|h| cmp_keys(k.as_ref(), h.as_ref()) == Ordering::Less)
        {
            *hi = Some(k);
        }
    }
}

/// A leaf page's keys must lie in `[lo, hi)`.
fn check_range(page: &Page<'_>, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<()> {
    if let Some(lo) = lo {
        if cmp_keys(page.key(0)?, lo) == Ordering::Less {
            return Err(Error::corrupt(
                page.id,
                "leaf holds a key below its parent's separator (page reachable from the wrong place)",
            ));
        }
    }
    if let Some(hi) = hi {
        let last = page.key(page.count.saturating_sub(1))?;
        if cmp_keys(last, hi) != Ordering::Less {
            return Err(Error::corrupt(
                page.id,
                "leaf holds a key at or after the next separator (page reachable from the wrong place)",
            ));
        }
    }
    Ok(())
}

fn fence_error(page: u64, side: &str, parent: Loc<'_>, i: usize) -> Error {
    let from = match parent {
        Loc::Page(p) => format!("branch page {} element {i}", p.id),
        Loc::Node(_) => format!("element {i} of a changed branch"),
    };
    Error::corrupt(
        page,
        format!(
            "leaf holds a key {side} the separator of {from} (page reachable from the wrong place)"
        ),
    )
}

/// [`Tx::check_leaf_fence`] for the write path, whose branches above are arena nodes.
fn check_node_fence(w: &WriteState, page: &Page<'_>, path: &[(NodeId, usize)]) -> Result<()> {
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    for &(n, i) in path {
        let Some(node) = w.nodes.get(n) else { continue };
        let below = (i >= 1 && i < node.len()).then(|| node.key(i));
        let above = (i + 1 < node.len()).then(|| node.key(i + 1));
        narrow(&mut lo, &mut hi, below, above);
    }
    check_range(page, lo, hi)
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.reader {
            self.reader = false;
            self.db.shared.end_read(self.snap.meta.txid);
        }
        self.closed.set(true);
    }
}
