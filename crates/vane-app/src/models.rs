//! The model registry: versions, waiting rollouts, the stage ledger, and the decisions people
//! make on them (approve, reject, promote, rollback).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use vane_deploy::DeploySpec;
use vane_engine::TemplateVars;
use vane_store::{
    LedgerEntry, ModelVersion, RolloutStage, RunId, RunState, StageChange, Store, StoreError,
};

use crate::{App, AppError};

type Result<T, E = AppError> = std::result::Result<T, E>;

/// A model version as `vane models --json` gives it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "ModelVersion")]
pub struct ModelVersionView {
    pub model: String,
    pub version: i64,
    /// SHA-256 of the model's content.
    pub hash: String,
    pub path: String,
    /// Where the content store keeps a copy.
    pub stored: Option<String>,
    /// Its current stage: `candidate`, `shadow`, `canary`, `production`, `archived`, ...
    pub stage: String,
    pub since: String,
    /// Who or what moved it there.
    pub actor: String,
    pub run_id: Option<i64>,
}

impl ModelVersionView {
    #[must_use]
    pub fn of(v: &ModelVersion) -> Self {
        Self {
            model: v.model.clone(),
            version: v.version,
            hash: v.hash.clone(),
            path: v.path.clone(),
            stored: v.stored.clone(),
            stage: v.stage.clone(),
            since: v.since.to_rfc3339(),
            actor: v.actor.clone(),
            run_id: v.run_id.map(|r| r.0),
        }
    }
}

/// A move of a model version between stages, as the ledger records it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Ledger")]
pub struct LedgerView {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub at: String,
    pub actor: String,
    pub run_id: Option<i64>,
    pub reason: Option<String>,
    /// The numbers the decision was made on (gate values, who approved).
    pub evidence: Value,
}

impl LedgerView {
    #[must_use]
    pub fn of(e: &LedgerEntry) -> Self {
        Self {
            id: e.id,
            model: e.model.clone(),
            version: e.version,
            from_stage: e.from_stage.clone(),
            to_stage: e.to_stage.clone(),
            at: e.at.to_rfc3339(),
            actor: e.actor.clone(),
            run_id: e.run_id.map(|r| r.0),
            reason: e.reason.clone(),
            evidence: e.evidence.clone(),
        }
    }
}

/// A rollout stage as `vane models --json` and the approve and reject routes give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Stage")]
pub struct StageView {
    pub run_id: i64,
    pub task_id: String,
    pub stage: String,
    pub model: String,
    pub version: i64,
    /// `pending`, `waiting`, `passed`, `failed`, `approved`, `rejected`, ...
    pub status: &'static str,
    /// What it waits for, or why it failed.
    pub detail: Option<String>,
    pub evidence: Value,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub updated_at: String,
}

impl StageView {
    #[must_use]
    pub fn of(s: &RolloutStage) -> Self {
        Self {
            run_id: s.run_id.0,
            task_id: s.task_id.clone(),
            stage: s.stage.clone(),
            model: s.model.clone(),
            version: s.version,
            status: s.status.as_str(),
            detail: s.detail.clone(),
            evidence: s.evidence.clone(),
            decided_by: s.decided_by.clone(),
            reason: s.reason.clone(),
            updated_at: s.updated_at.to_rfc3339(),
        }
    }
}

/// Versions, waiting rollouts and the ledger of every model or of one.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Models")]
pub struct ModelsView {
    pub versions: Vec<ModelVersionView>,
    /// Rollout stages waiting for a person.
    pub waiting: Vec<StageView>,
    pub ledger: Vec<LedgerView>,
}

