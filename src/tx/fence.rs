//! Fence checks: a page must sit where its parent's pointer puts it, one level below the
//! parent and (for a leaf) with its keys inside the separators of the path that led to it. A
//! page that verifies but is reachable from the wrong place (a pointer aimed at a sibling's
//! subtree, checksums forged up to the meta) is corruption naming it.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::format::page::{cmp_keys, Page};

/// A page reached from a parent at `parent_level` must be one level below it.
#[inline]
pub(crate) fn check_level(child: &Page<'_>, parent_level: u8) -> Result<()> {
    if child.level.checked_add(1) != Some(parent_level) {
        return Err(Error::corrupt(
            child.id,
            format!(
                "page at level {}, its parent is at level {parent_level} (pointer to the wrong depth)",
                child.level
            ),
        ));
    }
    Ok(())
}

/// Narrow the range `[lo, hi)` a descent has carried so far by the separators around the child
/// it takes (`below`: the key it was reached through, `above`: the next element's key), keeping
/// the tightest of each: a forged pointer can make a deeper separator looser than one above it.
pub(crate) fn narrow<K: AsRef<[u8]>>(
    lo: &mut Option<K>,
    hi: &mut Option<K>,
    below: Option<K>,
    above: Option<K>,
) {
    if let Some(k) = below {
        if lo
            .as_ref()
            .is_none_or(|l| cmp_keys(k.as_ref(), l.as_ref()) == Ordering::Greater)
        {
            *lo = Some(k);
        }
    }
    if let Some(k) = above {
        if hi
            .as_ref()
            .is_none_or(|h| cmp_keys(k.as_ref(), h.as_ref()) == Ordering::Less)
        {
            *hi = Some(k);
        }
    }
}

/// A leaf page's keys must lie in `[lo, hi)`.
pub(crate) fn check_range(page: &Page<'_>, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Result<()> {
    if let Some(lo) = lo {
        if cmp_keys(page.key(0)?, lo) == Ordering::Less {
            return Err(Error::corrupt(
                page.id,
                "leaf holds a key below its parent's separator (page reachable from the wrong place)",
            ));
        }
    }
    if let Some(hi) = hi {
        let last = page.key(page.count.saturating_sub(1))?;
        if cmp_keys(last, hi) != Ordering::Less {
            return Err(Error::corrupt(
                page.id,
                "leaf holds a key at or after the next separator (page reachable from the wrong place)",
            ));
        }
    }
    Ok(())
}

/// A leaf `page` with a key on the wrong `side` of element `i` of its parent (a branch page,
/// or `None`: a branch node of the write arena).
pub(crate) fn fence_error(page: u64, side: &str, parent: Option<u64>, i: usize) -> Error {
    let from = match parent {
        Some(p) => format!("branch page {p} element {i}"),
        None => format!("element {i} of a changed branch"),
    };
    Error::corrupt(
        page,
        format!(
            "leaf holds a key {side} the separator of {from} (page reachable from the wrong place)"
        ),
    )
}
