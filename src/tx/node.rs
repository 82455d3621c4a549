//! In-memory copy-on-write nodes of a write transaction.
//!
//! A write transaction copies each page it changes into a [`Node`] (and frees the page), edits
//! nodes in place, splits a node as soon as it outgrows a page and merges it with a sibling as
//! soon as it falls under a quarter page. At commit the dirty nodes are serialized bottom-up
//! into fresh pages, each parent recording its children's new id, txid and checksum.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::format::page::{
    cmp_keys, inline_height, inline_limit, key_prefix, key_start, seal, set_overflow, wr_u16,
    wr_u32, wr_u64, ChildRef, Page, PageType, BRANCH_ELEM, BRANCH_PREFIX, BUCKET_HEADER,
    COMPACT_BUCKET, COMPACT_ELEM, COMPACT_HEADER, COMPACT_SEQ, COMPACT_SEQ_LEN, COMPACT_TAG,
    FLAG_BUCKET, FLAG_PREFIXED, HEADER, LEAF_ELEM, LEAF_PREFIX, REF_SIZE,
};
use crate::limits::MAX_INLINE_DEPTH;

pub(crate) type NodeId = usize;

/// Where a child lives: still on its page, or copied into the arena.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Child {
    Page(ChildRef),
    Node(NodeId),
}

/// Dead heap bytes a [`LeafNode`] tolerates before packing, whatever its size.
const PACK_FLOOR: usize = 1024;

/// One element of a [`LeafNode`]: where its key (and, right after it, its value) lie in the
/// node's byte heap.
#[derive(Clone, Copy, Debug)]
struct Slot {
    off: usize,
    klen: u32,
    vlen: u32,
    /// [`key_head`] of the key: a search reads the slots, and the heap only on a tie.
    head: u64,
    bucket: bool,
}

/// Slots and heap bytes a new single-entry leaf starts with (see [`LeafNode::single`]).
const SINGLE_SLOTS: usize = 8;
const SINGLE_HEAP: usize = 256;

/// A leaf of the write arena: its elements in key order, their keys and values in one byte
/// heap. A copied page is one copy of its span (not two allocations per entry, which cost a
/// bulk load about 800 instructions of malloc and free per put), an insert appends to the
/// heap, and the serialized size is kept as elements change instead of summed on every insert.
/// A replaced or removed entry leaves dead bytes behind; the heap is packed again once they
/// outweigh the live ones (and [`PACK_FLOOR`]), so it stays under twice the node's size plus
/// that floor. A copied page keeps only its keys and values (not its header, element array and
/// free space), and a merge builds a heap of exactly what it holds: a transaction that touches
/// every leaf (removing half the keys of a million-entry tree) held 390 MiB of arena when each
/// copy was a whole page that a merge then doubled. A split gives each half room to double
/// (inserts made it split, and more are coming): a 1,000,000-entry load peaks 19 MB (6%)
/// higher, for 10% fewer cache misses per put.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeafNode {
    slots: Vec<Slot>,
    heap: Vec<u8>,
    /// Sum of the live keys' and values' lengths.
    live: usize,
}

