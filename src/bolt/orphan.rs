//! Orphan recovery (salvage): pages neither reachable, nor free, nor rejected, whose keys fall
//! into exactly one range the walk lost, are planned as roots of subtrees to read back into
//! that range, and what they gave is recorded.

use std::ops::RangeBounds;

use super::context::{own_bound, Ctx, LostRef};
use super::element::*;
use super::file::BoltFile;
use super::format::*;
use super::freelist::{analyze_freelist, KnownPages};
use super::page_set::PageSet;
use super::problem::{BoltProblem, ProblemList, Severity};
use crate::LostRange;

/// An orphaned subtree root and the lost range (index into `lost_refs`) it is read into.
#[derive(Clone, Copy, Debug)]
pub(super) struct Orphan<'a> {
    pub(super) page: u64,
    pub(super) lost: usize,
    /// Its first key: orphans are read in key order within each lost range.
    first: &'a [u8],
}

/// Orphaned subtree roots salvage tries at most.
pub const MAX_ORPHAN_ROOTS: usize = 100_000;

/// Find orphaned subtree roots (pages neither reachable, nor free, nor rejected, that no
/// other orphaned branch points at) whose first key falls into exactly one lost range.
/// Only with a consistent persisted freelist: without one, unreachable pages are free pages
/// holding stale data. Bounded by the pages of the file and [`MAX_ORPHAN_ROOTS`].
pub(super) fn plan<'a>(ctx: &mut Ctx<'a>) -> Vec<Orphan<'a>> {
    let mut plan = Vec::new();
    if ctx.lost_refs.is_empty() {
        return plan;
    }
    let Some((free, freelist)) = consistent_freelist(ctx) else {
        return plan;
    };
    let file = ctx.file;
    let known = KnownPages {
        tree: &ctx.tree,
        rejected: &ctx.rejected,
        free: &free,
        freelist: Some(freelist),
    };
    let has_parent = pages_with_parent(&file, &known);
    for p in 2..file.limit {
        if plan.len() >= MAX_ORPHAN_ROOTS {
            break;
        }
        if known.contains(p) || has_parent.contains(p) {
            continue;
        }
        let Some(first) = first_key(&file, p) else {
            continue;
        };
        if let Some(lost) = only_range(&ctx.lost_refs, first) {
            plan.push(Orphan {
                page: p,
                lost,
                first,
            });
        }
    }
    // Key order within each range, so entries are written in ascending order.
    plan.sort_by(|a, b| a.lost.cmp(&b.lost).then(a.first.cmp(b.first)));
    plan
}

/// The free pages and the freelist's own span, when the freelist is stored and consistent;
/// otherwise a warning that orphans were not looked for.
fn consistent_freelist(ctx: &mut Ctx<'_>) -> Option<(PageSet, (u64, u64))> {
    let file = ctx.file;
    let mut scratch = ProblemList::default();
    let (info, free, span) = analyze_freelist(&file, &ctx.tree, &mut scratch);
    let Some(span) = span.filter(|_| info.persisted && !scratch.has_damage()) else {
        ctx.problems.push(BoltProblem {
            severity: Severity::Warning,
            page: file.freelist_pgid.min(file.high_water),
            path: Vec::new(),
            detail: "salvage did not look for orphaned pages: without a consistent freelist they cannot be told from free pages holding stale data".into(),
            lost: None,
        });
        return None;
    };
    Some((free, span))
}

/// Orphaned pages that another orphaned page points at: children of orphaned branches, and
/// the continuation pages of orphaned branch and leaf pages.
fn pages_with_parent(file: &BoltFile<'_>, known: &KnownPages<'_>) -> PageSet {
    let mut has_parent = PageSet::new(file.limit);
    for p in 2..file.limit {
        if known.contains(p) {
            continue;
        }
        let Ok((h, data)) = file.page(p) else {
            continue;
        };
        if h.flags == FLAG_BRANCH {
            if let Ok(count) = elements_fit(data, h.count) {
                for i in 0..count {
                    if let Ok((_, child)) = branch_elem(data, i) {
                        has_parent.insert(child);
                    }
                }
            }
        }
        if h.flags == FLAG_BRANCH || h.flags == FLAG_LEAF {
            for q in p + 1..=p + u64::from(h.overflow) {
                has_parent.insert(q);
            }
        }
    }
    has_parent
}

/// The first key of branch or leaf page `p`, when it has a readable one.
fn first_key<'a>(file: &BoltFile<'a>, p: u64) -> Option<&'a [u8]> {
    let (h, data) = file.page(p).ok()?;
    match h.flags {
        FLAG_LEAF if h.count > 0 => leaf_elem(data, 0).ok().map(|(_, k, _)| k),
        FLAG_BRANCH if h.count > 0 => branch_elem(data, 0).ok().map(|(k, _)| k),
        _ => None,
    }
}

/// The index of the one lost range holding `key`, if exactly one does.
fn only_range(lost_refs: &[LostRef<'_>], key: &[u8]) -> Option<usize> {
    let mut matches = lost_refs
        .iter()
        .enumerate()
        .filter(|(_, r)| (r.from, r.to).contains(key))
        .map(|(i, _)| i);
    match (matches.next(), matches.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// Account for `n` entries read from orphan `o`: added to its lost range's count and reported
/// as a warning naming the page.
pub(super) fn record_recovered(ctx: &mut Ctx<'_>, o: Orphan<'_>, n: u64) {
    let Some(r) = ctx.lost_refs.get(o.lost) else {
        return;
    };
    if n == 0 {
        return; // nothing read: the problems met were recorded by the walk
    }
    let idx = r.problem;
    let range = LostRange {
        path: r.path.iter().map(|c| c.to_vec()).collect(),
        from: own_bound(r.from),
        to: own_bound(r.to),
        page: o.page,
        reason: String::new(),
        recovered: n,
    };
    if let Some(l) = idx
        .and_then(|i| ctx.problems.items.get_mut(i))
        .and_then(|p| p.lost.as_mut())
    {
        l.recovered += n;
    }
    ctx.problems.push(BoltProblem {
        severity: Severity::Warning,
        page: o.page,
        path: range.path.clone(),
        detail: format!(
            "salvage recovered {n} entries from orphaned page {} (neither reachable nor on the freelist) into the lost range {range}",
            o.page
        ),
        lost: None,
    });
}
