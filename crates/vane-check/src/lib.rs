//! Data validation: what a `kind = "validate"` task does in its process.
//!
//! The task reads its dataset (CSV or JSON Lines), profiles every column, evaluates the
//! checks the DAG declares, records results and profile in the store, reports each observed
//! value as a `check.<name>` metric, and prints a report for a person to the task log.
//! `auto` bounds and drift baselines come from the store: earlier runs of the same task that
//! passed, or that a person marked good.

mod dataset;
mod eval;
mod report;
mod stats;

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use vane_dag::{Check, ValidateSpec};
use vane_store::{CheckStatus, LearnFrom, NewCheckEvaluation, RunId, Store};

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
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
    /// The dataset cannot be read: the message names the file and what is wrong.
    #[error("{0}")]
    Dataset(String),
    #[error("cannot write the metrics file {path}: {source}")]
    Metrics {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Hex SHA-256 of a check's canonical definition: the series its values belong to.
pub fn definition_hash(check: &Check) -> String {
    Sha256::digest(check.canonical().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A metric name the metrics protocol accepts: `check.` and the check name, characters
/// outside letters, digits and `_.-:` replaced by `_`.
fn metric_name(check: &str) -> String {
    let mut name = String::from("check.");
    name.extend(check.chars().map(|c| {
        if c.is_ascii_alphanumeric() || "_.-:".contains(c) {
            c
        } else {
            '_'
        }
    }));
    name.truncate(200);
    name
}

/// Checks the dataset, records results and profile, prints the report to stdout. `Ok(false)`
/// when a check of severity `error` failed.
///
/// # Errors
/// Fails when the dataset cannot be read or the store cannot be written.
pub fn run_task(store: &dyn Store, job: &Job<'_>) -> Result<bool, Error> {
    let data = dataset::read(&job.dataset, job.spec.format).map_err(Error::Dataset)?;
    let from = LearnFrom {
        dag_id: job.dag_id,
        task_id: job.task_id,
        exclude_run: job.run,
    };
    let baseline = store
        .baseline_profile(&from)?
        .and_then(|(run, text)| serde_json::from_str(&text).ok().map(|p| (run, p)));
    let cx = eval::Context {
        store,
        from,
        baseline,
    };
    let results = eval::evaluate(&cx, &data, &job.spec.checks, definition_hash)?;
    let passed = !results.iter().any(|r| r.status == CheckStatus::Fail);
    let profile = stats::profile(&data).to_string();
    store.record_check_evaluation(&NewCheckEvaluation {
        run: job.run,
        dag_id: job.dag_id,
        task_id: job.task_id,
        attempt: job.attempt,
        passed,
        profile: &profile,
        results: &results,
        at: chrono::Utc::now(),
    })?;
    if let Some(path) = &job.metrics {
        let mut lines = String::new();
        for r in &results {
            if let Some(v) = r.observed.filter(|v| v.is_finite()) {
                lines.push_str(&format!("{} {v}\n", metric_name(&r.name)));
            }
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .map_err(|source| Error::Metrics {
                path: path.display().to_string(),
                source,
            })?;
    }
    let rerun = format!("vane clear {} --task {}", job.run, job.task_id);
    print!("{}", report::render(&job.dataset, &data, &results, &rerun));
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_follow_the_protocol() {
        assert_eq!(metric_name("age.min"), "check.age.min");
        assert_eq!(metric_name("monthly fee.mean"), "check.monthly_fee.mean");
    }
}
