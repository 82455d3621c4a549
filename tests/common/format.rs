//! A tiny independent reader/patcher of the on-disk format, written from docs/FORMAT.md, for
//! tests that damage files on purpose (and so also check that the document is right).
#![allow(dead_code)]

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref {
    pub pgid: u64,
    pub txid: u64,
    pub crc: u32,
}

pub fn ref_at(b: &[u8], off: usize) -> Ref {
    Ref {
        pgid: u64_at(b, off),
        txid: u64_at(b, off + 8),
        crc: u32_at(b, off + 16),
    }
}
/// A pointer that verifies: page `target`'s id, its header txid and the checksum of its span as
/// the image holds them (what a forgery of a pointer at that page writes).
pub fn ref_to(img: &[u8], p: usize, target: u64) -> Ref {
    let at = target as usize * p;
    let len = span_len(img, p, target).min(img.len() - at);
    Ref {
        pgid: target,
        txid: u64_at(img, at + 16),
        crc: crc32fast::hash(&img[at + 4..at + len]),
    }
}

pub fn put_ref(b: &mut [u8], off: usize, r: Ref) {
    put_u64(b, off, r.pgid);
    put_u64(b, off + 8, r.txid);
    put_u32(b, off + 16, r.crc);
}

pub struct Meta {
    pub slot: usize,
    /// Flag bit 0: a confirmation, the copy of commit `txid`'s meta in the other slot.
    pub confirmation: bool,
    pub txid: u64,
    pub hwm: u64,
    pub root: Ref,
    pub freelist: Ref,
}

/// The newest valid meta of an image with page size `p`.
pub fn newest_meta(img: &[u8], p: usize) -> Meta {
    let mut best: Option<Meta> = None;
    for slot in 0..2 {
        let b = &img[slot * p..slot * p + p];
        if crc32fast::hash(&b[4..]) != u32_at(b, 0) {
            continue;
        }
        let m = Meta {
            slot,
            confirmation: u32_at(b, 48) & 1 != 0,
            txid: u64_at(b, 56),
            hwm: u64_at(b, 72),
            root: ref_at(b, 80),
            freelist: ref_at(b, 104),
        };
        // A confirmation is a copy of the commit's meta in the other slot: the plain meta is
        // the one to patch (mirror_confirmation keeps the copy in step).
        let better = best.as_ref().is_none_or(|x| {
            m.txid > x.txid || (m.txid == x.txid && x.confirmation && !m.confirmation)
        });
        if better {
            best = Some(m);
        }
    }
    best.expect("a valid meta")
}

pub fn span_len(img: &[u8], p: usize, pgid: u64) -> usize {
    let off = pgid as usize * p;
    (1 + u32_at(img, off + 24) as usize) * p
}

/// Recompute the checksum of the span at `pgid`; returns it.
pub fn reseal(img: &mut [u8], p: usize, pgid: u64) -> u32 {
    let off = pgid as usize * p;
    let len = span_len(img, p, pgid);
    let crc = crc32fast::hash(&img[off + 4..off + len]);
    put_u32(img, off, crc);
    crc
}

pub fn page_type(img: &[u8], p: usize, pgid: u64) -> u8 {
    img[pgid as usize * p + 4]
}
pub fn count(img: &[u8], p: usize, pgid: u64) -> usize {
    u16::from_le_bytes(
        img[pgid as usize * p + 6..pgid as usize * p + 8]
            .try_into()
            .unwrap(),
    ) as usize
}

/// Leaf element `i` of page `pgid`: (flags, key range, value range) as absolute offsets.
pub fn leaf_elem(
    img: &[u8],
    p: usize,
    pgid: u64,
    i: usize,
) -> (u8, std::ops::Range<usize>, std::ops::Range<usize>) {
    let base = pgid as usize * p;
    let e = base + 32 + 16 * i;
    let (ko, kl, vl) = (
        u32_at(img, e + 4) as usize,
        u32_at(img, e + 8) as usize,
        u32_at(img, e + 12) as usize,
    );
    (
        img[e],
        base + ko..base + ko + kl,
        base + ko + kl..base + ko + kl + vl,
    )
}

