//! The OpenAPI 3.1 document of the API, written as data.

use serde_json::{Map, Value, json};

use crate::route;

/// (method, path, summary, query parameters). What an action's body holds and what a route
/// answers are the types the application layer reads and serialises; see [`openapi`].
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const OPERATIONS: &[Operation] = &[
    (
        "GET",
        "/api/dags",
        "DAGs with schedule, next run, last run, paused; files that do not validate with their errors (as `vane dags --json`).",
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
    ),
    (
        "GET",
        "/api/runs/{id}",
        "A run with its tasks and their attempts (as `vane show ID --json`).",
        &[],
    ),
    (
        "GET",
        "/api/runs/{id}/why",
        "Why a run failed or differs: its first failure, then what differs from the last successful run of its DAG before it (or from `against`), most likely cause first, and what was equal (as `vane why ID --json`).",
        &[(
            "against",
            "compare with this run of the same DAG instead of the last successful one before (a run id, at most 9223372036854775807)",
        )],
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
    ),
    (
        "GET",
        "/api/dags/{id}/ticks",
        "The DAG's latest schedule ticks, newest first, with the decision for each (run and its id, or skipped and why), the next tick, and notes on what stops ticks from being decided (paused, no scheduler running), in the DAG's time zone (as `vane ticks DAG --json`).",
        &[(
            "limit",
            "how many ticks; default 20; 0 for all; at most 100000",
        )],
    ),
    (
        "GET",
        "/api/artifacts",
        "Artifacts with their versions (as `vane artifacts --json`).",
        &[("name", "every version of this artifact")],
    ),
    (
        "GET",
        "/api/artifacts/{name}/lineage",
        "What an artifact version was built from and what was built from it; name may be NAME@VERSION (as `vane lineage --json`).",
        &[],
    ),
    (
        "GET",
        "/api/models",
        "Models with their versions, stages, waiting rollouts and ledger (as `vane models --json`).",
        &[],
    ),
    (
        "GET",
        "/api/models/{name}",
        "One model's versions, stages, waiting rollouts and ledger (as `vane models NAME --json`).",
        &[],
    ),
    (
        "GET",
        "/api/alerts",
        "Open alerts (as `vane alerts --json`).",
        &[("all", "1 to include resolved ones")],
    ),
    (
        "GET",
        "/api/alerts/stats",
        "Per rule: how often it fired, verdicts, precision, and the change that would quiet a noisy rule (as `vane alerts --stats --json`).",
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
    ),
    (
        "POST",
        "/api/dags/{id}/trigger",
        "Queue a manual run for the scheduler; answers its run id.",
        &[],
    ),
    (
        "POST",
        "/api/dags/{id}/pause",
        "Stop creating scheduled runs of a DAG.",
        &[],
    ),
    (
        "POST",
        "/api/dags/{id}/unpause",
        "Resume scheduling a DAG.",
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/clear",
        "Queue tasks of a finished run to run again.",
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/stop",
        "Stop a queued or running run: its owner kills running tasks and starts no other; a queued run ends at once. Answers the run; 409 when it has ended.",
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/tasks/{task}/mark",
        "Mark a task of an ended run success or failed (with who and why); marked success, what depends on it and did not run is queued. Answers the run.",
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/approve",
        "Approve a rollout waiting at a stage.",
        &[],
    ),
    (
        "POST",
        "/api/runs/{id}/reject",
        "Reject a rollout waiting at a stage; it rolls back.",
        &[],
    ),
    (
        "POST",
        "/api/models/{name}/rollback",
        "Put the previous (or a given) production version back.",
        &[],
    ),
    (
        "POST",
        "/api/alerts/{id}/ack",
        "Acknowledge an alert and say whether it was real.",
        &[],
    ),
    (
        "POST",
        "/api/alerts/{id}/resolve",
        "Resolve an alert by hand; a recurrence opens a new one.",
        &[],
    ),
    (
        "POST",
        "/api/alerts/{id}/snooze",
        "Silence an alert's notifications for a while; it keeps counting.",
        &[],
    ),
    (
        "GET",
        "/api/status",
        "The database, and the schedulers that use it: up, stale or stopped, last heartbeat, lease (held, expired, released) and runs owned, pass durations (as `vane status --json`).",
        &[],
    ),
    (
        "GET",
        "/api/agents",
        "The agents on the database (host, labels, slots used, last heartbeat, state) and the attempts waiting for one, with why (as `vane agents --json`).",
        &[],
    ),
    ("GET", "/api/openapi.json", "This document.", &[]),
    (
        "GET",
        "/metrics",
        "Prometheus metrics, text format 0.0.4.",
        &[],
    ),
];