impl LeafNode {
    /// A leaf of one entry: the root of a new bucket, mostly, which the same transaction goes
    /// on filling. Room for a few more entries from the start: growing from nothing, a bucket
    /// of six small keys reallocated its heap five times and its slots twice (a tenth of the
    /// instructions of a metadata write). At most [`SINGLE_HEAP`] bytes more than it holds.
    pub(crate) fn single(key: &[u8], value: &[u8], bucket: bool) -> LeafNode {
        let mut n = LeafNode {
            slots: Vec::with_capacity(SINGLE_SLOTS),
            heap: Vec::with_capacity((key.len() + value.len()).max(SINGLE_HEAP)),
            live: 0,
        };
        n.insert(0, key, value, bucket);
        n
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    #[inline]
    pub(crate) fn key(&self, i: usize) -> &[u8] {
        let s = self.slots[i];
        &self.heap[s.off..s.off + s.klen as usize]
    }
    pub(crate) fn value(&self, i: usize) -> &[u8] {
        let s = self.slots[i];
        let at = s.off + s.klen as usize;
        &self.heap[at..at + s.vlen as usize]
    }
    pub(crate) fn bucket(&self, i: usize) -> bool {
        self.slots[i].bucket
    }
    /// Height of this leaf as an inline bucket: 1 if it holds only pairs, one more than its
    /// tallest nested bucket if those are all inline or empty (see [`inline_height`]); `None`
    /// if one has pages of its own (or the nesting passes [`MAX_INLINE_DEPTH`]).
    pub(crate) fn inline_height(&self) -> Option<usize> {
        let mut h = 1;
        for (i, s) in self.slots.iter().enumerate() {
            if s.bucket {
                h = h.max(1 + inline_height(self.value(i), 0)?);
            }
        }
        (h <= MAX_INLINE_DEPTH).then_some(h)
    }

    /// Serialized size in bytes (header included), in constant time.
    pub(crate) fn size(&self) -> usize {
        HEADER + self.slots.len() * LEAF_ELEM + self.live
    }
    /// Size of this leaf as a compact inline bucket (format 7) without a sequence field, in
    /// constant time.
    pub(crate) fn compact_size(&self) -> usize {
        COMPACT_HEADER + self.slots.len() * COMPACT_ELEM + self.live
    }

    /// This leaf as a compact inline bucket of sequence `sequence` (docs/FORMAT.md, section
    /// 5); the caller checked it is inlineable (so every offset and length fits its u16).
    /// The sequence field is written when the sequence is not 0, or when the value would
    /// otherwise be exactly 32 bytes long, which reads as a bucket header. One case has no
    /// compact encoding: a nonzero sequence on a body of 24 bytes makes the value 32 bytes
    /// long whatever it does. That bucket is written as the page image of formats 3 to 6, which
    /// every reader of format 7 reads too (it is at most 83 bytes, far under any inline limit;
    /// the alternative, a page of its own, would cost a whole page for a few bytes).
    pub(crate) fn encode_compact(&self, sequence: u64) -> Vec<u8> {
        let body = self.compact_size();
        if sequence != 0 && body + COMPACT_SEQ_LEN == BUCKET_HEADER {
            return self.encode_image(sequence);
        }
        let with_seq = sequence != 0 || body == BUCKET_HEADER;
        let elems = COMPACT_HEADER + if with_seq { COMPACT_SEQ_LEN } else { 0 };
        let mut b = vec![0u8; body + elems - COMPACT_HEADER];
        b[0] = COMPACT_TAG | if with_seq { COMPACT_SEQ } else { 0 };
        wr_u16(&mut b, 1, self.slots.len() as u16);
        if with_seq {
            wr_u64(&mut b, COMPACT_HEADER, sequence);
        }
        let mut data = elems + self.slots.len() * COMPACT_ELEM;
        for (i, s) in self.slots.iter().enumerate() {
            let at = elems + i * COMPACT_ELEM;
            let flag = if s.bucket { COMPACT_BUCKET } else { 0 };
            wr_u16(&mut b, at, data as u16);
            wr_u16(&mut b, at + 2, s.klen as u16);
            wr_u16(&mut b, at + 4, s.vlen as u16 | flag);
            let n = (s.klen + s.vlen) as usize;
            b[data..data + n].copy_from_slice(&self.heap[s.off..s.off + n]);
            data += n;
        }
        b
    }

    /// This leaf as the inline page image of formats 3 to 6: the page image of its exact size,
    /// with no checksum (its parent page's covers it), the bucket's sequence in the page-id
    /// field, and every other header field zero.
    pub(crate) fn encode_image(&self, sequence: u64) -> Vec<u8> {
        let mut b = vec![0u8; self.size()];
        self.write_elements(&mut b, false);
        b[4] = PageType::Leaf as u8;
        wr_u16(&mut b, 6, self.len() as u16);
        wr_u64(&mut b, 8, sequence);
        b
    }

    /// Serialized size of element `i` (its element, key and value).
    pub(crate) fn entry_size(&self, i: usize) -> usize {
        let s = self.slots[i];
        LEAF_ELEM + (s.klen + s.vlen) as usize
    }

    /// First index with key >= `key`, and whether it is equal.
    pub(crate) fn search(&self, key: &[u8]) -> (usize, bool) {
        let q = key_head(key);
        let (mut lo, mut hi) = (0usize, self.slots.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let head = self.slots[mid].head;
            let ord = if head != q {
                head.cmp(&q)
            } else {
                cmp_keys(self.key(mid), key)
            };
            match ord {
                Ordering::Less => lo = mid + 1,
                Ordering::Equal => return (mid, true),
                Ordering::Greater => hi = mid,
            }
        }
        (lo, false)
    }

    /// Append `key` and `value` to the heap; returns the offset of the key.
    fn push_bytes(&mut self, key: &[u8], value: &[u8]) -> usize {
        let off = self.heap.len();
        self.heap.extend_from_slice(key);
        self.heap.extend_from_slice(value);
        off
    }

    /// Insert a new entry at index `i` (the caller found `i` by [`LeafNode::search`]).
    pub(crate) fn insert(&mut self, i: usize, key: &[u8], value: &[u8], bucket: bool) {
        let off = self.push_bytes(key, value);
        self.slots.insert(
            i,
            Slot {
                off,
                klen: key.len() as u32,
                vlen: value.len() as u32,
                head: key_head(key),
                bucket,
            },
        );
        self.live += key.len() + value.len();
    }

    /// Replace entry `i`'s value (its key and kind stay).
    pub(crate) fn set_value(&mut self, i: usize, value: &[u8]) {
        let s = self.slots[i];
        if s.vlen as usize == value.len() {
            let at = s.off + s.klen as usize;
            self.heap[at..at + value.len()].copy_from_slice(value);
            return;
        }
        let key_at = s.off..s.off + s.klen as usize;
        let off = self.heap.len();
        self.heap.extend_from_within(key_at);
        self.heap.extend_from_slice(value);
        self.live = self.live - s.vlen as usize + value.len();
        self.slots[i].off = off;
        self.slots[i].vlen = value.len() as u32;
        self.maybe_pack();
    }

    /// Remove entry `i`.
    pub(crate) fn remove(&mut self, i: usize) {
        let s = self.slots.remove(i);
        self.live -= (s.klen + s.vlen) as usize;
        self.maybe_pack();
    }

    /// Move entries `at..` into a new node (with a heap of their own).
    pub(crate) fn split_off(&mut self, at: usize) -> LeafNode {
        let moved = self.slots.get(at..).unwrap_or_default();
        let bytes: usize = moved.iter().map(|s| (s.klen + s.vlen) as usize).sum();
        // Room to double, which the first insert would grow it to anyway: a leaf splits
        // because inserts are arriving, and growing a heap of exactly what it held copied it
        // again (realloc was a sixth of a bulk load's cache misses).
        let mut right = LeafNode {
            slots: Vec::with_capacity(2 * moved.len()),
            heap: Vec::with_capacity(2 * bytes),
            live: 0,
        };
        for i in at..self.slots.len() {
            let s = self.slots[i];
            let bytes = &self.heap[s.off..s.off + (s.klen + s.vlen) as usize];
            let off = right.heap.len();
            right.heap.extend_from_slice(bytes);
            right.slots.push(Slot { off, ..s });
            right.live += bytes.len();
        }
        self.slots.truncate(at);
        self.live -= right.live;
        // The left half goes on taking inserts too: if it is packed, it gets the same room.
        self.maybe_pack_into(2 * self.live);
        right
    }

    /// Append every entry of `right` (whose keys all sort after this node's).
    /// One heap of exactly both nodes' live bytes replaces this node's (appending to it
    /// would double its capacity, and keep its dead bytes).
    pub(crate) fn append(&mut self, right: LeafNode) {
        let mut heap = Vec::with_capacity(self.live + right.live);
        for s in &mut self.slots {
            let at = s.off..s.off + (s.klen + s.vlen) as usize;
            s.off = heap.len();
            heap.extend_from_slice(&self.heap[at]);
        }
        self.slots.reserve_exact(right.slots.len());
        for s in &right.slots {
            let at = s.off..s.off + (s.klen + s.vlen) as usize;
            self.slots.push(Slot {
                off: heap.len(),
                ..*s
            });
            heap.extend_from_slice(&right.heap[at]);
        }
        self.heap = heap;
        self.live += right.live;
    }

    /// An empty leaf with room for `entries` entries of `bytes` key and value bytes in all.
    pub(crate) fn with_capacity(entries: usize, bytes: usize) -> LeafNode {
        LeafNode {
            slots: Vec::with_capacity(entries),
            heap: Vec::with_capacity(bytes),
            live: 0,
        }
    }

    /// Append entry `i` of `src` (its key sorts after every key of this node).
    pub(crate) fn push_from(&mut self, src: &LeafNode, i: usize) {
        let s = src.slots[i];
        let bytes = &src.heap[s.off..s.off + (s.klen + s.vlen) as usize];
        let off = self.heap.len();
        self.heap.extend_from_slice(bytes);
        self.slots.push(Slot { off, ..s });
        self.live += bytes.len();
    }

    /// Pack the heap once its dead bytes outweigh the live ones and [`PACK_FLOOR`].
    fn maybe_pack(&mut self) {
        self.maybe_pack_into(self.live);
    }

    /// [`LeafNode::maybe_pack`] into a heap of `capacity` (at least the live bytes).
    fn maybe_pack_into(&mut self, capacity: usize) {
        let dead = self.heap.len() - self.live;
        if dead <= self.live.max(PACK_FLOOR) {
            return;
        }
        let mut heap = Vec::with_capacity(capacity.max(self.live));
        for s in &mut self.slots {
            let at = s.off..s.off + (s.klen + s.vlen) as usize;
            s.off = heap.len();
            heap.extend_from_slice(&self.heap[at]);
        }
        self.heap = heap;
    }

    /// Copy a verified leaf page: its keys and values into one heap, with room for two more
    /// entries of their average size (an insert into a copied leaf does not reallocate).
    pub(crate) fn from_page(p: &Page<'_>) -> Result<LeafNode> {
        let mut slots = Vec::with_capacity(p.count);
        let mut live = 0;
        for i in 0..p.count {
            let it = p.leaf_item(i)?;
            // leaf_item checked both slices lie in the span; the value follows the key.
            slots.push(Slot {
                off: it.key.as_ptr() as usize - p.data.as_ptr() as usize,
                klen: it.key.len() as u32,
                vlen: it.value.len() as u32,
                head: key_head(it.key),
                bucket: it.bucket,
            });
            live += it.key.len() + it.value.len();
        }
        // The entries are copied in runs of adjacent ones: a page deadbolt wrote is one run.
        let mut heap = Vec::with_capacity(live + 2 * (live / p.count.max(1)));
        let mut run = 0..0;
        let copy = |heap: &mut Vec<u8>, run: &std::ops::Range<usize>| {
            let bytes = p.data.get(run.clone()).ok_or_else(|| {
                Error::bug(format!("leaf_item of page {} gave bytes outside it", p.id))
            })?;
            heap.extend_from_slice(bytes);
            Ok::<_, Error>(())
        };
        let mut base = 0;
        for s in &mut slots {
            let at = s.off..s.off + (s.klen + s.vlen) as usize;
            if at.start != run.end || run.is_empty() {
                copy(&mut heap, &run)?;
                base = heap.len();
                run = at.clone();
            } else {
                run.end = at.end;
            }
            s.off = base + (at.start - run.start);
        }
        copy(&mut heap, &run)?;
        Ok(LeafNode { slots, heap, live })
    }

    /// Write the element array, keys and values after the header into `b` (at least
    /// [`LeafNode::size`] bytes), with key prefixes if `prefixed` (a page; an inline bucket
    /// has none, docs/FORMAT.md section 5).
    fn write_elements(&self, b: &mut [u8], prefixed: bool) -> usize {
        let mut data = HEADER + self.slots.len() * LEAF_ELEM;
        for (i, s) in self.slots.iter().enumerate() {
            let at = HEADER + i * LEAF_ELEM;
            b[at] = if s.bucket { FLAG_BUCKET } else { 0 };
            if prefixed {
                let prefix = key_prefix(&self.heap[s.off..s.off + s.klen as usize], LEAF_PREFIX);
                b[at + 1..at + 4].copy_from_slice(&prefix.to_be_bytes()[1..]);
            }
            wr_u32(b, at + 4, data as u32);
            wr_u32(b, at + 8, s.klen);
            wr_u32(b, at + 12, s.vlen);
            let n = (s.klen + s.vlen) as usize;
            b[data..data + n].copy_from_slice(&self.heap[s.off..s.off + n]);
            data += n;
        }
        data
    }
}

/// A branch element of the write arena. `head` is the key's first eight bytes
/// ([`key_head`]), so a search compares the entries array it walks and follows the pointer to
/// the key only on a tie (a bulk load spent a quarter of its time in `memcmp` on those
/// pointers).
#[derive(Clone, Debug)]
pub(crate) struct BranchEntry {
    key: KeyBuf,
    head: u64,
    pub child: Child,
}

/// Longest separator a [`BranchEntry`] keeps in place (a random 24-byte key, a bucket name);
/// a longer one is on the heap.
const INLINE_KEY: usize = 30;

/// A separator's bytes. Copying a branch page into the arena allocated once per element when
/// every separator was a `Vec` (a third of a single-key commit's instructions, in callgrind).
#[derive(Clone, Debug)]
enum KeyBuf {
    Inline { len: u8, b: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

impl KeyBuf {
    fn new(key: &[u8]) -> KeyBuf {
        if key.len() <= INLINE_KEY {
            let mut b = [0u8; INLINE_KEY];
            b[..key.len()].copy_from_slice(key);
            KeyBuf::Inline {
                len: key.len() as u8,
                b,
            }
        } else {
            KeyBuf::Heap(key.into())
        }
    }
    #[inline]
    fn get(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { len, b } => &b[..usize::from(*len).min(INLINE_KEY)],
            KeyBuf::Heap(k) => k,
        }
    }
}

impl BranchEntry {
    pub(crate) fn new(key: &[u8], child: Child) -> BranchEntry {
        BranchEntry {
            head: key_head(key),
            key: KeyBuf::new(key),
            child,
        }
    }
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        self.key.get()
    }
    pub(crate) fn set_key(&mut self, key: &[u8]) {
        self.head = key_head(key);
        self.key = KeyBuf::new(key);
    }
    /// This entry's key against `key`, whose head is `q`.
    #[inline]
    fn cmp(&self, key: &[u8], q: u64) -> Ordering {
        if self.head != q {
            return self.head.cmp(&q);
        }
        cmp_keys(self.key(), key)
    }
}

/// The first eight bytes of `key`, zero-padded, as a big-endian number: a smaller head means a
/// smaller key (equal heads say nothing), as for the on-disk key prefixes.
#[inline]
pub(crate) fn key_head(key: &[u8]) -> u64 {
    u64::from_be_bytes(key_start(key))
}

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Leaf(LeafNode),
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
            Node::Leaf(e) => e.key(i),
            Node::Branch(e) => e[i].key(),
        }
    }
    /// Serialized size in bytes (header included).
    pub(crate) fn size(&self) -> usize {
        match self {
            Node::Leaf(e) => e.size(),
            Node::Branch(e) => HEADER + e.iter().map(branch_entry_size).sum::<usize>(),
        }
    }

    /// Copy a verified page into a node.
    pub(crate) fn from_page(p: &Page<'_>) -> Result<Node> {
        if p.leaf {
            Ok(Node::Leaf(LeafNode::from_page(p)?))
        } else {
            let mut v = Vec::with_capacity(p.count);
            for i in 0..p.count {
                v.push(BranchEntry::new(p.key(i)?, Child::Page(p.child(i)?)));
            }
            Ok(Node::Branch(v))
        }
    }

    /// Child index for `key` in a branch (see [`Page::search_branch`]).
    pub(crate) fn search_branch(entries: &[BranchEntry], key: &[u8]) -> usize {
        if entries.len() <= 1 {
            return 0;
        }
        let q = key_head(key);
        let rest = &entries[1..];
        rest.partition_point(|e| e.cmp(key, q) != Ordering::Greater)
    }

    /// Serialize into `b`, a span of whole pages (as many as [`Node::size`] needs) holding any
    /// bytes, every one of which is written, for page `pgid` at height `level` above the
    /// leaves; children must all be `Child::Page`.
    /// Returns the span's checksum. The commit hands out slices of its coalesced write buffer,
    /// so a spilled page costs no allocation and no second copy.
    pub(crate) fn serialize_into(
        &self,
        b: &mut [u8],
        page_size: usize,
        pgid: u64,
        txid: u64,
        level: u8,
    ) -> u32 {
        let pages = (b.len() / page_size).max(1);
        set_overflow(b, (pages - 1) as u32);
        // The header and the elements are written whole (seal writes every header field; a
        // prefixed element has no byte left over), and the rest of the span is zeroed here:
        // `b` holds whatever an earlier span left (`Commit::span_buf`).
        let end = self.write_elements(b, true);
        if let Some(rest) = b.get_mut(end..) {
            rest.fill(0);
        }
        let ptype = match self {
            Node::Leaf(_) => PageType::Leaf,
            Node::Branch(_) => PageType::Branch,
        };
        seal(
            b,
            ptype,
            (level, FLAG_PREFIXED),
            self.len() as u16,
            pgid,
            txid,
        )
    }

    /// True when this node can be stored inline as a bucket's only leaf (docs/FORMAT.md,
    /// section 5): a leaf of at least one element whose compact encoding, weighed with a
    /// sequence field, is at most [`inline_limit`] bytes, and whose nested buckets are all
    /// inline, at most [`MAX_INLINE_DEPTH`] deep with this one. The sequence field is counted
    /// whether or not the bucket has a sequence, so that the choice does not depend on it (as
    /// before format 7, where the sequence took no room): `next_sequence` never moves a bucket
    /// out to a page. The inline limit is well over the 83 bytes of the one bucket written as
    /// a page image ([`LeafNode::encode_compact`]).
    pub(crate) fn inlineable(&self, page_size: usize) -> bool {
        match self {
            Node::Leaf(e) => {
                !e.is_empty()
                    && e.compact_size() + COMPACT_SEQ_LEN <= inline_limit(page_size)
                    && e.inline_height().is_some()
            }
            Node::Branch(_) => false,
        }
    }

    /// The inline-bucket value of this leaf (see [`Node::inlineable`]): its compact encoding
    /// (format 7, [`LeafNode::encode_compact`], which commit calls). A test helper: a branch
    /// gets an empty value, which every reader refuses as corruption.
    #[cfg(test)]
    pub(crate) fn encode_inline(&self, sequence: u64) -> Vec<u8> {
        match self {
            Node::Leaf(leaf) => leaf.encode_compact(sequence),
            Node::Branch(_) => Vec::new(),
        }
    }

    /// Write the element array and the keys and values after the header into `b` (at least
    /// [`Node::size`] bytes) and return where they end; leaf elements get key prefixes if
    /// `prefixed`, branch elements always (a branch is never inline).
    fn write_elements(&self, b: &mut [u8], prefixed: bool) -> usize {
        let mut data = HEADER + self.len() * BRANCH_ELEM;
        match self {
            Node::Leaf(leaf) => leaf.write_elements(b, prefixed),
            Node::Branch(entries) => {
                for (i, e) in entries.iter().enumerate() {
                    let at = HEADER + i * BRANCH_ELEM;
                    let r = match e.child {
                        Child::Page(r) => r,
                        Child::Node(_) => ChildRef::EMPTY,
                    };
                    r.encode(&mut b[at..at + REF_SIZE]);
                    wr_u32(b, at + 20, data as u32);
                    let key = e.key();
                    wr_u32(b, at + 24, key.len() as u32);
                    let prefix = key_prefix(key, BRANCH_PREFIX);
                    b[at + 28..at + 32].copy_from_slice(&prefix.to_be_bytes());
                    b[data..data + key.len()].copy_from_slice(key);
                    data += key.len();
                }
                data
            }
        }
    }
}

