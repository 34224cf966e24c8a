//! Totals for monitoring: what a Prometheus scrape of vane reports, counted from the history.

use crate::Result;
use crate::heartbeat::SchedulerSummary;

/// Counts since the database began (Prometheus counters), and what is going on now (gauges).
/// Rows with a count of zero are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// (DAG, run state, runs).
    pub runs: Vec<(String, String, u64)>,
    /// (DAG, attempt state, attempts).
    pub attempts: Vec<(String, String, u64)>,
    /// Seconds from start to end of finished attempts, per DAG.
    pub task_durations: Vec<Histogram>,
    /// Seconds scheduled runs started after their logical date, per DAG.
    pub start_lag: Vec<Histogram>,
    pub queued_runs: u64,
    pub running_tasks: u64,
    /// (DAG, misses).
    pub sla_misses: Vec<(String, u64)>,
    /// (DAG, check severity, failed checks).
    pub check_failures: Vec<(String, String, u64)>,
    /// (rule, occurrences), every occurrence of an alert counted, deduplicated or not.
    pub alerts_fired: Vec<(String, u64)>,
    /// Pass durations and heartbeats of the schedulers on this database. Boxed: an observation
    /// travels by value in the HTTP server's reply, whose variants are kept alike in size.
    pub schedulers: Box<SchedulerSummary>,
}

/// A cumulative histogram: `counts[i]` observations were at most `bounds[i]` (the bounds the
/// caller asked for).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub dag_id: String,
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// Reads monitoring totals.
pub trait ObserveStore {
    /// Totals over the whole history, with task durations and start lag counted into
    /// histograms of the given upper bounds (seconds, ascending).
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn observe(&self, duration_bounds: &[f64], lag_bounds: &[f64]) -> Result<Observation>;
}
