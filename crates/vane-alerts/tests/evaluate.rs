//! Evaluations against a real SQLite history written through the store, the way the engine
//! writes it: which recorded events become alerts, and what is held back.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc::Receiver;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::Value;
use vane_store::*;

mod common;

enum Outcome {
    Ok,
    Fail,
    /// A sensor that waited past its timeout.
    SensorTimeout,
}

fn history() -> SqliteStore {
    SqliteStore::open_in_memory().unwrap()
}

fn run(store: &SqliteStore, dag: &str, day: u32, tasks: &[(&str, Outcome)]) -> RunId {
    run_at(store, dag, day, tasks, Utc::now())
}

/// A run that ended at `at`, as the engine would have recorded it then.
fn run_at(
    store: &SqliteStore,
    dag: &str,
    day: u32,
    tasks: &[(&str, Outcome)],
    at: DateTime<Utc>,
) -> RunId {
    let version = store
        .record_dag_version(&NewDagVersion {
            dag_id: dag,
            content_hash: "h1",
            path: "dags/x.toml",
            source: "",
        })
        .unwrap();
    let ids: Vec<&str> = tasks.iter().map(|(t, _)| *t).collect();
    let run = store
        .create_run(&NewRun {
            dag_id: dag,
            dag_version: version,
            logical_date: Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap(),
            trigger: Trigger::Manual,
            params: serde_json::json!({}),
            git: None,
            host: "box",
            timezone: "UTC",
            tasks: &ids,
            at,
            records_tick: false,
            backfill: None,
        })
        .unwrap();
    let mut changes = Vec::new();
    let mut failed = false;
    for (task, outcome) in tasks {
        let ok = matches!(outcome, Outcome::Ok);
        failed |= !ok;
        changes.push(Change::AttemptStarted {
            run,
            task: (*task).into(),
            attempt: 1,
            command: "true".into(),
            host: "box".into(),
            log_path: "x.log".into(),
            at,
        });
        if let Outcome::SensorTimeout = outcome {
            changes.push(Change::Metric {
                run,
                task: (*task).into(),
                attempt: 1,
                name: "wait_seconds".into(),
                value: 60.0,
                at,
            });
        }
        changes.push(Change::AttemptFinished {
            run,
            task: (*task).into(),
            attempt: 1,
            success: ok,
            exit_code: (!matches!(outcome, Outcome::SensorTimeout)).then_some(i32::from(!ok)),
            signal: None,
            reason: matches!(outcome, Outcome::SensorTimeout).then(|| "timed out after 1m".into()),
            at,
        });
        changes.push(Change::Task {
            run,
            task: (*task).into(),
            state: if ok {
                TaskState::Success
            } else {
                TaskState::Failed
            },
            reason: None,
            at,
        });
    }
    changes.push(Change::Run {
        run,
        state: if failed {
            RunState::Failed
        } else {
            RunState::Success
        },
        reason: None,
        at,
    });
    store.apply(&changes).unwrap();
    run
}

fn config(text: &str) -> vane_alerts::AlertsConfig {
    let registry = vane_dag::Registry::none().section(&vane_alerts::ALERTS);
    match vane_dag::parse_config(text, &registry) {
        Ok(c) => vane_alerts::AlertsConfig::of(&c),
        Err(d) => panic!("{d:#?}"),
    }
}

fn open(store: &SqliteStore) -> Vec<AlertRecord> {
    store.alerts(AlertFilter::default()).unwrap()
}

#[test]
fn a_sensor_past_its_deadline_raises_sensor_timeout_and_an_ordinary_failure_does_not() {
    let store = history();
    run(
        &store,
        "labels",
        1,
        &[
            ("wait_labels", Outcome::SensorTimeout),
            ("crash", Outcome::Fail),
        ],
    );
    let cfg = config("[[alerts.rules]]\non = \"sensor_timeout\"\n");
    vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    let alerts = open(&store);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].task_id.as_deref(), Some("wait_labels"));
    assert!(
        alerts[0].summary.contains("timed out after 1m"),
        "{}",
        alerts[0].summary
    );
}

