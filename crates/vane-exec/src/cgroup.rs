//! A cgroup (v2) per job, so that what a task starts cannot outlive it.
//!
//! A process group holds a task's processes only as long as they stay in it: `setsid`, a
//! daemon's double fork, or `nohup setsid …` leave it, and `killpg` no longer reaches them.
//! A cgroup cannot be left by an unprivileged process, and the kernel moves every child into
//! its parent's cgroup at fork, so a task's whole tree is in its cell whatever it does.
//!
//! The cells live in a folder of their own, `vane-<pid>-<start time>`, inside the cgroup vane
//! itself runs in. vane needs to be allowed to create it: root, or a delegated cgroup
//! (systemd's `Delegate=yes`). Where that is refused (no cgroup v2 mounted, no permission),
//! jobs are contained by their process group alone, as before, and vane says so once.
//!
//! Cells are kept and used again rather than removed: on this 2-CPU VM a new cell costs a
//! spawn 0.19 ms, a reused one 0.08 ms (`mkdir` and `rmdir` set off kernel work beyond their
//! calls). cgroup v2 cannot rename a cgroup, so a cell names the attempt it holds in an
//! extended attribute ([`ATTEMPT_XATTR`]), cleared when the attempt ends; where the file system
//! refuses one, each attempt gets a new cell named after it instead.
//!
//! The child-subreaper mechanism was the other candidate: it reparents orphans to vane, but
//! vane would then have to reap them with `waitpid(-1)`, which steals the exit statuses of
//! the children tokio waits for, and it cannot tell which task an orphan came from.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::procfs::process_start_time;

/// How often to look whether a cell has emptied. cgroup v2 offers `cgroup.events` for
/// `inotify`, but cells empty in microseconds after SIGKILL, and polling keeps this small.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long SIGKILL gets to empty a cell before vane gives up on it (only a process in
/// uninterruptible sleep takes longer, and no signal helps it).
const KILL_SETTLE: Duration = Duration::from_secs(2);

/// The extended attribute in which a cell names the attempt it holds: the hash of the
/// attempt's log path ([`cell_prefix`]); empty while the cell waits to be used again.
const ATTEMPT_XATTR: &str = "user.vane.attempt";

/// This process's folder of cells, or why there is none.
struct Cells {
    folder: PathBuf,
    next: AtomicU64,
    /// Empty cells to use again, when cells can name their attempt in [`ATTEMPT_XATTR`].
    idle: Mutex<Vec<PathBuf>>,
    /// Whether the file system took an extended attribute; until it refuses one, it is
    /// taken to.
    named_inside: AtomicBool,
}

static CELLS: OnceLock<Result<Cells, String>> = OnceLock::new();

/// The cell for one job: an empty cgroup, given back (or removed) when dropped.
#[derive(Debug)]
pub(crate) struct Cell {
    path: PathBuf,
    /// Whether it names its attempt inside, so that it can be used again once empty.
    reusable: bool,
    /// Seen empty by [`Cell::end_leftovers`], so dropping it need not look again.
    emptied: bool,
}

/// This process's cells, opened at the first call.
fn cells() -> Option<&'static Cells> {
    CELLS.get_or_init(|| {
        let cells = open_cells();
        match &cells {
            Ok(cells) => {
                tracing::debug!(folder = %cells.folder.display(), "Each task runs in a cgroup of its own.");
            }
            Err(why) => tracing::warn!(
                "Tasks are contained by their process group only: {why}. A process a task moves \
                 out of its group (setsid, a daemon) can outlive the task. To contain every \
                 descendant, run vane as root or in a delegated cgroup (systemd: Delegate=yes)."
            ),
        }
        cells
    })
    .as_ref()
    .ok()
}

/// The start of the name of every cell of the job logging to `log_path`: a stable hash of the
/// path (FNV-1a), which names one attempt, so that a vane that adopts the attempt after its
/// vane died can find its cell.
fn cell_prefix(log_path: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in log_path.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}-")
}

/// A cell for the job logging to `log_path`, or `None` where vane cannot create cgroups
/// (said once, at the first job): an idle one named after the job's attempt, or a new one.
pub(crate) fn new_cell(log_path: &Path) -> Option<Cell> {
    let cells = cells()?;
    let attempt = cell_prefix(log_path);
    if cells.named_inside.load(Ordering::Relaxed) {
        let idle = cells.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let path = match idle {
            Some(path) => path,
            None => create(cells, "cell-")?,
        };
        match name_attempt(&path, &attempt) {
            Ok(()) => {
                return Some(Cell {
                    path,
                    reusable: true,
                    emptied: false,
                });
            }
            Err(error) => {
                tracing::debug!(%error, "The cgroup file system takes no extended attribute: each task gets a new cgroup named after it.");
                cells.named_inside.store(false, Ordering::Relaxed);
                let _ = fs::remove_dir(&path);
            }
        }
    }
    create(cells, &attempt).map(|path| Cell {
        path,
        reusable: false,
        emptied: false,
    })
}

