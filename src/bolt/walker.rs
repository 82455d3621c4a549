//! The walk over every bucket of a bbolt file, in pre-order, with an explicit stack of bucket
//! cursors, and (salvage) the orphaned subtrees read back afterwards.
//!
//! Bounds (all checked in release builds):
//! - a bucket's B+tree is at most [`MAX_TREE_DEPTH`] pages deep (the cursor's stack);
//! - buckets nest at most [`MAX_BUCKET_NESTING`] levels (the walker's stack);
//! - every page id is below the high-water mark and inside the file, and so is every page of
//!   an overflow span;
//! - a page is entered at most once per walk (a bitmap of `min(high-water, file pages)` bits,
//!   the only allocation sized from the file, bounded by `file length / page size / 8`
//!   bytes), so a walk loads at most that many pages, and a page id repeating on the current
//!   root-to-leaf path is reported as a cycle before anything else;
//! - an element count is at most `(span - 16) / 16`, i.e. bounded by the bytes of the page;
//! - the problem list keeps at most [`MAX_KEPT_PROBLEMS`] entries and [`MAX_PROBLEM_BYTES`]
//!   bytes of keys, paths and text; later problems are only counted.
//!
//! [`MAX_TREE_DEPTH`]: super::cursor::MAX_TREE_DEPTH
//! [`MAX_KEPT_PROBLEMS`]: super::problem::MAX_KEPT_PROBLEMS
//! [`MAX_PROBLEM_BYTES`]: super::problem::MAX_PROBLEM_BYTES

use super::context::{single_entry, Ctx, WalkStats};
use super::cursor::BucketCursor;
use super::file::BoltFile;
use super::frame::{BucketEntry, Root};
use super::orphan::{self, Orphan};
use super::page_set::PageSet;
use super::problem::{show_bytes, ProblemList};
use crate::Result;

/// Deepest bucket nesting the walker accepts (the root bucket is level 0).
pub const MAX_BUCKET_NESTING: usize = 128;
/// One step of a walk over every bucket, in pre-order: a bucket's entries in key order, and a
/// nested bucket's whole contents right after its [`Event::EnterBucket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A bucket starts (a child of the current one; top-level buckets are children of the root).
    EnterBucket {
        /// The bucket's name (its key in the parent).
        name: &'a [u8],
        /// The bucket's sequence counter.
        sequence: u64,
        /// The bucket header's root page id (0 for an inline bucket).
        root_pgid: u64,
        /// Stored inline in the parent's leaf.
        inline: bool,
    },
    /// A key/value pair of the current bucket.
    Kv {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// The current bucket ends.
    LeaveBucket,
    /// Salvage only, after the walk of the tree: the walk continues in an already visited
    /// bucket, given by [`Walker::path`], with entries recovered from orphaned pages (pages
    /// neither reachable nor on the freelist) whose keys fall into a range that was lost there.
    /// Buckets entered from here are nested in that bucket; no `LeaveBucket` closes it.
    Reenter,
}

/// A pre-order walk over every bucket and key of a bbolt file, with an explicit stack of at
/// most [`MAX_BUCKET_NESTING`] bucket cursors. Each page is entered at most once.
pub struct Walker<'a> {
    cursors: Vec<BucketCursor<'a>>,
    ctx: Ctx<'a>,
    done: bool,
    /// Orphan recovery (salvage): `None` until the tree walk ends, then the planned roots.
    orphans: Option<Vec<Orphan<'a>>>,
    next_orphan: usize,
    /// The orphan being read and the counters when it started.
    current: Option<(Orphan<'a>, u64)>,
}

