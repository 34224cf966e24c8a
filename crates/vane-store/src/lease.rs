//! Leases: how vane processes on different hosts know which of them are alive, and fencing
//! tokens: how a process that was presumed dead is kept from writing over its successor.
//!
//! Every process that executes runs holds a lease and renews it well within its time to live.
//! Expiry is judged by the database's clock alone: hosts' clocks disagree, a paused VM's clock
//! jumps, and a process on one host cannot ask another host whether a pid lives. A lease that
//! has expired is never renewed; its holder takes a new one, so whatever it owned under the old
//! one stays adoptable by others however the race between renewal and adoption goes.
//!
//! A run's owner holds a [`Fence`]: the run and a token that every claim and every adoption
//! raises. The owner's writes about the run carry it and are refused ([`StoreError::Fenced`])
//! once the token moved on or the owner's lease expired, so no attempt is ever recorded by two
//! owners (the bug behind riverqueue/river #1302 and apache/airflow #66713).

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{Change, Owner, Result, RunId};

/// The time to live of a lease unless configured (`[scheduler] lease_ttl` in `vane.toml`).
/// Renewed every third of it, a lease survives two lost renewals; a dead scheduler's runs are
/// adopted within this plus one recovery sweep (5 s): 25 s, against Airflow's 300 s default.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(20);

/// What kind of process holds a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseRole {
    Scheduler,
    /// `vane run`, `vane clear --foreground`, `vane backfill`: a person's command.
    Command,
    /// `vane agent`: runs attempts that need labels, for the runs' owners.
    Agent,
}

impl LeaseRole {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduler => "scheduler",
            Self::Command => "command",
            Self::Agent => "agent",
        }
    }
}

impl std::str::FromStr for LeaseRole {
    type Err = crate::StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scheduler" => Ok(Self::Scheduler),
            "command" => Ok(Self::Command),
            "agent" => Ok(Self::Agent),
            other => Err(crate::StoreError::Corrupt(format!("lease role `{other}`"))),
        }
    }
}

/// A lease to take.
#[derive(Debug, Clone)]
pub struct NewLease<'a> {
    /// Unique per process and generation: see [`lease_id`].
    pub id: &'a str,
    pub host: &'a str,
    pub pid: u32,
    pub role: LeaseRole,
    pub ttl: Duration,
}

/// The id of the `generation`th lease of a process: host, pid and its start time tell the
/// process apart, the generation the leases it took after losing one.
#[must_use]
pub fn lease_id(host: &str, pid: u32, started_at: DateTime<Utc>, generation: u32) -> String {
    format!(
        "{host}:{pid}:{}:{generation}",
        started_at.format("%Y%m%dT%H%M%S%.6fZ")
    )
}

/// The right to write about run `run` as its owner, while `token` is the run's and the owner's
/// lease lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub run: RunId,
    pub token: i64,
}

/// Where a lease stands, by the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Renewed in time: its holder is taken to be alive.
    Held,
    /// Not renewed in time: its holder is presumed dead, and what it owned is adopted.
    Expired,
    /// Given up at a clean exit.
    Released,
}

impl LeaseState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Expired => "expired",
            Self::Released => "released",
        }
    }
}

impl std::fmt::Display for LeaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lease as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub role: LeaseRole,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub state: LeaseState,
    /// Runs queued or running whose owner holds this lease.
    pub runs_owned: u64,
}

/// Takes, renews and gives up leases; claims runs away from owners whose lease expired; writes
/// as a run's owner only while the fence holds.
pub trait LeaseStore {
    /// Records a new lease, expiring `ttl` from now by the database's clock; when it expires.
    ///
    /// # Errors
    /// Fails when the database cannot be written, or the id was taken before.
    fn acquire_lease(&self, lease: &NewLease<'_>) -> Result<DateTime<Utc>>;

    /// Moves a lease's expiry to `ttl` from now, unless it expired or was released: then
    /// `None`, and the holder must stop acting on what it owned and take a new lease.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn renew_lease(&self, id: &str, ttl: Duration) -> Result<Option<DateTime<Utc>>>;

    /// Gives a lease up at a clean exit.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn release_lease(&self, id: &str) -> Result<()>;

    /// Every lease not released, and released ones of the last day: held first, then newest.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn leases(&self) -> Result<Vec<LeaseRecord>>;

    /// Makes `owner` (under lease `lease`) the owner of run `run` in place of the one whose
    /// token was `seen`, raising the token: a compare-and-set, so of two schedulers adopting
    /// the same run one wins and the other gets `None`, as does anyone when the run changed
    /// owner or finished since it was looked at.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn take_over(&self, run: RunId, seen: i64, owner: &Owner, lease: &str)
    -> Result<Option<Fence>>;

    /// [`crate::Store::apply`] as the owner holding `fence`: all the changes, or none and
    /// [`crate::StoreError::Fenced`] when the run's token moved on or the owner's lease is no
    /// longer held.
    ///
    /// # Errors
    /// As [`crate::Store::apply`], and [`crate::StoreError::Fenced`].
    fn apply_fenced(&self, fence: &Fence, changes: &[Change]) -> Result<()>;

    /// Several [`apply_fenced`](Self::apply_fenced) calls made durable by one commit: each
    /// checked against its own fence and kept or refused on its own (a savepoint each), so one
    /// owner's refusal never drops another's changes. What group commit writes; the answer
    /// is each call's result, in order.
    ///
    /// # Errors
    /// The commit itself failed: then none of them is recorded.
    fn apply_fenced_batch(&self, batch: &[(Fence, Vec<Change>)]) -> Result<Vec<Result<()>>> {
        Ok(batch
            .iter()
            .map(|(fence, changes)| self.apply_fenced(fence, changes))
            .collect())
    }
}
