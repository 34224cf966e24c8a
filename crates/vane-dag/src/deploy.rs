//! `kind = "deploy"`: a staged model rollout with gates, as written in the DAG file.

use toml::Spanned;
use toml::de::DeValue;

use crate::parse::Sub;
use crate::spec::{Field, Ty, field};
use crate::template::Template;

/// Keys only a `kind = "deploy"` task may set.
pub(crate) const KEYS: &[Field] = &[field(
    "candidate",
    Ty::Template,
    "Path of the model file or folder a `deploy` task rolls out; its content hash is its version.",
)];

/// How a `deploy` task rolls a model out.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    pub candidate: Template,
}

/// Reads the deploy keys of task `task_id`; `None` after reporting what is wrong.
pub(crate) fn parse(
    sub: &mut Sub<'_, '_>,
    task_id: &str,
    task: &Spanned<DeValue<'_>>,
) -> Option<DeploySpec> {
    let DeValue::Table(table) = task.get_ref() else {
        return None;
    };
    let Some(candidate) = table.get("candidate") else {
        sub.error(
            format!("deploy task `{task_id}` has no `candidate`"),
            task.span(),
            "add `candidate = \"path/to/model\"`: the model to roll out",
        );
        return None;
    };
    let candidate = sub.template(candidate, "`candidate`")?;
    Some(DeploySpec { candidate })
}
