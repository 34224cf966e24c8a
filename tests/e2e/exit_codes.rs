//! The exit codes of the README's table, for mistakes a person makes on the command line: a
//! name vane does not know exits 3, a value vane cannot use exits 4, never the 1 of a failed
//! run, so a script can tell them apart.

use crate::harness::Project;

const DAILY: &str = "[dag]\nschedule = \"0 2 * * *\"\n\n[tasks.a]\ncommand = \"true\"\n";

/// `vane runs`, `checks`, `metrics`, `sla` and `backfills --dag` filter by a DAG id: one that
/// is neither in the DAG folder nor in the history is a typo, not a DAG with nothing yet.
#[test]
fn a_dag_id_known_nowhere_is_not_found_by_the_commands_that_list_by_dag() {
    let p = Project::new()
        .dag("daily", DAILY)
        .dag("gone", "[tasks.a]\ncommand = \"true\"\n");
    p.vane(&["run", "gone", "--date", "2026-11-20"]).success();
    std::fs::remove_file(p.path().join("dags/gone.toml")).unwrap();

    let listings: [&[&str]; 7] = [
        &["runs"],
        &["checks"],
        &["checks", "--json"],
        &["metrics"],
        &["metrics", "--json"],
        &["sla"],
        &["backfills", "--dag"],
    ];
    for listing in listings {
        let with = |dag: &str| {
            let mut args = listing.to_vec();
            args.insert(if listing[0] == "backfills" { 2 } else { 1 }, dag);
            p.vane(&args)
        };
        with("nosuch")
            .code(3)
            .stderr_contains("no DAG `nosuch` in dags or in the history")
            .stderr_contains("known DAGs: daily");
        with("dialy")
            .code(3)
            .stderr_contains("did you mean `daily`?");
        // Known but with nothing recorded yet: an empty answer, which `vane metrics` and
        // `vane checks` say on stderr.
        let known = with("daily").success();
        if listing == ["metrics"] {
            known.stderr_contains("no metrics recorded for DAG `daily`");
        }
        // Its file deleted, its runs still in the history.
        with("gone").success();
    }
    p.vane(&["runs", "gone"]).success().stdout_contains("gone");
}

/// `vane backfill` says what is wrong with its input as `vane run` and `vane next` do: a task
/// the DAG lacks is not found, a range, date, param or DAG it cannot backfill is invalid.
#[test]
fn backfill_input_it_cannot_use_is_not_found_or_invalid() {
    let p = Project::new()
        .dag("daily", DAILY)
        .dag("manual", "[tasks.a]\ncommand = \"true\"\n");
    let backfill = |extra: &[&str]| {
        let mut args = vec![
            "backfill",
            "daily",
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-21",
        ];
        args.extend(extra);
        p.vane(&args)
    };
    backfill(&["--task", "nosuch"])
        .code(3)
        .stderr_contains("DAG `daily` has no task `nosuch`; its tasks: a");
    backfill(&["--exclude", "nosuch"])
        .code(3)
        .stderr_contains("DAG `daily` has no task `nosuch`");
    backfill(&["--param", "nope=1"])
        .code(4)
        .stderr_contains("`nope` cannot be set");
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-24",
        "--to",
        "2026-11-20",
    ])
    .code(4)
    .stderr_contains("--from 2026-11-24 is after --to 2026-11-20")
    .stderr_contains("swap them");
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "yesterday",
        "--to",
        "2026-11-20",
    ])
    .code(4)
    .stderr_contains("--from `yesterday` is neither YYYY-MM-DD nor RFC 3339");
    p.vane(&[
        "backfill",
        "daily",
        "--from",
        "2026-11-20",
        "--to",
        "tomorrow",
    ])
    .code(4)
    .stderr_contains("--to `tomorrow` is neither YYYY-MM-DD nor RFC 3339");
    p.vane(&[
        "backfill",
        "manual",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-21",
    ])
    .code(4)
    .stderr_contains("DAG `manual` has no schedule")
    .stderr_contains("add `schedule` under [dag]");
    // Nothing was made by any of them.
    crate::backfill::assert_no_backfill(&p);
}

/// `vane models --at` with a date vane cannot read is invalid, as `vane run --date` is.
#[test]
fn models_at_a_date_vane_cannot_read_is_invalid() {
    let p = Project::new().dag("daily", DAILY);
    p.vane(&["models", "--at", "yesterday"])
        .code(4)
        .stderr_contains("--at `yesterday`")
        .stderr_contains("write a date (2026-11-23) or an RFC 3339 time");
    p.vane(&["models", "--at", "2026-11-20"]).success();
}

/// `vane agent` with labels or slots it cannot use is invalid input, and starts nothing.
#[test]
fn agent_labels_or_slots_it_cannot_use_are_invalid() {
    let p = Project::new().dag("daily", DAILY);
    p.vane(&["agent", "--labels", "gpu"])
        .code(4)
        .stderr_contains("--labels: `gpu` is not `name=value`");
    p.vane(&["agent", "--labels", "gpu=a,gpu=b"])
        .code(4)
        .stderr_contains("`gpu` is given twice");
    p.vane(&["agent", "--slots", "0"])
        .code(4)
        .stderr_contains("--slots must be at least 1");
}

/// `vane promote` of a model the registry does not have is not found, as `vane rollback` and
/// `vane models NAME` say, rather than a stage it lacks.
#[test]
fn promote_of_a_model_never_registered_is_not_found() {
    let p = Project::new().dag("daily", DAILY);
    p.vane(&[
        "promote",
        "nosuch",
        "1",
        "--stage",
        "production",
        "--reason",
        "x",
    ])
    .code(3)
    .stderr_contains("no model `nosuch` in the registry: `vane models` lists the models");
}

/// A file or folder vane cannot read or create exits 6, as an unusable database does, not the
/// 1 of a failed run: the token file `vane serve` is pointed at, the folder `vane man --dir`
/// writes into.
#[test]
fn a_file_vane_cannot_use_exits_6() {
    let p = Project::new().dag("daily", DAILY);
    let missing = p.path().join("no-such-folder/token");
    p.vane(&["serve", "--token-file", missing.to_str().unwrap()])
        .code(6)
        .stderr_contains("cannot read the token file");
    std::fs::write(p.path().join("a-file"), "").unwrap();
    let under_a_file = p.path().join("a-file/man1");
    p.vane(&["man", "--dir", under_a_file.to_str().unwrap()])
        .code(6);
}

/// Regression: `vane scheduler --dags` naming no folder created the database, took a lease,
/// and then exited 1 with an error lacking the hint `vane run` gives (which exits 6).
#[test]
fn the_scheduler_refuses_a_dag_folder_that_is_not_there_before_creating_anything() {
    let p = Project::new();
    p.vane(&["scheduler", "--dags", "nowhere"])
        .code(6)
        .stderr_contains("cannot read the DAG folder")
        .stderr_contains("set it with --dags or VANE_DAGS");
    assert!(!p.path().join(".vane").exists());
}
