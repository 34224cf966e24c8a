//! `vane why RUN`: what is different from the last good run, most likely cause first.
//!
//! Everything it needs is already recorded: the DAG version and git commit of each run, its
//! params, what each attempt read, the data checks with the bounds they used, metrics, rollout
//! gates, the model ledger, and each attempt's host, duration and whether it was a cache hit.
//! This module reads the two runs (and, for the usual spread of metrics, a few good runs before)
//! by key, so the answer takes as long on a history of a million attempts as on an empty one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use vane_store::{
    AttemptRecord, CheckResult, CheckStatus, Direction, RunDetail, RunId, RunRecord, RunState,
    StageStatus, Store, TaskState,
};

use crate::AppError;
use crate::lineage::{self, ArtifactDiff};

/// How many good runs before the run the usual spread of a metric is taken over.
const SPREAD_RUNS: usize = 20;

/// Fewest good runs a spread is worth taking over; with fewer, a metric's move is not judged.
const SPREAD_MIN_RUNS: usize = 3;

/// A metric "moved" when it is further than this many standard deviations from the mean of
/// the recent good runs: about 1 in 370 for a normal spread, so a stable metric rarely shows.
const SPREAD_SIGMAS: f64 = 3.0;

/// Most commits listed between two runs' commits.
const MOST_COMMITS: usize = 20;

/// The answer to "what is different from the last good run?", as `vane why --json` and
/// `GET /api/runs/{id}/why` give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Why")]
pub struct WhyView {
    pub run: WhyRun,
    /// The run compared with; `null` when there is none (no successful run before it).
    pub against: Option<WhyRun>,
    /// How `against` was chosen.
    pub chosen: String,
    /// The answer first: the first task that failed, or whose result differs, and why.
    pub lead: Lead,
    /// What differs, most likely cause first.
    pub differences: Vec<Difference>,
    /// Every thing compared and found equal, one line each (`param `lr` = 0.1`).
    pub equal: Vec<String>,
    /// The kinds of things that were equal throughout (`params`, `data checks`): what the
    /// command line prints as equal.
    pub equal_kinds: Vec<String>,
    /// Kinds of things that could not be compared yet, each with why (`metrics: fewer than 3
    /// good runs ...`): neither equal nor different.
    pub not_compared: Vec<String>,
}

/// One of the two runs, as `vane why` names it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WhyRun {
    pub id: i64,
    pub dag_id: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: &'static str,
    /// RFC 3339, UTC.
    pub logical_date: String,
    pub dag_version: i64,
    pub git_commit: Option<String>,
}

/// The first thing a person reads.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Lead {
    /// The task it is about, when there is one.
    pub task: Option<String>,
    /// `failed`, `not_promoted`, `differs`, `running` or `same`.
    pub what: &'static str,
    /// One sentence.
    pub summary: String,
}

/// One thing that differs between the two runs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Difference {
    /// `dag_file`, `param`, `check`, `input`, `gate`, `metric`, `model`, `cache`, `attempts`,
    /// `host` or `duration`.
    pub kind: &'static str,
    /// The task it concerns, if one.
    pub task: Option<String>,
    /// The param, check, artifact, stage, metric or model it is about.
    pub name: String,
    /// One line for a person: what it was, what it is.
    pub summary: String,
    /// More lines: the DAG file's unified diff and the commits between, a gate's numbers.
    pub detail: Vec<String>,
    /// The value in the run compared with, for machines.
    pub before: Value,
    /// The value in this run.
    pub after: Value,
}

impl WhyRun {
    fn of(r: &RunRecord) -> Self {
        Self {
            id: r.id.0,
            dag_id: r.dag_id.clone(),
            state: r.state.as_str(),
            logical_date: r.logical_date.to_rfc3339(),
            dag_version: r.dag_version,
            git_commit: r.git.as_ref().map(|g| g.commit.clone()),
        }
    }
}

