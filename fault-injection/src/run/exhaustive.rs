//! The bounded exhaustive tier: record a clean run of a fixed workload once, then rebuild the
//! crash state after every op and check every crash mode's images of it against the oracle.

use std::collections::HashSet;
use std::sync::Arc;

use super::protocol::{protocol_check, CommitRec};
use super::report::Report;
use crate::crash::{Fill, Mode, Window};
use crate::disk::{FaultPlan, LogOp, OpResult, SimDisk};
use crate::engine::{Engine, EngineReader, OpenOpts};
use crate::image::{CrashState, Media};
use crate::model::{Op, State};
use crate::oracle::{catch, verify, History, Label, Strictness, EVERY_OP_ON_ROLLBACK};
use crate::replay::Replayer;
use crate::rng::{hash_bytes, Digest, Rng};

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
    /// Hold a reader of the first commit's snapshot open across the rest of the recorded run
    /// (and a `shrink_to_fit` under it, then one after it ends), checking it after each commit
    /// (I11): the engine must keep the pages it reads, so the crash images differ too.
    pub readers: bool,
    pub seed: u64,
}

impl ExhCfg {
    pub fn describe(&self) -> String {
        format!(
            "workload={}{} page={} sector={} psow={} atomic={} no_sync={} seed={:#x}",
            crate::workload::fixed(self.page_size)[self.workload].name,
            if self.readers { "+reader" } else { "" },
            self.page_size,
            self.media.sector,
            self.media.psow,
            self.media.sector_atomic,
            self.no_sync,
            self.seed
        )
    }
}

/// Record a clean run of a fixed workload, then crash at every op with every mode.
pub fn exhaustive(engine: &dyn Engine, cfg: &ExhCfg) -> Report {
    let opts = OpenOpts {
        page_size: cfg.page_size,
        no_sync: cfg.no_sync,
    };
    let ctx = cfg.describe();
    let rec = match record(engine, cfg, opts) {
        Ok(rec) => rec,
        Err(v) => {
            return Report {
                violations: vec![format!("[{ctx}] {v}")],
                ..Report::default()
            }
        }
    };
    let mut ch = Checker::new(engine, cfg, opts, ctx);
    ch.dig.u64(rec.digest);
    ch.rep.reader_checks = rec.reader_checks;
    for v in protocol_check(&rec.log, &rec.recs, cfg.page_size, cfg.no_sync) {
        ch.rep.violations.push(format!("[{}] {v}", ch.ctx));
    }
    let mut rp = Replayer::new(Vec::new());
    for k in 0..=rec.log.len() {
        if k > 0 {
            rp.step(&rec.log[k - 1]);
        }
        ch.crash_point(k as u64, &rp.st, &rec);
    }
    ch.rep.digest = ch.dig.finish();
    ch.rep
}

/// A clean run of the workload on a recording disk.
struct Recording {
    log: Vec<(LogOp, OpResult)>,
    recs: Vec<CommitRec>,
    /// Pages each commit of `recs` wrote (I12's bound).
    pages: Vec<u64>,
    /// Under `no_sync`: for each `Db::sync` (after every commit from the second to the one
    /// before the last), the op that ended it and how many commits it made durable.
    synced: Vec<(u64, usize)>,
    /// Digest of the op log.
    digest: u64,
    /// Scans of the held reader compared with the model (I11).
    reader_checks: u64,
}

