//! Webhook bodies in the shape the endpoint takes. Every channel gets the same payload (see
//! [`crate::evaluate`]); a webhook's `format` reshapes it just before the POST, so the alerts
//! chosen, the grouping and the transport are the same whatever the endpoint.
//!
//! - `vane`: the payload as it is.
//! - `slack`: one message, `{"text": ...}` in Slack's mrkdwn, short enough to read in a phone
//!   notification.
//! - `pagerduty`: one Events API v2 event per alert, keyed by the vane alert, so PagerDuty
//!   folds repeats into one incident; a resolved alert becomes a `resolve` event.

use crate::{AlertSeverity, WebhookFormat};
use serde_json::{Value, json};

/// Alert lines a Slack message shows before "and N more": a phone shows a few lines of a
/// notification, and the full list is a `vane alerts` away.
const SLACK_LINES: usize = 8;

/// A summary longer than this is cut in a Slack line: the line is for deciding whether to look.
const SLACK_SUMMARY_CHARS: usize = 120;

/// PagerDuty refuses an event whose summary is longer.
const PAGERDUTY_SUMMARY_CHARS: usize = 1024;

/// The bodies to POST for `payload`, in order.
///
/// # Errors
/// A PagerDuty routing key that cannot be read (its environment variable is not set).
pub(crate) fn bodies(format: &WebhookFormat, payload: &Value) -> Result<Vec<Value>, String> {
    Ok(match format {
        WebhookFormat::Vane => vec![payload.clone()],
        WebhookFormat::Slack => vec![slack(payload)],
        WebhookFormat::PagerDuty { routing_key } => pagerduty(payload, &routing_key.value()?),
    })
}

/// Whether a channel is told when vane resolves an alert it was sent: PagerDuty keeps an
/// incident open until then; a message in a chat or vane's JSON has nothing to close.
pub(crate) fn closes_incidents(format: &WebhookFormat) -> bool {
    matches!(format, WebhookFormat::PagerDuty { .. })
}

fn alerts(payload: &Value) -> &[Value] {
    payload["alerts"].as_array().map_or(&[], Vec::as_slice)
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or("")
}

/// `dag.task`, or the DAG alone for an alert about a whole run.
fn place(alert: &Value) -> String {
    match alert["task"].as_str() {
        Some(task) => format!("{}.{task}", text(alert, "dag")),
        None => text(alert, "dag").to_owned(),
    }
}

/// The first line of `s`, at most `max` characters.
fn cut(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max && !s.trim().contains('\n') {
        return line.to_owned();
    }
    let kept: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions); a summary quoting a shell
/// redirection must not become one.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn severity_of(alert: &Value) -> AlertSeverity {
    AlertSeverity::parse(text(alert, "severity")).unwrap_or(AlertSeverity::Warning)
}

/// One Slack message for the whole notification: a heading with who is on call, then a line
/// per alert, most severe first.
fn slack(payload: &Value) -> Value {
    let mut alerts: Vec<&Value> = alerts(payload).iter().collect();
    // Stable: alerts of one severity keep the evaluation's order.
    alerts.sort_by_key(|a| std::cmp::Reverse(severity_of(a)));
    let count = match alerts.len() {
        1 => "1 alert".to_owned(),
        n => format!("{n} alerts"),
    };
    let top = alerts
        .first()
        .map_or(AlertSeverity::Warning, |a| severity_of(a));
    let mut lines = vec![format!("*vane: {count}, {top}*")];
    if let Some(who) = payload["oncall"].as_str() {
        lines[0].push_str(&format!(" · on call: *{}*", slack_escape(who)));
    }
    // One line fewer than the cap when some are left out, so the message never exceeds it.
    let shown = if alerts.len() > SLACK_LINES {
        SLACK_LINES - 1
    } else {
        alerts.len()
    };
    for alert in &alerts[..shown] {
        let mut line = format!(
            "• *{}* `{}` {}",
            text(alert, "severity"),
            slack_escape(&place(alert)),
            slack_escape(&cut(text(alert, "summary"), SLACK_SUMMARY_CHARS)),
        );
        if let Some(n) = alert["count"].as_i64().filter(|n| *n > 1) {
            line.push_str(&format!(" ×{n}"));
        }
        if let Some(run) = alert["run"].as_i64() {
            line.push_str(&format!(" (run {run})"));
        }
        lines.push(line);
    }
    if alerts.len() > shown {
        lines.push(format!("…and {} more: `vane alerts`", alerts.len() - shown));
    }
    json!({ "text": lines.join("\n") })
}

