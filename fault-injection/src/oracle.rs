//! The oracle: the history of commits with their outcomes, and the check of a recovered
//! database against it (invariants I1-I8).

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use crate::crash::{Fill, Mode, Window};
use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{EngErr, Engine, EngineDb, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::replay::Replayer;
use crate::rng::{hash_bytes, Rng};

/// What the workload learned about a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    /// The state a verified recovery started from (durable: open synced it).
    Base,
    /// `commit` returned Ok under durable mode.
    DurableAck,
    /// `commit` returned Ok under `no_sync`.
    NoSyncAck,
    /// `commit` returned Err after issuing I/O (may be present or absent, all or nothing).
    Failed,
    /// The crash hit during the commit.
    InFlight,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub state: Arc<State>,
    pub label: Label,
    /// The transaction id the commit had (when known).
    pub txid: Option<u64>,
    /// Pages the commit wrote (bytes passed to `write_at` during it, in pages), when measured:
    /// what the open-cost invariant (I12) bounds open's reads by.
    pub pages: Option<u64>,
}

/// The chain of states since the database was created; a recovered database must equal one
/// of them, at or after the last durable one.
///
/// Creation needs no entry of its own: it is atomic (`Storage::create`), so a crash during it
/// leaves an empty or absent file, which opens as a new empty database, or the whole initial
/// image; both are the empty base state, and refusing either is a violation.
#[derive(Clone, Debug)]
pub struct History {
    pub entries: Vec<Entry>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> History {
        History {
            entries: vec![Entry {
                state: Arc::new(State::default()),
                label: Label::Base,
                txid: None,
                // Creation writes the two meta pages only: no tree page to verify.
                pages: Some(0),
            }],
        }
    }

    pub fn last_state(&self) -> &Arc<State> {
        &self.entries.last().unwrap().state
    }

    pub fn push(&mut self, state: State, label: Label, txid: Option<u64>) {
        self.push_measured(state, label, txid, None);
    }

    /// [`History::push`] with the pages the commit wrote.
    pub fn push_measured(
        &mut self,
        state: State,
        label: Label,
        txid: Option<u64>,
        pages: Option<u64>,
    ) {
        // A commit that changed nothing wrote nothing and kept the previous commit's txid: it
        // is that commit, whose pages an open verifies.
        let prev = self
            .entries
            .last()
            .filter(|p| txid.is_some() && p.txid == txid);
        let pages = match (pages, prev) {
            (Some(0), Some(p)) => p.pages,
            _ => pages,
        };
        self.entries.push(Entry {
            state: Arc::new(state),
            label,
            txid,
            pages,
        });
    }

    /// Label the newest entry durable: a sync that covers it returned Ok.
    pub fn mark_synced(&mut self) {
        if let Some(e) = self.entries.last_mut() {
            if e.label == Label::NoSyncAck {
                e.label = Label::DurableAck;
            }
        }
    }

    /// I12's bound: the pages written by the last commit that must survive and every commit
    /// after it (all an open may have to verify), when every one of them was measured.
    pub fn open_cost_bound(&self) -> Option<u64> {
        self.entries[self.lo()..].iter().map(|e| e.pages).sum()
    }

    /// Index of the last commit that must survive.
    pub fn lo(&self) -> usize {
        self.entries
            .iter()
            .rposition(|e| matches!(e.label, Label::Base | Label::DurableAck))
            .unwrap_or(0)
    }

    /// Keep entries up to `j`, which becomes the new durable base with `txid`.
    pub fn rebase(&mut self, j: usize, txid: u64) {
        self.entries.truncate(j + 1);
        // Transaction ids are only meaningful from the recovered commit on (an engine may
        // reuse the ids of rolled-back commits, or restart them in a file created anew after
        // a crash left it empty).
        for e in &mut self.entries {
            e.txid = None;
        }
        let e = self.entries.last_mut().unwrap();
        e.label = Label::Base;
        e.txid = Some(txid);
    }
}

// ---------------------------------------------------------------------------------------------
// Panics: every engine call runs under catch_unwind; a panic is a violation reported with the
// seed. A chained hook keeps the message and location without printing while we catch.

