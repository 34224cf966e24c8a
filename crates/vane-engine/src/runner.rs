//! Carries out a run: records each decision of the [`RunMachine`], then acts on it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};
use vane_dag::{Dag, ParamValue, Var};
use vane_exec::{Executor, Job, KillSwitch, Outcome};
use vane_store::{
    ArtifactLink, AttemptRef, Change, Committed, Direction, Fence, GitState, NewArtifact,
    NewDagVersion, NewRun, Owner, RunId, RunState, Store, StoreError, StoreThreads, TaskState,
    Trigger,
};

use crate::EngineError;
use crate::artifacts::{self, CacheInputs, Hashed, KeptOutput};
use crate::machine::{Action, Finish, Recorded, RunMachine};
use crate::offload::{Offload, offload};

/// What the owner of a run wants from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Run,
    /// Start no new task; leave the run to be resumed once running tasks finish.
    Drain,
    /// Kill running tasks and end the run `failed`; after a `Drain`, kill running tasks but
    /// leave the run resumable.
    Stop(StopReason),
}

/// Why a run is stopped, as its record will say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Ctrl-C, SIGTERM.
    User,
    /// `vane backfills cancel`: the run belongs to the backfill cancelled.
    BackfillCancelled,
    /// A newer tick replaced it (`overlap = "cancel_previous"`).
    Superseded,
    /// `vane stop` (or the API's): the record says who asked and why.
    Requested,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::User => "stopped by the user",
            StopReason::BackfillCancelled => "stopped: its backfill was cancelled",
            StopReason::Superseded => "superseded by a newer tick (overlap = \"cancel_previous\")",
            StopReason::Requested => "stopped by a person",
        }
    }
}

/// Where runs write: logs, and the work folder tasks see as `$VANE_WORK`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub logs: PathBuf,
    pub work: PathBuf,
    /// The directory relative commands and `cwd`s are resolved against.
    pub project_root: PathBuf,
    /// The content store: a copy of every artifact version, by hash.
    pub content: crate::artifacts::ContentStore,
}

/// The DAG and inputs of one run.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub dag: &'a Dag,
    /// The DAG file's text, recorded as the run's DAG version.
    pub source: &'a str,
    pub path: &'a Path,
    pub params: Vec<(String, ParamValue)>,
    pub logical_date: DateTime<Utc>,
    pub trigger: Trigger,
    pub git: Option<GitState>,
    /// The backfill creating the run, if one is.
    pub backfill: Option<i64>,
}

/// Runs DAG runs against a store and an executor.
///
/// Nothing that blocks runs on the thread driving the runs: store calls go to the store's own
/// threads, hashing, copying and `git` to `offload`; each run awaits their answers beside its
/// other events, so one slow database round trip or one huge output stalls no other run.
pub struct Engine<'a> {
    pub store: StoreThreads,
    pub executor: &'a dyn Executor,
    /// Where hashing and copying artifacts, cache restores and `git` run.
    pub offload: &'a dyn Offload,
    pub paths: Paths,
    pub host: String,
    /// How long a killed task gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Pools and the global task limit, shared with every vane process on the store.
    pub limits: vane_dag::SchedulerConfig,
    /// How to start built-in task kinds; `None` fails such tasks with a clear reason.
    pub builtin: Option<BuiltinCommand>,
    /// The lease this process owns runs under.
    pub lease: crate::Lease,
    /// Hands tasks that need other hosts to agents; `None` runs every task here.
    pub agents: Option<crate::remote::Agents>,
}

/// Records a DAG file's content as a version of DAG `dag_id` (or finds it recorded).
///
/// # Errors
/// Fails when the store cannot be written.
pub fn record_version(
    store: &dyn Store,
    dag_id: &str,
    source: &str,
    path: &Path,
) -> Result<vane_store::DagVersionId, EngineError> {
    Ok(store.record_dag_version(&NewDagVersion {
        dag_id,
        content_hash: &content_hash(source),
        path: &path.display().to_string(),
        source,
    })?)
}

/// Hex SHA-256 of a DAG file's text: the identity of a DAG version.
pub fn content_hash(source: &str) -> String {
    artifacts::sha256(source.as_bytes())
}

/// Records the DAG version and a new `queued` run of `spec`, made on `host`, when called with a
/// store: for callers that hold a store of their own and need no engine (`vane trigger`, the
/// API), and for [`Engine::create_run`].
pub fn new_run(
    spec: &RunSpec<'_>,
    host: &str,
) -> impl FnOnce(&dyn Store) -> Result<RunId, EngineError> + Send + 'static {
    let (dag_id, source, path) = (
        spec.dag.id.clone(),
        spec.source.to_owned(),
        spec.path.to_path_buf(),
    );
    let create = new_run_of_version(spec, host);
    move |store| {
        let version = record_version(store, &dag_id, &source, &path)?;
        create(store, version)
    }
}

/// [`new_run`] of a DAG version recorded already: a backfill records its version once, not
/// again for each of its runs (on PostgreSQL, round trips for every run).
pub fn new_run_of_version(
    spec: &RunSpec<'_>,
    host: &str,
) -> impl FnOnce(&dyn Store, vane_store::DagVersionId) -> Result<RunId, EngineError> + Send + 'static
{
    let dag_id = spec.dag.id.clone();
    let tasks: Vec<String> = spec.dag.tasks.iter().map(|t| t.id.clone()).collect();
    let params = serde_json::Value::Object(
        spec.params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    );
    let (logical_date, trigger, backfill) = (spec.logical_date, spec.trigger, spec.backfill);
    let git = spec.git.clone();
    let host = host.to_owned();
    let timezone = spec.dag.timezone.name().to_owned();
    let at = Utc::now();
    move |store, version| {
        let tasks: Vec<&str> = tasks.iter().map(String::as_str).collect();
        Ok(store.create_run(&NewRun {
            dag_id: &dag_id,
            dag_version: version,
            logical_date,
            trigger,
            params,
            git,
            host: &host,
            timezone: &timezone,
            tasks: &tasks,
            at,
            records_tick: trigger == Trigger::Scheduled,
            backfill,
        })?)
    }
}

type Joined = (
    usize,
    u32,
    Result<Outcome, tokio::sync::oneshot::error::RecvError>,
);

