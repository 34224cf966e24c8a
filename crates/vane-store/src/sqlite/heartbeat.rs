use rusqlite::{Connection, params};

use super::{SqliteStore, parse_ts, ts};
use crate::heartbeat::{Heartbeat, HeartbeatStore, PassStats, SchedulerRecord, scheduler_id};
use crate::{Result, StoreError};

impl HeartbeatStore for SqliteStore {
    fn record_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<()> {
        let passes = beat.passes;
        let bounds = serde_json::Value::from(passes.bounds.clone()).to_string();
        let counts = serde_json::Value::from(passes.counts.clone()).to_string();
        let at = ts(&beat.at);
        // Like a batch of pids, a heartbeat only matters while the machine stays up: skipping
        // the fsync keeps a heartbeat's cost off the disk.
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = self
            .conn
            .prepare_cached(
                "INSERT INTO schedulers (id, host, pid, started_at, last_heartbeat, stopped_at,
                                         passes, pass_seconds_sum, pass_bounds, pass_counts,
                                         last_pass_seconds, lease_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?6 THEN ?5 END, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET
                     last_heartbeat = excluded.last_heartbeat,
                     stopped_at = excluded.stopped_at,
                     passes = excluded.passes,
                     pass_seconds_sum = excluded.pass_seconds_sum,
                     pass_bounds = excluded.pass_bounds,
                     pass_counts = excluded.pass_counts,
                     last_pass_seconds = excluded.last_pass_seconds,
                     lease_id = excluded.lease_id",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    scheduler_id(beat.host, beat.pid, beat.started_at),
                    beat.host,
                    beat.pid,
                    ts(&beat.started_at),
                    at,
                    beat.stopped,
                    passes.count as i64,
                    passes.sum,
                    bounds,
                    counts,
                    passes.last,
                    beat.lease,
                ])
            });
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written?;
        Ok(())
    }

    fn schedulers(&self) -> Result<Vec<SchedulerRecord>> {
        read(&self.conn)
    }
}

/// Every scheduler row; also read by [`super::observe`] inside its transaction.
pub(super) fn read(conn: &Connection) -> Result<Vec<SchedulerRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host, pid, started_at, last_heartbeat, stopped_at, passes, pass_seconds_sum,
                pass_bounds, pass_counts, last_pass_seconds, lease_id
         FROM schedulers ORDER BY stopped_at IS NOT NULL, last_heartbeat DESC, id",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let corrupt = |e: serde_json::Error| {
            StoreError::Corrupt(format!("pass histogram of scheduler {id}: {e}"))
        };
        let bounds: Vec<f64> = serde_json::from_str(&row.get::<_, String>(8)?).map_err(corrupt)?;
        let counts: Vec<u64> = serde_json::from_str(&row.get::<_, String>(9)?).map_err(corrupt)?;
        if bounds.len() != counts.len() {
            return Err(StoreError::Corrupt(format!(
                "pass histogram of scheduler {id}: {} bounds but {} counts",
                bounds.len(),
                counts.len()
            )));
        }
        out.push(SchedulerRecord {
            host: row.get(1)?,
            pid: row.get(2)?,
            started_at: parse_ts(&row.get::<_, String>(3)?)?,
            last_heartbeat: parse_ts(&row.get::<_, String>(4)?)?,
            stopped_at: row
                .get::<_, Option<String>>(5)?
                .map(|t| parse_ts(&t))
                .transpose()?,
            passes: PassStats {
                bounds,
                counts,
                count: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
                sum: row.get(7)?,
                last: row.get(10)?,
            },
            lease: row.get(11)?,
            id,
        });
    }
    Ok(out)
}
