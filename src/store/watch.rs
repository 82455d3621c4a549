//! Reader hygiene: the oldest open read transaction, how many pages it pins, and an alert
//! when it pins more than a threshold or stays open longer than a limit.
//!
//! A read transaction sees its snapshot until it ends, so no commit may reuse a page freed
//! after that snapshot: a reader left open in a long-running daemon makes the file grow by
//! everything the writers rewrite meanwhile. The check runs after each commit (on the
//! committing thread, once its write lock is released) and in [`crate::Db::stats`], never on a
//! read path.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::store::mvcc::Reader;

/// The oldest open read transaction, as [`crate::Db::stats`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The snapshot it reads ([`crate::Tx::id`]).
    pub txid: u64,
    /// How long it has been open.
    pub age: Duration,
    /// Pages freed by commits after its snapshot, which no commit may reuse while it is open
    /// (as of the last commit).
    pub pinned_pages: u64,
}

/// What a [`ReaderLimits`] callback is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderAlert {
    /// The reader over a limit: the oldest open one.
    pub reader: ReaderInfo,
    /// It has been open longer than [`ReaderLimits::max_age`].
    pub too_old: bool,
    /// It pins more than [`ReaderLimits::max_pinned_pages`].
    pub pins_too_many: bool,
}

/// The callback of [`ReaderLimits::on_alert`].
pub type ReaderCallback = Arc<dyn Fn(&ReaderAlert) + Send + Sync>;

/// Limits on the oldest open read transaction ([`crate::Options::reader_limits`]). When the
/// oldest reader passes one, deadbolt logs a warning (through the `log` facade, target
/// `deadbolt`) and calls `on_alert` if set: once per reader and limit. Checked after each
/// commit and by [`crate::Db::stats`], so a reader that passes `max_age` while nothing commits
/// is reported at the next commit or stats call.
#[derive(Clone, Default)]
pub struct ReaderLimits {
    /// Longest a read transaction should stay open.
    pub max_age: Option<Duration>,
    /// Most pages one read transaction should pin.
    pub max_pinned_pages: Option<u64>,
    /// Called (on the committing thread, after its commit and with no lock of deadbolt's
    /// held, or on the thread calling `stats`) when a limit is passed.
    pub on_alert: Option<ReaderCallback>,
}

impl fmt::Debug for ReaderLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaderLimits")
            .field("max_age", &self.max_age)
            .field("max_pinned_pages", &self.max_pinned_pages)
            .field("on_alert", &self.on_alert.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// Which limits the current oldest reader has already been reported for.
#[derive(Default)]
pub(crate) struct Alerted {
    reader: Option<u64>,
    too_old: bool,
    pins_too_many: bool,
}

/// What the oldest reader `r` pins, given the pages pending reuse by the commit that freed
/// them (`pending`: (txid, pages)).
pub(crate) fn reader_info(r: &Reader, pending: &[(u64, u64)]) -> ReaderInfo {
    ReaderInfo {
        txid: r.txid,
        age: r.since.elapsed(),
        pinned_pages: pending
            .iter()
            .filter(|&&(freed_by, _)| freed_by > r.txid)
            .map(|&(_, pages)| pages)
            .sum(),
    }
}

/// True when `lim` sets a limit at all (without one, nothing is looked at).
pub(crate) fn enabled(lim: &ReaderLimits) -> bool {
    lim.max_age.is_some() || lim.max_pinned_pages.is_some()
}

/// Check the oldest reader `r` against `lim`; log and call back once per reader and limit
/// (`alerted` remembers which). Call with no lock of deadbolt's held.
pub(crate) fn check(lim: &ReaderLimits, alerted: &Mutex<Alerted>, r: &Reader, info: ReaderInfo) {
    let too_old = lim.max_age.is_some_and(|a| info.age > a);
    let pins_too_many = lim.max_pinned_pages.is_some_and(|p| info.pinned_pages > p);
    let alert = {
        let mut a = alerted.lock();
        if a.reader != Some(r.id) {
            *a = Alerted {
                reader: Some(r.id),
                ..Alerted::default()
            };
        }
        let new_old = too_old && !a.too_old;
        let new_pins = pins_too_many && !a.pins_too_many;
        a.too_old |= too_old;
        a.pins_too_many |= pins_too_many;
        (new_old || new_pins).then_some(ReaderAlert {
            reader: info,
            too_old: new_old,
            pins_too_many: new_pins,
        })
    };
    let Some(alert) = alert else {
        return;
    };
    log::warn!(
        target: "deadbolt",
        "read transaction on snapshot {} open for {:.1?} pins {} pages freed since \
         (limits: age {:?}, pages {:?}); the file grows while it stays open",
        info.txid,
        info.age,
        info.pinned_pages,
        lim.max_age,
        lim.max_pinned_pages
    );
    if let Some(f) = &lim.on_alert {
        f(&alert);
    }
}
