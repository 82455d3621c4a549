//! Day-two operations on a whole database: check, page inspection, hot backup, compaction.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::format::meta::Meta;
use crate::format::page::{
    max_overflow, span_crc, BucketRoot, BucketValue, ChildRef, Header, Page, PageType,
};
use crate::ops::bulk::BulkWriter;
use crate::ops::check::CheckReport;
use crate::storage::{FileOptions, FileStorage, Storage, MAX_WRITE};
use crate::store::Options;

/// Raw facts about one page, for inspection tools.
#[derive(Clone, Debug)]
pub struct PageInfo {
    /// The page id.
    pub id: u64,
    /// "meta", "branch", "leaf", "freelist", "free" (listed as free) or "unknown".
    pub kind: String,
    /// Elements on the page.
    pub count: u64,
    /// Continuation pages after it.
    pub overflow: u64,
    /// The commit that wrote it.
    pub txid: u64,
    /// The stored checksum matches the page's bytes.
    pub checksum_ok: bool,
    /// Keys on a branch or leaf page, at most 64 of them.
    pub keys: Vec<Vec<u8>>,
}

/// Writes sequentially through a [`Storage`] (the one I/O boundary), at most [`MAX_WRITE`]
/// bytes at a time: a backup is written as one buffer, whose page cache would otherwise be left
/// in the largest folios for the daemon that opens it.
struct StorageWriter<'a> {
    s: &'a dyn Storage,
    off: u64,
}

impl std::io::Write for StorageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(MAX_WRITE);
        self.s.write_at(self.off, &buf[..n])?;
        self.off += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn create_new(path: &Path) -> Result<FileStorage> {
    let (s, _) = FileStorage::open(path, &FileOptions::default())?;
    if s.len()? != 0 {
        return Err(Error::InvalidArgument(format!(
            "{} already exists and is not empty",
            path.display()
        )));
    }
    Ok(s)
}

impl Db {
    /// Full integrity check of the newest snapshot (see [`crate::Tx::check`]).
    ///
    /// ```
    /// # fn main() -> Result<(), deadbolt::Error> {
    /// use deadbolt::Db;
    /// let db = Db::in_memory()?;
    /// db.update(|tx| tx.create_bucket(b"b")?.put(b"k", b"v"))?;
    /// // bbolt: for err := range tx.Check() { ... }
    /// let report = db.check()?;
    /// assert!(report.is_ok(), "{report}");
    /// assert_eq!(report.keys, 1);
    /// # Ok(()) }
    /// ```
    pub fn check(&self) -> Result<CheckReport> {
        self.begin_read()?.check()
    }

    /// [`Db::check`] with a progress callback (pages done, pages total).
    pub fn check_with_progress(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
        self.begin_read()?.check_with_progress(progress)
    }