/// Model versions and the ledger, of every model or of one.
///
/// # Errors
/// [`AppError::NotFound`] when no model has that name.
pub fn registry(
    store: &dyn Store,
    name: Option<&str>,
) -> Result<(Vec<ModelVersion>, Vec<LedgerEntry>)> {
    let versions = store.model_versions(name)?;
    if let Some(name) = name
        && versions.is_empty()
    {
        return Err(AppError::NotFound(format!(
            "no model `{name}` in the registry: a `kind = \"deploy\"` task with `model = \"{name}\"` registers it when it runs"
        )));
    }
    Ok((versions, store.ledger(name)?))
}

/// Rollout stages waiting for a person, of every model or of one: only those of running
/// runs, since only a running run's stage can be approved or rejected.
///
/// # Errors
/// The store cannot be read.
pub fn waiting(store: &dyn Store, name: Option<&str>) -> Result<Vec<RolloutStage>> {
    Ok(waits(store, name)?.0)
}

/// Stages left `waiting` by a rollout whose run then ended without an answer (`vane stop`, a
/// timeout with no retry left): nobody can answer them, and the stage command may still be
/// serving the candidate.
///
/// # Errors
/// The store cannot be read.
pub fn stranded(store: &dyn Store, name: Option<&str>) -> Result<Vec<(RolloutStage, RunState)>> {
    Ok(waits(store, name)?.1)
}

/// Closes the [`stranded`] waits of `model` with `why`. Putting a version in production with
/// the rollback command is what a rollout stopped while it waited needs (its stage command may
/// still serve the candidate), so it answers them.
///
/// # Errors
/// The store cannot be read or written.
pub fn close_stranded(store: &dyn Store, model: &str, why: &str) -> Result<()> {
    for (stage, _) in stranded(store, Some(model))? {
        store.expire_waiting(stage.run_id, &stage.task_id, why)?;
    }
    Ok(())
}

/// Waiting stages of running runs, and those of other runs with their run's state.
type Waits = (Vec<RolloutStage>, Vec<(RolloutStage, RunState)>);

/// Stages recorded `waiting`: those of running runs, and the others with their run's state.
/// A killed attempt cannot close its own waits, so the record alone does not say whether
/// anybody can still answer.
fn waits(store: &dyn Store, name: Option<&str>) -> Result<Waits> {
    let mut states: std::collections::HashMap<RunId, RunState> = std::collections::HashMap::new();
    let (mut live, mut stranded) = (Vec::new(), Vec::new());
    for s in store.rollout_stages(None)? {
        if s.status != vane_store::StageStatus::Waiting || name.is_some_and(|n| s.model != n) {
            continue;
        }
        let state = match states.get(&s.run_id) {
            Some(state) => *state,
            None => {
                let state = store.run(s.run_id)?.run.state;
                states.insert(s.run_id, state);
                state
            }
        };
        if state == RunState::Running {
            live.push(s);
        } else {
            stranded.push((s, state));
        }
    }
    Ok((live, stranded))
}

/// Versions, waiting rollouts and the ledger, as `vane models [NAME] --json` and
/// `GET /api/models[/{name}]` give them.
///
/// # Errors
/// As [`registry`].
pub fn models_view(store: &dyn Store, name: Option<&str>) -> Result<ModelsView> {
    let (versions, ledger) = registry(store, name)?;
    let waiting = waiting(store, name)?;
    Ok(ModelsView {
        versions: versions.iter().map(ModelVersionView::of).collect(),
        waiting: waiting.iter().map(StageView::of).collect(),
        ledger: ledger.iter().map(LedgerView::of).collect(),
    })
}

/// A person's decision on a waiting rollout stage: the store's own type, so the answer is
/// typed from the command line to the database.
pub use vane_store::Decision;

