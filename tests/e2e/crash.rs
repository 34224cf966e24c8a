//! `kill -9` at random moments of a fan-out and of a chain, many times over: after every
//! restart, each task ran exactly once, or its lost attempt is recorded and retried; no command
//! ran that vane has no record of; and no task began before its upstream's success was durable.
//! The tasks stamp their own begin and end (with their attempt), so the check does not rest on
//! vane's own account.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::{Backend, Daemon, Project, wait_for};

const PATIENCE: Duration = Duration::from_secs(120);

/// Each task's command: a begin mark, a little work, an end mark, each with the time.
const MARK: &str = r#"echo "begin $VANE_TASK_ID $VANE_ATTEMPT $(date +%s%N)" >> "$VANE_WORK/marks"; sleep 0.02; echo "end $VANE_TASK_ID $VANE_ATTEMPT $(date +%s%N)" >> "$VANE_WORK/marks""#;

fn fan_out(tasks: usize) -> String {
    let mut dag = "[dag]\nmax_active_tasks = 2\n".to_owned();
    for i in 0..tasks {
        dag.push_str(&format!(
            "\n[tasks.t{i:03}]\ncommand = '{MARK}'\nretries = 20\nretry_delay = \"10ms\"\n"
        ));
    }
    dag
}

fn chain(tasks: usize) -> String {
    let mut dag = String::new();
    for i in 0..tasks {
        dag.push_str(&format!(
            "\n[tasks.t{i:03}]\ncommand = '{MARK}'\nretries = 20\nretry_delay = \"10ms\"\n"
        ));
        if i > 0 {
            dag.push_str(&format!("depends_on = [\"t{:03}\"]\n", i - 1));
        }
    }
    dag
}

/// A small generator for the kill moments, seeded from the clock and printed, so a failure
/// can be replayed with `VANE_CRASH_SEED`.
struct Moments(u64);

impl Moments {
    fn new() -> Self {
        let seed = std::env::var("VANE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64);
        eprintln!("crash test seed: VANE_CRASH_SEED={seed}");
        Self(seed | 1)
    }

    /// Milliseconds in `range`.
    fn next(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        range.start + self.0 % (range.end - range.start)
    }
}

/// A mark a task wrote: begin or end, task, attempt, when.
struct Mark {
    begin: bool,
    task: String,
    attempt: u64,
    at: DateTime<Utc>,
}

fn marks(p: &Project) -> Vec<Mark> {
    let text = std::fs::read_to_string(p.work().join("marks")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let begin = words.next()? == "begin";
            let task = words.next()?.to_owned();
            let attempt = words.next()?.parse().ok()?;
            let nanos: i64 = words.next()?.parse().ok()?;
            Some(Mark {
                begin,
                task,
                attempt,
                at: DateTime::from_timestamp_nanos(nanos),
            })
        })
        .collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .with_timezone(&Utc)
}

