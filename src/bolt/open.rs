//! Opening a bbolt file: page-size discovery and meta selection by bbolt's rules, with every
//! meta problem reported on the way, and salvage's fallback to an unverified meta.

use super::file::BoltFile;
use super::format::*;
use super::problem::{BoltProblem, Severity};
use crate::{Error, Result};

/// The outcome of opening: the metas as found, the chosen geometry (if any) and the problems.
#[derive(Clone, Debug)]
pub struct OpenOutcome<'a> {
    /// The file at its chosen meta, when one is usable.
    pub file: Option<BoltFile<'a>>,
    /// Both metas as found.
    pub metas: Vec<MetaInfo>,
    /// The page size chosen (`None`: no usable meta).
    pub page_size: Option<u32>,
    /// What opening found wrong.
    pub problems: Vec<BoltProblem>,
}

fn meta_problem(sev: Severity, page: u64, detail: String) -> BoltProblem {
    BoltProblem {
        severity: sev,
        page,
        path: Vec::new(),
        detail,
        lost: None,
    }
}

impl<'a> BoltFile<'a> {
    /// Open strictly: choose the newest valid meta as bbolt does, or fail with
    /// [`Error::Corruption`] naming the meta pages when neither validates.
    pub fn open(bytes: &'a [u8]) -> Result<BoltFile<'a>> {
        let out = Self::open_outcome(bytes, false);
        match out.file {
            Some(f) => Ok(f),
            None => {
                let detail = out
                    .problems
                    .iter()
                    .map(|p| format!("page {}: {}", p.page, p.detail))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Error::Corruption { page: 0, detail })
            }
        }
    }

    /// Page-size discovery and meta selection, reporting every problem on the way.
    ///
    /// bbolt's rules: the page size comes from meta 0 when it validates, else from a valid meta
    /// 1 found at offset `1024 << i` (i < 15); the active meta is the valid one with the higher
    /// txid (ties: meta 0). A valid meta whose root, freelist or high-water mark does not fit
    /// the file is passed over in favour of the other one. With `salvage`, when no meta
    /// validates, the newest one with the right magic and version is used anyway and that is
    /// reported as damage.
    pub fn open_outcome(bytes: &'a [u8], salvage: bool) -> OpenOutcome<'a> {
        let file_len = bytes.len() as u64;
        let (metas, ps, discovered) = find_metas(bytes);
        let mut problems = header_problems(&metas);
        // Candidates, newest first (ties: meta 0 first, as bbolt).
        let mut order: Vec<&MetaInfo> = metas.iter().collect();
        order.sort_by(|a, b| b.txid.cmp(&a.txid).then(a.which.cmp(&b.which)));
        let choice = choose_meta(&order, file_len, ps, salvage);
        for m in &metas {
            problems.extend(invalid_meta_problem(m, &choice));
            problems.extend(sanity_problem(m, &choice, file_len, ps));
        }
        if choice.meta.is_none() {
            problems.push(no_meta_problem(&order, ps, discovered));
        }
        let file = choice
            .meta
            .map(|m| BoltFile::with_meta(bytes, ps, m, choice.unverified));
        OpenOutcome {
            page_size: (discovered || file.is_some()).then_some(ps),
            file,
            metas,
            problems,
        }
    }
}

/// Both metas and the page size: from meta 0 when it validates, else from a valid meta 1
/// probed at `1024 << i` (i < 15). Returns the metas, the page size and whether it was
/// discovered; when neither meta found it, meta 0's field when it is a sane page size, else
/// 4096, so that both metas can still be reported (and, with salvage, used).
fn find_metas(bytes: &[u8]) -> (Vec<MetaInfo>, u32, bool) {
    let file_len = bytes.len() as u64;
    let m0 = MetaInfo::parse(bytes, 0, 0);
    let mut page_size = None;
    let mut m1 = None;
    if m0.valid() && page_size_ok(m0.page_size) {
        page_size = Some(m0.page_size);
    } else {
        // Probe for meta 1 (bounded: 15 candidates).
        for i in 0..15u32 {
            let off = 1024u64 << i;
            if off.saturating_add(META_PAGE_MIN as u64) > file_len {
                break;
            }
            let m = MetaInfo::parse(bytes, off, 1);
            if m.valid() && u64::from(m.page_size) == off && page_size_ok(m.page_size) {
                page_size = Some(m.page_size);
                m1 = Some(m);
                break;
            }
        }
    }
    let discovered = page_size.is_some();
    let ps = page_size.unwrap_or(if page_size_ok(m0.page_size) {
        m0.page_size
    } else {
        4096
    });
    let m1 = m1.unwrap_or_else(|| MetaInfo::parse(bytes, u64::from(ps), 1));
    (vec![m0, m1], ps, discovered)
}

/// Header checks of valid metas (not covered by the checksum; bbolt does not check them
/// either).
fn header_problems(metas: &[MetaInfo]) -> Vec<BoltProblem> {
    let mut problems = Vec::new();
    for m in metas {
        if let Some(h) = m.header {
            if m.valid() && (h.flags != FLAG_META || h.id != u64::from(m.which)) {
                problems.push(meta_problem(
                    Severity::Warning,
                    u64::from(m.which),
                    format!(
                        "meta page header has id {} and flags {} (expected id {} and meta)",
                        h.id,
                        page_type_name(h.flags),
                        m.which
                    ),
                ));
            }
        }
    }
    problems
}

/// The meta chosen to read the file through.
struct Choice<'m> {
    meta: Option<&'m MetaInfo>,
    /// No meta validates and salvage chose one whose magic and version are right.
    unverified: bool,
}

