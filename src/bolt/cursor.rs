//! The cursor over one bucket's B+tree: an explicit stack of at most [`MAX_TREE_DEPTH`] pages,
//! every page checked before it is entered (depth, cycle, page bounds, type, shared pages,
//! element count), and branch stepping (each child's key range from its separators).

use std::ops::{Bound, RangeBounds};

use super::context::{Ctx, KeyRange};
use super::element::*;
use super::format::*;
use super::frame::{BucketEntry, Frame, Root};
use super::leaf::leaf_step;
use super::problem::{show_bytes, BoltProblem, Severity};
use crate::Result;

/// Deepest B+tree (pages from a bucket's root to a leaf) the cursor accepts. A bbolt tree
/// that deep would need more than 2^63 entries.
pub const MAX_TREE_DEPTH: usize = 64;

/// The cursor over one bucket's B+tree: an explicit stack of at most [`MAX_TREE_DEPTH`] frames.
pub(super) struct BucketCursor<'a> {
    root: Root<'a>,
    started: bool,
    stack: Vec<Frame<'a>>,
    last_key: Option<&'a [u8]>,
    /// Depth (stack length) of the first leaf reached: bbolt trees are balanced, so every leaf
    /// of this bucket is at this depth.
    leaf_depth: Option<usize>,
    /// Keys of the whole tree must lie in this range (a bucket's root: unbounded; an orphaned
    /// subtree: the lost range it is recovered into).
    bounds: KeyRange<'a>,
    /// The root is an orphaned page that salvage tries (for messages).
    orphan: bool,
}

impl<'a> BucketCursor<'a> {
    /// A cursor over the whole tree of a bucket.
    pub(super) fn new(root: Root<'a>) -> Self {
        BucketCursor {
            root,
            started: false,
            stack: Vec::new(),
            last_key: None,
            leaf_depth: None,
            bounds: (Bound::Unbounded, Bound::Unbounded),
            orphan: false,
        }
    }

