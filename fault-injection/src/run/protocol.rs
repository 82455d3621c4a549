//! The commit-protocol monitor (P1, P2): checks the recorded op log of each commit of a clean
//! run, which crash images alone cannot always show (a meta written before its pages is just an
//! interrupted commit to a recovering engine).

use crate::disk::{LogOp, OpResult};
use crate::model::State;

/// One commit of a clean run: its ops in the log (`start..end`), its txid and the state after it.
pub(super) struct CommitRec {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) txid: u64,
    pub(super) state: State,
}

/// The commit protocol, checked on the recorded op log of each commit (ALICE-style: a
/// vulnerability per protocol step). P1: every page of a commit is written before its meta page
/// (only the sync, and a shrinking set_len, follow the meta write). P2: in durable mode the commit syncs after
/// its meta write before it is acknowledged.
pub(super) fn protocol_check(
    log: &[(LogOp, OpResult)],
    recs: &[CommitRec],
    page: usize,
    no_sync: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let p = page as u64;
    for (n, r) in recs.iter().enumerate() {
        let ops = &log[r.start as usize..r.end as usize];
        let is_meta = |op: &LogOp| matches!(op, LogOp::Write { off, data, .. } if (*off == 0 || *off == p) && data.len() == page);
        let Some(m) = ops.iter().position(|(op, _)| is_meta(op)) else {
            continue; // a commit that changed nothing writes nothing
        };
        let mut synced = false;
        for (op, _) in &ops[m + 1..] {
            match op {
                LogOp::Sync => synced = true,
                LogOp::Write { off, .. } => out.push(format!(
                    "P1 (protocol): commit #{} wrote page {} after its meta page{} (meta before data)",
                    n + 1,
                    off / p,
                    if synced { " and its sync" } else { "" }
                )),
                _ => {}
            }
        }
        if !no_sync && !synced {
            out.push(format!(
                "P2 (protocol): commit #{} was acknowledged without a sync after its meta page",
                n + 1
            ));
        }
    }
    out
}
