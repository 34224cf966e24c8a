//! Data validation history: check results, column profiles, and runs marked good.

use chrono::{DateTime, Utc};

use crate::{Result, RunId};

/// How one check of one validate attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    Pass,
    /// Failed, with severity `warn`: reported, the run goes on.
    Warn,
    Fail,
    /// An `auto` bound with too few good runs behind it yet: recorded, never fails.
    Learning,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Learning => "learning",
        }
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for CheckStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pass" => CheckStatus::Pass,
            "warn" => CheckStatus::Warn,
            "fail" => CheckStatus::Fail,
            "learning" => CheckStatus::Learning,
            other => return Err(format!("unknown check status `{other}`")),
        })
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// `rows`, `<column>.<check>` or `agreement`.
    pub name: String,
    pub column: Option<String>,
    /// `error` or `warn`.
    pub severity: String,
    pub status: CheckStatus,
    /// The measured number (row count, smallest value, drift, ...), when there is one.
    pub observed: Option<f64>,
    /// The bound used, as a person reads it: `>= 0`, `[95.4, 113.6]`.
    pub bound: Option<String>,
    /// Where the bound came from: `fixed`, or `auto: mean ... over the last N good runs`.
    pub derivation: Option<String>,
    /// One sentence saying what was seen.
    pub detail: String,
    /// A few offending rows: (row number, value as shown).
    pub offending: Vec<(u64, String)>,
    /// Hex SHA-256 of the check's canonical definition.
    pub definition_hash: String,
}

/// Everything one validate attempt records, in one transaction.
#[derive(Debug)]
pub struct NewCheckEvaluation<'a> {
    pub run: RunId,
    pub dag_id: &'a str,
    pub task_id: &'a str,
    pub attempt: u32,
    pub passed: bool,
    /// The dataset's column profile, JSON.
    pub profile: &'a str,
    pub results: &'a [CheckResult],
    pub at: DateTime<Utc>,
}

/// Which runs of a task values may be learned from.
#[derive(Debug, Clone, Copy)]
pub struct LearnFrom<'a> {
    pub dag_id: &'a str,
    pub task_id: &'a str,
    /// The run evaluating now: never its own baseline.
    pub exclude_run: RunId,
}

/// One result in a check's history.
#[derive(Debug, Clone)]
pub struct CheckHistoryEntry {
    pub run: RunId,
    pub logical_date: DateTime<Utc>,
    pub task_id: String,
    pub attempt: u32,
    pub evaluated_at: DateTime<Utc>,
    /// Whether a person marked the run good.
    pub marked_good: bool,
    pub result: CheckResult,
}

/// A person's word that a run's data is good.
#[derive(Debug, Clone)]
pub struct GoodMark {
    pub run: RunId,
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Records and reads check results and profiles.
pub trait CheckStore {
    /// Records a validate attempt's results and profile.
    ///
    /// # Errors
    /// Fails when the database cannot be written or the run does not exist.
    fn record_check_evaluation(&self, evaluation: &NewCheckEvaluation<'_>) -> Result<()>;

    /// The values of check `name` with definition `definition_hash` that an `auto` bound
    /// learns from, oldest first, at most `window`: of the latest attempt of each other run
    /// of the task, when that attempt passed or a person marked the run good.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn learnable_values(
        &self,
        from: &LearnFrom<'_>,
        name: &str,
        definition_hash: &str,
        window: usize,
    ) -> Result<Vec<(RunId, f64)>>;

    /// The profile of the latest run of the task whose latest attempt passed, or that a
    /// person marked good: the drift baseline.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn baseline_profile(&self, from: &LearnFrom<'_>) -> Result<Option<(RunId, String)>>;

    /// Check results of a DAG's runs, newest run first, latest attempt per run and task;
    /// `last_runs` 0 means all.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn check_history(
        &self,
        dag_id: &str,
        task_id: Option<&str>,
        last_runs: usize,
    ) -> Result<Vec<CheckHistoryEntry>>;

    /// The check results of one run: of each task's latest evaluated attempt, as
    /// `(task, attempt, result)`, by task then in the order the checks were declared.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn run_checks(&self, run: RunId) -> Result<Vec<(String, u32, CheckResult)>>;

    /// Records that a person vouches for a run's data; marking again replaces the mark.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such run.
    fn mark_good(&self, mark: &GoodMark) -> Result<()>;

    /// A run's mark, if a person gave one.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn good_mark(&self, run: RunId) -> Result<Option<GoodMark>>;
}
