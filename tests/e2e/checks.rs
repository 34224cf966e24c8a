//! `kind = "validate"`: data checks, learned bounds, `vane checks` and `vane mark-good`.

use crate::harness::{Backend, Project, task};

const CUSTOMERS: &str = r#"
[tasks.validate]
kind = "validate"
dataset = "data/customers.csv"
rows = { min = 3, max = 5000 }

[tasks.validate.columns.customer_id]
unique = true
[tasks.validate.columns.age]
type = "integer"
min = 0
max = 125
[tasks.validate.columns.plan]
allowed = ["basic", "pro", "enterprise"]
distinct = 3
completeness = 0.99

[tasks.train]
command = "echo trained"
depends_on = ["validate"]
"#;

fn bad_data_fails_the_task_with_a_report_naming_columns_values_bounds_and_rows(backend: Backend) {
    let p = Project::on(backend).dag("churn", CUSTOMERS);
    p.write(
        "data/customers.csv",
        "customer_id,age,plan\n1,34,basic\n2,-3,pro\n3,45,\n4,51,basic\n5,-1,pro\n",
    );
    let out = p.vane(&["run", "churn"]).failure();
    // The report's failures come first in the log, above the tail `vane run` prints: the
    // attempt's reason names them, so they are on screen too.
    assert!(
        out.stdout.contains(
            "3 checks failed. age.min: smallest value -3; 2 rows outside >= 0. plan.distinct:"
        ),
        "{}",
        out.stdout
    );
    let show = p.show(1);
    assert_eq!(task(&show, "validate")["state"], "failed");
    assert_eq!(
        task(&show, "train")["state"],
        "upstream_failed",
        "downstream tasks do not train on bad data"
    );
    let log = p.logs(1, "validate", None);
    for expected in [
        // Negative ages: the column, the value seen, the bound, the rows.
        "FAILED age.min (severity error)",
        "column:   age",
        "seen:     smallest value -3; 2 rows outside >= 0",
        "bound:    >= 0",
        "line 3: -3",
        "line 6: -1",
        // The dropped category.
        "FAILED plan.distinct",
        "distinct values 2 is below 3; never seen: enterprise",
        // The missing value.
        "FAILED plan.completeness",
        "non-null share 0.8 is below 0.99; 1 of 5 values missing",
        "line 4: (missing)",
        "validation failed: fix the data (or the checks) and rerun with `vane clear 1 --task validate`",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
    assert!(log.contains("pass     age.max: largest value 51 (bound <= 125)"));
}

fn warnings_are_reported_and_the_run_goes_on(backend: Backend) {
    let p = Project::on(backend).dag(
        "churn",
        &CUSTOMERS.replace(
            "rows = { min = 3, max = 5000 }",
            "rows = { min = 3, max = 5000 }\nseverity = \"warn\"",
        ),
    );
    p.write(
        "data/customers.csv",
        "customer_id,age,plan\n1,34,basic\n2,-3,pro\n3,45,pro\n",
    );
    p.vane(&["run", "churn"]).success();
    assert_eq!(task(&p.show(1), "train")["state"], "success");
    let log = p.logs(1, "validate", None);
    assert!(log.contains("WARNING age.min (severity warn)"), "{log}");
    assert!(log.contains("line 3: -3"), "{log}");
    assert!(log.contains("0 failed, 2 warned"), "{log}");
}

/// A dataset that cannot be read fails the attempt (no verdict: a retry may find it) with
/// what went wrong as its reason, where `vane show` and `vane why` look.
#[test]
fn a_missing_dataset_is_the_attempts_reason() {
    let p = Project::new().dag("churn", CUSTOMERS);
    p.vane(&["run", "churn"]).failure();
    let show = p.show(1);
    let attempt = &crate::harness::attempts(&show, "validate")[0];
    assert_eq!(attempt["exit_code"], 1, "{show:#}");
    let reason = attempt["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("cannot read dataset data/customers.csv: "),
        "{show:#}"
    );
    let why = p.vane(&["why", "1"]).success().stdout;
    assert!(
        why.contains("task `validate` failed: cannot read dataset data/customers.csv"),
        "{why}"
    );
}

/// `--check` or `--task` naming nothing the DAG recorded is a mistake to point out, with the
/// names that exist, not "no check results", as if no validate task had ever run.
#[test]
fn checks_of_an_unknown_check_or_task_are_not_found_and_name_the_real_ones() {
    let p = Project::new().dag("churn", CUSTOMERS);
    p.write(
        "data/customers.csv",
        "customer_id,age,plan\n1,34,basic\n2,50,pro\n3,45,enterprise\n",
    );
    p.vane(&["run", "churn"]).success();
    let out = p.vane(&["checks", "churn", "--check", "min"]).code(3);
    insta::assert_snapshot!("checks_unknown_check", out.stderr);
    let out = p.vane(&["checks", "churn", "--task", "valdate"]).code(3);
    insta::assert_snapshot!("checks_unknown_task", out.stderr);
}

const DAILY: &str = r#"
[tasks.validate]
kind = "validate"
dataset = "data/{{ ds }}.csv"
rows = "auto"
"#;

fn write_rows(p: &Project, date: &str, n: usize) {
    let mut csv = String::from("id\n");
    for i in 0..n {
        csv.push_str(&format!("{i}\n"));
    }
    p.write(&format!("data/{date}.csv"), &csv);
}

/// Runs 1 to 10 on 2026-01-01 to 2026-01-10, with 100 to 109 rows: all learning, all passing.
fn ten_good_runs(p: &Project) {
    for day in 1..=10 {
        let date = format!("2026-01-{day:02}");
        write_rows(p, &date, 99 + day);
        p.vane(&["run", "daily", "--date", &date]).success();
    }
    assert!(p.logs(10, "validate", None).contains(
        "learning rows: row count 109 [auto: learning, 9 of the 10 good runs needed so far]"
    ));
}

fn auto_bounds_learn_from_good_runs_and_not_from_a_failed_attempt(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    ten_good_runs(&p);

    write_rows(&p, "2026-01-11", 300);
    p.vane(&["run", "daily", "--date", "2026-01-11"]).failure();
    let log = p.logs(11, "validate", None);
    for expected in [
        "FAILED rows (severity error)",
        "seen:     row count 300 is above 113.583",
        "bound:    [95.417, 113.583]",
        "from:     auto: mean 104.5 ± 3 × 3.0277 over the last 10 good runs (runs 1–10)",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }

    // Fixed data, same run again: it passes against the same 10 runs.
    write_rows(&p, "2026-01-11", 105);
    p.vane(&["clear", "11", "--foreground"]).success();
    let log = p.logs(11, "validate", None);
    assert!(
        log.contains("pass     rows: row count 105 (bound [95.417, 113.583]) [auto: mean 104.5 ± 3 × 3.0277 over the last 10 good runs (runs 1–10)]"),
        "{log}"
    );

    // The next run learns 105 from run 11, not the 300 of its failed attempt.
    write_rows(&p, "2026-01-12", 104);
    p.vane(&["run", "daily", "--date", "2026-01-12"]).success();
    assert!(
        p.logs(12, "validate", None)
            .contains("auto: mean 104.5455 ± 3 × 2.8762 over the last 11 good runs (runs 1–11)")
    );

    let history = p
        .vane(&["checks", "daily", "--check", "rows", "--json"])
        .success()
        .json();
    let run_11 = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["run_id"] == 11)
        .unwrap();
    assert_eq!(run_11["status"], "pass");
    assert_eq!(run_11["attempt"], 2);
    assert_eq!(run_11["observed"], 105.0);

    let table = p.vane(&["checks", "daily"]).success().stdout;
    // One table for every check of every run, each run's block once: the run and date on its
    // first row only.
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("RUN  DATE        TASK      CHECK"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("12   2026-01-12  validate  rows")
            && lines[1].contains("pass      104       [95.9167, 113.1742]"),
        "{table}"
    );
    assert!(
        table.contains("\n1    2026-01-01  validate  rows")
            && table.contains("learning  100       -"),
        "{table}"
    );
}

