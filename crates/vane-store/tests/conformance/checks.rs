// Check results, what `auto` bounds learn from, and runs marked good.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use vane_store::*;

use super::fixtures::{day, rows, run};
/// Runs 1..=n of DAG `churn`, with their ids (which the backend chose).
fn validate_runs(store: &S, n: u32) -> Vec<RunId> {
    (1..=n)
        .map(|d| run(store, "churn", d, &["validate"]))
        .collect()
}

fn record(store: &S, run: RunId, attempt: u32, passed: bool, result: CheckResult) {
    store
        .record_check_evaluation(&NewCheckEvaluation {
            run,
            dag_id: "churn",
            task_id: "validate",
            attempt,
            passed,
            profile: &format!("{{\"run\": {run}}}"),
            results: &[result],
            // Evaluated in run order, as runs one after another are.
            at: Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
                + Duration::minutes(i64::from(attempt) + run.0 * 10),
        })
        .unwrap();
}

fn from(run: RunId) -> LearnFrom<'static> {
    LearnFrom {
        dag_id: "churn",
        task_id: "validate",
        exclude_run: run,
    }
}

fn profile_of(run: RunId) -> serde_json::Value {
    json!({ "run": run })
}

pub(crate) fn auto_bounds_learn_from_the_latest_passing_attempt_of_other_runs(db: &Db) {
    let store = db.open();
    let r = validate_runs(&*store, 5);
    record(&*store, r[0], 1, true, rows(100.0, "a"));
    // Run 2 failed, then passed on a rerun: only the rerun counts.
    record(&*store, r[1], 1, false, rows(5000.0, "a"));
    record(&*store, r[1], 2, true, rows(102.0, "a"));
    // Run 3 failed and stays failed.
    record(&*store, r[2], 1, false, rows(9999.0, "a"));
    // Run 4 measured an edited check: another series.
    record(&*store, r[3], 1, true, rows(50.0, "b"));
    assert_eq!(
        store.learnable_values(&from(r[4]), "rows", "a", 30).unwrap(),
        vec![(r[0], 100.0), (r[1], 102.0)]
    );
    assert_eq!(
        store.learnable_values(&from(r[1]), "rows", "a", 30).unwrap(),
        vec![(r[0], 100.0)],
        "a run never learns from itself"
    );
    assert_eq!(
        store.learnable_values(&from(r[4]), "rows", "a", 1).unwrap(),
        vec![(r[1], 102.0)],
        "the window keeps the latest values"
    );
}

