//! What a retried attempt of a rollout does with what the earlier attempt left behind.

use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::json;
use vane_dag::Template;
use vane_deploy::{Job, run_task};
use vane_store::{
    Change, NewDagVersion, NewRun, RegistryStore, RolloutStage, RunId, RunState, SqliteStore,
    Store, Trigger,
};

fn dag(dir: &Path, approval: bool) -> String {
    let d = dir.display();
    format!(
        r#"[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "{d}/model.json"
fallback = "{d}/fallback.json"
rollback = "echo restored >> {d}/restored.txt"

[tasks.rollout.stages.canary]
command = "echo canary >> {d}/stages.txt"
approval = {approval}

[tasks.rollout.stages.production]
command = "echo production >> {d}/stages.txt"
"#
    )
}

fn setup(dir: &Path, approval: bool) -> (SqliteStore, RunId, vane_dag::Dag) {
    std::fs::write(dir.join("model.json"), "{}").unwrap();
    std::fs::write(dir.join("fallback.json"), "{\"base\": 1}").unwrap();
    let source = dag(dir, approval);
    let parsed = vane_dag::parse_dag_with(
        &source,
        "churn",
        &vane_dag::Registry::none().kind(&vane_deploy::DEPLOY),
    );
    let dag = parsed
        .dag
        .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics));
    let store = SqliteStore::open_in_memory().unwrap();
    let version = store
        .record_dag_version(&NewDagVersion {
            dag_id: "churn",
            content_hash: "h",
            path: "dags/churn.toml",
            source: &source,
        })
        .unwrap();
    let run = store
        .create_run(&NewRun {
            dag_id: "churn",
            dag_version: version,
            logical_date: Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(),
            trigger: Trigger::Manual,
            params: json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks: &["rollout"],
            at: Utc::now(),
            records_tick: false,
            backfill: None,
        })
        .unwrap();
    store
        .apply(&[Change::Run {
            run,
            state: RunState::Running,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
    (store, run, dag)
}

/// A stage row as the first attempt left it (version 1 is the only candidate here).
fn left_behind(store: &SqliteStore, run: RunId, status: &str, by: Option<&str>) {
    store
        .set_rollout_stage(&RolloutStage {
            run_id: run,
            task_id: "rollout".into(),
            stage: "canary".into(),
            model: "churn".into(),
            version: 1,
            status: status.parse().unwrap(),
            detail: None,
            evidence: json!({ "stage": "canary" }),
            decided_by: by.map(str::to_owned),
            reason: None,
            updated_at: Utc::now(),
        })
        .unwrap();
}

fn attempt_2(store: &SqliteStore, run: RunId, dag: &vane_dag::Dag, dir: &Path) -> bool {
    let Some(spec) = dag.tasks[0]
        .builtin
        .as_ref()
        .and_then(|b| b.spec::<vane_deploy::DeploySpec>())
    else {
        panic!("not a deploy task");
    };
    let render = |t: &Template| t.render_plain(|_| String::new());
    run_task(
        store,
        &Job {
            dag_id: "churn",
            run,
            task_id: "rollout",
            attempt: 2,
            spec,
            render: &render,
            metrics: Some(dir.join("rollout.2.metrics")),
            content: &vane_engine::artifacts::ContentStore::local(&dir.join("artifacts")).unwrap(),
        },
    )
    .unwrap()
}

#[test]
fn an_approval_from_an_earlier_attempt_is_recorded_in_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run, dag) = setup(dir.path(), true);
    // The first attempt was approved at its canary and stopped before recording the stage.
    left_behind(&store, run, "approved", Some("alice"));
    assert!(attempt_2(&store, run, &dag, dir.path()));
    let ledger = store.ledger(Some("churn")).unwrap();
    let canary = ledger
        .iter()
        .find(|e| e.to_stage == "canary")
        .unwrap_or_else(|| panic!("no canary entry: {ledger:#?}"));
    assert_eq!(canary.actor, "user alice");
    assert_eq!(canary.evidence["approved_by"], "alice");
    let stages = std::fs::read_to_string(dir.path().join("stages.txt")).unwrap();
    assert_eq!(
        stages, "production\n",
        "the approved canary is not run again"
    );
}

#[test]
fn a_killed_attempt_is_rolled_back_before_the_next_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run, dag) = setup(dir.path(), false);
    // The first attempt was killed (its timeout, `vane stop`) during the canary it deployed.
    left_behind(&store, run, "running", None);
    assert!(attempt_2(&store, run, &dag, dir.path()));
    let restored = std::fs::read_to_string(dir.path().join("restored.txt")).unwrap();
    assert_eq!(restored, "restored\n", "the fallback was put back first");
    let stages = std::fs::read_to_string(dir.path().join("stages.txt")).unwrap();
    assert_eq!(
        stages, "canary\nproduction\n",
        "then the rollout started again"
    );
    let ledger = store.ledger(Some("churn")).unwrap();
    assert_eq!(ledger.last().unwrap().to_stage, "production");
}
