//! `vane clear`: which tasks of a recorded run to run again.

use chrono::Utc;
use vane_dag::Dag;
use vane_store::{Change, DagVersionId, Owner, RunDetail, RunState, TaskState};

/// Which tasks of a run to clear.
#[derive(Debug, Clone, Default)]
pub struct ClearRequest<'a> {
    /// These tasks; empty means every task.
    pub tasks: &'a [String],
    /// And everything downstream of them.
    pub downstream: bool,
    /// Only tasks that failed or could not run because of a failure.
    pub failed_only: bool,
}

/// Why a clear cannot be done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClearError {
    #[error("run {run} has no task `{task}`; its tasks: {known}")]
    UnknownTask {
        run: vane_store::RunId,
        task: String,
        known: String,
    },
    #[error(
        "the DAG's tasks changed since run {run} ({changes}), and a clear reruns the run's own tasks with the file as it is now: put them back in the file to clear this run; its logical date keeps this one run, so the new tasks run on other dates (`vane run`, `vane backfill`)"
    )]
    TasksChanged {
        run: vane_store::RunId,
        changes: String,
    },
    #[error(
        "run {run} is being executed right now by vane pid {pid} on {host}; wait for it to finish or stop it first"
    )]
    Running {
        run: vane_store::RunId,
        pid: u32,
        host: String,
    },
    #[error("run {run} is {state}; a task can be marked once the run has ended (stop it first)")]
    NotFinished {
        run: vane_store::RunId,
        state: RunState,
    },
}

/// Whether the vane process that claimed a run is still alive: not when its lease expired by
/// the database's clock; on this host, when its pid still names it; on another host, as long as
/// its lease holds (or, for an owner from before leases, always: only that host can tell).
pub fn owner_alive(owner: &Owner, this_host: &str) -> bool {
    // The database's clock is the judge of a lease; a pid is asked only on its own host.
    if owner.lease_held == Some(false) {
        return false;
    }
    owner.host != this_host
        || owner
            .start_time
            .is_some_and(|start| vane_exec::process_is_running(owner.pid, start))
}

/// The changes that clear the chosen tasks of `run` and queue the run again, or an empty list
/// when nothing matches. `dag` is the version the rerun uses: when `version` names one other
/// than the run's (the DAG file was fixed since), the run moves to it, as long as it has the
/// same tasks; each attempt records the version it ran.
///
/// # Errors
/// A task that the run does not have, a DAG whose tasks changed, or a run that a live process
/// is executing.
pub fn clear_changes(
    dag: &Dag,
    version: DagVersionId,
    run: &RunDetail,
    request: &ClearRequest<'_>,
    this_host: &str,
) -> Result<Vec<Change>, ClearError> {
    let id = run.run.id;
    let added: Vec<&str> = dag
        .tasks
        .iter()
        .filter(|t| !run.tasks.iter().any(|r| r.task_id == t.id))
        .map(|t| t.id.as_str())
        .collect();
    let removed: Vec<&str> = run
        .tasks
        .iter()
        .filter(|r| dag.task_index(&r.task_id).is_none())
        .map(|r| r.task_id.as_str())
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        let mut changes = Vec::new();
        if !added.is_empty() {
            changes.push(format!("added: {}", added.join(", ")));
        }
        if !removed.is_empty() {
            changes.push(format!("removed: {}", removed.join(", ")));
        }
        return Err(ClearError::TasksChanged {
            run: id,
            changes: changes.join("; "),
        });
    }
    if let Some(owner) = &run.run.owner
        && run.run.state == RunState::Running
        && owner_alive(owner, this_host)
    {
        return Err(ClearError::Running {
            run: id,
            pid: owner.pid,
            host: owner.host.clone(),
        });
    }
    let mut chosen = vec![request.tasks.is_empty(); dag.tasks.len()];
    for name in request.tasks {
        let Some(index) = dag.task_index(name) else {
            return Err(ClearError::UnknownTask {
                run: id,
                task: name.clone(),
                known: dag
                    .tasks
                    .iter()
                    .map(|t| t.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        chosen[index] = true;
    }
    let state_of = |i: usize| {
        run.tasks
            .iter()
            .find(|t| t.task_id == dag.tasks[i].id)
            .map_or(TaskState::Queued, |t| t.state)
    };
    if request.failed_only {
        for (i, chosen) in chosen.iter_mut().enumerate() {
            *chosen &= matches!(state_of(i), TaskState::Failed | TaskState::UpstreamFailed);
        }
    }
    // Downstream of what reruns: everything with --downstream, and in any case every task that
    // did not succeed (skipped or upstream_failed because of what failed), or the run would
    // end `success` with tasks that never ran. Tasks are not necessarily in dependency order in
    // the file: repeat until stable.
    let mut changed = true;
    while changed {
        changed = false;
        for (i, task) in dag.tasks.iter().enumerate() {
            let follows = task.depends_on.iter().any(|&d| chosen[d]);
            if !chosen[i] && follows && (request.downstream || state_of(i) != TaskState::Success) {
                chosen[i] = true;
                changed = true;
            }
        }
    }
    let at = Utc::now();
    let mut changes: Vec<Change> = run
        .tasks
        .iter()
        .filter(|t| dag.task_index(&t.task_id).is_some_and(|i| chosen[i]))
        .filter(|t| t.state != TaskState::Queued || !t.attempts.is_empty())
        .map(|t| Change::TaskCleared {
            run: id,
            task: t.task_id.clone(),
            reason: "cleared: will run again".into(),
            at,
        })
        .collect();
    if changes.is_empty() {
        return Ok(changes);
    }
    let names: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::TaskCleared { task, .. } => Some(task.clone()),
            _ => None,
        })
        .collect();
    changes.push(Change::Run {
        run: id,
        state: RunState::Queued,
        reason: Some(format!("cleared: {}", names.join(", "))),
        at,
    });
    changes.push(Change::RunOwner {
        run: id,
        owner: None,
    });
    if version != run.run.dag_version {
        changes.push(Change::RunVersion { run: id, version });
    }
    Ok(changes)
}

/// What a person marks a task as (`vane mark`, Airflow's "mark success").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Success,
    Failed,
}

