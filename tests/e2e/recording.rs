//! What a run records: DAG version, params, trigger, attempts, git state.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{Backend, Project, attempts};

const TWO_STEPS: &str = r#"
[params]
epochs = 5
rate = 0.5
name = "baseline"
fast = false

[tasks.prepare]
command = "echo preparing"

[tasks.train]
command = "echo training {{ params.epochs }}"
depends_on = ["prepare"]
"#;

fn is_sha256(hash: &Value) -> bool {
    hash.as_str()
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn runs_record_version_params_trigger_and_attempts() {
    let p = Project::new().dag("steps", TWO_STEPS);
    p.vane(&[
        "run",
        "steps",
        "--param",
        "epochs=7",
        "--date",
        "2026-11-23T02:00:00Z",
    ])
    .success();

    let runs = p.runs();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["id"], 1);
    assert_eq!(run["dag_id"], "steps");
    assert_eq!(run["state"], "success");
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["logical_date"], "2026-11-23T02:00:00+00:00");
    assert!(is_sha256(&run["dag_version"]["hash"]), "{run:#}");
    assert_eq!(
        run["params"],
        serde_json::json!({"epochs": 7, "rate": 0.5, "name": "baseline", "fast": false})
    );
    assert!(run["host"].as_str().is_some_and(|h| !h.is_empty()));
    for at in ["queued_at", "started_at", "ended_at"] {
        assert!(run[at].is_string(), "{at}: {run:#}");
    }

    let show = p.show(1);
    for id in ["prepare", "train"] {
        let a = attempts(&show, id);
        assert_eq!(a.len(), 1);
        let a = &a[0];
        assert!(a["pid"].as_u64().is_some_and(|pid| pid > 0), "{a:#}");
        assert!(a["host"].as_str().is_some_and(|h| !h.is_empty()), "{a:#}");
        assert!(a["started_at"].is_string(), "{a:#}");
        assert!(a["ended_at"].is_string(), "{a:#}");
        assert_eq!(a["exit_code"], 0, "{a:#}");
        let log = a["log_path"].as_str().expect("log_path");
        assert!(Path::new(log).is_file(), "log {log} exists");
        assert!(
            log.starts_with(p.root().join(".vane").join("logs").to_str().unwrap()),
            "logs live beside the database: {log}"
        );
    }
    assert_eq!(
        attempts(&show, "train")[0]["command"],
        "echo training 7",
        "the command as it ran, after templating"
    );
}

/// The same facts straight from the database, when the `sqlite3` tool is installed.
#[test]
fn attempts_are_rows_in_the_sqlite_database() {
    if Command::new("sqlite3").arg("--version").output().is_err() {
        eprintln!("skipped: no sqlite3 command");
        return;
    }
    let p = Project::new().dag("steps", TWO_STEPS);
    p.vane(&["run", "steps"]).success();
    let out = Command::new("sqlite3")
        .current_dir(p.path())
        .args([
            "-readonly",
            ".vane/vane.db",
            "SELECT task_id, attempt, state, exit_code, pid > 0, pid_start_time > 0, host <> '', \
             log_path <> '', started_at <= ended_at FROM attempts ORDER BY task_id",
        ])
        .output()
        .expect("run sqlite3");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "prepare|1|success|0|1|1|1|1|1\ntrain|1|success|0|1|1|1|1|1\n"
    );
}

#[test]
fn editing_a_dag_records_a_new_version() {
    let p = Project::new().dag("steps", TWO_STEPS);
    p.vane(&["run", "steps"]).success();
    p.vane(&["run", "steps"]).success();
    p.write_dag(
        "steps",
        &TWO_STEPS.replace("echo preparing", "echo preparing again"),
    );
    p.vane(&["run", "steps"]).success();

    let runs = p.runs();
    let version = |id: i64| -> (Value, Value) {
        let run = runs
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no run {id}"));
        (
            run["dag_version"]["id"].clone(),
            run["dag_version"]["hash"].clone(),
        )
    };
    let (first_id, first_hash) = version(1);
    let (second_id, second_hash) = version(2);
    let (third_id, third_hash) = version(3);
    assert!(is_sha256(&first_hash) && is_sha256(&third_hash));
    assert_eq!(
        (&first_id, &first_hash),
        (&second_id, &second_hash),
        "unchanged file"
    );
    assert_ne!(first_hash, third_hash, "edited file");
    assert_ne!(first_id, third_id, "edited file");
    assert_eq!(
        attempts(&p.show(3), "prepare")[0]["command"],
        "echo preparing again"
    );
}