/// Why run `run` is as it is, compared with `against` or, without it, with the last successful
/// run of the same DAG before it (by logical date). `repo` is where the DAG files are, for the
/// commits between the two runs' commits; `None` leaves them out.
///
/// # Errors
/// No such run; a run compared with itself or with a run of another DAG; the store cannot be
/// read.
pub fn why(
    store: &dyn Store,
    run: RunId,
    against: Option<RunId>,
    repo: Option<&Path>,
) -> Result<WhyView, AppError> {
    let this = store.run(run)?;
    let (other, chosen) = match against {
        Some(id) if id == run => {
            return Err(AppError::Invalid(format!(
                "run {run} compared with itself shows nothing: give another run of `{}` with \
                 --against, or leave --against out to compare with the last successful run \
                 before it",
                this.run.dag_id
            )));
        }
        Some(id) => {
            let other = store.run(id)?;
            if other.run.dag_id != this.run.dag_id {
                return Err(AppError::Invalid(format!(
                    "run {id} is of DAG `{}` and run {run} of `{}`: vane why compares runs of \
                     one DAG; `vane diff {id} {run}` shows what differs between any two runs",
                    other.run.dag_id, this.run.dag_id
                )));
            }
            (Some(other), format!("run {id}, as asked"))
        }
        None => {
            let before = store.runs_before(
                &this.run.dag_id,
                this.run.logical_date,
                &[RunState::Success],
                1,
            )?;
            match before.first() {
                Some(r) => (
                    Some(store.run(r.id)?),
                    format!(
                        "run {}, the last successful run of `{}` before this one",
                        r.id, this.run.dag_id
                    ),
                ),
                None => (
                    None,
                    format!(
                        "nothing: no run of `{}` before this one succeeded",
                        this.run.dag_id
                    ),
                ),
            }
        }
    };
    // Each run's checks and rollout stages are read once, here, for every comparison below.
    let stages = store.rollout_stages(Some(run))?;
    let checks_now = store.run_checks(run)?;
    let lead = lead(&this, other.as_ref(), &stages, &checks_now);
    let Some(other) = other else {
        return Ok(WhyView {
            run: WhyRun::of(&this.run),
            against: None,
            chosen,
            lead,
            differences: Vec::new(),
            equal: Vec::new(),
            equal_kinds: Vec::new(),
            not_compared: Vec::new(),
        });
    };
    let mut found = Found::default();
    dag_file(store, &other.run, &this.run, repo, &mut found)?;
    let diff = lineage::diff(store, other.run.id, this.run.id)?;
    params(&diff, &mut found);
    let lead_task = lead.task.as_deref();
    let (checks_before, stages_before) = (
        store.run_checks(other.run.id)?,
        store.rollout_stages(Some(other.run.id))?,
    );
    let (runs, checks_of) = (
        (&other.run, &this.run),
        (&checks_before[..], &checks_now[..]),
    );
    checks(runs, checks_of, lead_task, &mut found);
    inputs(&diff.artifacts, runs, checks_of, lead_task, &mut found);
    gates(
        &stages_before,
        &stages,
        lead.what == "not_promoted",
        &mut found,
    );
    metrics(store, &this, &mut found)?;
    models(
        store,
        (&other, &this),
        (&stages_before, &stages),
        &mut found,
    )?;
    execution(&other, &this, &mut found);
    let Found {
        mut differences,
        equal,
        equal_kinds,
        not_compared,
    } = found;
    differences.sort_by_key(|(rank, _)| *rank);
    Ok(WhyView {
        run: WhyRun::of(&this.run),
        against: Some(WhyRun::of(&other.run)),
        chosen,
        lead,
        differences: differences.into_iter().map(|(_, d)| d).collect(),
        equal,
        equal_kinds,
        not_compared,
    })
}

/// What each comparison found: differences with their rank (lower leads), and what was equal.
#[derive(Default)]
struct Found {
    differences: Vec<(u32, Difference)>,
    equal: Vec<String>,
    equal_kinds: Vec<String>,
    not_compared: Vec<String>,
}

impl Found {
    /// Notes one thing compared and found equal.
    fn same(&mut self, item: String) {
        self.equal.push(item);
    }

    /// Records what one comparison found; `what` names it in the `equal_kinds` list when it found
    /// nothing.
    fn add(&mut self, what: &str, found: Vec<(u32, Difference)>) {
        if found.is_empty() {
            self.equal_kinds.push(what.to_owned());
        }
        self.differences.extend(found);
    }
}

