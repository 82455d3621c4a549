//! The real-kernel tier of deadbolt's power-cut harness (issue 13): a FUSE file system that
//! keeps what was written but not synced in a volatile layer per file, and can "lose power".
//!
//! * Per file: a durable image and the ordered list of writes and size changes issued since the
//!   last `fsync`/`fdatasync` ([`fault_injection::image::Pending`], the simulated disk's own
//!   type). A sync applies them to the durable image.
//! * The (single, root) directory: the current entries, the durable entries and the ordered
//!   list of creations, renames and unlinks since the last directory fsync. The rule is strict
//!   POSIX, not ext4's: only `fsyncdir` makes an entry durable; an fsync of a file does not
//!   make its name durable.
//! * Power loss ([`FsState::power_loss`]): each file's image is rebuilt by the harness's crash
//!   builder ([`fault_injection::crash::Window`]) in one of the [`Loss`] modes, the directory
//!   keeps its durable entries plus a prefix of its pending operations (a journal commits them
//!   in order; none under [`Loss::DropAll`]), and files no entry names are gone.
//!
//! The kernel goes through its page cache (no `direct_io`, no writeback cache: a `write(2)`
//! reaches this layer before it returns, so a SIGKILLed process has nothing left in flight once
//! it is reaped), so `FileStorage`'s read-only mmap reads through FUSE `read`. `flock` is not
//! forwarded (the init does not ask for `FUSE_FLOCK_LOCKS`): the kernel keeps flock locks
//! locally for the mount, which is what two processes on one machine need.
//!
//! A [`Mount`] owns one mount; a power cut is: stop the writer, [`Mount::unmount`] (which
//! drops the kernel's page cache with the superblock), [`FsState::power_loss`], mount again.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fault_injection::crash::{Mode, Window};
use fault_injection::image::{apply_pending, apply_write, CrashState, Fate, Media, Pending};
use fault_injection::rng::Rng;
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Largest file the layer accepts (bytes); beyond it writes and size changes fail with EFBIG.
pub const MAX_FILE: u64 = 1 << 30;
/// Most bytes of unsynced writes kept over all files; beyond it writes fail with ENOSPC.
pub const MAX_PENDING_BYTES: usize = 512 << 20;
/// Most unsynced operations per file; beyond it writes fail with ENOSPC.
pub const MAX_PENDING_OPS: usize = 1 << 20;
/// Most files (inodes, live or only durable) in the file system.
pub const MAX_FILES: usize = 4096;
/// Longest file name.
pub const MAX_NAME: usize = 255;
/// How long an unmount retries while the mount is still busy.
pub const UNMOUNT_PATIENCE: Duration = Duration::from_secs(10);

/// How much of the volatile layer survives a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Nothing unsynced survives: every file is its durable image, the directory its durable
    /// entries.
    DropAll,
    /// A random ordered prefix of each file's unsynced ops (F2; growth reads as zeros or
    /// garbage) and of the directory's.
    Prefix,
    /// Each unsynced sector old or new, in any combination (F3), with a random length among
    /// the candidates (F5).
    SectorSubset,
    /// Each unsynced sector old, new or garbage, and sub-sector tears (F4, non-atomic sectors).
    Torn,
}

impl Loss {
    pub const ALL: [Loss; 4] = [Loss::DropAll, Loss::Prefix, Loss::SectorSubset, Loss::Torn];

    pub fn name(self) -> &'static str {
        match self {
            Loss::DropAll => "drop-all",
            Loss::Prefix => "prefix",
            Loss::SectorSubset => "sector-subset",
            Loss::Torn => "torn",
        }
    }
}

/// One regular file.
#[derive(Clone, Debug, Default)]
struct Node {
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// What readers see: `durable` with `pending` applied.
    current: Vec<u8>,
    perm: u16,
}

/// A directory operation not yet made durable by a directory fsync.
#[derive(Clone, Debug)]
enum DirOp {
    Link(OsString, u64),
    Unlink(OsString),
    Rename(OsString, OsString),
}

fn apply_dir_op(dir: &mut BTreeMap<OsString, u64>, op: &DirOp) {
    match op {
        DirOp::Link(n, ino) => {
            dir.insert(n.clone(), *ino);
        }
        DirOp::Unlink(n) => {
            dir.remove(n);
        }
        DirOp::Rename(from, to) => {
            if let Some(ino) = dir.remove(from) {
                dir.insert(to.clone(), ino);
            }
        }
    }
}

