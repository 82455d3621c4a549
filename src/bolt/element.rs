//! Branch and leaf elements: bounds-checked decoding of one element of a page, and whether a
//! page's elements form a valid page of a given type (how salvage tells a damaged type field
//! over intact elements).

use std::ops::{Bound, RangeBounds};

use super::format::*;

/// Number of elements a page of `data.len()` bytes can hold after its header, checked
/// against `count`.
pub(super) fn elements_fit(data: &[u8], count: u16) -> std::result::Result<usize, String> {
    let count = usize::from(count);
    let need = PAGE_HEADER_SIZE + count * ELEMENT_SIZE;
    if need > data.len() {
        return Err(format!(
            "{count} elements need {need} bytes but the page has {}",
            data.len()
        ));
    }
    Ok(count)
}

/// Branch element `i`: (key, child page id).
pub(super) fn branch_elem(data: &[u8], i: usize) -> std::result::Result<(&[u8], u64), String> {
    let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
    let (Some(pos), Some(ksize), Some(pgid)) = (
        u32_at(data, off),
        u32_at(data, off + 4),
        u64_at(data, off + 8),
    ) else {
        return Err(format!("branch element {i} lies outside the page"));
    };
    let (key, _) = element_key(data, "branch", i, off, pos, ksize)?;
    Ok((key, pgid))
}

/// Leaf element `i`: (flags, key, value).
pub(super) fn leaf_elem(data: &[u8], i: usize) -> std::result::Result<(u32, &[u8], &[u8]), String> {
    let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
    let (Some(flags), Some(pos), Some(ksize), Some(vsize)) = (
        u32_at(data, off),
        u32_at(data, off + 4),
        u32_at(data, off + 8),
        u32_at(data, off + 12),
    ) else {
        return Err(format!("leaf element {i} lies outside the page"));
    };
    let (key, kstart) = element_key(data, "leaf", i, off, pos, ksize)?;
    let vstart = kstart
        .checked_add(ksize as usize)
        .ok_or_else(|| format!("leaf element {i}: value offset overflows"))?;
    let value = slice_at(data, vstart, vsize as usize).ok_or_else(|| {
        format!(
            "leaf element {i}: value of {vsize} bytes after key at pos {pos} ({ksize} bytes) lies outside the page span of {} bytes",
            data.len()
        )
    })?;
    Ok((flags, key, value))
}

/// The key of element `i` (at offset `off`) of a `kind` page: `ksize` bytes, `pos` bytes
/// after the element. Returns it with its offset in the page.
fn element_key<'d>(
    data: &'d [u8],
    kind: &str,
    i: usize,
    off: usize,
    pos: u32,
    ksize: u32,
) -> std::result::Result<(&'d [u8], usize), String> {
    let kstart = off
        .checked_add(pos as usize)
        .ok_or_else(|| format!("{kind} element {i}: key offset overflows"))?;
    let key = slice_at(data, kstart, ksize as usize).ok_or_else(|| {
        format!(
            "{kind} element {i}: key at pos {pos} with {ksize} bytes lies outside the page span of {} bytes",
            data.len()
        )
    })?;
    Ok((key, kstart))
}

/// Whether page `data` with `count` elements forms a valid page of type `t` (branch or leaf)
/// whose keys are strictly increasing inside `[lo, hi)` (and, for a branch, whose children are
/// page ids in `[2, high_water)`). Bounded by `count`, which fits the page.
pub(super) fn parses_as(
    data: &[u8],
    count: u16,
    t: u16,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    high_water: u64,
) -> bool {
    let Ok(count) = elements_fit(data, count) else {
        return false;
    };
    if count == 0 {
        return false;
    }
    let mut prev: Option<&[u8]> = None;
    for i in 0..count {
        let key = if t == FLAG_LEAF {
            match leaf_elem(data, i) {
                Ok((flags, key, _)) if flags & !LEAF_FLAG_BUCKET == 0 => key,
                _ => return false,
            }
        } else {
            match branch_elem(data, i) {
                Ok((key, child)) if (2..high_water).contains(&child) => key,
                _ => return false,
            }
        };
        if key.is_empty() || prev.is_some_and(|p| key <= p) || !(lo, hi).contains(key) {
            return false;
        }
        prev = Some(key);
    }
    true
}
