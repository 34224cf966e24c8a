// Alerts: raising, resolving, verdicts and notifications; the history events they come from;
// and work made atomic across store methods ([`AlertStore::atomically`]).

use chrono::{DateTime, Duration, TimeZone, Utc};
use vane_store::*;

use super::fixtures::{attempt, occurrence, rows, run, set_state};

fn boom() -> StoreError {
    StoreError::NotFound("boom".into())
}

pub(crate) fn atomic_work_commits_at_its_end_or_not_at_all(db: &Db) {
    let store = db.open();
    // Another process sees only what was committed.
    let other = db.open();
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

pub(crate) fn nested_atomic_work_that_fails_undoes_only_its_own_writes(db: &Db) {
    let store = db.open();
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

fn success_of(run: RunId, at: DateTime<Utc>, dag_version: Option<i64>) -> HistoryEvent {
    HistoryEvent {
        key: format!("run_ok:{run}"),
        kind: EventKind::RunSucceeded,
        dag_id: "demo".into(),
        task_id: None,
        subject: None,
        run: Some(run),
        dag_version,
        detail: "ok".into(),
        at,
    }
}

pub(crate) fn an_alert_counts_recurrences_resolves_on_success_and_reopens_when_it_flaps(db: &Db) {
    let store = db.open();
    let r1 = run(&*store, "demo", 1, &["a"]);
    let r2 = run(&*store, "demo", 2, &["a"]);
    let r3 = run(&*store, "demo", 3, &["a"]);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let failure = |run: RunId, at: DateTime<Utc>| AlertOccurrence {
        run: Some(run),
        dag_version: Some(1),
        at,
        reopen_since: Some(at - Duration::hours(1)),
        ..occurrence("r")
    };
    let first = store.raise_alert(&failure(r1, t0)).unwrap();
    assert_eq!((first.count, first.state), (1, AlertState::Open));
    let again = store
        .raise_alert(&failure(r2, t0 + Duration::minutes(1)))
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!((again.count, again.first_run, again.last_run), (2, Some(r1), Some(r2)));
    assert_eq!(again.last_seen, t0 + Duration::minutes(1));
    // A success on another DAG version: resolved, and the fix marks it real.
    let resolved = store
        .resolve_after_success(&success_of(r3, t0 + Duration::minutes(2), Some(2)))
        .unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].state, AlertState::Resolved);
    assert_eq!(resolved[0].resolved_by.as_deref(), Some(&*format!("run {r3}")));
    assert_eq!(resolved[0].verdict, Some(Verdict::Real));
    assert_eq!(resolved[0].verdict_source.as_deref(), Some("fix"));
    assert!(store.alerts(AlertFilter::default()).unwrap().is_empty());
    // It fails again soon after: the same alert, reopened, counted.
    let reopened = store
        .raise_alert(&failure(r3, t0 + Duration::minutes(3)))
        .unwrap();
    assert_eq!(reopened.id, first.id);
    assert_eq!((reopened.count, reopened.state), (3, AlertState::Open));
    assert_eq!(reopened.resolved_at, None);
    // Resolved by hand, it stays resolved: the next failure opens another.
    store.resolve_alert(first.id, "user bob", Utc::now()).unwrap();
    let fresh = store
        .raise_alert(&failure(r3, t0 + Duration::minutes(4)))
        .unwrap();
    assert_ne!(fresh.id, first.id);
    let all: Vec<(i64, AlertState)> = store
        .alerts(AlertFilter { all: true })
        .unwrap()
        .iter()
        .map(|a| (a.id, a.state))
        .collect();
    assert_eq!(
        all,
        [(fresh.id, AlertState::Open), (first.id, AlertState::Resolved)]
    );
    assert!(matches!(store.alert(fresh.id + 100), Err(StoreError::NotFound(_))));
}