impl Engine<'_> {
    /// The built-in task kinds this engine can read: none without a [`BuiltinCommand`].
    pub fn registry(&self) -> vane_dag::Registry {
        self.builtin
            .as_ref()
            .map(|b| b.registry.clone())
            .unwrap_or_default()
    }

    /// Records the DAG version and a new `queued` run.
    ///
    /// # Errors
    /// Fails when the store cannot be written.
    pub async fn create_run(&self, spec: &RunSpec<'_>) -> Result<RunId, EngineError> {
        self.store.call(self.new_run(spec)).await
    }

    /// [`create_run`](Self::create_run) for a caller outside any runtime.
    ///
    /// # Errors
    /// Fails when the store cannot be written.
    pub fn create_run_blocking(&self, spec: &RunSpec<'_>) -> Result<RunId, EngineError> {
        self.store.call_blocking(self.new_run(spec))
    }

    fn new_run(
        &self,
        spec: &RunSpec<'_>,
    ) -> impl FnOnce(&dyn Store) -> Result<RunId, EngineError> + Send + 'static {
        new_run(spec, &self.host)
    }

    /// Records `changes` in one transaction, off the loop, as the owner holding `fence`: refused
    /// once another process adopted the run or this one lost its lease.
    async fn apply(&self, fence: &Fence, changes: Vec<Change>) -> Result<(), EngineError> {
        Ok(self.store.apply_fenced(fence.clone(), changes).await?)
    }

    /// This process as the owner of a run, under lease `lease`.
    pub(crate) fn owner(&self, lease: String) -> Owner {
        // This process's start time does not change: read once, not once per run.
        static START_TIME: OnceLock<Option<u64>> = OnceLock::new();
        let pid = std::process::id();
        Owner {
            host: self.host.clone(),
            pid,
            start_time: *START_TIME.get_or_init(|| vane_exec::process_start_time(pid)),
            lease: Some(lease),
            lease_held: None,
        }
    }

    /// Runs blocking work (a file read, a `git` call) on the engine's offload threads and
    /// returns its result, so the loop goes on meanwhile.
    pub async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        offload(self.offload, f).await
    }

    /// Runs every task of run `run` to the end, or from where its record left off, and records
    /// the run's final state. `control` can ask to [`Control::Drain`] (start nothing new, let
    /// running tasks finish, and leave the run `queued` to be resumed; returns
    /// `RunState::Queued`) or to [`Control::Stop`] (kill running tasks with their process
    /// groups, skip unstarted ones, and end the run `failed`).
    ///
    /// # Errors
    /// Fails when the store cannot be written; processes already started are killed first.
    pub async fn execute(
        &self,
        run: RunId,
        spec: &RunSpec<'_>,
        mut control: watch::Receiver<Control>,
    ) -> Result<RunState, EngineError> {
        let dag = spec.dag;
        let max_active = dag.max_active_tasks.unwrap_or_else(cores);
        // Claiming the run first makes this the only process executing it, and lets recovery
        // after a crash tell an orphaned run from one that a live process executes.
        // Watched from before the lease is taken, so a loss in between is seen too.
        let mut lost = self.lease.lost();
        let mut stops = self.lease.stops();
        let _executing = self.lease.executing();
        // Who stopped the run and why, once someone did: its final reason.
        let mut stopped_by: Option<String> = None;
        let owner = self.owner(self.lease.current(&self.store).await?);
        let (claimant, at) = (owner.clone(), Utc::now());
        // Claimed and read in one call: a run of a backfill starts one round trip sooner.
        let Some((fence, mut record)) = self
            .store
            .call(move |s| match s.claim_run(run, &claimant, at)? {
                Some(fence) => Ok::<_, StoreError>(Some((fence, s.run(run)?))),
                None => Ok(None),
            })
            .await?
        else {
            return Err(EngineError::Claimed(run));
        };
        let fence = &fence;
        // Attempts left running by a vane process that is gone: one that wrote its exit status
        // down ended on its own and is taken up below as if this process had seen it end; any
        // other is closed as lost, as adoption does.
        let mut unwatched = Vec::new();
        let mut closed = Vec::new();
        for (i, t) in dag.tasks.iter().enumerate() {
            let Some(r) = record.tasks.iter().find(|r| r.task_id == t.id) else {
                continue;
            };
            let Some(a) = r.attempts.last().filter(|a| {
                r.state == TaskState::Running && a.state == vane_store::AttemptState::Running
            }) else {
                continue;
            };
            let mark = (a.host == self.host)
                .then(|| vane_exec::exit_mark(std::path::Path::new(&a.log_path)))
                .flatten();
            match mark {
                Some(code) => {
                    // The mark is written as the shell exits: its time is the attempt's end,
                    // not this later moment, so the duration and what follows from it hold.
                    let ended = std::fs::metadata(vane_exec::exit_mark_path(std::path::Path::new(
                        &a.log_path,
                    )))
                    .and_then(|m| m.modified())
                    .ok()
                    .map(DateTime::<Utc>::from);
                    unwatched.push((i, a.attempt, a.pid, a.pid_start_time, code, ended));
                }
                None => closed.extend(crate::adopt::lost_attempt(
                    run,
                    r,
                    a,
                    t.retry.retries,
                    Utc::now(),
                )),
            }
        }
        if !closed.is_empty() {
            self.apply(fence, closed).await?;
            record = self.store.call(move |s| s.run(run)).await?;
        }
        let recorded: Vec<Recorded> = dag
            .tasks
            .iter()
            .map(|t| {
                record
                    .tasks
                    .iter()
                    .find(|r| r.task_id == t.id)
                    .map_or(Recorded::NEW, |r| Recorded {
                        state: r.state,
                        attempts: r.attempts.len() as u32,
                        retry_base: r.retry_base,
                        failed_ago: waiting_for_retry(r)
                            .map(|ended| (Utc::now() - ended).to_std().unwrap_or_default()),
                    })
            })
            .collect();
        let (mut machine, settled) = RunMachine::resume(dag, max_active, &recorded, now());
        let mut procs = Processes {
            slot_retry_at: None,
            running: (0..dag.tasks.len()).map(|_| None).collect(),
            joins: JoinSet::new(),
            sensing: HashMap::new(),
            keeping: JoinSet::new(),
            starting: HashMap::new(),
            preparing: JoinSet::new(),
            restoring: JoinSet::new(),
            ready: Vec::new(),
            unstartable: Vec::new(),
            stopped: HashMap::new(),
            ended_unwatched: HashMap::new(),
            commits: VecDeque::new(),
        };
        let ctx = Ctx {
            engine: self,
            run,
            spec,
            owner: &owner,
            fence,
            cleared: dag
                .tasks
                .iter()
                .map(|t| {
                    record
                        .tasks
                        .iter()
                        .any(|r| r.task_id == t.id && r.retry_base > 0)
                })
                .collect(),
        };
        // A pool the config does not define can never give a slot: say so instead of waiting.
        // The tasks that name one fail, so the failed run has a failed task to show for it
        // (and `task_failed` alerts fire); the others are skipped, as when a run is stopped.
        let undefined: HashMap<String, String> = dag
            .undefined_pools(&self.limits.pools)
            .map(|(task, pool)| {
                let why = format!(
                    "uses pool `{pool}`, which the scheduler config does not define; add `[pools] {pool} = N` to vane.toml"
                );
                (task.id.clone(), why)
            })
            .collect();
        if let Some((task, why)) = dag
            .tasks
            .iter()
            .find_map(|t| undefined.get(&t.id).map(|why| (&t.id, why)))
        {
            let reason = format!("task `{task}` {why}");
            let abandoned = format!("the run did not start: task `{task}` uses an undefined pool");
            let (run_reason, fence) = (reason.clone(), fence.clone());
            self.store
                .call(move |s| {
                    let mut changes = crate::adopt::abandon_changes(s, run, &abandoned)?;
                    for change in &mut changes {
                        match change {
                            Change::Task {
                                task,
                                state,
                                reason,
                                ..
                            } => {
                                if let Some(why) = undefined.get(task.as_str()) {
                                    *state = TaskState::Failed;
                                    *reason = Some(why.clone());
                                }
                            }
                            Change::Run { reason, .. } => *reason = Some(run_reason.clone()),
                            _ => {}
                        }
                    }
                    changes.push(Change::RunOwner { run, owner: None });
                    s.apply_fenced(&fence, &changes)?;
                    Ok::<_, EngineError>(())
                })
                .await?;
            warn!(run_id = run.0, %reason, "Run cannot start.");
            return Ok(RunState::Failed);
        }
        let mut stopping: Option<StopReason> = None;
        let mut draining = false;
        let mut listening = true;
        // A run resumed or cleared met (or missed) its deadlines when it first ran; only those
        // still ahead are armed again.
        let ran_before = record.tasks.iter().any(|t| !t.attempts.is_empty());
        let mut deadlines = sla_deadlines(spec);
        if ran_before {
            let clock = tokio::time::Instant::now();
            deadlines.retain(|d| d.due > clock);
        }

        for (task, attempt, pid, start_time, code, ended) in unwatched {
            info!(run_id = run.0, task = %dag.tasks[task].id, attempt, code, "Recording the end of an attempt that finished while no vane process watched it.");
            machine.ended_unwatched(task);
            if let Some(ended) = ended {
                procs.ended_unwatched.insert(task, ended);
            }
            let (report, done) = tokio::sync::oneshot::channel();
            let _ = report.send(vane_exec::Outcome::Exited { code });
            ctx.watch(
                &mut procs,
                task,
                attempt,
                vane_exec::Launched {
                    pid: pid.unwrap_or_default(),
                    start_time,
                    done,
                    kill: vane_exec::KillSwitch::new(),
                },
            );
        }
        info!(run_id = run.0, dag = %dag.id, "Run started.");
        let mut first = settled;
        first.extend(machine.start(now()));
        let result = async {
            // What the last step left to record with the run's end: one commit, not two.
            let mut last = ctx.carry_out(&mut machine, first, Vec::new(), &mut procs).await?;
            loop {
                let mut ending = std::mem::take(&mut last);
                if machine.drained() {
                    let reason = "the scheduler stopped before the run finished; it resumes when the scheduler starts again";
                    ending.extend([
                        Change::Run {
                            run,
                            state: RunState::Queued,
                            reason: Some(reason.into()),
                            at: Utc::now(),
                        },
                        Change::RunOwner { run, owner: None },
                        Change::ReleaseSlots { run, task: None },
                    ]);
                    self.apply(fence, ending).await?;
                    info!(run_id = run.0, dag = %dag.id, "Run put aside.");
                    return Ok(RunState::Queued);
                }
                if let Some(state) = machine.outcome() {
                    let reason = stopped_by.clone().or_else(|| run_reason(&machine, dag, stopping));
                    ending.extend([
                        Change::Run {
                            run,
                            state,
                            reason: reason.clone(),
                            at: Utc::now(),
                        },
                        Change::RunOwner { run, owner: None },
                        Change::ReleaseSlots { run, task: None },
                    ]);
                    self.apply(fence, ending).await?;
                    if state == RunState::Failed {
                        warn!(run_id = run.0, dag = %dag.id, state = %state, reason = reason.as_deref(), "Run finished.");
                    } else {
                        info!(run_id = run.0, dag = %dag.id, state = %state, reason = reason.as_deref(), "Run finished.");
                    }
                    return Ok(state);
                }
                let wake = machine.next_wake().map(tokio::time::Instant::from_std);
                let sla_wake = deadlines.iter().map(|d| d.due).min();
                let poke = procs.sensing.values().filter_map(|s| s.next_poke).min();
                let slot_poll = procs.slot_retry_at;
                let (actions, changes) = tokio::select! {
                    Some(joined) = procs.joins.join_next() => {
                        // Tasks that ended together are recorded in one transaction.
                        let mut actions = Vec::new();
                        let mut changes = Vec::new();
                        let mut next = Some(joined);
                        while let Some(joined) = next {
                            let (task, attempt, outcome) =
                                joined.map_err(|e| EngineError::Internal(e.to_string()))?;
                            procs.running[task] = None;
                            if let Some(outcome) = ctx.sensed(&mut procs, task, attempt, outcome, &mut changes) {
                                let mut ending = ctx.ending(task, attempt, outcome);
                                ending.ended_at = procs.ended_unwatched.remove(&task);
                                // A person stopped it: final, with who and why, unless it
                                // succeeded before the kill landed.
                                if let Some(why) = procs.stopped.remove(&task)
                                    && ending.finish != Finish::Success
                                {
                                    ending.finish = Finish::Killed;
                                    ending.reason = Some(why);
                                }
                                if ending.finish == Finish::Success && !dag.tasks[task].outputs.is_empty() {
                                    // The attempt succeeds once its outputs are kept: until then the
                                    // machine sees it running, so nothing downstream starts early.
                                    procs.keeping.spawn(ctx.keep_outputs(ending));
                                } else {
                                    let (a, c) = ctx.finished(&mut machine, ending);
                                    actions.extend(a);
                                    changes.extend(c);
                                }
                            }
                            next = procs.joins.try_join_next();
                        }
                        (actions, changes)
                    }
                    Some(prepared) = procs.preparing.join_next() => {
                        let (task, attempt, job, prepared) =
                            prepared.map_err(|e| EngineError::Internal(e.to_string()))?;
                        ctx.prepared(&mut machine, &mut procs, task, attempt, job, prepared?).await?
                    }
                    Some(restored) = procs.restoring.join_next() => {
                        let (task, attempt, job, prepared, restored) =
                            restored.map_err(|e| EngineError::Internal(e.to_string()))?;
                        ctx.restored(&mut machine, &mut procs, (task, attempt, job), prepared, restored).await?
                    }
                    committed = async { (&mut procs.commits.front_mut().expect("guarded").0).await }, if !procs.commits.is_empty() => {
                        committed?;
                        if let Some((_, held)) = procs.commits.pop_front() {
                            ctx.begin(&mut procs, held);
                        }
                        (Vec::new(), Vec::new())
                    }
                    Some(kept) = procs.keeping.join_next() => {
                        let (ending, kept) = kept.map_err(|e| EngineError::Internal(e.to_string()))?;
                        let ending = ctx.outputs_kept(ending, kept).await;
                        ctx.finished(&mut machine, ending)
                    }
                    () = sleep_until(slot_poll), if slot_poll.is_some() => {
                        procs.slot_retry_at = None;
                        (machine.wake(now()), Vec::new())
                    }
                    () = sleep_until(poke), if poke.is_some() => {
                        (Vec::new(), ctx.poke_due(&mut procs))
                    }
                    () = sleep_until(wake), if wake.is_some() => (machine.wake(now()), Vec::new()),
                    () = sleep_until(sla_wake), if sla_wake.is_some() => {
                        (Vec::new(), ctx.missed_slas(&machine, &mut deadlines))
                    }
                    // Another process adopts the run now: stop acting as its owner at once, and
                    // leave no task of it running here.
                    Ok(()) = lost.changed() => {
                        error!(run_id = run.0, "This process lost its lease: killing the run's tasks; another scheduler adopts the run.");
                        return Err(EngineError::Store(StoreError::Fenced {
                            run,
                            why: "this process lost its lease".into(),
                        }));
                    }
                    // A person asked to stop the run (`vane stop`, from any host).
                    Ok(()) = stops.changed(), if stopping.is_none() => {
                        let asked: Vec<Option<String>> = stops
                            .borrow_and_update()
                            .iter()
                            .filter(|(r, _)| *r == run)
                            .map(|(_, task)| task.clone())
                            .collect();
                        for task in asked.iter().flatten() {
                            ctx.stop_task(&mut procs, task).await?;
                        }
                        if asked.iter().any(Option::is_none) {
                            let asked = self.store.call(move |s| s.run(run)).await?.run.stop_request;
                            let why = asked.map_or_else(|| StopReason::Requested.describe().to_owned(), |r| r.describe());
                            warn!(run_id = run.0, reason = %why, "Stopping the run as asked: killing running tasks.");
                            stopped_by = Some(why);
                            stopping = Some(StopReason::Requested);
                            (machine.cancel(), Vec::new())
                        } else {
                            (Vec::new(), Vec::new())
                        }
                    }
                    changed = control.changed(), if listening && stopping.is_none() => {
                        if changed.is_err() {
                            // Nobody can ask anything any more.
                            listening = false;
                        }
                        let wanted = *control.borrow_and_update();
                        match wanted {
                            // The grace period of a drain is over: kill, but keep it resumable.
                            Control::Stop(_) if draining => {
                                warn!(run_id = run.0, "Grace period over: killing running tasks; the run resumes later.");
                                (machine.kill_running(), Vec::new())
                            }
                            Control::Stop(why) => {
                                stopping = Some(why);
                                warn!(run_id = run.0, reason = why.describe(), "Stopping the run: killing running tasks.");
                                (machine.cancel(), Vec::new())
                            }
                            Control::Drain if !draining => {
                                draining = true;
                                info!(run_id = run.0, "Draining the run: starting no new task.");
                                (machine.drain(), Vec::new())
                            }
                            _ => (Vec::new(), Vec::new()),
                        }
                    }
                };
                debug_assert!(ending.is_empty(), "left for a run's end that is not there");
                last = ctx.carry_out(&mut machine, actions, changes, &mut procs).await?;
            }
        }
        .await;
        if result.is_err() {
            // The record can no longer be trusted to follow; leave no process behind.
            for kill in procs.running.iter().flatten() {
                kill.kill();
            }
            while procs.joins.join_next().await.is_some() {}
            // Best effort: the store just failed. Slots left behind are freed by adoption; an
            // owner fenced off frees nothing, as the slots may be its successor's by now.
            let _ = self
                .apply(fence, vec![Change::ReleaseSlots { run, task: None }])
                .await;
        }
        result
    }
}

