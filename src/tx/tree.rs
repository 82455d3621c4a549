//! B+tree mutation in the write arena: copy-on-write of the pages on a path, insert and split,
//! delete and merge, nested bucket states, and freeing a deleted bucket's pages.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::format::page::{BucketRoot, BucketValue, Page, BRANCH_ELEM, HEADER};
use crate::limits::MAX_DEPTH;
use crate::tx::fence::{check_level, check_range, narrow};
use crate::tx::handle::{BucketState, Tx, WriteState};
use crate::tx::node::{
    branch_entry_size, shortest_separator, split_sizes, BranchEntry, Child, LeafNode, Node, NodeId,
};

impl Tx<'_> {
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
                        crate::format::page::LEAF_ELEM + it.key.len() + it.value.len()
                    } else {
                        crate::format::page::BRANCH_ELEM + p.key(i)?.len()
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
        if (size <= p && len <= crate::tx::node::MAX_ELEMS) || len < 2 * min {
            return Vec::new();
        }
        let first_cap = if append {
            p
        } else {
            (size / 2).max(HEADER + 1)
        };
        let parts = match node {
            Node::Leaf(e) => split_sizes(
                &(0..e.len()).map(|i| e.entry_size(i)).collect::<Vec<_>>(),
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
        e: &NewEntry<'_>,
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<Vec<NodeId>> {
        let depth = path.len();
        if depth > MAX_DEPTH {
            return Err(Error::arena_too_deep());
        }
        let (i, child) = match &mut w.nodes[id] {
            Node::Leaf(leaf) => {
                let (i, eq) = leaf.search(e.key);
                if eq {
                    if leaf.bucket(i) != e.bucket {
                        return Err(Error::IncompatibleValue);
                    }
                    leaf.set_value(i, e.value);
                } else {
                    leaf.insert(i, e.key, e.value, e.bucket);
                }
                let append = i + 1 == leaf.len();
                return Ok(self.maybe_split(w, id, append));
            }
            Node::Branch(entries) => {
                let i = Node::search_branch(entries, e.key);
                // Keep every separator a lower bound of its subtree, the first one included,
                // so that splits below produce separators in order.
                if i == 0
                    && crate::format::page::cmp_keys(e.key, entries[0].key())
                        == std::cmp::Ordering::Less
                {
                    entries[0].set_key(e.key);
                }
                (i, entries[i].child)
            }
        };
        path.push((id, i));
        let cid = self.materialize(w, child, path);
        let parts = cid.and_then(|cid| {
            Self::set_child(w, id, i, Child::Node(cid));
            self.put_rec(w, cid, e, path).map(|parts| (cid, parts))
        });
        path.pop();
        let (cid, parts) = parts?;
        let n_parts = parts.len();
        let ins = right_entries(w, cid, &parts);
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
        value: &[u8],
        bucket: bool,
    ) -> Result<()> {
        let mut guard = self.write_state()?;
        let w = &mut *guard;
        Self::check_bucket(w, bid)?;
        w.epoch += 1;
        w.buckets[bid].dirty = true;
        let e = NewEntry { key, value, bucket };
        let root = match w.buckets[bid].root {
            None => {
                let id = push_node(w, Node::Leaf(LeafNode::single(key, value, bucket)), 0);
                w.buckets[bid].root = Some(Child::Node(id));
                return Ok(());
            }
            Some(c) => c,
        };
        let id = self.materialize(w, root, &[])?;
        w.buckets[bid].root = Some(Child::Node(id));
        let mut path = std::mem::take(&mut w.path);
        path.clear();
        let parts = self.put_rec(w, id, &e, &mut path);
        w.path = path;
        let parts = parts?;
        if !parts.is_empty() {
            let mut entries = vec![BranchEntry::new(w.nodes[id].key(0), Child::Node(id))];
            entries.extend(right_entries(w, id, &parts));
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
        let mut guard = self.write_state()?;
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

    /// The read-only half of a delete: find `key` (an entry whose bucket flag is `bucket`) under
    /// `root` without copying anything, recording in `idx` the child index taken at each level
    /// and the key's index in its leaf, and appending its value to `value` if given. Returns
    /// where it is, or `None` if the key is absent. Pages are checked as a
    /// lookup checks them: one level below their parent, and a leaf inside the separators of
    /// its path (so a misdirected leaf is corruption, not a key silently "absent").
    fn find_for_delete(
        &self,
        w: &WriteState,
        root: Child,
        key: &[u8],
        bucket: bool,
        idx: &mut [usize; MAX_DEPTH + 1],
        value: Option<&mut Vec<u8>>,
    ) -> Result<Option<Found>> {
        let mut cur = root;
        let mut lo: Option<&[u8]> = None;
        let mut hi: Option<&[u8]> = None;
        let mut parent_level: Option<u8> = None;
        for (depth, slot) in idx.iter_mut().enumerate() {
            match cur {
                Child::Node(id) => match w.nodes.get(id) {
                    Some(Node::Leaf(leaf)) => {
                        let (i, eq) = leaf.search(key);
                        if !eq {
                            return Ok(None);
                        }
                        if leaf.bucket(i) != bucket {
                            return Err(Error::IncompatibleValue);
                        }
                        if let Some(v) = value {
                            v.extend_from_slice(leaf.value(i));
                        }
                        *slot = i;
                        return Ok(Some(Found { depth, page: 0 }));
                    }
                    Some(Node::Branch(e)) => {
                        let i = Node::search_branch(e, key);
                        let below = (i >= 1).then(|| e[i].key());
                        let above = e.get(i + 1).map(|x| x.key());
                        narrow(&mut lo, &mut hi, below, above);
                        parent_level = w.levels.get(id).copied();
                        *slot = i;
                        cur = e
                            .get(i)
                            .map(|x| x.child)
                            .ok_or_else(|| Error::bug("branch node with no elements"))?;
                    }
                    None => return Err(Error::bug("arena node id out of range")),
                },
                Child::Page(r) => {
                    let p = self.load(&r)?;
                    if let Some(l) = parent_level {
                        check_level(&p, l)?;
                    }
                    if p.leaf {
                        check_range(&p, lo, hi)?;
                        let (i, eq) = p.search_leaf(key)?;
                        if !eq {
                            return Ok(None);
                        }
                        let item = p.leaf_item(i)?;
                        if item.bucket != bucket {
                            return Err(Error::IncompatibleValue);
                        }
                        if let Some(v) = value {
                            v.extend_from_slice(item.value);
                        }
                        *slot = i;
                        return Ok(Some(Found {
                            depth,
                            page: r.pgid,
                        }));
                    }
                    let (i, fence) = p.search_branch_bounds(key)?;
                    narrow(&mut lo, &mut hi, fence.below, fence.above);
                    parent_level = Some(p.level);
                    *slot = i;
                    cur = Child::Page(p.child(i)?);
                }
            }
        }
        Err(match cur {
            Child::Page(r) => Error::too_deep(r.pgid),
            Child::Node(_) => Error::arena_too_deep(),
        })
    }

    /// The writing half of a delete: copy the path that [`Tx::find_for_delete`] recorded in
    /// `idx` into the arena, remove the key from its leaf, and rebalance on the way up.
    fn del_rec(
        &self,
        w: &mut WriteState,
        id: NodeId,
        key: &[u8],
        idx: &[usize],
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<()> {
        let depth = path.len();
        let Some(&i) = idx.get(depth) else {
            return Err(Error::bug("delete path deeper than its search"));
        };
        let (i, child) = match &mut w.nodes[id] {
            Node::Leaf(leaf) => {
                // The same tree the search read (copying a page does not change it).
                if i >= leaf.len() || leaf.key(i) != key {
                    return Err(Error::bug("delete path does not lead to its key"));
                }
                leaf.remove(i);
                return Ok(());
            }
            Node::Branch(entries) => match entries.get(i) {
                Some(e) => (i, e.child),
                None => return Err(Error::bug("delete path leaves its branch")),
            },
        };
        path.push((id, i));
        let r = self.materialize(w, child, path).and_then(|cid| {
            Self::set_child(w, id, i, Child::Node(cid));
            self.del_rec(w, cid, key, idx, path)
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
        // A leaf's size is kept; a branch's is a sum over its entries, so a branch with enough
        // entries to pass a quarter page on their elements alone is not summed (a removal
        // asked this at every level).
        let (clen, big) = {
            let n = &w.nodes[cid];
            let clen = n.len();
            let big = match n {
                Node::Leaf(_) => n.size() >= p / 4,
                Node::Branch(_) => {
                    clen >= 2 && (HEADER + clen * BRANCH_ELEM >= p / 4 || n.size() >= p / 4)
                }
            };
            (clen, big)
        };
        if clen == 0 {
            if let Node::Branch(e) = &mut w.nodes[parent] {
                e.remove(i);
            }
            return Ok(());
        }
        if big {
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
        self.merge_siblings(w, parent, l, r, path)
    }

    /// Merge children `l` and `r = l + 1` of branch `parent` into `l` if the two fit in one
    /// page (and in [`crate::tx::node::MAX_ELEMS`] elements); otherwise leave them.
    fn merge_siblings(
        &self,
        w: &mut WriteState,
        parent: NodeId,
        l: usize,
        r: usize,
        path: &mut Vec<(NodeId, usize)>,
    ) -> Result<()> {
        let p = self.db.page_size;
        let (lc, rc, rkey) = match &w.nodes[parent] {
            Node::Branch(e) => (e[l].child, e[r].child, e[r].key().to_vec()),
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
            return Err(Error::bug("sibling nodes at different tree levels"));
        }
        if w.nodes[lid].len() + w.nodes[rid].len() > crate::tx::node::MAX_ELEMS {
            return Ok(());
        }
        let right = std::mem::replace(&mut w.nodes[rid], Node::Leaf(LeafNode::default()));
        match (&mut w.nodes[lid], right) {
            (Node::Leaf(le), Node::Leaf(re)) => le.append(re),
            (Node::Branch(le), Node::Branch(mut re)) => {
                if let Some(first) = re.first_mut() {
                    first.set_key(&rkey);
                }
                le.extend(re);
            }
            _ => return Err(Error::bug("sibling nodes at different tree levels")),
        }
        if let Node::Branch(e) = &mut w.nodes[parent] {
            e.remove(r);
        }
        Ok(())
    }

    /// Remove `key` from bucket `bid`: nothing changes (no page is copied) if it is absent,
    /// and [`Error::IncompatibleValue`] if it is a nested bucket and `bucket` is false (or the
    /// other way round). One search per level: a
    /// read-only descent finds the key and records the path, then the path is copied along
    /// the recorded indices (a lookup followed by a second descent cost a removal 30% more).
    pub(crate) fn delete_entry(&self, bid: usize, key: &[u8], bucket: bool) -> Result<()> {
        let mut guard = self.write_state()?;
        let w = &mut *guard;
        Self::check_bucket(w, bid)?;
        let Some(root) = w.buckets[bid].root else {
            return Ok(());
        };
        let mut idx = [0usize; MAX_DEPTH + 1];
        let Some(found) = self.find_for_delete(w, root, key, bucket, &mut idx, None)? else {
            return Ok(());
        };
        self.remove_found(w, bid, key, &idx[..=found.depth])
    }

    /// Delete nested bucket `name` of bucket `bid` and everything in it
    /// ([`Error::BucketNotFound`] if there is none, [`Error::IncompatibleValue`] if `name` holds
    /// a value), with one search per level as [`Tx::delete_entry`]. A bucket that is not open in
    /// this transaction and is inline or empty is only removed from its parent: it has no page
    /// to free, and nothing nested in it has one or can be open (docs/FORMAT.md, section 5).
    /// Opening it first to free nothing was a fifth of the metadata delete row's instructions.
    pub(crate) fn delete_bucket_entry(&self, bid: usize, name: &[u8]) -> Result<()> {
        let mut idx = [0usize; MAX_DEPTH + 1];
        let mut value = Vec::new();
        let (found, open) = {
            let guard = self.write_state()?;
            let w = &*guard;
            Self::check_bucket(w, bid)?;
            let root = w.buckets[bid].root.ok_or(Error::BucketNotFound)?;
            let found = self.find_for_delete(w, root, name, true, &mut idx, Some(&mut value))?;
            let open = w.index.get(bid, name).filter(|&c| !w.buckets[c].deleted);
            (found.ok_or(Error::BucketNotFound)?, open)
        };
        let cid = match open {
            Some(cid) => Some(cid),
            None => {
                let h = BucketValue::decode(&value, found.page, self.db.page_size)?;
                match h.root {
                    BucketRoot::Tree(r) if !r.is_empty() => Some(self.open_child(bid, name, h)?),
                    BucketRoot::Tree(_) | BucketRoot::Inline(_) => None,
                }
            }
        };
        if let Some(cid) = cid {
            // Freeing changes no node of `bid`'s tree, so the recorded path still leads to
            // `name` (`del_rec` checks that it does).
            self.free_bucket(cid)?;
        }
        let mut guard = self.write_state()?;
        self.remove_found(&mut guard, bid, name, &idx[..=found.depth])
    }

    /// The writing half of a delete: copy the path `idx` that [`Tx::find_for_delete`] recorded
    /// for `key` in bucket `bid`'s tree into the arena, remove the key, and collapse the root.
    fn remove_found(
        &self,
        w: &mut WriteState,
        bid: usize,
        key: &[u8],
        idx: &[usize],
    ) -> Result<()> {
        let root = w.buckets[bid]
            .root
            .ok_or_else(|| Error::bug("a found key's bucket lost its root"))?;
        w.epoch += 1;
        w.buckets[bid].dirty = true;
        let id = self.materialize(w, root, &[])?;
        let mut path = std::mem::take(&mut w.path);
        path.clear();
        let r = self.del_rec(w, id, key, idx, &mut path);
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
        header: BucketValue<'_>,
    ) -> Result<usize> {
        let mut guard = self.write_state()?;
        let w = &mut *guard;
        if let Some(id) = w.index.get(parent, name) {
            if !w.buckets[id].deleted {
                return Ok(id);
            }
        }
        let depth = w.buckets[parent].depth + 1;
        let root = match header.root {
            BucketRoot::Tree(r) if r.is_empty() => None,
            BucketRoot::Tree(r) => Some(Child::Page(r)),
            // An inline bucket has no page to copy on write: its one leaf goes into the arena
            // now (it is at most a quarter page), and nothing is freed.
            BucketRoot::Inline(page) => Some(Child::Node(push_node(w, Node::from_page(&page)?, 0))),
        };
        w.buckets.push(BucketState {
            parent: Some(parent),
            name: name.to_vec(),
            root,
            seq: header.sequence,
            dirty: false,
            deleted: false,
            depth,
        });
        let id = w.buckets.len() - 1;
        w.index.insert(parent, name, id);
        Ok(id)
    }

    /// Free every page of bucket `bid`'s tree and of the buckets nested in it, and mark their
    /// open handles deleted. Iterative, each page at most once (at most the high-water mark).
    pub(crate) fn free_bucket(&self, bid: usize) -> Result<()> {
        let mut guard = self.write_state()?;
        let w = &mut *guard;
        let mut walk = FreeWalk {
            hwm: self.snap.meta.hwm,
            page_size: self.db.page_size,
            seen: HashSet::new(),
            stack: Vec::new(),
            buckets: vec![bid],
        };
        loop {
            let Some((c, owner)) = walk.stack.pop() else {
                let Some(b) = walk.buckets.pop() else { break };
                w.buckets[b].deleted = true;
                w.epoch += 1;
                walk.stack.extend(w.buckets[b].root.map(|r| (r, Some(b))));
                continue;
            };
            match c {
                Child::Page(r) => {
                    if !walk.seen.insert(r.pgid) || walk.seen.len() as u64 > walk.hwm {
                        let d = "page reachable twice while freeing a bucket";
                        return Err(Error::corrupt(r.pgid, d));
                    }
                    let p = self.load(&r)?;
                    w.freed.push((r.pgid, self.page_span_pages(&p)));
                    for i in 0..p.count {
                        if !p.leaf {
                            walk.stack.push((Child::Page(p.child(i)?), owner));
                            continue;
                        }
                        let it = p.leaf_item(i)?;
                        if it.bucket {
                            walk.nested(w, owner, it.key, it.value, r.pgid)?;
                        }
                    }
                }
                Child::Node(id) => match &w.nodes[id] {
                    Node::Branch(e) => {
                        let children: Vec<Child> = e.iter().map(|e| e.child).collect();
                        walk.stack.extend(children.into_iter().map(|c| (c, owner)));
                    }
                    Node::Leaf(e) => {
                        let items: Vec<(Vec<u8>, Vec<u8>)> = (0..e.len())
                            .filter(|&i| e.bucket(i))
                            .map(|i| (e.key(i).to_vec(), e.value(i).to_vec()))
                            .collect();
                        for (k, v) in items {
                            walk.nested(w, owner, &k, &v, 0)?;
                        }
                    }
                },
            }
        }
        Ok(())
    }
}

/// Where [`Tx::find_for_delete`] found its key.
struct Found {
    /// The leaf's depth: the path to it is `idx[..=depth]`.
    depth: usize,
    /// The leaf's page, or 0 for an arena node (where a bad value found there is reported).
    page: u64,
}

/// An entry on its way into a leaf.
struct NewEntry<'k> {
    key: &'k [u8],
    value: &'k [u8],
    bucket: bool,
}

/// Add a node at height `level` to the arena.
fn push_node(w: &mut WriteState, node: Node, level: u8) -> NodeId {
    w.nodes.push(node);
    w.levels.push(level);
    debug_assert_eq!(w.nodes.len(), w.levels.len());
    w.nodes.len() - 1
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

/// The work list of [`Tx::free_bucket`].
struct FreeWalk {
    hwm: u64,
    page_size: usize,
    seen: HashSet<u64>,
    /// Subtrees to free, each with the open bucket state that owns it, if any: a bucket
    /// reached only through an on-disk header has no state, and neither has anything nested
    /// in it.
    stack: Vec<(Child, Option<usize>)>,
    /// Open bucket states to mark deleted (and whose trees to free).
    buckets: Vec<usize>,
}

impl FreeWalk {
    /// A nested bucket `name` (header `value`, found in `page`, or 0 for an arena node) of the
    /// bucket state `owner`: continue with its open state if it has one, else its on-disk root.
    fn nested(
        &mut self,
        w: &WriteState,
        owner: Option<usize>,
        name: &[u8],
        value: &[u8],
        page: u64,
    ) -> Result<()> {
        let h = BucketValue::decode(value, page, self.page_size)?;
        match (owner.and_then(|b| w.index.get(b, name)), h.root) {
            (Some(cid), _) if !w.buckets[cid].deleted => self.buckets.push(cid),
            (_, BucketRoot::Tree(r)) if !r.is_empty() => self.stack.push((Child::Page(r), None)),
            // Empty, or inline: no page of its own to free.
            _ => {}
        }
        Ok(())
    }
}

/// Branch entries for `parts`, the nodes a split put to the right of `left`, in order.
fn right_entries(w: &WriteState, left: NodeId, parts: &[NodeId]) -> Vec<BranchEntry> {
    let lefts = std::iter::once(left).chain(parts.iter().copied());
    lefts
        .zip(parts)
        .map(|(l, &r)| BranchEntry::new(separator(w, l, r), Child::Node(r)))
        .collect()
}

/// The separator for node `right`, split off to the right of `left`. Between two leaves it is
/// the [`shortest_separator`] of `left`'s last key and `right`'s first: a branch page holds
/// about 1.6 times as many children of random 24-byte keys, and a commit of scattered writes
/// rewrites fewer branch pages. Between branches it is `right`'s first key, itself a separator.
fn separator(w: &WriteState, left: NodeId, right: NodeId) -> &[u8] {
    let b = w.nodes[right].key(0);
    if let (Node::Leaf(l), Node::Leaf(_)) = (&w.nodes[left], &w.nodes[right]) {
        if let Some(last) = l.len().checked_sub(1) {
            return shortest_separator(l.key(last), b);
        }
    }
    b
}
