//! A C ABI for the deadbolt engine (the Go package under `go/` is built on it).
//!
//! Conventions, for every function:
//! - it returns `DEADBOLT_OK` (0) or an error code (`DEADBOLT_ERR_*`), and on failure fills
//!   the `DeadboltError *err` argument (which may be NULL) with the code and an owned message
//!   (release it with `deadbolt_error_clear`); on success `err` is untouched;
//! - no panic crosses the boundary: one is caught and returned as `DEADBOLT_ERR_PANIC`;
//! - databases and transactions are opaque 64-bit handles checked on every call, buckets and
//!   cursors handles inside their transaction: a closed, stale or made-up handle is
//!   `DEADBOLT_ERR_BAD_HANDLE`, never undefined behaviour;
//! - every pointer argument is checked for NULL (`DEADBOLT_ERR_NULL_POINTER`; a NULL pointer
//!   with length 0 is an empty byte string) and every length against the engine's bounds
//!   before the bytes are read (`DEADBOLT_ERR_LIMIT`);
//! - input buffers are only read during the call (the library keeps copies, never pointers);
//! - output byte strings (`DeadboltSlice`) point into memory the library owns: with
//!   `DEADBOLT_SLICE_STABLE` set they stay valid until the transaction ends (they are views of
//!   the mapped file); without it, until the next call on the same transaction.
//!
//! A write transaction must be used, committed and rolled back on the thread that began it
//! (`DEADBOLT_ERR_WRONG_THREAD` otherwise); a transaction must not be used by two threads at
//! once (calls are serialised by a lock, so doing so is safe but pointless).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadbolt::{Bucket, Db, Entry, Options};

mod error;
mod handles;

pub use error::*;
use handles::{lock, with_tx, CursorKind, CursorSlot, DbState, RootCursor, TxState, DBS, TXS};

/// The root of a transaction, as a bucket handle: the parent of top-level buckets.
pub const DEADBOLT_ROOT: u64 = 0;

/// `DeadboltSlice.flags`: the bytes stay valid until the transaction ends.
pub const DEADBOLT_SLICE_STABLE: u32 = 1;

/// `deadbolt_bucket` modes.
pub const DEADBOLT_BUCKET_OPEN: i32 = 0;
pub const DEADBOLT_BUCKET_CREATE: i32 = 1;
pub const DEADBOLT_BUCKET_CREATE_IF_MISSING: i32 = 2;

/// `deadbolt_cursor_move` operations.
pub const DEADBOLT_CURSOR_FIRST: i32 = 0;
pub const DEADBOLT_CURSOR_LAST: i32 = 1;
pub const DEADBOLT_CURSOR_NEXT: i32 = 2;
pub const DEADBOLT_CURSOR_PREV: i32 = 3;
pub const DEADBOLT_CURSOR_SEEK: i32 = 4;

/// Longest path accepted (bytes).
pub const DEADBOLT_MAX_PATH: usize = 4096;

/// Options for `deadbolt_open`. A zeroed struct gives the defaults.
#[repr(C)]
pub struct DeadboltOptions {
    /// Page size of a new file (a power of two, 1024 to 65536); 0: the default (4096).
    pub page_size: u32,
    /// Non-zero: do not sync on commit (a crash may lose recent commits).
    pub no_sync: u8,
    /// Non-zero: open read-only under a shared lock.
    pub read_only: u8,
    /// Non-zero: verify a page's checksum on every access.
    pub verify_every_access: u8,
    /// Wait at most this long for the file lock; 0: forever.
    pub lock_timeout_ns: u64,
}

/// Bytes owned by the library (see the crate's conventions for how long they live).
#[repr(C)]
pub struct DeadboltSlice {
    /// NULL when absent (a missing key); non-NULL (possibly dangling-free empty) when present.
    pub ptr: *const u8,
    pub len: usize,
    pub flags: u32,
}

/// One cursor position.
#[repr(C)]
pub struct DeadboltEntry {
    /// 0: the cursor is past either end (key and value are NULL).
    pub found: u8,
    /// Non-zero: the entry is a nested bucket (value is NULL).
    pub is_bucket: u8,
    pub key: DeadboltSlice,
    pub value: DeadboltSlice,
}

/// An owned buffer returned by the library; release it with `deadbolt_buf_free`.
#[repr(C)]
pub struct DeadboltBuf {
    pub ptr: *mut u8,
    pub len: usize,
}

/// Facts about a transaction.
#[repr(C)]
pub struct DeadboltTxInfo {
    /// The snapshot's txid (a write transaction commits as id + 1).
    pub id: u64,
    pub writable: u8,
    /// Size of the database as this transaction sees it, in bytes.
    pub size: u64,
    pub page_size: u64,
}

/// Database counters (see `deadbolt::Stats`).
#[repr(C)]
pub struct DeadboltStats {
    pub txid: u64,
    pub page_size: u64,
    pub high_water: u64,
    pub file_size: u64,
    pub free_pages: u64,
    pub pending_pages: u64,
    pub commits: u64,
    pub syncs: u64,
    pub pages_written: u64,
    pub bytes_written: u64,
    pub open_read_txs: u64,
    pub depth: u64,
}

/// Statistics of a bucket and the buckets nested in it (see `deadbolt::BucketStats`).
#[repr(C)]
pub struct DeadboltBucketStats {
    pub keys: u64,
    pub buckets: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
    pub depth: u64,
    pub bytes_used: u64,
    pub bytes_allocated: u64,
    pub inline_buckets: u64,
}

/// A write callback for `deadbolt_tx_write_to`: called with consecutive chunks of the copy;
/// returns 0 to go on, anything else to stop (`DEADBOLT_ERR_CALLBACK`). The chunk is valid
/// only during the call.
pub type DeadboltWriteFn =
    Option<unsafe extern "C" fn(user: *mut std::ffi::c_void, data: *const u8, len: usize) -> i32>;

