//! `vane validate`, broken files next to good ones, `vane schema` and `vane graph`.

use crate::harness::Project;

const GOOD: &str = r#"
[dag]
description = "a diamond"

[tasks.extract]
command = 'echo extract >> "$VANE_WORK/good.ran"'

[tasks.clean]
command = "echo clean"
depends_on = ["extract"]

[tasks.features]
command = "echo features"
depends_on = ["extract"]

[tasks.train]
command = "echo train"
depends_on = ["clean", "features"]
"#;

/// Seven problems: unknown keys, a bad time zone, a missing command, an unknown template
/// variable, a missing dependency and a wrong type.
const BAD_ONE: &str = r#"[dag]
schedul = "0 2 * * *"
timezone = "Europe/Pariss"

[tasks.a]
comand = "echo a"

[tasks.b]
command = "echo {{ dss }}"
depends_on = ["missing"]
retries = "3"
"#;

/// Four problems: a number out of range, an unknown parameter, a bad duration, a cycle.
const BAD_TWO: &str = r#"[dag]
max_active_tasks = 0

[params]
n = 3

[tasks.x]
command = "echo {{ params.m }}"
timeout = "5 minutes"

[tasks.y]
command = "echo y"
depends_on = ["z"]

[tasks.z]
command = "echo z"
depends_on = ["y"]
"#;

fn mixed_project() -> Project {
    Project::new()
        .dag("good", GOOD)
        .dag("bad_one", BAD_ONE)
        .dag("bad_two", BAD_TWO)
}

#[test]
fn validate_reports_every_problem_of_every_broken_file() {
    let p = mixed_project();
    let out = p.vane(&["validate"]).code(1);
    assert_eq!(out.stdout, "", "problems go to stderr");
    for location in [
        "dags/bad_one.toml:2:1",
        "dags/bad_one.toml:3:12",
        "dags/bad_one.toml:6:1",
        "dags/bad_one.toml:9:17",
        "dags/bad_one.toml:10:15",
        "dags/bad_one.toml:11:11",
        "dags/bad_two.toml:2:20",
        "dags/bad_two.toml:8:17",
        "dags/bad_two.toml:9:11",
        "dags/bad_two.toml:13:15",
    ] {
        assert!(
            out.stderr.contains(location),
            "no diagnostic at {location}:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains("good.toml"),
        "the good file has no problems:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .trim_end()
            .ends_with("failed: 10 errors, 0 warnings in 2 of 3 files"),
        "summary line:\n{}",
        out.stderr
    );
    insta::assert_snapshot!("validate_two_broken_files", out.stderr);
}

#[test]
fn validate_can_check_single_files() {
    let p = mixed_project();
    p.vane(&["validate", "dags/good.toml"])
        .success()
        .stdout_contains("ok: 1 DAG, 4 tasks");
    let out = p.vane(&["validate", "dags/bad_two.toml"]).code(1);
    assert!(out.stderr.contains("in 1 of 1 file"), "{}", out.stderr);
    assert!(!out.stderr.contains("bad_one"), "{}", out.stderr);
    p.vane(&["validate", "dags/nonexistent.toml"]).failure();
}

#[test]
fn validate_passes_a_folder_of_good_files() {
    let p = Project::new()
        .dag("good", GOOD)
        .dag("other", "[tasks.only]\ncommand = \"true\"\n");
    let out = p.vane(&["validate"]).success();
    assert_eq!(out.stdout, "ok: 2 DAGs, 5 tasks\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn a_broken_file_never_stops_the_good_dags() {
    let p = mixed_project();
    p.vane(&["run", "good"]).success();
    assert_eq!(p.show(1)["state"], "success");
    assert_eq!(p.read_work("good.ran"), "extract\n");

    let out = p.vane(&["dags"]).success();
    let good_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("good "))
        .unwrap_or_else(|| panic!("`good` is not listed:\n{}", out.stdout));
    assert!(good_line.contains(" 4 "), "task count: {good_line}");
    assert!(good_line.contains("success"), "last run: {good_line}");
    for (file, errors) in [("dags/bad_one.toml", 6), ("dags/bad_two.toml", 4)] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with("invalid: ")
                && l.contains(file)
                && l.contains(&format!("{errors} errors"))),
            "{file} is not flagged:\n{}",
            out.stdout
        );
    }

    let json = p.vane(&["dags", "--json"]).success().json();
    let items = json.as_array().expect("a list");
    let good = items.iter().find(|d| d["id"] == "good").expect("good");
    assert_eq!(good["valid"], true);
    assert_eq!(good["tasks"], 4);
    assert_eq!(good["last_run"]["state"], "success");
    for id in ["bad_one", "bad_two"] {
        let bad = items
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {json:#}"));
        assert_eq!(bad["valid"], false);
        let errors = bad["errors"].as_array().expect("errors");
        assert!(!errors.is_empty());
        assert!(
            errors.iter().all(|e| e
                .as_str()
                .is_some_and(|e| e.starts_with(&format!("dags/{id}.toml:")))),
            "{errors:#?}"
        );
    }
}

