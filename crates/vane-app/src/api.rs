//! The HTTP API's answers: each route calls the application layer and serialises what it
//! returns. Statuses come from [`AppError::to_api`], never from a message.

use std::sync::Mutex;

use serde_json::Value;
use vane_alerts::AlertView;
use vane_http::{ApiError, LogStream, Reply, Route};
use vane_store::{AttemptState, RunId};

use crate::runs::{ClearArgs, ManualRun};
use crate::{App, AppError, BoxStore, models, requests};

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

fn serialize(value: &impl serde::Serialize) -> Result<Reply> {
    Ok(Reply::Json(
        serde_json::to_value(value).expect("API values serialise"),
    ))
}

impl HttpApi {
    fn answer(&self, route: Route, body: &Value) -> Result<Reply> {
        let app = &self.app;
        match route {
            Route::Dags => serialize(&crate::dags::Overview::load(app, &*self.store()?)?.view()),
            Route::Dag { dag, runs } => serialize(&app.dag_grid(&*self.store()?, &dag, runs)?),
            Route::Runs { dag, state, limit } => {
                let states = match state.as_deref() {
                    None => vec![],
                    Some(text) => vec![crate::runs::parse_state(text)?],
                };
                let store = self.store()?;
                let runs = crate::runs::list(&*store, dag.as_deref(), &states, limit)?;
                // As `vane runs DAG`: a DAG known nowhere is a typo (404), not a DAG that has
                // not run yet.
                if let Some(dag) = dag.as_deref()
                    && runs.is_empty()
                {
                    app.known_dag(&*store, dag)?;
                }
                let waits = crate::runs::Waits::of(&*store, &runs)?;
                serialize(&runs.iter().map(|r| waits.view(r)).collect::<Vec<_>>())
            }
            Route::Run { id } => {
                let store = self.store()?;
                let detail = crate::runs::detail(&*store, RunId(id))?;
                serialize(&crate::runs::shown(&*store, &detail)?)
            }
            Route::Why { run, against } => serialize(&crate::why::why(
                &*self.store()?,
                RunId(run),
                against.map(RunId),
                Some(&app.paths.dags),
            )?),
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
            Route::Trigger { dag } => {
                let b: requests::TriggerBody = requests::read(body)?;
                serialize(&app.trigger(
                    &*self.store()?,
                    &ManualRun {
                        dag_id: dag,
                        params: requests::params(b.params),
                        date: b.date.map(|d| d.0),
                    },
                )?)
            }
            Route::Pause { dag, paused } => {
                let requests::NoFields {} = requests::read(body)?;
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
                let query = crate::reads::MetricQuery {
                    dag_id: dag,
                    task,
                    name,
                    last,
                };
                let points = crate::reads::metric_series(&*store, &query)?;
                serialize(
                    &points
                        .iter()
                        .map(crate::reads::PointView::of)
                        .collect::<Vec<_>>(),
                )
            }
            Route::DagChecks {
                dag,
                task,
                check,
                last,
            } => {
                let store = self.store()?;
                app.known_dag(&*store, &dag)?;
                let query = crate::reads::CheckQuery {
                    dag_id: dag,
                    task,
                    check,
                    last,
                };
                let history = crate::reads::check_history(&*store, &query)?;
                serialize(
                    &history
                        .iter()
                        .map(crate::reads::CheckView::of)
                        .collect::<Vec<_>>(),
                )
            }
            Route::Artifacts { name } => serialize(
                &crate::lineage::versions(&*self.store()?, name.as_deref())?
                    .iter()
                    .map(crate::lineage::ArtifactView::of)
                    .collect::<Vec<_>>(),
            ),
            Route::Lineage { artifact } => {
                serialize(&crate::lineage::lineage_tree(&*self.store()?, &artifact)?)
            }
            Route::Models => serialize(&models::models_view(&*self.store()?, None)?),
            Route::Model { name } => serialize(&models::models_view(&*self.store()?, Some(&name))?),
            Route::Alerts { all } => serialize(
                &crate::alerts::list(&*self.store()?, all)?
                    .iter()
                    .map(AlertView::of)
                    .collect::<Vec<_>>(),
            ),
            Route::Clear { run } => {
                let b: requests::ClearBody = requests::read(body)?;
                let request = ClearArgs {
                    run_id: RunId(run),
                    tasks: b.tasks.unwrap_or_default(),
                    downstream: b.downstream.unwrap_or(false),
                    failed_only: b.failed_only.unwrap_or(false),
                    params: requests::params(b.params),
                    by: crate::who(b.by.as_deref()),
                };
                let store = self.store()?;
                let cleared = app.clear(&*store, &request)?;
                serialize(&crate::runs::shown(&*store, &cleared)?)
            }
            Route::Stop { run } => {
                let b: requests::StopBody = requests::read(body)?;
                let store = self.store()?;
                let by = crate::who(b.by.as_deref());
                app.stop(
                    &*store,
                    RunId(run),
                    b.task.as_deref(),
                    &by,
                    b.reason.as_deref(),
                )?;
                serialize(&crate::runs::shown(&*store, &store.run(RunId(run))?)?)
            }
            Route::Mark { run, task } => {
                let b: requests::MarkBody = requests::read(body)?;
                let mark = match b.state {
                    requests::MarkAs::Success => vane_engine::Mark::Success,
                    requests::MarkAs::Failed => vane_engine::Mark::Failed,
                };
                let by = crate::who(b.by.as_deref());
                let store = self.store()?;
                let marked =
                    app.mark(&*store, RunId(run), &task, mark, &by, b.reason.as_deref())?;
                serialize(&crate::runs::shown(&*store, &marked)?)
            }
            Route::Approve { run } => {
                let b: requests::ApproveBody = requests::read(body)?;
                let decided = models::decide(
                    &*self.store()?,
                    RunId(run),
                    b.stage.as_deref(),
                    models::Decision::Approve,
                    &decider(&b.by, "approves")?,
                    b.note.as_deref(),
                )?;
                serialize(
                    &decided
                        .iter()
                        .map(models::StageView::of)
                        .collect::<Vec<_>>(),
                )
            }
            Route::Reject { run } => {
                let b: requests::RejectBody = requests::read(body)?;
                let decided = models::decide(
                    &*self.store()?,
                    RunId(run),
                    b.stage.as_deref(),
                    models::Decision::Reject,
                    &decider(&b.by, "rejects")?,
                    Some(&b.reason),
                )?;
                serialize(
                    &decided
                        .iter()
                        .map(models::StageView::of)
                        .collect::<Vec<_>>(),
                )
            }
            Route::Rollback { model } => {
                let b: requests::RollbackBody = requests::read(body)?;
                let by = crate::who(b.by.as_deref());
                let store = self.store()?;
                let plan = models::plan_rollback(app, &*store, &model, b.to)?;
                plan.run_command()?;
                plan.record(&*store, &b.reason, &by)?;
                serialize(&models::models_view(&*store, Some(&model))?)
            }
            Route::Ack { alert } => {
                let b: requests::AckBody = requests::read(body)?;
                let by = crate::alerts::who(b.by.as_deref());
                let acked =
                    crate::alerts::ack(&*self.store()?, alert, &by, b.verdict.map(Into::into))?;
                serialize(&AlertView::of(&acked))
            }
            Route::Resolve { alert } => {
                let b: requests::ResolveBody = requests::read(body)?;
                let by = crate::alerts::who(b.by.as_deref());
                let (alert, told) = app.resolve_alert(&*self.store()?, alert, &by)?;
                for n in told.iter().filter(|n| n.error.is_some()) {
                    tracing::warn!(channel = %n.channel, alert = alert.id, error = n.error.as_deref().unwrap_or(""), "Could not tell the channel the alert was resolved.");
                }
                serialize(&AlertView::of(&alert))
            }
            Route::Snooze { alert } => {
                let b: requests::SnoozeBody = requests::read(body)?;
                let length = std::time::Duration::from_secs(b.seconds);
                let (alert, _) = crate::alerts::snooze_for(&*self.store()?, alert, length)?;
                serialize(&AlertView::of(&alert))
            }
            Route::AlertStats => serialize(
                &app.alert_stats(&*self.store()?)?
                    .iter()
                    .map(crate::alerts::RuleStatsView::of)
                    .collect::<Vec<_>>(),
            ),
            Route::OnCall { turns } => serialize(&app.oncall_view(turns, chrono::Utc::now())?),
            Route::Status => {
                let schedulers = crate::reads::schedulers(&*self.store()?, 10)?;
                serialize(&app.status_view(&schedulers, chrono::Utc::now())?)
            }
            Route::DagTicks { dag, limit } => {
                serialize(&app.ticks(&*self.store()?, &dag, limit)?.view())
            }
            Route::Agents => {
                serialize(&crate::agents::Agents::read(&*self.store()?)?.view(chrono::Utc::now()))
            }
            Route::OpenApi => Ok(Reply::Json(document())),
            Route::Metrics => Ok(Reply::Metrics(
                self.store()?
                    .observe(vane_http::DURATION_BUCKETS, vane_http::LAG_BUCKETS)?,
            )),
        }
    }
}

