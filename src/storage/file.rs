//! [`FileStorage`]: the storage trait over a real file (positional writes, `fdatasync`, a
//! read-only mapping, advisory locks, atomic creation with a directory sync). Over 600 lines
//! only with its unit tests (creation under every injected failure), which need its private
//! hooks.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::{not_empty, Storage, View};

/// How [`FileStorage::open`] locks and opens the file.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// Open read-only under a shared lock (the file must exist).
    pub read_only: bool,
    /// Create the file when it does not exist (ignored when read-only).
    pub create: bool,
    /// How long to wait for the lock; `None` waits forever, `Some(0)` tries once.
    pub lock_timeout: Option<Duration>,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            read_only: false,
            create: true,
            lock_timeout: None,
        }
    }
}

/// A real file: positional writes, `fdatasync`, and reads through a read-only memory mapping.
///
/// The file is locked with an advisory lock for the handle's lifetime: exclusive for a writer,
/// shared for a read-only handle, so a second process cannot open it for writing.
///
/// The `File` sits behind a lock because [`Storage::create`] replaces it: the image is written to
/// a new file that is renamed over the path, so the handle moves to that new inode. Every other
/// call takes only the read side, which is uncontended.
pub struct FileStorage {
    file: RwLock<File>,
    path: PathBuf,
    read_only: bool,
    map: Mutex<Option<Arc<MapView>>>,
}

struct MapView {
    map: Option<memmap2::Mmap>,
}

impl View for MapView {
    fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }
}

/// How many times [`FileStorage::open`] opens the path again after finding that the file it
/// locked is no longer the one at the path. Each retry means another handle created the
/// database in the meantime, which happens once per file, so running out means something is
/// replacing the file over and over.
const OPEN_ATTEMPTS: usize = 16;

