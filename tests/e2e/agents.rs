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
    let scheduler = scheduler(&hosts, &p);
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
    let state = std::panic::catch_unwind(|| ended(&p, 1, Duration::from_secs(90)));
    let state =
        state.unwrap_or_else(|_| {
            panic!(
            "the run did not end; scheduler:\n{}\nagents:\n{}\n{}\ndispatches: {}",
            scheduler.log(),
            agents[0].log(),
            agents[1].log(),
            p.sql("SELECT id, task_id, attempt, state, token, agent_lease, outcome FROM dispatches")
        )
        });
    assert_eq!(state, "success");
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

/// With no agent that has its labels, a task says so instead of sitting queued: in `vane show`
/// and `vane agents`. Once an agent with the labels joins (here on the same machine, sharing
/// the SQLite file), the task runs there and the run succeeds.
#[test]
fn a_task_waiting_for_labels_no_agent_has_says_so_until_one_joins() {
    let p = Project::new().dag(
        "gpu",
        r#"
[tasks.prep]
command = "echo prep"

[tasks.train]
command = 'echo "trained by $VANE_HOST"'
depends_on = ["prep"]
runs_on = { gpu = "a100" }
"#,
    );
    p.write(
        "vane.toml",
        "[[alerts.rules]]\non = \"agent_waiting\"\nafter = \"1s\"\nseverity = \"critical\"\n",
    );
    let mut run = p
        .command(&["run", "gpu"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    let shown = wait_for("the task waiting for an agent", PATIENCE, || {
        // Until the run exists, `vane show 1` says it does not.
        let out = p.command(&["show", "1"]).output().ok()?;
        let shown = String::from_utf8_lossy(&out.stdout).into_owned();
        shown
            .contains("no live agent has these labels")
            .then_some(shown)
    });
    assert!(
        shown.contains("task `train` attempt 1 waits") && shown.contains("gpu=a100"),
        "{shown}"
    );
    let listed = p.vane(&["agents", "--json"]).success().json();
    let waiting = &listed["waiting"][0];
    assert_eq!(waiting["task_id"], "train", "{listed:#}");
    assert_eq!(waiting["live_agents_with_labels"], 0, "{listed:#}");
    p.vane(&["agents"])
        .success()
        .stdout_contains("no agent has joined this database");
    // Waiting longer than the rule's `after` is an alert naming the task and its labels.
    let alert = wait_for("the agent_waiting alert", PATIENCE, || {
        p.vane(&["alerts", "--evaluate"]).success();
        let alerts = p.vane(&["alerts", "--json"]).success().json();
        alerts
            .as_array()?
            .iter()
            .find(|a| a["on"] == "agent_waiting")
            .cloned()
    });
    let summary = alert["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("run 1 task train attempt 1 waits for an agent with labels")
            && summary.contains("a100"),
        "{alert:#}"
    );

    // An agent without the label changes nothing; one with it runs the task.
    let mut cpu = p.daemon_via(
        &[],
        &[("VANE_HOST", "cpu-box")],
        &["agent", "--labels", "pool=cpu"],
    );
    ready(&mut cpu);
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run waits for a gpu agent"
    );
    let mut gpu = p.daemon_via(
        &[],
        &[("VANE_HOST", "gpu-box")],
        &["agent", "--labels", "gpu=a100,zone=eu", "--slots", "1"],
    );
    ready(&mut gpu);
    let status = wait_for("the run to end", PATIENCE, || run.try_wait().unwrap());
    assert!(status.success());
    // The task ran: the alert is resolved.
    p.vane(&["alerts", "--evaluate"]).success();
    let alerts = p.vane(&["alerts", "--all", "--json"]).success().json();
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["on"] == "agent_waiting")
        .unwrap_or_else(|| panic!("{alerts:#}"));
    assert_eq!(alert["state"], "resolved", "{alert:#}");
    assert!(
        p.logs(1, "train", None).contains("trained by gpu-box"),
        "{}",
        p.logs(1, "train", None)
    );
    // `vane show` says where the attempt ran: on the agent, not the run's own host.
    let show = p.show(1);
    let train = &crate::harness::attempts(&show, "train")[0];
    assert_eq!(train["host"], "gpu-box", "{show:#}");
    assert_eq!(train["agent"], true, "{show:#}");
    let table = p.vane(&["agents"]).success().stdout;
    assert!(
        table.contains("gpu-box") && table.contains("gpu=a100,zone=eu"),
        "{table}"
    );
    assert!(table.contains("0/1"), "{table}");
}

