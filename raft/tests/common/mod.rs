//! A 3-node deadbolt-kv cluster of child processes on 127.0.0.1, killed on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use deadbolt_raft::net::{Client, ClientReply, ClientRequest, Status};
use deadbolt_raft::NodeId;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub peers: BTreeMap<NodeId, String>,
    children: BTreeMap<NodeId, Child>,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Cluster {
    /// Three nodes (not started yet); `extra` is passed to every `serve`.
    pub fn new(extra: &[&str]) -> Cluster {
        let peers = (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            peers,
            children: BTreeMap::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn peers_arg(&self) -> String {
        self.peers
            .iter()
            .map(|(id, a)| format!("{id}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn log_path(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node{id}.log"))
    }

    /// Start node `id` (node 1 initializes the cluster) from its directory.
    pub fn start(&mut self, id: NodeId) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("node log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deadbolt-kv"));
        cmd.arg("serve")
            .arg("--id")
            .arg(id.to_string())
            .arg("--dir")
            .arg(self.dir.path().join(format!("n{id}")))
            .arg("--peers")
            .arg(self.peers_arg())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if id == 1 {
            cmd.arg("--init");
        }
        let child = cmd.spawn().expect("start deadbolt-kv");
        self.children.insert(id, child);
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: NodeId) {
        if let Some(mut c) = self.children.remove(&id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.peers.clone())
    }

    /// The nodes' logs, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for id in self.peers.keys() {
            let text = fs::read_to_string(self.log_path(*id)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            s.push_str(&format!("--- node {id} (last lines)\n"));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let ids: Vec<NodeId> = self.children.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

pub async fn status(c: &mut Client, id: NodeId) -> Option<Status> {
    match c.call_node(id, ClientRequest::Status).await {
        Ok(ClientReply::Status(s)) => Some(s),
        _ => None,
    }
}

/// Poll until `f` returns `Some`, every 50 ms, for at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The node every live node agrees is the leader (polling for at most `limit`).
pub async fn agreed_leader(
    peers: &BTreeMap<NodeId, String>,
    live: &[NodeId],
    limit: Duration,
) -> NodeId {
    let peers = peers.clone();
    let live = live.to_vec();
    wait_for("a leader all live nodes agree on", limit, || {
        let (peers, live) = (peers.clone(), live.clone());
        async move {
            let mut c = Client::new(peers);
            c.ttl = Duration::from_millis(500);
            let mut leader = None;
            for id in &live {
                let s = status(&mut c, *id).await?;
                let l = s.leader?;
                if leader.is_some_and(|x| x != l) || !live.contains(&l) {
                    return None;
                }
                leader = Some(l);
            }
            leader
        }
    })
    .await
}