#[test]
fn running_a_broken_dag_prints_its_diagnostics_and_fails() {
    let p = mixed_project();
    let out = p
        .vane(&["run", "bad_one"])
        .failure()
        .stderr_contains("--> dags/bad_one.toml:2:1")
        .stderr_contains("unknown key `schedul` in [dag]")
        .stderr_contains("does not validate");
    assert!(!out.stderr.contains("bad_two"), "{}", out.stderr);
    p.vane(&["run", "nonexistent"])
        .failure()
        .stderr_contains("no DAG `nonexistent`")
        .stderr_contains("good");
    assert!(p.runs().is_empty(), "nothing was recorded");
}

#[test]
fn schema_is_json_describing_task_keys() {
    let p = Project::new();
    let schema = p.vane(&["schema"]).success().json();
    let task = &schema["$defs"]["task"]["properties"];
    assert!(task.is_object(), "{schema:#}");
    for key in ["command", "depends_on", "retries", "timeout"] {
        assert!(task.get(key).is_some(), "no `{key}` in {task:#}");
    }
    assert!(schema["properties"]["tasks"].is_object(), "{schema:#}");
}

#[test]
fn graph_draws_the_diamond() {
    let p = Project::new().dag("good", GOOD);
    let text = p.vane(&["graph", "good"]).success().stdout;
    insta::assert_snapshot!("graph_text", text);
    let dot = p
        .vane(&["graph", "good", "--format", "dot"])
        .success()
        .stdout;
    insta::assert_snapshot!("graph_dot", dot);
    let mermaid = p
        .vane(&["graph", "good", "--format", "mermaid"])
        .success()
        .stdout;
    insta::assert_snapshot!("graph_mermaid", mermaid);
    assert_eq!(
        p.vane(&["graph", "good", "--format", "text"])
            .success()
            .stdout,
        text,
        "text is the default"
    );
}

/// A schedule on February 30th validated, the scheduler never ran the DAG, and `vane next`
/// printed nothing: the one command asked "when does it run?" gave no answer.
#[test]
fn a_schedule_that_never_fires_fails_validate_and_next_says_why() {
    let p = Project::new()
        .dag(
            "leap",
            "[dag]\nschedule = \"0 0 30 2 *\"\n[tasks.a]\ncommand = \"true\"\n",
        )
        .dag(
            "nightly",
            "[dag]\nschedule = \"0 2 * * *\"\n[tasks.a]\ncommand = \"true\"\n",
        );
    p.vane(&["validate"])
        .code(1)
        .stderr_contains("error: this schedule never fires: February has no 30th")
        .stderr_contains("--> dags/leap.toml:2:12");
    p.vane(&["next", "leap"])
        .failure()
        .stderr_contains("February has no 30th");
    // Past the last time the cron library can reach, a valid schedule has no tick either.
    p.vane(&["next", "nightly", "--after", "6000-01-01"])
        .failure()
        .stderr_contains("the schedule `0 2 * * *` of DAG `nightly` has no tick after 6000-01-01");
    p.vane(&["next", "nightly", "--count", "1", "--after", "2026-01-01"])
        .success()
        .stdout_contains("2026-01-01T02:00:00+00:00");
    // A date it cannot read is blamed on the flag it was given with.
    p.vane(&["next", "nightly", "--after", "yesterday"])
        .code(4)
        .stderr_contains("error: --after `yesterday` is neither YYYY-MM-DD nor RFC 3339");
}