/// Offset of branch element `i` of page `pgid` (its ChildRef fields start there).
pub fn branch_elem(p: usize, pgid: u64, i: usize) -> usize {
    pgid as usize * p + 32 + 32 * i
}

/// Find bucket `name` in the root bucket's tree (assumed to be a single leaf) and return the
/// offset of its header value (ChildRef at +0) and the root leaf's page id.
pub fn top_bucket_header(img: &[u8], p: usize, meta: &Meta, name: &[u8]) -> (usize, u64) {
    let root = meta.root.pgid;
    assert_eq!(
        page_type(img, p, root),
        3,
        "root bucket tree is a single leaf in these tests"
    );
    for i in 0..count(img, p, root) {
        let (_, k, v) = leaf_elem(img, p, root, i);
        if &img[k] == name {
            return (v.start, root);
        }
    }
    panic!("bucket not found")
}

/// After changing the span at `pgid` (a bucket's root page, child of the root leaf which holds
/// its header at `header_off`): reseal it, the root leaf and the newest meta.
pub fn reseal_up(
    img: &mut [u8],
    p: usize,
    pgid: u64,
    header_off: usize,
    root_leaf: u64,
    meta_slot: usize,
) {
    let c = reseal(img, p, pgid);
    put_u32(img, header_off + 16, c);
    let c = reseal(img, p, root_leaf);
    put_u32(img, meta_slot * p + 80 + 16, c);
    reseal(img, p, meta_slot as u64);
    mirror_confirmation(img, p, meta_slot);
}

/// After patching the meta in `slot`: if the other slot holds a confirmation of the same
/// commit (docs/FORMAT.md, section 4), rewrite it as a copy of the patched meta (flag kept), so
/// that the two slots still agree.
pub fn mirror_confirmation(img: &mut [u8], p: usize, slot: usize) {
    let other = 1 - slot;
    let (a, b) = (slot * p, other * p);
    let o = &img[b..b + p];
    let valid = crc32fast::hash(&o[4..]) == u32_at(o, 0);
    if !valid || u32_at(o, 48) & 1 == 0 || u64_at(o, 56) != u64_at(img, a + 56) {
        return;
    }
    let body = img[a + 56..a + p].to_vec();
    img[b + 56..b + p].copy_from_slice(&body);
    reseal(img, p, other as u64);
}

/// Where each reachable span's ChildRef lives: page id -> (absolute offset of the ref, page
/// holding it; the meta slot for the roots). Walks a healthy image only.
pub fn parents(img: &[u8], p: usize) -> (Meta, std::collections::HashMap<u64, (usize, u64)>) {
    let m = newest_meta(img, p);
    let mut map = std::collections::HashMap::new();
    let slot = m.slot as u64;
    let mut stack = Vec::new();
    if m.root.pgid != 0 {
        map.insert(m.root.pgid, (m.slot * p + 80, slot));
        stack.push(m.root.pgid);
    }
    if m.freelist.pgid != 0 {
        map.insert(m.freelist.pgid, (m.slot * p + 104, slot));
        let mut f = m.freelist.pgid;
        loop {
            let prev = ref_at(img, f as usize * p + 48);
            if prev.pgid == 0 {
                break;
            }
            map.insert(prev.pgid, (f as usize * p + 48, f));
            f = prev.pgid;
        }
    }
    while let Some(pg) = stack.pop() {
        let n = count(img, p, pg);
        match page_type(img, p, pg) {
            2 => {
                for i in 0..n {
                    let off = branch_elem(p, pg, i);
                    let c = u64_at(img, off);
                    map.insert(c, (off, pg));
                    stack.push(c);
                }
            }
            3 => {
                for i in 0..n {
                    let (flags, _, v) = leaf_elem(img, p, pg, i);
                    // A 32-byte value is a bucket header; any other length an inline bucket
                    // (compact ones may be shorter), which has no page of its own (FORMAT.md,
                    // section 5).
                    if flags == 1 && v.len() == 32 {
                        let r = ref_at(img, v.start);
                        if r.pgid != 0 {
                            map.insert(r.pgid, (v.start, pg));
                            stack.push(r.pgid);
                        }
                    }
                }
            }
            t => panic!("unexpected page type {t} at {pg}"),
        }
    }
    (m, map)
}

