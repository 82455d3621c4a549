//! Migration from bbolt: a hardened, read-only reader for bbolt's file format (version 2), a
//! diagnosis of bbolt files ([`check_file`] / [`check_bytes`]), and an importer into a deadbolt
//! database ([`import_file`]) with a salvage mode for damaged files.
//!
//! The reader applies deadbolt's own rules to bbolt's pages: a bounded explicit stack instead
//! of recursion, every page's type checked against what the parent implies (a branch that
//! points at the freelist page, as in moby/moby#49074, is an error, not a loop), page ids
//! inside the file and below the high-water mark, element offsets inside the page, keys in
//! order, and no page entered twice. bbolt files have no page checksums, so every report lists
//! which checks were possible ([`CHECKS_PERFORMED`], [`CHECKS_NOT_POSSIBLE`]).
//!
//! The parser works on any `&[u8]` (see [`BoltFile`], [`Walker`]); the file functions open the
//! source through [`crate::FileStorage`] read-only, under a shared lock, and never write it.
//!
//! ```no_run
//! use deadbolt::bolt::{check_file, import_file, ImportOptions};
//! # fn main() -> deadbolt::Result<()> {
//! let report = check_file("volumes.db".as_ref())?;
//! println!("{report}");
//! let db = deadbolt::Db::open("volumes.deadbolt")?;
//! let opts = ImportOptions { salvage: !report.is_ok(), ..ImportOptions::default() };
//! let imported = import_file("volumes.db".as_ref(), &db, &opts, &mut |_, _| {})?;
//! println!("{imported}");
//! # Ok(()) }
//! ```

mod check;
pub mod format;
mod import;
mod reader;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use check::{
    check_bytes, check_file, BoltReport, FreelistInfo, PageCensus, Verdict, CHECKS_NOT_POSSIBLE,
    CHECKS_PERFORMED,
};
pub use format::MetaInfo;
pub use import::{import_bytes, import_file, ImportOptions, ImportReport};
pub use reader::{
    show_bytes, show_path, BoltFile, BoltProblem, Event, LostRange, OpenOutcome, PageSet,
    ProblemList, Severity, WalkStats, Walker, MAX_BUCKET_NESTING, MAX_PROBLEMS, MAX_PROBLEM_BYTES,
    MAX_TREE_DEPTH,
};

use crate::{Error, FileOptions, FileStorage, Result, Storage, View};

/// Default wait for the source file's shared lock (a running bbolt writer holds an exclusive
/// one).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A read-only, shared-locked, memory-mapped bbolt file. The lock is held as long as this lives.
pub struct SourceFile {
    _storage: FileStorage,
    view: Arc<dyn View>,
}

impl SourceFile {
    /// Open `path` read-only under a shared lock, waiting at most `lock_timeout`.
    pub fn open(path: &Path, lock_timeout: Option<Duration>) -> Result<SourceFile> {
        let opts = FileOptions {
            read_only: true,
            create: false,
            lock_timeout,
        };
        let (storage, _) = FileStorage::open(path, &opts).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::LockTimeout
            } else {
                Error::Io(e)
            }
        })?;
        let view = storage.view()?;
        Ok(SourceFile {
            _storage: storage,
            view,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.view.bytes()
    }
}

pub(crate) fn open_view(path: &Path) -> Result<SourceFile> {
    SourceFile::open(path, Some(DEFAULT_LOCK_TIMEOUT))
}
