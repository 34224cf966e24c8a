//! `vane serve` and `vane scheduler --http`: the HTTP API answered by the same functions that
//! print `--json`, so the API and the command line agree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};
use vane_http::{ApiError, LogStream, Reply, Route};
use vane_store::{
    AlertStore, AttemptState, HeartbeatStore, MetricStore, ObserveStore, RunFilter, RunState,
    SqliteStore, Store, StoreError,
};

use crate::cli::{Global, ManualRunArgs};
use crate::commands::{find_attempt, open_store, run_json, show_json};

#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// Token file for the API: actions need `Authorization: Bearer TOKEN` [env: VANE_API_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to serve the UI, the API and /metrics on; non-loopback addresses need a token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) http: SocketAddr,
    #[command(flatten)]
    pub(crate) auth: HttpArgs,
}

/// Something asked for that does not exist; the API answers 404 with the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Missing(pub(crate) String);

/// An action on something not in a state that allows it; the API answers 409.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Conflict(pub(crate) String);

/// `vane serve`: the API alone, in the foreground.
pub(crate) fn serve(g: &Global, args: &ServeArgs) -> Result<ExitCode> {
    crate::commands::init_tracing();
    let server = bind(args.http, &args.auth)?;
    server.serve(api(g)?);
    Ok(ExitCode::SUCCESS)
}

/// Starts the API on threads of its own, beside the scheduler's loop.
pub(crate) fn spawn(g: &Global, addr: SocketAddr, auth: &HttpArgs) -> Result<()> {
    let server = bind(addr, auth)?;
    let api = api(g)?;
    std::thread::spawn(move || server.serve(api));
    Ok(())
}

fn bind(addr: SocketAddr, auth: &HttpArgs) -> Result<vane_http::Server> {
    let token = match &auth.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("VANE_API_TOKEN").ok(),
    };
    let server = vane_http::Server::bind(addr, token)?;
    // Printed so that a script (or a test) that asked for port 0 learns the port.
    eprintln!("vane: serving the API on http://{}", server.local_addr());
    eprintln!("vane: web UI at http://{}/", server.local_addr());
    Ok(server)
}

fn api(g: &Global) -> Result<Arc<dyn vane_http::Api>> {
    // Fail now, not on the first request, when the database cannot be opened.
    let first = open_store(g)?;
    Ok(Arc::new(VaneApi {
        g: g.clone(),
        idle: Mutex::new(vec![first]),
    }))
}

struct VaneApi {
    g: Global,
    /// Connections between requests. Opening one reads the schema, and closing the last one
    /// checkpoints the WAL: on a large database that was most of what a UI refresh cost.
    /// Each request still has a connection of its own, so reads never wait for each other.
    idle: Mutex<Vec<SqliteStore>>,
}

/// Most connections kept between requests; a burst beyond it opens (and then closes) more.
const IDLE_CONNECTIONS: usize = 8;

/// A connection lent to one request, given back when it is dropped.
struct Lent<'a> {
    api: &'a VaneApi,
    store: Option<SqliteStore>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        self.store
            .as_ref()
            .expect("a lent connection is there until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let mut idle = self.api.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(store);
        }
    }
}

impl VaneApi {
    fn store(&self) -> Result<Lent<'_>> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match pooled {
            Some(store) => store,
            None => open_store(&self.g)?,
        };
        Ok(Lent {
            api: self,
            store: Some(store),
        })
    }
}

impl vane_http::Api for VaneApi {
    fn handle(&self, route: Route, body: Value) -> Result<Reply, ApiError> {
        self.answer(route, &body).map_err(classify)
    }
}

