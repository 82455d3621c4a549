//! The one error type of the engine.

use std::fmt;
use std::io;

/// Every failure deadbolt reports. Reads return `Result` because any read can find corruption.
///
/// Where bbolt panics, loops or returns wrong data on a damaged file, deadbolt returns
/// [`Error::Corruption`] naming the page; a daemon can keep running, report it, and salvage.
///
/// ```
/// # fn main() -> Result<(), deadbolt::Error> {
/// use deadbolt::{Db, Error};
/// let db = Db::in_memory()?;
/// let r = db.update(|tx| tx.create_bucket(b"")?.put(b"k", b"v"));
/// assert!(matches!(r, Err(Error::InvalidBucketName))); // bbolt: ErrBucketNameRequired
/// match db.view(|tx| tx.bucket(b"volumes")?.ok_or(Error::BucketNotFound).map(|_| ())) {
///     Err(Error::BucketNotFound) => {}              // bbolt: tx.Bucket() returns nil
///     Err(e @ Error::Corruption { .. }) => {       // bbolt: a panic, a hang, or garbage
///         eprintln!("damaged: {e}; run `deadbolt salvage`");
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub enum Error {
    /// The storage layer failed (read, write, set_len, sync, open, lock).
    Io(io::Error),
    /// Bytes on disk are not what the engine wrote: checksum, id, type, bounds or order failed.
    Corruption {
        /// The page where the problem was found (0 or 1 for a meta page).
        page: u64,
        /// What was wrong, expected versus found.
        detail: String,
    },
    /// The file is not a deadbolt database (nothing was written to it). A bbolt file says so
    /// and names `deadbolt import-bolt`.
    InvalidFile(String),
    /// The file is a deadbolt database of a format version this build cannot read.
    UnsupportedVersion {
        /// The version recorded in the file's meta page.
        found: u32,
        /// The version this build reads and writes ([`crate::FORMAT_VERSION`]).
        supported: u32,
    },
    /// `begin_write`, `update` or `batch` on a thread that already holds the write transaction:
    /// waiting for it would wait forever.
    WouldDeadlock,
    /// `bucket`/`delete_bucket` on a name that does not exist.
    BucketNotFound,
    /// `create_bucket` on a name that already exists as a bucket.
    BucketExists,
    /// A name used as a bucket was read or written as a value, or the other way round.
    IncompatibleValue,
    /// A key longer than [`crate::MAX_KEY_SIZE`].
    KeyTooLarge {
        /// The key's length.
        len: usize,
    },
    /// A key of length zero.
    KeyEmpty,
    /// A value longer than [`crate::MAX_VALUE_SIZE`].
    ValueTooLarge {
        /// The value's length.
        len: usize,
    },
    /// A bucket name that is empty or longer than [`crate::MAX_KEY_SIZE`].
    InvalidBucketName,
    /// A write operation on a read-only transaction or a database opened read-only.
    ReadOnly,
    /// The file lock could not be taken within the configured timeout.
    LockTimeout,
    /// An earlier commit failed with an I/O error; the handle refuses writes until reopened,
    /// because a failed sync cannot be retried safely.
    Poisoned(String),
    /// An invalid option or argument.
    InvalidArgument(String),
    /// The transaction was already committed or rolled back.
    TxClosed,
    /// An invariant of deadbolt's own broke (not a property of the file): a bug in deadbolt,
    /// please report it. The operation was refused; after a failed commit the handle refuses
    /// writes until reopened, as after an I/O error.
    Bug(String),
    /// A budgeted cursor, iterator or scan ran out of its [`crate::Budget`] (pages, bytes or
    /// deadline) before it could finish the call. Nothing was returned by the call that failed;
    /// `resume` is where the walk got to, in its direction: the entries it has not yet returned
    /// lie strictly beyond an `Excluded` key, at or beyond an `Included` key, and anywhere for
    /// `Unbounded` (it had not returned one yet). A cursor stays where it was and goes on
    /// from there once given a new budget; any walk goes on from `resume`, in this
    /// transaction or a later one.
    BudgetExhausted {
        /// Where to go on from (see above).
        resume: std::ops::Bound<Vec<u8>>,
    },
}

impl Error {
    /// A broken invariant of deadbolt's own (see [`Error::Bug`]).
    pub(crate) fn bug(detail: impl Into<String>) -> Error {
        Error::Bug(detail.into())
    }

    /// A tree deeper than [`crate::limits::MAX_DEPTH`] levels, found at `page`.
    pub(crate) fn too_deep(page: u64) -> Error {
        Error::corrupt(
            page,
            format!("tree deeper than {} levels", crate::limits::MAX_DEPTH),
        )
    }

