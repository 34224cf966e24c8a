//! The DAG file's keys, their types and their documentation: one table that the parser checks
//! against, `vane schema` turns into JSON Schema, and the README's reference is generated from.

use serde_json::{Value, json};

use crate::registry::Registry;

/// The type of a key's value, with the bounds the parser enforces.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Ty {
    Str,
    Bool,
    /// A DAG or task id.
    Ident,
    StrList,
    /// A list of task ids.
    IdList,
    Int {
        min: i64,
        max: i64,
    },
    Duration {
        max_secs: u64,
    },
    Cron,
    Timezone,
    /// `YYYY-MM-DD` (midnight in the DAG's time zone), RFC 3339, or a TOML date or date-time.
    Date,
    /// `"none"`, `"latest"`, `"all"`, or `true` (all) / `false` (latest).
    Catchup,
    Enum(&'static [&'static str]),
    /// Environment variables: a table of strings (templates).
    EnvMap,
    /// A template string.
    Template,
    /// Labels an agent must have: a table of label name = non-empty string without `,` or
    /// `=`, at most 16 of them. `{}` (no labels) is allowed.
    Labels,
    /// A value whose shape the section's own code checks; `name` and `schema` describe it
    /// in the reference and `vane schema`.
    Custom {
        name: &'static str,
        schema: fn() -> Value,
    },
}

/// One key of a table: what the checker enforces and the reference documents.
#[derive(Debug)]
pub struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    pub(crate) required: bool,
    /// The default as a person would read it in the reference.
    pub(crate) default: Option<&'static str>,
    pub(crate) doc: &'static str,
}

/// An optional key without a default.
pub const fn field(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        required: false,
        default: None,
        doc,
    }
}

/// `f`, which a table must have.
pub const fn required(mut f: Field) -> Field {
    f.required = true;
    f
}

/// `f` with the default a person reads in the reference.
pub const fn with_default(mut f: Field, default: &'static str) -> Field {
    f.default = Some(default);
    f
}

/// Seconds in a day, for the bounds of durations.
pub const DAY_SECS: u64 = 86_400;

/// Most labels a [`Ty::Labels`] value (`runs_on`) may require.
pub(crate) const MAX_LABELS: usize = 16;

/// What a label name of [`Ty::Labels`] may be: letters, digits, `_`, `-`, `.`, not empty.
pub(crate) const LABEL_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]+$";

pub(crate) const DAG: &[Field] = &[
    with_default(
        field(
            "id",
            Ty::Ident,
            "Unique id of the DAG: letters, digits, `_`, `-`, `.`.",
        ),
        "the file name without `.toml`",
    ),
    field(
        "description",
        Ty::Str,
        "One line saying what the DAG is for.",
    ),
    field(
        "schedule",
        Ty::Cron,
        "Cron expression (5 fields, or 6 with seconds first), names such as `MON-FRI`, or a preset (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). One that never fires (`0 0 30 2 *`: February has no 30th) is an error. Omit for a DAG that only runs when triggered.",
    ),
    with_default(
        field(
            "timezone",
            Ty::Timezone,
            "IANA time zone the schedule and `ds` are read in, e.g. `Europe/Paris`.",
        ),
        "UTC",
    ),
    with_default(
        field(
            "max_active_tasks",
            Ty::Int {
                min: 1,
                max: 10_000,
            },
            "Most tasks of one run running at once.",
        ),
        "number of CPUs",
    ),
    field("tags", Ty::StrList, "Free labels for finding DAGs."),
    field(
        "sla",
        Ty::Duration {
            max_secs: 365 * DAY_SECS,
        },
        "A scheduled run not finished this long after its logical date is recorded as an SLA miss (`vane sla`), the moment the deadline passes.",
    ),
    field(
        "start_date",
        Ty::Date,
        "No scheduled run before this date. With `catchup = \"all\"` a new DAG catches up from here; without it, a new DAG starts with the next tick.",
    ),
    field("end_date", Ty::Date, "No scheduled run after this date."),
    with_default(
        field(
            "max_active_runs",
            Ty::Int { min: 1, max: 1000 },
            "Most runs of this DAG queued-to-running at once; further runs wait.",
        ),
        "1",
    ),
    with_default(
        field(
            "paused",
            Ty::Bool,
            "Start paused: the scheduler creates no runs until `vane unpause`. `vane pause`/`unpause` override it.",
        ),
        "false",
    ),
    with_default(
        field(
            "catchup",
            Ty::Catchup,
            "Ticks missed while the scheduler was down or the DAG paused: `\"all\"` runs every one, `\"latest\"` only the most recent, `\"none\"` none. Ticks not run are recorded as skipped, with the reason.",
        ),
        "latest",
    ),
    field(
        "catchup_window",
        Ty::Duration {
            max_secs: 3650 * DAY_SECS,
        },
        "Missed ticks older than this are never caught up, whatever `catchup` says, e.g. `\"3d\"`.",
    ),
    with_default(
        field(
            "overlap",
            Ty::Enum(&["skip", "queue", "cancel_previous", "allow"]),
            "A tick due while a run of this DAG is still active: `skip` it (recorded), `queue` it behind, `cancel_previous` (stop the active run, start the new one), or `allow` both to run, up to `max_active_runs`.",
        ),
        "skip",
    ),
];