#[test]
fn evaluating_again_never_counts_an_event_twice_even_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vane.db");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    run(&first, "etl", 1, &[("load", Outcome::Fail)]);
    let cfg = config("[[alerts.rules]]\non = \"task_failed\"\n");
    vane_alerts::evaluate(&first, &cfg, Utc::now()).unwrap();
    let again = vane_alerts::evaluate(&second, &cfg, Utc::now()).unwrap();
    assert_eq!(again.events, 0);
    let alerts = open(&first);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1);
}

#[test]
fn max_per_hour_holds_the_alerts_beyond_the_limit() {
    let store = history();
    for (day, dag) in ["a", "b", "c"].into_iter().enumerate() {
        run(&store, dag, day as u32 + 1, &[("t", Outcome::Fail)]);
    }
    let cfg = config("[[alerts.rules]]\non = \"run_failed\"\nmax_per_hour = 2\n");
    let report = vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    assert_eq!(report.notifications.len(), 1, "grouped into one");
    assert_eq!(report.notifications[0].alerts.len(), 2);
    assert_eq!(report.held.len(), 1);
    assert!(
        report.held[0].1.starts_with("rate limit"),
        "{:?}",
        report.held
    );
    assert_eq!(
        open(&store).len(),
        3,
        "held alerts are recorded all the same"
    );
}

#[test]
fn a_snoozed_alert_stays_quiet_until_the_snooze_ends() {
    let store = history();
    run(&store, "etl", 1, &[("load", Outcome::Fail)]);
    let cfg = config("[[alerts.rules]]\non = \"task_failed\"\ncooldown = \"0s\"\n");
    let now = Utc::now();
    vane_alerts::evaluate(&store, &cfg, now).unwrap();
    let id = open(&store)[0].id;
    store.snooze_alert(id, now + TimeDelta::hours(2)).unwrap();

    let later = |minutes| now + TimeDelta::minutes(minutes);
    run_at(&store, "etl", 2, &[("load", Outcome::Fail)], later(59));
    let during = vane_alerts::evaluate(&store, &cfg, now + TimeDelta::hours(1)).unwrap();
    assert!(during.notifications.is_empty());
    assert!(
        during.held[0].1.starts_with("snoozed until"),
        "{:?}",
        during.held
    );

    run_at(&store, "etl", 3, &[("load", Outcome::Fail)], later(179));
    let after = vane_alerts::evaluate(&store, &cfg, now + TimeDelta::hours(3)).unwrap();
    assert_eq!(after.notifications.len(), 1);
    assert_eq!(open(&store)[0].count, 3);
}

#[test]
fn a_channel_takes_only_alerts_at_or_above_its_severity() {
    let store = history();
    run(&store, "etl", 1, &[("load", Outcome::Fail)]);
    let cfg = config(
        r#"
[[alerts.rules]]
on = "task_failed"
severity = "info"
channels = ["pager", "log"]

[alerts.channels.pager]
kind = "command"
command = "cat > /dev/null"
min_severity = "critical"
"#,
    );
    let report = vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    let channels: Vec<&str> = report
        .notifications
        .iter()
        .map(|n| n.channel.as_str())
        .collect();
    assert_eq!(channels, ["log"]);
}

#[test]
fn clearing_the_run_counts_its_alert_as_real() {
    let store = history();
    let failed = run(&store, "etl", 1, &[("load", Outcome::Fail)]);
    let cfg = config("[[alerts.rules]]\non = \"task_failed\"\n");
    vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    store
        .apply(&[Change::TaskCleared {
            run: failed,
            task: "load".into(),
            reason: "cleared by dana".into(),
            at: Utc::now(),
        }])
        .unwrap();
    vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    let alert = &open(&store)[0];
    assert_eq!(alert.verdict, Some(Verdict::Real));
    assert_eq!(alert.verdict_source.as_deref(), Some("clear"));
}

