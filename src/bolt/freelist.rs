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
    /// A freelist is stored (false with NoFreelistSync).
    pub persisted: bool,
    /// Its first page.
    pub pgid: u64,
    /// 1 + overflow.
    pub page_span: u64,
    /// Page ids it lists.
    pub count: u64,
    /// The 0xFFFF escape was used.
    pub count_stored_in_first_element: bool,
}

/// The pages a walk and the freelist account for: reached by the tree, rejected by it, listed
/// as free, or the freelist's own span. Any other page below the high-water mark is
/// unreachable and unlisted (orphaned by damage, or leaked).
pub(super) struct KnownPages<'s> {
    pub(super) tree: &'s PageSet,
    pub(super) rejected: &'s PageSet,
    pub(super) free: &'s PageSet,
    /// `[start, end)` of the freelist pages, when the freelist page could be read.
    pub(super) freelist: Option<(u64, u64)>,
}

impl KnownPages<'_> {
    pub(super) fn contains(&self, p: u64) -> bool {
        self.tree.contains(p)
            || self.free.contains(p)
            || self.freelist.is_some_and(|(s, e)| (s..e).contains(&p))
            || self.rejected.contains(p)
    }
}

/// Read and validate the freelist. Returns its description, the set of listed ids, and the
/// span `[start, end)` of the freelist pages when the page could be read.
pub(super) fn analyze_freelist(
    file: &BoltFile<'_>,
    tree: &PageSet,
    problems: &mut ProblemList,
) -> (FreelistInfo, PageSet, Option<(u64, u64)>) {
    let mut info = FreelistInfo {
        persisted: file.freelist_pgid != PGID_NO_FREELIST,
        pgid: file.freelist_pgid,
        ..FreelistInfo::default()
    };
    let none = PageSet::new(file.limit);
    if !info.persisted {
        return (info, none, None);
    }
    let id = file.freelist_pgid;
    let (h, data) = match freelist_page(file, id) {
        Ok(x) => x,
        Err(d) => {
            damage(problems, id, d);
            return (info, none, None);
        }
    };
    let span = (id, id + 1 + u64::from(h.overflow));
    info.page_span = span.1 - span.0;
    if (span.0..span.1).any(|p| tree.contains(p)) {
        damage(
            problems,
            id,
            "freelist pages are also used by the tree".into(),
        );
    }
    let (count, start) = match id_count(h, data, &mut info) {
        Ok(x) => x,
        Err(d) => {
            damage(problems, id, d);
            return (info, none, Some(span));
        }
    };
    info.count = count;
    let ids = data.get(start..).unwrap_or(&[]);
    let free = listed_ids(file, tree, ids, count, span, problems);
    (info, free, Some(span))
}

fn damage(problems: &mut ProblemList, page: u64, detail: String) {
    problems.push(BoltProblem {
        severity: Severity::Damage,
        page,
        path: Vec::new(),
        detail,
        lost: None,
    })
}

/// Page `id`, named as the freelist by the meta: readable, and of type freelist.
fn freelist_page<'a>(
    file: &BoltFile<'a>,
    id: u64,
) -> std::result::Result<(PageHeader, &'a [u8]), String> {
    let (h, data) = file
        .page(id)
        .map_err(|d| format!("freelist page named by the meta: {d}"))?;
    if h.flags != FLAG_FREELIST {
        return Err(format!(
            "page named as the freelist by the meta has type {} (flags {:#06x})",
            page_type_name(h.flags),
            h.flags
        ));
    }
    Ok((h, data))
}

/// How many ids the freelist holds and the offset of the first: the header's count, or with
/// the 0xFFFF escape the u64 after the header. The ids must fit the freelist's own span.
fn id_count(
    h: PageHeader,
    data: &[u8],
    info: &mut FreelistInfo,
) -> std::result::Result<(u64, usize), String> {
    let (count, start) = if h.count == 0xFFFF {
        info.count_stored_in_first_element = true;
        match u64_at(data, PAGE_HEADER_SIZE) {
            Some(n) => (n, PAGE_HEADER_SIZE + 8),
            None => return Err("freelist count escape 0xFFFF but no count follows".into()),
        }
    } else {
        (u64::from(h.count), PAGE_HEADER_SIZE)
    };
    let room = (data.len().saturating_sub(start) / 8) as u64;
    if count > room {
        return Err(format!(
            "freelist claims {count} ids but its {} pages hold at most {room}",
            info.page_span
        ));
    }
    Ok((count, start))
}

/// The `count` ids at the start of `ids`, each checked: inside `[2, high-water)`, listed once,
/// not reachable from the tree, not the freelist's own pages (`span`).
fn listed_ids(
    file: &BoltFile<'_>,
    tree: &PageSet,
    ids: &[u8],
    count: u64,
    span: (u64, u64),
    problems: &mut ProblemList,
) -> PageSet {
    let id = file.freelist_pgid;
    let mut free = PageSet::new(file.limit);
    for i in 0..count as usize {
        let Some(pid) = u64_at(ids, i * 8) else {
            break;
        };
        if pid < 2 || pid >= file.high_water {
            damage(
                problems,
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
            damage(
                problems,
                id,
                format!("page {pid} is listed twice on the freelist"),
            );
            continue;
        }
        if tree.contains(pid) {
            damage(
                problems,
                pid,
                format!("page {pid} is on the freelist but reachable from the tree (a writer would overwrite live data)"),
            );
        }
        if (span.0..span.1).contains(&pid) {
            damage(
                problems,
                pid,
                format!("page {pid} is on the freelist but is the freelist itself"),
            );
        }
    }
    free
}
