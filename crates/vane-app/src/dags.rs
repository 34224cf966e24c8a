//! DAGs: the overview `vane dags` and `GET /api/dags` show, and one DAG with its grid.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use vane_dag::{Dag, DagFile, DagSet};
use vane_store::{RunFilter, RunRecord, Store};

use crate::{App, AppError};

/// How many runs of each DAG `vane dags --json` lists under `recent`, for a glance at whether
/// it has been failing.
const RECENT_RUNS: usize = 10;

/// Each run of the grid is read in full; a page of 40,000 runs is what /api/runs is for.
pub const MAX_GRID_RUNS: usize = 200;

/// Each DAG with its last runs, pause switch and next tick, and the files that do not
/// validate.
#[derive(Debug)]
pub struct Overview {
    pub set: DagSet,
    /// Newest first.
    recent: BTreeMap<String, Vec<RunRecord>>,
    switches: BTreeMap<String, bool>,
    now: DateTime<Utc>,
    /// Latest runs waiting for a person's approval.
    waits: crate::runs::Waits,
}

impl Overview {
    /// Reads the DAG folder and each DAG's recent runs.
    ///
    /// # Errors
    /// The DAG folder or the store cannot be read.
    pub fn load(app: &App, store: &dyn Store) -> Result<Self, AppError> {
        let set = app.load_dags()?;
        let mut recent: BTreeMap<String, Vec<RunRecord>> = BTreeMap::new();
        for (dag, _) in set.dags() {
            let runs = store.runs(&RunFilter {
                dag_id: Some(&dag.id),
                limit: RECENT_RUNS,
                ..RunFilter::default()
            })?;
            if !runs.is_empty() {
                recent.insert(dag.id.clone(), runs);
            }
        }
        let switches = store.pause_switches()?;
        let waits = crate::runs::Waits::of(store, recent.values().filter_map(|r| r.first()))?;
        Ok(Self {
            set,
            recent,
            switches,
            now: Utc::now(),
            waits,
        })
    }

    /// The DAG's latest run.
    #[must_use]
    pub fn last(&self, dag: &str) -> Option<&RunRecord> {
        self.recent.get(dag).and_then(|runs| runs.first())
    }

    /// The files that do not validate.
    pub fn invalid(&self) -> impl Iterator<Item = &DagFile> {
        self.set.files.iter().filter(|f| f.parsed.dag.is_none())
    }

    /// The pause switch, or the DAG file's `paused` when nobody flipped it.
    #[must_use]
    pub fn paused(&self, dag: &Dag) -> bool {
        self.switches
            .get(&dag.id)
            .copied()
            .unwrap_or(dag.cadence.paused)
    }

    /// The next tick, in the DAG's time zone.
    #[must_use]
    pub fn next(&self, dag: &Dag) -> Option<String> {
        dag.schedule
            .as_ref()
            .and_then(|s| s.next_after(self.now))
            .map(|t| {
                t.with_timezone(&dag.timezone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            })
    }

    /// As `vane dags --json` and `GET /api/dags` give it.
    #[must_use]
    pub fn view(&self) -> Vec<DagEntry> {
        let mut items: Vec<DagEntry> = self
            .set
            .dags()
            .map(|(dag, file)| {
                DagEntry::Valid(Box::new(DagSummary {
                    id: dag.id.clone(),
                    path: file.path.display().to_string(),
                    description: dag.description.clone(),
                    schedule: dag.schedule.as_ref().map(|s| s.expression.clone()),
                    timezone: dag.timezone.name(),
                    tasks: dag.tasks.len(),
                    paused: self.paused(dag),
                    next_run: self.next(dag),
                    valid: true,
                    errors: vec![],
                    last_run: self.last(&dag.id).map(|r| self.waits.view(r)),
                    recent: self.recent.get(&dag.id).map_or_else(Vec::new, |runs| {
                        runs.iter()
                            .map(|r| RecentRun {
                                id: r.id.0,
                                state: r.state.as_str(),
                                logical_date: r.logical_date.to_rfc3339(),
                            })
                            .collect()
                    }),
                }))
            })
            .collect();
        for file in self.invalid() {
            let errors = file.parsed.diagnostics.iter().filter(|d| d.is_error());
            items.push(DagEntry::Invalid(InvalidDag {
                id: file
                    .path
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
                path: Some(file.path.display().to_string()),
                valid: false,
                errors: errors
                    .clone()
                    .map(|d| match d.line_col(&file.source) {
                        Some((l, c)) => format!("{}:{l}:{c}: {}", file.path.display(), d.message),
                        None => format!("{}: {}", file.path.display(), d.message),
                    })
                    .collect(),
                diagnostics: errors
                    .map(|d| {
                        let (line, column) = d.line_col(&file.source).unzip();
                        DiagnosticView {
                            line,
                            column,
                            message: d.message.clone(),
                            hint: d.hint.clone(),
                        }
                    })
                    .collect(),
            }));
        }
        items
    }
}

/// A DAG as `vane dags --json` and `GET /api/dags` list it: one that validates, or a file
/// that does not with its errors.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum DagEntry {
    Valid(Box<DagSummary>),
    Invalid(InvalidDag),
}