    /// Raw facts about page `id` of the newest snapshot, read without trusting it.
    pub fn page_info(&self, id: u64) -> Result<PageInfo> {
        let tx = self.begin_read()?;
        let bytes = tx.bytes();
        let p = self.inner.page_size;
        let hwm = tx.snap.meta.hwm;
        if id >= hwm {
            return Err(Error::InvalidArgument(format!(
                "page {id} is beyond the high-water mark {hwm}"
            )));
        }
        let off = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(p))
            .ok_or(Error::InvalidArgument("page id too large".into()))?;
        let first = bytes
            .get(off..off + p)
            .ok_or_else(|| Error::corrupt(id, "page lies past the end of the file"))?;
        let h = Header::parse(first).ok_or_else(|| Error::corrupt(id, "truncated header"))?;
        let mut info = PageInfo {
            id,
            kind: PageType::from_u8(h.ptype)
                .map_or("unknown", |t| t.name())
                .to_string(),
            count: h.count as u64,
            overflow: h.overflow as u64,
            txid: h.txid,
            checksum_ok: false,
            keys: Vec::new(),
        };
        if id < 2 {
            info.checksum_ok = Meta::decode(first, id).is_ok();
            info.overflow = 0;
            return Ok(info);
        }
        let over = h.overflow as u64;
        let span = if over <= max_overflow(p) && id + 1 + over <= hwm {
            bytes.get(off..off + (1 + over as usize) * p)
        } else {
            None
        };
        if let Some(span) = span {
            info.checksum_ok = span_crc(span) == h.crc && h.pgid == id;
            if h.ptype == PageType::Branch as u8 || h.ptype == PageType::Leaf as u8 {
                let page = Page::from_header(id, &h, span);
                for i in 0..page.count.min(64) {
                    match page.key(i) {
                        Ok(k) => info.keys.push(k.to_vec()),
                        Err(_) => break,
                    }
                }
            }
        }
        // Without blocking on a writer (which may be this thread): if one is active, the
        // free/pending status is not reported.
        let free = self.inner.writer.try_lock().is_some_and(|w| {
            w.free.free.contains(id)
                || w.free
                    .pending
                    .values()
                    .flatten()
                    .any(|&(s, l)| id >= s && id < s + l)
        });
        if free {
            info.kind = "free".into();
        }
        Ok(info)
    }

    /// Hot backup: a consistent copy of the newest snapshot, taken from a read transaction
    /// while writers go on, written and synced to a new file at `path`.
    ///
    /// ```
    /// # fn main() -> Result<(), deadbolt::Error> {
    /// # let dir = tempfile::tempdir().map_err(deadbolt::Error::Io)?;
    /// use deadbolt::{Db, Error};
    /// let db = Db::in_memory()?;
    /// db.update(|tx| tx.create_bucket(b"b")?.put(b"k", b"v"))?;
    /// // bbolt: db.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0600) })
    /// let path = dir.path().join("backup.db");
    /// let bytes = db.backup(&path)?;
    /// assert!(bytes > 0);
    /// let copy = Db::open(&path)?;
    /// assert!(copy.check()?.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<u64> {
        let dst = create_new(path.as_ref())?;
        let tx = self.begin_read()?;
        let n = tx.copy_to(&mut StorageWriter { s: &dst, off: 0 })?;
        dst.sync_data()?;
        dst.sync_dir()?;
        Ok(n)
    }

    /// A new, densely packed copy of the newest snapshot at `path` (which must not exist or be
    /// empty), copied bucket by bucket in transactions of bounded size.
    pub fn compact_into(&self, path: impl AsRef<Path>) -> Result<()> {
        let storage = create_new(path.as_ref())?;
        storage.sync_dir()?;
        let dst = Db::open_storage(
            Arc::new(storage),
            Options {
                page_size: self.inner.page_size,
                ..Options::default()
            },
        )?;
        let src = self.begin_read()?;
        let mut out = BulkWriter::new(&dst);
        // Depth first, in key order; the stack holds bucket paths still to copy.
        let mut todo: Vec<Vec<Vec<u8>>> = Vec::new();
        for name in src.buckets() {
            todo.push(vec![name?.to_vec()]);
        }
        todo.reverse();
        while let Some(path) = todo.pop() {
            let sb = src.bucket_path(&path)?.ok_or(Error::BucketNotFound)?;
            out.ensure_bucket(&path, sb.sequence())?;
            out.put_all(&path, sb.iter())?;
            let mut children = Vec::new();
            for name in sb.buckets() {
                let mut p = path.clone();
                p.push(name?.to_vec());
                children.push(p);
            }
            children.reverse();
            todo.extend(children);
        }
        out.finish()?;
        dst.sync()?;
        dst.shrink_to_fit()?;
        Ok(())
    }
}

/// What one [`Db::compact_step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactStep {
    /// Pages past the target size that were rewritten (with their ancestors) lower in the file.
    pub moved: u64,
    /// Pages the database needs: below this, the file would be dense.
    pub target_pages: u64,
    /// The high-water mark after the step's commit.
    pub high_water: u64,
    /// Pages the step looked at on its way (from where the previous step stopped).
    pub visited: u64,
}

/// Where [`Db::compact_step`] stopped: the key path (bucket names from the top, then a key in
/// the innermost) of the first page it did not get to. Keys, not pages: every step's commit
/// moves pages, so page ids do not survive from one step to the next.
pub(crate) type CompactPosition = Option<Vec<Vec<u8>>>;

/// A subtree still to visit, in key order.
struct Visit {
    /// The bucket (write-transaction id) and its path of names.
    bid: usize,
    path: Rc<Vec<Vec<u8>>>,
    r: ChildRef,
    /// The rest of the saved position inside this subtree: `from[0]` is a key of this
    /// bucket; everything before it was visited by an earlier step. `None`: the whole subtree.
    from: Option<Rc<[Vec<u8>]>>,
}

