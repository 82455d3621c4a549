//! A small framed-TCP protocol: each message is a 4-byte big-endian length and that many bytes
//! of JSON. One connection carries one request at a time (request, then its reply). The same
//! port serves openraft's RPCs between nodes and the example's client requests.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::{NodeId, TypeConfig};

/// The largest frame accepted (bytes). A longer length prefix is refused before anything is
/// allocated. openraft's messages stay far below it: at most `max_payload_entries` entries per
/// append and `snapshot_max_chunk_size` bytes per snapshot chunk.
pub const MAX_FRAME: usize = 64 << 20;
/// Keys per [`ClientRequest::LocalGetMany`].
pub const MAX_KEYS_PER_GET: usize = 1000;

/// Write one frame.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, v: &T) -> io::Result<()> {
    let body = serde_json::to_vec(v).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::other(format!(
            "message of {} bytes exceeds the {MAX_FRAME}-byte frame limit",
            body.len()
        )));
    }
    w.write_all(&(body.len() as u32).to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Read one frame; `None` at a clean end of stream before a frame starts.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Every message a node accepts.
#[derive(Debug, Serialize, Deserialize)]
pub enum Message {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Client(ClientRequest),
}

/// Requests of the key/value service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Replicated write (leader only).
    Put { key: String, value: String },
    /// Replicated delete (leader only).
    Delete { key: String },
    /// Linearizable read (leader only: confirmed with a quorum, after the read index applied).
    Get { key: String },
    /// This node's applied value of each key, without asking the leader (at most
    /// [`MAX_KEYS_PER_GET`] keys).
    LocalGetMany { keys: Vec<String> },
    /// This node's raft state and storage counters.
    Status,
}

/// Replies of the key/value service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientReply {
    /// A write's previous value, or a read's value.
    Value(Option<String>),
    Values(Vec<Option<String>>),
    /// This node is not the leader; the leader it knows of, if any.
    NotLeader(Option<(NodeId, String)>),
    Status(Status),
    Error(String),
}

/// What [`ClientRequest::Status`] reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub id: NodeId,
    pub leader: Option<NodeId>,
    pub is_leader: bool,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied: Option<u64>,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    /// Snapshots installed by this process.
    pub snapshots_installed: u64,
    /// fdatasyncs and commits of `log.db` and `sm.db` since this process opened them.
    pub log_syncs: u64,
    pub log_commits: u64,
    pub sm_syncs: u64,
    pub sm_commits: u64,
}

/// One connection to a node, reconnected on the next call after any error.
pub struct Conn {
    addr: String,
    stream: Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    )>,
}

impl Conn {
    pub fn new(addr: impl Into<String>) -> Conn {
        Conn {
            addr: addr.into(),
            stream: None,
        }
    }

    /// Send `msg` and read the reply, all within `ttl`.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        msg: &Message,
        ttl: Duration,
    ) -> io::Result<T> {
        let r = tokio::time::timeout(ttl, self.call_inner(msg)).await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out")),
        };
        if r.is_err() {
            self.stream = None;
        }
        r
    }

    async fn call_inner<T: DeserializeOwned>(&mut self, msg: &Message) -> io::Result<T> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            self.stream = Some((BufReader::new(r), BufWriter::new(w)));
        }
        let (r, w) = self.stream.as_mut().expect("connected above");
        write_frame(w, msg).await?;
        read_frame(r)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
    }
}

/// openraft's network: one [`Conn`] per target.
pub struct Network;

/// The connection to one peer.
pub struct PeerClient {
    target: NodeId,
    conn: Conn,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            conn: Conn::new(node.addr.clone()),
        }
    }
}

impl PeerClient {
    async fn rpc<R: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        msg: Message,
        ttl: Duration,
    ) -> Result<R, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        let reply: Result<R, RaftError<NodeId, E>> = match self.conn.call(&msg, ttl).await {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(RPCError::Network(NetworkError::new(&e)))
            }
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
        };
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(Message::AppendEntries(rpc), option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(Message::InstallSnapshot(rpc), option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(Message::Vote(rpc), option.hard_ttl()).await
    }
}

/// A client of the key/value service that finds the leader and follows redirects.
pub struct Client {
    peers: BTreeMap<NodeId, String>,
    conns: BTreeMap<NodeId, Conn>,
    leader: Option<NodeId>,
    /// Per-request timeout.
    pub ttl: Duration,
}

impl Client {
    pub fn new(peers: BTreeMap<NodeId, String>) -> Client {
        let conns = peers
            .iter()
            .map(|(id, a)| (*id, Conn::new(a.clone())))
            .collect();
        Client {
            peers,
            conns,
            leader: None,
            ttl: Duration::from_secs(2),
        }
    }

    /// Send `req` to `id` and return its reply.
    pub async fn call_node(&mut self, id: NodeId, req: ClientRequest) -> io::Result<ClientReply> {
        let ttl = self.ttl;
        let conn = self
            .conns
            .get_mut(&id)
            .ok_or_else(|| io::Error::other(format!("unknown node {id}")))?;
        conn.call(&Message::Client(req), ttl).await
    }

    /// Send `req` to the leader, following redirects and trying every node in turn, for at
    /// most `deadline`. Returns the reply and the node that gave it. A write that times out
    /// may still have been applied: callers retry only idempotent requests.
    pub async fn call_leader(
        &mut self,
        req: ClientRequest,
        deadline: Duration,
    ) -> io::Result<(NodeId, ClientReply)> {
        let start = tokio::time::Instant::now();
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        let mut next = 0usize;
        let mut last_err = String::from("no attempt");
        while start.elapsed() < deadline {
            let id = match self.leader {
                Some(l) => l,
                None => {
                    next += 1;
                    ids[next % ids.len()]
                }
            };
            match self.call_node(id, req.clone()).await {
                Ok(ClientReply::NotLeader(Some((l, _))))
                    if l != id && self.peers.contains_key(&l) =>
                {
                    self.leader = Some(l);
                    continue;
                }
                Ok(ClientReply::NotLeader(_)) => {
                    last_err = format!("node {id} is not the leader and knows none");
                    self.leader = None;
                }
                Ok(ClientReply::Error(e)) => {
                    last_err = format!("node {id}: {e}");
                    self.leader = None;
                }
                Ok(reply) => {
                    self.leader = Some(id);
                    return Ok((id, reply));
                }
                Err(e) => {
                    last_err = format!("node {id}: {e}");
                    self.leader = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no leader answered within {deadline:?}: {last_err}"),
        ))
    }
}
