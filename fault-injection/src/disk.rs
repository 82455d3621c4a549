//! The simulated disk: an implementation of deadbolt's [`Storage`] trait that keeps
//!
//! * the **durable image** (what a restarted machine finds after a power cut, if nothing
//!   unsynced survived),
//! * the **pending** writes and length changes issued since the last successful sync, in order
//!   (the unsynced window `U_k` of the fault model), and
//! * the **current** bytes, i.e. what the OS shows a reader (everything issued).
//!
//! Every mutating call (`write_at`, `set_len`, `sync_data`, `sync_dir`, `create`) is numbered
//! and is a potential crash point. When the [`FaultPlan`] says to crash after op `k`, the disk
//! freezes its state ([`CrashState`]) and fails every later call, as if the process had died;
//! the harness then builds the image a restarted machine would see with [`crate::crash`].
//!
//! Faults outside a crash: failing syncs (F7, with the fsyncgate kernel model), failing writes,
//! set_len, create and reads including disk full (F8), lost writes (F12) and misdirected writes
//! (F11).
//!
//! `create` models the real one (a temporary file written and synced, renamed over the empty
//! file, the directory synced) as a single op: no crash can see a part of the image. A crash
//! point before it finds the file empty (or absent, F6); one after it finds the whole image,
//! durable with its directory entry. The real intermediate state (renamed, directory not yet
//! synced: a power cut shows the old empty file or the whole new one) yields no image that
//! those two points do not, since the engine issues nothing between. Only a failed directory
//! sync leaves that state behind: then the image is in place but its entry may still vanish.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use deadbolt::storage::VecView;
use deadbolt::{Storage, View};

use crate::image::apply_pending;
// Re-exported: `SimDisk::new` takes a `Media`, a `LogOp` carries a `Fate` and `state_now` returns
// a `CrashState`, so a user of the disk (and the tests) finds them here.
pub use crate::image::{CrashState, Fate, Media, Pending};
use crate::rng::{Digest, Rng};

/// A mutating operation as recorded in the operation log.
#[derive(Clone, Debug)]
pub enum LogOp {
    Write {
        off: u64,
        data: Vec<u8>,
        fate: Fate,
    },
    SetLen(u64),
    Sync,
    SyncDir,
    /// `create`: when `placed`, the whole `data` was renamed into place (durable as a file; its
    /// directory entry durable only if the op succeeded). Not placed: it failed before the
    /// rename and changed nothing.
    Create {
        data: Vec<u8>,
        placed: bool,
    },
}

/// The outcome of one logged op (errors injected or crash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    Ok,
    Failed,
}

/// Faults scheduled for one disk lifetime. Counters are 1-based ("the n-th call").
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Crash (freeze) after this many mutating ops have been issued; `Some(0)` freezes at once.
    pub crash_after: Option<u64>,
    /// The n-th `sync_data` returns EIO (F7); unsynced sectors are persisted, dropped but still
    /// served, or dropped, and the next sync succeeds without rewriting them.
    pub fail_sync: Option<u64>,
    /// The n-th `write_at` fails with EIO (F8); `persistent` makes every later write fail too.
    pub fail_write: Option<(u64, bool)>,
    /// The n-th `set_len` fails with EIO (F8).
    pub fail_set_len: Option<(u64, bool)>,
    /// The n-th `view` fails with EIO (read error, F8); `persistent` makes every later one fail.
    pub fail_view: Option<(u64, bool)>,
    /// The n-th `view` reads one sector as zeros (a controller that zero-fills a sector it could
    /// not read, F9 during operation): a private copy of the bytes with sector `s % sectors`
    /// zeroed, while `len()` stays honest. Later views are healthy (the fault is transient).
    pub zero_view: Option<(u64, u64)>,
    /// The n-th `view` is short: it shows only the first `m` bytes (at most the length) while
    /// `len()` reports the whole file. The engine must treat it as an error or as a shorter file,
    /// never index past it.
    pub short_view: Option<(u64, u64)>,
    /// Writes or growth past this many bytes fail with "no space left" (ENOSPC, F8).
    pub capacity: Option<u64>,
    /// The n-th `write_at` is lost (F12).
    pub lose_write: Option<u64>,
    /// The n-th `write_at` is misdirected to another sector-aligned offset (F11).
    pub misdirect_write: Option<u64>,
    /// The n-th `create` fails with EIO (F8): before its rename (nothing changes), or with
    /// `true` in the directory sync after it (the image is in place, its directory entry may
    /// not survive a power cut).
    pub fail_create: Option<(u64, bool)>,
}

