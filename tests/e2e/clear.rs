//! `vane clear`: rerun tasks of a finished run as new attempts.

use crate::harness::{Backend, Project, attempts, task};

const FLAKY: &str = r#"
[tasks.prep]
command = "echo prep"
[tasks.work]
command = "test -f \"$VANE_WORK/fixed\" && echo fixed || { echo broken; exit 1; }"
depends_on = ["prep"]
retries = 1
retry_delay = "100ms"
[tasks.report]
command = "echo report"
depends_on = ["work"]
"#;

fn clearing_failed_tasks_reruns_them_with_a_fresh_retry_budget(backend: Backend) {
    let p = Project::on(backend).dag("flaky", FLAKY);
    p.vane(&["run", "flaky"]).failure();
    assert_eq!(attempts(&p.show(1), "work").len(), 2);
    std::fs::create_dir_all(p.work()).unwrap();
    std::fs::write(p.work().join("fixed"), "").unwrap();

    p.vane(&["clear", "1", "--failed-only", "--foreground"])
        .success()
        .stderr_contains("cleared work, report");
    let show = p.show(1);
    assert_eq!(show["state"], "success");
    assert_eq!(
        attempts(&show, "prep").len(),
        1,
        "a task that succeeded is not rerun"
    );
    let work = attempts(&show, "work");
    assert_eq!(
        work.len(),
        3,
        "attempts are history: the rerun is attempt 3"
    );
    assert_eq!(work[2]["state"], "success");
    assert_eq!(task(&show, "report")["state"], "success");
    assert!(p.logs(1, "work", Some(1)).contains("broken"));
    assert!(p.logs(1, "work", None).contains("fixed"));
}

fn clear_queues_the_run_for_the_scheduler_by_default(backend: Backend) {
    let p = Project::on(backend).dag("flaky", FLAKY);
    p.vane(&["run", "flaky"]).failure();
    p.vane(&["clear", "1", "--task", "work", "--downstream"])
        .success()
        .stderr_contains("vane scheduler");
    let show = p.show(1);
    assert_eq!(show["state"], "queued");
    assert_eq!(task(&show, "prep")["state"], "success");
    assert_eq!(task(&show, "work")["state"], "queued");
    assert_eq!(task(&show, "report")["state"], "queued");
}

fn clearing_an_unknown_task_names_the_tasks_there_are(backend: Backend) {
    let p = Project::on(backend).dag("flaky", FLAKY);
    p.vane(&["run", "flaky"]).failure();
    p.vane(&["clear", "1", "--task", "nope"])
        .failure()
        .stderr_contains("run 1 has no task `nope`; its tasks: prep, work, report");
    assert_eq!(p.show(1)["state"], "failed", "nothing changed");
}

/// Airflow's "mark success": a person who fixed by hand what a task failed to do marks it
/// success; what depended on it runs, and the record says who and why.
fn a_failed_task_marked_success_lets_what_depends_on_it_run(backend: Backend) {
    let p = Project::on(backend).dag(
        "fixed",
        r#"
[tasks.load]
command = "exit 1"

[tasks.report]
command = "echo report"
depends_on = ["load"]
"#,
    );
    p.vane(&["run", "fixed"]).code(1);
    p.vane(&["mark", "1", "nope", "success"])
        .failure()
        .stderr_contains("run 1 has no task `nope`; its tasks: load, report");
    p.vane(&[
        "mark",
        "1",
        "load",
        "success",
        "--by",
        "alice",
        "--reason",
        "loaded the table by hand",
    ])
    .success()
    .stdout_contains("run 1 queued");
    let show = p.show(1);
    assert_eq!(task(&show, "load")["state"], "success", "{show:#}");
    assert_eq!(
        task(&show, "load")["reason"],
        "marked success by alice: loaded the table by hand",
        "{show:#}"
    );
    // Its one failed attempt stays: marking rewrites no history.
    assert_eq!(attempts(&show, "load").len(), 1, "{show:#}");
    assert_eq!(attempts(&show, "load")[0]["state"], "failed", "{show:#}");
    assert_eq!(task(&show, "report")["state"], "queued", "{show:#}");

    let mut daemon = p.scheduler(&[]);
    daemon.wait_for(
        "the run to succeed",
        std::time::Duration::from_secs(30),
        || (p.show(1)["state"] == "success").then_some(()),
    );
    let show = p.show(1);
    assert_eq!(attempts(&show, "report").len(), 1, "{show:#}");
    assert_eq!(
        attempts(&show, "load").len(),
        1,
        "load did not run again: {show:#}"
    );

    // Marked failed, the run ends failed, and says why.
    p.vane(&[
        "mark",
        "1",
        "report",
        "failed",
        "--by",
        "bob",
        "--reason",
        "wrong numbers",
    ])
    .success()
    .stdout_contains("run 1 failed: task `report` marked failed by bob: wrong numbers");
}

