use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::process::{Child, Command};
use tokio::sync::{Notify, oneshot};

use crate::cgroup::{Cell, new_cell};
use crate::error::ExecError;
use crate::group::terminate_group;
use crate::job::{Job, Outcome};
use crate::procfs::{group_has_running_members, process_start_time};

/// A started job.
#[derive(Debug)]
pub struct Launched {
    /// Pid of the leader (`/bin/sh`), which is also the process group id.
    pub pid: u32,
    /// [`process_start_time`] of the leader, read right after spawning; together with
    /// `pid` it identifies the process across a scheduler restart.
    pub start_time: Option<u64>,
    /// Resolves once the job is over and its process group is gone.
    pub done: oneshot::Receiver<Outcome>,
    /// Asks the supervisor to kill the job.
    pub kill: KillSwitch,
}

/// Cheap, cloneable handle that asks a job's supervisor to terminate its process
/// group (SIGTERM, grace, SIGKILL) and report [`Outcome::Cancelled`].
///
/// Idempotent; a no-op after the process finished. Public constructors exist so
/// that fake [`Executor`]s can hand one out and watch it with [`KillSwitch::killed`].
#[derive(Debug, Clone, Default)]
pub struct KillSwitch {
    inner: Arc<KillInner>,
}

#[derive(Debug, Default)]
struct KillInner {
    killed: AtomicBool,
    notify: Notify,
}

impl KillSwitch {
    /// A switch that has not been pulled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests termination. Returns at once; the outcome arrives on [`Launched::done`].
    pub fn kill(&self) {
        if !self.inner.killed.swap(true, Ordering::SeqCst) {
            self.inner.notify.notify_waiters();
        }
    }

    /// Whether [`kill`](Self::kill) has been called on this switch or a clone of it.
    #[must_use]
    pub fn is_killed(&self) -> bool {
        self.inner.killed.load(Ordering::SeqCst)
    }

    /// Resolves once [`kill`](Self::kill) has been called (at once if it already was).
    pub async fn killed(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registering before checking the flag means a kill() between the two
            // cannot be missed.
            notified.as_mut().enable();
            if self.is_killed() {
                return;
            }
            notified.await;
        }
    }
}

/// Starts jobs. The engine depends on this trait so it can be tested with a fake
/// executor.
pub trait Executor: Send + Sync {
    /// Spawns the job and returns at once; a supervisor task watches the process and
    /// reports on [`Launched::done`]. Must be called from within a tokio runtime.
    ///
    /// # Errors
    ///
    /// If the job cannot be started: the log file cannot be opened, the working
    /// directory is unusable, the process cannot be spawned, or there is no tokio
    /// runtime. Nothing is left running in that case.
    fn launch(&self, job: Job) -> Result<Launched, ExecError>;

    /// [`launch`](Self::launch), with the command held back until [`Hold::release`]: the
    /// process exists (its pid and start time are known) but has not begun the command. A
    /// hold dropped without a release (the caller could not record the attempt, or died)
    /// ends the process without running the command, with exit status [`HELD_EXIT`]. So the
    /// caller can record the attempt and its pid in one durable write while the process
    /// starts, and no command runs that the record does not know of.
    ///
    /// # Errors
    /// As [`launch`](Self::launch).
    fn launch_held(&self, job: Job) -> Result<(Launched, Hold), ExecError>;
}

/// Exit status of a held process whose hold was dropped: its command never began.
pub const HELD_EXIT: i32 = 125;

/// The variable naming the file a job's shell writes its exit status to, should the process
/// that started it be gone by then.
const EXIT_MARK_VAR: &str = "VANE_EXIT_MARK";

/// Run by the job's shell as it exits: if the process that started it is gone (a `kill -9`, a
/// crash), nobody is left to learn the exit status from `wait`, so it is written down for the
/// vane that adopts the run. Only then: a file per task would cost every task an inode. Both
/// commands are shell builtins, and the job's own exit status is kept. A command that replaces
/// the shell (`exec prog`) or sets its own `EXIT` trap leaves no mark, and is recorded lost.
const EXIT_TRAP: &str =
    r#"trap 's=$?; kill -0 "$PPID" 2>/dev/null || echo "$s" > "$VANE_EXIT_MARK"' EXIT;"#;

/// Where the shell of the job logging to `log_path` writes its exit status when the process
/// that started it is gone: beside the log.
#[must_use]
pub fn exit_mark_path(log_path: &Path) -> std::path::PathBuf {
    let mut name = log_path.as_os_str().to_owned();
    name.push(".exit");
    name.into()
}

