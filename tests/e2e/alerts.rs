//! Alerts: derived from the recorded history by `vane alerts --evaluate`, deduplicated,
//! cooled down, resolved by the next success, judged by people, and sent to a real webhook.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::harness::{Backend, Project};

/// A task that fails when run with `--param fail=true`.
const FLAPPY: &str = r#"
[params]
fail = false

[tasks.work]
command = "test {{ params.fail }} != true"
"#;

/// A local HTTP server that answers 200 to every request and keeps each JSON body.
struct Hook {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    fn start() -> Self {
        Self::listen(TcpListener::bind("127.0.0.1:0").expect("bind a local port"))
    }

    /// On a port chosen before, where nothing listened until now.
    fn start_on(port: u16) -> Self {
        Self::listen(TcpListener::bind(("127.0.0.1", port)).expect("bind the chosen port"))
    }

    fn listen(listener: TcpListener) -> Self {
        let port = listener.local_addr().expect("local address").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        assert!(head.starts_with("POST "), "a webhook POSTs: {head}");
                        break Some(body[..length].to_owned());
                    }
                };
                if let Some(body) = body {
                    let value = serde_json::from_str(&body).expect("the body is JSON");
                    seen.lock().expect("lock").push(value);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Hook { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> Vec<Value> {
        self.bodies.lock().expect("lock").clone()
    }
}

fn date(day: usize) -> String {
    format!("2026-01-{:02}", day + 1)
}

fn run(p: &Project, day: usize, fail: bool) {
    let out = p.vane(&[
        "run",
        "flappy",
        "--date",
        &date(day),
        "--param",
        &format!("fail={fail}"),
    ]);
    if fail {
        out.failure();
    } else {
        out.success();
    }
}

fn alerts(p: &Project, all: bool) -> Vec<Value> {
    let mut args = vec!["alerts", "--json"];
    if all {
        args.push("--all");
    }
    p.vane(&args)
        .success()
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_flapping_task_is_one_alert_with_a_count_and_one_notification_naming_who_is_on_call() {
    let hook = Hook::start();
    // The rotation started two weeks and a day ago with alice: this week is carol's.
    let start = (chrono::Utc::now() - chrono::TimeDelta::days(15))
        .format("%Y-%m-%d")
        .to_string();
    let p = Project::new().dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        &format!(
            r#"
[[alerts.rules]]
on = "task_failed"
severity = "critical"
channels = ["hook"]
cooldown = "1h"

[alerts.channels.hook]
kind = "webhook"
url = "{}"

[alerts.oncall]
people = ["alice", "bob", "carol"]
start = "{start}"
every = "1w"
"#,
            hook.url()
        ),
    );
    // Fails, recovers, fails again: five failures with an evaluation after every run.
    for day in 0..9 {
        run(&p, day, day % 2 == 0);
        p.vane(&["alerts", "--evaluate"]).success();
    }

    let open = alerts(&p, false);
    assert_eq!(open.len(), 1, "one alert, not five: {open:#?}");
    assert_eq!(open[0]["count"], 5);
    assert_eq!(open[0]["task"], "work");
    assert_eq!(open[0]["state"], "open");
    assert_eq!(alerts(&p, true).len(), 1, "no closed duplicates either");

    let received = hook.received();
    assert_eq!(
        received.len(),
        1,
        "the cooldown holds the other four: {received:#?}"
    );
    let payload = &received[0];
    assert_eq!(payload["oncall"], "carol");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["alerts"][0]["dag"], "flappy");
    assert_eq!(payload["alerts"][0]["on"], "task_failed");
}

fn a_rule_marked_noise_five_times_in_six_shows_as_noise_with_a_suggested_change(backend: Backend) {
    let p = Project::on(backend).dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        "[[alerts.rules]]\non = \"task_failed\"\ncooldown = \"0s\"\n",
    );
    for round in 0..6 {
        run(&p, 2 * round, true);
        p.vane(&["alerts", "--evaluate"]).success();
        let open = alerts(&p, false);
        assert_eq!(open.len(), 1, "{open:#?}");
        let id = open[0]["id"].to_string();
        let verdict = if round == 0 { "--real" } else { "--noise" };
        p.vane(&["ack", &id, verdict, "--by", "dana"])
            .success()
            .stdout_contains("acknowledged by dana");
        run(&p, 2 * round + 1, false);
        p.vane(&["alerts", "--evaluate"]).success();
    }

    let stats = p.vane(&["alerts", "--stats", "--json"]).success().json();
    let rule = &stats[0];
    assert_eq!(rule["rule"], "task_failed");
    assert_eq!(rule["fired"], 6);
    assert_eq!(rule["real"], 1);
    assert_eq!(rule["noise"], 5);
    let precision = rule["precision"].as_f64().expect("a precision");
    assert!((precision - 1.0 / 6.0).abs() < 1e-9, "{precision}");
    p.vane(&["alerts", "--stats"])
        .success()
        .stdout_contains("17%")
        .stdout_contains("rule `task_failed` is mostly noise")
        .stdout_contains("add `retries = 2`")
        .stdout_contains("[tasks.work] of DAG `flappy`");
}