#[test]
fn a_noisy_warning_check_gets_a_suggestion_naming_the_check() {
    let store = history();
    let cfg = config("[[alerts.rules]]\non = \"check_warn\"\ncooldown = \"0s\"\n");
    let now: DateTime<Utc> = Utc::now();
    for day in 1..=4 {
        let run = run(&store, "churn", day, &[("validate", Outcome::Ok)]);
        store
            .record_check_evaluation(&NewCheckEvaluation {
                run,
                dag_id: "churn",
                task_id: "validate",
                attempt: 1,
                passed: true,
                profile: "{}",
                results: &[CheckResult {
                    name: "rows".into(),
                    column: None,
                    severity: "warn".into(),
                    status: CheckStatus::Warn,
                    observed: Some(90.0),
                    bound: Some(">= 100".into()),
                    derivation: Some("fixed".into()),
                    detail: "90 rows, fewer than 100".into(),
                    offending: vec![],
                    definition_hash: "d".into(),
                }],
                at: now,
            })
            .unwrap();
        vane_alerts::evaluate(&store, &cfg, now).unwrap();
        let id = open(&store)[0].id;
        store
            .acknowledge_alert(id, "dana", Some(Verdict::Noise), now)
            .unwrap();
        store.resolve_alert(id, "user dana", now).unwrap();
    }
    let all = store.alerts(AlertFilter { all: true }).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].subject.as_deref(), Some("rows"));
    let stats = vane_alerts::stats(&all, &cfg);
    assert_eq!(stats[0].precision, Some(0.0));
    let suggestion = stats[0].suggestion.as_deref().expect("a suggestion");
    assert!(
        suggestion.contains("widen the bound of check `rows` in [tasks.validate] of DAG `churn`"),
        "{suggestion}"
    );
}

/// The SQLite store, except that one `raise_alert` call fails: a crash or a failed write
/// between claiming events and raising their alerts.
struct FailingRaise {
    inner: SqliteStore,
    /// Which call fails, counting from 1; 0 once it has failed.
    fail_call: std::cell::Cell<usize>,
}

impl AlertStore for FailingRaise {
    fn history_events(&self, since: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.inner.history_events(since)
    }
    fn approvals_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.inner.approvals_waiting(before)
    }
    fn agents_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.inner.agents_waiting(before)
    }
    fn alert_cursor(&self) -> Result<Option<DateTime<Utc>>> {
        self.inner.alert_cursor()
    }
    fn atomically(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        self.inner.atomically(work)
    }
    fn claim_events(
        &self,
        keys: &[(String, DateTime<Utc>)],
        cursor: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        self.inner.claim_events(keys, cursor, forget_before)
    }
    fn raise_alert(&self, occurrence: &AlertOccurrence<'_>) -> Result<AlertRecord> {
        match self.fail_call.get() {
            0 => {}
            1 => {
                self.fail_call.set(0);
                return Err(StoreError::Backend("disk I/O error".into()));
            }
            n => self.fail_call.set(n - 1),
        }
        self.inner.raise_alert(occurrence)
    }
    fn resolve_after_success(&self, success: &HistoryEvent) -> Result<Vec<AlertRecord>> {
        self.inner.resolve_after_success(success)
    }
    fn credit_action(
        &self,
        run: Option<RunId>,
        task_id: Option<&str>,
        subject: Option<&str>,
        source: &str,
    ) -> Result<usize> {
        self.inner.credit_action(run, task_id, subject, source)
    }
    fn alerts(&self, filter: AlertFilter) -> Result<Vec<AlertRecord>> {
        self.inner.alerts(filter)
    }
    fn alert(&self, id: i64) -> Result<AlertRecord> {
        self.inner.alert(id)
    }
    fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<AlertRecord> {
        self.inner.acknowledge_alert(id, by, verdict, at)
    }
    fn resolve_alert(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<AlertRecord> {
        self.inner.resolve_alert(id, by, at)
    }
    fn snooze_alert(&self, id: i64, until: DateTime<Utc>) -> Result<AlertRecord> {
        self.inner.snooze_alert(id, until)
    }
    fn record_notification(
        &self,
        alerts: &[(i64, &str)],
        channel: &str,
        at: DateTime<Utc>,
        undelivered: Option<Undelivered<'_>>,
    ) -> Result<()> {
        self.inner
            .record_notification(alerts, channel, at, undelivered)
    }
    fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<Vec<NotificationRecord>> {
        self.inner.claim_due_notifications(now, hold_until)
    }
    fn finish_notifications(
        &self,
        ids: &[i64],
        claim: DateTime<Utc>,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<usize> {
        self.inner.finish_notifications(ids, claim, at, outcome)
    }
    fn alerts_notified_since(&self, rule: &str, since: DateTime<Utc>) -> Result<usize> {
        self.inner.alerts_notified_since(rule, since)
    }
}

#[test]
fn a_failure_after_claiming_events_loses_no_alert_and_counts_none_twice() {
    let store = FailingRaise {
        inner: history(),
        fail_call: 2.into(),
    };
    run(
        &store.inner,
        "etl",
        1,
        &[("load", Outcome::Fail), ("publish", Outcome::Fail)],
    );
    let cfg = config("[[alerts.rules]]\non = \"task_failed\"\n");
    // The first alert is raised, then raising the second fails.
    assert!(vane_alerts::evaluate(&store, &cfg, Utc::now()).is_err());
    assert!(open(&store.inner).is_empty());

    let report = vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    assert_eq!(report.raised.len(), 2, "{report:#?}");
    let again = vane_alerts::evaluate(&store, &cfg, Utc::now()).unwrap();
    assert_eq!(again.events, 0);
    let mut alerts: Vec<_> = open(&store.inner)
        .into_iter()
        .map(|a| (a.task_id, a.count))
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        vec![(Some("load".into()), 1), (Some("publish".into()), 1)]
    );
}