/// Run `f` at the edge: catch a panic, store a failure in `err`, return the code.
fn edge(err: *mut DeadboltError, f: impl FnOnce() -> Result<(), Fail>) -> i32 {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Err(Fail::new(
            DEADBOLT_ERR_PANIC,
            format!("panic in deadbolt: {what}"),
        ))
    });
    match r {
        Ok(()) => DEADBOLT_OK,
        // SAFETY: every exported function documents `err` as NULL or writable.
        Err(f) => unsafe { error::store(err, f) },
    }
}

fn null(what: &str) -> Fail {
    Fail::new(DEADBOLT_ERR_NULL_POINTER, format!("{what} is NULL"))
}

/// The `len` bytes at `ptr`, checked: NULL with a length is an error, a length above `max`
/// is refused (with the code `too_long`) before anything is read.
///
/// # Safety
/// When non-NULL, `ptr` points to `len` readable bytes that stay unchanged during the call.
unsafe fn bytes_in<'a>(
    ptr: *const u8,
    len: usize,
    max: usize,
    too_long: i32,
    what: &str,
) -> Result<&'a [u8], Fail> {
    if len > max {
        return Err(Fail::new(
            too_long,
            format!("{what} of {len} bytes exceeds the limit of {max} bytes"),
        ));
    }
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-null with `len <= max <= isize::MAX` bytes, readable by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Write `v` to the out-pointer `out`.
///
/// # Safety
/// `out` is NULL or writable for a `T`.
unsafe fn out<T>(out: *mut T, what: &str, v: T) -> Result<(), Fail> {
    if out.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-null and writable by the caller's contract.
    unsafe { out.write(v) };
    Ok(())
}

fn check_out<T>(p: *mut T, what: &str) -> Result<(), Fail> {
    if p.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

const NO_SLICE: DeadboltSlice = DeadboltSlice {
    ptr: std::ptr::null(),
    len: 0,
    flags: 0,
};

/// A slice for `v`: borrowed bytes are stable views; owned ones are kept in `buf` (until the
/// next call that uses it).
fn slice_of(v: Cow<'static, [u8]>, buf: &mut Vec<u8>) -> DeadboltSlice {
    match v {
        Cow::Borrowed(b) => DeadboltSlice {
            ptr: b.as_ptr(),
            len: b.len(),
            flags: DEADBOLT_SLICE_STABLE,
        },
        Cow::Owned(o) => {
            *buf = o;
            DeadboltSlice {
                ptr: buf.as_ptr(),
                len: buf.len(),
                flags: 0,
            }
        }
    }
}

/// Is this file a bbolt database? (bbolt's meta magic at byte 16 of its first page.)
fn is_bolt_file(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| head[16..20] == 0xED0C_DAEDu32.to_le_bytes())
        .unwrap_or(false)
}

fn path_in(ptr: *const u8, len: usize) -> Result<PathBuf, Fail> {
    // SAFETY: forwarded caller contract (`ptr` readable for `len` bytes when non-NULL).
    let b = unsafe { bytes_in(ptr, len, DEADBOLT_MAX_PATH, DEADBOLT_ERR_LIMIT, "path")? };
    if b.is_empty() {
        return Err(Fail::new(DEADBOLT_ERR_INVALID_ARGUMENT, "empty path"));
    }
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(b)))
}

/// Release the message of an error record and zero it. NULL is accepted.
///
/// # Safety
/// `err` is NULL or a record this library filled or that the caller zeroed, not cleared
/// twice since.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_error_clear(err: *mut DeadboltError) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: forwarded contract.
        unsafe { error::clear(err) }
    });
}

/// Release a buffer returned by the library and zero it. NULL and a zeroed buffer are fine.
///
/// # Safety
/// `buf` is NULL or a buffer this library filled (or a zeroed one), not freed since.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_buf_free(buf: *mut DeadboltBuf) {
    let _ = std::panic::catch_unwind(|| {
        if buf.is_null() {
            return;
        }
        // SAFETY: non-null, by contract a buffer of ours or zeroed.
        let b = unsafe { &mut *buf };
        if !b.ptr.is_null() {
            let s = std::ptr::slice_from_raw_parts_mut(b.ptr, b.len);
            // SAFETY: from `Box<[u8]>::into_raw` of `len` bytes in `buf_out`, not freed since.
            drop(unsafe { Box::from_raw(s) });
        }
        b.ptr = std::ptr::null_mut();
        b.len = 0;
    });
}

fn buf_out(p: *mut DeadboltBuf, bytes: Vec<u8>) -> Result<(), Fail> {
    let len = bytes.len();
    let ptr = Box::into_raw(bytes.into_boxed_slice()) as *mut u8;
    // SAFETY: callers pass the function's out-pointer, writable by its contract.
    unsafe { out(p, "out buffer", DeadboltBuf { ptr, len }) }
}

