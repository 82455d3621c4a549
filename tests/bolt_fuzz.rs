//! Seeded mutation tests: damaged variants of the corpus files never make the reader panic,
//! hang or allocate without bound; strict reading either returns exactly what salvage reads
//! with no problem, or a corruption error; salvage import writes exactly what salvage reads.
//!
//! Deterministic: `BOLT_FUZZ_SEED` picks the seed (default fixed) and `BOLT_FUZZ_CASES` the
//! number of cases per file; every failure message names the seed and case.

mod bolt_common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use bolt_common::*;
use deadbolt::bolt::{self, BoltFile, ImportOptions, Walker};
use deadbolt::Error;

/// xorshift64*: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// splitmix64 finalizer: every input bit affects every output bit.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Mutate `img` in one of several ways aimed at the structure bbolt trusts.
fn mutate(img: &mut Vec<u8>, rng: &mut Rng, page_size: usize, hwm: u64) -> String {
    let pages = (img.len() / page_size).max(1) as u64;
    let used = hwm.min(pages).max(1);
    let page = rng.below(used) as usize;
    let base = page * page_size;
    match rng.below(7) {
        0 => {
            // Flip bytes in a page header or element array.
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let off = base + rng.below(16 + 16 * 8) as usize;
                if off < img.len() {
                    img[off] ^= 1 << rng.below(8);
                }
            }
            format!("flip header/elements of page {page}")
        }
        1 => {
            // Point an element's u64 (a branch child id, or a leaf's pos/ksize) somewhere else.
            let elem = rng.below(8) as usize;
            let off = base + 16 + 16 * elem + 8;
            let target = match rng.below(4) {
                0 => rng.below(used),
                1 => rng.below(pages + 64),
                2 => u64::MAX - rng.below(4),
                _ => page as u64,
            };
            if off + 8 <= img.len() {
                img[off..off + 8].copy_from_slice(&target.to_le_bytes());
            }
            format!("element {elem} of page {page} -> {target}")
        }
        2 => {
            // Page flags to a random value.
            let flags = [0u16, 1, 2, 4, 0x10, 0x12, 0xffff][rng.below(7) as usize];
            if base + 10 <= img.len() {
                img[base + 8..base + 10].copy_from_slice(&flags.to_le_bytes());
            }
            format!("flags of page {page} -> {flags:#x}")
        }
        3 => {
            // Count or overflow field to a random value.
            let off = base + 10 + 2 * rng.below(2) as usize;
            let v = [0u16, 1, 0xfffe, 0xffff, rng.below(65536) as u16][rng.below(5) as usize];
            if off + 2 <= img.len() {
                img[off..off + 2].copy_from_slice(&v.to_le_bytes());
            }
            format!("count/overflow of page {page} at {off} -> {v}")
        }
        4 => {
            // Copy one page over another (a stale or misdirected write).
            let src = rng.below(used) as usize * page_size;
            if src + page_size <= img.len() && base + page_size <= img.len() {
                let copy = img[src..src + page_size].to_vec();
                img[base..base + page_size].copy_from_slice(&copy);
            }
            format!("page {} copied over page {page}", src / page_size)
        }
        5 => {
            // Truncate the file.
            let len = rng.below(img.len() as u64 + 1) as usize;
            img.truncate(len);
            format!("truncated to {len}")
        }
        _ => {
            // Random bytes anywhere in the used part.
            let n = 1 + rng.below(16);
            for _ in 0..n {
                let off = rng.below((used as usize * page_size).min(img.len()) as u64) as usize;
                if let Some(b) = img.get_mut(off) {
                    *b = rng.next() as u8;
                }
            }
            format!("{n} random bytes")
        }
    }
}

