//! Tier 2: one randomised case per seed. A case draws its own parameters (page size, sector
//! size, media assumptions, workload shape, fault mix: swarm testing), then runs several
//! crash-recover-verify cycles on one database: a lifetime of random commits under a fault plan,
//! a crash, several crash images checked against the oracle, and the next lifetime continuing
//! from one of them.

use crate::crash::{Mode, Window};
use crate::disk::FaultPlan;
use crate::engine::{Engine, OpenOpts};
use crate::image::Media;
use crate::oracle::{verify, History, Strictness};
use crate::rng::{hash_bytes, Digest, Rng};
use crate::run::live;
use crate::workload::{random_commit, Params};

#[derive(Debug, Default, Clone)]
pub struct CaseResult {
    /// Crash images opened and checked against the oracle.
    pub states: u64,
    /// Of which damage was detected and reported (faults outside the model).
    pub detected: u64,
    pub cycles: u64,
    pub commits: u64,
    pub violations: Vec<String>,
    /// Digest of op logs, images and verdicts: the same seed must give the same digest.
    pub digest: u64,
    pub describe: String,
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
    let mut params = Params::draw(&mut rng, page);
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
    let mut res = CaseResult {
        describe: format!(
            "page={page} sector={} psow={} atomic={} keys={} max_value={} max_ops={} cycles={cycles}",
            media.sector, media.psow, media.sector_atomic, params.keys, params.max_value, params.max_ops
        ),
        ..CaseResult::default()
    };
    let mut dig = Digest::default();
    let mut image: Vec<u8> = Vec::new();
    let mut hist = History::new();
    let mut est_ops = 20u64;
    for cycle in 0..cycles {
        res.cycles += 1;
        let opts = OpenOpts {
            page_size: page,
            no_sync: rng.chance(0.1),
        };
        let n_commits = 1 + rng.below(max_commits);
        let mut plan = FaultPlan::default();
        let mut outside_model = !media.psow;
        let mut at_rest = false;
        let what;
        let injected_error = rng.chance(p_error);
        if injected_error {
            // F7/F8: an error at some call, then the machine goes down.
            let n = 1 + rng.below(est_ops.max(2));
            match rng.below(5) {
                0 | 1 => {
                    plan.fail_sync = Some(1 + rng.below(n_commits + 1));
                    what = format!("fail sync #{:?}", plan.fail_sync.unwrap());
                }
                2 if image.is_empty() && rng.chance(0.5) => {
                    // This lifetime creates the database: fail its creation (before or after
                    // the rename).
                    plan.fail_create = Some((1, rng.chance(0.5)));
                    what = format!("fail create {:?}", plan.fail_create.unwrap());
                }
                2 => {
                    plan.fail_write = Some((n, rng.chance(0.5)));
                    what = format!("fail write {:?}", plan.fail_write.unwrap());
                }
                3 => {
                    plan.fail_set_len = Some((1 + rng.below(4), rng.chance(0.5)));
                    what = format!("fail set_len {:?}", plan.fail_set_len.unwrap());
                }
                _ => {
                    let cap = image.len() as u64 + rng.below(16) * page as u64;
                    plan.capacity = Some(cap);
                    what = format!("disk full at {cap} bytes");
                }
            }
            if rng.chance(0.5) {
                plan.crash_after = Some(rng.below(est_ops + 4));
            }
        } else if rng.chance(p_at_rest) {
            outside_model = true;
            at_rest = true;
            let n = 1 + rng.below(est_ops.max(2));
            match rng.below(3) {
                0 => {
                    plan.lose_write = Some(n);
                    what = format!("lost write #{n}");
                }
                1 => {
                    plan.misdirect_write = Some(n);
                    what = format!("misdirected write #{n}");
                }
                _ => what = "bit rot at rest".into(),
            }
        } else {
            let k = rng.below(est_ops + 4);
            plan.crash_after = Some(k);
            what = format!("crash after op {k}");
        }
        let mut wl_rng = rng.fork();
        let lt = live(
            engine,
            image.clone(),
            media,
            opts,
            plan,
            hist.clone(),
            rng.next_u64(),
            &mut |st, i| {
                if (i as u64) < n_commits {
                    Some(random_commit(&mut wl_rng, st, &params))
                } else {
                    None
                }
            },
        );
        res.commits += lt.commits as u64;
        est_ops = lt.ops.max(8);
        dig.u64(lt.digest);
        let ctx = format!(
            "cycle {cycle} ({what}, no_sync={}, {} commits, {} ops{})",
            opts.no_sync,
            lt.commits,
            lt.ops,
            if lt.crashed { ", crashed" } else { "" }
        );
        for v in &lt.violations {
            res.violations.push(format!("{ctx}: {v}"));
        }
        if !lt.violations.is_empty() {
            break;
        }
        let w = Window::new(&lt.crash, media);
        let n_images = 1 + rng.below(4);
        let mut next = None;
        for i in 0..n_images {
            let mode = if i == 0 {
                Mode::draw(&mut rng)
            } else {
                Mode::ALL[(i % 4) as usize]
            };
            let mut img = w.random(mode, &mut rng);
            let mut rot = String::new();
            if at_rest && what.starts_with("bit rot") {
                rot = bit_rot(&mut img, media.sector, &mut rng);
            }
            dig.u64(hash_bytes(&img));
            // no_sync promises survival of process crashes only; after a power cut the
            // engine must still detect damage and never return wrong data (I7).
            // A failed sync under no_sync leaves unsynced overwrites of both meta slots
            // half-persisted: that is a power cut's worth of damage even for F1.
            let strict = if (at_rest && !what.starts_with("bit rot"))
                || (opts.no_sync && (mode != Mode::Process || injected_error))
            {
                Strictness::DetectAnyCommit
            } else if outside_model {
                Strictness::Detect
            } else {
                Strictness::Full
            };
            let v = verify(
                engine,
                img,
                media,
                opts,
                &lt.hist,
                strict,
                None,
                None,
                rng.next_u64(),
            );
            res.states += 1;
            if v.detected {
                res.detected += 1;
            }
            dig.u64(v.matched.unwrap_or(usize::MAX) as u64);
            if let Some(m) = v.violation {
                res.violations
                    .push(format!("{ctx}, image {i} {mode} {rot}: {m}"));
                continue;
            }
            next = Some(v);
        }
        if !res.violations.is_empty() {
            break;
        }
        match next {
            Some(v) if !outside_model && v.after.is_some() => {
                image = v.after.unwrap();
                hist = v.history.unwrap();
            }
            _ => {
                // Damage outside the model, or creation never completed: start a new database.
                image = Vec::new();
                hist = History::new();
            }
        }
    }
    res.digest = dig.finish();
    res
}
