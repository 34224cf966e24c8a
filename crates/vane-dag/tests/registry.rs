//! Built-in task kinds registered by the caller: their keys are checked with the rest of the
//! file, and what identifies a task comes from what the user wrote.

use std::any::Any;
use std::sync::Arc;

use vane_dag::config::{Checker, DeValue, Field, Spanned, TaskChecker, Ty, field};
use vane_dag::{Opaque, Registry, Section, TaskKind};

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

fn registry() -> Registry {
    Registry::none().kind(&Fake)
}

fn identity(source: &str) -> String {
    let parsed = vane_dag::parse_dag_with(source, "t", &registry());
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
    let parsed = vane_dag::parse_dag_with(source, "t", &registry());
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
    let parsed = vane_dag::parse_dag_with(source, "t", &registry());
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

/// A stand-in for `alerts`: records what it was given.
struct Notes;

#[derive(Debug, PartialEq)]
struct Read {
    from: &'static str,
    tasks: Vec<String>,
}

impl Section for Notes {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn dag_doc(&self) -> &'static str {
        "Notes."
    }

    fn dag_entry_doc(&self) -> &'static str {
        "A note."
    }

    fn dag_keys(&self) -> &'static [&'static [Field]] {
        &[KEYS]
    }

    fn parse_config(
        &self,
        cx: &mut Checker<'_>,
        value: &Spanned<DeValue<'_>>,
        _dir: &std::path::Path,
    ) -> Opaque {
        cx.warning("noted", value.span(), "nothing to do");
        Arc::new(Read {
            from: "config",
            tasks: Vec::new(),
        })
    }

    fn parse_dag(
        &self,
        _cx: &mut Checker<'_>,
        _value: &Spanned<DeValue<'_>>,
        _dag_id: &str,
        tasks: &[&str],
    ) -> Opaque {
        Arc::new(Read {
            from: "dag",
            tasks: tasks.iter().map(|t| (*t).to_owned()).collect(),
        })
    }
}

#[test]
fn a_section_is_read_only_when_registered() {
    let config = "[scheduler]\nmax_active_tasks = 2\n[notes]\n";
    let errors = vane_dag::parse_config(config, &Registry::none()).unwrap_err();
    assert_eq!(
        errors[0].message,
        "unknown table `notes` in the scheduler config"
    );
    let registry = Registry::none().section(&Notes);
    let read = vane_dag::parse_config(config, &registry).expect("valid");
    assert_eq!(read.max_active_tasks, Some(2));
    assert_eq!(
        read.sections.get::<Read>("notes").map(|r| r.from),
        Some("config")
    );

    let dag = "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\n[[notes]]\n";
    let parsed = vane_dag::parse_dag(dag, "t");
    assert_eq!(
        parsed.diagnostics[0].message,
        "unknown top-level key `notes`"
    );
    let dag = vane_dag::parse_dag_with(dag, "t", &registry)
        .dag
        .expect("valid");
    assert_eq!(
        dag.sections.get::<Read>("notes"),
        Some(&Read {
            from: "dag",
            tasks: vec!["a".into(), "b".into()]
        })
    );
    let reference = vane_dag::reference_markdown(&registry);
    assert!(
        reference.contains("#### `[[notes]]`\n\nNotes.\n"),
        "{reference}"
    );
    let schema = vane_dag::json_schema(&registry);
    assert_eq!(
        schema["properties"]["notes"]["items"]["description"],
        "A note."
    );
}

#[test]
fn a_builtin_task_runs_on_labels_too() {
    let source = "[defaults]\nruns_on = { zone = \"eu\" }\n[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\nruns_on = { gpu = \"a100\" }\n[tasks.w]\nkind = \"validate\"\ndataset = \"d.csv\"\n";
    let parsed = vane_dag::parse_dag_with(source, "t", &registry());
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let dag = parsed.dag.unwrap();
    let labels = |i: usize| {
        dag.tasks[i]
            .runs_on
            .clone()
            .map(|l| l.into_iter().collect::<Vec<_>>())
    };
    assert_eq!(labels(0), Some(vec![("gpu".into(), "a100".into())]));
    assert_eq!(labels(1), Some(vec![("zone".into(), "eu".into())]));
    // Where a task runs is not what it does: the cache identity leaves `runs_on` out.
    assert_eq!(
        identity(
            "[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\nruns_on = { gpu = \"a100\" }\n"
        ),
        identity("[tasks.v]\nkind = \"validate\"\ndataset = \"d.csv\"\n")
    );
}
