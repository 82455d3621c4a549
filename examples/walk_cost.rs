//! A fixed walk of a containerd-like metadata store, for instruction counts (see
//! examples/read_cost.rs for the method):
//!
//! ```sh
//! cargo build --release --example walk_cost
//! valgrind --tool=callgrind --toggle-collect='walk_cost::phase_walk' target/release/examples/walk_cost
//! ```
//!
//! 5 namespaces x 2,000 object buckets, each with 4 small keys and a nested `labels` bucket of
//! 2 keys (so the objects have pages and the labels are inline), written in commits of 100
//! objects, reopened, then walked once in `phase_walk`: every bucket, every key.

use deadbolt::{Bucket, Db, Error, Options};

/// One cursor pass per bucket, as bbolt's `ForEach` with `b.Bucket(k)` for nested buckets.
fn walk(b: &Bucket<'_>) -> Result<u64, Error> {
    let mut n = 0;
    let mut c = b.cursor();
    let mut at = c.first()?;
    while let Some(e) = at {
        n += e.key.len() as u64;
        match &e.value {
            Some(v) => n += v.len() as u64,
            None => n += walk(&c.open_bucket(&e.key)?)?,
        }
        at = c.next()?;
    }
    Ok(n)
}

#[inline(never)]
fn phase_walk(db: &Db) -> u64 {
    db.view(|tx| {
        let mut n = 0;
        for name in tx.buckets() {
            n += walk(&tx.bucket(&name?)?.ok_or(Error::BucketNotFound)?)?;
        }
        Ok::<_, Error>(n)
    })
    .expect("walk")
}

fn main() {
    let dir = std::env::temp_dir().join(format!("deadbolt-walk-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("walk.db");
    let opts = Options {
        confirm_after: None,
        no_sync: true,
        ..Options::default()
    };
    {
        let db = Db::open_with(&path, opts.clone()).expect("open");
        for batch in 0..100u32 {
            db.update(|tx| {
                for j in 0..100u32 {
                    let i = batch * 100 + j;
                    let ns = tx.create_bucket_if_not_exists(format!("ns-{}", i % 5).as_bytes())?;
                    let o = ns.create_bucket(format!("object-{i:08}").as_bytes())?;
                    for k in 0..4u32 {
                        o.put(
                            format!("field-{k}").as_bytes(),
                            format!("value {i} {k}").as_bytes(),
                        )?;
                    }
                    let l = o.create_bucket(b"labels")?;
                    l.put(b"app", b"web")?;
                    l.put(b"tier", b"frontend")?;
                }
                Ok::<_, Error>(())
            })
            .expect("load");
        }
    }
    let db = Db::open_with(&path, opts).expect("reopen");
    let n = phase_walk(&db);
    println!(
        "walked {n} bytes; {} pages verified",
        db.stats().pages_verified
    );
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