impl<'a> Walker<'a> {
    /// A walk of `file`. With `salvage`, problems are recorded (see [`Walker::problems`]) and the
    /// damaged parts skipped; otherwise the first problem ends the walk with
    /// [`crate::Error::Corruption`].
    pub fn new(file: BoltFile<'a>, salvage: bool) -> Walker<'a> {
        Self::with_mode(file, salvage, salvage)
    }

    /// A walk for diagnosis: records problems like salvage, but reads nothing that strict
    /// reading would not (no page with a damaged type field is recovered), so its lost ranges
    /// are what strict reading cannot reach.
    pub fn diagnose(file: BoltFile<'a>) -> Walker<'a> {
        Self::with_mode(file, true, false)
    }

    fn with_mode(file: BoltFile<'a>, salvage: bool, recover: bool) -> Walker<'a> {
        Walker {
            cursors: vec![BucketCursor::new(Root::Page(file.root_pgid))],
            ctx: Ctx {
                file,
                salvage,
                recover,
                tree: PageSet::new(file.limit),
                rejected: PageSet::new(file.limit),
                path: Vec::new(),
                problems: ProblemList::default(),
                stats: WalkStats::default(),
                lost_refs: Vec::new(),
            },
            done: false,
            orphans: None,
            next_orphan: 0,
            current: None,
        }
    }

    /// The current bucket path (names from the top).
    pub fn path(&self) -> &[&'a [u8]] {
        &self.ctx.path
    }

    /// Problems found so far (salvage mode).
    pub fn problems(&self) -> &ProblemList {
        &self.ctx.problems
    }

    /// Counters so far.
    pub fn stats(&self) -> &WalkStats {
        &self.ctx.stats
    }

    /// Pages of valid branch/leaf nodes reached so far.
    pub fn tree_pages(&self) -> &PageSet {
        &self.ctx.tree
    }

    /// Pages referenced by the tree but rejected (wrong type, bad header, out of range...).
    pub fn rejected_pages(&self) -> &PageSet {
        &self.ctx.rejected
    }

    /// Consume the walker, returning its problems and counters.
    pub fn finish(self) -> (ProblemList, WalkStats, PageSet, PageSet) {
        (
            self.ctx.problems,
            self.ctx.stats,
            self.ctx.tree,
            self.ctx.rejected,
        )
    }

    /// The next event, `None` at the end.
    pub fn next_event(&mut self) -> Result<Option<Event<'a>>> {
        if self.done {
            return Ok(None);
        }
        match self.step() {
            Ok(ev) => {
                if ev.is_none() {
                    self.done = true;
                }
                Ok(ev)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    fn step(&mut self) -> Result<Option<Event<'a>>> {
        loop {
            let Some(top) = self.cursors.last_mut() else {
                return Ok(self.next_orphan_subtree());
            };
            let event = match top.next(&mut self.ctx)? {
                None => self.close_cursor(),
                Some(BucketEntry::Kv { key, value, page }) => self.pair(key, value, page)?,
                Some(BucketEntry::Bucket {
                    name,
                    sequence,
                    root,
                }) => self.open_bucket(name, sequence, root)?,
            };
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    /// The tree walk (or one orphaned subtree) is over: account for it and start on the next
    /// planned orphan (the plan is made on the first call), or `None` when none is left.
    fn next_orphan_subtree(&mut self) -> Option<Event<'a>> {
        self.finish_orphan();
        if self.orphans.is_none() {
            self.orphans = Some(if self.ctx.recover {
                orphan::plan(&mut self.ctx)
            } else {
                Vec::new()
            });
        }
        loop {
            let &o = self.orphans.as_deref()?.get(self.next_orphan)?;
            self.next_orphan += 1;
            let Some(r) = self.ctx.lost_refs.get(o.lost) else {
                continue;
            };
            if self.ctx.tree.contains(o.page) {
                continue; // read meanwhile as part of another orphaned subtree
            }
            self.ctx.path = r.path.clone();
            let bounds = (r.from, r.to);
            self.cursors
                .push(BucketCursor::bounded(Root::Page(o.page), bounds, r.last));
            self.current = Some((o, self.ctx.stats.kv_pairs + self.ctx.stats.buckets));
            return Some(Event::Reenter);
        }
    }

    /// The top cursor is done: pop it (an orphan's cursor leaves its last key to its lost
    /// range) and leave its bucket, unless it was the last cursor.
    fn close_cursor(&mut self) -> Option<Event<'a>> {
        let done = self.cursors.pop();
        if let (Some(c), Some((o, _)), true) = (done, self.current, self.cursors.is_empty()) {
            if let Some(r) = self.ctx.lost_refs.get_mut(o.lost) {
                r.last = c.last_key().or(r.last);
            }
        }
        if self.cursors.is_empty() {
            return None;
        }
        self.ctx.path.pop();
        Some(Event::LeaveBucket)
    }

    /// A pair of the current bucket; the root bucket may hold none.
    fn pair(&mut self, key: &'a [u8], value: &'a [u8], page: u64) -> Result<Option<Event<'a>>> {
        if self.ctx.path.is_empty() {
            self.ctx.fault(
                page,
                format!(
                    "the root bucket holds a plain key/value pair (key {}); bbolt allows only buckets at the top level; entry skipped",
                    show_bytes(key)
                ),
                Some(single_entry(key)),
            )?;
            return Ok(None);
        }
        self.ctx.stats.kv_pairs += 1;
        self.ctx.stats.kv_bytes += (key.len() + value.len()) as u64;
        Ok(Some(Event::Kv { key, value }))
    }

    /// A nested bucket of the current one: entered with a cursor of its own, unless that would
    /// nest deeper than [`MAX_BUCKET_NESTING`].
    fn open_bucket(
        &mut self,
        name: &'a [u8],
        sequence: u64,
        root: Root<'a>,
    ) -> Result<Option<Event<'a>>> {
        if self.ctx.path.len() + 1 >= MAX_BUCKET_NESTING {
            self.ctx.fault(
                0,
                format!(
                    "bucket {} is nested deeper than {MAX_BUCKET_NESTING} levels; it is skipped",
                    show_bytes(name)
                ),
                Some(single_entry(name)),
            )?;
            return Ok(None);
        }
        let (inline, root_pgid) = match root {
            Root::Inline { .. } => (true, 0),
            Root::Page(id) => (false, id),
        };
        self.ctx.stats.buckets += 1;
        if inline {
            self.ctx.stats.inline_buckets += 1;
        }
        self.ctx.path.push(name);
        self.ctx.stats.max_nesting = self.ctx.stats.max_nesting.max(self.ctx.path.len() as u64);
        self.cursors.push(BucketCursor::new(root));
        Ok(Some(Event::EnterBucket {
            name,
            sequence,
            root_pgid,
            inline,
        }))
    }

    /// Account for the orphaned subtree just read.
    fn finish_orphan(&mut self) {
        let Some((o, before)) = self.current.take() else {
            return;
        };
        let n = (self.ctx.stats.kv_pairs + self.ctx.stats.buckets).saturating_sub(before);
        orphan::record_recovered(&mut self.ctx, o, n);
    }
}
