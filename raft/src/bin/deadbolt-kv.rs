//! deadbolt-kv: a replicated key/value service (openraft over deadbolt), and its client.
//!
//! ```text
//! deadbolt-kv serve --id 1 --dir /tmp/kv1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --init
//! deadbolt-kv put   --peers ... KEY VALUE
//! deadbolt-kv get   --peers ... KEY
//! deadbolt-kv delete --peers ... KEY
//! deadbolt-kv status --peers ...
//! deadbolt-kv bench --peers ... --clients 16 --writes 4000
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use deadbolt_raft::net::{Client, ClientReply, ClientRequest, Status};
use deadbolt_raft::node::{run, NodeConfig};
use deadbolt_raft::NodeId;

#[derive(Parser)]
#[command(about = "A replicated key/value service: openraft over deadbolt")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Peers {
    /// Every node as ID=HOST:PORT, comma-separated.
    #[arg(long, value_parser = parse_peers)]
    peers: BTreeMap<NodeId, String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node.
    Serve {
        #[arg(long)]
        id: NodeId,
        /// Directory of the node's deadbolt files.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        peers: Peers,
        /// Initialize the cluster with every peer as a voter (ignored once initialized).
        #[arg(long)]
        init: bool,
        /// Do not fdatasync commits (to measure what syncs cost; not durable).
        #[arg(long)]
        no_sync: bool,
        /// Keep the log and state machine in memory (to measure what the files cost; nothing
        /// survives a restart).
        #[arg(long)]
        in_memory: bool,
        /// Build a snapshot after this many log entries.
        #[arg(long, default_value_t = 5000)]
        snapshot_logs: u64,
        /// Entries kept below a snapshot when the log is purged.
        #[arg(long, default_value_t = 1000)]
        keep_logs: u64,
    },
    /// Replicated write through the leader.
    Put {
        #[command(flatten)]
        peers: Peers,
        key: String,
        value: String,
    },
    /// Linearizable read through the leader.
    Get {
        #[command(flatten)]
        peers: Peers,
        key: String,
    },
    /// Replicated delete through the leader.
    Delete {
        #[command(flatten)]
        peers: Peers,
        key: String,
    },
    /// Every node's raft state and sync counters.
    Status {
        #[command(flatten)]
        peers: Peers,
    },
    /// Replicated writes per second and latency, with fdatasyncs and commits per write per
    /// node (of `log.db` and `sm.db`).
    Bench {
        #[command(flatten)]
        peers: Peers,
        /// Concurrent clients, each with its own connection, one write in flight each.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Writes in all.
        #[arg(long, default_value_t = 2000)]
        writes: usize,
        /// Bytes per value.
        #[arg(long, default_value_t = 100)]
        value_size: usize,
    },
}

fn parse_peers(s: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut m = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not ID=HOST:PORT"))?;
        let id: NodeId = id.parse().map_err(|e| format!("node id {id:?}: {e}"))?;
        m.insert(id, addr.to_string());
    }
    if m.is_empty() {
        return Err("no peers".into());
    }
    Ok(m)
}

const DEADLINE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() {
    if let Err(e) = real_main(Cli::parse()).await {
        eprintln!("deadbolt-kv: {e}");
        std::process::exit(1);
    }
}

async fn one(peers: Peers, req: ClientRequest) -> Result<(), String> {
    let mut c = Client::new(peers.peers);
    match c
        .call_leader(req, DEADLINE)
        .await
        .map_err(|e| e.to_string())?
    {
        (_, ClientReply::Value(Some(v))) => println!("{v}"),
        (_, ClientReply::Value(None)) => println!("(none)"),
        (_, other) => return Err(format!("unexpected reply {other:?}")),
    }
    Ok(())
}

async fn statuses(c: &mut Client, ids: &[NodeId]) -> Vec<Option<Status>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(match c.call_node(*id, ClientRequest::Status).await {
            Ok(ClientReply::Status(s)) => Some(s),
            _ => None,
        });
    }
    out
}

async fn real_main(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Serve {
            id,
            dir,
            peers,
            init,
            no_sync,
            in_memory,
            snapshot_logs,
            keep_logs,
        } => {
            run(NodeConfig {
                id,
                dir,
                peers: peers.peers,
                init,
                no_sync,
                in_memory,
                snapshot_logs,
                keep_logs,
            })
            .await
        }
        Cmd::Put { peers, key, value } => one(peers, ClientRequest::Put { key, value }).await,
        Cmd::Get { peers, key } => one(peers, ClientRequest::Get { key }).await,
        Cmd::Delete { peers, key } => one(peers, ClientRequest::Delete { key }).await,
        Cmd::Status { peers } => {
            let ids: Vec<NodeId> = peers.peers.keys().copied().collect();
            let mut c = Client::new(peers.peers);
            for (id, s) in ids.iter().zip(statuses(&mut c, &ids).await) {
                match s {
                    Some(s) => println!("{}", serde_json::to_string(&s).unwrap_or_default()),
                    None => println!("{{\"id\":{id},\"down\":true}}"),
                }
            }
            Ok(())
        }
        Cmd::Bench {
            peers,
            clients,
            writes,
            value_size,
        } => bench(peers.peers, clients.max(1), writes, value_size).await,
    }
}

async fn bench(
    peers: BTreeMap<NodeId, String>,
    clients: usize,
    writes: usize,
    value_size: usize,
) -> Result<(), String> {
    let ids: Vec<NodeId> = peers.keys().copied().collect();
    let mut probe = Client::new(peers.clone());
    // Find the leader first, so that no client's first write pays for the search.
    probe
        .call_leader(
            ClientRequest::Put {
                key: "bench-warmup".into(),
                value: "x".into(),
            },
            DEADLINE,
        )
        .await
        .map_err(|e| e.to_string())?;
    let before = statuses(&mut probe, &ids).await;
    let value = "v".repeat(value_size);
    let per = writes.div_ceil(clients);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (peers, value) = (peers.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut cl = Client::new(peers);
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                let req = ClientRequest::Put {
                    key: format!("bench-{c:03}-{i:08}"),
                    value: value.clone(),
                };
                match cl.call_leader(req, DEADLINE).await {
                    Ok((_, ClientReply::Value(_))) => lat.push(t.elapsed()),
                    Ok((_, other)) => return Err(format!("unexpected reply {other:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    let after = statuses(&mut probe, &ids).await;
    lat.sort();
    let n = lat.len();
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)];
    let mut per_node = Vec::new();
    for (id, (b, a)) in ids.iter().zip(before.iter().zip(after.iter())) {
        if let (Some(b), Some(a)) = (b, a) {
            let d = |x: u64, y: u64| x.saturating_sub(y) as f64 / n as f64;
            // In --in-memory mode the "syncs" are no-ops of the memory storage.
            per_node.push(format!(
                "{{\"id\":{id},\"leader\":{},\"log_syncs\":{:.3},\"sm_syncs\":{:.3},\"log_commits\":{:.3},\"sm_commits\":{:.3}}}",
                a.is_leader,
                d(a.log_syncs, b.log_syncs),
                d(a.sm_syncs, b.sm_syncs),
                d(a.log_commits, b.log_commits),
                d(a.sm_commits, b.sm_commits),
            ));
        }
    }
    println!(
        "{{\"clients\":{clients},\"writes\":{n},\"seconds\":{:.3},\"writes_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"nodes\":[{}]}}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        per_node.join(",")
    );
    Ok(())
}