/// Open (creating if missing, unless read-only) the database at `path` (`path_len` bytes, no
/// NUL needed). `opts` may be NULL (defaults). A bbolt file is `DEADBOLT_ERR_BOLT_FILE` and
/// any other foreign file `DEADBOLT_ERR_INVALID_FILE`; neither is written.
///
/// # Safety
/// `path` is readable for `path_len` bytes; `opts` is NULL or a valid options struct;
/// `out_db` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_open(
    path: *const u8,
    path_len: usize,
    opts: *const DeadboltOptions,
    out_db: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_db, "out_db")?;
        let path = path_in(path, path_len)?;
        let mut o = Options::default();
        if !opts.is_null() {
            // SAFETY: non-null and valid by the contract.
            let c = unsafe { &*opts };
            if c.page_size != 0 {
                o.page_size = c.page_size as usize;
            }
            o.no_sync = c.no_sync != 0;
            o.read_only = c.read_only != 0;
            o.verify_every_access = c.verify_every_access != 0;
            if c.lock_timeout_ns != 0 {
                o.lock_timeout = Some(Duration::from_nanos(c.lock_timeout_ns));
            }
        }
        let d = match Db::open_with(&path, o) {
            Ok(d) => d,
            Err(e @ deadbolt::Error::InvalidFile(_)) if is_bolt_file(&path) => {
                return Err(Fail::new(
                    DEADBOLT_ERR_BOLT_FILE,
                    format!("{}: {e}", path.display()),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let h = lock(&DBS).insert(Arc::new(DbState { db: d }))?;
        // SAFETY: checked non-null above, writable by contract.
        unsafe { out(out_db, "out_db", h) }
    })
}

/// Close a database: sync, confirm the newest commit, release the file. Refused with
/// `DEADBOLT_ERR_BUSY` (the handle stays valid) while any of its transactions is open.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_close(db: u64, err: *mut DeadboltError) -> i32 {
    edge(err, || {
        let state = {
            let mut reg = lock(&DBS);
            if Arc::strong_count(reg.get(db)?) > 1 {
                return Err(Fail::new(
                    DEADBOLT_ERR_BUSY,
                    "transactions of this database are still open",
                ));
            }
            reg.remove(db)?
        };
        match Arc::try_unwrap(state) {
            Ok(s) => s.db.close().map_err(Fail::from),
            // Unreachable: the count was 1 under the registry's lock, and clones are only
            // taken under it. Dropping the Arc closes the database all the same.
            Err(_) => Err(Fail::new(DEADBOLT_ERR_BUG, "database still referenced")),
        }
    })
}

/// Make every commit durable (after `no_sync` commits) and confirm the newest.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_sync(db: u64, err: *mut DeadboltError) -> i32 {
    edge(err, || Ok(handles::db(db)?.db.sync()?))
}

/// Database counters.
///
/// # Safety
/// `out_stats` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_stats(
    db: u64,
    out_stats: *mut DeadboltStats,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_stats, "out_stats")?;
        let s = handles::db(db)?.db.stats();
        let v = DeadboltStats {
            txid: s.txid,
            page_size: s.page_size as u64,
            high_water: s.high_water,
            file_size: s.file_size,
            free_pages: s.free_pages,
            pending_pages: s.pending_pages,
            commits: s.commits,
            syncs: s.syncs,
            pages_written: s.pages_written,
            bytes_written: s.bytes_written,
            open_read_txs: s.open_read_txs,
            depth: s.depth,
        };
        // SAFETY: checked non-null above, writable by contract.
        unsafe { out(out_stats, "out_stats", v) }
    })
}

/// Begin a transaction (`writable` non-zero: the write transaction, waiting for the current
/// writer). A write transaction belongs to the calling thread.
///
/// # Safety
/// `out_tx` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_begin(
    db: u64,
    writable: i32,
    out_tx: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_tx, "out_tx")?;
        let d = handles::db(db)?;
        // Not under the registry's lock: beginning a write transaction may wait.
        let state = TxState::new(d, writable != 0)?;
        let h = lock(&TXS).insert(Arc::new(Mutex::new(state)))?;
        // SAFETY: checked non-null above, writable by contract.
        unsafe { out(out_tx, "out_tx", h) }
    })
}

fn finish(tx: u64, commit: bool) -> Result<(), Fail> {
    let r = with_tx(tx, |s| Ok(s.finish(commit)))?;
    // Committed, failed or rolled back, the transaction is over: its handle goes.
    let _ = lock(&TXS).remove(tx);
    r
}

/// Commit a write transaction (for a read transaction: end it). The handle is invalid
/// afterwards, whether the commit succeeded or not.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_commit(tx: u64, err: *mut DeadboltError) -> i32 {
    edge(err, || finish(tx, true))
}

/// Roll back (end) a transaction. The handle is invalid afterwards.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_rollback(tx: u64, err: *mut DeadboltError) -> i32 {
    edge(err, || finish(tx, false))
}

/// Facts about a transaction.
///
/// # Safety
/// `out_info` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_tx_info(
    tx: u64,
    out_info: *mut DeadboltTxInfo,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_info, "out_info")?;
        with_tx(tx, |s| {
            let t = s.tx()?;
            // copy_to into a sink that takes every chunk without looking at it: its count is
            // the size of this snapshot (the engine has no other public accessor for it).
            let size = t.copy_to(&mut std::io::sink())?;
            let v = DeadboltTxInfo {
                id: t.id(),
                writable: u8::from(t.writable()),
                size,
                page_size: s.db.db.page_size() as u64,
            };
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_info, "out_info", v) }
        })
    })
}

/// Check a transaction's snapshot: `DEADBOLT_ERR_DAMAGED` with the report as the message
/// when it finds problems.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_tx_check(tx: u64, err: *mut DeadboltError) -> i32 {
    edge(err, || {
        with_tx(tx, |s| {
            let r = s.tx()?.check()?;
            if r.is_ok() {
                Ok(())
            } else {
                Err(Fail::new(DEADBOLT_ERR_DAMAGED, r.to_string()))
            }
        })
    })
}