struct Inner {
    durable: Vec<u8>,
    current: Current,
    pending: Vec<Pending>,
    dir_synced: bool,
    ops: u64,
    writes: u64,
    /// Bytes passed to `write_at` (what the engine asked to write, whatever its fate).
    bytes_written: u64,
    set_lens: u64,
    syncs: u64,
    views: u64,
    creates: u64,
    write_failing: bool,
    set_len_failing: bool,
    view_failing: bool,
    frozen: Option<CrashState>,
    injected_errors: u64,
    log: Vec<(LogOp, OpResult)>,
    record_log: bool,
    digest: Digest,
    crash_after: Option<u64>,
    view_cache: Option<Arc<dyn View>>,
    /// Views handed out over the shared mapping, with their lengths (dead ones pruned).
    live_views: Vec<(Weak<SharedView>, usize)>,
    /// Zeroed-sector and short views returned (faults the engine is not told about).
    silent_read_faults: u64,
    /// Shrinks that cut bytes a live view could still reach (poisoned, see [`POISON`]): the
    /// new length of each.
    cuts: Vec<u64>,
    rng: Rng,
}

/// The simulated disk. Cheap to create; all state behind one mutex.
pub struct SimDisk {
    media: Media,
    plan: FaultPlan,
    inner: Mutex<Inner>,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected I/O error: {what}"))
}

fn enospc() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "injected: no space left on device",
    )
}

fn crashed_err() -> io::Error {
    io::Error::other("simulated machine is down (crash point passed)")
}

impl SimDisk {
    /// A disk whose durable (and current) content is `image`, a file that already exists in a
    /// durable directory entry when `image` is non-empty.
    pub fn new(image: Vec<u8>, media: Media, plan: FaultPlan, seed: u64) -> SimDisk {
        let dir_synced = !image.is_empty();
        let frozen_at_start = plan.crash_after == Some(0);
        let crash_after = plan.crash_after;
        let d = SimDisk {
            media,
            plan,
            inner: Mutex::new(Inner {
                current: Current::new(&image),
                durable: image,
                pending: Vec::new(),
                dir_synced,
                ops: 0,
                writes: 0,
                bytes_written: 0,
                set_lens: 0,
                syncs: 0,
                views: 0,
                creates: 0,
                write_failing: false,
                set_len_failing: false,
                view_failing: false,
                frozen: None,
                injected_errors: 0,
                log: Vec::new(),
                record_log: false,
                digest: Digest::default(),
                crash_after,
                view_cache: None,
                live_views: Vec::new(),
                silent_read_faults: 0,
                cuts: Vec::new(),
                rng: Rng::new(seed),
            }),
        };
        if frozen_at_start {
            let mut g = d.inner.lock().unwrap();
            let st = snapshot(&g);
            g.frozen = Some(st);
        }
        d
    }

    /// The disk a machine finds after a *process* crash in state `st` (F1): the page cache
    /// still holds every write the process issued, but only `st.durable` is on the media; what
    /// was pending stays pending, so a power cut during the next process's recovery can still
    /// lose or tear it.
    pub fn after_process_crash(
        st: &CrashState,
        media: Media,
        plan: FaultPlan,
        seed: u64,
    ) -> SimDisk {
        let d = SimDisk::new(st.durable.clone(), media, plan, seed);
        {
            let mut g = d.inner.lock().unwrap();
            g.current = Current::new(&st.current);
            g.pending = st.pending.clone();
            g.dir_synced = st.dir_synced;
        }
        d
    }

