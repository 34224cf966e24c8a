//! Reading `/proc/<pid>/stat`.

use std::fs;

/// The fields of `/proc/<pid>/stat` this crate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub(crate) state: u8,
    /// Field 5: process group id.
    pub(crate) pgrp: i32,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Whether the process still runs code, as opposed to a zombie waiting to be reaped.
    pub(crate) fn is_running(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

pub(crate) fn parse_stat(text: &[u8]) -> Option<Stat> {
    // Field 2 (`comm`) is the executable name in parentheses and may itself contain
    // spaces, parentheses or invalid UTF-8, so the numeric fields begin after the
    // *last* ')'.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    // The iterator now stands at field 6; field 22 is 16 further.
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        state,
        pgrp,
        start_time,
    })
}

pub(crate) fn read_stat(pid: u32) -> Option<Stat> {
    if pid == 0 {
        return None;
    }
    parse_stat(&fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process.
///
/// A pid alone does not identify a process for long: once it exits, the kernel may
/// hand the same number to an unrelated process. The pair (pid, start time) does, so
/// record both and compare before signalling a process found in old records (see
/// [`kill_group_if_same`](crate::kill_group_if_same)).
///
/// A zombie (exited but not yet reaped) still has an entry and thus a start time.
#[must_use]
pub fn process_start_time(pid: u32) -> Option<u64> {
    read_stat(pid).map(|stat| stat.start_time)
}

/// Whether the process `pid` that started at `start_time` (see [`process_start_time`]) is
/// still running code: not exited, not a zombie, and not a new process that reused the pid.
#[must_use]
pub fn process_is_running(pid: u32, start_time: u64) -> bool {
    read_stat(pid).is_some_and(|stat| stat.start_time == start_time && stat.is_running())
}

/// Whether any process in group `pgid` is still running code.
///
/// `kill(-pgid, 0)` alone is not enough: it also counts zombies, and orphaned
/// zombies linger forever when pid 1 does not reap (common in containers), which
/// would make every termination wait out its whole grace period.
pub(crate) fn group_has_running_members(pgid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::killpg;
    use nix::unistd::Pid;

    if let Err(Errno::ESRCH) = killpg(Pid::from_raw(pgid), None) {
        return false;
    }
    let Ok(entries) = fs::read_dir("/proc") else {
        // Without /proc, trust kill(2) and err on the side of "still running".
        return true;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_stat)
        .any(|stat| stat.pgrp == pgid && stat.is_running())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(comm: &[u8]) -> Vec<u8> {
        let mut text = b"4242 (".to_vec();
        text.extend_from_slice(comm);
        // Fields 3..=22 then a few more; 22 is 987654.
        text.extend_from_slice(
            b") S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50 \
              18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n",
        );
        text
    }

    #[test]
    fn parses_plain_comm() {
        assert_eq!(
            parse_stat(&sample(b"sleep")),
            Some(Stat {
                state: b'S',
                pgrp: 4240,
                start_time: 987_654
            })
        );
    }

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let stat = parse_stat(&sample(b"a) b (c) S 7 7 7")).unwrap();
        assert_eq!(stat.pgrp, 4240);
        assert_eq!(stat.start_time, 987_654);
    }

    #[test]
    fn parses_comm_with_invalid_utf8() {
        let stat = parse_stat(&sample(b"\xff\xfe)")).unwrap();
        assert_eq!(stat.start_time, 987_654);
    }

    #[test]
    fn rejects_truncated_text() {
        assert_eq!(parse_stat(b"4242 (sleep) S 1 4240"), None);
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"4242 sleep"), None);
    }

    #[test]
    fn zombies_are_not_running() {
        let mut stat = parse_stat(&sample(b"sleep")).unwrap();
        assert!(stat.is_running());
        stat.state = b'Z';
        assert!(!stat.is_running());
    }

    #[test]
    fn own_process_has_a_start_time() {
        let me = std::process::id();
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(me), process_start_time(me));
        assert_eq!(process_start_time(0), None);
    }
}