/// Sends chunks to a C callback.
struct CallbackWriter {
    f: unsafe extern "C" fn(*mut std::ffi::c_void, *const u8, usize) -> i32,
    user: *mut std::ffi::c_void,
    stopped: bool,
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Chunks of at most 1 MiB, so a callback never sees more than that at once.
        let n = buf.len().min(1 << 20);
        // SAFETY: the caller of `deadbolt_tx_write_to` supplied a valid function and user
        // pointer; `buf[..n]` is valid for the duration of the call.
        let rc = unsafe { (self.f)(self.user, buf.as_ptr(), n) };
        if rc != 0 {
            self.stopped = true;
            return Err(std::io::Error::other("write callback stopped the copy"));
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stream a consistent copy of the transaction's snapshot, a valid database file, to `cb`
/// (bbolt's `Tx.WriteTo`). `out_written` receives the byte count.
///
/// # Safety
/// `cb` is a valid function (or NULL: an error) to be called with `user`; `out_written` is
/// writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_tx_write_to(
    tx: u64,
    cb: DeadboltWriteFn,
    user: *mut std::ffi::c_void,
    out_written: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_written, "out_written")?;
        let f = cb.ok_or_else(|| null("callback"))?;
        let mut w = CallbackWriter {
            f,
            user,
            stopped: false,
        };
        with_tx(tx, |s| {
            let n = match s.tx()?.copy_to(&mut w) {
                Ok(n) => n,
                Err(_) if w.stopped => {
                    return Err(Fail::new(
                        DEADBOLT_ERR_CALLBACK,
                        "the write callback stopped the copy",
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_written, "out_written", n) }
        })
    })
}

/// Like `deadbolt_tx_write_to`, writing to the open file descriptor `fd` (not closed).
///
/// # Safety
/// `out_written` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_tx_write_to_fd(
    tx: u64,
    fd: i32,
    out_written: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_written, "out_written")?;
        if fd < 0 {
            return Err(Fail::new(
                DEADBOLT_ERR_INVALID_ARGUMENT,
                "negative file descriptor",
            ));
        }
        use std::os::fd::BorrowedFd;
        // SAFETY: `fd` is non-negative and, by contract, an open descriptor for the duration
        // of the call; it is borrowed (cloned below, the clone closed), never closed itself.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(deadbolt::Error::from)?;
        let mut f = std::fs::File::from(owned);
        with_tx(tx, |s| {
            let n = s.tx()?.copy_to(&mut f)?;
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_written, "out_written", n) }
        })
    })
}

/// Open or create the bucket `name` in `parent` (a bucket handle, or `DEADBOLT_ROOT`).
/// `mode`: `DEADBOLT_BUCKET_OPEN` (`DEADBOLT_ERR_BUCKET_NOT_FOUND` if missing),
/// `DEADBOLT_BUCKET_CREATE` (`DEADBOLT_ERR_BUCKET_EXISTS` if present) or
/// `DEADBOLT_BUCKET_CREATE_IF_MISSING`. The bucket handle is valid until the transaction ends
/// or the bucket is deleted.
///
/// # Safety
/// `name` is readable for `name_len` bytes; `out_bucket` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_bucket(
    tx: u64,
    parent: u64,
    name: *const u8,
    name_len: usize,
    mode: i32,
    out_bucket: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_bucket, "out_bucket")?;
        // SAFETY: forwarded contract.
        let name = unsafe {
            bytes_in(
                name,
                name_len,
                deadbolt::MAX_KEY_SIZE,
                DEADBOLT_ERR_INVALID_BUCKET_NAME,
                "bucket name",
            )?
        };
        with_tx(tx, |s| {
            let t = s.tx()?;
            let b = if parent == DEADBOLT_ROOT {
                match mode {
                    DEADBOLT_BUCKET_OPEN => {
                        t.bucket(name)?.ok_or(deadbolt::Error::BucketNotFound)?
                    }
                    DEADBOLT_BUCKET_CREATE => t.create_bucket(name)?,
                    DEADBOLT_BUCKET_CREATE_IF_MISSING => t.create_bucket_if_not_exists(name)?,
                    _ => return Err(bad_mode(mode)),
                }
            } else {
                let p = s.bucket(parent)?;
                match mode {
                    DEADBOLT_BUCKET_OPEN => {
                        p.bucket(name)?.ok_or(deadbolt::Error::BucketNotFound)?
                    }
                    DEADBOLT_BUCKET_CREATE => p.create_bucket(name)?,
                    DEADBOLT_BUCKET_CREATE_IF_MISSING => p.create_bucket_if_not_exists(name)?,
                    _ => return Err(bad_mode(mode)),
                }
            };
            let h = s.add_bucket(parent, name, b)?;
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_bucket, "out_bucket", h) }
        })
    })
}

fn bad_mode(mode: i32) -> Fail {
    Fail::new(
        DEADBOLT_ERR_INVALID_ARGUMENT,
        format!("unknown mode {mode}"),
    )
}

/// Delete the bucket `name` of `parent` (or `DEADBOLT_ROOT`) and everything in it.
///
/// # Safety
/// `name` is readable for `name_len` bytes; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_bucket_delete(
    tx: u64,
    parent: u64,
    name: *const u8,
    name_len: usize,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        // SAFETY: forwarded contract.
        let name = unsafe {
            bytes_in(
                name,
                name_len,
                deadbolt::MAX_KEY_SIZE,
                DEADBOLT_ERR_INVALID_BUCKET_NAME,
                "bucket name",
            )?
        };
        with_tx(tx, |s| {
            if parent == DEADBOLT_ROOT {
                s.tx()?.delete_bucket(name)?;
            } else {
                s.bucket(parent)?.delete_bucket(name)?;
            }
            s.drop_bucket(parent, name);
            Ok(())
        })
    })
}

fn key_in<'a>(key: *const u8, len: usize) -> Result<&'a [u8], Fail> {
    // SAFETY: forwarded contract of the calling export.
    unsafe {
        bytes_in(
            key,
            len,
            deadbolt::MAX_KEY_SIZE,
            DEADBOLT_ERR_KEY_TOO_LARGE,
            "key",
        )
    }
}

