//! Stress: several writers move amounts between accounts (the total never changes) and churn
//! a second bucket so that pages are freed and reused all the time; several readers check that
//! the total holds and that their snapshot never changes under them while commits go on.
//! At the end, and after reopening, the file passes the integrity check.
//!
//! Duration: `DEADBOLT_STRESS_SECS` (default 3). Seeded: the seed is printed; replay the same
//! choices with `DEADBOLT_SEED=<seed>` (thread timing still differs between runs).
//! Asserts invariants only, never speed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use deadbolt::{BatchOptions, Db, Error, Options, Tx};

const ACCOUNTS: u64 = 64;
const START: u64 = 1_000;
const TOTAL: u64 = ACCOUNTS * START;
const WRITERS: u64 = 3;
const READERS: u64 = 3;
/// Upper bound on any thread's iterations, whatever the duration.
const MAX_ITERS: u64 = 50_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn acct_key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn num(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().expect("8-byte amount"))
}

/// A churn value that names its key and generation, so a reader can tell a page that was
/// overwritten under it (the value would belong to another key or change between looks).
fn churn_value(key: u64, gen: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(16));
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(&gen.to_be_bytes());
    let fill = (key ^ gen) as u8;
    v.resize(len.max(16), fill);
    v
}

fn churn_ok(k: &[u8], v: &[u8]) -> bool {
    if k.len() != 8 || v.len() < 16 {
        return false;
    }
    let key = num(k);
    let gen = num(&v[8..16]);
    v[..8] == key.to_be_bytes() && v[16..].iter().all(|&b| b == (key ^ gen) as u8)
}

/// One transfer (and some churn) in `tx`. Deterministic given its arguments, so that a batch
/// may run it more than once.
fn transfer(
    tx: &Tx<'_>,
    from: u64,
    to: u64,
    amount: u64,
    churn: (u64, u64, usize, bool),
) -> Result<(), Error> {
    let a = tx.bucket(b"acct")?.ok_or(Error::BucketNotFound)?;
    let fv = num(&a.get(&acct_key(from))?.ok_or(Error::BucketNotFound)?);
    let tv = num(&a.get(&acct_key(to))?.ok_or(Error::BucketNotFound)?);
    if from != to && fv >= amount {
        a.put(&acct_key(from), &(fv - amount).to_be_bytes())?;
        a.put(&acct_key(to), &(tv + amount).to_be_bytes())?;
    }
    let c = tx.bucket(b"churn")?.ok_or(Error::BucketNotFound)?;
    let (key, gen, len, delete) = churn;
    if delete {
        c.delete(&key.to_be_bytes())?;
    } else {
        c.put(&key.to_be_bytes(), &churn_value(key, gen, len))?;
    }
    Ok(())
}

/// Everything a reader sees in its snapshot: accounts and churn, in key order.
type Seen = (Vec<(Vec<u8>, Vec<u8>)>, Vec<(Vec<u8>, Vec<u8>)>);

fn look(tx: &Tx<'_>) -> Result<Seen, Error> {
    let mut acct = Vec::new();
    for kv in tx.bucket(b"acct")?.ok_or(Error::BucketNotFound)?.iter() {
        let (k, v) = kv?;
        acct.push((k.into_owned(), v.into_owned()));
    }
    let mut churn = Vec::new();
    for kv in tx.bucket(b"churn")?.ok_or(Error::BucketNotFound)?.iter() {
        let (k, v) = kv?;
        churn.push((k.into_owned(), v.into_owned()));
    }
    Ok((acct, churn))
}

fn check_seen(seen: &Seen, seed: u64, what: &str) {
    assert_eq!(
        seen.0.len() as u64,
        ACCOUNTS,
        "seed {seed}: {what}: account count"
    );
    let total: u64 = seen.0.iter().map(|(_, v)| num(v)).sum();
    assert_eq!(total, TOTAL, "seed {seed}: {what}: total changed");
    for (k, v) in &seen.1 {
        assert!(
            churn_ok(k, v),
            "seed {seed}: {what}: churn value damaged for key {k:?}"
        );
    }
}

#[test]
fn transfers_keep_the_total_and_snapshots_hold() {
    run(false);
}

/// The same with `no_sync` commits and an occasional `Db::sync`: pages freed by unsynced
/// commits must wait for a sync as well as for readers.
#[test]
fn transfers_keep_the_total_without_sync_per_commit() {
    run(true);
}