thread_local! {
    static CATCHING: RefCell<bool> = const { RefCell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = CATCHING.with(|c| *c.borrow());
            if quiet {
                LAST_PANIC.with(|l| *l.borrow_mut() = info.to_string());
            } else {
                default(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into `Err(message with location)`.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = CATCHING.with(|c| std::mem::replace(&mut *c.borrow_mut(), true));
    let r = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| *c.borrow_mut() = was);
    r.map_err(|_| LAST_PANIC.with(|l| l.borrow().replace('\n', " ")))
}

/// How many recoveries the open-cost invariant (I12) checked in this process.
static OPEN_COST_CHECKS: AtomicU64 = AtomicU64::new(0);

/// Recoveries whose open cost I12 checked so far in this process.
pub fn open_cost_checks() -> u64 {
    OPEN_COST_CHECKS.load(Ordering::Relaxed)
}

/// I12: recovery is O(last commits). The tree pages open verified are at most what the last
/// durable commit and the commits after it wrote; an open that re-reads the file (a bookkeeping
/// bug in what it takes as already durable) passes every correctness check but this one.
fn open_cost(db: &dyn EngineDb, hist: &History) -> Option<String> {
    let bound = hist.open_cost_bound()?;
    let n = catch(|| db.open_pages_verified()).ok().flatten()?;
    OPEN_COST_CHECKS.fetch_add(1, Ordering::Relaxed);
    (n > bound).then(|| {
        format!(
            "I12: open verified {n} tree pages, more than the {bound} the commits since the last \
             durable one wrote"
        )
    })
}

// ---------------------------------------------------------------------------------------------

/// How strict the check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Faults inside the model (F1-F8 with PSOW): I1-I6 and I8 must hold.
    Full,
    /// Faults outside the model (F9-F13, PSOW off): I7 only (detect and report, never wrong
    /// data, never a panic). Falling back below the last durable commit must be reported.
    Detect,
    /// At-rest damage (F9, F10, F13) to a cleanly closed file, whose newest commit is
    /// *confirmed* durable (deadbolt writes a confirmation at close): as `Detect`, but open
    /// must never fall back below the newest acknowledged commit, reported or not. Only an
    /// error counts as a detection: a fallback is I1 (issue 11).
    DetectConfirmed,
    /// As `Detect`, but the recovered state may be any commit of the history without a report:
    /// for lost and misdirected writes (a lost meta write is invisible to the engine) and for
    /// power cuts under `no_sync` (which promises survival of process crashes only).
    DetectAnyCommit,
}

/// The result of checking one recovered image.
#[derive(Debug, Default)]
pub struct Verdict {
    pub violation: Option<String>,
    /// Index into the history of the state found.
    pub matched: Option<usize>,
    /// The damage was reported by a typed error (Detect mode).
    pub detected: bool,
    /// The recovered transaction id.
    pub txid: u64,
    /// The file after recovery (and the probe commit, if any), to continue from.
    pub after: Option<Vec<u8>>,
    /// The history to continue with (rebased on the recovered state, plus the probe).
    pub history: Option<History>,
    /// Further crash images checked inside the probe commit (second crash cycle).
    pub extra_images: u64,
    /// Open fell back past a newer commit and said so, and a probe commit then crashed inside
    /// (the case the torture runner biases its crash points toward).
    pub crashed_after_rollback: bool,
}

impl Verdict {
    fn bad(msg: String) -> Verdict {
        Verdict {
            violation: Some(msg),
            ..Verdict::default()
        }
    }
}

/// `crash_probe` value: when open fell back past a newer commit, crash the probe commit after
/// each of its ops in every mode; otherwise crash it after a small seeded number of ops.
pub const EVERY_OP_ON_ROLLBACK: u64 = u64::MAX;

/// Open `image` on a healthy simulated disk and check it against `hist`.
///
/// With `probe`, also check liveness (I6): commit `probe` on the recovered database, check it
/// reads back, and when `crash_probe` is set crash inside that commit at op `crash_probe` with
/// a power cut drawn from `seed` and check the result again (a second crash cycle).
#[allow(clippy::too_many_arguments)]
pub fn verify(
    engine: &dyn Engine,
    image: Vec<u8>,
    media: Media,
    opts: OpenOpts,
    hist: &History,
    strict: Strictness,
    probe: Option<&[Op]>,
    crash_probe: Option<u64>,
    seed: u64,
) -> Verdict {
    let image0 = probe.map(|_| image.clone());
    let disk = Arc::new(SimDisk::new(image, media, FaultPlan::default(), seed));
    if probe.is_some() {
        disk.record_log(true);
    }
    let db: Box<dyn EngineDb> = match catch(|| engine.open(disk.clone(), &opts)) {
        Err(p) => return Verdict::bad(format!("I7: panic in open: {p}")),
        Ok(Err(e)) => return open_refused(&e, strict, "I6: open failed after crash"),
        Ok(Ok(db)) => db,
    };
    let v = check_open(&*db, hist, strict);
    if v.violation.is_some() {
        dump_image(&disk);
    }
    if v.violation.is_some() || v.detected {
        return v;
    }
    let j = v.matched.unwrap();
    let mut h = hist.clone();
    h.rebase(j, v.txid);
    let rec = Recovered {
        engine,
        db,
        disk,
        media,
        opts,
        h,
        j,
        txid: v.txid,
        seed,
    };
    if strict == Strictness::Full && seed.is_multiple_of(4) {
        if let Some(bad) = rec.recover_again(&hist.entries[j].state) {
            return bad;
        }
    }
    if let (Some(ops), Some(image0)) = (probe, image0) {
        let rolled_back = catch(|| rec.db.rolled_back()).unwrap_or(None);
        if strict == Strictness::Full
            && rolled_back.is_some()
            && crash_probe == Some(EVERY_OP_ON_ROLLBACK)
        {
            // Open fell back past a newer commit: the state most likely to hide a stale
            // half-commit. Crash at every op of the next commit, in every mode (F14, I9).
            let mut v = rec.probe_every_op(image0, ops);
            v.crashed_after_rollback = v.violation.is_none();
            return v;
        }
        if strict == Strictness::Full {
            return rec.probe_commit(ops, crash_probe, rolled_back.is_some());
        }
    }
    rec.close()
}

/// The verdict on an error from open or a read: a detection when damage outside the model may
/// be reported (every mode but `Full`) and the error is a typed report of it; else a violation
/// `what: error`.
fn open_refused(e: &EngErr, strict: Strictness, what: &str) -> Verdict {
    if strict != Strictness::Full && e.is_detection() {
        return Verdict {
            detected: true,
            ..Verdict::default()
        };
    }
    Verdict::bad(format!("{what}: {e}"))
}

/// Debug aid (`FI_DUMP_IMAGE=path`): keep the image that produced a violation.
fn dump_image(disk: &SimDisk) {
    if let Some(path) = std::env::var_os("FI_DUMP_IMAGE") {
        let _ = std::fs::write(path, disk.durable());
    }
}

/// A database recovered and checked by [`verify`]: what the probe commit after recovery runs
/// on. `h` is the history rebased on the recovered commit `j` (transaction `txid`).
struct Recovered<'a> {
    engine: &'a dyn Engine,
    db: Box<dyn EngineDb>,
    disk: Arc<SimDisk>,
    media: Media,
    opts: OpenOpts,
    h: History,
    j: usize,
    txid: u64,
    seed: u64,
}

