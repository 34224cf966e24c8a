//! `vane backfill` and `vane backfills`.

use std::time::Duration;

use crate::harness::{Backend, Project};

const DAILY: &str = r#"
[dag]
schedule = "0 2 * * *"
timezone = "Europe/Paris"
[tasks.extract]
command = "echo {{ ds }} >> \"$VANE_WORK/days\"; test {{ ds }} != 2026-01-03"
[tasks.load]
command = "echo load {{ ds }}"
depends_on = ["extract"]
"#;

fn days(p: &Project) -> Vec<String> {
    let mut days: Vec<String> = p.read_work("days").lines().map(str::to_owned).collect();
    days.sort();
    days
}

fn a_backfill_runs_every_tick_in_the_range_both_ends_included(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-04",
        "--max-active",
        "2",
    ])
    .failure()
    .stderr_contains("1 of 4 runs failed")
    // Regression: the hint said `--from ... --to ...`, leaving the dates to be found.
    .stderr_contains("`vane backfill daily --from 2026-01-01 --to 2026-01-04 --rerun-failed`");
    assert_eq!(
        days(&p),
        vec!["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    );
    let runs = p.runs();
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["trigger"] == "backfill"));
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert_eq!(list[0]["state"], "done");
    assert_eq!(list[0]["success"], 3);
    assert_eq!(list[0]["failed"], 1);
}

fn a_dry_run_says_what_it_would_do_and_does_nothing(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-03",
    ])
    .failure();
    let out = p
        .vane(&[
            "backfill",
            "daily",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-04",
            "--dry-run",
            "--reverse",
        ])
        .success();
    let text = &out.stdout;
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[0].starts_with("2026-01-04T02:00:00+01:00")
            && lines[0].contains(" run ")
            && lines[0].ends_with("run: extract, load"),
        "{text}"
    );
    assert!(
        lines[1].contains("skip: failed (run 2); --rerun-failed reruns it"),
        "{text}"
    );
    assert!(
        lines[2].contains("skip: already succeeded (run 1)"),
        "{text}"
    );
    assert_eq!(p.runs().len(), 2, "a dry run creates nothing");
}

fn rerun_failed_reruns_only_the_failed_ticks_with_the_fixed_dag(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
    ])
    .failure();
    p.write_dag(
        "daily",
        &DAILY.replace("test {{ ds }} != 2026-01-03", "true"),
    );
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
        "--rerun-failed",
    ])
    .success()
    .stderr_contains("1 runs succeeded");
    assert_eq!(
        days(&p),
        vec!["2026-01-02", "2026-01-03", "2026-01-03", "2026-01-04"]
    );
    let show = p.show(2);
    assert_eq!(show["state"], "success");
    let extract = &show["tasks"][0]["attempts"];
    assert_eq!(extract.as_array().unwrap().len(), 2);
    assert_ne!(
        extract[0]["dag_version"], extract[1]["dag_version"],
        "the rerun ran the fixed DAG version"
    );
}

/// Regression: `--to` in the future made runs for ticks still ahead, run at once on data not
/// there yet, and the scheduler then found those ticks taken ("Tick already has a run").
#[test]
fn a_backfill_ends_at_the_last_tick_that_has_come() {
    let p = Project::new().dag("daily", DAILY);
    let today = chrono::Utc::now().date_naive();
    let (from, to) = (today - chrono::Days::new(3), today + chrono::Days::new(3));
    let out = p
        .vane(&[
            "backfill",
            "daily",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--dry-run",
        ])
        .success()
        .stderr_contains("is in the future; the backfill ends now");
    let now = chrono::Utc::now();
    let ticks: Vec<_> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            chrono::DateTime::parse_from_rfc3339(l.split_whitespace().next().unwrap()).unwrap()
        })
        .collect();
    assert!((3..=4).contains(&ticks.len()), "{}", out.stdout);
    assert!(ticks.iter().all(|t| *t <= now), "{}", out.stdout);

    p.vane(&[
        "backfill",
        "daily",
        "--from",
        &to.to_string(),
        "--to",
        &to.to_string(),
    ])
    .code(4)
    .stderr_contains("is in the future: none of its ticks has come yet");
}

fn a_dag_without_a_schedule_cannot_be_backfilled(backend: Backend) {
    let p = Project::on(backend).dag("manual", "[tasks.a]\ncommand = \"true\"\n");
    p.vane(&[
        "backfill",
        "manual",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
    ])
    .failure()
    .stderr_contains("has no schedule");
}

