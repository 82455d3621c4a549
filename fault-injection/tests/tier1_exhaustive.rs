//! Tier 1, the bounded exhaustive tier (runs in `cargo test`).
//!
//! Every fixed workload at page sizes 1K-16K (small-buckets at 1K and 4K) with 512- and
//! 4096-byte sectors is recorded once, then crashed after every single I/O operation, with
//! every crash mode (F1; F2 for every prefix; F3 for every sector subset of small windows,
//! sampled otherwise; F4 sampled; F5 and F6 inside them), and each image is reopened and
//! checked against the oracle (I1-I6, I8; I7 for PSOW off and no_sync power cuts). Every image
//! also gets a commit after recovery with a second crash inside it; when the recovery fell back
//! past a newer commit (16 such images per configuration), that commit is crashed after every
//! one of its ops in every mode. The I/O-error sweep (F7, F8) and the at-rest sweep (F9-F13)
//! follow.

use std::time::Instant;

use fault_injection::disk::Media;
use fault_injection::engine::Deadbolt;
use fault_injection::run::{
    at_rest_sweep, ci_matrix, exhaustive, ioerr_sweep, par_map, reader_sweep, test_threads, Report,
};
use fault_injection::workload::fixed;

fn report(name: &str, rep: &Report, secs: f64) {
    println!(
        "{name}: {} crash points, {} crash images checked ({} damage reports), {} reader checks, {} read faults, {} violations, {secs:.1}s",
        rep.crash_points,
        rep.images,
        rep.detected,
        rep.reader_checks,
        rep.read_faults,
        rep.violations.len()
    );
    for v in rep.violations.iter().take(25) {
        println!("VIOLATION {v}");
    }
    if !rep.violations.is_empty() {
        println!(
            "replay one configuration (the text in brackets): cargo run --release -p fault-injection -- exhaustive --filter '<workload=... seed=...>'"
        );
    }
}

#[test]
fn tier1_every_crash_point_every_mode() {
    let t = Instant::now();
    let cfgs = ci_matrix();
    let reps = par_map(&cfgs, test_threads(), |c| exhaustive(&Deadbolt, c));
    let mut rep = Report::default();
    for r in reps {
        rep.merge(r);
    }
    report(
        &format!("tier 1 exhaustive ({} configurations)", cfgs.len()),
        &rep,
        t.elapsed().as_secs_f64(),
    );
    assert!(rep.images >= 100_000, "only {} crash images", rep.images);
    // I12 ran: recovery's page reads were bounded by what the last commits wrote (counted in
    // this process, so the other tests of this binary add to it; it only has to be non-zero).
    let cost = fault_injection::oracle::open_cost_checks();
    println!("tier 1 exhaustive: open cost (I12) checked on {cost} recoveries");
    println!(
        "tier 1 exhaustive: {} images of a power cut inside the recovery after a process crash",
        rep.recovery_cuts
    );
    assert!(rep.recovery_cuts > 0, "no power cut inside a recovery");
    assert!(cost > 0, "the open-cost invariant never ran");
    assert!(rep.reader_checks > 0, "no long-lived reader was checked");
    assert!(
        rep.violations.is_empty(),
        "{} violations",
        rep.violations.len()
    );
}

/// Every fixed workload at 4 KiB pages on 512-byte sectors and at 1 KiB pages on
/// `small_page_sector`-byte sectors (PSOW, atomic sectors): (workload, page size, media).
fn sweep_jobs(small_page_sector: usize) -> Vec<(usize, usize, Media)> {
    let media = |sector| Media {
        sector,
        psow: true,
        sector_atomic: true,
    };
    (0..fixed(4096).len())
        .flat_map(|w| [(w, 4096, media(512)), (w, 1024, media(small_page_sector))])
        .collect()
}

/// Run `sweep` over `jobs` in parallel and report the merged result; no violation allowed.
fn run_sweep(
    name: &str,
    jobs: &[(usize, usize, Media)],
    sweep: impl Fn(usize, usize, Media) -> Report + Sync,
) -> Report {
    let t = Instant::now();
    let reps = par_map(jobs, test_threads(), |&(w, p, m)| sweep(w, p, m));
    let mut rep = Report::default();
    for r in reps {
        rep.merge(r);
    }
    report(name, &rep, t.elapsed().as_secs_f64());
    assert!(
        rep.violations.is_empty(),
        "{} violations",
        rep.violations.len()
    );
    rep
}

#[test]
fn tier1_io_error_sweep() {
    let rep = run_sweep(
        "tier 1 I/O-error sweep (F7, F8, reads that fail)",
        &sweep_jobs(4096),
        |w, p, m| ioerr_sweep(&Deadbolt, w, p, m, 0x10e5 + w as u64),
    );
    assert!(rep.read_faults > 0, "no read fault was injected");
    assert!(rep.reader_checks > 0, "no long-lived reader was checked");
}

/// I11: long-lived readers held across commits that free and reuse pages, growth and
/// `shrink_to_fit`, crashed after every op, and readers opened after each recovery.
#[test]
fn tier1_long_lived_readers_see_their_snapshot_across_commits_and_shrinks() {
    let rep = run_sweep(
        "tier 1 long-lived readers (I11)",
        &sweep_jobs(512),
        |w, p, m| reader_sweep(&Deadbolt, w, p, m, 0x4ead + w as u64),
    );
    assert!(rep.reader_checks > 0, "no long-lived reader was checked");
    assert!(rep.images > 0);
}

#[test]
fn tier1_at_rest_sweep() {
    run_sweep(
        "tier 1 at-rest sweep (F9-F13)",
        &sweep_jobs(512),
        |w, p, m| at_rest_sweep(&Deadbolt, w, p, m, 0xa7 + w as u64),
    );
}
