//! The integrity check: everything reachable from a snapshot's meta, verified page by page,
//! plus the free-space accounting (reachable + free = every page below the high-water mark).
//!
//! Memory is two bitsets over page ids plus an explicit stack bounded by the tree height times
//! the elements of one page; time is linear in the number of pages.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::Result;
use crate::format::page::{BucketRoot, BucketValue, ChildRef, Page};
use crate::limits::MAX_DEPTH;
use crate::ops::bulk::printable;
use crate::store::free::FreeState;
use crate::store::verify::Expect;
use crate::tx::Tx;

/// Report at most this many problems in detail (the count of the rest is reported).
/// One problem found by [`crate::Db::check`].
#[derive(Clone, Debug)]
pub struct Problem {
    /// The page where it was found.
    pub page: u64,
    /// Bucket path from the top (empty for the root or free space).
    pub path: Vec<Vec<u8>>,
    /// What was expected versus found.
    pub detail: String,
}

/// The result of an integrity check.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Everything found wrong (empty: the database is healthy).
    pub problems: Vec<Problem>,
    /// Pages below the high-water mark.
    pub pages_total: u64,
    /// Pages some tree or the free-space chain reaches.
    pub pages_reachable: u64,
    /// Pages recorded free.
    pub pages_free: u64,
    /// Pages freed by recent commits, not yet reusable.
    pub pages_pending: u64,
    /// Buckets, at every level.
    pub buckets: u64,
    /// Buckets stored inline in their parent's leaf (counted in `buckets` too).
    pub inline_buckets: u64,
    /// Key/value pairs, in every bucket.
    pub keys: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Problems listed in a report; more are counted, not listed.
pub(crate) const MAX_PROBLEMS: usize = 10_000;

struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Bits {
        Bits(vec![0; n.div_ceil(64) as usize])
    }
    fn get(&self, i: u64) -> bool {
        self.0
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: u64) {
        if let Some(w) = self.0.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }
}

/// A page still to check, with what its parents imply about it.
struct Visit {
    r: ChildRef,
    path: Rc<Vec<Vec<u8>>>,
    depth: usize,
    lo: Option<Vec<u8>>,
    hi: Option<Vec<u8>>,
    /// The height the parent implies (one below its own); `None` for a bucket's root.
    level: Option<u8>,
}

impl Visit {
    /// The root of a bucket's tree (the top-level one has an empty path).
    fn root(r: ChildRef, path: Vec<Vec<u8>>) -> Visit {
        Visit {
            r,
            path: Rc::new(path),
            depth: 0,
            lo: None,
            hi: None,
            level: None,
        }
    }
}

/// One check in progress: what was found, which pages were reached, and what is left to visit.
/// Memory: two bitsets over page ids and an explicit stack (no recursion).
struct Checker<'a> {
    tx: &'a Tx<'a>,
    hwm: u64,
    report: CheckReport,
    dropped: u64,
    progress: &'a mut dyn FnMut(u64, u64),
    reach: Bits,
    /// Pages accounted for so far, for the progress callback.
    done: u64,
    stack: Vec<Visit>,
}