/// The cores this process may use, the default task limit of a DAG that sets none: read once,
/// as working it out reads the cgroup's CPU quota (three files), which a backfill would pay
/// for each run.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// When the attempt a queued task waits to retry failed, if it failed by itself: an attempt
/// lost with its vane process, or killed by a scheduler's shutdown, is no failure of the task
/// to wait out, and runs again at once.
fn waiting_for_retry(task: &vane_store::TaskRecord) -> Option<DateTime<Utc>> {
    let last = task.attempts.last()?;
    let not_its_own = [crate::adopt::LOST, STOPPED];
    (task.state == TaskState::Queued
        && last.state == vane_store::AttemptState::Failed
        && !last
            .reason
            .as_deref()
            .is_some_and(|r| not_its_own.contains(&r)))
    .then_some(last.ended_at)
    .flatten()
}

/// Why an attempt killed because its run was stopped or put aside ended.
const STOPPED: &str = "killed: the run was stopped";

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn run_reason(machine: &RunMachine, dag: &Dag, stopped: Option<StopReason>) -> Option<String> {
    if let Some(why) = stopped {
        return Some(why.describe().into());
    }
    let failed: Vec<&str> = (0..dag.tasks.len())
        .filter(|&i| machine.state(i) == TaskState::Failed)
        .map(|i| dag.tasks[i].id.as_str())
        .collect();
    match failed.as_slice() {
        [] => None,
        [one] => Some(format!("task `{one}` failed")),
        many => Some(format!("tasks failed: {}", many.join(", "))),
    }
}

/// The pool that stands for the global task limit.
const GLOBAL_POOL: &str = "*";

/// How often a task in line for a pool slot looks again.
const SLOT_POLL: Duration = Duration::from_millis(100);

/// The processes of one run, and its sensors between two checks.
struct Processes {
    /// A task is in line for a pool slot: when to look again.
    slot_retry_at: Option<tokio::time::Instant>,
    running: Vec<Option<KillSwitch>>,
    joins: JoinSet<Joined>,
    sensing: HashMap<usize, Sensing>,
    /// Attempts that succeeded whose outputs are being hashed and copied off the loop.
    keeping: JoinSet<(Ending, Result<Vec<KeptOutput>, String>)>,
    /// Attempts started but with no process yet: their inputs are being hashed, their cache
    /// looked up or restored, off the loop. Whether the run stopped them meanwhile.
    starting: HashMap<usize, bool>,
    preparing: JoinSet<Preparing>,
    restoring: JoinSet<Restoring>,
    /// Attempts whose preparation came back: to launch, or to fail and why.
    ready: Vec<(usize, u32, Job)>,
    unstartable: Vec<(usize, u32, String)>,
    /// Tasks a person stopped (`vane stop --task`), with who and why, until their attempt ends.
    stopped: HashMap<usize, String>,
    /// When attempts that ended while no vane watched them really ended, by task.
    ended_unwatched: HashMap<usize, DateTime<Utc>>,
    /// Commits in flight, oldest first, with the held processes each lets begin.
    commits: VecDeque<(Committed, Vec<Held>)>,
}

/// A process spawned held: task, attempt, the process, and what lets its command begin.
type Held = (usize, u32, vane_exec::Launched, vane_exec::Hold);

/// A prepared attempt: task, attempt, its job, and what its preparation found.
type Preparing = (
    usize,
    u32,
    Job,
    Result<Result<Prepared, String>, EngineError>,
);

/// A cache hit being put back: task, attempt, job, the hit, and each output restored where.
type Restoring = (
    usize,
    u32,
    Job,
    Prepared,
    Result<Vec<(ArtifactLink, String)>, String>,
);

impl Processes {
    /// Watches a process just started for `task`: its kill switch, and its end as an event.
    fn watch(&mut self, task: usize, attempt: u32, launched: vane_exec::Launched) {
        self.running[task] = Some(launched.kill);
        let done = launched.done;
        self.joins.spawn(async move { (task, attempt, done.await) });
    }
}

/// A sensor's wait: one attempt, many checks.
struct Sensing {
    attempt: u32,
    started: tokio::time::Instant,
    checks: u32,
    /// When the next check runs; `None` while one runs.
    next_poke: Option<tokio::time::Instant>,
}

/// An SLA deadline of the run (`task: None`) or of one task.
struct Deadline {
    task: Option<usize>,
    at: DateTime<Utc>,
    /// `at` on the runtime's clock, which timers (and tests on virtual time) follow.
    due: tokio::time::Instant,
}

/// The SLA deadlines of a scheduled run. Manual runs and backfills of past dates have none:
/// they would all miss at once.
fn sla_deadlines(spec: &RunSpec<'_>) -> Vec<Deadline> {
    if spec.trigger != Trigger::Scheduled {
        return Vec::new();
    }
    let (wall, clock) = (Utc::now(), tokio::time::Instant::now());
    let deadline = |task, sla: Option<Duration>| {
        let at = spec.logical_date + chrono::Duration::from_std(sla?).ok()?;
        let due = clock + (at - wall).to_std().unwrap_or_default();
        Some(Deadline { task, at, due })
    };
    let tasks = spec.dag.tasks.iter().enumerate();
    deadline(None, spec.dag.cadence.sla)
        .into_iter()
        .chain(tasks.filter_map(|(i, t)| deadline(Some(i), t.sla)))
        .collect()
}

struct Ctx<'e, 's> {
    engine: &'e Engine<'e>,
    run: RunId,
    spec: &'s RunSpec<'s>,
    owner: &'s Owner,
    /// Carried by every write about the run: see [`vane_store::Fence`].
    fence: &'s Fence,
    /// Per task: cleared since it first ran, so it runs again as `clear`.
    cleared: Vec<bool>,
}

impl Ctx<'_, '_> {
    /// Kills task `task` as a person asked (`vane stop --task`), once: its process group goes,
    /// and its attempt ends failed with who and why, never retried.
    async fn stop_task(&self, procs: &mut Processes, task: &str) -> Result<(), EngineError> {
        let Some(index) = self.spec.dag.task_index(task) else {
            return Ok(());
        };
        if procs.stopped.contains_key(&index) {
            return Ok(());
        }
        let Some(kill) = &procs.running[index] else {
            return Ok(());
        };
        let (run, name) = (self.run, task.to_owned());
        let asked = self
            .engine
            .store
            .call(move |s| s.task_stop(run, &name))
            .await?;
        let why = asked.map_or_else(|| "stopped by a person".to_owned(), |r| r.describe());
        warn!(run_id = run.0, task, reason = %why, "Stopping the task as asked: killing its process group.");
        kill.kill();
        procs.stopped.insert(index, why);
        Ok(())
    }

    fn uses_slots(&self) -> bool {
        let limits = &self.engine.limits;
        limits.max_active_tasks.is_some() || !limits.pools.is_empty()
    }

    /// Takes the slots task `task` needs (the global limit's, its pool's) or puts it in line.
    async fn slots_granted(&self, task: usize) -> Result<bool, EngineError> {
        let limits = &self.engine.limits;
        let spec = &self.spec.dag.tasks[task];
        let mut pools: Vec<(String, usize)> = Vec::new();
        if let Some(global) = limits.max_active_tasks {
            pools.push((GLOBAL_POOL.to_owned(), global));
        }
        if let Some(pool) = &spec.pool {
            pools.push((pool.clone(), limits.pools.get(pool).copied().unwrap_or(0)));
        }
        if pools.is_empty() {
            return Ok(true);
        }
        let host = self.engine.host.clone();
        let (run, id, holder) = (self.run, spec.id.clone(), self.owner.clone());
        let class = i64::from(self.spec.trigger != Trigger::Backfill);
        let (priority, at) = (spec.priority, Utc::now());
        let granted = self
            .engine
            .store
            .call(move |s| {
                s.request_slots(
                    &vane_store::SlotRequest {
                        pools: &pools,
                        run,
                        task: &id,
                        class,
                        priority,
                        holder: &holder,
                        at,
                    },
                    &|owner| crate::owner_alive(owner, &host),
                )
            })
            .await?;
        if !granted {
            debug!(run_id = self.run.0, task = %spec.id, "Waiting for a slot.");
        }
        Ok(granted)
    }