/// Recompute the checksum of `pgid` and of every span above it up to (and including) the meta,
/// so that a change to `pgid` is consistent with every checksum on its path.
pub fn reseal_chain(
    img: &mut [u8],
    p: usize,
    pgid: u64,
    parents: &std::collections::HashMap<u64, (usize, u64)>,
) {
    let mut cur = pgid;
    for _ in 0..200 {
        let c = reseal(img, p, cur);
        match parents.get(&cur) {
            Some(&(off, parent)) => {
                put_u32(img, off + 16, c);
                if parent < 2 {
                    reseal(img, p, parent);
                    mirror_confirmation(img, p, parent as usize);
                    return;
                }
                cur = parent;
            }
            None => return,
        }
    }
}

// ---- inline buckets (FORMAT.md, section 5) ------------------------------------------------

/// One element of an inline bucket; ranges are offsets from the start of the inline value.
#[derive(Clone, Debug)]
pub struct InlineElem {
    /// Where the element itself lies.
    pub elem: std::ops::Range<usize>,
    pub bucket: bool,
    pub key: std::ops::Range<usize>,
    pub value: std::ops::Range<usize>,
}

/// An inline bucket value decoded (a healthy one: this reader trusts it).
#[derive(Clone, Debug)]
pub struct Inline {
    /// The compact encoding of version 7 (else the page image of versions 3 to 6).
    pub compact: bool,
    pub sequence: u64,
    /// Where the element array starts.
    pub elems_at: usize,
    pub elems: Vec<InlineElem>,
}

fn u16_at(b: &[u8], off: usize) -> usize {
    u16::from_le_bytes([b[off], b[off + 1]]) as usize
}

/// Decode inline bucket value `v`: compact if its first byte has bit 7 set (byte 0 = 0x80 |
/// flags, u16 count, the u64 sequence if flag bit 0, then 6-byte elements: u16 key offset,
/// u16 key length, u16 value length with bit 15 the bucket flag), else a page image (a leaf
/// header with the sequence in the page-id field, 16-byte leaf elements).
pub fn inline_bucket(v: &[u8]) -> Inline {
    assert_ne!(v.len(), 32, "a 32-byte value is a bucket header");
    if v[0] & 0x80 != 0 {
        let n = u16_at(v, 1);
        let (sequence, elems_at) = if v[0] & 1 != 0 {
            (u64_at(v, 3), 11)
        } else {
            (0, 3)
        };
        let elems = (0..n)
            .map(|i| {
                let e = elems_at + 6 * i;
                let (ko, kl, vf) = (u16_at(v, e), u16_at(v, e + 2), u16_at(v, e + 4));
                let vl = vf & 0x7fff;
                InlineElem {
                    elem: e..e + 6,
                    bucket: vf & 0x8000 != 0,
                    key: ko..ko + kl,
                    value: ko + kl..ko + kl + vl,
                }
            })
            .collect();
        Inline {
            compact: true,
            sequence,
            elems_at,
            elems,
        }
    } else {
        assert_eq!((u32_at(v, 0), v[4]), (0, 3), "an inline page image");
        let n = u16_at(v, 6);
        let elems = (0..n)
            .map(|i| {
                let e = 32 + 16 * i;
                let (ko, kl, vl) = (
                    u32_at(v, e + 4) as usize,
                    u32_at(v, e + 8) as usize,
                    u32_at(v, e + 12) as usize,
                );
                InlineElem {
                    elem: e..e + 16,
                    bucket: v[e] & 1 != 0,
                    key: ko..ko + kl,
                    value: ko + kl..ko + kl + vl,
                }
            })
            .collect();
        Inline {
            compact: false,
            sequence: u64_at(v, 8),
            elems_at: 32,
            elems,
        }
    }
}

