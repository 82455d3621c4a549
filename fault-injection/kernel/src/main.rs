//! The child process of the real-kernel tier, on a path inside the FUSE mount. It speaks the
//! tier-3 child's protocol on the tier-3 workload (`fault_injection::child`: open through
//! `FileStorage`, print `open N`, then `ack N` after each commit returned), and can add:
//!
//! * `--shrink-every K`: `Db::shrink_to_fit` after every K-th commit (the file is truncated to
//!   its high-water mark and grows again: set_len in both directions under power cuts);
//! * `--reader`: a thread reading the whole database through the mapping while the writer
//!   commits; it checks that the newest commit it sees never goes back and that commit's own
//!   key holds that commit's value, and exits the process with status 4 otherwise.
//!
//! `deadbolt-kernel-tier child --path <file> --seed <n> [--shrink-every <k>] [--reader]`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadbolt::{Db, Options};
use fault_injection::child::{kill_ops, last_commit};
use fault_injection::engine::{commit_ops, scan_db};
use fault_injection::model::{Op, State};

/// Commits one child makes at most (the parent kills it long before).
const MAX_COMMITS: u64 = 100_000;
/// Reads the reader thread makes at most.
const MAX_READS: u64 = 1_000_000;

struct Args {
    path: PathBuf,
    seed: u64,
    shrink_every: u64,
    reader: bool,
}

fn parse() -> Option<Args> {
    let mut it = std::env::args().skip(1);
    if it.next()? != "child" {
        return None;
    }
    let (mut path, mut seed, mut shrink_every, mut reader) = (None, None, 0, false);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--path" => path = Some(PathBuf::from(it.next()?)),
            "--seed" => seed = Some(it.next()?.parse().ok()?),
            "--shrink-every" => shrink_every = it.next()?.parse().ok()?,
            "--reader" => reader = true,
            _ => return None,
        }
    }
    Some(Args {
        path: path?,
        seed: seed?,
        shrink_every,
        reader,
    })
}

/// The value commit `i` puts under its own key `c{i:06}`.
fn own_value(seed: u64, i: u64) -> Option<Vec<u8>> {
    let key = format!("c{i:06}").into_bytes();
    kill_ops(seed, i).into_iter().find_map(|op| match op {
        Op::Put(_, k, v) if k == key => Some(v),
        _ => None,
    })
}

/// The reader's check of one snapshot: `Err` names what is wrong.
fn check_snapshot(seed: u64, st: &State, seen: &mut u64) -> Result<(), String> {
    let last = last_commit(st);
    if last < *seen {
        return Err(format!("reader: commit {last} after commit {seen}"));
    }
    *seen = last;
    if last == 0 {
        return Ok(());
    }
    let key = format!("c{last:06}").into_bytes();
    let got = st
        .at(&[b"data".to_vec()])
        .and_then(|b| b.kv.get(key.as_slice()));
    if got != own_value(seed, last).as_ref() {
        return Err(format!("reader: commit {last}'s own value is wrong"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let Some(a) = parse() else {
        eprintln!(
            "usage: deadbolt-kernel-tier child --path <file> --seed <n> [--shrink-every <k>] [--reader]"
        );
        return ExitCode::from(64);
    };
    let db = match Db::open_with(&a.path, Options::default()) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            return ExitCode::from(2);
        }
    };
    let start = match scan_db(&db) {
        Ok(st) => last_commit(&st) + 1,
        Err(e) => {
            eprintln!("child: read failed: {e}");
            return ExitCode::from(2);
        }
    };
    println!("open {}", start - 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        if a.reader {
            let (db, stop, seed) = (&db, &stop, a.seed);
            s.spawn(move || {
                let mut seen = start - 1;
                for _ in 0..MAX_READS {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let r = scan_db(db)
                        .map_err(|e| format!("reader: {e}"))
                        .and_then(|st| check_snapshot(seed, &st, &mut seen));
                    if let Err(m) = r {
                        eprintln!("child: {m}");
                        std::process::exit(4);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }
        let code = writer(&db, &a, start);
        stop.store(true, Ordering::Relaxed);
        code
    })
}

fn writer(db: &Db, a: &Args, start: u64) -> ExitCode {
    let out = std::io::stdout();
    for i in start..start + MAX_COMMITS {
        if let Err(e) = commit_ops(db, &kill_ops(a.seed, i)) {
            eprintln!("child: commit {i} failed: {e}");
            return ExitCode::from(3);
        }
        if a.shrink_every > 0 && i.is_multiple_of(a.shrink_every) {
            if let Err(e) = db.shrink_to_fit() {
                eprintln!("child: shrink after commit {i} failed: {e}");
                return ExitCode::from(3);
            }
        }
        let mut o = out.lock();
        let _ = writeln!(o, "ack {i}");
        let _ = o.flush();
    }
    ExitCode::SUCCESS
}
