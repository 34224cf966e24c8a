//! The web UI in a real headless Chromium, against databases with real runs: what a person
//! sees on each page, and what the buttons do. Screenshots of every page are kept (see
//! [`crate::browser`]).

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::examples::good_then_rolled_back;
use crate::harness::{KillOnDrop, Project, Served, wait_for};

const TOKEN: &str = "ui-test-token";

const PIPELINE: &str = r#"
[dag]
description = "A small pipeline the UI tests look at"
schedule = "0 3 * * *"

[params]
fail = "no"

[tasks.extract]
command = "echo extracted 42 rows"

[tasks.train]
depends_on = ["extract"]
command = '''
echo "training on 42 rows"
echo "accuracy 0.91" >> "$VANE_METRICS"
if [ {{ params.fail }} = yes ]; then echo "loss exploded at epoch 3" >&2; exit 3; fi
'''

[tasks.publish]
depends_on = ["train"]
command = "echo published"
"#;

#[test]
fn dag_list_grid_graph_and_attempt_pages_show_what_ran_and_why_it_failed() {
    let p = Project::new()
        .dag("train_daily", PIPELINE)
        .dag("broken", "[tasks.a]\ncomand = \"true\"\n");
    p.vane(&["run", "train_daily"]).success();
    p.vane(&["run", "train_daily", "--param", "fail=yes"])
        .failure();
    let served = p.serve(TOKEN);
    let base = format!("http://{}", served.addr);
    let b = Browser::start();

    // The DAG list: the DAG, its cadence and recent runs, and the file that does not
    // validate with the position of its error.
    b.goto(&format!("{base}/#/"));
    let row = b.wait_text(
        "tr[data-dag=train_daily]",
        &["train_daily", "0 3 * * *", "failed"],
    );
    assert!(
        row.contains("A small pipeline the UI tests look at"),
        "{row}"
    );
    assert_eq!(b.wait_count("tr[data-dag=train_daily] .dot", 2), 2);
    assert_eq!(
        b.texts("tr[data-dag=train_daily] .dot.state-failed").len(),
        1
    );
    let invalid = b.wait_text(".invalid-dag", &["broken.toml"]);
    assert!(
        invalid.contains("broken.toml:2:1"),
        "the error names file, line and column: {invalid}"
    );
    assert!(
        invalid.contains("hint: did you mean `command`?"),
        "and how to fix it: {invalid}"
    );
    b.wait_text(".card.bad", &["last run failed"]);
    // Only `vane run` ran here: the header warns that nothing starts scheduled runs.
    b.wait_text("#scheduler", &["no scheduler running"]);
    b.screenshot("dags");

    // The grid: a row per task, a column per run; the failed task is red in run 2 and
    // its downstream task is upstream_failed.
    b.goto(&format!("{base}/#/dags/train_daily"));
    b.wait_count("tr[data-task=train] .cell", 2);
    assert_eq!(
        b.texts("tr[data-task=train] .cell.state-success[data-run='1']")
            .len(),
        1
    );
    assert_eq!(
        b.texts("tr[data-task=train] .cell.state-failed[data-run='2']")
            .len(),
        1
    );
    assert_eq!(
        b.texts("tr[data-task=publish] .cell.state-upstream_failed[data-run='2']")
            .len(),
        1
    );
    b.screenshot("grid");

    // The graph: every task with an edge per dependency, colored by the chosen run.
    b.goto(&format!("{base}/#/dags/train_daily/graph?run=2"));
    b.wait_count("svg.graph g.node", 3);
    assert_eq!(b.texts("svg.graph path.edge").len(), 2);
    assert_eq!(
        b.texts("svg.graph g.node.state-failed[data-task=train]")
            .len(),
        1
    );
    assert_eq!(
        b.texts("svg.graph g.node.state-success[data-task=extract]")
            .len(),
        1
    );
    b.screenshot("graph");

    // A click on the red cell opens the attempt: exit code, params, metrics and the log,
    // with the line that says why.
    b.goto(&format!("{base}/#/dags/train_daily"));
    b.click("tr[data-task=train] .cell.state-failed");
    let meta = b.wait_text("main .kv", &["Exit code", "3"]);
    assert!(meta.contains(r#""fail":"yes""#), "params are shown: {meta}");
    b.wait_text("table.metrics", &["accuracy", "0.91"]);
    b.wait_text(
        "pre.log",
        &["training on 42 rows", "loss exploded at epoch 3"],
    );
    b.screenshot("attempt");

    // The run page lists every task with its state and offers to clear the failed ones.
    b.goto(&format!("{base}/#/runs/2"));
    b.wait_text("tr[data-task=publish]", &["upstream failed"]);
    b.wait_text("main button", &["Clear failed tasks"]);
    b.screenshot("run");

    // What failed, across DAGs.
    b.goto(&format!("{base}/#/runs?state=failed"));
    b.wait_text("main", &["The last 50 failed runs"]);
    let listed: Vec<String> = b.texts("main td[data-run]");
    assert_eq!(listed, vec!["#2".to_owned()]);

    // Trigger and Pause from the DAG list (the token was pasted in this browser before).
    b.goto(&format!("{base}/#/"));
    b.eval(
        "localStorage.setItem('vane-token', arguments[0]);",
        json!([TOKEN]),
    );
    b.click("tr[data-dag=train_daily] button");
    b.wait_text("#banner", &["Queued run 3 of train_daily"]);
    assert_eq!(p.show(3)["state"], "queued");
    b.click("tr[data-dag=train_daily] button.quiet");
    b.wait_text("tr[data-dag=train_daily]", &["paused", "Unpause"]);
    let dags = p.vane(&["dags", "--json"]).success().json();
    assert_eq!(dags[0]["paused"], true, "{dags:#}");

    // When vane goes away the page says so on its next refresh, rather than showing old news.
    drop(served);
    b.wait_text("#live", &["cannot reach vane"]);
    b.wait_text("main", &["No answer from vane", "still running?"]);
}

/// `vane run slow` in the background with its first attempt running, the UI served and a
/// browser open. The guard kills the run should an assertion fail first.
fn running_in_the_foreground(p: &Project) -> (std::process::Child, KillOnDrop, Served, Browser) {
    let run = p.command(&["run", "slow"]).spawn().expect("start vane run");
    let guard = KillOnDrop {
        pid: run.id(),
        comm: "vane",
    };
    let served = p.serve(TOKEN);
    let b = Browser::start();
    wait_for("the attempt to start", Duration::from_secs(30), || {
        (p.show(1)["tasks"][0]["attempts"][0]["state"] == "running").then_some(())
    });
    (run, guard, served, b)
}

#[test]
fn an_attempt_page_follows_a_running_task_and_turns_green_when_it_ends() {
    let p = Project::new().dag(
        "slow",
        r#"
[tasks.wait]
# Bounded, so that a failed test leaves no shell polling forever.
command = 'echo "waiting for the go file"; for i in $(seq 600); do [ -f go ] && break; sleep 0.1; done; echo "got it, done"'
"#,
    );
    let (mut run, _guard, served, b) = running_in_the_foreground(&p);
    b.goto(&format!("http://{}/#/runs/1/tasks/wait/1", served.addr));
    b.wait_text("main h1 + .badge", &["running"]);
    b.wait_text("pre.log", &["waiting for the go file"]);
    b.screenshot("attempt-running");

    // The page redraws every few seconds; the log box (and where the reader scrolled to) is
    // kept, not fetched again.
    b.eval(
        "document.querySelector('pre.log').dataset.mark = 'kept';",
        json!([]),
    );
    let before = b.texts("#live").join("");
    wait_for("the page to redraw", Duration::from_secs(30), || {
        (b.texts("#live").join("") != before).then_some(())
    });
    assert_eq!(
        b.eval(
            "return document.querySelector('pre.log').dataset.mark || null;",
            json!([])
        ),
        json!("kept")
    );

    // The log is followed as it grows, and the page redraws itself when the task ends.
    p.write("go", "");
    b.wait_text("pre.log", &["got it, done"]);
    b.wait_text("main h1 + .badge", &["success"]);
    assert!(run.wait().expect("vane run ends").success());
    b.screenshot("attempt-done");
}

#[test]
fn check_history_and_the_model_timeline_show_a_bad_candidate_rolled_back() {
    let p = good_then_rolled_back();
    let served = p.serve(TOKEN);
    let base = format!("http://{}", served.addr);
    let b = Browser::start();

    // The graph routes a long edge around the tasks between its ends: no edge passes through
    // a task it does not join (sampled along every path).
    b.goto(&format!("{base}/#/dags/churn_retrain/graph"));
    b.wait_count("svg.graph path.edge", 10);
    let crossings = b.eval(
        "const nodes = [...document.querySelectorAll('svg.graph g.node')].map((g) => {
           const m = /translate\\(([-\\d.]+),([-\\d.]+)\\)/.exec(g.getAttribute('transform'));
           const r = g.querySelector('rect');
           return { id: g.dataset.task, x: +m[1], y: +m[2], w: +r.getAttribute('width'), h: +r.getAttribute('height') };
         });
         const out = [];
         for (const p of document.querySelectorAll('svg.graph path.edge')) {
           const length = p.getTotalLength();
           for (let at = 0; at <= length; at += 4) {
             const q = p.getPointAtLength(at);
             for (const n of nodes) {
               if (n.id === p.dataset.from || n.id === p.dataset.to) continue;
               if (q.x > n.x + 1 && q.x < n.x + n.w - 1 && q.y > n.y + 1 && q.y < n.y + n.h - 1) {
                 out.push(`${p.dataset.from} -> ${p.dataset.to} crosses ${n.id}`);
               }
             }
           }
         }
         return [...new Set(out)];",
        json!([]),
    );
    assert_eq!(crossings, json!([]), "edges drawn through tasks");
    let long = b.eval(
        "return document.querySelector('svg.graph path.edge[data-from=make_eval][data-to=rollout]') !== null",
        json!([]),
    );
    assert_eq!(
        long,
        json!(true),
        "the example has the long edge make_eval -> rollout"
    );

    // A chart per check, a point per run, the bound drawn beside the values.
    b.goto(&format!("{base}/#/dags/churn_retrain/checks"));
    let agreement = b.wait_text("[data-check='check_labels · agreement']", &["pass"]);
    assert!(agreement.contains("bound >= 0.6"), "{agreement}");
    assert_eq!(
        b.wait_count(
            "[data-check='check_labels · agreement'] svg.chart circle",
            2
        ),
        2
    );
    assert_eq!(
        b.texts("[data-check='check_labels · agreement'] svg.chart line.bound")
            .len(),
        1
    );
    // Every series is a path that starts by moving the pen, also when its first run has no
    // value (a path starting with `L` draws nothing, and Chromium logs an error).
    let paths = b.eval(
        "return [...document.querySelectorAll('svg.chart path.series')].map(p => p.getAttribute('d'))",
        serde_json::json!([]),
    );
    let paths = paths.as_array().unwrap();
    assert!(!paths.is_empty());
    for d in paths {
        let d = d.as_str().unwrap_or_default();
        assert!(d.is_empty() || d.starts_with('M'), "{d}");
    }
    b.screenshot("checks");

    // An attempt of a built-in task says what kind of task it is, not `vane exec-builtin`.
    b.goto(&format!("{base}/#/runs/1/tasks/validate/1"));
    let page = b.wait_text("dl.kv", &["Kind", "validate"]);
    assert!(!page.contains("exec-builtin"), "{page}");

    // The model page: v1 stayed in production, v2 failed at the canary gate, and the
    // timeline says so with the numbers the gate saw.
    b.goto(&format!("{base}/#/models/churn_model"));
    b.wait_text("tr[data-version='1']", &["production"]);
    b.wait_text("tr[data-version='2']", &["failed"]);
    let timeline = b.wait_text(".timeline", &["canary gate failed", "restored"]);
    assert!(timeline.contains("production.accuracy"), "{timeline}");
    b.wait_text("h1 + .badge", &["v1 in production"]);
    b.screenshot("model");

    b.goto(&format!("{base}/#/models"));
    b.wait_text("tr[data-model=churn_model]", &["v1", "v2", "failed"]);
}

