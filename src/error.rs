//! The one error type of the engine.

use std::fmt;
use std::io;

/// Every failure deadbolt reports. Reads return `Result` because any read can find corruption.
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
    /// A key is empty or longer than [`crate::MAX_KEY_SIZE`].
    KeyTooLarge { len: usize },
    /// A key of length zero.
    KeyEmpty,
    /// A value longer than [`crate::MAX_VALUE_SIZE`].
    ValueTooLarge { len: usize },
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
}

impl Error {
    pub(crate) fn corrupt(page: u64, detail: impl Into<String>) -> Error {
        Error::Corruption {
            page,
            detail: detail.into(),
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
                    crate::MAX_KEY_SIZE
                )
            }
            Error::KeyEmpty => write!(f, "key must not be empty"),
            Error::ValueTooLarge { len } => {
                write!(
                    f,
                    "value of {len} bytes exceeds the limit of {} bytes",
                    crate::MAX_VALUE_SIZE
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
