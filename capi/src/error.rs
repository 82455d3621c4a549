//! Error codes and the error record that crosses the boundary.

use deadbolt::Error;

/// Success.
pub const DEADBOLT_OK: i32 = 0;
/// The storage layer failed (read, write, sync, open, lock).
pub const DEADBOLT_ERR_IO: i32 = 1;
/// Bytes on disk are not what deadbolt wrote; the message names the page.
pub const DEADBOLT_ERR_CORRUPTION: i32 = 2;
/// The file is not a deadbolt database (and was not written).
pub const DEADBOLT_ERR_INVALID_FILE: i32 = 3;
/// The file is a bbolt database: convert it with `deadbolt_import_bolt` (it was not written).
pub const DEADBOLT_ERR_BOLT_FILE: i32 = 4;
/// A deadbolt file of a format version this build cannot read.
pub const DEADBOLT_ERR_UNSUPPORTED_VERSION: i32 = 5;
/// This thread already holds the write transaction.
pub const DEADBOLT_ERR_WOULD_DEADLOCK: i32 = 6;
/// No bucket of that name.
pub const DEADBOLT_ERR_BUCKET_NOT_FOUND: i32 = 7;
/// A bucket of that name exists.
pub const DEADBOLT_ERR_BUCKET_EXISTS: i32 = 8;
/// A bucket name used as a key, or a key used as a bucket.
pub const DEADBOLT_ERR_INCOMPATIBLE_VALUE: i32 = 9;
/// A key longer than the engine's limit (32768 bytes).
pub const DEADBOLT_ERR_KEY_TOO_LARGE: i32 = 10;
/// A key of length zero.
pub const DEADBOLT_ERR_KEY_EMPTY: i32 = 11;
/// A value longer than the engine's limit.
pub const DEADBOLT_ERR_VALUE_TOO_LARGE: i32 = 12;
/// A bucket name that is empty or too long.
pub const DEADBOLT_ERR_INVALID_BUCKET_NAME: i32 = 13;
/// A write on a read-only transaction or database.
pub const DEADBOLT_ERR_READ_ONLY: i32 = 14;
/// The file lock was not taken within the timeout.
pub const DEADBOLT_ERR_LOCK_TIMEOUT: i32 = 15;
/// An earlier commit failed; the database refuses writes until reopened.
pub const DEADBOLT_ERR_POISONED: i32 = 16;
/// An invalid argument or option (the message says which).
pub const DEADBOLT_ERR_INVALID_ARGUMENT: i32 = 17;
/// The transaction was already committed or rolled back.
pub const DEADBOLT_ERR_TX_CLOSED: i32 = 18;
/// A broken invariant of deadbolt's own: please report it.
pub const DEADBOLT_ERR_BUG: i32 = 19;
/// A required pointer argument was NULL.
pub const DEADBOLT_ERR_NULL_POINTER: i32 = 20;
/// A handle that is unknown, closed, or of another transaction.
pub const DEADBOLT_ERR_BAD_HANDLE: i32 = 21;
/// A write transaction used from a thread other than the one that began it.
pub const DEADBOLT_ERR_WRONG_THREAD: i32 = 22;
/// A panic inside the library was caught at the boundary (the operation did not complete).
pub const DEADBOLT_ERR_PANIC: i32 = 23;
/// `deadbolt_close` while transactions of the database are still open.
pub const DEADBOLT_ERR_BUSY: i32 = 24;
/// A bound of the ABI was reached (too many handles, a length beyond the engine's limits).
pub const DEADBOLT_ERR_LIMIT: i32 = 25;
/// A caller's write callback returned non-zero.
pub const DEADBOLT_ERR_CALLBACK: i32 = 26;
/// A check found problems (the message is the report).
pub const DEADBOLT_ERR_DAMAGED: i32 = 27;
/// A walk's step budget or deadline ran out (the ABI sets none, so it does not return this
/// today; the code exists so that every engine error has one).
pub const DEADBOLT_ERR_BUDGET_EXHAUSTED: i32 = 28;

