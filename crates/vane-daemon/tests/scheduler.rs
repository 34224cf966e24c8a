//! The scheduler loop against a real SQLite store and a scripted executor, on tokio's paused
//! time: hours of schedule in milliseconds, every assertion read from the store as `vane runs`
//! and `vane status` would show it.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use vane_daemon::{Clock, Config};
use vane_engine::{Engine, Paths};
use vane_exec::{ExecError, Executor, Hold, Job, KillSwitch, Launched, Outcome};
use vane_store::{
    HeartbeatStore, RunFilter, RunRecord, RunState, SchedulerRecord, SqliteStore, Store, TaskState,
    TickDecision, TickRecord, Trigger,
};

/// How long a scripted task runs before it exits with `code`, unless it is killed first.
#[derive(Clone, Copy)]
struct Step {
    runs: Duration,
    code: i32,
}

const SECOND: Step = Step {
    runs: Duration::from_secs(1),
    code: 0,
};

fn succeeds_after(runs: Duration) -> Step {
    Step { runs, code: 0 }
}

/// Runs tasks without processes: the next scripted step, or `default` once the script is spent.
struct FakeExecutor {
    script: Mutex<VecDeque<Step>>,
    default: Step,
}

impl FakeExecutor {
    /// Leaked: the daemon's engine lives as long as the process, as in `vane scheduler`.
    fn new(script: &[Step], default: Step) -> &'static Self {
        Box::leak(Box::new(Self {
            script: Mutex::new(script.iter().copied().collect()),
            default,
        }))
    }
}

impl Executor for FakeExecutor {
    fn launch(&self, job: Job) -> Result<Launched, ExecError> {
        let (launched, hold) = self.launch_held(job)?;
        hold.release();
        Ok(launched)
    }

    /// As the real executor: the command begins at the release, and never without it.
    fn launch_held(&self, _job: Job) -> Result<(Launched, Hold), ExecError> {
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(self.default);
        let (go, begin) = oneshot::channel::<()>();
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
            let outcome = tokio::select! {
                () = tokio::time::sleep(step.runs) => Outcome::Exited { code: step.code },
                () = watcher.killed() => Outcome::Cancelled,
            };
            let _ = tx.send(outcome);
        });
        let launched = Launched {
            pid: 4242,
            start_time: None,
            done,
            kill,
        };
        Ok((
            launched,
            Hold::new(move || {
                let _ = go.send(());
            }),
        ))
    }
}

/// A DAG folder and a database in a temp dir, and a wall clock that starts at `start` and
/// moves with tokio's paused time.
struct Harness {
    dir: tempfile::TempDir,
    clock: Clock,
    /// A connection of its own, as `vane runs` or `vane pause` would open beside the daemon.
    store: SqliteStore,
}

impl Harness {
    fn new(start: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dags")).unwrap();
        let start = at(start);
        let store = SqliteStore::open(&dir.path().join("vane.db")).unwrap();
        Self {
            dir,
            clock: Clock::starting_at(start),
            store,
        }
    }

    fn dag(&self, id: &str, source: &str) {
        std::fs::write(self.dags().join(format!("{id}.toml")), source).unwrap();
    }

    fn dags(&self) -> PathBuf {
        self.dir.path().join("dags")
    }

    fn config(&self, poll: Duration) -> Config {
        Config {
            dags_dir: self.dags(),
            shutdown_grace: Duration::from_secs(60),
            poll,
            clock: self.clock,
        }
    }