/// The JSON Schema of a path or query parameter. A name means the same on every route: the
/// router reads each with one function (`Query::number`, `Query::flag`), whose rules this
/// states.
fn schema_of(name: &str, path: &str) -> Value {
    let whole = json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX });
    match name {
        "id" if path.starts_with("/api/runs/") || path.starts_with("/api/alerts/") => whole,
        "against" => whole,
        // The router refuses a number above these (`Query::number`).
        "runs" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_GRID_RUNS }),
        "limit" | "last" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_ROWS }),
        "turns" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_TURNS }),
        "attempt" => json!({ "type": "integer", "minimum": 0, "maximum": route::MAX_ATTEMPT }),
        // `1`, `0`, or the bare name (`?follow`), beside JSON's booleans.
        "follow" | "all" => json!({
            "anyOf": [{ "type": "boolean" }, { "type": "string", "enum": ["", "0", "1"] }],
        }),
        "state" => json!({ "type": "string", "enum": ["queued", "running", "success", "failed"] }),
        _ => json!({ "type": "string" }),
    }
}

/// An action's body: its JSON Schema (usually a `$ref` into `components.schemas`) and
/// whether it has fields that cannot be left out.
#[derive(Debug, Clone)]
pub struct Body {
    pub schema: Value,
    pub required: bool,
}

/// What the application layer says of one operation, from its own types.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    /// An action's body; `None` for a route that takes none.
    pub body: Option<Body>,
    /// What it answers with 200; `None` for this document and the answers that are text.
    pub answer: Option<Value>,
}

/// The OpenAPI document served at `/api/openapi.json`. `schemas(method, path)` gives what an
/// operation reads and answers, from the types its handler deserialises and serialises (the
/// application layer owns those types). `components.schemas` is left for the caller, whose
/// schemas refer into it.
#[must_use]
pub fn openapi(schemas: &mut dyn FnMut(&str, &str) -> Schemas) -> Value {
    let mut paths = Map::new();
    for (method, path, summary, query) in OPERATIONS {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": schema_of(name, path) }))
            .collect();
        parameters.extend(query.iter().map(|(name, description)| {
            json!({ "name": name, "in": "query", "description": description, "schema": schema_of(name, path) })
        }));
        let Schemas { body, answer } = schemas(method, path);
        let ok = match (answer, *path) {
            (Some(schema), _) => json!({ "application/json": { "schema": schema } }),
            (None, "/api/openapi.json") => {
                json!({ "application/json": { "schema": { "type": "object" } } })
            }
            (None, "/metrics") => {
                json!({ "text/plain; version=0.0.4": { "schema": { "type": "string" } } })
            }
            (None, _) => json!({ "text/plain": { "schema": { "type": "string" } } }),
        };
        let mut operation = json!({
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": { "description": "OK", "content": ok },
                "400": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
                // The request did not arrive in time; a bug inside vane; too many requests
                // being answered at once.
                "408": { "$ref": "#/components/responses/Error" },
                "500": { "$ref": "#/components/responses/Error" },
                "503": { "$ref": "#/components/responses/Error" },
            },
        });
        if *method == "POST" {
            operation["security"] = json!([{ "bearer": [] }]);
            for code in ["401", "403", "409"] {
                operation["responses"][code] = json!({ "$ref": "#/components/responses/Error" });
            }
        }
        if let Some(body) = body {
            operation["requestBody"] = json!({
                "required": body.required,
                "content": { "application/json": { "schema": body.schema } },
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
        let doc = openapi(&mut |_, _| Schemas::default());
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
        let doc = openapi(&mut |_, _| Schemas::default());
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
        assert_eq!(
            checked, 8,
            "runs, limit twice, attempt, last twice, turns, against"
        );
    }
}
