//! Reader hygiene: the oldest open read transaction in `Db::stats`, the pages it pins, the
//! alert when it passes a limit, and the events an operator must find in the daemon's log.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::format::newest_meta;
use deadbolt::{Db, Error, MemStorage, Options, ReaderAlert, ReaderLimits};

const P: usize = 4096;

fn rewrite(db: &Db, round: u32) {
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"b")?;
        for i in 0..200u32 {
            b.put(&i.to_be_bytes(), &round.to_be_bytes().repeat(20))?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
}

#[test]
fn the_oldest_open_reader_is_reported_with_the_pages_its_snapshot_pins() {
    let db = Db::in_memory().unwrap();
    rewrite(&db, 0);
    assert_eq!(db.stats().oldest_reader, None);
    let old = db.begin_read().unwrap();
    let young = {
        rewrite(&db, 1);
        db.begin_read().unwrap()
    };
    for round in 2..12 {
        rewrite(&db, round);
    }
    let s = db.stats();
    let info = s.oldest_reader.expect("a reader is open");
    assert_eq!(
        info.txid,
        old.id(),
        "the oldest snapshot, not the younger reader's"
    );
    assert!(info.age > Duration::ZERO);
    // Each rewrite frees the bucket's pages of the commit before; none can be reused while
    // `old` is open, and they are the pages pending reuse.
    assert!(info.pinned_pages >= 11, "{info:?}");
    assert!(info.pinned_pages <= s.pending_pages, "{info:?} {s:?}");
    drop(old);
    let s = db.stats();
    let info = s.oldest_reader.expect("the younger reader");
    assert_eq!(info.txid, young.id());
    drop(young);
    rewrite(&db, 12);
    let s = db.stats();
    assert_eq!(s.oldest_reader, None);
    assert_eq!(s.open_read_txs, 0);
}

#[test]
fn a_reader_over_a_limit_is_logged_and_called_back_once_per_limit() {
    common::logs::capture();
    let alerts: Arc<Mutex<Vec<ReaderAlert>>> = Arc::default();
    let seen = alerts.clone();
    let db = Db::open_storage(
        Arc::new(MemStorage::new()),
        Options {
            reader_limits: ReaderLimits {
                max_age: Some(Duration::from_millis(1)),
                max_pinned_pages: Some(8),
                on_alert: Some(Arc::new(move |a: &ReaderAlert| {
                    seen.lock().unwrap().push(*a)
                })),
            },
            ..Options::default()
        },
    )
    .unwrap();
    rewrite(&db, 0);
    let r = db.begin_read().unwrap();
    std::thread::sleep(Duration::from_millis(5)); // older than max_age (a lower bound only)
    for round in 1..30 {
        rewrite(&db, round);
        let _ = db.stats();
    }
    let a = alerts.lock().unwrap().clone();
    assert!(a.iter().all(|x| x.reader.txid == r.id()), "{a:?}");
    assert_eq!(a.iter().filter(|x| x.too_old).count(), 1, "{a:?}");
    assert_eq!(a.iter().filter(|x| x.pins_too_many).count(), 1, "{a:?}");
    let pinned = a
        .iter()
        .find(|x| x.pins_too_many)
        .unwrap()
        .reader
        .pinned_pages;
    assert!(pinned > 8, "{pinned}");
    let logged = common::logs::matching(log::Level::Warn, &format!("snapshot {} open", r.id()));
    assert!(!logged.is_empty(), "the alert reached the log");
    // A new oldest reader is a new alert.
    drop(r);
    let r2 = db.begin_read().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    rewrite(&db, 99);
    let a = alerts.lock().unwrap().clone();
    assert!(
        a.iter().any(|x| x.reader.txid == r2.id() && x.too_old),
        "{a:?}"
    );
}

#[test]
fn a_commit_rolled_back_at_open_is_logged_with_its_reason() {
    common::logs::capture();
    let s = Arc::new(MemStorage::new());
    let opts = Options {
        confirm_after: None,
        ..Options::default()
    };
    let db = Db::open_storage(s.clone(), opts.clone()).unwrap();
    rewrite(&db, 0);
    rewrite(&db, 1);
    let last = db.stats().txid;
    // A power cut now (before a clean close confirms the last commit), and damage to the
    // newest commit's free-space record: unconfirmed, so it is rolled back.
    let mut img = s.to_bytes();
    drop(db);
    let m = newest_meta(&img, P);
    assert_eq!(m.txid, last);
    img[m.freelist.pgid as usize * P + 40] ^= 0xff;
    let db = Db::open_storage(Arc::new(MemStorage::from_bytes(img)), opts).unwrap();
    assert_eq!(
        db.recovery().rolled_back.as_ref().map(|r| r.txid),
        Some(last)
    );
    let logged = common::logs::matching(
        log::Level::Warn,
        &format!("rolled back unconfirmed commit {last}"),
    );
    assert_eq!(logged.len(), 1, "{logged:?}");
}

#[test]
fn a_large_growth_of_the_file_is_logged() {
    common::logs::capture();
    let db = Db::in_memory().unwrap();
    // 40 MiB in one commit: the file grows by more than LOG_RESIZE_BYTES (16 MiB).
    db.update(|tx| {
        let b = tx.create_bucket(b"big")?;
        for i in 0..40u32 {
            b.put(&i.to_be_bytes(), &vec![7u8; 1 << 20])?;
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(
        !common::logs::matching(log::Level::Info, "file grew from").is_empty(),
        "a jump of 40 MiB reached the log"
    );
}
