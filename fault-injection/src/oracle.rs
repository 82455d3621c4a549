//! The oracle: the history of commits with their outcomes, and the check of a recovered
//! database against it (invariants I1-I8).

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Once};

use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{Engine, EngineDb, OpenOpts};
use crate::image::Media;
use crate::model::{Op, State};
use crate::replay::Replayer;

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
            }],
        }
    }

    pub fn last_state(&self) -> &Arc<State> {
        &self.entries.last().unwrap().state
    }

    pub fn push(&mut self, state: State, label: Label, txid: Option<u64>) {
        self.entries.push(Entry {
            state: Arc::new(state),
            label,
            txid,
        });
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
    let opened = catch(|| engine.open(disk.clone(), &opts));
    let db: Box<dyn EngineDb> = match opened {
        Err(p) => return Verdict::bad(format!("I7: panic in open: {p}")),
        Ok(Err(e)) => {
            if strict != Strictness::Full && e.is_detection() {
                return Verdict {
                    detected: true,
                    ..Verdict::default()
                };
            }
            return Verdict::bad(format!("I6: open failed after crash: {e}"));
        }
        Ok(Ok(db)) => db,
    };
    let v = check_open(&*db, hist, strict);
    if v.violation.is_some() {
        if let Some(path) = std::env::var_os("FI_DUMP_IMAGE") {
            // Debug aid: keep the image that produced the violation.
            let _ = std::fs::write(path, disk.durable());
        }
    }
    if v.violation.is_some() || v.detected {
        return v;
    }
    let j = v.matched.unwrap();
    let txid = v.txid;
    if strict == Strictness::Full && seed.is_multiple_of(4) {
        // I9: recovering again from what the first recovery left gives the same commit.
        let again = Arc::new(SimDisk::new(
            disk.current(),
            media,
            FaultPlan::default(),
            seed,
        ));
        match catch(|| {
            engine
                .open(again.clone(), &opts)
                .and_then(|d| Ok((d.scan()?, d.recovered_txid())))
        }) {
            Err(p) => return Verdict::bad(format!("I7: panic in the second recovery: {p}")),
            Ok(Err(e)) => return Verdict::bad(format!("I9: the second recovery failed: {e}")),
            Ok(Ok((st, t))) => {
                if st != *hist.entries[j].state || t != txid {
                    return Verdict::bad(format!(
                        "I9: recovering twice differs: txid {txid} then {t}; {}",
                        hist.entries[j].state.diff(&st)
                    ));
                }
            }
        }
    }
    let mut h = hist.clone();
    h.rebase(j, txid);
    if let (Some(ops), Some(image0)) = (probe, image0) {
        let rolled_back = catch(|| db.rolled_back()).unwrap_or(None);
        if strict == Strictness::Full
            && rolled_back.is_some()
            && crash_probe == Some(EVERY_OP_ON_ROLLBACK)
        {
            // Open fell back past a newer commit: the state most likely to hide a stale
            // half-commit. Crash at every op of the next commit, in every mode (F14, I9).
            return probe_every_op(
                engine, db, &disk, image0, media, opts, h, ops, j, txid, seed,
            );
        }
        if strict == Strictness::Full {
            if let Some(mut n) = crash_probe {
                if n == EVERY_OP_ON_ROLLBACK {
                    n = 1 + seed % 6;
                }
                disk.set_crash_after(Some(disk.ops() + n));
            }
            let before = h.last_state().clone();
            let mut after_state = (*before).clone();
            after_state.apply_all(ops);
            let r = catch(|| db.commit(ops));
            match r {
                Err(p) => return Verdict::bad(format!("I7: panic in commit after recovery: {p}")),
                Ok(Err(e)) if !disk.is_crashed() => {
                    return Verdict::bad(format!("I6: commit after recovery failed: {e}"))
                }
                Ok(Err(_)) => h.push(after_state, Label::InFlight, None),
                Ok(Ok(t)) => {
                    if disk.is_crashed() {
                        h.push(after_state, Label::InFlight, Some(t));
                    } else {
                        h.push(after_state, Label::DurableAck, Some(t));
                    }
                }
            }
            if let Some(st) = disk.crashed() {
                drop(catch(move || drop(db)));
                // Second crash cycle inside the probe commit.
                let mut rng = crate::rng::Rng::new(seed ^ 0x5eed);
                let w = crate::crash::Window::new(&st, media);
                let mode = crate::crash::Mode::draw(&mut rng);
                let img = w.random(mode, &mut rng);
                let v2 = verify(
                    engine,
                    img,
                    media,
                    opts,
                    &h,
                    strict,
                    None,
                    None,
                    rng.next_u64(),
                );
                if let Some(m) = v2.violation {
                    return Verdict::bad(format!(
                        "second crash cycle ({mode} inside the commit after recovery): {m}"
                    ));
                }
                return Verdict {
                    matched: Some(j),
                    txid,
                    after: v2.after,
                    history: v2.history,
                    ..Verdict::default()
                };
            }
            match catch(|| db.scan()) {
                Err(p) => return Verdict::bad(format!("I7: panic in read after probe: {p}")),
                Ok(Err(e)) => {
                    return Verdict::bad(format!("I6: read after probe commit failed: {e}"))
                }
                Ok(Ok(s)) => {
                    if s != **h.last_state() {
                        return Verdict::bad(format!(
                            "I6: probe commit not visible: {}",
                            h.last_state().diff(&s)
                        ));
                    }
                }
            }
        }
    }
    if catch(move || drop(db)).is_err() {
        return Verdict::bad("I7: panic while closing".into());
    }
    let after = disk.current();
    Verdict {
        matched: Some(j),
        txid,
        after: Some(after),
        history: Some(h),
        ..Verdict::default()
    }
}

