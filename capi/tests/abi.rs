//! The C ABI called as C would call it: the happy paths, every reachable error code, and
//! hostile inputs (NULL pointers, huge lengths, forged, stale and closed handles, the wrong
//! thread).

use std::ptr::{null, null_mut};

use deadbolt_capi::*;

/// A zeroed error record.
fn e0() -> DeadboltError {
    DeadboltError {
        code: 0,
        message: null_mut(),
        message_len: 0,
    }
}

/// The message of `e`, cleared afterwards.
fn msg(e: &mut DeadboltError) -> String {
    let s = if e.message.is_null() {
        String::new()
    } else {
        // SAFETY: the library wrote `message_len` bytes (plus a NUL) at `message`.
        let b = unsafe { std::slice::from_raw_parts(e.message, e.message_len) };
        String::from_utf8(b.to_vec()).expect("utf-8 message")
    };
    // SAFETY: a record the library filled.
    unsafe { deadbolt_error_clear(e) };
    s
}

/// Run `f` with an error record; assert its return code is `want` and, on failure, that the
/// record carries the same code and a message. Returns the message.
fn expect(want: i32, f: impl FnOnce(*mut DeadboltError) -> i32) -> String {
    let mut e = e0();
    let rc = f(&mut e);
    let code = e.code;
    let m = msg(&mut e);
    assert_eq!(rc, want, "return code (message: {m})");
    if want != DEADBOLT_OK {
        assert_eq!(code, want, "code in the record");
        assert!(!m.is_empty(), "a failure has a message");
    } else {
        assert!(m.is_empty(), "success leaves the record untouched");
    }
    m
}

fn ok(f: impl FnOnce(*mut DeadboltError) -> i32) {
    expect(DEADBOLT_OK, f);
}

fn open_at(path: &std::path::Path, opts: Option<&DeadboltOptions>) -> u64 {
    let p = path.to_str().unwrap().as_bytes();
    let mut db = 0u64;
    let o = opts.map_or(null(), |o| o as *const _);
    // SAFETY: valid buffers and out-pointers.
    ok(|e| unsafe { deadbolt_open(p.as_ptr(), p.len(), o, &mut db, e) });
    db
}

fn begin(db: u64, w: bool) -> u64 {
    let mut tx = 0u64;
    // SAFETY: valid out-pointers.
    ok(|e| unsafe { deadbolt_begin(db, i32::from(w), &mut tx, e) });
    tx
}

fn bucket(tx: u64, parent: u64, name: &[u8], mode: i32) -> u64 {
    let mut b = 0u64;
    // SAFETY: valid buffers and out-pointers.
    ok(|e| unsafe { deadbolt_bucket(tx, parent, name.as_ptr(), name.len(), mode, &mut b, e) });
    b
}

fn put(tx: u64, b: u64, k: &[u8], v: &[u8]) {
    // SAFETY: valid buffers.
    ok(|e| unsafe { deadbolt_put(tx, b, k.as_ptr(), k.len(), v.as_ptr(), v.len(), e) });
}

fn get(tx: u64, b: u64, k: &[u8]) -> Option<Vec<u8>> {
    let mut s = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    // SAFETY: valid buffers and out-pointers.
    ok(|e| unsafe { deadbolt_get(tx, b, k.as_ptr(), k.len(), &mut s, e) });
    // SAFETY: the library returned `len` bytes at `ptr` (valid at least until the next call).
    (!s.ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(s.ptr, s.len) }.to_vec())
}

fn commit(tx: u64) {
    // SAFETY: a plain call.
    ok(|e| unsafe { deadbolt_commit(tx, e) });
}

fn close(db: u64) {
    // SAFETY: a plain call.
    ok(|e| unsafe { deadbolt_close(db, e) });
}

fn entry() -> DeadboltEntry {
    let s = || DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    DeadboltEntry {
        found: 0,
        is_bucket: 0,
        key: s(),
        value: s(),
    }
}

/// (key, value or None for a bucket), or None past an end.
fn mv(tx: u64, c: u64, op: i32, seek: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut en = entry();
    // SAFETY: valid buffers and out-pointers.
    ok(|e| unsafe { deadbolt_cursor_move(tx, c, op, seek.as_ptr(), seek.len(), &mut en, e) });
    if en.found == 0 {
        return None;
    }
    // SAFETY: the library returned these slices, valid until the next call.
    let k = unsafe { std::slice::from_raw_parts(en.key.ptr, en.key.len) }.to_vec();
    let v = (en.is_bucket == 0)
        .then(|| unsafe { std::slice::from_raw_parts(en.value.ptr, en.value.len) }.to_vec());
    Some((k, v))
}

