//! `check`: diagnose a bbolt file without trusting it.

use std::fmt;
use std::path::Path;

use super::context::WalkStats;
use super::file::BoltFile;
use super::format::*;
use super::freelist::{analyze_freelist, FreelistInfo, KnownPages};
use super::problem::{BoltProblem, Severity};
use super::walker::Walker;
use crate::{LostRange, Result};

/// What the checker verified. bbolt files carry no page checksums, so corruption inside key
/// and value bytes that keeps the structure intact cannot be detected; every report says so.
pub const CHECKS_PERFORMED: &[&str] = &[
    "meta pages: magic, version, FNV-1a checksum, newest valid meta chosen, other meta as fallback",
    "meta fields: root, freelist and high-water mark inside the file",
    "page ids: below the high-water mark and inside the file, overflow spans included",
    "page headers: self-identifying id, exact page type (branch/leaf where the parent implies one)",
    "elements: offsets and sizes inside the page span; counts fit the page",
    "key order: strictly increasing within each bucket and inside the range the parent branch assigns",
    "tree shape: no cycle on any root-to-leaf path, depth bounded, no page reachable twice",
    "buckets: headers, inline page images, nesting depth; no plain keys at the top level",
    "freelist: page type, id count (incl. the 0xFFFF escape), ids in range, no duplicates, no free page in use",
    "page census: every page below the high-water mark is a meta, freelist, tree or free page",
];

/// What cannot be verified in the bbolt format.
pub const CHECKS_NOT_POSSIBLE: &[&str] = &[
    "branch, leaf, overflow and freelist pages have no checksums: a changed byte inside a key or value that keeps the structure valid is undetectable",
    "values are not checksummed: a value's contents are returned as stored",
    "with NoFreelistSync there is no freelist to cross-check; free pages are inferred from reachability",
];

/// Counts of pages below the high-water mark, by role (the corpus manifests' `pages`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageCensus {
    /// Meta pages (always 2 in a file that has both).
    pub meta: u64,
    /// First pages of the freelist.
    pub freelist: u64,
    /// First pages of reachable branch pages.
    pub branch: u64,
    /// First pages of reachable leaf pages.
    pub leaf: u64,
    /// Continuation pages of multi-page branch, leaf and freelist pages.
    pub overflow_continuation: u64,
    /// Ids listed on the freelist.
    pub free_listed: u64,
    /// Pages neither reachable nor listed (with no freelist stored: the free pages).
    pub unlisted_unreachable: u64,
    /// The active meta's high-water mark (pages `[0, high_water_pgid)` are in use).
    pub high_water_pgid: u64,
}

/// Overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No problem at all.
    Healthy,
    /// Readable and consistent, with warnings (e.g. an invalid older or newer meta page).
    Readable,
    /// Damage: some data is unreachable or the structure is inconsistent.
    Damaged,
    /// No usable meta: the file cannot be read at all.
    Unreadable,
}

/// The result of [`check_bytes`] / [`check_file`].
#[derive(Clone, Debug)]
pub struct BoltReport {
    /// Bytes in the file.
    pub file_size: u64,
    /// The page size the metas agree on (`None`: no usable meta).
    pub page_size: Option<u32>,
    /// Both metas as found.
    pub metas: Vec<MetaInfo>,
    /// The meta in use, if any.
    pub active_meta: Option<u8>,
    /// The active meta's txid.
    pub txid: u64,
    /// The active meta's high-water mark.
    pub high_water_pgid: u64,
    /// The freelist as found.
    pub freelist: FreelistInfo,
    /// Pages by role.
    pub census: PageCensus,
    /// Counters of the tree walk (buckets at every level, key/value pairs, pages...).
    pub walk: WalkStats,
    /// Every problem found (bounded; see `suppressed_problems`).
    pub problems: Vec<BoltProblem>,
    /// Problems found beyond the kept ones.
    pub suppressed_problems: u64,
    /// Of those, how many were damage.
    pub suppressed_damage: u64,
    /// What was verified.
    pub checks_performed: Vec<&'static str>,
    /// What the bbolt format makes impossible to verify.
    pub checks_not_possible: Vec<&'static str>,
}

impl BoltReport {
    /// True when nothing is damaged (warnings allowed): the file can be imported as is.
    pub fn is_ok(&self) -> bool {
        self.active_meta.is_some()
            && self.suppressed_damage == 0
            && !self.problems.iter().any(|p| p.severity == Severity::Damage)
    }

    /// True when there is no problem at all.
    pub fn is_healthy(&self) -> bool {
        self.active_meta.is_some() && self.problems.is_empty() && self.suppressed_problems == 0
    }

