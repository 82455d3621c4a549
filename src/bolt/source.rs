//! The source file: a bbolt file opened read-only, under a shared lock, memory-mapped, through
//! the engine's [`FileStorage`]. Nothing here writes it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, FileOptions, FileStorage, Result, Storage, View};

/// Default wait for the source file's shared lock (a running bbolt writer holds an exclusive
/// one).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// A read-only, shared-locked, memory-mapped bbolt file. The lock is held as long as this lives.
pub struct SourceFile {
    _storage: FileStorage,
    view: Arc<dyn View>,
}

impl SourceFile {
    /// Open `path` read-only under a shared lock, waiting at most `lock_timeout`.
    pub fn open(path: &Path, lock_timeout: Option<Duration>) -> Result<SourceFile> {
        let opts = FileOptions {
            read_only: true,
            create: false,
            lock_timeout,
        };
        let (storage, _) = FileStorage::open(path, &opts).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::LockTimeout
            } else {
                Error::Io(e)
            }
        })?;
        let view = storage.view()?;
        Ok(SourceFile {
            _storage: storage,
            view,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.view.bytes()
    }
}

/// Open `path` as a source, waiting [`DEFAULT_LOCK_TIMEOUT`] for the lock.
pub(super) fn open_view(path: &Path) -> Result<SourceFile> {
    SourceFile::open(path, Some(DEFAULT_LOCK_TIMEOUT))
}
