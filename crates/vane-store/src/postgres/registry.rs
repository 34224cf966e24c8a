//! The model registry on PostgreSQL. Version numbers, stage moves and the rollout lock are
//! decided under an advisory lock of the model's name, where SQLite relied on its one writer.

use chrono::Utc;
use postgres::Row;

use super::PgStore;
use super::locks::{Scope, lock};
use super::values::{attempt_number, parse_enum};
use crate::registry::{
    LedgerEntry, ModelVersion, NewModelVersion, RegistryStore, RolloutLock, RolloutStage,
    StageChange,
};
use crate::{Decision, Result, RunId, StoreError};

const VERSION_SELECT: &str =
    "SELECT s.model, s.version, a.hash, a.path, a.stored, s.stage, s.since, s.actor, s.run_id
     FROM model_stages s JOIN artifact_versions a ON a.id = s.artifact_id";

const STAGE_COLUMNS: &str = "run_id, task_id, stage, model, version, status, detail, evidence,
    decided_by, reason, updated_at";

fn model_version(row: &Row) -> Result<ModelVersion> {
    Ok(ModelVersion {
        model: row.try_get(0)?,
        version: row.try_get(1)?,
        hash: row.try_get(2)?,
        path: row.try_get(3)?,
        stored: row.try_get(4)?,
        stage: row.try_get(5)?,
        since: row.try_get(6)?,
        actor: row.try_get(7)?,
        run_id: row.try_get(8)?,
    })
}

fn rollout_stage(row: &Row) -> Result<RolloutStage> {
    Ok(RolloutStage {
        run_id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        stage: row.try_get(2)?,
        model: row.try_get(3)?,
        version: row.try_get(4)?,
        status: parse_enum(row.try_get(5)?)?,
        detail: row.try_get(6)?,
        evidence: row.try_get(7)?,
        decided_by: row.try_get(8)?,
        reason: row.try_get(9)?,
        updated_at: row.try_get(10)?,
    })
}

