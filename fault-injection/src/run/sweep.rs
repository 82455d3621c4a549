//! What the I/O-error sweep and the at-rest sweep share: a clean run of one fixed workload, the
//! lifetimes of the same workload under a fault plan, and the check and tally of each image
//! against the oracle.

use super::live::{live, Lifetime};
use super::report::Report;
use crate::disk::FaultPlan;
use crate::engine::{Engine, OpenOpts};
use crate::image::Media;
use crate::model::Op;
use crate::oracle::{verify, History, Strictness, Verdict};
use crate::rng::Digest;

/// One sweep over a fixed workload: where it runs, and what it has found so far.
pub(super) struct Sweep<'a> {
    pub(super) engine: &'a dyn Engine,
    pub(super) media: Media,
    pub(super) opts: OpenOpts,
    /// The seed the sweep was started with (named in every violation, for the replay).
    pub(super) seed: u64,
    /// The workload's name, for the violation messages.
    pub(super) workload: &'static str,
    commits: Vec<Vec<Op>>,
    pub(super) rep: Report,
    dig: Digest,
}

impl<'a> Sweep<'a> {
    /// Run `workload` once on a healthy disk (durable commits) and return the sweep with that
    /// clean run, whose call counts and final file the sweep's faults are drawn over. The clean
    /// run's violations are the sweep's first.
    pub(super) fn start(
        engine: &'a dyn Engine,
        workload: usize,
        page_size: usize,
        media: Media,
        seed: u64,
    ) -> (Sweep<'a>, Lifetime) {
        let wl = crate::workload::fixed(page_size).swap_remove(workload);
        let mut sw = Sweep {
            engine,
            media,
            opts: OpenOpts {
                page_size,
                no_sync: false,
            },
            seed,
            workload: wl.name,
            commits: wl.commits,
            rep: Report::default(),
            dig: Digest::default(),
        };
        let mut clean = sw.run(FaultPlan::default(), seed);
        sw.rep.violations.append(&mut clean.violations);
        (sw, clean)
    }

    fn run(&self, plan: FaultPlan, seed: u64) -> Lifetime {
        live(
            self.engine,
            Vec::new(),
            self.media,
            self.opts,
            plan,
            History::new(),
            seed,
            &mut |_, i| self.commits.get(i).cloned(),
        )
    }

    /// The workload from an empty file under `plan`: one crash point. The lifetime's own
    /// violations are recorded under `desc`.
    pub(super) fn faulted(&mut self, plan: FaultPlan, seed: u64, desc: &str) -> Lifetime {
        let lt = self.run(plan, seed);
        self.dig.u64(lt.digest);
        for v in &lt.violations {
            self.rep.violations.push(format!("[{desc}] {v}"));
        }
        self.rep.crash_points += 1;
        lt
    }

    /// Open `img` on a healthy disk and check it against `hist`; the image is counted.
    pub(super) fn verify_image(
        &mut self,
        img: Vec<u8>,
        hist: &History,
        strict: Strictness,
        seed: u64,
    ) -> Verdict {
        self.rep.images += 1;
        verify(
            self.engine,
            img,
            self.media,
            self.opts,
            hist,
            strict,
            None,
            None,
            seed,
        )
    }

    /// [`Sweep::verify_image`], with the verdict digested and a damage report counted. Returns
    /// the violation, if any, for the caller to label.
    pub(super) fn check(
        &mut self,
        img: Vec<u8>,
        hist: &History,
        strict: Strictness,
        seed: u64,
    ) -> Option<String> {
        let v = self.verify_image(img, hist, strict, seed);
        self.dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
        if v.detected {
            self.rep.detected += 1;
        }
        v.violation
    }

    /// Fold `x` into the sweep's determinism digest (I10).
    pub(super) fn note(&mut self, x: u64) {
        self.dig.u64(x);
    }

    pub(super) fn finish(mut self) -> Report {
        self.rep.digest = self.dig.finish();
        self.rep
    }
}
