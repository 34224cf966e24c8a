use rusqlite::{Connection, Row};

use super::SqliteStore;
use crate::Result;
use crate::heartbeat::SchedulerSummary;
use crate::observe::{Histogram, Observation, ObserveStore};

impl ObserveStore for SqliteStore {
    fn observe(&self, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation> {
        let conn = &self.conn;
        // One read transaction: the counters of one scrape agree with each other.
        conn.execute_batch("BEGIN")?;
        let observed = read(conn, duration_bounds, lag_bounds);
        conn.execute_batch("COMMIT")?;
        observed
    }
}

fn read(conn: &Connection, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation> {
    Ok(Observation {
        runs: triples(
            conn,
            "SELECT dag_id, state, count(*) FROM runs WHERE state IN ('success', 'failed')
             GROUP BY dag_id, state ORDER BY 1, 2",
        )?,
        attempts: triples(
            conn,
            "SELECT runs.dag_id, a.state, count(*) FROM attempts a JOIN runs ON runs.id = a.run_id
             WHERE a.state != 'running' GROUP BY 1, 2 ORDER BY 1, 2",
        )?,
        task_durations: histograms(
            conn,
            "SELECT runs.dag_id, (julianday(a.ended_at) - julianday(a.started_at)) * 86400.0
             FROM attempts a JOIN runs ON runs.id = a.run_id WHERE a.ended_at IS NOT NULL",
            duration_bounds,
        )?,
        start_lag: histograms(
            conn,
            "SELECT dag_id, (julianday(started_at) - julianday(logical_date)) * 86400.0
             FROM runs WHERE trigger = 'scheduled' AND started_at IS NOT NULL",
            lag_bounds,
        )?,
        queued_runs: conn.query_row(
            "SELECT count(*) FROM runs WHERE state = 'queued'",
            [],
            |r| count(r, 0),
        )?,
        // attempts_by_end indexes ended_at: the running ones are those without an end.
        running_tasks: conn.query_row(
            "SELECT count(*) FROM attempts WHERE ended_at IS NULL",
            [],
            |r| count(r, 0),
        )?,
        sla_misses: pairs(
            conn,
            "SELECT runs.dag_id, count(*) FROM sla_misses s JOIN runs ON runs.id = s.run_id
             GROUP BY 1 ORDER BY 1",
        )?,
        check_failures: triples(
            conn,
            "SELECT e.dag_id, r.severity, count(*) FROM check_results r
             JOIN check_evaluations e USING (run_id, task_id, attempt)
             WHERE r.status IN ('fail', 'warn') GROUP BY 1, 2 ORDER BY 1, 2",
        )?,
        alerts_fired: pairs(
            conn,
            "SELECT rule, sum(count) FROM alerts GROUP BY rule ORDER BY rule",
        )?,
        schedulers: Box::new(SchedulerSummary::of(
            &super::heartbeat::read(conn)?,
            chrono::Utc::now(),
        )),
    })
}

fn triples(conn: &Connection, sql: &str) -> Result<Vec<(String, String, u64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, count(r, 2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn pairs(conn: &Connection, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, count(r, 1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `sql` yields (DAG, seconds); the rows are counted into buckets here, one pass, rather than
/// one SQL sum per bucket.
fn histograms(conn: &Connection, sql: &str, bounds: &[f64]) -> Result<Vec<Histogram>> {
    let mut stmt = conn.prepare_cached(&format!("{sql} ORDER BY 1"))?;
    let mut rows = stmt.query([])?;
    let mut out: Vec<Histogram> = Vec::new();
    while let Some(row) = rows.next()? {
        let dag_id: String = row.get(0)?;
        let seconds: f64 = row.get::<_, Option<f64>>(1)?.unwrap_or(0.0).max(0.0);
        if out.last().is_none_or(|h| h.dag_id != dag_id) {
            out.push(Histogram {
                dag_id,
                counts: vec![0; bounds.len()],
                count: 0,
                sum: 0.0,
            });
        }
        let h = out.last_mut().expect("pushed above");
        for (count, bound) in h.counts.iter_mut().zip(bounds) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }
    Ok(out)
}

/// SQLite counts are signed; a count is never negative.
fn count(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}
