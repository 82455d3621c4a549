//! Opaque handles: every database and transaction the C side holds is a 64-bit number (slot
//! index and generation) checked against a registry on every call, so a closed, stale or
//! forged handle is `DEADBOLT_ERR_BAD_HANDLE`, never a dangling pointer.
//!
//! The engine's `Tx<'db>` borrows its `Db`, and `Bucket<'tx>`/`Cursor<'tx>` borrow the `Tx`.
//! Across the boundary they must be owned, so this module (the only one with `unsafe` besides
//! the pointer checks of `lib.rs` and `error.rs`) erases those lifetimes: a [`TxState`] keeps
//! the `Db` alive (an `Arc`), owns the `Tx` on the heap (a raw pointer from `Box::into_raw`, so
//! it never moves), and drops every bucket and cursor before the `Tx`, and the `Tx` before the
//! `Db`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

use deadbolt::{Bucket, Cursor, Db, Tx};

use crate::error::{Fail, DEADBOLT_ERR_BAD_HANDLE, DEADBOLT_ERR_LIMIT, DEADBOLT_ERR_TX_CLOSED};
use crate::error::{DEADBOLT_ERR_PANIC, DEADBOLT_ERR_WRONG_THREAD};

/// Most live handles of one kind (databases, transactions), and most buckets or cursors one
/// transaction may open: a bound on the registries' memory.
pub const MAX_HANDLES: usize = 1 << 20;

struct Slot<T> {
    gen: u32,
    item: Option<T>,
}

/// A table of live objects addressed by `(generation << 32) | (index + 1)`; 0 is never a
/// handle. A slot's generation changes when its object is removed, so old handles fail (a
/// 32-bit generation: a stale handle could only match again after 2^32 reuses of its slot).
pub(crate) struct Registry<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Registry<T> {
    pub const fn new() -> Registry<T> {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn insert(&mut self, item: T) -> Result<u64, Fail> {
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                if self.slots.len() >= MAX_HANDLES {
                    return Err(Fail::new(
                        DEADBOLT_ERR_LIMIT,
                        format!("more than {MAX_HANDLES} live handles"),
                    ));
                }
                self.slots.push(Slot { gen: 1, item: None });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.item = Some(item);
        Ok((u64::from(slot.gen) << 32) | (idx as u64 + 1))
    }

    fn index(&self, h: u64) -> Result<usize, Fail> {
        let bad = || Fail::new(DEADBOLT_ERR_BAD_HANDLE, format!("invalid handle {h:#x}"));
        let low = (h & 0xffff_ffff) as usize;
        let gen = (h >> 32) as u32;
        let idx = low.checked_sub(1).ok_or_else(bad)?;
        match self.slots.get(idx) {
            Some(s) if s.gen == gen && s.item.is_some() => Ok(idx),
            _ => Err(bad()),
        }
    }

    pub fn get(&self, h: u64) -> Result<&T, Fail> {
        let i = self.index(h)?;
        self.slots[i]
            .item
            .as_ref()
            .ok_or_else(|| Fail::new(DEADBOLT_ERR_BAD_HANDLE, "invalid handle"))
    }

    pub fn remove(&mut self, h: u64) -> Result<T, Fail> {
        let i = self.index(h)?;
        let slot = &mut self.slots[i];
        let item = slot.item.take();
        slot.gen = slot.gen.wrapping_add(1).max(1);
        self.free.push(i as u32);
        item.ok_or_else(|| Fail::new(DEADBOLT_ERR_BAD_HANDLE, "invalid handle"))
    }
}

/// A lock that survives a panic caught at the boundary: the registries' operations cannot
/// leave them half-changed, so a poisoned lock is taken over.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An open database.
pub(crate) struct DbState {
    pub db: Db,
}

pub(crate) static DBS: Mutex<Registry<Arc<DbState>>> = Mutex::new(Registry::new());
pub(crate) static TXS: Mutex<Registry<Arc<Mutex<TxState>>>> = Mutex::new(Registry::new());

/// The database behind a handle.
pub(crate) fn db(h: u64) -> Result<Arc<DbState>, Fail> {
    lock(&DBS).get(h).cloned()
}

/// The transaction behind a handle, locked (never while holding the registry's lock). A
/// transaction whose lock was poisoned by a caught panic is refused.
pub(crate) fn with_tx<R>(
    h: u64,
    f: impl FnOnce(&mut TxState) -> Result<R, Fail>,
) -> Result<R, Fail> {
    let t = lock(&TXS).get(h)?.clone();
    let mut g = t.lock().map_err(|_| {
        Fail::new(
            DEADBOLT_ERR_PANIC,
            "transaction unusable after an earlier panic",
        )
    })?;
    g.check_thread()?;
    f(&mut g)
}

/// A root cursor: the top-level bucket names, taken when it was opened (the engine has no
/// public cursor over the root bucket).
pub(crate) struct RootCursor {
    pub names: Vec<Vec<u8>>,
    /// Position: `None` before the start or after the end.
    pub pos: Option<usize>,
}

pub(crate) enum CursorKind {
    /// Boxed: a cursor holds its root-to-leaf stack inline (about 300 bytes), and a slot is
    /// kept for every cursor a transaction opened, root cursors included.
    Bucket(Box<Cursor<'static>>),
    Root(RootCursor),
}

pub(crate) struct CursorSlot {
    pub gen: u32,
    pub cur: Option<CursorKind>,
    /// Copies of an entry the engine returned owned (changed in this write transaction).
    pub key: Vec<u8>,
    pub val: Vec<u8>,
}

/// One transaction with the buckets and cursors opened in it.
pub(crate) struct TxState {
    /// The transaction, from `Box::into_raw`; NULL once committed or rolled back.
    tx: *mut Tx<'static>,
    /// Buckets opened in this transaction; handle `i + 1` is `buckets[i]` (0 is the root).
    pub buckets: Vec<Option<Bucket<'static>>>,
    /// (parent handle, name) -> bucket handle, so that reopening a bucket reuses its slot.
    pub bucket_index: HashMap<(u64, Vec<u8>), u64>,
    pub cursors: Vec<CursorSlot>,
    pub cursor_free: Vec<u32>,
    /// A copy of a value the engine returned owned, valid until the next call.
    pub scratch: Vec<u8>,
    /// The thread that began a write transaction: the only one allowed to use it.
    owner: Option<ThreadId>,
    /// The `Tx` is not ours but a batch's, lent for one callback (see `lend`): never freed
    /// here, never committed or rolled back through the handle.
    lent: bool,
    /// Keeps the database the `Tx` borrows alive; dropped after it (see `Drop`).
    pub db: Arc<DbState>,
}

// SAFETY: a `TxState` moves between threads only inside `TXS` (an `Arc<Mutex<_>>`), and the
// mutex serialises every access, so its `Tx`, buckets and cursors (which are `!Sync` because
// of their `RefCell`/`Cell`) are never touched by two threads at once. The one thread-affine
// part is a write transaction's writer lock (a guard that must be released, and a token that
// must be checked, on the thread that took it): `owner` records that thread, `with_tx` refuses
// every other thread (DEADBOLT_ERR_WRONG_THREAD), and commit/rollback go through `with_tx`,
// so a write `Tx` is only ever used and dropped on its own thread. A read `Tx` holds only a
// reference to the `Db` (Sync), an `Arc` of an immutable snapshot (whose view is Send + Sync)
// and plain flags.
unsafe impl Send for TxState {}

impl TxState {
    pub fn new(db: Arc<DbState>, writable: bool) -> Result<TxState, Fail> {
        // SAFETY: `db` is heap-allocated in an `Arc` that this state keeps until after the
        // transaction is dropped (see `Drop`), so the reference outlives every use of it.
        let dbref: &'static Db = unsafe { &*(&db.db as *const Db) };
        let tx = if writable {
            dbref.begin_write()?
        } else {
            dbref.begin_read()?
        };
        Ok(TxState {
            tx: Box::into_raw(Box::new(tx)),
            buckets: Vec::new(),
            bucket_index: HashMap::new(),
            cursors: Vec::new(),
            cursor_free: Vec::new(),
            scratch: Vec::new(),
            owner: writable.then(|| std::thread::current().id()),
            lent: false,
            db,
        })
    }

