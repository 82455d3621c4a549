//! Hostile bytes: the seed scenario of moby/moby#49074 in deadbolt's own format, and friends.
//! Every damaged file must give a prompt `Error::Corruption` with flat memory.

mod common;

use std::sync::Arc;

use common::format::*;
use deadbolt::{Db, Error, MemStorage, Options};

#[global_allocator]
static A: common::alloc::Counting = common::alloc::Counting;

const P: usize = 1024;

/// A database with bucket "b" holding a three-level tree, and a later commit to another
/// bucket so that "b"'s pages are older than the last commit.
fn build() -> Vec<u8> {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(
        s.clone(),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
    .unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..3000u32 {
            b.put(
                format!("key-{i:06}").as_bytes(),
                format!("value-{i}").as_bytes(),
            )?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    for i in 0..2 {
        db.update(|tx| tx.create_bucket_if_not_exists(b"other")?.put(b"n", &[i]))
            .unwrap();
    }
    assert!(db.stats().depth >= 1);
    drop(db);
    s.to_bytes()
}

fn open(img: Vec<u8>) -> deadbolt::Result<Db> {
    Db::open_storage(
        Arc::new(MemStorage::from_bytes(img)),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
}

/// Walk bucket "b" forwards and backwards; return the first error.
fn walk(db: &Db) -> Result<usize, Error> {
    db.view(|tx| {
        let b = tx.bucket(b"b")?.ok_or(Error::BucketNotFound)?;
        let mut n = 0;
        for kv in b.iter() {
            kv?;
            n += 1;
        }
        for kv in b.iter().rev() {
            kv?;
        }
        Ok(n)
    })
}

fn bucket_root(img: &[u8]) -> (Meta, usize, u64, Ref) {
    let m = newest_meta(img, P);
    let (hdr, leaf) = top_bucket_header(img, P, &m, b"b");
    let r = ref_at(img, hdr);
    (m, hdr, leaf, r)
}

fn expect_corruption(r: Result<usize, Error>, want: &str) -> u64 {
    match r {
        Err(Error::Corruption { page, detail }) => {
            assert!(
                detail.contains(want),
                "expected '{want}', got '{detail}' at page {page}"
            );
            page
        }
        other => panic!("expected corruption ({want}), got {other:?}"),
    }
}

#[test]
fn healthy_image_walks() {
    let img = build();
    let db = open(img).unwrap();
    assert_eq!(walk(&db).unwrap(), 3000);
    assert!(db.check().unwrap().is_ok());
}

/// The seed bug: a branch element points at the free-list page. With every checksum up to the
/// meta recomputed (so only the type check can catch it), iteration fails at once, naming the
/// page, with flat memory.
#[test]
fn branch_pointing_at_freelist_page() {
    let mut img = build();
    let (m, hdr, leaf, root) = bucket_root(&img);
    assert_eq!(page_type(&img, P, root.pgid), 2, "bucket root is a branch");
    let fl = m.freelist;
    assert_eq!(page_type(&img, P, fl.pgid), 4);
    put_ref(&mut img, branch_elem(P, root.pgid, 1), fl);
    reseal_up(&mut img, P, root.pgid, hdr, leaf, m.slot);
    let db = open(img).unwrap();
    let base = common::alloc::reset();
    let page = expect_corruption(
        walk(&db),
        "expected a branch or leaf page, found type 4 (freelist)",
    );
    assert_eq!(page, fl.pgid);
    let grew = common::alloc::peak_above(base);
    assert!(grew < 256 << 10, "iteration allocated {grew} bytes");
    // The integrity check reports it too, with the bucket path.
    let rep = db.check().unwrap();
    assert!(!rep.is_ok());
    assert!(
        rep.problems
            .iter()
            .any(|p| p.page == fl.pgid && p.path == vec![b"b".to_vec()]),
        "{rep}"
    );
}

/// The same pointer change without recomputing checksums: caught at the parent's record.
#[test]
fn branch_pointer_changed_without_checksums() {
    let mut img = build();
    let (m, _, _, root) = bucket_root(&img);
    put_ref(&mut img, branch_elem(P, root.pgid, 1), m.freelist);
    let db = open(img).unwrap();
    let page = expect_corruption(walk(&db), "checksum mismatch");
    assert_eq!(page, root.pgid);
}

/// A branch element pointing at its own ancestor, on a file whose pages were already verified
/// by this process (so the checksum cache would let the cycle through): the bounded cursor
/// reports the cycle at once instead of looping.
#[test]
fn branch_pointing_at_own_ancestor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.db");
    std::fs::write(&path, build()).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(walk(&db).unwrap(), 3000); // every page now verified and cached
    let mut img = std::fs::read(&path).unwrap();
    let (_, _, _, root) = bucket_root(&img);
    // A child branch of the root: make its first element point back at the root.
    let child = ref_at(&img, branch_elem(P, root.pgid, 0));
    assert_eq!(page_type(&img, P, child.pgid), 2, "three-level tree");
    let off = branch_elem(P, child.pgid, 0);
    put_ref(&mut img, off, root);
    reseal(&mut img, P, child.pgid);
    // Patch the live file in place (the mapping sees it), as a hostile disk would.
    let at = child.pgid as usize * P;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &img[at..at + P], at as u64).unwrap();
    drop(f);
    let base = common::alloc::reset();
    let r = walk(&db);
    let grew = common::alloc::peak_above(base);
    match r {
        // The pointer back at the root is at the wrong depth (the root is two levels up),
        // which the level check reports before the cycle check would.
        Err(Error::Corruption { detail, .. }) => {
            assert!(
                detail.contains("cycle") || detail.contains("level"),
                "{detail}"
            )
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(grew < 256 << 10, "iteration allocated {grew} bytes");
    // A fresh open of the same file (nothing cached) reports it too.
    drop(db);
    let db = Db::open(&path).unwrap();
    expect_corruption(walk(&db), "");
}

/// A pointer past the end of the file and past the high-water mark.
/// `build()` with a branch element of "b"'s root pointing past the end of the file and past
/// the high-water mark, every checksum resealed.
fn past_end_image() -> Vec<u8> {
    let mut img = build();
    let (m, hdr, leaf, root) = bucket_root(&img);
    let r = Ref {
        pgid: m.hwm + 1000,
        txid: root.txid,
        crc: 0,
    };
    put_ref(&mut img, branch_elem(P, root.pgid, 2), r);
    reseal_up(&mut img, P, root.pgid, hdr, leaf, m.slot);
    img
}

#[test]
fn branch_pointing_past_eof() {
    let img = past_end_image();
    let hwm = newest_meta(&img, P).hwm;
    let db = open(img).unwrap();
    let page = expect_corruption(walk(&db), "outside");
    assert_eq!(page, hwm + 1000);
}

/// Garbage element counts and offsets on a leaf (checksums fixed): a precise error, no panic.
#[test]
fn absurd_counts_and_offsets() {
    let img0 = build();
    let (m, hdr, leaf, root) = bucket_root(&img0);
    // Damage the bucket root page itself in several ways.
    for (i, patch) in [
        (6usize, vec![0xff, 0xff]),
        (32 + 20, vec![0xff, 0xff, 0xff, 0x7f]),
        (32 + 24, vec![0, 0, 0, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut img = img0.clone();
        let at = root.pgid as usize * P + patch.0;
        img[at..at + patch.1.len()].copy_from_slice(&patch.1);
        reseal_up(&mut img, P, root.pgid, hdr, leaf, m.slot);
        let db = open(img).unwrap();
        let r = walk(&db);
        assert!(
            matches!(r, Err(Error::Corruption { .. })),
            "case {i}: {r:?}"
        );
    }
}

/// Both metas damaged: open refuses with a corruption error naming the metas.
#[test]
fn both_metas_damaged() {
    let mut img = build();
    img[100] ^= 1;
    img[P + 100] ^= 1;
    match open(img) {
        Err(Error::Corruption { detail, .. }) => assert!(detail.contains("meta"), "{detail}"),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

/// The newest meta damaged after a clean close: the confirmation in the other slot names the
/// same commit, so open loses nothing, and says a slot was damaged.
#[test]
fn newest_meta_damaged_opens_at_its_confirmation() {
    let mut img = build();
    let m = newest_meta(&img, P);
    img[m.slot * P + 60] ^= 0x10;
    let db = open(img).unwrap();
    assert!(db.recovery().damaged_meta.is_some());
    assert_eq!(db.stats().txid, m.txid);
    assert_eq!(walk(&db).unwrap(), 3000);
}

/// A lost write: a page replaced by an older, self-consistent version of itself.
#[test]
fn stale_page_is_detected() {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(
        s.clone(),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
    .unwrap();
    // Values over a quarter page, so that "b" has a page of its own (not inline).
    let (old_v, new_v) = (b"old".repeat(P / 8), b"new".repeat(P / 8));
    db.update(|tx| tx.create_bucket(b"b")?.put(b"k", &old_v))
        .unwrap();
    let before = s.to_bytes();
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"k", &new_v))
        .unwrap();
    db.update(|tx| tx.create_bucket(b"c").map(|_| ())).unwrap();
    drop(db);
    let mut img = s.to_bytes();
    let m = newest_meta(&img, P);
    let (hdr, _) = top_bucket_header(&img, P, &m, b"b");
    let r = ref_at(&img, hdr);
    // Find where "old" lived: any leaf page of `before` holding the value, and put that old
    // page image at the new page's place with its own id (a write that never happened).
    let old_pg = (2..before.len() / P)
        .find(|&i| {
            page_type(&before, P, i as u64) == 3
                && before[i * P..i * P + P].windows(3).any(|w| w == b"old")
        })
        .unwrap();
    let mut old = before[old_pg * P..old_pg * P + P].to_vec();
    put_u64(&mut old, 8, r.pgid);
    let c = crc32fast::hash(&old[4..]);
    put_u32(&mut old, 0, c);
    img[r.pgid as usize * P..r.pgid as usize * P + P].copy_from_slice(&old);
    let db = open(img).unwrap();
    let got = db.view(|tx| {
        tx.bucket(b"b")?
            .unwrap()
            .get(b"k")
            .map(|v| v.map(|v| v.to_vec()))
    });
    match got {
        Err(Error::Corruption { page, detail }) => {
            assert_eq!(page, r.pgid);
            assert!(
                detail.contains("txid") || detail.contains("checksum"),
                "{detail}"
            );
        }
        other => panic!("stale data served: {other:?}"),
    }
}

/// Walk bucket "b" from a random end under random page budgets, refilling after each
/// exhaustion, until the walk fails: every budget's work stays within one page of it (checked
/// by `common::walk`), and the walk ends in the damage (`Corruption`), not in a quiet end or a
/// loop.
fn budgeted_walk_to_damage(db: &Db, seed: u64) -> u64 {
    let mut rng = common::Rng::new(seed);
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let mut c = b.cursor();
    let forward = rng.chance(50);
    // The tree has three levels: seven pages always make progress (a re-seek and a step).
    let w = common::walk::budgeted_walk(&tx, &mut c, forward, || 7 + rng.below(20));
    match w.end {
        Err(Error::Corruption { page, .. }) => page,
        Ok(()) => panic!("seed {seed}: the walk ended without meeting the damage"),
        Err(e) => panic!("seed {seed}: {e}"),
    }
}

#[test]
fn budgeted_walks_of_damaged_files_stop_within_one_page_of_their_budget() {
    // The seed bug (a branch element at the free-list page, checksums resealed), a flipped
    // byte in a leaf, and a pointer past the end of the file.
    let mut seed_bug = build();
    let (m, hdr, leaf, root) = bucket_root(&seed_bug);
    put_ref(&mut seed_bug, branch_elem(P, root.pgid, 1), m.freelist);
    reseal_up(&mut seed_bug, P, root.pgid, hdr, leaf, m.slot);
    let mut flipped = build();
    let mid = ref_at(&flipped, branch_elem(P, root.pgid, 2));
    let a_leaf = ref_at(&flipped, branch_elem(P, mid.pgid, 1));
    assert_eq!(page_type(&flipped, P, a_leaf.pgid), 3, "a leaf");
    flipped[a_leaf.pgid as usize * P + P / 2] ^= 0x40;
    let past_end = past_end_image();
    for seed in 0..24u64 {
        for (name, img) in [
            ("seed bug", &seed_bug),
            ("flipped leaf", &flipped),
            ("past the end", &past_end),
        ] {
            let db = open(img.clone()).unwrap();
            let page = budgeted_walk_to_damage(&db, seed);
            assert!(page >= 2, "{name}: page {page}");
        }
    }
}

/// The cycle of `branch_pointing_at_own_ancestor` (a file patched under a process that has
/// already verified every page), walked under budgets.
#[test]
fn budgeted_walks_of_a_cyclic_tree_stop_within_one_page_of_their_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cycle.db");
    std::fs::write(&path, build()).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(walk(&db).unwrap(), 3000);
    let mut img = std::fs::read(&path).unwrap();
    let (_, _, _, root) = bucket_root(&img);
    let child = ref_at(&img, branch_elem(P, root.pgid, 0));
    put_ref(&mut img, branch_elem(P, child.pgid, 0), root);
    reseal(&mut img, P, child.pgid);
    let at = child.pgid as usize * P;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &img[at..at + P], at as u64).unwrap();
    drop(f);
    for seed in 0..24u64 {
        // Forward walks meet the cycle at the first leaf; backward walks at the end.
        budgeted_walk_to_damage(&db, seed);
    }
}
