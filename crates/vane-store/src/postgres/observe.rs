//! Monitoring totals on PostgreSQL.

use postgres::Client;

use super::PgStore;
use super::values::unsigned;
use crate::Result;
use crate::heartbeat::SchedulerSummary;
use crate::observe::{Histogram, Observation, ObserveStore};

impl ObserveStore for PgStore {
    fn observe(&self, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation> {
        // One snapshot: the counters of one scrape agree with each other although schedulers
        // write meanwhile. Nested in a caller's transaction, it reads what that one sees.
        let outer = self.depth.get() == 0;
        self.tx(|c| {
            if outer {
                c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            }
            read(c, duration_bounds, lag_bounds)
        })
    }
}

fn read(c: &mut Client, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation> {
    Ok(Observation {
        runs: triples(
            c,
            "SELECT dag_id, state, count(*) FROM runs WHERE state IN ('success', 'failed')
             GROUP BY dag_id, state ORDER BY dag_id COLLATE \"C\", state COLLATE \"C\"",
        )?,
        attempts: triples(
            c,
            "SELECT runs.dag_id, a.state, count(*) FROM attempts a JOIN runs ON runs.id = a.run_id
             WHERE a.state != 'running' GROUP BY runs.dag_id, a.state
             ORDER BY runs.dag_id COLLATE \"C\", a.state COLLATE \"C\"",
        )?,
        task_durations: histograms(
            c,
            "SELECT runs.dag_id, EXTRACT(EPOCH FROM a.ended_at - a.started_at)::double precision
             FROM attempts a JOIN runs ON runs.id = a.run_id WHERE a.ended_at IS NOT NULL
             ORDER BY runs.dag_id COLLATE \"C\"",
            duration_bounds,
        )?,
        start_lag: histograms(
            c,
            "SELECT dag_id, EXTRACT(EPOCH FROM started_at - logical_date)::double precision
             FROM runs WHERE trigger = 'scheduled' AND started_at IS NOT NULL
             ORDER BY dag_id COLLATE \"C\"",
            lag_bounds,
        )?,
        queued_runs: unsigned(
            c.query_one("SELECT count(*) FROM runs WHERE state = 'queued'", &[])?
                .get(0),
        )?,
        // attempts_by_end indexes ended_at: the running ones are those without an end.
        running_tasks: unsigned(
            c.query_one("SELECT count(*) FROM attempts WHERE ended_at IS NULL", &[])?
                .get(0),
        )?,
        sla_misses: pairs(
            c,
            "SELECT runs.dag_id, count(*) FROM sla_misses s JOIN runs ON runs.id = s.run_id
             GROUP BY runs.dag_id ORDER BY runs.dag_id COLLATE \"C\"",
        )?,
        check_failures: triples(
            c,
            "SELECT e.dag_id, r.severity, count(*) FROM check_results r
             JOIN check_evaluations e USING (run_id, task_id, attempt)
             WHERE r.status IN ('fail', 'warn') GROUP BY e.dag_id, r.severity
             ORDER BY e.dag_id COLLATE \"C\", r.severity COLLATE \"C\"",
        )?,
        // sum() of bigint is numeric: back to bigint, which a count of alerts always fits.
        alerts_fired: pairs(
            c,
            "SELECT rule, sum(count)::bigint FROM alerts GROUP BY rule ORDER BY rule COLLATE \"C\"",
        )?,
        schedulers: Box::new(SchedulerSummary::of(
            &super::heartbeat::read(c)?,
            chrono::Utc::now(),
        )),
    })
}

fn triples(c: &mut Client, sql: &str) -> Result<Vec<(String, String, u64)>> {
    c.query(sql, &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, unsigned(r.try_get(2)?)?)))
        .collect()
}

fn pairs(c: &mut Client, sql: &str) -> Result<Vec<(String, u64)>> {
    c.query(sql, &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, unsigned(r.try_get(1)?)?)))
        .collect()
}

/// `sql` yields (DAG, seconds), by DAG; the rows are counted into buckets here, one pass,
/// rather than one SQL sum per bucket.
fn histograms(c: &mut Client, sql: &str, bounds: &[f64]) -> Result<Vec<Histogram>> {
    let rows = c.query(sql, &[])?;
    let mut out: Vec<Histogram> = Vec::new();
    for row in &rows {
        let dag_id: String = row.try_get(0)?;
        let seconds: f64 = row.get::<_, Option<f64>>(1).unwrap_or(0.0).max(0.0);
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