impl Checker<'_> {
    fn problem(&mut self, page: u64, path: &[Vec<u8>], detail: impl Into<String>) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(Problem {
                page,
                path: path.to_vec(),
                detail: detail.into(),
            });
        } else {
            self.dropped += 1;
        }
    }

    /// Mark pages `[id, id + n)` reached, reporting any reached before.
    fn reach_span(&mut self, id: u64, n: u64, path: &[Vec<u8>], what: &str) {
        for q in id..id + n {
            if self.reach.get(q) {
                self.problem(q, path, format!("{what} reachable twice"));
            }
            self.reach.set(q);
        }
        self.done += n;
    }

    /// Load the free-space chain and mark its pages reached.
    fn free_chain(&mut self) -> Option<FreeState> {
        let meta = self.tx.snap.meta;
        match self.tx.db.load_freelist(self.tx.bytes(), &meta) {
            Ok(fs) => {
                for &(r, n) in &fs.chain {
                    self.reach_span(r.pgid, n, &[], "freelist record page");
                }
                Some(fs)
            }
            Err(e) => {
                self.problem(meta.freelist.pgid, &[], format!("free-space chain: {e}"));
                None
            }
        }
    }

    /// Check one page of a tree and queue what it points to.
    fn visit(&mut self, it: Visit) {
        let (id, hwm, txid) = (it.r.pgid, self.hwm, self.tx.snap.meta.txid);
        if id < 2 || id >= hwm {
            return self.problem(id, &it.path, format!("pointer outside [2, {hwm})"));
        }
        if self.reach.get(id) {
            let d = "page reachable twice (shared or cyclic pointer)";
            return self.problem(id, &it.path, d);
        }
        if it.depth > MAX_DEPTH {
            let d = format!("tree deeper than {MAX_DEPTH} levels");
            return self.problem(id, &it.path, d);
        }
        if it.r.txid > txid {
            let d = format!("txid {} newer than the snapshot {txid}", it.r.txid);
            self.problem(id, &it.path, d);
        }
        let (tx, bytes) = (self.tx, self.tx.bytes());
        let (h, span) = match tx.db.load_span_opt(bytes, hwm, &it.r, Expect::Node, true) {
            Ok(x) => x,
            Err(e) => {
                self.reach.set(id);
                return self.problem(id, &it.path, e.to_string());
            }
        };
        let n = span.len() as u64 / tx.db.page_size as u64;
        self.reach_span(id, n, &it.path, "overflow page");
        if self.done % 1024 < n {
            (self.progress)(self.done.min(hwm), hwm);
        }
        let page = Page::from_header(id, &h, span);
        if let Some(want) = it.level.filter(|&l| l != page.level) {
            let d = format!(
                "page at level {}, its parent implies level {want} (pointer to the wrong depth)",
                page.level
            );
            self.problem(id, &it.path, d);
        }
        self.check_fences(&page, &it);
        if page.leaf {
            self.queue_buckets(&page, &it);
        } else {
            self.queue_children(&page, &it);
        }
    }

    /// Keys must lie inside the range the parent gives this page (a branch's first key is a
    /// lower bound of its subtree, not a key, and is not held to it).
    fn check_fences(&mut self, page: &Page<'_>, it: &Visit) {
        for i in 0..page.count {
            let key = match page.key(i) {
                Ok(k) => k,
                Err(e) => return self.problem(page.id, &it.path, e.to_string()),
            };
            let constrained = page.leaf || i > 0;
            if constrained && it.lo.as_ref().is_some_and(|lo| key < lo.as_slice()) {
                let d = format!("key {i} sorts before its parent's separator");
                self.problem(page.id, &it.path, d);
            }
            if it.hi.as_ref().is_some_and(|hi| key >= hi.as_slice()) {
                let d = format!("key {i} sorts at or after the next separator");
                self.problem(page.id, &it.path, d);
            }
        }
    }

    /// Count a leaf's keys and queue the roots of the buckets nested in it. Inline buckets
    /// (checked with this page, forced validation) are walked here, with the inline buckets in
    /// them: a work list at most [`crate::MAX_INLINE_DEPTH`] deep, as validation ensures.
    fn queue_buckets(&mut self, page: &Page<'_>, it: &Visit) {
        let mut work = vec![(*page, (*it.path).clone())];
        while let Some((page, base)) = work.pop() {
            for i in 0..page.count {
                let Ok(e) = page.leaf_item(i) else { continue };
                if !e.bucket {
                    self.report.keys += 1;
                    continue;
                }
                self.report.buckets += 1;
                let mut path = base.clone();
                path.push(e.key.to_vec());
                match BucketValue::decode(e.value, page.id, self.tx.db.page_size) {
                    Ok(bh) => match bh.root {
                        BucketRoot::Tree(r) if !r.is_empty() => {
                            self.stack.push(Visit::root(r, path))
                        }
                        BucketRoot::Tree(_) => {}
                        BucketRoot::Inline(inline) => {
                            self.report.inline_buckets += 1;
                            work.push((inline, path));
                        }
                    },
                    Err(err) => self.problem(page.id, &path, err.to_string()),
                }
            }
        }
    }

    /// Queue a branch's children, each with the separator range it must lie in.
    fn queue_children(&mut self, page: &Page<'_>, it: &Visit) {
        for i in 0..page.count {
            let (Ok(child), Ok(key)) = (page.child(i), page.key(i)) else {
                continue;
            };
            let lo = if i == 0 {
                it.lo.clone()
            } else {
                Some(key.to_vec())
            };
            let hi = match page.key(i + 1) {
                Ok(k) if i + 1 < page.count => Some(k.to_vec()),
                _ => it.hi.clone(),
            };
            self.stack.push(Visit {
                r: child,
                path: it.path.clone(),
                depth: it.depth + 1,
                lo,
                hi,
                level: page.level.checked_sub(1),
            });
        }
    }

    /// Free space must be disjoint from the reachable pages, and the two must cover
    /// `[2, hwm)`: report overlaps and leaked runs.
    fn free_space(&mut self, fs: &FreeState) {
        let hwm = self.hwm;
        let mut listed = Bits::new(hwm);
        for (s, l) in fs.free.iter() {
            for q in s..s + l {
                if self.reach.get(q) {
                    self.problem(q, &[], "page is listed as free but is reachable");
                }
                listed.set(q);
            }
        }
        self.report.pages_free = fs.free.pages();
        let mut q = 2;
        while q < hwm {
            if self.reach.get(q) || listed.get(q) {
                q += 1;
                continue;
            }
            let start = q;
            while q < hwm && !self.reach.get(q) && !listed.get(q) {
                q += 1;
            }
            let d = format!("pages {start}..{q} are neither reachable nor free (leaked)");
            self.problem(start, &[], d);
        }
    }

    fn finish(mut self) -> CheckReport {
        let hwm = self.hwm;
        self.report.pages_reachable = (0..hwm).filter(|&q| self.reach.get(q)).count() as u64;
        self.report.pages_pending = self.tx.db.counters.pending_pages.load(Relaxed);
        if self.dropped > 0 {
            let d = self.dropped;
            self.report.problems.push(Problem {
                page: 0,
                path: Vec::new(),
                detail: format!("... and {d} more problems not listed"),
            });
        }
        (self.progress)(hwm, hwm);
        self.report
    }
}

