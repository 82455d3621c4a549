//! Building the image a restarted machine finds after a crash (fault model F1-F6), either drawn
//! at random from a seed or enumerated exhaustively for the bounded tier.

use std::collections::BTreeMap;
use std::fmt;

use crate::image::{apply_pending, apply_write, CrashState, Fate, Media, Pending};
use crate::rng::Rng;

/// The crash modes of the fault model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// F1: process crash, everything issued survives (the page cache is flushed later).
    Process,
    /// F2: power cut, an ordered prefix of the unsynced ops survives.
    Prefix,
    /// F3: power cut, any subset of the unsynced sectors survives (reordering).
    Reorder,
    /// F4: each unsynced sector old, new or garbage; sub-sector tears when sectors are not
    /// atomic; F5 length/extension choices as in F3.
    Torn,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Process, Mode::Prefix, Mode::Reorder, Mode::Torn];

    /// The default crash mix: 30% F1, 20% F2, 25% F3, 25% F4.
    pub fn draw(rng: &mut Rng) -> Mode {
        match rng.below(20) {
            0..=5 => Mode::Process,
            6..=9 => Mode::Prefix,
            10..=14 => Mode::Reorder,
            _ => Mode::Torn,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Process => "F1-process",
            Mode::Prefix => "F2-prefix",
            Mode::Reorder => "F3-reorder",
            Mode::Torn => "F4-torn",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How bytes of a file extension that no surviving write covers read after the crash (F5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    Zeros,
    Garbage(u64),
}

/// The choice for one unsynced sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Old,
    /// Version `v` (1-based: the content after the v-th pending write touching the sector).
    Version(usize),
    Garbage,
    /// `[0, at)` from `low`, `[at, S)` from `high` (0 = old), optionally one side garbage.
    Tear {
        at: usize,
        low: usize,
        high: usize,
        garble_low: Option<bool>,
    },
}

struct SectorInfo {
    /// Content after each pending write touching this sector, in order (version 1..).
    versions: Vec<Vec<u8>>,
    /// Bytes of the sector covered by some unsynced write.
    mask: Vec<bool>,
}

/// The per-sector view of an unsynced window.
pub struct Window<'a> {
    st: &'a CrashState,
    media: Media,
    sectors: BTreeMap<u64, SectorInfo>,
    /// Candidate file lengths after the crash: durable, then after each pending op.
    pub lengths: Vec<u64>,
}

