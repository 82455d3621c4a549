//! I10: the same seed gives the same operation log, crash images and verdicts. Each seed runs
//! twice and the digests (over op logs, image hashes and matched commits) must agree.

use fault_injection::disk::Media;
use fault_injection::engine::Deadbolt;
use fault_injection::run::{ci_matrix, exhaustive, ioerr_sweep, reader_sweep};
use fault_injection::torture::{case_seed, run_case};

#[test]
fn exhaustive_config_is_deterministic() {
    let cfgs = ci_matrix();
    let small = cfgs
        .iter()
        .find(|c| {
            c.describe()
                .contains("workload=small-buckets page=1024 sector=4096 psow=false")
        })
        .expect("the small-bucket workload is in the matrix");
    let held = cfgs
        .iter()
        .find(|c| c.readers)
        .expect("a configuration with a held reader is in the matrix");
    for cfg in [&cfgs[0], &cfgs[17], &cfgs[40], small, held] {
        let a = exhaustive(&Deadbolt, cfg);
        let b = exhaustive(&Deadbolt, cfg);
        assert_eq!(a.digest, b.digest, "{}", cfg.describe());
        assert_eq!(a.images, b.images);
        assert_eq!(a.violations, b.violations);
    }
}

#[test]
fn torture_cases_are_deterministic() {
    for i in 0..40 {
        let s = case_seed(7, i);
        let a = run_case(&Deadbolt, s);
        let b = run_case(&Deadbolt, s);
        assert_eq!(a.digest, b.digest, "case seed {s:#x}");
        assert_eq!(a.states, b.states);
        assert_eq!(a.violations, b.violations);
    }
}

#[test]
fn reader_and_view_fault_sweeps_are_deterministic() {
    for w in [0, 2] {
        let a = reader_sweep(&Deadbolt, w, 1024, Media::default(), 5);
        let b = reader_sweep(&Deadbolt, w, 1024, Media::default(), 5);
        assert_eq!(a.digest, b.digest, "reader sweep, workload {w}");
        assert_eq!((a.images, a.reader_checks), (b.images, b.reader_checks));
        let a = ioerr_sweep(&Deadbolt, w, 1024, Media::default(), 5);
        let b = ioerr_sweep(&Deadbolt, w, 1024, Media::default(), 5);
        assert_eq!(a.digest, b.digest, "I/O-error sweep, workload {w}");
        assert_eq!((a.images, a.read_faults), (b.images, b.read_faults));
    }
}
