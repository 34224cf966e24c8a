//! The HTTP API's answers: each route calls the application layer and serialises what it
//! returns. Statuses come from [`AppError::to_api`], never from a message.

use std::sync::Mutex;

use serde_json::Value;
use vane_http::{ApiError, LogStream, Reply, Route};
use vane_store::{AttemptState, RunId};

use crate::runs::{ClearArgs, ManualRun};
use crate::{App, AppError, BoxStore, models};

type Result<T, E = AppError> = std::result::Result<T, E>;

/// Most connections kept between requests; a burst beyond it opens (and then closes) more.
const IDLE_CONNECTIONS: usize = 8;

/// [`vane_http::Api`] over the application layer, with connections kept between requests.
pub struct HttpApi {
    app: App,
    /// Connections between requests. Opening one reads the schema, and closing the last one
    /// checkpoints the WAL: on a large database that was most of what a UI refresh cost.
    /// Each request still has a connection of its own, so reads never wait for each other.
    idle: Mutex<Vec<BoxStore>>,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

/// A connection lent to one request, given back when it is dropped.
struct Lent<'a> {
    api: &'a HttpApi,
    store: Option<BoxStore>,
}

impl std::ops::Deref for Lent<'_> {
    type Target = dyn vane_store::Store + Send;

    fn deref(&self) -> &Self::Target {
        &**self
            .store
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

impl HttpApi {
    /// The API of `app`, with its first connection open.
    ///
    /// # Errors
    /// The database cannot be opened: better now than on the first request.
    pub fn new(app: App) -> Result<Self> {
        let first = app.open_store()?;
        Ok(Self {
            app,
            idle: Mutex::new(vec![first]),
        })
    }

    fn store(&self) -> Result<Lent<'_>> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let store = match pooled {
            Some(store) => store,
            None => self.app.open_store()?,
        };
        Ok(Lent {
            api: self,
            store: Some(store),
        })
    }
}

impl vane_http::Api for HttpApi {
    fn handle(&self, route: Route, body: Value) -> Result<Reply, ApiError> {
        self.answer(route, &body).map_err(|e| {
            if let Some(diagnostics) = e.diagnostics() {
                tracing::warn!(error = %e, "{diagnostics}");
            }
            e.to_api()
        })
    }
}

fn json(value: Value) -> Result<Reply> {
    Ok(Reply::Json(value))
}

fn serialize(value: &impl serde::Serialize) -> Result<Reply> {
    json(serde_json::to_value(value).expect("API values serialise"))
}

