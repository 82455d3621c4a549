//! Sync calls per durable commit, counted by strace: the probe job strace watches (`--probe`)
//! and the parent side that runs strace over it and reads its counts.

use std::path::Path;
use std::process::Command;

use deadbolt_bench::{open, temp_dir_in, Res};

use crate::args::probe_args;
use crate::go::{self, GO_ENGINE};
use crate::raw::Results;
use crate::sizes::PROBE_COMMITS;

/// The system calls that count as syncs.
const SYNC_CALLS: &str = "fsync,fdatasync,msync,sync_file_range,syncfs";

/// Open a fresh database and make `commits` durable single-key commits: run under strace.
pub fn probe(name: &str, commits: u64, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-probe-")?;
    let db = open(name, &tmp.path().join("db"))?;
    db.write(0..100)?;
    for i in 0..commits {
        db.write(1_000 + i..1_001 + i)?;
    }
    Ok(())
}

/// If strace is installed, add each engine's `strace_syncs` (sync calls per commit: a probe with
/// [`PROBE_COMMITS`] commits less one with none) to `results`; returns whether it is installed.
pub fn count_syncs(exe: &Path, engines: &[String], base: &Path, results: &mut Results) -> bool {
    let have_strace = Command::new("strace").arg("-V").output().is_ok();
    if !have_strace {
        return false;
    }
    for engine in engines {
        eprintln!("== strace sync probe: {engine}");
        let with = strace_syncs(exe, engine, PROBE_COMMITS, base);
        let without = strace_syncs(exe, engine, 0, base);
        match (with, without) {
            (Ok(w), Ok(wo)) => {
                let per = w.saturating_sub(wo) as f64 / PROBE_COMMITS as f64;
                results
                    .entry(engine.clone())
                    .or_default()
                    .insert("strace_syncs".into(), per);
                eprintln!("  syncs per commit = {per:.2}");
            }
            (Err(e), _) | (_, Err(e)) => eprintln!("  strace probe failed: {e}"),
        }
    }
    true
}

/// Sync system calls of one probe run, by strace -c.
fn strace_syncs(exe: &Path, engine: &str, commits: u64, base: &Path) -> Res<u64> {
    let out = tempfile::NamedTempFile::new()?;
    let dir = temp_dir_in(base, "deadbolt-probe-")?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-c", "-e", &format!("trace={SYNC_CALLS}"), "-o"])
        .arg(out.path());
    if engine == GO_ENGINE {
        cmd.arg(go::built_go_bin()?)
            .args(go::mode_args("probe", commits, dir.path()));
    } else {
        cmd.arg(exe).args(probe_args(engine, commits, dir.path()));
    }
    let status = cmd.status().map_err(|e| format!("running strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace probe of {engine} failed: {status}").into());
    }
    Ok(sync_calls(&std::fs::read_to_string(out.path())?))
}

/// The calls to [`SYNC_CALLS`] in a `strace -c` summary.
fn sync_calls(summary: &str) -> u64 {
    let mut total = 0;
    for line in summary.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && SYNC_CALLS.split(',').any(|c| c == f[f.len() - 1]) {
            total += f[3].parse::<u64>().unwrap_or(0);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_calls_sums_the_sync_rows_of_a_strace_summary() {
        let summary = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 90.96    0.000171          85         2           fsync
  9.04    0.000017          17         1           fdatasync
  0.00    0.000000           0         4         1 msync
------ ----------- ----------- --------- --------- ----------------
100.00    0.000188          62         7         1 total
";
        assert_eq!(sync_calls(summary), 7);
    }
}
