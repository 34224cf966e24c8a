//! Agents on other hosts: each host a network namespace (see [`crate::hosts`]), one scheduler
//! on host 0 and `vane agent`s on the others, all on one PostgreSQL database. What ran where is
//! read from the database and from marks the tasks write themselves ($VANE_HOST is the host's
//! name in its agent's environment, and so in its tasks').

use std::fs;
use std::time::Duration;

use crate::harness::{Backend, Daemon, Project, wait_for};
use crate::hosts::{Hosts, PATIENCE, SHORT_LEASE, process_exists, rows};

/// One GPU task and six CPU tasks, each noting where it ran.
const PLACED: &str = r#"
[dag]
max_active_tasks = 8

[defaults]
runs_on = { pool = "cpu" }

[tasks.train]
command = 'echo "$VANE_HOST" > "$VANE_WORK/train.host"; sleep 1'
runs_on = { gpu = "a100" }

[tasks.c1]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c1.host"; sleep 1'
[tasks.c2]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c2.host"; sleep 1'
[tasks.c3]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c3.host"; sleep 1'
[tasks.c4]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c4.host"; sleep 1'
[tasks.c5]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c5.host"; sleep 1'
[tasks.c6]
command = 'echo "$VANE_HOST" > "$VANE_WORK/c6.host"; sleep 1'
"#;

/// A task that, on its first attempt, notes its pid and sleeps far longer than the test; on
/// its retry it succeeds at once.
const SLOW_ONCE: &str = r#"
[tasks.train]
command = 'if [ -e "$VANE_WORK/first.pid" ]; then echo "$VANE_HOST" > "$VANE_WORK/retry.host"; exit 0; fi; echo $$ > "$VANE_WORK/first.pid"; echo "$VANE_HOST" > "$VANE_WORK/first.host"; exec sleep 600'
runs_on = { pool = "cpu" }
retries = 1
retry_delay = "1s"
"#;

/// The run's state, once it ended.
fn ended(p: &Project, run: i64, limit: Duration) -> String {
    wait_for(&format!("run {run} to end"), limit, || {
        let state = p.sql(&format!("SELECT state FROM runs WHERE id = {run}"));
        let state = state.trim().to_owned();
        matches!(state.as_str(), "success" | "failed").then_some(state)
    })
}

/// A scheduler on host 0 with its lease taken.
fn scheduler(hosts: &Hosts, p: &Project) -> Daemon {
    let mut daemon = hosts.scheduler(p, 0, &[]);
    daemon.wait_for_log(&["Scheduler starting."], PATIENCE);
    daemon
}

fn ready(agent: &mut Daemon) {
    agent.wait_for_log(&["Agent ready."], PATIENCE);
}

#[test]
fn gpu_tasks_run_only_on_the_gpu_agent_and_the_others_spread_over_the_cpu_agents() {
    let p = Project::on(Backend::Postgres).dag("placed", PLACED);
    let hosts = Hosts::new(4);
    let _scheduler = scheduler(&hosts, &p);
    let mut agents: Vec<Daemon> = [(1, "pool=cpu"), (2, "pool=cpu"), (3, "gpu=a100")]
        .into_iter()
        .map(|(i, labels)| hosts.agent(&p, i, labels, 1))
        .collect();
    for agent in &mut agents {
        ready(agent);
    }
    let listed = p.vane(&["agents", "--json"]).success().json();
    assert_eq!(listed["agents"].as_array().unwrap().len(), 3, "{listed:#}");
    p.vane(&["trigger", "placed"]).success();
    assert_eq!(ended(&p, 1, Duration::from_secs(90)), "success");

    let placed = rows(
        &p,
        "SELECT d.task_id, a.host FROM dispatches d JOIN agents a ON a.lease_id = d.agent_lease \
         ORDER BY d.task_id",
    );
    assert_eq!(placed.len(), 7, "{placed:?}");
    let mut cpu_hosts = std::collections::BTreeSet::new();
    for row in &placed {
        let noted = fs::read_to_string(work(&p).join(format!("{}.host", row[0]))).unwrap();
        assert_eq!(noted.trim(), row[1], "where {} says it ran", row[0]);
        if row[0] == "train" {
            assert_eq!(row[1], "host-3", "{placed:?}");
        } else {
            assert!(
                ["host-1", "host-2"].contains(&row[1].as_str()),
                "{placed:?}"
            );
            cpu_hosts.insert(row[1].clone());
        }
    }
    assert_eq!(
        cpu_hosts.len(),
        2,
        "the CPU tasks used both CPU agents: {placed:?}"
    );
}

