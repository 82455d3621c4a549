//! The one I/O boundary of the engine.
//!
//! Everything deadbolt reads or writes goes through [`Storage`]: no other module touches the
//! file system. That lets the fault-injection harness put a simulated power-cut disk behind
//! the same trait and observe (and break) every write, length change and sync, in order.
//!
//! Two implementations ship here: [`FileStorage`] (positional writes, `fdatasync`, reads through
//! a read-only memory mapping) and [`MemStorage`] (a plain in-memory buffer, for tests and
//! scratch databases).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A read-only view of the whole file as it was when the view was taken.
///
/// The engine never writes to a page that a live view's snapshot can reach (copy-on-write), so
/// a view stays valid for its readers while the writer appends new pages elsewhere. Whether
/// bytes written after the view was taken are visible through it is unspecified; the engine
/// takes a new view after each commit.
pub trait View: Send + Sync {
    /// The bytes of the file, `[0, len)` for the length at the time the view was taken.
    fn bytes(&self) -> &[u8];
}

/// The storage trait: a single file of bytes.
///
/// Every mutating call (`write_at`, `set_len`, `sync_data`, `sync_dir`) is a potential crash
/// point for the harness. Until `sync_data` returns `Ok`, nothing written or resized since the
/// previous successful sync may be assumed durable, in any order.
pub trait Storage: Send + Sync {
    /// Current length of the file in bytes.
    fn len(&self) -> io::Result<u64>;
    /// True when the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// A read view of the file as it is now (see [`View`]).
    fn view(&self) -> io::Result<Arc<dyn View>>;
    /// Write `data` at byte `offset`. May extend the file.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Grow or shrink the file to `len` bytes (growth reads as zeros).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make all writes and length changes issued so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Make the file's directory entry durable (called once after the file is created).
    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

/// An owned byte buffer as a [`View`].
pub struct VecView(pub Vec<u8>);

impl View for VecView {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// An in-memory storage. Each view after a write copies the buffer, so it suits tests and
/// small scratch databases, not large ones.
#[derive(Default)]
pub struct MemStorage {
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    data: Vec<u8>,
    cached: Option<Arc<VecView>>,
}

impl MemStorage {
    /// An empty in-memory file.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// An in-memory file holding `data` (for example a database image to inspect).
    pub fn from_bytes(data: Vec<u8>) -> MemStorage {
        MemStorage {
            inner: Mutex::new(MemInner { data, cached: None }),
        }
    }

    /// A copy of the current contents.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.lock().data.clone()
    }
}

fn offset_range(offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| io::Error::other("offset overflow"))?;
    Ok((start, end))
}

impl Storage for MemStorage {
    fn len(&self) -> io::Result<u64> {
        Ok(self.inner.lock().data.len() as u64)
    }
    fn view(&self) -> io::Result<Arc<dyn View>> {
        let mut g = self.inner.lock();
        if let Some(v) = &g.cached {
            return Ok(v.clone());
        }
        let v = Arc::new(VecView(g.data.clone()));
        g.cached = Some(v.clone());
        Ok(v)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let (start, end) = offset_range(offset, data.len())?;
        let mut g = self.inner.lock();
        g.cached = None;
        if g.data.len() < end {
            g.data.resize(end, 0);
        }
        g.data[start..end].copy_from_slice(data);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let (_, end) = offset_range(len, 0)?;
        let mut g = self.inner.lock();
        g.cached = None;
        g.data.resize(end, 0);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
}

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
pub struct FileStorage {
    file: File,
    path: PathBuf,
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

impl FileStorage {
    /// Open (and with `create`, create) the file at `path` and take its lock.
    /// Returns the storage and whether the file was created by this call.
    pub fn open(path: &Path, opts: &FileOptions) -> io::Result<(FileStorage, bool)> {
        let existed = path.exists();
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
        lock_file(&file, opts.read_only, opts.lock_timeout)?;
        Ok((
            FileStorage {
                file,
                path: path.to_path_buf(),
                map: Mutex::new(None),
            },
            !existed,
        ))
    }

    /// The path the file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock_file(file: &File, shared: bool, timeout: Option<Duration>) -> io::Result<()> {
    let start = Instant::now();
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
                if let Some(t) = timeout {
                    if start.elapsed() >= t {
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

impl Storage for FileStorage {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn view(&self) -> io::Result<Arc<dyn View>> {
        let len = self.len()?;
        let mut g = self.map.lock();
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
            // bounds-checked against this mapping's length. A foreign process that ignores the
            // lock and truncates the file can still cause SIGBUS, as with every mmap-based engine.
            Some(unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? })
        };
        let v = Arc::new(MapView { map });
        *g = Some(v.clone());
        Ok(v)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_dir(&self) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        File::open(dir)?.sync_all()
    }
}
