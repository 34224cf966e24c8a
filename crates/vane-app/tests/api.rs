//! The API's answers without a socket: each test calls `handle(Route, body)` on a real SQLite
//! database in a temporary folder and checks the status and JSON a client would get.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use vane_app::{App, AppError, HttpApi, Paths};
use vane_http::{Api, Reply, Route};
use vane_store::Store;

const DAG: &str = r#"
[params]
size = "small"

[tasks.speak]
command = "echo said {{ params.size }}"
"#;

struct Project {
    dir: tempfile::TempDir,
    api: HttpApi,
}

fn project() -> Project {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dags")).unwrap();
    std::fs::write(dir.path().join("dags/talk.toml"), DAG).unwrap();
    let api = HttpApi::new(app(dir.path())).unwrap();
    Project { dir, api }
}

fn app(root: &Path) -> App {
    let state = root.to_path_buf();
    App::new(Paths {
        dags: root.join("dags"),
        db: root.join("vane.db").display().to_string(),
        state_dir: None,
        config: root.join("vane.toml"),
        work: None,
        root: root.to_path_buf(),
    })
    .with_engine(Arc::new(move |kill_grace: Duration| {
        let db = state.join("vane.db");
        let store = vane_store::StoreThreads::open(1, move || {
            Ok(Box::new(vane_store::SqliteStore::open(&db)?) as Box<dyn Store + Send>)
        })?;
        Ok(vane_engine::Engine {
            store,
            offload: &vane_engine::BlockingPool,
            executor: &vane_exec::ProcessExecutor,
            paths: vane_engine::Paths {
                logs: state.join("logs"),
                work: state.join("work"),
                project_root: state.clone(),
                content: vane_engine::artifacts::ContentStore::local(&state.join("artifacts"))
                    .unwrap(),
            },
            host: vane_app::host(),
            kill_grace,
            agents: None,
            lease: vane_engine::Lease::new(
                "test-host",
                vane_store::LeaseRole::Command,
                vane_store::DEFAULT_LEASE_TTL,
            ),
            limits: Default::default(),
            builtin: None,
        })
    }))
}

/// The status and JSON body a client would get.
fn call(api: &HttpApi, route: Route, body: Value) -> (u16, Value) {
    match api.handle(route, body) {
        Ok(Reply::Json(value)) => (200, value),
        Ok(_) => (200, Value::Null),
        Err(e) => (e.status().0, json!({ "error": e.to_string() })),
    }
}

fn trigger(api: &HttpApi, body: Value) -> (u16, Value) {
    call(api, Route::Trigger { dag: "talk".into() }, body)
}

/// Breaks the database under the API for real: the table of runs is gone.
fn drop_table(dir: &Path, table: &str) {
    let conn = rusqlite::Connection::open(dir.join("vane.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; DROP TABLE {table};"))
        .unwrap();
}

#[test]
fn a_triggered_run_is_queued_and_shown_with_its_params() {
    let p = project();
    let (status, body) = trigger(
        &p.api,
        json!({ "params": { "size": "large" }, "date": "2026-01-02" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "run_id": 1, "state": "queued" }));
    let (status, run) = call(&p.api, Route::Run { id: 1 }, Value::Null);
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["dag_id"], "talk");
    assert_eq!(run["state"], "queued");
    assert_eq!(run["params"], json!({ "size": "large" }));
    assert_eq!(run["tasks"][0]["id"], "speak");
}

#[test]
fn stopping_a_queued_run_ends_it_with_who_and_why_and_an_ended_run_is_a_conflict() {
    let p = project();
    assert_eq!(trigger(&p.api, json!({})).0, 200);
    let (status, run) = call(
        &p.api,
        Route::Stop { run: 1 },
        json!({ "by": "alice", "reason": "wrong params" }),
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["reason"], "stopped by alice: wrong params", "{run}");
    assert_eq!(run["stop_requested"]["by"], "alice", "{run}");
    let (status, body) = call(&p.api, Route::Stop { run: 1 }, Value::Null);
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(&p.api, Route::Stop { run: 7 }, Value::Null);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn a_second_run_for_the_same_logical_date_is_a_conflict() {
    let p = project();
    assert_eq!(trigger(&p.api, json!({ "date": "2026-01-02" })).0, 200);
    let (status, body) = trigger(&p.api, json!({ "date": "2026-01-02" }));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already has a run"),
        "{body}"
    );
}

