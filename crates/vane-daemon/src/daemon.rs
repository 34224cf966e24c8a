//! The scheduler loop: keeps the DAG folder loaded, decides every due tick, starts queued runs,
//! adopts runs orphaned by a crash, and shuts down without losing anything.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::{JoinHandle, LocalSet};
use tracing::{debug, error, info, warn};
use vane_dag::{Dag, Overlap};
use vane_engine::{Control, Engine, EngineError, RunSpec, StopReason};
use vane_store::{
    BackfillState, Change, HEARTBEAT_EVERY, Heartbeat, PassStats, RunFilter, RunId, RunRecord,
    RunState, StoreError, StoreThreads, TickDecision, Trigger,
};

use crate::cadence::{Plan, due_ticks};
use crate::clock::Clock;
use crate::trouble::Trouble;

/// How often the scheduler looks for runs whose vane process died.
const RECOVERY_EVERY: Duration = Duration::from_secs(5);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub dags_dir: PathBuf,
    /// On shutdown, how long running tasks may go on before they are killed.
    pub shutdown_grace: Duration,
    /// How often the DAG folder and the queue of triggered runs are looked at.
    pub poll: Duration,
    /// Where the loop reads the time: [`Clock::system`] but in tests.
    pub clock: Clock,
}

/// Why the daemon stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The database could not be written when the scheduler started.
    #[error(
        "the database cannot be written ({0}): the scheduler does not start on a database it cannot write; make it writable (free disk space, mount it read-write, fix its permissions) and start the scheduler again"
    )]
    Unwritable(String),
    #[error("cannot read the DAG folder {path}: {source}")]
    DagFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A DAG as the daemon last loaded it.
struct Loaded {
    dag: Rc<Dag>,
    path: PathBuf,
    source: Rc<str>,
    /// When this scheduler first saw the DAG: a new DAG starts with its next tick.
    first_seen: DateTime<Utc>,
    last_decided: Option<DateTime<Utc>>,
    /// Nothing is due before this: the next tick after the last pass that looked. Passes
    /// skip the DAG until then, so their cost grows with what is due, not with idle DAGs.
    next_due: Option<DateTime<Utc>>,
    /// Since when this DAG has been scheduled without interruption (scheduler up, DAG not
    /// paused): ticks before it were missed and follow `catchup`; later ones are on time.
    on_time_since: DateTime<Utc>,
}

struct Active {
    dag_id: String,
    control: watch::Sender<Control>,
    handle: JoinHandle<()>,
}

/// Runs the scheduler until `shutdown` completes, then drains: running tasks get
/// `shutdown_grace` to finish, unfinished runs are left `queued` to resume on the next start.
///
/// # Errors
/// Fails when the database cannot be used or the DAG folder cannot be read at start.
pub async fn run(
    engine: Engine<'static>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    LocalSet::new()
        .run_until(Scheduler::new(engine, config).serve(shutdown))
        .await
}

struct Scheduler {
    engine: Rc<Engine<'static>>,
    config: Config,
    dags: HashMap<String, Loaded>,
    /// DAG file fingerprint (path, modified, size) as last loaded.
    fingerprint: Vec<(PathBuf, Option<SystemTime>, u64)>,
    /// DAG files that did not validate when last loaded, with the content reported: each
    /// broken content is logged once, not again whenever another file of the folder changes,
    /// and when one is fixed back to the version still running, the log says so too.
    invalid: HashMap<PathBuf, String>,
    active: HashMap<RunId, Active>,
    /// When this scheduler started: ticks before it were missed, ticks after it are on time.
    up_since: DateTime<Utc>,
    /// Signalled by every run execution that ends.
    finished: Rc<tokio::sync::Notify>,
    /// How long this scheduler's passes took, for its heartbeat.
    passes: PassStats,
    last_beat: Option<tokio::time::Instant>,
    trouble: Trouble,
    clock: Clock,
}

impl Scheduler {
    fn new(engine: Engine<'static>, config: Config) -> Self {
        let clock = config.clock;
        Self {
            engine: Rc::new(engine),
            config,
            dags: HashMap::new(),
            fingerprint: Vec::new(),
            invalid: HashMap::new(),
            active: HashMap::new(),
            up_since: clock.now(),
            finished: Rc::new(tokio::sync::Notify::new()),
            passes: PassStats::default(),
            last_beat: None,
            trouble: Trouble::default(),
            clock,
        }
    }

