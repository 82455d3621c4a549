//! File growth while a large bucket is walked at start-up and writer threads churn it: one long
//! read transaction against `Db::scan`'s slices, side by side on the same schedule.
//!
//! ```sh
//! cargo run --release --example scan_growth [ENTRIES] [WRITERS]   # defaults 1000000 4
//! ```
//!
//! The walk goes through the bucket in 100 steps; after each step it waits until the writers
//! (each calling `Db::batch` with 50 random keys per call) have rewritten another 0.1% of the
//! keys, so that 10% of them are churned while the walk runs, whatever the machine's speed.
//! A read transaction pins every page freed after its snapshot; the scan holds one only for
//! the length of a slice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use deadbolt::{Db, Error, ScanLimits};

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

/// A small deterministic generator per writer (SplitMix64).
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Run {
    file_before: u64,
    file_after: u64,
    churned: u64,
    commits: u64,
    secs: f64,
}

fn run(n: u64, writers: usize, sliced: bool) -> Result<Run, Error> {
    let dir = tempfile::tempdir().map_err(Error::Io)?;
    let db = Arc::new(Db::open(dir.path().join("growth.db"))?);
    let chunk = 100_000;
    for start in (0..n).step_by(chunk) {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"volumes")?;
            for i in start..(start + chunk as u64).min(n) {
                b.put(&key(i), &[b'v'; 150])?;
            }
            Ok::<_, Error>(())
        })?;
    }
    db.sync()?;
    let s0 = db.stats();
    let churned = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (db, churned, stop) = (db.clone(), churned.clone(), stop.clone());
            std::thread::spawn(move || -> Result<(), Error> {
                let mut seed = w as u64 + 1;
                while !stop.load(Ordering::Relaxed) {
                    let keys: Vec<u64> = (0..50).map(|_| next(&mut seed) % n).collect();
                    db.batch(move |tx| {
                        let b = tx.bucket(b"volumes")?.ok_or(Error::BucketNotFound)?;
                        for &k in &keys {
                            b.put(&key(k), &[b'w'; 150])?;
                        }
                        Ok(())
                    })?;
                    churned.fetch_add(50, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let t = Instant::now();
    let step = n / 100;
    let per_step = n / 1000; // 0.1% of the keys per 1% walked: 10% in all
    let wait_for = |done_steps: u64| {
        while churned.load(Ordering::Relaxed) < done_steps * per_step {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    };
    let mut walked = 0u64;
    if sliced {
        let limits = ScanLimits {
            entries: step as usize,
            bytes: usize::MAX,
            pages: None,
        };
        for s in db.scan(&[b"volumes"], .., limits) {
            walked += s?.entries.len() as u64;
            wait_for(walked / step);
        }
    } else {
        let tx = db.begin_read()?;
        let b = tx.bucket(b"volumes")?.ok_or(Error::BucketNotFound)?;
        for kv in b.iter() {
            kv?;
            walked += 1;
            if walked.is_multiple_of(step) {
                wait_for(walked / step);
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread")?;
    }
    assert_eq!(walked, n, "the walk saw every key once");
    let s1 = db.stats();
    Ok(Run {
        file_before: s0.file_size,
        file_after: s1.file_size,
        churned: churned.load(Ordering::Relaxed),
        commits: s1.commits - s0.commits,
        secs,
    })
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("ENTRIES"));
    let writers: usize = args.next().map_or(4, |a| a.parse().expect("WRITERS"));
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!("{n} entries (8-byte keys, 150-byte values), {writers} writer threads churning 10% during the walk");
    for (name, sliced) in [
        ("one long read transaction", false),
        ("Db::scan slices", true),
    ] {
        let r = run(n, writers, sliced)?;
        println!(
            "{name:>26}: file {:.1} MiB -> {:.1} MiB (+{:.1} MiB), {} keys rewritten in {} commits, walk {:.1} s",
            mib(r.file_before),
            mib(r.file_after),
            mib(r.file_after.saturating_sub(r.file_before)),
            r.churned,
            r.commits,
            r.secs
        );
    }
    Ok(())
}
