//! Alerts on PostgreSQL.
//!
//! Every write here first takes one advisory lock, [`Scope::Alerts`], held to the end of its
//! transaction. That is what SQLite's single writer gave: two evaluators (two schedulers, or a
//! scheduler and `vane alerts --evaluate`) claim events and raise alerts one after the other,
//! so an event is claimed once, an alert is opened once, and neither waits on the other's alert
//! rows in the opposite order (a deadlock). Evaluations are short and alerts few, so the
//! waiting costs nothing anyone notices.

use chrono::{DateTime, Utc};
use postgres::{Client, Row};

use super::PgStore;
use super::locks::{Scope, lock};
use super::values::parse_enum;
use crate::alerts::{
    AlertFilter, AlertOccurrence, AlertRecord, AlertStore, DeliveryOutcome, EventKind,
    HistoryEvent, NotificationRecord, Undelivered, Verdict, to_micros,
};
use crate::{Result, RunId, StoreError};

const ALERT_COLUMNS: &str = "id, rule, kind, severity, dag_id, task_id, subject, state, summary,
    count, first_seen, last_seen, first_run, last_run, last_dag_version, snoozed_until, acked_by,
    acked_at, verdict, verdict_source, resolved_at, resolved_by, last_notified_at";

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn alert_from_row(row: &Row) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.try_get(0)?,
        rule: row.try_get(1)?,
        kind: row.try_get(2)?,
        severity: row.try_get(3)?,
        dag_id: row.try_get(4)?,
        task_id: non_empty(row.try_get(5)?),
        subject: non_empty(row.try_get(6)?),
        state: parse_enum(row.try_get(7)?)?,
        summary: row.try_get(8)?,
        count: row.try_get(9)?,
        first_seen: row.try_get(10)?,
        last_seen: row.try_get(11)?,
        first_run: row.try_get(12)?,
        last_run: row.try_get(13)?,
        last_dag_version: row.try_get(14)?,
        snoozed_until: row.try_get(15)?,
        acked_by: row.try_get(16)?,
        acked_at: row.try_get(17)?,
        verdict: row
            .get::<_, Option<&str>>(18)
            .map(parse_enum::<Verdict>)
            .transpose()?,
        verdict_source: row.try_get(19)?,
        resolved_at: row.try_get(20)?,
        resolved_by: row.try_get(21)?,
        last_notified_at: row.try_get(22)?,
        delivery: None,
    })
}

const NOTIFICATION_COLUMNS: &str = "id, alert_id, rule, channel, at, state, attempts,
    delivered_at, next_try_at, error, abandoned_why";

fn notification_from_row(row: &Row) -> Result<NotificationRecord> {
    Ok(NotificationRecord {
        id: row.try_get(0)?,
        alert_id: row.try_get(1)?,
        rule: row.try_get(2)?,
        channel: row.try_get(3)?,
        at: row.try_get(4)?,
        state: parse_enum(row.try_get(5)?)?,
        attempts: row.try_get(6)?,
        delivered_at: row.try_get(7)?,
        next_try_at: row.try_get(8)?,
        error: row.try_get(9)?,
        abandoned_why: row.try_get(10)?,
    })
}

fn alert_in(c: &mut Client, id: i64) -> Result<AlertRecord> {
    let row = c.query_opt(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
        &[&id],
    )?;
    let mut alert = match row {
        Some(row) => alert_from_row(&row)?,
        None => return Err(StoreError::NotFound(format!("alert {id}"))),
    };
    alert.delivery = c
        .query_opt(
            &format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications WHERE alert_id = $1
                 ORDER BY id DESC LIMIT 1"
            ),
            &[&id],
        )?
        .as_ref()
        .map(notification_from_row)
        .transpose()?;
    Ok(alert)
}

/// One source of events: a query whose columns are (key, dag_id, task_id, subject, run,
/// dag_version, detail, at), all timestamps at or after $1.
struct Source {
    kind: EventKind,
    sql: &'static str,
}

