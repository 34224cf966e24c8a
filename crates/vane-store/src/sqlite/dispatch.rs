use std::collections::BTreeMap;

use chrono::Utc;
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::{SqliteStore, parse_ts, ts};
use crate::dispatch::{
    AgentRecord, Claimed, DispatchRecord, DispatchStore, LogChunk, LogChunkOf, NewDispatch, offers,
};
use crate::{LeaseState, Result, RunId, StoreError};

/// The database's clock in Unix seconds, as leases keep it.
const NOW: &str = "((julianday('now') - 2440587.5) * 86400.0)";

/// Whether the lease `col` names is held, as an SQL expression.
fn held(col: &str) -> String {
    format!(
        "COALESCE((SELECT l.released_at IS NULL AND l.expires_at > {NOW}
                   FROM leases AS l WHERE l.id = {col}), 0)"
    )
}

fn labels(text: &str) -> Result<BTreeMap<String, String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("labels `{text}`: {e}")))
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("JSON `{text}`: {e}")))
}

const RECORD: &str = "d.id, d.run_id, d.task_id, d.attempt, d.needs, d.state, d.token,
    d.agent_lease, (SELECT a.host FROM agents AS a WHERE a.lease_id = d.agent_lease),";

fn record(row: &Row<'_>, alive: bool) -> Result<DispatchRecord> {
    let opt_ts = |i: usize| -> Result<Option<chrono::DateTime<Utc>>> {
        row.get::<_, Option<String>>(i)?
            .map(|t| parse_ts(&t))
            .transpose()
    };
    Ok(DispatchRecord {
        id: row.get(0)?,
        run: row.get(1)?,
        task: row.get(2)?,
        attempt: row.get(3)?,
        needs: labels(&row.get::<_, String>(4)?)?,
        state: row.get::<_, String>(5)?.parse()?,
        token: row.get(6)?,
        agent_lease: row.get(7)?,
        agent_host: row.get(8)?,
        agent_alive: alive,
        enqueued_at: parse_ts(&row.get::<_, String>(10)?)?,
        claimed_at: opt_ts(11)?,
        started_at: opt_ts(12)?,
        pid: row.get(13)?,
        outcome: row
            .get::<_, Option<String>>(14)?
            .map(|t| json(&t))
            .transpose()?,
        cancel: row.get(15)?,
    })
}