#[test]
fn the_alerts_inbox_names_who_is_on_call_and_acknowledges_with_the_token() {
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let p = Project::new()
        .dag(
            "flaky",
            "[tasks.fetch]\ncommand = \"echo 'upstream API answered 503' >&2; exit 1\"\n",
        )
        .dag("steady", "[tasks.ok]\ncommand = \"true\"\n");
    p.write(
        "vane.toml",
        &format!(
            r#"
[[alerts.rules]]
on = "task_failed"
severity = "critical"

[alerts.oncall]
people = ["dana", "eli"]
start = "{today}"
every = "1w"
"#
        ),
    );
    p.vane(&["alerts", "--evaluate"]).success();
    for _ in 0..3 {
        p.vane(&["run", "flaky"]).failure();
    }
    p.vane(&["alerts", "--evaluate"]).success();
    let served = p.serve(TOKEN);
    let b = Browser::start();

    b.goto(&format!("http://{}/#/alerts", served.addr));
    // Three failures are one alert with a count, and the rotation names who is on call.
    let row = b.wait_text("tr[data-alert='1']", &["critical", "flaky", "×3", "open"]);
    assert!(row.contains("task_failed"), "{row}");
    assert_eq!(b.texts("table.alerts tbody tr").len(), 1);
    b.wait_text(".oncall-now", &["On call now: dana"]);
    b.wait_text("table.rotation", &["dana", "eli"]);
    b.wait_text("#oncall", &["on call: dana"]);
    b.wait_text("#alert-count", &["1"]);
    b.screenshot("alerts");

    // Acknowledging asks for the token first, then records who and the verdict.
    b.click("tr[data-alert='1'] button[title^='acknowledge: it did not']");
    b.wait_count("dialog[open]", 1);
    b.type_into("#token-input", TOKEN);
    b.type_into("#user-input", "dana");
    b.click("#token-save");
    b.wait_text("tr[data-alert='1']", &["acknowledged", "by dana, noise"]);
    b.wait_text("#banner", &["acknowledged as noise"]);
    b.screenshot("alerts-acknowledged");
    let listed = p.vane(&["alerts", "--json"]).success().json();
    assert_eq!(listed[0]["acked_by"], "dana", "{listed:#}");
    assert_eq!(listed[0]["verdict"], "noise", "{listed:#}");

    // Snoozing and resolving from the inbox, with the token now remembered.
    b.click("tr[data-alert='1'] button:nth-of-type(2)");
    b.wait_text("#banner", &["snoozed until"]);
    b.wait_text("tr[data-alert='1']", &["snoozed until"]);
    b.click("tr[data-alert='1'] button:nth-of-type(1)");
    b.wait_text("#banner", &["Alert 1 resolved"]);
    b.wait_text("main", &["No open alerts"]);
    let all = p.vane(&["alerts", "--all", "--json"]).success().json();
    assert_eq!(all[0]["state"], "resolved", "{all:#}");
    assert_eq!(all[0]["resolved_by"], json!("user dana"), "{all:#}");
}

