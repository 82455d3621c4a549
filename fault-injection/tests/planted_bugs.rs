//! Test the tester: with one planted engine bug enabled (a cargo feature, off by default), the
//! harness must catch it within the stated budget. Run one at a time:
//!
//!     cargo test -p fault-injection --release --features bug-ack-before-sync --test planted_bugs
//!
//! (With a bug enabled, the tier 1 tests themselves fail too: that is the point.)
#![allow(dead_code, unused_imports)]

use std::time::Instant;

use fault_injection::disk::Media;
use fault_injection::engine::Deadbolt;
use fault_injection::run::{at_rest_sweep, ci_matrix, exhaustive, ioerr_sweep, Report};
use fault_injection::torture::{case_seed, run_case};

/// Tier 1 configurations in order until the first violation: (images checked, seconds, first).
fn tier1_until_caught(budget_configs: usize) -> Option<(u64, f64, String)> {
    let t = Instant::now();
    let mut images = 0;
    for cfg in ci_matrix().iter().take(budget_configs) {
        let r = exhaustive(&Deadbolt, cfg);
        images += r.images;
        if let Some(v) = r.violations.first() {
            return Some((images, t.elapsed().as_secs_f64(), v.clone()));
        }
    }
    None
}

/// Torture cases until the first violation: (cases, crash states, seconds, first).
fn torture_until_caught(budget_cases: u64) -> Option<(u64, u64, f64, String)> {
    let t = Instant::now();
    let mut states = 0;
    for i in 0..budget_cases {
        let r = run_case(&Deadbolt, case_seed(1, i));
        states += r.states;
        // Engine bug B1 (a branch written with a duplicate first separator, "keys out of
        // order", reported separately) shows up in torture without any planted bug; do not
        // credit it to the planted bug. Remove this filter once B1 is fixed.
        if let Some(v) = r
            .violations
            .iter()
            .find(|v| !v.contains("keys out of order"))
        {
            return Some((i + 1, states, t.elapsed().as_secs_f64(), v.clone()));
        }
    }
    None
}

fn sweep_until_caught(f: impl Fn(usize) -> Report) -> Option<(u64, f64, String)> {
    let t = Instant::now();
    let mut images = 0;
    for w in 0..fault_injection::workload::fixed(4096).len() {
        let r = f(w);
        images += r.images;
        if let Some(v) = r.violations.first() {
            return Some((images, t.elapsed().as_secs_f64(), v.clone()));
        }
    }
    None
}

fn show(bug: &str, tier: &str, r: &Option<(u64, f64, String)>) {
    match r {
        Some((n, s, v)) => println!("{bug}: caught by {tier} after {n} crash images, {s:.2}s: {v}"),
        None => println!("{bug}: NOT caught by {tier}"),
    }
}

fn show_torture(bug: &str, r: &Option<(u64, u64, f64, String)>) {
    match r {
        Some((c, n, s, v)) => println!(
            "{bug}: caught by tier 2 (torture) after {c} cases, {n} crash states, {s:.2}s: {v}"
        ),
        None => println!("{bug}: NOT caught by tier 2 within the budget"),
    }
}

#[cfg(feature = "bug-ack-before-sync")]
#[test]
fn ack_before_sync_is_caught() {
    let r = tier1_until_caught(8);
    show("bug-ack-before-sync", "tier 1 exhaustive", &r);
    show_torture("bug-ack-before-sync", &torture_until_caught(500));
    assert!(r.is_some());
    // The batch oracle: a caller told Ok with no sync between its closure and the answer.
    let caught = (0..24u64).find_map(|s| {
        let (rep, _) = fault_injection::run::batch_oracle(&Deadbolt, 13_000 + s)?;
        rep.violations.into_iter().next()
    });
    println!("bug-ack-before-sync: batch oracle: {caught:?}");
    assert!(caught.is_some_and(|v| v.contains("P2 (batch)")));
}

#[cfg(feature = "bug-meta-before-data")]
#[test]
fn meta_before_data_is_caught() {
    // Open verifies the newest commit, so every crash image this bug creates is one a correct
    // engine can also meet under F3 reordering: only the protocol monitor (P1) sees it.
    let r = tier1_until_caught(8);
    show(
        "bug-meta-before-data",
        "tier 1 exhaustive (protocol monitor)",
        &r,
    );
    // Since issue 13 the monitor runs on every torture lifetime too.
    let t = torture_until_caught(3000);
    show_torture("bug-meta-before-data", &t);
    assert!(r.is_some());
    assert!(
        t.is_some_and(|t| t.3.contains("P1")),
        "torture's protocol monitor missed it"
    );
}

#[cfg(feature = "bug-retry-failed-sync")]
#[test]
fn retry_failed_sync_is_caught() {
    let r = sweep_until_caught(|w| {
        ioerr_sweep(&Deadbolt, w, 4096, Media::default(), 0x10e5 + w as u64)
    });
    show("bug-retry-failed-sync", "tier 1 I/O-error sweep", &r);
    show_torture("bug-retry-failed-sync", &torture_until_caught(2000));
    assert!(r.is_some());
}

#[cfg(feature = "bug-skip-open-verify")]
#[test]
fn skip_open_verify_is_caught() {
    let r = tier1_until_caught(8);
    show("bug-skip-open-verify", "tier 1 exhaustive", &r);
    show_torture("bug-skip-open-verify", &torture_until_caught(500));
    assert!(r.is_some());
}

#[cfg(feature = "bug-no-parent-checksum")]
#[test]
fn no_parent_checksum_is_caught() {
    let r = sweep_until_caught(|w| {
        at_rest_sweep(&Deadbolt, w, 4096, Media::default(), 0xa7 + w as u64)
    });
    show("bug-no-parent-checksum", "tier 1 at-rest sweep", &r);
    show_torture("bug-no-parent-checksum", &torture_until_caught(2000));
    assert!(r.is_some());
}

#[cfg(feature = "bug-unbounded-descent")]
#[test]
fn unbounded_descent_is_caught() {
    // Run the crafted-cycle check in a child process under a budget: a missing bound may also
    // show as a hang, a stack overflow or a runaway allocation.
    let t = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fault-injection"))
        .args(["crafted-cycle", "--page-size", "1024"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let budget = std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > budget {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap_or_default();
    println!(
        "bug-unbounded-descent: crafted self-cycle (F15) gave {status:?} after {:.2}s: {}",
        t.elapsed().as_secs_f64(),
        out.trim()
    );
    assert!(
        !status.is_some_and(|s| s.success()),
        "crafted cycle not caught"
    );
}
