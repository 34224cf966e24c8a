//! A throw-away project folder and the real `vane` binary, in the style of `just`'s tests.
//!
//! ```ignore
//! let p = Project::new().dag("hello", "[tasks.a]\ncommand = \"echo hi\"\n");
//! p.vane(&["run", "hello"]).success();
//! assert_eq!(p.show(1)["state"], "success");
//! ```
//!
//! Every command runs with the project folder as its working directory, so the defaults
//! `--dags dags` and `--db .vane/vane.db` apply, exactly as for a person in a project.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub(crate) const VANE: &str = env!("CARGO_BIN_EXE_vane");

/// Which database a project's commands use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The default: `.vane/vane.db`.
    Sqlite,
    /// A fresh PostgreSQL database of its own (`VANE_TEST_PG` names the server), dropped at
    /// the end; logs, work and artifacts stay in `.vane/` as with SQLite.
    Postgres,
}

/// Defines each listed test (a `fn name(backend: Backend)`) once per backend:
/// `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::harness::Backend::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::harness::Backend::Postgres);
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// A temporary project: a `dags/` folder and whatever vane writes beside it.
pub(crate) struct Project {
    dir: TempDir,
    /// The folder as the binary sees it (`getcwd` resolves symlinks), for comparing paths.
    root: PathBuf,
    /// The PostgreSQL database, when the project uses one.
    pg: Option<vane_store::testing::TestDb>,
    /// Set for every vane process of the project (credentials of a storage, say).
    env: Vec<(String, String)>,
}

impl Project {
    /// A project on the given backend.
    pub(crate) fn on(backend: Backend) -> Self {
        let mut p = Self::new();
        if backend == Backend::Postgres {
            p.pg = Some(vane_store::testing::TestDb::new());
        }
        p
    }