fn with_bucket<R>(
    tx: u64,
    bucket: u64,
    f: impl FnOnce(&mut TxState, Bucket<'static>) -> Result<R, Fail>,
) -> Result<R, Fail> {
    with_tx(tx, |s| {
        if bucket == DEADBOLT_ROOT {
            return Err(Fail::new(
                DEADBOLT_ERR_INCOMPATIBLE_VALUE,
                "the root holds only buckets",
            ));
        }
        let b = s.bucket(bucket)?;
        f(s, b)
    })
}

/// The value of `key` in `bucket`: `out_value.ptr` is NULL when the key is absent. A key that
/// names a nested bucket is `DEADBOLT_ERR_INCOMPATIBLE_VALUE`.
///
/// # Safety
/// `key` is readable for `key_len` bytes; `out_value` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_get(
    tx: u64,
    bucket: u64,
    key: *const u8,
    key_len: usize,
    out_value: *mut DeadboltSlice,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_value, "out_value")?;
        let key = key_in(key, key_len)?;
        with_bucket(tx, bucket, |s, b| {
            let v = match b.get(key)? {
                None => NO_SLICE,
                Some(v) => slice_of(v, &mut s.scratch),
            };
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_value, "out_value", v) }
        })
    })
}

/// Set `key` to `value` in `bucket` (write transactions).
///
/// # Safety
/// `key`/`value` are readable for their lengths; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_put(
    tx: u64,
    bucket: u64,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        let key = key_in(key, key_len)?;
        // SAFETY: forwarded contract.
        let value = unsafe {
            bytes_in(
                value,
                value_len,
                deadbolt::MAX_VALUE_SIZE,
                DEADBOLT_ERR_VALUE_TOO_LARGE,
                "value",
            )?
        };
        with_bucket(tx, bucket, |_, b| Ok(b.put(key, value)?))
    })
}

/// Remove `key` from `bucket` (absent: no error).
///
/// # Safety
/// `key` is readable for `key_len` bytes; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_delete(
    tx: u64,
    bucket: u64,
    key: *const u8,
    key_len: usize,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        let key = key_in(key, key_len)?;
        with_bucket(tx, bucket, |_, b| Ok(b.delete(key)?))
    })
}

/// The bucket's sequence number.
///
/// # Safety
/// `out_seq` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_sequence(
    tx: u64,
    bucket: u64,
    out_seq: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_seq, "out_seq")?;
        // SAFETY: checked non-null above, writable by contract.
        with_bucket(tx, bucket, |_, b| unsafe {
            out(out_seq, "out_seq", b.sequence())
        })
    })
}

/// Set the bucket's sequence number (write transactions).
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_set_sequence(
    tx: u64,
    bucket: u64,
    seq: u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        with_bucket(tx, bucket, |_, b| Ok(b.set_sequence(seq)?))
    })
}

/// Increment the bucket's sequence number and return the new value (write transactions).
///
/// # Safety
/// `out_seq` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_next_sequence(
    tx: u64,
    bucket: u64,
    out_seq: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_seq, "out_seq")?;
        with_bucket(tx, bucket, |_, b| {
            let v = b.next_sequence()?;
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_seq, "out_seq", v) }
        })
    })
}

/// Statistics of the bucket and its nested buckets.
///
/// # Safety
/// `out_stats` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_bucket_stats(
    tx: u64,
    bucket: u64,
    out_stats: *mut DeadboltBucketStats,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_stats, "out_stats")?;
        with_bucket(tx, bucket, |_, b| {
            let s = b.stats()?;
            let v = DeadboltBucketStats {
                keys: s.keys,
                buckets: s.buckets,
                branch_pages: s.branch_pages,
                leaf_pages: s.leaf_pages,
                overflow_pages: s.overflow_pages,
                depth: s.depth,
                bytes_used: s.bytes_used,
                bytes_allocated: s.bytes_allocated,
                inline_buckets: s.inline_buckets,
            };
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_stats, "out_stats", v) }
        })
    })
}

/// Most top-level buckets a root cursor lists (it copies their names when opened).
pub const DEADBOLT_MAX_ROOT_NAMES: usize = 1 << 20;

/// Open a cursor over `bucket` (or `DEADBOLT_ROOT`: the top-level bucket names, as of now).
/// Valid until `deadbolt_cursor_close` or the end of the transaction.
///
/// # Safety
/// `out_cursor` is writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_cursor_open(
    tx: u64,
    bucket: u64,
    out_cursor: *mut u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_cursor, "out_cursor")?;
        with_tx(tx, |s| {
            let kind = if bucket == DEADBOLT_ROOT {
                let mut names = Vec::new();
                for n in s.tx()?.buckets() {
                    if names.len() >= DEADBOLT_MAX_ROOT_NAMES {
                        return Err(Fail::new(DEADBOLT_ERR_LIMIT, "too many top-level buckets"));
                    }
                    names.push(n?.into_owned());
                }
                CursorKind::Root(RootCursor { names, pos: None })
            } else {
                CursorKind::Bucket(Box::new(s.bucket(bucket)?.cursor()))
            };
            let h = s.add_cursor(kind)?;
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_cursor, "out_cursor", h) }
        })
    })
}

/// Release a cursor.
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_cursor_close(
    tx: u64,
    cursor: u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || with_tx(tx, |s| s.free_cursor(cursor)))
}

/// Move a cursor (`DEADBOLT_CURSOR_FIRST`, `_LAST`, `_NEXT`, `_PREV`, or `_SEEK` to the first
/// key `>= key`; `key` is read only for a seek) and return the entry there.
///
/// # Safety
/// `key` is readable for `key_len` bytes (seek only); `out_entry` is writable; `err` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_cursor_move(
    tx: u64,
    cursor: u64,
    op: i32,
    key: *const u8,
    key_len: usize,
    out_entry: *mut DeadboltEntry,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_entry, "out_entry")?;
        let seek = if op == DEADBOLT_CURSOR_SEEK {
            key_in(key, key_len)?
        } else {
            &[]
        };
        with_tx(tx, |s| {
            let (entry, _) = step(s.cursor(cursor)?, op, seek)?;
            // SAFETY: checked non-null above, writable by contract.
            unsafe { out(out_entry, "out_entry", entry) }
        })
    })
}

