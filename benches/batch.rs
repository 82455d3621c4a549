//! Group commit versus one commit per call, both durable (one fdatasync per commit).
//!
//! * `update/1-thread`: one thread, one-key `Db::update` per iteration.
//! * `batch/8-threads`: 8 threads, one-key `Db::batch` per call, `max_size` = 8 (bbolt's
//!   advice: match the batch size to the number of concurrent writers); criterion's time
//!   per iteration is the wall time per call across all threads.
//! * `update/8-threads`: 8 threads calling `Db::update` (serialised by the writer lock, one
//!   sync each): separates the gain of batching from how the machine's sync latency changes
//!   when threads are busy (on small VMs a lone thread's fdatasync is often several times
//!   slower than one issued while other threads run).
//! * `batch-default/8-threads`: the same with the default options (1000 calls, 10 ms), where
//!   every batch waits out the delay.
//!
//! At the end the ratio of commit rates (calls per second, 8-thread batch over 1-thread update)
//! is printed from the same measurements. Run: `cargo bench --bench batch`
//! (quick: `cargo bench --bench batch -- --measurement-time 3 --warm-up-time 1`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use deadbolt::{BatchOptions, Db, Error, FileOptions, FileStorage, Options, Storage, View};

const THREADS: u64 = 8;

/// Total nanoseconds and calls measured per benchmark (warm-up included), for the ratio.
struct Tally {
    nanos: AtomicU64,
    calls: AtomicU64,
}

impl Tally {
    const fn new() -> Tally {
        Tally {
            nanos: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }
    }
    fn add(&self, d: Duration, calls: u64) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(calls, Ordering::Relaxed);
    }
    fn rate(&self) -> f64 {
        let n = self.nanos.load(Ordering::Relaxed) as f64;
        self.calls.load(Ordering::Relaxed) as f64 / (n / 1e9).max(1e-9)
    }
}

static UPDATE: Tally = Tally::new();
static UPDATE8: Tally = Tally::new();
static BATCH: Tally = Tally::new();
static BATCH_DEFAULT: Tally = Tally::new();

fn open(dir: &tempfile::TempDir, name: &str) -> Arc<Db> {
    let db = Db::open(dir.path().join(name)).expect("open");
    db.update(|tx| tx.create_bucket_if_not_exists(b"b").map(|_| ()))
        .expect("bucket");
    Arc::new(db)
}

/// A file whose `sync_data` takes a fixed time instead of the shared disk's drifting one:
/// the batching gain without the noise of other workloads on the same disk.
struct FixedSync {
    file: FileStorage,
    latency: Duration,
}

impl Storage for FixedSync {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn view(&self) -> std::io::Result<Arc<dyn View>> {
        self.file.view()
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        std::thread::sleep(self.latency);
        Ok(())
    }
    fn create(&self, image: &[u8]) -> std::io::Result<()> {
        // The real atomic creation: only the commit path's sync latency is simulated.
        self.file.create(image)
    }
}

fn open_fixed(dir: &tempfile::TempDir, name: &str, latency: Duration) -> Arc<Db> {
    let fo = FileOptions {
        read_only: false,
        create: true,
        lock_timeout: None,
    };
    let (file, _) = FileStorage::open(&dir.path().join(name), &fo).expect("file");
    let db =
        Db::open_storage(Arc::new(FixedSync { file, latency }), Options::default()).expect("open");
    db.update(|tx| tx.create_bucket_if_not_exists(b"b").map(|_| ()))
        .expect("bucket");
    Arc::new(db)
}

fn put(tx: &deadbolt::Tx<'_>, k: u64) -> Result<(), Error> {
    tx.create_bucket_if_not_exists(b"b")?
        .put(&(k % 4096).to_be_bytes(), &k.to_le_bytes())
}