/// The exit status the shell of the job logging to `log_path` wrote down because the process
/// that started it was gone (see [`exit_mark_path`]); `None` when there is no such mark.
#[must_use]
pub fn exit_mark(log_path: &Path) -> Option<i32> {
    fs::read_to_string(exit_mark_path(log_path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What keeps a process from [`Executor::launch_held`] from beginning its command. For a
/// real process, the write end of the pipe its shell first reads a line from.
pub struct Hold(Option<Box<dyn FnOnce() + Send>>);

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Hold").field(&self.0.is_some()).finish()
    }
}

impl Hold {
    /// A hold that calls `release` when released, and nothing when dropped: the contract a
    /// fake [`Executor`] keeps by beginning its command in `release`.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(release)))
    }

    /// Lets the command begin.
    pub fn release(mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

/// The real [`Executor`]: runs each job as `/bin/sh -c <command>` in its own process
/// group, with stdin from `/dev/null` and stdout and stderr appended to the log file.
#[derive(Debug, Default, Clone)]
pub struct ProcessExecutor;

impl Executor for ProcessExecutor {
    fn launch(&self, job: Job) -> Result<Launched, ExecError> {
        let (launched, hold) = spawn(job)?;
        hold.release();
        Ok(launched)
    }

    fn launch_held(&self, job: Job) -> Result<(Launched, Hold), ExecError> {
        spawn(job)
    }
}

/// Spawns `job` held back: its shell reads a line from a pipe before anything else, exits
/// [`HELD_EXIT`] at end of file, and gives the command `/dev/null` as stdin. It is one `sh`
/// process, so holding costs no extra exec; the prefix shares the command's first line, so
/// the command's line numbers are unchanged. Every job is held at first so that it is in its
/// cgroup before it can fork: a child forked earlier would stay outside.
fn spawn(job: Job) -> Result<(Launched, Hold), ExecError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| ExecError::NoRuntime)?;
    if let Some(cwd) = &job.cwd {
        check_cwd(cwd)?;
    }
    let stdout = open_log(&job.log_path)?;
    let stderr = stdout.try_clone().map_err(|source| ExecError::LogFile {
        path: job.log_path.clone(),
        source,
    })?;

    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!(
            "read -r _ || exit {HELD_EXIT}; exec </dev/null; {EXIT_TRAP} {}",
            job.command
        ))
        .env(EXIT_MARK_VAR, exit_mark_path(&job.log_path))
        .stdin(Stdio::piped())
        .envs(job.env.iter().map(|(key, value)| (key, value)))
        .stdout(stdout)
        .stderr(stderr)
        // Its own group lets timeout and cancel reach every descendant at once.
        .process_group(0)
        // The supervisor decides when the process dies, not a dropped handle.
        .kill_on_drop(false);
    if let Some(cwd) = &job.cwd {
        command.current_dir(cwd);
    }
    let spawn_error = |source| ExecError::Spawn {
        command: job.command.clone(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let Some(pid) = child.id() else {
        // Only possible once the child has been waited for, which has not happened.
        return Err(spawn_error(io::Error::other("the new process has no pid")));
    };
    // The timeout counts from the release: a process held while its start commits (for long,
    // on a database that is slow or cannot be written) has not begun its command.
    let (begun, released) = oneshot::channel::<()>();
    let hold = match child.stdin.take() {
        Some(pipe) => {
            let mut pipe = File::from(pipe.into_owned_fd().map_err(spawn_error)?);
            // One byte into an empty pipe never blocks. A failed write (the process died
            // meanwhile) leaves nothing to release; dropped unwritten, the pipe's end of file
            // ends the process.
            Hold::new(move || {
                let _ = io::Write::write_all(&mut pipe, b"\n");
                let _ = begun.send(());
            })
        }
        None => Hold(None),
    };
    let cell = new_cell(&job.log_path).filter(|cell| match cell.adopt(pid) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(pid, %error, "Cannot move a task into its cgroup; it is contained by its process group only.");
            false
        }
    });
    let start_time = process_start_time(pid);
    tracing::debug!(pid, command = %job.command, "Process launched.");

    let (report, done) = oneshot::channel();
    let kill = KillSwitch::new();
    runtime.spawn(supervise(
        child,
        pid,
        job,
        cell,
        released,
        kill.clone(),
        report,
    ));
    Ok((
        Launched {
            pid,
            start_time,
            done,
            kill,
        },
        hold,
    ))
}

