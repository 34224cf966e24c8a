//! Artifacts, lineage and the task cache: what `vane artifacts`, `vane lineage`, `vane diff`
//! report after real runs, and which commands a cached task does not run.

use serde_json::Value;

use crate::harness::{Backend, Project, attempts, task};

/// A source file copied in as `raw`, prepared, and trained on; `train` counts its own runs in
/// `trained.log` and reports `accuracy` equal to the learning rate.
const PIPELINE: &str = r#"
[params]
lr = 0.1

[tasks.ingest]
command = 'cp data/source.csv "$VANE_WORK/raw.csv"'
inputs = { source = "data/source.csv" }
outputs = { raw = "{{ work }}/raw.csv" }

[tasks.prepare]
depends_on = ["ingest"]
command = 'mkdir -p "$VANE_WORK/prepared" && tr a-z A-Z < "$VANE_WORK/raw.csv" > "$VANE_WORK/prepared/rows.csv"'
inputs = ["raw"]
outputs = { prepared = "{{ work }}/prepared" }

[tasks.train]
depends_on = ["prepare"]
command = '''
echo trained >> trained.log
mkdir -p "{{ work }}/models/{{ run_id }}"
cat "$VANE_WORK/prepared/rows.csv" > "{{ work }}/models/{{ run_id }}/model.txt"
echo "lr=$VANE_PARAM_LR" >> "{{ work }}/models/{{ run_id }}/model.txt"
echo "accuracy $VANE_PARAM_LR" >> "$VANE_METRICS"
'''
inputs = ["prepared"]
outputs = { model = "{{ work }}/models/{{ run_id }}/model.txt" }
"#;

fn pipeline(cache: bool) -> Project {
    let dag = if cache {
        format!("{PIPELINE}cache = true\n")
    } else {
        PIPELINE.to_owned()
    };
    let p = Project::new().dag("churn", &dag);
    p.write("data/source.csv", "id,plan\n1,basic\n2,pro\n");
    p
}

/// `vane artifacts NAME --json`: the versions of one artifact.
fn versions(p: &Project, name: &str) -> Vec<Value> {
    match p.vane(&["artifacts", name, "--json"]).success().json() {
        Value::Array(v) => v,
        other => panic!("not a list: {other}"),
    }
}

