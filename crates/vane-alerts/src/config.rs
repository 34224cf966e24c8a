//! `[alerts]` of the scheduler config file: which recorded events become alerts, where they are
//! sent, and who is on call; and `[[alerts]]` of a DAG file, rules about that DAG alone.
//!
//! It is read with `vane-dag`'s public checker ([`vane_dag::config`]) and registered as a
//! [`vane_dag::Section`] ([`ALERTS`]), so a mistake in an alert rule is reported like any other
//! config mistake, in the same pass: every problem at once, with line, column and a hint. Both
//! kinds of rule go through one reader, so they cannot drift apart.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use vane_dag::config::{
    Checked, Checker, DAY_SECS, DeValue, Field, Spanned, Ty, Url, field, found, required,
    suggestion, with_default,
};
use vane_dag::{DagSet, Diagnostic, Opaque, Section as _};

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
    /// A rollout has waited for a person's approval longer than the rule's `after`.
    ApprovalWaiting,
    /// An attempt has waited for an agent with its labels longer than the rule's `after`.
    AgentWaiting,
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
        AlertOn::ApprovalWaiting,
        AlertOn::AgentWaiting,
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
            AlertOn::ApprovalWaiting => "approval_waiting",
            AlertOn::AgentWaiting => "agent_waiting",
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

/// One `[[alerts.rules]]` entry of the config, or `[[alerts]]` of a DAG file (with `dag` set to
/// that DAG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    /// Stable name used in the database and `vane alerts --stats`: `name`, or `on` with the
    /// DAG and task filters (`task_failed:churn.train`).
    pub name: String,
    pub on: AlertOn,
    pub dag: Option<String>,
    pub task: Option<String>,
    pub severity: AlertSeverity,
    /// Channel names; every one is `log` or exists in [`AlertsConfig::channels`].
    pub channels: Vec<String>,
    /// An open alert is notified again at most this often.
    pub cooldown: Duration,
    /// Most alerts of this rule notified in any hour; `None`: no limit.
    pub max_per_hour: Option<u32>,
    /// `approval_waiting`: how long a rollout may wait for a person before the rule fires.
    pub after: Duration,
}

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// JSON POST to an `http://` or `https://` URL.
    Webhook {
        /// Parsed when the config is loaded: a malformed URL is a config error.
        url: Url,
        timeout: Duration,
        retries: u32,
        /// `ca_file`: an https webhook trusts these CAs instead of the system's.
        ca: Option<CaFile>,
        /// The shape of the body: the endpoint decides, not vane.
        format: WebhookFormat,
    },
    /// A shell command that reads the JSON payload on stdin.
    Command { command: String, timeout: Duration },
    /// vane's own log (stderr of the process evaluating).
    Log,
}

/// `format` of a webhook: what the endpoint at `url` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookFormat {
    /// vane's own JSON, one POST per notification.
    Vane,
    /// A Slack incoming webhook: one `{"text": ...}` message per notification.
    Slack,
    /// PagerDuty's Events API v2: one event per alert.
    PagerDuty { routing_key: RoutingKey },
}

/// Where a PagerDuty channel's routing key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum RoutingKey {
    /// `routing_key`: written in the config file.
    Inline(String),
    /// `routing_key_env`: the name of an environment variable, read when an event is sent. Not
    /// at load time: every vane command reads the config (pools, limits), and only the process
    /// that sends alerts needs the secret in its environment.
    Env(String),
}

impl RoutingKey {
    /// The key itself; the error says which variable is missing and where to set it.
    ///
    /// # Errors
    /// `routing_key_env` names a variable that is unset, empty or not Unicode.
    pub fn value(&self) -> Result<String, String> {
        match self {
            RoutingKey::Inline(key) => Ok(key.clone()),
            RoutingKey::Env(name) => match std::env::var(name) {
                Ok(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
                Ok(_) | Err(std::env::VarError::NotPresent) => Err(format!(
                    "environment variable {name} (routing_key_env) is not set: export the PagerDuty integration's routing key in it, in the environment of the process sending alerts (the scheduler's service, or the shell running `vane alerts --evaluate`)"
                )),
                Err(e) => Err(format!(
                    "environment variable {name} (routing_key_env): {e}"
                )),
            },
        }
    }
}

// By hand so a channel printed with `{:?}` (a test failure, a debug log) never shows the secret.
impl std::fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoutingKey::Inline(_) => f.write_str("Inline(..)"),
            RoutingKey::Env(name) => f.debug_tuple("Env").field(name).finish(),
        }
    }
}

/// PagerDuty's Events API v2, where a `format = "pagerduty"` channel without a `url` sends.
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A webhook's `ca_file`, read when the config is loaded so that a missing or malformed file is
/// reported then, with its place in the config, rather than when the first alert is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFile {
    /// As resolved against the config file's folder, for messages.
    pub path: PathBuf,
    /// In the order of the file; never empty.
    pub certs: Vec<CertificateDer<'static>>,
}

impl CaFile {
    /// Reads the PEM certificates of `path`; the error is (problem, hint).
    fn read(path: &Path) -> Result<CaFile, (String, String)> {
        let shown = path.display();
        let pem_hint = "it must hold the CA certificate in PEM form (-----BEGIN CERTIFICATE-----); convert a DER file with `openssl x509 -inform der -in ca.der -out ca.pem`";
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => (
                format!("ca_file `{shown}` does not exist"),
                "write the path of the CA's PEM certificate, relative to the folder of the config file".to_owned(),
            ),
            _ => (
                format!("cannot read ca_file `{shown}`: {e}"),
                "make it a file vane's user can read".to_owned(),
            ),
        })?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                (
                    format!("ca_file `{shown}` is not valid PEM: {e}"),
                    pem_hint.to_owned(),
                )
            })?;
        if certs.is_empty() {
            return Err((
                format!("ca_file `{shown}` holds no certificate"),
                pem_hint.to_owned(),
            ));
        }
        Ok(CaFile {
            path: path.to_owned(),
            certs,
        })
    }
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
    fn every_secs(&self) -> i64 {
        i64::try_from(self.every.as_secs().max(1)).unwrap_or(i64::MAX)
    }

    /// The number of the turn under way at `at`; `None` before the rotation begins.
    fn turn(&self, at: DateTime<Utc>) -> Option<i64> {
        let since = (at - self.start).num_seconds();
        (since >= 0).then(|| since / self.every_secs())
    }

    fn person(&self, turn: i64) -> Option<&str> {
        let n = self.people.len() as i64;
        (n > 0).then(|| self.people[turn.rem_euclid(n) as usize].as_str())
    }

    /// Who is on call at `at`; before `start` the rotation has not begun.
    pub fn at(&self, at: DateTime<Utc>) -> Option<&str> {
        self.person(self.turn(at)?)
    }

    /// `count` turns as (start, end, person), from the one under way at `at` (or the first,
    /// before the rotation begins). Fewer when the rotation reaches the last date there is.
    pub fn turns(
        &self,
        at: DateTime<Utc>,
        count: usize,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>, Option<&str>)> {
        let first = self.turn(at).unwrap_or(0);
        let every = self.every_secs();
        // Checked throughout: a long turn times many turns passes year 262143, where chrono's
        // dates end (`turns=263000` of a 52-week rotation panicked here).
        let after = |from: DateTime<Utc>, secs: i64| {
            from.checked_add_signed(chrono::TimeDelta::try_seconds(secs)?)
        };
        (0..count).map_while(move |i| {
            let k = first.checked_add(i64::try_from(i).ok()?)?;
            let from = after(self.start, k.checked_mul(every)?)?;
            Some((from, after(from, every)?, self.person(k)))
        })
    }
}