    /// A state for a transaction the engine lends to a batch callback, on this thread.
    ///
    /// # Safety
    /// The caller calls [`TxState::end_loan`] before `tx`'s borrow ends (before returning
    /// from the batch closure that received it); until then `tx` is only used through this
    /// state, on this thread.
    pub unsafe fn lend(db: Arc<DbState>, tx: &Tx<'_>) -> TxState {
        TxState {
            tx: (tx as *const Tx<'_>).cast::<Tx<'static>>().cast_mut(),
            buckets: Vec::new(),
            bucket_index: HashMap::new(),
            cursors: Vec::new(),
            cursor_free: Vec::new(),
            scratch: Vec::new(),
            owner: Some(std::thread::current().id()),
            lent: true,
            db,
        }
    }

    /// End a loan: drop the buckets and cursors that borrow the lent `Tx`, and forget it.
    pub fn end_loan(&mut self) {
        self.cursors.clear();
        self.buckets.clear();
        self.bucket_index.clear();
        self.tx = std::ptr::null_mut();
    }

    fn check_thread(&self) -> Result<(), Fail> {
        match self.owner {
            Some(t) if t != std::thread::current().id() => Err(Fail::new(
                DEADBOLT_ERR_WRONG_THREAD,
                "a write transaction must be used on the thread that began it",
            )),
            _ => Ok(()),
        }
    }

    /// The transaction, for as long as this state holds it.
    pub fn tx(&self) -> Result<&'static Tx<'static>, Fail> {
        if self.tx.is_null() {
            return Err(Fail::new(
                DEADBOLT_ERR_TX_CLOSED,
                "transaction already closed",
            ));
        }
        // SAFETY: non-null, so it is the live `Box` of `new` (freed only in `finish` and
        // `Drop`, which first drop every bucket and cursor: the only holders of references
        // into it besides the caller of this method, who holds the state's lock and returns
        // before either can run), or a lent `Tx` whose loan has not ended (`lend`'s contract:
        // `end_loan`, which sets the pointer to NULL under the same lock, runs before the
        // borrow ends). Callers never keep the reference beyond the current call.
        Ok(unsafe { &*self.tx })
    }

    /// Register a bucket under `(parent, name)`.
    pub fn add_bucket(
        &mut self,
        parent: u64,
        name: &[u8],
        b: Bucket<'static>,
    ) -> Result<u64, Fail> {
        if let Some(&h) = self.bucket_index.get(&(parent, name.to_vec())) {
            self.buckets[(h - 1) as usize] = Some(b);
            return Ok(h);
        }
        if self.buckets.len() >= MAX_HANDLES {
            return Err(Fail::new(
                DEADBOLT_ERR_LIMIT,
                format!("more than {MAX_HANDLES} buckets opened in one transaction"),
            ));
        }
        self.buckets.push(Some(b));
        let h = self.buckets.len() as u64;
        self.bucket_index.insert((parent, name.to_vec()), h);
        Ok(h)
    }

    /// Forget `(parent, name)` (deleted): its handle fails from now on.
    pub fn drop_bucket(&mut self, parent: u64, name: &[u8]) {
        if let Some(h) = self.bucket_index.remove(&(parent, name.to_vec())) {
            self.buckets[(h - 1) as usize] = None;
        }
    }

    pub fn bucket(&self, h: u64) -> Result<Bucket<'static>, Fail> {
        self.tx()?;
        let b = usize::try_from(h)
            .ok()
            .and_then(|h| h.checked_sub(1))
            .and_then(|i| self.buckets.get(i).copied().flatten());
        b.ok_or_else(|| Fail::new(DEADBOLT_ERR_BAD_HANDLE, format!("invalid bucket {h:#x}")))
    }