/// The agent running the task dies by `kill -9`: its watchdog kills the task, the agent's
/// lease expires, and the attempt is recorded lost and retried on the other agent, where it
/// succeeds; exactly one attempt succeeds.
#[test]
fn an_agent_killed_mid_task_has_its_task_killed_and_retried_on_another_agent() {
    let p = Project::on(Backend::Postgres).dag("slow", SLOW_ONCE);
    p.write("vane.toml", SHORT_LEASE);
    let hosts = Hosts::new(3);
    let _scheduler = scheduler(&hosts, &p);
    let mut agents: Vec<Daemon> = (1..=2).map(|i| hosts.agent(&p, i, "pool=cpu", 1)).collect();
    for agent in &mut agents {
        ready(agent);
    }
    p.vane(&["trigger", "slow"]).success();
    let (pid, host) = first_attempt(&p);
    let victim = if host == "host-1" { 0 } else { 1 };
    agents[victim].kill();
    wait_for(
        "the watchdog to kill the task of the dead agent",
        PATIENCE,
        || (!process_exists(pid)).then_some(()),
    );
    assert_eq!(ended(&p, 1, Duration::from_secs(90)), "success");
    let attempts = attempts(&p);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0][1], "failed", "{attempts:?}");
    assert!(attempts[0][2].contains("presumed lost"), "{attempts:?}");
    assert_eq!(attempts[1][1], "success", "{attempts:?}");
    let other = if host == "host-1" { "host-2" } else { "host-1" };
    let retried = fs::read_to_string(work(&p).join("retry.host")).unwrap();
    assert_eq!(retried.trim(), other);
}

/// Cut off from the database past its lease, the agent kills its task itself; the attempt is
/// retried on the other agent. When the link comes back, the cut-off agent's report of its
/// attempt is refused, and the retry's result stands.
#[test]
fn an_agent_cut_off_past_its_lease_kills_its_task_and_its_late_report_is_refused() {
    let p = Project::on(Backend::Postgres).dag("slow", SLOW_ONCE);
    p.write("vane.toml", SHORT_LEASE);
    let hosts = Hosts::new(3);
    let _scheduler = scheduler(&hosts, &p);
    let mut agents: Vec<Daemon> = (1..=2).map(|i| hosts.agent(&p, i, "pool=cpu", 1)).collect();
    for agent in &mut agents {
        ready(agent);
    }
    p.vane(&["trigger", "slow"]).success();
    let (pid, host) = first_attempt(&p);
    let (victim, ns) = if host == "host-1" { (0, 1) } else { (1, 2) };
    hosts.cut(ns);
    agents[victim].wait_for_log(&["Lease lost"], Duration::from_secs(60));
    wait_for("the cut-off agent to kill its task", PATIENCE, || {
        (!process_exists(pid)).then_some(())
    });
    assert_eq!(ended(&p, 1, Duration::from_secs(90)), "success");
    let before = attempts(&p);
    hosts.restore(ns);
    agents[victim].wait_for_log(&["The outcome was refused"], Duration::from_secs(90));
    assert_eq!(attempts(&p), before, "the late report changed nothing");
    assert_eq!(before[1][1], "success", "{before:?}");
    assert!(
        agents[victim].is_running(),
        "the agent goes on: {}",
        agents[victim].log()
    );
}

/// `vane stop` and a task's `timeout` reach the processes on the agent: none is left.
#[test]
fn a_stop_and_a_timeout_leave_no_process_on_the_agent() {
    let p = Project::on(Backend::Postgres).dag(
        "long",
        r#"
[defaults]
runs_on = {}

[tasks.limited]
command = "exec sleep 6001"
timeout = "2s"

[tasks.endless]
command = "exec sleep 6002"
"#,
    );
    let hosts = Hosts::new(2);
    let _scheduler = scheduler(&hosts, &p);
    let mut agent = hosts.agent(&p, 1, "", 2);
    ready(&mut agent);
    p.vane(&["trigger", "long"]).success();
    wait_for("the timed-out attempt", Duration::from_secs(60), || {
        let reason =
            p.sql("SELECT reason FROM attempts WHERE task_id = 'limited' AND state = 'failed'");
        reason.contains("timed out").then_some(())
    });
    wait_for("the endless task to run on the agent", PATIENCE, || {
        sleeping(&hosts, 1, "6002").then_some(())
    });
    p.vane(&["stop", "1", "--reason", "enough", "--by", "ops"])
        .success();
    assert_eq!(ended(&p, 1, Duration::from_secs(60)), "failed");
    wait_for("no task process left on the agent", PATIENCE, || {
        (!sleeping(&hosts, 1, "6001") && !sleeping(&hosts, 1, "6002")).then_some(())
    });
    let endless = p.sql("SELECT reason FROM attempts WHERE task_id = 'endless'");
    assert!(endless.contains("stopped"), "{endless}");
}

/// Whether a `sleep MARK` runs in host `i`'s namespace.
fn sleeping(hosts: &Hosts, i: usize, mark: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", hosts.namespace(i)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&format!("sleep\0{mark}")))
        })
}

/// The work folder of the runs, which the scheduler on host 0 names ($VANE_WORK).
fn work(p: &Project) -> std::path::PathBuf {
    crate::hosts::host_state(p, 0).join("work")
}

/// The first attempt's pid and the host it runs on, once it runs.
fn first_attempt(p: &Project) -> (i32, String) {
    wait_for("the first attempt to run on an agent", PATIENCE, || {
        let pid = fs::read_to_string(work(p).join("first.pid")).ok()?;
        let host = fs::read_to_string(work(p).join("first.host")).ok()?;
        Some((pid.trim().parse().ok()?, host.trim().to_owned()))
    })
}

/// Each attempt as (number, state, reason).
fn attempts(p: &Project) -> Vec<Vec<String>> {
    rows(
        p,
        "SELECT attempt, state, coalesce(reason, '') FROM attempts ORDER BY attempt",
    )
}