impl Recovered<'_> {
    /// I9: recovering again from what the first recovery left gives the same commit (`want`,
    /// transaction `txid`). Returns the violation, if any.
    fn recover_again(&self, want: &State) -> Option<Verdict> {
        let again = Arc::new(SimDisk::new(
            self.disk.current(),
            self.media,
            FaultPlan::default(),
            self.seed,
        ));
        let txid = self.txid;
        match catch(|| {
            self.engine
                .open(again.clone(), &self.opts)
                .and_then(|d| Ok((d.scan()?, d.recovered_txid())))
        }) {
            Err(p) => Some(Verdict::bad(format!(
                "I7: panic in the second recovery: {p}"
            ))),
            Ok(Err(e)) => Some(Verdict::bad(format!("I9: the second recovery failed: {e}"))),
            Ok(Ok((st, t))) if st != *want || t != txid => Some(Verdict::bad(format!(
                "I9: recovering twice differs: txid {txid} then {t}; {}",
                want.diff(&st)
            ))),
            Ok(Ok(_)) => None,
        }
    }

    /// The label of an acknowledged probe commit: under `no_sync` it is not durable until a
    /// sync (the close may itself be cut by the probe's crash point, leaving it unsynced).
    fn ack(&self) -> Label {
        if self.opts.no_sync {
            Label::NoSyncAck
        } else {
            Label::DurableAck
        }
    }

    /// Close the database; the verdict carries the file and history to continue from.
    fn close(self) -> Verdict {
        let db = self.db;
        if catch(move || drop(db)).is_err() {
            return Verdict::bad("I7: panic while closing".into());
        }
        Verdict {
            matched: Some(self.j),
            txid: self.txid,
            after: Some(self.disk.current()),
            history: Some(self.h),
            ..Verdict::default()
        }
    }

    /// Commit `ops` (crashed at op `crash_probe` of the commit when set); after a crash, check
    /// one image of it (the second crash cycle), else check the commit reads back (I6).
    /// `rolled_back`: open fell back past a newer commit (counted when the crash happens).
    fn probe_commit(mut self, ops: &[Op], crash_probe: Option<u64>, rolled_back: bool) -> Verdict {
        let disk = &self.disk;
        if let Some(mut n) = crash_probe {
            if n == EVERY_OP_ON_ROLLBACK {
                n = 1 + self.seed % 6;
            }
            disk.set_crash_after(Some(disk.ops() + n));
        }
        let mut after_state = (**self.h.last_state()).clone();
        after_state.apply_all(ops);
        match catch(|| self.db.commit(ops)) {
            Err(p) => return Verdict::bad(format!("I7: panic in commit after recovery: {p}")),
            Ok(Err(e)) if !disk.is_crashed() => {
                return Verdict::bad(format!("I6: commit after recovery failed: {e}"))
            }
            Ok(Err(_)) => self.h.push(after_state, Label::InFlight, None),
            Ok(Ok(t)) if disk.is_crashed() => self.h.push(after_state, Label::InFlight, Some(t)),
            Ok(Ok(t)) => self.h.push(after_state, self.ack(), Some(t)),
        }
        if let Some(st) = disk.crashed() {
            let mut v = self.second_crash(&st);
            v.crashed_after_rollback = rolled_back && v.violation.is_none();
            return v;
        }
        match catch(|| self.db.scan()) {
            Err(p) => return Verdict::bad(format!("I7: panic in read after probe: {p}")),
            Ok(Err(e)) => return Verdict::bad(format!("I6: read after probe commit failed: {e}")),
            Ok(Ok(s)) if s != **self.h.last_state() => {
                return Verdict::bad(format!(
                    "I6: probe commit not visible: {}",
                    self.h.last_state().diff(&s)
                ))
            }
            Ok(Ok(_)) => {}
        }
        self.close()
    }

    /// The probe commit crashed with state `st`: one image of a crash mode drawn from the seed
    /// is checked against the history that includes the commit in flight.
    fn second_crash(self, st: &CrashState) -> Verdict {
        let db = self.db;
        drop(catch(move || drop(db)));
        let mut rng = Rng::new(self.seed ^ 0x5eed);
        let w = Window::new(st, self.media);
        let mode = Mode::draw(&mut rng);
        let img = w.random(mode, &mut rng);
        let v2 = verify(
            self.engine,
            img,
            self.media,
            self.opts,
            &self.h,
            Strictness::Full,
            None,
            None,
            rng.next_u64(),
        );
        if let Some(m) = v2.violation {
            return Verdict::bad(format!(
                "second crash cycle ({mode} inside the commit after recovery): {m}"
            ));
        }
        Verdict {
            matched: Some(self.j),
            txid: self.txid,
            after: v2.after,
            history: v2.history,
            ..Verdict::default()
        }
    }

    /// The commit after a recovery that fell back, crashed after each of its ops with every
    /// mode. `image0` is the image the recovery started from (the op log replays onto it).
    fn probe_every_op(mut self, image0: Vec<u8>, ops: &[Op]) -> Verdict {
        let before = self.disk.ops() as usize;
        let mut after_state = (**self.h.last_state()).clone();
        after_state.apply_all(ops);
        let t = match catch(|| self.db.commit(ops)) {
            Err(p) => return Verdict::bad(format!("I7: panic in commit after recovery: {p}")),
            Ok(Err(e)) => return Verdict::bad(format!("I6: commit after recovery failed: {e}")),
            Ok(Ok(t)) => t,
        };
        let db = self.db;
        if catch(move || drop(db)).is_err() {
            return Verdict::bad("I7: panic while closing".into());
        }
        let log = self.disk.take_log();
        let end = log.len();
        let mut rp = Replayer::new(image0);
        let mut rng = Rng::new(self.seed ^ 0xe7e7);
        let mut extra = 0u64;
        let mut seen = HashSet::new();
        for (k, op) in log.iter().enumerate() {
            rp.step(op);
            let k = k + 1;
            if k <= before {
                continue;
            }
            let mut hk = self.h.clone();
            // Crash after op k <= end: the commit had not necessarily returned.
            debug_assert!(k <= end);
            hk.push(after_state.clone(), Label::InFlight, Some(t));
            for img in every_mode_images(&rp.st, self.media, &mut rng) {
                if !seen.insert(hash_bytes(&img)) {
                    continue;
                }
                extra += 1;
                let v = verify(
                    self.engine,
                    img,
                    self.media,
                    self.opts,
                    &hk,
                    Strictness::Full,
                    None,
                    None,
                    rng.next_u64(),
                );
                if let Some(m) = v.violation {
                    return Verdict::bad(format!(
                        "second crash cycle (after a recovery that fell back, crash after op {k} of the next commit): {m}"
                    ));
                }
            }
        }
        let ack = if self.opts.no_sync {
            Label::NoSyncAck
        } else {
            Label::DurableAck
        };
        self.h.push(after_state, ack, Some(t));
        Verdict {
            matched: Some(self.j),
            txid: self.txid,
            after: Some(self.disk.current()),
            history: Some(self.h),
            extra_images: extra,
            ..Verdict::default()
        }
    }
}

