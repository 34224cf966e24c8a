//! Staged model rollout: what a `kind = "deploy"` task does in its process.
//!
//! The candidate is registered as a version of the model, evaluated, then taken through the
//! stages in order: each stage's command puts it in place, the soak lets it serve, the monitor
//! measures, and the gates decide. A version enters a stage in the registry once that stage's
//! gate passed (or a person approved it), so the production version in the registry is always
//! the one a rollback restores. A failed gate or a rejection runs the `rollback` command with
//! the production version and fails the task.

mod spec;

pub use spec::{DEPLOY, DeploySpec, Expr, Gate, GateValues, Stage};

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use vane_dag::Template;
use vane_engine::artifacts;
use vane_store::{
    AttemptRef, Direction, ModelVersion, NewArtifact, NewModelVersion, RolloutStage, RunId,
    StageChange, StageStatus, Store,
};

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
    /// The content store, where model versions are kept for rollbacks.
    pub content: &'a artifacts::ContentStore,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
    #[error("{0}")]
    Rollout(String),
    /// The rollout must not happen, and the task ends skipped with this reason: the run is
    /// older than the one that put the production model in place (latest-only), or the
    /// candidate is a version that failed a gate or was rolled back.
    #[error("{0}")]
    NotDeployed(String),
}

/// How often a waiting stage looks for a person's answer.
const POLL: Duration = Duration::from_secs(1);

/// A number as a person reads it: no float noise (`0.84`, not `0.8399999999999999`).
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s == "0" {
        // Too small for four decimals, yet not zero: four significant digits, not the
        // 50-digit expansion of a float's noise (`6.163e-33`).
        format!("{x:.3e}")
    } else {
        s.to_owned()
    }
}

/// Where the content of a registered version can be read on this host: its copy in the
/// content store (fetched when the store is remote), or where it was first seen.
pub fn model_path(content: &artifacts::ContentStore, version: &ModelVersion) -> PathBuf {
    match content.fetch(version.stored.as_deref(), &version.hash) {
        Ok(Some(path)) => path,
        Ok(None) => PathBuf::from(&version.path),
        Err(e) => {
            // Said where a person reads it: the task's log, or the terminal of `vane rollback`.
            eprintln!(
                "vane: cannot fetch {} v{} from the content store {} ({e}); using {}",
                version.model, version.version, content.url, version.path
            );
            PathBuf::from(&version.path)
        }
    }
}

/// Runs `command` with `sh -c` as a child of this process (so it shares the task's process
/// group, and vane's timeout kills it too), its output going where ours goes, in `cwd` if given.
/// The step reports metrics in the file `metrics` (its `$VANE_METRICS`; without one the step
/// has none), read with the engine's own protocol: a line that is not `name value` with a
/// finite value is reported and ignored, so `nan` never reaches a gate.
///
/// # Errors
/// A sentence naming the step: it could not start, or exited non-zero.
pub fn shell(
    step: &str,
    command: &str,
    env: &[(String, String)],
    metrics: Option<&Path>,
    cwd: Option<&Path>,
) -> Result<BTreeMap<String, f64>, String> {
    if let Some(path) = metrics {
        let _ = fs::remove_file(path);
    }
    let _ = std::io::stdout().flush();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match metrics {
        Some(path) => cmd.env("VANE_METRICS", path),
        // Not the attempt's own file: a step's metrics are reported with the stage's prefix.
        None => cmd.env_remove("VANE_METRICS"),
    };
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("{step} could not start: {e}"))?;
    let report = metrics.map(vane_engine::metrics::read).unwrap_or_default();
    if let Some(path) = metrics {
        let _ = fs::remove_file(path);
    }
    if !status.success() {
        let how = status
            .code()
            .map_or_else(|| "was killed".to_owned(), |c| format!("exited with {c}"));
        return Err(format!("{step} {how}"));
    }
    for problem in &report.problems {
        println!("vane: {step}: ignoring metrics: {problem}");
    }
    Ok(report.metrics.into_iter().collect())
}

/// How a stage's gates came out.
enum Verdict {
    Pass,
    /// Waits for a person: why.
    Inconclusive(String),
    /// Why.
    Fail(String),
}

struct Rollout<'a, 'j> {
    store: &'a dyn Store,
    job: &'a Job<'j>,
    version: i64,
    candidate: PathBuf,
    eval_data: Option<PathBuf>,
    eval_hash: String,
    candidate_eval: BTreeMap<String, f64>,
    production: Option<ModelVersion>,
    /// Production's evaluation metrics on this eval hash, and the hashes it has others on.
    production_eval: BTreeMap<String, f64>,
    production_other_hash: Option<String>,
}