/// `[alerts]`: empty (no rules) when the config file has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
    /// By name; `log` always exists, even when not declared.
    pub channels: BTreeMap<String, Channel>,
    pub oncall: Option<OnCall>,
    /// When an undelivered notification is tried again.
    pub retry: RetryBackoff,
}

/// `retry_backoff` and `retry_backoff_max` of `[alerts]`: a notification whose delivery failed
/// is tried again at later evaluations, `first` after the first failed try, then twice as long
/// after each further one, never more than `max` apart: 30s, 1m, 2m, 4m, 8m, 16m, 30m, 30m, …
/// by default. Short enough that a webhook back after a blip hears within a minute, long
/// enough that one down for hours is tried twice an hour rather than at every pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBackoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            first: Duration::from_secs(30),
            max: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryBackoff {
    /// How long after its `tries`-th failed try (1 for the first) a notification is tried again.
    pub fn after(&self, tries: i64) -> Duration {
        let doublings = u32::try_from(tries.max(1) - 1).unwrap_or(u32::MAX).min(31);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max.max(self.first))
    }
}

const ON_NAMES: &[&str] = &[
    "run_failed",
    "task_failed",
    "sla_missed",
    "check_warn",
    "check_failed",
    "gate_failed",
    "sensor_timeout",
    "approval_waiting",
    "agent_waiting",
];
const SEVERITIES: &[&str] = &["info", "warning", "critical"];
const FORMATS: &[&str] = &["vane", "slack", "pagerduty"];

/// The keys every rule has, wherever it is written.
const RULE_ON: &[Field] = &[
    required(field(
        "on",
        Ty::Enum(ON_NAMES),
        "The kind of recorded event the rule fires on.",
    )),
    field(
        "name",
        Ty::Ident,
        "Name of the rule in `vane alerts` and its statistics; defaults to `on` with the DAG and task, e.g. `task_failed:churn.train`.",
    ),
];

/// Only a config rule chooses its DAG: a DAG file's rule watches that DAG.
const DAG_FILTER: &[Field] = &[field("dag", Ty::Ident, "Only events of this DAG.")];

