//! deadbolt as the storage of an [openraft](https://docs.rs/openraft/0.9) cluster.
//!
//! - [`store::LogStore`] implements `RaftLogStorage` + `RaftLogReader` on one deadbolt file
//!   (`log.db`): entries in the `log` bucket keyed by big-endian index, the vote, the committed
//!   log id and the last purged log id in the `meta` bucket.
//! - [`store::StateMachine`] implements `RaftStateMachine` on a second file (`sm.db`): the
//!   application's key/value pairs in the `data` bucket, last-applied log id and membership in
//!   `sm_meta`, all written in one transaction per batch of entries. Snapshots are deadbolt
//!   files: built by a hot backup from a read transaction, installed by building a new file
//!   beside the old one and renaming it over.
//! - [`net`] is a small length-prefixed JSON protocol over TCP carrying openraft's RPCs and the
//!   example service's client requests (`put`/`get`/`delete`).
//!
//! Every call into deadbolt blocks (it fdatasyncs on commit), so the storage methods run it on
//! tokio's blocking pool with `spawn_blocking` and await it; no runtime worker ever waits on a
//! commit. Why not a dedicated writer thread: openraft awaits each storage call before it
//! issues the next (they take `&mut self`), which already keeps write I/O in order, and
//! openraft 0.9 also waits for each append's flush callback before the next append
//! (`RaftCore::append_to_log`), so a thread queueing appends for group commit has nothing to
//! group (measured: one log commit per client write on the leader either way; see
//! docs/BENCHMARKS.md).

pub mod net;
pub mod node;
pub mod store;

use serde::{Deserialize, Serialize};

/// A write to the replicated key/value map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Put { key: String, value: String },
    /// Remove `key`.
    Delete { key: String },
}

/// The result of applying one entry: the key's previous value (for `Put`/`Delete`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub prev: Option<String>,
}

openraft::declare_raft_types!(
    /// The example's openraft types: string keys and values, u64 node ids, snapshots as files.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// openraft's `Raft` handle for this type config.
pub type Raft = openraft::Raft<TypeConfig>;
/// Node id.
pub type NodeId = u64;