    /// Move the crash point: crash after op `n` (counted from the disk's creation).
    pub fn set_crash_after(&self, n: Option<u64>) {
        self.inner.lock().unwrap().crash_after = n;
    }

    /// Keep a full copy of every mutating op (needed to enumerate crash points afterwards).
    pub fn record_log(&self, on: bool) {
        self.inner.lock().unwrap().record_log = on;
    }

    pub fn media(&self) -> Media {
        self.media
    }

    /// Mutating ops issued so far.
    pub fn ops(&self) -> u64 {
        self.inner.lock().unwrap().ops
    }

    pub fn syncs(&self) -> u64 {
        self.inner.lock().unwrap().syncs
    }

    /// Calls so far: (write_at, set_len, sync_data).
    pub fn counts(&self) -> (u64, u64, u64) {
        let g = self.inner.lock().unwrap();
        (g.writes, g.set_lens, g.syncs)
    }

    /// Bytes the engine passed to `write_at` so far (the open-cost invariant's measure of what
    /// a commit wrote).
    pub fn bytes_written(&self) -> u64 {
        self.inner.lock().unwrap().bytes_written
    }

    /// `create` calls so far (refusals of a non-empty file not counted).
    pub fn creates(&self) -> u64 {
        self.inner.lock().unwrap().creates
    }

    /// Injected errors returned to the caller so far (F7/F8).
    pub fn injected_errors(&self) -> u64 {
        self.inner.lock().unwrap().injected_errors
    }

    /// The crash state, if the crash point was reached.
    pub fn crashed(&self) -> Option<CrashState> {
        self.inner.lock().unwrap().frozen.clone()
    }

    pub fn is_crashed(&self) -> bool {
        self.inner.lock().unwrap().frozen.is_some()
    }

    /// The state now, as a crash right now would see it.
    pub fn state_now(&self) -> CrashState {
        let g = self.inner.lock().unwrap();
        g.frozen.clone().unwrap_or_else(|| snapshot(&g))
    }

    pub fn durable(&self) -> Vec<u8> {
        self.inner.lock().unwrap().durable.clone()
    }

    pub fn current(&self) -> Vec<u8> {
        self.inner.lock().unwrap().current.bytes().to_vec()
    }

    /// The current length (also after the crash point, unlike `Storage::len`).
    pub fn current_len(&self) -> u64 {
        self.inner.lock().unwrap().current.len() as u64
    }

    /// `view` calls so far (failed ones included).
    pub fn views(&self) -> u64 {
        self.inner.lock().unwrap().views
    }

    /// Zeroed-sector and short views returned so far (read faults the engine is not told of).
    pub fn silent_read_faults(&self) -> u64 {
        self.inner.lock().unwrap().silent_read_faults
    }

    /// Shrinks so far that cut off bytes a live view still reached: those bytes now read as
    /// [`POISON`] through the view, where a real mapping would raise SIGBUS.
    pub fn shrinks_under_views(&self) -> u64 {
        self.inner.lock().unwrap().cuts.len() as u64
    }

    /// Whether a shrink under live views after the first `since` of them cut the file below
    /// `len` (a reader whose view was `len` bytes long may have read poison).
    pub fn cut_below(&self, since: u64, len: u64) -> bool {
        let g = self.inner.lock().unwrap();
        g.cuts.iter().skip(since as usize).any(|&c| c < len)
    }

    pub fn pending_len(&self) -> usize {
        self.inner.lock().unwrap().pending.len()
    }

    pub fn take_log(&self) -> Vec<(LogOp, OpResult)> {
        std::mem::take(&mut self.inner.lock().unwrap().log)
    }

