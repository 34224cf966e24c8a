//! `vane agent` (run tasks that need this host's labels), `vane agents` (who offers what, and
//! what waits for whom), and the agent's watchdog.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Args;
use vane_exec::ProcessExecutor;
use vane_store::StoreThreads;

use crate::cli::{Global, JsonFlag};
use crate::commands::{app, host, limits, open_store, runtime_with_signals};
use vane_app::AppError;
use vane_app::agents::labels_text;

use crate::output::table;
use crate::status::ago;

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// What this host offers, as `name=value` pairs separated by commas, e.g.
    /// `gpu=a100,zone=eu`; a task with `runs_on = { gpu = "a100" }` runs here.
    #[arg(long, default_value = "", value_name = "LABELS")]
    pub(crate) labels: String,
    /// How many attempts run here at once [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    pub(crate) slots: Option<u32>,
    /// Seconds a killed task gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub(crate) kill_grace: u64,
}

/// `gpu=a100,zone=eu` as labels, or what is wrong with it.
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, AppError> {
    let invalid = |message: String| Err(AppError::Invalid(message));
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return invalid(format!(
                "--labels: `{pair}` is not `name=value`; write e.g. `--labels gpu=a100,zone=eu`"
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        if !ok(name) || value.is_empty() {
            return invalid(format!(
                "--labels: `{pair}`: a label name uses letters, digits, `_`, `-` and `.`, and its value is not empty"
            ));
        }
        if labels.insert(name.to_owned(), value.to_owned()).is_some() {
            return invalid(format!("--labels: `{name}` is given twice"));
        }
    }
    Ok(labels)
}

pub(crate) fn agent(g: &Global, args: &AgentArgs) -> Result<ExitCode> {
    crate::commands::init_tracing();
    let labels = parse_labels(&args.labels)?;
    let slots = args
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if slots == 0 {
        return Err(AppError::Invalid("--slots must be at least 1".into()).into());
    }
    let ttl = limits(g)?
        .lease_ttl
        .unwrap_or(vane_store::DEFAULT_LEASE_TTL);
    let db = app(g).db_for_children()?;
    // A task's log is written here and shipped to the storage the run's owner names.
    let spool = crate::commands::absolute(&app(g).state_dir().join("agent-spool"))?;
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("cannot create the spool folder {}", spool.display()))?;
    let exe = std::env::current_exe().context("cannot find the vane executable")?;
    let watchdog = vane_exec::Watchdog::spawn(&exe, &["agent-watchdog"])
        .context("cannot start the agent's watchdog")?;
    let (runtime, mut signals) = runtime_with_signals()?;
    let opened = db.clone();
    let store = StoreThreads::open(2, move || vane_store::open(&opened))?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    listen_for_work(db.clone(), std::sync::Arc::clone(&wake));
    let config = vane_engine::agent::AgentConfig {
        host: host(),
        labels,
        slots,
        idle_poll: Duration::from_millis(200),
        exe,
        spool,
        wake,
    };
    let lease = vane_engine::Lease::new(&config.host, vane_store::LeaseRole::Agent, ttl);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let kill_grace = Duration::from_secs(args.kill_grace);
    runtime.block_on(async {
        tokio::spawn(async move {
            if signals.recv().await.is_some() {
                let _ = stop.send(true);
            }
            // A second signal: stop now, killing what runs (its attempts are then retried).
            if signals.recv().await.is_some() {
                eprintln!("vane agent: stopping now; running attempts die with the agent");
                std::process::exit(130);
            }
        });
        let link = vane_engine::agent::StoreLink(store.clone());
        let executor = GraceExecutor(kill_grace);
        vane_engine::agent::run_agent(&link, &lease, &config, &executor, Some(watchdog), stopped)
            .await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Wakes the agent when an attempt is handed out, on a thread of its own with a connection of
/// its own (PostgreSQL); reconnects after a failure. The agent polls anyway.
fn listen_for_work(db: String, wake: std::sync::Arc<tokio::sync::Notify>) {
    let _ = std::thread::Builder::new()
        .name("vane-listen".into())
        .spawn(move || {
            loop {
                match vane_store::wait_for_dispatches(&db, &|| wake.notify_one()) {
                    Ok(false) => return,
                    Ok(true) => {}
                    Err(e) => {
                        tracing::warn!(%e, "Lost the wake-up connection; polling until it is back.")
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
}

/// The process executor with this agent's kill grace, whatever the job says.
struct GraceExecutor(Duration);

impl vane_exec::Executor for GraceExecutor {
    fn launch(&self, mut job: vane_exec::Job) -> Result<vane_exec::Launched, vane_exec::ExecError> {
        job.kill_grace = job.kill_grace.min(self.0);
        ProcessExecutor.launch(job)
    }

    fn launch_held(
        &self,
        mut job: vane_exec::Job,
    ) -> Result<(vane_exec::Launched, vane_exec::Hold), vane_exec::ExecError> {
        job.kill_grace = job.kill_grace.min(self.0);
        ProcessExecutor.launch_held(job)
    }
}

pub(crate) fn agent_watchdog() -> Result<ExitCode> {
    vane_exec::watchdog_main(std::io::stdin().lock(), Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn agents(g: &Global, args: &JsonFlag) -> Result<ExitCode> {
    let read = vane_app::agents::Agents::read(&*open_store(g)?)?;
    let now = Utc::now();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&read.view(now))?);
        return Ok(ExitCode::SUCCESS);
    }
    if read.agents.is_empty() {
        println!(
            "no agent has joined this database; start one with `vane agent --labels NAME=VALUE`"
        );
    } else {
        let rows: Vec<Vec<String>> = read
            .agents
            .iter()
            .map(|a| {
                vec![
                    a.host.clone(),
                    labels_text(&a.labels),
                    format!("{}/{}", a.running, a.slots),
                    ago((now - a.renewed_at).to_std().unwrap_or_default()),
                    a.state.as_str().to_owned(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["HOST", "LABELS", "RUNNING", "HEARTBEAT", "STATE"], &rows)
        );
    }
    for d in read.waiting() {
        println!(
            "run {} task {} attempt {}: {}",
            d.run,
            d.task,
            d.attempt,
            read.describe(d, now)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_labels;

    #[test]
    fn labels_are_name_value_pairs() {
        let labels = parse_labels("gpu=a100, zone=eu").unwrap();
        assert_eq!(labels["gpu"], "a100");
        assert_eq!(labels["zone"], "eu");
        assert!(parse_labels("").unwrap().is_empty());
        let error = parse_labels("gpu").unwrap_err().to_string();
        assert!(error.contains("`gpu` is not `name=value`"), "{error}");
        assert!(parse_labels("gpu=a,gpu=b").is_err());
        assert!(parse_labels("g pu=a").is_err());
    }
}