impl Rollout<'_, '_> {
    fn model(&self) -> &str {
        &self.job.spec.model
    }

    fn env(&self, stage: &str, version: i64, path: &Path) -> Vec<(String, String)> {
        let mut env = model_env(self.model(), version, path, stage);
        if let Some(data) = &self.eval_data {
            env.push(("VANE_EVAL_DATA".into(), data.display().to_string()));
        }
        env
    }

    /// Runs one step of the rollout, its metrics file beside the attempt's log.
    fn step(
        &self,
        step: &str,
        command: &str,
        env: &[(String, String)],
    ) -> Result<BTreeMap<String, f64>, String> {
        let slug = step.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        let metrics = match &self.job.metrics {
            Some(path) => path.with_extension(format!("{slug}.metrics")),
            None => self.job.content.cache.with_file_name(format!(
                "deploy-{}-{}-{}.{slug}.metrics",
                self.job.run, self.job.task_id, self.job.attempt
            )),
        };
        shell(step, command, env, Some(&metrics), None)
    }

    fn actor(&self) -> String {
        format!("run {}", self.job.run)
    }

    /// Appends `<prefix>.<name> value` lines to the attempt's `$VANE_METRICS`.
    fn report(&self, prefix: &str, metrics: &BTreeMap<String, f64>) {
        let Some(path) = &self.job.metrics else {
            return;
        };
        let lines: String = metrics
            .iter()
            .map(|(k, v)| format!("{prefix}.{k} {v}\n"))
            .collect();
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(lines.as_bytes());
        }
    }

    fn evaluate(&mut self) -> Result<(), String> {
        let Some(evaluate) = &self.job.spec.evaluate else {
            return Ok(());
        };
        let command = (self.job.render)(evaluate);
        println!("vane: evaluating {} v{}", self.model(), self.version);
        let metrics = self.step(
            "evaluate",
            &command,
            &self.env("evaluate", self.version, &self.candidate),
        )?;
        let list: Vec<(String, f64)> = metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
        self.store
            .record_model_metrics(
                self.model(),
                self.version,
                &self.eval_hash,
                &list,
                self.job.run,
            )
            .map_err(|e| e.to_string())?;
        self.report("evaluate", &metrics);
        self.candidate_eval = metrics;
        let Some(prod) = self.production.clone() else {
            return Ok(());
        };
        let known = self
            .store
            .model_metrics(self.model(), prod.version)
            .map_err(|e| e.to_string())?;
        let here: BTreeMap<String, f64> = known
            .iter()
            .filter(|(h, _, _)| *h == self.eval_hash)
            .map(|(_, n, v)| (n.clone(), *v))
            .collect();
        if !here.is_empty() {
            self.production_eval = here;
            return Ok(());
        }
        let path = model_path(self.job.content, &prod);
        if path.exists() {
            println!(
                "vane: evaluating production {} v{} on the same eval data",
                self.model(),
                prod.version
            );
            let metrics = self.step(
                "evaluate (production)",
                &command,
                &self.env("evaluate", prod.version, &path),
            )?;
            let list: Vec<(String, f64)> = metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
            self.store
                .record_model_metrics(
                    self.model(),
                    prod.version,
                    &self.eval_hash,
                    &list,
                    self.job.run,
                )
                .map_err(|e| e.to_string())?;
            self.production_eval = metrics;
        } else {
            self.production_other_hash = known.first().map(|(h, _, _)| h.clone());
        }
        Ok(())
    }

    /// Judges a stage by its gates and sample count; `evidence` gets what each gate saw.
    fn judge(
        &self,
        index: usize,
        stage_metrics: &BTreeMap<String, f64>,
        evidence: &mut Value,
    ) -> Verdict {
        let s = &self.job.spec.stages[index];
        let mut failed = Vec::new();
        let mut inconclusive = Vec::new();
        let mut gates = Vec::new();
        for gate in &s.gates {
            let mut seen = BTreeMap::new();
            let mut lookup = |production: bool, name: &str| -> Option<f64> {
                let v = if production {
                    self.production_eval.get(name).copied()
                } else {
                    stage_metrics
                        .get(name)
                        .or_else(|| self.candidate_eval.get(name))
                        .copied()
                };
                if let Some(v) = v {
                    let key = if production {
                        format!("production.{name}")
                    } else {
                        name.to_owned()
                    };
                    seen.insert(key, v);
                }
                v
            };
            let (status, note) = if gate.uses_production() && self.production.is_none() {
                let why = format!("{} has no production version to compare with", self.model());
                match self.job.spec.on_no_baseline.as_str() {
                    "fail" => {
                        failed.push(format!("{}: {why} (on_no_baseline = \"fail\")", gate.text));
                        ("failed", why)
                    }
                    "approve" => {
                        inconclusive.push(format!(
                            "{}: {why} (on_no_baseline = \"approve\")",
                            gate.text
                        ));
                        ("inconclusive", why)
                    }
                    _ => ("skipped", format!("{why} (on_no_baseline = \"pass\")")),
                }
            } else {
                match gate.eval(&mut lookup) {
                    Ok(v) => {
                        let side = |left: bool| {
                            let (expr, value) = if left {
                                (&gate.left, v.left)
                            } else {
                                (&gate.right, v.right)
                            };
                            let text = expr.to_string();
                            if !expr.is_simple() {
                                format!("{text} = {}", num(value))
                            } else if text.parse::<f64>().is_ok() {
                                num(value)
                            } else {
                                format!("{text} {}", num(value))
                            }
                        };
                        let l = side(true);
                        let r = side(false);
                        if !v.left.is_finite() || !v.right.is_finite() {
                            let why = format!(
                                "{l} {} {r}: not a finite number, so it cannot pass",
                                gate.op
                            );
                            failed.push(why.clone());
                            ("failed", why)
                        } else if v.passed {
                            ("passed", format!("{l} {} {r}", gate.op))
                        } else {
                            let why = format!("{l} {} {r}", gate.negated_op());
                            failed.push(why.clone());
                            ("failed", why)
                        }
                    }
                    Err(missing) => {
                        let other = self.production_other_hash.as_deref();
                        if let (Some(name), Some(other)) =
                            (missing.strip_prefix("production."), other)
                        {
                            let why = format!(
                                "not comparable: production measured `{name}` on eval data {}, candidate on {}",
                                short(other),
                                short(&self.eval_hash)
                            );
                            inconclusive.push(format!("{}: {why}", gate.text));
                            ("inconclusive", why)
                        } else {
                            let why = format!(
                                "metric `{missing}` is missing: no stage command, monitor or evaluate step reported it"
                            );
                            failed.push(format!("{}: {why}", gate.text));
                            ("failed", why)
                        }
                    }
                }
            };
            println!("vane: gate `{}`: {status}: {note}", gate.text);
            gates.push(
                json!({ "gate": gate.text, "status": status, "detail": note, "values": seen }),
            );
        }
        evidence["gates"] = Value::Array(gates);
        evidence["metrics"] = json!(stage_metrics);
        if let Some(min) = s.min_samples {
            evidence["min_samples"] = json!(min);
            match stage_metrics.get("samples") {
                None => inconclusive.push(format!(
                    "the stage reported no `samples` metric (min_samples = {min})"
                )),
                Some(&n) if !n.is_finite() => inconclusive.push(format!(
                    "the stage reported `samples` {n}, not a count (min_samples = {min})"
                )),
                Some(&n) if n < min as f64 => inconclusive.push(format!(
                    "only {} samples, fewer than min_samples = {min}",
                    num(n)
                )),
                Some(_) => {}
            }
        }
        if !failed.is_empty() {
            Verdict::Fail(failed.join("; "))
        } else if !inconclusive.is_empty() {
            Verdict::Inconclusive(inconclusive.join("; "))
        } else if s.approval {
            Verdict::Inconclusive("the stage asks for approval (approval = true)".into())
        } else {
            Verdict::Pass
        }
    }

    fn record(&self, stage: &str, status: StageStatus, detail: Option<String>, evidence: &Value) {
        self.record_by(stage, status, detail, evidence, None, None);
    }

    fn record_by(
        &self,
        stage: &str,
        status: StageStatus,
        detail: Option<String>,
        evidence: &Value,
        by: Option<String>,
        reason: Option<String>,
    ) {
        let row = RolloutStage {
            run_id: self.job.run,
            task_id: self.job.task_id.to_owned(),
            stage: stage.to_owned(),
            model: self.model().to_owned(),
            version: self.version,
            status,
            detail,
            evidence: evidence.clone(),
            decided_by: by,
            reason,
            updated_at: Utc::now(),
        };
        if let Err(e) = self.store.set_rollout_stage(&row) {
            println!("vane: could not record stage `{stage}`: {e}");
        }
    }

    /// Waits for `vane approve` or `vane reject`.
    fn wait(&self, stage: &str) -> Result<Decision, Error> {
        loop {
            let rows = self.store.rollout_stages(Some(self.job.run))?;
            let row = rows.iter().find(|r| {
                r.task_id == self.job.task_id && r.stage == stage && r.version == self.version
            });
            match row.map(|r| r.status) {
                Some(StageStatus::Approved) => {
                    let r = row.expect("found");
                    return Ok(Decision::Approved {
                        who: r.decided_by.clone().unwrap_or_default(),
                        note: r.reason.clone(),
                    });
                }
                Some(StageStatus::Rejected) => {
                    let r = row.expect("found");
                    return Ok(Decision::Rejected {
                        who: r.decided_by.clone().unwrap_or_default(),
                        note: r.reason.clone().unwrap_or_default(),
                    });
                }
                _ => std::thread::sleep(POLL),
            }
        }
    }

    /// Puts the production version (or `fallback`) back, marks the candidate failed, and
    /// returns the sentence that ends the task's log.
    fn roll_back(&self, why: &str, evidence: &Value) -> Result<String, Error> {
        self.store.set_stage(&StageChange {
            model: self.model(),
            version: self.version,
            to_stage: "failed",
            actor: &self.actor(),
            run: Some(self.job.run),
            reason: Some(why),
            evidence,
        })?;
        Ok(format!("{why}; {}", self.restore(self.version, why)?))
    }

    /// Runs the `rollback` command with the production version (or `fallback`) after the
    /// rollout of `failed` stopped; says what it did.
    fn restore(&self, failed: i64, why: &str) -> Result<String, Error> {
        let restore = self.store.production(self.model())?;
        let spec = self.job.spec;
        let (target, path, version) = match &restore {
            Some(p) => (
                format!("{} v{}", self.model(), p.version),
                Some(model_path(self.job.content, p)),
                p.version,
            ),
            None => match &spec.fallback {
                Some(f) => {
                    let path = PathBuf::from((self.job.render)(f));
                    (
                        format!("the fallback model {}", path.display()),
                        Some(path),
                        0,
                    )
                }
                None => (String::new(), None, 0),
            },
        };
        let Some(path) = path else {
            return Ok(format!(
                "nothing to roll back to: {} has no production version and the task no `fallback`",
                self.model()
            ));
        };
        let restored = match &spec.rollback {
            Some(rollback) => {
                println!("vane: rolling back to {target}");
                match self.step(
                    "rollback",
                    &(self.job.render)(rollback),
                    &self.env("rollback", version, &path),
                ) {
                    Ok(_) => true,
                    Err(e) => {
                        let fix = match &restore {
                            Some(p) => format!(
                                "the registry still has v{v} in production; put it back with `vane rollback {m} --to {v} --reason TEXT` (it runs the `rollback` command again), or run that command by hand with VANE_MODEL_PATH={path}",
                                v = p.version,
                                m = self.model(),
                                path = path.display()
                            ),
                            None => format!(
                                "run the `rollback` command by hand with VANE_MODEL_PATH={}",
                                path.display()
                            ),
                        };
                        return Ok(format!("rolling back to {target} failed: {e}: {fix}"));
                    }
                }
            }
            None => false,
        };
        if restore.is_some() {
            self.store.set_stage(&StageChange {
                model: self.model(),
                version,
                to_stage: "production",
                actor: &self.actor(),
                run: Some(self.job.run),
                reason: Some(&format!(
                    "restored after the failed rollout of v{failed}: {why}"
                )),
                evidence: &json!({}),
            })?;
        }
        Ok(if restored {
            format!("rolled back to {target}")
        } else {
            format!("the task has no `rollback` command, so {target} was not put back")
        })
    }

    /// An earlier attempt of this task that was killed (its timeout, `vane stop`, a crash)
    /// left stages `running` or `waiting`: the stage command may have put its candidate in
    /// place. Puts production back before this attempt starts again.
    fn recover_killed(&self) -> Result<(), Error> {
        let left: Vec<RolloutStage> = self
            .store
            .rollout_stages(Some(self.job.run))?
            .into_iter()
            .filter(|r| {
                r.task_id == self.job.task_id
                    && matches!(r.status, StageStatus::Running | StageStatus::Waiting)
            })
            .collect();
        let Some(first) = left.first() else {
            return Ok(());
        };
        let why = format!(
            "an earlier attempt was stopped (timeout, `vane stop` or a crash) during stage `{}` of {} v{}",
            first.stage,
            self.model(),
            first.version
        );
        println!("vane: {why}; rolling back before starting again");
        for row in &left {
            let mut row = row.clone();
            row.status = StageStatus::Failed;
            row.detail = Some(format!(
                "{why}; rolled back by attempt {}",
                self.job.attempt
            ));
            row.updated_at = Utc::now();
            self.store.set_rollout_stage(&row)?;
        }
        let versions = self.store.model_versions(Some(self.model()))?;
        for row in &left {
            let stranded = versions.iter().any(|v| {
                v.version == row.version
                    && v.version != self.version
                    && !matches!(v.stage.as_str(), "production" | "archived" | "failed")
            });
            if stranded {
                self.store.set_stage(&StageChange {
                    model: self.model(),
                    version: row.version,
                    to_stage: "failed",
                    actor: &self.actor(),
                    run: Some(self.job.run),
                    reason: Some(&why),
                    evidence: &json!({}),
                })?;
            }
        }
        println!("vane: {}", self.restore(first.version, &why)?);
        Ok(())
    }
}

