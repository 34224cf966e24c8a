//! Staged model rollouts: gates, rollback, approvals, the registry and its ledger.
//!
//! The "serving system" is a folder: each stage command copies the model to
//! `serving/<stage>.json` and reports the samples and latency written in the model file; the
//! rollback command copies a model to `serving/production.json` and notes which version.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Project, wait_for_every};

const SERVE: &str = r#"import json, os, shutil, sys
stage = sys.argv[1]
os.makedirs("serving", exist_ok=True)
src = os.environ["VANE_MODEL_PATH"]
if stage == "restore":
    shutil.copy(src, "serving/production.json")
    with open("serving/rollbacks.log", "a") as f:
        f.write("restored v%s from %s ds=%s\n" % (os.environ["VANE_MODEL_VERSION"], src, os.environ.get("VANE_DS")))
    sys.exit(0)
shutil.copy(src, "serving/%s.json" % stage)
m = json.load(open(src))
with open(os.environ["VANE_METRICS"], "w") as f:
    f.write("samples %s\n" % m.get("samples", 1000))
    f.write("p95_latency_ms %s\n" % m.get(stage + "_latency", m.get("latency", 20)))
"#;

const EVALUATE: &str = r#"import json, os
m = json.load(open(os.environ["VANE_MODEL_PATH"]))
assert os.path.exists(os.environ["VANE_EVAL_DATA"])
with open(os.environ["VANE_METRICS"], "w") as f:
    f.write("accuracy %s\n" % m["accuracy"])
"#;

