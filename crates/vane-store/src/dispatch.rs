//! Attempts run by agents (`vane agent`) on other hosts: the queue they claim from and the
//! agents themselves.
//!
//! The run's owner puts an attempt in the queue with the labels a host must have; an agent
//! with those labels claims it under its own lease, raising the attempt's token, and every
//! write it makes about the attempt carries that token ([`crate::StoreError::Fenced`] when it
//! moved on or the agent's lease is gone). The owner reads the outcome back and records the
//! attempt exactly as it records one run on its own host, so the run's history has one writer.
//! An agent whose lease expired is presumed lost: the owner reaps its attempts, raising the
//! token so nothing the agent writes later counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Result, RunId};

/// An attempt to hand to an agent.
#[derive(Debug, Clone)]
pub struct NewDispatch<'a> {
    pub run: RunId,
    pub task: &'a str,
    pub attempt: u32,
    /// Which check of a sensor's attempt; 0 for other tasks.
    pub poke: u32,
    /// Labels the agent must have, each with this value.
    pub needs: &'a BTreeMap<String, String>,
    /// Higher first.
    pub priority: i64,
    /// What to run, as the run's owner describes it to agents.
    pub job: &'a Value,
}

/// An attempt an agent claimed, with the token its writes about it carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub token: i64,
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
    pub job: Value,
}

/// Where a dispatched attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchState {
    /// Waiting for an agent with the labels.
    Queued,
    /// Claimed by an agent.
    Running,
    /// Over: the outcome is set.
    Done,
}

impl DispatchState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
        }
    }
}

impl std::str::FromStr for DispatchState {
    type Err = crate::StoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            other => Err(crate::StoreError::Corrupt(format!(
                "dispatch state `{other}`"
            ))),
        }
    }
}

/// A dispatched attempt as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchRecord {
    pub id: i64,
    pub run: RunId,
    pub task: String,
    pub attempt: u32,
    pub needs: BTreeMap<String, String>,
    pub state: DispatchState,
    pub token: i64,
    /// The lease of the agent that claimed it, and that agent's host.
    pub agent_lease: Option<String>,
    pub agent_host: Option<String>,
    /// Whether that agent's lease is held, by the database's clock.
    pub agent_alive: bool,
    pub enqueued_at: DateTime<Utc>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub pid: Option<u32>,
    pub outcome: Option<Value>,
    pub cancel: bool,
}

/// An agent as recorded, with its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub lease: String,
    pub host: String,
    pub pid: u32,
    pub labels: BTreeMap<String, String>,
    pub slots: u32,
    /// Attempts it runs now.
    pub running: u32,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (lease renewal).
    pub renewed_at: DateTime<Utc>,
    pub state: crate::LeaseState,
}

impl AgentRecord {
    /// Whether this agent can run an attempt that needs `needs`.
    #[must_use]
    pub fn offers(&self, needs: &BTreeMap<String, String>) -> bool {
        offers(&self.labels, needs)
    }
}

