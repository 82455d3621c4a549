//! The bounds every layer checks against, in one place (re-exported at the crate root).

/// Largest key (and bucket name), in bytes, as in bbolt.
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value, in bytes, as in bbolt (2^31 - 2).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Deepest tree a cursor will descend; needing more is reported as corruption.
pub const MAX_DEPTH: usize = 40;
/// Format version written in every meta page (7: compact inline buckets; docs/FORMAT.md, the
/// version line and section 5).
pub const FORMAT_VERSION: u32 = 7;
/// Deepest nesting of inline buckets: an inline bucket inside a page is at depth 1, one inside
/// it at depth 2 (format 6; docs/FORMAT.md, section 5). Deeper is reported as corruption, and a
/// bucket whose inline subtree would be deeper is written to a page of its own.
pub const MAX_INLINE_DEPTH: usize = 4;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: usize = 4096;
