//! What a request asks for, parsed from its method, path and query.

use crate::ApiError;

/// Every route the server answers, as (method, path pattern); `{name}` is one path segment.
/// The OpenAPI document must describe each (a test checks it).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/dags"),
    ("GET", "/api/dags/{id}"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/{id}"),
    ("GET", "/api/runs/{id}/tasks/{task}/logs"),
    ("GET", "/api/runs/{id}/why"),
    ("GET", "/api/dags/{id}/metrics"),
    ("GET", "/api/dags/{id}/checks"),
    ("GET", "/api/dags/{id}/ticks"),
    ("GET", "/api/artifacts"),
    ("GET", "/api/artifacts/{name}/lineage"),
    ("GET", "/api/models"),
    ("GET", "/api/models/{name}"),
    ("GET", "/api/alerts"),
    ("GET", "/api/alerts/stats"),
    ("GET", "/api/oncall"),
    ("GET", "/api/status"),
    ("GET", "/api/agents"),
    ("POST", "/api/dags/{id}/trigger"),
    ("POST", "/api/dags/{id}/pause"),
    ("POST", "/api/dags/{id}/unpause"),
    ("POST", "/api/runs/{id}/clear"),
    ("POST", "/api/runs/{id}/stop"),
    ("POST", "/api/runs/{id}/tasks/{task}/mark"),
    ("POST", "/api/runs/{id}/approve"),
    ("POST", "/api/runs/{id}/reject"),
    ("POST", "/api/models/{name}/rollback"),
    ("POST", "/api/alerts/{id}/ack"),
    ("POST", "/api/alerts/{id}/resolve"),
    ("POST", "/api/alerts/{id}/snooze"),
    ("GET", "/api/openapi.json"),
    ("GET", "/metrics"),
];

/// The most runs `runs=` asks for in a DAG's grid: each is read in full.
pub(crate) const MAX_GRID_RUNS: u64 = 200;
/// The most rows `limit=` and `last=` ask for (0 asks for all). An answer is built in memory
/// before it is sent, so a page is bounded.
pub(crate) const MAX_ROWS: u64 = 100_000;
/// The highest attempt number `attempt=` names; no task is tried that often.
pub(crate) const MAX_ATTEMPT: u64 = 10_000;
/// The most on-call turns `turns=` lists: a million made a 122 MB answer, and a long enough
/// rotation ran past the last date there is.
pub(crate) const MAX_TURNS: u64 = 1_000;

/// A parsed request. Actions carry their JSON body separately (see [`crate::Api`]).
///
/// Exhaustive on purpose: a new route fails to compile in the binary until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Dags,
    /// One DAG: its tasks and edges, and a grid of its last `runs` runs by task.
    Dag {
        dag: String,
        runs: usize,
    },
    Runs {
        dag: Option<String>,
        state: Option<String>,
        limit: usize,
    },
    Run {
        id: i64,
    },
    /// What differs from the last good run (`vane why`), or from run `against`.
    Why {
        run: i64,
        against: Option<i64>,
    },
    Logs {
        run: i64,
        task: String,
        attempt: Option<u32>,
        follow: bool,
    },
    DagMetrics {
        dag: String,
        task: Option<String>,
        name: Option<String>,
        last: usize,
    },
    DagChecks {
        dag: String,
        task: Option<String>,
        check: Option<String>,
        last: usize,
    },
    /// A DAG's latest schedule ticks and what was decided for each.
    DagTicks {
        dag: String,
        limit: usize,
    },
    /// Every artifact, or every version of one.
    Artifacts {
        name: Option<String>,
    },
    Lineage {
        artifact: String,
    },
    Models,
    Model {
        name: String,
    },
    Alerts {
        all: bool,
    },
    AlertStats,
    /// The rotation: who is on call now and the next `turns` turns.
    OnCall {
        turns: usize,
    },
    /// The schedulers that use this database, with their heartbeats.
    Status,
    /// The agents, and the attempts waiting for one.
    Agents,
    Trigger {
        dag: String,
    },
    Pause {
        dag: String,
        paused: bool,
    },
    Clear {
        run: i64,
    },
    Stop {
        run: i64,
    },
    Mark {
        run: i64,
        task: String,
    },
    Approve {
        run: i64,
    },
    Reject {
        run: i64,
    },
    Rollback {
        model: String,
    },
    Ack {
        alert: i64,
    },
    Resolve {
        alert: i64,
    },
    Snooze {
        alert: i64,
    },
    OpenApi,
    Metrics,
}