/// One move of the cursor in `slot`. The flag is false when the entry's bytes live in the
/// slot's buffers (a write transaction's changed entry), so the next move overwrites them.
fn step(slot: &mut CursorSlot, op: i32, seek: &[u8]) -> Result<(DeadboltEntry, bool), Fail> {
    let entry = match slot.cur.as_mut() {
        Some(CursorKind::Bucket(c)) => {
            let e: Option<Entry<'static>> = match op {
                DEADBOLT_CURSOR_FIRST => c.first()?,
                DEADBOLT_CURSOR_LAST => c.last()?,
                DEADBOLT_CURSOR_NEXT => c.next()?,
                DEADBOLT_CURSOR_PREV => c.prev()?,
                DEADBOLT_CURSOR_SEEK => c.seek(seek)?,
                _ => return Err(bad_mode(op)),
            };
            match e {
                None => no_entry(),
                Some(e) => DeadboltEntry {
                    found: 1,
                    is_bucket: u8::from(e.value.is_none()),
                    key: slice_of(e.key, &mut slot.key),
                    value: e.value.map_or(NO_SLICE, |v| slice_of(v, &mut slot.val)),
                },
            }
        }
        Some(CursorKind::Root(r)) => {
            r.pos = match op {
                DEADBOLT_CURSOR_FIRST => (!r.names.is_empty()).then_some(0),
                DEADBOLT_CURSOR_LAST => r.names.len().checked_sub(1),
                DEADBOLT_CURSOR_NEXT => r.pos.map(|p| p + 1).filter(|&p| p < r.names.len()),
                DEADBOLT_CURSOR_PREV => r.pos.and_then(|p| p.checked_sub(1)),
                DEADBOLT_CURSOR_SEEK => {
                    let i = r.names.partition_point(|n| n.as_slice() < seek);
                    (i < r.names.len()).then_some(i)
                }
                _ => return Err(bad_mode(op)),
            };
            match r.pos {
                None => no_entry(),
                Some(p) => DeadboltEntry {
                    found: 1,
                    is_bucket: 1,
                    key: DeadboltSlice {
                        ptr: r.names[p].as_ptr(),
                        len: r.names[p].len(),
                        flags: 0,
                    },
                    value: NO_SLICE,
                },
            }
        }
        None => return Err(Fail::new(DEADBOLT_ERR_BAD_HANDLE, "invalid cursor")),
    };
    let own = |sl: &DeadboltSlice| !sl.ptr.is_null() && sl.flags & DEADBOLT_SLICE_STABLE == 0;
    let kept =
        matches!(slot.cur, Some(CursorKind::Root(_))) || !(own(&entry.key) || own(&entry.value));
    Ok((entry, kept))
}

/// Most entries one `deadbolt_cursor_step` call returns.
pub const DEADBOLT_MAX_STEP: usize = 4096;

/// Move a cursor up to `max` times in one call and return the entries, in order, in
/// `out_entries[0 .. *out_n]`: the first move is `op` (as in `deadbolt_cursor_move`), the
/// others `DEADBOLT_CURSOR_NEXT`, or `DEADBOLT_CURSOR_PREV` when `op` is `_LAST` or `_PREV`.
/// It stops early when the cursor passes an end (the entry there is not written: `*out_n`
/// counts found entries only), and after an entry whose bytes are not stable (a write
/// transaction's changed entry, valid until the next call). The cursor is left at the last
/// entry returned (or past the end). Every returned entry stays valid as `deadbolt_cursor_move`
/// says, except that entries other than the last are never of the unstable kind, and that the
/// keys a root cursor returns stay valid until the cursor is closed. `*out_ended` is 1 when the
/// cursor passed an end. When a move fails (damage), the error is returned and `*out_n` still
/// counts the entries written before it, so a walk delivers every entry it could read.
///
/// # Safety
/// `key` is readable for `key_len` bytes (seek only); `out_entries` is writable for `max`
/// entries; `out_n` and `out_ended` are writable; `err` is NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // a C signature: each output is its own pointer
pub unsafe extern "C" fn deadbolt_cursor_step(
    tx: u64,
    cursor: u64,
    op: i32,
    key: *const u8,
    key_len: usize,
    max: usize,
    out_entries: *mut DeadboltEntry,
    out_n: *mut usize,
    out_ended: *mut u8,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_entries, "out_entries")?;
        check_out(out_n, "out_n")?;
        check_out(out_ended, "out_ended")?;
        if max == 0 || max > DEADBOLT_MAX_STEP {
            return Err(Fail::new(
                DEADBOLT_ERR_LIMIT,
                format!("max must be 1 to {DEADBOLT_MAX_STEP}, not {max}"),
            ));
        }
        let seek = if op == DEADBOLT_CURSOR_SEEK {
            key_in(key, key_len)?
        } else {
            &[]
        };
        let then = match op {
            DEADBOLT_CURSOR_LAST | DEADBOLT_CURSOR_PREV => DEADBOLT_CURSOR_PREV,
            _ => DEADBOLT_CURSOR_NEXT,
        };
        with_tx(tx, |s| {
            let slot = s.cursor(cursor)?;
            let (mut n, mut ended) = (0usize, false);
            let mut o = op;
            while n < max {
                let (e, kept) = match step(slot, o, seek) {
                    Ok(r) => r,
                    Err(f) => {
                        // The entries before the failing move are still the caller's.
                        // SAFETY: checked non-null above, writable by contract.
                        unsafe { out(out_n, "out_n", n)? };
                        return Err(f);
                    }
                };
                if e.found == 0 {
                    ended = true;
                    break;
                }
                // SAFETY: `out_entries` is writable for `max` entries (contract) and `n < max`.
                unsafe { out_entries.add(n).write(e) };
                n += 1;
                if !kept {
                    break;
                }
                o = then;
            }
            // SAFETY: both checked non-null above, writable by contract.
            unsafe {
                out(out_n, "out_n", n)?;
                out(out_ended, "out_ended", u8::from(ended))
            }
        })
    })
}

