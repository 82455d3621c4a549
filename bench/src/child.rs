//! The child process of one engine's run (`--child`): every workload in turn on a fresh
//! database, each figure printed as a [`RESULT`] line for the parent.

use std::path::Path;
use std::time::Instant;

use deadbolt_bench::buckets::{objects_walk, one_key_walk, Walk};
use deadbolt_bench::{
    dir_size, open, peak_rss_kib, random_keys, temp_dir_in, Engine, Res, Rng, KEY_LEN,
};

use crate::protocol::{self, RESULT};
use crate::sizes::{
    self, BATCH_SIZE, INDIVIDUAL_COMMITS, OBJECTS, OBJECTS_PER_COMMIT, ONE_KEY_BUCKETS,
    ONE_KEY_COMMITS, SCAN_LEN,
};

/// Run every workload on one engine and print `RESULT name value` lines.
pub fn child(name: &str, n: u64, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-bench-")?;
    let dir = tmp.path().join("db");
    let db: Box<dyn Engine> = open(name, &dir)?;
    writes(&*db, n)?;
    // The key lists stay allocated until the end of the run, as they always have, so that the
    // peak-memory row measures the same thing as in earlier reports.
    let reads = reads(&*db, name, n)?;
    let starts = scans(&*db, n)?;
    let idx = nested(&*db, name, n)?;
    let t = Instant::now();
    db.remove(0..sizes::removals(n))?;
    emit("removals_ms", millis(t));
    footprint(db, name, &dir, &tmp.path().join("compact"))?;
    drop((reads, starts, idx));
    Ok(())
}

/// One figure: a `RESULT` line for the parent, and the same figure on stderr for the reader.
fn emit(name: &str, v: f64) {
    protocol::print(RESULT, name, v);
    eprintln!("  {name} = {v:.1}");
}

/// Milliseconds since `t`.
fn millis(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// `count` operations since `t`, per second.
fn per_s(count: u64, t: Instant) -> f64 {
    count as f64 / t.elapsed().as_secs_f64()
}

/// The bulk load of entries `0..n`, then the individual commits and the batches after them.
fn writes(db: &dyn Engine, n: u64) -> Res<()> {
    let t = Instant::now();
    db.write(0..n)?;
    emit("bulk_load_ms", millis(t));

    let syncs0 = db.syncs();
    let mut next = n;
    let t = Instant::now();
    for _ in 0..INDIVIDUAL_COMMITS {
        db.write(next..next + 1)?;
        next += 1;
    }
    emit("individual_per_s", per_s(INDIVIDUAL_COMMITS, t));
    if let (Some(a), Some(b)) = (syncs0, db.syncs()) {
        emit(
            "engine_syncs_per_commit",
            (b - a) as f64 / INDIVIDUAL_COMMITS as f64,
        );
    }

    let t = Instant::now();
    for _ in 0..sizes::batches(n) {
        db.write(next..next + BATCH_SIZE)?;
        next += BATCH_SIZE;
    }
    emit("batch_ms", millis(t));
    Ok(())
}

/// `n` random point reads on one thread, then `n` on each of the machine's threads at once;
/// returns the one thread's keys.
fn reads(db: &dyn Engine, name: &str, n: u64) -> Res<Vec<[u8; KEY_LEN]>> {
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get()) as u64;
    let reads = random_keys(1, n, n);
    let t = Instant::now();
    let found = db.get(&reads)?;
    emit("reads_1t_per_s", per_s(n, t));
    if found != n {
        return Err(format!("{name}: found {found} of {n} keys").into());
    }

    let per_thread: Vec<_> = (0..threads).map(|t| random_keys(100 + t, n, n)).collect();
    let t = Instant::now();
    let found = parallel_gets(db, &per_thread);
    emit("reads_nt_per_s", per_s(n * threads, t));
    if found? != n * threads {
        return Err(format!("{name}: multi-threaded reads missed keys").into());
    }
    emit("threads", threads as f64);
    Ok(reads)
}

/// Look up each list of keys on a thread of its own; returns how many were found in all.
fn parallel_gets(db: &dyn Engine, per_thread: &[Vec<[u8; KEY_LEN]>]) -> Res<u64> {
    std::thread::scope(|s| {
        let hs: Vec<_> = per_thread
            .iter()
            .map(|keys| s.spawn(move || db.get(keys)))
            .collect();
        let mut total = 0;
        for h in hs {
            total += h.join().map_err(|_| "reader thread panicked")??;
        }
        Ok(total)
    })
}

/// Range scans from random start keys; returns the start keys.
fn scans(db: &dyn Engine, n: u64) -> Res<Vec<[u8; KEY_LEN]>> {
    let starts = random_keys(2, sizes::scan_starts(n), n);
    let t = Instant::now();
    let scanned = db.scan(&starts, SCAN_LEN)?;
    emit("scan_entries_per_s", per_s(scanned, t));
    Ok(starts)
}

/// Write the nested entries, then `n` random lookups through their bucket paths; returns the
/// looked-up entries.
fn nested(db: &dyn Engine, name: &str, n: u64) -> Res<Vec<u64>> {
    let nested = sizes::nested_entries(n);
    db.nested_write(0..nested)?;
    let mut r = Rng::new(3);
    let idx: Vec<u64> = (0..n).map(|_| r.below(nested)).collect();
    let t = Instant::now();
    let found = db.nested_get(&idx)?;
    emit("nested_reads_per_s", per_s(n, t));
    if found != n {
        return Err(format!("{name}: nested reads found {found} of {n}").into());
    }
    emit("nested_native", f64::from(u8::from(db.nested_native())));
    Ok(idx)
}

