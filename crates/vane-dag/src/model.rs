//! The checked DAG: what the engine runs. Built only by [`crate::parse_dag`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::template::Template;

/// A validated DAG.
#[derive(Debug, Clone)]
pub struct Dag {
    pub id: String,
    pub description: Option<String>,
    pub schedule: Option<Schedule>,
    pub timezone: chrono_tz::Tz,
    /// `None` means the number of CPUs of the machine that runs it.
    pub max_active_tasks: Option<usize>,
    pub tags: Vec<String>,
    /// When and how the scheduler creates runs.
    pub cadence: Cadence,
    /// Declared parameters with their defaults, in file order.
    pub params: Vec<(String, ParamValue)>,
    /// Tasks in file order; `depends_on` holds indices into this list.
    pub tasks: Vec<Task>,
    /// What the registered sections (`[[alerts]]`: rules that watch this DAG) read.
    pub sections: crate::registry::Sections,
}

impl Dag {
    /// The tasks whose `pool` is not one of `pools` (the scheduler config's `[pools]`), each
    /// with that pool. Such a task never gets a slot: the engine fails a run of the DAG at
    /// once, and `vane validate` reports each, by this one rule so that the two agree.
    pub fn undefined_pools<'a>(
        &'a self,
        pools: &'a BTreeMap<String, usize>,
    ) -> impl Iterator<Item = (&'a Task, &'a str)> + 'a {
        self.tasks.iter().filter_map(|t| {
            t.pool
                .as_deref()
                .filter(|p| !pools.contains_key(*p))
                .map(|p| (t, p))
        })
    }

    /// Index of the task called `id`.
    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    /// The run's parameters: the declared defaults with `overrides` (`name`, `value` as text)
    /// applied, each read as the type of its default.
    ///
    /// # Errors
    /// Names an override that is not declared (with the declared names) or has the wrong type.
    pub fn resolve_params(
        &self,
        overrides: &[(String, String)],
    ) -> Result<Vec<(String, ParamValue)>, String> {
        let mut params = self.params.clone();
        for (name, text) in overrides {
            let Some((_, value)) = params.iter_mut().find(|(n, _)| n == name) else {
                let declared: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
                return Err(if declared.is_empty() {
                    format!(
                        "DAG `{}` declares no parameters, so `{name}` cannot be set; declare it under [params]",
                        self.id
                    )
                } else {
                    format!(
                        "DAG `{}` has no parameter `{name}`; declared: {}",
                        self.id,
                        declared.join(", ")
                    )
                });
            };
            *value = value
                .coerce(text)
                .map_err(|e| format!("parameter `{name}`: {e}"))?;
        }
        Ok(params)
    }

    /// A run's recorded params (a JSON object) read back with the declared types; a value
    /// that no longer fits its declaration falls back to the default.
    pub fn params_from_json(&self, recorded: &serde_json::Value) -> Vec<(String, ParamValue)> {
        self.params
            .iter()
            .map(|(name, default)| {
                let value = recorded
                    .get(name)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .and_then(|text| default.coerce(&text).ok())
                    .unwrap_or_else(|| default.clone());
                (name.clone(), value)
            })
            .collect()
    }

    /// Indices of the tasks that depend directly on task `index`.
    pub fn downstream(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.tasks
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.depends_on.contains(&index))
            .map(|(i, _)| i)
    }
}

/// The scheduler's policies for one DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    pub start_date: Option<chrono::DateTime<chrono::Utc>>,
    pub end_date: Option<chrono::DateTime<chrono::Utc>>,
    pub max_active_runs: usize,
    pub paused: bool,
    pub catchup: Catchup,
    pub catchup_window: Option<Duration>,
    pub overlap: Overlap,
    /// A scheduled run should finish within this long after its logical date.
    pub sla: Option<Duration>,
}

/// Which missed ticks run after downtime or a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Catchup {
    None,
    Latest,
    All,
}

/// What a tick does while a run of the same DAG is still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Skip,
    Queue,
    CancelPrevious,
    Allow,
}

/// A cron schedule in a time zone, already checked. See [`crate::schedule`] for the ticks.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub(crate) cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub description: Option<String>,
    pub command: Template,
    pub depends_on: Vec<usize>,
    pub trigger_rule: TriggerRule,
    /// `Some(poke interval)` for a sensor: `command` is a condition polled until it holds.
    pub sensor: Option<Duration>,
    /// The pool the task takes a slot of while it runs.
    pub pool: Option<String>,
    /// Higher goes first among tasks waiting for a slot.
    pub priority: i64,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    /// Finish within this long after the run's logical date, or an SLA miss is recorded.
    pub sla: Option<Duration>,
    /// Environment added to the task's process; values are templates.
    pub env: Vec<(String, Template)>,
    /// Working directory; relative paths are relative to the project root.
    pub cwd: Option<Template>,
    /// Files or folders the task reads, hashed and linked to the attempt when it starts.
    pub inputs: Vec<ArtifactRef>,
    /// Files or folders the task writes, hashed and recorded as artifact versions after success.
    pub outputs: Vec<ArtifactRef>,
    /// Skip the task when its command, params and input versions match a successful attempt,
    /// restoring that attempt's outputs.
    pub cache: bool,
    /// `runs_on`: the labels a `vane agent` must all have for the task to run on it; `Some` of
    /// an empty map (`runs_on = {}`) is any agent. `None` runs the task on the scheduler's own
    /// host, unless the scheduler config says `agents = "all"`
    /// ([`crate::SchedulerConfig::agents_all`]), which treats it as `Some` of an empty map.
    /// A task's `runs_on` replaces that of `[defaults]`; the two are not merged.
    pub runs_on: Option<std::collections::BTreeMap<String, String>>,
    /// Work vane itself does instead of running `command`: `kind = "validate"` or `"deploy"`.
    pub builtin: Option<Builtin>,
}