fn check_cwd(cwd: &Path) -> Result<(), ExecError> {
    let error = |source| ExecError::Cwd {
        path: cwd.to_owned(),
        source,
    };
    // Checked here because a failed chdir in the child surfaces as a bare
    // "No such file or directory" that names neither the directory nor the reason.
    let metadata = fs::metadata(cwd).map_err(error)?;
    if !metadata.is_dir() {
        return Err(error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<File, ExecError> {
    let error = |source| ExecError::LogFile {
        path: path.to_owned(),
        source,
    };
    // Append mode, shared by stdout and stderr, keeps the two streams in write order
    // and never clobbers what earlier attempts wrote.
    let open = || OpenOptions::new().create(true).append(true).open(path);
    match open() {
        // The folder is made only when missing: most tasks of a run find it made by the
        // first, and a `mkdir` that finds it there costs a spawn as much as the open.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(error)?;
            }
            open().map_err(error)
        }
        opened => opened.map_err(error),
    }
}

enum Ending {
    Exited(io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

async fn supervise(
    mut child: Child,
    pid: u32,
    job: Job,
    cell: Option<Cell>,
    released: oneshot::Receiver<()>,
    kill: KillSwitch,
    report: oneshot::Sender<Outcome>,
) {
    // Process ids fit in i32 (pid_max is at most 2^22); spawn returned one.
    let pgid = i32::try_from(pid).unwrap_or(i32::MAX);
    let timeout = async {
        // A hold dropped unreleased ends the process before its command: no time limit.
        match (released.await, job.timeout) {
            (Ok(()), Some(timeout)) => tokio::time::sleep(timeout).await,
            _ => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        // A process that already finished reports its own result, not a late kill.
        biased;
        status = child.wait() => Ending::Exited(status),
        () = timeout => Ending::TimedOut,
        () = kill.killed() => Ending::Cancelled,
    };

    let outcome = match ending {
        Ending::TimedOut => {
            tracing::info!(
                pid,
                pgid,
                timeout_secs = job.timeout.map(|t| t.as_secs_f64()),
                "Task timed out; terminating its process group."
            );
            terminate_group(pgid, Some(&mut child), job.kill_grace).await;
            Outcome::TimedOut
        }
        Ending::Cancelled => {
            tracing::info!(pid, pgid, "Task cancelled; terminating its process group.");
            terminate_group(pgid, Some(&mut child), job.kill_grace).await;
            Outcome::Cancelled
        }
        Ending::Exited(Ok(status)) => {
            // Background processes the command left behind would otherwise outlive
            // the task and pile up in a long-running scheduler.
            if group_has_running_members(pgid) {
                tracing::warn!(
                    pid,
                    pgid,
                    "Task exited but left processes running; terminating them."
                );
                terminate_group(pgid, None, job.kill_grace).await;
            }
            outcome_of(status)
        }
        Ending::Exited(Err(error)) => {
            tracing::error!(pid, pgid, %error, "Cannot wait for task process; killing its process group.");
            terminate_group(pgid, None, job.kill_grace).await;
            Outcome::Lost {
                error: error.to_string(),
            }
        }
    };
    if let Some(mut cell) = cell {
        end_escaped(&mut cell, pid, &job).await;
    }
    tracing::debug!(pid, outcome = %outcome, "Task process finished.");
    // The receiver may have been dropped by a caller that no longer cares.
    let _ = report.send(outcome);
}

/// Ends what the job left running outside its process group (`setsid`, a daemon), which its
/// cgroup still holds, and says so at the end of its log, where a person looks first.
async fn end_escaped(cell: &mut Cell, pid: u32, job: &Job) {
    let left = cell.end_leftovers(job.kill_grace).await;
    crate::cgroup::say_left(&job.log_path, pid, &left);
}

fn outcome_of(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited { code },
        (None, Some(signal)) => Outcome::Signaled { signal },
        // Neither code nor signal only happens for stopped/continued statuses,
        // which wait() does not return.
        (None, None) => Outcome::Lost {
            error: format!("unrecognised wait status {status:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn killed_resolves_after_kill_from_any_clone() {
        let switch = KillSwitch::new();
        let waiter = tokio::spawn({
            let switch = switch.clone();
            async move { switch.killed().await }
        });
        tokio::task::yield_now().await;
        assert!(!switch.is_killed());
        switch.clone().kill();
        waiter.await.unwrap();
        assert!(switch.is_killed());
    }

    #[tokio::test]
    async fn killed_resolves_at_once_when_already_killed() {
        let switch = KillSwitch::new();
        switch.kill();
        switch.kill();
        switch.killed().await;
        switch.killed().await;
    }
}