#[test]
fn bad_input_is_a_bad_request_that_says_what_to_fix() {
    let p = project();
    // The request's form is right; the DAG file, as it stands, declares no such param.
    let (status, body) = trigger(&p.api, json!({ "params": { "colour": "red" } }));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("has no parameter `colour`; declared: size"),
        "{body}"
    );
    let (status, body) = trigger(&p.api, json!({ "date": "yesterday-ish" }));
    assert_eq!(status, 400, "{body}");
    let (status, body) = trigger(&p.api, json!({ "params": ["size"] }));
    assert_eq!(status, 400, "{body}");
    let runs = Route::Runs {
        dag: None,
        state: Some("sideways".into()),
        limit: 10,
    };
    let (status, body) = call(&p.api, runs, Value::Null);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no run state `sideways`")
    );
    let grid = Route::Dag {
        dag: "talk".into(),
        runs: 201,
    };
    assert_eq!(call(&p.api, grid, Value::Null).0, 400);
    let snooze = call(
        &p.api,
        Route::Snooze { alert: 1 },
        json!({ "seconds": 30 * 86_400 }),
    );
    assert_eq!(snooze.0, 400, "{}", snooze.1);
    assert!(
        snooze.1["error"]
            .as_str()
            .unwrap()
            .contains("snooze for 30d is not between 1s and 7d: a snooze always ends")
    );
}

/// A misspelt field is an error that names the fields there are, never silently dropped; a
/// field left out that the action cannot do without is named too.
#[test]
fn unknown_and_missing_body_fields_are_named() {
    let p = project();
    let ack = call(
        &p.api,
        Route::Ack { alert: 1 },
        json!({ "verdikt": "real" }),
    );
    assert_eq!(ack.0, 400, "{}", ack.1);
    let message = ack.1["error"].as_str().unwrap();
    assert!(
        message.contains("unknown field `verdikt`, expected `verdict` or `by`"),
        "{message}"
    );
    let pause = Route::Pause {
        dag: "talk".into(),
        paused: true,
    };
    let (status, body) = call(&p.api, pause, json!({ "why": "x" }));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `why`"),
        "{body}"
    );
    let (status, body) = call(&p.api, Route::Snooze { alert: 1 }, json!({ "for": "2h" }));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `for`, expected `seconds`"),
        "{body}"
    );
    let (status, body) = call(&p.api, Route::Snooze { alert: 1 }, json!({}));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing field `seconds`"),
        "{body}"
    );
}

#[test]
fn what_does_not_exist_is_not_found() {
    let p = project();
    let (status, body) = call(&p.api, Route::Run { id: 99 }, Value::Null);
    assert_eq!(status, 404, "{body}");
    assert_eq!(trigger(&p.api, Value::Null).0, 200);
    let (status, body) = call(&p.api, Route::Trigger { dag: "nope".into() }, Value::Null);
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("known DAGs: talk"),
        "{body}"
    );
    let logs = Route::Logs {
        run: 1,
        task: "nope".into(),
        attempt: None,
        follow: false,
    };
    let (status, body) = call(&p.api, logs, Value::Null);
    assert_eq!(status, 404, "{body}");
    assert_eq!(call(&p.api, Route::Ack { alert: 7 }, Value::Null).0, 404);
    assert_eq!(
        call(&p.api, Route::Model { name: "m".into() }, Value::Null).0,
        404
    );
    let metrics = Route::DagMetrics {
        dag: "ghost".into(),
        task: None,
        name: None,
        last: 5,
    };
    assert_eq!(call(&p.api, metrics, Value::Null).0, 404);
}

