//! How much work each workload does, in one place for the child process that runs the
//! workloads, the interleaved commit run and the report whose row labels name the counts.
//! (`bench/go/bboltbench.go` repeats these numbers for Go bbolt.)

/// Individual durable commits in the child's commit workload.
pub const INDIVIDUAL_COMMITS: u64 = 1_000;
/// Keys per transaction in the batch workload.
pub const BATCH_SIZE: u64 = 1_000;
/// Entries read from each start key in the scan workload.
pub const SCAN_LEN: usize = 100;
/// Durable commits the strace probe makes.
pub const PROBE_COMMITS: u64 = 100;

/// Rounds of the interleaved commit run.
pub const DUEL_ROUNDS: u64 = 10;
/// Commits per engine and round in the interleaved commit run.
pub const DUEL_COMMITS: u64 = 100;
/// At most this many entries are loaded before the interleaved commit run.
pub const DUEL_ENTRIES: u64 = 100_000;

/// Transactions in the batch workload after a load of `n` entries.
pub fn batches(n: u64) -> u64 {
    (n / 10_000).max(10)
}

/// Start keys in the scan workload.
pub fn scan_starts(n: u64) -> u64 {
    (n / 100).max(100)
}

/// Entries written under nested buckets.
pub fn nested_entries(n: u64) -> u64 {
    n / 10
}

/// Keys deleted by the removal workload (the first entries of the load).
pub fn removals(n: u64) -> u64 {
    n / 2
}

/// Entries loaded into each engine before the interleaved commit run.
pub fn duel_entries(n: u64) -> u64 {
    n.min(DUEL_ENTRIES)
}