    /// The write arena grew deeper than [`crate::limits::MAX_DEPTH`] levels. Unreachable
    /// from file bytes: every page's level is validated to be at most the bound and each child
    /// to sit exactly one level below its parent, so only a bug in deadbolt gets here.
    pub(crate) fn arena_too_deep() -> Error {
        Error::bug(format!(
            "write arena deeper than {} levels",
            crate::limits::MAX_DEPTH
        ))
    }

    /// A cursor or accessor used a position its transaction has since changed.
    pub(crate) fn stale_position() -> Error {
        Error::InvalidArgument("stale cursor position".into())
    }

    /// The budget ran out; the caller fills in `resume` (see [`Error::BudgetExhausted`]).
    pub(crate) fn exhausted() -> Error {
        Error::BudgetExhausted {
            resume: std::ops::Bound::Unbounded,
        }
    }

    pub(crate) fn corrupt(page: u64, detail: impl Into<String>) -> Error {
        Error::Corruption {
            page,
            detail: detail.into(),
        }
    }

    /// An equivalent error (for each caller of a failed batch: [`Error`] is not `Clone`,
    /// since `std::io::Error` is not; an I/O error is copied as its kind and message).
    pub(crate) fn copy(&self) -> Error {
        let e = self;
        match e {
            Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
            Error::Corruption { page, detail } => Error::Corruption {
                page: *page,
                detail: detail.clone(),
            },
            Error::InvalidFile(s) => Error::InvalidFile(s.clone()),
            Error::UnsupportedVersion { found, supported } => Error::UnsupportedVersion {
                found: *found,
                supported: *supported,
            },
            Error::WouldDeadlock => Error::WouldDeadlock,
            Error::BucketNotFound => Error::BucketNotFound,
            Error::BucketExists => Error::BucketExists,
            Error::IncompatibleValue => Error::IncompatibleValue,
            Error::KeyTooLarge { len } => Error::KeyTooLarge { len: *len },
            Error::KeyEmpty => Error::KeyEmpty,
            Error::ValueTooLarge { len } => Error::ValueTooLarge { len: *len },
            Error::InvalidBucketName => Error::InvalidBucketName,
            Error::ReadOnly => Error::ReadOnly,
            Error::LockTimeout => Error::LockTimeout,
            Error::Poisoned(s) => Error::Poisoned(s.clone()),
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::TxClosed => Error::TxClosed,
            Error::Bug(s) => Error::Bug(s.clone()),
            Error::BudgetExhausted { resume } => Error::BudgetExhausted {
                resume: resume.clone(),
            },
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Corruption { page, detail } => write!(f, "corruption at page {page}: {detail}"),
            Error::InvalidFile(s) => write!(f, "not a valid deadbolt file: {s}"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "format version {found} is not supported by this build (it reads version {supported})"
            ),
            Error::WouldDeadlock => write!(
                f,
                "this thread already holds the write transaction; a second one would wait forever"
            ),
            Error::BucketNotFound => write!(f, "bucket not found"),
            Error::BucketExists => write!(f, "bucket already exists"),
            Error::IncompatibleValue => {
                write!(
                    f,
                    "incompatible value: a bucket name used as a key or a key used as a bucket"
                )
            }
            Error::KeyTooLarge { len } => {
                write!(
                    f,
                    "key of {len} bytes exceeds the limit of {} bytes",
                    crate::limits::MAX_KEY_SIZE
                )
            }
            Error::KeyEmpty => write!(f, "key must not be empty"),
            Error::ValueTooLarge { len } => {
                write!(
                    f,
                    "value of {len} bytes exceeds the limit of {} bytes",
                    crate::limits::MAX_VALUE_SIZE
                )
            }
            Error::InvalidBucketName => write!(f, "bucket name must be 1 to 32768 bytes"),
            Error::ReadOnly => write!(f, "write operation on a read-only transaction or database"),
            Error::LockTimeout => write!(f, "timed out waiting for the database file lock"),
            Error::Poisoned(why) => write!(
                f,
                "database handle refuses writes after a failed commit ({why}); reopen the file"
            ),
            Error::InvalidArgument(s) => write!(f, "invalid argument: {s}"),
            Error::TxClosed => write!(f, "transaction already closed"),
            Error::Bug(s) => write!(f, "internal error, a bug in deadbolt (please report it): {s}"),
            Error::BudgetExhausted { resume } => {
                let at = |k: &Vec<u8>| String::from_utf8_lossy(k).into_owned();
                match resume {
                    std::ops::Bound::Unbounded => write!(f, "budget exhausted before the first entry"),
                    std::ops::Bound::Included(k) => write!(f, "budget exhausted; resume at {:?}", at(k)),
                    std::ops::Bound::Excluded(k) => write!(f, "budget exhausted; resume after {:?}", at(k)),
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
