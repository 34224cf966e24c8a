//! The model registry: model versions, their stages, and the ledger of every stage change.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Decision, Result, RunId, StageStatus};

/// A model version: a version of the artifact named like the model, with its stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub model: String,
    pub version: i64,
    pub hash: String,
    /// Where the content was when first seen.
    pub path: String,
    /// Its copy in the content store, if one was kept.
    pub stored: Option<String>,
    /// `registered`, a stage name, `archived` or `failed`.
    pub stage: String,
    /// When it got to `stage`, by whom (`run 12`, `user alice`).
    pub since: DateTime<Utc>,
    pub actor: String,
    pub run_id: Option<RunId>,
}

/// A candidate seen by a rollout, to record as a model version.
#[derive(Debug, Clone)]
pub struct NewModelVersion<'a> {
    pub model: &'a str,
    pub hash: &'a str,
    /// `file` or `dir`.
    pub kind: &'a str,
    pub size: u64,
    pub path: &'a str,
    pub stored: Option<&'a str>,
    pub run: RunId,
    pub task_id: &'a str,
    pub attempt: u32,
}

/// One stage change to record.
#[derive(Debug, Clone)]
pub struct StageChange<'a> {
    pub model: &'a str,
    pub version: i64,
    pub to_stage: &'a str,
    pub actor: &'a str,
    pub run: Option<RunId>,
    pub reason: Option<&'a str>,
    pub evidence: &'a Value,
}

/// A line of the append-only ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEntry {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub run_id: Option<RunId>,
    pub reason: Option<String>,
    pub evidence: Value,
}

/// The decision of one stage of a rollout run.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutStage {
    pub run_id: RunId,
    pub task_id: String,
    pub stage: String,
    pub model: String,
    pub version: i64,
    pub status: StageStatus,
    /// What it waits for, or why it failed.
    pub detail: Option<String>,
    pub evidence: Value,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The attempt rolling a model out now; others of the same model wait for it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutLock {
    pub model: String,
    pub run_id: RunId,
    pub task_id: String,
    pub attempt: u32,
    pub since: DateTime<Utc>,
}

/// Records and reads model stages, gate evidence and approvals.
pub trait RegistryStore {
    /// Records the candidate as a version of the artifact named `model` (or finds the version
    /// with the same hash) and, the first time, puts it in stage `registered`. Returns the version.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn register_model_version(&self, new: &NewModelVersion<'_>) -> Result<i64>;

    /// Every registered version of `model` (of every model with `None`), newest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn model_versions(&self, model: Option<&str>) -> Result<Vec<ModelVersion>>;

    /// The version of `model` in production now.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn production(&self, model: &str) -> Result<Option<ModelVersion>>;

    /// Moves a version to a stage and appends it to the ledger. Promoting to `production`
    /// moves the outgoing production version to `archived` in the same transaction.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when the version is not registered.
    fn set_stage(&self, change: &StageChange<'_>) -> Result<()>;

    /// The ledger of `model` (of every model with `None`), oldest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn ledger(&self, model: Option<&str>) -> Result<Vec<LedgerEntry>>;

    /// Records evaluation metrics of a version on eval data `eval_hash` (`""`: none).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_model_metrics(
        &self,
        model: &str,
        version: i64,
        eval_hash: &str,
        metrics: &[(String, f64)],
        run: RunId,
    ) -> Result<()>;

    /// Evaluation metrics of a version: `(eval_hash, name, value)`.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn model_metrics(&self, model: &str, version: i64) -> Result<Vec<(String, String, f64)>>;

    /// Records (or replaces) the decision of a rollout stage for one version. A person's answer
    /// (`approved`, `rejected`) is never replaced: a retried attempt keeps it.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn set_rollout_stage(&self, stage: &RolloutStage) -> Result<()>;

    /// The stage decisions of rollouts, oldest first: of one run, or of every run.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn rollout_stages(&self, run: Option<RunId>) -> Result<Vec<RolloutStage>>;

    /// A person's answer to waiting stages of run `run` (only `stage` if given). Only a running run's stages are answered. Returns the stages
    /// it answered.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn decide_rollout(
        &self,
        run: RunId,
        stage: Option<&str>,
        decision: Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<RolloutStage>>;

    /// Marks the stages of `run`'s task `task_id` still `waiting` as `expired` with `detail`:
    /// the attempt that waited has ended, so nobody's answer can reach it. Returns how many.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn expire_waiting(&self, run: RunId, task_id: &str, detail: &str) -> Result<usize>;

    /// Takes the rollout lock of `model` for this attempt, in one write transaction: when
    /// nobody holds it, when the same run's task holds it (an earlier attempt of this one), or
    /// when the holder's run is no longer running (it was killed). Otherwise returns the holder.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn claim_rollout_lock(
        &self,
        model: &str,
        run: RunId,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<RolloutLock>>;

    /// Gives the rollout lock of `model` back, if this run's task holds it.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn release_rollout_lock(&self, model: &str, run: RunId, task_id: &str) -> Result<()>;
}

/// Which version of a model was in production at `at`, replaying its ledger.
pub fn production_at(ledger: &[LedgerEntry], model: &str, at: DateTime<Utc>) -> Option<i64> {
    let mut current = None;
    for e in ledger.iter().filter(|e| e.model == model && e.at <= at) {
        if e.to_stage == "production" {
            current = Some(e.version);
        } else if current == Some(e.version) {
            current = None;
        }
    }
    current
}