impl FileStorage {
    /// Open (and with `create`, create) the file at `path` and take its lock.
    /// Returns the storage and whether the file was created by this call.
    ///
    /// The lock is taken on the file that was opened, and [`Storage::create`] replaces the
    /// file at the path: a handle that opened the old (empty) file and waited for its lock
    /// would hold a lock on an unlinked inode that nobody else uses, and write a database no
    /// one will ever see. So once the lock is ours, the open file must still be the one at the
    /// path; if it is not, the path is opened again.
    pub fn open(path: &Path, opts: &FileOptions) -> io::Result<(FileStorage, bool)> {
        let existed = path.exists();
        // `None` (no timeout, or one too large to represent) waits forever.
        let deadline = opts
            .lock_timeout
            .and_then(|t| Instant::now().checked_add(t));
        for _ in 0..OPEN_ATTEMPTS {
            let file = if opts.read_only {
                OpenOptions::new().read(true).open(path)?
            } else {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(opts.create)
                    .truncate(false)
                    .open(path)?
            };
            #[cfg(test)]
            hooks::after_open();
            lock_file(&file, opts.read_only, deadline)?;
            if is_at_path(&file, path)? {
                return Ok((
                    FileStorage {
                        file: RwLock::new(file),
                        path: path.to_path_buf(),
                        read_only: opts.read_only,
                        map: Mutex::new(None),
                    },
                    !existed,
                ));
            }
        }
        Err(io::Error::other(format!(
            "{}: the file was replaced {OPEN_ATTEMPTS} times while waiting for its lock",
            path.display()
        )))
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// True when `path` names the inode that `file` has open (false when it names another file,
/// or nothing).
fn is_at_path(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let ours = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn lock_file(file: &File, shared: bool, deadline: Option<Instant>) -> io::Result<()> {
    let mut pause = Duration::from_millis(1);
    loop {
        let r = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match r {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) => {
                if let Some(d) = deadline {
                    if Instant::now() >= d {
                        return Err(io::Error::new(
                            io::ErrorKind::WouldBlock,
                            "database file is locked by another handle",
                        ));
                    }
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Numbers the temporary files of one process, so that concurrent creations never pick the
/// same name.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new, empty file in `dir` named `.<name>.deadbolt-new-<pid>-<n>`: hidden, recognisable as
/// ours by anyone who finds one left behind by a crash, and never an existing file
/// (`create_new`).
fn create_temp(dir: &Path, name: &OsStr) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..16 {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".deadbolt-new-{pid}-{n}"));
        let p = dir.join(tmp_name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("create: no free temporary file name")))
}

/// Prepare the temporary file of a creation: lock it as the handle's file is locked (so that it
/// is locked from the moment it appears at the path), give it the old file's permissions (a
/// file the user made with restrictive permissions must not come back world-readable), write
/// the image and make it durable.
fn fill_temp(tmp: &File, old: &File, image: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    match tmp.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(io::Error::other(
                "create: the new file is already locked by someone else",
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    tmp.set_permissions(old.metadata()?.permissions())?;
    tmp.write_all_at(image, 0)?;
    fault(CreateStep::AfterWrite)?;
    tmp.sync_all()
}

/// The points inside [`FileStorage::create`] where a unit test can make it fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CreateStep {
    /// The image is written to the temporary file, not yet synced.
    AfterWrite,
    /// The temporary file is durable, not yet renamed.
    BeforeRename,
    /// Renamed over the path, the directory not yet synced.
    BeforeDirSync,
}

/// An injected failure at `step` (unit tests only; always `Ok` otherwise).
#[inline]
fn fault(step: CreateStep) -> io::Result<()> {
    #[cfg(test)]
    if hooks::FAIL_AT.with(|f| f.get()) == Some(step) {
        return Err(io::Error::other(format!("injected failure at {step:?}")));
    }
    let _ = step;
    Ok(())
}

impl Storage for FileStorage {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.read().metadata()?.len())
    }

    fn view(&self) -> io::Result<Arc<dyn View>> {
        // Lock order: the cached map, then the file (as in `create`).
        let mut g = self.map.lock();
        let file = self.file.read();
        let len = file.metadata()?.len();
        if let Some(v) = g.as_ref() {
            if v.bytes().len() as u64 == len {
                return Ok(v.clone());
            }
        }
        let map = if len == 0 {
            None
        } else {
            let len =
                usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
            // SAFETY: the mapping is read-only and private to this handle, which holds the file's
            // advisory lock (exclusive for writers), so no cooperating process resizes or rewrites
            // it. The engine itself only writes pages that no live snapshot can reach and only
            // shrinks the file below pages that no live reader can reach, and every access is
            // bounds-checked against this mapping's length. `create` switches the handle to a new
            // inode only under both locks held here; a view of the old inode keeps that inode
            // mapped (and alive) on its own. A foreign process that ignores the lock and truncates
            // the file can still cause SIGBUS, as with every mmap-based engine.
            #[allow(unsafe_code)]
            // One of the three `unsafe`s of the engine (lib.rs denies the rest; the others are in
            // storage::heap and format::page::prefetch).
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&*file)? };
            Some(map)
        };
        let v = Arc::new(MapView { map });
        *g = Some(v.clone());
        Ok(v)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read().write_all_at(data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.read().set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.read().sync_data()
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(parent_dir(&self.path))?.sync_all()
    }

    /// Write the image to a temporary file in the same directory, make it durable, rename it
    /// over the path (which holds the empty file this handle has open and locked), switch the
    /// handle to it, and sync the directory. Every crash leaves the path naming either the old
    /// empty file or the whole image; only a stray temporary file can be left besides.
    fn create(&self, image: &[u8]) -> io::Result<()> {
        // Lock order: the cached map, then the file (as in `view`).
        let mut map = self.map.lock();
        let mut file = self.file.write();
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "create: the handle is read-only",
            ));
        }
        if file.metadata()?.len() != 0 {
            return Err(not_empty());
        }
        // Rename over the file this handle has open and locked, wherever the path leads: when
        // it is a symlink that is its target (renaming over the link would replace the link and
        // leave the file it points to empty).
        let target = std::fs::canonicalize(&self.path)?;
        if !is_at_path(&file, &target)? {
            return Err(io::Error::other(format!(
                "create: {} is no longer the file this handle opened; not replacing it",
                self.path.display()
            )));
        }
        let name = target
            .file_name()
            .ok_or_else(|| io::Error::other("create: the path names no file"))?;
        let dir = parent_dir(&target);
        let (tmp_path, tmp) = create_temp(&dir, name)?;
        let placed = fill_temp(&tmp, &file, image).and_then(|()| {
            fault(CreateStep::BeforeRename)?;
            std::fs::rename(&tmp_path, &target)
        });
        if let Err(e) = placed {
            drop(tmp);
            // Best effort: the error that matters is `e`, and a stray temporary file is only
            // litter (its name says what it is).
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
        // The path now names the new file, which `tmp` has open and already locked, so no
        // other handle can take it between the rename and here. Dropping the old descriptor
        // releases the old inode's lock; a handle waiting for that lock sees in `open` that the
        // path names another file now and opens it again.
        *file = tmp;
        *map = None;
        drop(file);
        drop(map);
        // Until the directory is durable a power cut may bring back the old empty file (never
        // a part of the new one), so success is only reported after this sync.
        fault(CreateStep::BeforeDirSync)?;
        File::open(&dir)?.sync_all()
    }
}