/// Keys a task may set and `[defaults]` may set for every task.
pub(crate) const SHARED: &[Field] = &[
    with_default(
        field(
            "retries",
            Ty::Int { min: 0, max: 100 },
            "Retries after a failed attempt.",
        ),
        "0",
    ),
    with_default(
        field(
            "retry_delay",
            Ty::Duration {
                max_secs: 7 * DAY_SECS,
            },
            "Wait before a retry: `500ms`, `30s`, `5m`, `1h`, `1d`, or sums like `1h30m`.",
        ),
        "30s",
    ),
    with_default(
        field(
            "retry_backoff",
            Ty::Enum(&["fixed", "exponential"]),
            "`exponential` doubles the delay after each failed attempt, up to `max_retry_delay`.",
        ),
        "fixed",
    ),
    with_default(
        field(
            "max_retry_delay",
            Ty::Duration {
                max_secs: 7 * DAY_SECS,
            },
            "Upper bound of an exponential retry delay.",
        ),
        "1h",
    ),
    with_default(
        field(
            "timeout",
            Ty::Duration {
                max_secs: 30 * DAY_SECS,
            },
            "An attempt running longer is killed with its whole process group and fails. It counts from when the command begins, not from when its process was spawned and held while its start was recorded.",
        ),
        "none",
    ),
    field(
        "env",
        Ty::EnvMap,
        "Environment variables for the process; values may use templates (not shell-quoted). A task's `env` is merged over `[defaults]`.",
    ),
    with_default(
        field(
            "cwd",
            Ty::Template,
            "Working directory of the process; a relative path starts from the directory `vane` runs in. May use templates.",
        ),
        "where `vane` runs",
    ),
    field(
        "runs_on",
        Ty::Labels,
        "Labels a `vane agent` must have for this task to run on it, e.g. `{ gpu = \"a100\" }`; `{}` means any agent. Without it the task runs on the scheduler's own host, unless `[scheduler] agents = \"all\"`.",
    ),
];

