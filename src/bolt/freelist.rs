//! The freelist as stored: its page, its ids (with the 0xFFFF count escape), and the checks
//! that none is out of range, listed twice, in use by the tree or the freelist itself. Used by
//! the diagnosis (census of free pages) and by salvage (orphaned pages are only told from free
//! ones when the freelist is consistent).

use super::file::BoltFile;
use super::format::*;
use super::page_set::PageSet;
use super::problem::{BoltProblem, ProblemList, Severity};

/// The freelist as found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FreelistInfo {
    pub persisted: bool,
    pub pgid: u64,
    /// 1 + overflow.
    pub page_span: u64,
    pub count: u64,
    /// The 0xFFFF escape was used.
    pub count_stored_in_first_element: bool,
}

/// Read and validate the freelist. Returns its description, the set of listed ids, and the
/// span `[start, end)` of the freelist pages when the page could be read.
pub(super) fn analyze_freelist(
    file: &BoltFile<'_>,
    tree: &PageSet,
    problems: &mut ProblemList,
) -> (FreelistInfo, PageSet, Option<(u64, u64)>) {
    let mut free = PageSet::new(file.limit);
    let mut info = FreelistInfo {
        persisted: file.freelist_pgid != PGID_NO_FREELIST,
        pgid: file.freelist_pgid,
        ..FreelistInfo::default()
    };
    if !info.persisted {
        return (info, free, None);
    }
    let id = file.freelist_pgid;
    let mut damage = |page: u64, detail: String| {
        problems.push(BoltProblem {
            severity: Severity::Damage,
            page,
            path: Vec::new(),
            detail,
            lost: None,
        })
    };
    let (h, data) = match file.page(id) {
        Ok(x) => x,
        Err(d) => {
            damage(id, format!("freelist page named by the meta: {d}"));
            return (info, free, None);
        }
    };
    if h.flags != FLAG_FREELIST {
        damage(
            id,
            format!(
                "page named as the freelist by the meta has type {} (flags {:#06x})",
                page_type_name(h.flags),
                h.flags
            ),
        );
        return (info, free, None);
    }
    let span = (id, id + 1 + u64::from(h.overflow));
    info.page_span = span.1 - span.0;
    if (span.0..span.1).any(|p| tree.contains(p)) {
        damage(id, "freelist pages are also used by the tree".into());
    }
    let (count, start) = if h.count == 0xFFFF {
        info.count_stored_in_first_element = true;
        match u64_at(data, PAGE_HEADER_SIZE) {
            Some(n) => (n, PAGE_HEADER_SIZE + 8),
            None => {
                damage(
                    id,
                    "freelist count escape 0xFFFF but no count follows".into(),
                );
                return (info, free, Some(span));
            }
        }
    } else {
        (u64::from(h.count), PAGE_HEADER_SIZE)
    };
    // Bound: the ids must fit in the freelist's own span.
    let room = (data.len().saturating_sub(start) / 8) as u64;
    if count > room {
        damage(
            id,
            format!(
                "freelist claims {count} ids but its {} pages hold at most {room}",
                info.page_span
            ),
        );
        return (info, free, Some(span));
    }
    info.count = count;
    for i in 0..count as usize {
        let Some(pid) = u64_at(data, start + i * 8) else {
            break;
        };
        if pid < 2 || pid >= file.high_water {
            damage(
                id,
                format!(
                    "freelist entry {i} is page {pid}, outside [2, high-water mark {})",
                    file.high_water
                ),
            );
            continue;
        }
        if pid >= file.limit {
            continue; // beyond the end of the file, already reported by the meta check
        }
        if !free.insert(pid) {
            damage(id, format!("page {pid} is listed twice on the freelist"));
            continue;
        }
        if tree.contains(pid) {
            damage(
                pid,
                format!("page {pid} is on the freelist but reachable from the tree (a writer would overwrite live data)"),
            );
        }
        if (span.0..span.1).contains(&pid) {
            damage(
                pid,
                format!("page {pid} is on the freelist but is the freelist itself"),
            );
        }
    }
    (info, free, Some(span))
}
