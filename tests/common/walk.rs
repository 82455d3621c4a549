//! A cursor walk under budgets: from one end, refilled with a new budget after each
//! exhaustion, checking on every call that a budget's work stays within one page of it.

use std::ops::Bound;

use deadbolt::{Budget, Cursor, Error, Tx};

/// Entries as a walk saw them (`None`: a nested bucket).
pub type Seen = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// How a budgeted walk went.
pub struct Walk {
    pub seen: Seen,
    /// Budgets that ran out.
    pub exhausted: u64,
    /// `Ok` at the end of the bucket, or the first error other than an exhausted budget.
    pub end: Result<(), Error>,
}

/// Walk `c` (of a bucket of `tx`) forward or backward under page budgets drawn from `budget`,
/// refilling after each exhaustion. Asserts after every call that the pages loaded since the
/// budget was set (by `Tx::pages_loaded`) are at most the budget plus one and equal the
/// cursor's own count (but for a failed load), and that each `resume` is after the last entry returned.
pub fn budgeted_walk<'tx>(
    tx: &'tx Tx<'tx>,
    c: &mut Cursor<'tx>,
    forward: bool,
    mut budget: impl FnMut() -> u64,
) -> Walk {
    let mut w = Walk {
        seen: Vec::new(),
        exhausted: 0,
        end: Ok(()),
    };
    let mut limit = budget();
    c.set_budget(Budget::pages(limit)).unwrap();
    let mut since = tx.pages_loaded();
    let mut started = false;
    for _ in 0..1_000_000 {
        let r = match (started, forward) {
            (false, true) => c.first(),
            (false, false) => c.last(),
            (true, true) => c.next(),
            (true, false) => c.prev(),
        };
        let spent = tx.pages_loaded() - since;
        assert!(
            spent <= limit + 1,
            "loaded {spent} pages on a budget of {limit}"
        );
        // The cursor counts what the transaction loaded; a load that failed (the damage) is
        // counted by the transaction only, and ends the walk.
        if matches!(r, Ok(_) | Err(Error::BudgetExhausted { .. })) {
            assert_eq!(
                c.usage().pages,
                spent,
                "the cursor counts what the tx loaded"
            );
        } else {
            assert!(spent <= c.usage().pages + 1);
        }
        match r {
            Ok(Some(e)) => {
                started = true;
                w.seen.push((e.key.to_vec(), e.value.map(|v| v.to_vec())));
            }
            Ok(None) => return w,
            Err(Error::BudgetExhausted { resume }) => {
                w.exhausted += 1;
                let want = match w.seen.last() {
                    Some((k, _)) => Bound::Excluded(k.clone()),
                    None => Bound::Unbounded,
                };
                assert_eq!(resume, want);
                limit = budget();
                c.set_budget(Budget::pages(limit)).unwrap();
                since = tx.pages_loaded();
            }
            Err(e) => {
                w.end = Err(e);
                return w;
            }
        }
    }
    panic!("the walk made no progress in 1,000,000 calls");
}
