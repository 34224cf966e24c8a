//! Data validation: what a `kind = "validate"` task does in its process.

use std::path::PathBuf;

use vane_dag::ValidateSpec;
use vane_store::{RunId, Store};

/// One attempt of a validate task, as the engine started it.
#[derive(Debug)]
pub struct Job<'a> {
    pub dag_id: &'a str,
    pub run: RunId,
    pub task_id: &'a str,
    pub attempt: u32,
    /// The dataset path, templates rendered, relative to the working directory.
    pub dataset: PathBuf,
    pub spec: &'a ValidateSpec,
    /// `$VANE_METRICS`, where the observed values are reported as metrics.
    pub metrics: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
    #[error("{0}")]
    Dataset(String),
}

/// Checks the dataset, records results and profile, prints the report to stdout. `Ok(false)`
/// when a check of severity `error` failed.
///
/// # Errors
/// Fails when the dataset cannot be read or the store cannot be written.
pub fn run_task(_store: &dyn Store, job: &Job<'_>) -> Result<bool, Error> {
    Err(Error::Dataset(format!(
        "validation of {} is not written yet",
        job.dataset.display()
    )))
}