    /// The overall verdict: unreadable, damaged, readable with warnings, or healthy.
    pub fn verdict(&self) -> Verdict {
        if self.active_meta.is_none() {
            Verdict::Unreadable
        } else if !self.is_ok() {
            Verdict::Damaged
        } else if !self.is_healthy() {
            Verdict::Readable
        } else {
            Verdict::Healthy
        }
    }

    /// The first damage problem, if any.
    pub fn first_damage(&self) -> Option<&BoltProblem> {
        self.problems
            .iter()
            .find(|p| p.severity == Severity::Damage)
    }

    /// Key ranges that cannot be read.
    pub fn lost(&self) -> impl Iterator<Item = &LostRange> {
        self.problems.iter().filter_map(|p| p.lost.as_ref())
    }

    /// Pages loaded by the walk (each at most once): the work done is proportional to this.
    pub fn pages_loaded(&self) -> u64 {
        self.walk.branch_pages + self.walk.leaf_pages
    }
}

impl fmt::Display for BoltReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict() {
            Verdict::Healthy => "HEALTHY",
            Verdict::Readable => "READABLE (with warnings)",
            Verdict::Damaged => "DAMAGED",
            Verdict::Unreadable => "UNREADABLE",
        };
        writeln!(f, "bbolt file check: {verdict}")?;
        write!(f, "file size {} bytes", self.file_size)?;
        match self.page_size {
            Some(ps) => writeln!(f, ", page size {ps}")?,
            None => writeln!(f, ", page size unknown")?,
        }
        self.write_metas(f)?;
        if self.active_meta.is_some() {
            self.write_contents(f)?;
        }
        self.write_problems(f)?;
        writeln!(f, "checks performed:")?;
        for c in &self.checks_performed {
            writeln!(f, "  - {c}")?;
        }
        writeln!(f, "not verifiable in the bbolt format:")?;
        for c in &self.checks_not_possible {
            writeln!(f, "  - {c}")?;
        }
        Ok(())
    }
}

