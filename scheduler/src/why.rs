//! `vane why`: what is different from the last good run.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use vane_app::why::WhyView;

use crate::cli::{Global, JsonFlag};

#[derive(Debug, Args)]
pub(crate) struct WhyArgs {
    /// The run to explain (a failed or odd one).
    pub(crate) run: vane_store::RunId,
    /// Compare with this run of the same DAG instead of the last successful run before RUN.
    #[arg(long, value_name = "RUN")]
    pub(crate) against: Option<vane_store::RunId>,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

pub(crate) fn why(g: &Global, args: &WhyArgs) -> Result<ExitCode> {
    let store = crate::commands::open_store(g)?;
    let view = vane_app::why::why(&*store, args.run, args.against, Some(&g.dags))?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", render(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer as a person reads it: the lead first, then each difference, most likely cause
/// first, and the list of what was equal last. Nothing equal is printed in detail.
fn render(view: &WhyView) -> String {
    let mut out = format!(
        "run {} of `{}` ({}): {}\n",
        view.run.id, view.run.dag_id, view.run.logical_date, view.run.state
    );
    out.push_str(&format!("compared with {}\n\n", view.chosen));
    out.push_str(&format!("{}\n", view.lead.summary));
    if view.against.is_none() {
        return out;
    }
    if view.differences.is_empty() {
        out.push_str("\nNothing vane records differs between the two runs.\n");
    } else {
        out.push_str("\nWhat differs, most likely cause first:\n");
        for (i, d) in view.differences.iter().enumerate() {
            out.push_str(&format!("{:>3}. {}\n", i + 1, d.summary));
            for line in &d.detail {
                out.push_str(&format!("       {line}\n"));
            }
        }
    }
    if !view.equal_kinds.is_empty() {
        out.push_str(&format!("\nEqual: {}.\n", view.equal_kinds.join(", ")));
    }
    if !view.not_compared.is_empty() {
        out.push_str(&format!(
            "Not compared yet: {}.\n",
            view.not_compared.join("; ")
        ));
    }
    out
}