    /// Handles a sensor's check that ended: `None` when the sensor goes on waiting, else the
    /// outcome that ends its attempt (the wait is recorded as the metric `wait_seconds`).
    /// Other tasks' outcomes pass through.
    fn sensed(
        &self,
        procs: &mut Processes,
        task: usize,
        attempt: u32,
        outcome: Result<Outcome, tokio::sync::oneshot::error::RecvError>,
        changes: &mut Vec<Change>,
    ) -> Option<Result<Outcome, tokio::sync::oneshot::error::RecvError>> {
        let spec = &self.spec.dag.tasks[task];
        let (Some(interval), Some(sensing)) = (spec.sensor, procs.sensing.get_mut(&task)) else {
            return Some(outcome);
        };
        sensing.checks += 1;
        let waited = sensing.started.elapsed();
        let not_yet = matches!(outcome, Ok(Outcome::Exited { code }) if code != 0)
            || matches!(outcome, Ok(Outcome::TimedOut));
        let limit = spec.timeout.unwrap_or(Duration::MAX);
        if not_yet && waited + interval < limit {
            sensing.next_poke = Some(tokio::time::Instant::now() + interval);
            return None;
        }
        let checks = sensing.checks;
        procs.sensing.remove(&task);
        info!(run_id = self.run.0, task = %spec.id, attempt, checks, waited_secs = waited.as_secs_f64(), met = !not_yet, "Sensor done.");
        changes.push(Change::Metric {
            run: self.run,
            task: spec.id.clone(),
            attempt,
            name: "wait_seconds".into(),
            value: waited.as_secs_f64(),
            at: Utc::now(),
        });
        Some(if not_yet {
            Ok(Outcome::TimedOut)
        } else {
            outcome
        })
    }

    /// Runs the checks of the sensors whose next check is due; returns what to record.
    fn poke_due(&self, procs: &mut Processes) -> Vec<Change> {
        let clock = tokio::time::Instant::now();
        let mut changes = Vec::new();
        let due: Vec<(usize, u32)> = procs
            .sensing
            .iter()
            .filter(|(_, s)| s.next_poke.is_some_and(|at| at <= clock))
            .map(|(&task, s)| (task, s.attempt))
            .collect();
        for (task, attempt) in due {
            if let Some(sensing) = procs.sensing.get_mut(&task) {
                sensing.next_poke = None;
            }
            let poke = procs.sensing.get(&task).map_or(0, |s| s.checks + 1);
            let launched = self.launch(task, attempt, poke, self.job(task, attempt));
            match launched {
                Ok((launched, remote)) => {
                    // Each check's pid is recorded like a task's, so recovery can find it.
                    if !remote {
                        changes.push(Change::AttemptProcess {
                            run: self.run,
                            task: self.spec.dag.tasks[task].id.clone(),
                            attempt,
                            pid: launched.pid,
                            pid_start_time: launched.start_time,
                        });
                    }
                    procs.watch(task, attempt, launched);
                }
                Err(error) => {
                    // A check that cannot start counts as not met; the next one may.
                    warn!(run_id = self.run.0, task = %self.spec.dag.tasks[task].id, %error, "Sensor check could not start.");
                    let interval = self.spec.dag.tasks[task].sensor.unwrap_or_default();
                    if let Some(sensing) = procs.sensing.get_mut(&task) {
                        sensing.next_poke = Some(clock + interval);
                    }
                }
            }
        }
        changes
    }

    /// Deadlines that passed: each one whose run or task has not finished is a miss. Either
    /// way the deadline is settled.
    fn missed_slas(&self, machine: &RunMachine, deadlines: &mut Vec<Deadline>) -> Vec<Change> {
        let clock = tokio::time::Instant::now();
        let mut changes = Vec::new();
        deadlines.retain(|&Deadline { task, at: deadline, due }| {
            if due > clock {
                return true;
            }
            let finished = match task {
                Some(i) => machine.state(i).is_finished(),
                None => machine.outcome().is_some(),
            };
            if !finished {
                let name = task.map(|i| self.spec.dag.tasks[i].id.clone());
                warn!(run_id = self.run.0, task = name.as_deref(), deadline = %deadline.to_rfc3339(), "SLA missed.");
                changes.push(Change::SlaMiss {
                    run: self.run,
                    task: name,
                    deadline,
                    at: Utc::now(),
                });
            }
            false
        });
        changes
    }

    /// How an attempt whose process ended is to be recorded, before its outputs are kept.
    fn ending(
        &self,
        task: usize,
        attempt: u32,
        outcome: Result<Outcome, tokio::sync::oneshot::error::RecvError>,
    ) -> Ending {
        let (finish, exit_code, signal, reason) = match outcome {
            Ok(Outcome::Exited { code }) => {
                (
                    match code {
                        0 => Finish::Success,
                        VERDICT_EXIT => Finish::Verdict,
                        SKIP_EXIT => Finish::Skipped,
                        _ => Finish::Failed,
                    },
                    Some(code),
                    None,
                    match code {
                        0 => None,
                        SKIP_EXIT => Some(self.stated_reason(task, attempt).unwrap_or_else(|| {
                            format!("the task skipped itself (exit {SKIP_EXIT})")
                        })),
                        _ => self.stated_reason(task, attempt),
                    },
                )
            }
            Ok(Outcome::Signaled { signal }) => (
                Finish::Failed,
                None,
                Some(signal),
                Some(Outcome::Signaled { signal }.describe()),
            ),
            Ok(Outcome::TimedOut) => {
                let limit = self.spec.dag.tasks[task]
                    .timeout
                    .map(vane_dag::format_duration)
                    .unwrap_or_default();
                // The log is where a person looks first: it ends saying why it stopped.
                self.append_log(
                        task,
                        attempt,
                        &format!(
                            "\nvane: killed after its timeout of {limit}, with its whole process group\n"
                        ),
                    );
                (
                    Finish::Failed,
                    None,
                    None,
                    Some(format!("timed out after {limit}")),
                )
            }
            Ok(Outcome::Cancelled) => (Finish::Stopped, None, None, Some(STOPPED.to_owned())),
            Ok(other) => (Finish::Failed, None, None, Some(other.describe())),
            Err(_) => (
                Finish::Failed,
                None,
                None,
                Some("the executor lost track of the process".to_owned()),
            ),
        };
        Ending {
            task,
            attempt,
            finish,
            exit_code,
            signal,
            reason,
            ended_at: None,
        }
    }

    /// Records how an attempt ended and returns what the machine decides next.
    fn finished(&self, machine: &mut RunMachine, ending: Ending) -> (Vec<Action>, Vec<Change>) {
        let Ending {
            task,
            attempt,
            finish,
            exit_code,
            signal,
            reason,
            ended_at,
        } = ending;
        let id = &self.spec.dag.tasks[task].id;
        // A failure is a warning, so that an operator who keeps only warnings (`VANE_LOG=warn`,
        // a log pipeline's alert on level) still sees it; a stop someone asked for is not one.
        // tracing takes a level known at compile time only: one line, written at either.
        macro_rules! attempt_finished {
            ($level:ident) => {
                $level!(
                    run_id = self.run.0,
                    task = %id,
                    attempt,
                    exit_code,
                    signal,
                    reason = reason.as_deref(),
                    "Task attempt finished."
                )
            };
        }
        if matches!(finish, Finish::Failed | Finish::Verdict) {
            attempt_finished!(warn);
        } else {
            attempt_finished!(info);
        }
        let release = Change::ReleaseSlots {
            run: self.run,
            task: Some(id.clone()),
        };
        let change = Change::AttemptFinished {
            run: self.run,
            task: id.clone(),
            attempt,
            // A task that skipped itself did not fail: its attempt ended as it meant to.
            success: matches!(finish, Finish::Success | Finish::Skipped),
            exit_code,
            signal,
            reason,
            at: ended_at.unwrap_or_else(Utc::now),
        };
        let mut changes = vec![change];
        changes.extend(self.reported_metrics(task, attempt));
        if self.uses_slots() {
            changes.push(release);
        }
        (machine.finished(task, finish, now()), changes)
    }