impl DagEntry {
    fn id(&self) -> &str {
        match self {
            Self::Valid(d) => &d.id,
            Self::Invalid(d) => &d.id,
        }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DagSummary {
    pub id: String,
    /// The DAG file.
    pub path: String,
    pub description: Option<String>,
    /// Its cron expression; none for a DAG that runs only when triggered.
    pub schedule: Option<String>,
    pub timezone: &'static str,
    /// How many tasks it has.
    pub tasks: usize,
    pub paused: bool,
    /// The next tick, RFC 3339 in the DAG's time zone.
    pub next_run: Option<String>,
    /// Always true here.
    pub valid: bool,
    /// Always empty here.
    pub errors: Vec<String>,
    pub last_run: Option<crate::runs::RunView>,
    /// The last runs, newest first.
    pub recent: Vec<RecentRun>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RecentRun {
    pub id: i64,
    pub state: &'static str,
    pub logical_date: String,
}

/// A DAG file that does not validate, or a DAG known only from its history (its file was
/// deleted or renamed: no path, no errors).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InvalidDag {
    /// The file's name without `.toml`.
    pub id: String,
    pub path: Option<String>,
    /// Always false here.
    pub valid: bool,
    /// `FILE:LINE:COLUMN: message`, as `vane validate` prints them.
    pub errors: Vec<String>,
    pub diagnostics: Vec<DiagnosticView>,
}

/// An error in a DAG file, where it is and how to fix it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Diagnostic")]
pub struct DiagnosticView {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

/// A DAG as the UI draws it: `GET /api/dags/{id}`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DagGrid {
    #[serde(flatten)]
    pub dag: DagEntry,
    /// The DAG's params with their defaults; none when its file does not validate.
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// Its tasks in file order; none when its file does not validate.
    pub task_list: Option<Vec<GridTask>>,
    /// The latest runs, newest first, each with its tasks' states.
    pub runs: Vec<GridRun>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GridTask {
    pub id: String,
    pub description: Option<String>,
    pub kind: &'static str,
    /// The tasks it depends on.
    pub upstream: Vec<String>,
    pub trigger_rule: &'static str,
    pub retries: u32,
    pub pool: Option<String>,
    pub timeout: Option<String>,
    pub sla: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GridRun {
    #[serde(flatten)]
    pub run: crate::runs::RunView,
    /// Each task of the run by id.
    pub tasks: BTreeMap<String, GridCell>,
}

/// A task of a run in the grid: its state and its latest attempt's times.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct GridCell {
    pub state: &'static str,
    pub attempts: usize,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

impl App {
    /// A DAG as the UI draws it: tasks with their upstream tasks, and its last `limit` runs
    /// with the state of each task. A DAG file that does not parse answers its errors, so the
    /// UI can show why rather than a 404; a DAG that is only in the history answers its runs.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for more than [`MAX_GRID_RUNS`] runs, [`AppError::NotFound`] for
    /// a DAG neither in the folder nor in the history.
    pub fn dag_grid(
        &self,
        store: &dyn Store,
        dag_id: &str,
        limit: usize,
    ) -> Result<DagGrid, AppError> {
        if limit > MAX_GRID_RUNS {
            return Err(AppError::Invalid(format!(
                "runs={limit}: the grid shows at most {MAX_GRID_RUNS} runs; page older ones with /api/runs?dag={dag_id}&limit=0"
            )));
        }
        let overview = Overview::load(self, store)?;
        let set = &overview.set;
        if set.find(dag_id).is_none() {
            // Only in the history (its file was deleted or renamed): its runs, or a 404.
            self.known_dag(store, dag_id)?;
        }
        let dag = overview
            .view()
            .into_iter()
            .find(|d| d.id() == dag_id)
            .unwrap_or_else(|| {
                DagEntry::Invalid(InvalidDag {
                    id: dag_id.to_owned(),
                    path: None,
                    valid: false,
                    errors: vec![],
                    diagnostics: vec![],
                })
            });
        let parsed = set.dags().map(|(d, _)| d).find(|d| d.id == dag_id);
        let params = parsed.map(|dag| {
            dag.params
                .iter()
                .map(|(name, value)| (name.clone(), value.to_json()))
                .collect()
        });
        let task_list = parsed.map(|dag| {
            dag.tasks
                .iter()
                .map(|t| GridTask {
                    id: t.id.clone(),
                    description: t.description.clone(),
                    kind: t.kind(),
                    upstream: t
                        .depends_on
                        .iter()
                        .map(|&i| dag.tasks[i].id.clone())
                        .collect(),
                    trigger_rule: t.trigger_rule.name(),
                    retries: t.retry.retries,
                    pool: t.pool.clone(),
                    timeout: t.timeout.map(vane_dag::format_duration),
                    sla: t.sla.map(vane_dag::format_duration),
                })
                .collect()
        });
        let runs = store.runs(&RunFilter {
            dag_id: Some(dag_id),
            limit,
            ..RunFilter::default()
        })?;
        let waits = crate::runs::Waits::of(store, &runs)?;
        let runs = runs
            .iter()
            .map(|run| -> Result<GridRun, AppError> {
                let detail = store.run(run.id)?;
                let tasks = detail
                    .tasks
                    .iter()
                    .map(|t| {
                        let last = t.attempts.last();
                        let cell = GridCell {
                            state: t.state.as_str(),
                            attempts: t.attempts.len(),
                            started_at: last.map(|a| a.started_at.to_rfc3339()),
                            ended_at: last.and_then(|a| a.ended_at).map(|e| e.to_rfc3339()),
                        };
                        (t.task_id.clone(), cell)
                    })
                    .collect();
                Ok(GridRun {
                    run: waits.view(run),
                    tasks,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DagGrid {
            dag,
            params,
            task_list,
            runs,
        })
    }

    /// The next `count` ticks of a DAG's schedule after `after` (now when absent), in its time
    /// zone, as RFC 3339.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a DAG without a schedule or a date that does not parse; as
    /// [`App::find_dag`].
    pub fn next_ticks(
        &self,
        dag_id: &str,
        count: usize,
        after: Option<&str>,
    ) -> Result<Vec<String>, AppError> {
        let set = self.load_dags()?;
        let (dag, _) = self.find_dag(&set, dag_id)?;
        let Some(schedule) = &dag.schedule else {
            return Err(AppError::Invalid(format!(
                "DAG `{dag_id}` has no schedule: it runs only when triggered (add `schedule` under [dag])"
            )));
        };
        let from = crate::runs::logical_date(after, dag, "--after")?;
        let mut at = from;
        let mut ticks = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(tick) = schedule.next_after(at) else {
                break;
            };
            ticks.push(
                tick.with_timezone(&dag.timezone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            );
            at = tick;
        }
        // Printing nothing read as "no answer"; a schedule with no more ticks says so.
        if ticks.is_empty() && count > 0 {
            return Err(AppError::Invalid(format!(
                "the schedule `{}` of DAG `{dag_id}` has no tick after {}: it never fires again",
                schedule.expression,
                from.with_timezone(&dag.timezone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            )));
        }
        Ok(ticks)
    }

    /// Not found for a DAG that is neither in the DAG folder nor in the history, rather than
    /// an empty list that looks like "no data yet": a typo should not read as a DAG that has
    /// not run.
    ///
    /// # Errors
    /// [`AppError::NotFound`], or the store cannot be read.
    pub fn known_dag(&self, store: &dyn Store, dag: &str) -> Result<(), AppError> {
        // A folder vane cannot read holds no DAG to be found: the history can still know it.
        let set = self.load_dags().ok();
        let in_folder = set.as_ref().is_some_and(|set| set.find(dag).is_some());
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
        Err(AppError::NotFound(format!(
            "no DAG `{dag}` in {} or in the history; {}",
            self.paths.dags.display(),
            set.map_or_else(
                || "known DAGs: none".to_owned(),
                |set| crate::known_dags(&set, dag)
            )
        )))
    }
}

/// A DAG's recent schedule ticks with what was decided for each, and what stands in the way
/// of the next: the answer to "why didn't my 02:00 run happen?".
#[derive(Debug)]
pub struct TickHistory {
    pub dag_id: String,
    pub timezone: chrono_tz::Tz,
    /// Newest first.
    pub ticks: Vec<vane_store::TickRecord>,
    /// The next tick to come; `None` without a schedule.
    pub next: Option<DateTime<Utc>>,
    /// The latest tick that is due now; `None` without a schedule.
    pub due: Option<DateTime<Utc>>,
    /// Sentences on why ticks are not being decided, if something stops them.
    pub notes: Vec<String>,
}

/// A tick not decided this long after it was due is worth a note: a scheduler decides it on
/// its next pass, within seconds.
const UNDECIDED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

impl App {
    /// The last `limit` ticks of DAG `dag_id` and what was decided for each.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for a DAG that is not in the folder; the store cannot be read.
    pub fn ticks(
        &self,
        store: &dyn Store,
        dag_id: &str,
        limit: usize,
    ) -> Result<TickHistory, AppError> {
        let overview = Overview::load(self, store)?;
        let mut notes = Vec::new();
        let recorded;
        let dag = match self.find_dag(&overview.set, dag_id) {
            Ok((dag, _)) => dag,
            // The scheduler keeps running the last good version of a file that stops
            // validating: its ticks are what a person looks at then, not an error.
            Err(invalid @ AppError::InvalidDag { .. }) => {
                let filter = RunFilter {
                    dag_id: Some(dag_id),
                    limit: 1,
                    ..RunFilter::default()
                };
                let last = store.runs(&filter)?.into_iter().next();
                let Some((run, dag)) = last
                    .map(|run| Ok::<_, AppError>((run.id, crate::runs::recorded_dag(store, &run)?)))
                    .transpose()?
                    .and_then(|(run, dag)| Some((run, dag?)))
                else {
                    return Err(invalid);
                };
                notes.push(format!(
                    "the DAG file does not validate (`vane validate` says why); this is the schedule of the version run {run} used, which a running scheduler keeps using"
                ));
                recorded = dag;
                &recorded
            }
            Err(other) => return Err(other),
        };
        let now = overview.now;
        let ticks = store.ticks(dag_id, limit)?;
        let (next, due) = match &dag.schedule {
            Some(s) => (s.next_after(now), s.previous_before(now)),
            None => (None, None),
        };
        if dag.schedule.is_none() {
            notes.push(format!(
                "DAG `{dag_id}` has no schedule: it runs only when triggered"
            ));
        }
        if overview.paused(dag) {
            notes.push(format!(
                "DAG `{dag_id}` is paused: no tick of it runs until `vane unpause {dag_id}`"
            ));
        }
        let up = store
            .schedulers()?
            .iter()
            .filter(|s| s.status(now) == vane_store::SchedulerStatus::Up)
            .count();
        if up == 0 && dag.schedule.is_some() {
            notes.push(
                "no scheduler is running on this database: ticks are decided by `vane scheduler` (`vane status` shows the schedulers)".to_owned(),
            );
        }
        let decided = |t: DateTime<Utc>| ticks.iter().any(|r| r.logical_date == t);
        if let Some(due) = due
            && now - due > UNDECIDED_AFTER
            && !decided(due)
            && ticks.first().is_none_or(|r| r.logical_date < due)
        {
            notes.push(format!(
                "the tick of {} is due and no scheduler decided it yet",
                local(due, dag.timezone)
            ));
        }
        Ok(TickHistory {
            dag_id: dag_id.to_owned(),
            timezone: dag.timezone,
            ticks,
            next,
            due,
            notes,
        })
    }
}

/// A time in a DAG's zone with its offset, to the second: `2026-03-29 03:00:00 +02:00`.
#[must_use]
pub fn local(t: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

impl TickHistory {
    /// As `vane ticks --json` and `GET /api/dags/{id}/ticks` give it: times in RFC 3339 in
    /// the DAG's time zone.
    #[must_use]
    pub fn view(&self) -> TicksView {
        let at = |t: DateTime<Utc>| {
            t.with_timezone(&self.timezone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        };
        TicksView {
            dag_id: self.dag_id.clone(),
            timezone: self.timezone.name(),
            next: self.next.map(at),
            notes: self.notes.clone(),
            ticks: self
                .ticks
                .iter()
                .map(|t| {
                    let (decision, run_id, reason) = match &t.decision {
                        vane_store::TickDecision::Run(run) => ("run", Some(run.0), None),
                        vane_store::TickDecision::Skipped(why) => {
                            ("skipped", None, Some(why.clone()))
                        }
                    };
                    TickView {
                        logical_date: at(t.logical_date),
                        decided_at: at(t.decided_at),
                        decision,
                        run_id,
                        reason,
                    }
                })
                .collect(),
        }
    }
}

/// A DAG's latest schedule ticks and what was decided for each.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Ticks")]
pub struct TicksView {
    pub dag_id: String,
    pub timezone: &'static str,
    /// The next tick.
    pub next: Option<String>,
    /// What stops ticks from being decided: paused, no scheduler running, a due tick.
    pub notes: Vec<String>,
    /// Newest first.
    pub ticks: Vec<TickView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Tick")]
pub struct TickView {
    pub logical_date: String,
    pub decided_at: String,
    /// `run` or `skipped`.
    pub decision: &'static str,
    /// The run it made.
    pub run_id: Option<i64>,
    /// Why it was skipped.
    pub reason: Option<String>,
}