    fn engine(&self, executor: &'static FakeExecutor) -> Engine<'static> {
        let root = self.dir.path();
        let store = SqliteStore::open(&root.join("vane.db")).unwrap();
        Engine {
            // Inline: paused time would jump ahead while the loop waited on a store thread.
            store: vane_store::StoreThreads::inline(Box::new(store)),
            offload: &vane_engine::BlockingPool,
            executor,
            paths: Paths {
                logs: root.join("logs"),
                work: root.join("work"),
                project_root: root.to_path_buf(),
                content: vane_engine::artifacts::ContentStore::local(&root.join("artifacts"))
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

    /// Sleeps (virtually) until the wall clock reads `when`.
    async fn until(&self, when: &str) {
        let wait = (at(when) - self.clock.now()).to_std().unwrap();
        tokio::time::sleep(wait).await;
    }

    /// Creates a run of the DAG `source` of file `<id>.toml`, as another scheduler, a
    /// `vane trigger` or a `vane run` of the same database would.
    async fn create_run(
        &self,
        executor: &'static FakeExecutor,
        id: &str,
        source: &str,
        logical_date: DateTime<Utc>,
        trigger: Trigger,
    ) -> vane_store::RunId {
        let dag = vane_dag::parse_dag(source, id).dag.unwrap();
        self.engine(executor)
            .create_run(&vane_engine::RunSpec {
                dag: &dag,
                source,
                path: &self.dags().join(format!("{id}.toml")),
                params: Vec::new(),
                logical_date,
                trigger,
                git: None,
                backfill: None,
            })
            .await
            .unwrap()
    }

    /// Runs a scheduler while `script` runs; once it is done, stops the scheduler (as SIGTERM
    /// does) and returns when the scheduler has drained.
    async fn scheduling<T>(
        &self,
        executor: &'static FakeExecutor,
        config: Config,
        script: impl Future<Output = T>,
    ) -> T {
        let (stop, stopped) = oneshot::channel::<()>();
        let daemon = vane_daemon::run(self.engine(executor), config, async {
            let _ = stopped.await;
        });
        let script = async {
            let out = script.await;
            let _ = stop.send(());
            out
        };
        let (served, out) = tokio::join!(daemon, script);
        served.unwrap();
        out
    }

    /// Runs of `dag`, by logical date.
    fn runs(&self, dag: &str) -> Vec<RunRecord> {
        let mut runs = self
            .store
            .runs(&RunFilter {
                dag_id: Some(dag),
                ..RunFilter::default()
            })
            .unwrap();
        runs.sort_by_key(|r| r.logical_date);
        runs
    }

    fn run_dates(&self, dag: &str) -> Vec<DateTime<Utc>> {
        self.runs(dag).iter().map(|r| r.logical_date).collect()
    }

    fn states(&self, dag: &str) -> Vec<RunState> {
        self.runs(dag).iter().map(|r| r.state).collect()
    }

    /// Recorded ticks of `dag`, oldest first.
    fn schedulers(&self) -> Vec<SchedulerRecord> {
        self.store.schedulers().unwrap()
    }

    fn ticks(&self, dag: &str) -> Vec<TickRecord> {
        let mut ticks = self.store.ticks(dag, 0).unwrap();
        ticks.reverse();
        ticks
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().into()
}

/// Every tick of a five-minute grid from `first` to `last`, both included.
fn every_five_minutes(first: &str, last: &str) -> Vec<DateTime<Utc>> {
    let (mut tick, last) = (at(first), at(last));
    let mut ticks = Vec::new();
    while tick <= last {
        ticks.push(tick);
        tick += chrono::Duration::minutes(5);
    }
    ticks
}

fn five_minutely(extra: &str) -> String {
    format!("[dag]\nschedule = \"*/5 * * * *\"\n{extra}\n[tasks.a]\ncommand = \"true\"\n")
}

const POLL: Duration = Duration::from_millis(500);

#[tokio::test(start_paused = true)]
async fn a_five_minute_dag_makes_exactly_one_run_per_tick_over_an_hour() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("every5", &five_minutely(""));
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), h.until("2026-11-23T11:00:30Z"))
        .await;

    // A new DAG starts with its next tick: 10:00 itself was before the scheduler saw it.
    let grid = every_five_minutes("2026-11-23T10:05:00Z", "2026-11-23T11:00:00Z");
    assert_eq!(h.run_dates("every5"), grid);
    for run in h.runs("every5") {
        assert_eq!(
            (run.trigger, run.state),
            (Trigger::Scheduled, RunState::Success),
            "{run:?}"
        );
    }
    let ticks = h.ticks("every5");
    assert_eq!(
        ticks.iter().map(|t| t.logical_date).collect::<Vec<_>>(),
        grid
    );
    for (tick, run) in ticks.iter().zip(h.runs("every5")) {
        assert_eq!(tick.decision, TickDecision::Run(run.id));
    }
}

/// A scheduler runs a DAG from 10:00 to 10:12, is down for two hours, then runs again from
/// 12:12 for `again_for`.
async fn down_for_two_hours(h: &Harness, again_for: Duration) {
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), h.until("2026-11-23T10:12:00Z"))
        .await;
    h.until("2026-11-23T12:12:00Z").await;
    h.scheduling(executor, h.config(POLL), tokio::time::sleep(again_for))
        .await;
}

