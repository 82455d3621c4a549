//! Live lifetimes: open an image on a simulated disk with a fault plan, run commits until the
//! workload stops, the crash point passes or a commit fails, and check along the way what only a
//! live run can see (I3, I6 on a healthy disk, I7 panics, I8).

use std::sync::Arc;

use super::protocol::{protocol_check, CommitRec};
use crate::coverage::{Coverage, PathId};
use crate::disk::{FaultPlan, LogOp, OpResult, SimDisk};
use crate::engine::{Engine, EngineDb, ErrKind, Maint, MaintOut, OpenOpts};
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
    /// The engine paths this lifetime reached (and whether the protocol monitor ran).
    pub cov: Coverage,
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
    live_with(
        engine,
        image,
        media,
        opts,
        plan,
        hist,
        seed,
        next,
        &mut |_| None,
    )
}

/// [`live`] with maintenance calls: after commit `i` (counted from 1) succeeds, `maint(i)` may
/// name one (`compact_step`, `shrink_to_fit`, `backup`, `compact_into`), run before the next
/// commit. Every lifetime's op log goes through the protocol monitor (P1, P2) for the commits
/// the engine acknowledged, and the paths reached are counted in [`Lifetime::cov`].
#[allow(clippy::too_many_arguments)]
pub fn live_with(
    engine: &dyn Engine,
    image: Vec<u8>,
    media: Media,
    opts: OpenOpts,
    plan: FaultPlan,
    hist: History,
    seed: u64,
    next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
    maint: &mut dyn FnMut(usize) -> Option<Maint>,
) -> Lifetime {
    let disk = Arc::new(SimDisk::new(image, media, plan, seed));
    let trace_ops = std::env::var_os("FI_TRACE_OPS").is_some();
    // Always recorded: the protocol monitor reads it.
    disk.record_log(true);
    let mut run = Run {
        disk,
        hist,
        violations: Vec::new(),
        commits: 0,
        seed,
        recs: Vec::new(),
        cov: Coverage::default(),
        page: opts.page_size,
    };
    if let Some(db) = run.open(engine, &opts) {
        let failed = run.commit_all(engine, &*db, opts.no_sync, next, maint);
        if failed && run.disk.injected_errors() > 0 {
            run.check_poisoned(&*db);
        }
        if let Err(p) = catch(move || drop(db)) {
            run.violations.push(format!("I7: panic while closing: {p}"));
        }
    }
    let log = run.disk.take_log();
    if trace_ops {
        trace_log(&log);
    }
    for v in protocol_check(&log, &run.recs, opts.page_size, opts.no_sync) {
        run.violations.push(v);
    }
    run.cov.add(PathId::ProtocolMonitored, 1);
    run.finish()
}

