//! API behaviour: limits, incompatible names, read-only transactions, rollback, sequences,
//! locks, read-only mode, poisoning after a failed sync, cursor semantics.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadbolt::{Db, Error, MemStorage, Options, Storage, View, MAX_KEY_SIZE};

#[test]
fn limits_and_incompatible_names() {
    let db = Db::in_memory().unwrap();
    let tx = db.begin_write().unwrap();
    let b = tx.create_bucket(b"b").unwrap();
    assert!(matches!(b.put(b"", b"v"), Err(Error::KeyEmpty)));
    assert!(matches!(
        b.put(&vec![1; MAX_KEY_SIZE + 1], b"v"),
        Err(Error::KeyTooLarge { .. })
    ));
    b.put(&vec![1; MAX_KEY_SIZE], b"max").unwrap();
    assert!(matches!(
        tx.create_bucket(b""),
        Err(Error::InvalidBucketName)
    ));
    assert!(matches!(tx.create_bucket(b"b"), Err(Error::BucketExists)));
    b.create_bucket(b"child").unwrap();
    assert!(matches!(
        b.put(b"child", b"v"),
        Err(Error::IncompatibleValue)
    ));
    assert!(matches!(b.get(b"child"), Err(Error::IncompatibleValue)));
    assert!(matches!(b.delete(b"child"), Err(Error::IncompatibleValue)));
    b.put(b"val", b"v").unwrap();
    assert!(matches!(
        b.create_bucket(b"val"),
        Err(Error::IncompatibleValue)
    ));
    assert!(matches!(b.bucket(b"val"), Err(Error::IncompatibleValue)));
    assert!(matches!(
        b.delete_bucket(b"nope"),
        Err(Error::BucketNotFound)
    ));
    assert!(matches!(
        tx.delete_bucket(b"nope"),
        Err(Error::BucketNotFound)
    ));
    tx.commit().unwrap();
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    assert_eq!(
        b.get(&vec![1; MAX_KEY_SIZE]).unwrap().unwrap().as_ref(),
        b"max"
    );
    assert!(matches!(b.put(b"k", b"v"), Err(Error::ReadOnly)));
    assert!(matches!(tx.create_bucket(b"x"), Err(Error::ReadOnly)));
    assert!(matches!(b.set_sequence(1), Err(Error::ReadOnly)));
}

