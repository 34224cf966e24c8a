//! Reads behind `--json` and the API that belong to no action: scheduler status, metrics and
//! check history.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};
use vane_store::{CheckHistoryEntry, LeaseRecord, MetricPoint, SchedulerRecord, Store};

use crate::{App, AppError};

type Result<T, E = AppError> = std::result::Result<T, E>;

impl App {
    /// The database and its schedulers as `vane status --json` and `GET /api/status` give
    /// them; `now` decides which heartbeats are stale.
    ///
    /// # Errors
    /// The database path cannot be made absolute.
    pub fn status_view(&self, schedulers: &[Scheduler], now: DateTime<Utc>) -> Result<StatusView> {
        let schedulers = schedulers
            .iter()
            .map(|scheduler| {
                let Scheduler { record: s, lease } = scheduler;
                SchedulerView {
                    id: s.id.clone(),
                    host: s.host.clone(),
                    pid: s.pid,
                    status: scheduler.status(now),
                    started_at: s.started_at.to_rfc3339(),
                    last_heartbeat: s.last_heartbeat.to_rfc3339(),
                    heartbeat_age_seconds: s.age(now).as_secs_f64(),
                    stopped_at: s.stopped_at.map(|t| t.to_rfc3339()),
                    passes: s.passes.count,
                    mean_pass_ms: s.passes.mean().map(|p| p * 1000.0),
                    last_pass_ms: s.passes.last.map(|p| p * 1000.0),
                    lease: lease.as_ref().map(|l| LeaseView {
                        id: l.id.clone(),
                        state: l.state.as_str(),
                        renewed_at: l.renewed_at.to_rfc3339(),
                        expires_at: l.expires_at.to_rfc3339(),
                    }),
                    runs_owned: lease.as_ref().map_or(0, |l| l.runs_owned),
                }
            })
            .collect();
        Ok(StatusView {
            database: self.database()?,
            backend: self.backend().as_str(),
            schedulers,
        })
    }

    /// The database as `vane status` names it.
    ///
    /// # Errors
    /// The path cannot be made absolute.
    pub fn database(&self) -> Result<String> {
        Ok(vane_store::describe(&self.db_for_children()?))
    }
}

/// A scheduler as its heartbeat and its lease leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduler {
    pub record: SchedulerRecord,
    /// The lease it held at its latest heartbeat, as the database judges it now; `None` when
    /// it held none or the lease was forgotten.
    pub lease: Option<LeaseRecord>,
}

impl Scheduler {
    /// What `vane status` shows for its lease: held, expired (its runs are adopted), released.
    #[must_use]
    pub fn lease_state(&self) -> &'static str {
        self.lease.as_ref().map_or("-", |l| l.state.as_str())
    }

    /// `up`, `stopped`, `stale` (silent without stopping, and something may still wait on it:
    /// its lease is held or it owns runs) or `gone` (silent, its lease expired and every run
    /// it owned was adopted: nothing waits on it, and nothing needs doing).
    #[must_use]
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        let status = self.record.status(now);
        let settled = self
            .lease
            .as_ref()
            .is_none_or(|l| l.state != vane_store::LeaseState::Held && l.runs_owned == 0);
        if status == vane_store::SchedulerStatus::Stale && settled {
            "gone"
        } else {
            status.as_str()
        }
    }
}

/// Schedulers that worked on the store, running first, each with its lease; `limit` 0 is all.
///
/// # Errors
/// The store cannot be read.
pub fn schedulers(store: &dyn Store, limit: usize) -> Result<Vec<Scheduler>> {
    let mut list = store.schedulers()?;
    if limit > 0 {
        list.truncate(limit);
    }
    let mut leases = store.leases()?;
    Ok(list
        .into_iter()
        .map(|record| {
            let lease = record.lease.as_ref().and_then(|id| {
                let at = leases.iter().position(|l| l.id == *id)?;
                Some(leases.swap_remove(at))
            });
            Scheduler { record, lease }
        })
        .collect())
}

/// Which check results to read.
#[derive(Debug, Clone, Default)]
pub struct CheckQuery {
    pub dag_id: String,
    pub task: Option<String>,
    pub check: Option<String>,
    pub last: usize,
}

