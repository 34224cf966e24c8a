//! `vane backfill` and `vane backfills`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use vane_app::AppError;
use vane_daemon::TickAction;
use vane_dag::{Dag, DagSet};
use vane_engine::{ClearRequest, Engine, RunSpec};
use vane_store::{
    BackfillRecord, BackfillState, NewBackfill, RunState, Store, StoreError, Trigger,
};

use crate::cli::{BackfillAction, BackfillArgs, BackfillsArgs, Global};
use crate::commands::{
    engine, find_dag, host, init_tracing, load_dags, open_or_create_store, runtime_with_signals,
};
use crate::output::table;

pub(crate) fn backfill(g: &Global, args: &BackfillArgs) -> Result<ExitCode> {
    let set = load_dags(g)?;
    let (dag, file) = find_dag(&set, &args.dag_id, g)?;
    if dag.schedule.is_none() {
        return Err(AppError::Invalid(format!(
            "DAG `{}` has no schedule, so it has no ticks to backfill; add `schedule` under [dag], or use `vane run --date`",
            dag.id
        ))
        .into());
    }
    // `--to 2026-01-31` includes that whole day.
    let from = vane_dag::parse_when(&args.from, dag.timezone, false)
        .map_err(|e| AppError::Invalid(format!("--from {e}")))?;
    let to = vane_dag::parse_when(&args.to, dag.timezone, true)
        .map_err(|e| AppError::Invalid(format!("--to {e}")))?;
    if from > to {
        return Err(AppError::Invalid(format!(
            "--from {} is after --to {}: --from is the first date of the range and --to the last; swap them",
            args.from, args.to
        ))
        .into());
    }
    // A tick still ahead has no complete data interval, and a run made for it now would take
    // the scheduler's place when it comes: the backfill ends at the last tick that has come.
    let now = Utc::now();
    if from > now {
        return Err(AppError::Invalid(format!(
            "--from {} is in the future: none of its ticks has come yet, and the scheduler runs them when they do",
            args.from
        ))
        .into());
    }
    let to = if to > now {
        eprintln!(
            "note: --to {} is in the future; the backfill ends now, and later ticks are the scheduler's",
            args.to
        );
        now
    } else {
        to
    };
    let params = dag
        .resolve_params(&args.params)
        .map_err(AppError::ParamsUnfit)?;
    let left_out = left_out(dag, &args.tasks, &args.exclude)?;
    let store: &dyn Store = &*open_or_create_store(g)?;
    let engine = engine(g, std::time::Duration::from_secs(10))?;
    let existing = vane_daemon::existing_runs(store, &dag.id)?;
    let plan =
        vane_daemon::plan_backfill(dag, from, to, args.reverse, args.rerun_failed, &existing);
    if plan.is_empty() {
        eprintln!(
            "no ticks of `{}` between {} and {}",
            dag.id, args.from, args.to
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        let latest = latest_deploys(store, dag)?;
        let rows: Vec<Vec<String>> = plan
            .iter()
            .map(|(tick, action)| {
                let what = match action {
                    TickAction::Run => "run".to_owned(),
                    TickAction::Rerun(run) => format!("rerun: failed (run {run})"),
                    TickAction::Skip(why) => format!("skip: {why}"),
                };
                let tasks = match action {
                    TickAction::Skip(_) => String::new(),
                    _ => task_plan(dag, &left_out, &latest, *tick, args.redeploy_past),
                };
                vec![local(tick, dag), what, tasks]
            })
            .collect();
        print!("{}", table(&["LOGICAL DATE", "ACTION", "TASKS"], &rows));
        let runs = plan
            .iter()
            .filter(|(_, a)| !matches!(a, TickAction::Skip(_)))
            .count();
        eprintln!("dry run: {runs} of {} ticks would run", plan.len());
        return Ok(ExitCode::SUCCESS);
    }
    init_tracing();
    let (runtime, interrupts) = runtime_with_signals()?;
    let new = NewBackfill {
        dag_id: &dag.id,
        from,
        to,
        reverse: args.reverse,
        rerun_failed: args.rerun_failed,
        max_active: args
            .max_active
            .unwrap_or(dag.cadence.max_active_runs)
            .max(1),
        redeploy_past: args.redeploy_past,
        at: Utc::now(),
    };
    let git = vane_engine::git_state(&file.path);
    let version = vane_engine::record_version(store, &dag.id, &file.source, &file.path)?;
    let host = host();
    // The backfill and all its runs in one transaction: a year of daily runs is one commit,
    // not 365, and a failure leaves no half-made backfill behind.
    let making = Making {
        store,
        dag,
        file,
        params: &params,
        left_out: &left_out,
        git: &git,
        version,
        host: &host,
    };
    let mut made = None;
    let mut failure = None;
    let created = store.atomically(&mut || {
        match making.backfill(&new, &plan) {
            Ok(done) => {
                made = Some(done);
                Ok(())
            }
            Err(error) => match error.downcast::<StoreError>() {
                // The store's own errors go back to it: it may start over after a conflict.
                Ok(error) => Err(error),
                Err(error) => {
                    failure = Some(error);
                    Err(StoreError::NotFound("the backfill was not made".into()))
                }
            },
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    created?;
    let (id, runs) = made.ok_or_else(|| anyhow!("the backfill was not made"))?;
    eprintln!(
        "backfill {id} of {}: {} run{} of {} ticks ({} to {})",
        dag.id,
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        plan.len(),
        args.from,
        args.to
    );
    drive(g, &runtime, engine, id, interrupts)
}

/// What making a backfill's runs needs, in the transaction that records them.
struct Making<'a> {
    store: &'a dyn Store,
    dag: &'a Dag,
    file: &'a vane_dag::DagFile,
    params: &'a [(String, vane_dag::ParamValue)],
    left_out: &'a [(String, String)],
    git: &'a Option<vane_store::GitState>,
    version: vane_store::DagVersionId,
    host: &'a str,
}

impl Making<'_> {
    /// Records the backfill and a run for each tick of `plan` that runs (or requeues the
    /// failed one); returns the backfill's id and its runs.
    fn backfill(
        &self,
        new: &NewBackfill<'_>,
        plan: &[(DateTime<Utc>, TickAction)],
    ) -> Result<(i64, Vec<vane_store::RunId>)> {
        let (store, dag) = (self.store, self.dag);
        let id = store.create_backfill(new)?;
        // Each run is linked to the backfill as it is created (or before a failed one is
        // requeued), so a running scheduler never takes it for one of its own.
        let mut runs = Vec::new();
        for (tick, action) in plan {
            match action {
                TickAction::Skip(_) => {}
                TickAction::Run => {
                    let spec = RunSpec {
                        dag,
                        source: &self.file.source,
                        path: &self.file.path,
                        params: self.params.to_vec(),
                        logical_date: *tick,
                        trigger: Trigger::Backfill,
                        git: self.git.clone(),
                        backfill: Some(id),
                    };
                    match vane_engine::new_run_of_version(&spec, self.host)(store, self.version) {
                        Ok(run) => {
                            // Before anything runs: the run starts with them settled.
                            if !self.left_out.is_empty() {
                                store.apply(&skip_changes(run, self.left_out))?;
                            }
                            runs.push(run);
                        }
                        // The scheduler created it a moment ago: it is not the backfill's.
                        Err(vane_engine::EngineError::Store(StoreError::RunExists { .. })) => {}
                        // Unwrapped, so that the transaction sees a store error as its own
                        // (and starts over after a conflict).
                        Err(vane_engine::EngineError::Store(error)) => return Err(error.into()),
                        Err(e) => return Err(e.into()),
                    }
                }
                TickAction::Rerun(run) => {
                    let detail = store.run(*run)?;
                    let request = ClearRequest {
                        failed_only: true,
                        ..ClearRequest::default()
                    };
                    let changes = vane_engine::clear_changes(
                        dag,
                        self.version,
                        &detail,
                        &request,
                        self.host,
                    )?;
                    store.link_backfill_runs(id, &[*run])?;
                    store.apply(&changes)?;
                    runs.push(*run);
                }
            }
        }
        Ok((id, runs))
    }
}

/// The tasks a backfill leaves out, with why: those not needed by a `--task` (which keeps what
/// it needs upstream), and each `--exclude`.
fn left_out(dag: &Dag, tasks: &[String], exclude: &[String]) -> Result<Vec<(String, String)>> {
    let index = |name: &String| {
        dag.task_index(name).ok_or_else(|| {
            let known: Vec<&str> = dag.tasks.iter().map(|t| t.id.as_str()).collect();
            AppError::NotFound(format!(
                "DAG `{}` has no task `{name}`; its tasks: {}",
                dag.id,
                known.join(", ")
            ))
        })
    };
    let mut keep = vec![tasks.is_empty(); dag.tasks.len()];
    let mut stack = tasks.iter().map(index).collect::<Result<Vec<_>, _>>()?;
    // A chosen task and everything it needs upstream.
    while let Some(i) = stack.pop() {
        if !keep[i] {
            keep[i] = true;
            stack.extend(&dag.tasks[i].depends_on);
        }
    }
    let excluded = exclude.iter().map(index).collect::<Result<Vec<_>, _>>()?;
    Ok(dag
        .tasks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            if excluded.contains(&i) {
                Some((
                    t.id.clone(),
                    "excluded from this backfill (--exclude)".to_owned(),
                ))
            } else if !keep[i] {
                Some((
                    t.id.clone(),
                    format!("not needed by the chosen tasks ({})", tasks.join(", ")),
                ))
            } else {
                None
            }
        })
        .collect())
}

