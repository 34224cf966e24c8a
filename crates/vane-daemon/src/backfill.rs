//! Backfills: the runs of a DAG for every tick in a date range, planned as a pure function and
//! driven by one process with bounded concurrency, resumable after an interruption.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::{JoinHandle, LocalSet};
use tracing::{info, warn};
use vane_dag::Dag;
use vane_engine::{Control, Engine, EngineError, StopReason};
use vane_store::{BackfillRecord, BackfillState, RunFilter, RunId, RunState, Store};

use crate::daemon::{DaemonError, Version, execute_version, recorded_version};

/// What a backfill does with one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickAction {
    /// No run yet: create one.
    Run,
    /// A failed run exists and `--rerun-failed` was given: clear its failed tasks.
    Rerun(RunId),
    /// Left alone, and why.
    Skip(String),
}

/// Every tick of `dag` in `[from, to]`, in the order the backfill runs them, with what it does
/// with each given the runs that exist (`existing`: logical date → run id and state).
pub fn plan(
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reverse: bool,
    rerun_failed: bool,
    existing: &HashMap<DateTime<Utc>, (RunId, RunState)>,
) -> Vec<(DateTime<Utc>, TickAction)> {
    let Some(schedule) = &dag.schedule else {
        return Vec::new();
    };
    let mut ticks: Vec<_> = schedule
        .ticks_between(from, to)
        .map(|tick| {
            let action = match existing.get(&tick) {
                None => TickAction::Run,
                Some((run, RunState::Success)) => {
                    TickAction::Skip(format!("already succeeded (run {run})"))
                }
                Some((run, RunState::Failed)) if rerun_failed => TickAction::Rerun(*run),
                Some((run, RunState::Failed)) => {
                    TickAction::Skip(format!("failed (run {run}); --rerun-failed reruns it"))
                }
                Some((run, state)) => TickAction::Skip(format!("run {run} is {state}")),
            };
            (tick, action)
        })
        .collect();
    if reverse {
        ticks.reverse();
    }
    ticks
}

/// The existing runs of a DAG by logical date.
///
/// # Errors
/// Fails when the database cannot be read.
pub fn existing_runs(
    store: &dyn Store,
    dag_id: &str,
) -> Result<HashMap<DateTime<Utc>, (RunId, RunState)>, DaemonError> {
    Ok(store
        .runs(&RunFilter {
            dag_id: Some(dag_id),
            ..RunFilter::default()
        })?
        .into_iter()
        .map(|r| (r.logical_date, (r.id, r.state)))
        .collect())
}

/// How often the driver looks at the backfill's state (paused or cancelled from elsewhere).
const POLL: Duration = Duration::from_millis(200);

