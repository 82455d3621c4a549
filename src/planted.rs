//! The planted historical bugs, one switch each, for proving that the fault-injection harness
//! catches them (cargo features `bug-*`, never enabled in production). Every place the engine
//! departs from its protocol under a planted bug tests one of these constants, so the protocol
//! code reads as the protocol and a reader can find every departure from here.

/// Acknowledge a commit without syncing it.
pub(crate) const ACK_BEFORE_SYNC: bool = cfg!(feature = "bug-ack-before-sync");
/// Write the meta page (and sync) before the pages it points to.
pub(crate) const META_BEFORE_DATA: bool = cfg!(feature = "bug-meta-before-data");
/// Retry a failed `fdatasync` and trust the retry (fsyncgate).
pub(crate) const RETRY_FAILED_SYNC: bool = cfg!(feature = "bug-retry-failed-sync");
/// Open at the newest meta without verifying its commit's pages.
pub(crate) const SKIP_OPEN_VERIFY: bool = cfg!(feature = "bug-skip-open-verify");
/// Trust a page's own checksum and txid instead of its parent's record.
pub(crate) const NO_PARENT_CHECKSUM: bool = cfg!(feature = "bug-no-parent-checksum");
/// Descend without the depth bound and the no-page-twice rule (bbolt#872).
pub(crate) const UNBOUNDED_DESCENT: bool = cfg!(feature = "bug-unbounded-descent");