/// A new, empty cell in this process's folder, named `<prefix><n>`.
fn create(cells: &Cells, prefix: &str) -> Option<PathBuf> {
    let n = cells.next.fetch_add(1, Ordering::Relaxed);
    let path = cells.folder.join(format!("{prefix}{n}"));
    match fs::create_dir(&path) {
        Ok(()) => Some(path),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "Cannot create a task's cgroup; it is contained by its process group only.");
            None
        }
    }
}

/// Names in cell `path` the attempt it holds (`attempt`, empty for none).
fn name_attempt(path: &Path, attempt: &str) -> io::Result<()> {
    rustix::fs::setxattr(
        path,
        ATTEMPT_XATTR,
        attempt.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(io::Error::from)
}

/// The attempt cell `path` names inside, if any.
fn named_attempt(path: &Path) -> Option<String> {
    let mut buf = [0u8; 64];
    let len = rustix::fs::getxattr(path, ATTEMPT_XATTR, &mut buf[..]).ok()?;
    String::from_utf8(buf[..len].to_vec()).ok()
}

fn open_cells() -> Result<Cells, String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo ({e})"))?;
    let mount = cgroup2_mount(&mountinfo).ok_or("no cgroup v2 file system is mounted")?;
    let own = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup ({e})"))?;
    let own = own_cgroup(&own).ok_or("vane's own cgroup v2 is not listed in /proc/self/cgroup")?;
    let parent = mount.join(own.trim_start_matches('/'));
    let pid = std::process::id();
    let start = process_start_time(pid).unwrap_or_default();
    let folder = parent.join(format!("vane-{pid}-{start}"));
    fs::create_dir(&folder)
        .or_else(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| format!("cannot create the cgroup {} ({e})", folder.display()))?;
    sweep_stale(&parent, &folder);
    Ok(Cells {
        folder,
        next: AtomicU64::new(0),
        idle: Mutex::new(Vec::new()),
        named_inside: AtomicBool::new(true),
    })
}

/// The mount point of the cgroup v2 file system, from `/proc/self/mountinfo`.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next()? != "cgroup2" {
            return None;
        }
        mount.split(' ').nth(4).map(|p| PathBuf::from(unescape(p)))
    })
}

/// mountinfo writes a space, tab, newline and backslash in a path as octal escapes.
fn unescape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// This process's path in the cgroup v2 hierarchy: the `0::` line of `/proc/self/cgroup`.
fn own_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("0::"))
}

/// Removes the cells of vane processes that are gone (a crash, `kill -9`) once they are empty.
/// What they still hold is left alone: the attempts in them belong to runs another vane adopts,
/// which kills a live attempt's process group or, if it finished meanwhile, records how it
/// ended; killing it here, from whatever vane starts first on the host (another project's, or a
/// `vane run`), would take that ending away.
fn sweep_stale(parent: &Path, ours: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Some((pid, start)) = name
            .to_str()
            .and_then(|n| n.strip_prefix("vane-"))
            .and_then(|n| n.split_once('-'))
            .and_then(|(p, s)| Some((p.parse::<u32>().ok()?, s.parse::<u64>().ok()?)))
        else {
            continue;
        };
        if path == ours || process_start_time(pid) == Some(start) {
            continue;
        }
        // Each fails while its cell holds a process; a later start tries again.
        for cell in fs::read_dir(&path).into_iter().flatten().flatten() {
            let _ = fs::remove_dir(cell.path());
        }
        let _ = fs::remove_dir(&path);
    }
}

/// Ends what the cells of the job logging to `log_path` still hold, in any vane's folder on
/// this host: for the vane adopting an attempt whose vane died, after it killed the attempt's
/// process group, so that a daemon the attempt moved out of its group goes too. Returns the
/// processes that were left, as `(pid, command line)`.
pub async fn end_cells_of(log_path: &Path, grace: Duration) -> Vec<(u32, String)> {
    let Some(parent) = cells().and_then(|c| c.folder.parent()) else {
        return Vec::new();
    };
    let prefix = cell_prefix(log_path);
    let mut found = Vec::new();
    for folder in fs::read_dir(parent).into_iter().flatten().flatten() {
        if !folder.file_name().to_string_lossy().starts_with("vane-") {
            continue;
        }
        for cell in fs::read_dir(folder.path()).into_iter().flatten().flatten() {
            let path = cell.path();
            let named = cell.file_name().to_string_lossy().starts_with(&prefix)
                || named_attempt(&path).as_deref() == Some(prefix.as_str());
            if named {
                found.push(Cell {
                    path,
                    reusable: false,
                    emptied: false,
                });
            }
        }
    }
    let mut left = Vec::new();
    for mut cell in found {
        left.extend(cell.end_leftovers(grace).await);
    }
    say_left(log_path, 0, &left);
    left
}

