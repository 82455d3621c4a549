//! Group commit (`Db::batch`): concurrent callers share one write transaction and one sync.
//!
//! Semantics follow bbolt's `DB.Batch`:
//!
//! * The first caller to find no open batch opens one and becomes its *leader*; later callers
//!   join it as *followers* until it holds [`BatchOptions::max_size`] calls.
//! * The leader waits until the batch is full, [`BatchOptions::max_delay`] has passed, or no
//!   caller has joined for [`QUIET`] (200 µs; bbolt always waits out the delay), closes
//!   it (newcomers open the next batch), and runs every call's closure, in arrival order, in one
//!   write transaction, then commits it: one sync for the whole batch.
//! * A closure that returns `Err` (or panics) is taken out of the batch, the transaction is rolled
//!   back and the others run again; the failed caller then runs its closure alone in a plain
//!   [`crate::Db::update`] and gets that outcome. One caller's failure never fails the others. A
//!   closure may therefore run more than once and must only act through the transaction.
//! * Each caller is told its outcome only after the commit (and so the sync) that covers its
//!   write has returned. If the commit fails, every caller in the batch gets the error.
//!
//! The queue and the leader's rounds are written against std-like primitives that are loom's
//! under `--cfg loom`, so the hand-off is model-checked (see `loom_models` at the end: they
//! need the queue's private parts, which is why this file runs over 600 lines).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::tx::Tx;

/// Tuning of [`crate::Db::batch`] (bbolt's `MaxBatchSize` and `MaxBatchDelay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most calls in one batch; a batch that reaches it is run at once. At least 1.
    pub max_size: usize,
    /// Longest a batch's leader waits for more callers before running it.
    pub max_delay: Duration,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_size: 1000,
            max_delay: Duration::from_millis(10),
        }
    }
}

