//! The bodies of the API's actions. The handlers deserialise each into its type, and the
//! OpenAPI document derives each body's schema from the same type, so what the document
//! promises is what the handler reads: a field the type does not have is refused by name.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::Value;

use crate::AppError;

/// Reads an action's body as `T`: no body is `{}`, and serde's own words say which field is
/// unknown, missing or of the wrong type; a missing field is followed by what the type's
/// documentation says of it (who approves, and why the ledger needs the name).
///
/// # Errors
/// [`AppError::Invalid`] naming the field and what it must be.
pub fn read<T: serde::de::DeserializeOwned + JsonSchema>(body: &Value) -> Result<T, AppError> {
    let body = match body {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    serde_json::from_value(body).map_err(|e| {
        let message = e.to_string();
        let about = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .and_then(|field| {
                schemars::schema_for!(T)
                    .get("properties")?
                    .get(field)?
                    .get("description")?
                    .as_str()
                    // A doc comment's line breaks are not the sentence's.
                    .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
            });
        AppError::Invalid(match about {
            Some(about) => format!("the request body: {message}: {about}"),
            None => format!("the request body: {message}"),
        })
    })
}

/// `POST /api/dags/{id}/trigger`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    /// Overrides of the DAG's params by name; each value is read as the command line reads
    /// `--param KEY=VALUE`, with its default's type. One the DAG does not declare, or that
    /// does not fit its type, answers 409: the DAG file decides.
    pub params: Option<BTreeMap<String, Scalar>>,
    /// The logical date, `YYYY-MM-DD` (midnight in the DAG's time zone) or RFC 3339; default
    /// now.
    pub date: Option<LogicalDate>,
}

/// The body of an action that takes no fields (pause, unpause): `{}` or none.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /api/runs/{id}/clear`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearBody {
    /// Task ids; default every task.
    pub tasks: Option<Vec<String>>,
    /// Also every task downstream of them.
    pub downstream: Option<bool>,
    /// Only failed or upstream_failed tasks.
    pub failed_only: Option<bool>,
    /// Params to run again with (as for a trigger); the change is recorded with who made it.
    pub params: Option<BTreeMap<String, Scalar>>,
    /// Who clears it; default the server's user.
    pub by: Option<String>,
}

/// `POST /api/runs/{id}/stop`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopBody {
    /// Stop only this running task; the run goes on by its trigger rules.
    pub task: Option<String>,
    /// Who stops it; default the server's user.
    pub by: Option<String>,
    /// Why, recorded in the run's reason.
    pub reason: Option<String>,
}

/// `POST /api/runs/{id}/tasks/{task}/mark`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkBody {
    /// What the task is marked as.
    pub state: MarkAs,
    /// Who marks it; default the server's user.
    pub by: Option<String>,
    /// Why, recorded as the task's reason.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MarkAs {
    Success,
    Failed,
}

/// `POST /api/runs/{id}/approve`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// Who approves: the model ledger records it as evidence, so it is the person, never the
    /// user the server runs as.
    #[schemars(regex(pattern = r"\S"))]
    pub by: String,
    /// The waiting stage; default the one that waits.
    pub stage: Option<String>,
    /// What they saw.
    pub note: Option<String>,
}

/// `POST /api/runs/{id}/reject`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Who rejects, as for an approval.
    #[schemars(regex(pattern = r"\S"))]
    pub by: String,
    /// The waiting stage; default the one that waits.
    pub stage: Option<String>,
    /// Why; the ledger keeps it.
    pub reason: String,
}

/// `POST /api/models/{name}/rollback`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The version to put back; default the previous production version.
    #[serde(default, deserialize_with = "whole_number")]
    #[schemars(range(min = 1))]
    pub to: Option<i64>,
    /// Who; default the server's user.
    pub by: Option<String>,
    /// Why; the ledger keeps it.
    pub reason: String,
}

/// `POST /api/alerts/{id}/ack`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Whether the alert deserved attention: the rule's precision is made of these.
    pub verdict: Option<Judged>,
    /// Who; default the server's user.
    pub by: Option<String>,
}

/// `real` or `noise`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Judged {
    Real,
    Noise,
}

impl From<Judged> for vane_store::Verdict {
    fn from(j: Judged) -> Self {
        match j {
            Judged::Real => Self::Real,
            Judged::Noise => Self::Noise,
        }
    }
}

/// `POST /api/alerts/{id}/resolve`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// Who; default the server's user.
    pub by: Option<String>,
}

/// `POST /api/alerts/{id}/snooze`. Seconds, as PagerDuty's snooze takes them, because the
/// bound is then part of the document: a snooze always ends.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    /// How long to silence its notifications; it keeps counting.
    #[serde(deserialize_with = "whole_seconds")]
    #[schemars(range(min = 1, max = crate::alerts::MAX_SNOOZE_SECONDS))]
    pub seconds: u64,
}

/// A param's value as JSON gives it: text, a number or a flag, read as its text, as on the
/// command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(s)),
            v @ (Value::Number(_) | Value::Bool(_)) => Ok(Self(v.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "a param's value is a string, a number or true/false, not {other}"
            ))),
        }
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "ParamValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A logical date as a person writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct LogicalDate(pub String);

impl JsonSchema for LogicalDate {
    fn schema_name() -> Cow<'static, str> {
        "LogicalDate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "anyOf": [{ "format": "date" }, { "format": "date-time" }],
            // The years vane keeps (`vane_dag::parse_when`): 1970 to 9999.
            "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-",
        })
    }
}

/// Params as the application takes them.
#[must_use]
pub fn params(given: Option<BTreeMap<String, Scalar>>) -> Vec<(String, String)> {
    given
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// A whole number as JSON may write it: `3.0` is 3, as JSON does not tell them apart (nor
/// does JSON Schema's `integer`).
fn whole(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => whole(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("`to` is a version number, not {v}"))),
    }
}

fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    whole(&v)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            serde::de::Error::custom(format!("`seconds` is a whole number of seconds, not {v}"))
        })
}
