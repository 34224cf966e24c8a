//! Alerts: the events of the recorded history they are derived from, and the alerts themselves
//! with their counts, acknowledgements, verdicts and notifications.

use chrono::{DateTime, Utc};

use crate::{DagVersionId, Result, RunId};

/// What happened, as found in the history. The first kinds can raise alerts; the rest resolve
/// them or count as an action taken on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    RunFailed,
    /// A task failed after its last retry.
    TaskFailed,
    SlaMissed,
    /// A check of severity `warn` failed.
    CheckWarn,
    /// A check of severity `error` failed.
    CheckFailed,
    /// A model version moved to `failed`: its rollout's gate failed or it was rejected.
    GateFailed,
    /// A sensor's attempt ended because it waited past its timeout.
    SensorTimeout,
    /// A rollout has waited for a person's approval longer than a rule allows (not read from
    /// the history by time, but looked up as it stands: see
    /// [`AlertStore::approvals_waiting`]).
    ApprovalWaiting,
    /// An attempt has waited for an agent with its labels longer than a rule allows (looked up
    /// as it stands, like [`EventKind::ApprovalWaiting`]: see [`AlertStore::agents_waiting`]).
    AgentWaiting,
    RunSucceeded,
    TaskSucceeded,
    CheckPassed,
    /// A person cleared a task to rerun it.
    TaskCleared,
    /// A person put a model version in production by hand (`vane rollback`, `vane promote`).
    ManualRollback,
}

/// One event of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    /// Unique and stable: the same event read twice has the same key.
    pub key: String,
    pub kind: EventKind,
    pub dag_id: String,
    pub task_id: Option<String>,
    /// A check's name or a model's name, when the event is about one.
    pub subject: Option<String>,
    pub run: Option<RunId>,
    pub dag_version: Option<DagVersionId>,
    /// One sentence a person reads.
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }
}

impl std::str::FromStr for AlertState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "open" => AlertState::Open,
            "acknowledged" => AlertState::Acknowledged,
            "resolved" => AlertState::Resolved,
            other => return Err(format!("unknown alert state `{other}`")),
        })
    }
}

/// Whether an alert deserved attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Real,
    Noise,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Real => "real",
            Verdict::Noise => "noise",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "real" => Verdict::Real,
            "noise" => Verdict::Noise,
            other => return Err(format!("unknown verdict `{other}`")),
        })
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: i64,
    pub rule: String,
    /// The rule's `on`.
    pub kind: String,
    pub severity: String,
    pub dag_id: String,
    pub task_id: Option<String>,
    pub subject: Option<String>,
    pub state: AlertState,
    pub summary: String,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub first_run: Option<RunId>,
    pub last_run: Option<RunId>,
    pub last_dag_version: Option<DagVersionId>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    pub acked_at: Option<DateTime<Utc>>,
    pub verdict: Option<Verdict>,
    /// `person`, `clear`, `rollback` or `fix`.
    pub verdict_source: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// When a notification of it was last delivered: its cooldown starts there.
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Its latest notification (to any channel), delivered or not; `None` before the first.
    pub delivery: Option<NotificationRecord>,
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Delivered,
    /// A try failed; it is tried again at `next_try_at`.
    Pending,
    /// Given up on, with why: its alert resolved before it could be delivered.
    Abandoned,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Pending => "pending",
            DeliveryState::Abandoned => "abandoned",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "delivered" => DeliveryState::Delivered,
            "pending" => DeliveryState::Pending,
            "abandoned" => DeliveryState::Abandoned,
            other => return Err(format!("unknown delivery state `{other}`")),
        })
    }
}

/// One alert's notification to one channel (a grouped notification is one per alert).
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub id: i64,
    pub alert_id: i64,
    pub rule: String,
    pub channel: String,
    /// When it was first tried.
    pub at: DateTime<Utc>,
    pub state: DeliveryState,
    /// Tries made so far, the first included.
    pub attempts: i64,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Pending: when the next try is due, or while an evaluator holds it, when that claim
    /// lapses. A claimed notification's value is the claim's token for
    /// [`AlertStore::finish_notifications`].
    pub next_try_at: Option<DateTime<Utc>>,
    /// The last failed try's error.
    pub error: Option<String>,
    pub abandoned_why: Option<String>,
}

/// A first try that failed: recorded pending, tried again at `retry_at`.
#[derive(Debug, Clone, Copy)]
pub struct Undelivered<'a> {
    pub error: &'a str,
    pub retry_at: DateTime<Utc>,
}

/// What became of claimed notifications.
#[derive(Debug, Clone, Copy)]
pub enum DeliveryOutcome<'a> {
    /// Delivered now: the alerts' cooldowns start.
    Delivered,
    /// This try failed too; the next is due at `retry_at`.
    Failed {
        error: &'a str,
        retry_at: DateTime<Utc>,
    },
    /// Not tried now (the alert is snoozed); tried at `until`, no try counted.
    Postponed { until: DateTime<Utc> },
    /// Given up on, and why.
    Abandoned { why: &'a str },
}

/// An event matched by a rule: opens an alert, or adds to the unresolved one with its key.
#[derive(Debug, Clone)]
pub struct AlertOccurrence<'a> {
    pub rule: &'a str,
    pub kind: &'a str,
    pub severity: &'a str,
    pub dag_id: &'a str,
    pub task_id: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub summary: &'a str,
    pub run: Option<RunId>,
    pub dag_version: Option<DagVersionId>,
    pub at: DateTime<Utc>,
    /// An alert with the same key that a successful run resolved at or after this time is
    /// reopened rather than a new one opened: a task that flaps between failing and passing
    /// stays one alert with a count.
    pub reopen_since: Option<DateTime<Utc>>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter {
    /// Resolved ones too.
    pub all: bool,
}

