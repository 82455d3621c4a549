//! Free space in memory: which pages below the high-water mark no commit can reach.
//!
//! A set of free runs that may be reused now, and pages freed by recent commits that stay
//! pending until no reader can see them and the commit that freed them is durable. How it is
//! persisted is [`crate::format::freelist`]'s.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::format::freelist::{record_size, Record, CHAIN_COMPACT, KIND_DELTA, KIND_FULL};
use crate::format::page::ChildRef;

/// A set of page runs `[start, start + len)`, kept coalesced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunSet {
    runs: BTreeMap<u64, u64>,
    pages: u64,
}

impl RunSet {
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }
    pub(crate) fn runs(&self) -> usize {
        self.runs.len()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs.iter().map(|(&s, &l)| (s, l))
    }
    pub(crate) fn contains(&self, p: u64) -> bool {
        match self.runs.range(..=p).next_back() {
            Some((&s, &l)) => p < s + l,
            None => false,
        }
    }
    /// True if any page of `[start, start + len)` is in the set.
    pub(crate) fn overlaps(&self, start: u64, len: u64) -> bool {
        if let Some((&s, &l)) = self.runs.range(..start + len).next_back() {
            if s + l > start {
                return true;
            }
        }
        false
    }
    /// Add a run; false (and no change) if it overlaps a run already present.
    pub(crate) fn insert(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        if self.overlaps(start, len) {
            return false;
        }
        let (mut s, mut l) = (start, len);
        if let Some((&ps, &pl)) = self.runs.range(..s).next_back() {
            if ps + pl == s {
                self.runs.remove(&ps);
                s = ps;
                l += pl;
            }
        }
        if let Some(&nl) = self.runs.get(&(start + len)) {
            self.runs.remove(&(start + len));
            l += nl;
        }
        self.runs.insert(s, l);
        self.pages += len;
        true
    }
    /// Remove a run that must be wholly present; false (and no change) otherwise.
    pub(crate) fn remove(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let (s, l) = match self.runs.range(..=start).next_back() {
            Some((&s, &l)) if start + len <= s + l => (s, l),
            _ => return false,
        };
        self.runs.remove(&s);
        if start > s {
            self.runs.insert(s, start - s);
        }
        if start + len < s + l {
            self.runs.insert(start + len, s + l - start - len);
        }
        self.pages -= len;
        true
    }
    /// Take `n` contiguous pages, lowest first.
    pub(crate) fn alloc(&mut self, n: u64) -> Option<u64> {
        let start = self.runs.iter().find(|(_, &l)| l >= n).map(|(&s, _)| s)?;
        self.remove(start, n);
        Some(start)
    }
    /// Remove and return the run that ends exactly at `end`, if any.
    pub(crate) fn take_tail(&mut self, end: u64) -> Option<(u64, u64)> {
        let (&s, &l) = self.runs.iter().next_back()?;
        if s + l == end {
            self.runs.remove(&s);
            self.pages -= l;
            Some((s, l))
        } else {
            None
        }
    }
    /// Drop every page at or above `hwm`.
    pub(crate) fn clip(&mut self, hwm: u64) {
        while let Some((&s, &l)) = self.runs.iter().next_back() {
            if s + l <= hwm {
                break;
            }
            self.runs.remove(&s);
            self.pages -= l;
            if s < hwm {
                self.runs.insert(s, hwm - s);
                self.pages += hwm - s;
            }
        }
    }
}

/// The writer's free-space state.
#[derive(Clone, Debug, Default)]
pub(crate) struct FreeState {
    /// Reusable now.
    pub free: RunSet,
    /// Freed by commit `txid`, reusable once that commit is durable and no reader is older.
    pub pending: BTreeMap<u64, Vec<(u64, u64)>>,
    /// The persisted chain, newest first: pointer and span (pages) of each record.
    pub chain: Vec<(ChildRef, u64)>,
}

