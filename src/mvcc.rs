//! The concurrency core, kept small so it can be model-checked with loom (`--cfg loom`):
//! publishing a new commit to readers, registering and ending read transactions, and the rule
//! that decides when pages freed by a commit may be reused.

use std::collections::BTreeMap;

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) type Mutex<T> = parking_lot::Mutex<T>;

#[cfg(loom)]
fn lock<T>(m: &Mutex<T>) -> loom::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
#[cfg(not(loom))]
fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

struct Inner<S> {
    current: Arc<S>,
    txid: u64,
    /// Live read transactions by snapshot txid.
    readers: BTreeMap<u64, usize>,
}

/// The published snapshot and the table of live readers, under one lock so that "which
/// snapshot did this reader get" and "which readers exist" are always consistent.
pub(crate) struct Registry<S> {
    inner: Mutex<Inner<S>>,
}

impl<S> Registry<S> {
    pub(crate) fn new(s: S, txid: u64) -> Registry<S> {
        Registry {
            inner: Mutex::new(Inner {
                current: Arc::new(s),
                txid,
                readers: BTreeMap::new(),
            }),
        }
    }

    /// Take the newest snapshot and register a reader on it.
    pub(crate) fn begin_read(&self) -> (Arc<S>, u64) {
        let mut g = lock(&self.inner);
        let t = g.txid;
        *g.readers.entry(t).or_insert(0) += 1;
        (g.current.clone(), t)
    }

    /// End a reader registered by [`Registry::begin_read`].
    pub(crate) fn end_read(&self, txid: u64) {
        let mut g = lock(&self.inner);
        if let Some(n) = g.readers.get_mut(&txid) {
            *n -= 1;
            if *n == 0 {
                g.readers.remove(&txid);
            }
        }
    }

    /// The newest snapshot, without registering (the writer's view).
    pub(crate) fn current(&self) -> (Arc<S>, u64) {
        let g = lock(&self.inner);
        (g.current.clone(), g.txid)
    }

    /// The oldest snapshot a live reader holds.
    pub(crate) fn oldest_reader(&self) -> Option<u64> {
        lock(&self.inner).readers.keys().next().copied()
    }

    /// Number of live readers.
    pub(crate) fn readers(&self) -> u64 {
        lock(&self.inner).readers.values().sum::<usize>() as u64
    }

    /// Make `s` (commit `txid`) the snapshot new readers get.
    pub(crate) fn publish(&self, s: S, txid: u64) {
        let mut g = lock(&self.inner);
        g.current = Arc::new(s);
        g.txid = txid;
    }

    /// Replace the published snapshot only if no reader older than `txid` is live; returns
    /// whether it did (used to shrink the file safely). `f` runs under the lock.
    pub(crate) fn publish_if_no_older_readers(
        &self,
        txid: u64,
        f: impl FnOnce() -> Option<S>,
    ) -> bool {
        let mut g = lock(&self.inner);
        if g.readers.keys().next().is_some_and(|&t| t < txid) {
            return false;
        }
        match f() {
            Some(s) => {
                g.current = Arc::new(s);
                true
            }
            None => false,
        }
    }
}

/// Pages freed by commit `k` are visible to every snapshot older than `k`. They may be reused
/// once no live reader holds a snapshot older than `k` and commit `k` is durable (so that the
/// commit a crash falls back to never loses a page). Returns the largest `k` that qualifies.
pub(crate) fn reusable_upto(oldest_reader: Option<u64>, last_synced: u64) -> u64 {
    oldest_reader.unwrap_or(u64::MAX).min(last_synced)
}
