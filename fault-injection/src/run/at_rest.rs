//! The at-rest sweep (F9-F13): faults outside the model, swept deterministically over a fixed
//! workload: lost and misdirected writes, bit rot, zeroed sectors and misdirected reads.

use super::report::Report;
use super::sweep::Sweep;
use crate::crash::Window;
use crate::disk::FaultPlan;
use crate::engine::Engine;
use crate::image::Media;
use crate::oracle::{History, Strictness};
use crate::rng::Rng;

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
    let (mut sw, clean) = Sweep::start(engine, workload, page_size, media, seed);
    let mut rng = Rng::new(seed ^ 0xa7e5);
    for n in 1..=clean.counts.0 {
        for lose in [true, false] {
            misplaced_write(&mut sw, n, lose, &mut rng);
        }
    }
    // Damage to the finished file, in each sector that holds data (sectors of zeros past the
    // high-water mark would only test nothing).
    let image = &clean.crash.current;
    for s in 0..image.len().div_ceil(media.sector) {
        let start = s * media.sector;
        let end = (start + media.sector).min(image.len());
        if image[start..end].iter().all(|&b| b == 0) {
            continue;
        }
        let damage = Damage {
            image,
            hist: &clean.hist,
            s,
            start,
            end,
        };
        damage.bit_rot(&mut sw, &mut rng);
        damage.zeroed(&mut sw, &mut rng);
        damage.misdirected_read(&mut sw, &mut rng);
    }
    sw.finish()
}

/// The `n`-th write of the workload lost (F12, `lose`) or misdirected (F11). Any commit may come
/// back without a report: a lost meta write is invisible to the engine.
fn misplaced_write(sw: &mut Sweep, n: u64, lose: bool, rng: &mut Rng) {
    let plan = FaultPlan {
        lose_write: lose.then_some(n),
        misdirect_write: (!lose).then_some(n),
        ..FaultPlan::default()
    };
    let desc = format!(
        "at-rest workload={} page={} sector={} {} write #{n} seed={:#x}",
        sw.workload,
        sw.opts.page_size,
        sw.media.sector,
        if lose { "lost" } else { "misdirected" },
        sw.seed
    );
    let lt = sw.faulted(plan, rng.next_u64(), &desc);
    let img = Window::new(&lt.crash, sw.media).process();
    if let Some(m) = sw.check(img, &lt.hist, Strictness::DetectAnyCommit, rng.next_u64()) {
        sw.rep.violations.push(format!("[{desc}] {m}"));
    }
}

/// One sector `s` (bytes `start..end`) of the cleanly closed file, which holds data. The newest
/// commit of a cleanly closed file is confirmed durable, so every check is
/// `Strictness::DetectConfirmed`: no fallback below it, reported or not (issue 11).
struct Damage<'a> {
    image: &'a [u8],
    hist: &'a History,
    s: usize,
    start: usize,
    end: usize,
}

impl Damage<'_> {
    /// F10: one flipped bit; half the flips land on a byte that holds data, half anywhere in
    /// the sector.
    fn bit_rot(&self, sw: &mut Sweep, rng: &mut Rng) {
        let (start, end) = (self.start, self.end);
        let mut img = self.image.to_vec();
        let i = if rng.chance(0.5) {
            let nonzero: Vec<usize> = (start..end).filter(|&i| img[i] != 0).collect();
            nonzero[rng.below_usize(nonzero.len())]
        } else {
            start + rng.below_usize(end - start)
        };
        img[i] ^= 1 << rng.below(8);
        if let Some(m) = sw.check(img, self.hist, Strictness::DetectConfirmed, rng.next_u64()) {
            sw.rep.violations.push(format!(
                "[bit rot workload={} page={} sector={} byte {i} seed={:#x}] {m}",
                sw.workload, sw.opts.page_size, sw.media.sector, sw.seed
            ));
        }
    }

    /// F9: a latent sector error on a controller that returns zeros for the sector.
    fn zeroed(&self, sw: &mut Sweep, rng: &mut Rng) {
        let mut img = self.image.to_vec();
        img[self.start..self.end].fill(0);
        if let Some(m) = sw.check(img, self.hist, Strictness::DetectConfirmed, rng.next_u64()) {
            sw.rep.violations.push(format!(
                "[zeroed sector {} (F9) workload={} page={} sector={} seed={:#x}] {m}",
                self.s, sw.workload, sw.opts.page_size, sw.media.sector, sw.seed
            ));
        }
    }

    /// F13: a misdirected read. One open sees this sector's bytes in place of another sector's
    /// (drawn at random; none when the draw is this sector): a typed error or the data of some
    /// commit. The verdict is checked but not digested or counted as a damage report.
    fn misdirected_read(&self, sw: &mut Sweep, rng: &mut Rng) {
        let sector = sw.media.sector;
        let other = rng.below_usize(self.image.len().div_ceil(sector));
        if other == self.s {
            return;
        }
        let ostart = other * sector;
        let oend = (ostart + (self.end - self.start)).min(self.image.len());
        let mut img = self.image.to_vec();
        let n = oend - ostart;
        img.copy_within(self.start..self.start + n, ostart);
        let v = sw.verify_image(img, self.hist, Strictness::DetectConfirmed, rng.next_u64());
        if let Some(m) = v.violation {
            sw.rep.violations.push(format!(
                "[misdirected read of sector {} at sector {other} (F13) workload={} page={} seed={:#x}] {m}",
                self.s, sw.workload, sw.opts.page_size, sw.seed
            ));
        }
    }
}
