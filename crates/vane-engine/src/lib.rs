//! The run engine: decides what runs next and records every decision before acting on it.
//!
//! [`RunMachine`] is the pure state machine (dependencies, concurrency limit, retries with
//! backoff, `upstream_failed`, cancellation). [`Engine`] drives it against any
//! [`vane_store::Store`] and [`vane_exec::Executor`], so it runs the same with SQLite and real
//! processes as with fakes in tests. The thread that drives runs never blocks: store calls go
//! through [`vane_store::StoreThreads`], hashing, copying and `git` through an [`Offload`].
//!
//! ```
//! use std::time::Instant;
//! use vane_engine::{Action, Finish, RunMachine};
//!
//! let dag = vane_dag::parse_dag(
//!     "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
//!     "demo",
//! ).dag.unwrap();
//! let mut machine = RunMachine::new(&dag, 4);
//! let now = Instant::now();
//! assert_eq!(machine.start(now), vec![Action::Launch { task: 0, attempt: 1 }]);
//! let next = machine.finished(0, Finish::Success, now);
//! assert!(next.contains(&Action::Launch { task: 1, attempt: 1 }));
//! ```

mod adopt;
pub mod agent;
pub mod artifacts;
mod clear;
mod git;
mod lease;
mod machine;
pub mod metrics;
mod offload;
pub mod remote;
mod runner;
pub mod shipping;

pub use adopt::{abandon_changes, adopt, adopt_for_action, orphaned};
pub use clear::{ClearError, ClearRequest, Mark, clear_changes, mark_changes, owner_alive};
pub use git::git_state;
pub use lease::{Lease, LeaseLink};
pub use machine::{Action, Finish, Recorded, RunMachine};
pub use offload::{BlockingPool, Offload};
pub use runner::{
    AttemptOf, BuiltinCommand, Control, Engine, Paths, RunSpec, SKIP_EXIT, StartedBy, StopReason,
    TemplateVars, VERDICT_EXIT, content_hash, log_name, metrics_path, new_run, new_run_of_version,
    record_version,
};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] vane_store::StoreError),
    #[error("run {0} is already being executed by another vane process, or has finished")]
    Claimed(vane_store::RunId),
    #[error("internal error: {0}")]
    Internal(String),
}
