//! Where a point read's time goes from Go: the engine's `Bucket::get` alone, then the same
//! reads through the C ABI (handle checks, locks, the out-record), on the store of go/bench.sh
//! (100,000 entries, 24-byte random keys, 150-byte values). The Go benchmark adds cgo's call
//! cost on top. `cargo run --release -p deadbolt-capi --example pointread_cost`
use std::time::Instant;

use deadbolt_capi::*;

fn main() {
    let dir = std::env::temp_dir().join(format!("pointread-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db");
    // A small xorshift, seeded: the keys need only be random-looking.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = |buf: &mut [u8]| {
        for b in buf {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *b = s as u8;
        }
    };
    let mut keys = Vec::new();
    {
        let db = deadbolt::Db::open(&path).unwrap();
        db.update(|tx| {
            let b = tx.create_bucket(b"bench")?;
            for _ in 0..100_000 {
                let (mut k, mut v) = ([0u8; 24], [0u8; 150]);
                rnd(&mut k);
                rnd(&mut v);
                b.put(&k, &v)?;
                keys.push(k);
            }
            Ok::<_, deadbolt::Error>(())
        })
        .unwrap();
    }
    let n = 1_000_000usize;
    let order: Vec<usize> = (0..n).map(|i| (i * 7919 + 13) % keys.len()).collect();
    for round in 0..3 {
        let db = deadbolt::Db::open(&path).unwrap();
        let t = Instant::now();
        for chunk in order.chunks(1000) {
            let tx = db.begin_read().unwrap();
            let b = tx.bucket(b"bench").unwrap().unwrap();
            for &i in chunk {
                assert!(b.get(&keys[i]).unwrap().is_some());
            }
        }
        let engine = t.elapsed().as_nanos() as f64 / n as f64;
        drop(db);

        let p = path.to_str().unwrap().as_bytes();
        let mut h = 0u64;
        let mut e = DeadboltError {
            code: 0,
            message: std::ptr::null_mut(),
            message_len: 0,
        };
        // SAFETY (all calls): valid buffers and out-pointers; the error record is never filled
        // (every call succeeds: checked by the asserts).
        unsafe {
            assert_eq!(
                deadbolt_open(p.as_ptr(), p.len(), std::ptr::null(), &mut h, &mut e),
                0
            )
        };
        let mut out = DeadboltSlice {
            ptr: std::ptr::null(),
            len: 0,
            flags: 0,
        };
        let t = Instant::now();
        for chunk in order.chunks(1000) {
            let mut tx = 0u64;
            let mut b = 0u64;
            unsafe {
                assert_eq!(deadbolt_begin(h, 0, &mut tx, &mut e), 0);
                assert_eq!(
                    deadbolt_bucket(
                        tx,
                        DEADBOLT_ROOT,
                        b"bench".as_ptr(),
                        5,
                        DEADBOLT_BUCKET_OPEN,
                        &mut b,
                        &mut e
                    ),
                    0
                );
                for &i in chunk {
                    assert_eq!(
                        deadbolt_get(tx, b, keys[i].as_ptr(), 24, &mut out, &mut e),
                        0
                    );
                    assert!(!out.ptr.is_null());
                }
                assert_eq!(deadbolt_rollback(tx, &mut e), 0);
            }
        }
        let abi = t.elapsed().as_nanos() as f64 / n as f64;
        unsafe { assert_eq!(deadbolt_close(h, &mut e), 0) };
        println!("round {round}: engine Bucket::get {engine:.0} ns, through the C ABI {abi:.0} ns (+{:.0} ns)", abi - engine);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
