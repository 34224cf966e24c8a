//! The ML lifecycle of the example pipeline, `dags/churn_retrain.toml`, end to end: real
//! processes, the real database, the built-in validate and deploy steps.

use std::fs;

use serde_json::Value;

use crate::examples::examples_on;
use crate::harness::{Backend, Project, task, wait_for};

/// What the serving folder says is in production: the model version vane deployed.
fn serving(p: &Project, stage: &str) -> Option<Value> {
    let path = p.work().join(format!("serving/churn/{stage}.json"));
    let text = fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("serving file is JSON"))
}

fn production_version(p: &Project) -> String {
    let entry = serving(p, "production").expect("a model is in production");
    entry["version"].as_str().unwrap_or_default().to_owned()
}

fn models(p: &Project) -> Value {
    p.vane(&["models", "churn_model", "--json"])
        .success()
        .json()
}

/// The versions of `churn_model` in `stage`, as `vane models --json` lists them.
fn in_stage(models: &Value, stage: &str) -> Vec<i64> {
    models["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter(|v| v["stage"] == stage)
        .map(|v| v["version"].as_i64().expect("version number"))
        .collect()
}

fn run_day(p: &Project, day: &str, params: &[&str]) -> crate::harness::Output {
    let mut args = vec!["run", "churn_retrain", "--date", day];
    for param in params {
        args.extend(["--param", param]);
    }
    p.vane(&args)
}

fn a_clean_day_passes_every_gate_and_reaches_production_with_lineage_to_the_raw_export(
    backend: Backend,
) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();
    let show = p.show(1);
    assert_eq!(show["state"], "success", "{show:#}");

    let models = models(&p);
    assert_eq!(in_stage(&models, "production"), vec![1], "{models:#}");
    assert_eq!(production_version(&p), "1");
    // The rollout went through every stage, and the ledger kept what each gate saw.
    let rollout = p.logs(1, "rollout", None);
    for stage in ["shadow", "canary", "half", "production"] {
        assert!(rollout.contains(stage), "{stage} missing:\n{rollout}");
    }
    assert!(rollout.contains("accuracy"), "{rollout}");

    let lineage = p
        .vane(&["lineage", "churn_model", "--json"])
        .success()
        .json()
        .to_string();
    for upstream in ["churn_training", "churn_labeled", "churn_events"] {
        assert!(
            lineage.contains(upstream),
            "the model's lineage reaches {upstream}: {lineage}"
        );
    }
}

fn a_corrupted_day_fails_validation_with_a_report_and_nothing_downstream_runs(backend: Backend) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();
    let before = production_version(&p);

    run_day(&p, "2026-03-03", &["corrupt=true"]).failure();
    let show = p.show(2);
    assert_eq!(task(&show, "validate")["state"], "failed");
    // A failed error check is a verdict: the DAG's `retries = 2` does not run it again.
    assert_eq!(
        task(&show, "validate")["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{show:#}"
    );
    assert!(
        task(&show, "validate")["reason"]
            .as_str()
            .is_some_and(|r| r.contains("verdict")),
        "{show:#}"
    );
    for downstream in ["build_training", "train", "rollout"] {
        assert_eq!(
            task(&show, downstream)["state"],
            "upstream_failed",
            "{downstream}"
        );
    }
    let report = p.logs(2, "validate", None);
    // Each problem the corruption injected, named with its column and bound.
    for needle in ["age", "plan", "country", "-"] {
        assert!(report.contains(needle), "{needle} missing:\n{report}");
    }
    assert_eq!(production_version(&p), before, "production changed");
    assert_eq!(in_stage(&models(&p), "production"), vec![1]);
}

