// Leases and fencing: which processes are alive by the database's clock, and that an owner
// presumed dead can never write over the one that adopted its run.

use std::time::Duration;

use chrono::Utc;
use vane_store::*;

use crate::runs::{RACERS, new_run, race};

fn take(store: &S, id: &str, ttl: Duration) {
    store
        .acquire_lease(&NewLease {
            id,
            host: "box",
            pid: 10,
            role: LeaseRole::Scheduler,
            ttl,
        })
        .unwrap();
}

fn holder(pid: u32, lease: &str) -> Owner {
    Owner {
        host: "box".into(),
        pid,
        start_time: Some(1),
        lease: Some(lease.into()),
        lease_held: None,
    }
}

fn state_of(store: &S, id: &str) -> LeaseState {
    let leases = store.leases().unwrap();
    leases
        .iter()
        .find(|l| l.id == id)
        .unwrap_or_else(|| panic!("lease {id} not in {leases:?}"))
        .state
}

fn run_ended(run: RunId) -> Vec<Change> {
    vec![Change::Run {
        run,
        state: RunState::Success,
        reason: None,
        at: Utc::now(),
    }]
}

pub(crate) fn a_lease_lives_while_renewed_and_never_comes_back_once_expired(db: &Db) {
    let store = db.open();
    let short = Duration::from_millis(400);
    take(&*store, "a", short);
    take(&*store, "b", Duration::from_secs(60));
    assert_eq!(state_of(&*store, "a"), LeaseState::Held);
    assert!(store.renew_lease("a", short).unwrap().is_some());
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(state_of(&*store, "a"), LeaseState::Expired);
    // An expired lease is never renewed: its holder must take a new one, so whatever it owned
    // stays adoptable however renewal and adoption race.
    assert_eq!(store.renew_lease("a", short).unwrap(), None);
    assert_eq!(state_of(&*store, "a"), LeaseState::Expired);
    store.release_lease("b").unwrap();
    assert_eq!(state_of(&*store, "b"), LeaseState::Released);
    assert_eq!(store.renew_lease("b", short).unwrap(), None);
    // Held leases are listed first.
    take(&*store, "c", Duration::from_secs(60));
    assert_eq!(store.leases().unwrap()[0].id, "c");
    // A lease id is never taken twice.
    assert!(
        store
            .acquire_lease(&NewLease {
                id: "c",
                host: "box",
                pid: 10,
                role: LeaseRole::Command,
                ttl: short,
            })
            .is_err()
    );
}