/// A DAG file saved as Latin-1 was "not readable UTF-8 text", with no line or column to find
/// the one `è` by.
#[test]
fn a_file_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
    let p = Project::new().dag("good", GOOD);
    std::fs::write(
        p.path().join("dags/latin.toml"),
        b"[tasks.a]\ncommand = \"echo cr\xE8me\"\n",
    )
    .unwrap();
    p.vane(&["validate"])
        .code(1)
        .stderr_contains("byte 0xE8 is not part of a UTF-8 character")
        .stderr_contains("--> dags/latin.toml:2:19")
        .stderr_contains("hint: DAG files must be UTF-8");
}

/// A `vane.toml` saved as Latin-1 stopped every command with "stream did not contain valid
/// UTF-8", twice, and no line or column.
#[test]
fn a_config_that_is_not_utf8_is_reported_at_its_first_bad_byte() {
    let p = Project::new().dag("good", GOOD);
    std::fs::write(
        p.path().join("vane.toml"),
        b"[scheduler]\nname = \"caf\xE9\"\n",
    )
    .unwrap();
    p.vane(&["run", "good"])
        .code(4)
        .stderr_contains("byte 0xE9 is not part of a UTF-8 character")
        .stderr_contains("vane.toml:2:12")
        .stderr_contains("hint: the config must be UTF-8");
}

/// `vane validate` read DAG files alone: a typo in `vane.toml` passed CI and stopped the
/// scheduler at its start.
#[test]
fn validate_checks_the_scheduler_config_when_there_is_one() {
    let p = Project::new().dag("good", GOOD);
    p.vane(&["validate"])
        .success()
        .stdout_contains("ok: 1 DAG, 4 tasks\n");
    p.write("vane.toml", "[pools]\ngpu = \"two\"\n");
    p.vane(&["validate"])
        .code(1)
        .stderr_contains("pool `gpu` must have a whole number of slots")
        .stderr_contains("vane.toml:2:7")
        .stderr_contains("failed: 1 error, 0 warnings in 1 of 2 files");
    p.write("vane.toml", "[pools]\ngpu = 2\n");
    p.vane(&["validate"])
        .success()
        .stdout_contains("ok: 1 DAG, 4 tasks (and vane.toml)");
}

/// A DAG's alert rule naming a channel that `vane.toml` does not declare sends its alerts to
/// `log`: `vane validate` says so where the rule is, and fails on it with `--deny-warnings`.
#[test]
fn validate_checks_alert_channels_against_the_config() {
    let dag = format!("{GOOD}\n[[alerts]]\non = \"task_failed\"\nchannels = [\"pagr\"]\n");
    let p = Project::new().dag("good", &dag);
    p.write(
        "vane.toml",
        "[alerts.channels.pager]\nkind = \"command\"\ncommand = \"true\"\n",
    );
    p.vane(&["validate"])
        .success()
        .stderr_contains("names channel `pagr`, which the scheduler config does not declare")
        .stderr_contains("good.toml:")
        .stderr_contains("did you mean `pager`?")
        .stdout_contains("ok: 1 DAG, 4 tasks, 1 warning (and vane.toml)");
    // The file with the warning is the one that fails (it was counted as none: "in 0 of 2").
    p.vane(&["validate", "--deny-warnings"])
        .code(1)
        .stderr_contains("failed (warnings denied): 0 errors, 1 warning in 1 of 2 files");
    p.write(
        "vane.toml",
        "[alerts.channels.pagr]\nkind = \"command\"\ncommand = \"true\"\n",
    );
    p.vane(&["validate", "--deny-warnings"])
        .success()
        .stdout_contains("ok: 1 DAG, 4 tasks (and vane.toml)");
}

