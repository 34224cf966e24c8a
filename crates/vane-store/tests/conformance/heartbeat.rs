// Scheduler heartbeats.

use chrono::{TimeZone, Utc};
use vane_store::*;


pub(crate) fn heartbeats_rewrite_one_row_per_scheduler(db: &Db) {
    let store = db.open();
    // Recorded to the microsecond.
    let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let started = now - chrono::Duration::minutes(5);
    let mut passes = PassStats::default();
    let beat = |passes: &PassStats, pid, at, stopped| {
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
    };
    beat(&passes, 10, started, false);
    for seconds in [0.0005, 0.002, 0.3] {
        passes.record(seconds);
    }
    beat(&passes, 10, now, false);
    // Another scheduler that ran earlier and shut down cleanly.
    let mut old = PassStats::default();
    old.record(0.0001);
    beat(&old, 9, now - chrono::Duration::minutes(1), true);

    // Read by another process, as `vane status` does.
    let schedulers = db.open().schedulers().unwrap();
    assert_eq!(schedulers.len(), 2);
    let live = &schedulers[0];
    assert_eq!(live.id, scheduler_id("box", 10, started));
    assert_eq!((live.pid, live.last_heartbeat), (10, now));
    assert_eq!(live.passes, passes);
    assert_eq!(live.passes.counts, vec![1, 2, 2, 2, 2, 3, 3, 3]);
    assert_eq!(live.status(now), SchedulerStatus::Up);
    assert_eq!(
        live.status(now + chrono::Duration::seconds(31)),
        SchedulerStatus::Stale
    );
    assert_eq!(schedulers[1].status(now), SchedulerStatus::Stopped);
    assert_eq!(
        schedulers[1].stopped_at,
        Some(now - chrono::Duration::minutes(1))
    );
    assert_eq!(schedulers[1].passes, old);
}
