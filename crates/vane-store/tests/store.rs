use chrono::{TimeZone, Utc};
use vane_store::*;

fn new_run(store: &SqliteStore, tasks: &[&str]) -> RunId {
    let version = store
        .record_dag_version(&NewDagVersion {
            dag_id: "demo",
            content_hash: "h1",
            path: "dags/demo.toml",
            source: "[tasks.a]\ncommand = \"true\"\n",
        })
        .unwrap();
    store
        .create_run(&NewRun {
            dag_id: "demo",
            dag_version: version,
            logical_date: Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap(),
            trigger: Trigger::Manual,
            params: serde_json::json!({ "min_accuracy": 0.8 }),
            git: Some(GitState {
                commit: "abc123".into(),
                dirty: true,
            }),
            host: "box",
            tasks,
            at: Utc::now(),
            records_tick: false,
            backfill: None,
        })
        .unwrap()
}

#[test]
fn a_run_is_recorded_with_its_version_params_and_git_state() {
    let store = SqliteStore::open_in_memory().unwrap();
    let id = new_run(&store, &["a", "b"]);
    let detail = store.run(id).unwrap();
    assert_eq!(detail.run.state, RunState::Queued);
    assert_eq!(detail.run.dag_hash, "h1");
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
}

#[test]
fn attempts_are_kept_as_history() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a"]);
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
}

#[test]
fn a_batch_is_all_or_nothing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a"]);
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
    assert!(matches!(result, Err(StoreError::NotFound(_))));
    assert_eq!(store.run(run).unwrap().run.state, RunState::Queued);
}

#[test]
fn a_finished_attempt_is_never_rewritten() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a"]);
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

#[test]
fn the_database_survives_reopening_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/vane.db");
    let run = {
        let store = SqliteStore::open(&path).unwrap();
        new_run(&store, &["a"])
    };
    let store = SqliteStore::open(&path).unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert_eq!(store.schema_version().unwrap(), migrations as i64);
    assert!(store.integrity_check().unwrap());
    let runs = store
        .runs(&RunFilter {
            dag_id: Some("demo"),
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![run]);
}

#[test]
fn a_dag_has_at_most_one_run_per_logical_date() {
    let store = SqliteStore::open_in_memory().unwrap();
    let first = new_run(&store, &["a"]);
    let version = store.run(first).unwrap().run.dag_version;
    let again = store.create_run(&NewRun {
        dag_id: "demo",
        dag_version: version,
        logical_date: Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap(),
        trigger: Trigger::Scheduled,
        params: serde_json::json!({}),
        git: None,
        host: "other-box",
        tasks: &["a"],
        at: Utc::now(),
        records_tick: true,
        backfill: None,
    });
    match again {
        Err(StoreError::RunExists { run, .. }) => assert_eq!(run, first),
        other => panic!("expected RunExists, got {other:?}"),
    }
    // The refused run left no tick behind either.
    assert_eq!(store.ticks("demo", 10).unwrap(), vec![]);
}

#[test]
fn ticks_record_every_decision_once() {
    let store = SqliteStore::open_in_memory().unwrap();
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
}

#[test]
fn pausing_is_remembered() {
    let store = SqliteStore::open_in_memory().unwrap();
    store.set_paused("a", true).unwrap();
    store.set_paused("b", true).unwrap();
    store.set_paused("b", false).unwrap();
    let switches: Vec<_> = store.pause_switches().unwrap().into_iter().collect();
    assert_eq!(
        switches,
        vec![("a".to_owned(), true), ("b".to_owned(), false)]
    );
}

#[test]
fn runs_can_be_listed_by_state_oldest_first() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a"]);
    let queued = |store: &SqliteStore| {
        store
            .runs(&RunFilter {
                states: &[RunState::Queued],
                oldest_first: true,
                ..RunFilter::default()
            })
            .unwrap()
            .len()
    };
    assert_eq!(queued(&store), 1);
    store
        .apply(&[Change::Run {
            run,
            state: RunState::Running,
            reason: None,
            at: Utc::now(),
        }])
        .unwrap();
    assert_eq!(queued(&store), 0);
}

