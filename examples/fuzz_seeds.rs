//! Write the seed corpus for the `open_damaged` fuzz target: small valid databases of several
//! shapes (nested buckets, overflow values, several levels, page sizes 1 KiB and 4 KiB, a churned
//! free list). `cargo run --example fuzz_seeds [DIR]`
use std::sync::Arc;

use deadbolt::{Db, Error, MemStorage, Options};

fn image(page: usize, f: impl Fn(&Db) -> Result<(), Error>) -> Result<Vec<u8>, Error> {
    let s = Arc::new(MemStorage::new());
    let db = Db::open_storage(
        s.clone(),
        Options {
            page_size: page,
            ..Options::default()
        },
    )?;
    f(&db)?;
    drop(db);
    Ok(s.to_bytes())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus/open_damaged".into());
    std::fs::create_dir_all(&dir)?;
    let seeds = [
        ("empty", image(1024, |_| Ok(()))?),
        (
            "nested",
            image(1024, |db| {
                db.update(|tx| {
                    let b = tx.create_bucket(b"a")?;
                    b.put(b"k", b"v")?;
                    b.create_bucket(b"n")?
                        .create_bucket(b"m")?
                        .put(b"x", b"y")?;
                    b.set_sequence(5)
                })
            })?,
        ),
        (
            "overflow",
            image(1024, |db| {
                db.update(|tx| {
                    let b = tx.create_bucket(b"big")?;
                    b.put(b"one", &[7u8; 3000])?;
                    b.put(b"two", &[8u8; 100])
                })
            })?,
        ),
        (
            "levels",
            image(1024, |db| {
                db.update(|tx| {
                    let b = tx.create_bucket(b"many")?;
                    for i in 0..300u32 {
                        b.put(format!("k{i:04}").as_bytes(), b"value")?;
                    }
                    Ok(())
                })
            })?,
        ),
        (
            "churn4k",
            image(4096, |db| {
                for r in 0..6u8 {
                    db.update(|tx| {
                        let b = tx.create_bucket_if_not_exists(b"c")?;
                        for i in 0..60u8 {
                            if (i + r) % 3 == 0 {
                                b.delete(&[i])?;
                            } else {
                                b.put(&[i], &[r; 30])?;
                            }
                        }
                        Ok::<_, Error>(())
                    })?;
                }
                Ok(())
            })?,
        ),
    ];
    for (name, img) in seeds {
        std::fs::write(format!("{dir}/{name}.db"), img)?;
    }
    println!("wrote seeds to {dir}");
    Ok(())
}
