//! The engine against a real SQLite store and a scripted fake executor, on virtual time.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::oneshot;
use vane_engine::{BlockingPool, Control, Engine, Offload, Paths, RunSpec};
use vane_exec::{ExecError, Executor, Hold, Job, KillSwitch, Launched, Outcome};
use vane_store::{
    ArtifactStore, AttemptState, RunState, SqliteStore, Store, StoreThreads, TaskState, Trigger,
};

/// What a scripted task does on each attempt.
#[derive(Clone, Copy)]
enum Step {
    Exit(i32),
    /// Runs until killed.
    Hang,
}

struct FakeExecutor {
    db: PathBuf,
    script: Mutex<HashMap<String, VecDeque<Step>>>,
    launched: Mutex<Vec<(String, String)>>,
}

impl FakeExecutor {
    fn new(db: &Path, script: &[(&str, &[Step])]) -> Self {
        Self {
            db: db.to_path_buf(),
            script: Mutex::new(
                script
                    .iter()
                    .map(|(t, steps)| (t.to_string(), steps.iter().copied().collect()))
                    .collect(),
            ),
            launched: Mutex::new(Vec::new()),
        }
    }
}

fn env<'a>(job: &'a Job, name: &str) -> &'a str {
    &job.env.iter().find(|(n, _)| n == name).unwrap().1
}

impl Executor for FakeExecutor {
    fn launch(&self, job: Job) -> Result<Launched, ExecError> {
        let (launched, hold) = self.launch_held(job)?;
        hold.release();
        Ok(launched)
    }

    /// As the real executor: the process exists at once, its command begins at the release.
    fn launch_held(&self, job: Job) -> Result<(Launched, Hold), ExecError> {
        let task = env(&job, "VANE_TASK_ID").to_owned();
        let run: vane_store::RunId = env(&job, "VANE_RUN_ID").parse().unwrap();
        let attempt: u32 = env(&job, "VANE_ATTEMPT").parse().unwrap();
        let step = self
            .script
            .lock()
            .unwrap()
            .get_mut(&task)
            .and_then(|s| s.pop_front())
            .unwrap_or(Step::Exit(0));
        let (go, begin) = oneshot::channel::<()>();
        let db = self.db.clone();
        let (launched_task, command) = (task.clone(), job.command.clone());
        let hold = Hold::new(move || {
            // The attempt must be on disk before its command begins: a second connection
            // sees it.
            let store = SqliteStore::open(&db).unwrap();
            let record = store.run(run).unwrap();
            let t = record
                .tasks
                .iter()
                .find(|t| t.task_id == launched_task)
                .unwrap();
            assert_eq!(t.state, TaskState::Running);
            let last = t.attempts.last().unwrap();
            assert_eq!((last.attempt, last.state), (attempt, AttemptState::Running));
            let _ = go.send(());
        });
        self.launched.lock().unwrap().push((task, command));
        let timeout = job.timeout;
        let (tx, done) = oneshot::channel();
        let kill = KillSwitch::new();
        let watcher = kill.clone();
        tokio::spawn(async move {
            if begin.await.is_err() {
                let _ = tx.send(Outcome::Exited {
                    code: vane_exec::HELD_EXIT,
                });
                return;
            }
            let outcome = match step {
                Step::Exit(code) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Outcome::Exited { code }
                }
                // As the real executor: killed, or past the job's timeout.
                Step::Hang => match timeout {
                    Some(limit) => tokio::select! {
                        () = watcher.killed() => Outcome::Cancelled,
                        () = tokio::time::sleep(limit) => Outcome::TimedOut,
                    },
                    None => {
                        watcher.killed().await;
                        Outcome::Cancelled
                    }
                },
            };
            let _ = tx.send(outcome);
        });
        Ok((
            Launched {
                pid: 4242,
                start_time: None,
                done,
                kill,
            },
            hold,
        ))
    }
}

const SOURCE: &str = r#"
[params]
who = "world"
[tasks.extract]
command = "echo {{ params.who }} {{ ds }}"
retries = 2
retry_delay = "30s"
retry_backoff = "exponential"
[tasks.train]
command = "echo train"
depends_on = ["extract"]
[tasks.report]
command = "echo report"
depends_on = ["train"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    root: PathBuf,
    dag: vane_dag::Dag,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        db: dir.path().join("vane.db"),
        root: dir.path().to_path_buf(),
        dag: vane_dag::parse_dag(SOURCE, "demo").dag.unwrap(),
        _dir: dir,
    }
}

