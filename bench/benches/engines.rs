//! Criterion benchmarks of the comparison's workloads at a small size, on every built engine.
//!
//! `cargo bench -p deadbolt-bench` (add `--no-default-features` for deadbolt alone). The report
//! command (`cargo run --release -p deadbolt-bench`) runs the full-size comparison.

use std::cell::Cell;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use deadbolt_bench::{engine_names, key, open, Engine, Rng};
use tempfile::TempDir;

const ENTRIES: u64 = 20_000;
/// Keys put into a fresh database, and removed from a loaded one, in one transaction.
const BULK: u64 = 10_000;

fn engines(c: &mut Criterion) {
    for name in engine_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = open(name, &dir.path().join("db")).expect("open");
        db.write(0..ENTRIES).expect("load");
        let next = Cell::new(ENTRIES);
        let mut g = c.benchmark_group(name);
        g.sample_size(10).measurement_time(Duration::from_secs(2));

        let mut r = Rng::new(7);
        let keys: Vec<_> = (0..1_000).map(|_| key(r.below(ENTRIES))).collect();
        g.bench_function("random_reads_1000", |b| {
            b.iter(|| assert_eq!(db.get(&keys).expect("get"), 1_000))
        });

        let mut r = Rng::new(8);
        let starts: Vec<_> = (0..100).map(|_| key(r.below(ENTRIES))).collect();
        g.bench_function("range_scans_100x100", |b| {
            b.iter(|| db.scan(&starts, 100).expect("scan"))
        });

        g.bench_function("durable_commit_1_key", |b| {
            b.iter(|| {
                let i = next.get();
                next.set(i + 1);
                db.write(i..i + 1).expect("commit")
            })
        });

        g.bench_function("batch_write_1000_keys", |b| {
            b.iter_batched(
                || {
                    let i = next.get();
                    next.set(i + 1_000);
                    i
                },
                |i| db.write(i..i + 1_000).expect("batch"),
                BatchSize::PerIteration,
            )
        });

        // A fresh database per iteration, made (and dropped) outside the measurement.
        g.bench_function("bulk_put_10000_keys", |b| {
            b.iter_batched(
                || fresh(name),
                |(db, dir)| {
                    db.write(0..BULK).expect("bulk put");
                    (db, dir)
                },
                BatchSize::PerIteration,
            )
        });

        // bbolt-rs 1.3.10 panics in its freelist on removals ("Page N already freed", see
        // examples/bbolt_repro.rs), which would end the whole run.
        if name != "bbolt-rs" {
            g.bench_function("remove_10000_of_20000_keys", |b| {
                b.iter_batched(
                    || {
                        let (db, dir) = fresh(name);
                        db.write(0..ENTRIES).expect("load");
                        (db, dir)
                    },
                    |(db, dir)| {
                        db.remove(0..BULK).expect("remove");
                        (db, dir)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }
}

/// A fresh, empty database of engine `name` in a directory of its own (dropped after it).
fn fresh(name: &str) -> (Box<dyn Engine>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(name, &dir.path().join("db")).expect("open");
    (db, dir)
}

criterion_group!(benches, engines);
criterion_main!(benches);