pub(crate) fn dag_text(on_no_baseline: &str) -> String {
    format!(
        r#"[params]
model = "v1"

[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "models/{{{{ params.model }}}}.json"
fallback = "models/fallback.json"
eval_data = "eval.csv"
evaluate = "python3 tools/evaluate.py"
rollback = "python3 tools/serve.py restore"
on_no_baseline = "{on_no_baseline}"

[tasks.rollout.stages.canary]
command = "python3 tools/serve.py canary"
gate = ["accuracy >= production.accuracy - 0.01", "p95_latency_ms < 50"]
min_samples = 100

[tasks.rollout.stages.production]
command = "python3 tools/serve.py production"
gate = ["p95_latency_ms < 50"]
"#
    )
}

pub(crate) fn project(on_no_baseline: &str) -> Project {
    let p = Project::new().dag("churn", &dag_text(on_no_baseline));
    p.write("tools/serve.py", SERVE);
    p.write("tools/evaluate.py", EVALUATE);
    p.write("eval.csv", "id,label\n1,0\n2,1\n");
    p.write("models/v1.json", r#"{"accuracy": 0.9}"#);
    p.write("models/v2.json", r#"{"accuracy": 0.93}"#);
    p.write("models/worse.json", r#"{"accuracy": 0.8}"#);
    p.write("models/few.json", r#"{"accuracy": 0.95, "samples": 10}"#);
    p.write("models/few2.json", r#"{"accuracy": 0.96, "samples": 12}"#);
    p.write("models/fallback.json", r#"{"accuracy": 0.5}"#);
    p
}

fn run_args(model: &str, date: &str) -> Vec<String> {
    [
        "run",
        "churn",
        "--param",
        &format!("model={model}"),
        "--date",
        date,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

pub(crate) fn run(p: &Project, model: &str, date: &str) -> crate::harness::Output {
    let args = run_args(model, date);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    p.vane(&args)
}

fn models(p: &Project) -> Value {
    p.vane(&["models", "churn", "--json"]).success().json()
}

fn stage_of(models: &Value, version: i64) -> String {
    models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no v{version}: {models:#}"))["stage"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The reason of run `run`'s rollout, which must have ended skipped (it promoted nothing).
fn skipped_rollout_reason(p: &Project, run: i64) -> String {
    let show = p.show(run);
    let rollout = crate::harness::task(&show, "rollout");
    assert_eq!(rollout["state"], "skipped", "{show:#}");
    rollout["attempts"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn serving(p: &Project, name: &str) -> String {
    std::fs::read_to_string(p.path().join("serving").join(name)).unwrap_or_default()
}

#[test]
fn a_good_candidate_passes_every_gate_and_reaches_production() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "v2", "2026-11-02").success();

    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "production", "{m:#}");
    assert_eq!(stage_of(&m, 1), "archived", "{m:#}");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.93}"#);
    // The ledger shows what the canary gate of v2 saw.
    let ledger = m["ledger"].as_array().unwrap();
    let canary = ledger
        .iter()
        .find(|e| e["version"] == 2 && e["to_stage"] == "canary")
        .unwrap_or_else(|| panic!("{m:#}"));
    assert_eq!(canary["actor"], "run 2");
    let gate = &canary["evidence"]["gates"][0];
    assert_eq!(gate["status"], "passed");
    assert_eq!(gate["values"]["accuracy"], 0.93);
    assert_eq!(gate["values"]["production.accuracy"], 0.9);
    // The first model had nothing to compare with; on_no_baseline = "pass" skipped that gate.
    let first = ledger
        .iter()
        .find(|e| e["version"] == 1 && e["to_stage"] == "canary")
        .unwrap();
    assert_eq!(first["evidence"]["gates"][0]["status"], "skipped");

    let text = p.vane(&["models", "churn"]).success().stdout;
    assert!(text.contains("v2       production"), "{text}");
    assert!(
        text.contains("accuracy >= production.accuracy - 0.01: passed (accuracy 0.93 >= production.accuracy - 0.01 = 0.89)"),
        "{text}"
    );
    let list = p.vane(&["models"]).success().stdout;
    assert!(list.contains("churn  v2"), "{list}");
}

#[test]
fn a_worse_candidate_fails_its_canary_gate_and_is_rolled_back() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "worse", "2026-11-02").failure();

    let show = p.show(2);
    assert_eq!(show["state"], "failed");
    let log = p.logs(2, "rollout", None);
    assert!(
        log.contains(
            "canary gate failed: accuracy 0.8 < production.accuracy - 0.01 = 0.89; rolled back to churn v1"
        ),
        "{log}"
    );
    assert!(
        serving(&p, "rollbacks.log").starts_with("restored v1 from "),
        "the rollback command put v1 back"
    );
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "production");
    assert_eq!(stage_of(&m, 2), "failed");
    let failed = m["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to_stage"] == "failed")
        .unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("canary gate failed: accuracy 0.8 <"),
        "{failed:#}"
    );

    // A person may still put it in production by hand, but is not told it is "back".
    p.vane(&[
        "rollback", "churn", "--to", "v2", "--reason", "try it", "--by", "eve",
    ])
    .success()
    .stdout_contains(
        "churn v2 is in production for the first time: it had never served there (it was `failed`)",
    );
}

/// Starts `vane run` in the background and waits until its rollout waits at `stage`.
pub(crate) fn start_waiting(
    p: &Project,
    model: &str,
    date: &str,
    stage: &str,
) -> std::process::Child {
    let args = run_args(model, date);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = p
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    wait_for_every(
        Duration::from_millis(100),
        "the rollout to wait for approval",
        Duration::from_secs(60),
        || {
            let m = p.vane(&["models", "churn", "--json"]);
            if m.code != Some(0) {
                return None;
            }
            let m = m.json();
            m["waiting"]
                .as_array()
                .filter(|w| w.iter().any(|w| w["stage"] == stage))
                .map(|_| ())
        },
    );
    child
}

#[test]
fn too_few_samples_wait_for_a_person_who_approves_or_rejects() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();

    let mut child = start_waiting(&p, "few", "2026-11-02", "canary");
    let runs = p.runs();
    assert_eq!(runs[0]["state"], "running");
    let waiting = p.vane(&["models", "churn"]).success().stdout;
    assert!(
        waiting.contains("only 10 samples, fewer than min_samples = 100"),
        "{waiting}"
    );
    p.vane(&["approve", "2", "--stage", "canary", "--by", "alice"])
        .success()
        .stdout_contains("approved stage `canary` of run 2");
    assert!(child.wait().unwrap().success());
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "production", "{m:#}");
    let approved = m["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == 2 && e["to_stage"] == "canary")
        .unwrap();
    assert_eq!(approved["actor"], "user alice");
    assert_eq!(approved["evidence"]["approved_by"], "alice");
    assert_eq!(approved["evidence"]["metrics"]["samples"], 10.0);

    // A second inconclusive rollout, rejected: the rollout rolls back to v3.
    let mut child = start_waiting(&p, "few2", "2026-11-03", "canary");
    p.vane(&[
        "reject",
        "3",
        "--reason",
        "too little traffic",
        "--by",
        "bob",
    ])
    .success();
    assert!(!child.wait().unwrap().success());
    let log = p.logs(3, "rollout", None);
    assert!(
        log.contains("canary stage rejected by bob: too little traffic; rolled back to churn v2"),
        "{log}"
    );
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "production");
    assert_eq!(stage_of(&m, 3), "failed");
    // The run has ended: its rollout can no longer be answered.
    p.vane(&["approve", "3"])
        .failure()
        .stderr_contains("run 3 is failed, not running");
}

#[test]
fn on_no_baseline_fail_rolls_back_to_the_fallback() {
    let p = project("fail");
    run(&p, "v1", "2026-11-01").failure();
    let log = p.logs(1, "rollout", None);
    assert!(
        log.contains("churn has no production version to compare with (on_no_baseline = \"fail\")"),
        "{log}"
    );
    assert!(log.contains("rolled back to the fallback model"), "{log}");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.5}"#);
    assert_eq!(stage_of(&models(&p), 1), "failed");
}

/// A run waiting for a person is `running` to the engine; everywhere its state is shown says
/// it waits for an approval, and where.
#[test]
fn a_run_waiting_for_approval_says_so_in_runs_and_show() {
    let p = project("approve");
    let mut child = start_waiting(&p, "v1", "2026-11-01", "canary");
    let table = p.vane(&["runs"]).success().stdout;
    assert!(
        table.contains("running (waiting for approval at canary)"),
        "{table}"
    );
    let shown = p.vane(&["show", "1"]).success().stdout;
    assert!(
        shown.contains(": running (waiting for approval at canary)"),
        "{shown}"
    );
    assert!(shown.contains("vane approve 1"), "{shown}");
    let runs = p.vane(&["runs", "--json"]).success().json();
    assert_eq!(
        runs[0]["waiting_for_approval"]["stage"], "canary",
        "{runs:#}"
    );
    assert_eq!(
        runs[0]["waiting_for_approval"]["model"], "churn",
        "{runs:#}"
    );
    p.vane(&["approve", "1", "--by", "carol"]).success();
    assert!(child.wait().unwrap().success());
    let runs = p.vane(&["runs", "--json"]).success().json();
    assert!(runs[0]["waiting_for_approval"].is_null(), "{runs:#}");
}

/// A run of a past date started by hand (or cleared) promotes nothing either, and its reason
/// says how to deploy it anyway: `--redeploy-past` is a backfill's, and would make new runs.
#[test]
fn a_past_run_by_hand_says_to_promote_by_hand_not_to_backfill() {
    let p = project("pass");
    run(&p, "v1", "2026-11-26").success();
    run(&p, "v2", "2026-11-20").success();
    let reason = skipped_rollout_reason(&p, 2);
    assert!(
        reason.contains("older than run 1")
            && reason.contains("`vane promote churn VERSION --stage production`")
            && !reason.contains("--redeploy-past"),
        "{reason}"
    );
}

/// A backfill of last week must not replace today's model with one trained on last week's
/// data: its deploy tasks promote nothing and end skipped, saying why (latest-only), unless
/// the backfill says `--redeploy-past`.
#[test]
fn a_backfill_never_redeploys_the_past_unless_asked() {
    let daily = |model: &str| {
        format!("[dag]\nschedule = \"0 0 * * *\"\n\n{}", dag_text("pass"))
            .replace("model = \"v1\"", &format!("model = \"{model}\""))
    };
    let p = project("pass");
    p.write_dag("churn", &daily("v1"));
    run(&p, "v1", "2026-11-26").success();
    assert_eq!(stage_of(&models(&p), 1), "production");

    p.write_dag("churn", &daily("v2"));
    p.vane(&[
        "backfill",
        "churn",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-21",
    ])
    .success();
    for run in [2, 3] {
        assert_eq!(p.show(run)["state"], "success");
        let reason = skipped_rollout_reason(&p, run);
        assert!(
            reason.contains("older than run 1") && reason.contains("--redeploy-past"),
            "{reason}"
        );
    }
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "production", "{m:#}");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);

    p.vane(&[
        "backfill",
        "churn",
        "--from",
        "2026-11-22",
        "--to",
        "2026-11-22",
        "--redeploy-past",
    ])
    .success();
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "production", "{m:#}");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.93}"#);
}

