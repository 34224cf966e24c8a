//! Artifacts and the cache, with real processes and a real SQLite store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use vane_engine::{BlockingPool, Control, Engine, Paths, RunSpec};
use vane_exec::ProcessExecutor;
use vane_store::{ArtifactStore, RunDetail, RunState, SqliteStore, Store, StoreThreads, Trigger};

struct Project {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: SqliteStore,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let store = SqliteStore::open(&root.join("vane.db")).unwrap();
        Self {
            _dir: dir,
            root,
            store,
        }
    }

    fn engine(&self) -> Engine<'static> {
        let db = self.root.join("vane.db");
        Engine {
            store: StoreThreads::open(1, move || {
                Ok(Box::new(SqliteStore::open(&db)?) as Box<dyn Store + Send>)
            })
            .unwrap(),
            executor: &ProcessExecutor,
            offload: &BlockingPool,
            paths: Paths {
                logs: self.root.join("logs"),
                work: self.root.join("work"),
                project_root: self.root.clone(),
                content: vane_engine::artifacts::ContentStore::local(&self.root.join("artifacts"))
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

    /// Runs DAG `source` once, at hour `hour` of one day: the day is part of a cache key, so
    /// runs meant to share a cache share their day.
    async fn run(&self, source: &str, hour: u32) -> RunDetail {
        let dag = vane_dag::parse_dag(source, "ml").dag.unwrap();
        let engine = self.engine();
        let spec = RunSpec {
            dag: &dag,
            source,
            path: Path::new("dags/ml.toml"),
            params: Vec::new(),
            logical_date: Utc.with_ymd_and_hms(2026, 1, 5, hour, 0, 0).unwrap(),
            trigger: Trigger::Manual,
            git: None,
            backfill: None,
        };
        let run = engine.create_run(&spec).await.unwrap();
        let (_keep, control) = tokio::sync::watch::channel(Control::Run);
        engine.execute(run, &spec, control).await.unwrap();
        self.store.run(run).unwrap()
    }

    fn lines(&self, name: &str) -> usize {
        std::fs::read_to_string(self.root.join(name))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

const CACHED: &str = r#"
[tasks.train]
command = 'echo ran >> ran.log; echo model > "{{ work }}/model.txt"'
outputs = { model = "{{ work }}/model.txt" }
cache = true
"#;

#[tokio::test]
async fn a_cache_hit_whose_stored_copy_is_gone_runs_the_task_again() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join("work")).unwrap();
    p.run(CACHED, 1).await;
    std::fs::remove_dir_all(p.root.join("artifacts")).unwrap();

    let second = p.run(CACHED, 2).await;
    assert_eq!(second.run.state, RunState::Success);
    assert_eq!(
        p.lines("ran.log"),
        2,
        "without its stored copy the cache is not used"
    );
    assert_eq!(second.tasks[0].attempts[0].reason, None);

    let third = p.run(CACHED, 3).await;
    assert_eq!(
        p.lines("ran.log"),
        2,
        "the second run stored the copy again"
    );
    assert_eq!(
        third.tasks[0].attempts[0].reason.as_deref(),
        Some("cached: reused outputs of run 2")
    );
}

#[tokio::test]
async fn a_missing_input_fails_the_attempt_before_its_command_runs() {
    let p = Project::new();
    let source = r#"
[tasks.prepare]
command = "echo ran >> ran.log"
inputs = { raw = "data/raw.csv" }
"#;
    let detail = p.run(source, 1).await;
    assert_eq!(detail.run.state, RunState::Failed);
    let reason = detail.tasks[0].attempts[0].reason.clone().unwrap();
    assert!(
        reason.starts_with("declared input `raw` does not exist:")
            && reason.contains("data/raw.csv"),
        "{reason}"
    );
    assert_eq!(p.lines("ran.log"), 0);
    let log = std::fs::read_to_string(&detail.tasks[0].attempts[0].log_path).unwrap();
    assert!(log.contains(&reason), "{log}");
}

#[tokio::test]
async fn tasks_without_inputs_or_outputs_record_no_artifacts() {
    let p = Project::new();
    let detail = p
        .run(
            "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\n",
            1,
        )
        .await;
    assert_eq!(detail.run.state, RunState::Success);
    assert!(p.store.artifact_versions(None).unwrap().is_empty());
    assert!(!p.root.join("artifacts").exists());
}