/// The database and the schedulers that use it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Status")]
pub struct StatusView {
    pub database: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub schedulers: Vec<SchedulerView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Scheduler")]
pub struct SchedulerView {
    pub id: String,
    pub host: String,
    pub pid: u32,
    /// `up`, `stale`, `stopped` or `gone` (silent, and its work adopted by another).
    pub status: &'static str,
    pub started_at: String,
    pub last_heartbeat: String,
    pub heartbeat_age_seconds: f64,
    pub stopped_at: Option<String>,
    /// Scheduling passes it made.
    pub passes: u64,
    pub mean_pass_ms: Option<f64>,
    pub last_pass_ms: Option<f64>,
    /// Its lease on the runs it owns.
    pub lease: Option<LeaseView>,
    pub runs_owned: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Lease")]
pub struct LeaseView {
    pub id: String,
    /// `held`, `expired` or `released`.
    pub state: &'static str,
    pub renewed_at: String,
    pub expires_at: String,
}

/// The check history `vane checks` shows: of a DAG, optionally one task and one check.
///
/// # Errors
/// [`AppError::NotFound`] for a task or check the DAG never recorded, naming those it
/// did; the store cannot be read.
pub fn check_history(store: &dyn Store, q: &CheckQuery) -> Result<Vec<CheckHistoryEntry>> {
    let history: Vec<CheckHistoryEntry> = store
        .check_history(&q.dag_id, q.task.as_deref(), q.last)?
        .into_iter()
        .filter(|e| q.check.as_ref().is_none_or(|c| *c == e.result.name))
        .collect();
    if history.is_empty() {
        explain_no_checks(store, q)?;
    }
    Ok(history)
}

/// A data check's result as `vane checks --json` and `GET /api/dags/{id}/checks` give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Check")]
pub struct CheckView {
    pub run_id: i64,
    pub logical_date: String,
    pub task_id: String,
    pub attempt: u32,
    pub evaluated_at: String,
    /// A person marked the run's data good: learned bounds count it.
    pub marked_good: bool,
    pub check: String,
    pub column: Option<String>,
    /// `error` fails the task; `warn` does not.
    pub severity: String,
    /// `pass`, `warn`, `fail` or `learning` (a learned bound with too little history yet).
    pub status: &'static str,
    pub observed: Option<f64>,
    /// The bound it was held to, as text.
    pub bound: Option<String>,
    /// How a learned bound was derived.
    pub derivation: Option<String>,
    pub detail: String,
    /// Rows that broke the check (a sample).
    pub offending_rows: Vec<OffendingRow>,
    /// Hash of the check's definition: a change of it restarts learning.
    pub definition_hash: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OffendingRow {
    pub line: u64,
    pub value: String,
}

impl CheckView {
    #[must_use]
    pub fn of(e: &CheckHistoryEntry) -> Self {
        let r = &e.result;
        Self {
            run_id: e.run.0,
            logical_date: e.logical_date.to_rfc3339(),
            task_id: e.task_id.clone(),
            attempt: e.attempt,
            evaluated_at: e.evaluated_at.to_rfc3339(),
            marked_good: e.marked_good,
            check: r.name.clone(),
            column: r.column.clone(),
            severity: r.severity.clone(),
            status: r.status.as_str(),
            observed: r.observed,
            bound: r.bound.clone(),
            derivation: r.derivation.clone(),
            detail: r.detail.clone(),
            offending_rows: r
                .offending
                .iter()
                .map(|(line, value)| OffendingRow {
                    line: *line,
                    value: value.clone(),
                })
                .collect(),
            definition_hash: r.definition_hash.clone(),
        }
    }
}

/// Which metric points to read: of a DAG, optionally one task and one name, the last `last`
/// runs of each series.
#[derive(Debug, Clone, Default)]
pub struct MetricQuery {
    pub dag_id: String,
    pub task: Option<String>,
    pub name: Option<String>,
    pub last: usize,
}

/// Metric series, oldest point first within each series.
///
/// # Errors
/// [`AppError::NotFound`] for a task or name the DAG never reported, naming those it
/// did; the store cannot be read.
pub fn metric_series(store: &dyn Store, q: &MetricQuery) -> Result<Vec<MetricPoint>> {
    let points = store.metric_series(&vane_store::MetricFilter {
        dag_id: &q.dag_id,
        task: q.task.as_deref(),
        name: q.name.as_deref(),
        last: q.last,
    })?;
    if points.is_empty() {
        explain_no_metrics(store, q)?;
    }
    Ok(points)
}

/// A metric point as `vane metrics --json` and `GET /api/dags/{id}/metrics` give it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Point")]
pub struct PointView {
    pub run_id: i64,
    pub logical_date: String,
    pub run_state: String,
    pub task: String,
    pub attempt: u32,
    pub name: String,
    pub value: f64,
    pub recorded_at: String,
}

impl PointView {
    #[must_use]
    pub fn of(p: &MetricPoint) -> Self {
        Self {
            run_id: p.run.0,
            logical_date: p.logical_date.to_rfc3339(),
            run_state: p.run_state.to_string(),
            task: p.task_id.clone(),
            attempt: p.attempt,
            name: p.name.clone(),
            value: p.value,
            recorded_at: p.recorded_at.to_rfc3339(),
        }
    }
}

/// SLA misses as `vane sla --json` gives them.
#[must_use]
pub fn sla_json(misses: &[vane_store::SlaMiss]) -> Value {
    misses
        .iter()
        .map(|m| {
            json!({
                "run_id": m.run,
                "dag_id": m.dag_id,
                "task": m.task,
                "logical_date": m.logical_date.to_rfc3339(),
                "deadline": m.deadline.to_rfc3339(),
                "detected_at": m.detected_at.to_rfc3339(),
            })
        })
        .collect()
}

/// Scheduled runs or tasks not finished by their deadline, newest first; `limit` 0 is all.
///
/// # Errors
/// The store cannot be read.
pub fn sla_misses(
    store: &dyn Store,
    dag_id: Option<&str>,
    limit: usize,
) -> Result<Vec<vane_store::SlaMiss>> {
    Ok(store.sla_misses(dag_id, limit)?)
}

/// Backfills with their progress, of one DAG or all.
///
/// # Errors
/// The store cannot be read.
pub fn backfills(
    store: &dyn Store,
    dag_id: Option<&str>,
) -> Result<Vec<vane_store::BackfillRecord>> {
    Ok(store.backfills(dag_id)?)
}

/// A backfill as `vane backfills --json` gives it.
#[must_use]
pub fn backfill_json(b: &vane_store::BackfillRecord) -> Value {
    use vane_store::RunState;
    json!({
        "id": b.id,
        "dag_id": b.dag_id,
        "from": b.from.to_rfc3339(),
        "to": b.to.to_rfc3339(),
        "state": b.state.as_str(),
        "max_active": b.max_active,
        "runs": b.runs.len(),
        "success": b.count(RunState::Success),
        "failed": b.count(RunState::Failed),
        "running": b.count(RunState::Running),
        "queued": b.count(RunState::Queued),
    })
}

/// Marks a run good: `auto` bounds and drift baselines of its validate tasks learn from it.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown run.
pub fn mark_good(
    store: &dyn Store,
    run: vane_store::RunId,
    by: &str,
    reason: Option<&str>,
) -> Result<()> {
    store
        .mark_good(&vane_store::GoodMark {
            run,
            by: by.to_owned(),
            at: Utc::now(),
            reason: reason.map(str::to_owned),
        })
        .map_err(|e| match e {
            vane_store::StoreError::NotFound(_) => {
                AppError::NotFound(format!("run {run} does not exist; `vane runs` lists runs"))
            }
            other => other.into(),
        })
}

/// Why `vane checks` found nothing: the `--task` or `--check` asked for names nothing the DAG
/// recorded, which a person should hear about (with the names that exist) rather than be told
/// that no validate task ever ran.
///
/// # Errors
/// [`AppError::NotFound`] naming the unknown task or check; the store cannot be read.
fn explain_no_checks(store: &dyn Store, q: &CheckQuery) -> Result<()> {
    let recorded: Vec<(String, String)> = store
        .check_history(&q.dag_id, None, 0)?
        .into_iter()
        .map(|e| (e.task_id, e.result.name))
        .collect();
    unknown_filter(
        &q.dag_id,
        "check",
        "--check",
        q.task.as_deref(),
        q.check.as_deref(),
        &recorded,
    )
}

/// Why `vane metrics` found nothing: as [`explain_no_checks`], for `--task` and `--name`.
///
/// # Errors
/// [`AppError::NotFound`] naming the unknown task or metric; the store cannot be read.
fn explain_no_metrics(store: &dyn Store, q: &MetricQuery) -> Result<()> {
    let recorded: Vec<(String, String)> = store
        .metric_series(&vane_store::MetricFilter {
            dag_id: &q.dag_id,
            task: None,
            name: None,
            last: 0,
        })?
        .into_iter()
        .map(|p| (p.task_id, p.name))
        .collect();
    unknown_filter(
        &q.dag_id,
        "metric",
        "--name",
        q.task.as_deref(),
        q.name.as_deref(),
        &recorded,
    )
}

/// The task or name filter that matches nothing in `recorded` (task, name) pairs, as an
/// error with the names that would match; `Ok` when nothing is recorded at all or the filters
/// are not what emptied the answer.
fn unknown_filter(
    dag: &str,
    what: &str,
    flag: &str,
    task: Option<&str>,
    name: Option<&str>,
    recorded: &[(String, String)],
) -> Result<()> {
    if recorded.is_empty() {
        return Ok(());
    }
    let listed = |names: &[&str]| {
        let shown: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
        let more = names.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    let mut tasks: Vec<&str> = recorded.iter().map(|(t, _)| t.as_str()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    if let Some(task) = task
        && !tasks.contains(&task)
    {
        let hint = vane_dag::did_you_mean(task, tasks.iter().copied())
            .map(|t| format!("did you mean `{t}`? "))
            .unwrap_or_default();
        return Err(AppError::NotFound(format!(
            "DAG `{dag}` has no {what}s recorded by a task `{task}`: {hint}tasks with {what}s: {}",
            listed(&tasks)
        )));
    }
    let Some(name) = name else {
        return Ok(());
    };
    let mut names: Vec<&str> = recorded
        .iter()
        .filter(|(t, _)| task.is_none_or(|task| task == t))
        .map(|(_, n)| n.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.contains(&name) {
        return Ok(());
    }
    // Deploy and validate tasks prefix what they record (`evaluate.accuracy`,
    // `check.rows`), so the name a person remembers is often the end of the real one.
    let suffix = format!(".{name}");
    let mut ending: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.ends_with(&suffix))
        .collect();
    if ending.is_empty() && vane_dag::did_you_mean(name, names.iter().copied()).is_none() {
        ending = names
            .iter()
            .copied()
            .filter(|n| {
                n.rsplit_once('.')
                    .is_some_and(|(_, last)| vane_dag::did_you_mean(name, [last]).is_some())
            })
            .collect();
    }
    let hint = if ending.is_empty() {
        vane_dag::did_you_mean(name, names.iter().copied())
            .map(|n| format!("did you mean `{n}`? "))
            .unwrap_or_default()
    } else {
        let ending: Vec<String> = ending.iter().map(|n| format!("`{n}`")).collect();
        format!("did you mean {}? ", ending.join(" or "))
    };
    let of_task = task.map(|t| format!(" of task `{t}`")).unwrap_or_default();
    Err(AppError::NotFound(format!(
        "DAG `{dag}` has no {what} named `{name}`{of_task}: {hint}{flag} takes one of {}",
        listed(&names)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_store::{LeaseRole, LeaseState, PassStats};

    fn scheduler(age_secs: i64, lease: Option<(LeaseState, u64)>) -> Scheduler {
        let now = Utc::now();
        let at = now - chrono::TimeDelta::seconds(age_secs);
        Scheduler {
            record: SchedulerRecord {
                id: "s".into(),
                host: "sched-a".into(),
                pid: 7,
                started_at: at,
                last_heartbeat: at,
                stopped_at: None,
                passes: PassStats {
                    bounds: Vec::new(),
                    counts: Vec::new(),
                    count: 0,
                    sum: 0.0,
                    last: None,
                },
                lease: Some("l".into()),
            },
            lease: lease.map(|(state, runs_owned)| LeaseRecord {
                id: "l".into(),
                host: "sched-a".into(),
                pid: 7,
                role: LeaseRole::Scheduler,
                acquired_at: at,
                renewed_at: at,
                expires_at: at,
                state,
                runs_owned,
            }),
        }
    }

    /// A scheduler killed with -9 is stale while its runs wait for another to adopt them, and
    /// gone once they were: nothing is left for a person to do about it.
    #[test]
    fn a_silent_scheduler_is_stale_until_its_work_is_adopted_then_gone() {
        let now = Utc::now();
        assert_eq!(scheduler(2, Some((LeaseState::Held, 1))).status(now), "up");
        assert_eq!(
            scheduler(90, Some((LeaseState::Held, 0))).status(now),
            "stale"
        );
        assert_eq!(
            scheduler(90, Some((LeaseState::Expired, 1))).status(now),
            "stale"
        );
        assert_eq!(
            scheduler(90, Some((LeaseState::Expired, 0))).status(now),
            "gone"
        );
        assert_eq!(scheduler(90, None).status(now), "gone");
    }
}
