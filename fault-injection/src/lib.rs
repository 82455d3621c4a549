//! deadbolt's power-cut and fault-injection harness (issue 3).
//!
//! * [`disk`]: the simulated disk behind the engine's `Storage` trait (durable image, unsynced
//!   window, OS view; crash points at every mutating call; F7, F8, F11, F12 faults).
//! * [`crash`]: the image a restarted machine finds (F1-F6), random or enumerated.
//! * [`model`] and [`oracle`]: the reference state per commit and the invariant checks (I1-I8).
//! * [`run`]: live lifetimes, the bounded exhaustive tier and the I/O-error sweep.
//! * [`torture`]: one randomised multi-cycle case per seed (tier 2).
//! * [`engine`]: deadbolt and a tiny reference engine behind one trait.
//!
//! Everything derives from one `u64` seed.

pub mod child;
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
