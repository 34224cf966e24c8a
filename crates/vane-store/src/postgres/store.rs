//! [`crate::Store`]'s own methods: DAG versions, runs, claims, slots, backfills, SLA misses,
//! ticks and pause switches.
//!
//! Where SQLite's single writer makes a read-then-write safe, these take row or advisory locks,
//! or let a unique constraint decide (`ON CONFLICT`), since several schedulers write at once.

use std::collections::BTreeMap;

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Row};
use chrono::{DateTime, SecondsFormat, Utc};

use super::{PgStore, to_u32};
use crate::lease::Fence;
use crate::types::*;
use crate::{Result, Store, StoreError};

/// The first key of the advisory locks on pools (the second is the pool name's hash), so they
/// cannot collide with the migration lock or locks of other software on the database.
const POOL_LOCKS: i32 = 0x7661_6e65; // "vane"

impl PgStore {
    /// [`Store::apply`], as the owner holding `fence` when there is one: the fence is checked
    /// in the same transaction as the changes are written.
    pub(super) fn apply_as(&self, fence: Option<&Fence>, changes: &[Change]) -> Result<()> {
        let mut answers = self.apply_groups(&[(fence, changes)])?;
        answers.pop().unwrap_or_else(|| {
            Err(StoreError::Corrupt(
                "vane_apply gave no answer for a group".into(),
            ))
        })
    }

