//! Attempts run by agents: how a run's owner hands an attempt to `vane agent` processes on
//! other hosts and gets its outcome back as if it had run the process itself.
//!
//! The owner puts the attempt in the store's dispatch queue with the labels it needs and
//! watches the row: the agent's outcome, or the agent's lease expiring (then the attempt is
//! reaped as lost, and the agent's later writes are refused). A kill (`vane stop`, the lease of
//! the owner lost) becomes a cancel request that the agent carries out. The owner alone records
//! the attempt in the run's history, so a remote attempt is recorded exactly like a local one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tracing::warn;
use vane_exec::{ExecError, Job, KillSwitch, Launched, Outcome};
use vane_store::{DispatchRecord, DispatchState, NewDispatch, RunId, StoreThreads};

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
    /// Where the attempt's log chunks go in the log storage.
    pub log_key: String,
    /// The outputs the task declares (`name`, where it writes it): the agent hashes them and
    /// keeps a copy in the content store where they are, and reports them with the outcome.
    pub outputs: Vec<(String, PathBuf)>,
    /// A cache hit's outputs for the agent to put back from the content store instead of
    /// running the command: `[{name, hash, kind, stored, path}]`.
    pub restore: Option<Value>,
}

/// Where agents ship task logs, and the run's owner adds its own lines to them.
#[derive(Clone)]
pub struct LogStorage {
    /// As agents open it ([`vane_objects::open`]).
    pub url: String,
    pub objects: Arc<dyn vane_objects::Objects>,
    /// The content store, as agents open it, for the outputs they keep.
    pub content_url: String,
}

/// How often the owner reads the attempts it handed out, all of them in one query.
const POLL: Duration = Duration::from_millis(10);

/// How long past the kill grace an agent has to confirm a kill.
const CANCEL_PATIENCE: Duration = Duration::from_secs(30);

/// Hands attempts to agents through the store.
#[derive(Clone)]
pub struct Agents {
    store: StoreThreads,
    /// `[scheduler] agents = "all"`: tasks without `runs_on` go to any agent too.
    pub all: bool,
    /// Where agents ship logs; `None` leaves the log where the job says (a shared folder).
    logs: Option<LogStorage>,
    watched: Arc<Watched>,
    /// Outputs agents kept and reported, by attempt, until the run's owner records them.
    reported: Arc<Mutex<HashMap<AttemptKey, Reported>>>,
}

/// An attempt: its run, task and number.
type AttemptKey = (RunId, String, u32);

/// What an agent reported of an attempt's declared outputs: kept, or why not.
type Reported = Result<Vec<crate::artifacts::KeptOutput>, String>;

/// The attempts handed out and not yet over, each with where its watcher learns how it stands.
#[derive(Default)]
struct Watched {
    rows: Mutex<HashMap<i64, watch::Sender<Option<DispatchRecord>>>>,
    /// Whether the poller runs.
    polling: AtomicBool,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents").field("all", &self.all).finish()
    }
}

impl Agents {
    #[must_use]
    pub fn new(store: StoreThreads, all: bool, logs: Option<LogStorage>) -> Self {
        Self {
            store,
            all,
            logs,
            watched: Arc::default(),
            reported: Arc::default(),
        }
    }

    /// The outputs the agent that ran attempt `attempt` of `task` kept and reported, once;
    /// `None` when it reported none (it kept none, or shares the folder with this host).
    #[must_use]
    pub fn take_outputs(&self, run: RunId, task: &str, attempt: u32) -> Option<Reported> {
        self.reported
            .lock()
            .ok()?
            .remove(&(run, task.to_owned(), attempt))
    }

