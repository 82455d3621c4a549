//! Tier 2: one randomised case per seed. A case draws its own parameters (page size, sector
//! size, media assumptions, workload shape, fault mix: swarm testing), then runs several
//! crash-recover-verify cycles on one database: a lifetime of random commits under a fault plan,
//! a crash, several crash images checked against the oracle, and the next lifetime continuing
//! from one of them.

use crate::coverage::{Coverage, PathId};
use crate::crash::{Mode, Window};
use crate::disk::FaultPlan;
use crate::engine::{Engine, Maint, OpenOpts};
use crate::image::Media;
use crate::model::Op;
use crate::oracle::{verify, History, Strictness, Verdict, EVERY_OP_ON_ROLLBACK};
use crate::rng::{hash_bytes, Digest, Rng};
use crate::run::{live_with, reader_lifetime, Lifetime, Step};
use crate::workload::{paths_commit, random_commit, Params};

#[derive(Debug, Default, Clone)]
pub struct CaseResult {
    /// Crash images opened and checked against the oracle.
    pub states: u64,
    /// Of which damage was detected and reported (faults outside the model).
    pub detected: u64,
    pub cycles: u64,
    pub commits: u64,
    /// Scans of long-lived readers compared with the model (I11).
    pub reader_checks: u64,
    /// Reader lifetimes run with a failing, zeroed-sector or short `view`.
    pub read_faults: u64,
    pub violations: Vec<String>,
    /// Digest of op logs, images and verdicts: the same seed must give the same digest.
    pub digest: u64,
    pub describe: String,
    /// Engine paths reached, protocol-monitored lifetimes, crashes after a rollback.
    pub cov: Coverage,
}

/// The seed of case `i` of a run started with `--seed base`.
pub fn case_seed(base: u64, i: u64) -> u64 {
    crate::rng::mix(base ^ crate::rng::mix(i))
}

/// Flip bits in, or trash, one random sector of `img` (F10 bit rot at rest).
fn bit_rot(img: &mut [u8], sector: usize, rng: &mut Rng) -> String {
    if img.is_empty() {
        return "bit rot: empty file, nothing to corrupt".into();
    }
    let sectors = img.len().div_ceil(sector);
    let s = rng.below_usize(sectors);
    let start = s * sector;
    let end = (start + sector).min(img.len());
    if rng.chance(0.3) {
        rng.fill(&mut img[start..end]);
        format!("bit rot: sector {s} replaced by random bytes")
    } else {
        let m = 1 + rng.below_usize(8);
        for _ in 0..m {
            let i = start + rng.below_usize(end - start);
            img[i] ^= 1 << rng.below(8);
        }
        format!("bit rot: {m} bit(s) flipped in sector {s}")
    }
}

/// One torture case: parameters, workload and faults all drawn from `seed`.
pub fn run_case(engine: &dyn Engine, seed: u64) -> CaseResult {
    run_case_with(engine, seed, false)
}

/// A torture case on a small database (1-4 KiB pages, values up to 64 bytes, at most 16 keys,
/// at most 10 commits a cycle): the configuration the states/second figure is quoted for.
pub fn run_case_small(engine: &dyn Engine, seed: u64) -> CaseResult {
    run_case_with(engine, seed, true)
}

fn run_case_with(engine: &dyn Engine, seed: u64, small: bool) -> CaseResult {
    let mut rng = Rng::new(seed);
    let case = Case::draw(&mut rng, small);
    let mut run = CaseRun {
        engine,
        res: CaseResult {
            describe: case.describe(),
            ..CaseResult::default()
        },
        case,
        rng,
        dig: Digest::default(),
        est_ops: 20,
    };
    let mut image: Vec<u8> = Vec::new();
    let mut hist = History::new();
    for cycle in 0..run.case.cycles {
        run.res.cycles += 1;
        match run.cycle(cycle, &image, &hist) {
            Some((i, h)) => (image, hist) = (i, h),
            None => break,
        }
    }
    run.res.digest = run.dig.finish();
    run.res
}

