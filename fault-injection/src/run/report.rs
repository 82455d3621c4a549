//! The tally every tier-1 run returns: images and crash points checked, damage reports,
//! violations, and a digest for the determinism check (I10).

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Distinct crash images opened and checked.
    pub images: u64,
    /// Crash points (I/O ops) covered.
    pub crash_points: u64,
    /// Images where damage was detected and reported (Detect mode).
    pub detected: u64,
    /// Scans of a long-lived reader compared with the model at its txid (I11).
    pub reader_checks: u64,
    /// Lifetimes run with a failing, zeroed-sector or short `view` (reads that fail).
    pub read_faults: u64,
    /// Images of a power cut inside the recovery that followed a process crash.
    pub recovery_cuts: u64,
    pub violations: Vec<String>,
    /// Digest of the op log, images and verdicts (determinism).
    pub digest: u64,
}

impl Report {
    pub fn merge(&mut self, o: Report) {
        self.images += o.images;
        self.crash_points += o.crash_points;
        self.detected += o.detected;
        self.recovery_cuts += o.recovery_cuts;
        self.reader_checks += o.reader_checks;
        self.read_faults += o.read_faults;
        self.violations.extend(o.violations);
        self.digest ^= o.digest;
    }
}