/// One PagerDuty event per alert: `trigger` for an open one, `resolve` once vane resolved it.
fn pagerduty(payload: &Value, routing_key: &str) -> Vec<Value> {
    alerts(payload)
        .iter()
        .map(|alert| {
            // The vane alert's id is stable while vane counts repeats into it, so PagerDuty
            // groups them the same way; a later failure after a resolution is a new id.
            let dedup_key = format!("vane-alert-{}", alert["id"]);
            if text(alert, "state") == "resolved" {
                return json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                });
            }
            let severity = match severity_of(alert) {
                AlertSeverity::Critical => "critical",
                AlertSeverity::Warning => "warning",
                AlertSeverity::Info => "info",
            };
            let mut summary = format!("{} {}", text(alert, "on"), place(alert));
            if let Some(n) = alert["count"].as_i64().filter(|n| *n > 1) {
                summary.push_str(&format!(" ({n} times)"));
            }
            summary.push_str(&format!(": {}", text(alert, "summary")));
            let mut details = alert.clone();
            details["oncall"] = payload["oncall"].clone();
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "client": "vane",
                "payload": {
                    "summary": cut(&summary, PAGERDUTY_SUMMARY_CHARS),
                    "source": "vane",
                    "severity": severity,
                    "timestamp": alert["last_seen"],
                    "component": place(alert),
                    "group": alert["dag"],
                    "class": alert["on"],
                    "custom_details": details,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoutingKey;

    fn alert(id: i64, severity: &str, task: Option<&str>, summary: &str, count: i64) -> Value {
        json!({
            "id": id, "rule": "task_failed", "on": "task_failed", "severity": severity,
            "dag": "churn", "task": task, "subject": null, "state": "open",
            "summary": summary, "count": count, "first_seen": "2026-01-05T10:00:00+00:00",
            "last_seen": "2026-01-05T11:00:00+00:00", "run": 40 + id,
            "ack": format!("vane ack {id} --real|--noise"),
        })
    }

    fn payload(alerts: Vec<Value>, oncall: Option<&str>) -> Value {
        json!({
            "source": "vane", "title": "t", "severity": "critical", "oncall": oncall,
            "at": "2026-01-05T11:00:10+00:00", "alerts": alerts,
        })
    }

    #[test]
    fn pagerduty_gets_one_event_per_alert_with_the_fields_the_events_api_requires() {
        let body = payload(
            vec![
                alert(7, "critical", Some("train"), "exit code 1", 3),
                alert(8, "info", None, "run failed", 1),
                alert(9, "warning", Some("load"), "timed out", 1),
            ],
            Some("alice"),
        );
        let format = WebhookFormat::PagerDuty {
            routing_key: RoutingKey::Inline("R0KEY".to_owned()),
        };
        let events = bodies(&format, &body).expect("events");
        assert_eq!(events.len(), 3);
        let first = &events[0];
        assert_eq!(first["routing_key"], "R0KEY");
        assert_eq!(first["event_action"], "trigger");
        assert_eq!(first["dedup_key"], "vane-alert-7");
        assert_eq!(
            first["payload"]["summary"],
            "task_failed churn.train (3 times): exit code 1"
        );
        assert_eq!(first["payload"]["source"], "vane");
        assert_eq!(first["payload"]["severity"], "critical");
        assert_eq!(first["payload"]["component"], "churn.train");
        assert_eq!(first["payload"]["timestamp"], "2026-01-05T11:00:00+00:00");
        assert_eq!(first["payload"]["custom_details"]["run"], 47);
        assert_eq!(first["payload"]["custom_details"]["oncall"], "alice");
        assert_eq!(events[1]["dedup_key"], "vane-alert-8");
        assert_eq!(events[1]["payload"]["severity"], "info");
        assert_eq!(
            events[1]["payload"]["summary"],
            "task_failed churn: run failed"
        );
        assert_eq!(events[2]["payload"]["severity"], "warning");
        for event in &events {
            // Only the values PagerDuty accepts.
            let severity = event["payload"]["severity"].as_str().expect("severity");
            assert!(["critical", "error", "warning", "info"].contains(&severity));
        }
    }

    #[test]
    fn a_resolved_alert_resolves_its_pagerduty_incident_and_a_long_summary_is_cut() {
        let mut resolved = alert(7, "critical", Some("train"), "exit code 1", 3);
        resolved["state"] = json!("resolved");
        let long = "x".repeat(2000);
        let events = pagerduty(
            &payload(vec![resolved, alert(8, "warning", None, &long, 1)], None),
            "K",
        );
        assert_eq!(
            events[0],
            json!({"routing_key": "K", "event_action": "resolve", "dedup_key": "vane-alert-7"})
        );
        let summary = events[1]["payload"]["summary"].as_str().expect("summary");
        assert_eq!(summary.chars().count(), PAGERDUTY_SUMMARY_CHARS);
        assert!(summary.ends_with('…'));
    }

    #[test]
    fn a_routing_key_from_an_unset_variable_fails_the_delivery_naming_it() {
        let format = WebhookFormat::PagerDuty {
            routing_key: RoutingKey::Env("VANE_TEST_SURELY_UNSET_ROUTING_KEY".to_owned()),
        };
        let err = bodies(
            &format,
            &payload(vec![alert(1, "info", None, "x", 1)], None),
        )
        .expect_err("unset");
        assert!(
            err.contains("VANE_TEST_SURELY_UNSET_ROUTING_KEY (routing_key_env) is not set"),
            "{err}"
        );
        // PATH is set wherever tests run: the variable's value is the key.
        let from_path = WebhookFormat::PagerDuty {
            routing_key: RoutingKey::Env("PATH".to_owned()),
        };
        let events = bodies(
            &from_path,
            &payload(vec![alert(1, "info", None, "x", 1)], None),
        )
        .expect("set");
        assert_eq!(
            events[0]["routing_key"].as_str(),
            std::env::var("PATH").ok().as_deref().map(str::trim)
        );
    }

    #[test]
    fn slack_gets_one_short_message_naming_who_is_on_call() {
        let body = payload(
            vec![
                alert(
                    1,
                    "warning",
                    Some("load"),
                    "rows < 10 & falling\nsecond line",
                    1,
                ),
                alert(2, "critical", Some("train"), "exit code 1", 3),
            ],
            Some("alice"),
        );
        let messages = bodies(&WebhookFormat::Slack, &body).expect("message");
        assert_eq!(messages.len(), 1);
        let message = messages[0].as_object().expect("object");
        assert_eq!(message.keys().collect::<Vec<_>>(), ["text"]);
        let text = message["text"].as_str().expect("text");
        assert_eq!(
            text,
            "*vane: 2 alerts, critical* · on call: *alice*\n\
             • *critical* `churn.train` exit code 1 ×3 (run 42)\n\
             • *warning* `churn.load` rows &lt; 10 &amp; falling… (run 41)"
        );
    }

    #[test]
    fn a_long_slack_message_stops_at_the_cap_and_says_how_many_more() {
        let many: Vec<Value> = (1..=20)
            .map(|id| alert(id, "warning", Some("t"), "failed", 1))
            .collect();
        let text = slack(&payload(many, None))["text"]
            .as_str()
            .expect("text")
            .to_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "*vane: 20 alerts, warning*", "nobody on call");
        assert_eq!(lines.len(), 1 + SLACK_LINES, "{text}");
        assert_eq!(lines[SLACK_LINES], "…and 13 more: `vane alerts`");

        let exactly = (1..=SLACK_LINES as i64)
            .map(|id| alert(id, "info", None, "failed", 1))
            .collect();
        let text = slack(&payload(exactly, Some("bob")))["text"].clone();
        assert!(!text.as_str().expect("text").contains("more"), "{text}");
    }
}