/// Keys only a task may set; a task may also set every key of [`SHARED`].
pub(crate) const TASK_OWN: &[Field] = &[
    field(
        "command",
        Ty::Template,
        "Shell command (`/bin/sh -c`), required unless `kind` is `validate` or `deploy`. Templates such as `{{ ds }}` are replaced by shell-quoted values; `{{ params.x | raw }}` inserts a value unquoted and `vane validate` warns about it.",
    ),
    field("description", Ty::Str, "What the task does."),
    with_default(
        field(
            "kind",
            Ty::Enum(&["command", "sensor", "validate", "deploy"]),
            "`sensor`: `command` is a condition, run every `poke_interval` until it exits 0 (e.g. `ls \"$VANE_WORK\"/labels/{{ ds }}/*.csv` waits for a file); `timeout` bounds the whole wait, which is recorded as the metric `wait_seconds`. A waiting sensor holds no `max_active_tasks` slot. `validate`: vane checks `dataset` against the declared checks (see Data validation). `deploy`: vane rolls `candidate` out through `stages` with gates (see Staged deployment).",
        ),
        "command",
    ),
    field(
        "inputs",
        Ty::Custom {
            name: "table of artifact name = path, or list of upstream output names",
            schema: artifact_inputs_schema,
        },
        "Files or folders the task reads: `{ raw = \"{{ work }}/raw/{{ ds }}.csv\" }`, or names of outputs of tasks it depends on: `[\"raw\"]`. Hashed when the task starts and linked to the attempt (`vane lineage`).",
    ),
    field(
        "outputs",
        Ty::Custom {
            name: "table of artifact name = path",
            schema: artifact_outputs_schema,
        },
        "Files or folders the task writes: `{ model = \"{{ work }}/models/{{ run_id }}/model.json\" }`. After success each is hashed and recorded as a version of the named artifact (unchanged content is the same version) and kept in the content store; a declared output that is missing fails the attempt.",
    ),
    with_default(
        field(
            "cache",
            Ty::Bool,
            "Skip the task when a successful attempt had the same command, env, params, day (`ds`) and input versions, and restore that attempt's outputs from the content store. `run_id` and `attempt` do not count as a change. Not for `validate` or `deploy` tasks.",
        ),
        "false",
    ),
    field(
        "pool",
        Ty::Ident,
        "Named pool the task takes a slot of while it runs (`[pools] gpu = 1` in the scheduler config, `vane.toml`), so a scarce resource is never oversubscribed across DAGs and vane processes.",
    ),
    with_default(
        field(
            "priority",
            Ty::Int {
                min: -1000,
                max: 1000,
            },
            "Among tasks waiting for a slot, higher goes first, then the one waiting longest. Backfill runs' tasks always yield to other runs'.",
        ),
        "0",
    ),
    with_default(
        field(
            "poke_interval",
            Ty::Duration { max_secs: DAY_SECS },
            "How often a sensor checks its condition; each check may run this long.",
        ),
        "30s",
    ),
    field(
        "sla",
        Ty::Duration {
            max_secs: 365 * DAY_SECS,
        },
        "This task of a scheduled run not finished this long after the run's logical date is recorded as an SLA miss.",
    ),
    field(
        "depends_on",
        Ty::IdList,
        "Tasks this one waits for; `trigger_rule` says what their outcome must be.",
    ),
    with_default(
        field(
            "trigger_rule",
            Ty::Enum(&[
                "all_success",
                "all_done",
                "all_failed",
                "one_failed",
                "one_success",
                "none_failed",
            ]),
            "When the task runs, given how its dependencies ended: `all_success` (all succeeded), `all_done` (all finished, however), `all_failed` (all ran and failed), `one_failed` (as soon as one ran and failed, e.g. to deploy a fallback model; a dependency that could not run because of an earlier failure does not count), `one_success` (as soon as one succeeded), `none_failed` (all finished and none failed; skipped is fine). A task whose rule can no longer be met ends `upstream_failed`, or `skipped` when its rule waits for failures that did not happen.",
        ),
        "all_success",
    ),
];

pub(crate) const DEFAULTS: &[&[Field]] = &[SHARED];

/// Task kinds that vane carries out itself; their keys come from [`Registry`].
pub(crate) const BUILTIN_KINDS: &[&str] = &["validate", "deploy"];

/// The key tables of a task: its own, the shared ones, and each registered kind's.
pub(crate) fn task_groups(registry: &Registry) -> impl Iterator<Item = &'static [Field]> + '_ {
    [TASK_OWN, SHARED]
        .into_iter()
        .chain(registry.kinds().map(|k| k.keys()))
}

/// [`task_groups`] with the keys of the task's own kind first, so that a hint for a key of a
/// `validate` task lists `dataset` and `rows` before the keys every task takes.
pub(crate) fn task_groups_of_kind(
    registry: &Registry,
    kind: Option<&str>,
) -> Vec<&'static [Field]> {
    let own = registry.kinds().filter(|k| Some(k.name()) == kind);
    let others = registry.kinds().filter(|k| Some(k.name()) != kind);
    own.map(|k| k.keys())
        .chain([TASK_OWN, SHARED])
        .chain(others.map(|k| k.keys()))
        .collect()
}

pub(crate) fn task_keys(registry: &Registry) -> impl Iterator<Item = &'static Field> + '_ {
    task_groups(registry).flatten()
}

fn artifact_outputs_schema() -> Value {
    json!({
        "type": "object",
        "propertyNames": { "pattern": crate::parse::IDENT_PATTERN },
        "additionalProperties": { "type": "string" }
    })
}

fn artifact_inputs_schema() -> Value {
    json!({
        "oneOf": [
            artifact_outputs_schema(),
            {
                "type": "array",
                "items": { "type": "string", "pattern": crate::parse::IDENT_PATTERN },
                "uniqueItems": true
            }
        ]
    })
}

