//! Alerts: listing, statistics, who is on call, and what people do to an alert (ack,
//! resolve, snooze).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use vane_alerts::{AlertsConfig, DagRuleProblem};
use vane_store::{AlertFilter, AlertRecord, Store, StoreError, Verdict};

use crate::{App, AppError};

type Result<T, E = AppError> = std::result::Result<T, E>;

/// The longest snooze: anything longer is muting, which `resolve` or a tuned rule does honestly.
/// The longest snooze: a snooze always ends.
pub const MAX_SNOOZE_SECONDS: u64 = 7 * 86_400;

pub use crate::who;

fn not_found(id: i64) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound(_) => AppError::NotFound(format!(
            "there is no alert {id}; `vane alerts --all` lists them"
        )),
        other => other.into(),
    }
}

/// The config's rules with those of every valid DAG file in `dags`, and what keeps a DAG's rule
/// from being evaluated as written.
///
/// # Errors
/// The DAG folder cannot be read.
pub fn with_dag_rules(
    config: &AlertsConfig,
    dags: &Path,
) -> std::io::Result<(AlertsConfig, Vec<DagRuleProblem>)> {
    Ok(config.with_dag_rules(&vane_dag::load_dir(dags, &crate::registry())?))
}

/// The alert rules in force, the problems of DAG rules, and why the DAG folder could not be
/// read (then the config's rules alone apply: they do not depend on it).
#[derive(Debug)]
pub struct Rules {
    pub config: AlertsConfig,
    pub problems: Vec<DagRuleProblem>,
    pub unread: Option<std::io::Error>,
}

impl App {
    /// The config's alert rules with every DAG's.
    ///
    /// # Errors
    /// The scheduler config does not validate.
    pub fn alert_rules(&self) -> Result<Rules> {
        let config = AlertsConfig::of(&self.config()?);
        Ok(match with_dag_rules(&config, &self.paths.dags) {
            Ok((merged, problems)) => Rules {
                config: merged,
                problems,
                unread: None,
            },
            Err(e) => Rules {
                config,
                problems: Vec::new(),
                unread: Some(e),
            },
        })
    }

