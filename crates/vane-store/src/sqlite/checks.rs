use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, parse_ts, ts};
use crate::checks::{
    CheckHistoryEntry, CheckResult, CheckStore, GoodMark, LearnFrom, NewCheckEvaluation,
};
use crate::{Result, RunId, StoreError};

/// The evaluations values are learned from: the latest evaluated attempt of each other run of
/// the task, when it passed or its run was marked good. A failed attempt followed by a passing
/// rerun counts as the rerun; a failed attempt alone does not count.
const LEARNABLE: &str = "
    SELECT e.run_id, e.task_id, e.attempt, e.evaluated_at, e.profile
    FROM check_evaluations e
    WHERE e.dag_id = ?1 AND e.task_id = ?2 AND e.run_id != ?3
      AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                       WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
      AND (e.passed = 1 OR EXISTS (SELECT 1 FROM good_runs g WHERE g.run_id = e.run_id))";

fn result_from_row(row: &rusqlite::Row<'_>, first: usize) -> Result<CheckResult> {
    let status: String = row.get(first + 3)?;
    let offending: String = row.get(first + 8)?;
    let offending: Vec<(u64, String)> = serde_json::from_str(&offending)
        .map_err(|e| StoreError::Corrupt(format!("offending rows `{offending}`: {e}")))?;
    Ok(CheckResult {
        name: row.get(first)?,
        column: row.get(first + 1)?,
        severity: row.get(first + 2)?,
        status: status.parse().map_err(StoreError::Corrupt)?,
        observed: row.get(first + 4)?,
        bound: row.get(first + 5)?,
        derivation: row.get(first + 6)?,
        detail: row.get(first + 7)?,
        offending,
        definition_hash: row.get(first + 9)?,
    })
}

