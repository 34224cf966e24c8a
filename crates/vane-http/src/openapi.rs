//! The OpenAPI 3.1 document of the API, written as data.

use serde_json::{Map, Value, json};

use crate::route;

/// (method, path, summary, query parameters, body fields of an action).
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

const OPERATIONS: &[Operation] = &[
    (
        "GET",
        "/api/dags",
        "DAGs with schedule, next run, last run, paused; files that do not validate with their errors (as `vane dags --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/dags/{id}",
        "One DAG: schedule, params, tasks with their upstream tasks and kind, and a grid of its recent runs with each task's state.",
        &[(
            "runs",
            "how many recent runs in the grid, default 25, at most 200",
        )],
        &[],
    ),
    (
        "GET",
        "/api/runs",
        "Runs, newest first (as `vane runs --json`).",
        &[
            ("dag", "only runs of this DAG"),
            ("state", "queued, running, success or failed"),
            ("limit", "how many, default 20; 0 for all; at most 100000"),
        ],
        &[],
    ),
    (
        "GET",
        "/api/runs/{id}",
        "A run with its tasks and their attempts (as `vane show ID --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/runs/{id}/tasks/{task}/logs",
        "The log of a task attempt, as text. With follow=1 new bytes are sent while the attempt runs; the response ends when it ends.",
        &[
            (
                "attempt",
                "attempt number, default the latest; at most 10000",
            ),
            ("follow", "1 to stream while the attempt runs"),
        ],
        &[],
    ),
    (
        "GET",
        "/api/dags/{id}/metrics",
        "Numbers tasks reported, as series over runs (as `vane metrics DAG --json`).",
        &[
            ("task", "only this task"),
            ("name", "only this metric"),
            (
                "last",
                "the last N points of each series; 0 for all; at most 100000",
            ),
        ],
        &[],
    ),
    (
        "GET",
        "/api/dags/{id}/checks",
        "History of data checks (as `vane checks DAG --json`).",
        &[
            ("task", "only this validate task"),
            ("check", "only this check"),
            ("last", "the last N evaluations; 0 for all; at most 100000"),
        ],
        &[],
    ),
    (
        "GET",
        "/api/dags/{id}/ticks",
        "The DAG's latest schedule ticks, newest first, with the decision for each (run and its id, or skipped and why), the next tick, and notes on what stops ticks from being decided (paused, no scheduler running), in the DAG's time zone (as `vane ticks DAG --json`).",
        &[(
            "limit",
            "how many ticks; default 20; 0 for all; at most 100000",
        )],
        &[],
    ),
    (
        "GET",
        "/api/artifacts",
        "Artifacts with their versions (as `vane artifacts --json`).",
        &[("name", "every version of this artifact")],
        &[],
    ),
    (
        "GET",
        "/api/artifacts/{name}/lineage",
        "What an artifact version was built from and what was built from it; name may be NAME@VERSION (as `vane lineage --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/models",
        "Models with their versions, stages, waiting rollouts and ledger (as `vane models --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/models/{name}",
        "One model's versions, stages, waiting rollouts and ledger (as `vane models NAME --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/alerts",
        "Open alerts (as `vane alerts --json`).",
        &[("all", "1 to include resolved ones")],
        &[],
    ),
    (
        "GET",
        "/api/alerts/stats",
        "Per rule: how often it fired, verdicts, precision, and the change that would quiet a noisy rule (as `vane alerts --stats --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/oncall",
        "The on-call rotation: who is on call now, and the coming turns.",
        &[(
            "turns",
            "how many turns from the current one, default 6, at most 1000",
        )],
        &[],
    ),
    (
        "POST",
        "/api/dags/{id}/trigger",
        "Queue a manual run for the scheduler; answers its run id.",
        &[],
        &[
            ("params", "object of parameter overrides, KEY: VALUE"),
            ("date", "logical date, YYYY-MM-DD or RFC 3339; default now"),
        ],
    ),
    (
        "POST",
        "/api/dags/{id}/pause",
        "Stop creating scheduled runs of a DAG.",
        &[],
        &[],
    ),
    (
        "POST",
        "/api/dags/{id}/unpause",
        "Resume scheduling a DAG.",
        &[],
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/clear",
        "Queue tasks of a finished run to run again.",
        &[],
        &[
            ("tasks", "list of task ids; default every task"),
            ("downstream", "also every task downstream"),
            ("failed_only", "only failed or upstream_failed tasks"),
            (
                "params",
                "object of parameter overrides to run again with, KEY: VALUE",
            ),
            ("by", "who clears it, recorded with a change of params"),
        ],
    ),
    (
        "POST",
        "/api/runs/{id}/stop",
        "Stop a queued or running run: its owner kills running tasks and starts no other; a queued run ends at once. Answers the run; 409 when it has ended.",
        &[],
        &[
            (
                "task",
                "stop only this running task; the run goes on by its trigger rules",
            ),
            ("by", "who stops it; default the server's user"),
            ("reason", "why, recorded in the run's reason"),
        ],
    ),
    (
        "POST",
        "/api/runs/{id}/tasks/{task}/mark",
        "Mark a task of an ended run success or failed (with who and why); marked success, what depends on it and did not run is queued. Answers the run.",
        &[],
        &[
            ("state", "\"success\" or \"failed\" (required)"),
            ("by", "who marks it; default the server's user"),
            ("reason", "why, recorded as the task's reason"),
        ],
    ),
    (
        "POST",
        "/api/runs/{id}/approve",
        "Approve a rollout waiting at a stage.",
        &[],
        &[
            ("by", "who approves"),
            ("stage", "the waiting stage; default the one that waits"),
            ("note", "what they saw"),
        ],
    ),
    (
        "POST",
        "/api/runs/{id}/reject",
        "Reject a rollout waiting at a stage; it rolls back.",
        &[],
        &[
            ("by", "who rejects"),
            ("stage", "the waiting stage; default the one that waits"),
            ("reason", "why"),
        ],
    ),
    (
        "POST",
        "/api/models/{name}/rollback",
        "Put the previous (or a given) production version back.",
        &[],
        &[
            ("to", "version number; default the previous one"),
            ("by", "who"),
            ("reason", "why"),
        ],
    ),
    (
        "POST",
        "/api/alerts/{id}/ack",
        "Acknowledge an alert and say whether it was real.",
        &[],
        &[("verdict", "real or noise"), ("by", "who")],
    ),
    (
        "POST",
        "/api/alerts/{id}/resolve",
        "Resolve an alert by hand; a recurrence opens a new one.",
        &[],
        &[("by", "who")],
    ),
    (
        "POST",
        "/api/alerts/{id}/snooze",
        "Silence an alert's notifications for a while; it keeps counting.",
        &[],
        &[("for", "how long, e.g. 2h; at most 7d")],
    ),
    (
        "GET",
        "/api/status",
        "The database, and the schedulers that use it: up, stale or stopped, last heartbeat, lease (held, expired, released) and runs owned, pass durations (as `vane status --json`).",
        &[],
        &[],
    ),
    (
        "GET",
        "/api/agents",
        "The agents on the database (host, labels, slots used, last heartbeat, state) and the attempts waiting for one, with why (as `vane agents --json`).",
        &[],
        &[],
    ),
    ("GET", "/api/openapi.json", "This document.", &[], &[]),
    (
        "GET",
        "/metrics",
        "Prometheus metrics, text format 0.0.4.",
        &[],
        &[],
    ),
];

