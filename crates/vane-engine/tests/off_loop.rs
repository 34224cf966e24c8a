//! No database round trip runs on the thread that drives runs: a real DAG, with inputs,
//! outputs, a cache hit and a pool, runs with real processes against a store that panics when
//! called inside a tokio runtime.

#[path = "support/off_loop.rs"]
mod off_loop;

use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use off_loop::OffLoop;
use vane_engine::{BlockingPool, Control, Engine, Paths, RunSpec};
use vane_exec::ProcessExecutor;
use vane_store::{RunState, SqliteStore, Store, StoreThreads, Trigger};

const PIPELINE: &str = r#"
[tasks.prepare]
command = 'echo rows > "{{ work }}/data.csv"'
outputs = { data = "{{ work }}/data.csv" }
[tasks.train]
command = 'echo ran >> ran.log; cat "{{ work }}/data.csv" > "{{ work }}/model.txt"'
depends_on = ["prepare"]
inputs = { data = "{{ work }}/data.csv" }
outputs = { model = "{{ work }}/model.txt" }
cache = true
pool = "gpu"
"#;

#[tokio::test]
async fn a_run_with_artifacts_a_cache_hit_and_a_pool_calls_the_store_only_off_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("work")).unwrap();
    let db = root.join("vane.db");
    let opened = db.clone();
    let store = StoreThreads::open(2, move || {
        Ok(Box::new(OffLoop(SqliteStore::open(&opened)?)) as Box<dyn Store + Send>)
    })
    .unwrap();
    let mut limits = vane_dag::SchedulerConfig::default();
    limits.pools.insert("gpu".into(), 1);
    limits.max_active_tasks = Some(4);
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
        limits,
        builtin: None,
    };
    let dag = vane_dag::parse_dag(PIPELINE, "ml").dag.unwrap();
    let mut reasons = Vec::new();
    for hour in [1, 2] {
        let spec = RunSpec {
            dag: &dag,
            source: PIPELINE,
            path: Path::new("dags/ml.toml"),
            params: Vec::new(),
            logical_date: Utc.with_ymd_and_hms(2026, 1, 5, hour, 0, 0).unwrap(),
            trigger: Trigger::Manual,
            git: None,
            backfill: None,
        };
        let run = engine.create_run(&spec).await.unwrap();
        let (_keep, control) = tokio::sync::watch::channel(Control::Run);
        let state = engine.execute(run, &spec, control).await.unwrap();
        assert_eq!(state, RunState::Success);
        let detail = SqliteStore::open(&db).unwrap().run(run).unwrap();
        reasons.push(detail.tasks[1].attempts[0].reason.clone());
    }
    // The second run reused the first one's model: the cache lookup and restore ran too.
    assert_eq!(
        reasons,
        vec![None, Some("cached: reused outputs of run 1".into())]
    );
    let ran = std::fs::read_to_string(root.join("ran.log")).unwrap();
    assert_eq!(ran.lines().count(), 1);
}