    /// Adds a line of the run's owner (why an attempt timed out, why its outcome could not be
    /// recorded) to the log of an attempt agents run, after what its process wrote; `false`
    /// when logs are not shipped and the line belongs in the log file.
    pub fn note(&self, run: RunId, task: &str, attempt: u32, log_key: &str, text: &str) -> bool {
        let Some(logs) = self.logs.clone() else {
            return false;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let store = self.store.clone();
        let (task, text) = (task.to_owned(), text.to_owned());
        // A key of its own, never one an agent uses: agents' keys start with their dispatch id.
        let key = format!(
            "{log_key}/note-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        runtime.spawn(async move {
            let (objects, put_key, body) = (Arc::clone(&logs.objects), key.clone(), text.clone());
            let put = tokio::task::spawn_blocking(move || objects.put(&put_key, body.as_bytes())).await;
            let recorded = match put {
                Ok(Ok(())) => {
                    let bytes = text.len() as u64;
                    store
                        .call(move |s| {
                            s.add_owner_log_chunk(
                                &vane_store::LogChunkOf { run, task: &task, attempt },
                                &key,
                                bytes,
                            )
                        })
                        .await
                        .map_err(|e| e.to_string())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = recorded {
                warn!(run_id = run.0, %e, line = %text.trim_end(), "Cannot add a line to an agent's task log.");
            }
        });
        true
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
        if !self.watched.polling.swap(true, Ordering::SeqCst) {
            runtime.spawn(poll(self.store.clone(), Arc::downgrade(&self.watched)));
        }
        let (store, watched) = (self.store.clone(), Arc::clone(&self.watched));
        let (switch, logs, reported) =
            (kill.clone(), self.logs.clone(), Arc::clone(&self.reported));
        runtime.spawn(async move {
            let (outcome, outputs) =
                follow(&store, logs.as_ref(), &watched, &job, &placement, &switch).await;
            if let (Some(outputs), Ok(mut reported)) = (outputs, reported.lock()) {
                reported.insert(
                    (placement.run, placement.task.clone(), placement.attempt),
                    outputs,
                );
            }
            let _ = report.send(outcome);
        });
        Ok(Launched {
            pid: 0,
            start_time: None,
            done,
            kill,
        })
    }
}

/// Reads every attempt handed out and not yet over, in one query per round, and tells each
/// watcher how its attempt stands; one query per round whatever the number of attempts, so a
/// wide fan-out does not become a query per attempt and per poll.
async fn poll(store: StoreThreads, watched: Weak<Watched>) {
    loop {
        tokio::time::sleep(POLL).await;
        let Some(watched) = watched.upgrade() else {
            return;
        };
        let ids: Vec<i64> = match watched.rows.lock() {
            Ok(rows) => rows.keys().copied().collect(),
            Err(_) => return,
        };
        if ids.is_empty() {
            continue;
        }
        match store.call(move |s| s.dispatches(&ids)).await {
            Ok(rows) => {
                let Ok(watchers) = watched.rows.lock() else {
                    return;
                };
                for row in rows {
                    if let Some(tx) = watchers.get(&row.id) {
                        tx.send_if_modified(|seen| {
                            let changed = seen.as_ref() != Some(&row);
                            if changed {
                                *seen = Some(row);
                            }
                            changed
                        });
                    }
                }
            }
            Err(e) => warn!(%e, "Could not read the attempts handed to agents; trying again."),
        }
    }
}

async fn follow(
    store: &StoreThreads,
    logs: Option<&LogStorage>,
    watched: &Watched,
    job: &Job,
    placement: &Placement,
    kill: &KillSwitch,
) -> (Outcome, Option<Reported>) {
    let mut described = job_to_json(job);
    described["builtin"] = placement.builtin.into();
    if let Some(logs) = logs {
        described["log_storage"] = logs.url.clone().into();
        described["log_key"] = placement.log_key.clone().into();
        if let Some(restore) = &placement.restore {
            described["restore"] = restore.clone();
            described["content_storage"] = logs.content_url.clone().into();
        }
        if !placement.outputs.is_empty() {
            described["content_storage"] = logs.content_url.clone().into();
            described["outputs"] = placement
                .outputs
                .iter()
                .map(|(name, path)| json!({ "name": name, "path": path }))
                .collect();
        }
    }
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
            let lost = Outcome::Lost {
                error: format!("could not hand the attempt to agents: {e}"),
            };
            return (lost, None);
        }
    };
    let (tx, mut rx) = watch::channel(None);
    if let Ok(mut rows) = watched.rows.lock() {
        rows.insert(id, tx);
    }
    let mut outputs = None;
    let outcome = until_over(store, id, job, kill, &mut rx, &mut outputs).await;
    if let Ok(mut rows) = watched.rows.lock() {
        rows.remove(&id);
    }
    (outcome, outputs)
}

/// The outputs an agent reported with an outcome: kept (`outputs`), or why not
/// (`outputs_error`); `None` when it reported nothing of them.
fn reported_outputs(outcome: &Value) -> Option<Reported> {
    if let Some(why) = outcome["outputs_error"].as_str() {
        return Some(Err(why.to_owned()));
    }
    let listed = outcome["outputs"].as_array()?;
    Some(
        listed
            .iter()
            .map(|o| {
                crate::artifacts::KeptOutput::from_json(o)
                    .ok_or_else(|| format!("the agent reported an output vane cannot read: {o}"))
            })
            .collect(),
    )
}

/// Follows dispatched attempt `id` as the poller reads it until it is over.
async fn until_over(
    store: &StoreThreads,
    id: i64,
    job: &Job,
    kill: &KillSwitch,
    rx: &mut watch::Receiver<Option<DispatchRecord>>,
    outputs: &mut Option<Reported>,
) -> Outcome {
    let mut cancelled = false;
    let mut cancel_deadline = None;
    // Set when the attempt must be looked at again though nothing changed (a reap that did not
    // go through).
    let mut again = false;
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
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
                continue;
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    return Outcome::Lost { error: "vane stopped watching the attempt".into() };
                }
            }
            // A deadline to check, or a reap to try again, even when nothing changes.
            () = tokio::time::sleep(Duration::from_millis(500)), if again || cancel_deadline.is_some() => {}
        }
        again = false;
        let Some(seen) = rx.borrow_and_update().clone() else {
            continue;
        };
        match seen.state {
            DispatchState::Done => {
                if let Some(outcome) = &seen.outcome {
                    put_back_files(job, outcome);
                    *outputs = reported_outputs(outcome);
                }
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
                    // It reported meanwhile, or its row is still locked by a write in flight.
                    Ok(false) => again = true,
                    Err(e) => {
                        warn!(dispatch = id, %e, "Could not reap an attempt of a lost agent; trying again.");
                        again = true;
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

/// The files a task writes for vane to read after it ends (`$VANE_METRICS`, `$VANE_REASON`):
/// an agent that shares no disk with the run's owner points them at files of its own and
/// hands their text back with the outcome.
pub const HANDED_BACK: &[&str] = &["VANE_METRICS", "VANE_REASON"];

/// The most of each handed-back file that travels with an outcome.
pub const HANDED_BACK_MAX: u64 = 1024 * 1024;

/// Writes the files an agent handed back with `outcome` where `job` tells its task to write
/// them, so they are read as if the task had run here.
fn put_back_files(job: &Job, outcome: &Value) {
    let Some(files) = outcome["files"].as_object() else {
        return;
    };
    for (name, text) in files {
        let (Some(text), Some((_, path))) = (
            text.as_str(),
            job.env
                .iter()
                .find(|(k, _)| k == name && HANDED_BACK.contains(&k.as_str())),
        ) else {
            continue;
        };
        let path = std::path::Path::new(path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(path, text));
        if let Err(e) = written {
            warn!(file = %path.display(), %e, "Cannot write a file an agent handed back.");
        }
    }
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
