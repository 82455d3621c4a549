//! Path coverage: how often each engine path a tier means to reach actually ran, observed
//! through what the engine exposes (`Db::stats()`: free-list chain length, tree height, file
//! size; `CompactStep::moved`; `shrink_to_fit`'s result), through the ops of the workload, and
//! through the harness's own checks (a backup that opened and equalled the model). A tier
//! fails when a path it is meant to reach ran zero times ([`Coverage::missing`]).

use std::fmt;

/// The paths counted. Names are stable: they are printed, parsed back from the torture
/// worker's protocol line and quoted in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathId {
    /// A commit that grew the persisted free-list chain by one record (a delta record).
    DeltaRecord,
    /// A commit after which the chain held three or more records (deltas chained on deltas).
    DeltaChain,
    /// A commit that replaced a chain of two or more records by one full record.
    ChainRewrite,
    /// The root tree grew to height 2 / 3 (a split of its top level).
    SplitToHeight2,
    SplitToHeight3,
    /// The root tree shrank from height 2 / 3 (a merge of its top level).
    MergeFromHeight2,
    MergeFromHeight3,
    /// A put replacing an overflow value (over a page) by a larger / smaller overflow value.
    OverflowGrow,
    OverflowShrink,
    /// A nested bucket (path of two or more names) created / deleted.
    NestedCreate,
    NestedDelete,
    /// A commit after which the file was shorter than before it (shrink at commit).
    ShrinkAtCommit,
    /// `shrink_to_fit` that truncated the file.
    ShrinkToFit,
    /// `compact_step` that moved pages.
    CompactStepMoved,
    /// `backup`, its copy opened on a fresh simulated disk and equal to the model.
    BackupVerified,
    /// `compact_into`, its copy opened on a fresh simulated disk and equal to the model.
    CompactIntoVerified,
    /// A `batch` commit shared by two or more concurrent callers.
    SharedBatch,
    /// A batch caller told of a failed commit (its closure rode it).
    BatchCallerFailed,
    /// A lifetime whose op log the protocol monitor (P1, P2) checked.
    ProtocolMonitored,
    /// A crash inside the first commit after a recovery that rolled back.
    CrashAfterRollback,
    /// A long-lived reader's snapshot compared with the model at its txid (I11).
    ReaderChecked,
    /// A read that failed: a view that errs, reads a sector as zeros or is short.
    ReadFault,
    /// `Db::sync` returned Ok inside a `no_sync` lifetime (the floor of I1 moved).
    NoSyncSyncReturned,
    /// A recovery whose open cost I12 bounded.
    OpenCostChecked,
}

impl PathId {
    pub const ALL: [PathId; 24] = [
        PathId::DeltaRecord,
        PathId::DeltaChain,
        PathId::ChainRewrite,
        PathId::SplitToHeight2,
        PathId::SplitToHeight3,
        PathId::MergeFromHeight2,
        PathId::MergeFromHeight3,
        PathId::OverflowGrow,
        PathId::OverflowShrink,
        PathId::NestedCreate,
        PathId::NestedDelete,
        PathId::ShrinkAtCommit,
        PathId::ShrinkToFit,
        PathId::CompactStepMoved,
        PathId::BackupVerified,
        PathId::CompactIntoVerified,
        PathId::SharedBatch,
        PathId::BatchCallerFailed,
        PathId::ProtocolMonitored,
        PathId::CrashAfterRollback,
        PathId::ReaderChecked,
        PathId::ReadFault,
        PathId::NoSyncSyncReturned,
        PathId::OpenCostChecked,
    ];

    /// Run by `Db::batch` callers (the batch oracle of tier 1; not in torture, whose cases
    /// replay op for op while batch's thread interleaving is not seeded).
    pub fn is_batch(self) -> bool {
        matches!(self, PathId::SharedBatch | PathId::BatchCallerFailed)
    }

    /// Counted by the harness's checks rather than reached by a workload: long-lived readers,
    /// read faults, `Db::sync` under `no_sync`, the open-cost invariant.
    pub fn is_check(self) -> bool {
        matches!(
            self,
            PathId::ReaderChecked
                | PathId::ReadFault
                | PathId::NoSyncSyncReturned
                | PathId::OpenCostChecked
        )
    }

    /// The paths a default-mix torture run on deadbolt must reach: all but batch's.
    pub fn torture() -> Vec<PathId> {
        PathId::ALL.into_iter().filter(|p| !p.is_batch()).collect()
    }

    /// The paths the path workload alone must reach: the engine paths, the monitor and the
    /// crash after a rollback.
    pub fn workload() -> Vec<PathId> {
        PathId::ALL
            .into_iter()
            .filter(|p| !p.is_batch() && !p.is_check())
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            PathId::DeltaRecord => "delta-record",
            PathId::DeltaChain => "delta-chain>=3",
            PathId::ChainRewrite => "chain-rewrite",
            PathId::SplitToHeight2 => "split-to-height-2",
            PathId::SplitToHeight3 => "split-to-height-3",
            PathId::MergeFromHeight2 => "merge-from-height-2",
            PathId::MergeFromHeight3 => "merge-from-height-3",
            PathId::OverflowGrow => "overflow-grow",
            PathId::OverflowShrink => "overflow-shrink",
            PathId::NestedCreate => "nested-create",
            PathId::NestedDelete => "nested-delete",
            PathId::ShrinkAtCommit => "shrink-at-commit",
            PathId::ShrinkToFit => "shrink_to_fit",
            PathId::CompactStepMoved => "compact_step-moved",
            PathId::BackupVerified => "backup-verified",
            PathId::CompactIntoVerified => "compact_into-verified",
            PathId::SharedBatch => "batch-shared-commit",
            PathId::BatchCallerFailed => "batch-caller-failed",
            PathId::ProtocolMonitored => "protocol-monitored",
            PathId::CrashAfterRollback => "crash-after-rollback",
            PathId::ReaderChecked => "reader-checked",
            PathId::ReadFault => "read-fault",
            PathId::NoSyncSyncReturned => "no_sync-Db::sync",
            PathId::OpenCostChecked => "open-cost-checked",
        }
    }
}