#[test]
fn round_trip_through_the_abi() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let db = open_at(&path, None);
    let tx = begin(db, true);
    let vols = bucket(tx, DEADBOLT_ROOT, b"volumes", DEADBOLT_BUCKET_CREATE);
    for i in 0..500u32 {
        put(
            tx,
            vols,
            format!("vol-{i:04}").as_bytes(),
            format!("{{\"n\":{i}}}").as_bytes(),
        );
    }
    let labels = bucket(tx, vols, b"labels", DEADBOLT_BUCKET_CREATE_IF_MISSING);
    put(tx, labels, b"vol-0001", b"role=db");
    put(tx, vols, b"empty", b"");
    let mut seq = 0u64;
    // SAFETY: valid out-pointers.
    ok(|e| unsafe { deadbolt_next_sequence(tx, vols, &mut seq, e) });
    assert_eq!(seq, 1);
    ok(|e| unsafe { deadbolt_set_sequence(tx, vols, 41, e) });
    ok(|e| unsafe { deadbolt_next_sequence(tx, vols, &mut seq, e) });
    assert_eq!(seq, 42);
    // A write transaction sees its own writes (copies: not flagged stable).
    assert_eq!(
        get(tx, vols, b"vol-0007").as_deref(),
        Some(&b"{\"n\":7}"[..])
    );
    commit(tx);

    let tx = begin(db, false);
    let vols = bucket(tx, DEADBOLT_ROOT, b"volumes", DEADBOLT_BUCKET_OPEN);
    let mut s = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    let k = b"vol-0499";
    // SAFETY: valid buffers and out-pointers.
    ok(|e| unsafe { deadbolt_get(tx, vols, k.as_ptr(), k.len(), &mut s, e) });
    assert_eq!(
        s.flags & DEADBOLT_SLICE_STABLE,
        DEADBOLT_SLICE_STABLE,
        "a read tx returns views"
    );
    // SAFETY: stable until the transaction ends.
    let view = unsafe { std::slice::from_raw_parts(s.ptr, s.len) };
    assert_eq!(
        get(tx, vols, b"vol-0000").as_deref(),
        Some(&b"{\"n\":0}"[..])
    );
    assert_eq!(view, b"{\"n\":499}", "a stable view survives later calls");
    assert_eq!(
        get(tx, vols, b"empty").as_deref(),
        Some(&b""[..]),
        "empty, not absent"
    );
    assert_eq!(get(tx, vols, b"nope"), None);
    ok(|e| unsafe { deadbolt_sequence(tx, vols, &mut seq, e) });
    assert_eq!(seq, 42);
    let labels = bucket(tx, vols, b"labels", DEADBOLT_BUCKET_OPEN);
    assert_eq!(
        get(tx, labels, b"vol-0001").as_deref(),
        Some(&b"role=db"[..])
    );

    // Cursors: every move, a nested bucket's entry, the root cursor.
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, vols, &mut c, e) });
    assert_eq!(
        mv(tx, c, DEADBOLT_CURSOR_FIRST, b""),
        Some((b"empty".to_vec(), Some(vec![])))
    );
    assert_eq!(
        mv(tx, c, DEADBOLT_CURSOR_NEXT, b""),
        Some((b"labels".to_vec(), None))
    );
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_NEXT, b"").unwrap().0, b"vol-0000");
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_PREV, b"").unwrap().0, b"labels");
    assert_eq!(
        mv(tx, c, DEADBOLT_CURSOR_SEEK, b"vol-0250x").unwrap().0,
        b"vol-0251"
    );
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_LAST, b"").unwrap().0, b"vol-0499");
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_NEXT, b""), None);
    let mut n = 0;
    let mut at = mv(tx, c, DEADBOLT_CURSOR_FIRST, b"");
    while at.is_some() {
        n += 1;
        at = mv(tx, c, DEADBOLT_CURSOR_NEXT, b"");
    }
    assert_eq!(n, 502);
    ok(|e| unsafe { deadbolt_cursor_close(tx, c, e) });
    let mut r = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, DEADBOLT_ROOT, &mut r, e) });
    assert_eq!(
        mv(tx, r, DEADBOLT_CURSOR_FIRST, b""),
        Some((b"volumes".to_vec(), None))
    );
    assert_eq!(mv(tx, r, DEADBOLT_CURSOR_NEXT, b""), None);

    let mut bs = DeadboltBucketStats {
        keys: 0,
        buckets: 0,
        branch_pages: 0,
        leaf_pages: 0,
        overflow_pages: 0,
        depth: 0,
        bytes_used: 0,
        bytes_allocated: 0,
        inline_buckets: 0,
    };
    ok(|e| unsafe { deadbolt_bucket_stats(tx, vols, &mut bs, e) });
    assert_eq!((bs.keys, bs.buckets), (502, 1));
    let mut info = DeadboltTxInfo {
        id: 0,
        writable: 9,
        size: 0,
        page_size: 0,
    };
    ok(|e| unsafe { deadbolt_tx_info(tx, &mut info, e) });
    assert_eq!((info.writable, info.page_size), (0, 4096));
    assert!(info.size >= 3 * 4096 && info.size.is_multiple_of(4096));
    ok(|e| unsafe { deadbolt_tx_check(tx, e) });

    // Backup through a callback and through a descriptor: both are valid databases.
    unsafe extern "C" fn collect(user: *mut std::ffi::c_void, p: *const u8, n: usize) -> i32 {
        // SAFETY: `user` is the Vec passed below; `p` has `n` bytes during the call.
        unsafe { (*(user as *mut Vec<u8>)).extend_from_slice(std::slice::from_raw_parts(p, n)) };
        0
    }
    let mut copy: Vec<u8> = Vec::new();
    let mut written = 0u64;
    let user = &mut copy as *mut Vec<u8> as *mut std::ffi::c_void;
    ok(|e| unsafe { deadbolt_tx_write_to(tx, Some(collect), user, &mut written, e) });
    assert_eq!(written, copy.len() as u64);
    assert_eq!(written, info.size);
    let fd_copy = dir.path().join("fd.db");
    let f = std::fs::File::create(&fd_copy).unwrap();
    use std::os::fd::AsRawFd;
    ok(|e| unsafe { deadbolt_tx_write_to_fd(tx, f.as_raw_fd(), &mut written, e) });
    drop(f);
    assert_eq!(std::fs::read(&fd_copy).unwrap(), copy);
    commit(tx); // ends a read transaction
    close(db);

    let cb_copy = dir.path().join("cb.db");
    std::fs::write(&cb_copy, &copy).unwrap();
    for p in [&cb_copy, &fd_copy, &path] {
        let db = open_at(p, None);
        let tx = begin(db, false);
        let vols = bucket(tx, DEADBOLT_ROOT, b"volumes", DEADBOLT_BUCKET_OPEN);
        assert_eq!(
            get(tx, vols, b"vol-0123").as_deref(),
            Some(&b"{\"n\":123}"[..])
        );
        ok(|e| unsafe { deadbolt_rollback(tx, e) });
        close(db);
    }
}