/// The environment a step gets about the model it handles.
pub fn model_env(model: &str, version: i64, path: &Path, stage: &str) -> Vec<(String, String)> {
    vec![
        ("VANE_MODEL".into(), model.to_owned()),
        ("VANE_MODEL_VERSION".into(), version.to_string()),
        ("VANE_MODEL_PATH".into(), path.display().to_string()),
        ("VANE_STAGE".into(), stage.to_owned()),
    ]
}

fn short(hash: &str) -> &str {
    if hash.is_empty() {
        "(none)"
    } else {
        &hash[..hash.len().min(12)]
    }
}

/// What a person decided about a stage waiting for them.
enum Decision {
    Approved { who: String, note: Option<String> },
    Rejected { who: String, note: String },
}

/// Ends the task with `reason`: in the log, and in `$VANE_REASON` for the engine to record.
fn fail(reason: &str) -> Result<bool, Error> {
    eprintln!("vane: {reason}");
    if let Some(path) = std::env::var_os("VANE_REASON") {
        let _ = fs::write(path, reason);
    }
    Ok(false)
}

/// Rolls the candidate out, stage by stage; prints what happens to stdout. `Ok(false)` when the
/// rollout was stopped (a failed gate or a rejection) and rolled back.
///
/// One rollout of a model runs at a time: another one (a second run of the DAG, a backfill)
/// waits for the rollout lock of the model until the holder's run ends or lets go of it.
///
/// # Errors
/// Fails when the store cannot be written or a command cannot be started.
pub fn run_task(store: &dyn Store, job: &Job<'_>) -> Result<bool, Error> {
    let spec = job.spec;
    if let Some(why) = past_deploy(store, job)? {
        return Err(Error::NotDeployed(why));
    }
    let candidate = PathBuf::from((job.render)(&spec.candidate));
    if !candidate.exists() {
        return Err(Error::Rollout(format!(
            "the candidate {} does not exist: check `candidate` of task `{}`, and that an upstream task wrote it",
            candidate.display(),
            job.task_id
        )));
    }
    let mut told = false;
    while let Some(holder) =
        store.claim_rollout_lock(&spec.model, job.run, job.task_id, job.attempt)?
    {
        if !told {
            println!(
                "vane: waiting for the rollout of run {} to finish (task `{}`, attempt {}, rolling {} out since {})",
                holder.run_id,
                holder.task_id,
                holder.attempt,
                spec.model,
                holder.since.to_rfc3339()
            );
            told = true;
        }
        std::thread::sleep(POLL);
    }
    let result = roll_out(store, job, candidate);
    // Whatever happened, nobody's answer can reach this attempt any more.
    let ended = format!(
        "attempt {} of the rollout ended before an answer",
        job.attempt
    );
    if let Err(e) = store.expire_waiting(job.run, job.task_id, &ended) {
        println!("vane: could not close the stages waiting for an answer: {e}");
    }
    if let Err(e) = store.release_rollout_lock(&spec.model, job.run, job.task_id) {
        println!(
            "vane: could not release the rollout lock of {}: {e}; it is free once run {} ends",
            spec.model, job.run
        );
    }
    result
}