/// Approves or rejects the waiting stages of a running rollout (one stage, or every waiting
/// one); the stages decided.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown run, [`AppError::Conflict`] when the run is not
/// running or nothing of it waits.
pub fn decide(
    store: &dyn Store,
    run: RunId,
    stage: Option<&str>,
    decision: Decision,
    by: &str,
    reason: Option<&str>,
) -> Result<Vec<RolloutStage>> {
    let detail = store.run(run).map_err(|e| match e {
        StoreError::NotFound(_) => {
            AppError::NotFound(format!("there is no run {run}: `vane runs` lists the runs"))
        }
        other => other.into(),
    })?;
    if detail.run.state != vane_store::RunState::Running {
        return Err(AppError::Conflict(format!(
            "run {run} is {}, not running: only a running rollout can be approved or rejected; start a new run to roll the model out again",
            detail.run.state
        )));
    }
    let decided = store.decide_rollout(run, stage, decision, by, reason)?;
    if decided.is_empty() {
        let stages = store.rollout_stages(Some(run))?;
        let known: Vec<String> = stages
            .iter()
            .map(|s| format!("{} ({})", s.stage, s.status))
            .collect();
        let at = stage
            .map(|s| format!(" at stage `{s}`"))
            .unwrap_or_default();
        let why = if known.is_empty() {
            format!("run {run} has no rollout: only a `kind = \"deploy\"` task waits for approval")
        } else {
            format!(
                "run {run} has no rollout waiting{at}; its stages: {}",
                known.join(", ")
            )
        };
        return Err(AppError::Conflict(why));
    }
    Ok(decided)
}