#[tokio::test(start_paused = true)]
async fn after_a_long_gap_catchup_off_makes_one_run_not_a_backlog() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("every5", &five_minutely("catchup = false"));
    down_for_two_hours(&h, Duration::from_secs(60)).await;

    assert_eq!(
        h.run_dates("every5"),
        vec![
            at("2026-11-23T10:05:00Z"),
            at("2026-11-23T10:10:00Z"),
            at("2026-11-23T12:10:00Z"),
        ],
        "only the most recent missed tick runs"
    );
    assert!(h.states("every5").iter().all(|s| *s == RunState::Success));
    // The rest of the gap is recorded as skipped, with the reason.
    let missed = every_five_minutes("2026-11-23T10:15:00Z", "2026-11-23T12:05:00Z");
    let skipped: Vec<_> = h
        .ticks("every5")
        .into_iter()
        .filter(|t| matches!(&t.decision, TickDecision::Skipped(r) if r.contains("catchup = \"latest\"")))
        .map(|t| t.logical_date)
        .collect();
    assert_eq!(skipped, missed);
}

#[tokio::test(start_paused = true)]
async fn after_a_long_gap_catchup_all_runs_every_missed_tick() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("every5", &five_minutely("catchup = \"all\""));
    // 24 missed one-second runs, one at a time, well within two minutes.
    down_for_two_hours(&h, Duration::from_secs(120)).await;

    assert_eq!(
        h.run_dates("every5"),
        every_five_minutes("2026-11-23T10:05:00Z", "2026-11-23T12:10:00Z")
    );
    assert!(h.states("every5").iter().all(|s| *s == RunState::Success));
    assert!(
        h.ticks("every5")
            .iter()
            .all(|t| matches!(t.decision, TickDecision::Run(_)))
    );
}

/// Tasks that take seven minutes, so each run is still going when the next five-minute tick
/// comes: 10:05 starts the first run, which ends at 10:12 unless something stops it.
const SEVEN_MINUTES: Duration = Duration::from_secs(7 * 60);

#[tokio::test(start_paused = true)]
async fn overlap_skip_records_a_tick_that_comes_while_a_run_is_active_as_skipped() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    // `skip` is the default.
    h.dag("slow", &five_minutely(""));
    let executor = FakeExecutor::new(&[], succeeds_after(SEVEN_MINUTES));
    h.scheduling(executor, h.config(POLL), h.until("2026-11-23T10:23:00Z"))
        .await;

    let runs = h.runs("slow");
    assert_eq!(
        h.run_dates("slow"),
        vec![at("2026-11-23T10:05:00Z"), at("2026-11-23T10:15:00Z")]
    );
    assert_eq!(h.states("slow"), vec![RunState::Success; 2]);
    let decisions: Vec<_> = h
        .ticks("slow")
        .into_iter()
        .map(|t| (t.logical_date, t.decision))
        .collect();
    let still_running = |run: &RunRecord| {
        TickDecision::Skipped(format!("overlap: run {} is still running", run.id))
    };
    assert_eq!(
        decisions,
        vec![
            (at("2026-11-23T10:05:00Z"), TickDecision::Run(runs[0].id)),
            (at("2026-11-23T10:10:00Z"), still_running(&runs[0])),
            (at("2026-11-23T10:15:00Z"), TickDecision::Run(runs[1].id)),
            (at("2026-11-23T10:20:00Z"), still_running(&runs[1])),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn overlap_queue_starts_a_tick_that_comes_while_a_run_is_active_when_that_run_ends() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("slow", &five_minutely("overlap = \"queue\""));
    let executor = FakeExecutor::new(&[], succeeds_after(SEVEN_MINUTES));
    h.scheduling(executor, h.config(POLL), async {
        h.until("2026-11-23T10:11:00Z").await;
        assert_eq!(h.states("slow"), vec![RunState::Running, RunState::Queued]);
        // The first run ends at 10:12; the second starts at once, not at the next poll.
        h.until("2026-11-23T10:12:00.100Z").await;
        assert_eq!(h.states("slow"), vec![RunState::Success, RunState::Running]);
        h.until("2026-11-23T10:16:00Z").await;
        assert_eq!(
            h.states("slow"),
            vec![RunState::Success, RunState::Running, RunState::Queued]
        );
        // 10:12 + 7 minutes.
        h.until("2026-11-23T10:19:00.100Z").await;
        assert_eq!(
            h.states("slow"),
            vec![RunState::Success, RunState::Success, RunState::Running]
        );
    })
    .await;
    assert_eq!(
        h.run_dates("slow"),
        every_five_minutes("2026-11-23T10:05:00Z", "2026-11-23T10:15:00Z")
    );
}

#[tokio::test(start_paused = true)]
async fn overlap_cancel_previous_stops_the_active_run_and_starts_the_new_tick() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("slow", &five_minutely("overlap = \"cancel_previous\""));
    let executor = FakeExecutor::new(&[], succeeds_after(SEVEN_MINUTES));
    h.scheduling(executor, h.config(POLL), async {
        h.until("2026-11-23T10:09:59Z").await;
        assert_eq!(h.states("slow"), vec![RunState::Running]);
        h.until("2026-11-23T10:10:00.100Z").await;
        assert_eq!(h.states("slow"), vec![RunState::Failed, RunState::Running]);
    })
    .await;

    let first = &h.runs("slow")[0];
    assert_eq!(
        first.reason.as_deref(),
        Some("superseded by a newer tick (overlap = \"cancel_previous\")")
    );
    // Its task was killed, not left to finish.
    let task = &h.store.run(first.id).unwrap().tasks[0];
    assert_eq!(task.state, TaskState::Failed, "{task:?}");
}

