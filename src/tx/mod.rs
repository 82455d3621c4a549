//! Transactions: the handle, reading the tree (snapshot pages and arena nodes alike), point
//! lookups, fence checks, the write arena's B+tree mutation, and commit.

pub(crate) mod access;
pub(crate) mod bucket_cache;
pub(crate) mod commit;
pub(crate) mod fence;
pub(crate) mod handle;
pub(crate) mod lookup;
pub(crate) mod node;
pub(crate) mod tree;

pub(crate) use access::{BucketRef, Loc};
pub use handle::Tx;
