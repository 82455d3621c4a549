//! Readers on several threads keep seeing their snapshot while a writer commits and the file
//! grows; the writer never waits for readers.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use deadbolt::{Db, Error, Options};

#[test]
fn readers_keep_their_snapshot_while_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open_with(
            dir.path().join("c.db"),
            Options {
                no_sync: true,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        b.put(b"gen", &0u64.to_be_bytes())?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (db, stop, start) = (db.clone(), stop.clone(), start.clone());
        readers.push(std::thread::spawn(move || {
            start.wait();
            let mut snapshots = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tx = db.begin_read().unwrap();
                let b = tx.bucket(b"b").unwrap().unwrap();
                let gen = u64::from_be_bytes(
                    b.get(b"gen").unwrap().unwrap().as_ref().try_into().unwrap(),
                );
                // Every commit writes `gen` and keys 0..gen: the snapshot must hold exactly those,
                // however long we look at it while the writer goes on.
                for round in 0..3 {
                    let n = b.iter().count() as u64;
                    assert_eq!(
                        n,
                        gen + 1,
                        "round {round}: snapshot of gen {gen} changed under the reader"
                    );
                    std::thread::yield_now();
                }
                assert_eq!(
                    u64::from_be_bytes(
                        b.get(b"gen").unwrap().unwrap().as_ref().try_into().unwrap()
                    ),
                    gen
                );
                snapshots += 1;
            }
            snapshots
        }));
    }
    start.wait();
    let before = db.stats().file_size;
    for gen in 1..=300u64 {
        db.update(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            b.put(format!("k{:08}", gen - 1).as_bytes(), &vec![gen as u8; 700])?;
            b.put(b"gen", &gen.to_be_bytes())?;
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(seen > 0);
    assert!(
        db.stats().file_size > before,
        "the file grew during the test"
    );
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn db_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
}

#[test]
fn old_reader_blocks_reuse_of_its_pages() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..200u32 {
            b.put(&i.to_be_bytes(), &[1u8; 100])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let old = db.begin_read().unwrap();
    for round in 0..20u8 {
        db.update(|tx| {
            let b = tx.bucket(b"b")?.unwrap();
            for i in 0..200u32 {
                b.put(&i.to_be_bytes(), &[round; 100])?;
            }
            Ok::<_, Error>(())
        })
        .unwrap();
    }
    // The old snapshot still reads its own values, verified.
    let b = old.bucket(b"b").unwrap().unwrap();
    for kv in b.iter() {
        let (_, v) = kv.unwrap();
        assert_eq!(&v[..], &[1u8; 100][..]);
    }
    assert!(db.stats().pending_pages > 0);
    drop(old);
    db.update(|tx| tx.bucket(b"b")?.unwrap().put(b"x", b"y"))
        .unwrap();
    assert_eq!(db.stats().open_read_txs, 0);
}
