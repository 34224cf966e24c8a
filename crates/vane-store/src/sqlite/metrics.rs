use super::{SqliteStore, parse_enum, parse_ts};
use crate::Result;
use crate::metrics::{MetricFilter, MetricPoint, MetricStore};

impl MetricStore for SqliteStore {
    fn metric_series(&self, filter: &MetricFilter<'_>) -> Result<Vec<MetricPoint>> {
        let last = if filter.last == 0 {
            -1
        } else {
            filter.last as i64
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT run_id, logical_date, state, task_id, attempt, name, value, recorded_at
             FROM (
                 SELECT m.run_id, runs.logical_date, runs.state, m.task_id, m.attempt, m.name,
                        m.value, m.recorded_at,
                        row_number() OVER (
                            PARTITION BY m.task_id, m.name
                            ORDER BY m.recorded_at DESC, m.run_id DESC, m.attempt DESC
                        ) AS age
                 FROM metrics m JOIN runs ON runs.id = m.run_id
                 WHERE runs.dag_id = ?1
                   AND (?2 IS NULL OR m.task_id = ?2)
                   AND (?3 IS NULL OR m.name = ?3)
             )
             WHERE ?4 < 0 OR age <= ?4
             ORDER BY task_id, name, recorded_at, run_id, attempt",
        )?;
        let mut rows = stmt.query(rusqlite::params![
            filter.dag_id,
            filter.task,
            filter.name,
            last
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(MetricPoint {
                run: row.get(0)?,
                logical_date: parse_ts(&row.get::<_, String>(1)?)?,
                run_state: parse_enum(&row.get::<_, String>(2)?)?,
                task_id: row.get(3)?,
                attempt: row.get(4)?,
                name: row.get(5)?,
                value: row.get(6)?,
                recorded_at: parse_ts(&row.get::<_, String>(7)?)?,
            });
        }
        Ok(out)
    }
}