pub(crate) fn a_persons_verdict_wins_and_actions_credit_the_rest(db: &Db) {
    let store = db.open();
    let r1 = run(&*store, "demo", 1, &["a", "b"]);
    let on = |rule, task| AlertOccurrence {
        task_id: Some(task),
        run: Some(r1),
        ..occurrence(rule)
    };
    let a = store.raise_alert(&on("x", "a")).unwrap();
    let b = store.raise_alert(&on("y", "b")).unwrap();
    let gate = store
        .raise_alert(&AlertOccurrence {
            kind: "gate_failed",
            subject: Some("churn"),
            ..occurrence("z")
        })
        .unwrap();
    let acked = store
        .acknowledge_alert(a.id, "alice", Some(Verdict::Noise), Utc::now())
        .unwrap();
    assert_eq!(acked.state, AlertState::Acknowledged);
    assert_eq!(
        (acked.verdict, acked.verdict_source.as_deref()),
        (Some(Verdict::Noise), Some("person"))
    );
    // Clearing the run's task b credits b, not a (a person already judged it).
    assert_eq!(store.credit_action(Some(r1), Some("b"), None, "clear").unwrap(), 1);
    assert_eq!(store.alert(b.id).unwrap().verdict_source.as_deref(), Some("clear"));
    assert_eq!(store.alert(a.id).unwrap().verdict, Some(Verdict::Noise));
    // A rollback of the model credits its gate alert.
    assert_eq!(
        store
            .credit_action(None, None, Some("churn"), "rollback")
            .unwrap(),
        1
    );
    assert_eq!(
        store.alert(gate.id).unwrap().verdict_source.as_deref(),
        Some("rollback")
    );
    let until = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(store.snooze_alert(b.id, until).unwrap().snoozed_until, Some(until));
    assert!(matches!(
        store.acknowledge_alert(999_999, "alice", None, Utc::now()),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn notifications_are_counted_per_alert(db: &Db) {
    let store = db.open();
    let a = store.raise_alert(&occurrence("r")).unwrap();
    let b = store
        .raise_alert(&AlertOccurrence {
            task_id: Some("b"),
            ..occurrence("r")
        })
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    store
        .record_notification(&[(a.id, "r"), (b.id, "r")], "slack", t0, None)
        .unwrap();
    store
        .record_notification(&[(a.id, "r")], "pager", t0 + Duration::minutes(30), None)
        .unwrap();
    // A failed one counts for nothing.
    store
        .record_notification(
            &[(b.id, "r")],
            "pager",
            t0 + Duration::hours(1),
            Some(Undelivered {
                error: "503",
                retry_at: t0 + Duration::hours(2),
            }),
        )
        .unwrap();
    assert_eq!(store.alerts_notified_since("r", t0).unwrap(), 2);
    assert_eq!(
        store
            .alerts_notified_since("r", t0 + Duration::minutes(1))
            .unwrap(),
        1
    );
    assert_eq!(store.alerts_notified_since("other", t0).unwrap(), 0);
    assert_eq!(
        store.alert(a.id).unwrap().last_notified_at,
        Some(t0 + Duration::minutes(30))
    );
    assert_eq!(store.alert(b.id).unwrap().last_notified_at, Some(t0));
}

/// The events the alert evaluator derives from the history: their keys decide what counts
/// once, their texts are what a person reads, so both backends must give the same.
pub(crate) fn history_events_have_stable_keys_and_texts(db: &Db) {
    let store = db.open();
    let since = Utc::now() - Duration::hours(1);
    // `run` names the failed run from here on; the fixture is reached by its path.
    let run = super::fixtures::run(&*store, "demo", 5, &["a", "validate", "sense"]);
    set_state(&*store, run, RunState::Running);
    attempt(&*store, run, "a", 1, false);
    store
        .record_check_evaluation(&NewCheckEvaluation {
            run,
            dag_id: "demo",
            task_id: "validate",
            attempt: 1,
            passed: false,
            profile: "{}",
            results: &[CheckResult {
                status: CheckStatus::Fail,
                detail: "3 rows".into(),
                ..rows(3.0, "a")
            }],
            at: Utc::now(),
        })
        .unwrap();
    store
        .apply(&[Change::SlaMiss {
            run,
            task: None,
            deadline: Utc.with_ymd_and_hms(2026, 11, 5, 1, 30, 0).unwrap(),
            at: Utc::now(),
        }])
        .unwrap();
    // A sensor that waited past its timeout.
    let at = Utc::now();
    store
        .apply(&[
            Change::AttemptStarted {
                run,
                task: "sense".into(),
                attempt: 1,
                command: "test -e x".into(),
                host: "box".into(),
                log_path: "log".into(),
                at,
            },
            Change::Metric {
                run,
                task: "sense".into(),
                attempt: 1,
                name: "wait_seconds".into(),
                value: 60.0,
                at,
            },
            Change::AttemptFinished {
                run,
                task: "sense".into(),
                attempt: 1,
                success: false,
                exit_code: None,
                signal: None,
                reason: Some("timed out after 1m".into()),
                at,
            },
        ])
        .unwrap();
    // Its rollout's gate failed the candidate; later a person put it in production by hand.
    let version = store
        .register_model_version(&NewModelVersion {
            model: "churn",
            hash: "aa",
            kind: "file",
            size: 1,
            path: "m.json",
            stored: None,
            run,
            task_id: "a",
            attempt: 1,
        })
        .unwrap();
    store
        .set_rollout_stage(&RolloutStage {
            run_id: run,
            task_id: "a".into(),
            stage: "canary".into(),
            model: "churn".into(),
            version,
            status: vane_store::StageStatus::Failed,
            detail: None,
            evidence: serde_json::json!({}),
            decided_by: None,
            reason: None,
            updated_at: Utc::now(),
        })
        .unwrap();
    for (to_stage, actor, by_run, reason) in [
        ("failed", format!("run {run}"), Some(run), Some("auc below 0.8")),
        ("production", "user alice".to_owned(), None, None),
    ] {
        store
            .set_stage(&StageChange {
                model: "churn",
                version,
                to_stage,
                actor: &actor,
                run: by_run,
                reason,
                evidence: &serde_json::json!({}),
            })
            .unwrap();
    }
    let ledger: Vec<i64> = store
        .ledger(Some("churn"))
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    // A task that succeeded after a clear, in a run that then succeeded.
    let fixed = super::fixtures::run(&*store, "demo", 6, &["a"]);
    set_state(&*store, fixed, RunState::Running);
    attempt(&*store, fixed, "a", 1, false);
    store
        .apply(&[Change::TaskCleared {
            run: fixed,
            task: "a".into(),
            reason: "retry".into(),
            at: Utc::now(),
        }])
        .unwrap();
    attempt(&*store, fixed, "a", 2, true);
    set_state(&*store, fixed, RunState::Success);
    set_state(&*store, run, RunState::Failed);
    let mut events: Vec<(EventKind, String, Option<String>, String)> = store
        .history_events(since)
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.key, e.task_id, e.detail))
        .collect();
    events.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        events,
        [
            (
                EventKind::CheckFailed,
                format!("check:{run}:validate:1:rows"),
                Some("validate".into()),
                "rows: 3 rows".into()
            ),
            (
                EventKind::TaskCleared,
                format!("cleared:{fixed}:a:1"),
                Some("a".into()),
                "cleared".into()
            ),
            (
                EventKind::GateFailed,
                format!("gate:{}", ledger[1]),
                Some("a".into()),
                "churn v1 failed: auc below 0.8".into()
            ),
            (
                EventKind::ManualRollback,
                format!("manual:{}", ledger[2]),
                None,
                "user alice put churn v1 in production".into()
            ),
            (
                EventKind::RunFailed,
                format!("run_failed:{run}"),
                None,
                format!("run {run} failed")
            ),
            (
                EventKind::RunSucceeded,
                format!("run_ok:{fixed}"),
                None,
                format!("run {fixed} succeeded")
            ),
            (
                EventKind::SensorTimeout,
                format!("sensor:{run}:sense:1"),
                Some("sense".into()),
                "sensor sense timed out after 1m".into()
            ),
            (
                EventKind::SlaMissed,
                format!("sla:{run}:"),
                None,
                format!("run {run} not finished by its deadline 2026-11-05T01:30:00.000000Z")
            ),
            (
                EventKind::TaskFailed,
                format!("task_failed:{run}:a:1"),
                Some("a".into()),
                "exit code 1".into()
            ),
            (
                EventKind::TaskSucceeded,
                format!("task_ok:{fixed}:a:2"),
                Some("a".into()),
                "succeeded".into()
            ),
        ]
    );
    assert!(
        store
            .history_events(Utc::now() + Duration::hours(1))
            .unwrap()
            .is_empty()
    );
}

