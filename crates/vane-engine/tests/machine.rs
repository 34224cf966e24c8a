//! Scheduling rules of one run, tested without processes, clock or database.

use std::time::{Duration, Instant};

use vane_engine::{Action, Finish, Recorded, RunMachine};
use vane_store::{RunState, TaskState};

fn dag(source: &str) -> vane_dag::Dag {
    let parsed = vane_dag::parse_dag(source, "t");
    assert_eq!(parsed.diagnostics, vec![]);
    parsed.dag.unwrap()
}

fn rec(state: TaskState, attempts: u32) -> Recorded {
    Recorded {
        state,
        attempts,
        retry_base: 0,
        failed_ago: None,
    }
}

fn launches(actions: &[Action]) -> Vec<(usize, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { task, attempt } => Some((*task, *attempt)),
            _ => None,
        })
        .collect()
}

const DIAMOND: &str = r#"
[tasks.a]
command = "true"
[tasks.b]
command = "true"
depends_on = ["a"]
[tasks.c]
command = "true"
depends_on = ["a"]
[tasks.d]
command = "true"
depends_on = ["b", "c"]
"#;

#[test]
fn tasks_start_as_soon_as_their_dependencies_succeed() {
    let mut m = RunMachine::new(&dag(DIAMOND), 8);
    let t = Instant::now();
    assert_eq!(launches(&m.start(t)), vec![(0, 1)]);
    assert_eq!(
        launches(&m.finished(0, Finish::Success, t)),
        vec![(1, 1), (2, 1)]
    );
    assert_eq!(launches(&m.finished(1, Finish::Success, t)), vec![]);
    assert_eq!(launches(&m.finished(2, Finish::Success, t)), vec![(3, 1)]);
    assert_eq!(m.outcome(), None);
    m.finished(3, Finish::Success, t);
    assert_eq!(m.outcome(), Some(RunState::Success));
}

#[test]
fn no_more_than_max_active_tasks_run_at_once() {
    let source: String = (0..5)
        .map(|i| format!("[tasks.t{i}]\ncommand = \"true\"\n"))
        .collect();
    let mut m = RunMachine::new(&dag(&source), 2);
    let t = Instant::now();
    assert_eq!(launches(&m.start(t)), vec![(0, 1), (1, 1)]);
    assert_eq!(launches(&m.finished(1, Finish::Success, t)), vec![(2, 1)]);
    assert_eq!(launches(&m.finished(0, Finish::Success, t)), vec![(3, 1)]);
}

#[test]
fn a_failure_marks_everything_downstream_upstream_failed() {
    let mut m = RunMachine::new(&dag(DIAMOND), 8);
    let t = Instant::now();
    m.start(t);
    m.finished(0, Finish::Success, t);
    let actions = m.finished(1, Finish::Failed, t);
    assert!(actions.contains(&Action::SetState {
        task: 3,
        state: TaskState::UpstreamFailed,
        reason: Some("upstream task `b` failed".into()),
    }));
    assert_eq!(m.state(1), TaskState::Failed);
    // The sibling keeps running and finishes; the run still fails.
    m.finished(2, Finish::Success, t);
    assert_eq!(m.state(2), TaskState::Success);
    assert_eq!(m.outcome(), Some(RunState::Failed));
}