/// An error: a code and a message. The message is owned by the library, UTF-8, with a
/// terminating NUL that `message_len` does not count; release it with `deadbolt_error_clear`.
///
/// Functions write it only when they fail (on success it is left untouched), and they
/// overwrite it without reading it: clear a record before passing it again, or its message
/// leaks.
#[repr(C)]
pub struct DeadboltError {
    pub code: i32,
    pub message: *mut u8,
    pub message_len: usize,
}

/// A failure inside the library, before it crosses the boundary.
#[derive(Debug)]
pub(crate) struct Fail {
    pub code: i32,
    pub message: String,
}

impl Fail {
    pub fn new(code: i32, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }
}

/// The code of an engine error.
pub(crate) fn code_of(e: &Error) -> i32 {
    match e {
        Error::Io(_) => DEADBOLT_ERR_IO,
        Error::Corruption { .. } => DEADBOLT_ERR_CORRUPTION,
        Error::InvalidFile(_) => DEADBOLT_ERR_INVALID_FILE,
        Error::UnsupportedVersion { .. } => DEADBOLT_ERR_UNSUPPORTED_VERSION,
        Error::WouldDeadlock => DEADBOLT_ERR_WOULD_DEADLOCK,
        Error::BucketNotFound => DEADBOLT_ERR_BUCKET_NOT_FOUND,
        Error::BucketExists => DEADBOLT_ERR_BUCKET_EXISTS,
        Error::IncompatibleValue => DEADBOLT_ERR_INCOMPATIBLE_VALUE,
        Error::KeyTooLarge { .. } => DEADBOLT_ERR_KEY_TOO_LARGE,
        Error::KeyEmpty => DEADBOLT_ERR_KEY_EMPTY,
        Error::ValueTooLarge { .. } => DEADBOLT_ERR_VALUE_TOO_LARGE,
        Error::InvalidBucketName => DEADBOLT_ERR_INVALID_BUCKET_NAME,
        Error::ReadOnly => DEADBOLT_ERR_READ_ONLY,
        Error::LockTimeout => DEADBOLT_ERR_LOCK_TIMEOUT,
        Error::Poisoned(_) => DEADBOLT_ERR_POISONED,
        Error::InvalidArgument(_) => DEADBOLT_ERR_INVALID_ARGUMENT,
        Error::TxClosed => DEADBOLT_ERR_TX_CLOSED,
        Error::Bug(_) => DEADBOLT_ERR_BUG,
        Error::BudgetExhausted { .. } => DEADBOLT_ERR_BUDGET_EXHAUSTED,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::new(code_of(&e), e.to_string())
    }
}

/// Write `f` into `err` (if not NULL), as an owned, NUL-terminated message.
///
/// # Safety
/// `err` is NULL or points to writable memory for a `DeadboltError`.
pub(crate) unsafe fn store(err: *mut DeadboltError, f: Fail) -> i32 {
    let code = f.code;
    if !err.is_null() {
        let mut bytes = f.message.into_bytes();
        bytes.retain(|&b| b != 0);
        let len = bytes.len();
        bytes.push(0);
        let raw = Box::into_raw(bytes.into_boxed_slice()) as *mut u8;
        // SAFETY: the caller guarantees `err` is writable when non-null (checked above).
        unsafe {
            err.write(DeadboltError {
                code,
                message: raw,
                message_len: len,
            })
        };
    }
    code
}

/// Release the message of `err` and zero it (NULL and a zeroed record are fine).
///
/// # Safety
/// `err` is NULL or a record this library filled (or zeroed), not cleared twice since.
pub(crate) unsafe fn clear(err: *mut DeadboltError) {
    if err.is_null() {
        return;
    }
    // SAFETY: non-null and, by the contract, a record this library wrote or zeroed.
    let e = unsafe { &mut *err };
    if !e.message.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(e.message, e.message_len + 1);
        // SAFETY: `message` came from `Box<[u8]>::into_raw` of `message_len + 1` bytes in
        // `store`, and the contract says it was not freed since.
        drop(unsafe { Box::from_raw(slice) });
    }
    e.code = DEADBOLT_OK;
    e.message = std::ptr::null_mut();
    e.message_len = 0;
}