#[test]
fn approving_a_run_that_is_not_rolling_out_is_a_conflict() {
    let p = project();
    assert_eq!(trigger(&p.api, Value::Null).0, 200);
    let (status, body) = call(&p.api, Route::Approve { run: 1 }, json!({}));
    assert_eq!(status, 400, "who approves must be said: {body}");
    let (status, body) = call(&p.api, Route::Approve { run: 1 }, json!({ "by": "ida" }));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not running"),
        "{body}"
    );
}

#[test]
fn pausing_answers_the_switch_and_the_overview_shows_it() {
    let p = project();
    let pause = Route::Pause {
        dag: "talk".into(),
        paused: true,
    };
    let (status, body) = call(&p.api, pause, Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "dag_id": "talk", "paused": true }));
    let (_, dags) = call(&p.api, Route::Dags, Value::Null);
    assert_eq!(dags[0]["id"], "talk");
    assert_eq!(dags[0]["paused"], true);
}

#[test]
fn clearing_a_queued_run_answers_the_run_and_refuses_a_malformed_body() {
    let p = project();
    assert_eq!(trigger(&p.api, Value::Null).0, 200);
    let (status, body) = call(&p.api, Route::Clear { run: 1 }, json!({ "tasks": "speak" }));
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &p.api,
        Route::Clear { run: 1 },
        json!({ "tasks": ["speak"] }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 1);
    assert_eq!(body["tasks"][0]["state"], "queued");
    let (status, body) = call(
        &p.api,
        Route::Clear { run: 1 },
        json!({ "tasks": ["shout"] }),
    );
    assert_eq!(status, 404, "{body}");
}

#[test]
fn a_database_failure_while_triggering_is_a_server_error_not_bad_input() {
    let p = project();
    drop_table(p.dir.path(), "runs");
    let (status, body) = trigger(&p.api, Value::Null);
    assert_eq!(status, 500, "{body}");
}

#[test]
fn a_database_failure_while_resolving_is_a_server_error_not_bad_input() {
    let p = project();
    drop_table(p.dir.path(), "alerts");
    let (status, body) = call(&p.api, Route::Resolve { alert: 1 }, json!({ "by": "ana" }));
    assert_eq!(status, 500, "{body}");
    let (status, body) = call(&p.api, Route::Alerts { all: true }, Value::Null);
    assert_eq!(status, 500, "{body}");
}

#[test]
fn a_scheduler_config_that_does_not_validate_is_the_servers_fault() {
    let p = project();
    std::fs::write(p.dir.path().join("vane.toml"), "[pools]\nnope = \"x\"\n").unwrap();
    let (status, body) = call(&p.api, Route::OnCall { turns: 3 }, Value::Null);
    assert_eq!(status, 500, "{body}");
    let error = app(p.dir.path()).config().unwrap_err();
    assert!(matches!(error, AppError::Config { .. }), "{error:?}");
    assert!(error.diagnostics().is_some_and(|d| d.contains("vane.toml")));
}

#[test]
fn model_and_artifact_actions_on_what_is_not_recorded_are_not_found_or_bad_input() {
    let p = project();
    let rollback = call(
        &p.api,
        Route::Rollback {
            model: "churn".into(),
        },
        json!({ "reason": "bad numbers" }),
    );
    assert_eq!(rollback.0, 404, "{}", rollback.1);
    let no_reason = call(
        &p.api,
        Route::Rollback {
            model: "churn".into(),
        },
        json!({}),
    );
    assert_eq!(no_reason.0, 400, "{}", no_reason.1);
    assert!(no_reason.1["error"].as_str().unwrap().contains("`reason`"));
    assert_eq!(trigger(&p.api, Value::Null).0, 200);
    let reject = call(&p.api, Route::Reject { run: 1 }, json!({}));
    assert_eq!(reject.0, 400, "a rejection needs a reason: {}", reject.1);
    let lineage = Route::Lineage {
        artifact: "features@2".into(),
    };
    assert_eq!(call(&p.api, lineage, Value::Null).0, 404);
    let lineage = Route::Lineage {
        artifact: "features@two".into(),
    };
    assert_eq!(call(&p.api, lineage, Value::Null).0, 400);
}