/// The JSON Schema of a parameter or body field. A name means the same on every route: the
/// router and the handlers read each with one function (`Query::number`, `Query::flag`, the
/// handlers' `field`, `flag`, `list`), whose rules this states.
fn schema_of(name: &str, path: &str) -> Value {
    let whole = json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX });
    match name {
        "id" if path.starts_with("/api/runs/") || path.starts_with("/api/alerts/") => whole,
        // The router refuses a number above these (`Query::number`).
        "runs" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_GRID_RUNS }),
        "limit" | "last" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_ROWS }),
        "turns" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_TURNS }),
        "attempt" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_ATTEMPT }),
        // In a body, JSON's booleans; in a query, also `1`, `0`, or the bare name (`?follow`).
        "downstream" | "failed_only" => json!({ "type": "boolean" }),
        "follow" | "all" => json!({
            "anyOf": [{ "type": "boolean" }, { "type": "string", "enum": ["", "0", "1"] }],
        }),
        "params" => json!({
            "type": "object",
            "description": "the DAG's params by name; each value has its default's type",
            "additionalProperties": { "type": ["string", "number", "boolean"] },
        }),
        "tasks" => json!({ "type": "array", "items": { "type": "string" } }),
        "to" => json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX }),
        "date" => json!({ "type": "string", "format": "date" }),
        "state" if path.ends_with("/mark") => {
            json!({ "type": "string", "enum": ["success", "failed"] })
        }
        "state" => json!({ "type": "string", "enum": ["queued", "running", "success", "failed"] }),
        "verdict" => json!({ "type": "string", "enum": ["real", "noise"] }),
        // Who decides is recorded in the ledger: not blank.
        "by" if required_of(path).contains(&"by") => json!({ "type": "string", "pattern": "\\S" }),
        "for" => json!({
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$",
            "description": "a duration between 1s and 7d, e.g. 2h or 1h30m",
        }),
        _ => json!({ "type": "string" }),
    }
}