    /// The last key read (of this tree, or given to [`BucketCursor::bounded`]).
    pub(super) fn last_key(&self) -> Option<&'a [u8]> {
        self.last_key
    }

    /// A cursor over an orphaned subtree read into the lost range `bounds`, whose keys must
    /// come after `last_key` (the last one recovered into that range).
    pub(super) fn bounded(
        root: Root<'a>,
        bounds: KeyRange<'a>,
        last_key: Option<&'a [u8]>,
    ) -> Self {
        BucketCursor {
            bounds,
            orphan: true,
            last_key,
            ..Self::new(root)
        }
    }

    /// Enter page `id` reached from `from` (a description for messages). On any problem the
    /// keys in `[report_lo, hi)` are reported lost and nothing is pushed.
    fn enter(
        &mut self,
        ctx: &mut Ctx<'a>,
        id: u64,
        from: &str,
        lo: Bound<&'a [u8]>,
        hi: Bound<&'a [u8]>,
        report_lo: Bound<&'a [u8]>,
    ) -> Result<()> {
        match self.check_node(ctx, id, from, (lo, hi)) {
            Ok(node) => {
                self.push_node(ctx, id, node, (lo, hi), report_lo);
                Ok(())
            }
            Err(refusal) => {
                if refusal.rejected {
                    ctx.rejected.insert(id);
                }
                ctx.fault(id, refusal.detail, Some((report_lo, hi)))
            }
        }
    }

    /// Every check before page `id` is entered, in this order: depth and cycle on the current
    /// path, the page's bounds, its type, that no page of its span was reached before, and its
    /// element count.
    fn check_node(
        &self,
        ctx: &mut Ctx<'a>,
        id: u64,
        from: &str,
        range: KeyRange<'a>,
    ) -> std::result::Result<Node<'a>, Refusal> {
        if let Some(detail) = self.path_problem(id, from) {
            return Err(Refusal::skip(detail));
        }
        let (h, data) = ctx
            .file
            .page(id)
            .map_err(|d| Refusal::reject(format!("{d} ({from})")))?;
        let flags = self.node_type(ctx, id, from, h, data, range)?;
        let span_end = id + 1 + u64::from(h.overflow);
        if (id..span_end).any(|p| ctx.tree.contains(p)) {
            return Err(Refusal::skip(format!(
                "page {id} ({}, {} overflow) is referenced more than once: it was already reached from another branch or bucket ({from})",
                page_type_name(h.flags),
                h.overflow
            )));
        }
        let count = elements_fit(data, h.count).map_err(|d| {
            Refusal::reject(format!(
                "{} page {id}: {d} ({from})",
                page_type_name(h.flags)
            ))
        })?;
        let leaf = flags == FLAG_LEAF;
        if !leaf && count == 0 {
            return Err(Refusal::reject(format!(
                "branch page {id} has no elements ({from})"
            )));
        }
        Ok(Node {
            overflow: h.overflow,
            data,
            count,
            leaf,
        })
    }

    /// Page `id` would make the tree too deep or close a cycle on the current path.
    fn path_problem(&self, id: u64, from: &str) -> Option<String> {
        if self.stack.len() >= MAX_TREE_DEPTH {
            return Some(format!(
                "tree deeper than {MAX_TREE_DEPTH} pages at page {id} ({from})"
            ));
        }
        if self.stack.iter().any(|f| f.page == id) {
            let chain: Vec<String> = self.stack.iter().map(|f| f.page.to_string()).collect();
            return Some(format!(
                "cycle: page {id} ({from}) is already on the path {} -> {id}",
                chain.join(" -> ")
            ));
        }
        None
    }

    /// The node type to read page `id` as: its own when it is branch or leaf. A flags value
    /// that is no page type at all may be a damaged field over intact elements: when the tree's
    /// leaf depth tells which type belongs here and the elements form a valid page of that type
    /// within this key range, salvage reads it as that type (and reports it). Meta and freelist
    /// pages are other structures and never read as tree pages.
    fn node_type(
        &self,
        ctx: &mut Ctx<'a>,
        id: u64,
        from: &str,
        h: PageHeader,
        data: &'a [u8],
        (lo, hi): KeyRange<'a>,
    ) -> std::result::Result<u16, Refusal> {
        if h.flags == FLAG_BRANCH || h.flags == FLAG_LEAF {
            return Ok(h.flags);
        }
        let base = format!(
            "invalid page type {} (flags {:#06x}) where a branch or leaf page was expected ({from})",
            page_type_name(h.flags),
            h.flags
        );
        let expected = self.leaf_depth.map(|d| {
            if self.stack.len() + 1 == d {
                FLAG_LEAF
            } else {
                FLAG_BRANCH
            }
        });
        let fits = expected
            .filter(|_| h.flags != FLAG_META && h.flags != FLAG_FREELIST)
            .filter(|&t| parses_as(data, h.count, t, lo, hi, ctx.file.high_water));
        match fits {
            Some(t) if ctx.recover => {
                ctx.problems.push(BoltProblem {
                    severity: Severity::Damage,
                    page: id,
                    path: ctx.owned_path(),
                    detail: format!(
                        "{base}; its {} elements form a valid {} page within the expected key range, so salvage read it as one (contents unverified)",
                        h.count,
                        page_type_name(t)
                    ),
                    lost: None,
                });
                Ok(t)
            }
            Some(t) => Err(Refusal::reject(format!(
                "{base}; its {} elements form a valid {} page, so salvage can recover them",
                h.count,
                page_type_name(t)
            ))),
            None => Err(Refusal::reject(base)),
        }
    }

    /// Push checked page `id`: mark its span reached, count it, and learn the tree's leaf depth
    /// from the first leaf.
    fn push_node(
        &mut self,
        ctx: &mut Ctx<'a>,
        id: u64,
        node: Node<'a>,
        (lo, hi): KeyRange<'a>,
        report_lo: Bound<&'a [u8]>,
    ) {
        for p in id..id + 1 + u64::from(node.overflow) {
            ctx.tree.insert(p);
        }
        if node.leaf {
            ctx.stats.leaf_pages += 1;
            if self.leaf_depth.is_none() {
                self.leaf_depth = Some(self.stack.len() + 1);
            }
        } else {
            ctx.stats.branch_pages += 1;
        }
        ctx.stats.overflow_pages += u64::from(node.overflow);
        self.stack.push(Frame {
            page: id,
            data: node.data,
            count: node.count,
            idx: 0,
            leaf: node.leaf,
            lo,
            hi,
            report_lo,
            prev_key: None,
        });
        ctx.stats.max_tree_depth = ctx.stats.max_tree_depth.max(self.stack.len() as u64);
    }

    fn start(&mut self, ctx: &mut Ctx<'a>) -> Result<()> {
        match self.root {
            Root::Page(id) => {
                let from = if self.orphan {
                    "an orphaned page salvage tries to recover".to_string()
                } else if ctx.path.is_empty() {
                    "the root bucket's root, named by the meta page".to_string()
                } else {
                    "a bucket header's root".to_string()
                };
                let (lo, hi) = self.bounds;
                self.enter(ctx, id, &from, lo, hi, lo)
            }
            Root::Inline { image, host } => match inline_frame(image, host) {
                Ok(frame) => {
                    self.stack.push(frame);
                    ctx.stats.max_tree_depth = ctx.stats.max_tree_depth.max(1);
                    Ok(())
                }
                Err(d) => ctx.fault(host, d, Some((Bound::Unbounded, Bound::Unbounded))),
            },
        }
    }

    /// The next entry in key order, or `None` at the end. In salvage mode problems are recorded
    /// and the damaged part skipped; otherwise the first problem is returned as an error.
    pub(super) fn next(&mut self, ctx: &mut Ctx<'a>) -> Result<Option<BucketEntry<'a>>> {
        if !self.started {
            self.started = true;
            self.start(ctx)?;
        }
        loop {
            ctx.stats.steps += 1;
            let Some(top) = self.stack.last_mut() else {
                return Ok(None);
            };
            if top.idx >= top.count {
                self.stack.pop();
                continue;
            }
            let i = top.idx;
            top.idx += 1;
            let f = *top;
            if f.leaf {
                if let Some(item) = leaf_step(ctx, &f, i, &mut self.last_key)? {
                    return Ok(Some(item));
                }
            } else {
                self.branch_step(ctx, &f, i)?;
            }
        }
    }

    fn branch_step(&mut self, ctx: &mut Ctx<'a>, f: &Frame<'a>, i: usize) -> Result<()> {
        let next_key = if i + 1 < f.count {
            branch_elem(f.data, i + 1).ok().map(|(k, _)| k)
        } else {
            None
        };
        let hi = match next_key {
            Some(k) if i + 1 < f.count => Bound::Excluded(k),
            _ => f.hi,
        };
        let (key, child) = match branch_elem(f.data, i) {
            Ok(x) => x,
            Err(d) => {
                let lo = match f.prev_key {
                    Some(k) if i > 0 => Bound::Excluded(k),
                    _ => f.report_lo,
                };
                return ctx.fault(f.page, d, Some((lo, hi)));
            }
        };
        let report_lo = if i == 0 {
            f.report_lo
        } else {
            Bound::Included(key)
        };
        let in_order = f.prev_key.is_none_or(|p| key > p);
        if let Some(top) = self.stack.last_mut() {
            top.prev_key = Some(key);
        }
        if !in_order || !(f.lo, f.hi).contains(key) {
            return ctx.fault(
                f.page,
                format!(
                    "branch element {i}: key {} is out of order or outside the range the parent assigns to branch page {}; child page {child} skipped",
                    show_bytes(key),
                    f.page
                ),
                Some((report_lo, hi)),
            );
        }
        let from = format!("reached from branch page {} element {i}", f.page);
        self.enter(ctx, child, &from, Bound::Included(key), hi, report_lo)
    }
}

