//! deadbolt's page usage after the benchmark's bulk load and removals:
//! `cargo run --release -p deadbolt-bench --example layout -- 1000000`.
use deadbolt_bench::{key, value, Res};

fn main() -> Res<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let tmp = tempfile::tempdir()?;
    let db = deadbolt::Db::open(tmp.path().join("x.db"))?;
    let report = |what: &str, db: &deadbolt::Db| -> Res<()> {
        let st = db.stats();
        let bs = db.view(|tx| tx.bucket(b"t")?.map(|b| b.stats()).transpose())?;
        let c = db.check()?;
        println!(
            "{what}: file {} MiB, high water {} pages, free {} pending {}, reachable {} pages, depth {}",
            st.file_size >> 20, st.high_water, st.free_pages, st.pending_pages, c.pages_reachable, st.depth
        );
        if let Some(b) = bs {
            println!(
                "  bucket: {} keys, {} branch + {} leaf + {} overflow pages, {} of {} bytes used ({:.0}%)",
                b.keys, b.branch_pages, b.leaf_pages, b.overflow_pages, b.bytes_used, b.bytes_allocated,
                100.0 * b.bytes_used as f64 / b.bytes_allocated.max(1) as f64
            );
        }
        Ok(())
    };
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"t")?;
        for i in 0..n {
            b.put(&key(i), &value(i))?;
        }
        Ok::<_, deadbolt::Error>(())
    })?;
    report("after bulk load", &db)?;
    db.update(|tx| {
        let b = tx.create_bucket_if_not_exists(b"t")?;
        for i in 0..n / 2 {
            b.delete(&key(i))?;
        }
        Ok::<_, deadbolt::Error>(())
    })?;
    report("after removing half", &db)?;
    Ok(())
}