    /// Digest of the operation log so far (offsets, lengths, data, results).
    pub fn digest(&self) -> u64 {
        self.inner.lock().unwrap().digest.finish()
    }

    /// Count one mutating op; freeze if it is the crash point. Returns true when the machine is
    /// already down (the op must not take effect).
    fn begin_op(&self, g: &mut Inner) -> bool {
        g.frozen.is_some()
    }

    fn end_op(&self, g: &mut Inner, op: LogOp, res: OpResult) {
        g.ops += 1;
        let mut d = std::mem::take(&mut g.digest);
        match &op {
            LogOp::Write { off, data, .. } => {
                d.u64(1);
                d.u64(*off);
                d.u64(crate::rng::hash_bytes(data));
            }
            LogOp::SetLen(n) => {
                d.u64(2);
                d.u64(*n);
            }
            LogOp::Sync => d.u64(3),
            LogOp::SyncDir => d.u64(4),
            LogOp::Create { data, placed } => {
                d.u64(5);
                d.u64(*placed as u64);
                d.u64(data.len() as u64);
                d.u64(crate::rng::hash_bytes(data));
            }
        }
        d.u64(res as u64);
        g.digest = d;
        if g.record_log {
            g.log.push((op, res));
        }
        if Some(g.ops) == g.crash_after {
            let st = snapshot(g);
            g.frozen = Some(st);
        }
    }

    /// The write that fails (F8): it may still have written a sector-aligned prefix, which is
    /// pending like any write.
    fn fail_write(&self, g: &mut Inner, offset: u64, data: &[u8]) -> io::Result<()> {
        let s = self.media.sector;
        let n = if g.rng.chance(0.5) {
            let sectors = data.len().div_ceil(s);
            (g.rng.below_usize(sectors + 1) * s).min(data.len())
        } else {
            0
        };
        if n > 0 {
            let part = data[..n].to_vec();
            g.current.write(offset, &part)?;
            g.pending.push(Pending::Write {
                off: offset,
                data: part,
                fate: Fate::Normal,
            });
        }
        g.injected_errors += 1;
        let op = LogOp::Write {
            off: offset,
            data: data[..n].to_vec(),
            fate: Fate::Normal,
        };
        self.end_op(g, op, OpResult::Failed);
        Ok(())
    }

    /// Where the current write (`len` bytes at `offset`, ending at `end`) lands: lost (F12) or
    /// misdirected to another sector-aligned offset inside the file (F11) when the plan says so.
    fn fate(&self, g: &mut Inner, offset: u64, len: usize, end: u64) -> Fate {
        let mut fate = Fate::Normal;
        if self.plan.lose_write == Some(g.writes) {
            fate = Fate::Lost;
        }
        if self.plan.misdirect_write == Some(g.writes) {
            let s = self.media.sector as u64;
            let file_len = g.current.len().max(end as usize) as u64;
            let slots = file_len.saturating_sub(len as u64) / s;
            let to = g.rng.below(slots + 1) * s;
            if to != offset {
                fate = Fate::Misdirected(to);
            }
        }
        fate
    }
}

fn snapshot(g: &Inner) -> CrashState {
    CrashState {
        durable: g.durable.clone(),
        pending: g.pending.clone(),
        current: g.current.bytes().to_vec(),
        dir_synced: g.dir_synced,
        ops: g.ops,
    }
}

impl Storage for SimDisk {
    fn len(&self) -> io::Result<u64> {
        let g = self.inner.lock().unwrap();
        if g.frozen.is_some() {
            return Err(crashed_err());
        }
        Ok(g.current.len() as u64)
    }