/// Create the database and run the workload's commits on a healthy disk that keeps every op;
/// a failure here is a violation that ends the configuration.
fn record(engine: &dyn Engine, cfg: &ExhCfg, opts: OpenOpts) -> Result<Recording, String> {
    let wl = &crate::workload::fixed(cfg.page_size)[cfg.workload].commits;
    let disk = Arc::new(SimDisk::new(
        Vec::new(),
        cfg.media,
        FaultPlan::default(),
        cfg.seed,
    ));
    disk.record_log(true);
    let db = match catch(|| engine.open(disk.clone(), &opts)) {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(format!("create failed: {e}")),
        Err(p) => return Err(format!("panic in create: {p}")),
    };
    let mut recs = Vec::new();
    let mut pages = Vec::new();
    let mut state = State::default();
    let mut reader: Option<(Box<dyn EngineReader + '_>, State)> = None;
    let mut reader_checks = 0;
    let mut synced = Vec::new();
    for (i, ops) in wl.iter().enumerate() {
        let start = disk.ops();
        let bytes = disk.bytes_written();
        state.apply_all(ops);
        let r = catch(|| db.commit(ops));
        pages.push((disk.bytes_written() - bytes).div_ceil(cfg.page_size as u64));
        match r {
            Ok(Ok(txid)) => recs.push(CommitRec {
                start,
                end: disk.ops(),
                txid,
                state: state.clone(),
            }),
            Ok(Err(e)) => return Err(format!("clean commit failed: {e}")),
            Err(p) => return Err(format!("panic in clean commit: {p}")),
        }
        // Under no_sync, `Db::sync` after every commit from the second to the one before the
        // last (two unsynced commits first, one last): crashes after it must recover the synced
        // commit or later (the file may not be cut below its pages, nor its meta overwritten).
        if opts.no_sync && i >= 1 && i + 1 < wl.len() {
            match catch(|| db.sync()) {
                Ok(Some(Ok(()))) => synced.push((disk.ops(), recs.len())),
                Ok(Some(Err(e))) => return Err(format!("clean Db::sync failed: {e}")),
                Ok(None) => {}
                Err(p) => return Err(format!("panic in clean Db::sync: {p}")),
            }
        }
        if cfg.readers && i == 0 {
            let r = catch(|| db.begin_read())
                .map_err(|p| format!("panic in begin_read: {p}"))?
                .map_err(|e| format!("begin_read failed: {e}"))?;
            reader = Some((r, state.clone()));
        }
        if let Some((r, want)) = &reader {
            reader_checks += 1;
            check_reader(&**r, want)?;
        }
    }
    if let Some((r, want)) = reader.take() {
        // A shrink under the reader (the engine must skip it or keep the reader's pages), a
        // last check, then the reader ends and the file may shrink.
        catch(|| db.shrink_to_fit())
            .map_err(|p| format!("panic in shrink_to_fit: {p}"))?
            .map_err(|e| format!("shrink_to_fit failed: {e}"))?;
        reader_checks += 1;
        check_reader(&*r, &want)?;
        drop(r);
        catch(|| db.shrink_to_fit())
            .map_err(|p| format!("panic in shrink_to_fit: {p}"))?
            .map_err(|e| format!("shrink_to_fit failed: {e}"))?;
    }
    drop(reader);
    catch(move || drop(db)).map_err(|p| format!("panic in close: {p}"))?;
    Ok(Recording {
        log: disk.take_log(),
        recs,
        pages,
        synced,
        digest: disk.digest(),
        reader_checks,
    })
}

/// I11: the held reader still reads the state it began at.
fn check_reader(r: &dyn EngineReader, want: &State) -> Result<(), String> {
    match catch(|| r.scan()) {
        Err(p) => Err(format!("I7: panic while scanning a held reader: {p}")),
        Ok(Err(e)) => Err(format!("I11: the held reader's scan failed: {e}")),
        Ok(Ok(st)) if st != *want => Err(format!(
            "I11: the held reader (txid {}) reads other data: {}",
            r.txid(),
            want.diff(&st)
        )),
        Ok(Ok(_)) => Ok(()),
    }
}

/// The history as of a crash after op `k`. A crash inside creation leaves the file empty,
/// absent or whole (`Storage::create` is atomic): each opens at the empty state, so no allowance
/// is made for refusing a half-made file.
fn history_at(
    recs: &[CommitRec],
    pages: &[u64],
    synced: &[(u64, usize)],
    k: u64,
    no_sync: bool,
) -> History {
    let mut hist = History::new();
    // Commits a `Db::sync` that returned before op `k` made durable.
    let durable = synced
        .iter()
        .filter(|&&(end, _)| k > end)
        .map(|&(_, n)| n)
        .max()
        .unwrap_or(0);
    for (i, (r, &pages)) in recs.iter().zip(pages).enumerate() {
        if k <= r.start {
            break;
        }
        let label = if k > r.end {
            if no_sync && i >= durable {
                Label::NoSyncAck
            } else {
                Label::DurableAck
            }
        } else {
            Label::InFlight
        };
        hist.push_measured(r.state.clone(), label, Some(r.txid), Some(pages));
    }
    hist
}

/// The images of one crash state: F1; F2 for every prefix, zero- and garbage-filled; F3 for
/// every sector subset of a small window, sampled otherwise; F4 sampled while anything is
/// unsynced; and no file at all (F6) while its directory entry is not durable.
fn crash_images(st: &CrashState, cfg: &ExhCfg, rng: &mut Rng) -> Vec<(Mode, Vec<u8>)> {
    let w = Window::new(st, cfg.media);
    let mut images: Vec<(Mode, Vec<u8>)> = vec![(Mode::Process, w.process())];
    for j in 0..=st.pending.len() {
        images.push((Mode::Prefix, w.prefix(j, Fill::Zeros)));
        images.push((Mode::Prefix, w.prefix(j, Fill::Garbage(rng.next_u64()))));
    }
    match w.all_subsets(cfg.subset_limit, rng) {
        Some(all) => images.extend(all.into_iter().map(|i| (Mode::Reorder, i))),
        None => {
            for _ in 0..cfg.reorder_samples {
                images.push((Mode::Reorder, w.random(Mode::Reorder, rng)));
            }
        }
    }
    if !st.pending.is_empty() {
        for _ in 0..cfg.torn_samples {
            images.push((Mode::Torn, w.random(Mode::Torn, rng)));
        }
    }
    if !st.dir_synced {
        images.push((Mode::Reorder, Vec::new()));
    }
    images
}

/// Checks the crash images of one configuration against the oracle, with a probe commit (and
/// a crash inside it) after recovery.
struct Checker<'a> {
    engine: &'a dyn Engine,
    cfg: &'a ExhCfg,
    opts: OpenOpts,
    ctx: String,
    /// PSOW off is outside the model: detect and report (I7) instead of the full check.
    strict: Strictness,
    probe_ops: [Op; 2],
    rng: Rng,
    /// Images checked so far (the probe runs on every `probe_every`-th).
    n_img: usize,
    full_probes_left: usize,
    rep: Report,
    dig: Digest,
}