/// Ranks: lower is more likely the cause and is shown first.
mod rank {
    pub(super) const GATE_OF_LEAD: u32 = 5;
    pub(super) const DAG_FILE: u32 = 10;
    pub(super) const PARAM: u32 = 20;
    pub(super) const CHECK_OF_LEAD: u32 = 30;
    pub(super) const INPUT_OF_LEAD: u32 = 31;
    pub(super) const CHECK: u32 = 40;
    pub(super) const INPUT: u32 = 41;
    pub(super) const GATE: u32 = 45;
    pub(super) const METRIC: u32 = 50;
    pub(super) const MODEL: u32 = 60;
    pub(super) const CACHE: u32 = 70;
    pub(super) const ATTEMPTS: u32 = 71;
    pub(super) const HOST: u32 = 72;
    pub(super) const DURATION: u32 = 73;
}

fn difference(
    kind: &'static str,
    task: Option<&str>,
    name: &str,
    summary: String,
    before: Value,
    after: Value,
) -> Difference {
    Difference {
        kind,
        task: task.map(str::to_owned),
        name: name.to_owned(),
        summary,
        detail: Vec::new(),
        before,
        after,
    }
}

/// The first task that failed (by when its last attempt ended), a model not promoted, or the
/// first task whose state differs from the other run's.
fn lead(
    this: &RunDetail,
    other: Option<&RunDetail>,
    stages: &[vane_store::RolloutStage],
    checks: &[(String, u32, CheckResult)],
) -> Lead {
    // A gate that kept a model out explains its deploy task's failure better than the task's
    // own "failed on a verdict".
    let not_promoted = stages.iter().find(|s| {
        matches!(
            s.status,
            StageStatus::Failed | StageStatus::Rejected | StageStatus::Expired
        )
    });
    if let Some(stage) = not_promoted {
        return Lead {
            task: Some(stage.task_id.clone()),
            what: "not_promoted",
            summary: format!(
                "model `{}` v{} was not promoted: stage `{}` {}",
                stage.model,
                stage.version,
                stage.stage,
                stage_outcome(stage)
            ),
        };
    }
    let ended = |t: &vane_store::TaskRecord| t.attempts.last().and_then(|a| a.ended_at);
    let failed = this
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Failed)
        .min_by_key(|t| ended(t).unwrap_or(DateTime::<Utc>::MAX_UTC));
    if let Some(task) = failed {
        // A check that failed says more than "failed on a verdict".
        let failed_checks: Vec<String> = checks
            .iter()
            .filter(|(t, _, r)| *t == task.task_id && r.status == CheckStatus::Fail)
            .map(|(_, _, r)| format!("check `{}` failed: {}", r.name, r.detail))
            .collect();
        let last = task.attempts.last();
        let reason = if failed_checks.is_empty() {
            last.and_then(|a| a.reason.clone())
                .or_else(|| task.reason.clone())
                .or_else(|| {
                    last.and_then(|a| a.exit_code)
                        .map(|c| format!("exit code {c}"))
                })
                .unwrap_or_else(|| "no reason recorded".to_owned())
        } else {
            failed_checks.join("; ")
        };
        return Lead {
            task: Some(task.task_id.clone()),
            what: "failed",
            summary: format!("task `{}` failed: {reason}", task.task_id),
        };
    }
    if matches!(this.run.state, RunState::Queued | RunState::Running) {
        return Lead {
            task: None,
            what: "running",
            summary: format!("run {} is still {}", this.run.id, this.run.state.as_str()),
        };
    }
    let states: HashMap<&str, TaskState> = other
        .map(|o| {
            o.tasks
                .iter()
                .map(|t| (t.task_id.as_str(), t.state))
                .collect()
        })
        .unwrap_or_default();
    let differs = this.tasks.iter().find(|t| {
        states
            .get(t.task_id.as_str())
            .is_some_and(|s| *s != t.state)
    });
    match (differs, other) {
        (Some(task), Some(other)) => Lead {
            task: Some(task.task_id.clone()),
            what: "differs",
            summary: format!(
                "task `{}` ended {} where run {} had it {}",
                task.task_id,
                task.state.as_str(),
                other.run.id,
                states[task.task_id.as_str()].as_str()
            ),
        },
        (_, Some(other)) => Lead {
            task: None,
            what: "same",
            summary: format!(
                "run {} {}; every task ended as in run {}",
                this.run.id,
                this.run.state.as_str(),
                other.run.id
            ),
        },
        // Nothing to compare with: say what the run did, not that it matched nothing.
        (_, None) => Lead {
            task: None,
            what: "same",
            summary: format!("run {} {}", this.run.id, this.run.state.as_str()),
        },
    }
}