/// The parameters a case draws from its seed, before its first cycle (swarm testing).
struct Case {
    page: usize,
    media: Media,
    params: Params,
    cycles: u64,
    /// Per cycle: the chance of an injected I/O error (F7, F8), else of an at-rest fault.
    p_error: f64,
    p_at_rest: f64,
    max_commits: u64,
    /// Commits of the path workload (`workload::paths_commit`, 17-40 a lifetime, 1 KiB pages)
    /// instead of random ones: free-list delta records, root splits and merges.
    paths: bool,
    /// Per commit: the chance of a maintenance call after it (compact_step, shrink_to_fit,
    /// backup, compact_into).
    p_maint: f64,
    /// Check images with a probe commit after recovery, crashed inside it at every op (when
    /// recovery fell back) or at a drawn op: crash points biased toward the first commit after
    /// a recovery that rolled back.
    probe_rollback: bool,
}

impl Case {
    fn draw(rng: &mut Rng, small: bool) -> Case {
        let page = if small {
            *rng.pick(&[1024usize, 4096])
        } else {
            *rng.pick(&[1024usize, 2048, 4096, 4096, 4096, 8192, 16384])
        };
        let media = Media {
            sector: *rng.pick(&[512usize, 4096]),
            psow: rng.chance(0.9),
            sector_atomic: rng.chance(0.7),
        };
        let mut params = Params::draw(rng, page);
        if small {
            params.keys = params.keys.min(16);
            params.max_value = 64;
            params.p_large = 0.0;
        }
        let cycles = 3 + rng.below(6);
        let p_error = *rng.pick(&[0.0, 0.1, 0.25]);
        let p_at_rest = *rng.pick(&[0.0, 0.05, 0.15]);
        let max_commits = if small {
            *rng.pick(&[3u64, 10])
        } else {
            *rng.pick(&[3u64, 10, 30])
        };
        // Drawn after the rest, so the older parameters of a seed stay what they were.
        let paths = !small && rng.chance(0.1);
        let p_maint = *rng.pick(&[0.0, 0.05, 0.2]);
        let probe_rollback = rng.chance(0.3);
        let (page, mut params) = (if paths { 1024 } else { page }, params);
        params.page = page;
        Case {
            page,
            media,
            params,
            cycles,
            p_error,
            p_at_rest,
            max_commits,
            paths,
            p_maint,
            probe_rollback,
        }
    }

    fn describe(&self) -> String {
        let (m, p) = (&self.media, &self.params);
        format!(
            "page={} sector={} psow={} atomic={} keys={} max_value={} max_ops={} cycles={} paths={} p_maint={} probe_rollback={}",
            self.page,
            m.sector,
            m.psow,
            m.sector_atomic,
            p.keys,
            p.max_value,
            p.max_ops,
            self.cycles,
            self.paths,
            self.p_maint,
            self.probe_rollback
        )
    }
}

/// The fault of one cycle: its plan, what it is (for the messages), and what the checks of
/// its images may expect.
struct Fault {
    plan: FaultPlan,
    what: String,
    /// Damage outside the model (PSOW off, or an at-rest fault): detect and report only.
    outside_model: bool,
    at_rest: bool,
    injected_error: bool,
}