/// `vane logs --follow` on a host other than the agent's shows every line the task writes, in
/// order, with no gap, and ends when the task does.
#[test]
fn a_log_followed_from_another_host_shows_every_line_in_order() {
    let p = Project::on(Backend::Postgres).dag(
        "chatty",
        r#"
[tasks.count]
command = 'for i in $(seq 1 60); do echo "line $i"; sleep 0.05; done'
runs_on = {}
"#,
    );
    let hosts = Hosts::new(3);
    let _scheduler = scheduler(&hosts, &p);
    let mut agent = hosts.agent(&p, 1, "", 1);
    ready(&mut agent);
    p.vane(&["trigger", "chatty"]).success();
    wait_for("the task to start on the agent", PATIENCE, || {
        let state = p.sql("SELECT state FROM attempts WHERE task_id = 'count'");
        (state.trim() == "running").then_some(())
    });
    let url = hosts.url_for(&p);
    let state = crate::hosts::host_state(&p, 0);
    let followed = p
        .wrapped_command(
            &["ip", "netns", "exec", hosts.namespace(2)],
            &["logs", "1", "count", "--follow"],
        )
        .env("VANE_DB", &url)
        .env("VANE_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(followed.status.success(), "{followed:?}");
    let text = String::from_utf8_lossy(&followed.stdout);
    let expected: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text, expected);
    assert_eq!(ended(&p, 1, PATIENCE), "success");
}

