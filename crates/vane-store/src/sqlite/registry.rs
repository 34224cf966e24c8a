use chrono::Utc;
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

use super::{SqliteStore, parse_enum, parse_ts, ts};
use crate::registry::{
    LedgerEntry, ModelVersion, NewModelVersion, RegistryStore, RolloutLock, RolloutStage,
    StageChange,
};
use crate::{Decision, Result, RunId, StoreError};

const VERSION_SELECT: &str =
    "SELECT s.model, s.version, a.hash, a.path, a.stored, s.stage, s.since, s.actor, s.run_id
     FROM model_stages s JOIN artifact_versions a ON a.id = s.artifact_id";

fn model_version(row: &Row<'_>) -> Result<ModelVersion> {
    Ok(ModelVersion {
        model: row.get(0)?,
        version: row.get(1)?,
        hash: row.get(2)?,
        path: row.get(3)?,
        stored: row.get(4)?,
        stage: row.get(5)?,
        since: parse_ts(&row.get::<_, String>(6)?)?,
        actor: row.get(7)?,
        run_id: row.get(8)?,
    })
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("evidence `{text}`: {e}")))
}

fn rollout_stage(row: &Row<'_>) -> Result<RolloutStage> {
    Ok(RolloutStage {
        run_id: row.get("run_id")?,
        task_id: row.get("task_id")?,
        stage: row.get("stage")?,
        model: row.get("model")?,
        version: row.get("version")?,
        status: parse_enum(&row.get::<_, String>("status")?)?,
        detail: row.get("detail")?,
        evidence: json(&row.get::<_, String>("evidence")?)?,
        decided_by: row.get("decided_by")?,
        reason: row.get("reason")?,
        updated_at: parse_ts(&row.get::<_, String>("updated_at")?)?,
    })
}

impl RegistryStore for SqliteStore {
    fn register_model_version(&self, new: &NewModelVersion<'_>) -> Result<i64> {
        let tx = self.write_tx()?;
        let now = ts(&Utc::now());
        let found: Option<(i64, i64)> = tx
            .prepare_cached(
                "SELECT id, version FROM artifact_versions WHERE name = ?1 AND hash = ?2",
            )?
            .query_row(params![new.model, new.hash], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (artifact_id, version) = match found {
            Some(found) => {
                if let Some(stored) = new.stored {
                    tx.prepare_cached(
                        "UPDATE artifact_versions SET stored = ?2 WHERE id = ?1 AND stored IS NULL",
                    )?
                    .execute(params![found.0, stored])?;
                }
                found
            }
            None => {
                let version: i64 = tx
                    .prepare_cached(
                        "SELECT COALESCE(MAX(version), 0) + 1 FROM artifact_versions WHERE name = ?1",
                    )?
                    .query_row(params![new.model], |r| r.get(0))?;
                // The rollout read the candidate, it did not make it: the producer is the
                // attempt that wrote the same content as an output, if one did, else unknown.
                tx.prepare_cached(
                    "INSERT INTO artifact_versions
                       (name, version, hash, kind, size, path, stored, created_at, run_id, task_id, attempt)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, p.run_id, p.task_id, p.attempt
                     FROM (SELECT 1) LEFT JOIN (
                         SELECT run_id, task_id, attempt FROM artifact_versions
                         WHERE hash = ?3 AND run_id IS NOT NULL ORDER BY id LIMIT 1
                     ) p",
                )?
                .execute(params![
                    new.model,
                    version,
                    new.hash,
                    new.kind,
                    new.size as i64,
                    new.path,
                    new.stored,
                    now
                ])?;
                (tx.last_insert_rowid(), version)
            }
        };
        let actor = format!("run {}", new.run);
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO model_stages (model, version, artifact_id, stage, since, actor, run_id)
                 VALUES (?1, ?2, ?3, 'registered', ?4, ?5, ?6)",
            )?
            .execute(params![new.model, version, artifact_id, now, actor, new.run])?;
        if inserted > 0 {
            tx.prepare_cached(
                "INSERT INTO model_ledger (model, version, from_stage, to_stage, at, actor, run_id, reason)
                 VALUES (?1, ?2, NULL, 'registered', ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                new.model,
                version,
                now,
                actor,
                new.run,
                format!("candidate {} of task `{}`", new.path, new.task_id)
            ])?;
        }
        tx.commit()?;
        Ok(version)
    }