/// The last run that put a version of a model in production: how far in data time its
/// production has come.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontier {
    pub run: RunId,
    pub version: i64,
    pub logical_date: chrono::DateTime<Utc>,
}

/// The run that last put a version of `model` in production, from the ledger. A person's
/// `vane rollback` or `vane promote` since does not move it back: putting an older model in
/// front of traffic is that person's call for now, not leave for a backfill of last week to
/// deploy a model trained on last week's data.
///
/// # Errors
/// Fails when the database cannot be read.
pub fn production_frontier(
    store: &dyn Store,
    model: &str,
) -> Result<Option<Frontier>, vane_store::StoreError> {
    let ledger = store.ledger(Some(model))?;
    let Some((run, version)) = ledger
        .iter()
        .rev()
        .filter(|e| e.to_stage == "production")
        .find_map(|e| Some((e.run_id?, e.version)))
    else {
        return Ok(None);
    };
    Ok(Some(Frontier {
        run,
        version,
        logical_date: store.run(run)?.run.logical_date,
    }))
}

/// Why this run must not promote anything, if it must not: its logical date is older than
/// that of the last run that put the model in production (see [`production_frontier`]), so
/// rolling its candidate out would move production back in time (a backfill of last week
/// replacing today's model). A backfill started with `--redeploy-past` may; a person can
/// always promote by hand.
fn past_deploy(store: &dyn Store, job: &Job<'_>) -> Result<Option<String>, Error> {
    let Some(frontier) = production_frontier(store, &job.spec.model)?.filter(|f| f.run != job.run)
    else {
        return Ok(None);
    };
    let ours = store.run(job.run)?.run;
    if ours.logical_date >= frontier.logical_date {
        return Ok(None);
    }
    let (theirs, model, version) = (frontier.run, &job.spec.model, frontier.version);
    let backfill = store.backfill_of(job.run)?;
    if let Some((backfill, _)) = backfill
        && store.backfill(backfill)?.redeploy_past
    {
        println!(
            "vane: run {} is for {}, older than run {theirs} ({}) that put {model} v{version} in production; deploying anyway, as backfill {backfill} asked (--redeploy-past)",
            ours.id,
            ours.logical_date.to_rfc3339(),
            frontier.logical_date.to_rfc3339(),
        );
        return Ok(None);
    }
    // `--redeploy-past` is a backfill's: for a run cleared or triggered by hand it would make
    // new runs, not deploy this one.
    let anyway = if backfill.is_some() {
        "to deploy past dates anyway, start the backfill with --redeploy-past, or promote a version by hand (`vane promote`)".to_owned()
    } else {
        format!(
            "to put this run's candidate in production anyway, promote it by hand (`vane promote {model} VERSION --stage production`; `vane models {model}` lists the versions)"
        )
    };
    Ok(Some(format!(
        "not deployed: run {} is for {}, older than run {theirs} ({}) that put {model} v{version} in production, and a run never rolls production back in time; {anyway}",
        ours.id,
        ours.logical_date.format("%Y-%m-%d %H:%M UTC"),
        frontier.logical_date.format("%Y-%m-%d %H:%M UTC"),
    )))
}