/// Regression: with two schedulers on one database, the one that came second to a tick found
/// the other's run for that very tick active and, with `cancel_previous`, failed it as
/// superseded: the tick lost its only run.
#[tokio::test(start_paused = true)]
async fn a_tick_another_scheduler_already_ran_is_not_cancelled_as_its_previous_run() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    let source = five_minutely("overlap = \"cancel_previous\"");
    h.dag("slow", &source);
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), async {
        // Just before this scheduler's pass at 10:05:00, the other one decides the tick.
        h.until("2026-11-23T10:04:59.900Z").await;
        h.create_run(
            executor,
            "slow",
            &source,
            at("2026-11-23T10:05:00Z"),
            Trigger::Scheduled,
        )
        .await;
        h.until("2026-11-23T10:05:30Z").await;
    })
    .await;

    let runs = h.runs("slow");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, RunState::Success, "{:?}", runs[0]);
}

/// A manual run for a tick's date, triggered before the tick (`vane trigger --date`), is that
/// tick's run: it was skipped as an overlap with itself, and is now recorded as its run.
#[tokio::test(start_paused = true)]
async fn a_manual_run_for_a_coming_tick_is_recorded_as_that_ticks_run() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    let source = five_minutely("");
    h.dag("slow", &source);
    let executor = FakeExecutor::new(&[], succeeds_after(SEVEN_MINUTES));
    let manual = h
        .scheduling(executor, h.config(POLL), async {
            h.until("2026-11-23T10:04:00Z").await;
            let run = h
                .create_run(
                    executor,
                    "slow",
                    &source,
                    at("2026-11-23T10:05:00Z"),
                    Trigger::Manual,
                )
                .await;
            h.until("2026-11-23T10:05:30Z").await;
            run
        })
        .await;

    let decisions: Vec<_> = h
        .ticks("slow")
        .into_iter()
        .map(|t| (t.logical_date, t.decision))
        .collect();
    assert_eq!(
        decisions,
        vec![(at("2026-11-23T10:05:00Z"), TickDecision::Run(manual))]
    );
}

