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
}