    pub(crate) fn backend(&self) -> Backend {
        if self.pg.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// The database as `vane status` shows it.
    pub(crate) fn database(&self) -> String {
        match &self.pg {
            Some(db) => db.url().to_owned(),
            None => ".vane/vane.db".to_owned(),
        }
    }

    /// Runs SQL on the project's database with the backend's own client (`sqlite3` or
    /// `psql`), for assertions on what is recorded; its stdout, columns joined by `|`.
    pub(crate) fn sql(&self, sql: &str) -> String {
        let output = match &self.pg {
            Some(db) => Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-F", "|", "-d", db.url(), "-c", sql])
                .output(),
            None => Command::new("sqlite3")
                .arg(self.path().join(".vane/vane.db"))
                .arg(sql)
                .output(),
        }
        .expect("run the database's client (sqlite3 or psql)");
        assert!(
            output.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("vane-e2e-")
            .tempdir()
            .expect("create a temporary folder");
        fs::create_dir(dir.path().join("dags")).expect("create dags/");
        let root = dir.path().canonicalize().expect("canonical temp path");
        Self {
            dir,
            root,
            pg: None,
            env: Vec::new(),
        }
    }

    /// Sets `name` to `value` for every vane process of the project.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds (or replaces) `dags/<name>.toml`.
    pub(crate) fn dag(self, name: &str, text: &str) -> Self {
        self.write_dag(name, text);
        self
    }

    pub(crate) fn write_dag(&self, name: &str, text: &str) {
        self.write(&format!("dags/{name}.toml"), text);
    }

    /// Writes a file relative to the project folder, creating parent folders.
    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent folder");
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The project folder with symlinks resolved, as paths recorded by vane start.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `$VANE_WORK` of runs in this project (the default, beside the database).
    pub(crate) fn work(&self) -> PathBuf {
        self.root.join(".vane").join("work")
    }

    pub(crate) fn read_work(&self, name: &str) -> String {
        let path = self.work().join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// A `vane` command ready to run in the project folder, with an environment that does
    /// not depend on the machine running the tests.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(VANE);
        command.args(args);
        self.configure(&mut command);
        command
    }

    /// `PREFIX... vane ARGS...` (e.g. `ip netns exec NS`), with the environment of
    /// [`Project::command`], which the prefix must pass on to vane.
    pub(crate) fn wrapped_command(&self, prefix: &[&str], args: &[&str]) -> Command {
        let Some((program, rest)) = prefix.split_first() else {
            return self.command(args);
        };
        let mut command = Command::new(program);
        command.args(rest).arg(VANE).args(args);
        self.configure(&mut command);
        command
    }

    fn configure(&self, command: &mut Command) {
        command
            .current_dir(self.path())
            .env_remove("VANE_DAGS")
            .env_remove("VANE_DB")
            .env_remove("VANE_STATE_DIR")
            .env_remove("VANE_WORK")
            .env_remove("VANE_CONFIG")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            // Never let git find a repository around the temporary folder.
            .env(
                "GIT_CEILING_DIRECTORIES",
                self.root.parent().unwrap_or(Path::new("/")),
            )
            // Engine progress lines carry timestamps and pids; keep stderr to what a
            // person reads after a run (the header line and the task table).
            .env("VANE_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(db) = &self.pg {
            command.env("VANE_DB", db.url());
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
    }

    /// Runs `vane ARGS...` to the end.
    pub(crate) fn vane(&self, args: &[&str]) -> Output {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot start {VANE}: {e}"));
        Output {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `vane show RUN --json`.
    pub(crate) fn show(&self, run: i64) -> Value {
        self.vane(&["show", &run.to_string(), "--json"])
            .success()
            .json()
    }

    /// `vane runs --json`: every run, newest first.
    pub(crate) fn runs(&self) -> Vec<Value> {
        match self.vane(&["runs", "--json"]).success().json() {
            Value::Array(runs) => runs,
            other => panic!("`vane runs --json` is not an array: {other}"),
        }
    }

    /// `vane logs RUN TASK [--attempt N]`, which must succeed; its stdout.
    pub(crate) fn logs(&self, run: i64, task: &str, attempt: Option<u32>) -> String {
        let run = run.to_string();
        let attempt = attempt.map(|a| a.to_string());
        let mut args = vec!["logs", &run, task];
        if let Some(a) = &attempt {
            args.extend(["--attempt", a]);
        }
        self.vane(&args).success().stdout
    }

    /// Makes command output stable for snapshots: the project's path becomes `[PROJECT]`,
    /// and in tables (cells separated by two or more spaces, whose widths follow their
    /// contents) cells are joined with ` | ` and durations become `[DURATION]`.
    pub(crate) fn filter(&self, text: &str) -> String {
        let text = text
            .replace(&self.root.display().to_string(), "[PROJECT]")
            .replace(&self.path().display().to_string(), "[PROJECT]");
        let mut out = String::new();
        for line in text.lines() {
            if line.contains("  ") && !line.starts_with(' ') {
                let cells: Vec<&str> = line
                    .split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| if is_duration(c) { "[DURATION]" } else { c })
                    .collect();
                out.push_str(&cells.join(" | "));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        out
    }

    /// Every file below the project folder whose name is `name`.
    pub(crate) fn find_files_named(&self, name: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_name() == name {
                    found.push(path.clone());
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, name, found);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.path(), name, &mut found);
        found
    }
}

/// `12ms`, `1.5s`, `2m05s`: how vane prints a duration.
fn is_duration(cell: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(ms) = cell.strip_suffix("ms") {
        return digits(ms);
    }
    if let Some((m, s)) = cell.strip_suffix('s').and_then(|c| c.split_once('m')) {
        return digits(m) && digits(s);
    }
    cell.strip_suffix('s').is_some_and(|s| {
        let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
        digits(whole) && digits(frac)
    })
}

/// What a finished `vane` command printed, and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) args: Vec<String>,
    /// `None` when killed by a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "`vane {}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub(crate) fn success(self) -> Self {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        self
    }

    /// Asserts this exact exit code.
    #[track_caller]
    pub(crate) fn code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "{}", self.describe());
        self
    }

    /// Asserts a non-zero exit code (and not death by a signal).
    #[track_caller]
    pub(crate) fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a failure: {}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub(crate) fn stderr_contains(self, needle: &str) -> Self {
        self.contains("stderr", &self.stderr, needle);
        self
    }

    #[track_caller]
    pub(crate) fn stdout_contains(self, needle: &str) -> Self {
        self.contains("stdout", &self.stdout, needle);
        self
    }

    #[track_caller]
    fn contains(&self, stream: &str, text: &str, needle: &str) {
        assert!(
            text.contains(needle),
            "{stream} lacks {needle:?}: {}",
            self.describe()
        );
    }

    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// A task's entry in `vane show --json`.
#[track_caller]
pub(crate) fn task<'a>(show: &'a Value, id: &str) -> &'a Value {
    show["tasks"]
        .as_array()
        .expect("`tasks` is a list")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task `{id}` in {show:#}"))
}

/// The attempts of a task in `vane show --json`.
#[track_caller]
pub(crate) fn attempts<'a>(show: &'a Value, id: &str) -> &'a [Value] {
    task(show, id)["attempts"]
        .as_array()
        .expect("`attempts` is a list")
}

/// Whether `pid` names a running (not zombie) process whose command name is `comm`.
/// A pid reused by an unrelated process counts as gone.
pub(crate) fn process_alive(pid: u32, comm: &str) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let name = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    name == comm && !matches!(state, "Z" | "X" | "x")
}

/// Sends `signal` (e.g. "INT", "KILL") to `pid` with the `kill` command.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Kills a process a test started (through vane) if it is still alive when the guard
/// drops, so that a failing assertion leaves nothing behind.
pub(crate) struct KillOnDrop {
    pub(crate) pid: u32,
    pub(crate) comm: &'static str,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if process_alive(self.pid, self.comm) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.pid.to_string())
                .status();
        }
    }
}

/// Polls `check` every 10 ms until it returns `Some`, failing after `limit` (a generous
/// bound that only a hang reaches, never a threshold on how fast vane is).
#[track_caller]
pub(crate) fn wait_for<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    wait_for_every(Duration::from_millis(10), what, limit, check)
}

