use std::collections::BTreeMap;

use postgres::Row;
use serde_json::Value;

use super::{PgStore, to_u32};
use crate::dispatch::{
    AgentRecord, Claimed, DispatchRecord, DispatchStore, LogChunk, LogChunkOf, NewDispatch,
};
use crate::{LeaseState, Result, RunId, StoreError};

/// Whether the lease `col` names is held, by the database's clock, as an SQL expression.
fn held(col: &str) -> String {
    format!(
        "COALESCE((SELECT l.released_at IS NULL AND l.expires_at > clock_timestamp()
                   FROM leases AS l WHERE l.id = {col}), false)"
    )
}

fn labels(value: Value) -> Result<BTreeMap<String, String>> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

fn labels_json(labels: &BTreeMap<String, String>) -> Value {
    serde_json::to_value(labels).expect("labels serialise")
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("JSON `{text}`: {e}")))
}

fn record(row: &Row) -> Result<DispatchRecord> {
    Ok(DispatchRecord {
        id: row.try_get(0)?,
        run: row.try_get(1)?,
        task: row.try_get(2)?,
        attempt: to_u32(i64::from(row.try_get::<_, i32>(3)?), "attempt")?,
        needs: labels(row.try_get(4)?)?,
        state: row.try_get::<_, String>(5)?.parse()?,
        token: row.try_get(6)?,
        agent_lease: row.try_get(7)?,
        agent_host: row.try_get(8)?,
        agent_alive: row.try_get(9)?,
        enqueued_at: row.try_get(10)?,
        claimed_at: row.try_get(11)?,
        started_at: row.try_get(12)?,
        pid: row
            .try_get::<_, Option<i64>>(13)?
            .map(|p| to_u32(p, "pid"))
            .transpose()?,
        outcome: row
            .try_get::<_, Option<String>>(14)?
            .map(|t| json(&t))
            .transpose()?,
        cancel: row.try_get(15)?,
    })
}

fn select(filter: &str) -> String {
    format!(
        "SELECT d.id, d.run_id, d.task_id, d.attempt, d.needs, d.state, d.token, d.agent_lease,
                (SELECT a.host FROM agents AS a WHERE a.lease_id = d.agent_lease),
                {held}, d.enqueued_at, d.claimed_at, d.started_at, d.pid, d.outcome, d.cancel
         FROM dispatches AS d WHERE {filter} ORDER BY d.id",
        held = held("d.agent_lease")
    )
}

/// Refuses an agent's write about dispatch `id` unless `token` is still its and the agent's
/// lease is held; locks the row for the rest of the transaction.
fn check_fence(c: &mut postgres::Client, id: i64, token: i64) -> Result<()> {
    let row = c.query_opt(
        &format!(
            "SELECT run_id, token, state, {} FROM dispatches WHERE id = $1 FOR UPDATE",
            held("dispatches.agent_lease")
        ),
        &[&id],
    )?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("dispatched attempt {id}")));
    };
    let (now, state, alive): (i64, String, bool) =
        (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
    let why = if now != token {
        format!("the attempt was taken from this agent (token {now}, ours {token})")
    } else if state != "running" {
        format!("the attempt is {state}")
    } else if !alive {
        "this agent's lease expired or was given up".to_owned()
    } else {
        return Ok(());
    };
    Err(StoreError::Fenced {
        run: row.try_get(0)?,
        why,
    })
}

