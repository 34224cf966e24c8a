// DAG versions, runs, attempts, claims, backfills and SLA misses.

use std::sync::Barrier;

use chrono::{TimeZone, Utc};
use vane_store::*;


/// How many processes race in the concurrency cases: enough that a missing lock shows.
pub(crate) const RACERS: usize = 8;

pub(crate) fn logical_date() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
}

pub(crate) fn version(store: &S) -> DagVersionId {
    store
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h1",
            path: "dags/demo.toml",
            source: "[tasks.a]\ncommand = \"true\"\n",
        })
        .unwrap()
}

pub(crate) fn run_at(
    store: &S,
    tasks: &[&str],
    logical_date: chrono::DateTime<Utc>,
) -> Result<RunId> {
    let version = version(store);
    store.create_run(&NewRun {
        dag_id: "demo",
        dag_version: version,
        logical_date,
        trigger: Trigger::Manual,
        params: serde_json::json!({ "min_accuracy": 0.8 }),
        git: Some(GitState {
            commit: "abc123".into(),
            dirty: true,
        }),
        host: "box",
        timezone: "UTC",
        tasks,
        at: Utc::now(),
        records_tick: false,
        backfill: None,
    })
}

pub(crate) fn new_run(store: &S, tasks: &[&str]) -> RunId {
    run_at(store, tasks, logical_date()).unwrap()
}

pub(crate) fn owner(pid: u32) -> Owner {
    Owner {
        host: "box".into(),
        pid,
        start_time: Some(1),
        lease: None,
        lease_held: None,
    }
}