fn the_next_successful_run_resolves_an_alert_and_a_fixed_dag_counts_it_as_real(backend: Backend) {
    let p = Project::on(backend).dag("flappy", "[tasks.work]\ncommand = \"exit 3\"\n");
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["run", "flappy", "--date", "2026-01-01"]).failure();
    p.vane(&["alerts", "--evaluate"]).success();
    p.vane(&["alerts"])
        .success()
        .stdout_contains("run_failed")
        .stdout_contains("open");

    p.write_dag("flappy", "[tasks.work]\ncommand = \"exit 0\"\n");
    p.vane(&["run", "flappy", "--date", "2026-01-02"]).success();
    p.vane(&["alerts", "--evaluate"]).success();
    p.vane(&["alerts"])
        .success()
        .stdout_contains("no open alerts");
    let all = alerts(&p, true);
    assert_eq!(all[0]["state"], "resolved");
    assert_eq!(all[0]["resolved_by"], "run 2");
    assert_eq!(all[0]["verdict"], "real", "a change to the DAG fixed it");
    assert_eq!(all[0]["verdict_source"], "fix");
}

#[test]
fn a_webhook_that_is_down_is_reported_and_the_alert_is_kept() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let p = Project::new().dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        &format!(
            "[[alerts.rules]]\non = \"run_failed\"\nchannels = [\"hook\"]\n\
             [alerts.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/\"\nretries = 0\n"
        ),
    );
    run(&p, 0, true);
    p.vane(&["alerts", "--evaluate"])
        .code(1)
        .stderr_contains("could not notify hook")
        .stderr_contains("cannot connect");
    assert_eq!(alerts(&p, false).len(), 1);
}

/// Issue 11: a webhook that was down when the alert fired started the cooldown, and nothing
/// was sent for an hour although nothing had been delivered. The notification is now retried
/// with backoff until delivered, and the cooldown counts from the delivery.
fn a_notification_to_a_webhook_that_was_down_arrives_on_a_retry_and_then_cools_down(
    backend: Backend,
) {
    // A port nothing listens on: connections are refused.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let p = Project::on(backend).dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        &format!(
            r#"
[alerts]
retry_backoff = "1s"      # the first retry is due a second after the failed try

[[alerts.rules]]
on = "run_failed"
channels = ["hook"]
cooldown = "1h"

[alerts.channels.hook]
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
retries = 0
timeout = "5s"
"#
        ),
    );
    run(&p, 0, true);
    p.vane(&["alerts", "--evaluate"])
        .code(1)
        .stderr_contains("could not notify hook")
        .stderr_contains("cannot connect")
        .stderr_contains("tried again at");
    let listed = alerts(&p, false);
    let delivery = &listed[0]["delivery"];
    assert_eq!(delivery["state"], "pending", "{listed:#?}");
    assert_eq!(delivery["attempts"], 1);
    assert!(delivery["retry_at"].is_string(), "{delivery}");
    assert!(
        delivery["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot connect")),
        "{delivery}"
    );
    assert!(
        listed[0]["last_notified_at"].is_null(),
        "no cooldown started"
    );
    p.vane(&["alerts"])
        .success()
        .stdout_contains("UNDELIVERED (1 tries, retry at");

    // The webhook comes up; once the backoff has passed, the retry delivers.
    let hook = Hook::start_on(port);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    p.vane(&["alerts", "--evaluate"])
        .success()
        .stderr_contains("notified hook (try 2): #");
    let received = hook.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["alerts"][0]["dag"], "flappy");
    assert!(
        received[0]["alerts"][0].get("delivery").is_none(),
        "the receiver is not told how earlier tries went"
    );
    let listed = alerts(&p, false);
    assert_eq!(listed[0]["delivery"]["state"], "delivered", "{listed:#?}");
    assert_eq!(listed[0]["delivery"]["attempts"], 2);
    assert!(listed[0]["last_notified_at"].is_string());
    let out = p.vane(&["alerts"]).success();
    assert!(!out.stdout.contains("UNDELIVERED"), "{}", out.stdout);

    // It fails again within the hour after the delivery: counted, not sent.
    run(&p, 1, true);
    p.vane(&["alerts", "--evaluate"])
        .success()
        .stderr_contains("not sent: cooldown: delivered at");
    assert_eq!(hook.received().len(), 1);
    assert_eq!(alerts(&p, false)[0]["count"], 2);
}

