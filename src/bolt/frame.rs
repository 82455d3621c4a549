//! What a bucket cursor works with: where a bucket's tree starts ([`Root`]), one page on its
//! stack ([`Frame`]) and what it yields ([`BucketEntry`]).

use std::ops::Bound;

/// Where a bucket's B+tree starts.
#[derive(Clone, Copy, Debug)]
pub(super) enum Root<'a> {
    /// A page of the file (the meta's root, a bucket header's root, an orphaned page).
    Page(u64),
    /// An inline bucket's page image, inside a value on page `host`.
    Inline { image: &'a [u8], host: u64 },
}

/// One page on a cursor's stack, with the next element to read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame<'a> {
    /// The page id (for an inline bucket, the page holding it).
    pub(super) page: u64,
    /// The page with its overflow span (or the inline page image).
    pub(super) data: &'a [u8],
    /// Elements on the page, checked to fit `data`.
    pub(super) count: usize,
    /// The next element to read.
    pub(super) idx: usize,
    pub(super) leaf: bool,
    /// Keys of this subtree must be in `[lo, hi)` (from the parent's separators).
    pub(super) lo: Bound<&'a [u8]>,
    pub(super) hi: Bound<&'a [u8]>,
    /// Lower bound reported when a child of this frame is lost (the parent's `lo` for child 0).
    pub(super) report_lo: Bound<&'a [u8]>,
    /// The previous separator key read on this (branch) page.
    pub(super) prev_key: Option<&'a [u8]>,
}

/// What a bucket cursor yields: one entry of the bucket, in key order.
pub(super) enum BucketEntry<'a> {
    /// A key/value pair, found on leaf page `page` (the host page for an inline bucket).
    Kv {
        key: &'a [u8],
        value: &'a [u8],
        page: u64,
    },
    /// A nested bucket: its name, its header's sequence and where its tree starts.
    Bucket {
        name: &'a [u8],
        sequence: u64,
        root: Root<'a>,
    },
}