/// Who approves or rejects a rollout through the API: the ledger keeps it as evidence, so it
/// must be the person, never the user the server happens to run as.
fn decider(by: &str, verb: &str) -> Result<String> {
    let by = by.trim();
    if by.is_empty() {
        return Err(AppError::Invalid(format!(
            "say who {verb}: send {{\"by\": \"your name\"}} (the UI asks for it beside the API token); the model ledger records it"
        )));
    }
    Ok(by.to_owned())
}

/// The API's OpenAPI document: what each action reads and each route answers is the JSON
/// Schema of the type its handler above deserialises or serialises, derived from that type,
/// so the document cannot say one thing and the handler do another.
pub(crate) fn document() -> Value {
    use crate::{agents, alerts, dags, lineage, reads, runs, why};
    use schemars::{JsonSchema, SchemaGenerator};
    use vane_http::{Body, Schemas};

    fn answer<T: JsonSchema>(g: &mut SchemaGenerator) -> Option<Value> {
        Some(g.subschema_for::<T>().to_value())
    }
    fn body<T: JsonSchema>(g: &mut SchemaGenerator) -> Option<Body> {
        let required = T::json_schema(g)
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        Some(Body {
            schema: g.subschema_for::<T>().to_value(),
            required,
        })
    }
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut schemas = |method: &str, path: &str| -> Schemas {
        let g = &mut generator;
        match (method, path) {
            ("GET", "/api/dags") => Schemas {
                body: None,
                answer: answer::<Vec<dags::DagEntry>>(g),
            },
            ("GET", "/api/dags/{id}") => Schemas {
                body: None,
                answer: answer::<dags::DagGrid>(g),
            },
            ("GET", "/api/runs") => Schemas {
                body: None,
                answer: answer::<Vec<runs::RunView>>(g),
            },
            ("GET", "/api/runs/{id}") => Schemas {
                body: None,
                answer: answer::<runs::RunShown>(g),
            },
            ("GET", "/api/runs/{id}/why") => Schemas {
                body: None,
                answer: answer::<why::WhyView>(g),
            },
            ("GET", "/api/dags/{id}/metrics") => Schemas {
                body: None,
                answer: answer::<Vec<reads::PointView>>(g),
            },
            ("GET", "/api/dags/{id}/checks") => Schemas {
                body: None,
                answer: answer::<Vec<reads::CheckView>>(g),
            },
            ("GET", "/api/dags/{id}/ticks") => Schemas {
                body: None,
                answer: answer::<dags::TicksView>(g),
            },
            ("GET", "/api/artifacts") => Schemas {
                body: None,
                answer: answer::<Vec<lineage::ArtifactView>>(g),
            },
            ("GET", "/api/artifacts/{name}/lineage") => Schemas {
                body: None,
                answer: answer::<lineage::Lineage>(g),
            },
            ("GET", "/api/models" | "/api/models/{name}") => Schemas {
                body: None,
                answer: answer::<models::ModelsView>(g),
            },
            ("GET", "/api/alerts") => Schemas {
                body: None,
                answer: answer::<Vec<AlertView>>(g),
            },
            ("GET", "/api/alerts/stats") => Schemas {
                body: None,
                answer: answer::<Vec<alerts::RuleStatsView>>(g),
            },
            ("GET", "/api/oncall") => Schemas {
                body: None,
                answer: answer::<alerts::OnCallView>(g),
            },
            ("GET", "/api/status") => Schemas {
                body: None,
                answer: answer::<reads::StatusView>(g),
            },
            ("GET", "/api/agents") => Schemas {
                body: None,
                answer: answer::<agents::AgentsView>(g),
            },
            ("POST", "/api/dags/{id}/trigger") => Schemas {
                body: body::<requests::TriggerBody>(g),
                answer: answer::<runs::Triggered>(g),
            },
            ("POST", "/api/dags/{id}/pause" | "/api/dags/{id}/unpause") => Schemas {
                body: body::<requests::NoFields>(g),
                answer: answer::<runs::Paused>(g),
            },
            ("POST", "/api/runs/{id}/clear") => Schemas {
                body: body::<requests::ClearBody>(g),
                answer: answer::<runs::RunShown>(g),
            },
            ("POST", "/api/runs/{id}/stop") => Schemas {
                body: body::<requests::StopBody>(g),
                answer: answer::<runs::RunShown>(g),
            },
            ("POST", "/api/runs/{id}/tasks/{task}/mark") => Schemas {
                body: body::<requests::MarkBody>(g),
                answer: answer::<runs::RunShown>(g),
            },
            ("POST", "/api/runs/{id}/approve") => Schemas {
                body: body::<requests::ApproveBody>(g),
                answer: answer::<Vec<models::StageView>>(g),
            },
            ("POST", "/api/runs/{id}/reject") => Schemas {
                body: body::<requests::RejectBody>(g),
                answer: answer::<Vec<models::StageView>>(g),
            },
            ("POST", "/api/models/{name}/rollback") => Schemas {
                body: body::<requests::RollbackBody>(g),
                answer: answer::<models::ModelsView>(g),
            },
            ("POST", "/api/alerts/{id}/ack") => Schemas {
                body: body::<requests::AckBody>(g),
                answer: answer::<AlertView>(g),
            },
            ("POST", "/api/alerts/{id}/resolve") => Schemas {
                body: body::<requests::ResolveBody>(g),
                answer: answer::<AlertView>(g),
            },
            ("POST", "/api/alerts/{id}/snooze") => Schemas {
                body: body::<requests::SnoozeBody>(g),
                answer: answer::<AlertView>(g),
            },
            // This document, and the answers that are text (logs, Prometheus metrics).
            _ => Schemas::default(),
        }
    };
    let mut doc = vane_http::openapi(&mut schemas);
    doc["components"]["schemas"] = generator.take_definitions(true).into();
    doc
}