pub(crate) fn a_run_shows_whether_its_owner_lease_is_held_and_counts_as_owned(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    take(&*store, "short", Duration::from_millis(400));
    store
        .claim_run(run, &holder(10, "short"), Utc::now())
        .unwrap()
        .unwrap();
    let owner = store.run(run).unwrap().run.owner.unwrap();
    assert_eq!(owner.lease.as_deref(), Some("short"));
    assert_eq!(owner.lease_held, Some(true));
    let listed = store.leases().unwrap();
    assert_eq!(listed[0].runs_owned, 1, "{listed:?}");
    std::thread::sleep(Duration::from_millis(600));
    let runs = store
        .runs(&RunFilter {
            states: &[RunState::Running],
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(runs[0].owner.as_ref().unwrap().lease_held, Some(false));
}

pub(crate) fn an_owner_fenced_off_by_adoption_or_expiry_cannot_write(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    take(&*store, "old", Duration::from_millis(400));
    take(&*store, "new", Duration::from_secs(60));
    let old = store
        .claim_run(run, &holder(10, "old"), Utc::now())
        .unwrap()
        .unwrap();
    // While its lease holds, the owner writes.
    store
        .apply_fenced(
            &old,
            &[Change::Task {
                run,
                task: "a".into(),
                state: TaskState::Running,
                reason: None,
                at: Utc::now(),
            }],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // Expired: refused, and nothing of the batch is written.
    let refused = store.apply_fenced(&old, &run_ended(run));
    assert!(
        matches!(&refused, Err(StoreError::Fenced { why, .. }) if why.contains("lease")),
        "{refused:?}"
    );
    assert_eq!(store.run(run).unwrap().run.state, RunState::Running);
    // Adopted: the token moves on, so the old owner stays refused even were its lease renewed.
    let seen = store.run(run).unwrap().run.owner_token;
    let new = store
        .take_over(run, seen, &holder(20, "new"), "new")
        .unwrap()
        .unwrap();
    assert!(new.token > old.token);
    let refused = store.apply_fenced(&old, &run_ended(run));
    assert!(
        matches!(&refused, Err(StoreError::Fenced { why, .. }) if why.contains("took it over")),
        "{refused:?}"
    );
    // A second adoption from the same sighting finds the run changed hands.
    assert_eq!(
        store
            .take_over(run, seen, &holder(30, "new"), "new")
            .unwrap(),
        None
    );
    store.apply_fenced(&new, &run_ended(run)).unwrap();
    assert_eq!(store.run(run).unwrap().run.state, RunState::Success);
    // A finished run is adopted by no one.
    let token = store.run(run).unwrap().run.owner_token;
    assert_eq!(
        store
            .take_over(run, token, &holder(30, "new"), "new")
            .unwrap(),
        None
    );
}

/// Several schedulers finding the same orphan at once: exactly one adopts it.
pub(crate) fn racing_adoptions_of_one_run_grant_one(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    take(&*store, "dead", Duration::from_secs(60));
    store
        .claim_run(run, &holder(1, "dead"), Utc::now())
        .unwrap()
        .unwrap();
    let seen = store.run(run).unwrap().run.owner_token;
    for i in 0..RACERS {
        take(&*store, &format!("racer-{i}"), Duration::from_secs(60));
    }
    let won = race(db, |i, store| {
        let lease = format!("racer-{i}");
        store
            .take_over(run, seen, &holder(100 + i as u32, &lease), &lease)
            .unwrap()
    });
    let winners: Vec<usize> = (0..RACERS).filter(|i| won[*i].is_some()).collect();
    assert_eq!(winners.len(), 1, "{won:?}");
    let owner = store.run(run).unwrap().run.owner.unwrap();
    assert_eq!(owner.pid, 100 + winners[0] as u32);
}

/// `vane stop` records its request on the run; the owner finds the requests for the runs it
/// owns, and only those still running.
pub(crate) fn a_stop_request_is_recorded_and_found_by_the_runs_owner(db: &Db) {
    let store = db.open();
    let (mine, other, ended) = (
        new_run(&*store, &["a"]),
        crate::runs::run_at(&*store, &["a"], crate::runs::logical_date() + chrono::Duration::days(1))
            .unwrap(),
        crate::runs::run_at(&*store, &["a"], crate::runs::logical_date() + chrono::Duration::days(2))
            .unwrap(),
    );
    take(&*store, "me", Duration::from_secs(60));
    take(&*store, "them", Duration::from_secs(60));
    for (run, lease) in [(mine, "me"), (other, "them"), (ended, "me")] {
        store
            .claim_run(run, &holder(10, lease), Utc::now())
            .unwrap()
            .unwrap();
    }
    store.apply(&run_ended(ended)).unwrap();
    assert!(store.stop_requests("me").unwrap().is_empty());
    let request = StopRequest {
        by: "alice".into(),
        reason: Some("bad input".into()),
        at: Utc::now(),
    };
    for run in [mine, other, ended] {
        store.request_stop(run, &request).unwrap();
    }
    assert_eq!(store.stop_requests("me").unwrap(), vec![(mine, None)]);
    assert_eq!(store.stop_requests("them").unwrap(), vec![(other, None)]);
    let recorded = store.run(mine).unwrap().run.stop_request.unwrap();
    assert_eq!(recorded.describe(), "stopped by alice: bad input");
    // A run that has ended keeps no request: there was nothing to stop.
    assert_eq!(store.run(ended).unwrap().run.stop_request, None);
    // One task of a run: found while the task runs, with who asked and why.
    store
        .apply(&[Change::Task {
            run: other,
            task: "a".into(),
            state: TaskState::Running,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
    store.request_task_stop(other, "a", &request).unwrap();
    let mut asked = store.stop_requests("them").unwrap();
    asked.sort();
    assert_eq!(asked, vec![(other, None), (other, Some("a".to_owned()))]);
    assert_eq!(
        store.task_stop(other, "a").unwrap().unwrap().describe(),
        "stopped by alice: bad input"
    );
    assert_eq!(store.task_stop(mine, "a").unwrap(), None);
}

/// Group commit: owners' changes written by one commit are each checked against their own
/// fence, so the one refused leaves the others recorded, and nothing of it is written. A group
/// whose change finds no row is undone alone as well, its earlier changes included.
pub(crate) fn a_batch_of_owners_keeps_each_owners_changes_or_refuses_them_alone(db: &Db) {
    let store = db.open();
    let kept = new_run(&*store, &["a"]);
    let next_day = crate::runs::logical_date() + chrono::TimeDelta::days(1);
    let refused = crate::runs::run_at(&*store, &["a"], next_day).unwrap();
    take(&*store, "live", Duration::from_secs(60));
    take(&*store, "late", Duration::from_secs(60));
    let live = store
        .claim_run(kept, &holder(10, "live"), Utc::now())
        .unwrap()
        .unwrap();
    let late = store
        .claim_run(refused, &holder(11, "late"), Utc::now())
        .unwrap()
        .unwrap();
    // Another process adopted the second run: its first owner is fenced off.
    let seen = store.run(refused).unwrap().run.owner_token;
    store
        .take_over(refused, seen, &holder(20, "live"), "live")
        .unwrap()
        .unwrap();
    let results = store
        .apply_fenced_batch(&[
            (live.clone(), run_ended(kept)),
            (late, run_ended(refused)),
            (live.clone(), vec![]),
            (
                live,
                vec![
                    Change::Task {
                        run: kept,
                        task: "a".into(),
                        state: TaskState::Failed,
                        reason: Some("undone with its group".into()),
                        at: Utc::now(),
                    },
                    Change::Task {
                        run: kept,
                        task: "no_such_task".into(),
                        state: TaskState::Success,
                        reason: None,
                        at: Utc::now(),
                    },
                ],
            ),
        ])
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(StoreError::Fenced { .. })),
        "{results:?}"
    );
    assert!(results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[3], Err(StoreError::NotFound(what)) if what.contains("no_such_task")),
        "{results:?}"
    );
    let detail = store.run(kept).unwrap();
    assert_eq!(detail.run.state, RunState::Success);
    assert_eq!(detail.tasks[0].state, TaskState::Queued);
    assert_eq!(store.run(refused).unwrap().run.state, RunState::Running);
}
