//! `vane why`: what a failed or odd run does differently from the last good one, most likely
//! cause first. Each scenario asserts what leads and what is listed.

use serde_json::Value;

use crate::harness::{Backend, Project};

/// A daily validate of the day's file, which it declares as its input, then a training step.
const DAILY: &str = r#"
[params]
learning_rate = 0.1

[tasks.validate]
kind = "validate"
dataset = "data/{{ ds }}.csv"
inputs = { events = "data/{{ ds }}.csv" }
rows = { min = 90, max = 200 }

[tasks.train]
command = "echo trained with {{ params.learning_rate }}"
depends_on = ["validate"]
"#;

fn write_rows(p: &Project, day: u32, n: usize) {
    let mut csv = String::from("id\n");
    for i in 0..n {
        csv.push_str(&format!("{i}\n"));
    }
    p.write(&format!("data/2026-01-{day:02}.csv"), &csv);
}

/// Runs 1..=n on 2026-01-01.., each with 100 + day rows: all pass.
fn good_days(p: &Project, n: u32) {
    for day in 1..=n {
        write_rows(p, day, 100 + day as usize);
        p.vane(&["run", "daily", "--date", &format!("2026-01-{day:02}")])
            .success();
    }
}

fn why(p: &Project, args: &[&str]) -> Value {
    let mut full = vec!["why"];
    full.extend_from_slice(args);
    full.push("--json");
    p.vane(&full).success().json()
}

fn kinds(why: &Value) -> Vec<&str> {
    why["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect()
}

fn equal(why: &Value) -> Vec<&str> {
    why["equal_kinds"]
        .as_array()
        .expect("equal")
        .iter()
        .map(|e| e.as_str().expect("a name"))
        .collect()
}

fn a_day_whose_data_drifted_leads_with_the_failed_check_and_the_new_input(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    good_days(&p, 3);
    write_rows(&p, 4, 20);
    p.vane(&["run", "daily", "--date", "2026-01-04"])
        .failure()
        .stdout_contains("see what differs from the last good run with: vane why 4");

    let w = why(&p, &["4"]);
    assert_eq!(
        w["against"]["id"], 3,
        "the last successful run before: {w:#}"
    );
    assert_eq!(w["lead"]["what"], "failed", "{w:#}");
    assert_eq!(w["lead"]["task"], "validate", "{w:#}");
    assert_eq!(
        w["lead"]["summary"],
        "task `validate` failed: check `rows` failed: row count 20 is below 90"
    );
    assert_eq!(kinds(&w)[..2], ["check", "input"], "{w:#}");
    let check = &w["differences"][0];
    assert_eq!(check["name"], "rows");
    assert_eq!(check["before"]["observed"], 103.0);
    assert_eq!(check["after"]["observed"], 20.0);
    assert_eq!(
        check["after"]["bound"], check["before"]["bound"],
        "{check:#}"
    );
    let input = &w["differences"][1];
    assert_eq!(input["name"], "events");
    assert_eq!(
        (
            input["before"]["version"].as_u64(),
            input["after"]["version"].as_u64()
        ),
        (Some(3), Some(4))
    );
    let summary = input["summary"].as_str().unwrap();
    assert!(summary.contains("rows 103 → 20 (-81%)"), "{summary}");
    for same in ["dag file", "params"] {
        assert!(equal(&w).contains(&same), "{same} is equal: {w:#}");
    }
    // --json holds everything compared, the equal things one by one.
    let items = w["equal"].to_string();
    assert!(items.contains("param `learning_rate` = 0.1"), "{items}");
    assert!(items.contains("dag file (version 1)"), "{items}");

    // The same answer for people: the lead first, then the check with both runs' numbers.
    let text = p.vane(&["why", "4"]).success().stdout;
    let lead = text
        .find("task `validate` failed: check `rows` failed")
        .expect("the lead");
    let first = text
        .find("  1. check `rows` of task `validate`: pass → fail")
        .expect("the check");
    assert!(lead < first, "{text}");
    assert!(
        text.contains("run 3: 103, bound [90, 200] (fixed)"),
        "{text}"
    );
    assert!(
        text.contains("run 4: 20, bound [90, 200] (fixed)"),
        "{text}"
    );
    assert!(
        text.contains("  2. input `events` of task `validate`: v3 → v4"),
        "{text}"
    );
    assert!(text.contains("\nEqual: dag file, params"), "{text}");
    assert!(
        !text.contains("param `"),
        "nothing equal is printed: {text}"
    );
    // The README shows this very answer.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let shown = readme
        .split("$ vane why 4\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README shows `vane why 4`");
    assert_eq!(shown, text, "the README's example is what vane prints");
}

#[test]
fn a_run_started_with_a_different_param_leads_with_the_param() {
    let p = Project::new().dag("daily", DAILY);
    good_days(&p, 2);
    write_rows(&p, 3, 103);
    p.vane(&[
        "run",
        "daily",
        "--date",
        "2026-01-03",
        "--param",
        "learning_rate=0.5",
    ])
    .success();
    let w = why(&p, &["3"]);
    assert_eq!(w["lead"]["what"], "same", "{w:#}");
    assert_eq!(kinds(&w)[0], "param", "{w:#}");
    assert_eq!(
        w["differences"][0]["summary"],
        "param `learning_rate`: 0.1 → 0.5"
    );
    assert_eq!(w["differences"][0]["after"], 0.5);
}

/// A threshold tightened in a commit: the DAG's diff and the commit lead, before the check it
/// made fail.
#[test]
fn an_edited_dag_file_leads_with_its_diff_and_the_commit() {
    use crate::recording::git;
    let p = Project::new().dag("daily", DAILY);
    p.write(".gitignore", "/.vane\n");
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "-q", "-m", "Daily validation"]);
    good_days(&p, 2);
    p.write_dag("daily", &DAILY.replace("max = 200", "max = 100"));
    git(
        p.path(),
        &["commit", "-q", "-am", "Tighten the row bound to 100"],
    );
    write_rows(&p, 3, 103);
    p.vane(&["run", "daily", "--date", "2026-01-03"]).failure();

    let w = why(&p, &["3"]);
    assert_eq!(kinds(&w)[..2], ["dag_file", "check"], "{w:#}");
    let dag = &w["differences"][0];
    let detail: Vec<&str> = dag["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        detail.contains(&"-rows = { min = 90, max = 200 }"),
        "{detail:#?}"
    );
    assert!(
        detail.contains(&"+rows = { min = 90, max = 100 }"),
        "{detail:#?}"
    );
    assert!(
        detail
            .iter()
            .any(|l| l.ends_with("Tighten the row bound to 100")),
        "the commit between the two runs: {detail:#?}"
    );
    assert!(
        dag["summary"]
            .as_str()
            .unwrap()
            .contains("1 commit between"),
        "{dag:#}"
    );
    let check = &w["differences"][1];
    assert_eq!(check["before"]["bound"], "[90, 200]");
    assert_eq!(check["after"]["bound"], "[90, 100]");
}