    fn view(&self) -> io::Result<Arc<dyn View>> {
        let mut g = self.inner.lock().unwrap();
        if g.frozen.is_some() {
            return Err(crashed_err());
        }
        g.views += 1;
        if g.view_failing {
            g.injected_errors += 1;
            return Err(eio("read"));
        }
        if let Some((n, persistent)) = self.plan.fail_view {
            if g.views == n {
                g.view_failing = persistent;
                g.injected_errors += 1;
                return Err(eio("read"));
            }
        }
        let n = g.views;
        let len = g.current.len();
        if let Some((_, s)) = self.plan.zero_view.filter(|z| z.0 == n) {
            // A private copy: the zero-filled sector is what this one read returned, not what
            // the page cache holds.
            g.silent_read_faults += 1;
            let mut bytes = g.current.bytes().to_vec();
            let sector = self.media.sector;
            let sectors = len.div_ceil(sector).max(1);
            let start = (s as usize % sectors) * sector;
            let end = (start + sector).min(len);
            if start < end {
                bytes[start..end].fill(0);
            }
            return Ok(Arc::new(VecView(bytes)));
        }
        if let Some((_, m)) = self.plan.short_view.filter(|z| z.0 == n) {
            g.silent_read_faults += 1;
            let short = (m as usize).min(len);
            return Ok(g.shared_view(short));
        }
        if let Some(v) = &g.view_cache {
            return Ok(v.clone());
        }
        let v = g.shared_view(len);
        g.view_cache = Some(v.clone());
        Ok(v)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap();
        if self.begin_op(&mut g) {
            return Err(crashed_err());
        }
        g.writes += 1;
        g.bytes_written += data.len() as u64;
        g.view_cache = None;
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        let mut fail = g.write_failing;
        if let Some((n, persistent)) = self.plan.fail_write {
            if g.writes == n {
                fail = true;
                g.write_failing = persistent;
            }
        }
        if fail {
            self.fail_write(&mut g, offset, data)?;
            return Err(eio("write"));
        }
        if self.plan.capacity.is_some_and(|cap| end > cap) {
            g.injected_errors += 1;
            let op = LogOp::Write {
                off: offset,
                data: Vec::new(),
                fate: Fate::Normal,
            };
            self.end_op(&mut g, op, OpResult::Failed);
            return Err(enospc());
        }
        let fate = self.fate(&mut g, offset, data.len(), end);
        if let Err(e) = g.current.write(offset, data) {
            // Past the simulated disk's bound: refused like a full disk, nothing written.
            g.injected_errors += 1;
            let op = LogOp::Write {
                off: offset,
                data: Vec::new(),
                fate: Fate::Normal,
            };
            self.end_op(&mut g, op, OpResult::Failed);
            return Err(e);
        }
        g.pending.push(Pending::Write {
            off: offset,
            data: data.to_vec(),
            fate,
        });
        self.end_op(
            &mut g,
            LogOp::Write {
                off: offset,
                data: data.to_vec(),
                fate,
            },
            OpResult::Ok,
        );
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap();
        if self.begin_op(&mut g) {
            return Err(crashed_err());
        }
        g.set_lens += 1;
        g.view_cache = None;
        let mut fail = g.set_len_failing;
        if let Some((n, persistent)) = self.plan.fail_set_len {
            if g.set_lens == n {
                fail = true;
                g.set_len_failing = persistent;
            }
        }
        let full = self.plan.capacity.is_some_and(|c| len > c) || len > BOUND as u64;
        if fail || full {
            g.injected_errors += 1;
            self.end_op(&mut g, LogOp::SetLen(len), OpResult::Failed);
            return Err(if full { enospc() } else { eio("set_len") });
        }
        g.set_current_len(len as usize);
        g.pending.push(Pending::SetLen(len));
        self.end_op(&mut g, LogOp::SetLen(len), OpResult::Ok);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap();
        if self.begin_op(&mut g) {
            return Err(crashed_err());
        }
        g.syncs += 1;
        if self.plan.fail_sync == Some(g.syncs) {
            // fsyncgate: each unsynced sector is persisted, dropped but still served by reads,
            // or dropped (reads show the durable bytes again). The pages are then marked clean,
            // so the next sync succeeds without writing them.
            let pending = std::mem::take(&mut g.pending);
            let st = CrashState {
                durable: g.durable.clone(),
                pending,
                current: g.current.bytes().to_vec(),
                dir_synced: g.dir_synced,
                ops: g.ops,
            };
            let mut rng = g.rng.fork();
            let (img, choices) = crate::crash::fsync_failure_outcome(&st, &self.media, &mut rng);
            // Dropped sectors: reads show the durable bytes again.
            // Written in place: live views see the old bytes come back, as through a mapping.
            let s = self.media.sector;
            let len = g.current.len();
            for (sector, dropped) in choices {
                if dropped && (sector as usize * s) < len {
                    let start = sector as usize * s;
                    let end = (start + s).min(len);
                    let old: Vec<u8> = (start..end)
                        .map(|i| img.get(i).copied().unwrap_or(0))
                        .collect();
                    g.current.write(start as u64, &old)?;
                }
            }
            g.durable = img;
            g.view_cache = None;
            g.injected_errors += 1;
            self.end_op(&mut g, LogOp::Sync, OpResult::Failed);
            return Err(eio("fsync"));
        }
        let pending = std::mem::take(&mut g.pending);
        let mut durable = std::mem::take(&mut g.durable);
        apply_pending(&mut durable, &pending);
        // The durable length is the current length (fdatasync persists the size).
        durable.resize(g.current.len(), 0);
        g.durable = durable;
        self.end_op(&mut g, LogOp::Sync, OpResult::Ok);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap();
        if self.begin_op(&mut g) {
            return Err(crashed_err());
        }
        g.dir_synced = true;
        self.end_op(&mut g, LogOp::SyncDir, OpResult::Ok);
        Ok(())
    }