/// Drives backfill `id` until its runs are all finished (then `done`), it is paused or
/// cancelled from another terminal, or an interrupt arrives (then it is paused: running tasks
/// finish, unstarted runs wait for `vane backfills resume`; a second interrupt kills the
/// running tasks, which run again on resume). `progress` sees the backfill after every change.
///
/// # Errors
/// Fails when the database cannot be used.
pub async fn drive(
    engine: Engine<'static>,
    id: i64,
    // Each message a signal's number (SIGINT, SIGTERM).
    mut interrupts: tokio::sync::mpsc::UnboundedReceiver<i32>,
    mut progress: impl FnMut(&BackfillRecord),
) -> Result<BackfillState, DaemonError> {
    let engine = Rc::new(engine);
    LocalSet::new()
        .run_until(async move {
            let store = engine.store.clone();
            let mut active: HashMap<RunId, (watch::Sender<Control>, JoinHandle<()>)> =
                HashMap::new();
            let mut interrupted = false;
            let finished = Rc::new(tokio::sync::Notify::new());
            let mut shown = None;
            // A backfill's runs share one DAG version (or a few): each is read and parsed once.
            let mut versions: HashMap<vane_store::DagVersionId, Rc<Version>> = HashMap::new();
            // The backfill as last read whole, with what this process saw happen since. Reading
            // it whole (a state for each run) after every run that ended made a backfill
            // quadratic in its runs: an hourly DAG's year, 8,760 runs, read 77 million states.
            // It is read whole again every `POLL` (pause and cancel from other terminals, runs
            // cleared meanwhile), and when what this process knows is not enough.
            let mut backfill = store.call(move |s| s.backfill(id)).await?;
            let mut position: HashMap<RunId, usize> = positions(&backfill);
            let mut read_at = Instant::now();
            let mut fresh = true;
            let mut reread = false;
            let (ended, mut endings) =
                tokio::sync::mpsc::unbounded_channel::<(RunId, Option<RunState>)>();
            loop {
                let mut stale = std::mem::take(&mut reread);
                while let Ok((run, state)) = endings.try_recv() {
                    active.remove(&run);
                    match (state, position.get(&run)) {
                        (Some(state), Some(&i)) => backfill.runs[i].1 = state,
                        _ => stale = true,
                    }
                }
                // A run that ended without saying how (it panicked) is read back.
                let running = active.len();
                active.retain(|_, (_, handle)| !handle.is_finished());
                stale |= active.len() != running;
                if stale || read_at.elapsed() >= POLL {
                    backfill = store.call(move |s| s.backfill(id)).await?;
                    position = positions(&backfill);
                    read_at = Instant::now();
                    fresh = true;
                }
                if shown.as_ref() != Some(&backfill) {
                    progress(&backfill);
                    shown = Some(backfill.clone());
                }
                let state = if interrupted {
                    BackfillState::Paused
                } else {
                    backfill.state
                };
                match state {
                    BackfillState::Running => {}
                    BackfillState::Done => return Ok(BackfillState::Done),
                    BackfillState::Paused | BackfillState::Cancelled => {
                        let control = if state == BackfillState::Paused {
                            Control::Drain
                        } else {
                            Control::Stop(StopReason::BackfillCancelled)
                        };
                        for (sender, _) in active.values() {
                            let _ = sender.send(control);
                        }
                        // Running tasks finish; another interrupt kills them (they run again
                        // on resume), for a person who will not wait.
                        while active.values().any(|(_, handle)| !handle.is_finished()) {
                            tokio::select! {
                                () = tokio::time::sleep(POLL) => {}
                                Some(_) = interrupts.recv() => {
                                    warn!(backfill = id, "Interrupted again: killing running tasks; they run again on resume.");
                                    for (sender, _) in active.values() {
                                        let _ = sender.send(Control::Stop(StopReason::User));
                                    }
                                }
                            }
                        }
                        active.clear();
                        let cancelled = state == BackfillState::Cancelled;
                        let ended = store
                            .call(move |s| {
                                if cancelled {
                                    // As the database has it now that every run here ended.
                                    fail_unstarted(s, &s.backfill(id)?)?;
                                }
                                Ok::<_, DaemonError>(s.backfill(id)?)
                            })
                            .await?;
                        progress(&ended);
                        return Ok(state);
                    }
                }
                if backfill.runs.iter().all(|(_, s)| s.is_finished()) && active.is_empty() {
                    // Done only by the database's word: a run may have been cleared meanwhile.
                    if !fresh {
                        reread = true;
                        continue;
                    }
                    let done = store
                        .call(move |s| {
                            s.set_backfill_state(id, BackfillState::Done)?;
                            s.backfill(id)
                        })
                        .await?;
                    progress(&done);
                    info!(backfill = id, "Backfill done.");
                    return Ok(BackfillState::Done);
                }
                for (run, run_state) in backfill.runs.iter().filter(|_| fresh) {
                    // A run whose driver died (`kill -9`, a closed terminal) is adopted.
                    if *run_state == RunState::Running && !active.contains_key(run) {
                        let run = *run;
                        let record = store.call(move |s| s.run(run)).await?.run;
                        if record
                            .owner
                            .as_ref()
                            .is_some_and(|o| vane_engine::orphaned(o, &engine.host, false))
                        {
                            vane_engine::adopt(&engine, &record).await?;
                        }
                    }
                }
                fresh = false;
                for (run, run_state) in &mut backfill.runs {
                    if active.len() >= backfill.max_active {
                        break;
                    }
                    if *run_state != RunState::Queued || active.contains_key(run) {
                        continue;
                    }
                    // Claimed as soon as it runs; shown running from now on.
                    *run_state = RunState::Running;
                    let run_id = *run;
                    let record = store.call(move |s| s.run(run_id)).await?.run;
                    let version = match versions.get(&record.dag_version) {
                        Some(version) => Rc::clone(version),
                        None => {
                            let version = Rc::new(recorded_version(&engine, &record).await?);
                            versions.insert(record.dag_version, Rc::clone(&version));
                            version
                        }
                    };
                    let (sender, receiver) = watch::channel(Control::Run);
                    let engine = Rc::clone(&engine);
                    let finished = Rc::clone(&finished);
                    let ended = ended.clone();
                    let handle = tokio::task::spawn_local(async move {
                        let state = match execute_version(&engine, &record, &version, receiver).await {
                            Ok(state) => Some(state),
                            Err(DaemonError::Engine(EngineError::Claimed(_))) => None,
                            Err(e) => {
                                warn!(run_id = record.id.0, error = %e, "Backfill run could not be executed.");
                                None
                            }
                        };
                        let _ = ended.send((record.id, state));
                        finished.notify_one();
                    });
                    active.insert(*run, (sender, handle));
                }
                tokio::select! {
                    // A run that ends frees its place at once; the poll catches pause and
                    // cancel from other terminals.
                    () = finished.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    Some(_) = interrupts.recv() => {
                        interrupted = true;
                        store.call(move |s| s.set_backfill_state(id, BackfillState::Paused)).await?;
                        info!(backfill = id, "Backfill interrupted: finishing running tasks; `vane backfills resume` continues it.");
                    }
                }
            }
        })
        .await
}