/// Keys of `[scheduler]` in the scheduler config file (`vane.toml`).
pub(crate) const SCHEDULER: &[Field] = &[
    field(
        "max_active_tasks",
        Ty::Int {
            min: 1,
            max: 100_000,
        },
        "Most tasks running at once across every run of every DAG (and every vane process on the same database).",
    ),
    field(
        "lease_ttl",
        Ty::Duration { max_secs: 3600 },
        "How long a vane process is taken to be alive without renewing its lease (renewed every third of it). Runs of a scheduler whose lease expired are adopted by another; default 20s, at least 3s.",
    ),
    with_default(
        field(
            "agents",
            Ty::Enum(&["local", "all"]),
            "`all` sends every task without `runs_on` to any agent (as `runs_on = {}`); `local` runs them on the scheduler's host.",
        ),
        "local",
    ),
    field(
        "storage",
        Ty::Str,
        "Where the logs agents ship and the content store (artifacts, cache, model versions) are kept, for every host: `s3://bucket/prefix` (settings as `?endpoint=http://minio:9000&region=eu-west-1`, credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`) or an absolute folder every host mounts. Default: the state folder.",
    ),
];

/// Top-level tables of a DAG file, besides the registered [`crate::Section`]s.
pub(crate) const SECTIONS: &[(&str, &str)] = &[
    ("dag", "What the DAG is and when it runs."),
    (
        "defaults",
        "Task settings applied to every task that does not set them itself.",
    ),
    (
        "params",
        "Run parameters with their default values (string, integer, float or boolean). `vane run --param name=value` overrides them per run; an override must have the default's type. Tasks read them as `{{ params.name }}` and `$VANE_PARAM_NAME`.",
    ),
    (
        "tasks",
        "One table per task: `[tasks.ID]`. At least one task is required.",
    ),
];

fn ty_schema(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Template => json!({ "type": "string" }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Ident => json!({ "type": "string", "pattern": crate::parse::IDENT_PATTERN }),
        Ty::StrList => json!({ "type": "array", "items": { "type": "string" } }),
        Ty::IdList => json!({
            "type": "array",
            "items": { "type": "string", "pattern": crate::parse::IDENT_PATTERN },
            "uniqueItems": true
        }),
        Ty::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Ty::Duration { .. } => json!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$"
        }),
        Ty::Cron => json!({ "type": "string" }),
        Ty::Timezone => json!({ "type": "string" }),
        Ty::Date => json!({ "type": "string" }),
        Ty::Catchup => json!({ "enum": ["none", "latest", "all", true, false] }),
        Ty::Enum(values) => json!({ "type": "string", "enum": values }),
        Ty::EnvMap => json!({ "type": "object", "additionalProperties": { "type": "string" } }),
        Ty::Labels => json!({
            "type": "object",
            "propertyNames": { "pattern": LABEL_NAME_PATTERN },
            "additionalProperties": { "type": "string", "pattern": "^[^,=]+$" },
            "maxProperties": MAX_LABELS
        }),
        Ty::Custom { schema, .. } => schema(),
    }
}

fn table_schema(groups: &[&[Field]], description: &str) -> Value {
    let mut properties = serde_json::Map::new();
    for f in groups.iter().copied().flatten() {
        let mut schema = ty_schema(f.ty);
        let mut doc = f.doc.to_owned();
        if let Some(default) = f.default {
            doc.push_str(&format!(" Default: {default}."));
        }
        schema["description"] = Value::from(doc);
        properties.insert(f.name.to_owned(), schema);
    }
    let required: Vec<&str> = groups
        .iter()
        .copied()
        .flatten()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut schema = json!({
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// A task needs `command` unless vane does its work itself (`validate`, `deploy`).
fn task_schema(registry: &Registry) -> Value {
    let groups: Vec<&[Field]> = task_groups(registry).collect();
    let mut schema = table_schema(&groups, "A task: one command run as one process.");
    schema["if"] = json!({
        "properties": { "kind": { "enum": ["validate", "deploy"] } },
        "required": ["kind"]
    });
    schema["then"] = json!({ "not": { "required": ["command"] } });
    schema["else"] = json!({ "required": ["command"] });
    schema
}

fn section_doc(name: &str) -> &'static str {
    SECTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, d)| d)
}

