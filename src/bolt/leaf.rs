//! Leaf stepping: one leaf element checked (readable, in order, inside the range its parent
//! assigns, a sane key, known flags, a bounded value or a whole bucket header) and turned into
//! a [`BucketEntry`].

use std::ops::Bound;

use super::context::Ctx;
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
    let prev = match *last_key {
        Some(k) => Bound::Excluded(k),
        None => f.report_lo,
    };
    let (flags, key, value) = match leaf_elem(f.data, i) {
        Ok(x) => x,
        Err(d) => {
            // Lost: from the last good key to the next readable key of this page.
            let next = (i + 1..f.count)
                .take(1)
                .find_map(|j| leaf_elem(f.data, j).ok())
                .map_or(f.hi, |(_, k, _)| Bound::Excluded(k));
            ctx.fault(f.page, d, Some((prev, next)))?;
            return Ok(None);
        }
    };
    let just = Some((Bound::Included(key), Bound::Included(key)));
    if let Some(lk) = *last_key {
        if key <= lk {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i}: key {} is not greater than the previous key {} (keys out of order); entry skipped",
                    show_bytes(key),
                    show_bytes(lk)
                ),
                just,
            )?;
            return Ok(None);
        }
    }
    if !above(f.lo, key) || !below(f.hi, key) {
        ctx.fault(
            f.page,
            format!(
                "leaf element {i}: key {} lies outside the range its parent branch assigns to this page; entry skipped",
                show_bytes(key)
            ),
            just,
        )?;
        return Ok(None);
    }
    *last_key = Some(key);
    if key.is_empty() {
        ctx.fault(f.page, format!("leaf element {i}: empty key"), just)?;
        return Ok(None);
    }
    if key.len() > crate::MAX_KEY_SIZE {
        ctx.fault(
            f.page,
            format!(
                "leaf element {i}: key of {} bytes exceeds the maximum of {}",
                key.len(),
                crate::MAX_KEY_SIZE
            ),
            just,
        )?;
        return Ok(None);
    }
    if flags & !LEAF_FLAG_BUCKET != 0 {
        ctx.fault(
            f.page,
            format!(
                "leaf element {i} (key {}): unknown element flags {flags:#x}",
                show_bytes(key)
            ),
            just,
        )?;
        return Ok(None);
    }
    if flags & LEAF_FLAG_BUCKET == 0 {
        if value.len() > crate::MAX_VALUE_SIZE {
            ctx.fault(
                f.page,
                format!(
                    "leaf element {i} (key {}): value of {} bytes exceeds the maximum",
                    show_bytes(key),
                    value.len()
                ),
                just,
            )?;
            return Ok(None);
        }
        return Ok(Some(BucketEntry::Kv {
            key,
            value,
            page: f.page,
        }));
    }
    // A nested bucket: header {root u64, sequence u64}, then the inline page when root is 0.
    let (Some(root), Some(sequence)) = (u64_at(value, 0), u64_at(value, 8)) else {
        ctx.fault(
            f.page,
            format!(
                "leaf element {i}: nested bucket {} has a header of {} bytes (16 needed); the bucket is lost",
                show_bytes(key),
                value.len()
            ),
            just,
        )?;
        return Ok(None);
    };
    let root = if root == 0 {
        Root::Inline {
            image: value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]),
            host: f.page,
        }
    } else {
        Root::Page(root)
    };
    Ok(Some(BucketEntry::Bucket {
        name: key,
        sequence,
        root,
    }))
}