impl Task {
    /// Its `kind` as written: `command`, `sensor`, or a built-in kind (`validate`, `deploy`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match (&self.builtin, self.sensor) {
            (Some(builtin), _) => builtin.kind(),
            (None, Some(_)) => "sensor",
            (None, None) => "command",
        }
    }
}

/// A named artifact at a path (a template; relative paths start from the project root).
#[derive(Debug, Clone)]
pub struct ArtifactRef {
    pub name: String,
    pub path: Template,
}

/// A task kind that vane carries out itself, in a process of its own like any task.
///
/// The DAG model only knows that the task is built in, which kind it is and what the user
/// wrote for it; the kind's own crate parsed the spec (see [`crate::Registry`]) and reads it back
/// with [`Builtin::spec`].
#[derive(Clone)]
pub struct Builtin {
    kind: &'static str,
    identity: String,
    spec: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl Builtin {
    pub(crate) fn new(
        kind: &'static str,
        identity: String,
        spec: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    ) -> Self {
        Self {
            kind,
            identity,
            spec,
        }
    }

    /// The task's `kind`: `validate` or `deploy`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The spec the kind's parser built, when it is a `T`.
    pub fn spec<T: std::any::Any>(&self) -> Option<&T> {
        self.spec.downcast_ref()
    }

    /// What the task does, as the user wrote it: the kind and its own keys in canonical TOML
    /// ([`crate::config::canonical`]: keys sorted, one spelling per value). Equal for two tasks
    /// written differently (key order, whitespace, quoting) and unaffected by how vane names
    /// things in Rust, so a cache keyed on it survives a refactoring.
    pub fn cache_identity(&self) -> &str {
        &self.identity
    }
}

// By hand: the spec is opaque here, and what identifies the task is what the user wrote.
impl fmt::Debug for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builtin")
            .field("kind", &self.kind)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// When a task runs, given how its dependencies ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerRule {
    AllSuccess,
    AllDone,
    AllFailed,
    OneFailed,
    OneSuccess,
    NoneFailed,
}

impl TriggerRule {
    /// The name used in DAG files.
    pub fn name(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::NoneFailed => "none_failed",
        }
    }

    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            "all_done" => TriggerRule::AllDone,
            "all_failed" => TriggerRule::AllFailed,
            "one_failed" => TriggerRule::OneFailed,
            "one_success" => TriggerRule::OneSuccess,
            "none_failed" => TriggerRule::NoneFailed,
            _ => TriggerRule::AllSuccess,
        }
    }
}

/// How a failed task is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; a task runs at most `retries + 1` times.
    pub retries: u32,
    pub delay: Duration,
    pub backoff: Backoff,
    /// Upper bound of the delay when backing off exponentially.
    pub max_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Fixed,
    Exponential,
}

impl RetryPolicy {
    /// How long to wait before the attempt after `failed_attempt` (1-based).
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.delay,
            Backoff::Exponential => {
                let factor = 2u32.saturating_pow(failed_attempt.saturating_sub(1));
                self.delay.saturating_mul(factor).min(self.max_delay)
            }
        }
    }
}

/// A parameter value; the type of the default fixes the type of every override.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl ParamValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            ParamValue::String(_) => "string",
            ParamValue::Integer(_) => "integer",
            ParamValue::Float(_) => "float",
            ParamValue::Bool(_) => "boolean",
        }
    }

    /// Reads `text` as a value of the same type as `self`.
    ///
    /// # Errors
    /// Says which type was expected when `text` does not read as one.
    pub fn coerce(&self, text: &str) -> Result<ParamValue, String> {
        let fail = || format!("expected {}, got `{text}`", self.type_name());
        Ok(match self {
            ParamValue::String(_) => ParamValue::String(text.to_owned()),
            ParamValue::Integer(_) => ParamValue::Integer(text.trim().parse().map_err(|_| fail())?),
            ParamValue::Float(_) => ParamValue::Float(text.trim().parse().map_err(|_| fail())?),
            ParamValue::Bool(_) => ParamValue::Bool(match text.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(fail()),
            }),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::String(s) => serde_json::Value::from(s.as_str()),
            ParamValue::Integer(i) => serde_json::Value::from(*i),
            ParamValue::Float(f) => serde_json::Value::from(*f),
            ParamValue::Bool(b) => serde_json::Value::from(*b),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::String(s) => f.write_str(s),
            ParamValue::Integer(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            retries: 5,
            delay: Duration::from_secs(10),
            backoff: Backoff::Exponential,
            max_delay: Duration::from_secs(60),
        };
        let delays: Vec<_> = (1..=5).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 60, 60]);
    }

    #[test]
    fn overrides_take_the_type_of_the_default() {
        assert_eq!(
            ParamValue::Float(0.8).coerce("0.9"),
            Ok(ParamValue::Float(0.9))
        );
        assert_eq!(
            ParamValue::Bool(false).coerce("true"),
            Ok(ParamValue::Bool(true))
        );
        assert_eq!(
            ParamValue::Integer(3).coerce("three"),
            Err("expected integer, got `three`".into())
        );
    }
}
