//! Path coverage in tier 1 (issue 13): the path workload with maintenance calls on a 1 KiB
//! page database, crashed at a stride of its ops with the protocol monitor on every lifetime;
//! and concurrent `Db::batch` callers under injected write/sync failures with a per-caller
//! oracle. Both return what they covered, and the tests fail on a path that never ran.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::live::{live_with, Lifetime};
use super::report::Report;
use crate::coverage::{Coverage, PathId};
use crate::crash::{Mode, Window};
use crate::disk::{FaultPlan, LogOp, OpResult, SimDisk};
use crate::engine::{BatchCall, Engine, ErrKind, Maint, OpenOpts};
use crate::image::Media;
use crate::model::{Op, State};
use crate::oracle::{catch, verify, Strictness, EVERY_OP_ON_ROLLBACK};
use crate::rng::{hash_bytes, mix, Digest, Rng};
use crate::workload::{paths_commit, val};

/// Commits of the path workload's lifetime.
pub const PATH_COMMITS: usize = 40;

/// The maintenance call after commit `i` (from 1) of the path workload.
fn paths_maint(i: usize) -> Option<Maint> {
    match i {
        20 => Some(Maint::Backup),
        30 => Some(Maint::CompactInto),
        _ if i.is_multiple_of(11) => Some(Maint::ShrinkToFit),
        _ if i.is_multiple_of(4) || i > 32 => Some(Maint::CompactStep(if i > 32 { 64 } else { 4 })),
        _ => None,
    }
}

/// One lifetime of the path workload from an empty file, crashed after op `crash_after`.
fn paths_lifetime(
    engine: &dyn Engine,
    seed: u64,
    media: Media,
    crash_after: Option<u64>,
) -> Lifetime {
    let page = 1024;
    let opts = OpenOpts {
        page_size: page,
        no_sync: false,
    };
    let plan = FaultPlan {
        crash_after,
        ..FaultPlan::default()
    };
    live_with(
        engine,
        Vec::new(),
        media,
        opts,
        plan,
        crate::oracle::History::new(),
        seed,
        &mut |st, i| {
            (i < PATH_COMMITS)
                .then(|| paths_commit(&mut Rng::new(mix(seed ^ i as u64)), st, page, i))
        },
        &mut |i| paths_maint(i),
    )
}

/// The path workload: a clean lifetime (its coverage is the tier's), then a crash after every
/// `stride`-th op, each crash state checked in every mode (with the commit after a recovery
/// that fell back crashed at every op).
pub fn paths_sweep(engine: &dyn Engine, seed: u64, stride: u64) -> (Report, Coverage) {
    let media = Media {
        sector: 512,
        psow: true,
        sector_atomic: true,
    };
    let mut rep = Report::default();
    let mut dig = Digest::default();
    let clean = paths_lifetime(engine, seed, media, None);
    let mut cov = clean.cov.clone();
    rep.violations.extend(
        clean
            .violations
            .iter()
            .map(|v| format!("[paths seed {seed:#x}] clean run: {v}")),
    );
    let opts = OpenOpts {
        page_size: 1024,
        no_sync: false,
    };
    let mut rng = Rng::new(seed ^ 0x9a7);
    let probe = [
        Op::CreateBucket(vec![b"probe".to_vec()]),
        Op::Put(vec![b"probe".to_vec()], b"p".to_vec(), val(7, 1500)),
    ];
    let mut k = 1 + seed % stride;
    while k < clean.ops {
        let lt = paths_lifetime(engine, seed, media, Some(k));
        rep.crash_points += 1;
        dig.u64(lt.digest);
        for v in &lt.violations {
            rep.violations.push(format!(
                "[paths seed {seed:#x}] crash after op {k}: lifetime: {v}"
            ));
        }
        let w = Window::new(&lt.crash, media);
        for mode in Mode::ALL {
            let img = w.random(mode, &mut rng);
            dig.u64(hash_bytes(&img));
            let v = verify(
                engine,
                img,
                media,
                opts,
                &lt.hist,
                Strictness::Full,
                Some(&probe),
                Some(EVERY_OP_ON_ROLLBACK),
                rng.next_u64(),
            );
            rep.images += 1 + v.extra_images;
            if v.crashed_after_rollback {
                cov.add(PathId::CrashAfterRollback, 1);
            }
            if let Some(m) = v.violation {
                rep.violations.push(format!(
                    "[paths seed {seed:#x}] crash after op {k}/{} ({mode}): {m}",
                    clean.ops
                ));
            }
        }
        cov.add(
            PathId::ProtocolMonitored,
            lt.cov.get(PathId::ProtocolMonitored),
        );
        k += stride;
    }
    rep.digest = dig.finish();
    (rep, cov)
}

