//! Taking over a run whose vane process is gone (a crash, `kill -9`, a reboot, a closed
//! terminal): what scheduler recovery, backfills and `vane clear` all need.

use chrono::Utc;
use tracing::{info, warn};
use vane_store::{AttemptState, Change, RunId, RunRecord, RunState, Store, TaskState};

use crate::{Engine, EngineError};

/// Whether the run `owner` claimed is orphaned as seen from this process: the owner's lease
/// expired (by the database's clock), or the owner is a dead process on this host, or this
/// very process, which is not executing it (`ours_active` says whether it is).
pub fn orphaned(owner: &vane_store::Owner, host: &str, ours_active: bool) -> bool {
    let ours = owner.host == host && owner.pid == std::process::id();
    if ours {
        !ours_active
    } else {
        !crate::owner_alive(owner, host)
    }
}

/// Adopts run `run`, as last read: takes it over from its owner (unless the owner changed
/// since, or another process adopts it first: then `false`, and nothing is done); each attempt
/// still marked running has its process group killed if it ran on this host and its pid still
/// names the same process (a reused pid is never killed), and is recorded failed as "scheduler
/// lost"; its task is queued again when its retry policy allows another try (counted since the
/// task was last cleared) or failed; the run is queued, with no owner.
///
/// An attempt that finished on its own meanwhile and wrote its exit status down (see
/// [`vane_exec::exit_mark`]) is left open for the run's next execution to record as it ended.
///
/// # Errors
/// Fails when the store cannot be used.
pub async fn adopt(engine: &Engine<'_>, seen: &RunRecord) -> Result<bool, EngineError> {
    take_over(engine, seen, true).await
}

/// [`adopt`], for a person's action on the run (clear, stop, mark) rather than its resumption:
/// every attempt still marked running is closed as lost, so none is left open that no
/// execution will pick up.
///
/// # Errors
/// Fails when the store cannot be used.
pub async fn adopt_for_action(engine: &Engine<'_>, seen: &RunRecord) -> Result<bool, EngineError> {
    take_over(engine, seen, false).await
}

async fn take_over(
    engine: &Engine<'_>,
    seen: &RunRecord,
    keep_finished: bool,
) -> Result<bool, EngineError> {
    let run = seen.id;
    let lost_owner = seen.owner.clone();
    let me = engine.owner(engine.lease.current(&engine.store).await?);
    let token = seen.owner_token;
    let Some(fence) = engine
        .store
        .call(move |s| {
            let lease = me.lease.clone().unwrap_or_default();
            s.take_over(run, token, &me, &lease)
        })
        .await?
    else {
        info!(
            run_id = run.0,
            "Run changed hands since it was found orphaned; leaving it."
        );
        return Ok(false);
    };
    let (detail, source) = engine
        .store
        .call(move |s| {
            let detail = s.run(run)?;
            let source = s.dag_source(detail.run.dag_version)?;
            Ok::<_, EngineError>((detail, source))
        })
        .await?;
    // A pid names a process on its own host only.
    let local = lost_owner.is_none_or(|o| o.host == engine.host);
    let dag = vane_dag::parse_dag_with(&source, &detail.run.dag_id, &engine.registry()).dag;
    warn!(run_id = run.0, dag = %detail.run.dag_id, "Adopting a run whose vane process is gone.");
    let at = Utc::now();
    let mut changes = Vec::new();
    for task in &detail.tasks {
        let Some(attempt) = task
            .attempts
            .last()
            .filter(|a| a.state == AttemptState::Running)
        else {
            continue;
        };
        let log = std::path::Path::new(&attempt.log_path);
        let killed = if let (true, Some(pid), Some(start)) =
            (local, attempt.pid, attempt.pid_start_time)
            && vane_exec::kill_group_if_same(pid, start, engine.kill_grace).await
        {
            warn!(run_id = run.0, task = %task.task_id, pid, "Killed the process group of a lost attempt.");
            true
        } else {
            false
        };
        if local {
            // What the attempt moved out of its group (a daemon) is still in its cgroup, whether
            // the attempt was killed just now or ended on its own.
            vane_exec::end_cells_of(log, engine.kill_grace).await;
        }
        if !killed
            && keep_finished
            && local
            && let Some(code) = vane_exec::exit_mark(log)
        {
            // It ended while no vane was watching and wrote its exit status down: the run's
            // next execution records that ending as if it had seen it (outputs and metrics
            // included), so a task that finished keeps its real outcome.
            info!(run_id = run.0, task = %task.task_id, attempt = attempt.attempt, code, "A lost attempt finished on its own; its end is recorded when the run resumes.");
            continue;
        }
        let retries = dag
            .as_ref()
            .and_then(|d| d.tasks.iter().find(|t| t.id == task.task_id))
            .map_or(0, |t| t.retry.retries);
        changes.extend(lost_attempt(run, task, attempt, retries, at));
    }
    changes.push(Change::Run {
        run,
        state: RunState::Queued,
        reason: Some("adopted after its vane process was lost".into()),
        at,
    });
    changes.push(Change::RunOwner { run, owner: None });
    // Its slots and places in line went with its process.
    changes.push(Change::ReleaseSlots { run, task: None });
    engine
        .store
        .call(move |s| s.apply_fenced(&fence, &changes))
        .await?;
    // Attempts the lost owner handed to agents are not watched by anyone now: their agents kill
    // them, as they were recorded failed above and are retried as new attempts.
    let cancelled = engine
        .store
        .call(move |s| {
            let lost = crate::remote::outcome_to_json(&vane_exec::Outcome::Lost {
                error: "the run's owner was lost".into(),
            });
            let mut n = 0;
            for d in s.open_dispatches()?.into_iter().filter(|d| d.run == run) {
                s.cancel_dispatch(d.id, &lost)?;
                n += 1;
            }
            Ok::<_, EngineError>(n)
        })
        .await?;
    if cancelled > 0 {
        warn!(
            run_id = run.0,
            cancelled, "Asked agents to kill the attempts the lost owner had handed them."
        );
    }
    Ok(true)
}