#[test]
fn writes_deletes_and_bucket_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("b.db"), None);
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    let mut h = 0u64;
    let name = b"b";
    let m = expect(DEADBOLT_ERR_BUCKET_EXISTS, |e| unsafe {
        deadbolt_bucket(
            tx,
            DEADBOLT_ROOT,
            name.as_ptr(),
            1,
            DEADBOLT_BUCKET_CREATE,
            &mut h,
            e,
        )
    });
    assert!(m.contains("exists"), "{m}");
    let x = b"x";
    expect(DEADBOLT_ERR_BUCKET_NOT_FOUND, |e| unsafe {
        deadbolt_bucket(tx, b, x.as_ptr(), 1, DEADBOLT_BUCKET_OPEN, &mut h, e)
    });
    expect(DEADBOLT_ERR_BUCKET_NOT_FOUND, |e| unsafe {
        deadbolt_bucket_delete(tx, DEADBOLT_ROOT, x.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        deadbolt_bucket(tx, b, x.as_ptr(), 1, 7, &mut h, e)
    });
    expect(DEADBOLT_ERR_INVALID_BUCKET_NAME, |e| unsafe {
        deadbolt_bucket(tx, b, null(), 0, DEADBOLT_BUCKET_CREATE, &mut h, e)
    });
    put(tx, b, b"k", b"v");
    let sub = bucket(tx, b, b"sub", DEADBOLT_BUCKET_CREATE);
    put(tx, sub, b"in", b"side");
    // A value used as a bucket and a bucket used as a value.
    let k = b"k";
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_bucket(tx, b, k.as_ptr(), 1, DEADBOLT_BUCKET_OPEN, &mut h, e)
    });
    let s = b"sub";
    let mut sl = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_get(tx, b, s.as_ptr(), 3, &mut sl, e)
    });
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_put(tx, b, s.as_ptr(), 3, k.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_delete(tx, b, s.as_ptr(), 3, e)
    });
    // The root holds only buckets.
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_put(tx, DEADBOLT_ROOT, k.as_ptr(), 1, k.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_KEY_EMPTY, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), 0, k.as_ptr(), 1, e)
    });
    // Cursor delete: a key goes, a bucket is refused.
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c, e) });
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_FIRST, b"").unwrap().0, b"k");
    ok(|e| unsafe { deadbolt_cursor_delete(tx, c, e) });
    assert_eq!(
        mv(tx, c, DEADBOLT_CURSOR_NEXT, b""),
        Some((b"sub".to_vec(), None))
    );
    expect(DEADBOLT_ERR_INCOMPATIBLE_VALUE, |e| unsafe {
        deadbolt_cursor_delete(tx, c, e)
    });
    assert_eq!(get(tx, b, b"k"), None);
    // Deleting a bucket invalidates its handle.
    ok(|e| unsafe { deadbolt_bucket_delete(tx, b, s.as_ptr(), 3, e) });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_get(tx, sub, k.as_ptr(), 1, &mut sl, e)
    });
    ok(|e| unsafe { deadbolt_delete(tx, b, k.as_ptr(), 1, e) }); // absent: fine
    commit(tx);

    // A read transaction refuses writes.
    let tx = begin(db, false);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    expect(DEADBOLT_ERR_READ_ONLY, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), 1, k.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_READ_ONLY, |e| unsafe {
        deadbolt_set_sequence(tx, b, 3, e)
    });
    expect(DEADBOLT_ERR_READ_ONLY, |e| unsafe {
        deadbolt_bucket(
            tx,
            DEADBOLT_ROOT,
            k.as_ptr(),
            1,
            DEADBOLT_BUCKET_CREATE,
            &mut h,
            e,
        )
    });
    commit(tx);
    close(db);
}

