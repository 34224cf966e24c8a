//! Every diagnostic of a `kind = "validate"` task, as `vane validate` prints it.

use vane_check::VALIDATE as KIND;

fn render(source: &str) -> String {
    let registry = vane_dag::Registry::none().kind(&KIND);
    vane_dag::parse_dag_with(source, "example", &registry).render("dags/example.toml", source)
}

#[test]
fn validate_checks() {
    insta::assert_snapshot!(render(
        r#"[tasks.check]
kind = "validate"
dataset = "data/{{ ds }}.csv"
rows = { min = 500, max = 100 }
severity = "fatal"

[tasks.check.columns.age]
type = "int"
min = "zero"
maximum = 125
completeness = { auto = true, warmup = 40, window = 30 }

[tasks.check.columns.plan]
allowed = []
distinct = { auto = true, min = 3 }
drift = { method = "kl", max = 0.2 }
unique = { value = true, severity = "fatal" }
mean = 5

[tasks.check.columns.label]
std = "learn"

[tasks.labels]
kind = "validate"
dataset = "data/labels.csv"
agreement = { item = "id", annotator = "who", label = "label", method = "percent", min = 0.8 }
"#
    ));
}

#[test]
fn validate_task_without_dataset_or_checks() {
    insta::assert_snapshot!(render(
        r#"[tasks.a]
kind = "validate"
rows = "auto"

[tasks.b]
kind = "validate"
dataset = "data.csv"
"#
    ));
}

#[test]
fn validate_checks_that_parse() {
    let parsed = vane_dag::parse_dag_with(
        r#"[tasks.v]
kind = "validate"
dataset = "{{ work }}/d.jsonl"
rows = { auto = true, k = 4, window = 20, warmup = 5 }
severity = "warn"
[tasks.v.columns.age]
type = "integer"
min = { value = 0, severity = "error" }
completeness = 0.99
[tasks.v.columns.plan]
allowed = ["basic", "pro"]
distinct = 2
drift = { method = "js", max = 0.1 }
"#,
        "example",
        &vane_dag::Registry::none().kind(&KIND),
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let dag = parsed.dag.unwrap();
    let Some(spec) = dag.tasks[0]
        .builtin
        .as_ref()
        .and_then(|b| b.spec::<vane_check::ValidateSpec>())
    else {
        panic!("not a validate task");
    };
    let names: Vec<(&str, &str)> = spec
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.severity.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("rows", "warn"),
            ("age.present", "warn"),
            ("age.type", "warn"),
            ("age.min", "error"),
            ("age.completeness", "warn"),
            ("plan.present", "warn"),
            ("plan.allowed", "warn"),
            ("plan.distinct", "warn"),
            ("plan.drift", "warn"),
        ]
    );
    assert_eq!(
        spec.checks[0].kind.auto(),
        Some(vane_check::AutoRule {
            k: 4.0,
            window: 20,
            warmup: 5
        })
    );
}

#[test]
fn builtin_tasks_cannot_be_cached() {
    insta::assert_snapshot!(render(
        r#"[tasks.check]
kind = "validate"
dataset = "data.csv"
rows = { min = 1 }
cache = true
"#
    ));
}

/// Checks no data can pass, and a file the run could not read: each caught before it runs.
#[test]
fn checks_that_can_never_run_as_meant() {
    insta::assert_snapshot!(render(
        r#"[tasks.check]
kind = "validate"
dataset = "data/users.parquet"
rows = -10

[tasks.check.columns.age]
completeness = 1.5
min = 10
max = 1
"#
    ));
}

/// A validate task given a `command` and no `dataset`: both are said at once.
#[test]
fn a_command_does_not_hide_a_missing_dataset() {
    insta::assert_snapshot!(render(
        "[tasks.v]\nkind = \"validate\"\ncommand = \"python3 check.py\"\n"
    ));
}

/// `data = ...` for `dataset`: one error, the unknown key, whose hint names `dataset` (the
/// task's own kind's keys come first); not also "has no `dataset`".
#[test]
fn a_dataset_key_cut_short_is_one_error_naming_dataset() {
    insta::assert_snapshot!(render(
        "[tasks.v]\nkind = \"validate\"\ndata = \"data/x.csv\"\nrows = { min = 1 }\n"
    ));
}

/// Every wrong key of a bound's table is said at once: `k`, `window` and `warmup` here, where
/// only `k` was, and a fix-and-rerun round was needed for each of the others.
#[test]
fn every_wrong_key_of_a_bound_table_is_reported() {
    insta::assert_snapshot!(render(
        "[tasks.v]\nkind = \"validate\"\ndataset = \"x.csv\"\nrows = { auto = true, k = -3, window = 0, warmup = \"ten\" }\ncolumns.age = { mean = { min = \"a\", max = \"b\" } }\n"
    ));
}
