//! Spawning and supervising task processes on Linux.
//!
//! This crate runs one shell command per [`Job`] and reports how it ended. It knows
//! nothing about DAGs or databases; the engine decides what to run and records the
//! results.
//!
//! # How a job runs
//!
//! - The command runs as `/bin/sh -c <command>` with stdin from `/dev/null`, the
//!   scheduler's environment plus [`Job::env`], in [`Job::cwd`].
//! - stdout and stderr are both appended to [`Job::log_path`], in write order. The
//!   file holds exactly what the process wrote; missing parent directories are
//!   created; vane adds a line only to say it ended processes the job left behind.
//! - The process leads its own **process group**. On timeout or
//!   [`KillSwitch::kill`], the whole group gets SIGTERM (and SIGCONT, so stopped
//!   processes notice), then SIGKILL if anything is still running after
//!   [`Job::kill_grace`]. Children and grandchildren die with the leader.
//! - **Leftover processes are killed too.** When the leader exits on its own while
//!   other processes of its group still run (say, `daemon &` in the command), they are
//!   terminated the same way and a warning is logged, so that a long-running scheduler
//!   never accumulates background processes.
//! - **So are processes that leave the group.** Each job runs in a cgroup (v2) of its own,
//!   which no descendant can leave: what is still in it once the group is gone (a
//!   `setsid` daemon) is terminated the same way, and a line at the end of the log names
//!   each such process. Where vane may not create cgroups (not root, no delegated cgroup),
//!   it says so once and jobs are contained by their process group alone.
//! - [`Launched::done`] resolves only after the group is gone, with the leader's
//!   [`Outcome`]; a job we killed reports [`Outcome::TimedOut`] or
//!   [`Outcome::Cancelled`] whatever signal actually ended it.
//!
//! The child is never killed because a handle was dropped: the supervisor task owns
//! it. If the scheduler itself dies, the group keeps running; record
//! [`Launched::pid`] and [`Launched::start_time`] and call [`kill_group_if_same`] on
//! the next start.
//!
//! Orphaned group members are reparented to pid 1. If the scheduler runs as pid 1
//! (a container without an init such as `tini`), nothing reaps them and they stay
//! zombies; they hold no resources besides a pid, and this crate treats them as gone.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use vane_exec::{Executor, Job, ProcessExecutor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let launched = ProcessExecutor.launch(Job {
//!     command: "echo hello from $WHO".to_owned(),
//!     env: vec![("WHO".to_owned(), "vane".to_owned())],
//!     cwd: None,
//!     log_path: "/var/lib/vane/logs/demo/hello.log".into(),
//!     timeout: Some(Duration::from_secs(60)),
//!     kill_grace: Duration::from_secs(10),
//! })?;
//! println!("started pid {}", launched.pid);
//!
//! let outcome = launched.done.await?;
//! if !outcome.success() {
//!     eprintln!("task failed: {}", outcome.describe());
//! }
//! # Ok(())
//! # }
//! ```

mod cgroup;
mod error;
mod executor;
mod group;
mod job;
mod procfs;
mod watchdog;

pub use cgroup::end_cells_of;
pub use error::ExecError;
pub use executor::{
    Executor, HELD_EXIT, Hold, KillSwitch, Launched, ProcessExecutor, exit_mark, exit_mark_path,
};
pub use group::kill_group_if_same;
pub use job::{Job, Outcome};
pub use procfs::{process_is_running, process_start_time};
pub use watchdog::{Watchdog, watchdog_main};
