//! Three deadbolt-kv processes on loopback: 10,000 replicated writes from 16 clients, the leader
//! SIGKILLed mid-stream, a new leader elected, every acknowledged write on the survivors, the
//! killed node restarted from its files and caught up by snapshot install (its log entries
//! were purged meanwhile), and every key read back from every node.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{agreed_leader, status, wait_for, Cluster};
use deadbolt_raft::net::{ClientReply, ClientRequest, MAX_KEYS_PER_GET};
use deadbolt_raft::NodeId;

const KEYS: usize = 10_000;
const CLIENTS: usize = 16;
const KILL_AFTER: usize = 3_000;
/// Every wait below is bounded; this bounds them all together.
const TOTAL: Duration = Duration::from_secs(150);

fn key(i: usize) -> String {
    format!("key-{i:05}")
}
fn value(i: usize) -> String {
    format!("value-{i}")
}

/// Wait until node `id` has applied at least `index`, then check every key on it.
async fn check_node(cl: &Cluster, id: NodeId, index: u64) {
    let peers = cl.peers.clone();
    wait_for(
        &format!("node {id} to apply {index}"),
        Duration::from_secs(60),
        || {
            let peers = peers.clone();
            async move {
                let mut c = deadbolt_raft::net::Client::new(peers);
                let s = status(&mut c, id).await?;
                (s.last_applied? >= index).then_some(())
            }
        },
    )
    .await;
    let mut c = cl.client();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(MAX_KEYS_PER_GET) {
        let keys = chunk.iter().map(|&i| key(i)).collect();
        match c.call_node(id, ClientRequest::LocalGetMany { keys }).await {
            Ok(ClientReply::Values(vals)) => {
                for (&i, v) in chunk.iter().zip(vals) {
                    assert_eq!(v, Some(value(i)), "node {id}: key {}", key(i));
                }
            }
            other => panic!("node {id}: local read failed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_the_leader() {
    let mut cl = Cluster::new(&["--snapshot-logs", "1000", "--keep-logs", "100"]);
    for id in 1..=3 {
        cl.start(id);
    }
    tokio::time::timeout(TOTAL, scenario(&mut cl))
        .await
        .expect("the scenario exceeded its total time bound");
}

async fn scenario(cl: &mut Cluster) {
    let first = agreed_leader(&cl.peers, &[1, 2, 3], Duration::from_secs(30)).await;
    eprintln!("leader: node {first}");

    // 16 clients, each writing its share of the keys, retrying (puts are idempotent) across
    // nodes until a leader acknowledges.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for t in 0..CLIENTS {
        let (peers, acked) = (cl.peers.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut c = deadbolt_raft::net::Client::new(peers);
            let mut mine = Vec::new();
            for i in (t..KEYS).step_by(CLIENTS) {
                let req = ClientRequest::Put {
                    key: key(i),
                    value: value(i),
                };
                match c.call_leader(req, Duration::from_secs(40)).await {
                    Ok((_, ClientReply::Value(_))) => {
                        mine.push(i);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    other => return Err(format!("write {} failed: {other:?}", key(i))),
                }
            }
            Ok(mine)
        }));
    }

    let a = acked.clone();
    wait_for("3,000 acknowledged writes", Duration::from_secs(60), || {
        let a = a.clone();
        async move { (a.load(Ordering::SeqCst) >= KILL_AFTER).then_some(()) }
    })
    .await;
    let acked_at_kill = acked.load(Ordering::SeqCst);
    cl.kill(first);
    eprintln!("SIGKILLed node {first} after {acked_at_kill} acknowledged writes");

    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer task").expect("writer"));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (0..KEYS).collect::<Vec<_>>(),
        "every write acknowledged once"
    );

    let survivors: Vec<NodeId> = (1..=3).filter(|&i| i != first).collect();
    let leader = agreed_leader(&cl.peers, &survivors, Duration::from_secs(30)).await;
    assert_ne!(leader, first, "a new leader was elected");
    eprintln!("new leader: node {leader}");
    let mut c = cl.client();
    let ls = status(&mut c, leader).await.expect("leader status");
    let target = ls.last_applied.expect("the leader applied the writes");
    for &id in &survivors {
        check_node(cl, id, target).await;
    }
    eprintln!("every acknowledged write is on both survivors (applied {target})");

    // The killed node's log ends near the kill point; the leader purged far beyond it, so it
    // can only catch up by installing a snapshot.
    let purged = ls.purged.unwrap_or(0);
    assert!(
        purged > (acked_at_kill + 2 * CLIENTS + 100) as u64,
        "the leader purged its log past the killed node's (purged {purged:?})"
    );
    cl.start(first);
    check_node(cl, first, target).await;
    let rs = status(&mut c, first).await.expect("restarted node status");
    assert!(
        rs.snapshots_installed >= 1,
        "node {first} caught up by snapshot install: {rs:?}"
    );
    eprintln!("node {first} restarted and caught up: {rs:?}");

    // Linearizable reads of every key through the leader, 16 at a time.
    let mut readers = Vec::new();
    for t in 0..CLIENTS {
        let peers = cl.peers.clone();
        readers.push(tokio::spawn(async move {
            let mut c = deadbolt_raft::net::Client::new(peers);
            for i in (t..KEYS).step_by(CLIENTS) {
                match c
                    .call_leader(ClientRequest::Get { key: key(i) }, Duration::from_secs(20))
                    .await
                {
                    Ok((_, ClientReply::Value(v))) => {
                        assert_eq!(v, Some(value(i)), "linearizable read of {}", key(i))
                    }
                    other => panic!("read {} failed: {other:?}", key(i)),
                }
            }
        }));
    }
    for r in readers {
        r.await.expect("reader");
    }
}
