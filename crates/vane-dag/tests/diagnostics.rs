//! Every diagnostic `vane validate` can print, as a person sees it.

fn render(source: &str) -> String {
    vane_dag::parse_dag(source, "example").render("dags/example.toml", source)
}

#[test]
fn toml_syntax_error() {
    insta::assert_snapshot!(render(
        "[dag]\ndescription = \"unterminated\n\n[tasks.a]\ncommand = \"true\"\n"
    ));
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedul = "0 2 * * *"

[defaults]
retires = 2

[tasks.train]
comand = "python3 train.py"

[task.typo]
command = "true"
"#
    ));
}

#[test]
fn wrong_types() {
    insta::assert_snapshot!(render(
        r#"[dag]
max_active_tasks = "4"
tags = "ml"

[tasks.a]
command = ["echo", "hi"]
retries = true
timeout = 30
depends_on = "b"
env = { SEED = 7 }

[tasks.b]
command = "true"
"#
    ));
}

#[test]
fn duplicate_task_ids() {
    insta::assert_snapshot!(render(
        "[tasks.a]\ncommand = \"true\"\n\n[tasks.a]\ncommand = \"false\"\n"
    ));
}

#[test]
fn missing_dependency_suggests_a_task() {
    insta::assert_snapshot!(render(
        r#"[tasks.ingest]
command = "true"
[tasks.train]
command = "true"
depends_on = ["ingset", "evaluate_model"]
"#
    ));
}

#[test]
fn cycles_name_every_task_on_them() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
command = "true"
depends_on = ["c"]
[tasks.b]
command = "true"
depends_on = ["a"]
[tasks.c]
command = "true"
depends_on = ["b"]
[tasks.lonely]
command = "true"
depends_on = ["lonely"]
"#
    ));
}

#[test]
fn cron_and_time_zone() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedule = "0 25 * * *"
timezone = "Europe/Pari"
[tasks.a]
command = "true"
"#
    ));
}

#[test]
fn durations_and_absurd_numbers() {
    insta::assert_snapshot!(render(
        r#"[dag]
max_active_tasks = 0
[defaults]
retries = -1
retry_delay = "30 seconds"
[tasks.a]
command = "true"
retries = 1000
timeout = "400d"
retry_backoff = "exponentail"
"#
    ));
}

#[test]
fn unknown_template_variables_and_raw_substitution() {
    insta::assert_snapshot!(render(
        r#"[params]
min_accuracy = 0.8
model = "small"
[tasks.a]
command = "train --date {{ dss }} --min {{ params.min_acc }} --run {{ run_id }}"
[tasks.b]
command = "echo {{ params.model | raw }}"
env = { OUT = "{{ logical_dat }}" }
"#
    ));
}

#[test]
fn no_tasks_and_bad_params() {
    insta::assert_snapshot!(render(
        r#"[dag]
description = "empty"
[params]
list = [1, 2]
"bad name" = 1
"#
    ));
}

#[test]
fn a_valid_file_has_no_diagnostics() {
    let source = r#"
[dag]
id = "churn_retrain"
description = "Daily retraining of the churn model"
schedule = "0 2 * * *"
timezone = "America/New_York"
max_active_tasks = 4

[defaults]
retries = 2
retry_delay = "30s"
timeout = "1h"
env = { SEED = "7" }

[params]
min_accuracy = 0.8

[tasks.ingest]
command = "python3 ingest.py --out $VANE_WORK/raw/{{ ds }}.csv"
[tasks.train]
command = "python3 train.py --min {{ params.min_accuracy }}"
depends_on = ["ingest"]
env = { SEED = "8", DATE = "{{ ds }}" }
retry_backoff = "exponential"
"#;
    let parsed = vane_dag::parse_dag(source, "ignored");
    assert_eq!(parsed.diagnostics, vec![]);
    let dag = parsed.dag.unwrap();
    assert_eq!(dag.id, "churn_retrain");
    assert_eq!(dag.timezone, chrono_tz::America::New_York);
    let train = &dag.tasks[1];
    assert_eq!(train.retry.retries, 2);
    assert_eq!(train.retry.backoff, vane_dag::Backoff::Exponential);
    assert_eq!(train.timeout, Some(std::time::Duration::from_secs(3600)));
    let env: Vec<_> = train
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.source()))
        .collect();
    assert_eq!(env, vec![("SEED", "8"), ("DATE", "{{ ds }}")]);
}

#[test]
fn trigger_rules() {
    insta::assert_snapshot!(render(
        r#"[tasks.train]
command = "true"
trigger_rule = "all_done"
[tasks.fallback]
command = "true"
depends_on = ["train"]
trigger_rule = "one_fail"
"#
    ));
}

#[test]
fn scheduler_keys() {
    insta::assert_snapshot!(render(
        r#"[dag]
schedule = "@daily"
start_date = "2026-13-01"
end_date = 2026-01-01
catchup = "everything"
catchup_window = "3 days"
overlap = "cancel"
max_active_runs = 0
paused = "yes"
[tasks.a]
command = "true"
"#
    ));
}

#[test]
fn scheduler_keys_are_read() {
    let dag = vane_dag::parse_dag(
        r#"[dag]
schedule = "30 2 * * *"
timezone = "America/New_York"
start_date = 2026-03-08T02:30:00
end_date = "2026-12-31T00:00:00Z"
catchup = true
catchup_window = "3d"
overlap = "queue"
max_active_runs = 2
paused = true
[tasks.a]
command = "true"
"#,
        "t",
    )
    .dag
    .unwrap();
    let c = &dag.cadence;
    // 02:30 does not exist in New York that day: the first valid time after the gap.
    assert_eq!(
        c.start_date.unwrap().to_rfc3339(),
        "2026-03-08T07:00:00+00:00"
    );
    assert_eq!(
        c.end_date.unwrap().to_rfc3339(),
        "2026-12-31T00:00:00+00:00"
    );
    assert_eq!(c.catchup, vane_dag::Catchup::All);
    assert_eq!(
        c.catchup_window,
        Some(std::time::Duration::from_secs(3 * 86_400))
    );
    assert_eq!(c.overlap, vane_dag::Overlap::Queue);
    assert_eq!(c.max_active_runs, 2);
    assert!(c.paused);
}

#[test]
fn an_input_named_by_two_upstream_outputs_is_ambiguous() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
command = "true"
outputs = { x = "a.csv" }

[tasks.b]
command = "true"
outputs = { x = "b.csv" }

[tasks.c]
command = "true"
depends_on = ["a", "b"]
inputs = ["x"]

[tasks.d]
command = "true"
depends_on = ["b"]
inputs = ["x"]
"#
    ));
}
