// Histories the domain cases (registry, artifacts, checks, alerts, metrics) start from, made
// through the store as the engine makes them.

use chrono::{DateTime, TimeZone, Utc};
use vane_store::*;

/// Midnight of day `day` of November 2026: the logical date of the run made on that day.
pub(crate) fn day(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 0, 0, 0).unwrap()
}

/// A `queued` run of DAG `dag` for `day(on)`, with tasks `tasks`.
pub(crate) fn run(store: &S, dag: &str, on: u32, tasks: &[&str]) -> RunId {
    let version = store
        .record_dag_version(&NewDagVersion {
            dag_id: dag,
            content_hash: "h",
            path: "dags/d.toml",
            source: "",
        })
        .unwrap();
    store
        .create_run(&NewRun {
            dag_id: dag,
            dag_version: version,
            logical_date: day(on),
            trigger: Trigger::Manual,
            params: serde_json::json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks,
            at: Utc::now(),
            records_tick: false,
            backfill: None,
        })
        .unwrap()
}

pub(crate) fn set_state(store: &S, run: RunId, state: RunState) {
    store
        .apply(&[Change::Run {
            run,
            state,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
}

/// A finished attempt `number` of a task, which leaves the task in the attempt's state.
pub(crate) fn attempt(store: &S, run: RunId, task: &str, number: u32, success: bool) {
    let at = Utc::now();
    store
        .apply(&[
            Change::AttemptStarted {
                run,
                task: task.into(),
                attempt: number,
                command: "true".into(),
                host: "box".into(),
                log_path: "log".into(),
                at,
            },
            Change::AttemptFinished {
                run,
                task: task.into(),
                attempt: number,
                success,
                exit_code: Some(i32::from(!success)),
                signal: None,
                reason: None,
                at,
            },
            Change::Task {
                run,
                task: task.into(),
                state: if success {
                    TaskState::Success
                } else {
                    TaskState::Failed
                },
                reason: None,
                at,
            },
        ])
        .unwrap();
}

/// A metric attempt 1 of a task reported at `at`.
pub(crate) fn metric(store: &S, run: RunId, task: &str, name: &str, value: f64, at: DateTime<Utc>) {
    store
        .apply(&[Change::Metric {
            run,
            task: task.into(),
            attempt: 1,
            name: name.into(),
            value,
            at,
        }])
        .unwrap();
}

/// A passing `rows` check that measured `value`, of definition `hash`.
pub(crate) fn rows(value: f64, hash: &str) -> CheckResult {
    CheckResult {
        name: "rows".into(),
        column: None,
        severity: "error".into(),
        status: CheckStatus::Pass,
        observed: Some(value),
        bound: None,
        derivation: None,
        detail: String::new(),
        offending: vec![(3, "-1".into())],
        definition_hash: hash.into(),
    }
}

/// An occurrence of rule `rule`: task `a` of DAG `demo` failed.
pub(crate) fn occurrence(rule: &str) -> AlertOccurrence<'_> {
    AlertOccurrence {
        rule,
        kind: "task_failed",
        severity: "warning",
        dag_id: "demo",
        task_id: Some("a"),
        subject: None,
        summary: "exit code 1",
        run: None,
        dag_version: None,
        at: Utc::now(),
        reopen_since: None,
    }
}