#[test]
fn null_pointers_and_huge_lengths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("n.db"), None);
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    let k = b"k";
    let mut h = 0u64;
    let mut sl = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    // NULL with a length.
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_put(tx, b, null(), 1, k.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), 1, null(), 5, e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_get(tx, b, null(), 3, &mut sl, e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_bucket(tx, b, null(), 3, DEADBOLT_BUCKET_OPEN, &mut h, e)
    });
    // NULL out-pointers.
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_get(tx, b, k.as_ptr(), 1, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_bucket(tx, b, k.as_ptr(), 1, DEADBOLT_BUCKET_OPEN, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_next_sequence(tx, b, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_cursor_open(tx, b, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_tx_info(tx, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_stats(db, null_mut(), e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_begin(db, 0, null_mut(), e)
    });
    let mut w = 0u64;
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_tx_write_to(tx, None, null_mut(), &mut w, e)
    });
    // Huge lengths: refused before a byte is read (the pointer is valid for 1 byte only).
    expect(DEADBOLT_ERR_KEY_TOO_LARGE, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), usize::MAX, k.as_ptr(), 1, e)
    });
    expect(DEADBOLT_ERR_KEY_TOO_LARGE, |e| unsafe {
        deadbolt_get(tx, b, k.as_ptr(), MAX_KEY + 1, &mut sl, e)
    });
    expect(DEADBOLT_ERR_VALUE_TOO_LARGE, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), 1, k.as_ptr(), usize::MAX, e)
    });
    expect(DEADBOLT_ERR_VALUE_TOO_LARGE, |e| unsafe {
        deadbolt_put(tx, b, k.as_ptr(), 1, k.as_ptr(), (1 << 31) - 1, e)
    });
    expect(DEADBOLT_ERR_INVALID_BUCKET_NAME, |e| unsafe {
        deadbolt_bucket(
            tx,
            b,
            k.as_ptr(),
            usize::MAX / 2,
            DEADBOLT_BUCKET_CREATE,
            &mut h,
            e,
        )
    });
    let mut en = entry();
    expect(DEADBOLT_ERR_KEY_TOO_LARGE, |e| unsafe {
        let mut c = 0;
        deadbolt_cursor_open(tx, b, &mut c, null_mut());
        deadbolt_cursor_move(
            tx,
            c,
            DEADBOLT_CURSOR_SEEK,
            k.as_ptr(),
            usize::MAX,
            &mut en,
            e,
        )
    });
    let mut d = 0u64;
    expect(DEADBOLT_ERR_LIMIT, |e| unsafe {
        deadbolt_open(k.as_ptr(), usize::MAX, null(), &mut d, e)
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_open(null(), 10, null(), &mut d, e)
    });
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        deadbolt_open(null(), 0, null(), &mut d, e)
    });
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        deadbolt_tx_write_to_fd(tx, -1, &mut w, e)
    });
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        let mut c = 0;
        deadbolt_cursor_open(tx, b, &mut c, null_mut());
        deadbolt_cursor_move(tx, c, 99, null(), 0, &mut en, e)
    });
    // A NULL error record is allowed: the code is still returned.
    assert_eq!(
        unsafe { deadbolt_put(tx, b, null(), 1, null(), 0, null_mut()) },
        DEADBOLT_ERR_NULL_POINTER
    );
    // Clearing NULL, a zeroed record, and a zeroed buffer is fine.
    unsafe {
        deadbolt_error_clear(null_mut());
        let mut z = e0();
        deadbolt_error_clear(&mut z);
        deadbolt_buf_free(null_mut());
        let mut zb = DeadboltBuf {
            ptr: null_mut(),
            len: 0,
        };
        deadbolt_buf_free(&mut zb);
    }
    // Nothing above changed the transaction.
    commit(tx);
    close(db);
}

const MAX_KEY: usize = 32768;

