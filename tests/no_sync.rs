//! `no_sync` with `Db::sync`: once a sync has returned, a power cut recovers that commit or a
//! later one, never an error and never an older state (docs/FORMAT.md, section 7). Each test
//! opens with the bug it pins.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use deadbolt::{Db, Error, MemStorage, Options, Storage, View};
use parking_lot::Mutex;

const P: usize = 1024;
const SECTOR: usize = 512;

/// A write or length change issued since the last sync.
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

/// An in-memory file that knows what is durable: the bytes as of the last `sync_data`, and the
/// writes and length changes issued since, in order. A power cut keeps any subset of those,
/// a write possibly only in part (sector by sector), which is what a disk with a volatile
/// cache may do.
struct CutStorage {
    current: MemStorage,
    durable: Mutex<Vec<u8>>,
    pending: Mutex<Vec<Pending>>,
}

impl CutStorage {
    fn new() -> CutStorage {
        CutStorage {
            current: MemStorage::new(),
            durable: Mutex::new(Vec::new()),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// The image after a power cut: the durable bytes plus, for each pending operation in
    /// order, all of it, none of it, or (a write) a random subset of its sectors.
    fn power_cut(&self, rng: &mut Rng) -> Vec<u8> {
        let mut img = self.durable.lock().clone();
        for op in self.pending.lock().iter() {
            match op {
                Pending::SetLen(len) => {
                    if rng.below(2) == 0 {
                        img.resize(*len as usize, 0);
                    }
                }
                Pending::Write(off, data) => {
                    let how = rng.below(3);
                    for (i, chunk) in data.chunks(SECTOR).enumerate() {
                        let keep = match how {
                            0 => true,
                            1 => false,
                            _ => rng.below(2) == 0,
                        };
                        if keep {
                            let at = *off as usize + i * SECTOR;
                            if img.len() < at + chunk.len() {
                                img.resize(at + chunk.len(), 0);
                            }
                            img[at..at + chunk.len()].copy_from_slice(chunk);
                        }
                    }
                }
            }
        }
        img
    }
}

impl Storage for CutStorage {
    fn len(&self) -> io::Result<u64> {
        self.current.len()
    }
    fn view(&self) -> io::Result<Arc<dyn View>> {
        self.current.view()
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.pending
            .lock()
            .push(Pending::Write(offset, data.to_vec()));
        self.current.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.pending.lock().push(Pending::SetLen(len));
        self.current.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        *self.durable.lock() = self.current.to_bytes();
        self.pending.lock().clear();
        Ok(())
    }
    fn create(&self, image: &[u8]) -> io::Result<()> {
        self.current.create(image)?;
        self.sync_data()
    }
}

/// splitmix64: the test's only source of randomness, from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

fn content(db: &Db) -> Result<State, Error> {
    db.view(|tx| {
        let mut out = State::new();
        if let Some(b) = tx.bucket(b"b")? {
            for e in b.iter() {
                let (k, v) = e?;
                out.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(out)
    })
}

fn seeds() -> Vec<u64> {
    match std::env::var("DEADBOLT_SEED") {
        Ok(s) => vec![s.parse().expect("DEADBOLT_SEED is a number")],
        Err(_) => (0..1000).collect(),
    }
}

/// One lifetime under `no_sync`: random commits (values up to two pages, deletes), a
/// `Db::sync` now and then, then a power cut. Returns the image, the state after every commit
/// by txid, and the txid of the last commit a returned `Db::sync` covered.
fn lifetime(seed: u64) -> (Vec<u8>, BTreeMap<u64, State>, u64) {
    let mut rng = Rng(seed);
    let storage = Arc::new(CutStorage::new());
    let opts = Options {
        page_size: P,
        no_sync: true,
        confirm_after: None,
        ..Options::default()
    };
    let db = Db::open_storage(storage.clone(), opts).expect("open a new database");
    let mut states = BTreeMap::new();
    let mut state = State::new();
    states.insert(db.recovery().txid, state.clone());
    let mut synced = db.recovery().txid;
    for _ in 0..2 + rng.below(12) {
        let n = 1 + rng.below(20);
        // Now and then a commit deletes everything: the end of the file falls free, and the
        // next commits shrink it (while the synced commit's high-water mark is higher).
        let wipe = rng.below(6) == 0;
        let big = rng.below(4) == 0;
        let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
            .map(|_| {
                let k = format!("key-{:03}", rng.below(64)).into_bytes();
                let v = (rng.below(4) != 0).then(|| {
                    let most = if big { 16 * P } else { 2 * P };
                    let len = rng.below(most as u64) as usize;
                    vec![b'a' + rng.below(26) as u8; len]
                });
                (k, v)
            })
            .collect();
        if wipe {
            ops = state.keys().map(|k| (k.clone(), None)).collect();
        }
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"b")?;
            for (k, v) in &ops {
                match v {
                    Some(v) => b.put(k, v)?,
                    None => {
                        b.delete(k)?;
                    }
                }
            }
            Ok::<_, Error>(())
        })
        .expect("commit");
        // A transaction that changed nothing commits nothing (and takes no txid).
        let txid = db.stats().txid;
        for (k, v) in ops {
            match v {
                Some(v) => state.insert(k, v),
                None => state.remove(&k),
            };
        }
        states.insert(txid, state.clone());
        if rng.below(4) == 0 {
            db.sync().expect("Db::sync");
            if std::env::var("NS_TRACE").is_ok() {
                eprintln!("sync after {txid}: {:?}", db.stats());
            }
            synced = txid;
        }
    }
    let img = storage.power_cut(&mut rng);
    // The process dies with the power: nothing more reaches the disk.
    std::mem::forget(db);
    (img, states, synced)
}

#[test]
fn a_power_cut_after_db_sync_under_no_sync_recovers_the_synced_commit_or_a_later_one() {
    // Two bugs. Before meta slots were chosen by where the synced commit stands, the second
    // unsynced commit after a sync overwrote the synced commit's own meta slot: a power cut that
    // tore it while the first unsynced commit's pages were lost left no meta that verifies, and
    // the database did not open at all. And an unsynced commit whose high-water mark fell could
    // cut the file below the synced commit's: a power cut that kept the new length but not the
    // new meta left the synced commit past the end of the file (Corruption at open).
    for seed in seeds() {
        let (img, states, synced) = lifetime(seed);
        let db = Db::open_storage(
            Arc::new(MemStorage::from_bytes(img)),
            Options {
                page_size: P,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| panic!("seed {seed} (DEADBOLT_SEED={seed}): open failed: {e}"));
        let txid = db.recovery().txid;
        assert!(
            txid >= synced,
            "seed {seed} (DEADBOLT_SEED={seed}): recovered commit {txid}, but Db::sync had \
             returned after commit {synced}"
        );
        let want = states
            .get(&txid)
            .unwrap_or_else(|| panic!("seed {seed}: recovered txid {txid} was never committed"));
        let got = content(&db).unwrap_or_else(|e| panic!("seed {seed}: read failed: {e}"));
        assert!(
            &got == want,
            "seed {seed} (DEADBOLT_SEED={seed}): commit {txid}'s data differs"
        );
        let report = db.check().expect("check");
        assert!(report.is_ok(), "seed {seed}: check: {:?}", report.problems);
    }
}

/// 40 commits of 50 new 100-byte values each (2,000 keys in bucket `b`); returns the pages the
/// last commit wrote.
fn fill(db: &Db) -> u64 {
    let mut last = 0;
    for c in 0..40u32 {
        let before = db.stats().pages_written;
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"b")?;
            for i in 0..50u32 {
                b.put(format!("k{:05}", c * 50 + i).as_bytes(), &[7u8; 100])?;
            }
            Ok::<_, Error>(())
        })
        .expect("commit");
        last = db.stats().pages_written - before;
    }
    last
}

