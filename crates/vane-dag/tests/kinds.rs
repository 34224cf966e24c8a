//! Built-in task kinds registered by the caller: their keys are checked with the rest of the
//! file, and what identifies a task comes from what the user wrote.

use std::any::Any;
use std::sync::Arc;

use vane_dag::config::{DeValue, Field, Spanned, TaskChecker, Ty, field};
use vane_dag::{Kinds, TaskKind};

/// A stand-in for `kind = "validate"`: one required key.
struct Fake;

/// What the fake kind parses into; its field names are Rust's business only.
#[derive(Debug)]
struct FakeSpec {
    renamed_whenever_we_like: String,
}

const KEYS: &[Field] = &[
    field("dataset", Ty::Template, "The file."),
    field(
        "rows",
        Ty::Custom {
            name: "table",
            schema: || serde_json::json!({}),
        },
        "Rows.",
    ),
];

impl TaskKind for Fake {
    fn name(&self) -> &'static str {
        "validate"
    }

    fn keys(&self) -> &'static [Field] {
        KEYS
    }

    fn parse(
        &self,
        cx: &mut TaskChecker<'_, '_>,
        task_id: &str,
        task: &Spanned<DeValue<'_>>,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let DeValue::Table(table) = task.get_ref() else {
            return None;
        };
        let Some(dataset) = table.get("dataset") else {
            cx.error(
                format!("`{task_id}` has no dataset"),
                task.span(),
                "add one",
            );
            return None;
        };
        let template = cx.template(dataset, "`dataset`")?;
        Some(Arc::new(FakeSpec {
            renamed_whenever_we_like: format!("{template:?}"),
        }))
    }
}

fn kinds() -> Kinds {
    Kinds::none().with(&Fake)
}

fn identity(source: &str) -> String {
    let parsed = vane_dag::parse_dag_with(source, "t", &kinds());
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let dag = parsed.dag.unwrap();
    let builtin = dag.tasks[0].builtin.as_ref().unwrap();
    assert_eq!(builtin.kind(), "validate");
    assert!(
        builtin
            .spec::<FakeSpec>()
            .is_some_and(|s| !s.renamed_whenever_we_like.is_empty())
    );
    builtin.cache_identity().to_owned()
}

#[test]
fn the_cache_identity_is_what_the_user_wrote_in_one_spelling() {
    let a = identity(
        "[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\nrows = { min = 1_000, max = 2000 }\n",
    );
    let b = identity(
        "[tasks.v]\nrows.max = 2000\nrows.min = 1000\n\n  dataset   =   'd.csv'\nkind='validate'\nretries = 3\n",
    );
    assert_eq!(
        a, b,
        "key order, whitespace, quoting and generic keys do not count"
    );
    // Made of the user's keys and values only: no Rust type or field name can enter it.
    assert_eq!(
        a,
        r#"{"dataset" = "d.csv", "kind" = "validate", "rows" = {"max" = 2000, "min" = 1000}}"#
    );
    assert!(!a.contains("FakeSpec") && !a.contains("renamed_whenever_we_like"));
    let c = identity(
        "[tasks.v]\nkind = \"validate\"\ndataset = \"e.csv\"\nrows = { min = 1000, max = 2000 }\n",
    );
    assert_ne!(a, c);
}

#[test]
fn a_kind_reports_into_the_same_diagnostics_as_the_rest_of_the_file() {
    let source = "[tasks.v]\nkind = \"validate\"\nrows = {}\nretries = \"x\"\n[tasks.w]\ncommand = \"{{ nope }}\"\n";
    let parsed = vane_dag::parse_dag_with(source, "t", &kinds());
    let messages: Vec<&str> = parsed
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(
        messages[0].starts_with("`v` has no dataset"),
        "{messages:?}"
    );
    assert!(messages[1].contains("`retries`"), "{messages:?}");
    assert!(messages[2].contains("nope"), "{messages:?}");
}

#[test]
fn a_kind_not_registered_is_reported_where_it_is_named() {
    let source = "[tasks.v]\nkind = \"deploy\"\nmodel = \"m\"\n";
    let parsed = vane_dag::parse_dag_with(source, "t", &kinds());
    assert!(parsed.dag.is_none());
    let first = &parsed.diagnostics[0];
    assert_eq!(first.line_col(source), Some((2, 8)));
    let messages: Vec<&str> = parsed
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(
        messages.contains(&"unknown key `model` in [tasks.v]"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"task `v` is a `deploy` task, which this program cannot read"),
        "{messages:?}"
    );
}
