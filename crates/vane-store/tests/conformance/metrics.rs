// Metric series.

use chrono::{Duration, TimeZone, Utc};
use vane_store::*;

use super::fixtures::{attempt, day, metric, run, set_state};
pub(crate) fn metric_series_keep_the_latest_points_of_each(db: &Db) {
    let store = db.open();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let runs: Vec<RunId> = (1..=3)
        .map(|d| run(&*store, "demo", d, &["train", "eval"]))
        .collect();
    for (i, run) in runs.iter().enumerate() {
        let at = t0 + Duration::hours(i as i64);
        attempt(&*store, *run, "train", 1, true);
        metric(&*store, *run, "train", "loss", 1.0 / (i as f64 + 1.0), at);
        metric(&*store, *run, "train", "auc", 0.5 + i as f64 / 10.0, at);
        metric(&*store, *run, "eval", "auc", 0.6, at);
    }
    set_state(&*store, runs[2], RunState::Running);
    set_state(&*store, runs[2], RunState::Success);
    let series = |task, name, last| {
        store
            .metric_series(&MetricFilter {
                dag_id: "demo",
                task,
                name,
                last,
            })
            .unwrap()
            .into_iter()
            .map(|p| (p.task_id, p.name, p.run, p.value))
            .collect::<Vec<_>>()
    };
    let all = series(None, None, 0);
    let order: Vec<(&str, &str)> = all
        .iter()
        .map(|(t, n, _, _)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("eval", "auc"),
            ("eval", "auc"),
            ("eval", "auc"),
            ("train", "auc"),
            ("train", "auc"),
            ("train", "auc"),
            ("train", "loss"),
            ("train", "loss"),
            ("train", "loss"),
        ]
    );
    assert_eq!(
        series(Some("train"), Some("loss"), 2),
        [
            ("train".into(), "loss".into(), runs[1], 0.5),
            ("train".into(), "loss".into(), runs[2], 1.0 / 3.0)
        ]
    );
    let last = store
        .metric_series(&MetricFilter {
            dag_id: "demo",
            task: Some("eval"),
            name: None,
            last: 1,
        })
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].run, last[0].run_state, last[0].logical_date, last[0].recorded_at),
        (runs[2], RunState::Success, day(3), t0 + Duration::hours(2))
    );
    assert!(series(Some("nope"), None, 0).is_empty());
}