/// Refuses a body field the action does not take (a typo such as `reasn` would otherwise be
/// dropped without a word), from the same table the document is made of.
///
/// # Errors
/// [`crate::ApiError::BadRequest`] naming the field and the fields there are.
pub(crate) fn check_body(method: &str, pattern: &str, body: &Value) -> Result<(), crate::ApiError> {
    let Some(fields) = body.as_object() else {
        return Ok(());
    };
    let Some((_, _, _, _, known)) = OPERATIONS
        .iter()
        .find(|(m, p, ..)| *m == method && *p == pattern)
    else {
        return Ok(());
    };
    for name in fields.keys() {
        if !known.iter().any(|(k, _)| k == name) {
            let there: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            return Err(crate::ApiError::BadRequest(if there.is_empty() {
                format!("{method} {pattern} takes no body fields; `{name}` is one")
            } else {
                format!(
                    "unknown field `{name}` for {method} {pattern}; its fields are {}",
                    there.join(", ")
                )
            }));
        }
    }
    Ok(())
}

/// Body fields an action cannot do without.
fn required_of(path: &str) -> &'static [&'static str] {
    match path.rsplit('/').next().unwrap_or_default() {
        "approve" => &["by"],
        "reject" => &["by", "reason"],
        "mark" => &["state"],
        "rollback" => &["reason"],
        "snooze" => &["for"],
        _ => &[],
    }
}

/// The OpenAPI document served at `/api/openapi.json`.
#[must_use]
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, query, body) in OPERATIONS {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": schema_of(name, path) }))
            .collect();
        parameters.extend(query.iter().map(|(name, description)| {
            json!({ "name": name, "in": "query", "description": description, "schema": schema_of(name, path) })
        }));
        let action = *method == "POST";
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": { "description": "OK" },
                "400": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
            },
        });
        if action {
            operation["security"] = json!([{ "bearer": [] }]);
            for code in ["401", "403", "409"] {
                operation["responses"][code] = json!({ "$ref": "#/components/responses/Error" });
            }
            let properties: Map<String, Value> = body
                .iter()
                .map(|(name, description)| {
                    let mut schema = schema_of(name, path);
                    // A field left out and a field sent as null mean the same to the handlers.
                    if !required_of(path).contains(name) {
                        schema = json!({ "anyOf": [schema, { "type": "null" }] });
                    }
                    schema["description"] = (*description).into();
                    ((*name).to_owned(), schema)
                })
                .collect();
            let required = required_of(path);
            operation["requestBody"] = json!({
                "required": !required.is_empty(),
                "content": { "application/json": { "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                } } },
            });
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "vane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "DAGs, runs, logs, checks, artifacts, models and alerts of a vane project. Actions need `Authorization: Bearer TOKEN`; reads are open on a loopback address and need the token elsewhere.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "What went wrong and what to do",
                    "content": { "application/json": { "schema": {
                        "type": "object", "required": ["error"],
                        "properties": { "error": { "type": "string" } },
                    } } },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ROUTES;

    #[test]
    fn every_route_the_router_knows_is_documented() {
        let doc = openapi();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path} is routed but not in openapi.json"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents a route the router does not have"
        );
    }

    /// Every number a query takes has the bound the router enforces: the largest the document
    /// allows is accepted, one more is refused with a message naming the bound.
    #[test]
    fn query_numbers_are_bounded_as_documented() {
        let doc = openapi();
        let mut checked = 0;
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, operation) in methods.as_object().unwrap() {
                for parameter in operation["parameters"].as_array().unwrap() {
                    let schema = &parameter["schema"];
                    if parameter["in"] != "query" || schema["type"] != "integer" {
                        continue;
                    }
                    let name = parameter["name"].as_str().unwrap();
                    let max = schema["maximum"].as_u64().expect("a maximum");
                    let description = parameter["description"].as_str().unwrap();
                    assert!(
                        description.contains(&format!("at most {max}")),
                        "{path} {name}: {description}"
                    );
                    let target = path
                        .replace("{id}", "1")
                        .replace("{task}", "t")
                        .replace("{name}", "m");
                    let method = method.to_uppercase();
                    let at = |n: u64| crate::Route::parse(&method, &format!("{target}?{name}={n}"));
                    assert!(at(max).is_ok(), "{path} {name}={max}");
                    let err = at(max + 1).unwrap_err();
                    assert!(
                        matches!(err, crate::ApiError::BadRequest(ref m) if m.contains(&format!("{name} is at most {max}"))),
                        "{path} {name}: {err:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 7, "runs, limit twice, attempt, last twice, turns");
    }
}