/// [`wait_for`], polling every `interval`.
#[track_caller]
pub(crate) fn wait_for_every<T>(
    interval: Duration,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(interval);
    }
}

/// Reads a file holding a pid, once it holds a whole one.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `vane scheduler` started in the background by [`Project::scheduler`]. Its stdout and
/// stderr go to a file in the project folder ([`Daemon::log`]). If it still runs when the
/// value drops (a failed assertion, say), it is killed with SIGKILL and reaped, so no test
/// leaves a daemon behind; tasks it started are the test's own business.
pub(crate) struct Daemon {
    child: std::process::Child,
    log: PathBuf,
}

impl Project {
    /// Starts `vane scheduler ARGS...` in the project folder, logging at `info`.
    pub(crate) fn scheduler(&self, args: &[&str]) -> Daemon {
        self.scheduler_via(&[], &[], args)
    }

    /// Starts `PREFIX... vane scheduler ARGS...` with `env` added, like
    /// [`Project::scheduler`]. The prefix must exec vane in its own process (as
    /// `ip netns exec` does), so that the daemon's pid is vane's and signals reach it.
    pub(crate) fn scheduler_via(
        &self,
        prefix: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        let mut full = vec!["scheduler"];
        full.extend_from_slice(args);
        self.daemon_via(prefix, env, &full)
    }

    /// Starts the long-running `vane ARGS...` (a scheduler, an agent) behind `prefix`, with
    /// `env`, its output going to a log file of its own.
    pub(crate) fn daemon_via(
        &self,
        prefix: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Daemon {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = self.path().join(format!("{}-{n}.log", args[0]));
        let file = fs::File::create(&log).expect("create the daemon's log file");
        let child = self
            .wrapped_command(prefix, args)
            .env("VANE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(file.try_clone().expect("clone the log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {prefix:?} {VANE} {}: {e}", args[0]));
        Daemon { child, log }
    }
}

impl Daemon {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon printed so far (stdout and stderr).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process still runs (it is reaped once it has exited).
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// [`wait_for`], but fails at once, with the daemon's log, should the daemon exit.
    #[track_caller]
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the scheduler exited ({status}) while waiting for {what}; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "gave up after {limit:?} waiting for {what}; the scheduler's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (boundedly) until a line of the daemon's log contains every one of `needles`;
    /// that line.
    #[track_caller]
    pub(crate) fn wait_for_log(&mut self, needles: &[&str], limit: Duration) -> String {
        let log = self.log.clone();
        self.wait_for(&format!("a log line with {needles:?}"), limit, || {
            fs::read_to_string(&log).ok().and_then(|text| {
                text.lines()
                    .find(|l| needles.iter().all(|n| l.contains(n)))
                    .map(str::to_owned)
            })
        })
    }

    /// Waits (boundedly) for the process to exit; its exit code, or `None` for a signal.
    #[track_caller]
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the scheduler") {
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "the scheduler did not exit within {limit:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM once the daemon handles it (an earlier one would kill it on the spot),
    /// and waits (boundedly) for it to exit; its exit code, or `None` for a signal.
    #[track_caller]
    pub(crate) fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let pid = self.pid();
        self.wait_for("the scheduler to handle SIGTERM", limit, || {
            catches(pid, 15).then_some(())
        });
        send_signal(pid, "TERM");
        self.wait(limit)
    }

    /// SIGKILL, like a crash or an OOM kill, and reaps the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// Whether process `pid` has installed a handler for signal number `signo` (`SigCgt`).
pub(crate) fn catches(pid: u32, signo: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (signo - 1)) != 0)
}

/// A `vane serve` on a free port, killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// `127.0.0.1:PORT`
    pub(crate) addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Project {
    /// `vane serve` on a free port with API token `token`.
    pub(crate) fn serve(&self, token: &str) -> Served {
        self.serve_with(Some(token)).0
    }

    /// `vane serve` on loopback as the README starts it, with no token given; the web UI link
    /// it prints (which carries the token it made).
    pub(crate) fn serve_as_documented(&self) -> (Served, String) {
        self.serve_with(None)
    }

    fn serve_with(&self, token: Option<&str>) -> (Served, String) {
        let mut command = self.command(&["serve", "--http", "127.0.0.1:0"]);
        match token {
            Some(token) => command.env("VANE_API_TOKEN", token),
            None => command.env_remove("VANE_API_TOKEN"),
        };
        let child = command
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vane serve");
        // Owned by `Served` at once, so any failure below still kills and reaps it.
        let mut served = Served {
            child,
            addr: String::new(),
        };
        let mut stderr = BufReader::new(served.child.stderr.take().expect("piped stderr"));
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).expect("read stderr") > 0,
                "vane serve exited without saying where it listens"
            );
            if let Some(addr) = line.trim().strip_prefix("vane: serving the API on http://") {
                served.addr = addr.to_owned();
            }
            if let Some(link) = line.trim().strip_prefix("vane: web UI at ") {
                let link = link.to_owned();
                // Keep draining stderr so the server never blocks on a full pipe.
                std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return (served, link);
            }
        }
    }
}
