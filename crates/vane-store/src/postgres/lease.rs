use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{PgStore, to_u32};
use crate::lease::{Fence, LeaseRecord, LeaseState, LeaseStore, NewLease};
use crate::types::{Change, Owner, RunId};
use crate::{Result, StoreError};

/// Whether the lease of a run's owner is held, as a column of a query over `runs`. The clock is
/// the server's, read when the statement runs (`now()` would be the transaction's start).
pub(super) const OWNER_LEASE_HELD: &str = "(SELECT l.released_at IS NULL
        AND l.expires_at > clock_timestamp()
     FROM leases AS l WHERE l.id = runs.owner_lease)";

/// Why a write as `fence`'s owner was refused (by `vane_apply`, under the run's row lock),
/// given the run's fencing `token` then: another process took the run over, or the owner's
/// lease was no longer held.
pub(super) fn refusal(fence: &Fence, token: i64) -> StoreError {
    let why = if token == fence.token {
        "this process's lease expired or was given up".to_owned()
    } else {
        format!(
            "another process took it over (fencing token {token}, ours {})",
            fence.token
        )
    };
    StoreError::Fenced {
        run: fence.run,
        why,
    }
}

fn interval(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

impl LeaseStore for PgStore {
    fn acquire_lease(&self, lease: &NewLease<'_>) -> Result<DateTime<Utc>> {
        let (id, host, pid, role) = (
            lease.id,
            lease.host,
            i64::from(lease.pid),
            lease.role.as_str(),
        );
        let ttl = interval(lease.ttl);
        self.tx(move |c| {
            // Leases gone a day and owning nothing are forgotten: every `vane run` takes one.
            c.execute(
                "DELETE FROM leases WHERE expires_at < clock_timestamp() - interval '1 day'
                   AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.owner_lease = leases.id)",
                &[],
            )?;
            c.execute(
                "DELETE FROM agents WHERE lease_id NOT IN (SELECT id FROM leases)",
                &[],
            )?;
            let row = c.query_one(
                "INSERT INTO leases (id, host, pid, role, acquired_at, renewed_at, expires_at)
                 VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp(),
                         clock_timestamp() + make_interval(secs => $5))
                 RETURNING expires_at",
                &[&id, &host, &pid, &role, &ttl],
            )?;
            Ok(row.try_get(0)?)
        })
    }

    fn renew_lease(&self, id: &str, ttl: Duration) -> Result<Option<DateTime<Utc>>> {
        let ttl = interval(ttl);
        self.with_client(move |c| {
            let row = c.query_opt(
                "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $2),
                                   renewed_at = clock_timestamp()
                 WHERE id = $1 AND released_at IS NULL AND expires_at > clock_timestamp()
                 RETURNING expires_at",
                &[&id, &ttl],
            )?;
            row.map(|r| Ok(r.try_get(0)?)).transpose()
        })
    }

    fn release_lease(&self, id: &str) -> Result<()> {
        self.with_client(move |c| {
            c.execute(
                "UPDATE leases SET released_at = clock_timestamp(),
                                   expires_at = LEAST(expires_at, clock_timestamp())
                 WHERE id = $1 AND released_at IS NULL",
                &[&id],
            )?;
            Ok(())
        })
    }

    fn leases(&self) -> Result<Vec<LeaseRecord>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT id, host, pid, role, acquired_at, renewed_at, expires_at,
                        released_at IS NOT NULL, expires_at > clock_timestamp(),
                        (SELECT count(*) FROM runs WHERE runs.owner_lease = leases.id
                           AND runs.state IN ('queued', 'running'))
                 FROM leases
                 WHERE expires_at > clock_timestamp() - interval '1 day'
                 ORDER BY released_at IS NULL AND expires_at > clock_timestamp() DESC,
                          acquired_at DESC, id COLLATE \"C\"",
                &[],
            )?;
            rows.iter()
                .map(|row| {
                    let (released, live): (bool, bool) = (row.try_get(7)?, row.try_get(8)?);
                    Ok(LeaseRecord {
                        id: row.try_get(0)?,
                        host: row.try_get(1)?,
                        pid: to_u32(row.try_get(2)?, "pid of a lease holder")?,
                        role: row.try_get::<_, String>(3)?.parse()?,
                        acquired_at: row.try_get(4)?,
                        renewed_at: row.try_get(5)?,
                        expires_at: row.try_get(6)?,
                        state: match (released, live) {
                            (true, _) => LeaseState::Released,
                            (false, true) => LeaseState::Held,
                            (false, false) => LeaseState::Expired,
                        },
                        runs_owned: u64::try_from(row.try_get::<_, i64>(9)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    fn take_over(
        &self,
        run: RunId,
        seen: i64,
        owner: &Owner,
        lease: &str,
    ) -> Result<Option<Fence>> {
        let (host, pid, start) = (
            owner.host.as_str(),
            i64::from(owner.pid),
            owner.start_time.map(|t| t as i64),
        );
        self.with_client(move |c| {
            // Of two schedulers adopting at once, the second waits for the first's row lock,
            // then finds the token raised and changes nothing.
            let row = c.query_opt(
                "UPDATE runs SET owner_host = $3, owner_pid = $4, owner_start_time = $5,
                    owner_lease = $6, owner_token = owner_token + 1
                 WHERE id = $1 AND owner_token = $2 AND state IN ('queued', 'running')
                 RETURNING owner_token",
                &[&run, &seen, &host, &pid, &start, &lease],
            )?;
            row.map(|r| {
                Ok(Fence {
                    run,
                    token: r.try_get(0)?,
                })
            })
            .transpose()
        })
    }

    fn apply_fenced(&self, fence: &Fence, changes: &[Change]) -> Result<()> {
        self.apply_as(Some(fence), changes)
    }

    fn apply_fenced_batch(&self, batch: &[(Fence, Vec<Change>)]) -> Result<Vec<Result<()>>> {
        let groups: Vec<_> = batch
            .iter()
            .map(|(fence, changes)| (Some(fence), changes.as_slice()))
            .collect();
        self.apply_groups(&groups)
    }
}