    fn create(&self, image: &[u8]) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap();
        if self.begin_op(&mut g) {
            return Err(crashed_err());
        }
        if g.current.len() != 0 {
            // Refused like the real one: nothing written, no op issued.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "create: the file is not empty",
            ));
        }
        g.creates += 1;
        g.view_cache = None;
        let full =
            self.plan.capacity.is_some_and(|c| image.len() as u64 > c) || image.len() > BOUND;
        let (fail, late) = match self.plan.fail_create {
            Some((n, late)) if n == g.creates => (true, late),
            // A disk failing every write fails the temporary file's too.
            _ => (g.write_failing, false),
        };
        if full || (fail && !late) {
            // The temporary file could not be written or synced; it is removed and the path
            // still names the empty file.
            g.injected_errors += 1;
            self.end_op(
                &mut g,
                LogOp::Create {
                    data: Vec::new(),
                    placed: false,
                },
                OpResult::Failed,
            );
            return Err(if full { enospc() } else { eio("create") });
        }
        // The rename puts a new file in place (`image::apply_create`); the current bytes are
        // rewritten in the one mapping (the old file was empty, so no view reaches into it).
        g.durable = image.to_vec();
        g.current.write(0, image)?;
        g.pending.clear();
        let op = LogOp::Create {
            data: image.to_vec(),
            placed: true,
        };
        if fail {
            // The directory sync after the rename failed: the new entry may still be lost in a
            // power cut (F6, which here stands for the old empty file too).
            g.dir_synced = false;
            g.injected_errors += 1;
            self.end_op(&mut g, op, OpResult::Failed);
            return Err(eio("create: directory sync"));
        }
        g.dir_synced = true;
        self.end_op(&mut g, op, OpResult::Ok);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The current bytes, and the views over them.