fn spec(f: &Fixture) -> RunSpec<'_> {
    RunSpec {
        dag: &f.dag,
        source: SOURCE,
        path: Path::new("dags/demo.toml"),
        params: f
            .dag
            .resolve_params(&[("who".into(), "x; rm -rf /".into())])
            .unwrap(),
        logical_date: "2026-11-23T02:00:00Z".parse().unwrap(),
        trigger: Trigger::Manual,
        git: None,
        backfill: None,
    }
}

/// The engine on its own connection, called inline: on the paused clock, waiting for a store
/// thread would let time jump ahead.
fn engine<'a>(f: &Fixture, executor: &'a FakeExecutor) -> Engine<'a> {
    Engine {
        store: StoreThreads::inline(Box::new(SqliteStore::open(&f.db).unwrap())),
        executor,
        offload: &BlockingPool,
        paths: Paths {
            logs: f.root.join("logs"),
            work: f.root.join("work"),
            project_root: f.root.clone(),
            content: vane_engine::artifacts::ContentStore::local(&f.root.join("artifacts"))
                .unwrap(),
        },
        host: "test-host".into(),
        kill_grace: Duration::from_secs(1),
        agents: None,
        lease: vane_engine::Lease::new(
            "test-host",
            vane_store::LeaseRole::Command,
            vane_store::DEFAULT_LEASE_TTL,
        ),
        limits: vane_dag::SchedulerConfig::default(),
        builtin: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_flaky_task_is_retried_after_its_backoff_and_the_run_succeeds() {
    let f = fixture();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(
        &f.db,
        &[("extract", &[Step::Exit(1), Step::Exit(1), Step::Exit(0)])],
    );
    let engine = engine(&f, &executor);
    let spec = spec(&f);
    let run = engine.create_run(&spec).await.unwrap();
    let started = tokio::time::Instant::now();
    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    let state = engine.execute(run, &spec, control).await.unwrap();
    assert_eq!(state, RunState::Success);
    // Three 1s attempts of extract, waits of 30s then 60s, then train and report.
    assert_eq!(started.elapsed(), Duration::from_secs(3 + 30 + 60 + 2));

    let detail = store.run(run).unwrap();
    let extract = &detail.tasks[0];
    assert_eq!(
        extract
            .attempts
            .iter()
            .map(|a| a.exit_code)
            .collect::<Vec<_>>(),
        vec![Some(1), Some(1), Some(0)]
    );
    assert!(detail.tasks.iter().all(|t| t.state == TaskState::Success));
    assert_eq!(detail.run.params["who"], "x; rm -rf /");
    let launched = executor.launched.lock().unwrap().clone();
    assert_eq!(
        launched[0],
        ("extract".into(), "echo 'x; rm -rf /' 2026-11-23".into())
    );
    assert_eq!(
        launched.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        vec!["extract", "extract", "extract", "train", "report"]
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_a_run_kills_running_tasks_and_records_it() {
    let f = fixture();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[("extract", &[Step::Hang])]);
    let engine = engine(&f, &executor);
    let spec = spec(&f);
    let run = engine.create_run(&spec).await.unwrap();
    let (tx, control) = tokio::sync::watch::channel(Control::Run);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(Control::Stop(vane_engine::StopReason::User))
            .unwrap();
    });
    let state = engine.execute(run, &spec, control).await.unwrap();
    assert_eq!(state, RunState::Failed);

    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.state, RunState::Failed);
    assert_eq!(detail.run.reason.as_deref(), Some("stopped by the user"));
    let states: Vec<_> = detail.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![TaskState::Failed, TaskState::Skipped, TaskState::Skipped]
    );
    let attempt = &detail.tasks[0].attempts[0];
    assert_eq!(attempt.state, AttemptState::Failed);
    assert_eq!(
        attempt.reason.as_deref(),
        Some("killed: the run was stopped")
    );
    assert!(detail.run.ended_at.unwrap() <= Utc::now());
}

