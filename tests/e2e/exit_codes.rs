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
        // Known but with nothing recorded yet: an empty answer, as before (`vane metrics`
        // without --json says so with exit 1, which it always did).
        let known = with("daily");
        if listing == ["metrics"] {
            known
                .code(1)
                .stderr_contains("no metrics recorded for DAG `daily`");
        } else {
            known.success();
        }
        // Its file deleted, its runs still in the history.
        with("gone").code(if listing == ["metrics"] { 1 } else { 0 });
    }
    p.vane(&["runs", "gone"]).success().stdout_contains("gone");
}