//
// Why one reserved mapping per disk: the engine reads through `Storage::view()`, and a real
// `FileStorage` view is a MAP_SHARED mapping, so a reader that holds an old view sees every
// later write to the same bytes, and a reader that touches bytes past a truncated end faults.
// A private copy per view (what this disk did before) can show neither a page reused under a
// live reader nor a file truncated under one. The current bytes therefore live in one
// anonymous mapping of `BOUND` bytes, reserved when the disk is created (address space only:
// `MAP_NORESERVE`, pages are backed on first touch; mappings are reused, see `POOL_SIZE`).
// It never moves or grows, so a view is just (mapping, length): a stable slice into it, and
// writes update it in place, where every live view sees them. The length is fixed per view,
// like a mapping's, and bytes past the file's end are handled explicitly: growth zero-fills,
// and a shrink that cuts bytes a live view still reaches overwrites them with `POISON` (a
// slice cannot fault like SIGBUS, but a reader that touches the cut-off range fails its
// checksums or its comparison with the model, and the disk counts the event, so the harness
// can name it). Crash images are copies of `[0, len)` as before, so the durable image
// semantics do not change. Each view still costs no copy, where the private copies cost one
// per commit.

/// The largest file the simulated disk holds (reserved address space per disk, not memory).
/// A write or growth past it fails like a full disk; no workload comes near it (tier 2's
/// largest files are a few MiB).
pub const BOUND: usize = 1 << 30;

/// What a live view reads where the file was truncated under it (a real mapping: SIGBUS).
pub const POISON: &[u8; 8] = b"SIGBUS!!";

/// The reserved mapping. Every access goes through the three methods below, the only `unsafe`
/// code of the harness.
struct Backing {
    /// `None` only while being dropped (the mapping goes back to the pool).
    map: Option<memmap2::MmapRaw>,
    /// The highest byte offset ever written (what a reuse of the mapping has touched).
    touched: AtomicUsize,
}

/// Mappings kept per thread for reuse, and the most a pooled one may have touched. Mapping and
/// unmapping 185,000 reservations (tier 1 makes one disk per image) cost more system time than
/// the whole tier (the page faults, and a TLB shootdown per munmap in a multi-threaded process),
/// so a disk's mapping is reused by the thread's next disk: its stale bytes are never visible,
/// since `Current` writes every byte of `[0, len)` (growth zero-fills) and no view of the old
/// disk is left when a mapping is pooled.
const POOL_SIZE: usize = 8;
const POOL_MAX_TOUCHED: usize = 16 << 20;

thread_local! {
    static POOL: std::cell::RefCell<Vec<memmap2::MmapRaw>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Backing {
    fn drop(&mut self) {
        let Some(map) = self.map.take() else { return };
        if self.touched.load(Ordering::Relaxed) > POOL_MAX_TOUCHED {
            return;
        }
        // During thread teardown the pool may be gone: the mapping is then simply unmapped.
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_SIZE {
                p.push(map);
            }
        });
    }
}

impl Backing {
    fn new() -> io::Result<Backing> {
        let map = match POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten() {
            Some(m) => m,
            None => memmap2::MmapOptions::new()
                .len(BOUND)
                .no_reserve_swap()
                .map_anon()?
                .into(),
        };
        Ok(Backing {
            map: Some(map),
            touched: AtomicUsize::new(0),
        })
    }

    fn map(&self) -> &memmap2::MmapRaw {
        self.map
            .as_ref()
            .expect("the mapping is present until drop")
    }

    /// The first `len` bytes (`len <= BOUND`).
    fn slice(&self, len: usize) -> &[u8] {
        assert!(len <= BOUND);
        // SAFETY: the mapping is `BOUND` bytes long, readable, and lives as long as `self`
        // (every view holds an `Arc` to it); it is never unmapped or moved while borrowed.
        // Its bytes may change while a slice is held (`copy_in` below, under the disk's mutex),
        // exactly as a MAP_SHARED file mapping changes under `FileStorage`'s views when the
        // file is written with pwrite: the engine's contract (`View`) is that it never reads
        // bytes a live snapshot can reach while they are rewritten, and a harness that finds it
        // doing so has found the bug this design exists to show. The writes go through raw
        // pointers behind a dynamic `Storage` call, never through a reference to these bytes.
        unsafe { std::slice::from_raw_parts(self.map().as_ptr(), len) }
    }