/// Records and reads alerts.
pub trait AlertStore {
    /// Events of the history at or after `since`, oldest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn history_events(&self, since: DateTime<Utc>) -> Result<Vec<HistoryEvent>>;

    /// Rollout stages waiting for a person since before `before`, as
    /// [`EventKind::ApprovalWaiting`] events stamped with when the wait began, oldest first;
    /// the key names the run, task, stage and the start of the wait.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn approvals_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>>;

    /// Attempts waiting for an agent since before `before`, as [`EventKind::AgentWaiting`]
    /// events stamped with when they were handed out, oldest first; the key names the run,
    /// task, attempt and sensor check.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn agents_waiting(&self, before: DateTime<Utc>) -> Result<Vec<HistoryEvent>>;

    /// How far the history has been read.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn alert_cursor(&self) -> Result<Option<DateTime<Utc>>>;

    /// Runs `work` in one write transaction: every write it makes through this store commits
    /// when it returns `Ok`, or none does. The methods it calls commit with it rather than on
    /// their own, so an evaluation that claims events and raises their alerts never leaves the
    /// events claimed without the alerts. A failing method called inside still undoes its own
    /// writes, and calls nest. Keep slow work (delivery) outside: other writers wait for it.
    /// A backend may run `work` again after a conflict, so `work` starts over each time.
    ///
    /// # Errors
    /// What `work` returned, or a failure to begin or commit the transaction; either way
    /// nothing it wrote remains.
    fn atomically(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()>;

    /// Claims events for this evaluation in one transaction: returns the keys no evaluation
    /// claimed before, moves the cursor to `cursor` (never backwards) and forgets keys seen
    /// before `forget_before`.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn claim_events(
        &self,
        keys: &[(String, DateTime<Utc>)],
        cursor: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<Vec<String>>;

    /// Opens an alert, or counts one more occurrence of the unresolved alert with the same
    /// rule, DAG, task and subject (or of one auto-resolved since `reopen_since`). Returns the alert after the change.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn raise_alert(&self, occurrence: &AlertOccurrence<'_>) -> Result<AlertRecord>;

    /// Resolves what a success answered: the unresolved alerts of the event's DAG last seen in
    /// an earlier run (or earlier in the same run), only those of its task and subject when it
    /// names them. An alert without a verdict whose last run had another DAG version than the
    /// successful one is marked real: a fix made the run pass. Returns the alerts resolved.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn resolve_after_success(&self, success: &HistoryEvent) -> Result<Vec<AlertRecord>>;

    /// Marks real (as `source`) the alerts without a verdict that a person acted on: those of
    /// run `run` (and task `task_id`, or the whole run), or those about `subject` (a model).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn credit_action(
        &self,
        run: Option<RunId>,
        task_id: Option<&str>,
        subject: Option<&str>,
        source: &str,
    ) -> Result<usize>;

    /// Alerts, newest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn alerts(&self, filter: AlertFilter) -> Result<Vec<AlertRecord>>;

    /// One alert.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such alert.
    fn alert(&self, id: i64) -> Result<AlertRecord>;

    /// A person acknowledges an alert, with their verdict if they give one (it replaces any
    /// verdict set by an action: a person's word wins).
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such alert.
    fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<AlertRecord>;

    /// Resolves an alert by hand.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such alert.
    fn resolve_alert(&self, id: i64, by: &str, at: DateTime<Utc>) -> Result<AlertRecord>;

    /// Silences an alert's notifications until `until`.
    ///
    /// # Errors
    /// [`crate::StoreError::NotFound`] when there is no such alert.
    fn snooze_alert(&self, id: i64, until: DateTime<Utc>) -> Result<AlertRecord>;

    /// Records the first try of a notification of alerts to a channel: delivered at `at` (the
    /// alerts' cooldowns start), or, with `undelivered`, pending a retry (no cooldown starts).
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_notification(
        &self,
        alerts: &[(i64, &str)],
        channel: &str,
        at: DateTime<Utc>,
        undelivered: Option<Undelivered<'_>>,
    ) -> Result<()>;

    /// Claims the pending notifications due at `now` (`next_try_at <= now`) for this caller
    /// alone, as a compare-and-set in one transaction: their `next_try_at` becomes
    /// `hold_until` (to the microsecond), so a concurrent evaluator finds them not due, and
    /// another may take them over only once the claim lapses. Returns them as claimed, oldest
    /// first.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<Vec<NotificationRecord>>;

    /// Records what became of notifications this caller claimed: `ids` with the claim's token
    /// `claim` (their `next_try_at` as claimed). One whose claim lapsed and was taken over is
    /// left alone. Delivered ones set their alerts' `last_notified_at` to `at`. Returns how
    /// many were changed.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn finish_notifications(
        &self,
        ids: &[i64],
        claim: DateTime<Utc>,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome<'_>,
    ) -> Result<usize>;

    /// How many distinct alerts of `rule` had a notification delivered at or after `since`;
    /// undelivered ones do not count.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn alerts_notified_since(&self, rule: &str, since: DateTime<Utc>) -> Result<usize>;
}

/// `at` as the databases keep it, to the microsecond: a claim's token must compare equal
/// after the round trip.
pub(crate) fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}