/// The database's size on disk, its size after compaction into `cdir`, and the process's peak
/// memory, last so that it covers the whole run.
fn footprint(db: Box<dyn Engine>, name: &str, dir: &Path, cdir: &Path) -> Res<()> {
    emit("size_bytes", dir_size(dir)? as f64);
    std::fs::create_dir_all(cdir)?;
    match db.compact(cdir) {
        Ok(Some(size)) => emit("compacted_bytes", size as f64),
        Ok(None) => {}
        Err(e) => eprintln!("  {name}: compaction failed: {e}"),
    }
    if let Some(kib) = peak_rss_kib() {
        emit("peak_rss_kib", kib as f64);
    }
    Ok(())
}

/// Run the bucket workloads on one engine, each on a fresh database, and print `RESULT` lines
/// (`--bucket-child`; a process of its own, so that they count in no figure of [`child`]).
pub fn bucket_child(name: &str, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-bench-")?;
    objects(
        name,
        &tmp.path().join("objects"),
        &tmp.path().join("compact"),
    )?;
    one_key_buckets(name, &tmp.path().join("one-key"))
}

/// The containerd-like metadata: write the objects in commits of [`OBJECTS_PER_COMMIT`], close
/// and measure the file, reopen and walk everything, delete every second object in commits of
/// the same size and compact.
fn objects(name: &str, dir: &Path, cdir: &Path) -> Res<()> {
    let mut db: Box<dyn Engine> = open(name, dir)?;
    // The report marks emulated bucket rows by this, also when the main child did not get to it.
    emit("nested_native", f64::from(u8::from(db.nested_native())));
    let t = Instant::now();
    let mut next = 0;
    while next < OBJECTS {
        let end = (next + OBJECTS_PER_COMMIT).min(OBJECTS);
        db.objects_write(next..end)?;
        next = end;
    }
    emit("objects_write_ms", millis(t));
    db = db.reopen(dir, &mut || {
        emit("objects_size_bytes", dir_size(dir)? as f64);
        Ok(())
    })?;

    let read0 = db.pages_read();
    let t = Instant::now();
    let w = db.walk()?;
    emit("objects_walk_ms", millis(t));
    let pages = match (read0, db.pages_read()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => db.tree_pages()?,
    };
    if let Some(p) = pages {
        emit("objects_walk_pages", p as f64);
    }
    expect(name, "the walk", w, objects_walk(0..OBJECTS))?;
    // The same walk again, everything mapped and (deadbolt) verified: the like-for-like
    // figure, since heed cannot reopen LMDB in this process and its first walk is warm too.
    let t = Instant::now();
    let w = db.walk()?;
    emit("objects_walk_warm_ms", millis(t));
    expect(name, "the second walk", w, objects_walk(0..OBJECTS))?;

    let deleted: Vec<u64> = sizes::objects_deleted().collect();
    let t = Instant::now();
    for chunk in deleted.chunks(OBJECTS_PER_COMMIT as usize) {
        db.objects_delete(chunk)?;
    }
    emit("objects_delete_ms", millis(t));
    let w = db.walk()?;
    expect(
        name,
        "the walk after the deletions",
        w,
        objects_walk(sizes::objects_kept()),
    )?;

    std::fs::create_dir_all(cdir)?;
    match db.compact(cdir) {
        Ok(Some(size)) => emit("objects_compacted_bytes", size as f64),
        Ok(None) => {}
        Err(e) => eprintln!("  {name}: compaction failed: {e}"),
    }
    Ok(())
}

/// [`ONE_KEY_BUCKETS`] top-level buckets of one key each, created in [`ONE_KEY_COMMITS`]
/// commits; the file is measured after a reopen, closed.
fn one_key_buckets(name: &str, dir: &Path) -> Res<()> {
    let mut db: Box<dyn Engine> = open(name, dir)?;
    let per_commit = ONE_KEY_BUCKETS.div_ceil(ONE_KEY_COMMITS);
    let mut next = 0;
    while next < ONE_KEY_BUCKETS {
        let end = (next + per_commit).min(ONE_KEY_BUCKETS);
        db.one_key_write(next..end)?;
        next = end;
    }
    db = db.reopen(dir, &mut || Ok(()))?;
    expect(
        name,
        "the one-key walk",
        db.walk()?,
        one_key_walk(ONE_KEY_BUCKETS),
    )?;
    db.reopen(dir, &mut || {
        emit("one_key_size_bytes", dir_size(dir)? as f64);
        Ok(())
    })?;
    Ok(())
}

/// An error unless walk `got` found the keys and value bytes of `want` (its buckets, counted
/// only by engines that have them, are printed).
fn expect(name: &str, what: &str, got: Walk, want: Walk) -> Res<()> {
    eprintln!(
        "  {name}: {what} read {} buckets, {} keys",
        got.buckets, got.keys
    );
    if (got.keys, got.value_bytes) != (want.keys, want.value_bytes) {
        return Err(format!(
            "{name}: {what} found {} keys and {} value bytes, not {} and {}",
            got.keys, got.value_bytes, want.keys, want.value_bytes
        )
        .into());
    }
    Ok(())
}