    /// Copy `data` to `off` (`off + data.len() <= BOUND`).
    #[inline(never)]
    fn copy_in(&self, off: usize, data: &[u8]) {
        let end = off.checked_add(data.len()).filter(|&e| e <= BOUND);
        let end = end.expect("a write inside the mapping");
        self.touched.fetch_max(end, Ordering::Relaxed);
        // SAFETY: in bounds (asserted), `data` is not inside the mapping (it comes from the
        // engine's buffers or the harness's), and see `slice` for readers of these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map().as_mut_ptr().add(off),
                data.len(),
            )
        }
    }

    /// Fill `[from, to)` with `pattern` repeated (its length divides 4096).
    #[inline(never)]
    fn fill(&self, from: usize, to: usize, pattern: &[u8]) {
        assert!(from <= to && to <= BOUND && !pattern.is_empty() && 4096 % pattern.len() == 0);
        let mut chunk = [0u8; 4096];
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = pattern[i % pattern.len()];
        }
        // Chunks aligned to `from`, so the pattern reads from the cut-off point on.
        for off in (from..to).step_by(chunk.len()) {
            let n = chunk.len().min(to - off);
            self.copy_in(off, &chunk[..n]);
        }
    }
}

/// The current bytes of the file: the mapping and the length.
struct Current {
    back: Arc<Backing>,
    len: usize,
}

impl Current {
    fn new(image: &[u8]) -> Current {
        let back = Arc::new(Backing::new().expect("reserving the simulated disk's mapping"));
        let mut c = Current { back, len: 0 };
        c.write(0, image)
            .expect("an initial image within the bound");
        c
    }

    fn len(&self) -> usize {
        self.len
    }

    fn bytes(&self) -> &[u8] {
        self.back.slice(self.len)
    }

    /// Write `data` at `off`, growing the file with zeros (bytes past the old end may hold
    /// poison or stale data: a file grows with zeros).
    fn write(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&e| e <= BOUND as u64)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    "past the simulated disk's bound",
                )
            })? as usize;
        let off = off as usize;
        if off > self.len {
            self.back.fill(self.len, off, &[0]);
        }
        self.back.copy_in(off, data);
        self.len = self.len.max(end);
        Ok(())
    }
}

/// A view over the shared mapping: its first `len` bytes, as they are now.
struct SharedView {
    back: Arc<Backing>,
    len: usize,
}

impl View for SharedView {
    fn bytes(&self) -> &[u8] {
        self.back.slice(self.len)
    }
}

impl Inner {
    /// A new view of the first `len` bytes, remembered while it lives (for shrinks).
    fn shared_view(&mut self, len: usize) -> Arc<dyn View> {
        let v = Arc::new(SharedView {
            back: self.current.back.clone(),
            len,
        });
        // Bounded: dead views are dropped before a new one is remembered.
        self.live_views.retain(|(w, _)| w.strong_count() > 0);
        self.live_views.push((Arc::downgrade(&v), len));
        v
    }

    /// `set_len`: growth reads as zeros; a shrink poisons what live views still reach.
    fn set_current_len(&mut self, len: usize) {
        let old = self.current.len;
        if len > old {
            self.current.back.fill(old, len, &[0]);
        } else if len < old {
            let reach = self
                .live_views
                .iter()
                .filter(|(w, _)| w.strong_count() > 0)
                .map(|&(_, l)| l)
                .max()
                .unwrap_or(0);
            if reach > len {
                self.current.back.fill(len, reach, POISON);
                self.cuts.push(len as u64);
            }
        }
        self.current.len = len;
    }
}
