//! Long-lived readers (I11) and reads that fail (F8/F9 on reads).
//!
//! A reader lifetime opens an image, begins read transactions and keeps them open across
//! commits that free and reuse pages and across growth and `shrink_to_fit`, scanning every
//! open reader's whole snapshot at each `Check` step (and once more when the lifetime stops)
//! and comparing it with the model state at the reader's txid. Through the simulated disk's
//! shared views (`disk.rs`) a page reused under a live reader changes what it reads, and a
//! file shrunk under it reads as poison: either shows as wrong data or a detected corruption.
//!
//! The tier-1 reader sweep runs one schedule of reader steps over the `reader-churn` commits
//! from the final image of a fixed workload, crashes it after every op, checks images of each
//! crash state against the oracle, and runs a shorter reader lifetime on the recovered file
//! (readers opened after recovery). The view-fault sweep (called by the I/O-error sweep) fails
//! every `view` call of the same lifetime in turn (EIO, transient and persistent; one sector
//! zeroed), and makes it short at each page boundary of the file (at open) or at one
//! (re-views); then the file is reopened on a healthy disk and checked in full (I1: the fault
//! was transient).

use std::collections::HashSet;
use std::sync::Arc;

use super::report::Report;
use super::sweep::Sweep;
use crate::crash::{Mode, Window};
use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{Engine, EngineDb, EngineReader, ErrKind, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::oracle::{catch, check_open, History, Label, Strictness};
use crate::rng::{hash_bytes, Rng};

/// One step of a reader lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Begin a read transaction on the newest snapshot and keep it open.
    Begin,
    /// The next commit.
    Commit,
    /// `shrink_to_fit` (skipped by deadbolt while an older reader is open).
    Shrink,
    /// Scan every open reader and compare with the model at its txid (I11).
    Check,
    /// End the oldest open reader.
    DropOldest,
}

/// The tier-1 schedule: two readers held across four commits and two shrinks, both ended, the
/// file shrunk, a third reader held across a commit that may reuse the freed pages.
pub const SCHEDULE: &[Step] = {
    use Step::*;
    &[
        Begin, Commit, Begin, Commit, Shrink, Check, Commit, Commit, Shrink, Check, DropOldest,
        DropOldest, Shrink, Begin, Commit, Check, Shrink, Check,
    ]
};

/// The schedule after a recovery: a reader of the recovered state held across a commit and a
/// shrink.
pub const AFTER_RECOVERY: &[Step] = {
    use Step::*;
    &[Begin, Commit, Shrink, Check, DropOldest, Shrink]
};

/// Five commits in bucket `r` (which no fixed workload uses), valid from any state: fill it with
/// third-of-a-page values and an overflow value; rewrite some (the old pages are freed), delete
/// the rest and the overflow value (frees pages at the file's end); grow the file with a larger
/// overflow value; delete it and more (a free tail to shrink); one page-sized value (reuses
/// freed pages once no reader holds them).
pub fn churn(p: usize) -> Vec<Vec<Op>> {
    use crate::workload::val;
    let r = vec![b"r".to_vec()];
    let put = |k: &str, v: Vec<u8>| Op::Put(r.clone(), k.as_bytes().to_vec(), v);
    let del = |k: &str| Op::Delete(r.clone(), k.as_bytes().to_vec());
    let third = |t| val(t, p / 3);
    let over = |t, n: usize| val(t, n * p + p / 2);
    let mut c0 = vec![Op::CreateBucket(r.clone())];
    c0.extend((0..6).map(|i| put(&format!("a{i}"), third(200 + i))));
    c0.push(put("big", over(210, 3)));
    let mut c1: Vec<Op> = (0..3)
        .map(|i| put(&format!("a{i}"), third(220 + i)))
        .collect();
    c1.extend((3..6).map(|i| del(&format!("a{i}"))));
    c1.push(del("big"));
    let c2 = vec![put("big2", over(230, 5)), put("a6", val(231, 12))];
    let mut c3 = vec![del("big2")];
    c3.extend((0..3).map(|i| del(&format!("a{i}"))));
    let c4 = vec![put("a7", val(240, p - p / 8))];
    vec![c0, c1, c2, c3, c4]
}