impl BoltReport {
    /// One line per meta: its fields, valid or why not, and which is active.
    fn write_metas(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.metas {
            write!(
                f,
                "meta {}: txid {}, root {}, freelist {}, high-water {}: ",
                m.which,
                m.txid,
                m.root_pgid,
                if m.freelist_pgid == PGID_NO_FREELIST {
                    "none".to_string()
                } else {
                    m.freelist_pgid.to_string()
                },
                m.high_water_pgid
            )?;
            match &m.problem {
                None => write!(f, "valid")?,
                Some(p) => write!(f, "INVALID ({p})")?,
            }
            if self.active_meta == Some(m.which) {
                write!(f, " [active]")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }

    /// The freelist, the page census and what the walk read (only with a usable meta).
    fn write_contents(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.freelist.persisted {
            writeln!(
                f,
                "freelist: page {} ({} pages), {} ids{}",
                self.freelist.pgid,
                self.freelist.page_span,
                self.freelist.count,
                if self.freelist.count_stored_in_first_element {
                    " (0xFFFF count escape)"
                } else {
                    ""
                }
            )?;
        } else {
            writeln!(
                f,
                "freelist: not stored (NoFreelistSync); free pages inferred from reachability"
            )?;
        }
        let c = &self.census;
        writeln!(
            f,
            "pages: {} meta, {} freelist, {} branch, {} leaf, {} overflow, {} free, {} unlisted unreachable (high-water {})",
            c.meta, c.freelist, c.branch, c.leaf, c.overflow_continuation, c.free_listed, c.unlisted_unreachable, c.high_water_pgid
        )?;
        writeln!(
            f,
            "content read: {} buckets ({} inline), {} key/value pairs, tree depth up to {}, nesting up to {}",
            self.walk.buckets,
            self.walk.inline_buckets,
            self.walk.kv_pairs,
            self.walk.max_tree_depth,
            self.walk.max_nesting
        )
    }

    /// The problems kept, and how many more were only counted.
    fn write_problems(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() && self.suppressed_problems == 0 {
            return writeln!(f, "problems: none");
        }
        writeln!(
            f,
            "problems: {}",
            self.problems.len() as u64 + self.suppressed_problems
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        if self.suppressed_problems > 0 {
            writeln!(
                f,
                "  ... and {} more not listed ({} of them damage)",
                self.suppressed_problems, self.suppressed_damage
            )?;
        }
        Ok(())
    }
}

/// Open and check the file at `path` (read-only, shared lock, memory-mapped).
pub fn check_file(path: &Path) -> Result<BoltReport> {
    let view = super::source::open_view(path)?;
    Ok(check_bytes(view.bytes()))
}

/// Check a bbolt file image. Never panics; the work is bounded by the pages of the file (each
/// loaded at most once) and memory by two bitmaps of one bit per page plus the bounded list of
/// problems.
pub fn check_bytes(bytes: &[u8]) -> BoltReport {
    let out = BoltFile::open_outcome(bytes, false);
    let mut report = BoltReport {
        file_size: bytes.len() as u64,
        page_size: out.page_size,
        metas: out.metas,
        active_meta: None,
        txid: 0,
        high_water_pgid: 0,
        freelist: FreelistInfo::default(),
        census: PageCensus::default(),
        walk: WalkStats::default(),
        problems: out.problems,
        suppressed_problems: 0,
        suppressed_damage: 0,
        checks_performed: CHECKS_PERFORMED.to_vec(),
        checks_not_possible: CHECKS_NOT_POSSIBLE.to_vec(),
    };
    let Some(file) = out.file else {
        return report;
    };
    report.active_meta = Some(file.active_meta);
    report.txid = file.txid;
    report.high_water_pgid = file.high_water;

    let mut walker = Walker::diagnose(file);
    // Salvage mode records problems instead of failing, so this only ends at the end of the
    // tree; each call consumes at least one element or page of the file.
    while let Ok(Some(_)) = walker.next_event() {}
    let (mut problems, stats, tree, rejected) = walker.finish();
    report.walk = stats;

    let (info, free, fl_span) = analyze_freelist(&file, &tree, &mut problems);
    report.freelist = info;
    let known = KnownPages {
        tree: &tree,
        rejected: &rejected,
        free: &free,
        freelist: fl_span,
    };
    let unlisted = UnlistedRuns::find(&file, &known);
    report.census = PageCensus {
        meta: 2,
        freelist: u64::from(report.freelist.persisted && fl_span.is_some()),
        branch: report.walk.branch_pages,
        leaf: report.walk.leaf_pages,
        overflow_continuation: report.walk.overflow_pages + fl_span.map_or(0, |(s, e)| e - s - 1),
        free_listed: report.freelist.count,
        unlisted_unreachable: unlisted.pages,
        high_water_pgid: file.high_water,
    };
    if report.freelist.persisted && unlisted.pages > 0 {
        problems.push(unlisted.problem());
    }
    report.suppressed_problems = problems.suppressed;
    report.suppressed_damage = problems.suppressed_damage;
    report.problems.extend(problems.items);
    report
}

/// Runs of pages neither reachable nor listed (described in one problem, at most
/// [`UnlistedRuns::MAX_SHOWN`] runs listed).
struct UnlistedRuns {
    /// Pages in all runs.
    pages: u64,
    /// The first runs, `[start, end)`.
    shown: Vec<(u64, u64)>,
    /// Runs in all.
    total: u64,
}

impl UnlistedRuns {
    const MAX_SHOWN: usize = 64;

    /// The runs below the high-water mark clipped to the file (which bounds the work).
    fn find(file: &BoltFile<'_>, known: &KnownPages<'_>) -> UnlistedRuns {
        let mut runs = UnlistedRuns {
            pages: 0,
            shown: Vec::new(),
            total: 0,
        };
        let mut run: Option<(u64, u64)> = None;
        for p in 2..file.limit {
            if known.contains(p) {
                if let Some(r) = run.take() {
                    runs.close(r);
                }
            } else {
                runs.pages += 1;
                run = match run {
                    Some((s, _)) => Some((s, p + 1)),
                    None => Some((p, p + 1)),
                };
            }
        }
        if let Some(r) = run.take() {
            runs.close(r);
        }
        runs
    }

    fn close(&mut self, r: (u64, u64)) {
        self.total += 1;
        if self.shown.len() < Self::MAX_SHOWN {
            self.shown.push(r);
        }
    }

    /// The warning that lists them.
    fn problem(&self) -> BoltProblem {
        let mut list: Vec<String> = self
            .shown
            .iter()
            .map(|&(s, e)| {
                if e - s == 1 {
                    s.to_string()
                } else {
                    format!("{s}..={}", e - 1)
                }
            })
            .collect();
        if self.total > self.shown.len() as u64 {
            list.push(format!(
                "... ({} more runs)",
                self.total - self.shown.len() as u64
            ));
        }
        BoltProblem {
            severity: Severity::Warning,
            page: self.shown.first().map_or(0, |r| r.0),
            path: Vec::new(),
            detail: format!(
                "{} pages are neither reachable from the root nor on the freelist (orphaned by damage reported above, or leaked; salvage reads orphaned subtrees back into the lost ranges their keys fall in): {}",
                self.pages,
                list.join(", ")
            ),
            lost: None,
        }
    }
}
