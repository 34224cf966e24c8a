//! Attempts run by agents: how a run's owner hands an attempt to `vane agent` processes on
//! other hosts and gets its outcome back as if it had run the process itself.
//!
//! The owner puts the attempt in the store's dispatch queue with the labels it needs and
//! watches the row: the agent's outcome, or the agent's lease expiring (then the attempt is
//! reaped as lost, and the agent's later writes are refused). A kill (`vane stop`, the lease of
//! the owner lost) becomes a cancel request that the agent carries out. The owner alone records
//! the attempt in the run's history, so a remote attempt is recorded exactly like a local one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tracing::warn;
use vane_exec::{ExecError, Job, KillSwitch, Launched, Outcome};
use vane_store::{DispatchState, NewDispatch, RunId, StoreThreads};

/// The identity of an attempt handed to agents, and what it needs.
#[derive(Debug, Clone)]
pub struct Placement {
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
    /// Which check of a sensor's attempt; 0 for other tasks.
    pub poke: u32,
    pub needs: BTreeMap<String, String>,
    pub priority: i64,
    /// The command is vane's own `exec-builtin` (validate, deploy): each agent starts it with
    /// its own `vane` binary, wherever that is installed.
    pub builtin: bool,
}

/// How often the owner looks at an attempt it handed out: often at first, when most no-op
/// and short tasks end, then less often.
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(250);

/// How long past the kill grace an agent has to confirm a kill.
const CANCEL_PATIENCE: Duration = Duration::from_secs(30);

/// Hands attempts to agents through the store.
#[derive(Clone)]
pub struct Agents {
    store: StoreThreads,
    /// `[scheduler] agents = "all"`: tasks without `runs_on` go to any agent too.
    pub all: bool,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").field("all", &self.all).finish()
    }
}

impl Agents {
    #[must_use]
    pub fn new(store: StoreThreads, all: bool) -> Self {
        Self { store, all }
    }

    /// What a task needs of an agent, or `None` when it runs on this host.
    #[must_use]
    pub fn needs(
        &self,
        runs_on: Option<&BTreeMap<String, String>>,
    ) -> Option<BTreeMap<String, String>> {
        match runs_on {
            Some(needs) => Some(needs.clone()),
            None if self.all => Some(BTreeMap::new()),
            None => None,
        }
    }

    /// Puts the job in the queue and returns at once, like [`vane_exec::Executor::launch`];
    /// the outcome arrives on [`Launched::done`] when an agent reports it, or `Lost` when the
    /// agent's lease expired first. `pid` is 0: the process is on another host.
    ///
    /// # Errors
    /// When there is no tokio runtime.
    pub fn launch(&self, job: Job, placement: Placement) -> Result<Launched, ExecError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ExecError::NoRuntime)?;
        let (report, done) = oneshot::channel();
        let kill = KillSwitch::new();
        runtime.spawn(watch(
            self.store.clone(),
            job,
            placement,
            kill.clone(),
            report,
        ));
        Ok(Launched {
            pid: 0,
            start_time: None,
            done,
            kill,
        })
    }
}

async fn watch(
    store: StoreThreads,
    job: Job,
    placement: Placement,
    kill: KillSwitch,
    report: oneshot::Sender<Outcome>,
) {
    let outcome = follow(&store, &job, &placement, &kill).await;
    let _ = report.send(outcome);
}

