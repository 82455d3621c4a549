//! deadbolt: an embedded key/value store with bbolt's model (buckets, cursors, one writer and
//! many readers on a copy-on-write B+tree in one file) and a hostile-byte discipline: every page
//! carries a checksum that its parent also records, every traversal is bounded, and whatever is
//! on disk, the engine returns data it verified or a precise error.
//!
//! The data path reads top-down: [`storage`] -> `page` (codec) -> `meta` / `freelist` ->
//! `node` (in-memory copy-on-write) -> [`Bucket`] / [`Cursor`] -> [`Tx`] -> [`Db`].

pub mod bolt;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod storage;

mod batch;
mod bucket;
mod check;
mod confirm;
mod cursor;
mod db;
mod freelist;
mod meta;
mod mvcc;
mod node;
mod ops;
mod page;
mod salvage;
mod tx;

pub use batch::BatchOptions;
pub use bucket::{Bucket, BucketNames, Iter};
pub use cursor::{Cursor, Entry};
pub use db::BucketStats;
pub use db::{CheckReport, Db, Options, PageInfo, Problem, Recovery, RolledBack, Stats};
pub use error::{Error, Result};
pub use ops::CompactStep;
pub use salvage::{salvage, salvage_storage, LostRange, SalvageReport};
pub use storage::{FileOptions, FileStorage, MemStorage, Storage, View};
pub use tx::Tx;

/// Largest key (and bucket name), in bytes, as in bbolt.
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value, in bytes, as in bbolt (2^31 - 2).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Deepest tree a cursor will descend; needing more is reported as corruption.
pub const MAX_DEPTH: usize = 40;
/// Format version written in every meta page.
pub const FORMAT_VERSION: u32 = 2;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;
