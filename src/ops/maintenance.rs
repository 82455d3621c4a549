//! Day-two operations on a whole database: check, page inspection, hot backup, compaction.

use std::path::Path;
use std::sync::Arc;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::format::meta::Meta;
use crate::format::page::{
    max_overflow, span_crc, BucketRoot, BucketValue, ChildRef, Header, Page, PageType,
};
use crate::ops::bulk::BulkWriter;
use crate::ops::check::CheckReport;
use crate::storage::{FileOptions, FileStorage, Storage};
use crate::store::Options;

/// Raw facts about one page, for inspection tools.
#[derive(Clone, Debug)]
pub struct PageInfo {
    pub id: u64,
    /// "meta", "branch", "leaf", "freelist", "free" (listed as free) or "unknown".
    pub kind: String,
    pub count: u64,
    pub overflow: u64,
    pub txid: u64,
    /// The stored checksum matches the page's bytes.
    pub checksum_ok: bool,
    /// Keys on a branch or leaf page, at most 64 of them.
    pub keys: Vec<Vec<u8>>,
}

/// Writes sequentially through a [`Storage`] (the one I/O boundary).
struct StorageWriter<'a> {
    s: &'a dyn Storage,
    off: u64,
}

impl std::io::Write for StorageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.s.write_at(self.off, buf)?;
        self.off += buf.len() as u64;
        Ok(buf.len())
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
}

impl Db {
    /// Incremental compaction, a little at a time while the database is in use: rewrite up to
    /// `max_pages` of the pages that lie beyond the size the database needs into free pages
    /// earlier in the file, in one write transaction. Once readers of older snapshots are gone
    /// and the commit is durable, the freed tail is given back by later commits. Call it
    /// repeatedly (e.g. from a maintenance timer) until `moved` is 0.
    pub fn compact_step(&self, max_pages: u64) -> Result<CompactStep> {
        let tx = self.begin_write()?;
        let meta = tx.snap.meta;
        let (free, pending) = tx.free_counts();
        let target = meta.hwm.saturating_sub(free + pending);
        let bytes = tx.bytes();
        let mut moved = 0u64;
        // Walk the snapshot's pages (never the arena), buckets included, each page once.
        let mut stack: Vec<(usize, ChildRef)> = Vec::new();
        if !meta.root.is_empty() {
            stack.push((0, meta.root));
        }
        let mut visited = 0u64;
        while let Some((bid, r)) = stack.pop() {
            if moved >= max_pages {
                break;
            }
            visited += 1;
            if visited > meta.hwm {
                return Err(Error::corrupt(
                    r.pgid,
                    "more pages reachable than the file holds",
                ));
            }
            let page = self.inner.load_page(bytes, meta.hwm, &r)?;
            if r.pgid >= target {
                moved += tx.touch(bid, page.key(0)?)? as u64;
            }
            for i in 0..page.count {
                if page.leaf {
                    let e = page.leaf_item(i)?;
                    if e.bucket {
                        let h = BucketValue::decode(e.value, r.pgid, self.inner.page_size)?;
                        // An inline bucket has no page of its own to move.
                        if let BucketRoot::Tree(root) = h.root {
                            if !root.is_empty() {
                                stack.push((tx.open_child(bid, e.key, h)?, root));
                            }
                        }
                    }
                } else {
                    stack.push((bid, page.child(i)?));
                }
            }
        }
        tx.commit()?;
        Ok(CompactStep {
            moved,
            target_pages: target,
            high_water: self.stats().high_water,
        })
    }
}