impl CheckStore for SqliteStore {
    fn record_check_evaluation(&self, e: &NewCheckEvaluation<'_>) -> Result<()> {
        let tx = self.write_tx()?;
        let exists: bool = tx
            .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
            .query_row(params![e.run], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("run {}", e.run)));
        }
        // A validate attempt evaluates once; recording it again replaces what it recorded.
        tx.prepare_cached(
            "DELETE FROM check_results WHERE run_id = ?1 AND task_id = ?2 AND attempt = ?3",
        )?
        .execute(params![e.run, e.task_id, e.attempt])?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO check_evaluations
                (run_id, task_id, attempt, dag_id, passed, profile, evaluated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            e.run,
            e.task_id,
            e.attempt,
            e.dag_id,
            e.passed,
            e.profile,
            ts(&e.at)
        ])?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO check_results
                (run_id, task_id, attempt, position, name, column_name, severity, status,
                 observed, bound, derivation, detail, offending, definition_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for (position, r) in e.results.iter().enumerate() {
            let offending = serde_json::to_string(&r.offending)
                .map_err(|err| StoreError::Corrupt(err.to_string()))?;
            insert.execute(params![
                e.run,
                e.task_id,
                e.attempt,
                position as i64,
                r.name,
                r.column,
                r.severity,
                r.status.as_str(),
                r.observed.filter(|v| v.is_finite()),
                r.bound,
                r.derivation,
                r.detail,
                offending,
                r.definition_hash
            ])?;
        }
        drop(insert);
        tx.commit()?;
        Ok(())
    }

    fn learnable_values(
        &self,
        from: &LearnFrom<'_>,
        name: &str,
        definition_hash: &str,
        window: usize,
    ) -> Result<Vec<(RunId, f64)>> {
        let sql = format!(
            "SELECT l.run_id, r.observed FROM ({LEARNABLE}) l
             JOIN check_results r
               ON r.run_id = l.run_id AND r.task_id = l.task_id AND r.attempt = l.attempt
             WHERE r.name = ?4 AND r.definition_hash = ?5 AND r.observed IS NOT NULL
             ORDER BY l.evaluated_at DESC, l.run_id DESC
             LIMIT ?6"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut values = stmt
            .query_map(
                params![
                    from.dag_id,
                    from.task_id,
                    from.exclude_run,
                    name,
                    definition_hash,
                    window as i64
                ],
                |row| Ok((row.get::<_, RunId>(0)?, row.get::<_, f64>(1)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        values.reverse();
        Ok(values)
    }

    fn baseline_profile(&self, from: &LearnFrom<'_>) -> Result<Option<(RunId, String)>> {
        let sql = format!(
            "SELECT l.run_id, l.profile FROM ({LEARNABLE}) l
             ORDER BY l.evaluated_at DESC, l.run_id DESC LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(
                params![from.dag_id, from.task_id, from.exclude_run],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    fn check_history(
        &self,
        dag_id: &str,
        task_id: Option<&str>,
        last_runs: usize,
    ) -> Result<Vec<CheckHistoryEntry>> {
        let limit = if last_runs == 0 { -1 } else { last_runs as i64 };
        let mut stmt = self.conn.prepare_cached(
            "WITH latest AS (
                 SELECT e.run_id, e.task_id, e.attempt, e.evaluated_at FROM check_evaluations e
                 WHERE e.dag_id = ?1 AND (?2 IS NULL OR e.task_id = ?2)
                   AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                                    WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
             ),
             picked AS (SELECT DISTINCT run_id FROM latest ORDER BY run_id DESC LIMIT ?3)
             SELECT l.run_id, runs.logical_date, l.task_id, l.attempt, l.evaluated_at,
                    EXISTS (SELECT 1 FROM good_runs g WHERE g.run_id = l.run_id),
                    r.name, r.column_name, r.severity, r.status, r.observed, r.bound,
                    r.derivation, r.detail, r.offending, r.definition_hash
             FROM latest l
             JOIN picked p ON p.run_id = l.run_id
             JOIN runs ON runs.id = l.run_id
             JOIN check_results r
               ON r.run_id = l.run_id AND r.task_id = l.task_id AND r.attempt = l.attempt
             ORDER BY l.run_id DESC, l.task_id, r.position",
        )?;
        let mut rows = stmt.query(params![dag_id, task_id, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let logical: String = row.get(1)?;
            let at: String = row.get(4)?;
            out.push(CheckHistoryEntry {
                run: row.get(0)?,
                logical_date: parse_ts(&logical)?,
                task_id: row.get(2)?,
                attempt: row.get(3)?,
                evaluated_at: parse_ts(&at)?,
                marked_good: row.get(5)?,
                result: result_from_row(row, 6)?,
            });
        }
        Ok(out)
    }

    fn run_checks(&self, run: RunId) -> Result<Vec<(String, u32, CheckResult)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.task_id, e.attempt,
                    r.name, r.column_name, r.severity, r.status, r.observed, r.bound,
                    r.derivation, r.detail, r.offending, r.definition_hash
             FROM check_evaluations e
             JOIN check_results r
               ON r.run_id = e.run_id AND r.task_id = e.task_id AND r.attempt = e.attempt
             WHERE e.run_id = ?1
               AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                                WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
             ORDER BY e.task_id, r.position",
        )?;
        let mut rows = stmt.query(params![run])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((row.get(0)?, row.get(1)?, result_from_row(row, 2)?));
        }
        Ok(out)
    }

    fn mark_good(&self, mark: &GoodMark) -> Result<()> {
        let tx = self.write_tx()?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
            .query_row(params![mark.run], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("run {}", mark.run)));
        }
        tx.prepare_cached(
            "INSERT INTO good_runs (run_id, marked_by, marked_at, reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id) DO UPDATE SET marked_by = ?2, marked_at = ?3, reason = ?4",
        )?
        .execute(params![mark.run, mark.by, ts(&mark.at), mark.reason])?;
        tx.commit()?;
        Ok(())
    }

    fn good_mark(&self, run: RunId) -> Result<Option<GoodMark>> {
        let row = self
            .conn
            .prepare_cached("SELECT marked_by, marked_at, reason FROM good_runs WHERE run_id = ?1")?
            .query_row(params![run], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .optional()?;
        row.map(|(by, at, reason)| {
            Ok(GoodMark {
                run,
                by,
                at: parse_ts(&at)?,
                reason,
            })
        })
        .transpose()
    }
}
