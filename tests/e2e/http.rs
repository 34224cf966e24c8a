//! `vane serve`: the HTTP API answers what the command line says, actions need the token,
//! and /metrics counts the runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::Project;

const DAG: &str = r#"
[params]
size = "small"

[tasks.speak]
command = "echo said {{ params.size }}"

[tasks.fail]
command = "exit 3"
"#;

const TOKEN: &str = "s3cret-token";

pub(crate) struct Response {
    pub(crate) status: u16,
    head: String,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request; the server closes the connection after answering.
pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to vane serve");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        addr,
        body.len()
    )
    .expect("send the request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .expect("a status")
        .parse()
        .expect("a number");
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None, "")
}

#[test]
fn reads_answer_what_the_command_line_says() {
    let p = Project::new().dag("talk", DAG);
    p.vane(&["run", "talk"]).code(1);
    let s = p.serve(TOKEN);

    let runs = get(&s.addr, "/api/runs");
    assert_eq!(runs.status, 200, "{}", runs.body);
    assert_eq!(runs.json(), Value::Array(p.runs()));

    let run = get(&s.addr, "/api/runs/1");
    assert_eq!(run.status, 200);
    assert_eq!(run.json(), p.show(1));

    let dags = get(&s.addr, "/api/dags").json();
    assert_eq!(dags, p.vane(&["dags", "--json"]).success().json());

    let failed = get(&s.addr, "/api/runs?dag=talk&state=failed").json();
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    let succeeded = get(&s.addr, "/api/runs?state=success").json();
    assert_eq!(succeeded, Value::Array(vec![]));

    let log = get(&s.addr, "/api/runs/1/tasks/speak/logs");
    assert_eq!((log.status, log.body.as_str()), (200, "said small\n"));
}

#[test]
fn errors_are_json_naming_what_is_missing() {
    let p = Project::new().dag("talk", DAG);
    p.vane(&["run", "talk"]).code(1);
    let s = p.serve(TOKEN);

    let missing = get(&s.addr, "/api/runs/99");
    assert_eq!(missing.status, 404);
    assert!(
        missing.json()["error"].as_str().unwrap().contains("99"),
        "{}",
        missing.body
    );

    let no_task = get(&s.addr, "/api/runs/1/tasks/nope/logs");
    assert_eq!(no_task.status, 404);
    let message = no_task.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("no task `nope`") && message.contains("speak"),
        "{message}"
    );

    let bad = get(&s.addr, "/api/runs/one");
    assert_eq!(bad.status, 404);
    assert!(
        bad.json()["error"]
            .as_str()
            .unwrap()
            .contains("no run `one`: run ids are whole numbers")
    );

    let unknown_dag = request(&s.addr, "POST", "/api/dags/nope/trigger", Some(TOKEN), "{}");
    assert_eq!(unknown_dag.status, 404);
    assert!(
        unknown_dag.json()["error"]
            .as_str()
            .unwrap()
            .contains("no DAG `nope`")
    );
}

#[test]
fn actions_need_the_token_and_then_work() {
    let p = Project::new().dag("talk", DAG);
    let s = p.serve(TOKEN);

    let refused = request(&s.addr, "POST", "/api/dags/talk/trigger", None, "{}");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let wrong = request(
        &s.addr,
        "POST",
        "/api/dags/talk/trigger",
        Some("guess"),
        "{}",
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        p.runs(),
        Vec::<Value>::new(),
        "a refused action changes nothing"
    );

    let body = r#"{"params": {"size": "large"}, "date": "2026-01-02"}"#;
    let queued = request(&s.addr, "POST", "/api/dags/talk/trigger", Some(TOKEN), body);
    assert_eq!(queued.status, 200, "{}", queued.body);
    let run = queued.json()["run_id"].as_i64().expect("a run id");
    let shown = p.show(run);
    assert_eq!(shown["state"], "queued");
    assert_eq!(shown["params"]["size"], "large");

    let again = request(&s.addr, "POST", "/api/dags/talk/trigger", Some(TOKEN), body);
    assert_eq!(
        again.status, 409,
        "one run per logical date: {}",
        again.body
    );

    let paused = request(&s.addr, "POST", "/api/dags/talk/pause", Some(TOKEN), "");
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(get(&s.addr, "/api/dags").json()[0]["paused"], true);
}

