//! Running DAGs: dependency order, failures, retries and the concurrency limit.

use crate::harness::{Backend, Project, attempts, task};

/// Appends the task's id to `$VANE_WORK/order`.
const DIAMOND: &str = r#"
[dag]
description = "a diamond: extract, then clean and features side by side, then train"
max_active_tasks = 4

[tasks.extract]
command = 'echo {{ task_id }} >> "$VANE_WORK/order"'

[tasks.clean]
command = 'echo {{ task_id }} >> "$VANE_WORK/order"'
depends_on = ["extract"]

[tasks.features]
command = 'sleep 0.05; echo {{ task_id }} >> "$VANE_WORK/order"'
depends_on = ["extract"]

[tasks.train]
command = 'echo {{ task_id }} >> "$VANE_WORK/order"; echo trained'
depends_on = ["clean", "features"]
"#;

fn diamond_runs_every_task_after_its_dependencies(backend: Backend) {
    let p = Project::on(backend).dag("diamond", DIAMOND);
    let out = p.vane(&["run", "diamond"]).success();
    assert!(
        out.stdout.contains("run 1 succeeded"),
        "stdout: {}",
        out.stdout
    );

    let show = p.show(1);
    assert_eq!(show["state"], "success", "{show:#}");
    assert_eq!(show["dag_id"], "diamond");
    let ids: Vec<&str> = show["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["extract", "clean", "features", "train"]);
    for id in ids {
        let t = task(&show, id);
        assert_eq!(t["state"], "success", "{t:#}");
        let a = attempts(&show, id);
        assert_eq!(a.len(), 1, "{t:#}");
        assert_eq!(a[0]["attempt"], 1);
        assert_eq!(a[0]["state"], "success");
        assert_eq!(a[0]["exit_code"], 0);
    }

    let order = p.read_work("order");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 4, "each task ran once: {order:?}");
    let pos = |id: &str| {
        order
            .iter()
            .position(|t| *t == id)
            .unwrap_or_else(|| panic!("{id} did not run: {order:?}"))
    };
    for (task, deps) in [
        ("clean", &["extract"][..]),
        ("features", &["extract"]),
        ("train", &["clean", "features"]),
    ] {
        for dep in deps {
            assert!(
                pos(dep) < pos(task),
                "{task} ran before its dependency {dep}: {order:?}"
            );
        }
    }
    assert_eq!(p.logs(1, "train", None), "trained\n");
}

fn a_failed_task_fails_its_downstream_but_not_independent_branches(backend: Backend) {
    let p = Project::on(backend).dag(
        "branches",
        r#"
[tasks.boom]
command = "echo about to fail; exit 3"

[tasks.after_boom]
command = 'touch "$VANE_WORK/after_boom.ran"'
depends_on = ["boom"]

[tasks.further_down]
command = 'touch "$VANE_WORK/further_down.ran"'
depends_on = ["after_boom"]

[tasks.independent]
command = "echo fine"

[tasks.after_independent]
command = "echo also fine"
depends_on = ["independent"]
"#,
    );
    let out = p.vane(&["run", "branches", "--date", "2026-11-23"]).code(1);
    insta::assert_snapshot!("failed_run_summary", p.filter(&out.stdout));

    let show = p.show(1);
    assert_eq!(show["state"], "failed", "{show:#}");
    assert!(
        show["reason"].as_str().is_some_and(|r| r.contains("boom")),
        "the run's reason names the failed task: {show:#}"
    );
    assert_eq!(task(&show, "boom")["state"], "failed");
    assert_eq!(attempts(&show, "boom")[0]["exit_code"], 3);
    for id in ["after_boom", "further_down"] {
        assert_eq!(task(&show, id)["state"], "upstream_failed", "{show:#}");
        assert!(attempts(&show, id).is_empty(), "{id} never started");
    }
    assert!(
        task(&show, "after_boom")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("boom")),
        "{show:#}"
    );
    for id in ["independent", "after_independent"] {
        assert_eq!(task(&show, id)["state"], "success", "{show:#}");
    }
    assert!(p.find_files_named("after_boom.ran").is_empty());
    assert!(p.find_files_named("further_down.ran").is_empty());
    assert_eq!(p.logs(1, "boom", None), "about to fail\n");
}