#[test]
fn forged_stale_and_closed_handles_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("h.db"), None);
    let k = b"k";
    let mut h = 0u64;
    let mut sl = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    for forged in [0u64, 1, 0xdead_beef, u64::MAX, db ^ (1 << 32), db + 1] {
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_begin(forged, 0, &mut h, e)
        });
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_sync(forged, e)
        });
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_commit(forged, e)
        });
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_get(forged, 1, k.as_ptr(), 1, &mut sl, e)
        });
    }
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    put(tx, b, b"k", b"v");
    // Bucket and cursor handles are checked inside their transaction.
    for forged in [b + 1, 77, u64::MAX] {
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_get(tx, forged, k.as_ptr(), 1, &mut sl, e)
        });
        expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
            deadbolt_cursor_close(tx, forged, e)
        });
    }
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c, e) });
    ok(|e| unsafe { deadbolt_cursor_close(tx, c, e) });
    let mut en = entry();
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_cursor_move(tx, c, DEADBOLT_CURSOR_FIRST, null(), 0, &mut en, e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_cursor_close(tx, c, e)
    });
    // A reused cursor slot gets a new generation: the old handle stays dead.
    let mut c2 = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c2, e) });
    assert_ne!(c, c2);
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_cursor_delete(tx, c, e)
    });
    // Closing a database with an open transaction is refused, the handle stays valid.
    expect(DEADBOLT_ERR_BUSY, |e| unsafe { deadbolt_close(db, e) });
    commit(tx);
    // Use after commit: the transaction, its buckets and cursors are gone.
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_get(tx, b, k.as_ptr(), 1, &mut sl, e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_cursor_move(tx, c2, DEADBOLT_CURSOR_FIRST, null(), 0, &mut en, e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_commit(tx, e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_rollback(tx, e)
    });
    // A bucket handle of one transaction means nothing in another.
    let tx2 = begin(db, false);
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_get(tx2, b, k.as_ptr(), 1, &mut sl, e)
    });
    ok(|e| unsafe { deadbolt_rollback(tx2, e) });
    close(db);
    // Use after close.
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_begin(db, 0, &mut h, e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_close(db, e)
    });
    let mut st = std::mem::MaybeUninit::<DeadboltStats>::uninit();
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_stats(db, st.as_mut_ptr(), e)
    });
}

#[test]
fn a_write_transaction_belongs_to_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("t.db"), None);
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    // Beginning another write transaction on this thread would wait forever.
    let mut h = 0u64;
    expect(DEADBOLT_ERR_WOULD_DEADLOCK, |e| unsafe {
        deadbolt_begin(db, 1, &mut h, e)
    });
    std::thread::spawn(move || {
        let k = b"k";
        expect(DEADBOLT_ERR_WRONG_THREAD, |e| unsafe {
            deadbolt_put(tx, b, k.as_ptr(), 1, k.as_ptr(), 1, e)
        });
        expect(DEADBOLT_ERR_WRONG_THREAD, |e| unsafe {
            deadbolt_commit(tx, e)
        });
        expect(DEADBOLT_ERR_WRONG_THREAD, |e| unsafe {
            deadbolt_rollback(tx, e)
        });
    })
    .join()
    .unwrap();
    // Still alive and usable on its own thread.
    put(tx, b, b"k", b"v");
    commit(tx);
    // A read transaction may move between threads.
    let tx = begin(db, false);
    let v = std::thread::spawn(move || {
        let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
        let v = get(tx, b, b"k");
        commit(tx);
        v
    })
    .join()
    .unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
    close(db);
}

#[test]
fn foreign_files_and_locks() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = 0u64;
    // Garbage: not a deadbolt file, and left as it was.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x5au8; 8192]).unwrap();
    let p = junk.to_str().unwrap().as_bytes();
    expect(DEADBOLT_ERR_INVALID_FILE, |e| unsafe {
        deadbolt_open(p.as_ptr(), p.len(), null(), &mut d, e)
    });
    assert_eq!(std::fs::read(&junk).unwrap(), vec![0x5au8; 8192]);
    // A bbolt file is named as one, and not written.
    let bolt =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/bolt/c_nested.db");
    let before = std::fs::read(&bolt).unwrap();
    let p = bolt.to_str().unwrap().as_bytes();
    let m = expect(DEADBOLT_ERR_BOLT_FILE, |e| unsafe {
        deadbolt_open(p.as_ptr(), p.len(), null(), &mut d, e)
    });
    assert!(m.contains("bbolt"), "{m}");
    assert_eq!(std::fs::read(&bolt).unwrap(), before);
    // A directory: an I/O error.
    let p = dir.path().to_str().unwrap().as_bytes();
    expect(DEADBOLT_ERR_IO, |e| unsafe {
        deadbolt_open(p.as_ptr(), p.len(), null(), &mut d, e)
    });
    // A second writer on the same file times out on the lock.
    let path = dir.path().join("l.db");
    let db = open_at(&path, None);
    let opts = DeadboltOptions {
        page_size: 0,
        no_sync: 0,
        read_only: 0,
        verify_every_access: 0,
        lock_timeout_ns: 50_000_000,
    };
    let p = path.to_str().unwrap().as_bytes();
    expect(DEADBOLT_ERR_LOCK_TIMEOUT, |e| unsafe {
        deadbolt_open(p.as_ptr(), p.len(), &opts, &mut d, e)
    });
    close(db);
    // Read-only: no write transaction; an invalid page size is refused.
    let ro = DeadboltOptions {
        read_only: 1,
        ..opts
    };
    let db = open_at(&path, Some(&ro));
    let mut tx = 0u64;
    expect(DEADBOLT_ERR_READ_ONLY, |e| unsafe {
        deadbolt_begin(db, 1, &mut tx, e)
    });
    close(db);
    let bad = DeadboltOptions {
        page_size: 1000,
        ..opts
    };
    let p2 = dir.path().join("ps.db");
    let p2 = p2.to_str().unwrap().as_bytes();
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        deadbolt_open(p2.as_ptr(), p2.len(), &bad, &mut d, e)
    });
}