/// With S3 as the storage, an agent with a disk of its own ships its task's log there: a third
/// host follows it live, line by line, reading only the database and S3; the line vane adds
/// when a task times out is there too; the agent keeps nothing once shipped. A task's declared
/// outputs are hashed and kept in S3 by the agent, and a missing one fails the attempt.
#[test]
fn an_agent_ships_its_logs_and_outputs_to_s3_and_another_host_follows_the_log() {
    use vane_objects::Objects;
    let hosts = Hosts::new(3);
    let s3 = vane_objects::testing::S3Server::start(hosts.bridge_ip().into());
    let bucket = s3.bucket("vane-e2e", "");
    let p = Project::on(Backend::Postgres)
        .env("AWS_ACCESS_KEY_ID", vane_objects::testing::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", vane_objects::testing::SECRET_KEY)
        .dag(
            "chatty",
            r#"
[tasks.count]
command = 'for i in $(seq 1 60); do echo "line $i"; sleep 0.05; done'
runs_on = {}

[tasks.stuck]
command = 'echo "started"; sleep 60'
runs_on = {}
timeout = "2s"

[tasks.train]
command = 'mkdir -p "$VANE_WORK/model" && echo "weights from $VANE_HOST" > "$VANE_WORK/model/w.txt"'
runs_on = {}
outputs = { model = "{{ work }}/model" }

[tasks.forgetful]
command = 'true'
runs_on = {}
outputs = { report = "{{ work }}/never-written.json" }
"#,
        );
    p.write(
        "vane.toml",
        &format!(
            "[scheduler]\nstorage = \"{}\"\n",
            s3.url("vane-e2e", "team")
        ),
    );
    let _scheduler = scheduler(&hosts, &p);
    let mut agent = hosts.agent_on_own_disk(&p, 1, "");
    ready(&mut agent);
    p.vane(&["trigger", "chatty"]).success();
    wait_for("the task to start on the agent", PATIENCE, || {
        let state = p.sql("SELECT state FROM attempts WHERE task_id = 'count'");
        (state.trim() == "running").then_some(())
    });
    let reader = |args: &[&str]| {
        let output = p
            .wrapped_command(&["ip", "netns", "exec", hosts.namespace(2)], args)
            .env("VANE_DB", hosts.url_for(&p))
            .env("VANE_STATE_DIR", crate::hosts::host_state(&p, 2))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let followed = reader(&["logs", "1", "count", "--follow"]);
    let expected: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    assert_eq!(followed, expected);
    assert_eq!(ended(&p, 1, PATIENCE), "failed");
    let stuck = reader(&["logs", "1", "stuck"]);
    assert!(stuck.starts_with("started\n"), "{stuck}");
    assert!(
        stuck.contains("vane: killed after its timeout of 2s"),
        "{stuck}"
    );
    // Where it went: objects in the bucket below the configured prefix, in the log's order;
    // nothing on the scheduler's disk or left in the agent's spool.
    let keys = bucket.list("team/logs/chatty/run-1/count.1/").unwrap();
    assert!(!keys.is_empty());
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let scheduler_logs = crate::hosts::host_state(&p, 0).join("logs/chatty/run-1");
    assert!(
        !scheduler_logs.join("count.1.log").exists() && !scheduler_logs.join("count.1").exists(),
        "the scheduler's disk holds the agent's log"
    );
    let spool = crate::hosts::host_state(&p, 1).join("agent-spool");
    let left: Vec<_> = fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "cache")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The agent kept the output it declared in the content store in S3, as a folder whose
    // marker comes last; the version is recorded with where its copy is.
    let artifacts = p.vane(&["artifacts", "model", "--json"]).success().json();
    let stored = artifacts[0]["stored"].as_str().unwrap().to_owned();
    assert!(
        stored.starts_with("s3://vane-e2e/team/artifacts/sha256/"),
        "{artifacts:#}"
    );
    let hash = artifacts[0]["hash"].as_str().unwrap();
    let key = format!("team/artifacts/sha256/{}/{hash}", &hash[..2]);
    assert!(bucket.exists(&format!("{key}.tree")).unwrap());
    assert_eq!(
        bucket.get(&format!("{key}/w.txt")).unwrap().as_deref(),
        Some(&b"weights from host-1\n"[..])
    );
    let forgetful = p.vane(&["show", "1", "--json"]).success().json();
    let reason = forgetful["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "forgetful")
        .map(|t| t["attempts"][0]["reason"].to_string())
        .unwrap();
    assert!(
        reason.contains("declared output `report` was not written"),
        "{reason}"
    );
}

/// Hosts that share no disk at all (the agent's work folder is its own): a task's output is
/// kept in S3 by the agent that wrote it, the next task on that agent reads it, and the run's
/// owner, which never sees the file, still records the lineage from the version the agent
/// reported.
#[test]
fn lineage_holds_across_hosts_that_share_no_disk() {
    use vane_objects::Objects;
    let hosts = Hosts::new(2);
    let s3 = vane_objects::testing::S3Server::start(hosts.bridge_ip().into());
    let bucket = s3.bucket("apart", "");
    let p = Project::on(Backend::Postgres)
        .env("AWS_ACCESS_KEY_ID", vane_objects::testing::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", vane_objects::testing::SECRET_KEY)
        .dag(
            "apart",
            r#"
[tasks.train]
command = 'mkdir -p "$VANE_WORK/model" && echo "weights" > "$VANE_WORK/model/w.txt"'
runs_on = {}
outputs = { model = "{{ work }}/model" }
cache = true

[tasks.evaluate]
command = 'cat "$VANE_WORK/model/w.txt"'
depends_on = ["train"]
runs_on = {}
inputs = { model = "{{ work }}/model" }

[tasks.clean]
command = 'rm -rf "$VANE_WORK/model"'
depends_on = ["evaluate"]
runs_on = {}
"#,
        );
    p.write(
        "vane.toml",
        &format!("[scheduler]\nstorage = \"{}\"\n", s3.url("apart", "")),
    );
    let _scheduler = scheduler(&hosts, &p);
    let work = crate::hosts::host_state(&p, 0).join("work");
    let mut agent = hosts.agent_without(&p, 1, &work);
    ready(&mut agent);
    p.vane(&["trigger", "apart"]).success();
    assert_eq!(ended(&p, 1, PATIENCE), "success", "{}", agent.log());
    assert!(
        !work.join("model").exists(),
        "the scheduler's host sees the agent's files: the test shares a disk"
    );
    assert_eq!(p.logs(1, "evaluate", None), "weights\n");
    let tree = p.vane(&["lineage", "model", "--json"]).success().json();
    assert_eq!(tree["produced_by"]["task"], "train", "{tree:#}");
    let readers: Vec<&str> = tree["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["task"].as_str())
        .collect();
    assert_eq!(readers, ["evaluate"], "{tree:#}");
    let hash = tree["artifact"]["hash"].as_str().unwrap();
    assert!(
        bucket
            .exists(&format!("artifacts/sha256/{}/{hash}.tree", &hash[..2]))
            .unwrap()
    );
}

/// Built-in tasks and sensors run on agents as on one host: a sensor waits there for its file,
/// a validate task's checks and a deploy task's rollout are recorded, and the model reaches
/// production; every attempt ran on the agent.
#[test]
fn a_sensor_a_validate_and_a_deploy_task_run_on_an_agent_as_on_one_host() {
    let p = crate::deploy::project("pass");
    let dag = format!(
        r#"
[defaults]
runs_on = {{ role = "worker" }}

[tasks.wait]
kind = "sensor"
command = 'test -e "$VANE_WORK/ready"'
poke_interval = "1s"
timeout = "60s"

[tasks.check]
kind = "validate"
depends_on = ["wait"]
dataset = "eval.csv"
rows = {{ min = 2 }}
{}"#,
        crate::deploy::dag_text("pass")
            .replace(
                "[tasks.rollout]\n",
                "[tasks.rollout]\ndepends_on = [\"check\"]\n"
            )
            .replace("[params]\nmodel = \"v1\"\n", "")
    );
    p.write(
        "dags/churn.toml",
        &format!("[params]\nmodel = \"v1\"\n{dag}"),
    );
    p.vane(&["validate"]).success();
    let mut agent = p.daemon_via(
        &[],
        &[("VANE_HOST", "worker-1")],
        &["agent", "--labels", "role=worker", "--slots", "2"],
    );
    ready(&mut agent);
    let mut run = p
        .command(&["run", "churn"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    // The sensor checks on the agent until the file appears.
    wait_for("the sensor to check on the agent", PATIENCE, || {
        let listed = p.vane(&["agents", "--json"]).success().json();
        (listed["agents"][0]["running"] == 1).then_some(())
    });
    fs::write(p.work().join("ready"), "").unwrap();
    let status = wait_for("the run to end", Duration::from_secs(60), || {
        run.try_wait().unwrap()
    });
    assert!(status.success(), "{}", agent.log());
    let show = p.show(1);
    for task in ["wait", "check", "rollout"] {
        let attempts = crate::harness::attempts(&show, task);
        assert!(!attempts.is_empty(), "{show:#}");
        for attempt in attempts {
            assert_eq!(attempt["host"], "worker-1", "{task}: {show:#}");
        }
    }
    let checks = p.vane(&["checks", "churn", "--json"]).success().json();
    assert!(checks.to_string().contains("rows"), "{checks:#}");
    let models = p.vane(&["models", "churn", "--json"]).success().json();
    let live = models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["stage"] == "production")
        .unwrap_or_else(|| panic!("{models:#}"));
    assert_eq!(live["version"], 1, "{models:#}");
}
