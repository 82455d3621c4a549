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
    /// Add a run; false (and no change) if it overlaps a run already present. One search finds
    /// every run that matters: the last run starting at or before the new run's end is the
    /// only one that can overlap it or touch its end, and when it touches the end, the run
    /// before it is the only one that can overlap or touch its start. (A search per question,
    /// five in all, was a tenth of the metadata delete row's instructions, in the commits'
    /// releases of freed pages.)
    pub(crate) fn insert(&mut self, start: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let end = start + len;
        let mut before = self.runs.range(..=end).rev();
        let (left, right) = match before.next() {
            Some((&s, &l)) if s == end => (before.next().map(|(&s, &l)| (s, l)), Some(l)),
            last => (last.map(|(&s, &l)| (s, l)), None),
        };
        if left.is_some_and(|(s, l)| s + l > start) {
            return false;
        }
        let mut merged = len;
        if let Some(l) = right {
            self.runs.remove(&end);
            merged += l;
        }
        match left {
            Some((s, l)) if s + l == start => *self.runs.entry(s).or_insert(0) += merged,
            _ => {
                self.runs.insert(start, merged);
            }
        }
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
        // Every run, sorted and coalesced: one sort, where a copy of the free set with each
        // pending and freed run inserted into it cost a search or more per run.
        let pending: usize = self.pending.values().map(Vec::len).sum();
        let mut runs = Vec::with_capacity(self.free.runs() + pending + freed.len());
        runs.extend(self.free.iter());
        runs.extend(self.pending.values().flatten().copied());
        runs.extend_from_slice(freed);
        runs.sort_unstable();
        let mut add: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
        for (s, l) in runs.into_iter().filter(|&(_, l)| l > 0) {
            match add.last_mut() {
                Some(last) if last.0 + last.1 > s => {
                    return Err(Error::corrupt(s, format!("page run {s}+{l} freed twice")));
                }
                Some(last) if last.0 + last.1 == s => last.1 += l,
                _ => add.push((s, l)),
            }
        }
        // Nothing at or above the high-water mark: the file ends there.
        while let Some(last) = add.last_mut() {
            if last.0 >= hwm {
                add.pop();
            } else {
                last.1 = last.1.min(hwm - last.0);
                break;
            }
        }
        Ok(Record {
            kind: KIND_FULL,
            chain_len: 1,
            hwm,
            prev: ChildRef::EMPTY,
            add,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{seeds, Rng};
    use std::collections::BTreeSet;

    /// The maximal runs of a set of pages, in order.
    fn runs_of(pages: &BTreeSet<u64>) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for &p in pages {
            match out.last_mut() {
                Some(last) if last.0 + last.1 == p => last.1 += 1,
                _ => out.push((p, 1)),
            }
        }
        out
    }

    /// Pins the run set's bookkeeping (its insert searches once for every neighbour): through
    /// random inserts (overlapping ones refused), removals, allocations, tail takes and clips,
    /// it holds exactly the pages of a plain set, as maximal runs, and counts them
    /// (`DEADBOLT_SEED=n` replays one seed).
    #[test]
    fn a_run_set_holds_the_pages_of_a_plain_set_through_every_edit() {
        for seed in seeds(300) {
            let mut r = Rng(seed);
            let mut set = RunSet::default();
            let mut model: BTreeSet<u64> = BTreeSet::new();
            for step in 0..300 {
                let start = r.below(200);
                let len = r.below(6);
                let what = r.below(10);
                let range = start..start + len;
                match what {
                    0..=4 => {
                        let free = range.clone().all(|p| !model.contains(&p));
                        assert_eq!(set.insert(start, len), free, "seed {seed} step {step}");
                        if free {
                            model.extend(range);
                        }
                    }
                    5 | 6 => {
                        let held = range.clone().all(|p| model.contains(&p));
                        assert_eq!(set.remove(start, len), held, "seed {seed} step {step}");
                        if held {
                            range.for_each(|p| {
                                model.remove(&p);
                            });
                        }
                    }
                    7 if len > 0 => {
                        let want = runs_of(&model).into_iter().find(|&(_, l)| l >= len);
                        let got = set.alloc(len);
                        assert_eq!(got, want.map(|(s, _)| s), "seed {seed} step {step}");
                        if let Some((s, _)) = want {
                            (s..s + len).for_each(|p| {
                                model.remove(&p);
                            });
                        }
                    }
                    8 => {
                        let last = runs_of(&model).last().copied();
                        let end = match last {
                            Some((s, l)) if r.below(2) == 0 => s + l,
                            _ => start,
                        };
                        let want = last.filter(|&(s, l)| s + l == end);
                        assert_eq!(set.take_tail(end), want, "seed {seed} step {step}");
                        if let Some((s, l)) = want {
                            (s..s + l).for_each(|p| {
                                model.remove(&p);
                            });
                        }
                    }
                    9 if r.below(8) == 0 => {
                        let hwm = 100 + r.below(120);
                        set.clip(hwm);
                        model.retain(|&p| p < hwm);
                    }
                    _ => {}
                }
                let runs: Vec<_> = set.iter().collect();
                assert_eq!(runs, runs_of(&model), "seed {seed} step {step}");
                assert_eq!(set.pages(), model.len() as u64, "seed {seed} step {step}");
            }
        }
    }

    /// Pins the full record's runs (one sort over the free, pending and freed runs) against the
    /// run set they come from: the same runs as inserting each into a copy of the free set and
    /// clipping it at the high-water mark, and a run freed twice is corruption
    /// (`DEADBOLT_SEED=n` replays one seed).
    #[test]
    fn a_full_record_lists_the_runs_of_the_free_set_with_every_pending_and_freed_run() {
        for seed in seeds(300) {
            let mut r = Rng(seed);
            let mut st = FreeState::default();
            let mut taken = BTreeSet::new();
            let mut run = |r: &mut Rng| {
                let s = 2 + r.below(300);
                let l = r.below(4);
                // Mostly runs apart from every other, sometimes one overlapping another.
                let clash = (s..s + l).any(|p| taken.contains(&p));
                if clash && r.below(8) != 0 {
                    return None;
                }
                taken.extend(s..s + l);
                Some((s, l))
            };
            for _ in 0..r.below(40) {
                if let Some((s, l)) = run(&mut r) {
                    st.free.insert(s, l);
                }
            }
            for txid in 0..r.below(4) {
                let runs: Vec<_> = (0..r.below(10)).filter_map(|_| run(&mut r)).collect();
                st.pending.insert(txid, runs);
            }
            let freed: Vec<_> = (0..r.below(20)).filter_map(|_| run(&mut r)).collect();
            let hwm = 150 + r.below(200);
            let mut want = st.free.clone();
            let mut twice = None;
            for &(s, l) in st.pending.values().flatten().chain(&freed) {
                if !want.insert(s, l) && twice.is_none() {
                    twice = Some(s);
                }
            }
            want.clip(hwm);
            let plan = RecordPlan {
                full: true,
                pages: 1,
            };
            match (st.record(&plan, hwm, &freed, &[]), twice) {
                (Ok(rec), None) => {
                    assert_eq!(rec.add, want.iter().collect::<Vec<_>>(), "seed {seed}");
                    assert_eq!((rec.kind, rec.hwm), (KIND_FULL, hwm), "seed {seed}");
                }
                (Err(Error::Corruption { .. }), Some(_)) => {}
                (got, twice) => panic!(
                    "seed {seed}: record {:?}, a run freed twice at {twice:?}",
                    got.map(|rec| rec.add)
                ),
            }
        }
    }
}