#[test]
fn damage_is_an_error_and_salvage_recovers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let db = open_at(&path, None);
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    for i in 0..2000u32 {
        put(tx, b, format!("k{i:05}").as_bytes(), &[7u8; 100]);
    }
    commit(tx);
    // A second commit rewrites only the path to the first leaf: open verifies the newest
    // commit's pages, so damage to another leaf is met by the read that reaches it.
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    put(tx, b, b"k00000", b"new");
    commit(tx);
    close(db);
    // Flip a byte of the leaf page (type 3 at byte 4) that holds k01000.
    let mut bytes = std::fs::read(&path).unwrap();
    let holds = |p: usize| {
        bytes[p * 4096..(p + 1) * 4096]
            .windows(6)
            .any(|w| w == b"k01000")
    };
    let victim = (2..bytes.len() / 4096)
        .find(|&p| bytes[p * 4096 + 4] == 3 && holds(p))
        .expect("a leaf holds k01000");
    bytes[victim * 4096 + 2048] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let db = open_at(&path, None);
    let p = path.to_str().unwrap().as_bytes();
    let tx = begin(db, false);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    // A point read into the damaged leaf: corruption naming the page.
    let k = b"k01000";
    let mut sl = DeadboltSlice {
        ptr: null(),
        len: 0,
        flags: 0,
    };
    let m = expect(DEADBOLT_ERR_CORRUPTION, |e| unsafe {
        deadbolt_get(tx, b, k.as_ptr(), k.len(), &mut sl, e)
    });
    assert!(m.contains(&format!("page {victim}")), "{m}");
    // A batched walk from the start: the error, with every entry before the damaged leaf.
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c, e) });
    let mut buf: Vec<DeadboltEntry> = (0..DEADBOLT_MAX_STEP).map(|_| entry()).collect();
    let (mut n, mut ended) = (usize::MAX, 0u8);
    expect(DEADBOLT_ERR_CORRUPTION, |e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_FIRST,
            null(),
            0,
            DEADBOLT_MAX_STEP,
            buf.as_mut_ptr(),
            &mut n,
            &mut ended,
            e,
        )
    });
    assert!(n > 0 && n < 1000, "{n} entries before the damaged leaf");
    for (i, en) in buf[..n].iter().enumerate() {
        // SAFETY: stable views of the mapping, valid until the transaction ends.
        let key = unsafe { std::slice::from_raw_parts(en.key.ptr, en.key.len) };
        assert_eq!(key, format!("k{i:05}").as_bytes());
    }
    expect(DEADBOLT_ERR_DAMAGED, |e| unsafe {
        deadbolt_tx_check(tx, e)
    });
    commit(tx);
    close(db);

    // Salvage: everything but the damaged leaf.
    let out = dir.path().join("saved.db");
    let o = out.to_str().unwrap().as_bytes();
    let mut rep = DeadboltBuf {
        ptr: null_mut(),
        len: 0,
    };
    ok(|e| unsafe { deadbolt_salvage(p.as_ptr(), p.len(), o.as_ptr(), o.len(), &mut rep, e) });
    let text = unsafe {
        String::from_utf8_lossy(std::slice::from_raw_parts(rep.ptr, rep.len)).into_owned()
    };
    unsafe { deadbolt_buf_free(&mut rep) };
    assert!(rep.ptr.is_null());
    assert!(text.contains("lost"), "{text}");
    let db = open_at(&out, None);
    let tx = begin(db, false);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    let kept = (0..2000u32)
        .filter(|i| get(tx, b, format!("k{i:05}").as_bytes()).is_some())
        .count();
    assert!(kept > 1800 && kept < 2000, "kept {kept}");
    commit(tx);
    close(db);
    // Salvage refuses to overwrite.
    expect(DEADBOLT_ERR_INVALID_ARGUMENT, |e| unsafe {
        deadbolt_salvage(p.as_ptr(), p.len(), o.as_ptr(), o.len(), null_mut(), e)
    });
}

