// What /metrics reports from the store.

use chrono::{TimeZone, Utc};
use vane_store::*;

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
