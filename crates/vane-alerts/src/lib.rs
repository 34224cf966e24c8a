//! Alerts derived from what vane recorded, built to be few and worth reading.
//!
//! Nothing pushes alerts: [`evaluate`] reads the events recorded since its cursor (runs that
//! failed, tasks that failed after their last retry, SLA misses, data checks that warned or
//! failed, rollouts whose gate failed, sensors that timed out), matches them against the rules
//! of `[alerts]` in `vane.toml` and of DAG files (see [`AlertsConfig::with_dag_rules`]), and
//! keeps one alert per rule, DAG, task and subject with a
//! count. Successes found in the same history resolve alerts; clears and manual rollbacks
//! count them as real. Because the cursor and the claimed events live in the database, one
//! scheduler or several processes on the same database evaluate the same way and never count
//! an event twice.
//!
//! ```
//! use vane_store::{AlertFilter, AlertStore, SqliteStore};
//! let store = SqliteStore::open_in_memory().unwrap();
//! let registry = vane_dag::Registry::none().section(&vane_alerts::ALERTS);
//! let config = vane_dag::parse_config("[[alerts.rules]]\non = \"run_failed\"\n", &registry).unwrap();
//! let alerts = vane_alerts::AlertsConfig::of(&config);
//! let report = vane_alerts::evaluate(&store, &alerts, chrono::Utc::now()).unwrap();
//! assert!(report.raised.is_empty());
//! assert!(store.alerts(AlertFilter::default()).unwrap().is_empty());
//! ```

mod config;
mod format;
mod notify;
mod stats;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use config::{
    ALERTS, AlertOn, AlertRule, AlertSeverity, AlertsConfig, AlertsSection, CaFile, Channel,
    ChannelKind, DagRuleProblem, DagRules, OnCall, RetryBackoff, RoutingKey, WebhookFormat,
};
use serde_json::{Value, json};
use vane_store::{
    AlertOccurrence, AlertRecord, AlertState, AlertStore, DeliveryOutcome, DeliveryState,
    EventKind, HistoryEvent, NotificationRecord, Undelivered, Verdict,
};

pub use notify::deliver;
pub use stats::{RuleStats, stats};

/// An alert evaluation failed because the database could not be read or written. Delivery
/// failures are not errors: they are in the [`Report`] and recorded with the notification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
}

pub type Result<T, E = AlertError> = std::result::Result<T, E>;

/// History written this long before the cursor is read again: a process that stamped an event
/// just before the cursor moved may commit it just after. Claimed keys make the overlap free.
const OVERLAP: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// How far back the first evaluation on a database looks: alerting on years of history the
/// day alerts are switched on would bury the one alert that matters.
const FIRST_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct Report {
    /// Events read that no evaluation had read before.
    pub events: usize,
    /// Alerts opened or counted again, as they are after the evaluation.
    pub raised: Vec<AlertRecord>,
    /// Alerts a later success resolved.
    pub resolved: Vec<AlertRecord>,
    /// Alerts found but not sent, and why (`cooldown`, `snoozed until ...`, ...).
    pub held: Vec<(i64, String)>,
    /// First tries and retries, in the order made.
    pub notifications: Vec<Notification>,
    /// Undelivered notifications given up on: the alert and why.
    pub abandoned: Vec<(i64, String)>,
}

/// One grouped notification to one channel.
#[derive(Debug)]
pub struct Notification {
    pub channel: String,
    pub alerts: Vec<i64>,
    /// Who was on call, named in the payload.
    pub oncall: Option<String>,
    /// The alerts were resolved and the channel was told so, to close what it opened for them
    /// (a PagerDuty incident); otherwise they were raised.
    pub resolves: bool,
    /// `None` when delivered.
    pub error: Option<String>,
    /// Which try this was: 1 for the first, more for a retry of one that failed.
    pub attempt: i64,
    /// Undelivered (and not a resolution, which is not retried): when it is tried again.
    pub retry_at: Option<DateTime<Utc>>,
}

fn rule_kind(kind: EventKind) -> Option<AlertOn> {
    Some(match kind {
        EventKind::RunFailed => AlertOn::RunFailed,
        EventKind::TaskFailed => AlertOn::TaskFailed,
        EventKind::SlaMissed => AlertOn::SlaMissed,
        EventKind::CheckWarn => AlertOn::CheckWarn,
        EventKind::CheckFailed => AlertOn::CheckFailed,
        EventKind::GateFailed => AlertOn::GateFailed,
        EventKind::SensorTimeout => AlertOn::SensorTimeout,
        EventKind::ApprovalWaiting => AlertOn::ApprovalWaiting,
        EventKind::AgentWaiting => AlertOn::AgentWaiting,
        EventKind::RunSucceeded
        | EventKind::TaskSucceeded
        | EventKind::CheckPassed
        | EventKind::TaskCleared
        | EventKind::ManualRollback => return None,
    })
}

