//! `[alerts]` of the scheduler config file: which recorded events become alerts, where they are
//! sent, and who is on call.
//!
//! It lives beside the rest of `vane.toml`'s parser so a mistake in an alert rule is reported
//! like any other config mistake: every problem at once, with line, column and a hint.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use toml::Spanned;
use toml::de::DeValue;

use crate::parse::{Cx, suggestion, type_name};
use crate::spec::{DAY_SECS, Field, Ty, field, with_default};

/// What a rule fires on: a kind of event found in the recorded history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertOn {
    /// A run ended `failed`.
    RunFailed,
    /// A task failed after its last retry.
    TaskFailed,
    /// A run or task missed its SLA.
    SlaMissed,
    /// A data check of severity `warn` failed.
    CheckWarn,
    /// A data check of severity `error` failed.
    CheckFailed,
    /// A rollout's gate failed, or it was rejected: the candidate was rolled back.
    GateFailed,
    /// A sensor waited past its `timeout`.
    SensorTimeout,
}

impl AlertOn {
    pub const ALL: &'static [AlertOn] = &[
        AlertOn::RunFailed,
        AlertOn::TaskFailed,
        AlertOn::SlaMissed,
        AlertOn::CheckWarn,
        AlertOn::CheckFailed,
        AlertOn::GateFailed,
        AlertOn::SensorTimeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertOn::RunFailed => "run_failed",
            AlertOn::TaskFailed => "task_failed",
            AlertOn::SlaMissed => "sla_missed",
            AlertOn::CheckWarn => "check_warn",
            AlertOn::CheckFailed => "check_failed",
            AlertOn::GateFailed => "gate_failed",
            AlertOn::SensorTimeout => "sensor_timeout",
        }
    }

    pub fn parse(text: &str) -> Option<AlertOn> {
        AlertOn::ALL.iter().copied().find(|o| o.as_str() == text)
    }
}

impl std::fmt::Display for AlertOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// How urgent an alert is; a channel can take only alerts at or above a severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

impl AlertSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<AlertSeverity> {
        [
            AlertSeverity::Info,
            AlertSeverity::Warning,
            AlertSeverity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One `[[alerts.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// Stable name used in the database and `vane alerts --stats`: `name`, or `on` with the
    /// DAG and task filters (`task_failed:churn.train`).
    pub name: String,
    pub on: AlertOn,
    pub dag: Option<String>,
    pub task: Option<String>,
    pub severity: AlertSeverity,
    /// Channel names; every one exists in [`AlertsConfig::channels`].
    pub channels: Vec<String>,
    /// An open alert is notified again at most this often.
    pub cooldown: Duration,
    /// Most alerts of this rule notified in any hour; `None`: no limit.
    pub max_per_hour: Option<u32>,
}

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// JSON POST to an `http://` URL.
    Webhook {
        url: String,
        timeout: Duration,
        retries: u32,
    },
    /// A shell command that reads the JSON payload on stdin.
    Command { command: String, timeout: Duration },
    /// vane's own log (stderr of the process evaluating).
    Log,
}

/// One `[alerts.channels.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// Alerts below this severity are not sent here.
    pub min_severity: AlertSeverity,
}

/// `[alerts.oncall]`: people take turns, each for `every`, starting at `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCall {
    pub people: Vec<String>,
    pub start: DateTime<Utc>,
    pub every: Duration,
}

impl OnCall {
    /// Who is on call at `at`; before `start` the rotation has not begun.
    pub fn at(&self, at: DateTime<Utc>) -> Option<&str> {
        let since = (at - self.start).num_seconds();
        let every = self.every.as_secs().max(1) as i64;
        if since < 0 || self.people.is_empty() {
            return None;
        }
        let turn = (since / every) as usize % self.people.len();
        Some(&self.people[turn])
    }
}

/// `[alerts]`: empty (no rules) when the config file has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
    /// By name; `log` always exists, even when not declared.
    pub channels: BTreeMap<String, Channel>,
    pub oncall: Option<OnCall>,
}

const ON_NAMES: &[&str] = &[
    "run_failed",
    "task_failed",
    "sla_missed",
    "check_warn",
    "check_failed",
    "gate_failed",
    "sensor_timeout",
];
const SEVERITIES: &[&str] = &["info", "warning", "critical"];

