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
//! Three ways to read:
//! - strict ([`Walker::new`] with `salvage = false`, and [`import_file`] by default): the first
//!   problem is an [`crate::Error::Corruption`] naming the page; a strict import checks the whole
//!   file first and writes nothing to a damaged one;
//! - diagnosis ([`Walker::diagnose`], used by [`check_bytes`]): every problem is recorded with
//!   its page, bucket path and the key range it makes unreadable, and the walk goes on;
//! - salvage ([`Walker::new`] with `salvage = true`, [`ImportOptions::salvage`]): like the
//!   diagnosis, and it also reads what the diagnosis only points at: a page whose type field is
//!   garbage but whose elements form a valid page of the type its depth implies, and, with a
//!   consistent freelist, orphaned subtrees (pages neither reachable nor free, cut off by a bad
//!   pointer) whose keys fall into exactly one lost range. Everything salvage reads that strict
//!   reading would not is reported as such.
//!
//! Bounds, all checked in release builds: B+tree depth [`MAX_TREE_DEPTH`], bucket nesting
//! [`MAX_BUCKET_NESTING`], each page entered at most once per walk (bitmaps of one bit per page
//! of the file are the only allocations sized from the file), element counts bounded by the
//! page's bytes, [`MAX_KEPT_PROBLEMS`] / [`MAX_PROBLEM_BYTES`] for the problem list,
//! [`MAX_RECOVERY_RANGES`] and [`MAX_ORPHAN_ROOTS`] for orphan recovery. Import memory is
//! bounded by [`ImportOptions::max_tx_bytes`] plus the engine's own per-transaction state.
//!
//! Layout, each module depending only on those listed before it: [`mod@format`] (the on-disk
//! layout), `problem` (problems and how they print), `page_set`, `file` (a chosen geometry and
//! page access), `open` (meta selection), `element` (element decoding), `freelist`, `context`
//! (a walk's shared state), `frame`, `leaf` (leaf stepping), `cursor` (one bucket's tree),
//! `orphan` (salvage's orphan recovery), `walker` (every bucket), `source` (the locked
//! source file), `check` and `import`. This module only re-exports.
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
mod context;
mod cursor;
mod element;
mod file;
pub mod format;
mod frame;
mod freelist;
mod import;
mod leaf;
mod open;
mod orphan;
mod page_set;
mod problem;
mod source;
mod walker;

pub use check::{
    check_bytes, check_file, BoltReport, PageCensus, Verdict, CHECKS_NOT_POSSIBLE, CHECKS_PERFORMED,
};
pub use context::{WalkStats, MAX_RECOVERY_RANGES};
pub use cursor::MAX_TREE_DEPTH;
pub use file::BoltFile;
pub use format::MetaInfo;
pub use freelist::FreelistInfo;
pub use import::{import_bytes, import_file, ImportOptions, ImportReport};
pub use open::OpenOutcome;
pub use orphan::MAX_ORPHAN_ROOTS;
pub use page_set::PageSet;
pub use problem::{
    show_bytes, show_path, BoltProblem, ProblemList, Severity, MAX_KEPT_PROBLEMS, MAX_PROBLEM_BYTES,
};
pub use source::{SourceFile, DEFAULT_LOCK_TIMEOUT};
pub use walker::{Event, Walker, MAX_BUCKET_NESTING};