#[test]
fn an_open_after_a_no_sync_lifetime_closed_cleanly_reads_only_the_last_commits_pages() {
    // The bug: open verified every page written since the durable base of the newest meta,
    // and under `no_sync` that base never moved past the open that began the lifetime, so the
    // next open read most of the database (8,782 of 9,791 pages in the issue-14 measurement)
    // although a confirmation said all of it was synced.
    for no_sync in [true, false] {
        let storage = Arc::new(MemStorage::new());
        let opts = Options {
            page_size: P,
            no_sync,
            confirm_after: None,
            ..Options::default()
        };
        let db = Db::open_storage(storage.clone(), opts.clone()).expect("open");
        let last = fill(&db);
        let pages = db.stats().high_water;
        db.close().expect("close");
        let db = Db::open_storage(storage, opts).expect("reopen");
        let s = db.stats();
        // Of a confirmed commit open reads the pages that commit wrote, and the free-list chain.
        assert!(
            s.pages_verified <= last + 2 * s.freelist_chain,
            "no_sync={no_sync}: open verified {} pages of {pages} (the last commit wrote {last}, \
             free-list chain {})",
            s.pages_verified,
            s.freelist_chain
        );
        assert!(
            s.pages_verified > 0,
            "the last commit's own pages are verified"
        );
        eprintln!(
            "no_sync={no_sync}: open verified {} of {pages} pages (last commit wrote {last})",
            s.pages_verified
        );
        assert_eq!(content(&db).expect("read").len(), 2000);
    }
}