/// The changes that mark task `task` of a run that no live process executes as `mark`, with
/// `note` (who and why) as its reason. Marked success, the tasks downstream of it that did not
/// succeed (upstream_failed or skipped because of it) are cleared and the run is queued, so the
/// scheduler runs them; when nothing is left to run, the run ends by what its tasks say.
/// Marked failed, the run ends failed; tasks that already ran downstream keep their states.
///
/// # Errors
/// A task the run does not have, a DAG whose tasks changed, or a run a live process executes.
pub fn mark_changes(
    dag: &Dag,
    run: &RunDetail,
    task: &str,
    mark: Mark,
    note: &str,
    this_host: &str,
) -> Result<Vec<Change>, ClearError> {
    let id = run.run.id;
    if !matches!(run.run.state, RunState::Success | RunState::Failed) {
        return Err(ClearError::NotFinished {
            run: id,
            state: run.run.state,
        });
    }
    let at = Utc::now();
    let marked = Change::Task {
        run: id,
        task: task.to_owned(),
        state: match mark {
            Mark::Success => TaskState::Success,
            Mark::Failed => TaskState::Failed,
        },
        reason: Some(note.to_owned()),
        at,
    };
    // Clearing the task checks everything a mark needs (the task exists, the DAG's tasks did
    // not change, no live process runs the run) and finds what depends on it.
    let request = ClearRequest {
        tasks: &[task.to_owned()],
        downstream: false,
        failed_only: false,
    };
    let cleared = clear_changes(dag, run.run.dag_version, run, &request, this_host)?;
    let reruns: Vec<Change> = cleared
        .into_iter()
        .filter(|c| !matches!(c, Change::TaskCleared { task: t, .. } if t == task))
        .collect();
    let downstream = reruns
        .iter()
        .any(|c| matches!(c, Change::TaskCleared { .. }));
    if mark == Mark::Success && downstream {
        let mut changes = vec![marked];
        changes.extend(reruns.into_iter().map(|c| match c {
            Change::Run { run, state, at, .. } => Change::Run {
                run,
                state,
                reason: Some(format!("{note}; what depends on `{task}` runs")),
                at,
            },
            other => other,
        }));
        return Ok(changes);
    }
    // Nothing left to run: the run ends by what its tasks now say.
    let state_after = |t: &vane_store::TaskRecord| {
        if t.task_id == task {
            match mark {
                Mark::Success => TaskState::Success,
                Mark::Failed => TaskState::Failed,
            }
        } else {
            t.state
        }
    };
    let succeeded = run
        .tasks
        .iter()
        .all(|t| matches!(state_after(t), TaskState::Success | TaskState::Skipped));
    Ok(vec![
        marked,
        Change::Run {
            run: id,
            state: if succeeded {
                RunState::Success
            } else {
                RunState::Failed
            },
            reason: Some(format!("task `{task}` {note}")),
            at,
        },
    ])
}