/// A person's rollback puts an older model back in production, but the newest data a run
/// deployed from stays the line a backfill must not cross: last week's backfill still promotes
/// nothing, in its dry run as in its runs.
#[test]
fn a_backfill_after_a_rollback_still_never_redeploys_the_past() {
    let p = project("pass");
    p.write_dag(
        "churn",
        &format!("[dag]\nschedule = \"0 0 * * *\"\n\n{}", dag_text("pass")),
    );
    run(&p, "v1", "2026-11-26").success();
    run(&p, "v2", "2026-11-27").success();
    assert_eq!(stage_of(&models(&p), 2), "production");
    p.vane(&["rollback", "churn", "--reason", "bad", "--by", "dana"])
        .success()
        .stdout_contains("churn v1 is back in production");

    let plan = p
        .vane(&[
            "backfill",
            "churn",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-20",
            "--dry-run",
        ])
        .success()
        .stdout;
    assert!(
        plan.contains("rollout (latest-only: a run for 2026-11-27"),
        "{plan}"
    );
    p.write("models/v1.json", r#"{"accuracy": 0.91}"#);
    p.vane(&[
        "backfill",
        "churn",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-20",
    ])
    .success();
    let reason = skipped_rollout_reason(&p, 3);
    assert!(
        reason.contains("older than run 2") && reason.contains("churn v2"),
        "{reason}"
    );
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "production", "{m:#}");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
}