/// The check results of one status as events; `$detail` is the SQL of the event's text.
macro_rules! check_events {
    ($status:literal, $detail:literal) => {
        concat!(
            "SELECT 'check:' || c.run_id || ':' || c.task_id || ':' || c.attempt || ':' || c.name,
                    e.dag_id, c.task_id, c.name, c.run_id, r.dag_version_id, ",
            $detail,
            ", e.evaluated_at
             FROM check_results c
             JOIN check_evaluations e USING (run_id, task_id, attempt)
             JOIN runs r ON r.id = c.run_id
             WHERE c.status = '",
            $status,
            "' AND e.evaluated_at >= $1"
        )
    };
}

/// The same events, keys and texts as SQLite's. Typed NULLs, since the client checks a
/// column's type before its value; a time in a text as SQLite stores it (RFC 3339, UTC,
/// microseconds), not as the session's time zone would print it.
const SOURCES: &[Source] = &[
    Source {
        kind: EventKind::RunFailed,
        sql: "SELECT 'run_failed:' || id, dag_id, NULL::text, NULL::text, id, dag_version_id,
                     COALESCE(reason, 'run ' || id || ' failed'), ended_at
              FROM runs WHERE state = 'failed' AND ended_at >= $1",
    },
    Source {
        kind: EventKind::RunSucceeded,
        sql: "SELECT 'run_ok:' || id, dag_id, NULL::text, NULL::text, id, dag_version_id,
                     'run ' || id || ' succeeded', ended_at
              FROM runs WHERE state = 'success' AND ended_at >= $1",
    },
    // A task is `failed` only once its retries are spent (a retry puts it back to `queued`);
    // the attempt count in the key tells a failure after `vane clear` from the first one.
    Source {
        kind: EventKind::TaskFailed,
        sql: "SELECT 'task_failed:' || t.run_id || ':' || t.task_id || ':' ||
                     (SELECT COUNT(*) FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.task_id),
                     r.dag_id, t.task_id, NULL::text, t.run_id, r.dag_version_id,
                     COALESCE(
                         (SELECT COALESCE(a.reason, 'exit code ' || a.exit_code) FROM attempts a
                          WHERE a.run_id = t.run_id AND a.task_id = t.task_id
                          ORDER BY a.attempt DESC LIMIT 1),
                         t.reason, 'failed'),
                     t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.state = 'failed' AND t.updated_at >= $1",
    },
    Source {
        kind: EventKind::TaskSucceeded,
        sql: "SELECT 'task_ok:' || t.run_id || ':' || t.task_id || ':' ||
                     (SELECT COUNT(*) FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.task_id),
                     r.dag_id, t.task_id, NULL::text, t.run_id, r.dag_version_id, 'succeeded',
                     t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.state = 'success' AND t.updated_at >= $1",
    },
    // `retry_base` is the attempt count at the latest clear: a durable mark that a person
    // asked for the task to run again.
    Source {
        kind: EventKind::TaskCleared,
        sql: "SELECT 'cleared:' || t.run_id || ':' || t.task_id || ':' || t.retry_base,
                     r.dag_id, t.task_id, NULL::text, t.run_id, r.dag_version_id, 'cleared',
                     t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.retry_base > 0 AND t.updated_at >= $1",
    },
    Source {
        kind: EventKind::SlaMissed,
        sql: "SELECT 'sla:' || s.run_id || ':' || s.task_id, r.dag_id, NULLIF(s.task_id, ''),
                     NULL::text, s.run_id, r.dag_version_id,
                     CASE WHEN s.task_id = '' THEN 'run ' || s.run_id ELSE 'task ' || s.task_id END
                         || ' not finished by its deadline '
                         || to_char(s.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                     s.detected_at
              FROM sla_misses s JOIN runs r ON r.id = s.run_id
              WHERE s.detected_at >= $1",
    },
    Source {
        kind: EventKind::CheckWarn,
        sql: check_events!("warn", "c.name || ': ' || c.detail"),
    },
    Source {
        kind: EventKind::CheckFailed,
        sql: check_events!("fail", "c.name || ': ' || c.detail"),
    },
    Source {
        kind: EventKind::CheckPassed,
        sql: check_events!("pass", "c.name || ' passed'"),
    },
    // SQLite answers the task from the stages' key index, so the first task by name.
    Source {
        kind: EventKind::GateFailed,
        sql: "SELECT 'gate:' || l.id, r.dag_id,
                     (SELECT s.task_id FROM rollout_stages s WHERE s.run_id = l.run_id
                      ORDER BY s.task_id COLLATE \"C\" LIMIT 1),
                     l.model, l.run_id, r.dag_version_id,
                     l.model || ' v' || l.version || ' failed: ' || COALESCE(l.reason, 'rolled back'),
                     l.at
              FROM model_ledger l JOIN runs r ON r.id = l.run_id
              WHERE l.to_stage = 'failed' AND l.at >= $1",
    },
    Source {
        kind: EventKind::ManualRollback,
        sql: "SELECT 'manual:' || l.id, '', NULL::text, l.model, NULL::bigint, NULL::bigint,
                     l.actor || ' put ' || l.model || ' v' || l.version || ' in production', l.at
              FROM model_ledger l
              WHERE l.to_stage = 'production' AND l.actor LIKE 'user %' AND l.at >= $1",
    },
    // Only a sensor records `wait_seconds`; its attempt failing as timed out is a sensor that
    // waited past its deadline.
    Source {
        kind: EventKind::SensorTimeout,
        sql: "SELECT 'sensor:' || a.run_id || ':' || a.task_id || ':' || a.attempt,
                     r.dag_id, a.task_id, NULL::text, a.run_id, r.dag_version_id,
                     'sensor ' || a.task_id || ' ' || a.reason, a.ended_at
              FROM attempts a JOIN runs r ON r.id = a.run_id
              WHERE a.state = 'failed' AND a.reason LIKE 'timed out%' AND a.ended_at >= $1
                AND EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = a.run_id
                            AND m.task_id = a.task_id AND m.attempt = a.attempt
                            AND m.name = 'wait_seconds')",
    },
];

impl AlertStore for PgStore {
    fn atomically(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        self.write_tx(work)
    }

    fn approvals_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.waits(
            "SELECT 'approval:' || s.run_id || ':' || s.task_id || ':' || s.stage || ':'
                        || to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    r.dag_id, s.task_id, s.model, s.run_id, r.dag_version_id,
                    'run ' || s.run_id || ' waits for a person to approve ' || s.model || ' v'
                        || s.version || ' at stage ' || s.stage
                        || COALESCE(': ' || s.detail, ''),
                    s.updated_at
             FROM rollout_stages s JOIN runs r ON r.id = s.run_id
             WHERE s.status = 'waiting' AND r.state = 'running' AND s.updated_at < $1
             ORDER BY s.updated_at, s.run_id",
            before,
            EventKind::ApprovalWaiting,
        )
    }

    fn agents_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.waits(
            "SELECT 'agent:' || d.run_id || ':' || d.task_id || ':' || d.attempt || ':' || d.poke,
                    r.dag_id, d.task_id, NULL::text, d.run_id, r.dag_version_id,
                    'run ' || d.run_id || ' task ' || d.task_id || ' attempt ' || d.attempt
                        || ' waits for an agent with labels ' || d.needs::text,
                    d.enqueued_at
             FROM dispatches d JOIN runs r ON r.id = d.run_id
             WHERE d.state = 'queued' AND d.enqueued_at < $1
             ORDER BY d.enqueued_at, d.id",
            before,
            EventKind::AgentWaiting,
        )
    }

    fn history_events(&self, since: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        // One statement rather than one per source: the evaluator reads the history on every
        // pass, and each statement costs round trips to a database that may be across a
        // network. Each row says which source it came from.
        let sql = SOURCES
            .iter()
            .enumerate()
            .map(|(i, source)| format!("SELECT {i}::bigint, * FROM ({}) AS s{i}", source.sql))
            .collect::<Vec<_>>()
            .join("\nUNION ALL\n");
        let mut out = self.with_client(|c| {
            c.query(&sql, &[&since])?
                .iter()
                .map(|row| {
                    let source: i64 = row.try_get(0)?;
                    let kind = usize::try_from(source)
                        .ok()
                        .and_then(|i| SOURCES.get(i))
                        .map(|s| s.kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("event source {source}")))?;
                    Ok(HistoryEvent {
                        key: row.try_get(1)?,
                        kind,
                        dag_id: row.try_get(2)?,
                        task_id: row.try_get(3)?,
                        subject: row.try_get(4)?,
                        run: row.try_get(5)?,
                        dag_version: row.try_get(6)?,
                        detail: row.try_get(7)?,
                        at: row.try_get(8)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
        Ok(out)
    }

    fn alert_cursor(&self) -> Result<Option<DateTime<Utc>>> {
        self.with_client(|c| {
            Ok(
                c.query_opt("SELECT at FROM alert_cursor WHERE id = 1", &[])?
                    .map(|r| r.try_get(0))
                    .transpose()?,
            )
        })
    }

    fn claim_events(
        &self,
        keys: &[(String, DateTime<Utc>)],
        cursor: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            let forgotten: Option<DateTime<Utc>> = c
                .query_opt(
                    "SELECT forgotten_before FROM alert_cursor WHERE id = 1",
                    &[],
                )?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
            // A key older than what was forgotten may have been claimed then forgotten.
            let claimable = keys
                .iter()
                .filter(|(_, at)| forgotten.is_none_or(|f| *at >= f));
            let (names, times): (Vec<&str>, Vec<DateTime<Utc>>) =
                claimable.map(|(k, at)| (k.as_str(), *at)).unzip();
            // One statement for the whole batch; a key given twice is claimed by its first.
            let claimed: std::collections::HashSet<String> = c
                .query(
                    "INSERT INTO alert_events_seen (key, at)
                     SELECT key, at FROM unnest($1::text[], $2::timestamptz[])
                         WITH ORDINALITY AS k (key, at, n)
                     ORDER BY n
                     ON CONFLICT (key) DO NOTHING
                     RETURNING key",
                    &[&names, &times],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut new: Vec<String> = Vec::with_capacity(claimed.len());
            for (key, _) in keys {
                if claimed.contains(key) && !new.contains(key) {
                    new.push(key.clone());
                }
            }
            c.execute(
                "INSERT INTO alert_cursor (id, at) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET at = GREATEST(alert_cursor.at, excluded.at)",
                &[&cursor],
            )?;
            c.execute(
                "DELETE FROM alert_events_seen WHERE at < $1",
                &[&forget_before],
            )?;
            c.execute(
                "UPDATE alert_cursor SET forgotten_before = GREATEST(forgotten_before, $1)
                 WHERE id = 1",
                &[&forget_before],
            )?;
            Ok(new)
        })
    }

    fn raise_alert(&self, o: &AlertOccurrence<'_>) -> Result<AlertRecord> {
        let task = o.task_id.unwrap_or("");
        let subject = o.subject.unwrap_or("");
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            let existing: Option<i64> = c
                .query_opt(
                    "SELECT id FROM alerts WHERE rule = $1 AND dag_id = $2 AND task_id = $3
                     AND subject = $4 AND state != 'resolved'",
                    &[&o.rule, &o.dag_id, &task, &subject],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let existing = match (existing, o.reopen_since) {
                (None, Some(since)) => {
                    let reopened: Option<i64> = c
                        .query_opt(
                            "SELECT id FROM alerts WHERE rule = $1 AND dag_id = $2 AND task_id = $3
                             AND subject = $4 AND state = 'resolved' AND resolved_by LIKE 'run %'
                             AND resolved_at >= $5
                             ORDER BY id DESC LIMIT 1",
                            &[&o.rule, &o.dag_id, &task, &subject, &since],
                        )?
                        .map(|r| r.try_get(0))
                        .transpose()?;
                    if let Some(id) = reopened {
                        c.execute(
                            "UPDATE alerts SET state = CASE WHEN acked_at IS NULL THEN 'open'
                                                            ELSE 'acknowledged' END,
                                resolved_at = NULL, resolved_by = NULL
                             WHERE id = $1",
                            &[&id],
                        )?;
                    }
                    reopened
                }
                (found, _) => found,
            };
            let id: i64 = match existing {
                Some(id) => {
                    c.execute(
                        "UPDATE alerts SET count = count + 1, summary = $2, severity = $3,
                            last_seen = GREATEST(last_seen, $4),
                            last_run = COALESCE($5, last_run),
                            last_dag_version = COALESCE($6, last_dag_version)
                         WHERE id = $1",
                        &[&id, &o.summary, &o.severity, &o.at, &o.run, &o.dag_version],
                    )?;
                    id
                }
                None => c
                    .query_one(
                        "INSERT INTO alerts (rule, kind, severity, dag_id, task_id, subject, state,
                            summary, count, first_seen, last_seen, first_run, last_run,
                            last_dag_version)
                         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, 1, $8, $8, $9, $9, $10)
                         RETURNING id",
                        &[
                            &o.rule,
                            &o.kind,
                            &o.severity,
                            &o.dag_id,
                            &task,
                            &subject,
                            &o.summary,
                            &o.at,
                            &o.run,
                            &o.dag_version,
                        ],
                    )?
                    .get(0),
            };
            alert_in(c, id)
        })
    }

    fn resolve_after_success(&self, success: &HistoryEvent) -> Result<Vec<AlertRecord>> {
        let Some(run) = success.run else {
            return Ok(Vec::new());
        };
        let by = format!("run {run}");
        let (dag_id, task_id, subject) = (
            &success.dag_id,
            success.task_id.as_deref(),
            success.subject.as_deref(),
        );
        let (dag_version, at) = (success.dag_version, success.at);
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            // A success later in the same run (a cleared task that passed) resolves too, except
            // a `check_warn`: a validate task succeeds with its warnings, so its own success
            // says nothing about them. By id, the order SQLite's table scan gives.
            let ids: Vec<i64> = c
                .query(
                    "SELECT id FROM alerts
                     WHERE dag_id = $1 AND state != 'resolved'
                       AND ($2::text IS NULL OR task_id = $2)
                       AND ($3::text IS NULL OR subject = $3)
                       AND (last_run IS NULL OR last_run < $4
                            OR (last_run = $4 AND last_seen < $5 AND kind != 'check_warn'))
                     ORDER BY id",
                    &[dag_id, &task_id, &subject, &run, &at],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for id in ids {
                c.execute(
                    "UPDATE alerts SET verdict = 'real', verdict_source = 'fix'
                     WHERE id = $1 AND verdict IS NULL AND $2::bigint IS NOT NULL
                       AND last_dag_version IS NOT NULL AND last_dag_version != $2",
                    &[&id, &dag_version],
                )?;
                c.execute(
                    "UPDATE alerts SET state = 'resolved', resolved_at = $2, resolved_by = $3
                     WHERE id = $1",
                    &[&id, &at, &by],
                )?;
                out.push(alert_in(c, id)?);
            }
            Ok(out)
        })
    }

    fn credit_action(
        &self,
        run: Option<RunId>,
        task_id: Option<&str>,
        subject: Option<&str>,
        source: &str,
    ) -> Result<usize> {
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            let changed = c.execute(
                "UPDATE alerts SET verdict = 'real', verdict_source = $4
                 WHERE verdict IS NULL AND (
                     ($1::bigint IS NOT NULL AND $1 BETWEEN first_run AND last_run
                        AND ($2::text IS NULL OR task_id = '' OR task_id = $2))
                  OR ($3::text IS NOT NULL AND subject = $3 AND kind = 'gate_failed'
                        AND state != 'resolved'))",
                &[&run, &task_id, &subject, &source],
            )?;
            Ok(changed as usize)
        })
    }

    fn alerts(&self, filter: AlertFilter) -> Result<Vec<AlertRecord>> {
        self.with_client(|c| {
            let mut out = c
                .query(
                    &format!(
                        "SELECT {ALERT_COLUMNS} FROM alerts WHERE $1 OR state != 'resolved'
                         ORDER BY id DESC"
                    ),
                    &[&filter.all],
                )?
                .iter()
                .map(alert_from_row)
                .collect::<Result<Vec<_>>>()?;
            // Each listed alert's latest notification, in one statement.
            let mut latest: std::collections::HashMap<i64, NotificationRecord> = c
                .query(
                    "SELECT DISTINCT ON (n.alert_id) n.id, n.alert_id, n.rule, n.channel, n.at,
                             n.state, n.attempts, n.delivered_at, n.next_try_at, n.error,
                             n.abandoned_why
                         FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id
                         WHERE $1 OR a.state != 'resolved'
                         ORDER BY n.alert_id, n.id DESC",
                    &[&filter.all],
                )?
                .iter()
                .map(|r| notification_from_row(r).map(|n| (n.alert_id, n)))
                .collect::<Result<_>>()?;
            for alert in &mut out {
                alert.delivery = latest.remove(&alert.id);
            }
            Ok(out)
        })
    }

    fn alert(&self, id: i64) -> Result<AlertRecord> {
        self.with_client(|c| alert_in(c, id))
    }

    fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<AlertRecord> {
        let verdict = verdict.map(Verdict::as_str);
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            alert_in(c, id)?;
            c.execute(
                "UPDATE alerts SET acked_by = $2, acked_at = $3,
                    state = CASE WHEN state = 'resolved' THEN state ELSE 'acknowledged' END,
                    verdict = COALESCE($4, verdict),
                    verdict_source = CASE WHEN $4::text IS NULL THEN verdict_source ELSE 'person' END
                 WHERE id = $1",
                &[&id, &by, &at, &verdict],
            )?;
            alert_in(c, id)
        })
    }

    fn resolve_alert(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<AlertRecord> {
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            alert_in(c, id)?;
            c.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, $2),
                    resolved_by = COALESCE(resolved_by, $3)
                 WHERE id = $1",
                &[&id, &at, &by],
            )?;
            alert_in(c, id)
        })
    }

    fn snooze_alert(&self, id: i64, until: DateTime<Utc>) -> Result<AlertRecord> {
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            alert_in(c, id)?;
            c.execute(
                "UPDATE alerts SET snoozed_until = $2 WHERE id = $1",
                &[&id, &until],
            )?;
            alert_in(c, id)
        })
    }

    fn record_notification(
        &self,
        alerts: &[(i64, &str)],
        channel: &str,
        at: DateTime<Utc>,
        undelivered: Option<Undelivered<'_>>,
    ) -> Result<()> {
        let delivered = undelivered.is_none();
        let state = if delivered { "delivered" } else { "pending" };
        let delivered_at = delivered.then_some(at);
        let error = undelivered.map(|u| u.error);
        let next_try = undelivered.map(|u| u.retry_at);
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            for (id, rule) in alerts {
                c.execute(
                    "INSERT INTO alert_notifications (alert_id, rule, channel, at, delivered, error,
                        state, attempts, delivered_at, next_try_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)",
                    &[
                        id,
                        rule,
                        &channel,
                        &at,
                        &delivered,
                        &error,
                        &state,
                        &delivered_at,
                        &next_try,
                    ],
                )?;
                if delivered {
                    c.execute(
                        "UPDATE alerts SET last_notified_at = $2 WHERE id = $1",
                        &[id, &at],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<Vec<NotificationRecord>> {
        let hold_until = to_micros(hold_until);
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            // The compare-and-set: only rows still due are moved to `hold_until`. Under the
            // lock no other claim runs at once; SKIP LOCKED keeps it so should the lock go.
            let mut due = c
                .query(
                    &format!(
                        "UPDATE alert_notifications SET next_try_at = $2
                         WHERE id IN (SELECT id FROM alert_notifications
                                      WHERE state = 'pending' AND next_try_at <= $1
                                      FOR UPDATE SKIP LOCKED)
                           AND state = 'pending' AND next_try_at <= $1
                         RETURNING {NOTIFICATION_COLUMNS}"
                    ),
                    &[&now, &hold_until],
                )?
                .iter()
                .map(notification_from_row)
                .collect::<Result<Vec<_>>>()?;
            due.sort_by_key(|n| n.id);
            Ok(due)
        })
    }

    fn finish_notifications(
        &self,
        ids: &[i64],
        claim: DateTime<Utc>,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<usize> {
        let claim = to_micros(claim);
        self.tx(|c| {
            lock(c, Scope::Alerts, "alerts")?;
            let mut changed = 0;
            for id in ids {
                let n = match outcome {
                    DeliveryOutcome::Delivered => c.execute(
                        "UPDATE alert_notifications SET state = 'delivered', delivered = true,
                            delivered_at = $3, next_try_at = NULL, attempts = attempts + 1
                         WHERE id = $1 AND state = 'pending' AND next_try_at = $2",
                        &[id, &claim, &at],
                    )?,
                    DeliveryOutcome::Failed { error, retry_at } => c.execute(
                        "UPDATE alert_notifications SET error = $3, next_try_at = $4,
                            attempts = attempts + 1
                         WHERE id = $1 AND state = 'pending' AND next_try_at = $2",
                        &[id, &claim, &error, &retry_at],
                    )?,
                    DeliveryOutcome::Postponed { until } => c.execute(
                        "UPDATE alert_notifications SET next_try_at = $3
                         WHERE id = $1 AND state = 'pending' AND next_try_at = $2",
                        &[id, &claim, &until],
                    )?,
                    DeliveryOutcome::Abandoned { why } => c.execute(
                        "UPDATE alert_notifications SET state = 'abandoned', next_try_at = NULL,
                            abandoned_why = $3
                         WHERE id = $1 AND state = 'pending' AND next_try_at = $2",
                        &[id, &claim, &why],
                    )?,
                };
                if n == 1 && matches!(outcome, DeliveryOutcome::Delivered) {
                    c.execute(
                        "UPDATE alerts SET last_notified_at = $2
                         WHERE id = (SELECT alert_id FROM alert_notifications WHERE id = $1)",
                        &[id, &at],
                    )?;
                }
                changed += n as usize;
            }
            Ok(changed)
        })
    }

    fn alerts_notified_since(&self, rule: &str, since: DateTime<Utc>) -> Result<usize> {
        self.with_client(|c| {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(DISTINCT alert_id) FROM alert_notifications
                     WHERE rule = $1 AND state = 'delivered' AND delivered_at >= $2",
                    &[&rule, &since],
                )?
                .get(0);
            Ok(n as usize)
        })
    }
}

impl PgStore {
    /// Waits that began before `before`, as `kind` events: `sql` selects key, DAG, task,
    /// subject, run, DAG version, detail and when the wait began, in that order.
    fn waits(
        &self,
        sql: &str,
        before: DateTime<Utc>,
        kind: EventKind,
    ) -> Result<Vec<HistoryEvent>> {
        self.with_client(|c| {
            c.query(sql, &[&before])?
                .iter()
                .map(|row| {
                    Ok(HistoryEvent {
                        key: row.try_get(0)?,
                        kind,
                        dag_id: row.try_get(1)?,
                        task_id: row.try_get(2)?,
                        subject: row.try_get(3)?,
                        run: row.try_get(4)?,
                        dag_version: row.try_get(5)?,
                        detail: row.try_get(6)?,
                        at: row.try_get(7)?,
                    })
                })
                .collect()
        })
    }
}