impl VaneApi {
    fn answer(&self, route: Route, body: &Value) -> Result<Reply> {
        let g = &self.g;
        let json = |value: Value| Ok(Reply::Json(value));
        match route {
            Route::Dags => json(crate::commands::Overview::load(g, &*self.store()?)?.json()),
            Route::Dag { dag, runs } => json(dag_json(g, &*self.store()?, &dag, runs)?),
            Route::Runs { dag, state, limit } => {
                let states = match state.as_deref() {
                    None => vec![],
                    Some(text) => vec![text.parse::<RunState>().map_err(|_| {
                        anyhow::anyhow!(
                            "no run state `{text}`; use queued, running, success or failed"
                        )
                    })?],
                };
                let runs = self.store()?.runs(&RunFilter {
                    dag_id: dag.as_deref(),
                    states: &states,
                    limit,
                    ..RunFilter::default()
                })?;
                json(runs.iter().map(run_json).collect())
            }
            Route::Run { id } => json(show_json(&self.store()?.run(id)?)),
            Route::Logs {
                run,
                task,
                attempt,
                follow,
            } => {
                let store = open_store(g)?;
                let detail = store.run(run)?;
                let chosen = find_attempt(&detail, &task, attempt)?;
                let number = chosen.attempt;
                let mut live = follow && chosen.state == AttemptState::Running;
                Ok(Reply::Log(LogStream {
                    path: chosen.log_path.clone().into(),
                    running: Box::new(move || {
                        if live {
                            live = attempt_running(&store, run, &task, number);
                        }
                        live
                    }),
                }))
            }
            Route::Trigger { dag } => {
                let target = ManualRunArgs {
                    dag_id: dag,
                    params: params(body)?,
                    date: field(body, "date")?,
                };
                let run = crate::commands::with_manual_run(
                    g,
                    &target,
                    std::time::Duration::from_secs(10),
                    |_, _, run| Ok(run),
                )?;
                json(json!({ "run_id": run, "state": "queued" }))
            }
            Route::Pause { dag, paused } => {
                crate::commands::set_paused(g, &dag, paused)?;
                json(json!({ "dag_id": dag, "paused": paused }))
            }
            Route::DagMetrics {
                dag,
                task,
                name,
                last,
            } => {
                let store = self.store()?;
                known_dag(g, &store, &dag)?;
                let points = store.metric_series(&vane_store::MetricFilter {
                    dag_id: &dag,
                    task: task.as_deref(),
                    name: name.as_deref(),
                    last,
                })?;
                json(crate::metrics::points_json(&points))
            }
            Route::DagChecks {
                dag,
                task,
                check,
                last,
            } => {
                let store = self.store()?;
                known_dag(g, &store, &dag)?;
                let args = crate::checks::ChecksArgs {
                    dag_id: dag,
                    task,
                    check,
                    last,
                    json: crate::cli::JsonFlag { json: true },
                };
                json(crate::checks::history_json(&crate::checks::history(
                    &store, &args,
                )?))
            }
            Route::Artifacts { name } => json(
                crate::lineage::versions(g, name.as_deref())?
                    .iter()
                    .map(crate::lineage::version_json)
                    .collect(),
            ),
            Route::Lineage { artifact } => json(crate::lineage::lineage_tree(g, &artifact)?),
            Route::Models => json(crate::models::models_json(g, None)?),
            Route::Model { name } => json(crate::models::models_json(g, Some(&name))?),
            Route::Alerts { all } => json(
                self.store()?
                    .alerts(vane_store::AlertFilter { all })?
                    .iter()
                    .map(vane_alerts::alert_json)
                    .collect(),
            ),
            Route::Clear { run } => {
                let args = crate::cli::ClearArgs {
                    run_id: run,
                    tasks: strings(body, "tasks")?,
                    downstream: flag(body, "downstream")?,
                    failed_only: flag(body, "failed_only")?,
                    foreground: false,
                };
                crate::commands::clear(g, &args)?;
                json(show_json(&self.store()?.run(run)?))
            }
            Route::Approve { run } => {
                let by = crate::models::who(field(body, "by")?.as_ref());
                let stage = field(body, "stage")?;
                let note = field(body, "note")?;
                let decided = crate::models::decide(
                    g,
                    run,
                    stage.as_deref(),
                    "approved",
                    &by,
                    note.as_deref(),
                )?;
                json(decided.iter().map(crate::models::stage_json).collect())
            }
            Route::Reject { run } => {
                let by = crate::models::who(field(body, "by")?.as_ref());
                let stage = field(body, "stage")?;
                let reason = required(body, "reason")?;
                let decided = crate::models::decide(
                    g,
                    run,
                    stage.as_deref(),
                    "rejected",
                    &by,
                    Some(&reason),
                )?;
                json(decided.iter().map(crate::models::stage_json).collect())
            }
            Route::Rollback { model } => {
                let to = match &body["to"] {
                    Value::Null => None,
                    v => Some(v.as_i64().context("`to` must be a version number")?),
                };
                let args = crate::models::RollbackArgs {
                    name: model.clone(),
                    to,
                    reason: required(body, "reason")?,
                    by: field(body, "by")?,
                };
                crate::models::rollback(g, &args)?;
                json(crate::models::models_json(g, Some(&model))?)
            }
            Route::Ack { alert } => {
                let verdict = match field(body, "verdict")?.as_deref() {
                    None => None,
                    Some("real") => Some(vane_store::Verdict::Real),
                    Some("noise") => Some(vane_store::Verdict::Noise),
                    Some(other) => {
                        anyhow::bail!("`verdict` is `real` or `noise`, not `{other}`")
                    }
                };
                let by = crate::alerts::who(&field(body, "by")?);
                let acked = self
                    .store()?
                    .acknowledge_alert(alert, &by, verdict, chrono::Utc::now())
                    .map_err(crate::alerts::not_found(alert))?;
                json(vane_alerts::alert_json(&acked))
            }
            Route::Resolve { alert } => {
                let by = crate::alerts::who(&field(body, "by")?);
                let (alert, told) = crate::alerts::resolve_alert(g, alert, &by)?;
                for n in told.iter().filter(|n| n.error.is_some()) {
                    tracing::warn!(channel = %n.channel, alert = alert.id, error = n.error.as_deref().unwrap_or(""), "Could not tell the channel the alert was resolved.");
                }
                json(vane_alerts::alert_json(&alert))
            }
            Route::Snooze { alert } => {
                let length = required(body, "for")?;
                let (alert, _) = crate::alerts::snooze_alert(g, alert, &length)?;
                json(vane_alerts::alert_json(&alert))
            }
            Route::AlertStats => json(crate::alerts::stats_json(g)?),
            Route::OnCall { turns } => json(oncall_json(g, turns, chrono::Utc::now())?),
            Route::Status => {
                let mut schedulers = self.store()?.schedulers()?;
                schedulers.truncate(10);
                json(crate::status::status_json(
                    g,
                    &schedulers,
                    chrono::Utc::now(),
                )?)
            }
            Route::OpenApi => json(vane_http::openapi()),
            // Each request opens its own connection: WAL lets it read while the scheduler
            // writes.
            Route::Metrics => Ok(Reply::Metrics(
                self.store()?
                    .observe(vane_http::DURATION_BUCKETS, vane_http::LAG_BUCKETS)?,
            )),
        }
    }
}