/// A rollout left waiting for a person is itself worth an alert: `approval_waiting` fires once
/// the wait passes the rule's `after`, naming the run, the model and the stage.
#[test]
fn an_approval_waiting_too_long_raises_an_alert() {
    let p = project("approve");
    p.write(
        "vane.toml",
        "[[alerts.rules]]\non = \"approval_waiting\"\nafter = \"1s\"\nseverity = \"critical\"\n",
    );
    let mut child = start_waiting(&p, "v1", "2026-11-01", "canary");
    let alert = wait_for_every(
        Duration::from_millis(200),
        "the approval_waiting alert",
        Duration::from_secs(30),
        || {
            p.vane(&["alerts", "--evaluate"]).success();
            let alerts = p.vane(&["alerts", "--json"]).success().json();
            alerts
                .as_array()?
                .iter()
                .find(|a| a["on"] == "approval_waiting")
                .cloned()
        },
    );
    assert_eq!(alert["severity"], "critical", "{alert:#}");
    assert_eq!(alert["subject"], "churn", "{alert:#}");
    let summary = alert["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("run 1 waits for a person to approve churn v1 at stage canary"),
        "{alert:#}"
    );
    // Evaluated again at once, the same wait is not a second alert.
    p.vane(&["alerts", "--evaluate"]).success();
    let alerts = p.vane(&["alerts", "--json"]).success().json();
    let waiting: Vec<_> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["on"] == "approval_waiting")
        .collect();
    assert_eq!(waiting.len(), 1, "{alerts:#}");
    assert_eq!(waiting[0]["count"], 1, "{alerts:#}");
    p.vane(&["approve", "1", "--by", "carol"]).success();
    assert!(child.wait().unwrap().success());
    // Approved, the rollout went on and its task passed: the alert is resolved by that run.
    p.vane(&["alerts", "--evaluate"]).success();
    let alerts = p.vane(&["alerts", "--all", "--json"]).success().json();
    let alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["on"] == "approval_waiting")
        .unwrap_or_else(|| panic!("{alerts:#}"));
    assert_eq!(alert["state"], "resolved", "{alert:#}");
}