/// The changes that end a queued run that will never start: the run fails with `reason` and
/// its tasks that never ran are skipped, so the record does not show them waiting forever.
///
/// # Errors
/// Fails when the store cannot be read.
pub fn abandon_changes(
    store: &dyn Store,
    run: RunId,
    reason: &str,
) -> Result<Vec<Change>, EngineError> {
    let at = Utc::now();
    let detail = store.run(run)?;
    let mut changes: Vec<Change> = detail
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Queued)
        .map(|t| {
            // One waiting for a retry has failed: `skipped` would contradict its attempt.
            let tried = u32::try_from(t.attempts.len()).unwrap_or(u32::MAX);
            let (state, reason) = if tried > t.retry_base {
                (
                    TaskState::Failed,
                    format!("attempt {tried} failed; no retry: {reason}"),
                )
            } else {
                (TaskState::Skipped, reason.to_owned())
            };
            Change::Task {
                run,
                task: t.task_id.clone(),
                state,
                reason: Some(reason),
                at,
            }
        })
        .collect();
    // An attempt adoption left open for the run's next execution (it ended while no vane
    // watched) has none now: it is closed with what is known of it.
    for t in detail
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Running)
    {
        if let Some(a) = t
            .attempts
            .last()
            .filter(|a| a.state == AttemptState::Running)
        {
            changes.extend(open_attempt_closed(run, t, a, reason, at));
        }
    }
    changes.push(Change::Run {
        run,
        state: RunState::Failed,
        reason: Some(reason.to_owned()),
        at,
    });
    Ok(changes)
}

/// Why an attempt lost with its vane process ended.
pub(crate) const LOST: &str = "scheduler lost: the vane process running it stopped";

/// The changes that close attempt `attempt` of `task`, whose vane process is gone, as "scheduler
/// lost": the task is queued again when its retry policy (`retries`, counted since the task was
/// last cleared) allows another try, and failed otherwise.
pub(crate) fn lost_attempt(
    run: RunId,
    task: &vane_store::TaskRecord,
    attempt: &vane_store::AttemptRecord,
    retries: u32,
    at: chrono::DateTime<Utc>,
) -> Vec<Change> {
    let tries = attempt.attempt.saturating_sub(task.retry_base);
    let (state, reason) = if tries <= retries {
        (
            TaskState::Queued,
            "retrying after its vane process was lost",
        )
    } else {
        (
            TaskState::Failed,
            "its vane process was lost on the last attempt",
        )
    };
    vec![
        Change::AttemptFinished {
            run,
            task: task.task_id.clone(),
            attempt: attempt.attempt,
            success: false,
            exit_code: None,
            signal: None,
            reason: Some(LOST.into()),
            at,
        },
        Change::Task {
            run,
            task: task.task_id.clone(),
            state,
            reason: Some(reason.into()),
            at,
        },
    ]
}

/// The changes that close an attempt left open by adoption, when no execution will take it up:
/// failed with `reason`, keeping the exit status its shell wrote down, if any; its task failed.
pub(crate) fn open_attempt_closed(
    run: RunId,
    task: &vane_store::TaskRecord,
    attempt: &vane_store::AttemptRecord,
    reason: &str,
    at: chrono::DateTime<Utc>,
) -> Vec<Change> {
    let code = vane_exec::exit_mark(std::path::Path::new(&attempt.log_path));
    vec![
        Change::AttemptFinished {
            run,
            task: task.task_id.clone(),
            attempt: attempt.attempt,
            success: false,
            exit_code: code,
            signal: None,
            reason: Some(format!("ended while no vane process watched it; {reason}")),
            at,
        },
        Change::Task {
            run,
            task: task.task_id.clone(),
            state: TaskState::Failed,
            reason: Some(reason.to_owned()),
            at,
        },
    ]
}
