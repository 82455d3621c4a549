//! Salvage: copy everything that still verifies out of a damaged deadbolt file into a fresh
//! database, skipping damaged subtrees and reporting exactly which key ranges of which buckets
//! were lost. The source is opened read-only and never written.

use std::collections::HashSet;
use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::rc::Rc;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::format::meta::decode_metas;
use crate::format::page::{BucketRoot, BucketValue, ChildRef, Page};
use crate::limits::MAX_DEPTH;
use crate::ops::bulk::{printable, BulkWriter};
use crate::storage::{FileOptions, FileStorage, Storage};
use crate::store::mvcc::Arc;
use crate::store::{Options, Store};

/// Keys of one bucket that could not be read: what salvage of a deadbolt file and the bbolt
/// reader ([`crate::bolt`]) report as lost. Its `Display` (bucket, key range, page, entries
/// recovered) is the bbolt reader's, in `bolt/problem.rs`, next to the byte rendering it uses;
/// [`SalvageReport`] prints its own lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostRange {
    /// The bucket, from the top (the top-level bucket name first).
    pub path: Vec<Vec<u8>>,
    /// Lower end of the lost key range (`Unbounded` together with `to`: the whole bucket).
    pub from: Bound<Vec<u8>>,
    /// Upper end of the lost key range.
    pub to: Bound<Vec<u8>>,
    /// The page where reading stopped (for salvage: the page that failed to verify).
    pub page: u64,
    /// Why the range was lost. Salvage sets it; the bbolt reader leaves it empty, because the
    /// [`crate::bolt::BoltProblem`] holding the range says why in its `detail`.
    pub reason: String,
    /// Entries (pairs and nested buckets) that bbolt salvage recovered into this range from
    /// orphaned pages (unreachable and not on the freelist); whether that is all of the range
    /// cannot be verified. Always 0 from salvage of deadbolt files, which recovers no orphans.
    pub recovered: u64,
}

impl LostRange {
    /// The whole bucket (every key and nested bucket) is lost.
    pub fn is_whole_bucket(&self) -> bool {
        matches!(self.from, Bound::Unbounded) && matches!(self.to, Bound::Unbounded)
    }

    /// True when `key` of bucket `path` falls into this range.
    pub fn contains(&self, path: &[Vec<u8>], key: &[u8]) -> bool {
        if !path.starts_with(&self.path) {
            return false;
        }
        // A nested bucket under the lost bucket: lost when its ancestor's name (relative to
        // this bucket) is in range.
        let key = path.get(self.path.len()).map_or(key, Vec::as_slice);
        let range = (
            self.from.as_ref().map(Vec::as_slice),
            self.to.as_ref().map(Vec::as_slice),
        );
        range.contains(key)
    }
}

/// What [`salvage`] recovered and lost.
#[derive(Clone, Debug, Default)]
pub struct SalvageReport {
    /// The commit the copy was taken from.
    pub txid: u64,
    /// Notes about the meta pages (a newer commit that could not be used, a damaged slot).
    pub notes: Vec<String>,
    /// Buckets copied.
    pub buckets: u64,
    /// Key/value pairs copied.
    pub keys: u64,
    /// What could not be copied, and why.
    pub lost: Vec<LostRange>,
    /// Write transactions the copy took.
    pub transactions: u64,
}

impl SalvageReport {
    /// True when nothing was lost.
    pub fn is_complete(&self) -> bool {
        self.lost.is_empty()
    }
}

impl fmt::Display for SalvageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for l in &self.lost {
            let path: Vec<String> = l.path.iter().map(|c| printable(c)).collect();
            let from = match &l.from {
                Bound::Included(k) => format!("[{}", printable(k)),
                Bound::Excluded(k) => format!("({}", printable(k)),
                Bound::Unbounded => "[-inf".to_string(),
            };
            let to = match &l.to {
                Bound::Included(k) => format!("{}]", printable(k)),
                Bound::Excluded(k) => format!("{})", printable(k)),
                Bound::Unbounded => "+inf)".to_string(),
            };
            writeln!(
                f,
                "lost /{}: keys {from}, {to} at page {}: {}",
                path.join("/"),
                l.page,
                l.reason
            )?;
        }
        write!(
            f,
            "recovered {} buckets and {} keys from commit {} in {} transactions; {} ranges lost",
            self.buckets,
            self.keys,
            self.txid,
            self.transactions,
            self.lost.len()
        )
    }
}