/// An error that names its cause in its own message printed the cause a second time.
#[test]
fn an_error_says_its_cause_once() {
    let p = Project::new().dag("good", GOOD);
    let folder = p.path().join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let out = p
        .vane(&["--config", folder.to_str().unwrap(), "run", "good"])
        .failure()
        .stderr_contains("Is a directory");
    assert_eq!(
        out.stderr.matches("Is a directory").count(),
        1,
        "{}",
        out.stderr
    );
}

/// A file with 1000 errors showed the first 200 and "... and 800 more problems", then the
/// summary said "failed: 201 errors".
#[test]
fn validate_counts_every_problem_past_those_shown() {
    let many: String = (0..1000)
        .map(|i| format!("[tasks.t{i}]\ncommand = \"true\"\ndepends_on = [\"x{i}\"]\n"))
        .collect();
    let p = Project::new().dag("good", GOOD).dag("many", &many);
    let out = p
        .vane(&["validate"])
        .code(1)
        .stderr_contains("... and 800 more problems in this file");
    assert!(
        out.stderr
            .trim_end()
            .ends_with("failed: 1000 errors, 0 warnings in 1 of 2 files"),
        "{}",
        out.stderr
    );
    let dags = p.vane(&["dags"]).success();
    assert!(
        dags.stdout
            .contains("invalid: dags/many.toml (1000 errors;"),
        "{}",
        dags.stdout
    );
}