/// Why `version` must not be rolled out, if it must not: it failed a gate, was rejected or was
/// rolled back (its stage is `failed`). Training that produces the same bytes again in a later
/// run would otherwise put a model people already judged bad back in front of traffic; only a
/// person's `vane promote` brings such a version back. A version that failed in this same run
/// goes through its gates again: a verdict is never retried, so this attempt exists because a
/// person cleared the task to try again.
fn withdrawn(store: &dyn Store, job: &Job<'_>, version: i64) -> Result<Option<String>, Error> {
    let model = &job.spec.model;
    let failed = store
        .model_versions(Some(model))?
        .into_iter()
        .any(|v| v.version == version && v.stage == "failed");
    if !failed {
        return Ok(None);
    }
    let last = store
        .ledger(Some(model))?
        .into_iter()
        .rev()
        .find(|e| e.version == version && e.to_stage == "failed");
    if last.as_ref().is_some_and(|e| e.run_id == Some(job.run)) {
        return Ok(None);
    }
    let why = last
        .map(|e| {
            format!(
                " ({} by {}{})",
                e.at.format("%Y-%m-%d %H:%M UTC"),
                e.actor,
                e.reason.map(|r| format!(": {r}")).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    Ok(Some(format!(
        "not deployed: the candidate is {model} v{version}, which failed{why}; an automatic rollout never serves a failed version again: train a different candidate, or bring it back by hand with `vane promote {model} {version} --stage STAGE --reason TEXT`"
    )))
}

fn roll_out(store: &dyn Store, job: &Job<'_>, candidate: PathBuf) -> Result<bool, Error> {
    let spec = job.spec;
    let content = artifacts::hash_path(&candidate).map_err(|e| {
        Error::Rollout(format!(
            "cannot read the candidate {}: {e}",
            candidate.display()
        ))
    })?;
    let stored = job.content.keep(&candidate, &content).map_err(|e| {
        Error::Rollout(format!(
            "cannot copy the candidate into the content store {}: {e}",
            job.content.url
        ))
    })?;
    let path = candidate.display().to_string();
    let version = store.register_model_version(&NewModelVersion {
        model: &spec.model,
        hash: &content.hash,
        kind: content.kind.as_str(),
        size: content.size,
        path: &path,
        stored: Some(&stored),
        run: job.run,
        task_id: job.task_id,
        attempt: job.attempt,
    })?;
    // The attempt read the candidate: lineage shows which version each rollout handled.
    store.record_artifacts(
        &AttemptRef {
            run: job.run,
            task: job.task_id.to_owned(),
            attempt: job.attempt,
        },
        Direction::Input,
        &[NewArtifact {
            name: &spec.model,
            hash: &content.hash,
            kind: content.kind,
            size: content.size,
            path: &path,
            stored: Some(&stored),
        }],
        Utc::now(),
    )?;
    let production = store.production(&spec.model)?;
    println!(
        "vane: rolling out {} v{version} ({}) from {}",
        spec.model,
        short(&content.hash),
        candidate.display()
    );
    let eval_data = spec
        .eval_data
        .as_ref()
        .map(|t| PathBuf::from((job.render)(t)));
    let eval_hash = match &eval_data {
        Some(path) => {
            artifacts::hash_path(path)
                .map_err(|e| {
                    Error::Rollout(format!("cannot read eval data {}: {e}", path.display()))
                })?
                .hash
        }
        None => String::new(),
    };
    let mut rollout = Rollout {
        store,
        job,
        version,
        candidate,
        eval_data,
        eval_hash,
        candidate_eval: BTreeMap::new(),
        production: production.clone(),
        production_eval: BTreeMap::new(),
        production_other_hash: None,
    };
    rollout.recover_killed()?;
    if let Some(why) = withdrawn(store, job, version)? {
        return Err(Error::NotDeployed(why));
    }
    match &production {
        Some(p) if p.version == version => {
            println!(
                "vane: {} v{version} is already in production; nothing to roll out",
                spec.model
            );
            return Ok(true);
        }
        Some(p) => println!("vane: production is {} v{}", spec.model, p.version),
        None => println!("vane: {} has no production version yet", spec.model),
    }
    if let Err(e) = rollout.evaluate() {
        // Evaluation comes before any stage, so nothing of the candidate serves and nothing
        // needs rolling back; and a crashed evaluation (of the candidate or of production, or
        // the database going away) is no verdict on the candidate. Marking it failed would
        // keep a good model out for good, even once the script is fixed: the attempt fails
        // like any crash, is retried, and the candidate stays registered.
        return Err(Error::Rollout(format!(
            "evaluation failed: {e}; nothing was rolled out, and {} v{version} is not marked failed",
            spec.model
        )));
    }
    // A retried attempt keeps the decisions already made in this run about this same version
    // (approvals included); a different candidate goes through every gate itself.
    let earlier: Vec<RolloutStage> = store
        .rollout_stages(Some(job.run))?
        .into_iter()
        .filter(|r| r.task_id == job.task_id && r.version == version)
        .collect();
    for (index, stage) in spec.stages.iter().enumerate() {
        let name = stage.name.as_str();
        if let Some(row) = earlier.iter().find(|r| r.stage == name) {
            match row.status {
                StageStatus::Passed | StageStatus::Approved => {
                    println!(
                        "vane: stage `{name}` of v{version} already {} in an earlier attempt of this run",
                        row.status
                    );
                    reapply(store, job, version, row)?;
                    continue;
                }
                StageStatus::Rejected => {
                    let why = format!(
                        "{name} stage of v{version} was rejected by {} in an earlier attempt of this run: {}",
                        row.decided_by.as_deref().unwrap_or("unknown"),
                        row.reason.as_deref().unwrap_or("")
                    );
                    let reason = rollout.roll_back(&why, &row.evidence)?;
                    return fail(&reason);
                }
                _ => {}
            }
        }
        println!("vane: stage `{name}`");
        rollout.record(name, StageStatus::Running, None, &json!({}));
        let env = rollout.env(name, version, &rollout.candidate);
        let mut metrics = match rollout.step(name, &(job.render)(&stage.command), &env) {
            Ok(m) => m,
            Err(e) => {
                rollout.record(name, StageStatus::Failed, Some(e.clone()), &json!({}));
                let reason = rollout.roll_back(&format!("{name} stage: {e}"), &json!({}))?;
                return fail(&reason);
            }
        };
        if !stage.soak.is_zero() {
            println!(
                "vane: soaking for {}",
                vane_dag::format_duration(stage.soak)
            );
            std::thread::sleep(stage.soak);
        }
        if let Some(monitor) = &stage.monitor {
            match rollout.step(&format!("{name} monitor"), &(job.render)(monitor), &env) {
                Ok(m) => metrics.extend(m),
                Err(e) => {
                    rollout.record(name, StageStatus::Failed, Some(e.clone()), &json!({}));
                    let reason = rollout.roll_back(&format!("{name} stage: {e}"), &json!({}))?;
                    return fail(&reason);
                }
            }
        }
        rollout.report(name, &metrics);
        let mut evidence = json!({ "stage": name });
        let verdict = rollout.judge(index, &metrics, &mut evidence);
        let (actor, reason) = match verdict {
            Verdict::Pass => {
                rollout.record(name, StageStatus::Passed, None, &evidence);
                (rollout.actor(), format!("{name} gate passed"))
            }
            Verdict::Fail(why) => {
                let why = format!("{name} gate failed: {why}");
                rollout.record(name, StageStatus::Failed, Some(why.clone()), &evidence);
                let reason = rollout.roll_back(&why, &evidence)?;
                return fail(&reason);
            }
            Verdict::Inconclusive(why) => {
                let waits = format!(
                    "{why}; waiting for `vane approve {} --stage {name}` or `vane reject {} --reason TEXT`",
                    job.run, job.run
                );
                println!("vane: stage `{name}` is inconclusive: {waits}");
                evidence["inconclusive"] = json!(why);
                rollout.record(name, StageStatus::Waiting, Some(waits), &evidence);
                match rollout.wait(name)? {
                    Decision::Approved { who, note } => {
                        println!("vane: stage `{name}` approved by {who}");
                        evidence["approved_by"] = json!(who);
                        (
                            format!("user {who}"),
                            approved_reason(name, &who, note.as_deref(), &why),
                        )
                    }
                    Decision::Rejected { who, note } => {
                        evidence["rejected_by"] = json!(who);
                        let why = format!("{name} stage rejected by {who}: {note}");
                        let reason = rollout.roll_back(&why, &evidence)?;
                        return fail(&reason);
                    }
                }
            }
        };
        store.set_stage(&StageChange {
            model: &spec.model,
            version,
            to_stage: name,
            actor: &actor,
            run: Some(job.run),
            reason: Some(&reason),
            evidence: &evidence,
        })?;
    }
    println!("vane: {} v{version} is in production", spec.model);
    Ok(true)
}

fn approved_reason(stage: &str, who: &str, note: Option<&str>, why: &str) -> String {
    match note {
        Some(n) => format!("{stage} approved by {who}: {n}"),
        None => format!("{stage} approved by {who} ({why})"),
    }
}

/// Puts `version` in the stage an earlier attempt of this run decided, with that decision's
/// evidence and author, unless the ledger already has it (the attempt got that far).
fn reapply(
    store: &dyn Store,
    job: &Job<'_>,
    version: i64,
    row: &RolloutStage,
) -> Result<(), Error> {
    let model = job.spec.model.as_str();
    let applied = store
        .ledger(Some(model))?
        .iter()
        .any(|e| e.version == version && e.to_stage == row.stage && e.run_id == Some(job.run));
    if applied {
        return Ok(());
    }
    let (actor, reason) = if row.status == StageStatus::Approved {
        let who = row.decided_by.clone().unwrap_or_else(|| "unknown".into());
        let why = row.evidence["inconclusive"].as_str().unwrap_or("");
        let reason = approved_reason(&row.stage, &who, row.reason.as_deref(), why);
        (format!("user {who}"), reason)
    } else {
        (
            format!("run {}", job.run),
            format!("{} gate passed", row.stage),
        )
    };
    let mut evidence = row.evidence.clone();
    if row.status == StageStatus::Approved {
        evidence["approved_by"] = json!(row.decided_by);
    }
    store.set_stage(&StageChange {
        model,
        version,
        to_stage: &row.stage,
        actor: &actor,
        run: Some(job.run),
        reason: Some(&reason),
        evidence: &evidence,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_read_as_a_person_writes_them() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(-0.15000000000000002), "-0.15");
        // Drift between identical distributions is float noise: shown short, not as 50 digits.
        assert_eq!(num(6.162975822039154e-33), "6.163e-33");
        assert_eq!(num(0.00001234), "1.234e-5");
    }
}