fn run_case(img: &[u8], import: bool) -> bolt::Verdict {
    // check: never panics; work bounded by the file.
    let r = bolt::check_bytes(img);
    assert!(r.pages_loaded() <= r.high_water_pgid.min(img.len() as u64 / 512 + 1));
    let step_bound = 2 * (img.len() as u64 / 16 + r.high_water_pgid + 2);
    assert!(
        r.walk.steps <= step_bound,
        "{} steps > {step_bound}",
        r.walk.steps
    );
    let _ = r.to_string();

    // Strict read vs salvage read.
    let strict = model_from_bolt(img);
    let out = BoltFile::open_outcome(img, true);
    let salvaged = out.file.map(|f| {
        let mut w = Walker::new(f, true);
        let m = model_from_walker(&mut w).expect("salvage walk never fails");
        (m, w.problems().total())
    });
    match &strict {
        Ok(m) => {
            let (s, problems) = salvaged.as_ref().expect("strict opened, so salvage opens");
            assert_eq!(
                m, s,
                "strict and salvage read the same when nothing is wrong"
            );
            assert_eq!(*problems, 0);
        }
        Err(e) => assert!(matches!(e, Error::Corruption { .. }), "strict error: {e}"),
    }

    if import {
        let db = deadbolt::Db::in_memory().unwrap();
        let opts = ImportOptions {
            salvage: true,
            max_tx_bytes: 64 << 10,
            ..ImportOptions::default()
        };
        match bolt::import_bytes(img, &db, &opts, &mut |_, _| {}) {
            Ok(rep) => {
                let chk = db.check().unwrap();
                assert!(
                    chk.is_ok(),
                    "ENGINE: deadbolt's own check fails on the database the salvage import wrote: {:?}",
                    chk.problems.first()
                );
                let (s, _) = salvaged
                    .as_ref()
                    .expect("import succeeded, so salvage opens");
                assert_eq!(
                    model_from_deadbolt(&db),
                    s.without_pgids(),
                    "salvage import = salvage read"
                );
                assert_eq!(rep.kv_pairs, s.kv_total());
            }
            Err(Error::Corruption { page, detail }) => {
                // The importer's own refusals name the bbolt file; anything else is the engine
                // reporting its own pages.
                assert!(
                    detail.starts_with("bbolt file"),
                    "ENGINE: deadbolt reports corruption of its own page {page} during the salvage import: {detail}"
                );
                assert!(
                    salvaged.is_none(),
                    "import refused a file salvage can open: {detail}"
                )
            }
            Err(e) => panic!("salvage import failed: {e}"),
        }
        // Strict import refuses exactly what check calls damaged.
        let db = deadbolt::Db::in_memory().unwrap();
        let strict_import = bolt::import_bytes(img, &db, &ImportOptions::default(), &mut |_, _| {});
        assert_eq!(
            strict_import.is_ok(),
            r.is_ok(),
            "strict import vs check verdict"
        );
    }
    r.verdict()
}

#[test]
fn mutated_corpus_files_are_handled() {
    let seed = env_u64("BOLT_FUZZ_SEED", 0x5eed_b017);
    let cases = env_u64("BOLT_FUZZ_CASES", 150);
    let mut verdicts = std::collections::BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for (fi, name) in [
        "b_one_bucket",
        "c_nested",
        "i_sequences",
        "k_binary_edge",
        "h_pagesize_16k",
        "j_docker_volumes",
    ]
    .iter()
    .enumerate()
    {
        let m = manifest(name);
        let page_size = u64_of(&m["page_size"]) as usize;
        let hwm = u64_of(&m["pages"]["high_water_pgid"]);
        let orig = read_db(name);
        for case in 0..cases {
            let case_seed = splitmix(splitmix(splitmix(seed) ^ fi as u64) ^ case) | 1;
            let mut rng = Rng(case_seed);
            let mut img = orig.clone();
            let mut what = Vec::new();
            for _ in 0..1 + rng.below(3) {
                what.push(mutate(&mut img, &mut rng, page_size, hwm));
            }
            let import = case % 5 == 0;
            let res = catch_unwind(AssertUnwindSafe(|| run_case(&img, import)));
            if let Err(e) = &res {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("case {case} failed: {msg}");
            }
            if let Ok(v) = &res {
                *verdicts.entry(format!("{v:?}")).or_insert(0u64) += 1;
            }
            if res.is_err() {
                // BOLT_FUZZ_DUMP=DIR keeps each failing image for inspection.
                if let Ok(dir) = std::env::var("BOLT_FUZZ_DUMP") {
                    let _ = std::fs::write(format!("{dir}/{name}-{seed}-{case}.db"), &img);
                }
                failures.push(format!(
                    "FAILED: file {name}, BOLT_FUZZ_SEED={seed}, case {case} (case seed {case_seed:#x}), mutations: {what:?}"
                ));
            }
        }
    }
    eprintln!("seed {seed}: verdicts {verdicts:?}");
    // Every failing case was printed with its message above; list them all, then fail.
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} cases failed; first: {}",
        failures.len(),
        failures[0]
    );
    // The mutations must actually exercise the damage paths.
    assert!(verdicts.get("Damaged").copied().unwrap_or(0) > cases);
}