fn no_entry() -> DeadboltEntry {
    DeadboltEntry {
        found: 0,
        is_bucket: 0,
        key: NO_SLICE,
        value: NO_SLICE,
    }
}

/// Delete the entry under the cursor (write transactions; a nested bucket is
/// `DEADBOLT_ERR_INCOMPATIBLE_VALUE`).
///
/// # Safety
/// `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_cursor_delete(
    tx: u64,
    cursor: u64,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        with_tx(tx, |s| match s.cursor(cursor)?.cur.as_mut() {
            Some(CursorKind::Bucket(c)) => Ok(c.delete()?),
            Some(CursorKind::Root(_)) => Err(Fail::new(
                DEADBOLT_ERR_INCOMPATIBLE_VALUE,
                "the root holds only buckets",
            )),
            None => Err(Fail::new(DEADBOLT_ERR_BAD_HANDLE, "invalid cursor")),
        })
    })
}

/// A batch callback for `deadbolt_batch`: called with the batch's write transaction handle,
/// valid during the call only; returns 0 to commit with the batch, anything else to fail.
pub type DeadboltBatchFn =
    Option<unsafe extern "C" fn(user: *mut std::ffi::c_void, tx: u64) -> i32>;

/// The callback and its data, moved into the engine's batch queue.
struct BatchCall {
    f: unsafe extern "C" fn(*mut std::ffi::c_void, u64) -> i32,
    user: *mut std::ffi::c_void,
    db: Arc<DbState>,
    rc: Arc<std::sync::atomic::AtomicI32>,
}

// SAFETY: `deadbolt_batch`'s contract makes the callback and `user` safe to use from another
// thread (the batch's leader runs it); the rest (two Arcs of Sync values) is Send.
unsafe impl Send for BatchCall {}

/// Run `cb` in a write transaction shared with other concurrent callers of `deadbolt_batch`
/// (group commit, bbolt's `DB.Batch`): all commit with one sync. The callback may run more than
/// once (if another caller's fails, the batch is retried without it) and on another thread
/// than the caller's (the batch's leader), so it must only act through the transaction handle
/// it receives, which is valid during the call only (commit and rollback through it are
/// refused). If it returns non-zero it is run again alone, and if it fails again that is this
/// call's result, `DEADBOLT_ERR_CALLBACK`. `DEADBOLT_OK` means the commit holding its writes is
/// durable.
///
/// # Safety
/// `cb` is a valid function (or NULL: an error) that, with `user`, may be called from any
/// thread; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_batch(
    db: u64,
    cb: DeadboltBatchFn,
    user: *mut std::ffi::c_void,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        let f = cb.ok_or_else(|| null("callback"))?;
        let d = handles::db(db)?;
        let rc = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let call = BatchCall {
            f,
            user,
            db: d.clone(),
            rc: rc.clone(),
        };
        let r = d.db.batch(move |tx| {
            let call = &call; // the whole struct (Send), not its fields one by one
                              // SAFETY: `end_loan` runs below, before this closure returns and `tx`'s borrow ends.
            let state = Arc::new(Mutex::new(unsafe { TxState::lend(call.db.clone(), tx) }));
            let h = lock(&TXS)
                .insert(state.clone())
                .map_err(|f| deadbolt::Error::InvalidArgument(f.message))?;
            // SAFETY: the caller of `deadbolt_batch` vouched for `f` and `user`.
            let code = unsafe { (call.f)(call.user, h) };
            let _ = lock(&TXS).remove(h);
            lock(&state).end_loan();
            call.rc.store(code, std::sync::atomic::Ordering::Relaxed);
            if code == 0 {
                Ok(())
            } else {
                Err(deadbolt::Error::InvalidArgument(format!(
                    "batch callback returned {code}"
                )))
            }
        });
        match r {
            Ok(()) => Ok(()),
            Err(_) if rc.load(std::sync::atomic::Ordering::Relaxed) != 0 => Err(Fail::new(
                DEADBOLT_ERR_CALLBACK,
                format!(
                    "batch callback returned {}",
                    rc.load(std::sync::atomic::Ordering::Relaxed)
                ),
            )),
            Err(e) => Err(e.into()),
        }
    })
}

/// Import the bbolt file `src` into a new deadbolt file `dst` (which must not exist). The
/// source is opened read-only and never written. `salvage` non-zero: import what is readable
/// from a damaged file. `out_report` (may be NULL) receives the import report as text.
/// A damaged source without salvage is `DEADBOLT_ERR_CORRUPTION` and nothing is imported.
///
/// # Safety
/// The paths are readable for their lengths; `out_report` is NULL or writable; `err` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_import_bolt(
    src: *const u8,
    src_len: usize,
    dst: *const u8,
    dst_len: usize,
    salvage: i32,
    out_report: *mut DeadboltBuf,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        let src = path_in(src, src_len)?;
        let dst = path_in(dst, dst_len)?;
        if dst.exists() {
            return Err(Fail::new(
                DEADBOLT_ERR_INVALID_ARGUMENT,
                format!("{} exists; the import writes a new file", dst.display()),
            ));
        }
        let opts = deadbolt::bolt::ImportOptions {
            salvage: salvage != 0,
            ..Default::default()
        };
        // Diagnose first, so a strict import never creates `dst` for a damaged source.
        let check = deadbolt::bolt::check_file(&src)?;
        if !opts.salvage && !check.is_ok() {
            let what = check
                .first_damage()
                .map_or_else(|| check.to_string(), |p| p.to_string());
            return Err(Fail::new(
                DEADBOLT_ERR_CORRUPTION,
                format!("{}: {what}", src.display()),
            ));
        }
        let db = Db::open(&dst)?;
        let report = deadbolt::bolt::import_file(&src, &db, &opts, &mut |_, _| {})?;
        db.close()?;
        if !out_report.is_null() {
            buf_out(out_report, report.to_string().into_bytes())?;
        }
        Ok(())
    })
}