/// Event keys with their times, as the evaluator claims them.
type Keys = Vec<(String, DateTime<Utc>)>;

/// Evaluators on several stores at once, each claiming its keys (moving the cursor to its
/// own) and raising the same alert once per event it claimed, in one transaction as the
/// evaluator does. Returns what each claimed.
fn evaluate_at_once(
    db: &Db,
    batches: &[(Keys, DateTime<Utc>)],
) -> Vec<Vec<String>> {
    let barrier = std::sync::Barrier::new(batches.len());
    std::thread::scope(|s| {
        let evaluators: Vec<_> = batches
            .iter()
            .map(|(keys, cursor)| {
                let store = db.open();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let mut claimed = Vec::new();
                    store
                        .atomically(&mut || {
                            claimed =
                                store.claim_events(keys, *cursor, *cursor - Duration::days(30))?;
                            for _ in &claimed {
                                store.raise_alert(&occurrence("r"))?;
                            }
                            Ok(())
                        })
                        .unwrap();
                    claimed
                })
            })
            .collect();
        evaluators.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Two evaluators (two schedulers) read the same events and claim them at once: each event is
/// claimed by exactly one, and the cursor ends at the later of the two.
pub(crate) fn two_evaluators_claim_each_event_once(db: &Db) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let keys: Keys = (0..200)
        .map(|i| (format!("run_failed:{i}"), t0 + Duration::seconds(i)))
        .collect();
    // In opposite orders, the worst case for the rows each insert locks.
    let mut reversed = keys.clone();
    reversed.reverse();
    let claimed = evaluate_at_once(
        db,
        &[
            (keys.clone(), t0 + Duration::hours(2)),
            (reversed, t0 + Duration::hours(1)),
        ],
    );
    let mut all: Vec<&String> = claimed.iter().flatten().collect();
    all.sort();
    let mut expected: Vec<&String> = keys.iter().map(|(k, _)| k).collect();
    expected.sort();
    assert_eq!(all, expected, "every event claimed, none twice");
    let store = db.open();
    let counts: Vec<i64> = store
        .alerts(AlertFilter::default())
        .unwrap()
        .iter()
        .map(|a| a.count)
        .collect();
    assert_eq!(counts, [200]);
    assert_eq!(store.alert_cursor().unwrap(), Some(t0 + Duration::hours(2)));
    // Claimed events stay claimed; a key given twice counts once.
    let again = [keys[0].clone(), ("new".to_owned(), t0), ("new".to_owned(), t0)];
    assert_eq!(
        store
            .claim_events(&again, t0, t0 - Duration::days(1))
            .unwrap(),
        ["new"]
    );
    // The cursor never moves back; keys seen before `forget_before` are forgotten, and an
    // evaluation that stalled past that cleanup (it still reads the old window) cannot claim
    // them again: they may have been claimed, and an alert counted twice is worse.
    store
        .claim_events(&[], t0, t0 + Duration::seconds(100))
        .unwrap();
    assert_eq!(store.alert_cursor().unwrap(), Some(t0 + Duration::hours(2)));
    let late = ("late".to_owned(), t0 + Duration::seconds(200));
    assert_eq!(
        store
            .claim_events(&[keys[0].clone(), keys[1].clone(), late], t0, t0 - Duration::days(1))
            .unwrap(),
        ["late"]
    );
}

