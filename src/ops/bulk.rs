//! Bounded bulk writes: copying many entries into a database in transactions of bounded size,
//! so that a copy of any size holds a bounded arena in memory (compaction and salvage; the
//! bbolt importer has the same shape on the public API).

use crate::db::Db;
use crate::error::{Error, Result};
use crate::tx::Tx;

/// Bytes of keys and values per transaction of a bulk copy: large enough that the per-commit
/// cost (one sync, the meta, the free-space record) is noise, small enough that the write
/// arena stays a few times this in memory.
pub(crate) const BULK_TX_BYTES: usize = 8 << 20;

/// Writes entries into `db` at bucket paths, committing whenever a transaction has taken
/// [`BULK_TX_BYTES`] of keys and values (and at [`BulkWriter::finish`]).
pub(crate) struct BulkWriter<'db> {
    db: &'db Db,
    tx: Option<Tx<'db>>,
    bytes: usize,
    /// Transactions committed so far.
    pub commits: u64,
}

impl<'db> BulkWriter<'db> {
    pub(crate) fn new(db: &'db Db) -> BulkWriter<'db> {
        BulkWriter {
            db,
            tx: None,
            bytes: 0,
            commits: 0,
        }
    }

    fn tx(&mut self) -> Result<&Tx<'db>> {
        if self.tx.is_none() {
            self.tx = Some(self.db.begin_write()?);
        }
        self.tx.as_ref().ok_or(Error::TxClosed)
    }

    /// Create the bucket at `path` (and its parents) if missing and set its sequence.
    pub(crate) fn ensure_bucket(&mut self, path: &[Vec<u8>], sequence: u64) -> Result<()> {
        self.tx()?.create_bucket_path(path)?.set_sequence(sequence)
    }

    /// Put `k` = `v` into the bucket at `path` (created if missing).
    pub(crate) fn put(&mut self, path: &[Vec<u8>], k: &[u8], v: &[u8]) -> Result<()> {
        self.tx()?.create_bucket_path(path)?.put(k, v)?;
        self.bytes += k.len() + v.len();
        if self.bytes >= BULK_TX_BYTES {
            self.commit()?;
        }
        Ok(())
    }

    /// Put every pair of `pairs` into the bucket at `path` (created if missing), opening the
    /// bucket once per transaction rather than once per pair as [`BulkWriter::put`] does.
    pub(crate) fn put_all<K, V>(
        &mut self,
        path: &[Vec<u8>],
        pairs: impl IntoIterator<Item = Result<(K, V)>>,
    ) -> Result<()>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut pairs = pairs.into_iter().peekable();
        while pairs.peek().is_some() {
            if self.tx.is_none() {
                self.tx = Some(self.db.begin_write()?);
            }
            let Some(tx) = &self.tx else {
                return Err(Error::TxClosed);
            };
            let b = tx.create_bucket_path(path)?;
            let mut full = false;
            for kv in pairs.by_ref() {
                let (k, v) = kv?;
                b.put(k.as_ref(), v.as_ref())?;
                self.bytes += k.as_ref().len() + v.as_ref().len();
                if self.bytes >= BULK_TX_BYTES {
                    full = true;
                    break;
                }
            }
            if !full {
                break;
            }
            self.commit()?;
        }
        Ok(())
    }

    /// Commit the open transaction, if any.
    pub(crate) fn commit(&mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit()?;
            self.commits += 1;
        }
        self.bytes = 0;
        Ok(())
    }

    /// Commit what is left; returns the number of transactions committed.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.commit()?;
        Ok(self.commits)
    }
}

/// A key or bucket name for messages: as text when it is printable ASCII, else as hex.
pub(crate) fn printable(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        String::from_utf8_lossy(b).into_owned()
    } else {
        let mut s = String::from("0x");
        for c in b {
            s.push_str(&format!("{c:02x}"));
        }
        s
    }
}