/// The images of one crash state inside the probe commit: F1, F2 for every prefix (zero
/// fill), and six each of F3 and F4.
fn every_mode_images(st: &CrashState, media: Media, rng: &mut Rng) -> Vec<Vec<u8>> {
    let w = Window::new(st, media);
    let mut imgs = vec![w.process()];
    for p in 0..=st.pending.len() {
        imgs.push(w.prefix(p, Fill::Zeros));
    }
    for _ in 0..6 {
        imgs.push(w.random(Mode::Reorder, rng));
        imgs.push(w.random(Mode::Torn, rng));
    }
    imgs
}

/// Check an opened database: scan, match against the history, integrity check.
pub fn check_open(db: &dyn EngineDb, hist: &History, strict: Strictness) -> Verdict {
    let scanned = match catch(|| db.scan()) {
        Err(p) => return Verdict::bad(format!("I7: panic while reading: {p}")),
        Ok(Err(e)) => return open_refused(&e, strict, "I6: reading the recovered database failed"),
        Ok(Ok(s)) => s,
    };
    let txid = match catch(|| db.recovered_txid()) {
        Ok(t) => t,
        Err(p) => return Verdict::bad(format!("I7: panic in recovery(): {p}")),
    };
    let rolled_back = catch(|| db.rolled_back()).unwrap_or(None);
    if std::env::var_os("FI_TRACE").is_some() {
        eprintln!(
            "verify: recovered txid {txid}, rolled back {rolled_back:?}, keys {}",
            scanned.key_count()
        );
    }
    let j = match match_history(hist, &scanned, txid) {
        Ok(j) => j,
        Err(v) => return v,
    };
    if strict == Strictness::Full {
        if let Some(v) = open_cost(db, hist) {
            return Verdict::bad(v);
        }
    }
    // Damage reported without wrong data (Detect modes): a reported fall-back, or problems
    // found by the integrity check.
    let mut detected = false;
    let lo = hist.lo();
    if j < lo {
        let reported = rolled_back.is_some();
        detected = reported;
        if strict == Strictness::Full
            || strict == Strictness::DetectConfirmed
            || (strict == Strictness::Detect && !reported)
        {
            return Verdict::bad(format!(
                "I1: acknowledged commit #{lo} lost: recovered commit #{j} (txid {txid}){}",
                if reported {
                    format!(", rollback reported: {}", rolled_back.unwrap())
                } else {
                    ", no rollback reported".into()
                }
            ));
        }
    }
    match integrity(db, strict) {
        Err(v) => v,
        Ok(problems) => Verdict {
            matched: Some(j),
            txid,
            detected: detected || problems,
            ..Verdict::default()
        },
    }
}