#[test]
fn on_no_baseline_approve_waits_for_the_first_model() {
    let p = project("approve");
    let mut child = start_waiting(&p, "v1", "2026-11-01", "canary");
    p.vane(&["approve", "1", "--by", "carol"]).success();
    assert!(child.wait().unwrap().success());
    assert_eq!(stage_of(&models(&p), 1), "production");
}

/// Under systemd and in containers `$USER` is unset: the approver is the operating system's
/// name for the user, never "unknown".
#[test]
fn an_approval_without_user_in_the_environment_records_the_os_user() {
    let p = project("approve");
    let mut child = start_waiting(&p, "v1", "2026-11-01", "canary");
    let output = p
        .command(&["approve", "1"])
        .env_remove("USER")
        .output()
        .expect("run vane approve");
    assert!(output.status.success(), "{output:?}");
    assert!(child.wait().unwrap().success());
    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .expect("run id -un")
            .stdout,
    )
    .unwrap();
    let m = models(&p);
    let approved = m["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["evidence"]["approved_by"].is_string())
        .unwrap_or_else(|| panic!("an approval in the ledger: {m:#}"));
    assert_eq!(approved["evidence"]["approved_by"], me.trim(), "{m:#}");
}

#[test]
fn models_at_a_time_and_a_rollback_by_hand() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    let m = models(&p);
    let v1_live = m["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to_stage"] == "production")
        .unwrap()["at"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&p, "v2", "2026-11-02").success();

    p.vane(&["models", "churn", "--at", &v1_live])
        .success()
        .stdout_contains("churn: v1 was in production at");
    p.vane(&["models", "churn", "--at", "2020-01-01"])
        .success()
        .stdout_contains("churn: nothing was in production");

    p.vane(&[
        "rollback",
        "churn",
        "--reason",
        "latency complaints",
        "--by",
        "dana",
    ])
    .success()
    .stdout_contains("churn v1 is back in production, replacing v2");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "production");
    assert_eq!(stage_of(&m, 2), "failed");
    let ledger = m["ledger"].as_array().unwrap();
    let back = ledger
        .iter()
        .rfind(|e| e["version"] == 1 && e["to_stage"] == "production")
        .unwrap();
    assert_eq!(back["actor"], "user dana");
    assert_eq!(back["reason"], "rollback: latency complaints");
    let last = ledger.last().unwrap();
    assert_eq!(last["version"], 2, "{m:#}");
    assert_eq!(last["to_stage"], "failed", "{m:#}");
    assert_eq!(last["reason"], "rolled back to v1: latency complaints");

    // The same bytes trained again are not served again: the deploy ends skipped, saying why.
    run(&p, "v2", "2026-11-03").success();
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
    assert_eq!(stage_of(&models(&p), 2), "failed");
    let reason = skipped_rollout_reason(&p, 3);
    assert!(
        reason.contains("not deployed: the candidate is churn v2, which failed")
            && reason.contains("user dana: rolled back to v1")
            && reason.contains("vane promote churn 2"),
        "{reason}"
    );
    // A person can bring it back, naming it as `vane models` lists it.
    p.vane(&[
        "promote",
        "churn",
        "v2",
        "--stage",
        "production",
        "--reason",
        "latency was the network",
        "--by",
        "dana",
    ])
    .success();
    assert_eq!(stage_of(&models(&p), 2), "production");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.93}"#);
}

/// A candidate that failed its gate is not rolled out again when a later run produces the
/// same model: no second canary, the task ends skipped with the reason, production untouched.
#[test]
fn a_version_that_failed_a_gate_is_never_rolled_out_again() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "worse", "2026-11-02").failure();
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "failed", "{m:#}");
    let entries = m["ledger"].as_array().unwrap().len();
    std::fs::remove_file(p.path().join("serving/canary.json")).unwrap();

    run(&p, "worse", "2026-11-03").success();
    let reason = skipped_rollout_reason(&p, 3);
    assert!(
        reason.contains("an automatic rollout never serves a failed version again")
            && reason.contains("canary gate failed"),
        "{reason}"
    );
    let m = models(&p);
    assert_eq!(m["ledger"].as_array().unwrap().len(), entries, "{m:#}");
    assert!(
        !p.path().join("serving/canary.json").exists(),
        "the failed version went back into canary"
    );
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
}