impl HttpApi {
    fn answer(&self, route: Route, body: &Value) -> Result<Reply> {
        let app = &self.app;
        match route {
            Route::Dags => json(crate::dags::Overview::load(app, &*self.store()?)?.json()),
            Route::Dag { dag, runs } => json(app.dag_grid(&*self.store()?, &dag, runs)?),
            Route::Runs { dag, state, limit } => {
                let states = match state.as_deref() {
                    None => vec![],
                    Some(text) => vec![crate::runs::parse_state(text)?],
                };
                let runs = crate::runs::list(&*self.store()?, dag.as_deref(), &states, limit)?;
                let waits = crate::runs::Waits::of(&*self.store()?, &runs)?;
                json(runs.iter().map(|r| waits.json(r)).collect())
            }
            Route::Run { id } => {
                let store = self.store()?;
                let detail = crate::runs::detail(&*store, RunId(id))?;
                json(crate::runs::shown(&*store, &detail)?)
            }
            Route::Logs {
                run,
                task,
                attempt,
                follow,
            } => {
                // Its own connection: a followed log holds it for as long as the task runs.
                let store = app.open_store()?;
                let detail = crate::runs::detail(&*store, RunId(run))?;
                let chosen = crate::runs::find_attempt(&detail, &task, attempt)?;
                let number = chosen.attempt;
                let mut live = follow && chosen.state == AttemptState::Running;
                let mut reader = crate::logs::LogReader::new(
                    app.open_store()?,
                    app.storage().ok().map(|s| s.logs),
                    RunId(run),
                    &task,
                    chosen,
                );
                Ok(Reply::Log(LogStream {
                    read: Box::new(move || reader.read_new().map_err(|e| e.to_api())),
                    running: Box::new(move || {
                        if live {
                            live = crate::runs::attempt_running(&*store, RunId(run), &task, number);
                        }
                        live
                    }),
                }))
            }
            Route::Trigger { dag } => serialize(&app.trigger(
                &*self.store()?,
                &ManualRun {
                    dag_id: dag,
                    params: params(body)?,
                    date: field(body, "date")?,
                },
            )?),
            Route::Pause { dag, paused } => {
                serialize(&app.set_paused(&*self.store()?, &dag, paused)?)
            }
            Route::DagMetrics {
                dag,
                task,
                name,
                last,
            } => {
                let store = self.store()?;
                app.known_dag(&*store, &dag)?;
                let points = crate::reads::metric_series(
                    &*store,
                    &crate::reads::MetricQuery {
                        dag_id: dag,
                        task,
                        name,
                        last,
                    },
                )?;
                json(crate::reads::points_json(&points))
            }
            Route::DagChecks {
                dag,
                task,
                check,
                last,
            } => {
                let store = self.store()?;
                app.known_dag(&*store, &dag)?;
                let history = crate::reads::check_history(
                    &*store,
                    &crate::reads::CheckQuery {
                        dag_id: dag,
                        task,
                        check,
                        last,
                    },
                )?;
                json(crate::reads::history_json(&history))
            }
            Route::Artifacts { name } => json(
                crate::lineage::versions(&*self.store()?, name.as_deref())?
                    .iter()
                    .map(crate::lineage::version_json)
                    .collect(),
            ),
            Route::Lineage { artifact } => {
                json(crate::lineage::lineage_tree(&*self.store()?, &artifact)?)
            }
            Route::Models => json(models::models_json(&*self.store()?, None)?),
            Route::Model { name } => json(models::models_json(&*self.store()?, Some(&name))?),
            Route::Alerts { all } => json(
                crate::alerts::list(&*self.store()?, all)?
                    .iter()
                    .map(vane_alerts::alert_json)
                    .collect(),
            ),
            Route::Clear { run } => {
                let request = ClearArgs {
                    run_id: RunId(run),
                    tasks: strings(body, "tasks")?,
                    downstream: flag(body, "downstream")?,
                    failed_only: flag(body, "failed_only")?,
                    params: params(body)?,
                    by: crate::who(field(body, "by")?.as_deref()),
                };
                json(crate::runs::show_json(
                    &app.clear(&*self.store()?, &request)?,
                ))
            }
            Route::Stop { run } => {
                let by = crate::who(field(body, "by")?.as_deref());
                let reason = field(body, "reason")?;
                let task = field(body, "task")?;
                let stopped = app.stop(
                    &*self.store()?,
                    RunId(run),
                    task.as_deref(),
                    &by,
                    reason.as_deref(),
                )?;
                json(crate::runs::run_json(&stopped))
            }
            Route::Mark { run, task } => {
                let mark = match field(body, "state")?.as_deref() {
                    Some("success") => vane_engine::Mark::Success,
                    Some("failed") => vane_engine::Mark::Failed,
                    other => {
                        return Err(AppError::Invalid(format!(
                            "`state` must be \"success\" or \"failed\", not {other:?}: say what the task is marked as"
                        )));
                    }
                };
                let by = crate::who(field(body, "by")?.as_deref());
                let reason = field(body, "reason")?;
                let marked = app.mark(
                    &*self.store()?,
                    RunId(run),
                    &task,
                    mark,
                    &by,
                    reason.as_deref(),
                )?;
                json(crate::runs::show_json(&marked))
            }
            Route::Approve { run } => {
                let by = decider(body, "approves")?;
                let stage = field(body, "stage")?;
                let note = field(body, "note")?;
                let decided = models::decide(
                    &*self.store()?,
                    RunId(run),
                    stage.as_deref(),
                    models::Decision::Approve,
                    &by,
                    note.as_deref(),
                )?;
                json(decided.iter().map(models::stage_json).collect())
            }
            Route::Reject { run } => {
                let by = decider(body, "rejects")?;
                let stage = field(body, "stage")?;
                let reason = required(body, "reason")?;
                let decided = models::decide(
                    &*self.store()?,
                    RunId(run),
                    stage.as_deref(),
                    models::Decision::Reject,
                    &by,
                    Some(&reason),
                )?;
                json(decided.iter().map(models::stage_json).collect())
            }
            Route::Rollback { model } => {
                let to = match &body["to"] {
                    Value::Null => None,
                    // 3.0 is 3, as JSON does not tell them apart.
                    v => Some(
                        v.as_i64()
                            .or_else(|| {
                                v.as_f64()
                                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                                    .map(|f| f as i64)
                            })
                            .ok_or_else(|| {
                                AppError::Invalid("`to` must be a version number".into())
                            })?,
                    ),
                };
                let reason = required(body, "reason")?;
                let by = crate::who(field(body, "by")?.as_deref());
                let store = self.store()?;
                let plan = models::plan_rollback(app, &*store, &model, to)?;
                plan.run_command()?;
                plan.record(&*store, &reason, &by)?;
                json(models::models_json(&*store, Some(&model))?)
            }
            Route::Ack { alert } => {
                let verdict = field(body, "verdict")?
                    .as_deref()
                    .map(crate::alerts::parse_verdict)
                    .transpose()?;
                let by = crate::alerts::who(field(body, "by")?.as_deref());
                let acked = crate::alerts::ack(&*self.store()?, alert, &by, verdict)?;
                json(vane_alerts::alert_json(&acked))
            }
            Route::Resolve { alert } => {
                let by = crate::alerts::who(field(body, "by")?.as_deref());
                let (alert, told) = app.resolve_alert(&*self.store()?, alert, &by)?;
                for n in told.iter().filter(|n| n.error.is_some()) {
                    tracing::warn!(channel = %n.channel, alert = alert.id, error = n.error.as_deref().unwrap_or(""), "Could not tell the channel the alert was resolved.");
                }
                json(vane_alerts::alert_json(&alert))
            }
            Route::Snooze { alert } => {
                let length = required(body, "for")?;
                let (alert, _) = crate::alerts::snooze(&*self.store()?, alert, &length)?;
                json(vane_alerts::alert_json(&alert))
            }
            Route::AlertStats => json(
                app.alert_stats(&*self.store()?)?
                    .iter()
                    .map(crate::alerts::stat_json)
                    .collect(),
            ),
            Route::OnCall { turns } => json(app.oncall_json(turns, chrono::Utc::now())?),
            Route::Status => {
                let schedulers = crate::reads::schedulers(&*self.store()?, 10)?;
                json(app.status_json(&schedulers, chrono::Utc::now())?)
            }
            Route::DagTicks { dag, limit } => json(app.ticks(&*self.store()?, &dag, limit)?.json()),
            Route::Agents => {
                json(crate::agents::Agents::read(&*self.store()?)?.json(chrono::Utc::now()))
            }
            Route::OpenApi => json(vane_http::openapi()),
            Route::Metrics => Ok(Reply::Metrics(
                self.store()?
                    .observe(vane_http::DURATION_BUCKETS, vane_http::LAG_BUCKETS)?,
            )),
        }
    }
}