fn a_worse_candidate_fails_its_canary_gate_and_production_is_rolled_back(backend: Backend) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();
    let before = production_version(&p);

    run_day(&p, "2026-03-03", &["candidate_quality=worse"]).failure();
    let show = p.show(2);
    assert_eq!(task(&show, "rollout")["state"], "failed");
    // A failed gate is final: the rejected model is never installed into canary again by a
    // retry, and the ledger shows it failing once.
    assert_eq!(
        task(&show, "rollout")["attempts"].as_array().unwrap().len(),
        1,
        "{show:#}"
    );
    let ledger = models(&p);
    let failed = ledger["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["version"] == 2 && e["to_stage"] == "failed")
        .count();
    assert_eq!(failed, 1, "{ledger:#}");
    let reason = task(&show, "rollout")["attempts"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let log = p.logs(2, "rollout", None);
    assert!(
        log.contains("canary") && log.contains("production.accuracy"),
        "the log names the failed gate:\n{log}\n{reason}"
    );
    assert_eq!(production_version(&p), before, "the previous model is back");
    assert!(serving(&p, "canary").is_none(), "the canary was taken down");
    let models = models(&p);
    assert_eq!(in_stage(&models, "production"), vec![1], "{models:#}");
}

fn an_unchanged_training_set_is_not_trained_again(backend: Backend) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();
    // Rerun the whole day: the data is regenerated identically, so train is a cache hit.
    p.vane(&[
        "clear",
        "1",
        "--task",
        "ingest",
        "--downstream",
        "--foreground",
    ])
    .success();
    let show = p.show(1);
    let attempts = task(&show, "train")["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 2);
    let second = &attempts[1];
    assert_eq!(second["state"], "success");
    assert!(
        second["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cached"),
        "{second:#}"
    );
    let log = p.logs(1, "train", Some(2));
    assert!(log.contains("cached"), "{log}");
    assert!(!log.contains("epoch"), "train ran again:\n{log}");
    let model = p.work().join("churn/models/1/model.json");
    assert!(model.is_file(), "the cached model is restored in place");
}

fn a_learned_row_bound_flags_a_short_export_and_the_repaired_day_passes(backend: Backend) {
    let p = examples_on(backend);
    p.vane(&[
        "backfill",
        "churn_retrain",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-10",
        "--max-active",
        "1",
    ])
    .success();
    assert_eq!(p.runs().len(), 10);

    // Day 11 is exported during an upstream outage: every row is fine, there are just far
    // too few of them.
    fs::write(p.work().join("churn/outage"), "").unwrap();
    run_day(&p, "2026-03-11", &[]).failure();
    let run = 11;
    let show = p.show(run);
    assert_eq!(task(&show, "validate")["state"], "failed", "{show:#}");
    let report = p.logs(run, "validate", None);
    assert!(
        report.contains("rows") && report.contains("auto") && report.contains("10"),
        "the report shows the learned bound and what it was learned from:\n{report}"
    );

    // The upstream recovered: re-ingest the day. The rerun is compared with the ten good
    // days, not with the short export it replaces.
    fs::remove_file(p.work().join("churn/outage")).unwrap();
    p.vane(&[
        "clear",
        &run.to_string(),
        "--task",
        "ingest",
        "--downstream",
        "--foreground",
    ])
    .success();
    let show = p.show(run);
    assert_eq!(show["state"], "success", "{show:#}");
    let report = p.logs(run, "validate", Some(2));
    assert!(report.contains("10"), "{report}");
    p.vane(&[
        "mark-good",
        &run.to_string(),
        "--reason",
        "re-ingested after the outage",
    ])
    .success();

    let history = p
        .vane(&["checks", "churn_retrain", "--check", "rows"])
        .success()
        .stdout;
    // Day 11 is judged against days 1-10 only, and is now itself part of the good history.
    let day11 = history
        .lines()
        .find(|l| l.starts_with("11 "))
        .unwrap_or_else(|| panic!("{history}"));
    assert!(
        day11.contains("pass") && day11.contains("over the last 10 good runs (runs 1–10)"),
        "{history}"
    );
}

fn too_little_canary_traffic_waits_for_a_person_and_the_ledger_keeps_who_approved(
    backend: Backend,
) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();

    let mut child = p
        .command(&[
            "run",
            "churn_retrain",
            "--date",
            "2026-03-03",
            "--param",
            "canary_samples=50",
        ])
        .spawn()
        .unwrap();
    wait_for(
        "the canary to wait for a person",
        std::time::Duration::from_secs(90),
        || {
            let out = p.vane(&["models", "churn_model"]);
            (out.stdout.contains("inconclusive") || out.stdout.contains("waiting")).then_some(())
        },
    );
    assert_eq!(
        production_version(&p),
        "1",
        "nothing promoted while waiting"
    );

    p.vane(&["approve", "2", "--stage", "canary", "--by", "alice"])
        .success();
    let status = child.wait().unwrap();
    assert!(status.success(), "the approved rollout finishes");
    assert_eq!(production_version(&p), "2");

    let models = models(&p).to_string();
    assert!(models.contains("alice"), "{models}");
    assert!(
        models.contains("samples"),
        "the numbers alice saw: {models}"
    );
}

fn careless_annotators_fail_the_agreement_check_and_the_feedback_delay_is_recorded(
    backend: Backend,
) {
    let p = examples_on(backend);
    run_day(&p, "2026-03-02", &[]).success();
    let show = p.show(1);
    let wait = &task(&show, "wait_for_labels")["attempts"][0]["metrics"]["wait_seconds"];
    assert!(wait.as_f64().is_some_and(|s| s > 0.0), "{show:#}");
    let delay = &task(&show, "collect_review")["attempts"][0]["metrics"]["feedback_delay_seconds"];
    assert!(delay.as_f64().is_some(), "{show:#}");
    // The same day again: its labels may answer the earlier export (cached), and a delay
    // measured against this export would be negative.
    p.vane(&["clear", "1", "--foreground"]).success();
    let show = p.show(1);
    for attempt in task(&show, "collect_review")["attempts"]
        .as_array()
        .unwrap()
    {
        let delay = &attempt["metrics"]["feedback_delay_seconds"];
        assert!(
            delay.is_null() || delay.as_f64().is_some_and(|s| s >= 0.0),
            "a feedback delay is never negative: {show:#}"
        );
    }

    run_day(&p, "2026-03-03", &["annotator_noise=0.45"]).failure();
    let show = p.show(2);
    assert_eq!(task(&show, "check_labels")["state"], "failed");
    assert_eq!(task(&show, "build_training")["state"], "upstream_failed");
    let report = p.logs(2, "check_labels", None);
    assert!(report.contains("kappa"), "{report}");
    assert_eq!(
        production_version(&p),
        "1",
        "nothing trained on those labels"
    );
}

crate::harness::on_both_backends!(
    a_clean_day_passes_every_gate_and_reaches_production_with_lineage_to_the_raw_export,
    a_corrupted_day_fails_validation_with_a_report_and_nothing_downstream_runs,
    a_worse_candidate_fails_its_canary_gate_and_production_is_rolled_back,
    an_unchanged_training_set_is_not_trained_again,
    a_learned_row_bound_flags_a_short_export_and_the_repaired_day_passes,
    too_little_canary_traffic_waits_for_a_person_and_the_ledger_keeps_who_approved,
    careless_annotators_fail_the_agreement_check_and_the_feedback_delay_is_recorded,
);