#[test]
fn a_retried_rollout_of_another_candidate_goes_through_every_gate_again() {
    let p = project("pass");
    // v1 passes its canary and fails in production.
    p.write(
        "models/v1.json",
        r#"{"accuracy": 0.9, "production_latency": 80}"#,
    );
    run(&p, "v1", "2026-11-01").failure();
    // The candidate changes (a retrain) before the task is cleared: a new version whose canary
    // is slow must be judged by its own canary, not by the one v1 passed.
    p.write(
        "models/v1.json",
        r#"{"accuracy": 0.9, "canary_latency": 90}"#,
    );
    p.vane(&["clear", "1", "--task", "rollout", "--foreground"])
        .failure();
    let log = p.logs(1, "rollout", Some(2));
    assert!(
        log.contains("canary gate failed: p95_latency_ms 90 >= 50"),
        "{log}"
    );
    assert!(!log.contains("already passed"), "{log}");
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "failed", "{m:#}");
}

#[test]
fn a_retry_of_the_same_candidate_keeps_its_passed_stages() {
    let p = project("pass");
    p.write("tools/flaky.py", "import os, sys\nif not os.path.exists('flaked'):\n    open('flaked', 'w').close()\n    sys.exit(3)\n");
    let dag = dag_text("pass").replace(
        "command = \"python3 tools/serve.py production\"",
        "command = \"python3 tools/flaky.py && python3 tools/serve.py production\"",
    );
    p.write("dags/churn.toml", &dag);
    run(&p, "v1", "2026-11-01").failure();
    p.vane(&["clear", "1", "--task", "rollout", "--foreground"])
        .success();
    let log = p.logs(1, "rollout", Some(2));
    assert!(
        log.contains("stage `canary` of v1 already passed in an earlier attempt of this run"),
        "{log}"
    );
    assert_eq!(stage_of(&models(&p), 1), "production");
}

#[test]
fn a_nan_sample_count_is_not_enough_samples() {
    let p = project("pass");
    p.write("models/nan.json", r#"{"accuracy": 0.9, "samples": "nan"}"#);
    let mut child = start_waiting(&p, "nan", "2026-11-01", "canary");
    let waiting = p.vane(&["models", "churn"]).success().stdout;
    assert!(
        waiting.contains("the stage reported no `samples` metric (min_samples = 100)"),
        "{waiting}"
    );
    p.vane(&["reject", "1", "--reason", "no traffic", "--by", "eve"])
        .success();
    assert!(!child.wait().unwrap().success());
    let log = p.logs(1, "rollout", None);
    assert!(log.contains("ignoring metrics"), "{log}");
}

#[test]
fn a_second_rollout_of_the_same_model_waits_for_the_first() {
    let p = project("pass");
    p.write("models/best.json", r#"{"accuracy": 0.99}"#);
    let mut first = start_waiting(&p, "few", "2026-11-01", "canary");
    let args = run_args("best", "2026-11-02");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut second = p
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    wait_for_every(
        Duration::from_millis(100),
        "the second rollout to wait for the first",
        Duration::from_secs(60),
        || {
            let out = p.vane(&["logs", "2", "rollout"]);
            out.stdout
                .contains("waiting for the rollout of run 1 to finish")
                .then_some(())
        },
    );
    // It has not touched the serving folder or the registry while it waited.
    let m = models(&p);
    assert_eq!(m["versions"].as_array().unwrap().len(), 1, "{m:#}");
    p.vane(&["approve", "1", "--by", "alice"]).success();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "archived", "{m:#}");
    assert_eq!(stage_of(&m, 2), "production", "{m:#}");
}

#[test]
fn promote_accepts_only_declared_stages() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    p.vane(&["promote", "churn", "1", "--stage", "canry", "--reason", "x"])
        .failure()
        .stderr_contains("churn has no stage `canry`: did you mean `canary`?");
    // The production version leaves production only for another one: taken out alone, it
    // would serve on while the registry named none, and a failed gate restored the fallback.
    let out = p
        .vane(&[
            "promote", "churn", "1", "--stage", "archived", "--reason", "retired",
        ])
        .code(5);
    insta::assert_snapshot!("promote_production_out_alone", out.stderr);
    assert_eq!(stage_of(&models(&p), 1), "production");
    run(&p, "v2", "2026-11-02").success();
    p.vane(&[
        "promote", "churn", "1", "--stage", "failed", "--reason", "retired",
    ])
    .success();
    assert_eq!(stage_of(&models(&p), 1), "failed");
}

