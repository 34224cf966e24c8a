//! A process that outlives a crashed parent just long enough to kill the parent's jobs.
//!
//! Jobs lead their own process groups, so when the process that started them dies by
//! `kill -9` they keep running, reparented to pid 1. A `vane agent` must not leave them: the
//! attempt is retried on another host, and two copies of a training job would both write.
//! The agent starts a watchdog with a pipe on its stdin and tells it each group it starts and
//! ends; the kernel closes the pipe however the agent dies, and the watchdog then kills every
//! group still listed, SIGTERM first, SIGKILL after the grace.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::group::signal_group;

/// The parent's end of a watchdog.
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Starts `program` with `args` as the watchdog, in a process group of its own so that a
    /// Ctrl-C meant for the parent does not take it down first. The program must call
    /// [`watchdog_main`].
    ///
    /// # Errors
    /// When the program cannot be started.
    pub fn spawn(program: &Path, args: &[&str]) -> io::Result<Self> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("the watchdog has no stdin"))?;
        Ok(Self { child, pipe })
    }

    /// Adds a process group to kill should this process die.
    ///
    /// # Errors
    /// When the watchdog is gone.
    pub fn watch(&mut self, pgid: u32) -> io::Result<()> {
        writeln!(self.pipe, "+{pgid}")?;
        self.pipe.flush()
    }

    /// Removes a process group that ended.
    ///
    /// # Errors
    /// When the watchdog is gone.
    pub fn forget(&mut self, pgid: u32) -> io::Result<()> {
        writeln!(self.pipe, "-{pgid}")?;
        self.pipe.flush()
    }

    /// Whether the watchdog still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Watchdog {
    /// A clean exit: every job ended, so the watchdog has nothing to kill and exits on EOF.
    fn drop(&mut self) {
        let _ = self.child.wait();
    }
}

/// The watchdog's whole life: reads `+PGID` and `-PGID` lines until end of input, then kills
/// every group still listed (SIGTERM, `grace`, SIGKILL).
pub fn watchdog_main(input: impl BufRead, grace: Duration) {
    let mut groups = BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        let (add, pgid) = match line.split_at_checked(1) {
            Some(("+", n)) => (true, n),
            Some(("-", n)) => (false, n),
            _ => continue,
        };
        let Ok(pgid) = pgid.trim().parse::<i32>() else {
            continue;
        };
        // 0 and 1 would signal ourselves or everything.
        if pgid <= 1 {
            continue;
        }
        if add {
            groups.insert(pgid);
        } else {
            groups.remove(&pgid);
        }
    }
    if groups.is_empty() {
        return;
    }
    for &pgid in &groups {
        signal_group(pgid, Signal::SIGTERM);
        signal_group(pgid, Signal::SIGCONT);
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline
        && groups
            .iter()
            .any(|&g| crate::procfs::group_has_running_members(g))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pgid in &groups {
        signal_group(pgid, Signal::SIGKILL);
    }
}
