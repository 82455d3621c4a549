//! Group commit (`Db::batch`): concurrent callers share one write transaction and one sync.
//! (Filled in by the group-commit work; the state lives in every `Db`.)

/// Shared state of the group-commit queue.
#[derive(Default)]
pub(crate) struct Batcher {}