/// `vane lineage MODEL` traces the latest version, which is not the one serving after its
/// canary failed: the answer says where the version stands and which one is in production.
#[test]
fn lineage_of_a_model_says_where_the_version_stands_in_the_registry() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "worse", "2026-11-02").failure();
    let text = p.vane(&["lineage", "churn"]).success().stdout;
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("churn v2 "), "{text}");
    let registry = lines.next().unwrap();
    assert!(
        registry.starts_with("  in the model registry: `failed` since ")
            && registry.ends_with("(run 2); in production: v1 (`vane lineage churn@1`)"),
        "{text}"
    );
    let text = p.vane(&["lineage", "churn@1"]).success().stdout;
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("  in the model registry: `production` since "),
        "{text}"
    );
}

/// A rollout stopped while it waits for a person cannot close its own wait: `vane models` no
/// longer offers `vane approve` for it, and says the canary may still serve the candidate.
#[test]
fn a_wait_of_a_stopped_run_is_not_offered_for_approval() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    let mut child = start_waiting(&p, "few", "2026-11-02", "canary");
    p.vane(&["stop", "2", "--reason", "going home", "--by", "bob"])
        .success();
    assert!(!child.wait().unwrap().success());
    assert_eq!(p.show(2)["state"], "failed");

    let m = models(&p);
    assert_eq!(m["waiting"], serde_json::json!([]), "{m:#}");
    let text = p.vane(&["models", "churn"]).success().stdout;
    assert!(!text.contains("vane approve"), "{text}");
    assert!(
        text.contains("run 2 (churn v2) is failed: its stage `canary` waited for an answer that can no longer come, and its command may still serve v2; `vane rollback churn --to 1 --reason TEXT` puts production back in place"),
        "{text}"
    );
    // Once something happened to the model, the note is history.
    p.vane(&[
        "rollback",
        "churn",
        "--to",
        "1",
        "--reason",
        "take the canary down",
    ])
    .success();
    let text = p.vane(&["models", "churn"]).success().stdout;
    assert!(!text.contains("can no longer come"), "{text}");
}

/// A killed rollout cannot close its own wait: nobody can answer it once its run ended, so
/// nobody is paged to.
#[test]
fn a_wait_of_a_stopped_run_raises_no_approval_alert() {
    let p = project("approve");
    p.write(
        "vane.toml",
        "[[alerts.rules]]\non = \"approval_waiting\"\nafter = \"1ms\"\n",
    );
    let mut child = start_waiting(&p, "v1", "2026-11-01", "canary");
    p.vane(&["stop", "1", "--reason", "going home"]).success();
    assert!(!child.wait().unwrap().success());
    p.vane(&["alerts", "--evaluate"]).success();
    let alerts = p.vane(&["alerts", "--all", "--json"]).success().json();
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["on"] == "approval_waiting"),
        "{alerts:#}"
    );
}

/// A crashed evaluation says nothing about the candidate: the attempt fails like any crash
/// (retried, not a verdict), nothing is rolled back since nothing was rolled out, and the
/// candidate is not marked failed, so once the script is fixed the same model goes out.
#[test]
fn a_crashed_evaluation_is_no_verdict_on_the_candidate() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    p.write("tools/evaluate.py", "import sys\nsys.exit(2)\n");
    run(&p, "v2", "2026-11-02").failure();
    let show = p.show(2);
    let attempt = &crate::harness::attempts(&show, "rollout")[0];
    assert_eq!(attempt["exit_code"], 1, "{show:#}");
    assert_eq!(
        attempt["reason"],
        "evaluation failed: evaluate exited with 2; nothing was rolled out, and churn v2 is not marked failed",
        "{show:#}"
    );
    assert_eq!(serving(&p, "rollbacks.log"), "", "nothing to roll back");
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "registered", "{m:#}");
    assert_eq!(stage_of(&m, 1), "production", "{m:#}");

    p.write("tools/evaluate.py", EVALUATE);
    p.vane(&["clear", "2", "--task", "rollout", "--foreground"])
        .success();
    assert_eq!(stage_of(&models(&p), 2), "production");
}

