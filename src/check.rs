//! The integrity check: everything reachable from a snapshot's meta, verified page by page,
//! plus the free-space accounting (reachable + free = every page below the high-water mark).
//!
//! Memory is two bitsets over page ids plus an explicit stack bounded by the tree height times
//! the elements of one page; time is linear in the number of pages.

use std::rc::Rc;

use crate::db::{CheckReport, Problem, Want};
use crate::error::Result;
use crate::page::{BucketHeader, ChildRef, Page, PageType};
use crate::tx::Tx;
use crate::MAX_DEPTH;

/// Report at most this many problems in detail (the count of the rest is reported).
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

struct Item {
    r: ChildRef,
    path: Rc<Vec<Vec<u8>>>,
    depth: usize,
    lo: Option<Vec<u8>>,
    hi: Option<Vec<u8>>,
    /// The height the parent implies (one below its own); `None` for a bucket's root.
    level: Option<u8>,
}

struct Checker<'a> {
    report: CheckReport,
    dropped: u64,
    progress: &'a mut dyn FnMut(u64, u64),
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
}

impl Tx<'_> {
    /// Full integrity check of this transaction's snapshot.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with_progress(&mut |_, _| {})
    }

    /// [`Tx::check`] with a progress callback (pages done, pages total).
    pub fn check_with_progress(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
        let meta = self.snap.meta;
        let bytes = self.bytes();
        let hwm = meta.hwm;
        let db = self.db;
        let p = db.page_size as u64;
        let mut c = Checker {
            report: CheckReport {
                pages_total: hwm,
                ..Default::default()
            },
            dropped: 0,
            progress,
        };
        if hwm.saturating_mul(p) > bytes.len() as u64 {
            c.problem(
                0,
                &[],
                format!(
                    "high-water mark {hwm} lies past the end of the file ({} bytes)",
                    bytes.len()
                ),
            );
            return Ok(c.report);
        }
        let mut reach = Bits::new(hwm);
        reach.set(0);
        reach.set(1);
        let mut done = 2u64;

        // Free-space chain.
        let mut free_state = None;
        match db.load_freelist(bytes, &meta) {
            Ok(fs) => {
                for &(r, n) in &fs.chain {
                    for id in r.pgid..r.pgid + n {
                        if reach.get(id) {
                            c.problem(id, &[], "freelist record page reachable twice");
                        }
                        reach.set(id);
                        done += 1;
                    }
                }
                free_state = Some(fs);
            }
            Err(e) => c.problem(meta.freelist.pgid, &[], format!("free-space chain: {e}")),
        }

        // The tree, buckets included.
        let mut stack = Vec::new();
        if !meta.root.is_empty() {
            stack.push(Item {
                r: meta.root,
                path: Rc::new(Vec::new()),
                depth: 0,
                lo: None,
                hi: None,
                level: None,
            });
        }
        while let Some(it) = stack.pop() {
            let id = it.r.pgid;
            if id < 2 || id >= hwm {
                c.problem(id, &it.path, format!("pointer outside [2, {hwm})"));
                continue;
            }
            if reach.get(id) {
                c.problem(
                    id,
                    &it.path,
                    "page reachable twice (shared or cyclic pointer)",
                );
                continue;
            }
            if it.depth > MAX_DEPTH {
                c.problem(id, &it.path, format!("tree deeper than {MAX_DEPTH} levels"));
                continue;
            }
            if it.r.txid > meta.txid {
                c.problem(
                    id,
                    &it.path,
                    format!("txid {} newer than the snapshot {}", it.r.txid, meta.txid),
                );
            }
            let (h, span) = match db.load_span_opt(bytes, hwm, &it.r, Want::Node, true) {
                Ok(x) => x,
                Err(e) => {
                    reach.set(id);
                    c.problem(id, &it.path, e.to_string());
                    continue;
                }
            };
            let n = span.len() as u64 / p;
            for q in id..id + n {
                if reach.get(q) {
                    c.problem(q, &it.path, "overflow page reachable twice");
                }
                reach.set(q);
            }
            done += n;
            if done % 1024 < n {
                (c.progress)(done.min(hwm), hwm);
            }
            let page = Page {
                id,
                data: span,
                leaf: h.ptype == PageType::Leaf as u8,
                level: h.level,
                count: h.count as usize,
            };
            if let Some(want) = it.level {
                if page.level != want {
                    c.problem(
                        id,
                        &it.path,
                        format!(
                            "page at level {}, its parent implies level {want} (pointer to the wrong depth)",
                            page.level
                        ),
                    );
                }
            }
            // Keys must lie inside the range the parent gives this page.
            for i in 0..page.count {
                let key = match page.key(i) {
                    Ok(k) => k,
                    Err(e) => {
                        c.problem(id, &it.path, e.to_string());
                        break;
                    }
                };
                let constrained = page.leaf || i > 0;
                if constrained {
                    if let Some(lo) = &it.lo {
                        if key < lo.as_slice() {
                            c.problem(
                                id,
                                &it.path,
                                format!("key {i} sorts before its parent's separator"),
                            );
                        }
                    }
                }
                if let Some(hi) = &it.hi {
                    if key >= hi.as_slice() {
                        c.problem(
                            id,
                            &it.path,
                            format!("key {i} sorts at or after the next separator"),
                        );
                    }
                }
            }
            if page.leaf {
                for i in 0..page.count {
                    let Ok(e) = page.leaf_item(i) else { continue };
                    if !e.bucket {
                        c.report.keys += 1;
                        continue;
                    }
                    c.report.buckets += 1;
                    let mut path = (*it.path).clone();
                    path.push(e.key.to_vec());
                    match BucketHeader::decode(e.value, id) {
                        Ok(bh) if !bh.root.is_empty() => stack.push(Item {
                            r: bh.root,
                            path: Rc::new(path),
                            depth: 0,
                            lo: None,
                            hi: None,
                            level: None,
                        }),
                        Ok(_) => {}
                        Err(err) => c.problem(id, &path, err.to_string()),
                    }
                }
            } else {
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
                    stack.push(Item {
                        r: child,
                        path: it.path.clone(),
                        depth: it.depth + 1,
                        lo,
                        hi,
                        level: page.level.checked_sub(1),
                    });
                }
            }
        }

        // Free space: disjoint from reachable pages, and together they cover everything.
        if let Some(fs) = free_state {
            let mut listed = Bits::new(hwm);
            for (s, l) in fs.free.iter() {
                for q in s..s + l {
                    if reach.get(q) {
                        c.problem(q, &[], "page is listed as free but is reachable");
                    }
                    listed.set(q);
                }
            }
            c.report.pages_free = fs.free.pages();
            let mut q = 2;
            while q < hwm {
                if reach.get(q) || listed.get(q) {
                    q += 1;
                    continue;
                }
                let start = q;
                while q < hwm && !reach.get(q) && !listed.get(q) {
                    q += 1;
                }
                c.problem(
                    start,
                    &[],
                    format!("pages {start}..{q} are neither reachable nor free (leaked)"),
                );
            }
        }
        c.report.pages_reachable = (0..hwm).filter(|&q| reach.get(q)).count() as u64;
        c.report.pages_pending = db
            .counters
            .pending_pages
            .load(std::sync::atomic::Ordering::Relaxed);
        if c.dropped > 0 {
            let d = c.dropped;
            c.report.problems.push(Problem {
                page: 0,
                path: Vec::new(),
                detail: format!("... and {d} more problems not listed"),
            });
        }
        (c.progress)(hwm, hwm);
        Ok(c.report)
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.problems {
            let path: Vec<String> = p.path.iter().map(|c| crate::ops::printable(c)).collect();
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