pub(crate) fn a_run_marked_good_is_learned_from_although_it_failed(db: &Db) {
    let store = db.open();
    let r = validate_runs(&*store, 3);
    record(&*store, r[0], 1, true, rows(100.0, "a"));
    record(&*store, r[1], 1, false, rows(180.0, "a"));
    let baseline = |store: &S| {
        store.baseline_profile(&from(r[2])).unwrap().map(|(run, p)| {
            (
                run,
                serde_json::from_str::<serde_json::Value>(&p).unwrap(),
            )
        })
    };
    assert_eq!(baseline(&*store), Some((r[0], profile_of(r[0]))));
    store
        .mark_good(&GoodMark {
            run: r[1],
            by: "alice".into(),
            at: Utc::now(),
            reason: Some("holiday traffic".into()),
        })
        .unwrap();
    assert_eq!(
        store.learnable_values(&from(r[2]), "rows", "a", 30).unwrap(),
        vec![(r[0], 100.0), (r[1], 180.0)]
    );
    assert_eq!(baseline(&*store), Some((r[1], profile_of(r[1]))));
    let mark = store.good_mark(r[1]).unwrap().unwrap();
    assert_eq!(mark.by, "alice");
    assert_eq!(mark.reason.as_deref(), Some("holiday traffic"));
    assert!(store.good_mark(r[0]).unwrap().is_none());
    assert!(matches!(
        store.mark_good(&GoodMark {
            run: RunId(r[2].0 + 1000),
            by: "alice".into(),
            at: Utc::now(),
            reason: None,
        }),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn history_shows_the_latest_attempt_of_each_run_newest_first(db: &Db) {
    let store = db.open();
    let r = validate_runs(&*store, 3);
    record(&*store, r[0], 1, true, rows(100.0, "a"));
    record(&*store, r[1], 1, false, rows(5000.0, "a"));
    record(&*store, r[1], 2, true, rows(101.0, "a"));
    // Recording an attempt again replaces what it recorded.
    record(&*store, r[1], 2, true, rows(101.0, "a"));
    let history = store.check_history("churn", None, 0).unwrap();
    let seen: Vec<(RunId, u32, Option<f64>)> = history
        .iter()
        .map(|e| (e.run, e.attempt, e.result.observed))
        .collect();
    assert_eq!(seen, vec![(r[1], 2, Some(101.0)), (r[0], 1, Some(100.0))]);
    assert_eq!(history[0].result.offending, vec![(3, "-1".to_owned())]);
    assert_eq!(history[0].logical_date, day(2));
    assert_eq!(store.check_history("churn", None, 1).unwrap().len(), 1);
    assert!(
        store
            .check_history("churn", Some("other"), 0)
            .unwrap()
            .is_empty()
    );
}

pub(crate) fn a_runs_checks_are_those_of_each_tasks_latest_attempt(db: &Db) {
    let store = db.open();
    let r = validate_runs(&*store, 2);
    record(&*store, r[0], 1, true, rows(100.0, "a"));
    record(&*store, r[1], 1, false, rows(5000.0, "a"));
    record(&*store, r[1], 2, true, rows(101.0, "a"));
    let seen: Vec<(String, u32, Option<f64>)> = store
        .run_checks(r[1])
        .unwrap()
        .into_iter()
        .map(|(task, attempt, result)| (task, attempt, result.observed))
        .collect();
    assert_eq!(seen, vec![("validate".to_owned(), 2, Some(101.0))]);
    assert_eq!(store.run_checks(r[0]).unwrap()[0].2.observed, Some(100.0));
    let unchecked = run(&*store, "churn", 9, &["validate"]);
    assert!(store.run_checks(unchecked).unwrap().is_empty());
}

/// A corrupt dataset (a NUL byte in a value) is what checks exist to catch: its results are
/// recorded and read back, the NUL kept or, where the database cannot hold one (PostgreSQL),
/// shown as the symbol for it.
pub(crate) fn values_holding_a_nul_byte_are_recorded(db: &Db) {
    let store = db.open();
    let r = validate_runs(&*store, 1);
    let bad = "a\0b";
    store
        .record_check_evaluation(&NewCheckEvaluation {
            run: r[0],
            dag_id: "churn",
            task_id: "validate",
            attempt: 1,
            passed: false,
            profile: &json!({ "top": [bad] }).to_string(),
            results: &[CheckResult {
                status: CheckStatus::Fail,
                detail: format!("`{bad}` is not allowed"),
                offending: vec![(7, bad.into())],
                ..rows(1.0, "a")
            }],
            at: Utc::now(),
        })
        .unwrap();
    let as_read = |text: &str| text.replace('\u{2400}', "\0");
    let history = store.check_history("churn", None, 0).unwrap();
    assert_eq!(as_read(&history[0].result.detail), "`a\0b` is not allowed");
    assert_eq!(as_read(&history[0].result.offending[0].1), bad);
    store
        .mark_good(&GoodMark {
            run: r[0],
            by: "alice".into(),
            at: Utc::now(),
            reason: None,
        })
        .unwrap();
    let (_, profile) = store.baseline_profile(&from(RunId(r[0].0 + 1))).unwrap().unwrap();
    let profile: serde_json::Value = serde_json::from_str(&profile).unwrap();
    assert_eq!(as_read(profile["top"][0].as_str().unwrap()), bad);
}