impl Route {
    /// Whether the route changes something, and so needs the token.
    #[must_use]
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            Self::Trigger { .. }
                | Self::Pause { .. }
                | Self::Clear { .. }
                | Self::Stop { .. }
                | Self::Mark { .. }
                | Self::Approve { .. }
                | Self::Reject { .. }
                | Self::Rollback { .. }
                | Self::Ack { .. }
                | Self::Resolve { .. }
                | Self::Snooze { .. }
        )
    }

    /// The pattern of [`ROUTES`] that `method` and the path of `target` match.
    #[must_use]
    pub fn pattern(method: &str, target: &str) -> Option<&'static str> {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        let segments: Vec<String> = path
            .trim_end_matches('/')
            .split('/')
            .map(decode)
            .collect::<Result<_, _>>()
            .ok()?;
        ROUTES
            .iter()
            .find(|(m, p)| *m == method && captures(p, &segments).is_some())
            .map(|(_, p)| *p)
    }

    /// Parses a request target (`/api/runs?dag=x&limit=5`).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for a path no route has, [`ApiError::MethodNotAllowed`] for a
    /// known path with another method, [`ApiError::BadRequest`] for a malformed id or query.
    pub fn parse(method: &str, target: &str) -> Result<Self, ApiError> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<String> = path
            .trim_end_matches('/')
            .split('/')
            .map(decode)
            .collect::<Result<_, _>>()?;
        let mut known_path = false;
        for (route_method, pattern) in ROUTES {
            let Some(captures) = captures(pattern, &segments) else {
                continue;
            };
            known_path = true;
            if *route_method != method {
                continue;
            }
            let query = Query::parse(query)?;
            return build(pattern, &captures, &query);
        }
        if known_path {
            let allowed: Vec<&str> = ROUTES
                .iter()
                .filter(|(_, p)| captures(p, &segments).is_some())
                .map(|(m, _)| *m)
                .collect();
            return Err(ApiError::MethodNotAllowed {
                message: format!(
                    "{path} does not take {method}; use {}",
                    allowed.join(" or ")
                ),
                allow: allowed.join(", "),
            });
        }
        Err(ApiError::NotFound(format!(
            "no route {path}; GET /api/openapi.json lists them"
        )))
    }
}

/// The `{name}` segments of `segments` when they match `pattern`.
fn captures<'a>(pattern: &str, segments: &'a [String]) -> Option<Vec<&'a str>> {
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut out = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        if part.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            out.push(segment.as_str());
        } else if part != segment {
            return None;
        }
    }
    Some(out)
}