impl<'a> Checker<'a> {
    fn new(engine: &'a dyn Engine, cfg: &'a ExhCfg, opts: OpenOpts, ctx: String) -> Self {
        Checker {
            engine,
            cfg,
            opts,
            ctx,
            strict: if cfg.media.psow {
                Strictness::Full
            } else {
                Strictness::Detect
            },
            probe_ops: [
                Op::CreateBucket(vec![b"probe".to_vec()]),
                Op::Put(
                    vec![b"probe".to_vec()],
                    b"p".to_vec(),
                    crate::workload::val(99, cfg.page_size / 2),
                ),
            ],
            rng: Rng::new(cfg.seed),
            n_img: 0,
            full_probes_left: cfg.full_probes,
            rep: Report::default(),
            dig: Digest::default(),
        }
    }

    /// A crash after op `k` of the recording, whose state then was `st`: each distinct image.
    fn crash_point(&mut self, k: u64, st: &CrashState, rec: &Recording) {
        self.rep.crash_points += 1;
        let hist = history_at(&rec.recs, &rec.pages, &rec.synced, k, self.cfg.no_sync);
        let mut seen = HashSet::new();
        for (mode, img) in crash_images(st, self.cfg, &mut self.rng) {
            if !seen.insert(hash_bytes(&img)) {
                continue;
            }
            let img_len = img.len();
            let Some(m) = self.check(mode, img, &hist) else {
                continue;
            };
            self.rep.violations.push(format!(
                "[{}] crash after op {k}/{} ({mode}, {} unsynced ops, image {img_len} bytes): {m}",
                self.ctx,
                rec.log.len(),
                st.pending.len()
            ));
        }
        if self.strict == Strictness::Full && !st.pending.is_empty() {
            self.power_cut_in_recovery(k, st, &hist, rec);
        }
    }

