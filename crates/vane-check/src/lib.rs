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
mod spec;
mod stats;

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
pub use spec::{
    AgreementMethod, AllowedValue, AutoRule, Bound, Check, CheckKind, CheckSeverity, ColumnType,
    DriftMethod, Format, VALIDATE, ValidateSpec,
};
use vane_store::{CheckResult, CheckStatus, LearnFrom, NewCheckEvaluation, RunId, Store};

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

/// Checks the dataset, records results and profile, prints the report to stdout.
/// `Ok(Some(why))` when a check of severity `error` failed: the failed checks in one line,
/// for the attempt's reason, which `vane run` and `vane show` print where the report's
/// failures (at its top) fall outside the log's tail.
///
/// # Errors
/// Fails when the dataset cannot be read or the store cannot be written.
pub fn run_task(store: &dyn Store, job: &Job<'_>) -> Result<Option<String>, Error> {
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
    Ok((!passed).then(|| failed_checks(&results)))
}

/// The failed checks in one line: the first few with what was seen, then how many more.
fn failed_checks(results: &[CheckResult]) -> String {
    const NAMED: usize = 3;
    let failed: Vec<&CheckResult> = results
        .iter()
        .filter(|r| r.status == CheckStatus::Fail)
        .collect();
    let mut why = format!(
        "{} check{} failed.",
        failed.len(),
        if failed.len() == 1 { "" } else { "s" }
    );
    for r in failed.iter().take(NAMED) {
        why.push_str(&format!(" {}: {}.", r.name, r.detail));
    }
    if failed.len() > NAMED {
        why.push_str(&format!(" And {} more.", failed.len() - NAMED));
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use vane_store::{CheckStore, NewDagVersion, NewRun, SqliteStore, Trigger};

    const DAG: &str = r#"
[tasks.validate]
kind = "validate"
dataset = "data.csv"
[tasks.validate.columns.plan]
drift = { method = "psi", max = 0.2 }
[tasks.validate.columns.fee]
drift = { method = "js", max = 0.1, severity = "warn" }
"#;

    fn store_with_runs(n: u32) -> SqliteStore {
        let store = SqliteStore::open_in_memory().unwrap();
        let version = store
            .record_dag_version(&NewDagVersion {
                dag_id: "churn",
                content_hash: "h",
                path: "dags/churn.toml",
                source: DAG,
            })
            .unwrap();
        for day in 1..=n {
            store
                .create_run(&NewRun {
                    dag_id: "churn",
                    dag_version: version,
                    logical_date: chrono::Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
                    trigger: Trigger::Manual,
                    params: serde_json::json!({}),
                    git: None,
                    host: "box",
                    timezone: "UTC",
                    tasks: &["validate"],
                    at: chrono::Utc::now(),
                    records_tick: false,
                    backfill: None,
                })
                .unwrap();
        }
        store
    }

    /// A dataset of 100 rows: `basic_share` of them on plan basic, the rest pro; fees
    /// 1..=100 shifted by `fee_shift`.
    fn write(dir: &std::path::Path, basic_share: usize, fee_shift: usize) -> PathBuf {
        let mut csv = String::from("plan,fee\n");
        for i in 0..100 {
            let plan = if i < basic_share { "basic" } else { "pro" };
            csv.push_str(&format!("{plan},{}\n", i + 1 + fee_shift));
        }
        let path = dir.join("data.csv");
        std::fs::write(&path, csv).unwrap();
        path
    }

    fn validate(
        store: &SqliteStore,
        run: RunId,
        dataset: PathBuf,
        metrics: &std::path::Path,
    ) -> Option<String> {
        let parsed = vane_dag::parse_dag_with(
            DAG,
            "churn",
            &vane_dag::Registry::none().kind(&crate::VALIDATE),
        );
        let dag = parsed.dag.unwrap();
        let Some(spec) = dag.tasks[0]
            .builtin
            .as_ref()
            .and_then(|b| b.spec::<crate::ValidateSpec>())
        else {
            panic!("not a validate task");
        };
        run_task(
            store,
            &Job {
                dag_id: "churn",
                run,
                task_id: "validate",
                attempt: 1,
                dataset,
                spec,
                metrics: Some(metrics.to_owned()),
            },
        )
        .unwrap()
    }

    #[test]
    fn drift_compares_with_the_latest_good_run() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics");
        let store = store_with_runs(3);
        assert_eq!(
            validate(&store, RunId(1), write(dir.path(), 50, 0), &metrics),
            None
        );
        let first = store.check_history("churn", None, 0).unwrap();
        assert!(
            first.iter().all(
                |e| e.result.detail == "no baseline yet" || e.result.name.ends_with(".present")
            )
        );

        // The same distributions: no drift.
        assert_eq!(
            validate(&store, RunId(2), write(dir.path(), 50, 0), &metrics),
            None
        );
        let history = store.check_history("churn", None, 1).unwrap();
        let plan = history
            .iter()
            .find(|e| e.result.name == "plan.drift")
            .unwrap();
        assert_eq!(plan.result.observed, Some(0.0));

        // 90% basic instead of 50%, fees moved up by 50: plan drift fails, fee drift warns;
        // the attempt's reason names the failure, not the warning.
        assert_eq!(
            validate(&store, RunId(3), write(dir.path(), 90, 50), &metrics).as_deref(),
            Some("1 check failed. plan.drift: PSI 0.8789 against run 2 (category frequencies).")
        );
        let history = store.check_history("churn", None, 1).unwrap();
        let by_name = |n: &str| &history.iter().find(|e| e.result.name == n).unwrap().result;
        let plan = by_name("plan.drift");
        // (0.9-0.5)ln(0.9/0.5) + (0.1-0.5)ln(0.1/0.5)
        let psi = 0.4 * 1.8f64.ln() + 0.4 * 5f64.ln();
        assert!((plan.observed.unwrap() - psi).abs() < 1e-9);
        assert_eq!(plan.status, CheckStatus::Fail);
        assert_eq!(
            plan.detail,
            "PSI 0.8789 against run 2 (category frequencies)"
        );
        let fee = by_name("fee.drift");
        assert_eq!(fee.status, CheckStatus::Warn);
        assert!(
            fee.detail
                .contains("against run 2 (bins at the baseline's deciles)")
        );

        let reported = std::fs::read_to_string(&metrics).unwrap();
        assert!(reported.contains("check.plan.drift 0\n"), "{reported}");
        assert!(
            reported.contains(&format!("check.plan.drift {psi}\n")),
            "{reported}"
        );
    }

    #[test]
    fn metric_names_follow_the_protocol() {
        assert_eq!(metric_name("age.min"), "check.age.min");
        assert_eq!(metric_name("monthly fee.mean"), "check.monthly_fee.mean");
    }
}
