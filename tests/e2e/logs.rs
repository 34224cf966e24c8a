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