/// `vane validate nonexist.toml dags` printed only "error: nonexist.toml does not exist": no
/// other file was checked and there was no summary.
#[test]
fn a_path_that_does_not_exist_is_reported_and_the_others_are_checked() {
    let p = mixed_project();
    let out = p.vane(&["validate", "nonexist.toml", "dags"]).code(1);
    assert!(
        out.stderr.starts_with(
            "error: `nonexist.toml` does not exist\n --> nonexist.toml\n  = hint: check the spelling, and that the file is in this checkout"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--> dags/bad_one.toml:2:1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .trim_end()
            .ends_with("failed: 11 errors, 0 warnings in 3 of 4 files"),
        "{}",
        out.stderr
    );
    // Alone, it fails the same way.
    p.vane(&["validate", "nonexist.toml"])
        .code(1)
        .stderr_contains("failed: 1 error, 0 warnings in 1 of 1 file");
}

/// The same file given twice was a duplicate of itself: `vane validate a.toml a.toml` said
/// its DAG id "is already used by a.toml", and `vane validate dags ./dags` counted each file
/// twice.
#[test]
fn a_file_given_twice_is_checked_once() {
    let p = Project::new()
        .dag("good", GOOD)
        .dag("other", "[tasks.only]\ncommand = \"true\"\n");
    let out = p
        .vane(&["validate", "dags/good.toml", "dags/good.toml"])
        .success();
    assert_eq!(out.stdout, "ok: 1 DAG, 4 tasks\n");
    assert_eq!(out.stderr, "");
    let out = p
        .vane(&["validate", "dags", "./dags", "dags/other.toml"])
        .success();
    assert_eq!(out.stdout, "ok: 2 DAGs, 5 tasks\n");
    assert_eq!(out.stderr, "");
    // The first spelling is the one shown.
    p.write("dags/bad.toml", "[tasks.x]\ncomand = \"true\"\n");
    p.vane(&["validate", "./dags/bad.toml", "dags"])
        .code(1)
        .stderr_contains("--> ./dags/bad.toml:2:1")
        .stderr_contains("failed: 1 error, 0 warnings in 1 of 3 files");
}

/// A DAG id in two files was blamed on the one sorting later, with no line: a copy named
/// `fraud copy.toml` made the original the culprit, and `vane dags` then said to run `vane
/// validate dags/fraud_scoring.toml`, which alone printed ok. Now the copy is the error, the
/// original (named after the id) keeps running, and the hint shows the problem.
#[test]
fn a_dag_id_in_two_files_is_reported_in_both_and_dags_hints_a_command_that_shows_it() {
    let p = Project::new()
        .dag("good", GOOD)
        .dag("fraud_scoring", "[tasks.score]\ncommand = \"true\"\n")
        .dag(
            "fraud copy",
            "[dag]\nid = \"fraud_scoring\"\n\n[tasks.score]\ncommand = \"true\"\n",
        );
    let out = p.vane(&["validate"]).code(1);
    insta::assert_snapshot!("validate_dag_id_in_two_files", out.stderr);

    let out = p.vane(&["dags"]).success();
    assert!(
        out.stdout.contains("invalid: dags/fraud copy.toml (1 error; run `vane validate 'dags/fraud copy.toml' dags/fraud_scoring.toml`)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with("fraud_scoring ")),
        "the original still runs:\n{}",
        out.stdout
    );
    // The command hinted shows the problem.
    p.vane(&[
        "validate",
        "dags/fraud_scoring.toml",
        "dags/fraud copy.toml",
    ])
    .code(1)
    .stderr_contains("is also the id of dags/fraud_scoring.toml (by its file name)");
    p.vane(&["run", "fraud_scoring"]).success();

    // With no file named after the id, vane cannot tell which is meant: neither runs.
    std::fs::rename(
        p.path().join("dags/fraud_scoring.toml"),
        p.path().join("dags/fraud v1.toml"),
    )
    .unwrap();
    p.write(
        "dags/fraud v1.toml",
        "[dag]\nid = \"fraud_scoring\"\n\n[tasks.score]\ncommand = \"true\"\n",
    );
    p.vane(&["run", "fraud_scoring"])
        .failure()
        .stderr_contains("DAG `fraud_scoring` in dags/fraud copy.toml does not validate");
}

/// A task whose pool `vane.toml` did not define passed `vane validate` ("ok: ... (and
/// vane.toml)"), and `vane run` then failed at once on it.
#[test]
fn validate_checks_task_pools_against_the_config() {
    let train = "[tasks.prepare]\ncommand = \"true\"\npool = \"cpu\"\n\n[tasks.train]\ncommand = \"true\"\npool = \"gpus\"\ndepends_on = [\"prepare\"]\n";
    let p = Project::new().dag("good", GOOD).dag("train", train);
    // Without a config, a pool is a warning: the config may live on the server only, but a
    // run here refuses the task.
    p.vane(&["validate"])
        .success()
        .stdout_contains("ok: 2 DAGs, 6 tasks, 2 warnings\n")
        .stderr_contains(
            "task `train` uses pool `gpus`, and there is no scheduler config (vane.toml) to define it",
        );
    p.vane(&["validate", "--deny-warnings"])
        .code(1)
        .stderr_contains("failed (warnings denied): 0 errors, 2 warnings in 1 of 2 files");
    p.write("vane.toml", "[pools]\ngpu = 1\ncpu = 2\n");
    let out = p.vane(&["validate"]).code(1);
    insta::assert_snapshot!("validate_undefined_pool", out.stderr);
    // `vane run` refuses the same task, for the same reason.
    p.vane(&["run", "train"]).failure().stderr_contains(
        "task `train` uses pool `gpus`, which the scheduler config does not define",
    );
    p.write("vane.toml", "[pools]\ngpus = 1\ncpu = 2\n");
    p.vane(&["validate"])
        .success()
        .stdout_contains("ok: 2 DAGs, 6 tasks (and vane.toml)");
    p.vane(&["run", "train"]).success();
}