/// JSON Schema (draft 2020-12) of a DAG file, for editors such as taplo and Even Better TOML;
/// the keys of built-in tasks are those of `kinds`.
pub fn json_schema(registry: &Registry) -> Value {
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:vane:dag-file",
        "title": "vane DAG file",
        "description": "One DAG per TOML file. Reference: README.md, section 'The DAG file'.",
        "type": "object",
        "additionalProperties": false,
        "required": ["tasks"],
        "properties": {
            "dag": table_schema(&[DAG], section_doc("dag")),
            "defaults": table_schema(DEFAULTS, section_doc("defaults")),
            "params": {
                "type": "object",
                "description": section_doc("params"),
                "additionalProperties": { "type": ["string", "integer", "number", "boolean"] }
            },
            "tasks": {
                "type": "object",
                "description": section_doc("tasks"),
                "minProperties": 1,
                "propertyNames": { "pattern": crate::parse::IDENT_PATTERN },
                "additionalProperties": { "$ref": "#/$defs/task" }
            },
        },
        "$defs": { "task": task_schema(registry) }
    });
    for section in registry.sections() {
        schema["properties"][section.name()] = json!({
            "type": "array",
            "description": section.dag_doc(),
            "items": table_schema(section.dag_keys(), section.dag_entry_doc())
        });
    }
    schema
}

fn ty_name(ty: Ty) -> String {
    match ty {
        Ty::Str => "string".into(),
        Ty::Bool => "boolean".into(),
        Ty::Template => "template string".into(),
        Ty::Ident => "id".into(),
        Ty::StrList => "list of strings".into(),
        Ty::IdList => "list of task ids".into(),
        Ty::Int { min, max } => format!("integer, {min}–{max}"),
        Ty::Duration { max_secs } => format!("duration, at most {}d", max_secs / DAY_SECS),
        Ty::Cron => "cron expression".into(),
        Ty::Timezone => "IANA time zone".into(),
        Ty::Date => "date or RFC 3339 date-time".into(),
        Ty::Catchup => "`\"none\"`, `\"latest\"`, `\"all\"` or boolean".into(),
        Ty::Enum(values) => values
            .iter()
            .map(|v| format!("`\"{v}\"`"))
            .collect::<Vec<_>>()
            .join(" or "),
        Ty::EnvMap => "table of strings".into(),
        Ty::Labels => "table of label = value".into(),
        Ty::Custom { name, .. } => name.into(),
    }
}

/// The DAG file reference as Markdown, with the keys of `kinds`; the README embeds exactly
/// this text (with every kind of the vane binary).
pub fn reference_markdown(registry: &Registry) -> String {
    let mut out = String::new();
    let task: Vec<&[Field]> = task_groups(registry).collect();
    let registered = registry.sections().map(|s| {
        (
            s.name(),
            s.dag_doc(),
            s.dag_keys(),
            format!("[[{}]]", s.name()),
        )
    });
    let builtin = SECTIONS.iter().map(|(section, doc)| {
        let groups: &[&[Field]] = match *section {
            "dag" => &[DAG],
            "defaults" => DEFAULTS,
            _ => &[],
        };
        let header = match *section {
            "tasks" => "[tasks.ID]".to_owned(),
            _ => format!("[{section}]"),
        };
        (*section, *doc, groups, header)
    });
    for (section, doc, groups, header) in builtin.chain(registered) {
        let groups = if section == "tasks" { &task } else { groups };
        out.push_str(&format!("#### `{header}`\n\n{doc}\n\n"));
        if groups.is_empty() {
            continue;
        }
        out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for f in groups.iter().copied().flatten() {
            let default = match (f.required, f.default) {
                (true, _) => "required".to_owned(),
                (false, Some(d)) => d.to_owned(),
                (false, None) => "—".to_owned(),
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                f.name,
                ty_name(f.ty),
                default,
                f.doc.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out.push_str("#### Template variables\n\nUsable in `command`, `env` values and `cwd`. An unknown variable is an error. Each also reaches the process as an environment variable.\n\n| variable | environment | meaning |\n|---|---|---|\n");
    for (name, doc) in crate::template::BUILTIN_VARIABLES {
        out.push_str(&format!(
            "| `{{{{ {name} }}}}` | `VANE_{}` | {doc} |\n",
            name.to_uppercase()
        ));
    }
    out.push_str("| `{{ params.NAME }}` | `VANE_PARAM_NAME` (upper case) | value of a parameter declared under `[params]` |\n");
    out.push_str("\nFilters: `{{ ds | add_days(-7) }}` moves a date variable (`ds`, `prev_ds`, `next_ds` and their `_nodash` forms, kept in their format) by whole days (at most 100,000 either way), as Airflow's `macros.ds_add(ds, -7)` does (validate says so when it meets the Airflow spelling); `{{ params.x | raw }}` inserts a value unquoted (validate warns). Filters chain: `{{ ds | add_days(1) | raw }}`.\n");
    out
}
