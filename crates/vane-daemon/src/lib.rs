//! The scheduler daemon: runs every DAG of a folder on its cron cadence, unattended.
//!
//! - [`due_ticks`] decides which schedule ticks are due and which of them run (catch-up
//!   policy, window, start and end dates) as a pure function.
//! - [`run`] is the loop: it reloads edited DAG files (a file that stops validating keeps its
//!   last good version running), records every tick with its decision, applies the overlap
//!   policy, starts queued runs (scheduled or triggered) within `max_active_runs`, adopts runs
//!   orphaned by a crashed scheduler, times every pass for its heartbeat (written to the store
//!   at start, every `HEARTBEAT_EVERY` and at shutdown), and on shutdown lets running tasks finish within a grace
//!   period before killing them, leaving unfinished runs to resume on the next start.
//!
//! The loop reads the time from a [`Clock`] in its [`Config`], so its tests run hours of
//! schedule on tokio's paused time.
//!
//! One run per (DAG, logical date) is enforced by the store, so two schedulers started by
//! mistake, or a restart in the middle of a pass, never duplicate a run.

mod backfill;
mod cadence;
mod clock;
mod daemon;
mod trouble;

pub use backfill::{
    TickAction, drive as drive_backfill, existing_runs, fail_unstarted, plan as plan_backfill,
};
pub use cadence::{Plan, due_ticks};
pub use clock::Clock;
pub use daemon::{Config, DaemonError, run};
