//! Replays every input committed under tests/fuzz_regressions/ (crashes the coverage-guided
//! fuzzers found, plus the seed corpora) through the same entry points as the fuzz targets, on
//! the stable toolchain.

use std::path::Path;

fn replay(dir: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "fuzz regression {} panics", path.display());
        n += 1;
    }
    n
}

#[test]
fn open_damaged_regressions() {
    let n = replay(
        "tests/fuzz_regressions/open_damaged",
        deadbolt::fuzzing::exercise_image,
    ) + replay(
        "fuzz/corpus/open_damaged",
        deadbolt::fuzzing::exercise_image,
    );
    assert!(n > 0, "no inputs found");
}

#[test]
fn bolt_reader_regressions() {
    let n = replay(
        "tests/fuzz_regressions/bolt_reader",
        deadbolt::fuzzing::exercise_bolt,
    ) + replay("fuzz/corpus/bolt_reader", deadbolt::fuzzing::exercise_bolt);
    assert!(n > 0, "no inputs found");
}