    /// Reads the history recorded since the last evaluation, raises and resolves alerts and
    /// sends notifications, as the scheduler does every pass. Delivery failures are in the
    /// report, not errors.
    ///
    /// # Errors
    /// The store cannot be read or written.
    pub fn evaluate_alerts(
        &self,
        store: &dyn Store,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<vane_alerts::Report> {
        Ok(vane_alerts::evaluate(store, &rules.config, now)?)
    }

    /// Per rule, how often it fired and how people judged it, as `vane alerts --stats --json`
    /// and `GET /api/alerts/stats` give it.
    ///
    /// # Errors
    /// The store cannot be read or the config does not validate.
    pub fn alert_stats(&self, store: &dyn Store) -> Result<Vec<vane_alerts::RuleStats>> {
        let all = store.alerts(AlertFilter { all: true })?;
        Ok(vane_alerts::stats(&all, &self.alert_rules()?.config))
    }

    /// Resolves alert `id` and tells the channels that opened an incident for it (PagerDuty),
    /// as a success would; the alert, and what was sent.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown alert, or the store cannot be written.
    pub fn resolve_alert(
        &self,
        store: &dyn Store,
        id: i64,
        by: &str,
    ) -> Result<(AlertRecord, Vec<vane_alerts::Notification>)> {
        let now = Utc::now();
        let alert = store
            .resolve_alert(id, &format!("user {by}"), now)
            .map_err(not_found(id))?;
        let rules = self.alert_rules()?;
        let told = vane_alerts::tell_resolved_by_hand(store, &rules.config, &alert, now)?;
        Ok((alert, told))
    }

    /// The on-call rotation from the turn under way at `now`: each turn's person, start and
    /// end, as `GET /api/oncall` gives it.
    ///
    /// # Errors
    /// The scheduler config does not validate.
    pub fn oncall_view(&self, turns: usize, now: DateTime<Utc>) -> Result<OnCallView> {
        let Some(rotation) = AlertsConfig::of(&self.config()?).oncall else {
            return Ok(OnCallView {
                configured: false,
                now: None,
                every: None,
                people: vec![],
                turns: vec![],
            });
        };
        Ok(OnCallView {
            configured: true,
            now: rotation.at(now).map(str::to_owned),
            every: Some(vane_dag::format_duration(rotation.every)),
            people: rotation.people.clone(),
            turns: rotation
                .turns(now, turns)
                .map(|(from, to, person)| TurnView {
                    person: person.map(str::to_owned),
                    from: from.to_rfc3339(),
                    to: to.to_rfc3339(),
                })
                .collect(),
        })
    }
}

/// The on-call rotation.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "OnCall")]
pub struct OnCallView {
    /// A rotation is set in `[alerts.oncall]`.
    pub configured: bool,
    /// Who is on call now.
    pub now: Option<String>,
    /// How long a turn is.
    pub every: Option<String>,
    pub people: Vec<String>,
    /// From the turn under way.
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Turn")]
pub struct TurnView {
    /// None when the rotation has no people.
    pub person: Option<String>,
    pub from: String,
    pub to: String,
}

/// A rule's statistics as `vane alerts --stats --json` gives them.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "RuleStats")]
pub struct RuleStatsView {
    pub rule: String,
    /// What the rule watches (`task_failed`, `check_failed`, ...).
    pub on: String,
    /// Alerts it opened.
    pub fired: usize,
    /// Occurrences folded into them.
    pub occurrences: i64,
    /// Verdicts people gave.
    pub real: usize,
    pub noise: usize,
    /// real / (real + noise), once there are verdicts.
    pub precision: Option<f64>,
    /// The change that would quiet a noisy rule.
    pub suggestion: Option<String>,
}

impl RuleStatsView {
    #[must_use]
    pub fn of(s: &vane_alerts::RuleStats) -> Self {
        Self {
            rule: s.rule.clone(),
            on: s.kind.clone(),
            fired: s.fired,
            occurrences: s.occurrences,
            real: s.real,
            noise: s.noise,
            precision: s.precision,
            suggestion: s.suggestion.clone(),
        }
    }
}

/// Open alerts, or all of them.
///
/// # Errors
/// The store cannot be read.
pub fn list(store: &dyn Store, all: bool) -> Result<Vec<AlertRecord>> {
    Ok(store.alerts(AlertFilter { all })?)
}

/// Acknowledges alert `id`, with a verdict on whether it deserved attention.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown alert.
pub fn ack(store: &dyn Store, id: i64, by: &str, verdict: Option<Verdict>) -> Result<AlertRecord> {
    store
        .acknowledge_alert(id, by, verdict, Utc::now())
        .map_err(not_found(id))
}

/// Snoozes alert `id` for `length` (text such as `2h`), refusing anything longer than
/// seven days; the alert and when the snooze ends.
///
/// # Errors
/// [`AppError::Invalid`] for a length that does not parse or is out of bounds,
/// [`AppError::NotFound`] for an unknown alert.
pub fn snooze(store: &dyn Store, id: i64, length: &str) -> Result<(AlertRecord, DateTime<Utc>)> {
    let parsed = vane_dag::parse_duration(length)
        .map_err(|e| AppError::Invalid(format!("snooze for `{length}`: {e}; write e.g. 2h")))?;
    snooze_for(store, id, parsed)
}

/// [`snooze`] for a length already read.
///
/// # Errors
/// As [`snooze`].
pub fn snooze_for(
    store: &dyn Store,
    id: i64,
    length: Duration,
) -> Result<(AlertRecord, DateTime<Utc>)> {
    if length > Duration::from_secs(MAX_SNOOZE_SECONDS) || length < Duration::from_secs(1) {
        return Err(AppError::Invalid(format!(
            "snooze for {} is not between 1s and 7d: a snooze always ends; to stop an alert \
             for good, resolve it (`vane resolve {id}`) or tune its rule (`vane alerts \
             --stats` suggests how)",
            vane_dag::format_duration(length)
        )));
    }
    let until = Utc::now()
        + chrono::TimeDelta::from_std(length)
            .map_err(|e| AppError::Invalid(format!("snooze for {length:?}: {e}")))?;
    let alert = store.snooze_alert(id, until).map_err(not_found(id))?;
    Ok((alert, until))
}
