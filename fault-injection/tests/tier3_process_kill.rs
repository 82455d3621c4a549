//! Tier 3: a real child process commits through the real file implementation (`Db::open_with`,
//! i.e. `FileStorage`: pwrite, fdatasync, mmap reads) and reports each acknowledged commit on a
//! pipe; the test kills it with SIGKILL at a seeded random moment, reopens the file and checks
//! that every acknowledged commit is there and that the state is exactly that after some commit
//! (the last acknowledged one or the one in flight), then lets the next child continue from it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use deadbolt::{Db, Options};
use fault_injection::child::{kill_state, last_commit};
use fault_injection::engine::scan_db;
use fault_injection::rng::Rng;

fn seed() -> u64 {
    std::env::var("FI_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5151_0001)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_commit() {
    let seed = seed();
    let rounds = 8;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    let exe = env!("CARGO_BIN_EXE_fault-injection");
    let mut rng = Rng::new(seed);
    let mut total_acked = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(exe)
            .args([
                "child",
                "--path",
                path.to_str().unwrap(),
                "--seed",
                &seed.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        // Kill after a seeded number of acknowledgements plus a seeded delay (0-3 ms), so the
        // kill lands anywhere inside a commit.
        let target = rng.range(1, 25);
        let delay = Duration::from_micros(rng.below(3000));
        let mut opened_at = None;
        let mut acked = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(l) => {
                    if let Some(n) = l.strip_prefix("open ") {
                        opened_at = Some(n.parse::<u64>().unwrap());
                    } else if let Some(n) = l.strip_prefix("ack ") {
                        acked = n.parse().unwrap();
                        if acked - opened_at.unwrap() >= target {
                            break;
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::thread::sleep(delay);
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let status = child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements written before the kill are still in the pipe.
        while let Ok(l) = rx.try_recv() {
            if let Some(n) = l.strip_prefix("ack ") {
                acked = acked.max(n.parse().unwrap());
            }
        }
        let opened_at = opened_at.expect("child never opened the database");
        assert!(
            acked > opened_at,
            "round {round}: child acknowledged nothing (seed {seed:#x})"
        );
        // Reopen through the real file and check.
        let db = Db::open_with(&path, Options::default()).unwrap_or_else(|e| {
            panic!("round {round}: reopen after SIGKILL failed: {e} (seed {seed:#x})")
        });
        let st = scan_db(&db)
            .unwrap_or_else(|e| panic!("round {round}: read failed: {e} (seed {seed:#x})"));
        let last = last_commit(&st);
        assert!(
            last == acked || last == acked + 1,
            "round {round}: recovered commit {last}, but commit {acked} was acknowledged (seed {seed:#x}, FI_KILL_SEED={seed})"
        );
        let want = kill_state(seed, last);
        assert!(
            st == want,
            "round {round}: state is not exactly that after commit {last}: {} (seed {seed:#x})",
            want.diff(&st)
        );
        let report = db.check().unwrap();
        assert!(
            report.is_ok(),
            "round {round}: integrity check: {:?}",
            report.problems
        );
        drop(db);
        total_acked = acked;
        println!("round {round}: killed ({status}) after commit {acked} acknowledged; recovered commit {last}: ok");
    }
    println!("tier 3: {rounds} SIGKILLs, {total_acked} acknowledged commits, all present (seed {seed:#x})");
}
