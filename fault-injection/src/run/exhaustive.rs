//! The bounded exhaustive tier: record a clean run of a fixed workload once, then rebuild the
//! crash state after every op and check every crash mode's images of it against the oracle.

use std::collections::HashSet;
use std::sync::Arc;

use super::protocol::{protocol_check, CommitRec};
use super::report::Report;
use crate::crash::{Fill, Mode, Window};
use crate::disk::{FaultPlan, SimDisk};
use crate::engine::{Engine, OpenOpts};
use crate::image::Media;
use crate::model::{Op, State};
use crate::oracle::{catch, verify, History, Label, Strictness};
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
