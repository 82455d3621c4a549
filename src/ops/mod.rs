//! Day-two operations on an open database: integrity check, page inspection, backup,
//! compaction, salvage and slice-by-slice scans, with the helpers they share.

pub(crate) mod bulk;
pub(crate) mod check;
pub(crate) mod maintenance;
pub(crate) mod salvage;
pub(crate) mod scan;
