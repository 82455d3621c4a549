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
