//! Metrics reported through `$VANE_METRICS`, and `vane metrics`.

use crate::harness::{Backend, Project};

const EVAL: &str = r#"
[params]
accuracy = 0.9

[tasks.evaluate]
command = 'echo "accuracy {{ params.accuracy }}" >> "$VANE_METRICS"; printf "rows 120\nbroken line here\n" >> "$VANE_METRICS"'
"#;

fn reported_metrics_are_recorded_per_attempt_and_shown_as_series(backend: Backend) {
    let p = Project::on(backend).dag("eval", EVAL);
    p.vane(&["run", "eval"]).success();
    p.vane(&["run", "eval", "--param", "accuracy=0.85"])
        .success();

    let show = p.show(2);
    let metrics = &crate::harness::attempts(&show, "evaluate")[0]["metrics"];
    assert_eq!(metrics["accuracy"], 0.85);
    assert_eq!(metrics["rows"], 120.0);
    // A line that is not `name value` is named in the log, and does not fail the task.
    assert!(
        p.logs(2, "evaluate", None)
            .contains("$VANE_METRICS line 3: `broken line here` is not `name value`"),
        "{}",
        p.logs(2, "evaluate", None)
    );

    let out = p.vane(&["metrics", "eval", "--name", "accuracy"]).success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[1].starts_with("evaluate.accuracy  1 ") && lines[1].contains("0.9"));
    assert!(
        lines[2].contains("0.85") && lines[2].contains("-0.05"),
        "{}",
        out.stdout
    );

    let json = p
        .vane(&[
            "metrics", "eval", "--task", "evaluate", "--last", "1", "--json",
        ])
        .success()
        .json();
    let points = json.as_array().unwrap();
    assert_eq!(
        points.len(),
        2,
        "the last point of each of two series: {json}"
    );
    assert!(points.iter().all(|p| p["run_id"] == 2));

    // A name the DAG never reported is not found, and the answer names those it did.
    let out = p.vane(&["metrics", "eval", "--name", "acuracy"]).code(3);
    insta::assert_snapshot!("metrics_unknown_name", out.stderr);
}

fn a_failing_task_can_say_why_through_vane_reason(backend: Backend) {
    let p = Project::on(backend).dag(
        "explain",
        r#"
[tasks.load]
command = 'echo "the export for today is empty" > "$VANE_REASON"; exit 3'
"#,
    );
    p.vane(&["run", "explain"]).code(1);
    let show = p.show(1);
    let attempt = &crate::harness::attempts(&show, "load")[0];
    assert_eq!(attempt["exit_code"], 3);
    assert_eq!(attempt["reason"], "the export for today is empty");
}

crate::harness::on_both_backends!(
    reported_metrics_are_recorded_per_attempt_and_shown_as_series,
    a_failing_task_can_say_why_through_vane_reason,
);
