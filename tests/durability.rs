//! Issue 11: an acknowledged commit is never silently dropped, a failed open never writes, and
//! order is verified, not assumed. Each test opens with the behaviour it pins.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::format::{
    branch_elem, count, page_type, parents, put_ref, put_u32, ref_to, reseal, reseal_chain,
    span_len, u64_at,
};
use deadbolt::{Db, Error, MemStorage, Options};

const P: usize = 1024;

type Content = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

fn opts(confirm_after: Option<Duration>) -> Options {
    Options {
        page_size: P,
        confirm_after,
        ..Options::default()
    }
}

/// Commit `n` of the workload: 120 keys in `volumes`, 30 in `volumes/labels`, a few deletes.
fn commit(db: &Db, n: u32) {
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"volumes")?;
        for i in 0..120u32 {
            let k = format!("vol-{:05}", i * 7 + n * 1000);
            b.put(k.as_bytes(), format!("{{\"n\":{n},\"i\":{i}}}").as_bytes())?;
        }
        let l = b.create_bucket_if_not_exists(b"labels")?;
        for i in 0..30u32 {
            l.put(format!("l{n}-{i:03}").as_bytes(), b"role=db")?;
        }
        if n > 0 {
            b.delete(format!("vol-{:05}", 7 + (n - 1) * 1000).as_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Everything in the database, or the first error a read meets.
fn content(db: &Db) -> Result<Content, Error> {
    db.view(|tx| {
        let mut out = Content::new();
        let Some(b) = tx.bucket(b"volumes")? else {
            return Ok(out);
        };
        for kv in b.iter() {
            let (k, v) = kv?;
            out.insert((b"volumes".to_vec(), k.to_vec()), v.to_vec());
        }
        // Backwards too: the fence checks run on every path in.
        let mut back = 0;
        for kv in b.iter().rev() {
            kv?;
            back += 1;
        }
        assert_eq!(back, out.len(), "both directions see the same entries");
        if let Some(l) = b.bucket(b"labels")? {
            for kv in l.iter() {
                let (k, v) = kv?;
                out.insert((b"labels".to_vec(), k.to_vec()), v.to_vec());
            }
        }
        Ok(out)
    })
}

/// Images of a workload of `n` commits: just before the last commit, and after it.
struct Images {
    before_last: Vec<u8>,
    after: Vec<u8>,
    expect: Content,
    older: Content,
}

/// `n` commits, then the file as a clean close leaves it.
fn after_clean_close(n: u32) -> Images {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    for i in 0..n - 1 {
        commit(&db, i);
    }
    let older = content(&db).unwrap();
    let before_last = s.to_bytes();
    commit(&db, n - 1);
    let expect = content(&db).unwrap();
    db.close().unwrap();
    Images {
        before_last,
        after: s.to_bytes(),
        expect,
        older,
    }
}

/// `n` commits, an idle pause, and the file as a power cut then leaves it (no close).
fn after_idle_pause(n: u32) -> Images {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(Some(Duration::from_millis(5)))).unwrap();
    for i in 0..n - 1 {
        commit(&db, i);
    }
    let older = content(&db).unwrap();
    let before_last = s.to_bytes();
    commit(&db, n - 1);
    let expect = content(&db).unwrap();
    let start = Instant::now();
    while db.stats().confirmed_txid < db.stats().txid {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the idle database confirms its last commit"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let after = s.to_bytes();
    drop(db);
    Images {
        before_last,
        after,
        expect,
        older,
    }
}

/// Pages (meta slots included) that the last commit and what followed it wrote.
fn written_by_last(im: &Images) -> Vec<u64> {
    let pages = im.after.len() / P;
    (0..pages as u64)
        .filter(|&g| {
            let r = g as usize * P..g as usize * P + P;
            im.before_last.get(r.clone()) != Some(&im.after[r])
        })
        .collect()
}

/// A leaf page of `img` that differs from `before`: one the last commit wrote.
fn leaf_written_since(before: &[u8], img: &[u8]) -> u64 {
    (2..(img.len() / P) as u64)
        .find(|&g| {
            let r = g as usize * P..g as usize * P + P;
            before.get(r.clone()) != Some(&img[r]) && page_type(img, P, g) == 3
        })
        .expect("the last commit wrote a leaf")
}

/// The at-rest faults of one page: a flipped bit, a zeroed sector, a lost write (the page as it
/// was before the last commit) and a truncation of the file at the page.
fn faults(im: &Images, g: u64) -> Vec<(String, Vec<u8>)> {
    let at = g as usize * P;
    let mut out = Vec::new();
    let mut flip = im.after.clone();
    flip[at + (g as usize * 131 + 40) % P] ^= 1 << (g % 8);
    out.push((format!("bit flip in page {g}"), flip));
    let mut zero = im.after.clone();
    let sector = at + 512 * (g as usize % (P / 512));
    zero[sector..sector + 512].fill(0);
    out.push((format!("zeroed sector in page {g}"), zero));
    let mut lost = im.after.clone();
    match im.before_last.get(at..at + P) {
        Some(old) => lost[at..at + P].copy_from_slice(old),
        None => lost[at..at + P].fill(0),
    }
    out.push((format!("lost write of page {g}"), lost));
    if g >= 2 {
        out.push((format!("truncation at page {g}"), im.after[..at].to_vec()));
    }
    out
}

/// Open (read-only, then writable) a damaged image of a confirmed commit: either an error, or
/// exactly the newest state; never an older one. A failed open leaves every byte as it was.
fn assert_error_or_newest(what: &str, img: Vec<u8>, im: &Images) {
    for read_only in [true, false] {
        let s = Arc::new(MemStorage::from_bytes(img.clone()));
        let o = Options {
            read_only,
            ..opts(None)
        };
        let db = match Db::open_storage(s.clone(), o) {
            Ok(db) => db,
            Err(e) => {
                assert!(
                    e.is_corruption(),
                    "{what}: open fails with corruption, got {e}"
                );
                assert_eq!(s.to_bytes(), img, "{what}: a failed open writes nothing");
                continue;
            }
        };
        assert!(
            db.recovery().rolled_back.is_none(),
            "{what}: a confirmed commit was rolled back: {:?}",
            db.recovery()
        );
        match content(&db) {
            Err(e) => assert!(e.is_corruption(), "{what}: reads fail with corruption: {e}"),
            Ok(c) => {
                assert!(c != im.older, "{what}: opened at the older state");
                assert_eq!(c, im.expect, "{what}: opened with other content");
            }
        }
    }
}

#[test]
fn damage_to_a_cleanly_closed_commit_is_an_error_never_an_older_state() {
    let im = after_clean_close(4);
    let pages = written_by_last(&im);
    assert!(pages.len() >= 4, "the last commit wrote pages: {pages:?}");
    let mut cases = 0;
    for g in pages {
        for (what, img) in faults(&im, g) {
            assert_error_or_newest(&what, img, &im);
            cases += 1;
        }
    }
    assert!(cases >= 16);
}

#[test]
fn damage_after_an_idle_pause_without_close_is_an_error_never_an_older_state() {
    let im = after_idle_pause(4);
    for g in written_by_last(&im) {
        for (what, img) in faults(&im, g) {
            assert_error_or_newest(&what, img, &im);
        }
    }
}

#[test]
fn only_an_unconfirmed_newest_commit_is_rolled_back_and_recovery_says_so() {
    // A power cut right after the last commit's sync: nothing has confirmed it yet, so damage to
    // it cannot be told from a torn commit and rolling back is the right call.
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    for i in 0..3 {
        commit(&db, i);
    }
    let older = content(&db).unwrap();
    let before_last = s.to_bytes();
    commit(&db, 3);
    let last = db.stats().txid;
    let mut img = s.to_bytes();
    drop(db);
    let leaf = leaf_written_since(&before_last, &img);
    img[leaf as usize * P + 100] ^= 1;
    let s = Arc::new(MemStorage::from_bytes(img));
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    let r = db.recovery().clone();
    let rb = r.rolled_back.as_ref().expect("rolled back");
    assert_eq!(rb.txid, last);
    assert!(rb.txid > r.confirmed, "only an unconfirmed commit: {r:?}");
    assert!(rb.reason.contains("unconfirmed"), "{}", rb.reason);
    assert_eq!(content(&db).unwrap(), older);
    // The writable open confirmed what it opened at: the same damage is now beyond rollback.
    assert_eq!(db.stats().confirmed_txid, r.txid);
}

#[test]
fn a_database_with_one_commit_truncated_to_half_is_corruption_not_the_empty_database() {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    commit(&db, 0);
    drop(db);
    let img = s.to_bytes();
    let half = img[..img.len() / 2].to_vec();
    for read_only in [true, false] {
        let t = Arc::new(MemStorage::from_bytes(half.clone()));
        let o = Options {
            read_only,
            ..opts(None)
        };
        match Db::open_storage(t.clone(), o) {
            Err(e) => assert!(e.is_corruption(), "{e}"),
            Ok(db) => panic!("opened a truncated file at {:?}", db.recovery()),
        }
        assert_eq!(t.to_bytes(), half, "the evidence survives");
    }
}

#[test]
fn a_writable_open_that_rolls_back_reuses_only_the_rolled_back_commits_pages() {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    for i in 0..3 {
        commit(&db, i);
    }
    let before_last = s.to_bytes();
    commit(&db, 3);
    let mut img = s.to_bytes();
    drop(db);
    // Pages of the commit we will fall back to (its tree and free-space chain).
    let (_, reach) = parents(&before_last, P);
    let keep: Vec<u64> = reach.keys().copied().collect();
    let leaf = leaf_written_since(&before_last, &img);
    img[leaf as usize * P + 64] ^= 0x10;
    let s = Arc::new(MemStorage::from_bytes(img));
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    assert!(db.recovery().rolled_back.is_some());
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"after")?;
        for i in 0..200u32 {
            b.put(format!("k{i:04}").as_bytes(), &[7u8; 60])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    drop(db);
    let now = s.to_bytes();
    for g in keep {
        let at = g as usize * P;
        let len = span_len(&before_last, P, g);
        assert_eq!(
            &now[at..at + len],
            &before_last[at..at + len],
            "page {g} of the recovered commit was overwritten"
        );
    }
}

#[test]
fn single_durable_commits_still_make_exactly_one_sync_each() {
    let s = Arc::new(MemStorage::new());
    // A long idle delay: no background confirmation lands between these commits.
    let db = Db::open_storage(s, opts(Some(Duration::from_secs(3600)))).unwrap();
    let (s0, c0) = (db.stats().syncs, db.stats().confirmations);
    for i in 0..20u8 {
        db.update(|tx| tx.create_bucket_if_not_exists(b"b")?.put(&[i], &[i]))
            .unwrap();
    }
    assert_eq!(db.stats().syncs - s0, 20);
    assert_eq!(db.stats().confirmations, c0);
    // The commit before the newest is confirmed by the newest's meta, for free.
    assert_eq!(db.stats().confirmed_txid, db.stats().txid - 1);
    db.sync().unwrap();
    assert_eq!(db.stats().confirmed_txid, db.stats().txid);
    assert_eq!(db.stats().confirmations, c0 + 1);
}

// ---- never overwrite what is not ours; say what it is ------------------------------------

#[test]
fn a_bbolt_file_is_refused_by_name_with_the_import_command_and_left_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bolt");
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .find(|p| !p.to_string_lossy().contains("corrupt"))
        .expect("a bbolt corpus file");
    let img = std::fs::read(&name).unwrap();
    let s = Arc::new(MemStorage::from_bytes(img.clone()));
    match Db::open_storage(s.clone(), opts(None)) {
        Err(Error::InvalidFile(m)) => {
            assert!(
                m.contains("bbolt") && m.contains("deadbolt import-bolt"),
                "{m}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a bbolt file"),
    }
    assert_eq!(s.to_bytes(), img);
}

fn with_version(v: u32, slot: usize) -> Vec<u8> {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    commit(&db, 0);
    drop(db);
    let mut img = s.to_bytes();
    put_u32(&mut img, slot * P + 40, v);
    reseal(&mut img, P, slot as u64);
    img
}

#[test]
fn a_meta_of_another_format_version_is_unsupported_version_not_corruption() {
    let newer = deadbolt::FORMAT_VERSION + 1;
    for (v, slot) in [(newer, 0usize), (newer, 1), (1, 0), (99, 1)] {
        let img = with_version(v, slot);
        let s = Arc::new(MemStorage::from_bytes(img.clone()));
        match Db::open_storage(s.clone(), opts(None)) {
            Err(Error::UnsupportedVersion { found, supported }) => {
                assert_eq!((found, supported), (v, deadbolt::FORMAT_VERSION));
            }
            Err(e) => panic!("version {v} in slot {slot}: {e}"),
            Ok(_) => panic!("opened a version {v} file at the other slot"),
        }
        assert_eq!(s.to_bytes(), img);
    }
}

/// Versions 2 (before inline buckets) and 3 (metas placed by txid parity) are read as they
/// are: both slots of the old version open at the newest commit; the next commit's meta is of
/// this build's version, and the file reads back.
#[test]
fn a_version_2_or_3_file_opens_and_its_next_commit_writes_the_current_version() {
    for v in [2u32, 3] {
        let s = Arc::new(MemStorage::new());
        let db = Db::open_storage(s.clone(), opts(None)).unwrap();
        commit(&db, 0);
        drop(db);
        let mut img = s.to_bytes();
        // Versions 2 and 3 placed every meta by its txid (a confirmation in the other slot);
        // this build may have placed them the other way round: swap them into place.
        let by_txid = |img: &[u8], slot: usize| {
            (u64_at(img, slot * P + 56) + u64::from(img[slot * P + 48] & 1)) % 2 == slot as u64
        };
        if !by_txid(&img, 0) {
            let (m0, m1) = (img[..P].to_vec(), img[P..2 * P].to_vec());
            img[..P].copy_from_slice(&m1);
            img[P..2 * P].copy_from_slice(&m0);
            for slot in 0..2 {
                img[slot * P + 8..slot * P + 16].copy_from_slice(&(slot as u64).to_le_bytes());
            }
        }
        for slot in 0..2 {
            assert!(
                by_txid(&img, slot),
                "slot {slot} holds a meta version {v} would not"
            );
            put_u32(&mut img, slot * P + 40, v);
            reseal(&mut img, P, slot as u64);
        }
        let s = Arc::new(MemStorage::from_bytes(img));
        let db = Db::open_storage(s.clone(), opts(None)).unwrap();
        let before = db.recovery().txid;
        commit(&db, 1);
        let txid = db.stats().txid;
        assert!(txid > before);
        drop(db);
        let img = s.to_bytes();
        let holds = |slot: usize| u64_at(&img, slot * P + 56) == txid && img[slot * P + 48] == 0;
        let slot = (0..2)
            .find(|&s| holds(s))
            .expect("a slot holds the new commit");
        assert_eq!(
            u32::from_le_bytes(img[slot * P + 40..slot * P + 44].try_into().unwrap()),
            deadbolt::FORMAT_VERSION,
            "from version {v}"
        );
        let db = Db::open_storage(s, opts(None)).unwrap();
        assert_eq!(db.recovery().txid, txid);
        assert!(db.check().unwrap().is_ok());
    }
}

// ---- order is verified, not assumed --------------------------------------------------------

/// A database deep enough for forged pointers: at least three levels on 1 KiB pages.
fn deep() -> (Vec<u8>, Vec<Vec<u8>>) {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    let mut keys = Vec::new();
    db.update(|tx| {
        let b = tx.create_bucket(b"volumes")?;
        for i in 0..3000u32 {
            let k = format!("vol-{i:06}").into_bytes();
            b.put(&k, &[i as u8; 40])?;
            keys.push(k);
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // A later commit that leaves `volumes` alone: open verifies only pages newer than the
    // durable base, so the forged pages below are met by the read paths, not by open.
    db.update(|tx| tx.create_bucket(b"other")?.put(b"k", b"v"))
        .unwrap();
    db.close().unwrap();
    (s.to_bytes(), keys)
}

/// Branch pages at `level` (header byte 5) that hold at least two children.
fn branches_at(img: &[u8], level: u8) -> Vec<u64> {
    let (_, reach) = parents(img, P);
    let mut v: Vec<u64> = reach
        .keys()
        .copied()
        .filter(|&g| page_type(img, P, g) == 2 && img[g as usize * P + 5] == level)
        .filter(|&g| count(img, P, g) >= 2)
        .collect();
    v.sort();
    v
}

/// Point element `i` of branch `holder` at page `target`, with every checksum up to the meta
/// forged so that the Merkle check passes.
fn forge(img: &mut [u8], holder: u64, i: usize, target: u64) {
    let (_, par) = parents(img, P);
    let r = ref_to(img, P, target);
    put_ref(img, branch_elem(P, holder, i), r);
    reseal_chain(img, P, holder, &par);
}

/// Every way in must fail with corruption naming `page`: iteration both ways, get, seek, and
/// a write into the forged range.
fn assert_every_path_names(img: Vec<u8>, page: u64, probe: &[u8], what: &str) {
    let db = Db::open_storage(Arc::new(MemStorage::from_bytes(img)), opts(None)).unwrap();
    let named = |r: Result<(), Error>, how: &str| match r {
        Err(Error::Corruption { page: p, detail }) => {
            assert_eq!(
                p, page,
                "{what}, {how}: names the misplaced page ({detail})"
            )
        }
        Err(e) => panic!("{what}, {how}: {e}"),
        Ok(()) => panic!("{what}, {how}: no error"),
    };
    let fwd = db.view(|tx| {
        let b = tx.bucket(b"volumes")?.unwrap();
        let mut prev: Option<Vec<u8>> = None;
        for kv in b.iter() {
            let (k, _) = kv?;
            assert!(prev.as_deref() < Some(&k[..]), "{what}: keys out of order");
            prev = Some(k.to_vec());
        }
        Ok(())
    });
    named(fwd, "forward iteration");
    let back = db.view(|tx| {
        let b = tx.bucket(b"volumes")?.unwrap();
        let mut prev: Option<Vec<u8>> = None;
        for kv in b.iter().rev() {
            let (k, _) = kv?;
            assert!(
                prev.as_deref().is_none_or(|p| p > &k[..]),
                "{what}: keys out of order backwards"
            );
            prev = Some(k.to_vec());
        }
        Ok(())
    });
    named(back, "backward iteration");
    let get = db.view(|tx| tx.bucket(b"volumes")?.unwrap().get(probe).map(|_| ()));
    named(get, "get");
    let seek = db.view(|tx| {
        let b = tx.bucket(b"volumes")?.unwrap();
        b.cursor().seek(probe).map(|_| ())
    });
    named(seek, "seek");
    let put = db.update(|tx| tx.bucket(b"volumes")?.unwrap().put(probe, b"x"));
    named(put, "put");
}

#[test]
fn a_branch_pointed_at_a_siblings_subtree_is_corruption_not_keys_out_of_order() {
    let (img, keys) = deep();
    let holder = *branches_at(&img, 1).first().expect("a level-1 branch");
    let sibling = u64_at(&img, branch_elem(P, holder, 1));
    let first_child = u64_at(&img, branch_elem(P, holder, 0));
    let mut bad = img.clone();
    forge(&mut bad, holder, 0, sibling);
    // A key that child 0 held: its lookup now lands in the sibling.
    let probe = keys
        .iter()
        .find(|k| {
            let (_, kr, _) = common::format::leaf_elem(&img, P, first_child, 0);
            k.as_slice() == &img[kr]
        })
        .unwrap()
        .clone();
    assert_every_path_names(bad, sibling, &probe, "sibling subtree");
}

#[test]
fn a_branch_pointed_at_a_page_two_levels_down_is_corruption_not_missing_keys() {
    let (img, keys) = deep();
    let holder = *branches_at(&img, 2).first().expect("a three-level tree");
    // A leaf inside child 0's own range: separators alone cannot tell it is misplaced.
    let child0 = u64_at(&img, branch_elem(P, holder, 0));
    let leaf = u64_at(&img, branch_elem(P, child0, 0));
    assert_eq!(page_type(&img, P, leaf), 3);
    let (_, kr, _) = common::format::leaf_elem(&img, P, leaf, 0);
    let probe = img[kr].to_vec();
    assert!(keys.contains(&probe));
    let mut bad = img.clone();
    forge(&mut bad, holder, 0, leaf);
    assert_every_path_names(bad, leaf, &probe, "two levels down");
}

// ---- no deadlock on misuse -------------------------------------------------------------------

#[test]
fn a_second_write_transaction_on_the_same_thread_is_an_error_not_a_deadlock() {
    let db = Db::open_storage(Arc::new(MemStorage::new()), opts(None)).unwrap();
    let tx = db.begin_write().unwrap();
    assert!(matches!(db.begin_write(), Err(Error::WouldDeadlock)));
    let r = db.update(|_| Ok::<_, Error>(()));
    assert!(matches!(r, Err(Error::WouldDeadlock)), "{r:?}");
    assert!(matches!(db.batch(|_| Ok(())), Err(Error::WouldDeadlock)));
    assert!(matches!(db.sync(), Err(Error::WouldDeadlock)));
    assert!(matches!(db.shrink_to_fit(), Err(Error::WouldDeadlock)));
    drop(tx);
    // Released: this thread and others can write again.
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| db.update(|tx| tx.create_bucket(b"c").map(|_| ())).unwrap());
    });
    let nested: Result<(), Error> = db.update(|tx| {
        tx.create_bucket(b"d")?;
        match db.update(|_| Ok::<_, Error>(())) {
            Err(Error::WouldDeadlock) => Ok(()),
            other => panic!("{other:?}"),
        }
    });
    nested.unwrap();
}

#[test]
fn a_commit_whose_own_meta_is_damaged_gets_it_rewritten_at_a_writable_open() {
    // Found by the torture runner: with only the confirmation left, the next commit (which
    // writes the confirmation's slot) would have overwritten the one valid meta, and a crash in
    // it left no commit to open.
    let im = after_clean_close(2);
    let mut img = im.after.clone();
    let (m, _) = parents(&img, P);
    let slot = m.slot;
    img[slot * P + 60] ^= 0x10;
    let s = Arc::new(MemStorage::from_bytes(img));
    let db = Db::open_storage(s.clone(), opts(None)).unwrap();
    assert!(db.recovery().damaged_meta.is_some());
    let now = s.to_bytes();
    for slot in 0..2 {
        let b = &now[slot * P..slot * P + P];
        assert_eq!(
            crc32fast::hash(&b[4..]),
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            "slot {slot} holds a valid meta again"
        );
    }
    drop(db);
    assert_eq!(
        content(&Db::open_storage(s, opts(None)).unwrap()).unwrap(),
        im.expect
    );
}