/// A candidate kept out by its canary gate: the gate, with the numbers both runs saw, leads.
#[test]
fn a_model_that_was_not_promoted_leads_with_the_gate_numbers_of_both_runs() {
    let p = crate::deploy::project("pass");
    crate::deploy::run(&p, "v1", "2026-11-01").success();
    crate::deploy::run(&p, "v2", "2026-11-02").success();
    crate::deploy::run(&p, "worse", "2026-11-03").failure();

    let w = why(&p, &["3"]);
    assert_eq!(w["against"]["id"], 2, "{w:#}");
    assert_eq!(w["lead"]["what"], "not_promoted", "{w:#}");
    let lead = w["lead"]["summary"].as_str().unwrap();
    assert!(
        lead.starts_with("model `churn` v3 was not promoted: stage `canary` failed"),
        "{lead}"
    );
    assert_eq!(kinds(&w)[0], "gate", "{w:#}");
    let gate = &w["differences"][0];
    assert_eq!(gate["name"], "canary");
    assert_eq!(gate["before"][0]["values"]["accuracy"], 0.93, "{gate:#}");
    assert_eq!(gate["after"][0]["values"]["accuracy"], 0.8, "{gate:#}");
    let detail = gate["detail"].to_string();
    assert!(
        detail.contains("run 2 (before): gate `accuracy >= production.accuracy - 0.01`: passed"),
        "{detail}"
    );
    assert!(
        detail.contains("run 3 (now): gate `accuracy >= production.accuracy - 0.01`: failed"),
        "{detail}"
    );
    assert!(
        kinds(&w).contains(&"param"),
        "the model param differs too: {w:#}"
    );
    // Two good runs are too few to know a metric's spread: the evaluation's accuracy fell from
    // 0.93 to 0.8, so the answer must not call the metrics equal.
    let equal = w["equal_kinds"].to_string();
    assert!(!equal.contains("metrics"), "{w:#}");
    let not_compared = w["not_compared"][0].as_str().unwrap_or_default();
    assert!(not_compared.starts_with("metrics ("), "{w:#}");
    let text = p.vane(&["why", "3"]).success().stdout;
    assert!(
        text.contains("\nNot compared yet: metrics (a metric is judged against its spread over the good runs before this one, and none has 3 yet: `vane metrics churn` shows them).\n"),
        "{text}"
    );
}