impl RegistryStore for PgStore {
    fn register_model_version(&self, new: &NewModelVersion<'_>) -> Result<i64> {
        self.tx(|c| {
            // The model's versions are the artifact's: numbered under the artifact's lock.
            lock(c, Scope::Artifact, new.model)?;
            let now = Utc::now();
            let found = c.query_opt(
                "SELECT id, version FROM artifact_versions WHERE name = $1 AND hash = $2",
                &[&new.model, &new.hash],
            )?;
            let (artifact_id, version): (i64, i64) = match found {
                Some(row) => {
                    let found: (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                    if let Some(stored) = new.stored {
                        c.execute(
                            "UPDATE artifact_versions SET stored = $2 WHERE id = $1 AND stored IS NULL",
                            &[&found.0, &stored],
                        )?;
                    }
                    found
                }
                None => {
                    // The rollout read the candidate, it did not make it: the producer is the
                    // attempt that wrote the same content as an output, if one did, else unknown.
                    let row = c.query_one(
                        "INSERT INTO artifact_versions
                           (name, version, hash, kind, size, path, stored, created_at, run_id, task_id, attempt)
                         SELECT $1, (SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE name = $1),
                                $2, $3, $4, $5, $6, $7, p.run_id, p.task_id, p.attempt
                         FROM (SELECT 1) AS one LEFT JOIN (
                             SELECT run_id, task_id, attempt FROM artifact_versions
                             WHERE hash = $2 AND run_id IS NOT NULL ORDER BY id LIMIT 1
                         ) p ON true
                         RETURNING id, version",
                        &[
                            &new.model,
                            &new.hash,
                            &new.kind,
                            &(new.size as i64),
                            &new.path,
                            &new.stored,
                            &now,
                        ],
                    )?;
                    (row.try_get(0)?, row.try_get(1)?)
                }
            };
            let actor = format!("run {}", new.run);
            let inserted = c.execute(
                "INSERT INTO model_stages (model, version, artifact_id, stage, since, actor, run_id)
                 VALUES ($1, $2, $3, 'registered', $4, $5, $6)
                 ON CONFLICT DO NOTHING",
                &[&new.model, &version, &artifact_id, &now, &actor, &new.run],
            )?;
            if inserted > 0 {
                c.execute(
                    "INSERT INTO model_ledger (model, version, from_stage, to_stage, at, actor, run_id, reason)
                     VALUES ($1, $2, NULL, 'registered', $3, $4, $5, $6)",
                    &[
                        &new.model,
                        &version,
                        &now,
                        &actor,
                        &new.run,
                        &format!("candidate {} of task `{}`", new.path, new.task_id),
                    ],
                )?;
            }
            Ok(version)
        })
    }

    fn model_versions(&self, model: Option<&str>) -> Result<Vec<ModelVersion>> {
        self.with_client(|c| {
            let rows = c.query(
                &format!(
                    "{VERSION_SELECT} WHERE ($1::text IS NULL OR s.model = $1)
                     ORDER BY s.model COLLATE \"C\", s.version DESC"
                ),
                &[&model],
            )?;
            rows.iter().map(model_version).collect()
        })
    }

    fn production(&self, model: &str) -> Result<Option<ModelVersion>> {
        self.with_client(|c| {
            let row = c.query_opt(
                &format!("{VERSION_SELECT} WHERE s.model = $1 AND s.stage = 'production'"),
                &[&model],
            )?;
            row.as_ref().map(model_version).transpose()
        })
    }

    fn set_stage(&self, change: &StageChange<'_>) -> Result<()> {
        self.tx(|c| {
            // Two promotions of one model at once would both archive the same outgoing
            // version; under the model's lock the second sees the first's result.
            lock(c, Scope::Artifact, change.model)?;
            let now = Utc::now();
            let from: Option<String> = c
                .query_opt(
                    "SELECT stage FROM model_stages WHERE model = $1 AND version = $2",
                    &[&change.model, &change.version],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let Some(from) = from else {
                return Err(StoreError::NotFound(format!(
                    "version {} of model `{}`",
                    change.version, change.model
                )));
            };
            let ledger = "INSERT INTO model_ledger
                   (model, version, from_stage, to_stage, at, actor, run_id, reason, evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
            // A version put where it already is (an automatic rollback to the production
            // version that never left) keeps its since and by: only the ledger hears of it.
            let update = "UPDATE model_stages SET stage = $3, since = $4, actor = $5, run_id = $6
                 WHERE model = $1 AND version = $2 AND stage <> $3";
            if change.to_stage == "production" {
                let outgoing: Option<i64> = c
                    .query_opt(
                        "SELECT version FROM model_stages
                         WHERE model = $1 AND stage = 'production' AND version != $2",
                        &[&change.model, &change.version],
                    )?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                if let Some(old) = outgoing {
                    let reason = format!("replaced in production by v{}", change.version);
                    c.execute(
                        update,
                        &[
                            &change.model,
                            &old,
                            &"archived",
                            &now,
                            &change.actor,
                            &change.run,
                        ],
                    )?;
                    c.execute(
                        ledger,
                        &[
                            &change.model,
                            &old,
                            &"production",
                            &"archived",
                            &now,
                            &change.actor,
                            &change.run,
                            &reason,
                            &serde_json::json!({}),
                        ],
                    )?;
                }
            }
            c.execute(
                update,
                &[
                    &change.model,
                    &change.version,
                    &change.to_stage,
                    &now,
                    &change.actor,
                    &change.run,
                ],
            )?;
            c.execute(
                ledger,
                &[
                    &change.model,
                    &change.version,
                    &from,
                    &change.to_stage,
                    &now,
                    &change.actor,
                    &change.run,
                    &change.reason,
                    change.evidence,
                ],
            )?;
            Ok(())
        })
    }

    fn ledger(&self, model: Option<&str>) -> Result<Vec<LedgerEntry>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT id, model, version, from_stage, to_stage, at, actor, run_id, reason, evidence
                 FROM model_ledger WHERE ($1::text IS NULL OR model = $1) ORDER BY id",
                &[&model],
            )?;
            rows.iter()
                .map(|row| {
                    Ok(LedgerEntry {
                    id: row.try_get(0)?,
                    model: row.try_get(1)?,
                    version: row.try_get(2)?,
                    from_stage: row.try_get(3)?,
                    to_stage: row.try_get(4)?,
                    at: row.try_get(5)?,
                    actor: row.try_get(6)?,
                    run_id: row.try_get(7)?,
                    reason: row.try_get(8)?,
                    evidence: row.try_get(9)?,
                    })
                })
                .collect()
        })
    }

    fn record_model_metrics(
        &self,
        model: &str,
        version: i64,
        eval_hash: &str,
        metrics: &[(String, f64)],
        run: RunId,
    ) -> Result<()> {
        self.tx(|c| {
            let now = Utc::now();
            let insert = c.prepare(
                "INSERT INTO model_metrics (model, version, eval_hash, name, value, run_id, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (model, version, eval_hash, name) DO UPDATE SET
                   value = excluded.value, run_id = excluded.run_id,
                   recorded_at = excluded.recorded_at",
            )?;
            for (name, value) in metrics {
                c.execute(
                    &insert,
                    &[&model, &version, &eval_hash, name, value, &run, &now],
                )?;
            }
            Ok(())
        })
    }

    fn model_metrics(&self, model: &str, version: i64) -> Result<Vec<(String, String, f64)>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT eval_hash, name, value FROM model_metrics WHERE model = $1 AND version = $2
                 ORDER BY recorded_at DESC, name COLLATE \"C\"",
                &[&model, &version],
            )?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
        })
    }

    fn set_rollout_stage(&self, s: &RolloutStage) -> Result<()> {
        self.tx(|c| {
            // One statement: a person's answer committed meanwhile is seen by the conflict
            // check, which re-reads the row it waited for.
            c.execute(
                "INSERT INTO rollout_stages
                   (run_id, task_id, stage, model, version, status, detail, evidence, decided_by,
                    reason, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (run_id, task_id, stage, version) DO UPDATE SET
                   model = excluded.model, status = excluded.status, detail = excluded.detail,
                   evidence = excluded.evidence, decided_by = excluded.decided_by,
                   reason = excluded.reason, updated_at = excluded.updated_at
                 WHERE rollout_stages.status NOT IN ('approved', 'rejected')",
                &[
                    &s.run_id,
                    &s.task_id,
                    &s.stage,
                    &s.model,
                    &s.version,
                    &s.status.as_str(),
                    &s.detail,
                    &s.evidence,
                    &s.decided_by,
                    &s.reason,
                    &s.updated_at,
                ],
            )?;
            Ok(())
        })
    }

    fn rollout_stages(&self, run: Option<RunId>) -> Result<Vec<RolloutStage>> {
        self.with_client(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {STAGE_COLUMNS} FROM rollout_stages
                     WHERE ($1::bigint IS NULL OR run_id = $1) ORDER BY run_id, seq"
                ),
                &[&run],
            )?;
            rows.iter().map(rollout_stage).collect()
        })
    }

    fn decide_rollout(
        &self,
        run: RunId,
        stage: Option<&str>,
        decision: Decision,
        by: &str,
        reason: Option<&str>,
    ) -> Result<Vec<RolloutStage>> {
        let status = decision.status().as_str();
        self.tx(|c| {
            // Two people answering at once: the second UPDATE waits for the first's rows, then
            // finds them no longer `waiting` and answers nothing.
            // RETURNING follows no order; SQLite's follows the table's, which `seq` keeps.
            let rows = c.query(
                &format!(
                    "WITH answered AS (
                         UPDATE rollout_stages SET status = $3, decided_by = $4, reason = $5,
                                                   updated_at = $6
                         WHERE run_id = $1 AND ($2::text IS NULL OR stage = $2)
                           AND status = 'waiting'
                           AND EXISTS (SELECT 1 FROM runs WHERE id = $1 AND state = 'running')
                         RETURNING *
                     )
                     SELECT {STAGE_COLUMNS} FROM answered ORDER BY seq"
                ),
                &[&run, &stage, &status, &by, &reason, &Utc::now()],
            )?;
            rows.iter().map(rollout_stage).collect()
        })
    }

    fn expire_waiting(&self, run: RunId, task_id: &str, detail: &str) -> Result<usize> {
        self.tx(|c| {
            let n = c.execute(
                "UPDATE rollout_stages SET status = 'expired', detail = $3, updated_at = $4
                 WHERE run_id = $1 AND task_id = $2 AND status = 'waiting'",
                &[&run, &task_id, &detail, &Utc::now()],
            )?;
            Ok(n as usize)
        })
    }

    fn claim_rollout_lock(
        &self,
        model: &str,
        run: RunId,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<RolloutLock>> {
        self.tx(|c| {
            // Without it, two attempts finding the lock free (no row yet) would both take it.
            lock(c, Scope::Rollout, model)?;
            let holder = c.query_opt(
                "SELECT l.model, l.run_id, l.task_id, l.attempt, l.since, r.state = 'running'
                 FROM rollout_locks l LEFT JOIN runs r ON r.id = l.run_id WHERE l.model = $1",
                &[&model],
            )?;
            if let Some(row) = holder {
                let (run_id, task): (RunId, String) = (row.try_get(1)?, row.try_get(2)?);
                let running = row.get::<_, Option<bool>>(5).unwrap_or(false);
                if running && !(run_id == run && task == task_id) {
                    return Ok(Some(RolloutLock {
                        model: row.try_get(0)?,
                        run_id,
                        task_id: task,
                        attempt: attempt_number(row.try_get(3)?)?,
                        since: row.try_get(4)?,
                    }));
                }
            }
            c.execute(
                "INSERT INTO rollout_locks (model, run_id, task_id, attempt, since)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (model) DO UPDATE SET run_id = excluded.run_id,
                   task_id = excluded.task_id, attempt = excluded.attempt, since = excluded.since",
                &[&model, &run, &task_id, &i64::from(attempt), &Utc::now()],
            )?;
            Ok(None)
        })
    }

    fn release_rollout_lock(&self, model: &str, run: RunId, task_id: &str) -> Result<()> {
        self.tx(|c| {
            c.execute(
                "DELETE FROM rollout_locks WHERE model = $1 AND run_id = $2 AND task_id = $3",
                &[&model, &run, &task_id],
            )?;
            Ok(())
        })
    }
}
