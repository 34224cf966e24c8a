// Schedule ticks and pause switches.

use chrono::{TimeZone, Utc};
use vane_store::*;

use super::runs::{RACERS, new_run, race};

pub(crate) fn ticks_record_every_decision_once(db: &Db) {
    let store = db.open();
    let t1 = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
    let t2 = Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap();
    let skipped = TickDecision::Skipped("paused".into());
    assert_eq!(
        store
            .record_ticks("demo", &[(t1, skipped.clone())])
            .unwrap(),
        1
    );
    let again = [(t1, TickDecision::Skipped("again".into())), (t2, skipped)];
    assert_eq!(store.record_ticks("demo", &again).unwrap(), 1);
    assert_eq!(store.last_tick("demo").unwrap(), Some(t2));
    assert_eq!(store.last_tick("other").unwrap(), None);
    let ticks = store.ticks("demo", 10).unwrap();
    assert_eq!(ticks.len(), 2);
    assert_eq!(ticks[1].decision, TickDecision::Skipped("paused".into()));
    assert_eq!(store.ticks("demo", 1).unwrap()[0].logical_date, t2);
    // A run decided on a tick is recorded with it.
    let run = new_run(&*store, &["a"]);
    let t3 = t2 + chrono::Duration::days(1);
    assert_eq!(
        store
            .record_ticks("demo", &[(t3, TickDecision::Run(run))])
            .unwrap(),
        1
    );
    assert_eq!(
        store.ticks("demo", 0).unwrap()[0].decision,
        TickDecision::Run(run)
    );
}

/// Schedulers deciding the same tick at once: the first decision stands and only one of them
/// counts it as new.
pub(crate) fn racing_schedulers_keep_the_first_decision_of_a_tick(db: &Db) {
    let tick = Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
    let counted = race(db, |i, store| {
        store
            .record_ticks("demo", &[(tick, TickDecision::Skipped(format!("racer {i}")))])
            .unwrap()
    });
    let winners: Vec<usize> = (0..RACERS).filter(|i| counted[*i] == 1).collect();
    assert_eq!(winners.len(), 1, "{counted:?}");
    assert_eq!(counted.iter().sum::<usize>(), 1);
    let ticks = db.open().ticks("demo", 0).unwrap();
    assert_eq!(ticks.len(), 1);
    assert_eq!(
        ticks[0].decision,
        TickDecision::Skipped(format!("racer {}", winners[0]))
    );
}

pub(crate) fn pausing_is_remembered(db: &Db) {
    let store = db.open();
    store.set_paused("a", true).unwrap();
    store.set_paused("b", true).unwrap();
    store.set_paused("b", false).unwrap();
    let switches: Vec<_> = db.open().pause_switches().unwrap().into_iter().collect();
    assert_eq!(
        switches,
        vec![("a".to_owned(), true), ("b".to_owned(), false)]
    );
}

/// One scheduler skipped a tick (overlap) while another decided to run it: the skip stands,
/// no run is made, and the second scheduler is told so in a way it can tell apart, instead
/// of failing every pass from then on.
pub(crate) fn a_run_for_a_tick_decided_skipped_is_refused_and_nothing_is_left(db: &Db) {
    let store = db.open();
    let tick = super::runs::logical_date();
    let skipped = TickDecision::Skipped("overlap: run 1 is still running".into());
    store.record_ticks("demo", &[(tick, skipped.clone())]).unwrap();
    let version = super::runs::version(&*store);
    let made = store.create_run(&NewRun {
        dag_id: "demo",
        dag_version: version,
        logical_date: tick,
        trigger: Trigger::Scheduled,
        params: serde_json::json!({}),
        git: None,
        host: "box",
        timezone: "UTC",
        tasks: &["a"],
        at: Utc::now(),
        records_tick: true,
        backfill: None,
    });
    assert!(
        matches!(made, Err(StoreError::TickDecided { .. })),
        "{made:?}"
    );
    assert!(store.runs(&RunFilter::default()).unwrap().is_empty());
    assert_eq!(store.ticks("demo", 0).unwrap()[0].decision, skipped);
}