/// A leader stops waiting for company once nobody has joined its batch for this long (so many
/// writers fill batches without each batch waiting out `max_delay`, and a lone writer waits this
/// long, not `max_delay`).
pub(crate) const QUIET: Duration = Duration::from_micros(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the generic core (model-checked) ----------------------------------------------------

/// A one-shot slot a follower waits on.
pub(crate) struct Slot<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Slot<T> {
        Slot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }

    fn put(&self, v: T) {
        let mut g = lock(&self.value);
        if g.is_none() {
            *g = Some(v);
        }
        drop(g);
        self.ready.notify_all();
    }

    /// Wait for the outcome. Terminates because every [`Reply`] delivers exactly once, even
    /// when dropped unsent (a leader that unwinds).
    pub(crate) fn wait(&self) -> T {
        let mut g = lock(&self.value);
        loop {
            if let Some(v) = g.take() {
                return v;
            }
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The sending half of a [`Slot`]: delivers exactly once; if dropped unsent, delivers the
/// value of `abandoned` so that no follower waits forever.
pub(crate) struct Reply<T> {
    slot: Option<Arc<Slot<T>>>,
    abandoned: fn() -> T,
}

impl<T> Reply<T> {
    pub(crate) fn new(slot: Arc<Slot<T>>, abandoned: fn() -> T) -> Reply<T> {
        Reply {
            slot: Some(slot),
            abandoned,
        }
    }

    pub(crate) fn send(mut self, v: T) {
        if let Some(s) = self.slot.take() {
            s.put(v);
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(s) = self.slot.take() {
            s.put((self.abandoned)());
        }
    }
}

/// What joining the queue made of the caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// Opened batch `id`: take it with [`Queue::take`] and run it.
    Leader(u64),
    /// Joined an open batch; its leader will reply.
    Follower,
}

struct QState<C> {
    /// The batch newcomers join.
    open: Option<(u64, Vec<C>)>,
    /// Batches that filled up before their leader took them.
    sealed: Vec<(u64, Vec<C>)>,
    next_id: u64,
}

/// The gathering of calls into batches.
pub(crate) struct Queue<C> {
    state: Mutex<QState<C>>,
    full: Condvar,
}

impl<C> Queue<C> {
    pub(crate) fn new() -> Queue<C> {
        Queue {
            state: Mutex::new(QState {
                open: None,
                sealed: Vec::new(),
                next_id: 0,
            }),
            full: Condvar::new(),
        }
    }

    /// Add `call` to the open batch, or open one (and lead it) if there is none.
    pub(crate) fn join(&self, call: C, max_size: usize) -> Joined {
        let max_size = max_size.max(1);
        let mut g = lock(&self.state);
        let st = &mut *g;
        let (joined, len) = match &mut st.open {
            Some((_, calls)) => {
                calls.push(call);
                (Joined::Follower, calls.len())
            }
            None => {
                let id = st.next_id;
                st.next_id = st.next_id.wrapping_add(1);
                st.open = Some((id, vec![call]));
                (Joined::Leader(id), 1)
            }
        };
        if len >= max_size {
            if let Some(b) = st.open.take() {
                st.sealed.push(b);
            }
            drop(g);
            self.full.notify_all();
        }
        joined
    }

    /// The leader of batch `id` takes it, closing it to newcomers: at once when `deadline` is
    /// `None`, otherwise once it is full, the deadline has passed, or (with `quiet`) nobody has
    /// joined it for that long.
    pub(crate) fn take(
        &self,
        id: u64,
        deadline: Option<Instant>,
        quiet: Option<Duration>,
    ) -> Vec<C> {
        let mut g = lock(&self.state);
        // Batch size at the previous wake-up; the number of waits is bounded by the batch's
        // growth (each quiet wait either sees a newcomer or ends) and by the deadline.
        let mut seen = usize::MAX;
        loop {
            if let Some(i) = g.sealed.iter().position(|(b, _)| *b == id) {
                return g.sealed.swap_remove(i).1;
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::ZERO,
            };
            if left.is_zero() {
                break;
            }
            let wait = match quiet {
                Some(q) => {
                    let now = match &g.open {
                        Some((b, calls)) if *b == id => calls.len(),
                        _ => 0,
                    };
                    if now == seen {
                        break;
                    }
                    seen = now;
                    left.min(q)
                }
                None => left,
            };
            g = match self.full.wait_timeout(g, wait) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        match g.open.take() {
            Some((b, calls)) if b == id => calls,
            other => {
                // Not ours (cannot happen: only its leader removes an open batch unless it
                // is full, and then it is in `sealed`). Put it back.
                g.open = other;
                Vec::new()
            }
        }
    }
}

/// How a call of a batch ended.
pub(crate) enum Verdict {
    /// Its closure succeeded and the batch's commit returned this.
    Committed(Result<()>),
    /// Its closure failed: the caller must run it alone.
    Solo,
}

/// The leader's rounds: begin a transaction, apply every call in order; on the first call that
/// fails, roll back (drop the transaction), hand that call back with [`Verdict::Solo`] and go
/// again without it; once all apply, commit and only then give every call the commit's result.
/// Each round removes a call or ends, so there are at most `calls.len() + 1` rounds.
pub(crate) fn run_rounds<C, T>(
    mut calls: Vec<C>,
    mut begin: impl FnMut() -> Result<T>,
    mut apply: impl FnMut(&T, &C) -> bool,
    mut commit: impl FnMut(T) -> Result<()>,
    mut finish: impl FnMut(C, Verdict),
) {
    let rounds = calls.len() + 1;
    for _ in 0..rounds {
        if calls.is_empty() {
            return;
        }
        let tx = match begin() {
            Ok(tx) => tx,
            Err(e) => {
                for c in calls.drain(..) {
                    finish(c, Verdict::Committed(Err(e.copy())));
                }
                return;
            }
        };
        match calls.iter().position(|c| !apply(&tx, c)) {
            Some(i) => {
                drop(tx);
                let c = calls.remove(i);
                finish(c, Verdict::Solo);
            }
            None => {
                let r = commit(tx);
                for c in calls.drain(..) {
                    let v = match &r {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.copy()),
                    };
                    finish(c, Verdict::Committed(v));
                }
                return;
            }
        }
    }
}

// ---- the engine's use of it --------------------------------------------------------------

/// A caller's closure, as the queue holds it.
type BatchFn = Box<dyn Fn(&Tx<'_>) -> Result<()> + Send + 'static>;

/// What a caller of [`Db::batch`] is told.
pub(crate) enum Outcome {
    Done(Result<()>),
    /// Run your closure alone.
    Solo(BatchFn),
}

fn abandoned() -> Outcome {
    Outcome::Done(Err(Error::Io(std::io::Error::other(
        "the batch's leader unwound before finishing the batch",
    ))))
}

pub(crate) struct Call {
    f: BatchFn,
    reply: Reply<Outcome>,
}

/// Shared state of the group-commit queue (one per `Db`).
pub(crate) struct Batcher {
    queue: Queue<Call>,
    opts: Mutex<BatchOptions>,
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher {
            queue: Queue::new(),
            opts: Mutex::new(BatchOptions::default()),
        }
    }
}

impl Batcher {
    /// Queue `f` (see [`crate::Db::batch`]), leading the batch if it is the first caller,
    /// where `begin` opens the write transaction.
    pub(crate) fn submit<'d, F>(&self, f: F, begin: &dyn Fn() -> Result<Tx<'d>>) -> Result<()>
    where
        F: Fn(&Tx<'_>) -> Result<()> + Send + 'static,
    {
        let opts = self.options();
        let slot = Arc::new(Slot::new());
        let call = Call {
            f: Box::new(f),
            reply: Reply::new(slot.clone(), abandoned),
        };
        if let Joined::Leader(id) = self.queue.join(call, opts.max_size) {
            // A delay too long to represent is a wait for a full batch (capped at an hour).
            let delay = opts.max_delay.min(Duration::from_secs(3600));
            let deadline = Instant::now().checked_add(delay);
            // Take the writer before closing the batch: while the previous batch commits (and
            // syncs), callers keep joining this one.
            let first = begin();
            let calls = self.queue.take(id, deadline, Some(QUIET));
            run_batch(calls, first, begin);
        }
        match slot.wait() {
            Outcome::Done(r) => r,
            Outcome::Solo(f) => {
                let tx = begin()?;
                f(&tx)?;
                tx.commit()
            }
        }
    }

    /// Set the largest batch and the longest wait (validated).
    pub(crate) fn set_options(&self, opts: BatchOptions) -> Result<()> {
        if opts.max_size == 0 {
            return Err(Error::InvalidArgument(
                "batch max_size must be at least 1".into(),
            ));
        }
        *lock(&self.opts) = opts;
        Ok(())
    }

    /// The current [`BatchOptions`].
    pub(crate) fn options(&self) -> BatchOptions {
        *lock(&self.opts)
    }
}

/// Run one batch of `calls` in rounds, the first in `first` (see [`run_rounds`]).
fn run_batch<'d>(calls: Vec<Call>, first: Result<Tx<'d>>, begin: &dyn Fn() -> Result<Tx<'d>>) {
    let mut first = Some(first);
    run_rounds(
        calls,
        || first.take().unwrap_or_else(begin),
        |tx, c| matches!(catch_unwind(AssertUnwindSafe(|| (c.f)(tx))), Ok(Ok(()))),
        |tx| tx.commit(),
        |c, v| {
            let Call { f, reply } = c;
            reply.send(match v {
                Verdict::Committed(r) => Outcome::Done(r),
                Verdict::Solo => Outcome::Solo(f),
            })
        },
    );
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::thread;
    use std::cell::RefCell;

    fn check(name: &str, f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(2);
        }
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = n.clone();
        b.check(move || {
            m.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            f()
        });
        eprintln!(
            "loom batch {name}: {} executions",
            n.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    #[derive(Default)]
    struct File {
        written: Vec<u64>,
        synced: Vec<u64>,
        commits: u64,
    }

    /// The engine: one writer at a time, a file.
    #[derive(Default)]
    struct Model {
        writer: Mutex<()>,
        file: Mutex<File>,
    }

    type MTx<'a> = (MutexGuard<'a, ()>, RefCell<Vec<u64>>);

    impl Model {
        fn begin(&self) -> Result<MTx<'_>> {
            Ok((lock(&self.writer), RefCell::new(Vec::new())))
        }
        fn apply(&self, tx: &MTx<'_>, v: u64, fail: bool) -> bool {
            if fail {
                // A failing closure may have written before failing.
                tx.1.borrow_mut().push(v + 1000);
                return false;
            }
            tx.1.borrow_mut().push(v);
            true
        }
        fn commit(&self, tx: MTx<'_>) -> Result<()> {
            let (w, staged) = tx;
            lock(&self.file).written.extend(staged.into_inner());
            // The sync, as a separate step another thread may observe before.
            {
                let mut f = lock(&self.file);
                f.synced = f.written.clone();
                f.commits += 1;
            }
            drop(w);
            Ok(())
        }
        fn synced_count(&self, v: u64) -> usize {
            lock(&self.file).synced.iter().filter(|&&x| x == v).count()
        }
    }

    enum MOut {
        Done(Result<()>),
        Solo,
    }

    struct MCall {
        v: u64,
        fail_in_batch: bool,
        reply: Reply<MOut>,
    }

    /// What a caller does: `Db::batch` with a closure writing `v` that fails in a batch
    /// (`fail_in_batch`) and/or alone (`fail_alone`).
    fn caller(
        q: &Queue<MCall>,
        m: &Model,
        v: u64,
        fail_in_batch: bool,
        fail_alone: bool,
        max_size: usize,
        wait: bool,
    ) -> Result<()> {
        let slot = Arc::new(Slot::new());
        let call = MCall {
            v,
            fail_in_batch,
            reply: Reply::new(slot.clone(), || MOut::Done(Err(Error::TxClosed))),
        };
        if let Joined::Leader(id) = q.join(call, max_size) {
            let deadline = wait.then(|| Instant::now() + Duration::from_secs(3600));
            let calls = q.take(id, deadline, None);
            run_rounds(
                calls,
                || m.begin(),
                |tx, c| m.apply(tx, c.v, c.fail_in_batch),
                |tx| m.commit(tx),
                |c, verdict| {
                    c.reply.send(match verdict {
                        Verdict::Committed(r) => MOut::Done(r),
                        Verdict::Solo => MOut::Solo,
                    })
                },
            );
        }
        let r = match slot.wait() {
            MOut::Done(r) => r,
            MOut::Solo => {
                let tx = m.begin()?;
                if m.apply(&tx, v, fail_alone) {
                    m.commit(tx)
                } else {
                    Err(Error::InvalidArgument("failed alone".into()))
                }
            }
        };
        match &r {
            Ok(()) => assert_eq!(m.synced_count(v), 1, "caller {v} told Ok before its sync"),
            Err(_) => assert_eq!(m.synced_count(v), 0, "failed caller {v} left a write"),
        }
        r
    }

    /// Three callers `(value, fails in batch, fails alone)`, one on the model's main thread.
    fn three(calls: [(u64, bool, bool); 3], max_size: usize, wait: bool) -> (Model, [bool; 3]) {
        let q = Arc::new(Queue::new());
        let m = Arc::new(Model::default());
        let hs: Vec<_> = calls[1..]
            .iter()
            .map(|&(v, fb, fa)| {
                let (q, m) = (q.clone(), m.clone());
                thread::spawn(move || caller(&q, &m, v, fb, fa, max_size, wait).is_ok())
            })
            .collect();
        let (v, fb, fa) = calls[0];
        let mut ok = [
            caller(&q, &m, v, fb, fa, max_size, wait).is_ok(),
            false,
            false,
        ];
        for (i, h) in hs.into_iter().enumerate() {
            ok[i + 1] = h.join().expect("caller thread");
        }
        let m = Arc::try_unwrap(m).unwrap_or_else(|_| panic!("model still shared"));
        for (i, &(v, _, _)) in calls.iter().enumerate() {
            let want = usize::from(ok[i]);
            assert_eq!(m.synced_count(v), want, "value {v} landed {want} times");
            assert_eq!(
                m.synced_count(v + 1000),
                0,
                "a failed closure's write landed"
            );
        }
        (m, ok)
    }

    /// A full batch: the leader waits until the third caller fills it; one commit for all.
    #[test]
    fn full_batch_shares_one_commit() {
        check("full", || {
            let (m, ok) = three(
                [(1, false, false), (2, false, false), (3, false, false)],
                3,
                true,
            );
            assert_eq!(ok, [true; 3]);
            assert_eq!(lock(&m.file).commits, 1);
        });
    }

    /// A leader that takes its batch at once (the delay ran out): late callers open and lead
    /// batches of their own; nobody is lost or served twice.
    #[test]
    fn late_callers_lead_new_batches() {
        check("late", || {
            let (m, ok) = three(
                [(1, false, false), (2, false, false), (3, false, false)],
                8,
                false,
            );
            assert_eq!(ok, [true; 3]);
            let c = lock(&m.file).commits;
            assert!((1..=3).contains(&c), "{c} commits for 3 callers");
        });
    }

    /// One caller fails for good and one fails only in the batch: the first gets its error,
    /// the second succeeds alone, the third is unaffected.
    #[test]
    fn a_failure_fails_only_its_caller() {
        check("failure", || {
            let (_m, ok) = three(
                [(1, true, true), (2, true, false), (3, false, false)],
                3,
                true,
            );
            assert_eq!(ok, [false, true, true]);
        });
    }

    /// A reply dropped unsent (a leader that unwinds) still wakes its caller.
    #[test]
    fn an_abandoned_reply_wakes_its_caller() {
        check("abandoned", || {
            let slot = Arc::new(Slot::new());
            let reply = Reply::new(slot.clone(), || 7u32);
            let h = thread::spawn(move || drop(reply));
            assert_eq!(slot.wait(), 7);
            h.join().expect("dropper");
        });
    }
}
