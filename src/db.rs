//! The database handle (API stub, filled in by the engine work).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{Result, Storage, Tx};

/// Options for [`Db::open_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Page size for a new file: a power of two from 1024 to 65536. Ignored for existing files.
    pub page_size: usize,
    /// Do not sync on commit (bbolt's NoSync): a crash may lose recent commits.
    pub no_sync: bool,
    /// Open read-only under a shared lock.
    pub read_only: bool,
    /// Wait at most this long for the file lock (`None`: forever).
    pub lock_timeout: Option<Duration>,
    /// Verify a page's checksum on every access, not only the first.
    pub verify_every_access: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: crate::DEFAULT_PAGE_SIZE,
            no_sync: false,
            read_only: false,
            lock_timeout: None,
            verify_every_access: false,
        }
    }
}

/// Engine counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub txid: u64,
    pub page_size: usize,
    pub high_water: u64,
    pub file_size: u64,
    pub free_pages: u64,
    pub pending_pages: u64,
    pub commits: u64,
    pub syncs: u64,
    pub pages_written: u64,
    pub bytes_written: u64,
    pub pages_verified: u64,
    pub open_read_txs: u64,
    /// Records in the persisted free-space chain.
    pub freelist_chain: u64,
    /// Height of the root bucket's tree (0 when empty).
    pub depth: u64,
    /// Format version of the file.
    pub format_version: u32,
}

/// One problem found by [`Db::check`].
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
    pub problems: Vec<Problem>,
    /// Pages below the high-water mark.
    pub pages_total: u64,
    pub pages_reachable: u64,
    pub pages_free: u64,
    pub pages_pending: u64,
    pub buckets: u64,
    pub keys: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Raw facts about one page, for inspection tools.
#[derive(Clone, Debug)]
pub struct PageInfo {
    pub id: u64,
    /// "meta", "branch", "leaf", "freelist", "free" (not reachable) or "unknown".
    pub kind: String,
    pub count: u64,
    pub overflow: u64,
    pub txid: u64,
    /// The stored checksum matches the page's bytes.
    pub checksum_ok: bool,
    /// Keys on a branch or leaf page (hex-safe raw bytes), at most 64 of them.
    pub keys: Vec<Vec<u8>>,
}

/// Per-bucket statistics.
#[derive(Clone, Debug, Default)]
pub struct BucketStats {
    pub keys: u64,
    pub buckets: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    /// Extra pages of multi-page spans.
    pub overflow_pages: u64,
    pub depth: u64,
    /// Bytes of keys and values stored.
    pub bytes_used: u64,
    /// Bytes of the pages holding them.
    pub bytes_allocated: u64,
}

/// What open found.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    pub txid: u64,
    pub rolled_back: Option<RolledBack>,
}

/// A newer commit that open found incomplete or damaged and did not use.
#[derive(Clone, Debug)]
pub struct RolledBack {
    pub txid: u64,
    pub reason: String,
}

/// A database.
pub struct Db {
    _storage: Arc<dyn Storage>,
}

impl Db {
    pub fn open(_path: impl AsRef<Path>) -> Result<Db> {
        todo!()
    }
    pub fn open_with(_path: impl AsRef<Path>, _opts: Options) -> Result<Db> {
        todo!()
    }
    pub fn open_storage(_storage: Arc<dyn Storage>, _opts: Options) -> Result<Db> {
        todo!()
    }
    pub fn begin_read(&self) -> Result<Tx<'_>> {
        todo!()
    }
    pub fn begin_write(&self) -> Result<Tx<'_>> {
        todo!()
    }
    pub fn view<T, E: From<crate::Error>>(&self, _f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        todo!()
    }
    pub fn update<T, E: From<crate::Error>>(&self, _f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E> {
        todo!()
    }
    pub fn stats(&self) -> Stats {
        todo!()
    }
    pub fn recovery(&self) -> &Recovery {
        todo!()
    }
    pub fn page_size(&self) -> usize {
        todo!()
    }
    /// Full integrity check of the newest snapshot.
    pub fn check(&self) -> Result<CheckReport> {
        todo!()
    }
    /// [`Db::check`] with a progress callback (pages done, pages total).
    pub fn check_with_progress(&self, _progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
        todo!()
    }
    /// Raw facts about page `id` of the newest snapshot.
    pub fn page_info(&self, _id: u64) -> Result<PageInfo> {
        todo!()
    }
    /// Hot backup: a consistent copy of the newest snapshot written to a new file at `path`.
    pub fn backup(&self, _path: impl AsRef<Path>) -> Result<()> {
        todo!()
    }
    /// A new, densely packed copy at `path`.
    pub fn compact_into(&self, _path: impl AsRef<Path>) -> Result<()> {
        todo!()
    }
}