/// A plain-HTTP server on 127.0.0.1 that answers 200 to every POST; each body arrives on the
/// receiver before its answer is sent, so once a delivery returned its bodies are all there.
fn serve_http() -> (u16, Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (sender, bodies) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            let Ok(body) = common::read_body(&mut tcp) else {
                continue;
            };
            if sender
                .send(serde_json::from_str(&body).expect("JSON"))
                .is_err()
            {
                return;
            }
            let _ = tcp.write_all(common::OK);
        }
    });
    (port, bodies)
}

#[test]
fn a_pagerduty_channel_gets_one_event_per_alert_keyed_by_the_alert_and_resolves_it() {
    let (port, received) = serve_http();
    let store = history();
    let cfg = config(&format!(
        r#"
[[alerts.rules]]
on = "task_failed"
severity = "critical"
channels = ["pd"]
cooldown = "0s"

[alerts.channels.pd]
kind = "webhook"
url = "http://127.0.0.1:{port}/v2/enqueue"
format = "pagerduty"
routing_key = "R0KEY"
retries = 0
"#
    ));
    let events = || received.try_iter().collect::<Vec<Value>>();
    let t0 = Utc::now();
    let at = |minutes| t0 + TimeDelta::minutes(minutes);
    let failed = run_at(
        &store,
        "etl",
        1,
        &[("load", Outcome::Fail), ("train", Outcome::Fail)],
        t0,
    );

    let report = vane_alerts::evaluate(&store, &cfg, at(1)).unwrap();
    assert_eq!(report.notifications.len(), 1, "{:?}", report.notifications);
    assert_eq!(report.notifications[0].error, None);
    let mut alerts = open(&store);
    // Sent in the order raised.
    alerts.sort_by_key(|a| a.id);
    let keys: Vec<String> = alerts
        .iter()
        .map(|a| format!("vane-alert-{}", a.id))
        .collect();
    let sent = events();
    assert_eq!(sent.len(), 2, "one event per alert: {sent:#?}");
    for (event, alert) in sent.iter().zip(&alerts) {
        assert_eq!(event["routing_key"], "R0KEY");
        assert_eq!(event["event_action"], "trigger");
        assert_eq!(event["dedup_key"], format!("vane-alert-{}", alert.id));
        assert_eq!(event["payload"]["severity"], "critical");
        assert_eq!(event["payload"]["source"], "vane");
        assert_eq!(event["payload"]["custom_details"]["run"], failed.0);
        let summary = event["payload"]["summary"].as_str().expect("summary");
        let task = alert.task_id.as_deref().expect("task");
        assert!(
            summary.starts_with(&format!("task_failed etl.{task}")),
            "{summary}"
        );
    }

    // The same failures again: vane counts them into the same alerts, so the same keys.
    run_at(
        &store,
        "etl",
        2,
        &[("load", Outcome::Fail), ("train", Outcome::Fail)],
        at(2),
    );
    vane_alerts::evaluate(&store, &cfg, at(3)).unwrap();
    let again = events();
    let again_keys: Vec<&str> = again
        .iter()
        .filter_map(|e| e["dedup_key"].as_str())
        .collect();
    assert_eq!(again_keys, keys, "{again:#?}");
    assert_eq!(again[0]["payload"]["custom_details"]["count"], 2);

    // A later success resolves both in vane, and so in PagerDuty.
    run_at(
        &store,
        "etl",
        3,
        &[("load", Outcome::Ok), ("train", Outcome::Ok)],
        at(4),
    );
    let report = vane_alerts::evaluate(&store, &cfg, at(5)).unwrap();
    let mut resolves = events();
    resolves.sort_by_key(|e| e["dedup_key"].as_str().map(str::to_owned));
    assert_eq!(resolves.len(), 2, "{resolves:#?}");
    for (event, key) in resolves.iter().zip(&keys) {
        assert_eq!(
            *event,
            serde_json::json!({"routing_key": "R0KEY", "event_action": "resolve", "dedup_key": key})
        );
    }
    assert_eq!(report.notifications.len(), 1);
    assert!(report.notifications[0].resolves);

    // Nothing new: nothing sent, resolved alerts are not resolved twice.
    vane_alerts::evaluate(&store, &cfg, at(6)).unwrap();
    assert!(events().is_empty());
}