/// Rollouts that have waited for a person longer than an `approval_waiting` rule allows, and
/// attempts that have waited for an agent longer than an `agent_waiting` rule allows, each
/// with the index of that rule. Looked up as they stand rather than read from the history by
/// time: a wait becomes an event only once it is old enough. Stamped now, so the claim of its
/// key is remembered like any fresh event's; it names the rule, so each rule raises its own, and
/// a wait that goes on is counted again once its claim is forgotten (a reminder).
fn waits<S: AlertStore + ?Sized>(
    store: &S,
    config: &AlertsConfig,
    now: DateTime<Utc>,
) -> Result<Vec<(usize, HistoryEvent)>> {
    let mut out = Vec::new();
    for (index, rule) in config.rules.iter().enumerate() {
        let before = now - span(rule.after);
        let waiting = match rule.on {
            AlertOn::ApprovalWaiting => store.approvals_waiting(before)?,
            AlertOn::AgentWaiting => store.agents_waiting(before)?,
            _ => continue,
        };
        for mut event in waiting {
            event.key = format!("{}:{}", rule.name, event.key);
            event.detail = format!(
                "{} (waiting since {}, longer than {})",
                event.detail,
                event.at.to_rfc3339(),
                vane_dag::format_duration(rule.after)
            );
            event.at = now;
            out.push((index, event));
        }
    }
    Ok(out)
}

fn matches(rule: &AlertRule, event: &HistoryEvent, on: AlertOn) -> bool {
    rule.on == on
        && rule.dag.as_ref().is_none_or(|d| *d == event.dag_id)
        && rule
            .task
            .as_ref()
            .is_none_or(|t| event.task_id.as_ref() == Some(t))
}