/// I2: the index of the commit whose state was `scanned`. When the engine names a txid the
/// history knows, the data must be that commit's.
fn match_history(hist: &History, scanned: &State, txid: u64) -> Result<usize, Verdict> {
    let hi = hist.entries.len() - 1;
    // The commit the engine says it recovered, if we know its id.
    let by_txid = hist.entries.iter().rposition(|e| e.txid == Some(txid));
    let matched = match by_txid {
        Some(j) if *hist.entries[j].state == *scanned => Some(j),
        Some(j) => {
            // The engine claims commit j but shows other data.
            let other = hist.entries.iter().rposition(|e| *e.state == *scanned);
            return Err(Verdict::bad(match other {
                Some(o) => format!(
                    "I2: recovered txid {txid} (commit #{j}) but the data is that of commit #{o}: {}; history {:?}",
                    hist.entries[j].state.diff(scanned),
                    hist.entries.iter().map(|e| (e.label, e.txid)).collect::<Vec<_>>()
                ),
                None => format!(
                    "I2/I7: recovered txid {txid} (commit #{j}) but the data matches no commit: {}; history {:?}",
                    hist.entries[j].state.diff(scanned),
                    hist.entries.iter().map(|e| (e.label, e.txid, e.state.bucket_paths().len(), e.state.key_count())).collect::<Vec<_>>()
                ),
            }));
        }
        None => hist.entries.iter().rposition(|e| *e.state == *scanned),
    };
    matched.ok_or_else(|| Verdict::bad(format!(
        "I2: recovered state (txid {txid}) equals no commit prefix; vs last allowed #{hi}: {}; history {:?}; found buckets {:?} keys {}",
        hist.entries[hi].state.diff(scanned),
        hist.entries.iter().map(|e| (e.label, e.txid, e.state.bucket_paths().len(), e.state.key_count())).collect::<Vec<_>>(),
        scanned.bucket_paths().iter().map(|p| p.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>().join("/")).collect::<Vec<_>>(),
        scanned.key_count()
    )))
}

/// I5: the engine's integrity check. Under `Full` any problem is a violation; otherwise a
/// problem or a typed error is a detection (`Ok(true)`).
fn integrity(db: &dyn EngineDb, strict: Strictness) -> Result<bool, Verdict> {
    if strict == Strictness::Full {
        match catch(|| db.check()) {
            Err(p) => Err(Verdict::bad(format!("I7: panic in check: {p}"))),
            Ok(Err(e)) => Err(Verdict::bad(format!(
                "I5: integrity check failed to run: {e}"
            ))),
            Ok(Ok(problems)) if !problems.is_empty() => Err(Verdict::bad(format!(
                "I5: integrity check found {} problem(s), first: {}",
                problems.len(),
                problems[0]
            ))),
            Ok(Ok(_)) => Ok(false),
        }
    } else {
        match catch(|| db.check()) {
            Err(p) => Err(Verdict::bad(format!("I7: panic in check: {p}"))),
            Ok(Ok(problems)) if !problems.is_empty() => Ok(true),
            Ok(Err(e)) if e.is_detection() => Ok(true),
            _ => Ok(false),
        }
    }
}