impl Fault {
    /// An injected error (then maybe a crash), an at-rest fault, or a plain crash point, drawn
    /// over an estimate of the lifetime's ops. `image` is the file the lifetime starts from.
    fn draw(rng: &mut Rng, case: &Case, est_ops: u64, n_commits: u64, image: &[u8]) -> Fault {
        let mut f = Fault {
            plan: FaultPlan::default(),
            what: String::new(),
            outside_model: !case.media.psow,
            at_rest: false,
            injected_error: rng.chance(case.p_error),
        };
        let plan = &mut f.plan;
        if f.injected_error {
            // F7/F8: an error at some call, then the machine goes down.
            let n = 1 + rng.below(est_ops.max(2));
            f.what = match rng.below(5) {
                0 | 1 => {
                    plan.fail_sync = Some(1 + rng.below(n_commits + 1));
                    format!("fail sync #{:?}", plan.fail_sync.unwrap())
                }
                2 if image.is_empty() && rng.chance(0.5) => {
                    // This lifetime creates the database: fail its creation (before or after
                    // the rename).
                    plan.fail_create = Some((1, rng.chance(0.5)));
                    format!("fail create {:?}", plan.fail_create.unwrap())
                }
                2 => {
                    plan.fail_write = Some((n, rng.chance(0.5)));
                    format!("fail write {:?}", plan.fail_write.unwrap())
                }
                3 => {
                    plan.fail_set_len = Some((1 + rng.below(4), rng.chance(0.5)));
                    format!("fail set_len {:?}", plan.fail_set_len.unwrap())
                }
                _ => {
                    let cap = image.len() as u64 + rng.below(16) * case.page as u64;
                    plan.capacity = Some(cap);
                    format!("disk full at {cap} bytes")
                }
            };
            if rng.chance(0.5) {
                plan.crash_after = Some(rng.below(est_ops + 4));
            }
        } else if rng.chance(case.p_at_rest) {
            f.outside_model = true;
            f.at_rest = true;
            let n = 1 + rng.below(est_ops.max(2));
            f.what = match rng.below(3) {
                0 => {
                    plan.lose_write = Some(n);
                    format!("lost write #{n}")
                }
                1 => {
                    plan.misdirect_write = Some(n);
                    format!("misdirected write #{n}")
                }
                _ => "bit rot at rest".into(),
            };
        } else {
            let k = rng.below(est_ops + 4);
            plan.crash_after = Some(k);
            f.what = format!("crash after op {k}");
        }
        f
    }

    fn bit_rot(&self) -> bool {
        self.at_rest && self.what.starts_with("bit rot")
    }

    /// How strictly an image of crash `mode` is checked.
    fn strictness(&self, no_sync: bool, keeps_sync: bool, mode: Mode) -> Strictness {
        // no_sync promises survival of process crashes only; after a power cut the
        // engine must still detect damage and never return wrong data (I7).
        // A failed sync under no_sync may leave unsynced overwrites of both meta slots
        // half-persisted: that is a power cut's worth of damage even for F1. An engine that
        // keeps the last sync's commit whole under no_sync (deadbolt) is checked in full.
        let lenient_no_sync =
            no_sync && !keeps_sync && (mode != Mode::Process || self.injected_error);
        if (self.at_rest && !self.bit_rot()) || lenient_no_sync {
            Strictness::DetectAnyCommit
        } else if self.outside_model {
            Strictness::Detect
        } else {
            Strictness::Full
        }
    }
}

/// A case in progress: its parameters, the seed's stream, and what it has found.
struct CaseRun<'a> {
    engine: &'a dyn Engine,
    case: Case,
    rng: Rng,
    res: CaseResult,
    dig: Digest,
    /// Ops of the last lifetime: what the next cycle's fault points are drawn over.
    est_ops: u64,
}