#[cfg(test)]
mod hooks {
    use std::cell::{Cell, RefCell};

    use super::CreateStep;

    thread_local! {
        /// Make `FileStorage::create` on this thread fail at this step.
        pub(super) static FAIL_AT: Cell<Option<CreateStep>> = const { Cell::new(None) };
        /// Run once in `FileStorage::open` on this thread, between opening the file and
        /// locking it: where a real race would let another handle create the database.
        pub(super) static AFTER_OPEN: RefCell<Option<Box<dyn FnOnce()>>> =
            const { RefCell::new(None) };
    }

    pub(super) fn after_open() {
        let hook = AFTER_OPEN.with(|h| h.borrow_mut().take());
        if let Some(f) = hook {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn image() -> Vec<u8> {
        (0..8192u32).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn writer() -> FileOptions {
        FileOptions::default()
    }

    /// Names in `dir` other than `keep`.
    fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect();
        v.sort();
        v
    }

    fn ino(path: &Path) -> (u64, u64) {
        let m = std::fs::metadata(path).unwrap();
        (m.dev(), m.ino())
    }

    #[test]
    fn mem_create_fills_an_empty_buffer_and_never_overwrites_one() {
        let m = MemStorage::new();
        let v0 = m.view().unwrap();
        m.create(b"abc").unwrap();
        assert_eq!(m.to_bytes(), b"abc");
        assert_eq!(m.view().unwrap().bytes(), b"abc", "no stale cached view");
        assert!(v0.bytes().is_empty());
        let e = m.create(b"xyz").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(m.to_bytes(), b"abc");
    }

    #[test]
    fn file_create_puts_the_whole_image_at_the_path_and_the_handle_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let (s, created) = FileStorage::open(&path, &writer()).unwrap();
        assert!(created);
        assert_eq!(s.len().unwrap(), 0);
        let before = ino(&path);
        s.create(&image()).unwrap();
        assert_ne!(ino(&path), before, "a new inode, renamed into place");
        assert_eq!(std::fs::read(&path).unwrap(), image());
        assert_eq!(s.len().unwrap(), image().len() as u64);
        assert_eq!(s.view().unwrap().bytes(), &image()[..]);
        // The handle writes to the file at the path, not to the replaced one.
        s.write_at(8192, b"tail").unwrap();
        s.sync_data().unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[8192..], b"tail");
        assert_eq!(others(dir.path(), &["a.db"]), Vec::<String>::new());
        // And it still holds the lock.
        let locked = FileStorage::open(
            &path,
            &FileOptions {
                lock_timeout: Some(Duration::ZERO),
                ..writer()
            },
        );
        assert_eq!(
            locked.err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
    }

    #[test]
    fn file_create_refuses_a_non_empty_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"x").unwrap();
        let before = ino(&path);
        let (s, created) = FileStorage::open(&path, &writer()).unwrap();
        assert!(!created);
        let e = s.create(&image()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert_eq!(ino(&path), before);
        assert_eq!(others(dir.path(), &["a.db"]), Vec::<String>::new());
    }