    /// Every call goes to the store's own threads: a database round trip never holds up the
    /// runs this loop drives.
    fn store(&self) -> StoreThreads {
        self.engine.store.clone()
    }

    async fn serve(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        info!(dags = %self.config.dags_dir.display(), "Scheduler starting.");
        // Before anything that may take long (adopting orphaned runs): `vane status` shows
        // the scheduler up from its first moment. A database that cannot be written now holds
        // nothing of this process yet: stopping says so plainly, where waiting would wait on a
        // connection SQLite opened read-only for good.
        if let Some(e) = self.beat(false).await {
            let cause = match e {
                StoreError::Unwritable(cause) => cause.to_string(),
                other => other.to_string(),
            };
            return Err(DaemonError::Unwritable(cause));
        }
        let served = self.schedule(shutdown).await;
        // Failed or not, this process schedules no more: say so rather than go stale, and
        // leave nothing for others to wait out (its runs were put back in the queue).
        let _ = self.beat(true).await;
        self.engine.lease.release(&self.store()).await;
        served
    }

    async fn schedule(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
        let clock = self.clock;
        self.reload(clock.now()).await?;
        self.recover().await?;
        let mut last_recovery = clock.instant();
        let mut last_reload = clock.instant();
        tokio::pin!(shutdown);
        loop {
            let now = clock.now();
            let pass = clock.instant();
            // The folder is looked at once per poll interval, however often runs end or ticks
            // come: with a thousand DAG files that look is most of a pass.
            if pass - last_reload >= self.config.poll {
                last_reload = pass;
                if let Err(e) = self.reload(now).await {
                    self.trouble.failed(
                        "reading the DAG folder (the DAGs loaded before keep running)",
                        &e,
                        store_error(&e),
                    );
                }
            }
            // A database error here (a long lock, a full disk) ends nothing: the next pass
            // tries again, and runs in flight go on.
            if let Err(e) = self.decide_ticks(now).await {
                self.trouble
                    .failed("deciding due ticks", &e, store_error(&e));
            }
            // Runs orphaned while this scheduler is up (a `vane run` killed with -9, a run whose
            // execution here failed) are adopted too, not only at start.
            if clock.instant() - last_recovery >= RECOVERY_EVERY {
                last_recovery = clock.instant();
                if let Err(e) = self.recover().await {
                    self.trouble
                        .failed("adopting orphaned runs", &e, store_error(&e));
                }
            }
            // Finished executions free their DAG's places before queued runs are looked at.
            self.reap();
            if let Err(e) = self.start_queued().await {
                self.trouble
                    .failed("starting queued runs", &e, store_error(&e));
            }
            // The cost of one pass, for the scale benchmark and for anyone wondering.
            let took = clock.instant() - pass;
            debug!(
                pass_us = took.as_micros() as u64,
                dags = self.dags.len(),
                active_runs = self.active.len(),
                "Scheduler pass."
            );
            self.passes.record(took.as_secs_f64());
            // The first pass is written at once, so /metrics has a pass from the start; then
            // at most one write per interval, whatever the pass rate.
            if self.passes.count == 1
                || self
                    .last_beat
                    .is_none_or(|at| clock.instant() - at >= HEARTBEAT_EVERY)
            {
                let _ = self.beat(false).await;
            }
            let wake = self
                .trouble
                .pass_over()
                .unwrap_or_else(|| self.next_wake(now));
            tokio::select! {
                () = tokio::time::sleep(wake) => {}
                // A run that ends frees its DAG's place for the next queued one at once.
                () = self.finished.notified() => {}
                () = &mut shutdown => break,
            }
        }
        self.drain().await;
        info!("Scheduler stopped.");
        Ok(())
    }