/// Salvage the damaged deadbolt file `src` into a new file `dst` (which must not exist):
/// every bucket and key whose pages verify is copied, trying both commits; `src` is never
/// written. `out_report` (may be NULL) receives the report, with the key ranges lost.
///
/// # Safety
/// The paths are readable for their lengths; `out_report` is NULL or writable; `err` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_salvage(
    src: *const u8,
    src_len: usize,
    dst: *const u8,
    dst_len: usize,
    out_report: *mut DeadboltBuf,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        let src = path_in(src, src_len)?;
        let dst = path_in(dst, dst_len)?;
        if dst.exists() {
            return Err(Fail::new(
                DEADBOLT_ERR_INVALID_ARGUMENT,
                format!("{} exists; salvage writes a new file", dst.display()),
            ));
        }
        let report = deadbolt::salvage(&src, &dst)?;
        if !out_report.is_null() {
            buf_out(out_report, report.to_string().into_bytes())?;
        }
        Ok(())
    })
}

/// Diagnose the bbolt file at `path` (read-only). `out_ok` receives 1 when it is healthy;
/// `out_report` (may be NULL) the report as text.
///
/// # Safety
/// `path` is readable for `path_len` bytes; `out_ok` is writable; `out_report` is NULL or
/// writable; `err` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn deadbolt_check_bolt(
    path: *const u8,
    path_len: usize,
    out_ok: *mut i32,
    out_report: *mut DeadboltBuf,
    err: *mut DeadboltError,
) -> i32 {
    edge(err, || {
        check_out(out_ok, "out_ok")?;
        let path = path_in(path, path_len)?;
        let r = deadbolt::bolt::check_file(&path)?;
        if !out_report.is_null() {
            buf_out(out_report, r.to_string().into_bytes())?;
        }
        // SAFETY: checked non-null above, writable by contract.
        unsafe { out(out_ok, "out_ok", i32::from(r.is_ok())) }
    })
}

/// The library's version, a static NUL-terminated string (never freed).
#[no_mangle]
pub extern "C" fn deadbolt_version() -> *const std::ffi::c_char {
    c"deadbolt-capi 0.1.0".as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_at_the_edge() {
        let mut e = DeadboltError {
            code: 0,
            message: std::ptr::null_mut(),
            message_len: 0,
        };
        let rc = edge(&mut e, || panic!("boom {}", 7));
        assert_eq!((rc, e.code), (DEADBOLT_ERR_PANIC, DEADBOLT_ERR_PANIC));
        // SAFETY: the record was just filled by the library.
        let m = unsafe { std::slice::from_raw_parts(e.message, e.message_len) };
        assert_eq!(m, b"panic in deadbolt: boom 7");
        // SAFETY: as above; cleared once.
        unsafe { deadbolt_error_clear(&mut e) };
        assert!(e.message.is_null() && e.code == DEADBOLT_OK);
    }

    #[test]
    fn every_engine_error_has_its_code() {
        use deadbolt::Error as E;
        let all = [
            (E::Io(std::io::Error::other("x")), DEADBOLT_ERR_IO),
            (
                E::Corruption {
                    page: 3,
                    detail: "x".into(),
                },
                DEADBOLT_ERR_CORRUPTION,
            ),
            (E::InvalidFile("x".into()), DEADBOLT_ERR_INVALID_FILE),
            (
                E::UnsupportedVersion {
                    found: 9,
                    supported: 3,
                },
                DEADBOLT_ERR_UNSUPPORTED_VERSION,
            ),
            (E::WouldDeadlock, DEADBOLT_ERR_WOULD_DEADLOCK),
            (E::BucketNotFound, DEADBOLT_ERR_BUCKET_NOT_FOUND),
            (E::BucketExists, DEADBOLT_ERR_BUCKET_EXISTS),
            (E::IncompatibleValue, DEADBOLT_ERR_INCOMPATIBLE_VALUE),
            (E::KeyTooLarge { len: 1 }, DEADBOLT_ERR_KEY_TOO_LARGE),
            (E::KeyEmpty, DEADBOLT_ERR_KEY_EMPTY),
            (E::ValueTooLarge { len: 1 }, DEADBOLT_ERR_VALUE_TOO_LARGE),
            (E::InvalidBucketName, DEADBOLT_ERR_INVALID_BUCKET_NAME),
            (E::ReadOnly, DEADBOLT_ERR_READ_ONLY),
            (E::LockTimeout, DEADBOLT_ERR_LOCK_TIMEOUT),
            (E::Poisoned("x".into()), DEADBOLT_ERR_POISONED),
            (
                E::InvalidArgument("x".into()),
                DEADBOLT_ERR_INVALID_ARGUMENT,
            ),
            (E::TxClosed, DEADBOLT_ERR_TX_CLOSED),
            (E::Bug("x".into()), DEADBOLT_ERR_BUG),
            (
                E::BudgetExhausted {
                    resume: std::ops::Bound::Unbounded,
                },
                DEADBOLT_ERR_BUDGET_EXHAUSTED,
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (e, want) in all {
            let text = e.to_string();
            let f = Fail::from(e);
            assert_eq!(f.code, want, "{text}");
            assert_eq!(f.message, text);
            assert!(seen.insert(want), "codes are distinct");
        }
    }
}