/// Check an opened database: scan, match against the history, integrity check.
pub fn check_open(db: &dyn EngineDb, hist: &History, strict: Strictness) -> Verdict {
    let scanned = match catch(|| db.scan()) {
        Err(p) => return Verdict::bad(format!("I7: panic while reading: {p}")),
        Ok(Err(e)) => {
            if strict != Strictness::Full && e.is_detection() {
                return Verdict {
                    detected: true,
                    ..Verdict::default()
                };
            }
            return Verdict::bad(format!("I6: reading the recovered database failed: {e}"));
        }
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
    let lo = hist.lo();
    let hi = hist.entries.len() - 1;
    // The commit the engine says it recovered, if we know its id.
    let by_txid = hist.entries.iter().rposition(|e| e.txid == Some(txid));
    let matched = match by_txid {
        Some(j) if *hist.entries[j].state == scanned => Some(j),
        Some(j) => {
            // The engine claims commit j but shows other data.
            let other = hist.entries.iter().rposition(|e| *e.state == scanned);
            return Verdict::bad(match other {
                Some(o) => format!(
                    "I2: recovered txid {txid} (commit #{j}) but the data is that of commit #{o}: {}; history {:?}",
                    hist.entries[j].state.diff(&scanned),
                    hist.entries.iter().map(|e| (e.label, e.txid)).collect::<Vec<_>>()
                ),
                None => format!(
                    "I2/I7: recovered txid {txid} (commit #{j}) but the data matches no commit: {}; history {:?}",
                    hist.entries[j].state.diff(&scanned),
                    hist.entries.iter().map(|e| (e.label, e.txid, e.state.bucket_paths().len(), e.state.key_count())).collect::<Vec<_>>()
                ),
            });
        }
        None => hist.entries.iter().rposition(|e| *e.state == scanned),
    };
    let Some(j) = matched else {
        return Verdict::bad(format!(
            "I2: recovered state (txid {txid}) equals no commit prefix; vs last allowed #{hi}: {}; history {:?}; found buckets {:?} keys {}",
            hist.entries[hi].state.diff(&scanned),
            hist.entries.iter().map(|e| (e.label, e.txid, e.state.bucket_paths().len(), e.state.key_count())).collect::<Vec<_>>(),
            scanned.bucket_paths().iter().map(|p| p.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect::<Vec<_>>().join("/")).collect::<Vec<_>>(),
            scanned.key_count()
        ));
    };
    // Damage reported without wrong data (Detect modes): a reported fall-back, or problems
    // found by the integrity check.
    let mut detected = false;
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
    if strict == Strictness::Full {
        match catch(|| db.check()) {
            Err(p) => return Verdict::bad(format!("I7: panic in check: {p}")),
            Ok(Err(e)) => return Verdict::bad(format!("I5: integrity check failed to run: {e}")),
            Ok(Ok(problems)) if !problems.is_empty() => {
                return Verdict::bad(format!(
                    "I5: integrity check found {} problem(s), first: {}",
                    problems.len(),
                    problems[0]
                ))
            }
            Ok(Ok(_)) => {}
        }
    } else {
        match catch(|| db.check()) {
            Err(p) => return Verdict::bad(format!("I7: panic in check: {p}")),
            Ok(Ok(problems)) if !problems.is_empty() => detected = true,
            Ok(Err(e)) if e.is_detection() => detected = true,
            _ => {}
        }
    }
    Verdict {
        matched: Some(j),
        txid,
        detected,
        ..Verdict::default()
    }
}

/// The commit after a recovery that fell back, crashed after each of its ops with every mode.
#[allow(clippy::too_many_arguments)]
fn probe_every_op(
    engine: &dyn Engine,
    db: Box<dyn EngineDb>,
    disk: &SimDisk,
    image0: Vec<u8>,
    media: Media,
    opts: OpenOpts,
    mut h: History,
    ops: &[Op],
    j: usize,
    txid: u64,
    seed: u64,
) -> Verdict {
    let before = disk.ops() as usize;
    let mut after_state = (**h.last_state()).clone();
    after_state.apply_all(ops);
    let r = catch(|| db.commit(ops));
    let t = match r {
        Err(p) => return Verdict::bad(format!("I7: panic in commit after recovery: {p}")),
        Ok(Err(e)) => return Verdict::bad(format!("I6: commit after recovery failed: {e}")),
        Ok(Ok(t)) => t,
    };
    if catch(move || drop(db)).is_err() {
        return Verdict::bad("I7: panic while closing".into());
    }
    let log = disk.take_log();
    let end = log.len();
    let mut rp = Replayer::new(image0);
    let mut rng = crate::rng::Rng::new(seed ^ 0xe7e7);
    let mut extra = 0u64;
    let mut seen = std::collections::HashSet::new();
    for (k, op) in log.iter().enumerate() {
        rp.step(op);
        let k = k + 1;
        if k <= before {
            continue;
        }
        let mut hk = h.clone();
        // Crash after op k <= end: the commit had not necessarily returned.
        debug_assert!(k <= end);
        hk.push(after_state.clone(), Label::InFlight, Some(t));
        let w = crate::crash::Window::new(&rp.st, media);
        let mut imgs = vec![w.process()];
        for p in 0..=rp.st.pending.len() {
            imgs.push(w.prefix(p, crate::crash::Fill::Zeros));
        }
        for _ in 0..6 {
            imgs.push(w.random(crate::crash::Mode::Reorder, &mut rng));
            imgs.push(w.random(crate::crash::Mode::Torn, &mut rng));
        }
        for img in imgs {
            if !seen.insert(crate::rng::hash_bytes(&img)) {
                continue;
            }
            extra += 1;
            let v = verify(
                engine,
                img,
                media,
                opts,
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
    h.push(after_state, Label::DurableAck, Some(t));
    Verdict {
        matched: Some(j),
        txid,
        after: Some(disk.current()),
        history: Some(h),
        extra_images: extra,
        ..Verdict::default()
    }
}