#[tokio::test(start_paused = true)]
async fn a_drained_run_finishes_what_runs_and_resumes_later() {
    let f = fixture();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[]);
    let engine = engine(&f, &executor);
    let spec = spec(&f);
    let run = engine.create_run(&spec).await.unwrap();
    let (tx, control) = tokio::sync::watch::channel(Control::Run);
    tokio::spawn(async move {
        // extract runs from 0s to 1s; draining at 0.5s lets it finish but starts nothing else.
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(Control::Drain).unwrap();
    });
    let state = engine.execute(run, &spec, control).await.unwrap();
    assert_eq!(state, RunState::Queued);
    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.state, RunState::Queued);
    assert_eq!(detail.run.owner, None);
    let states: Vec<_> = detail.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![TaskState::Success, TaskState::Queued, TaskState::Queued]
    );

    // Resumed, it runs only what is left.
    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    assert_eq!(
        engine.execute(run, &spec, control).await.unwrap(),
        RunState::Success
    );
    let launched: Vec<_> = executor
        .launched
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(launched, vec!["extract", "train", "report"]);
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_run_past_its_sla_records_a_miss_when_the_deadline_passes() {
    let source = r#"
[dag]
sla = "2s"
[tasks.a]
command = "true"
[tasks.b]
command = "true"
depends_on = ["a"]
sla = "1s"
[tasks.c]
command = "true"
depends_on = ["b"]
sla = "1h"
"#;
    let (_f, store, _executor, detail) = run_dag(source, Trigger::Scheduled, &[]).await;
    assert_eq!(detail.run.state, RunState::Success);
    // Each task takes 1s: b ends at 2s (deadline 1s), the run at 3s (deadline 2s); c is in time.
    let misses: Vec<_> = store
        .sla_misses(Some("sensing"), 0)
        .unwrap()
        .into_iter()
        .map(|m| m.task)
        .collect();
    assert_eq!(misses.len(), 2, "{misses:?}");
    assert!(misses.contains(&None));
    assert!(misses.contains(&Some("b".to_owned())));
}

const SENSOR: &str = r#"
[dag]
max_active_tasks = 1
[tasks.labels_arrived]
kind = "sensor"
command = "ls labels/*.csv"
poke_interval = "10s"
timeout = "1h"
[tasks.unrelated]
command = "echo busy"
[tasks.train]
command = "echo train"
depends_on = ["labels_arrived"]
"#;

/// Runs `source` as DAG `sensing` to the end with a scripted executor, on virtual time.
async fn run_dag(
    source: &str,
    trigger: Trigger,
    script: &[(&str, &[Step])],
) -> (Fixture, SqliteStore, FakeExecutor, vane_store::RunDetail) {
    let f = fixture();
    let dag = vane_dag::parse_dag(source, "sensing").dag.unwrap();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, script);
    let detail = {
        let engine = engine(&f, &executor);
        let spec = RunSpec {
            dag: &dag,
            source,
            path: Path::new("dags/sensing.toml"),
            params: Vec::new(),
            logical_date: Utc::now(),
            trigger,
            git: None,
            backfill: None,
        };
        let run = engine.create_run(&spec).await.unwrap();
        let (_keep, control) = tokio::sync::watch::channel(Control::Run);
        engine.execute(run, &spec, control).await.unwrap();
        store.run(run).unwrap()
    };
    (f, store, executor, detail)
}

