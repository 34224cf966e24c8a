use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, parse_ts, ts};
use crate::lease::{Fence, LeaseRecord, LeaseState, LeaseStore, NewLease};
use crate::types::{Change, Owner, RunId};
use crate::{Result, StoreError};

/// The database's clock, in Unix seconds: SQLite's `now` is fixed for the whole statement.
const NOW: &str = "((julianday('now') - 2440587.5) * 86400.0)";

/// Whether the lease of a run's owner is held, as a column of a query over `runs`.
pub(super) const OWNER_LEASE_HELD: &str = "(SELECT l.released_at IS NULL
        AND l.expires_at > ((julianday('now') - 2440587.5) * 86400.0)
     FROM leases AS l WHERE l.id = runs.owner_lease)";

/// Leases gone this long, owning nothing, are forgotten.
const FORGET_AFTER_SECS: f64 = 24.0 * 3600.0;

fn seconds(at: f64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros((at * 1e6) as i64)
        .ok_or_else(|| StoreError::Corrupt(format!("lease expiry {at}")))
}

/// Refuses a write as `fence`'s owner once the run's token moved on or the owner's lease is no
/// longer held; inside the caller's transaction, so nothing can adopt the run in between.
pub(super) fn check_fence(c: &Connection, fence: &Fence) -> Result<()> {
    let found: Option<(i64, Option<bool>)> = c
        .prepare_cached(&format!(
            "SELECT owner_token, {OWNER_LEASE_HELD} FROM runs WHERE id = ?1"
        ))?
        .query_row(params![fence.run], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let why = match found {
        None => return Err(StoreError::NotFound(format!("run {}", fence.run))),
        Some((token, _)) if token != fence.token => {
            format!(
                "another process took it over (fencing token {token}, ours {})",
                fence.token
            )
        }
        Some((_, Some(true))) => return Ok(()),
        Some(_) => "this process's lease expired or was given up".to_owned(),
    };
    Err(StoreError::Fenced {
        run: fence.run,
        why,
    })
}

impl LeaseStore for SqliteStore {
    fn acquire_lease(&self, lease: &NewLease<'_>) -> Result<DateTime<Utc>> {
        let now = ts(&Utc::now());
        let tx = self.write_tx()?;
        tx.prepare_cached(&format!(
            "DELETE FROM leases WHERE expires_at < {NOW} - ?1
               AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.owner_lease = leases.id)"
        ))?
        .execute(params![FORGET_AFTER_SECS])?;
        tx.prepare_cached("DELETE FROM agents WHERE lease_id NOT IN (SELECT id FROM leases)")?
            .execute([])?;
        let expires: f64 = tx
            .prepare_cached(&format!(
                "INSERT INTO leases (id, host, pid, role, acquired_at, renewed_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, {NOW} + ?6)
                 RETURNING expires_at"
            ))?
            .query_row(
                params![
                    lease.id,
                    lease.host,
                    lease.pid,
                    lease.role.as_str(),
                    now,
                    lease.ttl.as_secs_f64()
                ],
                |row| row.get(0),
            )?;
        tx.commit()?;
        seconds(expires)
    }

    fn renew_lease(&self, id: &str, ttl: Duration) -> Result<Option<DateTime<Utc>>> {
        let expires: Option<f64> = self
            .conn
            .prepare_cached(&format!(
                "UPDATE leases SET expires_at = {NOW} + ?2, renewed_at = ?3
                 WHERE id = ?1 AND released_at IS NULL AND expires_at > {NOW}
                 RETURNING expires_at"
            ))?
            .query_row(params![id, ttl.as_secs_f64(), ts(&Utc::now())], |row| {
                row.get(0)
            })
            .optional()?;
        expires.map(seconds).transpose()
    }

    fn release_lease(&self, id: &str) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "UPDATE leases SET released_at = ?2, expires_at = MIN(expires_at, {NOW})
                 WHERE id = ?1 AND released_at IS NULL"
            ))?
            .execute(params![id, ts(&Utc::now())])?;
        Ok(())
    }

    fn leases(&self) -> Result<Vec<LeaseRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, host, pid, role, acquired_at, renewed_at, expires_at,
                    released_at IS NOT NULL, expires_at > {NOW},
                    (SELECT count(*) FROM runs WHERE runs.owner_lease = leases.id
                       AND runs.state IN ('queued', 'running'))
             FROM leases
             WHERE expires_at > {NOW} - ?1
             ORDER BY released_at IS NULL AND expires_at > {NOW} DESC, acquired_at DESC, id"
        ))?;
        let mut rows = stmt.query(params![FORGET_AFTER_SECS])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let (released, live): (bool, bool) = (row.get(7)?, row.get(8)?);
            out.push(LeaseRecord {
                id: row.get(0)?,
                host: row.get(1)?,
                pid: row.get(2)?,
                role: row.get::<_, String>(3)?.parse()?,
                acquired_at: parse_ts(&row.get::<_, String>(4)?)?,
                renewed_at: parse_ts(&row.get::<_, String>(5)?)?,
                expires_at: seconds(row.get(6)?)?,
                state: match (released, live) {
                    (true, _) => LeaseState::Released,
                    (false, true) => LeaseState::Held,
                    (false, false) => LeaseState::Expired,
                },
                runs_owned: row.get::<_, i64>(9)?.max(0) as u64,
            });
        }
        Ok(out)
    }

    fn take_over(
        &self,
        run: RunId,
        seen: i64,
        owner: &Owner,
        lease: &str,
    ) -> Result<Option<Fence>> {
        let token = self
            .conn
            .prepare_cached(
                "UPDATE runs SET owner_host = ?3, owner_pid = ?4, owner_start_time = ?5,
                    owner_lease = ?6, owner_token = owner_token + 1
                 WHERE id = ?1 AND owner_token = ?2 AND state IN ('queued', 'running')
                 RETURNING owner_token",
            )?
            .query_row(
                params![
                    run,
                    seen,
                    owner.host,
                    owner.pid,
                    owner.start_time.map(|t| t as i64),
                    lease
                ],
                |row| row.get(0),
            )
            .optional()?;
        Ok(token.map(|token| Fence { run, token }))
    }

    fn apply_fenced(&self, fence: &Fence, changes: &[Change]) -> Result<()> {
        self.apply_as(Some(fence), changes)
    }

    fn apply_fenced_batch(&self, batch: &[(Fence, Vec<Change>)]) -> Result<Vec<Result<()>>> {
        let tx = self.write_tx()?;
        // Nested in `tx`, each is a savepoint: a refused one is undone alone.
        let results = batch
            .iter()
            .map(|(fence, changes)| self.apply_as(Some(fence), changes))
            .collect();
        tx.commit()?;
        Ok(results)
    }
}