/// Regression: `cancel_previous` stopped only runs this scheduler executed; a run another
/// scheduler (or a `vane run`) executed went on, and the new tick waited behind it as with
/// `queue`. Its owner is now asked to stop it, as `vane stop` asks.
#[tokio::test(start_paused = true)]
async fn cancel_previous_asks_another_process_to_stop_the_run_it_executes() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    let source = five_minutely("overlap = \"cancel_previous\"");
    h.dag("slow", &source);
    let executor = FakeExecutor::new(&[], SECOND);
    let previous = h
        .scheduling(executor, h.config(POLL), async {
            h.until("2026-11-23T10:00:01Z").await;
            let run = h
                .create_run(
                    executor,
                    "slow",
                    &source,
                    at("2026-11-23T10:05:00Z"),
                    Trigger::Scheduled,
                )
                .await;
            // Executed by a scheduler on another host, alive all along.
            let elsewhere = vane_store::Owner {
                host: "other-host".into(),
                pid: 1,
                start_time: Some(1),
                lease: None,
                lease_held: None,
            };
            assert!(
                h.store
                    .claim_run(run, &elsewhere, h.clock.now())
                    .unwrap()
                    .is_some()
            );
            h.until("2026-11-23T10:10:00.600Z").await;
            run
        })
        .await;

    let asked = h.store.run(previous).unwrap().run.stop_request;
    assert!(
        asked
            .as_ref()
            .is_some_and(|r| r.describe().contains("superseded by a newer tick")),
        "{asked:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dag_edited_on_disk_is_picked_up_within_one_poll() {
    // Passes fall at .25 and .75 of each second, and on the tick.
    let h = Harness::new("2026-11-23T10:00:00.250Z");
    h.dag("every5", &five_minutely(""));
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), async {
        // Just after a pass, and more than one poll before the 10:05 tick.
        h.until("2026-11-23T10:04:59.300Z").await;
        h.dag(
            "every5",
            "[dag]\nschedule = \"*/5 * * * *\"\n[tasks.a]\ncommand = \"echo edited\"\n",
        );
        h.until("2026-11-23T10:05:00.100Z").await;
    })
    .await;

    let runs = h.runs("every5");
    assert_eq!(h.run_dates("every5"), vec![at("2026-11-23T10:05:00Z")]);
    let source = h.store.dag_source(runs[0].dag_version).unwrap();
    assert!(
        source.contains("echo edited"),
        "the 10:05 run uses the DAG as edited at 10:04:59.3:\n{source}"
    );
}

/// Regression: a scheduler restarted while a task waited for its retry ("retry 1 of 2 in
/// 10m") ran the retry at once, spending the retries a delay was set to space out.
#[tokio::test(start_paused = true)]
async fn a_retry_waits_out_its_delay_across_a_scheduler_restart() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    let source = "[tasks.a]\ncommand = \"fetch\"\nretries = 2\nretry_delay = \"10m\"\n";
    h.dag("flaky", source);
    let fails = Step {
        runs: Duration::from_secs(1),
        code: 3,
    };
    let executor = FakeExecutor::new(&[], fails);
    let attempts = |h: &Harness| {
        h.store.run(h.runs("flaky")[0].id).unwrap().tasks[0]
            .attempts
            .len()
    };
    h.scheduling(executor, h.config(POLL), async {
        h.create_run(executor, "flaky", source, h.clock.now(), Trigger::Manual)
            .await;
        h.until("2026-11-23T10:00:30Z").await;
    })
    .await;
    assert_eq!(attempts(&h), 1);
    h.scheduling(executor, h.config(POLL), async {
        h.until("2026-11-23T10:05:00Z").await;
        assert_eq!(attempts(&h), 1, "the retry waits for its delay");
        h.until("2026-11-23T10:11:00Z").await;
    })
    .await;
    assert_eq!(attempts(&h), 2);
}

