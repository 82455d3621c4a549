//! The on-disk encoding of free space: a chain of freelist records (see docs/FORMAT.md).
//!
//! Each commit writes one small *delta* record (runs freed, runs taken from the free set)
//! pointing at the previous record; every [`CHAIN_COMPACT`] commits, or when a full record is
//! no larger than a delta, it writes a *full* record instead and frees the old chain. A
//! commit's free-space I/O is therefore proportional to what it changed, not to the size of
//! the free list, and opening after a clean close reads at most [`MAX_CHAIN`] records without
//! walking the tree. The policy that chooses between them is [`crate::store::free`]'s.

use crate::error::{Error, Result};
use crate::format::page::{rd_u32, rd_u64, rd_u8, wr_u32, wr_u64, ChildRef, HEADER, REF_SIZE};

/// A full record is written when the chain reaches this many records.
pub(crate) const CHAIN_COMPACT: u32 = 16;
/// Longest chain accepted when reading (a longer one is corruption).
pub(crate) const MAX_CHAIN: u32 = 64;
/// Byte offset of the first run in a record.
pub(crate) const RUNS_OFF: usize = 80;
pub(crate) const KIND_FULL: u8 = 1;
pub(crate) const KIND_DELTA: u8 = 2;

/// One decoded freelist record.
pub(crate) struct Record {
    pub kind: u8,
    pub chain_len: u32,
    pub hwm: u64,
    pub prev: ChildRef,
    pub add: Vec<(u64, u64)>,
    pub remove: Vec<(u64, u64)>,
}

/// Encoded size of a record with `runs` runs.
pub(crate) fn record_size(runs: usize) -> usize {
    RUNS_OFF + 16 * runs
}

/// Encode a record into `buf` (already sized to its span; header filled in by the caller).
pub(crate) fn encode_record(buf: &mut [u8], r: &Record) {
    buf[HEADER] = r.kind;
    wr_u32(buf, 36, r.chain_len);
    wr_u64(buf, 40, r.hwm);
    r.prev.encode(&mut buf[48..48 + REF_SIZE]);
    wr_u32(buf, 72, r.add.len() as u32);
    wr_u32(buf, 76, r.remove.len() as u32);
    let mut off = RUNS_OFF;
    for &(s, l) in r.add.iter().chain(r.remove.iter()) {
        wr_u64(buf, off, s);
        wr_u64(buf, off + 8, l);
        off += 16;
    }
}

/// Decode a record from a verified freelist span. Counts are bounded by the span's size and
/// every run must lie inside `[2, hwm)`.
pub(crate) fn decode_record(span: &[u8], page: u64) -> Result<Record> {
    let bad = |d: String| Error::corrupt(page, d);
    let kind = rd_u8(span, HEADER).ok_or_else(|| bad("truncated record".into()))?;
    if kind != KIND_FULL && kind != KIND_DELTA {
        return Err(bad(format!("unknown freelist record kind {kind}")));
    }
    let chain_len = rd_u32(span, 36).ok_or_else(|| bad("truncated record".into()))?;
    let hwm = rd_u64(span, 40).ok_or_else(|| bad("truncated record".into()))?;
    let prev = span
        .get(48..)
        .and_then(ChildRef::decode)
        .ok_or_else(|| bad("truncated record".into()))?;
    let n_add = rd_u32(span, 72).ok_or_else(|| bad("truncated record".into()))? as usize;
    let n_rem = rd_u32(span, 76).ok_or_else(|| bad("truncated record".into()))? as usize;
    let total = n_add.saturating_add(n_rem);
    // The bound on the allocation below: the runs must fit in the span we were handed.
    if record_size(total) > span.len() || total > span.len() / 16 {
        return Err(bad(format!(
            "{n_add}+{n_rem} runs do not fit in a {}-byte record",
            span.len()
        )));
    }
    if chain_len == 0 || chain_len > MAX_CHAIN {
        return Err(bad(format!(
            "chain length {chain_len} outside 1..={MAX_CHAIN}"
        )));
    }
    if (kind == KIND_FULL) != prev.is_empty()
        || (kind == KIND_FULL && (chain_len != 1 || n_rem != 0))
    {
        return Err(bad(
            "inconsistent record kind, chain and previous pointer".into()
        ));
    }
    let mut runs = Vec::with_capacity(total);
    for i in 0..total {
        let off = RUNS_OFF + 16 * i;
        let s = rd_u64(span, off).ok_or_else(|| bad("truncated run".into()))?;
        let l = rd_u64(span, off + 8).ok_or_else(|| bad("truncated run".into()))?;
        if s < 2 || l == 0 || s.checked_add(l).is_none_or(|e| e > hwm) {
            return Err(bad(format!("run {s}+{l} outside [2, {hwm})")));
        }
        runs.push((s, l));
    }
    let remove = runs.split_off(n_add);
    Ok(Record {
        kind,
        chain_len,
        hwm,
        prev,
        add: runs,
        remove,
    })
}
