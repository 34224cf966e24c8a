//! The scheduler's passes (reload, ticks, recovery, the queue, heartbeats) and the runs they
//! start call the store only off the loop: the daemon runs real ticks of a real DAG against a
//! store that panics when called inside a tokio runtime.

#[path = "../../vane-engine/tests/support/off_loop.rs"]
mod off_loop;

use std::time::Duration;

use chrono::{Days, Utc};
use off_loop::OffLoop;
use vane_engine::{BlockingPool, Engine, Paths};
use vane_exec::ProcessExecutor;
use vane_store::{
    HeartbeatStore, RunFilter, RunState, SqliteStore, Store, StoreThreads, TickDecision,
};

#[tokio::test]
async fn a_pass_that_catches_up_ticks_and_runs_them_calls_the_store_only_off_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::create_dir_all(root.join("work")).unwrap();
    // Three midnights are due: two days ago, yesterday and today.
    let start = Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(2))
        .unwrap();
    std::fs::write(
        dags.join("daily.toml"),
        format!(
            r#"
[dag]
schedule = "0 0 * * *"
start_date = "{start}T00:00:00Z"
catchup = "all"
[tasks.export]
command = 'echo {{{{ ds }}}} > "{{{{ work }}}}/export-{{{{ ds }}}}.txt"'
outputs = {{ export = "{{{{ work }}}}/export-{{{{ ds }}}}.txt" }}
"#
        ),
    )
    .unwrap();
    let db = root.join("vane.db");
    let opened = db.clone();
    let store = StoreThreads::open(2, move || {
        Ok(Box::new(OffLoop(SqliteStore::open(&opened)?)) as Box<dyn Store + Send>)
    })
    .unwrap();
    let engine = Engine {
        store,
        executor: &ProcessExecutor,
        offload: &BlockingPool,
        paths: Paths {
            logs: root.join("logs"),
            work: root.join("work"),
            project_root: root.clone(),
            content: vane_engine::artifacts::ContentStore::local(&root.join("artifacts")).unwrap(),
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
    };
    let config = vane_daemon::Config {
        dags_dir: dags,
        shutdown_grace: Duration::from_secs(5),
        poll: Duration::from_millis(50),
        clock: vane_daemon::Clock::system(),
    };
    // The test's own connection, read from the test's side: it is not the daemon's store.
    let watcher = SqliteStore::open(&db).unwrap();
    let finished = |store: &SqliteStore| {
        let runs = store.runs(&RunFilter::default()).unwrap();
        runs.len() == 3 && runs.iter().all(|r| r.state.is_finished())
    };
    let all_ran = async {
        while !finished(&watcher) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    vane_daemon::run(engine, config, all_ran).await.unwrap();

    let runs = watcher.runs(&RunFilter::default()).unwrap();
    assert!(
        runs.iter().all(|r| r.state == RunState::Success),
        "{runs:?}"
    );
    let ticks = watcher.ticks("daily", 10).unwrap();
    assert_eq!(ticks.len(), 3);
    assert!(
        ticks
            .iter()
            .all(|t| matches!(t.decision, TickDecision::Run(_)))
    );
    let schedulers = watcher.schedulers().unwrap();
    assert_eq!(schedulers.len(), 1);
}