/// Moves a model version to a stage by hand.
///
/// # Errors
/// [`AppError::NotFound`] for a model or version that is not registered,
/// [`AppError::Invalid`] for a stage the model's deploy tasks do not declare,
/// [`AppError::Conflict`] for moving the production version anywhere but production.
pub fn promote(
    store: &dyn Store,
    model: &str,
    version: i64,
    stage: &str,
    reason: &str,
    by: &str,
) -> Result<()> {
    if stage == "registered" {
        return Err(AppError::Invalid(
            "`registered` is where versions start; promote to a stage, `archived` or `failed`"
                .into(),
        ));
    }
    // A model never registered declares no stages: that is the mistake to name, not the stage.
    let versions = store.model_versions(Some(model))?;
    if versions.is_empty() {
        return Err(AppError::NotFound(format!(
            "no model `{model}` in the registry: `vane models` lists the models"
        )));
    }
    let mut stages = declared_stages(store, model)?;
    stages.extend(["archived".to_owned(), "failed".to_owned()]);
    if !stages.iter().any(|s| s == stage) {
        let hint = vane_dag::did_you_mean(stage, stages.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        return Err(AppError::Invalid(format!(
            "{model} has no stage `{stage}`: {hint}its deploy tasks declare {}",
            stages
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // The registry's production version is the one serving, and the one a failed rollout puts
    // back: taking it out by hand, with nothing put in its place, would leave it serving while
    // the next failed gate restored the fallback instead.
    if stage != "production"
        && versions
            .iter()
            .any(|v| v.version == version && v.stage == "production")
    {
        return Err(AppError::Conflict(format!(
            "{model} v{version} is in production: moving it to `{stage}` would leave no version in production while v{version} still serves; put another version in its place instead: `vane promote {model} VERSION --stage production` archives v{version}, `vane rollback {model} --reason TEXT` marks it failed"
        )));
    }
    store
        .set_stage(&StageChange {
            model,
            version,
            to_stage: stage,
            actor: &format!("user {by}"),
            run: None,
            reason: Some(reason),
            evidence: &json!({}),
        })
        .map_err(|e| match e {
            StoreError::NotFound(what) => AppError::NotFound(format!(
                "{what} is not registered: `vane models {model}` lists its versions"
            )),
            other => other.into(),
        })
}

/// The deploy tasks of `model` in the DAG versions of the runs that rolled it out, newest
/// run first, with the run they belong to.
fn deploy_tasks(store: &dyn Store, model: &str) -> Result<Vec<(RunId, vane_dag::Dag, String)>> {
    let mut runs: Vec<RunId> = store
        .rollout_stages(None)?
        .into_iter()
        .filter(|s| s.model == model)
        .map(|s| s.run_id)
        .chain(
            store
                .ledger(Some(model))?
                .into_iter()
                .filter_map(|e| e.run_id),
        )
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let mut out = Vec::new();
    for run in runs.into_iter().rev() {
        let detail = store.run(run)?;
        let Some(dag) = crate::runs::recorded_dag(store, &detail.run)? else {
            continue;
        };
        let tasks: Vec<String> = dag
            .tasks
            .iter()
            .filter(|t| deploy_spec(t).is_some_and(|spec| spec.model == model))
            .map(|t| t.id.clone())
            .collect();
        for task in tasks {
            out.push((run, dag.clone(), task));
        }
    }
    Ok(out)
}

/// The stage names the deploy tasks of `model` declare, in every recorded DAG version.
fn declared_stages(store: &dyn Store, model: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (_, dag, task) in deploy_tasks(store, model)? {
        let Some(spec) = dag
            .tasks
            .iter()
            .find(|t| t.id == task)
            .and_then(deploy_spec)
        else {
            continue;
        };
        for stage in &spec.stages {
            if !names.contains(&stage.name) {
                names.push(stage.name.clone());
            }
        }
    }
    Ok(names)
}

/// How the deploy task that last rolled `model` out runs its `rollback` command: the command
/// rendered as in that run, the folder the engine would run it in, and the environment the
/// engine gives that task (`VANE_RUN_ID`, `VANE_DS`, ..., `VANE_WORK`, params, the task's `env`).
#[derive(Debug)]
pub struct RollbackCommand {
    pub command: String,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// The task's `fallback` model, as its rollout would put it back.
    pub fallback: Option<PathBuf>,
}

fn rollback_command(app: &App, store: &dyn Store, model: &str) -> Result<Option<RollbackCommand>> {
    let Some((run, dag, task_id)) = deploy_tasks(store, model)?.into_iter().next() else {
        return Ok(None);
    };
    let Some(task) = dag.tasks.iter().find(|t| t.id == task_id) else {
        return Ok(None);
    };
    let Some(spec) = deploy_spec(task) else {
        return Ok(None);
    };
    let Some(rollback) = &spec.rollback else {
        return Ok(None);
    };
    let detail = store.run(run)?;
    let work = app
        .paths
        .work
        .clone()
        .unwrap_or_else(|| app.state_dir().join("work"));
    let work = std::path::absolute(&work).map_err(AppError::io("cannot find the work folder"))?;
    let params = dag.params_from_json(&detail.run.params);
    // A rollback by hand is a person's act, whatever started the run.
    let vars = TemplateVars::new(
        &dag,
        &params,
        detail.run.logical_date,
        &vane_engine::AttemptOf {
            run,
            task: &task.id,
            attempt: 1,
            started_by: vane_engine::StartedBy::Manual,
        },
        &work,
    );
    let lookup = |v: &vane_dag::Var| vars.lookup(v);
    // Like `vane run`, from the project root.
    let root = app.paths.root.clone();
    let cwd = match &task.cwd {
        Some(cwd) => root.join(cwd.render_plain(lookup)),
        None => root,
    };
    let mut env = vars.env();
    env.extend(
        task.env
            .iter()
            .map(|(name, value)| (name.clone(), value.render_plain(lookup))),
    );
    let fallback = spec
        .fallback
        .as_ref()
        .map(|f| cwd.join(f.render_plain(lookup)));
    Ok(Some(RollbackCommand {
        command: rollback.render_plain(lookup),
        cwd,
        env,
        fallback,
    }))
}

/// How `vane promote NAME VERSION --stage production` puts the version in place. The registry
/// calls `production` the version that serves, so recording it without serving it would leave
/// the two disagreeing, and the next rollback would restore a version that never served. The
/// `rollback` command is the one a deploy task declares for putting a given version in
/// production, so a promotion runs it as a rollback does, before anything is recorded.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown model or version.
pub fn plan_promotion(
    app: &App,
    store: &dyn Store,
    model: &str,
    version: i64,
) -> Result<RollbackPlan> {
    let versions = registered(store, model)?;
    let Some(target) = versions.iter().find(|v| v.version == version) else {
        return Err(AppError::NotFound(format!(
            "version {version} of model `{model}` is not registered: `vane models {model}` lists its versions"
        )));
    };
    let current = in_production(&versions);
    Ok(RollbackPlan {
        model: model.to_owned(),
        target: version,
        current,
        again: current == Some(version),
        fallback: false,
        path: vane_deploy::model_path(&app.storage()?.content_store(), target),
        command: rollback_command(app, store, model)?,
    })
}

/// Every version of `model`; [`AppError::NotFound`] when the registry has none.
fn registered(store: &dyn Store, model: &str) -> Result<Vec<ModelVersion>> {
    let versions = store.model_versions(Some(model))?;
    if versions.is_empty() {
        return Err(AppError::NotFound(format!(
            "no model `{model}` in the registry: `vane models` lists the models"
        )));
    }
    Ok(versions)
}

/// The version of `versions` in production, if one is.
fn in_production(versions: &[ModelVersion]) -> Option<i64> {
    versions
        .iter()
        .find(|v| v.stage == "production")
        .map(|v| v.version)
}

/// What a rollback will do, from [`plan_rollback`]: shown to a person before the command runs.
#[derive(Debug)]
pub struct RollbackPlan {
    pub model: String,
    /// The version going back into production; 0 with `fallback` (as a rollout's own
    /// rollback to the fallback sets `VANE_MODEL_VERSION`).
    pub target: i64,
    /// The deploy task's `fallback` goes back in place: the model has had no other production
    /// version, and the fallback is none of its versions, so none is in production after.
    pub fallback: bool,
    /// The version in production now.
    pub current: Option<i64>,
    /// The target is already in production: only its rollback command runs again.
    pub again: bool,
    /// Where the target's files are.
    pub path: PathBuf,
    /// The rollback command of the deploy task that last rolled the model out, if it has one.
    pub command: Option<RollbackCommand>,
}

/// Chooses the version to put back (`to`, or the one in production before the current one)
/// and how.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown model or version, [`AppError::Conflict`] when there
/// is nothing to roll back to.
pub fn plan_rollback(
    app: &App,
    store: &dyn Store,
    model: &str,
    to: Option<i64>,
) -> Result<RollbackPlan> {
    let versions = registered(store, model)?;
    let current = in_production(&versions);
    let earlier = match to {
        Some(to) => Some(to),
        None => store
            .ledger(Some(model))?
            .iter()
            .rev()
            .filter(|e| e.to_stage == "production")
            .map(|e| e.version)
            // A version that failed or was itself rolled back is no place to go back to.
            .find(|v| {
                Some(*v) != current
                    && versions
                        .iter()
                        .any(|m| m.version == *v && m.stage != "failed")
            }),
    };
    let Some(target) = earlier else {
        // No earlier version may serve again (the first model of a name, or only failed ones
        // before it): a failed rollout would put the task's `fallback` back, and a person
        // taking the model out by hand needs the same.
        let command = rollback_command(app, store, model)?;
        return match command {
            Some(command) if current.is_some() && command.fallback.is_some() => Ok(RollbackPlan {
                model: model.to_owned(),
                target: 0,
                current,
                again: false,
                fallback: true,
                path: command.fallback.clone().unwrap_or_default(),
                command: Some(command),
            }),
            _ if current.is_none() => Err(AppError::Conflict(format!(
                "no version of {model} is in production, so there is nothing to roll back; put one in with --to VERSION"
            ))),
            _ => Err(AppError::Conflict(format!(
                "{model} has had no other production version to roll back to, and its deploy task has no `fallback` (with a `rollback` command) to put back; name a version with --to VERSION"
            ))),
        };
    };
    let Some(target_version) = versions.iter().find(|v| v.version == target) else {
        return Err(AppError::NotFound(format!(
            "{model} has no version {target}: `vane models {model}` lists its versions"
        )));
    };
    // Naming the version in production runs the rollback command again: the way to put it
    // back in place after a rollback command failed, with the registry already right.
    let again = current == Some(target);
    let command = rollback_command(app, store, model)?;
    if command.is_none() && again {
        return Err(AppError::Conflict(format!(
            "{model} v{target} is already in production, and no deploy task of {model} has a `rollback` command to put it in place again"
        )));
    }
    Ok(RollbackPlan {
        model: model.to_owned(),
        target,
        current,
        again,
        fallback: false,
        path: vane_deploy::model_path(&app.storage()?.content_store(), target_version),
        command,
    })
}

impl RollbackPlan {
    /// Runs the rollback command, if there is one.
    ///
    /// # Errors
    /// [`AppError::CommandFailed`] when it fails; the registry is then unchanged.
    pub fn run_command(&self) -> Result<()> {
        let Some(rollback) = &self.command else {
            return Ok(());
        };
        let mut env = rollback.env.clone();
        env.extend(vane_deploy::model_env(
            &self.model,
            self.target,
            &self.path,
            "rollback",
        ));
        vane_deploy::shell(
            "rollback",
            &rollback.command,
            &env,
            None,
            Some(&rollback.cwd),
        )
        .map_err(|e| {
            AppError::CommandFailed(format!(
                "the rollback command failed: {e}; the registry is unchanged"
            ))
        })?;
        Ok(())
    }

    /// Records the target as in production, unless it already was, and the version it
    /// replaced as `failed`: a person judged it bad, so no automatic rollout serves it again.
    ///
    /// # Errors
    /// The store cannot be written.
    pub fn record(&self, store: &dyn Store, reason: &str, by: &str) -> Result<()> {
        let put_back = if self.fallback {
            format!("the fallback model {}", self.path.display())
        } else {
            format!("v{}", self.target)
        };
        close_stranded(
            store,
            &self.model,
            &format!(
                "the run ended before an answer; {put_back} put back in production by `vane rollback` ({by}: {reason})"
            ),
        )?;
        if self.again {
            return Ok(());
        }
        let actor = format!("user {by}");
        let set = |version: i64, to_stage: &str, why: &str| {
            store.set_stage(&StageChange {
                model: &self.model,
                version,
                to_stage,
                actor: &actor,
                run: None,
                reason: Some(why),
                evidence: &json!({}),
            })
        };
        if self.fallback {
            if let Some(current) = self.current {
                let fallback = self.path.display();
                set(
                    current,
                    "failed",
                    &format!("rolled back to the fallback model {fallback}: {reason}"),
                )?;
            }
            return Ok(());
        }
        set(self.target, "production", &format!("rollback: {reason}"))?;
        if let Some(current) = self.current {
            let target = self.target;
            set(
                current,
                "failed",
                &format!("rolled back to v{target}: {reason}"),
            )?;
        }
        Ok(())
    }
}

/// Which version of a model was in production at a time, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProductionAt {
    pub model: String,
    /// RFC 3339.
    pub at: String,
    /// `None`: nothing was.
    pub production: Option<i64>,
}

/// For every model (or one), the version in production at `at`.
///
/// # Errors
/// As [`registry`].
pub fn production_at(
    store: &dyn Store,
    name: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<ProductionAt>> {
    let (versions, ledger) = registry(store, name)?;
    let mut names: Vec<&str> = versions.iter().map(|v| v.model.as_str()).collect();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|m| ProductionAt {
            model: m.to_owned(),
            at: at.to_rfc3339(),
            production: vane_store::production_at(&ledger, m, at),
        })
        .collect())
}

/// The rollout of a `deploy` task.
fn deploy_spec(task: &vane_dag::Task) -> Option<&DeploySpec> {
    task.builtin.as_ref()?.spec::<DeploySpec>()
}