/// Two writers raising the same alert at once (two evaluators with different events): one
/// alert, counted once per occurrence, rather than two alerts or a failed evaluation.
pub(crate) fn two_writers_raising_one_alert_open_it_once(db: &Db) {
    for round in 0..5 {
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                let store = db.open();
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    store
                        .atomically(&mut || {
                            for _ in 0..20 {
                                store.raise_alert(&occurrence("r"))?;
                            }
                            Ok(())
                        })
                        .unwrap();
                });
            }
        });
        let alerts = db.open().alerts(AlertFilter::default()).unwrap();
        let counts: Vec<i64> = alerts.iter().map(|a| a.count).collect();
        assert_eq!(counts, [40 * (round + 1)], "round {round}");
    }
}

/// A notification whose first try failed is pending: it starts no cooldown and counts towards
/// no rate limit. Claimed when due, it is held from other claimers; what became of it is
/// written back with the claim's token, and only a delivery starts the cooldown.
pub(crate) fn undelivered_notifications_count_for_nothing_until_a_retry_delivers_them(db: &Db) {
    let store = db.open();
    let a = store.raise_alert(&occurrence("r")).unwrap();
    let b = store
        .raise_alert(&AlertOccurrence {
            task_id: Some("b"),
            ..occurrence("r")
        })
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let at = |s: i64| t0 + Duration::seconds(s);
    store
        .record_notification(
            &[(a.id, "r"), (b.id, "r")],
            "hook",
            t0,
            Some(Undelivered {
                error: "cannot connect",
                retry_at: at(30),
            }),
        )
        .unwrap();
    assert_eq!(store.alerts_notified_since("r", t0).unwrap(), 0);
    let pending = store.alert(a.id).unwrap();
    assert_eq!(pending.last_notified_at, None, "no cooldown started");
    let delivery = pending.delivery.expect("its notification");
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!((delivery.attempts, delivery.channel.as_str()), (1, "hook"));
    assert_eq!(delivery.error.as_deref(), Some("cannot connect"));
    assert_eq!(delivery.next_try_at, Some(at(30)));

    // Not due yet; then due, and claimed once.
    assert!(store.claim_due_notifications(at(29), at(600)).unwrap().is_empty());
    let claimed = store.claim_due_notifications(at(30), at(600)).unwrap();
    let ids: Vec<i64> = claimed.iter().map(|n| n.alert_id).collect();
    assert_eq!(ids, [a.id, b.id]);
    assert!(claimed.iter().all(|n| n.next_try_at == Some(at(600))));
    assert!(store.claim_due_notifications(at(31), at(600)).unwrap().is_empty());
    let (na, nb) = (claimed[0].id, claimed[1].id);

    // A write-back without the claim's token changes nothing.
    assert_eq!(
        store
            .finish_notifications(&[na], at(599), at(31), DeliveryOutcome::Delivered)
            .unwrap(),
        0
    );
    // The retry failed too: tried again later, one more try counted.
    let failed = DeliveryOutcome::Failed {
        error: "answered `HTTP/1.1 503`",
        retry_at: at(90),
    };
    assert_eq!(
        store
            .finish_notifications(&[na, nb], at(600), at(31), failed)
            .unwrap(),
        2
    );
    let delivery = store.alert(a.id).unwrap().delivery.unwrap();
    assert_eq!((delivery.attempts, delivery.next_try_at), (2, Some(at(90))));
    assert_eq!(delivery.error.as_deref(), Some("answered `HTTP/1.1 503`"));

    // Delivered at the third try: the cooldown and the rate limit count from then.
    let claimed = store.claim_due_notifications(at(300), at(900)).unwrap();
    assert_eq!(claimed.len(), 2);
    store
        .finish_notifications(&[na], at(900), at(300), DeliveryOutcome::Delivered)
        .unwrap();
    // b's alert resolved meanwhile: abandoned, with why.
    store
        .finish_notifications(
            &[nb],
            at(900),
            at(300),
            DeliveryOutcome::Abandoned {
                why: "alert resolved",
            },
        )
        .unwrap();
    let a = store.alert(a.id).unwrap();
    assert_eq!(a.last_notified_at, Some(at(300)));
    let delivery = a.delivery.unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered);
    assert_eq!((delivery.attempts, delivery.delivered_at), (3, Some(at(300))));
    assert_eq!(delivery.at, t0, "first tried at");
    assert_eq!(store.alerts_notified_since("r", t0).unwrap(), 1);
    assert_eq!(store.alerts_notified_since("r", at(301)).unwrap(), 0);
    let b = store.alert(b.id).unwrap();
    assert_eq!(b.last_notified_at, None);
    let delivery = b.delivery.unwrap();
    assert_eq!(delivery.state, DeliveryState::Abandoned);
    assert_eq!(delivery.abandoned_why.as_deref(), Some("alert resolved"));
    assert!(store.claim_due_notifications(at(10_000), at(20_000)).unwrap().is_empty());

    // The listing shows each alert's latest notification.
    let listed: Vec<(i64, Option<DeliveryState>)> = store
        .alerts(AlertFilter::default())
        .unwrap()
        .iter()
        .map(|x| (x.id, x.delivery.as_ref().map(|d| d.state)))
        .collect();
    assert_eq!(
        listed,
        [
            (b.id, Some(DeliveryState::Abandoned)),
            (a.id, Some(DeliveryState::Delivered))
        ]
    );
    // Delivered at the first try: delivered at once.
    store
        .record_notification(&[(a.id, "r")], "log", at(4000), None)
        .unwrap();
    let a = store.alert(a.id).unwrap();
    assert_eq!(a.last_notified_at, Some(at(4000)));
    assert_eq!(a.delivery.unwrap().delivered_at, Some(at(4000)));
}

