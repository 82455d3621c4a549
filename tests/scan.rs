//! Resumable scans (`Db::scan`): slices in their own short transactions, checked against a
//! model of every commit a concurrent writer made, and the file growth they avoid.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use common::{for_seeds, Rng};
use deadbolt::{Db, Error, MemStorage, Options, ScanLimits};

/// Each key's history: (txid of the commit, value after it; `None`: deleted).
type History = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn value_at(h: &History, key: &[u8], txid: u64) -> Option<Vec<u8>> {
    let changes = h.get(key)?;
    changes
        .iter()
        .rev()
        .find(|(t, _)| *t <= txid)
        .and_then(|(_, v)| v.clone())
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn open_small_pages() -> Db {
    Db::open_storage(
        Arc::new(MemStorage::new()),
        Options {
            page_size: 1024,
            no_sync: false,
            ..Options::default()
        },
    )
    .unwrap()
}

/// The scan's slices, concatenated, against the writer's history: every key in order and
/// once; each returned value is the key's value in the snapshot of its slice; every key that
/// was present and unchanged from the scan's first slice to its last is returned.
#[test]
fn a_scan_under_concurrent_writes_returns_each_key_once_in_order_as_some_commit_had_it() {
    for_seeds("scan", 0..8, |seed| {
        let db = Arc::new(open_small_pages());
        let mut rng = Rng::new(seed);
        let history = Arc::new(Mutex::new(History::new()));
        // Initial contents: 4,000 keys of a 6,000-key space.
        let txid = db
            .update(|tx| {
                let b = tx.create_bucket(b"b")?;
                for i in 0..4000 {
                    if rng.chance(66) {
                        let len = rng.below(80) as usize;
                        b.put(&key(i), &rng.bytes(len))?;
                    }
                }
                Ok::<_, Error>(tx.id() + 1)
            })
            .unwrap();
        db.view(|tx| {
            let mut h = history.lock().unwrap();
            for kv in tx.bucket(b"b")?.unwrap().iter() {
                let (k, v) = kv?;
                h.insert(k.to_vec(), vec![(txid, Some(v.to_vec()))]);
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = {
            let (db, history, stop, done) =
                (db.clone(), history.clone(), stop.clone(), done.clone());
            let mut rng = Rng::new(seed ^ 0xabcd);
            std::thread::spawn(move || {
                let mut commits = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || commits < 20 {
                    let mut changes = Vec::new();
                    for _ in 0..1 + rng.below(30) {
                        let k = key(rng.below(6000));
                        let v = if rng.chance(40) {
                            None
                        } else {
                            let len = rng.below(80) as usize;
                            Some(rng.bytes(len))
                        };
                        changes.push((k, v));
                    }
                    let txid = db
                        .update(|tx| {
                            let b = tx.bucket(b"b")?.unwrap();
                            for (k, v) in &changes {
                                match v {
                                    Some(v) => b.put(k, v)?,
                                    None => b.delete(k)?,
                                }
                            }
                            Ok::<_, Error>(tx.id() + 1)
                        })
                        .unwrap();
                    let mut h = history.lock().unwrap();
                    for (k, v) in changes {
                        h.entry(k).or_default().push((txid, v));
                    }
                    commits += 1;
                    done.store(commits, std::sync::atomic::Ordering::Release);
                    if commits > 5000 {
                        break;
                    }
                }
            })
        };
        let limits = ScanLimits {
            entries: 1 + rng.below(200) as usize,
            bytes: 64 + rng.below(8000) as usize,
            pages: if rng.chance(50) {
                Some(10 + rng.below(30))
            } else {
                None
            },
        };
        let mut slices = Vec::new();
        for s in db.scan(&[b"b"], .., limits) {
            slices.push(s.unwrap());
            // Now and then, wait for the writer to commit between two slices (bounded: the
            // writer stops after 5,000 commits, or on a failure).
            if rng.chance(30) {
                let seen = done.load(std::sync::atomic::Ordering::Acquire);
                while done.load(std::sync::atomic::Ordering::Acquire) == seen
                    && !writer.is_finished()
                {
                    std::thread::yield_now();
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        let h = history.lock().unwrap();
        let (first, last) = (slices[0].txid, slices.last().unwrap().txid);
        let mut prev: Option<Vec<u8>> = None;
        let mut returned = std::collections::BTreeSet::new();
        for s in &slices {
            assert!(!s.entries.is_empty(), "seed {seed}: an empty slice");
            assert!(s.entries.len() <= limits.entries);
            for (k, v) in &s.entries {
                assert!(
                    prev.as_ref().is_none_or(|p| p < k),
                    "seed {seed}: out of order"
                );
                prev = Some(k.clone());
                assert_eq!(
                    value_at(&h, k, s.txid).as_ref(),
                    Some(v),
                    "seed {seed}: {:?} is not as commit {} had it",
                    String::from_utf8_lossy(k),
                    s.txid
                );
                returned.insert(k.clone());
            }
        }
        for (k, changes) in h.iter() {
            let present_throughout = value_at(&h, k, first).is_some()
                && changes.iter().all(|(t, _)| *t <= first || *t > last);
            if present_throughout {
                assert!(
                    returned.contains(k),
                    "seed {seed}: {:?} was there for the whole scan but not returned",
                    String::from_utf8_lossy(k)
                );
            }
        }
        assert!(slices.len() > 1, "seed {seed}: one slice");
        assert!(last > first, "seed {seed}: no commit during the scan");
    });
}

#[test]
fn a_scan_continues_from_a_saved_position_and_rejects_a_page_budget_too_small_to_move() {
    let db = open_small_pages();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..3000 {
            b.put(&key(i), &[7u8; 50])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let limits = ScanLimits {
        entries: 100,
        ..ScanLimits::default()
    };
    let mut scan = db.scan(&[b"b"], .., limits);
    let first = scan.next().unwrap().unwrap();
    assert_eq!(first.entries.len(), 100);
    let saved = scan.position().clone();
    assert_eq!(saved, Bound::Excluded(key(99)));
    drop(scan);
    // Later: a new scan from the saved position.
    let rest: usize = db
        .scan_from(&[b"b"], saved, Bound::Unbounded, limits)
        .map(|s| s.unwrap().entries.len())
        .sum();
    assert_eq!(rest, 2900);
    // One page cannot reach a leaf of a three-level tree.
    let tight = ScanLimits {
        pages: Some(1),
        ..limits
    };
    let mut scan = db.scan(&[b"b"], .., tight);
    assert!(matches!(scan.next(), Some(Err(Error::InvalidArgument(_)))));
    assert!(scan.next().is_none() && scan.is_done());
    // A missing bucket is an error, not an empty scan.
    let mut scan = db.scan(&[b"nope"], .., limits);
    assert!(matches!(scan.next(), Some(Err(Error::BucketNotFound))));
}

/// Churn `keys` random keys in one commit.
fn churn(db: &Db, rng: &mut Rng, n: u64, keys: u64) {
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for _ in 0..keys {
            b.put(&key(rng.below(n)), &rng.bytes(100))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// File growth while a 60,000-entry bucket is walked and a writer rewrites 10% of its keys in
/// 60 commits between the walk's steps (the same schedule both ways): one long read
/// transaction pins every page the writer frees, the resumable scan pins one slice's.
#[test]
fn a_scan_in_slices_lets_writers_reuse_pages_that_one_long_walk_pins() {
    let n = 60_000u64;
    let grow = |sliced: bool| -> (u64, u64) {
        let db = Db::open_storage(Arc::new(MemStorage::new()), Options::default()).unwrap();
        let mut rng = Rng::new(5);
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..n {
                b.put(&key(i), &rng.bytes(100))?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        // Settle the free space the load left behind.
        churn(&db, &mut rng, n, 1);
        churn(&db, &mut rng, n, 1);
        let before = db.stats().file_size;
        let mut walked = 0u64;
        let per_step = n / 60;
        if sliced {
            let limits = ScanLimits {
                entries: per_step as usize,
                ..ScanLimits::default()
            };
            for s in db.scan(&[b"b"], .., limits) {
                walked += s.unwrap().entries.len() as u64;
                churn(&db, &mut rng, n, n / 10 / 60);
            }
        } else {
            let tx = db.begin_read().unwrap();
            let b = tx.bucket(b"b").unwrap().unwrap();
            for kv in b.iter() {
                kv.unwrap();
                walked += 1;
                if walked.is_multiple_of(per_step) {
                    churn(&db, &mut rng, n, n / 10 / 60);
                }
            }
        }
        assert!(walked >= n);
        (db.stats().file_size - before, before)
    };
    let (long, base) = grow(false);
    let (sliced, _) = grow(true);
    eprintln!("file {base} bytes; growth: one long walk {long}, sliced scan {sliced}");
    assert!(
        long > base / 20,
        "the long walk grew the file by {long} only"
    );
    assert!(sliced * 8 < long, "sliced {sliced} vs long {long}");
}