/// Each run of the grid is read in full; a page of 40,000 runs is what /api/runs is for.
const MAX_GRID_RUNS: usize = 200;

/// A DAG as the UI draws it: tasks with their upstream tasks, and its last `limit` runs with
/// the state of each task. A DAG file that does not parse answers its errors, so the UI can
/// show why rather than a 404; a DAG that is only in the history answers its runs.
fn dag_json(g: &Global, store: &SqliteStore, dag_id: &str, limit: usize) -> Result<Value> {
    if limit > MAX_GRID_RUNS {
        anyhow::bail!(
            "runs={limit}: the grid shows at most {MAX_GRID_RUNS} runs; page older ones with /api/runs?dag={dag_id}&limit=0"
        );
    }
    let overview = crate::commands::Overview::load(g, store)?;
    let set = overview.set();
    if set.find(dag_id).is_none() {
        // Only in the history (its file was deleted or renamed): its runs, or a 404.
        known_dag(g, store, dag_id)?;
    }
    let mut out = overview
        .json()
        .as_array()
        .and_then(|all| all.iter().find(|d| d["id"] == dag_id))
        .cloned()
        .unwrap_or_else(|| json!({ "id": dag_id, "valid": false, "errors": [] }));
    if let Some(dag) = set.dags().map(|(d, _)| d).find(|d| d.id == dag_id) {
        out["params"] = dag
            .params
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        out["task_list"] = dag
            .tasks
            .iter()
            .map(|t| {
                let kind = match (&t.builtin, t.sensor) {
                    (Some(vane_dag::Builtin::Validate(_)), _) => "validate",
                    (Some(vane_dag::Builtin::Deploy(_)), _) => "deploy",
                    (None, Some(_)) => "sensor",
                    (None, None) => "command",
                };
                json!({
                    "id": t.id,
                    "description": t.description,
                    "kind": kind,
                    "upstream": t.depends_on.iter().map(|&i| &dag.tasks[i].id).collect::<Vec<_>>(),
                    "trigger_rule": t.trigger_rule.name(),
                    "retries": t.retry.retries,
                    "pool": t.pool,
                    "timeout": t.timeout.map(vane_dag::format_duration),
                    "sla": t.sla.map(vane_dag::format_duration),
                })
            })
            .collect();
    }
    let runs = store.runs(&RunFilter {
        dag_id: Some(dag_id),
        limit,
        ..RunFilter::default()
    })?;
    out["runs"] = runs
        .iter()
        .map(|run| -> Result<Value> {
            let detail = store.run(run.id)?;
            let tasks: serde_json::Map<String, Value> = detail
                .tasks
                .iter()
                .map(|t| {
                    let last = t.attempts.last();
                    let cell = json!({
                        "state": t.state.as_str(),
                        "attempts": t.attempts.len(),
                        "started_at": last.map(|a| a.started_at.to_rfc3339()),
                        "ended_at": last.and_then(|a| a.ended_at).map(|e| e.to_rfc3339()),
                    });
                    (t.task_id.clone(), cell)
                })
                .collect();
            let mut row = run_json(run);
            row["tasks"] = tasks.into();
            Ok(row)
        })
        .collect::<Result<Vec<_>>>()?
        .into();
    Ok(out)
}

