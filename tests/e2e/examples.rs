//! Every DAG in the repository's `dags/` folder is a fixture: it validates, and it runs to
//! success from a fresh copy, exactly as a new user would run it.

use std::fs;
use std::path::Path;

use crate::harness::{Backend, Project};

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
pub(crate) fn examples() -> Project {
    examples_on(Backend::Sqlite)
}

/// [`examples`] on the given backend.
pub(crate) fn examples_on(backend: Backend) -> Project {
    let p = Project::on(backend);
    let repo_dags = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dags");
    copy_tree(&repo_dags, &p.path().join("dags"));
    p
}

/// The example project after a good day (its model reaches production) and a day whose worse
/// candidate fails its canary gate and is rolled back.
pub(crate) fn good_then_rolled_back() -> Project {
    let p = examples();
    p.vane(&["run", "churn_retrain", "--date", "2026-03-02"])
        .success();
    p.vane(&[
        "run",
        "churn_retrain",
        "--date",
        "2026-03-03",
        "--param",
        "candidate_quality=worse",
    ])
    .failure();
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
    let model = p.work().join("serving/churn/production.json");
    assert!(
        model.is_file(),
        "churn_retrain put no model into production"
    );
}