    /// Why a failed attempt says it failed: the first line it wrote to `$VANE_REASON`.
    fn stated_reason(&self, task: usize, attempt: u32) -> Option<String> {
        let text = std::fs::read_to_string(reason_path(&self.log_path(task, attempt))).ok()?;
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.chars().take(1000).collect())
    }

    /// The metrics an attempt wrote to `$VANE_METRICS`. Lines that cannot be read are named in
    /// the attempt's log, where a person looks; they do not fail a task that succeeded.
    fn reported_metrics(&self, task: usize, attempt: u32) -> Vec<Change> {
        let id = &self.spec.dag.tasks[task].id;
        let log_path =
            self.engine
                .paths
                .logs
                .join(log_name(&self.spec.dag.id, self.run, id, attempt));
        let report = crate::metrics::read(&metrics_path(&log_path));
        if !report.problems.is_empty() {
            warn!(run_id = self.run.0, task = %id, attempt, problems = report.problems.len(), "Metrics lines ignored.");
            let text: String = report
                .problems
                .iter()
                .map(|p| format!("vane: $VANE_METRICS {p}; ignored\n"))
                .collect();
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .open(&log_path)
                .and_then(|mut log| std::io::Write::write_all(&mut log, text.as_bytes()));
            if let Err(error) = appended {
                warn!(run_id = self.run.0, task = %id, %error, "Cannot write to the task log.");
            }
        }
        let at = Utc::now();
        report
            .metrics
            .into_iter()
            .map(|(name, value)| Change::Metric {
                run: self.run,
                task: id.clone(),
                attempt,
                name,
                value,
                at,
            })
            .collect()
    }

    /// Records `changes` and the machine's `actions` in one transaction, then launches the
    /// processes. A launch that fails is recorded and fed back to the machine, until nothing
    /// is left to do. When that leaves the run over (finished, or drained), the last changes
    /// are returned unrecorded, for the caller to record with the run's end.
    async fn carry_out(
        &self,
        machine: &mut RunMachine,
        mut actions: Vec<Action>,
        mut changes: Vec<Change>,
        procs: &mut Processes,
    ) -> Result<Vec<Change>, EngineError> {
        loop {
            // Starts an event of the run decided: inputs hashed, cache looked up or restored.
            let mut launches: Vec<_> = procs.ready.drain(..).collect();
            let mut failed_launches: Vec<_> = procs.unstartable.drain(..).collect();
            let mut stopped_sensors = Vec::new();
            // Attempts of tasks with inputs or a cache key: prepared off the loop once their
            // start is recorded.
            let mut to_prepare = Vec::new();
            let mut held = Vec::new();
            for action in actions.drain(..) {
                match action {
                    Action::SetState {
                        task,
                        state,
                        reason,
                    } => changes.push(Change::Task {
                        run: self.run,
                        task: self.spec.dag.tasks[task].id.clone(),
                        state,
                        reason,
                        at: Utc::now(),
                    }),
                    Action::Kill { task } => {
                        let held = procs
                            .commits
                            .iter()
                            .flat_map(|(_, held)| held)
                            .find(|(t, ..)| *t == task);
                        if let Some((_, _, launched, _)) = held {
                            // Its commit is in flight: it ends before its command begins, and
                            // reports as killed once watched.
                            launched.kill.kill();
                        } else if let Some(kill) = &procs.running[task] {
                            kill.kill();
                        } else if let Some(sensing) = procs.sensing.remove(&task) {
                            // Waiting between two checks: nothing to kill, it just stops.
                            stopped_sensors.push((task, sensing.attempt));
                        } else if let Some(stopped) = procs.starting.get_mut(&task) {
                            // No process yet: it stops when its preparation comes back.
                            *stopped = true;
                        }
                    }
                    Action::Launch { task, attempt } => {
                        if !self.slots_granted(task).await? {
                            machine.unlaunch(task);
                            procs
                                .slot_retry_at
                                .get_or_insert_with(|| tokio::time::Instant::now() + SLOT_POLL);
                            continue;
                        }
                        let job = self.job(task, attempt);
                        let spec = &self.spec.dag.tasks[task];
                        let started = Change::AttemptStarted {
                            run: self.run,
                            task: spec.id.clone(),
                            attempt,
                            command: job.command.clone(),
                            host: self.engine.host.clone(),
                            log_path: job.log_path.display().to_string(),
                            at: Utc::now(),
                        };
                        let runnable = spec.builtin.is_none() || self.engine.builtin.is_some();
                        if runnable
                            && spec.inputs.is_empty()
                            && !spec.cache
                            && spec.runs_on.is_none()
                            && !self.handed_to_agents(task)
                        {
                            // Started held below: its start and pid are recorded together.
                            held.push((task, attempt, job, started));
                            continue;
                        }
                        changes.push(started);
                        if !runnable {
                            let reason = format!(
                                "task `{}` is a built-in kind that this vane process cannot start: it was not given the vane executable",
                                spec.id
                            );
                            self.append_log(task, attempt, &format!("vane: {reason}\n"));
                            failed_launches.push((task, attempt, reason));
                        } else if spec.inputs.is_empty() && !spec.cache {
                            // Tasks that declare no inputs and no cache (most) start at once.
                            launches.push((task, attempt, job));
                        } else {
                            to_prepare.push((task, attempt, job));
                        }
                    }
                }
            }
            // Tasks this process runs itself are spawned held: the process exists, the command
            // has not begun. Its start and pid go into the batch below, and it begins once that
            // batch is durable, so the process starting overlaps the commit, and no command
            // runs that a crash could leave unrecorded (a hold dropped by a crash ends it).
            let mut releases = Vec::new();
            for (task, attempt, job, started) in held {
                changes.push(started);
                let log_path = job.log_path.clone();
                match self.engine.executor.launch_held(job) {
                    Ok((launched, hold)) => {
                        changes.push(Change::AttemptProcess {
                            run: self.run,
                            task: self.spec.dag.tasks[task].id.clone(),
                            attempt,
                            pid: launched.pid,
                            pid_start_time: launched.start_time,
                        });
                        releases.push((task, attempt, launched, hold));
                    }
                    Err(error) => {
                        failed_launches.push(self.could_not_start(task, attempt, &log_path, &error))
                    }
                }
            }
            let starts = !to_prepare.is_empty() || !launches.is_empty();
            if !starts && !releases.is_empty() {
                // Nothing else waits for this batch: the loop goes on while it commits, and
                // what arises meanwhile goes in the next commit (group commit). The held
                // processes begin when it is durable.
                let committing = self
                    .engine
                    .store
                    .apply_fenced(self.fence.clone(), std::mem::take(&mut changes));
                procs.commits.push_back((committing, releases));
            } else {
                // What starts below needs its start durable first. With nothing to start, the
                // changes wait for the end of this step: one commit with what follows, or with
                // the run's end when the run ends with them.
                if starts && !changes.is_empty() {
                    self.engine
                        .apply(self.fence, std::mem::take(&mut changes))
                        .await?;
                }
                // Every earlier commit is durable too: they commit in order.
                self.begin_committed(procs)?;
                self.begin(procs, releases);
            }
            for (task, attempt, job) in to_prepare {
                procs.starting.insert(task, false);
                procs.preparing.spawn(self.prepare(task, attempt, job));
            }
            for (task, attempt, job) in launches {
                let id = &self.spec.dag.tasks[task].id;
                let log_path = job.log_path.clone();
                match self.launch(task, attempt, 0, job) {
                    Ok((launched, remote)) => {
                        if remote {
                            info!(run_id = self.run.0, task = %id, attempt, "Task handed to agents.");
                        } else {
                            info!(run_id = self.run.0, task = %id, attempt, pid = launched.pid, "Task started.");
                            changes.push(Change::AttemptProcess {
                                run: self.run,
                                task: id.clone(),
                                attempt,
                                pid: launched.pid,
                                pid_start_time: launched.start_time,
                            });
                        }
                        self.watch(procs, task, attempt, launched);
                    }
                    Err(error) => {
                        failed_launches
                            .push(self.could_not_start(task, attempt, &log_path, &error));
                    }
                }
            }
            for (task, attempt) in stopped_sensors {
                let ending = self.ending(task, attempt, Ok(Outcome::Cancelled));
                let (a, c) = self.finished(machine, ending);
                changes.extend(c);
                actions.extend(a);
            }
            for (task, attempt, reason) in failed_launches {
                if self.uses_slots() {
                    changes.push(Change::ReleaseSlots {
                        run: self.run,
                        task: Some(self.spec.dag.tasks[task].id.clone()),
                    });
                }
                changes.push(Change::AttemptFinished {
                    run: self.run,
                    task: self.spec.dag.tasks[task].id.clone(),
                    attempt,
                    success: false,
                    exit_code: None,
                    signal: None,
                    reason: Some(reason),
                    at: Utc::now(),
                });
                actions.extend(machine.finished(task, Finish::Failed, now()));
            }
            if actions.is_empty() {
                if machine.outcome().is_some() || machine.drained() {
                    // The run ends now: these go into the commit that records its end.
                    return Ok(changes);
                }
                if !changes.is_empty() {
                    self.engine.apply(self.fence, changes).await?;
                }
                return Ok(Vec::new());
            }
        }
    }

    /// Lets held processes whose start is durable begin their commands, and watches them.
    fn begin(&self, procs: &mut Processes, held: Vec<Held>) {
        for (task, attempt, launched, hold) in held {
            hold.release();
            info!(run_id = self.run.0, task = %self.spec.dag.tasks[task].id, attempt, pid = launched.pid, "Task started.");
            self.watch(procs, task, attempt, launched);
        }
    }

    /// [`begin`](Self::begin) for the commits in flight that are done.
    fn begin_committed(&self, procs: &mut Processes) -> Result<(), EngineError> {
        while let Some((committing, _)) = procs.commits.front_mut() {
            match committing.try_done() {
                None => break,
                Some(result) => result?,
            }
            if let Some((_, held)) = procs.commits.pop_front() {
                self.begin(procs, held);
            }
        }
        Ok(())
    }

    /// Watches a started attempt's process, and a sensor's checks.
    fn watch(
        &self,
        procs: &mut Processes,
        task: usize,
        attempt: u32,
        launched: vane_exec::Launched,
    ) {
        procs.watch(task, attempt, launched);
        if self.spec.dag.tasks[task].sensor.is_some() {
            procs.sensing.insert(
                task,
                Sensing {
                    attempt,
                    started: tokio::time::Instant::now(),
                    checks: 0,
                    next_poke: None,
                },
            );
        }
    }

    /// An attempt whose process could not start, with the reason also in its log, where a
    /// person looks first.
    fn could_not_start(
        &self,
        task: usize,
        attempt: u32,
        log_path: &Path,
        error: &vane_exec::ExecError,
    ) -> (usize, u32, String) {
        let id = &self.spec.dag.tasks[task].id;
        warn!(run_id = self.run.0, task = %id, attempt, %error, "Task could not start.");
        if let Some(dir) = log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(
            log_path,
            format!("vane: could not start the task: {error}\n"),
        );
        (task, attempt, error.to_string())
    }

    /// Whether `task` goes to agents rather than running here.
    fn handed_to_agents(&self, task: usize) -> bool {
        let spec = &self.spec.dag.tasks[task];
        self.engine
            .agents
            .as_ref()
            .is_some_and(|agents| agents.needs(spec.runs_on.as_ref()).is_some())
    }

    /// Starts an attempt's process here, or hands it to agents when the task needs one
    /// (`runs_on`, or `[scheduler] agents = "all"`); true when handed out. `poke` tells a
    /// sensor's checks apart.
    fn launch(
        &self,
        task: usize,
        attempt: u32,
        poke: u32,
        job: Job,
    ) -> Result<(vane_exec::Launched, bool), vane_exec::ExecError> {
        let spec = &self.spec.dag.tasks[task];
        let needs = self
            .engine
            .agents
            .as_ref()
            .and_then(|agents| Some((agents, agents.needs(spec.runs_on.as_ref())?)));
        let Some((agents, needs)) = needs else {
            return self.launch_here(spec, job);
        };
        // An agent runs in a folder of its own choosing: name the project's.
        let mut job = job;
        if job.cwd.is_none() {
            job.cwd = Some(self.engine.paths.project_root.clone());
        }
        let placement = crate::remote::Placement {
            run: self.run,
            task: spec.id.clone(),
            attempt,
            poke,
            needs,
            priority: spec.priority,
            builtin: spec.builtin.is_some(),
            log_key: self.log_key(task, attempt),
            restore: None,
            outputs: {
                let vars = self.vars(task, self.run, attempt);
                spec.outputs
                    .iter()
                    .map(|o| (o.name.clone(), self.artifact_path(&vars, o)))
                    .collect()
            },
        };
        Ok((agents.launch(job, placement)?, true))
    }

    /// Starts a process of a task that needs no agent, on this host.
    fn launch_here(
        &self,
        spec: &vane_dag::Task,
        job: Job,
    ) -> Result<(vane_exec::Launched, bool), vane_exec::ExecError> {
        if spec.runs_on.is_some() {
            return Err(vane_exec::ExecError::Placement(
                "the task has `runs_on`, but this vane process hands no task to agents".into(),
            ));
        }
        Ok((self.engine.executor.launch(job)?, false))
    }

    fn job(&self, task_index: usize, attempt: u32) -> Job {
        let spec = self.spec;
        let dag = spec.dag;
        let task = &dag.tasks[task_index];
        let vars = self.vars(task_index, self.run, attempt);
        let lookup = |var: &Var| vars.lookup(var);
        let log_path = self
            .engine
            .paths
            .logs
            .join(log_name(&dag.id, self.run, &task.id, attempt));
        let mut env = vars.env();
        env.push((
            "VANE_METRICS".into(),
            metrics_path(&log_path).display().to_string(),
        ));
        env.push((
            "VANE_REASON".into(),
            reason_path(&log_path).display().to_string(),
        ));
        env.push(("VANE_VERDICT_EXIT".into(), VERDICT_EXIT.to_string()));
        env.push(("VANE_SKIP_EXIT".into(), SKIP_EXIT.to_string()));
        env.extend(
            task.env
                .iter()
                .map(|(name, value)| (name.clone(), value.render_plain(lookup))),
        );
        let command = match (&task.builtin, &self.engine.builtin) {
            (None, _) => task.command.render_shell(lookup),
            (Some(_), Some(builtin)) => {
                env.extend(builtin.env.iter().cloned());
                format!(
                    "{} exec-builtin",
                    vane_dag::shell_quote(&builtin.exe.display().to_string())
                )
            }
            // Never launched: carry_out fails the attempt first, saying why.
            (Some(_), None) => String::new(),
        };
        let root = &self.engine.paths.project_root;
        // Leaving cwd unset when it is the project root we already run in lets the standard
        // library spawn with posix_spawn instead of fork + chdir + exec.
        let cwd = match &task.cwd {
            Some(cwd) => Some(root.join(cwd.render_plain(lookup))),
            None if std::env::current_dir().is_ok_and(|here| &here == root) => None,
            None => Some(root.clone()),
        };
        Job {
            command,
            env,
            cwd,
            log_path,
            // A sensor's `timeout` bounds its whole wait; each check gets one poke interval.
            timeout: task.sensor.or(task.timeout),
            kill_grace: self.engine.kill_grace,
        }
    }
}

