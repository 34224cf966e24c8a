//! Scheduler heartbeats: which schedulers work on this database, whether they are alive, and how
//! long their passes take. A scheduler writes its row; any process (`vane serve`, `vane status`)
//! reads it, so a scheduler's health is known without asking the scheduler.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::Result;
use crate::observe::Histogram;

/// Upper bounds (seconds) of the pass-duration histogram. A pass takes well under a millisecond
/// with one DAG and a few with a thousand (see the benchmarks); tens of milliseconds mean a slow
/// disk or a busy database, seconds a stall.
pub const PASS_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// How often a scheduler records its heartbeat: rarely enough that the write costs nothing next
/// to the passes (a pass runs up to twice a second), often enough to see a dead scheduler within
/// a minute.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// A scheduler whose latest heartbeat is older than this is stale rather than up: three
/// heartbeats missed, so one long pass or a briefly locked database is not mistaken for death.
pub const STALE_AFTER: Duration = Duration::from_secs(3 * HEARTBEAT_EVERY.as_secs());

/// A scheduler that vanished without a clean shutdown (`kill -9`, a power cut) is never marked
/// stopped; after this long it leaves /metrics, so restarts do not pile up label values. Long
/// enough for any alert on its stale heartbeat to have fired.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long a scheduler's passes took, since it started: a cumulative histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct PassStats {
    /// Upper bounds, seconds, ascending.
    pub bounds: Vec<f64>,
    /// `counts[i]` passes took at most `bounds[i]` seconds.
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
    pub last: Option<f64>,
}

impl Default for PassStats {
    fn default() -> Self {
        Self {
            bounds: PASS_BUCKETS.to_vec(),
            counts: vec![0; PASS_BUCKETS.len()],
            count: 0,
            sum: 0.0,
            last: None,
        }
    }
}

impl PassStats {
    pub fn record(&mut self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (count, bound) in self.counts.iter_mut().zip(&self.bounds) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
        self.last = Some(seconds);
    }

    /// Mean pass, seconds; `None` before the first pass.
    #[must_use]
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The cumulative counts at other bounds. A row written by another vane version may have
    /// been counted with other bounds: each bound takes the count of the largest own bound not
    /// above it, exact when the bounds agree and never more than the truth otherwise.
    #[must_use]
    pub fn counts_at(&self, bounds: &[f64]) -> Vec<u64> {
        bounds
            .iter()
            .map(|b| {
                self.bounds
                    .iter()
                    .zip(&self.counts)
                    .filter(|(own, _)| *own <= b)
                    .map(|(_, n)| *n)
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// What a scheduler writes with each heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat<'a> {
    pub host: &'a str,
    pub pid: u32,
    /// With host and pid, names the scheduler process: see [`scheduler_id`].
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub passes: &'a PassStats,
    /// A clean shutdown: the scheduler will write no more.
    pub stopped: bool,
    /// The lease the scheduler holds now (see [`crate::LeaseStore`]).
    pub lease: Option<&'a str>,
}

/// The id of a scheduler process, as its heartbeat row and the `scheduler` label carry it.
#[must_use]
pub fn scheduler_id(host: &str, pid: u32, started_at: DateTime<Utc>) -> String {
    format!("{host}:{pid}:{}", started_at.format("%Y%m%dT%H%M%SZ"))
}

/// A scheduler as its latest heartbeat left it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerRecord {
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub passes: PassStats,
    /// The lease it held at its latest heartbeat.
    pub lease: Option<String>,
}

/// Whether a scheduler is working, as far as its heartbeat tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerStatus {
    /// Heartbeat within [`STALE_AFTER`].
    Up,
    /// No clean shutdown, but no heartbeat for [`STALE_AFTER`]: hung, killed, or its host down.
    Stale,
    /// Shut down cleanly.
    Stopped,
}

impl SchedulerStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Stale => "stale",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for SchedulerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SchedulerRecord {
    #[must_use]
    pub fn status(&self, now: DateTime<Utc>) -> SchedulerStatus {
        if self.stopped_at.is_some() {
            SchedulerStatus::Stopped
        } else if self.age(now) > STALE_AFTER {
            SchedulerStatus::Stale
        } else {
            SchedulerStatus::Up
        }
    }

    /// Time since the latest heartbeat; zero when the clock of its host is ahead of ours.
    #[must_use]
    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.last_heartbeat).to_std().unwrap_or_default()
    }

    /// Not stopped, and heard from within [`FORGET_AFTER`]: counted in /metrics.
    #[must_use]
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.stopped_at.is_none() && self.age(now) <= FORGET_AFTER
    }
}

/// What /metrics reports about schedulers, from their rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerSummary {
    /// Passes of live schedulers, summed, counted into [`PASS_BUCKETS`]; no DAG.
    pub pass_seconds: Histogram,
    /// (scheduler id, latest heartbeat as Unix seconds) of live schedulers.
    pub heartbeats: Vec<(String, f64)>,
    /// Schedulers [`SchedulerStatus::Up`].
    pub up: u64,
}

impl SchedulerSummary {
    #[must_use]
    pub fn of(schedulers: &[SchedulerRecord], now: DateTime<Utc>) -> Self {
        let mut summary = Self {
            pass_seconds: Histogram {
                counts: vec![0; PASS_BUCKETS.len()],
                ..Histogram::default()
            },
            ..Self::default()
        };
        for s in schedulers.iter().filter(|s| s.live(now)) {
            let h = &mut summary.pass_seconds;
            for (total, n) in h.counts.iter_mut().zip(s.passes.counts_at(PASS_BUCKETS)) {
                *total += n;
            }
            h.count += s.passes.count;
            h.sum += s.passes.sum;
            let at = s.last_heartbeat.timestamp_micros() as f64 / 1e6;
            summary.heartbeats.push((s.id.clone(), at));
            if s.status(now) == SchedulerStatus::Up {
                summary.up += 1;
            }
        }
        summary
    }
}

/// Records and reads scheduler heartbeats.
pub trait HeartbeatStore {
    /// Creates or rewrites the scheduler's row. A heartbeat lost to a power cut costs nothing
    /// (the next one replaces it), so a backend may skip forcing it to disk.
    ///
    /// # Errors
    /// Fails when the database cannot be written.
    fn record_heartbeat(&self, beat: &Heartbeat<'_>) -> Result<()>;

    /// Every scheduler recorded: those not stopped first, then by latest heartbeat, newest first.
    ///
    /// # Errors
    /// Fails when the database cannot be read.
    fn schedulers(&self) -> Result<Vec<SchedulerRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_are_counted_cumulatively_and_rebucketed_without_overcounting() {
        let mut stats = PassStats::default();
        for seconds in [0.0004, 0.003, 0.003, 0.2, 7.0] {
            stats.record(seconds);
        }
        assert_eq!(stats.counts, vec![1, 3, 3, 3, 3, 4, 4, 4]);
        assert_eq!(stats.count, 5);
        assert_eq!(stats.last, Some(7.0));
        assert_eq!(stats.counts_at(PASS_BUCKETS), stats.counts);
        // Coarser or shifted bounds take the count at the nearest own bound below.
        assert_eq!(stats.counts_at(&[0.0005, 0.002, 1.0]), vec![0, 1, 4]);
    }
}
