//! The one I/O boundary of the engine.
//!
//! Everything deadbolt reads or writes goes through [`Storage`]: no other module touches the
//! file system. That lets the fault-injection harness put a simulated power-cut disk behind
//! the same trait and observe (and break) every write, length change and sync, in order.
//!
//! Two implementations ship here: [`FileStorage`] (positional writes, `fdatasync`, reads through
//! a read-only memory mapping) and [`MemStorage`] (a plain in-memory buffer, for tests and
//! scratch databases).

use std::io;
use std::sync::Arc;

mod file;
pub(crate) mod heap;
mod mem;

pub use file::{FileOptions, FileStorage};
pub use mem::MemStorage;

/// Largest write the engine issues in one call: 64 KiB. The kernel's page cache sizes its
/// folios by the writes that fill it, and a later write of one page into a large folio costs in
/// proportion to the folio, both in the write (ext4_block_write_begin walks every block of it)
/// and in its writeback (mpage_process_page_bufs). With 1 MiB writes, the bulk-loaded file made
/// every later scattered page write pay for 256 blocks: batches of 1,000 random keys into
/// 1,000,000 entries spent 1.3 s of 100 commits in those two kernel functions, 0.3 s with 64 KiB
/// writes (perf record -e cpu-clock, `profile deadbolt batch 1000000`), and the bulk load did
/// not measurably slow down. The folios outlive the process, so a backup or a compacted copy
/// written in one piece would hand the daemon that opens it the same cost.
pub(crate) const MAX_WRITE: usize = 64 << 10;

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
/// Every mutating call (`write_at`, `set_len`, `sync_data`, `sync_dir`, `create`) is a potential
/// crash point for the harness. Until `sync_data` returns `Ok`, nothing written or resized since
/// the previous successful sync may be assumed durable, in any order. `create` is the exception
/// that makes a new file safe: all or nothing, and durable when it returns.
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
    /// Give an empty storage its first contents, atomically: when this returns `Ok` the whole
    /// `image` is durable (data and directory entry); after a crash at any point the storage is
    /// either still empty (or absent) or holds the whole image, never a part of it. The engine
    /// calls it only when `len()` is 0, so no partial file can ever be mistaken for a database
    /// or a foreign file for a half-created one.
    ///
    /// There is deliberately no default: writing the image in place and syncing is exactly the
    /// non-atomic creation this replaces, so every storage must say how it is atomic.
    /// Implementations refuse (with an error, writing nothing) when the storage is not empty.
    fn create(&self, image: &[u8]) -> io::Result<()>;
}

/// An owned byte buffer as a [`View`].
pub struct VecView(pub Vec<u8>);

impl View for VecView {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The error of a `create` on a storage that already has contents.
fn not_empty() -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        "create: the storage is not empty (it is never overwritten)",
    )
}
