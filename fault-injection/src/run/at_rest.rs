//! The at-rest sweep (F9-F13): faults outside the model, swept deterministically over a fixed
//! workload: lost and misdirected writes, bit rot, zeroed sectors and misdirected reads.

use super::live::live;
use super::report::Report;
use crate::crash::Window;
use crate::disk::FaultPlan;
use crate::engine::{Engine, OpenOpts};
use crate::image::Media;
use crate::oracle::{verify, History, Strictness};
use crate::rng::{Digest, Rng};

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
