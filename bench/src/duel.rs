//! The interleaved commit run (`--duel`): individual durable commits on every engine in one
//! process, in rounds, each engine's rate printed as a [`DUEL`] line.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use deadbolt_bench::{open, temp_dir_in, Engine, Res};

use crate::go::{go_bin, GO_ENGINE};
use crate::protocol::{self, DUEL};
use crate::sizes::{self, DUEL_COMMITS, DUEL_ROUNDS};

/// One engine in the interleaved commit run.
enum Duelist {
    Rust(Box<dyn Engine>),
    Go(
        std::process::Child,
        std::io::BufReader<std::process::ChildStdout>,
    ),
}

/// Individual durable commits on all engines in one process, interleaved in rounds, so that the
/// shared device's sync latency (which drifts by 10x over minutes here) hits every engine alike.
pub fn duel(engines: &[String], n: u64, base: &Path) -> Res<()> {
    let tmp = temp_dir_in(base, "deadbolt-duel-")?;
    use std::io::{BufRead, Write};
    let load = sizes::duel_entries(n);
    let mut dbs = Vec::new();
    for e in engines {
        let d = if e == GO_ENGINE {
            let bin = go_bin().ok_or("the Go program was not built")?;
            let dir = tmp.path().join(e);
            std::fs::create_dir_all(&dir)?;
            let mut child = Command::new(bin)
                .arg("duel")
                .arg(load.to_string())
                .arg(&dir)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut out = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
            let mut line = String::new();
            out.read_line(&mut line)?;
            if line.trim() != "ready" {
                return Err(format!("Go bbolt duel: unexpected {line:?}").into());
            }
            Duelist::Go(child, out)
        } else {
            let db = open(e, &tmp.path().join(e))?;
            db.write(0..load)?;
            Duelist::Rust(db)
        };
        dbs.push((e, d, 0f64));
    }
    let mut next = load;
    for _ in 0..DUEL_ROUNDS {
        for (_, d, secs) in dbs.iter_mut() {
            match d {
                Duelist::Rust(db) => {
                    let t = Instant::now();
                    for i in next..next + DUEL_COMMITS {
                        db.write(i..i + 1)?;
                    }
                    *secs += t.elapsed().as_secs_f64();
                }
                Duelist::Go(child, out) => {
                    let stdin = child.stdin.as_mut().ok_or("no stdin")?;
                    writeln!(stdin)?;
                    stdin.flush()?;
                    let mut line = String::new();
                    out.read_line(&mut line)?;
                    *secs += line
                        .trim()
                        .parse::<f64>()
                        .map_err(|e| format!("Go bbolt duel: {line:?}: {e}"))?;
                }
            }
        }
        next += DUEL_COMMITS;
    }
    for (e, d, secs) in dbs {
        protocol::print(DUEL, e, (DUEL_ROUNDS * DUEL_COMMITS) as f64 / secs);
        if let Duelist::Go(mut child, _) = d {
            drop(child.stdin.take());
            child.wait()?;
        }
    }
    Ok(())
}