/// The first model of a name has no earlier version to go back to: a rollback by hand puts the
/// deploy task's `fallback` back, as its rollout would, and leaves no version in production.
#[test]
fn a_rollback_of_the_first_model_puts_the_fallback_back() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    p.vane(&[
        "rollback",
        "churn",
        "--reason",
        "first model is bad",
        "--by",
        "dana",
    ])
    .success()
    .stdout_contains("running the rollback command for the fallback model ")
    .stdout_contains(
        "so no version of churn is in production; v1, which it replaces, is now `failed`",
    );
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.5}"#);
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "failed", "{m:#}");
    p.vane(&["rollback", "churn", "--reason", "again"])
        .code(5)
        .stderr_contains("no version of churn is in production, so there is nothing to roll back");
}

/// `production` in the registry is the version that serves: promoting one there by hand puts
/// it in place with the rollback command first, so a later rollback does not "restore" a
/// version that never served.
#[test]
fn promoting_to_production_puts_the_version_in_place() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "v2", "2026-11-02").success();
    p.vane(&[
        "promote",
        "churn",
        "v1",
        "--stage",
        "production",
        "--reason",
        "v2 is slow",
    ])
    .success()
    .stdout_contains("running the rollback command for churn v1")
    .stdout_contains("churn v1 is now in `production`");
    assert_eq!(serving(&p, "production.json"), r#"{"accuracy": 0.9}"#);
    let m = models(&p);
    assert_eq!(stage_of(&m, 1), "production", "{m:#}");
    assert_eq!(stage_of(&m, 2), "archived", "{m:#}");
}

/// When the command that would serve the promoted version fails, the registry keeps naming
/// the version that does serve.
#[test]
fn a_promotion_whose_rollback_command_fails_changes_nothing() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    run(&p, "v2", "2026-11-02").success();
    p.write("tools/serve.py", "import sys\nsys.exit(3)\n");
    p.vane(&[
        "promote",
        "churn",
        "1",
        "--stage",
        "production",
        "--reason",
        "x",
    ])
    .failure()
    .stderr_contains("the rollback command failed")
    .stderr_contains("the registry is unchanged");
    let m = models(&p);
    assert_eq!(stage_of(&m, 2), "production", "{m:#}");
    assert_eq!(stage_of(&m, 1), "archived", "{m:#}");
}

#[test]
fn rollback_to_the_production_version_puts_it_in_place_again() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    p.vane(&[
        "rollback",
        "churn",
        "--to",
        "1",
        "--reason",
        "serving lost it",
    ])
    .success()
    .stdout_contains("churn v1 is in production and was put in place again");
    // Run as the engine runs it: the run's environment, from the project root.
    let log = serving(&p, "rollbacks.log");
    assert!(log.starts_with("restored v1 from "), "{log}");
    assert!(log.contains("ds=2026-11-01"), "{log}");
    assert_eq!(stage_of(&models(&p), 1), "production");
}

#[test]
fn the_deploy_reads_the_candidate_and_does_not_claim_to_have_made_it() {
    let p = project("pass");
    run(&p, "v1", "2026-11-01").success();
    let out = p.vane(&["artifacts", "churn", "--json"]).success().json();
    let v = &out.as_array().unwrap_or_else(|| panic!("{out:#}"))[0];
    assert!(v["producer"].is_null(), "{out:#}");
    let lineage = p.vane(&["lineage", "churn@1", "--json"]).success().json();
    let text = lineage.to_string();
    assert!(text.contains("\"rollout\""), "{lineage:#}");
}