    fn model_versions(&self, model: Option<&str>) -> Result<Vec<ModelVersion>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{VERSION_SELECT} WHERE (?1 IS NULL OR s.model = ?1) ORDER BY s.model, s.version DESC"
        ))?;
        let mut rows = stmt.query(params![model])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(model_version(row)?);
        }
        Ok(out)
    }

    fn production(&self, model: &str) -> Result<Option<ModelVersion>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{VERSION_SELECT} WHERE s.model = ?1 AND s.stage = 'production'"
        ))?;
        let mut rows = stmt.query(params![model])?;
        match rows.next()? {
            Some(row) => Ok(Some(model_version(row)?)),
            None => Ok(None),
        }
    }

    fn set_stage(&self, change: &StageChange<'_>) -> Result<()> {
        let tx = self.write_tx()?;
        let now = ts(&Utc::now());
        let from: Option<String> = tx
            .prepare_cached("SELECT stage FROM model_stages WHERE model = ?1 AND version = ?2")?
            .query_row(params![change.model, change.version], |r| r.get(0))
            .optional()?;
        let Some(from) = from else {
            return Err(StoreError::NotFound(format!(
                "version {} of model `{}`",
                change.version, change.model
            )));
        };
        let mut ledger = tx.prepare_cached(
            "INSERT INTO model_ledger (model, version, from_stage, to_stage, at, actor, run_id, reason, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut update = tx.prepare_cached(
            // A version put where it already is (an automatic rollback to the production
            // version that never left) keeps its since and by: only the ledger hears of it.
            "UPDATE model_stages SET stage = ?3, since = ?4, actor = ?5, run_id = ?6
             WHERE model = ?1 AND version = ?2 AND stage != ?3",
        )?;
        if change.to_stage == "production" {
            let outgoing: Option<i64> = tx
                .prepare_cached(
                    "SELECT version FROM model_stages WHERE model = ?1 AND stage = 'production' AND version != ?2",
                )?
                .query_row(params![change.model, change.version], |r| r.get(0))
                .optional()?;
            if let Some(old) = outgoing {
                let reason = format!("replaced in production by v{}", change.version);
                update.execute(params![
                    change.model,
                    old,
                    "archived",
                    now,
                    change.actor,
                    change.run
                ])?;
                ledger.execute(params![
                    change.model,
                    old,
                    "production",
                    "archived",
                    now,
                    change.actor,
                    change.run,
                    reason,
                    "{}"
                ])?;
            }
        }
        update.execute(params![
            change.model,
            change.version,
            change.to_stage,
            now,
            change.actor,
            change.run
        ])?;
        ledger.execute(params![
            change.model,
            change.version,
            from,
            change.to_stage,
            now,
            change.actor,
            change.run,
            change.reason,
            change.evidence.to_string()
        ])?;
        drop(ledger);
        drop(update);
        tx.commit()?;
        Ok(())
    }

    fn ledger(&self, model: Option<&str>) -> Result<Vec<LedgerEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, model, version, from_stage, to_stage, at, actor, run_id, reason, evidence
             FROM model_ledger WHERE (?1 IS NULL OR model = ?1) ORDER BY id",
        )?;
        let mut rows = stmt.query(params![model])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(LedgerEntry {
                id: row.get(0)?,
                model: row.get(1)?,
                version: row.get(2)?,
                from_stage: row.get(3)?,
                to_stage: row.get(4)?,
                at: parse_ts(&row.get::<_, String>(5)?)?,
                actor: row.get(6)?,
                run_id: row.get(7)?,
                reason: row.get(8)?,
                evidence: json(&row.get::<_, String>(9)?)?,
            });
        }
        Ok(out)
    }

    fn record_model_metrics(
        &self,
        model: &str,
        version: i64,
        eval_hash: &str,
        metrics: &[(String, f64)],
        run: RunId,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let now = ts(&Utc::now());
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO model_metrics (model, version, eval_hash, name, value, run_id, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (name, value) in metrics {
                insert.execute(params![model, version, eval_hash, name, value, run, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn model_metrics(&self, model: &str, version: i64) -> Result<Vec<(String, String, f64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT eval_hash, name, value FROM model_metrics WHERE model = ?1 AND version = ?2
             ORDER BY recorded_at DESC, name",
        )?;
        let rows = stmt.query_map(params![model, version], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_rollout_stage(&self, s: &RolloutStage) -> Result<()> {
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "INSERT INTO rollout_stages
               (run_id, task_id, stage, model, version, status, detail, evidence, decided_by, reason, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (run_id, task_id, stage, version) DO UPDATE SET
               model = ?4, status = ?6, detail = ?7, evidence = ?8, decided_by = ?9, reason = ?10,
               updated_at = ?11
             WHERE rollout_stages.status NOT IN ('approved', 'rejected')",
        )?
        .execute(params![
            s.run_id,
            s.task_id,
            s.stage,
            s.model,
            s.version,
            s.status.as_str(),
            s.detail,
            s.evidence.to_string(),
            s.decided_by,
            s.reason,
            ts(&s.updated_at)
        ])?;
        tx.commit()?;
        Ok(())
    }

    fn rollout_stages(&self, run: Option<RunId>) -> Result<Vec<RolloutStage>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT * FROM rollout_stages WHERE (?1 IS NULL OR run_id = ?1) ORDER BY run_id, rowid",
        )?;
        let mut rows = stmt.query(params![run])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(rollout_stage(row)?);
        }
        Ok(out)
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
        let tx = self.write_tx()?;
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE rollout_stages SET status = ?3, decided_by = ?4, reason = ?5, updated_at = ?6
                 WHERE run_id = ?1 AND (?2 IS NULL OR stage = ?2) AND status = 'waiting'
                   AND EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND state = 'running')
                 RETURNING *",
            )?;
            let mut rows = stmt.query(params![run, stage, status, by, reason, ts(&Utc::now())])?;
            while let Some(row) = rows.next()? {
                out.push(rollout_stage(row)?);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn expire_waiting(&self, run: RunId, task_id: &str, detail: &str) -> Result<usize> {
        let tx = self.write_tx()?;
        let n = tx
            .prepare_cached(
                "UPDATE rollout_stages SET status = 'expired', detail = ?3, updated_at = ?4
                 WHERE run_id = ?1 AND task_id = ?2 AND status = 'waiting'",
            )?
            .execute(params![run, task_id, detail, ts(&Utc::now())])?;
        tx.commit()?;
        Ok(n)
    }

    fn claim_rollout_lock(
        &self,
        model: &str,
        run: RunId,
        task_id: &str,
        attempt: u32,
    ) -> Result<Option<RolloutLock>> {
        let tx = self.write_tx()?;
        let holder = tx
            .prepare_cached(
                "SELECT l.model, l.run_id, l.task_id, l.attempt, l.since, r.state = 'running'
                 FROM rollout_locks l LEFT JOIN runs r ON r.id = l.run_id WHERE l.model = ?1",
            )?
            .query_row(params![model], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, RunId>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                ))
            })
            .optional()?;
        if let Some((model, run_id, task, attempt, since, running)) = holder
            && running
            && !(run_id == run && task == task_id)
        {
            return Ok(Some(RolloutLock {
                model,
                run_id,
                task_id: task,
                attempt,
                since: parse_ts(&since)?,
            }));
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO rollout_locks (model, run_id, task_id, attempt, since)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![model, run, task_id, attempt, ts(&Utc::now())])?;
        tx.commit()?;
        Ok(None)
    }

    fn release_rollout_lock(&self, model: &str, run: RunId, task_id: &str) -> Result<()> {
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "DELETE FROM rollout_locks WHERE model = ?1 AND run_id = ?2 AND task_id = ?3",
        )?
        .execute(params![model, run, task_id])?;
        tx.commit()?;
        Ok(())
    }
}