    /// Applies each group (a caller's fence and changes) on its own, kept or refused alone, in
    /// one statement: one round trip, and outside a transaction one commit, for the batch. See
    /// migration 0026's `vane_apply` for the other half.
    ///
    /// # Errors
    /// The statement failed: then none of the groups is recorded.
    pub(super) fn apply_groups(
        &self,
        groups: &[(Option<&Fence>, &[Change])],
    ) -> Result<Vec<Result<()>>> {
        // A pid only means something while the machine running it stays up, so a batch of
        // nothing but pids does not wait for the server's disk (as SQLite skips its fsync);
        // every state transition does. Nested in a caller's transaction, it commits with that.
        let volatile = self.depth.get() == 0
            && groups.iter().all(|(_, changes)| {
                changes
                    .iter()
                    .all(|c| matches!(c, Change::AttemptProcess { .. }))
            });
        let batch = serde_json::Value::Array(
            groups
                .iter()
                .map(|(fence, changes)| {
                    serde_json::json!({
                        "run": fence.map(|f| f.run),
                        "token": fence.map(|f| f.token),
                        "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        );
        let call = |c: &mut Client| -> Result<serde_json::Value> {
            // Typed parameters spare the round trip that preparing the statement would take.
            let row = c.query_typed_one(
                "SELECT vane_apply($1, $2)",
                &[(&batch, Type::JSONB), (&volatile, Type::BOOL)],
            )?;
            Ok(row.try_get(0)?)
        };
        let answers = if self.depth.get() == 0 {
            self.statement(call)?
        } else {
            // Nested in a caller's transaction, a savepoint keeps a failure to this part.
            self.tx(call)?
        };
        let answers = answers.as_array().filter(|a| a.len() == groups.len());
        let Some(answers) = answers else {
            return Err(StoreError::Corrupt(format!(
                "vane_apply answered {answers:?} for {} groups",
                groups.len()
            )));
        };
        Ok(groups
            .iter()
            .zip(answers)
            .map(|((fence, changes), answer)| group_result(*fence, changes, answer))
            .collect())
    }
}

/// What `vane_apply` answered for one group, as the result of applying it.
fn group_result(
    fence: Option<&Fence>,
    changes: &[Change],
    answer: &serde_json::Value,
) -> Result<()> {
    let field = |name: &str| answer.get(name);
    if field("ok").is_some() {
        return Ok(());
    }
    if let Some(i) = field("missing").and_then(serde_json::Value::as_u64) {
        let change = usize::try_from(i).ok().and_then(|i| changes.get(i));
        return Err(StoreError::NotFound(match change {
            Some(change) => format!("the target of {change:?}"),
            None => format!("the target of change {i}"),
        }));
    }
    match (
        fence,
        field("found"),
        field("token").and_then(serde_json::Value::as_i64),
    ) {
        (Some(fence), Some(_), _) => Err(StoreError::NotFound(format!("run {}", fence.run))),
        (Some(fence), None, Some(token)) => Err(super::lease::refusal(fence, token)),
        _ => Err(StoreError::Corrupt(format!("vane_apply answered {answer}"))),
    }
}

/// A change as `vane_apply` reads it. Times are kept to the microsecond, as PostgreSQL keeps
/// them (truncated, as the binary protocol truncates); metric values travel as text, since
/// JSON has no NaN or infinity.
fn change_json(change: &Change) -> serde_json::Value {
    use serde_json::json;
    let time = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Micros, true);
    match change {
        Change::Run {
            run,
            state,
            reason,
            at,
        } => json!({"kind": "run", "run": run, "state": state.as_str(), "reason": reason,
                    "at": time(at)}),
        Change::Task {
            run,
            task,
            state,
            reason,
            at,
        } => json!({"kind": "task", "run": run, "task": task, "state": state.as_str(),
                    "reason": reason, "at": time(at)}),
        Change::AttemptStarted {
            run,
            task,
            attempt,
            command,
            host,
            log_path,
            at,
        } => json!({"kind": "attempt_started", "run": run, "task": task, "attempt": attempt,
                    "command": command, "host": host, "log_path": log_path, "at": time(at)}),
        Change::AttemptProcess {
            run,
            task,
            attempt,
            pid,
            pid_start_time,
        } => json!({"kind": "attempt_process", "run": run, "task": task, "attempt": attempt,
                    "pid": pid, "pid_start_time": pid_start_time.map(|t| t as i64)}),
        Change::TaskCleared {
            run,
            task,
            reason,
            at,
        } => json!({"kind": "task_cleared", "run": run, "task": task, "reason": reason,
                    "at": time(at)}),
        Change::SlaMiss {
            run,
            task,
            deadline,
            at,
        } => json!({"kind": "sla_miss", "run": run, "task": task, "deadline": time(deadline),
                    "at": time(at)}),
        Change::Metric {
            run,
            task,
            attempt,
            name,
            value,
            at,
        } => json!({"kind": "metric", "run": run, "task": task, "attempt": attempt,
                    "name": name, "value": float_text(*value), "at": time(at)}),
        Change::ReleaseSlots { run, task } => {
            json!({"kind": "release_slots", "run": run, "task": task})
        }
        Change::RunVersion { run, version } => {
            json!({"kind": "run_version", "run": run, "version": version})
        }
        Change::RunParams {
            run,
            params,
            by,
            at,
        } => json!({"kind": "run_params", "run": run, "params": params, "by": by,
                    "at": time(at)}),
        Change::RunOwner { run, owner } => json!({
            "kind": "run_owner",
            "run": run,
            "host": owner.as_ref().map(|o| &o.host),
            "pid": owner.as_ref().map(|o| o.pid),
            "start_time": owner.as_ref().and_then(|o| o.start_time).map(|t| t as i64),
            "lease": owner.as_ref().and_then(|o| o.lease.as_deref()),
        }),
        Change::AttemptFinished {
            run,
            task,
            attempt,
            success,
            exit_code,
            signal,
            reason,
            at,
        } => json!({"kind": "attempt_finished", "run": run, "task": task, "attempt": attempt,
                    "state": if *success { "success" } else { "failed" },
                    "exit_code": exit_code, "signal": signal, "reason": reason, "at": time(at)}),
    }
}

/// `value` as PostgreSQL's `double precision` reads it back exactly: Rust's shortest
/// round-tripping digits, and PostgreSQL's names for the values that are not numbers.
fn float_text(value: f64) -> String {
    match value {
        v if v.is_nan() => "NaN".into(),
        v if v == f64::INFINITY => "Infinity".into(),
        v if v == f64::NEG_INFINITY => "-Infinity".into(),
        v => v.to_string(),
    }
}

fn parse_enum<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T> {
    text.parse().map_err(StoreError::Corrupt)
}

/// `limit` as SQL's `LIMIT`: 0 means all, which `LIMIT NULL` says.
fn sql_limit(limit: usize) -> Option<i64> {
    (limit > 0).then(|| i64::try_from(limit).unwrap_or(i64::MAX))
}

fn run_record(row: &Row) -> Result<RunRecord> {
    let git_commit: Option<String> = row.try_get("git_commit")?;
    let git_dirty: Option<bool> = row.try_get("git_dirty")?;
    let owner_pid: Option<i64> = row.try_get("owner_pid")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        dag_id: row.try_get("dag_id")?,
        dag_version: row.try_get("dag_version_id")?,
        dag_hash: row.try_get("content_hash")?,
        logical_date: row.try_get("logical_date")?,
        timezone: row.try_get("timezone")?,
        trigger: parse_enum(row.try_get("trigger")?)?,
        params: row.try_get("params")?,
        state: parse_enum(row.try_get("state")?)?,
        reason: row.try_get("reason")?,
        git: git_commit.map(|commit| GitState {
            commit,
            dirty: git_dirty.unwrap_or(false),
        }),
        host: row.try_get("host")?,
        owner: match (row.try_get::<_, Option<String>>("owner_host")?, owner_pid) {
            (Some(host), Some(pid)) => Some(Owner {
                host,
                pid: to_u32(pid, "pid of a run's owner")?,
                start_time: row
                    .try_get::<_, Option<i64>>("owner_start_time")?
                    .map(|t| t as u64),
                lease: row.try_get("owner_lease")?,
                lease_held: row.try_get("owner_lease_held")?,
            }),
            _ => None,
        },
        owner_token: row.try_get("owner_token")?,
        stop_request: match row.try_get::<_, Option<String>>("stop_requested_by")? {
            Some(by) => Some(StopRequest {
                by,
                reason: row.try_get("stop_reason")?,
                at: row
                    .try_get::<_, Option<DateTime<Utc>>>("stop_requested_at")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        queued_at: row.try_get("queued_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

fn backfills_where(
    c: &mut Client,
    id: Option<i64>,
    dag_id: Option<&str>,
) -> Result<Vec<BackfillRecord>> {
    let rows = c.query(
        "SELECT * FROM backfills
         WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR dag_id = $2)
         ORDER BY id DESC",
        &[&id, &dag_id],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(BackfillRecord {
            id: row.try_get("id")?,
            dag_id: row.try_get("dag_id")?,
            from: row.try_get("from_date")?,
            to: row.try_get("to_date")?,
            reverse: row.try_get("reverse")?,
            rerun_failed: row.try_get("rerun_failed")?,
            max_active: row.try_get::<_, i64>("max_active")? as usize,
            redeploy_past: row.try_get("redeploy_past")?,
            state: parse_enum(row.try_get("state")?)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            runs: Vec::new(),
        });
    }
    let ids: Vec<i64> = out.iter().map(|b| b.id).collect();
    let runs = c.query(
        "SELECT backfill_id, runs.id, runs.state FROM backfill_runs
         JOIN runs ON runs.id = backfill_runs.run_id
         WHERE backfill_id = ANY($1) ORDER BY backfill_id, position",
        &[&ids],
    )?;
    for row in runs {
        let backfill: i64 = row.try_get(0)?;
        if let Some(b) = out.iter_mut().find(|b| b.id == backfill) {
            b.runs.push((row.try_get(1)?, parse_enum(row.try_get(2)?)?));
        }
    }
    Ok(out)
}

/// Applies one change; a change that finds nothing to change is an error, as on SQLite.
impl Store for PgStore {
    fn record_dag_version(&self, v: &NewDagVersion<'_>) -> Result<DagVersionId> {
        let (dag_id, hash, path, source) = (v.dag_id, v.content_hash, v.path, v.source);
        self.with_client(|c| {
            let inserted = c.query_opt(
                "INSERT INTO dag_versions (dag_id, content_hash, path, source, first_seen)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (dag_id, content_hash) DO NOTHING RETURNING id",
                &[&dag_id, &hash, &path, &source, &Utc::now()],
            )?;
            // Recorded before, by this process or another: in READ COMMITTED this statement
            // sees the row that made the insert do nothing.
            let row = match inserted {
                Some(row) => row,
                None => c.query_one(
                    "SELECT id FROM dag_versions WHERE dag_id = $1 AND content_hash = $2",
                    &[&dag_id, &hash],
                )?,
            };
            Ok(row.try_get(0)?)
        })
    }

    fn create_run(&self, run: &NewRun<'_>) -> Result<RunId> {
        self.tx(|c| {
            // The unique index decides between schedulers creating the same run at once: the
            // insert waits for the other's transaction and then does nothing.
            let inserted = c.query_opt(
                "INSERT INTO runs (dag_id, dag_version_id, logical_date, trigger, params, state,
                                   git_commit, git_dirty, host, queued_at, timezone)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10)
                 ON CONFLICT (dag_id, logical_date) DO NOTHING RETURNING id",
                &[
                    &run.dag_id,
                    &run.dag_version,
                    &run.logical_date,
                    &run.trigger.as_str(),
                    &run.params,
                    &run.git.as_ref().map(|g| &g.commit),
                    &run.git.as_ref().map(|g| g.dirty),
                    &run.host,
                    &run.at,
                    &run.timezone,
                ],
            )?;
            let Some(row) = inserted else {
                let existing = c.query_one(
                    "SELECT id FROM runs WHERE dag_id = $1 AND logical_date = $2",
                    &[&run.dag_id, &run.logical_date],
                )?;
                return Err(StoreError::RunExists {
                    dag_id: run.dag_id.to_owned(),
                    logical_date: run
                        .logical_date
                        .to_rfc3339_opts(SecondsFormat::Micros, true),
                    run: existing.try_get(0)?,
                });
            };
            let id: RunId = row.try_get(0)?;
            c.execute(
                "INSERT INTO task_instances (run_id, task_id, position, state, updated_at)
                 SELECT $1, task, position - 1, 'queued', $3
                 FROM unnest($2::text[]) WITH ORDINALITY AS t (task, position)",
                &[&id, &run.tasks, &run.at],
            )?;
            if let Some(backfill) = run.backfill {
                // The backfill's row lock orders positions of runs created at once.
                c.execute(
                    "SELECT 1 FROM backfills WHERE id = $1 FOR UPDATE",
                    &[&backfill],
                )?;
                c.execute(
                    "INSERT INTO backfill_runs (backfill_id, run_id, position)
                     VALUES ($1, $2, (SELECT COALESCE(MAX(position) + 1, 0) FROM backfill_runs
                                      WHERE backfill_id = $1))",
                    &[&backfill, &id],
                )?;
            }
            if run.records_tick {
                let recorded = c.execute(
                    "INSERT INTO ticks (dag_id, logical_date, decision, run_id, decided_at)
                     VALUES ($1, $2, 'run', $3, $4) ON CONFLICT DO NOTHING",
                    &[&run.dag_id, &run.logical_date, &id, &run.at],
                )?;
                // Decided already (skipped by another scheduler): its decision stands, and
                // the failed transaction takes the run back.
                if recorded == 0 {
                    return Err(StoreError::TickDecided {
                        dag_id: run.dag_id.to_owned(),
                        logical_date: run
                            .logical_date
                            .to_rfc3339_opts(SecondsFormat::Micros, true),
                    });
                }
            }
            Ok(id)
        })
    }

    fn claim_run(&self, run: RunId, owner: &Owner, at: DateTime<Utc>) -> Result<Option<Fence>> {
        // A run another scheduler is claiming right now is skipped, not waited for
        // (`SKIP LOCKED`): that one gets it, and this one goes on with other work. A claim
        // that finds the row free but `owner_pid` set changes nothing.
        self.with_client(|c| {
            let token = c.query_opt(
                "UPDATE runs SET owner_host = $2, owner_pid = $3, owner_start_time = $4,
                    owner_lease = $6, owner_token = owner_token + 1,
                    state = 'running', reason = NULL, started_at = COALESCE(started_at, $5),
                    ended_at = NULL
                 WHERE id = (SELECT id FROM runs
                             WHERE id = $1 AND owner_pid IS NULL
                               AND state IN ('queued', 'running')
                             FOR UPDATE SKIP LOCKED)
                 RETURNING owner_token",
                &[
                    &run,
                    &owner.host,
                    &i64::from(owner.pid),
                    &owner.start_time.map(|t| t as i64),
                    &at,
                    &owner.lease,
                ],
            )?;
            token
                .map(|row| {
                    Ok(Fence {
                        run,
                        token: row.try_get(0)?,
                    })
                })
                .transpose()
        })
    }

    fn request_slots(&self, r: &SlotRequest<'_>, alive: &dyn Fn(&Owner) -> bool) -> Result<bool> {
        let mut pools: Vec<&str> = r.pools.iter().map(|(p, _)| p.as_str()).collect();
        // Every process takes the pools' locks in one order, so two never wait on each other.
        pools.sort_unstable();
        pools.dedup();
        self.write_tx(|| {
            // Under the pools' locks, the line cannot change but by slots given back.
            let holders = self.with_client(|c| {
                for pool in &pools {
                    c.execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        &[&POOL_LOCKS, pool],
                    )?;
                }
                let rows = c.query(
                    "SELECT DISTINCT holder_host, holder_pid, holder_start FROM slots
                     WHERE pool = ANY($1)",
                    &[&pools],
                )?;
                rows.iter()
                    .map(|row| {
                        Ok(Owner {
                            host: row.try_get(0)?,
                            pid: to_u32(row.try_get(1)?, "pid of a slot holder")?,
                            start_time: row.try_get::<_, Option<i64>>(2)?.map(|t| t as u64),
                            // Slots of a process on another host are freed when its runs are adopted.
                            lease: None,
                            lease_held: None,
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })?;
            // `alive` is asked here, on the caller's thread: it need not be `Send`. Only the
            // slots of the pools locked are freed; others are freed when next asked for.
            let dead: Vec<Owner> = holders.into_iter().filter(|o| !alive(o)).collect();
            self.with_client(|c| {
                for owner in &dead {
                    c.execute(
                        "DELETE FROM slots
                         WHERE pool = ANY($1) AND holder_host = $2 AND holder_pid = $3",
                        &[&pools, &owner.host, &i64::from(owner.pid)],
                    )?;
                }
                let mut granted = true;
                for (pool, capacity) in r.pools {
                    c.execute(
                        "INSERT INTO slots (pool, run_id, task_id, held, class, priority, since,
                                            holder_host, holder_pid, holder_start)
                         VALUES ($1, $2, $3, false, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (pool, run_id, task_id) DO NOTHING",
                        &[
                            pool,
                            &r.run,
                            &r.task,
                            &r.class,
                            &r.priority,
                            &r.at,
                            &r.holder.host,
                            &i64::from(r.holder.pid),
                            &r.holder.start_time.map(|t| t as i64),
                        ],
                    )?;
                    // Held slots, plus the waiting tasks ahead of this one in line.
                    let taken: i64 = c
                        .query_one(
                            "SELECT COUNT(*) FROM slots AS other, slots AS me
                             WHERE me.pool = $1 AND me.run_id = $2 AND me.task_id = $3
                               AND other.pool = $1
                               AND NOT (other.run_id = $2 AND other.task_id = $3)
                               AND (other.held
                                    OR other.class > me.class
                                    OR (other.class = me.class AND other.priority > me.priority)
                                    OR (other.class = me.class AND other.priority = me.priority
                                        AND (other.since, other.run_id, other.task_id)
                                            < (me.since, me.run_id, me.task_id)))",
                            &[pool, &r.run, &r.task],
                        )?
                        .try_get(0)?;
                    if taken >= i64::try_from(*capacity).unwrap_or(i64::MAX) {
                        granted = false;
                    }
                }
                if granted {
                    c.execute(
                        "UPDATE slots SET held = true WHERE run_id = $1 AND task_id = $2",
                        &[&r.run, &r.task],
                    )?;
                }
                Ok(granted)
            })
        })
    }

    fn create_backfill(&self, b: &NewBackfill<'_>) -> Result<i64> {
        self.with_client(|c| {
            let row = c.query_one(
                "INSERT INTO backfills (dag_id, from_date, to_date, reverse, rerun_failed,
                                        max_active, state, created_at, updated_at, redeploy_past)
                 VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $7, $8) RETURNING id",
                &[
                    &b.dag_id,
                    &b.from,
                    &b.to,
                    &b.reverse,
                    &b.rerun_failed,
                    &(b.max_active as i64),
                    &b.at,
                    &b.redeploy_past,
                ],
            )?;
            Ok(row.try_get(0)?)
        })
    }

    fn link_backfill_runs(&self, backfill: i64, runs: &[RunId]) -> Result<()> {
        self.tx(|c| {
            c.execute(
                "SELECT 1 FROM backfills WHERE id = $1 FOR UPDATE",
                &[&backfill],
            )?;
            // A run linked already keeps its place; the others follow, in the order given.
            c.execute(
                "INSERT INTO backfill_runs (backfill_id, run_id, position)
                 SELECT $1, run, (SELECT COALESCE(MAX(position) + 1, 0) FROM backfill_runs
                                  WHERE backfill_id = $1) + ordinal - 1
                 FROM unnest($2::bigint[]) WITH ORDINALITY AS r (run, ordinal)
                 ON CONFLICT DO NOTHING",
                &[&backfill, &runs],
            )?;
            Ok(())
        })
    }

    fn set_backfill_state(&self, backfill: i64, state: BackfillState) -> Result<()> {
        let changed = self.with_client(|c| {
            Ok(c.execute(
                "UPDATE backfills SET state = $2, updated_at = $3 WHERE id = $1",
                &[&backfill, &state.as_str(), &Utc::now()],
            )?)
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("backfill {backfill}")));
        }
        Ok(())
    }

    fn backfill(&self, id: i64) -> Result<BackfillRecord> {
        self.with_client(|c| backfills_where(c, Some(id), None))?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("backfill {id}")))
    }

    fn backfills(&self, dag_id: Option<&str>) -> Result<Vec<BackfillRecord>> {
        self.with_client(|c| backfills_where(c, None, dag_id))
    }

    fn backfill_of(&self, run: RunId) -> Result<Option<(i64, BackfillState)>> {
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT backfills.id, backfills.state FROM backfill_runs
                 JOIN backfills ON backfills.id = backfill_runs.backfill_id
                 WHERE run_id = $1 ORDER BY backfill_id DESC LIMIT 1",
                &[&run],
            )?;
            row.map(|r| Ok((r.try_get(0)?, parse_enum(r.try_get(1)?)?)))
                .transpose()
        })
    }

    fn sla_misses(&self, dag_id: Option<&str>, limit: usize) -> Result<Vec<SlaMiss>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT sla_misses.run_id, sla_misses.task_id, sla_misses.deadline,
                        sla_misses.detected_at, runs.dag_id, runs.logical_date
                 FROM sla_misses JOIN runs ON runs.id = sla_misses.run_id
                 WHERE $1::text IS NULL OR runs.dag_id = $1
                 ORDER BY sla_misses.detected_at DESC LIMIT $2",
                &[&dag_id, &sql_limit(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    let task: String = row.try_get(1)?;
                    Ok(SlaMiss {
                        run: row.try_get(0)?,
                        dag_id: row.try_get(4)?,
                        task: (!task.is_empty()).then_some(task),
                        logical_date: row.try_get(5)?,
                        deadline: row.try_get(2)?,
                        detected_at: row.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    fn record_ticks(&self, dag_id: &str, ticks: &[(DateTime<Utc>, TickDecision)]) -> Result<usize> {
        let mut dates = Vec::with_capacity(ticks.len());
        let mut kinds = Vec::with_capacity(ticks.len());
        let mut reasons = Vec::with_capacity(ticks.len());
        let mut runs = Vec::with_capacity(ticks.len());
        for (logical_date, decision) in ticks {
            let (kind, reason, run) = match decision {
                TickDecision::Run(run) => ("run", None, Some(*run)),
                TickDecision::Skipped(reason) => ("skipped", Some(reason.as_str()), None),
            };
            dates.push(*logical_date);
            kinds.push(kind);
            reasons.push(reason);
            runs.push(run);
        }
        // One statement for a catch-up of thousands. A tick decided already, by this scheduler
        // or another (whose insert this one waits for), keeps its first decision; so does the
        // first of two for one date in the same batch.
        let inserted = self.with_client(|c| {
            Ok(c.execute(
                "INSERT INTO ticks (dag_id, logical_date, decision, reason, run_id, decided_at)
                 SELECT $1, logical_date, decision, reason, run_id, $6
                 FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::bigint[])
                      WITH ORDINALITY AS t (logical_date, decision, reason, run_id, ordinal)
                 ORDER BY ordinal
                 ON CONFLICT (dag_id, logical_date) DO NOTHING",
                &[&dag_id, &dates, &kinds, &reasons, &runs, &Utc::now()],
            )?)
        })?;
        Ok(inserted as usize)
    }

    fn last_tick(&self, dag_id: &str) -> Result<Option<DateTime<Utc>>> {
        self.with_client(|c| {
            Ok(c.query_one(
                "SELECT MAX(logical_date) FROM ticks WHERE dag_id = $1",
                &[&dag_id],
            )?
            .try_get(0)?)
        })
    }

    fn ticks(&self, dag_id: &str, limit: usize) -> Result<Vec<TickRecord>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT logical_date, decision, reason, run_id, decided_at FROM ticks
                 WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2",
                &[&dag_id, &sql_limit(limit)],
            )?;
            rows.iter()
                .map(|row| {
                    let decision = match (row.try_get::<_, &str>(1)?, row.try_get(3)?) {
                        ("run", Some(run)) => TickDecision::Run(run),
                        _ => TickDecision::Skipped(
                            row.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
                        ),
                    };
                    Ok(TickRecord {
                        dag_id: dag_id.to_owned(),
                        logical_date: row.try_get(0)?,
                        decision,
                        decided_at: row.try_get(4)?,
                    })
                })
                .collect()
        })
    }

