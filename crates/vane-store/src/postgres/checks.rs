//! Check results, profiles and runs marked good on PostgreSQL.

use postgres::Row;

use super::PgStore;
use super::values::{attempt_number, json_without_nul, parse_enum, without_nul};
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
    WHERE e.dag_id = $1 AND e.task_id = $2 AND e.run_id != $3
      AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                       WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
      AND (e.passed OR EXISTS (SELECT 1 FROM good_runs g WHERE g.run_id = e.run_id))";

fn result_from_row(row: &Row, first: usize) -> Result<CheckResult> {
    let offending: serde_json::Value = row.try_get(first + 8)?;
    let offending: Vec<(u64, String)> = serde_json::from_value(offending.clone())
        .map_err(|e| StoreError::Corrupt(format!("offending rows `{offending}`: {e}")))?;
    Ok(CheckResult {
        name: row.try_get(first)?,
        column: row.try_get(first + 1)?,
        severity: row.try_get(first + 2)?,
        status: parse_enum(row.try_get(first + 3)?)?,
        observed: row.try_get(first + 4)?,
        bound: row.try_get(first + 5)?,
        derivation: row.try_get(first + 6)?,
        detail: row.try_get(first + 7)?,
        offending,
        definition_hash: row.try_get(first + 9)?,
    })
}

/// Whether run `run` exists, as a check that reads as "not found" rather than a foreign key
/// violation.
fn run_exists(c: &mut postgres::Client, run: RunId) -> Result<()> {
    match c.query_opt("SELECT 1 FROM runs WHERE id = $1", &[&run])? {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound(format!("run {run}"))),
    }
}