pub(crate) fn a_run_is_recorded_with_its_version_params_and_git_state(db: &Db) {
    let store = db.open();
    let id = new_run(&*store, &["a", "b"]);
    assert_eq!(version(&*store), store.run(id).unwrap().run.dag_version);
    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.state, RunState::Queued);
    assert_eq!(detail.run.dag_hash, "h1");
    assert_eq!(detail.run.logical_date, logical_date());
    assert_eq!(detail.run.params["min_accuracy"], 0.8);
    assert_eq!(
        detail.run.git,
        Some(GitState {
            commit: "abc123".into(),
            dirty: true
        })
    );
    let tasks: Vec<_> = detail
        .tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.state))
        .collect();
    assert_eq!(
        tasks,
        vec![("a", TaskState::Queued), ("b", TaskState::Queued)]
    );
    assert_eq!(
        store.dag_source(detail.run.dag_version).unwrap(),
        "[tasks.a]\ncommand = \"true\"\n"
    );
    assert!(matches!(store.run(RunId(id.0 + 1)), Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.dag_source(detail.run.dag_version + 1),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn attempts_are_kept_as_history(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let now = Utc::now();
    for attempt in 1..=2 {
        store
            .apply(&[Change::AttemptStarted {
                run,
                task: "a".into(),
                attempt,
                command: "false".into(),
                host: "box".into(),
                log_path: "/tmp/a.log".into(),
                at: now,
            }])
            .unwrap();
        store
            .apply(&[
                Change::AttemptProcess {
                    run,
                    task: "a".into(),
                    attempt,
                    pid: 42,
                    pid_start_time: Some(7),
                },
                Change::Metric {
                    run,
                    task: "a".into(),
                    attempt,
                    name: "loss".into(),
                    value: f64::from(attempt),
                    at: now,
                },
                Change::AttemptFinished {
                    run,
                    task: "a".into(),
                    attempt,
                    success: attempt == 2,
                    exit_code: Some(if attempt == 2 { 0 } else { 1 }),
                    signal: None,
                    reason: None,
                    at: now,
                },
            ])
            .unwrap();
    }
    let task = &store.run(run).unwrap().tasks[0];
    let states: Vec<_> = task
        .attempts
        .iter()
        .map(|a| (a.attempt, a.state, a.exit_code))
        .collect();
    assert_eq!(
        states,
        vec![
            (1, AttemptState::Failed, Some(1)),
            (2, AttemptState::Success, Some(0))
        ]
    );
    assert_eq!(task.attempts[0].pid, Some(42));
    assert_eq!(task.attempts[0].pid_start_time, Some(7));
    assert_eq!(task.attempts[1].metrics, vec![("loss".to_owned(), 2.0)]);
    assert_eq!(task.attempts[1].dag_version, Some(version(&*store)));
}

pub(crate) fn a_batch_is_all_or_nothing(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let at = Utc::now();
    let result = store.apply(&[
        Change::Run {
            run,
            state: RunState::Running,
            reason: None,
            at,
        },
        Change::Task {
            run,
            task: "no_such_task".into(),
            state: TaskState::Success,
            reason: None,
            at,
        },
    ]);
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    assert_eq!(store.run(run).unwrap().run.state, RunState::Queued);
}

/// Changes applied inside a caller's transaction commit with it: one that finds no row fails
/// alone, and the caller's transaction goes on and commits the rest.
pub(crate) fn a_batch_inside_a_transaction_commits_with_it_or_fails_alone(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let at = Utc::now();
    let state = |task: &str, state| Change::Task {
        run,
        task: task.into(),
        state,
        reason: None,
        at,
    };
    store
        .atomically(&mut || {
            store.apply(&[state("a", TaskState::Running)])?;
            let missing = store.apply(&[
                state("a", TaskState::Failed),
                state("no_such_task", TaskState::Success),
            ]);
            assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
            store.apply(&[Change::Run {
                run,
                state: RunState::Running,
                reason: None,
                at,
            }])
        })
        .unwrap();
    let detail = store.run(run).unwrap();
    assert_eq!(detail.run.state, RunState::Running);
    assert_eq!(detail.tasks[0].state, TaskState::Running);
}

pub(crate) fn a_finished_attempt_is_never_rewritten(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let at = Utc::now();
    let start = Change::AttemptStarted {
        run,
        task: "a".into(),
        attempt: 1,
        command: "true".into(),
        host: "box".into(),
        log_path: "/tmp/a.log".into(),
        at,
    };
    let finish = |success| Change::AttemptFinished {
        run,
        task: "a".into(),
        attempt: 1,
        success,
        exit_code: Some(0),
        signal: None,
        reason: None,
        at,
    };
    store.apply(&[start, finish(true)]).unwrap();
    assert!(store.apply(&[finish(false)]).is_err());
    assert_eq!(
        store.run(run).unwrap().tasks[0].attempts[0].state,
        AttemptState::Success
    );
}

pub(crate) fn the_history_survives_reopening(db: &Db) {
    let run = new_run(&*db.open(), &["a"]);
    let store = db.open();
    let runs = store
        .runs(&RunFilter {
            dag_id: Some("demo"),
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![run]);
}

pub(crate) fn a_dag_has_at_most_one_run_per_logical_date(db: &Db) {
    let store = db.open();
    let first = new_run(&*store, &["a"]);
    let again = store.create_run(&NewRun {
        dag_id: "demo",
        dag_version: version(&*store),
        logical_date: logical_date(),
        trigger: Trigger::Scheduled,
        params: serde_json::json!({}),
        git: None,
        host: "other-box",
        timezone: "UTC",
        tasks: &["a"],
        at: Utc::now(),
        records_tick: true,
        backfill: None,
    });
    match again {
        Err(StoreError::RunExists {
            run, logical_date, ..
        }) => {
            assert_eq!(run, first);
            assert_eq!(logical_date, "2026-11-23T02:00:00.000000Z");
        }
        other => panic!("expected RunExists, got {other:?}"),
    }
    // The refused run left no tick behind either.
    assert_eq!(store.ticks("demo", 10).unwrap(), vec![]);
}

pub(crate) fn runs_can_be_listed_by_state_oldest_first(db: &Db) {
    let store = db.open();
    let first = new_run(&*store, &["a"]);
    let second = run_at(&*store, &["a"], logical_date() + chrono::Duration::days(1)).unwrap();
    let list = |states: &[RunState], oldest_first| {
        store
            .runs(&RunFilter {
                states,
                oldest_first,
                ..RunFilter::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&[RunState::Queued], true), vec![first, second]);
    assert_eq!(list(&[], false), vec![second, first]);
    store
        .apply(&[Change::Run {
            run: first,
            state: RunState::Running,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
    assert_eq!(list(&[RunState::Queued], true), vec![second]);
    assert_eq!(
        list(&[RunState::Running, RunState::Success], true),
        vec![first]
    );
    let other_dag = store
        .runs(&RunFilter {
            dag_id: Some("other"),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(other_dag, vec![]);
    let limited = store
        .runs(&RunFilter {
            limit: 1,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(limited.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second]);
}

pub(crate) fn only_one_process_can_claim_a_run(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let first = store.claim_run(run, &owner(10), Utc::now()).unwrap();
    assert!(first.is_some());
    assert_eq!(store.claim_run(run, &owner(11), Utc::now()).unwrap(), None);
    let record = store.run(run).unwrap().run;
    assert_eq!(record.state, RunState::Running);
    assert_eq!(record.owner, Some(owner(10)));
    assert!(record.started_at.is_some());
    // Released (finished, put aside, or adopted after a crash), it can be claimed again.
    store
        .apply(&[Change::RunOwner { run, owner: None }])
        .unwrap();
    // Each claim raises the fencing token.
    let second = store.claim_run(run, &owner(11), Utc::now()).unwrap().unwrap();
    assert!(second.token > first.unwrap().token);
    assert_eq!(store.run(run).unwrap().run.owner, Some(owner(11)));
}

/// Runs `act` on `RACERS` stores of one database at once, each on its own thread; returns what
/// each returned, in thread order.
pub(crate) fn race<T: Send>(db: &Db, act: impl Fn(usize, &S) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(RACERS);
    std::thread::scope(|s| {
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (start, act) = (&start, &act);
                s.spawn(move || {
                    let store = db.open();
                    start.wait();
                    act(i, &*store)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// Several schedulers deciding the same tick at once: the database, not the schedulers' luck,
/// makes it one run.
pub(crate) fn racing_creators_of_one_logical_date_make_one_run(db: &Db) {
    version(&*db.open());
    let results = race(db, |_, store| run_at(store, &["a", "b"], logical_date()));
    let made: Vec<RunId> = results.iter().filter_map(|r| r.as_ref().ok()).copied().collect();
    assert_eq!(made.len(), 1, "{results:?}");
    for result in &results {
        match result {
            Ok(_) => {}
            Err(StoreError::RunExists { run, .. }) => assert_eq!(*run, made[0]),
            Err(e) => panic!("expected RunExists, got {e:?}"),
        }
    }
    let runs = db.open().runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(db.open().run(made[0]).unwrap().tasks.len(), 2);
}

pub(crate) fn racing_claims_of_one_run_grant_one(db: &Db) {
    let run = new_run(&*db.open(), &["a"]);
    let claimed = race(db, |i, store| {
        store
            .claim_run(run, &owner(100 + i as u32), Utc::now())
            .unwrap()
    });
    let winners: Vec<usize> = (0..RACERS).filter(|i| claimed[*i].is_some()).collect();
    assert_eq!(winners.len(), 1, "{claimed:?}");
    assert_eq!(
        db.open().run(run).unwrap().run.owner,
        Some(owner(100 + winners[0] as u32))
    );
}

pub(crate) fn backfills_keep_their_runs_in_order(db: &Db) {
    let store = db.open();
    let from = logical_date();
    let to = from + chrono::Duration::days(3);
    let at = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let id = store
        .create_backfill(&NewBackfill {
            dag_id: "demo",
            from,
            to,
            reverse: true,
            rerun_failed: false,
            max_active: 2,
            redeploy_past: false,
            at,
        })
        .unwrap();
    let day = |n| from + chrono::Duration::days(n);
    // One run created by the backfill itself, then two linked, one of them twice.
    let created = store
        .create_run(&NewRun {
            dag_id: "demo",
            dag_version: version(&*store),
            logical_date: day(2),
            trigger: Trigger::Backfill,
            params: serde_json::json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks: &["a"],
            at,
            records_tick: false,
            backfill: Some(id),
        })
        .unwrap();
    let a = run_at(&*store, &["a"], day(1)).unwrap();
    let b = run_at(&*store, &["a"], day(0)).unwrap();
    store.link_backfill_runs(id, &[a, created, b]).unwrap();
    store
        .set_backfill_state(id, BackfillState::Paused)
        .unwrap();
    let record = store.backfill(id).unwrap();
    assert_eq!(
        (record.dag_id.as_str(), record.from, record.to, record.reverse, record.rerun_failed),
        ("demo", from, to, true, false)
    );
    assert_eq!((record.max_active, record.created_at), (2, at));
    assert_eq!(record.state, BackfillState::Paused);
    assert_eq!(
        record.runs,
        vec![
            (created, RunState::Queued),
            (a, RunState::Queued),
            (b, RunState::Queued)
        ]
    );
    assert_eq!(record.count(RunState::Queued), 3);
    assert_eq!(store.backfill_of(a).unwrap(), Some((id, BackfillState::Paused)));
    assert_eq!(store.backfill_of(RunId(a.0 + b.0 + created.0)).unwrap(), None);
    let second = store
        .create_backfill(&NewBackfill {
            dag_id: "other",
            from,
            to,
            reverse: false,
            rerun_failed: true,
            max_active: 1,
            redeploy_past: true,
            at,
        })
        .unwrap();
    assert!(store.backfill(second).unwrap().redeploy_past);
    assert!(!store.backfill(id).unwrap().redeploy_past);
    let ids = |dag| {
        store
            .backfills(dag)
            .unwrap()
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(None), vec![second, id]);
    assert_eq!(ids(Some("demo")), vec![id]);
    assert!(matches!(store.backfill(second + 1), Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.set_backfill_state(second + 1, BackfillState::Done),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn sla_misses_are_recorded_once(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let deadline = logical_date() + chrono::Duration::hours(1);
    let at = |minutes| deadline + chrono::Duration::minutes(minutes);
    let miss = |task: Option<&str>, minutes| Change::SlaMiss {
        run,
        task: task.map(str::to_owned),
        deadline,
        at: at(minutes),
    };
    store.apply(&[miss(None, 1)]).unwrap();
    store.apply(&[miss(Some("a"), 2)]).unwrap();
    // Detected again by the next pass (or another scheduler): still one miss.
    store.apply(&[miss(Some("a"), 3)]).unwrap();
    let misses = store.sla_misses(Some("demo"), 0).unwrap();
    let seen: Vec<_> = misses
        .iter()
        .map(|m| (m.task.as_deref(), m.detected_at))
        .collect();
    assert_eq!(seen, vec![(Some("a"), at(2)), (None, at(1))]);
    assert_eq!(misses[0].logical_date, logical_date());
    assert_eq!(misses[0].deadline, deadline);
    assert_eq!(store.sla_misses(None, 1).unwrap().len(), 1);
    assert_eq!(store.sla_misses(Some("other"), 0).unwrap(), vec![]);
}

pub(crate) fn a_run_starts_once_and_ends_when_it_finishes(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let t = |minutes| logical_date() + chrono::Duration::minutes(minutes);
    let set = |state, reason: Option<&str>, at| {
        store
            .apply(&[Change::Run {
                run,
                state,
                reason: reason.map(str::to_owned),
                at,
            }])
            .unwrap();
        store.run(run).unwrap().run
    };
    let running = set(RunState::Running, None, t(1));
    assert_eq!((running.started_at, running.ended_at), (Some(t(1)), None));
    // Resumed after a restart: it started when it first started.
    assert_eq!(set(RunState::Running, None, t(2)).started_at, Some(t(1)));
    let failed = set(RunState::Failed, Some("task a failed"), t(3));
    assert_eq!(failed.ended_at, Some(t(3)));
    assert_eq!(failed.reason.as_deref(), Some("task a failed"));
    // Cleared and rerun: no longer ended.
    let rerun = set(RunState::Running, None, t(4));
    assert_eq!((rerun.started_at, rerun.ended_at), (Some(t(1)), None));
    assert_eq!(rerun.reason, None);
    store
        .apply(&[Change::RunOwner {
            run,
            owner: Some(owner(7)),
        }])
        .unwrap();
    assert_eq!(store.run(run).unwrap().run.owner, Some(owner(7)));
}

/// `vane clear` after a fix: the task is queued with its full retry budget, and its next
/// attempt records the DAG version it ran with.
pub(crate) fn a_cleared_task_gets_its_retry_budget_back_and_runs_the_new_version(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let at = Utc::now();
    let attempt = |n| {
        [
            Change::AttemptStarted {
                run,
                task: "a".into(),
                attempt: n,
                command: "false".into(),
                host: "box".into(),
                log_path: format!("/tmp/a.{n}.log"),
                at,
            },
            Change::AttemptFinished {
                run,
                task: "a".into(),
                attempt: n,
                success: false,
                exit_code: None,
                signal: Some(9),
                reason: Some("killed".into()),
                at,
            },
        ]
    };
    store.apply(&attempt(1)).unwrap();
    store.apply(&attempt(2)).unwrap();
    let fixed = store
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h2",
            path: "dags/demo.toml",
            source: "[tasks.a]\ncommand = \"true\"\n# fixed\n",
        })
        .unwrap();
    store
        .apply(&[
            Change::TaskCleared {
                run,
                task: "a".into(),
                reason: "cleared by alice".into(),
                at,
            },
            Change::RunVersion {
                run,
                version: fixed,
            },
        ])
        .unwrap();
    let detail = store.run(run).unwrap();
    let task = &detail.tasks[0];
    assert_eq!(task.state, TaskState::Queued);
    assert_eq!(task.reason.as_deref(), Some("cleared by alice"));
    assert_eq!(task.retry_base, 2);
    assert_eq!(
        (task.attempts[1].signal, task.attempts[1].exit_code),
        (Some(9), None)
    );
    assert_eq!(detail.run.dag_version, fixed);
    assert_eq!(detail.run.dag_hash, "h2");
    store.apply(&attempt(3)[..1]).unwrap();
    let task = &store.run(run).unwrap().tasks[0];
    assert_eq!(task.state, TaskState::Running);
    let versions: Vec<_> = task.attempts.iter().map(|a| a.dag_version).collect();
    let first = version(&*store);
    assert_eq!(versions, vec![Some(first), Some(first), Some(fixed)]);
}

/// The scheduler's run for a tick and the tick's record commit together.
pub(crate) fn a_run_decided_on_a_tick_records_the_tick(db: &Db) {
    let store = db.open();
    let at = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let run = store
        .create_run(&NewRun {
            dag_id: "demo",
            dag_version: version(&*store),
            logical_date: logical_date(),
            trigger: Trigger::Scheduled,
            params: serde_json::json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks: &["a"],
            at,
            records_tick: true,
            backfill: None,
        })
        .unwrap();
    assert_eq!(
        store.ticks("demo", 0).unwrap(),
        vec![TickRecord {
            dag_id: "demo".into(),
            logical_date: logical_date(),
            decision: TickDecision::Run(run),
            decided_at: at,
        }]
    );
    assert_eq!(store.run(run).unwrap().run.trigger, Trigger::Scheduled);
}

/// A bug that panics half-way through a transaction must neither commit its part nor leave
/// the transaction open, holding locks every other process would wait on.
pub(crate) fn a_panic_inside_a_transaction_commits_nothing_and_holds_nothing(db: &Db) {
    let store = db.open();
    let run = new_run(&*store, &["a"]);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.atomically(&mut || {
            store.set_paused("demo", true)?;
            panic!("a bug in the middle of a transaction");
        });
    }));
    assert!(panicked.is_err());
    assert_eq!(store.pause_switches().unwrap().get("demo"), None);
    // Another process writes the same row at once, and the store itself goes on working.
    db.open().set_paused("demo", false).unwrap();
    store
        .apply(&[Change::Run {
            run,
            state: RunState::Success,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
    assert_eq!(db.open().run(run).unwrap().run.state, RunState::Success);
    assert_eq!(store.pause_switches().unwrap().get("demo"), Some(&false));
}

pub(crate) fn the_runs_before_a_date_are_found_latest_first(db: &Db) {
    use super::fixtures::{day, run, set_state};
    let store = db.open();
    // Made out of date order, as a backfill makes them.
    let d3 = run(&*store, "etl", 3, &["a"]);
    let d1 = run(&*store, "etl", 1, &["a"]);
    let d2 = run(&*store, "etl", 2, &["a"]);
    let other = run(&*store, "other", 2, &["a"]);
    for r in [d1, d2, other] {
        set_state(&*store, r, RunState::Success);
    }
    set_state(&*store, d3, RunState::Failed);
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let before = |date, states: &[RunState], limit| {
        ids(store.runs_before("etl", date, states, limit).unwrap())
    };
    assert_eq!(before(day(3), &[RunState::Success], 1), [d2]);
    assert_eq!(before(day(4), &[RunState::Success], 10), [d2, d1]);
    assert_eq!(before(day(4), &[], 10), [d3, d2, d1]);
    assert_eq!(before(day(4), &[RunState::Failed, RunState::Success], 2), [d3, d2]);
    assert!(before(day(1), &[], 10).is_empty());
}