impl Choice<'_> {
    fn is(&self, m: &MetaInfo) -> bool {
        self.meta.is_some_and(|c| c.which == m.which)
    }
}

/// The newest valid meta of page size `ps` that fits the file, else the newest valid one;
/// with `salvage` and no valid meta, the same among the plausible ones (unverified).
fn choose_meta<'m>(order: &[&'m MetaInfo], file_len: u64, ps: u32, salvage: bool) -> Choice<'m> {
    let pick = |usable: fn(&MetaInfo) -> bool| {
        let candidates: Vec<&MetaInfo> = order
            .iter()
            .copied()
            .filter(|m| usable(m) && m.page_size == ps)
            .collect();
        let sane = |m: &MetaInfo| m.sanity_problems(file_len, ps).is_empty();
        candidates
            .iter()
            .copied()
            .find(|m| sane(m))
            .or(candidates.first().copied())
    };
    match pick(MetaInfo::valid) {
        Some(m) => Choice {
            meta: Some(m),
            unverified: false,
        },
        None if salvage => Choice {
            meta: pick(MetaInfo::plausible),
            unverified: true,
        },
        None => Choice {
            meta: None,
            unverified: false,
        },
    }
}

/// Why meta `m` fails validation, and what that means given the choice.
fn invalid_meta_problem(m: &MetaInfo, choice: &Choice<'_>) -> Option<BoltProblem> {
    let why = m.problem.as_ref()?;
    let sev = if choice.meta.is_some() && !choice.unverified {
        Severity::Warning
    } else {
        Severity::Damage
    };
    let consequence = match choice.meta {
        Some(c) if !choice.unverified && m.txid > c.txid => format!(
            "; using meta {} (txid {}): the commit of txid {} is lost",
            c.which, c.txid, m.txid
        ),
        Some(c) if !choice.unverified => format!("; using meta {} (txid {})", c.which, c.txid),
        Some(_) if choice.is(m) => {
            "; salvage uses it anyway because no meta validates (its contents are unverified)"
                .to_string()
        }
        _ => String::new(),
    };
    Some(meta_problem(
        sev,
        u64::from(m.which),
        format!("meta {} is invalid: {why}{consequence}", m.which),
    ))
}

/// What does not fit the file in a valid or chosen meta: damage when it is in use, a warning
/// when it was passed over because of it.
fn sanity_problem(
    m: &MetaInfo,
    choice: &Choice<'_>,
    file_len: u64,
    ps: u32,
) -> Option<BoltProblem> {
    let is_chosen = choice.is(m);
    let sanity = m.sanity_problems(file_len, ps);
    if !(m.valid() || is_chosen) || sanity.is_empty() {
        return None;
    }
    let (sev, what) = if is_chosen {
        (Severity::Damage, "in use despite")
    } else {
        (Severity::Warning, "passed over because of")
    };
    Some(meta_problem(
        sev,
        u64::from(m.which),
        format!(
            "meta {} (txid {}) {what}: {}",
            m.which,
            m.txid,
            sanity.join("; ")
        ),
    ))
}

/// Neither meta can be used: how the page size was looked for, and whether salvage could
/// still read the file.
fn no_meta_problem(order: &[&MetaInfo], ps: u32, discovered: bool) -> BoltProblem {
    let how = if discovered {
        String::new()
    } else {
        format!(" (no valid meta at any candidate page size 1 KiB .. 16 MiB; meta 1 looked for at offset {ps})")
    };
    let hint = order
        .iter()
        .find(|m| m.plausible() && m.page_size == ps)
        .map(|m| {
            format!(
                "; salvage can still read it through meta {} (txid {}), whose magic and version are right, without verification",
                m.which, m.txid
            )
        })
        .unwrap_or_default();
    meta_problem(
        Severity::Damage,
        0,
        format!("neither meta page is valid; the file cannot be opened{how}{hint}"),
    )
}