impl CheckStore for PgStore {
    fn record_check_evaluation(&self, e: &NewCheckEvaluation<'_>) -> Result<()> {
        let profile: serde_json::Value = serde_json::from_str(e.profile)
            .map_err(|err| StoreError::Corrupt(format!("a column profile: {err}")))?;
        let profile = json_without_nul(profile);
        let attempt = i64::from(e.attempt);
        // Shown values come from the dataset, which may hold what PostgreSQL cannot.
        let text = |t: &Option<String>| t.as_deref().map(without_nul);
        let results = e
            .results
            .iter()
            .map(|r| {
                let offending: Vec<(u64, String)> = r
                    .offending
                    .iter()
                    .map(|(row, shown)| (*row, without_nul(shown)))
                    .collect();
                let offending = serde_json::to_value(offending)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                let texts = [without_nul(&r.name), without_nul(&r.detail)];
                Ok((
                    r,
                    texts,
                    text(&r.column),
                    text(&r.bound),
                    text(&r.derivation),
                    offending,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.tx(|c| {
            run_exists(c, e.run)?;
            // The evaluation's row first: its lock makes a second recording of the same
            // attempt wait, then replace this one's results rather than collide with them.
            c.execute(
                "INSERT INTO check_evaluations
                    (run_id, task_id, attempt, dag_id, passed, profile, evaluated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET
                    dag_id = excluded.dag_id, passed = excluded.passed,
                    profile = excluded.profile, evaluated_at = excluded.evaluated_at",
                &[
                    &e.run, &e.task_id, &attempt, &e.dag_id, &e.passed, &profile, &e.at,
                ],
            )?;
            // A validate attempt evaluates once; recording it again replaces what it recorded.
            c.execute(
                "DELETE FROM check_results WHERE run_id = $1 AND task_id = $2 AND attempt = $3",
                &[&e.run, &e.task_id, &attempt],
            )?;
            let insert = c.prepare(
                "INSERT INTO check_results
                    (run_id, task_id, attempt, position, name, column_name, severity, status,
                     observed, bound, derivation, detail, offending, definition_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )?;
            for (position, (r, [name, detail], column, bound, derivation, offending)) in
                results.iter().enumerate()
            {
                c.execute(
                    &insert,
                    &[
                        &e.run,
                        &e.task_id,
                        &attempt,
                        &(position as i64),
                        name,
                        column,
                        &r.severity,
                        &r.status.as_str(),
                        // NaN or infinity is stored as none, as the SQLite backend stores it.
                        &r.observed.filter(|v| v.is_finite()),
                        bound,
                        derivation,
                        detail,
                        offending,
                        &r.definition_hash,
                    ],
                )?;
            }
            Ok(())
        })
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
             WHERE r.name = $4 AND r.definition_hash = $5 AND r.observed IS NOT NULL
             ORDER BY l.evaluated_at DESC, l.run_id DESC
             LIMIT $6"
        );
        let mut values: Vec<(RunId, f64)> = self.with_client(|c| {
            c.query(
                &sql,
                &[
                    &from.dag_id,
                    &from.task_id,
                    &from.exclude_run,
                    &name,
                    &definition_hash,
                    &(window as i64),
                ],
            )?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
        })?;
        values.reverse();
        Ok(values)
    }

    fn baseline_profile(&self, from: &LearnFrom<'_>) -> Result<Option<(RunId, String)>> {
        let sql = format!(
            "SELECT l.run_id, l.profile::text FROM ({LEARNABLE}) l
             ORDER BY l.evaluated_at DESC, l.run_id DESC LIMIT 1"
        );
        self.with_client(|c| {
            c.query_opt(&sql, &[&from.dag_id, &from.task_id, &from.exclude_run])?
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .transpose()
        })
    }

    fn check_history(
        &self,
        dag_id: &str,
        task_id: Option<&str>,
        last_runs: usize,
    ) -> Result<Vec<CheckHistoryEntry>> {
        // NULL is no limit.
        let limit = (last_runs > 0).then_some(last_runs as i64);
        let rows = self.with_client(|c| {
            Ok(c.query(
                "WITH latest AS (
                     SELECT e.run_id, e.task_id, e.attempt, e.evaluated_at FROM check_evaluations e
                     WHERE e.dag_id = $1 AND ($2::text IS NULL OR e.task_id = $2)
                       AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                                        WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
                 ),
                 picked AS (SELECT DISTINCT run_id FROM latest ORDER BY run_id DESC LIMIT $3)
                 SELECT l.run_id, runs.logical_date, l.task_id, l.attempt, l.evaluated_at,
                        EXISTS (SELECT 1 FROM good_runs g WHERE g.run_id = l.run_id),
                        r.name, r.column_name, r.severity, r.status, r.observed, r.bound,
                        r.derivation, r.detail, r.offending, r.definition_hash
                 FROM latest l
                 JOIN picked p ON p.run_id = l.run_id
                 JOIN runs ON runs.id = l.run_id
                 JOIN check_results r
                   ON r.run_id = l.run_id AND r.task_id = l.task_id AND r.attempt = l.attempt
                 ORDER BY l.run_id DESC, l.task_id COLLATE \"C\", r.position",
                &[&dag_id, &task_id, &limit],
            )?)
        })?;
        rows.iter()
            .map(|row| {
                Ok(CheckHistoryEntry {
                    run: row.try_get(0)?,
                    logical_date: row.try_get(1)?,
                    task_id: row.try_get(2)?,
                    attempt: attempt_number(row.try_get(3)?)?,
                    evaluated_at: row.try_get(4)?,
                    marked_good: row.try_get(5)?,
                    result: result_from_row(row, 6)?,
                })
            })
            .collect()
    }

    fn run_checks(&self, run: RunId) -> Result<Vec<(String, u32, CheckResult)>> {
        let rows = self.with_client(|c| {
            Ok(c.query(
                "SELECT e.task_id, e.attempt,
                        r.name, r.column_name, r.severity, r.status, r.observed, r.bound,
                        r.derivation, r.detail, r.offending, r.definition_hash
                 FROM check_evaluations e
                 JOIN check_results r
                   ON r.run_id = e.run_id AND r.task_id = e.task_id AND r.attempt = e.attempt
                 WHERE e.run_id = $1
                   AND e.attempt = (SELECT MAX(x.attempt) FROM check_evaluations x
                                    WHERE x.run_id = e.run_id AND x.task_id = e.task_id)
                 ORDER BY e.task_id COLLATE \"C\", r.position",
                &[&run],
            )?)
        })?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    attempt_number(row.try_get(1)?)?,
                    result_from_row(row, 2)?,
                ))
            })
            .collect()
    }

    fn mark_good(&self, mark: &GoodMark) -> Result<()> {
        self.tx(|c| {
            run_exists(c, mark.run)?;
            c.execute(
                "INSERT INTO good_runs (run_id, marked_by, marked_at, reason) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id) DO UPDATE SET marked_by = excluded.marked_by,
                    marked_at = excluded.marked_at, reason = excluded.reason",
                &[&mark.run, &mark.by, &mark.at, &mark.reason],
            )?;
            Ok(())
        })
    }

    fn good_mark(&self, run: RunId) -> Result<Option<GoodMark>> {
        self.with_client(|c| {
            c.query_opt(
                "SELECT marked_by, marked_at, reason FROM good_runs WHERE run_id = $1",
                &[&run],
            )?
            .map(|row| {
                Ok(GoodMark {
                    run,
                    by: row.try_get(0)?,
                    at: row.try_get(1)?,
                    reason: row.try_get(2)?,
                })
            })
            .transpose()
        })
    }
}
