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

/// A gate written with escapes or as a multi-line string was pointed at by adding the offset in
/// its value to where the string starts: columns off by each escape's extra bytes, and for a
/// `"""` gate, the wrong line.
#[test]
fn deploy_gate_errors_inside_escaped_and_multi_line_strings() {
    insta::assert_snapshot!(render(
        r#"[tasks.rollout]
kind = "deploy"
model = "churn"
candidate = "model.json"
[tasks.rollout.stages.production]
command = "true"
gate = [
    "p95\u005Flatency_ms < 50 ms",
    "\"accuracy\" >= 0.9",
    """
    accuracy >= \
        production.accuracy - 0.01 ms""",
    '''
accuracy
  => 0.9''',
]
"#
    ));
}

/// A missing `model` is one problem among the task's: the stages are still checked, so fixing
/// it does not reveal the next.
#[test]
fn a_missing_model_does_not_hide_the_stages_problems() {
    insta::assert_snapshot!(render(
        r#"[tasks.rollout]
kind = "deploy"
candidate = "model.json"

[tasks.rollout.stages.production]
soak = "5 min"
"#
    ));
}