#[test]
fn a_flaky_task_succeeds_on_its_third_attempt() {
    // Fails while the counter is below 3: attempts 1 and 2 fail, attempt 3 succeeds.
    let p = Project::new().dag(
        "flaky",
        r#"
[tasks.flaky]
command = 'n=$(cat "$VANE_WORK/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$VANE_WORK/count"; echo "attempt {{ attempt }} ($VANE_ATTEMPT) sees count $n"; [ "$n" -ge 3 ]'
retries = 2
retry_delay = "100ms"

[tasks.after]
command = "echo after"
depends_on = ["flaky"]
"#,
    );
    p.vane(&["run", "flaky"]).success();

    let show = p.show(1);
    assert_eq!(show["state"], "success", "{show:#}");
    assert_eq!(task(&show, "flaky")["state"], "success");
    let a = attempts(&show, "flaky");
    let summary: Vec<(u64, &str, i64)> = a
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().expect("attempt"),
                a["state"].as_str().expect("state"),
                a["exit_code"].as_i64().expect("exit code"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, "failed", 1), (2, "failed", 1), (3, "success", 0)]
    );
    assert_eq!(task(&show, "after")["state"], "success");

    assert_eq!(p.logs(1, "flaky", Some(1)), "attempt 1 (1) sees count 1\n");
    assert_eq!(p.logs(1, "flaky", Some(2)), "attempt 2 (2) sees count 2\n");
    assert_eq!(
        p.logs(1, "flaky", None),
        "attempt 3 (3) sees count 3\n",
        "without --attempt, the latest attempt"
    );
}

fn a_task_that_keeps_failing_fails_after_its_last_retry(backend: Backend) {
    let p = Project::on(backend).dag(
        "hopeless",
        r#"
[defaults]
retries = 1
retry_delay = "100ms"

[tasks.hopeless]
command = "echo attempt {{ attempt }}; exit 7"
"#,
    );
    p.vane(&["run", "hopeless"]).code(1);
    let show = p.show(1);
    assert_eq!(show["state"], "failed");
    let t = task(&show, "hopeless");
    assert_eq!(t["state"], "failed");
    assert_eq!(attempts(&show, "hopeless").len(), 2, "{t:#}");
    assert!(
        attempts(&show, "hopeless")
            .iter()
            .all(|a| a["state"] == "failed" && a["exit_code"] == 7),
        "{t:#}"
    );
    assert_eq!(p.logs(1, "hopeless", None), "attempt 2\n");
}

#[test]
fn max_active_tasks_bounds_how_many_tasks_run_at_once() {
    let mut dag = String::from("[dag]\nmax_active_tasks = 2\n");
    for i in 1..=6 {
        // Each task records when it started and ended, from inside its own process.
        dag.push_str(&format!(
            "\n[tasks.t{i}]\ncommand = 'echo \"start $(date +%s%N)\" > \"$VANE_WORK/{{{{ task_id }}}}.times\"; sleep 0.2; echo \"end $(date +%s%N)\" >> \"$VANE_WORK/{{{{ task_id }}}}.times\"'\n"
        ));
    }
    let p = Project::new().dag("parallel", &dag);
    p.vane(&["run", "parallel"]).success();

    let show = p.show(1);
    assert_eq!(show["state"], "success", "{show:#}");

    // (time, +1 for a start / -1 for an end); at equal times ends count first.
    let mut events: Vec<(u128, i32)> = Vec::new();
    for i in 1..=6 {
        let text = p.read_work(&format!("t{i}.times"));
        let mut lines = text.lines();
        let mut stamp = |label: &str| -> u128 {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix(label)
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("t{i}: expected `{label}<ns>`, got {text:?}"))
        };
        let start = stamp("start ");
        let end = stamp("end ");
        assert!(start <= end, "t{i}: {text:?}");
        events.push((start, 1));
        events.push((end, -1));
    }
    events.sort();
    let mut active = 0;
    let mut most = 0;
    for (_, change) in &events {
        active += change;
        most = most.max(active);
    }
    assert!(
        most <= 2,
        "{most} tasks ran at once with max_active_tasks = 2: {events:?}"
    );
}