    fn set_paused(&self, dag_id: &str, paused: bool) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO dag_state (dag_id, paused, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (dag_id) DO UPDATE SET paused = excluded.paused,
                                                    updated_at = excluded.updated_at",
                &[&dag_id, &paused, &Utc::now()],
            )?;
            Ok(())
        })
    }

    fn pause_switches(&self) -> Result<BTreeMap<String, bool>> {
        self.with_client(|c| {
            c.query("SELECT dag_id, paused FROM dag_state", &[])?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        })
    }

    fn apply(&self, changes: &[Change]) -> Result<()> {
        self.apply_as(None, changes)
    }

    fn request_stop(&self, run: RunId, request: &StopRequest) -> Result<RunRecord> {
        self.with_client(|c| {
            c.execute(
                "UPDATE runs SET stop_requested_by = $2, stop_reason = $3, stop_requested_at = $4
                 WHERE id = $1 AND state IN ('queued', 'running')",
                &[&run, &request.by, &request.reason, &request.at],
            )?;
            Ok(())
        })?;
        Ok(self.run(run)?.run)
    }

    fn param_changes(&self, run: RunId) -> Result<Vec<ParamChange>> {
        self.with_client(|c| {
            c.query(
                "SELECT at, changed_by, before, after FROM run_param_changes
                 WHERE run_id = $1 ORDER BY id",
                &[&run],
            )?
            .iter()
            .map(|r| {
                Ok(ParamChange {
                    at: r.try_get(0)?,
                    by: r.try_get(1)?,
                    before: r.try_get(2)?,
                    after: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn request_task_stop(&self, run: RunId, task: &str, request: &StopRequest) -> Result<()> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO task_stops (run_id, task_id, stopped_by, reason, at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&run, &task, &request.by, &request.reason, &request.at],
            )?;
            Ok(())
        })
    }

    fn task_stop(&self, run: RunId, task: &str) -> Result<Option<StopRequest>> {
        self.with_client(|c| {
            c.query_opt(
                "SELECT stopped_by, reason, at FROM task_stops WHERE run_id = $1 AND task_id = $2",
                &[&run, &task],
            )?
            .map(|r| {
                Ok(StopRequest {
                    by: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    at: r.try_get(2)?,
                })
            })
            .transpose()
        })
    }

    fn stop_requests(&self, lease: &str) -> Result<Vec<(RunId, Option<String>)>> {
        self.with_client(|c| {
            c.query(
                "SELECT id, NULL::text FROM runs WHERE owner_lease = $1 AND state = 'running'
                   AND stop_requested_at IS NOT NULL
                 UNION ALL
                 SELECT s.run_id, s.task_id FROM task_stops s
                   JOIN runs ON runs.id = s.run_id
                   JOIN task_instances t ON t.run_id = s.run_id AND t.task_id = s.task_id
                 WHERE runs.owner_lease = $1 AND runs.state = 'running' AND t.state = 'running'
                 ORDER BY 1",
                &[&lease],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
        })
    }

    fn runs(&self, filter: &RunFilter<'_>) -> Result<Vec<RunRecord>> {
        let limit = sql_limit(filter.limit);
        let states: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit];
        // Each filter is in the statement only when used, so the plan can use its index.
        let mut clauses = String::new();
        if let Some(dag_id) = &filter.dag_id {
            params.push(dag_id);
            clauses.push_str(&format!(" AND runs.dag_id = ${}", params.len()));
        }
        if !states.is_empty() {
            params.push(&states);
            clauses.push_str(&format!(" AND runs.state = ANY(${})", params.len()));
        }
        let sql = format!(
            "SELECT runs.*, dag_versions.content_hash, {held} AS owner_lease_held FROM runs
             JOIN dag_versions ON dag_versions.id = runs.dag_version_id
             WHERE true {clauses}
             ORDER BY runs.id {} LIMIT $1",
            if filter.oldest_first { "ASC" } else { "DESC" },
            held = super::lease::OWNER_LEASE_HELD,
        );
        let rows = self.with_client(|c| Ok(c.query(&sql, &params)?))?;
        crate::readable_runs(rows.iter().map(run_record))
    }

    fn runs_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        states: &[RunState],
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let sql = format!(
            "SELECT runs.*, dag_versions.content_hash, {held} AS owner_lease_held FROM runs
             JOIN dag_versions ON dag_versions.id = runs.dag_version_id
             WHERE runs.dag_id = $1 AND runs.logical_date < $2
               AND (cardinality($4::text[]) = 0 OR runs.state = ANY($4))
             ORDER BY runs.logical_date DESC, runs.id DESC LIMIT $3",
            held = super::lease::OWNER_LEASE_HELD,
        );
        let rows =
            self.with_client(|c| Ok(c.query(&sql, &[&dag_id, &before, &limit, &states])?))?;
        crate::readable_runs(rows.iter().map(run_record))
    }

    fn run(&self, id: RunId) -> Result<RunDetail> {
        self.with_client(|c| {
            let Some(row) = c.query_opt(
                &format!(
                    "SELECT runs.*, dag_versions.content_hash, {} AS owner_lease_held FROM runs
                     JOIN dag_versions ON dag_versions.id = runs.dag_version_id
                     WHERE runs.id = $1",
                    super::lease::OWNER_LEASE_HELD
                ),
                &[&id],
            )?
            else {
                return Err(StoreError::NotFound(format!("run {id}")));
            };
            let run = run_record(&row)?;
            let mut tasks: Vec<TaskRecord> = c
                .query(
                    "SELECT task_id, state, reason, retry_base FROM task_instances
                     WHERE run_id = $1 ORDER BY position",
                    &[&id],
                )?
                .iter()
                .map(|row| {
                    Ok(TaskRecord {
                        task_id: row.try_get(0)?,
                        state: parse_enum(row.try_get(1)?)?,
                        reason: row.try_get(2)?,
                        retry_base: to_u32(row.try_get(3)?, "retry base of a task")?,
                        attempts: Vec::new(),
                    })
                })
                .collect::<Result<_>>()?;
            let attempts = c.query(
                "SELECT * FROM attempts WHERE run_id = $1 ORDER BY task_id COLLATE \"C\", attempt",
                &[&id],
            )?;
            let small = |row: &Row, name: &str| -> Result<Option<i32>> {
                row.try_get::<_, Option<i64>>(name)?
                    .map(|v| {
                        i32::try_from(v)
                            .map_err(|_| StoreError::Corrupt(format!("{name} of an attempt: {v}")))
                    })
                    .transpose()
            };
            for row in attempts {
                let task_id: String = row.try_get("task_id")?;
                let attempt = AttemptRecord {
                    attempt: to_u32(row.try_get("attempt")?, "attempt number")?,
                    state: parse_enum(row.try_get("state")?)?,
                    command: row.try_get("command")?,
                    host: row.try_get("host")?,
                    log_path: row.try_get("log_path")?,
                    dag_version: row.try_get("dag_version_id")?,
                    metrics: Vec::new(),
                    pid: row
                        .try_get::<_, Option<i64>>("pid")?
                        .map(|p| to_u32(p, "pid of an attempt"))
                        .transpose()?,
                    pid_start_time: row
                        .try_get::<_, Option<i64>>("pid_start_time")?
                        .map(|t| t as u64),
                    exit_code: small(&row, "exit_code")?,
                    signal: small(&row, "signal")?,
                    reason: row.try_get("reason")?,
                    started_at: row.try_get("started_at")?,
                    ended_at: row.try_get("ended_at")?,
                };
                attach_attempt(&mut tasks, &task_id, attempt);
            }
            let metrics = c.query(
                "SELECT task_id, attempt, name, value FROM metrics WHERE run_id = $1 ORDER BY name COLLATE \"C\"",
                &[&id],
            )?;
            for row in metrics {
                let task_id: &str = row.try_get(0)?;
                let number = to_u32(row.try_get(1)?, "attempt number")?;
                attach_metric(
                    &mut tasks,
                    task_id,
                    number,
                    (row.try_get(2)?, row.try_get(3)?),
                );
            }
            Ok(RunDetail { run, tasks })
        })
    }

    fn dag_source(&self, version: DagVersionId) -> Result<String> {
        self.with_client(|c| {
            c.query_opt("SELECT source FROM dag_versions WHERE id = $1", &[&version])?
                .map(|r| r.try_get(0))
                .transpose()?
                .ok_or_else(|| StoreError::NotFound(format!("DAG version {version}")))
        })
    }
}
