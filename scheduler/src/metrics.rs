//! `vane metrics`: what tasks reported through `$VANE_METRICS`, as series over runs.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use vane_app::reads::PointView;

use crate::cli::{Global, JsonFlag};
use crate::commands::{app, open_store};
use crate::output::table;

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    /// The DAG whose metrics to show.
    pub(crate) dag_id: String,
    /// Only this task's metrics.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// Only the metric with this name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// The most recent K values of each series (0: all).
    #[arg(long, value_name = "K", default_value_t = 20)]
    pub(crate) last: usize,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

pub(crate) fn metrics(g: &Global, args: &MetricsArgs) -> Result<ExitCode> {
    let store = open_store(g)?;
    let query = vane_app::reads::MetricQuery {
        dag_id: args.dag_id.clone(),
        task: args.task.clone(),
        name: args.name.clone(),
        last: args.last,
    };
    let points = vane_app::reads::metric_series(&*store, &query)?;
    if points.is_empty() {
        app(g).known_dag(&*store, &args.dag_id)?;
    }
    if args.json.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&points.iter().map(PointView::of).collect::<Vec<_>>())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if points.is_empty() {
        let filter = match (&args.task, &args.name) {
            (Some(t), Some(n)) => format!(" for task `{t}` and name `{n}`"),
            (Some(t), None) => format!(" for task `{t}`"),
            (None, Some(n)) => format!(" named `{n}`"),
            (None, None) => String::new(),
        };
        // Nothing recorded yet is an empty answer, as `vane checks` gives one, not a failure
        // that a script must tell apart from a database it cannot read.
        eprintln!(
            "no metrics recorded for DAG `{}`{filter}; a task reports one by writing `name value` lines to the file $VANE_METRICS",
            args.dag_id
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Each row shows its change from the previous point of the same series, which is what a
    // person scanning for a regression looks at first.
    let mut rows = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let previous = i
            .checked_sub(1)
            .map(|j| &points[j])
            .filter(|q| q.task_id == p.task_id && q.name == p.name);
        let change = previous.map_or_else(String::new, |q| signed(p.value - q.value));
        rows.push(vec![
            format!("{}.{}", p.task_id, p.name),
            p.run.to_string(),
            p.logical_date.format("%Y-%m-%d %H:%M").to_string(),
            p.attempt.to_string(),
            number(p.value),
            change,
            p.run_state.to_string(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "TASK.METRIC",
                "RUN",
                "LOGICAL DATE",
                "ATTEMPT",
                "VALUE",
                "CHANGE",
                "RUN STATE"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A value as a person reads it: integers without a fraction, others to 6 significant digits.
pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let digits = (5 - value.abs().log10().floor() as i32).clamp(0, 12) as usize;
        format!("{value:.digits$}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn signed(delta: f64) -> String {
    if delta == 0.0 {
        "0".into()
    } else if delta > 0.0 {
        format!("+{}", number(delta))
    } else {
        number(delta)
    }
}
