//! The replication numbers of docs/BENCHMARKS.md (ignored: a measurement, not a test; no
//! timing is asserted). Run with
//! `cargo test -p deadbolt-raft --release --test bench_cluster -- --ignored --nocapture`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{agreed_leader, Cluster};

fn bench(cl: &Cluster, clients: usize, writes: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_deadbolt-kv"))
        .args(["bench", "--peers", &cl.peers_arg()])
        .args([
            "--clients",
            &clients.to_string(),
            "--writes",
            &writes.to_string(),
        ])
        .output()
        .expect("run deadbolt-kv bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: prints the replication numbers"]
async fn replication_numbers() {
    for (label, extra) in [("files", &[][..]), ("in_memory", &["--in-memory"][..])] {
        let mut args = vec!["--snapshot-logs", "100000"];
        args.extend_from_slice(extra);
        let mut cl = Cluster::new(&args);
        for id in 1..=3 {
            cl.start(id);
        }
        agreed_leader(&cl.peers, &[1, 2, 3], Duration::from_secs(30)).await;
        for (clients, writes) in [(1, 2000), (16, 16000)] {
            println!("{label} {}", bench(&cl, clients, writes));
        }
    }
}
