//! Opening a bbolt file: page-size discovery and meta selection by bbolt's rules, with every
//! meta problem reported on the way, and salvage's fallback to an unverified meta.

use super::file::BoltFile;
use super::format::*;
use super::problem::{BoltProblem, Severity};
use crate::{Error, Result};

/// The outcome of opening: the metas as found, the chosen geometry (if any) and the problems.
#[derive(Clone, Debug)]
pub struct OpenOutcome<'a> {
    pub file: Option<BoltFile<'a>>,
    pub metas: Vec<MetaInfo>,
    pub page_size: Option<u32>,
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
        let mut problems = Vec::new();
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
        // Neither meta found the page size: assume meta 0's field when it is a sane page size,
        // else 4096, so that both metas can still be reported (and, with salvage, used).
        let discovered = page_size.is_some();
        let ps = page_size.unwrap_or(if page_size_ok(m0.page_size) {
            m0.page_size
        } else {
            4096
        });
        let m1 = m1.unwrap_or_else(|| MetaInfo::parse(bytes, u64::from(ps), 1));
        let metas = vec![m0, m1];

        // Header checks (not covered by the checksum; bbolt does not check them either).
        for m in &metas {
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

        // Candidates, newest first (ties: meta 0 first, as bbolt).
        let mut order: Vec<&MetaInfo> = metas.iter().collect();
        order.sort_by(|a, b| b.txid.cmp(&a.txid).then(a.which.cmp(&b.which)));
        let valid: Vec<&MetaInfo> = order
            .iter()
            .copied()
            .filter(|m| m.valid() && m.page_size == ps)
            .collect();
        let sane = |m: &MetaInfo| m.sanity_problems(file_len, ps).is_empty();
        let mut unverified = false;
        let chosen: Option<&MetaInfo> = if !valid.is_empty() {
            valid
                .iter()
                .copied()
                .find(|m| sane(m))
                .or(valid.first().copied())
        } else if salvage {
            let plausible: Vec<&MetaInfo> = order
                .iter()
                .copied()
                .filter(|m| m.plausible() && m.page_size == ps)
                .collect();
            unverified = true;
            plausible
                .iter()
                .copied()
                .find(|m| sane(m))
                .or(plausible.first().copied())
        } else {
            None
        };

        for m in &metas {
            let is_chosen = chosen.is_some_and(|c| c.which == m.which);
            if let Some(why) = &m.problem {
                let sev = if chosen.is_some() && !unverified {
                    Severity::Warning
                } else {
                    Severity::Damage
                };
                let consequence = match chosen {
                    Some(c) if !unverified && m.txid > c.txid => format!(
                        "; using meta {} (txid {}): the commit of txid {} is lost",
                        c.which, c.txid, m.txid
                    ),
                    Some(c) if !unverified => format!("; using meta {} (txid {})", c.which, c.txid),
                    Some(_) if is_chosen => {
                        "; salvage uses it anyway because no meta validates (its contents are unverified)".to_string()
                    }
                    _ => String::new(),
                };
                problems.push(meta_problem(
                    sev,
                    u64::from(m.which),
                    format!("meta {} is invalid: {why}{consequence}", m.which),
                ));
            }
            let sanity = m.sanity_problems(file_len, ps);
            if (m.valid() || is_chosen) && !sanity.is_empty() {
                let sev = if is_chosen {
                    Severity::Damage
                } else {
                    Severity::Warning
                };
                let what = if is_chosen {
                    "in use despite".to_string()
                } else {
                    "passed over because of".to_string()
                };
                problems.push(meta_problem(
                    sev,
                    u64::from(m.which),
                    format!(
                        "meta {} (txid {}) {what}: {}",
                        m.which,
                        m.txid,
                        sanity.join("; ")
                    ),
                ));
            }
        }
        if chosen.is_none() {
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
            problems.push(meta_problem(
                Severity::Damage,
                0,
                format!("neither meta page is valid; the file cannot be opened{how}{hint}"),
            ));
        }
        let file = chosen.map(|m| BoltFile::with_meta(bytes, ps, m, unverified));
        OpenOutcome {
            page_size: (discovered || file.is_some()).then_some(ps),
            file,
            metas,
            problems,
        }
    }
}
