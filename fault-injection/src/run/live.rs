//! Live lifetimes: open an image on a simulated disk with a fault plan, run commits until the
//! workload stops, the crash point passes or a commit fails, and check along the way what only a
//! live run can see (I3, I6 on a healthy disk, I7 panics, I8).

use std::sync::Arc;

use crate::disk::{FaultPlan, LogOp, SimDisk};
use crate::engine::{Engine, EngineDb, ErrKind, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::oracle::{catch, History, Label};
use crate::rng::mix;

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
    /// `sync` calls (`Db::sync`) that returned Ok inside `no_sync` lifetimes.
    pub syncs_returned: u64,
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
    hist: History,
    seed: u64,
    next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
) -> Lifetime {
    let disk = Arc::new(SimDisk::new(image, media, plan, seed));
    let trace_ops = std::env::var_os("FI_TRACE_OPS").is_some();
    disk.record_log(trace_ops);
    let mut run = Run {
        disk,
        hist,
        violations: Vec::new(),
        commits: 0,
        page_size: opts.page_size as u64,
        seed,
        syncs_returned: 0,
    };
    if let Some(db) = run.open(engine, &opts) {
        let failed = run.commit_all(&*db, opts.no_sync, next);
        if failed && run.disk.injected_errors() > 0 {
            run.check_poisoned(&*db);
        }
        if let Err(p) = catch(move || drop(db)) {
            run.violations.push(format!("I7: panic while closing: {p}"));
        }
    }
    if trace_ops {
        trace_log(&run.disk);
    }
    run.finish()
}

/// A lifetime in progress: the disk, the history so far and what went wrong.
struct Run {
    disk: Arc<SimDisk>,
    hist: History,
    violations: Vec<String>,
    commits: usize,
    page_size: u64,
    seed: u64,
    syncs_returned: u64,
}

impl Run {
    /// Open the database; `None` when open failed or the crash point passed inside it (the
    /// lifetime ends there).
    fn open(&mut self, engine: &dyn Engine, opts: &OpenOpts) -> Option<Box<dyn EngineDb>> {
        let db = match catch(|| engine.open(self.disk.clone(), opts)) {
            Err(p) => {
                self.violations.push(format!("I7: panic in open: {p}"));
                return None;
            }
            Ok(Err(e)) => {
                if !self.disk.is_crashed() && self.disk.injected_errors() == 0 {
                    self.violations
                        .push(format!("I6: open failed on a healthy disk: {e}"));
                }
                return None;
            }
            Ok(Ok(db)) => db,
        };
        if self.disk.is_crashed() {
            // The crash point passed inside open (the engine saw errors it could not act on).
            drop(catch(move || drop(db)));
            return None;
        }
        if self.disk.injected_errors() > 0 {
            self.violations.push(
                "I8: open returned Ok although an injected I/O error was returned to it".into(),
            );
        }
        Some(db)
    }

    /// Commit what `next` produces until it stops, the machine goes down or a commit fails;
    /// each commit enters the history with its outcome. Returns whether a commit failed.
    fn commit_all(
        &mut self,
        db: &dyn EngineDb,
        no_sync: bool,
        next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
    ) -> bool {
        let ack = if no_sync {
            Label::NoSyncAck
        } else {
            Label::DurableAck
        };
        while let Some(ops) = next(self.hist.last_state(), self.commits) {
            self.commits += 1;
            let commits = self.commits;
            let mut after = (**self.hist.last_state()).clone();
            after.apply_all(&ops);
            let errs = self.disk.injected_errors();
            let bytes = self.disk.bytes_written();
            let r = catch(|| db.commit(&ops));
            let injected = self.disk.injected_errors() > errs;
            let pages = Some((self.disk.bytes_written() - bytes).div_ceil(self.page_size));
            match r {
                Err(p) => {
                    self.violations
                        .push(format!("I7: panic in commit #{commits}: {p}"));
                    self.hist.push_measured(after, Label::InFlight, None, pages);
                    return false;
                }
                Ok(_) if self.disk.is_crashed() => {
                    self.hist.push_measured(after, Label::InFlight, None, pages);
                    return false;
                }
                Ok(Ok(txid)) => {
                    if injected {
                        self.violations.push(format!(
                            "I8/I3: commit #{commits} acknowledged although an injected I/O error was returned to the engine during it"
                        ));
                        self.hist
                            .push_measured(after, Label::Failed, Some(txid), pages);
                        return true;
                    }
                    self.hist.push_measured(after, ack, Some(txid), pages);
                    // Under no_sync, `Db::sync` after one commit in three (drawn from the seed):
                    // once it returns, a power cut must recover this commit or a later one.
                    if no_sync && mix(self.seed ^ commits as u64).is_multiple_of(3) {
                        match self.sync(db) {
                            SyncOutcome::Done | SyncOutcome::Unsupported => {}
                            SyncOutcome::Stop => return false,
                            SyncOutcome::Failed => return true,
                        }
                    }
                }
                Ok(Err(e)) => {
                    if !injected {
                        self.violations.push(format!(
                            "I6: commit #{commits} failed on a healthy disk: {e}"
                        ));
                    }
                    self.hist.push_measured(after, Label::Failed, None, pages);
                    return true;
                }
            }
        }
        false
    }

