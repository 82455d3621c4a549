//! Tier 1, path coverage (issue 13): the path workload and concurrent batch callers must reach
//! every engine path they are meant to, counted and asserted (a path that ran zero times fails
//! the test), with every crash image checked. `--nocapture` prints the counts.
//! `FI_PATHS_SEED` picks another base seed (printed on failure).

use fault_injection::coverage::{Coverage, PathId};
use fault_injection::engine::{Deadbolt, Toy, ToyBug};
use fault_injection::run::{batch_oracle, par_map, paths_sweep, test_threads, Report};

fn base_seed() -> u64 {
    std::env::var("FI_PATHS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13)
}

#[test]
fn the_path_workload_reaches_every_engine_path_and_survives_crashes_along_it() {
    let base = base_seed();
    let seeds: Vec<u64> = (0..3).map(|i| base + i).collect();
    let results = par_map(&seeds, test_threads(), |s| paths_sweep(&Deadbolt, *s, 5));
    let mut rep = Report::default();
    let mut cov = Coverage::default();
    for (r, c) in results {
        rep.merge(r);
        cov.merge(&c);
    }
    println!(
        "path workload, seeds {seeds:?}: {} crash points, {} images, {} violations\n{cov}",
        rep.crash_points,
        rep.images,
        rep.violations.len()
    );
    for v in rep.violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert!(rep.violations.is_empty(), "violations (base seed {base})");
    let missing = cov.missing(&PathId::workload());
    assert!(
        missing.is_empty(),
        "paths never reached (base seed {base}): {missing:?}"
    );
}

#[test]
fn concurrent_batch_callers_under_injected_failures_hear_ok_only_after_their_sync() {
    let base = base_seed();
    let seeds: Vec<u64> = (0..24).map(|i| base * 1000 + i).collect();
    let results = par_map(&seeds, test_threads(), |s| batch_oracle(&Deadbolt, *s));
    let mut rep = Report::default();
    let mut cov = Coverage::default();
    for r in results {
        let (r, c) = r.expect("deadbolt has group commit");
        rep.merge(r);
        cov.merge(&c);
    }
    println!(
        "batch oracle: {} runs, {} crash images, {} violations, shared commits {}, callers told of a failed commit {}",
        rep.crash_points,
        rep.images,
        rep.violations.len(),
        cov.get(PathId::SharedBatch),
        cov.get(PathId::BatchCallerFailed)
    );
    for v in rep.violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert!(rep.violations.is_empty(), "violations (base seed {base})");
    let missing = cov.missing(&[PathId::SharedBatch, PathId::BatchCallerFailed]);
    assert!(
        missing.is_empty(),
        "paths never reached (base seed {base}): {missing:?}"
    );
}

#[test]
fn the_toy_engine_runs_the_path_workload_clean_and_reports_no_group_commit() {
    let (rep, cov) = paths_sweep(&Toy(ToyBug::None), base_seed(), 23);
    assert!(rep.violations.is_empty(), "{:?}", rep.violations);
    assert!(cov.get(PathId::ProtocolMonitored) > 1);
    assert_eq!(cov.get(PathId::CompactStepMoved), 0);
    assert!(batch_oracle(&Toy(ToyBug::None), 1).is_none());
}

#[test]
fn a_torture_run_of_500_cases_reaches_every_path_and_says_so_in_its_final_line() {
    // The supervisor sums the workers' coverage and fails a run of 500+ cases on a path that
    // never ran; seed 2 reaches each at least 16 times (README, "Path coverage").
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fault-injection"))
        .args([
            "torture",
            "--seed",
            "2",
            "--cases",
            "500",
            "--duration",
            "600s",
        ])
        .output()
        .expect("run the torture binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "torture --seed 2 --cases 500 failed:\n{stdout}"
    );
    assert!(!stdout.contains("COVERAGE:"), "{stdout}");
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.contains("500 cases") && last.ends_with(" 0 violations"),
        "{last}"
    );
    let monitored: u64 = last
        .split(", ")
        .find_map(|p| p.strip_suffix(" lifetimes protocol-monitored"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(monitored >= 500, "lifetimes monitored: {last}");
}
