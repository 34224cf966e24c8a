// What /metrics reports from the store.

use chrono::{TimeZone, Utc};
use vane_store::*;

use super::fixtures::{attempt, occurrence, rows, run, set_state};

/// /metrics sums the passes of the schedulers still alive and counts those up.
pub(crate) fn the_metrics_summary_counts_only_live_schedulers(db: &Db) {
    let store = db.open();
    let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let started = now - chrono::Duration::minutes(5);
    let mut passes = PassStats::default();
    for seconds in [0.0005, 0.002, 0.3] {
        passes.record(seconds);
    }
    let mut old = PassStats::default();
    old.record(0.0001);
    for (pid, passes, at, stopped) in [
        (10, &passes, now, false),
        (9, &old, now - chrono::Duration::minutes(1), true),
    ] {
        store
            .record_heartbeat(&Heartbeat {
                host: "box",
                pid,
                started_at: started,
                at,
                passes,
                stopped,
                lease: None,
            })
            .unwrap();
    }
    let live = scheduler_id("box", 10, started);
    let summary = store.observe(&[], &[]).unwrap().schedulers;
    assert_eq!(summary.up, 1);
    assert_eq!(
        summary.heartbeats,
        vec![(live, now.timestamp_micros() as f64 / 1e6)]
    );
    assert_eq!(summary.pass_seconds.counts, passes.counts);
    assert_eq!(summary.pass_seconds.count, 3);
    assert!((summary.pass_seconds.sum - 0.3025).abs() < 1e-9);
}

pub(crate) fn monitoring_totals_count_the_history(db: &Db) {
    let store = db.open();
    let ok = run(&*store, "b-dag", 1, &["t"]);
    attempt(&*store, ok, "t", 1, true);
    set_state(&*store, ok, RunState::Running);
    set_state(&*store, ok, RunState::Success);
    let bad = run(&*store, "a-dag", 2, &["t"]);
    attempt(&*store, bad, "t", 1, false);
    attempt(&*store, bad, "t", 2, false);
    set_state(&*store, bad, RunState::Running);
    set_state(&*store, bad, RunState::Failed);
    run(&*store, "a-dag", 3, &["t"]);
    store
        .record_check_evaluation(&NewCheckEvaluation {
            run: bad,
            dag_id: "a-dag",
            task_id: "t",
            attempt: 2,
            passed: false,
            profile: "{}",
            results: &[CheckResult {
                status: CheckStatus::Fail,
                ..rows(1.0, "a")
            }],
            at: Utc::now(),
        })
        .unwrap();
    store.raise_alert(&occurrence("r")).unwrap();
    store.raise_alert(&occurrence("r")).unwrap();
    let seen = store.observe(&[0.5, 10.0], &[1.0]).unwrap();
    assert_eq!(
        seen.runs,
        [
            ("a-dag".into(), "failed".into(), 1),
            ("b-dag".into(), "success".into(), 1)
        ]
    );
    assert_eq!(
        seen.attempts,
        [
            ("a-dag".into(), "failed".into(), 2),
            ("b-dag".into(), "success".into(), 1)
        ]
    );
    let durations: Vec<(&str, u64)> = seen
        .task_durations
        .iter()
        .map(|h| (h.dag_id.as_str(), h.count))
        .collect();
    assert_eq!(durations, [("a-dag", 2), ("b-dag", 1)]);
    assert!(seen.start_lag.is_empty(), "no scheduled runs");
    assert_eq!((seen.queued_runs, seen.running_tasks), (1, 0));
    assert_eq!(seen.check_failures, [("a-dag".into(), "error".into(), 1)]);
    assert_eq!(seen.alerts_fired, [("r".into(), 2)]);
    assert!(seen.sla_misses.is_empty());
}