#[test]
fn only_one_process_can_claim_a_run() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a"]);
    let owner = |pid| Owner {
        host: "box".into(),
        pid,
        start_time: Some(1),
    };
    assert!(store.claim_run(run, &owner(10), Utc::now()).unwrap());
    assert!(!store.claim_run(run, &owner(11), Utc::now()).unwrap());
    let record = store.run(run).unwrap().run;
    assert_eq!(record.state, RunState::Running);
    assert_eq!(record.owner, Some(owner(10)));
    // Released (finished, put aside, or adopted after a crash), it can be claimed again.
    store
        .apply(&[Change::RunOwner { run, owner: None }])
        .unwrap();
    assert!(store.claim_run(run, &owner(11), Utc::now()).unwrap());
}

#[test]
fn pool_slots_go_by_class_then_priority_then_wait_and_dead_holders_free_theirs() {
    let store = SqliteStore::open_in_memory().unwrap();
    let run = new_run(&store, &["a", "b", "c", "d"]);
    let me = Owner {
        host: "box".into(),
        pid: 1,
        start_time: Some(1),
    };
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
    };
    release("c");
    assert!(ask("a", 1, 0, &gone, 30));
    assert!(ask("b", 0, 0, &me, 40));
}

#[test]
fn heartbeats_rewrite_one_row_per_scheduler_and_metrics_sum_the_live_ones() {
    let store = SqliteStore::open_in_memory().unwrap();
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

    let schedulers = store.schedulers().unwrap();
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
    assert!(schedulers[1].stopped_at.is_some());

    let summary = store.observe(&[], &[]).unwrap().schedulers;
    assert_eq!(summary.up, 1);
    assert_eq!(
        summary.heartbeats,
        vec![(live.id.clone(), now.timestamp_micros() as f64 / 1e6)]
    );
    assert_eq!(summary.pass_seconds.counts, passes.counts);
    assert_eq!(summary.pass_seconds.count, 3);
    assert!((summary.pass_seconds.sum - 0.3025).abs() < 1e-9);
}

fn occurrence(rule: &str) -> AlertOccurrence<'_> {
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

fn boom() -> StoreError {
    StoreError::NotFound("boom".into())
}

#[test]
fn atomic_work_commits_at_its_end_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vane.db");
    let store = SqliteStore::open(&path).unwrap();
    // Another process sees only what was committed.
    let other = SqliteStore::open(&path).unwrap();
    let keys = [("run_failed:1".to_owned(), Utc::now())];

    let failed = store.atomically(&mut || {
        assert_eq!(store.claim_events(&keys, Utc::now(), Utc::now())?.len(), 1);
        store.raise_alert(&occurrence("r"))?;
        // The methods' own commits did not commit the outer transaction.
        assert!(other.alerts(AlertFilter::default())?.is_empty());
        assert_eq!(other.alert_cursor()?, None);
        Err(boom())
    });
    assert!(matches!(failed, Err(StoreError::NotFound(_))), "{failed:?}");
    assert!(store.alerts(AlertFilter::default()).unwrap().is_empty());
    assert_eq!(store.alert_cursor().unwrap(), None);

    store
        .atomically(&mut || {
            assert_eq!(store.claim_events(&keys, Utc::now(), Utc::now())?.len(), 1);
            store.raise_alert(&occurrence("r"))?;
            assert!(other.alerts(AlertFilter::default())?.is_empty());
            Ok(())
        })
        .unwrap();
    let alerts = other.alerts(AlertFilter::default()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1);
    assert!(other.alert_cursor().unwrap().is_some());
}

#[test]
fn nested_atomic_work_that_fails_undoes_only_its_own_writes() {
    let store = SqliteStore::open_in_memory().unwrap();
    store
        .atomically(&mut || {
            store.raise_alert(&occurrence("kept"))?;
            let inner = store.atomically(&mut || {
                store.raise_alert(&occurrence("undone"))?;
                Err(boom())
            });
            assert!(inner.is_err());
            // The outer transaction is still open and usable after the inner one failed.
            store.raise_alert(&occurrence("kept"))?;
            Ok(())
        })
        .unwrap();
    let alerts = store.alerts(AlertFilter::default()).unwrap();
    let rules: Vec<_> = alerts.iter().map(|a| (a.rule.as_str(), a.count)).collect();
    assert_eq!(rules, vec![("kept", 2)]);
}