    /// Writes this scheduler's heartbeat row. A failed write stops nothing: scheduling matters
    /// more than being seen, and the next heartbeat tries again. Says whether the database
    /// could not be written at all.
    async fn beat(&mut self, stopped: bool) -> Option<StoreError> {
        self.last_beat = Some(self.clock.instant());
        let (host, started_at, at) = (self.engine.host.clone(), self.up_since, self.clock.now());
        let passes = self.passes.clone();
        // After a lost lease, the next heartbeat takes a new one, so the scheduler is seen
        // holding one again before it claims any run.
        let lease = if stopped {
            self.engine.lease.id()
        } else {
            match self.engine.lease.current(&self.store()).await {
                Ok(id) => Some(id),
                Err(e) => {
                    let store = match &e {
                        EngineError::Store(store) => Some(store),
                        _ => None,
                    };
                    self.trouble.failed("taking a lease", &e, store);
                    None
                }
            }
        };
        let recorded = self
            .store()
            .call(move |s| {
                s.record_heartbeat(&Heartbeat {
                    host: &host,
                    pid: std::process::id(),
                    started_at,
                    at,
                    passes: &passes,
                    stopped,
                    lease: lease.as_deref(),
                })
            })
            .await;
        match recorded {
            Err(e @ StoreError::Unwritable(_)) => {
                self.trouble
                    .failed("recording the scheduler's heartbeat", &e, Some(&e));
                Some(e)
            }
            Err(e) => {
                self.trouble
                    .failed("recording the scheduler's heartbeat", &e, Some(&e));
                None
            }
            Ok(()) => None,
        }
    }

