//! Metric series on PostgreSQL.

use super::PgStore;
use super::values::{attempt_number, parse_enum};
use crate::Result;
use crate::metrics::{MetricFilter, MetricPoint, MetricStore};

impl MetricStore for PgStore {
    fn metric_series(&self, filter: &MetricFilter<'_>) -> Result<Vec<MetricPoint>> {
        // NULL keeps every point.
        let last = (filter.last > 0).then_some(filter.last as i64);
        let rows = self.with_client(|c| {
            Ok(c.query(
                "SELECT run_id, logical_date, state, task_id, attempt, name, value, recorded_at
                 FROM (
                     SELECT m.run_id, runs.logical_date, runs.state, m.task_id, m.attempt, m.name,
                            m.value, m.recorded_at,
                            row_number() OVER (
                                PARTITION BY m.task_id, m.name
                                ORDER BY m.recorded_at DESC, m.run_id DESC, m.attempt DESC
                            ) AS age
                     FROM metrics m JOIN runs ON runs.id = m.run_id
                     WHERE runs.dag_id = $1
                       AND ($2::text IS NULL OR m.task_id = $2)
                       AND ($3::text IS NULL OR m.name = $3)
                 ) AS series
                 WHERE $4::bigint IS NULL OR age <= $4
                 ORDER BY task_id COLLATE \"C\", name COLLATE \"C\", recorded_at, run_id, attempt",
                &[&filter.dag_id, &filter.task, &filter.name, &last],
            )?)
        })?;
        rows.iter()
            .map(|row| {
                Ok(MetricPoint {
                    run: row.try_get(0)?,
                    logical_date: row.try_get(1)?,
                    run_state: parse_enum(row.try_get(2)?)?,
                    task_id: row.try_get(3)?,
                    attempt: attempt_number(row.try_get(4)?)?,
                    name: row.try_get(5)?,
                    value: row.try_get(6)?,
                    recorded_at: row.try_get(7)?,
                })
            })
            .collect()
    }
}