fn build(pattern: &str, captures: &[&str], query: &Query) -> Result<Route, ApiError> {
    let text = |i: usize| captures[i].to_owned();
    // A path names a resource: `/api/runs/abc` names none, as `/api/runs/999` names none.
    let id = |i: usize, what: &str| -> Result<i64, ApiError> {
        captures[i].parse().map_err(|_| {
            ApiError::NotFound(format!(
                "no {what} `{}`: {what} ids are whole numbers (e.g. /api/{what}s/12)",
                captures[i]
            ))
        })
    };
    Ok(match pattern {
        "/api/dags" => Route::Dags,
        "/api/dags/{id}" => Route::Dag {
            dag: text(0),
            runs: query.number("runs", MAX_GRID_RUNS)?.unwrap_or(25),
        },
        "/api/runs" => Route::Runs {
            dag: query.text("dag"),
            // `state=` names no state: refused by the state's parser, not read as "any".
            state: query.given("state"),
            limit: query.number("limit", MAX_ROWS)?.unwrap_or(20),
        },
        "/api/runs/{id}" => Route::Run { id: id(0, "run")? },
        "/api/runs/{id}/why" => Route::Why {
            run: id(0, "run")?,
            against: query.number("against", i64::MAX as u64)?,
        },
        "/api/runs/{id}/tasks/{task}/logs" => Route::Logs {
            run: id(0, "run")?,
            task: text(1),
            attempt: query.number("attempt", MAX_ATTEMPT)?,
            follow: query.flag("follow")?,
        },
        "/api/dags/{id}/metrics" => Route::DagMetrics {
            dag: text(0),
            task: query.text("task"),
            name: query.text("name"),
            last: query.number("last", MAX_ROWS)?.unwrap_or(0),
        },
        "/api/dags/{id}/checks" => Route::DagChecks {
            dag: text(0),
            task: query.text("task"),
            check: query.text("check"),
            last: query.number("last", MAX_ROWS)?.unwrap_or(0),
        },
        "/api/dags/{id}/ticks" => Route::DagTicks {
            dag: text(0),
            limit: query.number("limit", MAX_ROWS)?.unwrap_or(20),
        },
        "/api/artifacts" => Route::Artifacts {
            name: query.text("name"),
        },
        "/api/artifacts/{name}/lineage" => Route::Lineage { artifact: text(0) },
        "/api/models" => Route::Models,
        "/api/models/{name}" => Route::Model { name: text(0) },
        "/api/alerts" => Route::Alerts {
            all: query.flag("all")?,
        },
        "/api/alerts/stats" => Route::AlertStats,
        "/api/oncall" => Route::OnCall {
            turns: query.number("turns", MAX_TURNS)?.unwrap_or(6),
        },
        "/api/dags/{id}/trigger" => Route::Trigger { dag: text(0) },
        "/api/dags/{id}/pause" => Route::Pause {
            dag: text(0),
            paused: true,
        },
        "/api/dags/{id}/unpause" => Route::Pause {
            dag: text(0),
            paused: false,
        },
        "/api/runs/{id}/clear" => Route::Clear { run: id(0, "run")? },
        "/api/runs/{id}/stop" => Route::Stop { run: id(0, "run")? },
        "/api/runs/{id}/tasks/{task}/mark" => Route::Mark {
            run: id(0, "run")?,
            task: text(1),
        },
        "/api/runs/{id}/approve" => Route::Approve { run: id(0, "run")? },
        "/api/runs/{id}/reject" => Route::Reject { run: id(0, "run")? },
        "/api/models/{name}/rollback" => Route::Rollback { model: text(0) },
        "/api/alerts/{id}/ack" => Route::Ack {
            alert: id(0, "alert")?,
        },
        "/api/alerts/{id}/resolve" => Route::Resolve {
            alert: id(0, "alert")?,
        },
        "/api/alerts/{id}/snooze" => Route::Snooze {
            alert: id(0, "alert")?,
        },
        "/api/status" => Route::Status,
        "/api/agents" => Route::Agents,
        "/api/openapi.json" => Route::OpenApi,
        "/metrics" => Route::Metrics,
        other => {
            return Err(ApiError::Internal(format!(
                "route {other} is listed but not built; this is a bug in vane"
            )));
        }
    })
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(Self(pairs))
    }

    fn text(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    }

    /// The value as given, empty included.
    fn given(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    /// A whole number from 0 to `max`.
    fn number<T: TryFrom<u64>>(&self, key: &str, max: u64) -> Result<Option<T>, ApiError> {
        // `limit=` says a number and gives none: an error, not the default.
        let Some((_, v)) = self.0.iter().find(|(k, _)| k == key) else {
            return Ok(None);
        };
        let too_large =
            || ApiError::BadRequest(format!("`{key}={v}` is too large: {key} is at most {max}"));
        let n: u64 = match v.parse() {
            Ok(n) => n,
            Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(too_large());
            }
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "`{key}={v}` is not a whole number; give e.g. `{key}=5`"
                )));
            }
        };
        if n > max {
            return Err(too_large());
        }
        T::try_from(n).map(Some).map_err(|_| too_large())
    }

    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self
            .0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
        {
            None | Some("0" | "false") => Ok(false),
            Some("" | "1" | "true") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "`{key}={other}` is not a flag; give `{key}=1` or `{key}=0`"
            ))),
        }
    }
}

