//! In-memory copy-on-write nodes of a write transaction.
//!
//! A write transaction copies each page it changes into a [`Node`] (and frees the page), edits
//! nodes in place, splits a node as soon as it outgrows a page and merges it with a sibling as
//! soon as it falls under a quarter page. At commit the dirty nodes are serialized bottom-up
//! into fresh pages, each parent recording its children's new id, txid and checksum.

use crate::error::Result;
use crate::format::page::{
    inline_limit, seal, set_overflow, wr_u16, wr_u32, wr_u64, ChildRef, Page, PageType,
    BRANCH_ELEM, FLAG_BUCKET, HEADER, LEAF_ELEM, REF_SIZE,
};

pub(crate) type NodeId = usize;

/// Where a child lives: still on its page, or copied into the arena.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Child {
    Page(ChildRef),
    Node(NodeId),
}

#[derive(Clone, Debug)]
pub(crate) struct LeafEntry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub bucket: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct BranchEntry {
    pub key: Vec<u8>,
    pub child: Child,
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Leaf(Vec<LeafEntry>),
    Branch(Vec<BranchEntry>),
}

impl Node {
    pub(crate) fn len(&self) -> usize {
        match self {
            Node::Leaf(e) => e.len(),
            Node::Branch(e) => e.len(),
        }
    }
    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self, Node::Leaf(_))
    }
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        match self {
            Node::Leaf(e) => &e[i].key,
            Node::Branch(e) => &e[i].key,
        }
    }
    /// Serialized size in bytes (header included).
    pub(crate) fn size(&self) -> usize {
        match self {
            Node::Leaf(e) => HEADER + e.iter().map(leaf_entry_size).sum::<usize>(),
            Node::Branch(e) => HEADER + e.iter().map(branch_entry_size).sum::<usize>(),
        }
    }

    /// Copy a verified page into a node.
    pub(crate) fn from_page(p: &Page<'_>) -> Result<Node> {
        if p.leaf {
            let mut v = Vec::with_capacity(p.count);
            for i in 0..p.count {
                let it = p.leaf_item(i)?;
                v.push(LeafEntry {
                    key: it.key.to_vec(),
                    value: it.value.to_vec(),
                    bucket: it.bucket,
                });
            }
            Ok(Node::Leaf(v))
        } else {
            let mut v = Vec::with_capacity(p.count);
            for i in 0..p.count {
                v.push(BranchEntry {
                    key: p.key(i)?.to_vec(),
                    child: Child::Page(p.child(i)?),
                });
            }
            Ok(Node::Branch(v))
        }
    }

    /// Binary search on a leaf: first index with key >= `key`, and whether equal.
    pub(crate) fn search_leaf(entries: &[LeafEntry], key: &[u8]) -> (usize, bool) {
        match entries.binary_search_by(|e| e.key.as_slice().cmp(key)) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        }
    }

    /// Child index for `key` in a branch (see [`Page::search_branch`]).
    pub(crate) fn search_branch(entries: &[BranchEntry], key: &[u8]) -> usize {
        if entries.len() <= 1 {
            return 0;
        }
        let rest = &entries[1..];
        rest.partition_point(|e| e.key.as_slice() <= key)
    }

    /// Serialize into a span of `pages * page_size` bytes for page `pgid` at height `level`
    /// above the leaves; children must all be `Child::Page`. Returns the span and its checksum.
    pub(crate) fn serialize(
        &self,
        page_size: usize,
        pgid: u64,
        txid: u64,
        level: u8,
    ) -> (Vec<u8>, u32) {
        let size = self.size();
        let pages = size.div_ceil(page_size).max(1);
        let mut b = vec![0u8; pages * page_size];
        set_overflow(&mut b, (pages - 1) as u32);
        self.write_elements(&mut b);
        let ptype = match self {
            Node::Leaf(_) => PageType::Leaf,
            Node::Branch(_) => PageType::Branch,
        };
        let crc = seal(&mut b, ptype, level, self.len() as u16, pgid, txid);
        (b, crc)
    }

    /// True when this node can be stored inline as a bucket's only leaf (docs/FORMAT.md,
    /// section 5): a leaf of at least one pair, no nested bucket, at most
    /// [`inline_limit`] bytes.
    pub(crate) fn inlineable(&self, page_size: usize) -> bool {
        match self {
            Node::Leaf(e) => {
                !e.is_empty()
                    && !e.iter().any(|e| e.bucket)
                    && self.size() <= inline_limit(page_size)
            }
            Node::Branch(_) => false,
        }
    }

    /// The inline-bucket value of this leaf (see [`Node::inlineable`]): the page image of its
    /// exact size, with no checksum (its parent page's covers it), the bucket's sequence in
    /// the page-id field, and every other header field zero.
    pub(crate) fn encode_inline(&self, sequence: u64) -> Vec<u8> {
        let mut b = vec![0u8; self.size()];
        self.write_elements(&mut b);
        b[4] = PageType::Leaf as u8;
        wr_u16(&mut b, 6, self.len() as u16);
        wr_u64(&mut b, 8, sequence);
        b
    }

    /// Write the element array and the keys and values after the header into `b` (at least
    /// [`Node::size`] bytes).
    fn write_elements(&self, b: &mut [u8]) {
        let n = self.len();
        let elem = match self {
            Node::Leaf(_) => LEAF_ELEM,
            Node::Branch(_) => BRANCH_ELEM,
        };
        let mut data = HEADER + n * elem;
        match self {
            Node::Leaf(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let at = HEADER + i * LEAF_ELEM;
                    b[at] = if e.bucket { FLAG_BUCKET } else { 0 };
                    wr_u32(b, at + 4, data as u32);
                    wr_u32(b, at + 8, e.key.len() as u32);
                    wr_u32(b, at + 12, e.value.len() as u32);
                    b[data..data + e.key.len()].copy_from_slice(&e.key);
                    data += e.key.len();
                    b[data..data + e.value.len()].copy_from_slice(&e.value);
                    data += e.value.len();
                }
            }
            Node::Branch(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let at = HEADER + i * BRANCH_ELEM;
                    let r = match e.child {
                        Child::Page(r) => r,
                        Child::Node(_) => ChildRef::EMPTY,
                    };
                    r.encode(&mut b[at..at + REF_SIZE]);
                    wr_u32(b, at + 20, data as u32);
                    wr_u32(b, at + 24, e.key.len() as u32);
                    wr_u32(b, at + 28, 0);
                    b[data..data + e.key.len()].copy_from_slice(&e.key);
                    data += e.key.len();
                }
            }
        }
    }
}

