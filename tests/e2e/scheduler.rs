//! The scheduler daemon, as a person runs it: `vane scheduler` in the background, driven
//! with `vane trigger`, `vane pause`, edits of the DAG folder, signals and crashes.
//!
//! Every daemon is a [`Daemon`], killed if a test fails before it stops it. Waits are
//! generous bounds that only a hang reaches; the few fixed sleeps are the time a person lets
//! pass (to see that nothing happens, or to leave the scheduler down), never a threshold on
//! how fast vane is.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::{
    Backend, Daemon, Output, Project, attempts, on_both_backends, read_pid, task,
};

/// Long enough for any machine; only a hang gets there.
const PATIENCE: Duration = Duration::from_secs(20);

/// A DAG ticking every second, with a task that ends at once.
const EVERY_SECOND: &str = r#"
[dag]
schedule = "*/1 * * * * *"

[tasks.a]
command = "true"
"#;

/// `vane ARGS...`, run again while it fails with "database is locked".
///
/// Two vane processes opening the database at the same moment collide (see
/// [`commands_run_while_the_scheduler_runs_all_work`]); the other tests are about something
/// else, so they step around it. The collision happens as a command opens the database,
/// before it has done anything, so running it again is safe.
fn vane(p: &Project, args: &[&str]) -> Output {
    for _ in 0..100 {
        let out = p.vane(args);
        if out.code == Some(0) || !out.stderr.contains("database is locked") {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    p.vane(args)
}

/// `vane show RUN --json`.
fn show_run(p: &Project, run: i64) -> Value {
    vane(p, &["show", &run.to_string(), "--json"])
        .success()
        .json()
}

/// `vane trigger ARGS...`, which must succeed; the run id it prints.
#[track_caller]
fn trigger(p: &Project, args: &[&str]) -> i64 {
    let mut full = vec!["trigger"];
    full.extend_from_slice(args);
    let out = vane(p, &full).success();
    out.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("`vane trigger` printed no run id ({e}): {out:?}"))
}

/// Starts `vane scheduler ARGS...` and waits until it has opened the database, so that the
/// test's own commands do not collide with that (see [`vane`]).
fn start_scheduler(p: &Project, args: &[&str]) -> Daemon {
    let mut daemon = p.scheduler(args);
    daemon.wait_for_log(&["Scheduler starting."], PATIENCE);
    daemon
}

/// Every run of `dag`, newest first (`vane runs` shows 20 unless told otherwise).
fn runs_of(p: &Project, dag: &str) -> Vec<Value> {
    let out = vane(p, &["runs", dag, "--limit", "100000", "--json"]).success();
    match out.json() {
        Value::Array(runs) => runs,
        other => panic!("`vane runs --json` is not an array: {other}"),
    }
}

/// The runs of `dag` the scheduler created on its cadence, newest first.
fn scheduled_runs(p: &Project, dag: &str) -> Vec<Value> {
    runs_of(p, dag)
        .into_iter()
        .filter(|r| r["trigger"] == "scheduled")
        .collect()
}

#[track_caller]
fn logical_date(run: &Value) -> DateTime<Utc> {
    let text = run["logical_date"]
        .as_str()
        .unwrap_or_else(|| panic!("no logical date in {run:#}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("logical date `{text}` is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

#[track_caller]
fn run_id(run: &Value) -> i64 {
    run["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no run id in {run:#}"))
}

/// Whether the `sqlite3` command-line tool is installed; checks that need it are skipped
/// when it is not.
/// Whether the test can read the database with its own client: `psql` comes with the
/// PostgreSQL the tests need; `sqlite3` may be missing.
fn can_query(p: &Project) -> bool {
    p.backend() == Backend::Postgres
        || Command::new("sqlite3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// A timestamp as the database's client prints it: RFC 3339 text from SQLite, or
/// PostgreSQL's `2026-12-04 10:00:01.5+00`.
fn db_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(&format!("{text}00"), "%Y-%m-%d %H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// `(state, start time)` of process `pid` from `/proc/PID/stat`, if it exists.
fn proc_stat(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the command name: field 3 (state) is index 0, field 22 (start time) index 19.
    Some((fields.first()?.to_string(), fields.get(19)?.parse().ok()?))
}

/// Whether the process `pid` that started at `start` still runs code. A zombie counts as
/// gone: nobody may reap it here (pid 1 of a container often does not), but it runs nothing.
fn still_running(pid: u32, start: u64) -> bool {
    proc_stat(pid).is_some_and(|(state, s)| s == start && !matches!(state.as_str(), "Z" | "X"))
}

/// Kills the process group led by a task process when the test ends, should vane have left
/// it running (a daemon killed with SIGKILL leaves its tasks behind by design).
struct KillGroupOnDrop {
    pid: u32,
    start: u64,
}

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if still_running(self.pid, self.start) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.pid)])
                .status();
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

fn a_scheduled_dag_runs_on_its_cron_grid(backend: Backend) {
    let p = Project::on(backend).dag("tick", EVERY_SECOND);
    let mut daemon = start_scheduler(&p, &[]);
    let runs = daemon.wait_for("two scheduled runs to succeed", PATIENCE, || {
        let runs = scheduled_runs(&p, "tick");
        (runs.iter().filter(|r| r["state"] == "success").count() >= 2).then_some(runs)
    });
    let mut dates = BTreeSet::new();
    for run in &runs {
        assert_eq!(run["trigger"], "scheduled", "{run:#}");
        let date = logical_date(run);
        assert_eq!(
            date.timestamp_subsec_nanos(),
            0,
            "a per-second schedule's logical date is a whole second: {run:#}"
        );
        assert!(
            dates.insert(date),
            "two runs share a logical date: {runs:#?}"
        );
    }
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

fn a_triggered_run_is_started_by_the_scheduler_with_its_params(backend: Backend) {
    let p = Project::on(backend).dag(
        "manual",
        r#"
[params]
x = 1

[tasks.record]
command = 'echo "$VANE_PARAM_X" > "$VANE_WORK/x.txt"'
"#,
    );
    let mut daemon = start_scheduler(&p, &[]);
    let run = trigger(&p, &["manual", "--param", "x=5"]);
    let show = daemon.wait_for("the triggered run to finish", PATIENCE, || {
        let show = show_run(&p, run);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    });
    assert_eq!(show["state"], "success", "{show:#}");
    assert_eq!(show["trigger"], "manual", "{show:#}");
    assert_eq!(show["params"]["x"], 5, "{show:#}");
    assert_eq!(p.read_work("x.txt").trim(), "5", "the task saw x=5");
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

fn a_paused_dag_gets_no_scheduled_runs_until_unpaused(backend: Backend) {
    let p = Project::on(backend).dag("tick", EVERY_SECOND);
    let mut daemon = start_scheduler(&p, &[]);
    daemon.wait_for("a first scheduled run", PATIENCE, || {
        (!scheduled_runs(&p, "tick").is_empty()).then_some(())
    });

    vane(&p, &["pause", "tick"]).success();
    let paused_at = Utc::now();
    // A person watching for a couple of seconds: the DAG ticks twice or more meanwhile.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(daemon.is_running(), "{}", daemon.log());
    let while_paused: Vec<Value> = scheduled_runs(&p, "tick")
        .into_iter()
        .filter(|r| logical_date(r) > paused_at)
        .collect();
    assert!(
        while_paused.is_empty(),
        "runs were scheduled after `vane pause` ({paused_at}): {while_paused:#?}"
    );
    // "Why didn't it run?" has an answer: the ticks say what was decided, and why.
    let ticks = vane(&p, &["ticks", "tick"]).success();
    assert!(
        ticks.stdout.contains("TICK (LOGICAL DATE)"),
        "{}",
        ticks.stdout
    );
    assert!(ticks.stdout.contains("run 1"), "{}", ticks.stdout);
    assert!(
        ticks.stdout.contains("note: DAG `tick` is paused"),
        "{}",
        ticks.stdout
    );
    assert!(ticks.stdout.contains("+00:00"), "{}", ticks.stdout);

    let unpaused_at = Utc::now();
    vane(&p, &["unpause", "tick"]).success();
    daemon.wait_for("a scheduled run after `vane unpause`", PATIENCE, || {
        scheduled_runs(&p, "tick")
            .iter()
            .any(|r| logical_date(r) > unpaused_at)
            .then_some(())
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    let ticks: Value = serde_json::from_str(
        &vane(&p, &["ticks", "tick", "--json", "--limit", "3"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        ticks["ticks"].as_array().map(Vec::len),
        Some(3),
        "{ticks:#}"
    );
    assert_eq!(ticks["ticks"][0]["decision"], "run", "{ticks:#}");
    assert!(
        ticks["notes"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("no scheduler is running")),
        "{ticks:#}"
    );

    // A broken edit of the file: a scheduler keeps the last good version, and so do the ticks.
    p.write_dag(
        "tick",
        &EVERY_SECOND.replace("[tasks.", "[tasks.broken]\ncomand = 1\n[tasks."),
    );
    let ticks = vane(&p, &["ticks", "tick"]).success();
    assert!(ticks.stdout.contains("run 1"), "{}", ticks.stdout);
    assert!(
        ticks
            .stdout
            .contains("note: the DAG file does not validate"),
        "{}",
        ticks.stdout
    );
}

fn sigterm_lets_the_running_task_finish_and_the_run_resumes_on_the_next_start(backend: Backend) {
    let p = Project::on(backend).dag(
        "pipeline",
        r#"
[tasks.first]
command = 'touch "$VANE_WORK/first.started"; sleep 2; touch "$VANE_WORK/first.done"'

[tasks.second]
command = 'touch "$VANE_WORK/second.ran"'
depends_on = ["first"]
"#,
    );
    let mut daemon = start_scheduler(&p, &["--grace", "30"]);
    let run = trigger(&p, &["pipeline"]);
    let started = p.work().join("first.started");
    daemon.wait_for("the first task to start", PATIENCE, || {
        started.exists().then_some(())
    });
    let code = daemon.terminate(PATIENCE);
    assert_eq!(
        code,
        Some(0),
        "the scheduler exits cleanly after SIGTERM:\n{}",
        daemon.log()
    );
    assert!(
        p.work().join("first.done").exists(),
        "the scheduler exited before the running task finished:\n{}",
        daemon.log()
    );
    assert!(
        !p.work().join("second.ran").exists(),
        "a task started after SIGTERM"
    );
    let show = show_run(&p, run);
    assert_eq!(show["state"], "queued", "the run is put aside: {show:#}");
    assert_eq!(task(&show, "first")["state"], "success", "{show:#}");
    assert_eq!(task(&show, "second")["state"], "queued", "{show:#}");
    assert!(attempts(&show, "second").is_empty(), "{show:#}");

    let mut again = start_scheduler(&p, &[]);
    let show = again.wait_for("the run to finish after the restart", PATIENCE, || {
        let show = show_run(&p, run);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    });
    assert_eq!(show["state"], "success", "{show:#}");
    assert_eq!(
        attempts(&show, "first").len(),
        1,
        "the finished task is not run again: {show:#}"
    );
    assert_eq!(task(&show, "second")["state"], "success", "{show:#}");
    assert!(p.work().join("second.ran").exists());
    assert_eq!(again.terminate(PATIENCE), Some(0), "{}", again.log());
}

fn a_crashed_schedulers_run_is_adopted_its_orphan_killed_and_the_task_retried(backend: Backend) {
    let p = Project::on(backend).dag(
        "crashy",
        r#"
[tasks.work]
command = 'if [ "$VANE_ATTEMPT" = 1 ]; then echo $$ > "$VANE_WORK/pid"; sleep 1000; fi; echo attempt $VANE_ATTEMPT'
retries = 1
"#,
    );
    let mut daemon = start_scheduler(&p, &[]);
    let run = trigger(&p, &["crashy"]);
    let pid_file = p.work().join("pid");
    let pid = daemon.wait_for("the task to write its pid", PATIENCE, || {
        read_pid(&pid_file)
    });
    let (_, start) = proc_stat(pid).expect("the task's process exists");
    let _cleanup = KillGroupOnDrop { pid, start };
    // The daemon records the process right after starting it; a crash before that is a
    // different story (nothing could tell which process to kill).
    daemon.wait_for("the attempt's pid to be recorded", PATIENCE, || {
        (attempts(&show_run(&p, run), "work")[0]["pid"] == pid).then_some(())
    });

    daemon.kill();
    assert!(
        still_running(pid, start),
        "the task died with the scheduler; nothing is left to adopt"
    );
    let show = show_run(&p, run);
    assert_eq!(show["state"], "running", "{show:#}");

    let mut again = start_scheduler(&p, &[]);
    let show = again.wait_for("the adopted run to finish", PATIENCE, || {
        let show = show_run(&p, run);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    });
    assert!(
        !still_running(pid, start),
        "the orphaned task process {pid} outlived the recovery:\n{}",
        again.log()
    );
    assert_eq!(show["state"], "success", "{show:#}");
    let a = attempts(&show, "work");
    assert_eq!(a.len(), 2, "{show:#}");
    assert_eq!(a[0]["state"], "failed", "{show:#}");
    assert!(
        a[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("scheduler lost")),
        "attempt 1 says why it failed: {show:#}"
    );
    assert_eq!(a[1]["state"], "success", "{show:#}");
    let log = vane(&p, &["logs", &run.to_string(), "work", "--attempt", "2"]).success();
    assert_eq!(log.stdout.trim(), "attempt 2");
    assert_eq!(again.terminate(PATIENCE), Some(0), "{}", again.log());
    if p.backend() == Backend::Sqlite && can_query(&p) {
        assert_eq!(p.sql("pragma integrity_check").trim(), "ok");
    }
}

fn dag_files_added_or_broken_while_the_scheduler_runs_are_picked_up(backend: Backend) {
    let p = Project::on(backend).dag("idle", "[tasks.a]\ncommand = \"true\"\n");
    let mut daemon = start_scheduler(&p, &[]);
    // The first load of the folder is done: a file written now is an edit.
    daemon.wait_for_log(&["DAG loaded", "idle"], PATIENCE);

    p.write_dag("fresh", EVERY_SECOND);
    let first = daemon.wait_for("a scheduled run of the new DAG", PATIENCE, || {
        scheduled_runs(&p, "fresh").into_iter().next()
    });

    p.write_dag(
        "fresh",
        "[dag\nschedule = \"*/1 * * * * *\"\n\n[tasks.a]\ncommand = \"true\"\n",
    );
    let broken_at = Utc::now();
    let line = daemon.wait_for_log(&["does not validate"], PATIENCE);
    assert!(
        line.contains("fresh.toml"),
        "the log names the broken file: {line}"
    );
    // Regression: only a count of errors, so the journal alone could not say what to fix.
    assert!(line.contains("first_error=\"1:"), "{line}");
    let later = daemon.wait_for(
        "scheduled runs of the last good version after the file broke",
        PATIENCE,
        || {
            scheduled_runs(&p, "fresh")
                .into_iter()
                .find(|r| logical_date(r) > broken_at)
        },
    );
    assert_eq!(
        later["dag_version"], first["dag_version"],
        "runs after the file broke use the last good version"
    );
    assert!(daemon.is_running(), "{}", daemon.log());
    let dags = vane(&p, &["dags"]).success();
    assert!(
        dags.stdout
            .lines()
            .any(|l| l.starts_with("invalid:") && l.contains("fresh.toml")),
        "`vane dags` lists the broken file as invalid:\n{}",
        dags.stdout
    );
    // Regression: the DAG vanished from `vane dags` as if it no longer ran.
    assert!(
        dags.stdout
            .contains("; a running scheduler keeps `fresh` going on the version of run "),
        "{}",
        dags.stdout
    );
    // Regression: every change to the folder logged every broken file again.
    p.write_dag("other", "[tasks.a]\ncommand = \"true\"\n");
    daemon.wait_for_log(&["DAG loaded", "other"], PATIENCE);
    assert_eq!(
        daemon.log().matches("does not validate").count(),
        1,
        "{}",
        daemon.log()
    );
    // Regression: fixed back to the version still running, the file was never logged again,
    // so the error stayed the last word on it.
    p.write_dag("fresh", EVERY_SECOND);
    let line = daemon.wait_for_log(&["validates again"], PATIENCE);
    assert!(line.contains("fresh.toml"), "{line}");
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

/// Regression: a scheduler started while a DAG file did not validate (a restart after the
/// typo was pushed) scheduled nothing of that DAG, though one already running kept its last
/// good version going: a reboot silently stopped the DAG.
fn a_scheduler_started_on_a_broken_file_keeps_the_version_last_run(backend: Backend) {
    let p = Project::on(backend).dag("tick", EVERY_SECOND);
    let mut daemon = start_scheduler(&p, &[]);
    let first = daemon.wait_for("a scheduled run", PATIENCE, || {
        scheduled_runs(&p, "tick").into_iter().next()
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());

    p.write_dag("tick", "[dag\nschedule = \"*/1 * * * * *\"\n");
    let restarted_at = Utc::now();
    let mut daemon = start_scheduler(&p, &[]);
    let later = daemon.wait_for("a scheduled run after the restart", PATIENCE, || {
        scheduled_runs(&p, "tick")
            .into_iter()
            .find(|r| logical_date(r) > restarted_at)
    });
    assert_eq!(later["dag_version"], first["dag_version"]);
    assert!(
        daemon
            .log()
            .lines()
            .any(|l| l.contains("does not validate") && l.contains("kept_running=\"tick\"")),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

/// Regression: a run put aside while a task waited for its retry, then stopped, showed that
/// task `skipped` beside its failed attempt.
fn stopping_a_put_aside_run_fails_the_task_waiting_for_its_retry(backend: Backend) {
    let p = Project::on(backend).dag(
        "flaky",
        "[tasks.flaky]\ncommand = \"exit 3\"\nretries = 3\nretry_delay = \"1h\"\n",
    );
    vane(&p, &["trigger", "flaky"]).success();
    let mut daemon = start_scheduler(&p, &[]);
    daemon.wait_for("the first attempt to fail", PATIENCE, || {
        let show = show_run(&p, 1);
        (task(&show, "flaky")["state"] == "queued" && attempts(&show, "flaky").len() == 1)
            .then_some(())
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    vane(
        &p,
        &["stop", "1", "--reason", "giving up", "--by", "oncall"],
    )
    .success();
    let show = show_run(&p, 1);
    let flaky = task(&show, "flaky");
    assert_eq!(flaky["state"], "failed", "{show:#}");
    assert_eq!(
        flaky["reason"], "attempt 1 failed; no retry: stopped by oncall: giving up",
        "{show:#}"
    );
}

/// Regression: `vane sla` printed its dates in UTC where `vane runs` prints the same logical
/// dates in the DAG's time zone, so the two could not be matched by eye.
#[test]
fn sla_misses_are_listed_in_the_dags_time_zone() {
    let p = Project::new().dag(
        "late",
        "[dag]\nschedule = \"*/1 * * * * *\"\ntimezone = \"Asia/Kolkata\"\nsla = \"1s\"\n[tasks.a]\ncommand = \"sleep 2\"\n",
    );
    let mut daemon = start_scheduler(&p, &[]);
    let out = daemon.wait_for("an SLA miss", PATIENCE, || {
        let out = vane(&p, &["sla"]).success();
        (out.stdout.lines().count() > 1).then_some(out)
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    let row = out.stdout.lines().nth(1).unwrap();
    assert_eq!(row.matches("+05:30").count(), 2, "{}", out.stdout);
}

/// Regression: a scheduler started on a new PostgreSQL database logged `NOTICE: relation
/// "vane_schema" already exists, skipping`: its connections migrate at once, and the one that
/// waited for the migration lock ran `CREATE TABLE IF NOT EXISTS` after the other.
#[test]
fn a_scheduler_starts_on_a_new_postgresql_database_without_server_notices() {
    let p = Project::on(Backend::Postgres).dag("idle", "[tasks.a]\ncommand = \"true\"\n");
    let mut daemon = start_scheduler(&p, &[]);
    daemon.wait_for_log(&["DAG loaded", "idle"], PATIENCE);
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    assert!(!daemon.log().contains("NOTICE"), "{}", daemon.log());
}

/// A person looks at runs while the scheduler works, a script triggers runs: vane commands
/// started at the same moment as one another, or as the scheduler, must all work.
fn commands_run_while_the_scheduler_runs_all_work(backend: Backend) {
    let p = Project::on(backend).dag("tick", EVERY_SECOND);
    // The database exists before anything runs at the same time.
    p.vane(&["runs"]).success();
    let failed = std::sync::Mutex::new(Vec::new());
    let mut daemon = std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    let out = p.vane(&["runs", "--json"]);
                    if out.code != Some(0) {
                        failed.lock().unwrap().push(out.stderr);
                    }
                }
            });
        }
        // Started while the commands run.
        p.scheduler(&[])
    });
    let failed = failed.into_inner().unwrap();
    let mut started = false;
    let since = std::time::Instant::now();
    while since.elapsed() < PATIENCE && daemon.is_running() {
        if daemon.log().contains("Scheduler starting.") {
            started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        failed.is_empty() && started && daemon.is_running(),
        "{} of 40 `vane runs` failed (first: {:?}); the scheduler {}; its log:\n{}",
        failed.len(),
        failed.first(),
        if daemon.is_running() {
            "runs"
        } else {
            "exited"
        },
        daemon.log()
    );
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

fn a_dag_runs_once_per_logical_date(backend: Backend) {
    let p = Project::on(backend).dag("once", "[tasks.a]\ncommand = \"true\"\n");
    let first = trigger(&p, &["once", "--date", "2026-01-01"]);
    let second = vane(&p, &["trigger", "once", "--date", "2026-01-01"])
        .failure()
        .stderr_contains(&format!("run {first}"));
    assert!(second.stdout.trim().is_empty(), "{second:?}");
    let runs = runs_of(&p, "once");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(run_id(&runs[0]), first);
}

fn catchup_none_skips_the_ticks_missed_while_the_scheduler_was_down(backend: Backend) {
    let p = Project::on(backend).dag(
        "tick",
        r#"
[dag]
schedule = "*/1 * * * * *"
catchup = "none"

[tasks.a]
command = "true"
"#,
    );
    let mut daemon = start_scheduler(&p, &[]);
    daemon.wait_for("two scheduled runs", PATIENCE, || {
        (scheduled_runs(&p, "tick").len() >= 2).then_some(())
    });
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
    let down_at = Utc::now();
    drop(daemon);
    // The scheduler stays down across a few ticks; the last of them half a second or so
    // before it starts again.
    std::thread::sleep(Duration::from_millis(3500));
    let up_at = Utc::now();
    let mut again = start_scheduler(&p, &[]);
    // Once the restarted scheduler runs a tick after its start, it has decided every tick
    // of the gap.
    again.wait_for("a scheduled run after the restart", PATIENCE, || {
        scheduled_runs(&p, "tick")
            .iter()
            .any(|r| logical_date(r) > up_at)
            .then_some(())
    });
    assert_eq!(again.terminate(PATIENCE), Some(0), "{}", again.log());

    let in_gap = |t: DateTime<Utc>| down_at < t && t < up_at;
    let caught_up: Vec<Value> = scheduled_runs(&p, "tick")
        .into_iter()
        .filter(|r| in_gap(logical_date(r)))
        .collect();
    assert!(
        caught_up.is_empty(),
        "with catchup = \"none\", ticks missed while the scheduler was down ({down_at} to \
         {up_at}) must not run, but these did: {caught_up:#?}\nthe restarted scheduler's log:\n{}",
        again.log()
    );

    if can_query(&p) {
        let ticks = p.sql(
            "select logical_date, decision, reason from ticks where dag_id = 'tick' \
             order by logical_date",
        );
        let gap: Vec<(&str, &str, &str)> = ticks
            .lines()
            .filter_map(|l| {
                let mut cells = l.splitn(3, '|');
                Some((cells.next()?, cells.next()?, cells.next().unwrap_or("")))
            })
            .filter(|(date, _, _)| db_time(date).is_some_and(in_gap))
            .collect();
        // The whole seconds strictly inside the gap.
        let first = down_at.timestamp() + 1;
        let last = up_at.timestamp() - i64::from(up_at.timestamp_subsec_nanos() == 0);
        assert_eq!(
            gap.len() as i64,
            last - first + 1,
            "every tick of the {down_at} to {up_at} gap is recorded:\n{ticks}"
        );
        for (date, decision, reason) in &gap {
            assert_eq!(
                (*decision, reason.contains("catchup")),
                ("skipped", true),
                "tick {date} fell while the scheduler was down:\n{ticks}"
            );
        }
    }
    // A person sees the same without SQL.
    let ticks = vane(&p, &["ticks", "tick", "--limit", "100"]).success();
    assert!(
        ticks.stdout.contains("skipped: ") && ticks.stdout.contains("catchup"),
        "{}",
        ticks.stdout
    );
}

/// `GET /metrics` from a vane on `addr`: each sample's series (name and labels) and value.
fn scrape(addr: &str) -> std::collections::HashMap<String, f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the scheduler's API");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (_, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The scheduler of `vane status --json` with this pid.
#[track_caller]
fn scheduler_status(p: &Project, pid: u32) -> Value {
    let status = vane(p, &["status", "--json"]).success().json();
    status["schedulers"]
        .as_array()
        .expect("`schedulers` is a list")
        .iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("no scheduler with pid {pid} in {status:#}"))
        .clone()
}

/// The heartbeat is in the database, so /metrics (here the scheduler's own) and `vane status`
/// see the scheduler's passes; a clean stop is recorded as such, not left to go stale.
fn the_scheduler_heartbeat_shows_in_metrics_and_status_until_it_stops(backend: Backend) {
    let p = Project::on(backend).dag("tick", EVERY_SECOND);
    let mut daemon = start_scheduler(&p, &["--http", "127.0.0.1:0"]);
    let line = daemon.wait_for_log(&["serving the API on http://"], PATIENCE);
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    let samples = daemon.wait_for("a pass and a live scheduler in /metrics", PATIENCE, || {
        let samples = scrape(&addr);
        let passes = samples.get("vane_scheduler_pass_seconds_count").copied();
        let up = samples.get("vane_schedulers_up").copied();
        (passes > Some(0.0) && up == Some(1.0)).then_some(samples)
    });
    let inf = samples[r#"vane_scheduler_pass_seconds_bucket{le="+Inf"}"#];
    assert_eq!(inf, samples["vane_scheduler_pass_seconds_count"]);
    assert!(samples.contains_key(r#"vane_scheduler_pass_seconds_bucket{le="0.001"}"#));
    let pid = daemon.pid();
    let heartbeat = samples
        .keys()
        .find(|k| k.starts_with("vane_scheduler_heartbeat_timestamp_seconds{"))
        .unwrap_or_else(|| panic!("no heartbeat sample in {samples:?}"));
    assert!(heartbeat.contains(&format!(":{pid}:")), "{heartbeat}");

    let running = scheduler_status(&p, pid);
    assert_eq!(running["status"], "up", "{running:#}");
    assert!(running["passes"].as_u64() > Some(0), "{running:#}");
    // Its lease is held, judged by the database, and renewed before it expires.
    assert_eq!(running["lease"]["state"], "held", "{running:#}");
    assert!(running["runs_owned"].is_u64(), "{running:#}");
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());

    let stopped = scheduler_status(&p, pid);
    assert_eq!(stopped["status"], "stopped", "{stopped:#}");
    assert!(stopped["stopped_at"].is_string(), "{stopped:#}");
    // A clean stop gives the lease up: nothing is left for others to wait out.
    assert_eq!(stopped["lease"]["state"], "released", "{stopped:#}");
    assert_eq!(stopped["runs_owned"], 0, "{stopped:#}");
    let table = vane(&p, &["status"]).success().stdout;
    assert!(
        table.contains("stopped") && table.contains("released") && table.contains(&p.database()),
        "{table}"
    );
}

/// A task that finished while its vane process was dead used to be recorded "scheduler lost"
/// and run again. Its shell writes its exit status down when nobody is left to wait for it, and
/// the vane that adopts the run records that ending as it was: success, its metrics kept, run
/// once, and what depends on it runs next.
fn a_task_that_finished_while_its_vane_was_dead_keeps_its_real_outcome(backend: Backend) {
    let p = Project::on(backend).dag(
        "finishes",
        r#"
[tasks.slow]
command = 'touch "$VANE_WORK/started"; while [ ! -f "$VANE_WORK/go" ]; do sleep 0.02; done; echo "rows 42" >> "$VANE_METRICS"; echo ran >> "$VANE_WORK/slow.ran"'
retries = 2

[tasks.after]
command = 'echo ran >> "$VANE_WORK/after.ran"'
depends_on = ["slow"]
"#,
    );
    let mut run = p
        .command(&["run", "finishes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    let started = p.work().join("started");
    crate::harness::wait_for("the task to start", PATIENCE, || {
        started.exists().then_some(())
    });
    crate::harness::wait_for("the attempt's pid to be recorded", PATIENCE, || {
        attempts(&show_run(&p, 1), "slow")[0]["pid"]
            .as_u64()
            .map(|_| ())
    });
    run.kill().expect("kill -9 vane run");
    run.wait().expect("reap vane run");
    std::fs::write(p.work().join("go"), "").unwrap();
    crate::harness::wait_for(
        "the task to end and write its exit status down",
        PATIENCE,
        || {
            std::fs::read_dir(p.path().join(".vane/logs"))
                .ok()
                .and_then(|_| find_exit_mark(&p.path().join(".vane/logs")))
        },
    );

    let adopted_from = Utc::now();
    let mut daemon = start_scheduler(&p, &[]);
    let show = daemon.wait_for("the adopted run to finish", PATIENCE, || {
        let show = show_run(&p, 1);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    });
    assert_eq!(show["state"], "success", "{show:#}\n{}", daemon.log());
    let slow = attempts(&show, "slow");
    assert_eq!(slow.len(), 1, "not run again: {show:#}");
    assert_eq!(slow[0]["state"], "success", "{show:#}");
    assert_eq!(slow[0]["exit_code"], 0, "{show:#}");
    // Regression: it was recorded ending when the adopter got to it, so its duration held the
    // scheduler's downtime (and `vane why` blamed a slowdown on the task).
    let ended = slow[0]["ended_at"].as_str().expect("an end time");
    assert!(
        DateTime::parse_from_rfc3339(ended).unwrap() < adopted_from,
        "ended {ended}, adopted from {adopted_from}"
    );
    assert_eq!(p.read_work("slow.ran"), "ran\n");
    assert_eq!(p.read_work("after.ran"), "ran\n");
    let metrics = vane(&p, &["metrics", "finishes", "--json"])
        .success()
        .json();
    assert!(
        metrics.to_string().contains("\"rows\"") && metrics.to_string().contains("42"),
        "the metrics it wrote are kept: {metrics:#}"
    );
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

/// A daemon an attempt moved out of its process group used to outlive the attempt's vane being
/// killed: the adopter killed only the group. It ends the attempt's cgroup too.
fn a_daemon_of_an_attempt_whose_vane_was_killed_is_ended_by_the_adopter(backend: Backend) {
    let p = Project::on(backend).dag(
        "daemons",
        r#"
[tasks.serve]
command = """
if [ "$VANE_ATTEMPT" = 1 ]; then
  setsid sh -c 'echo $$ > "$VANE_WORK/daemon.pid"; exec sleep 1000' >/dev/null 2>&1 &
  sleep 1000
fi
echo attempt $VANE_ATTEMPT
"""
retries = 1
"#,
    );
    let mut run = p
        .command(&["run", "daemons"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    let pid_file = p.work().join("daemon.pid");
    let pid = crate::harness::wait_for("the daemon to start", PATIENCE, || read_pid(&pid_file));
    crate::harness::wait_for("the attempt's pid to be recorded", PATIENCE, || {
        attempts(&show_run(&p, 1), "serve")[0]["pid"]
            .as_u64()
            .map(|_| ())
    });
    run.kill().expect("kill -9 vane run");
    run.wait().expect("reap vane run");
    let (_, start) = proc_stat(pid).expect("the daemon outlives its vane");
    let _cleanup = KillGroupOnDrop { pid, start };

    let mut daemon = start_scheduler(&p, &[]);
    let show = daemon.wait_for("the adopted run to finish", PATIENCE, || {
        let show = show_run(&p, 1);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    });
    assert_eq!(show["state"], "success", "{show:#}");
    assert!(
        !still_running(pid, start),
        "the daemon {pid} outlived the adoption:\n{}",
        daemon.log()
    );
    let log = vane(&p, &["logs", "1", "serve", "--attempt", "1"]).success();
    assert!(
        log.stdout.contains(
            "vane: the task left a process running after its end, outside its process group"
        ),
        "{}",
        log.stdout
    );
    assert_eq!(daemon.terminate(PATIENCE), Some(0), "{}", daemon.log());
}

/// The exit status file a task's shell left under `dir`, if any.
fn find_exit_mark(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_exit_mark(&path) {
                return Some(found);
            }
        } else if path.extension().is_some_and(|e| e == "exit") {
            return Some(path);
        }
    }
    None
}

on_both_backends!(
    a_task_that_finished_while_its_vane_was_dead_keeps_its_real_outcome,
    a_daemon_of_an_attempt_whose_vane_was_killed_is_ended_by_the_adopter,
    a_scheduled_dag_runs_on_its_cron_grid,
    a_triggered_run_is_started_by_the_scheduler_with_its_params,
    a_paused_dag_gets_no_scheduled_runs_until_unpaused,
    sigterm_lets_the_running_task_finish_and_the_run_resumes_on_the_next_start,
    a_crashed_schedulers_run_is_adopted_its_orphan_killed_and_the_task_retried,
    dag_files_added_or_broken_while_the_scheduler_runs_are_picked_up,
    a_scheduler_started_on_a_broken_file_keeps_the_version_last_run,
    stopping_a_put_aside_run_fails_the_task_waiting_for_its_retry,
    commands_run_while_the_scheduler_runs_all_work,
    a_dag_runs_once_per_logical_date,
    catchup_none_skips_the_ticks_missed_while_the_scheduler_was_down,
    the_scheduler_heartbeat_shows_in_metrics_and_status_until_it_stops,
);