    /// A process crash after op `k` (F1: the page cache keeps what was written, the media only
    /// what was synced), then the power fails after each op of the next process's open (its
    /// syncs, its meta repair and confirmation): three images of each such crash, checked in
    /// full. An open that confirms what it found before syncing it makes a torn commit look
    /// confirmed (Corruption at the next open).
    fn power_cut_in_recovery(&mut self, k: u64, st: &CrashState, hist: &History, rec: &Recording) {
        let cfg = self.cfg;
        let disk = |crash_after| {
            let plan = FaultPlan {
                crash_after,
                ..FaultPlan::default()
            };
            Arc::new(SimDisk::after_process_crash(st, cfg.media, plan, cfg.seed))
        };
        let clean = disk(None);
        let opened = catch(|| self.engine.open(clean.clone(), &self.opts).map(drop));
        if !matches!(opened, Ok(Ok(()))) {
            return; // the ordinary check of the F1 image reports it
        }
        for j in 1..=clean.ops() {
            let d = disk(Some(j));
            let _ = catch(|| self.engine.open(d.clone(), &self.opts).map(drop));
            let Some(cs) = d.crashed() else { continue };
            let w = Window::new(&cs, cfg.media);
            for _ in 0..3 {
                let mode = Mode::draw(&mut self.rng);
                let img = w.random(mode, &mut self.rng);
                self.rep.images += 1;
                self.rep.recovery_cuts += 1;
                self.dig.u64(hash_bytes(&img));
                let v = verify(
                    self.engine,
                    img,
                    cfg.media,
                    self.opts,
                    hist,
                    Strictness::Full,
                    None,
                    None,
                    self.rng.next_u64(),
                );
                if let Some(m) = v.violation {
                    self.rep.violations.push(format!(
                        "[{}] process crash after op {k}/{}, then {mode} after op {j} of the reopen: {m}",
                        self.ctx,
                        rec.log.len(),
                    ));
                }
            }
        }
    }

    /// Open one image, check it against `hist` and run the probe commit after recovery;
    /// returns the violation, if any, for the caller to label.
    fn check(&mut self, mode: Mode, img: Vec<u8>, hist: &History) -> Option<String> {
        let cfg = self.cfg;
        self.n_img += 1;
        self.rep.images += 1;
        self.dig.u64(hash_bytes(&img));
        let probe = (cfg.probe_every > 0 && self.n_img.is_multiple_of(cfg.probe_every))
            .then_some(&self.probe_ops[..]);
        let r = self.rng.below(6);
        let crash_probe = Some(if self.full_probes_left > 0 {
            EVERY_OP_ON_ROLLBACK
        } else {
            1 + r
        });
        // no_sync promises survival of process crashes only (I7 after a power cut), unless the
        // engine promises the last sync survives (deadbolt: docs/FORMAT.md, section 7); then a
        // power cut is checked in full against the last durable commit.
        let strict =
            if cfg.no_sync && mode != Mode::Process && !self.engine.no_sync_keeps_the_last_sync() {
                Strictness::DetectAnyCommit
            } else {
                self.strict
            };
        let v = verify(
            self.engine,
            img,
            cfg.media,
            self.opts,
            hist,
            strict,
            probe,
            crash_probe,
            self.rng.next_u64(),
        );
        self.dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
        self.rep.images += v.extra_images;
        if v.extra_images > 0 {
            self.full_probes_left -= 1;
        }
        if v.detected {
            self.rep.detected += 1;
        }
        v.violation
    }
}