    /// Loads the DAG folder again when a file was added, changed or removed. A file that no
    /// longer validates keeps its last good version running.
    async fn reload(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let dir = &self.config.dags_dir;
        let folder_error = |source| DaemonError::DagFolder {
            path: dir.clone(),
            source,
        };
        let mut fingerprint = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(folder_error)? {
            let path = entry.map_err(folder_error)?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let meta = std::fs::metadata(&path).ok();
                fingerprint.push((
                    path,
                    meta.as_ref().and_then(|m| m.modified().ok()),
                    meta.map_or(0, |m| m.len()),
                ));
            }
        }
        fingerprint.sort();
        if fingerprint == self.fingerprint {
            return Ok(());
        }
        let set = vane_dag::load_dir(dir, &self.engine.registry()).map_err(folder_error)?;
        let mut seen = Vec::new();
        for file in &set.files {
            let Some(dag) = &file.parsed.dag else {
                let errors = file.error_count();
                let mut kept = self
                    .dags
                    .values()
                    .find(|l| l.path == file.path)
                    .map(|l| l.dag.id.clone());
                if kept.is_none() {
                    kept = self.keep_recorded(file, &set, now).await?;
                }
                if self.invalid.get(&file.path) != Some(&file.source) {
                    // The first error itself, so that the journal alone says what to fix.
                    let first = file
                        .parsed
                        .diagnostics
                        .iter()
                        .find(|d| d.is_error())
                        .map(|d| match d.line_col(&file.source) {
                            Some((line, column)) => format!("{line}:{column}: {}", d.message),
                            None => d.message.clone(),
                        });
                    error!(
                        path = %file.path.display(),
                        errors,
                        first_error = first.as_deref(),
                        kept_running = kept.as_deref(),
                        "DAG file does not validate; run `vane validate` for details."
                    );
                    self.invalid.insert(file.path.clone(), file.source.clone());
                }
                if let Some(id) = kept {
                    seen.push(id);
                }
                continue;
            };
            seen.push(dag.id.clone());
            let fixed = self.invalid.remove(&file.path).is_some();
            let changed = self
                .dags
                .get(&dag.id)
                .is_none_or(|l| *l.source != *file.source);
            if !changed {
                if fixed {
                    info!(dag = %dag.id, path = %file.path.display(), "DAG file validates again; it is the version already running.");
                }
                continue;
            }
            let store = self.store();
            let previous = self.dags.remove(&dag.id);
            let last_decided = match &previous {
                Some(l) => l.last_decided,
                None => {
                    let id = dag.id.clone();
                    store.call(move |s| s.last_tick(&id)).await?
                }
            };
            info!(dag = %dag.id, path = %file.path.display(), new = previous.is_none(), "DAG loaded.");
            self.dags.insert(
                dag.id.clone(),
                Loaded {
                    dag: Rc::new(dag.clone()),
                    path: file.path.clone(),
                    source: Rc::from(file.source.as_str()),
                    on_time_since: previous.as_ref().map_or(self.up_since, |l| l.on_time_since),
                    first_seen: previous.map_or(now, |l| l.first_seen),
                    last_decided,
                    next_due: None,
                },
            );
        }
        self.dags.retain(|id, _| {
            let keep = seen.contains(id);
            if !keep {
                info!(dag = %id, "DAG removed; its active runs go on.");
            }
            keep
        });
        self.invalid
            .retain(|path, _| fingerprint.iter().any(|(p, _, _)| p == path));
        // Only now: a reload that failed half-way is tried again on the next pass.
        self.fingerprint = fingerprint;
        Ok(())
    }

    /// For a broken file whose DAG this scheduler never loaded (it started with the file
    /// broken, after a restart or a reboot): the version the DAG's latest run used, loaded
    /// as the one that keeps running, as it would have kept running had the file broken while
    /// the scheduler was up. The DAG id is the file's name, its default.
    async fn keep_recorded(
        &mut self,
        file: &vane_dag::DagFile,
        set: &vane_dag::DagSet,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, DaemonError> {
        let Some(id) = file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
        else {
            return Ok(None);
        };
        if self.dags.contains_key(&id) || set.dags().any(|(d, _)| d.id == id) {
            return Ok(None);
        }
        let store = self.store();
        let lookup = id.clone();
        let latest = store
            .call(move |s| {
                s.runs(&RunFilter {
                    dag_id: Some(&lookup),
                    limit: 1,
                    ..RunFilter::default()
                })
            })
            .await?;
        let Some(run) = latest.into_iter().next() else {
            return Ok(None);
        };
        let (source, dag) = recorded_version(&self.engine, &run).await?;
        let Some(dag) = dag else {
            return Ok(None);
        };
        let decided = id.clone();
        let last_decided = store.call(move |s| s.last_tick(&decided)).await?;
        info!(dag = %id, path = %file.path.display(), run_id = run.id.0, "DAG file does not validate: keeping the version its latest run used.");
        self.dags.insert(
            id.clone(),
            Loaded {
                dag: Rc::new(dag),
                path: file.path.clone(),
                source: Rc::from(source.as_str()),
                on_time_since: self.up_since,
                first_seen: now,
                last_decided,
                next_due: None,
            },
        );
        Ok(Some(id))
    }

    /// Decides every due tick of every unpaused DAG.
    async fn decide_ticks(&mut self, now: DateTime<Utc>) -> Result<(), DaemonError> {
        let store = self.store();
        let switches = store.call(|s| s.pause_switches()).await?;
        let ids: Vec<String> = self.dags.keys().cloned().collect();
        for id in ids {
            let loaded = &self.dags[&id];
            let paused = switches
                .get(&id)
                .copied()
                .unwrap_or(loaded.dag.cadence.paused);
            if paused {
                if let Some(l) = self.dags.get_mut(&id) {
                    l.on_time_since = now;
                    l.next_due = None;
                }
                continue;
            }
            if loaded.next_due.is_some_and(|due| due > now) {
                continue;
            }
            let dag = Rc::clone(&loaded.dag);
            let source = Rc::clone(&loaded.source);
            let path = loaded.path.clone();
            let on_time_since = loaded.on_time_since;
            let due = due_ticks(
                &dag,
                loaded.last_decided,
                loaded.first_seen,
                on_time_since,
                now,
            );
            // Skipped ticks are recorded together: one commit, however many a catch-up skips.
            // The DAG's progress moves only past what is recorded, so a failed commit means the
            // same ticks are decided again on the next pass (a recorded tick keeps its decision).
            let mut skipped = Vec::new();
            for (tick, plan) in due {
                match plan {
                    Plan::Skip(reason) => {
                        info!(dag = %id, tick = %tick.to_rfc3339(), %reason, "Tick skipped.");
                        skipped.push((tick, TickDecision::Skipped(reason)));
                        continue;
                    }
                    Plan::Run => {
                        let (dag_id, ticks) = (id.clone(), std::mem::take(&mut skipped));
                        store.call(move |s| s.record_ticks(&dag_id, &ticks)).await?;
                        let catching_up = tick < on_time_since;
                        self.run_tick(&dag, &source, &path, tick, catching_up)
                            .await?;
                    }
                }
                if let Some(l) = self.dags.get_mut(&id) {
                    l.last_decided = Some(tick);
                }
            }
            if let Some(&(last, _)) = skipped.last() {
                let dag_id = id.clone();
                store
                    .call(move |s| s.record_ticks(&dag_id, &skipped))
                    .await?;
                if let Some(l) = self.dags.get_mut(&id) {
                    l.last_decided = Some(last);
                }
            }
            if let Some(l) = self.dags.get_mut(&id) {
                // A manual-only DAG, or one past its end_date, is never due again.
                l.next_due = Some(
                    dag.schedule
                        .as_ref()
                        .and_then(|s| s.next_after(now))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC),
                );
            }
        }
        Ok(())
    }

    async fn run_tick(
        &mut self,
        dag: &Dag,
        source: &str,
        path: &Path,
        tick: DateTime<Utc>,
        catching_up: bool,
    ) -> Result<(), DaemonError> {
        let store = self.store();
        // Backfill runs belong to their backfill; they never make a tick overlap.
        let dag_id = dag.id.clone();
        let active: Vec<RunRecord> = store
            .call(move |s| {
                s.runs(&RunFilter {
                    dag_id: Some(&dag_id),
                    states: &[RunState::Queued, RunState::Running],
                    ..RunFilter::default()
                })
            })
            .await?
            .into_iter()
            .filter(|r| r.trigger != Trigger::Backfill)
            .collect();
        // The tick's own run, made by another scheduler of the database (or `vane trigger
        // --date`) a moment ago, is no earlier run it overlaps: skipping the tick for it logged
        // a skip that never happened, and `cancel_previous` failed the tick's only run.
        if let Some(own) = active.iter().find(|r| r.logical_date == tick) {
            info!(dag = %dag.id, tick = %tick.to_rfc3339(), run_id = own.id.0, "Tick already has a run.");
            // A manual run (`vane trigger --date`) records no tick: `vane ticks` shows it as
            // this tick's run rather than as a tick nobody decided.
            let (dag_id, run) = (dag.id.clone(), own.id);
            store
                .call(move |s| s.record_ticks(&dag_id, &[(tick, TickDecision::Run(run))]))
                .await?;
            return Ok(());
        }
        if let Some(newest) = active.first() {
            match dag.cadence.overlap {
                Overlap::Skip if catching_up => {}
                Overlap::Skip => {
                    let reason = format!("overlap: run {} is still {}", newest.id, newest.state);
                    info!(dag = %dag.id, tick = %tick.to_rfc3339(), %reason, "Tick skipped.");
                    let dag_id = dag.id.clone();
                    store
                        .call(move |s| {
                            s.record_ticks(&dag_id, &[(tick, TickDecision::Skipped(reason))])
                        })
                        .await?;
                    return Ok(());
                }
                Overlap::CancelPrevious => {
                    for run in &active {
                        self.cancel(
                            run,
                            "superseded by a newer tick (overlap = \"cancel_previous\")",
                        )
                        .await?;
                    }
                }
                Overlap::Queue | Overlap::Allow => {}
            }
        }
        let spec = RunSpec {
            dag,
            source,
            path,
            params: dag.params.clone(),
            logical_date: tick,
            trigger: Trigger::Scheduled,
            // Three `git` processes: off the loop, like every other wait.
            git: {
                let path = path.to_path_buf();
                self.engine
                    .blocking(move || vane_engine::git_state(&path))
                    .await
            },
            backfill: None,
        };
        match self.engine.create_run(&spec).await {
            Ok(run) => {
                info!(dag = %dag.id, tick = %tick.to_rfc3339(), run_id = run.0, "Run created.");
                Ok(())
            }
            // Another scheduler, or a backfill, got there first: the database keeps it to one.
            Err(EngineError::Store(StoreError::RunExists { run, .. })) => {
                info!(dag = %dag.id, tick = %tick.to_rfc3339(), run_id = run.0, "Tick already has a run.");
                Ok(())
            }
            // Another scheduler decided to skip it meanwhile: its decision stands.
            Err(EngineError::Store(StoreError::TickDecided { .. })) => {
                info!(dag = %dag.id, tick = %tick.to_rfc3339(), "Tick already decided by another scheduler.");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stops an active run (its tasks are killed), or asks its owner to when another process
    /// executes it, or fails a queued one that never started.
    async fn cancel(&mut self, run: &RunRecord, reason: &str) -> Result<(), DaemonError> {
        if let Some(active) = self.active.get(&run.id) {
            info!(run_id = run.id.0, %reason, "Stopping run.");
            let _ = active.control.send(Control::Stop(StopReason::Superseded));
            return Ok(());
        }
        if run.state == RunState::Queued {
            let (id, reason) = (run.id, reason.to_owned());
            self.store()
                .call(move |s| {
                    s.apply(&vane_engine::abandon_changes(s, id, &reason)?)?;
                    Ok::<_, DaemonError>(())
                })
                .await?;
        } else if run.state == RunState::Running {
            // Another process executes it (another scheduler of the database, a `vane run`):
            // it is asked as `vane stop` asks, or the tick would wait behind it as if `queue`.
            info!(run_id = run.id.0, %reason, "Asking the process that executes the run to stop it.");
            let request = vane_store::StopRequest {
                by: format!("the scheduler on {}", self.engine.host),
                reason: Some(reason.to_owned()),
                at: self.clock.now(),
            };
            let id = run.id;
            self.store()
                .call(move |s| s.request_stop(id, &request))
                .await?;
        }
        Ok(())
    }

    /// Starts queued runs, oldest first, as far as each DAG's `max_active_runs` allows.
    async fn start_queued(&mut self) -> Result<(), DaemonError> {
        // A backfill's runs are driven by its own `vane backfill` process while the backfill
        // goes on; a run cleared after its backfill ended is the scheduler's to run. Looked
        // up in the same round trip as the queue.
        let queued = self
            .store()
            .call(|s| {
                let queued = s.runs(&RunFilter {
                    states: &[RunState::Queued],
                    oldest_first: true,
                    ..RunFilter::default()
                })?;
                queued
                    .into_iter()
                    .map(|run| Ok((s.backfill_of(run.id)?, run)))
                    .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        for (backfill, run) in queued {
            let driven = matches!(
                backfill,
                Some((_, BackfillState::Running | BackfillState::Paused))
            );
            if self.active.contains_key(&run.id) || driven {
                continue;
            }
            let limit = self
                .dags
                .get(&run.dag_id)
                .map_or(1, |l| l.dag.cadence.max_active_runs);
            let running = self
                .active
                .values()
                .filter(|a| a.dag_id == run.dag_id)
                .count();
            if running >= limit {
                continue;
            }
            self.start(run);
        }
        Ok(())
    }

    /// Executes a run with the DAG version it was created with.
    fn start(&mut self, run: RunRecord) {
        let engine = Rc::clone(&self.engine);
        let (control, watch) = watch::channel(Control::Run);
        let id = run.id;
        let dag_id = run.dag_id.clone();
        let finished = Rc::clone(&self.finished);
        let handle = tokio::task::spawn_local(async move {
            match execute(&engine, &run, watch).await {
                Ok(_) => {}
                // Another scheduler took it between our look at the queue and the claim.
                Err(DaemonError::Engine(EngineError::Claimed(_))) => {
                    info!(run_id = run.id.0, "Run taken by another process.");
                }
                // Adopted by another scheduler while this one was cut off: its tasks here are
                // killed, and the run is the other's now.
                Err(DaemonError::Engine(EngineError::Store(StoreError::Fenced {
                    why, ..
                }))) => {
                    warn!(run_id = run.id.0, reason = %why, "Run no longer ours: its tasks here were killed, and its record is left to its new owner.");
                }
                Err(e) => error!(run_id = run.id.0, error = %e, "Run could not be executed."),
            }
            finished.notify_one();
        });
        self.active.insert(
            id,
            Active {
                dag_id,
                control,
                handle,
            },
        );
    }

    fn reap(&mut self) {
        self.active.retain(|_, a| !a.handle.is_finished());
    }

    fn next_wake(&self, now: DateTime<Utc>) -> Duration {
        let next_tick = self.dags.values().filter_map(|l| l.next_due).min();
        let poll = self.config.poll;
        match next_tick.map(|t| (t - now).to_std().unwrap_or_default()) {
            Some(until) if until < poll => until,
            _ => poll,
        }
    }

    /// Runs left `running` by a vane process that is gone (a crash, `kill -9`, a reboot): each
    /// attempt still marked running has its process group killed if it is still alive (only
    /// when the pid still names the same process), is recorded failed as "scheduler lost", and
    /// the task is retried per its policy when the run resumes.
    async fn recover(&mut self) -> Result<(), DaemonError> {
        let candidates = self
            .store()
            .call(|s| {
                s.runs(&RunFilter {
                    states: &[RunState::Running, RunState::Queued],
                    oldest_first: true,
                    ..RunFilter::default()
                })
            })
            .await?;
        for run in candidates {
            let Some(owner) = &run.owner else { continue };
            let ours_active = self.active.contains_key(&run.id);
            if vane_engine::orphaned(owner, &self.engine.host, ours_active) {
                vane_engine::adopt(&self.engine, &run).await?;
            }
        }
        Ok(())
    }

    /// Starts nothing new; gives running tasks the grace period, then kills what is left.
    async fn drain(&mut self) {
        info!(
            runs = self.active.len(),
            grace_secs = self.config.shutdown_grace.as_secs(),
            "Shutting down: waiting for running tasks."
        );
        for active in self.active.values() {
            let _ = active.control.send(Control::Drain);
        }
        let deadline = self.clock.instant() + self.config.shutdown_grace;
        for active in self.active.values_mut() {
            if tokio::time::timeout_at(deadline, &mut active.handle)
                .await
                .is_err()
            {
                warn!(dag = %active.dag_id, "Grace period over: killing the run's tasks.");
                // After the Drain, this kills but leaves the run resumable.
                let _ = active.control.send(Control::Stop(StopReason::User));
                let _ = (&mut active.handle).await;
            }
        }
        self.active.clear();
    }
}

/// Executes one run from its record: the DAG version it was created with, and its params.
pub(crate) async fn execute(
    engine: &Engine<'static>,
    run: &RunRecord,
    control: watch::Receiver<Control>,
) -> Result<RunState, DaemonError> {
    let version = recorded_version(engine, run).await?;
    execute_version(engine, run, &version, control).await
}

/// A DAG version as recorded, and what it parses to (`None` when this vane cannot parse it).
pub(crate) type Version = (String, Option<vane_dag::Dag>);

/// The DAG version run `run` was created with, read and parsed.
pub(crate) async fn recorded_version(
    engine: &Engine<'static>,
    run: &RunRecord,
) -> Result<Version, DaemonError> {
    let version = run.dag_version;
    let source = engine.store.call(move |s| s.dag_source(version)).await?;
    let dag = vane_dag::parse_dag_with(&source, &run.dag_id, &engine.registry()).dag;
    Ok((source, dag))
}

/// [`execute`] with the run's DAG version already read: runs that share one (a backfill's)
/// read and parse it once.
pub(crate) async fn execute_version(
    engine: &Engine<'static>,
    run: &RunRecord,
    (source, dag): &Version,
    control: watch::Receiver<Control>,
) -> Result<RunState, DaemonError> {
    let Some(dag) = dag else {
        let reason = "its recorded DAG version no longer parses with this vane";
        let failed = Change::Run {
            run: run.id,
            state: RunState::Failed,
            reason: Some(reason.into()),
            at: Utc::now(),
        };
        engine.store.call(move |s| s.apply(&[failed])).await?;
        return Ok(RunState::Failed);
    };
    let spec = RunSpec {
        dag,
        source,
        path: Path::new(""),
        params: dag.params_from_json(&run.params),
        logical_date: run.logical_date,
        trigger: run.trigger,
        git: run.git.clone(),
        backfill: None,
    };
    Ok(engine.execute(run.id, &spec, control).await?)
}

/// The database error under a pass's failure, if that is what it was.
fn store_error(error: &DaemonError) -> Option<&StoreError> {
    match error {
        DaemonError::Store(e) | DaemonError::Engine(EngineError::Store(e)) => Some(e),
        _ => None,
    }
}