/// A lifetime in progress: the disk, the history so far and what went wrong.
struct Run {
    disk: Arc<SimDisk>,
    hist: History,
    violations: Vec<String>,
    commits: usize,
    seed: u64,
    /// The op ranges of the commits the engine acknowledged (for the protocol monitor).
    recs: Vec<CommitRec>,
    cov: Coverage,
    page: usize,
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
        engine: &dyn Engine,
        db: &dyn EngineDb,
        no_sync: bool,
        next: &mut dyn FnMut(&State, usize) -> Option<Vec<Op>>,
        maint: &mut dyn FnMut(usize) -> Option<Maint>,
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
            let before = catch(|| db.stats()).unwrap_or_default();
            let start = self.disk.ops();
            let r = catch(|| db.commit(&ops));
            let injected = self.disk.injected_errors() > errs;
            let pages = Some((self.disk.bytes_written() - bytes).div_ceil(self.page as u64));
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
                    self.cov
                        .observe_ops(self.hist.last_state(), &ops, self.page);
                    self.hist.push_measured(after, ack, Some(txid), pages);
                    self.acknowledged(db, start, txid, &before);
                    // Under no_sync, `Db::sync` after one commit in three (drawn from the seed):
                    // once it returns, a power cut must recover this commit or a later one.
                    if no_sync && mix(self.seed ^ commits as u64).is_multiple_of(3) {
                        match self.sync(db) {
                            SyncOutcome::Done | SyncOutcome::Unsupported => {}
                            SyncOutcome::Stop => return false,
                            SyncOutcome::Failed => return true,
                        }
                    }
                    if let Some(m) = maint(commits) {
                        match self.maint(engine, db, m, ack) {
                            MaintEnd::Go => {}
                            MaintEnd::Crashed => return false,
                            MaintEnd::Failed => return true,
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
                self.cov.add(PathId::NoSyncSyncReturned, 1);
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

    /// An acknowledged commit that began at op `start`: its op range for the protocol monitor,
    /// and the paths its stats show.
    fn acknowledged(
        &mut self,
        db: &dyn EngineDb,
        start: u64,
        txid: u64,
        before: &crate::engine::EngStats,
    ) {
        self.recs.push(CommitRec {
            start,
            end: self.disk.ops(),
            txid,
            state: State::default(),
        });
        let after = catch(|| db.stats()).unwrap_or_default();
        self.cov.observe_stats(before, &after);
    }

    /// Run one maintenance call; a step that commits enters the history (same state, new
    /// txid), a copy must open on a fresh disk and equal the model.
    fn maint(&mut self, engine: &dyn Engine, db: &dyn EngineDb, m: Maint, ack: Label) -> MaintEnd {
        let errs = self.disk.injected_errors();
        let before = catch(|| db.stats()).unwrap_or_default();
        let start = self.disk.ops();
        let bytes = self.disk.bytes_written();
        let r = match catch(|| db.maint(m)) {
            Ok(r) => r,
            Err(p) => {
                self.violations.push(format!("I7: panic in {m:?}: {p}"));
                return MaintEnd::Crashed;
            }
        };
        let injected = self.disk.injected_errors() > errs;
        let pages = Some((self.disk.bytes_written() - bytes).div_ceil(self.page as u64));
        let state = (**self.hist.last_state()).clone();
        if self.disk.is_crashed() {
            self.hist.push_measured(state, Label::InFlight, None, pages);
            return MaintEnd::Crashed;
        }
        let out = match r {
            // A copy only reads the database: a read error fails it without poisoning.
            Err(_) if injected && matches!(m, Maint::Backup | Maint::CompactInto) => {
                return MaintEnd::Crashed;
            }
            Err(_) if injected => {
                self.hist.push_measured(state, Label::Failed, None, pages);
                return MaintEnd::Failed;
            }
            Err(e) => {
                self.violations
                    .push(format!("I6: {m:?} failed on a healthy disk: {e}"));
                return MaintEnd::Crashed;
            }
            Ok(_) if injected => {
                self.violations.push(format!(
                    "I8/I3: {m:?} returned Ok although an injected I/O error was returned to the engine during it"
                ));
                return MaintEnd::Crashed;
            }
            Ok(out) => out,
        };
        let after = catch(|| db.stats()).unwrap_or_default();
        if after.txid != before.txid {
            // compact_step committed: a new transaction with the same data.
            self.hist
                .push_measured(state.clone(), ack, Some(after.txid), pages);
            self.recs.push(CommitRec {
                start,
                end: self.disk.ops(),
                txid: after.txid,
                state: State::default(),
            });
        }
        self.cov.observe_stats(&before, &after);
        match out {
            MaintOut::Moved(n) if n > 0 => self.cov.add(PathId::CompactStepMoved, 1),
            MaintOut::Shrunk(true) => self.cov.add(PathId::ShrinkToFit, 1),
            MaintOut::Copy(bytes) => {
                let path = if m == Maint::Backup {
                    PathId::BackupVerified
                } else {
                    PathId::CompactIntoVerified
                };
                match check_copy(engine, bytes, self.disk.media(), self.page, &state) {
                    Ok(()) => self.cov.add(path, 1),
                    Err(v) => {
                        self.violations.push(format!("{m:?}: {v}"));
                        return MaintEnd::Crashed;
                    }
                }
            }
            _ => {}
        }
        MaintEnd::Go
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
            cov: self.cov,
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

/// How a maintenance call ended the lifetime's loop.
enum MaintEnd {
    Go,
    /// The machine went down, a copy failed on a read error, or a violation was found: stop,
    /// no poisoned handle to check.
    Crashed,
    /// An injected error failed it: stop, the handle must be poisoned.
    Failed,
}

/// A copy made by `backup` or `compact_into`: it opens on a fresh healthy disk, reads back
/// equal to `want`, and its integrity check is clean.
pub fn check_copy(
    engine: &dyn Engine,
    bytes: Vec<u8>,
    media: Media,
    page: usize,
    want: &State,
) -> Result<(), String> {
    let disk = Arc::new(SimDisk::new(bytes, media, FaultPlan::default(), 0));
    let opts = OpenOpts {
        page_size: page,
        no_sync: false,
    };
    let r = catch(|| -> Result<(), String> {
        let db = engine
            .open(disk.clone(), &opts)
            .map_err(|e| format!("the copy does not open: {e}"))?;
        let st = db
            .scan()
            .map_err(|e| format!("reading the copy failed: {e}"))?;
        if st != *want {
            return Err(format!(
                "the copy differs from the model: {}",
                want.diff(&st)
            ));
        }
        let problems = db
            .check()
            .map_err(|e| format!("checking the copy failed: {e}"))?;
        if !problems.is_empty() {
            return Err(format!("the copy's integrity check: {problems:?}"));
        }
        Ok(())
    });
    r.map_err(|p| format!("I7: panic on the copy: {p}"))?
}

/// Debug aid (`FI_TRACE_OPS=1`): the lifetime's op log (offset/length, or set_len/sync).
fn trace_log(log: &[(LogOp, OpResult)]) {
    for (i, (op, r)) in log.iter().enumerate() {
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