fn run(no_sync: bool) {
    let secs: f64 = std::env::var("DEADBOLT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let seed: u64 = std::env::var("DEADBOLT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("stress: seed {seed} (replay with DEADBOLT_SEED={seed}), {secs} s, no_sync {no_sync}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.db");
    // Small pages: deeper trees, more splits, more freeing and reuse per commit.
    let db = Arc::new(
        Db::open_with(
            &path,
            Options {
                page_size: 1024,
                no_sync,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    db.set_batch_options(BatchOptions {
        max_size: WRITERS as usize,
        max_delay: Duration::from_millis(2),
    })
    .unwrap();
    db.update(|tx| {
        let a = tx.create_bucket(b"acct")?;
        for i in 0..ACCOUNTS {
            a.put(&acct_key(i), &START.to_be_bytes())?;
        }
        tx.create_bucket(b"churn")?;
        Ok::<_, Error>(())
    })
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new((WRITERS + READERS) as usize));
    let commits = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();

    for w in 0..WRITERS {
        let (db, stop, start, commits) = (db.clone(), stop.clone(), start.clone(), commits.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            start.wait();
            for _ in 0..MAX_ITERS {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                let (from, to) = (rng.below(ACCOUNTS), rng.below(ACCOUNTS));
                let amount = rng.below(START / 2);
                let churn = (
                    rng.below(256),
                    rng.next(),
                    16 + rng.below(3000) as usize,
                    rng.below(3) == 0,
                );
                match rng.below(8) {
                    // Through the group commit.
                    0..=3 => db
                        .batch(move |tx| transfer(tx, from, to, amount, churn))
                        .unwrap_or_else(|e| panic!("seed {seed}: batch: {e}")),
                    // An explicit sync now and then (what makes no_sync frees reusable).
                    4 if rng.below(4) == 0 => db
                        .sync()
                        .unwrap_or_else(|e| panic!("seed {seed}: sync: {e}")),
                    // A plain update.
                    4..=6 => db
                        .update(|tx| transfer(tx, from, to, amount, churn))
                        .unwrap_or_else(|e| panic!("seed {seed}: update: {e}")),
                    // Work that is rolled back must leave no trace.
                    _ => {
                        let tx = db.begin_write().unwrap();
                        transfer(&tx, from, to, amount + 1, churn).unwrap();
                        let a = tx.bucket(b"acct").unwrap().unwrap();
                        a.put(&acct_key(from), &u64::MAX.to_be_bytes()).unwrap();
                        tx.rollback();
                    }
                }
                commits.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    for r in 0..READERS {
        let (db, stop, start, reads) = (db.clone(), stop.clone(), start.clone(), reads.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = Rng(seed ^ (r + 101).wrapping_mul(0x9FB2_1C65_1E98_DF25));
            start.wait();
            for _ in 0..MAX_ITERS {
                if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    break;
                }
                let tx = db.begin_read().unwrap();
                let id = tx.id();
                let first = look(&tx).unwrap_or_else(|e| panic!("seed {seed}: read: {e}"));
                check_seen(&first, seed, "first look");
                // Hold the snapshot while writers commit, free and reuse pages.
                let looks = 1 + rng.below(3);
                for n in 0..looks {
                    std::thread::sleep(Duration::from_micros(rng.below(3000)));
                    let again = look(&tx).unwrap_or_else(|e| panic!("seed {seed}: re-read: {e}"));
                    assert_eq!(tx.id(), id);
                    assert!(
                        again == first,
                        "seed {seed}: snapshot {id} changed under its reader (look {n})"
                    );
                }
                // Point reads agree with the scan.
                let a = tx.bucket(b"acct").unwrap().unwrap();
                let k = rng.below(ACCOUNTS);
                let v = a.get(&acct_key(k)).unwrap().unwrap();
                assert_eq!(
                    &v[..],
                    &first.0[k as usize].1[..],
                    "seed {seed}: get vs scan"
                );
                drop(tx);
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let mut panicked = false;
    for h in handles {
        if h.join().is_err() {
            panicked = true;
            stop.store(true, Ordering::Relaxed);
        }
    }
    assert!(!panicked, "seed {seed}: a stress thread failed (see above)");

    let st = db.stats();
    println!(
        "stress: {} writes, {} read snapshots, {} commits, {} syncs, {} free + {} pending pages",
        commits.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        st.commits,
        st.syncs,
        st.free_pages,
        st.pending_pages
    );
    let final_seen = look(&db.begin_read().unwrap()).unwrap();
    check_seen(&final_seen, seed, "final");
    let report = db.check().unwrap();
    assert!(report.is_ok(), "seed {seed}: check: {:?}", report.problems);
    drop(db);

    let db = Db::open(&path).unwrap();
    let again = look(&db.begin_read().unwrap()).unwrap();
    assert!(again == final_seen, "seed {seed}: reopened file differs");
    let report = db.check().unwrap();
    assert!(
        report.is_ok(),
        "seed {seed}: check after reopen: {:?}",
        report.problems
    );
}