impl<'a> Window<'a> {
    pub fn new(st: &'a CrashState, media: Media) -> Window<'a> {
        let s = media.sector;
        let mut running = st.durable.clone();
        let mut sectors: BTreeMap<u64, SectorInfo> = BTreeMap::new();
        let mut lengths = vec![st.durable.len() as u64];
        let mut len = st.durable.len() as u64;
        for p in &st.pending {
            match p {
                Pending::Write { off, data, fate } => {
                    len = len.max(off + data.len() as u64);
                    let target = match fate {
                        Fate::Normal => Some(*off),
                        Fate::Lost => None,
                        Fate::Misdirected(to) => Some(*to),
                    };
                    if let Some(t) = target {
                        if !data.is_empty() {
                            apply_write(&mut running, t, data);
                            let first = t / s as u64;
                            let last = (t + data.len() as u64 - 1) / s as u64;
                            for sec in first..=last {
                                let start = sec as usize * s;
                                let mut content = vec![0u8; s];
                                let avail = running.len().saturating_sub(start).min(s);
                                content[..avail].copy_from_slice(&running[start..start + avail]);
                                let e = sectors.entry(sec).or_insert_with(|| SectorInfo {
                                    versions: Vec::new(),
                                    mask: vec![false; s],
                                });
                                let lo = (t as usize).max(start) - start;
                                let hi = (t as usize + data.len()).min(start + s) - start;
                                for m in &mut e.mask[lo..hi] {
                                    *m = true;
                                }
                                e.versions.push(content);
                            }
                        }
                    }
                }
                Pending::SetLen(n) => {
                    len = *n;
                    running.resize(*n as usize, 0);
                }
            }
            if running.len() < len as usize {
                running.resize(len as usize, 0);
            }
            if !lengths.contains(&len) {
                lengths.push(len);
            }
        }
        Window {
            st,
            media,
            sectors,
            lengths,
        }
    }

    /// Number of distinct unsynced sectors.
    pub fn sector_count(&self) -> usize {
        self.sectors.len()
    }

    pub fn sector_ids(&self) -> Vec<u64> {
        self.sectors.keys().copied().collect()
    }

    fn latest(&self, sec: u64) -> usize {
        self.sectors[&sec].versions.len()
    }

    /// Assemble an image: durable bytes, resized to `len` (extension filled per `fill`), then
    /// each listed unsynced sector set per its choice. Sectors not listed stay old.
    pub fn assemble(
        &self,
        len: u64,
        fill: Fill,
        choices: &[(u64, Choice)],
        rng: &mut Rng,
    ) -> Vec<u8> {
        let s = self.media.sector;
        let len = len as usize;
        let mut img = self.st.durable.clone();
        if img.len() >= len {
            img.truncate(len);
        } else {
            let from = img.len();
            img.resize(len, 0);
            if let Fill::Garbage(seed) = fill {
                Rng::new(seed).fill(&mut img[from..]);
            }
        }
        for &(sec, choice) in choices {
            let start = sec as usize * s;
            if start >= len {
                continue;
            }
            let end = (start + s).min(len);
            let info = &self.sectors[&sec];
            let old: Vec<u8> = img[start..end].to_vec();
            let version = |v: usize| -> &[u8] {
                if v == 0 {
                    &old
                } else {
                    &info.versions[v - 1][..end - start]
                }
            };
            match choice {
                Choice::Old => {}
                Choice::Version(v) => {
                    let c = version(v).to_vec();
                    img[start..end].copy_from_slice(&c);
                }
                Choice::Garbage => {
                    for (j, b) in img[start..end].iter_mut().enumerate() {
                        if !self.media.psow || info.mask[j] {
                            *b = rng.next_u64() as u8;
                        }
                    }
                }
                Choice::Tear {
                    at,
                    low,
                    high,
                    garble_low,
                } => {
                    let lowc = version(low).to_vec();
                    let highc = version(high).to_vec();
                    for (j, out) in img[start..end].iter_mut().enumerate() {
                        let from_low = j < at;
                        let mut b = if from_low { lowc[j] } else { highc[j] };
                        if garble_low == Some(from_low) && (!self.media.psow || info.mask[j]) {
                            b = rng.next_u64() as u8;
                        }
                        *out = b;
                    }
                }
            }
        }
        img
    }

    /// F2: the durable image plus the first `j` pending ops in order; growth reads per `fill`.
    pub fn prefix(&self, j: usize, fill: Fill) -> Vec<u8> {
        let mut img = self.st.durable.clone();
        let mut g = match fill {
            Fill::Garbage(seed) => Some(Rng::new(seed)),
            Fill::Zeros => None,
        };
        let mut grow = |img: &mut Vec<u8>, to: usize| {
            if img.len() < to {
                let from = img.len();
                img.resize(to, 0);
                if let Some(g) = g.as_mut() {
                    g.fill(&mut img[from..]);
                }
            }
        };
        for p in &self.st.pending[..j] {
            match p {
                Pending::Write { off, data, fate } => {
                    let end = *off as usize + data.len();
                    grow(&mut img, end);
                    match fate {
                        Fate::Normal => apply_write(&mut img, *off, data),
                        Fate::Lost => {}
                        Fate::Misdirected(to) => {
                            let to = *to as usize;
                            let n = data.len().min(img.len().saturating_sub(to));
                            img[to..to + n].copy_from_slice(&data[..n]);
                        }
                    }
                }
                Pending::SetLen(n) => {
                    let n = *n as usize;
                    if n < img.len() {
                        img.truncate(n);
                    } else {
                        grow(&mut img, n);
                    }
                }
            }
        }
        img
    }

    /// F1: everything issued survives.
    pub fn process(&self) -> Vec<u8> {
        let mut img = self.st.durable.clone();
        apply_pending(&mut img, &self.st.pending);
        img.resize(self.st.current.len(), 0);
        img
    }

    fn draw_fill(rng: &mut Rng) -> Fill {
        if rng.chance(0.5) {
            Fill::Zeros
        } else {
            Fill::Garbage(rng.next_u64())
        }
    }

    /// One random image of the given mode (F5 length and fill and F6 are drawn inside F2-F4).
    pub fn random(&self, mode: Mode, rng: &mut Rng) -> Vec<u8> {
        if mode != Mode::Process && !self.st.dir_synced && rng.chance(0.25) {
            // F6: the file's directory entry never became durable; the file is gone.
            return Vec::new();
        }
        match mode {
            Mode::Process => self.process(),
            Mode::Prefix => {
                let j = rng.below_usize(self.st.pending.len() + 1);
                let fill = Self::draw_fill(rng);
                self.prefix(j, fill)
            }
            Mode::Reorder | Mode::Torn => {
                let len = *rng.pick(&self.lengths);
                let fill = Self::draw_fill(rng);
                let mut choices = Vec::with_capacity(self.sectors.len());
                for (&sec, info) in &self.sectors {
                    let n = info.versions.len();
                    let c = if mode == Mode::Reorder {
                        if rng.chance(0.5) {
                            Choice::Old
                        } else if n > 1 && rng.chance(0.25) {
                            Choice::Version(1 + rng.below_usize(n))
                        } else {
                            Choice::Version(n)
                        }
                    } else if !self.media.sector_atomic && rng.chance(0.25) {
                        let new = 1 + rng.below_usize(n);
                        let (low, high) = if rng.chance(0.5) { (new, 0) } else { (0, new) };
                        let garble_low = if rng.chance(0.5) {
                            Some(rng.chance(0.5))
                        } else {
                            None
                        };
                        Choice::Tear {
                            at: 1 + rng.below_usize(self.media.sector - 1),
                            low,
                            high,
                            garble_low,
                        }
                    } else {
                        match rng.below(8) {
                            0..=2 => Choice::Old,
                            3..=5 => Choice::Version(n),
                            _ => Choice::Garbage,
                        }
                    };
                    choices.push((sec, c));
                }
                self.assemble(len, fill, &choices, rng)
            }
        }
    }

    /// Every F3 image (old/new per sector, zero fill, the final length) when there are at most
    /// `limit` unsynced sectors; `None` otherwise.
    pub fn all_subsets(&self, limit: usize, rng: &mut Rng) -> Option<Vec<Vec<u8>>> {
        let n = self.sectors.len();
        if n > limit {
            return None;
        }
        let ids = self.sector_ids();
        let len = *self.lengths.last().unwrap();
        let mut out = Vec::with_capacity(1 << n);
        for mask in 0u64..(1u64 << n) {
            let choices: Vec<(u64, Choice)> = ids
                .iter()
                .enumerate()
                .map(|(i, &sec)| {
                    let c = if mask >> i & 1 == 1 {
                        Choice::Version(self.latest(sec))
                    } else {
                        Choice::Old
                    };
                    (sec, c)
                })
                .collect();
            out.push(self.assemble(len, Fill::Zeros, &choices, rng));
        }
        Some(out)
    }
}

/// The fsyncgate outcome of a failed sync: a new durable image, and for each unsynced sector
/// whether the kernel dropped it from the cache too (reads then show the durable bytes).
pub fn fsync_failure_outcome(
    st: &CrashState,
    media: &Media,
    rng: &mut Rng,
) -> (Vec<u8>, Vec<(u64, bool)>) {
    let w = Window::new(st, *media);
    let mut choices = Vec::new();
    let mut dropped = Vec::new();
    for sec in w.sector_ids() {
        match rng.below(3) {
            0 => {
                choices.push((sec, Choice::Version(w.latest(sec))));
                dropped.push((sec, false));
            }
            1 => dropped.push((sec, false)),
            _ => dropped.push((sec, true)),
        }
    }
    let len = if rng.chance(0.5) {
        st.current.len() as u64
    } else {
        st.durable.len() as u64
    };
    let img = w.assemble(len, Fill::Zeros, &choices, rng);
    (img, dropped)
}