/// The changes that settle left-out tasks of a new run as skipped, with why.
fn skip_changes(run: vane_store::RunId, left_out: &[(String, String)]) -> Vec<vane_store::Change> {
    let at = Utc::now();
    left_out
        .iter()
        .map(|(task, why)| vane_store::Change::Task {
            run,
            task: task.clone(),
            state: vane_store::TaskState::Skipped,
            reason: Some(why.clone()),
            at,
        })
        .collect()
}

/// For each deploy task's model, the logical date of the last run that put a version of it
/// in production ([`vane_deploy::production_frontier`]): a backfill run older than that
/// promotes nothing.
fn latest_deploys(store: &dyn Store, dag: &Dag) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut out = Vec::new();
    for task in &dag.tasks {
        let Some(spec) = task
            .builtin
            .as_ref()
            .and_then(|b| b.spec::<vane_deploy::DeploySpec>())
        else {
            continue;
        };
        if let Some(frontier) = vane_deploy::production_frontier(store, &spec.model)? {
            out.push((task.id.clone(), frontier.logical_date));
        }
    }
    Ok(out)
}

/// What a backfill run of `tick` would do with each task, for the dry run: which run, which
/// are skipped and why, which may be reused from the cache.
fn task_plan(
    dag: &Dag,
    left_out: &[(String, String)],
    latest: &[(String, DateTime<Utc>)],
    tick: DateTime<Utc>,
    redeploy_past: bool,
) -> String {
    let (mut run, mut cached, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for task in &dag.tasks {
        if let Some((_, why)) = left_out.iter().find(|(t, _)| *t == task.id) {
            skipped.push(format!("{} ({why})", task.id));
        } else if let Some((_, live)) = latest
            .iter()
            .find(|(t, live)| *t == task.id && tick < *live && !redeploy_past)
        {
            skipped.push(format!(
                "{} (latest-only: a run for {} has put this model in production; --redeploy-past deploys anyway)",
                task.id,
                live.format("%Y-%m-%d")
            ));
        } else if task.cache {
            cached.push(task.id.clone());
        } else {
            run.push(task.id.clone());
        }
    }
    let mut parts = Vec::new();
    if !run.is_empty() {
        parts.push(format!("run: {}", run.join(", ")));
    }
    if !cached.is_empty() {
        parts.push(format!(
            "reused from the cache if inputs are unchanged: {}",
            cached.join(", ")
        ));
    }
    if !skipped.is_empty() {
        parts.push(format!("skip: {}", skipped.join("; ")));
    }
    parts.join(" · ")
}

fn local(tick: &DateTime<Utc>, dag: &Dag) -> String {
    tick.with_timezone(&dag.timezone)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Drives the backfill here, showing progress, and says how it ended.
fn drive(
    g: &Global,
    runtime: &tokio::runtime::Runtime,
    engine: Engine<'static>,
    id: i64,
    mut interrupts: tokio::sync::mpsc::UnboundedReceiver<i32>,
) -> Result<ExitCode> {
    let store = engine.store.clone();
    let mut bar = Progress::new();
    // The first signal decides the exit code, as for `vane run`: the backfill only sees that
    // it was interrupted.
    let first_signal = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let (forward, forwarded) = tokio::sync::mpsc::unbounded_channel();
    {
        let first_signal = std::sync::Arc::clone(&first_signal);
        runtime.spawn(async move {
            while let Some(signal) = interrupts.recv().await {
                let _ = first_signal.compare_exchange(
                    0,
                    signal,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if forward.send(signal).is_err() {
                    break;
                }
            }
        });
    }
    let state = runtime.block_on(vane_daemon::drive_backfill(engine, id, forwarded, |b| {
        bar.show(b)
    }))?;
    bar.finish();
    let record = store.call_blocking(move |s| s.backfill(id))?;
    let failed = record.count(RunState::Failed);
    match state {
        BackfillState::Done if failed == 0 => {
            eprintln!(
                "backfill {id} done: {} runs succeeded",
                record.count(RunState::Success)
            );
            Ok(ExitCode::SUCCESS)
        }
        BackfillState::Done => {
            let set = load_dags(g).ok();
            let (from, to) = (
                day(set.as_ref(), &record, &record.from),
                day(set.as_ref(), &record, &record.to),
            );
            eprintln!(
                "backfill {id} done: {failed} of {} runs failed; rerun them with `vane backfill {} --from {from} --to {to} --rerun-failed`",
                record.runs.len(),
                record.dag_id
            );
            Ok(ExitCode::FAILURE)
        }
        BackfillState::Paused => {
            eprintln!("backfill {id} paused; continue it with `vane backfills resume {id}`");
            match first_signal.load(std::sync::atomic::Ordering::Relaxed) {
                0 => Ok(ExitCode::FAILURE),
                signal => Ok(ExitCode::from(u8::try_from(128 + signal).unwrap_or(130))),
            }
        }
        _ => {
            eprintln!("backfill {id} {state}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A one-line progress bar on a terminal; a line per finished run otherwise (logs, CI).
struct Progress {
    terminal: bool,
    finished: usize,
    drawn: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            finished: 0,
            drawn: false,
        }
    }

    fn show(&mut self, b: &BackfillRecord) {
        let total = b.runs.len();
        let ok = b.count(RunState::Success);
        let failed = b.count(RunState::Failed);
        let running = b.count(RunState::Running);
        let finished = ok + failed;
        let line = format!("{finished}/{total}  ok {ok}  failed {failed}  running {running}");
        if self.terminal {
            let width = 30;
            let filled = (finished * width).checked_div(total).unwrap_or(width);
            say(&format!(
                "\r\x1b[2Kbackfill {} [{}{}] {line}",
                b.id,
                "#".repeat(filled),
                ".".repeat(width - filled)
            ));
            self.drawn = true;
        } else if finished != self.finished || self.finished == 0 {
            say(&format!("backfill {}: {line}\n", b.id));
        }
        self.finished = finished;
    }

    fn finish(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}

/// Writes a progress line to stderr in one `write`, so that no log line of a run (written
/// from the same process meanwhile) lands in the middle of it. Best effort, as `eprint!`.
fn say(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

pub(crate) fn backfills(g: &Global, args: &BackfillsArgs) -> Result<ExitCode> {
    let store: &'static dyn Store = Box::leak(open_or_create_store(g)?);
    match &args.action {
        None => list(g, store, args),
        Some(BackfillAction::Pause { id }) => {
            vane_app::backfills::pause(store, *id)?;
            eprintln!(
                "backfill {id} paused: no new run starts; `vane backfills resume {id}` continues it"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(BackfillAction::Cancel { id }) => {
            crate::commands::app(g).cancel_backfill(store, *id)?;
            eprintln!("backfill {id} cancelled");
            Ok(ExitCode::SUCCESS)
        }
        Some(BackfillAction::Resume { id }) => {
            vane_app::backfills::resumable(store, *id)?;
            init_tracing();
            let (runtime, interrupts) = runtime_with_signals()?;
            store.set_backfill_state(*id, BackfillState::Running)?;
            let engine = engine(g, std::time::Duration::from_secs(10))?;
            drive(g, &runtime, engine, *id, interrupts)
        }
    }
}

/// A day of a backfill's range. Dates read best in the DAG's time zone, when the DAG is
/// still there to say which.
fn day(set: Option<&DagSet>, b: &BackfillRecord, t: &DateTime<Utc>) -> String {
    let tz = set
        .and_then(|s| s.dags().find(|(d, _)| d.id == b.dag_id))
        .map_or(chrono_tz::UTC, |(d, _)| d.timezone);
    t.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

fn list(g: &Global, store: &dyn Store, args: &BackfillsArgs) -> Result<ExitCode> {
    let backfills = vane_app::reads::backfills(store, args.dag.as_deref())?;
    if let Some(dag_id) = &args.dag
        && backfills.is_empty()
    {
        crate::commands::app(g).known_dag(store, dag_id)?;
    }
    let set = load_dags(g).ok();
    let day = |b: &BackfillRecord, t: &DateTime<Utc>| day(set.as_ref(), b, t);
    if args.json.json {
        let items: Vec<_> = backfills
            .iter()
            .map(vane_app::reads::backfill_json)
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = backfills
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.dag_id.clone(),
                format!("{} .. {}", day(b, &b.from), day(b, &b.to)),
                b.state.to_string(),
                format!(
                    "{}/{} ok {} failed {}",
                    b.count(RunState::Success) + b.count(RunState::Failed),
                    b.runs.len(),
                    b.count(RunState::Success),
                    b.count(RunState::Failed)
                ),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["BACKFILL", "DAG", "DATES", "STATE", "PROGRESS"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
