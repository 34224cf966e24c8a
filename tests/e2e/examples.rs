//! Every DAG in the repository's `dags/` folder is a fixture: it validates, and it runs to
//! success from a fresh copy, exactly as a new user would run it.

use std::fs;
use std::path::Path;

use crate::harness::{Project, task};

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A project holding a copy of the repository's example DAGs and their task code.
fn examples() -> Project {
    let p = Project::new();
    let repo_dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    copy_tree(&repo_dags, &p.path().join("dags"));
    p
}

fn dag_ids() -> Vec<String> {
    let repo_dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    let mut ids: Vec<String> = fs::read_dir(repo_dags)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn every_example_dag_validates_and_runs_to_success() {
    let p = examples();
    p.vane(&["validate"]).success().stdout_contains("ok:");
    let ids = dag_ids();
    assert!(ids.len() >= 2, "the examples are missing: {ids:?}");
    for (run, id) in ids.iter().enumerate() {
        p.vane(&["run", id]).success();
        let show = p.show(run as i64 + 1);
        assert_eq!(show["dag_id"], id.as_str());
        assert_eq!(show["state"], "success", "{id}: {show:#}");
        for t in show["tasks"].as_array().unwrap() {
            assert!(
                t["state"] == "success" || t["state"] == "skipped",
                "{id}: task {} ended {}",
                t["id"],
                t["state"]
            );
        }
    }
    let model = p.work().join("serving/churn/production/model.json");
    assert!(
        model.is_file(),
        "churn_retrain put no model into production"
    );
}

#[test]
fn a_corrupted_day_is_stopped_by_validation_and_nothing_is_deployed() {
    let p = examples();
    p.vane(&["run", "churn_retrain", "--date", "2026-11-22"])
        .success();
    let production = p.work().join("serving/churn/production/model.json");
    let before = fs::read(&production).unwrap();

    p.vane(&[
        "run",
        "churn_retrain",
        "--date",
        "2026-11-23",
        "--param",
        "corrupt=true",
    ])
    .failure();
    let show = p.show(2);
    assert_eq!(show["state"], "failed");
    assert_eq!(task(&show, "validate")["state"], "failed");
    for downstream in [
        "train",
        "evaluate",
        "deploy_shadow",
        "deploy_canary",
        "deploy_production",
    ] {
        assert_eq!(
            task(&show, downstream)["state"],
            "upstream_failed",
            "{downstream}"
        );
    }
    assert_eq!(
        task(&show, "rollback")["state"],
        "skipped",
        "nothing was promoted, so there is nothing to roll back"
    );
    let log = p.logs(2, "validate", None);
    assert!(
        log.contains("amount"),
        "validate names the bad column:\n{log}"
    );
    assert_eq!(
        fs::read(&production).unwrap(),
        before,
        "production model changed"
    );
}