/// What an attempt of a task with inputs or `cache = true` found when it started.
struct Prepared {
    /// Each declared input: name, where it was read, its hash.
    inputs: Vec<(String, PathBuf, Hashed)>,
    key: Option<String>,
    /// A successful earlier attempt with the same key whose outputs are all in the content
    /// store, with those outputs.
    hit: Option<(AttemptRef, Vec<ArtifactLink>)>,
}

/// Writes `text` at the end of an attempt's log, creating it. Best effort: the same words
/// are recorded as the attempt's reason or in vane's own log.
fn write_log(log_path: &Path, text: &str) {
    if let Some(dir) = log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .and_then(|mut log| std::io::Write::write_all(&mut log, text.as_bytes()));
    if let Err(error) = appended {
        warn!(log = %log_path.display(), %error, "Cannot write to the task log.");
    }
}

/// Artifacts and the cache. Hashing, copying and restoring files run off the loop (on the
/// engine's offload threads) and record through the store's threads, so a multi-gigabyte
/// model holds up only the attempt it belongs to.
impl Ctx<'_, '_> {
    fn vars(&self, task: usize, run: RunId, attempt: u32) -> TemplateVars {
        let spec = self.spec;
        let of = AttemptOf {
            run,
            task: &spec.dag.tasks[task].id,
            attempt,
            started_by: StartedBy::of(spec.trigger, self.cleared[task]),
        };
        TemplateVars::new(
            spec.dag,
            &spec.params,
            spec.logical_date,
            &of,
            &self.engine.paths.work,
        )
    }

    fn log_path(&self, task: usize, attempt: u32) -> PathBuf {
        let id = &self.spec.dag.tasks[task].id;
        self.engine
            .paths
            .logs
            .join(log_name(&self.spec.dag.id, self.run, id, attempt))
    }

    /// Where agents ship this attempt's log chunks, below the log storage.
    fn log_key(&self, task: usize, attempt: u32) -> String {
        let id = &self.spec.dag.tasks[task].id;
        format!("{}/run-{}/{id}.{attempt}", self.spec.dag.id, self.run)
    }

    /// Adds vane's own line to an attempt's log: in the log storage after what an agent
    /// shipped, when agents run the task; in the log file otherwise.
    fn append_log(&self, task: usize, attempt: u32, text: &str) {
        let spec = &self.spec.dag.tasks[task];
        if let Some(agents) = &self.engine.agents
            && agents.needs(spec.runs_on.as_ref()).is_some()
            && agents.note(
                self.run,
                &spec.id,
                attempt,
                &self.log_key(task, attempt),
                text,
            )
        {
            return;
        }
        write_log(&self.log_path(task, attempt), text);
    }

    fn artifact_path(&self, vars: &TemplateVars, artifact: &vane_dag::ArtifactRef) -> PathBuf {
        let rendered = artifact.path.render_plain(|v| vars.lookup(v));
        self.engine.paths.project_root.join(rendered)
    }

    fn attempt_ref(&self, task: usize, attempt: u32) -> AttemptRef {
        AttemptRef {
            run: self.run,
            task: self.spec.dag.tasks[task].id.clone(),
            attempt,
        }
    }