/// A rollout a person rejected leads with who rejected it and why, not with the "waiting for
/// `vane approve`" its stage said while it waited, an instruction for a run long over.
#[test]
fn a_rejected_rollout_leads_with_the_answer_not_the_wait() {
    let p = crate::deploy::project("pass");
    crate::deploy::run(&p, "v1", "2026-11-01").success();
    let mut child = crate::deploy::start_waiting(&p, "few", "2026-11-02", "canary");
    p.vane(&[
        "reject",
        "2",
        "--reason",
        "too little traffic",
        "--by",
        "bob",
    ])
    .success();
    assert!(!child.wait().unwrap().success());

    let w = why(&p, &["2"]);
    assert_eq!(
        w["lead"]["summary"],
        "model `churn` v2 was not promoted: stage `canary` rejected by bob: too little traffic (it waited because only 10 samples, fewer than min_samples = 100)",
        "{w:#}"
    );
    let gate = w["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "gate" && d["name"] == "canary")
        .unwrap_or_else(|| panic!("{w:#}"));
    let detail = gate["detail"].to_string();
    assert!(
        detail.contains("run 2 (now): rejected by bob: too little traffic"),
        "{detail}"
    );
    assert!(
        !w.to_string().contains("waiting for `vane approve"),
        "{w:#}"
    );
}

#[test]
fn a_run_compared_with_itself_or_another_dag_gets_a_clear_message() {
    let p = Project::new()
        .dag("daily", DAILY)
        .dag("other", "[tasks.a]\ncommand = \"true\"\n");
    good_days(&p, 1);
    p.vane(&["run", "other"]).success();
    p.vane(&["why", "1", "--against", "1"])
        .failure()
        .stderr_contains("run 1 compared with itself shows nothing");
    p.vane(&["why", "1", "--against", "2"])
        .failure()
        .stderr_contains("run 2 is of DAG `other` and run 1 of `daily`: vane why compares runs of one DAG; `vane diff 2 1`");
    p.vane(&["why", "99"]).failure().stderr_contains("run 99");
    // The first run has nothing before it: said, not an error.
    let w = why(&p, &["1"]);
    assert_eq!(w["against"], Value::Null);
    assert_eq!(
        w["chosen"],
        "nothing: no run of `daily` before this one succeeded"
    );
    assert_eq!(w["lead"]["what"], "same", "{w:#}");
    assert_eq!(w["lead"]["summary"], "run 1 success", "{w:#}");
}

crate::harness::on_both_backends!(
    a_day_whose_data_drifted_leads_with_the_failed_check_and_the_new_input
);

/// A metric far outside its usual spread over the recent good runs is listed with that spread;
/// one inside it is not. A task that needed a retry shows its attempts.
#[test]
fn a_metric_beyond_its_usual_spread_and_a_retry_are_listed() {
    let p = Project::new().dag(
        "scores",
        r#"
[tasks.score]
command = '''
echo "auc $(cat "$VANE_WORK/auc")" >> "$VANE_METRICS"
echo "latency_ms $(cat "$VANE_WORK/latency")" >> "$VANE_METRICS"
if [ -f "$VANE_WORK/flaky" ] && [ {{ attempt }} = 1 ]; then exit 1; fi
'''
retries = 1
retry_delay = "10ms"
"#,
    );
    let day = |n: u32, auc: &str, latency: &str| {
        p.write(".vane/work/auc", auc);
        p.write(".vane/work/latency", latency);
        p.vane(&["run", "scores", "--date", &format!("2026-02-{n:02}")])
            .success();
    };
    for (n, auc) in [(1, "0.90"), (2, "0.91"), (3, "0.92"), (4, "0.91")] {
        day(n, auc, "20");
    }
    p.write(".vane/work/flaky", "");
    day(5, "0.52", "20");
    let w = why(&p, &["5"]);
    let metric = w["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "metric")
        .unwrap_or_else(|| panic!("the auc drop is listed: {w:#}"));
    assert_eq!(metric["name"], "auc");
    assert_eq!(metric["after"], 0.52);
    assert_eq!(metric["before"]["runs"], 4);
    assert_eq!(
        metric["summary"],
        "metric `auc` of task `score`: 0.52 where the last 4 good runs had 0.91 ± 0.0082"
    );
    assert!(
        !w["differences"].to_string().contains("latency_ms"),
        "an unchanged metric is not listed: {w:#}"
    );
    let attempts = w["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "attempts")
        .unwrap_or_else(|| panic!("the retry is listed: {w:#}"));
    assert_eq!(attempts["summary"], "task `score`: 1 attempt → 2");
}