async fn follow(
    store: &StoreThreads,
    job: &Job,
    placement: &Placement,
    kill: &KillSwitch,
) -> Outcome {
    let mut described = job_to_json(job);
    described["builtin"] = placement.builtin.into();
    let p = placement.clone();
    let id = match store
        .call(move |s| {
            s.enqueue_dispatch(&NewDispatch {
                run: p.run,
                task: &p.task,
                attempt: p.attempt,
                poke: p.poke,
                needs: &p.needs,
                priority: p.priority,
                job: &described,
            })
        })
        .await
    {
        Ok(id) => id,
        Err(e) => {
            return Outcome::Lost {
                error: format!("could not hand the attempt to agents: {e}"),
            };
        }
    };
    let mut poll = FIRST_POLL;
    let mut cancelled = false;
    let mut cancel_deadline = None;
    loop {
        tokio::select! {
            () = kill.killed(), if !cancelled => {
                let stopped = outcome_to_json(&Outcome::Cancelled);
                match store.call(move |s| s.cancel_dispatch(id, &stopped)).await {
                    // Never claimed: nothing ran.
                    Ok(true) => return Outcome::Cancelled,
                    // The agent kills it and reports how it ended.
                    Ok(false) => {
                        cancelled = true;
                        cancel_deadline = Some(tokio::time::Instant::now() + job.kill_grace + CANCEL_PATIENCE);
                    }
                    Err(e) => {
                        warn!(dispatch = id, %e, "Could not ask the agent to kill an attempt; trying again.");
                        tokio::time::sleep(MAX_POLL).await;
                    }
                }
            }
            () = tokio::time::sleep(poll) => {}
        }
        poll = (poll * 3 / 2).min(MAX_POLL);
        let seen = match store.call(move |s| s.dispatches(&[id])).await {
            Ok(mut rows) if !rows.is_empty() => rows.remove(0),
            Ok(_) => {
                return Outcome::Lost {
                    error: format!("the dispatched attempt {id} is gone from the database"),
                };
            }
            Err(e) => {
                warn!(dispatch = id, %e, "Could not read a dispatched attempt; trying again.");
                continue;
            }
        };
        match seen.state {
            DispatchState::Done => {
                return seen.outcome.as_ref().map_or_else(
                    || Outcome::Lost {
                        error: "the agent reported no outcome".into(),
                    },
                    outcome_from_json,
                );
            }
            DispatchState::Running if !seen.agent_alive => {
                let host = seen.agent_host.clone().unwrap_or_else(|| "an agent".into());
                let lease = seen.agent_lease.clone().unwrap_or_default();
                let lost = Outcome::Lost {
                    error: format!(
                        "the agent on {host} stopped renewing its lease ({lease}): presumed lost with its host; its process is killed by the agent itself once it notices"
                    ),
                };
                let reported = outcome_to_json(&lost);
                let token = seen.token;
                match store
                    .call(move |s| s.reap_dispatch(id, token, &reported))
                    .await
                {
                    Ok(true) => return lost,
                    // It reported, or renewed after all: look again.
                    Ok(false) => poll = FIRST_POLL,
                    Err(e) => {
                        warn!(dispatch = id, %e, "Could not reap an attempt of a lost agent; trying again.")
                    }
                }
            }
            DispatchState::Running | DispatchState::Queued => {}
        }
        // Cancelling has its own timeout, as every state does: an agent that neither kills nor
        // reports (its host is wedged, yet renews) does not hold the run forever.
        if cancel_deadline.is_some_and(|at| tokio::time::Instant::now() >= at) {
            return Outcome::Lost {
                error: format!(
                    "the agent on {} did not confirm the kill within {} s; if the process still runs there, kill it by hand",
                    seen.agent_host.as_deref().unwrap_or("another host"),
                    (job.kill_grace + CANCEL_PATIENCE).as_secs()
                ),
            };
        }
    }
}

/// A job as agents read it.
#[must_use]
pub fn job_to_json(job: &Job) -> Value {
    json!({
        "command": job.command,
        "env": job.env,
        "cwd": job.cwd,
        "log_path": job.log_path,
        "timeout_ms": job.timeout.map(|t| t.as_millis() as u64),
        "kill_grace_ms": job.kill_grace.as_millis() as u64,
    })
}

/// The job an agent runs, read back from [`job_to_json`].
///
/// # Errors
/// When the value is not such a job.
pub fn job_from_json(value: &Value) -> Result<Job, String> {
    let text = |key: &str| {
        value[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the dispatched job has no `{key}`"))
    };
    let env: Vec<(String, String)> = serde_json::from_value(value["env"].clone())
        .map_err(|e| format!("the dispatched job's `env`: {e}"))?;
    let millis = |key: &str| value[key].as_u64().map(Duration::from_millis);
    Ok(Job {
        command: text("command")?,
        env,
        cwd: value["cwd"].as_str().map(PathBuf::from),
        log_path: PathBuf::from(text("log_path")?),
        timeout: millis("timeout_ms"),
        kill_grace: millis("kill_grace_ms").unwrap_or(Duration::from_secs(10)),
    })
}

/// How a process ended, as agents report it.
#[must_use]
pub fn outcome_to_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited { code } => json!({ "exited": code }),
        Outcome::Signaled { signal } => json!({ "signaled": signal }),
        Outcome::TimedOut => json!({ "timed_out": true }),
        Outcome::Cancelled => json!({ "cancelled": true }),
        Outcome::Lost { error } => json!({ "lost": error }),
        other => json!({ "lost": other.describe() }),
    }
}

/// The outcome an agent reported, read back from [`outcome_to_json`].
#[must_use]
pub fn outcome_from_json(value: &Value) -> Outcome {
    let int = |key: &str| value[key].as_i64().and_then(|v| i32::try_from(v).ok());
    if let Some(code) = int("exited") {
        Outcome::Exited { code }
    } else if let Some(signal) = int("signaled") {
        Outcome::Signaled { signal }
    } else if value["timed_out"] == true {
        Outcome::TimedOut
    } else if value["cancelled"] == true {
        Outcome::Cancelled
    } else {
        Outcome::Lost {
            error: value["lost"].as_str().map_or_else(
                || format!("an outcome vane cannot read: {value}"),
                str::to_owned,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_outcomes_survive_the_trip_through_the_queue() {
        let job = Job {
            command: "python3 train.py".into(),
            env: vec![("VANE_DS".into(), "2026-12-04".into())],
            cwd: Some("/srv/project".into()),
            log_path: "/srv/logs/a.log".into(),
            timeout: Some(Duration::from_secs(90)),
            kill_grace: Duration::from_secs(3),
        };
        assert_eq!(job_from_json(&job_to_json(&job)).unwrap(), job);
        for outcome in [
            Outcome::Exited { code: 65 },
            Outcome::Signaled { signal: 9 },
            Outcome::TimedOut,
            Outcome::Cancelled,
            Outcome::Lost {
                error: "gone".into(),
            },
        ] {
            assert_eq!(outcome_from_json(&outcome_to_json(&outcome)), outcome);
        }
    }
}
