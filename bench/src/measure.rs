//! Measuring: every engine's two child processes (the main workloads, then the bucket
//! workloads) in interleaved rounds (each with a time limit), the interleaved commit run,
//! medians over the rounds and the strace sync counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use deadbolt_bench::{temp_dir_in, Res};

use crate::args::{bucket_child_args, child_args, duel_args, Args};
use crate::go::{self, GO_ENGINE};
use crate::machine::{machine, sh};
use crate::protocol::{self, DUEL, RESULT};
use crate::raw::{bucket_run, Failures, Measured, Results};
use crate::strace;

/// Engine → metric → the figure of every run.
type Samples = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// Run everything `a` asks for, with the databases under `base`.
pub fn measure(a: &Args, base: &Path) -> Res<Measured> {
    let exe = std::env::current_exe()?;
    let mut machine = machine(base);
    // The built Go program lives here until the last child has run.
    let go_dir = tempfile::tempdir()?;
    let engines = with_go(a, go_dir.path(), &mut machine);
    let mut samples = Samples::new();
    let failures = engine_runs(a, &exe, &engines, base, &mut samples)?;
    duel_runs(a, &exe, &engines, base, &mut samples)?;
    let mut results = medians(samples);
    let have_strace = strace::count_syncs(&exe, &engines, base, &mut results);
    Ok(Measured {
        machine,
        results,
        failures,
        have_strace,
    })
}

/// The engines to run: Go bbolt joins when `go` is installed (and no --engines list left it
/// out), built into `go_dir`, and its version is added to the `machine` lines.
fn with_go(a: &Args, go_dir: &Path, machine: &mut Vec<String>) -> Vec<String> {
    let mut engines = a.engines.clone();
    if !a.engines_given || engines.iter().any(|e| e == GO_ENGINE) {
        match go::build_go(go_dir) {
            Some(bin) => {
                // Before this process starts any thread; the children inherit it.
                go::hand_to_children(&bin);
                if !engines.iter().any(|e| e == GO_ENGINE) {
                    engines.push(GO_ENGINE.into());
                }
                machine.push(format!("Go bbolt: {}", sh("go", &["version"])));
            }
            None => engines.retain(|e| e != GO_ENGINE),
        }
    }
    engines
}

/// The two child processes of an engine's run.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// Every workload of [`crate::child::child`], on `--entries` entries.
    Main,
    /// The bucket workloads of [`crate::child::bucket_child`], whose size is fixed.
    Buckets,
}

impl Part {
    /// The key of `engine`'s run of this part in [`Failures`].
    fn run(self, engine: &str) -> String {
        match self {
            Part::Main => engine.to_string(),
            Part::Buckets => bucket_run(engine),
        }
    }

    /// What the progress line calls `engine`'s run of this part.
    fn what(self, engine: &str, entries: u64) -> String {
        match self {
            Part::Main => format!("{engine} ({entries} entries)"),
            Part::Buckets => format!("{engine} bucket workloads"),
        }
    }
}

/// Every engine's child processes, `a.runs` times; returns the runs that failed, keyed by
/// [`Part::run`]. Rounds interleave the engines so that a change in the machine's load hits
/// them alike; a child that ran out of time is not run again.
fn engine_runs(
    a: &Args,
    exe: &Path,
    engines: &[String],
    base: &Path,
    samples: &mut Samples,
) -> Res<Failures> {
    let mut failures = Failures::new();
    let mut timed_out: Vec<String> = Vec::new();
    for round in 1..=a.runs {
        for (engine, part) in engines
            .iter()
            .flat_map(|e| [(e, Part::Main), (e, Part::Buckets)])
        {
            let run = part.run(engine);
            if timed_out.contains(&run) {
                continue;
            }
            eprintln!(
                "== {}, run {round} of {}",
                part.what(engine, a.entries),
                a.runs
            );
            let (stdout, outcome) = run_child(a, exe, engine, part, base)?;
            let r = samples.entry(engine.clone()).or_default();
            for (k, v) in protocol::parse(&stdout, RESULT) {
                r.entry(k.to_string()).or_default().push(v);
            }
            match outcome {
                Some(st) if st.success() => {}
                Some(st) => {
                    failures.insert(run, format!("child process failed ({st})"));
                }
                None => {
                    eprintln!("  {run}: killed after {} s", a.timeout);
                    failures.insert(
                        run.clone(),
                        format!(
                            "stopped after the {} s time limit per engine run (`--timeout`), \
                             so it was not run again",
                            a.timeout
                        ),
                    );
                    timed_out.push(run);
                }
            }
        }
    }
    Ok(failures)
}

/// One run of `engine`'s child process for `part` (the Go program for Go bbolt); its stdout,
/// and its status or `None` if it was killed at the time limit.
fn run_child(
    a: &Args,
    exe: &Path,
    engine: &str,
    part: Part,
    base: &Path,
) -> Res<(String, Option<ExitStatus>)> {
    // The child's databases go in a directory this process removes, even after a kill.
    let dir = temp_dir_in(base, "deadbolt-bench-")?;
    let cmd = match go::go_bin() {
        Some(bin) if engine == GO_ENGINE => {
            let mode = match part {
                Part::Main => "child",
                Part::Buckets => "buckets",
            };
            let mut c = Command::new(bin);
            c.args(go::mode_args(mode, a.entries, dir.path()));
            c
        }
        _ => {
            let mut c = Command::new(exe);
            c.args(match part {
                Part::Main => child_args(engine, a.entries, dir.path()),
                Part::Buckets => bucket_child_args(engine, dir.path()),
            });
            c
        }
    };
    Ok(run_with_timeout(cmd, a.timeout).map_err(|e| format!("running the {engine} child: {e}"))?)
}

/// The interleaved commit run, `a.runs` times, each in a process of its own.
fn duel_runs(
    a: &Args,
    exe: &Path,
    engines: &[String],
    base: &Path,
    samples: &mut Samples,
) -> Res<()> {
    for round in 1..=a.runs {
        eprintln!(
            "== interleaved individual commits, run {round} of {}",
            a.runs
        );
        let out = Command::new(exe)
            .args(duel_args(engines, a.entries, base))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running the interleaved commit run: {e}"))?;
        for (e, v) in protocol::parse(&String::from_utf8_lossy(&out.stdout), DUEL) {
            let r = samples.entry(e.to_string()).or_default();
            r.entry("duel_per_s".into()).or_default().push(v);
            eprintln!("  {e}: {v:.0} commits/s");
        }
        if !out.status.success() {
            eprintln!("  interleaved commit run failed: {}", out.status);
        }
    }
    Ok(())
}

/// The median of every metric's samples (the upper one of an even count).
fn medians(samples: Samples) -> Results {
    let mut results = Results::new();
    for (engine, metrics) in samples {
        let r = results.entry(engine).or_default();
        for (k, mut v) in metrics {
            v.sort_by(f64::total_cmp);
            r.insert(k, v[v.len() / 2]);
        }
    }
    results
}

/// Run `cmd` with its stdout captured; `None` for the status if it ran past `secs` and was killed.
fn run_with_timeout(mut cmd: Command, secs: u64) -> std::io::Result<(String, Option<ExitStatus>)> {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut pipe = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        pipe.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed().as_secs() >= secs {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader
        .join()
        .map_err(|_| std::io::Error::other("stdout reader panicked"))??;
    Ok((out, status))
}