fn snoozes_always_end_and_acknowledging_a_missing_alert_says_how_to_find_one(backend: Backend) {
    let p = Project::on(backend).dag("flappy", FLAPPY);
    p.vane(&["snooze", "1", "--for", "30d"])
        .code(4)
        .stderr_contains("a snooze always ends");
    p.vane(&["ack", "7", "--noise"])
        .code(3)
        .stderr_contains("there is no alert 7; `vane alerts --all` lists them");
}

#[test]
fn a_burst_of_alerts_found_at_once_is_one_notification_per_channel() {
    let hook = Hook::start();
    let p = Project::new().dag(
        "burst",
        "[tasks.a]\ncommand = \"exit 1\"\n[tasks.b]\ncommand = \"exit 1\"\n[tasks.c]\ncommand = \"exit 1\"\n",
    );
    p.write(
        "vane.toml",
        &format!(
            "[[alerts.rules]]\non = \"task_failed\"\nchannels = [\"hook\"]\n\
             [alerts.channels.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url()
        ),
    );
    p.vane(&["run", "burst"]).failure();
    p.vane(&["alerts", "--evaluate"]).success();
    let received = hook.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let mut tasks: Vec<&str> = received[0]["alerts"]
        .as_array()
        .expect("a list of alerts")
        .iter()
        .filter_map(|a| a["task"].as_str())
        .collect();
    // The three tasks run at once; they fail in any order.
    tasks.sort_unstable();
    assert_eq!(tasks, ["a", "b", "c"]);
    assert!(
        received[0]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("3 alerts")),
        "{}",
        received[0]["title"]
    );
}

fn mistakes_in_the_alert_config_are_reported_like_a_compiler_with_fixes(backend: Backend) {
    let p = Project::on(backend).dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        r#"[[alerts.rules]]
on = "task_fialed"
channels = ["pagr"]
cooldown = "soon"

[alerts.channels.pager]
kind = "webhook"
url = "https://events.pagerduty.com/v2/enqueue"
ca_file = "certs/pagerduty-ca.pem"

[alerts.oncall]
people = ["alice"]
start = "2026-01-05"
every = "fortnight"
"#,
    );
    let out = p.vane(&["alerts"]).code(4);
    insta::assert_snapshot!("alerts_config_errors", out.stderr);
}

fn a_ca_file_is_read_from_the_folder_of_the_config_that_names_it(backend: Backend) {
    let p = Project::on(backend).dag("flappy", FLAPPY);
    let config = "[alerts.channels.pager]\nkind = \"webhook\"\nurl = \"https://alerts.internal/hook\"\nca_file = \"ca.pem\"\n";
    p.write("ops/vane.toml", config);
    p.write(
        "ops/ca.pem",
        include_str!("../../crates/vane-alerts/tests/fixtures/ca.pem"),
    );
    p.vane(&["alerts", "--config", "ops/vane.toml"]).success();
    p.write("vane.toml", config);
    let out = p.vane(&["alerts"]).code(4);
    assert!(
        out.stderr.contains("ca_file `ca.pem` does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_scheduler_sends_the_alert_of_a_run_that_failed_without_being_asked() {
    let hook = Hook::start();
    let p = Project::new().dag("flappy", FLAPPY);
    p.write(
        "vane.toml",
        &format!(
            r#"
[[alerts.rules]]
on = "run_failed"
channels = ["hook"]

[alerts.channels.hook]
kind = "webhook"
url = "{}"
"#,
            hook.url()
        ),
    );
    let mut daemon = p.scheduler(&[]);
    daemon.wait_for_log(&["Scheduler starting."], std::time::Duration::from_secs(30));
    p.vane(&["trigger", "flappy", "--param", "fail=true"])
        .success();
    let bodies = crate::harness::wait_for(
        "the scheduler to deliver the alert",
        std::time::Duration::from_secs(60),
        || Some(hook.received()).filter(|b| !b.is_empty()),
    );
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].to_string().contains("flappy"), "{bodies:?}");
    daemon.terminate(std::time::Duration::from_secs(30));
}

