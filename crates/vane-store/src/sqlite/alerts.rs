use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, parse_enum, parse_ts, ts};
use crate::alerts::{
    AlertFilter, AlertOccurrence, AlertRecord, AlertStore, DeliveryOutcome, EventKind,
    HistoryEvent, NotificationRecord, Undelivered, Verdict, to_micros,
};
use crate::{Result, RunId, StoreError};

const ALERT_COLUMNS: &str = "id, rule, kind, severity, dag_id, task_id, subject, state, summary,
    count, first_seen, last_seen, first_run, last_run, last_dag_version, snoozed_until, acked_by,
    acked_at, verdict, verdict_source, resolved_at, resolved_by, last_notified_at";

fn opt_ts(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.map(|t| parse_ts(&t)).transpose()
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

fn alert_from_row(row: &Row<'_>) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.get(0)?,
        rule: row.get(1)?,
        kind: row.get(2)?,
        severity: row.get(3)?,
        dag_id: row.get(4)?,
        task_id: non_empty(row.get(5)?),
        subject: non_empty(row.get(6)?),
        state: parse_enum(&row.get::<_, String>(7)?)?,
        summary: row.get(8)?,
        count: row.get(9)?,
        first_seen: parse_ts(&row.get::<_, String>(10)?)?,
        last_seen: parse_ts(&row.get::<_, String>(11)?)?,
        first_run: row.get(12)?,
        last_run: row.get(13)?,
        last_dag_version: row.get(14)?,
        snoozed_until: opt_ts(row.get(15)?)?,
        acked_by: row.get(16)?,
        acked_at: opt_ts(row.get(17)?)?,
        verdict: row
            .get::<_, Option<String>>(18)?
            .map(|v| parse_enum::<Verdict>(&v))
            .transpose()?,
        verdict_source: row.get(19)?,
        resolved_at: opt_ts(row.get(20)?)?,
        resolved_by: row.get(21)?,
        last_notified_at: opt_ts(row.get(22)?)?,
        delivery: None,
    })
}

const NOTIFICATION_COLUMNS: &str = "id, alert_id, rule, channel, at, state, attempts,
    delivered_at, next_try_at, error, abandoned_why";

fn notification_from_row(row: &Row<'_>) -> Result<NotificationRecord> {
    Ok(NotificationRecord {
        id: row.get(0)?,
        alert_id: row.get(1)?,
        rule: row.get(2)?,
        channel: row.get(3)?,
        at: parse_ts(&row.get::<_, String>(4)?)?,
        state: parse_enum(&row.get::<_, String>(5)?)?,
        attempts: row.get(6)?,
        delivered_at: opt_ts(row.get(7)?)?,
        next_try_at: opt_ts(row.get(8)?)?,
        error: row.get(9)?,
        abandoned_why: row.get(10)?,
    })
}

/// One source of events: a query whose columns are (key, dag_id, task_id, subject, run,
/// dag_version, detail, at), all timestamps at or after ?1.
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
            "' AND e.evaluated_at >= ?1"
        )
    };
}