/// A user's own evaluation script can deliver a verdict like vane's checks and gates: exiting
/// with `$VANE_VERDICT_EXIT` fails the task for good, retries or not, with the reason it wrote.
fn a_task_that_exits_with_the_verdict_code_is_not_retried(backend: Backend) {
    let p = Project::on(backend).dag(
        "judged",
        r#"
[defaults]
retries = 2
retry_delay = "100ms"

[tasks.evaluate]
command = 'echo "accuracy 0.61 is below 0.80" > "$VANE_REASON"; exit "$VANE_VERDICT_EXIT"'

[tasks.deploy]
command = "echo deploying"
depends_on = ["evaluate"]
"#,
    );
    p.vane(&["run", "judged"]).code(1);
    let show = p.show(1);
    let a = attempts(&show, "evaluate");
    assert_eq!(a.len(), 1, "{show:#}");
    assert_eq!(a[0]["exit_code"], 65, "{show:#}");
    assert_eq!(a[0]["reason"], "accuracy 0.61 is below 0.80", "{show:#}");
    assert!(
        task(&show, "evaluate")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("verdict") && r.contains("not retried")),
        "{show:#}"
    );
    assert_eq!(
        task(&show, "deploy")["state"],
        "upstream_failed",
        "{show:#}"
    );
}

/// Tasks know how they came to run (`$VANE_TRIGGER`, `{{ trigger }}`), and a task can end
/// itself `skipped` with `$VANE_SKIP_EXIT`: here a publish step that must never run from a
/// backfill. Downstream tasks follow their trigger rules, and the run still succeeds.
fn a_task_knows_how_it_was_started_and_can_skip_itself(backend: Backend) {
    let p = Project::on(backend).dag(
        "publish",
        r#"
[dag]
schedule = "0 6 * * *"

[tasks.guard]
command = '''
echo "$VANE_TRIGGER {{ trigger }}" >> "$VANE_WORK/started.txt"
if [ "$VANE_TRIGGER" = backfill ]; then
  echo "a backfill never publishes" > "$VANE_REASON"
  exit "$VANE_SKIP_EXIT"
fi
'''

[tasks.publish]
command = 'echo published >> "$VANE_WORK/published.txt"'
depends_on = ["guard"]

[tasks.cleanup]
command = "echo cleaned"
depends_on = ["guard"]
trigger_rule = "none_failed"
"#,
    );
    p.vane(&["run", "publish"]).success();
    p.vane(&[
        "backfill",
        "publish",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-01",
    ])
    .success();
    let backfilled = p.show(2);
    assert_eq!(backfilled["trigger"], "backfill", "{backfilled:#}");
    assert_eq!(backfilled["state"], "success", "{backfilled:#}");
    assert_eq!(
        task(&backfilled, "guard")["state"],
        "skipped",
        "{backfilled:#}"
    );
    assert_eq!(
        attempts(&backfilled, "guard")[0]["reason"],
        "a backfill never publishes",
        "{backfilled:#}"
    );
    assert_eq!(
        task(&backfilled, "publish")["state"],
        "skipped",
        "{backfilled:#}"
    );
    assert_eq!(
        task(&backfilled, "cleanup")["state"],
        "success",
        "{backfilled:#}"
    );
    p.vane(&["clear", "1", "--task", "guard", "--foreground"])
        .success();
    assert_eq!(
        p.read_work("started.txt"),
        "manual manual\nbackfill backfill\nclear clear\n"
    );
    assert_eq!(p.read_work("published.txt"), "published\n");
}

crate::harness::on_both_backends!(
    a_task_knows_how_it_was_started_and_can_skip_itself,
    diamond_runs_every_task_after_its_dependencies,
    a_failed_task_fails_its_downstream_but_not_independent_branches,
    a_task_that_keeps_failing_fails_after_its_last_retry,
    a_task_that_exits_with_the_verdict_code_is_not_retried,
);

/// A "daemon" that leaves the task's process group with `setsid` used to survive the task, which
/// was recorded a success while it ran on; now the task's cgroup holds it, vane ends it, and the
/// log says so.
#[test]
fn a_daemon_a_task_starts_with_setsid_does_not_outlive_the_task() {
    let p = Project::new().dag(
        "daemon",
        r#"
[tasks.start_server]
command = '''
setsid sh -c 'echo $$ > "$VANE_WORK/daemon.pid"; exec sleep 1000' >/dev/null 2>&1 &
while [ ! -s "$VANE_WORK/daemon.pid" ]; do sleep 0.01; done
echo started
'''
"#,
    );
    p.vane(&["run", "daemon"]).success();
    let pid: u32 = p.read_work("daemon.pid").trim().parse().expect("pid");
    let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.contains(") Z"));
    assert!(gone, "the daemon (pid {pid}) outlived its task");
    let log = p.logs(1, "start_server", None);
    assert!(
        log.starts_with("started\n")
            && log.contains(&format!(
                "vane: the task left a process running after its end, outside its process group: pid {pid} (sleep 1000); vane terminated it"
            )),
        "{log}"
    );
}