const RULE: &[Field] = &[
    Field {
        required: true,
        ..field(
            "on",
            Ty::Enum(ON_NAMES),
            "The kind of recorded event the rule fires on.",
        )
    },
    field(
        "name",
        Ty::Ident,
        "Name of the rule in `vane alerts` and its statistics; defaults to `on` with the filters.",
    ),
    field("dag", Ty::Ident, "Only events of this DAG."),
    field("task", Ty::Ident, "Only events of this task."),
    with_default(
        field("severity", Ty::Enum(SEVERITIES), "How urgent the alert is."),
        "warning",
    ),
    with_default(
        field("channels", Ty::StrList, "Names of the channels notified."),
        "[\"log\"]",
    ),
    with_default(
        field(
            "cooldown",
            Ty::Duration {
                max_secs: 30 * DAY_SECS,
            },
            "An open alert is notified again at most this often, however often it recurs.",
        ),
        "1h",
    ),
    field(
        "max_per_hour",
        Ty::Int {
            min: 1,
            max: 10_000,
        },
        "Most alerts of this rule notified in any hour; the rest are recorded, not sent.",
    ),
];

const CHANNEL: &[Field] = &[
    Field {
        required: true,
        ..field(
            "kind",
            Ty::Enum(&["webhook", "command", "log"]),
            "Where notifications go.",
        )
    },
    field(
        "url",
        Ty::Str,
        "Webhook: the `http://` URL the JSON is POSTed to.",
    ),
    field(
        "command",
        Ty::Str,
        "Command: run with `sh -c`, the JSON on stdin.",
    ),
    with_default(
        field(
            "timeout",
            Ty::Duration { max_secs: 3600 },
            "Webhook or command: give up on one try after this long.",
        ),
        "10s",
    ),
    with_default(
        field(
            "retries",
            Ty::Int { min: 0, max: 10 },
            "Webhook: tries after a failed one.",
        ),
        "2",
    ),
    with_default(
        field(
            "min_severity",
            Ty::Enum(SEVERITIES),
            "Alerts below this severity are not sent to this channel.",
        ),
        "info",
    ),
];

const ONCALL: &[Field] = &[
    Field {
        required: true,
        ..field("people", Ty::StrList, "Who takes turns, in order.")
    },
    Field {
        required: true,
        ..field(
            "start",
            Ty::Date,
            "When the first person's turn begins (UTC).",
        )
    },
    with_default(
        field(
            "every",
            Ty::Str,
            "How long each turn lasts: `1w`, `2w`, or any duration such as `3d` or `12h`.",
        ),
        "1w",
    ),
];

const SECTIONS: &[&str] = &["rules", "channels", "oncall"];

/// Reads `[alerts]`, reporting every problem into `cx`.
pub(crate) fn parse(cx: &mut Cx<'_>, value: &Spanned<DeValue<'_>>) -> AlertsConfig {
    let mut config = AlertsConfig::default();
    config.channels.insert(
        "log".to_owned(),
        Channel {
            name: "log".to_owned(),
            kind: ChannelKind::Log,
            min_severity: AlertSeverity::Info,
        },
    );
    let DeValue::Table(table) = value.get_ref() else {
        cx.error(
            format!(
                "[alerts] must be a table, found {}",
                type_name(value.get_ref())
            ),
            value.span(),
            "write [[alerts.rules]] and [alerts.channels.NAME] tables",
        );
        return config;
    };
    // Channels first: rules name them.
    if let Some(channels) = table.get("channels") {
        channel_tables(cx, channels, &mut config);
    }
    let mut referenced: Vec<(String, Range<usize>)> = Vec::new();
    for (key, value) in table {
        match key.get_ref().as_ref() {
            "channels" => {}
            "rules" => rules(cx, value, &mut config, &mut referenced),
            "oncall" => config.oncall = oncall(cx, value),
            other => {
                let hint = suggestion(other, SECTIONS.iter().copied());
                cx.error(
                    format!("unknown key `{other}` in [alerts]"),
                    key.span(),
                    hint,
                );
            }
        }
    }
    // A channel with a mistake of its own is still declared: one error is enough.
    let mut declared: Vec<String> = config.channels.keys().cloned().collect();
    if let Some(DeValue::Table(channels)) = table.get("channels").map(|c| c.get_ref()) {
        declared.extend(channels.keys().map(|k| k.get_ref().to_string()));
    }
    for (name, span) in referenced {
        if !declared.contains(&name) {
            let hint = match suggestion(&name, declared.iter().map(String::as_str)) {
                h if h.starts_with("did you mean") => h,
                _ => format!("declare it as [alerts.channels.{name}] with a `kind`"),
            };
            cx.error(format!("no channel named `{name}`"), span, hint);
        }
    }
    config
}

