//! Reading the tree inside a transaction: a place in it ([`Loc`]) is a page of the snapshot or
//! a node of the write arena, and every accessor here works on both, checking each page
//! against the pointer and the level that led to it.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::format::page::{cmp_keys, BucketRoot, Page};
use crate::limits::MAX_DEPTH;
use crate::tx::fence::{check_level, fence_error};
use crate::tx::handle::Tx;
use crate::tx::node::{Child, Node, NodeId};

/// A place in the tree: a page of the snapshot or a node of the write arena.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    Page(Page<'a>),
    Node(NodeId),
}

/// A leaf element as read: key, value, and whether it is a nested bucket.
pub(crate) type LeafItem<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>, bool);

/// How a bucket is reached: by its header (read transactions) or by its state in the write
/// transaction.
#[derive(Clone, Copy)]
pub(crate) enum BucketRef<'a> {
    Read { root: BucketRoot<'a>, seq: u64 },
    Write(usize),
}

impl<'db> Tx<'db> {
    /// Height of the root bucket's tree.
    pub(crate) fn root_depth(&self) -> Result<u64> {
        let mut loc = match self.root_loc(BucketRef::Read {
            root: BucketRoot::Tree(self.snap.meta.root),
            seq: 0,
        })? {
            Some(l) => l,
            None => return Ok(0),
        };
        let mut d = 1;
        while !self.loc_is_leaf(loc) {
            if d as usize > MAX_DEPTH {
                return Err(Error::too_deep(
                    Self::loc_page_id(loc).unwrap_or(self.snap.meta.root.pgid),
                ));
            }
            loc = self.loc_child(loc, 0)?;
            d += 1;
        }
        Ok(d)
    }

    pub(crate) fn root_loc<'a>(&'a self, b: BucketRef<'a>) -> Result<Option<Loc<'a>>> {
        match b {
            BucketRef::Read { root, .. } => match root {
                BucketRoot::Tree(r) if r.is_empty() => Ok(None),
                BucketRoot::Tree(r) => Ok(Some(Loc::Page(self.load(&r)?))),
                BucketRoot::Inline(page) => Ok(Some(Loc::Page(page))),
            },
            BucketRef::Write(id) => {
                let root = {
                    let w = self.write_state()?;
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
                    let w = self.write_state()?;
                    let c = match w.nodes.get(n) {
                        Some(Node::Branch(e)) => e.get(i).map(|e| e.child),
                        _ => None,
                    };
                    (c, w.levels.get(n).copied().unwrap_or(0))
                };
                match c {
                    Some(Child::Node(id)) => return Ok(Loc::Node(id)),
                    Some(Child::Page(r)) => (r, level),
                    None => return Err(Error::stale_position()),
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
                let w = self.write_state()?;
                match w.nodes.get(n) {
                    Some(node) if i < node.len() => Ok(Cow::Owned(node.key(i).to_vec())),
                    _ => Err(Error::stale_position()),
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
        if path.is_empty() {
            return Ok(()); // a root leaf: no separators (the walk of small buckets, mostly)
        }
        let first = page.key(0)?;
        let last = page.key(page.count.saturating_sub(1))?;
        for &(loc, i) in path {
            if i >= 1 && cmp_keys(first, &self.loc_key(loc, i)?) == Ordering::Less {
                return Err(fence_error(page.id, "before", Self::loc_page_id(loc), i));
            }
            if i + 1 < self.loc_len(loc)
                && cmp_keys(last, &self.loc_key(loc, i + 1)?) != Ordering::Less
            {
                return Err(fence_error(
                    page.id,
                    "at or after",
                    Self::loc_page_id(loc),
                    i + 1,
                ));
            }
        }
        Ok(())
    }

    /// Key, value and bucket flag of leaf element `i`. Inline for a page (a cursor step reads
    /// one per entry); a node's copy is out of line.
    #[inline]
    pub(crate) fn loc_item<'a>(&'a self, loc: Loc<'a>, i: usize) -> Result<LeafItem<'a>> {
        match loc {
            Loc::Page(p) => {
                let it = p.leaf_item(i)?;
                Ok((Cow::Borrowed(it.key), Cow::Borrowed(it.value), it.bucket))
            }
            Loc::Node(n) => self.node_item(n, i),
        }
    }

    #[inline(never)]
    fn node_item<'a>(&'a self, n: NodeId, i: usize) -> Result<LeafItem<'a>> {
        let w = self.write_state()?;
        match w.nodes.get(n) {
            Some(Node::Leaf(e)) if i < e.len() => Ok((
                Cow::Owned(e.key(i).to_vec()),
                Cow::Owned(e.value(i).to_vec()),
                e.bucket(i),
            )),
            _ => Err(Error::stale_position()),
        }
    }

    pub(crate) fn loc_search_branch<'a>(&'a self, loc: Loc<'a>, key: &[u8]) -> Result<usize> {
        match loc {
            Loc::Page(p) => p.search_branch(key),
            Loc::Node(n) => {
                let w = self.write_state()?;
                match w.nodes.get(n) {
                    Some(Node::Branch(e)) => Ok(Node::search_branch(e, key)),
                    _ => Err(Error::stale_position()),
                }
            }
        }
    }

    pub(crate) fn loc_search_leaf<'a>(&'a self, loc: Loc<'a>, key: &[u8]) -> Result<(usize, bool)> {
        match loc {
            Loc::Page(p) => p.search_leaf(key),
            Loc::Node(n) => {
                let w = self.write_state()?;
                match w.nodes.get(n) {
                    Some(Node::Leaf(e)) => Ok(e.search(key)),
                    _ => Err(Error::stale_position()),
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
}