/// The shortest prefix of `b` that sorts after `a`, for `a < b`: every key `<= a` is below it
/// and every key `>= b` at or above it, which is all a separator between two leaves must be
/// (docs/FORMAT.md, "Separators"; suffix truncation). Random 24-byte keys need about three
/// bytes. If `a < b` does not hold (a broken invariant), the whole of `b` is returned.
pub(crate) fn shortest_separator<'b>(a: &[u8], b: &'b [u8]) -> &'b [u8] {
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    // a < b, so they differ at `same` (or `a` is a prefix of `b`): `same < b.len()`.
    if same < b.len() {
        &b[..=same]
    } else {
        b
    }
}

pub(crate) fn branch_entry_size(e: &BranchEntry) -> usize {
    BRANCH_ELEM + e.key().len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::page::{inline_page, BucketValue, Header, BUCKET_HEADER};
    use crate::testutil::{seeds, Rng};
    use std::collections::BTreeMap;

    fn check(n: &LeafNode, model: &BTreeMap<Vec<u8>, (Vec<u8>, bool)>, seed: u64) {
        let got: Vec<_> = (0..n.len())
            .map(|i| (n.key(i).to_vec(), (n.value(i).to_vec(), n.bucket(i))))
            .collect();
        let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, want, "seed {seed}");
        let size = HEADER
            + model
                .iter()
                .map(|(k, (v, _))| LEAF_ELEM + k.len() + v.len())
                .sum::<usize>();
        assert_eq!(n.size(), size, "seed {seed}: kept size drifted");
        assert!(
            n.heap.len() <= n.live + n.live.max(PACK_FLOOR),
            "seed {seed}: heap of {} bytes for {} live",
            n.heap.len(),
            n.live
        );
    }

    /// Pins `key_head`'s fast read of eight bytes to its definition: the first eight bytes,
    /// zero-padded, big-endian, for keys shorter and longer than that.
    #[test]
    fn a_key_head_is_its_first_eight_bytes_zero_padded_at_every_length() {
        for len in 0..=10usize {
            let key: Vec<u8> = (0..len as u8).map(|i| 0xC3 ^ (i * 29)).collect();
            let want = (0..8).fold(0u64, |acc, i| {
                (acc << 8) | u64::from(key.get(i).copied().unwrap_or(0))
            });
            assert_eq!(key_head(&key), want, "{len}-byte key");
        }
    }

    /// Pins the leaf heap's bookkeeping: inserts, value replacements of every size, removals,
    /// splits and appends keep the entries, the kept size and the dead-byte bound exactly as a
    /// model says (`DEADBOLT_SEED=n` replays one seed).
    #[test]
    fn a_leaf_node_heap_keeps_entries_size_and_dead_bytes_bounded_through_every_edit() {
        for seed in seeds(200) {
            let mut r = Rng(seed);
            let mut n = LeafNode::default();
            let mut model: BTreeMap<Vec<u8>, (Vec<u8>, bool)> = BTreeMap::new();
            for _ in 0..400 {
                let key = vec![b'k', r.below(64) as u8, r.below(4) as u8];
                let value = vec![r.below(256) as u8; r.below(300) as usize];
                match r.below(10) {
                    0..=4 => {
                        let bucket = r.below(8) == 0;
                        let (i, eq) = n.search(&key);
                        if eq {
                            n.set_value(i, &value);
                            model.get_mut(&key).expect("in model").0 = value;
                        } else {
                            n.insert(i, &key, &value, bucket);
                            model.insert(key, (value, bucket));
                        }
                    }
                    5..=7 => {
                        let (i, eq) = n.search(&key);
                        assert_eq!(eq, model.contains_key(&key), "seed {seed}");
                        if eq {
                            n.remove(i);
                            model.remove(&key);
                        }
                    }
                    _ if n.len() >= 2 => {
                        let at = 1 + r.below(n.len() as u64 - 1) as usize;
                        let right = n.split_off(at);
                        assert_eq!(n.len() + right.len(), model.len(), "seed {seed}");
                        let split_key = right.key(0).to_vec();
                        let right_model = model.split_off(&split_key);
                        check(&n, &model, seed);
                        check(&right, &right_model, seed);
                        n.append(right);
                        model.extend(right_model);
                    }
                    _ => {}
                }
                check(&n, &model, seed);
            }
        }
    }

    /// A chain of `depth` inline buckets, each holding a pair and (but the last) the next.
    fn inline_chain(depth: usize) -> Vec<u8> {
        let mut v = Node::Leaf(LeafNode::single(b"k", b"bottom", false)).encode_inline(0);
        for _ in 1..depth {
            let mut n = LeafNode::single(b"k", b"pair", false);
            n.insert(1, b"n", &v, true);
            v = Node::Leaf(n).encode_inline(0);
        }
        v
    }

    /// Validate a 4 KiB leaf page holding bucket `value` under the name "top".
    fn validate_holding(value: &[u8]) -> Result<()> {
        let node = Node::Leaf(LeafNode::single(b"top", value, true));
        let mut b = vec![0u8; 4096];
        node.serialize_into(&mut b, 4096, 7, 1, 0);
        let h = Header::parse(&b).expect("header");
        Page::from_header(7, &h, &b).validate()
    }

    #[test]
    fn inline_buckets_nested_past_the_bound_or_holding_pages_are_corruption() {
        for depth in 1..=MAX_INLINE_DEPTH {
            let v = inline_chain(depth);
            assert!(validate_holding(&v).is_ok(), "depth {depth}");
            assert_eq!(inline_height(&v, 0), Some(depth));
        }
        let deep = inline_chain(MAX_INLINE_DEPTH + 1);
        let e = validate_holding(&deep).expect_err("too deep");
        assert!(e.to_string().contains("nested deeper"), "{e}");
        assert_eq!(inline_height(&deep, 0), None);
        let mut n = LeafNode::single(b"k", b"pair", false);
        n.insert(
            1,
            b"n",
            &Node::Leaf(LeafNode::single(b"x", b"y", false)).encode_inline(0),
            true,
        );
        assert_eq!(n.inline_height(), Some(2));
        // An empty bucket (a header with no root) has no pages: it may stay inside.
        let mut n = LeafNode::single(b"k", b"pair", false);
        n.insert(1, b"m", &[0u8; BUCKET_HEADER], true);
        assert_eq!(n.inline_height(), Some(1));
        let r = validate_holding(&Node::Leaf(n).encode_inline(0));
        assert!(r.is_ok(), "{r:?}");
        // An inline bucket pointing at a tree of pages (a header with a root).
        let mut header = [0u8; BUCKET_HEADER];
        header[0] = 9;
        let mut n = LeafNode::single(b"k", b"pair", false);
        n.insert(1, b"n", &header, true);
        assert_eq!(n.inline_height(), None, "not inlineable");
        let v = Node::Leaf(n).encode_inline(0);
        let e = validate_holding(&v).expect_err("pages inside an inline bucket");
        assert!(e.to_string().contains("pages of its own"), "{e}");
    }

    /// An entry of a test bucket: key, value, is a bucket.
    type Entry<'a> = (&'a [u8], &'a [u8], bool);
    /// An entry as a reader returned it.
    type Owned = (Vec<u8>, Vec<u8>, bool);

    /// The inline value of a bucket holding `entries`.
    fn inline_of(entries: &[Entry<'_>], sequence: u64) -> Vec<u8> {
        let mut n = LeafNode::default();
        for (i, (k, v, b)) in entries.iter().enumerate() {
            n.insert(i, k, v, *b);
        }
        Node::Leaf(n).encode_inline(sequence)
    }

    /// Decode inline value `v` as a reader does: its entries and its sequence.
    fn read_inline(v: &[u8]) -> (Vec<Owned>, u64) {
        let (page, seq) = inline_page(v, 7).expect("decodes");
        page.validate().expect("validates");
        let items = (0..page.count)
            .map(|i| {
                let it = page.leaf_item(i).expect("item");
                (it.key.to_vec(), it.value.to_vec(), it.bucket)
            })
            .collect();
        (items, seq)
    }

    /// Require that `v`, held by a page, is corruption naming that page, saying `what`.
    fn corrupt(v: &[u8], what: &str) {
        match validate_holding(v) {
            Err(Error::Corruption { page, detail }) => {
                assert_eq!(page, 7, "{what}: {detail}");
                assert!(detail.contains(what), "wanted {what:?}, got {detail:?}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }

    #[test]
    fn a_one_key_bucket_is_15_bytes_inline_where_its_page_image_was_54() {
        let v = inline_of(&[(b"id", &[1, 2, 3, 4], false)], 0);
        assert_eq!(v.len(), 15, "{v:?}");
        assert_eq!(v[..9], [0x80, 1, 0, 9, 0, 2, 0, 4, 0]);
        let mut n = LeafNode::default();
        n.insert(0, b"id", &[1, 2, 3, 4], false);
        assert_eq!(n.encode_image(0).len(), 54, "the format-6 encoding");
        // With a sequence, 8 bytes more.
        let v = inline_of(&[(b"id", &[1, 2, 3, 4], false)], 9);
        assert_eq!((v.len(), v[0]), (23, 0x81));
        assert_eq!(read_inline(&v).1, 9);
    }

    #[test]
    fn compact_inline_buckets_read_back_as_written_with_or_without_a_sequence_and_nested() {
        let inner = inline_of(&[(b"x", b"y", false)], 5);
        let empty = [0u8; BUCKET_HEADER];
        let shapes: Vec<Vec<Entry<'_>>> = vec![
            vec![(b"k", b"", false)],
            vec![(b"a", b"1", false), (b"b", &[7; 300], false)],
            vec![
                (b"a", b"1", false),
                (b"m", &empty, true),
                (b"n", &inner, true),
            ],
            vec![(&[0xff; 200], b"", false)],
        ];
        for entries in &shapes {
            for seq in [0, 1, u64::MAX] {
                let v = inline_of(entries, seq);
                assert_ne!(v.len(), BUCKET_HEADER);
                assert_eq!(v[0] & 0x80, 0x80, "compact");
                let (items, got) = read_inline(&v);
                assert_eq!(got, seq);
                let want: Vec<_> = entries
                    .iter()
                    .map(|(k, v, b)| (k.to_vec(), v.to_vec(), *b))
                    .collect();
                assert_eq!(items, want);
                validate_holding(&v).expect("valid in a page");
                // Copied into the arena and written again: the same bytes.
                let (page, _) = inline_page(&v, 7).expect("decodes");
                let copy = Node::Leaf(LeafNode::from_page(&page).expect("copy"));
                assert_eq!(copy.encode_inline(seq), v);
            }
        }
        let (items, _) = read_inline(&inline_of(&shapes[2], 0));
        assert_eq!(
            read_inline(&items[2].1),
            (vec![(b"x".to_vec(), b"y".to_vec(), false)], 5)
        );
    }

    #[test]
    fn a_search_of_a_compact_inline_bucket_finds_each_key_and_where_a_missing_one_would_go() {
        let v = inline_of(
            &[(b"b", b"1", false), (b"d", b"", false), (b"f", b"3", false)],
            0,
        );
        let (page, _) = inline_page(&v, 7).expect("decodes");
        let want: [(&[u8], (usize, bool)); 7] = [
            (b"a", (0, false)),
            (b"b", (0, true)),
            (b"c", (1, false)),
            (b"d", (1, true)),
            (b"e", (2, false)),
            (b"f", (2, true)),
            (b"g", (3, false)),
        ];
        for (key, at) in want {
            assert_eq!(page.search_leaf(key).expect("search"), at, "{key:?}");
        }
        assert_eq!(page.key(1).expect("key"), b"d");
        assert!(page.key(3).is_err());
    }

    #[test]
    fn a_compact_inline_bucket_that_would_be_32_bytes_long_carries_a_sequence_or_is_an_image() {
        // A body of 32 bytes (3 + 6 + 23): the sequence field, 0, makes it 40.
        let entries: &[Entry<'_>] = &[(b"key", &[9; 20], false)];
        let v = inline_of(entries, 0);
        assert_eq!((v.len(), v[0]), (40, 0x81));
        assert_eq!(read_inline(&v).1, 0);
        validate_holding(&v).expect("valid");
        // The same sequence field of 0 where it is not needed is a second encoding: refused.
        let mut w = inline_of(&[(b"id", &[1, 2, 3, 4], false)], 1);
        w[3..11].fill(0);
        corrupt(&w, "sequence field holding 0");
        // A body of 24 bytes (3 + 6 + 15) and a sequence: 32 bytes whatever the encoding does,
        // so it is written as a page image, which reads back with its sequence.
        let entries: &[Entry<'_>] = &[(b"counter", &[1; 8], false)];
        let v = inline_of(entries, 3);
        assert_eq!((v.len(), v[0]), (32 + 16 + 15, 0), "page image");
        let (items, seq) = read_inline(&v);
        assert_eq!((items.len(), seq), (1, 3));
        validate_holding(&v).expect("valid");
        assert_eq!(
            inline_of(entries, 0).len(),
            24,
            "compact without a sequence"
        );
    }

    #[test]
    fn every_malformed_compact_inline_bucket_is_corruption_naming_the_page_holding_it() {
        let good = inline_of(&[(b"a", b"first", false), (b"b", b"second", false)], 0);
        // 3 header bytes, elements at 3 and 9, key "a" at 15, "first", key "b" at 21, "second".
        validate_holding(&good).expect("valid");
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = good.clone();
            f(&mut v);
            v
        };
        corrupt(&with(&|v| v[0] = 0x82), "unknown flags");
        corrupt(&with(&|v| v[0] = 0xc0), "unknown flags");
        corrupt(&with(&|v| v[1] = 0), "element count 0");
        corrupt(&with(&|v| v[1] = 200), "elements need");
        corrupt(&with(&|v| v[1] = 3), "starts at");
        corrupt(&with(&|v| wr_u16(v, 3, 40)), "starts at");
        corrupt(&with(&|v| wr_u16(v, 3, 14)), "starts at");
        corrupt(&with(&|v| wr_u16(v, 9, 22)), "starts at");
        corrupt(&with(&|v| wr_u16(v, 9, 20)), "starts at");
        corrupt(&with(&|v| wr_u16(v, 5, 2)), "starts at");
        corrupt(&with(&|v| v.push(0)), "last value ends at 28");
        corrupt(&with(&|v| wr_u16(v, 13, 7)), "last value ends at 29");
        corrupt(&with(&|v| wr_u16(v, 13, 5)), "last value ends at 27");
        corrupt(&with(&|v| wr_u16(v, 13, 0x7fff)), "last value ends at");
        corrupt(&with(&|v| v.truncate(v.len() - 1)), "last value ends at 28");
        corrupt(&with(&|v| v.swap(15, 21)), "out of order");
        corrupt(&with(&|v| v[21] = b'a'), "out of order");
        corrupt(&with(&|v| wr_u16(v, 5, 0)), "starts at");
        // A bucket flag on a pair whose value is neither a header nor an inline bucket.
        corrupt(&with(&|v| v[8] |= 0x80), "inline bucket");
        // Too short, and a header of 2 bytes.
        corrupt(&[0x80, 1, 0, 9, 0, 1, 0, 0], "value of 8 bytes");
        corrupt(&[0x80, 1], "value of 2 bytes");
        // An empty key (the element array then ends where the value does).
        let mut e = inline_of(&[(b"k", b"", false)], 0);
        wr_u16(&mut e, 5, 0);
        e.pop();
        corrupt(&e, "value of 9 bytes");
        let mut e = inline_of(&[(b"k", b"v", false)], 0);
        wr_u16(&mut e, 5, 0);
        wr_u16(&mut e, 7, 2);
        corrupt(&e, "key of 0 bytes");
        // Too deep: a chain of compact buckets one past the bound.
        let deep = inline_chain(MAX_INLINE_DEPTH + 1);
        assert_eq!(deep[0] & 0x80, 0x80);
        corrupt(&deep, "nested deeper");
        // Over the inline limit of a page size, though sound (the limit is the decoder's).
        let big = inline_of(&[(b"k", &[1; 300], false)], 0);
        validate_holding(&big).expect("sound");
        let e = BucketValue::decode(&big, 7, 1024)
            .err()
            .expect("over 272 bytes");
        assert!(e.to_string().contains("over the limit"), "{e}");
        assert!(BucketValue::decode(&big, 7, 4096).is_ok());
    }

    #[test]
    fn an_inline_bucket_is_written_inline_while_its_compact_size_with_a_sequence_fits() {
        // 1 KiB pages: a limit of 272 bytes, 3 + 8 + 6 + 1 + value for one key.
        let node = |len: usize| Node::Leaf(LeafNode::single(b"k", &vec![0; len], false));
        assert!(node(272 - 18).inlineable(1024));
        assert!(!node(272 - 17).inlineable(1024));
        assert_eq!(node(272 - 18).encode_inline(u64::MAX).len(), 272);
        // The format-6 rule (a 49-byte page image and the value) kept far fewer bytes inline.
        assert!(node(272 - 49 + 1).inlineable(1024));
    }

    #[test]
    fn a_copied_or_merged_leaf_held_whole_pages_of_heap_and_now_holds_its_entries() {
        // Half a page of entries, as a leaf is after a split.
        let mut n = LeafNode::default();
        for i in 0..11u8 {
            n.insert(i as usize, &[b'k', i], &[i; 150], false);
        }
        let mut b = vec![0u8; 4096];
        Node::Leaf(n.clone()).serialize_into(&mut b, 4096, 7, 1, 0);
        let h = Header::parse(&b).expect("header");
        let page = Page::from_header(7, &h, &b);
        page.validate().expect("valid");
        let copy = LeafNode::from_page(&page).expect("copy");
        assert_eq!(
            copy.heap.len(),
            n.live,
            "the copy holds its keys and values only"
        );
        assert!(
            copy.heap.capacity() < n.live + 2 * 160,
            "room for two more entries"
        );
        for i in 0..n.len() {
            assert_eq!((copy.key(i), copy.value(i)), (n.key(i), n.value(i)));
        }
        // A page whose entries lie in the reverse order of its elements (deadbolt writes them
        // in order; another writer need not) is copied entry by entry.
        let mut r = b.clone();
        let data = HEADER + n.len() * LEAF_ELEM;
        let mut at = data;
        for i in (0..n.len()).rev() {
            let bytes = [n.key(i), n.value(i)].concat();
            r[at..at + bytes.len()].copy_from_slice(&bytes);
            r[HEADER + i * LEAF_ELEM + 4..][..4].copy_from_slice(&(at as u32).to_le_bytes());
            at += bytes.len();
        }
        let h = Header::parse(&r).expect("header");
        let page = Page::from_header(7, &h, &r);
        page.validate().expect("valid");
        let reversed = LeafNode::from_page(&page).expect("copy");
        for i in 0..n.len() {
            assert_eq!((reversed.key(i), reversed.value(i)), (n.key(i), n.value(i)));
        }
        // A merge of the two halves of a split, after removals left dead bytes behind.
        let mut left = copy;
        let right = left.split_off(6);
        assert_eq!(
            right.heap.capacity(),
            2 * right.live,
            "a split's right half has room to double, and no more"
        );
        left.remove(0);
        left.append(right);
        assert_eq!(
            left.heap.len(),
            left.live,
            "the merge dropped the dead bytes"
        );
        assert_eq!(left.heap.capacity(), left.live, "and allocated exactly");
        assert_eq!(left.len(), 10);
        assert_eq!(left.key(9), &[b'k', 10]);
    }

    #[test]
    fn a_branch_entry_returns_its_key_whether_kept_in_place_or_on_the_heap() {
        for len in [1, 8, 29, INLINE_KEY, INLINE_KEY + 1, 300] {
            let key: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let mut e = BranchEntry::new(&key, Child::Node(3));
            assert_eq!(e.key(), &key[..], "length {len}");
            assert_eq!(e.cmp(&key, key_head(&key)), Ordering::Equal);
            let shorter = &key[..len / 2];
            e.set_key(shorter);
            assert_eq!(e.key(), shorter, "length {len} halved");
        }
    }

    /// Pins the contract `Commit::span_buf` relies on since it stopped zeroing spans: a node
    /// serialized into a buffer full of an earlier page's bytes is the same page, byte for byte,
    /// as one serialized into zeros (a byte left unwritten would carry stale data into the
    /// file, under a checksum that vouches for it). Leaves with and without buckets, a
    /// two-page leaf, and a branch.
    #[test]
    fn a_node_serialized_over_stale_bytes_is_the_page_it_makes_over_zeros() {
        let p = 4096;
        let mut leaf = LeafNode::default();
        for i in 0..20u8 {
            leaf.insert(
                i as usize,
                &[b'k', i, i],
                &vec![i; 3 + i as usize],
                i % 7 == 0,
            );
        }
        let mut big = LeafNode::default();
        big.insert(0, b"big", &vec![7u8; 5000], false);
        let mut entries = Vec::new();
        for i in 0..30u64 {
            let r = ChildRef {
                pgid: 10 + i,
                txid: 3,
                crc: i as u32 * 77,
            };
            entries.push(BranchEntry::new(&[b'b', i as u8], Child::Page(r)));
        }
        let nodes = [Node::Leaf(leaf), Node::Leaf(big), Node::Branch(entries)];
        for (n, node) in nodes.iter().enumerate() {
            let len = node.size().div_ceil(p) * p;
            let level = u8::from(!node.is_leaf());
            let mut zeros = vec![0u8; len];
            let mut stale: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8 | 1).collect();
            let a = node.serialize_into(&mut zeros, p, 42, 9, level);
            let b = node.serialize_into(&mut stale, p, 42, 9, level);
            assert_eq!(a, b, "node {n}: checksums differ");
            assert!(
                zeros == stale,
                "node {n}: a byte of the stale buffer survived"
            );
        }
    }
}