impl FreeState {
    pub(crate) fn pending_pages(&self) -> u64 {
        self.pending.values().flatten().map(|&(_, l)| l).sum()
    }

    /// Move pending runs freed at or before `upto` into the free set.
    pub(crate) fn release(&mut self, upto: u64) -> Result<()> {
        let keep = self.pending.split_off(&(upto.saturating_add(1)));
        let done = std::mem::replace(&mut self.pending, keep);
        for (txid, runs) in done {
            for (s, l) in runs {
                if !self.free.insert(s, l) {
                    return Err(Error::corrupt(
                        s,
                        format!("page run {s}+{l} freed twice (txid {txid})"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What a commit writes as its free-space record: a full record or a delta, and its size.
pub(crate) struct RecordPlan {
    pub full: bool,
    /// Pages the record spans (from a bound on its runs).
    pub pages: u64,
}

impl FreeState {
    /// Choose the record of a commit that freed `freed` runs and allocated `allocated`: a delta
    /// against the previous record, or a full record when there is no chain yet, the chain has
    /// reached [`CHAIN_COMPACT`] records, a full record fits in one page, or it is no larger
    /// than the delta. The bounds count one more run for the record's own allocation, and the
    /// full bound the old chain's pages, which a full record frees.
    pub(crate) fn plan_record(
        &self,
        freed: usize,
        allocated: usize,
        page_size: usize,
    ) -> RecordPlan {
        let pending_runs: usize = self.pending.values().map(|v| v.len()).sum();
        let full_runs = self.free.runs() + pending_runs + freed + self.chain.len() + 1;
        let delta_runs = freed + allocated + 1;
        let full = self.chain.is_empty()
            || self.chain.len() as u32 >= CHAIN_COMPACT
            || record_size(full_runs) <= page_size
            || full_runs <= delta_runs;
        let runs = if full { full_runs } else { delta_runs };
        RecordPlan {
            full,
            pages: record_size(runs).div_ceil(page_size) as u64,
        }
    }

    /// The record of `plan`, once its pages are allocated and the high-water mark is `hwm`: a
    /// full record lists every free and pending run and `freed` (which must hold the old
    /// chain's pages); a delta lists `freed` and the runs this commit `allocated`.
    pub(crate) fn record(
        &self,
        plan: &RecordPlan,
        hwm: u64,
        freed: &[(u64, u64)],
        allocated: &[(u64, u64)],
    ) -> Result<Record> {
        if !plan.full {
            let Some(&(prev, _)) = self.chain.first() else {
                return Err(Error::bug(
                    "a delta free-space record with no record before it",
                ));
            };
            return Ok(Record {
                kind: KIND_DELTA,
                chain_len: self.chain.len() as u32 + 1,
                hwm,
                prev,
                add: freed.to_vec(),
                remove: allocated.to_vec(),
            });
        }
        let mut set = self.free.clone();
        for &(s, l) in self.pending.values().flatten().chain(freed.iter()) {
            if !set.insert(s, l) {
                return Err(Error::corrupt(s, format!("page run {s}+{l} freed twice")));
            }
        }
        set.clip(hwm);
        Ok(Record {
            kind: KIND_FULL,
            chain_len: 1,
            hwm,
            prev: ChildRef::EMPTY,
            add: set.iter().collect(),
            remove: Vec::new(),
        })
    }

    /// Make the record at `r` the head of the chain (the whole chain, for a full record) and
    /// hold the runs this commit `freed` pending until commit `txid` is durable.
    pub(crate) fn push_record(
        &mut self,
        r: ChildRef,
        plan: &RecordPlan,
        txid: u64,
        freed: Vec<(u64, u64)>,
    ) {
        if plan.full {
            self.chain = vec![(r, plan.pages)];
        } else {
            self.chain.insert(0, (r, plan.pages));
        }
        self.pending.insert(txid, freed);
    }
}
