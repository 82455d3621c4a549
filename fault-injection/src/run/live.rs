//! Live lifetimes: open an image on a simulated disk with a fault plan, run commits until the
//! workload stops, the crash point passes or a commit fails, and check along the way what only a
//! live run can see (I3, I6 on a healthy disk, I7 panics, I8).

use std::sync::Arc;

use crate::disk::{FaultPlan, LogOp, SimDisk};
use crate::engine::{Engine, EngineDb, ErrKind, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::oracle::{catch, History, Label};

/// The result of one live lifetime (open, commits, close or crash).
pub struct Lifetime {
    /// The state to build crash images from (frozen at the crash point, or at the end).
    pub crash: CrashState,
    pub crashed: bool,
    pub hist: History,
    pub violations: Vec<String>,
    /// Mutating ops issued.
    pub ops: u64,
    /// Commits attempted.
    pub commits: usize,
    pub digest: u64,
    /// Calls issued: (write_at, set_len, sync_data).
    pub counts: (u64, u64, u64),
    /// `create` calls issued.
    pub creates: u64,
}

/// Open `image`, run the commits `next` produces until it returns `None`, a crash or a failed
/// commit; check I3 and I8 along the way.
#[allow(clippy::too_many_arguments)]
pub fn live(
    engine: &dyn Engine,
    image: Vec<u8>,
    media: Media,
    opts: OpenOpts,
    plan: FaultPlan,
    mut hist: History,
    seed: u64,
    next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
) -> Lifetime {
    let disk = Arc::new(SimDisk::new(image, media, plan, seed));
    let trace_ops = std::env::var_os("FI_TRACE_OPS").is_some();
    disk.record_log(trace_ops);
    let mut violations = Vec::new();
    let mut commits = 0;
    let finish = |disk: &SimDisk, hist, violations, commits| {
        if trace_ops {
            // Debug aid: the lifetime's op log (offset/length, or set_len/sync).
            for (i, (op, r)) in disk.take_log().iter().enumerate() {
                let d = match op {
                    LogOp::Write { off, data, .. } => format!("write {off} +{}", data.len()),
                    LogOp::SetLen(n) => format!("set_len {n}"),
                    LogOp::Sync => "sync".into(),
                    LogOp::SyncDir => "sync_dir".into(),
                    LogOp::Create { data, placed } => {
                        format!(
                            "create +{}{}",
                            data.len(),
                            if *placed { "" } else { " (not placed)" }
                        )
                    }
                };
                eprintln!("op {}: {d} {r:?}", i + 1);
            }
        }
        Lifetime {
            crashed: disk.is_crashed(),
            crash: disk.state_now(),
            hist,
            violations,
            ops: disk.ops(),
            commits,
            digest: disk.digest(),
            counts: disk.counts(),
            creates: disk.creates(),
        }
    };
    let db: Box<dyn EngineDb> = match catch(|| engine.open(disk.clone(), &opts)) {
        Err(p) => {
            violations.push(format!("I7: panic in open: {p}"));
            return finish(&disk, hist, violations, commits);
        }
        Ok(Err(e)) => {
            if !disk.is_crashed() && disk.injected_errors() == 0 {
                violations.push(format!("I6: open failed on a healthy disk: {e}"));
            }
            return finish(&disk, hist, violations, commits);
        }
        Ok(Ok(db)) => db,
    };
    if disk.is_crashed() {
        // The crash point passed inside open (the engine saw errors it could not act on).
        drop(catch(move || drop(db)));
        return finish(&disk, hist, violations, commits);
    }
    if disk.injected_errors() > 0 {
        violations
            .push("I8: open returned Ok although an injected I/O error was returned to it".into());
    }
    let ack = if opts.no_sync {
        Label::NoSyncAck
    } else {
        Label::DurableAck
    };
    let mut failed = false;
    while let Some(ops) = next(hist.last_state(), commits) {
        commits += 1;
        let mut after = (**hist.last_state()).clone();
        after.apply_all(&ops);
        let errs = disk.injected_errors();
        let r = catch(|| db.commit(&ops));
        let injected = disk.injected_errors() > errs;
        match r {
            Err(p) => {
                violations.push(format!("I7: panic in commit #{commits}: {p}"));
                hist.push(after, Label::InFlight, None);
                break;
            }
            Ok(_) if disk.is_crashed() => {
                hist.push(after, Label::InFlight, None);
                break;
            }
            Ok(Ok(txid)) => {
                if injected {
                    violations.push(format!(
                        "I8/I3: commit #{commits} acknowledged although an injected I/O error was returned to the engine during it"
                    ));
                    hist.push(after, Label::Failed, Some(txid));
                    failed = true;
                    break;
                }
                hist.push(after, ack, Some(txid));
            }
            Ok(Err(e)) => {
                if !injected {
                    violations.push(format!(
                        "I6: commit #{commits} failed on a healthy disk: {e}"
                    ));
                }
                hist.push(after, Label::Failed, None);
                failed = true;
                break;
            }
        }
    }
    if failed && disk.injected_errors() > 0 {
        // I3: after a failed commit I/O the handle must refuse writes until reopened.
        match catch(|| db.write_refused()) {
            Err(p) => violations.push(format!(
                "I7: panic in begin_write after a failed commit: {p}"
            )),
            Ok(None) => violations.push("I3: handle not poisoned after a failed commit I/O".into()),
            Ok(Some(e)) if e.kind != ErrKind::Poisoned => violations.push(format!(
                "I3: begin_write after a failed commit returned {e}, not Poisoned"
            )),
            Ok(Some(_)) => {}
        }
    }
    if let Err(p) = catch(move || drop(db)) {
        violations.push(format!("I7: panic while closing: {p}"));
    }
    finish(&disk, hist, violations, commits)
}