/// Says in the job's log, where a person looks first, and in vane's own, which processes the
/// job (its leader `pid`, 0 when unknown) left running outside its process group.
pub(crate) fn say_left(log_path: &Path, pid: u32, left: &[(u32, String)]) {
    if left.is_empty() {
        return;
    }
    let list: Vec<String> = left
        .iter()
        .map(|(pid, name)| format!("pid {pid} ({name})"))
        .collect();
    tracing::warn!(pid, left = %list.join(", "), "Task left processes running outside its process group; terminated them.");
    let note = format!(
        "\nvane: the task left {} running after its end, outside its process group: {}; vane \
         terminated {}\n",
        if left.len() == 1 {
            "a process".to_owned()
        } else {
            format!("{} processes", left.len())
        },
        list.join(", "),
        if left.len() == 1 { "it" } else { "them" },
    );
    if let Ok(mut log) = fs::OpenOptions::new().append(true).open(log_path) {
        let _ = io::Write::write_all(&mut log, note.as_bytes());
    }
}

impl Cell {
    /// Moves process `pid` into the cell. Its descendants follow it from then on.
    pub(crate) fn adopt(&self, pid: u32) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    /// The processes in the cell now.
    pub(crate) fn members(&self) -> Vec<u32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    fn populated(&self) -> bool {
        match fs::read_to_string(self.path.join("cgroup.events")) {
            Ok(events) => events.lines().any(|l| l == "populated 1"),
            Err(_) => !self.members().is_empty(),
        }
    }

    /// Ends what is left in the cell: SIGTERM (and SIGCONT, so a stopped process notices), up
    /// to `grace` to exit, then SIGKILL. Returns what was left, as `(pid, name)`, for the log.
    pub(crate) async fn end_leftovers(&mut self, grace: Duration) -> Vec<(u32, String)> {
        let left: Vec<(u32, String)> = self
            .members()
            .into_iter()
            .map(|pid| (pid, process_name(pid)))
            .collect();
        if left.is_empty() {
            self.emptied = true;
            return left;
        }
        for &(pid, _) in &left {
            signal(pid, Signal::SIGTERM);
            signal(pid, Signal::SIGCONT);
        }
        if self.emptied_within(grace).await {
            self.emptied = true;
            return left;
        }
        self.kill_all();
        self.emptied = self.emptied_within(KILL_SETTLE).await;
        if !self.emptied {
            tracing::error!(cell = %self.path.display(), "Processes a task left are still running after SIGKILL.");
        }
        left
    }

    async fn emptied_within(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if !self.populated() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// SIGKILL to everything in the cell, forks in flight included: `cgroup.kill` (Linux 5.14)
    /// does that atomically; before it, freezing the cell first stops new forks.
    fn kill_all(&self) {
        if fs::write(self.path.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        let frozen = fs::write(self.path.join("cgroup.freeze"), "1").is_ok();
        for pid in self.members() {
            signal(pid, Signal::SIGKILL);
        }
        if frozen {
            // A killed process that is frozen dies only once thawed.
            let _ = fs::write(self.path.join("cgroup.freeze"), "0");
        }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        // An empty cell of this process is used again, once it no longer names its attempt,
        // so that no adopter of that attempt takes the next one's processes for its own.
        if self.reusable
            && (self.emptied || !self.populated())
            && name_attempt(&self.path, "").is_ok()
            && let Some(cells) = cells()
        {
            let path = std::mem::take(&mut self.path);
            cells
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(path);
            return;
        }
        // Fails only while the cell still holds a process (one stuck after SIGKILL); the sweep
        // at the next start removes it then.
        if let Err(error) = fs::remove_dir(&self.path) {
            tracing::debug!(cell = %self.path.display(), %error, "Cannot remove a task's cgroup.");
        }
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        // The process may have exited since the list was read; that is what was wanted.
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// The command line of `pid`, for the log: what a person would recognise in `ps`.
fn process_name(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = words.join(" ");
    if line.len() > 120 {
        let cut = (0..=117)
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0);
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_hybrid_and_unified_layouts() {
        let hybrid = "34 25 0:29 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory\n\
                      35 25 0:30 / /sys/fs/cgroup/unified rw,relatime shared:11 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let none = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
        assert_eq!(cgroup2_mount(none), None);
        let spaced = "35 25 0:30 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(spaced),
            Some(PathBuf::from("/mnt/my cgroups"))
        );
    }

    /// (Needs cgroup v2 that vane may write to: root, as in CI.)
    #[test]
    fn an_ended_attempts_cell_is_used_again_naming_only_its_next_attempt() {
        let (a, b) = (Path::new("/logs/a.1.log"), Path::new("/logs/b.1.log"));
        let first = new_cell(a).expect("a cgroup for the task");
        let path = first.path.clone();
        assert_eq!(named_attempt(&path), Some(cell_prefix(a)));
        drop(first);
        assert!(path.is_dir(), "an empty cell is kept to be used again");
        assert_eq!(named_attempt(&path).as_deref(), Some(""));
        let second = new_cell(b).expect("a cgroup for the task");
        assert_eq!(second.path, path);
        assert_eq!(named_attempt(&path), Some(cell_prefix(b)));
        // Two at once get two cells.
        let third = new_cell(a).expect("a cgroup for the task");
        assert_ne!(third.path, second.path);
    }

    #[test]
    fn reads_the_own_cgroup_from_the_unified_line() {
        let text = "4:memory:/process_api/31844e5a\n0::/system.slice/vane.service\n";
        assert_eq!(own_cgroup(text), Some("/system.slice/vane.service"));
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }
}