    /// `Db::sync` inside a `no_sync` lifetime. Ok on a live disk makes every commit so far
    /// durable (the history's newest entry becomes the floor of I1); an error must come from
    /// an injected fault or the crash, and leaves the handle poisoned (checked by the caller).
    fn sync(&mut self, db: &dyn EngineDb) -> SyncOutcome {
        let errs = self.disk.injected_errors();
        let r = match catch(|| db.sync()) {
            Err(p) => {
                self.violations.push(format!("I7: panic in sync: {p}"));
                return SyncOutcome::Stop;
            }
            Ok(None) => return SyncOutcome::Unsupported,
            Ok(Some(r)) => r,
        };
        let injected = self.disk.injected_errors() > errs;
        match r {
            _ if self.disk.is_crashed() => SyncOutcome::Stop,
            Ok(()) if injected => {
                self.violations.push(
                    "I8: Db::sync returned Ok although an injected I/O error was returned to it"
                        .into(),
                );
                SyncOutcome::Failed
            }
            Ok(()) => {
                self.hist.mark_synced();
                self.syncs_returned += 1;
                SyncOutcome::Done
            }
            Err(_) if injected => SyncOutcome::Failed,
            Err(e) => {
                self.violations
                    .push(format!("I6: Db::sync failed on a healthy disk: {e}"));
                SyncOutcome::Stop
            }
        }
    }

    /// I3: after a failed commit I/O the handle must refuse writes until reopened.
    fn check_poisoned(&mut self, db: &dyn EngineDb) {
        match catch(|| db.write_refused()) {
            Err(p) => self.violations.push(format!(
                "I7: panic in begin_write after a failed commit: {p}"
            )),
            Ok(None) => self
                .violations
                .push("I3: handle not poisoned after a failed commit I/O".into()),
            Ok(Some(e)) if e.kind != ErrKind::Poisoned => self.violations.push(format!(
                "I3: begin_write after a failed commit returned {e}, not Poisoned"
            )),
            Ok(Some(_)) => {}
        }
    }

    fn finish(self) -> Lifetime {
        let disk = &self.disk;
        Lifetime {
            crashed: disk.is_crashed(),
            crash: disk.state_now(),
            hist: self.hist,
            violations: self.violations,
            ops: disk.ops(),
            commits: self.commits,
            digest: disk.digest(),
            counts: disk.counts(),
            creates: disk.creates(),
            syncs_returned: self.syncs_returned,
        }
    }
}

/// What a `Db::sync` inside a lifetime came to.
enum SyncOutcome {
    Done,
    /// The engine has no such call.
    Unsupported,
    /// The machine went down (or a violation ended the lifetime).
    Stop,
    /// An injected error reached it: the handle must now be poisoned.
    Failed,
}

/// Debug aid (`FI_TRACE_OPS=1`): the lifetime's op log (offset/length, or set_len/sync).
fn trace_log(disk: &SimDisk) {
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
