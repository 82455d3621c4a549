//! The command line: the flags a user gives (see [`usage`]) and the internal modes (`--child`,
//! `--bucket-child`, `--duel`, `--probe`) in which the report starts this program again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use deadbolt_bench::{engine_names, Res};

use crate::go::GO_ENGINE;
use crate::sizes::PROBE_COMMITS;

/// The default `--entries`.
pub const QUICK_ENTRIES: u64 = 100_000;

/// What the command line asks for; `child`, `bucket_child`, `duel` and `probe` are the internal
/// modes.
pub struct Args {
    pub entries: u64,
    pub runs: usize,
    pub timeout: u64,
    pub out: Option<PathBuf>,
    pub engines: Vec<String>,
    pub engines_given: bool,
    pub dir: Option<PathBuf>,
    pub child: Option<String>,
    pub bucket_child: Option<String>,
    pub duel: bool,
    pub append: bool,
    pub from: Option<PathBuf>,
    pub probe: Option<(String, u64)>,
}

/// The help text (internal modes and `--commits` are left out).
pub fn usage() -> String {
    format!(
        "usage: deadbolt-bench [--entries N] [--runs R] [--out FILE.md] [--engines a,b,..] [--dir DIR]\n\
         \x20 --entries N   entries in the bulk load (default {QUICK_ENTRIES}; the published table uses 1000000)\n\
         \x20 --runs R      run every engine R times, interleaved, and report medians (default 1)\n\
         \x20 --timeout S   stop an engine's run after S seconds and report what it finished (default 300)\n\
         \x20 --out FILE    write the Markdown report there (it is always printed)\n\
         \x20 --engines     subset of: {}\n\
         \x20 --dir DIR     where the databases go (default: the system temp dir; must not be tmpfs)\n\
         \x20 --append      append the report to --out as a further section (no notes), instead of replacing it\n\
         \x20 --from FILE   re-render the report from the raw results a run saved (bench/results/raw-N.txt)",
        engine_names().join(",")
    )
}

/// Parse this process's arguments; `--help` and mistakes come back as the error to print.
pub fn parse_args() -> Res<Args> {
    let mut a = Args {
        entries: QUICK_ENTRIES,
        runs: 1,
        timeout: 300,
        out: None,
        engines: engine_names().iter().map(|s| s.to_string()).collect(),
        engines_given: false,
        dir: None,
        child: None,
        bucket_child: None,
        duel: false,
        append: false,
        from: None,
        probe: None,
    };
    let mut it = std::env::args().skip(1);
    let mut commits = PROBE_COMMITS;
    let mut probe = None;
    while let Some(arg) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--entries" => {
                a.entries = val()?.parse().map_err(|e| format!("--entries: {e}"))?;
                if a.entries < 10_000 {
                    return Err("--entries must be at least 10000".into());
                }
            }
            "--runs" => {
                a.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?;
                a.runs = a.runs.max(1);
            }
            "--timeout" => a.timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--out" => a.out = Some(val()?.into()),
            "--engines" => {
                a.engines = val()?.split(',').map(str::to_string).collect();
                a.engines_given = true;
            }
            "--dir" => a.dir = Some(val()?.into()),
            "--child" => a.child = Some(val()?),
            "--bucket-child" => a.bucket_child = Some(val()?),
            "--probe" => probe = Some(val()?),
            "--duel" => a.duel = true,
            "--append" => a.append = true,
            "--from" => a.from = Some(val()?.into()),
            "--commits" => commits = val()?.parse().map_err(|e| format!("--commits: {e}"))?,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }
    a.probe = probe.map(|p| (p, commits));
    for e in &a.engines {
        if !engine_names().contains(&e.as_str()) && e != GO_ENGINE {
            return Err(format!("engine {e:?} is not built (built: {:?})", engine_names()).into());
        }
    }
    Ok(a)
}

/// The arguments of this program as the child that runs every workload on `engine` (`--child`).
pub fn child_args(engine: &str, entries: u64, dir: &Path) -> Vec<OsString> {
    internal(&["--child", engine, "--entries", &entries.to_string()], dir)
}

/// The arguments of this program as the child that runs the bucket workloads on `engine`
/// (`--bucket-child`).
pub fn bucket_child_args(engine: &str, dir: &Path) -> Vec<OsString> {
    internal(&["--bucket-child", engine], dir)
}

/// The arguments of this program as the interleaved commit run of `engines` (`--duel`).
pub fn duel_args(engines: &[String], entries: u64, dir: &Path) -> Vec<OsString> {
    let engines = engines.join(",");
    internal(
        &[
            "--duel",
            "--engines",
            &engines,
            "--entries",
            &entries.to_string(),
        ],
        dir,
    )
}

/// The arguments of this program as the strace probe of `engine` (`--probe`).
pub fn probe_args(engine: &str, commits: u64, dir: &Path) -> Vec<OsString> {
    internal(&["--probe", engine, "--commits", &commits.to_string()], dir)
}

/// `flags` and then `--dir dir`.
fn internal(flags: &[&str], dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = flags.iter().map(OsString::from).collect();
    v.push("--dir".into());
    v.push(dir.into());
    v
}
