//! Flat memory and bounded work on damaged bbolt files, measured with a counting global
//! allocator. This binary holds a single test so that no other test allocates concurrently.

mod bolt_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bolt_common::*;
use deadbolt::bolt::{self, BoltFile, ImportOptions, Walker};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), SeqCst) + layout.size();
            PEAK.fetch_max(now, SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded to the system allocator with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), SeqCst);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Run `f`, returning its result, the peak heap growth above the starting point, and the time.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let base = CURRENT.load(SeqCst);
    PEAK.store(base, SeqCst);
    let t = Instant::now();
    let out = f();
    let dt = t.elapsed();
    (out, PEAK.load(SeqCst).saturating_sub(base), dt)
}

const MIB: usize = 1 << 20;
/// The limit asserted for diagnosing a damaged file; the real figure is printed and is far
/// below (tens of KiB).
const CHECK_LIMIT: usize = 64 * MIB;
/// Generous wall-clock limit: never the real expectation (milliseconds), only a hang guard.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[test]
fn damaged_files_are_diagnosed_with_flat_memory_and_bounded_work() {
    for name in CORRUPT {
        let path = db_path(name);
        let (r, peak, dt) = measure(|| bolt::check_file(&path).unwrap());
        eprintln!(
            "check {name}: verdict {:?}, {} problems, {} pages loaded, {} steps, peak heap {} KiB, {:?}",
            r.verdict(),
            r.problems.len(),
            r.pages_loaded(),
            r.walk.steps,
            peak / 1024,
            dt
        );
        assert!(peak < CHECK_LIMIT, "{name}: peak {peak}");
        assert!(dt < TIME_LIMIT, "{name}: {dt:?}");
        assert!(r.pages_loaded() <= r.high_water_pgid.max(2));
        assert!(!r.is_healthy(), "{name}");

        // The strict walk stops at the first problem; the salvage walk finishes the file.
        let bytes = read_db(name);
        let ((), peak, dt) = measure(|| {
            let out = BoltFile::open_outcome(&bytes, true);
            if let Some(file) = out.file {
                let mut w = Walker::new(file, true);
                let mut events = 0u64;
                while let Some(_ev) = w.next_event().unwrap() {
                    events += 1;
                    assert!(events <= 2 * 5000 + 10, "{name}: walk does not end");
                }
                assert!(
                    w.stats().steps <= 1_000_000,
                    "{name}: {} steps",
                    w.stats().steps
                );
            }
        });
        eprintln!("salvage walk {name}: peak heap {} KiB, {dt:?}", peak / 1024);
        assert!(peak < CHECK_LIMIT && dt < TIME_LIMIT, "{name}");
    }

    // The largest healthy file: checking it costs bitmaps of one bit per page.
    let (r, peak, dt) = measure(|| bolt::check_file(&db_path("d_200k_keys")).unwrap());
    eprintln!("check d_200k_keys: peak heap {} KiB, {dt:?}", peak / 1024);
    assert!(r.is_healthy() && peak < MIB);

    // Import streams: peak memory is bounded by the transaction size, not the file
    // (d_200k_keys holds 23 MB of keys and values).
    let dir = tempfile::tempdir().unwrap();
    let db = deadbolt::Db::open(dir.path().join("d.deadbolt")).unwrap();
    let opts = ImportOptions {
        max_tx_bytes: 2 * MIB,
        ..ImportOptions::default()
    };
    let (r, peak, dt) =
        measure(|| bolt::import_file(&db_path("d_200k_keys"), &db, &opts, &mut |_, _| {}).unwrap());
    eprintln!(
        "import d_200k_keys: {} pairs in {} transactions, peak heap {} KiB, {dt:?}",
        r.kv_pairs,
        r.transactions,
        peak / 1024
    );
    assert_eq!(r.kv_pairs, 200_000);
    assert!(peak < 64 * MIB, "import peak {peak}");

    // Salvage import of the seed-bug file: orphan recovery included, memory stays flat.
    let db = deadbolt::Db::open(dir.path().join("s.deadbolt")).unwrap();
    let opts = ImportOptions {
        salvage: true,
        ..ImportOptions::default()
    };
    let (r, peak, dt) =
        measure(|| bolt::import_file(&db_path(CORRUPT[0]), &db, &opts, &mut |_, _| {}).unwrap());
    eprintln!(
        "salvage import {}: {} pairs, peak heap {} KiB, {dt:?}",
        CORRUPT[0],
        r.kv_pairs,
        peak / 1024
    );
    assert_eq!(r.kv_pairs, 5000);
    assert!(peak < 64 * MIB && dt < TIME_LIMIT);
}
