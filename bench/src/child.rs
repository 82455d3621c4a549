//! The child process of one engine's run: every workload in turn on a fresh database, each
//! figure printed as a `RESULT name value` line for the parent.

use std::path::Path;
use std::time::Instant;

use deadbolt_bench::{open, peak_rss_kib, random_keys, temp_dir_in, Engine, Res, Rng};

use crate::sizes::{BATCH_SIZE, INDIVIDUAL_COMMITS, SCAN_LEN};

fn emit(name: &str, v: f64) {
    println!("RESULT {name} {v}");
    eprintln!("  {name} = {v:.1}");
}

/// Run every workload on one engine and print `RESULT name value` lines.
pub fn child(name: &str, n: u64, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-bench-")?;
    let dir = tmp.path().join("db");
    let db: Box<dyn Engine> = open(name, &dir)?;
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get()) as u64;

    let t = Instant::now();
    db.write(0..n)?;
    emit("bulk_load_ms", t.elapsed().as_secs_f64() * 1e3);

    let syncs0 = db.syncs();
    let mut next = n;
    let t = Instant::now();
    for _ in 0..INDIVIDUAL_COMMITS {
        db.write(next..next + 1)?;
        next += 1;
    }
    emit(
        "individual_per_s",
        INDIVIDUAL_COMMITS as f64 / t.elapsed().as_secs_f64(),
    );
    if let (Some(a), Some(b)) = (syncs0, db.syncs()) {
        emit(
            "engine_syncs_per_commit",
            (b - a) as f64 / INDIVIDUAL_COMMITS as f64,
        );
    }

    let batches = (n / 10_000).max(10);
    let t = Instant::now();
    for _ in 0..batches {
        db.write(next..next + BATCH_SIZE)?;
        next += BATCH_SIZE;
    }
    emit("batch_ms", t.elapsed().as_secs_f64() * 1e3);

    let reads = random_keys(1, n, n);
    let t = Instant::now();
    let found = db.get(&reads)?;
    emit("reads_1t_per_s", n as f64 / t.elapsed().as_secs_f64());
    if found != n {
        return Err(format!("{name}: found {found} of {n} keys").into());
    }

    let per_thread: Vec<_> = (0..threads).map(|t| random_keys(100 + t, n, n)).collect();
    let t = Instant::now();
    let found: Res<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = per_thread
            .iter()
            .map(|keys| {
                let db: &dyn Engine = &*db;
                s.spawn(move || db.get(keys))
            })
            .collect();
        let mut total = 0;
        for h in hs {
            total += h.join().map_err(|_| "reader thread panicked")??;
        }
        Ok(total)
    });
    emit(
        "reads_nt_per_s",
        (n * threads) as f64 / t.elapsed().as_secs_f64(),
    );
    if found? != n * threads {
        return Err(format!("{name}: multi-threaded reads missed keys").into());
    }
    emit("threads", threads as f64);
    drop(per_thread);

    let starts = random_keys(2, (n / 100).max(100), n);
    let t = Instant::now();
    let scanned = db.scan(&starts, SCAN_LEN)?;
    emit(
        "scan_entries_per_s",
        scanned as f64 / t.elapsed().as_secs_f64(),
    );

    let nested = n / 10;
    db.nested_write(0..nested)?;
    let mut r = Rng::new(3);
    let idx: Vec<u64> = (0..n).map(|_| r.below(nested)).collect();
    let t = Instant::now();
    let found = db.nested_get(&idx)?;
    emit("nested_reads_per_s", n as f64 / t.elapsed().as_secs_f64());
    if found != n {
        return Err(format!("{name}: nested reads found {found} of {n}").into());
    }
    emit("nested_native", f64::from(u8::from(db.nested_native())));

    let t = Instant::now();
    db.remove(0..n / 2)?;
    emit("removals_ms", t.elapsed().as_secs_f64() * 1e3);

    emit("size_bytes", deadbolt_bench::dir_size(&dir)? as f64);
    let cdir = tmp.path().join("compact");
    std::fs::create_dir_all(&cdir)?;
    match db.compact(&cdir) {
        Ok(Some(size)) => emit("compacted_bytes", size as f64),
        Ok(None) => {}
        Err(e) => eprintln!("  {name}: compaction failed: {e}"),
    }
    if let Some(kib) = peak_rss_kib() {
        emit("peak_rss_kib", kib as f64);
    }
    Ok(())
}