#[test]
fn rollback_and_closure_errors() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    let r: Result<(), Error> = db.update(|tx| {
        tx.bucket(b"b")?.unwrap().put(b"k", b"v")?;
        Err(Error::InvalidArgument("caller changed its mind".into()))
    });
    assert!(r.is_err());
    {
        let tx = db.begin_write().unwrap();
        tx.bucket(b"b").unwrap().unwrap().put(b"k2", b"v").unwrap();
        // dropped without commit
    }
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.get(b"k")?, None);
        assert_eq!(b.get(b"k2")?, None);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn sequences_and_nested_buckets() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        assert_eq!(b.next_sequence()?, 1);
        assert_eq!(b.next_sequence()?, 2);
        let n = b.create_bucket(b"n")?;
        n.set_sequence(u64::MAX)?;
        assert!(n.next_sequence().is_err());
        let nn = n.create_bucket(b"nn")?;
        nn.put(b"deep", b"yes")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.sequence(), 2);
        let n = b.bucket(b"n")?.unwrap();
        assert_eq!(n.sequence(), u64::MAX);
        assert_eq!(
            n.bucket(b"nn")?.unwrap().get(b"deep")?.unwrap().as_ref(),
            b"yes"
        );
        let names: Vec<Vec<u8>> = tx.buckets().map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(names, vec![b"b".to_vec()]);
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| tx.bucket(b"b")?.unwrap().delete_bucket(b"n"))
        .unwrap();
    db.view(|tx| {
        assert!(tx.bucket(b"b")?.unwrap().bucket(b"n")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn cursor_moves_and_deletes() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..1000u32 {
            b.put(format!("{i:05}").as_bytes(), b"v")?;
        }
        b.create_bucket(b"00500x")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let mut c = b.cursor();
        assert_eq!(c.first()?.unwrap().key.as_ref(), b"00000");
        assert_eq!(c.prev()?, None);
        assert_eq!(c.last()?.unwrap().key.as_ref(), b"00999");
        assert_eq!(c.next()?, None);
        let e = c.seek(b"00500")?.unwrap();
        assert_eq!(e.key.as_ref(), b"00500");
        let e = c.next()?.unwrap();
        assert_eq!(e.key.as_ref(), b"00500x");
        assert!(e.value.is_none(), "nested bucket has no value");
        assert_eq!(c.prev()?.unwrap().key.as_ref(), b"00500");
        assert_eq!(c.seek(b"zzz")?, None);
        assert_eq!(c.prev()?.unwrap().key.as_ref(), b"00999");
        let r: Vec<Vec<u8>> = b
            .range(b"00010".as_slice()..b"00013".as_slice())
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        assert_eq!(
            r,
            vec![b"00010".to_vec(), b"00011".to_vec(), b"00012".to_vec()]
        );
        // Both ends of one iterator meet exactly once.
        let mut it = b.range(b"00100".as_slice()..=b"00105".as_slice());
        let mut got = Vec::new();
        loop {
            match (it.next(), it.next_back()) {
                (None, None) => break,
                (a, z) => {
                    got.extend(a.map(|r| r.unwrap().0.to_vec()));
                    got.extend(z.map(|r| r.unwrap().0.to_vec()));
                }
            }
        }
        got.sort();
        assert_eq!(got.len(), 6);
        got.dedup();
        assert_eq!(got.len(), 6);
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let mut c = b.cursor();
        let mut e = c.first()?;
        let mut i = 0;
        while let Some(en) = e {
            if en.value.is_some() && i % 2 == 0 {
                c.delete()?;
            }
            i += 1;
            e = c.next()?;
        }
        assert_eq!(i, 1001, "every entry visited once despite deletes");
        Ok::<_, Error>(())
    })
    .unwrap();
    db.view(|tx| {
        assert_eq!(tx.bucket(b"b")?.unwrap().iter().count(), 499);
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn exclusive_lock_and_read_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let db = Db::open(&path).unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    let second = Db::open_with(
        &path,
        Options {
            lock_timeout: Some(Duration::from_millis(50)),
            ..Options::default()
        },
    );
    assert!(
        matches!(second, Err(Error::LockTimeout)),
        "a second writer must not open the file"
    );
    drop(db);
    let ro = Db::open_with(
        &path,
        Options {
            read_only: true,
            lock_timeout: Some(Duration::from_millis(50)),
            ..Options::default()
        },
    )
    .unwrap();
    let ro2 = Db::open_with(
        &path,
        Options {
            read_only: true,
            lock_timeout: Some(Duration::from_millis(50)),
            ..Options::default()
        },
    )
    .unwrap();
    assert!(matches!(ro.begin_write(), Err(Error::ReadOnly)));
    assert!(ro2.view(|tx| tx.bucket(b"b").map(|b| b.is_some())).unwrap());
    let w = Db::open_with(
        &path,
        Options {
            lock_timeout: Some(Duration::from_millis(50)),
            ..Options::default()
        },
    );
    assert!(
        matches!(w, Err(Error::LockTimeout)),
        "readers hold a shared lock"
    );
}

/// A storage whose sync fails on demand, and which keeps the size of every write.
struct SpyStorage {
    inner: MemStorage,
    fail: AtomicBool,
    sizes: parking_lot::Mutex<Vec<usize>>,
}
impl SpyStorage {
    fn new() -> Arc<SpyStorage> {
        Arc::new(SpyStorage {
            inner: MemStorage::new(),
            fail: AtomicBool::new(false),
            sizes: parking_lot::Mutex::new(Vec::new()),
        })
    }
}
impl Storage for SpyStorage {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn view(&self) -> io::Result<Arc<dyn View>> {
        self.inner.view()
    }
    fn write_at(&self, o: u64, d: &[u8]) -> io::Result<()> {
        self.sizes.lock().push(d.len());
        self.inner.write_at(o, d)
    }
    fn set_len(&self, l: u64) -> io::Result<()> {
        self.inner.set_len(l)
    }
    fn create(&self, image: &[u8]) -> io::Result<()> {
        self.inner.create(image)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.fail.load(Ordering::Relaxed) {
            Err(io::Error::other("EIO"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn failed_sync_poisons_the_handle() {
    let s = SpyStorage::new();
    common::logs::capture();
    let db = Db::open_storage(s.clone(), Options::default()).unwrap();
    db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
    s.fail.store(true, Ordering::Relaxed);
    let r = db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"k", b"v"));
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    s.fail.store(false, Ordering::Relaxed);
    assert!(
        matches!(db.begin_write(), Err(Error::Poisoned(_))),
        "no retry after a failed sync"
    );
    // Readers still work on the last good snapshot.
    assert!(db.view(|tx| tx.bucket(b"b").map(|b| b.is_some())).unwrap());
    // The operator sees it in the daemon's log, with the cause.
    let logged = common::logs::matching(log::Level::Error, "poisoned");
    assert!(logged.iter().any(|m| m.contains("EIO")), "{logged:?}");
}

#[test]
fn one_mib_writes_filled_the_page_cache_with_large_folios_that_every_later_page_write_paid_for_so_a_commit_writes_at_most_64_kib_at_once(
) {
    // The kernel's cost of writing one page into a cached folio grows with the folio, and the
    // folio's size follows the writes that filled it (src/storage/mod.rs, MAX_WRITE): a bulk
    // load's writes must stay coalesced, but in runs of at most 64 KiB.
    let s = SpyStorage::new();
    let db = Db::open_storage(s.clone(), Options::default()).unwrap();
    let before = db.stats().pages_written;
    s.sizes.lock().clear();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..20_000u32 {
            b.put(&i.to_be_bytes(), &[7u8; 150])?;
        }
        // One value whose overflow span alone is longer than a write may be.
        b.put(b"large", &vec![9u8; 200_000])?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let pages = db.stats().pages_written - before;
    let sizes = s.sizes.lock().clone();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    assert!(largest <= 64 << 10, "a write of {largest} bytes");
    assert!(
        pages > 500 && (sizes.len() as u64) * 8 < pages,
        "{pages} pages in {} writes: the bulk load's pages are no longer coalesced",
        sizes.len()
    );
}

#[test]
fn one_sync_per_durable_commit_and_no_sync_option() {
    let db = Db::in_memory().unwrap();
    let s0 = db.stats().syncs;
    for i in 0..10u8 {
        db.update(|tx| tx.create_bucket_if_not_exists(b"b")?.put(&[i], &[i]))
            .unwrap();
    }
    assert_eq!(db.stats().syncs - s0, 10);
    let db = Db::open_storage(
        Arc::new(MemStorage::new()),
        Options {
            no_sync: true,
            ..Options::default()
        },
    )
    .unwrap();
    let s0 = db.stats().syncs;
    for i in 0..10u8 {
        db.update(|tx| tx.create_bucket_if_not_exists(b"b")?.put(&[i], &[i]))
            .unwrap();
    }
    assert_eq!(db.stats().syncs, s0);
    // One sync makes the commits durable, a second one makes their confirmation durable.
    db.sync().unwrap();
    assert_eq!(db.stats().syncs, s0 + 2);
    assert_eq!(db.stats().confirmed_txid, db.stats().txid);
}

#[test]
fn file_shrinks_after_deleting_most_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let db = Db::open(&path).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..20000u32 {
            b.put(&i.to_be_bytes(), &[0u8; 200])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let big = std::fs::metadata(&path).unwrap().len();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in 100..20000u32 {
            b.delete(&i.to_be_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    for _ in 0..3 {
        db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"x", b"y"))
            .unwrap();
    }
    let small = std::fs::metadata(&path).unwrap().len();
    assert!(small * 10 < big, "file did not shrink: {big} -> {small}");
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn backup_and_compact_produce_valid_copies() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("src.db")).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..3000u32 {
            b.put(&i.to_be_bytes(), &[7u8; 100])?;
        }
        b.set_sequence(42)?;
        b.create_bucket(b"n")?.put(b"k", b"v")?;
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in (0..3000u32).step_by(2) {
            b.delete(&i.to_be_bytes())?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.backup(dir.path().join("backup.db")).unwrap();
    db.compact_into(dir.path().join("compact.db")).unwrap();
    assert!(
        db.backup(dir.path().join("backup.db")).is_err(),
        "backup does not overwrite"
    );
    for name in ["backup.db", "compact.db"] {
        let copy = Db::open(dir.path().join(name)).unwrap();
        assert!(copy.check().unwrap().is_ok(), "{name}");
        copy.view(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            assert_eq!(b.iter().count(), 1500, "{name}");
            assert_eq!(b.sequence(), 42, "{name}");
            assert_eq!(b.bucket(b"n")?.unwrap().get(b"k")?.unwrap().as_ref(), b"v");
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    let a = std::fs::metadata(dir.path().join("src.db")).unwrap().len();
    let c = std::fs::metadata(dir.path().join("compact.db"))
        .unwrap()
        .len();
    assert!(c < a, "compacted copy is smaller: {a} -> {c}");
}

#[test]
fn reinitialising_a_short_file_without_a_meta_page_as_a_cut_short_creation_is_gone() {
    // Open used to take a file of at most two pages with no valid meta for a creation cut
    // short by a crash, and overwrite it. Creation is atomic now (a crash leaves the file empty
    // or whole), so such a file is someone else's: refused, and left as it was.
    for len in [1500, 64 * 1024] {
        let s = Arc::new(MemStorage::from_bytes(vec![0xAB; len]));
        let r = Db::open_storage(s.clone(), Options::default());
        assert!(
            matches!(r, Err(Error::InvalidFile(_))),
            "{len}: {:?}",
            r.err()
        );
        assert_eq!(s.to_bytes(), vec![0xAB; len], "{len}: never overwritten");
    }
}

/// `n` keys and a nested bucket, then every `keep_every`-th key kept: live pages stay
/// scattered up to the end of the file, so the free tail alone cannot shrink it.
fn scattered(db: &Db, n: u32, keep_every: u32) {
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        let nested = b.create_bucket(b"nested")?;
        for i in 0..n {
            b.put(&i.to_be_bytes(), &[1u8; 200])?;
            if i % 10 == 0 {
                nested.put(&i.to_be_bytes(), &[2u8; 100])?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in 0..n {
            if i % keep_every != 0 {
                b.delete(&i.to_be_bytes())?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn incremental_compaction_gives_space_back_while_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ic.db");
    let db = Db::open(&path).unwrap();
    scattered(&db, 20000, 50);
    let before = std::fs::metadata(&path).unwrap().len();
    let mut steps = 0;
    loop {
        let s = db.compact_step(64).unwrap();
        steps += 1;
        if s.moved == 0 || steps > 200 {
            break;
        }
    }
    // Two more commits let the freed tail go back.
    for _ in 0..2 {
        db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"tick", b"x"))
            .unwrap();
    }
    let after = std::fs::metadata(&path).unwrap().len();
    println!("incremental compaction: {before} -> {after} bytes in {steps} steps");
    assert!(steps <= 200, "compaction converges");
    assert!(
        after * 4 < before,
        "file did not shrink enough: {before} -> {after}"
    );
    assert!(db.check().unwrap().is_ok());
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        assert_eq!(b.iter().count(), 401);
        assert_eq!(b.bucket(b"nested")?.unwrap().iter().count(), 2000);
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// Before the position was kept, every step walked the tree from its start to the first
/// `max_pages` pages past the target: a run of small steps cost about steps x pages / 2 page
/// visits. Now each step goes on from the last one's key path: the forward pass visits each
/// page once plus a re-descent per step, and only the last few steps (the one that reaches
/// the end and starts over, and those that find what is left and then nothing) walk a whole
/// pass. Here: 4,957 visits in 109 steps over 756 pages (3,124, 96 and 687 before commits packed
/// changed leaves), where the walk from the start made 28,643 (and fails the bound below).
#[test]
fn a_run_of_compaction_steps_goes_on_where_the_last_stopped() {
    let db = Db::in_memory().unwrap();
    // Every 4th of 40,000 keys kept: 10,000 live keys on leaves scattered through the file.
    scattered(&db, 40000, 4);
    let mut visits = Vec::new();
    loop {
        let s = db.compact_step(8).unwrap();
        visits.push(s.visited);
        if s.moved == 0 || visits.len() > 2000 {
            break;
        }
    }
    let steps = visits.len() as u64;
    let live = db.view(|tx| tx.bucket(b"b")?.unwrap().stats()).unwrap();
    let pages = live.leaf_pages + live.branch_pages;
    let total: u64 = visits.iter().sum();
    println!("{steps} steps over {pages} live pages: {total} page visits");
    assert!(steps > 20 && steps <= 2000, "{steps} steps");
    // Each step: a re-descent (3 levels here) and the pages it moves (8, with their paths);
    // the last steps: up to five whole passes while the target settles (each commit writes
    // the moved pages' paths and packs changed neighbours, which can leave a page or two
    // above the target for the next pass: 6, 4, 1 and 0 pages moved in the last four here).
    assert!(
        total <= 6 * pages + steps * 12,
        "{total} page visits in {steps} steps over {pages} pages"
    );
    assert!(db.check().unwrap().is_ok());
    assert_eq!(live.keys, 10000 + 4000, "b's keys and its nested bucket's");
    // Nothing left to move: a whole pass, from wherever it stood.
    assert_eq!(db.compact_step(8).unwrap().moved, 0);
}

/// Reads of pages this process's commits wrote used to pay a checksum and a full validation
/// each (the commit cleared their verified bit): the benchmark's read phase after its load
/// cost 3,565 instructions per get instead of 2,412 (examples/read_cost.rs `same`). They are
/// trusted as written now; `verify_every_access` still checks every access.
#[test]
fn pages_this_process_wrote_are_not_verified_again_unless_asked() {
    let fill = |db: &Db| {
        db.update(|tx| {
            let b = tx.create_bucket(b"b")?;
            for i in 0..5000u32 {
                b.put(&i.to_be_bytes(), &[9u8; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    };
    let walk = |db: &Db| {
        db.view(|tx| {
            assert_eq!(tx.bucket(b"b")?.unwrap().iter().count(), 5000);
            Ok::<_, Error>(())
        })
        .unwrap();
    };
    let db = Db::in_memory().unwrap();
    fill(&db);
    let before = db.stats().pages_verified;
    walk(&db);
    assert_eq!(db.stats().pages_verified, before, "no page re-verified");
    let db = verifying_db();
    fill(&db);
    let before = db.stats().pages_verified;
    walk(&db);
    assert!(
        db.stats().pages_verified > before + 20,
        "every access verified"
    );
}

/// Nested buckets named alike under different parents, each big enough to have a tree of
/// pages of its own (so a read transaction keeps it once opened).
fn twin_buckets(db: &Db) {
    db.update(|tx| {
        for parent in [&b"a"[..], b"b"] {
            let p = tx.create_bucket(parent)?;
            for i in 0..50u32 {
                p.put(&i.to_be_bytes(), &[1u8; 100])?;
            }
            let x = p.create_bucket(b"x")?;
            for i in 0..200u32 {
                x.put(&i.to_be_bytes(), parent)?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn a_bucket_opened_again_in_a_read_transaction_is_its_own_parents_and_costs_no_lookup() {
    let db = Db::in_memory().unwrap();
    twin_buckets(&db);
    db.view(|tx| {
        for round in 0..3 {
            for parent in [&b"a"[..], b"b"] {
                let p = tx.bucket(parent)?.unwrap();
                let before = tx.pages_loaded();
                let x = p.bucket(b"x")?.unwrap();
                let opened = tx.pages_loaded() - before;
                if round == 0 {
                    assert!(opened > 0, "the first open looks the name up in its parent");
                } else {
                    assert_eq!(opened, 0, "opening {parent:?}/x again loads no page");
                }
                assert_eq!(x.get(&7u32.to_be_bytes())?.unwrap().as_ref(), parent);
                assert_eq!(x.iter().count(), 200);
            }
        }
        assert!(tx.bucket(b"a")?.unwrap().bucket(b"y")?.is_none());
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn with_verify_every_access_a_bucket_opened_again_is_looked_up_again() {
    let db = verifying_db();
    twin_buckets(&db);
    db.view(|tx| {
        let p = tx.bucket(b"a")?.unwrap();
        p.bucket(b"x")?.unwrap();
        let before = tx.pages_loaded();
        assert_eq!(
            p.bucket(b"x")?
                .unwrap()
                .get(&1u32.to_be_bytes())?
                .unwrap()
                .as_ref(),
            b"a"
        );
        assert!(
            tx.pages_loaded() > before + 1,
            "the parent's page is read again"
        );
        Ok::<_, Error>(())
    })
    .unwrap();
}

/// An in-memory database that verifies every page on every access.
fn verifying_db() -> Db {
    Db::open_storage(
        Arc::new(MemStorage::new()),
        Options {
            verify_every_access: true,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Keys of a 20,000-entry bucket in a scattered order (a multiplicative hash of `i`), so
/// leaves split at random places as under random inserts.
fn scattered_key(i: u32) -> [u8; 4] {
    i.wrapping_mul(2_654_435_761).to_be_bytes()
}

#[test]
fn removing_every_other_key_left_as_many_leaves_a_third_full_and_now_adjacent_ones_merge() {
    let db = Db::open_storage(Arc::new(MemStorage::new()), Options::default()).unwrap();
    let n = 20_000u32;
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..n {
            b.put(&scattered_key(i), &[7u8; 60])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let leaves =
        |db: &Db| db.view(|tx| Ok::<_, Error>(tx.bucket(b"b")?.unwrap().stats()?.leaf_pages));
    let before = leaves(&db).unwrap();
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in (0..n).step_by(2) {
            b.delete(&scattered_key(i))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let after = leaves(&db).unwrap();
    // Half the data in leaves filled to at most three quarters: well under 3/4 of the leaves.
    assert!(after * 4 < before * 3, "leaves {before} -> {after}");
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let mut want: Vec<[u8; 4]> = (1..n).step_by(2).map(scattered_key).collect();
        want.sort();
        let got: Vec<Vec<u8>> = b
            .iter()
            .map(|r| r.map(|(k, _)| k.to_vec()))
            .collect::<Result<_, _>>()?;
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| g[..] == w[..]));
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn a_bucket_left_with_two_leaves_a_third_full_kept_a_branch_root_over_them_and_now_is_one_leaf() {
    let db = Db::open_storage(Arc::new(MemStorage::new()), Options::default()).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..60u32 {
            b.put(&i.to_be_bytes(), &[1u8; 100])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    // Two leaves, each a little over a third full once two keys in three are gone: above
    // the quarter page under which a delete merges them.
    let s = db.view(|tx| tx.bucket(b"b")?.unwrap().stats()).unwrap();
    assert_eq!((s.leaf_pages, s.branch_pages), (2, 1), "{s:?}");
    db.update(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in 0..60u32 {
            if i % 3 != 0 {
                b.delete(&i.to_be_bytes())?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let s = db.view(|tx| tx.bucket(b"b")?.unwrap().stats()).unwrap();
    assert_eq!((s.keys, s.branch_pages, s.depth), (20, 0, 1), "{s:?}");
    assert!(db.check().unwrap().is_ok());
}

/// A 24-byte key that looks random (splitmix64 of `i`, three times), as in the benchmarks.
fn random_key(i: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    for (j, c) in k.chunks_mut(8).enumerate() {
        let mut z = i
            .wrapping_mul(3)
            .wrapping_add(j as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        c.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    k
}

/// A database of `n` random keys (`random_key(0..n)`) with values of `value` in bucket `b`,
/// written in `commits` transactions of equal size.
fn random_keys_db(n: u64, commits: u64, value: &[u8]) -> (Arc<MemStorage>, Db) {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(s.clone(), Options::default()).unwrap();
    for c in 0..commits {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"b")?;
            for i in (c * n / commits)..((c + 1) * n / commits) {
                b.put(&random_key(i), value)?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    (s, db)
}

/// Every key of [`random_keys_db`] is there, in order, and the tree checks (the fences hold).
fn assert_random_keys_in_order(db: &Db, n: u64) {
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        let mut want: Vec<[u8; 24]> = (0..n).map(random_key).collect();
        want.sort();
        let mut got = 0;
        for (kv, w) in b.iter().zip(&want) {
            assert_eq!(&kv?.0[..], &w[..]);
            got += 1;
        }
        assert_eq!(got, n);
        assert_eq!(b.stats()?.keys, n);
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn branch_separators_were_whole_24_byte_keys_and_now_are_the_few_bytes_that_divide_the_leaves() {
    use common::format::*;
    const P: usize = 4096;
    let n = 20_000u64;
    let (s, db) = random_keys_db(n, 10, &[7u8; 60]);
    assert_random_keys_in_order(&db, n);
    drop(db);
    // The bucket's root branch, read from the file by the independent format reader.
    let img = s.to_bytes();
    let meta = newest_meta(&img, P);
    let (header, _) = top_bucket_header(&img, P, &meta, b"b");
    let root = u64_at(&img, header);
    assert_eq!(page_type(&img, P, root), 2, "bucket b's root is a branch");
    let lens: Vec<usize> = (1..count(&img, P, root))
        .map(|i| u32_at(&img, branch_elem(P, root, i) + 24) as usize)
        .collect();
    assert!(lens.len() >= 2, "root has {} children", lens.len() + 1);
    // 20,000 random keys are told apart by 2 or 3 bytes: no separator needs 8.
    assert!(lens.iter().all(|&l| (1..8).contains(&l)), "{lens:?}");
}

#[test]
fn bottom_branches_were_left_69_percent_full_by_half_splits_and_now_a_commit_packs_the_ones_it_writes(
) {
    use common::format::*;
    const P: usize = 4096;
    // Fill of every branch page whose children are leaves, read from the file by the
    // independent format reader: (pages, bytes in use over the pages' bytes).
    fn bottom_branch_fill(img: &[u8]) -> (usize, f64) {
        let meta = newest_meta(img, P);
        let (header, _) = top_bucket_header(img, P, &meta, b"b");
        let mut todo = vec![u64_at(img, header)];
        let (mut pages, mut used) = (0usize, 0usize);
        while let Some(pg) = todo.pop() {
            if page_type(img, P, pg) != 2 {
                continue;
            }
            let n = count(img, P, pg);
            let kids: Vec<u64> = (0..n).map(|i| u64_at(img, branch_elem(P, pg, i))).collect();
            if page_type(img, P, kids[0]) == 2 {
                todo.extend(kids);
                continue;
            }
            pages += 1;
            used += 32;
            for i in 0..n {
                used += 32 + u32_at(img, branch_elem(P, pg, i) + 24) as usize;
            }
        }
        (pages, used as f64 / (pages * P) as f64)
    }
    let n = 300_000u64;
    // One transaction of random keys (a bulk load), then ten commits of scattered inserts.
    for commits in [1u64, 10] {
        let (s, db) = random_keys_db(n, commits, &[7u8; 8]);
        assert_random_keys_in_order(&db, n);
        db.view(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            for i in (0..n).step_by(97) {
                assert_eq!(b.get(&random_key(i))?.as_deref(), Some(&[7u8; 8][..]));
            }
            Ok::<_, Error>(())
        })
        .unwrap();
        drop(db);
        let (pages, fill) = bottom_branch_fill(&s.to_bytes());
        // Half splits alone leave about ln 2 = 69% (0.68 here before the repack); the repack
        // aims at seven eighths.
        assert!(pages >= 20, "{commits} commits: {pages} bottom branches");
        assert!(
            fill > 0.80,
            "{commits} commits: {pages} bottom branches, {:.0}% full",
            fill * 100.0
        );
    }
}

/// A leaf splits in half when it overflows, so random inserts leave leaves about 70% full, and
/// a transaction that touches every leaf of a range wrote them so: 10,000 one-key buckets
/// created 1,000 per commit took 300 leaves for 860 KB (the file 2.40 MiB, redb's 1.03). Now a
/// commit packs each run of adjacent changed leaves to seven eighths of a page, in a bulk load
/// and in commits of scattered inserts that touch most leaves, and the keys stay in order
/// inside their fences.
#[test]
fn random_inserts_left_leaves_70_percent_full_and_now_a_commit_packs_the_runs_it_writes() {
    let n = 30_000u64;
    for commits in [1u64, 10] {
        let (_s, db) = random_keys_db(n, commits, &[7u8; 40]);
        assert_random_keys_in_order(&db, n);
        let st = db.view(|tx| tx.bucket(b"b")?.unwrap().stats()).unwrap();
        // Each entry takes a 16-byte element, its 24-byte key and its value; each leaf a
        // 32-byte header.
        let used = n * (16 + 24 + 40) + st.leaf_pages * 32;
        let fill = used as f64 / (st.leaf_pages * 4096) as f64;
        assert!(
            fill > 0.8,
            "{commits} commits: {} leaves, {:.0}% full",
            st.leaf_pages,
            fill * 100.0
        );
        assert!(db.check().unwrap().is_ok());
    }
}

/// The file grows ahead of its pages, in chunks of up to 64 MiB, and a closed file kept the
/// chunk: 10,000 one-key buckets left 29 pages past the high-water mark. Now a clean close cuts
/// the file to the pages in use, and the file opens and reads as before.
#[test]
fn a_closed_file_kept_its_growth_chunk_and_now_close_cuts_it_to_the_pages_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let db = Db::open(&path).unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..5_000u64 {
            b.put(&random_key(i), &[3u8; 100])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let st = db.stats();
    assert!(
        st.file_size > st.high_water * st.page_size as u64,
        "the test needs a file longer than its pages: {st:?}"
    );
    let in_use = st.high_water * st.page_size as u64;
    db.close().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), in_use);
    let db = Db::open(&path).unwrap();
    db.view(|tx| {
        let b = tx.bucket(b"b")?.unwrap();
        for i in (0..5_000u64).step_by(7) {
            assert_eq!(b.get(&random_key(i))?.as_deref(), Some(&[3u8; 100][..]));
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(db.check().unwrap().is_ok());
}
