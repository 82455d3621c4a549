//! The I/O-error sweep (F7, F8): each write, sync, set_len and create of a fixed workload fails
//! in turn, and the disk runs out of space at every size the file passes through; then reads
//! fail during open, and every `view` of a reader lifetime fails, reads a sector as zeros or
//! comes back short in turn (`readers.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use super::live::Lifetime;
use super::report::Report;
use super::sweep::Sweep;
use crate::crash::{Mode, Window};
use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{Engine, ErrKind};
use crate::image::Media;
use crate::oracle::{catch, check_open, Strictness};
use crate::rng::{hash_bytes, Rng};

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
    // The clean run counts the calls the plans fail in turn.
    let (mut sw, clean) = Sweep::start(engine, workload, page_size, media, seed);
    let mut rng = Rng::new(seed ^ 0x10e5);
    for plan in fault_plans(&clean, page_size) {
        failed_call(&mut sw, plan, &mut rng);
    }
    read_errors_at_open(&mut sw, &clean);
    // Reads that fail during open and during normal operation (re-views after growth and
    // commits), with long-lived readers open.
    super::readers::view_fault_sweep(&mut sw, &clean.crash.current, &clean.hist, &mut rng);
    sw.finish()
}

/// One plan per call of the clean run that can fail (writes transient and persistent, syncs,
/// set_lens, creates before and after their rename), then a disk full at every page boundary
/// below the final size.
fn fault_plans(clean: &Lifetime, page_size: usize) -> Vec<FaultPlan> {
    let (writes, set_lens, syncs) = clean.counts;
    let mut plans = Vec::new();
    for n in 1..=writes {
        for persistent in [false, true] {
            plans.push(FaultPlan {
                fail_write: Some((n, persistent)),
                ..FaultPlan::default()
            });
        }
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
    for n in 1..=clean.creates {
        for late in [false, true] {
            plans.push(FaultPlan {
                fail_create: Some((n, late)),
                ..FaultPlan::default()
            });
        }
    }
    let max_len = clean.crash.current.len() as u64;
    let step = (page_size as u64).max(1);
    let mut cap = 0;
    while cap < max_len {
        plans.push(FaultPlan {
            capacity: Some(cap),
            ..FaultPlan::default()
        });
        cap += step;
    }
    plans
}

/// The workload under `plan` (the live run checks I3 and I8), then crash images of every mode
/// of the state it left: the machine goes down after the failure.
fn failed_call(sw: &mut Sweep, plan: FaultPlan, rng: &mut Rng) {
    let desc = format!(
        "ioerr workload={} page={} sector={} plan={plan:?} seed={:#x}",
        sw.workload, sw.opts.page_size, sw.media.sector, sw.seed
    );
    let lt = sw.faulted(plan, rng.next_u64(), &desc);
    let w = Window::new(&lt.crash, sw.media);
    let mut seen = HashSet::new();
    for mode in Mode::ALL {
        for _ in 0..if mode == Mode::Process { 1 } else { 3 } {
            let img = w.random(mode, rng);
            if !seen.insert(hash_bytes(&img)) {
                continue;
            }
            if let Some(m) = sw.check(img, &lt.hist, Strictness::Full, rng.next_u64()) {
                sw.rep
                    .violations
                    .push(format!("[{desc}] after the error, {mode} crash: {m}"));
            }
        }
    }
}

/// Read errors during open of the finished database (F8 reads): a typed error or the right
/// data.
fn read_errors_at_open(sw: &mut Sweep, clean: &Lifetime) {
    for n in 1..=4 {
        let plan = FaultPlan {
            fail_view: Some((n, n % 2 == 0)),
            ..FaultPlan::default()
        };
        let disk = Arc::new(SimDisk::new(
            clean.crash.current.clone(),
            sw.media,
            plan,
            sw.seed,
        ));
        sw.rep.images += 1;
        let violation = match catch(|| sw.engine.open(disk.clone(), &sw.opts)) {
            Err(p) => Some(format!("I7: panic in open: {p}")),
            Ok(Err(e)) if e.kind == ErrKind::Io => None,
            Ok(Err(e)) => Some(format!("open failed with {e}, expected an I/O error")),
            Ok(Ok(db)) => {
                let v = check_open(&*db, &clean.hist, Strictness::Detect);
                drop(catch(move || drop(db)));
                v.violation
            }
        };
        if let Some(m) = violation {
            sw.rep.violations.push(format!("[read error {n}] {m}"));
        }
    }
}
