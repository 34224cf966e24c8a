//! `vane logs`: which attempt it prints, and clear errors for what does not exist.

use crate::harness::{Backend, Project};

const TWO: &str = r#"
[tasks.speak]
command = "echo out; echo err >&2"

[tasks.fail]
command = "exit 1"

[tasks.never]
command = "echo never"
depends_on = ["fail"]
"#;

fn logs_hold_stdout_and_stderr_of_the_attempt(backend: Backend) {
    let p = Project::on(backend).dag("two", TWO);
    p.vane(&["run", "two"]).code(1);
    assert_eq!(p.logs(1, "speak", None), "out\nerr\n");
    assert_eq!(p.logs(1, "speak", Some(1)), "out\nerr\n");
}

fn logs_of_unknown_things_are_clear_errors(backend: Backend) {
    let p = Project::on(backend).dag("two", TWO);
    p.vane(&["run", "two"]).code(1);

    let out = p
        .vane(&["logs", "1", "nope"])
        .failure()
        .stderr_contains("no task `nope`");
    assert!(
        out.stderr.contains("speak") && out.stderr.contains("fail"),
        "lists the run's tasks: {}",
        out.stderr
    );
    assert_eq!(out.stdout, "");

    p.vane(&["logs", "1", "speak", "--attempt", "5"])
        .failure()
        .stderr_contains("no attempt 5")
        .stderr_contains("1 to 1");

    p.vane(&["logs", "1", "speak", "--attempt", "0"])
        .failure()
        .stderr_contains("no attempt 0");

    p.vane(&["logs", "1", "never"])
        .failure()
        .stderr_contains("never started")
        .stderr_contains("upstream_failed");

    p.vane(&["logs", "42", "speak"])
        .failure()
        .stderr_contains("run 42");
}

crate::harness::on_both_backends!(
    logs_hold_stdout_and_stderr_of_the_attempt,
    logs_of_unknown_things_are_clear_errors,
);

/// A task that fails says why where a person looks first: `vane run` prints the end of its log
/// and the table names the reason it gave, not only "failed after 2 attempts"; `vane logs RUN`
/// prints every task's log, each under a header, in the order they started.
#[test]
fn a_failed_task_shows_its_reason_and_the_end_of_its_log_and_logs_of_a_run_show_every_task() {
    let p = Project::new().dag(
        "flaky",
        r#"
[tasks.speak]
command = "echo hello"

[tasks.boom]
command = 'for i in $(seq 1 15); do echo "step $i"; done; echo "disk full" > "$VANE_REASON"; exit 3'
depends_on = ["speak"]
retries = 1
retry_delay = "1s"
"#,
    );
    let out = p.vane(&["run", "flaky"]).code(1);
    // Regression: failures were logged at `info`, so `VANE_LOG=warn` (as here) hid them.
    let warned: Vec<_> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" WARN "))
        .map(|l| l.split_once(" WARN ").unwrap().1)
        .collect();
    assert_eq!(warned.len(), 3, "{}", out.stderr);
    assert!(
        warned[..2]
            .iter()
            .all(|l| l.starts_with("Task attempt finished. run_id=1 task=boom")),
        "{warned:?}"
    );
    assert!(
        warned[2].starts_with("Run finished. run_id=1 dag=flaky state=failed"),
        "{warned:?}"
    );
    assert!(
        out.stdout
            .contains("--- boom attempt 2: last 10 lines of its log ---\nstep 6\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("step 15\n"), "{}", out.stdout);
    assert!(!out.stdout.contains("step 5\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("disk full (failed after 2 attempts)"),
        "{}",
        out.stdout
    );
    let show = p.vane(&["show", "1"]).success();
    assert!(
        show.stdout.contains("disk full (failed after 2 attempts)"),
        "{}",
        show.stdout
    );

    let all = p.vane(&["logs", "1"]).success();
    let speak = all
        .stdout
        .find("==> speak (attempt 1, success) <==\nhello\n");
    let boom = all
        .stdout
        .find("==> boom (attempt 2, failed) <==\nstep 1\n");
    assert!(
        speak.is_some() && boom.is_some() && speak < boom,
        "{}",
        all.stdout
    );
    p.vane(&["logs", "1", "--follow"])
        .code(2)
        .stderr_contains("--follow");
}
