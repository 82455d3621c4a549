//! One node of the replicated key/value service: openraft over deadbolt, serving
//! [`crate::net`]'s protocol on one TCP port.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use deadbolt::Options;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use crate::net::{read_frame, write_frame, ClientReply, ClientRequest, Message, Network, Status};
use crate::store::{open_node_storage, open_node_storage_in_memory, LogStore, StateMachine};
use crate::{NodeId, Raft, Request};

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Holds `log.db`, `sm.db` and `snapshot.db`.
    pub dir: PathBuf,
    /// Every member's id and `host:port` (this node's included).
    pub peers: BTreeMap<NodeId, String>,
    /// Initialize the cluster with all `peers` as voters (a no-op if it already is).
    pub init: bool,
    /// deadbolt's `no_sync` (for measuring what the syncs cost; not durable).
    pub no_sync: bool,
    /// Log and state machine in memory (for measuring what the file costs; not durable).
    pub in_memory: bool,
    /// Build a snapshot after this many new log entries.
    pub snapshot_logs: u64,
    /// Keep this many entries below the snapshot when purging.
    pub keep_logs: u64,
}

#[derive(Clone)]
struct Node {
    raft: Raft,
    log: LogStore,
    sm: StateMachine,
    peers: Arc<BTreeMap<NodeId, String>>,
}

/// Open the node's storage, start openraft and serve until the process ends.
pub async fn run(cfg: NodeConfig) -> Result<(), String> {
    let addr = cfg
        .peers
        .get(&cfg.id)
        .ok_or_else(|| format!("node {} is not among the peers", cfg.id))?
        .clone();
    let opts = Options {
        no_sync: cfg.no_sync,
        ..Options::default()
    };
    let dir = cfg.dir.clone();
    // Opening verifies and may repair files: blocking work, off the runtime's workers.
    let in_memory = cfg.in_memory;
    let (log, sm) = tokio::task::spawn_blocking(move || {
        if in_memory {
            open_node_storage_in_memory(&dir)
        } else {
            open_node_storage(&dir, opts)
        }
    })
    .await
    .map_err(|e| e.to_string())??;
    let config = Config {
        cluster_name: "deadbolt-kv".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs),
        max_in_snapshot_log_to_keep: cfg.keep_logs,
        ..Config::default()
    }
    .validate()
    .map_err(|e| e.to_string())?;
    let raft = Raft::new(cfg.id, Arc::new(config), Network, log.clone(), sm.clone())
        .await
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    if cfg.init {
        let members: BTreeMap<NodeId, BasicNode> = cfg
            .peers
            .iter()
            .map(|(id, a)| (*id, BasicNode::new(a)))
            .collect();
        if let Err(e) = raft.initialize(members).await {
            // Already initialized (a restart): nothing to do.
            eprintln!("node {}: initialize: {e}", cfg.id);
        }
    }
    eprintln!("node {} serving on {addr}", cfg.id);
    let node = Node {
        raft,
        log,
        sm,
        peers: Arc::new(cfg.peers),
    };
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(node, stream).await {
                if e.kind() != std::io::ErrorKind::ConnectionReset {
                    eprintln!("connection: {e}");
                }
            }
        });
    }
}

async fn serve_conn(node: Node, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    while let Some(msg) = read_frame::<_, Message>(&mut r).await? {
        match msg {
            Message::AppendEntries(req) => {
                write_frame(&mut w, &node.raft.append_entries(req).await).await?
            }
            Message::Vote(req) => write_frame(&mut w, &node.raft.vote(req).await).await?,
            Message::InstallSnapshot(req) => {
                write_frame(&mut w, &node.raft.install_snapshot(req).await).await?
            }
            Message::Client(req) => write_frame(&mut w, &client(&node, req).await).await?,
        }
    }
    Ok(())
}

fn not_leader(node: &Node, leader: Option<NodeId>) -> ClientReply {
    ClientReply::NotLeader(leader.and_then(|l| node.peers.get(&l).map(|a| (l, a.clone()))))
}

async fn write(node: &Node, req: Request) -> ClientReply {
    match node.raft.client_write(req).await {
        Ok(resp) => ClientReply::Value(resp.data.prev),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            not_leader(node, f.leader_id)
        }
        Err(e) => ClientReply::Error(e.to_string()),
    }
}

async fn local_gets(node: &Node, keys: Vec<String>) -> Result<Vec<Option<String>>, String> {
    let sm = node.sm.clone();
    tokio::task::spawn_blocking(move || {
        keys.iter()
            .map(|k| sm.get_blocking(k))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn client(node: &Node, req: ClientRequest) -> ClientReply {
    match req {
        ClientRequest::Put { key, value } => write(node, Request::Put { key, value }).await,
        ClientRequest::Delete { key } => write(node, Request::Delete { key }).await,
        ClientRequest::Get { key } => match node.raft.ensure_linearizable().await {
            Ok(_) => match local_gets(node, vec![key]).await {
                Ok(mut v) => ClientReply::Value(v.pop().flatten()),
                Err(e) => ClientReply::Error(e),
            },
            Err(e) => match e.forward_to_leader() {
                Some(f) => not_leader(node, f.leader_id),
                None => ClientReply::Error(e.to_string()),
            },
        },
        ClientRequest::LocalGetMany { keys } => {
            if keys.len() > crate::net::MAX_KEYS_PER_GET {
                return ClientReply::Error(format!(
                    "at most {} keys per request",
                    crate::net::MAX_KEYS_PER_GET
                ));
            }
            match local_gets(node, keys).await {
                Ok(v) => ClientReply::Values(v),
                Err(e) => ClientReply::Error(e),
            }
        }
        ClientRequest::Status => {
            let m = node.raft.metrics().borrow().clone();
            let (ls, ss) = (node.log.db().stats(), node.sm.db().stats());
            ClientReply::Status(Status {
                id: m.id,
                leader: m.current_leader,
                is_leader: m.current_leader == Some(m.id),
                term: m.current_term,
                last_log_index: m.last_log_index,
                last_applied: m.last_applied.map(|l| l.index),
                snapshot: m.snapshot.map(|l| l.index),
                purged: m.purged.map(|l| l.index),
                snapshots_installed: node.sm.snapshots_installed(),
                log_syncs: ls.syncs,
                log_commits: ls.commits,
                sm_syncs: ss.syncs,
                sm_commits: ss.commits,
            })
        }
    }
}