/// The frame of an inline bucket's page image, held by a value on page `host`: a leaf page
/// whose elements fit the image.
fn inline_frame(image: &[u8], host: u64) -> std::result::Result<Frame<'_>, String> {
    let Some(h) = PageHeader::parse(image) else {
        return Err(format!(
            "inline bucket of {} bytes is too short for a page header",
            image.len()
        ));
    };
    if h.flags != FLAG_LEAF {
        return Err(format!(
            "inline bucket page has type {} (flags {:#06x}), expected leaf",
            page_type_name(h.flags),
            h.flags
        ));
    }
    let count = elements_fit(image, h.count).map_err(|d| format!("inline bucket page: {d}"))?;
    Ok(Frame {
        page: host,
        data: image,
        count,
        idx: 0,
        leaf: true,
        lo: Bound::Unbounded,
        hi: Bound::Unbounded,
        report_lo: Bound::Unbounded,
        prev_key: None,
    })
}

/// A page that passed [`BucketCursor::check_node`], as it will be read.
struct Node<'a> {
    /// Overflow pages after it.
    overflow: u32,
    data: &'a [u8],
    count: usize,
    /// Read as a leaf (its own type, or the one salvage recovered).
    leaf: bool,
}

/// Why a page is not entered.
struct Refusal {
    detail: String,
    /// The page itself is bad (bounds, type, element count), so it is marked rejected; a page
    /// that is only misplaced (too deep, on a cycle, reached twice) is not.
    rejected: bool,
}

impl Refusal {
    fn reject(detail: String) -> Refusal {
        Refusal {
            detail,
            rejected: true,
        }
    }

    fn skip(detail: String) -> Refusal {
        Refusal {
            detail,
            rejected: false,
        }
    }
}