fn a_finished_backfill_cannot_be_paused_cancelled_or_resumed(backend: Backend) {
    let p = Project::on(backend).dag("daily", DAILY);
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
    ])
    .success();
    for action in ["pause", "cancel"] {
        p.vane(&["backfills", action, "1"])
            .failure()
            .stderr_contains("backfill 1 is done already");
    }
    p.vane(&["backfills", "resume", "1"])
        .failure()
        .stderr_contains("start a new one with `vane backfill`");
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert_eq!(list[0]["state"], "done");
}

const RETRAIN: &str = r#"
[dag]
schedule = "0 2 * * *"

[params]
lr = 0.1

[tasks.extract]
command = "echo extract {{ ds }}"

[tasks.train]
command = "echo train {{ ds }} lr={{ params.lr }} >> \"$VANE_WORK/trained\""
depends_on = ["extract"]
cache = true

[tasks.report]
command = "echo report {{ ds }} >> \"$VANE_WORK/reports\""
depends_on = ["train"]

[tasks.notify]
command = "echo notify {{ ds }} >> \"$VANE_WORK/notified\""
depends_on = ["extract"]
"#;

/// A backfill of only what is needed (`--task`, with what it needs upstream), without some
/// steps (`--exclude`), with its own params (`--param`); the dry run says, per date, what each
/// task would do and why.
fn a_backfill_runs_chosen_tasks_with_its_own_params_and_the_dry_run_says_why(backend: Backend) {
    let p = Project::on(backend).dag("retrain", RETRAIN);
    let dry = p
        .vane(&[
            "backfill",
            "retrain",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-01",
            "--task",
            "train",
            "--dry-run",
        ])
        .success()
        .stdout;
    assert!(dry.contains("run: extract"), "{dry}");
    assert!(
        dry.contains("reused from the cache if inputs are unchanged: train"),
        "{dry}"
    );
    assert!(
        dry.contains("report (not needed by the chosen tasks (train))"),
        "{dry}"
    );
    assert!(p.runs().is_empty(), "a dry run creates nothing");

    p.vane(&[
        "backfill",
        "retrain",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--task",
        "train",
        "--param",
        "lr=0.5",
    ])
    .success();
    assert_eq!(
        p.read_work("trained"),
        "train 2026-01-01 lr=0.5\ntrain 2026-01-02 lr=0.5\n"
    );
    assert!(!p.work().join("reports").exists());
    assert!(!p.work().join("notified").exists());
    let show = p.show(1);
    assert_eq!(show["params"]["lr"], 0.5, "{show:#}");
    assert_eq!(
        crate::harness::task(&show, "report")["state"],
        "skipped",
        "{show:#}"
    );
    assert_eq!(
        crate::harness::task(&show, "notify")["reason"],
        "not needed by the chosen tasks (train)",
        "{show:#}"
    );
    assert_eq!(show["state"], "success", "{show:#}");

    p.vane(&[
        "backfill",
        "retrain",
        "--from",
        "2026-01-03",
        "--to",
        "2026-01-03",
        "--exclude",
        "train",
    ])
    .success();
    let show = p.show(3);
    assert_eq!(
        crate::harness::task(&show, "train")["state"],
        "skipped",
        "{show:#}"
    );
    assert_eq!(
        crate::harness::task(&show, "report")["state"],
        "skipped",
        "{show:#}"
    );
    assert_eq!(
        crate::harness::task(&show, "notify")["state"],
        "success",
        "{show:#}"
    );
    p.vane(&[
        "backfill",
        "retrain",
        "--from",
        "2026-01-04",
        "--to",
        "2026-01-04",
        "--task",
        "nope",
    ])
    .failure()
    .stderr_contains("DAG `retrain` has no task `nope`; its tasks: extract, train, report, notify");
}

/// A backfill that may run no run at once would never end: it is refused before it starts.
#[test]
fn a_backfill_of_no_runs_at_once_is_refused() {
    let p = Project::new().dag(
        "daily",
        "[dag]\nschedule = \"@daily\"\n[tasks.a]\ncommand = \"true\"\n",
    );
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--max-active",
        "0",
    ])
    .code(2)
    .stderr_contains("invalid value '0' for '--max-active <N>'");
    assert_no_backfill(&p);
}

/// No backfill was recorded: input refused before anything was made.
/// A day's run that takes a moment, so that a person can pause or cancel the backfill while
/// it runs. Each run writes its day down.
const SLOW: &str = r#"
[dag]
schedule = "0 2 * * *"
[tasks.a]
command = "echo {{ ds }} >> \"$VANE_WORK/days\"; sleep 0.2"
"#;

/// Starts `vane backfill slow` over twelve days, one run at a time, and waits until it has
/// run two of them.
fn slow_backfill_under_way(p: &Project) -> crate::harness::Daemon {
    let mut backfill = p.daemon_via(
        &[],
        &[],
        &[
            "backfill",
            "slow",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-12",
            "--max-active",
            "1",
        ],
    );
    backfill.wait_for("two runs of the backfill", Duration::from_secs(60), || {
        let days = std::fs::read_to_string(p.work().join("days")).unwrap_or_default();
        (days.lines().count() >= 2).then_some(())
    });
    backfill
}

