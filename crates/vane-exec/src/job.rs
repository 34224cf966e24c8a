use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// What to run. The command is run with `/bin/sh -c <command>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Shell command line, passed to `/bin/sh -c`.
    pub command: String,
    /// Variables added on top of the environment inherited from the scheduler.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` inherits the scheduler's.
    pub cwd: Option<PathBuf>,
    /// File that receives both stdout and stderr, appended to, with nothing added.
    /// Missing parent directories are created.
    pub log_path: PathBuf,
    /// Kill the process group if it runs longer than this.
    pub timeout: Option<Duration>,
    /// How long the process group gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// How a job's process ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The leader (`/bin/sh`) exited normally with this code.
    Exited { code: i32 },
    /// The leader was killed by a signal that this crate did not send.
    Signaled { signal: i32 },
    /// The group was killed because it exceeded [`Job::timeout`].
    TimedOut,
    /// The group was killed because [`KillSwitch::kill`](crate::KillSwitch::kill) was called.
    Cancelled,
    /// The supervisor lost track of the process (waiting for it failed). The process
    /// group has been killed; the job's real result is unknown.
    Lost { error: String },
}

impl Outcome {
    /// Whether the job succeeded: exited with code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited { code: 0 })
    }

    /// A short phrase for people: "exit code 3", "killed by signal 9 (SIGKILL)",
    /// "timed out", "cancelled".
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Exited { code } => format!("exit code {code}"),
            Self::Signaled { signal } => match Signal::try_from(*signal) {
                Ok(name) => format!("killed by signal {signal} ({})", name.as_str()),
                Err(_) => format!("killed by signal {signal}"),
            },
            Self::TimedOut => "timed out".to_owned(),
            Self::Cancelled => "cancelled".to_owned(),
            Self::Lost { error } => format!("lost track of the process: {error}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exit_zero_is_success() {
        assert!(Outcome::Exited { code: 0 }.success());
        assert!(!Outcome::Exited { code: 1 }.success());
        assert!(!Outcome::Signaled { signal: 9 }.success());
        assert!(!Outcome::TimedOut.success());
        assert!(!Outcome::Cancelled.success());
    }

    #[test]
    fn descriptions() {
        assert_eq!(Outcome::Exited { code: 3 }.describe(), "exit code 3");
        assert_eq!(
            Outcome::Signaled { signal: 9 }.describe(),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            Outcome::Signaled { signal: 15 }.to_string(),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(
            Outcome::Signaled { signal: 40 }.describe(),
            "killed by signal 40"
        );
        assert_eq!(Outcome::TimedOut.describe(), "timed out");
        assert_eq!(Outcome::Cancelled.describe(), "cancelled");
    }
}