impl CaseRun<'_> {
    /// One crash-recover-verify cycle from `image` with history `hist`. Returns the file and
    /// history the next cycle continues from, or `None` when the case stops at a violation.
    fn cycle(&mut self, cycle: u64, image: &[u8], hist: &History) -> Option<(Vec<u8>, History)> {
        let rng = &mut self.rng;
        // The path workload's shrinks and frees under no_sync (with `Db::sync` between) are
        // where the last synced commit's pages are most at risk: a third of its cycles.
        let opts = OpenOpts {
            page_size: self.case.page,
            no_sync: rng.chance(if self.case.paths { 0.35 } else { 0.1 }),
        };
        let n_commits = if self.case.paths {
            17 + rng.below(24)
        } else {
            1 + rng.below(self.case.max_commits)
        };
        let fault = Fault::draw(rng, &self.case, self.est_ops, n_commits, image);
        let mut wl_rng = rng.fork();
        let mut maint_rng = rng.fork();
        let (params, paths, p_maint) = (&self.case.params, self.case.paths, self.case.p_maint);
        let lt = live_with(
            self.engine,
            image.to_vec(),
            self.case.media,
            opts,
            fault.plan.clone(),
            hist.clone(),
            rng.next_u64(),
            &mut |st, i| {
                if (i as u64) >= n_commits {
                    None
                } else if paths {
                    Some(paths_commit(&mut wl_rng, st, params.page, i))
                } else {
                    Some(random_commit(&mut wl_rng, st, params))
                }
            },
            &mut |_| draw_maint(&mut maint_rng, p_maint),
        );
        self.res.cov.merge(&lt.cov);
        self.res.commits += lt.commits as u64;
        self.est_ops = lt.ops.max(8);
        self.dig.u64(lt.digest);
        let ctx = format!(
            "cycle {cycle} ({}, no_sync={}, {} commits, {} ops{})",
            fault.what,
            opts.no_sync,
            lt.commits,
            lt.ops,
            if lt.crashed { ", crashed" } else { "" }
        );
        for v in &lt.violations {
            self.res.violations.push(format!("{ctx}: {v}"));
        }
        if !lt.violations.is_empty() {
            return None;
        }
        let next = self.check_images(&lt, &fault, opts, &ctx);
        if !self.res.violations.is_empty() {
            return None;
        }
        if let Some(v) = next.as_ref().filter(|_| !fault.outside_model) {
            if self.rng.chance(0.3) {
                self.reader_phase(v, opts, &ctx);
                if !self.res.violations.is_empty() {
                    return None;
                }
            }
        }
        match next {
            Some(v) if !fault.outside_model && v.after.is_some() => {
                Some((v.after.unwrap(), v.history.unwrap()))
            }
            // Damage outside the model, or creation never completed: start a new database.
            _ => Some((Vec::new(), History::new())),
        }
    }

    /// I11 and reads that fail: a reader lifetime on the file recovered in `v` (readers opened
    /// after recovery, held across random commits and shrinks) under a crash point, a read
    /// fault (a failing, zeroed-sector or short `view`) or neither; then one image of its end
    /// state is checked. The next cycle still continues from `v`.
    fn reader_phase(&mut self, v: &Verdict, opts: OpenOpts, ctx: &str) {
        let (Some(file), Some(hist)) = (v.after.clone(), v.history.clone()) else {
            return;
        };
        let rng = &mut self.rng;
        let mut steps = vec![Step::Begin];
        for _ in 0..4 + rng.below(10) {
            steps.push(match rng.below(20) {
                0..=7 => Step::Commit,
                8..=10 => Step::Begin,
                11..=13 => Step::Shrink,
                14..=17 => Step::Check,
                _ => Step::DropOldest,
            });
        }
        steps.push(Step::Check);
        let mut plan = FaultPlan::default();
        let mut engine = self.engine;
        let page = self.case.page as u64;
        let what = match rng.below(4) {
            0 => {
                plan.crash_after = Some(rng.below(self.est_ops + 4));
                format!("crash after op {}", plan.crash_after.unwrap())
            }
            1 => {
                self.res.read_faults += 1;
                let n = 1 + rng.below(6);
                match rng.below(3) {
                    0 => plan.fail_view = Some((n, rng.chance(0.5))),
                    1 => {
                        plan.zero_view = Some((n, rng.next_u64()));
                        if n > 1 {
                            // Pages verified once are trusted (B3): only an engine verifying
                            // every access can see a zeroed re-read during operation.
                            engine = engine.verifying_every_access().unwrap_or(engine);
                        }
                    }
                    _ => {
                        plan.short_view = Some((n, rng.below(file.len() as u64 / page + 1) * page))
                    }
                }
                format!("read fault {plan:?}")
            }
            _ => "no fault".into(),
        };
        let mut wl_rng = rng.fork();
        let params = &self.case.params;
        let life = reader_lifetime(
            engine,
            file,
            self.case.media,
            opts,
            plan,
            hist,
            rng.next_u64(),
            Strictness::Detect,
            &steps,
            &mut |st, _| Some(random_commit(&mut wl_rng, st, params)),
        );
        self.res.reader_checks += life.reader_checks;
        self.dig.u64(life.digest);
        let ctx = format!("{ctx}; reader lifetime ({what}, steps {steps:?})");
        for m in &life.violations {
            self.res.violations.push(format!("{ctx}: {m}"));
        }
        if !life.violations.is_empty() {
            return;
        }
        let w = Window::new(&life.crash, self.case.media);
        let mode = Mode::draw(rng);
        let img = w.random(mode, rng);
        self.dig.u64(hash_bytes(&img));
        let strict = if opts.no_sync && mode != Mode::Process {
            Strictness::DetectAnyCommit
        } else if life.fell_back || !self.case.media.psow {
            Strictness::Detect
        } else {
            Strictness::Full
        };
        let v = verify(
            self.engine,
            img,
            self.case.media,
            opts,
            &life.hist,
            strict,
            None,
            None,
            rng.next_u64(),
        );
        self.res.states += 1;
        if v.detected {
            self.res.detected += 1;
        }
        if let Some(m) = v.violation {
            self.res
                .violations
                .push(format!("{ctx}, image {mode}: {m}"));
        }
    }

    /// 1-4 crash images of the lifetime's end state, of different modes (bit rot on top for
    /// that fault), checked against its history. Returns the verdict of the last one without
    /// a violation: the recovery the next cycle continues from.
    fn check_images(
        &mut self,
        lt: &Lifetime,
        fault: &Fault,
        opts: OpenOpts,
        ctx: &str,
    ) -> Option<Verdict> {
        let media = self.case.media;
        let rng = &mut self.rng;
        let w = Window::new(&lt.crash, media);
        let n_images = 1 + rng.below(4);
        let mut next = None;
        for i in 0..n_images {
            let mode = if i == 0 {
                Mode::draw(rng)
            } else {
                Mode::ALL[(i % 4) as usize]
            };
            let mut img = w.random(mode, rng);
            let mut rot = String::new();
            if fault.bit_rot() {
                rot = bit_rot(&mut img, media.sector, rng);
            }
            self.dig.u64(hash_bytes(&img));
            let strict = fault.strictness(
                opts.no_sync,
                self.engine.no_sync_keeps_the_last_sync(),
                mode,
            );
            let probe = (self.case.probe_rollback && strict == Strictness::Full)
                .then(|| probe_ops(rng, self.case.page));
            let crash_probe = probe.as_ref().map(|_| {
                if rng.chance(0.5) {
                    EVERY_OP_ON_ROLLBACK
                } else {
                    1 + rng.below(12)
                }
            });
            let v = verify(
                self.engine,
                img,
                media,
                opts,
                &lt.hist,
                strict,
                probe.as_deref(),
                crash_probe,
                rng.next_u64(),
            );
            self.res.states += 1 + v.extra_images;
            if v.crashed_after_rollback {
                self.res.cov.add(PathId::CrashAfterRollback, 1);
            }
            if v.detected {
                self.res.detected += 1;
            }
            self.dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
            if let Some(m) = v.violation {
                self.res
                    .violations
                    .push(format!("{ctx}, image {i} {mode} {rot}: {m}"));
                continue;
            }
            next = Some(v);
        }
        next
    }
}

/// A maintenance call after a commit, with chance `p`: mostly small compaction steps and
/// shrinks; a backup or a compaction into a new file (real scratch files) now and then.
fn draw_maint(rng: &mut Rng, p: f64) -> Option<Maint> {
    if !rng.chance(p) {
        return None;
    }
    Some(match rng.below(20) {
        0..=11 => Maint::CompactStep(1 + rng.below(16)),
        12..=17 => Maint::ShrinkToFit,
        18 => Maint::Backup,
        _ => Maint::CompactInto,
    })
}

/// The probe commit after a recovery: valid on any state (it creates its own bucket), one to
/// four values up to two pages.
fn probe_ops(rng: &mut Rng, page: usize) -> Vec<Op> {
    let b = vec![b"probe".to_vec()];
    let mut ops = vec![Op::CreateBucket(b.clone())];
    for j in 0..1 + rng.below(4) {
        let n = rng.below_usize(2 * page);
        ops.push(Op::Put(
            b.clone(),
            format!("p{j}").into_bytes(),
            rng.bytes(n),
        ));
    }
    ops
}
