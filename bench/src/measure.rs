//! Measuring: every engine's child process in interleaved rounds, the interleaved commit run,
//! medians over the rounds and the strace sync probe.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use deadbolt_bench::{temp_dir_in, Res};

use crate::args::Args;
use crate::go::{build_go, go_bin, GO_ENGINE, GO_ENV};
use crate::machine::{machine, sh};
use crate::protocol::{self, DUEL, RESULT};
use crate::raw::{Measured, Results};
use crate::sizes::PROBE_COMMITS;
use crate::strace::strace_syncs;

/// Run `cmd` with its stdout captured; `None` for the status if it ran past `secs` and was killed.
fn run_with_timeout(
    mut cmd: Command,
    secs: u64,
) -> std::io::Result<(String, Option<std::process::ExitStatus>)> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
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
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let out = reader
        .join()
        .map_err(|_| std::io::Error::other("stdout reader panicked"))??;
    Ok((out, status))
}

pub fn measure(a: &Args, base: &Path) -> Res<Measured> {
    let exe = std::env::current_exe()?;
    let mut machine = machine(base);
    // Go bbolt joins when `go` is installed (and no --engines list left it out).
    let go_dir = tempfile::tempdir()?;
    let mut engines = a.engines.clone();
    if !a.engines_given || engines.iter().any(|e| e == GO_ENGINE) {
        match build_go(go_dir.path()) {
            Some(bin) => {
                // Set before this process starts any thread; the children inherit it.
                std::env::set_var(GO_ENV, &bin);
                if !engines.iter().any(|e| e == GO_ENGINE) {
                    engines.push(GO_ENGINE.into());
                }
                machine.push(format!("Go bbolt: {}", sh("go", &["version"])));
            }
            None => engines.retain(|e| e != GO_ENGINE),
        }
    }
    let engines = &engines;
    let mut results: Results = BTreeMap::new();
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut samples: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    // Rounds interleave the engines so that a change in the machine's load hits them alike.
    let mut timed_out: Vec<String> = Vec::new();
    for round in 1..=a.runs {
        for engine in engines {
            if timed_out.contains(engine) {
                continue;
            }
            eprintln!(
                "== {engine} ({} entries), run {round} of {}",
                a.entries, a.runs
            );
            // The child's databases go in a directory this process removes, even after a kill.
            let dir = temp_dir_in(base, "deadbolt-bench-")?;
            let cmd = match go_bin() {
                Some(bin) if engine == GO_ENGINE => {
                    let mut c = Command::new(bin);
                    c.arg("child").arg(a.entries.to_string()).arg(dir.path());
                    c
                }
                _ => {
                    let mut c = Command::new(&exe);
                    c.args([
                        "--child",
                        engine,
                        "--entries",
                        &a.entries.to_string(),
                        "--dir",
                    ])
                    .arg(dir.path());
                    c
                }
            };
            let (stdout, outcome) = run_with_timeout(cmd, a.timeout)
                .map_err(|e| format!("running the {engine} child: {e}"))?;
            let r = samples.entry(engine.clone()).or_default();
            for (k, v) in protocol::parse(&stdout, RESULT) {
                r.entry(k.to_string()).or_default().push(v);
            }
            match outcome {
                Some(st) if st.success() => {}
                Some(st) => {
                    failures.insert(engine.clone(), format!("child process failed ({st})"));
                }
                None => {
                    eprintln!("  {engine}: killed after {} s", a.timeout);
                    failures.insert(
                        engine.clone(),
                        format!(
                            "stopped after the {} s time limit per engine run (`--timeout`), \
                             so it was not run again",
                            a.timeout
                        ),
                    );
                    timed_out.push(engine.clone());
                }
            }
        }
    }
    for round in 1..=a.runs {
        eprintln!(
            "== interleaved individual commits, run {round} of {}",
            a.runs
        );
        let out = Command::new(&exe)
            .args([
                "--duel",
                "--engines",
                &engines.join(","),
                "--entries",
                &a.entries.to_string(),
                "--dir",
            ])
            .arg(base)
            .stderr(std::process::Stdio::inherit())
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
    for (engine, metrics) in samples {
        let r = results.entry(engine).or_default();
        for (k, mut v) in metrics {
            v.sort_by(f64::total_cmp);
            r.insert(k, v[v.len() / 2]);
        }
    }
    let have_strace = Command::new("strace").arg("-V").output().is_ok();
    if have_strace {
        for engine in engines {
            eprintln!("== strace sync probe: {engine}");
            let with = strace_syncs(&exe, engine, PROBE_COMMITS, base);
            let without = strace_syncs(&exe, engine, 0, base);
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
    }
    Ok(Measured {
        machine,
        results,
        failures,
        have_strace,
    })
}