/// Percent-decoding of a path segment or query part (`+` is a space in a query, as browsers
/// send forms).
fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`{text}` has a malformed percent escape; encode `%` as %25"
                        ))
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::BadRequest(format!("`{text}` does not decode to UTF-8 text")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_ids_names_and_queries() {
        assert_eq!(
            Route::parse(
                "GET",
                "/api/runs/7/tasks/train%20model/logs?attempt=2&follow=1"
            )
            .unwrap(),
            Route::Logs {
                run: 7,
                task: "train model".into(),
                attempt: Some(2),
                follow: true
            }
        );
        assert_eq!(
            Route::parse("GET", "/api/runs?dag=etl&state=failed").unwrap(),
            Route::Runs {
                dag: Some("etl".into()),
                state: Some("failed".into()),
                limit: 20
            }
        );
    }

    #[test]
    fn bad_requests_say_what_to_send() {
        let err = Route::parse("GET", "/api/runs/abc").unwrap_err();
        assert!(
            matches!(err, ApiError::NotFound(ref m) if m.contains("no run `abc`") && m.contains("whole numbers"))
        );
        let err = Route::parse("GET", "/api/runs?limit=lots").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(ref m) if m.contains("limit=lots")));
        let err = Route::parse("GET", "/api/dags/etl/trigger").unwrap_err();
        assert!(
            matches!(err, ApiError::MethodNotAllowed { ref message, ref allow } if message.contains("use POST") && allow == "POST")
        );
        let err = Route::parse("GET", "/api/nothing").unwrap_err();
        assert!(matches!(err, ApiError::NotFound(ref m) if m.contains("/api/nothing")));
    }

    #[test]
    fn every_listed_route_builds() {
        for (method, pattern) in ROUTES {
            let target = pattern
                .replace("{id}", "1")
                .replace("{task}", "t")
                .replace("{name}", "m");
            assert!(
                Route::parse(method, &target).is_ok(),
                "{method} {target} does not parse"
            );
        }
    }

    /// `turns=263000` ran a 52-week rotation past the last date chrono has (a panic), and
    /// `turns=1000000` built a 122 MB answer; numbers past a route's bound are refused.
    #[test]
    fn a_huge_oncall_turns_or_limit_is_refused_naming_its_bound() {
        assert_eq!(
            Route::parse("GET", "/api/oncall?turns=1000").unwrap(),
            Route::OnCall { turns: 1000 }
        );
        for target in [
            "/api/oncall?turns=263000",
            "/api/oncall?turns=1000000",
            "/api/oncall?turns=99999999999999999999999999",
        ] {
            let err = Route::parse("GET", target).unwrap_err();
            assert!(
                matches!(err, ApiError::BadRequest(ref m) if m.contains("is too large: turns is at most 1000")),
                "{target}: {err:?}"
            );
        }
        let err = Route::parse("GET", "/api/runs?limit=18446744073709551615").unwrap_err();
        assert!(
            matches!(err, ApiError::BadRequest(ref m) if m.contains("limit is at most 100000")),
            "{err:?}"
        );
    }
}