const RULE_REST: &[Field] = &[
    field(
        "task",
        Ty::Ident,
        "Only events of this task; in a DAG file, one of its tasks.",
    ),
    with_default(
        field("severity", Ty::Enum(SEVERITIES), "How urgent the alert is."),
        "warning",
    ),
    with_default(
        field(
            "channels",
            Ty::StrList,
            "Names of the channels notified, declared as `[alerts.channels.NAME]` in the scheduler config (`log` always exists).",
        ),
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
    with_default(
        field(
            "after",
            Ty::Duration {
                max_secs: 30 * DAY_SECS,
            },
            "`approval_waiting` and `agent_waiting` only: how long a rollout may wait for a person's approval, or an attempt for an agent with its labels, before the rule fires.",
        ),
        "1h",
    ),
];

const CONFIG_RULE: &[&[Field]] = &[RULE_ON, DAG_FILTER, RULE_REST];
/// Keys of a DAG file's `[[alerts]]`, for the parser and the generated reference.
const DAG_RULE: &[&[Field]] = &[RULE_ON, RULE_REST];

const CHANNEL: &[Field] = &[
    required(field(
        "kind",
        Ty::Enum(&["webhook", "command", "log"]),
        "Where notifications go.",
    )),
    field(
        "url",
        Ty::Str,
        "Webhook: the `https://` or `http://` URL the JSON is POSTed to; with `format = \"pagerduty\"` it defaults to PagerDuty's Events API v2.",
    ),
    with_default(
        field(
            "format",
            Ty::Enum(FORMATS),
            "Webhook: the body's shape: `vane` (vane's JSON), `slack` (a Slack incoming webhook's message), `pagerduty` (one PagerDuty Events API v2 event per alert).",
        ),
        "vane",
    ),
    field(
        "routing_key",
        Ty::Str,
        "Webhook with `format = \"pagerduty\"`: the integration's routing key, written in the file; prefer `routing_key_env`.",
    ),
    field(
        "routing_key_env",
        Ty::Str,
        "Webhook with `format = \"pagerduty\"`: the environment variable holding the routing key, read when an event is sent.",
    ),
    field(
        "ca_file",
        Ty::Str,
        "Webhook over https: a PEM file of the CA certificates trusted instead of the system's, for a server with a certificate from a private CA; relative to the config file's folder.",
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
    required(field("people", Ty::StrList, "Who takes turns, in order.")),
    required(field(
        "start",
        Ty::Date,
        "When the first person's turn begins (UTC).",
    )),
    with_default(
        field(
            "every",
            Ty::Str,
            "How long each turn lasts: `1w`, `2w`, or any duration such as `3d` or `12h`.",
        ),
        "1w",
    ),
];

const SECTIONS: &[&str] = &[
    "rules",
    "channels",
    "oncall",
    "retry_backoff",
    "retry_backoff_max",
];

/// The longest `retry_backoff` or `retry_backoff_max`.
const MAX_BACKOFF_SECS: u64 = DAY_SECS;

/// `retry_backoff` or `retry_backoff_max`: a duration from 1s to a day.
fn backoff(cx: &mut Checker<'_>, key: &str, value: &Spanned<DeValue<'_>>) -> Option<Duration> {
    let hint = format!("write a duration such as {key} = \"30s\" (at least 1s, at most 1d)");
    let DeValue::String(text) = value.get_ref() else {
        cx.error(
            format!(
                "`{key}` must be a duration, found {}",
                found(value.get_ref())
            ),
            value.span(),
            hint,
        );
        return None;
    };
    match vane_dag::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 && d.as_secs() <= MAX_BACKOFF_SECS => Some(d),
        Ok(_) => {
            cx.error(
                format!("`{key}` = \"{text}\" is out of range"),
                value.span(),
                hint,
            );
            None
        }
        Err(problem) => {
            cx.error(
                format!("invalid duration `{text}` for `{key}`: {problem}"),
                value.span(),
                hint,
            );
            None
        }
    }
}

/// Reads `[alerts]`, reporting every problem into `cx`.
/// `dir`: the config file's folder, which a relative `ca_file` is read from.
fn parse(cx: &mut Checker<'_>, value: &Spanned<DeValue<'_>>, dir: &Path) -> AlertsConfig {
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
            format!("[alerts] must be a table, found {}", found(value.get_ref())),
            value.span(),
            "write [[alerts.rules]] and [alerts.channels.NAME] tables",
        );
        return config;
    };
    // Channels first: rules name them.
    if let Some(channels) = table.get("channels") {
        channel_tables(cx, channels, dir, &mut config);
    }
    let mut referenced: Vec<(String, Range<usize>)> = Vec::new();
    for (key, value) in table {
        match key.get_ref().as_ref() {
            "channels" => {}
            "rules" => rules(cx, value, &mut config, &mut referenced),
            "oncall" => config.oncall = oncall(cx, value),
            "retry_backoff" => {
                if let Some(d) = backoff(cx, "retry_backoff", value) {
                    config.retry.first = d;
                }
            }
            "retry_backoff_max" => {
                if let Some(d) = backoff(cx, "retry_backoff_max", value) {
                    config.retry.max = d;
                }
            }
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
    if config.retry.max < config.retry.first
        && let Some(at) = table
            .get("retry_backoff_max")
            .or(table.get("retry_backoff"))
    {
        cx.error(
            format!(
                "`retry_backoff_max` ({}) is shorter than `retry_backoff` ({})",
                vane_dag::format_duration(config.retry.max),
                vane_dag::format_duration(config.retry.first)
            ),
            at.span(),
            "make retry_backoff_max at least retry_backoff: retries are never closer than the first",
        );
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

fn channel_tables(
    cx: &mut Checker<'_>,
    value: &Spanned<DeValue<'_>>,
    dir: &Path,
    config: &mut AlertsConfig,
) {
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
        let Some(format) = webhook_format(cx, &keys, &label, span.clone()) else {
            continue;
        };
        let kind = match keys.str("kind") {
            Some("webhook") => {
                let default_url = match format {
                    WebhookFormat::PagerDuty { .. } => Some(PAGERDUTY_EVENTS_URL),
                    _ => None,
                };
                let written = match value.get_ref() {
                    DeValue::Table(t) => t.get("url").filter(|_| keys.get("url").is_some()),
                    _ => None,
                };
                let url = match (written, default_url) {
                    (Some(written), _) => match cx.url(written, "`url`") {
                        Some(url) => url,
                        None => continue,
                    },
                    (None, Some(default)) => match Url::parse(default) {
                        Ok(url) => url,
                        Err(_) => continue,
                    },
                    (None, None) => {
                        cx.error(
                            format!("{label} is a webhook without a `url`"),
                            span,
                            "add url = \"http://127.0.0.1:9000/hook\"",
                        );
                        continue;
                    }
                };
                let https = url.scheme() == "https";
                if !https && url.scheme() != "http" {
                    let at = keys.get("url").map_or(span.clone(), |e| e.span.clone());
                    cx.error(
                        format!("`{url}` is not an https:// or http:// URL"),
                        at,
                        "write url = \"https://HOST/PATH\" (or http://HOST:PORT/PATH)",
                    );
                    continue;
                }
                let ca = match (keys.str("ca_file"), keys.get("ca_file")) {
                    (Some(_), Some(entry)) if !https => {
                        // A certificate nobody checks would only look like security.
                        cx.error(
                            format!("{label} has a `ca_file` but its url `{url}` is plain http"),
                            entry.span.clone(),
                            "use the endpoint's https:// URL, or remove ca_file",
                        );
                        continue;
                    }
                    (Some(file), Some(entry)) => match CaFile::read(&dir.join(file)) {
                        Ok(ca) => Some(ca),
                        Err((problem, hint)) => {
                            cx.error(problem, entry.span.clone(), hint);
                            continue;
                        }
                    },
                    _ => None,
                };
                ChannelKind::Webhook {
                    url,
                    timeout,
                    retries: keys.int("retries").unwrap_or(2) as u32,
                    ca,
                    format,
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

/// A channel's `format` with its routing key; `None` after reporting a mistake. Checked on every
/// kind of channel, so a `format` or key that would be ignored is reported rather than
/// silently doing nothing.
fn webhook_format(
    cx: &mut Checker<'_>,
    keys: &Checked,
    label: &str,
    span: Range<usize>,
) -> Option<WebhookFormat> {
    let place = |key: &str| keys.get(key).map(|e| e.span.clone());
    let kind = keys.str("kind");
    if let (Some(at), Some(kind)) = (place("format"), kind)
        && kind != "webhook"
    {
        // A command gets vane's JSON on stdin and can reshape it itself.
        cx.error(
            format!("{label} has a `format`, which only a webhook takes; it is a {kind} channel"),
            at,
            "remove format, or make it kind = \"webhook\" with a url",
        );
        return None;
    }
    let inline = keys.str("routing_key").zip(place("routing_key"));
    let env = keys.str("routing_key_env").zip(place("routing_key_env"));
    let format = keys.str("format").unwrap_or("vane");
    if format != "pagerduty" {
        if let Some((_, at)) = inline.as_ref().or(env.as_ref()) {
            cx.error(
                format!("{label} has a routing key but is not a PagerDuty channel"),
                at.clone(),
                "add format = \"pagerduty\" (with kind = \"webhook\"), or remove the routing key",
            );
            return None;
        }
        return Some(match format {
            "slack" => WebhookFormat::Slack,
            _ => WebhookFormat::Vane,
        });
    }
    let routing_key = match (inline, env) {
        (Some(_), Some((_, at))) => {
            cx.error(
                format!("{label} has both `routing_key` and `routing_key_env`"),
                at,
                "keep one: routing_key_env, so the key stays out of the file",
            );
            return None;
        }
        (Some((key, at)), None) => {
            if key.trim().is_empty() {
                cx.error(
                    format!("{label} has an empty `routing_key`"),
                    at,
                    "copy the Integration Key of the service's Events API v2 integration, or use routing_key_env = \"PD_ROUTING_KEY\"",
                );
                return None;
            }
            RoutingKey::Inline(key.trim().to_owned())
        }
        (None, Some((name, at))) => {
            if let Some(problem) = env_name_problem(name) {
                cx.error(
                    format!("`{name}` is not an environment variable name: {problem}"),
                    at,
                    "write the variable's name alone, e.g. routing_key_env = \"PD_ROUTING_KEY\"",
                );
                return None;
            }
            RoutingKey::Env(name.to_owned())
        }
        (None, None) => {
            cx.error(
                format!("{label} has format = \"pagerduty\" but no routing key"),
                place("format").unwrap_or(span),
                "add routing_key_env = \"PD_ROUTING_KEY\" and export the Integration Key of the service's Events API v2 integration in that variable (or write it as routing_key = \"...\", in a file kept out of version control)",
            );
            return None;
        }
    };
    Some(WebhookFormat::PagerDuty { routing_key })
}

/// Why `name` cannot be an environment variable's name, if it cannot: a `$` or a key pasted in
/// its place would otherwise surface only when the first alert is sent.
fn env_name_problem(name: &str) -> Option<&'static str> {
    if name.starts_with('$') {
        return Some("it starts with `$`");
    }
    let mut chars = name.chars();
    match chars.next() {
        None => Some("it is empty"),
        Some(c) if c.is_ascii_digit() => Some("it starts with a digit"),
        _ if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some("only letters, digits and `_` may be in it")
        }
        _ => None,
    }
}

fn rules(
    cx: &mut Checker<'_>,
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
        // Channels named by a rule with a mistake are checked too: every problem at once.
        let (rule, channels) = rule(cx, item, Scope::Config, &config.rules);
        referenced.extend(channels);
        config.rules.extend(rule);
    }
}

/// Where a rule is written.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// `[[alerts.rules]]` of the scheduler config: any DAG, or the one `dag` names.
    Config,
    /// `[[alerts]]` of a DAG file: that DAG only, and only its tasks.
    Dag { id: &'a str, tasks: &'a [&'a str] },
}

/// Where a DAG file's rule is written. A DAG file is checked alone, so whether the scheduler
/// config declares its channels, and whether a config rule has its name, is known only when
/// both are loaded together; this is what such a problem points at.
#[derive(Debug, Clone)]
pub(crate) struct RulePlace {
    /// The rule's `name`, or the rule when it has none.
    pub(crate) name: Range<usize>,
    pub(crate) channels: Vec<(String, Range<usize>)>,
}

/// One rule (`None` when it has an error) and the channels it names, with where.
fn rule(
    cx: &mut Checker<'_>,
    item: &Spanned<DeValue<'_>>,
    scope: Scope<'_>,
    taken: &[AlertRule],
) -> (Option<AlertRule>, Vec<(String, Range<usize>)>) {
    let label = match scope {
        Scope::Config => "[[alerts.rules]]",
        Scope::Dag { .. } => "[[alerts]]",
    };
    // `dag` is checked as a config rule's would be, then refused with a reason of its own
    // rather than as an unknown key.
    let keys = cx.table(item, CONFIG_RULE, label);
    let referenced = keys.list("channels").to_vec();
    let mut valid = true;
    let (dag, task) = match scope {
        Scope::Config => (keys.str("dag"), keys.str("task")),
        Scope::Dag { id, tasks } => {
            if let DeValue::Table(table) = item.get_ref()
                && let Some((key, _)) = table.iter().find(|(k, _)| k.get_ref() == "dag")
            {
                cx.error(
                    format!("a rule in the file of DAG `{id}` watches that DAG: it cannot set `dag`"),
                    key.span(),
                    "remove `dag`; to watch another DAG, put the rule in that DAG's file, or under [[alerts.rules]] in the scheduler config",
                );
                valid = false;
            }
            let task = keys.str("task");
            if let (Some(t), Some(entry)) = (task, keys.get("task"))
                && !tasks.contains(&t)
            {
                cx.error(
                    format!("the rule watches task `{t}`, which is not a task of DAG `{id}`"),
                    entry.span.clone(),
                    suggestion(t, tasks.iter().copied()),
                );
                valid = false;
            }
            (Some(id), task)
        }
    };
    let Some(on) = keys.str("on").and_then(AlertOn::parse) else {
        return (None, referenced);
    };
    let name = match keys.str("name") {
        Some(n) => n.to_owned(),
        None => {
            let mut name = on.as_str().to_owned();
            if let Some(d) = dag {
                name = format!("{name}:{d}");
            }
            if let Some(t) = task {
                name = format!("{name}.{t}");
            }
            name
        }
    };
    if taken.iter().any(|r| r.name == name) {
        cx.error(
            format!("two rules are named `{name}`"),
            item.span(),
            "give one of them a distinct `name = \"...\"`: statistics are kept per name",
        );
        return (None, referenced);
    }
    let channels: Vec<String> = if keys.get("channels").is_some() {
        referenced.iter().map(|(n, _)| n.clone()).collect()
    } else {
        vec!["log".to_owned()]
    };
    let rule = AlertRule {
        name,
        on,
        dag: dag.map(str::to_owned),
        task: task.map(str::to_owned),
        severity: keys
            .str("severity")
            .and_then(AlertSeverity::parse)
            .unwrap_or(AlertSeverity::Warning),
        channels,
        cooldown: keys.dur("cooldown").unwrap_or(Duration::from_secs(3600)),
        max_per_hour: keys.int("max_per_hour").map(|n| n as u32),
        after: keys.dur("after").unwrap_or(Duration::from_secs(3600)),
    };
    (valid.then_some(rule), referenced)
}

/// Reads a DAG file's `[[alerts]]`: rules like the config's, for DAG `dag_id` and its `tasks`.
fn dag_rules(
    cx: &mut Checker<'_>,
    value: &Spanned<DeValue<'_>>,
    dag_id: &str,
    tasks: &[&str],
) -> (Vec<AlertRule>, Vec<RulePlace>) {
    let (mut rules, mut places) = (Vec::new(), Vec::new());
    let DeValue::Array(items) = value.get_ref() else {
        cx.error(
            format!(
                "`alerts` must be a list of rules, found {}",
                found(value.get_ref())
            ),
            value.span(),
            "write each rule as [[alerts]] followed by `on = \"task_failed\"` and its settings",
        );
        return (rules, places);
    };
    let scope = Scope::Dag { id: dag_id, tasks };
    for item in items {
        if let (Some(rule), channels) = rule(cx, item, scope, &rules) {
            let name = match item.get_ref() {
                DeValue::Table(t) => t.get("name").map(Spanned::span),
                _ => None,
            };
            places.push(RulePlace {
                name: name.unwrap_or_else(|| item.span()),
                channels,
            });
            rules.push(rule);
        }
    }
    (rules, places)
}

/// A DAG file's rule that cannot be evaluated as written, found when the DAGs and the scheduler
/// config are loaded together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagRuleProblem {
    /// The DAG file, where it is fixed.
    pub path: std::path::PathBuf,
    /// The DAG file and the place in it: `dags/etl.toml:31:12`.
    pub at: String,
    /// A rule left out is an error; one whose alerts go to `log` instead, a warning.
    pub severity: vane_dag::Severity,
    pub rule: String,
    pub message: String,
    pub hint: String,
    /// The whole problem as a compiler shows it, with the offending line.
    pub rendered: String,
}

impl AlertsConfig {
    /// The `[alerts]` of a scheduler config read with [`ALERTS`] registered; empty (no rules,
    /// no channels) when it has none.
    pub fn of(config: &vane_dag::SchedulerConfig) -> AlertsConfig {
        config
            .sections
            .get::<AlertsConfig>(ALERTS.name())
            .cloned()
            .unwrap_or_default()
    }

    /// These rules with every valid DAG's own added (the DAG's file is where they are fixed,
    /// so problems name it). A DAG rule naming a channel this config does not declare still
    /// records its alerts and sends them to `log` instead; one whose name another rule already
    /// has is left out, since statistics and rate limits are kept per name. Either way the
    /// other rules go on.
    pub fn with_dag_rules(&self, dags: &DagSet) -> (AlertsConfig, Vec<DagRuleProblem>) {
        let mut merged = self.clone();
        let mut problems = Vec::new();
        for (dag, file) in dags.dags() {
            let path = file.path.display().to_string();
            let mut report = |rule: &AlertRule, diagnostic: Diagnostic| {
                let (line, col) = diagnostic.line_col(&file.source).unwrap_or((1, 1));
                problems.push(DagRuleProblem {
                    path: file.path.clone(),
                    at: format!("{path}:{line}:{col}"),
                    severity: diagnostic.severity,
                    rule: rule.name.clone(),
                    message: diagnostic.message.clone(),
                    hint: diagnostic.hint.clone().unwrap_or_default(),
                    rendered: diagnostic.render(&path, &file.source),
                });
            };
            let Some(own) = DagRules::of(dag) else {
                continue;
            };
            for (rule, place) in own.rules.iter().zip(&own.places) {
                let mut rule = rule.clone();
                if let Some(at) = merged.rules.iter().position(|r| r.name == rule.name) {
                    let other = match &merged.rules[at].dag {
                        Some(d) if at >= self.rules.len() => format!("a rule of DAG `{d}`"),
                        _ => "a rule of the scheduler config".to_owned(),
                    };
                    let diagnostic = Diagnostic::error(
                        format!(
                            "rule `{}` of DAG `{}` is not evaluated: {other} has the same name",
                            rule.name, dag.id
                        ),
                        Some(place.name.clone()),
                    )
                    .hint(
                        "give it a distinct `name = \"...\"` under [[alerts]]: statistics and rate limits are kept per name",
                    );
                    report(&rule, diagnostic);
                    continue;
                }
                for (channel, span) in &place.channels {
                    if channel == "log" || self.channels.contains_key(channel) {
                        continue;
                    }
                    let declared = self
                        .channels
                        .keys()
                        .map(String::as_str)
                        .chain(["log"])
                        .filter(|c| *c != channel.as_str());
                    let close = match suggestion(channel, declared) {
                        h if h.starts_with("did you mean") => format!("{h} Or declare"),
                        _ => "declare".to_owned(),
                    };
                    let diagnostic = Diagnostic::warning(
                        format!(
                            "rule `{}` of DAG `{}` names channel `{channel}`, which the scheduler config does not declare; its alerts go to `log` instead",
                            rule.name, dag.id
                        ),
                        Some(span.clone()),
                    )
                    .hint(format!(
                        "{close} [alerts.channels.{channel}] with a `kind` in the scheduler config"
                    ));
                    report(&rule, diagnostic);
                    for name in &mut rule.channels {
                        if name == channel {
                            "log".clone_into(name);
                        }
                    }
                }
                // One notification per channel, however many unknown names became `log`.
                let mut seen = Vec::new();
                rule.channels.retain(|c| {
                    let first = !seen.contains(c);
                    seen.push(c.clone());
                    first
                });
                merged.rules.push(rule);
            }
        }
        (merged, problems)
    }
}

fn oncall(cx: &mut Checker<'_>, value: &Spanned<DeValue<'_>>) -> Option<OnCall> {
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
        _ => vane_dag::parse_duration(text)?,
    };
    if length.is_zero() || length.as_secs() > 366 * DAY_SECS {
        return Err("a turn lasts from 1s to 52w".to_owned());
    }
    Ok(length)
}

/// A DAG file's `[[alerts]]`: its rules, and where each is written.
#[derive(Debug, Clone, Default)]
pub struct DagRules {
    /// Each with `dag` set to the DAG.
    pub rules: Vec<AlertRule>,
    places: Vec<RulePlace>,
}

impl DagRules {
    /// The rules of `dag`, read with [`ALERTS`] registered.
    pub fn of(dag: &vane_dag::Dag) -> Option<&DagRules> {
        dag.sections.get::<DagRules>(ALERTS.name())
    }
}

/// `[alerts]` of the scheduler config and `[[alerts]]` of DAG files, for
/// [`vane_dag::Registry::section`].
pub static ALERTS: AlertsSection = AlertsSection;

/// See [`ALERTS`].
#[derive(Debug)]
pub struct AlertsSection;

impl vane_dag::Section for AlertsSection {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn dag_doc(&self) -> &'static str {
        "Alert rules that watch this DAG, one `[[alerts]]` table each: the keys of a rule of the scheduler config (see Alerts) except `dag`. `task` must be a task of this DAG. Channels are declared in the scheduler config; `log` always exists."
    }

    fn dag_entry_doc(&self) -> &'static str {
        "An alert rule for this DAG."
    }

    fn dag_keys(&self) -> &'static [&'static [Field]] {
        DAG_RULE
    }

    fn parse_config(
        &self,
        cx: &mut Checker<'_>,
        value: &Spanned<DeValue<'_>>,
        dir: &Path,
    ) -> Opaque {
        std::sync::Arc::new(parse(cx, value, dir))
    }

    fn parse_dag(
        &self,
        cx: &mut Checker<'_>,
        value: &Spanned<DeValue<'_>>,
        dag_id: &str,
        tasks: &[&str],
    ) -> Opaque {
        let (rules, places) = dag_rules(cx, value, dag_id, tasks);
        std::sync::Arc::new(DagRules { rules, places })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> vane_dag::Registry {
        vane_dag::Registry::none().section(&ALERTS)
    }

    /// A scheduler config's `[alerts]`, as the vane binary reads it.
    #[derive(Debug)]
    struct Read {
        alerts: AlertsConfig,
    }

    fn parse_config(source: &str) -> Result<Read, Vec<Diagnostic>> {
        parse_config_in(source, Path::new(""))
    }

    fn parse_config_in(source: &str, dir: &Path) -> Result<Read, Vec<Diagnostic>> {
        vane_dag::parse_config_in(source, dir, &registry()).map(|c| Read {
            alerts: AlertsConfig::of(&c),
        })
    }

    fn dag_rules(dag: &vane_dag::Dag) -> &[AlertRule] {
        &DagRules::of(dag).expect("rules").rules
    }

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
        let turns: Vec<_> = oncall.turns(day("2026-01-14T12:00:00Z"), 2).collect();
        assert_eq!(
            turns,
            vec![
                (
                    day("2026-01-12T00:00:00Z"),
                    day("2026-01-19T00:00:00Z"),
                    Some("bob")
                ),
                (
                    day("2026-01-19T00:00:00Z"),
                    day("2026-01-26T00:00:00Z"),
                    Some("alice")
                ),
            ]
        );
        let before = oncall.turns(day("2026-01-01T00:00:00Z"), 1).next();
        assert_eq!(
            before.map(|t| t.2),
            Some(Some("alice")),
            "listed from the first turn"
        );
    }

    /// `GET /api/oncall?turns=263000` of a 52-week rotation added past chrono's last date and
    /// panicked; the list now ends with the last turn that has a date.
    #[test]
    fn an_oncall_rotation_listed_past_the_last_date_ends_there_without_overflow() {
        use chrono::Datelike as _;
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let yearly = OnCall {
            people: vec!["alice".into(), "bob".into()],
            start,
            every: Duration::from_secs(52 * 7 * DAY_SECS),
        };
        let turns: Vec<_> = yearly.turns(start, 263_000).collect();
        assert!(
            turns.len() > 250_000 && turns.len() < 263_000,
            "{}",
            turns.len()
        );
        let (_, last_end, _) = turns.last().expect("some turns");
        assert!(last_end.year() > 260_000, "{last_end}");
        assert!(
            turns.windows(2).all(|w| w[0].1 == w[1].0),
            "turns follow each other"
        );
        // A turn longer than chrono's whole range has no end: no turn at all, still no panic.
        let endless = OnCall {
            every: Duration::from_secs(u64::MAX),
            ..yearly
        };
        assert_eq!(endless.turns(start, 3).count(), 0);
        assert_eq!(endless.at(start), Some("alice"));
    }

    #[test]
    fn retries_back_off_from_30s_doubling_to_30m() {
        let schedule: Vec<u64> = (1..=9)
            .map(|tries| RetryBackoff::default().after(tries).as_secs())
            .collect();
        assert_eq!(schedule, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(
            RetryBackoff::default().after(i64::MAX),
            Duration::from_secs(1800),
            "no overflow however long it failed"
        );
        let config = parse_config("[alerts]\nretry_backoff = \"2s\"\nretry_backoff_max = \"5s\"\n")
            .expect("valid");
        let retry = config.alerts.retry;
        let schedule: Vec<u64> = (1..=4).map(|t| retry.after(t).as_secs()).collect();
        assert_eq!(schedule, [2, 4, 5, 5]);
        let errors = errors(
            "[alerts]\nretry_backoff = \"2m\"\nretry_backoff_max = \"1m\"\nretry_backof = 1\n",
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[1].contains("unknown key `retry_backof` in [alerts]")
                && errors[1].contains("did you mean `retry_backoff`?"),
            "{}",
            errors[1]
        );
        assert!(
            errors[0].contains("`retry_backoff_max` (1m) is shorter than `retry_backoff` (2m)"),
            "{}",
            errors[0]
        );
        let zero = super::tests::errors("[alerts]\nretry_backoff = \"0s\"\n");
        assert!(zero[0].contains("out of range"), "{}", zero[0]);
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
url = "ftp://hooks.example.com/x"
"#,
        );
        let all = errors.join("\n");
        assert!(all.contains("did you mean `task_failed`?"), "{all}");
        assert!(all.contains("unknown key `chanels`"), "{all}");
        assert!(all.contains("did you mean `channels`?"), "{all}");
        assert!(all.contains("no channel named `pagr`"), "{all}");
        assert!(all.contains("not an https:// or http:// URL"), "{all}");
        assert!(all.contains("vane.toml:12:7"), "{all}");
    }

    fn webhook(url: &str, ca_file: &str) -> String {
        format!("[alerts.channels.pager]\nkind = \"webhook\"\nurl = \"{url}\"\n{ca_file}")
    }

    #[test]
    fn an_https_webhook_is_accepted_and_trusts_the_system_store_unless_given_a_ca_file() {
        let config =
            parse_config(&webhook("https://hooks.slack.com/services/T0/B0/x", "")).expect("valid");
        assert!(matches!(
            &config.alerts.channels["pager"].kind,
            ChannelKind::Webhook { url, ca: None, .. } if url.scheme() == "https"
        ));

        let tmp = tempfile::tempdir().expect("temp dir");
        let pem = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
        std::fs::write(tmp.path().join("ca.pem"), pem).expect("write");
        let source = webhook("https://alerts.internal/hook", "ca_file = \"ca.pem\"\n");
        let config = parse_config_in(&source, tmp.path()).expect("valid");
        let ChannelKind::Webhook { ca: Some(ca), .. } = &config.alerts.channels["pager"].kind
        else {
            panic!("{config:?}");
        };
        assert_eq!(ca.path, tmp.path().join("ca.pem"));
        assert_eq!(ca.certs.len(), 1);
        assert_eq!(ca.certs[0].as_ref(), [0x30, 0x03, 0x02, 0x01, 0x00]);
    }

    fn webhook_url(source: &str) -> Url {
        let config = parse_config(source).expect("valid");
        match &config.alerts.channels["pager"].kind {
            ChannelKind::Webhook { url, .. } => url.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_webhook_to_an_ipv6_literal_is_accepted() {
        // Regression: `https://[::1]/hook` was refused, `1]` read as its port.
        let url = webhook_url(&webhook("https://[::1]/hook", ""));
        assert_eq!(
            url.host(),
            &vane_dag::config::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST)
        );
        assert_eq!(url.port_or_default(), Some(443));
        assert_eq!(url.path(), "/hook");
    }

    #[test]
    fn a_query_right_after_the_host_is_not_read_as_the_host() {
        // Regression: `https://host?x=1` was read as host `host?x=1`.
        let url = webhook_url(&webhook("https://host?x=1", ""));
        assert_eq!(url.host(), &vane_dag::config::Host::Name("host".to_owned()));
        assert_eq!(url.query(), Some("x=1"));
        assert_eq!(url.request_target(), "/?x=1");
    }

    #[test]
    fn a_malformed_url_is_an_error_pointing_into_it() {
        assert_eq!(
            errors(&webhook("https://hooks.example.com:99999/x", "")),
            [
                "error: `99999` is not a port number\n --> vane.toml:3:33\n  |\n3 | url = \"https://hooks.example.com:99999/x\"\n  |                                 ^^^^^^\n  = hint: a port is a number from 0 to 65535, e.g. :8443; or leave it out for the scheme's default\n"
            ]
        );
        let rendered = errors(&webhook("https://[::1/hook", "")).join("");
        assert!(rendered.contains("has no closing `]`"), "{rendered}");
        assert!(
            rendered.contains("hint: write an IPv6 host in brackets"),
            "{rendered}"
        );
    }

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_an_error_at_its_place() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let in_dir = |source: &str| {
            parse_config_in(source, tmp.path())
                .expect_err("invalid")
                .iter()
                .map(|d| d.render("vane.toml", source))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let missing = in_dir(&webhook(
            "https://alerts.internal/hook",
            "ca_file = \"certs/ca.pem\"\n",
        ));
        let shown = tmp.path().join("certs/ca.pem").display().to_string();
        assert!(
            missing.contains(&format!("ca_file `{shown}` does not exist")),
            "{missing}"
        );
        assert!(missing.contains("vane.toml:4:11"), "{missing}");
        assert!(
            missing.contains("relative to the folder of the config file"),
            "{missing}"
        );

        std::fs::write(tmp.path().join("key.pem"), "not a certificate\n").expect("write");
        let empty = in_dir(&webhook(
            "https://alerts.internal/hook",
            "ca_file = \"key.pem\"\n",
        ));
        assert!(empty.contains("holds no certificate"), "{empty}");
        assert!(empty.contains("BEGIN CERTIFICATE"), "{empty}");

        let plain = in_dir(&webhook(
            "http://127.0.0.1:9000/hook",
            "ca_file = \"key.pem\"\n",
        ));
        assert!(plain.contains("is plain http"), "{plain}");
        assert!(plain.contains("vane.toml:4:11"), "{plain}");
    }

    #[test]
    fn a_webhook_takes_a_format_and_pagerduty_a_routing_key_from_the_file_or_the_environment() {
        let config = parse_config(
            r#"
[alerts.channels.chat]
kind = "webhook"
url = "https://hooks.slack.com/services/T0/B0/x"
format = "slack"

[alerts.channels.pd]
kind = "webhook"
format = "pagerduty"
routing_key_env = "PD_ROUTING_KEY"

[alerts.channels.pd_inline]
kind = "webhook"
url = "http://127.0.0.1:9000/enqueue"
format = "pagerduty"
routing_key = "R0KEY"

[alerts.channels.plain]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
"#,
        )
        .expect("valid");
        let kind = |name: &str| config.alerts.channels[name].kind.clone();
        assert!(matches!(
            kind("chat"),
            ChannelKind::Webhook {
                format: WebhookFormat::Slack,
                ..
            }
        ));
        let ChannelKind::Webhook { url, format, .. } = kind("pd") else {
            panic!("{config:?}");
        };
        assert_eq!(
            url.as_str(),
            "https://events.pagerduty.com/v2/enqueue",
            "the default"
        );
        assert_eq!(
            format,
            WebhookFormat::PagerDuty {
                routing_key: RoutingKey::Env("PD_ROUTING_KEY".to_owned())
            }
        );
        let ChannelKind::Webhook { format, .. } = kind("pd_inline") else {
            panic!("{config:?}");
        };
        assert_eq!(
            format,
            WebhookFormat::PagerDuty {
                routing_key: RoutingKey::Inline("R0KEY".to_owned())
            }
        );
        assert!(!format!("{format:?}").contains("R0KEY"), "never printed");
        assert!(matches!(
            kind("plain"),
            ChannelKind::Webhook {
                format: WebhookFormat::Vane,
                ..
            }
        ));
    }

    #[test]
    fn a_pagerduty_channel_without_a_routing_key_is_an_error_at_its_format() {
        let all = errors(
            "[alerts.channels.pd]\nkind = \"webhook\"\nurl = \"https://events.pagerduty.com/v2/enqueue\"\nformat = \"pagerduty\"\n",
        )
        .join("\n");
        assert!(
            all.contains("[alerts.channels.pd] has format = \"pagerduty\" but no routing key"),
            "{all}"
        );
        assert!(all.contains("vane.toml:4:10"), "{all}");
        assert!(
            all.contains("add routing_key_env = \"PD_ROUTING_KEY\""),
            "{all}"
        );
    }

    #[test]
    fn format_and_routing_keys_where_they_would_be_ignored_are_errors() {
        let all = errors(
            r#"
[alerts.channels.chat]
kind = "command"
command = "cat"
format = "slack"

[alerts.channels.hook]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
routing_key_env = "PD_ROUTING_KEY"

[alerts.channels.pd]
kind = "webhook"
format = "pagerduty"
routing_key = "R0KEY"
routing_key_env = "PD_ROUTING_KEY"

[alerts.channels.pd2]
kind = "webhook"
format = "pagerduty"
routing_key_env = "$PD_ROUTING_KEY"

[alerts.channels.typo]
kind = "webhook"
url = "http://127.0.0.1:9000/hook"
format = "pagerduty_v2"
"#,
        )
        .join("\n");
        assert!(
            all.contains("[alerts.channels.chat] has a `format`, which only a webhook takes; it is a command channel"),
            "{all}"
        );
        assert!(all.contains("vane.toml:5:10"), "{all}");
        assert!(
            all.contains("remove format, or make it kind = \"webhook\""),
            "{all}"
        );
        assert!(
            all.contains("[alerts.channels.hook] has a routing key but is not a PagerDuty channel"),
            "{all}"
        );
        assert!(all.contains("vane.toml:10:19"), "{all}");
        assert!(
            all.contains("has both `routing_key` and `routing_key_env`"),
            "{all}"
        );
        assert!(all.contains("it starts with `$`"), "{all}");
        assert!(all.contains("did you mean `pagerduty`?"), "{all}");
    }

    const TWO_TASKS: &str = r#"
[tasks.train]
command = "true"

[tasks.publish]
command = "true"
depends_on = ["train"]
"#;

    fn dag_errors(alerts: &str) -> String {
        let source = format!("{TWO_TASKS}{alerts}");
        let parsed = vane_dag::parse_dag_with(&source, "churn", &registry());
        assert!(parsed.dag.is_none(), "{alerts} should not validate");
        parsed
            .diagnostics
            .iter()
            .map(|d| d.render("dags/churn.toml", &source))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_dag_file_rule_watches_its_own_dag() {
        let source = format!(
            "{TWO_TASKS}{}",
            r#"
[[alerts]]
on = "task_failed"
task = "train"
severity = "critical"
channels = ["pager"]
cooldown = "30m"
max_per_hour = 3

[[alerts]]
on = "run_failed"
"#
        );
        let parsed = vane_dag::parse_dag_with(&source, "churn", &registry());
        let dag = parsed.dag.expect("valid");
        assert_eq!(dag_rules(&dag).len(), 2);
        let rule = &dag_rules(&dag)[0];
        assert_eq!(rule.name, "task_failed:churn.train");
        assert_eq!(rule.dag.as_deref(), Some("churn"));
        assert_eq!(rule.task.as_deref(), Some("train"));
        assert_eq!(rule.severity, AlertSeverity::Critical);
        assert_eq!(rule.channels, ["pager"]);
        assert_eq!(rule.cooldown, Duration::from_secs(1800));
        assert_eq!(rule.max_per_hour, Some(3));
        assert_eq!(dag_rules(&dag)[1].name, "run_failed:churn");
        assert_eq!(dag_rules(&dag)[1].channels, ["log"]);
    }

    #[test]
    fn a_dag_file_rule_on_a_task_the_dag_lacks_is_an_error_where_it_is_written() {
        let all = dag_errors("\n[[alerts]]\non = \"task_failed\"\ntask = \"trainn\"\n");
        assert!(
            all.contains("the rule watches task `trainn`, which is not a task of DAG `churn`"),
            "{all}"
        );
        assert!(all.contains("dags/churn.toml:11:8"), "{all}");
        assert!(all.contains("did you mean `train`?"), "{all}");
    }

    #[test]
    fn a_dag_file_rule_cannot_choose_another_dag() {
        let all = dag_errors("\n[[alerts]]\non = \"run_failed\"\ndag = \"fraud\"\n");
        assert!(all.contains("cannot set `dag`"), "{all}");
        assert!(all.contains("dags/churn.toml:11:1"), "{all}");
        assert!(all.contains("put the rule in that DAG's file"), "{all}");
        assert!(!all.contains("unknown key"), "one error, not two: {all}");
    }

    #[test]
    fn dag_file_rules_keep_the_config_rule_checks() {
        let all = dag_errors(
            "\n[[alerts]]\non = \"task_fialed\"\n\n[[alerts]]\non = \"run_failed\"\n\n[[alerts]]\non = \"run_failed\"\n",
        );
        assert!(all.contains("did you mean `task_failed`?"), "{all}");
        assert!(
            all.contains("two rules are named `run_failed:churn`"),
            "{all}"
        );
    }

    #[test]
    fn merged_with_the_config_a_dag_rule_with_an_undeclared_channel_goes_to_the_log() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        std::fs::write(
            dir.join("churn.toml"),
            format!(
                "{TWO_TASKS}\n[[alerts]]\non = \"run_failed\"\nchannels = [\"pagr\", \"log\"]\n\n[[alerts]]\non = \"task_failed\"\nchannels = [\"pager\"]\n"
            ),
        )
        .expect("write");
        std::fs::write(
            dir.join("fraud.toml"),
            format!("{TWO_TASKS}\n[[alerts]]\non = \"run_failed\"\nname = \"taken\"\n"),
        )
        .expect("write");
        let config = parse_config(
            "[[alerts.rules]]\non = \"sla_missed\"\nname = \"taken\"\n\n[alerts.channels.pager]\nkind = \"log\"\n",
        )
        .expect("valid");
        let set = vane_dag::load_dir(dir, &registry()).expect("load");
        let (merged, problems) = config.alerts.with_dag_rules(&set);
        let names: Vec<&str> = merged.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["taken", "run_failed:churn", "task_failed:churn"]);
        assert_eq!(merged.rules[1].channels, ["log"]);
        assert_eq!(merged.rules[2].channels, ["pager"]);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        let channel = &problems[0];
        assert_eq!(channel.rule, "run_failed:churn");
        assert!(channel.at.ends_with("churn.toml:11:13"), "{}", channel.at);
        // Which file and how bad, so `vane validate` counts the file as failing.
        assert_eq!(channel.path, dir.join("churn.toml"));
        assert_eq!(channel.severity, vane_dag::Severity::Warning);
        assert!(
            channel.message.contains("channel `pagr`"),
            "{}",
            channel.message
        );
        assert!(
            channel.hint.contains("did you mean `pager`?"),
            "{}",
            channel.hint
        );
        let name = &problems[1];
        assert!(name.at.ends_with("fraud.toml:11:8"), "{}", name.at);
        assert_eq!(name.severity, vane_dag::Severity::Error);
        assert!(
            name.message.contains("a rule of the scheduler config"),
            "{}",
            name.message
        );
    }
}