pub(crate) fn leaf_entry_size(e: &LeafEntry) -> usize {
    LEAF_ELEM + e.key.len() + e.value.len()
}
pub(crate) fn branch_entry_size(e: &BranchEntry) -> usize {
    BRANCH_ELEM + e.key.len()
}

/// Largest number of elements in one node: the count field is a u16.
pub(crate) const MAX_ELEMS: usize = u16::MAX as usize;

/// Split `items` into consecutive parts: the first of at most `first_cap` bytes, the others
/// of at most `cap` (at least `min` items per
/// part where possible). Returns the part boundaries as lengths.
pub(crate) fn split_sizes(sizes: &[usize], first_cap: usize, cap: usize, min: usize) -> Vec<usize> {
    let mut parts: Vec<usize> = Vec::new();
    let (mut cur, mut n) = (HEADER, 0usize);
    let total = sizes.len();
    let mut i = 0;
    while i < total {
        let s = sizes[i];
        let remaining = total - i;
        let limit = if parts.is_empty() { first_cap } else { cap };
        if n >= min && (cur + s > limit || n >= MAX_ELEMS) && remaining >= min {
            parts.push(n);
            cur = HEADER;
            n = 0;
        }
        cur += s;
        n += 1;
        i += 1;
    }
    if n > 0 {
        parts.push(n);
    }
    parts
}
