//! Staged model rollout: what a `kind = "deploy"` task does in its process.

use std::path::PathBuf;

use vane_dag::{DeploySpec, Template};
use vane_store::{RunId, Store};

/// One attempt of a deploy task, as the engine started it.
pub struct Job<'a> {
    pub dag_id: &'a str,
    pub run: RunId,
    pub task_id: &'a str,
    pub attempt: u32,
    pub spec: &'a DeploySpec,
    /// Renders a template of the spec the way the engine renders commands (unquoted).
    pub render: &'a dyn Fn(&Template) -> String,
    /// `$VANE_METRICS` of the attempt.
    pub metrics: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
    #[error("{0}")]
    Rollout(String),
}

/// Rolls the candidate out, stage by stage; prints what happens to stdout. `Ok(false)` when the
/// rollout was stopped (a failed gate or a rejection) and rolled back.
///
/// # Errors
/// Fails when the store cannot be written or a command cannot be started.
pub fn run_task(_store: &dyn Store, job: &Job<'_>) -> Result<bool, Error> {
    Err(Error::Rollout(format!(
        "deploy task `{}` is not written yet",
        job.task_id
    )))
}