/// The result of one reader lifetime.
pub struct ReaderLife {
    pub crash: CrashState,
    pub crashed: bool,
    pub hist: History,
    pub violations: Vec<String>,
    /// Reader scans compared with the model (I11).
    pub reader_checks: u64,
    pub ops: u64,
    /// `view` calls issued.
    pub views: u64,
    pub digest: u64,
    /// `shrink_to_fit` calls that truncated the file: (step index, the file's length before).
    pub shrinks: Vec<(usize, u64)>,
    /// Open fell back to an older commit under a silent read fault (allowed by `Detect`): the
    /// lifetime stopped there, and its images are checked for detection only.
    pub fell_back: bool,
}

struct Reader<'a> {
    r: Box<dyn EngineReader + 'a>,
    expect: Arc<State>,
    /// Silent read faults (zeroed or short views) before it began: its snapshot may be one.
    faulted: bool,
    /// Shrinks under live views before it began (a later one may have cut its snapshot).
    shrinks: u64,
    /// The file's length when it began: its view reaches at most this far.
    len: u64,
}

/// Open `image` on a disk with `plan`, run `steps` (commits from `next`), and check I11 on every
/// reader, I3/I6/I7/I8 on the rest as the live lifetimes do (`live.rs`). An open that saw a
/// silent read fault is checked against `hist` with `open_strict` (`DetectConfirmed` for a
/// cleanly closed file: no fall-back at all).
#[allow(clippy::too_many_arguments)]
pub fn reader_lifetime(
    engine: &dyn Engine,
    image: Vec<u8>,
    media: Media,
    opts: OpenOpts,
    plan: FaultPlan,
    hist: History,
    seed: u64,
    open_strict: Strictness,
    steps: &[Step],
    next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
) -> ReaderLife {
    let disk = Arc::new(SimDisk::new(image, media, plan, seed));
    let mut life = ReaderLife {
        crash: CrashState {
            durable: Vec::new(),
            pending: Vec::new(),
            current: Vec::new(),
            dir_synced: false,
            ops: 0,
        },
        crashed: false,
        hist,
        violations: Vec::new(),
        reader_checks: 0,
        ops: 0,
        views: 0,
        digest: 0,
        shrinks: Vec::new(),
        fell_back: false,
    };
    if let Some(db) = open(engine, &disk, &opts, open_strict, &mut life) {
        run_steps(&*db, &disk, opts.no_sync, steps, next, &mut life);
        if let Err(p) = catch(move || drop(db)) {
            life.violations
                .push(format!("I7: panic while closing: {p}"));
        }
    }
    life.crashed = disk.is_crashed();
    life.crash = disk.state_now();
    life.ops = disk.ops();
    life.views = disk.views();
    life.digest = disk.digest();
    life
}

/// Open, with the checks of `live.rs`; after a silent read fault the open state is checked
/// against the history (I7: a typed error or correct data; a fall-back ends the lifetime).
fn open(
    engine: &dyn Engine,
    disk: &Arc<SimDisk>,
    opts: &OpenOpts,
    strict: Strictness,
    life: &mut ReaderLife,
) -> Option<Box<dyn EngineDb>> {
    let db = match catch(|| engine.open(disk.clone(), opts)) {
        Err(p) => {
            life.violations.push(format!("I7: panic in open: {p}"));
            return None;
        }
        Ok(Err(e)) => {
            let faulted = disk.injected_errors() > 0 || disk.silent_read_faults() > 0;
            if !disk.is_crashed() && !faulted {
                life.violations
                    .push(format!("I6: open failed on a healthy disk: {e}"));
            } else if disk.silent_read_faults() > 0 && !e.is_detection() {
                life.violations.push(format!(
                    "I7: open after a zeroed or short read failed with {e}, not a typed detection"
                ));
            }
            return None;
        }
        Ok(Ok(db)) => db,
    };
    if disk.is_crashed() {
        drop(catch(move || drop(db)));
        return None;
    }
    if disk.injected_errors() > 0 {
        life.violations
            .push("I8: open returned Ok although an injected I/O error was returned to it".into());
    }
    if disk.silent_read_faults() > 0 {
        let v = check_open(&*db, &life.hist, strict);
        if let Some(m) = v.violation {
            life.violations
                .push(format!("after a zeroed or short read at open: {m}"));
            drop(catch(move || drop(db)));
            return None;
        }
        if v.matched != Some(life.hist.entries.len() - 1) {
            life.fell_back = true;
            drop(catch(move || drop(db)));
            return None;
        }
    }
    Some(db)
}

