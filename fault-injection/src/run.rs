//! Driving workloads through the simulated disk: live lifetimes with a fault plan, the bounded
//! exhaustive tier (every crash point of a recorded run, every crash mode), and the I/O-error
//! sweeps (F7, F8).

use std::collections::HashSet;
use std::sync::Arc;

use crate::crash::{Fill, Mode, Window};
use crate::disk::{FaultPlan, LogOp, OpResult, SimDisk};
use crate::engine::{Engine, EngineDb, ErrKind, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::oracle::{catch, verify, History, Label, Strictness};
use crate::replay::Replayer;
use crate::rng::{hash_bytes, Digest, Rng};

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

// ---------------------------------------------------------------------------------------------
// The bounded exhaustive tier.

/// One configuration of the exhaustive tier.
#[derive(Clone, Debug)]
pub struct ExhCfg {
    pub workload: usize,
    pub page_size: usize,
    pub media: Media,
    pub no_sync: bool,
    /// Enumerate all 2^n old/new sector subsets when the window has at most this many sectors.
    pub subset_limit: usize,
    /// Random F3 images per crash point otherwise.
    pub reorder_samples: usize,
    /// Random F4 images per crash point.
    pub torn_samples: usize,
    /// Run the probe commit (with a crash inside it) on every n-th image.
    pub probe_every: usize,
    /// For this many images whose recovery fell back past a newer commit, crash the probe
    /// commit after every one of its ops in every mode (the rest get one random crash).
    pub full_probes: usize,
    pub seed: u64,
}

impl ExhCfg {
    pub fn describe(&self) -> String {
        format!(
            "workload={} page={} sector={} psow={} atomic={} no_sync={} seed={:#x}",
            crate::workload::fixed(self.page_size)[self.workload].name,
            self.page_size,
            self.media.sector,
            self.media.psow,
            self.media.sector_atomic,
            self.no_sync,
            self.seed
        )
    }
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Distinct crash images opened and checked.
    pub images: u64,
    /// Crash points (I/O ops) covered.
    pub crash_points: u64,
    /// Images where damage was detected and reported (Detect mode).
    pub detected: u64,
    pub violations: Vec<String>,
    /// Digest of the op log, images and verdicts (determinism).
    pub digest: u64,
}

impl Report {
    pub fn merge(&mut self, o: Report) {
        self.images += o.images;
        self.crash_points += o.crash_points;
        self.detected += o.detected;
        self.violations.extend(o.violations);
        self.digest ^= o.digest;
    }
}

struct CommitRec {
    start: u64,
    end: u64,
    txid: u64,
    state: State,
}

/// The commit protocol, checked on the recorded op log of each commit (ALICE-style: a
/// vulnerability per protocol step). P1: every page of a commit is written before its meta page
/// (only the sync, and a shrinking set_len, follow the meta write). P2: in durable mode the commit syncs after
/// its meta write before it is acknowledged.
fn protocol_check(
    log: &[(LogOp, OpResult)],
    recs: &[CommitRec],
    page: usize,
    no_sync: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    let p = page as u64;
    for (n, r) in recs.iter().enumerate() {
        let ops = &log[r.start as usize..r.end as usize];
        let is_meta = |op: &LogOp| matches!(op, LogOp::Write { off, data, .. } if (*off == 0 || *off == p) && data.len() == page);
        let Some(m) = ops.iter().position(|(op, _)| is_meta(op)) else {
            continue; // a commit that changed nothing writes nothing
        };
        let mut synced = false;
        for (op, _) in &ops[m + 1..] {
            match op {
                LogOp::Sync => synced = true,
                LogOp::Write { off, .. } => out.push(format!(
                    "P1 (protocol): commit #{} wrote page {} after its meta page{} (meta before data)",
                    n + 1,
                    off / p,
                    if synced { " and its sync" } else { "" }
                )),
                _ => {}
            }
        }
        if !no_sync && !synced {
            out.push(format!(
                "P2 (protocol): commit #{} was acknowledged without a sync after its meta page",
                n + 1
            ));
        }
    }
    out
}

/// Record a clean run of a fixed workload, then crash at every op with every mode.
pub fn exhaustive(engine: &dyn Engine, cfg: &ExhCfg) -> Report {
    let mut rep = Report::default();
    let mut dig = Digest::default();
    let opts = OpenOpts {
        page_size: cfg.page_size,
        no_sync: cfg.no_sync,
    };
    let wl = &crate::workload::fixed(cfg.page_size)[cfg.workload].commits;
    let disk = Arc::new(SimDisk::new(
        Vec::new(),
        cfg.media,
        FaultPlan::default(),
        cfg.seed,
    ));
    disk.record_log(true);
    let ctx = cfg.describe();
    let db = match catch(|| engine.open(disk.clone(), &opts)) {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => {
            rep.violations.push(format!("[{ctx}] create failed: {e}"));
            return rep;
        }
        Err(p) => {
            rep.violations.push(format!("[{ctx}] panic in create: {p}"));
            return rep;
        }
    };
    let mut recs = Vec::new();
    let mut state = State::default();
    for ops in wl {
        let start = disk.ops();
        state.apply_all(ops);
        match catch(|| db.commit(ops)) {
            Ok(Ok(txid)) => recs.push(CommitRec {
                start,
                end: disk.ops(),
                txid,
                state: state.clone(),
            }),
            Ok(Err(e)) => {
                rep.violations
                    .push(format!("[{ctx}] clean commit failed: {e}"));
                return rep;
            }
            Err(p) => {
                rep.violations
                    .push(format!("[{ctx}] panic in clean commit: {p}"));
                return rep;
            }
        }
    }
    if let Err(p) = catch(move || drop(db)) {
        rep.violations.push(format!("[{ctx}] panic in close: {p}"));
        return rep;
    }
    let log = disk.take_log();
    dig.u64(disk.digest());
    for v in protocol_check(&log, &recs, cfg.page_size, cfg.no_sync) {
        rep.violations.push(format!("[{ctx}] {v}"));
    }
    let strict = if cfg.media.psow {
        Strictness::Full
    } else {
        Strictness::Detect
    };
    let probe_ops = [
        Op::CreateBucket(vec![b"probe".to_vec()]),
        Op::Put(
            vec![b"probe".to_vec()],
            b"p".to_vec(),
            crate::workload::val(99, cfg.page_size / 2),
        ),
    ];
    let mut rng = Rng::new(cfg.seed);
    let mut rp = Replayer::new(Vec::new());
    let mut n_img = 0usize;
    let mut full_probes_left = cfg.full_probes;
    for k in 0..=log.len() {
        if k > 0 {
            rp.step(&log[k - 1]);
        }
        let k = k as u64;
        rep.crash_points += 1;
        // The history as of a crash after op k. A crash inside creation leaves the file
        // empty, absent or whole (`Storage::create` is atomic): each opens at the empty state,
        // so no allowance is made for refusing a half-made file.
        let mut hist = History::new();
        for r in &recs {
            if k <= r.start {
                break;
            }
            let label = if k > r.end {
                if cfg.no_sync {
                    Label::NoSyncAck
                } else {
                    Label::DurableAck
                }
            } else {
                Label::InFlight
            };
            hist.push(r.state.clone(), label, Some(r.txid));
        }
        let st = &rp.st;
        let w = Window::new(st, cfg.media);
        let mut images: Vec<(Mode, Vec<u8>)> = vec![(Mode::Process, w.process())];
        for j in 0..=st.pending.len() {
            images.push((Mode::Prefix, w.prefix(j, Fill::Zeros)));
            images.push((Mode::Prefix, w.prefix(j, Fill::Garbage(rng.next_u64()))));
        }
        match w.all_subsets(cfg.subset_limit, &mut rng) {
            Some(all) => images.extend(all.into_iter().map(|i| (Mode::Reorder, i))),
            None => {
                for _ in 0..cfg.reorder_samples {
                    images.push((Mode::Reorder, w.random(Mode::Reorder, &mut rng)));
                }
            }
        }
        if !st.pending.is_empty() {
            for _ in 0..cfg.torn_samples {
                images.push((Mode::Torn, w.random(Mode::Torn, &mut rng)));
            }
        }
        if !st.dir_synced {
            images.push((Mode::Reorder, Vec::new()));
        }
        let mut seen = HashSet::new();
        for (mode, img) in images {
            if !seen.insert(hash_bytes(&img)) {
                continue;
            }
            n_img += 1;
            rep.images += 1;
            dig.u64(hash_bytes(&img));
            let probe = (cfg.probe_every > 0 && n_img.is_multiple_of(cfg.probe_every))
                .then_some(&probe_ops[..]);
            let r = rng.below(6);
            let crash_probe = Some(if full_probes_left > 0 {
                crate::oracle::EVERY_OP_ON_ROLLBACK
            } else {
                1 + r
            });
            let img_len = img.len();
            // no_sync promises survival of process crashes only (I7 after a power cut).
            let strict = if cfg.no_sync && mode != Mode::Process {
                Strictness::DetectAnyCommit
            } else {
                strict
            };
            let v = verify(
                engine,
                img,
                cfg.media,
                opts,
                &hist,
                strict,
                probe,
                crash_probe,
                rng.next_u64(),
            );
            dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
            rep.images += v.extra_images;
            if v.extra_images > 0 {
                full_probes_left -= 1;
            }
            if v.detected {
                rep.detected += 1;
            }
            if let Some(m) = v.violation {
                rep.violations.push(format!(
                    "[{ctx}] crash after op {k}/{} ({mode}, {} unsynced ops, image {img_len} bytes): {m}",
                    log.len(),
                    st.pending.len()
                ));
            }
        }
    }
    rep.digest = dig.finish();
    rep
}

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

/// The bounded exhaustive tier's matrix: every fixed workload at page sizes 1K-16K with
/// 512- and 4096-byte sectors (PSOW, atomic sectors), plus sub-sector tearing (atomicity off),
/// PSOW off (Detect mode) and `no_sync` variants. For 16 images per configuration whose
/// recovery fell back past a newer commit, the next commit is crashed after every op.
pub fn ci_matrix() -> Vec<ExhCfg> {
    ci_matrix_with(16)
}

/// [`ci_matrix`] with `full_probes` (see [`ExhCfg::full_probes`]) per configuration.
pub fn ci_matrix_with(full_probes: usize) -> Vec<ExhCfg> {
    let mut v = Vec::new();
    let n_workloads = crate::workload::fixed(4096).len();
    let mut seed = 0x00C1_0000u64;
    for workload in 0..n_workloads {
        for page_size in [1024usize, 2048, 4096, 8192, 16384] {
            let mut medias = vec![
                (
                    Media {
                        sector: 512,
                        psow: true,
                        sector_atomic: true,
                    },
                    false,
                ),
                (
                    Media {
                        sector: 4096,
                        psow: true,
                        sector_atomic: true,
                    },
                    false,
                ),
            ];
            if page_size == 4096 || page_size == 1024 {
                medias.push((
                    Media {
                        sector: 4096,
                        psow: true,
                        sector_atomic: false,
                    },
                    false,
                ));
                medias.push((
                    Media {
                        sector: 4096,
                        psow: false,
                        sector_atomic: true,
                    },
                    false,
                ));
                medias.push((
                    Media {
                        sector: 512,
                        psow: true,
                        sector_atomic: true,
                    },
                    true,
                ));
            }
            for (media, no_sync) in medias {
                seed += 1;
                v.push(ExhCfg {
                    workload,
                    page_size,
                    media,
                    no_sync,
                    subset_limit: 10,
                    reorder_samples: 400,
                    torn_samples: 240,
                    probe_every: 1,
                    full_probes,
                    seed,
                });
            }
        }
    }
    v
}

/// Faults outside the model, swept deterministically: each write of a workload lost (F12) or
/// misdirected (F11) in turn, then for each sector of the finished file that holds data: one bit
/// flipped (F10), the sector read as zeros (F9), and its bytes read in place of another
/// sector's (F13).
/// Invariant I7: open and reads return the data of some commit or a typed error, never wrong
/// data, never a panic; a fall-back below the last commit after bit rot must be reported.
pub fn at_rest_sweep(
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
    let mut rng = Rng::new(seed ^ 0xa7e5);
    for n in 1..=clean.counts.0 {
        for lose in [true, false] {
            let plan = FaultPlan {
                lose_write: lose.then_some(n),
                misdirect_write: (!lose).then_some(n),
                ..FaultPlan::default()
            };
            let desc = format!(
                "at-rest workload={} page={page_size} sector={} {} write #{n} seed={seed:#x}",
                wl.name,
                media.sector,
                if lose { "lost" } else { "misdirected" }
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
            let img = Window::new(&lt.crash, media).process();
            rep.images += 1;
            let v = verify(
                engine,
                img,
                media,
                opts,
                &lt.hist,
                Strictness::DetectAnyCommit,
                None,
                None,
                rng.next_u64(),
            );
            dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
            if v.detected {
                rep.detected += 1;
            }
            if let Some(m) = v.violation {
                rep.violations.push(format!("[{desc}] {m}"));
            }
        }
    }
    // Bit rot: one flipped bit in each sector of the finished file that holds data (sectors
    // of zeros past the high-water mark would only test nothing).
    let image = clean.crash.current.clone();
    for s in 0..image.len().div_ceil(media.sector) {
        let start = s * media.sector;
        let end = (start + media.sector).min(image.len());
        let nonzero: Vec<usize> = (start..end).filter(|&i| image[i] != 0).collect();
        if nonzero.is_empty() {
            continue;
        }
        let mut img = image.clone();
        // Half the flips land on a byte that holds data, half anywhere in the sector.
        let i = if rng.chance(0.5) {
            nonzero[rng.below_usize(nonzero.len())]
        } else {
            start + rng.below_usize(end - start)
        };
        img[i] ^= 1 << rng.below(8);
        rep.images += 1;
        let v = verify(
            engine,
            img,
            media,
            opts,
            &clean.hist,
            Strictness::DetectConfirmed,
            None,
            None,
            rng.next_u64(),
        );
        dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
        if v.detected {
            rep.detected += 1;
        }
        if let Some(m) = v.violation {
            rep.violations.push(format!(
                "[bit rot workload={} page={page_size} sector={} byte {i} seed={seed:#x}] {m}",
                wl.name, media.sector
            ));
        }
        // F9: a latent sector error on a controller that returns zeros for the sector.
        let mut img = image.clone();
        img[start..end].fill(0);
        rep.images += 1;
        let v = verify(
            engine,
            img,
            media,
            opts,
            &clean.hist,
            Strictness::DetectConfirmed,
            None,
            None,
            rng.next_u64(),
        );
        dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
        if v.detected {
            rep.detected += 1;
        }
        if let Some(m) = v.violation {
            rep.violations.push(format!(
                "[zeroed sector {s} (F9) workload={} page={page_size} sector={} seed={seed:#x}] {m}",
                wl.name, media.sector
            ));
        }
        // F13: a misdirected read. One open sees this sector's bytes in place of another
        // sector's: a typed error or the data of some commit.
        let other = rng.below_usize(image.len().div_ceil(media.sector));
        if other != s {
            let ostart = other * media.sector;
            let oend = (ostart + (end - start)).min(image.len());
            let mut img = image.clone();
            let n = oend - ostart;
            img.copy_within(start..start + n, ostart);
            rep.images += 1;
            let v = verify(
                engine,
                img,
                media,
                opts,
                &clean.hist,
                Strictness::DetectConfirmed,
                None,
                None,
                rng.next_u64(),
            );
            if let Some(m) = v.violation {
                rep.violations.push(format!(
                    "[misdirected read of sector {s} at sector {other} (F13) workload={} page={page_size} seed={seed:#x}] {m}",
                    wl.name
                ));
            }
        }
    }
    rep.digest = dig.finish();
    rep
}

/// Run `f` over `items` on up to `threads` threads; results in input order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                *out[i].lock().unwrap() = Some(r);
            });
        }
    });
    out.into_iter()
        .map(|m| m.into_inner().unwrap().unwrap())
        .collect()
}

/// Threads for the test tiers: the machine's parallelism, at most 4.
pub fn test_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}