impl DispatchStore for PgStore {
    fn register_agent(
        &self,
        lease: &str,
        host: &str,
        have: &BTreeMap<String, String>,
        slots: u32,
    ) -> Result<()> {
        let (have, slots) = (labels_json(have), i32::try_from(slots).unwrap_or(i32::MAX));
        self.with_client(move |c| {
            c.execute(
                "INSERT INTO agents (lease_id, host, labels, slots, started_at)
                 VALUES ($1, $2, $3, $4, clock_timestamp())
                 ON CONFLICT (lease_id) DO UPDATE SET labels = $3, slots = $4",
                &[&lease, &host, &have, &slots],
            )?;
            Ok(())
        })
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT a.lease_id, a.host, l.pid, a.labels, a.slots,
                        (SELECT count(*) FROM dispatches AS d
                         WHERE d.agent_lease = a.lease_id AND d.state = 'running'),
                        a.started_at, l.renewed_at,
                        l.released_at IS NOT NULL, l.expires_at > clock_timestamp()
                 FROM agents AS a JOIN leases AS l ON l.id = a.lease_id
                 WHERE l.expires_at > clock_timestamp() - interval '1 day'
                 ORDER BY l.released_at IS NOT NULL, l.expires_at <= clock_timestamp(),
                          a.host COLLATE \"C\", a.lease_id COLLATE \"C\"",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    let (released, live): (bool, bool) = (row.try_get(8)?, row.try_get(9)?);
                    Ok(AgentRecord {
                        lease: row.try_get(0)?,
                        host: row.try_get(1)?,
                        pid: to_u32(row.try_get(2)?, "pid of an agent")?,
                        labels: labels(row.try_get(3)?)?,
                        slots: to_u32(i64::from(row.try_get::<_, i32>(4)?), "slots")?,
                        running: to_u32(row.try_get(5)?, "running attempts")?,
                        started_at: row.try_get(6)?,
                        renewed_at: row.try_get(7)?,
                        state: match (released, live) {
                            (true, _) => LeaseState::Released,
                            (false, true) => LeaseState::Held,
                            (false, false) => LeaseState::Expired,
                        },
                    })
                })
                .collect()
        })
    }

    fn enqueue_dispatch(&self, new: &NewDispatch<'_>) -> Result<i64> {
        let (run, task) = (new.run, new.task);
        let attempt = i32::try_from(new.attempt).unwrap_or(i32::MAX);
        let poke = i32::try_from(new.poke).unwrap_or(i32::MAX);
        let (needs, priority, job) = (labels_json(new.needs), new.priority, new.job.to_string());
        self.with_client(move |c| {
            let row = c.query_one(
                "WITH new AS (
                     INSERT INTO dispatches (run_id, task_id, attempt, poke, needs, priority, job, state, enqueued_at)
                     VALUES ($1, $2, $3, $7, $4, $5, $6, 'queued', clock_timestamp())
                     ON CONFLICT (run_id, task_id, attempt, poke) DO NOTHING
                     RETURNING id)
                 SELECT id FROM new
                 UNION ALL
                 SELECT id FROM dispatches
                 WHERE run_id = $1 AND task_id = $2 AND attempt = $3 AND poke = $7
                 LIMIT 1",
                &[&run, &task, &attempt, &needs, &priority, &job, &poke],
            )?;
            // A wake-up hint for idle agents; they poll anyway.
            c.execute("NOTIFY vane_dispatch", &[])?;
            Ok(row.try_get(0)?)
        })
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
        let (have, max) = (labels_json(have), i64::from(max));
        // Attempts another agent is claiming right now are skipped, not waited for; labels
        // are matched by containment, so only attempts this agent can run are locked.
        self.with_client(move |c| {
            let rows = c.query(
                &format!(
                    "UPDATE dispatches SET state = 'running', agent_lease = $1,
                         token = token + 1, claimed_at = clock_timestamp()
                     WHERE id IN (SELECT id FROM dispatches
                                  WHERE state = 'queued' AND needs <@ $2 AND {}
                                  ORDER BY priority DESC, id
                                  LIMIT $3
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING id, token, run_id, task_id, attempt, job",
                    held("$1")
                ),
                &[&lease, &have, &max],
            )?;
            let mut out: Vec<Claimed> = rows
                .iter()
                .map(|row| {
                    Ok(Claimed {
                        id: row.try_get(0)?,
                        token: row.try_get(1)?,
                        run: row.try_get(2)?,
                        task: row.try_get(3)?,
                        attempt: to_u32(i64::from(row.try_get::<_, i32>(4)?), "attempt")?,
                        job: json(&row.try_get::<_, String>(5)?)?,
                    })
                })
                .collect::<Result<_>>()?;
            out.sort_by_key(|c| c.id);
            Ok(out)
        })
    }

    fn dispatch_started(
        &self,
        id: i64,
        token: i64,
        pid: u32,
        pid_start_time: Option<u64>,
    ) -> Result<()> {
        let (pid, start) = (i64::from(pid), pid_start_time.map(|t| t as i64));
        self.tx(move |c| {
            check_fence(c, id, token)?;
            c.execute(
                "UPDATE dispatches SET pid = $2, pid_start_time = $3, started_at = clock_timestamp()
                 WHERE id = $1",
                &[&id, &pid, &start],
            )?;
            Ok(())
        })
    }

    fn finish_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<()> {
        let outcome = outcome.to_string();
        self.tx(move |c| {
            check_fence(c, id, token)?;
            c.execute(
                "UPDATE dispatches SET state = 'done', outcome = $2, ended_at = clock_timestamp()
                 WHERE id = $1",
                &[&id, &outcome],
            )?;
            // The run's owner waits for this.
            c.execute("NOTIFY vane_dispatch_done", &[])?;
            Ok(())
        })
    }

    fn dispatches_to_kill(&self, lease: &str, held: &[(i64, i64)]) -> Result<Vec<i64>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens): (Vec<i64>, Vec<i64>) = held.iter().copied().unzip();
        self.with_client(move |c| {
            let kept: Vec<i64> = c
                .query(
                    "SELECT d.id FROM dispatches AS d
                     JOIN unnest($2::bigint[], $3::bigint[]) AS h(id, token) ON h.id = d.id
                     WHERE d.token = h.token AND d.state = 'running'
                       AND d.agent_lease = $1 AND NOT d.cancel",
                    &[&lease, &ids, &tokens],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            Ok(ids
                .iter()
                .copied()
                .filter(|id| !kept.contains(id))
                .collect())
        })
    }

    fn dispatches(&self, ids: &[i64]) -> Result<Vec<DispatchRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.with_client(move |c| {
            c.query(&select("d.id = ANY($1)"), &[&ids])?
                .iter()
                .map(record)
                .collect()
        })
    }

    fn run_dispatches(&self, run: RunId) -> Result<Vec<DispatchRecord>> {
        self.with_client(move |c| {
            c.query(&select("d.run_id = $1"), &[&run])?
                .iter()
                .map(record)
                .collect()
        })
    }

    fn open_dispatches(&self) -> Result<Vec<DispatchRecord>> {
        self.with_client(|c| {
            c.query(&select("d.state != 'done'"), &[])?
                .iter()
                .map(record)
                .collect()
        })
    }

    fn cancel_dispatch(&self, id: i64, outcome: &Value) -> Result<bool> {
        let outcome = outcome.to_string();
        self.tx(move |c| {
            let queued = c.execute(
                "UPDATE dispatches SET state = 'done', outcome = $2, ended_at = clock_timestamp(),
                     token = token + 1
                 WHERE id = $1 AND state = 'queued'",
                &[&id, &outcome],
            )? > 0;
            if !queued {
                c.execute(
                    "UPDATE dispatches SET cancel = true WHERE id = $1 AND state = 'running'",
                    &[&id],
                )?;
            }
            Ok(queued)
        })
    }

    fn reap_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<bool> {
        // A lost agent's transaction can hold the row until the server notices the connection
        // is dead: skip it rather than hold up the owner, which tries again.
        let outcome = outcome.to_string();
        self.with_client(move |c| {
            Ok(c.execute(
                &format!(
                    "UPDATE dispatches SET state = 'done', outcome = $3, ended_at = clock_timestamp(),
                         token = token + 1
                     WHERE id = (SELECT id FROM dispatches
                                 WHERE id = $1 AND token = $2 AND state = 'running' AND NOT {}
                                 FOR UPDATE SKIP LOCKED)",
                    held("dispatches.agent_lease")
                ),
                &[&id, &token, &outcome],
            )? > 0)
        })
    }

    fn add_log_chunk(&self, id: i64, token: i64, key: &str, bytes: u64) -> Result<()> {
        let (key, bytes) = (key.to_owned(), bytes as i64);
        self.tx(move |c| {
            check_fence(c, id, token)?;
            c.execute(
                "INSERT INTO log_chunks (run_id, task_id, attempt, dispatch_id, object_key, bytes)
                 SELECT run_id, task_id, attempt, id, $2, $3 FROM dispatches WHERE id = $1",
                &[&id, &key, &bytes],
            )?;
            Ok(())
        })
    }

    fn add_owner_log_chunk(&self, of: &LogChunkOf<'_>, key: &str, bytes: u64) -> Result<()> {
        let (run, task, attempt) = (of.run.0, of.task.to_owned(), of.attempt as i32);
        let (key, bytes) = (key.to_owned(), bytes as i64);
        self.with_client(move |c| {
            c.execute(
                "INSERT INTO log_chunks (run_id, task_id, attempt, object_key, bytes)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&run, &task, &attempt, &key, &bytes],
            )?;
            Ok(())
        })
    }

    fn log_chunks(&self, of: &LogChunkOf<'_>, after: i64) -> Result<Vec<LogChunk>> {
        let (run, task, attempt) = (of.run.0, of.task.to_owned(), of.attempt as i32);
        self.with_client(move |c| {
            Ok(c.query(
                "SELECT id, object_key, bytes FROM log_chunks
                 WHERE run_id = $1 AND task_id = $2 AND attempt = $3 AND id > $4 ORDER BY id",
                &[&run, &task, &attempt, &after],
            )?
            .iter()
            .map(|r| LogChunk {
                id: r.get(0),
                key: r.get(1),
                bytes: r.get::<_, i64>(2) as u64,
            })
            .collect())
        })
    }
}