/// Fails like FLAPPY, and says in its own file who should hear about it.
const FLAPPY_WITH_RULE: &str = r#"
[params]
fail = false

[tasks.work]
command = "test {{ params.fail }} != true"

[[alerts]]
on = "task_failed"
task = "work"
severity = "critical"
"#;

fn a_rule_in_a_dag_file_alerts_on_that_dag_with_no_rule_in_the_config(backend: Backend) {
    let p = Project::on(backend)
        .dag("flappy", FLAPPY_WITH_RULE)
        .dag("quiet", "[tasks.work]\ncommand = \"exit 1\"\n")
        .dag("broken", "[tasks.work]\ncomand = \"true\"\n");
    run(&p, 0, true);
    p.vane(&["run", "quiet"]).failure();
    p.vane(&["alerts", "--evaluate"]).success();

    let open = alerts(&p, false);
    assert_eq!(open.len(), 1, "only flappy has a rule: {open:#?}");
    assert_eq!(open[0]["rule"], "task_failed:flappy.work");
    assert_eq!(open[0]["dag"], "flappy");
    assert_eq!(open[0]["task"], "work");
    assert_eq!(open[0]["severity"], "critical");
    p.vane(&["alerts", "--stats"])
        .success()
        .stdout_contains("task_failed:flappy.work");
}

#[test]
fn a_dag_rule_naming_a_channel_the_config_lacks_is_reported_and_every_rule_still_fires() {
    let hook = Hook::start();
    let p = Project::new()
        .dag(
            "typo",
            "[tasks.work]\ncommand = \"exit 1\"\n\n[[alerts]]\non = \"run_failed\"\nchannels = [\"hoook\"]\n",
        )
        .dag(
            "routed",
            "[tasks.work]\ncommand = \"exit 1\"\n\n[[alerts]]\non = \"run_failed\"\nchannels = [\"hook\"]\n",
        );
    p.write(
        "vane.toml",
        &format!(
            "[alerts.channels.hook]\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url()
        ),
    );
    // `vane validate` reads DAG files alone: it cannot know the config's channels.
    p.vane(&["validate"]).success();
    p.vane(&["run", "typo"]).failure();
    p.vane(&["run", "routed"]).failure();
    p.vane(&["alerts", "--evaluate"])
        .success()
        .stderr_contains("rule `run_failed:typo` of DAG `typo` names channel `hoook`")
        .stderr_contains("dags/typo.toml:6:13")
        .stderr_contains("did you mean `hook`?");

    let mut dags: Vec<String> = alerts(&p, false)
        .iter()
        .filter_map(|a| a["dag"].as_str().map(str::to_owned))
        .collect();
    dags.sort();
    assert_eq!(dags, ["routed", "typo"], "the typo's alert is recorded too");
    let received = hook.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0]["alerts"][0]["dag"], "routed");
}

fn the_scheduler_evaluates_dag_file_rules_without_an_alerts_config(backend: Backend) {
    let p = Project::on(backend).dag("flappy", FLAPPY_WITH_RULE);
    let mut daemon = p.scheduler(&[]);
    daemon.wait_for_log(&["Scheduler starting."], std::time::Duration::from_secs(30));
    p.vane(&["trigger", "flappy", "--param", "fail=true"])
        .success();
    let open = daemon.wait_for(
        "the scheduler to raise the DAG's alert",
        std::time::Duration::from_secs(60),
        || Some(alerts(&p, false)).filter(|a| !a.is_empty()),
    );
    assert_eq!(open[0]["rule"], "task_failed:flappy.work", "{open:#?}");
    daemon.terminate(std::time::Duration::from_secs(30));
}

crate::harness::on_both_backends!(
    a_notification_to_a_webhook_that_was_down_arrives_on_a_retry_and_then_cools_down,
    a_rule_marked_noise_five_times_in_six_shows_as_noise_with_a_suggested_change,
    the_next_successful_run_resolves_an_alert_and_a_fixed_dag_counts_it_as_real,
    snoozes_always_end_and_acknowledging_a_missing_alert_says_how_to_find_one,
    mistakes_in_the_alert_config_are_reported_like_a_compiler_with_fixes,
    a_ca_file_is_read_from_the_folder_of_the_config_that_names_it,
    a_rule_in_a_dag_file_alerts_on_that_dag_with_no_rule_in_the_config,
    the_scheduler_evaluates_dag_file_rules_without_an_alerts_config,
);