fn mark_good_makes_a_failed_run_learnable(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    ten_good_runs(&p);
    write_rows(&p, "2026-01-11", 150);
    p.vane(&["run", "daily", "--date", "2026-01-11"]).failure();

    p.vane(&[
        "mark-good",
        "11",
        "--reason",
        "promotion week",
        "--by",
        "alice",
    ])
    .success()
    .stderr_contains("run 11 marked good by alice (promotion week)");

    // 150 rows again: within the bound learned with run 11's 150.
    write_rows(&p, "2026-01-12", 150);
    p.vane(&["run", "daily", "--date", "2026-01-12"]).success();
    assert!(
        p.logs(12, "validate", None)
            .contains("(bound [66.5877, 150.685]) [auto: mean 108.6364 ± 3 × 14.0162 over the last 11 good runs (runs 1–11)]")
    );
    let table = p.vane(&["checks", "daily"]).success().stdout;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("11   2026-01-11  validate  rows")
                && l.contains("fail (marked good)  150")),
        "{table}"
    );
    p.vane(&["mark-good", "99"])
        .failure()
        .stderr_contains("run 99 does not exist; `vane runs` lists runs");
}

fn editing_a_check_starts_a_new_series(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    write_rows(&p, "2026-01-01", 100);
    p.vane(&["run", "daily", "--date", "2026-01-01"]).success();
    write_rows(&p, "2026-01-02", 100);
    p.vane(&["run", "daily", "--date", "2026-01-02"]).success();
    assert!(
        p.logs(2, "validate", None)
            .contains("[auto: learning, 1 of the 10 good runs needed so far]")
    );

    p.write_dag(
        "daily",
        &DAILY.replace("rows = \"auto\"", "rows = { auto = true, k = 4 }"),
    );
    write_rows(&p, "2026-01-03", 100);
    p.vane(&["run", "daily", "--date", "2026-01-03"]).success();
    assert!(
        p.logs(3, "validate", None)
            .contains("[auto: learning, 0 of the 10 good runs needed so far]"),
        "the edited check does not learn from the old one's values"
    );
    let history = p.vane(&["checks", "daily", "--json"]).success().json();
    let hashes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["definition_hash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 3);
    assert_ne!(hashes[0], hashes[1], "run 3 measured the edited check");
    assert_eq!(hashes[1], hashes[2]);
}

fn json_lines_labels_with_low_annotator_agreement_fail(backend: Backend) {
    let p = Project::on(backend).dag(
        "labels",
        r#"
[tasks.labels]
kind = "validate"
dataset = "data/labels.jsonl"
agreement = { item = "id", annotator = "who", label = "label", method = "kappa", min = 0.6 }
"#,
    );
    let mut jsonl = String::new();
    for (id, a, b) in [
        (1, "yes", "yes"),
        (2, "no", "no"),
        (3, "yes", "no"),
        (4, "no", "yes"),
    ] {
        jsonl.push_str(&format!(
            "{{\"id\": {id}, \"who\": \"alice\", \"label\": \"{a}\"}}\n{{\"id\": {id}, \"who\": \"bob\", \"label\": \"{b}\"}}\n"
        ));
    }
    p.write("data/labels.jsonl", &jsonl);
    p.vane(&["run", "labels"]).failure();
    let log = p.logs(1, "labels", None);
    for expected in [
        "FAILED agreement (severity error)",
        "seen:     Cohen's kappa 0 over 4 items labeled by two or more annotators (4 pairs); 2 with disagreement",
        "bound:    >= 0.6",
        "line 5: item 3: alice=yes, bob=no",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
}

fn values_that_are_not_numbers_and_numeric_allowed_values_are_judged_in_the_report(
    backend: Backend,
) {
    let p = Project::on(backend).dag(
        "scores",
        r#"
[tasks.validate]
kind = "validate"
dataset = "data/scores.csv"

[tasks.validate.columns.score]
min = 0
mean = { min = 0, max = 100 }
[tasks.validate.columns.grade]
allowed = [1.0, 2, 3]
"#,
    );
    p.write("data/scores.csv", "score,grade\n 12 ,1.0\nn/a,2\n40,1\n");
    p.vane(&["run", "scores"]).failure();
    let log = p.logs(1, "validate", None);
    for expected in [
        "FAILED score.min (severity error)",
        "seen:     smallest value 12; 1 row not a number",
        "line 3: n/a (not a number)",
        "FAILED score.mean (severity error)",
        "seen:     1 row not a number: no mean of the column",
        "pass     grade.allowed: every value allowed",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
}

fn an_empty_or_header_only_dataset_fails_with_a_clear_report(backend: Backend) {
    let p = Project::on(backend).dag(
        "daily",
        r#"
[tasks.validate]
kind = "validate"
dataset = "data/day.csv"
rows = { min = 1 }
[tasks.validate.columns.id]
min = 0
mean = { min = 0 }
"#,
    );
    p.write("data/day.csv", "id,name\n");
    p.vane(&["run", "daily"]).failure();
    let log = p.logs(1, "validate", None);
    for expected in [
        "validating data/day.csv (CSV, 0 rows, 2 columns)",
        "FAILED rows (severity error)",
        "seen:     row count 0 is below 1",
        "FAILED id.mean",
        "seen:     no numeric value to measure",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }

    p.write("data/day.csv", "");
    p.vane(&["run", "daily"]).failure();
    let log = p.logs(2, "validate", None);
    assert!(
        log.contains("the file is empty: a CSV dataset starts with a header line"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

crate::harness::on_both_backends!(
    bad_data_fails_the_task_with_a_report_naming_columns_values_bounds_and_rows,
    warnings_are_reported_and_the_run_goes_on,
    auto_bounds_learn_from_good_runs_and_not_from_a_failed_attempt,
    mark_good_makes_a_failed_run_learnable,
    editing_a_check_starts_a_new_series,
    json_lines_labels_with_low_annotator_agreement_fail,
    values_that_are_not_numbers_and_numeric_allowed_values_are_judged_in_the_report,
    an_empty_or_header_only_dataset_fails_with_a_clear_report,
);