fn required(body: &Value, key: &str) -> Result<String> {
    field(body, key)?.ok_or_else(|| {
        AppError::Invalid(format!(
            "the body needs `{key}` (a string), e.g. {{\"{key}\": \"...\"}}"
        ))
    })
}

fn flag(body: &Value, key: &str) -> Result<bool> {
    match &body[key] {
        Value::Null => Ok(false),
        Value::Bool(b) => Ok(*b),
        other => Err(AppError::Invalid(format!(
            "`{key}` must be true or false, got {other}"
        ))),
    }
}

fn strings(body: &Value, key: &str) -> Result<Vec<String>> {
    let wrong =
        |v: &Value| AppError::Invalid(format!("`{key}` must be a list of strings, got {v}"));
    match &body[key] {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| wrong(v)))
            .collect(),
        other => Err(wrong(other)),
    }
}

/// A string field of an action's body, if given.
/// Who approves or rejects a rollout through the API: the ledger keeps it as evidence, so it
/// must be the person, never the user the server happens to run as.
fn decider(body: &Value, verb: &str) -> Result<String> {
    match field(body, "by")? {
        Some(by) if !by.trim().is_empty() => Ok(by.trim().to_owned()),
        _ => Err(AppError::Invalid(format!(
            "say who {verb}: send {{\"by\": \"your name\"}} (the UI asks for it beside the API token); the model ledger records it"
        ))),
    }
}

fn field(body: &Value, key: &str) -> Result<Option<String>> {
    match &body[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(AppError::Invalid(format!(
            "`{key}` must be a string, got {other}"
        ))),
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
        other => Err(AppError::Invalid(format!(
            "`params` must be an object of KEY: VALUE, got {other}"
        ))),
    }
}