const SOURCES: &[Source] = &[
    Source {
        kind: EventKind::RunFailed,
        sql: "SELECT 'run_failed:' || id, dag_id, NULL, NULL, id, dag_version_id,
                     COALESCE(reason, 'run ' || id || ' failed'), ended_at
              FROM runs WHERE state = 'failed' AND ended_at >= ?1",
    },
    Source {
        kind: EventKind::RunSucceeded,
        sql: "SELECT 'run_ok:' || id, dag_id, NULL, NULL, id, dag_version_id,
                     'run ' || id || ' succeeded', ended_at
              FROM runs WHERE state = 'success' AND ended_at >= ?1",
    },
    // A task is `failed` only once its retries are spent (a retry puts it back to `queued`);
    // the attempt count in the key tells a failure after `vane clear` from the first one.
    Source {
        kind: EventKind::TaskFailed,
        sql: "SELECT 'task_failed:' || t.run_id || ':' || t.task_id || ':' ||
                     (SELECT COUNT(*) FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.task_id),
                     r.dag_id, t.task_id, NULL, t.run_id, r.dag_version_id,
                     COALESCE(
                         (SELECT COALESCE(a.reason, 'exit code ' || a.exit_code) FROM attempts a
                          WHERE a.run_id = t.run_id AND a.task_id = t.task_id
                          ORDER BY a.attempt DESC LIMIT 1),
                         t.reason, 'failed'),
                     t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.state = 'failed' AND t.updated_at >= ?1",
    },
    Source {
        kind: EventKind::TaskSucceeded,
        sql: "SELECT 'task_ok:' || t.run_id || ':' || t.task_id || ':' ||
                     (SELECT COUNT(*) FROM attempts a WHERE a.run_id = t.run_id AND a.task_id = t.task_id),
                     r.dag_id, t.task_id, NULL, t.run_id, r.dag_version_id, 'succeeded', t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.state = 'success' AND t.updated_at >= ?1",
    },
    // `retry_base` is the attempt count at the latest clear: a durable mark that a person
    // asked for the task to run again.
    Source {
        kind: EventKind::TaskCleared,
        sql: "SELECT 'cleared:' || t.run_id || ':' || t.task_id || ':' || t.retry_base,
                     r.dag_id, t.task_id, NULL, t.run_id, r.dag_version_id, 'cleared', t.updated_at
              FROM task_instances t JOIN runs r ON r.id = t.run_id
              WHERE t.retry_base > 0 AND t.updated_at >= ?1",
    },
    Source {
        kind: EventKind::SlaMissed,
        sql: "SELECT 'sla:' || s.run_id || ':' || s.task_id, r.dag_id, NULLIF(s.task_id, ''),
                     NULL, s.run_id, r.dag_version_id,
                     CASE WHEN s.task_id = '' THEN 'run ' || s.run_id ELSE 'task ' || s.task_id END
                         || ' not finished by its deadline ' || s.deadline,
                     s.detected_at
              FROM sla_misses s JOIN runs r ON r.id = s.run_id
              WHERE s.detected_at >= ?1",
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
    Source {
        kind: EventKind::GateFailed,
        sql: "SELECT 'gate:' || l.id, r.dag_id,
                     (SELECT s.task_id FROM rollout_stages s WHERE s.run_id = l.run_id LIMIT 1),
                     l.model, l.run_id, r.dag_version_id,
                     l.model || ' v' || l.version || ' failed: ' || COALESCE(l.reason, 'rolled back'),
                     l.at
              FROM model_ledger l JOIN runs r ON r.id = l.run_id
              WHERE l.to_stage = 'failed' AND l.at >= ?1",
    },
    Source {
        kind: EventKind::ManualRollback,
        sql: "SELECT 'manual:' || l.id, '', NULL, l.model, NULL, NULL,
                     l.actor || ' put ' || l.model || ' v' || l.version || ' in production', l.at
              FROM model_ledger l
              WHERE l.to_stage = 'production' AND l.actor LIKE 'user %' AND l.at >= ?1",
    },
    // Only a sensor records `wait_seconds`; its attempt failing as timed out is a sensor that
    // waited past its deadline.
    Source {
        kind: EventKind::SensorTimeout,
        sql: "SELECT 'sensor:' || a.run_id || ':' || a.task_id || ':' || a.attempt,
                     r.dag_id, a.task_id, NULL, a.run_id, r.dag_version_id,
                     'sensor ' || a.task_id || ' ' || a.reason, a.ended_at
              FROM attempts a JOIN runs r ON r.id = a.run_id
              WHERE a.state = 'failed' AND a.reason LIKE 'timed out%' AND a.ended_at >= ?1
                AND EXISTS (SELECT 1 FROM metrics m WHERE m.run_id = a.run_id
                            AND m.task_id = a.task_id AND m.attempt = a.attempt
                            AND m.name = 'wait_seconds')",
    },
];

impl SqliteStore {
    fn alert_in(tx: &rusqlite::Connection, id: i64) -> Result<AlertRecord> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1");
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![id])?;
        let mut alert = match rows.next()? {
            Some(row) => alert_from_row(row)?,
            None => return Err(StoreError::NotFound(format!("alert {id}"))),
        };
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications WHERE alert_id = ?1
             ORDER BY id DESC LIMIT 1"
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![id])?;
        if let Some(row) = rows.next()? {
            alert.delivery = Some(notification_from_row(row)?);
        }
        Ok(alert)
    }
}

