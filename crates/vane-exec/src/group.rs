//! Terminating process groups: SIGTERM, a grace period, then SIGKILL.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp};
use tokio::process::Child;
use tokio::time::sleep;

use crate::procfs::{group_has_running_members, process_start_time, read_stat};

/// How often to look whether a group has gone away once no child of ours is left to
/// wait on. Orphaned members belong to pid 1, so there is no event to wait for.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long to wait for SIGKILL to take effect before giving up on a group. Only a
/// process stuck in uninterruptible sleep (`D`, e.g. on a dead NFS mount) takes
/// longer, and no signal can help it.
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// Sends `signal` to every process in group `pgid`. Returns whether the group existed.
pub(crate) fn signal_group(pgid: i32, signal: Signal) -> bool {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(errno) => {
            tracing::warn!(pgid, signal = signal.as_str(), %errno, "Cannot signal process group.");
            false
        }
    }
}

/// SIGTERM to the group, wait up to `grace` for it to go away, then SIGKILL.
///
/// `leader` is the group leader if it is our child: it is reaped here, since a
/// zombie leader would keep the group alive.
pub(crate) async fn terminate_group(pgid: i32, mut leader: Option<&mut Child>, grace: Duration) {
    if signal_group(pgid, Signal::SIGTERM) {
        // A stopped process would hold SIGTERM pending until continued.
        signal_group(pgid, Signal::SIGCONT);
        if wait_for_group(pgid, &mut leader, grace).await {
            tracing::debug!(pgid, "Process group exited after SIGTERM.");
            return;
        }
        tracing::warn!(
            pgid,
            ?grace,
            "Process group outlived the grace period; sending SIGKILL."
        );
        signal_group(pgid, Signal::SIGKILL);
        if !wait_for_group(pgid, &mut leader, KILL_SETTLE).await {
            tracing::error!(pgid, "Process group still running after SIGKILL.");
            return;
        }
        tracing::debug!(pgid, "Process group killed.");
    } else if let Some(child) = leader {
        // The group is gone but the leader may still need reaping.
        reap(pgid, child).await;
    }
}

/// Waits up to `limit` for the leader (if any) to exit and every other member to stop
/// running. Returns whether that happened.
async fn wait_for_group(pgid: i32, leader: &mut Option<&mut Child>, limit: Duration) -> bool {
    let deadline = sleep(limit);
    tokio::pin!(deadline);
    if let Some(child) = leader.as_deref_mut() {
        tokio::select! {
            () = &mut deadline => return false,
            () = reap(pgid, child) => *leader = None,
        }
    }
    loop {
        if !group_has_running_members(pgid) {
            return true;
        }
        tokio::select! {
            () = &mut deadline => return false,
            () = sleep(POLL_INTERVAL) => {}
        }
    }
}

async fn reap(pgid: i32, child: &mut Child) {
    if let Err(error) = child.wait().await {
        tracing::warn!(pgid, %error, "Cannot wait for the group leader.");
    }
}

/// Kills the process group led by `pid` (SIGTERM, wait `grace`, SIGKILL), but only if
/// `pid` still names the process that started at `start_time` (see
/// [`process_start_time`]), so that a reused pid is never killed.
///
/// This is for processes left over from an earlier run of the scheduler (after a
/// crash): they are not our children, so the function polls `/proc` to notice when
/// they are gone. It returns once the group has exited, or at most about `grace`
/// plus two seconds later if SIGKILL could not finish it. Must be awaited within a
/// tokio runtime (it uses tokio timers).
///
/// Returns whether it signalled anything: `false` if the pid is gone, names a
/// different process now, or has no process group of its own left.
///
/// A group whose leader has already exited cannot be verified this way, so its
/// remaining members are left alone.
pub async fn kill_group_if_same(pid: u32, start_time: u64, grace: Duration) -> bool {
    let Ok(pgid) = i32::try_from(pid) else {
        return false;
    };
    // Signalling our own group (or group 0 or 1) would take the scheduler down with it.
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        tracing::warn!(pid, "Refusing to kill the scheduler's own process group.");
        return false;
    }
    match process_start_time(pid) {
        Some(found) if found == start_time => {}
        found => {
            tracing::debug!(
                pid,
                start_time,
                ?found,
                "Recorded process is gone; nothing to kill."
            );
            return false;
        }
    }
    if read_stat(pid).is_some_and(|stat| stat.pgrp != pgid) {
        tracing::warn!(
            pid,
            "Recorded process left its process group; killing the group anyway."
        );
    }
    if !group_has_running_members(pgid) {
        return false;
    }
    tracing::info!(pid, pgid, "Killing leftover process group.");
    terminate_group(pgid, None, grace).await;
    true
}
