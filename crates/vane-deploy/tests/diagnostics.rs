//! Every diagnostic of a `kind = "deploy"` task, as `vane validate` prints it.

use vane_deploy::DEPLOY as KIND;

fn render(source: &str) -> String {
    let registry = vane_dag::Registry::none().kind(&KIND);
    vane_dag::parse_dag_with(source, "example", &registry).render("dags/example.toml", source)
}

#[test]
fn deploy_gate_with_an_unknown_operator() {
    insta::assert_snapshot!(render(
        r#"[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "model.json"
[tasks.rollout.stages.production]
command = "true"
gate = ["accuracy => production.accuracy - 0.01", "p95_latency_ms < 50 ms"]
"#
    ));
}

#[test]
fn deploy_stages_must_end_in_production() {
    insta::assert_snapshot!(render(
        r#"[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "model.json"
[tasks.rollout.stages.production]
command = "true"
[tasks.rollout.stages.canary]
command = "true"
sok = "2s"
"#
    ));
}

#[test]
fn deploy_unknown_on_no_baseline_and_missing_keys() {
    insta::assert_snapshot!(render(
        r#"[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "model.json"
on_no_baseline = "skip"
[tasks.rollout.stages.production]
command = "true"

[tasks.other]
kind = "deploy"
candidate = "model.json"
"#
    ));
}
