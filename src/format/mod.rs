//! The on-disk format as a pure codec: bytes to structs and back, every read bounds-checked,
//! no I/O and no state. docs/FORMAT.md is its specification.

pub(crate) mod freelist;
pub(crate) mod meta;
pub(crate) mod page;