#[tokio::test(start_paused = true)]
async fn a_sensor_polls_until_its_condition_holds_without_holding_a_slot() {
    let (_f, _store, executor, detail) = run_dag(
        SENSOR,
        Trigger::Manual,
        &[(
            "labels_arrived",
            &[Step::Exit(2), Step::Exit(2), Step::Exit(0)],
        )],
    )
    .await;
    assert_eq!(detail.run.state, RunState::Success);
    let sensor = &detail.tasks[0];
    assert_eq!(
        sensor.attempts.len(),
        1,
        "one wait is one attempt, however many checks"
    );
    // Three 1s checks and two 10s pauses.
    assert_eq!(
        sensor.attempts[0].metrics,
        vec![("wait_seconds".to_owned(), 23.0)]
    );
    let launched: Vec<_> = executor
        .launched
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    // With max_active_tasks = 1, the worker started beside the waiting sensor.
    assert_eq!(
        &launched[..2],
        &["labels_arrived".to_owned(), "unrelated".to_owned()]
    );
    assert_eq!(
        launched.iter().filter(|t| *t == "labels_arrived").count(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn a_sensor_whose_condition_never_holds_fails_at_its_timeout() {
    let source = SENSOR.replace("timeout = \"1h\"", "timeout = \"25s\"");
    let always_missing: &[Step] = &[Step::Exit(2); 10];
    let (_f, _store, _executor, detail) = run_dag(
        &source,
        Trigger::Manual,
        &[("labels_arrived", always_missing)],
    )
    .await;
    assert_eq!(detail.run.state, RunState::Failed);
    let sensor = &detail.tasks[0];
    assert_eq!(sensor.state, TaskState::Failed);
    assert_eq!(
        sensor.attempts[0].reason.as_deref(),
        Some("timed out after 25s")
    );
    assert_eq!(detail.tasks[2].state, TaskState::UpstreamFailed);
}

#[tokio::test(start_paused = true)]
async fn a_task_killed_after_the_drain_grace_runs_again_when_the_run_resumes() {
    let f = fixture();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[("extract", &[Step::Hang])]);
    let engine = engine(&f, &executor);
    let spec = spec(&f);
    let run = engine.create_run(&spec).await.unwrap();
    let (tx, control) = tokio::sync::watch::channel(Control::Run);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Control::Drain).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(Control::Stop(vane_engine::StopReason::User))
            .unwrap();
    });
    assert_eq!(
        engine.execute(run, &spec, control).await.unwrap(),
        RunState::Queued
    );
    let detail = store.run(run).unwrap();
    let states: Vec<_> = detail.tasks.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![TaskState::Queued; 3],
        "nothing was skipped or failed"
    );
    assert_eq!(detail.tasks[0].attempts[0].state, AttemptState::Failed);

    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    assert_eq!(
        engine.execute(run, &spec, control).await.unwrap(),
        RunState::Success
    );
    assert_eq!(store.run(run).unwrap().tasks[0].attempts.len(), 2);
}

const GPU: &str = r#"
[dag]
max_active_tasks = 4
[tasks.train_a]
command = "train a"
pool = "gpu"
[tasks.train_b]
command = "train b"
pool = "gpu"
[tasks.prepare]
command = "prepare"
"#;

