//! `vane checks` and `vane mark-good`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Timelike, Utc};
use clap::Args;
use vane_store::CheckHistoryEntry;

use crate::cli::{Global, JsonFlag};
use crate::commands::{app, open_store};
use crate::output::table;
use vane_app::reads::CheckView;

#[derive(Debug, Args)]
pub(crate) struct ChecksArgs {
    /// The DAG whose `validate` tasks to show.
    pub(crate) dag_id: String,
    /// Only this validate task.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// Only this check, e.g. `rows` or `age.min`.
    #[arg(long)]
    pub(crate) check: Option<String>,
    /// How many of the latest runs to show; 0 shows all.
    #[arg(long, default_value_t = 20)]
    pub(crate) last: usize,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

#[derive(Debug, Args)]
pub(crate) struct MarkGoodArgs {
    /// The run whose data a person vouches for.
    pub(crate) run_id: vane_store::RunId,
    /// Why the data is good although a check failed, e.g. "holiday traffic".
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Who vouches; by default $USER.
    #[arg(long)]
    pub(crate) by: Option<String>,
}

fn date(at: DateTime<Utc>) -> String {
    if at.num_seconds_from_midnight() == 0 {
        at.format("%Y-%m-%d").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

pub(crate) fn checks(g: &Global, args: &ChecksArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let query = vane_app::reads::CheckQuery {
        dag_id: args.dag_id.clone(),
        task: args.task.clone(),
        check: args.check.clone(),
        last: args.last,
    };
    let history = vane_app::reads::check_history(&*store, &query)?;
    if history.is_empty() {
        app(g).known_dag(&*store, &args.dag_id)?;
    }
    if args.json.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&history.iter().map(CheckView::of).collect::<Vec<_>>())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if history.is_empty() {
        eprintln!(
            "no check results for DAG `{}`{}: a `kind = \"validate\"` task records them when it runs",
            args.dag_id,
            args.task
                .as_deref()
                .map(|t| format!(" task `{t}`"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // One table: each run's checks together (newest run first), in the order each task
    // declares them, so a run's failures read as one block.
    let mut position: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in &history {
        let next = position.len();
        position
            .entry((e.task_id.as_str(), e.result.name.as_str()))
            .or_insert(next);
    }
    let mut sorted: Vec<&CheckHistoryEntry> = history.iter().collect();
    sorted.sort_by_key(|e| {
        (
            std::cmp::Reverse(e.run),
            position[&(e.task_id.as_str(), e.result.name.as_str())],
        )
    });
    let mut shown_run = None;
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|e| {
            let r = &e.result;
            let mut status = r.status.as_str().to_owned();
            if e.marked_good {
                status.push_str(" (marked good)");
            }
            // The run and its date once per block.
            let (run, day) = if shown_run == Some(e.run) {
                (String::new(), String::new())
            } else {
                shown_run = Some(e.run);
                (e.run.to_string(), date(e.logical_date))
            };
            vec![
                run,
                day,
                e.task_id.clone(),
                r.name.clone(),
                status,
                r.observed.map_or_else(|| "-".into(), format_number),
                r.bound.clone().unwrap_or_else(|| "-".into()),
                short(&r.definition_hash).to_owned(),
                r.derivation.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "RUN",
                "DATE",
                "TASK",
                "CHECK",
                "STATUS",
                "OBSERVED",
                "BOUND",
                "DEFINITION",
                "DERIVATION"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

pub(crate) fn mark_good(g: &Global, args: &MarkGoodArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let by = vane_app::who(args.by.as_deref());
    vane_app::reads::mark_good(&*store, args.run_id, &by, args.reason.as_deref())?;
    let why = args
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    eprintln!(
        "run {} marked good by {by}{why}: `auto` bounds and drift baselines of its validate tasks now learn from it",
        args.run_id
    );
    Ok(ExitCode::SUCCESS)
}