#[tokio::test(start_paused = true)]
async fn a_paused_dag_makes_no_runs_and_on_unpause_its_missed_ticks_follow_catchup() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("every5", &five_minutely(""));
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), async {
        // `vane pause`, from another process.
        h.until("2026-11-23T10:02:00Z").await;
        h.store.set_paused("every5", true).unwrap();
        h.until("2026-11-23T11:02:00Z").await;
        assert_eq!(h.runs("every5"), vec![]);
        // Nothing is decided while paused: the ticks are decided on unpause.
        assert_eq!(h.ticks("every5"), vec![]);

        h.store.set_paused("every5", false).unwrap();
        h.until("2026-11-23T11:02:01Z").await;
        // catchup = "latest" (the default): the most recent missed tick runs at once.
        assert_eq!(h.run_dates("every5"), vec![at("2026-11-23T11:00:00Z")]);
        h.until("2026-11-23T11:05:30Z").await;
    })
    .await;

    // Back on time after the unpause.
    assert_eq!(
        h.run_dates("every5"),
        vec![at("2026-11-23T11:00:00Z"), at("2026-11-23T11:05:00Z")]
    );
    let skipped: Vec<_> = h
        .ticks("every5")
        .into_iter()
        .filter(|t| matches!(&t.decision, TickDecision::Skipped(r) if r.contains("paused")))
        .map(|t| t.logical_date)
        .collect();
    assert_eq!(
        skipped,
        every_five_minutes("2026-11-23T10:05:00Z", "2026-11-23T10:55:00Z")
    );
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_is_rewritten_every_heartbeat_interval_and_marked_stopped_at_shutdown() {
    assert_eq!(vane_store::HEARTBEAT_EVERY, Duration::from_secs(10));
    let h = Harness::new("2026-11-23T10:00:00Z");
    let executor = FakeExecutor::new(&[], SECOND);
    let last_heartbeat = || {
        let schedulers = h.schedulers();
        assert_eq!(schedulers.len(), 1, "{schedulers:?}");
        let s = &schedulers[0];
        assert_eq!(s.started_at, at("2026-11-23T10:00:00Z"));
        assert_eq!(s.stopped_at, None);
        s.last_heartbeat
    };
    h.scheduling(executor, h.config(POLL), async {
        // Written at start, then only once the interval has passed, however often passes run.
        h.until("2026-11-23T10:00:00.200Z").await;
        assert_eq!(last_heartbeat(), at("2026-11-23T10:00:00Z"));
        h.until("2026-11-23T10:00:09.800Z").await;
        assert_eq!(last_heartbeat(), at("2026-11-23T10:00:00Z"));
        h.until("2026-11-23T10:00:10.200Z").await;
        assert_eq!(last_heartbeat(), at("2026-11-23T10:00:10Z"));
        h.until("2026-11-23T10:00:25.200Z").await;
        assert_eq!(last_heartbeat(), at("2026-11-23T10:00:20Z"));
    })
    .await;

    let stopped = at("2026-11-23T10:00:25.200Z");
    let schedulers = h.schedulers();
    assert_eq!(
        schedulers
            .iter()
            .map(|s| (s.last_heartbeat, s.stopped_at))
            .collect::<Vec<_>>(),
        vec![(stopped, Some(stopped))]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_running_tasks_finish_then_leaves_the_run_to_resume_on_the_next_start() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag(
        "two",
        "[dag]\nschedule = \"*/5 * * * *\"\n[tasks.a]\ncommand = \"true\"\n\
         [tasks.b]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
    );
    let executor = FakeExecutor::new(&[], succeeds_after(Duration::from_secs(90)));
    let config = Config {
        shutdown_grace: Duration::from_secs(300),
        ..h.config(POLL)
    };
    // Task a runs from 10:05 to 10:06:30; the stop comes at 10:06.
    h.scheduling(executor, config.clone(), h.until("2026-11-23T10:06:00Z"))
        .await;
    assert_eq!(
        h.clock.now(),
        at("2026-11-23T10:06:30Z"),
        "the scheduler stops once the running task is done, not at the end of the grace period"
    );
    let run = &h.runs("two")[0];
    assert_eq!((run.state, &run.owner), (RunState::Queued, &None));
    let tasks = h.store.run(run.id).unwrap().tasks;
    let tasks: Vec<_> = tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.state, t.attempts.len()))
        .collect();
    assert_eq!(
        tasks,
        vec![("a", TaskState::Success, 1), ("b", TaskState::Queued, 0)],
        "b did not start after the stop"
    );

    h.until("2026-11-23T10:07:00Z").await;
    h.scheduling(executor, config, h.until("2026-11-23T10:09:00Z"))
        .await;
    let run = &h.runs("two")[0];
    assert_eq!(run.state, RunState::Success);
    let tasks = h.store.run(run.id).unwrap().tasks;
    assert_eq!(
        tasks.iter().map(|t| t.attempts.len()).collect::<Vec<_>>(),
        vec![1, 1],
        "the resumed run ran b only"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_kills_a_task_still_running_after_the_grace_period_and_the_run_resumes() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    h.dag("every5", &five_minutely(""));
    let executor = FakeExecutor::new(&[succeeds_after(Duration::from_secs(600))], SECOND);
    // The 10:05 run's task would run until 10:15; the stop comes at 10:06.
    h.scheduling(executor, h.config(POLL), h.until("2026-11-23T10:06:00Z"))
        .await;
    assert_eq!(
        h.clock.now(),
        at("2026-11-23T10:07:00Z"),
        "killed when the 60 s grace period is over"
    );
    let run = &h.runs("every5")[0];
    assert_eq!((run.state, &run.owner), (RunState::Queued, &None));
    assert!(h.schedulers().iter().all(|s| s.stopped_at.is_some()));

    h.until("2026-11-23T10:08:00Z").await;
    h.scheduling(executor, h.config(POLL), h.until("2026-11-23T10:08:30Z"))
        .await;
    let run = &h.runs("every5")[0];
    assert_eq!(run.state, RunState::Success);
    let task = &h.store.run(run.id).unwrap().tasks[0];
    assert_eq!(
        task.attempts.len(),
        2,
        "the killed task ran again: {task:?}"
    );
}

