//! Leaf stepping: one leaf element checked (readable, in order, inside the range its parent
//! assigns, a sane key, known flags, a bounded value or a whole bucket header) and turned into
//! a [`BucketEntry`].

use std::ops::{Bound, RangeBounds};

use super::context::{single_entry, Ctx, KeyRange};
use super::element::*;
use super::format::*;
use super::frame::{BucketEntry, Frame, Root};
use super::problem::show_bytes;
use crate::Result;

/// Leaf element `i` of frame `f` as an entry, or `None` when it is skipped (recorded as a
/// problem in salvage mode). `last_key` is the cursor's last key read, updated here.
pub(super) fn leaf_step<'a>(
    ctx: &mut Ctx<'a>,
    f: &Frame<'a>,
    i: usize,
    last_key: &mut Option<&'a [u8]>,
) -> Result<Option<BucketEntry<'a>>> {
    let (flags, key, value) = match leaf_elem(f.data, i) {
        Ok(x) => x,
        Err(d) => {
            ctx.fault(f.page, d, Some(unreadable_range(f, i, *last_key)))?;
            return Ok(None);
        }
    };
    let just = Some(single_entry(key));
    if let Some(d) = placement_problem(f, i, key, *last_key) {
        ctx.fault(f.page, d, just)?;
        return Ok(None);
    }
    *last_key = Some(key);
    match leaf_entry(f.page, i, flags, key, value) {
        Ok(entry) => Ok(Some(entry)),
        Err(d) => {
            ctx.fault(f.page, d, just)?;
            Ok(None)
        }
    }
}

/// What an unreadable element `i` loses: from the last good key to the next readable key of
/// this page (or the end of the page's range).
fn unreadable_range<'a>(f: &Frame<'a>, i: usize, last_key: Option<&'a [u8]>) -> KeyRange<'a> {
    let prev = match last_key {
        Some(k) => Bound::Excluded(k),
        None => f.report_lo,
    };
    let next = (i + 1..f.count)
        .take(1)
        .find_map(|j| leaf_elem(f.data, j).ok())
        .map_or(f.hi, |(_, k, _)| Bound::Excluded(k));
    (prev, next)
}

/// Key `key` of element `i` is not after the previous key or not inside the range the parent
/// branch assigns to the page.
fn placement_problem(
    f: &Frame<'_>,
    i: usize,
    key: &[u8],
    last_key: Option<&[u8]>,
) -> Option<String> {
    if let Some(lk) = last_key.filter(|&lk| key <= lk) {
        return Some(format!(
            "leaf element {i}: key {} is not greater than the previous key {} (keys out of order); entry skipped",
            show_bytes(key),
            show_bytes(lk)
        ));
    }
    if !(f.lo, f.hi).contains(key) {
        return Some(format!(
            "leaf element {i}: key {} lies outside the range its parent branch assigns to this page; entry skipped",
            show_bytes(key)
        ));
    }
    None
}

/// Element `i` of leaf page `page` (already in order) as an entry: a pair, or a nested bucket
/// whose header is whole; otherwise why it is skipped.
fn leaf_entry<'a>(
    page: u64,
    i: usize,
    flags: u32,
    key: &'a [u8],
    value: &'a [u8],
) -> std::result::Result<BucketEntry<'a>, String> {
    if key.is_empty() {
        return Err(format!("leaf element {i}: empty key"));
    }
    if key.len() > crate::MAX_KEY_SIZE {
        return Err(format!(
            "leaf element {i}: key of {} bytes exceeds the maximum of {}",
            key.len(),
            crate::MAX_KEY_SIZE
        ));
    }
    if flags & !LEAF_FLAG_BUCKET != 0 {
        return Err(format!(
            "leaf element {i} (key {}): unknown element flags {flags:#x}",
            show_bytes(key)
        ));
    }
    if flags & LEAF_FLAG_BUCKET == 0 {
        if value.len() > crate::MAX_VALUE_SIZE {
            return Err(format!(
                "leaf element {i} (key {}): value of {} bytes exceeds the maximum",
                show_bytes(key),
                value.len()
            ));
        }
        return Ok(BucketEntry::Kv { key, value, page });
    }
    // A nested bucket: header {root u64, sequence u64}, then the inline page when root is 0.
    let (Some(root), Some(sequence)) = (u64_at(value, 0), u64_at(value, 8)) else {
        return Err(format!(
            "leaf element {i}: nested bucket {} has a header of {} bytes (16 needed); the bucket is lost",
            show_bytes(key),
            value.len()
        ));
    };
    let root = if root == 0 {
        Root::Inline {
            image: value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]),
            host: page,
        }
    } else {
        Root::Page(root)
    };
    Ok(BucketEntry::Bucket {
        name: key,
        sequence,
        root,
    })
}
