//! `vane alerts`, `ack`, `resolve` and `snooze`.

use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;
use clap::Args;
use vane_app::alerts::{RuleStatsView, who};
use vane_store::{DeliveryState, Store, Verdict};

use crate::cli::Global;
use crate::commands::{app, init_tracing, open_store};
use crate::output::table;

#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    /// Resolved alerts too.
    #[arg(long)]
    pub(crate) all: bool,
    /// Read the history recorded since the last evaluation, raise and resolve alerts, and
    /// send notifications (what the scheduler does every pass), then list.
    #[arg(long)]
    pub(crate) evaluate: bool,
    /// Per rule: how often it fired, how often people judged it real, and what would quiet a
    /// noisy one.
    #[arg(long, conflicts_with = "all")]
    pub(crate) stats: bool,
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AckArgs {
    /// The alert, by the id `vane alerts` lists.
    pub(crate) id: i64,
    /// It deserved attention.
    #[arg(long, conflicts_with = "noise")]
    pub(crate) real: bool,
    /// It did not: counts against its rule in `vane alerts --stats`.
    #[arg(long)]
    pub(crate) noise: bool,
    /// Who [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ResolveArgs {
    /// The alert, by the id `vane alerts` lists.
    pub(crate) id: i64,
    /// Who [default: $USER].
    #[arg(long)]
    pub(crate) by: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SnoozeArgs {
    /// The alert, by the id `vane alerts` lists.
    pub(crate) id: i64,
    /// How long to stay quiet, e.g. `2h` (at most 7d): snoozes always expire.
    #[arg(long = "for", value_name = "DURATION")]
    pub(crate) for_: String,
}

pub(crate) fn alerts(g: &Global, args: &AlertsArgs) -> Result<ExitCode> {
    let app = app(g);
    let rules = app.alert_rules()?;
    // Evaluating records how far it read: it starts the database like any command that acts.
    let store = if args.evaluate {
        crate::commands::open_or_create_store(g)?
    } else {
        open_store(g)?
    };
    let now = Utc::now();
    if args.evaluate {
        init_tracing();
        // Reported, not fatal: the other rules must still be evaluated.
        for p in &rules.problems {
            eprintln!("{}", p.rendered);
        }
        if let Some(e) = &rules.unread {
            eprintln!(
                "warning: cannot read the DAG folder {} ({e}): only the scheduler config's alert rules apply\n  = hint: set the folder with --dags or VANE_DAGS\n",
                g.dags.display()
            );
        }
        let report = app.evaluate_alerts(&*store, &rules, now)?;
        for n in &report.notifications {
            let ids: Vec<String> = n.alerts.iter().map(|id| format!("#{id}")).collect();
            let ids = ids.join(", ");
            let try_ = if n.attempt > 1 {
                format!(" (try {})", n.attempt)
            } else {
                String::new()
            };
            match (&n.error, n.resolves) {
                (None, false) => eprintln!("notified {}{try_}: {ids}", n.channel),
                (None, true) => eprintln!("told {} that {ids} resolved", n.channel),
                (Some(e), false) => {
                    let again = n.retry_at.map_or(String::new(), |t| {
                        format!("; tried again at {}", t.format("%Y-%m-%d %H:%M:%S"))
                    });
                    eprintln!("could not notify {}{try_} of {ids}: {e}{again}", n.channel);
                }
                (Some(e), true) => {
                    eprintln!("could not tell {} that {ids} resolved: {e}", n.channel);
                }
            }
        }
        for (id, why) in &report.held {
            eprintln!("#{id} not sent: {why}");
        }
        for (id, why) in &report.abandoned {
            eprintln!("#{id} notification abandoned: {why}");
        }
        if report.notifications.iter().any(|n| n.error.is_some()) {
            // The alerts are recorded; the exit code tells a cron job or CI that a channel is down.
            list(&*store, args, now)?;
            return Ok(ExitCode::from(1));
        }
    }
    if args.stats {
        let all = vane_app::alerts::list(&*store, true)?;
        let stats = vane_alerts::stats(&all, &rules.config);
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &stats.iter().map(RuleStatsView::of).collect::<Vec<_>>()
                )?
            );
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = stats
            .iter()
            .map(|s| {
                vec![
                    s.rule.clone(),
                    s.kind.clone(),
                    s.fired.to_string(),
                    s.occurrences.to_string(),
                    s.real.to_string(),
                    s.noise.to_string(),
                    s.precision
                        .map_or("-".to_owned(), |p| format!("{:.0}%", p * 100.0)),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "rule",
                    "on",
                    "fired",
                    "events",
                    "real",
                    "noise",
                    "precision"
                ],
                &rows
            )
        );
        for s in stats.iter().filter_map(|s| s.suggestion.as_ref()) {
            println!("\nsuggestion: {s}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    list(&*store, args, now)?;
    Ok(ExitCode::SUCCESS)
}

fn list(store: &dyn Store, args: &AlertsArgs, now: chrono::DateTime<Utc>) -> Result<()> {
    let list = vane_app::alerts::list(store, args.all)?;
    if args.json {
        let rows: Vec<vane_alerts::AlertView> =
            list.iter().map(vane_alerts::AlertView::of).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no {}alerts", if args.all { "" } else { "open " });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let mut state = a.state.as_str().to_owned();
            if let Some(until) = a.snoozed_until.filter(|u| *u > now) {
                state = format!("{state}, snoozed until {}", until.format("%Y-%m-%d %H:%M"));
            }
            // A notification that did not get through is what a person must not miss here.
            match a.delivery.as_ref().map(|d| (d.state, d)) {
                Some((DeliveryState::Pending, d)) => {
                    let at = d.next_try_at.map_or(String::new(), |t| {
                        format!(", retry at {}", t.format("%H:%M:%S"))
                    });
                    state = format!("{state}, UNDELIVERED ({} tries{at})", d.attempts);
                }
                Some((DeliveryState::Abandoned, _)) => {
                    state = format!("{state}, never delivered");
                }
                _ => {}
            }
            let place = match &a.task_id {
                Some(t) => format!("{}.{t}", a.dag_id),
                None => a.dag_id.clone(),
            };
            vec![
                a.id.to_string(),
                a.severity.clone(),
                a.rule.clone(),
                place,
                state,
                a.count.to_string(),
                a.last_seen.format("%Y-%m-%d %H:%M:%S").to_string(),
                a.summary.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "id",
                "severity",
                "rule",
                "where",
                "state",
                "count",
                "last seen",
                "what"
            ],
            &rows
        )
    );
    Ok(())
}

pub(crate) fn ack(g: &Global, args: &AckArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let verdict = match (args.real, args.noise) {
        (true, _) => Some(Verdict::Real),
        (_, true) => Some(Verdict::Noise),
        _ => None,
    };
    let by = who(args.by.as_deref());
    let alert = vane_app::alerts::ack(&*store, args.id, &by, verdict)?;
    let judged = verdict.map_or(String::new(), |v| format!(" as {}", v.as_str()));
    println!(
        "alert {} acknowledged by {by}{judged}; it stays acknowledged until it resolves",
        alert.id
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn resolve(g: &Global, args: &ResolveArgs) -> Result<ExitCode> {
    let (alert, told) =
        app(g).resolve_alert(&*open_store(g)?, args.id, &who(args.by.as_deref()))?;
    println!(
        "alert {} resolved; if it happens again it opens a new alert",
        alert.id
    );
    let mut code = ExitCode::SUCCESS;
    for n in &told {
        match &n.error {
            None => println!("told {} that #{} resolved", n.channel, alert.id),
            Some(e) => {
                eprintln!(
                    "could not tell {} that #{} resolved: {e}",
                    n.channel, alert.id
                );
                code = ExitCode::from(1);
            }
        }
    }
    Ok(code)
}

pub(crate) fn snooze(g: &Global, args: &SnoozeArgs) -> Result<ExitCode> {
    let (alert, until) = vane_app::alerts::snooze(&*open_store(g)?, args.id, &args.for_)?;
    println!(
        "alert {} snoozed until {}: it keeps counting, and notifies again after that",
        alert.id,
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(ExitCode::SUCCESS)
}
