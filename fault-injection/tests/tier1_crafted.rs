//! F15 in the CI tier: a branch page that lists itself as its own child, with every checksum
//! on its path recomputed (a CRC-32 fixed point), must be reported as corruption naming that
//! page, by iteration, lookup and check; never a hang, stack overflow or runaway allocation.
//! It runs in a child process under a generous budget so that a hang fails the test instead of
//! stalling it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn crafted_self_cycle_is_reported() {
    for page in ["1024", "4096", "16384"] {
        let t = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fault-injection"))
            .args(["crafted-cycle", "--page-size", page])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if t.elapsed() > Duration::from_secs(120) {
                child.kill().unwrap();
                child.wait().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap_or_default();
        println!("page {page}: {status:?}: {}", out.trim());
        assert!(
            status.is_some_and(|s| s.success()),
            "page {page}: {}",
            out.trim()
        );
    }
}