#[test]
fn bolt_check_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/bolt");
    let check = |name: &str| {
        let p = data.join(name);
        let p = p.to_str().unwrap().as_bytes();
        let mut good = -1;
        let mut rep = DeadboltBuf {
            ptr: null_mut(),
            len: 0,
        };
        ok(|e| unsafe { deadbolt_check_bolt(p.as_ptr(), p.len(), &mut good, &mut rep, e) });
        let text = unsafe {
            String::from_utf8_lossy(std::slice::from_raw_parts(rep.ptr, rep.len)).into_owned()
        };
        unsafe { deadbolt_buf_free(&mut rep) };
        (good, text)
    };
    assert_eq!(check("c_nested.db").0, 1);
    let (good, text) = check("corrupt_01_branch_to_freelist.db");
    assert_eq!(good, 0, "{text}");
    assert!(text.contains("freelist"), "{text}");

    let import = |name: &str, dst: &str, salvage: i32| {
        let s = data.join(name);
        let s = s.to_str().unwrap().as_bytes();
        let d = dir.path().join(dst);
        let d = d.to_str().unwrap().as_bytes().to_vec();
        let mut rep = DeadboltBuf {
            ptr: null_mut(),
            len: 0,
        };
        let mut e = e0();
        let rc = unsafe {
            deadbolt_import_bolt(
                s.as_ptr(),
                s.len(),
                d.as_ptr(),
                d.len(),
                salvage,
                &mut rep,
                &mut e,
            )
        };
        let m = msg(&mut e);
        unsafe { deadbolt_buf_free(&mut rep) };
        (rc, m)
    };
    assert_eq!(import("c_nested.db", "n.db", 0).0, DEADBOLT_OK);
    let db = open_at(&dir.path().join("n.db"), None);
    let tx = begin(db, false);
    let mut r = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, DEADBOLT_ROOT, &mut r, e) });
    assert!(
        mv(tx, r, DEADBOLT_CURSOR_FIRST, b"").is_some(),
        "imported buckets"
    );
    commit(tx);
    close(db);
    // Strict import of a damaged file: refused, nothing created.
    let (rc, m) = import("corrupt_01_branch_to_freelist.db", "x.db", 0);
    assert_eq!(rc, DEADBOLT_ERR_CORRUPTION, "{m}");
    assert!(!dir.path().join("x.db").exists());
    assert_eq!(
        import("corrupt_01_branch_to_freelist.db", "s.db", 1).0,
        DEADBOLT_OK
    );
    // The destination must be new.
    assert_eq!(
        import("c_nested.db", "n.db", 0).0,
        DEADBOLT_ERR_INVALID_ARGUMENT
    );
}

#[test]
fn callback_stop_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("c.db"), None);
    let tx = begin(db, false);
    unsafe extern "C" fn refuse(_: *mut std::ffi::c_void, _: *const u8, _: usize) -> i32 {
        1
    }
    let mut w = 0u64;
    expect(DEADBOLT_ERR_CALLBACK, |e| unsafe {
        deadbolt_tx_write_to(tx, Some(refuse), null_mut(), &mut w, e)
    });
    commit(tx);
    let mut st = std::mem::MaybeUninit::<DeadboltStats>::uninit();
    ok(|e| unsafe { deadbolt_stats(db, st.as_mut_ptr(), e) });
    let st = unsafe { st.assume_init() };
    assert_eq!(st.page_size, 4096);
    ok(|e| unsafe { deadbolt_sync(db, e) });
    close(db);
    let v = unsafe { std::ffi::CStr::from_ptr(deadbolt_version()) };
    assert!(v.to_str().unwrap().starts_with("deadbolt-capi"));
}

#[test]
fn cursor_steps_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("s.db"), None);
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_CREATE);
    for i in 0..100u32 {
        put(tx, b, format!("k{i:03}").as_bytes(), b"v");
    }
    commit(tx);
    let tx = begin(db, false);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c, e) });
    let mut buf: Vec<DeadboltEntry> = (0..64).map(|_| entry()).collect();
    let (mut n, mut ended) = (0usize, 9u8);
    let key =
        |e: &DeadboltEntry| unsafe { std::slice::from_raw_parts(e.key.ptr, e.key.len) }.to_vec();
    let k = b"k090";
    ok(|e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_SEEK,
            k.as_ptr(),
            4,
            64,
            buf.as_mut_ptr(),
            &mut n,
            &mut ended,
            e,
        )
    });
    assert_eq!((n, ended), (10, 1), "k090..k099, then the end");
    assert_eq!(key(&buf[0]), b"k090");
    assert_eq!(key(&buf[9]), b"k099");
    ok(|e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_LAST,
            null(),
            0,
            5,
            buf.as_mut_ptr(),
            &mut n,
            &mut ended,
            e,
        )
    });
    assert_eq!((n, ended), (5, 0));
    assert_eq!(key(&buf[4]), b"k095", "backwards from the last");
    // The cursor is left at the last entry returned.
    assert_eq!(mv(tx, c, DEADBOLT_CURSOR_PREV, b"").unwrap().0, b"k094");
    // Hostile: no room, too much room, NULL outputs.
    for max in [0, DEADBOLT_MAX_STEP + 1, usize::MAX] {
        expect(DEADBOLT_ERR_LIMIT, |e| unsafe {
            deadbolt_cursor_step(
                tx,
                c,
                DEADBOLT_CURSOR_FIRST,
                null(),
                0,
                max,
                buf.as_mut_ptr(),
                &mut n,
                &mut ended,
                e,
            )
        });
    }
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_FIRST,
            null(),
            0,
            4,
            null_mut(),
            &mut n,
            &mut ended,
            e,
        )
    });
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_FIRST,
            null(),
            0,
            4,
            buf.as_mut_ptr(),
            null_mut(),
            &mut ended,
            e,
        )
    });
    commit(tx);
    // In a write transaction a changed entry is returned alone (its bytes are the slot's).
    let tx = begin(db, true);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    put(tx, b, b"k000", b"changed");
    let mut c = 0u64;
    ok(|e| unsafe { deadbolt_cursor_open(tx, b, &mut c, e) });
    ok(|e| unsafe {
        deadbolt_cursor_step(
            tx,
            c,
            DEADBOLT_CURSOR_FIRST,
            null(),
            0,
            64,
            buf.as_mut_ptr(),
            &mut n,
            &mut ended,
            e,
        )
    });
    assert_eq!(n, 1, "stops after an entry that is not stable");
    assert_eq!(buf[0].value.flags & DEADBOLT_SLICE_STABLE, 0);
    ok(|e| unsafe { deadbolt_rollback(tx, e) });
    close(db);
}