#[test]
fn status_names_the_database_and_metrics_count_the_runs() {
    let p = project();
    let (status, body) = call(&p.api, Route::Status, Value::Null);
    assert_eq!(status, 200, "{body}");
    assert!(
        body["database"].as_str().unwrap().ends_with("vane.db"),
        "{body}"
    );
    assert_eq!(body["schedulers"], json!([]));
    assert_eq!(trigger(&p.api, Value::Null).0, 200);
    assert!(matches!(
        p.api.handle(Route::Metrics, Value::Null),
        Ok(Reply::Metrics(_))
    ));
    let (status, runs) = call(
        &p.api,
        Route::Runs {
            dag: Some("talk".into()),
            state: Some("queued".into()),
            limit: 10,
        },
        Value::Null,
    );
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["trigger"], "manual");
}

/// The ticks route answers "why didn't it run?" in the DAG's own time zone: each decision,
/// the next tick, and that nothing decides ticks while no scheduler runs.
#[test]
fn ticks_show_each_decision_in_the_dags_zone_and_why_none_are_decided() {
    let p = project();
    std::fs::write(
        p.dir.path().join("dags/nightly.toml"),
        "[dag]\nschedule = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\n[tasks.a]\ncommand = \"true\"\n",
    )
    .unwrap();
    let store = vane_store::SqliteStore::open(&p.dir.path().join("vane.db")).unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    store
        .record_ticks(
            "nightly",
            &[
                (
                    at("2026-03-28T01:00:00Z"),
                    vane_store::TickDecision::Skipped("overlap: run 3 still runs".into()),
                ),
                (
                    at("2026-03-30T00:00:00Z"),
                    vane_store::TickDecision::Skipped("paused".into()),
                ),
            ],
        )
        .unwrap();
    let route = Route::DagTicks {
        dag: "nightly".into(),
        limit: 10,
    };
    let (status, body) = call(&p.api, route, Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timezone"], "Europe/Berlin");
    // Newest first; winter time before the change, summer time after, as the schedule reads.
    assert_eq!(
        body["ticks"][0]["logical_date"],
        "2026-03-30T02:00:00+02:00"
    );
    assert_eq!(
        body["ticks"][1]["logical_date"],
        "2026-03-28T02:00:00+01:00"
    );
    assert_eq!(body["ticks"][1]["decision"], "skipped");
    assert_eq!(body["ticks"][1]["reason"], "overlap: run 3 still runs");
    assert!(
        body["next"].as_str().unwrap().ends_with("T02:00:00+01:00"),
        "{body}"
    );
    assert!(
        body["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("no scheduler is running")),
        "{body}"
    );
    let unknown = Route::DagTicks {
        dag: "nope".into(),
        limit: 10,
    };
    assert_eq!(call(&p.api, unknown, Value::Null).0, 404);
}

/// A manual run without a date is "now" to the second, as a person reads it back; asking
/// twice in one second makes two runs, the second a second later.
#[test]
fn manual_runs_without_a_date_are_whole_seconds_and_two_at_once_are_two_runs() {
    let p = project();
    let (first, one) = trigger(&p.api, json!({}));
    let (second, two) = trigger(&p.api, json!({}));
    assert_eq!((first, second), (200, 200), "{one} {two}");
    let date = |id: i64| {
        let (_, run) = call(&p.api, Route::Run { id }, Value::Null);
        let text = run["logical_date"].as_str().unwrap().to_owned();
        chrono::DateTime::parse_from_rfc3339(&text).unwrap()
    };
    let (a, b) = (date(1), date(2));
    assert_eq!(a.timestamp_subsec_nanos(), 0, "{a}");
    assert_eq!(b.timestamp_subsec_nanos(), 0, "{b}");
    assert!(b > a, "{a} {b}");
}
