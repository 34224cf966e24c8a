use ::postgres::Client;

use super::{PgStore, to_u32};
use crate::heartbeat::{Heartbeat, HeartbeatStore, PassStats, SchedulerRecord, scheduler_id};
use crate::{Result, StoreError};

impl HeartbeatStore for PgStore {
    fn record_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<()> {
        let passes = beat.passes;
        let bounds = serde_json::Value::from(passes.bounds.clone());
        let counts = serde_json::Value::from(passes.counts.clone());
        let id = scheduler_id(beat.host, beat.pid, beat.started_at);
        let (host, pid, count) = (beat.host, i64::from(beat.pid), passes.count as i64);
        let (started_at, at, stopped) = (beat.started_at, beat.at, beat.stopped);
        let (sum, last, lease) = (passes.sum, passes.last, beat.lease);
        self.tx(move |c| {
            // A heartbeat lost to a crash of the server costs nothing (the next one replaces
            // it), so its commit does not wait for the disk, as SQLite's skips the fsync.
            c.batch_execute("SET LOCAL synchronous_commit TO off")?;
            c.execute(
                "INSERT INTO schedulers (id, host, pid, started_at, last_heartbeat, stopped_at,
                                         passes, pass_seconds_sum, pass_bounds, pass_counts,
                                         last_pass_seconds, lease_id)
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN $5::timestamptz END,
                         $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO UPDATE SET
                     last_heartbeat = excluded.last_heartbeat,
                     stopped_at = excluded.stopped_at,
                     passes = excluded.passes,
                     pass_seconds_sum = excluded.pass_seconds_sum,
                     pass_bounds = excluded.pass_bounds,
                     pass_counts = excluded.pass_counts,
                     last_pass_seconds = excluded.last_pass_seconds,
                     lease_id = excluded.lease_id",
                &[
                    &id,
                    &host,
                    &pid,
                    &started_at,
                    &at,
                    &stopped,
                    &count,
                    &sum,
                    &bounds,
                    &counts,
                    &last,
                    &lease,
                ],
            )?;
            Ok(())
        })
    }

    fn schedulers(&self) -> Result<Vec<SchedulerRecord>> {
        self.with_client(read)
    }
}

/// Every scheduler row, for [`HeartbeatStore::schedulers`] and for the observe summary, which
/// reads them inside its own transaction.
pub(crate) fn read(c: &mut Client) -> Result<Vec<SchedulerRecord>> {
    let rows = c.query(
        "SELECT id, host, pid, started_at, last_heartbeat, stopped_at, passes, pass_seconds_sum,
                pass_bounds, pass_counts, last_pass_seconds, lease_id
         FROM schedulers ORDER BY stopped_at IS NOT NULL, last_heartbeat DESC, id COLLATE \"C\"",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0)?;
        let corrupt = |e: serde_json::Error| {
            StoreError::Corrupt(format!("pass histogram of scheduler {id}: {e}"))
        };
        let bounds: Vec<f64> = serde_json::from_value(row.try_get(8)?).map_err(corrupt)?;
        let counts: Vec<u64> = serde_json::from_value(row.try_get(9)?).map_err(corrupt)?;
        if bounds.len() != counts.len() {
            return Err(StoreError::Corrupt(format!(
                "pass histogram of scheduler {id}: {} bounds but {} counts",
                bounds.len(),
                counts.len()
            )));
        }
        out.push(SchedulerRecord {
            host: row.try_get(1)?,
            pid: to_u32(row.try_get(2)?, "pid of a scheduler")?,
            started_at: row.try_get(3)?,
            last_heartbeat: row.try_get(4)?,
            stopped_at: row.try_get(5)?,
            passes: PassStats {
                bounds,
                counts,
                count: u64::try_from(row.try_get::<_, i64>(6)?).unwrap_or(0),
                sum: row.try_get(7)?,
                last: row.try_get(10)?,
            },
            lease: row.try_get(11)?,
            id,
        });
    }
    Ok(out)
}