impl AlertStore for SqliteStore {
    fn atomically(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        let tx = self.write_tx()?;
        work()?;
        tx.commit()
    }

    fn history_events(&self, since: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        let since = ts(&since);
        let mut out = Vec::new();
        for source in SOURCES {
            let mut stmt = self.conn.prepare_cached(source.sql)?;
            let mut rows = stmt.query(params![since])?;
            while let Some(row) = rows.next()? {
                out.push(HistoryEvent {
                    key: row.get(0)?,
                    kind: source.kind,
                    dag_id: row.get(1)?,
                    task_id: row.get(2)?,
                    subject: row.get(3)?,
                    run: row.get(4)?,
                    dag_version: row.get(5)?,
                    detail: row.get(6)?,
                    at: parse_ts(&row.get::<_, String>(7)?)?,
                });
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
        Ok(out)
    }

    fn approvals_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.waits(
            "SELECT 'approval:' || s.run_id || ':' || s.task_id || ':' || s.stage || ':' || s.updated_at,
                    r.dag_id, s.task_id, s.model, s.run_id, r.dag_version_id,
                    'run ' || s.run_id || ' waits for a person to approve ' || s.model || ' v'
                        || s.version || ' at stage ' || s.stage
                        || COALESCE(': ' || s.detail, ''),
                    s.updated_at
             FROM rollout_stages s JOIN runs r ON r.id = s.run_id
             WHERE s.status = 'waiting' AND r.state = 'running' AND s.updated_at < ?1
             ORDER BY s.updated_at, s.run_id",
            before,
            EventKind::ApprovalWaiting,
        )
    }

    fn agents_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>> {
        self.waits(
            "SELECT 'agent:' || d.run_id || ':' || d.task_id || ':' || d.attempt || ':' || d.poke,
                    r.dag_id, d.task_id, NULL, d.run_id, r.dag_version_id,
                    'run ' || d.run_id || ' task ' || d.task_id || ' attempt ' || d.attempt
                        || ' waits for an agent with labels ' || d.needs,
                    d.enqueued_at
             FROM dispatches d JOIN runs r ON r.id = d.run_id
             WHERE d.state = 'queued' AND d.enqueued_at < ?1
             ORDER BY d.enqueued_at, d.id",
            before,
            EventKind::AgentWaiting,
        )
    }

    fn alert_cursor(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .conn
            .prepare_cached("SELECT at FROM alert_cursor WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        opt_ts(at)
    }

    fn claim_events(
        &self,
        keys: &[(String, DateTime<Utc>)],
        cursor: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let tx = self.write_tx()?;
        let forgotten: Option<String> = tx
            .prepare_cached("SELECT forgotten_before FROM alert_cursor WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?
            .flatten();
        let mut new = Vec::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO alert_events_seen (key, at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
            for (key, at) in keys {
                let at = ts(at);
                // Timestamps of one format compare as text.
                if forgotten.as_deref().is_some_and(|f| at.as_str() < f) {
                    continue;
                }
                if insert.execute(params![key, at])? == 1 {
                    new.push(key.clone());
                }
            }
        }
        tx.prepare_cached(
            "INSERT INTO alert_cursor (id, at) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET at = max(at, excluded.at)",
        )?
        .execute(params![ts(&cursor)])?;
        tx.prepare_cached("DELETE FROM alert_events_seen WHERE at < ?1")?
            .execute(params![ts(&forget_before)])?;
        tx.prepare_cached(
            "UPDATE alert_cursor SET forgotten_before = max(coalesce(forgotten_before, ?1), ?1)
             WHERE id = 1",
        )?
        .execute(params![ts(&forget_before)])?;
        tx.commit()?;
        Ok(new)
    }

    fn raise_alert(&self, o: &AlertOccurrence<'_>) -> Result<AlertRecord> {
        let tx = self.write_tx()?;
        let task = o.task_id.unwrap_or("");
        let subject = o.subject.unwrap_or("");
        let at = ts(&o.at);
        let existing: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM alerts WHERE rule = ?1 AND dag_id = ?2 AND task_id = ?3
                 AND subject = ?4 AND state != 'resolved'",
            )?
            .query_row(params![o.rule, o.dag_id, task, subject], |r| r.get(0))
            .optional()?;
        let existing = match (existing, o.reopen_since) {
            (None, Some(since)) => {
                let reopened: Option<i64> = tx
                    .prepare_cached(
                        "SELECT id FROM alerts WHERE rule = ?1 AND dag_id = ?2 AND task_id = ?3
                         AND subject = ?4 AND state = 'resolved' AND resolved_by LIKE 'run %'
                         AND resolved_at >= ?5
                         ORDER BY id DESC LIMIT 1",
                    )?
                    .query_row(params![o.rule, o.dag_id, task, subject, ts(&since)], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if let Some(id) = reopened {
                    tx.prepare_cached(
                        "UPDATE alerts SET state = CASE WHEN acked_at IS NULL THEN 'open'
                                                        ELSE 'acknowledged' END,
                            resolved_at = NULL, resolved_by = NULL
                         WHERE id = ?1",
                    )?
                    .execute(params![id])?;
                }
                reopened
            }
            (found, _) => found,
        };
        let id = match existing {
            Some(id) => {
                tx.prepare_cached(
                    "UPDATE alerts SET count = count + 1, summary = ?2, severity = ?3,
                        last_seen = max(last_seen, ?4),
                        last_run = COALESCE(?5, last_run),
                        last_dag_version = COALESCE(?6, last_dag_version)
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    o.summary,
                    o.severity,
                    at,
                    o.run,
                    o.dag_version
                ])?;
                id
            }
            None => {
                tx.prepare_cached(
                    "INSERT INTO alerts (rule, kind, severity, dag_id, task_id, subject, state,
                        summary, count, first_seen, last_seen, first_run, last_run, last_dag_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, 1, ?8, ?8, ?9, ?9, ?10)",
                )?
                .execute(params![
                    o.rule,
                    o.kind,
                    o.severity,
                    o.dag_id,
                    task,
                    subject,
                    o.summary,
                    at,
                    o.run,
                    o.dag_version
                ])?;
                tx.last_insert_rowid()
            }
        };
        let alert = Self::alert_in(&tx, id)?;
        tx.commit()?;
        Ok(alert)
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
        let tx = self.write_tx()?;
        // A success later in the same run (a cleared task that passed) resolves too, except a
        // `check_warn`: a validate task succeeds with its warnings, so its own success says
        // nothing about them.
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id FROM alerts
                 WHERE dag_id = ?1 AND state != 'resolved'
                   AND (?2 IS NULL OR task_id = ?2)
                   AND (?3 IS NULL OR subject = ?3)
                   AND (last_run IS NULL OR last_run < ?4
                        OR (last_run = ?4 AND last_seen < ?5 AND kind != 'check_warn'))",
            )?;
            stmt.query_map(params![dag_id, task_id, subject, run, ts(&at)], |r| {
                r.get(0)
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            tx.prepare_cached(
                "UPDATE alerts SET verdict = 'real', verdict_source = 'fix'
                 WHERE id = ?1 AND verdict IS NULL AND ?2 IS NOT NULL
                   AND last_dag_version IS NOT NULL AND last_dag_version != ?2",
            )?
            .execute(params![id, dag_version])?;
            tx.prepare_cached(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_by = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, ts(&at), by])?;
            out.push(Self::alert_in(&tx, id)?);
        }
        tx.commit()?;
        Ok(out)
    }

