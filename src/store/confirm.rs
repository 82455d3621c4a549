//! Confirmation: telling a commit that is durable apart from one torn by a crash.
//!
//! A commit costs one `fdatasync`, so at open a newest commit whose pages fail verification may
//! be a torn commit from a crash (never acknowledged: rolling it back is right) or an
//! acknowledged commit hit by bit rot, a lost write or truncation (rolling it back would lose
//! data). The two are told apart by a *confirmation*: a meta page on disk saying that commit
//! `t` is durable. Commit `t + 1`'s meta records `durable_base = t`, so every commit but the
//! newest is confirmed by its successor for free. The newest is confirmed off the commit path:
//! after the database has been idle for [`crate::Options::confirm_after`] (by this module's
//! background thread), by [`crate::Db::sync`], at a clean close, and at every writable open. A
//! confirmation is a copy of commit `t`'s meta, flagged, written into the *other* slot (which
//! holds an older commit that is no longer needed) and synced. Open
//! never rolls back a confirmed commit: damage to it is `Error::Corruption`. docs/FORMAT.md,
//! section 7, has the argument why this is safe.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::meta::Meta;
use crate::store::shared::{Signal, Store, Writer};

/// The background thread of a writable database with `confirm_after` set.
pub(crate) struct Confirmer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Confirmer {
    /// Start the thread. It holds the database until [`Confirmer::stop`].
    pub(crate) fn start(inner: Arc<Store>, signal: Arc<Signal>, delay: Duration) -> Confirmer {
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("deadbolt-confirm".into())
            .spawn(move || run(&inner, &s, delay))
            .ok();
        Confirmer { signal, thread }
    }

    /// Stop the thread and wait for it (it finishes a confirmation it has begun).
    pub(crate) fn stop(&mut self) {
        self.signal.state.lock().shutdown = true;
        self.signal.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Confirmer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Wait for a quiet period of `delay` after the last durable commit, then confirm it. The
/// writer lock is only tried, never waited for: a write transaction in progress will commit
/// (and its meta confirms the commit before it) or roll back (and the thread tries again one
/// `delay` later). Loops once per commit or per `delay`, and ends at shutdown.
fn run(inner: &Store, signal: &Signal, delay: Duration) {
    let mut st = signal.state.lock();
    loop {
        if st.shutdown {
            return;
        }
        let Some(at) = st.last_commit else {
            signal.wake.wait(&mut st);
            continue;
        };
        let due = at.checked_add(delay).unwrap_or(at);
        if Instant::now() < due {
            signal.wake.wait_until(&mut st, due);
            continue;
        }
        st.last_commit = None;
        let retry = parking_lot::MutexGuard::unlocked(&mut st, || match inner.writer.try_lock() {
            Some(mut w) => {
                // An error has poisoned the handle already; the next writer hears of it.
                let _ = confirm(inner, &mut w);
                false
            }
            None => true,
        });
        if retry && st.last_commit.is_none() {
            st.last_commit = Some(Instant::now());
        }
    }
}

/// Confirm the newest commit if it is synced and not yet confirmed. Returns whether it wrote
/// a confirmation. Never called on a read-only handle.
pub(crate) fn confirm(inner: &Store, w: &mut Writer) -> Result<bool> {
    let (snap, _) = inner.shared.current();
    let meta = snap.meta;
    if w.poisoned.is_some() || w.confirmed >= meta.txid || w.last_synced < meta.txid {
        return Ok(false);
    }
    write_confirmation(inner, w, &meta)?;
    Ok(true)
}

/// Write the confirmation copy of `meta` (a synced commit) into the other meta slot and sync.
pub(crate) fn write_confirmation(inner: &Store, w: &mut Writer, meta: &Meta) -> Result<()> {
    write_meta(inner, w, &meta.confirmation_copy(), "confirming")?;
    inner.counters.confirmations.fetch_add(1, Relaxed);
    w.confirmed = meta.txid;
    // The next commit overwrites the commit's own meta and leaves the confirmation: if that
    // commit is torn, open still finds `meta` confirmed and re-reads only its own pages (with
    // the confirmation gone it would re-verify everything since `meta`'s durable base, which
    // under `no_sync` is the whole lifetime before the last sync).
    w.next_slot = meta.slot;
    inner.counters.confirmed.store(meta.txid, Relaxed);
    Ok(())
}

/// Write `meta` into its slot and sync, outside a commit. Any I/O error poisons the handle, as
/// for a commit: what reached the disk is unknown.
pub(crate) fn write_meta(inner: &Store, w: &mut Writer, meta: &Meta, what: &str) -> Result<()> {
    let r = inner
        .storage
        .write_at(meta.slot() * inner.page_size as u64, &meta.encode())
        .and_then(|_| inner.storage.sync_data());
    if let Err(e) = r {
        w.poison(format!("{what} commit {} failed: {e}", meta.txid));
        return Err(e.into());
    }
    inner.counters.syncs.fetch_add(1, Relaxed);
    Ok(())
}

impl Store {
    /// [`Db::sync`] with the writer held.
    pub(crate) fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        if let Some(why) = &w.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let (snap, txid) = self.shared.current();
        if w.unsynced || w.last_synced < txid {
            if let Err(e) = self.storage.sync_data() {
                w.poison(format!("sync failed: {e}"));
                return Err(e.into());
            }
            self.counters.syncs.fetch_add(1, Relaxed);
            w.last_synced = txid;
            w.unsynced = false;
            // The newest commit's slot holds the synced state now: the other one is free for
            // the next commit, or for the confirmation below (after which the next commit
            // overwrites the newest commit's own meta instead, see `write_confirmation`).
            w.next_slot = 1 - snap.meta.slot;
            w.synced_hwm = snap.meta.hwm;
            // The newest meta is durable now, and with it what it confirms.
            w.confirmed = w.confirmed.max(snap.meta.durable_base);
        }
        confirm(self, w).map(|_| ())
    }
}