#[test]
fn metrics_count_the_runs_in_prometheus_text() {
    let p = Project::new().dag("talk", DAG);
    p.vane(&["run", "talk"]).code(1);
    p.vane(&["run", "talk", "--date", "2026-01-01"]).code(1);
    p.vane(&["trigger", "talk", "--date", "2026-01-02"])
        .success();
    let s = p.serve(TOKEN);

    let metrics = get(&s.addr, "/metrics");
    assert_eq!(metrics.status, 200);
    let mut samples = std::collections::HashMap::new();
    for line in metrics.body.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "not a comment Prometheus reads: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a series and a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(series.to_owned(), value);
    }
    assert_eq!(
        samples[r#"vane_runs_total{dag="talk",state="failed"}"#],
        2.0
    );
    assert_eq!(
        samples[r#"vane_task_attempts_total{dag="talk",state="success"}"#],
        2.0
    );
    assert_eq!(
        samples[r#"vane_task_attempts_total{dag="talk",state="failed"}"#],
        2.0
    );
    assert_eq!(
        samples[r#"vane_task_duration_seconds_count{dag="talk"}"#],
        4.0
    );
    assert_eq!(
        samples[r#"vane_task_duration_seconds_bucket{dag="talk",le="+Inf"}"#],
        4.0
    );
    assert_eq!(samples["vane_queued_runs"], 1.0);
    assert_eq!(samples["vane_running_tasks"], 0.0);
}

#[test]
fn openapi_lists_every_route() {
    let p = Project::new().dag("talk", DAG);
    let s = p.serve(TOKEN);
    let doc = get(&s.addr, "/api/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in [
        ("get", "/api/runs"),
        ("get", "/api/runs/{id}/tasks/{task}/logs"),
        ("post", "/api/dags/{id}/trigger"),
        ("post", "/api/alerts/{id}/ack"),
        ("get", "/metrics"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
}

/// The API does what its document says, as a third-party contract tester checks it with
/// every check it has (answers match their schemas, valid requests are taken and invalid ones
/// refused, statuses and headers are as documented, links between operations hold), against
/// a project with real history: runs that passed and failed, a model promoted and rolled
/// back, alerts. `st` is schemathesis; scripts/test installs it.
#[test]
fn schemathesis_finds_no_difference_between_the_api_and_its_document() {
    let p = crate::examples::good_then_rolled_back();
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["alerts", "--evaluate"]).success();
    let s = p.serve(TOKEN);
    let out = std::process::Command::new("st")
        .args(["run", &format!("http://{}/api/openapi.json", s.addr)])
        .args(["--checks", "all", "--max-examples", "40", "--seed", "7"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--no-color"])
        .current_dir(p.path())
        .output()
        .expect(
            "schemathesis (`st`) is on PATH: run the tests with scripts/test, which installs it",
        );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagree:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}

#[test]
fn a_public_address_without_a_token_is_refused() {
    let p = Project::new().dag("talk", DAG);
    let out = p
        .command(&["serve", "--http", "0.0.0.0:0"])
        .env_remove("VANE_API_TOKEN")
        .output()
        .expect("run vane serve");
    assert_eq!(
        out.status.code(),
        Some(4),
        "invalid set-up: a public address needs a token"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("--token-file"),
        "{stderr}"
    );
}

const LAB: &str = r#"
[tasks.train]
command = 'echo "accuracy 0.9" >> "$VANE_METRICS"; echo weights > "$VANE_WORK/model.txt"'
outputs = { model = "{{ work }}/model.txt" }

[tasks.report]
depends_on = ["train"]
command = "exit 4"
"#;

/// `vane ARGS... --json`, parsed.
fn cli_json(p: &Project, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    p.vane(&full).success().json()
}

#[test]
fn metrics_checks_artifacts_models_and_alerts_match_the_command_line() {
    let p = Project::new().dag("lab", LAB);
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["run", "lab"]).code(1);
    p.vane(&["alerts", "--evaluate"]).success();
    let s = p.serve(TOKEN);

    let metrics = get(&s.addr, "/api/dags/lab/metrics").json();
    assert_eq!(metrics, cli_json(&p, &["metrics", "lab"]));
    assert_eq!(metrics[0]["value"], 0.9);
    assert_eq!(
        get(&s.addr, "/api/dags/lab/checks").json(),
        cli_json(&p, &["checks", "lab"])
    );
    let artifacts = get(&s.addr, "/api/artifacts").json();
    assert_eq!(artifacts, cli_json(&p, &["artifacts"]));
    assert_eq!(artifacts[0]["name"], "model");
    assert_eq!(
        get(&s.addr, "/api/artifacts/model/lineage").json(),
        cli_json(&p, &["lineage", "model"])
    );
    assert_eq!(
        get(&s.addr, "/api/models").json(),
        cli_json(&p, &["models"])
    );
    let alerts = get(&s.addr, "/api/alerts").json();
    assert_eq!(alerts, cli_json(&p, &["alerts"]));
    assert_eq!(alerts[0]["rule"], "run_failed");

    for (path, named) in [
        ("/api/dags/ghost/metrics", "`ghost`"),
        ("/api/models/nope", "`nope`"),
        ("/api/artifacts/nope/lineage", "nope"),
        ("/api/runs/1/tasks/train/logs?attempt=7", "no attempt 7"),
        // Regression: an empty list, where `vane runs ghost` says no such DAG.
        ("/api/runs?dag=ghost", "no DAG `ghost`"),
        // Regression: an empty list, where `vane metrics lab --name nosuch` says that the
        // DAG never reported a metric by that name.
        ("/api/dags/lab/metrics?name=nosuch", "nosuch"),
    ] {
        let answer = get(&s.addr, path);
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
        let message = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(named), "{path}: {message}");
    }
}

#[test]
fn acknowledging_clearing_and_refused_rollout_decisions() {
    let p = Project::new().dag("lab", LAB);
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["run", "lab"]).code(1);
    p.vane(&["alerts", "--evaluate"]).success();
    let s = p.serve(TOKEN);
    let post = |path: &str, body: &str| request(&s.addr, "POST", path, Some(TOKEN), body);

    let id = get(&s.addr, "/api/alerts").json()[0]["id"]
        .as_i64()
        .unwrap();
    let acked = post(
        &format!("/api/alerts/{id}/ack"),
        r#"{"verdict": "real", "by": "ana"}"#,
    );
    assert_eq!(acked.status, 200, "{}", acked.body);
    let all = cli_json(&p, &["alerts", "--all"]);
    assert_eq!(all[0]["state"], "acknowledged");
    assert_eq!(all[0]["acked_by"], "ana");
    assert_eq!(all[0]["verdict"], "real");
    let bad = post(&format!("/api/alerts/{id}/ack"), r#"{"verdict": "maybe"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(post("/api/alerts/99/ack", "{}").status, 404);

    let cleared = post("/api/runs/1/clear", r#"{"failed_only": true}"#);
    assert_eq!(cleared.status, 200, "{}", cleared.body);
    let run = p.show(1);
    assert_eq!(run["state"], "queued", "queued for the scheduler to rerun");
    assert_eq!(crate::harness::task(&run, "report")["state"], "queued");
    assert_eq!(crate::harness::task(&run, "train")["state"], "success");

    // Who approves is evidence: the server's own user never stands in for them.
    let anonymous = post("/api/runs/1/approve", "{}");
    assert_eq!(anonymous.status, 400, "{}", anonymous.body);
    assert!(
        anonymous.body.contains("missing field `by`: Who approves")
            && anonymous.body.contains("never the user the server runs as"),
        "{}",
        anonymous.body
    );
    let approve = post("/api/runs/1/approve", r#"{"by": "ida"}"#);
    assert_eq!(approve.status, 409, "{}", approve.body);
    assert!(
        approve.json()["error"]
            .as_str()
            .unwrap()
            .contains("not running")
    );
    let reject = post("/api/runs/1/reject", r#"{"by": "ida"}"#);
    assert_eq!(
        reject.status, 400,
        "a rejection needs a reason: {}",
        reject.body
    );
    assert!(
        reject.json()["error"]
            .as_str()
            .unwrap()
            .contains("`reason`")
    );
}

#[test]
fn a_followed_log_streams_while_the_attempt_runs_from_the_scheduler() {
    let p = Project::new();
    let go = p.path().join("go");
    p.write_dag(
        "slow",
        &format!(
            "[tasks.talk]\ncommand = 'echo one; while [ ! -f {} ]; do sleep 0.05; done; echo two'\n",
            go.display()
        ),
    );
    let mut daemon = p.scheduler(&["--http", "127.0.0.1:0"]);
    let line = daemon.wait_for_log(&["serving the API on http://"], Duration::from_secs(30));
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    p.vane(&["trigger", "slow"]).success();
    daemon.wait_for(
        "the task to print its first line",
        Duration::from_secs(30),
        || (get(&addr, "/api/runs/1/tasks/talk/logs").body == "one\n").then_some(()),
    );

    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "GET /api/runs/1/tasks/talk/logs?follow=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .expect("send");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).expect("read the head");
    }
    line.clear();
    reader
        .read_line(&mut line)
        .expect("read the first log line");
    assert_eq!(line, "one\n", "what was logged so far comes at once");

    // The attempt is still running: the response goes on until it ends.
    std::fs::write(&go, "").expect("let the task finish");
    let mut rest = String::new();
    reader.read_to_string(&mut rest).expect("read to the end");
    assert_eq!(
        rest, "two\n",
        "new bytes arrive, and the response ends with the attempt"
    );
}

#[test]
fn one_dag_answers_its_tasks_edges_and_a_grid_of_runs() {
    let p = Project::new().dag(
        "chain",
        "[tasks.a]\ncommand = \"true\"\n\n[tasks.b]\ndepends_on = [\"a\"]\ncommand = \"exit 4\"\n",
    );
    p.vane(&["run", "chain"]).code(1);
    let s = p.serve(TOKEN);

    let dag = get(&s.addr, "/api/dags/chain");
    assert_eq!(dag.status, 200, "{}", dag.body);
    let dag = dag.json();
    assert_eq!(dag["task_list"][1]["id"], "b");
    assert_eq!(dag["task_list"][1]["upstream"], serde_json::json!(["a"]));
    assert_eq!(dag["task_list"][1]["kind"], "command");
    assert_eq!(dag["runs"][0]["tasks"]["a"]["state"], "success");
    assert_eq!(dag["runs"][0]["tasks"]["b"]["state"], "failed");
    assert_eq!(dag["recent"][0]["state"], "failed");

    let missing = get(&s.addr, "/api/dags/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no DAG `nope`"), "{}", missing.body);

    // Without [alerts.oncall] the rotation says it is not configured rather than failing.
    let oncall = get(&s.addr, "/api/oncall").json();
    assert_eq!(oncall["configured"], false);
    let status = get(&s.addr, "/api/status").json();
    assert_eq!(status["schedulers"], serde_json::json!([]));
}

#[test]
fn resolving_and_snoozing_alerts_need_the_token_and_say_what_is_wrong() {
    let p = Project::new().dag("talk", DAG);
    p.write("vane.toml", "[[alerts.rules]]\non = \"run_failed\"\n");
    p.vane(&["alerts", "--evaluate"]).success();
    p.vane(&["run", "talk"]).code(1);
    p.vane(&["alerts", "--evaluate"]).success();
    let s = p.serve(TOKEN);

    let unauthorized = request(&s.addr, "POST", "/api/alerts/1/resolve", None, "{}");
    assert_eq!(unauthorized.status, 401);
    let too_long = request(
        &s.addr,
        "POST",
        "/api/alerts/1/snooze",
        Some(TOKEN),
        r#"{"seconds": 2592000}"#,
    );
    assert_eq!(too_long.status, 400);
    assert!(
        too_long.body.contains("a snooze always ends"),
        "{}",
        too_long.body
    );
    let snoozed = request(
        &s.addr,
        "POST",
        "/api/alerts/1/snooze",
        Some(TOKEN),
        r#"{"seconds": 7200}"#,
    );
    assert_eq!(snoozed.status, 200, "{}", snoozed.body);
    assert!(snoozed.json()["snoozed_until"].is_string());

    let unknown = request(&s.addr, "POST", "/api/alerts/99/resolve", Some(TOKEN), "{}");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let resolved = request(
        &s.addr,
        "POST",
        "/api/alerts/1/resolve",
        Some(TOKEN),
        r#"{"by": "gil"}"#,
    );
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.json()["resolved_by"], "user gil");
    let stats = get(&s.addr, "/api/alerts/stats").json();
    assert_eq!(stats[0]["rule"], "run_failed");
    assert_eq!(stats[0]["fired"], 1);
}

/// An action's body must be a JSON object: `42`, `"x"` and `null` are refused and queue
/// nothing (each once queued a real run). A method a path does not take is answered 405 with
/// the methods it does take in `Allow`.
#[test]
fn bodies_that_are_not_objects_are_refused_and_405_says_what_is_allowed() {
    let p = Project::new().dag("talk", DAG);
    let s = p.serve(TOKEN);
    for body in ["42", "\"x\"", "null", "[1]"] {
        let r = request(&s.addr, "POST", "/api/dags/talk/trigger", Some(TOKEN), body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .contains("must be a JSON object"),
            "{}",
            r.body
        );
    }
    assert_eq!(
        get(&s.addr, "/api/runs").json(),
        Value::Array(vec![]),
        "nothing was queued"
    );
    let ok = request(&s.addr, "POST", "/api/dags/talk/trigger", Some(TOKEN), "{}");
    assert_eq!(ok.status, 200, "{}", ok.body);

    let wrong = request(&s.addr, "DELETE", "/api/dags/talk/trigger", Some(TOKEN), "");
    assert_eq!(wrong.status, 405, "{}", wrong.body);
    assert!(
        wrong.head.lines().any(|l| l == "Allow: POST"),
        "{}",
        wrong.head
    );
    let runs = request(&s.addr, "POST", "/api/runs", Some(TOKEN), "{}");
    assert_eq!(runs.status, 405);
    assert!(
        runs.head.lines().any(|l| l == "Allow: GET"),
        "{}",
        runs.head
    );
}