/// Several evaluators (schedulers on one database) claiming due retries at once: each retry is
/// claimed by exactly one of them, so it is delivered once.
pub(crate) fn racing_evaluators_claim_each_due_retry_once(db: &Db) {
    let store = db.open();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..20 {
        let task = format!("t{i}");
        let alert = store
            .raise_alert(&AlertOccurrence {
                task_id: Some(&task),
                ..occurrence("r")
            })
            .unwrap();
        store
            .record_notification(
                &[(alert.id, "r")],
                "hook",
                t0,
                Some(Undelivered {
                    error: "refused",
                    retry_at: t0 + Duration::seconds(i),
                }),
            )
            .unwrap();
        expected.push(alert.id);
    }
    let now = t0 + Duration::minutes(1);
    let claimed = super::runs::race(db, |i, store| {
        // Each with its own hold, as evaluators a moment apart would have.
        store
            .claim_due_notifications(now, now + Duration::minutes(10) + Duration::seconds(i as i64))
            .unwrap()
    });
    let mut all: Vec<i64> = claimed.iter().flatten().map(|n| n.alert_id).collect();
    all.sort_unstable();
    assert_eq!(all, expected, "every due retry claimed, none twice");
    // Each claimer writes back with its own token; another's token changes nothing.
    for (i, mine) in claimed.iter().enumerate() {
        let token = now + Duration::minutes(10) + Duration::seconds(i as i64);
        let ids: Vec<i64> = mine.iter().map(|n| n.id).collect();
        let other = token + Duration::milliseconds(1);
        assert_eq!(
            store
                .finish_notifications(&ids, other, now, DeliveryOutcome::Delivered)
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .finish_notifications(&ids, token, now, DeliveryOutcome::Delivered)
                .unwrap(),
            ids.len()
        );
    }
    assert_eq!(store.alerts_notified_since("r", t0).unwrap(), 20);
}
