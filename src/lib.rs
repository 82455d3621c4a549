//! deadbolt: an embedded key/value store with bbolt's model (buckets, cursors, one writer and
//! many readers on a copy-on-write B+tree in one file) and a hostile-byte discipline: every page
//! carries a checksum that its parent also records, every traversal is bounded, and whatever is
//! on disk, the engine returns data it verified or a precise error.
//!
//! The layers, lowest first; each imports only the ones below it (docs/ARCHITECTURE.md has
//! what each owns, and tests/layers.rs enforces the order):
//!
//! | layer | what it is |
//! |---|---|
//! | `error`, `limits`, `planted` | the error type, the bounds, the planted-bug switches |
//! | [`storage`] | the one I/O boundary: the file, or the harness's simulated disk |
//! | `format` | the pure codec: pages, meta pages, freelist records (bytes <-> structs) |
//! | `store` | a file as verified snapshots: verification, free space, readers, open, confirmation |
//! | `tx` | a transaction: tree access, lookups, the write arena and its mutation, commit |
//! | `cursor` | [`Cursor`]: bounded, ordered walks of one bucket |
//! | `bucket` | [`Bucket`], [`Iter`], the bucket methods of [`Tx`], bucket paths |
//! | `batch` | group commit ([`Db::batch`]'s queue) |
//! | `db` | [`Db`]: open, begin, view/update, sync, close, stats |
//! | `ops` | day two: check, page inspection, backup, compaction, salvage |
//! | [`bolt`] | the hardened bbolt reader and importer, on the public API only |
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bolt;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod storage;

mod batch;
mod bucket;
mod cursor;
mod db;
mod format;
mod limits;
mod ops;
mod planted;
mod store;
#[cfg(test)]
mod testutil;
mod tx;

pub use batch::BatchOptions;
pub use bucket::{Bucket, BucketNames, BucketStats, Iter};
pub use cursor::{Budget, Cursor, Entry, Usage};
pub use db::{Db, Stats};
pub use error::{Error, Result};
pub use limits::{
    DEFAULT_PAGE_SIZE, FORMAT_VERSION, MAX_DEPTH, MAX_INLINE_DEPTH, MAX_KEY_SIZE, MAX_VALUE_SIZE,
};
pub use ops::check::{CheckReport, Problem};
pub use ops::maintenance::{CompactStep, PageInfo};
pub use ops::salvage::{salvage, salvage_storage, LostRange, SalvageReport};
pub use ops::scan::{Scan, ScanLimits, Slice};
pub use storage::{FileOptions, FileStorage, MemStorage, Storage, View};
pub use store::{
    Options, ReaderAlert, ReaderCallback, ReaderInfo, ReaderLimits, Recovery, RolledBack,
};
pub use tx::Tx;
