//! Point lookups: the hot path of a read, and the general form that also walks the write
//! arena.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::format::page::{cmp_keys, Page};
use crate::limits::MAX_DEPTH;
use crate::planted;
use crate::tx::access::{BucketRef, Loc};
use crate::tx::fence::{check_level, check_range, narrow};
use crate::tx::handle::Tx;

impl Tx<'_> {
    /// Point lookup: the entry for `key` (key, value, is-bucket), descending at most
    /// [`MAX_DEPTH`] levels and never through the same page twice.
    pub(crate) fn lookup<'a>(
        &'a self,
        b: BucketRef<'a>,
        key: &[u8],
    ) -> Result<Option<(Cow<'a, [u8]>, bool)>> {
        let mut loc = match self.root_loc(b)? {
            Some(l) => l,
            None => return Ok(None),
        };
        if let (Loc::Page(root), None) = (loc, &self.write) {
            return self.lookup_pages(root, key);
        }
        let mut path = [0u64; MAX_DEPTH + 1];
        // The tightest separators seen on the way down: the leaf's keys must lie in [lo, hi).
        let mut lo: Option<Cow<'_, [u8]>> = None;
        let mut hi: Option<Cow<'_, [u8]>> = None;
        for depth in 0..=MAX_DEPTH {
            if let Some(id) = Self::loc_page_id(loc) {
                if !planted::UNBOUNDED_DESCENT && path[..depth].contains(&id) {
                    return Err(Error::corrupt(
                        id,
                        "page appears twice on one root-to-leaf path (cycle)",
                    ));
                }
                path[depth] = id;
            }
            if self.loc_is_leaf(loc) {
                if let Loc::Page(p) = loc {
                    check_range(&p, lo.as_deref(), hi.as_deref())?;
                }
                let (i, eq) = self.loc_search_leaf(loc, key)?;
                if !eq {
                    return Ok(None);
                }
                let (_, v, bucket) = self.loc_item(loc, i)?;
                return Ok(Some((v, bucket)));
            }
            let i = self.loc_search_branch(loc, key)?;
            let below = if i >= 1 {
                Some(self.loc_key(loc, i)?)
            } else {
                None
            };
            let above = if i + 1 < self.loc_len(loc) {
                Some(self.loc_key(loc, i + 1)?)
            } else {
                None
            };
            narrow(&mut lo, &mut hi, below, above);
            loc = self.loc_child(loc, i)?;
        }
        Err(Self::loc_page_id(loc).map_or_else(Error::arena_too_deep, Error::too_deep))
    }

    /// [`Tx::lookup`] in a read transaction, where every node is a page: the hot path of a
    /// point read. The separators around each child taken are carried down (the tightest seen)
    /// and a leaf that does not hold `key` must be consistent with them: the keys on either
    /// side of where `key` would be lie inside them. A found key needs no check: routing put
    /// `key` inside every separator on the path. So a pointer aimed at the wrong subtree (its
    /// checksums forged) is corruption, not a silently missing key, at the cost of two key
    /// comparisons per level and none of extra bytes read.
    fn lookup_pages<'a>(
        &'a self,
        mut page: Page<'a>,
        key: &[u8],
    ) -> Result<Option<(Cow<'a, [u8]>, bool)>> {
        // No page can appear twice on this path (a cycle): each child must sit exactly one
        // level below its parent (`check_level`), so the levels fall strictly and the descent
        // ends within the root's level, which validation bounds by MAX_DEPTH. The loop bound
        // says the same again.
        let mut lo: Option<&[u8]> = None;
        let mut hi: Option<&[u8]> = None;
        let bytes = self.bytes();
        for _ in 0..=MAX_DEPTH {
            if page.leaf {
                let (i, eq) = page.search_leaf(key)?;
                if eq {
                    let it = page.leaf_item(i)?;
                    return Ok(Some((Cow::Borrowed(it.value), it.bucket)));
                }
                let before = if i >= 1 { Some(page.key(i - 1)?) } else { None };
                let after = if i < page.count {
                    Some(page.key(i)?)
                } else {
                    None
                };
                let below_lo =
                    matches!((before, lo), (Some(k), Some(l)) if cmp_keys(k, l) == Ordering::Less);
                let past_hi =
                    matches!((after, hi), (Some(k), Some(h)) if cmp_keys(k, h) != Ordering::Less);
                if below_lo || past_hi {
                    return Err(Error::corrupt(
                        page.id,
                        "leaf holds keys outside its parent's separators (page reachable from the wrong place)",
                    ));
                }
                return Ok(None);
            }
            // `narrow`, written out: the generic form costs ~90 instructions per get here
            // (callgrind, examples/read_cost.rs).
            let (i, fence) = page.search_branch_bounds(key)?;
            if let Some(k) = fence.below {
                if lo.is_none_or(|l| cmp_keys(k, l) == Ordering::Greater) {
                    lo = Some(k);
                }
            }
            if let Some(k) = fence.above {
                if hi.is_none_or(|h| cmp_keys(k, h) == Ordering::Less) {
                    hi = Some(k);
                }
            }
            let child = self.load_from(bytes, &page.child(i)?)?;
            check_level(&child, page.level)?;
            page = child;
        }
        Err(Error::too_deep(page.id))
    }

    // ---- mutation ------------------------------------------------------------------------
}
