//! A file as a sequence of verified snapshots: what every transaction shares ([`Store`]), the
//! verification of pages against their parents, free space in memory, the readers table,
//! choosing the commit to open at, confirming durable commits, and watching old readers.

pub(crate) mod confirm;
pub(crate) mod free;
pub(crate) mod mvcc;
pub(crate) mod open;
pub(crate) mod shared;
pub(crate) mod verify;
pub(crate) mod watch;

pub use open::{Recovery, RolledBack};
pub use shared::Options;
pub(crate) use shared::{Snapshot, Store, Writer, WriterGuard};
pub use watch::{ReaderAlert, ReaderCallback, ReaderInfo, ReaderLimits};
