//! Nested buckets a read transaction has opened, so that opening one again is a hash probe
//! instead of a lookup in its parent's tree (bbolt keeps the same per-transaction map of
//! opened buckets). A read transaction's snapshot never changes, so a bucket's header, once
//! read and verified, is the same on every later read of it.
//!
//! Only buckets whose root is a tree of pages are kept: an inline bucket's root borrows from
//! its parent's page, which a map inside the transaction cannot hold, and opening one is a
//! lookup in that small parent anyway.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

use crate::format::page::ChildRef;

/// Most buckets kept per transaction, the bound on the map's memory: names of at most
/// [`MAX_CACHED_NAME`] bytes, so about 1.3 MB at worst, for a transaction that opened 4,096
/// buckets. Past it, buckets are still opened, by lookup, just not kept. (At 1,024 the
/// benchmark's 1,100 nested buckets did not fit, and the lookups of the 76 left out went
/// through their parents' trees every time: 6% of the nested-read instructions.)
pub(crate) const MAX_CACHED_BUCKETS: usize = 4096;

/// Longest name kept; a longer one is opened by lookup every time.
const MAX_CACHED_NAME: usize = 256;

struct Cached {
    parent: u64,
    name: Box<[u8]>,
    root: ChildRef,
    seq: u64,
}

/// The map, keyed by a hash of (parent root page, name); a hit is checked against both, so a
/// collision only costs a lookup.
///
/// The hash is foldhash's, with a fixed seed, not std's SipHash: with SipHash (run once for the
/// slot and once more by the map on it) the two probes of a nested-bucket read were half its
/// instructions. A file whose names collide on purpose gains nothing: the map is bounded by
/// [`MAX_CACHED_BUCKETS`], and a colliding name is simply not kept.
#[derive(Default)]
pub(crate) struct BucketCache {
    map: HashMap<u64, Cached, FixedState>,
}

fn slot(parent: u64, name: &[u8]) -> u64 {
    let mut h = FixedState::default().build_hasher();
    h.write_u64(parent);
    h.write(name);
    h.finish()
}

impl BucketCache {
    /// The root and sequence of bucket `name` of the bucket whose root page is `parent`.
    pub(crate) fn get(&self, parent: u64, name: &[u8]) -> Option<(ChildRef, u64)> {
        let c = self.map.get(&slot(parent, name))?;
        (c.parent == parent && *c.name == *name).then_some((c.root, c.seq))
    }

    /// Keep bucket `name` of the bucket whose root page is `parent`, unless the map is full or
    /// the name is long.
    pub(crate) fn put(&mut self, parent: u64, name: &[u8], root: ChildRef, seq: u64) {
        if self.map.len() >= MAX_CACHED_BUCKETS || name.len() > MAX_CACHED_NAME {
            return;
        }
        self.map
            .entry(slot(parent, name))
            .or_insert_with(|| Cached {
                parent,
                name: name.into(),
                root,
                seq,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pgid: u64) -> ChildRef {
        ChildRef {
            pgid,
            txid: 1,
            crc: 7,
        }
    }

    #[test]
    fn a_cached_bucket_is_found_only_under_its_own_parent_and_name() {
        let mut c = BucketCache::default();
        c.put(5, b"jobs", r(9), 3);
        assert_eq!(c.get(5, b"jobs").map(|(r, s)| (r.pgid, s)), Some((9, 3)));
        assert!(c.get(6, b"jobs").is_none());
        assert!(c.get(5, b"job").is_none());
        assert!(c.get(5, b"jobs2").is_none());
    }

    #[test]
    fn the_bucket_cache_stops_growing_at_its_bound() {
        let mut c = BucketCache::default();
        for i in 0..(MAX_CACHED_BUCKETS as u64 + 100) {
            c.put(1, &i.to_be_bytes(), r(i + 10), 0);
        }
        assert_eq!(c.map.len(), MAX_CACHED_BUCKETS);
        assert!(c.get(1, &0u64.to_be_bytes()).is_some());
        let past = MAX_CACHED_BUCKETS as u64 + 50;
        assert!(c.get(1, &past.to_be_bytes()).is_none());
        c.put(1, &[0u8; MAX_CACHED_NAME + 1], r(3), 0);
        assert!(c.get(1, &[0u8; MAX_CACHED_NAME + 1]).is_none());
    }
}