impl SqliteStore {
    fn dispatch_records(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<DispatchRecord>> {
        let sql = format!(
            "SELECT {RECORD} {held} AS alive, d.enqueued_at, d.claimed_at, d.started_at, d.pid,
                    d.outcome, d.cancel
             FROM dispatches AS d WHERE {filter} ORDER BY d.id",
            held = held("d.agent_lease")
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(args)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let alive: bool = row.get(9)?;
            out.push(record(row, alive)?);
        }
        Ok(out)
    }

    /// Refuses an agent's write about dispatch `id` unless `token` is still its and the agent's
    /// lease is held; inside the caller's transaction.
    fn check_dispatch_fence(&self, id: i64, token: i64) -> Result<()> {
        let found: Option<(RunId, i64, String, bool)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT run_id, token, state, {} FROM dispatches WHERE id = ?1",
                held("dispatches.agent_lease")
            ))?
            .query_row(params![id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((run, now, state, alive)) = found else {
            return Err(StoreError::NotFound(format!("dispatched attempt {id}")));
        };
        let why = if now != token {
            format!("the attempt was taken from this agent (token {now}, ours {token})")
        } else if state != "running" {
            format!("the attempt is {state}")
        } else if !alive {
            "this agent's lease expired or was given up".to_owned()
        } else {
            return Ok(());
        };
        Err(StoreError::Fenced { run, why })
    }
}

impl DispatchStore for SqliteStore {
    fn register_agent(
        &self,
        lease: &str,
        host: &str,
        labels: &BTreeMap<String, String>,
        slots: u32,
    ) -> Result<()> {
        let labels = serde_json::to_string(labels).expect("labels serialise");
        self.conn
            .prepare_cached(
                "INSERT INTO agents (lease_id, host, labels, slots, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (lease_id) DO UPDATE SET labels = ?3, slots = ?4",
            )?
            .execute(params![lease, host, labels, slots, ts(&Utc::now())])?;
        Ok(())
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT a.lease_id, a.host, l.pid, a.labels, a.slots,
                    (SELECT COUNT(*) FROM dispatches AS d
                     WHERE d.agent_lease = a.lease_id AND d.state = 'running'),
                    a.started_at, l.renewed_at,
                    CASE WHEN l.released_at IS NOT NULL THEN 'released'
                         WHEN l.expires_at > {NOW} THEN 'held' ELSE 'expired' END
             FROM agents AS a JOIN leases AS l ON l.id = a.lease_id
             WHERE l.expires_at > {NOW} - 86400
             ORDER BY l.released_at IS NOT NULL, l.expires_at <= {NOW}, a.host, a.lease_id"
        ))?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(AgentRecord {
                lease: row.get(0)?,
                host: row.get(1)?,
                pid: row.get(2)?,
                labels: labels(&row.get::<_, String>(3)?)?,
                slots: row.get(4)?,
                running: row.get(5)?,
                started_at: parse_ts(&row.get::<_, String>(6)?)?,
                renewed_at: parse_ts(&row.get::<_, String>(7)?)?,
                state: match row.get::<_, String>(8)?.as_str() {
                    "held" => LeaseState::Held,
                    "released" => LeaseState::Released,
                    _ => LeaseState::Expired,
                },
            });
        }
        Ok(out)
    }

    fn enqueue_dispatch(&self, new: &NewDispatch<'_>) -> Result<i64> {
        let needs = serde_json::to_string(new.needs).expect("labels serialise");
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "INSERT INTO dispatches (run_id, task_id, attempt, poke, needs, priority, job, state, enqueued_at)
             VALUES (?1, ?2, ?3, ?8, ?4, ?5, ?6, 'queued', ?7)
             ON CONFLICT (run_id, task_id, attempt, poke) DO NOTHING",
        )?
        .execute(params![
            new.run,
            new.task,
            new.attempt,
            needs,
            new.priority,
            new.job.to_string(),
            ts(&Utc::now()),
            new.poke
        ])?;
        let id = tx
            .prepare_cached(
                "SELECT id FROM dispatches
                 WHERE run_id = ?1 AND task_id = ?2 AND attempt = ?3 AND poke = ?4",
            )?
            .query_row(params![new.run, new.task, new.attempt, new.poke], |r| {
                r.get(0)
            })?;
        tx.commit()?;
        Ok(id)
    }

    fn claim_dispatches(
        &self,
        lease: &str,
        have: &BTreeMap<String, String>,
        max: u32,
    ) -> Result<Vec<Claimed>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // One writer at a time: the write lock is the claim's lock, and labels are matched
        // here rather than in SQL.
        let tx = self.write_tx()?;
        let alive: bool = tx
            .prepare_cached(&format!("SELECT {}", held("?1")))?
            .query_row(params![lease], |r| r.get(0))?;
        if !alive {
            return Ok(Vec::new());
        }
        let queued: Vec<(i64, String)> = tx
            .prepare_cached(
                "SELECT id, needs FROM dispatches WHERE state = 'queued' ORDER BY priority DESC, id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for (id, needs) in queued {
            if out.len() as u32 >= max {
                break;
            }
            if !offers(have, &labels(&needs)?) {
                continue;
            }
            let claimed = tx
                .prepare_cached(
                    "UPDATE dispatches SET state = 'running', agent_lease = ?2,
                         token = token + 1, claimed_at = ?3
                     WHERE id = ?1 AND state = 'queued'
                     RETURNING token, run_id, task_id, attempt, job",
                )?
                .query_row(params![id, lease, ts(&Utc::now())], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })?;
            out.push(Claimed {
                id,
                token: claimed.0,
                run: claimed.1,
                task: claimed.2,
                attempt: claimed.3,
                job: json(&claimed.4)?,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    fn dispatch_started(
        &self,
        id: i64,
        token: i64,
        pid: u32,
        pid_start_time: Option<u64>,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        self.check_dispatch_fence(id, token)?;
        tx.prepare_cached(
            "UPDATE dispatches SET pid = ?2, pid_start_time = ?3, started_at = ?4 WHERE id = ?1",
        )?
        .execute(params![
            id,
            pid,
            pid_start_time.map(|t| t as i64),
            ts(&Utc::now())
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn finish_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<()> {
        let tx = self.write_tx()?;
        self.check_dispatch_fence(id, token)?;
        tx.prepare_cached(
            "UPDATE dispatches SET state = 'done', outcome = ?2, ended_at = ?3 WHERE id = ?1",
        )?
        .execute(params![id, outcome.to_string(), ts(&Utc::now())])?;
        tx.commit()?;
        Ok(())
    }

    fn dispatches_to_kill(&self, lease: &str, held: &[(i64, i64)]) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT token, state, agent_lease, cancel FROM dispatches WHERE id = ?1",
        )?;
        for &(id, token) in held {
            let row: Option<(i64, String, Option<String>, bool)> = stmt
                .query_row(params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let keep = row.is_some_and(|(t, state, by, cancel)| {
                t == token && state == "running" && by.as_deref() == Some(lease) && !cancel
            });
            if !keep {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn dispatches(&self, ids: &[i64]) -> Result<Vec<DispatchRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        self.dispatch_records(&format!("d.id IN ({list})"), &[])
    }

    fn run_dispatches(&self, run: RunId) -> Result<Vec<DispatchRecord>> {
        self.dispatch_records("d.run_id = ?1", &[&run])
    }

    fn open_dispatches(&self) -> Result<Vec<DispatchRecord>> {
        self.dispatch_records("d.state != 'done'", &[])
    }

    fn cancel_dispatch(&self, id: i64, outcome: &Value) -> Result<bool> {
        let tx = self.write_tx()?;
        let queued = tx
            .prepare_cached(
                "UPDATE dispatches SET state = 'done', outcome = ?2, ended_at = ?3, token = token + 1
                 WHERE id = ?1 AND state = 'queued'",
            )?
            .execute(params![id, outcome.to_string(), ts(&Utc::now())])?
            > 0;
        if !queued {
            tx.prepare_cached(
                "UPDATE dispatches SET cancel = 1 WHERE id = ?1 AND state = 'running'",
            )?
            .execute(params![id])?;
        }
        tx.commit()?;
        Ok(queued)
    }

    fn reap_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<bool> {
        let reaped = self
            .conn
            .prepare_cached(&format!(
                "UPDATE dispatches SET state = 'done', outcome = ?3, ended_at = ?4, token = token + 1
                 WHERE id = ?1 AND token = ?2 AND state = 'running' AND NOT {}",
                held("dispatches.agent_lease")
            ))?
            .execute(params![id, token, outcome.to_string(), ts(&Utc::now())])?;
        Ok(reaped > 0)
    }

    fn add_log_chunk(&self, id: i64, token: i64, key: &str, bytes: u64) -> Result<()> {
        let tx = self.write_tx()?;
        self.check_dispatch_fence(id, token)?;
        tx.prepare_cached(
            "INSERT INTO log_chunks (run_id, task_id, attempt, dispatch_id, object_key, bytes, written_at)
             SELECT run_id, task_id, attempt, id, ?2, ?3, ?4 FROM dispatches WHERE id = ?1",
        )?
        .execute(params![id, key, bytes as i64, ts(&Utc::now())])?;
        tx.commit()?;
        Ok(())
    }

    fn add_owner_log_chunk(&self, of: &LogChunkOf<'_>, key: &str, bytes: u64) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO log_chunks (run_id, task_id, attempt, object_key, bytes, written_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                of.run,
                of.task,
                of.attempt,
                key,
                bytes as i64,
                ts(&Utc::now())
            ])?;
        Ok(())
    }

    fn log_chunks(&self, of: &LogChunkOf<'_>, after: i64) -> Result<Vec<LogChunk>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, object_key, bytes FROM log_chunks
             WHERE run_id = ?1 AND task_id = ?2 AND attempt = ?3 AND id > ?4 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![of.run, of.task, of.attempt, after], |r| {
            Ok(LogChunk {
                id: r.get(0)?,
                key: r.get(1)?,
                bytes: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