/// Salvage the deadbolt file at `src` into a new database at `dst` (which must not exist or
/// be empty).
pub fn salvage(src: &Path, dst: &Path) -> Result<SalvageReport> {
    let (storage, _) = FileStorage::open(
        src,
        &FileOptions {
            read_only: true,
            create: false,
            lock_timeout: Some(std::time::Duration::from_secs(5)),
        },
    )?;
    let out = Db::open(dst)?;
    if out.begin_read()?.buckets().next().is_some() {
        return Err(Error::InvalidArgument(format!(
            "{} is not empty",
            dst.display()
        )));
    }
    salvage_storage(Arc::new(storage), &out)
}

/// A subtree still to copy: its pointer, bucket path, the key range its parents imply, depth.
struct Subtree {
    r: ChildRef,
    path: Rc<Vec<Vec<u8>>>,
    lo: Option<Vec<u8>>,
    hi: Option<Vec<u8>>,
    depth: usize,
}

impl Subtree {
    fn root(r: ChildRef, path: Vec<Vec<u8>>) -> Subtree {
        Subtree {
            r,
            path: Rc::new(path),
            lo: None,
            hi: None,
            depth: 0,
        }
    }

    /// The whole range of this subtree, lost for `reason`.
    fn lost(&self, reason: String) -> LostRange {
        LostRange {
            path: (*self.path).clone(),
            from: self.lo.clone().map_or(Bound::Unbounded, Bound::Included),
            to: self.hi.clone().map_or(Bound::Unbounded, Bound::Excluded),
            page: self.r.pgid,
            reason,
            recovered: 0,
        }
    }
}

/// Salvage from any storage into `dst`.
pub fn salvage_storage(src: Arc<dyn Storage>, dst: &Db) -> Result<SalvageReport> {
    let view = src.view()?;
    let bytes = view.bytes();
    let (page_size, candidates, damaged) = decode_metas(bytes)?;
    let opts = Options {
        read_only: true,
        verify_every_access: true,
        ..Options::default()
    };
    let store = Store::new(src.clone(), opts, page_size, view.clone(), &candidates);
    let mut report = SalvageReport {
        notes: damaged,
        ..Default::default()
    };
    // The newest commit whose root still verifies.
    let mut meta = None;
    for m in &candidates {
        let ok = m.hwm.saturating_mul(page_size as u64) <= bytes.len() as u64
            && (m.root.is_empty() || store.load_page(bytes, m.hwm, &m.root).is_ok());
        if ok {
            meta = Some(*m);
            break;
        }
        let note = format!("commit {} unusable: its root does not verify", m.txid);
        report.notes.push(note);
    }
    let slot = candidates.first().map_or(0, |m| m.slot());
    let meta = meta.ok_or_else(|| Error::corrupt(slot, "no commit with a readable root"))?;
    report.txid = meta.txid;
    let mut copy = Salvage {
        store: &store,
        bytes,
        hwm: meta.hwm,
        out: BulkWriter::new(dst),
        report,
        seen: HashSet::new(),
        stack: Vec::new(),
    };
    if !meta.root.is_empty() {
        copy.stack.push(Subtree::root(meta.root, Vec::new()));
    }
    while let Some(it) = copy.stack.pop() {
        copy.subtree(it)?;
    }
    let mut report = copy.report;
    report.transactions = copy.out.finish()?;
    // By bucket, then lower end (unbounded first): the walk finds them out of order.
    fn start(l: &LostRange) -> Option<&Vec<u8>> {
        match &l.from {
            Bound::Included(k) | Bound::Excluded(k) => Some(k),
            Bound::Unbounded => None,
        }
    }
    report
        .lost
        .sort_by(|a, b| (&a.path, start(a)).cmp(&(&b.path, start(b))));
    Ok(report)
}

/// One salvage in progress: the source snapshot, the destination, and the work list (at most
/// one visit per page below the high-water mark, at most [`MAX_DEPTH`] levels per tree).
struct Salvage<'a> {
    store: &'a Store,
    bytes: &'a [u8],
    hwm: u64,
    out: BulkWriter<'a>,
    report: SalvageReport,
    seen: HashSet<u64>,
    stack: Vec<Subtree>,
}

