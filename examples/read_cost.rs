//! A fixed point-read workload for instruction counts, so a change to the read path can be
//! measured side by side (wall time on shared machines drifts several-fold; instructions do
//! not):
//!
//! ```sh
//! cargo build --release --example read_cost
//! valgrind --tool=callgrind --cache-sim=yes --toggle-collect='read_cost::phase_get' \
//!     target/release/examples/read_cost 200000 50000 [same]
//! ```
//!
//! With `same`, the gets run in the process that loaded the data (the benchmark table's case);
//! without it, after a reopen.
//!
//! Loads N entries (24-byte random keys, 150-byte values, 1,000 per commit) in `phase_load`
//! into a database file in a temporary directory (`no_sync`, so the count is the engine's own
//! work), reopens it so that reads start cold, then does M random point reads in `phase_get`.
//! Divide the callgrind totals by M (or by N, with `--toggle-collect='read_cost::phase_load'`).

use deadbolt::{Db, Options};

fn key(i: u64) -> [u8; 24] {
    // splitmix64: deterministic, well spread.
    let mut k = [0u8; 24];
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for c in k.chunks_mut(8) {
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        c.copy_from_slice(&x.to_be_bytes());
    }
    k
}

#[inline(never)]
fn phase_get(db: &Db, n: u64, m: u64) -> u64 {
    let tx = db.begin_read().expect("read tx");
    let b = tx.bucket(b"bench").expect("bucket").expect("exists");
    let mut found = 0;
    for j in 0..m {
        let i = j.wrapping_mul(0x2545_F491_4F6C_DD1D) % n;
        if b.get(&key(i)).expect("get").is_some() {
            found += 1;
        }
    }
    found
}

#[inline(never)]
fn phase_load(db: &Db, n: u64) {
    let value = [7u8; 150];
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        db.update(|tx| {
            let b = tx.create_bucket_if_not_exists(b"bench")?;
            for &i in chunk {
                b.put(&key(i), &value)?;
            }
            Ok::<_, deadbolt::Error>(())
        })
        .expect("load");
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let m: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let dir = std::env::temp_dir().join(format!("deadbolt-read-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cost.db");
    let opts = Options {
        confirm_after: None,
        no_sync: true,
        ..Options::default()
    };
    // `same`: read in the process that wrote (the benchmark table's case: pages this process
    // wrote need no first-read verification); otherwise reopen first (every page is verified
    // on its first read).
    let same = args.next().as_deref() == Some("same");
    let first = Db::open_with(&path, opts.clone()).expect("open");
    phase_load(&first, n);
    let db = if same {
        first
    } else {
        drop(first);
        Db::open_with(&path, opts).expect("reopen")
    };
    let found = phase_get(&db, n, m);
    assert_eq!(found, m, "every key is found");
    println!("{m} gets, {found} found");
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