    /// Hashes the inputs of an attempt whose start is recorded and, for a cached task,
    /// computes its key and looks for an attempt to reuse, all off the loop; the future owns
    /// what it needs, so it waits beside the run's other events. `Ok(Err(reason))` when an
    /// input cannot be read.
    fn prepare(
        &self,
        task: usize,
        attempt: u32,
        job: Job,
    ) -> impl std::future::Future<Output = Preparing> + Send + 'static {
        let spec = &self.spec.dag.tasks[task];
        let vars = self.vars(task, self.run, attempt);
        let declared: Vec<(String, PathBuf)> = spec
            .inputs
            .iter()
            .map(|input| (input.name.clone(), self.artifact_path(&vars, input)))
            .collect();
        // Most tasks declare no inputs: they skip the trip to another thread and back. An input
        // missing here is `None`: an agent's upstream task may have written it on its own host.
        let hashing = (!declared.is_empty()).then(|| {
            offload(self.engine.offload, move || {
                let mut inputs = Vec::with_capacity(declared.len());
                for (name, path) in declared {
                    match artifacts::hash_path(&path) {
                        Ok(hashed) => inputs.push((name, path, Some(hashed))),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            inputs.push((name, path, None));
                        }
                        Err(e) => {
                            return Err(format!(
                                "declared input `{name}` cannot be read at {}: {e}",
                                path.display()
                            ));
                        }
                    }
                }
                Ok(inputs)
            })
        });
        let remote = self
            .engine
            .agents
            .as_ref()
            .is_some_and(|a| a.needs(spec.runs_on.as_ref()).is_some());
        let run = self.run;
        let cache = spec.cache.then(|| self.cache_inputs(task));
        let store = self.engine.store.clone();
        let content = self.engine.paths.content.clone();
        async move {
            let prepared = async {
                let hashed = match hashing {
                    Some(hashing) => hashing.await,
                    None => Ok(Vec::new()),
                };
                let found = match hashed {
                    Ok(found) => found,
                    Err(reason) => return Ok(Err(reason)),
                };
                // For a task agents run, an input not on this host is the version an earlier
                // task of this run wrote there, as its agent reported it.
                let written = if remote && found.iter().any(|(_, _, h)| h.is_none()) {
                    store.call(move |s| s.attempt_links(run, None)).await?
                } else {
                    Vec::new()
                };
                let mut inputs = Vec::with_capacity(found.len());
                for (name, path, hashed) in found {
                    let shown = path.display().to_string();
                    let hashed = hashed.or_else(|| {
                        written
                            .iter()
                            .rev()
                            .find(|l| l.direction == Direction::Output && l.path == shown)
                            .map(|l| Hashed {
                                hash: l.artifact.hash.clone(),
                                kind: l.artifact.kind,
                                size: l.artifact.size,
                            })
                    });
                    let Some(hashed) = hashed else {
                        return Ok(Err(format!(
                            "declared input `{name}` does not exist: {shown} (an upstream task should write it, or fix its path under `inputs`)"
                        )));
                    };
                    inputs.push((name, path, hashed));
                }
                let Some(cache) = cache else {
                    return Ok(Ok(Prepared {
                        inputs,
                        key: None,
                        hit: None,
                    }));
                };
                let hashes: Vec<(String, String)> = inputs
                    .iter()
                    .map(|(name, _, hashed)| (name.clone(), hashed.hash.clone()))
                    .collect();
                let key = artifacts::cache_key(&CacheInputs {
                    command: &cache.command,
                    env: &cache.env,
                    params: &cache.params,
                    inputs: &hashes,
                    outputs: &cache.outputs,
                });
                let lookup = key.clone();
                let hit = store
                    .call(move |s| {
                        let hit = s.cache_hit(&cache.dag_id, &cache.task_id, &lookup)?;
                        // Reusable only when every output declared now was recorded and kept.
                        // On this thread, off the loop: each check looks at the content store
                        // (a folder or S3).
                        Ok::<_, EngineError>(hit.filter(|(_, links)| {
                            cache.outputs.iter().all(|o| {
                                links.iter().any(|l| {
                                    let a = &l.artifact;
                                    a.name == *o
                                        && a.stored.is_some()
                                        && content.has(a.stored.as_deref(), &a.hash, a.kind)
                                })
                            })
                        }))
                    })
                    .await?;
                Ok(Ok(Prepared {
                    inputs,
                    key: Some(key),
                    hit,
                }))
            };
            let prepared = prepared.await;
            (task, attempt, job, prepared)
        }
    }

    /// What a cached task's key is computed from, besides its inputs' hashes.
    fn cache_inputs(&self, task: usize) -> CacheParts {
        let spec = &self.spec.dag.tasks[task];
        // Run id and attempt differ on every attempt; rendered as fixed placeholders, a
        // command that only names them in paths still finds its cache.
        let fixed = self.vars(task, RunId(0), 0);
        let lookup = |var: &Var| fixed.lookup(var);
        let command = match &spec.builtin {
            None => spec.command.render_shell(lookup),
            // What the user wrote, canonical: not Rust's `Debug` of the spec, which changes
            // whenever a field of it is renamed.
            Some(builtin) => format!("builtin {}", builtin.cache_identity()),
        };
        // The day counts even when no template names it: a script may read it from $VANE_DS
        // and must not be handed yesterday's outputs. The exact logical time does not count,
        // or two manual runs on the same day (stamped with the time they started) would
        // never share a cache.
        let env: Vec<(String, String)> = fixed
            .env()
            .into_iter()
            .filter(|(name, _)| matches!(name.as_str(), "VANE_DS" | "VANE_DS_NODASH"))
            .chain(
                spec.env
                    .iter()
                    .map(|(name, value)| (name.clone(), value.render_plain(lookup))),
            )
            .collect();
        let params: Vec<(String, String)> = params_used(spec, &self.spec.params)
            .into_iter()
            .map(|(name, value)| (name.clone(), value.to_string()))
            .collect();
        CacheParts {
            command,
            env,
            params,
            outputs: spec.outputs.iter().map(|o| o.name.clone()).collect(),
            dag_id: self.spec.dag.id.clone(),
            task_id: spec.id.clone(),
        }
    }

    /// An attempt's preparation came back: it fails, is put back from the cache, or starts.
    async fn prepared(
        &self,
        machine: &mut RunMachine,
        procs: &mut Processes,
        task: usize,
        attempt: u32,
        job: Job,
        prepared: Result<Prepared, String>,
    ) -> Result<(Vec<Action>, Vec<Change>), EngineError> {
        if procs.starting.get(&task) == Some(&true) {
            procs.starting.remove(&task);
            let ending = self.ending(task, attempt, Ok(Outcome::Cancelled));
            return Ok(self.finished(machine, ending));
        }
        match prepared {
            Err(reason) => {
                procs.starting.remove(&task);
                self.append_log(task, attempt, &format!("vane: {reason}\n"));
                procs.unstartable.push((task, attempt, reason));
            }
            Ok(prepared) if prepared.hit.is_some() => {
                match self.restore(task, attempt, &prepared) {
                    Ok(restoring) => {
                        procs.restoring.spawn(async move {
                            let restored = restoring.await;
                            (task, attempt, job, prepared, restored)
                        });
                    }
                    Err(why) => {
                        procs.starting.remove(&task);
                        self.not_cached(procs, (task, attempt, job), &prepared, &why)
                            .await?;
                    }
                }
            }
            Ok(prepared) => {
                procs.starting.remove(&task);
                self.record_start(task, attempt, &prepared).await?;
                procs.ready.push((task, attempt, job));
            }
        }
        Ok((Vec::new(), Vec::new()))
    }

    /// A cache hit's outputs were put back (the attempt succeeds) or could not be (the task
    /// runs after all).
    async fn restored(
        &self,
        machine: &mut RunMachine,
        procs: &mut Processes,
        (task, attempt, job): (usize, u32, Job),
        prepared: Prepared,
        restored: Result<Vec<(ArtifactLink, String)>, String>,
    ) -> Result<(Vec<Action>, Vec<Change>), EngineError> {
        if procs.starting.remove(&task) == Some(true) {
            let ending = self.ending(task, attempt, Ok(Outcome::Cancelled));
            return Ok(self.finished(machine, ending));
        }
        let restored = match restored {
            Ok(restored) => restored,
            Err(why) => {
                self.not_cached(procs, (task, attempt, job), &prepared, &why)
                    .await?;
                return Ok((Vec::new(), Vec::new()));
            }
        };
        let mut changes = self.reused(task, attempt, &prepared, restored).await?;
        if self.uses_slots() {
            changes.push(Change::ReleaseSlots {
                run: self.run,
                task: Some(self.spec.dag.tasks[task].id.clone()),
            });
        }
        Ok((machine.finished(task, Finish::Success, now()), changes))
    }

    /// The outputs of a cache hit cannot be put back: running the task makes them again.
    async fn not_cached(
        &self,
        procs: &mut Processes,
        (task, attempt, job): (usize, u32, Job),
        prepared: &Prepared,
        why: &str,
    ) -> Result<(), EngineError> {
        warn!(run_id = self.run.0, task = %self.spec.dag.tasks[task].id, attempt, reason = %why, "Cache not used.");
        self.append_log(
            task,
            attempt,
            &format!("vane: cache not used: {why}; running the task\n"),
        );
        self.record_start(task, attempt, prepared).await?;
        procs.ready.push((task, attempt, job));
        Ok(())
    }

    /// Links the inputs of an attempt that started, and records its cache key.
    async fn record_start(
        &self,
        task: usize,
        attempt: u32,
        prepared: &Prepared,
    ) -> Result<(), EngineError> {
        let at = self.attempt_ref(task, attempt);
        let inputs = self.input_links(prepared);
        let key = prepared.key.clone();
        let (dag_id, now, fence) = (self.spec.dag.id.clone(), Utc::now(), self.fence.clone());
        self.engine
            .store
            .call(move |s| {
                Ok(as_owner(s, &fence, || {
                    record_links(s, &at, Direction::Input, &inputs, now)?;
                    if let Some(key) = &key {
                        s.record_cache_key(&at, &dag_id, key)?;
                    }
                    Ok(())
                })?)
            })
            .await
    }

    /// The inputs of an attempt as they are linked to it. Inputs are not copied: their
    /// producer's output copy, if any, is the one kept.
    fn input_links(&self, prepared: &Prepared) -> Vec<KeptOutput> {
        prepared
            .inputs
            .iter()
            .map(|(name, path, hashed)| KeptOutput {
                name: name.clone(),
                path: path.display().to_string(),
                stored: None,
                hashed: hashed.clone(),
            })
            .collect()
    }

    /// Puts back the outputs of the attempt a cache hit found, off the loop; the future owns
    /// what it needs. `Err(reason)` when they cannot be put back.
    fn restore(
        &self,
        task: usize,
        attempt: u32,
        prepared: &Prepared,
    ) -> Result<PuttingBack, String> {
        let Some((_, links)) = &prepared.hit else {
            return Err("no attempt to reuse".into());
        };
        let spec = &self.spec.dag.tasks[task];
        let vars = self.vars(task, self.run, attempt);
        let mut wanted = Vec::new();
        for output in &spec.outputs {
            let Some(link) = links.iter().find(|l| l.artifact.name == output.name) else {
                return Err(format!("output `{}` was not recorded", output.name));
            };
            wanted.push((link.clone(), self.artifact_path(&vars, output)));
        }
        // A task agents run reads its outputs on the agent's host: the agent puts them back
        // there, from the content store, instead of running the command.
        if let Some(agents) = &self.engine.agents
            && let Some(needs) = agents.needs(spec.runs_on.as_ref())
        {
            let items: Vec<serde_json::Value> = wanted
                .iter()
                .map(|(l, path)| {
                    serde_json::json!({
                        "name": l.artifact.name,
                        "hash": l.artifact.hash,
                        "kind": l.artifact.kind.as_str(),
                        "stored": l.artifact.stored,
                        "path": path,
                    })
                })
                .collect();
            let placement = crate::remote::Placement {
                run: self.run,
                task: spec.id.clone(),
                attempt,
                poke: 0,
                needs,
                priority: spec.priority,
                builtin: false,
                log_key: self.log_key(task, attempt),
                outputs: Vec::new(),
                restore: Some(items.into()),
            };
            let mut job = self.job(task, attempt);
            job.command = "true".into();
            let launched = agents
                .launch(job, placement)
                .map_err(|e| format!("cannot hand the restore to agents: {e}"))?;
            return Ok(Box::pin(async move {
                match launched.done.await {
                    Ok(Outcome::Exited { code: 0 }) => Ok(wanted
                        .into_iter()
                        .map(|(link, path)| (link, path.display().to_string()))
                        .collect()),
                    Ok(Outcome::Lost { error }) => Err(error),
                    Ok(other) => Err(format!("the agent's restore ended: {}", other.describe())),
                    Err(_) => Err("the restore was dropped".into()),
                }
            }));
        }
        let content = self.engine.paths.content.clone();
        Ok(Box::pin(offload(self.engine.offload, move || {
            let mut restored = Vec::with_capacity(wanted.len());
            for (link, path) in wanted {
                let a = &link.artifact;
                if let Err(e) = content.restore(a.stored.as_deref(), &a.hash, a.kind, &path) {
                    return Err(format!(
                        "cannot restore output `{}` to {}: {e}",
                        link.artifact.name,
                        path.display()
                    ));
                }
                restored.push((link, path.display().to_string()));
            }
            Ok(restored)
        })))
    }

    /// Records an attempt whose outputs a cache hit put back as a success that reused them;
    /// returns what is left to record of it.
    async fn reused(
        &self,
        task: usize,
        attempt: u32,
        prepared: &Prepared,
        restored: Vec<(ArtifactLink, String)>,
    ) -> Result<Vec<Change>, EngineError> {
        let Some((source, _)) = &prepared.hit else {
            return Err(EngineError::Internal("reused without a cache hit".into()));
        };
        let spec = &self.spec.dag.tasks[task];
        let at = self.attempt_ref(task, attempt);
        let inputs = self.input_links(prepared);
        let outputs: Vec<KeptOutput> = restored
            .iter()
            .map(|(link, path)| KeptOutput {
                name: link.artifact.name.clone(),
                path: path.clone(),
                stored: link.artifact.stored.clone(),
                hashed: Hashed {
                    hash: link.artifact.hash.clone(),
                    kind: link.artifact.kind,
                    size: link.artifact.size,
                },
            })
            .collect();
        let (source_run, now) = (source.run, Utc::now());
        // The outputs are the same, so are the numbers measured on them: `vane diff` and
        // metric histories keep seeing them.
        let fence = self.fence.clone();
        let earlier = self
            .engine
            .store
            .call(move |s| {
                as_owner(s, &fence, || {
                    record_links(s, &at, Direction::Input, &inputs, now)?;
                    record_links(s, &at, Direction::Output, &outputs, now)
                })?;
                Ok::<_, EngineError>(s.run(source_run)?)
            })
            .await?;
        let reason = format!("cached: reused outputs of run {}", source.run);
        let mut text = format!(
            "vane: {reason} (task `{}`, attempt {}); the command did not run\n",
            source.task, source.attempt
        );
        for (link, path) in &restored {
            text.push_str(&format!(
                "vane: restored `{}` version {} to {path}\n",
                link.artifact.name, link.artifact.version
            ));
        }
        self.append_log(task, attempt, &text);
        info!(run_id = self.run.0, task = %spec.id, attempt, from_run = source.run.0, "Task cached.");
        let now = Utc::now();
        let mut changes = vec![Change::AttemptFinished {
            run: self.run,
            task: spec.id.clone(),
            attempt,
            success: true,
            exit_code: None,
            signal: None,
            reason: Some(reason),
            at: now,
        }];
        let metrics = earlier
            .tasks
            .iter()
            .filter(|t| t.task_id == source.task)
            .flat_map(|t| &t.attempts)
            .filter(|a| a.attempt == source.attempt)
            .flat_map(|a| &a.metrics);
        changes.extend(metrics.map(|(name, value)| Change::Metric {
            run: self.run,
            task: spec.id.clone(),
            attempt,
            name: name.clone(),
            value: *value,
            at: now,
        }));
        Ok(changes)
    }

    /// Hashes the declared outputs of an attempt that succeeded and keeps a copy of each in
    /// the content store, off the loop; the future owns all it needs, so it waits beside the
    /// run's other events. `Err(reason)` fails the attempt: an output missing, or one that
    /// cannot be kept.
    fn keep_outputs(
        &self,
        ending: Ending,
    ) -> impl std::future::Future<Output = (Ending, Result<Vec<KeptOutput>, String>)> + Send + 'static
    {
        let spec = &self.spec.dag.tasks[ending.task];
        let vars = self.vars(ending.task, self.run, ending.attempt);
        let content = self.engine.paths.content.clone();
        let declared: Vec<(String, PathBuf)> = spec
            .outputs
            .iter()
            .map(|output| (output.name.clone(), self.artifact_path(&vars, output)))
            .collect();
        // An agent that ran the task hashed and kept them on its own host.
        let reported = self
            .engine
            .agents
            .as_ref()
            .and_then(|agents| agents.take_outputs(self.run, &spec.id, ending.attempt));
        // Most tasks declare no outputs: they skip the trip to another thread and back.
        let kept = (reported.is_none() && !declared.is_empty()).then(|| {
            offload(self.engine.offload, move || {
                artifacts::keep_declared(&content, declared)
            })
        });
        async move {
            let kept = match (reported, kept) {
                (Some(reported), _) => reported,
                (None, Some(kept)) => kept.await,
                (None, None) => Ok(Vec::new()),
            };
            (ending, kept)
        }
    }

    /// Records the outputs [`keep_outputs`](Self::keep_outputs) kept; the attempt fails
    /// instead when they could not be kept or recorded.
    async fn outputs_kept(&self, ending: Ending, kept: Result<Vec<KeptOutput>, String>) -> Ending {
        let at = self.attempt_ref(ending.task, ending.attempt);
        let now = Utc::now();
        let recorded = match kept {
            Ok(found) if found.is_empty() => Ok(()),
            Ok(found) => {
                let fence = self.fence.clone();
                self.engine
                    .store
                    .call(move |s| {
                        as_owner(s, &fence, || {
                            record_links(s, &at, Direction::Output, &found, now)
                        })
                    })
                    .await
                    .map_err(|e| format!("cannot record the outputs: {e}"))
            }
            Err(why) => Err(why),
        };
        match recorded {
            Ok(()) => ending,
            Err(why) => {
                self.append_log(ending.task, ending.attempt, &format!("vane: {why}\n"));
                Ending {
                    finish: Finish::Failed,
                    reason: Some(why),
                    ..ending
                }
            }
        }
    }
}

