//! [`MemStorage`]: the storage trait over a plain in-memory buffer.

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{not_empty, Storage, VecView, View};

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
    fn create(&self, image: &[u8]) -> io::Result<()> {
        // Atomic by construction: the buffer is replaced under the lock, and there is no crash
        // to survive.
        let mut g = self.inner.lock();
        if !g.data.is_empty() {
            return Err(not_empty());
        }
        g.cached = None;
        g.data = image.to_vec();
        Ok(())
    }
}