impl Db {
    /// Incremental compaction, a little at a time while the database is in use: rewrite up to
    /// `max_pages` of the pages that lie beyond the size the database needs into free pages
    /// earlier in the file, in one write transaction. Once readers of older snapshots are gone
    /// and the commit is durable, the freed tail is given back by later commits. Call it
    /// repeatedly (e.g. from a maintenance timer) until `moved` is 0.
    ///
    /// Each step goes on from where the previous one stopped (the walk is in key order, and
    /// the position is a key path, kept in the `Db`), so a run of steps visits each page about
    /// once instead of walking the tree from its start every time. A step that reaches the
    /// end starts again from the beginning, once, so `moved == 0` means a whole pass found
    /// nothing to move.
    pub fn compact_step(&self, max_pages: u64) -> Result<CompactStep> {
        let tx = self.begin_write()?;
        let meta = tx.snap.meta;
        let (free, pending) = tx.free_counts();
        let target = meta.hwm.saturating_sub(free + pending);
        let bytes = tx.bytes();
        let from = self.compact_from.lock().take();
        let passes = if from.is_some() { 2 } else { 1 };
        let mut step = CompactStep {
            target_pages: target,
            ..CompactStep::default()
        };
        let mut stop: CompactPosition = None;
        // One pass from the saved position to the end, then (if it stopped nowhere and did not
        // start at the beginning) one from the beginning.
        for pass_from in [from, None].into_iter().take(passes) {
            let mut todo = Vec::new();
            if !meta.root.is_empty() {
                todo.push(Visit {
                    bid: 0,
                    path: Rc::new(Vec::new()),
                    r: meta.root,
                    from: pass_from.map(|f| f.into()),
                });
            }
            // Each page once per pass: more means a cycle the page checks did not see.
            let mut visited = 0u64;
            while let Some(v) = todo.pop() {
                visited += 1;
                if visited > meta.hwm {
                    let d = "more pages reachable than the file holds";
                    return Err(Error::corrupt(v.r.pgid, d));
                }
                let page = self.inner.load_page(bytes, meta.hwm, &v.r)?;
                if step.moved >= max_pages {
                    let mut at = (*v.path).clone();
                    if page.count > 0 {
                        at.push(page.key(0)?.to_vec());
                    }
                    stop = Some(at);
                    break;
                }
                if v.r.pgid >= target && page.count > 0 {
                    step.moved += tx.touch(v.bid, page.key(0)?)? as u64;
                }
                self.plan_children(&tx, &page, v, &mut todo)?;
            }
            step.visited += visited;
            if stop.is_some() {
                break;
            }
        }
        tx.commit()?;
        *self.compact_from.lock() = stop;
        step.high_water = self.stats().high_water;
        Ok(step)
    }

    /// Push the children of `page` still to visit, in reverse key order (so they pop in key
    /// order): subtrees wholly before the saved position are skipped, the one holding it
    /// carries the rest of it, and a nested bucket's root starts its own level.
    fn plan_children(
        &self,
        tx: &crate::tx::Tx<'_>,
        page: &Page<'_>,
        v: Visit,
        todo: &mut Vec<Visit>,
    ) -> Result<()> {
        let first = todo.len();
        let here = v
            .from
            .as_ref()
            .and_then(|f| f.first().map(|k| k.as_slice()));
        if page.leaf {
            for i in 0..page.count {
                let e = page.leaf_item(i)?;
                if !e.bucket || here.is_some_and(|k| e.key < k) {
                    continue;
                }
                let h = BucketValue::decode(e.value, page.id, self.inner.page_size)?;
                // An inline bucket has no page of its own to move.
                let BucketRoot::Tree(root) = h.root else {
                    continue;
                };
                if root.is_empty() {
                    continue;
                }
                let inner = match &v.from {
                    Some(f) if f.len() > 1 && f[0].as_slice() == e.key => Some(f[1..].into()),
                    _ => None,
                };
                let mut path = (*v.path).clone();
                path.push(e.key.to_vec());
                todo.push(Visit {
                    bid: tx.open_child(v.bid, e.key, h)?,
                    path: Rc::new(path),
                    r: root,
                    from: inner,
                });
            }
        } else {
            for i in 0..page.count {
                // Child i holds the keys from its separator to the next one: skip it when the
                // next separator is at or before the position.
                if let (Some(k), true) = (here, i + 1 < page.count) {
                    if page.key(i + 1)? <= k {
                        continue;
                    }
                }
                // The first child not skipped holds the position; the ones after it do not.
                let holds = here.is_some() && todo.len() == first;
                todo.push(Visit {
                    bid: v.bid,
                    path: v.path.clone(),
                    r: page.child(i)?,
                    from: if holds { v.from.clone() } else { None },
                });
            }
        }
        todo[first..].reverse();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::storage::{MemStorage, View};

    /// A storage that keeps the size of every write.
    struct Sizes {
        inner: MemStorage,
        sizes: parking_lot::Mutex<Vec<usize>>,
    }
    impl Storage for Sizes {
        fn len(&self) -> std::io::Result<u64> {
            self.inner.len()
        }
        fn view(&self) -> std::io::Result<Arc<dyn View>> {
            self.inner.view()
        }
        fn write_at(&self, o: u64, d: &[u8]) -> std::io::Result<()> {
            self.sizes.lock().push(d.len());
            self.inner.write_at(o, d)
        }
        fn set_len(&self, l: u64) -> std::io::Result<()> {
            self.inner.set_len(l)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.inner.sync_data()
        }
        fn create(&self, image: &[u8]) -> std::io::Result<()> {
            self.inner.create(image)
        }
    }

    #[test]
    fn a_backup_went_out_in_one_write_of_the_whole_file_and_now_goes_in_64_kib_pieces() {
        let s = Sizes {
            inner: MemStorage::new(),
            sizes: parking_lot::Mutex::new(Vec::new()),
        };
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = StorageWriter { s: &s, off: 0 };
        w.write_all(&data).unwrap();
        let sizes = s.sizes.lock().clone();
        assert_eq!(sizes, [65536, 65536, 65536, 65536, 37856]);
        let view = s.inner.view().unwrap();
        assert_eq!(
            view.bytes(),
            data.as_slice(),
            "the pieces are the file, in order"
        );
    }
}
