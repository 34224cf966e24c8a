//! Pools and the global task limit (`vane.toml`), across DAGs and across vane processes.

use std::process::Stdio;

use crate::harness::{Backend, Project};

/// A task that records when it starts and ends (ns), so the test can see overlaps.
fn dag(id: &str, tasks: usize, pool: &str) -> String {
    let mut text = format!("[dag]\nid = \"{id}\"\nmax_active_tasks = 4\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "[tasks.t{i}]\ncommand = 'echo \"+ $(date +%s%N)\" >> \"$VANE_WORK\"/marks; sleep 0.3; echo \"- $(date +%s%N)\" >> \"$VANE_WORK\"/marks'\n{pool}\n"
        ));
    }
    text
}

/// Runs `vane run ID` for each id at the same time; every one must succeed.
fn run_together(p: &Project, ids: &[&str]) {
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let child = p
                .command(&["run", id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (id, child)
        })
        .collect();
    for (id, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "vane run {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The most tasks that ever ran at once, from the marks.
fn most_at_once(p: &Project) -> usize {
    let mut events: Vec<(u128, i32)> = p
        .read_work("marks")
        .lines()
        .map(|l| {
            let (sign, at) = l.split_once(' ').unwrap();
            (at.parse().unwrap(), if sign == "+" { 1 } else { -1 })
        })
        .collect();
    // At equal times an end comes before a start: touching is not overlapping.
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    most as usize
}

fn a_pool_is_never_oversubscribed_across_dags_and_processes(backend: Backend) {
    let p = Project::on(backend)
        .dag("first", &dag("first", 3, "pool = \"gpu\""))
        .dag("second", &dag("second", 3, "pool = \"gpu\""));
    p.write("vane.toml", "[pools]\ngpu = 1\n");
    // Two `vane run` processes at once, each with tasks that could run four at a time.
    run_together(&p, &["first", "second"]);
    assert_eq!(most_at_once(&p), 1);
}

fn the_global_limit_bounds_every_run_together(backend: Backend) {
    let p = Project::on(backend)
        .dag("first", &dag("first", 3, ""))
        .dag("second", &dag("second", 3, ""));
    p.write("vane.toml", "[scheduler]\nmax_active_tasks = 2\n");
    run_together(&p, &["first", "second"]);
    assert!(most_at_once(&p) <= 2, "{}", most_at_once(&p));
}

fn a_broken_config_is_reported_like_a_dag_file(backend: Backend) {
    let p = Project::on(backend).dag("first", &dag("first", 1, ""));
    p.write("vane.toml", "[pool]\ngpu = 1\n");
    p.vane(&["run", "first"])
        .failure()
        .stderr_contains("unknown table `pool` in the scheduler config")
        .stderr_contains("did you mean `pools`?")
        .stderr_contains("vane.toml:1:2");
}

/// Regression: `vane run` pointed at `vane logs 1 TASK` when no task had started, so there
/// was no output to see; the task that failed the run is in the table instead.
#[test]
fn a_run_refused_for_an_undefined_pool_points_at_no_logs() {
    let p = Project::new().dag("first", &dag("first", 1, "pool = \"gpu\""));
    let out = p
        .vane(&["run", "first"])
        .code(1)
        .stdout_contains("t0    failed  0         -         -     uses pool `gpu`");
    assert!(!out.stdout.contains("vane logs"), "{}", out.stdout);
}

/// Regression: vane processes starting at once on a fresh database got "database is locked"
/// from its switch to WAL or its migration, instead of waiting their turn.
#[test]
fn commands_started_at_once_on_a_fresh_database_all_work() {
    for _ in 0..10 {
        let p = Project::new().dag("first", &dag("first", 1, ""));
        let children: Vec<_> = (0..6)
            .map(|_| {
                p.command(&["runs"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

crate::harness::on_both_backends!(
    a_pool_is_never_oversubscribed_across_dags_and_processes,
    the_global_limit_bounds_every_run_together,
    a_broken_config_is_reported_like_a_dag_file,
);
