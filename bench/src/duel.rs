//! The interleaved commit run (`--duel`): individual durable commits on every engine in one
//! process, in rounds, each engine's rate printed as a [`DUEL`] line.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

use deadbolt_bench::{open, temp_dir_in, Engine, Res};

use crate::go::{self, GO_ENGINE};
use crate::protocol::{self, DUEL};
use crate::sizes::{self, DUEL_COMMITS, DUEL_ROUNDS};

/// One engine in the interleaved commit run.
enum Duelist {
    Rust(Box<dyn Engine>),
    /// The Go program's `duel` mode: one line on stdin makes a round of commits, and it answers
    /// with the seconds they took.
    Go(Child, BufReader<ChildStdout>),
}

impl Duelist {
    /// Engine `e` with entries `0..load` in a fresh database under `dir`.
    fn start(e: &str, load: u64, dir: &Path) -> Res<Duelist> {
        if e != GO_ENGINE {
            let db = open(e, dir)?;
            db.write(0..load)?;
            return Ok(Duelist::Rust(db));
        }
        let bin = go::built_go_bin()?;
        std::fs::create_dir_all(dir)?;
        let mut child = Command::new(bin)
            .args(go::mode_args("duel", load, dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("Go bbolt duel: unexpected {line:?}").into());
        }
        Ok(Duelist::Go(child, out))
    }

    /// One round: [`DUEL_COMMITS`] single-key commits from entry `next` on; returns the seconds
    /// they took.
    fn round(&mut self, next: u64) -> Res<f64> {
        match self {
            Duelist::Rust(db) => {
                let t = Instant::now();
                for i in next..next + DUEL_COMMITS {
                    db.write(i..i + 1)?;
                }
                Ok(t.elapsed().as_secs_f64())
            }
            Duelist::Go(child, out) => {
                let stdin = child.stdin.as_mut().ok_or("no stdin")?;
                writeln!(stdin)?;
                stdin.flush()?;
                let mut line = String::new();
                out.read_line(&mut line)?;
                Ok(line
                    .trim()
                    .parse::<f64>()
                    .map_err(|e| format!("Go bbolt duel: {line:?}: {e}"))?)
            }
        }
    }

    /// Close the engine (the Go program exits when its stdin closes).
    fn finish(self) -> Res<()> {
        if let Duelist::Go(mut child, _) = self {
            drop(child.stdin.take());
            child.wait()?;
        }
        Ok(())
    }
}

/// Individual durable commits on all engines in one process, interleaved in rounds, so that the
/// shared device's sync latency (which drifts by 10x over minutes here) hits every engine alike.
pub fn duel(engines: &[String], n: u64, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-duel-")?;
    let load = sizes::duel_entries(n);
    let mut dbs = Vec::new();
    for e in engines {
        dbs.push((e, Duelist::start(e, load, &tmp.path().join(e))?, 0f64));
    }
    let mut next = load;
    for _ in 0..DUEL_ROUNDS {
        for (_, d, secs) in dbs.iter_mut() {
            *secs += d.round(next)?;
        }
        next += DUEL_COMMITS;
    }
    for (e, d, secs) in dbs {
        protocol::print(DUEL, e, (DUEL_ROUNDS * DUEL_COMMITS) as f64 / secs);
        d.finish()?;
    }
    Ok(())
}
