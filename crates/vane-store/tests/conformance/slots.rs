// Pool slots shared by every process on the database.

use chrono::Utc;
use vane_store::*;

use super::runs::{RACERS, new_run, owner, race};

pub(crate) fn pool_slots_go_by_class_then_priority_then_wait_and_dead_holders_free_theirs(
    db: &Db,
) {
    let store = db.open();
    let run = new_run(&*store, &["a", "b", "c", "d"]);
    let me = owner(1);
    let gpu = [("gpu".to_owned(), 1)];
    let t0 = Utc::now();
    let ask = |task: &str, class: i64, priority: i64, holder: &Owner, secs: i64| {
        store
            .request_slots(
                &SlotRequest {
                    pools: &gpu,
                    run,
                    task,
                    class,
                    priority,
                    holder,
                    at: t0 + chrono::Duration::seconds(secs),
                },
                &|o: &Owner| o.pid != 99,
            )
            .unwrap()
    };
    assert!(ask("a", 1, 0, &me, 0), "a free slot is taken");
    assert!(!ask("b", 0, 0, &me, 1), "b (a backfill) waits");
    assert!(
        !ask("c", 1, 0, &me, 2),
        "c waits, but ahead of the backfill"
    );
    assert!(!ask("d", 1, 5, &me, 3), "d waits, ahead of c by priority");
    let release = |task: &str| {
        store
            .apply(&[Change::ReleaseSlots {
                run,
                task: Some(task.to_owned()),
            }])
            .unwrap()
    };
    release("a");
    assert!(!ask("b", 0, 0, &me, 10), "the backfill still yields");
    assert!(!ask("c", 1, 0, &me, 10), "c yields to d's priority");
    assert!(ask("d", 1, 5, &me, 10));
    release("d");
    assert!(ask("c", 1, 0, &me, 20));
    // A holder that died frees its slot: the backfill's turn comes.
    let gone = Owner {
        host: "box".into(),
        pid: 99,
        start_time: Some(7),
        lease: None,
        lease_held: None,
    };
    release("c");
    assert!(ask("a", 1, 0, &gone, 30));
    assert!(ask("b", 0, 0, &me, 40));
}

/// Tasks of several schedulers asking at once for a pool of one slot: one gets it. Each also
/// needs the global limit, so locks on two pools are taken by every racer, in the opposite
/// order of how the request names them for half of them.
pub(crate) fn racing_requests_for_a_pool_of_one_grant_one(db: &Db) {
    let tasks: Vec<String> = (0..RACERS).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = tasks.iter().map(String::as_str).collect();
    let run = new_run(&*db.open(), &names);
    let one_gpu = [("gpu".to_owned(), 1), ("*".to_owned(), 100)];
    let reversed = [("*".to_owned(), 100), ("gpu".to_owned(), 1)];
    let granted = race(db, |i, store| {
        store
            .request_slots(
                &SlotRequest {
                    pools: if i % 2 == 0 { &one_gpu } else { &reversed },
                    run,
                    task: &tasks[i],
                    class: 1,
                    priority: 0,
                    holder: &owner(100 + i as u32),
                    at: Utc::now(),
                },
                &|_: &Owner| true,
            )
            .unwrap()
    });
    assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
}