/// Whether a host with `labels` has every label of `needs`, with its value.
#[must_use]
pub fn offers(labels: &BTreeMap<String, String>, needs: &BTreeMap<String, String>) -> bool {
    needs.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The queue of attempts for agents, and the agents.
pub trait DispatchStore {
    /// Records an agent under its lease (taken first with [`crate::LeaseStore::acquire_lease`]).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn register_agent(
        &self,
        lease: &str,
        host: &str,
        labels: &BTreeMap<String, String>,
        slots: u32,
    ) -> Result<()>;

    /// Agents whose lease is held, and those that stopped within the last day.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn agents(&self) -> Result<Vec<AgentRecord>>;

    /// Puts an attempt in the queue, or finds it there (one row per attempt and poke); its id.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn enqueue_dispatch(&self, new: &NewDispatch<'_>) -> Result<i64>;

    /// Claims up to `max` queued attempts that `labels` satisfy, highest priority first, for
    /// the agent holding `lease`; none when that lease is not held. Concurrent claimers never
    /// get the same attempt.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn claim_dispatches(
        &self,
        lease: &str,
        labels: &BTreeMap<String, String>,
        max: u32,
    ) -> Result<Vec<Claimed>>;

    /// Records the process an agent started for a claimed attempt.
    ///
    /// # Errors
    /// [`crate::StoreError::Fenced`] when the token moved on or the agent's lease is gone:
    /// the agent must kill the process.
    fn dispatch_started(
        &self,
        id: i64,
        token: i64,
        pid: u32,
        pid_start_time: Option<u64>,
    ) -> Result<()>;

    /// Records how a claimed attempt's process ended.
    ///
    /// # Errors
    /// [`crate::StoreError::Fenced`] when the token moved on or the agent's lease is gone:
    /// the outcome no longer counts.
    fn finish_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<()>;

    /// Of the attempts running under `lease`, those whose owner asked for them to be killed,
    /// and those taken away from it (reaped or claimed again): `(id, token)` as the agent
    /// should still hold them is not among what it gets back.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn dispatches_to_kill(&self, lease: &str, held: &[(i64, i64)]) -> Result<Vec<i64>>;

    /// The dispatched attempts `ids`, as they stand.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn dispatches(&self, ids: &[i64]) -> Result<Vec<DispatchRecord>>;

    /// Every attempt of run `run` handed to agents, done or not: where each ran.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn run_dispatches(&self, run: RunId) -> Result<Vec<DispatchRecord>>;

    /// Dispatched attempts not yet done, for `vane show` and `vane agents`.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn open_dispatches(&self) -> Result<Vec<DispatchRecord>>;

    /// Asks for an attempt to be killed: a queued one is done at once with `outcome`; a running
    /// one is flagged for its agent, which kills the process and reports. True when it was
    /// still queued.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn cancel_dispatch(&self, id: i64, outcome: &Value) -> Result<bool>;

    /// Ends a running attempt whose agent's lease is no longer held, with `outcome`, raising the
    /// token so the agent's late writes are refused; a compare-and-set on `token`. False when it
    /// moved on, the agent is alive after all, or the row is locked by a write still in
    /// flight (the caller tries again later).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn reap_dispatch(&self, id: i64, token: i64, outcome: &Value) -> Result<bool>;

    /// Records a chunk of a dispatched attempt's log that its agent put in the storage at
    /// `key`; from then on readers see it, after the chunks recorded before.
    ///
    /// # Errors
    /// [`crate::StoreError::Fenced`] when the token moved on or the agent's lease is gone: the
    /// chunk is not part of the log.
    fn add_log_chunk(&self, id: i64, token: i64, key: &str, bytes: u64) -> Result<()>;

    /// Records a chunk the run's owner added to the log of an attempt run by an agent (why it
    /// timed out, why its outcome could not be recorded).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn add_owner_log_chunk(&self, of: &LogChunkOf<'_>, key: &str, bytes: u64) -> Result<()>;

    /// The chunks of an attempt's log recorded after chunk `after` (0: all), in order.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn log_chunks(&self, of: &LogChunkOf<'_>, after: i64) -> Result<Vec<LogChunk>>;
}

/// The attempt a log chunk belongs to.
#[derive(Debug, Clone, Copy)]
pub struct LogChunkOf<'a> {
    pub run: RunId,
    pub task: &'a str,
    pub attempt: u32,
}

/// A chunk of a log kept in the storage, in the order the log was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub id: i64,
    /// Its key in the storage.
    pub key: String,
    pub bytes: u64,
}

/// Calls `wake` whenever an attempt is handed to agents on the database at `url`, until the
/// connection fails: a hint that lets an idle agent claim at once instead of at its next poll
/// (PostgreSQL's `LISTEN`, on a connection of its own; blocks the calling thread). Agents poll
/// anyway, so a lost notification costs one poll interval. With SQLite there is nothing to
/// listen to: `Ok(false)` at once.
///
/// # Errors
/// The connection could not be made or failed.
pub fn wait_for_dispatches(url: &str, wake: &dyn Fn()) -> Result<bool> {
    if crate::BackendKind::of(url) != crate::BackendKind::Postgresql {
        return Ok(false);
    }
    crate::postgres::listen(url, "vane_dispatch", wake)?;
    Ok(true)
}