fn span(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// Reads the history recorded since the last evaluation, turns it into alerts, resolves
/// alerts a later success answered, and sends what deserves sending, one grouped notification
/// per channel. Call it once per scheduler pass or by hand (`vane alerts --evaluate`); it
/// blocks while it delivers (each webhook or command within its channel's timeout). The events
/// it claims and the alerts they raise commit together, before any delivery: after a failure
/// the next evaluation reads the same events again.
///
/// A notification that fails is recorded undelivered, starts no cooldown and counts towards
/// no rate limit; it is tried again at later evaluations on the schedule of
/// [`AlertsConfig::retry`] until delivered (its alerts' cooldowns start then) or its alert is
/// resolved or acknowledged (it is abandoned, with why). Each due retry is first claimed in the
/// database, so of several evaluators on one database exactly one sends it. An alert with a
/// notification pending is not notified anew: the retry carries it.
///
/// # Errors
/// Fails when the database cannot be read or written.
pub fn evaluate<S: AlertStore + ?Sized>(
    store: &S,
    config: &AlertsConfig,
    now: DateTime<Utc>,
) -> Result<Report> {
    let cursor = store
        .alert_cursor()?
        .unwrap_or(now - FIRST_LOOKBACK)
        .min(now);
    let since = cursor - OVERLAP;
    let mut events = store.history_events(since)?;
    let next_cursor = events
        .iter()
        .map(|e| e.at)
        .chain([cursor, now - OVERLAP])
        .max()
        .unwrap_or(cursor);
    let waiting = waits(store, config, now)?;
    events.extend(waiting.iter().map(|(_, e)| e.clone()));
    let keys: Vec<_> = events.iter().map(|e| (e.key.clone(), e.at)).collect();

    let mut report = Report::default();
    // Alert id -> index of the rule that raised it, in the order first raised.
    let mut touched: Vec<(i64, usize)> = Vec::new();
    // Claimed events and what they did commit together: a crash or a failed write in between
    // leaves the events unclaimed for the next evaluation instead of claimed and lost.
    store.atomically(&mut || {
        // A backend may run this again after a conflict: only the last run counts.
        report = Report::default();
        touched.clear();
        // Keys older than any window a later evaluation reads can go.
        let claimed = store.claim_events(&keys, next_cursor, since - OVERLAP)?;
        let claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
        for event in events.iter().filter(|e| claimed.contains(&e.key)) {
            report.events += 1;
            match event.kind {
                EventKind::RunSucceeded | EventKind::TaskSucceeded | EventKind::CheckPassed => {
                    report.resolved.extend(store.resolve_after_success(event)?);
                }
                EventKind::TaskCleared => {
                    store.credit_action(event.run, event.task_id.as_deref(), None, "clear")?;
                }
                EventKind::ManualRollback => {
                    store.credit_action(None, None, event.subject.as_deref(), "rollback")?;
                }
                kind => {
                    let Some(on) = rule_kind(kind) else { continue };
                    for (index, rule) in config.rules.iter().enumerate() {
                        if !matches(rule, event, on) {
                            continue;
                        }
                        // A wait is looked up per rule (each has its own `after`): only the
                        // rule it was looked up for raises it.
                        if matches!(kind, EventKind::ApprovalWaiting | EventKind::AgentWaiting)
                            && !waiting
                                .iter()
                                .any(|(r, e)| *r == index && e.key == event.key)
                        {
                            continue;
                        }
                        let alert = store.raise_alert(&AlertOccurrence {
                            rule: &rule.name,
                            kind: on.as_str(),
                            severity: rule.severity.as_str(),
                            dag_id: &event.dag_id,
                            task_id: event.task_id.as_deref(),
                            subject: event.subject.as_deref(),
                            summary: &event.detail,
                            run: event.run,
                            dag_version: event.dag_version,
                            at: event.at,
                            reopen_since: Some(event.at - span(rule.cooldown)),
                        })?;
                        if !touched.iter().any(|(id, _)| *id == alert.id) {
                            touched.push((alert.id, index));
                        }
                    }
                }
            }
        }
        Ok(())
    })?;

    let oncall = config
        .oncall
        .as_ref()
        .and_then(|o| o.at(now))
        .map(str::to_owned);
    // Retries first: one delivered now starts its alert's cooldown, which the decisions below
    // then see.
    retry_due(store, config, oncall.as_deref(), now, &mut report)?;

    // Decide from each alert's state after the whole history was read: one that failed and
    // recovered between two evaluations needs nobody.
    let mut by_channel: BTreeMap<String, Vec<(AlertRecord, usize)>> = BTreeMap::new();
    let mut planned_per_rule: BTreeMap<usize, usize> = BTreeMap::new();
    for (id, index) in touched {
        let alert = store.alert(id)?;
        let rule = &config.rules[index];
        if let Some(reason) = held_because(
            store,
            &alert,
            rule,
            planned_per_rule.get(&index).copied().unwrap_or(0),
            now,
        )? {
            report.held.push((id, reason));
            report.raised.push(alert);
            continue;
        }
        *planned_per_rule.entry(index).or_default() += 1;
        let severity = AlertSeverity::parse(&alert.severity).unwrap_or(AlertSeverity::Warning);
        for name in &rule.channels {
            let min = config
                .channels
                .get(name)
                .map_or(AlertSeverity::Info, |c| c.min_severity);
            if severity >= min {
                by_channel
                    .entry(name.clone())
                    .or_default()
                    .push((alert.clone(), index));
            }
        }
        report.raised.push(alert);
    }

    let log = log_channel();
    for (name, alerts) in by_channel {
        let channel = config.channels.get(&name).unwrap_or(&log);
        let records: Vec<&AlertRecord> = alerts.iter().map(|(a, _)| a).collect();
        let body = payload(&records, oncall.as_deref(), now);
        let error = notify::deliver(channel, &body).err();
        let rows: Vec<(i64, &str)> = alerts
            .iter()
            .map(|(a, i)| (a.id, config.rules[*i].name.as_str()))
            .collect();
        let retry_at = error.as_ref().map(|_| now + span(config.retry.after(1)));
        let undelivered = error
            .as_deref()
            .zip(retry_at)
            .map(|(error, retry_at)| Undelivered { error, retry_at });
        store.record_notification(&rows, &name, now, undelivered)?;
        report.notifications.push(Notification {
            channel: name,
            alerts: rows.iter().map(|(id, _)| *id).collect(),
            oncall: oncall.clone(),
            resolves: false,
            error,
            attempt: 1,
            retry_at,
        });
    }
    tell_resolved(store, config, oncall.as_deref(), now, &mut report)?;
    Ok(report)
}

/// Tells the channels that keep an incident open per alert (PagerDuty) that a person resolved
/// `alert` (`vane resolve`, the UI or the API), so the incident closes with it as it does when
/// a success resolves it. The answer lists what was sent, with any delivery error.
///
/// # Errors
/// Fails when the database cannot be read.
pub fn tell_resolved_by_hand<S: AlertStore + ?Sized>(
    store: &S,
    config: &AlertsConfig,
    alert: &AlertRecord,
    now: DateTime<Utc>,
) -> Result<Vec<Notification>> {
    let mut report = Report {
        resolved: vec![alert.clone()],
        ..Report::default()
    };
    let oncall = config.oncall.as_ref().and_then(|o| o.at(now));
    tell_resolved(store, config, oncall, now, &mut report)?;
    Ok(report.notifications)
}

/// Tells the channels that keep an incident open per alert (PagerDuty) about the alerts this
/// evaluation resolved, so the incident closes with the alert. Only alerts that were notified
/// are told, to the channels their rule sends them to; these resolutions are not recorded as
/// notifications, which count towards cooldowns and rate limits of raised alerts.
fn tell_resolved<S: AlertStore + ?Sized>(
    store: &S,
    config: &AlertsConfig,
    oncall: Option<&str>,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<()> {
    let mut by_channel: BTreeMap<&str, Vec<AlertRecord>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for resolved in &report.resolved {
        if resolved.last_notified_at.is_none() || !seen.insert(resolved.id) {
            continue;
        }
        // Read again: the same evaluation may have seen it fail again after the success.
        let alert = store.alert(resolved.id)?;
        if alert.state != AlertState::Resolved {
            continue;
        }
        let Some(rule) = config.rules.iter().find(|r| r.name == alert.rule) else {
            continue;
        };
        let severity = AlertSeverity::parse(&alert.severity).unwrap_or(AlertSeverity::Warning);
        for name in &rule.channels {
            if let Some(channel) = config.channels.get(name)
                && severity >= channel.min_severity
                && let ChannelKind::Webhook { format, .. } = &channel.kind
                && format::closes_incidents(format)
            {
                by_channel.entry(name).or_default().push(alert.clone());
            }
        }
    }
    for (name, alerts) in by_channel {
        let records: Vec<&AlertRecord> = alerts.iter().collect();
        let body = payload(&records, oncall, now);
        let error = notify::deliver(&config.channels[name], &body).err();
        report.notifications.push(Notification {
            channel: name.to_owned(),
            alerts: alerts.iter().map(|a| a.id).collect(),
            oncall: oncall.map(str::to_owned),
            resolves: true,
            error,
            attempt: 1,
            retry_at: None,
        });
    }
    Ok(())
}

fn log_channel() -> Channel {
    Channel {
        name: "log".to_owned(),
        kind: ChannelKind::Log,
        min_severity: AlertSeverity::Info,
    }
}

/// How long a claim on due retries holds: the longest a delivery to any channel may take (each
/// try's timeout, the channel's own quick retries and their pauses) and a minute to spare.
/// Should the evaluator die while delivering, another takes the retries over after this.
fn claim_hold(config: &AlertsConfig) -> chrono::TimeDelta {
    let longest = config
        .channels
        .values()
        .map(|c| match &c.kind {
            ChannelKind::Webhook {
                timeout, retries, ..
            } => {
                let pauses = Duration::from_millis(500 * ((1u64 << (*retries).min(20)) - 1));
                timeout.saturating_mul(retries + 1) + pauses
            }
            ChannelKind::Command { timeout, .. } => *timeout,
            ChannelKind::Log => Duration::ZERO,
        })
        .max()
        .unwrap_or_default();
    span(longest) + chrono::TimeDelta::minutes(1)
}

/// Why a pending notification of `alert` is given up on, if it is.
fn abandon_because(alert: &AlertRecord, channel: &str, config: &AlertsConfig) -> Option<String> {
    match alert.state {
        AlertState::Resolved => {
            return Some(format!(
                "alert resolved ({}) before it could be delivered",
                alert.resolved_by.as_deref().unwrap_or("by hand")
            ));
        }
        AlertState::Acknowledged => {
            return Some(format!(
                "acknowledged by {} before it could be delivered",
                alert.acked_by.as_deref().unwrap_or("someone")
            ));
        }
        AlertState::Open => {}
    }
    (channel != "log" && !config.channels.contains_key(channel))
        .then(|| format!("channel `{channel}` is no longer in the config"))
}

/// Tries again the undelivered notifications that are due, after claiming them so that no
/// other evaluator sends them too; one per channel, grouped as a first try is.
fn retry_due<S: AlertStore + ?Sized>(
    store: &S,
    config: &AlertsConfig,
    oncall: Option<&str>,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<()> {
    let claimed = store.claim_due_notifications(now, now + claim_hold(config))?;
    let mut by_channel: BTreeMap<String, Vec<(NotificationRecord, AlertRecord)>> = BTreeMap::new();
    for n in claimed {
        let claim = n.next_try_at.unwrap_or(now);
        let alert = store.alert(n.alert_id)?;
        if let Some(why) = abandon_because(&alert, &n.channel, config) {
            store.finish_notifications(
                &[n.id],
                claim,
                now,
                DeliveryOutcome::Abandoned { why: &why },
            )?;
            report.abandoned.push((alert.id, why));
            continue;
        }
        if let Some(until) = alert.snoozed_until.filter(|u| *u > now) {
            store.finish_notifications(
                &[n.id],
                claim,
                now,
                DeliveryOutcome::Postponed { until },
            )?;
            continue;
        }
        by_channel
            .entry(n.channel.clone())
            .or_default()
            .push((n, alert));
    }
    let log = log_channel();
    for (name, rows) in by_channel {
        let channel = config.channels.get(&name).unwrap_or(&log);
        // An alert with two pending notifications to one channel is in the payload once.
        let mut records: Vec<&AlertRecord> = Vec::new();
        for (_, alert) in &rows {
            if !records.iter().any(|a| a.id == alert.id) {
                records.push(alert);
            }
        }
        let body = payload(&records, oncall, now);
        let error = notify::deliver(channel, &body).err();
        let attempt = rows.iter().map(|(n, _)| n.attempts).max().unwrap_or(1) + 1;
        for (n, _) in &rows {
            let claim = n.next_try_at.unwrap_or(now);
            let outcome = match &error {
                None => DeliveryOutcome::Delivered,
                Some(error) => DeliveryOutcome::Failed {
                    error,
                    retry_at: now + span(config.retry.after(n.attempts + 1)),
                },
            };
            store.finish_notifications(&[n.id], claim, now, outcome)?;
        }
        report.notifications.push(Notification {
            channel: name,
            alerts: records.iter().map(|a| a.id).collect(),
            oncall: oncall.map(str::to_owned),
            resolves: false,
            retry_at: error
                .as_ref()
                .map(|_| now + span(config.retry.after(attempt))),
            error,
            attempt,
        });
    }
    Ok(())
}

/// Why an alert is not sent now, if it is not.
fn held_because<S: AlertStore + ?Sized>(
    store: &S,
    alert: &AlertRecord,
    rule: &AlertRule,
    planned: usize,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    if alert.state == AlertState::Resolved {
        return Ok(Some("resolved before anyone needed to look".to_owned()));
    }
    if alert.state == AlertState::Acknowledged {
        return Ok(Some(format!(
            "acknowledged by {}",
            alert.acked_by.as_deref().unwrap_or("someone")
        )));
    }
    if let Some(until) = alert.snoozed_until.filter(|u| *u > now) {
        return Ok(Some(format!("snoozed until {}", until.to_rfc3339())));
    }
    if let Some(pending) = alert
        .delivery
        .as_ref()
        .filter(|d| d.state == DeliveryState::Pending)
    {
        return Ok(Some(format!(
            "its notification to {} is not delivered yet ({} tries); the retry due at {} carries it",
            pending.channel,
            pending.attempts,
            pending.next_try_at.unwrap_or(now).to_rfc3339()
        )));
    }
    // The cooldown counts from the last delivery: a notification that failed started none.
    if let Some(last) = alert.last_notified_at
        && now - last < span(rule.cooldown)
    {
        return Ok(Some(format!(
            "cooldown: delivered at {}, again after {}",
            last.to_rfc3339(),
            vane_dag::format_duration(rule.cooldown)
        )));
    }
    if let Some(max) = rule.max_per_hour {
        let sent = store.alerts_notified_since(&rule.name, now - chrono::TimeDelta::hours(1))?;
        if sent + planned >= max as usize {
            return Ok(Some(format!(
                "rate limit: rule `{}` may notify {max} alerts an hour",
                rule.name
            )));
        }
    }
    Ok(None)
}

/// An alert as `vane alerts --json`, the API and every notification show it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Alert")]
pub struct AlertView {
    pub id: i64,
    pub rule: String,
    /// What the rule watches (`task_failed`, `check_failed`, ...).
    pub on: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub dag: String,
    pub task: Option<String>,
    /// What within the DAG it is about (a check, a model), when not the task.
    pub subject: Option<String>,
    /// `open`, `acked` or `resolved`.
    pub state: &'static str,
    pub summary: String,
    /// Occurrences folded into it.
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub first_run: Option<i64>,
    pub last_run: Option<i64>,
    pub snoozed_until: Option<String>,
    pub acked_by: Option<String>,
    /// `real` or `noise`.
    pub verdict: Option<&'static str>,
    pub verdict_source: Option<String>,
    pub resolved_by: Option<String>,
    pub last_notified_at: Option<String>,
    /// How its latest notification fared.
    pub delivery: Option<DeliveryView>,
}

impl AlertView {
    #[must_use]
    pub fn of(a: &AlertRecord) -> Self {
        Self {
            id: a.id,
            rule: a.rule.clone(),
            on: a.kind.clone(),
            severity: a.severity.clone(),
            dag: a.dag_id.clone(),
            task: a.task_id.clone(),
            subject: a.subject.clone(),
            state: a.state.as_str(),
            summary: a.summary.clone(),
            count: a.count,
            first_seen: a.first_seen.to_rfc3339(),
            last_seen: a.last_seen.to_rfc3339(),
            first_run: a.first_run.map(|r| r.0),
            last_run: a.last_run.map(|r| r.0),
            snoozed_until: a.snoozed_until.map(|t| t.to_rfc3339()),
            acked_by: a.acked_by.clone(),
            verdict: a.verdict.map(Verdict::as_str),
            verdict_source: a.verdict_source.clone(),
            resolved_by: a.resolved_by.clone(),
            last_notified_at: a.last_notified_at.map(|t| t.to_rfc3339()),
            delivery: a.delivery.as_ref().map(DeliveryView::of),
        }
    }
}

/// Where a notification stands: `state` is `delivered`, `pending` (tried again at
/// `retry_at`) or `abandoned` (`why`).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[schemars(rename = "Delivery")]
pub struct DeliveryView {
    pub state: &'static str,
    pub channel: String,
    pub attempts: i64,
    pub first_tried_at: String,
    pub delivered_at: Option<String>,
    pub retry_at: Option<String>,
    pub last_error: Option<String>,
    pub why: Option<String>,
}

impl DeliveryView {
    #[must_use]
    pub fn of(n: &NotificationRecord) -> Self {
        let pending = n.state == DeliveryState::Pending;
        Self {
            state: n.state.as_str(),
            channel: n.channel.clone(),
            attempts: n.attempts,
            first_tried_at: n.at.to_rfc3339(),
            delivered_at: n.delivered_at.map(|t| t.to_rfc3339()),
            retry_at: n.next_try_at.filter(|_| pending).map(|t| t.to_rfc3339()),
            last_error: n.error.clone(),
            why: n.abandoned_why.clone(),
        }
    }
}

/// The JSON every channel gets: who is on call, and each alert.
fn payload(alerts: &[&AlertRecord], oncall: Option<&str>, now: DateTime<Utc>) -> Value {
    let top = alerts
        .iter()
        .filter_map(|a| AlertSeverity::parse(&a.severity))
        .max()
        .unwrap_or(AlertSeverity::Warning);
    let title = match alerts {
        [one] => title_of(one),
        many => format!(
            "{} alerts: {}",
            many.len(),
            many.iter()
                .map(|a| title_of(a))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let mut item = serde_json::to_value(AlertView::of(a)).expect("an alert serialises");
            // How earlier notifications fared is vane's business, not the receiver's.
            if let Some(fields) = item.as_object_mut() {
                fields.remove("delivery");
            }
            item["run"] = json!(a.last_run);
            item["ack"] = json!(format!("vane ack {} --real|--noise", a.id));
            item
        })
        .collect();
    json!({
        "source": "vane",
        "title": title,
        "severity": top.as_str(),
        "oncall": oncall,
        "at": now.to_rfc3339(),
        "alerts": items,
    })
}

fn title_of(a: &AlertRecord) -> String {
    let what = match &a.task_id {
        Some(t) => format!("{}.{t}", a.dag_id),
        None => a.dag_id.clone(),
    };
    let times = if a.count > 1 {
        format!(" ({} times)", a.count)
    } else {
        String::new()
    };
    format!("[{}] {} {what}{times}: {}", a.severity, a.kind, a.summary)
}