fn channel_tables(cx: &mut Cx<'_>, value: &Spanned<DeValue<'_>>, config: &mut AlertsConfig) {
    let DeValue::Table(channels) = value.get_ref() else {
        cx.error(
            "[alerts.channels] must be a table of channels",
            value.span(),
            "write [alerts.channels.NAME] with kind = \"webhook\", \"command\" or \"log\"",
        );
        return;
    };
    for (name, value) in channels {
        let name = name.get_ref().as_ref().to_owned();
        let label = format!("[alerts.channels.{name}]");
        let keys = cx.table(value, &[CHANNEL], &label);
        let timeout = keys.dur("timeout").unwrap_or(Duration::from_secs(10));
        let min_severity = keys
            .str("min_severity")
            .and_then(AlertSeverity::parse)
            .unwrap_or(AlertSeverity::Info);
        let span = value.span();
        let kind = match keys.str("kind") {
            Some("webhook") => {
                let Some(url) = keys.str("url") else {
                    cx.error(
                        format!("{label} is a webhook without a `url`"),
                        span,
                        "add url = \"http://127.0.0.1:9000/hook\"",
                    );
                    continue;
                };
                if let Some(rest) = url.strip_prefix("https://") {
                    let at = keys.get("url").map_or(span.clone(), |e| e.span.clone());
                    cx.error(
                        format!("vane cannot send to `{url}`: it speaks plain HTTP only"),
                        at,
                        format!(
                            "run a local relay that forwards to https://{rest} and point url at it, e.g. http://127.0.0.1:8099/"
                        ),
                    );
                    continue;
                }
                if !url.starts_with("http://") {
                    let at = keys.get("url").map_or(span.clone(), |e| e.span.clone());
                    cx.error(
                        format!("`{url}` is not an http:// URL"),
                        at,
                        "write url = \"http://HOST:PORT/PATH\"",
                    );
                    continue;
                }
                ChannelKind::Webhook {
                    url: url.to_owned(),
                    timeout,
                    retries: keys.int("retries").unwrap_or(2) as u32,
                }
            }
            Some("command") => {
                let Some(command) = keys.str("command") else {
                    cx.error(
                        format!("{label} is a command channel without a `command`"),
                        span,
                        "add command = \"notify-send vane\" (it reads the alert JSON on stdin)",
                    );
                    continue;
                };
                ChannelKind::Command {
                    command: command.to_owned(),
                    timeout,
                }
            }
            Some(_) => ChannelKind::Log,
            None => continue,
        };
        config.channels.insert(
            name.clone(),
            Channel {
                name,
                kind,
                min_severity,
            },
        );
    }
}

fn rules(
    cx: &mut Cx<'_>,
    value: &Spanned<DeValue<'_>>,
    config: &mut AlertsConfig,
    referenced: &mut Vec<(String, Range<usize>)>,
) {
    let DeValue::Array(items) = value.get_ref() else {
        cx.error(
            "`rules` must be a list of tables",
            value.span(),
            "write each rule as [[alerts.rules]] followed by `on = \"run_failed\"` and its settings",
        );
        return;
    };
    for item in items {
        let keys = cx.table(item, &[RULE], "[[alerts.rules]]");
        if keys.get("channels").is_some() {
            referenced.extend(keys.list("channels").iter().cloned());
        }
        let Some(on) = keys.str("on").and_then(AlertOn::parse) else {
            continue;
        };
        let dag = keys.str("dag").map(str::to_owned);
        let task = keys.str("task").map(str::to_owned);
        let name = match keys.str("name") {
            Some(n) => n.to_owned(),
            None => {
                let mut name = on.as_str().to_owned();
                if let Some(d) = &dag {
                    name = format!("{name}:{d}");
                }
                if let Some(t) = &task {
                    name = format!("{name}.{t}");
                }
                name
            }
        };
        if config.rules.iter().any(|r| r.name == name) {
            cx.error(
                format!("two rules are named `{name}`"),
                item.span(),
                "give one of them a distinct `name = \"...\"`: statistics are kept per name",
            );
            continue;
        }
        let channels: Vec<String> = if keys.get("channels").is_some() {
            keys.list("channels")
                .iter()
                .map(|(n, _)| n.clone())
                .collect()
        } else {
            vec!["log".to_owned()]
        };
        config.rules.push(AlertRule {
            name,
            on,
            dag,
            task,
            severity: keys
                .str("severity")
                .and_then(AlertSeverity::parse)
                .unwrap_or(AlertSeverity::Warning),
            channels,
            cooldown: keys.dur("cooldown").unwrap_or(Duration::from_secs(3600)),
            max_per_hour: keys.int("max_per_hour").map(|n| n as u32),
        });
    }
}

