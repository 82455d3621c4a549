//! Entry points shared by the coverage-guided fuzz targets (`fuzz/`) and their stable-toolchain
//! regression test (`tests/fuzz_regressions.rs`). Not part of the supported API.

use crate::{Db, Error, MemStorage, Options};
use std::sync::Arc;

/// Every bounded read path over an open database; errors are fine, panics are not.
fn walk(db: &Db) {
    let _ = db.check();
    let _ = db.view(|tx| {
        let mut todo: Vec<Vec<Vec<u8>>> = Vec::new();
        for n in tx.buckets().take(32) {
            todo.push(vec![n?.to_vec()]);
        }
        let mut steps = 0;
        while let Some(path) = todo.pop() {
            steps += 1;
            if steps > 128 {
                break;
            }
            let Some(mut b) = tx.bucket(&path[0])? else {
                continue;
            };
            for n in &path[1..] {
                match b.bucket(n)? {
                    Some(x) => b = x,
                    None => break,
                }
            }
            for kv in b.iter().take(10_000) {
                kv?;
            }
            for kv in b.iter().rev().take(10_000) {
                kv?;
            }
            let mut c = b.cursor();
            let _ = c.seek(b"m");
            let _ = c.prev();
            let _ = b.stats();
            for n in b.buckets().take(16) {
                let mut p = path.clone();
                p.push(n?.to_vec());
                todo.push(p);
            }
        }
        Ok::<_, Error>(())
    });
}

/// Treat `data` as a deadbolt file: open, check, iterate every bucket both ways, seek, write,
/// commit, reopen, and salvage.
pub fn exercise_image(data: &[u8]) {
    let storage = Arc::new(MemStorage::from_bytes(data.to_vec()));
    let opts = Options {
        page_size: 1024,
        ..Options::default()
    };
    if let Ok(db) = Db::open_storage(storage.clone(), opts.clone()) {
        walk(&db);
        let _ = db.update(|tx| {
            tx.create_bucket_if_not_exists(b"fuzz")?.put(b"k", b"v")?;
            Ok::<_, Error>(())
        });
        drop(db);
        if let Ok(db) = Db::open_storage(Arc::new(MemStorage::from_bytes(storage.to_bytes())), opts)
        {
            walk(&db);
        }
    }
    if let Ok(dst) = Db::in_memory() {
        let _ = crate::salvage_storage(Arc::new(MemStorage::from_bytes(data.to_vec())), &dst);
    }
}

/// Treat `data` as a bbolt file: the hardened reader's diagnosis.
pub fn exercise_bolt(data: &[u8]) {
    let report = crate::bolt::check_bytes(data);
    let _ = report.to_string();
}