#[test]
fn resolving_an_alert_by_hand_closes_its_pagerduty_incident() {
    let (port, received) = serve_http();
    let store = history();
    let cfg = config(&format!(
        r#"
[[alerts.rules]]
on = "run_failed"
channels = ["pd", "log"]

[alerts.channels.pd]
kind = "webhook"
url = "http://127.0.0.1:{port}/v2/enqueue"
format = "pagerduty"
routing_key = "R0KEY"
retries = 0
"#
    ));
    let t0 = Utc::now();
    run_at(&store, "etl", 1, &[("load", Outcome::Fail)], t0);
    vane_alerts::evaluate(&store, &cfg, t0 + TimeDelta::minutes(1)).unwrap();
    let triggered: Vec<Value> = received.try_iter().collect();
    assert_eq!(triggered.len(), 1, "{triggered:#?}");
    let id = open(&store)[0].id;

    let resolved = store
        .resolve_alert(id, "user alice", t0 + TimeDelta::minutes(2))
        .unwrap();
    let sent =
        vane_alerts::tell_resolved_by_hand(&store, &cfg, &resolved, t0 + TimeDelta::minutes(2))
            .unwrap();
    assert_eq!(
        sent.len(),
        1,
        "only the channel that opens incidents: {sent:?}"
    );
    assert!(sent[0].resolves && sent[0].error.is_none(), "{sent:?}");
    let events: Vec<Value> = received.try_iter().collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event_action"], "resolve");
    assert_eq!(events[0]["dedup_key"], format!("vane-alert-{id}"));
}

/// A command channel that fails until `flag` exists.
fn flaky_channel(flag: &std::path::Path, cooldown: &str) -> vane_alerts::AlertsConfig {
    config(&format!(
        r#"
[[alerts.rules]]
on = "task_failed"
channels = ["chat"]
cooldown = "{cooldown}"

[alerts.channels.chat]
kind = "command"
command = "cat > /dev/null; test -e {}"
"#,
        flag.display()
    ))
}