impl Salvage<'_> {
    /// Copy what one page holds (or queue its children); a page that fails loses its range.
    fn subtree(&mut self, it: Subtree) -> Result<()> {
        if it.depth > MAX_DEPTH {
            self.report
                .lost
                .push(it.lost(Error::too_deep(it.r.pgid).to_string()));
            return Ok(());
        }
        if !self.seen.insert(it.r.pgid) || self.seen.len() as u64 > self.hwm {
            self.report
                .lost
                .push(it.lost("page reachable twice".into()));
            return Ok(());
        }
        let page = match self.store.load_page(self.bytes, self.hwm, &it.r) {
            Ok(p) => p,
            Err(e) => {
                self.report.lost.push(it.lost(e.to_string()));
                return Ok(());
            }
        };
        if page.leaf {
            return self.leaf(&page, &it);
        }
        // Children in reverse so that keys are copied in ascending order.
        for i in (0..page.count).rev() {
            let child = page.child(i)?;
            let lo = if i == 0 {
                it.lo.clone()
            } else {
                Some(page.key(i)?.to_vec())
            };
            let hi = if i + 1 < page.count {
                Some(page.key(i + 1)?.to_vec())
            } else {
                it.hi.clone()
            };
            self.stack.push(Subtree {
                r: child,
                path: it.path.clone(),
                lo,
                hi,
                depth: it.depth + 1,
            });
        }
        Ok(())
    }

    /// Copy inline bucket `page` (at `path`, created) and the inline buckets nested in it,
    /// verified with the leaf that holds them: a work list at most [`crate::MAX_INLINE_DEPTH`]
    /// deep, as validation ensures.
    fn inline(&mut self, page: Page<'_>, path: Vec<Vec<u8>>) -> Result<()> {
        let mut work = vec![(page, path)];
        while let Some((page, path)) = work.pop() {
            for j in 0..page.count {
                let p = page.leaf_item(j)?;
                if !p.bucket {
                    self.out.put(&path, p.key, p.value)?;
                    self.report.keys += 1;
                    continue;
                }
                let mut child = path.clone();
                child.push(p.key.to_vec());
                let h = BucketValue::decode(p.value, page.id, self.store.page_size)?;
                self.out.ensure_bucket(&child, h.sequence)?;
                self.report.buckets += 1;
                match h.root {
                    BucketRoot::Inline(inline) => work.push((inline, child)),
                    BucketRoot::Tree(r) if r.is_empty() => {}
                    BucketRoot::Tree(_) => {
                        return Err(Error::corrupt(
                            page.id,
                            "an inline bucket holds a bucket with pages of its own",
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy a leaf's pairs inside the subtree's range; create its nested buckets and queue
    /// their trees.
    fn leaf(&mut self, page: &Page<'_>, it: &Subtree) -> Result<()> {
        for i in 0..page.count {
            let e = page.leaf_item(i)?;
            let inside = it.lo.as_deref().is_none_or(|lo| e.key >= lo)
                && it.hi.as_deref().is_none_or(|hi| e.key < hi);
            if !inside {
                continue;
            }
            if !e.bucket {
                // The root bucket holds only buckets.
                if !it.path.is_empty() {
                    self.out.put(&it.path, e.key, e.value)?;
                    self.report.keys += 1;
                }
                continue;
            }
            let mut path = (*it.path).clone();
            path.push(e.key.to_vec());
            match BucketValue::decode(e.value, it.r.pgid, self.store.page_size) {
                Ok(h) => {
                    self.out.ensure_bucket(&path, h.sequence)?;
                    self.report.buckets += 1;
                    match h.root {
                        BucketRoot::Tree(r) if !r.is_empty() => {
                            self.stack.push(Subtree::root(r, path))
                        }
                        BucketRoot::Tree(_) => {}
                        // Verified with this leaf: copy it now.
                        BucketRoot::Inline(inline) => self.inline(inline, path)?,
                    }
                }
                Err(err) => self.report.lost.push(LostRange {
                    path,
                    from: Bound::Unbounded,
                    to: Bound::Unbounded,
                    page: it.r.pgid,
                    reason: err.to_string(),
                    recovered: 0,
                }),
            }
        }
        Ok(())
    }
}