    #[test]
    fn file_create_refuses_on_a_read_only_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").unwrap();
        let (s, _) = FileStorage::open(
            &path,
            &FileOptions {
                read_only: true,
                create: false,
                lock_timeout: None,
            },
        )
        .unwrap();
        assert!(s.create(&image()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(others(dir.path(), &["a.db"]), Vec::<String>::new());
    }

    #[test]
    fn file_create_failing_before_the_rename_leaves_the_empty_file_and_no_temporary() {
        for step in [CreateStep::AfterWrite, CreateStep::BeforeRename] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.db");
            let (s, _) = FileStorage::open(&path, &writer()).unwrap();
            let before = ino(&path);
            hooks::FAIL_AT.with(|f| f.set(Some(step)));
            let r = s.create(&image());
            hooks::FAIL_AT.with(|f| f.set(None));
            assert!(r.is_err(), "{step:?}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                b"",
                "{step:?}: no partial file"
            );
            assert_eq!(ino(&path), before, "{step:?}");
            assert_eq!(s.len().unwrap(), 0, "{step:?}");
            assert_eq!(
                others(dir.path(), &["a.db"]),
                Vec::<String>::new(),
                "{step:?}: temporary file removed"
            );
            // Nothing was spent: the same handle can still create.
            s.create(&image()).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), image(), "{step:?}");
        }
    }

    #[test]
    fn file_create_failing_after_the_rename_leaves_the_whole_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let (s, _) = FileStorage::open(&path, &writer()).unwrap();
        hooks::FAIL_AT.with(|f| f.set(Some(CreateStep::BeforeDirSync)));
        let r = s.create(&image());
        hooks::FAIL_AT.with(|f| f.set(None));
        assert!(
            r.is_err(),
            "success is reported only once the directory is synced"
        );
        assert_eq!(std::fs::read(&path).unwrap(), image());
        assert_eq!(s.view().unwrap().bytes(), &image()[..], "handle moved");
        assert_eq!(others(dir.path(), &["a.db"]), Vec::<String>::new());
    }

    #[test]
    fn file_create_keeps_the_permissions_of_the_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (s, _) = FileStorage::open(&path, &writer()).unwrap();
        s.create(&image()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn file_create_through_a_symlink_fills_its_target_and_keeps_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.db");
        let link = dir.path().join("link.db");
        std::fs::write(&real, b"").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (s, _) = FileStorage::open(&link, &writer()).unwrap();
        s.create(&image()).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), image());
        assert_eq!(
            others(dir.path(), &["real.db", "link.db"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn open_that_waited_on_a_replaced_file_opens_the_new_one() {
        // Handle `a` has the empty file; `b` opens that same empty file and, before it gets
        // the lock, `a` creates the database (renaming a new file over the path) and closes.
        // `b` then gets the lock on the old, unlinked inode: it must notice and open the path
        // again, or it would run a database nobody can see.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let (a, _) = FileStorage::open(&path, &writer()).unwrap();
        hooks::AFTER_OPEN.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                a.create(&image()).unwrap();
                drop(a);
            }))
        });
        let (b, _) = FileStorage::open(&path, &writer()).unwrap();
        assert!(hooks::AFTER_OPEN.with(|h| h.borrow().is_none()), "hook ran");
        assert_eq!(b.len().unwrap(), image().len() as u64);
        assert_eq!(b.view().unwrap().bytes(), &image()[..]);
        b.write_at(0, b"B").unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..1], b"B");
    }

    #[test]
    fn open_that_waited_on_a_replaced_file_waits_for_the_new_ones_lock() {
        // As above, but `a` keeps the new file open: `b` must wait for the lock of the file
        // now at the path (and time out), not run on the unlinked one it first locked.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let (a, _) = FileStorage::open(&path, &writer()).unwrap();
        let a = std::rc::Rc::new(a);
        let a2 = a.clone();
        hooks::AFTER_OPEN
            .with(|h| *h.borrow_mut() = Some(Box::new(move || a2.create(&image()).unwrap())));
        let opts = FileOptions {
            lock_timeout: Some(Duration::from_millis(50)),
            ..writer()
        };
        let b = FileStorage::open(&path, &opts);
        assert_eq!(b.err().map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
        drop(a);
        let (b, _) = FileStorage::open(&path, &opts).unwrap();
        assert_eq!(b.view().unwrap().bytes(), &image()[..]);
    }

    #[test]
    fn open_of_a_file_replaced_by_hand_under_a_handle_finds_the_new_inode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"old").unwrap();
        let (a, _) = FileStorage::open(&path, &writer()).unwrap();
        let other = dir.path().join("new");
        std::fs::write(&other, b"new!").unwrap();
        std::fs::rename(&other, &path).unwrap();
        // `a` still has the old inode and its lock; a new handle gets the file at the path.
        assert_eq!(a.len().unwrap(), 3);
        let (b, _) = FileStorage::open(&path, &writer()).unwrap();
        assert_eq!(b.len().unwrap(), 4);
        assert_eq!(b.view().unwrap().bytes(), b"new!");
    }
}