/// Issue 11: a notification that failed started the cooldown, and nothing was sent for an hour.
/// Now it is retried on the backoff schedule, and the cooldown counts from the delivery.
#[test]
fn an_undelivered_notification_is_retried_with_backoff_and_the_cooldown_starts_at_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("up");
    let cfg = flaky_channel(&flag, "1h");
    let store = history();
    // To the microsecond, as the database keeps it.
    let t0 = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let at = |s: i64| t0 + TimeDelta::seconds(s);
    run_at(&store, "etl", 1, &[("load", Outcome::Fail)], t0);

    let first = vane_alerts::evaluate(&store, &cfg, t0).unwrap();
    let n = &first.notifications[0];
    assert!(n.error.is_some(), "{first:#?}");
    assert_eq!((n.attempt, n.retry_at), (1, Some(at(30))));
    let id = open(&store)[0].id;
    assert_eq!(store.alert(id).unwrap().last_notified_at, None);

    // Not due before its backoff; then tried and failed again: a minute until the next.
    assert!(
        vane_alerts::evaluate(&store, &cfg, at(29))
            .unwrap()
            .notifications
            .is_empty()
    );
    let second = vane_alerts::evaluate(&store, &cfg, at(30)).unwrap();
    let n = &second.notifications[0];
    assert_eq!((n.attempt, n.retry_at), (2, Some(at(90))));
    assert!(
        n.error
            .as_deref()
            .is_some_and(|e| e.contains("exited with")),
        "{n:?}"
    );

    // The alert fires again meanwhile: the pending retry carries it, nothing new is sent.
    run_at(&store, "etl", 2, &[("load", Outcome::Fail)], at(40));
    let meanwhile = vane_alerts::evaluate(&store, &cfg, at(60)).unwrap();
    assert!(meanwhile.notifications.is_empty(), "{meanwhile:#?}");
    assert!(
        meanwhile.held[0].1.contains("not delivered yet (2 tries)"),
        "{:?}",
        meanwhile.held
    );

    // The channel is back; delivered at the third try, five minutes after the first.
    std::fs::write(&flag, "").unwrap();
    let third = vane_alerts::evaluate(&store, &cfg, at(300)).unwrap();
    let n = &third.notifications[0];
    assert_eq!(
        (n.attempt, n.error.as_deref(), n.alerts.as_slice()),
        (3, None, &[id][..])
    );
    let alert = store.alert(id).unwrap();
    assert_eq!(alert.last_notified_at, Some(at(300)));
    let delivery = alert.delivery.unwrap();
    assert_eq!(
        (delivery.state, delivery.attempts),
        (DeliveryState::Delivered, 3)
    );

    // 62 minutes after the first try but 57 after the delivery: still cooling down.
    run_at(&store, "etl", 3, &[("load", Outcome::Fail)], at(3700));
    let cooling = vane_alerts::evaluate(&store, &cfg, at(3720)).unwrap();
    assert!(cooling.notifications.is_empty(), "{cooling:#?}");
    assert!(
        cooling.held[0].1.starts_with("cooldown"),
        "{:?}",
        cooling.held
    );
    // An hour after the delivery it is sent again.
    run_at(&store, "etl", 4, &[("load", Outcome::Fail)], at(3905));
    let again = vane_alerts::evaluate(&store, &cfg, at(3910)).unwrap();
    assert_eq!(again.notifications.len(), 1, "{again:#?}");
    assert_eq!(again.notifications[0].error, None);
    assert_eq!(open(&store)[0].count, 4);
}

#[test]
fn a_pending_notification_is_abandoned_when_its_alert_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = flaky_channel(&dir.path().join("never"), "0s");
    let store = history();
    let t0 = Utc::now();
    run_at(&store, "etl", 1, &[("load", Outcome::Fail)], t0);
    vane_alerts::evaluate(&store, &cfg, t0).unwrap();
    let id = open(&store)[0].id;
    // The next run passes: the alert resolves, and its retry is dropped rather than sent.
    run_at(
        &store,
        "etl",
        2,
        &[("load", Outcome::Ok)],
        t0 + TimeDelta::seconds(10),
    );
    let report = vane_alerts::evaluate(&store, &cfg, t0 + TimeDelta::seconds(40)).unwrap();
    assert!(report.notifications.is_empty(), "{report:#?}");
    assert_eq!(report.abandoned.len(), 1, "{report:#?}");
    assert_eq!(report.abandoned[0].0, id);
    assert!(
        report.abandoned[0].1.starts_with("alert resolved (run "),
        "{:?}",
        report.abandoned
    );
    let delivery = store.alert(id).unwrap().delivery.unwrap();
    assert_eq!(delivery.state, DeliveryState::Abandoned);
    assert!(
        vane_alerts::evaluate(&store, &cfg, t0 + TimeDelta::hours(2))
            .unwrap()
            .notifications
            .is_empty()
    );
}