const BERLIN_DAILY: &str = "[dag]\nschedule = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\
                            [tasks.a]\ncommand = \"true\"\n";

/// Three days of a daily 02:30 Europe/Berlin DAG, from `start`.
async fn three_berlin_days(start: &str) -> Harness {
    let h = Harness::new(start);
    h.dag("nightly", BERLIN_DAILY);
    let executor = FakeExecutor::new(&[], SECOND);
    let hours = Duration::from_secs(72 * 3600);
    // The loop wakes for each tick whatever the poll; a long one keeps three days of passes
    // cheap.
    let poll = Duration::from_secs(600);
    h.scheduling(executor, h.config(poll), tokio::time::sleep(hours))
        .await;
    assert_eq!(h.states("nightly"), vec![RunState::Success; 3]);
    assert!(
        h.ticks("nightly")
            .iter()
            .all(|t| matches!(t.decision, TickDecision::Run(_)))
    );
    h
}

#[tokio::test(start_paused = true)]
async fn a_daily_job_in_the_spring_forward_gap_runs_once_at_the_first_valid_time() {
    // 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    let h = three_berlin_days("2026-03-28T00:00:00Z").await;
    assert_eq!(
        h.run_dates("nightly"),
        vec![
            at("2026-03-28T02:30:00+01:00"),
            at("2026-03-29T03:00:00+02:00"),
            at("2026-03-30T02:30:00+02:00"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_daily_job_in_the_fall_back_hour_runs_once_at_the_first_of_the_repeated_times() {
    // 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 happens twice that day.
    let h = three_berlin_days("2026-10-24T00:00:00Z").await;
    assert_eq!(
        h.run_dates("nightly"),
        vec![
            at("2026-10-24T02:30:00+02:00"),
            at("2026-10-25T02:30:00+02:00"),
            at("2026-10-26T02:30:00+01:00"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_orphaned_while_the_scheduler_is_up_is_adopted_and_completed() {
    let h = Harness::new("2026-11-23T10:00:00Z");
    let source = "[tasks.a]\ncommand = \"true\"\n";
    h.dag("manual", source);
    let executor = FakeExecutor::new(&[], SECOND);
    h.scheduling(executor, h.config(POLL), async {
        h.until("2026-11-23T10:00:01Z").await;
        // A `vane run` on this host claimed the run, then died (`kill -9`).
        let run = h
            .create_run(executor, "manual", source, h.clock.now(), Trigger::Manual)
            .await;
        let gone = vane_store::Owner {
            host: "test-host".into(),
            // Never a Linux pid.
            pid: u32::MAX,
            start_time: Some(1),
            lease: None,
            lease_held: None,
        };
        assert!(
            h.store
                .claim_run(run, &gone, h.clock.now())
                .unwrap()
                .is_some()
        );
        // Orphans are looked for every 5 s; the adopted run's task takes 1 s.
        h.until("2026-11-23T10:00:06.500Z").await;
    })
    .await;

    let run = &h.runs("manual")[0];
    assert_eq!(run.state, RunState::Success, "{run:?}");
}