fn oncall(cx: &mut Cx<'_>, value: &Spanned<DeValue<'_>>) -> Option<OnCall> {
    let keys = cx.table(value, &[ONCALL], "[alerts.oncall]");
    let people: Vec<String> = keys.list("people").iter().map(|(p, _)| p.clone()).collect();
    if keys.get("people").is_some() && people.is_empty() {
        cx.error(
            "[alerts.oncall] has nobody in `people`",
            value.span(),
            "list who takes turns: people = [\"alice\", \"bob\"]",
        );
    }
    let start = keys.date("start", chrono_tz::UTC)?;
    if people.is_empty() {
        return None;
    }
    let every = match (keys.str("every"), keys.get("every")) {
        (Some(text), Some(entry)) => match turn_length(text) {
            Ok(d) => d,
            Err(problem) => {
                cx.error(
                    format!("invalid turn length `{text}` for `every`: {problem}"),
                    entry.span.clone(),
                    "write a number of weeks (\"1w\") or a duration such as \"3d\" or \"12h\"",
                );
                return None;
            }
        },
        _ => Duration::from_secs(7 * DAY_SECS),
    };
    Some(OnCall {
        people,
        start,
        every,
    })
}

/// Turns are counted in weeks (`1w`), which DAG durations do not offer, or any duration.
fn turn_length(text: &str) -> Result<Duration, String> {
    let length = match text.trim().strip_suffix('w').map(str::parse::<u64>) {
        Some(Ok(weeks)) => Duration::from_secs(weeks.saturating_mul(7 * DAY_SECS)),
        _ => crate::parse_duration(text)?,
    };
    if length.is_zero() || length.as_secs() > 366 * DAY_SECS {
        return Err("a turn lasts from 1s to 52w".to_owned());
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_config;

    fn errors(source: &str) -> Vec<String> {
        parse_config(source)
            .expect_err("invalid")
            .iter()
            .map(|d| d.render("vane.toml", source))
            .collect()
    }

    #[test]
    fn a_full_config_reads_rules_channels_and_rotation() {
        let config = parse_config(
            r#"
[[alerts.rules]]
on = "task_failed"
dag = "churn"
severity = "critical"
channels = ["pager", "log"]
cooldown = "30m"
max_per_hour = 5

[alerts.channels.pager]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
retries = 1

[alerts.oncall]
people = ["alice", "bob"]
start = "2026-01-05"
every = "1w"
"#,
        )
        .expect("valid");
        let rule = &config.alerts.rules[0];
        assert_eq!(rule.name, "task_failed:churn");
        assert_eq!(rule.severity, AlertSeverity::Critical);
        assert_eq!(rule.cooldown, Duration::from_secs(1800));
        assert_eq!(rule.max_per_hour, Some(5));
        assert!(matches!(
            config.alerts.channels["pager"].kind,
            ChannelKind::Webhook { retries: 1, .. }
        ));
        let oncall = config.alerts.oncall.expect("rotation");
        let day = |d: &str| {
            chrono::DateTime::parse_from_rfc3339(d)
                .expect("date")
                .with_timezone(&Utc)
        };
        assert_eq!(oncall.at(day("2026-01-06T00:00:00Z")), Some("alice"));
        assert_eq!(oncall.at(day("2026-01-13T00:00:00Z")), Some("bob"));
        assert_eq!(oncall.at(day("2026-01-20T00:00:00Z")), Some("alice"));
        assert_eq!(oncall.at(day("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn every_mistake_is_reported_with_its_place_and_a_fix() {
        let errors = errors(
            r#"
[[alerts.rules]]
on = "task_fialed"
chanels = ["pager"]

[[alerts.rules]]
on = "run_failed"
channels = ["pagr"]

[alerts.channels.pager]
kind = "webhook"
url = "https://hooks.example.com/x"
"#,
        );
        let all = errors.join("\n");
        assert!(all.contains("did you mean `task_failed`?"), "{all}");
        assert!(all.contains("unknown key `chanels`"), "{all}");
        assert!(all.contains("did you mean `channels`?"), "{all}");
        assert!(all.contains("no channel named `pagr`"), "{all}");
        assert!(all.contains("plain HTTP only"), "{all}");
        assert!(all.contains("local relay"), "{all}");
        assert!(all.contains("vane.toml:12:7"), "{all}");
    }
}
