//! The concurrency core, kept small so it can be model-checked with loom (`--cfg loom`):
//! publishing a new commit to readers, registering and ending read transactions, and the rule
//! that decides when pages freed by a commit may be reused.

use std::collections::BTreeMap;
use std::time::Instant;

// `Arc` stays std's under loom too: the crate also uses it for `Arc<dyn Storage>` and
// `Arc<dyn View>`, which need unsized coercion (loom's `Arc` has none, so aliasing it made the
// crate fail to build under `--cfg loom`); a reference count is not the logic being modeled.
// The lock that orders publishing and reader registration is loom's.
#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
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
    /// Live read transactions by (snapshot txid, registration number), with when each
    /// began: the first is the oldest snapshot held, and its oldest reader.
    readers: BTreeMap<(u64, u64), Instant>,
    /// The registration number of the next reader.
    next_reader: u64,
}

/// A live reader, as the registry knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reader {
    pub txid: u64,
    /// Registration number: unique for the life of the registry.
    pub id: u64,
    pub since: Instant,
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
                next_reader: 0,
            }),
        }
    }

    /// Take the newest snapshot and register a reader on it; returns the snapshot, its txid
    /// and the reader's registration number (for [`Registry::end_read`]).
    pub(crate) fn begin_read(&self) -> (Arc<S>, u64, u64) {
        let now = Instant::now();
        let mut g = lock(&self.inner);
        let (t, id) = (g.txid, g.next_reader);
        g.next_reader += 1;
        g.readers.insert((t, id), now);
        (g.current.clone(), t, id)
    }

    /// End a reader registered by [`Registry::begin_read`].
    pub(crate) fn end_read(&self, txid: u64, id: u64) {
        lock(&self.inner).readers.remove(&(txid, id));
    }

    /// The reader of the oldest snapshot held (the earliest registered among its readers).
    pub(crate) fn oldest(&self) -> Option<Reader> {
        let g = lock(&self.inner);
        g.readers
            .iter()
            .next()
            .map(|(&(txid, id), &since)| Reader { txid, id, since })
    }

    /// The newest snapshot, without registering (the writer's view).
    pub(crate) fn current(&self) -> (Arc<S>, u64) {
        let g = lock(&self.inner);
        (g.current.clone(), g.txid)
    }

    /// The oldest snapshot a live reader holds.
    pub(crate) fn oldest_reader(&self) -> Option<u64> {
        lock(&self.inner).readers.keys().next().map(|k| k.0)
    }

    /// Number of live readers.
    pub(crate) fn readers(&self) -> u64 {
        lock(&self.inner).readers.len() as u64
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
        if g.readers.keys().next().is_some_and(|&(t, _)| t < txid) {
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

/// Model checks of the registry and the reuse rule (`RUSTFLAGS="--cfg loom" cargo test
/// --release --lib loom_models`). Pages are a small array of "written by txid" cells; a
/// reader checks that every page of its snapshot still holds what its snapshot expects, i.e.
/// that no commit reused a page a live reader can see. The writer's free space is the real
/// [`crate::freelist::FreeState`], released with the real rule.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::store::free::FreeState;
    use loom::sync::atomic::{AtomicU64, Ordering};
    use loom::thread;

    const PAGES: usize = 8;
    const TRUNCATED: u64 = u64::MAX;

    /// A committed state: for each node of the tree, its page and the txid that wrote it
    /// (what a parent records), and the high-water mark.
    #[derive(Clone, Debug)]
    struct Snap {
        txid: u64,
        nodes: Vec<(u64, u64)>,
    }

    /// The file: which commit last wrote each page.
    struct Disk {
        written_by: Vec<AtomicU64>,
    }

    impl Disk {
        fn new(initial: &Snap) -> Disk {
            let d = Disk {
                written_by: (0..PAGES).map(|_| AtomicU64::new(0)).collect(),
            };
            for &(p, t) in &initial.nodes {
                d.written_by[p as usize].store(t, Ordering::Relaxed);
            }
            d
        }
    }

    /// The single writer's private state.
    struct Writer {
        free: FreeState,
        last_synced: u64,
        hwm: u64,
        /// The pages of the newest durable commit (what a crash falls back to).
        durable: Vec<(u64, u64)>,
    }

    type Rule = fn(Option<u64>, u64) -> u64;

    /// Explore `f` under loom (preemptions bounded by `LOOM_MAX_PREEMPTIONS`, 2 by default)
    /// and report how many executions were checked.
    fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = n.clone();
        b.check(move || {
            m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f()
        });
        eprintln!(
            "loom {name}: {} executions",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    fn initial(nodes: u64) -> (Snap, Writer) {
        let s = Snap {
            txid: 1,
            nodes: (0..nodes).map(|p| (p, 1)).collect(),
        };
        let w = Writer {
            free: FreeState::default(),
            last_synced: 1,
            hwm: nodes,
            durable: s.nodes.clone(),
        };
        (s, w)
    }

    /// One read transaction: register, read every page of the snapshot, end.
    fn read_tx(reg: &Registry<Snap>, disk: &Disk) -> u64 {
        let (snap, t, id) = reg.begin_read();
        assert_eq!(
            snap.txid, t,
            "registered under another txid than the snapshot's"
        );
        for &(p, by) in &snap.nodes {
            let now = disk.written_by[p as usize].load(Ordering::Acquire);
            assert_eq!(
                now, by,
                "page {p} of snapshot {t} was overwritten (by txid {now}) while a reader held it"
            );
        }
        reg.end_read(t, id);
        t
    }

    /// Commit `txid + 1` rewriting node `node` copy-on-write, as `Tx::new_write` + `commit` do:
    /// release what the rule allows, allocate (free pages first), write, free the old page
    /// into this commit's pending list, sync (or not), publish.
    fn commit(
        reg: &Registry<Snap>,
        disk: &Disk,
        w: &mut Writer,
        node: usize,
        sync: bool,
        rule: Rule,
    ) {
        let (cur, t) = reg.current();
        let upto = rule(reg.oldest_reader(), w.last_synced);
        w.free.release(upto).expect("no page is freed twice");
        let page = match w.free.free.alloc(1) {
            Some(p) => p,
            None => {
                w.hwm += 1;
                w.hwm - 1
            }
        };
        assert!((page as usize) < PAGES, "model out of pages");
        assert!(
            !w.durable.iter().any(|&(p, _)| p == page),
            "page {page} of the durable commit {} reused before a newer commit was synced",
            w.last_synced
        );
        let txid = t + 1;
        disk.written_by[page as usize].store(txid, Ordering::Release);
        let mut nodes = cur.nodes.clone();
        let old = nodes[node].0;
        nodes[node] = (page, txid);
        w.free.pending.entry(txid).or_default().push((old, 1));
        if sync {
            w.last_synced = txid;
            w.durable = nodes.clone();
        }
        reg.publish(Snap { txid, nodes }, txid);
    }

    /// `Db::sync`: everything so far becomes durable.
    fn sync(reg: &Registry<Snap>, w: &mut Writer) {
        let (cur, t) = reg.current();
        w.last_synced = t;
        w.durable = cur.nodes.clone();
    }

    fn run_reuse_model(name: &str, rule: Rule, readers: usize, plan: &'static [(usize, bool)]) {
        check(name, move || {
            let (s, mut w) = initial(2);
            let disk = Arc::new(Disk::new(&s));
            let reg = Arc::new(Registry::new(s, 1));
            let hs: Vec<_> = (0..readers)
                .map(|_| {
                    let (reg, disk) = (reg.clone(), disk.clone());
                    thread::spawn(move || {
                        let a = read_tx(&reg, &disk);
                        let b = read_tx(&reg, &disk);
                        assert!(b >= a, "a later reader got an older snapshot");
                    })
                })
                .collect();
            for &(node, synced) in plan {
                commit(&reg, &disk, &mut w, node, synced, rule);
            }
            sync(&reg, &mut w);
            for h in hs {
                h.join().expect("reader");
            }
            assert_eq!(reg.readers(), 0);
            assert_eq!(reg.oldest_reader(), None);
            // With no reader left, everything freed by durable commits becomes reusable.
            let upto = rule(reg.oldest_reader(), w.last_synced);
            w.free.release(upto).expect("no page is freed twice");
            assert_eq!(w.free.pending_pages(), 0);
        });
    }

    /// Durable commits racing two readers: no reader ever sees a reused page.
    #[test]
    fn durable_commits_never_reuse_a_page_a_reader_sees() {
        run_reuse_model(
            "durable",
            reusable_upto,
            2,
            &[(0, true), (1, true), (0, true)],
        );
    }

    /// Unsynced commits (`no_sync`) and one reader: pages freed by an unsynced commit wait
    /// for a sync, so the commit a crash falls back to stays intact; readers are safe too.
    #[test]
    fn unsynced_frees_wait_for_a_sync() {
        run_reuse_model(
            "unsynced",
            reusable_upto,
            1,
            &[(0, false), (0, false), (1, true), (0, true)],
        );
    }

    /// The model has teeth: a rule that ignores live readers is caught.
    #[test]
    #[should_panic(expected = "overwritten")]
    fn a_rule_ignoring_readers_is_caught() {
        run_reuse_model(
            "no-readers rule",
            |_, synced| synced,
            1,
            &[(0, true), (0, true)],
        );
    }

    /// ...and so is one that ignores durability.
    #[test]
    #[should_panic(expected = "durable commit")]
    fn a_rule_ignoring_durability_is_caught() {
        run_reuse_model(
            "no-sync rule",
            |r, _| r.unwrap_or(u64::MAX),
            0,
            &[(0, false), (0, false)],
        );
    }

    /// Shrinking the file (`publish_if_no_older_readers`): pages past the new end are cut
    /// only when no reader of an older snapshot, which may still point there, is live.
    #[test]
    fn shrink_never_cuts_pages_an_older_reader_sees() {
        check("shrink", || {
            let (s, _w) = initial(3);
            let disk = Arc::new(Disk::new(&s));
            let reg = Arc::new(Registry::new(s, 1));
            let r = {
                let (reg, disk) = (reg.clone(), disk.clone());
                thread::spawn(move || {
                    read_tx(&reg, &disk);
                })
            };
            // Commit 2 drops node 2 (the last page); then try to cut the file after page 1.
            let (cur, _) = reg.current();
            let mut nodes = cur.nodes.clone();
            nodes.pop();
            let s2 = Snap { txid: 2, nodes };
            reg.publish(s2.clone(), 2);
            let d = disk.clone();
            let _cut = reg.publish_if_no_older_readers(2, move || {
                d.written_by[2].store(TRUNCATED, Ordering::Release);
                Some(s2)
            });
            r.join().expect("reader");
            assert_eq!(reg.readers(), 0);
        });
    }
}
