//! Killing tasks: timeouts and Ctrl-C take the whole process group down.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{
    Backend, KillOnDrop, Project, attempts, process_alive, read_pid, send_signal, task, wait_for,
    wait_for_every,
};

/// Long enough for any machine; only a hang gets there.
const PATIENCE: Duration = Duration::from_secs(30);

fn a_timeout_kills_the_task_and_its_grandchildren(backend: Backend) {
    let p = Project::on(backend).dag(
        "slow",
        r#"
[tasks.slow]
command = "sh -c 'sleep 1000 & echo $! > \"$VANE_WORK/child.pid\"; wait'"
timeout = "500ms"

[tasks.after]
command = "echo after"
depends_on = ["slow"]
"#,
    );
    let out = p.vane(&["run", "slow"]);
    let grandchild = read_pid(&p.work().join("child.pid")).expect("the task wrote child.pid");
    let _cleanup = KillOnDrop {
        pid: grandchild,
        comm: "sleep",
    };
    let out = out.code(1);
    assert!(out.stdout.contains("timed out"), "{}", out.stdout);

    let show = p.show(1);
    assert_eq!(show["state"], "failed", "{show:#}");
    assert_eq!(task(&show, "slow")["state"], "failed", "{show:#}");
    let a = attempts(&show, "slow");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["state"], "failed");
    assert!(
        a[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("timed out")),
        "the attempt says it timed out: {show:#}"
    );
    assert_eq!(task(&show, "after")["state"], "upstream_failed");
    assert!(
        !process_alive(grandchild, "sleep"),
        "the grandchild {grandchild} (sleep 1000) outlived the task's timeout"
    );
    // The log itself says why it ends where it does.
    let log = p.logs(1, "slow", None);
    assert!(
        log.trim_end()
            .ends_with("killed after its timeout of 500ms, with its whole process group"),
        "{log}"
    );
    // `vane runs --state` picks the failed run out.
    let failed = p
        .vane(&["runs", "--state", "failed", "--json"])
        .success()
        .json();
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed:#}");
    let succeeded = p
        .vane(&["runs", "--state", "success", "--json"])
        .success()
        .json();
    assert_eq!(succeeded.as_array().map(Vec::len), Some(0), "{succeeded:#}");
}

fn a_task_that_ignores_sigterm_is_killed_after_the_grace_period(backend: Backend) {
    let p = Project::on(backend).dag(
        "stubborn",
        r#"
[tasks.stubborn]
command = "trap '' TERM; sleep 1000 & echo $! > \"$VANE_WORK/child.pid\"; wait"
timeout = "300ms"
"#,
    );
    let out = p.vane(&["run", "stubborn", "--kill-grace", "1"]);
    let child = read_pid(&p.work().join("child.pid")).expect("the task wrote child.pid");
    let _cleanup = KillOnDrop {
        pid: child,
        comm: "sleep",
    };
    out.code(1);
    let show = p.show(1);
    assert_eq!(task(&show, "stubborn")["state"], "failed", "{show:#}");
    assert!(
        attempts(&show, "stubborn")[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("timed out")),
        "{show:#}"
    );
    assert!(
        !process_alive(child, "sleep"),
        "{child} ignored SIGTERM and survived SIGKILL too"
    );
}

fn processes_a_task_leaves_behind_are_killed(backend: Backend) {
    let p = Project::on(backend).dag(
        "leaky",
        r#"
[tasks.leaky]
command = 'sleep 1000 & echo $! > "$VANE_WORK/left.pid"; echo left it running'
"#,
    );
    let out = p.vane(&["run", "leaky"]);
    let left = read_pid(&p.work().join("left.pid")).expect("the task wrote left.pid");
    let _cleanup = KillOnDrop {
        pid: left,
        comm: "sleep",
    };
    out.success();
    assert_eq!(p.show(1)["tasks"][0]["state"], "success");
    assert!(
        !process_alive(left, "sleep"),
        "the background process {left} outlived its task"
    );
}

/// The sleeper writes its pid, then becomes `sleep 1000` (same pid).
const SLEEPER: &str = r#"
[tasks.sleeper]
command = 'echo $$ > "$VANE_WORK/sleeper.pid"; exec sleep 1000'

[tasks.after]
command = 'touch "$VANE_WORK/after.ran"'
depends_on = ["sleeper"]

[tasks.last]
command = 'touch "$VANE_WORK/last.ran"'
depends_on = ["after"]
"#;

/// Whether process `pid` has installed a handler for signal number `signo` (`SigCgt`).
fn catches(pid: u32, signo: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (signo - 1)) != 0)
}

/// A started `vane run` whose process is killed if the test fails before it exits.
struct Background {
    child: std::process::Child,
}