    fn credit_action(
        &self,
        run: Option<RunId>,
        task_id: Option<&str>,
        subject: Option<&str>,
        source: &str,
    ) -> Result<usize> {
        let tx = self.write_tx()?;
        let changed = tx
            .prepare_cached(
                "UPDATE alerts SET verdict = 'real', verdict_source = ?4
                 WHERE verdict IS NULL AND (
                     (?1 IS NOT NULL AND ?1 BETWEEN first_run AND last_run
                        AND (?2 IS NULL OR task_id = '' OR task_id = ?2))
                  OR (?3 IS NOT NULL AND subject = ?3 AND kind = 'gate_failed'
                        AND state != 'resolved'))",
            )?
            .execute(params![run, task_id, subject, source])?;
        tx.commit()?;
        Ok(changed)
    }

    fn alerts(&self, filter: AlertFilter) -> Result<Vec<AlertRecord>> {
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE ?1 OR state != 'resolved' ORDER BY id DESC"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![filter.all])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(alert_from_row(row)?);
        }
        // Each listed alert's latest notification, in one statement.
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications WHERE id IN (
                 SELECT max(n.id) FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id
                 WHERE ?1 OR a.state != 'resolved' GROUP BY n.alert_id)"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![filter.all])?;
        let mut latest = std::collections::HashMap::new();
        while let Some(row) = rows.next()? {
            let n = notification_from_row(row)?;
            latest.insert(n.alert_id, n);
        }
        for alert in &mut out {
            alert.delivery = latest.remove(&alert.id);
        }
        Ok(out)
    }

    fn alert(&self, id: i64) -> Result<AlertRecord> {
        Self::alert_in(&self.conn, id)
    }

    fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<AlertRecord> {
        let tx = self.write_tx()?;
        Self::alert_in(&tx, id)?;
        tx.prepare_cached(
            "UPDATE alerts SET acked_by = ?2, acked_at = ?3,
                state = CASE WHEN state = 'resolved' THEN state ELSE 'acknowledged' END,
                verdict = COALESCE(?4, verdict),
                verdict_source = CASE WHEN ?4 IS NULL THEN verdict_source ELSE 'person' END
             WHERE id = ?1",
        )?
        .execute(params![id, by, ts(&at), verdict.map(Verdict::as_str)])?;
        let alert = Self::alert_in(&tx, id)?;
        tx.commit()?;
        Ok(alert)
    }

    fn resolve_alert(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<AlertRecord> {
        let tx = self.write_tx()?;
        Self::alert_in(&tx, id)?;
        tx.prepare_cached(
            "UPDATE alerts SET state = 'resolved', resolved_at = COALESCE(resolved_at, ?2),
                resolved_by = COALESCE(resolved_by, ?3)
             WHERE id = ?1",
        )?
        .execute(params![id, ts(&at), by])?;
        let alert = Self::alert_in(&tx, id)?;
        tx.commit()?;
        Ok(alert)
    }

    fn snooze_alert(&self, id: i64, until: DateTime<Utc>) -> Result<AlertRecord> {
        let tx = self.write_tx()?;
        Self::alert_in(&tx, id)?;
        tx.prepare_cached("UPDATE alerts SET snoozed_until = ?2 WHERE id = ?1")?
            .execute(params![id, ts(&until)])?;
        let alert = Self::alert_in(&tx, id)?;
        tx.commit()?;
        Ok(alert)
    }

    fn record_notification(
        &self,
        alerts: &[(i64, &str)],
        channel: &str,
        at: DateTime<Utc>,
        undelivered: Option<Undelivered<'_>>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let at = ts(&at);
        let (state, delivered_at) = match undelivered {
            None => ("delivered", Some(at.as_str())),
            Some(_) => ("pending", None),
        };
        let error = undelivered.map(|u| u.error);
        let next_try = undelivered.map(|u| ts(&u.retry_at));
        for (id, rule) in alerts {
            tx.prepare_cached(
                "INSERT INTO alert_notifications (alert_id, rule, channel, at, delivered, error,
                    state, attempts, delivered_at, next_try_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9)",
            )?
            .execute(params![
                id,
                rule,
                channel,
                at,
                undelivered.is_none(),
                error,
                state,
                delivered_at,
                next_try
            ])?;
            if undelivered.is_none() {
                tx.prepare_cached("UPDATE alerts SET last_notified_at = ?2 WHERE id = ?1")?
                    .execute(params![id, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<Vec<NotificationRecord>> {
        let hold_until = to_micros(hold_until);
        // One writer at a time: what this transaction reads as due, no other can claim.
        let tx = self.write_tx()?;
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM alert_notifications
             WHERE state = 'pending' AND next_try_at <= ?1 ORDER BY id"
        );
        let mut due = Vec::new();
        {
            let mut stmt = tx.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![ts(&now)])?;
            while let Some(row) = rows.next()? {
                due.push(notification_from_row(row)?);
            }
        }
        for n in &mut due {
            tx.prepare_cached(
                "UPDATE alert_notifications SET next_try_at = ?2
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![n.id, ts(&hold_until)])?;
            n.next_try_at = Some(hold_until);
        }
        tx.commit()?;
        Ok(due)
    }

    fn finish_notifications(
        &self,
        ids: &[i64],
        claim: DateTime<Utc>,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<usize> {
        let tx = self.write_tx()?;
        let (claim, at) = (ts(&to_micros(claim)), ts(&at));
        let mut changed = 0;
        for id in ids {
            let n = match outcome {
                DeliveryOutcome::Delivered => tx
                    .prepare_cached(
                        "UPDATE alert_notifications SET state = 'delivered', delivered = 1,
                            delivered_at = ?3, next_try_at = NULL, attempts = attempts + 1
                         WHERE id = ?1 AND state = 'pending' AND next_try_at = ?2",
                    )?
                    .execute(params![id, claim, at])?,
                DeliveryOutcome::Failed { error, retry_at } => tx
                    .prepare_cached(
                        "UPDATE alert_notifications SET error = ?3, next_try_at = ?4,
                            attempts = attempts + 1
                         WHERE id = ?1 AND state = 'pending' AND next_try_at = ?2",
                    )?
                    .execute(params![id, claim, error, ts(&retry_at)])?,
                DeliveryOutcome::Postponed { until } => tx
                    .prepare_cached(
                        "UPDATE alert_notifications SET next_try_at = ?3
                         WHERE id = ?1 AND state = 'pending' AND next_try_at = ?2",
                    )?
                    .execute(params![id, claim, ts(&until)])?,
                DeliveryOutcome::Abandoned { why } => tx
                    .prepare_cached(
                        "UPDATE alert_notifications SET state = 'abandoned', next_try_at = NULL,
                            abandoned_why = ?3
                         WHERE id = ?1 AND state = 'pending' AND next_try_at = ?2",
                    )?
                    .execute(params![id, claim, why])?,
            };
            if n == 1 && matches!(outcome, DeliveryOutcome::Delivered) {
                tx.prepare_cached(
                    "UPDATE alerts SET last_notified_at = ?2
                     WHERE id = (SELECT alert_id FROM alert_notifications WHERE id = ?1)",
                )?
                .execute(params![id, at])?;
            }
            changed += n;
        }
        tx.commit()?;
        Ok(changed)
    }

    fn alerts_notified_since(&self, rule: &str, since: DateTime<Utc>) -> Result<usize> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(DISTINCT alert_id) FROM alert_notifications
                 WHERE rule = ?1 AND state = 'delivered' AND delivered_at >= ?2",
            )?
            .query_row(params![rule, ts(&since)], |r| r.get(0))?;
        Ok(n as usize)
    }
}

impl SqliteStore {
    /// Waits that began before `before`, as `kind` events: `sql` selects key, DAG, task,
    /// subject, run, DAG version, detail and when the wait began, in that order.
    fn waits(
        &self,
        sql: &str,
        before: DateTime<Utc>,
        kind: EventKind,
    ) -> Result<Vec<HistoryEvent>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![ts(&before)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(HistoryEvent {
                key: row.get(0)?,
                kind,
                dag_id: row.get(1)?,
                task_id: row.get(2)?,
                subject: row.get(3)?,
                run: row.get(4)?,
                dag_version: row.get(5)?,
                detail: row.get(6)?,
                at: parse_ts(&row.get::<_, String>(7)?)?,
            });
        }
        Ok(out)
    }
}