/// A logical date rerun with other params: the run keeps its date (one run per date), its
/// earlier attempts stay, and `vane show` says what the params were, who changed them and when.
fn a_run_is_rerun_with_other_params_and_the_change_is_recorded(backend: Backend) {
    let p = Project::on(backend).dag(
        "tuned",
        r#"
[params]
lr = 0.1
epochs = 3

[tasks.train]
command = "echo lr={{ params.lr }} epochs={{ params.epochs }} >> \"$VANE_WORK/trained\""
"#,
    );
    p.vane(&["run", "tuned", "--date", "2026-02-01"]).success();
    p.vane(&["run", "tuned", "--date", "2026-02-01"])
        .code(5)
        .stderr_contains("already has a run")
        // Regression: it named only `vane show` and "another --date", not the rerun.
        .stderr_contains("rerun it with `vane clear 1`");
    p.vane(&[
        "clear",
        "1",
        "--param",
        "lr=0.5",
        "--by",
        "carl",
        "--foreground",
    ])
    .success();
    assert_eq!(p.read_work("trained"), "lr=0.1 epochs=3\nlr=0.5 epochs=3\n");
    let show = p.show(1);
    assert_eq!(
        show["params"],
        serde_json::json!({ "lr": 0.5, "epochs": 3 }),
        "{show:#}"
    );
    assert_eq!(attempts(&show, "train").len(), 2, "{show:#}");
    let change = &show["param_changes"][0];
    assert_eq!(change["by"], "carl", "{show:#}");
    assert_eq!(change["before"]["lr"], 0.1, "{show:#}");
    assert_eq!(change["after"]["lr"], 0.5, "{show:#}");
    let text = p.vane(&["show", "1"]).success().stdout;
    assert!(text.contains("by carl: params were"), "{text}");
    p.vane(&["clear", "1", "--param", "nope=1"])
        .failure()
        .stderr_contains("DAG `tuned` has no param `nope`; its params: ");
}

crate::harness::on_both_backends!(
    a_run_is_rerun_with_other_params_and_the_change_is_recorded,
    a_failed_task_marked_success_lets_what_depends_on_it_run,
    clearing_failed_tasks_reruns_them_with_a_fresh_retry_budget,
    clear_queues_the_run_for_the_scheduler_by_default,
    clearing_an_unknown_task_names_the_tasks_there_are,
);

/// Regression: a run whose DAG's tasks changed could not be cleared, and the error said "start
/// a new run instead", which its logical date can never have (one run per date).
#[test]
fn a_run_whose_tasks_changed_says_how_it_can_still_be_cleared() {
    let p = Project::new().dag("daily", "[tasks.a]\ncommand = \"true\"\n");
    p.vane(&["run", "daily", "--date", "2026-02-01"]).success();
    p.write_dag(
        "daily",
        "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\n",
    );
    let out = p
        .vane(&["clear", "1"])
        .code(5)
        .stderr_contains("the DAG's tasks changed since run 1 (added: b)")
        .stderr_contains("put them back in the file to clear this run");
    assert!(!out.stderr.contains("start a new run"), "{}", out.stderr);
}