fn run_steps(
    db: &dyn EngineDb,
    disk: &SimDisk,
    no_sync: bool,
    steps: &[Step],
    next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
    life: &mut ReaderLife,
) {
    let ack = if no_sync {
        Label::NoSyncAck
    } else {
        Label::DurableAck
    };
    let mut readers: Vec<Reader<'_>> = Vec::new();
    let mut commits = 0usize;
    for (i, &step) in steps.iter().enumerate() {
        let go_on = match step {
            Step::Begin => match catch(|| db.begin_read()) {
                Err(p) => {
                    life.violations
                        .push(format!("I7: panic in begin_read: {p}"));
                    false
                }
                Ok(Ok(r)) => {
                    readers.push(Reader {
                        r,
                        expect: life.hist.last_state().clone(),
                        faulted: disk.silent_read_faults() > 0,
                        shrinks: disk.shrinks_under_views(),
                        len: disk.current_len(),
                    });
                    true
                }
                Ok(Err(e)) => {
                    life.violations.push(format!("I11: begin_read failed: {e}"));
                    false
                }
            },
            Step::Commit => {
                let Some(ops) = next(life.hist.last_state(), commits) else {
                    continue;
                };
                commits += 1;
                commit(db, disk, &ops, commits, ack, life)
            }
            Step::Shrink => {
                let errs = disk.injected_errors();
                let before = disk.current_len();
                match catch(|| db.shrink_to_fit()) {
                    Err(p) => {
                        life.violations
                            .push(format!("I7: panic in shrink_to_fit: {p}"));
                        false
                    }
                    Ok(_) if disk.is_crashed() => false,
                    Ok(Ok(done)) => {
                        if done {
                            life.shrinks.push((i, before));
                        }
                        true
                    }
                    Ok(Err(e)) => {
                        if disk.injected_errors() == errs && disk.silent_read_faults() == 0 {
                            life.violations
                                .push(format!("I6: shrink_to_fit failed on a healthy disk: {e}"));
                        }
                        false
                    }
                }
            }
            Step::Check => {
                check_readers(&readers, disk, &format!("step {i}"), life);
                true
            }
            Step::DropOldest => {
                if !readers.is_empty() {
                    let r = readers.remove(0);
                    if let Err(p) = catch(move || drop(r)) {
                        life.violations
                            .push(format!("I7: panic while ending a reader: {p}"));
                    }
                }
                true
            }
        };
        if !go_on {
            break;
        }
    }
    // Once more before the lifetime's crash (or end): the views are still mapped.
    check_readers(&readers, disk, "end of lifetime", life);
    for r in readers {
        if let Err(p) = catch(move || drop(r)) {
            life.violations
                .push(format!("I7: panic while ending a reader: {p}"));
        }
    }
}

/// One commit, labelled and checked as in `live.rs`. Returns whether the lifetime goes on.
fn commit(
    db: &dyn EngineDb,
    disk: &SimDisk,
    ops: &[Op],
    n: usize,
    ack: Label,
    life: &mut ReaderLife,
) -> bool {
    let mut after = (**life.hist.last_state()).clone();
    after.apply_all(ops);
    let errs = disk.injected_errors();
    let r = catch(|| db.commit(ops));
    let injected = disk.injected_errors() > errs;
    match r {
        Err(p) => {
            life.violations
                .push(format!("I7: panic in commit #{n}: {p}"));
            life.hist.push(after, Label::InFlight, None);
            false
        }
        Ok(_) if disk.is_crashed() => {
            life.hist.push(after, Label::InFlight, None);
            false
        }
        Ok(Ok(txid)) => {
            if injected {
                life.violations.push(format!(
                    "I8/I3: commit #{n} acknowledged although an injected I/O error was returned to the engine during it"
                ));
                life.hist.push(after, Label::Failed, Some(txid));
                return false;
            }
            life.hist.push(after, ack, Some(txid));
            true
        }
        Ok(Err(e)) => {
            if !injected && disk.silent_read_faults() == 0 {
                life.violations
                    .push(format!("I6: commit #{n} failed on a healthy disk: {e}"));
            } else if !injected && !e.is_detection() {
                life.violations.push(format!(
                    "I7: commit #{n} after a zeroed or short read failed with {e}, not a typed detection"
                ));
            }
            life.hist.push(after, Label::Failed, None);
            if injected {
                match catch(|| db.write_refused()) {
                    Ok(Some(e)) if e.kind == ErrKind::Poisoned => {}
                    Ok(other) => life.violations.push(format!(
                        "I3: after a failed commit I/O begin_write gave {other:?}, not Poisoned"
                    )),
                    Err(p) => life.violations.push(format!(
                        "I7: panic in begin_write after a failed commit: {p}"
                    )),
                }
            }
            false
        }
    }
}