/// What a batch callback gets: the key to write, and where to leave its handle.
struct BatchJob {
    key: Vec<u8>,
    fail: bool,
    seen_tx: std::sync::atomic::AtomicU64,
}

unsafe extern "C" fn batch_put(user: *mut std::ffi::c_void, tx: u64) -> i32 {
    // SAFETY: `user` is the BatchJob the test passed, alive for the whole deadbolt_batch call.
    let job = unsafe { &*(user as *const BatchJob) };
    job.seen_tx.store(tx, std::sync::atomic::Ordering::Relaxed);
    let mut b = 0u64;
    let name = b"b";
    let mut e = e0();
    // SAFETY: valid buffers; the record is cleared below.
    unsafe {
        if deadbolt_bucket(
            tx,
            DEADBOLT_ROOT,
            name.as_ptr(),
            1,
            DEADBOLT_BUCKET_CREATE_IF_MISSING,
            &mut b,
            &mut e,
        ) != 0
            || deadbolt_put(
                tx,
                b,
                job.key.as_ptr(),
                job.key.len(),
                b"v".as_ptr(),
                1,
                &mut e,
            ) != 0
        {
            deadbolt_error_clear(&mut e);
            return 2;
        }
        // The batch commits, not the callback.
        if deadbolt_commit(tx, &mut e) != DEADBOLT_ERR_INVALID_ARGUMENT {
            return 3;
        }
        deadbolt_error_clear(&mut e);
    }
    i32::from(job.fail)
}

#[test]
fn batch_commits_concurrent_callers_together() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_at(&dir.path().join("batch.db"), None);
    let threads: Vec<_> = (0..8u32)
        .map(|i| {
            std::thread::spawn(move || {
                let job = BatchJob {
                    key: format!("k{i}").into_bytes(),
                    fail: i == 3,
                    seen_tx: 0.into(),
                };
                let user = &job as *const BatchJob as *mut std::ffi::c_void;
                let mut e = e0();
                // SAFETY: `job` outlives the call; the callback is thread-safe.
                let rc = unsafe { deadbolt_batch(db, Some(batch_put), user, &mut e) };
                let m = msg(&mut e);
                // The handle the callback got is dead once it returned.
                let h = job.seen_tx.load(std::sync::atomic::Ordering::Relaxed);
                assert_ne!(h, 0);
                let mut info = DeadboltTxInfo {
                    id: 0,
                    writable: 0,
                    size: 0,
                    page_size: 0,
                };
                // SAFETY: valid out-pointers.
                expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
                    deadbolt_tx_info(h, &mut info, e)
                });
                (i, rc, m)
            })
        })
        .collect();
    for t in threads {
        let (i, rc, m) = t.join().unwrap();
        if i == 3 {
            assert_eq!(rc, DEADBOLT_ERR_CALLBACK, "{m}");
        } else {
            assert_eq!(rc, DEADBOLT_OK, "{m}");
        }
    }
    let tx = begin(db, false);
    let b = bucket(tx, DEADBOLT_ROOT, b"b", DEADBOLT_BUCKET_OPEN);
    for i in 0..8u32 {
        let want = (i != 3).then(|| b"v".to_vec());
        assert_eq!(get(tx, b, format!("k{i}").as_bytes()), want, "k{i}");
    }
    commit(tx);
    expect(DEADBOLT_ERR_NULL_POINTER, |e| unsafe {
        deadbolt_batch(db, None, null_mut(), e)
    });
    expect(DEADBOLT_ERR_BAD_HANDLE, |e| unsafe {
        deadbolt_batch(12345, Some(batch_put), null_mut(), e)
    });
    close(db);
}
