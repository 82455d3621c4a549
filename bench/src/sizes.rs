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

/// The bucket workloads (issue 15) run in a child process of their own and do the same work
/// at every `--entries`: their figures describe one fixed application shape.
///
/// Objects per namespace in the containerd-like metadata workload (there are
/// `deadbolt_bench::buckets::NAMESPACES.len()` namespaces).
pub const OBJECTS_PER_NAMESPACE: u64 = 2_000;
/// Objects in the metadata workload.
pub const OBJECTS: u64 = NAMESPACES * OBJECTS_PER_NAMESPACE;
/// Namespaces of the metadata workload.
pub const NAMESPACES: u64 = deadbolt_bench::buckets::NAMESPACES.len() as u64;
/// Objects written, and deleted, per durable commit.
pub const OBJECTS_PER_COMMIT: u64 = 100;
/// Buckets in the one-key bucket workload.
pub const ONE_KEY_BUCKETS: u64 = 10_000;
/// Durable commits the one-key buckets are created in.
pub const ONE_KEY_COMMITS: u64 = 10;

/// The objects the metadata workload deletes (every second one, half of them).
pub fn objects_deleted() -> impl Iterator<Item = u64> {
    (1..OBJECTS).step_by(2)
}

/// The objects left after the deletions.
pub fn objects_kept() -> impl Iterator<Item = u64> {
    (0..OBJECTS).step_by(2)
}

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
