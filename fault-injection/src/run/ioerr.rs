//! The I/O-error sweep (F7, F8): each write, sync, set_len and create of a fixed workload fails
//! in turn, and the disk runs out of space at every size the file passes through.

use std::collections::HashSet;
use std::sync::Arc;

use super::live::live;
use super::report::Report;
use crate::crash::{Mode, Window};
use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{Engine, ErrKind, OpenOpts};
use crate::image::Media;
use crate::oracle::{catch, verify, History, Strictness};
use crate::rng::{hash_bytes, Digest, Rng};

/// The I/O-error sweep (SQLite's ioerr loop): fail the n-th write, set_len, sync (F7, F8) and
/// create (before its rename and in its directory sync), and run out of space at every size the
/// file passes through; check that the error reaches the caller (I8), that the handle is
/// poisoned (I3), and that every crash image afterwards recovers to an allowed state.
pub fn ioerr_sweep(
    engine: &dyn Engine,
    workload: usize,
    page_size: usize,
    media: Media,
    seed: u64,
) -> Report {
    let mut rep = Report::default();
    let mut dig = Digest::default();
    let opts = OpenOpts {
        page_size,
        no_sync: false,
    };
    let wl = crate::workload::fixed(page_size).swap_remove(workload);
    // A clean run to count the calls.
    let clean = live(
        engine,
        Vec::new(),
        media,
        opts,
        FaultPlan::default(),
        History::new(),
        seed,
        &mut |_, i| wl.commits.get(i).cloned(),
    );
    rep.violations.extend(clean.violations);
    let (writes, set_lens, syncs) = clean.counts;
    let creates = clean.creates;
    let max_len = clean.crash.current.len() as u64;
    let mut plans = Vec::new();
    for n in 1..=writes {
        plans.push(FaultPlan {
            fail_write: Some((n, false)),
            ..FaultPlan::default()
        });
        plans.push(FaultPlan {
            fail_write: Some((n, true)),
            ..FaultPlan::default()
        });
    }
    for n in 1..=syncs {
        plans.push(FaultPlan {
            fail_sync: Some(n),
            ..FaultPlan::default()
        });
    }
    for n in 1..=set_lens {
        plans.push(FaultPlan {
            fail_set_len: Some((n, false)),
            ..FaultPlan::default()
        });
    }
    for n in 1..=creates {
        for late in [false, true] {
            plans.push(FaultPlan {
                fail_create: Some((n, late)),
                ..FaultPlan::default()
            });
        }
    }
    let step = (page_size as u64).max(1);
    let mut cap = 0;
    while cap < max_len {
        plans.push(FaultPlan {
            capacity: Some(cap),
            ..FaultPlan::default()
        });
        cap += step;
    }
    let mut rng = Rng::new(seed ^ 0x10e5);
    for plan in plans {
        let desc = format!(
            "ioerr workload={} page={page_size} sector={} plan={plan:?} seed={seed:#x}",
            wl.name, media.sector
        );
        let lt = live(
            engine,
            Vec::new(),
            media,
            opts,
            plan,
            History::new(),
            rng.next_u64(),
            &mut |_, i| wl.commits.get(i).cloned(),
        );
        dig.u64(lt.digest);
        for v in &lt.violations {
            rep.violations.push(format!("[{desc}] {v}"));
        }
        rep.crash_points += 1;
        // The machine goes down after the failure: check each crash mode.
        let w = Window::new(&lt.crash, media);
        let mut seen = HashSet::new();
        for mode in Mode::ALL {
            for _ in 0..if mode == Mode::Process { 1 } else { 3 } {
                let img = w.random(mode, &mut rng);
                if !seen.insert(hash_bytes(&img)) {
                    continue;
                }
                rep.images += 1;
                let v = verify(
                    engine,
                    img,
                    media,
                    opts,
                    &lt.hist,
                    Strictness::Full,
                    None,
                    None,
                    rng.next_u64(),
                );
                dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
                if let Some(m) = v.violation {
                    rep.violations
                        .push(format!("[{desc}] after the error, {mode} crash: {m}"));
                }
            }
        }
    }
    // Read errors during open of the finished database (F8 reads): a typed error or the
    // right data.
    for n in 1..=4 {
        let plan = FaultPlan {
            fail_view: Some((n, n % 2 == 0)),
            ..FaultPlan::default()
        };
        let disk = Arc::new(SimDisk::new(clean.crash.current.clone(), media, plan, seed));
        rep.images += 1;
        match catch(|| engine.open(disk.clone(), &opts)) {
            Err(p) => rep
                .violations
                .push(format!("[read error {n}] I7: panic in open: {p}")),
            Ok(Err(e)) if e.kind == ErrKind::Io => {}
            Ok(Err(e)) => rep.violations.push(format!(
                "[read error {n}] open failed with {e}, expected an I/O error"
            )),
            Ok(Ok(db)) => {
                let v = crate::oracle::check_open(&*db, &clean.hist, Strictness::Detect);
                if let Some(m) = v.violation {
                    rep.violations.push(format!("[read error {n}] {m}"));
                }
                drop(catch(move || drop(db)));
            }
        }
    }
    rep.digest = dig.finish();
    rep
}
