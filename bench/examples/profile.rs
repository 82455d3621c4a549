//! Repeat one workload on one engine so a profiler sees mostly that workload:
//! `perf record --call-graph dwarf target/release/examples/profile deadbolt reads 1000000`.
//! Phases: load, reads, commits, batch, removals, scans, nested, walk (the metadata walk: `n`
//! is the number of walks over 10,000 objects, each the first after a reopen; walkwarm: `n` walks
//! of the file opened once, after a first walk), mddelete (`n`
//! rounds of the metadata delete row), onekey (`n` runs of the one-key buckets row).
use std::time::Instant;

use deadbolt_bench::{key, open, Res, Rng};

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_else(|| "deadbolt".into());
    let phase = args.next().unwrap_or_else(|| "reads".into());
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let db = open(&engine, &tmp.path().join("db"))?;
    let t = Instant::now();
    db.write(0..n)?;
    eprintln!(
        "setup load {:?}, peak RSS {:?} KiB",
        t.elapsed(),
        deadbolt_bench::peak_rss_kib()
    );
    let mut r = Rng::new(1);
    let keys: Vec<_> = (0..n).map(|_| key(r.below(n))).collect();
    let t = Instant::now();
    match phase.as_str() {
        "load" => {
            for round in 1..4u64 {
                let d = tmp.path().join(format!("db{round}"));
                open(&engine, &d)?.write(0..n)?;
            }
        }
        "reads" => {
            for _ in 0..5 {
                db.get(&keys)?;
            }
        }
        "scans" => {
            for _ in 0..5 {
                db.scan(&keys[..(n / 100) as usize], 100)?;
            }
        }
        "commits" => {
            for i in 0..2_000 {
                db.write(n + i..n + i + 1)?;
            }
        }
        "batch" => {
            for b in 0..100 {
                db.write(n + b * 1_000..n + (b + 1) * 1_000)?;
            }
        }
        "removals" => db.remove(0..n / 2)?,
        "nested" => {
            db.nested_write(0..n / 10)?;
            let mut r = Rng::new(3);
            let idx: Vec<u64> = (0..n).map(|_| r.below(n / 10)).collect();
            let t = Instant::now();
            for _ in 0..5 {
                db.nested_get(&idx)?;
            }
            eprintln!("nested lookups only: {:?}", t.elapsed());
        }
        "walk" | "walkwarm" => {
            for c in 0..100 {
                db.objects_write(c * 100..(c + 1) * 100)?;
            }
            // As the report times it: the first walk after a reopen, which verifies every page
            // (`walkwarm`: the report's second walk, `n` times on the file opened once).
            let mut db = db;
            if phase == "walkwarm" {
                db = db.reopen(&tmp.path().join("db"), &mut || Ok(()))?;
                walk(&*db)?;
            }
            let mut walks = std::time::Duration::ZERO;
            for _ in 0..n.min(1_000) {
                if phase == "walk" {
                    db = db.reopen(&tmp.path().join("db"), &mut || Ok(()))?;
                }
                let t = Instant::now();
                walk(&*db)?;
                walks += t.elapsed();
            }
            eprintln!("walks only: {walks:?}");
            return Ok(());
        }
        "onekey" => {
            // The one-key buckets row, `n` times into fresh files; the last file is copied to
            // `$ONEKEY_KEEP` when that is set, for `deadbolt pages` and `deadbolt stats`.
            for round in 0..n.min(100) {
                let dir = tmp.path().join(format!("ok{round}"));
                let mut d = open(&engine, &dir)?;
                for c in 0..10 {
                    d.one_key_write(c * 1_000..(c + 1) * 1_000)?;
                }
                d = d.reopen(&dir, &mut || Ok(()))?;
                let mut size = 0;
                d.reopen(&dir, &mut || {
                    size = deadbolt_bench::dir_size(&dir)?;
                    Ok(())
                })?;
                eprintln!("{engine} one-key file: {size} bytes");
                if let Some(keep) = std::env::var_os("ONEKEY_KEEP") {
                    std::fs::copy(dir.join("deadbolt.db"), keep)?;
                }
            }
            return Ok(());
        }
        "mddelete" => {
            // The metadata delete row: `n` rounds of writing the 10,000 objects into a fresh
            // file and deleting every second one in commits of 100.
            let mut deletes = std::time::Duration::ZERO;
            for round in 0..n.min(100) {
                let d = open(&engine, &tmp.path().join(format!("md{round}")))?;
                for c in 0..100 {
                    d.objects_write(c * 100..(c + 1) * 100)?;
                }
                let deleted: Vec<u64> = (1..10_000u64).step_by(2).collect(); // as the report
                let t = Instant::now();
                for chunk in deleted.chunks(100) {
                    md_delete(&*d, chunk)?;
                }
                deletes += t.elapsed();
            }
            eprintln!("deletes only: {deletes:?}");
            return Ok(());
        }
        other => return Err(format!("unknown phase {other}").into()),
    }
    eprintln!(
        "{engine} {phase}: {:?}, peak RSS {:?} KiB",
        t.elapsed(),
        deadbolt_bench::peak_rss_kib()
    );
    Ok(())
}

/// One metadata walk, in a function of its own so that callgrind can count it alone
/// (`--toggle-collect='*profile*walk*'`).
#[inline(never)]
fn walk(db: &dyn deadbolt_bench::Engine) -> Res<()> {
    db.walk()?;
    Ok(())
}

/// One commit of the metadata delete row, alone for callgrind (`--toggle-collect='*md_delete*'`).
#[inline(never)]
fn md_delete(db: &dyn deadbolt_bench::Engine, idx: &[u64]) -> Res<()> {
    db.objects_delete(idx)?;
    Ok(())
}