/// A cache hit's outputs being put back (here, or by an agent on its host): each link with
/// where it went, or why it could not be.
type PuttingBack = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<(ArtifactLink, String)>, String>> + Send>,
>;

/// What a cached task's key is computed from, besides its inputs' hashes.
struct CacheParts {
    command: String,
    env: Vec<(String, String)>,
    params: Vec<(String, String)>,
    outputs: Vec<String>,
    dag_id: String,
    task_id: String,
}

/// How an attempt ended, as it is to be recorded.
struct Ending {
    task: usize,
    attempt: u32,
    finish: Finish,
    exit_code: Option<i32>,
    signal: Option<i32>,
    reason: Option<String>,
    /// When it ended, if before it was seen to (it ended while no vane watched it).
    ended_at: Option<DateTime<Utc>>,
}

/// Runs `work` as the owner holding `fence`: in one transaction with the fence's check, so
/// artifacts, lineage and cache keys are never recorded by an owner that lost the run.
fn as_owner(
    store: &dyn Store,
    fence: &Fence,
    mut work: impl FnMut() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    store.atomically(&mut || {
        store.apply_fenced(fence, &[])?;
        work()
    })
}

/// The params a task's cache key counts. For a command task: those its command, env, inputs
/// and outputs name (`{{ params.NAME }}`) or mention as `$VANE_PARAM_NAME`, so that changing a
/// param only a later deploy step reads does not retrain the model. A built-in task counts
/// every param: its own keys may name any.
fn params_used<'p>(
    task: &vane_dag::Task,
    params: &'p [(String, ParamValue)],
) -> Vec<&'p (String, ParamValue)> {
    if task.builtin.is_some() {
        return params.iter().collect();
    }
    let templates: Vec<&vane_dag::Template> = std::iter::once(&task.command)
        .chain(task.env.iter().map(|(_, t)| t))
        .chain(task.inputs.iter().chain(&task.outputs).map(|a| &a.path))
        .collect();
    let named = |name: &str| {
        templates.iter().any(|t| {
            t.variables()
                .any(|v| matches!(v, Var::Param(p) if p == name))
                || t.source()
                    .contains(&format!("VANE_PARAM_{}", name.to_uppercase()))
        })
    };
    params.iter().filter(|(name, _)| named(name)).collect()
}

/// Links artifacts to an attempt; nothing to record is no write.
fn record_links(
    store: &dyn Store,
    at: &AttemptRef,
    direction: Direction,
    artifacts: &[KeptOutput],
    now: DateTime<Utc>,
) -> Result<(), vane_store::StoreError> {
    if artifacts.is_empty() {
        return Ok(());
    }
    let new: Vec<NewArtifact<'_>> = artifacts
        .iter()
        .map(|a| NewArtifact {
            name: &a.name,
            hash: &a.hashed.hash,
            kind: a.hashed.kind,
            size: a.hashed.size,
            path: &a.path,
            stored: a.stored.as_deref(),
        })
        .collect();
    store.record_artifacts(at, direction, &new, now)?;
    Ok(())
}

/// How the engine reads and starts built-in task kinds (`validate`, `deploy`): their parsers,
/// the `vane` executable, and what it needs to find the store.
#[derive(Debug, Clone)]
pub struct BuiltinCommand {
    /// The kinds' parsers, to read back the DAG version a run was created with.
    pub registry: vane_dag::Registry,
    pub exe: PathBuf,
    /// Added to the process's environment, e.g. `VANE_DB`.
    pub env: Vec<(String, String)>,
}

/// How an attempt came to run, as `{{ trigger }}` and `$VANE_TRIGGER` tell the task: a script
/// that must not publish from a backfill, or must behave differently on a rerun, can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBy {
    Scheduled,
    Manual,
    Backfill,
    /// The task was cleared (`vane clear`) and runs again.
    Clear,
}

impl StartedBy {
    /// Of a task of a run with `trigger`, `cleared` when the task was cleared since it first ran.
    #[must_use]
    pub fn of(trigger: Trigger, cleared: bool) -> Self {
        match trigger {
            _ if cleared => Self::Clear,
            Trigger::Scheduled => Self::Scheduled,
            Trigger::Backfill => Self::Backfill,
            _ => Self::Manual,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Manual => "manual",
            Self::Backfill => "backfill",
            Self::Clear => "clear",
        }
    }
}

/// Which attempt template variables are for.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOf<'a> {
    pub run: RunId,
    pub task: &'a str,
    pub attempt: u32,
    pub started_by: StartedBy,
}

/// The values of the template variables of one attempt of one task: what `{{ ds }}` and
/// friends stand for, and the `VANE_*` environment that carries the same values.
#[derive(Debug, Clone)]
pub struct TemplateVars {
    builtin: Vec<(&'static str, String)>,
    params: Vec<(String, ParamValue)>,
}

impl TemplateVars {
    pub fn new(
        dag: &Dag,
        params: &[(String, ParamValue)],
        logical_date: DateTime<Utc>,
        of: &AttemptOf<'_>,
        work: &Path,
    ) -> Self {
        let local = logical_date.with_timezone(&dag.timezone);
        let (interval_start, interval_end) = dag
            .schedule
            .as_ref()
            .map_or((logical_date, logical_date), |s| {
                s.data_interval(logical_date)
            });
        let rfc3339 = |t: DateTime<Utc>| {
            t.with_timezone(&dag.timezone)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        // The ticks around the logical date; a DAG without a schedule has none, and both
        // are the logical date itself.
        let next_tick = dag
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(logical_date))
            .unwrap_or(logical_date);
        let day = |t: DateTime<Utc>, format: &str| {
            t.with_timezone(&dag.timezone).format(format).to_string()
        };
        let builtin = vane_dag::BUILTIN_VARIABLES
            .iter()
            .map(|&(name, _)| {
                let value = match name {
                    "ds" => local.format("%Y-%m-%d").to_string(),
                    "ds_nodash" => local.format("%Y%m%d").to_string(),
                    // Airflow's `ts`: the offset as +00:00, never Z.
                    "ts" => local.to_rfc3339_opts(SecondsFormat::Secs, false),
                    "ts_nodash" => local.format("%Y%m%dT%H%M%S").to_string(),
                    "prev_ds" => day(interval_start, "%Y-%m-%d"),
                    "prev_ds_nodash" => day(interval_start, "%Y%m%d"),
                    "next_ds" => day(next_tick, "%Y-%m-%d"),
                    "next_ds_nodash" => day(next_tick, "%Y%m%d"),
                    "logical_date" => rfc3339(logical_date),
                    "data_interval_start" => rfc3339(interval_start),
                    "data_interval_end" => rfc3339(interval_end),
                    "run_id" => of.run.to_string(),
                    "dag_id" => dag.id.clone(),
                    "task_id" => of.task.to_owned(),
                    "attempt" => of.attempt.to_string(),
                    "trigger" => of.started_by.as_str().to_owned(),
                    "work" => work.display().to_string(),
                    other => unreachable!("template variable `{other}` has no value"),
                };
                (name, value)
            })
            .collect();
        Self {
            builtin,
            params: params.to_vec(),
        }
    }

    pub fn lookup(&self, var: &Var) -> String {
        match var {
            Var::Builtin(name) => self
                .builtin
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            Var::Param(name) => self
                .params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        }
    }

    /// `VANE_DS`, ..., `VANE_WORK`, and `VANE_PARAM_NAME` for every parameter.
    pub fn env(&self) -> Vec<(String, String)> {
        let builtin = self
            .builtin
            .iter()
            .map(|(name, value)| (format!("VANE_{}", name.to_uppercase()), value.clone()));
        let params = self
            .params
            .iter()
            .map(|(n, v)| (format!("VANE_PARAM_{}", n.to_uppercase()), v.to_string()));
        builtin.chain(params).collect()
    }
}

/// The exit code by which a task says its input or its result is bad (a failed `error` check, a
/// failed gate, a rejected rollout, or a user's own evaluation): a verdict, which a retry would
/// only repeat. The task fails at once and is never retried; retries are for crashes, timeouts
/// and infrastructure errors. Tasks see it as `$VANE_VERDICT_EXIT`. It is sysexits' EX_DATAERR.
pub const VERDICT_EXIT: i32 = 65;

/// The exit code by which a task ends itself `skipped` (nothing to do today: no new data, a
/// backfill date it must not act on): its downstream tasks follow their trigger rules, as for
/// any skipped task. Tasks see it as `$VANE_SKIP_EXIT`; it is the code Airflow's Bash operator
/// uses for the same.
pub const SKIP_EXIT: i32 = 99;

/// The file a failing attempt may explain itself in (`$VANE_REASON`): beside its log.
fn reason_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("reason")
}

/// The file an attempt reports metrics in (`$VANE_METRICS`): beside its log.
pub fn metrics_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("metrics")
}

/// Where an attempt's log lives, relative to the logs folder. One file per attempt directly in
/// the run's folder: a folder per task would double the inodes created per attempt.
pub fn log_name(dag: &str, run: RunId, task: &str, attempt: u32) -> PathBuf {
    PathBuf::from(dag)
        .join(format!("run-{run}"))
        .join(format!("{task}.{attempt}.log"))
}