#[tokio::test(start_paused = true)]
async fn a_pool_of_one_runs_its_tasks_one_at_a_time() {
    let f = fixture();
    let dag = vane_dag::parse_dag(GPU, "gpu").dag.unwrap();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[]);
    let mut engine = engine(&f, &executor);
    engine.limits.pools.insert("gpu".into(), 1);
    let spec = RunSpec {
        dag: &dag,
        source: GPU,
        path: Path::new("dags/gpu.toml"),
        params: Vec::new(),
        logical_date: Utc::now(),
        trigger: Trigger::Manual,
        git: None,
        backfill: None,
    };
    let run = engine.create_run(&spec).await.unwrap();
    let started = tokio::time::Instant::now();
    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    assert_eq!(
        engine.execute(run, &spec, control).await.unwrap(),
        RunState::Success
    );
    // Each task takes 1s: the two in the pool one after the other, `prepare` beside them.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let launched: Vec<_> = executor
        .launched
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(launched, vec!["train_a", "prepare", "train_b"]);
    let detail = store.run(run).unwrap();
    assert!(
        detail.tasks.iter().all(|t| t.attempts.len() == 1),
        "waiting is not an attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pool_the_config_does_not_define_fails_the_run_with_the_fix() {
    let (_f, store, executor, detail) = run_dag(GPU, Trigger::Manual, &[]).await;
    assert_eq!(detail.run.state, RunState::Failed);
    assert_eq!(
        detail.run.reason.as_deref(),
        Some(
            "task `train_a` uses pool `gpu`, which the scheduler config does not define; add `[pools] gpu = N` to vane.toml"
        )
    );
    assert!(executor.launched.lock().unwrap().is_empty());
    // Regression: every task was `skipped` under a failed run, so nothing showed which one
    // failed it. Each task naming the pool fails with the fix; the rest never started.
    let states: Vec<_> = detail
        .tasks
        .iter()
        .map(|t| {
            (
                t.task_id.as_str(),
                t.state,
                t.reason.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let fix = "uses pool `gpu`, which the scheduler config does not define; add `[pools] gpu = N` to vane.toml";
    let not_started = "the run did not start: task `train_a` uses an undefined pool";
    assert_eq!(
        states,
        [
            ("train_a", TaskState::Failed, fix),
            ("train_b", TaskState::Failed, fix),
            ("prepare", TaskState::Skipped, not_started),
        ]
    );
    drop(store);
}

/// Offloaded work waits here, not running anywhere, until the test lets it go.
#[derive(Default)]
struct Gate {
    held: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    arrived: tokio::sync::Notify,
}

impl Offload for Gate {
    fn spawn(&self, work: Box<dyn FnOnce() + Send>) {
        self.held.lock().unwrap().push(work);
        self.arrived.notify_one();
    }
}

impl Gate {
    fn release(&self) {
        for work in self.held.lock().unwrap().drain(..) {
            std::thread::spawn(work);
        }
    }
}

const MODEL: &str = r#"
[tasks.train]
command = "train"
outputs = { model = "model.bin" }
[tasks.deploy]
command = "deploy"
depends_on = ["train"]
"#;

const STUCK: &str = r#"
[tasks.stuck]
command = "stuck"
timeout = "10s"
"#;

#[tokio::test(start_paused = true)]
async fn another_runs_timeout_fires_and_is_recorded_while_an_output_is_being_kept() {
    let f = fixture();
    std::fs::write(f.root.join("model.bin"), "weights").unwrap();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[("stuck", &[Step::Hang])]);
    let gate = Gate::default();
    let mut engine = engine(&f, &executor);
    engine.offload = &gate;
    let (model, stuck) = (
        vane_dag::parse_dag(MODEL, "model").dag.unwrap(),
        vane_dag::parse_dag(STUCK, "stuck").dag.unwrap(),
    );
    let spec = |dag, source| RunSpec {
        dag,
        source,
        path: Path::new("dags/x.toml"),
        params: Vec::new(),
        logical_date: "2026-11-23T02:00:00Z".parse().unwrap(),
        trigger: Trigger::Manual,
        git: None,
        backfill: None,
    };
    let (model_spec, stuck_spec) = (spec(&model, MODEL), spec(&stuck, STUCK));
    let model_run = engine.create_run(&model_spec).await.unwrap();
    let stuck_run = engine.create_run(&stuck_spec).await.unwrap();
    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    let started = tokio::time::Instant::now();
    let stuck_done = tokio::sync::Notify::new();
    let model_done = tokio::sync::Notify::new();

    let modelling = async {
        let state = engine
            .execute(model_run, &model_spec, control.clone())
            .await;
        model_done.notify_one();
        state
    };
    let timing_out = async {
        let state = engine
            .execute(stuck_run, &stuck_spec, control.clone())
            .await;
        stuck_done.notify_one();
        state
    };
    let test = async {
        tokio::select! {
            () = gate.arrived.notified() => {}
            () = model_done.notified() => panic!("train's output was kept on the loop"),
        }
        // train ended at 1s; its output is held mid-keeping. The other run goes on.
        stuck_done.notified().await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        let held = store.run(model_run).unwrap();
        assert_eq!(
            (held.tasks[0].state, held.tasks[1].state),
            (TaskState::Running, TaskState::Queued),
            "train is a success only once its output is kept, and deploy waits for that"
        );
        gate.release();
    };
    let (modelled, timed_out, ()) = tokio::join!(modelling, timing_out, test);

    assert_eq!(timed_out.unwrap(), RunState::Failed);
    let stuck = store.run(stuck_run).unwrap();
    assert_eq!(
        stuck.tasks[0].attempts[0].reason.as_deref(),
        Some("timed out after 10s")
    );
    assert_eq!(modelled.unwrap(), RunState::Success);
    let kept = store.attempt_links(model_run, Some("train")).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].artifact.size, 7);
    let launched: Vec<_> = executor
        .launched
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(launched, vec!["train", "stuck", "deploy"]);
}

const PREPARED: &str = r#"
[tasks.train]
command = "train"
inputs = { data = "data.csv" }
[tasks.deploy]
command = "deploy"
depends_on = ["train"]
"#;

