//! The bbolt corpus: every healthy file is read exactly (checked against its manifest entry by
//! entry and by digest), diagnosed as healthy with the manifest's page census, and imported into
//! deadbolt exactly; every damaged file gets a precise diagnosis with bounded work, and salvage
//! recovers what is readable.

mod bolt_common;

use std::ops::Bound;

use bolt_common::*;
use deadbolt::bolt::{self, BoltFile, ImportOptions, Severity, Verdict, Walker};
use deadbolt::Error;

// ---------------------------------------------------------------------------------------------
// Reader and check on healthy files (no engine needed).

fn check_healthy(name: &str) {
    let m = manifest(name);
    let bytes = read_db(name);
    assert_eq!(
        sha_hex(&bytes),
        m["file_sha256"].as_str().unwrap(),
        "{name}: test data is the corpus file"
    );

    // Read through the strict reader, compare with the manifest entry by entry and by digest.
    let model = model_from_bolt(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    compare_with_manifest(&model, &m["content"], name);

    // check: healthy, with the manifest's metas, freelist and page census.
    let r = bolt::check_file(&db_path(name)).unwrap();
    assert_eq!(r.verdict(), Verdict::Healthy, "{name}:\n{r}");
    assert!(r.is_ok() && r.is_healthy());
    assert_eq!(
        u64::from(r.page_size.unwrap()),
        u64_of(&m["page_size"]),
        "{name}: page size"
    );
    assert_eq!(
        i64::from(r.active_meta.unwrap()),
        m["active_meta"].as_i64().unwrap(),
        "{name}: active meta"
    );
    for (i, jm) in m["metas"].as_array().unwrap().iter().enumerate() {
        let got = &r.metas[i];
        assert_eq!(got.txid, u64_of(&jm["txid"]), "{name}: meta {i} txid");
        assert_eq!(
            got.root_pgid,
            u64_of(&jm["root_pgid"]),
            "{name}: meta {i} root"
        );
        assert_eq!(
            got.root_sequence,
            u64_of(&jm["root_sequence"]),
            "{name}: meta {i} root seq"
        );
        assert_eq!(
            got.freelist_pgid,
            u64_of(&jm["freelist_pgid"]),
            "{name}: meta {i} freelist"
        );
        assert_eq!(
            got.high_water_pgid,
            u64_of(&jm["high_water_pgid"]),
            "{name}: meta {i} hwm"
        );
        assert_eq!(
            u64::from(got.page_size),
            u64_of(&jm["page_size"]),
            "{name}: meta {i} page size"
        );
        assert_eq!(
            format!("{:016x}", got.checksum_stored),
            jm["checksum_hex"].as_str().unwrap()
        );
        assert_eq!(
            got.valid(),
            jm["valid"].as_bool().unwrap(),
            "{name}: meta {i} valid"
        );
    }
    let fl = &m["freelist"];
    assert_eq!(
        r.freelist.persisted,
        fl["persisted"].as_bool().unwrap(),
        "{name}: freelist persisted"
    );
    assert_eq!(
        r.freelist.count,
        u64_of(&fl["count"]),
        "{name}: freelist count"
    );
    assert_eq!(
        r.freelist.count_stored_in_first_element,
        fl["count_stored_in_first_element"].as_bool().unwrap()
    );
    if r.freelist.persisted {
        assert_eq!(
            r.freelist.pgid,
            u64_of(&fl["pgid"]),
            "{name}: freelist pgid"
        );
        assert_eq!(
            r.freelist.page_span,
            u64_of(&fl["page_span"]),
            "{name}: freelist span"
        );
    }
    let p = &m["pages"];
    let c = &r.census;
    let census = [
        (c.meta, "meta"),
        (c.freelist, "freelist"),
        (c.branch, "branch"),
        (c.leaf, "leaf"),
        (c.overflow_continuation, "overflow_continuation"),
        (c.free_listed, "free_listed"),
        (c.unlisted_unreachable, "unlisted_unreachable"),
        (c.high_water_pgid, "high_water_pgid"),
    ];
    for (got, field) in census {
        assert_eq!(got, u64_of(&p[field]), "{name}: census {field}\n{r}");
    }
    assert_eq!(r.walk.kv_pairs, model.kv_total());
    assert_eq!(r.walk.buckets, model.bucket_total());
    // Bounded work: each tree page loaded once.
    assert_eq!(r.pages_loaded(), c.branch + c.leaf);
    let text = r.to_string();
    assert!(
        text.contains("HEALTHY")
            && text.contains("checks performed")
            && text.contains("no checksums")
    );
}

macro_rules! healthy_tests {
    ($($t:ident => $name:expr),* $(,)?) => {
        $(#[test] fn $t() { check_healthy($name); })*
    };
}

healthy_tests! {
    read_a_empty => "a_empty",
    read_b_one_bucket => "b_one_bucket",
    read_c_nested => "c_nested",
    read_d_200k_keys => "d_200k_keys",
    read_e_large_values => "e_large_values",
    read_f_freelist_churn => "f_freelist_churn",
    read_g_no_freelist_sync => "g_no_freelist_sync",
    read_h_pagesize_16k => "h_pagesize_16k",
    read_i_sequences => "i_sequences",
    read_j_docker_volumes => "j_docker_volumes",
    read_k_binary_edge => "k_binary_edge",
}

#[test]
fn digest_definition_matches_readme_example() {
    let model = model_from_bolt(&read_db("b_one_bucket")).unwrap();
    let (kv, tree) = digests(&model);
    assert!(kv.starts_with("7ce7c9ac"), "{kv}");
    assert!(tree.starts_with("fa855f8a"), "{tree}");
}

#[test]
fn every_corpus_file_is_in_the_test_data() {
    for name in HEALTHY.iter().chain(CORRUPT) {
        let m = manifest(name);
        assert_eq!(
            sha_hex(&read_db(name)),
            m["file_sha256"].as_str().unwrap(),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged files: diagnosis.

/// The problems of a report, as one string (for messages).
fn problems_text(r: &bolt::BoltReport) -> String {
    r.problems.iter().map(|p| format!("{p}\n")).collect()
}

fn damage_on(r: &bolt::BoltReport, page: u64, needle: &str) -> bool {
    r.problems
        .iter()
        .any(|p| p.severity == Severity::Damage && p.page == page && p.detail.contains(needle))
}

/// Common expectations for a damaged file: a verdict, bounded work, and the bucket path.
fn check_damaged(name: &str) -> bolt::BoltReport {
    let r = bolt::check_file(&db_path(name)).unwrap();
    eprintln!("{name}:\n{r}");
    // Work bounded by the pages of the file: every tree page is loaded at most once.
    let hwm = r.high_water_pgid;
    assert!(
        r.pages_loaded() <= hwm,
        "{name}: loaded {} pages of {hwm}",
        r.pages_loaded()
    );
    // Steps are bounded by elements of loaded pages plus pops.
    assert!(
        r.walk.steps <= 2 * (hwm + 1) * 256,
        "{name}: {} steps",
        r.walk.steps
    );
    r
}

#[test]
fn corrupt_01_branch_to_freelist_is_diagnosed() {
    let r = check_damaged("corrupt_01_branch_to_freelist");
    assert_eq!(r.verdict(), Verdict::Damaged);
    assert!(
        damage_on(&r, 438, "invalid page type freelist")
            && damage_on(&r, 438, "branch page 436 element 4"),
        "{}",
        problems_text(&r)
    );
    let p = r.first_damage().unwrap();
    assert_eq!(p.path, vec![b"volumes".to_vec()]);
    let lost: Vec<_> = r.lost().collect();
    assert_eq!(lost.len(), 1, "{}", problems_text(&r));
    assert_eq!(lost[0].path, vec![b"volumes".to_vec()]);
    assert!(matches!(lost[0].from, Bound::Included(_)) && matches!(lost[0].to, Bound::Excluded(_)));
    // The orphaned subtree (page 430 and its leaves) is reported as unreachable.
    assert!(r.census.unlisted_unreachable > 0);
    assert!(r
        .problems
        .iter()
        .any(|p| p.severity == Severity::Warning && p.detail.contains("neither reachable")));
}

#[test]
fn corrupt_02_leaf_flags_garbage_is_diagnosed() {
    let r = check_damaged("corrupt_02_leaf_flags_garbage");
    assert_eq!(r.verdict(), Verdict::Damaged);
    assert!(damage_on(&r, 218, "unknown<a5c8>"), "{}", problems_text(&r));
    assert!(
        damage_on(&r, 218, "salvage can recover them"),
        "{}",
        problems_text(&r)
    );
    assert!(
        damage_on(&r, 218, "branch page 413 element 12"),
        "{}",
        problems_text(&r)
    );
    assert_eq!(r.lost().count(), 1);
    assert_eq!(r.first_damage().unwrap().path, vec![b"volumes".to_vec()]);
}

#[test]
fn corrupt_03_branch_past_eof_is_diagnosed() {
    let r = check_damaged("corrupt_03_branch_past_eof");
    assert_eq!(r.verdict(), Verdict::Damaged);
    assert!(
        damage_on(&r, 528, "beyond the high-water mark 442"),
        "{}",
        problems_text(&r)
    );
    assert!(
        damage_on(&r, 528, "branch page 430 element 14"),
        "{}",
        problems_text(&r)
    );
    assert_eq!(r.lost().count(), 1);
}

#[test]
fn corrupt_04_branch_cycle_is_diagnosed() {
    let r = check_damaged("corrupt_04_branch_cycle");
    assert_eq!(r.verdict(), Verdict::Damaged);
    assert!(damage_on(&r, 436, "cycle"), "{}", problems_text(&r));
    assert!(
        damage_on(&r, 436, "436 -> 424 -> 436"),
        "{}",
        problems_text(&r)
    );
    let lost: Vec<_> = r.lost().collect();
    assert_eq!(lost.len(), 1);
    assert!(matches!(lost[0].from, Bound::Included(_)) && matches!(lost[0].to, Bound::Excluded(_)));
    // Only leaf 134 (8 entries) is lost; it is now orphaned.
    assert_eq!(r.walk.kv_pairs, 5000 - 8);
    assert_eq!(r.census.unlisted_unreachable, 1);
}

#[test]
fn corrupt_05_meta_bad_checksum_falls_back() {
    let name = "corrupt_05_meta_bad_checksum";
    let r = check_damaged(name);
    assert_eq!(r.verdict(), Verdict::Readable, "{r}");
    assert!(r.is_ok());
    assert_eq!(r.active_meta, Some(1));
    assert_eq!(r.txid, 5601);
    assert!(r.problems.iter().any(|p| p.page == 0
        && p.severity == Severity::Warning
        && p.detail.contains("bad checksum")
        && p.detail.contains("txid 5602 is lost")));
    // What is read is exactly the manifest's content (the state before the last commit).
    let m = manifest(name);
    let model = model_from_bolt(&read_db(name)).unwrap();
    compare_with_manifest(&model, &m["content"], name);
}

#[test]
fn corrupt_06_both_metas_bad_is_refused() {
    let name = "corrupt_06_both_metas_bad";
    let r = check_damaged(name);
    assert_eq!(r.verdict(), Verdict::Unreadable);
    assert!(r.active_meta.is_none());
    assert!(damage_on(&r, 0, "bad checksum"));
    assert!(r
        .problems
        .iter()
        .any(|p| p.page == 1 && p.detail.contains("bad checksum")));
    match BoltFile::open(&read_db(name)) {
        Err(Error::Corruption { page: 0, detail }) => {
            assert!(detail.contains("checksum"), "{detail}")
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn strict_walk_of_damaged_files_fails_with_the_page() {
    let expect = [
        ("corrupt_01_branch_to_freelist", 438),
        ("corrupt_02_leaf_flags_garbage", 218),
        ("corrupt_03_branch_past_eof", 528),
        ("corrupt_04_branch_cycle", 436),
    ];
    for (name, page) in expect {
        let bytes = read_db(name);
        match model_from_bolt(&bytes) {
            Err(Error::Corruption { page: p, detail }) => {
                assert_eq!(p, page, "{name}: {detail}");
                assert!(detail.contains("volumes"), "{name}: {detail}");
            }
            other => panic!(
                "{name}: expected corruption, got {:?}",
                other.map(|m| m.kv_total())
            ),
        }
    }
}

/// Salvage reading recovers every entry of the base file: the subtrees cut off by the damage
/// are orphaned pages (neither reachable nor on the freelist) that salvage reads back into
/// their lost ranges, and corrupt_02's leaf parses as a leaf despite its flags.
#[test]
fn salvage_walk_recovers_everything_readable() {
    let base = model_from_bolt(&read_db("j_docker_volumes")).unwrap();
    for name in &CORRUPT[..4] {
        let bytes = read_db(name);
        let file = BoltFile::open_outcome(&bytes, true).file.unwrap();
        let mut w = Walker::new(file, true);
        let got = model_from_walker(&mut w).unwrap();
        let lost: Vec<_> = w
            .problems()
            .items
            .iter()
            .filter_map(|p| p.lost.clone())
            .collect();
        let recovered_page = *name == "corrupt_02_leaf_flags_garbage";
        assert_eq!(lost.is_empty(), recovered_page, "{name}");
        if recovered_page {
            assert!(w.problems().items.iter().any(|p| p.page == 218
                && p.lost.is_none()
                && p.detail.contains("salvage read it as one")));
        }
        for l in &lost {
            assert!(l.recovered > 0, "{name}: {l}");
            assert!(w
                .problems()
                .items
                .iter()
                .any(|p| p.detail.contains("salvage recovered")
                    && p.detail.contains("orphaned page")));
        }
        let (gv, bv) = (
            got.child(b"volumes").unwrap(),
            base.child(b"volumes").unwrap(),
        );
        assert_eq!(gv.kvs.len(), bv.kvs.len(), "{name}: pairs salvaged");
        assert!(
            got == base,
            "{name}: salvaged content differs from the base file"
        );
    }
}

/// Without orphan recovery (the diagnosis walk), exactly the keys outside the lost ranges are
/// read, and the lost ranges are precise: every base key inside them is missing.
#[test]
fn diagnosis_walk_reads_exactly_the_keys_outside_the_lost_ranges() {
    let base = model_from_bolt(&read_db("j_docker_volumes")).unwrap();
    let base_vol = base.child(b"volumes").unwrap();
    for name in [&CORRUPT[0], &CORRUPT[2], &CORRUPT[3]] {
        let bytes = read_db(name);
        let file = BoltFile::open(&bytes).unwrap();
        let mut w = Walker::diagnose(file);
        let got = model_from_walker(&mut w).unwrap();
        let lost: Vec<_> = w
            .problems()
            .items
            .iter()
            .filter_map(|p| p.lost.clone())
            .collect();
        assert_eq!(lost.len(), 1, "{name}");
        let path = vec![b"volumes".to_vec()];
        let expected: Vec<_> = base_vol
            .kvs
            .iter()
            .filter(|(k, _)| !lost[0].contains(&path, k))
            .cloned()
            .collect();
        let vol = got.child(b"volumes").unwrap();
        assert!(
            vol.kvs == expected,
            "{name}: {} read, {} expected",
            vol.kvs.len(),
            expected.len()
        );
        let missing = base_vol.kvs.len() - vol.kvs.len();
        assert!(missing > 0 && missing < 600, "{name}: {missing} lost");
        eprintln!(
            "{name}: read {} of {}, lost {}",
            vol.kvs.len(),
            base_vol.kvs.len(),
            lost[0]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Import into deadbolt (needs the engine).

fn import_into_temp(
    name: &str,
    opts: &ImportOptions,
) -> (
    tempfile::TempDir,
    deadbolt::Db,
    deadbolt::Result<bolt::ImportReport>,
    Vec<(u64, u64)>,
) {
    let dir = tempfile::tempdir().unwrap();
    // The source's page size, so that the inline rule (a quarter page) means the same.
    let page_size = manifest(name)["page_size"].as_u64().unwrap() as usize;
    let opts_db = deadbolt::Options {
        page_size,
        ..deadbolt::Options::default()
    };
    let db = deadbolt::Db::open_with(dir.path().join("dst.deadbolt"), opts_db).unwrap();
    // Progress calls: the first, the last, and whether they were monotone.
    let mut calls: Vec<(u64, u64)> = Vec::new();
    let mut monotone = true;
    let r = bolt::import_file(&db_path(name), &db, opts, &mut |d, t| {
        if let Some(&(pd, pt)) = calls.last() {
            monotone &= pd <= d && pt == t;
        }
        if calls.len() < 2 {
            calls.push((d, t));
        } else {
            calls[1] = (d, t);
        }
    });
    assert!(
        monotone,
        "{name}: progress must be monotone with a fixed total"
    );
    (dir, db, r, calls)
}

fn import_healthy(name: &str, opts: &ImportOptions) {
    let m = manifest(name);
    let before = std::fs::read(db_path(name)).unwrap();
    let (_dir, db, r, calls) = import_into_temp(name, opts);
    let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(r.is_complete(), "{name}: {r}");
    let got = model_from_deadbolt(&db);
    compare_with_manifest(&got, &m["content"], &format!("{name} imported"));
    // The engine's own integrity check of the new database.
    let chk = db.check().unwrap();
    assert!(
        chk.is_ok(),
        "{name}: deadbolt check after import: {:?}",
        chk.problems
    );
    // Every bucket bbolt kept inline is inline in deadbolt too: bbolt also keeps an empty
    // bucket "inline" (an empty page image), which deadbolt stores as a header with no root,
    // so those are counted apart. deadbolt may inline more: a small bucket holding inline
    // buckets (format 6), which bbolt always gives a page.
    let empty = empty_buckets(&db);
    assert!(
        chk.inline_buckets + empty >= r.check.walk.inline_buckets,
        "{name}: {} buckets inline in deadbolt ({empty} empty), {} in bbolt",
        chk.inline_buckets,
        r.check.walk.inline_buckets
    );
    let src = model_from_bolt(&before).unwrap();
    assert_eq!(
        got,
        src.without_pgids(),
        "{name}: imported content equals the source"
    );
    assert_eq!(r.kv_pairs, src.kv_total());
    assert_eq!(r.buckets, src.bucket_total());
    // Progress: starts at 0, ends at the total.
    assert_eq!(
        calls.first().map(|c| c.0),
        Some(0),
        "{name}: progress start"
    );
    let total = src.kv_total() + src.bucket_total();
    assert_eq!(
        calls.last().copied(),
        Some((total, total)),
        "{name}: progress"
    );
    // The source is never written.
    assert_eq!(
        std::fs::read(db_path(name)).unwrap(),
        before,
        "{name}: source unchanged"
    );
}

/// Buckets (at any depth) with no keys and no nested buckets.
fn empty_buckets(db: &deadbolt::Db) -> u64 {
    fn walk(b: &deadbolt::Bucket<'_>) -> u64 {
        let names: Vec<Vec<u8>> = b.buckets().map(|n| n.unwrap().to_vec()).collect();
        let own = u64::from(names.is_empty() && b.iter().next().is_none());
        own + names
            .iter()
            .map(|n| walk(&b.bucket(n).unwrap().unwrap()))
            .sum::<u64>()
    }
    db.view(|tx| {
        let names: Vec<Vec<u8>> = tx.buckets().map(|n| n.unwrap().to_vec()).collect();
        Ok::<_, deadbolt::Error>(
            names
                .iter()
                .map(|n| walk(&tx.bucket(n).unwrap().unwrap()))
                .sum(),
        )
    })
    .unwrap()
}

macro_rules! import_tests {
    ($($t:ident => $name:expr),* $(,)?) => {
        $(#[test] fn $t() { import_healthy($name, &ImportOptions::default()); })*
    };
}

import_tests! {
    import_a_empty => "a_empty",
    import_b_one_bucket => "b_one_bucket",
    import_c_nested => "c_nested",
    import_d_200k_keys => "d_200k_keys",
    import_e_large_values => "e_large_values",
    import_f_freelist_churn => "f_freelist_churn",
    import_g_no_freelist_sync => "g_no_freelist_sync",
    import_h_pagesize_16k => "h_pagesize_16k",
    import_i_sequences => "i_sequences",
    import_j_docker_volumes => "j_docker_volumes",
    import_k_binary_edge => "k_binary_edge",
}

#[test]
fn import_in_tiny_transactions_is_exact() {
    let opts = ImportOptions {
        max_tx_bytes: 4096,
        max_tx_entries: 7,
        ..ImportOptions::default()
    };
    for name in ["c_nested", "e_large_values", "i_sequences", "k_binary_edge"] {
        import_healthy(name, &opts);
    }
}

#[test]
fn import_of_corrupt_05_gives_the_older_state() {
    let name = "corrupt_05_meta_bad_checksum";
    let (_dir, db, r, _) = import_into_temp(name, &ImportOptions::default());
    let r = r.unwrap();
    assert_eq!(r.source_txid, 5601);
    assert!(r.is_complete());
    let text = r.to_string();
    assert!(text.contains("the commit of txid 5602 is lost"), "{text}");
    compare_with_manifest(&model_from_deadbolt(&db), &manifest(name)["content"], name);
}

#[test]
fn strict_import_of_damaged_files_fails_and_writes_nothing() {
    let expect = [
        ("corrupt_01_branch_to_freelist", 438),
        ("corrupt_02_leaf_flags_garbage", 218),
        ("corrupt_03_branch_past_eof", 528),
        ("corrupt_04_branch_cycle", 436),
        ("corrupt_06_both_metas_bad", 0),
    ];
    for (name, page) in expect {
        let (_dir, db, r, _) = import_into_temp(name, &ImportOptions::default());
        match r {
            Err(Error::Corruption { page: p, detail }) => assert_eq!(p, page, "{name}: {detail}"),
            other => panic!("{name}: expected corruption, got {other:?}"),
        }
        let tx = db.begin_read().unwrap();
        assert_eq!(tx.buckets().count(), 0, "{name}: nothing imported");
    }
}

#[test]
fn salvage_import_recovers_the_readable_part() {
    let base = model_from_bolt(&read_db("j_docker_volumes")).unwrap();
    let opts = ImportOptions {
        salvage: true,
        ..ImportOptions::default()
    };
    for name in &CORRUPT[..4] {
        let (_dir, db, r, _) = import_into_temp(name, &opts);
        let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {r}");
        assert!(!r.is_complete());
        assert_eq!(r.lost.is_empty(), *name == "corrupt_02_leaf_flags_garbage");
        assert!(r.lost.iter().all(|l| l.recovered > 0));
        let got = model_from_deadbolt(&db);
        assert!(
            got == base.without_pgids(),
            "{name}: salvage import differs from the base file"
        );
        assert_eq!(r.kv_pairs, 5000);
        assert!(r.to_string().contains("INCOMPLETE"));
    }
    // Both metas bad: salvage reads through the newest plausible meta and says so.
    let (_dir, db, r, _) = import_into_temp("corrupt_06_both_metas_bad", &opts);
    let r = r.unwrap();
    assert!(r.meta_unverified && r.source_txid == 5602, "{r}");
    assert!(!r.is_complete());
    assert_eq!(model_from_deadbolt(&db), base.without_pgids());
}

#[test]
fn import_into_databases_with_other_page_sizes() {
    for page_size in [1024usize, 16384, 65536] {
        for name in ["k_binary_edge", "e_large_values", "c_nested"] {
            let dir = tempfile::tempdir().unwrap();
            let opts = deadbolt::Options {
                page_size,
                ..deadbolt::Options::default()
            };
            let db = deadbolt::Db::open_with(dir.path().join("x.deadbolt"), opts).unwrap();
            let r = bolt::import_file(
                &db_path(name),
                &db,
                &ImportOptions::default(),
                &mut |_, _| {},
            )
            .unwrap_or_else(|e| panic!("{name} into {page_size}: {e}"));
            assert!(r.is_complete());
            let got = model_from_deadbolt(&db);
            compare_with_manifest(
                &got,
                &manifest(name)["content"],
                &format!("{name} into {page_size}"),
            );
            drop(db);
            // Reopen: the import is durable and still exact.
            let db = deadbolt::Db::open(dir.path().join("x.deadbolt")).unwrap();
            assert_eq!(
                model_from_deadbolt(&db),
                got,
                "{name} into {page_size} after reopen"
            );
        }
    }
}
