//! The state one walk shares between its bucket cursors: the file, the pages reached and
//! rejected, the bucket path, the counters, the problems, and the lost ranges salvage may fill
//! from orphaned pages. Every problem goes through [`Ctx::fault`], which fails a strict walk and
//! records the problem (and what it makes unreadable) otherwise.

use std::ops::Bound;

use super::file::BoltFile;
use super::page_set::PageSet;
use super::problem::{show_path, BoltProblem, ProblemList, Severity};
use crate::{Error, LostRange, Result};

/// Counters of one walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Branch pages entered.
    pub branch_pages: u64,
    /// Leaf pages entered (not counting inline buckets).
    pub leaf_pages: u64,
    /// Continuation pages of the multi-page branch and leaf nodes entered.
    pub overflow_pages: u64,
    /// Buckets found at every level (not counting the root bucket).
    pub buckets: u64,
    /// Of those, inline ones.
    pub inline_buckets: u64,
    /// Key/value pairs yielded.
    pub kv_pairs: u64,
    /// Bytes of keys and values yielded.
    pub kv_bytes: u64,
    /// Deepest B+tree seen.
    pub max_tree_depth: u64,
    /// Deepest bucket nesting seen.
    pub max_nesting: u64,
    /// Cursor steps (each consumes one element or pops one page): bounded by the elements of
    /// the pages loaded, which are loaded at most once each.
    pub steps: u64,
}

/// A key range `(from, to)` borrowed from the file.
pub(super) type KeyRange<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// The lost range of one skipped entry (a pair or bucket with a bad key, flags or header,
/// or out of place): its key alone. [`Ctx::fault`] does not try to fill such a range from
/// orphaned pages.
pub(super) fn single_entry(key: &[u8]) -> KeyRange<'_> {
    (Bound::Included(key), Bound::Included(key))
}

fn is_single_entry(r: KeyRange<'_>) -> bool {
    matches!(r, (Bound::Included(a), Bound::Included(b)) if a == b)
}

/// Where the walk is: shared state of all bucket cursors of one walk.
pub(super) struct Ctx<'a> {
    pub(super) file: BoltFile<'a>,
    pub(super) salvage: bool,
    /// Read pages with a damaged type field when their elements form a valid page of the
    /// expected type (salvage only).
    pub(super) recover: bool,
    /// Pages of valid branch/leaf nodes reached (with their overflow spans).
    pub(super) tree: PageSet,
    /// Pages referenced from the tree but rejected.
    pub(super) rejected: PageSet,
    pub(super) path: Vec<&'a [u8]>,
    pub(super) problems: ProblemList,
    pub(super) stats: WalkStats,
    /// Lost ranges of this walk, borrowed from the file, for orphan recovery (at most
    /// [`MAX_RECOVERY_RANGES`]).
    pub(super) lost_refs: Vec<LostRef<'a>>,
}

/// A lost range as the walk recorded it.
pub(super) struct LostRef<'a> {
    pub(super) path: Vec<&'a [u8]>,
    pub(super) from: Bound<&'a [u8]>,
    pub(super) to: Bound<&'a [u8]>,
    /// Index of the problem holding its [`LostRange`] (when it was kept).
    pub(super) problem: Option<usize>,
    /// The last key recovered into it: recovered keys must keep increasing across orphans, so
    /// overlapping orphans (stale copies) cannot yield a key twice.
    pub(super) last: Option<&'a [u8]>,
}

/// Lost ranges that salvage tries to fill from orphaned pages; more are only reported.
pub const MAX_RECOVERY_RANGES: usize = 256;

impl<'a> Ctx<'a> {
    pub(super) fn owned_path(&self) -> Vec<Vec<u8>> {
        self.path.iter().map(|c| c.to_vec()).collect()
    }

    /// Record a problem (salvage) or fail with it (strict).
    pub(super) fn fault(
        &mut self,
        page: u64,
        detail: String,
        lost: Option<KeyRange<'a>>,
    ) -> Result<()> {
        if !self.salvage {
            let where_ = if self.path.is_empty() {
                String::new()
            } else {
                format!("bucket {}: ", show_path(&self.owned_path()))
            };
            return Err(Error::Corruption {
                page,
                detail: format!("bbolt file: {where_}{detail}"),
            });
        }
        let path = self.owned_path();
        let before = self.problems.items.len();
        let mut pushed = false;
        // Ranges of one skipped entry (out of order, bad header...) are not recovered from
        // orphans: the key may also have been read elsewhere.
        let point = matches!(lost, Some(r) if is_single_entry(r));
        if let Some((from, to)) = lost.filter(|_| !point) {
            if self.lost_refs.len() < MAX_RECOVERY_RANGES {
                pushed = true;
                self.lost_refs.push(LostRef {
                    path: self.path.clone(),
                    from,
                    to,
                    problem: None,
                    last: None,
                });
            }
        }
        let lost = lost.map(|(from, to)| LostRange {
            path: path.clone(),
            from: own_bound(from),
            to: own_bound(to),
            page,
            reason: String::new(),
            recovered: 0,
        });
        self.problems.push(BoltProblem {
            severity: Severity::Damage,
            page,
            path,
            detail,
            lost,
        });
        if pushed && self.problems.items.len() > before {
            if let Some(r) = self.lost_refs.last_mut() {
                r.problem = Some(before);
            }
        }
        Ok(())
    }
}

pub(super) fn own_bound(b: Bound<&[u8]>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(k.to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