pub(crate) fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .env(
            "GIT_CEILING_DIRECTORIES",
            dir.parent().unwrap_or(Path::new("/")),
        )
        .args([
            "-c",
            "user.name=vane tests",
            "-c",
            "user.email=tests@vane.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn git_head(dir: &Path) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .expect("run git");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn have_git() -> bool {
    let found = Command::new("git").arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: no git command");
    }
    found
}

#[test]
fn runs_record_the_git_commit_and_whether_the_tree_was_dirty() {
    if !have_git() {
        return;
    }
    let p = Project::new().dag("steps", TWO_STEPS);
    // A project that ignores vane's state folder, as vane's own repository does.
    p.write(".gitignore", "/.vane\n");
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "dags", ".gitignore"]);
    git(p.path(), &["commit", "-q", "-m", "DAGs"]);
    let head = git_head(p.path());
    assert_eq!(head.len(), 40);

    p.vane(&["run", "steps"]).success();
    let git_state = &p.runs()[0]["git"];
    assert_eq!(git_state["commit"], head.as_str(), "{git_state:#}");
    assert_eq!(git_state["dirty"], false, "{git_state:#}");

    p.write_dag("steps", &format!("{TWO_STEPS}\n# an uncommitted edit\n"));
    p.vane(&["run", "steps"]).success();
    let git_state = &p.runs()[0]["git"];
    assert_eq!(git_state["commit"], head.as_str(), "{git_state:#}");
    assert_eq!(git_state["dirty"], true, "{git_state:#}");

    // Outside a repository there is no git state at all.
    let outside = Project::new().dag("steps", TWO_STEPS);
    outside.vane(&["run", "steps"]).success();
    assert_eq!(outside.runs()[0]["git"], Value::Null);
}

/// A person commits their DAGs and runs one: nothing they wrote is uncommitted, yet
/// vane's own database (created in `.vane/` just before it asks git) makes the tree look
/// dirty unless the project happens to ignore `.vane/`.
#[test]
fn vane_own_state_folder_does_not_make_the_tree_dirty() {
    if !have_git() {
        return;
    }
    let p = Project::new().dag("steps", TWO_STEPS);
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "dags"]);
    git(p.path(), &["commit", "-q", "-m", "DAGs"]);

    p.vane(&["run", "steps"]).success();
    let git_state = &p.runs()[0]["git"];
    assert_eq!(git_state["commit"], git_head(p.path()).as_str());
    assert_eq!(
        git_state["dirty"], false,
        "every DAG file is committed, yet the run is recorded dirty: {git_state:#}"
    );
}

#[test]
fn attempts_are_rows_in_the_postgresql_database() {
    let p = Project::on(Backend::Postgres).dag("steps", TWO_STEPS);
    p.vane(&["run", "steps"]).success();
    let rows = p.sql(
        "SELECT task_id, attempt, state, exit_code, pid > 0, pid_start_time > 0, host <> '', \
         log_path <> '', started_at <= ended_at FROM attempts ORDER BY task_id",
    );
    assert_eq!(
        rows,
        "prepare|1|success|0|t|t|t|t|t\ntrain|1|success|0|t|t|t|t|t\n"
    );
    let status = p.vane(&["status"]).success().stdout;
    assert!(status.contains("(postgresql)"), "{status}");
    // The password-free URL is shown as given.
    assert!(status.contains(&p.database()), "{status}");
}

#[test]
fn state_dir_holds_logs_and_work_apart_from_the_database() {
    let p = Project::new().dag(
        "steps",
        "[tasks.write]\ncommand = \"echo made > $VANE_WORK/out.txt && echo logged\"\n",
    );
    p.vane(&["--state-dir", "state", "run", "steps"]).success();
    // The database stays where --db says; logs and the work folder move to the state folder.
    assert!(p.path().join(".vane/vane.db").exists());
    assert!(!p.path().join(".vane/logs").exists());
    assert_eq!(
        std::fs::read_to_string(p.path().join("state/work/out.txt")).unwrap(),
        "made\n"
    );
    let show = p.show(1);
    let log = attempts(&show, "write")[0]["log_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        log.starts_with(&p.root().join("state/logs").display().to_string()),
        "{log}"
    );
    p.vane(&["--state-dir", "state", "logs", "1", "write"])
        .success()
        .stdout_contains("logged");
}
