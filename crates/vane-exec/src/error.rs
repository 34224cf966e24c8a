use std::io;
use std::path::PathBuf;

/// Why a job could not be started.
///
/// Failures after the process started are not errors: they are reported as an
/// [`Outcome`](crate::Outcome) on [`Launched::done`](crate::Launched::done).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The log file (or one of its parent directories) could not be created or opened.
    #[error("cannot open the task log file {}: {source}", path.display())]
    LogFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The working directory does not exist, is not a directory, or cannot be read.
    #[error("cannot use {} as the working directory: {source}", path.display())]
    Cwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The operating system refused to start `/bin/sh`.
    #[error("cannot start `/bin/sh -c {command:?}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// [`Executor::launch`](crate::Executor::launch) was called outside a tokio runtime;
    /// the supervisor task needs one.
    #[error("cannot supervise a process outside a tokio runtime (call launch from async code)")]
    NoRuntime,
    /// The job must run elsewhere and cannot be sent there; says why.
    #[error("{0}")]
    Placement(String),
}