/// What the layer saw (for the test's report and its coverage assertions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub writes: u64,
    pub reads: u64,
    pub fsyncs: u64,
    pub fsyncdirs: u64,
    pub grows: u64,
    pub shrinks: u64,
    pub creates: u64,
    pub renames: u64,
    pub unlinks: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.writes += o.writes;
        self.reads += o.reads;
        self.fsyncs += o.fsyncs;
        self.fsyncdirs += o.fsyncdirs;
        self.grows += o.grows;
        self.shrinks += o.shrinks;
        self.creates += o.creates;
        self.renames += o.renames;
        self.unlinks += o.unlinks;
    }
}

/// Power fails at the `at`-th sync (1-based, file and directory syncs counted together since
/// the trap was set): before it takes effect, or just after (the caller never hears back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTrap {
    pub at: u64,
    pub after: bool,
}

/// The whole file system: the root directory and its files.
pub struct FsState {
    nodes: BTreeMap<u64, Node>,
    dir_current: BTreeMap<OsString, u64>,
    dir_durable: BTreeMap<OsString, u64>,
    dir_pending: Vec<DirOp>,
    next_ino: u64,
    pending_bytes: usize,
    /// Power is gone: every mutating call fails with EIO and changes nothing.
    frozen: bool,
    trap: Option<SyncTrap>,
    syncs_since_trap: u64,
    trap_fired: Option<Sender<u64>>,
    /// Replies of the trapped sync, never sent while the state is frozen.
    held: Vec<ReplyEmpty>,
    pub counters: Counters,
}

impl Default for FsState {
    fn default() -> Self {
        FsState::new()
    }
}

const ROOT: u64 = 1;
const TTL: Duration = Duration::ZERO;

