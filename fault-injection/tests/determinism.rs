//! I10: the same seed gives the same operation log, crash images and verdicts. Each seed runs
//! twice and the digests (over op logs, image hashes and matched commits) must agree.

use fault_injection::engine::Deadbolt;
use fault_injection::run::{ci_matrix, exhaustive};
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
    for cfg in [&cfgs[0], &cfgs[17], &cfgs[40], small] {
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