/// Where each run of `backfill` is in its list.
fn positions(backfill: &BackfillRecord) -> HashMap<RunId, usize> {
    backfill
        .runs
        .iter()
        .enumerate()
        .map(|(i, (run, _))| (*run, i))
        .collect()
}

/// A cancelled backfill's runs that never started are failed, so nothing picks them up.
///
/// # Errors
/// Fails when the database cannot be written.
pub fn fail_unstarted(store: &dyn Store, backfill: &BackfillRecord) -> Result<(), DaemonError> {
    let reason = format!("backfill {} was cancelled", backfill.id);
    for (run, _) in backfill.runs.iter().filter(|(_, s)| *s == RunState::Queued) {
        let changes = vane_engine::abandon_changes(store, *run, &reason)?;
        store.apply(&changes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn daily() -> Dag {
        vane_dag::parse_dag(
            "[dag]\nschedule = \"0 2 * * *\"\n[tasks.a]\ncommand = \"true\"\n",
            "d",
        )
        .dag
        .unwrap()
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 2, 0, 0).unwrap()
    }

    #[test]
    fn plans_every_tick_in_range_both_ends_included() {
        let existing = HashMap::from([
            (day(2), (RunId(10), RunState::Success)),
            (day(3), (RunId(11), RunState::Failed)),
            (day(4), (RunId(12), RunState::Running)),
        ]);
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let to = day(5);
        let plan = plan(&daily(), from, to, false, false, &existing);
        let actions: Vec<_> = plan.iter().map(|(_, a)| a.clone()).collect();
        assert_eq!(
            actions,
            vec![
                TickAction::Run,
                TickAction::Skip("already succeeded (run 10)".into()),
                TickAction::Skip("failed (run 11); --rerun-failed reruns it".into()),
                TickAction::Skip("run 12 is running".into()),
                TickAction::Run,
            ]
        );
    }

    #[test]
    fn reverse_and_rerun_failed() {
        let existing = HashMap::from([(day(2), (RunId(11), RunState::Failed))]);
        let plan = plan(&daily(), day(1), day(3), true, true, &existing);
        assert_eq!(
            plan,
            vec![
                (day(3), TickAction::Run),
                (day(2), TickAction::Rerun(RunId(11))),
                (day(1), TickAction::Run)
            ]
        );
    }
}