impl Tx<'_> {
    /// Full integrity check of this transaction's snapshot.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with_progress(&mut |_, _| {})
    }

    /// [`Tx::check`] with a progress callback (pages done, pages total): verifies everything
    /// reachable from the meta with forced re-verification, loads the free-space chain, and
    /// checks that free and reachable pages are disjoint and cover the file.
    pub fn check_with_progress(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
        let meta = self.snap.meta;
        let hwm = meta.hwm;
        let mut c = Checker {
            tx: self,
            hwm,
            report: CheckReport {
                pages_total: hwm,
                ..Default::default()
            },
            dropped: 0,
            progress,
            reach: Bits::new(0),
            done: 2,
            stack: Vec::new(),
        };
        let len = self.bytes().len();
        if hwm.saturating_mul(self.db.page_size as u64) > len as u64 {
            let d = format!("high-water mark {hwm} lies past the end of the file ({len} bytes)");
            c.problem(meta.slot, &[], d);
            return Ok(c.report);
        }
        c.reach = Bits::new(hwm);
        c.reach.set(0);
        c.reach.set(1);
        let free = c.free_chain();
        if !meta.root.is_empty() {
            c.stack.push(Visit::root(meta.root, Vec::new()));
        }
        while let Some(it) = c.stack.pop() {
            c.visit(it);
        }
        if let Some(fs) = &free {
            c.free_space(fs);
        }
        Ok(c.finish())
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.problems {
            let path: Vec<String> = p.path.iter().map(|c| printable(c)).collect();
            writeln!(f, "page {}: /{}: {}", p.page, path.join("/"), p.detail)?;
        }
        write!(
            f,
            "{}: {} pages, {} reachable, {} free, {} buckets, {} keys",
            if self.is_ok() { "ok" } else { "DAMAGED" },
            self.pages_total,
            self.pages_reachable,
            self.pages_free,
            self.buckets,
            self.keys
        )
    }
}