/// I11: every open reader's scan equals the model state it began at. A reader that began on a
/// snapshot read after a silent read fault may fail with a typed detection instead (I7).
fn check_readers(readers: &[Reader<'_>], disk: &SimDisk, when: &str, life: &mut ReaderLife) {
    for (i, rd) in readers.iter().enumerate() {
        life.reader_checks += 1;
        let txid = catch(|| rd.r.txid()).unwrap_or(u64::MAX);
        let cut = disk.cut_below(rd.shrinks, rd.len);
        let sigbus = if cut {
            " (reader read past a truncated end (SIGBUS): the file was shrunk under it)"
        } else {
            ""
        };
        let bad = match catch(|| rd.r.scan()) {
            Err(p) => Some(format!("I7: panic while scanning: {p}")),
            Ok(Ok(st)) if st == *rd.expect => None,
            Ok(Ok(st)) => Some(format!("I11: wrong data{sigbus}: {}", rd.expect.diff(&st))),
            Ok(Err(e)) if rd.faulted && e.is_detection() => None,
            Ok(Err(e)) => Some(format!("I11: the scan failed{sigbus}: {e}")),
        };
        if let Some(m) = bad {
            life.violations
                .push(format!("{when}: open reader {i} (txid {txid}): {m}"));
        }
    }
}

/// The tier-1 reader sweep over the final image of fixed workload `workload` (see the module
/// comment).
pub fn reader_sweep(
    engine: &dyn Engine,
    workload: usize,
    page_size: usize,
    media: Media,
    seed: u64,
) -> Report {
    let (mut sw, clean) = Sweep::start(engine, workload, page_size, media, seed);
    let commits = churn(page_size);
    let mut rng = Rng::new(seed ^ 0x4ead);
    let image = clean.crash.current.clone();
    let run = |sw: &Sweep, plan: FaultPlan, seed: u64| {
        reader_lifetime(
            sw.engine,
            image.clone(),
            sw.media,
            sw.opts,
            plan,
            clean.hist.clone(),
            seed,
            Strictness::DetectConfirmed,
            SCHEDULE,
            &mut |_, i| commits.get(i).cloned(),
        )
    };
    let base = run(&sw, FaultPlan::default(), seed);
    let ctx = format!(
        "readers workload={} page={page_size} sector={} seed={seed:#x}",
        sw.workload, media.sector
    );
    tally(&mut sw, &base, &format!("[{ctx}] clean"));
    for k in 0..=base.ops {
        let plan = FaultPlan {
            crash_after: Some(k),
            ..FaultPlan::default()
        };
        let lt = run(&sw, plan, rng.next_u64());
        let desc = format!("[{ctx}] crash after op {k}/{}", base.ops);
        tally(&mut sw, &lt, &desc);
        sw.rep.crash_points += 1;
        check_crash(&mut sw, &lt, &desc, &mut rng, true);
    }
    sw.finish()
}

/// Count a lifetime's reader checks and record its violations under `desc`.
fn tally(sw: &mut Sweep, lt: &ReaderLife, desc: &str) {
    sw.note(lt.digest);
    sw.note(lt.reader_checks);
    sw.rep.reader_checks += lt.reader_checks;
    for v in &lt.violations {
        sw.rep.violations.push(format!("{desc}: {v}"));
    }
}

/// Images of each mode of the lifetime's end state, checked against its history on a healthy
/// disk; with `after`, a reader lifetime on the first recovered file (readers after recovery).
fn check_crash(sw: &mut Sweep, lt: &ReaderLife, desc: &str, rng: &mut Rng, after: bool) {
    let w = Window::new(&lt.crash, sw.media);
    let mut seen = HashSet::new();
    let mut recovered_once = !after;
    for mode in Mode::ALL {
        let img = w.random(mode, rng);
        if !seen.insert(hash_bytes(&img)) {
            continue;
        }
        let strict = if sw.opts.no_sync && mode != Mode::Process {
            Strictness::DetectAnyCommit
        } else if lt.fell_back {
            Strictness::Detect
        } else {
            Strictness::Full
        };
        sw.note(hash_bytes(&img));
        let v = sw.verify_image(img, &lt.hist, strict, rng.next_u64());
        sw.note(v.matched.unwrap_or(usize::MAX) as u64);
        if v.detected {
            sw.rep.detected += 1;
        }
        if let Some(m) = v.violation {
            sw.rep.violations.push(format!("{desc} ({mode}): {m}"));
            continue;
        }
        if recovered_once {
            continue;
        }
        if let (Some(file), Some(hist)) = (v.after, v.history) {
            recovered_once = true;
            let commits = churn(sw.opts.page_size);
            let again = reader_lifetime(
                sw.engine,
                file,
                sw.media,
                sw.opts,
                FaultPlan::default(),
                hist,
                rng.next_u64(),
                Strictness::Detect,
                AFTER_RECOVERY,
                &mut |st, i| {
                    // Any churn commit valid for the recovered state: the first when bucket
                    // `r` is absent, the last (a put) otherwise.
                    (i == 0).then(|| {
                        if st.subs.contains_key(&b"r"[..]) {
                            commits[4].clone()
                        } else {
                            commits[0].clone()
                        }
                    })
                },
            );
            tally(sw, &again, &format!("{desc} ({mode}), after recovery"));
        }
    }
}

/// The view-fault sweep over the reader lifetime of the final image of the sweep's workload:
/// every `view` call failing (transient, persistent) or reading one sector as zeros in turn,
/// the open's view short at every page boundary, each later view short at one; then the file
/// is reopened on a healthy disk and checked in full.
pub(super) fn view_fault_sweep(sw: &mut Sweep, image: &[u8], hist: &History, rng: &mut Rng) {
    let page = sw.opts.page_size as u64;
    let views =
        view_fault_lifetime(sw.engine, sw, image, hist, FaultPlan::default(), sw.seed).views;
    let sectors = (image.len() / sw.media.sector).max(1) as u64;
    let mut plans = Vec::new();
    for n in 1..=views {
        plans.push(FaultPlan {
            fail_view: Some((n, false)),
            ..FaultPlan::default()
        });
        plans.push(FaultPlan {
            fail_view: Some((n, true)),
            ..FaultPlan::default()
        });
        plans.push(FaultPlan {
            zero_view: Some((n, rng.below(sectors))),
            ..FaultPlan::default()
        });
        if n > 1 {
            plans.push(FaultPlan {
                short_view: Some((n, rng.below(image.len() as u64 / page + 1) * page)),
                ..FaultPlan::default()
            });
        }
    }
    for m in 0..image.len() as u64 / page {
        plans.push(FaultPlan {
            short_view: Some((1, m * page)),
            ..FaultPlan::default()
        });
    }
    for plan in plans {
        // A sector zero-filled in a re-view during operation hits pages the engine has
        // verified already and trusts (deadbolt verifies a page once per open): only an engine
        // verifying every access can detect it (the default's wrong data is the test
        // `zeroed_sector_during_operation_is_detected_by_default`, an engine finding).
        let engine = match plan.zero_view {
            Some((n, _)) if n > 1 => sw.engine.verifying_every_access().unwrap_or(sw.engine),
            _ => sw.engine,
        };
        let desc = format!(
            "[view fault workload={} page={} sector={} engine={} plan={plan:?} seed={:#x}]",
            sw.workload,
            sw.opts.page_size,
            sw.media.sector,
            engine.name(),
            sw.seed
        );
        let lt = view_fault_lifetime(engine, sw, image, hist, plan, rng.next_u64());
        sw.rep.read_faults += 1;
        sw.rep.crash_points += 1;
        tally(sw, &lt, &desc);
        check_crash(sw, &lt, &desc, rng, false);
    }
}

/// The tier-1 reader lifetime of `image` (a cleanly closed file with history `hist`) on
/// `engine` under `plan`.
pub(super) fn view_fault_lifetime(
    engine: &dyn Engine,
    sw: &Sweep,
    image: &[u8],
    hist: &History,
    plan: FaultPlan,
    seed: u64,
) -> ReaderLife {
    let commits = churn(sw.opts.page_size);
    reader_lifetime(
        engine,
        image.to_vec(),
        sw.media,
        sw.opts,
        plan,
        hist.clone(),
        seed,
        Strictness::DetectConfirmed,
        SCHEDULE,
        &mut |_, i| commits.get(i).cloned(),
    )
}