/// Runs the DAG to its end while a scheduler is killed with SIGKILL every few hundred
/// milliseconds and started again (the first executor is a `vane run`, killed the same way);
/// then checks what the tasks did against what vane recorded. Returns how many kills landed
/// while the run was going.
fn crash_until_done(backend: Backend, dag: &str, tasks: usize) -> usize {
    let p = Project::on(backend).dag("crashy", dag);
    let mut moments = Moments::new();
    let mut kills = 0;
    // `vane run` executes it first, in the foreground, as a person would.
    let mut first = p
        .command(&["run", "crashy"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    let run = wait_for("the run to be recorded", PATIENCE, || {
        p.runs().first().and_then(|r| r["id"].as_i64())
    });
    std::thread::sleep(Duration::from_millis(moments.next(50..400)));
    let _ = first.kill();
    let _ = first.wait();
    kills += 1;
    let ended = |p: &Project| {
        let show = p.show(run);
        matches!(show["state"].as_str(), Some("success" | "failed")).then_some(show)
    };
    let show = loop {
        if let Some(show) = ended(&p) {
            break show;
        }
        let mut daemon: Daemon = p.scheduler(&[]);
        std::thread::sleep(Duration::from_millis(moments.next(150..700)));
        if let Some(show) = ended(&p) {
            drop(daemon);
            break show;
        }
        daemon.kill();
        kills += 1;
        assert!(kills < 200, "the run never ended across {kills} restarts");
    };
    assert_eq!(show["state"], "success", "{show:#}");

    let marks = marks(&p);
    let tasks_shown = show["tasks"].as_array().unwrap();
    assert_eq!(tasks_shown.len(), tasks);
    let mut succeeded_at: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut recorded: BTreeSet<(String, u64)> = BTreeSet::new();
    for task in tasks_shown {
        let id = task["id"].as_str().unwrap().to_owned();
        let attempts = task["attempts"].as_array().unwrap();
        let wins: Vec<&Value> = attempts
            .iter()
            .filter(|a| a["state"] == "success")
            .collect();
        assert_eq!(wins.len(), 1, "task {id} succeeded once: {task:#}");
        // Every other attempt is recorded lost, and was retried.
        for lost in attempts.iter().filter(|a| a["state"] != "success") {
            assert_eq!(lost["state"], "failed", "{task:#}");
            assert!(
                lost["attempt"].as_u64() < wins[0]["attempt"].as_u64(),
                "a lost attempt comes before the retry that succeeded: {task:#}"
            );
        }
        for a in attempts {
            recorded.insert((id.clone(), a["attempt"].as_u64().unwrap()));
        }
        succeeded_at.insert(id, time(&wins[0]["ended_at"]));
    }
    // No command began that vane has no attempt for: a process spawned but not recorded
    // never began its command.
    for m in marks.iter().filter(|m| m.begin) {
        assert!(
            recorded.contains(&(m.task.clone(), m.attempt)),
            "task {} attempt {} ran with no record of it; recorded: {recorded:?}",
            m.task,
            m.attempt
        );
    }
    // The successful attempt's command ran to its end, once.
    for task in tasks_shown {
        let id = task["id"].as_str().unwrap();
        let win = task["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["state"] == "success")
            .unwrap()["attempt"]
            .as_u64()
            .unwrap();
        let ends = marks
            .iter()
            .filter(|m| !m.begin && m.task == id && m.attempt == win)
            .count();
        assert_eq!(ends, 1, "task {id} attempt {win} ended {ends} times");
    }
    // In a chain, no attempt of a task began before its upstream's success was recorded.
    for task in tasks_shown {
        let id = task["id"].as_str().unwrap();
        for upstream in task_upstream(dag, id) {
            let durable = succeeded_at[&upstream];
            for m in marks.iter().filter(|m| m.begin && m.task == id) {
                assert!(
                    m.at >= durable,
                    "{id} attempt {} began at {} before {upstream}'s success was recorded at {durable}",
                    m.attempt,
                    m.at
                );
            }
        }
    }
    kills
}

/// The tasks `id` depends on, read from the DAG text these tests write.
fn task_upstream(dag: &str, id: &str) -> Vec<String> {
    let table = dag
        .split("\n[tasks.")
        .find(|t| t.starts_with(&format!("{id}]")))
        .unwrap_or_default();
    table
        .lines()
        .find_map(|l| l.strip_prefix("depends_on = [\""))
        .map(|rest| vec![rest.trim_end_matches("\"]").to_owned()])
        .unwrap_or_default()
}

fn a_fan_out_survives_kill_9_at_random_moments(backend: Backend) {
    let kills = crash_until_done(backend, &fan_out(300), 300);
    assert!(kills >= 3, "too few kills landed to test anything: {kills}");
}

fn a_chain_survives_kill_9_at_random_moments(backend: Backend) {
    let kills = crash_until_done(backend, &chain(80), 80);
    assert!(kills >= 3, "too few kills landed to test anything: {kills}");
}

crate::harness::on_both_backends!(
    a_fan_out_survives_kill_9_at_random_moments,
    a_chain_survives_kill_9_at_random_moments,
);