impl CutStorage {
    /// The image after a power cut that tears the last write (the newest meta): the durable
    /// bytes, every earlier pending write, and only the first 64 bytes of the last one (a
    /// sector torn inside: the meta's header is new, its fields old, its checksum wrong).
    fn power_cut_tearing_the_last_write(&self) -> Vec<u8> {
        let mut img = self.durable.lock().clone();
        let pending = self.pending.lock();
        let last = pending
            .iter()
            .rposition(|op| matches!(op, Pending::Write(..)));
        for (i, op) in pending.iter().enumerate() {
            match op {
                Pending::SetLen(len) => img.resize(*len as usize, 0),
                Pending::Write(off, data) => {
                    let data = if Some(i) == last {
                        &data[..64.min(data.len())]
                    } else {
                        &data[..]
                    };
                    let at = *off as usize;
                    if img.len() < at + data.len() {
                        img.resize(at + data.len(), 0);
                    }
                    img[at..at + data.len()].copy_from_slice(data);
                }
            }
        }
        img
    }
}

#[test]
fn a_torn_first_commit_after_a_reopen_leaves_the_last_commit_confirmed_and_open_reads_only_its_pages(
) {
    // The bug: the first commit after a confirmation overwrote the confirmation. Torn, it left
    // the confirmed commit unconfirmed with the durable base of the no_sync lifetime that wrote
    // it, and open re-verified every page written since (found by the open-cost invariant of
    // the harness: 206 pages against a bound of 89).
    let storage = Arc::new(CutStorage::new());
    let opts = Options {
        page_size: P,
        no_sync: true,
        confirm_after: None,
        ..Options::default()
    };
    let db = Db::open_storage(storage.clone(), opts.clone()).expect("open");
    let last = fill(&db);
    let txid = db.stats().txid;
    db.close().expect("close");
    // The next lifetime: open (which confirms the commit again if need be), one commit, and
    // the power fails as that commit's meta is written.
    let db = Db::open_storage(storage.clone(), opts).expect("reopen");
    db.update(|tx| {
        tx.bucket(b"b")?
            .ok_or(Error::BucketNotFound)?
            .put(b"late", b"x")
    })
    .expect("commit");
    let img = storage.power_cut_tearing_the_last_write();
    std::mem::forget(db);
    let db = Db::open_storage(
        Arc::new(MemStorage::from_bytes(img)),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
    .expect("open after the power cut");
    let r = db.recovery();
    assert_eq!(
        r.txid, txid,
        "the torn commit is rolled back to the confirmed one"
    );
    assert!(
        r.pages_verified <= last,
        "open verified {} tree pages; the confirmed commit wrote {last}",
        r.pages_verified
    );
    assert_eq!(content(&db).expect("read").len(), 2000);
}