/// The entries of inline value `v`: (key, value, is a bucket).
pub fn inline_entries(v: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, bool)> {
    inline_bucket(v)
        .elems
        .iter()
        .map(|e| {
            (
                v[e.key.clone()].to_vec(),
                v[e.value.clone()].to_vec(),
                e.bucket,
            )
        })
        .collect()
}

/// Inline value `v` as a writer of versions 3 to 6 wrote it: the page image (checksum 0, type
/// leaf, count, the sequence in the page-id field, no prefixes), its nested inline buckets
/// rewritten the same way.
pub fn inline_as_image(v: &[u8]) -> Vec<u8> {
    let ib = inline_bucket(v);
    let entries: Vec<(Vec<u8>, Vec<u8>, bool)> = inline_entries(v)
        .into_iter()
        .map(|(k, val, b)| {
            let val = if b && val.len() != 32 {
                inline_as_image(&val)
            } else {
                val
            };
            (k, val, b)
        })
        .collect();
    let mut out = vec![0u8; 32 + 16 * entries.len()];
    out[4] = 3;
    out[6..8].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    put_u64(&mut out, 8, ib.sequence);
    for (i, (k, val, b)) in entries.iter().enumerate() {
        let e = 32 + 16 * i;
        out[e] = u8::from(*b);
        let at = out.len() as u32;
        put_u32(&mut out, e + 4, at);
        put_u32(&mut out, e + 8, k.len() as u32);
        put_u32(&mut out, e + 12, val.len() as u32);
        out.extend_from_slice(k);
        out.extend_from_slice(val);
    }
    out
}

/// Rewrite leaf `pgid` as a writer of version 6 would have: every inline bucket in it as a
/// page image ([`inline_as_image`]); keys, flags and key prefixes kept, keys and values packed
/// again after the elements. The caller reseals the checksums (the values grow: the leaf must
/// still fit its span).
pub fn leaf_as_version_6(img: &mut [u8], p: usize, pgid: u64) {
    let base = pgid as usize * p;
    let len = span_len(img, p, pgid);
    let n = count(img, p, pgid);
    let mut data = Vec::new();
    let mut elems = Vec::new();
    for i in 0..n {
        let (flags, k, v) = leaf_elem(img, p, pgid, i);
        let value = if flags == 1 && v.len() != 32 {
            inline_as_image(&img[v])
        } else {
            img[v].to_vec()
        };
        let e = base + 32 + 16 * i;
        elems.push((img[e..e + 4].to_vec(), k.len(), value.len()));
        data.extend_from_slice(&img[k]);
        data.extend_from_slice(&value);
    }
    let start = 32 + 16 * n;
    assert!(
        start + data.len() <= len,
        "the version-6 leaf fits its span"
    );
    img[base + start..base + len].fill(0);
    img[base + start..base + start + data.len()].copy_from_slice(&data);
    let mut at = start;
    for (i, (head, kl, vl)) in elems.into_iter().enumerate() {
        let e = base + 32 + 16 * i;
        img[e..e + 4].copy_from_slice(&head);
        put_u32(img, e + 4, at as u32);
        put_u32(img, e + 8, kl as u32);
        put_u32(img, e + 12, vl as u32);
        at += kl + vl;
    }
}

/// Set the format version of both metas to `v` (resealed; a confirmation stays a copy).
pub fn set_version(img: &mut [u8], p: usize, v: u32) {
    for slot in 0..2 {
        put_u32(img, slot * p + 40, v);
        reseal(img, p, slot as u64);
    }
}
