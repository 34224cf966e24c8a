//! Templates, the environment tasks see, parameters, and shell quoting.

use std::collections::BTreeMap;

use crate::harness::Project;

/// Prints every template value as `name=value`, then the same values from the environment.
const TEMPLATED: &str = r#"
[dag]
timezone = "America/New_York"

[params]
x = "default x"
n = 3

[tasks.show-me]
command = '''printf '%s\n' ds={{ ds }} ds_nodash={{ ds_nodash }} logical_date={{ logical_date }} run_id={{ run_id }} dag_id={{ dag_id }} task_id={{ task_id }} attempt={{ attempt }} x={{ params.x }} n={{ params.n }}; printf 'env_%s\n' "ds=$VANE_DS" "ds_nodash=$VANE_DS_NODASH" "logical_date=$VANE_LOGICAL_DATE" "run_id=$VANE_RUN_ID" "dag_id=$VANE_DAG_ID" "task_id=$VANE_TASK_ID" "attempt=$VANE_ATTEMPT" "x=$VANE_PARAM_X" "n=$VANE_PARAM_N" "work=$VANE_WORK"; touch "$VANE_WORK/ran"'''
"#;

fn key_values(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .map(|line| {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {line:?} in\n{log}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn templates_and_environment_carry_the_same_values() {
    let p = Project::new().dag("templated", TEMPLATED);
    let x = "it's a \"value\" with $HOME and spaces";
    p.vane(&[
        "run",
        "templated",
        "--date",
        "2026-03-08",
        "--param",
        &format!("x={x}"),
    ])
    .success();

    let values = key_values(&p.logs(1, "show-me", None));
    let expected = [
        ("ds", "2026-03-08"),
        ("ds_nodash", "20260308"),
        // Midnight in New York on the day daylight saving time starts, still EST.
        ("logical_date", "2026-03-08T00:00:00-05:00"),
        ("run_id", "1"),
        ("dag_id", "templated"),
        ("task_id", "show-me"),
        ("attempt", "1"),
        ("x", x),
        ("n", "3"),
    ];
    for (name, value) in expected {
        assert_eq!(
            values.get(name).map(String::as_str),
            Some(value),
            "{{{{ {name} }}}} in the command: {values:#?}"
        );
        assert_eq!(
            values.get(&format!("env_{name}")).map(String::as_str),
            Some(value),
            "environment variable for {name}: {values:#?}"
        );
    }
    assert_eq!(
        values.get("env_work").map(String::as_str),
        Some(p.work().to_str().expect("utf-8 path")),
        "VANE_WORK is the absolute work folder"
    );
    assert!(p.work().join("ran").is_file());

    let run = &p.runs()[0];
    // In the DAG's zone, with its offset: the date the schedule names.
    assert_eq!(run["logical_date"], "2026-03-08T00:00:00-05:00");
    assert_eq!(run["timezone"], "America/New_York");
    assert_eq!(run["params"]["x"], x);
    assert_eq!(run["params"]["n"], 3);
}

#[test]
fn param_overrides_keep_the_type_of_the_default() {
    let p = Project::new().dag("templated", TEMPLATED);
    p.vane(&[
        "run",
        "templated",
        "--param",
        "n=42",
        "--date",
        "2026-11-23",
    ])
    .success();
    let values = key_values(&p.logs(1, "show-me", None));
    assert_eq!(values["n"], "42");
    assert_eq!(values["env_n"], "42");
    assert_eq!(
        values["x"], "default x",
        "a parameter not overridden keeps its default"
    );
    assert_eq!(values["logical_date"], "2026-11-23T00:00:00-05:00");
    assert_eq!(p.runs()[0]["params"]["n"], 42, "recorded as an integer");
}

#[test]
fn bad_params_are_refused_before_anything_runs() {
    let p = Project::new().dag("templated", TEMPLATED);

    let out = p
        .vane(&["run", "templated", "--param", "nope=1"])
        .failure()
        .stderr_contains("`nope`");
    assert!(
        out.stderr.contains("x, n") || out.stderr.contains("declared"),
        "names the declared parameters: {}",
        out.stderr
    );

    p.vane(&["run", "templated", "--param", "n=abc"])
        .failure()
        .stderr_contains("`n`")
        .stderr_contains("integer")
        .stderr_contains("abc");

    p.vane(&["run", "templated", "--param", "justaname"])
        .failure()
        .stderr_contains("KEY=VALUE");

    assert!(!p.work().join("ran").exists(), "no task ran");
    assert!(p.runs().is_empty(), "no run was recorded");
}

const GREET: &str = r#"
[params]
who = "nobody"

[tasks.greet]
command = "echo {{ params.who }}"
"#;

#[test]
fn params_cannot_inject_shell_syntax() {
    let p = Project::new().dag("greet", GREET);
    let hostile = "x; touch pwned && echo $(touch pwned) `touch pwned` 'quoted' | touch pwned";
    p.vane(&["run", "greet", "--param", &format!("who={hostile}")])
        .success();
    assert_eq!(p.logs(1, "greet", None), format!("{hostile}\n"));
    assert_eq!(
        p.find_files_named("pwned"),
        Vec::<std::path::PathBuf>::new(),
        "the parameter became shell syntax"
    );
}

#[test]
fn raw_substitution_is_a_warning_that_can_be_denied() {
    let p = Project::new().dag(
        "greet",
        r#"
[params]
who = "nobody"

[tasks.greet]
command = "echo {{ params.who | raw }}"
"#,
    );
    let out = p
        .vane(&["validate"])
        .success()
        .stdout_contains("ok: 1 DAG, 1 task, 1 warning");
    insta::assert_snapshot!("raw_substitution_warning", out.stderr);

    let out = p.vane(&["validate", "--deny-warnings"]).code(1);
    assert!(
        out.stderr.contains("warning: raw substitution"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("failed (warnings denied): 0 errors, 1 warning in 1 of 1 file"),
        "{}",
        out.stderr
    );

    // And it really is raw: this is what the warning is about.
    p.vane(&["run", "greet", "--param", "who=hi; touch raw_pwned"])
        .success();
    assert_eq!(p.logs(1, "greet", None), "hi\n");
    assert_eq!(p.find_files_named("raw_pwned").len(), 1);
}

#[test]
fn env_and_cwd_take_template_values_as_they_are() {
    let p = Project::new().dag(
        "placed",
        r#"
[params]
who = "x; y $HOME"

[defaults]
env = { WHO = "{{ params.who }}", SHARED = "from defaults", OVER = "defaults" }

[tasks.here]
command = 'pwd; echo "$WHO|$SHARED|$OVER"'
cwd = "data/{{ ds }}"
env = { OVER = "task {{ task_id }}" }

[tasks.nowhere]
command = "echo never"
cwd = "missing/{{ ds }}"
"#,
    );
    p.write("data/2026-11-23/.keep", "");
    p.vane(&["run", "placed", "--date", "2026-11-23"]).code(1);

    let here = p.root().join("data").join("2026-11-23");
    assert_eq!(
        p.logs(1, "here", None),
        format!("{}\nx; y $HOME|from defaults|task here\n", here.display()),
        "cwd relative to the project; env values unquoted; a task's env over [defaults]"
    );

    let show = p.show(1);
    let nowhere = &crate::harness::attempts(&show, "nowhere")[0];
    assert_eq!(nowhere["state"], "failed", "{show:#}");
    let reason = nowhere["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("missing/2026-11-23") && reason.contains("working directory"),
        "the reason names the missing folder: {show:#}"
    );
    let log = p.logs(1, "nowhere", None);
    assert!(log.contains("missing/2026-11-23"), "{log}");
}

/// Airflow's date variables, as an Airflow user writes them: `ts`, the previous and next
/// ticks, and date arithmetic (`macros.ds_add` is `| add_days`), in the DAG's zone across the
/// day daylight saving time starts; the environment carries the same.
#[test]
fn airflow_style_dates_follow_the_schedule_in_the_dags_zone() {
    let p = Project::new().dag(
        "nightly",
        r#"
[dag]
schedule = "0 3 * * *"
timezone = "Europe/Berlin"

[tasks.dates]
command = '''printf '%s\n' ts={{ ts }} ts_nodash={{ ts_nodash }} prev_ds={{ prev_ds }} next_ds={{ next_ds }} next_ds_nodash={{ next_ds_nodash }} week_ago={{ ds | add_days(-7) }} tomorrow={{ ds_nodash | add_days(1) }} env_prev_ds="$VANE_PREV_DS" env_ts="$VANE_TS"'''
"#,
    );
    p.vane(&["run", "nightly", "--date", "2026-03-29T03:00:00+02:00"])
        .success();
    let values = key_values(&p.logs(1, "dates", None));
    let expected = [
        // The first night of summer time: 03:00 is +02:00, the night before was +01:00.
        ("ts", "2026-03-29T03:00:00+02:00"),
        ("ts_nodash", "20260329T030000"),
        ("prev_ds", "2026-03-28"),
        ("next_ds", "2026-03-30"),
        ("next_ds_nodash", "20260330"),
        ("week_ago", "2026-03-22"),
        ("tomorrow", "20260330"),
        ("env_prev_ds", "2026-03-28"),
        ("env_ts", "2026-03-29T03:00:00+02:00"),
    ];
    for (name, value) in expected {
        assert_eq!(
            values.get(name).map(String::as_str),
            Some(value),
            "{name}: {values:#?}"
        );
    }

    // Pasted from Airflow: validate says what to write instead, where.
    p.write_dag(
        "pasted",
        "[tasks.a]\ncommand = \"echo {{ macros.ds_add(ds, -7) }}\"\n",
    );
    p.vane(&["validate", "dags/pasted.toml"])
        .failure()
        .stderr_contains("Airflow's `macros.ds_add` is not a vane template")
        .stderr_contains("write `{{ ds | add_days(-7) }}`");
}