/// A count per path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    counts: [u64; PathId::ALL.len()],
}

impl Coverage {
    pub fn add(&mut self, p: PathId, n: u64) {
        self.counts[p as usize] += n;
    }

    pub fn get(&self, p: PathId) -> u64 {
        self.counts[p as usize]
    }

    pub fn merge(&mut self, o: &Coverage) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
    }

    /// The paths of `want` that ran zero times.
    pub fn missing(&self, want: &[PathId]) -> Vec<&'static str> {
        want.iter()
            .filter(|p| self.get(**p) == 0)
            .map(|p| p.name())
            .collect()
    }

    /// The counts as space-separated numbers in [`PathId::ALL`] order (the worker protocol).
    pub fn to_fields(&self) -> String {
        let v: Vec<String> = self.counts.iter().map(|c| c.to_string()).collect();
        v.join(" ")
    }

    /// The inverse of [`Coverage::to_fields`]; missing or unparsable fields count zero.
    pub fn from_fields<'a>(fields: impl Iterator<Item = &'a str>) -> Coverage {
        let mut c = Coverage::default();
        for (slot, f) in c.counts.iter_mut().zip(fields) {
            *slot = f.parse().unwrap_or(0);
        }
        c
    }

    /// Observe a commit (or maintenance step) through the engine's stats before and after it.
    pub fn observe_stats(
        &mut self,
        before: &crate::engine::EngStats,
        after: &crate::engine::EngStats,
    ) {
        if after.freelist_chain == before.freelist_chain + 1 && after.freelist_chain >= 2 {
            self.add(PathId::DeltaRecord, 1);
            if after.freelist_chain >= 3 {
                self.add(PathId::DeltaChain, 1);
            }
        }
        if before.freelist_chain >= 2 && after.freelist_chain == 1 {
            self.add(PathId::ChainRewrite, 1);
        }
        for h in [2u64, 3] {
            if before.depth < h && after.depth >= h {
                self.add(
                    if h == 2 {
                        PathId::SplitToHeight2
                    } else {
                        PathId::SplitToHeight3
                    },
                    1,
                );
            }
            if before.depth >= h && after.depth < h {
                self.add(
                    if h == 2 {
                        PathId::MergeFromHeight2
                    } else {
                        PathId::MergeFromHeight3
                    },
                    1,
                );
            }
        }
        if after.file_size < before.file_size {
            self.add(PathId::ShrinkAtCommit, 1);
        }
    }

    /// Observe the ops of a commit against the state before it (overflow growth and shrink,
    /// nested buckets).
    pub fn observe_ops(
        &mut self,
        before: &crate::model::State,
        ops: &[crate::model::Op],
        page: usize,
    ) {
        use crate::model::Op;
        let mut st = before.clone();
        for op in ops {
            match op {
                Op::Put(p, k, v) => {
                    if let Some(old) = st.at(p).and_then(|b| b.kv.get(k)) {
                        if old.len() > page && v.len() > page {
                            if v.len() > old.len() {
                                self.add(PathId::OverflowGrow, 1);
                            } else if v.len() < old.len() {
                                self.add(PathId::OverflowShrink, 1);
                            }
                        }
                    }
                }
                Op::CreateBucket(p) if p.len() >= 2 && st.at(p).is_none() => {
                    self.add(PathId::NestedCreate, 1)
                }
                Op::DeleteBucket(p) if p.len() >= 2 => self.add(PathId::NestedDelete, 1),
                _ => {}
            }
            st.apply(op);
        }
    }
}

impl fmt::Display for Coverage {
    /// One `name count` line per path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in PathId::ALL {
            writeln!(f, "  {:<24} {}", p.name(), self.get(p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_the_worker_line_and_a_missing_path_is_named() {
        let mut c = Coverage::default();
        c.add(PathId::DeltaRecord, 3);
        c.add(PathId::CrashAfterRollback, 1);
        let line = format!("12 0 {}", c.to_fields());
        let back = Coverage::from_fields(line.split(' ').skip(2));
        assert_eq!(back, c);
        assert_eq!(
            back.missing(&[PathId::DeltaRecord, PathId::ShrinkToFit]),
            vec!["shrink_to_fit"]
        );
    }

    #[test]
    fn stats_show_a_delta_record_a_chain_rewrite_and_a_split() {
        use crate::engine::EngStats;
        let s = |chain, depth, file| EngStats {
            freelist_chain: chain,
            depth,
            file_size: file,
            ..EngStats::default()
        };
        let mut c = Coverage::default();
        c.observe_stats(&s(1, 1, 100), &s(2, 2, 100));
        c.observe_stats(&s(2, 2, 100), &s(3, 3, 90));
        c.observe_stats(&s(3, 3, 90), &s(1, 1, 90));
        assert_eq!(c.get(PathId::DeltaRecord), 2);
        assert_eq!(c.get(PathId::DeltaChain), 1);
        assert_eq!(c.get(PathId::ChainRewrite), 1);
        assert_eq!(c.get(PathId::SplitToHeight3), 1);
        assert_eq!(c.get(PathId::MergeFromHeight3), 1);
        assert_eq!(c.get(PathId::MergeFromHeight2), 1);
        assert_eq!(c.get(PathId::ShrinkAtCommit), 1);
    }
}
