//! The command line: the flags a user gives (see [`usage`]) and the internal modes (`--child`,
//! `--bucket-child`, `--duel`, `--probe`, `--cost-child`) in which the report starts this
//! program again.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use deadbolt_bench::{engine_names, Res};

use crate::costs::{Phase, COST_ENGINES, COST_ENTRIES};
use crate::go::GO_ENGINE;
use crate::sizes::PROBE_COMMITS;

/// The default `--entries`.
pub const QUICK_ENTRIES: u64 = 100_000;

/// What the command line asks for; `child`, `bucket_child`, `duel`, `probe` and `cost_child` are
/// the internal modes.
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
    /// `--costs`: count instructions and cache misses per operation under callgrind instead.
    pub costs: bool,
    pub cost_child: Option<CostChild>,
}

/// The internal mode `--cost-child ENGINE PHASE N OPS` that `--costs` runs under callgrind.
pub struct CostChild {
    pub engine: String,
    pub phase: Phase,
    /// Entries loaded (untimed) before the phase.
    pub n: u64,
    /// Operations in the phase.
    pub ops: u64,
}

/// The help text (internal modes and `--commits` are left out).
pub fn usage() -> String {
    format!(
        "usage: deadbolt-bench [--entries N] [--runs R] [--out FILE.md] [--engines a,b,..] [--dir DIR]\n\
         \x20      deadbolt-bench --costs [--entries N] [--engines a,b,..] [--out FILE.md [--append]]\n\
         \x20 --entries N   entries in the bulk load (default {QUICK_ENTRIES}; the published table uses 1000000)\n\
         \x20 --runs R      run every engine R times, interleaved, and report medians (default 1)\n\
         \x20 --timeout S   stop an engine's run after S seconds and report what it finished (default 300)\n\
         \x20 --out FILE    write the Markdown report there (it is always printed)\n\
         \x20 --engines     subset of: {}\n\
         \x20 --dir DIR     where the databases go (default: the system temp dir; must not be tmpfs)\n\
         \x20 --append      append the report to --out as a further section (no notes), instead of replacing it\n\
         \x20 --from FILE   re-render the report from the raw results a run saved (bench/results/raw-N.txt)\n\
         \x20 --costs       instead: instructions and cache misses per get, put, remove and commit, counted\n\
         \x20               by valgrind's callgrind (needs valgrind; --entries default {COST_ENTRIES},\n\
         \x20               --engines default {})",
        engine_names().join(","),
        COST_ENGINES.join(",")
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
        costs: false,
        cost_child: None,
    };
    let mut entries_given = false;
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
                entries_given = true;
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
            "--costs" => a.costs = true,
            "--cost-child" => {
                let engine = val()?;
                let phase = Phase::parse(&val()?)?;
                let n = val()?.parse().map_err(|e| format!("--cost-child N: {e}"))?;
                let ops = val()?
                    .parse()
                    .map_err(|e| format!("--cost-child OPS: {e}"))?;
                a.cost_child = Some(CostChild {
                    engine,
                    phase,
                    n,
                    ops,
                });
            }
            "--append" => a.append = true,
            "--from" => a.from = Some(val()?.into()),
            "--commits" => commits = val()?.parse().map_err(|e| format!("--commits: {e}"))?,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage()).into()),
        }
    }
    a.probe = probe.map(|p| (p, commits));
    if a.costs {
        if !entries_given {
            a.entries = COST_ENTRIES;
        }
        if !a.engines_given {
            a.engines = COST_ENGINES
                .iter()
                .filter(|e| engine_names().contains(e))
                .map(|s| s.to_string())
                .collect();
        }
    }
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

/// The arguments of this program as the callgrind subject that runs `phase` on `engine`
/// (`--cost-child`).
pub fn cost_child_args(engine: &str, phase: Phase, n: u64, ops: u64, dir: &Path) -> Vec<OsString> {
    internal(
        &[
            "--cost-child",
            engine,
            phase.name(),
            &n.to_string(),
            &ops.to_string(),
        ],
        dir,
    )
}

/// `flags` and then `--dir dir`.
fn internal(flags: &[&str], dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = flags.iter().map(OsString::from).collect();
    v.push("--dir".into());
    v.push(dir.into());
    v
}
