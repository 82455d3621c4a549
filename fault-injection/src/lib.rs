//! deadbolt's power-cut and fault-injection harness (issue 3).
//!
//! * [`disk`]: the simulated disk behind the engine's `Storage` trait (durable image, unsynced
//!   window, OS view; crash points at every mutating call; F7, F8, F11, F12 faults), on the
//!   file-state types of [`image`].
//! * [`crash`]: the image a restarted machine finds (F1-F6), random or enumerated.
//! * [`replay`]: the crash state after every op of a recorded op log.
//! * [`model`] and [`oracle`]: the reference state per commit and the invariant checks (I1-I8).
//! * [`run`]: live lifetimes, the bounded exhaustive tier, the I/O-error and at-rest sweeps.
//! * [`torture`]: one randomised multi-cycle case per seed (tier 2).
//! * [`engine`]: deadbolt and a tiny reference engine behind one trait.
//! * [`crafted`] (F15) and [`child`] (the tier-3 child process).
//!
//! Everything derives from one `u64` seed. The modules import each other in one direction
//! only (the order is in the crate's README, "Layout").

pub mod child;
pub mod coverage;
pub mod crafted;
pub mod crash;
pub mod disk;
pub mod engine;
pub mod image;
pub mod model;
pub mod oracle;
pub mod replay;
pub mod rng;
pub mod run;
pub mod torture;
pub mod workload;