#[test]
fn retries_wait_their_delay_with_exponential_backoff() {
    let mut m = RunMachine::new(
        &dag(r#"
[tasks.flaky]
command = "false"
retries = 2
retry_delay = "10s"
retry_backoff = "exponential"
"#),
        1,
    );
    let t0 = Instant::now();
    assert_eq!(launches(&m.start(t0)), vec![(0, 1)]);
    let actions = m.finished(0, Finish::Failed, t0);
    assert_eq!(launches(&actions), vec![]);
    assert_eq!(m.state(0), TaskState::Queued);
    assert_eq!(m.next_wake(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(launches(&m.wake(t0 + Duration::from_secs(9))), vec![]);
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(launches(&m.wake(t1)), vec![(0, 2)]);
    m.finished(0, Finish::Failed, t1);
    assert_eq!(m.next_wake(), Some(t1 + Duration::from_secs(20)));
    let t2 = t1 + Duration::from_secs(20);
    assert_eq!(launches(&m.wake(t2)), vec![(0, 3)]);
    let last = m.finished(0, Finish::Failed, t2);
    assert!(last.contains(&Action::SetState {
        task: 0,
        state: TaskState::Failed,
        reason: Some("failed after 3 attempts".into()),
    }));
    assert_eq!(m.next_wake(), None);
    assert_eq!(m.outcome(), Some(RunState::Failed));
}

#[test]
fn stopping_kills_what_runs_and_skips_what_has_not_started() {
    let mut m = RunMachine::new(&dag(DIAMOND), 8);
    let t = Instant::now();
    m.start(t);
    m.finished(0, Finish::Success, t);
    let actions = m.cancel();
    assert!(actions.contains(&Action::Kill { task: 1 }));
    assert!(actions.contains(&Action::Kill { task: 2 }));
    assert_eq!(m.state(3), TaskState::Skipped);
    assert_eq!(m.outcome(), None, "killed tasks have not reported back yet");
    // A stopped task is not retried, even with retries left.
    assert_eq!(launches(&m.finished(1, Finish::Stopped, t)), vec![]);
    assert_eq!(launches(&m.finished(2, Finish::Failed, t)), vec![]);
    assert_eq!(m.state(2), TaskState::Failed);
    assert_eq!(m.outcome(), Some(RunState::Failed));
}

/// Regression: a task waiting for its retry when the run was stopped ended `skipped`, "the
/// run was stopped before it started", beside its failed attempt.
#[test]
fn stopping_fails_a_task_waiting_for_its_retry() {
    let mut m = RunMachine::new(
        &dag(r#"
[tasks.flaky]
command = "false"
retries = 3
retry_delay = "1h"
[tasks.after]
command = "true"
depends_on = ["flaky"]
"#),
        4,
    );
    let t = Instant::now();
    m.start(t);
    m.finished(0, Finish::Failed, t);
    assert_eq!(m.state(0), TaskState::Queued);
    let actions = m.cancel();
    assert!(actions.contains(&Action::SetState {
        task: 0,
        state: TaskState::Failed,
        reason: Some("attempt 1 failed; the run was stopped before its retry".into()),
    }));
    assert_eq!(m.state(1), TaskState::Skipped);
    assert_eq!(m.outcome(), Some(RunState::Failed));
    assert_eq!(m.next_wake(), None);
}

/// train -> deploy (all_success), and deploy_fallback (one_failed) beside it.
const FALLBACK: &str = r#"
[tasks.train]
command = "true"
[tasks.deploy]
command = "true"
depends_on = ["train"]
[tasks.deploy_fallback]
command = "true"
depends_on = ["train"]
trigger_rule = "one_failed"
[tasks.cleanup]
command = "true"
depends_on = ["deploy", "deploy_fallback"]
trigger_rule = "all_done"
[tasks.report]
command = "true"
depends_on = ["deploy", "deploy_fallback"]
trigger_rule = "none_failed"
"#;

#[test]
fn one_failed_deploys_the_fallback_when_training_fails() {
    let mut m = RunMachine::new(&dag(FALLBACK), 8);
    let t = Instant::now();
    m.start(t);
    let actions = m.finished(0, Finish::Failed, t);
    assert_eq!(m.state(1), TaskState::UpstreamFailed);
    assert_eq!(launches(&actions), vec![(2, 1)]);
    assert_eq!(
        m.state(4),
        TaskState::UpstreamFailed,
        "none_failed sees deploy's upstream_failed"
    );
    let actions = m.finished(2, Finish::Success, t);
    assert_eq!(
        launches(&actions),
        vec![(3, 1)],
        "all_done runs whatever happened"
    );
    m.finished(3, Finish::Success, t);
    assert_eq!(
        m.outcome(),
        Some(RunState::Failed),
        "training failed, so the run did"
    );
}

#[test]
fn one_failed_is_skipped_when_nothing_fails() {
    let mut m = RunMachine::new(&dag(FALLBACK), 8);
    let t = Instant::now();
    m.start(t);
    let actions = m.finished(0, Finish::Success, t);
    assert_eq!(launches(&actions), vec![(1, 1)]);
    assert!(actions.contains(&Action::SetState {
        task: 2,
        state: TaskState::Skipped,
        reason: Some("trigger rule `one_failed` not met: upstream task `train` succeeded".into()),
    }));
    let actions = m.finished(1, Finish::Success, t);
    assert_eq!(
        launches(&actions),
        vec![(3, 1), (4, 1)],
        "a skipped dependency satisfies all_done and none_failed"
    );
    m.finished(3, Finish::Success, t);
    m.finished(4, Finish::Success, t);
    assert_eq!(m.outcome(), Some(RunState::Success));
}

#[test]
fn every_trigger_rule_against_one_success_and_one_failure() {
    let rules = [
        "all_success",
        "all_done",
        "all_failed",
        "one_failed",
        "one_success",
        "none_failed",
    ];
    let mut source =
        String::from("[tasks.ok]\ncommand = \"true\"\n[tasks.bad]\ncommand = \"false\"\n");
    for rule in rules {
        source.push_str(&format!(
            "[tasks.{rule}]\ncommand = \"true\"\ndepends_on = [\"ok\", \"bad\"]\ntrigger_rule = \"{rule}\"\n"
        ));
    }
    let mut m = RunMachine::new(&dag(&source), 16);
    let t = Instant::now();
    m.start(t);
    m.finished(0, Finish::Success, t);
    m.finished(1, Finish::Failed, t);
    let states: Vec<_> = (2..8).map(|i| m.state(i)).collect();
    assert_eq!(
        states,
        vec![
            TaskState::UpstreamFailed, // all_success
            TaskState::Running,        // all_done
            TaskState::Skipped,        // all_failed
            TaskState::Running,        // one_failed
            TaskState::Running,        // one_success (already running after `ok`)
            TaskState::UpstreamFailed, // none_failed
        ]
    );
}

#[test]
fn a_resumed_run_reruns_only_what_is_queued_and_continues_attempt_numbers() {
    // Run of the diamond where `b` failed (twice) and `d` was upstream_failed; `b` and `d`
    // are cleared back to queued.
    let recorded = [
        rec(TaskState::Success, 1),
        rec(TaskState::Queued, 2),
        rec(TaskState::Success, 1),
        rec(TaskState::Queued, 0),
    ];
    let (mut m, settled) = RunMachine::resume(&dag(DIAMOND), 8, &recorded, Instant::now());
    assert_eq!(settled, vec![]);
    let t = Instant::now();
    assert_eq!(launches(&m.start(t)), vec![(1, 3)]);
    assert_eq!(launches(&m.finished(1, Finish::Success, t)), vec![(3, 1)]);
    m.finished(3, Finish::Success, t);
    assert_eq!(m.outcome(), Some(RunState::Success));
}

#[test]
fn resuming_settles_tasks_whose_rule_can_no_longer_be_met() {
    let recorded = [
        rec(TaskState::Failed, 1),
        rec(TaskState::Queued, 0),
        rec(TaskState::Queued, 0),
        rec(TaskState::Queued, 0),
    ];
    let (m, settled) = RunMachine::resume(&dag(DIAMOND), 8, &recorded, Instant::now());
    let states: Vec<_> = (0..4).map(|i| m.state(i)).collect();
    assert_eq!(
        states,
        vec![
            TaskState::Failed,
            TaskState::UpstreamFailed,
            TaskState::UpstreamFailed,
            TaskState::UpstreamFailed
        ]
    );
    assert_eq!(settled.len(), 3);
    assert_eq!(m.outcome(), Some(RunState::Failed));
}

#[test]
fn one_failed_ignores_dependencies_that_never_ran() {
    // validate fails, so train never runs: the fallback wired to train's failure must not fire.
    let mut m = RunMachine::new(
        &dag(r#"
[tasks.validate]
command = "false"
[tasks.train]
command = "true"
depends_on = ["validate"]
[tasks.fallback]
command = "true"
depends_on = ["train"]
trigger_rule = "one_failed"
"#),
        4,
    );
    let t = Instant::now();
    m.start(t);
    m.finished(0, Finish::Failed, t);
    assert_eq!(m.state(1), TaskState::UpstreamFailed);
    assert_eq!(m.state(2), TaskState::Skipped);
    assert_eq!(m.outcome(), Some(RunState::Failed));
}

#[test]
fn a_resumed_retry_waits_what_is_left_of_its_delay() {
    let d = dag("[tasks.flaky]\ncommand = \"false\"\nretries = 2\nretry_delay = \"1h\"\n");
    let recorded = [Recorded {
        state: TaskState::Queued,
        attempts: 1,
        retry_base: 0,
        failed_ago: Some(Duration::from_secs(600)),
    }];
    let t = Instant::now();
    let (mut m, _) = RunMachine::resume(&d, 1, &recorded, t);
    assert_eq!(launches(&m.start(t)), vec![]);
    assert_eq!(m.next_wake(), Some(t + Duration::from_secs(3000)));
    assert_eq!(
        launches(&m.wake(t + Duration::from_secs(3000))),
        vec![(0, 2)]
    );
}

#[test]
fn a_cleared_task_gets_its_retry_budget_again() {
    let d = dag("[tasks.flaky]\ncommand = \"false\"\nretries = 1\nretry_delay = \"1s\"\n");
    // It failed twice (1 + 1 retry) and was cleared: two more tries.
    let recorded = [Recorded {
        state: TaskState::Queued,
        attempts: 2,
        retry_base: 2,
        failed_ago: None,
    }];
    let (mut m, _) = RunMachine::resume(&d, 1, &recorded, Instant::now());
    let t = Instant::now();
    assert_eq!(launches(&m.start(t)), vec![(0, 3)]);
    m.finished(0, Finish::Failed, t);
    assert_eq!(m.state(0), TaskState::Queued, "retried once more");
    let t = t + Duration::from_secs(1);
    assert_eq!(launches(&m.wake(t)), vec![(0, 4)]);
    m.finished(0, Finish::Failed, t);
    assert_eq!(m.state(0), TaskState::Failed);
}