impl FsState {
    /// An empty file system (a root directory, durable, with no entries).
    pub fn new() -> FsState {
        FsState {
            nodes: BTreeMap::new(),
            dir_current: BTreeMap::new(),
            dir_durable: BTreeMap::new(),
            dir_pending: Vec::new(),
            next_ino: ROOT + 1,
            pending_bytes: 0,
            frozen: false,
            trap: None,
            syncs_since_trap: 0,
            trap_fired: None,
            held: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Arm a power failure at a sync; `fired` hears the sync's number when it happens.
    pub fn set_trap(&mut self, trap: SyncTrap, fired: Sender<u64>) {
        self.trap = Some(trap);
        self.syncs_since_trap = 0;
        self.trap_fired = Some(fired);
    }

    /// Syncs seen since the trap was set (or since the mount, without one).
    pub fn syncs(&self) -> u64 {
        self.syncs_since_trap
    }

    /// Cut power now: from here on nothing changes.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// Bytes of unsynced data over all files.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Number of unsynced directory operations.
    pub fn dir_pending(&self) -> usize {
        self.dir_pending.len()
    }

    /// The names in the directory as a reader sees them now.
    pub fn names(&self) -> Vec<OsString> {
        self.dir_current.keys().cloned().collect()
    }

    /// What a restarted machine finds: a new, unfrozen state in which everything is durable.
    pub fn power_loss(&self, loss: Loss, rng: &mut Rng) -> FsState {
        let mut dir = self.dir_durable.clone();
        let keep = match loss {
            Loss::DropAll => 0,
            _ => rng.below_usize(self.dir_pending.len() + 1),
        };
        for op in &self.dir_pending[..keep] {
            apply_dir_op(&mut dir, op);
        }
        let mut nodes = BTreeMap::new();
        for ino in dir.values() {
            if nodes.contains_key(ino) {
                continue;
            }
            let Some(n) = self.nodes.get(ino) else {
                continue;
            };
            let st = CrashState {
                durable: n.durable.clone(),
                pending: n.pending.clone(),
                current: n.current.clone(),
                // The directory entry is this layer's business (above), not the window's.
                dir_synced: true,
                ops: 0,
            };
            let image = match loss {
                Loss::DropAll => n.durable.clone(),
                Loss::Prefix => Window::new(&st, Media::default()).random(Mode::Prefix, rng),
                Loss::SectorSubset => Window::new(&st, Media::default()).random(Mode::Reorder, rng),
                Loss::Torn => {
                    let media = Media {
                        sector: 512,
                        psow: true,
                        sector_atomic: false,
                    };
                    Window::new(&st, media).random(Mode::Torn, rng)
                }
            };
            nodes.insert(
                *ino,
                Node {
                    durable: image.clone(),
                    pending: Vec::new(),
                    current: image,
                    perm: n.perm,
                },
            );
        }
        FsState {
            nodes,
            dir_current: dir.clone(),
            dir_durable: dir,
            next_ino: self.next_ino,
            ..FsState::new()
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let now = SystemTime::UNIX_EPOCH;
        let (kind, size, perm, nlink) = if ino == ROOT {
            (FileType::Directory, 0, 0o755, 2)
        } else {
            let n = self.nodes.get(&ino)?;
            (FileType::RegularFile, n.current.len() as u64, n.perm, 1)
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Queue an unsynced op on `ino` and apply it to the readers' view.
    fn push(&mut self, ino: u64, p: Pending) -> Result<(), Errno> {
        let bytes = match &p {
            Pending::Write { data, .. } => data.len(),
            Pending::SetLen(_) => 0,
        };
        if self.pending_bytes + bytes > MAX_PENDING_BYTES {
            return Err(Errno::ENOSPC);
        }
        let n = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if n.pending.len() >= MAX_PENDING_OPS {
            return Err(Errno::ENOSPC);
        }
        let before = n.current.len();
        match &p {
            Pending::Write { off, data, .. } => apply_write(&mut n.current, *off, data),
            Pending::SetLen(len) => n.current.resize(*len as usize, 0),
        }
        match n.current.len().cmp(&before) {
            std::cmp::Ordering::Greater => self.counters.grows += 1,
            std::cmp::Ordering::Less => self.counters.shrinks += 1,
            std::cmp::Ordering::Equal => {}
        }
        n.pending.push(p);
        self.pending_bytes += bytes;
        Ok(())
    }

    /// A sync arrives: `Ok(true)` to carry it out, `Ok(false)` when the trap fired before it
    /// (power is gone, the reply is held), `Err` when power was already gone.
    fn sync_gate(&mut self) -> Result<bool, Errno> {
        if self.frozen {
            return Err(Errno::EIO);
        }
        self.syncs_since_trap += 1;
        match self.trap {
            Some(t) if t.at == self.syncs_since_trap && !t.after => {
                self.fire();
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// After a sync took effect: whether the trap fires now (after it).
    fn sync_done(&mut self) -> bool {
        match self.trap {
            Some(t) if t.at == self.syncs_since_trap && t.after => {
                self.fire();
                true
            }
            _ => false,
        }
    }

    fn fire(&mut self) {
        self.frozen = true;
        if let Some(tx) = self.trap_fired.take() {
            let _ = tx.send(self.syncs_since_trap);
        }
    }

    fn sync_file(&mut self, ino: u64) -> Result<(), Errno> {
        let n = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let bytes: usize = n
            .pending
            .iter()
            .map(|p| match p {
                Pending::Write { data, .. } => data.len(),
                Pending::SetLen(_) => 0,
            })
            .sum();
        apply_pending(&mut n.durable, &n.pending);
        n.pending.clear();
        debug_assert_eq!(n.durable, n.current);
        self.pending_bytes -= bytes;
        Ok(())
    }

    fn sync_dir(&mut self) {
        self.dir_durable = self.dir_current.clone();
        self.dir_pending.clear();
    }

    fn dir_op(&mut self, op: DirOp) {
        apply_dir_op(&mut self.dir_current, &op);
        self.dir_pending.push(op);
    }
}

/// The FUSE side: every request runs under the state's lock.
struct PowerFs {
    state: Arc<Mutex<FsState>>,
}

fn lock(m: &Mutex<FsState>) -> MutexGuard<'_, FsState> {
    // A panic inside one request must not turn every later one into a panic: the state is
    // only read by the test after the session ended, and a panic is reported there.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_name(name: &OsStr) -> Result<(), Errno> {
    if name.len() > MAX_NAME {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(())
    }
}

impl fuser::Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = lock(&self.state);
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        match st.dir_current.get(name).and_then(|ino| st.attr(*ino)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = lock(&self.state);
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = lock(&self.state);
        if ino.0 == ROOT {
            return match st.attr(ROOT) {
                Some(a) => reply.attr(&TTL, &a),
                None => reply.error(Errno::ENOENT),
            };
        }
        if st.frozen && (size.is_some() || mode.is_some()) {
            return reply.error(Errno::EIO);
        }
        if let Some(len) = size {
            if len > MAX_FILE {
                return reply.error(Errno::EFBIG);
            }
            if let Err(e) = st.push(ino.0, Pending::SetLen(len)) {
                return reply.error(e);
            }
        }
        if let Some(m) = mode {
            match st.nodes.get_mut(&ino.0) {
                // Permissions are metadata the test does not crash-check: kept at once.
                Some(n) => n.perm = (m & 0o7777) as u16,
                None => return reply.error(Errno::ENOENT),
            }
        }
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = lock(&self.state);
        if st.frozen {
            return reply.error(Errno::EIO);
        }
        if parent.0 != ROOT || !st.dir_current.contains_key(name) {
            return reply.error(Errno::ENOENT);
        }
        st.counters.unlinks += 1;
        st.dir_op(DirOp::Unlink(name.to_owned()));
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = lock(&self.state);
        if st.frozen {
            return reply.error(Errno::EIO);
        }
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        if let Err(e) = check_name(newname) {
            return reply.error(e);
        }
        if parent.0 != ROOT || newparent.0 != ROOT || !st.dir_current.contains_key(name) {
            return reply.error(Errno::ENOENT);
        }
        st.counters.renames += 1;
        st.dir_op(DirOp::Rename(name.to_owned(), newname.to_owned()));
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = lock(&self.state);
        if ino.0 != ROOT && !st.nodes.contains_key(&ino.0) {
            return reply.error(Errno::ENOENT);
        }
        // No FOPEN_DIRECT_IO: reads and the mapping go through the page cache.
        reply.opened(FileHandle(ino.0), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = lock(&self.state);
        st.counters.reads += 1;
        let Some(n) = st.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let len = n.current.len() as u64;
        let start = offset.min(len) as usize;
        let end = offset.saturating_add(size as u64).min(len) as usize;
        reply.data(&n.current[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = lock(&self.state);
        if st.frozen {
            return reply.error(Errno::EIO);
        }
        if offset.saturating_add(data.len() as u64) > MAX_FILE {
            return reply.error(Errno::EFBIG);
        }
        st.counters.writes += 1;
        let p = Pending::Write {
            off: offset,
            data: data.to_vec(),
            fate: Fate::Normal,
        };
        match st.push(ino.0, p) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // fdatasync and fsync alike make the data and the size durable (the size is needed to
        // read the data back, so fdatasync covers it too); neither makes the name durable.
        let mut st = lock(&self.state);
        match st.sync_gate() {
            Err(e) => return reply.error(e),
            Ok(false) => return st.held.push(reply),
            Ok(true) => {}
        }
        st.counters.fsyncs += 1;
        if let Err(e) = st.sync_file(ino.0) {
            return reply.error(e);
        }
        if st.sync_done() {
            return st.held.push(reply);
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        reply.opened(FileHandle(ROOT), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = lock(&self.state);
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ROOT, FileType::Directory, ".".into()),
            (ROOT, FileType::Directory, "..".into()),
        ];
        for (name, ino) in &st.dir_current {
            entries.push((*ino, FileType::RegularFile, name.clone()));
        }
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), (i + 1) as u64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = lock(&self.state);
        match st.sync_gate() {
            Err(e) => return reply.error(e),
            Ok(false) => return st.held.push(reply),
            Ok(true) => {}
        }
        st.counters.fsyncdirs += 1;
        st.sync_dir();
        if st.sync_done() {
            return st.held.push(reply);
        }
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = lock(&self.state);
        if st.frozen {
            return reply.error(Errno::EIO);
        }
        if parent.0 != ROOT {
            return reply.error(Errno::ENOENT);
        }
        if let Err(e) = check_name(name) {
            return reply.error(e);
        }
        if let Some(ino) = st.dir_current.get(name).copied() {
            // An O_CREAT open of an existing name (no O_EXCL check here: the kernel does it).
            let a = st.attr(ino).expect("a named inode exists");
            return reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(ino),
                FopenFlags::empty(),
            );
        }
        if st.nodes.len() >= MAX_FILES {
            return reply.error(Errno::ENOSPC);
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        st.nodes.insert(
            ino,
            Node {
                perm: (mode & !umask & 0o7777) as u16,
                ..Node::default()
            },
        );
        st.counters.creates += 1;
        st.dir_op(DirOp::Link(name.to_owned(), ino));
        let a = st.attr(ino).expect("just inserted");
        reply.created(
            &TTL,
            &a,
            Generation(0),
            FileHandle(ino),
            FopenFlags::empty(),
        );
    }
}

/// One mount of a [`FsState`] at a directory. Dropping it unmounts (lazily if need be).
pub struct Mount {
    session: Option<BackgroundSession>,
    state: Arc<Mutex<FsState>>,
    dir: PathBuf,
}

impl Mount {
    /// Mount `state` at `dir` (an empty directory). Fails, never skips, when /dev/fuse is
    /// missing or the kernel refuses the mount.
    pub fn start(dir: &Path, state: FsState) -> io::Result<Mount> {
        if !Path::new("/dev/fuse").exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "/dev/fuse is missing: the real-kernel tier needs the FUSE device (load the fuse module)",
            ));
        }
        let state = Arc::new(Mutex::new(state));
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::FSName("deadbolt-powercut".into()),
            MountOption::Subtype("powercut".into()),
            MountOption::DefaultPermissions,
        ];
        let fs = PowerFs {
            state: state.clone(),
        };
        let session = fuser::spawn_mount2(fs, dir, &cfg).map_err(|e| {
            io::Error::new(e.kind(), format!("mounting FUSE at {}: {e}", dir.display()))
        })?;
        Ok(Mount {
            session: Some(session),
            state,
            dir: dir.to_path_buf(),
        })
    }

    /// The state (shared with the running file system).
    pub fn state(&self) -> MutexGuard<'_, FsState> {
        lock(&self.state)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A handle that can answer the syncs a trap holds, from wherever the writer is killed.
    pub fn control(&self) -> Control {
        Control(self.state.clone())
    }

    /// Unmount and wait for the server thread; returns the final state. The kernel's page
    /// cache of the mount goes with it.
    pub fn unmount(mut self) -> io::Result<FsState> {
        lock(&self.state).held.clear();
        if let Some(s) = self.session.take() {
            // The last close of a file on the mount can trail the close(2) or the exit that
            // caused it by a moment (a thread of the closing process still ending): retry a
            // busy unmount for a bounded time before giving up.
            let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
                .map_err(io::Error::other)?;
            let deadline = std::time::Instant::now() + UNMOUNT_PATIENCE;
            loop {
                // SAFETY: `path` is a valid NUL-terminated string that outlives the call;
                // umount2 only reads it.
                let r = unsafe { libc::umount2(path.as_ptr(), 0) };
                if r == 0 {
                    break;
                }
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() > deadline {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("unmounting {}: {e}", self.dir.display()),
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Unmounted: wait for the server thread to see the end of the session.
            s.join()?;
        }
        let mut st = lock(&self.state);
        // Replies held by a trap: the caller is gone; dropping them answers EIO.
        st.held.clear();
        Ok(std::mem::take(&mut *st))
    }
}

/// See [`Mount::control`].
#[derive(Clone)]
pub struct Control(Arc<Mutex<FsState>>);

impl Control {
    /// Answer the syncs held by a fired trap with EIO (the state stays frozen). Call it after
    /// SIGKILLing their caller: a FUSE request the server has read cannot be interrupted by a
    /// signal, so the killed process waits in the kernel for this answer before it dies.
    pub fn release_held(&self) {
        lock(&self.0).held.clear();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        lock(&self.state).held.clear();
        if let Some(s) = self.session.take() {
            if s.umount_and_join().is_err() {
                let c = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes());
                if let Ok(c) = c {
                    // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
                    // umount2 only reads it.
                    unsafe {
                        libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(st: &mut FsState, ino: u64, off: u64, data: &[u8]) {
        let p = Pending::Write {
            off,
            data: data.to_vec(),
            fate: Fate::Normal,
        };
        st.push(ino, p).unwrap();
    }

    fn file(st: &mut FsState, name: &str) -> u64 {
        let ino = st.next_ino;
        st.next_ino += 1;
        st.nodes.insert(ino, Node::default());
        st.dir_op(DirOp::Link(name.into(), ino));
        ino
    }

    fn content(st: &FsState, name: &str) -> Option<Vec<u8>> {
        let ino = st.dir_current.get(OsStr::new(name))?;
        Some(st.nodes[ino].current.clone())
    }

    #[test]
    fn drop_all_keeps_exactly_what_was_synced() {
        let mut st = FsState::new();
        let a = file(&mut st, "a");
        write(&mut st, a, 0, b"durable!");
        st.sync_file(a).unwrap();
        st.sync_dir();
        write(&mut st, a, 4, b"LOST");
        st.push(a, Pending::SetLen(100)).unwrap();
        let b = file(&mut st, "b");
        write(&mut st, b, 0, b"synced, name not");
        st.sync_file(b).unwrap();
        assert_eq!(st.pending_bytes(), 4);
        let after = st.power_loss(Loss::DropAll, &mut Rng::new(1));
        assert_eq!(content(&after, "a").unwrap(), b"durable!");
        assert_eq!(
            content(&after, "b"),
            None,
            "an entry never fsynced in its directory"
        );
        assert_eq!(after.pending_bytes(), 0);
        assert!(!after.frozen());
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_sync() {
        let mut st = FsState::new();
        let old = file(&mut st, "db");
        st.sync_dir();
        let tmp = file(&mut st, ".db.tmp");
        write(&mut st, tmp, 0, b"new image");
        st.sync_file(tmp).unwrap();
        st.dir_op(DirOp::Rename(".db.tmp".into(), "db".into()));
        assert_eq!(content(&st, "db").unwrap(), b"new image");
        let lost = st.power_loss(Loss::DropAll, &mut Rng::new(2));
        assert_eq!(lost.dir_current.get(OsStr::new("db")), Some(&old));
        assert_eq!(content(&lost, "db").unwrap(), b"");
        st.sync_dir();
        let kept = st.power_loss(Loss::DropAll, &mut Rng::new(3));
        assert_eq!(content(&kept, "db").unwrap(), b"new image");
        assert_eq!(content(&kept, ".db.tmp"), None);
    }

    #[test]
    fn other_modes_stay_between_durable_and_current() {
        for seed in 0..200 {
            let mut st = FsState::new();
            let a = file(&mut st, "a");
            write(&mut st, a, 0, &[1u8; 2048]);
            st.sync_file(a).unwrap();
            st.sync_dir();
            write(&mut st, a, 512, &[2u8; 1024]);
            write(&mut st, a, 2048, &[3u8; 512]);
            for loss in [Loss::Prefix, Loss::SectorSubset] {
                let got = content(&st.power_loss(loss, &mut Rng::new(seed)), "a").unwrap();
                // Inside the durable length every byte is old or new; the extension past it
                // may read as zeros or garbage where its write did not survive (F5).
                assert!(
                    got.len() == 2048 || got.len() == 2560,
                    "{loss:?} length {}",
                    got.len()
                );
                for (i, &b) in got.iter().enumerate().take(2048) {
                    let old = 1;
                    let new = st.nodes[&a].current[i];
                    assert!(
                        b == old || b == new,
                        "{loss:?} seed {seed}: byte {i} is {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_trap_freezes_at_its_sync() {
        let mut st = FsState::new();
        let (tx, rx) = std::sync::mpsc::channel();
        st.set_trap(
            SyncTrap {
                at: 2,
                after: false,
            },
            tx,
        );
        assert!(matches!(st.sync_gate(), Ok(true)));
        assert!(!st.sync_done());
        assert!(
            matches!(st.sync_gate(), Ok(false)),
            "the second sync is trapped"
        );
        assert!(st.frozen());
        assert_eq!(rx.try_recv(), Ok(2));
        assert!(st.sync_gate().is_err(), "no sync after the power failed");

        let mut st = FsState::new();
        let (tx, rx) = std::sync::mpsc::channel();
        st.set_trap(SyncTrap { at: 1, after: true }, tx);
        assert!(matches!(st.sync_gate(), Ok(true)), "carried out first");
        assert!(st.sync_done(), "then power fails");
        assert_eq!(rx.try_recv(), Ok(1));
    }
}