/// `iters` calls spread over 8 threads calling `batch` (or `update`); returns the time
/// scaled to `iters`.
fn run_threads(db: &Arc<Db>, iters: u64, tally: &Tally, batch: bool) -> Duration {
    let per = iters.div_ceil(THREADS).max(1);
    let start = Arc::new(Barrier::new(THREADS as usize + 1));
    let hs: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, start) = (db.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..per {
                    let k = t * 1_000_000 + i;
                    if batch {
                        db.batch(move |tx| put(tx, k)).expect("batch");
                    } else {
                        db.update(|tx| put(tx, k)).expect("update");
                    }
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in hs {
        h.join().expect("batch thread");
    }
    let d = t0.elapsed();
    let calls = per * THREADS;
    tally.add(d, calls);
    d.mul_f64(iters as f64 / calls as f64)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("durable-one-key");
    g.throughput(Throughput::Elements(1));

    let db = open(&dir, "update.db");
    let mut k = 0u64;
    g.bench_function("update/1-thread", |b| {
        b.iter_custom(|iters| {
            let t0 = Instant::now();
            for _ in 0..iters {
                k += 1;
                db.update(|tx| put(tx, k)).expect("update");
            }
            let d = t0.elapsed();
            UPDATE.add(d, iters);
            d
        })
    });

    let db = open(&dir, "update8.db");
    g.bench_function("update/8-threads", |b| {
        b.iter_custom(|iters| run_threads(&db, iters, &UPDATE8, false))
    });

    let db = open(&dir, "batch.db");
    db.set_batch_options(BatchOptions {
        max_size: THREADS as usize,
        max_delay: Duration::from_millis(10),
    })
    .expect("options");
    g.bench_function("batch/8-threads", |b| {
        b.iter_custom(|iters| run_threads(&db, iters, &BATCH, true))
    });

    let db = open(&dir, "batch-default.db");
    g.bench_function("batch-default/8-threads", |b| {
        b.iter_custom(|iters| run_threads(&db, iters, &BATCH_DEFAULT, true))
    });
    g.finish();

    let (u, u8, b, bd) = (
        UPDATE.rate(),
        UPDATE8.rate(),
        BATCH.rate(),
        BATCH_DEFAULT.rate(),
    );
    println!(
        "\ncommit rates (calls/s, warm-up included): update 1 thread {u:.0}, update 8 threads \
         {u8:.0}, batch 8 threads (max_size 8) {b:.0}, batch 8 threads (default options) {bd:.0}"
    );
    println!(
        "RATIO batch(8 threads, max_size 8) / update(1 thread) = {:.2}x (target >= 5x); \
         vs update(8 threads) {:.2}x; default options / update(1 thread) {:.2}x",
        b / u,
        b / u8,
        bd / u
    );
}

/// Calls per second over `window`: one thread calling `update`, or 8 threads calling `batch`.
fn rate_for(db: &Arc<Db>, window: Duration, batch: bool, base: u64) -> f64 {
    let t0 = Instant::now();
    let deadline = t0 + window;
    let threads = if batch { THREADS } else { 1 };
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                // Bounded by the window (and, absurdly fast storage aside, by the count).
                while Instant::now() < deadline && n < 10_000_000 {
                    let k = base + t * 1_000_000 + n;
                    if batch {
                        db.batch(move |tx| put(tx, k)).expect("batch");
                    } else {
                        db.update(|tx| put(tx, k)).expect("update");
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let calls: u64 = hs.into_iter().map(|h| h.join().expect("thread")).sum();
    calls as f64 / t0.elapsed().as_secs_f64()
}

/// The headline ratio, robust to a shared disk whose sync latency drifts: alternate short
/// windows of 1-thread `update` and 8-thread `batch` and take the median of the per-round
/// ratios. `DEADBOLT_RATIO_ROUNDS` (default 5) and `DEADBOLT_RATIO_WINDOW_MS` (default 1000).
fn interleaved_ratio() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = env("DEADBOLT_RATIO_ROUNDS", 5).clamp(1, 1000);
    let window = Duration::from_millis(env("DEADBOLT_RATIO_WINDOW_MS", 1000));
    let dir = tempfile::tempdir().expect("tempdir");
    let fixed = Duration::from_micros(env("DEADBOLT_RATIO_SYNC_US", 1000));
    let setups = [
        (
            "real fdatasync",
            open(&dir, "ratio-update.db"),
            open(&dir, "ratio-batch.db"),
        ),
        (
            "fixed-latency sync",
            open_fixed(&dir, "fixed-update.db", fixed),
            open_fixed(&dir, "fixed-batch.db", fixed),
        ),
    ];
    let option_sets = [
        ("default options", BatchOptions::default()),
        (
            "max_size 8",
            BatchOptions {
                max_size: THREADS as usize,
                max_delay: Duration::from_millis(10),
            },
        ),
    ];
    for (opt_name, opts) in option_sets {
        for (name, du, db) in &setups {
            db.set_batch_options(opts).expect("options");
            let mut ratios = Vec::new();
            for r in 0..rounds {
                let u = rate_for(du, window, false, r * 100_000_000);
                let b = rate_for(db, window, true, r * 100_000_000);
                println!(
                    "{name}, {opt_name}, round {r}: update 1 thread {u:.0} calls/s, \
                     batch 8 threads {b:.0} calls/s, ratio {:.2}x",
                    b / u
                );
                ratios.push(b / u);
            }
            ratios.sort_by(|a, b| a.total_cmp(b));
            let med = ratios[ratios.len() / 2];
            let detail = if *name == "fixed-latency sync" {
                format!(", sync {fixed:?}")
            } else {
                String::new()
            };
            println!(
                "RATIO {name}{detail}, {opt_name} (interleaved, median of {rounds} rounds of \
                 {window:?}): batch 8 threads / update 1 thread = {med:.2}x (target >= 5x)"
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_ratio();
}
