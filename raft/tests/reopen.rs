//! What openraft's suite does not check: that the log, the vote, the committed log id and the
//! state machine are still there after the files are closed and opened again.

use deadbolt::Options;
use deadbolt_raft::store::open_node_storage;
use deadbolt_raft::{Request, TypeConfig};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, Vote};

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn put(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Request::Put {
            key: format!("k{index}"),
            value: format!("v{index}"),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_vote_committed_and_state_survive_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut log, mut sm) = open_node_storage(dir.path(), Options::default()).expect("open");
        log.blocking_append((1..=50).map(|i| put(1, i)))
            .await
            .expect("append");
        log.save_vote(&Vote::new_committed(2, 1))
            .await
            .expect("vote");
        log.save_committed(Some(log_id(1, 40)))
            .await
            .expect("committed");
        // The committed id rides in the next log transaction.
        log.blocking_append((51..=60).map(|i| put(2, i)))
            .await
            .expect("append");
        log.purge(log_id(1, 10)).await.expect("purge");
        log.truncate(log_id(2, 56)).await.expect("truncate");
        sm.apply((1..=40).map(|i| put(1, i))).await.expect("apply");
    }
    let (mut log, mut sm) = open_node_storage(dir.path(), Options::default()).expect("reopen");
    let st = log.get_log_state().await.expect("log state");
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 10)));
    assert_eq!(st.last_log_id, Some(log_id(2, 55)));
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(Vote::new_committed(2, 1))
    );
    assert_eq!(
        log.read_committed().await.expect("committed"),
        Some(log_id(1, 40))
    );
    let entries = log.try_get_log_entries(0..100).await.expect("entries");
    let idx: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(idx, (11..=55).collect::<Vec<_>>(), "no hole, nothing extra");
    assert_eq!(entries[45 - 11].log_id, log_id(1, 45));
    assert_eq!(entries[52 - 11].log_id, log_id(2, 52));
    let limited = log.limited_get_log_entries(11, 56).await.expect("limited");
    assert_eq!(limited.len(), 45);
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 40)));
    assert_eq!(sm.len_blocking().expect("len"), 40);
    assert_eq!(sm.get_blocking("k40").expect("get"), Some("v40".into()));
    assert_eq!(sm.get_blocking("k41").expect("get"), None);
}
