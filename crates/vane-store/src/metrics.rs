//! Metrics as series: the numbers each task reported, run after run.

use chrono::{DateTime, Utc};

use crate::{Result, RunId, RunState};

/// Which metrics to read. `last` keeps the most recent points of each (task, name) series;
/// 0 keeps all.
#[derive(Debug, Clone, Default)]
pub struct MetricFilter<'a> {
    pub dag_id: &'a str,
    pub task: Option<&'a str>,
    pub name: Option<&'a str>,
    pub last: usize,
}

/// One value of one series: what an attempt reported.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub run: RunId,
    pub logical_date: DateTime<Utc>,
    pub run_state: RunState,
    pub task_id: String,
    pub attempt: u32,
    pub name: String,
    pub value: f64,
    pub recorded_at: DateTime<Utc>,
}

/// Reads recorded metrics.
pub trait MetricStore {
    /// Points ordered by series (task, then name), then oldest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn metric_series(&self, filter: &MetricFilter<'_>) -> Result<Vec<MetricPoint>>;
}