#[tokio::test(start_paused = true)]
async fn a_run_stopped_while_an_input_is_hashed_never_starts_that_task() {
    let f = fixture();
    std::fs::write(f.root.join("data.csv"), "rows").unwrap();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[]);
    let gate = Gate::default();
    let mut engine = engine(&f, &executor);
    engine.offload = &gate;
    let dag = vane_dag::parse_dag(PREPARED, "prepared").dag.unwrap();
    let spec = RunSpec {
        dag: &dag,
        source: PREPARED,
        path: Path::new("dags/prepared.toml"),
        params: Vec::new(),
        logical_date: "2026-11-23T02:00:00Z".parse().unwrap(),
        trigger: Trigger::Manual,
        git: None,
        backfill: None,
    };
    let run = engine.create_run(&spec).await.unwrap();
    let (control, watch) = tokio::sync::watch::channel(Control::Run);
    let test = async {
        gate.arrived.notified().await;
        control
            .send(Control::Stop(vane_engine::StopReason::User))
            .unwrap();
        // The stop is recorded (deploy skipped) while train's input is still being hashed.
        while store.run(run).unwrap().tasks[1].state != TaskState::Skipped {
            tokio::task::yield_now().await;
        }
        gate.release();
    };
    let (state, ()) = tokio::join!(engine.execute(run, &spec, watch), test);

    assert_eq!(state.unwrap(), RunState::Failed);
    assert!(executor.launched.lock().unwrap().is_empty());
    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.reason.as_deref(), Some("stopped by the user"));
    assert_eq!(detail.tasks[0].attempts.len(), 1);
    assert_eq!(
        detail.tasks[0].attempts[0].reason.as_deref(),
        Some("killed: the run was stopped")
    );
}

/// A process whose lease lapses (a long pause, a partition) stops acting as the run's owner:
/// it kills the run's tasks and writes nothing more, leaving the run for another to adopt.
#[tokio::test(start_paused = true)]
async fn a_process_that_lost_its_lease_kills_its_tasks_and_leaves_the_run_to_be_adopted() {
    let f = fixture();
    let store = SqliteStore::open(&f.db).unwrap();
    let executor = FakeExecutor::new(&f.db, &[("extract", &[Step::Hang])]);
    let owner_engine = engine(&f, &executor);
    let spec = spec(&f);
    let run = owner_engine.create_run(&spec).await.unwrap();
    let (_keep, control) = tokio::sync::watch::channel(Control::Run);
    let (lease, db) = (owner_engine.lease.clone(), f.db.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // As the database sees it, the lease is gone; the next renewal finds out.
        let id = lease.id().expect("the run's lease is taken");
        vane_store::LeaseStore::release_lease(&SqliteStore::open(&db).unwrap(), &id).unwrap();
    });
    let lost = owner_engine.execute(run, &spec, control).await;
    assert!(
        matches!(
            lost,
            Err(vane_engine::EngineError::Store(
                vane_store::StoreError::Fenced { .. }
            ))
        ),
        "{lost:?}"
    );
    // The hanging task was killed (execute waits for it), and nothing after the loss was
    // recorded: the attempt still shows running, for the adopter to close.
    let seen = store.run(run).unwrap();
    assert_eq!(seen.run.state, RunState::Running);
    assert_eq!(seen.tasks[0].attempts[0].state, AttemptState::Running);
    let owner = seen.run.owner.clone().unwrap();
    assert_eq!(owner.lease_held, Some(false));

    // Another process adopts it; the first one takes a new lease for what it does next.
    let other = FakeExecutor::new(&f.db, &[]);
    let adopter = Engine {
        agents: None,
        lease: vane_engine::Lease::new(
            "other-host",
            vane_store::LeaseRole::Scheduler,
            vane_store::DEFAULT_LEASE_TTL,
        ),
        host: "other-host".into(),
        ..engine(&f, &other)
    };
    assert!(vane_engine::adopt(&adopter, &seen.run).await.unwrap());
    let adopted = store.run(run).unwrap();
    assert_eq!(adopted.run.state, RunState::Queued);
    let attempt = &adopted.tasks[0].attempts[0];
    assert_eq!(attempt.state, AttemptState::Failed);
    assert!(
        attempt
            .reason
            .as_deref()
            .unwrap()
            .contains("scheduler lost")
    );
    // Adopting the same sighting again changes nothing.
    assert!(!vane_engine::adopt(&adopter, &seen.run).await.unwrap());
    let fresh = owner_engine
        .lease
        .current(&owner_engine.store)
        .await
        .unwrap();
    assert_ne!(Some(fresh), owner.lease);
}
