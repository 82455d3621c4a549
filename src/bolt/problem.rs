//! Problems found in a bbolt file: their severity, the bounded list that keeps them, and how
//! problems, lost ranges, keys and bucket paths are printed.

use std::fmt;
use std::ops::Bound;

use crate::LostRange;

/// Problems a [`ProblemList`] keeps in detail; further ones are only counted. (The engine's own
/// check of deadbolt files has a separate limit.)
pub const MAX_KEPT_PROBLEMS: usize = 10_000;
/// Bytes (keys, paths, text) that recorded problems may hold in total.
pub const MAX_PROBLEM_BYTES: usize = 16 << 20;

/// How serious a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The file is readable and nothing committed-and-valid is lost (for example an invalid
    /// meta page whose sibling is valid, or leaked pages).
    Warning,
    /// Data is unreachable or the structure is inconsistent.
    Damage,
}

/// Render bytes as text when printable ASCII, else as hex.
pub fn show_bytes(b: &[u8]) -> String {
    const MAX_SHOWN: usize = 64;
    let shown = b.get(..MAX_SHOWN).unwrap_or(b);
    let more = if b.len() > MAX_SHOWN {
        format!("...({} bytes)", b.len())
    } else {
        String::new()
    };
    if !shown.is_empty()
        && shown
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) && c != b'"')
    {
        format!("\"{}\"{more}", String::from_utf8_lossy(shown))
    } else {
        let mut s = String::from("0x");
        for c in shown {
            s.push_str(&format!("{c:02x}"));
        }
        s + &more
    }
}

/// Render a bucket path.
pub fn show_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let parts: Vec<String> = path.iter().map(|p| show_bytes(p)).collect();
    parts.join("/")
}

/// How the bbolt reader prints a lost range (the type is shared with salvage of deadbolt files).
impl fmt::Display for LostRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bucket {}: ", show_path(&self.path))?;
        if self.is_whole_bucket() {
            write!(f, "the whole bucket (page {})", self.page)?;
            if self.recovered > 0 {
                write!(
                    f,
                    "; {} entries recovered from orphaned pages",
                    self.recovered
                )?;
            }
            return Ok(());
        }
        let from = match &self.from {
            Bound::Unbounded => "(first key".to_string(),
            Bound::Included(k) => format!("[{}", show_bytes(k)),
            Bound::Excluded(k) => format!("({}", show_bytes(k)),
        };
        let to = match &self.to {
            Bound::Unbounded => "last key)".to_string(),
            Bound::Included(k) => format!("{}]", show_bytes(k)),
            Bound::Excluded(k) => format!("{})", show_bytes(k)),
        };
        write!(f, "keys {from} .. {to} (page {})", self.page)?;
        if self.recovered > 0 {
            write!(
                f,
                "; {} entries of it recovered from orphaned pages (completeness unverifiable)",
                self.recovered
            )?;
        }
        Ok(())
    }
}

/// One problem found in a bbolt file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoltProblem {
    /// Damage, or a warning that loses nothing.
    pub severity: Severity,
    /// The page where it was found (0 or 1 for a meta page).
    pub page: u64,
    /// The bucket being read, from the top (empty for the root bucket, metas and free space).
    pub path: Vec<Vec<u8>>,
    /// What was expected versus found.
    pub detail: String,
    /// Keys that could not be read because of it.
    pub lost: Option<LostRange>,
}

impl fmt::Display for BoltProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Damage => "damage",
        };
        write!(f, "{sev}: page {}", self.page)?;
        if !self.path.is_empty() {
            write!(f, ", bucket {}", show_path(&self.path))?;
        }
        write!(f, ": {}", self.detail)?;
        if let Some(l) = &self.lost {
            write!(f, "; lost: {l}")?;
        }
        Ok(())
    }
}

/// Problems with a bound on how many are kept: at most [`MAX_KEPT_PROBLEMS`] entries and
/// [`MAX_PROBLEM_BYTES`] bytes; later ones are only counted.
#[derive(Clone, Debug, Default)]
pub struct ProblemList {
    /// The problems kept, in the order found.
    pub items: Vec<BoltProblem>,
    /// Problems found beyond the limits, counted but not kept.
    pub suppressed: u64,
    /// Of those, how many were damage.
    pub suppressed_damage: u64,
    bytes: usize,
}

impl ProblemList {
    /// Keep `p`, or only count it once the list is at its bound.
    pub fn push(&mut self, p: BoltProblem) {
        let size = p.detail.len()
            + 64
            + p.path.iter().map(|c| c.len() + 24).sum::<usize>()
            + p.lost.as_ref().map_or(0, |l| {
                l.path.iter().map(|c| c.len() + 24).sum::<usize>()
                    + bound_len(&l.from)
                    + bound_len(&l.to)
                    + l.reason.len()
            });
        if self.items.len() >= MAX_KEPT_PROBLEMS
            || self.bytes.saturating_add(size) > MAX_PROBLEM_BYTES
        {
            self.suppressed += 1;
            if p.severity == Severity::Damage {
                self.suppressed_damage += 1;
            }
            return;
        }
        self.bytes += size;
        self.items.push(p);
    }

    /// True when any problem (kept or suppressed) is damage.
    pub fn has_damage(&self) -> bool {
        self.suppressed_damage > 0 || self.items.iter().any(|p| p.severity == Severity::Damage)
    }

    /// Total problems found.
    pub fn total(&self) -> u64 {
        self.items.len() as u64 + self.suppressed
    }
}

fn bound_len(b: &Bound<Vec<u8>>) -> usize {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => v.len(),
        Bound::Unbounded => 0,
    }
}
