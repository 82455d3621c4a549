//! Memory the engine holds on to after a transaction, read from /proc/self/status. This binary
//! holds a single test so that no other test allocates (or maps pages) concurrently.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

use deadbolt::{Db, Error};

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[test]
fn a_large_transaction_kept_its_freed_arena_resident_and_now_gives_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path().join("db")).expect("open");
    let before = status_kib("VmRSS:");
    // 200,000 entries in random order in one transaction: about 13,000 leaves in the arena.
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.put(&x.to_be_bytes(), &[0x5a; 150])?;
        }
        Ok::<_, Error>(())
    })
    .expect("load");
    let (after, peak) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
    let grew = peak.saturating_sub(before);
    assert!(grew > 32 << 10, "the arena took {grew} KiB at its peak");
    // Before, glibc kept the freed arena (pinned under allocations made during the commit):
    // the process stayed at its peak.
    let kept = after.saturating_sub(before);
    assert!(
        kept < grew / 4,
        "after the commit the process still holds {kept} of the {grew} KiB it grew by"
    );
    // The database is intact after the memory went back.
    let tx = db.begin_read().expect("read");
    let b = tx.bucket(b"b").expect("bucket").expect("exists");
    assert_eq!(b.iter().count(), 200_000);
}
