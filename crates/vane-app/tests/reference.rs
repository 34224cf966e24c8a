//! The README's DAG reference and the committed JSON Schema are generated from the parsers' own
//! key tables (vane-dag's and each task kind's); these tests fail when either drifts.

use std::path::PathBuf;

fn repo_file(path: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

#[test]
fn readme_reference_matches_the_parser() {
    let (path, readme) = repo_file("README.md");
    let begin = "<!-- BEGIN GENERATED: vane schema --markdown -->\n";
    let start = readme
        .find(begin)
        .expect("README has the BEGIN GENERATED marker")
        + begin.len();
    let end = readme
        .find("<!-- END GENERATED -->")
        .expect("README has the END GENERATED marker");
    assert!(
        readme[start..end] == vane_dag::reference_markdown(&vane_app::registry()),
        "{} is out of date: replace the generated section with the output of `vane schema --markdown`",
        path.display()
    );
}

#[test]
fn committed_schema_matches_the_parser() {
    let (path, committed) = repo_file("dags/dag.schema.json");
    let generated =
        serde_json::to_string_pretty(&vane_dag::json_schema(&vane_app::registry())).unwrap() + "\n";
    assert!(
        committed == generated,
        "{} is out of date: regenerate it with `vane schema > {}`",
        path.display(),
        path.display()
    );
}

#[test]
fn schema_names_every_key_the_parser_accepts() {
    let schema = vane_dag::json_schema(&vane_app::registry());
    let task = &schema["$defs"]["task"];
    for key in [
        "command",
        "depends_on",
        "retries",
        "retry_delay",
        "retry_backoff",
        "timeout",
        "env",
        "cwd",
    ] {
        assert!(
            task["properties"].get(key).is_some(),
            "task key `{key}` missing from the schema"
        );
    }
    // `command` is required, except of the kinds whose work vane does itself.
    assert_eq!(task["else"]["required"], serde_json::json!(["command"]));
    assert_eq!(
        task["if"]["properties"]["kind"]["enum"],
        serde_json::json!(["validate", "deploy"])
    );
    assert_eq!(task["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["dag"]["properties"]["max_active_tasks"]["minimum"],
        1
    );
}
