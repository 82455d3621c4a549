//! Testing the tester without the engine: the harness's tiny reference engine must pass every
//! tier clean, and each of its planted bugs must be caught within a stated budget.

use fault_injection::disk::Media;
use fault_injection::engine::{Toy, ToyBug};
use fault_injection::run::{ci_matrix, exhaustive, ioerr_sweep, reader_sweep, Report};
use fault_injection::torture::{case_seed, run_case};

#[test]
fn reference_engine_passes_clean() {
    let toy = Toy(ToyBug::None);
    let mut rep = Report::default();
    for cfg in ci_matrix().iter().step_by(5) {
        rep.merge(exhaustive(&toy, cfg));
    }
    rep.merge(ioerr_sweep(&toy, 0, 4096, Media::default(), 1));
    rep.merge(reader_sweep(&toy, 0, 4096, Media::default(), 1));
    for v in rep.violations.iter().take(10) {
        println!("VIOLATION {v}");
    }
    assert!(rep.violations.is_empty());
    assert!(rep.reader_checks > 0 && rep.read_faults > 0);
    for i in 0..300 {
        let r = run_case(&toy, case_seed(3, i));
        assert!(
            r.violations.is_empty(),
            "case {:#x}: {:?}",
            case_seed(3, i),
            r.violations
        );
    }
}

/// Cases until the first violation (budget: `max` torture cases).
fn cases_to_catch(bug: ToyBug, max: u64) -> Option<u64> {
    let toy = Toy(bug);
    (0..max).find(|&i| !run_case(&toy, case_seed(11, i)).violations.is_empty())
}

#[test]
fn reference_engine_bugs_are_caught() {
    // Tier 1 alone catches ack-before-sync, meta-before-data and skip-open-verify...
    for bug in [
        ToyBug::AckBeforeSync,
        ToyBug::MetaBeforeData,
        ToyBug::SkipOpenVerify,
    ] {
        let toy = Toy(bug);
        let caught = ci_matrix()
            .iter()
            .any(|c| !exhaustive(&toy, c).violations.is_empty());
        assert!(caught, "tier 1 missed {bug:?}");
    }
    // ...including a creation that is not atomic: a crash inside it leaves a file that open
    // refuses, which is no longer excused as "creation never completed"...
    let toy = Toy(ToyBug::CreateInPlace);
    let caught = ci_matrix()
        .iter()
        .step_by(5)
        .any(|c| !exhaustive(&toy, c).violations.is_empty());
    assert!(caught, "tier 1 missed CreateInPlace");
    // ...the I/O-error sweep catches the retried fsync...
    let r = ioerr_sweep(&Toy(ToyBug::RetryFailedSync), 0, 4096, Media::default(), 1);
    assert!(
        !r.violations.is_empty(),
        "ioerr sweep missed RetryFailedSync"
    );
    // ...and the torture runner catches all of them within 3000 cases.
    for bug in [
        ToyBug::AckBeforeSync,
        ToyBug::MetaBeforeData,
        ToyBug::SkipOpenVerify,
        ToyBug::RetryFailedSync,
    ] {
        let n = cases_to_catch(bug, 3000);
        println!("torture caught toy {bug:?} after {n:?} cases");
        assert!(n.is_some(), "torture missed {bug:?}");
    }
}

/// I11 catches a reader that is not isolated (it reads the newest commit, as a reader whose
/// pages were reused under it would): the tier-1 reader sweep and the I/O-error sweep's
/// reader lifetimes, the exhaustive variant with a held reader, and torture.
#[test]
fn a_reader_that_sees_later_commits_is_caught() {
    let toy = Toy(ToyBug::ReaderSeesNewest);
    let r = reader_sweep(&toy, 0, 4096, Media::default(), 1);
    assert!(
        r.violations.iter().any(|v| v.contains("I11")),
        "reader sweep missed ReaderSeesNewest: {:?}",
        r.violations.first()
    );
    let r = ioerr_sweep(&toy, 1, 1024, Media::default(), 1);
    assert!(r.violations.iter().any(|v| v.contains("I11")));
    let held = ci_matrix()
        .into_iter()
        .find(|c| c.readers)
        .expect("a reader variant");
    let r = exhaustive(&toy, &held);
    assert!(
        r.violations.iter().any(|v| v.contains("I11")),
        "{:?}",
        r.violations
    );
    let n = cases_to_catch(ToyBug::ReaderSeesNewest, 3000);
    println!("torture caught toy ReaderSeesNewest after {n:?} cases");
    assert!(n.is_some(), "torture missed ReaderSeesNewest");
}

/// A shrink that cuts the file under a reader that still reads past the new end is reported as
/// what a real mapping would raise: the toy's planted compaction truncates under its readers.
#[test]
fn a_reader_that_reads_past_a_truncated_end_is_reported_as_sigbus() {
    let r = reader_sweep(
        &Toy(ToyBug::ShrinkUnderReader),
        0,
        4096,
        Media::default(),
        1,
    );
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("reader read past a truncated end (SIGBUS)")),
        "{:?}",
        r.violations.first()
    );
}
