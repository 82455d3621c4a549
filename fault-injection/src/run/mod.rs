//! Driving workloads through the simulated disk: live lifetimes with a fault plan, the bounded
//! exhaustive tier (every crash point of a recorded run, every crash mode), the I/O-error sweep
//! (F7, F8, reads that fail), the reader sweep (I11) and the at-rest sweep (F9-F13), the CI
//! matrix, and a parallel map to run them.
//!
//! A facade: each job lives in its own file and is re-exported here, so the public paths stay
//! `run::exhaustive`, `run::Report` and so on. The files use each other only through `super::`
//! paths to the file that owns an item, never through this facade. Their order, lowest first:
//! `report`, `par`, `protocol` and `live` (independent), `sweep` (live, report), `exhaustive`
//! (protocol, report), `matrix` (exhaustive), `readers` (sweep, report), `ioerr` (sweep, live,
//! readers, report) and `at_rest` (sweep, report).

mod at_rest;
mod exhaustive;
mod ioerr;
mod live;
mod matrix;
mod par;
mod paths;
mod protocol;
mod readers;
mod report;
mod sweep;

pub use at_rest::at_rest_sweep;
pub use exhaustive::{exhaustive, ExhCfg};
pub use ioerr::ioerr_sweep;
pub use live::{check_copy, live, live_with, Lifetime};
pub use matrix::{ci_matrix, ci_matrix_with};
pub use par::{par_map, test_threads};
pub use paths::{batch_oracle, paths_sweep, PATH_COMMITS};
pub use readers::{
    churn, reader_lifetime, reader_sweep, ReaderLife, Step, AFTER_RECOVERY, SCHEDULE,
};
pub use report::Report;