impl Background {
    fn start(p: &Project, args: &[&str]) -> Self {
        let log = |name: &str| {
            Stdio::from(File::create(p.path().join(name)).expect("create output file"))
        };
        let child = p
            .command(args)
            .stdout(log("vane.stdout"))
            .stderr(log("vane.stderr"))
            .spawn()
            .expect("start vane");
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (boundedly) for the process to exit; its exit code, or `None` for a signal.
    fn wait(&mut self) -> Option<i32> {
        let status = wait_for("vane to exit", PATIENCE, || {
            self.child.try_wait().expect("wait for vane")
        });
        status.code()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the sleeper DAG, sends `signal` (`INT` or `TERM`, number `signo`) to vane once the
/// task runs and vane listens for it, and checks that the run stops cleanly.
fn stop_a_run_with(signal: &str, signo: u32) {
    let p = Project::new().dag("sleepy", SLEEPER);
    let mut vane = Background::start(&p, &["run", "sleepy"]);
    let pid_file = p.work().join("sleeper.pid");
    let sleeper = wait_for("the task to write its pid", PATIENCE, || {
        read_pid(&pid_file)
    });
    let _cleanup = KillOnDrop {
        pid: sleeper,
        comm: "sleep",
    };
    // Wait until vane listens for the signal; see `ctrl_c_right_after_a_task_starts_...`
    // for what happens to one that comes earlier.
    wait_for("vane to handle the signal", PATIENCE, || {
        catches(vane.pid(), signo).then_some(())
    });
    send_signal(vane.pid(), signal);
    let code = vane.wait();
    let stderr = std::fs::read_to_string(p.path().join("vane.stderr")).unwrap_or_default();
    // 128 + the signal's number, as a shell reports a command a signal ended: 130 for Ctrl-C.
    assert_eq!(
        code,
        Some(128 + signo as i32),
        "vane exited with {code:?} after SIG{signal}; stderr:\n{stderr}"
    );
    assert!(
        !process_alive(sleeper, "sleep"),
        "the task's process {sleeper} outlived SIG{signal}"
    );

    let show = p.show(1);
    assert_eq!(show["state"], "failed", "{show:#}");
    assert!(
        show["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "the run records why it failed: {show:#}"
    );
    let sleeper_task = task(&show, "sleeper");
    assert_eq!(sleeper_task["state"], "failed", "{show:#}");
    assert!(
        sleeper_task["reason"]
            .as_str()
            .is_some_and(|r| r.contains("stopped")),
        "{show:#}"
    );
    let a = attempts(&show, "sleeper");
    assert_eq!(a.len(), 1, "{show:#}");
    assert!(
        a[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "the attempt records why it ended: {show:#}"
    );
    assert!(a[0]["ended_at"].is_string(), "{show:#}");
    for id in ["after", "last"] {
        assert_eq!(task(&show, id)["state"], "skipped", "{show:#}");
        assert!(attempts(&show, id).is_empty());
        assert!(!p.work().join(format!("{id}.ran")).exists());
    }
}

/// Regression: the log line of a timeout read `timeout=Some(500ms)`, Rust's debug text.
#[test]
fn a_timeout_is_logged_in_seconds() {
    let p = Project::new().dag(
        "slow",
        "[tasks.slow]\ncommand = \"sleep 1000\"\ntimeout = \"500ms\"\n",
    );
    let out = p
        .command(&["run", "slow"])
        .env("VANE_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("Task timed out"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("timeout_secs=0.5") && !line.contains("Some("),
        "{line}"
    );
}

/// A backfill of `daily` from 2026-01-01 to `to`, one run at a time, whose task writes its
/// pid and then runs `then`; returned once the first task has started, with its pid.
fn backfill_under_way(then: &str, to: &str) -> (Project, Background, u32) {
    let p = Project::new().dag(
        "daily",
        &format!(
            "[dag]\nschedule = \"0 2 * * *\"\n[tasks.a]\ncommand = 'echo $$ > \"$VANE_WORK/a.pid\"; {then}'\n"
        ),
    );
    let vane = Background::start(
        &p,
        &[
            "backfill",
            "daily",
            "--from",
            "2026-01-01",
            "--to",
            to,
            "--max-active",
            "1",
        ],
    );
    let task = wait_for("the first task to start", PATIENCE, || {
        read_pid(&p.work().join("a.pid"))
    });
    (p, vane, task)
}

/// Regression: Ctrl-C paused a backfill as documented, but vane exited 1, the code of a
/// failed backfill, where the exit-code table says 130.
#[test]
fn ctrl_c_pauses_a_backfill_and_exits_130() {
    let (p, mut vane, _) = backfill_under_way("sleep 1", "2026-01-03");
    wait_for("vane to handle the signal", PATIENCE, || {
        catches(vane.pid(), 2).then_some(())
    });
    send_signal(vane.pid(), "INT");
    let code = vane.wait();
    let stderr = std::fs::read_to_string(p.path().join("vane.stderr")).unwrap_or_default();
    assert_eq!(code, Some(130), "{stderr}");
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert_eq!(list[0]["state"], "paused", "{list:#}");
}

/// Regression: `vane backfills cancel` from another terminal recorded the runs it stopped as
/// "stopped by the user", as if someone had stopped each of them by hand.
#[test]
fn cancelling_a_backfill_says_so_on_the_runs_it_stopped() {
    let (p, mut vane, sleeper) = backfill_under_way("exec sleep 1000", "2026-01-02");
    let _cleanup = KillOnDrop {
        pid: sleeper,
        comm: "sleep",
    };
    p.vane(&["backfills", "cancel", "1"]).success();
    vane.wait();
    assert!(!process_alive(sleeper, "sleep"));
    let reasons: Vec<_> = p
        .runs()
        .iter()
        .map(|r| (r["state"].clone(), r["reason"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("failed".into(), "backfill 1 was cancelled".into()),
            (
                "failed".into(),
                "stopped: its backfill was cancelled".into()
            ),
        ]
    );
}

#[test]
fn ctrl_c_stops_the_run_and_kills_its_tasks() {
    stop_a_run_with("INT", 2);
}

#[test]
fn sigterm_stops_the_run_like_ctrl_c() {
    stop_a_run_with("TERM", 15);
}

/// A person presses Ctrl-C as soon as they see the first task start. vane installs its
/// signal handler only after it has launched the first wave of tasks, so a Ctrl-C in
/// between kills vane on the spot (the default action; or is lost, when vane inherited
/// SIGINT as ignored): the tasks keep running with nobody watching them, and the run stays
/// `running` in the database forever.
///
/// Fifteen tasks beside the sleeper make launching the first wave take a while, which is
/// when the Ctrl-C arrives. This never fails when vane handles the signal from the start.
#[test]
fn ctrl_c_right_after_a_task_starts_still_stops_it() {
    let mut dag = String::from(SLEEPER);
    dag.insert_str(0, "[dag]\nmax_active_tasks = 16\n");
    for i in 1..=15 {
        // Ends by itself once the test removes the project folder (or after 30 s), so
        // that nothing outlives the test even when vane leaves its tasks behind.
        dag.push_str(&format!(
            "\n[tasks.busy{i}]\ncommand = 'i=0; while [ -d \"$VANE_WORK\" ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.05; done'\n"
        ));
    }
    for attempt in 1..=3 {
        let p = Project::new().dag("sleepy", &dag);
        let mut vane = Background::start(&p, &["run", "sleepy"]);
        let pid_file = p.work().join("sleeper.pid");
        // Like a finger on Ctrl-C: as soon as the first task shows up.
        let sleeper = wait_for_every(
            Duration::from_micros(200),
            "the task to write its pid",
            PATIENCE,
            || read_pid(&pid_file),
        );
        let _cleanup = KillOnDrop {
            pid: sleeper,
            comm: "sleep",
        };
        send_signal(vane.pid(), "INT");
        let code = vane.wait();
        let alive = process_alive(sleeper, "sleep");
        let state = p.runs()[0]["state"].clone();
        assert!(
            code == Some(130) && !alive && state == "failed",
            "try {attempt}: after Ctrl-C vane exited with {code:?} (None = killed by the \
             signal), the task's process is {}, and the run is recorded {state}",
            if alive { "still running" } else { "gone" }
        );
    }
}

/// A run the scheduler executes, its first task running for long, its second waiting on it.
const LONG_THEN_MORE: &str = r#"
[tasks.train]
command = "echo $$ > \"$VANE_WORK/train.pid\"; exec sleep 600"
retries = 2

[tasks.report]
command = "echo report"
depends_on = ["train"]
"#;

/// `vane stop` works from another process than the one executing the run: the scheduler's
/// run is stopped, its task killed and not retried, and the record says who and why.
fn vane_stop_ends_a_run_the_scheduler_executes_and_says_who_and_why(backend: Backend) {
    let p = Project::on(backend).dag("long", LONG_THEN_MORE);
    let mut daemon = p.scheduler(&[]);
    p.vane(&["trigger", "long"]).success();
    let pid = daemon.wait_for("the task to start", PATIENCE, || {
        read_pid(&p.work().join("train.pid"))
    });
    let _cleanup = KillOnDrop { pid, comm: "sleep" };
    p.vane(&["stop", "1", "--by", "alice", "--reason", "bad input data"])
        .success()
        .stdout_contains("run 1 failed: stopped by alice: bad input data");
    assert!(
        !process_alive(pid, "sleep"),
        "the task {pid} outlived the stop"
    );
    let show = p.show(1);
    assert_eq!(show["state"], "failed", "{show:#}");
    assert_eq!(
        show["reason"], "stopped by alice: bad input data",
        "{show:#}"
    );
    assert_eq!(show["stop_requested"]["by"], "alice", "{show:#}");
    // Stopped, not failed: no retry although the task has two.
    assert_eq!(attempts(&show, "train").len(), 1, "{show:#}");
    assert_eq!(task(&show, "train")["state"], "failed", "{show:#}");
    assert_eq!(task(&show, "report")["state"], "skipped", "{show:#}");
    // An ended run has nothing to stop.
    p.vane(&["stop", "1"])
        .failure()
        .stderr_contains("run 1 is failed: it has ended, so there is nothing to stop");
    assert!(daemon.is_running(), "{}", daemon.log());
}

/// A queued run nobody has started ends at once when stopped, and a scheduler started later
/// never runs it.
fn a_queued_run_stopped_before_it_starts_never_starts(backend: Backend) {
    let p = Project::on(backend).dag("long", LONG_THEN_MORE);
    p.vane(&["trigger", "long"]).success();
    p.vane(&["stop", "1", "--reason", "wrong params"])
        .success()
        .stdout_contains("run 1 failed: stopped by ");
    let mut daemon = p.scheduler(&[]);
    // Passes go by (its heartbeat counts them); the run is not started.
    daemon.wait_for("three scheduler passes", PATIENCE, || {
        let status = p.vane(&["status", "--json"]).success().json();
        (status["schedulers"][0]["passes"].as_u64() >= Some(3)).then_some(())
    });
    let show = p.show(1);
    assert_eq!(show["state"], "failed", "{show:#}");
    assert!(
        show["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stopped by ") && r.ends_with(": wrong params")),
        "{show:#}"
    );
    assert!(attempts(&show, "train").is_empty(), "{show:#}");
    assert_eq!(task(&show, "train")["state"], "skipped", "{show:#}");
    assert!(!p.work().join("train.pid").exists());
}

/// One task stopped: its process group is killed, it fails without a retry saying who and
/// why, and the run goes on by its trigger rules (a cleanup that runs whatever happened).
fn vane_stop_task_kills_one_task_and_the_run_goes_on(backend: Backend) {
    let p = Project::on(backend).dag(
        "long",
        r#"
[tasks.train]
command = "echo $$ > \"$VANE_WORK/train.pid\"; exec sleep 600"
retries = 2

[tasks.report]
command = "echo report"
depends_on = ["train"]

[tasks.cleanup]
command = "echo cleaned >> \"$VANE_WORK/cleaned\""
depends_on = ["train"]
trigger_rule = "all_done"
"#,
    );
    let mut daemon = p.scheduler(&[]);
    p.vane(&["trigger", "long"]).success();
    let pid = daemon.wait_for("the task to start", PATIENCE, || {
        read_pid(&p.work().join("train.pid"))
    });
    let _cleanup = KillOnDrop { pid, comm: "sleep" };
    p.vane(&["stop", "1", "--task", "nope"])
        .failure()
        .stderr_contains("run 1 has no task `nope`; its tasks: train, report, cleanup");
    p.vane(&[
        "stop",
        "1",
        "--task",
        "train",
        "--by",
        "dana",
        "--reason",
        "wrong hyperparameters",
    ])
    .success()
    .stdout_contains("task `train` of run 1 failed: stopped by dana: wrong hyperparameters");
    assert!(
        !process_alive(pid, "sleep"),
        "the task {pid} outlived its stop"
    );
    daemon.wait_for("the run to end", PATIENCE, || {
        (p.show(1)["state"] == "failed").then_some(())
    });
    let show = p.show(1);
    assert_eq!(attempts(&show, "train").len(), 1, "not retried: {show:#}");
    assert_eq!(
        task(&show, "report")["state"],
        "upstream_failed",
        "{show:#}"
    );
    assert_eq!(task(&show, "cleanup")["state"], "success", "{show:#}");
    assert_eq!(p.read_work("cleaned"), "cleaned\n");
}

crate::harness::on_both_backends!(
    vane_stop_task_kills_one_task_and_the_run_goes_on,
    a_timeout_kills_the_task_and_its_grandchildren,
    a_task_that_ignores_sigterm_is_killed_after_the_grace_period,
    processes_a_task_leaves_behind_are_killed,
    vane_stop_ends_a_run_the_scheduler_executes_and_says_who_and_why,
    a_queued_run_stopped_before_it_starts_never_starts,
);