#[test]
fn a_running_run_is_stopped_from_its_page_and_the_foreground_vane_run_ends() {
    let p = Project::new().dag(
        "slow",
        r#"
[tasks.wait]
command = "exec sleep 120"
retries = 1

[tasks.after]
command = "echo after"
depends_on = ["wait"]
"#,
    );
    let (mut run, _guard, served, b) = running_in_the_foreground(&p);
    b.goto(&format!("http://{}/#/runs/1", served.addr));
    b.eval(
        "localStorage.setItem('vane-token', arguments[0]); localStorage.setItem('vane-user', 'gus');",
        json!([TOKEN]),
    );
    b.wait_text("main h1 + .badge", &["running"]);
    b.click("button.danger");
    b.wait_text("#banner", &["Asked run 1 to stop"]);
    // `vane run` owns the run: it sees the request, kills the task and ends, failed.
    let status = run.wait().expect("vane run ends");
    assert!(!status.success(), "{status:?}");
    b.wait_text("main h1 + .badge", &["failed"]);
    let show = p.show(1);
    assert!(
        show["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stopped by ")),
        "{show:#}"
    );
    assert_eq!(show["tasks"][0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(show["tasks"][1]["state"], "skipped", "{show:#}");
    b.screenshot("run-stopped");
}

#[test]
fn a_run_waiting_for_a_person_says_so_on_its_page_and_is_approved_there() {
    let p = crate::deploy::project("pass");
    crate::deploy::run(&p, "v1", "2026-11-01").success();
    let mut waiting = crate::deploy::start_waiting(&p, "few", "2026-11-02", "canary");
    let served = p.serve(TOKEN);
    let b = Browser::start();
    b.goto(&format!("http://{}/#/runs/2", served.addr));
    b.eval(
        "localStorage.setItem('vane-token', arguments[0]); localStorage.setItem('vane-user', 'hal');",
        json!([TOKEN]),
    );
    b.wait_text("main h1 + .badge", &["waiting for approval", "canary"]);
    b.wait_text(".waiting", &["Run 2 waits at stage canary"]);
    b.screenshot("run-waiting");
    b.click(".waiting button");
    b.wait_text("#banner", &["Approved canary of run 2"]);
    assert!(waiting.wait().expect("the run ends").success());
    b.wait_text("main h1 + .badge", &["success"]);
}

#[test]
fn a_rollout_waiting_for_a_person_is_approved_from_the_model_page() {
    let p = crate::deploy::project("pass");
    crate::deploy::run(&p, "v1", "2026-11-01").success();
    let mut waiting = crate::deploy::start_waiting(&p, "few", "2026-11-02", "canary");
    let served = p.serve(TOKEN);
    let b = Browser::start();
    b.goto(&format!("http://{}/#/models/churn", served.addr));
    // The token was pasted earlier in this browser (the alerts test goes through the dialog).
    b.eval(
        "localStorage.setItem('vane-token', arguments[0]); localStorage.setItem('vane-user', 'fay');",
        json!([TOKEN]),
    );
    let panel = b.wait_text(".waiting", &["Run 2 waits at stage canary", "v2"]);
    assert!(
        panel.contains("fewer than min_samples = 100"),
        "says why it waits: {panel}"
    );
    b.screenshot("model-waiting");

    b.click(".waiting button");
    b.wait_text("#banner", &["Approved canary of run 2"]);
    assert!(waiting.wait().expect("the run ends").success());
    b.wait_text("tr[data-version='2']", &["production"]);
    let timeline = b.wait_text(".timeline", &["approved by fay"]);
    assert!(timeline.contains("v2"), "{timeline}");
    assert!(b.texts(".waiting").is_empty(), "nothing waits any more");
    b.screenshot("model-approved");

    // Rolling back needs a reason; with one, the rollback command runs and v1 is back.
    b.click("button.danger");
    b.wait_text("#banner", &["Say why you roll back"]);
    b.type_into("input[placeholder=why]", "canary metrics looked off");
    b.click("button.danger");
    b.wait_text("#banner", &["Rolled churn back"]);
    b.wait_text("tr[data-version='1']", &["production"]);
    b.wait_text(".timeline", &["canary metrics looked off", "user fay"]);
    let restored = std::fs::read_to_string(p.path().join("serving/rollbacks.log"))
        .expect("the rollback command ran");
    assert!(restored.contains("restored v1"), "{restored}");
}

/// The Agents page lists each agent with its labels and slots, and each attempt waiting for an
/// agent with why; the run page says where its task waits.
#[test]
fn the_agents_page_shows_agents_and_what_waits_for_one() {
    let p = Project::new().dag(
        "gpu",
        "[tasks.train]\ncommand = \"echo trained\"\nruns_on = { gpu = \"a100\" }\n",
    );
    let mut run = p
        .command(&["run", "gpu"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start vane run");
    let _run = KillOnDrop {
        pid: run.id(),
        comm: "vane",
    };
    let mut cpu = p.daemon_via(
        &[],
        &[("VANE_HOST", "cpu-box")],
        &["agent", "--labels", "pool=cpu", "--slots", "3"],
    );
    cpu.wait_for_log(&["Agent ready."], Duration::from_secs(30));
    wait_for("the attempt handed out", Duration::from_secs(30), || {
        let listed = p.vane(&["agents", "--json"]).success().json();
        (listed["waiting"].as_array()?.len() == 1).then_some(())
    });
    let served = p.serve(TOKEN);
    let base = format!("http://{}", served.addr);
    let b = Browser::start();
    b.goto(&format!("{base}/#/agents"));
    b.wait_text(
        "tr[data-agent=cpu-box]",
        &["cpu-box", "pool=cpu", "0/3", "held"],
    );
    b.wait_text(
        "tr[data-waiting=train]",
        &["gpu=a100", "no live agent has these labels"],
    );
    b.goto(&format!("{base}/#/runs/1"));
    b.wait_text(
        "[data-dispatched=train]",
        &["attempt 1", "waits", "gpu=a100"],
    );
    run.kill().unwrap();
    run.wait().unwrap();
}

/// `vane serve` as the README starts it, with no token: the link it prints lets the person who
/// started it act at once (nobody else has the token), the Trigger button opens a form with the
/// DAG's params and a date, and the answer says that no scheduler will start the run.
#[test]
fn the_printed_link_lets_its_owner_trigger_with_params_and_says_no_scheduler_runs() {
    let p = Project::new().dag(
        "train",
        r#"
[params]
epochs = 3
lr = 0.1
note = "nightly"

[tasks.fit]
command = "echo {{ params.epochs }} {{ params.note }}"
"#,
    );
    let (served, link) = p.serve_as_documented();
    let token = link
        .split("#token=")
        .nth(1)
        .expect("the link carries a token");
    assert_eq!(token.len(), 32, "{link}");
    // Without the token, an action is refused: another local user cannot act.
    let refused = crate::http::request(&served.addr, "POST", "/api/dags/train/trigger", None, "{}");
    assert_eq!(refused.status, 401);

    let b = Browser::start();
    b.goto(&link);
    // The token left the address bar; the page is the DAG list.
    b.wait_text("main", &["train"]);
    let url = b.eval("return location.href", json!([]));
    assert!(!url.as_str().unwrap().contains("token"), "{url}");
    b.goto(&format!("http://{}/#/dags/train", served.addr));
    b.wait_text("main h1", &["train"]);
    b.click("main button:not(.quiet)");
    b.wait_count("dialog.trigger input[name=epochs]", 1);
    b.eval(
        "document.querySelector('dialog.trigger input[name=epochs]').value = '7';
         document.querySelector('dialog.trigger input[name=note]').value = 'by hand';
         document.querySelector('#trigger-date').value = '2026-03-01';",
        json!([]),
    );
    b.click("#trigger-submit");
    b.wait_text("#banner", &["Queued run 1", "no scheduler is running"]);
    let run = p.show(1);
    assert_eq!(
        run["params"],
        json!({ "epochs": 7, "lr": 0.1, "note": "by hand" }),
        "{run:#}"
    );
    assert!(
        run["logical_date"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01"),
        "{run:#}"
    );
    drop(served);
}

/// No page has a serious or critical accessibility violation (axe-core, WCAG 2.1 A and AA):
/// contrast, names of controls, links told apart by more than colour, a keyboard-reachable log.
#[test]
fn no_page_has_a_serious_accessibility_violation() {
    let p = good_then_rolled_back();
    let served = p.serve(TOKEN);
    let base = format!("http://{}", served.addr);
    let b = Browser::start();
    let pages = [
        ("#/", "main table, main .panel"),
        ("#/runs", "main table"),
        ("#/dags/churn_retrain", "main table"),
        ("#/dags/churn_retrain/graph", "svg.graph"),
        ("#/dags/churn_retrain/checks", "svg.chart"),
        ("#/dags/churn_retrain/metrics", "main .panel"),
        ("#/dags/churn_retrain/ticks", "main .panel"),
        ("#/runs/2", "main table"),
        ("#/runs/2/tasks/rollout/1", "pre.log"),
        ("#/models", "main table"),
        ("#/models/churn_model", "main table"),
        ("#/agents", "main .panel"),
        ("#/alerts", "main .panel"),
    ];
    let mut found = Vec::new();
    for (page, ready) in pages {
        b.goto(&format!("{base}/{page}"));
        b.wait_count(ready, 1);
        for violation in b.axe_violations() {
            found.push(format!("{page}: {violation}"));
        }
        // Headings go down one level at a time (h1, then h2, ...), as HTML checkers want.
        let skips = b.eval(
            "let last = 0; const out = [];
             for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
               const level = +h.tagName[1];
               if (level > last + 1) out.push(`${h.tagName} \"${h.textContent}\" after h${last}`);
               last = level;
             }
             return out;",
            json!([]),
        );
        for skip in skips.as_array().into_iter().flatten() {
            found.push(format!("{page}: heading level skipped: {skip}"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The run page of a failed run answers "what is different from the last good one?" at its
/// top, as `vane why` does: the same lead, the same differences in the same order.
#[test]
fn a_failed_runs_page_leads_with_what_differs_from_the_last_good_run() {
    let p = good_then_rolled_back();
    let answer = p.vane(&["why", "2", "--json"]).success().json();
    let lead = answer["lead"]["summary"]
        .as_str()
        .expect("a lead")
        .to_owned();
    let first = answer["differences"][0]["summary"]
        .as_str()
        .expect("a difference")
        .to_owned();
    let served = p.serve(TOKEN);
    let b = Browser::start();
    b.goto(&format!("http://{}/#/runs/2", served.addr));
    let shown = b.wait_text("section.why", &[&lead, &first, "Compared with run 1"]);
    // At the top: before the run's details and its tasks.
    let order = b.eval(
        "const why = document.querySelector('section.why');
         const tasks = document.querySelector('tr[data-task]');
         return why.compareDocumentPosition(tasks) === Node.DOCUMENT_POSITION_FOLLOWING",
        json!([]),
    );
    assert_eq!(
        order,
        json!(true),
        "the answer comes before the tasks: {shown}"
    );
    let listed = b.texts("section.why ol > li");
    assert_eq!(
        listed.len(),
        answer["differences"].as_array().unwrap().len(),
        "{listed:#?}"
    );
    assert!(listed[0].starts_with(&first), "{listed:#?}");
    b.screenshot("run-why");
    assert_eq!(b.axe_violations(), Vec::<String>::new());
}
