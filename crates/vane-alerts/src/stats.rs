//! `vane alerts --stats`: how often each rule fired, how often people judged it real, and for
//! a rule that is mostly noise, the change that would quiet it.

use std::collections::BTreeMap;

use crate::AlertsConfig;
use vane_store::{AlertRecord, Verdict};

/// Below this many judged alerts a rule's precision is not evidence enough to suggest a change.
const MIN_JUDGED: usize = 3;

/// One rule's record.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStats {
    pub rule: String,
    /// The rule's `on`.
    pub kind: String,
    /// Alerts opened (a recurrence counted into an open alert is not a new one).
    pub fired: usize,
    /// Events behind them.
    pub occurrences: i64,
    pub real: usize,
    pub noise: usize,
    /// real / (real + noise); `None` until someone judged one.
    pub precision: Option<f64>,
    /// For a rule that is mostly noise: what to change, where.
    pub suggestion: Option<String>,
}

/// Statistics of every rule in `config` and every rule alerts were recorded for, by name.
pub fn stats(alerts: &[AlertRecord], config: &AlertsConfig) -> Vec<RuleStats> {
    let mut by_rule: BTreeMap<&str, Vec<&AlertRecord>> = BTreeMap::new();
    for rule in &config.rules {
        by_rule.entry(&rule.name).or_default();
    }
    for alert in alerts {
        by_rule.entry(&alert.rule).or_default().push(alert);
    }
    by_rule
        .into_iter()
        .map(|(rule, alerts)| {
            let kind = config
                .rules
                .iter()
                .find(|r| r.name == rule)
                .map(|r| r.on.as_str().to_owned())
                .or_else(|| alerts.first().map(|a| a.kind.clone()))
                .unwrap_or_default();
            let real = count(&alerts, Verdict::Real);
            let noise = count(&alerts, Verdict::Noise);
            let judged = real + noise;
            let precision = (judged > 0).then(|| real as f64 / judged as f64);
            let suggestion =
                (judged >= MIN_JUDGED && noise * 2 > judged).then(|| suggest(rule, &kind, &alerts));
            RuleStats {
                rule: rule.to_owned(),
                kind,
                fired: alerts.len(),
                occurrences: alerts.iter().map(|a| a.count).sum(),
                real,
                noise,
                precision,
                suggestion,
            }
        })
        .collect()
}

fn count(alerts: &[&AlertRecord], verdict: Verdict) -> usize {
    alerts.iter().filter(|a| a.verdict == Some(verdict)).count()
}

/// The change for the place most of the noise came from.
fn suggest(rule: &str, kind: &str, alerts: &[&AlertRecord]) -> String {
    let mut places: BTreeMap<(&str, Option<&str>, Option<&str>), usize> = BTreeMap::new();
    for a in alerts.iter().filter(|a| a.verdict == Some(Verdict::Noise)) {
        *places
            .entry((&a.dag_id, a.task_id.as_deref(), a.subject.as_deref()))
            .or_default() += 1;
    }
    let ((dag, task, subject), _) = places
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .unwrap_or((("?", None, None), 0));
    let task = task.unwrap_or("?");
    let subject = subject.unwrap_or("?");
    let change = match kind {
        "check_warn" => format!(
            "widen the bound of check `{subject}` in [tasks.{task}] of DAG `{dag}` (or use an `auto` bound over more good runs), \
             or stop paging on warnings: a `warn` check already shows in `vane checks`, so delete this rule or set its severity = \"info\" and route it to the log"
        ),
        "check_failed" => format!(
            "check `{subject}` of task `{task}` in DAG `{dag}` fails on data people judge fine: widen its bound, or make it severity = \"warn\" in the DAG file"
        ),
        "task_failed" => format!(
            "add `retries = 2` and a `retry_delay` to [tasks.{task}] of DAG `{dag}`: it fails and then works without anyone changing anything"
        ),
        "run_failed" => format!(
            "add retries to the tasks of DAG `{dag}` that fail now and then, or alert on `task_failed` for the tasks that matter instead"
        ),
        "sla_missed" => {
            format!("raise `sla` in [dag] of DAG `{dag}`: its runs finish, later than the SLA says")
        }
        "gate_failed" => format!(
            "the gates of model `{subject}` (DAG `{dag}`) roll back candidates people judge fine: relax the gate, or raise `min_samples` so it waits for enough data"
        ),
        "sensor_timeout" => format!(
            "raise the `timeout` of sensor [tasks.{task}] in DAG `{dag}`: what it waits for arrives, later than it waits"
        ),
        _ => "narrow the rule with `dag`/`task` filters".to_owned(),
    };
    format!("rule `{rule}` is mostly noise: {change}; or raise its `cooldown`")
}
