//! Sync calls per durable commit, counted by strace: the probe job strace watches (`--probe`)
//! and the parent side that runs strace over it and reads its counts.

use std::path::Path;
use std::process::Command;

use deadbolt_bench::{open, temp_dir_in, Res};

use crate::go::{go_bin, GO_ENGINE};

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

const SYNC_CALLS: &str = "fsync,fdatasync,msync,sync_file_range,syncfs";

/// Sync system calls of one probe run, by strace -c.
pub fn strace_syncs(exe: &Path, engine: &str, commits: u64, base: &Path) -> Res<u64> {
    let out = tempfile::NamedTempFile::new()?;
    let dir = temp_dir_in(base, "deadbolt-probe-")?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-c", "-e", &format!("trace={SYNC_CALLS}"), "-o"])
        .arg(out.path());
    if engine == GO_ENGINE {
        let bin = go_bin().ok_or("the Go program was not built")?;
        cmd.arg(bin)
            .arg("probe")
            .arg(commits.to_string())
            .arg(dir.path());
    } else {
        cmd.arg(exe)
            .args([
                "--probe",
                engine,
                "--commits",
                &commits.to_string(),
                "--dir",
            ])
            .arg(dir.path());
    }
    let status = cmd.status().map_err(|e| format!("running strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace probe of {engine} failed: {status}").into());
    }
    let text = std::fs::read_to_string(out.path())?;
    let mut total = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && SYNC_CALLS.split(',').any(|c| c == f[f.len() - 1]) {
            total += f[3].parse::<u64>().unwrap_or(0);
        }
    }
    Ok(total)
}