    pub fn add_cursor(&mut self, c: CursorKind) -> Result<u64, Fail> {
        let idx = match self.cursor_free.pop() {
            Some(i) => i as usize,
            None => {
                if self.cursors.len() >= MAX_HANDLES {
                    return Err(Fail::new(
                        DEADBOLT_ERR_LIMIT,
                        format!("more than {MAX_HANDLES} live cursors in one transaction"),
                    ));
                }
                self.cursors.push(CursorSlot {
                    gen: 1,
                    cur: None,
                    key: Vec::new(),
                    val: Vec::new(),
                });
                self.cursors.len() - 1
            }
        };
        let s = &mut self.cursors[idx];
        s.cur = Some(c);
        Ok((u64::from(s.gen) << 32) | (idx as u64 + 1))
    }

    fn cursor_index(&self, h: u64) -> Result<usize, Fail> {
        let bad = || Fail::new(DEADBOLT_ERR_BAD_HANDLE, format!("invalid cursor {h:#x}"));
        let idx = ((h & 0xffff_ffff) as usize)
            .checked_sub(1)
            .ok_or_else(bad)?;
        match self.cursors.get(idx) {
            Some(s) if s.gen == (h >> 32) as u32 && s.cur.is_some() => Ok(idx),
            _ => Err(bad()),
        }
    }

    pub fn cursor(&mut self, h: u64) -> Result<&mut CursorSlot, Fail> {
        self.tx()?;
        let i = self.cursor_index(h)?;
        Ok(&mut self.cursors[i])
    }

    pub fn free_cursor(&mut self, h: u64) -> Result<(), Fail> {
        let i = self.cursor_index(h)?;
        let s = &mut self.cursors[i];
        s.cur = None;
        s.gen = s.gen.wrapping_add(1).max(1);
        s.key = Vec::new();
        s.val = Vec::new();
        self.cursor_free.push(i as u32);
        Ok(())
    }

    /// Commit or roll back, after dropping every bucket and cursor that borrows the `Tx`.
    pub fn finish(&mut self, commit: bool) -> Result<(), Fail> {
        self.tx()?;
        if self.lent {
            return Err(Fail::new(
                crate::error::DEADBOLT_ERR_INVALID_ARGUMENT,
                "a batch's transaction is committed by the batch",
            ));
        }
        self.cursors.clear();
        self.buckets.clear();
        self.bucket_index.clear();
        let p = std::mem::replace(&mut self.tx, std::ptr::null_mut());
        // SAFETY: `p` is the non-null `Box` of `new` (checked by `tx()` above), now owned
        // here alone: the state's pointer is NULL, and the buckets and cursors that borrowed
        // it were dropped just above.
        let tx = unsafe { Box::from_raw(p) };
        if commit {
            tx.commit()?;
        } else {
            tx.rollback();
        }
        Ok(())
    }
}

impl Drop for TxState {
    fn drop(&mut self) {
        self.cursors.clear();
        self.buckets.clear();
        if !self.tx.is_null() && !self.lent {
            let p = std::mem::replace(&mut self.tx, std::ptr::null_mut());
            // SAFETY: as in `finish`: the live `Box` of `new`, its borrowers dropped above.
            // `db` (the Arc the Tx borrows) is a field, dropped after this body.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