fn dag_file(
    store: &dyn Store,
    a: &RunRecord,
    b: &RunRecord,
    repo: Option<&Path>,
    found: &mut Found,
) -> Result<(), AppError> {
    if a.dag_version == b.dag_version {
        found.same(format!("dag file (version {})", a.dag_version));
        found.add("dag file", Vec::new());
        return Ok(());
    }
    let (old, new) = (
        store.dag_source(a.dag_version)?,
        store.dag_source(b.dag_version)?,
    );
    let mut d = difference(
        "dag_file",
        None,
        "dag file",
        format!(
            "the DAG file changed: version {} (run {}) → version {} (run {})",
            a.dag_version, a.id, b.dag_version, b.id
        ),
        Value::from(a.dag_version),
        Value::from(b.dag_version),
    );
    let unified = similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(2)
        .header(&format!("run {}", a.id), &format!("run {}", b.id))
        .to_string();
    d.detail.extend(unified.lines().map(str::to_owned));
    if let (Some(ga), Some(gb), Some(repo)) = (&a.git, &b.git, repo)
        && ga.commit != gb.commit
    {
        let commits = commits_between(repo, &ga.commit, &gb.commit);
        if !commits.is_empty() {
            d.summary.push_str(&format!(
                "; {} commit{} between {} and {}",
                commits.len(),
                if commits.len() == 1 { "" } else { "s" },
                short(&ga.commit),
                short(&gb.commit)
            ));
            d.detail.push(format!(
                "commits {}..{}:",
                short(&ga.commit),
                short(&gb.commit)
            ));
            d.detail
                .extend(commits.into_iter().map(|c| format!("  {c}")));
        }
    }
    found.add("dag file", vec![(rank::DAG_FILE, d)]);
    Ok(())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// `git log --oneline` from `old` to `new` in the repository around `repo`, newest first: the
/// commits that changed the DAG folder between two runs. Empty when git or a commit is missing.
fn commits_between(repo: &Path, old: &str, new: &str) -> Vec<String> {
    let log = |range: &str| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args([
                "log",
                "--format=%h %s",
                &format!("--max-count={MOST_COMMITS}"),
            ])
            .arg(range)
            .args(["--", "."])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    // The run compared with may be the later one (`--against` a newer run).
    let forward = log(&format!("{old}..{new}"));
    if forward.is_empty() {
        log(&format!("{new}..{old}"))
    } else {
        forward
    }
}

fn params(diff: &lineage::RunDiff, found: &mut Found) {
    let shown = |v: &Option<Value>| {
        v.as_ref()
            .filter(|v| !v.is_null())
            .map_or_else(|| "(not set)".to_owned(), |v| v.to_string())
    };
    for p in diff.params.iter().filter(|p| !p.changed) {
        found.same(format!("param `{}` = {}", p.name, shown(&p.a)));
    }
    let changed = diff
        .params
        .iter()
        .filter(|p| p.changed)
        .map(|p| {
            let summary = match (&p.a, &p.b) {
                (None, Some(_)) => format!("param `{}` added: {}", p.name, shown(&p.b)),
                (Some(_), None) => format!("param `{}` removed (was {})", p.name, shown(&p.a)),
                _ => format!("param `{}`: {} → {}", p.name, shown(&p.a), shown(&p.b)),
            };
            let d = difference(
                "param",
                None,
                &p.name,
                summary,
                p.a.clone().unwrap_or(Value::Null),
                p.b.clone().unwrap_or(Value::Null),
            );
            (rank::PARAM, d)
        })
        .collect();
    found.add("params", changed);
}

/// A run's check results, as [`Store::run_checks`] gives them: `(task, attempt, result)`.
type Checks = [(String, u32, CheckResult)];

/// The check results of a run by (task, check name).
fn checks_by_name(checks: &Checks) -> BTreeMap<(&str, &str), &CheckResult> {
    checks
        .iter()
        .map(|(task, _, r)| ((task.as_str(), r.name.as_str()), r))
        .collect()
}

fn checks(
    (a, b): (&RunRecord, &RunRecord),
    (checks_a, checks_b): (&Checks, &Checks),
    lead_task: Option<&str>,
    found: &mut Found,
) {
    let (ca, cb) = (checks_by_name(checks_a), checks_by_name(checks_b));
    let keys: BTreeSet<(&str, &str)> = ca.keys().chain(cb.keys()).copied().collect();
    let status = |r: Option<&CheckResult>| r.map_or("-", |r| r.status.as_str());
    let seen = |r: Option<&CheckResult>| {
        r.map_or_else(
            || "not checked".to_owned(),
            |r| {
                let value = r.observed.map_or_else(|| "-".to_owned(), vane_deploy::num);
                let bound = r.bound.as_deref().unwrap_or("-");
                let how = match r.derivation.as_deref() {
                    Some(d) if d.starts_with("auto") => format!("learned: {d}"),
                    Some(d) => d.to_owned(),
                    None => "fixed".to_owned(),
                };
                format!("{value}, bound {bound} ({how})")
            },
        )
    };
    let mut out = Vec::new();
    for key in keys {
        let (ra, rb) = (ca.get(&key).copied(), cb.get(&key).copied());
        if status(ra) == status(rb) {
            found.same(format!(
                "check `{}` of task `{}`: {}",
                key.1,
                key.0,
                status(rb)
            ));
            continue;
        }
        let (task, name) = key;
        let failing = rb.is_some_and(|r| r.status == CheckStatus::Fail);
        let of_lead = lead_task == Some(task);
        // The failing checks of the task that failed are the likely cause; a warning beside
        // them comes after the input they read.
        let rank = match (of_lead, failing) {
            (true, true) => rank::CHECK_OF_LEAD,
            (true, false) => rank::INPUT_OF_LEAD + 1,
            (false, true) => rank::CHECK,
            (false, false) => rank::CHECK + 1,
        };
        let mut d = difference(
            "check",
            Some(task),
            name,
            format!(
                "check `{name}` of task `{task}`: {} → {}",
                status(ra),
                status(rb)
            ),
            check_json(ra),
            check_json(rb),
        );
        d.detail = vec![
            format!("run {}: {}", a.id, seen(ra)),
            format!("run {}: {}", b.id, seen(rb)),
        ];
        if let Some(r) = rb.filter(|r| !r.detail.is_empty()) {
            d.detail.push(r.detail.clone());
        }
        out.push((rank, d));
    }
    found.add("data checks", out);
}

fn check_json(r: Option<&CheckResult>) -> Value {
    r.map_or(Value::Null, |r| {
        serde_json::json!({
            "status": r.status.as_str(),
            "observed": r.observed,
            "bound": r.bound,
            "derivation": r.derivation,
        })
    })
}

fn inputs(
    artifacts: &[ArtifactDiff],
    (a, b): (&RunRecord, &RunRecord),
    (checks_a, checks_b): (&Checks, &Checks),
    lead_task: Option<&str>,
    found: &mut Found,
) {
    for x in artifacts
        .iter()
        .filter(|x| x.direction == Direction::Input && !x.changed)
    {
        let version = x.b.as_ref().map_or(0, |v| v.version);
        found.same(format!(
            "input `{}` of task `{}`: v{version}",
            x.name, x.task
        ));
    }
    // A task that did not run this time read nothing: that is not a change of its input.
    let changed: Vec<&ArtifactDiff> = artifacts
        .iter()
        .filter(|x| x.direction == Direction::Input && x.changed && x.b.is_some())
        .collect();
    // A row count comes from the `rows` check of the task that read the data, if it has one.
    let rows = |checks: &Checks| -> HashMap<String, f64> {
        checks
            .iter()
            .filter(|(_, _, r)| r.name == "rows")
            .filter_map(|(task, _, r)| r.observed.map(|n| (task.clone(), n)))
            .collect()
    };
    let (rows_a, rows_b) = (rows(checks_a), rows(checks_b));
    let mut out = Vec::new();
    for x in changed {
        let version = |v: &Option<vane_store::ArtifactVersion>| {
            v.as_ref()
                .map_or_else(|| "-".to_owned(), |v| format!("v{}", v.version))
        };
        let mut summary = format!(
            "input `{}` of task `{}`: {} → {}",
            x.name,
            x.task,
            version(&x.a),
            version(&x.b)
        );
        if let (Some(va), Some(vb)) = (&x.a, &x.b) {
            summary.push_str(&format!(
                ", {} → {}{}",
                bytes(va.size),
                bytes(vb.size),
                percent(va.size as f64, vb.size as f64)
            ));
        }
        if let (Some(ra), Some(rb)) = (rows_a.get(&x.task), rows_b.get(&x.task))
            && ra != rb
        {
            summary.push_str(&format!(
                ", rows {} → {}{}",
                vane_deploy::num(*ra),
                vane_deploy::num(*rb),
                percent(*ra, *rb)
            ));
        }
        let json = |v: &Option<vane_store::ArtifactVersion>| {
            v.as_ref().map_or(
                Value::Null,
                |v| serde_json::json!({ "version": v.version, "hash": v.hash, "size": v.size }),
            )
        };
        let mut d = difference(
            "input",
            Some(&x.task),
            &x.name,
            summary,
            json(&x.a),
            json(&x.b),
        );
        d.detail.push(format!(
            "what else differs between them: vane diff {} {}",
            a.id, b.id
        ));
        let rank = if lead_task == Some(x.task.as_str()) {
            rank::INPUT_OF_LEAD
        } else {
            rank::INPUT
        };
        out.push((rank, d));
    }
    found.add("inputs", out);
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

fn percent(a: f64, b: f64) -> String {
    let change = (b - a) / a * 100.0;
    // Under a tenth of a percent is not news, and "+0%" would read as none at all.
    if a == 0.0 || change.abs() < 0.1 {
        return String::new();
    }
    if change.abs() < 10.0 {
        format!(" ({change:+.1}%)")
    } else {
        format!(" ({change:+.0}%)")
    }
}

/// A stage's status with what explains it. A person's answer is kept beside the detail the
/// stage had while it waited (`... waiting for \`vane approve 2\` ...`), which would read as
/// an instruction for a rollout that is long over: the answer is what to show, and the
/// reason it waited only as that.
fn stage_outcome(s: &vane_store::RolloutStage) -> String {
    let status = s.status.as_str();
    let Some(who) = &s.decided_by else {
        return match &s.detail {
            Some(detail) => format!("{status}: {detail}"),
            None => status.to_owned(),
        };
    };
    let mut out = format!("{status} by {who}");
    if let Some(reason) = &s.reason {
        out.push_str(&format!(": {reason}"));
    }
    if let Some(waited) = s
        .detail
        .as_deref()
        .and_then(|d| d.split("; waiting for `").next())
        .filter(|w| !w.is_empty())
    {
        out.push_str(&format!(" (it waited because {waited})"));
    }
    out
}

fn gates(
    before: &[vane_store::RolloutStage],
    after: &[vane_store::RolloutStage],
    leads: bool,
    found: &mut Found,
) {
    let by_key = |stages: &[vane_store::RolloutStage]| -> BTreeMap<(String, String), vane_store::RolloutStage> {
        stages
            .iter()
            .map(|s| ((s.task_id.clone(), s.stage.clone()), s.clone()))
            .collect()
    };
    let (sa, sb) = (by_key(before), by_key(after));
    let keys: BTreeSet<&(String, String)> = sa.keys().chain(sb.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (sa.get(key), sb.get(key));
        let gates_of = |s: Option<&vane_store::RolloutStage>| {
            s.and_then(|s| s.evidence.get("gates").cloned())
                .unwrap_or(Value::Null)
        };
        let status =
            |s: Option<&vane_store::RolloutStage>| s.map_or("not reached", |s| s.status.as_str());
        // A stage this run never reached (an earlier one failed, or the task did not run) is
        // a consequence, not a cause.
        if b.is_none() {
            continue;
        }
        if status(a) == status(b) && gates_of(a) == gates_of(b) {
            found.same(format!(
                "stage `{}` of task `{}`: {}",
                key.1,
                key.0,
                status(b)
            ));
            continue;
        }
        let (task, stage) = key;
        let mut d = difference(
            "gate",
            Some(task),
            stage,
            if status(a) == status(b) {
                format!(
                    "stage `{stage}` of task `{task}`: {} in both, with other numbers",
                    status(b)
                )
            } else {
                format!(
                    "stage `{stage}` of task `{task}`: {} → {}",
                    status(a),
                    status(b)
                )
            },
            gates_of(a),
            gates_of(b),
        );
        for (label, s) in [("before", a), ("now", b)] {
            let Some(s) = s else { continue };
            let run = s.run_id;
            for gate in gates_of(Some(s)).as_array().into_iter().flatten() {
                d.detail.push(format!(
                    "run {run} ({label}): gate `{}`: {}: {}",
                    gate["gate"].as_str().unwrap_or("?"),
                    gate["status"].as_str().unwrap_or("?"),
                    gate["detail"].as_str().unwrap_or("")
                ));
            }
            if s.decided_by.is_some() {
                d.detail
                    .push(format!("run {run} ({label}): {}", stage_outcome(s)));
            } else if let Some(detail) = &s.detail {
                d.detail.push(format!("run {run} ({label}): {detail}"));
            }
        }
        let failed = b.is_some_and(|s| s.status != StageStatus::Passed);
        let rank = if leads && failed {
            rank::GATE_OF_LEAD
        } else {
            rank::GATE
        };
        out.push((rank, d));
    }
    found.add("rollout gates", out);
}

/// Metrics of this run further from the mean of the recent good runs than their usual spread.
fn metrics(store: &dyn Store, this: &RunDetail, found: &mut Found) -> Result<(), AppError> {
    let mine = lineage::latest_metrics(this);
    if mine.is_empty() {
        found.add("metrics", Vec::new());
        return Ok(());
    }
    let good = store.runs_before(
        &this.run.dag_id,
        this.run.logical_date,
        &[RunState::Success],
        SPREAD_RUNS,
    )?;
    let mut series: HashMap<(String, String), Vec<f64>> = HashMap::new();
    for run in &good {
        for (key, value) in lineage::latest_metrics(&store.run(run.id)?) {
            series.entry(key).or_default().push(value);
        }
    }
    let mut out = Vec::new();
    let (mut reported, mut judged) = (0, 0);
    // A check's value is also a metric (`check.rows`); the check itself is compared above.
    for ((task, name), value) in mine.iter().filter(|((_, n), _)| !n.starts_with("check.")) {
        reported += 1;
        let Some(values) = series
            .get(&(task.clone(), name.clone()))
            .filter(|v| v.len() >= SPREAD_MIN_RUNS)
        else {
            continue;
        };
        judged += 1;
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let moved = if sd > 0.0 {
            (value - mean).abs() > SPREAD_SIGMAS * sd
        } else {
            (value - mean).abs() > f64::EPSILON * mean.abs().max(1.0)
        };
        if !moved {
            found.same(format!(
                "metric `{name}` of task `{task}`: {} (within {} ± {})",
                vane_deploy::num(*value),
                vane_deploy::num(mean),
                vane_deploy::num(sd)
            ));
            continue;
        }
        let summary = format!(
            "metric `{name}` of task `{task}`: {} where the last {} good runs had {} ± {}",
            vane_deploy::num(*value),
            values.len(),
            vane_deploy::num(mean),
            vane_deploy::num(sd)
        );
        let d = difference(
            "metric",
            Some(task),
            name,
            summary,
            serde_json::json!({ "mean": mean, "sd": sd, "runs": values.len() }),
            Value::from(*value),
        );
        out.push((rank::METRIC, d));
    }
    // Early in a pipeline's life no metric has the history its spread is learned from: saying
    // "equal" then would hide an accuracy that fell by half.
    if reported > 0 && judged == 0 {
        found.not_compared.push(format!(
            "metrics (a metric is judged against its spread over the good runs before this one, and none has {SPREAD_MIN_RUNS} yet: `vane metrics {}` shows them)",
            this.run.dag_id
        ));
        return Ok(());
    }
    found.add("metrics", out);
    Ok(())
}

/// The version of each model the runs roll out that was in production when each run started.
fn models(
    store: &dyn Store,
    (a, b): (&RunDetail, &RunDetail),
    (stages_a, stages_b): (&[vane_store::RolloutStage], &[vane_store::RolloutStage]),
    found: &mut Found,
) -> Result<(), AppError> {
    let names: BTreeSet<&str> = stages_a
        .iter()
        .chain(stages_b)
        .map(|s| s.model.as_str())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let when = |r: &RunRecord| r.started_at.unwrap_or(r.queued_at);
    let mut out = Vec::new();
    for model in names {
        let ledger = store.ledger(Some(model))?;
        let (pa, pb) = (
            vane_store::production_at(&ledger, model, when(&a.run)),
            vane_store::production_at(&ledger, model, when(&b.run)),
        );
        let shown = |v: Option<i64>| v.map_or_else(|| "none".to_owned(), |v| format!("v{v}"));
        if pa == pb {
            found.same(format!("model `{model}` in production: {}", shown(pa)));
            continue;
        }
        let d = difference(
            "model",
            None,
            model,
            format!(
                "model `{model}` in production when the run started: {} → {}",
                shown(pa),
                shown(pb)
            ),
            pa.map_or(Value::Null, Value::from),
            pb.map_or(Value::Null, Value::from),
        );
        out.push((rank::MODEL, d));
    }
    found.add("models in production", out);
    Ok(())
}

/// How each task's latest attempt ran: a cache hit or a real execution, how many attempts,
/// on which host, for how long.
fn execution(a: &RunDetail, b: &RunDetail, found: &mut Found) {
    let latest: HashMap<&str, (&vane_store::TaskRecord, &AttemptRecord)> = a
        .tasks
        .iter()
        .filter_map(|t| t.attempts.last().map(|l| (t.task_id.as_str(), (t, l))))
        .collect();
    let cached = |x: &AttemptRecord| x.reason.as_deref().is_some_and(|r| r.starts_with("cached"));
    let seconds = |x: &AttemptRecord| {
        x.ended_at
            .map(|end| (end - x.started_at).num_milliseconds() as f64 / 1000.0)
    };
    let (mut cache, mut attempts, mut hosts, mut durations) = (vec![], vec![], vec![], vec![]);
    for t in &b.tasks {
        let (Some(xb), Some(&(ta, xa))) = (t.attempts.last(), latest.get(t.task_id.as_str()))
        else {
            continue;
        };
        let task = Some(t.task_id.as_str());
        if cached(xa) != cached(xb) {
            let how = |c: bool| if c { "a cache hit" } else { "executed" };
            cache.push((
                rank::CACHE,
                difference(
                    "cache",
                    task,
                    &t.task_id,
                    format!(
                        "task `{}`: {} → {}",
                        t.task_id,
                        how(cached(xa)),
                        how(cached(xb))
                    ),
                    Value::from(cached(xa)),
                    Value::from(cached(xb)),
                ),
            ));
        }
        let tries = |t: &vane_store::TaskRecord| t.attempts.len();
        if tries(ta) != tries(t) {
            attempts.push((
                rank::ATTEMPTS,
                difference(
                    "attempts",
                    task,
                    &t.task_id,
                    format!(
                        "task `{}`: {} attempt{} → {}",
                        t.task_id,
                        tries(ta),
                        if tries(ta) == 1 { "" } else { "s" },
                        tries(t)
                    ),
                    Value::from(tries(ta)),
                    Value::from(tries(t)),
                ),
            ));
        }
        if xa.host != xb.host {
            hosts.push((
                rank::HOST,
                difference(
                    "host",
                    task,
                    &t.task_id,
                    format!("task `{}` ran on {} → {}", t.task_id, xa.host, xb.host),
                    Value::from(xa.host.clone()),
                    Value::from(xb.host.clone()),
                ),
            ));
        }
        // An outlier: twice as long or half as long, and by more than a second, so that the
        // jitter of short tasks is not news.
        if let (Some(da), Some(db)) = (seconds(xa), seconds(xb))
            && (db - da).abs() > 1.0
            && (db > 2.0 * da || da > 2.0 * db)
        {
            durations.push((
                rank::DURATION,
                difference(
                    "duration",
                    task,
                    &t.task_id,
                    format!(
                        "task `{}` took {} s → {} s",
                        t.task_id,
                        vane_deploy::num((da * 10.0).round() / 10.0),
                        vane_deploy::num((db * 10.0).round() / 10.0)
                    ),
                    Value::from(da),
                    Value::from(db),
                ),
            ));
        }
    }
    for (kind, list) in [
        ("cache hits", cache),
        ("attempts", attempts),
        ("hosts", hosts),
        ("durations", durations),
    ] {
        if list.is_empty() {
            found.same(format!("{kind}: as before, every task"));
        }
        found.add(kind, list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_changes_read_as_a_person_writes_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(10_200), "10.2 kB");
        assert_eq!(bytes(2_500_000), "2.5 MB");
        assert_eq!(percent(1000.0, 200.0), " (-80%)");
        assert_eq!(percent(1000.0, 1050.0), " (+5.0%)");
        assert_eq!(percent(1000.0, 1000.4), "");
        assert_eq!(percent(0.0, 5.0), "");
    }
}