/// Paused from another terminal, the backfill's own process stops starting runs and exits,
/// saying how to go on; resumed, it runs every day that had not run, and none twice.
fn a_paused_backfill_resumes_and_runs_each_day_once(backend: Backend) {
    let p = Project::on(backend).dag("slow", SLOW);
    let mut backfill = slow_backfill_under_way(&p);
    p.vane(&["backfills", "pause", "1"]).success();
    assert_eq!(backfill.wait(Duration::from_secs(60)), Some(1));
    assert!(
        backfill
            .log()
            .contains("backfill 1 paused; continue it with `vane backfills resume 1`"),
        "{}",
        backfill.log()
    );
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert_eq!(list[0]["state"], "paused", "{list:#}");
    let ran_before = days(&p).len();
    assert!(ran_before < 12, "paused after every run: {:?}", days(&p));

    p.vane(&["backfills", "resume", "1"])
        .success()
        .stderr_contains("backfill 1 done: 12 runs succeeded");
    let expected: Vec<String> = (1..=12).map(|d| format!("2026-01-{d:02}")).collect();
    assert_eq!(days(&p), expected, "each day once");
}

/// Cancelled from another terminal, the backfill's own process exits, and the runs it had
/// not started are failed with the reason, so that nothing picks them up later.
fn a_cancelled_backfill_fails_the_runs_it_did_not_start(backend: Backend) {
    let p = Project::on(backend).dag("slow", SLOW);
    let mut backfill = slow_backfill_under_way(&p);
    p.vane(&["backfills", "cancel", "1"]).success();
    assert_eq!(backfill.wait(Duration::from_secs(60)), Some(1));
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert_eq!(list[0]["state"], "cancelled", "{list:#}");
    let ran = days(&p).len();
    assert!(ran < 12, "cancelled after every run: {:?}", days(&p));
    let runs = p.runs();
    assert_eq!(runs.len(), 12, "{runs:#?}");
    let unstarted: Vec<&serde_json::Value> =
        runs.iter().filter(|r| r["state"] == "failed").collect();
    assert!(
        unstarted.len() >= 12 - ran,
        "every run that never started is failed: {runs:#?}"
    );
    assert!(
        runs.iter()
            .all(|r| r["state"] != "queued" && r["state"] != "running"),
        "{runs:#?}"
    );
    // The last day never started (the run that was running says it was stopped: its
    // backfill was cancelled).
    let last = unstarted
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .max()
        .expect("an unstarted run");
    assert_eq!(p.show(last)["reason"], "backfill 1 was cancelled");
}

/// A backfill whose process was killed (`kill -9`, a closed terminal) is resumed: the run it
/// was running is adopted, its attempt that nobody watched any more is recorded lost and
/// retried, and every other day runs once.
fn a_backfill_killed_mid_run_resumes_and_runs_every_day(backend: Backend) {
    let p = Project::on(backend).dag("slow", &SLOW.replace("[tasks.a]", "[tasks.a]\nretries = 1"));
    let mut backfill = slow_backfill_under_way(&p);
    backfill.kill();
    p.vane(&["backfills", "resume", "1"])
        .success()
        .stderr_contains("backfill 1 done: 12 runs succeeded");
    let ran = days(&p);
    let mut once = ran.clone();
    once.dedup();
    let expected: Vec<String> = (1..=12).map(|d| format!("2026-01-{d:02}")).collect();
    assert_eq!(once, expected, "every day");
    assert!(
        ran.len() <= 13,
        "only the day that was running ran twice: {ran:?}"
    );
}

pub(crate) fn assert_no_backfill(p: &Project) {
    let list = p.vane(&["backfills", "--json"]).success().json();
    assert!(list.as_array().is_some_and(Vec::is_empty), "{list:#}");
}

crate::harness::on_both_backends!(
    a_backfill_runs_chosen_tasks_with_its_own_params_and_the_dry_run_says_why,
    a_backfill_runs_every_tick_in_the_range_both_ends_included,
    a_dry_run_says_what_it_would_do_and_does_nothing,
    rerun_failed_reruns_only_the_failed_ticks_with_the_fixed_dag,
    a_dag_without_a_schedule_cannot_be_backfilled,
    a_finished_backfill_cannot_be_paused_cancelled_or_resumed,
    a_paused_backfill_resumes_and_runs_each_day_once,
    a_cancelled_backfill_fails_the_runs_it_did_not_start,
    a_backfill_killed_mid_run_resumes_and_runs_every_day,
);
