//! Budgeted cursors and iterators: a walk that runs out of its budget stops with the position
//! to go on from, never loads more than one page beyond the budget, and, resumed from that
//! position, returns every entry exactly once and in order.

mod common;

use std::ops::Bound;

use common::walk::{budgeted_walk, Seen};
use common::{for_seeds, Rng};
use deadbolt::{Budget, Db, Error, Options, Tx};

const P: usize = 1024;

/// Bucket "b" with `n` keys of random lengths (some values long enough to span pages) and a
/// few nested buckets among them.
fn build(seed: u64, n: usize) -> Db {
    let db = Db::open_storage(
        std::sync::Arc::new(deadbolt::MemStorage::new()),
        Options {
            page_size: P,
            ..Options::default()
        },
    )
    .unwrap();
    let mut rng = Rng::new(seed);
    db.update(|tx| {
        let b = tx.create_bucket(b"b")?;
        for i in 0..n {
            let key = format!("k{:08}", rng.below(1_000_000_000));
            if rng.chance(2) {
                b.create_bucket_if_not_exists(key.as_bytes())?
                    .put(b"inner", format!("{i}").as_bytes())?;
            } else if b.bucket(key.as_bytes())?.is_none() {
                let len = if rng.chance(3) {
                    2000
                } else {
                    rng.below(60) as usize
                };
                b.put(key.as_bytes(), &vec![i as u8; len])?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    db
}

/// Every entry of "b", unbudgeted, in key order.
fn all(tx: &Tx<'_>) -> Seen {
    let b = tx.bucket(b"b").unwrap().unwrap();
    let mut c = b.cursor();
    let mut out = Vec::new();
    let mut e = c.first().unwrap();
    while let Some(x) = e {
        out.push((x.key.to_vec(), x.value.map(|v| v.to_vec())));
        e = c.next().unwrap();
    }
    out
}

/// Walk "b" under random budgets of at least `min` pages (see `common::walk`).
fn budgeted(tx: &Tx<'_>, rng: &mut Rng, min: u64, forward: bool) -> (Seen, u64) {
    let b = tx.bucket(b"b").unwrap().unwrap();
    let mut c = b.cursor();
    let w = budgeted_walk(tx, &mut c, forward, || min + rng.below(12));
    if let Err(e) = w.end {
        panic!("{e}");
    }
    (w.seen, w.exhausted)
}

#[test]
fn a_cursor_that_runs_out_goes_on_from_where_it_was_and_misses_nothing() {
    for_seeds("budget", 0..12, |seed| {
        let db = build(seed, 3000);
        let tx = db.begin_read().unwrap();
        let want = all(&tx);
        let depth = tx.bucket(b"b").unwrap().unwrap().stats().unwrap().depth;
        let mut rng = Rng::new(seed);
        // Twice the depth: a resumed step re-seeks (depth pages) and may cross to the next
        // leaf (at most depth more), so every refill makes progress.
        let (fwd, n) = budgeted(&tx, &mut rng, 2 * depth + 1, true);
        assert_eq!(fwd, want, "seed {seed}");
        assert!(n > 10, "the budget ran out {n} times");
        let (mut back, _) = budgeted(&tx, &mut rng, 2 * depth + 1, false);
        back.reverse();
        assert_eq!(back, want, "seed {seed}");
    });
}

#[test]
fn a_budget_smaller_than_the_tree_is_deep_stops_every_call_within_one_page_of_it() {
    let db = build(7, 3000);
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let depth = b.stats().unwrap().depth;
    assert!(depth >= 3, "depth {depth}");
    for budget in 0..depth {
        let mut c = b.cursor();
        c.set_budget(Budget::pages(budget)).unwrap();
        let before = tx.pages_loaded();
        match c.seek(b"k5") {
            Err(Error::BudgetExhausted { resume }) => {
                assert_eq!(resume, Bound::Included(b"k5".to_vec()))
            }
            other => panic!("{other:?}"),
        }
        assert!(tx.pages_loaded() - before <= budget + 1);
        // Still out of budget: the next call loads at most one more page.
        assert!(c.next().is_err());
        assert!(tx.pages_loaded() - before <= budget + 1);
    }
}

#[test]
fn a_byte_budget_stops_at_the_entry_that_crosses_it() {
    let db = build(3, 2000);
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let (mut got, mut n) = (0u64, 0u64);
    let mut it = b.iter().budget(Budget::unlimited().with_bytes(10_000));
    for kv in &mut it {
        match kv {
            Ok((k, v)) => {
                got += (k.len() + v.len()) as u64;
                n += 1;
            }
            Err(Error::BudgetExhausted { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got >= 10_000, "{got} bytes in {n} entries");
    // The usage also counts the nested buckets' keys the iterator skipped.
    assert!(it.usage().bytes >= got);
    assert!(it.usage().bytes - got < 10_000);
}

#[test]
fn a_passed_deadline_loads_nothing() {
    let db = build(4, 500);
    let tx = db.begin_read().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    let before = tx.pages_loaded();
    let mut it = b
        .iter()
        .budget(Budget::unlimited().with_deadline(std::time::Instant::now()));
    assert!(matches!(
        it.next(),
        Some(Err(Error::BudgetExhausted {
            resume: Bound::Unbounded
        }))
    ));
    assert!(it.next().is_none(), "an exhausted iterator ends");
    assert_eq!(tx.pages_loaded(), before);
}

/// Iterate a range from both ends under budgets, restarting from each resume bound, possibly
/// in a new transaction: the pieces make up the range exactly.
#[test]
fn an_iterator_restarted_from_each_resume_bound_yields_the_range_exactly() {
    for_seeds("budget", 0..12, |seed| {
        let db = build(seed + 100, 3000);
        let mut rng = Rng::new(seed);
        let lo = format!("k{:08}", rng.below(300_000_000)).into_bytes();
        let hi = format!("k{:08}", 600_000_000 + rng.below(400_000_000)).into_bytes();
        let want: Vec<(Vec<u8>, Vec<u8>)> = db
            .view(|tx| {
                let b = tx.bucket(b"b")?.unwrap();
                b.range(lo.clone()..hi.clone())
                    .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for forward in [true, false] {
            let (mut from, mut to) = (Bound::Included(lo.clone()), Bound::Excluded(hi.clone()));
            let mut got = Vec::new();
            'pieces: for _ in 0..100_000 {
                // A new transaction for some pieces: nothing changes here, so the same.
                let tx = db.begin_read().unwrap();
                let b = tx.bucket(b"b").unwrap().unwrap();
                let budget = 8 + rng.below(20);
                let it = b
                    .range((from.clone(), to.clone()))
                    .budget(Budget::pages(budget));
                let it: Box<dyn Iterator<Item = _>> = if forward {
                    Box::new(it)
                } else {
                    Box::new(it.rev())
                };
                let before = tx.pages_loaded();
                for kv in it {
                    assert!(tx.pages_loaded() - before <= budget + 1);
                    match kv {
                        Ok((k, v)) => got.push((k.to_vec(), v.to_vec())),
                        Err(Error::BudgetExhausted { resume }) => {
                            if forward {
                                from = resume;
                            } else {
                                to = resume;
                            }
                            continue 'pieces;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                if !forward {
                    got.reverse();
                }
                assert_eq!(got, want, "seed {seed} forward {forward}");
                break;
            }
        }
    });
}

/// A nested bucket's cursor opened with `Cursor::nested` spends the parent cursor's budget.
#[test]
fn a_walk_down_nested_buckets_spends_one_budget() {
    let db = Db::in_memory().unwrap();
    db.update(|tx| {
        let b = tx.create_bucket(b"top")?;
        for i in 0..50u32 {
            let c = b.create_bucket(format!("child-{i:03}").as_bytes())?;
            for j in 0..200u32 {
                c.put(&j.to_be_bytes(), &[1u8; 40])?;
            }
        }
        Ok::<_, Error>(())
    })
    .unwrap();
    let tx = db.begin_read().unwrap();
    let top = tx.bucket(b"top").unwrap().unwrap();
    let mut c = top.cursor();
    c.set_budget(Budget::pages(40)).unwrap();
    let before = tx.pages_loaded();
    let mut inner = 0;
    let stop = 'walk: loop {
        let e = match if inner == 0 { c.first() } else { c.next() } {
            Ok(Some(e)) => e,
            Ok(None) => break 'walk None,
            Err(e) => break 'walk Some(e),
        };
        let mut n = c.nested(&e.key).unwrap();
        let mut x = n.first();
        loop {
            match x {
                Ok(Some(_)) => inner += 1,
                Ok(None) => break,
                Err(e) => break 'walk Some(e),
            }
            x = n.next();
        }
    };
    assert!(
        matches!(stop, Some(Error::BudgetExhausted { .. })),
        "{stop:?}"
    );
    assert!(inner > 0 && inner < 50 * 200, "{inner}");
    assert!(tx.pages_loaded() - before <= 41);
}

/// In a write transaction the budget counts the snapshot's pages (not the transaction's own
/// changed nodes, which are in memory), and a walk resumed after each exhaustion still returns
/// the transaction's view exactly, deletes through the cursor included.
#[test]
fn a_budgeted_cursor_in_a_write_transaction_sees_its_own_changes_once_each() {
    let db = build(11, 3000);
    let tx = db.begin_write().unwrap();
    let b = tx.bucket(b"b").unwrap().unwrap();
    for i in 0..300u32 {
        b.put(format!("k5{i:07}").as_bytes(), b"new").unwrap();
    }
    let want: Vec<Vec<u8>> = all(&tx).into_iter().map(|(k, _)| k).collect();
    let mut c = b.cursor();
    c.set_budget(Budget::pages(7)).unwrap();
    let (mut got, mut refills, mut deleted) = (Vec::new(), 0, 0);
    let mut e = c.first();
    for _ in 0..100_000 {
        match e {
            Ok(Some(x)) => {
                got.push(x.key.to_vec());
                // Delete every tenth plain value through the cursor, as a cleanup walk would.
                if got.len() % 10 == 0 && x.value.is_some() {
                    c.delete().unwrap();
                    deleted += 1;
                }
                e = c.next();
            }
            Ok(None) => break,
            Err(Error::BudgetExhausted { .. }) => {
                refills += 1;
                c.set_budget(Budget::pages(7)).unwrap();
                e = c.next();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, want);
    assert!(refills > 3, "{refills} refills");
    assert_eq!(all(&tx).len(), want.len() - deleted);
}
