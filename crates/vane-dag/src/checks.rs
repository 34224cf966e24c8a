//! `kind = "validate"`: the declarative data checks of a task, as written in the DAG file.

use toml::Spanned;
use toml::de::DeValue;

use crate::parse::Sub;
use crate::spec::{Field, Ty, field};
use crate::template::Template;

/// Keys only a `kind = "validate"` task may set.
pub(crate) const KEYS: &[Field] = &[field(
    "dataset",
    Ty::Template,
    "Path of the file a `validate` task checks: CSV (`.csv`) or JSON Lines (`.jsonl`, `.ndjson`).",
)];

/// What a `validate` task checks.
#[derive(Debug, Clone)]
pub struct ValidateSpec {
    pub dataset: Template,
}

/// Reads the validate keys of task `task_id`; `None` after reporting what is wrong.
pub(crate) fn parse(
    sub: &mut Sub<'_, '_>,
    task_id: &str,
    task: &Spanned<DeValue<'_>>,
) -> Option<ValidateSpec> {
    let DeValue::Table(table) = task.get_ref() else {
        return None;
    };
    let Some(dataset) = table.get("dataset") else {
        sub.error(
            format!("validate task `{task_id}` has no `dataset`"),
            task.span(),
            "add `dataset = \"path/to/file.csv\"`: the file to check",
        );
        return None;
    };
    let dataset = sub.template(dataset, "`dataset`")?;
    Some(ValidateSpec { dataset })
}