fn trained(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join("trained.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn lineage_traces_a_model_to_the_data_it_was_built_from() {
    let p = pipeline(false);
    p.vane(&["run", "churn", "-p", "lr=0.3"]).success();

    let tree = p.vane(&["lineage", "model", "--json"]).success().json();
    assert_eq!(tree["artifact"]["name"], "model");
    assert_eq!(tree["artifact"]["version"], 1);
    let built = &tree["produced_by"];
    assert_eq!(
        (&built["run"], &built["task"], &built["attempt"]),
        (&Value::from(1), &Value::from("train"), &Value::from(1))
    );
    assert_eq!(built["params"]["lr"], 0.3);
    assert_eq!(built["dag_version"], p.show(1)["dag_version"]["id"]);

    let prepared = &tree["built_from"][0];
    assert_eq!(prepared["artifact"]["name"], "prepared");
    assert_eq!(prepared["artifact"]["kind"], "dir");
    assert_eq!(prepared["produced_by"]["task"], "prepare");
    let raw = &prepared["built_from"][0];
    assert_eq!(raw["artifact"]["name"], "raw");
    assert_eq!(raw["produced_by"]["task"], "ingest");
    let source = &raw["built_from"][0];
    assert_eq!(source["artifact"]["name"], "source");
    assert_eq!(
        source["produced_by"],
        Value::Null,
        "a file nobody wrote has no producer"
    );

    let text = p.vane(&["lineage", "model@1"]).success().stdout;
    for needle in [
        "model v1",
        "built by run 1 task train attempt 1",
        "prepared v1",
        "built by run 1 task prepare attempt 1",
        "raw v1",
        "source v1",
        "not written by a task",
        r#"params {"lr":0.3}"#,
    ] {
        assert!(text.contains(needle), "lineage lacks {needle:?}:\n{text}");
    }
    // A run's version, date and params are said once, at its first attempt in the tree.
    assert_eq!(text.matches("params ").count(), 1, "{text}");
    assert_eq!(text.matches("logical date").count(), 1, "{text}");

    // Downstream: what was built from the source file.
    let down = p.vane(&["lineage", "source"]).success().stdout;
    assert!(
        down.contains("read by run 1 task ingest") && down.contains("which wrote model v1"),
        "{down}"
    );
    p.vane(&["lineage", "model@7"])
        .failure()
        .stderr_contains("version 7 of artifact `model` is not recorded");
}

/// A version built from two inputs lists both under one `from:`, as one list.
#[test]
fn lineage_lists_every_input_of_an_attempt_under_one_heading() {
    let p = Project::new().dag(
        "join",
        r#"
[tasks.left]
command = 'echo l > "$VANE_WORK/left.csv"'
outputs = { left = "{{ work }}/left.csv" }

[tasks.right]
command = 'echo r > "$VANE_WORK/right.csv"'
outputs = { right = "{{ work }}/right.csv" }

[tasks.join]
depends_on = ["left", "right"]
command = 'cat "$VANE_WORK/left.csv" "$VANE_WORK/right.csv" > "$VANE_WORK/joined.csv"'
inputs = ["left", "right"]
outputs = { joined = "{{ work }}/joined.csv" }
"#,
    );
    p.vane(&["run", "join"]).success();
    let text = p.vane(&["lineage", "joined"]).success().stdout;
    assert_eq!(text.matches("from:").count(), 1, "{text}");
    assert!(
        text.contains("  from:\n    left v1 ") && text.contains("\n    right v1 "),
        "{text}"
    );
}

/// A mistyped name gets a guess and the command that lists every artifact, not a pointer to
/// `vane artifacts NAME`, which would only say "not found" again.
#[test]
fn lineage_of_an_unknown_artifact_suggests_the_name_meant() {
    let p = pipeline(false);
    p.vane(&["run", "churn"]).success();
    let out = p.vane(&["lineage", "modle"]).code(3);
    insta::assert_snapshot!("lineage_unknown_artifact", out.stderr);
    p.vane(&["lineage", "model@7"])
        .code(3)
        .stderr_contains("`vane artifacts model` lists its versions");
}

/// A run cleared after its DAG file changed moves on to the new version, but its earlier
/// attempts ran the old one: lineage names each attempt's version by its own hash, never by
/// the run's newer one.
#[test]
fn lineage_names_the_dag_version_an_attempt_ran_after_a_clear_changed_it() {
    let p = pipeline(false);
    p.vane(&["run", "churn"]).success();
    let first = p.show(1)["dag_version"].clone();
    p.write_dag("churn", &format!("# edited\n{PIPELINE}"));
    p.vane(&["clear", "1", "--task", "train", "--foreground"])
        .success();
    let second = p.show(1)["dag_version"].clone();
    assert_ne!(first["id"], second["id"], "the clear ran the edited file");

    let tree = p.vane(&["lineage", "prepared", "--json"]).success().json();
    let built = &tree["produced_by"];
    assert_eq!(built["task"], "prepare");
    assert_eq!(built["dag_version"], first["id"], "{tree:#}");
    assert_eq!(built["dag_hash"], first["hash"], "{tree:#}");
    let readers = tree["used_by"].as_array().unwrap();
    let by_version: Vec<(&Value, &Value)> = readers
        .iter()
        .map(|r| (&r["dag_version"], &r["dag_hash"]))
        .collect();
    assert_eq!(
        by_version,
        [
            (&first["id"], &first["hash"]),
            (&second["id"], &second["hash"])
        ],
        "{tree:#}"
    );
}

#[test]
fn versions_are_content_addressed() {
    let p = pipeline(false);
    p.vane(&["run", "churn"]).success();
    p.vane(&["run", "churn"]).success();
    for name in ["source", "raw", "prepared", "model"] {
        let v = versions(&p, name);
        assert_eq!(
            v.len(),
            1,
            "unchanged data is one version of `{name}`: {v:?}"
        );
    }

    p.write("data/source.csv", "id,plan\n1,basic\n2,pro\n3,enterprise\n");
    p.vane(&["run", "churn"]).success();
    for name in ["source", "raw", "prepared", "model"] {
        let v = versions(&p, name);
        assert_eq!(
            v.len(),
            2,
            "changed data is a new version of `{name}`: {v:?}"
        );
        assert_ne!(v[0]["hash"], v[1]["hash"]);
    }
    let tree = p.vane(&["lineage", "model", "--json"]).success().json();
    assert_eq!(tree["artifact"]["version"], 2);
    assert_eq!(tree["produced_by"]["run"], 3);
    assert_eq!(
        tree["built_from"][0]["built_from"][0]["artifact"]["version"],
        2
    );

    let listing = p.vane(&["artifacts"]).success().stdout;
    assert!(
        listing.contains("model") && listing.contains("2 (2 in all)"),
        "{listing}"
    );
}

#[test]
fn diff_shows_changed_params_versions_and_metric_deltas() {
    let p = pipeline(false);
    p.vane(&["run", "churn", "-p", "lr=0.1"]).success();
    p.write("data/source.csv", "id,plan\n9,pro\n");
    p.vane(&["run", "churn", "-p", "lr=0.25"]).success();

    let diff = p.vane(&["diff", "1", "2", "--json"]).success().json();
    assert_eq!(diff["dag_version_changed"], false);
    let lr = &diff["params"][0];
    assert_eq!(
        (&lr["name"], &lr["a"], &lr["b"]),
        (&"lr".into(), &0.1.into(), &0.25.into())
    );
    assert_eq!(lr["changed"], true);

    let artifact = |task: &str, direction: &str, name: &str| -> Value {
        diff["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["task"] == task && a["direction"] == direction && a["name"] == name)
            .unwrap_or_else(|| panic!("no {task} {direction} {name} in {diff:#}"))
            .clone()
    };
    let raw = artifact("prepare", "input", "raw");
    assert_eq!(
        (&raw["a"]["version"], &raw["b"]["version"]),
        (&1.into(), &2.into())
    );
    assert_eq!(raw["changed"], true);
    let model = artifact("train", "output", "model");
    assert_eq!(
        (&model["a"]["version"], &model["b"]["version"]),
        (&1.into(), &2.into())
    );

    let accuracy = &diff["metrics"][0];
    assert_eq!(
        (&accuracy["task"], &accuracy["name"]),
        (&"train".into(), &"accuracy".into())
    );
    let delta = accuracy["delta"].as_f64().unwrap();
    assert!((delta - 0.15).abs() < 1e-9, "delta {delta}");

    let text = p.vane(&["diff", "1", "2"]).success().stdout;
    for needle in ["lr", "0.25", "v1 (", "v2 (", "accuracy", "+0.15"] {
        assert!(text.contains(needle), "diff lacks {needle:?}:\n{text}");
    }
    // No float noise: the delta is 0.15, not 0.15000000000000002.
    for line in text.lines().filter(|l| l.contains("accuracy")) {
        assert!(line.trim_end().ends_with("+0.15"), "{line}");
    }
}

#[test]
fn a_cached_task_with_unchanged_inputs_does_not_run_and_its_outputs_come_back() {
    let p = pipeline(true);
    p.vane(&["run", "churn"]).success();
    assert_eq!(trained(&p), 1);
    let first = p.read_work("models/1/model.txt");

    p.vane(&["run", "churn"]).success();
    assert_eq!(trained(&p), 1, "the cached command did not run again");
    assert_eq!(
        p.read_work("models/2/model.txt"),
        first,
        "the output is restored at the path this run declares"
    );
    let show = p.show(2);
    let attempt = &attempts(&show, "train")[0];
    assert_eq!(attempt["state"], "success");
    assert_eq!(attempt["reason"], "cached: reused outputs of run 1");
    assert_eq!(
        attempt["metrics"]["accuracy"], 0.1,
        "the reused outputs keep their metrics"
    );
    p.vane(&["show", "2"])
        .success()
        .stdout_contains("cached: reused outputs of run 1");
    let log = p.logs(2, "train", None);
    assert!(
        log.contains("cached: reused outputs of run 1") && log.contains("did not run"),
        "{log}"
    );
    // The same version, linked to both runs.
    assert_eq!(versions(&p, "model").len(), 1);
    let model = p.vane(&["diff", "1", "2", "--json"]).success().json();
    assert!(
        model["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["changed"] == false),
        "{model:#}"
    );

    p.write("data/source.csv", "id,plan\n1,pro\n");
    p.vane(&["run", "churn"]).success();
    assert_eq!(trained(&p), 2, "a changed input runs the task again");
    assert_eq!(attempts(&p.show(3), "train")[0]["reason"], Value::Null);

    p.vane(&["run", "churn", "-p", "lr=0.5"]).success();
    assert_eq!(trained(&p), 3, "a changed param runs the task again");
}

fn a_declared_output_the_task_did_not_write_fails_the_attempt(backend: Backend) {
    let p = Project::on(backend).dag(
        "forgetful",
        r#"
[tasks.train]
command = "echo training"
outputs = { model = "{{ work }}/model.bin" }
"#,
    );
    p.vane(&["run", "forgetful"]).code(1);
    let show = p.show(1);
    let attempt = &attempts(&show, "train")[0];
    assert_eq!(attempt["state"], "failed");
    let reason = attempt["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("declared output `model` was not written:")
            && reason.ends_with("model.bin does not exist"),
        "{reason}"
    );
    let log = p.logs(1, "train", None);
    assert!(
        log.contains("training\nvane: declared output `model` was not written"),
        "{log}"
    );
    p.vane(&["artifacts", "model"])
        .failure()
        .stderr_contains("no artifact is named `model`");
}

fn a_cached_task_runs_again_on_another_day_even_when_it_reads_the_day_from_its_environment(
    backend: Backend,
) {
    let p = Project::on(backend).dag(
        "daily",
        r#"
[tasks.stamp]
command = 'echo ran >> runs.log; mkdir -p "$VANE_WORK/out"; echo "$VANE_DS" > "$VANE_WORK/out/day.txt"'
outputs = { day = "{{ work }}/out/day.txt" }
cache = true
"#,
    );
    let ran = |p: &Project| {
        std::fs::read_to_string(p.path().join("runs.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    p.vane(&["run", "daily", "--date", "2026-03-01"]).success();
    p.vane(&["run", "daily", "--date", "2026-03-02"]).success();
    assert_eq!(ran(&p), 2, "a new day is not yesterday's cache hit");
    assert_eq!(p.read_work("out/day.txt").trim(), "2026-03-02");
    p.vane(&["clear", "2", "--foreground"]).success();
    assert_eq!(ran(&p), 2, "the same day, unchanged: cached");
}

/// Training is the most expensive task there is: changing a param only the deploy step reads
/// must not retrain; changing one the training names (as a template or `$VANE_PARAM_...`)
/// must.
fn a_cached_task_reruns_only_when_a_param_it_uses_changes(backend: Backend) {
    let p = Project::on(backend).dag(
        "tune",
        r#"
[params]
lr = 0.1
epochs = 3
canary_samples = 100

[tasks.train]
command = 'echo "lr={{ params.lr }} epochs=$VANE_PARAM_EPOCHS" >> trained.log; mkdir -p "$VANE_WORK/m"; echo {{ params.lr }} > "$VANE_WORK/m/model.txt"'
outputs = { model = "{{ work }}/m/model.txt" }
cache = true

[tasks.deploy]
command = "echo deploying with {{ params.canary_samples }} samples"
depends_on = ["train"]
"#,
    );
    let trained = |p: &Project| {
        std::fs::read_to_string(p.path().join("trained.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    p.vane(&["run", "tune", "--date", "2026-03-01T01:00:00Z"])
        .success();
    p.vane(&[
        "run",
        "tune",
        "--date",
        "2026-03-01T02:00:00Z",
        "--param",
        "canary_samples=500",
    ])
    .success();
    assert_eq!(trained(&p), 1, "a deploy-only param does not retrain");
    let show = p.show(2);
    assert!(
        task(&show, "train")["reason"]
            .as_str()
            .or(attempts(&show, "train")[0]["reason"].as_str())
            .is_some_and(|r| r.contains("cached")),
        "{show:#}"
    );
    p.vane(&[
        "run",
        "tune",
        "--date",
        "2026-03-01T03:00:00Z",
        "--param",
        "lr=0.5",
    ])
    .success();
    assert_eq!(trained(&p), 2, "a param the command names retrains");
    p.vane(&[
        "run",
        "tune",
        "--date",
        "2026-03-01T04:00:00Z",
        "--param",
        "epochs=9",
    ])
    .success();
    assert_eq!(
        trained(&p),
        3,
        "a param the command reads from its environment retrains"
    );
}

crate::harness::on_both_backends!(
    a_cached_task_reruns_only_when_a_param_it_uses_changes,
    a_declared_output_the_task_did_not_write_fails_the_attempt,
    a_cached_task_runs_again_on_another_day_even_when_it_reads_the_day_from_its_environment,
);

/// With S3 as the content store, a cache hit is found and restored from there: the copy kept
/// by the first run is an object, not a file on this host, and the state folder holds none.
#[test]
fn a_cache_hit_restores_from_an_s3_content_store() {
    let server = vane_objects::testing::S3Server::start("127.0.0.1".parse().unwrap());
    let _bucket = server.bucket("cache", "");
    let p = {
        let p = pipeline(true)
            .env("AWS_ACCESS_KEY_ID", vane_objects::testing::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", vane_objects::testing::SECRET_KEY);
        p.write(
            "vane.toml",
            &format!(
                "[scheduler]\nstorage = \"{}\"\n",
                server.url("cache", "team")
            ),
        );
        p
    };
    p.vane(&["run", "churn"]).success();
    let first = p.read_work("models/1/model.txt");
    let stored = versions(&p, "model")[0]["stored"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stored.starts_with("s3://cache/team/artifacts/sha256/"),
        "{stored}"
    );
    assert!(!p.path().join(".vane/artifacts/sha256").exists());

    p.vane(&["run", "churn"]).success();
    assert_eq!(trained(&p), 1, "the cached command did not run again");
    assert_eq!(p.read_work("models/2/model.txt"), first);
    assert_eq!(
        attempts(&p.show(2), "train")[0]["reason"],
        "cached: reused outputs of run 1"
    );
}

/// `vane diff` of runs of two different DAGs says so, instead of calling the second DAG's
/// version a change of the first's; a metric that did not move shows `0`, not `+0`.
#[test]
fn a_diff_of_two_dags_says_so_and_an_unmoved_metric_is_zero() {
    let task = "[tasks.t]\ncommand = 'echo \"acc 0.5\" >> \"$VANE_METRICS\"'\n";
    let p = Project::new().dag("one", task).dag("two", task);
    p.vane(&["run", "one"]).success();
    p.vane(&["run", "two"]).success();
    p.vane(&["run", "one", "--date", "2026-01-01"]).success();

    let text = p.vane(&["diff", "1", "2"]).success().stdout;
    let version = text
        .lines()
        .find(|l| l.starts_with("dag version:"))
        .unwrap();
    assert!(version.ends_with("two different DAGs"), "{text}");

    let text = p.vane(&["diff", "1", "3"]).success().stdout;
    let version = text
        .lines()
        .find(|l| l.starts_with("dag version:"))
        .unwrap();
    assert!(
        !version.contains("changed") && !version.contains("different"),
        "{text}"
    );
    let acc = text.lines().find(|l| l.contains("acc")).unwrap();
    assert!(acc.trim_end().ends_with(" 0"), "{text}");
}
