//! `vane status`: the schedulers working on this database, from their heartbeats.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use clap::Args;

use crate::cli::{Global, JsonFlag};
use crate::commands::open_store;
use crate::output::{table, time};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// How many schedulers to show: running ones first, then the latest stopped (0: all).
    #[arg(long, default_value_t = 10)]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) json: JsonFlag,
}

pub(crate) fn status(g: &Global, args: &StatusArgs) -> Result<ExitCode> {
    let app = crate::commands::app(g);
    let schedulers = vane_app::reads::schedulers(&*open_store(g)?, args.limit)?;
    let now = Utc::now();
    if args.json.json {
        let value = app.status_view(&schedulers, now)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("database: {} ({})", app.database()?, app.backend());
    if schedulers.is_empty() {
        println!("no scheduler has run on this database; start one with `vane scheduler`");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = schedulers
        .iter()
        .map(|scheduler| {
            let s = &scheduler.record;
            let ms = |seconds: Option<f64>| seconds.map_or_else(|| "-".into(), millis);
            let owned = scheduler.lease.as_ref().map_or(0, |l| l.runs_owned);
            vec![
                s.host.clone(),
                s.pid.to_string(),
                time(Some(s.started_at)),
                ago(s.age(now)),
                s.passes.count.to_string(),
                ms(s.passes.mean()),
                ms(s.passes.last),
                scheduler.status(now).to_owned(),
                scheduler.lease_state().to_owned(),
                owned.to_string(),
            ]
        })
        .collect();
    let header = [
        "HOST",
        "PID",
        "STARTED",
        "LAST HEARTBEAT",
        "PASSES",
        "MEAN PASS",
        "LAST PASS",
        "STATUS",
        "LEASE",
        "RUNS OWNED",
    ];
    print!("{}", table(&header, &rows));
    Ok(ExitCode::SUCCESS)
}

/// Passes take from microseconds to seconds: three significant digits either way.
fn millis(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 100.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.0}ms")
    }
}

pub(crate) fn ago(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..120 => format!("{secs}s ago"),
        120..7200 => format!("{}m ago", secs / 60),
        7200..172_800 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_pass_times_read_at_a_glance() {
        assert_eq!(ago(Duration::from_secs(7)), "7s ago");
        assert_eq!(ago(Duration::from_secs(600)), "10m ago");
        assert_eq!(ago(Duration::from_secs(3 * 86_400)), "3d ago");
        assert_eq!(millis(0.000_42), "0.42ms");
        assert_eq!(millis(0.0451), "45.1ms");
        assert_eq!(millis(1.5), "1500ms");
    }
}