/// The rotation from the turn under way at `now`: each turn's person, start and end.
fn oncall_json(g: &Global, turns: usize, now: chrono::DateTime<chrono::Utc>) -> Result<Value> {
    let Some(rotation) = crate::commands::limits(g)?.alerts.oncall else {
        return Ok(json!({ "configured": false, "now": null, "turns": [] }));
    };
    let list: Vec<Value> = rotation
        .turns(now, turns)
        .map(|(from, to, person)| {
            json!({ "person": person, "from": from.to_rfc3339(), "to": to.to_rfc3339() })
        })
        .collect();
    Ok(json!({
        "configured": true,
        "now": rotation.at(now),
        "every": vane_dag::format_duration(rotation.every),
        "people": rotation.people,
        "turns": list,
    }))
}

/// Whether an attempt still runs; a database hiccup ends the stream rather than hanging it.
fn attempt_running(store: &SqliteStore, run: i64, task: &str, attempt: u32) -> bool {
    store.run(run).is_ok_and(|d| {
        d.tasks
            .iter()
            .filter(|t| t.task_id == task)
            .flat_map(|t| &t.attempts)
            .any(|a| a.attempt == attempt && a.state == AttemptState::Running)
    })
}

/// 404 for a DAG that is neither in the DAG folder nor in the history, rather than an empty
/// list that looks like "no data yet".
fn known_dag(g: &Global, store: &SqliteStore, dag: &str) -> Result<()> {
    let in_folder = crate::commands::load_dags(g).is_ok_and(|set| set.find(dag).is_some());
    let in_history = !store
        .runs(&RunFilter {
            dag_id: Some(dag),
            limit: 1,
            ..RunFilter::default()
        })?
        .is_empty();
    if in_folder || in_history {
        return Ok(());
    }
    Err(Missing(format!(
        "no DAG `{dag}` in {} or in the history; GET /api/dags lists them",
        g.dags.display()
    ))
    .into())
}

fn required(body: &Value, key: &str) -> Result<String> {
    field(body, key)?
        .with_context(|| format!("the body needs `{key}` (a string), e.g. {{\"{key}\": \"...\"}}"))
}

fn flag(body: &Value, key: &str) -> Result<bool> {
    match &body[key] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => anyhow::bail!("`{key}` must be true or false, got {other}"),
    }
}

fn strings(body: &Value, key: &str) -> Result<Vec<String>> {
    match &body[key] {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("`{key}` must be a list of strings, got {v}"))
            })
            .collect(),
        other => anyhow::bail!("`{key}` must be a list of strings, got {other}"),
    }
}

/// A string field of an action's body, if given.
fn field(body: &Value, key: &str) -> Result<Option<String>> {
    match &body[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => anyhow::bail!("`{key}` must be a string, got {other}"),
    }
}

/// `{"params": {"KEY": VALUE}}`; numbers and booleans are taken as their text, as on the
/// command line.
fn params(body: &Value) -> Result<Vec<(String, String)>> {
    match &body["params"] {
        Value::Null => Ok(vec![]),
        Value::Object(map) => Ok(map
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect()),
        other => anyhow::bail!("`params` must be an object of KEY: VALUE, got {other}"),
    }
}

/// Chooses the status for an error of the shared command functions: typed not-found and
/// conflict errors, the store's own, and otherwise a bad request, since what those functions
/// refuse is input (an unknown parameter, a malformed date) and their messages say how to fix it.
fn classify(error: anyhow::Error) -> ApiError {
    let message = format!("{error:#}");
    if error.downcast_ref::<Missing>().is_some() {
        return ApiError::NotFound(message);
    }
    if error.downcast_ref::<Conflict>().is_some() {
        return ApiError::Conflict(message);
    }
    match error.downcast_ref::<StoreError>() {
        Some(StoreError::NotFound(_)) => ApiError::NotFound(message),
        Some(StoreError::RunExists { .. }) => ApiError::Conflict(message),
        Some(_) => ApiError::Internal(message),
        None if error.downcast_ref::<std::io::Error>().is_some() => ApiError::Internal(message),
        None => ApiError::BadRequest(message),
    }
}