/// Concurrent `batch` callers (4 threads of 4 calls, each call its own key) on a simulated
/// disk whose fault plan (from `seed`) fails a sync or a write, or crashes the machine in the
/// middle; then the per-caller oracle:
///
/// * a caller told Ok rode a commit no later than the first failed one, and the disk's log has
///   a successful sync after its closure last ran and before it was answered;
/// * every caller whose closure rode the failed commit (same txid) got an error;
/// * after a crash (every mode), the recovered state is exactly the state after one commit
///   (the setup, then the callers whose txid is at most the recovered one), and every caller
///   told Ok is in it (I1).
///
/// Thread interleaving is not seeded, so a run is replayed by its seed's fault plan, not op
/// for op. Returns the tally and coverage; `None` when the engine has no group commit.
pub fn batch_oracle(engine: &dyn Engine, seed: u64) -> Option<(Report, Coverage)> {
    let mut rng = Rng::new(seed);
    let media = Media {
        sector: 512,
        psow: true,
        sector_atomic: true,
    };
    let mut plan = FaultPlan::default();
    match rng.below(4) {
        0 => plan.fail_sync = Some(2 + rng.below(5)),
        1 => plan.fail_write = Some((4 + rng.below(40), rng.chance(0.5))),
        2 => plan.crash_after = Some(6 + rng.below(60)),
        _ => {}
    }
    let what = format!("batch seed {seed:#x} ({plan:?})");
    let disk = Arc::new(SimDisk::new(Vec::new(), media, plan, seed));
    disk.record_log(true);
    let opts = OpenOpts {
        page_size: 4096,
        no_sync: false,
    };
    let mut rep = Report::default();
    let mut cov = Coverage::default();
    let bucket = vec![b"b".to_vec()];
    let db = match catch(|| engine.open(disk.clone(), &opts)) {
        Ok(Ok(db)) => db,
        other => {
            if disk.injected_errors() == 0 && !disk.is_crashed() {
                rep.violations.push(format!(
                    "[{what}] open failed: {other:?}",
                    other = other.err()
                ));
            }
            return Some((rep, cov));
        }
    };
    let setup = match catch(|| db.commit(&[Op::CreateBucket(bucket.clone())])) {
        Ok(Ok(t)) => t,
        _ => return Some((rep, cov)), // an injected failure hit the setup: nothing to check
    };
    let key = |t: usize, c: usize| format!("t{t}c{c}").into_bytes();
    let value = |t: usize, c: usize| val(seed ^ (t * 16 + c) as u64, 20 + (t * 7 + c * 131) % 900);
    let callers: Vec<Vec<Vec<Op>>> = (0..4)
        .map(|t| {
            (0..4)
                .map(|c| vec![Op::Put(bucket.clone(), key(t, c), value(t, c))])
                .collect()
        })
        .collect();
    let d2 = disk.clone();
    let out = match catch(|| db.batch(callers, Arc::new(move || d2.ops()))) {
        Ok(Some(out)) => out,
        Ok(None) => return None,
        Err(p) => {
            rep.violations
                .push(format!("[{what}] I7: panic in batch: {p}"));
            return Some((rep, cov));
        }
    };
    drop(catch(move || drop(db)));
    let log = disk.take_log();
    let syncs: Vec<u64> = log
        .iter()
        .enumerate()
        .filter(|(_, (op, r))| matches!(op, LogOp::Sync) && *r == OpResult::Ok)
        .map(|(i, _)| i as u64 + 1)
        .collect();
    let calls: Vec<(usize, usize, &BatchCall)> = out
        .iter()
        .enumerate()
        .flat_map(|(t, cs)| cs.iter().enumerate().map(move |(c, b)| (t, c, b)))
        .collect();
    let failed_tx = calls
        .iter()
        .filter(|(_, _, b)| matches!(&b.result, Err(e) if e.kind == ErrKind::Io))
        .filter_map(|(_, _, b)| b.txid)
        .min();
    let mut by_tx: BTreeMap<u64, usize> = BTreeMap::new();
    for &(t, c, b) in &calls {
        let who = format!("[{what}] caller {t} call {c}");
        match (&b.result, b.txid, b.ran_at) {
            (Ok(()), Some(tx), Some(ran)) => {
                *by_tx.entry(tx).or_default() += 1;
                if !syncs.iter().any(|&s| s > ran && s <= b.answered_at) {
                    rep.violations.push(format!(
                        "{who}: P2 (batch): told Ok at op {} with no sync between its closure (op {ran}) and the answer",
                        b.answered_at
                    ));
                }
                if failed_tx.is_some_and(|f| tx >= f) {
                    rep.violations.push(format!(
                        "{who}: I8 (batch): told Ok for txid {tx}, not before the failed commit {failed_tx:?}"
                    ));
                }
            }
            (Ok(()), _, _) => rep
                .violations
                .push(format!("{who}: told Ok but its closure never ran")),
            (Err(_), tx, _) => {
                if tx.is_some() && tx == failed_tx {
                    cov.add(PathId::BatchCallerFailed, 1);
                }
                if disk.injected_errors() == 0 && !disk.is_crashed() {
                    rep.violations.push(format!(
                        "{who}: I6 (batch): failed on a healthy disk: {:?}",
                        b.result
                    ));
                }
            }
        }
    }
    // Every caller whose closure rode the failed commit heard an error (checked above: an Ok
    // with txid >= failed_tx is a violation).
    cov.add(
        PathId::SharedBatch,
        by_tx.values().filter(|&&n| n >= 2).count() as u64,
    );
    // Crash images of the end state: exactly one commit's state, every Ok caller in it.
    let st = disk.state_now();
    let w = Window::new(&st, media);
    for mode in Mode::ALL {
        let img = w.random(mode, &mut rng);
        rep.images += 1;
        let d = Arc::new(SimDisk::new(
            img,
            media,
            FaultPlan::default(),
            rng.next_u64(),
        ));
        let r = catch(|| {
            engine
                .open(d.clone(), &opts)
                .and_then(|db| Ok((db.recovered_txid(), db.scan()?)))
        });
        let (txid, got) = match r {
            Ok(Ok(x)) => x,
            other => {
                rep.violations.push(format!(
                    "[{what}] {mode}: recovery failed: {:?}",
                    other.map(|r| r.err())
                ));
                continue;
            }
        };
        let mut want = State::default();
        if txid >= setup {
            want.apply(&Op::CreateBucket(bucket.clone()));
        }
        for &(t, c, b) in &calls {
            let ok = b.result.is_ok();
            if ok && b.txid.is_none_or(|tx| tx > txid) {
                rep.violations.push(format!(
                    "[{what}] {mode}: I1 (batch): caller {t} call {c} was told Ok (txid {:?}) but recovery chose txid {txid}",
                    b.txid
                ));
            }
            if b.txid.is_some_and(|tx| tx <= txid) && txid >= setup {
                want.apply(&Op::Put(bucket.clone(), key(t, c), value(t, c)));
            }
        }
        if got != want {
            rep.violations.push(format!(
                "[{what}] {mode}: I2 (batch): recovered txid {txid} is not that commit's state: {}",
                want.diff(&got)
            ));
        }
    }
    rep.crash_points += 1;
    Some((rep, cov))
}
